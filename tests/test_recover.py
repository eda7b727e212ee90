"""A `vaxqr certs issue` killed part way (kill -9, a power cut) is finished by running it
again: no commune left without its signer directory, no office register (the citizens it
issued to) left in a hidden directory, no certificate in the CA's state whose key is gone."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from vaxqr import cadir, certs, keys

from hierarchy import PW, T0, Hierarchy

_KILLED = r"""
import os, sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from hierarchy import PW, T0
from vaxqr import certs

target, ca, point = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
seen = []
real_rename, real_replace = os.rename, os.replace

def rename(src, dst, *a, **k):  # each move of the signer directory or of what it keeps
    if target.name in str(src) + str(dst):
        seen.append(1)
        if point == f"rename-{{len(seen)}}":
            os._exit(137)
    return real_rename(src, dst, *a, **k)

def replace(src, dst, *a, **k):
    if point == "state" and str(dst).endswith("state.json"):
        os._exit(137)
    return real_replace(src, dst, *a, **k)

os.rename, os.replace = rename, replace
certs.issue_signer(ca, ca_password=PW, commune_code="31078", name="UBND xã Dương Tơ",
                   out_dir=target, password=PW, force=True, now=T0)
sys.exit(3)  # the kill point was never reached
"""


def _office(signer: Path) -> None:
    """An office that has issued (its register, the last record still in the -wal) and
    keeps the province's trust files in trust/."""
    conn = sqlite3.connect(signer / "ledger.sqlite")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("CREATE TABLE citizens (uvci TEXT)")
    conn.execute("INSERT INTO citizens VALUES ('URN:UVCI:01:VN:091/31078/A#B')")
    conn.commit()
    (signer / "trust").mkdir(exist_ok=True)
    (signer / "trust" / "crl.pem").write_bytes(b"the province's CRL")
    conn.close()  # (folds the WAL in; what matters is that both files move)


def _dscs(h: Hierarchy) -> list[cadir.IssuedCert]:
    return [r for r in cadir.open_ca(h.ca).issued if r.code == "31078"]


@pytest.mark.parametrize("point", ["state", *(f"rename-{n}" for n in range(1, 5))])
def test_a_renewal_killed_anywhere_is_finished_by_running_it_again(h: Hierarchy,
                                                                   point: str) -> None:
    """Killed between the CA's state.json recording the new certificate and the new
    directory's rename into place, the renewal left the commune's directory in hidden
    `.s2.old-…`/`.s2.new-…` siblings: the next run made a new directory without the
    register (the next batch signed its citizens again), and the CA listed a certificate
    whose key was in no directory."""
    _office(h.s2)
    tests = str(Path(__file__).parent)
    r = subprocess.run([sys.executable, "-c", _KILLED.format(tests=tests), str(h.s2),
                        str(h.ca), point], capture_output=True, timeout=120)
    assert r.returncode == 137, r.stderr.decode()
    res = certs.issue_signer(h.ca, ca_password=PW, commune_code="31078",
                             name="UBND xã Dương Tơ", out_dir=h.s2, password=PW, force=True,
                             now=T0)
    dscs = _dscs(h)
    assert len(dscs) == 2  # the first certificate and one renewal: none in no directory
    assert res.record.serial == dscs[-1].serial
    assert h.dsc(h.s2).serial_number == res.record.serial
    key = keys.load_private_key(h.s2 / "signer.key", PW)
    assert key.public_key() == res.record.certificate.public_key()
    conn = sqlite3.connect(h.s2 / "ledger.sqlite")
    assert conn.execute("SELECT uvci FROM citizens").fetchall() == [
        ("URN:UVCI:01:VN:091/31078/A#B",)]
    conn.close()
    assert (h.s2 / "trust" / "crl.pem").read_bytes() == b"the province's CRL"
    assert [n for n in os.listdir(h.tmp) if n.startswith(".")] == []
    if point != "state":
        assert any("interrupted vaxqr certs issue" in w for w in res.warnings)


