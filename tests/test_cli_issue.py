"""`vaxqr issue` through the CLI: exit codes, stdout (data) and stderr (people) separately."""

import csv
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from mounts import mounted_tmpfs
from typer.testing import CliRunner

from vaxqr.certinfo import load_certificates
from vaxqr.cli import app

from records import good_rows, write_csv

ROOT = Path(__file__).resolve().parent.parent
SIGNER = ROOT / "keys" / "examples" / "communes" / "31078"
CA = ROOT / "keys" / "examples" / "ca" / "ca.crt"
TRUSTLIST = ROOT / "keys" / "examples" / "trustlist.json"
EXAMPLE_CSV = ROOT / "docs" / "examples" / "records.csv"
PERSON = ["--name", "Nguyễn Thị Ánh Hồng", "--sex", "Nữ", "--dob", "17/05/1990",
          "--id", "091190012345", "--vaccine", "pfizer", "--dose", "2/2",
          "--date", "2021-10-01"]


@pytest.fixture
def runner(monkeypatch, tmp_path):
    os.chmod(SIGNER / "signer.key", 0o600)
    monkeypatch.setenv("VAXQR_PASSWORD", "vaxqr-demo")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    return CliRunner()


def _signer_copy(tmp_path):
    import shutil

    dst = tmp_path / "signer"
    shutil.copytree(SIGNER, dst, ignore=shutil.ignore_patterns("ledger.sqlite*"))
    os.chmod(dst / "signer.key", 0o600)
    return dst


def test_single_to_stdout_then_verify(runner, tmp_path):
    signer = _signer_copy(tmp_path)
    r = runner.invoke(app, ["issue", "--signer", str(signer), *PERSON, "--out", "-"])
    assert r.exit_code == 0, r.output
    hc1 = r.stdout.strip()
    assert hc1.startswith("HC1:") and "\n" not in hc1
    assert "DEMO ONLY" in r.stderr
    # the UVCI, which the clerk needs to find or revoke the credential, is said on stderr
    assert "issued URN:UVCI:01:VN:" in " ".join(r.stderr.split())
    v = runner.invoke(app, ["verify", hc1, "--trust", str(CA), "--trust", str(TRUSTLIST)])
    assert v.exit_code == 0, v.output
    assert "VALID" in v.stdout and "Nguyễn Thị Ánh Hồng" in v.stdout
    assert (signer / "ledger.sqlite").exists()


@pytest.mark.parametrize("suffix", [".png", ".svg"])
def test_single_to_file_with_card_and_no_overwrite(runner, tmp_path, suffix):
    signer = _signer_copy(tmp_path)
    out = tmp_path / f"hong{suffix}"
    args = ["issue", "--signer", str(signer), *PERSON, "--out", str(out), "--card", "png"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert out.stat().st_size > 0
    card = tmp_path / "hong-card.png"
    assert card.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    before = out.read_bytes()
    again = runner.invoke(app, args)
    assert again.exit_code == 3 and "already exists" in again.stderr
    assert out.read_bytes() == before
    assert runner.invoke(app, [*args, "--force"]).exit_code == 0
    if suffix == ".png":
        v = runner.invoke(app, ["verify", str(out), "--trust", str(CA), "--trust",
                                str(TRUSTLIST), "--json"])
        assert v.exit_code == 0, v.output
        import json

        line = json.loads(v.stdout)
        assert line["valid"] and line["steps"]["picture"]["status"] == "pass"


def test_single_invalid_record_is_usage_error(runner, tmp_path):
    signer = _signer_copy(tmp_path)
    bad = [*PERSON]
    bad[bad.index("--id") + 1] = "091090012345"  # male digit, record says Nữ
    r = runner.invoke(app, ["issue", "--signer", str(signer), *bad, "--out", "-"])
    assert r.exit_code == 2
    assert "female" in r.stderr or "Nữ" in r.stderr
    assert r.stdout == ""
    r = runner.invoke(app, ["issue", "--signer", str(signer), "--name", "X", "--out", "-"])
    assert r.exit_code == 2 and "needs" in r.stderr


def test_wrong_password(runner, tmp_path, monkeypatch):
    signer = _signer_copy(tmp_path)
    monkeypatch.setenv("VAXQR_PASSWORD", "not-the-password")
    r = runner.invoke(app, ["issue", "--signer", str(signer), *PERSON, "--out", "-"])
    assert r.exit_code == 3
    assert "wrong password" in r.stderr
    assert "not-the-password" not in r.output
    assert r.stdout == ""


def test_batch_via_cli_with_cards(runner, tmp_path):
    src = write_csv(tmp_path / "r.csv", good_rows(12, seed=4))
    out = tmp_path / "out"
    signer = _signer_copy(tmp_path)
    r = runner.invoke(app, ["issue", "--signer", str(signer), "--from", str(src), "--out",
                            str(out), "--card", "pdf"])
    assert r.exit_code == 0, r.output
    assert "12 issued" in r.stderr
    with (out / "manifest.csv").open(encoding="utf-8-sig") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 12
    for row in rows:
        assert (out / row["card"]).read_bytes()[:5] == b"%PDF-"
        assert (out / row["file"]).exists()
    (out / rows[3]["card"]).unlink()
    r = runner.invoke(app, ["issue", "--signer", str(signer), "--from", str(src), "--out",
                            str(out), "--card", "pdf"])
    assert r.exit_code == 0 and "0 issued" in r.stderr
    assert "1 card of rows issued earlier written from the ledger" in r.stderr
    assert "image" not in r.stderr
    assert (out / rows[3]["card"]).exists()


def test_a_full_disk_in_a_batch_says_a_run_again_resumes(runner, tmp_path, monkeypatch):
    """fileio's own disk-full hint is neutral ("try again"): the batch, which keeps what
    it signed and wrote, says that a run again resumes."""
    from mounts import full_at

    src = write_csv(tmp_path / "r.csv", good_rows(5, seed=4))
    out = tmp_path / "out"
    args = ["issue", "--signer", str(_signer_copy(tmp_path)), "--from", str(src), "--out",
            str(out), "--workers", "1"]
    with monkeypatch.context() as full:
        full_at(full, "manifest.csv")
        r = runner.invoke(app, args)
    assert r.exit_code == 3, r.output
    text = _hint(r.stderr)
    assert f"disk full while writing {out / 'manifest.csv'}" in text, text
    assert "free some space and run the same command again to resume" in text, text
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "0 issued" in r.stderr and "5 already issued" in r.stderr


def test_cards_added_to_a_finished_batch_are_said_to_be_written(runner, tmp_path):
    src = write_csv(tmp_path / "r.csv", good_rows(12, seed=4))
    out = tmp_path / "out"
    args = ["issue", "--signer", str(_signer_copy(tmp_path)), "--from", str(src), "--out",
            str(out)]
    assert runner.invoke(app, args).exit_code == 0
    r = runner.invoke(app, [*args, "--card", "png"])
    assert r.exit_code == 0, r.output
    assert "0 issued" in r.stderr and "12 already issued" in r.stderr
    assert "12 cards of rows issued earlier written from the ledger" in r.stderr
    assert "restored" not in r.stderr
    assert len(list((out / "cards").iterdir())) == 12


def test_batch_workers_below_one_is_a_usage_error(runner, tmp_path):
    src = write_csv(tmp_path / "r.csv", good_rows(2))
    r = runner.invoke(app, ["issue", "--signer", str(_signer_copy(tmp_path)), "--from", str(src),
                            "--out", str(tmp_path / "out"), "--workers", "0"])
    assert r.exit_code == 2 and "--workers must be at least 1" in r.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("where", "said"), [
    ("issue.issue_batch", "interrupted: every credential signed so far is in the ledger"),
    # Ctrl-C while the signer key was being opened (before the batch) ended in typer's
    # silent exit 130: no word of what happened or what to do
    ("cli_issue._load_signer", "interrupted before any credential was signed"),
])
def test_batch_interrupted_says_what_was_signed_and_how_to_resume(runner, tmp_path,
                                                                  monkeypatch, where, said):
    import importlib

    module, name = where.split(".")

    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(importlib.import_module(f"vaxqr.{module}"), name, interrupted)
    src = write_csv(tmp_path / "r.csv", good_rows(2))
    r = runner.invoke(app, ["issue", "--signer", str(_signer_copy(tmp_path)), "--from", str(src),
                            "--out", str(tmp_path / "out")])
    assert r.exit_code == 130
    assert said in r.stderr and "run the same command again" in r.stderr


