#!/usr/bin/env python3
"""Coverage-guided fuzzing of the verify path with atheris (libFuzzer for Python).

    .venv/bin/pip install atheris            # or: pip install -e '.[fuzz]'
    .venv/bin/python fuzz/fuzz_verify.py -max_total_time=300 fuzz/corpus-atheris

The first byte of each input picks a target, the rest is its data:

====  =====================================================================================
0     text: ``Verifier.verify_text`` on the data read as UTF-8 (errors replaced)
1     ``HC1:`` + Base45 of the data (reaches zlib)
2     ``HC1:`` + Base45 + zlib of the data (reaches COSE)
3     a COSE_Sign1 around the data as CWT payload, validly signed by the trusted test key
      (reaches the CWT, key usage, expiry, schema and revocation steps)
4     a validly signed CWT whose DCC is the data decoded as CBOR, when it decodes
5     the data as bytes piped to ``vaxqr verify -`` (the CLI's line reader)
6     the data as a picture (``vaxqr.verify.verify_image`` → ``vaxqr.qr.decode_image``)
====  =====================================================================================

The oracle is ``fuzzkit.Oracle``: any exception, internal-error report, VALID verdict on
something the trusted key did not sign, or unescaped terminal output is a crash. With an
empty corpus directory, the hand-made hostile seeds are written into it first.
"""

from __future__ import annotations

import sys
import tempfile
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))

import atheris  # noqa: E402

with atheris.instrument_imports():
    import cbor2
    import fuzzkit

    import vaxqr.codec
    import vaxqr.credential
    import vaxqr.schemas
    import vaxqr.sign
    import vaxqr.verify
    import vaxqr.verify_view

    try:
        import vaxqr.qr
        HAVE_QR = True
    except ImportError:  # pragma: no cover
        HAVE_QR = False

KIT = fuzzkit.Kit()
SEEDS = fuzzkit.hostile_seeds(KIT)
ORACLE = fuzzkit.Oracle(KIT, SEEDS, render_every=1)
TARGETS = 7 if HAVE_QR else 6


def _signed(payload: bytes) -> None:
    """Verify ``payload`` as a CWT validly signed by the trusted key (so VALID is fine)."""
    text = fuzzkit.hc1_of(KIT.cose(payload))
    ORACLE.text(text, genuine=fuzzkit.signed_triple(text))


def test_one_input(data: bytes) -> None:
    if not data:
        return
    target, body = data[0] % TARGETS, data[1:]
    if target == 0:
        ORACLE.text(body.decode("utf-8", errors="replace"))
    elif target == 1:
        ORACLE.text(vaxqr.codec.PREFIX + vaxqr.codec.b45encode(body))
    elif target == 2:
        ORACLE.text(vaxqr.codec.PREFIX + vaxqr.codec.b45encode(zlib.compress(body, 9)))
    elif target == 3:
        _signed(body)
    elif target == 4:
        try:
            dcc = cbor2.loads(body)
            claims = fuzzkit.claims_bytes(dcc)
        except Exception:
            return
        _signed(claims)
    elif target == 5:
        ORACLE.stream(body)
    else:
        ORACLE.image(body)


def _write_seed_corpus(directory: Path) -> None:
    """Hand-made seeds, one file per target where it applies."""
    directory.mkdir(parents=True, exist_ok=True)
    for i, (_name, text, _step) in enumerate(SEEDS):
        (directory / f"seed-{i:03d}-text").write_bytes(b"\x00" + text.encode("utf-8"))
        (directory / f"seed-{i:03d}-stream").write_bytes(b"\x05" + text.encode("utf-8") + b"\n")
        try:
            cose = vaxqr.codec.decompress(vaxqr.codec.b45decode(text[4:]), limit=1 << 16)
        except Exception:
            continue
        (directory / f"seed-{i:03d}-cose").write_bytes(b"\x02" + cose)
        try:
            payload = vaxqr.sign.parse_sign1(cose).payload
        except Exception:
            continue
        (directory / f"seed-{i:03d}-cwt").write_bytes(b"\x03" + payload)
    (directory / "seed-dcc").write_bytes(b"\x04" + cbor2.dumps(fuzzkit.default_dcc()))
    if HAVE_QR:
        from vaxqr import qr

        (directory / "seed-image").write_bytes(b"\x06" + qr.to_png(SEEDS[0][1], scale=2))


def main() -> None:
    dirs = [a for a in sys.argv[1:] if not a.startswith("-")]
    for d in dirs:
        p = Path(d)
        if not p.exists() or not any(p.iterdir()):
            _write_seed_corpus(p)
    argv = list(sys.argv)
    if not any(a.startswith("-artifact_prefix=") for a in argv):
        out = Path(tempfile.gettempdir()) / "vaxqr-atheris"
        out.mkdir(exist_ok=True)
        argv.append(f"-artifact_prefix={out}/")
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
