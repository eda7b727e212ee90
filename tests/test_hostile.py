"""Hostile input: every input ends in a Report with the right failed step, fast and small.

The material (a deterministic trusted signer, the hand-made hostile seeds, the mutators and
the oracle) is shared with the fuzzers in ``fuzz/fuzzkit.py``. Figures worth quoting are
printed (``pytest -s``) by the exhaustive and stream tests.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
import tracemalloc
import zlib
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import cbor2
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonref import terminal_safe_json

from vaxqr import codec, sign
from vaxqr.credential import to_jsonable
from vaxqr.errors import DecodeError, ValidationError
from vaxqr.schemas import validate_dcc
from vaxqr.verify import STEPS, Report, Verifier, report_json_text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "fuzz"))
import fuzzkit  # noqa: E402

KIT = fuzzkit.Kit()
SEEDS = fuzzkit.hostile_seeds(KIT)
CONTENT_STEPS = ("key_usage", "expiry", "schema", "revocation", "holder")
VAXQR = str(Path(sys.executable).parent / "vaxqr")
DEMO = ROOT / "keys" / "examples"
SUBS = codec.ALPHABET + "abcdefghijklmnopqrstuvwxyz" + "Ễ"  # exhaustive substitutes


def _expected(step: fuzzkit.Expected) -> tuple[str, ...]:
    return step if isinstance(step, tuple) else (step,) if step else ()


def _check(report: Report, step: fuzzkit.Expected) -> None:
    assert isinstance(report, Report)
    assert report_json_text(report) == terminal_safe_json(report.to_json())
    if step is None:
        assert report.valid, report.reason
        return
    assert not report.valid
    assert report.failed in _expected(step), (report.failed, report.reason)
    assert not (report.reason or "").startswith("internal error")
    status = {s.name: s.status for s in report.steps}
    if report.failed in CONTENT_STEPS:  # the signature held: only the content is wrong
        assert status["signature"] == "pass"
    elif report.failed != "signature":
        assert status.get("signature", "skipped") == "skipped"


# --------------------------------------------------------------------------- hand-made


@pytest.mark.parametrize(("name", "text", "step"), SEEDS, ids=[s[0] for s in SEEDS])
def test_hand_made_hostile_input(name, text, step):
    t0 = time.perf_counter()
    report = KIT.verify(text)
    elapsed = time.perf_counter() - t0
    _check(report, step)
    assert elapsed < 1.0, f"{name} took {elapsed:.2f} s"


def test_every_step_is_covered_by_a_seed():
    covered = {s for _n, _t, step in SEEDS for s in _expected(step)}
    assert covered >= {"prefix", "base45", "zlib", "cose", "cbor", "signature", "expiry",
                       "schema"}


def test_zlib_bomb_is_fast_and_small():
    bomb = fuzzkit.bomb_under_text_cap()  # ~5.4 KB of zlib that inflates to ~5.5 MB
    assert len(bomb) <= codec.MAX_TEXT
    inflated = len(zlib.decompress(codec.b45decode(bomb[4:])))
    assert inflated > 5_000_000
    tracemalloc.start()
    try:
        t0 = time.perf_counter()
        report = KIT.verify(bomb)
        elapsed = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert report.failed == "zlib" and "limit" in (report.reason or "")
    assert elapsed < 0.1
    assert peak < 1 << 20, f"peak {peak:,} bytes"  # the 64 KiB cap, not the 5.5 MB


def test_gigabyte_bomb_is_refused_with_little_memory():
    """Deflate inflates at most ~1032:1, so 1 GiB needs ~1 MB of zlib: over the HC1 text cap
    (refused at the prefix step); the codec on its own stops at its 64 KiB cap."""
    z = fuzzkit._zlib_bomb(1 << 30)
    assert len(z) < 1_100_000
    tracemalloc.start()
    try:
        t0 = time.perf_counter()
        with pytest.raises(DecodeError) as info:
            codec.decompress(z)
        elapsed = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert info.value.step == "zlib"
    # the 64 KiB of output plus the unconsumed input zlib hands back: never the GiB
    assert elapsed < 0.1 and peak < len(z) + 256 * 1024, (elapsed, peak)
    report = KIT.verify(codec.PREFIX + codec.b45encode(z[:200_000]))
    assert report.failed == "prefix"


def test_valid_signature_over_schema_invalid_content():
    """The signature step passes, the schema step names the problem."""
    expect = {
        "two-v": "exactly one entry", "dob-with-time": "dob", "dob-tagged-datetime": "dob",
        "missing-nam": "nam", "wrong-types": "not of type", "over-long-name": "too long",
        "dcc-int-key": "not text",
        "ver-5000-digits": ("cannot be validated", "ver:"), "dcc-float-nan": "finite",
    }
    seeds = {name: text for name, text, _s in SEEDS}
    for name, fragment in expect.items():
        report = KIT.verify(seeds[name])
        assert report.step("signature").status == "pass", name
        assert report.failed == "schema", (name, report.reason)
        fragments = fragment if isinstance(fragment, tuple) else (fragment,)
        assert any(f in (report.reason or "") for f in fragments), (name, report.reason)


def test_ps256_credentials():
    key, kid, cert = fuzzkit.ps256_material()
    verifier = Verifier(fuzzkit.TrustStore.from_certificates([cert], at=fuzzkit.AT),
                        at=fuzzkit.AT)
    payload = fuzzkit.claims_bytes(fuzzkit.default_dcc())
    good = codec.encode_hc1(sign.sign1(payload, key, kid))
    assert verifier.verify_text(good).valid
    prot = cbor2.dumps({1: sign.PS256, 4: kid})
    sig = key.sign(sign.sig_structure(prot, payload),
                   padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())
    for tamper, step in [
        (cbor2.dumps(cbor2.CBORTag(18, [prot, {}, payload, sig[:-1]])), "signature"),
        (cbor2.dumps(cbor2.CBORTag(18, [cbor2.dumps({1: sign.ES256, 4: kid}), {}, payload,
                                        sig])), "signature"),
        (cbor2.dumps(cbor2.CBORTag(18, [prot, {}, payload + b"\0", sig])), "cbor"),
    ]:
        _check(verifier.verify_text(codec.encode_hc1(tamper)), step)
    rng = random.Random(5)
    for _ in range(300):
        mutant = fuzzkit.mutate_text(good, rng)
        if fuzzkit.trimmed(mutant) != good:
            assert not verifier.verify_text(mutant).valid, mutant


# --------------------------------------------------------------------------- regressions


def test_regression_cbor_trailing_bytes_refused():
    """sign.loads ignored bytes after the CBOR item: ``COSE + 00`` verified VALID."""
    with pytest.raises(DecodeError, match="unexpected byte"):
        sign.loads(cbor2.dumps([1]) + b"\x00", step="cose")
    seeds = {n: (t, s) for n, t, s in SEEDS}
    for name in ("cbor-trailing", "claims-trailing-byte", "protected-trailing-byte"):
        text, step = seeds[name]
        _check(KIT.verify(text), step)


def test_regression_value_sharing_refused():
    """Tags 28/29 made a 300-byte DCC with 2**40 paths: to_jsonable never returned."""
    with pytest.raises(DecodeError, match="value sharing"):
        sign.loads(b"\xd8\x1c\x81\xd8\x1d\x00", step="cbor")  # a cycle
    seeds = {n: t for n, t, _s in SEEDS}
    t0 = time.perf_counter()
    report = KIT.verify(seeds["dcc-shared-dag-bomb"])
    assert report.failed == "cbor" and time.perf_counter() - t0 < 0.5


def test_regression_deflate_padding_bits():
    """zlib ignores the unused bits after the last deflate code: one Base45 character
    (e.g. ``7`` → ``*``, +32 on that byte) changed, and the credential still verified."""
    mutant = fuzzkit.padding_mutant(KIT)
    z = codec.b45decode(mutant[4:])
    cose = zlib.decompress(z)  # plain zlib: the same COSE as the genuine credential
    assert fuzzkit.signed_triple(codec.encode_hc1(cose)) is not None
    with pytest.raises(DecodeError, match="padding"):
        codec.decompress(z)
    assert KIT.verify(mutant).failed == "zlib"
    # ... and a genuine stream of every level still decodes
    for level in range(10):
        assert codec.decompress(zlib.compress(cose, level)) == cose


def test_regression_expiry_out_of_range_is_a_verdict():
    """An exp/iat beyond year 9999 raised ValueError out of verify_text."""
    for claims in ({"exp": 2**39}, {"iat": 2**39, "exp": 2**39 + 1}, {"iat": -(2**39)},
                   {"exp": 2**40 - 1}, {"iat": -(2**40) + 1}):
        report = KIT.verify(KIT.credential(**claims))
        assert report.failed == "expiry", (claims, report.reason)
        assert report.step("signature").status == "pass"


def test_regression_content_that_cannot_be_read_is_a_schema_failure():
    """A 5,000-digit int key (repr() refuses it) or 'ver' (int() refuses it) raised
    ValueError out of verify_text; now the schema step fails. (The key, a bignum, is now
    refused as CBOR tag 2 before the signature: integers in HCERT are major type 0.)"""
    report = KIT.verify(KIT.credential(fuzzkit.default_dcc(ver="9" * 5000 + ".0.0")))
    assert report.failed == "schema" and report.step("signature").status == "pass"
    report = KIT.verify(KIT.credential({**fuzzkit.default_dcc(), 10**5000: "x"}))
    assert report.failed == "cbor" and "CBOR tag 2 (bignum)" in (report.reason or "")


def test_internal_errors_fail_closed():
    """A bug inside a step (here the schema validator) is a NOT VALID verdict, never an
    exception that would stop a stream of scans."""

    def broken(_dcc):
        raise KeyError("bug")

    verifier = Verifier(KIT.store, at=fuzzkit.AT, validate_schema=broken)
    report = verifier.verify_text(KIT.credential())
    assert not report.valid
    assert report.failed == "schema"
    assert report.reason.startswith("internal error")


def test_to_jsonable_huge_int_key_is_a_validation_error():
    with pytest.raises(ValidationError):
        to_jsonable({10**5000: "x"})


def test_validate_dcc_huge_version_is_a_message():
    msgs = validate_dcc(fuzzkit.default_dcc(ver="9" * 5000 + ".0.0"))
    assert msgs and msgs[0].startswith("ver")


def test_schema_step_never_more_lenient_than_the_official_schema():
    """Differential: 3,000 DCCs at the schema's border (lengths at the limit, patterns just
    off, impossible dates, wrong types). Whatever vaxqr's validator (and its fast path)
    passes, plain jsonschema with the official schema file passes too."""
    rng = random.Random(1)
    passed = 0
    for _ in range(3000):
        dcc = fuzzkit.near_valid_dcc(rng)
        if not validate_dcc(dcc):
            passed += 1
            assert fuzzkit.reference_schema_errors(dcc) == [], dcc
    assert 100 < passed < 3000  # both sides of the border were visited


# --------------------------------------------------------------------------- hypothesis

FUZZ = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@FUZZ
@given(st.text(max_size=300))
def test_random_text(text):
    report = KIT.verify(text)
    assert not report.valid
    if not fuzzkit.trimmed(text).startswith("HC1:"):
        assert report.failed == "prefix"


@FUZZ
@given(st.text(alphabet=codec.ALPHABET, max_size=600))
def test_random_base45(body):
    report = KIT.verify("HC1:" + body)
    assert report.failed in ("base45", "zlib")


@FUZZ
@given(st.binary(max_size=600))
def test_random_bytes_as_zlib(data):
    report = KIT.verify(codec.PREFIX + codec.b45encode(data))
    assert report.failed == "zlib"


@FUZZ
@given(st.binary(max_size=600))
def test_random_bytes_as_cose(data):
    report = KIT.verify(fuzzkit.hc1_of(data))
    assert report.failed in ("cose", "cbor", "signature")


CBOR_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats()
    | st.text(max_size=20) | st.binary(max_size=70),
    lambda inner: st.lists(inner, max_size=5)
    | st.dictionaries(st.integers(-300, 300) | st.text(max_size=4), inner, max_size=5)
    | st.builds(cbor2.CBORTag, st.sampled_from([0, 1, 2, 18, 61, 98, 258, 1004]), inner),
    max_leaves=30,
)


@FUZZ
@given(CBOR_VALUES)
def test_random_cbor_as_cose(value):
    try:
        data = cbor2.dumps(value)
    except Exception:
        return
    report = KIT.verify(fuzzkit.hc1_of(data))
    assert report.failed in ("cose", "cbor", "signature")


@FUZZ
@given(CBOR_VALUES, st.sampled_from(["dob", "nam", "v", "ver", "extra"]))
def test_validly_signed_random_content(value, field):
    """Random content under a VALID signature: a verdict, never an exception."""
    dcc = fuzzkit.default_dcc()
    dcc[field] = value
    try:
        claims = fuzzkit.claims_bytes(dcc)
    except Exception:
        return
    report = KIT.verify(fuzzkit.hc1_of(KIT.cose(claims)))
    assert report.step("signature").status == "pass" or report.failed == "cbor"
    assert report.valid or report.failed in ("cbor", "schema", "key_usage"), report.reason


@FUZZ
@given(CBOR_VALUES)
def test_validly_signed_random_claims(value):
    try:
        payload = cbor2.dumps(value)
    except Exception:
        return
    report = KIT.verify(fuzzkit.hc1_of(KIT.cose(payload)))
    assert report.failed in ("cbor", *CONTENT_STEPS), report.reason


GOOD = KIT.credential()
GOOD_COSE = zlib.decompress(codec.b45decode(GOOD[4:]))


@FUZZ
@given(st.integers(0, len(GOOD) - 1), st.sampled_from(SUBS + "\x00\x1b\r\n\u202e\ufffd"))
def test_one_character_changed(pos, ch):
    mutant = GOOD[:pos] + ch + GOOD[pos + 1:]
    if mutant != GOOD:
        report = KIT.verify(mutant)
        assert not report.valid
        assert report.failed in ("prefix", "base45", "zlib")


@FUZZ
@given(st.integers(0, 2**31), st.integers(1, 6))
def test_mutated_credentials(seed, rounds):
    rng = random.Random(seed)
    text = GOOD
    for _ in range(rounds):
        text = fuzzkit.mutate_text(text, rng)
    report = KIT.verify(text)
    if report.valid:  # only a no-op mutation (e.g. a trailing NUL the pipeline strips)
        assert fuzzkit.signed_triple(text) == fuzzkit.signed_triple(GOOD)


@FUZZ
@given(st.integers(0, len(GOOD_COSE) * 8 - 1))
def test_cose_bit_flip(bit):
    b = bytearray(GOOD_COSE)
    b[bit // 8] ^= 1 << (bit % 8)
    report = KIT.verify(fuzzkit.hc1_of(bytes(b)))
    assert not report.valid
    assert report.failed in ("cose", "cbor", "signature"), report.reason


@FUZZ
@given(st.integers(0, len(codec.b45decode(GOOD[4:])) * 8 - 1))
def test_zlib_bit_flip(bit):
    z = bytearray(codec.b45decode(GOOD[4:]))
    z[bit // 8] ^= 1 << (bit % 8)
    report = KIT.verify(codec.PREFIX + codec.b45encode(bytes(z)))
    if bit // 8 == 1:  # FLG: its FLEVEL bits are informational (see the byte test below)
        assert report.failed in ("zlib", None)
    else:
        assert report.failed == "zlib"


# --------------------------------------------------------------------------- exhaustive


def _exhaustive(verifier: Verifier, text: str) -> tuple[int, Counter[str], list[str]]:
    steps: Counter[str] = Counter()
    accepted = []
    n = 0
    for i, orig in enumerate(text):
        head, tail = text[:i], text[i + 1:]
        for ch in SUBS:
            if ch == orig:
                continue
            n += 1
            report = verifier.verify_text(head + ch + tail)
            if report.valid:
                accepted.append(f"{i}:{orig}->{ch}")
            else:
                steps[report.failed or "?"] += 1
    return n, steps, accepted


def test_exhaustive_single_character_changes():
    """Every single-character change of three valid credentials (two ES256, one PS256),
    at every position, to every Base45 character, every lower-case letter and a non-ASCII
    letter, is NOT VALID."""
    key, kid, cert = fuzzkit.ps256_material()
    ps_verifier = Verifier(fuzzkit.TrustStore.from_certificates([cert], at=fuzzkit.AT),
                           at=fuzzkit.AT)
    ps_text = codec.encode_hc1(sign.sign1(fuzzkit.claims_bytes(
        fuzzkit.default_dcc(fn="Trần", gn="Thị Bích Ngọc")), key, kid))
    cases = [
        (KIT.verifier, KIT.credential(fuzzkit.default_dcc(fn="Nguyễn", gn="Văn An"))),
        (KIT.verifier, KIT.credential(fuzzkit.default_dcc(fn="Đặng", gn="Văn Lâm"))),
        (ps_verifier, ps_text),
    ]
    total, t0 = 0, time.perf_counter()
    for verifier, text in cases:
        assert verifier.verify_text(text).valid
        n, steps, accepted = _exhaustive(verifier, text)
        total += n
        assert not accepted
        assert set(steps) <= {"prefix", "base45", "zlib"}
        print(f"\n  {len(text)} characters: {n:,} changes, all NOT VALID {dict(steps)}")
    elapsed = time.perf_counter() - t0
    print(f"  exhaustive single-character changes: {total:,} in {elapsed:.1f} s")
    assert elapsed < 60


def test_exhaustive_insertions_and_deletions():
    text = KIT.credential(fuzzkit.default_dcc(fn="Lê", gn="Hoàng"))
    n = 0
    for i in range(len(text) + 1):
        if i < len(text):
            n += 1
            assert not KIT.verify(text[:i] + text[i + 1:]).valid, i
        for ch in codec.ALPHABET:
            mutant = text[:i] + ch + text[i:]
            if fuzzkit.trimmed(mutant) == text:  # a space before "HC1:" is read past
                continue
            n += 1
            assert not KIT.verify(mutant).valid, (i, ch)
    print(f"\n  {n:,} single-character insertions and deletions, all NOT VALID")


def test_exhaustive_single_byte_changes_of_the_zlib_stream():
    """Below the text: every one of the 255 other values of every byte of the zlib stream.
    The only accepted changes are the RFC 1950 FLEVEL variants of the header (DA → 01, 5E,
    9C: informational, any issuer's choice). No single Base45 character can make them: DA
    is the second byte of the first group and every other valid FLG value is 62, 124 or 217
    away, while one character moves a group by ±1..44, ±45k or ±2025k (and 31 away the FLG
    asks for a preset dictionary, which inflate refuses)."""
    text = KIT.credential(fuzzkit.default_dcc(fn="Phạm", gn="Minh"))
    z = codec.b45decode(text[4:])
    assert z[:2] == b"\x78\xda"
    accepted = []
    for i in range(len(z)):
        for v in range(256):
            if v != z[i]:
                mutant = z[:i] + bytes((v,)) + z[i + 1:]
                if KIT.verify(codec.PREFIX + codec.b45encode(mutant)).valid:
                    accepted.append((i, v))
    assert accepted == [(1, 0x01), (1, 0x5E), (1, 0x9C)]
    print(f"\n  {len(z) * 255:,} zlib byte changes: only the 3 FLEVEL variants verify")


# --------------------------------------------------------------------------- the CLI


@pytest.fixture(scope="module")
def kit_trust(tmp_path_factory):
    d = tmp_path_factory.mktemp("trust")
    (d / "dsc.pem").write_bytes(KIT.cert.public_bytes(Encoding.PEM))
    return ["--trust", str(d / "dsc.pem"), "--state", str(d / "state.json"),
            "--at", fuzzkit.AT.isoformat()]


def _cli_env():
    env = {k: v for k, v in os.environ.items()
           if k not in ("FORCE_COLOR", "CLICOLOR_FORCE", "PY_COLORS", "TTY_COMPATIBLE")}
    env.update(NO_COLOR="1", COLUMNS="100", TERM="dumb", PYTHONIOENCODING="utf-8")
    return env


def test_names_with_markup_ansi_and_bidi_never_reach_the_terminal(kit_trust):
    names = [("[red]Đỏ[/red]", "[bold]X[/] [link=http://evil]y[/link]"),
             ("\x1b[31mĐỏ\x1b[0m", "\x1b]0;pwned\x07\x1b[2J"),
             ("\u202eNguyễn", "\u2066An\u2069\u200f"),
             ("Lê\rVALID", "\x08\x08\x08Hoa")]
    args = [KIT.credential(fuzzkit.default_dcc(fn=fn, gn=gn)) for fn, gn in names]
    result = subprocess.run([VAXQR, "verify", *args, *kit_trust], capture_output=True,
                            env=_cli_env(), timeout=60)
    out = result.stdout
    assert result.returncode == 0, result.stderr.decode()
    text = out.decode("utf-8")
    assert text.count("✔ VALID") == len(names)
    assert b"\x1b" not in out and b"\x07" not in out and b"\x08" not in out
    for ch in "\u202e\u2066\u2069\u200f\r":
        assert ch not in text, repr(ch)
    assert "[red]Đỏ[/red]" in text  # markup printed literally
    assert "[link=http://evil]y[/link]" in text
    assert "\\x1b[31mĐỏ\\x1b[0m" in text  # the escape shown, not obeyed
    assert "\\u202eNguyễn" in text
    result = subprocess.run([VAXQR, "verify", *args, *kit_trust, "--json"],
                            capture_output=True, env=_cli_env(), timeout=60)
    got = [json.loads(line)["summary"]["full_name"] for line in result.stdout.split(b"\n")
           if line]
    assert got == [f"{fn} {gn}" for fn, gn in names]  # JSON keeps the data, escaped by JSON
    assert b"\x1b" not in result.stdout


def _stream_lines(rng: random.Random, valid: list[str]) -> list[bytes]:
    """Several thousand hostile lines (no bare CR or LF inside a line)."""
    texts = [t for _n, t, _s in SEEDS if len(t) < 20_000] + valid
    lines: list[bytes] = []
    for i in range(3000):
        kind = i % 10
        if kind <= 3:
            text = rng.choice(texts)
            for _ in range(rng.randrange(1, 4)):
                text = fuzzkit.mutate_text(text, rng)
            line = text.encode("utf-8", "surrogatepass")
        elif kind == 4:
            line = rng.choice(texts).encode("utf-8")
        elif kind == 5:
            line = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))
        elif kind == 6:
            line = rng.choice([b"\x00", b"\x00\x00HC1:\x00", b"HC1:\xff\xfe\xfd", b"\xc3\x28",
                               b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"   ", b"", b"\t",
                               b"\xef\xbb\xbf" + valid[0].encode()])
        elif kind == 7:
            line = fuzzkit.random_text(rng).encode("utf-8", "surrogatepass")
        elif kind == 8:
            line = rng.choice(valid).encode()
        else:
            line = fuzzkit.mutate_layer(rng.choice(texts), rng).encode()
        line = line.replace(b"\r", b"?").replace(b"\n", b"?")
        lines.append(line + rng.choice([b"\n", b"\r\n"]))
    lines[100] = b"A" * (1 << 20) + b"\n"  # 1 MiB lines: over the 64 KiB cap
    lines[200] = b"HC1:" + b"0" * (1 << 20) + b"\r\n"
    lines[300] = b"\x00" * (1 << 20) + b"\n"
    lines[-1] = b"HC1:" + b"A" * 100_000  # and a long last line without a newline
    return lines


def _expected_verdicts(lines: list[bytes]) -> list[int]:
    out = []
    for n, line in enumerate(lines, 1):
        content = line[:-2] if line.endswith(b"\r\n") else line.rstrip(b"\n")
        if len(line) > 64 * 1024 or content.decode("utf-8", "replace").strip():
            out.append(n)
    return out


@pytest.fixture(scope="module")
def demo_valid():
    from vaxqr.certs import load_signer

    signer = load_signer(DEMO / "communes" / "31078", b"vaxqr-demo")
    iat = int(datetime(2022, 1, 1, tzinfo=UTC).timestamp())
    payload = fuzzkit.claims_bytes(fuzzkit.default_dcc(), iat=iat, exp=iat + 365 * 86400)
    return [codec.encode_hc1(sign.sign1(payload, signer.private_key, signer.kid))]


class _HighWater:
    """Polls /proc/PID/status VmHWM (the peak RSS of the process's own memory map).

    ``ru_maxrss`` from wait4 is useless here: Linux folds the parent's RSS at fork into the
    child's maxrss at exec, so a child of a large pytest worker reports the worker's size."""

    def __init__(self, pid: int) -> None:
        import threading

        self.pid, self.peak_kib = pid, 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                with open(f"/proc/{self.pid}/status", encoding="ascii") as fh:
                    for line in fh:
                        if line.startswith("VmHWM:"):
                            self.peak_kib = max(self.peak_kib, int(line.split()[1]))
            except (OSError, ValueError):
                return
            time.sleep(0.02)


def _watch_vmhwm(pid: int) -> _HighWater:
    return _HighWater(pid)


def test_stream_of_thousands_of_hostile_lines(tmp_path, demo_valid, kit_trust):
    """3,000 hostile lines (1 MiB lines, NUL bytes, invalid UTF-8, bombs, mutants) piped to
    ``vaxqr verify - --json``: one verdict per non-empty line, exit 1, no traceback, and
    the process's peak RSS under 150 MB."""
    lines = _stream_lines(random.Random(11), demo_valid)
    (tmp_path / "in").write_bytes(b"".join(lines))
    cmd = [VAXQR, "verify", "-", "--json", "--trust", str(DEMO / "ca" / "ca.crt"),
           "--trust", str(DEMO / "trustlist.json"), *kit_trust]
    t0 = time.perf_counter()
    with open(tmp_path / "in", "rb") as fin, open(tmp_path / "out", "wb") as fout, \
            open(tmp_path / "err", "wb") as ferr:
        proc = subprocess.Popen(cmd, stdin=fin, stdout=fout, stderr=ferr, env=_cli_env())
        hwm = _watch_vmhwm(proc.pid)
        _pid, status, _usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.perf_counter() - t0
    out = (tmp_path / "out").read_bytes().decode("utf-8")
    err = (tmp_path / "err").read_bytes().decode("utf-8", "replace")
    # split on LF only: the JSON may hold raw U+0085 / U+2028, which str.splitlines() splits
    verdicts = [json.loads(line) for line in out.split("\n") if line]
    peak_mb = hwm.peak_kib / 1024
    steps = Counter(v["failed"] or "VALID" for v in verdicts)
    print(f"\n  stream: {len(lines):,} lines, {len(verdicts):,} verdicts in {elapsed:.1f} s, "
          f"peak RSS {peak_mb:.0f} MB, {dict(steps)}")
    assert proc.returncode == 1, err
    assert "Traceback" not in err and "internal error" not in err, err
    assert [v["input"] for v in verdicts] == [f"stdin:{n}" for n in _expected_verdicts(lines)]
    for v in verdicts:
        assert v["failed"] in (None, *STEPS)
        assert v["valid"] == (v["failed"] is None)
        assert not (v["reason"] or "").startswith("internal error")
    assert steps["VALID"] > 0  # the genuine credentials still pass amid the garbage
    accepted = {v["payload"] for v in verdicts if v["valid"]}
    assert {fuzzkit.signed_triple(p) for p in accepted} <= {
        fuzzkit.signed_triple(t) for t in demo_valid + [t for _n, t, s in SEEDS if s is None]}
    assert 0 < peak_mb < 150


# --------------------------------------------------------------------------- fuzzing


def _fuzz_session(tmp_path, script: str, seconds: float, *args: str) -> dict:
    """Run fuzz/``script`` for ``seconds`` with the suite's seed; its figures (exit 0)."""
    out = tmp_path / "fuzz.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "fuzz" / script), "--seconds", str(seconds),
         "--seed", "20211001", *args, "--json", str(out),
         "--crash-dir", str(tmp_path / "crashes")],
        capture_output=True, text=True, timeout=seconds + 120)
    print("\n" + result.stdout)
    figures = json.loads(out.read_text())
    assert result.returncode == 0, result.stdout + result.stderr
    return figures


