"""QR decoding: every QR code in a picture, read by zxing-cpp and, as a fallback, zbar.

Part of :mod:`vaxqr.qr`, which the rest of vaxqr imports (and which imports this module
on first use of a decoding name); like it, this module knows images and text only and
never prints. PIL, zxing-cpp and pyzbar are imported only by the functions that use them.

:func:`decode_image` returns every QR code found in a picture (PNG, JPEG, WebP, BMP,
GIF), as raw bytes plus text (strict UTF-8, else Latin-1 with a flag). Pictures are
size-checked before they are decoded and reduced to 8-bit grayscale. A generated
two-tone picture of one symbol takes zxing-cpp's pure-symbol path (~0.4 ms for a
credential PNG). Otherwise zxing-cpp reads first (~89% of the degraded corpus in
``tests/degrade.py``, median ~1 ms); only when it finds nothing does a ladder of
fallbacks run, each rung the one that rescued the most per millisecond: zxing-cpp on a
2x-reduced, a Gaussian-blurred (noise) and an unsharp-masked (defocus) copy, zbar on the
blurred copy, zxing-cpp on 2x-upscaled copies (tiny modules), then zbar on the picture,
a median-filtered, a sharpened, a local-mean and an Otsu thresholded copy. Together:
99.7% of the corpus, median ~1.5 ms. zbar is reached through pyzbar's library loader,
imported only when a zbar rung runs, with its ``binary`` option on, so it returns the
symbol's bytes instead of its charset guess (which garbles Vietnamese). A missing
libzbar only removes the zbar rungs, a missing zxing-cpp the zxing ones; with neither,
decoding raises :class:`~vaxqr.errors.SetupError` (what to install), not "no QR code found".
"""

from __future__ import annotations

import io
import os
import threading
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

import numpy as np
import numpy.typing as npt

from .errors import DecodeError, SetupError, StorageError, ValidationError

if TYPE_CHECKING:
    from PIL import Image as PILImage

__all__ = [
    "ACCEPTED_FORMATS",
    "IMAGE_FORMATS",
    "MAX_FILE_BYTES",
    "MAX_JPEG_SCANS",
    "MAX_PIXELS",
    "QrResult",
    "decode_image",
    "decode_one",
    "zbar_available",
    "zbar_binary",
]

U8Array = npt.NDArray[np.uint8]

#: Pictures with more pixels than this are refused before decoding (decompression bombs).
MAX_PIXELS: Final = 50_000_000
#: Image files larger than this are refused before they are read.
MAX_FILE_BYTES: Final = 64 * 1024 * 1024
#: JPEGs with more start-of-scan markers than this are refused before decoding. Every scan
#: of a progressive JPEG is decoded over the whole picture, and a repeated scan of a flat
#: picture takes ~75 bytes: 2,000 of them in a 342 KB file of 49 megapixels took ~14 s,
#: a 64 MiB file could take hours. Cameras and encoders write 1 (baseline) to ~10-20 scans
#: (progressive), a few more with an EXIF thumbnail or in a phone's MPO (the markers are
#: counted as bytes, so a marker-like pair inside other data counts too).
MAX_JPEG_SCANS: Final = 256

Engine = Literal["zxing", "zbar"]
Point = tuple[int, int]

#: Image formats accepted by :func:`decode_image` (PIL names; phone MPO files open as JPEG).
IMAGE_FORMATS: Final = ("PNG", "JPEG", "WEBP", "BMP", "GIF")
# IMAGE_FORMATS as people write them, for messages
ACCEPTED_FORMATS: Final = "PNG, JPEG, WebP, BMP or GIF"
_PICTURE: Final = "picture"


