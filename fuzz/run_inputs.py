#!/usr/bin/env python3
"""Seeded, dependency-free fuzzer for vaxqr's untrusted inputs other than HC1 credentials.

    .venv/bin/python fuzz/run_inputs.py --seconds 60 --seed 1 [--target cccd]

Targets (``--target``, repeatable; default all):

``cccd``       the CCCD card QR text of ``vaxqr verify --id-card`` (as text, and as the bytes
               of a file decoded the way the CLI does): :func:`vaxqr.citizen.parse_cccd`, then
               the holder check of a valid credential against the card (a report, never the
               verifier's internal-error guard) and :func:`~vaxqr.citizen.names_match`;
``trust``      ``--trust`` material: PEM/DER certificates and bundles, CRLs, signed trust
               lists, several files at once or a directory of them, loaded by
               :meth:`vaxqr.trust.TrustStore.from_paths`; a loaded store then verifies a
               valid credential;
``state``      the rollback ``--state`` file (damaged or hostile) beside a valid trust list;
``issue-csv``  ``vaxqr issue --from`` files: :func:`vaxqr.issue.read_csv` (both numberings),
               :func:`~vaxqr.issue.parse_record` on every row, and the first pass
               ``_index_citizens``;
``reconcile``  the population register and the vaccination records of ``vaxqr reconcile``
               (:func:`vaxqr.reconcile.reconcile_files`, in-process);
``at``         the ``--at`` validation time: :func:`vaxqr.cli_verify.parse_time` (the CLI's usage
               error is a clean outcome), then a trust store and a verification at that time.

Inputs are mutated from valid seeds (``keys/examples/``, ``docs/examples/``, records made
as ``tests/records.py`` makes them) and hand-made hostile cases: byte flips, truncation,
huge lengths, deep JSON nesting, odd Unicode, NULs, CR/LF variants, BOMs, invalid UTF-8.

The oracle: each call returns normally or raises a :class:`vaxqr.errors.VaxqrError`
subclass. Any other exception, an input slower than ``--slow`` seconds, or peak RSS above
``--max-rss`` MiB is a finding; findings are saved to ``--crash-dir`` and the exit status
is 1. The input sequence depends only on ``--seed`` (``--max-inputs`` makes a run exactly
reproducible; ``--seconds`` decides how far along it a run gets).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime as dt
import faulthandler
import io
import json
import os
import random
import shutil
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))  # a checkout without ``pip install -e .``
sys.path.insert(1, str(ROOT / "tests"))  # records.py: synthetic records

from run import _rss_mib, numbered  # noqa: E402

TARGETS = ("cccd", "trust", "state", "issue-csv", "reconcile", "at")
EXAMPLES = ROOT / "keys" / "examples"
AT = dt.datetime(2022, 1, 10, 8, tzinfo=dt.UTC)
TODAY = AT.date()

# --------------------------------------------------------------------------- mutation

ODD_TEXT = [
    "\x00", "\r", "\n", "\r\n", "\n\r", "\ufeff", "\u202e", "\u200b", "\u2028", "\x1b[31m",
    "|", "||", ",", '"', '""', "'", "\\", "²", "١٢", "𝟗", "٣", "Ⅻ", "½", "\u0301", "\u0323" * 50,
    "ﬁ", "İ", "ß", "Ǆ", "\ud7ff", "\U0001f489", "Nữ", "Nam", "NỮ", "nu\u0303", "Đ", "đ",
    "-1", "0", "9" * 30, "1e9", "NaN", "Infinity", "null", "true", "0x1F", "+5", " ",
    "\t", "=CMD()", "@SUM(A1)", "99999999", "00000000", "29022021", "31042021", "-----BEGIN",
    "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----", "-----BEGIN X509 CRL-----",
    "HC1:", "https://", "\u3042", "\u4e2d", "\uac00", "Ã", "Ä‘", "Ã¡", "\x85", "\x7f",
]
ODD_BYTES = [
    b"\x00", b"\xff", b"\xfe\xff", b"\xff\xfe", b"\xef\xbb\xbf", b"\xc3", b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80", b"\xc0\xaf", b"\x80", b"\r", b"\n", b"\r\n", b"\x30\x82\xff\xff",
    b"\x30\x80", b"\x30\x84\xff\xff\xff\xff", b"\x06\x7f", b"\x02\x81\x00", b"\x1f\xff\xff",
]


def mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    """One byte-level mutation."""
    b = bytearray(data)
    op = rng.randrange(12)
    n = len(b)
    pos = rng.randrange(n + 1) if n else 0
    if op == 0 and n:  # flip bits
        for _ in range(rng.choice([1, 1, 2, 4, 16])):
            i = rng.randrange(n)
            b[i] ^= 1 << rng.randrange(8)
    elif op == 1 and n:  # random byte
        b[rng.randrange(n)] = rng.randrange(256)
    elif op == 2:  # truncate
        b = b[:pos]
    elif op == 3 and n:  # delete a span
        b[pos:pos + rng.choice([1, 2, 8, 64, 512])] = b""
    elif op == 4:  # insert odd bytes
        b[pos:pos] = rng.choice(ODD_BYTES) * rng.choice([1, 1, 2, 100])
    elif op == 5:  # insert odd text
        b[pos:pos] = rng.choice(ODD_TEXT).encode("utf-8", "surrogatepass") * rng.choice([1, 3, 50])
    elif op == 6 and n:  # duplicate a span, maybe many times
        j = min(n, pos + rng.choice([1, 16, 200, 2000]))
        b[pos:pos] = bytes(b[pos:j]) * rng.choice([1, 2, 50, 1000])
    elif op == 7:  # huge run
        b[pos:pos] = bytes([rng.randrange(256)]) * rng.choice([1000, 70_000, 300_000])
    elif op == 8:  # line endings
        text = bytes(b)
        b = bytearray(rng.choice([text.replace(b"\n", b"\r\n"), text.replace(b"\n", b"\r"),
                                  text.replace(b"\r\n", b"\n"), text.replace(b"\n", b"\n\n")]))
    elif op == 9:  # BOMs
        b = bytearray(rng.choice([b"\xef\xbb\xbf", b"\xef\xbb\xbf\xef\xbb\xbf", b"\xff\xfe",
                                  b"\xfe\xff"])) + b
    elif op == 10:  # re-encode
        with contextlib.suppress(UnicodeError):
            b = bytearray(bytes(b).decode("utf-8").encode(
                rng.choice(["utf-16", "utf-16-le", "latin-1", "cp1258", "utf-8-sig"]),
                "replace"))
    elif op == 11 and n:  # swap two spans
        i, j = sorted((rng.randrange(n), rng.randrange(n)))
        k = min(j - i, rng.choice([1, 8, 64]))
        b[i:i + k], b[j:j + k] = b[j:j + k], b[i:i + k]
    return bytes(b)


def mutate_fields(text: str, sep: str, rng: random.Random) -> str:
    """Replace, drop, duplicate or pad one ``sep``-separated field."""
    fields = text.split(sep)
    i = rng.randrange(len(fields))
    op = rng.randrange(6)
    if op == 0:
        fields[i] = rng.choice(ODD_TEXT) * rng.choice([1, 1, 2, 1000])
    elif op == 1:
        del fields[i]
    elif op == 2:
        fields.insert(i, fields[i])
    elif op == 3:
        fields[i] = fields[i] + rng.choice(ODD_TEXT)
    elif op == 4:
        fields[i] = rng.choice(ODD_TEXT) + fields[i]
    else:
        fields += [rng.choice(ODD_TEXT) for _ in range(rng.choice([1, 5, 5000]))]
    return sep.join(fields)


def random_json(rng: random.Random, depth: int = 0) -> Any:
    r = rng.random()
    if depth > 3 or r < 0.5:
        return rng.choice([None, True, False, 0, -1, 1, 2**63, -(2**70), "", "x",
                           "A" * 70_000, "\u0000", "2021-11-20T00:00:00Z", "9999-12-31T23:59:59",
                           "0001-01-01T00:00:00+14:00", "AAAA", "=", "\ud800",
                           "2021-11-20T00:00:00+24:00", "-" * 10])
    if r < 0.75:
        return [random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {rng.choice(["kid", "certificate", "hash", "type", "sequence", "digest", "x", ""]):
            random_json(rng, depth + 1) for _ in range(rng.randrange(4))}


def mutate_json(data: bytes, rng: random.Random) -> bytes:
    """A structural mutation of a JSON document (falls back to bytes when not JSON)."""
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        return mutate_bytes(data, rng)
    op = rng.randrange(5)
    if op == 0:  # deep nesting
        depth = rng.choice([50, 900, 5000, 200_000])
        return b"[" * depth + b"]" * depth if rng.random() < 0.5 else \
            b'{"a":' * depth + b"1" + b"}" * depth
    if op == 1:
        return json.dumps(random_json(rng)).encode()
    # replace a value somewhere inside
    paths: list[tuple[Any, Any]] = []

    def walk(node: Any) -> None:
        items = node.items() if isinstance(node, dict) else enumerate(node) \
            if isinstance(node, list) else ()
        for k, v in items:
            paths.append((node, k))
            walk(v)

    walk(doc)
    if not paths:
        return json.dumps(random_json(rng)).encode()
    node, key = rng.choice(paths)
    if op == 2:
        node[key] = random_json(rng)
    elif op == 3 and isinstance(node, dict):
        del node[key]
    elif isinstance(node[key], str) and node[key]:
        s = node[key]
        i = rng.randrange(len(s))
        node[key] = s[:i] + rng.choice(["A", "/", "=", "", "\u00e9", s[i:]]) + s[i + 1:]
    else:
        node[key] = random_json(rng)
    try:
        return json.dumps(doc, ensure_ascii=rng.random() < 0.5).encode("utf-8", "surrogatepass")
    except (ValueError, RecursionError):
        return data


# --------------------------------------------------------------------------- material


class Material:
    """Seeds and the fixed things each target needs, made once (the example hierarchy)."""

    def __init__(self, work: Path) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives.serialization import Encoding

        from vaxqr import certs, issue
        from vaxqr.credential import make_uvci
        from vaxqr.trust import TrustStore
        from vaxqr.verify import Verifier

        from records import HEADER, good_rows, write_csv

        self.work = work
        ca_pem = (EXAMPLES / "ca" / "ca.crt").read_bytes()
        crl_pem = (EXAMPLES / "ca" / "crl.pem").read_bytes()
        dsc_pem = (EXAMPLES / "communes" / "31078" / "signer.crt").read_bytes()
        ca = x509.load_pem_x509_certificate(ca_pem)
        dsc = x509.load_pem_x509_certificate(dsc_pem)
        crl = x509.load_pem_x509_crl(crl_pem)
        self.trust_files: dict[str, bytes] = {
            "ca.crt": ca_pem,
            "ca.der": ca.public_bytes(Encoding.DER),
            "chain.pem": (EXAMPLES / "communes" / "31078" / "chain.pem").read_bytes(),
            "signer.crt": dsc_pem,
            "signer.der": dsc.public_bytes(Encoding.DER),
            "other.crt": (EXAMPLES / "communes" / "30760" / "signer.crt").read_bytes(),
            "crl.pem": crl_pem,
            "crl.der": crl.public_bytes(Encoding.DER),
            "trustlist.json": (EXAMPLES / "trustlist.json").read_bytes(),
        }
        signer = certs.load_signer(EXAMPLES / "communes" / "31078",
                                   (EXAMPLES / "password.txt").read_text().strip().encode())
        info = issue.signer_info(signer)
        with (ROOT / "docs" / "examples" / "records.csv").open(encoding="utf-8") as fh:
            first = next(csv.DictReader(fh))
        self.record = issue.parse_record(1, first, today=TODAY)
        self.anchors = (ca,)
        uvci = make_uvci(info.province_code, info.commune_code, "FUZZ1")
        self.credential, _iat, _exp = issue.sign_record(info, self.record, uvci, now=AT)
        self.verifier_of = lambda store, at=AT: Verifier(store, at=at)
        # the rollback state a first load writes
        state = work / "seed-state.json"
        TrustStore.from_paths([EXAMPLES / "ca" / "ca.crt", EXAMPLES / "trustlist.json"],
                              at=AT, state_file=state)
        self.state_seeds = [state.read_bytes(), b"", b"{}", b'{"cas": []}', b"null",
                            b'{"format": "vaxqr-trustlist-state", "version": 1, "cas": {}}']
        seq = json.loads(self.state_seeds[0])
        for ident in seq["cas"]:
            for value in (2**31, 2**64, -1, True, "1", 1.5, None, [], {"sequence": 1}):
                doc = json.loads(self.state_seeds[0])
                doc["cas"][ident]["sequence"] = value
                self.state_seeds.append(json.dumps(doc).encode())
            doc = json.loads(self.state_seeds[0])
            doc["cas"][ident] = [1]
            self.state_seeds.append(json.dumps(doc).encode())
        # trust lists: hand-made hostile variants of the example one
        tl = json.loads(self.trust_files["trustlist.json"])
        hostile = []
        for key in ("sequence", "cas", "dscs", "revoked_dscs", "revoked_credentials",
                    "signature", "issued", "next_update", "province", "version", "format"):
            for value in (None, 0, True, "x", [], {}, [None], [{}], [[]], 2**80,
                          "9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59"):
                doc = dict(tl)
                doc[key] = value
                hostile.append(json.dumps(doc).encode())
        self.trustlist_seeds = [self.trust_files["trustlist.json"], *hostile]
        # CCCD texts
        from fuzzkit import HOLDER_CARD

        name = self.record.full_name
        dob = self.record.dob.strftime("%d%m%Y")
        sex = "Nữ" if self.record.sex == "F" else "Nam"
        self.cccd_seeds = [
            f"{self.record.id_number}||{name}|{dob}|{sex}|Thôn 1, Dương Tơ, Phú Quốc|01122021",
            f"{self.record.id_number}|123456789|{name.upper()}|{dob}|{sex}|Địa chỉ|01122021\r\n",
            f"\ufeff{self.record.id_number}||{name}|{dob}|{sex}|A, B, C|01122021|x|y|z|w",
            HOLDER_CARD, "001099000001||NGUYEN VAN A|01011999|Nam|Phường Bến Nghé|15042021",
            "001099000001||Nguyễn Thị Hoa|21032003|Nữ||",
            f"{self.record.id_number}||{name}|{dob}|{sex}|".encode().decode("latin-1"),
            ("079090012345||Huỳnh Hiếu Thuận|02011990|Nam|Vĩnh Phong, Vĩnh Bảo, Hải Phòng|"
             "01012021").encode().decode("big5", "replace"),
            "https://example.com/?q=1|2|3|4|5|6|7", "HC1:NCF|a|b|c|d|e|f", "|" * 7,
            "0" * 12 + "|" * 6, "a|b|c|d|e|f|g",
        ]
        # CSV files
        rng = random.Random(7)
        rows = good_rows(30, seed=3)
        self.issue_csvs = [
            write_csv(work / "good.csv", rows).read_bytes(),
            write_csv(work / "bom.csv", rows[:5], bom=True).read_bytes(),
            (ROOT / "docs" / "examples" / "records.csv").read_bytes(),
            (",".join([*HEADER, "source_row"]) + "\n" + "\n".join(
                ",".join([*r, str(i)]) for i, r in enumerate(rows[:8], 1)) + "\n").encode(),
            b"full_name,sex\nA,Nam\n", b"", b"\n\n\n", b'"unterminated\n' + b"x" * 1000,
            (",".join(HEADER) + "\n" + ",".join([*rows[0][:4], "\u00b2", "\u0662",
                                                 *rows[0][6:]]) + "\n").encode(),
        ]
        population = io.StringIO()
        w = csv.writer(population, lineterminator="\n")
        w.writerow(["id_number", "full_name", "sex", "dob", "commune_code"])
        for r in rows:
            w.writerow([r[3], r[0], r[1], r[2], rng.choice(["31078", "30760"])])
        self.population = population.getvalue().encode()
        del rng

    def trust_store(self, at: dt.datetime = AT) -> Any:
        from vaxqr.trust import TrustStore

        return TrustStore.from_paths([EXAMPLES / "ca" / "ca.crt", EXAMPLES / "trustlist.json"],
                                     at=at, state_file=self.work / "at-state.json",
                                     allow_rollback=True)


# --------------------------------------------------------------------------- targets


class Finding(Exception):
    """The oracle's verdict on an input (not an exception the library raised)."""