def _console_script(args, tmp_path):
    """The installed `vaxqr` in a new process: its main() ends a finished issue with
    os._exit (no interpreter teardown), which must not lose buffered output."""
    import subprocess
    import sys

    env = dict(os.environ, VAXQR_PASSWORD="vaxqr-demo", XDG_STATE_HOME=str(tmp_path / "st"),
               NO_COLOR="1", PYTHONIOENCODING="utf-8")
    return subprocess.run([str(Path(sys.executable).parent / "vaxqr"), "issue", *args],
                          capture_output=True, env=env, timeout=120, check=False)


def test_console_script_single_to_a_pipe_keeps_its_output(tmp_path):
    signer = _signer_copy(tmp_path)
    r = _console_script(["--signer", str(signer), *PERSON, "--out", "-"], tmp_path)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.decode().split("\n")
    assert len(lines) == 2 and lines[0].startswith("HC1:") and lines[1] == ""
    assert b"DEMO ONLY" in r.stderr  # stderr written before the early exit too


def test_console_script_batch_ends_with_its_summary_and_files(tmp_path):
    src = write_csv(tmp_path / "r.csv", good_rows(20, seed=7))
    out = tmp_path / "out"
    r = _console_script(["--signer", str(_signer_copy(tmp_path)), "--from", str(src),
                         "--out", str(out)], tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stderr.decode().rstrip("\n").split("\n")[-1].startswith("20 issued (")
    with (out / "manifest.csv").open(encoding="utf-8-sig") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 20 and all((out / row["file"]).stat().st_size > 100 for row in rows)
    r = _console_script(["--signer", str(tmp_path / "signer"), "--from", str(src),
                         "--out", str(out)], tmp_path)  # the ledger was closed: a re-run
    assert r.returncode == 0, r.stderr  # reads it and signs nothing twice
    assert r.stderr.decode().rstrip("\n").split("\n")[-1].startswith(
        "0 issued (0/s), 20 already issued, 0 rejected of 20 rows")


@pytest.mark.parametrize("preset", [None, "4"])
def test_the_cli_starts_no_openblas_thread_pool_unless_asked(preset):
    """vaxqr does no linear algebra: main() sets OPENBLAS_NUM_THREADS=1 before NumPy can be
    imported (its thread pool spun ~40 ms of CPU beside a batch's renderers), and keeps a
    value the user set."""
    import subprocess
    import sys

    code = ("import os, sys\nsys.argv = ['vaxqr', '--version']\nfrom vaxqr.cli import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print(os.environ.get('OPENBLAS_NUM_THREADS'))")
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    if preset is not None:
        env["OPENBLAS_NUM_THREADS"] = preset
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, timeout=60, check=True).stdout.split()
    assert out[-1] == (preset or "1")


@pytest.fixture
def unwritable_dir(tmp_path):
    """A directory no file can be created in: a read-only tmpfs as root (who ignores
    permission bits), else one without write permission."""
    d = tmp_path / "ro"
    d.mkdir()
    if os.geteuid() != 0:
        d.chmod(0o555)
        yield d
        d.chmod(0o755)
        return
    with mounted_tmpfs(d, "ro,size=1m"):
        yield d


@pytest.mark.parametrize("where", ["missing-dir", "read-only", "card-exists"])
def test_single_output_that_cannot_be_written_records_nothing(runner, tmp_path, where,
                                                              unwritable_dir):
    """--out is checked before signing: the ledger records a credential before its file is
    written, so a file that cannot be written left a recorded credential with no file, and
    the re-run issued a second one."""
    from vaxqr.ledger import Ledger

    signer = _signer_copy(tmp_path)
    out = {"missing-dir": tmp_path / "nope" / "hong.png",
           "read-only": unwritable_dir / "hong.png",
           "card-exists": tmp_path / "hong.png"}[where]
    if where == "card-exists":
        (tmp_path / "hong-card.png").write_bytes(b"an earlier card")
    args = ["issue", "--signer", str(signer), *PERSON, "--out", str(out), "--card", "png"]
    r = runner.invoke(app, args)
    assert r.exit_code == 3, r.output
    assert {"missing-dir": "does not exist", "read-only": "hong.png",
            "card-exists": "already exists"}[where] in r.stderr
    assert not out.exists() and r.stdout == ""
    with Ledger(signer / "ledger.sqlite") as ledger:
        assert ledger.count() == 0
    if where == "card-exists":  # --force replaces both: one credential, recorded once
        r = runner.invoke(app, [*args, "--force"])
        assert r.exit_code == 0, r.output
        with Ledger(signer / "ledger.sqlite") as ledger:
            assert ledger.count() == 1
        assert (tmp_path / "hong-card.png").read_bytes()[:4] == b"\x89PNG"


