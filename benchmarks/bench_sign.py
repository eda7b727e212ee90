"""Sign benchmark: a record to an ``HC1:`` string vs bare ECDSA sign; Base45 vs ``base45``.

    .venv/bin/python benchmarks/bench_sign.py [--items 300] [--rounds 15] [--steps]

1. Signing, CPU time per credential, in alternating rounds against cryptography's bare
   ECDSA P-256 sign of the same Sig_structure bytes. Two pipelines: the core from a ready
   DCC (``encode_cwt`` + ``sign1`` + ``encode_hc1``: "sign to an ``HC1:`` string", the
   pipeline issue #7 measured at 5.7× with straightforward code; goal ≤ 2.5×) and the whole
   ``issue.sign_record`` (validated record → DCC → CWT → COSE_Sign1 → zlib → Base45 →
   ``HC1:``, what a batch runs), held to the same goal.
2. Base45 (RFC 9285): vaxqr's codec vs the ``base45`` package from PyPI (skipped when not
   installed), encode and decode of a credential-sized payload.
3. With ``--steps``: each step of the core (CWT, COSE_Sign1, zlib, Base45) against the bare
   sign, and each bytes-level step of verifying (prefix, Base45, zlib, COSE, CWT, headers,
   signature) against the bare verify, timed alone.
"""

from __future__ import annotations

import argparse
import statistics
from datetime import UTC, datetime
from typing import Any

from _common import (
    interleaved,
    load_demo_signer,
    ratio_of_medians,
    records,
    us,
    verdict,
)


def bench_sign(items: int, rounds: int) -> tuple[float, float]:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    from vaxqr import codec, sign
    from vaxqr.credential import make_uvci
    from vaxqr.issue import _private_key, sign_record, signer_info

    info = signer_info(load_demo_signer())
    recs = records(items)
    now = datetime.now(UTC)
    jobs = [(r, make_uvci(info.province_code, info.commune_code)) for r in recs]
    key = _private_key(info.key_pem)
    algo = ec.ECDSA(hashes.SHA256())
    hc1s = [sign_record(info, r, u, now=now)[0] for r, u in jobs]
    tbs_list, dccs = [], []
    for t in hc1s:
        msg = sign.parse_sign1(codec.decompress(codec.b45decode(codec.strip_prefix(t))))
        tbs_list.append(sign.sig_structure(msg.protected_bytes, msg.payload))
        dccs.append(dict(sign.parse_cwt(msg.payload).hcert))
    iat = int(now.timestamp())

    def core(dcc: dict[str, object]) -> str:
        payload = sign.encode_cwt(iss="VN", iat=iat, exp=iat + 86400, hcert=dcc)
        return codec.encode_hc1(sign.sign1(payload, key, info.kid))

    res = interleaved({
        "bare": (lambda tbs: key.sign(tbs, algo), tbs_list),
        "record": (lambda job: sign_record(info, job[0], job[1], now=now), jobs),
        "core": (core, dccs),
    }, rounds)
    ratio = ratio_of_medians(res["record"], res["bare"])
    core_ratio = ratio_of_medians(res["core"], res["bare"])
    bare = statistics.median(res["bare"])
    print(f"1. Signing, {items} distinct records × {rounds} alternating rounds "
          "(CPU time per credential)")
    print(f"   bare ECDSA P-256 sign (cryptography)        {us(bare)}")
    print(f"   core: DCC dict → CWT → COSE → zlib → HC1    {us(statistics.median(res['core']))}"
          f"  {core_ratio:5.2f}×  {verdict(core_ratio, 2.5)}")
    print(f"   sign_record: CSV record → DCC → … → HC1     {us(statistics.median(res['record']))}"
          f"  {ratio:5.2f}×  {verdict(ratio, 2.5)}")
    return core_ratio, ratio


