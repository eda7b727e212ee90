"""`vaxqr backup`: CA, signer and batch directories into one tar, consistent and restorable."""

from __future__ import annotations

import errno
import itertools
import json
import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import pytest
from mounts import held_elsewhere
from terminal import stderr_on
from typer.testing import CliRunner

from vaxqr import backup as backup_mod
from vaxqr import revocation
from vaxqr.cli import app
from vaxqr.errors import StorageError, ValidationError
from vaxqr.ledger import backup_copy

from hierarchy import PW, T0, make_hierarchy, publish
from records import good_rows, write_csv

ROOT = Path(__file__).resolve().parent.parent
SIGNER = ROOT / "keys" / "examples" / "communes" / "31078"


@pytest.fixture
def runner(monkeypatch, tmp_path):
    monkeypatch.setenv("VAXQR_PASSWORD", "vaxqr-demo")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    return CliRunner()


@pytest.fixture
def dirs(runner, tmp_path):
    """A province CA (two communes, one revoked, one credential revoked), the demo commune
    signer with a single-issue ledger, and a finished batch of 12 rows."""
    site = tmp_path / "site"
    site.mkdir()
    h = make_hierarchy(site)
    publish(h)
    revocation.revoke_certificate(h.ca, str(h.s1), password=PW, now=T0)
    signer = site / "duong-to"
    shutil.copytree(SIGNER, signer, ignore=shutil.ignore_patterns("ledger.sqlite*"))
    os.chmod(signer / "signer.key", 0o600)
    r = runner.invoke(app, ["issue", "--signer", str(signer), "--name", "Nguyễn Thị Ánh Hồng",
                            "--sex", "Nữ", "--dob", "17/05/1990", "--id", "091190012345",
                            "--vaccine", "pfizer", "--dose", "2/2", "--date", "2021-10-01",
                            "--out", "-"])
    assert r.exit_code == 0, r.output
    rows = write_csv(tmp_path / "rows.csv", good_rows(12))
    batch = site / "batch"
    r = runner.invoke(app, ["issue", "--signer", str(signer), "--from", str(rows),
                            "--out", str(batch), "--workers", "1"])
    assert r.exit_code == 0, r.output
    return {"ca": h.ca, "signer": signer, "batch": batch, "rows": rows}


