"""Reconcile benchmark: a generated province, timed, measured and checked class by class.

    .venv/bin/python benchmarks/bench_reconcile.py [--size 1.0] [--workers N] [--dir DIR]
    .venv/bin/python benchmarks/bench_reconcile.py --kien-giang --dir /dev/shm/kg [--cli]

1. ``scripts/gen_population.py`` writes a province of ``--size`` × (1,800,000 people,
   2,000,000 dose records) with planted errors of every class and the ground truth, into a
   temporary directory (or ``--dir``, reused when it already holds one of that size).
   ``--kien-giang``: the plan's own province instead, a register of the 1,196,117 adults its
   coverage rates are counted over (docs/vietnam.md §7: 1,163,941 = 97.31%) and 2,000,000
   dose records (doses 1 and 2, some third doses, the planted errors).
2. The reference, on one core: the CSV floor — ``csv.reader`` over both files and
   ``csv.writer`` of every dose record, with nothing else. The machine is shared and noisy;
   the ratio to this floor, measured in the same run, is the comparable figure.
3. ``reconcile_files`` in a fresh process (``--workers``, default one per core): wall time
   per phase, CPU time, peak resident memory of the main process and of its largest worker
   (``getrusage``), and the peak sum of the process tree's resident sizes, sampled every
   0.5 s from /proc (pages the workers share with the main process by fork count twice).
4. Accuracy: every row's class (``mismatches.csv``; absent = matched) against
   ``truth.csv``, per class: planted, found, correct, precision and recall.
5. The sizes of the inputs and of what reconcile wrote. With ``--cli``, the whole ``vaxqr
   reconcile`` command too (start-up, table printing): wall, CPU and the peak RSS of its
   largest process (``wait4``), and the process tree's sampled peak.

Goal: the full province in under 60 s on a 2-core machine.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PYTHON = sys.executable
GOAL_SECONDS = 60.0


KIEN_GIANG = (1_196_117, 2_000_000)  # adults in the register (the rates' base), dose records


def generate(d: Path, people: int, records: int, seed: int, minors: float) -> None:
    meta = d / "meta.json"
    want: dict[str, float] = {"people": people, "records": records, "seed": seed}
    if minors != 0.30:  # the generator's default (and older meta.json files)
        want["minors"] = minors
    if meta.exists() and json.loads(meta.read_text()) == want:
        print(f"reusing the province in {d}")
        return
    t = time.perf_counter()
    subprocess.run([PYTHON, str(ROOT / "scripts" / "gen_population.py"), str(d), "--people",
                    str(people), "--records", str(records), "--seed", str(seed),
                    "--minors", str(minors)], check=True, stdout=subprocess.DEVNULL)
    meta.write_text(json.dumps(want))
    print(f"generated {people:,} people and ~{records:,} dose records in "
          f"{time.perf_counter() - t:.0f} s → {d}")


def csv_floor(d: Path) -> float:
    """One core: read both CSV files and write the dose records back, nothing else."""
    t = time.perf_counter()
    for name in ("population.csv", "vaccinations.csv"):
        with (d / name).open(encoding="utf-8", newline="") as fh:
            out = io.StringIO()
            w = csv.writer(out)
            for i, row in enumerate(csv.reader(fh)):
                if name == "vaccinations.csv":
                    w.writerow(row)
                if i % 50_000 == 0:
                    out = io.StringIO()
                    w = csv.writer(out)
    return time.perf_counter() - t


def _rss_kb(pid: int) -> int:
    """Resident set size from /proc/PID/statm: a counter, cheap to read. (smaps_rollup's
    PSS would count shared pages once, but reading it walks the page tables under the
    process's mmap lock and slowed the measured run down several times.)"""
    try:
        with open(f"/proc/{pid}/statm") as fh:
            return int(fh.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)
    except (OSError, ValueError, IndexError):
        return 0


def _tree(pid: int) -> list[int]:
    pids, todo = [pid], [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/task/{p}/children") as fh:
                kids = [int(x) for x in fh.read().split()]
        except OSError:
            kids = []
        pids += kids
        todo += kids
    return pids


def _measured(cmd: list[str]) -> tuple[str, float, float, float, float]:
    """Run ``cmd``: its stdout, wall seconds, CPU seconds and peak RSS (MB) of its largest
    process (``wait4``: the process and the children it waited for), and the sampled peak
    of its process tree's RSS sum (MB)."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE)
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], sum(_rss_kb(p) for p in _tree(proc.pid)))
            done.wait(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    assert proc.stdout is not None
    stdout = proc.stdout.read()  # until the process closes it, before reaping it
    _, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    done.set()
    sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{cmd[1:3]} failed with exit code {proc.returncode}")
    return (stdout.decode(), wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024,
            peak[0] / 1024)


def run_child(d: Path, out: Path, workers: int | None) -> dict[str, float]:
    cmd = [PYTHON, __file__, "--child", str(d), str(out)]
    if workers:
        cmd += ["--workers", str(workers)]
    stdout, *_, tree_peak = _measured(cmd)
    result: dict[str, float] = json.loads(stdout.strip().splitlines()[-1])
    result["tree_rss_peak_mb"] = tree_peak
    return result


def run_cli(d: Path, out: Path, workers: int | None) -> tuple[float, float, float, float]:
    """The whole ``vaxqr reconcile`` command: wall, CPU, largest process's and the tree's
    peak RSS."""
    cmd = [str(Path(PYTHON).parent / "vaxqr"), "reconcile", str(d / "vaccinations.csv"),
           "-p", str(d / "population.csv"), "-o", str(out), "--date", "2021-11-23",
           "--force", "--json"]
    if workers:
        cmd += ["--workers", str(workers)]
    _, wall, cpu, rss, tree = _measured(cmd)
    return wall, cpu, rss, tree


def _mb(path: Path) -> str:
    return f"{path.stat().st_size / 1e6:8.2f} MB"


def child(d: Path, out: Path, workers: int | None) -> None:
    import resource
    from datetime import date

    from vaxqr.reconcile import reconcile_files

    marks: list[tuple[str, float]] = []
    t0 = time.perf_counter()
    res = reconcile_files(d / "vaccinations.csv", d / "population.csv", out,
                          report_date=date(2021, 11, 23), workers=workers, overwrite=True,
                          progress=lambda msg: marks.append((msg, time.perf_counter() - t0)))
    wall = time.perf_counter() - t0
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    doc = {"seconds": wall, "rows": res.rows, "register": res.register_people,
           "cpu": me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime,
           "rss_main_mb": me.ru_maxrss / 1024, "rss_worker_mb": kids.ru_maxrss / 1024,
           "dose1": res.total.figure(1), "dose2": res.total.figure(2)}
    for (msg, t), nxt in zip(marks, [*[m[1] for m in marks[1:]], wall], strict=True):
        doc[f"phase: {msg}"] = nxt - t
    print(json.dumps(doc))


def accuracy(d: Path, out: Path) -> tuple[list[tuple[str, int, int, int]], int, int]:
    from vaxqr.reconcile import CLASSES

    with (d / "truth.csv").open(encoding="utf-8", newline="") as fh:
        truth = {int(r["row"]): r["class"] for r in csv.DictReader(fh)}
    got = dict.fromkeys(truth, "matched")
    with (out / "mismatches.csv").open(encoding="utf-8", newline="") as fh:
        for r in csv.DictReader(fh):
            got[int(r["row"])] = r["class"]
    planted, found, correct = Counter(truth.values()), Counter(got.values()), Counter()
    for row, cls in truth.items():
        if got[row] == cls:
            correct[cls] += 1
    rows = [(c, planted[c], found[c], correct[c]) for c in CLASSES]
    return rows, sum(correct.values()), len(truth)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=float, default=1.0,
                    help="fraction of a province (1.0 = 1.8 M people, 2 M dose records)")
    ap.add_argument("--people", type=int)
    ap.add_argument("--records", type=int)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--minors", type=float, default=0.30,
                    help="share of the register under 18 (0.30; 0 with --kien-giang)")
    ap.add_argument("--kien-giang", action="store_true",
                    help=f"the plan's province: {KIEN_GIANG[0]:,} adults in the register, "
                         f"{KIEN_GIANG[1]:,} dose records")
    ap.add_argument("--cli", action="store_true",
                    help="also time the whole `vaxqr reconcile` command")
    ap.add_argument("--workers", type=int)
    ap.add_argument("--dir", type=Path, help="keep the province here (reused if present)")
    ap.add_argument("--child", nargs=2, type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(a.child[0], a.child[1], a.workers)
        return 0
    people = a.people or int((KIEN_GIANG[0] if a.kien_giang else 1_800_000) * a.size)
    records = a.records or int(2_000_000 * a.size)
    minors = 0.0 if a.kien_giang else a.minors
    tmp = None
    if a.dir is None:
        tmp = Path(tempfile.mkdtemp(prefix="vaxqr-bench-reconcile-"))
    d = a.dir or tmp
    assert d is not None
    try:
        d.mkdir(parents=True, exist_ok=True)
        generate(d, people, records, a.seed, minors)
        floor = csv_floor(d)
        r = run_child(d, d / "out", a.workers)
        rows, correct, total = accuracy(d, d / "out")
        sizes = [(f"input {n}", _mb(d / n)) for n in ("population.csv", "vaccinations.csv")]
        sizes += [(f"output {n}", _mb(d / "out" / n))
                  for n in ("matched.csv", "mismatches.csv", "report.json")]
        cli = run_cli(d, d / "out", a.workers) if a.cli else None
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nreconcile: {int(r['register']):,} people in the register, "
          f"{int(r['rows']):,} dose records, {os.cpu_count()} cores, "
          f"workers={a.workers or 'one per core'}")
    print(f"  {'wall time':32} {r['seconds']:8.1f} s   "
          f"{'PASS' if r['seconds'] < GOAL_SECONDS else 'FAIL'} (goal < {GOAL_SECONDS:.0f} s "
          f"for 1.8 M / 2 M)")
    for k, v in r.items():
        if k.startswith("phase: "):
            print(f"    {k[7:]:30} {v:8.2f} s")
    print(f"  {'CPU time (all processes)':32} {r['cpu']:8.1f} s")
    print(f"  {'CSV floor (1 core, reference)':32} {floor:8.1f} s   reconcile = "
          f"{r['seconds'] / floor:.2f}× the floor (wall), {r['cpu'] / floor:.2f}× (CPU)")
    print(f"  {'peak RSS, main process':32} {r['rss_main_mb']:8.0f} MB")
    print(f"  {'peak RSS, largest worker':32} {r['rss_worker_mb']:8.0f} MB")
    print(f"  {'peak RSS sum, process tree':32} {r['tree_rss_peak_mb']:8.0f} MB   "
          "(pages shared by fork counted in every process)")
    print(f"  coverage at 2021-11-23: dose 1 {r['dose1']}, dose 2 {r['dose2']}")
    for what, size in sizes:
        print(f"  {what:32} {size}")
    if cli is not None:
        wall, cpu, rss, tree = cli
        print(f"  {'`vaxqr reconcile` command, wall':32} {wall:8.1f} s   CPU {cpu:.1f} s, "
              f"peak RSS {rss:.0f} MB (largest process), {tree:.0f} MB (tree, sampled)")
    print(f"\n  {'class':20} {'planted':>10} {'found':>10} {'correct':>10} "
          f"{'precision':>10} {'recall':>8}")
    for cls, planted, found, ok in rows:
        prec = f"{ok / found:.2%}" if found else "-"
        rec = f"{ok / planted:.2%}" if planted else "-"
        print(f"  {cls:20} {planted:>10,} {found:>10,} {ok:>10,} {prec:>10} {rec:>8}")
    print(f"  {'all rows':20} {total:>10,} {'':>10} {correct:>10,} {correct / total:>10.4%}")
    return 0 if correct == total else 1


if __name__ == "__main__":
    sys.exit(main())
