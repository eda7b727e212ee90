"""The office's citizen register (SIGNER_DIR/ledger.sqlite): one credential per citizen
across every batch and single issue of a signer, two processes at once, kills between the
claim and the ledger, and backups."""

import csv
import os
import shutil
import signal
import subprocess
import sys
import tarfile
from datetime import date
from pathlib import Path

import pytest
import scriptload
from typer.testing import CliRunner

from vaxqr import issue
from vaxqr.certs import load_signer
from vaxqr.citizen import citizen_key
from vaxqr.cli import app
from vaxqr.ledger import Ledger, Register

from records import HEADER, good_rows, write_csv

ROOT = Path(__file__).resolve().parent.parent
SIGNER = ROOT / "keys" / "examples" / "communes" / "31078"
VAXQR = Path(sys.executable).with_name("vaxqr")
TODAY = date(2022, 1, 15)


@pytest.fixture(scope="module")
def signer():
    os.chmod(SIGNER / "signer.key", 0o600)
    return load_signer(SIGNER, b"vaxqr-demo")


@pytest.fixture
def office(tmp_path):
    return tmp_path / "office.sqlite"


def _claims(path):
    with Register(path) as reg:
        return {c.citizen: c for c in reg.claims()}


def _uvcis(out):
    with Ledger(out / "ledger.sqlite") as ledger:
        return {e.row: e.uvci for e in ledger.entries()}


def _batch(signer, rows, tmp_path, name, office, **kw):
    src = write_csv(tmp_path / f"{name}.csv", rows)
    return issue.issue_batch(signer, src, tmp_path / name, workers=1, today=TODAY,
                             register=office, **kw)


def test_the_register_finds_its_claims_by_key_in_lookups_of_any_size(office):
    """Keys are looked up as BLOBs however they are bound (ledger._blobs), more than one
    IN list's worth at a time, and come back as the ``bytes`` the claims were written with."""
    keys = [citizen_key(f"091078{i:06d}") for i in range(1200)]
    rows = [(k, "Nguyễn Văn An", "M", "1978-01-02", 1, 2, "2021-10-01",
             f"URN:UVCI:01:VN:091/31078/{i:012d}#X", "out", "r.csv", i + 1,
             "2026-01-01T00:00:00Z", "", "a1b2c3d4e5f6a7b8", f"{i:064x}", 1_800_000_000 + i)
            for i, k in enumerate(keys[:1000:2])]
    with Register(office) as reg:
        reg.claim(keys[:1000:2], lambda held: rows if not held else [])
        found = reg.lookup(keys)
        assert found == {r[0]: tuple(r) for r in rows}
        assert all(type(k) is bytes for k in found)
        seen: list[dict] = []
        reg.claim(keys, lambda held: seen.append(dict(held)) or [])
        assert seen == [found]


def test_the_same_citizen_and_dose_in_another_csv_is_superseded(signer, tmp_path, office):
    rows = good_rows(6, seed=51)
    first = _batch(signer, rows, tmp_path, "a", office)
    assert first.issued == 6
    issued = _uvcis(tmp_path / "a")
    claims = _claims(office)
    assert len(claims) == 6
    for n, row in enumerate(rows, 1):
        c = claims[citizen_key(row[3])]
        assert (c.uvci, c.place, c.source, c.row) == (issued[n], str((tmp_path / "a").resolve()),
                                                      "a.csv", n)
    assert not any(row[3] in str(c) for row in rows for c in claims.values())  # hashed

    # the same citizens again (the second and the last with the same dose, in a new CSV)
    second = _batch(signer, [rows[1], rows[5], *good_rows(2, seed=52)], tmp_path, "b", office)
    assert second.issued == 2 and not second.rejected
    assert [n for n, _ in second.superseded] == [1, 2]
    reason = dict(second.superseded)[1]
    assert issued[2] in reason and str((tmp_path / "a").resolve()) in reason
    assert "a.csv row 2" in reason and "one credential per citizen" in reason
    assert f"dose {rows[1][4]}/2 on {rows[1][6]}" in reason
    rejects = (tmp_path / "b" / "rejects.csv").read_text(encoding="utf-8-sig")
    assert issued[2] in rejects and issued[6] in rejects
    assert len(_claims(office)) == 8
    # a re-run of the second batch decides the same: nothing signed twice
    again = _batch(signer, [rows[1], rows[5], *good_rows(2, seed=52)], tmp_path, "b", office)
    assert (again.issued, again.already, len(again.superseded)) == (0, 2, 2)