def _killed(h: Hierarchy, point: str, *, trust: bool = True) -> list[str]:
    """A renewal of h.s2 killed at ``point``; the hidden directories it left. ``trust``:
    the office has a trust/ (else none)."""
    _office(h.s2)
    if not trust:
        shutil.rmtree(h.s2 / "trust")
    tests = str(Path(__file__).parent)
    r = subprocess.run([sys.executable, "-c", _KILLED.format(tests=tests), str(h.s2),
                        str(h.ca), point], capture_output=True, timeout=120)
    assert r.returncode == 137, r.stderr.decode()
    left = sorted(n for n in os.listdir(h.tmp) if n.startswith(".s2."))
    assert left
    return left


def test_a_wrong_ca_password_finishes_nothing(h: Hierarchy) -> None:
    """issue_signer's promise, "a wrong CA password ... writes nothing", held for the
    interrupted run's leftovers too: they were moved into place (or removed) and the
    finished signer returned as issued before the CA password was ever checked."""
    left = _killed(h, "rename-2")
    with pytest.raises(keys.KeyCertError, match="wrong password"):
        certs.issue_signer(h.ca, ca_password=b"not the CA password", commune_code="31078",
                           name="UBND xã Dương Tơ", out_dir=h.s2, password=PW, force=True,
                           now=T0)
    assert sorted(n for n in os.listdir(h.tmp) if n.startswith(".s2.")) == left


def test_leftovers_through_another_users_link_are_not_touched(h: Hierarchy,
                                                              tmp_path: Path) -> None:
    """The library refused a signer directory reached through another user's symbolic link
    only after it had finished (renamed, removed) what an interrupted run left there."""
    if os.geteuid() != 0:
        pytest.skip("making a link of another user's needs root (lchown)")
    left = _killed(h, "rename-2")
    link = tmp_path / "theirs"
    link.symlink_to(h.tmp)
    os.lchown(link, 65534, 65534)
    with pytest.raises(cadir.StorageError, match="symbolic link made by another user"):
        certs.issue_signer(h.ca, ca_password=PW, commune_code="31078",
                           name="UBND xã Dương Tơ", out_dir=link / "s2", password=PW,
                           force=True, now=T0)
    assert sorted(n for n in os.listdir(h.tmp) if n.startswith(".s2.")) == left


def test_a_directory_another_user_left_is_not_taken_for_a_run(h: Hierarchy) -> None:
    """A hidden ``.NAME.new-PID-…`` of another user's (anyone who may write beside the
    signer directory can make one: a certificate is public, the trust list has it) was
    moved into place as the commune's signer directory, its key the other user's, the
    directory theirs to change later, and handed back as the certificate issued."""
    if os.geteuid() != 0:
        pytest.skip("a directory of another user's needs root (chown)")
    pid = 4_000_000
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    planted = h.tmp / f".s3.new-{pid}-deadbeef"
    planted.mkdir()
    for name in ("signer.crt", "chain.pem", "signer.json"):
        (planted / name).write_bytes((h.s2 / name).read_bytes())
    (planted / "signer.key").write_bytes(b"a key of theirs")
    for p in (planted, *planted.iterdir()):
        os.chown(p, 65534, 65534)
    res = certs.issue_signer(h.ca, ca_password=PW, commune_code="31078",
                             name="UBND xã Dương Tơ", out_dir=h.tmp / "s3", password=PW, now=T0)
    assert res.record.serial != h.dsc(h.s2).serial_number  # a new certificate, not theirs
    assert os.stat(h.tmp / "s3").st_uid == os.geteuid()
    keys.load_private_key(h.tmp / "s3" / "signer.key", PW)
    assert planted.is_dir()  # not this user's to remove either


def test_the_run_again_with_another_password_is_told_which_opens_the_key(
        h: Hierarchy) -> None:
    """Run again with another commune password, the finished signer came back as issued
    with no word that its key has the interrupted run's password, not the one just given
    (the one the clerk would note down)."""
    _killed(h, "rename-1")
    res = certs.issue_signer(h.ca, ca_password=PW, commune_code="31078",
                             name="UBND xã Dương Tơ", out_dir=h.s2,
                             password=b"another password, 2026", force=True, now=T0)
    assert any("does not open" in w and "interrupted run" in w for w in res.warnings)
    keys.load_private_key(h.s2 / "signer.key", PW)