def _members(archive: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(archive, "r:") as tar:
        return {m.name: m for m in tar.getmembers()}


def _credentials(db: Path) -> int:
    """Credentials in the SQLite file ``db`` read on its own (no -wal beside it)."""
    con = sqlite3.connect(db)
    try:
        return int(con.execute("SELECT count(*) FROM credentials").fetchone()[0])
    except sqlite3.OperationalError:  # not even the table reached the file
        return 0
    finally:
        con.close()


def test_backup_and_restore(runner, dirs, tmp_path):
    out = tmp_path / "backup.tar"
    r = runner.invoke(app, ["backup", str(dirs["ca"]), str(dirs["signer"]), str(dirs["batch"]),
                            "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert r.stdout == ""
    assert "backed up 3 directories" in r.stderr
    assert "ca: province CA" in r.stderr
    assert "2 certificates issued (1 revoked), 1 credential revoked" in r.stderr
    assert "duong-to: commune signer" in r.stderr and "1 credential in its ledger" in r.stderr
    assert "batch: batch" in r.stderr and "12 credentials in its ledger" in r.stderr
    assert ".lock" not in r.stderr  # vaxqr's own lock file: left out without a word
    assert "left out" not in r.stderr
    assert ("restore into a new, empty directory: mkdir DEST && tar --no-same-owner "
            f"--no-same-permissions -xf {out} -C DEST") in r.stderr
    assert "never over a live directory" in r.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600

    members = _members(out)
    for name, m in members.items():
        assert not name.startswith("/") and ".." not in name.split("/")
        assert m.isfile() or m.isdir(), name
    assert {"ca", "duong-to", "batch"} == {n.split("/")[0] for n in members}
    assert members["ca/ca.key"].mode == 0o600 and members["duong-to/signer.key"].mode == 0o600
    assert members["ca/state.json"].mode == 0o644
    assert "ca/.lock" not in members
    assert not [n for n in members if n.endswith(("-wal", "-shm"))]

    dest = tmp_path / "restored"
    dest.mkdir()
    subprocess.run(["tar", "--no-same-owner", "--no-same-permissions", "-xf", str(out), "-C",
                    str(dest)], check=True)
    assert stat.S_IMODE((dest / "ca" / "ca.key").stat().st_mode) == 0o600
    r = runner.invoke(app, ["certs", "list", str(dest / "ca")])
    assert r.exit_code == 0 and "revoked" in r.stdout, r.output
    r = runner.invoke(app, ["certs", "show", str(dest / "duong-to" / "signer.crt")])
    assert r.exit_code == 0, r.output
    # the restored batch resumes from its ledger: nothing signed again, new rows signed
    write_csv(dirs["rows"], good_rows(15))  # the same 12 citizens, then 3 more
    r = runner.invoke(app, ["issue", "--signer", str(dest / "duong-to"), "--from",
                            str(dirs["rows"]), "--out", str(dest / "batch"), "--workers", "1"])
    assert r.exit_code == 0, r.output
    assert "3 issued" in r.stderr and "12 already issued" in r.stderr, r.stderr


def test_an_archive_through_another_users_symlink_is_refused(runner, dirs, tmp_path,
                                                            monkeypatch):
    """`vaxqr backup … --out /tmp/x/b.tar`, /tmp/x a symbolic link another user made: the
    archive (keys, ledgers) went to a directory of their choosing. Refused (exit 3),
    nothing written there."""
    from test_cli_issue import _made_by_another_user

    target = tmp_path / "chosen"
    target.mkdir(mode=0o700)
    link = tmp_path / "x"
    link.symlink_to(target, target_is_directory=True)
    uid = _made_by_another_user(link, monkeypatch)
    r = runner.invoke(app, ["backup", str(dirs["signer"]), "--out", str(link / "b.tar")])
    text = " ".join(r.stderr.split())
    assert r.exit_code == 3, r.output
    assert (f"{link} is a symbolic link made by another user of this computer (uid {uid})"
            in text and "the archive" in text), text
    assert list(target.iterdir()) == []


def test_a_ca_restored_over_its_live_directory_cannot_replace_its_trust_list(
        runner, dirs, tmp_path, monkeypatch):
    """The tester's sequence: back up, revoke, publish, extract the backup over the live CA
    (what the README said once). The old state.json has forgotten the revocation and the
    published number; replacing the published list is refused, and nothing is signed."""
    monkeypatch.setenv("VAXQR_CA_PASSWORD", PW.decode())
    ca, old, tl = dirs["ca"], tmp_path / "ca-old.tar", tmp_path / "tl.json"
    r = runner.invoke(app, ["backup", str(ca), "--out", str(old)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["certs", "revoke", str(ca), "31078", "--reason", "key-compromise",
                                 "--yes"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["certs", "trustlist", str(ca), "--out", str(tl)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["certs", "trustlist", str(ca), "--out", str(tl), "--force"])
    assert r.exit_code == 0, r.output  # in step with what it published: replaced
    published = tl.read_bytes()
    assert json.loads(published)["sequence"] == 3
    subprocess.run(["tar", "-xf", str(old), "-C", str(ca.parent)], check=True)
    state = (ca / "state.json").read_bytes()
    assert json.loads(state)["trustlist_sequence"] == 1  # the revocation is forgotten too
    r = runner.invoke(app, ["certs", "trustlist", str(ca), "--out", str(tl), "--force"])
    assert r.exit_code == 3, r.output
    assert "holds trust list 3, signed by this CA" in r.stderr
    assert "has only reached 1" in r.stderr and "nothing was signed" in r.stderr
    assert "restore a backup into a new, empty directory" in r.stderr
    assert tl.read_bytes() == published and (ca / "state.json").read_bytes() == state
    # another CA's list (or any other file) in its place is replaced as before
    other = make_hierarchy(tmp_path / "other")
    publish(other)
    shutil.copy(other.tmp / "tl.json", tl)
    r = runner.invoke(app, ["certs", "trustlist", str(ca), "--out", str(tl), "--force"])
    assert r.exit_code == 0, r.output
    assert json.loads(tl.read_bytes())["sequence"] == 2


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


def test_records_left_in_the_wal_by_a_killed_batch_are_in_the_archive(runner, tmp_path):
    batch = tmp_path / "batch"
    _killed_batch(batch)

    out = tmp_path / "b.tar"
    r = runner.invoke(app, ["backup", str(batch), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "200 credentials in its ledger" in r.stderr
    assert "left out batch/ledger.sqlite-wal: its records are in the copy" in r.stderr
    members = _members(out)
    assert "batch/ledger.sqlite" in members
    assert not [n for n in members if "-wal" in n or "-shm" in n]
    dest = tmp_path / "dest"
    with tarfile.open(out) as tar:
        tar.extractall(dest, filter="data")
    assert not (dest / "batch" / "ledger.sqlite-wal").exists()
    assert _credentials(dest / "batch" / "ledger.sqlite") == 200


def test_existing_archive_needs_force(runner, dirs, tmp_path):
    out = tmp_path / "b.tar"
    out.write_bytes(b"older backup")
    r = runner.invoke(app, ["backup", str(dirs["ca"]), "--out", str(out)])
    assert r.exit_code == 3
    assert "already exists" in r.stderr and "--force" in r.stderr
    assert out.read_bytes() == b"older backup"
    os.chmod(out, 0o644)
    r = runner.invoke(app, ["backup", str(dirs["ca"]), "--out", str(out), "--force"])
    assert r.exit_code == 0, r.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o600 and "ca/ca.key" in _members(out)


def test_a_running_batch_is_refused(runner, dirs, tmp_path):
    out = tmp_path / "b.tar"
    with held_elsewhere(dirs["batch"]):
        r = runner.invoke(app, ["backup", str(dirs["ca"]), str(dirs["batch"]),
                                "--out", str(out)])
    assert r.exit_code == 3
    assert f"{dirs['batch']} is in use by a running vaxqr issue batch" in r.stderr
    assert "once the batch has ended" in r.stderr
    assert not out.exists() and not list(tmp_path.glob(".b.tar*"))


@pytest.mark.parametrize("case", ["unknown", "missing", "file", "same-name", "inside", "stdout",
                                  "gzip"])
def test_usage_errors(runner, dirs, tmp_path, case):
    other = tmp_path / "elsewhere" / "batch"
    shutil.copytree(dirs["batch"], other)
    args, expected = {
        "unknown": ([str(tmp_path)], "is not a vaxqr directory: expected a CA directory "
                    "(ca.crt, ca.key, state.json), a commune signer directory (signer.crt, "
                    "signer.key) or a batch OUT_DIR (ledger.sqlite)"),
        "missing": ([str(tmp_path / "nope")], "does not exist; expected a CA directory"),
        "file": ([str(dirs["rows"])], "is not a directory; expected a CA directory"),
        "same-name": ([str(dirs["batch"]), str(other)], "have the same name (batch)"),
        "inside": ([str(dirs["batch"])], "is inside"),
        "stdout": ([str(dirs["ca"])], "--out -: the archive is binary"),
        "gzip": ([str(dirs["ca"])], "the archive is an uncompressed tar; name it .tar"),
    }[case]
    out = {"inside": str(dirs["batch"] / "b.tar"), "stdout": "-",
           "gzip": str(tmp_path / "b.tar.gz")}.get(case, str(tmp_path / "b.tar"))
    r = runner.invoke(app, ["backup", *args, "--out", out])
    assert r.exit_code == 2, r.output
    assert expected in " ".join(r.stderr.split()), r.stderr
    assert not (tmp_path / "b.tar").exists()


def test_temporaries_and_links_are_left_out(runner, dirs, tmp_path):
    batch = dirs["batch"]
    (batch / ".manifest.csv.4242.tmp").write_text("half a manifest")
    (batch / "qr" / "secret.png").symlink_to("/etc/passwd")
    (batch / "qr" / "elsewhere").symlink_to(tmp_path)
    out = tmp_path / "b.tar"
    r = runner.invoke(app, ["backup", str(batch), "--out", str(out)])
    assert r.exit_code == 0, r.output
    text = " ".join(r.stderr.split())
    assert "left out batch/.manifest.csv.4242.tmp: temporary file" in text
    assert "warning: left out batch/qr/secret.png: symbolic link, not followed" in text
    assert "warning: left out batch/qr/elsewhere: symbolic link, not followed" in text
    members = _members(out)
    assert not [n for n in members if n.endswith((".tmp", "secret.png")) or "elsewhere" in n]
    assert "batch/qr/0000001.png" in members


def test_only_vaxqrs_own_lock_file_is_left_out_silently(runner, dirs, tmp_path):
    """A CA's .lock (cadir's, held by the backup) is never archived nor listed; a lock
    file vaxqr does not make (here in a batch) is left out and listed, as before."""
    assert (dirs["ca"] / ".lock").is_file()
    (dirs["batch"] / ".lock").write_text("another program's")
    out = tmp_path / "b.tar"
    r = runner.invoke(app, ["backup", str(dirs["ca"]), str(dirs["batch"]), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "ca/.lock" not in r.stderr
    assert "left out batch/.lock: lock file" in r.stderr
    members = _members(out)
    assert "ca/.lock" not in members and "batch/.lock" not in members
    result = backup_mod.backup([dirs["ca"]], tmp_path / "c.tar")
    assert result.skipped == ()


def test_a_full_disk_says_no_partial_archive_is_left(runner, dirs, tmp_path, monkeypatch):
    """The backup's disk-full hint, not fileio's neutral one: the archive is written whole
    or not at all."""
    from vaxqr.fileio import atomic_write

    old = tmp_path / "old.tar"
    old.write_bytes(b"the last backup")
    real = os.fsync

    def fsync(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", fsync)
    for out, force in ((tmp_path / "b.tar", []), (old, ["--force"])):
        r = runner.invoke(app, ["backup", str(dirs["ca"]), "--out", str(out), *force])
        assert r.exit_code == 3, r.output
        text = " ".join(r.stderr.split())
        assert f"disk full while writing {out}" in text
        assert "no partial archive is left" in text and "what was done is kept" not in text
        assert "Traceback" not in r.output
    assert not (tmp_path / "b.tar").exists() and old.read_bytes() == b"the last backup"
    assert not list(tmp_path.glob(".*.tmp"))
    with pytest.raises(StorageError, match="disk full") as info:  # the neutral default
        atomic_write(tmp_path / "x.json", b"{}")
    assert info.value.hint == "free some space and try again"
    monkeypatch.setattr(os, "fsync", real)


def test_a_full_temporary_directory_names_it_not_the_ledger(dirs, tmp_path, monkeypatch):
    from vaxqr import ledger
    from vaxqr.errors import DiskFullError

    def full(source, target):
        raise DiskFullError(f"disk full while writing the ledger {source}")

    monkeypatch.setattr(ledger, "backup_copy", full)
    with pytest.raises(DiskFullError, match="into the temporary directory") as info:
        backup_mod.backup([dirs["batch"]], tmp_path / "b.tar")
    assert "no partial archive is left" in (info.value.hint or "")
    assert not (tmp_path / "b.tar").exists()


def test_a_key_that_is_a_link_is_refused(dirs, tmp_path):
    key = dirs["signer"] / "signer.key"
    kept = tmp_path / "signer.key"
    shutil.move(key, kept)
    key.symlink_to(kept)
    with pytest.raises(StorageError, match=r"signer\.key is a symbolic link"):
        backup_mod.backup([dirs["signer"]], tmp_path / "b.tar")
    assert not (tmp_path / "b.tar").exists()


def test_a_damaged_ledger_is_an_io_error(runner, tmp_path):
    batch = tmp_path / "batch"
    batch.mkdir()
    (batch / "ledger.sqlite").write_bytes(b"not SQLite at all" * 100)
    r = runner.invoke(app, ["backup", str(batch), "--out", str(tmp_path / "b.tar")])
    assert r.exit_code == 3
    assert "ledger" in r.stderr and "not a database" in r.stderr
    assert not (tmp_path / "b.tar").exists()


def test_library_result(dirs, tmp_path):
    result = backup_mod.backup([dirs["ca"], dirs["batch"]], tmp_path / "b.tar")
    ca, batch = result.directories
    assert (ca.kind, ca.role, ca.name) == ("ca", "province", "ca")
    assert (ca.certificates_issued, ca.certificates_revoked, ca.credentials_revoked) == (2, 1, 1)
    assert (batch.kind, batch.ledgers, batch.credentials) == ("batch", 1, 12)
    assert batch.files == sum(1 for m in _members(tmp_path / "b.tar").values()
                              if m.isfile() and m.name.startswith("batch/"))
    assert result.size == (tmp_path / "b.tar").stat().st_size
    with pytest.raises(ValidationError):
        backup_mod.backup([], tmp_path / "c.tar")


def test_verify_does_not_import_backup():
    code = ("import sys\nfrom vaxqr.cli import app\n"
            "try:\n    app([sys.argv[1], '--help'])\nexcept SystemExit:\n    pass\n"
            "print(' '.join(m for m in sys.modules if 'backup' in m))")
    for command, imported in (("verify", ""), ("backup", "vaxqr.cli_backup")):
        proc = subprocess.run([sys.executable, "-c", code, command], capture_output=True,
                              text=True, check=True, cwd=ROOT)
        assert proc.stdout.splitlines()[-1].strip() == imported, command


def test_a_batch_inside_a_signer_directory_is_held_too(runner, dirs, tmp_path):
    nested = dirs["signer"] / "batch-1201"
    shutil.copytree(dirs["batch"], nested)
    out = tmp_path / "b.tar"
    with held_elsewhere(nested):
        r = runner.invoke(app, ["backup", str(dirs["signer"]), "--out", str(out)])
    assert r.exit_code == 3 and "is in use by a running vaxqr issue batch" in r.stderr
    r = runner.invoke(app, ["backup", str(dirs["signer"]), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "13 credentials in its 2 ledgers" in r.stderr
    assert "duong-to/batch-1201/ledger.sqlite" in _members(out)


def test_a_directory_named_through_a_link_is_archived_as_itself(dirs, tmp_path):
    link = tmp_path / "current"
    link.symlink_to(dirs["batch"])
    result = backup_mod.backup([link], tmp_path / "b.tar")
    assert result.directories[0].name == "batch"
    members = _members(tmp_path / "b.tar")
    assert members["batch"].isdir() and "batch/ledger.sqlite" in members


def test_library_reports_progress_in_bytes(dirs, tmp_path):
    """progress(done, total): from 0, never backwards, ending at done = total, the total
    the size of what was archived (the ledgers' copies aside, which SQLite sizes)."""
    calls: list[tuple[int, int]] = []
    result = backup_mod.backup([dirs["ca"], dirs["signer"], dirs["batch"]],
                               tmp_path / "b.tar", progress=lambda d, t: calls.append((d, t)))
    assert calls[0][0] == 0 and calls[-1][0] == calls[-1][1]
    assert all(a[0] <= b[0] for a, b in itertools.pairwise(calls))
    assert all(d <= t for d, t in calls)
    assert len(calls) >= sum(d.files for d in result.directories) + 1
    archived = sum(d.bytes for d in result.directories)
    assert calls[-1][1] >= archived * 0.5  # an estimate made before copying


def test_a_progress_bar_on_a_terminal_and_none_on_a_pipe(dirs, tmp_path):
    """ENGINEERING: long work shows a progress bar on stderr (rich, transient), only on a
    terminal. vaxqr backup had none."""
    args = ["backup", str(dirs["ca"]), str(dirs["batch"]), "--out"]
    code, seen = stderr_on([*args, str(tmp_path / "a.tar")], terminal=True, cwd=tmp_path)
    assert code == 0, seen
    assert "backing up" in seen and "━" in seen  # the bar, drawn with rich's BarColumn
    assert "\x1b[?25l" in seen and "\x1b[?25h" in seen  # cursor hidden while it ran, shown
    assert "backed up 2 directories" in seen
    code, piped = stderr_on([*args, str(tmp_path / "b.tar")], terminal=False, cwd=tmp_path)
    assert code == 0, piped
    assert "backed up 2 directories" in piped
    assert "backing up" not in piped and "━" not in piped and "\x1b[" not in piped


@pytest.mark.skipif(os.geteuid() != 0, reason="giving files to another user needs root")
def test_the_archive_names_no_owner(runner, dirs, tmp_path):
    """Restored by root (IT staff, on another computer), a tar gives each file to the user
    whose number the archive records: the clerk's uid there may be someone else's here,
    who would then own the keys, the CA's state.json and the ledgers. The archive records
    no owner (uid and gid 0, no names), so a restore belongs to whoever restores it."""
    for root, names, files in os.walk(dirs["signer"]):
        for n in [*names, *files]:
            os.chown(os.path.join(root, n), 4321, 4321, follow_symlinks=False)
    os.chown(dirs["signer"], 4321, 4321)
    out = tmp_path / "backup.tar"
    r = runner.invoke(app, ["backup", str(dirs["signer"]), "--out", str(out)])
    assert r.exit_code == 0, r.output
    members = _members(out)
    assert members and all((m.uid, m.gid, m.uname, m.gname) == (0, 0, "", "")
                           for m in members.values())
    dest = tmp_path / "restored"
    dest.mkdir()
    subprocess.run(["tar", "-xf", str(out), "-C", str(dest)], check=True)  # root's default
    key = dest / dirs["signer"].name / "signer.key"
    assert key.stat().st_uid == 0 and stat.S_IMODE(key.stat().st_mode) == 0o600


def test_a_signers_summary_counts_its_register_and_says_where_its_batches_are(
        runner, dirs, tmp_path):
    """A signer whose office register held 20,000 citizens, all from batches, was
    summarised "0 credentials in its ledger" (batch credentials are in each batch
    OUT_DIR's ledger): the summary now counts the register's citizens and names each batch
    ledger it points to, and whether that is in the archive (walkthrough finding)."""
    batch = os.path.realpath(dirs["batch"])
    for with_batch in (False, True):
        out = tmp_path / f"b{int(with_batch)}.tar"
        extra = [str(dirs["batch"])] if with_batch else []
        r = runner.invoke(app, ["backup", str(dirs["signer"]), *extra, "--out", str(out)])
        assert r.exit_code == 0, r.output
        text = " ".join(r.stderr.split())
        assert "duong-to: commune signer," in text and "1 credential in its ledger" in text
        assert "13 citizens in its register" in text, text
        where = "in this archive" if with_batch else "NOT in this archive"
        assert (f"the credentials of 12 citizens are in the ledger of the batch {batch}, "
                f"{where}") in text, text
    result = backup_mod.backup([dirs["signer"]], tmp_path / "lib.tar")
    (signer,) = result.directories
    assert (signer.citizens, signer.register_batches) == (
        13, (backup_mod.RegisterBatch(path=batch, citizens=12, archived=False),))


_KILLED_IN_A_LEDGER_COPY = """
import os, signal, sys
from pathlib import Path
from vaxqr import backup, ledger
real = ledger.backup_copy
def copy_then_die(source, target):
    n = real(source, target)
    os.kill(os.getpid(), signal.SIGKILL)  # as kill -9 (or a power cut) at that moment
    return n
ledger.backup_copy = copy_then_die
backup.backup([Path(p) for p in sys.argv[2:]], Path(sys.argv[1]))
"""


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(proc.stdout)


def test_a_rerun_removes_what_a_killed_backup_left(runner, dirs, tmp_path, monkeypatch):
    """`vaxqr backup` killed part way left its archive's temporary file beside --out (80 MB
    of keys and ledgers on a USB stick, mode 0600) and its scratch directory in /tmp with
    a ledger's copy; the next run removed neither (only leftovers of its own pid): it now
    removes those of runs that are gone, and nothing else (walkthrough finding)."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    out_dir = tmp_path / "usb"
    out_dir.mkdir()
    out = out_dir / "office.tar"
    env = {**os.environ, "TMPDIR": str(tmp)}
    proc = subprocess.run([sys.executable, "-c", _KILLED_IN_A_LEDGER_COPY, str(out),
                           str(dirs["ca"]), str(dirs["signer"])], env=env, check=False)
    assert proc.returncode == -signal.SIGKILL
    (left,) = (p for p in out_dir.iterdir())
    assert left.name.startswith(".office.tar.") and left.name.endswith(".tmp")
    assert left.stat().st_size > 0 and stat.S_IMODE(left.stat().st_mode) == 0o600
    (scratch,) = tmp.iterdir()
    assert stat.S_IMODE(scratch.stat().st_mode) == 0o700  # nothing readable by others
    (copy,) = scratch.iterdir()
    assert copy.name == "ledger-0.sqlite" and stat.S_IMODE(copy.stat().st_mode) == 0o600
    # what is not a killed backup's stays: another name, a live run's, another user's, a
    # directory holding anything else
    live = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                            stdin=subprocess.PIPE)
    dead = _dead_pid()
    kept = [out_dir / ".office.tar.notes.tmp", out_dir / f".office.tar.{live.pid}.0badf00d.tmp",
            out_dir / f".other.tar.{dead}.0badf00d.tmp", out_dir / f".office.tar.{dead}.x.tmp"]
    theirs = out_dir / f".office.tar.{dead}.12345678.tmp"
    for p in (*kept, theirs):
        p.write_bytes(b"x")
    if os.geteuid() == 0:  # another user's (root can make one)
        os.chown(theirs, 4242, 4242)
        kept.append(theirs)
    busy = tmp / f"vaxqr-backup-{live.pid}-abcdefgh"
    mixed = tmp / f"vaxqr-backup-{dead}-abcdefgh"
    for d in (busy, mixed):
        d.mkdir(mode=0o700)
        (d / "ledger-0.sqlite").write_bytes(b"x")
    (mixed / "notes.txt").write_bytes(b"mine")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    try:
        r = runner.invoke(app, ["backup", str(dirs["ca"]), str(dirs["signer"]),
                                "--out", str(out)])
    finally:
        live.communicate(b"")
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(
        ["office.tar", *(p.name for p in kept)])
    assert sorted(tmp.iterdir()) == sorted([busy, mixed])
    assert (mixed / "notes.txt").read_bytes() == b"mine"
