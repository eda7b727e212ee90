"""Printable credential cards: the holder's data in Vietnamese and English, and the QR code.

A commune clerk prints one card per citizen (``vaxqr issue --card``). The card is an A6
landscape page (148 x 105 mm) rendered at 300 dpi (1748 x 1240 px), laid out in the style
of the 5772/QĐ-BYT vaccine passport: a bilingual title, bilingual field labels ("Họ và tên /
Name", "Ngày sinh / Date of birth", ...) with the values under them, and the QR code on the
right. :func:`render_card` returns PNG or PDF bytes; nothing is written to disk.

The QR code
    The encoder's module matrix (:func:`vaxqr.qrencode.encode_matrix`), or a picture
    (e.g. :func:`vaxqr.qr.to_image`, or segno's) that must be a clean rendering: every
    module an integer square of pixels, whose module grid is recovered. It is redrawn
    with an integer number of printer pixels per module (no resampling, so modules stay
    exactly square), sized so the symbol's printed side is 35-42 mm (diagonal at most
    60 mm, the DCC recommendation; up to 45 mm when no whole number of pixels fits), with a
    fresh 4-module white quiet zone that no text or line enters.

Fonts
    DejaVu Sans (Debian/Ubuntu package ``fonts-dejavu-core``) has every Vietnamese letter.
    It is looked up in a few usual places (or ``$VAXQR_FONT_DIR``) and loaded once. Before
    drawing, every character of the holder's data is checked with :func:`missing_glyphs`,
    so a character the font lacks is an error, never a silent box on a printed card.

Text fitting
    Long values are wrapped at spaces and shrunk down to a floor size; a value that still
    does not fit (a 300-character "name") is cut with an ellipsis. No text ever leaves its
    column: :func:`compose_card` returns the ink box of every line it drew.

Colours
    The card is painted in 256 colours: white, black (the QR code), the inks and the flat
    colours exactly; 160 neutral greys for the antialiased edges of the (grey) text; the
    accent (green, red on a demo card) blended over white at even steps, for the title's
    edges and the demo band's white text. An antialiased pixel moves by at most 1 of 255
    per channel from what Pillow blends in RGB (the test draws both); the file is a palette
    PNG (or an ``/Indexed`` PDF image), a third of the bytes of RGB to deflate: ~7 ms a
    card against ~15 in RGB, ~70 kB against ~133. What never changes from card to card
    (the frame, rules, band, and each line of text many cards share) is drawn once per
    process and copied.

PDF
    Pillow's PDF writer stores RGB pictures as JPEG (quality 75), which blurs module edges
    and text. The PDF here is a minimal one-page PDF 1.4 written by hand around the PNG's
    own zlib stream (``FlateDecode`` with PNG predictors): lossless, small and byte-for-byte
    deterministic (no dates in it).
"""

from __future__ import annotations

import math
import os
import struct
import threading
import unicodedata
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from types import ModuleType
from typing import Final

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFont

from .errors import StorageError, ValidationError
from .qrencode import QrMatrix, png_chunk

__all__ = [
    "CARD_DPI",
    "CARD_SIZE_PX",
    "FONT_CANDIDATES",
    "CardData",
    "CardImage",
    "compose_card",
    "find_fonts",
    "missing_glyphs",
    "render_card",
]

Box = tuple[int, int, int, int]
BoolArray = npt.NDArray[np.bool_]

#: Resolution of the card image (dots per inch).
CARD_DPI: Final = 300
#: A6 landscape, 148 x 105 mm, at :data:`CARD_DPI`.
CARD_SIZE_PX: Final = (round(148 / 25.4 * CARD_DPI), round(105 / 25.4 * CARD_DPI))

#: Where DejaVu Sans lives on common systems: (regular, bold) per directory.
FONT_CANDIDATES: Final[tuple[str, ...]] = (
    "/usr/share/fonts/truetype/dejavu",  # Debian, Ubuntu (fonts-dejavu-core)
    "/usr/share/fonts/dejavu-sans-fonts",  # Fedora, RHEL
    "/usr/share/fonts/dejavu",  # older Fedora, openSUSE
    "/usr/share/fonts/TTF",  # Arch
    "/usr/local/share/fonts/dejavu",  # FreeBSD
    "/usr/local/share/fonts/truetype/dejavu",
    "/opt/homebrew/share/fonts",  # macOS, Homebrew
    "/Library/Fonts",
)
_REGULAR: Final = "DejaVuSans.ttf"
_BOLD: Final = "DejaVuSans-Bold.ttf"
_FONT_ENV: Final = "VAXQR_FONT_DIR"

_MM: Final = CARD_DPI / 25.4  # pixels per millimetre
_QUIET_MODULES: Final = 4
_QR_SIDE_MIN_PX: Final = math.ceil(35 * _MM)  # symbol side without quiet zone
_QR_SIDE_PREF_MAX_PX: Final = math.floor(60 / math.sqrt(2) * _MM)  # 60 mm diagonal
_QR_SIDE_MAX_PX: Final = math.floor(45 * _MM)

# Colours
_INK: Final = (17, 17, 17)
_LABEL_VI: Final = (80, 80, 80)
_LABEL_EN: Final = (125, 125, 125)
_ACCENT: Final = (11, 93, 75)  # dark green
_RULE: Final = (200, 210, 206)
_DEMO_RED: Final = (200, 16, 46)
_WHITE: Final = (255, 255, 255)

# Layout, in pixels at 300 dpi (1 pt = 4.17 px)
_FRAME_INSET: Final = 36  # 3 mm: a thin frame to cut along
_MARGIN: Final = 78  # content stays 6.6 mm from the edge (printers' unprintable border)
_GAP: Final = 44  # between the text column and the QR block
_LABEL_PX: Final = 27
_VALUE_PX: Final = 44
_NAME_PX: Final = 60
_TITLE_PX: Final = 60
_SUBTITLE_PX: Final = 38
_SMALL_PX: Final = 26
_MIN_PX: Final = 24
_NAME_MIN_PX: Final = 32
_FIELD_GAP_MAX: Final = 40

