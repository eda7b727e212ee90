"""`vaxqr backup`: CA, signer and batch directories into one tar, consistent and restorable."""

from __future__ import annotations

import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from vaxqr.errors import StorageError
from vaxqr.ledger import backup_copy


def _credentials(db: Path) -> int:
    """Credentials in the SQLite file ``db`` read on its own (no -wal beside it)."""
    con = sqlite3.connect(db)
    try:
        return int(con.execute("SELECT count(*) FROM credentials").fetchone()[0])
    except sqlite3.OperationalError:  # not even the table reached the file
        return 0
    finally:
        con.close()


_KILLED_WRITER = """
import sys
from vaxqr.ledger import Entry, Ledger
ledger = Ledger(sys.argv[1])
for chunk in range(4):  # four transactions, as a batch records its chunks
    ledger.add_many([Entry(f"URN:UVCI:01:VN:091/31078/{n}#Q", "rows.csv", n, "h", "A", "k",
                           1, 2, "HC1:x", None) for n in range(chunk * 50 + 1, chunk * 50 + 51)])
print("recorded", flush=True)
sys.stdin.read()
"""


def _killed_batch(batch: Path) -> None:
    """``batch/ledger.sqlite`` as a batch killed (SIGKILL) after recording 200 credentials
    leaves it: the records in ``ledger.sqlite-wal``, not yet in ``ledger.sqlite``."""
    batch.mkdir()
    writer = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(batch / "ledger.sqlite")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert writer.stdout is not None and writer.stdout.readline() == "recorded\n"
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    assert (batch / "ledger.sqlite-wal").stat().st_size > 0
    # what a copy of ledger.sqlite alone would hold: not the 200 records
    plain = batch.parent / "plain.sqlite"
    shutil.copyfile(batch / "ledger.sqlite", plain)
    assert _credentials(plain) < 200


def test_ledger_backup_copy_holds_the_records_of_the_wal(tmp_path):
    batch = tmp_path / "batch"
    _killed_batch(batch)
    copy = tmp_path / "copy.sqlite"
    assert backup_copy(batch / "ledger.sqlite", copy) == 200
    assert not Path(f"{copy}-wal").exists()
    assert _credentials(copy) == 200  # the copy on its own
    with pytest.raises(StorageError, match="already exists"):
        backup_copy(batch / "ledger.sqlite", copy)
    with pytest.raises(StorageError):
        backup_copy(tmp_path / "none.sqlite", tmp_path / "other.sqlite")
    assert not (tmp_path / "none.sqlite").exists()  # never a new empty ledger
