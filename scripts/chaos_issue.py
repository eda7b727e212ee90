#!/usr/bin/env python3
"""Chaos test of ``vaxqr issue --from CSV --out DIR``: "never lose a record, never sign a
citizen twice".

Each run generates a CSV of a few thousand rows (valid citizens, planted invalid rows and
rows superseded by a citizen's later dose), starts the batch with the DEMO ONLY keys of
``keys/examples/`` and interrupts it, one to several times, then resumes it with the same
command until it completes. Interruptions:

* a signal to the whole process group (the signing process and its forked renderers):
  SIGKILL mostly, sometimes SIGINT (Ctrl-C) or SIGTERM, at a random moment, at the very
  start of the first chunk, or once every image is written (the final sync, the manifest);
* a SIGKILL of the group from inside the process at a named point (``--points``):
  ``first-chunk`` (claimed in the office register and signed, not yet recorded),
  ``first-commit`` (recorded, no image yet), ``mid-images``, ``final-sync``,
  ``manifest-rename``, ``rejects-rename`` and ``restore``
  (while an image damaged by a "power loss" is rewritten);
* a simulated power loss between runs: the newest image cut short, an image emptied,
  deleted or zeroed in its middle, the manifest's tail cut off, rejects.csv lost.

After every interruption: what the ledger held before is still there, unchanged (nothing
lost, nothing signed again), every image on disk is whole and is its ledger credential's,
no image lacks a ledger entry, and a manifest, if there is one, lists only such images.
After completion: every valid row has exactly one credential in the ledger and the
manifest, every image is a whole PNG that decodes (vaxqr's decoder) to the manifest's
``HC1:``, which verifies against the demo trust list and carries the row's data, no UVCI
appears twice, rejects.csv lists exactly the invalid and superseded rows, no temporary
file is left, and no process of the batch is left running. The office's citizen register
(in a copy of the signer directory, one per batch) agrees with the ledger: after every
interruption each credential in the ledger is its citizen's claim; after completion every
claim of the batch names a credential in the ledger.

    .venv/bin/python scripts/chaos_issue.py --runs 20 --rows 3000 --seed 1

Prints the figures (runs, starts, kills by signal and point, resumes, power losses,
invariant violations) and exits 1 when any invariant was violated.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

SIGNER = ROOT / "keys" / "examples" / "communes" / "31078"
CA = ROOT / "keys" / "examples" / "ca" / "ca.crt"
TRUSTLIST = ROOT / "keys" / "examples" / "trustlist.json"
PASSWORD = "vaxqr-demo"
VAXQR = Path(sys.executable).with_name("vaxqr")
HEADER = ["full_name", "sex", "dob", "id_number", "dose_number", "total_doses",
          "vaccination_date", "vaccine", "lot", "site"]
POINTS = ("first-chunk", "first-commit", "mid-images", "final-sync", "manifest-rename",
          "rejects-rename", "restore")
DAMAGES = ("cut-newest-image", "empty-image", "zero-image-middle", "delete-image",
           "cut-manifest-tail", "lose-rejects")

# Runs `vaxqr issue` in this process after arranging a SIGKILL of its process group at one
# named point (argv: point, expected images, then vaxqr's arguments). Only modules that are
# never compiled are patched (the ledger, fileio, os), so it works in both builds.
DRIVER = r"""
import os, signal, sys
point, expected, args = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
out = args[args.index("--out") + 1]

def die():
    os.killpg(0, signal.SIGKILL)

if point in ("first-chunk", "first-commit"):
    from vaxqr.ledger import Ledger
    add = Ledger.add_many
    def add_many(self, entries):
        if point == "first-chunk":
            die()
        add(self, entries)
        die()
    Ledger.add_many = add_many
elif point == "mid-images":
    from vaxqr.fileio import BatchDir
    write = BatchDir.write
    count = [0]
    def write_some(self, name, data):
        count[0] += 1
        if count[0] == 40:  # in whichever process writes its 40th image first
            die()
        write(self, name, data)
    BatchDir.write = write_some
elif point == "final-sync":
    sync = os.sync
    def final_sync():
        if len(os.listdir(os.path.join(out, "qr"))) >= expected:
            die()
        sync()
    os.sync = final_sync
