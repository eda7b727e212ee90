"""Backups: CA, commune signer and batch directories, each copied whole and consistent into
one tar archive.

Each directory is held while it is copied, as the commands that change it hold it: a CA
directory by its ``.lock`` (as ``vaxqr certs`` takes it, waiting for a running command to
end), a batch OUT_DIR by :func:`vaxqr.fileio.exclusive_dir` (a running batch refuses the
backup at once); so is each such directory found inside another (a batch OUT_DIR inside a
signer directory). Every ``ledger.sqlite`` is copied with SQLite's backup API (the records a
crash left in ``ledger.sqlite-wal`` included) and checked; every other file goes in as it is
(keys stay encrypted: nothing is decrypted, no password is asked). Temporary files, other
lock files, the ledger's ``-wal``/``-shm`` files and symbolic links are left out and
reported; a CA's ``.lock`` (vaxqr's own: ``vaxqr certs`` makes it, and the backup holds it)
is left out without a word.

The archive is an uncompressed tar (PAX), written atomically with mode 0600: it holds
private keys. Uncompressed because a damaged byte then loses one file, not every file after
it as in a gzip stream, and a backup is for the day something went wrong; gzip would save
about half (measured: a batch of 3,000, 14.8 MiB against 7.1, mostly the tar's padding
and the ledger: PNG images and encrypted keys do not compress) for ~0.2 s of CPU.
Restore into a new, empty directory (:data:`RESTORE`), never over a live one (an older CA
``state.json`` forgets the revocations since and reuses trust-list numbers): each directory
comes back under its own name, with its files' modes (keys 0600). The archive records no
owner (uid and gid 0, no names): root extracting it on another computer would otherwise give
the keys, ``state.json`` and the ledgers to whichever user has there the clerk's uid here;
the restore command's options make that so for an archive vaxqr did not write too (one
altered or handed over by someone else: owners, and modes such as set-user-ID or writable
by all, are then not taken from it).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any, Literal

from .errors import (
    DiskFullError,
    StorageError,
    ValidationError,
    VaxqrError,
    full_disk_hint,
    when_full,
)
from .fileio import PRIVATE, _running, atomic_open, check_writable, exclusive_dir

Kind = Literal["ca", "signer", "batch"]

LEDGER = "ledger.sqlite"
# The files that make each kind of directory (cadir._KIND_FILES for a CA: a signer
# directory may lack signer.json, which vaxqr issue does not need).
_KIND_FILES: dict[Kind, tuple[str, ...]] = {
    "ca": ("ca.crt", "ca.key", "state.json"),
    "signer": ("signer.crt", "signer.key"),
    "batch": (LEDGER,),
}
EXPECTED = ("a CA directory (ca.crt, ca.key, state.json), a commune signer directory "
            "(signer.crt, signer.key) or a batch OUT_DIR (ledger.sqlite)")
_LEDGER_SIDE = ("-wal", "-shm", "-journal")
OWN_LOCK = ".lock"  # what vaxqr certs locks a CA directory by (cadir._locked)
# how to restore FILE (shell-quoted) into DEST, as the CLI and the README say
RESTORE = "mkdir DEST && tar --no-same-owner --no-same-permissions -xf {file} -C DEST"
_FULL_HINT = full_disk_hint("run the backup again", "no partial archive is left (an archive "
                            "it was to replace is unchanged)")


@dataclass(frozen=True, kw_only=True)
class Skipped:
    """A file left out of the archive, and why."""

    path: str  # as it would have been named in the archive
    reason: str


@dataclass(frozen=True, kw_only=True)
class RegisterBatch:
    """A batch OUT_DIR a signer's citizen register names: the ledger that holds the
    credentials of ``citizens`` of its citizens, and whether it is in the archive."""

    path: str  # as the register names it (resolved on the computer that ran the batch)
    citizens: int
    archived: bool


@dataclass(frozen=True, kw_only=True)
class DirectoryBackup:
    """One directory as archived, under ``name``."""

    path: Path
    name: str
    kind: Kind
    role: str | None = None  # a CA's: root or province
    files: int = 0
    bytes: int = 0  # of the files as archived (each ledger as its copy)
    ledgers: int = 0
    credentials: int = 0  # in its ledger(s)
    # a signer's: the citizens its register knows (each one's latest credential is in its
    # ledger, a single issue, or in a batch OUT_DIR's ledger: register_batches)
    citizens: int = 0
    register_batches: tuple[RegisterBatch, ...] = ()
    certificates_issued: int | None = None  # a CA's (None: unreadable state.json)
    certificates_revoked: int | None = None
    credentials_revoked: int | None = None
    skipped: tuple[Skipped, ...] = ()
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class BackupResult:
    archive: Path
    size: int  # bytes
    directories: tuple[DirectoryBackup, ...] = field(default=())

    @property
    def skipped(self) -> tuple[Skipped, ...]:
        return tuple(s for d in self.directories for s in d.skipped)

    @property
    def warnings(self) -> tuple[str, ...]:
        return tuple(w for d in self.directories for w in d.warnings)


def identify(directory: Path) -> Kind:
    """The kind of ``directory`` by its files; :class:`ValidationError` naming what was
    expected when it is none of them."""
    if not directory.is_dir():
        what = "does not exist" if not directory.exists() else "is not a directory"
        raise ValidationError(f"{directory} {what}; expected {EXPECTED}")
    kind = _kind_of(directory)
    if kind is None:
        raise ValidationError(f"{directory} is not a vaxqr directory: expected {EXPECTED}")
    return kind


def _kind_of(directory: Path) -> Kind | None:
    for kind, names in _KIND_FILES.items():
        if all((directory / n).exists() for n in names):
            return kind
    return None


def backup(directories: Sequence[Path], out: Path, *, overwrite: bool = False,
           progress: Callable[[int, int], None] | None = None) -> BackupResult:
    """Archive ``directories`` (CA, signer or batch directories) into the tar file ``out``,
    each under its own name; see the module documentation. ``progress(done, total)`` is
    called with the bytes archived so far and the bytes to archive (an estimate: the files'
    sizes, a ledger's ``-wal`` counted with it), first with 0, last with done = total.
    Raise :class:`ValidationError`
    for a directory of no known kind, two with the same name, or ``out`` inside one, and
    :class:`StorageError` when ``out`` exists (unless ``overwrite``), a batch is running in
    a directory, or a file cannot be read or written."""
    if not directories:
        raise ValidationError("no directory to back up")
    if out.name.endswith((".gz", ".tgz", ".bz2", ".xz", ".zst")):
        raise ValidationError(f"{out}: the archive is an uncompressed tar; name it .tar",
                              hint="a damaged byte then loses one file, not the rest; "
                              "compress a copy afterwards if space matters")
    plan: list[tuple[Path, str, Kind]] = []
    names: dict[str, Path] = {}
    out_abs = Path(os.path.realpath(out))
    for d in directories:
        kind = identify(d)
        path = Path(os.path.realpath(d))  # a DIR given as a link: the directory it names
        name = path.name
        if not name:
            raise ValidationError(f"{d}: the root directory cannot be backed up; "
                                  f"expected {EXPECTED}")
        if name in names:
            raise ValidationError(
                f"{names[name]} and {d} have the same name ({name}): each directory goes "
                "into the archive under its own name",
                hint="back them up into two archives, or rename one")
        if out_abs.is_relative_to(path):
            raise ValidationError(f"--out {out} is inside {d}, which it backs up",
                                  hint="write the archive outside the directories it holds")
        names[name] = d
        plan.append((path, name, kind))
    done: list[DirectoryBackup] = []
    with when_full(_FULL_HINT):  # written whole or not at all
        check_writable(out, overwrite=overwrite,
                       holds="the archive (keys, ledgers: names and dates of birth)")
        meter = _Meter(progress, sum(_planned_bytes(path) for path, _n, _k in plan)) \
            if progress else None
        with _scratch() as scratch, \
                atomic_open(out, mode=PRIVATE, overwrite=overwrite) as fh, \
                tarfile.open(fileobj=fh, mode="w", format=tarfile.PAX_FORMAT) as tar:
            archived: set[str] = set()  # every directory archived, nested batches too
            for path, name, kind in plan:
                with _holding(path, kind):
                    done.append(_archive(tar, path, name, kind, Path(scratch), meter,
                                         archived))
    if meter is not None:
        meter.finish()
    return BackupResult(archive=out, size=out.stat().st_size,
                        directories=tuple(_with_batches(d, archived) for d in done))


def _with_batches(d: DirectoryBackup, archived: set[str]) -> DirectoryBackup:
    """``d`` with each batch its register names marked as archived or not."""
    batches = tuple(replace(b, archived=b.path in archived)
                    for b in d.register_batches)
    return replace(d, register_batches=batches)


# The scratch directory a backup copies each ledger into before it goes into the archive:
# vaxqr-backup-PID-RANDOM in the temporary directory (TMPDIR, /tmp), mode 0700 (mkdtemp),
# held (flock) while the backup runs, holding only ledger-N.sqlite (and SQLite's side files).
_SCRATCH_PREFIX = "vaxqr-backup-"
_SCRATCH_NAME = re.compile(r"vaxqr-backup-([0-9]+)-[a-z0-9_]{8}")
_SCRATCH_FILE = re.compile(r"ledger-[0-9]+\.sqlite(?:-journal|-wal|-shm)?")


@contextlib.contextmanager
def _scratch() -> Iterator[Path]:
    """A new scratch directory (see above), removed when the block ends; the ones killed
    backups left (kill -9, a power cut: a ledger's copy in them) are removed first."""
    base = tempfile.gettempdir()
    _clear_scratch(base)
    path = tempfile.mkdtemp(prefix=f"{_SCRATCH_PREFIX}{os.getpid()}-", dir=base)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # in use: see _clear_scratch
        yield Path(path)
    finally:
        shutil.rmtree(path, ignore_errors=True)
        os.close(fd)


def _clear_scratch(base: str) -> None:
    """Remove from ``base`` the scratch directories of backups that ended without removing
    theirs: only a directory of that exact name, this user's, mode 0700, holding nothing but
    ledger copies, whose backup is gone (its pid is not running here, or is this process's,
    and no one holds it locked: a thread's backup, another container's). Best effort."""
    try:
        with os.scandir(base) as entries:
            names = [e.name for e in entries if e.name.startswith(_SCRATCH_PREFIX)]
    except OSError:
        return
    me, uid = os.getpid(), os.geteuid()
    for name in names:
        m = _SCRATCH_NAME.fullmatch(name)
        if m is None or (int(m.group(1)) != me and _running(int(m.group(1)))):
            continue
        try:
            fd = os.open(os.path.join(base, name),
                         os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            st = os.fstat(fd)
            if st.st_uid != uid or stat.S_IMODE(st.st_mode) != 0o700:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a backup running
            except OSError:
                pass
            inside = os.listdir(fd)
            if not all(_SCRATCH_FILE.fullmatch(n) and stat.S_ISREG(
                    os.lstat(n, dir_fd=fd).st_mode) for n in inside):
                continue  # something vaxqr did not put there: left as it is
            for n in inside:
                os.unlink(n, dir_fd=fd)
            os.rmdir(os.path.join(base, name))
        except OSError:
            continue
        finally:
            os.close(fd)


class _Meter:
    """Bytes archived so far, reported to a ``progress(done, total)`` callback."""

    def __init__(self, report: Callable[[int, int], None], total: int) -> None:
        self.report, self.total, self.done = report, total, 0
        report(0, total)

    def add(self, size: int) -> None:
        self.done += size
        self.total = max(self.total, self.done)  # a file that grew since it was sized
        self.report(self.done, self.total)

    def finish(self) -> None:
        self.report(self.total, self.total)  # files that shrank, or were left out


def _planned_bytes(path: Path) -> int:
    """The size of what archiving ``path`` will copy, near enough for a progress bar: every
    regular file under it (links not followed), but the lock, temporaries and a ledger's
    ``-shm``/``-journal`` (its ``-wal`` goes into the ledger's copy)."""
    total = 0
    for root, _dirs, names in os.walk(path):
        for name in names:
            if _left_out_by_name(name) or name.endswith(("-shm", "-journal")):
                continue
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue  # gone since: the archive says so, if it was to be copied
            if stat.S_ISREG(st.st_mode):
                total += st.st_size
    return total


def _holding(path: Path, kind: Kind) -> contextlib.AbstractContextManager[None]:
    """Hold ``path`` as the commands that change it do (a signer directory has no lock: its
    files are written once, and its ledger is copied consistently by SQLite)."""
    if kind == "ca":
        from .cadir import _locked

        return _locked(path)
    if kind == "batch":
        return exclusive_dir(path, f"{path} is in use by a running vaxqr issue batch; it "
                             "was not backed up", "back it up once the batch has ended "
                             "(a stopped batch resumes when its command is run again)")
    return contextlib.nullcontext()


class _Archiver:
    """Adds one directory's files to the tar, counting them and what it leaves out."""

    def __init__(self, tar: tarfile.TarFile, scratch: Path, meter: _Meter | None,
                 archived: set[str]) -> None:
        self.tar = tar
        self.scratch = scratch
        self.meter = meter
        self.archived = archived
        self.files = self.bytes = self.ledgers = self.credentials = 0
        self.places: dict[str, int] = {}  # of the citizen register(s) met
        self.skipped: list[Skipped] = []

    def directory(self, path: Path, arcname: str, kind: Kind | None) -> None:
        self.archived.add(os.fspath(path))
        self.tar.addfile(_no_owner(self.tar.gettarinfo(str(path), arcname)))
        try:
            entries = sorted(os.scandir(path), key=lambda e: e.name)
        except OSError as exc:
            raise StorageError(f"cannot read {path}: {exc.strerror or exc}") from exc
        for entry in entries:
            self.entry(Path(entry.path), f"{arcname}/{entry.name}", in_ca=kind == "ca")

    def entry(self, path: Path, arcname: str, *, in_ca: bool = False) -> None:
        name = path.name
        if name.startswith(LEDGER) and name[len(LEDGER):] in _LEDGER_SIDE:
            # by name alone: copying the ledger (listed before them) may have removed them
            self.skipped.append(Skipped(path=arcname,
                                        reason=f"its records are in the copy of {LEDGER}"))
            return
        try:
            st = path.lstat()
        except OSError as exc:
            raise StorageError(f"cannot read {path}: {exc.strerror or exc}") from exc
        if in_ca and name == OWN_LOCK and stat.S_ISREG(st.st_mode):
            return  # vaxqr's own lock file, held by this backup: never archived, not news
        reason = _left_out(name, st.st_mode)
        if reason:
            self.skipped.append(Skipped(path=arcname, reason=reason))
        elif stat.S_ISDIR(st.st_mode):
            kind = _kind_of(path)  # e.g. a batch OUT_DIR inside a signer directory
            with _holding(path, kind) if kind else contextlib.nullcontext():
                self.directory(path, arcname, kind)
        elif name == LEDGER:
            self.ledger(path, arcname)
        else:
            self.file(path, arcname)

    def file(self, path: Path, arcname: str) -> None:
        try:
            # O_NOFOLLOW: a file replaced by a symbolic link since it was listed is refused
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
            fh = os.fdopen(fd, "rb")
        except OSError as exc:
            raise StorageError(f"cannot read {path}: {exc.strerror or exc}") from exc
        with fh:
            self._add(self.tar.gettarinfo(arcname=arcname, fileobj=fh), fh, path)

    def ledger(self, path: Path, arcname: str) -> None:
        from .ledger import backup_copy, register_places

        copy = self.scratch / f"ledger-{self.ledgers}.sqlite"
        try:
            try:
                self.credentials += backup_copy(path, copy)
            except DiskFullError as exc:  # it names the ledger, not where its copy goes
                raise DiskFullError(f"disk full while copying the ledger {path} into the "
                                    f"temporary directory {self.scratch}") from exc
            for place, n in register_places(copy).items():
                self.places[place] = self.places.get(place, 0) + n
            info = self.tar.gettarinfo(str(path), arcname)  # the original's mode
            info.size = copy.stat().st_size
            with copy.open("rb") as fh:
                self._add(info, fh, path)
        finally:
            copy.unlink(missing_ok=True)
        self.ledgers += 1

    def _add(self, info: tarfile.TarInfo, fh: IO[bytes], path: Path) -> None:
        """Add one file; an error reading it is a StorageError naming it, an error
        writing the archive reaches atomic_open (which names the archive)."""
        try:
            self.tar.addfile(_no_owner(info), _Reader(fh, path))
        except OSError as exc:
            if exc.errno is None and "unexpected end of data" in str(exc):
                raise StorageError(f"{path} changed while it was copied (it is shorter "
                                   "now)", hint="run the backup again") from exc
            raise
        self.files += 1
        self.bytes += info.size
        if self.meter is not None:
            self.meter.add(info.size)


def _no_owner(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """``info`` recording no owner (see the module documentation)."""
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


class _Reader:
    """A file read by tarfile, whose read errors name the file (a write error is the
    archive's)."""

    def __init__(self, fh: IO[bytes], path: Path) -> None:
        self._fh = fh
        self._path = path

    def read(self, size: int = -1) -> bytes:
        try:
            return self._fh.read(size)
        except OSError as exc:
            raise StorageError(f"cannot read {self._path}: {exc.strerror or exc}") from exc


def _left_out(name: str, mode: int) -> str | None:
    """Why a directory entry stays out of the archive, or None."""
    if stat.S_ISLNK(mode):
        return "symbolic link, not followed"
    if stat.S_ISDIR(mode):
        return None
    if not stat.S_ISREG(mode):
        return "not a regular file"
    return _left_out_by_name(name)


def _left_out_by_name(name: str) -> str | None:
    if name.startswith(".") and name.endswith(".tmp"):
        return "temporary file"
    if name == ".lock":
        return "lock file"
    return None


def _archive(tar: tarfile.TarFile, path: Path, name: str, kind: Kind,
             scratch: Path, meter: _Meter | None = None,
             archived: set[str] | None = None) -> DirectoryBackup:
    for essential in (*_KIND_FILES[kind], *(() if kind == "batch" else (LEDGER,))):
        if (path / essential).is_symlink():
            raise StorageError(f"{path / essential} is a symbolic link; a backup does not "
                               "follow links out of the directory",
                               hint="put the file itself in the directory")
    counts: dict[str, Any] = {}
    warnings: list[str] = []
    if kind == "ca":
        from .cadir import open_ca

        try:
            ca = open_ca(path)
        except VaxqrError as exc:  # archived all the same: it is what there is to keep
            warnings.append(f"{path}: {exc}")
        else:
            counts = {
                "role": ca.role,
                "certificates_issued": len(ca.issued),
                "certificates_revoked": sum(1 for c in ca.issued if c.revoked_at is not None),
                "credentials_revoked": len(ca.revoked_credentials),
            }
    arch = _Archiver(tar, scratch, meter, set() if archived is None else archived)
    arch.directory(path, name, kind)
    from .ledger import PLACE_SINGLE

    batches = tuple(RegisterBatch(path=p, citizens=n, archived=False)
                    for p, n in sorted(arch.places.items()) if p != PLACE_SINGLE)
    return DirectoryBackup(path=path, name=name, kind=kind, files=arch.files,
                           bytes=arch.bytes, ledgers=arch.ledgers,
                           credentials=arch.credentials, citizens=sum(arch.places.values()),
                           register_batches=batches, skipped=tuple(arch.skipped),
                           warnings=tuple(warnings), **counts)