_TITLE_VI: Final = "CHỨNG NHẬN TIÊM CHỦNG COVID-19"
_TITLE_EN: Final = "COVID-19 VACCINATION CERTIFICATE"
_DEMO_TEXT: Final = "DEMO ONLY – NOT A VALID CREDENTIAL"
_DEMO_TEXT_VI: Final = "MẪU THỬ – KHÔNG CÓ GIÁ TRỊ"
_FOOTER: Final = (
    "Xuất trình kèm giấy tờ tùy thân",
    "Present together with an identity document",
)
_QR_CAPTION: Final = ("Quét mã để xác thực", "Scan to verify")

_LABELS: Final = {
    "name": ("Họ và tên", "Name"),
    "dob": ("Ngày sinh", "Date of birth"),
    "dose": ("Mũi tiêm", "Dose"),
    "vaccine": ("Vắc xin", "Vaccine"),
    "date": ("Ngày tiêm", "Date"),
    "valid": ("Có giá trị đến", "Valid until"),
    "issuer": ("Nơi cấp", "Issued by"),
    "uvci": ("Mã số chứng nhận", "Certificate ID"),
}


# --------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class CardData:
    """What the card shows. Dates are ISO 8601 (``YYYY-MM-DD``) and printed ``DD/MM/YYYY``.

    ``dob`` may also be ``YYYY-MM`` or ``YYYY`` (EU DCC allows a partial date of birth).
    Text is normalised to NFC and its runs of white space collapsed when drawn.
    """

    full_name: str
    dob: str
    dose: int
    doses: int
    vaccine: str
    vaccination_date: str
    commune: str
    province: str
    uvci: str
    valid_until: str
    demo: bool = False


@dataclass(frozen=True, slots=True)
class CardImage:
    """A composed card before encoding, with where things went (for checks and previews).

    ``text_boxes`` holds the ink box ``(left, top, right, bottom)`` of every line of text
    drawn; ``text_area`` is the box all of it stays in. ``qr_box`` is the QR code with its
    quiet zone, ``module_px`` the printer pixels per module, ``modules`` the symbol's side in
    modules (without the quiet zone).
    """

    image: Image.Image
    text_boxes: tuple[Box, ...]
    text_area: Box
    qr_box: Box
    module_px: int
    modules: int


_NO_IMAGE: Final = Image.new("P", (1, 1))  # a laid-out card's, before it is painted


# --------------------------------------------------------------------------------------
# Fonts and glyph coverage
# --------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def find_fonts() -> tuple[str, str]:
    """Paths of DejaVu Sans regular and bold, searched once.

    ``$VAXQR_FONT_DIR`` is tried first, then :data:`FONT_CANDIDATES`.

    Raises:
        StorageError: neither place has both files.
    """
    dirs: list[str] = []
    env = os.environ.get(_FONT_ENV)
    if env:
        dirs.append(env)
    dirs.extend(FONT_CANDIDATES)
    for d in dirs:
        regular, bold = os.path.join(d, _REGULAR), os.path.join(d, _BOLD)
        if os.path.isfile(regular) and os.path.isfile(bold):
            return regular, bold
    raise StorageError(
        f"no font with every Vietnamese letter found ({_REGULAR} and {_BOLD} in {', '.join(dirs)})",
        hint=f"install fonts-dejavu-core (apt-get install fonts-dejavu-core), or set "
        f"{_FONT_ENV} to a folder holding {_REGULAR} and {_BOLD}",
    )


@lru_cache(maxsize=128)
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    """A FreeType font, loaded once per (path, size); basic layout (no Raqm dependency)."""
    try:
        return ImageFont.truetype(path, size, layout_engine=ImageFont.Layout.BASIC)
    except OSError as exc:
        raise StorageError(
            f"cannot load font {path}: {exc}", hint="install fonts-dejavu-core"
        ) from exc


_PROBE_PX: Final = 40
#: A noncharacter: no font maps it, so it always renders the font's .notdef glyph.
_NOTDEF_PROBE: Final = "\U0010ffff"


def _glyph_signature(font: ImageFont.FreeTypeFont, ch: str) -> tuple[float, bytes]:
    """Advance and rendered pixels of one character, drawn at a fixed origin."""
    side = 3 * _PROBE_PX
    im = Image.new("L", (side, side), 0)
    ImageDraw.Draw(im).text((_PROBE_PX, _PROBE_PX), ch, font=font, fill=255)
    return font.getlength(ch), im.tobytes()


@lru_cache(maxsize=8)
def _notdef_signature(path: str) -> tuple[float, bytes]:
    return _glyph_signature(_font(path, _PROBE_PX), _NOTDEF_PROBE)


@lru_cache(maxsize=8192)
def _has_glyph(path: str, ch: str) -> bool:
    cat = unicodedata.category(ch)
    if cat in ("Cc", "Cs", "Cn") and ch != " ":
        return False  # control characters, lone surrogates, unassigned: nothing to print
    return _glyph_signature(_font(path, _PROBE_PX), ch) != _notdef_signature(path)


def missing_glyphs(text: str, font_path: str | None = None) -> set[str]:
    """The characters of ``text`` that the font cannot draw (they would print as a box).

    FreeType renders an unmapped character with the font's ``.notdef`` glyph (a box in
    DejaVu); each character is rendered and compared, pixels and advance, with what a
    noncharacter (U+10FFFF, which no font maps) renders. Control characters and unassigned
    code points are always reported. The text is checked as given (normalise it first if
    it may be NFD). ``font_path`` defaults to DejaVu Sans (:func:`find_fonts`).

    Raises:
        StorageError: no ``font_path`` given and DejaVu Sans is not installed, or the font
            cannot be loaded.
    """
    path = font_path if font_path is not None else find_fonts()[0]
    return {ch for ch in set(text) if not _has_glyph(path, ch)}


# --------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------


def _clean(value: str) -> str:
    return " ".join(unicodedata.normalize("NFC", value).split())


