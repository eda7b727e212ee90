"""The HC1 transport layers: context prefix, Base45 (RFC 9285) and zlib.

Strict where the format requires it: Base45 is decoded only from its 45-character
alphabet (upper case, no repair of scanner damage), groups that overflow (``GGW`` > 65535,
a final pair > 255) and lengths ≡ 1 (mod 3) are rejected; zlib is required (an
uncompressed COSE is refused) and its output capped, so a few KB of text cannot inflate
into gigabytes.

Base45 is hand-written here because it is small, tested against the RFC vectors, and
faster than the ``base45`` package: see ``benchmarks/bench_sign.py``. Its two loops also
exist in C (``vaxqr/_base45.c``, ~0.5 µs a credential each way instead of ~3), used while
the native build is current; the checks and their messages stay here, in Python.
"""

from __future__ import annotations

import zlib
from typing import Any

from . import native_c
from .errors import DecodeError

PREFIX = "HC1:"
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
MAX_TEXT = 8192  # a QR holds at most 4,296 alphanumeric characters; 8 KiB is generous
MAX_INFLATED = 64 * 1024  # SPEC §5: zlib output capped at 64 KiB

_INVALID = 0xFF
_DECODE_TABLE = bytes(
    ALPHABET.index(chr(i)) if chr(i) in ALPHABET else _INVALID for i in range(256)
)
_ALPHABET_BYTES = ALPHABET.encode("ascii")
_TO_ALPHABET = bytes(_ALPHABET_BYTES[i] if i < 45 else 0 for i in range(256))

# Every Base45 group encoded at once with big-integer arithmetic (like the decoder below,
# 1.3x faster than a 65,536-entry table, whose lookups miss the cache): the words, big-endian
# as RFC 9285 reads them, are spread into one little-endian integer of 4-byte lanes; w // 45
# is (w * 46604) >> 21 exactly for every w < 2**16 (46604 = ceil(2**21 / 45)), and as w * 46604
# < 2**32 and w // 45 < 2**11 no lane spills into the 11 bits kept of another. Each lane then
# holds the three digits [w % 45, w // 45 % 45, w // 2025] and a 0xFF marker byte, which
# ``translate`` deletes while it maps the digits to the alphabet.
_DIV45 = 46604
_ENC_LANES = 4096
_LOW11 = int.from_bytes(b"\xff\x07\x00\x00" * _ENC_LANES, "little")
_MARKERS: dict[int, int] = {}  # groups → the 0xFF marker bytes of that many lanes


def _markers(groups: int) -> int:
    marks = _MARKERS.get(groups)
    if marks is None:
        marks = int.from_bytes(b"\x00\x00\x00\xff" * groups, "little")
        if len(_MARKERS) < 512 and groups <= 1024:  # credentials are < 1 KiB
            _MARKERS[groups] = marks
    return marks


_C: Any = native_c("_base45")  # the C Base45 loops, while the native build is current


def b45encode(data: bytes | bytearray | memoryview) -> str:
    """Encode bytes as Base45 (RFC 9285): two bytes → three characters, least significant first."""
    if _C is not None and type(data) is bytes:
        text: str = _C.encode(data)
        return text
    return _b45encode_lanes(data)