def test_a_finished_signer_whose_key_is_not_its_certificates_is_refused(
        h: Hierarchy) -> None:
    """The finished directory's key was handed back unchecked against its certificate."""
    left = _killed(h, "rename-1")
    new = h.tmp / next(n for n in left if ".new-" in n)
    (new / "signer.key").write_bytes((h.s1 / "signer.key").read_bytes())  # another key
    with pytest.raises(keys.KeyCertError, match="does not belong to"):
        certs.issue_signer(h.ca, ca_password=PW, commune_code="31078",
                           name="UBND xã Dương Tơ", out_dir=h.s2, password=PW, force=True,
                           now=T0)


def test_a_trust_folder_left_aside_wins_over_the_prepared_one(h: Hierarchy) -> None:
    """A renewal of a directory without trust/ prepares the CA's CRL in the new one's
    trust/; a trust/ the clerk put in the old directory meanwhile is the office's own. Killed
    once the old directory was moved aside, the run again put the new directory in place
    with the prepared trust/ and left the office's in the hidden `.s2.old-…` for good (it
    is not removed while it holds what a signer keeps), on every later run too."""
    left = _killed(h, "rename-2", trust=False)  # the old directory aside, nothing moved
    old = h.tmp / next(n for n in left if ".old-" in n)
    new = h.tmp / next(n for n in left if ".new-" in n)
    assert (new / "trust" / "crl.pem").is_file() and not (old / "trust").exists()
    (old / "trust").mkdir()
    (old / "trust" / "trustlist.json").write_text("the province's list")
    res = certs.issue_signer(h.ca, ca_password=PW, commune_code="31078",
                             name="UBND xã Dương Tơ", out_dir=h.s2, password=PW, force=True,
                             now=T0)
    assert os.listdir(h.s2 / "trust") == ["trustlist.json"]
    assert res.record.certificate == h.dsc(h.s2)
    assert [n for n in os.listdir(h.tmp) if n.startswith(".")] == []


def test_an_interrupted_fresh_issue_finished_keeps_nothing_it_did_not_have(
        h: Hierarchy) -> None:
    """A new signer directory holds the CA's CRL in trust/: an interrupted first issue,
    finished by the run again, was said to come "with the office ledger and trust/ of the
    directory it renews", and trust/ was listed as kept (`certs issue` printed "kept
    …/trust: the province's trust list and CRLs"), though nothing was renewed."""
    target = h.tmp / "s3"
    tests = str(Path(__file__).parent)
    r = subprocess.run([sys.executable, "-c", _KILLED.format(tests=tests), str(target),
                        str(h.ca), "rename-1"], capture_output=True, timeout=120)
    assert r.returncode == 137, r.stderr.decode()
    assert not target.exists()
    res = certs.issue_signer(h.ca, ca_password=PW, commune_code="31078",
                             name="UBND xã Dương Tơ", out_dir=target, password=PW, now=T0)
    assert (target / "trust" / "crl.pem").is_file()
    assert any("interrupted vaxqr certs issue" in w for w in res.warnings), res.warnings
    assert not any("directory it renews" in w for w in res.warnings), res.warnings
    assert res.kept == ()


@pytest.mark.parametrize("point", ["rename-2", "rename-3", "state"])
def test_a_renewal_of_a_directory_without_trust_finished_keeps_only_what_it_had(
        h: Hierarchy, point: str) -> None:
    """A renewal of a directory with no trust/ prepares the CA's CRL in the new one's
    trust/. Killed once the old directory was moved aside (or before), and finished by the
    run again, it listed that new trust/ as kept from the directory it renews (`certs
    issue` printed "kept …/trust: the province's trust list and CRLs") and said it came
    "with the office ledger and trust/" of the old one. Only the ledger was kept."""
    _killed(h, point, trust=False)
    res = certs.issue_signer(h.ca, ca_password=PW, commune_code="31078",
                             name="UBND xã Dương Tơ", out_dir=h.s2, password=PW, force=True,
                             now=T0)
    assert (h.s2 / "trust" / "crl.pem").is_file()  # the CA's CRL, new
    assert res.kept == (h.s2 / "ledger.sqlite",)
    if point != "state":
        assert any("with the office ledger of the directory it renews" in w
                   for w in res.warnings), res.warnings
    assert not any("trust/ of the directory it renews" in w for w in res.warnings)