def test_short_fuzz_session(tmp_path):
    """A CI-sized seeded session of fuzz/run.py (all targets): zero crashes."""
    figures = _fuzz_session(tmp_path, "run.py", float(os.environ.get("VAXQR_FUZZ_SECONDS", "20")),
                            "--slow", "2")
    assert figures["crashes"] == []
    assert figures["inputs"] > 1000
    assert figures["max_seconds"] < 2.0  # per input (a loaded CI machine: 2 s, not 1)
    assert figures["peak_rss_mib"] < 150
    assert all(figures["per_target"][t] > 0 for t in ("text", "stream", "signed-cbor",
                                                      "random"))


@pytest.mark.parametrize("tail", [b"\xd9\xd9\xf7", b"\xd9\x01\x00"])
def test_signed_payload_with_a_trailing_tag_head_is_not_valid(tail):
    """A validly signed CWT followed by the head of a tag (self-described CBOR 55799, or a
    string-reference namespace 256) has trailing bytes: not valid at the cbor step, in the
    compiled and the pure-Python build alike (the pure build's sentinel fast path once
    read it as one item: VALID)."""
    payload = fuzzkit.claims_bytes(fuzzkit.default_dcc()) + tail
    report = KIT.verify(fuzzkit.hc1_of(KIT.cose(payload)))
    _check(report, "cbor")
    assert "unexpected byte" in (report.reason or "")