else:
    replace = os.replace
    target = {"manifest-rename": "manifest.csv", "rejects-rename": "rejects.csv",
              "restore": ".png"}[point]
    def replace_then(src, dst, **kw):
        if str(dst).endswith(target):
            die()
        replace(src, dst, **kw)
    os.replace = replace_then
sys.argv = ["vaxqr", *args]
from vaxqr.cli import main
main()
"""


@dataclass
class Figures:
    runs: int = 0  # batches (one CSV, one output directory each)
    starts: int = 0  # vaxqr processes started
    resumes: int = 0  # starts on an output directory an earlier start worked on
    completed: int = 0  # batches that ended with exit 0 and were checked
    kills: Counter[str] = field(default_factory=Counter)  # by signal
    points: Counter[str] = field(default_factory=Counter)  # where: random, first, final, …
    missed: int = 0  # interruptions planned but the run ended first
    damages: Counter[str] = field(default_factory=Counter)
    images_decoded: int = 0
    violations: list[str] = field(default_factory=list)

    def report(self) -> str:
        kills = sum(self.kills.values())
        lines = [
            f"runs: {self.runs} batches, {self.completed} completed and checked",
            f"processes started: {self.starts} ({self.resumes} resumes)",
            f"interruptions: {kills} ("
            + ", ".join(f"{k} {v}" for k, v in sorted(self.kills.items())) + ")",
            "  at: " + ", ".join(f"{k} {v}" for k, v in sorted(self.points.items())),
            f"  planned but the run ended first: {self.missed}",
            "simulated power losses: " + (", ".join(
                f"{k} {v}" for k, v in sorted(self.damages.items())) or "none"),
            f"images decoded and verified: {self.images_decoded}",
            f"invariant violations: {len(self.violations)}",
        ]
        lines += [f"  - {v}" for v in self.violations[:50]]
        return "\n".join(lines)


# --------------------------------------------------------------------------- the input


@dataclass
class Expected:
    """What a completed batch of one CSV must hold."""

    valid: dict[int, list[str]]  # row -> its fields: exactly one credential each
    invalid: set[int]  # rows rejected for what is wrong with them
    superseded: set[int]  # rows of a citizen another row of is signed


def _invalid(row: list[str], rng: random.Random) -> list[str]:
    row = list(row)
    how = rng.randrange(7)
    if how == 0:
        row[3] = "999" + row[3][3:]  # no such province
    elif how == 1:
        row[7] = "covaxin"
    elif how == 2:
        row[6] = "2099-01-01"
    elif how == 3:
        row[4], row[5] = "3", "2"
    elif how == 4:
        row = row[:5]  # too few fields
    elif how == 5:
        row[8] = "=HYPERLINK(\"x\")"
    else:
        row[2] = "31/02/1990"
    return row


def make_csv(path: Path, rows: int, rng: random.Random) -> Expected:
    """Write ``rows`` data rows: ~3% invalid, ~3% superseded by another row of the same
    citizen (an earlier dose, or the same row twice), the rest valid, one per citizen."""
    from records import citizens

    n_dup = max(2, rows * 3 // 100)
    base = list(citizens(random.Random(rng.random()), rows - n_dup))
    kinds = ["valid"] * len(base)
    for i in rng.sample(range(len(base)), max(2, rows * 3 // 100)):
        base[i], kinds[i] = _invalid(base[i], rng), "invalid"
    sources = [row for row, k in zip(base, kinds, strict=True) if k == "valid"]
    for j in range(n_dup):
        original = rng.choice(sources)
        copy = list(original)
        if j % 2:  # an earlier dose: superseded by the later one, wherever each row is
            copy[6] = (date.fromisoformat(original[6]) - timedelta(days=30)).isoformat()
            copy[4] = "1"
        pos = rng.randrange(len(base) + 1)
        base.insert(pos, copy)
        kinds.insert(pos, "superseded")
    # an identical copy of a row before it is the superseded one (of equal rows the first
    # is signed): swap the kinds where the copy landed first
    first_of: dict[tuple[str, ...], int] = {}
    for i, row in enumerate(base):
        key = tuple(row)
        if key in first_of and kinds[i] == "valid" and kinds[first_of[key]] == "superseded":
            kinds[i], kinds[first_of[key]] = "superseded", "valid"
        first_of.setdefault(key, i)
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(HEADER)
        w.writerows(base)
    return Expected(
        valid={i + 1: r for i, (r, k) in enumerate(zip(base, kinds, strict=True))
               if k == "valid"},
        invalid={i + 1 for i, k in enumerate(kinds) if k == "invalid"},
        superseded={i + 1 for i, k in enumerate(kinds) if k == "superseded"})


# --------------------------------------------------------------------------- looking


_COLUMNS = "row, uvci, hc1, row_hash, full_name, iat, exp, file"


def _select(db: Path, copy: Path, sql: str) -> list[Any]:
    """``sql`` run on a copy of the SQLite file ``db`` (with its ``-wal``) as a crash left
    it: so that reading it recovers, checkpoints or creates nothing among the batch's
    files. [] when there is no file yet, or no table (killed before it was created)."""
    if not db.exists():
        return []
    for suffix in ("", "-wal", "-shm"):
        Path(f"{copy}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(db, copy)
    if Path(f"{db}-wal").exists():
        shutil.copyfile(f"{db}-wal", f"{copy}-wal")
    con = sqlite3.connect(copy)
    try:
        return con.execute(sql).fetchall()
    except sqlite3.OperationalError:  # killed before the table was created
        return []
    finally:
        con.close()


def ledger_rows(out: Path, scratch: Path) -> list[tuple[int, str, str, str, str, int, int, str]]:
    """The batch ledger's credentials (:data:`_COLUMNS`), read from a copy (:func:`_select`)."""
    return _select(out / "ledger.sqlite", scratch / "ledger-copy.sqlite",
                   f"SELECT {_COLUMNS} FROM credentials ORDER BY row")


