"""What it costs to write one new file without ``--force`` (``atomic_write(overwrite=False)``).

    .venv/bin/python benchmarks/bench_fileio.py [--files 300] [--rounds 7]
        [--dirs /dev/shm /work] [--against OLD/vaxqr/fileio.py]

For each directory (tmpfs, the work disk) and with and without the fsyncs (``durable``):
wall time per 2 KB file written into a fresh directory, median of alternating rounds, for
each way ``fileio._name_new`` may give the name (``renameat2(RENAME_NOREPLACE)``, a hard
link, ``O_EXCL`` + copy where there are no hard links), for ``overwrite=True`` (the rename
over the target with ``os.replace``: what the no-overwrite case did before, less one
``stat``), and with ``--against`` an older ``fileio.py`` loaded beside this one. The batch's
images do not go through here (``BatchDir``, see ``bench_issue.py``).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib.util
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import _common  # puts the tree on sys.path

from vaxqr import fileio

DATA = b"\x89PNG" + bytes(2000)


def load_against(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location("vaxqr._fileio_against", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def way(name: str) -> Iterator[None]:
    """Force ``_name_new`` to take the hard link (``link``) or the copy (``copy``)."""
    real_rename, real_link = fileio._rename_noreplace, os.link

    def no_link(src: Any, dst: Any, **kw: Any) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    fileio._rename_noreplace = lambda src, dst: False  # type: ignore[assignment]
    if name == "copy":
        os.link = no_link
    try:
        yield
    finally:
        fileio._rename_noreplace = real_rename  # type: ignore[assignment]
        os.link = real_link


def per_file(base: str, n: int, write: Callable[[Path], None]) -> float:
    where = Path(tempfile.mkdtemp(prefix="fileio-", dir=base))
    try:
        t = time.perf_counter()
        for i in range(n):
            write(where / f"{i:07d}.png")
        return (time.perf_counter() - t) / n
    finally:
        shutil.rmtree(where)


def cases_for(durable: bool, other: Any) -> dict[str, Callable[[Path], None]]:
    def new(p: Path) -> None:
        fileio.atomic_write(p, DATA, durable=durable)

    def forced(name: str) -> Callable[[Path], None]:
        def write(p: Path) -> None:
            with way(name):
                fileio.atomic_write(p, DATA, durable=durable)
        return write

    def replace(p: Path) -> None:
        fileio.atomic_write(p, DATA, overwrite=True, durable=durable)

    cases = {"new file (renameat2 here)": new, "new file, link": forced("link"),
             "new file, copy": forced("copy"), "overwrite=True (os.replace)": replace}
    if other is not None:
        cases["new file, --against"] = lambda p: other.atomic_write(p, DATA, durable=durable)
    return cases


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--dirs", nargs="+", default=["/dev/shm", str(_common.ROOT.parent)])
    ap.add_argument("--against", type=Path)
    args = ap.parse_args()
    other = load_against(args.against) if args.against else None
    print(f"renameat2 in libc: {fileio._libc_at('renameat2') is not None}")
    for base in args.dirs:
        fs = os.popen(f"stat -f -c %T {base}").read().strip()
        for durable in (False, True):
            n = args.files if not durable else max(20, args.files // 10)
            cases = cases_for(durable, other)
            times: dict[str, list[float]] = {k: [] for k in cases}
            for _ in range(args.rounds):  # alternating rounds: the machine's noise is shared
                for k, fn in cases.items():
                    times[k].append(per_file(base, n, fn))
            ref = statistics.median(times["overwrite=True (os.replace)"])
            print(f"\n{base} ({fs}), durable={durable}, {n} files x {args.rounds} rounds")
            print(f"{'way':32} {'µs/file':>10} {'ratio':>7}")
            for k, ts in times.items():
                med = statistics.median(ts)
                print(f"{k:32} {med * 1e6:10.1f} {med / ref:7.2f}")


if __name__ == "__main__":
    main()