def _display_date(value: str, field: str, *, partial: bool = False) -> str:
    """``YYYY-MM-DD`` (or an ISO date-time) as ``DD/MM/YYYY``; ``YYYY-MM``/``YYYY`` if partial."""
    s = value.strip()
    try:
        if len(s) == 10:
            d = date.fromisoformat(s)
        elif len(s) > 10 and s[10] in "T ":
            d = datetime.fromisoformat(s).date()
        elif partial and len(s) == 7 and s[4] == "-" and s[:4].isdigit() and s[5:].isdigit():
            if not 1 <= int(s[5:]) <= 12:
                raise ValueError("month out of range")
            return f"{s[5:]}/{s[:4]}"
        elif partial and len(s) == 4 and s.isdigit():
            return s
        else:
            raise ValueError("not YYYY-MM-DD")
    except ValueError as exc:
        raise ValidationError(f"card: {field} {value!r} is not an ISO date ({exc})") from exc
    return f"{d.day:02d}/{d.month:02d}/{d.year:04d}"


def _check_data(data: CardData) -> dict[str, str]:
    """Validate ``data`` and return the display value of every field."""
    if not isinstance(data, CardData):
        raise ValidationError(f"card: expected CardData, got {type(data).__name__}")
    for name in ("dose", "doses"):
        v = getattr(data, name)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValidationError(f"card: {name} must be a positive whole number, got {v!r}")
    texts = {
        "full_name": data.full_name,
        "vaccine": data.vaccine,
        "commune": data.commune,
        "province": data.province,
        "uvci": data.uvci,
    }
    for name, v in texts.items():
        if not isinstance(v, str):
            raise ValidationError(f"card: {name} must be text, got {type(v).__name__}")
    clean = {k: _clean(v) for k, v in texts.items()}
    for name in ("full_name", "vaccine", "commune", "uvci"):
        if not clean[name]:
            raise ValidationError(f"card: {name} is empty")
    issuer = clean["commune"]
    if clean["province"]:
        issuer = f"{issuer}, {clean['province']}"
    return {
        "name": clean["full_name"],
        "dob": _display_date(data.dob, "dob", partial=True),
        "dose": f"{data.dose}/{data.doses}",
        "vaccine": clean["vaccine"],
        "date": _display_date(data.vaccination_date, "vaccination_date"),
        "valid": _display_date(data.valid_until, "valid_until"),
        "issuer": issuer,
        "uvci": clean["uvci"],
    }


def _check_glyphs(values: dict[str, str], paths: Sequence[str]) -> None:
    """Refuse any value with a character the regular or bold font lacks."""
    names = {
        "name": "full_name",
        "vaccine": "vaccine",
        "issuer": "commune/province",
        "uvci": "uvci",
    }
    for key, field in names.items():
        missing: set[str] = set()
        for path in paths:
            missing |= missing_glyphs(values[key], path)
        if missing:
            shown = ", ".join(f"U+{ord(c):04X} {c!r}" for c in sorted(missing))
            raise ValidationError(
                f"card: {field} has characters the card font cannot print: {shown}",
                hint="correct the record (a Vietnamese name needs only Latin letters "
                "with Vietnamese diacritics)",
            )


# --------------------------------------------------------------------------------------
# QR grid
# --------------------------------------------------------------------------------------


