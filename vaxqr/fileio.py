"""Atomic, permission-safe file writes.

Everything vaxqr writes that matters (keys, certificates, trust lists, manifests, images)
goes through :func:`atomic_write`: a temporary file in the same directory, created with the
final mode from the start (so a key is never readable by others, whatever the umask),
fsynced, then renamed over the target with ``os.replace`` (``overwrite``), or else given the
target's name only if no file has it (:func:`_name_new`: a file made there after the early
check, by another run or by someone else in a shared directory, is never replaced). A crash
leaves either the old file or the new one, never half of one. Batch images go through
:class:`BatchDir`: just as atomic, but not fsynced one by one (the batch rebuilds damaged
ones from its ledger and syncs the file system before it lists them).
"""

from __future__ import annotations

import csv
import errno
import fcntl
import functools
import os
import re
import secrets
import stat
import threading
from collections.abc import Container, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from .errors import DiskFullError, StorageError, ValidationError, full_disk_hint

PRIVATE = 0o600
PUBLIC = 0o644


def _describe(exc: OSError, path: Path) -> StorageError:
    if exc.errno == errno.ENOSPC:
        # neutral: what the command left behind is its caller's to say (errors.when_full)
        return DiskFullError(f"disk full while writing {path}", hint=full_disk_hint())
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
    if not overwrite and _taken(target):  # early, before the work; _name_new decides
        raise _exists(target)
    directory = target.parent if str(target.parent) else Path(".")
    _clear_leftovers(directory, target.name)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    with _LIVE_LOCK:
        tmp = directory / _tmp_name(target.name)
        _LIVE.add(tmp.name)
    try:
        try:
            fd = os.open(tmp, flags, mode)
        except OSError as exc:  # never another's file: the name is new (random)
            raise _describe(exc, target) from exc
        held = _lock_written(fd)
        try:
            try:
                fh = os.fdopen(fd, "w" if text else "wb", encoding="utf-8" if text else None)
            except BaseException:
                os.close(fd)
                raise
            with fh:  # closes fd however what follows ends (a failed fchmod leaked it)
                os.fchmod(fd, mode)  # the umask may have removed bits; it must never add any
                yield fh
                fh.flush()
                if durable:
                    os.fsync(fh.fileno())
            if overwrite:
                os.replace(tmp, target)
            else:
                _name_new(tmp, target, mode=mode, durable=durable)
        except OSError as exc:
            _silent_unlink(tmp)
            raise _describe(exc, target) from exc
        except BaseException:
            _silent_unlink(tmp)
            raise
        finally:
            if held >= 0:
                os.close(held)
    finally:
        with _LIVE_LOCK:
            _LIVE.discard(tmp.name)
    _wrote(directory)
    if durable:
        _fsync_dir(directory)


# The temporary names this process's atomic_open calls are writing now (its threads').
_LIVE: set[str] = set()
_LIVE_LOCK = threading.Lock()


def _tmp_name(name: str) -> str:
    """``.NAME.PID.RANDOM.tmp``: the random part keeps two threads of one process (a
    library user) writing the same target off each other's file; the pid lets a later run
    tell what a killed one left (:func:`_clear_leftovers`)."""
    return f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"


# after ".NAME.": the writer's pid, then (since the random part) 8 hex digits, then "tmp"
_LEFTOVER = re.compile(r"([0-9]+)\.(?:([0-9a-f]{8})\.)?tmp")
_PID_MAX = 1 << 22  # Linux's largest pid_max
# (pid, directory) → (its mtime when last listed, the hidden ``.*.tmp`` names there not yet
# looked at): a directory is listed again only when something else changed it, not for
# every write (a batch's 100,000 cards written into one directory would list it 100,000
# times)
_SEEN: dict[tuple[int, str], tuple[int, list[str]]] = {}