@dataclass(frozen=True)
class QrResult:
    """One QR code read from a picture.

    ``raw`` is the symbol's data exactly as encoded (all segments' bytes, no ECI headers).
    ``text`` is ``raw`` decoded as strict UTF-8 when ``utf8`` is true; otherwise ``raw`` was
    not valid UTF-8 and ``text`` is its Latin-1 reading (one character per byte, nothing
    lost). ``position`` holds the corners (top-left, top-right, bottom-right, bottom-left) in
    the picture's pixels, when the decoder reports them. ``engine`` names the decoder.
    """

    raw: bytes
    text: str
    utf8: bool
    position: tuple[Point, Point, Point, Point] | None = None
    engine: Engine = "zxing"

    @classmethod
    def from_raw(
        cls,
        raw: bytes,
        *,
        position: tuple[Point, Point, Point, Point] | None = None,
        engine: Engine = "zxing",
    ) -> QrResult:
        """Build a result from raw bytes: strict UTF-8, else Latin-1 with ``utf8=False``."""
        try:
            return cls(raw, raw.decode("utf-8"), True, position, engine)
        except UnicodeDecodeError:
            return cls(raw, raw.decode("latin-1"), False, position, engine)


# --- loading ----------------------------------------------------------------------------


def _open_image(source: Any) -> tuple[PILImage.Image, bool]:
    """Open ``source`` (bytes, path or PIL image) after the size guards; not yet loaded.

    The flag says whether the image is ours (opened here) or the caller's.
    """
    from PIL import Image, UnidentifiedImageError

    if isinstance(source, Image.Image):
        _check_pixels(source.size)
        return source, False
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        where = "the image data"
    elif isinstance(source, (str, os.PathLike)):
        data = _read_file(os.fspath(source))
        where = os.fspath(source)
    else:
        raise DecodeError(f"cannot read a picture from a {type(source).__name__}", step=_PICTURE)
    if not data:
        raise DecodeError(f"{where} is empty, not a picture", step=_PICTURE)
    if len(data) > MAX_FILE_BYTES:
        raise DecodeError(
            f"{where} is too large ({len(data):,} bytes; the limit is {MAX_FILE_BYTES:,})",
            step=_PICTURE,
        )
    scans = data.count(b"\xff\xda") if data.startswith(b"\xff\xd8") else 0
    if scans > MAX_JPEG_SCANS:
        raise DecodeError(
            f"{where} is a JPEG of {scans:,} scans, far more than a photograph has (a "
            "decoding bomb?)", step=_PICTURE,
            hint="take the picture again with a camera or a screenshot tool")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DecodeError(
            f"{where} is too large to decode safely", step=_PICTURE, hint=_SIZE_HINT
        ) from exc
    except UnidentifiedImageError as exc:
        kind = _sniff(data)
        if kind is not None:
            raise DecodeError(
                f"{where} is a damaged or truncated {kind} image", step=_PICTURE
            ) from exc
        raise DecodeError(
            f"{where} is not a {ACCEPTED_FORMATS} picture (the formats read)",
            step=_PICTURE,
            hint="save or screenshot it as PNG or JPEG (a phone's HEIC photo too), or give "
                 "the HC1: text itself",
        ) from exc
    except Exception as exc:  # PIL raises SyntaxError, ValueError, struct.error... here
        raise DecodeError(f"{where} is a damaged picture: {exc}", step=_PICTURE) from exc
    _check_pixels(img.size)
    return img, True