def register_claims(signer: Path, scratch: Path) -> list[tuple[str, str, str, int]]:
    """The office register's claims ``(uvci, place, source, row)`` in ``signer``'s ledger,
    read from a copy (:func:`_select`)."""
    return _select(signer / "ledger.sqlite", scratch / "register-copy.sqlite",
                   "SELECT uvci, place, source, row FROM citizens")


def check_register(out: Path, signer: Path, scratch: Path, *, completed: bool) -> list[str]:
    """The office register against the batch's ledger: every credential the ledger holds
    is its citizen's claim (claims are committed before a chunk is signed), and, once the
    batch has completed, every claim of this batch names a credential of its ledger (a
    claim a kill left without its credential was signed again on a resume)."""
    place = str(out.resolve())
    claims = {c[0]: c for c in register_claims(signer, scratch) if c[1] == place}
    bad: list[str] = []
    issued = {e[1]: e[0] for e in ledger_rows(out, scratch)}
    for uvci, row in issued.items():
        claim = claims.get(uvci)
        if claim is None:
            bad.append(f"row {row}: credential {uvci} is in the ledger, not in the register")
        elif claim[3] != row:
            bad.append(f"row {row}: the register has credential {uvci} at row {claim[3]}")
    if completed:
        left = sorted(c[3] for u, c in claims.items() if u not in issued)
        if left:
            bad.append(f"{len(left)} claim(s) in the register without a credential in the "
                       f"ledger: rows {left[:10]}")
    return bad


def read_ledger(out: Path, scratch: Path) -> dict[int, tuple[str, str, str]]:
    """``row -> (uvci, hc1, row_hash)`` of the ledger (:func:`ledger_rows`)."""
    found: dict[int, tuple[str, str, str]] = {}
    for row, uvci, hc1, digest, *_ in ledger_rows(out, scratch):
        if row in found:
            raise AssertionError(f"row {row} twice in the ledger")
        found[row] = (uvci, hc1, digest)
    return found


def _digest(row: list[str]) -> str:
    from vaxqr.issue import parse_record

    return parse_record(1, dict(zip(HEADER, row, strict=True)), today=date.today()).digest()


_IMAGE = re.compile(r"\d{7}\.png")


