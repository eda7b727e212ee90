"""QR encoding: a NumPy QR Code encoder and its PNG, SVG and PIL renderers.

Part of :mod:`vaxqr.qr`, which the rest of vaxqr imports; like it, this module knows
images and text only and never prints. It imports neither PIL (only :func:`to_image`
does, when called) nor any decoder.

:func:`encode_matrix` builds a QR Code model 2 symbol (ISO/IEC 18004) with a NumPy
encoder written for this job: an ``HC1:`` string (Base45, only ``0-9A-Z $%*+-./:``) is
always **one alphanumeric segment**, error correction is exactly the level asked for
(``Q`` by default, never silently raised), and the mask is chosen by the ISO penalty
rules. Other text (a CCCD test payload in Vietnamese) is one byte-mode segment of its
UTF-8 bytes, without an ECI header, as on the citizen ID cards. Renderers add the
4-module quiet zone: :func:`to_png` (1-bit, integer pixels per module), :func:`to_svg`
and :func:`to_image` (a PIL image for printable cards).

Why not a library encoder: zxing-cpp's writer (zint) splits digit runs into numeric
segments and cannot be told not to; segno is correct but spends ~20 ms per credential in
pure-Python masking; qrcode is slower still. ``benchmarks/bench_qr.py`` has the figures
and ``tests/test_qr.py`` checks every symbol against segno, zxing-cpp and zbar.
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Final, Literal

import numpy as np
import numpy.typing as npt

from .errors import ValidationError

if TYPE_CHECKING:
    from PIL import Image as PILImage

__all__ = [
    "ALPHANUMERIC_CHARS",
    "DEFAULT_BORDER",
    "DEFAULT_SCALE",
    "QrMatrix",
    "encode_matrix",
    "is_alphanumeric",
    "png_chunk",
    "to_image",
    "to_png",
    "to_svg",
]

BoolArray = npt.NDArray[np.bool_]
U8Array = npt.NDArray[np.uint8]

ECLevel = Literal["L", "M", "Q", "H"]
Mode = Literal["auto", "alphanumeric", "byte"]

#: The 45 characters QR alphanumeric mode can hold (and Base45 uses).
ALPHANUMERIC_CHARS: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
#: Quiet zone around the symbol, in modules (ISO/IEC 18004 requires 4).
DEFAULT_BORDER: Final = 4
#: Default pixels per module for PNG output (an ~560-character credential: 388 px square).
DEFAULT_SCALE: Final = 4
#: zlib effort for PNG output: 1 is ~4x faster than 6 for a ~10% larger file (~2 KB).
PNG_COMPRESS_LEVEL: Final = 1

_EC_INDEX: Final[dict[str, int]] = {"L": 0, "M": 1, "Q": 2, "H": 3}
_EC_FORMAT_BITS: Final[dict[str, int]] = {"L": 1, "M": 0, "Q": 3, "H": 2}

# ISO/IEC 18004:2015 Table 9, per level L, M, Q, H and version 1..40 (index 0 unused):
# error correction codewords per block, and number of blocks.
_EC_PER_BLOCK: Final = (
    (-1, 7, 10, 15, 20, 26, 18, 20, 24, 30, 18, 20, 24, 26, 30, 22, 24, 28, 30, 28, 28, 28, 28,
     30, 30, 26, 28, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30),
    (-1, 10, 16, 26, 18, 24, 16, 18, 22, 22, 26, 30, 22, 22, 24, 24, 28, 28, 26, 26, 26, 26, 28,
     28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28),
    (-1, 13, 22, 18, 26, 18, 24, 18, 22, 20, 24, 28, 26, 24, 20, 30, 24, 28, 28, 26, 30, 28, 30,
     30, 30, 30, 28, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30),
    (-1, 17, 28, 22, 16, 22, 28, 26, 26, 24, 28, 24, 28, 22, 24, 24, 30, 28, 28, 26, 28, 30, 24,
     30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30),
)  # fmt: skip
_NUM_BLOCKS: Final = (
    (-1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 4, 4, 4, 4, 4, 6, 6, 6, 6, 7, 8, 8, 9, 9, 10, 12, 12, 12, 13,
     14, 15, 16, 17, 18, 19, 19, 20, 21, 22, 24, 25),
    (-1, 1, 1, 1, 2, 2, 4, 4, 4, 5, 5, 5, 8, 9, 9, 10, 10, 11, 13, 14, 16, 17, 17, 18, 20, 21,
     23, 25, 26, 28, 29, 31, 33, 35, 37, 38, 40, 43, 45, 47, 49),
    (-1, 1, 1, 2, 2, 4, 4, 6, 6, 8, 8, 8, 10, 12, 16, 12, 17, 16, 18, 21, 20, 23, 23, 25, 27,
     29, 34, 34, 35, 38, 40, 43, 45, 48, 51, 53, 56, 59, 62, 65, 68),
    (-1, 1, 1, 2, 4, 4, 4, 5, 6, 8, 8, 11, 11, 16, 16, 18, 16, 19, 21, 25, 25, 25, 34, 30, 32,
     35, 37, 40, 42, 45, 48, 51, 54, 57, 60, 63, 66, 70, 74, 77, 81),
)  # fmt: skip

_ALNUM_VALUE: Final = np.full(256, 255, dtype=np.uint8)
for _i, _c in enumerate(ALPHANUMERIC_CHARS):
    _ALNUM_VALUE[ord(_c)] = _i
_ALNUM_RE: Final = re.compile(r"[0-9A-Z $%*+\-./:]*\Z")


def is_alphanumeric(text: str) -> bool:
    """True when ``text`` fits QR alphanumeric mode (``0-9A-Z $%*+-./:`` only)."""
    return _ALNUM_RE.match(text) is not None


def _gf_tables() -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int32]]:
    exp = np.zeros(512, dtype=np.int32)
    log = np.zeros(256, dtype=np.int32)
    x = 1
    for i in range(255):
        exp[i] = x
        log[x] = i
        x <<= 1
        if x & 0x100:
            x ^= 0x11D
    exp[255:510] = exp[:255]
    return exp, log


_GF_EXP, _GF_LOG = _gf_tables()


def _gf_mul(a: int, b: int) -> int:
    if a == 0 or b == 0:
        return 0
    return int(_GF_EXP[int(_GF_LOG[a]) + int(_GF_LOG[b])])


@lru_cache(maxsize=8)
def _rs_products(k: int, e: int) -> npt.NDArray[np.uint64]:
    """Reed-Solomon as a lookup table: ``ec = XOR_i P[i, d_i]`` for a ``k``-codeword block.

    ``P[i, d]`` is ``d * x^(e + k - 1 - i) mod g(x)``, the remainder contributed by value
    ``d`` at position ``i``, row ``256 * i + d`` of the table; its ``e`` bytes are
    zero-padded to whole uint64 words, so the XOR runs on eight bytes at a time. Up to
    ~1 MB at version 40; a few versions are cached.
    """
    gen = [1]  # g(x) = prod (x - a^i), highest degree first
    for i in range(e):
        root = int(_GF_EXP[i])
        nxt = [*gen, 0]
        for j, c in enumerate(gen):
            nxt[j + 1] ^= _gf_mul(c, root)
        gen = nxt
    rows: list[list[int]] = []
    rem = gen[1:]  # x^e mod g (characteristic 2: minus is plus)
    for _ in range(k):
        rows.append(rem[:])
        lead = rem[0]
        rem = [*rem[1:], 0]
        if lead:
            for j in range(e):
                rem[j] ^= _gf_mul(lead, gen[j + 1])
    matrix = np.zeros((k, 1, -(-e // 8) * 8), dtype=np.int32)
    matrix[:, 0, :e] = rows[::-1]
    values = np.arange(256, dtype=np.int32)[None, :, None]
    products = _GF_EXP[_GF_LOG[values] + _GF_LOG[matrix]]
    products[(values == 0) | (matrix == 0)] = 0
    packed: npt.NDArray[np.uint64] = products.astype(np.uint8).view(np.uint64)
    return packed.reshape(k * 256, -1)


def _num_raw_modules(version: int) -> int:
    result = (16 * version + 128) * version + 64
    if version >= 2:
        num_align = version // 7 + 2
        result -= (25 * num_align - 10) * num_align - 55
        if version >= 7:
            result -= 36
    return result


def _data_capacity_bits(version: int, ec: str) -> int:
    e = _EC_INDEX[ec]
    total = _num_raw_modules(version) // 8
    return (total - _EC_PER_BLOCK[e][version] * _NUM_BLOCKS[e][version]) * 8


def _alignment_positions(version: int) -> list[int]:
    if version == 1:
        return []
    num_align = version // 7 + 2
    size = version * 4 + 17
    step = (version * 8 + num_align * 3 + 5) // (num_align * 4 - 4) * 2
    return [6, *reversed([size - 7 - i * step for i in range(num_align - 1)])]


def _bch(value: int, poly: int, poly_bits: int) -> int:
    rem = value << (poly_bits - 1)
    for shift in range(rem.bit_length() - poly_bits, -1, -1):
        if rem >> (shift + poly_bits - 1) & 1:
            rem ^= poly << shift
    return (value << (poly_bits - 1)) | rem


def _format_bits(ec: str, mask: int) -> int:
    return _bch(_EC_FORMAT_BITS[ec] << 3 | mask, 0x537, 11) ^ 0x5412


@dataclass(frozen=True)
class _Layout:
    size: int
    template: BoolArray  # dark function modules (version info included, format info not)
    function: BoolArray  # True for every function module (format area included)
    order: npt.NDArray[np.intp]  # flat indices of data modules in placement order
    masks: BoolArray  # (8, n, n) mask patterns, False on function modules
    format_rows: npt.NDArray[np.intp]  # (30,) coordinates of both format copies, bit 0..14 x2
    format_cols: npt.NDArray[np.intp]


@lru_cache(maxsize=40)
def _layout(version: int) -> _Layout:
    n = version * 4 + 17
    dark = np.zeros((n, n), dtype=bool)
    func = np.zeros((n, n), dtype=bool)
    # Timing patterns.
    func[6, :] = True
    func[:, 6] = True
    dark[6, 0::2] = True
    dark[0::2, 6] = True
    # Finder patterns with separators.
    for cy, cx in ((3, 3), (3, n - 4), (n - 4, 3)):
        for dy in range(-4, 5):
            for dx in range(-4, 5):
                y, x = cy + dy, cx + dx
                if 0 <= y < n and 0 <= x < n:
                    func[y, x] = True
                    dark[y, x] = max(abs(dx), abs(dy)) not in (2, 4)
    # Alignment patterns.
    pos = _alignment_positions(version)
    last = len(pos) - 1
    for i, cy in enumerate(pos):
        for j, cx in enumerate(pos):
            if (i, j) in ((0, 0), (0, last), (last, 0)):
                continue
            for dy in range(-2, 3):
                for dx in range(-2, 3):
                    func[cy + dy, cx + dx] = True
                    dark[cy + dy, cx + dx] = max(abs(dx), abs(dy)) != 1
    # Format information areas (written per mask) and the dark module.
    rows = [*range(6), 7, 8, 8, *([8] * 6), *([8] * 8), *range(n - 7, n)]
    cols = [*([8] * 6), 8, 8, 7, *range(5, -1, -1), *range(n - 1, n - 9, -1), *([8] * 7)]
    func[rows, cols] = True
    func[n - 8, 8] = True
    dark[n - 8, 8] = True
    # Version information.
    if version >= 7:
        bits = _bch(version, 0x1F25, 13)
        for i in range(18):
            a, b = n - 11 + i % 3, i // 3
            bit = bool(bits >> i & 1)
            func[b, a] = func[a, b] = True
            dark[b, a] = dark[a, b] = bit
    # Data placement order: two-module columns, zigzag, right to left.
    order: list[int] = []
    right = n - 1
    while right >= 1:
        if right == 6:
            right = 5
        upward = ((right + 1) & 2) == 0
        for vert in range(n):
            y = n - 1 - vert if upward else vert
            for x in (right, right - 1):
                if not func[y, x]:
                    order.append(y * n + x)
        right -= 2
    ii, jj = np.indices((n, n))
    patterns = [
        (ii + jj) % 2 == 0,
        ii % 2 == 0,
        jj % 3 == 0,
        (ii + jj) % 3 == 0,
        (ii // 2 + jj // 3) % 2 == 0,
        (ii * jj) % 2 + (ii * jj) % 3 == 0,
        ((ii * jj) % 2 + (ii * jj) % 3) % 2 == 0,
        ((ii + jj) % 2 + (ii * jj) % 3) % 2 == 0,
    ]
    masks = np.stack(patterns) & ~func
    for arr in (dark, func, masks):
        arr.setflags(write=False)
    return _Layout(
        size=n,
        template=dark,
        function=func,
        order=np.array(order, dtype=np.intp),
        masks=masks,
        format_rows=np.array(rows, dtype=np.intp),
        format_cols=np.array(cols, dtype=np.intp),
    )


@lru_cache(maxsize=160)
def _mask_patterns(version: int, ec: str) -> tuple[BoolArray, tuple[tuple[int, int], ...]]:
    """Per mask: the dark function modules, format information included, as an (8, n, n)
    array; and for scoring, the mask pattern and those modules packed by :func:`_lines`."""
    layout = _layout(version)
    fixed = np.repeat(layout.template[None], 8, axis=0)
    fmt = np.array([_format_bits(ec, m) for m in range(8)], dtype=np.int32)
    fixed[:, layout.format_rows, layout.format_cols] = (fmt[:, None] >> (np.arange(30) % 15)) & 1
    fixed.setflags(write=False)
    lines = _lines(layout.size)
    packed = tuple((lines.pack(m), lines.pack(f)) for m, f in zip(layout.masks, fixed, strict=True))
    return fixed, packed


def _segment_bits(data: bytes, alphanumeric: bool, version: int) -> U8Array:
    """Mode indicator, character count and data bits of the single segment, as 0/1 bytes."""
    if alphanumeric:
        count_bits = 9 if version <= 9 else 11 if version <= 26 else 13
        values = _ALNUM_VALUE[np.frombuffer(data, dtype=np.uint8)]
        pairs = (values[0 : len(values) - 1 : 2] * np.uint16(45) + values[1::2]).astype(">u2")
        parts = [np.unpackbits(pairs.view(np.uint8)).reshape(-1, 16)[:, 5:].ravel()]
        if len(values) % 2:
            parts.append(np.unpackbits(values[-1:])[2:])  # 6 bits
        header = (0b0010 << count_bits) | len(values)
    else:
        count_bits = 8 if version <= 9 else 16
        parts = [np.unpackbits(np.frombuffer(data, dtype=np.uint8))]
        header = (0b0100 << count_bits) | len(data)
    head = np.unpackbits(np.array([header], dtype=">u4").view(np.uint8))[28 - count_bits :]
    return np.concatenate([head, *parts])


def _segment_length(n_chars: int, alphanumeric: bool, version: int) -> int | None:
    """Bits of the segment, or None when the count does not fit its indicator."""
    if alphanumeric:
        count_bits = 9 if version <= 9 else 11 if version <= 26 else 13
        body = 11 * (n_chars // 2) + 6 * (n_chars % 2)
    else:
        count_bits = 8 if version <= 9 else 16
        body = 8 * n_chars
    if n_chars >= 1 << count_bits:
        return None
    return 4 + count_bits + body


@dataclass(frozen=True)
class _Blocks:
    """How the data codewords of one version and level are split and interleaved."""

    data_len: int  # data codewords
    ec_len: int  # error correction codewords per block
    shape: tuple[int, int]  # (blocks, codewords in a long block)
    slots: npt.NDArray[np.intp]  # flat place of each data codeword in that table
    order: npt.NDArray[np.intp]  # data codewords in interleaved order


@lru_cache(maxsize=160)
def _blocks(version: int, ec: str) -> _Blocks:
    e_idx = _EC_INDEX[ec]
    n_blocks = _NUM_BLOCKS[e_idx][version]
    ec_len = _EC_PER_BLOCK[e_idx][version]
    total = _num_raw_modules(version) // 8
    n_short = n_blocks - total % n_blocks
    short_len = total // n_blocks - ec_len  # data codewords in a short block
    long_len = short_len + 1 if n_short < n_blocks else short_len
    data_len = total - n_blocks * ec_len
    # Short blocks sit right-aligned in the table: a leading zero does not change the
    # Reed-Solomon remainder. For interleaving they are left-aligned, with a hole at the end.
    table = np.arange(n_blocks * long_len).reshape(n_blocks, long_len)
    slots = np.concatenate(
        [table[:n_short, long_len - short_len :].ravel(), table[n_short:].ravel()]
    )
    holes = np.full((n_blocks, long_len), -1)
    holes[:n_short, :short_len] = np.arange(n_short * short_len).reshape(n_short, short_len)
    holes[n_short:] = np.arange(n_short * short_len, data_len).reshape(-1, long_len)
    order = holes.T.ravel()
    return _Blocks(data_len, ec_len, (n_blocks, long_len), slots, order[order >= 0])


_PAD: Final = np.resize(np.array([0xEC, 0x11], dtype=np.uint8), 3000)  # pad codewords


def _codewords(bits: U8Array, version: int, ec: str) -> U8Array:
    """Terminate, pad, split into blocks, add Reed-Solomon codewords, interleave."""
    blocks = _blocks(version, ec)
    capacity = blocks.data_len * 8
    # Up to 4 terminator zeros, then zeros to a whole byte (packbits adds those), then pad.
    used = -(-(len(bits) + min(4, capacity - len(bits))) // 8)
    data = np.zeros(blocks.data_len, dtype=np.uint8)
    data[: -(-len(bits) // 8)] = np.packbits(bits)
    data[used:] = _PAD[: blocks.data_len - used]
    table = np.zeros(blocks.shape, dtype=np.uint8)
    table.flat[blocks.slots] = data
    k = blocks.shape[1]
    rows = table.T + np.arange(0, 256 * k, 256)[:, None]  # row of P[i, d_i] in the table
    ecc = np.bitwise_xor.reduce(_rs_products(k, blocks.ec_len).take(rows, axis=0), axis=0)
    ecc_bytes = ecc.view(np.uint8)[:, : blocks.ec_len]
    return np.concatenate([data[blocks.order], ecc_bytes.T.ravel()])


@dataclass(frozen=True)
class _Lines:
    """Every row, then every column, of an ``n x n`` symbol as the bits of one Python int.

    A line is its ``n`` modules and then 4 light ones, so a pattern never runs from one
    line into the next and the padding stands for the light quiet zone. The first module is
    the most significant bit, so ``x >> s`` puts each module's ``s``-th predecessor in its
    place. Python's big-int ``&``, ``|``, ``^`` and shifts then score all lines at once.
    """

    n: int
    pairs: int  # positions (any line, column >= 1): a module and its predecessor (N1)
    blocks: int  # positions (row >= 1, column >= 1): the corner of a 2x2 block (N2)

    @property
    def width(self) -> int:
        """Bits per line."""
        return self.n + 4

    def pack(self, modules: BoolArray) -> int:
        """The lines of ``modules`` (``n x n``, True = dark) as an int."""
        n = self.n
        lines = np.zeros((2 * n, n + 4), dtype=bool)
        lines[:n, :n] = modules
        lines[n:, :n] = modules.T
        return _to_int(lines)


def _to_int(bits: BoolArray) -> int:
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


@lru_cache(maxsize=40)
def _lines(n: int) -> _Lines:
    pairs = np.zeros((2 * n, n + 4), dtype=bool)
    pairs[:, 1:n] = True
    blocks = np.zeros_like(pairs)
    blocks[1:n, 1:n] = True
    return _Lines(n=n, pairs=_to_int(pairs), blocks=_to_int(blocks))


def _penalty(x: int, lines: _Lines) -> int:
    """ISO/IEC 18004 §7.8.3.1 penalty N1 + N2 + N3 + N4 of one symbol packed by ``lines``."""
    n, w = lines.n, lines.width
    x1 = x >> 1
    # N1: each run of 5 + i same-coloured modules in a line scores 3 + i. ``same5`` marks the
    # last module of every 5 in a row; a run of 5 + i holds i + 1 of them, i of them adjacent.
    changes = x ^ x1
    same = lines.pairs ^ (changes & lines.pairs)
    same2 = same & (same >> 1)
    same5 = same2 & (same2 >> 2)
    n1 = 3 * same5.bit_count() - 2 * (same5 & (same5 >> 1)).bit_count()
    # N2: each 2x2 block of one colour scores 3 (no change along either row or down).
    split = (changes | (changes >> w) | (x ^ (x >> w))) & lines.blocks
    n2 = 3 * (lines.blocks ^ split).bit_count()
    # N3: dark-light-dark x3-light-dark (1011101) with 4 light modules (or the quiet zone)
    # before it, and again with 4 light after it, 40 each.
    dark2 = x & x1
    edge = x ^ dark2  # dark after light
    pattern = edge & (edge >> 4) & (dark2 >> 2) & (x >> 6)
    any2 = x | x1
    dark4 = any2 | (any2 >> 2)  # any dark among this module and the 3 before
    n3 = 40 * (
        (pattern ^ (pattern & (dark4 << 4))).bit_count()
        + (pattern ^ (pattern & (dark4 >> 7))).bit_count()
    )
    # N4: 10 per full 5% of dark modules away from half (every module is in x twice).
    total = n * n
    n4 = 10 * (abs(10 * x.bit_count() - 10 * total) // total)
    return n1 + n2 + n3 + n4


def _penalties(candidates: BoolArray) -> list[int]:
    """ISO/IEC 18004 §7.8.3.1 penalty (N1 + N2 + N3 + N4) of each candidate symbol."""
    lines = _lines(candidates.shape[1])
    return [_penalty(lines.pack(c), lines) for c in candidates]


@dataclass(frozen=True, eq=False)
class QrMatrix:
    """A QR Code symbol: its modules (``True`` = dark, no quiet zone) and its parameters."""

    modules: BoolArray
    version: int
    ec_level: ECLevel
    mask: int
    mode: Literal["alphanumeric", "byte"]

    @property
    def size(self) -> int:
        """Modules per side, without the quiet zone."""
        return int(self.modules.shape[0])

    def _light(self, border: int) -> BoolArray:
        """Modules as ``True`` = light, with ``border`` light modules around."""
        n = self.size
        light = np.ones((n + 2 * border, n + 2 * border), dtype=bool)
        np.logical_not(self.modules, out=light[border : border + n, border : border + n])
        return light

    def to_array(self, *, scale: int = DEFAULT_SCALE, border: int = DEFAULT_BORDER) -> BoolArray:
        """Pixels as a boolean array, ``True`` = light, quiet zone included."""
        _check_render_args(scale, border)
        light = self._light(border)
        if scale > 1:
            light = np.repeat(np.repeat(light, scale, axis=0), scale, axis=1)
        return light

    def to_image(
        self, *, scale: int = DEFAULT_SCALE, border: int = DEFAULT_BORDER
    ) -> PILImage.Image:
        """A 1-bit PIL image (mode ``"1"``), ``scale`` pixels per module, quiet zone included."""
        from PIL import Image

        return Image.fromarray(self.to_array(scale=scale, border=border))

    def to_png(
        self,
        *,
        scale: int = DEFAULT_SCALE,
        border: int = DEFAULT_BORDER,
        compress_level: int = PNG_COMPRESS_LEVEL,
    ) -> bytes:
        """A 1-bit grayscale PNG, ``scale`` px per module, quiet zone included.

        Written directly (no PIL): each module row is one packed pixel row followed by
        ``scale - 1`` rows with PNG's "Up" filter, which are all zeros and cost zlib nothing.
        """
        _check_render_args(scale, border)
        if not 0 <= compress_level <= 9:
            raise ValidationError(f"PNG compress level must be 0-9, not {compress_level!r}")
        light = self._light(border)
        rows = side = light.shape[0]
        row_bytes = -(-side * scale // 8)
        # Each byte of 8 modules becomes ``scale`` bytes of pixels; the zero bits that pad
        # the last byte stay zero, as the PNG row's unused trailing bits.
        pixels = np.take(_widen(scale), np.packbits(light, axis=1), axis=0).reshape(rows, -1)
        raw = np.zeros((rows, scale, row_bytes + 1), dtype=np.uint8)
        raw[:, 0, 1:] = pixels[:, :row_bytes]
        raw[:, 1:, 0] = 2  # filter type Up: "same as the row above"
        side *= scale
        header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # 1-bit grayscale
        return b"".join(
            (
                b"\x89PNG\r\n\x1a\n",
                png_chunk(b"IHDR", header),
                png_chunk(b"IDAT", zlib.compress(raw.tobytes(), compress_level)),
                png_chunk(b"IEND", b""),
            )
        )

    def to_svg(
        self, *, scale: int = DEFAULT_SCALE, border: int = DEFAULT_BORDER, unit: str = ""
    ) -> str:
        """A standalone SVG: white background, one path of dark modules, crisp edges.

        The view box is in modules; ``width``/``height`` are ``scale`` times that, in
        ``unit`` (``""`` for user units/pixels, or e.g. ``"mm"`` for print).
        """
        _check_render_args(scale, border)
        if unit not in ("", "px", "mm", "cm", "in", "pt"):
            raise ValidationError(f"unsupported SVG unit {unit!r}")
        dim = self.size + 2 * border
        parts: list[str] = []
        for y, row in enumerate(self.modules):
            edges = np.flatnonzero(np.diff(np.concatenate(([0], row.view(np.int8), [0]))))
            for start, stop in zip(edges[0::2], edges[1::2], strict=True):
                parts.append(f"M{start + border},{y + border}h{stop - start}v1h-{stop - start}z")
        side = f"{dim * scale}{unit}"
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{side}" '
            f'height="{side}" viewBox="0 0 {dim} {dim}" shape-rendering="crispEdges">'
            f'<rect width="{dim}" height="{dim}" fill="#fff"/>'
            f'<path fill="#000" d="{"".join(parts)}"/></svg>\n'
        )


@lru_cache(maxsize=8)
def _widen(scale: int) -> U8Array:
    """(256, scale) bytes: the bits of each byte value, each bit repeated ``scale`` times."""
    bits = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1)
    return np.packbits(np.repeat(bits, scale, axis=1), axis=1)


def png_chunk(tag: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data and the CRC-32 of type and data."""
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def _check_render_args(scale: int, border: int) -> None:
    if not isinstance(scale, int) or isinstance(scale, bool) or not 1 <= scale <= 100:
        raise ValidationError(f"QR scale must be an integer from 1 to 100 pixels, not {scale!r}")
    if not isinstance(border, int) or isinstance(border, bool) or not 0 <= border <= 100:
        raise ValidationError(f"QR border must be an integer from 0 to 100 modules, not {border!r}")


