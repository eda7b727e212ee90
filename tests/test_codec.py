import json
import signal
import subprocess
import sys
import zlib
from pathlib import Path

import nativec
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from vaxqr import codec
from vaxqr.errors import DecodeError

import dccref

VECTORS = sorted((Path(__file__).parent / "vectors" / "base45").glob("*.json"))


@pytest.mark.parametrize("path", VECTORS, ids=[p.stem for p in VECTORS])
def test_rfc_vectors(path):
    v = json.loads(path.read_text())
    assert codec.b45encode(bytes.fromhex(v["hex"])) == v["base45"]
    assert codec.b45decode(v["base45"]) == bytes.fromhex(v["hex"])


@given(st.binary(max_size=600))
def test_round_trip(data):
    assert codec.b45decode(codec.b45encode(data)) == data


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("GGW", "overflows 65535"),
        ("ZZZ", "overflows 65535"),
        ("V5", "overflows 255"),
        ("::", "overflows 255"),
        ("A", "impossible length"),
        ("BB8A", "impossible length"),
        ("bb8", "lower-case"),
        ("BB#", "outside the Base45 alphabet"),
        ("BBÄ", "non-ASCII"),
        ("BB\ufffd", "non-ASCII"),
    ],
)
def test_rejects(text, fragment):
    with pytest.raises(DecodeError) as info:
        codec.b45decode(text)
    assert info.value.step == "base45"
    assert fragment in str(info.value)


@given(st.text(max_size=50))
def test_decode_never_crashes(text):
    try:
        codec.b45decode(text)
    except DecodeError as exc:
        assert exc.step == "base45"


def test_prefix_rules():
    assert codec.strip_prefix("HC1:ABC") == "ABC"
    for bad, frag in [("HC2:ABC", "unsupported"), ("HL0:ABC", "does not start"),
                      ("hc1:ABC", "lower case"), ("ABC", "does not start"), ("", "does not")]:
        with pytest.raises(DecodeError) as info:
            codec.strip_prefix(bad)
        assert info.value.step == "prefix" and frag in str(info.value)
    with pytest.raises(DecodeError, match="too long"):
        codec.strip_prefix("HC1:" + "A" * 10000)


def test_zlib_required_and_capped():
    payload = b"\xd2\x84" + b"x" * 100
    assert codec.decompress(codec.compress(payload)) == payload
    assert codec.compress(payload)[:2] == b"\x78\xda"
    with pytest.raises(DecodeError, match="not zlib") as info:
        codec.decompress(payload)
    assert info.value.hint and "uncompressed" in info.value.hint
    bomb = zlib.compress(b"\0" * (50 * 1024 * 1024), 9)
    assert len(bomb) < 60_000
    with pytest.raises(DecodeError, match="exceeds"):
        codec.decompress(bomb)
    good = zlib.compress(b"hello")
    with pytest.raises(DecodeError, match="truncated"):
        codec.decompress(good[:-3])
    with pytest.raises(DecodeError, match="after the end"):
        codec.decompress(good + b"junk")
    default_level = zlib.compress(b"hello world", 6)
    assert default_level[:2] == b"\x78\x9c"
    assert codec.decompress(default_level) == b"hello world"


def test_encode_hc1_shape():
    text = codec.encode_hc1(b"\xd2\x84abc")
    assert text.startswith("HC1:")
    assert set(text[4:]) <= set(codec.ALPHABET)
    assert codec.decompress(codec.b45decode(codec.strip_prefix(text))) == b"\xd2\x84abc"


@given(st.binary(min_size=1, max_size=2000))
@example(bytes(9))  # libdeflate alone stored it: 20 bytes against zlib's 11
@example(bytes(63))
def test_compress_is_level_9_zlib_of_the_same_size(data):
    out = codec.compress(data)
    assert out[:2] == b"\x78\xda"  # deflate, 32 KiB window, level 9 flag
    assert zlib.decompress(out) == data
    assert len(out) <= len(zlib.compress(data, 9)) + 8