def _days_to(end):
    """The days from today to ``end``'s date (UTC), as the signer check counts them."""
    import datetime as dt

    return (end.date() - dt.datetime.now(dt.UTC).date()).days


def _fresh_signer(tmp_path, *, start_days=-1, end_days=None, days=None):
    """A province CA made a year ago and a commune signer valid from ``start_days`` to
    ``end_days`` from now (or ``days`` long from an hour ago), password VAXQR_PASSWORD's."""
    import datetime as dt

    from vaxqr import certs

    pw = b"a test password"
    now = dt.datetime.now(dt.UTC)
    ca, s = tmp_path / "ca", tmp_path / "s"
    if not ca.exists():
        certs.init_ca(ca, name="Kiên Giang", province_code="091", password=pw,
                      now=now - dt.timedelta(days=365))
    if days is not None:
        certs.issue_signer(ca, ca_password=pw, commune_code="31078", name="UBND xã Dương Tơ",
                           out_dir=s, password=pw, days=days, now=now - dt.timedelta(hours=1))
    else:
        certs.issue_signer(ca, ca_password=pw, commune_code="31078", name="UBND xã Dương Tơ",
                           out_dir=s, password=pw, now=now,
                           not_before=now + dt.timedelta(days=start_days),
                           not_after=now + dt.timedelta(days=end_days))
    return ca, s


def test_short_lived_signer_is_warned_about_once(runner, tmp_path, monkeypatch):
    """A commune certificate ending in 100 days caps every credential's exp there: the
    single issue and the batch say when the credentials expire, once, before signing."""
    _ca, s = _fresh_signer(tmp_path, days=100)
    monkeypatch.setenv("VAXQR_PASSWORD", "a test password")
    ends = load_certificates(s / "signer.crt")[0].not_valid_after_utc
    day = f"{ends:%Y-%m-%d}"
    # valid until a date 100 days from today (99 days and 23 hours): "in 100 days" (99 in
    # the first hour of a UTC day, when that date is 99 days away)
    expected = (f"the commune certificate ends on {day}: credentials signed now expire on "
                f"{day} (in {_days_to(ends)} days), not in 12 months; ask provincial IT for "
                "a new certificate")
    r = runner.invoke(app, ["issue", "--signer", str(s), *PERSON, "--out", "-"])
    assert r.exit_code == 0, r.output
    assert r.stderr.count(expected) == 1 and r.stdout.startswith("HC1:")
    src = write_csv(tmp_path / "r.csv", good_rows(5, seed=22))
    r = runner.invoke(app, ["issue", "--signer", str(s), "--from", str(src),
                            "--out", str(tmp_path / "out"), "--workers", "1"])
    assert r.exit_code == 0, r.output
    assert r.stderr.count(expected) == 1 and "5 issued" in r.stderr
    assert r.stderr.index(expected) < r.stderr.index("5 issued")
    monkeypatch.setenv("VAXQR_PASSWORD", "vaxqr-demo")
    r = runner.invoke(app, ["issue", "--signer", str(_signer_copy(tmp_path)), *PERSON,
                            "--out", "-"])
    assert r.exit_code == 0 and "not in 12 months" not in r.stderr


def test_a_signer_ending_within_30_days_is_refused_unless_asked(runner, tmp_path, monkeypatch):
    """Credentials valid ten days, handed out and refused at checkpoints soon after (and the
    office's register then keeps a later batch from signing those citizens again): refused
    before the password is asked, unless --short-validity."""
    _ca, s = _fresh_signer(tmp_path, days=10)
    ends = load_certificates(s / "signer.crt")[0].not_valid_after_utc
    monkeypatch.delenv("VAXQR_PASSWORD")
    src = write_csv(tmp_path / "r.csv", good_rows(3, seed=24))
    for args in ([*PERSON, "--out", "-"], ["--from", str(src), "--out", str(tmp_path / "o")]):
        r = runner.invoke(app, ["issue", "--signer", str(s), *args])
        assert r.exit_code == 3, r.output
        assert f"in {_days_to(ends)} days: credentials signed with it would expire then, " \
            "not in 12 months" in r.stderr and "--short-validity" in r.stderr
        assert r.stdout == "" and not (tmp_path / "o").exists()
    assert not (s / "ledger.sqlite").exists()
    monkeypatch.setenv("VAXQR_PASSWORD", "a test password")
    r = runner.invoke(app, ["issue", "--signer", str(s), *PERSON, "--out", "-",
                            "--short-validity"])
    assert r.exit_code == 0, r.output
    assert f"(in {_days_to(ends)} days), not in 12 months" in r.stderr
    assert r.stdout.startswith("HC1:")


@pytest.mark.parametrize("when", ["expired", "not-yet-valid"])
def test_an_expired_or_future_signer_is_refused_before_the_password(runner, tmp_path,
                                                                     monkeypatch, when):
    start, end = {"expired": (-400, -1), "not-yet-valid": (2, 700)}[when]
    _ca, s = _fresh_signer(tmp_path, start_days=start, end_days=end)
    monkeypatch.delenv("VAXQR_PASSWORD")  # no password question is reached
    src = write_csv(tmp_path / "r.csv", good_rows(3, seed=25))
    for args in ([*PERSON, "--out", "-"], ["--from", str(src), "--out", str(tmp_path / "o")]):
        r = runner.invoke(app, ["issue", "--signer", str(s), *args])
        assert r.exit_code == 3, r.output
        if when == "expired":
            assert "expired on" in r.stderr and "nothing can be signed with it" in r.stderr
            assert "ask provincial IT for a new commune certificate" in r.stderr
        else:
            assert "is not valid until" in r.stderr and "date and time" in r.stderr
        assert r.stdout == "" and not (tmp_path / "o").exists()