def _host_of(left: str) -> str | None:
    return left.rpartition("@")[2] if "@" in left else None


def test_what_a_run_on_another_computer_left_is_not_finished_here(h: Hierarchy) -> None:
    """A signer folder shared between two computers (a network drive): a run on the other
    one, judged dead because its pid ran no process here, had its directories moved into
    place or removed under it. The run's computer is in the names it leaves now; another
    computer's are refused, naming it and what to do, and nothing is touched."""
    from vaxqr import cadir

    left = _killed(h, "rename-2")
    here = cadir.this_host()
    assert all(_host_of(n) == here for n in left), left
    for n in left:  # as a run on another computer left them
        os.rename(h.tmp / n, h.tmp / n.replace(f"@{here}", "@checkpoint-pc-2"))
    moved = sorted(n for n in os.listdir(h.tmp) if n.startswith(".s2."))
    with pytest.raises(cadir.StorageError, match="on the computer checkpoint-pc-2") as info:
        certs.issue_signer(h.ca, ca_password=PW, commune_code="31078",
                           name="UBND xã Dương Tơ", out_dir=h.s2, password=PW, force=True,
                           now=T0)
    assert "run the same vaxqr certs issue on checkpoint-pc-2" in (info.value.hint or "")
    assert sorted(n for n in os.listdir(h.tmp) if n.startswith(".s2.")) == moved
    assert not h.s2.exists()
    # what the hint says to do when that computer cannot: the name without its host
    for n in moved:
        os.rename(h.tmp / n, h.tmp / n.rpartition("@")[0])
    res = certs.issue_signer(h.ca, ca_password=PW, commune_code="31078",
                             name="UBND xã Dương Tơ", out_dir=h.s2, password=PW, force=True,
                             now=T0)
    assert h.dsc(h.s2).serial_number == res.record.serial
    assert [n for n in os.listdir(h.tmp) if n.startswith(".")] == []


def test_the_run_again_with_other_options_says_they_were_not_used(h: Hierarchy) -> None:
    """The run again finishes the interrupted run's certificate, which the CA's state
    records, as it was: its --name, --days and --rsa were silently ignored, and the clerk
    took the certificate for the one just asked for. A warning names each difference and
    how to get the certificate asked for (the same command with --force: a renewal)."""
    _killed(h, "rename-2")
    res = certs.issue_signer(h.ca, ca_password=PW, commune_code="31078",
                             name="UBND xã Dương Tơ Mới", out_dir=h.s2, password=PW,
                             force=True, now=T0, days=400, key_type="rsa")
    assert res.record.name == "UBND xã Dương Tơ"  # the interrupted run's, recorded
    said = [w for w in res.warnings if "not used" in w]
    assert len(said) == 1, res.warnings
    for part in ("--name 'UBND xã Dương Tơ Mới'", "--days 400", "--rsa", "--force"):
        assert part in said[0], said[0]
    (h.s2 / "ledger.sqlite").unlink()  # (_killed makes the office again)
    _killed(h, "rename-2")  # the same options again: nothing said
    res = certs.issue_signer(h.ca, ca_password=PW, commune_code="31078",
                             name="UBND xã Dương Tơ", out_dir=h.s2, password=PW, force=True,
                             now=T0)
    assert not any("not used" in w for w in res.warnings), res.warnings


@pytest.mark.parametrize("point", ["rename-2", "rename-3", "rename-4"])
def test_a_finished_renewal_reports_the_office_ledger_it_kept(h: Hierarchy, point: str) -> None:
    """Killed after the renewal had moved the office ledger (rename-3) and its trust/
    (rename-4) into the new directory, the run again still reports the ledger as kept (the
    only place a ledger comes from), and trust/ when it moved it itself."""
    _killed(h, point)
    res = certs.issue_signer(h.ca, ca_password=PW, commune_code="31078",
                             name="UBND xã Dương Tơ", out_dir=h.s2, password=PW, force=True,
                             now=T0)
    assert (h.s2 / "trust" / "crl.pem").read_bytes() == b"the province's CRL"
    assert h.s2 / "ledger.sqlite" in res.kept
    assert (h.s2 / "trust" in res.kept) == (point != "rename-4")
    assert any("with the office ledger" in w for w in res.warnings), res.warnings
