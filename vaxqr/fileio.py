"""Atomic, permission-safe file writes.

Everything vaxqr writes that matters (keys, certificates, trust lists, manifests, images)
goes through :func:`atomic_write`: a temporary file in the same directory, created with the
final mode from the start (so a key is never readable by others, whatever the umask),
fsynced, then renamed over the target with ``os.replace``. A crash leaves either the old
file or the new one, never half of one.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from .errors import StorageError

PRIVATE = 0o600
PUBLIC = 0o644


def _describe(exc: OSError, path: Path) -> StorageError:
    if exc.errno == errno.ENOSPC:
        return StorageError(
            f"disk full while writing {path}",
            hint="free some space and run the same command again (what was done is kept)",
        )
    if exc.errno in (errno.EACCES, errno.EPERM):
        return StorageError(f"permission denied: {path}")
    return StorageError(f"cannot write {path}: {exc.strerror or exc}")


@contextmanager
def atomic_open(
    path: str | os.PathLike[str], *, mode: int = PUBLIC, overwrite: bool = False,
    text: bool = False, durable: bool = True,
) -> Iterator[IO[Any]]:
    """Open a temporary file that replaces ``path`` atomically when the block exits cleanly.

    ``durable=False`` skips the two fsyncs (file, directory): the replacement is still
    atomic for other processes and across a crash of this one, but a power loss may leave
    the file missing or empty, so only a caller that checks and rebuilds such files
    (batch images, from the ledger) may use it."""
    target = Path(path)
    if not overwrite and target.exists():
        raise StorageError(f"{target} already exists", hint="use --force to overwrite it")
    directory = target.parent if str(target.parent) else Path(".")
    tmp = directory / f".{target.name}.{os.getpid()}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(tmp, flags, mode)
    except FileExistsError:
        os.unlink(tmp)
        fd = os.open(tmp, flags, mode)
    except OSError as exc:
        raise _describe(exc, target) from exc
    try:
        os.fchmod(fd, mode)  # the umask may have removed bits; it must never add any
        with os.fdopen(fd, "w" if text else "wb", encoding="utf-8" if text else None) as fh:
            yield fh
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        if not overwrite and target.exists():
            raise StorageError(f"{target} already exists", hint="use --force to overwrite it")
        os.replace(tmp, target)
    except OSError as exc:
        _silent_unlink(tmp)
        raise _describe(exc, target) from exc
    except BaseException:
        _silent_unlink(tmp)
        raise
    if durable:
        _fsync_dir(directory)


def atomic_write(
    path: str | os.PathLike[str], data: bytes | str, *, mode: int = PUBLIC, overwrite: bool = False,
    durable: bool = True,
) -> None:
    """Write ``data`` to ``path`` atomically with permission bits ``mode`` (see
    :func:`atomic_open` for ``durable``)."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_open(path, mode=mode, overwrite=overwrite, durable=durable) as fh:
        fh.write(payload)


def _silent_unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def check_private_file(path: str | os.PathLike[str]) -> str | None:
    """Return a warning when a key file is readable or writable by group or others."""
    st = os.stat(path)
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        return (
            f"{path} is accessible by other users (mode {stat.S_IMODE(st.st_mode):04o}); "
            "run: chmod 600 " + str(path)
        )
    return None


def ensure_dir(path: str | os.PathLike[str], *, mode: int = 0o755) -> Path:
    """Create a directory (and parents) if missing, turning OS errors into StorageError."""
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True, mode=mode)
    except OSError as exc:
        raise _describe(exc, p) from exc
    return p
