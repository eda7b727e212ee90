"""What only a batch does per credential: ``issue_batch`` in one process against the
one-core reference (``sign_record`` + vaxqr's PNG encoder) on the same rows.

    .venv/bin/python benchmarks/bench_overhead.py [--rows 4000] [--rounds 3] [--tmp DIR]
    .venv/bin/python benchmarks/bench_overhead.py --callgrind [--rows 500] [--keep]
    .venv/bin/python benchmarks/bench_overhead.py --tree /path/to/other/checkout ...

``--tree``: measure another checkout's ``vaxqr`` (with its own native build: ``PYTHONPATH=
TREE .venv/bin/python TREE/scripts/build_native.py``) with this script, for a before/after.

``issue_batch`` runs with ``workers=1`` (no forked renderer: every image is rendered in
this process) and an office register, as ``vaxqr issue`` keeps it, into a new OUT_DIR under
``--tmp`` (default /dev/shm: no disk, only the CPU). A batch has fixed costs (the signer's
checks, opening the ledgers), so each is run on ``--rows`` rows and on a fifth of them and
the difference counted: per credential, ``(B(n) - B(n/5)) / (n - n/5)``. The reference
signs and encodes the same records (parsed, with their UVCIs drawn, before it runs).
Batch-only overhead = batch per credential - reference per credential: reading and
validating the row, the office register, the ledger, the row digest, the UVCI, the
manifest, the image file, feeding the renderers.

CPU time (this process's user + system, ``getrusage``): rounds alternate batch and
reference, medians printed. Wall time is not used: the machines are shared. Still noisy
on a loaded machine (other processes evict the caches): prefer a quiet one, or:

``--callgrind``: instruction counts (``valgrind --tool=callgrind``, ~50× slower; no
hardware counters needed). Six processes under callgrind: the batch, the reference and the
reference's set-up alone (reading the rows, drawing the UVCIs), each on ``--rows`` rows and
on a fifth of them, differenced as above (the interpreter's start, imports and the key's
PBKDF2 cancel out). A second figure takes the batch's own ``sign_record`` and ``render``
calls out of the batch's count (compiled build only), which leaves out the spread between
runs of signing and encoding other UVCIs. User-space instructions only: the kernel's work
(creating the image files, SQLite's writes) is not counted; the CPU figures include it.
About 2.5 minutes for 500 rows.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from _common import PYTHON, load_demo_signer

HERE = Path(__file__).resolve()


def _csv(where: Path, n: int) -> Path:
    from bench_issue import write_rows

    return write_rows(where / f"records-{n}.csv", n)


def _prepared(src: Path, info: Any) -> list[tuple[Any, str]]:
    """The CSV's records, validated, with their UVCIs: what the reference starts from."""
    from datetime import date

    from vaxqr.credential import UvciMaker
    from vaxqr.issue import parse_record, read_csv

    today = date.today()
    recs = [parse_record(n, f, today=today) for n, f in read_csv(src)]
    return list(zip(recs, UvciMaker(info.province_code, info.commune_code).draw(len(recs)),
                    strict=True))


def run_batch(signer: Any, src: Path, out: Path) -> None:
    """``issue_batch`` of ``src`` into the new directory ``out`` (removed by the caller,
    untimed), with a new office register."""
    from vaxqr.issue import issue_batch

    result = issue_batch(signer, src, out / "out", workers=1,
                         register=out / "office-ledger.sqlite")
    assert result.issued > 0 and not result.rejected, result


def run_reference(info: Any, jobs: list[tuple[Any, str]]) -> None:
    from vaxqr.issue import sign_record
    from vaxqr.qr import to_png

    for rec, uvci in jobs:
        to_png(sign_record(info, rec, uvci)[0])


def _cpu() -> tuple[float, float]:
    r = resource.getrusage(resource.RUSAGE_SELF)  # µs resolution (os.times: 10 ms)
    return r.ru_utime, r.ru_stime


def _timed(fn: Any, *args: Any) -> tuple[float, float]:
    u0, s0 = _cpu()
    fn(*args)
    u1, s1 = _cpu()
    return u1 - u0, s1 - s0


