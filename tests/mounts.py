"""File-system situations for tests: a small tmpfs (full or read-only), a disk that fills
up at one output, a directory another process holds."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def mounted_tmpfs(where: Path, options: str) -> Iterator[Path]:
    """A tmpfs mounted on ``where`` (root only; the test is skipped, saying why, elsewhere)
    for the duration; a real full or read-only file system for the tests that need one."""
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs ({options}; needs root): {proc.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def full_at(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """A disk that fills up at the output ``name``: ``os.fsync`` fails with ENOSPC on its
    temporary file (vaxqr.fileio's ``.NAME.PID.RANDOM.tmp``) and works on every other."""
    import errno
    import os

    real = os.fsync

    def fsync(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}").rsplit("/", 1)[-1].startswith(f".{name}."):
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)


@contextlib.contextmanager
def held_elsewhere(directory: Path) -> Iterator[None]:
    """``directory`` held by another process, as a running ``vaxqr issue`` batch holds its
    output directory (:func:`vaxqr.fileio.exclusive_dir`), until the block ends."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, pathlib; from vaxqr.fileio import exclusive_dir\n"
         "with exclusive_dir(pathlib.Path(sys.argv[1]), 'busy', ''):\n"
         "    print('held', flush=True); sys.stdin.read()", str(directory)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        yield
    finally:
        holder.communicate("")