def _demo_ca_copy(tmp_path):
    import shutil

    ca = tmp_path / "demo-ca"
    shutil.copytree(ROOT / "keys" / "examples" / "ca", ca)
    os.chmod(ca / "ca.key", 0o600)
    return ca


def test_a_revoked_signer_is_refused(runner, tmp_path):
    """The province revoked the commune's certificate: its crl.pem in SIGNER/trust/ (or the
    trust list with --trust) stops the office before anything is signed."""
    import shutil

    from vaxqr import certs, revocation

    ca = _demo_ca_copy(tmp_path)
    signer = _signer_copy(tmp_path)
    src = write_csv(tmp_path / "r.csv", good_rows(3, seed=26))
    batch = ["--from", str(src), "--out", str(tmp_path / "o")]
    r = runner.invoke(app, ["issue", "--signer", str(signer), *batch, "--trust", str(TRUSTLIST),
                            "--trust", str(ca / "crl.pem"), "--workers", "1"])
    assert r.exit_code == 0, r.output  # not revoked yet: both files say so
    shutil.rmtree(tmp_path / "o")
    revocation.revoke_certificate(ca, "31078", password=b"vaxqr-demo", reason="superseded")
    certs.build_trustlist(ca, password=b"vaxqr-demo", out=tmp_path / "tl.json")
    (signer / "trust").mkdir(exist_ok=True)
    shutil.copy(ca / "crl.pem", signer / "trust" / "crl.pem")
    for extra in ([], ["--trust", str(tmp_path / "tl.json")]):
        if extra:
            (signer / "trust" / "crl.pem").unlink()
        for args in ([*PERSON, "--out", "-"], batch):
            r = runner.invoke(app, ["issue", "--signer", str(signer), *args, *extra])
            assert r.exit_code == 3, r.output
            assert "has been revoked" in r.stderr and "checkpoints refuse" in r.stderr
            assert r.stdout == "" and not (tmp_path / "o").exists()
    from vaxqr.ledger import Ledger

    with Ledger(signer / "ledger.sqlite") as ledger:
        assert ledger.count() == 0


def test_a_signer_whose_chain_no_longer_validates_is_refused(runner, tmp_path):
    ca, _s = _fresh_signer(tmp_path, days=700)  # another CA than the demo signer's
    signer = _signer_copy(tmp_path)
    (signer / "chain.pem").write_bytes((signer / "signer.crt").read_bytes()
                                       + (ca / "ca.crt").read_bytes())
    r = runner.invoke(app, ["issue", "--signer", str(signer), *PERSON, "--out", "-"])
    assert r.exit_code == 3, r.output
    assert "no longer validates against its CA (chain.pem)" in r.stderr and r.stdout == ""


def test_batch_summary_counts_superseded_rows_apart(runner, tmp_path):
    rows = good_rows(5, seed=23)
    rows.append(list(rows[1]))  # row 6: row 2 again
    rows[1][4:7] = ["1", "2", "2021-06-01"]  # row 2: dose 1; row 6: dose 2, later
    rows[5][4:7] = ["2", "2", "2021-09-01"]
    rows.append(["Lê Văn X", "Nam", "1980-01-01", "091080123456", "2", "2", "2030-01-01",
                 "pfizer", "", ""])  # row 7: vaccinated in the future
    src = write_csv(tmp_path / "r.csv", rows)
    out = tmp_path / "out"
    r = runner.invoke(app, ["issue", "--signer", str(_signer_copy(tmp_path)), "--from",
                            str(src), "--out", str(out), "--workers", "1"])
    assert r.exit_code == 0, r.output
    assert "5 issued (" in r.stderr
    assert ("1 rejected, 1 superseded by a later dose in this file (one credential per "
            "citizen) of 7 rows") in r.stderr
    assert "already issued by the office" not in r.stderr
    # data row 7 is the spreadsheet's row 8 (its header is row 1): a clerk is told both
    assert "row 7 (spreadsheet row 8): vaccination date 2030-01-01 is in the future" in r.stderr
    assert "row 2 " not in r.stderr
    # the rejected row is listed: rejects.csv is named for the superseded one only
    assert r.stderr.endswith(f"  1 superseded row: see {out / 'rejects.csv'}\n"), r.stderr
    with (out / "rejects.csv").open(encoding="utf-8-sig") as fh:
        table = list(csv.DictReader(fh))
    assert list(table[0]) == ["row", "spreadsheet_row", "reason"]
    assert all(int(x["spreadsheet_row"]) == int(x["row"]) + 1 for x in table)
    rejects = {int(x["row"]): x["reason"] for x in table}
    assert rejects[2].startswith("superseded by row 6 (spreadsheet row 7; dose 2/2 on 2021-09-01)")


@pytest.mark.parametrize(("bad", "last"), [
    (3, "vaccination date 2030-01-01 is in the future"),
    (12, "… 2 more rejected rows: see {rejects}")], ids=["all-listed", "cut"])
def test_batch_summary_sends_to_rejects_csv_only_for_rows_it_left_out(runner, tmp_path, bad,
                                                                      last):
    """The summary ended "… see rejects.csv" after listing every rejected row."""
    rows = good_rows(bad + 1, seed=29)
    for row in rows[1:]:
        row[6] = "2030-01-01"
    out = tmp_path / "out"
    r = runner.invoke(app, ["issue", "--signer", str(_signer_copy(tmp_path)), "--from",
                            str(write_csv(tmp_path / "r.csv", rows)), "--out", str(out),
                            "--workers", "1"])
    assert r.exit_code == 0, r.output
    assert "1 issued (" in r.stderr and f"{bad} rejected of {bad + 1} rows" in r.stderr
    assert r.stderr.rstrip("\n").splitlines()[-1].endswith(
        last.format(rejects=out / "rejects.csv")), r.stderr
    assert ("rejects.csv" in r.stderr) == (bad > 10)


def test_a_wrong_signer_directory_is_said_before_any_password(runner, tmp_path, monkeypatch):
    monkeypatch.delenv("VAXQR_PASSWORD")  # no password to give: the directory is the problem
    for where in (tmp_path / "nowhere", CA.parent):  # missing; a CA directory
        r = runner.invoke(app, ["issue", "--signer", str(where), *PERSON, "--out", "-"])
        assert r.exit_code == 3 and "not a commune signer directory" in r.stderr, r.output
        assert "password" not in r.stderr
    # the province CA's directory is named as such, with the directory to give instead
    text = " ".join(r.stderr.split())
    assert "is the province CA's directory" in text
    assert f"vaxqr certs issue {CA.parent} --commune-code CODE" in text