def _timed_batch(signer: Any, src: Path, base: Path) -> tuple[float, float]:
    out = Path(tempfile.mkdtemp(prefix="batch-", dir=base))
    try:
        return _timed(run_batch, signer, src, out)
    finally:
        shutil.rmtree(out)


def cpu_main(rows: int, rounds: int, base: Path) -> None:
    from vaxqr.issue import _keep_heap, signer_info

    _keep_heap()  # the batch's processes run with it: so does the reference
    signer = load_demo_signer()
    info = signer_info(signer)
    small = max(1, rows // 5)
    work = Path(tempfile.mkdtemp(prefix="overhead-", dir=base))
    try:
        big_csv, small_csv = _csv(work, rows), _csv(work, small)
        big_jobs, small_jobs = _prepared(big_csv, info), _prepared(small_csv, info)
        _timed_batch(signer, small_csv, work)  # warm-up: imports, caches
        run_reference(info, small_jobs)
        b_user, b_sys, r_user, r_sys = [], [], [], []
        for _ in range(rounds):
            bu1, bs1 = _timed_batch(signer, big_csv, work)
            ru1, rs1 = _timed(run_reference, info, big_jobs)
            bu0, bs0 = _timed_batch(signer, small_csv, work)
            ru0, rs0 = _timed(run_reference, info, small_jobs)
            d = rows - small
            b_user.append((bu1 - bu0) / d)
            b_sys.append((bs1 - bs0) / d)
            r_user.append((ru1 - ru0) / d)
            r_sys.append((rs1 - rs0) / d)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    med = statistics.median
    b = med(map(sum, zip(b_user, b_sys, strict=True)))
    r = med(map(sum, zip(r_user, r_sys, strict=True)))
    over = [bu + bs - ru - rs for bu, bs, ru, rs in zip(b_user, b_sys, r_user, r_sys, strict=True)]
    print(f"CPU per credential ({rows:,} rows minus {small:,}, {rounds} rounds, medians; "
          f"load average {os.getloadavg()[0]:.1f})")
    print(f"  issue_batch, workers=1: {b * 1e6:7.1f} µs (user {med(b_user) * 1e6:.1f}, "
          f"system {med(b_sys) * 1e6:.1f})")
    print(f"  reference (sign_record + qr.to_png): {r * 1e6:7.1f} µs (user "
          f"{med(r_user) * 1e6:.1f}, system {med(r_sys) * 1e6:.1f})")
    print(f"  batch-only overhead: {med(over) * 1e6:7.1f} µs per credential (rounds: "
          + ", ".join(f"{x * 1e6:.1f}" for x in over) + f"); {med(over) / r:.1%} of the "
          "reference")


# --- instruction counts ---------------------------------------------------------------------


def one(what: str, src: Path, base: Path) -> None:
    """One measured run (under callgrind): the batch or the reference on ``src``."""
    from vaxqr.issue import _keep_heap, signer_info

    _keep_heap()
    signer = load_demo_signer()
    if what == "batch":
        run_batch(signer, src, Path(tempfile.mkdtemp(prefix="batch-", dir=base)))
    else:
        info = signer_info(signer)
        jobs = _prepared(src, info)
        run_reference(info, jobs)


# The compiled functions of the reference's work inside the batch (the mypyc build only)
_OWN = ("CPyDef_issue___sign_record", "CPyDef_issue___render")


def _inclusive(out: Path) -> int | None:
    """Instructions spent inside the batch's own calls of :data:`_OWN` (inclusive), or
    None when they are not there to see (the pure-Python build)."""
    text = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100",
                           str(out)], capture_output=True, text=True, check=True).stdout
    found: dict[str, int] = {}
    for line in text.splitlines():
        m = re.match(r"\s*([\d,]+) \(\s*[\d.]+%\)\s+\S*:(\w+)( |$)", line)
        if m and m.group(2) in _OWN:  # summed over the files its code is attributed to
            found[m.group(2)] = found.get(m.group(2), 0) + int(m.group(1).replace(",", ""))
    return sum(found.values()) if len(found) == len(_OWN) else None