def test_an_earlier_dose_in_another_csv_is_superseded_a_later_one_signed(signer, tmp_path,
                                                                        office):
    row = good_rows(1, seed=53)[0]
    row[4:7] = ["2", "3", "2021-09-01"]
    first = _batch(signer, [row], tmp_path, "a", office)
    old = _uvcis(tmp_path / "a")[1]
    earlier = [*row[:4], "1", "3", "2021-07-01", *row[7:]]
    res = _batch(signer, [earlier], tmp_path, "b", office)
    assert first.issued == 1 and res.issued == 0 and [n for n, _ in res.superseded] == [1]
    later = [*row[:4], "3", "3", "2021-12-01", *row[7:]]
    res = _batch(signer, [later], tmp_path, "c", office)
    assert res.issued == 1 and not res.superseded and not res.rejected
    new = _uvcis(tmp_path / "c")[1]
    assert res.replaced == [(1, old)]
    claim = _claims(office)[citizen_key(row[3])]
    assert (claim.uvci, claim.dose, claim.vaccination_date, claim.replaces) == (
        new, 3, "2021-12-01", old)
    assert _uvcis(tmp_path / "a") == {1: old}  # the older credential is still recorded


@pytest.mark.parametrize(("column", "value", "what"), [
    (0, "Trần Văn Khác", "full name"),
    (2, "1960-11-30", "date of birth"),
])
def test_another_person_under_the_same_id_number_is_refused(signer, tmp_path, office, column,
                                                           value, what):
    row = good_rows(1, seed=54)[0]
    row[2] = "1960-02-03" if column == 2 else row[2]  # a DOB the ID number's digits allow
    if column == 2:
        row[3] = row[3][:4] + "60" + row[3][6:]
    _batch(signer, [row], tmp_path, "a", office)
    old = _uvcis(tmp_path / "a")[1]
    other = list(row)
    other[column] = value
    other[4:7] = ["2", "2", "2021-12-01"]  # even a later dose
    res = _batch(signer, [other], tmp_path, "b", office)
    assert res.issued == 0 and not res.superseded and [n for n, _ in res.rejected] == [1]
    reason = res.rejected[0][1]
    assert old in reason and f"another {what}" in reason and "not signed" in reason
    assert str((tmp_path / "a").resolve()) in reason and "a.csv row 1" in reason
    assert "one credential per citizen" not in reason
    # names compare as people read them: the other tone placement is the same person
    if column == 0:
        same = list(row)
        same[0] = row[0].replace("Hoà", "Hòa").replace("Thuý", "Thúy").upper()
        same[4:7] = ["2", "2", "2021-12-02"]
        res = _batch(signer, [same], tmp_path, "c", office)
        assert res.issued == 1 and res.replaced == [(1, old)]