def test_a_single_issue_out_pdf_points_to_card_pdf(runner, tmp_path, monkeypatch):
    monkeypatch.delenv("VAXQR_PASSWORD")  # said before any password question
    signer = _signer_copy(tmp_path)
    r = runner.invoke(app, ["issue", "--signer", str(signer), *PERSON, "--out",
                            str(tmp_path / "card.pdf")])
    assert r.exit_code == 2, r.output
    text = " ".join(r.stderr.split())
    assert "--card pdf" in text and "card-card.pdf" in text
    assert f"--out {tmp_path / 'card.png'} --card pdf" in text and "password" not in text
    assert not list(tmp_path.glob("card*"))


def test_a_new_out_dir_is_private_and_an_open_one_is_warned_about(runner, tmp_path):
    """OUT_DIR holds names, dates of birth and HC1: strings: vaxqr makes it 0700 (as the
    signer directories); a directory the user made keeps its mode, with a warning when
    other users can read it."""
    src = write_csv(tmp_path / "r.csv", good_rows(3, seed=5))
    signer = _signer_copy(tmp_path)
    out = tmp_path / "new" / "batch"  # its parent is missing too
    r = runner.invoke(app, ["issue", "--signer", str(signer), "--from", str(src), "--out",
                            str(out), "--card", "png"])
    assert r.exit_code == 0, r.output
    assert (out.stat().st_mode & 0o777) == 0o700
    assert "can be read by other users" not in r.stderr
    # the manifest lists the cards (README: the `card` column that --card adds)
    with (out / "manifest.csv").open(encoding="utf-8-sig") as fh:
        assert next(csv.reader(fh))[-1] == "card"
    mine = tmp_path / "mine"
    mine.mkdir(mode=0o755)
    os.chmod(mine, 0o755)
    r = runner.invoke(app, ["issue", "--signer", str(signer), "--from", str(src), "--out",
                            str(mine)])
    assert r.exit_code == 0, r.output
    assert (mine.stat().st_mode & 0o777) == 0o755  # not changed behind the user's back
    assert f"{mine} can be read by other users of this computer (mode 0755)" in r.stderr
    assert f"chmod 700 {mine}" in r.stderr


def test_an_out_dir_of_another_user_is_warned_about(runner, tmp_path, monkeypatch):
    """An OUT_DIR someone else made (/tmp/batch, mode 0700, made by another user before
    the office's administrator runs vaxqr as root) passed without a word: its mode hides
    it from others, but its owner reads the manifest and replaces files at will. It is
    warned about whatever its mode (the owner is faked: making another user's directory
    needs root)."""
    src = write_csv(tmp_path / "r.csv", good_rows(2, seed=7))
    signer = _signer_copy(tmp_path)
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o700)
    os.chmod(theirs, 0o700)
    me = os.geteuid()
    monkeypatch.setattr(os, "geteuid", lambda: me + 1)
    r = runner.invoke(app, ["issue", "--signer", str(signer), "--from", str(src), "--out",
                            str(theirs)])
    assert r.exit_code == 0, r.output
    assert f"{theirs} belongs to another user of this computer (uid {me})" in r.stderr
    assert "use a directory of your own" in r.stderr


def test_readme_lists_the_manifest_columns_with_card():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "`manifest.csv` (`row,uvci,full_name,file,hc1,iat,exp`, and\nwith `--card` a " \
           "last column `card`" in text
    assert "mode 0700" in text


@pytest.mark.parametrize("content, said", [
    (b"", "is empty (not even a header line)"),
    (b"\xef\xbb\xbf", "is empty (not even a header line)"),
    ("full_name\tsex\n".encode("utf-16"), "is UTF-16 (Excel's 'Unicode Text'), not a UTF-8 CSV"),
    (b"full_name,sex\n\xff", None),  # not UTF-8 further on: said with its line and byte
    (b"\xfe\xff" + "full_name,sex\n".encode("utf-16-be"), "is UTF-16"),
    (b"\n\nfull_name,sex\n", "the first line is blank; the CSV header must be there"),
], ids=["empty", "bom-only", "utf16-le", "not-utf8", "utf16-be", "blank-first-line"])
def test_an_empty_or_utf16_csv_is_named_as_such(runner, tmp_path, content, said):
    src = tmp_path / "in.csv"
    src.write_bytes(content)
    signer = _signer_copy(tmp_path)
    r = runner.invoke(app, ["issue", "--signer", str(signer), "--from", str(src), "--out",
                            str(tmp_path / "out")])
    assert r.exit_code == 2, r.output
    assert "lacks" not in r.stderr
    if said is None:
        assert "is not UTF-8 (line 2, byte 1" in r.stderr
    else:
        assert f"{src} {said}" in r.stderr or f"{src}: {said}" in r.stderr, r.stderr
    if said and "UTF-16" in said:
        assert "\n  hint: save the export as CSV UTF-8" in r.stderr
    assert not (tmp_path / "out" / "ledger.sqlite").exists()


def test_a_batch_shows_a_progress_bar_on_a_terminal_only(tmp_path):
    from terminal import stderr_on

    signer = _signer_copy(tmp_path)
    args = ["issue", "--signer", str(signer), "--workers", "1",
            "--password-file", str(ROOT / "keys" / "examples" / "password.txt"), "--from"]
    runs = {}
    for name, seed in (("a", 27), ("b", 28)):  # other citizens: the register has the first
        runs[name] = [*args, str(write_csv(tmp_path / f"{name}.csv", good_rows(40, seed=seed))),
                      "--out", str(tmp_path / name)]
    code, seen = stderr_on(runs["a"], terminal=True, cwd=tmp_path)
    assert code == 0, seen
    assert "signing" in seen and "━" in seen and "40 issued" in seen
    code, piped = stderr_on(runs["b"], terminal=False, cwd=tmp_path)
    assert code == 0, piped
    assert "40 issued" in piped and "━" not in piped and "signing" not in piped