def encode_matrix(data: str | bytes, *, ec_level: ECLevel = "Q", mode: Mode = "auto") -> QrMatrix:
    """Encode ``data`` as one QR segment at exactly error-correction level ``ec_level``.

    ``mode="auto"`` picks alphanumeric for text made only of ``0-9A-Z $%*+-./:`` (every
    ``HC1:`` payload) and byte mode (UTF-8, no ECI) for anything else; ``bytes`` are always
    byte mode. The smallest version that fits is used; the mask is the one with the lowest
    ISO penalty (lowest number on ties).

    Raises :class:`~vaxqr.errors.ValidationError` when the data cannot be a QR code (too
    long for version 40 at that level, or characters outside the mode asked for).
    """
    if ec_level not in _EC_INDEX:
        raise ValidationError(f"unknown QR error correction level {ec_level!r}")
    if mode not in ("auto", "alphanumeric", "byte"):
        raise ValidationError(f"unknown QR mode {mode!r}")
    if isinstance(data, bytes):
        if mode == "alphanumeric":
            raise ValidationError("alphanumeric mode needs text, not bytes")
        raw, alnum = data, False
    else:
        alnum = is_alphanumeric(data) if mode == "auto" else mode == "alphanumeric"
        if alnum and not is_alphanumeric(data):
            raise ValidationError(
                "text has characters outside QR alphanumeric mode (0-9 A-Z space $%*+-./:)"
            )
        raw = data.encode("ascii") if alnum else data.encode("utf-8")
    version = _pick_version(len(raw), alnum, ec_level)
    layout = _layout(version)
    n = layout.size
    codewords = _codewords(_segment_bits(raw, alnum, version), version, ec_level)
    bits = np.zeros(len(layout.order), dtype=bool)
    bits[: len(codewords) * 8] = np.unpackbits(codewords).view(bool)
    flat = np.zeros(n * n, dtype=bool)
    flat[layout.order] = bits
    data_modules = flat.reshape(n, n)
    lines = _lines(n)
    packed = lines.pack(data_modules)
    fixed, packed_masks = _mask_patterns(version, ec_level)
    scores = [_penalty((packed ^ mask) | dark, lines) for mask, dark in packed_masks]
    best = scores.index(min(scores))
    modules = (data_modules ^ layout.masks[best]) | fixed[best]
    modules.setflags(write=False)
    return QrMatrix(
        modules=modules,
        version=version,
        ec_level=ec_level,
        mask=best,
        mode="alphanumeric" if alnum else "byte",
    )