def _sniff(data: bytes) -> str | None:
    """The image format a file's signature claims, for clearer errors."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "GIF"
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "WebP"
    return None


_SIZE_HINT: Final = "photograph the code closer or resize the picture below 50 megapixels"


def _read_file(path: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size > MAX_FILE_BYTES:
                raise DecodeError(
                    f"{path} is too large ({size:,} bytes; the limit is {MAX_FILE_BYTES:,})",
                    step=_PICTURE,
                    hint=_SIZE_HINT,
                )
            return fh.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError as exc:
        raise StorageError(f"no such file: {path}") from exc
    except IsADirectoryError as exc:
        raise StorageError(f"{path} is a directory, not a picture") from exc
    except PermissionError as exc:
        raise StorageError(f"permission denied: {path}") from exc
    except OSError as exc:
        raise StorageError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _check_pixels(size: tuple[int, int]) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise DecodeError("the picture has no pixels", step=_PICTURE)
    if width * height > MAX_PIXELS:
        raise DecodeError(
            f"the picture is too large: {width}x{height} pixels "
            f"(the limit is {MAX_PIXELS // 1_000_000} megapixels)",
            step=_PICTURE,
            hint=_SIZE_HINT,
        )


def _grayscale(img: PILImage.Image, owned: bool) -> PILImage.Image:
    """Decode the pixels and return an 8-bit grayscale image; transparency becomes white."""
    from PIL import Image

    try:
        if owned and img.format in ("JPEG", "MPO") and img.mode not in ("L", "1"):
            img.draft("L", img.size)  # luminance straight from the JPEG decoder (2.5x faster)
        img.load()
        if img.mode == "L":
            return img
        if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
            return Image.fromarray(_stretch_to_u8(np.asarray(img)))
        if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info:
            return _on_white(img)
        return img.convert("L")
    except DecodeError:
        raise
    except Exception as exc:  # truncated data: OSError; broken chunks: SyntaxError, ...
        raise DecodeError(f"the picture is damaged or truncated ({exc})", step=_PICTURE) from exc


_STRETCH_ROWS_PIXELS: Final = 1 << 18  # pixels of one block of rows (_stretch_to_u8, _on_white)


def _on_white(img: PILImage.Image) -> PILImage.Image:
    """A picture with transparency laid on white and made 8-bit grayscale, a strip of rows
    at a time (the same pixels): the whole picture as RGBA, a white one and their
    composite took ~12 bytes a pixel beside it (~875 MB of memory for a 208 KB RGBA PNG
    of 49 megapixels)."""
    from PIL import Image

    width, height = img.size
    out = Image.new("L", img.size)
    rows = max(1, _STRETCH_ROWS_PIXELS // width)
    for top in range(0, height, rows):
        box = (0, top, width, min(height, top + rows))
        strip = img.crop(box).convert("RGBA")
        white = Image.new("RGBA", strip.size, (255, 255, 255, 255))
        out.paste(Image.alpha_composite(white, strip).convert("L"), box)
    return out


def _pixels(gray: PILImage.Image) -> U8Array:
    """An 8-bit grayscale picture's pixels as an array, copied a strip of rows at a time:
    ``np.asarray`` of the whole picture held its bytes twice beside the picture on the way
    (~93 MB more for a 49-megapixel picture, where the array is 49 MB)."""
    width, height = gray.size
    if width * height <= _STRETCH_ROWS_PIXELS:
        return np.asarray(gray, dtype=np.uint8)
    out = np.empty((height, width), dtype=np.uint8)
    rows = max(1, _STRETCH_ROWS_PIXELS // width)
    for top in range(0, height, rows):
        bottom = min(height, top + rows)
        out[top:bottom] = np.asarray(gray.crop((0, top, width, bottom)), dtype=np.uint8)
    return out


def _shared(arr: U8Array) -> PILImage.Image:
    """A read-only 8-bit grayscale picture over ``arr``'s pixels (no copy)."""
    from PIL import Image

    return Image.frombuffer("L", (arr.shape[1], arr.shape[0]), arr, "raw", "L", 0, 1)


def _stretch_to_u8(arr: npt.NDArray[Any]) -> U8Array:
    """A 16-bit, 32-bit or float picture's values stretched linearly onto 0-255 (its minimum
    to 0, its maximum to 255; a picture of one value, or with a NaN, is all 0), computed in
    float64 one block of rows at a time: the whole picture in float64 took 16 bytes a pixel
    (~1 GB of memory for a 111 KB 16-bit PNG of 49 megapixels)."""
    lo, hi = float(arr.min()), float(arr.max())
    out = np.zeros(arr.shape, dtype=np.uint8)
    if hi > lo:
        scale = 255.0 / (hi - lo)
        step = max(1, _STRETCH_ROWS_PIXELS // max(1, arr.shape[1]))
        for top in range(0, arr.shape[0], step):
            block = arr[top:top + step].astype(np.float64)
            out[top:top + step] = ((block - lo) * scale).astype(np.uint8)
    return out


# --- engines ----------------------------------------------------------------------------


def _zxing_read(gray: U8Array, **options: Any) -> list[tuple[bytes, tuple[Point, ...] | None]]:
    import zxingcpp

    found = zxingcpp.read_barcodes(
        gray,
        formats=zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode),
        text_mode=zxingcpp.TextMode.Plain,
        **options,
    )
    out: list[tuple[bytes, tuple[Point, ...] | None]] = []
    for barcode in found:
        pos = barcode.position
        corners = tuple(
            (int(p.x), int(p.y))
            for p in (pos.top_left, pos.top_right, pos.bottom_right, pos.bottom_left)
        )
        out.append((bytes(barcode.bytes), corners))
    return out