def test_a_single_issue_missing_options_names_those_missing(runner, tmp_path):
    """A clerk who forgot --sex and --date was shown all seven options, not which two."""
    signer = _signer_copy(tmp_path)
    person = [a for i, a in enumerate(PERSON)
              if a not in ("--sex", "--date") and PERSON[i - 1] not in ("--sex", "--date")]
    r = runner.invoke(app, ["issue", "--signer", str(signer), *person, "--out", "-"])
    assert r.exit_code == 2
    assert "missing --sex and --date" in r.stderr, r.stderr


def _fill(directory: Path) -> None:
    """Use up the free space of the file system ``directory`` is on."""
    import errno

    with open(directory / "filler", "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC


def _hint(stderr: str) -> str:
    return " ".join(stderr.split())


def test_a_full_disk_at_a_single_issue_says_nothing_was_recorded(runner, tmp_path):
    """The ledger's disk-full hint ("run the same command again to resume") is a batch's:
    a single issue's transaction is rolled back, and no file is written yet."""
    small = tmp_path / "small"
    small.mkdir()
    with mounted_tmpfs(small, "size=1m"):
        import shutil

        signer = Path(shutil.copytree(_signer_copy(tmp_path), small / "signer"))
        _fill(small)
        out = tmp_path / "hong.png"
        r = runner.invoke(app, ["issue", "--signer", str(signer), *PERSON, "--out", str(out)])
        assert r.exit_code == 3, r.output
        text = _hint(r.stderr)
        assert "disk full while writing the ledger" in text, text
        assert "nothing was recorded or written" in text and "resume" not in text, text
        assert not out.exists()


def test_a_full_disk_in_a_single_issues_transaction_says_nothing_was_recorded(tmp_path):
    """The same from the library: Register.issue_single's transaction, rolled back."""
    from vaxqr import issue as flow
    from vaxqr.certs import load_signer
    from vaxqr.errors import DiskFullError
    from vaxqr.ledger import Register

    small = tmp_path / "small"
    small.mkdir()
    info = flow.signer_info(load_signer(_signer_copy(tmp_path), b"vaxqr-demo"))
    fields = {"full_name": "Nguyễn Văn An", "sex": "Nam", "dob": "01/02/1980",
              "id_number": "091080012345", "dose_number": "1", "total_doses": "2",
              "vaccination_date": "2021-09-01", "vaccine": "pfizer", "lot": "", "site": ""}
    from datetime import date

    record = flow.parse_record(0, fields, today=date.today())
    with mounted_tmpfs(small, "size=1m"), Register(small / "ledger.sqlite") as register:
        _fill(small)
        with pytest.raises(DiskFullError) as info_:
            flow.issue_single(register, info, record)
        assert "nothing was recorded" in (info_.value.hint or "")
        assert register.count() == 0


def test_a_full_disk_writing_a_single_issues_file_says_reprint(runner, tmp_path):
    """Recorded, then the QR file does not fit: --reprint UVCI writes the same credential
    (a run again with --reissue would sign another)."""
    import re
    import subprocess

    signer = _signer_copy(tmp_path)
    small = tmp_path / "small"
    small.mkdir()
    with mounted_tmpfs(small, "size=4k"):
        (small / "taken").write_bytes(b"x")  # the one page
        out = small / "hong.png"
        r = runner.invoke(app, ["issue", "--signer", str(signer), *PERSON, "--out", str(out)])
        assert r.exit_code == 3, r.output
        text = _hint(r.stderr)
        assert f"disk full while writing {out}" in text, text
        m = re.search(r"--reprint (URN:UVCI:\S+)", text)
        assert m and "what was done is kept" not in text, text
        reprint = ["issue", "--signer", str(signer), "--reprint", m.group(1), "--out", str(out)]
        r = runner.invoke(app, reprint)  # still full: nothing was done, nothing is kept
        assert r.exit_code == 3, r.output
        text = _hint(r.stderr)
        assert "run the same command again" in text and "what was done" not in text, text
        subprocess.run(["mount", "-o", "remount,size=1m", str(small)], check=True)
        r = runner.invoke(app, reprint)
        assert r.exit_code == 0, r.output
        assert out.read_bytes().startswith(b"\x89PNG")


def test_batch_from_a_semicolon_separated_export(runner, tmp_path):
    """A clerk's Excel on a Windows set to Vietnamese saves CSV with ';' between fields:
    the batch is signed, not refused with "the CSV header lacks full_name, …"."""
    signer = _signer_copy(tmp_path)
    rows = good_rows(3, seed=41)
    src = tmp_path / "export.csv"
    with src.open("w", encoding="utf-8-sig", newline="") as fh:
        w = csv.writer(fh, delimiter=";")
        w.writerow(["full_name", "sex", "dob", "id_number", "dose_number", "total_doses",
                    "vaccination_date", "vaccine", "lot", "site"])
        w.writerows(rows)
    out = tmp_path / "batch"
    r = runner.invoke(app, ["issue", "--signer", str(signer), "--from", str(src),
                            "--out", str(out)])
    assert r.exit_code == 0, r.output
    with (out / "manifest.csv").open(encoding="utf-8-sig", newline="") as fh:
        manifest = list(csv.DictReader(fh))
    assert [m["full_name"] for m in manifest] == [row[0] for row in rows]
    v = runner.invoke(app, ["verify", manifest[0]["hc1"], "--trust", str(CA),
                            "--trust", str(TRUSTLIST)])
    assert v.exit_code == 0, v.output


@pytest.mark.parametrize("command", ["issue", "reconcile"])
def test_help_shows_every_csv_column_at_80_columns(runner, command):
    """At 80 columns the header given as one word was cut: "full_name,sex,dob,id_number,d…"."""
    from vaxqr.issue import COLUMNS

    r = runner.invoke(app, [command, "--help"], env={"COLUMNS": "80", "NO_COLOR": "1"})
    assert r.exit_code == 0, r.output
    assert "…" not in r.stdout, r.stdout
    words = set(r.stdout.replace(",", " ").replace("(", " ").replace(")", " ")
                .replace(".", " ").split())
    assert set(COLUMNS) <= words, set(COLUMNS) - words


def _made_by_another_user(link: Path, monkeypatch) -> int:
    """Make ``link`` (a symbolic link) another user's: by lchown as root, else by faking
    this process's uid, as the warning's test does. Returns that user's uid."""
    me = os.geteuid()
    if me == 0:
        os.lchown(link, 4242, -1)
        return 4242
    monkeypatch.setattr(os, "geteuid", lambda: me + 1)
    return me


@pytest.mark.parametrize("reprint", [False, True])
def test_a_single_output_through_another_users_symlink_is_refused(runner, tmp_path,
                                                                  monkeypatch, reprint):
    """`--out /tmp/x/card.png` (and its --card beside it), /tmp/x a symbolic link another
    user made, was followed, where a batch's OUT_DIR through one is refused: the citizen's
    credential and card went to a directory of their choosing. Refused before anything is
    signed or recorded; one's own link is followed."""
    from vaxqr.ledger import Ledger

    signer = _signer_copy(tmp_path)
    target = tmp_path / "chosen"
    target.mkdir(mode=0o700)
    mine = tmp_path / "mine"
    mine.symlink_to(target, target_is_directory=True)
    r = runner.invoke(app, ["issue", "--signer", str(signer), *PERSON, "--out",
                            str(mine / "h.png"), "--card", "png"])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in target.iterdir()) == ["h-card.png", "h.png"]
    shutil.rmtree(target)
    target.mkdir(mode=0o700)
    link = tmp_path / "x"
    link.symlink_to(target, target_is_directory=True)
    uid = _made_by_another_user(link, monkeypatch)
    how = (["--reprint", "091190012345"] if reprint else [*PERSON, "--reissue"])
    r = runner.invoke(app, ["issue", "--signer", str(signer), *how, "--out",
                            str(link / "h.png"), "--card", "pdf"])
    text = " ".join(r.stderr.split())
    assert r.exit_code == 3, r.output
    assert (f"{link} is a symbolic link made by another user of this computer (uid {uid}), "
            f"which points to {target}: the citizen's credential written through it") in text
    assert list(target.iterdir()) == []
    with Ledger(signer / "ledger.sqlite") as ledger:
        assert ledger.count("single") == 1  # nothing signed or recorded