def _trusted_signer_on(curve):
    """A verifier that trusts, directly, a DSC whose key is on ``curve``, and that key."""
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(curve)
    cert = fuzzkit.make_dsc(key, cn=f"UBND xã {curve.name} (TEST ONLY)")
    store = fuzzkit.TrustStore.from_certificates([cert], at=fuzzkit.AT)
    return Verifier(store, at=fuzzkit.AT), key, fuzzkit.kid_of(cert)


def _es256_credential(key, kid, payload=None):
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    payload = payload or fuzzkit.claims_bytes(fuzzkit.default_dcc())
    prot = cbor2.dumps({1: sign.ES256, 4: kid})
    r, s = decode_dss_signature(key.sign(sign.sig_structure(prot, payload),
                                         ec.ECDSA(hashes.SHA256())))
    size = (key.curve.key_size + 7) // 8
    sig = r.to_bytes(size, "big") + s.to_bytes(size, "big")
    return fuzzkit.hc1_of(cbor2.dumps(cbor2.CBORTag(18, [prot, {}, payload, sig])))


@pytest.mark.parametrize("curve", ["SECP256K1", "SECP192R1", "BrainpoolP256R1", "SECP521R1"])
def test_regression_es256_on_another_curve_is_not_valid(curve):
    """A DSC on secp256k1, P-192 or brainpoolP256r1, trusted directly, made ES256
    credentials that verified VALID: only the key type and signature length were checked."""
    from cryptography.hazmat.primitives.asymmetric import ec

    verifier, key, kid = _trusted_signer_on(getattr(ec, curve)())
    report = verifier.verify_text(_es256_credential(key, kid))
    _check(report, "signature")
    assert report.reason == (f"the signer's key is on curve {key.curve.name}; "
                             "ES256 needs P-256 (or P-384)")