class _Zbar:
    """A minimal ctypes binding to zbar's image scanner (through pyzbar's loader).

    pyzbar's ``decode`` cannot turn on zbar's ``binary`` option, so zbar would return text
    re-encoded from a guessed charset (Shift-JIS, Big5: Vietnamese comes back garbled).
    With ``qrcode.binary`` zbar returns the symbol's bytes untouched. If this libzbar has no
    binary option (older than 0.23), only results that are plain ASCII (all HC1 payloads) are
    trusted, since for ASCII no charset guess can change the bytes.
    """

    _lock = threading.Lock()
    _instance: _Zbar | None = None
    _failed = False

    def __init__(self) -> None:
        import ctypes

        from pyzbar import wrapper

        self._ctypes = ctypes
        self._w = wrapper
        self._configs: list[tuple[int, int, int]] = []
        self.binary = False
        for name in (b"disable", b"qrcode.enable", b"qrcode.binary", b"test-inverted"):
            sym, cfg, val = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
            if wrapper.zbar_parse_config(
                name, ctypes.byref(sym), ctypes.byref(cfg), ctypes.byref(val)
            ):
                continue  # this zbar does not know the option
            self._configs.append((sym.value, cfg.value, val.value))
            if name == b"qrcode.binary":
                self.binary = True
        # Probe once: a scanner must be creatable.
        scanner = wrapper.zbar_image_scanner_create()
        if not scanner:
            raise OSError("zbar cannot create an image scanner")
        wrapper.zbar_image_scanner_destroy(scanner)

    @classmethod
    def get(cls) -> _Zbar | None:
        """The shared binding, or None when pyzbar or libzbar is missing."""
        if cls._instance is None and not cls._failed:
            with cls._lock:
                if cls._instance is None and not cls._failed:
                    try:
                        cls._instance = cls()
                    except (ImportError, OSError, AttributeError):
                        cls._failed = True
        return cls._instance

    def read(self, gray: U8Array) -> list[tuple[bytes, tuple[Point, ...] | None]]:
        w, ctypes = self._w, self._ctypes
        height, width = gray.shape
        pixels = np.ascontiguousarray(gray).tobytes()
        scanner = w.zbar_image_scanner_create()
        if not scanner:
            return []
        image = w.zbar_image_create()
        out: list[tuple[bytes, tuple[Point, ...] | None]] = []
        try:
            if not image:
                return []
            for sym, cfg, val in self._configs:
                w.zbar_image_scanner_set_config(scanner, sym, cfg, val)
            w.zbar_image_set_format(image, 0x30303859)  # fourcc "Y800": 8-bit gray
            w.zbar_image_set_size(image, width, height)
            w.zbar_image_set_data(image, ctypes.cast(pixels, ctypes.c_void_p), len(pixels), None)
            if w.zbar_scan_image(scanner, image) <= 0:
                return []
            symbol = w.zbar_image_first_symbol(image)
            while symbol:
                raw = ctypes.string_at(
                    w.zbar_symbol_get_data(symbol), w.zbar_symbol_get_data_length(symbol)
                )
                if self.binary or raw.isascii():
                    n = w.zbar_symbol_get_loc_size(symbol)
                    pts = tuple(
                        (int(w.zbar_symbol_get_loc_x(symbol, i)),
                         int(w.zbar_symbol_get_loc_y(symbol, i)))
                        for i in range(n)
                    )  # fmt: skip
                    # zbar lists the corners top-left, bottom-left, bottom-right, top-right.
                    corners = (pts[0], pts[3], pts[2], pts[1]) if len(pts) == 4 else None
                    out.append((raw, corners))
                symbol = w.zbar_symbol_next(symbol)
        finally:
            if image:
                w.zbar_image_destroy(image)
            w.zbar_image_scanner_destroy(scanner)
        return out