def check_interrupted(out: Path, scratch: Path, expect: Expected,
                      before: dict[int, tuple[str, str, str]], digests: dict[int, str],
                      damaged: set[str]
                      ) -> tuple[list[str], dict[int, tuple[str, str, str]]]:
    """The invariants that hold after any interruption: returns the violations and the
    ledger now. ``damaged``: the images a simulated power loss damaged, which a run that
    ends restores (until then they may stay as they are)."""
    from vaxqr.issue import intact, render

    bad: list[str] = []
    ledger = read_ledger(out, scratch)
    for row, entry in before.items():
        if ledger.get(row) != entry:
            bad.append(f"row {row}: its credential {entry[0]} changed or vanished "
                       f"from the ledger (now {ledger.get(row, ('nothing',))[0]})")
    uvcis = Counter(e[0] for e in ledger.values())
    bad += [f"UVCI {u} {n} times in the ledger" for u, n in uvcis.items() if n > 1]
    for row, (uvci, _hc1, digest) in ledger.items():
        if row not in expect.valid:
            bad.append(f"row {row} (not a row to sign) has credential {uvci}")
        elif digest != digests[row]:
            bad.append(f"row {row}: the ledger's record hash is not the row's")
    qr = out / "qr"
    for name in sorted(os.listdir(qr)) if qr.is_dir() else []:
        if name.startswith("."):
            continue  # a hidden temporary: allowed until the next run cleans it
        if not _IMAGE.fullmatch(name):
            bad.append(f"unexpected file qr/{name}")
            continue
        row = int(name[:7])
        if row not in ledger:
            bad.append(f"qr/{name} exists but the ledger has no credential for row {row}")
        elif not intact(qr / name):
            if f"qr/{name}" in damaged:
                continue
            bad.append(f"qr/{name} is not whole after a mere kill (no power loss)")
        elif (qr / name).read_bytes() != render(ledger[row][1], "png"):
            bad.append(f"qr/{name} is not the picture of the ledger's credential")
    manifest = out / "manifest.csv"
    if manifest.exists():
        rows = _read_csv(manifest)
        if "manifest.csv" in damaged:  # cut by a power loss: its last row may be partial
            rows = rows[:-1]
        for m in rows:
            row = int(m["row"])
            if ledger.get(row, ("", ""))[:2] != (m["uvci"], m["hc1"]):
                bad.append(f"manifest row {row} is not the ledger's credential")
            elif not intact(out / m["file"]) and m["file"] not in damaged:
                bad.append(f"manifest lists {m['file']}, which is missing or damaged")
    return bad, ledger


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