def _tag(n, value):
    return cbor2.CBORTag(n, value)


def _tag_cases():
    """Validly signed credentials with a CBOR tag where HCERT allows none: (id, COSE bytes,
    failed step, the refused tag). cbor2 drops 55799 (self-described CBOR) and 256 (string
    references) silently, and turns other tags it knows into Python values."""
    payload = fuzzkit.claims_bytes(fuzzkit.default_dcc())
    prot = cbor2.dumps({1: sign.ES256, 4: KIT.kid})
    sig = KIT.signature(prot, payload)
    parts = [prot, {}, payload, sig]
    claims = cbor2.loads(payload)

    def signed(pl):
        return KIT.cose(pl)

    def claims_with(**changes):
        out = dict(claims)
        out.update({int(k[1:]) if k.startswith("m") else int(k): v
                    for k, v in changes.items()})
        return out

    dcc = fuzzkit.default_dcc()
    return [
        ("55799(18(cose))", cbor2.dumps(_tag(55799, _tag(18, parts))), "cose", 55799),
        ("256(18(cose))", cbor2.dumps(_tag(256, _tag(18, parts))), "cose", 256),
        ("61(55799(18(cose)))", cbor2.dumps(_tag(61, _tag(55799, _tag(18, parts)))), "cose",
         55799),
        ("18(55799(cose))", cbor2.dumps(_tag(18, _tag(55799, parts))), "cose", 55799),
        ("55799(cose)", cbor2.dumps(_tag(55799, parts)), "cose", 55799),
        ("55799(55799(18(cose)))", cbor2.dumps(_tag(55799, _tag(55799, _tag(18, parts)))),
         "cose", 55799),
        ("18(18 in unprotected)", cbor2.dumps(_tag(18, [prot, {4: _tag(18, KIT.kid)},
                                                        payload, sig])), "cose", 18),
        ("unprotected-kid-55799", cbor2.dumps(_tag(18, [prot, {4: _tag(55799, KIT.kid)},
                                                        payload, sig])), "cose", 55799),
        ("protected-55799", KIT.cose(payload, protected=cbor2.dumps(
            _tag(55799, {1: sign.ES256, 4: KIT.kid}))), "cose", 55799),
        ("protected-256", KIT.cose(payload, protected=cbor2.dumps(
            _tag(256, {1: sign.ES256, 4: KIT.kid}))), "cose", 256),
        ("protected-kid-tagged", KIT.cose(payload, protected=cbor2.dumps(
            {1: sign.ES256, 4: _tag(55799, KIT.kid)})), "cose", 55799),
        ("claims-55799", signed(cbor2.dumps(_tag(55799, claims))), "cbor", 55799),
        ("claims-256", signed(cbor2.dumps(_tag(256, claims))), "cbor", 256),
        ("claims-string-referencing", signed(cbor2.dumps(claims, string_referencing=True)),
         "cbor", 256),
        ("hcert-55799", signed(cbor2.dumps(claims_with(m260=_tag(55799, {1: dcc})))), "cbor",
         55799),
        ("dcc-256", signed(cbor2.dumps(claims_with(m260={1: _tag(256, dcc)}))), "cbor", 256),
        ("dcc-55799", signed(cbor2.dumps(claims_with(m260={1: _tag(55799, dcc)}))), "cbor",
         55799),
        ("iat-55799", signed(cbor2.dumps(claims_with(**{"6": _tag(55799, fuzzkit.IAT)}))),
         "cbor", 55799),
        ("dob-55799", signed(fuzzkit.claims_bytes(fuzzkit.default_dcc(
            dob=_tag(55799, "1990-01-02")))), "cbor", 55799),
        ("dob-epoch-1", signed(fuzzkit.claims_bytes(fuzzkit.default_dcc(
            dob=_tag(1, 631238400)))), "cbor", 1),
        ("dob-date-1004", signed(fuzzkit.claims_bytes(fuzzkit.default_dcc(
            dob=_tag(1004, "1990-01-02")))), "cbor", 1004),
        ("dn-bignum", signed(fuzzkit.claims_bytes(fuzzkit.default_dcc(
            v=[{**dcc["v"][0], "dn": _tag(2, b"\x02")}]))), "cbor", 2),
        ("dcc-unknown-tag", signed(fuzzkit.claims_bytes(fuzzkit.default_dcc(
            dob=_tag(4242, "1990-01-02")))), "cbor", 4242),
    ]