def _zxing_available() -> bool:
    """True when zxing-cpp can be imported (imported here, once it can)."""
    try:
        import zxingcpp  # noqa: F401
    except (ImportError, OSError):
        return False
    return True


_DECODER_HINT: Final = ("install the zbar library (sudo apt install libzbar0) or the "
                        "zxing-cpp Python package (pip install zxing-cpp) on this machine")


def _usable_engines(engines: Sequence[Engine]) -> tuple[Engine, ...]:
    """The decoders of ``engines`` that can be loaded; zbar is loaded only when zxing-cpp
    is not asked for or cannot be (otherwise on its first rung). Raises
    :class:`~vaxqr.errors.SetupError` when none can."""
    if "zxing" in engines and _zxing_available():
        return tuple(engines)
    if "zbar" in engines and _Zbar.get() is not None:
        return ("zbar",)
    names = [{"zxing": "zxing-cpp", "zbar": "zbar (pyzbar and libzbar0)"}[e]
             for e in dict.fromkeys(engines)]
    missing = (f"neither {' nor '.join(names)} can" if len(names) > 1 else
               f"{names[0]} cannot")
    raise SetupError(f"no QR decoder available: {missing} be loaded on this machine",
                     hint=_DECODER_HINT)


def zbar_available() -> bool:
    """True when zbar (pyzbar + libzbar) can be used as the fallback decoder."""
    return _Zbar.get() is not None


def zbar_binary() -> bool:
    """True when zbar returns raw bytes (its ``binary`` option exists, libzbar >= 0.23)."""
    zbar = _Zbar.get()
    return zbar is not None and zbar.binary


# --- the ladder -------------------------------------------------------------------------

_UPSCALE_MAX_PIXELS: Final = 2_500_000  # upscaled variants stay under 10 Mpx
_WORK_MAX_PIXELS: Final = 6_000_000  # preprocessing runs on a reduced copy above this
#: zbar reads the picture itself up to this size (a phone's 12-megapixel photo whole), a copy
#: reduced by a whole factor to at most this above it. zbar takes ~85 ms a megapixel of
#: noise: its rung on a 49-megapixel picture of random blocks (a 1 MB PNG) took 4.2 of the
#: 7.3 s of a picture with no QR code read.
_ZBAR_FULL_MAX_PIXELS: Final = 16_000_000


@dataclass(frozen=True)
class _Rung:
    name: str
    engine: Engine
    prepare: Callable[[PILImage.Image], PILImage.Image | None]  # None: skip this rung
    scale: float = 1.0  # prepared pixels per original pixel
    options: tuple[tuple[str, Any], ...] = ()


def _identity(img: PILImage.Image) -> PILImage.Image:
    return img


def _reduce2(img: PILImage.Image) -> PILImage.Image | None:
    return img.reduce(2) if min(img.size) >= 200 else None


def _blur(radius: float) -> Callable[[PILImage.Image], PILImage.Image]:
    def prepare(img: PILImage.Image) -> PILImage.Image:
        from PIL import ImageFilter

        return img.filter(ImageFilter.GaussianBlur(radius))

    return prepare


def _sharpen(img: PILImage.Image) -> PILImage.Image:
    from PIL import ImageFilter

    return img.filter(ImageFilter.UnsharpMask(radius=3, percent=300, threshold=0))


def _median(img: PILImage.Image) -> PILImage.Image:
    from PIL import ImageFilter

    return img.filter(ImageFilter.MedianFilter(3))


def _upscale(blur: float) -> Callable[[PILImage.Image], PILImage.Image | None]:
    def prepare(img: PILImage.Image) -> PILImage.Image | None:
        from PIL import Image, ImageFilter

        if img.width * img.height > _UPSCALE_MAX_PIXELS:
            return None
        if blur:
            img = img.filter(ImageFilter.GaussianBlur(blur))
        return img.resize((img.width * 2, img.height * 2), Image.Resampling.BICUBIC)

    return prepare