def _temporaries_in(directory: Path) -> list[str] | None:
    """The hidden ``.*.tmp`` names in ``directory`` not yet looked at, listed once and
    again only when its mtime moved (None: it cannot be listed)."""
    try:
        mtime = os.stat(directory).st_mtime_ns
    except OSError:
        return None
    key = (os.getpid(), os.fspath(directory))  # a forked child has its own list
    seen = _SEEN.get(key)
    if seen is not None and seen[0] == mtime:
        return seen[1]
    try:
        with os.scandir(directory) as entries:
            found = [e.name for e in entries if e.name[0] == "." and e.name.endswith(".tmp")]
    except OSError:
        return None
    _SEEN[key] = (mtime, found)
    return found


def _wrote(directory: Path) -> None:
    """After this process's write into ``directory``, whose mtime it moved: the listing of
    :func:`_temporaries_in` stays good (a write adds no leftover)."""
    key = (os.getpid(), os.fspath(directory))
    with _LIVE_LOCK:
        seen = _SEEN.get(key)
        if seen is not None:
            try:
                _SEEN[key] = (os.stat(directory).st_mtime_ns, seen[1])
            except OSError:
                del _SEEN[key]


def _clear_leftovers(directory: Path, name: str) -> None:
    """Remove the temporary files of ``name`` that killed runs left (``.NAME.PID.RANDOM.tmp``,
    and this pid's ``.NAME.PID.tmp``, from before the random part): a kill -9 or a power cut while
    ``vaxqr backup`` wrote an archive to a USB stick left an 80 MB copy of the keys and
    ledgers beside it. Only such a name; only a regular file of this user's (never
    another's, in a shared directory); only when the run that wrote it is gone: its pid is
    not running here (or is this process's, and none of its threads writes it), and no one
    holds the lock every writer takes on its temporary file (a run of another computer or
    container, whose pid means nothing here, on a shared file system). Best effort."""
    prefix = f".{name}."
    with _LIVE_LOCK:
        found = _temporaries_in(directory) or []
        names = [n for n in found if n.startswith(prefix)]
        for n in names:  # looked at once (a live one is not looked at again)
            found.remove(n)
    me, uid = os.getpid(), os.geteuid()
    for leftover in names:
        m = _LEFTOVER.fullmatch(leftover, len(prefix))
        if m is None:
            continue
        pid = int(m.group(1))
        if pid != me and (m.group(2) is None or not 0 < pid < _PID_MAX or _running(pid)):
            continue  # (.NAME.NUMBER.tmp of another pid: as likely a file of the user's)
        path = os.path.join(directory, leftover)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode) or st.st_uid != uid or _locked_file(path):
            continue
        with _LIVE_LOCK:
            if leftover not in _LIVE:
                _silent_unlink(path)


def _running(pid: int) -> bool:
    """Whether a process ``pid`` runs on this computer (another user's too)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: another user's process
        return True
    return True


def _lock_written(fd: int) -> int:
    """Lock the temporary file ``fd`` while it is written and until it has its name, so that
    no later run takes it for a leftover (:func:`_locked_file`). Return a descriptor of its
    own that holds the lock (the file is closed before it is renamed: an error a network file
    system reports only at the close must stop the rename), for the caller to close; -1
    when none holds it. Released however the writer ends."""
    try:
        held = os.dup(fd)  # (O_CLOEXEC, as every dup of Python's)
    except OSError:
        return -1
    try:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(held)
        return -1  # a file system without flock: the pid alone tells
    return held


def _locked_file(path: str) -> bool:
    """Whether a writer holds ``path`` locked (:func:`_lock_written`)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
                     | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return True  # cannot tell: leave it
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False  # a file system without flock: the pid alone tells
    finally:
        os.close(fd)
    return False


def _exists(target: Path) -> StorageError:
    return StorageError(f"{target} already exists", hint="use --force to overwrite it")


def _taken(target: Path) -> bool:
    """Whether something has the name ``target``: a file, a directory or a symbolic link,
    even one to nothing (which ``atomic_write`` would not write through, nor replace)."""
    return os.path.lexists(target)


# link() errors of a file system without hard links (FAT and exFAT: EPERM; some network
# file systems), or that will not make one here (EMLINK: too many links).
_NO_HARD_LINKS = frozenset({errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK,
                            errno.EXDEV, errno.ENOSYS})