def _check_report(report: Any) -> str:
    from vaxqr.verify import Report

    if not isinstance(report, Report):
        raise Finding(f"verify returned {type(report).__name__}, not a Report")
    if (report.reason or "").startswith("internal error"):
        raise Finding(f"the verifier's internal-error guard fired: {report.reason}")
    return "valid" if report.valid else f"not valid ({report.failed})"


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def target_cccd(m: Material, rng: random.Random, tmp: Path) -> tuple[Callable[[], str], bytes]:
    from vaxqr.citizen import names_match, parse_cccd

    text = rng.choice(m.cccd_seeds)
    as_bytes = rng.random() < 0.3
    raw = text.encode("utf-8", "surrogatepass")
    for _ in range(rng.choice([1, 1, 2, 3])):
        if rng.random() < 0.5:
            text = mutate_fields(text, "|", rng)
            raw = text.encode("utf-8", "surrogatepass")
        else:
            raw = mutate_bytes(raw, rng)
            text = raw.decode("utf-8", "surrogateescape" if rng.random() < 0.5 else "replace")
    if as_bytes:  # a file given to --id-card: the CLI decodes it with errors="replace"
        text = raw.decode("utf-8", errors="replace")

    def run() -> str:
        card = parse_cccd(text)
        names_match(card.full_name, m.record.full_name)
        names_match(m.record.full_name.upper(), card.full_name)
        return _check_report(m.verifier_of(m.store).verify_text(m.credential, holder=card))

    return run, text.encode("utf-8", "surrogatepass")