def _threshold_local(img: PILImage.Image) -> PILImage.Image:
    """Binarise against the local mean (window ~1/30 of the picture): uneven light, creases."""
    from PIL import Image, ImageFilter

    radius = max(8, min(img.size) // 30)
    gray = np.asarray(img, dtype=np.int16)
    mean = np.asarray(img.filter(ImageFilter.BoxBlur(radius)), dtype=np.int16)
    return Image.fromarray(np.where(gray > mean - 3, 255, 0).astype(np.uint8))


def _threshold_otsu(img: PILImage.Image) -> PILImage.Image:
    """Binarise at the Otsu threshold of the histogram (global, for even light)."""
    hist = np.asarray(img.histogram(), dtype=np.float64)
    levels = np.arange(256, dtype=np.float64)
    weight = np.cumsum(hist)
    total = weight[-1]
    mean = np.cumsum(hist * levels)
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mean[-1] * weight - mean * total) ** 2 / (weight * (total - weight))
    threshold = int(np.nanargmax(between)) if np.isfinite(between).any() else 127
    return img.point(lambda v: 255 if v > threshold else 0)


_blur1: Final = _blur(1.0)  # one function for both rungs: its picture is made once

# Measured on tests/degrade.py (benchmarks/bench_qr.py): zxing-cpp reads ~89% of the degraded
# corpus on its own; each later rung is the one that rescued the most of what was still
# unread per millisecond spent. zbar rungs come after the zxing ones: they add diversity
# (different binarisation and finder) for pictures unlike the corpus.
_LADDER: Final[tuple[_Rung, ...]] = (
    _Rung("zxing", "zxing", _identity),
    _Rung("zxing-reduce2", "zxing", _reduce2, scale=0.5),
    _Rung("zxing-blur1", "zxing", _blur1),
    _Rung("zxing-sharpen", "zxing", _sharpen),
    _Rung("zbar-blur1", "zbar", _blur1),
    _Rung("zxing-up2-blur1.5", "zxing", _upscale(1.5), 2.0, (("try_downscale", False),)),
    _Rung("zxing-up2", "zxing", _upscale(0.0), 2.0, (("try_downscale", False),)),
    _Rung("zbar", "zbar", _identity),
    _Rung("zbar-median", "zbar", _median),
    _Rung("zbar-sharpen", "zbar", _sharpen),
    _Rung("zxing-local-threshold", "zxing", _threshold_local),
    _Rung("zbar-local-threshold", "zbar", _threshold_local),
    _Rung("zbar-otsu", "zbar", _threshold_otsu),
)


def _pure_symbol_fast_path(gray: PILImage.Image, arr: U8Array) -> list[QrResult] | None:
    """A generated two-tone picture holding one symbol: zxing's pure mode reads it in ~0.3 ms.

    Accepted only when the symbol spans at least 85% of the picture both ways, so there is
    no room left for a second code that pure mode would not look for.
    """
    if gray.getcolors(2) is None:
        return None
    found = _zxing_read(arr, is_pure=True)
    if len(found) != 1:
        return None
    raw, corners = found[0]
    if corners is None:
        return None
    xs = [x for x, _ in corners]
    ys = [y for _, y in corners]
    if max(xs) - min(xs) < 0.85 * gray.width or max(ys) - min(ys) < 0.85 * gray.height:
        return None
    return [QrResult.from_raw(raw, position=_corners(corners, 1.0, (0, 0)), engine="zxing")]


def _corners(
    pts: tuple[Point, ...] | None, scale: float, offset: tuple[int, int]
) -> tuple[Point, Point, Point, Point] | None:
    if pts is None or len(pts) != 4:
        return None
    ox, oy = offset
    a, b, c, d = ((round(x / scale) + ox, round(y / scale) + oy) for x, y in pts)
    return (a, b, c, d)


def _iter_rungs(engines: Sequence[Engine]) -> Iterator[_Rung]:
    return (rung for rung in _LADDER if rung.engine in engines)