def _name_new(tmp: Path, target: Path, *, mode: int, durable: bool) -> None:
    """Give the whole, written file ``tmp`` the name ``target`` only if no file has that
    name (a file, a directory, even a dangling symbolic link), in one step of the file
    system, so that a file made there since the check (by another run, or by someone else
    in a shared directory) is never replaced: the same "already exists" error instead.

    ``renameat2(RENAME_NOREPLACE)`` where the kernel and the file system have it (Linux
    >= 3.15: ext4, xfs, btrfs, tmpfs, FAT and exFAT...); else a hard link (NFS, macOS), the
    temporary name removed after; else, where there are no hard links either, the target
    created with ``O_EXCL`` and the data copied in (:func:`_copy_new`)."""
    if _rename_noreplace(tmp, target):
        return
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise _exists(target) from None
    except OSError as exc:
        if exc.errno not in _NO_HARD_LINKS:
            raise
        _copy_new(tmp, target, mode=mode, durable=durable)
    _silent_unlink(tmp)  # the file is in place; a name left over: see _clear_leftovers


_AT_FDCWD = -100  # Linux <fcntl.h>
_RENAME_NOREPLACE = 1  # Linux <stdio.h>


def _rename_noreplace(src: Path, dst: Path) -> bool:
    """Rename ``src`` to ``dst`` unless ``dst`` exists (then the "already exists" error).
    False, nothing done, where libc, the kernel or the file system cannot (NFS: EINVAL)."""
    fn = _libc_at("renameat2")
    if fn is None:
        return False
    if fn(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_NOREPLACE) == 0:
        return True
    import ctypes

    err = ctypes.get_errno()
    if err == errno.EEXIST:
        raise _exists(dst)
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(dst))


def _copy_new(tmp: Path, target: Path, *, mode: int, durable: bool) -> None:
    """Where there are neither such renames nor hard links: create ``target`` with
    ``O_EXCL`` (never over a file; with its final mode from the start) and copy ``tmp``
    into it. Not atomic for readers, who may see it grow; a failure removes it."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    try:
        out = os.open(target, flags, mode)
    except FileExistsError:
        raise _exists(target) from None
    try:
        try:
            os.fchmod(out, mode)
            with open(tmp, "rb") as src:
                while chunk := src.read(1 << 20):
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(out, view):]
            if durable:
                os.fsync(out)
        finally:
            os.close(out)
    except BaseException:
        _silent_unlink(target)
        raise


def atomic_write(
    path: str | os.PathLike[str], data: bytes | str, *, mode: int = PUBLIC, overwrite: bool = False,
    durable: bool = True,
) -> None:
    """Write ``data`` to ``path`` atomically with permission bits ``mode`` (see
    :func:`atomic_open` for ``durable``)."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_open(path, mode=mode, overwrite=overwrite, durable=durable) as fh:
        fh.write(payload)


def check_writable(path: str | os.PathLike[str], *, overwrite: bool = False,
                   dir_made_later: bool = False, file_hint: str = "give a file name",
                   holds: str = "what vaxqr writes") -> None:
    """Check, before any work, that :func:`atomic_write` can write ``path``: it is not
    reached through another user's symbolic link (:func:`refuse_foreign_symlink`; ``holds``
    says what it would hold), does not exist (unless ``overwrite``) and its directory exists
    and takes a new file (tried with a temporary file named as :func:`atomic_open`'s,
    removed at once: the only test that a read-only mount, a full inode table or an ACL
    cannot fool). Raise
    :class:`StorageError` otherwise.

    ``dir_made_later``: a missing directory is the caller's to make (:func:`ensure_dir`)
    after this early check, which then checks it again. ``file_hint``: the hint when
    ``path`` is a directory."""
    target = Path(path)
    refuse_foreign_symlink(target, holds)
    if target.is_dir():
        raise StorageError(f"{target} is a directory", hint=file_hint)
    if not overwrite and _taken(target):
        raise _exists(target)
    directory = target.parent
    if not directory.is_dir():
        if dir_made_later:
            return
        raise StorageError(f"cannot write {target}: the directory {directory} does not exist",
                           hint="create it first, or choose another output path")
    # named as atomic_open's temporary file: one left by a run killed right here is a
    # dead run's leftover that the next write of ``path`` removes (_clear_leftovers)
    probe = directory / _tmp_name(target.name)
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0),
                     PRIVATE)
    except OSError as exc:
        raise _describe(exc, target) from exc
    os.close(fd)
    _silent_unlink(probe)