@pytest.mark.parametrize("batch", [False, True], ids=["single", "batch"])
def test_another_users_symlink_is_refused_before_the_password(runner, tmp_path, monkeypatch,
                                                              batch):
    """A single issue's --out through another user's symbolic link was refused only after
    the key's password was asked (and a batch's OUT_DIR once the key was open): refused
    first, as a file that cannot be written is no key problem. No password is available
    here: the refusal is what is said."""
    signer = _signer_copy(tmp_path)
    target = tmp_path / "chosen"
    target.mkdir(mode=0o700)
    link = tmp_path / "x"
    link.symlink_to(target, target_is_directory=True)
    uid = _made_by_another_user(link, monkeypatch)
    monkeypatch.delenv("VAXQR_PASSWORD")
    how = (["--from", str(write_csv(tmp_path / "r.csv", good_rows(2, seed=8))), "--out",
            str(link / "b")] if batch else [*PERSON, "--out", str(link / "h.png")])
    r = runner.invoke(app, ["issue", "--signer", str(signer), *how, "--password-file",
                            str(tmp_path / "no-such.pass")])
    text = " ".join(r.stderr.split())
    assert r.exit_code == 3, r.output
    assert f"{link} is a symbolic link made by another user of this computer (uid {uid})" \
        in text
    assert "password" not in text and "no-such.pass" not in text
    assert list(target.iterdir()) == []


@pytest.mark.parametrize("where", ["out", "parent"])
def test_an_out_dir_through_another_users_symlink_is_refused(runner, tmp_path, monkeypatch,
                                                            where):
    """/tmp/batch made a symbolic link by another user (fs.protected_symlinks=0) was
    followed: the batch went to a directory of their choosing. Refused, nothing written
    there; one's own link is followed."""
    src = write_csv(tmp_path / "r.csv", good_rows(2, seed=7))
    signer = _signer_copy(tmp_path)
    target = tmp_path / "chosen"
    target.mkdir(mode=0o700)
    mine = tmp_path / "mine"
    mine.symlink_to(target, target_is_directory=True)
    r = runner.invoke(app, ["issue", "--signer", str(signer), "--from", str(src), "--out",
                            str(mine / "b" if where == "parent" else mine)])
    assert r.exit_code == 0, r.output
    shutil.rmtree(target)
    target.mkdir(mode=0o700)
    link = tmp_path / "batch"
    link.symlink_to(target, target_is_directory=True)
    uid = _made_by_another_user(link, monkeypatch)
    out = link / "b" if where == "parent" else link
    r = runner.invoke(app, ["issue", "--signer", str(signer), "--from", str(src), "--out",
                            str(out)])
    text = " ".join(r.stderr.split())
    assert r.exit_code == 3, r.output
    assert (f"{link} is a symbolic link made by another user of this computer (uid {uid}), "
            f"which points to {target}") in text
    assert "a directory of your own" in text
    assert list(target.iterdir()) == []


def test_a_batch_whose_ledger_cannot_grow_on_a_full_disk_says_disk_full(runner, tmp_path):
    """With a few KiB left, SQLite answers "disk I/O error" (its -wal or -shm could not
    grow), not "database or disk is full": the clerk read of a broken disk, and was not
    told to free space and run again."""
    small = tmp_path / "small"
    small.mkdir()
    with mounted_tmpfs(small, "size=1m"):
        (small / "pad").write_bytes(bytes(20 * 1024))
        _fill(small)
        (small / "pad").unlink()
        r = runner.invoke(app, ["issue", "--signer", str(_signer_copy(tmp_path)), "--from",
                                str(EXAMPLE_CSV), "--out", str(small / "batch")])
        assert r.exit_code == 3, r.output
        text = _hint(r.stderr)
        assert "disk full while writing the ledger" in text, text
        assert "free some space and run the same command again" in text, text
        assert "disk I/O error" not in text


def test_a_read_only_signer_directory_is_named_as_such(runner, tmp_path):
    """A signer directory on a read-only mount (or another user's): SQLite's "unable to
    open database file" said nothing of why, nor what to do."""
    where = tmp_path / "mnt"
    where.mkdir()
    with mounted_tmpfs(where, "size=1m"):
        signer = Path(shutil.copytree(_signer_copy(tmp_path), where / "signer"))
        subprocess.run(["mount", "-o", "remount,ro", str(where)], check=True)
        r = runner.invoke(app, ["issue", "--signer", str(signer), *PERSON, "--out",
                                str(tmp_path / "hong.png")])
        assert r.exit_code == 3, r.output
        text = _hint(r.stderr)
        assert f"{signer} is read-only" in text, text
        assert f"make {signer} writable for this user" in text, text
        assert not (tmp_path / "hong.png").exists()