def decode_image(
    source: bytes | bytearray | memoryview | str | os.PathLike[str] | PILImage.Image,
    *,
    min_codes: int = 1,
    engines: Sequence[Engine] = ("zxing", "zbar"),
) -> list[QrResult]:
    """Every QR code found in a picture, in the order found (duplicates removed).

    ``source`` is the encoded picture (bytes), a path to it, or a PIL image. The readers
    try a ladder of decoders and preprocessings (see the module docstring) and stop at the
    first rung after which at least ``min_codes`` distinct codes have been found; ask for
    ``min_codes=2`` when the picture should hold a credential *and* a CCCD card QR.
    ``engines`` restricts the decoders (``("zxing",)``, ``("zbar",)``); one that cannot be
    loaded (pyzbar or libzbar, zxing-cpp missing) is skipped silently.

    Raises :class:`~vaxqr.errors.DecodeError` (step ``picture``) when the input is not a
    readable picture (not an image, empty, truncated, over :data:`MAX_PIXELS` or
    :data:`MAX_FILE_BYTES`) or holds no readable QR code,
    :class:`~vaxqr.errors.StorageError` when a path cannot be read, and
    :class:`~vaxqr.errors.SetupError` when none of ``engines`` can be loaded (checked
    before the picture is read).
    """
    unknown = set(engines) - {"zxing", "zbar"}
    if unknown or not engines:
        raise ValidationError(f"unknown QR decoders: {sorted(unknown) or 'none given'}")
    engines = _usable_engines(engines)
    gray = _grayscale(*_open_image(source))
    arr = _pixels(gray)
    gray = _shared(arr)  # the decoded picture is let go: one copy of the pixels, not two
    if "zxing" in engines and min_codes <= 1:
        fast = _pure_symbol_fast_path(gray, arr)
        if fast is not None:
            return fast
    results: dict[bytes, QrResult] = {}
    work, work_scale = gray, 1.0
    if gray.width * gray.height > _WORK_MAX_PIXELS:
        factor = int(np.ceil(np.sqrt(gray.width * gray.height / _WORK_MAX_PIXELS)))
        work, work_scale = gray.reduce(factor), 1.0 / factor
    # a preparation two rungs share (blur, sharpen, local threshold: one for zxing, one
    # for zbar) is made once and kept until its last rung: ~0.2 s of a 49-megapixel
    # picture's ladder, ~0.12 s of a 3-megapixel one's
    made: dict[Callable[..., Any], U8Array | None] = {}
    uses = Counter(rung.prepare for rung in _iter_rungs(engines))
    for rung in _iter_rungs(engines):
        uses[rung.prepare] -= 1
        zbar = _Zbar.get() if rung.engine == "zbar" else None  # imported on first use
        if rung.engine == "zbar" and zbar is None:
            continue
        prepared: U8Array | None
        if rung.prepare is _identity and zbar is not None and arr.size > _ZBAR_FULL_MAX_PIXELS:
            factor = int(np.ceil(np.sqrt(arr.size / _ZBAR_FULL_MAX_PIXELS)))
            prepared, scale = np.asarray(gray.reduce(factor), dtype=np.uint8), 1.0 / factor
        elif rung.prepare is _identity:
            prepared, scale = arr, 1.0
        else:
            if rung.prepare in made:
                prepared = made.pop(rung.prepare) if not uses[rung.prepare] else \
                    made[rung.prepare]
            else:
                picture = rung.prepare(work)
                prepared = None if picture is None else np.asarray(picture, dtype=np.uint8)
                if uses[rung.prepare]:
                    made[rung.prepare] = prepared
            scale = rung.scale * work_scale
        if prepared is None:
            continue
        if zbar is None:
            found = _zxing_read(prepared, **dict(rung.options))
        else:
            found = zbar.read(prepared)
        for raw, pts in found:
            if raw not in results:
                results[raw] = QrResult.from_raw(
                    raw, position=_corners(pts, scale, (0, 0)), engine=rung.engine
                )
        if len(results) >= max(1, min_codes):
            break
    if not results:
        raise DecodeError(
            "no QR code found in the picture",
            step=_PICTURE,
            hint="photograph the code flat, in focus and filling most of the frame",
        )
    return list(results.values())


def decode_one(
    source: bytes | bytearray | memoryview | str | os.PathLike[str] | PILImage.Image,
) -> QrResult:
    """The first QR code found in a picture (see :func:`decode_image`)."""
    return decode_image(source)[0]