def check_completed(out: Path, scratch: Path, expect: Expected, digests: dict[int, str],
                    verifier: object, fig: Figures) -> list[str]:
    """The invariants of a completed batch."""
    from vaxqr.qr import decode_image

    bad: list[str] = []
    left = sorted(str(p.relative_to(out)) for p in out.rglob("*")
                  if p.name not in ("ledger.sqlite", "manifest.csv", "rejects.csv", "qr")
                  and not (p.parent.name == "qr" and _IMAGE.fullmatch(p.name)))
    if left:
        bad.append(f"files left behind: {left[:5]}")
    entries = ledger_rows(out, scratch)
    rows = [e[0] for e in entries]
    if sorted(rows) != sorted(expect.valid) or len(rows) != len(set(rows)):
        missing = sorted(set(expect.valid) - set(rows))
        extra = sorted(set(rows) - set(expect.valid))
        bad.append(f"ledger rows differ from the valid rows: missing {missing[:10]}, "
                   f"extra {extra[:10]}, {len(rows) - len(set(rows))} twice")
    uvcis = Counter(e[1] for e in entries)
    bad += [f"UVCI {u} {n} times in the ledger" for u, n in uvcis.items() if n > 1]
    bad += [f"row {e[0]}: the ledger's record hash is not the row's" for e in entries
            if e[0] in digests and e[3] != digests[e[0]]]
    try:
        manifest = _read_csv(out / "manifest.csv")
    except FileNotFoundError:
        return [*bad, "no manifest.csv"]
    want = [{"row": str(e[0]), "uvci": e[1], "full_name": e[4], "file": e[7], "hc1": e[2],
             "iat": str(e[5]), "exp": str(e[6])} for e in entries]
    if manifest != want:
        diff = [m.get("row") for m, w in zip(manifest, want, strict=False) if m != w]
        bad.append(f"manifest ({len(manifest)} rows) is not the ledger ({len(want)}): "
                   f"first rows that differ {diff[:5]}")
    files = {m["file"] for m in manifest}
    on_disk = {f"qr/{p.name}" for p in (out / "qr").iterdir()}
    if files != on_disk:
        bad.append(f"images on disk differ from the manifest: missing "
                   f"{sorted(files - on_disk)[:5]}, stray {sorted(on_disk - files)[:5]}")
    for m in manifest:
        path = out / m["file"]
        row = int(m["row"])
        try:
            texts = [c.text for c in decode_image(path)]
        except Exception as exc:  # the decoder's typed errors, or PIL's on a damaged file
            bad.append(f"{m['file']} does not decode: {type(exc).__name__}: {exc}")
            continue
        fig.images_decoded += 1
        if texts != [m["hc1"]]:
            bad.append(f"{m['file']} decodes to another credential than the manifest's")
            continue
        report = verifier.verify_text(m["hc1"])  # type: ignore[attr-defined]
        if not report.valid:
            bad.append(f"{m['file']}: not valid at {report.failed}: {report.reason}")
            continue
        s = report.summary()
        fields = expect.valid.get(row)
        if fields is None:
            continue
        if (s["uvci"], s["dose"], s["doses"], s["date"]) != (
                m["uvci"], int(fields[4]), int(fields[5]), fields[6]):
            bad.append(f"{m['file']}: the credential does not carry row {row}'s data")
    try:
        rejects = _read_csv(out / "rejects.csv")
    except FileNotFoundError:
        return [*bad, "no rejects.csv"]
    got_invalid = {int(r["row"]) for r in rejects
                   if "one credential per citizen" not in r["reason"]}
    got_superseded = {int(r["row"]) for r in rejects
                      if "one credential per citizen" in r["reason"]}
    if got_invalid != expect.invalid:
        bad.append(f"rejected rows are not the invalid rows: missing "
                   f"{sorted(expect.invalid - got_invalid)[:5]}, extra "
                   f"{sorted(got_invalid - expect.invalid)[:5]}")
    if got_superseded != expect.superseded:
        bad.append(f"superseded rows differ: missing "
                   f"{sorted(expect.superseded - got_superseded)[:5]}, extra "
                   f"{sorted(got_superseded - expect.superseded)[:5]}")
    return bad


# --------------------------------------------------------------------------- damage


