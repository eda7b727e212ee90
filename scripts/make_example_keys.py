#!/usr/bin/env python3
"""Generate keys/examples/: a complete DEMO ONLY hierarchy for Kiên Giang (province 091).

    .venv/bin/python scripts/make_example_keys.py [--out keys/examples]

Names, codes and dates are fixed (valid until 2031); the keys are random, so every run
replaces the whole hierarchy. The passphrase of every key is ``vaxqr-demo``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vaxqr import certs  # noqa: E402

PASSWORD = b"vaxqr-demo"
UTC = dt.UTC
PROVINCE = ("091", "Kiên Giang")
COMMUNES = [
    ("30760", "UBND phường Vĩnh Thanh Vân"),
    ("31078", "UBND xã Dương Tơ"),
]
CA_FROM, CA_TO = dt.datetime(2021, 11, 1, tzinfo=UTC), dt.datetime(2031, 10, 31, tzinfo=UTC)
DSC_FROM, DSC_TO = dt.datetime(2021, 11, 15, tzinfo=UTC), dt.datetime(2031, 10, 30, tzinfo=UTC)
LIST_ISSUED, LIST_NEXT = (
    dt.datetime(2021, 11, 20, tzinfo=UTC),
    dt.datetime(2031, 10, 30, tzinfo=UTC),
)

README = """\
# keys/examples — DEMO ONLY

A complete, **DEMO ONLY** certificate hierarchy for trying vaxqr and for its tests:
a province CA for Kiên Giang (province code 091), two commune signers and a signed
trust list. Every subject carries "DEMO ONLY"; `vaxqr issue` warns when it signs with
these keys. **Never use them for real credentials: the private keys and their
passphrase are public.**

Passphrase of every key: **`vaxqr-demo`** (also in `password.txt`, so
`--password-file keys/examples/password.txt` or `VAXQR_PASSWORD=vaxqr-demo` work).

| path | what |
|---|---|
| `ca/ca.crt`, `ca/ca.key` | Kiên Giang Province CSCA (DEMO ONLY), P-256, 2021-11-01 → 2031-10-31 |
| `ca/chain.pem`, `ca/crl.pem`, `ca/state.json` | CA chain, CRL, CA state (issued, sequence) |
| `communes/30760/` | UBND phường Vĩnh Thanh Vân: `signer.{crt,key,json}`, `chain.pem`, `trust/` |
| `communes/31078/` | UBND xã Dương Tơ: the same files |
| `trustlist.json` | trust list, sequence 1, issued 2021-11-20, next update 2031-10-30 |

DSCs are valid 2021-11-15 → 2031-10-30 (longer than the 2-year default, so the demo
keeps working), with EKU 1.3.6.1.4.1.1847.2021.1.2 (vaccination). `trust/crl.pem` is
the CA's CRL as `certs issue` puts it in a new signer directory: `vaxqr issue` reads it.

Regenerate (new random keys, same names and dates):

    .venv/bin/python scripts/make_example_keys.py

Try it:

    vaxqr certs show keys/examples/communes/31078/chain.pem
    vaxqr certs show keys/examples/trustlist.json --trust keys/examples/ca/ca.crt
    vaxqr certs list keys/examples/ca
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--out", type=Path, default=ROOT / "keys" / "examples")
    args = ap.parse_args(argv)
    out: Path = args.out
    for sub in ("ca", "communes", "trustlist.json"):
        p = out / sub
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
    out.mkdir(parents=True, exist_ok=True)

    certs.init_ca(
        out / "ca",
        name=PROVINCE[1],
        province_code=PROVINCE[0],
        password=PASSWORD,
        now=CA_FROM,
        not_before=CA_FROM,
        not_after=CA_TO,
        demo=True,
    )
    for code, name in COMMUNES:
        certs.issue_signer(
            out / "ca",
            ca_password=PASSWORD,
            commune_code=code,
            name=name,
            out_dir=out / "communes" / code,
            password=PASSWORD,
            now=DSC_FROM,
            not_before=DSC_FROM,
            not_after=DSC_TO,
        )
    certs.build_trustlist(
        out / "ca",
        password=PASSWORD,
        out=out / "trustlist.json",
        now=LIST_ISSUED,
        next_update=LIST_NEXT,
    )
    (out / "README.md").write_text(README, encoding="utf-8")
    (out / "password.txt").write_text(PASSWORD.decode() + "\n", encoding="utf-8")
    (out / "ca" / ".lock").unlink(missing_ok=True)
    for f in sorted(out.rglob("*")):
        if f.is_file() and not f.name.startswith("."):
            print(f.relative_to(ROOT) if f.is_relative_to(ROOT) else f)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