TAG_CASES = _tag_cases()


@pytest.mark.parametrize(("name", "cose", "step", "tag"), TAG_CASES,
                         ids=[c[0] for c in TAG_CASES])
def test_regression_cbor_tags_outside_18_and_61_18_are_refused(name, cose, step, tag):
    """55799(18(...)), 256(18(...)), 61(55799(18(...))), 18(55799(...)), 55799([...]) and the
    same tags inside the protected header, the claims or the DCC verified VALID: cbor2 strips
    tags 55799 and 256, so the tag check never saw them. HCERT allows untagged, 18 or 61(18)
    around the COSE_Sign1, and inside the CWT only tag 0 (a date-time)."""
    report = KIT.verify(fuzzkit.hc1_of(cose))
    _check(report, step)
    assert f"CBOR tag {tag}" in (report.reason or ""), report.reason


def test_tag_0_date_time_in_the_dcc_still_reads():
    """Validators MUST read tagged (0) and untagged date-times (standards.md §1.3)."""
    dcc = fuzzkit.default_dcc()
    dcc["v"][0]["dt"] = _tag(0, "2021-10-01T00:00:00Z")
    report = KIT.verify(KIT.credential(dcc))
    assert report.step("cbor").status == "pass"
    assert report.credential["v"][0]["dt"] == "2021-10-01T00:00:00Z"