def _b45encode_reference(data: bytes) -> str:
    """RFC 9285 §4, written as plainly as possible."""
    a = codec.ALPHABET
    out = []
    for i in range(0, len(data) - 1, 2):
        n = data[i] * 256 + data[i + 1]
        out += [a[n % 45], a[n // 45 % 45], a[n // 2025]]
    if len(data) % 2:
        out += [a[data[-1] % 45], a[data[-1] // 45]]
    return "".join(out)


@given(st.binary(max_size=2000))
def test_b45encode_matches_the_rfc_algorithm(data):
    assert codec.b45encode(data) == _b45encode_reference(data)


@pytest.mark.parametrize("data", [b"", b"\x00", b"\xff", b"\x00\x00", b"\xff\xff", b"\xff" * 3,
                                  bytes(range(256)) * 40, b"\xff" * 8193, b"\xff\xfe" * 5000,
                                  bytearray(b"\x12\x34\x56"), memoryview(b"\xab\xcd\xef\x01")])
def test_b45encode_edges(data):
    assert codec.b45encode(data) == _b45encode_reference(bytes(data))


def _padding_bits_set_reference(data: bytes, out: bytes) -> bool:
    """The padding check as first written: the whole altered zlib stream inflated."""
    if len(data) < 7 or not data[-5]:
        return False
    last = data[-5]
    altered = data[:-5] + bytes((last ^ (1 << (last.bit_length() - 1)),)) + data[-4:]
    d = zlib.decompressobj()
    try:
        again = d.decompress(altered, len(out) + 1)
    except zlib.error:
        return False
    return d.eof and not d.unused_data and not d.unconsumed_tail and again == out


@settings(max_examples=1500, deadline=None)
@given(st.binary(max_size=400), st.integers(0, 9), st.integers(0, 4), st.integers(0, 255),
       st.booleans())
def test_padding_check_agrees_with_whole_stream_inflate(payload, level, strategy, bits, text):
    data = (payload.hex() if text else payload.decode("latin-1")).encode("latin-1")
    c = zlib.compressobj(level, zlib.DEFLATED, 15, 8, strategy)
    stream = bytearray(c.compress(data) + c.flush())
    for s in (bytes(stream), bytes(stream[:-5]) + bytes((stream[-5] | bits,)) + stream[-4:]):
        try:
            out = zlib.decompress(s)
        except zlib.error:
            continue
        assert codec._padding_bits_set(s, out) == _padding_bits_set_reference(s, out)


def _b45decode_reference(text: str) -> bytes | str:
    """RFC 9285 §4.2 group by group (tests/dccref.py); the overflow message of b45decode,
    else "other"."""
    try:
        return dccref.b45decode(text)
    except ValueError as exc:
        return str(exc) if "overflows" in str(exc) else "other"


@settings(max_examples=1000, deadline=None)
@given(st.text(alphabet=codec.ALPHABET, max_size=700), st.lists(st.integers(0, 699), max_size=3))
def test_b45decode_matches_the_rfc_algorithm(text, overflow_at):
    chars = list(text)
    for i in overflow_at:  # plant groups that overflow (":" is 44: "::: " > 65535)
        if i < len(chars):
            chars[i] = ":"
    text = "".join(chars)
    expected = _b45decode_reference(text)
    try:
        got: bytes | str = codec.b45decode(text)
    except DecodeError as exc:
        got = str(exc) if "overflows" in str(exc) else "other"
    assert got == expected


@given(st.binary(min_size=0, max_size=2000))
def test_both_compressors_give_level_9_zlib(data):
    """libdeflate (the default) and the stdlib fallback: the same kind of stream."""
    for out in (codec.compress(data), codec._zlib_level9(data)):
        assert type(out) is bytes and out[:2] == b"\x78\xda"
        assert zlib.decompress(out) == data
        assert codec.decompress(out) == data


def test_libdeflate_is_the_compressor_when_installed():
    pytest.importorskip("deflate", reason="the fallback is tested above; this checks the wiring")
    assert codec._best_compressor() is not codec._zlib_level9
    assert type(codec.compress(b"\xd2\x84" + bytes(range(256)))) is bytes


INTERRUPT_SCRIPT = """
import os, signal, sys, time
from vaxqr import codec
data = os.urandom(360)
text = codec.b45encode(data)
values = text.encode("ascii").translate(codec._DECODE_TABLE)
armed = [False]
def handler(*_):
    if armed[0]:
        armed[0] = False
        raise KeyboardInterrupt
signal.signal(signal.SIGALRM, handler)
caught = 0
for n in range(600):
    try:  # armed inside: on a loaded machine the timer can fire before the loop starts
        armed[0] = True
        signal.setitimer(signal.ITIMER_REAL, 0.0002 + (n % 40) * 0.00001)
        while True:
            if n % 3 == 0:  # the public functions (the C loops, where they are built)
                codec.b45decode(codec.b45encode(data))
            elif n % 3 == 1:  # the big-integer lanes themselves, compiled or not
                codec._b45encode_lanes(data)
            else:
                codec._decode_groups(values, len(values))
    except KeyboardInterrupt:
        caught += 1
    armed[0] = False
print("caught", caught)
"""


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs signal.setitimer")
def test_ctrl_c_during_base45_is_a_keyboardinterrupt_not_an_abort():
    """Compiled, big-integer arithmetic on `int` variables aborts the whole process on any
    error ("fatal: out of memory", SIGABRT), and a product checks for signals: Ctrl-C during
    a Base45 encode did that (in `vaxqr issue --from`, 3 times in 4). The lanes are `Any` so
    the interrupt is raised as in Python; 600 interrupts at random points."""
    proc = subprocess.run([sys.executable, "-c", INTERRUPT_SCRIPT], capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-500:]
    assert proc.stdout.split() == ["caught", "600"]


# --- the C loops (vaxqr/_base45.c), built with the compiled modules ---------------------

C, _WHY_NO_C = nativec.load("_base45")
_NO_C = pytest.mark.skipif(C is None, reason=_WHY_NO_C or "-")


@pytest.mark.skipif(codec._C is None, reason="this run does not use the build (pure Python)")
def test_the_c_loops_are_what_the_stream_uses():
    import vaxqr

    assert codec._C is C and C.__name__ == "vaxqr._base45"
    assert "_base45" in vaxqr.native_modules()


@_NO_C
@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=1500), st.integers(0, 600))
def test_c_decode_groups_is_the_python_lanes_on_any_bytes(values, groups):
    """Any byte values (not only digits 0-44): the same bytes, or None for an overflow."""
    full = min(3 * groups, len(values) - len(values) % 3)
    assert C.decode_groups(values, full) == codec._decode_groups(values, full)


@_NO_C
@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=3000))
def test_c_encode_is_the_python_lanes(data):
    assert C.encode(data) == codec._b45encode_lanes(data) == _b45encode_reference(data)