_TMPFILE_FLAGS = (os.O_WRONLY | os.O_TMPFILE | getattr(os, "O_CLOEXEC", 0)
                  if hasattr(os, "O_TMPFILE") else 0)


class _NoUnnamed(Exception):
    """The file system (or a missing /proc) does not allow unnamed temporary files."""


_AT_EMPTY_PATH = 0x1000  # Linux <fcntl.h>


@functools.cache
def _libc_at(name: str) -> Any:
    """libc's function ``name`` of the shape ``(dirfd, path, dirfd, path, flags)``, errno
    kept (ctypes), or None where libc has no such function. ``linkat``: to name an open
    unnamed file by ``linkat(fd, "", dir, name, AT_EMPTY_PATH)`` (Python's ``os.link``
    cannot pass that flag, and linking its ``/proc/self/fd/N`` path instead costs a /proc
    path walk: ~8 µs a file on tmpfs against ~4). ``renameat2``: for ``RENAME_NOREPLACE``,
    which ``os.rename`` cannot pass either."""
    try:
        import ctypes

        fn = getattr(ctypes.CDLL(None, use_errno=True), name)
    except (ImportError, OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


class BatchDir:
    """A directory receiving many small files, each written atomically but not fsynced.

    For batch images: ``write`` creates a temporary file relative to an open directory
    descriptor (no path resolution per file), writes it, and gives it its name only when it
    is whole (Linux: an unnamed ``O_TMPFILE`` linked in place; elsewhere a hidden ``.*.tmp``
    renamed over the target), so no reader ever sees part of a file and a crash of the
    process leaves at most a hidden ``.*.tmp`` to clean up. A power loss can still leave a
    file missing, empty or cut short: only a caller that checks such files and rebuilds them
    (batch images, from the ledger) may use it, and it must sync the file system before it
    relies on them.
    """

    def __init__(self, path: str | os.PathLike[str], *, mode: int = PUBLIC) -> None:
        self.path = Path(path)
        self.mode = mode
        self._suffix = f".{os.getpid()}.{secrets.token_hex(4)}.tmp"  # see _tmp_name
        try:
            self._fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
                               | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            raise _describe(exc, self.path) from exc
        umask = os.umask(0)
        os.umask(umask)
        self._chmod = bool(umask & mode)  # fchmod only when the umask would remove bits
        self._unnamed = _TMPFILE_FLAGS != 0 and os.path.isdir("/proc/self/fd")
        self._linkat: Any = _libc_at("linkat") if self._unnamed else None

    def write(self, name: str, data: bytes) -> None:
        """Write ``data`` to ``name`` in this directory atomically, replacing any old file."""
        if self._unnamed:
            try:
                self._write_unnamed(name, data)
                return
            except _NoUnnamed:
                self._unnamed = False
        self._write_named(name, data)

    def _write_unnamed(self, name: str, data: bytes) -> None:
        # Linux: an unnamed file (O_TMPFILE), linked under its name once written. Cheaper
        # than a named temporary (one directory entry instead of three operations on two),
        # and nothing to clean up after a crash.
        d = self._fd
        try:
            fd = os.open(".", _TMPFILE_FLAGS, self.mode, dir_fd=d)
        except OSError as exc:
            if exc.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
                raise _NoUnnamed from None
            raise _describe(exc, self.path / name) from exc
        try:
            self._fill(fd, data)
            if self._linkat is not None and self._link_fd(fd, name):
                return
            proc = f"/proc/self/fd/{fd}"
            try:
                os.link(proc, name, dst_dir_fd=d, follow_symlinks=True)
            except FileExistsError:  # replace the old file: link beside it, rename over
                tmp = f".{name}{self._suffix}"
                _silent_unlink(tmp, dir_fd=d)
                os.link(proc, tmp, dst_dir_fd=d, follow_symlinks=True)
                try:
                    os.rename(tmp, name, src_dir_fd=d, dst_dir_fd=d)
                except BaseException:
                    _silent_unlink(tmp, dir_fd=d)
                    raise
            except FileNotFoundError:  # no /proc: named temporaries from now on
                raise _NoUnnamed from None
        except OSError as exc:
            raise _describe(exc, self.path / name) from exc
        finally:
            os.close(fd)

    def _link_fd(self, fd: int, name: str) -> bool:
        """Give the open unnamed file ``fd`` its name with ``linkat(AT_EMPTY_PATH)``. False
        when the name exists (the caller replaces the file) or when this kernel or these
        privileges do not allow it (Linux < 6.10 without CAP_DAC_READ_SEARCH: ENOENT); then
        the /proc path serves from now on."""
        if self._linkat(fd, b"", self._fd, os.fsencode(name), _AT_EMPTY_PATH) == 0:
            return True
        import ctypes

        err = ctypes.get_errno()
        if err == errno.EEXIST:
            return False
        if err in (errno.ENOENT, errno.EPERM, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            self._linkat = None
            return False
        raise OSError(err, os.strerror(err))

    def _write_named(self, name: str, data: bytes) -> None:
        d = self._fd
        tmp = f".{name}{self._suffix}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        try:
            try:
                fd = os.open(tmp, flags, self.mode, dir_fd=d)
            except FileExistsError:  # left by this instance, killed mid-write by a signal
                os.unlink(tmp, dir_fd=d)  # handler that went on (the batch clears the rest)
                fd = os.open(tmp, flags, self.mode, dir_fd=d)
        except OSError as exc:
            raise _describe(exc, self.path / name) from exc
        try:
            try:
                self._fill(fd, data)
            finally:
                os.close(fd)
            os.rename(tmp, name, src_dir_fd=d, dst_dir_fd=d)
        except OSError as exc:
            _silent_unlink(tmp, dir_fd=d)
            raise _describe(exc, self.path / name) from exc
        except BaseException:
            _silent_unlink(tmp, dir_fd=d)
            raise

    def _fill(self, fd: int, data: bytes) -> None:
        if self._chmod:
            os.fchmod(fd, self.mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]

    def close(self) -> None:
        os.close(self._fd)


def _silent_unlink(path: str | os.PathLike[str], *, dir_fd: int | None = None) -> None:
    try:
        os.unlink(path, dir_fd=dir_fd)
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


@contextmanager
def no_dir_left_behind(path: str | os.PathLike[str]) -> Iterator[None]:
    """When the block raises, remove the directory ``path`` and its parents that did not
    exist when it began (the block made them, e.g. with :func:`ensure_private_dir`) and
    are still empty: a run that stops on its input writes nothing and leaves nothing. A
    directory that existed before, or that holds anything, is never removed."""
    missing: list[Path] = []
    p = Path(os.path.abspath(path))
    while not os.path.lexists(p) and p != p.parent:
        missing.append(p)  # deepest first
        p = p.parent
    try:
        yield
    except BaseException:
        for d in missing:
            try:
                d.rmdir()  # only an empty directory
            except OSError:
                break  # not made, or not empty: its parents are not empty either
        raise


def refuse_foreign_symlink(path: str | os.PathLike[str], holds: str) -> None:
    """Refuse ``path`` when it, or a directory above it, is a symbolic link another user
    made (root's and one's own are followed): in a shared place such as /tmp (where the
    kernel follows anyone's links unless fs.protected_symlinks is set) it sends what is
    written to a directory of their choosing. A directory of another user's is warned
    about (:func:`ensure_private_dir`): it is where the user asked to write; a link is not.
    Checked wherever vaxqr writes into a place the user names: a batch's and reconcile's
    OUT_DIR (:func:`ensure_private_dir`), every file :func:`check_writable` checks (a single
    credential and its card, a backup archive, a trust list), and a new CA or signer
    directory (:mod:`vaxqr.cadir`). Not for files vaxqr rewrites where it read them (a CA's
    state and CRL, a key whose password changes, verify's --state file): whoever placed
    the link chose what was read already."""
    me = os.geteuid()
    p = Path(os.path.abspath(path))
    for q in (p, *p.parents):
        try:
            st = os.lstat(q)
        except OSError:
            continue  # not made yet
        if stat.S_ISLNK(st.st_mode) and st.st_uid not in (me, 0):
            try:
                to = f", which points to {os.readlink(q)}"
            except OSError:
                to = ""
            raise StorageError(
                f"{q} is a symbolic link made by another user of this computer (uid "
                f"{st.st_uid}){to}: {holds} written through it would go where they chose",
                hint="give the directory itself if it is the one meant, or a directory of "
                     "your own")


def ensure_private_dir(path: str | os.PathLike[str], holds: str) -> tuple[Path, str | None]:
    """A directory for personal data (``holds`` says what, for the warning): created when
    missing with mode 0700 (its missing parents as :func:`ensure_dir` makes them); one that
    exists is left as it is (the user made it, or chose its mode), with a warning when other
    users of the computer can list it or enter it, or when it belongs to another user
    (made in a shared place such as /tmp by someone else, and written there by root). A
    path through a symbolic link of another user's is refused (StorageError)."""
    p = Path(path)
    refuse_foreign_symlink(p, holds)
    ensure_dir(p.parent)
    try:
        p.mkdir(mode=0o700)
        return p, None
    except FileExistsError:
        if not p.is_dir():
            raise StorageError(f"{p} exists and is not a directory") from None
    except OSError as exc:
        raise _describe(exc, p) from exc
    try:
        st = p.stat()
    except OSError as exc:
        raise _describe(exc, p) from exc
    mode = stat.S_IMODE(st.st_mode)
    if st.st_uid != os.geteuid():  # whatever its mode: its owner reads and replaces files
        return p, (f"{p} belongs to another user of this computer (uid {st.st_uid}), who "
                   f"can read and replace what is written there: {holds}; use a directory "
                   "of your own")
    if mode & 0o055:
        return p, (f"{p} can be read by other users of this computer (mode {mode:04o}) and "
                   f"holds {holds}; to keep them out: chmod 700 {p}")
    return p, None


UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")  # little-endian (Windows), big-endian
CSV_UTF8_HINT = "save the export as CSV UTF-8 (Excel: 'CSV UTF-8'), then run again"


def check_csv_start(path: str | os.PathLike[str], head: bytes) -> None:
    """Refuse, saying what it is, a CSV whose first bytes ``head`` (at least 2, when the
    file has them) show an empty file (no byte but a UTF-8 BOM) or a UTF-16 one (its byte
    order mark: Excel's "Unicode Text", Notepad's "Unicode"). Not read as UTF-16: Excel's
    "Unicode Text" is tab-separated, not CSV, and the readers keep byte offsets of UTF-8."""
    if head.startswith(_UTF16_BOMS):
        raise ValidationError(f"{path} is UTF-16 (Excel's 'Unicode Text'), not a UTF-8 CSV",
                              hint=CSV_UTF8_HINT)
    if not head or head == UTF8_BOM:
        raise ValidationError(f"{path} is empty (not even a header line)",
                              hint="export the records again (the header line first)")


def open_quote_error(path: str | os.PathLike[str], start: int, end: int | None,
                     nothing: str) -> ValidationError:
    """The error of a CSV row that runs from line ``start`` over the lines after it (to
    line ``end``; None: past the longest a row can be). A quote (``"``) opened in a field
    and not closed on its line makes the reader take the lines after it, other people's
    rows, as that field's text, to the next quote or the end of the file; whatever the
    row then holds, those people would be left out with no word said, so the command
    stops (``nothing`` says what it did not do). A cell holding a line break (Alt+Enter)
    is written the same way and named too: no column of these files holds one."""
    where = (f"to line {end}" if end is not None
             else "past the longest a row can be")
    return ValidationError(
        f"{path}: the row on line {start} runs over the lines after it ({where}): a quote "
        f"(\") opened on line {start} and not closed on its line reads the rows after it "
        f"as part of that row, or a cell holds a line break: nothing was {nothing}",
        hint=f"close or remove the quote on line {start} (a name typed with a \" in it, "
             "say), or the line break in its cell, save the CSV and run the same command "
             "again")


def rows_taken_in(row: Sequence[str], columns: int, delimiter: str,
                  read: Container[int] | None = None) -> bool:
    """Whether ``row``, which a CSV reader made of several lines of the file, holds other
    rows a quote not closed took in (:func:`open_quote_error`) rather than cells with line
    breaks (Alt+Enter: ``"Nguyễn Thị⏎Thuý Hằng"``, read as the name it is). Taken in: a row
    without the header's ``columns`` fields, or a cell over lines in a column that is
    ``read`` (None: every column) holding the field separator (no name, date or site does),
    or in another column (an address) a whole row's separators: a quote opened in column
    ``i`` that ends with the header's number of fields was closed in column ``i`` of a
    later line, so its cell holds the separators after ``i`` on the first line and before
    ``i`` on the last (with every line between, ``columns - 1`` at least), on no one line
    of their own."""
    if len(row) != columns:
        return True
    for i, cell in enumerate(row):
        if "\n" in cell or "\r" in cell:
            if read is None or i in read:
                if delimiter in cell:
                    return True
            elif cell.count(delimiter) >= columns - 1:
                return True
    return False


def csv_delimiter(header_line: str, required: Sequence[str]) -> str:
    """The field separator of a CSV export from its header line: ``,``, or ``;`` when the
    header read with ``;`` has every ``required`` column and read with ``,`` does not. A
    spreadsheet saves CSV with the list separator of the computer's region, and that is
    ``;`` where decimals are written with a comma (Excel on Windows set to Vietnamese, and
    to most European languages); "the header lacks full_name" of a header that shows it
    helped no clerk, and their computer's setting is not theirs to change."""
    for delimiter in (",", ";"):
        try:
            names = {h.strip().lower() for h in next(csv.reader([header_line],
                                                                delimiter=delimiter), [])}
        except csv.Error:
            return ","
        if all(c in names for c in required):
            return delimiter
    return ","


def file_identity(path: Path) -> tuple[int, ...]:
    """What changes when a file is written or replaced: device, inode, size, mtime."""
    try:
        st = path.stat()
    except OSError as exc:
        raise StorageError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def check_unchanged(path: Path, before: tuple[int, ...], hint: str) -> None:
    """Raise :class:`StorageError` unless ``path`` is still the file :func:`file_identity`
    saw: a flow that reads a file in several passes must not mix two versions of it."""
    try:
        same = file_identity(path) == before
    except StorageError:
        same = False
    if not same:
        raise StorageError(f"{path} changed while it was being read (written or replaced by "
                           "another program)", hint=hint)


_HELD: set[tuple[int, int]] = set()  # the directories this process holds (device, inode)


@contextmanager
def exclusive_dir(path: Path, busy: str, hint: str) -> Iterator[None]:
    """Hold ``path`` (a directory) for this process alone: a second holder gets a
    :class:`StorageError` saying ``busy`` at once, instead of waiting. An advisory
    ``flock`` on the directory itself: no lock file left behind, released when the
    process (and any child it forked) ends, however it ends. Held again by the process
    that holds it (a flow that runs another under the same hold), it just goes on."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise _describe(exc, path) from exc
    try:
        st = os.fstat(fd)
        key = (st.st_dev, st.st_ino)
        if key in _HELD:
            yield
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StorageError(busy, hint=hint) from None
        except OSError:  # a file system without flock: nothing to hold, as before
            pass
        _HELD.add(key)
        try:
            yield
        finally:
            _HELD.discard(key)
    finally:
        os.close(fd)