@pytest.mark.parametrize("claim", ["iat", "exp"])
@pytest.mark.parametrize("value", [float(fuzzkit.IAT + 1), 1.6e9 + 0.5, 1.7e9])
def test_regression_float_numeric_dates_are_refused(claim, value):
    """iat/exp as CBOR floats verified VALID (truncated to int); HCERT NumericDates are
    integers (hcert-spec 43c608a; dgc-testdata I-CO4)."""
    values = {"iat": fuzzkit.IAT, "exp": fuzzkit.EXP, claim: value}
    report = KIT.verify(KIT.credential(**values))
    _check(report, "cbor")
    assert report.reason == (f"CWT claim {claim} must be an integer NumericDate, "
                             f"not a float ({value!r})")


def _key_cases():
    """Validly signed credentials whose integer keys are floats or booleans (Python's ==
    and hash make 1.0 and True the same key as 1)."""
    dcc = fuzzkit.default_dcc()

    def claims(old, new):
        out = {1: "VN", 6: fuzzkit.IAT, 4: fuzzkit.EXP, -260: {1: dcc}}
        out[new] = out.pop(old)
        return out

    def hcert_key(key):
        return {1: "VN", 6: fuzzkit.IAT, 4: fuzzkit.EXP, -260: {key: dcc}}

    return [
        ("claims -260.0", KIT.cose(cbor2.dumps(claims(-260, -260.0))), "cbor"),
        ("hcert key 1.0", KIT.cose(cbor2.dumps(hcert_key(1.0))), "cbor"),
        ("hcert key True", KIT.cose(cbor2.dumps(hcert_key(True))), "cbor"),
        ("iat key 6.0", KIT.cose(cbor2.dumps(claims(6, 6.0))), "cbor"),
        ("exp key 4.0", KIT.cose(cbor2.dumps(claims(4, 4.0))), "cbor"),
        ("iss key True", KIT.cose(cbor2.dumps(claims(1, True))), "cbor"),
        ("protected alg key True", KIT.cose(fuzzkit.claims_bytes(dcc),
                                            protected={True: sign.ES256, 4: KIT.kid}), "cose"),
        ("protected alg key 1.0", KIT.cose(fuzzkit.claims_bytes(dcc),
                                           protected={1.0: sign.ES256, 4: KIT.kid}), "cose"),
        ("protected kid key 4.0", KIT.cose(fuzzkit.claims_bytes(dcc),
                                           protected={1: sign.ES256, 4.0: KIT.kid}), "cose"),
        ("unprotected kid key 4.0", KIT.cose(fuzzkit.claims_bytes(dcc), protected={1: -7},
                                             unprotected={4.0: KIT.kid}), "cose"),
    ]


