"""The issuance ledger: every credential issued, in SQLite (WAL), one file per office or batch.

It is the source of truth for a batch: a credential is recorded (with its ``HC1:`` text) in
the same transaction that marks its source row done, *before* its image is written, so after a
crash or ``kill -9`` a re-run signs nothing twice, re-renders any missing image from the ledger
and rewrites the manifest from it. This is the only module that speaks SQL.

A signer directory's ledger (the office's: its single issues) also holds the office's
citizen register (:class:`Register`): for each citizen, known by a hash of the ID number,
the credential that holds their latest dose, wherever it was issued (a batch OUT_DIR or a
single issue). Every batch and single issue of that signer consults and updates it, so one
citizen gets one credential across CSVs and output directories.
"""

from __future__ import annotations

import errno
import hashlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple, Self

from .errors import DiskFullError, StorageError, full_disk_hint
from .fileio import PRIVATE

SCHEMA = """
CREATE TABLE IF NOT EXISTS credentials (
    uvci       TEXT PRIMARY KEY,
    source     TEXT NOT NULL,          -- the input it came from (CSV file name or 'single')
    row        INTEGER NOT NULL,       -- 1-based data row in the source (0 for single issues)
    row_hash   TEXT NOT NULL,          -- SHA-256 of the normalised source record
    full_name  TEXT NOT NULL,
    kid        TEXT NOT NULL,
    iat        INTEGER NOT NULL,
    exp        INTEGER NOT NULL,
    hc1        TEXT NOT NULL,
    file       TEXT,
    issued_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now'))
);
CREATE UNIQUE INDEX IF NOT EXISTS credentials_source_row
    ON credentials(source, row) WHERE row > 0;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


_ENTRY_COLUMNS = "uvci, source, row, row_hash, full_name, kid, iat, exp, hc1, file"
_INSERT_CREDENTIAL = f"INSERT INTO credentials({_ENTRY_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)"


class Entry(NamedTuple):
    """One credential as recorded: the columns of ``credentials`` in INSERT order (a tuple,
    so a batch's entries go to SQLite as they are: ~1.5 µs less per row than a dataclass)."""

    uvci: str
    source: str
    row: int
    row_hash: str
    full_name: str
    kid: str
    iat: int
    exp: int
    hc1: str
    file: str | None


REGISTER_SCHEMA = """
CREATE TABLE IF NOT EXISTS citizens (
    citizen          BLOB PRIMARY KEY,  -- citizen.citizen_key(ID number): a hash, not the number
    full_name        TEXT NOT NULL,     -- as signed (compared by citizen.name_key)
    sex              TEXT NOT NULL,     -- M or F
    dob              TEXT NOT NULL,     -- YYYY-MM-DD
    dose             INTEGER NOT NULL,
    total            INTEGER NOT NULL,
    vaccination_date TEXT NOT NULL,     -- YYYY-MM-DD
    uvci             TEXT NOT NULL,     -- the credential holding this dose
    place            TEXT NOT NULL,     -- the batch OUT_DIR (resolved path) or 'single'
    source           TEXT NOT NULL,     -- the batch's CSV name, or 'single'
    row              INTEGER NOT NULL,  -- its row in the source (0 for single issues)
    issued_at        TEXT NOT NULL,     -- UTC, when it was claimed
    replaces         TEXT NOT NULL DEFAULT '', -- the UVCI of an earlier dose's credential
    kid              TEXT NOT NULL DEFAULT '', -- the key id it is signed with (hex)
    hc1_sha256       TEXT NOT NULL DEFAULT '', -- SHA-256 (hex) of its HC1: text, once signed
    exp              INTEGER NOT NULL DEFAULT 0 -- its expiry (NumericDate), once signed
);  -- with rowids: measured, half the time per claim of WITHOUT ROWID (wide rows)
-- a single issue's record, found again (one from before the register has no claim)
CREATE INDEX IF NOT EXISTS credentials_single_hash ON credentials(row_hash)
    WHERE source = 'single';
"""
# Columns added since the register first shipped (a register of an older vaxqr gains them,
# empty, when opened: its entries keep the checks they had, see vaxqr.reprint).
_REGISTER_ADDED = (("kid", "TEXT NOT NULL DEFAULT ''"),
                   ("hc1_sha256", "TEXT NOT NULL DEFAULT ''"),
                   ("exp", "INTEGER NOT NULL DEFAULT 0"))
PLACE_SINGLE = "single"
_IN_LIST = 500  # parameters of one IN (...) lookup (SQLite before 3.32 allowed 999)


class Claim(NamedTuple):
    """One citizen's entry in the register: the columns of ``citizens`` in order."""

    citizen: bytes
    full_name: str
    sex: str
    dob: str
    dose: int
    total: int
    vaccination_date: str
    uvci: str
    place: str
    source: str
    row: int
    issued_at: str
    replaces: str = ""
    # what was signed, so that the text found again can be checked against it (see
    # vaxqr.reprint): empty (0) in an entry of an older register, and, for a batch's, until
    # its chunk is signed (the claim comes first: Register.record_signed)
    kid: str = ""
    hc1_sha256: str = ""
    exp: int = 0


# a claim as written: a Claim, or the plain tuple of its columns (built ~0.5 µs faster)
ClaimRow = tuple[bytes, str, str, str, int, int, str, str, str, str, int, str, str, str, str,
                 int]
# what a batch records once a claimed credential is signed: (kid, hc1_sha256, exp, citizen,
# uvci)
Signed = tuple[str, str, int, bytes, str]


def hc1_digest(hc1: str) -> str:
    """The register's digest of a credential's ``HC1:`` text: SHA-256, hex."""
    return hashlib.sha256(hc1.encode()).hexdigest()


def _blobs(keys: Sequence[bytes]) -> list[bytearray]:
    """Citizen keys as bound to a lookup: the same BLOBs. Python's sqlite3 (3.11-3.13)
    first tries to adapt a parameter that is not an exact int, float, str or bytearray;
    for ``bytes`` that formats an AttributeError message it then drops (~3,300
    instructions a key, against ~500 for this copy)."""
    return [bytearray(k) for k in keys]


# a batch's (issue.issue_batch gives it): what it recorded and wrote is kept, a run resumes
RESUME_HINT = full_disk_hint("run the same command again to resume")
# a single issue's transaction, on a full disk: rolled back, no file written yet
NOTHING_RECORDED_HINT = full_disk_hint("run the same command again",
                                       "nothing was recorded or written")


# Free bytes below which SQLite's "disk I/O error" (a -wal or -shm it could not grow: its
# answer to a full disk on some file systems, tmpfs among them) is taken for a full disk.
_NEARLY_FULL = 256 * 1024


def _place_problem(path: Path) -> str | None:
    """``full``, ``read-only`` or None: what the directory of ``path`` says of a write
    SQLite could not make, when its own message does not say it."""
    try:
        st = os.statvfs(path.parent)
    except OSError:
        return None
    if st.f_flag & os.ST_RDONLY or not os.access(path.parent, os.W_OK):
        return "read-only"
    if st.f_bavail * st.f_frsize < _NEARLY_FULL:
        return "full"
    return None


def _wrap(exc: sqlite3.Error, path: Path, full_hint: str | None = None) -> StorageError:
    text = str(exc)
    problem = "full" if "full" in text.lower() else None
    if problem is None and any(t in text.lower() for t in ("disk i/o", "unable to open",
                                                             "readonly", "read-only")):
        problem = _place_problem(path)
    if problem == "full":
        return DiskFullError(f"disk full while writing the ledger {path}",
                             hint=full_hint or full_disk_hint())
    if problem == "read-only":
        return StorageError(
            f"the ledger {path} cannot be written: {path.parent} is read-only (a read-only "
            "mount or copy, or another user's directory)",
            hint=f"make {path.parent} writable for this user (mount it read-write, or "
                 "run as its owner): every vaxqr issue records there what it signs")
    if "locked" in text.lower() or "busy" in text.lower():
        return StorageError(f"the ledger {path} is in use by another vaxqr process")
    return StorageError(f"ledger {path}: {text}")


OPEN_WAIT = 10.0
"""Seconds a ledger being opened waits for another process setting the same one up."""


def _retry_busy(step: Callable[[], object]) -> None:
    """Run a set-up ``step`` (the WAL switch, the schema) again while another process holds
    the database: two processes opening one new ledger at once (two batches of one office
    starting together, each opening the office register) both make its schema, and SQLite
    answers one of them "database is locked" at once, without its busy wait, when the
    other's change comes between its read and its write."""
    deadline = time.monotonic() + OPEN_WAIT
    while True:
        try:
            step()
            return
        except sqlite3.OperationalError as exc:
            text = str(exc).lower()
            if ("locked" not in text and "busy" not in text) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _create_private(path: Path) -> None:
    """Create a missing ledger file empty with mode 0600, whatever the umask: it holds
    names, dates of birth and credentials, and its directory (a signer directory copied
    or made by hand, an OUT_DIR the user made) may be open to other users. SQLite makes
    the ``-wal``, ``-shm`` and ``-journal`` files with the database file's mode. A ledger
    that exists keeps its mode."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, PRIVATE)
    except FileExistsError:
        return
    except OSError as exc:  # (a missing directory, a read-only place: SQLite says so)
        if exc.errno in (errno.ENOENT, errno.EROFS, errno.EACCES, errno.EPERM):
            return
        raise StorageError(f"ledger {path}: {exc.strerror or exc}") from exc
    try:
        os.fchmod(fd, PRIVATE)  # the umask may have removed bits; it must never add any
    finally:
        os.close(fd)


def _connect_read_only(path: Path) -> sqlite3.Connection:
    """A connection that reads the ledger ``path`` and writes nothing there, also on a
    read-only mount or file (``vaxqr issue --reprint``).

    SQLite opens a WAL database read-only (``mode=ro``) when its ``-wal`` and ``-shm`` are
    there (a process has it open, or was killed), or when it may make them (a writable
    directory: a read-only file). A ledger closed cleanly has neither, and on a read-only
    mount they cannot be made: then the file holds every record, and it is read as
    ``immutable`` (no locks, no ``-shm``). A ``-wal`` holding records without its ``-shm``
    in a read-only directory cannot be read without writing: refused, saying so."""
    uri = path.resolve().as_uri()
    try:
        db = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=10, isolation_level=None)
        try:
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.Error:
            db.close()
            raise
        return db
    except sqlite3.OperationalError as exc:
        text = str(exc).lower()
        if "unable to open" not in text and "readonly" not in text:
            raise
        try:
            pending = path.with_name(path.name + "-wal").stat().st_size
        except FileNotFoundError:
            pending = 0
        if pending:
            raise StorageError(
                f"the ledger {path} cannot be read without writing: records are in its "
                f"{path.name}-wal, whose {path.name}-shm is missing, and {path.parent} is "
                "read-only", hint=f"make {path.parent} writable once and run this again (it "
                "folds the -wal in), or copy the directory somewhere writable") from exc
    # (nothing else writes it here: nothing can, on a read-only mount)
    return sqlite3.connect(f"{uri}?mode=ro&immutable=1", uri=True, isolation_level=None)


def _read_only_tables(db: sqlite3.Connection, tables: Mapping[str, str],
                      added: Mapping[str, Sequence[tuple[str, str]]]) -> None:
    """On a read-only connection, what an older or empty ledger lacks, as the read-write
    open would add it: a missing table of ``tables`` (name → its CREATE TABLE) as an empty
    TEMP one, and the columns ``added`` since (name → ``(column, type)``s) missing from one
    as a TEMP view of it with their defaults. Unqualified names find TEMP first."""
    for name, create in tables.items():
        have = [str(r[1]) for r in db.execute(f"PRAGMA main.table_info({name})")]
        if not have:
            db.execute(create.replace(f"CREATE TABLE IF NOT EXISTS {name}",
                                      f"CREATE TEMP TABLE {name}", 1))
            continue
        defaults = [f"{'0' if kind.startswith('INTEGER') else repr('')} AS {column}"
                    for column, kind in added.get(name, ()) if column not in have]
        if defaults:
            db.execute(f"CREATE TEMP VIEW {name} AS SELECT *, {', '.join(defaults)} "
                       f"FROM main.{name}")


def _create_table(schema: str, name: str) -> str:
    """The CREATE TABLE statement of ``name`` in ``schema``."""
    start = schema.index(f"CREATE TABLE IF NOT EXISTS {name} ")
    return schema[start:schema.index(";", start)]


class Ledger:
    """An open ledger. Use as a context manager; writes are atomic per call.
    ``read_only``: nothing is written, not even the ledger's set-up (:func:`_connect_read_only`);
    the file must exist."""

    def __init__(self, path: str | Path, *, read_only: bool = False) -> None:
        self.path = Path(path)
        if read_only:
            try:
                self._db = _connect_read_only(self.path)
                self._read_only_tables()
            except sqlite3.Error as exc:
                raise _wrap(exc, self.path) from exc
            return
        _create_private(self.path)
        try:
            self._db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
            self._db.execute("PRAGMA synchronous=FULL")
            _retry_busy(lambda: self._db.execute("PRAGMA journal_mode=WAL"))
            _retry_busy(lambda: self._db.executescript(SCHEMA))
        except sqlite3.Error as exc:
            raise _wrap(exc, self.path) from exc

    def _read_only_tables(self) -> None:
        _read_only_tables(self._db, {"credentials": _create_table(SCHEMA, "credentials")}, {})

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        try:
            self._db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))
        except sqlite3.Error as exc:
            raise _wrap(exc, self.path) from exc

    def add_many(self, entries: Iterable[Entry]) -> None:
        """Record credentials in one transaction (all or none)."""
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany(_INSERT_CREDENTIAL, entries)
        except sqlite3.IntegrityError as exc:
            raise StorageError(f"ledger {self.path}: duplicate credential ({exc})") from exc
        except sqlite3.Error as exc:
            raise _wrap(exc, self.path) from exc

    def issued_rows(self, source: str) -> dict[int, tuple[str, str]]:
        """``row → (row_hash, uvci)`` for every credential already issued from ``source``."""
        cur = self._db.execute(
            "SELECT row, row_hash, uvci FROM credentials WHERE source = ? AND row > 0", (source,))
        return {int(r): (str(h), str(u)) for r, h, u in cur}

    def expired(self, source: str, at: int) -> list[tuple[int, str, int]]:
        """``(row, uvci, exp)`` of the credentials issued from ``source`` that have expired
        at ``at`` (exp, a NumericDate, not after it), in row order."""
        cur = self._db.execute(
            "SELECT row, uvci, exp FROM credentials WHERE source = ? AND row > 0 AND exp <= ? "
            "ORDER BY row", (source, at))
        return [(int(r), str(u), int(e)) for r, u, e in cur]

    def sources(self) -> list[str]:
        """The batch inputs (CSV file names) credentials were issued from, in name order."""
        cur = self._db.execute(
            "SELECT DISTINCT source FROM credentials WHERE row > 0 ORDER BY source")
        return [str(s) for (s,) in cur]

    def entries(self, source: str | None = None) -> Iterator[Entry]:
        for r in self._where(f"SELECT {_ENTRY_COLUMNS} FROM credentials", "source", source,
                             "source, row, issued_at"):
            yield Entry(*r)

    def _where(self, sql: str, column: str, value: str | None, order: str) -> sqlite3.Cursor:
        """``sql`` (a SELECT), only the rows whose ``column`` is ``value`` when it is
        given, in ``order``."""
        if value is None:
            return self._db.execute(f"{sql} ORDER BY {order}")
        return self._db.execute(f"{sql} WHERE {column} = ? ORDER BY {order}", (value,))

    def find(self, uvci: str) -> Entry | None:
        r = self._db.execute(f"SELECT {_ENTRY_COLUMNS} FROM credentials WHERE uvci = ?",
                             (uvci.upper(),)).fetchone()
        return Entry(*r) if r else None

    def count(self, source: str | None = None) -> int:
        """Credentials recorded (from ``source`` only, if given)."""
        if source is None:
            return int(self._db.execute("SELECT count(*) FROM credentials").fetchone()[0])
        return int(self._db.execute("SELECT count(*) FROM credentials WHERE source = ?",
                                    (source,)).fetchone()[0])


_CLAIM_COLUMNS = ("citizen, full_name, sex, dob, dose, total, vaccination_date, uvci, place, "
                  "source, row, issued_at, replaces, kid, hc1_sha256, exp")
_INSERT_CLAIM = (f"INSERT OR REPLACE INTO citizens({_CLAIM_COLUMNS}) "
                 "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)")
_RECORD_SIGNED = ("UPDATE citizens SET kid = ?, hc1_sha256 = ?, exp = ? "
                  "WHERE citizen = ? AND uvci = ?")


class Register(Ledger):
    """A signer directory's ledger with the office's citizen register (see the module
    documentation). Claims are written in ``BEGIN IMMEDIATE`` transactions: two processes
    of one office (two batches, a batch and a single issue) take turns, each deciding on
    what the other committed."""

    def __init__(self, path: str | Path, *, read_only: bool = False) -> None:
        super().__init__(path, read_only=read_only)
        if read_only:
            return
        try:
            _retry_busy(lambda: self._db.executescript(REGISTER_SCHEMA))
            _retry_busy(self._migrate)
        except sqlite3.Error as exc:
            self._db.close()
            raise _wrap(exc, self.path) from exc

    def _read_only_tables(self) -> None:
        _read_only_tables(self._db, {"credentials": _create_table(SCHEMA, "credentials"),
                                     "citizens": _create_table(REGISTER_SCHEMA, "citizens")},
                          {"citizens": _REGISTER_ADDED})

    def _migrate(self) -> None:
        """Add the columns a register of an older vaxqr lacks (:data:`_REGISTER_ADDED`), in
        one transaction (another process opening it at once: one of them adds them)."""
        def missing() -> list[tuple[str, str]]:
            have = {str(r[1]) for r in self._db.execute("PRAGMA table_info(citizens)")}
            return [(name, kind) for name, kind in _REGISTER_ADDED if name not in have]

        if not missing():  # (the usual case: no write lock taken)
            return
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            for name, kind in missing():
                self._db.execute(f"ALTER TABLE citizens ADD COLUMN {name} {kind}")

    def _lookup(self, citizens: Sequence[bytes]) -> dict[bytes, Claim]:
        found: dict[bytes, Claim] = {}
        for at in range(0, len(citizens), _IN_LIST):
            part = _blobs(citizens[at:at + _IN_LIST])
            cur = self._db.execute(
                f"SELECT {_CLAIM_COLUMNS} FROM citizens WHERE citizen IN "
                f"({','.join('?' * len(part))})", part)
            for r in cur:
                found[r[0]] = Claim(*r)
        return found

    def lookup(self, citizens: Sequence[bytes]) -> dict[bytes, Claim]:
        """``citizen → claim`` for those of ``citizens`` the register holds."""
        try:
            return self._lookup(citizens)
        except sqlite3.Error as exc:
            raise _wrap(exc, self.path) from exc

    def claim(self, citizens: Sequence[bytes],
              decide: Callable[[Mapping[bytes, Claim]], Sequence[ClaimRow]],
              signed: Sequence[Signed] = ()) -> None:
        """In one transaction: record ``signed`` (:meth:`record_signed`: an earlier chunk's,
        saving a transaction), look ``citizens`` up, call ``decide`` with what the register
        holds of them, and write the claims it returns (each replacing the citizen's
        entry). Committed (and synced) when this returns; nothing is written when ``decide``
        raises."""
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                if signed:
                    self._db.executemany(_RECORD_SIGNED, signed)
                claims = decide(self._lookup(citizens))
                if claims:
                    self._db.executemany(_INSERT_CLAIM, claims)
        except sqlite3.Error as exc:
            raise _wrap(exc, self.path) from exc

    def record_signed(self, signed: Sequence[Signed]) -> None:
        """Record, for claimed credentials now signed, their key id, the digest of their
        text (:func:`hc1_digest`) and their expiry: ``(kid, hc1_sha256, exp, citizen,
        uvci)`` each, a citizen whose claim names another UVCI by now being left as it is."""
        if not signed:
            return
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany(_RECORD_SIGNED, signed)
        except sqlite3.Error as exc:
            raise _wrap(exc, self.path) from exc

    def issue_single(self, citizen: bytes,
                     decide: Callable[[Claim | None, Entry | None],
                                      tuple[Entry | None, Claim] | None],
                     record_hash: str | None = None) -> None:
        """In one transaction: look the citizen up (with the credential of a single issue,
        when its claim is one; without a claim, the latest single issue of the record whose
        ``record_hash`` is given: one from before the register), call ``decide``, and record
        the credential (unless None) and the claim it returns, or nothing for None."""
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                old = self._lookup([citizen]).get(citizen)
                if old is not None:
                    earlier = self.find(old.uvci)
                elif record_hash is not None:
                    r = self._db.execute(
                        f"SELECT {_ENTRY_COLUMNS} FROM credentials WHERE source = ? AND "
                        "row_hash = ? ORDER BY iat DESC LIMIT 1",
                        (PLACE_SINGLE, record_hash)).fetchone()
                    earlier = Entry(*r) if r else None
                else:
                    earlier = None
                new = decide(old, earlier)
                if new is not None:
                    entry, claim = new
                    if entry is not None:
                        self._db.execute(_INSERT_CREDENTIAL, entry)
                    self._db.execute(_INSERT_CLAIM, claim)
        except sqlite3.IntegrityError as exc:
            raise StorageError(f"ledger {self.path}: duplicate credential ({exc})") from exc
        except sqlite3.Error as exc:  # rolled back: nothing to resume
            raise _wrap(exc, self.path, NOTHING_RECORDED_HINT) from exc

    def claim_of(self, uvci: str) -> Claim | None:
        """The citizen whose latest credential is ``uvci``, or None (a scan: for a clerk's
        lookup, not a batch)."""
        try:
            r = self._db.execute(f"SELECT {_CLAIM_COLUMNS} FROM citizens WHERE uvci = ?",
                                 (uvci.upper(),)).fetchone()
        except sqlite3.Error as exc:
            raise _wrap(exc, self.path) from exc
        return Claim(*r) if r else None

    def claims(self, place: str | None = None) -> Iterator[Claim]:
        """Every claim (of ``place`` only, if given)."""
        for r in self._where(f"SELECT {_CLAIM_COLUMNS} FROM citizens", "place", place,
                             "place, source, row"):
            yield Claim(*r)


def backup_copy(source: Path, target: Path) -> int:
    """Copy the ledger ``source`` into the new file ``target`` with SQLite's backup API and
    return the number of credentials in the copy.

    The copy is consistent even while another process writes the ledger, and it holds the
    records a crash left in ``source``'s ``-wal`` file (a copy of the file alone lacks them);
    ``target`` is a single file, without ``-wal`` or ``-shm``. The copy must pass
    ``PRAGMA integrity_check``. Opening ``source`` folds its ``-wal`` file in when no other
    process has it open, as any vaxqr command that opens the ledger does."""
    if target.exists():
        raise StorageError(f"{target} already exists")
    _create_private(target)  # it holds what the ledger holds
    try:
        # mode=rw: a ledger that is not there is an error, never a new empty one
        src = sqlite3.connect(f"{source.resolve().as_uri()}?mode=rw", uri=True, timeout=10)
    except sqlite3.Error as exc:
        raise _wrap(exc, source) from exc
    try:
        dst = sqlite3.connect(target, isolation_level=None)
        try:
            src.backup(dst)
            dst.execute("PRAGMA journal_mode=DELETE")  # one file: the copy has no -wal
            problems = [str(r[0]) for r in dst.execute("PRAGMA integrity_check")]
            if problems != ["ok"]:
                raise StorageError(f"ledger {source} is damaged: {problems[0]}",
                                   hint="keep a copy of its whole directory as it is, and "
                                   "ask for help before running vaxqr on it")
            return int(dst.execute("SELECT count(*) FROM credentials").fetchone()[0])
        finally:
            dst.close()
    except sqlite3.Error as exc:
        raise _wrap(exc, source) from exc
    finally:
        src.close()


def register_places(db: Path) -> dict[str, int]:
    """``place → citizens`` of the citizen register in the ledger file ``db`` (read only:
    a backup's checked copy): how many citizens' credentials each batch OUT_DIR (its
    resolved path) holds, and :data:`PLACE_SINGLE` the office ledger's own single issues.
    Empty for a ledger without a register (a batch's)."""
    try:
        con = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise _wrap(exc, db) from exc
    try:
        if con.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = "
                       "'citizens'").fetchone() is None:
            return {}
        return {str(place): int(n) for place, n in
                con.execute("SELECT place, count(*) FROM citizens GROUP BY place")}
    except sqlite3.Error as exc:
        raise _wrap(exc, db) from exc
    finally:
        con.close()
