#!/usr/bin/env python3
"""Differential fuzzer: the mypyc-compiled modules against the pure Python, input by input.

    .venv/bin/python fuzz/differential.py --seconds 60 --seed 1
    .venv/bin/python fuzz/differential.py --max-inputs 3000 --seed 7   # exactly reproducible

mypyc compiles ``vaxqr.NATIVE_MODULES`` (codec, sign, credential, citizen, verify,
verify_view, issue, schemas) and the generated schema checkers, and the C Base45 loops
replace codec's Python ones; ``VAXQR_PURE=1`` runs the Python. Compiled code can differ
(fixed-width int boxing, exception types and messages, attribute and None checks, a C
stack where Python has a recursion limit), so the same hostile inputs go through two
worker processes, one of each build, and every result is compared field by field. Any
difference, and any worker that dies, is a finding.

Targets (inputs are made here, in the parent, from ``--seed`` alone):

* ``verify``: HC1 texts (fuzzkit's hostile seeds through its mutators, random text, DCCs
  with random and edge-value content signed by the trusted test key, with or without a
  holder card) and ``verify -`` streams: the report's JSON line and the terminal rendering;
* ``codec``: Base45 text (str, non-ASCII and surrogates included), Base45 encoding of bytes,
  zlib bodies: the result or the error (type, message, step);
* ``citizen``: CCCD card texts (``parse_cccd``) and each of their fields through the
  name, date, sex and ID number helpers and ``names_match``;
* ``issue``: ``issue --from`` rows with hostile fields: the Record or the reject reason;
* ``schema``: DCC objects: ``validate_dcc``'s messages and the verdict of every shipped
  version's pre-check (compiled checker against the ``exec``'d source).

The run prints the inputs per target, the findings (each saved as a pickled input in
``--crash-dir``, default ``$TMPDIR/vaxqr-differential``) and exits 1 on any.
``tests/test_hostile.py::test_short_differential_session`` runs a short seeded session.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import enum
import json
import os
import pickle
import random
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(ROOT))  # a checkout without ``pip install -e .``
sys.path.insert(2, str(ROOT / "tests"))  # records.py

TARGETS = ("verify", "codec", "citizen", "issue", "schema")
TODAY = dt.date(2022, 1, 10)
BATCH = 40

# --------------------------------------------------------------------------- canonical form


def canon(value: Any, depth: int = 0) -> Any:
    """A plain, comparable picture of ``value``: types named (a bool is not an int), every
    container walked in order, objects by their public data attributes."""
    if depth > 60:
        return ("<deep>",)
    d = depth + 1
    t = type(value)
    if value is None or t in (bool, int, str, bytes):
        return (t.__name__, value)
    if t is float:
        return ("float", repr(value))
    if isinstance(value, BaseException):
        return ("raise", t.__qualname__, str(value),
                canon(getattr(value, "step", None), d), canon(getattr(value, "hint", None), d))
    if isinstance(value, enum.Enum):
        return ("enum", t.__qualname__, value.name)
    if isinstance(value, (dt.date, dt.datetime, dt.time, dt.timedelta)):
        return (t.__name__, repr(value))
    if isinstance(value, (list, tuple)):
        return (t.__name__, [canon(v, d) for v in value])
    if isinstance(value, (set, frozenset)):
        return (t.__name__, sorted(repr(canon(v, d)) for v in value))
    if isinstance(value, dict):
        return (t.__name__, [(canon(k, d), canon(v, d)) for k, v in value.items()])
    if isinstance(value, (bytearray, memoryview)):
        return (t.__name__, bytes(value))
    if dataclasses.is_dataclass(value):
        return (t.__qualname__, [(f.name, canon(getattr(value, f.name), d))
                                 for f in dataclasses.fields(value)])
    names = sorted(n for n in dir(value) if not n.startswith("_"))
    attrs = []
    for n in names:
        try:
            v = getattr(value, n)
        except Exception as exc:
            v = exc
        if callable(v) and not isinstance(v, BaseException):
            continue
        attrs.append((n, canon(v, d)))
    return (t.__qualname__, attrs)


def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """The canonical result of ``fn(*args)``, or of the exception it raised."""
    try:
        return canon(fn(*args, **kwargs))
    except RecursionError:
        # both builds must refuse deep input; where the limit bites is not compared
        return ("raise", "RecursionError")
    except Exception as exc:
        return canon(exc)


# --------------------------------------------------------------------------- worker


class Worker:
    """The targets, run in one build (chosen by the environment before vaxqr is imported)."""

    def __init__(self) -> None:
        import fuzzkit

        import vaxqr
        from vaxqr import codec
        from vaxqr.citizen import parse_cccd

        self.build = vaxqr.NATIVE_STATE
        self.kit = fuzzkit.Kit()
        self.holder = parse_cccd(fuzzkit.HOLDER_CARD)
        self.codec = codec

    def describe(self) -> dict[str, Any]:
        import vaxqr
        from vaxqr import citizen, codec, issue, schemas, verify

        return {"state": vaxqr.NATIVE_STATE, "c_base45": codec._C is not None,
                "compiled": sorted(m.__name__ for m in (codec, citizen, issue, schemas, verify)
                                   if not str(m.__file__).endswith(".py")),
                "checkers": list(schemas.compiled_versions())}

    def run(self, target: str, payload: Any) -> Any:
        return getattr(self, "t_" + target)(payload)

    def t_verify(self, payload: tuple[str, Any, bool]) -> Any:
        from vaxqr.cli import printable
        from vaxqr.verify import report_json_text
        from vaxqr.verify_view import render

        kind, data, holder = payload
        verifier = self.kit.verifier
        if kind == "text":
            reports = [verifier.verify_text(data, holder=self.holder if holder else None)]
        else:  # a stream, as `vaxqr verify -` reads it
            from fuzzkit import stdin_lines

            reports = [verifier.picture_failure(f"stdin:{n}", "line too long")
                       if line is None else verifier.verify_text(line, label=f"stdin:{n}")
                       for n, line in enumerate(stdin_lines(data), 1)
                       if line is None or line.strip()]
        return [(call(report_json_text, r), call(render, r, printable, color=False),
                 call(r.to_json)) for r in reports]

    def t_codec(self, payload: tuple[str, Any]) -> Any:
        c = self.codec
        kind, data = payload
        if kind == "b45":
            return (call(c.b45decode, data), call(c.strip_prefix, data))
        if kind == "enc":
            return (call(c.b45encode, data), call(c.b45encode, bytearray(data)),
                    call(c.compress, data)[:1])
        return call(c.decompress, data)

    def t_citizen(self, payload: tuple[str, list[str]]) -> Any:
        from vaxqr import citizen as z

        text, others = payload
        out = [call(z.parse_cccd, text)]
        fields = [*text.split("|")[:8], *others]
        for f in fields:
            out.append([call(z.normalize_name, f), call(z.name_key, f),
                         call(z.place_tones, f), call(z.place_tones, f, style="old"),
                         call(z.strip_diacritics, f), call(z.split_name, f),
                         call(z.parse_date, f), call(z.parse_date, f, compact=True),
                         call(z.date_order, f), call(z.without_midnight, f),
                         call(z.parse_sex, f), call(z.parse_id_number, f),
                         call(z.citizen_key, f)])
        for a in fields[:4]:
            for b in fields[:4]:
                out.append(call(z.names_match, a, b))
        return out

    def t_issue(self, payload: tuple[int, dict[str, Any]]) -> Any:
        from vaxqr import credential, issue

        row, fields = payload
        out = [call(issue.parse_record, row, fields, today=TODAY)]
        for v in fields.values():
            if isinstance(v, str):
                out += [call(credential.transliterate, v), call(credential.find_vaccine, v),
                        call(credential.PersonName.from_full_name, v),
                        call(credential.uvci_check_ok, v), call(credential.normalize_text, v)]
        return out

    def t_schema(self, data: bytes) -> Any:
        import cbor2

        from vaxqr import credential, schemas

        dcc = cbor2.loads(data)  # as the verifier gets it (cbor2's tags do not pickle)

        out = [call(schemas.validate_dcc, dcc), call(credential.certificate_type, dcc)
               if isinstance(dcc, dict) else None,
               call(credential.to_jsonable, dcc)]
        if isinstance(dcc, dict):
            out.append(call(schemas.resolve_version, dcc.get("ver")))
            out.append(call(credential.summary, dcc))
        for v in schemas.SUPPORTED_VERSIONS:
            for fast in (schemas._fast_check(v), schemas._fast_valid(v)):
                out.append(None if fast is None else call(fast, dcc))
        return out


def _read_frame(fh: BinaryIO) -> Any:
    head = fh.read(8)
    if len(head) < 8:
        return None
    (n,) = struct.unpack("<Q", head)
    return pickle.loads(fh.read(n))


def _write_frame(fh: BinaryIO, obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    fh.write(struct.pack("<Q", len(data)) + data)
    fh.flush()


def worker_main() -> int:
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing else may write to the frames
    w = Worker()
    _write_frame(stdout, w.describe())
    while True:
        batch = _read_frame(stdin)
        if batch is None:
            return 0
        _write_frame(stdout, [call(w.run, target, payload) for target, payload in batch])


# --------------------------------------------------------------------------- inputs


class Inputs:
    """Hostile inputs for every target, from one seeded RNG (the parent's)."""

    def __init__(self) -> None:
        import fuzzkit
        from run_inputs import ODD_TEXT

        from records import good_rows

        self.fk = fuzzkit
        self.kit = fuzzkit.Kit()
        seeds = fuzzkit.hostile_seeds(self.kit)
        self.texts = [text for _n, text, _s in seeds]
        for i in range(6):
            dcc = fuzzkit.default_dcc(fn=["Nguyễn", "Trần", "Lê"][i % 3],
                                      gn=["Văn An", "Thị Bích Ngọc", "Hoàng"][i // 2])
            self.texts.append(self.kit.credential(dcc, level=[9, 6, 1][i % 3]))
        self.odd = ODD_TEXT
        self.rows = good_rows(40, seed=5)
        self.cards = [
            fuzzkit.HOLDER_CARD, "001099000001||NGUYEN VAN A|01011999|Nam|Phường Bến Nghé|15042021",
            "001099000001||Nguyễn Thị Hoa|21032003|Nữ||", "|" * 7, "0" * 12 + "|" * 6,
            "079090012345|123456789|NGUYỄN VĂN AN|1990-01-02|nam|x|01/01/2021\r\n",
            "\ufeff079190012345||Trần Thị Bích|31121999|NỮ|A, B|31122021|x|y",
            "079090012345||Nguyen Van An|02011990|Nam|Rạch Giá|01012021".encode().decode(
                "latin-1"),
        ]
        for r in self.rows[:6]:
            d = r[2] if "/" not in r[2] else r[2].replace("/", "")
            self.cards.append(f"{r[3]}||{r[0]}|{d.replace('-', '')}|{r[1]}|Xã A|01012021")

    def odd_text(self, rng: random.Random) -> str:
        kind = rng.randrange(6)
        if kind == 0:
            return rng.choice(self.odd) * rng.choice([1, 2, 40])
        if kind == 1:
            return "".join(chr(rng.choice([rng.randrange(0x20, 0x7F), rng.randrange(0xC0, 0x2000),
                                           rng.randrange(0xD800, 0xE000),
                                           rng.randrange(0x10000, 0x110000)]))
                           for _ in range(rng.choice([0, 1, 3, 12, 80])))
        if kind == 2:
            return str(rng.choice([0, 1, -1, 29022020, 2**31, 2**63, 10**40]))
        if kind == 3:
            return rng.choice(["2021-02-29", "29/02/2021", "2020-02-29", "31/12/9999", "1/1/1",
                               "0001-01-01", "9999-12-31T23:59:59", "2021-13-01", "00/00/0000",
                               "2021-06-01 00:00:00", "06/01/2021", "2021-6-1",
                               "１２/０１/２０２１"])
        if kind == 4:
            return "".join(rng.choice("0123456789") for _ in range(rng.choice([9, 11, 12, 13])))
        base = rng.choice(self.rows)[rng.randrange(10)]
        return self.fk.mutate_text(base, rng) if base else base

    def verify(self, rng: random.Random) -> Any:
        fk = self.fk
        r = rng.random()
        if r < 0.5:
            text = rng.choice(self.texts)
            for _ in range(rng.choice([1, 1, 1, 2, 3, 5])):
                text = fk.mutate_text(text, rng)
            return ("text", text, rng.random() < 0.2)
        if r < 0.6:
            return ("text", fk.random_text(rng), False)
        if r < 0.9:
            pick = rng.random()
            hcert = (fk.near_valid_dcc(rng) if pick < 0.5 else fk.random_dcc(rng)
                     if pick < 0.85 else fk.random_cbor(rng))
            edge = [True, False, None, 0, -1, 1.5, 2**31, 2**53, 2**63, 2**64, -(2**64),
                    float("nan"), "VN", "", b"VN", fk.IAT, fk.EXP, [fk.EXP]]
            times = {} if rng.random() < 0.7 else {
                rng.choice(["iss", "iat", "exp"]): rng.choice(edge) for _ in range(2)}
            try:
                claims = fk.claims_bytes(hcert, **times) if rng.random() < 0.8 else \
                    __import__("cbor2").dumps(fk.random_cbor(rng))
            except Exception:
                return ("text", rng.choice(self.texts), False)
            return ("text", fk.hc1_of(self.kit.cose(claims)), rng.random() < 0.4)
        return ("stream", fk.stream_input(rng, self.texts), False)

    def codec(self, rng: random.Random) -> Any:
        fk = self.fk
        r = rng.random()
        if r < 0.5:
            text = fk.mutate_text(rng.choice(self.texts), rng)
            if rng.random() < 0.7:
                text = text.removeprefix("HC1:")
            if rng.random() < 0.3:
                text = text[: rng.randrange(len(text) + 1)]
            return ("b45", text)
        if r < 0.65:
            return ("b45", fk.random_text(rng))
        if r < 0.75:
            return ("b45", self.odd_text(rng))
        if r < 0.9:
            return ("enc", bytes(rng.randrange(256) for _ in range(rng.choice([0, 1, 2, 3, 99,
                                                                                1000]))))
        body = rng.choice(self.texts).removeprefix("HC1:")
        with contextlib.suppress(Exception):
            data = bytearray(__import__("vaxqr.codec").codec.b45decode(body))
            for _ in range(rng.choice([0, 1, 3])):
                if data:
                    data[rng.randrange(len(data))] = rng.randrange(256)
            return ("zlib", bytes(data[: rng.randrange(len(data) + 1)]))
        return ("zlib", bytes(rng.randrange(256) for _ in range(rng.randrange(64))))

    def citizen(self, rng: random.Random) -> Any:
        from run_inputs import mutate_bytes, mutate_fields

        text = rng.choice(self.cards)
        for _ in range(rng.choice([0, 1, 1, 2, 3])):
            if rng.random() < 0.6:
                text = mutate_fields(text, "|", rng)
            else:
                raw = mutate_bytes(text.encode("utf-8", "surrogatepass"), rng)
                text = raw.decode("utf-8", rng.choice(["surrogateescape", "replace"]))
        if len(text) > 20000:
            text = text[:20000]
        return (text, [self.odd_text(rng) for _ in range(rng.choice([0, 1, 2]))])

    def issue(self, rng: random.Random) -> Any:
        from records import HEADER

        row = list(rng.choice(self.rows))
        for _ in range(rng.choice([1, 1, 2, 3])):
            i = rng.randrange(len(row))
            row[i] = self.odd_text(rng) if rng.random() < 0.6 else \
                self.fk.mutate_text(row[i], rng)[:2000]
        fields: dict[str, Any] = dict(zip(HEADER, row, strict=True))
        if rng.random() < 0.1:
            fields[rng.choice(HEADER)] = None  # a short row (csv.DictReader's restval)
        if rng.random() < 0.1:
            fields.pop(rng.choice(HEADER))
        return (rng.choice([1, 2, 2**31, 2**63 - 1, 2**64]), fields)

    def schema(self, rng: random.Random) -> Any:
        fk = self.fk
        r = rng.random()
        dcc = (fk.near_valid_dcc(rng) if r < 0.5 else fk.random_dcc(rng) if r < 0.85
               else fk.random_cbor(rng))
        return __import__("cbor2").dumps(dcc)

    def make(self, target: str, rng: random.Random) -> Any:
        return getattr(self, target)(rng)


# --------------------------------------------------------------------------- parent


class Proc:
    def __init__(self, pure: bool) -> None:
        env = dict(os.environ)
        env.pop("VAXQR_PURE", None)
        # the same str hashes in both: a set's order shows in messages (CBOR tag 258)
        env["PYTHONHASHSEED"] = "0"
        if pure:
            env["VAXQR_PURE"] = "1"
        self.pure = pure
        self.p = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--worker"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        assert self.p.stdin is not None and self.p.stdout is not None
        self.info = _read_frame(self.p.stdout)
        if self.info is None:
            raise SystemExit(f"the {'pure' if pure else 'compiled'} worker did not start")

    def send(self, batch: list[tuple[str, Any]]) -> None:
        assert self.p.stdin is not None
        _write_frame(self.p.stdin, batch)  # type: ignore[arg-type]

    def receive(self) -> list[Any] | None:
        assert self.p.stdout is not None
        return _read_frame(self.p.stdout)  # type: ignore[arg-type]

    def close(self) -> None:
        with contextlib.suppress(OSError):
            assert self.p.stdin is not None
            self.p.stdin.close()
        try:
            self.p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()


def first_difference(a: Any, b: Any, path: str = "") -> str:
    """Where two canonical results first differ, for the report."""
    if type(a) is not type(b):
        return f"{path}: {a!r:.300} != {b!r:.300}"
    if isinstance(a, (list, tuple)) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            if x != y:
                return first_difference(x, y, f"{path}[{i}]")
    return f"{path}: {a!r:.300} != {b!r:.300}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="time budget (default 60)")
    ap.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    ap.add_argument("--max-inputs", type=int, default=0, help="stop after N inputs")
    ap.add_argument("--target", choices=TARGETS, action="append",
                    help="only these targets (default all)")
    ap.add_argument("--crash-dir", default=os.path.join(tempfile.gettempdir(),
                                                         "vaxqr-differential"))
    ap.add_argument("--json", metavar="FILE", help="also write the figures as JSON to FILE")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker_main()

    os.environ.setdefault("VAXQR_PURE", "1")  # the parent only makes inputs
    from run import numbered
    targets = tuple(args.target or TARGETS)
    t0 = time.perf_counter()
    inputs = Inputs()
    compiled, pure = Proc(pure=False), Proc(pure=True)
    setup = time.perf_counter() - t0
    print(f"compiled worker: {compiled.info}\npure worker:     {pure.info}")
    if compiled.info["state"] != "native" or not compiled.info["c_base45"]:
        why = f"no current native build (state {compiled.info['state']}): nothing to compare"
        print(why)
        compiled.close()
        pure.close()
        if args.json:
            Path(args.json).write_text(json.dumps({"skipped": why}))
        return 2
    rng = random.Random(args.seed)
    counts = dict.fromkeys(targets, 0)
    findings: list[tuple[str, str]] = []
    crash_dir = Path(args.crash_dir)
    batch: list[tuple[str, Any]] = []
    start = time.perf_counter()

    def flush() -> None:
        nonlocal compiled, pure
        if not batch:
            return
        compiled.send(batch)
        pure.send(batch)
        a, b = compiled.receive(), pure.receive()
        if a is None or b is None:  # a worker died: find the input on its own
            which = "compiled" if a is None else "pure"
            rc = (compiled if a is None else pure).p.poll()
            for p in (compiled, pure):
                p.close()
            compiled, pure = restart()
            culprit = batch
            for item in batch:
                compiled.send([item])
                pure.send([item])
                if compiled.receive() is None or pure.receive() is None:
                    culprit = [item]
                    compiled.close()
                    pure.close()
                    compiled, pure = restart()
                    break
            save(culprit, f"the {which} worker died (exit {rc})")
        else:
            for item, x, y in zip(batch, a, b, strict=True):
                if x != y:
                    save([item], f"{item[0]}: compiled vs pure differ at "
                                 f"{first_difference(x, y)}")
        batch.clear()

    def restart() -> tuple[Proc, Proc]:
        again = Proc(pure=False), Proc(pure=True)
        if again[0].info != compiled.info or again[1].info != pure.info:
            raise SystemExit(f"a restarted worker is another build: {again[0].info}")
        return again

    def save(items: list[Any], what: str) -> None:
        crash_dir.mkdir(parents=True, exist_ok=True)
        path = crash_dir / f"seed{args.seed}-{len(findings) + 1}.pickle"
        path.write_bytes(pickle.dumps(items))
        findings.append((what, str(path)))
        print(f"FINDING: {what}\n  input: {items[0]!r:.300}\n  saved: {path}", flush=True)

    for _n in numbered(args.seconds, args.max_inputs):
        target = targets[rng.randrange(len(targets))]
        try:
            item = inputs.make(target, rng)
        except Exception:
            continue
        counts[target] += 1
        batch.append((target, item))
        if len(batch) >= BATCH:
            flush()
    flush()
    elapsed = time.perf_counter() - start
    compiled.close()
    pure.close()
    total = sum(counts.values())
    print(f"vaxqr fuzz/differential.py: seed {args.seed}, {total:,} inputs in {elapsed:.0f} s "
          f"(setup {setup:.1f} s): " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    print(f"findings: {len(findings)}")
    for what, path in findings:
        print(f"  {what}  [{path}]")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "seed": args.seed, "seconds": elapsed, "inputs": total, "per_target": counts,
            "findings": findings, "compiled": compiled.info, "pure": pure.info}, indent=2))
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