@lru_cache(maxsize=1024)
def _pick_version(length: int, alnum: bool, ec: str) -> int:
    for version in range(1, 41):
        bits = _segment_length(length, alnum, version)
        if bits is not None and bits <= _data_capacity_bits(version, ec):
            return version
    kind = "characters" if alnum else "bytes"
    raise ValidationError(
        f"too long for a QR code: {length} {kind} at error correction {ec}",
        hint="the QR code holds at most 2,420 alphanumeric characters at level Q",
    )


def _as_matrix(data: str | bytes | QrMatrix) -> QrMatrix:
    return data if isinstance(data, QrMatrix) else encode_matrix(data)


def to_image(
    data: str | bytes | QrMatrix, *, scale: int = DEFAULT_SCALE, border: int = DEFAULT_BORDER
) -> PILImage.Image:
    """A 1-bit PIL image of the QR code for ``data`` (see :func:`encode_matrix`)."""
    return _as_matrix(data).to_image(scale=scale, border=border)


def to_png(
    data: str | bytes | QrMatrix, *, scale: int = DEFAULT_SCALE, border: int = DEFAULT_BORDER
) -> bytes:
    """PNG bytes (1-bit, ``scale`` px per module, ``border``-module quiet zone) for ``data``."""
    return _as_matrix(data).to_png(scale=scale, border=border)


def to_svg(
    data: str | bytes | QrMatrix,
    *,
    scale: int = DEFAULT_SCALE,
    border: int = DEFAULT_BORDER,
    unit: str = "",
) -> str:
    """A standalone SVG document of the QR code for ``data``."""
    return _as_matrix(data).to_svg(scale=scale, border=border, unit=unit)