def _qr_modules(qr_image: Image.Image | QrMatrix) -> BoolArray:
    """The QR symbol's module grid (True = dark), without any quiet zone.

    Raises:
        ValidationError: blank picture, or not a clean integer-scaled square grid.
    """
    if isinstance(qr_image, QrMatrix):  # the encoder's own grid: nothing to recover
        return qr_image.modules
    if not isinstance(qr_image, Image.Image):
        raise ValidationError(f"card: expected a PIL image, got {type(qr_image).__name__}")
    im = qr_image
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(bg, rgba)
    dark = np.asarray(im.convert("L")) < 128
    rows, cols = np.flatnonzero(dark.any(axis=1)), np.flatnonzero(dark.any(axis=0))
    if rows.size == 0:
        raise ValidationError("card: the QR picture is blank")
    crop = dark[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    h, w = crop.shape
    # Every run boundary of a clean rendering falls on a multiple of the module size.
    xs = np.flatnonzero((crop[:, 1:] != crop[:, :-1]).any(axis=0)) + 1
    ys = np.flatnonzero((crop[1:, :] != crop[:-1, :]).any(axis=1)) + 1
    m = int(np.gcd.reduce(np.concatenate(([w, h], xs, ys)).astype(np.int64)))
    grid = crop[m // 2 :: m, m // 2 :: m]
    n = grid.shape[0]
    if (
        h != w
        or not np.array_equal(np.repeat(np.repeat(grid, m, axis=0), m, axis=1), crop)
        or not (21 <= n <= 177 and (n - 17) % 4 == 0)
    ):
        raise ValidationError(
            "card: the QR picture is not a clean QR code (square modules of whole pixels)",
            hint="pass the image from vaxqr.qr.to_image(), not a resampled copy",
        )
    return grid


def _module_px(n: int) -> int:
    """Printer pixels per module for an ``n``-module symbol (see the module docstring)."""
    p = max(1, _QR_SIDE_PREF_MAX_PX // n)
    if n * p < _QR_SIDE_MIN_PX and n * (p + 1) <= _QR_SIDE_MAX_PX:
        p += 1
    return p


def _qr_pixels(grid: BoolArray, p: int, dark: int, light: int) -> npt.NDArray[np.uint8]:
    """The symbol with a 4-module quiet zone, ``p`` pixels per module, as palette indices
    (``dark``, ``light``): each module repeated, never resampled."""
    padded = np.pad(grid, _QUIET_MODULES, constant_values=False)
    small = np.where(padded, np.uint8(dark), np.uint8(light)).astype(np.uint8)
    return np.repeat(np.repeat(small, p, axis=0), p, axis=1)


# --------------------------------------------------------------------------------------
# Text fitting and drawing
# --------------------------------------------------------------------------------------


def _wrap(text: str, font: ImageFont.FreeTypeFont, width: int) -> list[str]:
    """Greedy word wrap; a word wider than ``width`` is broken between characters."""
    lines: list[str] = []
    line = ""
    for word in text.split(" "):
        candidate = f"{line} {word}" if line else word
        if font.getlength(candidate) <= width:
            line = candidate
            continue
        if line:
            lines.append(line)
        line = ""
        for ch in word:
            if line and font.getlength(line + ch) > width:
                lines.append(line)
                line = ""
            line += ch
    if line or not lines:
        lines.append(line)
    return lines


def _ellipsize(line: str, font: ImageFont.FreeTypeFont, width: int) -> str:
    while line and font.getlength(line + "…") > width:
        line = line[:-1].rstrip()
    return line + "…"


def _sizes(top: int, bottom: int) -> Iterator[int]:
    size = top
    while size > bottom:
        yield size
        size -= 2
    yield bottom


@lru_cache(maxsize=256)
def _fit(
    text: str, path: str, width: int, *, size: int, min_size: int, max_lines: int
) -> tuple[ImageFont.FreeTypeFont, tuple[str, ...]]:
    """The largest font (down to ``min_size``) and lines that fit ``width``.

    One line is preferred down to 80 % of ``size``; then up to ``max_lines`` lines are
    allowed, shrinking to ``min_size``; past that the last line is cut with an ellipsis.
    Cached: a card fits each value twice (measuring, then drawing), and the fixed text
    and the values many cards share (dates, vaccine, commune) once per process.
    """
    for s in _sizes(size, max(min_size, int(size * 0.8))):
        font = _font(path, s)
        if font.getlength(text) <= width:
            return font, (text,)
    for s in _sizes(size, min_size):
        font = _font(path, s)
        lines = _wrap(text, font, width)
        if len(lines) <= max_lines:
            return font, tuple(lines)
    font = _font(path, min_size)
    lines = _wrap(text, font, width)
    return font, (*lines[: max_lines - 1], _ellipsize(lines[max_lines - 1], font, width))


def _line_height(font: ImageFont.FreeTypeFont) -> int:
    ascent, descent = font.getmetrics()
    return ascent + descent


@lru_cache(maxsize=1024)
def _text_bbox(
    font: ImageFont.FreeTypeFont, text: str, anchor: str
) -> tuple[float, float, float, float]:
    """``font.getbbox`` of one line as ``ImageDraw.textbbox`` takes it, relative to the anchor."""
    return font.getbbox(text, "L", anchor=anchor)


_MASK_PAD: Final = 4


@lru_cache(maxsize=256)
def _text_mask(
    font: ImageFont.FreeTypeFont, text: str, anchor: str, fx: float, fy: float
) -> tuple[npt.NDArray[np.uint8], int, int]:
    """The coverage of one line of text drawn with its anchor at ``(fx, fy)`` (fractions of
    a pixel, 0 <= f < 1), as an array of its inked box (0-255, what ``ImageDraw.text``
    blends its fill through), and the array's offset from the pixel the anchor falls in:
    one line is rasterised once per process, however many cards print it."""
    box = font.getbbox(text, "L", anchor=anchor)
    # the picture holds the anchor too: drawn at a negative position, the fraction of a
    # pixel would be taken the other way (int() rounds towards zero)
    left, top = min(0, math.floor(box[0])), min(0, math.floor(box[1]))
    right, bottom = max(0, math.ceil(box[2])), max(0, math.ceil(box[3]))
    pad = _MASK_PAD
    while True:
        x0, y0 = pad - left, pad - top  # where the anchor's pixel falls in the picture
        mask = Image.new("L", (right - left + 2 * pad, bottom - top + 2 * pad), 0)
        ImageDraw.Draw(mask).text((x0 + fx, y0 + fy), text, font=font, fill=255, anchor=anchor)
        ink = mask.getbbox()
        if ink is None:  # blank: a pixel of no coverage
            return _frozen(np.zeros((1, 1), np.uint8)), 0, 0
        if min(ink[:2]) > 0 and ink[2] < mask.width and ink[3] < mask.height:
            return _frozen(np.array(mask.crop(ink))), ink[0] - x0, ink[1] - y0
        pad *= 2  # pragma: no cover - ink beyond getbbox's box by more than a few pixels


@lru_cache(maxsize=256)
def _fit_bilingual(
    vi: str, en: str, width: int, paths: tuple[str, str], size: int
) -> tuple[ImageFont.FreeTypeFont, ImageFont.FreeTypeFont, str, str, float, float]:
    """Fonts, separator and English text of a ``vi / en`` line shrunk to ``width``, the
    advance of its Vietnamese part with the separator, and its whole advance."""
    sep = " / "
    for s in _sizes(size, _MIN_PX):
        f_vi, f_en = _font(paths[1], s), _font(paths[0], s)
        w_vi = f_vi.getlength(vi + sep)
        w = w_vi + f_en.getlength(en)
        if w <= width or s == _MIN_PX:
            break
    if w > width:  # even the smallest size is too wide: keep the Vietnamese only
        en, sep, w = "", "", f_vi.getlength(vi)
        w_vi = w
    return f_vi, f_en, sep, en, w_vi, w


def _frozen(a: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    a.flags.writeable = False  # cached and shared: no caller may change it
    return a


# --------------------------------------------------------------------------------------
# Palette
# --------------------------------------------------------------------------------------

Rgb = tuple[int, int, int]
_GREYS: Final = 160  # neutral greys from the darkest ink to white
_BLACK: Final = (0, 0, 0)  # the QR code's modules


@lru_cache(maxsize=4)
def _palette(accent: Rgb) -> npt.NDArray[np.uint8]:
    """The card's 256 colours: neutral greys (every ink but the accent is a grey, and the
    text is antialiased over white), the accent blended over white at even steps of
    coverage (its title, the demo band's white text over the accent red), and the few
    flat colours exactly. Quantising an antialiased edge to it moves a channel by at most
    1 of 255 (every ink over the colour it is drawn on, at every coverage: a test); flat
    colours, the QR code's modules and solid ink are exact."""
    exact: list[Rgb] = [_BLACK, _WHITE, _INK, _LABEL_VI, _LABEL_EN, _RULE, accent]
    greys = {(v, v, v) for v in np.round(np.linspace(_INK[0], 255, _GREYS)).astype(int)}
    colours = sorted(set(exact) | greys)
    steps = 256 - len(colours)
    a = np.linspace(0, 255, steps + 1)[1:]  # coverage 0 is white, already in
    ramp = _blend(np.array(_WHITE), np.array(accent), a)
    for r, g, b in ramp.tolist():
        if (r, g, b) not in colours:
            colours.append((r, g, b))
    return _frozen(np.array(colours, np.uint8))


def _blend(bg: npt.NDArray[np.int64], ink: npt.NDArray[np.int64],
           coverage: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    """``ImageDraw.text``'s blend of ``ink`` over ``bg`` at each coverage (0-255):
    Pillow's ``(bg * (255 - a) + ink * a) / 255``, rounded as its DIV255 rounds."""
    a = np.round(coverage).astype(np.int64)[:, None]
    t = bg[None, :].astype(np.int64) * (255 - a) + ink[None, :].astype(np.int64) * a + 128
    out: npt.NDArray[np.int64] = ((t >> 8) + t) >> 8
    return out


def _nearest(palette: npt.NDArray[np.uint8],
             colours: npt.NDArray[np.int64]) -> npt.NDArray[np.uint8]:
    """The palette index nearest each colour; a grey goes to the nearest grey (never to a
    faint tint of the accent)."""
    pal = palette.astype(np.int64)
    d = ((colours[:, None, :] - pal[None, :, :]) ** 2).sum(axis=2)
    grey_pal = (pal[:, 0] == pal[:, 1]) & (pal[:, 1] == pal[:, 2])
    grey = (colours[:, 0] == colours[:, 1]) & (colours[:, 1] == colours[:, 2])
    d[np.ix_(grey, ~grey_pal)] = np.iinfo(np.int64).max
    out: npt.NDArray[np.uint8] = d.argmin(axis=1).astype(np.uint8)
    return out


@lru_cache(maxsize=64)
def _ink_lut(accent: Rgb, ink: Rgb, bg: int) -> npt.NDArray[np.uint8]:
    """Palette index of ``ink`` blended over palette colour ``bg`` at each coverage 0-255."""
    palette = _palette(accent)
    blended = _blend(palette[bg].astype(np.int64), np.array(ink), np.arange(256.0))
    lut = _nearest(palette, blended)
    lut[0] = bg  # no coverage: the pixel is left as it is
    return _frozen(lut)


def _index(accent: Rgb, colour: Rgb) -> int:
    """The palette index of a flat colour (exact: every flat colour is in the palette)."""
    return int(_ink_lut(accent, colour, 0)[255])


@lru_cache(maxsize=128)  # ~30 lines a card shares with the others, 3-4 its own
def _text_tile(
    font: ImageFont.FreeTypeFont, text: str, anchor: str, fx: float, fy: float,
    accent: Rgb, ink: Rgb, bg: int,
) -> tuple[npt.NDArray[np.uint8], int, int]:
    """One line of text over a flat colour ``bg``, as palette indices: cached, so a line
    that many cards print (labels, dates, the commune) is looked up once per process."""
    mask, dx, dy = _text_mask(font, text, anchor, fx, fy)
    return _frozen(_ink_lut(accent, ink, bg)[mask]), dx, dy


# --------------------------------------------------------------------------------------
# Canvas
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Text:
    xy: tuple[float, float]
    text: str
    font: ImageFont.FreeTypeFont
    fill: Rgb
    anchor: str


@dataclass(frozen=True, slots=True)
class _Qr:
    grid: BoolArray
    p: int
    xy: tuple[int, int]


#: A shape: (kind "rounded" | "line" | "rect", box, colour, line width, corner radius)
_Shape = tuple[str, Box, Rgb, int, int]


@lru_cache(maxsize=8)
def _base(size: tuple[int, int], accent: Rgb, shapes: tuple[_Shape, ...]) -> npt.NDArray[np.uint8]:
    """White with the card's shapes (frame, rules, the demo band) drawn by Pillow, as
    palette indices: the same on every card of a kind, drawn once per process."""
    im = Image.new("L", size, _index(accent, _WHITE))
    draw = ImageDraw.Draw(im)
    for kind, box, colour, width, radius in shapes:
        if kind == "rounded":
            draw.rounded_rectangle(box, radius=radius, outline=_index(accent, colour), width=width)
        elif kind == "line":
            draw.line(box, fill=_index(accent, colour), width=width)
        else:
            draw.rectangle(box, fill=_index(accent, colour))
    return _frozen(np.array(im))


class _Canvas:
    """The card being laid out: the shapes and lines of text to draw, and the ink box of
    every line. :meth:`paint` draws them, as palette indices (:func:`_palette`), into an
    array: the shapes first (under everything; no text overlaps them but the demo band's
    own), then the text and the QR code in order."""

    def __init__(self, size: tuple[int, int], accent: Rgb = _ACCENT) -> None:
        self.size, self.accent = size, accent
        self.shapes: list[_Shape] = []
        self.ops: list[_Text | _Qr] = []
        self.boxes: list[Box] = []
        self.dry = False  # measure only: draw nothing, record nothing

    def rounded_rectangle(self, box: Box, radius: int, outline: Rgb, width: int) -> None:
        self.shapes.append(("rounded", box, outline, width, radius))

    def line(self, box: Box, fill: Rgb, width: int) -> None:
        self.shapes.append(("line", box, fill, width, 0))

    def rectangle(self, box: Box, fill: Rgb) -> None:
        self.shapes.append(("rect", box, fill, 0, 0))

    def qr(self, grid: BoolArray, p: int, xy: tuple[int, int]) -> None:
        self.ops.append(_Qr(grid, p, xy))

    def text(
        self,
        xy: tuple[float, float],
        text: str,
        font: ImageFont.FreeTypeFont,
        fill: Rgb,
        anchor: str = "la",
    ) -> None:
        """Draw one line of text as ``ImageDraw.text`` would, and record its ink box."""
        if self.dry:
            return
        x, y = xy
        left, top, right, bottom = _text_bbox(font, text, anchor)
        self.ops.append(_Text(xy, text, font, fill, anchor))
        if text.strip():
            self.boxes.append(
                (math.floor(x + left), math.floor(y + top), math.ceil(x + right),
                 math.ceil(y + bottom))
            )

    def paint(self, out: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        """Draw everything into ``out`` (height x width palette indices); return the palette."""
        accent = self.accent
        np.copyto(out, _base(self.size, accent, tuple(self.shapes)))
        for op in self.ops:
            if isinstance(op, _Qr):
                qx, qy = op.xy
                pixels = _qr_pixels(op.grid, op.p, _index(accent, _BLACK), _index(accent, _WHITE))
                out[qy : qy + pixels.shape[0], qx : qx + pixels.shape[1]] = pixels
            else:
                self._paint_text(out, op)
        return _palette(accent)

    def _paint_text(self, out: npt.NDArray[np.uint8], op: _Text) -> None:
        x, y = op.xy
        ix, iy = math.floor(x), math.floor(y)
        key = (op.font, op.text, op.anchor, x - ix, y - iy)
        mask, dx, dy = _text_mask(*key)
        x0, y0 = ix + dx, iy + dy
        h, w = mask.shape
        # only the part on the canvas
        cx0, cy0 = max(0, -x0), max(0, -y0)
        cx1, cy1 = min(w, out.shape[1] - x0), min(h, out.shape[0] - y0)
        if cx0 >= cx1 or cy0 >= cy1:
            return
        region = out[y0 + cy0 : y0 + cy1, x0 + cx0 : x0 + cx1]
        bg = int(region[0, 0])
        if (cx0, cy0, cx1, cy1) == (0, 0, w, h) and not (region != bg).any():
            tile, _dx, _dy = _text_tile(*key, self.accent, op.fill, bg)  # the usual case
            np.copyto(region, tile)
            return
        cov = mask[cy0:cy1, cx0:cx1]
        inked = cov > 0
        under = region.copy()
        for bg in np.unique(under[inked]):  # over other ink: blend with each colour there
            where = inked & (under == bg)
            region[where] = _ink_lut(self.accent, op.fill, int(bg))[cov[where]]

    def bilingual(
        self,
        x: float,
        y: float,
        vi: str,
        en: str,
        width: int,
        paths: tuple[str, str],
        *,
        size: int,
        anchor: str = "la",
    ) -> int:
        """Draw ``vi / en`` on one line (shrunk to ``width``); return its height."""
        f_vi, f_en, sep, en, w_vi, w = _fit_bilingual(vi, en, width, paths, size)
        if anchor == "ma":
            x -= w / 2
        self.text((x, y), vi + sep, f_vi, _LABEL_VI)
        if en:
            self.text((x + w_vi, y), en, f_en, _LABEL_EN)
        return _line_height(f_vi)


# --------------------------------------------------------------------------------------
# Composition
# --------------------------------------------------------------------------------------


def compose_card(data: CardData, qr_image: Image.Image | QrMatrix) -> CardImage:
    """Lay the card out and draw it (:data:`CARD_SIZE_PX`, a ``P`` image: 256 colours, see
    :func:`render_card`).

    Raises:
        ValidationError: bad dates or dose numbers, empty name, a character the font
            cannot draw, or a QR picture that is not a clean QR code.
        StorageError: DejaVu Sans is not installed.
    """
    c, ci = _layout(data, qr_image)
    width, height = CARD_SIZE_PX
    pixels = np.empty((height, width), np.uint8)
    palette = c.paint(pixels)
    image = Image.fromarray(pixels)
    image.putpalette(palette.tobytes())
    return CardImage(image, ci.text_boxes, ci.text_area, ci.qr_box, ci.module_px, ci.modules)


def _layout(data: CardData, qr_image: Image.Image | QrMatrix) -> tuple[_Canvas, CardImage]:
    """The card laid out on a canvas not yet painted, and where things go (the
    :class:`CardImage` of it, its ``image`` a placeholder)."""
    values = _check_data(data)
    paths = find_fonts()
    _check_glyphs(values, paths)
    regular, bold = paths
    grid = _qr_modules(qr_image)
    n = grid.shape[0]
    p = _module_px(n)

    width, height = CARD_SIZE_PX
    accent = _DEMO_RED if data.demo else _ACCENT
    c = _Canvas((width, height), accent)

    # Frame to cut along.
    c.rounded_rectangle(
        (_FRAME_INSET, _FRAME_INSET, width - 1 - _FRAME_INSET, height - 1 - _FRAME_INSET),
        radius=36,
        outline=accent,
        width=5,
    )
    left, right = _MARGIN, width - _MARGIN
    inner = right - left

    # Title: Vietnamese in bold, English under it, a rule.
    y = _MARGIN + 4  # accents on capitals rise a few pixels above the ascender
    f, lines = _fit(_TITLE_VI, bold, inner, size=_TITLE_PX, min_size=_MIN_PX, max_lines=1)
    c.text((width / 2, y), lines[0], f, accent, anchor="ma")
    y += _line_height(f)
    f, lines = _fit(_TITLE_EN, regular, inner, size=_SUBTITLE_PX, min_size=_MIN_PX, max_lines=1)
    c.text((width / 2, y), lines[0], f, accent, anchor="ma")
    y += _line_height(f) + 16
    c.line((left, y, right, y), fill=accent, width=4)
    body_top = y + 34

    # Bottom: the demo band, or a footer line.
    band_h = 104
    bottom = height - _MARGIN
    if data.demo:
        band_top = bottom - band_h
        c.rectangle((left, band_top, right, bottom), fill=_DEMO_RED)
        f, lines = _fit(
            f"{_DEMO_TEXT_VI} / {_DEMO_TEXT}",
            bold,
            inner - 40,
            size=42,
            min_size=_MIN_PX,
            max_lines=1,
        )
        c.text((width / 2, (band_top + bottom) / 2), lines[0], f, _WHITE, anchor="mm")
        body_bottom = band_top - 24
    else:
        footer_y = bottom - _line_height(_font(regular, _SMALL_PX))
        c.line((left, footer_y - 18, right, footer_y - 18), fill=_RULE, width=2)
        c.bilingual(width / 2, footer_y, *_FOOTER, inner, paths, size=_SMALL_PX, anchor="ma")
        body_bottom = footer_y - 40

    # QR block on the right, top-aligned with the fields, caption under it.
    qside = (n + 2 * _QUIET_MODULES) * p
    qx, qy = right - qside, body_top - _QUIET_MODULES * p + 4
    qy = max(qy, y + 8)  # the quiet zone may overlap the body's top padding, not the rule
    c.qr(grid, p, (qx, qy))
    qr_box = (qx, qy, qx + qside, qy + qside)
    if qr_box[3] > body_bottom:  # pragma: no cover - at most ~670 px for any QR version
        raise AssertionError(f"card layout overflow: QR ends at {qr_box[3]} > {body_bottom}")
    cap_y = qr_box[3] + 2  # outside the quiet zone
    cap_size = _SMALL_PX
    if cap_y + _line_height(_font(bold, cap_size)) <= body_bottom:
        c.bilingual(qx + qside / 2, cap_y, *_QR_CAPTION, qside, paths, size=cap_size, anchor="ma")

    # Fields on the left: measured once, then drawn with the spare height shared out.
    col = qx - _GAP - left
    half = (col - 40) // 2
    # Ink may overhang a glyph's advance by a pixel or two (side bearings): allow 6 px.
    text_area = (left - 6, body_top - 12, left + col + 6, body_bottom)

    def label(x: float, y0: int, key: str, w: int) -> int:
        vi, en = _LABELS[key]
        return c.bilingual(x, y0, vi, en, w, paths, size=_LABEL_PX) + 4

    def value(
        x: float,
        y0: int,
        text: str,
        w: int,
        *,
        font_path: str,
        size: int,
        max_lines: int,
        min_size: int = _MIN_PX,
    ) -> int:
        font, lines = _fit(text, font_path, w, size=size, min_size=min_size, max_lines=max_lines)
        lh = _line_height(font)
        for i, line in enumerate(lines):
            c.text((x, y0 + i * lh), line, font, _INK)
        return lh * len(lines)

    def field(
        y: int,
        key: str,
        text: str,
        *,
        size: int = _VALUE_PX,
        font_path: str = regular,
        max_lines: int = 1,
        min_size: int = _MIN_PX,
    ) -> int:
        y += label(left, y, key, col)
        return y + value(
            left,
            y,
            text,
            col,
            font_path=font_path,
            size=size,
            max_lines=max_lines,
            min_size=min_size,
        )

    def pair(y: int, k1: str, v1: str, k2: str, v2: str) -> int:
        x2 = left + half + 40
        y += max(label(left, y, k1, half), label(x2, y, k2, half))
        return y + max(
            value(left, y, v1, half, font_path=regular, size=_VALUE_PX, max_lines=1),
            value(x2, y, v2, half, font_path=regular, size=_VALUE_PX, max_lines=1),
        )

    def fields(gap: int) -> int:
        y = body_top
        y = (
            field(
                y,
                "name",
                values["name"],
                size=_NAME_PX,
                font_path=bold,
                max_lines=3,
                min_size=_NAME_MIN_PX,
            )
            + gap
        )
        y = pair(y, "dob", values["dob"], "dose", values["dose"]) + gap
        y = field(y, "vaccine", values["vaccine"], max_lines=2) + gap
        y = pair(y, "date", values["date"], "valid", values["valid"]) + gap
        y = field(y, "issuer", values["issuer"], size=_VALUE_PX - 4, max_lines=2) + gap
        return field(y, "uvci", values["uvci"], size=_VALUE_PX - 8, max_lines=2)

    c.dry = True
    spare = body_bottom - fields(0)
    c.dry = False
    end = fields(min(_FIELD_GAP_MAX, max(0, spare // 5)))
    if end > body_bottom:  # pragma: no cover - the sizes above are chosen to fit
        raise AssertionError(f"card layout overflow: {end} > {body_bottom}")

    return c, CardImage(
        image=_NO_IMAGE,
        text_boxes=tuple(c.boxes),
        text_area=text_area,
        qr_box=qr_box,
        module_px=p,
        modules=n,
    )


# --------------------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------------------


_LOCAL = threading.local()  # .rows: this thread's buffer of filtered rows (see _rows)
#: libdeflate's level for a card's rows. The rows below the shared head of a palette card,
#: 20 cards (bench, CPU time): level 6 3.8 ms 62 kB, 5 3.1 ms 68 kB, 4 2.9 ms 70 kB,
#: 3 2.8 ms 73 kB, 2 2.7 ms 77 kB, 1 4.1 ms 74 kB.
_LEVEL: Final = 4


def _rows(height: int, width: int) -> npt.NDArray[np.uint8]:
    """This thread's buffer of a picture's rows as PNG and PDF's PNG predictor read them:
    each row's filter-type byte 0 (None), then its palette indices; reused by the next
    card (a fresh buffer's pages are faulted in by the kernel on every card)."""
    rows: npt.NDArray[np.uint8] | None = getattr(_LOCAL, "rows", None)
    if rows is None or rows.shape != (height, 1 + width):
        rows = np.zeros((height, 1 + width), np.uint8)  # filter bytes stay 0
        _LOCAL.rows = rows
    return rows


@dataclass(frozen=True, slots=True)
class _Head:
    """The first rows of a card that many cards share (frame, title, rule), deflated once."""

    rows: npt.NDArray[np.uint8]  # filtered, as :func:`_rows` gives them
    stream: bytes  # raw deflate, ending on a byte boundary in a block that is not final
    adler: int  # Adler-32 of ``rows``


_HEADS: list[_Head] = []  # the last few heads seen (demo and not), newest last
_HEADS_MAX: Final = 4
_HEADS_LOCK = threading.Lock()


def _head(rows: npt.NDArray[np.uint8], deflate: ModuleType) -> _Head:
    """The cached head equal to ``rows``, or a new one (~4 ms, once per process)."""
    with _HEADS_LOCK:
        for head in reversed(_HEADS):
            if head.rows.shape == rows.shape and np.array_equal(head.rows, rows):
                return head
    z = zlib.compressobj(6, zlib.DEFLATED, -15)
    stream = z.compress(rows.data) + z.flush(zlib.Z_FULL_FLUSH)
    head = _Head(rows.copy(), stream, deflate.adler32(rows.data))
    with _HEADS_LOCK:
        _HEADS.append(head)
        del _HEADS[:-_HEADS_MAX]
    return head


def _head_rows(ci: CardImage) -> int:
    """Rows above the text area and the QR code's first dark module: only the frame, the
    title and the rule, the same on every card (or on every demo card)."""
    return min(ci.text_area[1], ci.qr_box[1] + _QUIET_MODULES * ci.module_px)


def _raster(rows: npt.NDArray[np.uint8], head_rows: int = 0) -> bytes:
    """The zlib stream of filtered rows (:func:`_rows`), libdeflate level
    :data:`_LEVEL` (Pillow's own PNG writer tries every filter on every row: slower, and
    no smaller on a card, which is mostly flat colour).

    ``head_rows``: how many of the first rows the picture likely shares with others (a
    hint, checked). When they equal rows seen before, their deflated blocks are reused
    and only the rest is deflated: one zlib stream, the head's blocks then the rest's."""
    height = rows.shape[0]
    try:
        import deflate
    except ImportError:  # pragma: no cover - a dependency; kept working without it
        return zlib.compress(rows.data, _LEVEL)
    if not 0 < head_rows < height:
        return bytes(deflate.zlib_compress(rows.data, _LEVEL))
    head = _head(rows[:head_rows], deflate)
    rest = rows[head_rows:].data
    adler = deflate.adler32(rest, head.adler)
    return b"".join((b"\x78\x9c", head.stream, deflate.deflate_compress(rest, _LEVEL),
                     adler.to_bytes(4, "big")))


def _png(width: int, height: int, stream: bytes, palette: npt.NDArray[np.uint8]) -> bytes:
    """A palette PNG of :func:`_raster`'s stream, its pixel size recorded as
    :data:`CARD_DPI`."""
    per_metre = round(CARD_DPI / 0.0254)
    return (b"\x89PNG\r\n\x1a\n"
            + png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 3, 0, 0, 0))
            + png_chunk(b"PLTE", palette.tobytes())
            + png_chunk(b"pHYs", struct.pack(">IIB", per_metre, per_metre, 1))
            + png_chunk(b"IDAT", stream) + png_chunk(b"IEND", b""))


def _pdf(width: int, height: int, stream: bytes, palette: npt.NDArray[np.uint8]) -> bytes:
    """A one-page PDF showing :func:`_raster`'s pixels at :data:`CARD_DPI`, losslessly
    (an ``/Indexed`` image: the PNG's palette and indices)."""
    w_pt, h_pt = width * 72 / CARD_DPI, height * 72 / CARD_DPI
    content = f"q {w_pt:.2f} 0 0 {h_pt:.2f} 0 0 cm /Im0 Do Q".encode("ascii")
    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        (
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {w_pt:.2f} {h_pt:.2f}] "
            "/Resources << /XObject << /Im0 4 0 R >> >> /Contents 5 0 R >>"
        ).encode("ascii"),
        (
            f"<< /Type /XObject /Subtype /Image /Width {width} /Height {height} "
            f"/ColorSpace [/Indexed /DeviceRGB {len(palette) - 1} <{palette.tobytes().hex()}>] "
            "/BitsPerComponent 8 /Filter /FlateDecode "
            f"/DecodeParms << /Predictor 15 /Colors 1 /BitsPerComponent 8 /Columns {width} >> "
            f"/Length {len(stream)} >>\nstream\n"
        ).encode("ascii")
        + stream
        + b"\nendstream",
        f"<< /Length {len(content)} >>\nstream\n".encode("ascii") + content + b"\nendstream",
        b"<< /Title (COVID-19 vaccination certificate) /Producer (vaxqr) >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n".encode("ascii") + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode("ascii")
    for off in offsets:
        out += f"{off:010d} 00000 n \n".encode("ascii")
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R /Info 6 0 R >>\n"
        f"startxref\n{xref}\n%%EOF\n"
    ).encode("ascii")
    return bytes(out)


def render_card(data: CardData, qr_image: Image.Image | QrMatrix, *, fmt: str = "png") -> bytes:
    """A printable A6 credential card as PNG or PDF bytes (300 dpi; nothing written to disk).

    ``qr_image`` is the credential's QR code: the encoder's module matrix
    (:func:`vaxqr.qrencode.encode_matrix`, the quickest), or a clean PIL rendering (any
    scale, any quiet zone; :func:`vaxqr.qr.to_image` gives one). It is redrawn with square
    modules of whole printer pixels, 35-42 mm a side, with a 4-module quiet zone. With
    ``data.demo`` the card carries a red "DEMO ONLY – NOT A VALID CREDENTIAL" band.

    The card has 256 colours (see "Colours" in the module's documentation).

    Raises:
        ValidationError: unknown ``fmt``; bad dates or dose numbers; empty name; a
            character no glyph exists for in the card font (never printed as a box); a QR
            picture that is not a clean QR code.
        StorageError: DejaVu Sans (``fonts-dejavu-core``) is not installed.
    """
    if fmt not in ("png", "pdf"):
        raise ValidationError(f"card: unknown format {fmt!r} (png or pdf)")
    c, ci = _layout(data, qr_image)
    width, height = CARD_SIZE_PX
    rows = _rows(height, width)
    palette = c.paint(rows[:, 1:])
    stream = _raster(rows, _head_rows(ci))
    return (_png if fmt == "png" else _pdf)(width, height, stream, palette)