def target_trust(m: Material, rng: random.Random, tmp: Path) -> tuple[Callable[[], str], bytes]:
    from vaxqr.describe import describe_file
    from vaxqr.errors import VaxqrError
    from vaxqr.trust import TrustStore

    anchors = m.anchors if rng.random() < 0.5 else ()
    names = rng.sample(sorted(m.trust_files), rng.choice([1, 2, 3, 4]))
    files = {n: m.trust_files[n] for n in names}
    if rng.random() < 0.3:
        files["trustlist.json"] = rng.choice(m.trustlist_seeds)
    victim = rng.choice(sorted(files))
    data = files[victim]
    for _ in range(rng.choice([1, 1, 2, 4])):
        data = mutate_json(data, rng) if victim.endswith(".json") and rng.random() < 0.7 \
            else mutate_bytes(data, rng)
    files[victim] = data
    folder = tmp / "trust"
    folder.mkdir()
    for n, d in files.items():
        _write(folder / n, d)
    as_dir = rng.random() < 0.3
    paths = [folder] if as_dir else [folder / n for n in files]
    state = tmp / "state.json"

    def run() -> str:
        for name in files:  # vaxqr certs show FILE [--trust ca.crt]
            with contextlib.suppress(VaxqrError):
                describe_file(folder / name, trust=anchors, at=AT)
        store = TrustStore.from_paths(paths, at=AT, state_file=state, allow_rollback=True)
        report = m.verifier_of(store).verify_text(m.credential)
        store.is_credential_revoked(m.record.full_name)
        return _check_report(report)

    return run, b"\n--8<--\n".join(n.encode() + b"\n" + d for n, d in files.items())