def test_a_signer_without_revocation_data_is_warned_about_once_per_run(runner, tmp_path):
    """A signer directory copied without trust/ (or with an empty one) signed with no word:
    the clerk never learnt that a revocation of the commune's certificate by the province
    cannot be known on this machine. Warned once per run, not per row, saying what to put
    there; a directory with the province's CRL in trust/ (as `certs issue` makes it) is
    not."""
    src = write_csv(tmp_path / "r.csv", good_rows(6, seed=8))
    signer = _signer_copy(tmp_path)
    said = "no CRL or trust list in"
    r = runner.invoke(app, ["issue", "--signer", str(signer), "--from", str(src), "--out",
                            str(tmp_path / "with")])
    assert r.exit_code == 0, r.output
    assert said not in r.stderr
    shutil.rmtree(signer / "trust")
    r = runner.invoke(app, ["issue", "--signer", str(signer), "--from", str(src), "--out",
                            str(tmp_path / "without")])
    assert r.exit_code == 0, r.output
    text = " ".join(r.stderr.split())
    assert text.count(said) == 1, text
    assert f"{said} {signer / 'trust'}/ (nor --trust)" in text
    assert "put the files the province hands to checkpoints (its trustlist.json and " \
           "crl.pem)" in text
    (signer / "trust").mkdir()  # empty, or holding nothing that is a CRL or trust list
    (signer / "trust" / "notes.txt").write_text("ask the province\n")
    r = runner.invoke(app, ["issue", "--signer", str(signer), *PERSON, "--out", "-"])
    assert r.exit_code == 0, r.output
    assert " ".join(r.stderr.split()).count(said) == 1
    # --trust given instead: known
    r = runner.invoke(app, ["issue", "--signer", str(signer), *PERSON, "--out", "-",
                            "--trust", str(CA.parent / "crl.pem")])
    assert r.exit_code == 0, r.output
    assert said not in r.stderr


def test_a_fresh_signer_directory_holds_its_cas_crl(runner, tmp_path, monkeypatch):
    """`certs issue` has the CA's current CRL at hand: a new signer directory gets it in
    trust/, so a well set-up office signs knowing its revocations (and is not warned)."""
    monkeypatch.setenv("VAXQR_PASSWORD", "a test password")
    ca, s = _fresh_signer(tmp_path, start_days=-1, end_days=700)
    assert (s / "trust" / "crl.pem").read_bytes() == (ca / "crl.pem").read_bytes()
    r = runner.invoke(app, ["issue", "--signer", str(s), *PERSON, "--out", "-"])
    assert r.exit_code == 0, r.output
    assert "no CRL or trust list" not in r.stderr


M = ["Phạm Văn M", "Nam", "1980-01-01", "091080000151", "1", "2", "2021-08-01", "pfizer",
     "L", "x"]


def _m_signed_then_moved(runner, tmp_path, edited):
    """Citizen M signed at row 1 of a batch, then the CSV rewritten with another citizen
    inserted above M's row, ``edited`` (row 2: a row number the OUT_DIR never issued from),
    and the same command run again: (its result, the OUT_DIR, M's first UVCI)."""
    src = write_csv(tmp_path / "records.csv", [M])
    out = tmp_path / "batch"
    args = ["issue", "--signer", str(_signer_copy(tmp_path)), "--from", str(src), "--out",
            str(out), "--workers", "1"]
    assert runner.invoke(app, args).exit_code == 0
    first = _manifest(out)[1]
    other = ["Trần Văn Chen", "Nam", "1980-01-01", "091080000152", "1", "2", "2021-08-01",
             "pfizer", "L", "x"]
    write_csv(src, [other, edited])
    return runner.invoke(app, args), out, first


def test_an_edited_row_moved_to_a_new_row_number_is_not_signed_again(runner, tmp_path):
    """README: a row edited after it was signed is not signed again, and a citizen the
    register holds with another name or date of birth is refused. A batch signed citizen M
    at row 1; the clerk then inserted a new citizen above it and changed M's name and date
    of birth (row 2, a row number this OUT_DIR never issued). The re-run signed M again, a
    second valid credential for the same ID number and dose, with another identity."""
    r, out, _first = _m_signed_then_moved(runner, tmp_path,
                                          ["Phạm Văn Mạnh", "Nam", "1980-05-05", *M[3:]])
    assert r.exit_code == 0, r.output
    with (out / "manifest.csv").open(encoding="utf-8-sig", newline="") as fh:
        names = [row["full_name"] for row in csv.DictReader(fh)]
    assert names == ["Phạm Văn M"], names  # M's credential; Chen's row 1 is refused too
    reason = _rejected(out)[2]
    assert "same ID number as credential" in reason and "another full name" in reason, reason


def _rejected(out):
    with (out / "rejects.csv").open(encoding="utf-8-sig", newline="") as fh:
        return {int(r["row"]): r["reason"] for r in csv.DictReader(fh)}


def _manifest(out):
    with (out / "manifest.csv").open(encoding="utf-8-sig", newline="") as fh:
        return {int(r["row"]): r["uvci"] for r in csv.DictReader(fh)}


@pytest.mark.parametrize("edit", ["lot", "later_dose"])
def test_a_row_moved_and_edited_within_its_identity(runner, tmp_path, edit):
    """The same citizen's row, moved to a row number the OUT_DIR never issued and edited
    without changing who it is: a corrected lot is the dose already issued (superseded,
    naming its credential); a later dose is signed, the register then naming it."""
    edited = ([*M[:8], "L2", "x"] if edit == "lot"
              else [*M[:4], "2", "2", "2021-09-01", *M[7:]])
    r, out, first = _m_signed_then_moved(runner, tmp_path, edited)
    assert r.exit_code == 0, r.output
    issued = _manifest(out)
    rejected = _rejected(out)
    assert "row 1 held another record" in rejected[1]  # Chen's: a row number M's holds
    if edit == "lot":
        assert issued == {1: first}
        assert f"already issued as {first}" in rejected[2], rejected
    else:
        assert issued[1] == first and issued[2] != first, issued  # dose 2, new credential
        assert 2 not in rejected