@_NO_C
@pytest.mark.parametrize("args, error", [
    ((b"abc", 4), ValueError), ((b"abc", -3), ValueError), ((b"abcd", 2), ValueError),
    ((bytearray(b"abc"), 3), TypeError), (("abc", 3), TypeError), ((b"abc", "3"), TypeError),
    ((b"abc", 2 ** 70), OverflowError), ((b"abc",), TypeError), ((b"abc", 3, 3), TypeError),
])
def test_c_decode_groups_refuses_what_it_cannot_read(args, error):
    with pytest.raises(error):
        C.decode_groups(*args)


@_NO_C
@pytest.mark.parametrize("arg", ["text", bytearray(b"ab"), memoryview(b"ab"), None, 3])
def test_c_encode_takes_bytes_only_and_b45encode_the_rest(arg):
    with pytest.raises(TypeError):
        C.encode(arg)
    if isinstance(arg, bytearray | memoryview):  # b45encode gives these to the Python lanes
        assert codec.b45encode(arg) == _b45encode_reference(bytes(arg))


# The seed and regression corpus of fuzz/base45_fuzz.c (libFuzzer with ASan and UBSan, see
# fuzz/README.md), replayed here on the built extension as the harness reads each input:
# its first byte picks decode_groups, encode, Base45 text or wrong argument types.
FUZZ_CORPUS = sorted((Path(__file__).parent / "vectors" / "base45-fuzz").iterdir())


def _fuzz_full(data: bytes) -> tuple[int, bytes]:
    """decode_groups' ``full`` and values as the harness takes them from an input."""
    if len(data) < 8:
        return 0, data
    full, data = int.from_bytes(data[:8], "little", signed=True), data[8:]
    if full & 3:
        size = len(data)
        full = size - size % 3 if full & 1 else (full % (1 << 64)) % (size + 8) - 4
    return full, data


@_NO_C
@pytest.mark.parametrize("path", FUZZ_CORPUS, ids=lambda p: p.name)
def test_c_loops_on_the_fuzz_corpus(path):
    data = path.read_bytes()
    target, rest = data[0] % 4, data[1:]
    if target == 0:
        full, values = _fuzz_full(rest)
        if full < 0 or full > len(values) or full % 3:
            with pytest.raises(ValueError):
                C.decode_groups(values, full)
        else:
            assert C.decode_groups(values, full) == codec._decode_groups(values, full)
    elif target == 1:
        assert C.encode(rest) == _b45encode_reference(rest)
    elif target == 2:
        text = rest.decode("latin-1")
        try:
            got: bytes | str = codec.b45decode(text)
        except DecodeError as exc:
            got = str(exc) if "overflows" in str(exc) else "other"
        assert got == _b45decode_reference(text)
        if isinstance(got, bytes):
            assert C.encode(got) == text
    else:
        for arg in (bytearray(rest), rest.decode("latin-1"), memoryview(rest), len(rest), None):
            with pytest.raises(TypeError):
                C.encode(arg)
            with pytest.raises(TypeError):
                C.decode_groups(arg, 0)