def target_state(m: Material, rng: random.Random, tmp: Path) -> tuple[Callable[[], str], bytes]:
    from vaxqr.trust import TrustStore

    data = rng.choice(m.state_seeds)
    for _ in range(rng.choice([1, 1, 2, 3])):
        data = mutate_json(data, rng) if rng.random() < 0.6 else mutate_bytes(data, rng)
    state = _write(tmp / "state.json", data)
    rollback = rng.random() < 0.2

    def run() -> str:
        TrustStore.from_paths([EXAMPLES / "ca" / "ca.crt", EXAMPLES / "trustlist.json"],
                              at=AT, state_file=state, allow_rollback=rollback)
        return "loaded"

    return run, data


def target_issue_csv(m: Material, rng: random.Random, tmp: Path
                     ) -> tuple[Callable[[], str], bytes]:
    from vaxqr import issue
    from vaxqr.errors import VaxqrError

    data = rng.choice(m.issue_csvs)
    for _ in range(rng.choice([1, 1, 2, 3, 6])):
        if rng.random() < 0.4 and data:
            lines = data.split(b"\n")
            i = rng.randrange(len(lines))
            try:
                lines[i] = mutate_fields(lines[i].decode("utf-8"), ",", rng).encode(
                    "utf-8", "surrogatepass")
            except UnicodeDecodeError:
                lines[i] = mutate_bytes(lines[i], rng)
            data = b"\n".join(lines)
        else:
            data = mutate_bytes(data, rng)
    path = _write(tmp / "in.csv", data)
    source_rows = rng.random() < 0.3

    def run() -> str:
        ok = bad = 0
        for row, fields in issue.read_csv(path, source_rows=source_rows):
            try:
                issue.parse_record(row, fields, today=TODAY)
                ok += 1
            except VaxqrError:
                bad += 1
        issue._index_citizens(path)
        return f"rows (ok {min(ok, 1)}, bad {min(bad, 1)})"

    return run, data