def bench_steps(items: int, rounds: int) -> None:
    """Each step of the core, and the bytes-level steps that undo it, against the bare sign
    and verify of the same run (CPU time per credential, alternating rounds)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    from vaxqr import codec, sign
    from vaxqr.credential import make_uvci
    from vaxqr.issue import _private_key, sign_record, signer_info

    info = signer_info(load_demo_signer())
    now = datetime.now(UTC)
    key = _private_key(info.key_pem)
    pub = key.public_key()
    algo = ec.ECDSA(hashes.SHA256())
    hc1s = [sign_record(info, r, make_uvci(info.province_code, info.commune_code), now=now)[0]
            for r in records(items)]
    texts = [codec.strip_prefix(t) for t in hc1s]
    zs = [codec.b45decode(t) for t in texts]
    coses = [codec.decompress(z) for z in zs]
    msgs = [sign.parse_sign1(c) for c in coses]
    payloads = [m.payload for m in msgs]
    dccs = [dict(sign.parse_cwt(p).hcert) for p in payloads]
    tbs = [sign.sig_structure(m.protected_bytes, m.payload) for m in msgs]
    ders = [(encode_dss_signature(int.from_bytes(m.signature[:32], "big"),
                                  int.from_bytes(m.signature[32:], "big")), t)
            for m, t in zip(msgs, tbs, strict=True)]
    iat = int(now.timestamp())
    steps: dict[str, tuple[Any, list[Any]]] = {
        "bare sign": (lambda t: key.sign(t, algo), tbs),
        "bare verify": (lambda d: pub.verify(d[0], d[1], algo), ders),
        "encode_cwt": (lambda d: sign.encode_cwt(iss="VN", iat=iat, exp=iat + 86400, hcert=d),
                       dccs),
        "sign1 (incl. the ECDSA sign)": (lambda p: sign.sign1(p, key, info.kid), payloads),
        "compress (zlib level 9)": (codec.compress, coses),
        "b45encode": (codec.b45encode, zs),
        "strip_prefix": (codec.strip_prefix, hc1s),
        "b45decode": (codec.b45decode, texts),
        "decompress": (codec.decompress, zs),
        "parse_sign1": (sign.parse_sign1, coses),
        "parse_cwt": (sign.parse_cwt, payloads),
        "check_headers": (sign.check_headers, msgs),
        "verify_signature (incl. the ECDSA verify)": (
            lambda m: sign.verify_signature(m, pub, sign.ES256), msgs),
    }
    res = interleaved(steps, rounds)
    print(f"\n3. The steps, {items} credentials × {rounds} alternating rounds (CPU time per "
          "credential; ratio to the bare ECDSA sign or verify of the same rounds)")
    for name in steps:
        ref = "bare verify" if name in ("bare verify", "strip_prefix", "b45decode", "decompress",
                                        "parse_sign1", "parse_cwt", "check_headers") \
            or name.startswith("verify_signature") else "bare sign"
        ratio = ratio_of_medians(res[name], res[ref])
        print(f"   {name:42s} {us(statistics.median(res[name]))}  {ratio:6.3f}× {ref}")


def bench_base45(rounds: int) -> None:
    from vaxqr import codec
    from vaxqr.issue import sign_record, signer_info

    info = signer_info(load_demo_signer())
    hc1 = sign_record(info, records(1)[0], "URN:UVCI:01:VN:091/31078/BENCH#X")[0]
    text = codec.strip_prefix(hc1)
    data = codec.b45decode(text)
    print(f"\n2. Base45 of a credential ({len(data)} bytes ↔ {len(text)} characters), "
          "CPU time per call")
    try:
        import base45  # type: ignore[import-untyped]
    except ImportError:
        print("   the base45 package is not installed: comparison skipped "
              "(.venv/bin/pip install base45)")
        base45 = None
    n = 2000
    pairs = {
        "ours encode": (codec.b45encode, [data] * n),
        "ours decode": (codec.b45decode, [text] * n),
    }
    if base45 is not None:
        assert base45.b45encode(data).decode() == codec.b45encode(data)
        assert base45.b45decode(text) == data
        pairs["pkg encode"] = (base45.b45encode, [data] * n)
        pairs["pkg decode"] = (base45.b45decode, [text] * n)
    res = interleaved(pairs, rounds)
    for op in ("encode", "decode"):
        ours = statistics.median(res[f"ours {op}"])
        line = f"   {op}: vaxqr {us(ours)}"
        if base45 is not None:
            theirs = statistics.median(res[f"pkg {op}"])
            ratio = ratio_of_medians(res[f"ours {op}"], res[f"pkg {op}"])
            line += f"   base45 pkg {us(theirs)}   vaxqr / base45 = {ratio:.3f}×"
        print(line)


def main(argv: list[str] | None = None) -> dict[str, float | None]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--items", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--steps", action="store_true",
                    help="also time each step of the core and of the bytes-level decoding")
    args = ap.parse_args(argv)
    core, record = bench_sign(args.items, args.rounds)
    results: dict[str, float | None] = {"sign": core, "sign_record": record}
    bench_base45(args.rounds)
    if args.steps:
        bench_steps(args.items, args.rounds)
    return results


if __name__ == "__main__":
    main()