KEY_CASES = _key_cases()


@pytest.mark.parametrize(("name", "cose", "step"), KEY_CASES, ids=[c[0] for c in KEY_CASES])
def test_regression_float_and_boolean_keys_are_not_integer_keys(name, cose, step):
    """{-260.0: {1: DCC}}, {-260: {True: DCC}}, {6.0: iat}, a protected {True: -7} ...
    verified VALID: the claims and header maps were read with Python's ``==``."""
    report = KIT.verify(fuzzkit.hc1_of(cose))
    _check(report, step)
    assert ("not an integer" in (report.reason or "")
            or "must be the integer 1" in (report.reason or "")), report.reason


def _crit_cases():
    payload = fuzzkit.claims_bytes(fuzzkit.default_dcc())
    kid = KIT.kid

    def prot(**extra):
        return {1: sign.ES256, 4: kid, **{int(k[1:]): v for k, v in extra.items()}}

    return [
        ("crit-unknown-label", KIT.cose(payload, protected=prot(h2=[99])),
         "the COSE header marks parameter 99 as critical (crit), and vaxqr does not "
         "understand it"),
        ("crit-unknown-text-label", KIT.cose(payload, protected=prot(h2=[4, "exotic"])),
         "the COSE header marks parameter 'exotic' as critical (crit), and vaxqr does not "
         "understand it"),
        ("crit-empty", KIT.cose(payload, protected=prot(h2=[])),
         "the COSE crit parameter must be a non-empty array of header labels"),
        ("crit-not-array", KIT.cose(payload, protected=prot(h2=99)),
         "the COSE crit parameter must be a non-empty array of header labels"),
        ("crit-float-label", KIT.cose(payload, protected=prot(h2=[1.0])),
         "the COSE crit parameter must be a non-empty array of header labels"),
        ("crit-unprotected", KIT.cose(payload, unprotected={2: [99]}),
         "the COSE crit parameter must be in the protected header"),
        ("crit-unprotected-known", KIT.cose(payload, unprotected={2: [4]}),
         "the COSE crit parameter must be in the protected header"),
    ]