def _instructions(what: str, src: Path, base: Path, tree: Path | None) -> int:
    out = base / f"callgrind.{what}.{src.stem}"
    cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
           PYTHON, str(HERE), "--one", what, "--src", str(src), "--tmp", str(base)]
    if tree is not None:
        cmd += ["--tree", str(tree)]
    # OpenBLAS's idle threads spin for a while (NumPy starts them at import): their
    # instructions vary run to run and are no part of either side
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", PYTHONHASHSEED="0")
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          check=False, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for line in out.read_text().splitlines():
        if line.startswith(("totals:", "summary:")):
            total = int(line.split()[1])
            if what == "batch":
                _OWN_SEEN[src] = _inclusive(out)
            return total
    raise AssertionError(f"no totals in {out}")


_OWN_SEEN: dict[Path, int | None] = {}


def callgrind_main(rows: int, base: Path, keep: bool, tree: Path | None) -> None:
    if shutil.which("valgrind") is None:
        sys.exit("valgrind not found (apt-get install valgrind)")
    small = max(1, rows // 5)
    work = Path(tempfile.mkdtemp(prefix="overhead-cg-", dir=base))
    try:
        big_csv, small_csv = _csv(work, rows), _csv(work, small)
        # the reference's records are parsed (and UVCIs drawn) in its process too, so its
        # parsing is subtracted: run it once more without signing to know that share
        ir = {(w, n): _instructions(w, src, work, tree) for w in ("batch", "reference")
              for n, src in ((rows, big_csv), (small, small_csv))}
        ir.update({("prepare", n): _instructions("prepare", src, work, tree)
                   for n, src in ((rows, big_csv), (small, small_csv))})
    finally:
        if keep:
            print(f"callgrind files kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    d = rows - small

    def per(w: str) -> float:
        return (ir[(w, rows)] - ir[(w, small)]) / d

    batch, prep = per("batch"), per("prepare")
    ref = per("reference") - prep
    print(f"Instructions per credential (callgrind, {rows:,} rows minus {small:,}):")
    print(f"  issue_batch, workers=1: {batch:12,.0f}")
    print(f"  reference (sign_record + qr.to_png): {ref:12,.0f}  (its set-up, reading and "
          f"validating the rows, {prep:,.0f}, taken off)")
    print(f"  batch-only overhead: {batch - ref:12,.0f} per credential "
          f"({(batch - ref) / ref:.1%} of the reference)")
    own = [_OWN_SEEN.get(src) for src in (big_csv, small_csv)]
    if own[0] is not None and own[1] is not None:
        # the same without the run-to-run spread of signing and encoding other UVCIs
        # (other payloads, other QR masks: a few thousand instructions a credential)
        inside = (own[0] - own[1]) / d
        print(f"  batch-only overhead, the batch less its own sign_record and render calls: "
              f"{batch - inside:12,.0f} per credential (those calls: {inside:,.0f})")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rows", type=int, default=None,
                    help="rows of the larger batch (default 4000; 500 with --callgrind)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tmp", type=Path, default=Path("/dev/shm") if Path("/dev/shm").is_dir()
                    else Path(tempfile.gettempdir()))
    ap.add_argument("--callgrind", action="store_true", help="count instructions instead")
    ap.add_argument("--keep", action="store_true", help="keep the callgrind output files")
    ap.add_argument("--tree", type=Path, help="a checkout whose vaxqr to measure")
    ap.add_argument("--one", choices=("batch", "reference", "prepare"), help=argparse.SUPPRESS)
    ap.add_argument("--src", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.tree is not None:
        sys.path.insert(0, str(args.tree.resolve()))
    import vaxqr

    if not args.one:
        print(f"vaxqr from {Path(vaxqr.__file__).parent} "
              f"({getattr(vaxqr, 'NATIVE_STATE', 'unknown build')})")
    if args.one:
        if args.one == "prepare":
            from vaxqr.issue import _keep_heap, signer_info

            _keep_heap()
            _prepared(args.src, signer_info(load_demo_signer()))
            from vaxqr import qr  # noqa: F401  (the reference imports it)
        else:
            one(args.one, args.src, args.tmp)
        return
    args.tmp.mkdir(parents=True, exist_ok=True)
    if args.callgrind:
        callgrind_main(args.rows or 500, args.tmp, args.keep, args.tree)
    else:
        cpu_main(args.rows or 4000, args.rounds, args.tmp)


if __name__ == "__main__":
    main()