def target_reconcile(m: Material, rng: random.Random, tmp: Path
                     ) -> tuple[Callable[[], str], bytes]:
    from vaxqr.reconcile import reconcile_files

    records = rng.choice(m.issue_csvs[:4])
    population = m.population
    which = rng.random()
    for _ in range(rng.choice([1, 1, 2, 4])):
        if which < 0.5:
            records = mutate_bytes(records, rng)
        else:
            population = mutate_bytes(population, rng)
    vacc = _write(tmp / "records.csv", records)
    pop = _write(tmp / "population.csv", population)

    def run() -> str:
        result = reconcile_files(vacc, pop, tmp / "out", today=TODAY, workers=1,
                                 overwrite=True)
        return f"reconciled ({'some' if result.matched_rows else 'none'} matched)"

    return run, records + b"\n--8<-- population --8<--\n" + population


AT_SEEDS = ["2022-01-10T08:00:00+07:00", "2022-01-10", "2022-01-10T08:00:00Z",
            "2021-11-20T00:00:00.123456Z", "9999-12-31T23:59:59", "0001-01-01T00:00:00",
            "9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00", "2031-10-30T23:59:59Z",
            "2021-11-15T00:00:00+00:00", "20220110T080000", "2022-W02-1", "2022-01-10 08:00",
            "now", "", " ", "Z", "2022-01-10T08:00:00+23:59", "2022-01-10T25:00:00"]