CRIT_CASES = _crit_cases()


@pytest.mark.parametrize(("name", "cose", "message"), CRIT_CASES,
                         ids=[c[0] for c in CRIT_CASES])
def test_regression_crit_header_is_honoured(name, cose, message):
    """A protected crit listing a label vaxqr does not understand verified VALID; RFC 9052
    §3.1: the recipient MUST reject it (and crit must be protected and non-empty)."""
    report = KIT.verify(fuzzkit.hc1_of(cose))
    _check(report, "signature")
    assert report.reason == message


def test_crit_listing_only_alg_and_kid_is_understood():
    payload = fuzzkit.claims_bytes(fuzzkit.default_dcc())
    for crit in ([1], [4], [1, 4]):
        report = KIT.verify(fuzzkit.hc1_of(KIT.cose(
            payload, protected={1: sign.ES256, 4: KIT.kid, 2: crit})))
        assert report.valid, (crit, report.reason)


@pytest.mark.parametrize("bad_kid", ["abcdefgh", 12345678, [1, 2], None, True, 1.5,
                                     {1: b"x"}], ids=repr)
def test_regression_protected_kid_of_the_wrong_type_is_not_skipped(bad_kid):
    """A protected kid that was not a byte string was passed over for the unprotected one
    (VALID); HCERT §3.3.3: when both are present the protected one MUST be used."""
    payload = fuzzkit.claims_bytes(fuzzkit.default_dcc())
    cose = KIT.cose(payload, protected={1: sign.ES256, 4: bad_kid}, unprotected={4: KIT.kid})
    report = KIT.verify(fuzzkit.hc1_of(cose))
    _check(report, "signature")
    assert report.reason.startswith("the key identifier (kid) in the protected header is "), \
        report.reason
    assert report.reason.endswith(", not a byte string")


def test_regression_nbf_is_enforced():
    """CWT nbf (claim 5) was ignored: a credential not valid before a future time verified
    VALID. The expiry step now fails as it does for an iat in the future."""
    at = int(fuzzkit.AT.timestamp())
    report = KIT.verify(KIT.credential(extra={5: at + 86400}))
    _check(report, "expiry")
    assert report.reason == "credential not valid before 2022-06-02 00:00 UTC"
    assert report.claims["nbf"] == at + 86400
    assert report.step("signature").status == "pass"
    for nbf in (at - 86400, at, fuzzkit.IAT):  # from nbf on, it is valid
        report = KIT.verify(KIT.credential(extra={5: nbf}))
        assert report.valid, (nbf, report.reason)
        assert report.claims["nbf"] == nbf
    assert "nbf" not in KIT.verify(KIT.credential()).claims  # absent: not shown


@pytest.mark.parametrize(("nbf", "step", "reason"), [
    (1.7e9, "cbor", "CWT claim nbf must be an integer NumericDate, not a float (1700000000.0)"),
    ("2022-01-01", "cbor", "CWT claim nbf must be an integer NumericDate, not text"),
    (None, "cbor", "CWT claim nbf must be an integer NumericDate, not null"),
    (2**41, "cbor", "CWT claim nbf is out of range"),
    (2**39, "expiry", "the credential's nbf time (549755813888) is outside the years 1-9999"),
])
def test_nbf_must_be_an_integer_numeric_date(nbf, step, reason):
    report = KIT.verify(KIT.credential(extra={5: nbf}))
    _check(report, step)
    assert report.reason == reason


@pytest.mark.parametrize("target", ["cccd", "trust", "state", "issue-csv", "reconcile", "at"])
def test_short_input_fuzz_session(tmp_path, target):
    """A CI-sized seeded session of fuzz/run_inputs.py per target (the untrusted inputs
    other than HC1: CCCD card text, trust material, the state file, CSVs, --at): every
    input returns or raises a VaxqrError, quickly, in bounded memory."""
    seconds = float(os.environ.get("VAXQR_FUZZ_SECONDS", "20")) / 4
    figures = _fuzz_session(tmp_path, "run_inputs.py", seconds, "--target", target,
                            "--slow", "3", "--hang", "60")
    assert figures["findings"] == []
    assert figures["inputs"] > 20
    assert figures["peak_rss_mib"] < 1024


def test_short_differential_session(tmp_path):
    """A CI-sized seeded session of fuzz/differential.py: the compiled modules and the pure
    Python give the same verify reports, codec results, CCCD parses, row verdicts and
    schema verdicts on the same hostile inputs."""
    seconds = float(os.environ.get("VAXQR_FUZZ_SECONDS", "20")) / 5
    out = tmp_path / "diff.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "fuzz" / "differential.py"), "--seconds", str(seconds),
         "--max-inputs", "400", "--seed", "20211001", "--json", str(out),
         "--crash-dir", str(tmp_path / "crashes")],
        capture_output=True, text=True, timeout=seconds + 120)
    print("\n" + result.stdout)
    figures = json.loads(out.read_text())
    if "skipped" in figures and not os.environ.get("VAXQR_NATIVE_REQUIRED"):
        pytest.skip(figures["skipped"])  # nothing compiled here: nothing to compare
    assert result.returncode == 0, result.stdout + result.stderr
    assert figures["findings"] == []
    assert all(n > 5 for n in figures["per_target"].values()), figures["per_target"]