def test_two_batches_of_one_signer_at_once_never_sign_a_citizen_twice(tmp_path):
    """Two real `vaxqr issue` processes, the same citizens, two OUT_DIRs, one signer."""
    signer_dir = _signer_copy(tmp_path)
    rows = good_rows(1500, seed=55)
    a = write_csv(tmp_path / "a.csv", rows)
    b = write_csv(tmp_path / "b.csv", list(reversed(rows)))  # meet in the middle
    env = dict(os.environ, VAXQR_PASSWORD="vaxqr-demo")
    procs = [subprocess.Popen([str(VAXQR), "issue", "--signer", str(signer_dir), "--from",
                               str(src), "--out", str(tmp_path / src.stem), "--workers", "1"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True) for src in (a, b)]
    errs = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs
    ua, ub = _uvcis(tmp_path / "a"), _uvcis(tmp_path / "b")
    assert ua and ub, "both batches signed some: they ran at the same time"
    assert len(ua) + len(ub) == 1500
    rows_a = set(ua)
    rows_b = {1501 - n for n in ub}  # b's row n is a's row 1501 - n
    assert not rows_a & rows_b and rows_a | rows_b == set(range(1, 1501))
    claims = _claims(signer_dir / "ledger.sqlite")
    assert len(claims) == 1500
    assert {c.uvci for c in claims.values()} == set(ua.values()) | set(ub.values())
    for err, mine in zip(errs, (ua, ub), strict=True):
        assert f"{len(mine)} issued" in err  # the others: the other batch's
        assert (f"{1500 - len(mine)} already issued by the office (another batch or a "
                "single issue) (one credential per citizen)") in err, err
        assert "superseded by a later dose" not in err


def _signer_copy(tmp_path):
    dst = tmp_path / "signer"
    shutil.copytree(SIGNER, dst, ignore=shutil.ignore_patterns("ledger.sqlite*"))
    os.chmod(dst / "signer.key", 0o600)
    return dst


def test_a_batch_killed_between_claim_and_ledger_resumes_with_its_claims(tmp_path):
    """SIGKILL after the first chunk's claims are committed, before its ledger commit: the
    claims hold the citizens (another batch signs none of them, naming the claimed UVCIs),
    and the resumed batch signs them under those same UVCIs."""
    import random

    chaos = scriptload.chaos_issue()
    signer_dir = _signer_copy(tmp_path)
    rng = random.Random(7)
    csv_path = tmp_path / "records.csv"
    expect = chaos.make_csv(csv_path, 200, rng)
    batch = chaos.Batch(csv_path, tmp_path / "out", 1, expect,
                        {r: chaos._digest(f) for r, f in expect.valid.items()}, signer_dir)
    proc = chaos.start(batch, "first-chunk")
    assert not chaos._finish(proc)
    assert proc.returncode == -signal.SIGKILL, chaos._stderr(proc)
    assert chaos.read_ledger(batch.out, tmp_path) == {}
    claimed = {c.row: c.uvci for c in _claims(signer_dir / "ledger.sqlite").values()}
    assert claimed and set(claimed) <= set(expect.valid)

    # another batch of the same rows, meanwhile: every claimed citizen is superseded
    other = chaos.Batch(csv_path, tmp_path / "other", 1, expect, batch.digests, signer_dir)
    done = subprocess.run([str(VAXQR), *other.command()], capture_output=True, text=True,
                          env=chaos._env(), timeout=300)
    assert done.returncode == 0, done.stderr
    with (other.out / "rejects.csv").open(encoding="utf-8-sig") as fh:
        refused = {int(r["row"]): r["reason"] for r in csv.DictReader(fh)}
    for row, uvci in claimed.items():
        assert uvci in refused[row] and "already issued" in refused[row]
    assert not set(claimed) & set(_uvcis(other.out))

    proc = chaos.start(batch)
    assert not chaos._finish(proc)
    assert proc.returncode == 0, chaos._stderr(proc)
    issued = _uvcis(batch.out)
    assert all(issued[row] == uvci for row, uvci in claimed.items())  # the claimed UVCIs
    assert chaos.check_register(batch.out, signer_dir, tmp_path, completed=True) == []
    # every valid row signed once, by one batch or the other: the killed one those it had
    # claimed, the other the rest, and the resumed one superseded those
    assert set(issued) == set(expect.valid) - set(_uvcis(other.out))
    assert len(_claims(signer_dir / "ledger.sqlite")) == len(expect.valid)


PERSON = ["--name", "Nguyễn Thị Ánh Hồng", "--sex", "Nữ", "--dob", "17/05/1990",
          "--id", "091190012345", "--vaccine", "pfizer", "--dose", "2/2",
          "--date", "2021-10-01"]
PERSON_CSV = ["Nguyễn Thị Ánh Hồng", "Nữ", "1990-05-17", "091190012345", "2", "2",
              "2021-10-01", "pfizer", "", ""]


@pytest.fixture
def runner(monkeypatch, tmp_path):
    monkeypatch.setenv("VAXQR_PASSWORD", "vaxqr-demo")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    return CliRunner()


def test_single_issue_refused_for_a_batch_citizen_then_reissued(runner, tmp_path):
    signer_dir = _signer_copy(tmp_path)
    src = write_csv(tmp_path / "r.csv", [PERSON_CSV, *good_rows(2, seed=56)])
    r = runner.invoke(app, ["issue", "--signer", str(signer_dir), "--from", str(src), "--out",
                            str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    old = _uvcis(tmp_path / "out")[1]
    r = runner.invoke(app, ["issue", "--signer", str(signer_dir), *PERSON, "--out",
                            str(tmp_path / "h.png")])
    assert r.exit_code == 2
    assert f"already issued as {old}" in r.stderr and "--reissue" in r.stderr
    assert not (tmp_path / "h.png").exists()
    with Ledger(signer_dir / "ledger.sqlite") as ledger:
        assert ledger.count("single") == 0  # refused: nothing recorded
    r = runner.invoke(app, ["issue", "--signer", str(signer_dir), *PERSON, "--out",
                            str(tmp_path / "h.png"), "--reissue"])
    assert r.exit_code == 0, r.output
    assert f"reissued: {old}" in r.stderr and "stays valid unless revoked" in r.stderr
    with Ledger(signer_dir / "ledger.sqlite") as ledger:
        (entry,) = ledger.entries("single")
    claim = _claims(signer_dir / "ledger.sqlite")[citizen_key("091190012345")]
    assert (claim.uvci, claim.place, claim.replaces) == (entry.uvci, "single", old)
    assert entry.uvci != old and (tmp_path / "h.png").exists()
    # the same command again gives the same credential back, signing nothing new
    r = runner.invoke(app, ["issue", "--signer", str(signer_dir), *PERSON, "--out", "-"])
    assert r.exit_code == 0, r.output
    assert r.stdout.strip() == entry.hc1 and "written again" in r.stderr
    with Ledger(signer_dir / "ledger.sqlite") as ledger:
        assert ledger.count("single") == 1
    # and a batch with her again supersedes her row, naming the single issue
    src2 = write_csv(tmp_path / "r2.csv", [PERSON_CSV])
    r = runner.invoke(app, ["issue", "--signer", str(signer_dir), "--from", str(src2),
                            "--out", str(tmp_path / "out2")])
    assert r.exit_code == 0 and "0 issued" in r.stderr and "1 superseded" in r.stderr
    rejects = (tmp_path / "out2" / "rejects.csv").read_text(encoding="utf-8-sig")
    assert entry.uvci in rejects and "by a single issue" in rejects


def test_the_same_single_issue_again_signs_anew_when_its_credential_expired(runner,
                                                                           tmp_path):
    """The same record issued again writes the register's credential again, unless it has
    expired: then it would be a card every checkpoint refuses, given with no word; a new
    credential is signed (as for one issued before the register) and the register names
    it, and --reprint finds the new one."""
    import sqlite3

    signer_dir = _signer_copy(tmp_path)
    r = runner.invoke(app, ["issue", "--signer", str(signer_dir), *PERSON, "--out", "-"])
    assert r.exit_code == 0, r.output
    first = r.stdout.strip()
    with Ledger(signer_dir / "ledger.sqlite") as ledger:
        (old,) = ledger.entries("single")
    with sqlite3.connect(signer_dir / "ledger.sqlite") as db:
        # issued 400 days ago: its 12 months are over
        db.execute("UPDATE credentials SET iat = iat - 400 * 86400, exp = exp - 400 * 86400")
    db.close()
    r = runner.invoke(app, ["issue", "--signer", str(signer_dir), *PERSON, "--out", "-"])
    assert r.exit_code == 0, r.output
    said = " ".join(r.stderr.split())
    assert r.stdout.strip() != first and "written again" not in said
    assert f"{old.uvci}, issued for this record by a single issue on" in said
    assert "(checkpoints refuse it): a new credential is signed" in said
    with Ledger(signer_dir / "ledger.sqlite") as ledger:
        new = [e for e in ledger.entries("single") if e.uvci != old.uvci]
    assert len(new) == 1 and r.stdout.strip() == new[0].hc1 and new[0].exp > new[0].iat
    claim = _claims(signer_dir / "ledger.sqlite")[citizen_key("091190012345")]
    assert (claim.uvci, claim.replaces) == (new[0].uvci, old.uvci)
    r = runner.invoke(app, ["issue", "--signer", str(signer_dir), "--reprint",
                            "091190012345", "--out", "-"])
    assert r.exit_code == 0 and r.stdout.strip() == new[0].hc1, r.output


def test_a_batch_run_again_names_its_credentials_that_expired(runner, tmp_path):
    """A batch's command run again after its credentials expired signs nothing (the
    register holds their citizens) and restores their images as issued: it says which have
    expired and how to sign new ones, instead of handing back, unsaid, QR codes every
    checkpoint refuses."""
    import sqlite3

    signer_dir = _signer_copy(tmp_path)
    src = write_csv(tmp_path / "r.csv", [PERSON_CSV, *good_rows(2, seed=60)])
    cmd = ["issue", "--signer", str(signer_dir), "--from", str(src), "--out",
           str(tmp_path / "out")]
    r = runner.invoke(app, cmd)
    assert r.exit_code == 0 and "3 issued" in r.stderr, r.output
    r = runner.invoke(app, cmd)
    assert r.exit_code == 0 and "expired" not in r.stderr, r.output
    uvcis = _uvcis(tmp_path / "out")
    with sqlite3.connect(tmp_path / "out" / "ledger.sqlite") as db:  # 400 days on
        db.execute("UPDATE credentials SET iat = iat - 400 * 86400, exp = exp - 400 * 86400 "
                   "WHERE row IN (1, 3)")
    db.close()
    (tmp_path / "out" / "qr" / "0000001.png").unlink()
    r = runner.invoke(app, cmd)
    assert r.exit_code == 0, r.output
    said = " ".join(r.stderr.split())
    assert "0 issued" in said and "3 already issued" in said
    assert "2 credentials of this batch have expired" in said
    assert "row 1 (spreadsheet row 2), row 3 (spreadsheet row 4))" in said
    assert "every checkpoint refuses them" in said and "--reissue" in said
    assert (tmp_path / "out" / "qr" / "0000001.png").exists()
    # the way out it names: her single issue with --reissue signs a new credential
    r = runner.invoke(app, ["issue", "--signer", str(signer_dir), *PERSON, "--out", "-",
                            "--reissue"])
    assert r.exit_code == 0 and f"reissued: {uvcis[1]}" in r.stderr, r.output


def test_single_issue_for_another_person_or_a_later_dose(runner, tmp_path):
    signer_dir = _signer_copy(tmp_path)
    r = runner.invoke(app, ["issue", "--signer", str(signer_dir), *PERSON, "--out", "-"])
    assert r.exit_code == 0, r.output
    first = r.stdout.strip()
    other = [*PERSON]
    other[1] = "Nguyễn Thị Ánh Hương"
    r = runner.invoke(app, ["issue", "--signer", str(signer_dir), *other, "--out", "-"])
    assert r.exit_code == 2 and "another full name" in r.stderr and r.stdout == ""
    later = [*PERSON[:-4], "--dose", "3/3", "--date", "2021-12-20"]
    r = runner.invoke(app, ["issue", "--signer", str(signer_dir), *later, "--out", "-"])
    assert r.exit_code == 0, r.output
    assert r.stdout.strip() != first and "stays valid unless revoked" in r.stderr
    r = runner.invoke(app, ["issue", "--signer", str(signer_dir), *PERSON, "--out", "-"])
    assert r.exit_code == 2 and "dose 3/3 on 2021-12-20" in r.stderr


def test_reissue_is_for_single_issues_only(runner, tmp_path):
    src = write_csv(tmp_path / "r.csv", good_rows(1, seed=57))
    r = runner.invoke(app, ["issue", "--signer", str(_signer_copy(tmp_path)), "--from",
                            str(src), "--out", str(tmp_path / "out"), "--reissue"])
    assert r.exit_code == 2 and "--reissue is for a single issue" in r.stderr


def test_population_batches_claim_in_the_register(runner, tmp_path):
    signer_dir = _signer_copy(tmp_path)
    rows = good_rows(4, seed=58)
    vac = write_csv(tmp_path / "vac.csv", rows)
    pop = tmp_path / "pop.csv"
    with pop.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id_number", "full_name", "sex", "dob", "commune_code"])
        for row in rows:
            w.writerow([row[3], row[0], row[1], row[2], "31078"])
    for out in ("p1", "p2"):
        r = runner.invoke(app, ["issue", "--signer", str(signer_dir), "--from", str(vac),
                                "--population", str(pop), "--out", str(tmp_path / out)])
        assert r.exit_code == 0, r.output
    assert len(_uvcis(tmp_path / "p1")) == 4 and _uvcis(tmp_path / "p2") == {}
    claims = _claims(signer_dir / "ledger.sqlite")
    assert {c.place for c in claims.values()} == {str((tmp_path / "p1").resolve())}


def test_the_register_is_in_the_backup(runner, tmp_path):
    signer_dir = _signer_copy(tmp_path)
    src = write_csv(tmp_path / "r.csv", good_rows(5, seed=59))
    r = runner.invoke(app, ["issue", "--signer", str(signer_dir), "--from", str(src), "--out",
                            str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["backup", str(signer_dir), "--out", str(tmp_path / "b.tar")])
    assert r.exit_code == 0, r.output
    with tarfile.open(tmp_path / "b.tar") as tar:
        tar.extractall(tmp_path / "restored", filter="data")
    restored = tmp_path / "restored" / "signer" / "ledger.sqlite"
    assert not Path(f"{restored}-wal").exists()
    assert _claims(restored) == _claims(signer_dir / "ledger.sqlite")
    assert len(_claims(restored)) == 5
    # restored, it goes on: the same CSV into a new OUT_DIR supersedes every row
    r = runner.invoke(app, ["issue", "--signer", str(tmp_path / "restored" / "signer"),
                            "--from", str(src), "--out", str(tmp_path / "out2")])
    assert r.exit_code == 0 and "0 issued" in r.stderr and "5 superseded" in r.stderr


@pytest.mark.parametrize("kind", [Ledger, Register])
def test_a_new_ledger_is_private_whatever_the_umask(tmp_path, kind):
    """A ledger holds names, dates of birth and credentials (a signer directory's, the
    office register, also sex and vaccination data), and its directory may be open to
    others (the example signers, a copied or hand-made signer directory, an OUT_DIR the
    user made: warned about, not changed): it was made 0644 under the usual umask. It and
    the -wal/-shm files SQLite makes beside it are 0600; a ledger that exists keeps its
    mode."""
    path = tmp_path / "ledger.sqlite"
    old = os.umask(0o022)
    try:
        with kind(path) as ledger:
            ledger.set_meta("k", "v")
            modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
        os.chmod(path, 0o640)
        with kind(path) as ledger:
            assert ledger.get_meta("k") == "v"
    finally:
        os.umask(old)
    assert modes["ledger.sqlite"] == 0o600
    assert {modes.get("ledger.sqlite-wal"), modes.get("ledger.sqlite-shm")} == {0o600}
    assert path.stat().st_mode & 0o777 == 0o640


def test_a_batch_from_before_the_register_enters_it_when_run_again(runner, tmp_path):
    """A batch an older vaxqr issued (its OUT_DIR's ledger, no claims in the office's
    register: no ledger then kept ID numbers) was unknown to the register: --reprint did not
    find its citizens, and another batch signed them again for the same dose. Running its
    command again (same CSV, same --out) reads their ID numbers from their rows and enters
    them, signing nothing; a citizen signed twice meanwhile is named."""
    signer_dir = _signer_copy(tmp_path)
    rows = good_rows(4, seed=59)
    src = write_csv(tmp_path / "old.csv", rows)
    old = issue.issue_batch(load_signer(signer_dir, b"vaxqr-demo"), src, tmp_path / "old",
                            workers=1, register=None)  # what a vaxqr before the register did
    assert old.issued == 4
    issued = _uvcis(tmp_path / "old")
    reprint = ["issue", "--signer", str(signer_dir), "--reprint", rows[1][3], "--out", "-"]
    r = runner.invoke(app, reprint)
    assert r.exit_code == 3 and "register holds no credential yet" in r.stderr
    assert "run that batch's command again" in " ".join(r.stderr.split())
    dup = write_csv(tmp_path / "dup.csv", [rows[3]])  # signed again meanwhile: the gap
    r = runner.invoke(app, ["issue", "--signer", str(signer_dir), "--from", str(dup),
                            "--out", str(tmp_path / "dup")])
    assert r.exit_code == 0 and "1 issued" in r.stderr, r.output
    twice = _uvcis(tmp_path / "dup")[1]
    r = runner.invoke(app, reprint)
    assert r.exit_code == 2 and "no credential for ID number" in r.stderr
    assert "run that batch's command again" in " ".join(r.stderr.split())

    again = ["issue", "--signer", str(signer_dir), "--from", str(src), "--out",
             str(tmp_path / "old")]
    r = runner.invoke(app, again)
    assert r.exit_code == 0, r.output
    said = " ".join(r.stderr.split())
    assert "0 issued" in said and "4 already issued" in said
    assert "3 credentials issued here before the office's register (an older vaxqr) now in " \
        "it" in said
    assert (f"row 4 (spreadsheet row 5): {issued[4]} (issued before the office's register) "
            f"and {twice}") in said
    assert "revoke one" in said
    r = runner.invoke(app, reprint)
    assert r.exit_code == 0 and r.stdout.strip() in _ledger_hc1(tmp_path / "old"), r.output
    claim = _claims(signer_dir / "ledger.sqlite")[citizen_key(rows[1][3])]
    assert (claim.uvci, claim.source, claim.row) == (issued[2], "old.csv", 2)
    # the register now refuses them to another batch, and the backfill is done once
    r = runner.invoke(app, ["issue", "--signer", str(signer_dir), "--from",
                            str(write_csv(tmp_path / "new.csv", [rows[0]])), "--out",
                            str(tmp_path / "new")])
    assert r.exit_code == 0 and "0 issued" in r.stderr and "1 superseded" in r.stderr
    r = runner.invoke(app, again)
    assert r.exit_code == 0 and "before the office's register" not in r.stderr, r.output


def test_a_citizen_with_two_credentials_from_before_the_register_is_entered_once(tmp_path):
    """Dose 1 and dose 2 of one citizen both issued before the register (the batch resumed
    with her dose 2 row added to the CSV, each run signing the newest dose): the run with
    the register claims her once, for dose 2, and counts one citizen entered, not two; so
    when her two rows are entered in two steps (two chunks of a long CSV)."""
    signer = load_signer(_signer_copy(tmp_path), b"vaxqr-demo")
    dose1 = [*PERSON_CSV[:4], "1", "2", "2021-09-01", *PERSON_CSV[7:]]
    others = good_rows(2, seed=61)
    src = tmp_path / "old.csv"
    write_csv(src, [*others, dose1])
    out = tmp_path / "old"
    assert issue.issue_batch(signer, src, out, workers=1, today=TODAY).issued == 3
    write_csv(src, [*others, dose1, PERSON_CSV])  # her dose 2 added: the resumed run signs it
    res = issue.issue_batch(signer, src, out, workers=1, today=TODAY)
    assert res.issued == 1 and res.already == 3
    issued = _uvcis(out)
    office = tmp_path / "office.sqlite"
    res = issue.issue_batch(signer, src, out, workers=1, today=TODAY, register=office)
    assert res.issued == 0 and res.already == 4
    assert res.registered == 3  # three citizens, not four credentials
    claims = _claims(office)
    claim = claims[citizen_key(PERSON_CSV[3])]
    assert (claim.uvci, claim.dose, claim.row, claim.replaces) == (issued[4], 2, 4, issued[3])
    assert len(claims) == 3

    records = [issue.parse_record(n, dict(zip(HEADER, row, strict=True)), today=TODAY)
               for n, row in ((3, dose1), (4, PERSON_CSV))]
    result = issue.BatchResult()
    place = str(out.resolve())
    with Register(tmp_path / "office2.sqlite") as reg, Ledger(out / "ledger.sqlite") as ledger:
        for rec in records:  # her rows in two chunks
            issue._backfill(reg, ledger, [(rec, issued[rec.row])], place, "old.csv", result)
    assert result.registered == 1
    assert _claims(tmp_path / "office2.sqlite")[citizen_key(PERSON_CSV[3])].uvci == issued[4]


def _ledger_hc1(out):
    with Ledger(out / "ledger.sqlite") as ledger:
        return {e.hc1 for e in ledger.entries()}


def test_a_single_issue_from_before_the_register_enters_it_when_issued_again(runner,
                                                                             tmp_path):
    """An older vaxqr's single issue left a credential in SIGNER/ledger.sqlite and no claim
    (no ID number was kept): the same record issued again gives that credential back, found
    by the record's digest, and enters its citizen, instead of signing a second one; an
    expired one is replaced by a new one."""
    import sqlite3

    signer_dir = _signer_copy(tmp_path)
    r = runner.invoke(app, ["issue", "--signer", str(signer_dir), *PERSON, "--out", "-"])
    assert r.exit_code == 0, r.output
    first = r.stdout
    db = sqlite3.connect(signer_dir / "ledger.sqlite")
    with db:
        db.execute("DROP TABLE citizens")  # what a vaxqr before the register left
    reprint = ["issue", "--signer", str(signer_dir), "--reprint", "091190012345", "--out", "-"]
    r = runner.invoke(app, reprint)
    assert r.exit_code == 2 and "no credential for ID number" in r.stderr
    assert "issue the same record again" in " ".join(r.stderr.split())
    r = runner.invoke(app, ["issue", "--signer", str(signer_dir), *PERSON, "--out", "-"])
    assert r.exit_code == 0, r.output
    assert r.stdout == first and "before the office's register" in " ".join(r.stderr.split())
    with Ledger(signer_dir / "ledger.sqlite") as ledger:
        assert ledger.count("single") == 1  # nothing new signed
    r = runner.invoke(app, reprint)
    assert r.exit_code == 0 and r.stdout == first, r.output

    with db:
        db.execute("DROP TABLE citizens")
        db.execute("UPDATE credentials SET exp = 1")  # long expired
    db.close()
    r = runner.invoke(app, ["issue", "--signer", str(signer_dir), *PERSON, "--out", "-"])
    assert r.exit_code == 0, r.output
    assert r.stdout != first and "(checkpoints refuse it): a new credential is signed" in r.stderr
    with Ledger(signer_dir / "ledger.sqlite") as ledger:
        assert ledger.count("single") == 2


def test_reissuing_over_an_expired_credential_does_not_call_it_valid(runner, tmp_path):
    """--reissue over a single issue's credential said the old one "stays valid unless
    revoked" even when it had expired: the note says it has expired."""
    import sqlite3

    signer_dir = _signer_copy(tmp_path)
    r = runner.invoke(app, ["issue", "--signer", str(signer_dir), *PERSON, "--out", "-"])
    assert r.exit_code == 0, r.output
    db = sqlite3.connect(signer_dir / "ledger.sqlite")
    with db:
        db.execute("UPDATE credentials SET exp = 1")  # long expired
    db.close()
    r = runner.invoke(app, ["issue", "--signer", str(signer_dir), *PERSON, "--out", "-",
                            "--reissue"])
    assert r.exit_code == 0, r.output
    said = " ".join(r.stderr.split())
    assert "has expired (checkpoints refuse it)" in said and "stays valid" not in said


def test_opening_a_ledger_waits_out_another_process_setting_it_up(monkeypatch):
    """Two batches of one office starting together both make the new office register's
    schema; SQLite answered one "database is locked" at once (no busy wait), and its batch
    stopped: "the ledger … is in use by another vaxqr process", exit 3 (seen 3 times in 10
    runs of the test above on a loaded machine). The set-up steps are tried again."""
    import sqlite3

    from vaxqr import ledger

    calls = []

    def step():
        calls.append(1)
        if len(calls) < 3:
            raise sqlite3.OperationalError("database is locked")

    ledger._retry_busy(step)
    assert len(calls) == 3
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        ledger._retry_busy(lambda: (_ for _ in ()).throw(
            sqlite3.OperationalError("no such table: x")))  # not a busy database: at once
    monkeypatch.setattr(ledger, "OPEN_WAIT", 0.05)
    with pytest.raises(sqlite3.OperationalError, match="locked"):  # not for ever
        ledger._retry_busy(lambda: (_ for _ in ()).throw(
            sqlite3.OperationalError("database is locked")))


@pytest.mark.parametrize("how", ["moved", "copied"])
def test_a_killed_batch_resumed_elsewhere_signs_its_claims(tmp_path, how):
    """SIGKILL between the first chunk's claims and its ledger commit, then the OUT_DIR
    moved (a new computer, another mount point) and the batch run again there: the claims
    name the old place, and the run again refused those citizens as "already issued" under
    UVCIs never signed (86 of 150 in a review). The ledger now records the places it ran
    at: the claims are its own, signed under the claimed UVCIs. A copy resumed beside the
    original (copied, both run again): each citizen is signed once, by whichever ran
    first; the other finds the claim another batch's."""
    import random

    chaos = scriptload.chaos_issue()
    signer_dir = _signer_copy(tmp_path)
    rng = random.Random(11)
    csv_path = tmp_path / "records.csv"
    expect = chaos.make_csv(csv_path, 200, rng)
    digests = {r: chaos._digest(f) for r, f in expect.valid.items()}
    batch = chaos.Batch(csv_path, tmp_path / "out", 1, expect, digests, signer_dir)
    proc = chaos.start(batch, "first-chunk")
    assert not chaos._finish(proc)
    assert proc.returncode == -signal.SIGKILL, chaos._stderr(proc)
    claimed = {c.row: c.uvci for c in _claims(signer_dir / "ledger.sqlite").values()}
    assert claimed

    moved = chaos.Batch(csv_path, tmp_path / "elsewhere" / "out", 1, expect, digests,
                        signer_dir)
    (tmp_path / "elsewhere").mkdir()
    (shutil.copytree if how == "copied" else shutil.move)(batch.out, moved.out)
    proc = chaos.start(moved)
    assert not chaos._finish(proc)
    assert proc.returncode == 0, chaos._stderr(proc)
    issued = _uvcis(moved.out)
    assert all(issued[row] == uvci for row, uvci in claimed.items())  # the claimed UVCIs
    assert set(issued) == set(expect.valid)
    assert not (moved.out / "rejects.csv").exists() or not any(
        "already issued" in line
        for line in (moved.out / "rejects.csv").read_text(encoding="utf-8-sig").splitlines())
    if how == "copied":  # the original, run again too: nothing signed twice
        proc = chaos.start(batch)
        assert not chaos._finish(proc)
        assert proc.returncode == 0, chaos._stderr(proc)
        # every citizen was signed by the copy: none again here, the claimed ones included
        assert _uvcis(batch.out) == {}
    assert len(_claims(signer_dir / "ledger.sqlite")) == len(expect.valid)


def test_held_by_office_counts_only_the_registers_superseded_rows(signer, tmp_path, office):
    """The summary tells rows the register holds (another batch signed the citizen) from
    rows a later dose in the same CSV supersedes: both are in ``superseded``."""
    from vaxqr.issue import held_by_office

    rows = good_rows(2, seed=91)
    assert _batch(signer, rows, tmp_path, "a", office).issued == 2
    dose1 = [*rows[1][:4], "1", "2", "2021-06-01", *rows[1][7:]]  # row 2's earlier dose
    res = _batch(signer, [rows[0], dose1, rows[1]], tmp_path, "b", office)
    assert len(res.superseded) == 3, res.superseded  # 1 and 3: the register; 2: by row 3
    assert held_by_office(res.superseded) == 2, res.superseded
