"""The issuance ledger: every credential issued, in SQLite (WAL), one file per office or batch.

It is the source of truth for a batch: a credential is recorded (with its ``HC1:`` text) in
the same transaction that marks its source row done, *before* its image is written, so after a
crash or ``kill -9`` a re-run signs nothing twice, re-renders any missing image from the ledger
and rewrites the manifest from it. This is the only module that speaks SQL.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

from .errors import StorageError

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


def _wrap(exc: sqlite3.Error, path: Path) -> StorageError:
    text = str(exc)
    if "full" in text.lower():
        return StorageError(f"disk full while writing the ledger {path}",
                            hint="free some space and run the same command again to resume")
    if "locked" in text.lower() or "busy" in text.lower():
        return StorageError(f"the ledger {path} is in use by another vaxqr process")
    return StorageError(f"ledger {path}: {text}")


class Ledger:
    """An open ledger. Use as a context manager; writes are atomic per call."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self._db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise _wrap(exc, self.path) from exc

    def __enter__(self) -> Ledger:
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
                self._db.executemany(
                    "INSERT INTO credentials(uvci, source, row, row_hash, full_name, kid, iat,"
                    " exp, hc1, file) VALUES (?,?,?,?,?,?,?,?,?,?)", entries)
        except sqlite3.IntegrityError as exc:
            raise StorageError(f"ledger {self.path}: duplicate credential ({exc})") from exc
        except sqlite3.Error as exc:
            raise _wrap(exc, self.path) from exc

    def issued_rows(self, source: str) -> dict[int, tuple[str, str]]:
        """``row → (row_hash, uvci)`` for every credential already issued from ``source``."""
        cur = self._db.execute(
            "SELECT row, row_hash, uvci FROM credentials WHERE source = ? AND row > 0", (source,))
        return {int(r): (str(h), str(u)) for r, h, u in cur}

    def sources(self) -> list[str]:
        """The batch inputs (CSV file names) credentials were issued from, in name order."""
        cur = self._db.execute(
            "SELECT DISTINCT source FROM credentials WHERE row > 0 ORDER BY source")
        return [str(s) for (s,) in cur]

    def entries(self, source: str | None = None) -> Iterator[Entry]:
        sql = ("SELECT uvci, source, row, row_hash, full_name, kid, iat, exp, hc1, file "
               "FROM credentials")
        args: tuple[str, ...] = ()
        if source is not None:
            sql += " WHERE source = ?"
            args = (source,)
        for r in self._db.execute(sql + " ORDER BY source, row, issued_at", args):
            yield Entry(*r)

    def find(self, uvci: str) -> Entry | None:
        r = self._db.execute(
            "SELECT uvci, source, row, row_hash, full_name, kid, iat, exp, hc1, file "
            "FROM credentials WHERE uvci = ?", (uvci.upper(),)).fetchone()
        return Entry(*r) if r else None

    def count(self, source: str | None = None) -> int:
        """Credentials recorded (from ``source`` only, if given)."""
        if source is None:
            return int(self._db.execute("SELECT count(*) FROM credentials").fetchone()[0])
        return int(self._db.execute("SELECT count(*) FROM credentials WHERE source = ?",
                                    (source,)).fetchone()[0])


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