def target_at(m: Material, rng: random.Random, tmp: Path) -> tuple[Callable[[], str], bytes]:
    import typer

    from vaxqr.cli_verify import parse_time

    text = rng.choice(AT_SEEDS)
    if rng.random() < 0.8:
        raw = text.encode()
        for _ in range(rng.choice([1, 1, 2])):
            raw = mutate_bytes(raw, rng) if rng.random() < 0.5 else \
                mutate_fields(raw.decode("utf-8", "replace"), rng.choice("-:T"), rng).encode(
                    "utf-8", "surrogatepass")
        text = raw.decode("utf-8", "surrogateescape")  # argv is decoded this way on POSIX

    def run() -> str:
        try:
            with contextlib.redirect_stderr(io.StringIO()):
                when = parse_time(text)
        except typer.Exit as exc:  # the CLI's usage error: a message and exit code 2
            if exc.exit_code != 2:
                raise Finding(f"--at: exit code {exc.exit_code}, not 2") from None
            return "usage error"
        assert when is not None
        store = m.trust_store(when)
        return _check_report(m.verifier_of(store, when).verify_text(m.credential))

    return run, text.encode("utf-8", "surrogateescape")


MAKERS: dict[str, Callable[[Material, random.Random, Path], tuple[Callable[[], str], bytes]]] = {
    "cccd": target_cccd, "trust": target_trust, "state": target_state,
    "issue-csv": target_issue_csv, "reconcile": target_reconcile, "at": target_at,
}