def _b45encode_lanes(data: bytes | bytearray | memoryview) -> str:
    """:func:`b45encode` in Python (where the C loop is not built)."""
    n = len(data)
    groups = n >> 1
    even = groups << 1
    lanes = bytearray(4 * groups)
    lanes[0::4] = data[1:even:2]
    lanes[1::4] = data[0:even:2]
    # Any, not int: compiled, big-integer arithmetic on an int aborts the process on any
    # error, and a product checks for signals (Ctrl-C: "fatal: out of memory", SIGABRT);
    # on Any the same operations raise, as in Python.
    w: Any = int.from_bytes(lanes, "little")
    low11: Any = (_LOW11 if groups <= _ENC_LANES
                  else int.from_bytes(b"\xff\x07\0\0" * groups, "little"))
    q = ((w * _DIV45) >> 21) & low11  # w // 45
    e = ((q * _DIV45) >> 21) & low11  # w // 2025
    # lane = c + 256 d + 65536 e with c = w - 45 q and d = q - 45 e: all terms ≥ 0, < 2**24
    digits = w + 211 * q + 54016 * e + _markers(groups)
    out: str = digits.to_bytes(4 * groups, "little").translate(_TO_ALPHABET, b"\xff").decode(
        "ascii")
    if even != n:
        last = data[-1]
        out += ALPHABET[last % 45] + ALPHABET[last // 45]
    return out


# Every Base45 group decoded at once with big-integer arithmetic (4x faster than a loop):
# the digit values, read as one little-endian integer, are 3-byte lanes [c, d, e]; masking
# and shifting give c + 45*d + 2025*e in each lane, and as that is < 2**17 no lane carries
# into the next. The lane's third byte is non-zero exactly when the group overflows 65535.
_LANES = MAX_TEXT // 3 + 1
_MASK0 = int.from_bytes(b"\xff\x00\x00" * _LANES, "little")
_OVERFLOW = _MASK0 << 16  # the third byte of every lane


def _decode_groups(values: bytes, full: int) -> bytes | None:
    """Decode the ``full // 3`` complete groups of digit values; None if one overflows."""
    groups = full // 3
    m0: Any  # Any, not int: see _b45encode_lanes (an interrupted product must raise, not abort)
    overflow: Any
    if groups <= _LANES:
        m0, overflow = _MASK0, _OVERFLOW
    else:
        m0 = int.from_bytes(b"\xff\x00\x00" * groups, "little")
        overflow = m0 << 16
    lanes: Any = int.from_bytes(values[:full], "little")
    # c + 45 d + 2025 e = lane - 211 d - 63511 e, lane by lane (all ≥ 0, < 2**17): one
    # operation fewer than masking c out as well
    words = lanes - 211 * ((lanes >> 8) & m0) - 63511 * ((lanes >> 16) & m0)
    if words & overflow:  # a lane's third byte is set: its group overflows 65535
        return None
    wb: bytes = words.to_bytes(full, "little")  # per group: low byte, high byte, overflow byte (0)
    out = bytearray(2 * groups)
    out[0::2] = wb[1::3]
    out[1::2] = wb[0::3]
    return bytes(out)


def b45decode(text: str) -> bytes:
    """Decode strict Base45; raise :class:`DecodeError` (step ``base45``) on any violation."""
    try:
        raw = text.encode("ascii")
    except UnicodeEncodeError as exc:
        raise DecodeError(
            f"Base45 text contains a non-ASCII character at position {exc.start}",
            step="base45",
            hint="the scanner may have damaged the text; scan the QR again",
        ) from None
    values = raw.translate(_DECODE_TABLE)
    bad = values.find(_INVALID)
    if bad >= 0:
        ch = text[bad]
        what = "a lower-case letter" if ch.islower() else f"character {ch!r}"
        raise DecodeError(
            f"Base45 text contains {what} at position {bad}, outside the Base45 alphabet",
            step="base45",
            hint="a scanner that URL-decodes '%xx' or lowers case corrupts HC1 text"
            if ch.islower() or ch == "%"
            else None,
        )
    n = len(values)
    if n % 3 == 1:
        raise DecodeError(
            f"Base45 text has an impossible length ({n} characters, ≡ 1 mod 3)", step="base45"
        )
    full = n - n % 3
    out = _C.decode_groups(values, full) if _C is not None else _decode_groups(values, full)
    if out is None:  # a group overflows: find the first one for the message
        words = [
            c + 45 * d + 2025 * e
            for c, d, e in zip(values[0:full:3], values[1:full:3], values[2:full:3], strict=True)
        ]
        pos = 3 * next(i for i, w in enumerate(words) if w > 0xFFFF)
        raise DecodeError(
            f"Base45 group {text[pos:pos + 3]!r} at position {pos} overflows 65535",
            step="base45",
        )
    if full != n:
        last = values[full] + 45 * values[full + 1]
        if last > 0xFF:
            raise DecodeError(
                f"Base45 final pair {text[full:]!r} overflows 255", step="base45"
            )
        out += bytes((last,))
    return out


def strip_prefix(text: str) -> str:
    """Return the Base45 part of an ``HC1:`` payload or raise (step ``prefix``)."""
    if len(text) > MAX_TEXT:
        raise DecodeError(
            f"payload too long ({len(text)} characters; an HC1 QR holds at most {MAX_TEXT})",
            step="prefix",
        )
    if text.startswith(PREFIX):
        return text[len(PREFIX):]
    head = text[:4]
    if len(head) == 4 and head[:2] == "HC" and head[3] == ":":
        raise DecodeError(
            f"unsupported HCERT version {head!r} (only HC1: is supported)", step="prefix"
        )
    if head.upper() == PREFIX:
        raise DecodeError(
            "prefix is lower case ('hc1:'); the scanner changed the text", step="prefix"
        )
    raise DecodeError(
        "not an EU DCC credential: the text does not start with 'HC1:'",
        step="prefix",
        hint="make sure the QR scanned is the vaccination credential",
    )


def _zlib_level9(data: bytes) -> bytes:
    # memLevel 4 instead of 8: smaller hash tables to allocate and clear, same stream
    c = zlib.compressobj(9, zlib.DEFLATED, 15, 4)
    return c.compress(data) + c.flush()


def _best_compressor() -> Any:
    """libdeflate's zlib compressor when the ``deflate`` package is installed, else zlib."""
    try:
        from deflate import zlib_compress
    except ImportError:  # pragma: no cover - a dependency; kept working without it
        return _zlib_level9
    def compress_libdeflate(data: bytes) -> bytes:
        # Below 64 bytes libdeflate may emit a stored block (9 zero bytes: 20 bytes out
        # against zlib's 11); from 64 bytes on it measured at most 6 bytes above zlib's
        # level 9. No credential is that small, so this costs nothing in practice.
        if len(data) < _LIBDEFLATE_MIN:
            return _zlib_level9(data)
        return bytes(zlib_compress(data, 9))  # it returns a bytearray

    return compress_libdeflate


_LIBDEFLATE_MIN = 64
_compressor: list[Any] = []


def compress(data: bytes) -> bytes:
    """zlib (RFC 1950) at level 9, as HCERT recommends: header ``78 DA``, 32 KiB window.

    Compressed with libdeflate (the ``deflate`` package) at level 9: for a ~360-byte
    credential it takes 8.5 µs where zlib takes 15-16 µs (its Huffman-tree set-up; the cost
    is the same at every zlib level), and its output is as small or a few bytes smaller
    (366.2 vs 366.3 bytes on average). Any zlib inflater reads it; stdlib zlib is the
    fallback when the package is missing.
    """
    if not _compressor:
        _compressor.append(_best_compressor())
    out: bytes = _compressor[0](data)
    return out


def decompress(data: bytes, *, limit: int = MAX_INFLATED) -> bytes:
    """Inflate a zlib stream with a hard cap on the output; raise (step ``zlib``) on any flaw."""
    if len(data) < 2 or data[0] & 0x0F != 8 or (data[0] << 8 | data[1]) % 31:
        hint = None
        if data[:1] in (b"\xd2", b"\x84", b"\xd8"):
            hint = "the payload is an uncompressed COSE message; HCERT requires zlib"
        raise DecodeError("payload is not zlib-compressed (bad zlib header)", step="zlib",
                          hint=hint)
    d = zlib.decompressobj()
    try:
        out = d.decompress(data, limit)
    except zlib.error as exc:
        raise DecodeError(f"zlib data is corrupt ({exc})", step="zlib") from None
    if d.unconsumed_tail:
        raise DecodeError(
            f"zlib output exceeds the {limit // 1024} KiB limit (a decompression bomb?)",
            step="zlib",
        )
    if not d.eof:
        raise DecodeError("zlib data is truncated", step="zlib")
    if d.unused_data:
        raise DecodeError("unexpected data after the end of the zlib stream", step="zlib")
    if _padding_bits_set(data, out):
        raise DecodeError(
            "zlib data has non-zero padding bits after its last block (the text was altered)",
            step="zlib",
        )
    return out


def _padding_bits_set(data: bytes, out: bytes) -> bool:
    """Whether the unused high bits of the last deflate byte (before the Adler-32) are set.

    Inflate ignores them, so without this check one Base45 character can be changed
    (e.g. ``7`` → ``*`` adds 32 to a byte) and the credential still verifies. Every deflate
    writer pads with zeros. The highest set bit of that byte is padding exactly when
    clearing it leaves the stream decoding to the same output: a bit of the final
    end-of-block code (or of a literal) would change the output or break the stream.
    """
    if len(data) < 7:
        return False
    last = data[-5]
    if not last:
        return False
    # The deflate data alone (raw inflate, no header or Adler-32): the same verdict as
    # inflating the whole altered zlib stream (the Adler-32 matches exactly when the output
    # is the same), without the "incorrect data check" exception that the usual outcome,
    # a different output, raises there (~0.4 µs).
    altered = data[2:-5] + bytes((last ^ (1 << (last.bit_length() - 1)),))
    d = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        again = d.decompress(altered, len(out) + 1)
    except zlib.error:
        return False
    return d.eof and not d.unused_data and not d.unconsumed_tail and again == out


def encode_hc1(cose: bytes) -> str:
    """COSE bytes → ``HC1:`` text (zlib level 9, Base45, prefix)."""
    return PREFIX + b45encode(compress(cose))