def damage(out: Path, rng: random.Random, fig: Figures, damaged: set[str] | None = None,
           kinds: Sequence[str] | None = None) -> list[str]:
    """Simulate a power loss: ``kinds`` (default: one to three of DAMAGES), each where it
    applies; the images it damages are added to ``damaged``. Returns what it did."""
    done: list[str] = []
    damaged = set() if damaged is None else damaged
    images = sorted((out / "qr").glob("*.png")) if (out / "qr").is_dir() else []
    for what in kinds if kinds is not None else rng.sample(DAMAGES, rng.randint(1, 3)):
        if what.endswith("image") or what.endswith("middle"):
            if not images:
                continue
            if what == "cut-newest-image":
                path = max(images, key=lambda p: (p.stat().st_mtime_ns, p.name))
            else:
                path = rng.choice(images)
            damaged.add(f"qr/{path.name}")
            data = path.read_bytes()
            if len(data) < 256 and what != "delete-image":
                continue  # already damaged
            if what == "cut-newest-image":
                path.write_bytes(data[: rng.randrange(len(data))])
            elif what == "empty-image":
                path.write_bytes(b"")
            elif what == "delete-image":
                path.unlink()
                images.remove(path)
            else:  # a block of the middle never written: head and tail still right
                mid = len(data) // 2
                path.write_bytes(data[:mid - 64] + bytes(128) + data[mid + 64:])
        elif what == "cut-manifest-tail":
            m = out / "manifest.csv"
            if not m.exists():
                continue
            data = m.read_bytes()
            m.write_bytes(data[: rng.randrange(len(data) // 2, len(data))])
            damaged.add("manifest.csv")  # until a run that ends writes it again
        elif what == "lose-rejects":
            r = out / "rejects.csv"
            if not r.exists():
                continue
            r.unlink()
        fig.damages[what] += 1
        done.append(what)
    return done


# --------------------------------------------------------------------------- running


@dataclass
class Batch:
    csv: Path
    out: Path
    workers: int
    expect: Expected
    digests: dict[int, str]
    signer: Path = SIGNER  # a copy of it (signer_copy): its ledger holds the register

    def command(self) -> list[str]:
        return ["issue", "--signer", str(self.signer), "--from", str(self.csv), "--out",
                str(self.out), "--workers", str(self.workers)]


def signer_copy(where: Path) -> Path:
    """A copy of the demo signer directory without its ledger: the office register a batch
    consults starts empty, so other runs' citizens (random, may recur) supersede nothing."""
    dst = where / "signer"
    shutil.copytree(SIGNER, dst, ignore=shutil.ignore_patterns("ledger.sqlite*"))
    os.chmod(dst / "signer.key", 0o600)
    return dst


def _env() -> dict[str, str]:
    env = dict(os.environ, VAXQR_PASSWORD=PASSWORD)
    env.pop("VAXQR_PASSWORD_FILE", None)
    return env


def start(batch: Batch, point: str | None = None) -> subprocess.Popen[bytes]:
    """Start the batch's command in a new process group (with ``point``: under the
    driver that SIGKILLs the group there)."""
    if point is None:
        argv = [str(VAXQR), *batch.command()]
    else:
        argv = [sys.executable, "-c", DRIVER, point,
                str(max(1, len(batch.expect.valid) - 8)), *batch.command()]
    return subprocess.Popen(argv, env=_env(), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _names(directory: Path) -> list[str]:
    try:
        return os.listdir(directory)
    except FileNotFoundError:
        return []


def _count(directory: Path) -> int:
    try:
        return sum(1 for n in os.listdir(directory) if not n.startswith("."))
    except FileNotFoundError:
        return 0


def _wait_for(proc: subprocess.Popen[bytes], ready: Callable[[], bool],
              limit: float = 120.0) -> bool:
    deadline = time.monotonic() + limit
    while proc.poll() is None and time.monotonic() < deadline:
        if ready():
            return True
        time.sleep(0.002)
    return False


def interrupt(batch: Batch, rng: random.Random, when: str, sig: signal.Signals,
              estimate: float) -> tuple[subprocess.Popen[bytes], bool, bool]:
    """Start the batch and send ``sig`` to its process group: at a random moment of a run
    of about ``estimate`` seconds, at the very start of the first chunk (as soon as the
    ledger exists), or once every image is written (the final sync and the manifest).
    Returns the ended process, whether the signal was sent before it ended, and whether
    a process of its group was left behind."""
    proc = start(batch)
    if when == "random":
        deadline = time.monotonic() + rng.uniform(0.0, estimate)
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
    elif when == "first":  # signing starts once the manifest's temporary file is open
        _wait_for(proc, lambda: any(n.startswith(".manifest.csv.") and str(proc.pid) in n
                                    for n in _names(batch.out)))
        time.sleep(rng.uniform(0.0, 0.03))
    else:  # final
        need = len(batch.expect.valid) - 4
        _wait_for(proc, lambda: _count(batch.out / "qr") >= need)
        time.sleep(rng.uniform(0.0, 0.15))
    sent = False
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
            sent = True
        except ProcessLookupError:
            pass
    return proc, sent, _finish(proc)


def _finish(proc: subprocess.Popen[bytes]) -> bool:
    """Wait for the batch's process; whether a process of its group is left behind."""
    try:
        proc.wait(timeout=120)
    except subprocess.TimeoutExpired:  # a SIGINT/SIGTERM that did not stop it: say so
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise RuntimeError("the batch did not stop within 120 s of the signal") from None
    return _group_left(proc.pid)


def _group_left(pgid: int) -> bool:
    """Whether a process of the group ``pgid`` (a renderer of a killed batch) is still
    there 10 s after its leader ended (one not yet reaped counts too)."""
    deadline = time.monotonic() + 10
    while True:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        if time.monotonic() > deadline:
            return True
        time.sleep(0.02)


def _stderr(proc: subprocess.Popen[bytes]) -> str:
    assert proc.stderr is not None
    text = proc.stderr.read().decode("utf-8", "replace")
    proc.stderr.close()
    return text


def _expected_exit(code: int | None, sig: signal.Signals, err: str) -> bool:
    if sig == signal.SIGINT:  # 130 from the batch; before it starts (Python and Typer
        # still starting up), Python's own ending with a traceback: nothing written yet
        return code == 130 or (code in (1, -signal.SIGINT) and "KeyboardInterrupt" in err
                               and "issue_batch" not in err)
    return code == -sig


def run_batch(index: int, rows: int, tmp: Path, rng: random.Random, fig: Figures,
              verifier: object, estimate: list[float], *, points: Sequence[str] = POINTS,
              max_kills: int = 4, say: Callable[[str], None] = print) -> None:
    """One batch: generate, interrupt 1..max_kills times (maybe with power losses),
    complete, check; sometimes a power loss after completion, and check the resume."""
    home = tmp / f"batch{index:03d}"
    home.mkdir(parents=True)
    csv_path = home / f"records-{index}.csv"
    expect = make_csv(csv_path, rows, rng)
    batch = Batch(csv_path, home / "out", rng.choice([1, 2, 3]), expect,
                  {r: _digest(f) for r, f in expect.valid.items()}, signer_copy(home))
    fig.runs += 1
    ledger: dict[int, tuple[str, str, str]] = {}
    started = False
    notes: list[str] = []
    damaged: set[str] = set()  # files a simulated power loss damaged, not yet restored

    def violations(found: list[str], when: str) -> None:
        for v in found:
            fig.violations.append(f"batch {index} ({when}): {v}")
            say(f"VIOLATION: {fig.violations[-1]}")

    for _ in range(rng.randint(1, max_kills)):
        kind = rng.random()
        fig.starts += 1
        fig.resumes += started
        started = True
        if kind < 0.35 and points:  # a SIGKILL from inside, at a named point
            point = rng.choice(list(points))
            proc = start(batch, point)
            left = _finish(proc)
            err = _stderr(proc)
            if proc.returncode == -signal.SIGKILL:
                fig.kills["SIGKILL"] += 1
                fig.points[point] += 1
                notes.append(point)
            elif proc.returncode == 0:
                fig.missed += 1  # the point was not reached (no damage to restore, …)
                notes.append(f"{point}(missed)")
            else:
                notes.append(f"{point}(exit {proc.returncode})")
                violations([f"exit {proc.returncode} under point {point}: {err[-300:]}"],
                           point)
        else:
            when = rng.choices(["random", "first", "final"], [6, 2, 2])[0]
            sig = rng.choices([signal.SIGKILL, signal.SIGINT, signal.SIGTERM], [7, 2, 1])[0]
            proc, sent, left = interrupt(batch, rng, when, sig, estimate[0])
            err = _stderr(proc)
            if sent and _expected_exit(proc.returncode, sig, err):
                fig.kills[sig.name] += 1
                fig.points[when] += 1
                notes.append(f"{sig.name}@{when}")
            elif proc.returncode == 0:
                fig.missed += 1
                notes.append(f"{sig.name}@{when}(missed)")
            else:
                notes.append(f"{sig.name}@{when}(exit {proc.returncode})")
                violations([f"exit {proc.returncode} after {sig.name}@{when}: "
                            f"{err[-300:]}"], f"{sig.name}@{when}")
            grew = (batch.out / "ledger.sqlite").exists() and \
                len(read_ledger(batch.out, home)) > len(ledger)
            # before the command began (typer still starting) it only says "interrupted":
            # fine while nothing was signed
            said = "run the same command again" in err or ("interrupted" in err and not grew)
            if sig == signal.SIGINT and sent and proc.returncode == 130 and not said:
                violations([f"Ctrl-C did not say how to resume: {err[-300:]!r}"], "SIGINT")
        if left:
            violations(["a process of the batch was still running 10 s after it ended"],
                       notes[-1])
        if proc.returncode == 0:
            damaged.clear()  # a run that ends restores every damaged image
        found, ledger = check_interrupted(batch.out, home, expect, ledger, batch.digests,
                                          damaged)
        violations(found, notes[-1])
        violations(check_register(batch.out, batch.signer, home, completed=False), notes[-1])
        if rng.random() < 0.3:
            notes += [f"power-loss:{d}" for d in damage(batch.out, rng, fig, damaged)]
    # resume until it completes
    for attempt in range(5):
        fig.starts += 1
        fig.resumes += started
        started = True
        t0 = time.monotonic()
        proc = start(batch)
        if _finish(proc):
            violations(["a process of the batch was still running 10 s after it ended"],
                       "resume")
        err = _stderr(proc)
        if proc.returncode == 0:
            estimate[0] = max(0.3, time.monotonic() - t0)
            break
        violations([f"resume {attempt + 1} ended with exit {proc.returncode}: "
                    f"{err.strip()[-400:]}"], "resume")
    else:
        say(f"batch {index}: never completed")
        return
    found = check_completed(batch.out, home, expect, batch.digests, verifier, fig)
    violations(found, "completed")
    violations(check_register(batch.out, batch.signer, home, completed=True), "completed")
    fig.completed += 1
    if rng.random() < 0.3:  # a power loss after completion, then the same command again
        hit = damage(batch.out, rng, fig)
        notes += [f"after:{d}" for d in hit]
        fig.starts += 1
        fig.resumes += 1
        proc = start(batch)
        if _finish(proc):
            violations(["a process of the batch was still running 10 s after it ended"],
                       "after power loss")
        err = _stderr(proc)
        if proc.returncode != 0:
            violations([f"re-run after {hit} exit {proc.returncode}: {err[-300:]}"],
                       "after power loss")
        else:
            violations(check_completed(batch.out, home, expect, batch.digests, verifier, fig),
                       f"after power loss {hit}")
            violations(check_register(batch.out, batch.signer, home, completed=True),
                       f"after power loss {hit}")
    say(f"batch {index}: {len(expect.valid)} valid, {len(expect.invalid)} invalid, "
        f"{len(expect.superseded)} superseded rows, workers {batch.workers}: "
        + " ".join(notes) + f" -> violations so far {len(fig.violations)}")


def make_verifier(scratch: Path) -> object:
    from vaxqr.trust import TrustStore
    from vaxqr.verify import Verifier

    trust = TrustStore.from_paths([CA, TRUSTLIST], at=datetime.now(UTC),
                                  state_file=scratch / "trust-state.json")
    return Verifier(trust)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Kill `vaxqr issue --from CSV --out DIR` at random moments and named "
                    "points, resume it, simulate power losses, and check that no record is "
                    "lost and no citizen signed twice.",
        epilog="Example: .venv/bin/python scripts/chaos_issue.py --runs 20 --rows 3000 "
               "--seed 1. Exit status 1 when an invariant was violated.")
    parser.add_argument("--runs", type=int, default=10, help="batches (default 10)")
    parser.add_argument("--rows", type=int, default=3000, help="CSV rows per batch "
                        "(default 3000)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--tmp", type=Path, default=None,
                        help="working directory (default: a new temporary one, removed "
                             "afterwards unless violations were found)")
    parser.add_argument("--max-kills", type=int, default=4,
                        help="interruptions per batch, at most (default 4)")
    parser.add_argument("--points", default=",".join(POINTS),
                        help="named kill points to use, comma-separated (default: all: "
                             + ", ".join(POINTS) + "); empty for signals only")
    args = parser.parse_args(argv)
    points = [p for p in args.points.split(",") if p]
    unknown = set(points) - set(POINTS)
    if unknown:
        parser.error(f"unknown point(s): {', '.join(sorted(unknown))}")
    if not VAXQR.exists():
        parser.error(f"{VAXQR} not found: run with the project's .venv/bin/python")
    os.chmod(SIGNER / "signer.key", 0o600)
    rng = random.Random(args.seed)
    tmp = args.tmp or Path(tempfile.mkdtemp(prefix="vaxqr-chaos-"))
    tmp.mkdir(parents=True, exist_ok=True)
    fig = Figures()
    verifier = make_verifier(tmp)
    estimate = [max(0.5, args.rows / 1000)]
    started = time.monotonic()
    print(f"chaos: {args.runs} runs of {args.rows} rows, seed {args.seed}, in {tmp}")
    for i in range(args.runs):
        run_batch(i, args.rows, tmp, rng, fig, verifier, estimate, points=points,
                  max_kills=args.max_kills)
    print(f"\n{fig.report()}\nseconds: {time.monotonic() - started:.0f}")
    if args.tmp is None and not fig.violations:
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if fig.violations else 0


if __name__ == "__main__":
    sys.exit(main())