# --------------------------------------------------------------------------- driver


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="time budget (default 60)")
    ap.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    ap.add_argument("--max-inputs", type=int, default=0, help="stop after N inputs")
    ap.add_argument("--target", action="append", choices=TARGETS,
                    help="fuzz only this target (repeatable; default all)")
    ap.add_argument("--slow", type=float, default=3.0,
                    help="seconds after which one input counts as a hang (default 3)")
    ap.add_argument("--hang", type=float, default=120.0,
                    help="seconds after which an input that has not returned ends the run "
                    "with its stack (default 120)")
    ap.add_argument("--trace", action="store_true", help="print each input to stderr first")
    ap.add_argument("--max-rss", type=float, default=1024.0,
                    help="peak RSS in MiB above which the run is a finding (default 1024)")
    ap.add_argument("--crash-dir", default=os.path.join(tempfile.gettempdir(),
                                                         "vaxqr-fuzz-inputs-crashes"),
                    help="where inputs of findings are saved")
    ap.add_argument("--json", metavar="FILE", help="also write the figures as JSON to FILE")
    args = ap.parse_args(argv)
    targets = tuple(args.target or TARGETS)
    # mutated certificates: cryptography warns (once per place) of non-positive serials and
    # of attributes of the wrong length (a country name of 11 letters)
    warnings.filterwarnings("ignore", message="Parsed a serial number")
    warnings.filterwarnings("ignore", message="Attribute's length must be")

    t_setup = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="vaxqr-fuzz-inputs-"))
    try:
        material = Material(work)
        material.store = material.trust_store()  # type: ignore[attr-defined]
        setup = time.perf_counter() - t_setup
        rss_setup = _rss_mib()
        rng = random.Random(args.seed)
        outcomes: dict[str, Counter[str]] = {t: Counter() for t in targets}
        findings: list[dict[str, Any]] = []
        slowest = (0.0, "", "")
        crash_dir = Path(args.crash_dir)
        start = time.perf_counter()
        n = 0
        for n in numbered(args.seconds, args.max_inputs):
            target = targets[(n - 1) % len(targets)]
            tmp = work / f"in{n}"
            tmp.mkdir()
            fn, payload = MAKERS[target](material, rng, tmp)
            if args.trace:
                print(f"input {n} ({target}): {payload[:100]!r}", file=sys.stderr, flush=True)
            # an input that never returns: the stack is printed and the run ends (exit 1)
            faulthandler.dump_traceback_later(args.hang, exit=True)
            rss0 = _rss_mib()
            t0 = time.perf_counter()
            problem = trace = None
            try:
                outcome = fn()
            except Finding as exc:
                problem, outcome = str(exc), "FINDING"
            except Exception as exc:
                from vaxqr.errors import VaxqrError

                if isinstance(exc, VaxqrError):
                    outcome = type(exc).__name__
                else:
                    frames = traceback.extract_tb(exc.__traceback__)
                    # where vaxqr let it through: its innermost frame (else the innermost)
                    ours = [f for f in frames if f"{os.sep}vaxqr{os.sep}" in f.filename]
                    tb = (ours or frames)[-1]
                    problem = (f"{type(exc).__name__}: {str(exc)[:200]} "
                               f"(at {Path(tb.filename).name}:{tb.lineno} {tb.name})")
                    trace = "".join(traceback.format_exception(exc)[-12:])
                    outcome = "FINDING"
            elapsed = time.perf_counter() - t0
            faulthandler.cancel_dump_traceback_later()
            shutil.rmtree(tmp, ignore_errors=True)
            outcomes[target][outcome] += 1
            if elapsed > slowest[0]:
                slowest = (elapsed, target, repr(payload[:120]))
            if problem is None and elapsed > args.slow:
                problem = f"SLOW: {elapsed:.2f} s"
            rss = _rss_mib()
            if problem is None and rss > args.max_rss:
                problem = f"MEMORY: peak RSS {rss0:.0f} -> {rss:.0f} MiB"
            if problem is not None:
                crash_dir.mkdir(parents=True, exist_ok=True)
                saved = crash_dir / f"seed{args.seed}-{n}-{target}.bin"
                saved.write_bytes(payload)
                findings.append({"target": target, "input": n, "problem": problem,
                                 "saved": str(saved), "payload": repr(payload[:200]),
                                 "traceback": trace})
        seconds = time.perf_counter() - start
    finally:
        shutil.rmtree(work, ignore_errors=True)
    peak = _rss_mib()

    print(f"vaxqr fuzz/run_inputs.py: seed {args.seed}, {args.seconds:g} s budget, "
          f"setup {setup:.1f} s, targets {', '.join(targets)}")
    print(f"inputs run:        {n:,} in {seconds:.1f} s")
    for t in targets:
        shown = ", ".join(f"{k} {v:,}" for k, v in outcomes[t].most_common())
        print(f"  {t + ':':<11} {sum(outcomes[t].values()):>7,}  {shown}")
    print(f"findings:          {len(findings)}")
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for f in findings:  # one line per kind: exception type and where it was raised
        kind = f["problem"].split(":")[0] + (" " + f["problem"].rsplit(" (at ", 1)[1].rstrip(")")
                                             if " (at " in f["problem"] else "")
        groups.setdefault((f["target"], kind), []).append(f)
    for (t, _kind), group in sorted(groups.items(), key=lambda g: -len(g[1])):
        first = group[0]
        print(f"  [{t}] {len(group)}x {first['problem'][:200]}\n      e.g. input {first['input']}: "
              f"{first['payload'][:150]}")
    print(f"slowest input:     {slowest[0]:.3f} s ({slowest[1]}: {slowest[2][:100]})")
    print(f"peak RSS:          {peak:.0f} MiB (after setup {rss_setup:.0f} MiB)")
    if findings:
        print(f"inputs of findings saved in {crash_dir}")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "seed": args.seed, "seconds": seconds, "inputs": n, "targets": list(targets),
            "outcomes": {t: dict(c) for t, c in outcomes.items()},
            "findings": findings, "max_seconds": slowest[0], "slowest": list(slowest),
            "peak_rss_mib": peak, "rss_after_setup_mib": rss_setup,
        }, indent=2))
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
