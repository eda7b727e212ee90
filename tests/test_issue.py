import csv
import os
import signal
import subprocess
import sys
import time
import unicodedata
from datetime import date
from pathlib import Path

import pytest
import scriptload
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mounts import held_elsewhere, mounted_tmpfs

from vaxqr import issue
from vaxqr.certs import load_signer
from vaxqr.errors import KeyCertError, StorageError, ValidationError
from vaxqr.ledger import Ledger
from vaxqr.trust import TrustStore
from vaxqr.verify import Verifier

from records import HEADER, good_rows, write_csv

ROOT = Path(__file__).resolve().parent.parent
SIGNER = ROOT / "keys" / "examples" / "communes" / "31078"
CA = ROOT / "keys" / "examples" / "ca" / "ca.crt"
TRUSTLIST = ROOT / "keys" / "examples" / "trustlist.json"
TODAY = date(2022, 1, 15)


@pytest.fixture(scope="module")
def signer():
    os.chmod(SIGNER / "signer.key", 0o600)
    return load_signer(SIGNER, b"vaxqr-demo")


@pytest.fixture(scope="module")
def verifier(tmp_path_factory):
    state = tmp_path_factory.mktemp("state") / "s.json"
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    # validation time: now at each call (a fixed `at` taken when the fixture was made fails
    # credentials issued a second later, by a slower test in between)
    return Verifier(TrustStore.from_paths([CA, TRUSTLIST], at=now, state_file=state))


def fields(**over):
    base = dict(zip(HEADER, ["Nguyễn Thị Ánh Hồng", "Nữ", "17/05/1990", "091190012345", "2", "2",
                             "2021-10-01", "pfizer", "", ""], strict=True))
    base.update(over)
    return base


@pytest.mark.parametrize(
    ("over", "fragment"),
    [
        ({"full_name": "  "}, "full_name is empty"),
        ({"sex": "X"}, "sex"),
        ({"dob": "31/02/1990"}, "not a real date"),
        ({"dob": "2030-01-01"}, "in the future"),
        ({"vaccination_date": "2021-13-01"}, "not a real date"),
        ({"vaccination_date": "2099-01-01"}, "in the future"),
        ({"vaccination_date": "2021-10-01 09:30:00"}, "has a time of day (09:30:00)"),
        ({"vaccination_date": "1989-01-01"}, "before the date of birth"),
        ({"id_number": "09119001234"}, "12 digits"),
        ({"id_number": "999190012345"}, "province"),
        ({"id_number": "091090012345"}, "male"),  # digit 4 = 0: male, record says Nữ
        ({"id_number": "091391012345"}, "2000-2099"),
        ({"id_number": "091185012345"}, "85"),
        ({"dose_number": "3"}, "greater than the total"),
        ({"dose_number": "0"}, "start at 1"),
        # a slip of the keyboard ("22" for "2") must not become a credential for dose 22:
        # no schedule has more than 9 doses (the DCC schemas before 1.3.0 said [1, 9])
        ({"dose_number": "22", "total_doses": "22"}, "total doses 22 is more than 9"),
        ({"dose_number": "2", "total_doses": "99"}, "total doses 99 is more than 9"),
        ({"dose_number": "10", "total_doses": "10"}, "more than 9"),
        ({"dose_number": "two"}, "whole number"),
        # str.isdigit() holds for these, int() refuses the first (a ValueError escaped) and
        # reads the others as 2 and 12: dose numbers are ASCII digits, as reconcile reads them
        ({"dose_number": "²"}, "whole number"),
        ({"total_doses": "²"}, "whole number"),
        ({"total_doses": "١٢"}, "whole number"),
        ({"total_doses": "２"}, "whole number"),
        ({"vaccine": "covaxin"}, "unknown vaccine"),
        # combining marks that would print otherwise than they are signed
        ({"full_name": "Á" + "\u0301" * 20 + " Văn Bình"}, "more than 2 marks on the letter 'Á'"),
        ({"full_name": "Nguyễn Thị Ệ\u0301"}, "more than 2 marks"),
        ({"full_name": "Trần \u0323Văn Đạt"}, "(U+0323) that does not follow a letter"),
        ({"full_name": "\u0301Trần Văn Đạt"}, "does not follow a letter"),
        ({"full_name": "Trần Văn Đạt 1\u0301"}, "does not follow a letter"),
    ],
)
def test_row_validation(over, fragment):
    with pytest.raises(ValidationError) as info:
        issue.parse_record(1, fields(**over), today=TODAY)
    assert fragment in str(info.value)


def test_nine_doses_are_the_most():
    rec = issue.parse_record(1, fields(dose_number="9", total_doses="9"), today=TODAY)
    assert (rec.dose, rec.total) == (9, 9)


def test_decomposed_names_with_two_marks_a_letter_are_accepted():
    nfd = unicodedata.normalize("NFD", "Nguyễn Thị Ánh Hồng")  # ễ: e + circumflex + tilde
    assert issue.parse_record(1, fields(full_name=nfd), today=TODAY).full_name == \
        "Nguyễn Thị Ánh Hồng"
    # a mark NFC cannot compose with its letter stays, on a letter (ệ + acute, 3: refused)
    name = issue.parse_record(1, fields(full_name="Nguyễn Thị Á\u0330nh"), today=TODAY)
    assert name.full_name.endswith("Á\u0330nh")


def test_spreadsheet_date_time_cells_at_midnight_are_their_dates():
    rec = issue.parse_record(1, fields(dob="1990-05-17 00:00:00",
                                       vaccination_date="2021-10-01T00:00"), today=TODAY)
    assert rec.dob == date(1990, 5, 17) and rec.vaccination_date == date(2021, 10, 1)


def test_record_normalisation():
    nfd = unicodedata.normalize("NFD", "  Nguyễn   Thị Ánh  Hồng ")
    rec = issue.parse_record(7, fields(full_name=nfd, sex="F", vaccine="EU/1/20/1528"),
                             today=TODAY)
    assert rec.full_name == "Nguyễn Thị Ánh Hồng"
    assert rec.sex == "F" and rec.vaccine_key == "pfizer" and rec.dob == date(1990, 5, 17)


def test_single_credential_content(signer, verifier):
    info = issue.signer_info(signer)
    rec = issue.parse_record(1, fields(), today=TODAY)
    from vaxqr.credential import make_uvci, uvci_check_ok

    uvci = make_uvci(info.province_code, info.commune_code)
    hc1, iat, exp = issue.sign_record(info, rec, uvci)
    assert uvci_check_ok(uvci) and uvci.startswith("URN:UVCI:01:VN:091/31078/")
    report = verifier.verify_text(hc1)
    assert report.valid, report.reason
    d = report.credential
    assert d["nam"] == {"fn": "Nguyễn", "gn": "Thị Ánh Hồng", "fnt": "NGUYEN",
                        "gnt": "THI<ANH<HONG"}
    assert d["v"][0]["ci"] == uvci and d["v"][0]["dn"] == 2 and d["v"][0]["sd"] == 2
    assert "091190012345" not in hc1 and "091190012345" not in str(d)
    assert exp - iat == 365 * 86400
    assert report.claims["iss"] == "VN"


def test_sign_record_names_the_records_full_name_whatever_name_it_carries(signer, verifier):
    """parse_record keeps the split, transliterated name for sign_record (saving a second
    transliteration per row); a Record whose ``name`` is not of its ``full_name`` (built by
    hand, or replaced) is signed under its full_name, never under the stale name."""
    import dataclasses

    from vaxqr.credential import PersonName

    info = issue.signer_info(signer)
    rec = issue.parse_record(1, fields(), today=TODAY)
    assert rec.name == PersonName.from_full_name("Nguyễn Thị Ánh Hồng")
    for changed in (dataclasses.replace(rec, full_name="Trần Văn Bình"),
                    dataclasses.replace(rec, full_name="Trần Văn Bình", name=None)):
        hc1, _iat, _exp = issue.sign_record(info, changed, "URN:UVCI:01:VN:091/31078/T1#B")
        report = verifier.verify_text(hc1)
        assert report.valid, report.reason
        assert report.credential["nam"] == {"fn": "Trần", "gn": "Văn Bình", "fnt": "TRAN",
                                            "gnt": "VAN<BINH"}
    assert rec == dataclasses.replace(rec, name=None)  # not part of the record's identity


def test_exp_never_past_dsc(signer):
    from datetime import timedelta

    info = issue.signer_info(signer)
    late = info.not_after - timedelta(days=10)
    _iat, exp = issue.credential_times(info, late)
    assert exp == int(info.not_after.timestamp())
    with pytest.raises(KeyCertError, match="expired"):
        issue.credential_times(info, info.not_after + timedelta(days=1))
    with pytest.raises(KeyCertError, match="not valid before"):
        issue.credential_times(info, info.not_before - timedelta(days=1))



def _fresh_signer(tmp_path, days):
    """A real signer (CA, chain.pem) whose certificate ends ``days`` from now."""
    from datetime import UTC, datetime, timedelta

    from vaxqr import certs

    pw = b"a test password"
    now = datetime.now(UTC)
    certs.init_ca(tmp_path / "ca", name="Kiên Giang", province_code="091", password=pw,
                  now=now - timedelta(days=1))
    certs.issue_signer(tmp_path / "ca", ca_password=pw, commune_code="31078",
                       name="UBND xã Dương Tơ", out_dir=tmp_path / "s", password=pw,
                       days=days, now=now - timedelta(minutes=1))
    return load_signer(tmp_path / "s", pw)


def test_short_lived_credentials_are_warned_about(tmp_path):
    """exp is capped at the DSC's notAfter (as the DCC rules require): a commune certificate
    near its end gave short-lived credentials without a word. The batch result says so, once
    (unless the caller checked the signer and showed the warning itself)."""
    from vaxqr.signercheck import check_signer_dir

    soon = _fresh_signer(tmp_path, 100)
    ends = soon.certificate.not_valid_after_utc
    src = write_csv(tmp_path / "r.csv", good_rows(3, seed=21))
    result = issue.issue_batch(soon, src, tmp_path / "out", workers=1)
    assert result.issued == 3 and len(result.warnings) == 1
    from datetime import UTC, datetime

    days = (ends.date() - datetime.now(UTC).date()).days  # 100: a date 100 days away
    assert f"credentials signed now expire on {ends:%Y-%m-%d} (in {days} days), not in 12 " \
        "months" in result.warnings[0]
    manifest = _read(tmp_path / "out" / "manifest.csv")
    assert all(int(m["exp"]) == int(ends.timestamp()) for m in manifest)
    check = check_signer_dir(tmp_path / "s")
    assert check.warnings == tuple(result.warnings)
    again = issue.issue_batch(soon, src, tmp_path / "out2", workers=1, checked=check)
    assert again.issued == 3 and again.warnings == []


def test_a_batch_refuses_a_signer_its_directory_knows_revoked(tmp_path):
    """issue_batch checks the signer as vaxqr issue does: a CRL in SIGNER_DIR/trust/ that
    revokes it stops the batch before anything is written."""
    import shutil

    from vaxqr import revocation

    signer = _fresh_signer(tmp_path, 700)
    revocation.revoke_certificate(tmp_path / "ca", "31078", password=b"a test password")
    (tmp_path / "s" / "trust").mkdir(exist_ok=True)
    shutil.copy(tmp_path / "ca" / "crl.pem", tmp_path / "s" / "trust" / "crl.pem")
    src = write_csv(tmp_path / "r.csv", good_rows(3, seed=21))
    with pytest.raises(KeyCertError, match="has been revoked"):
        issue.issue_batch(signer, src, tmp_path / "out", workers=1)
    assert not (tmp_path / "out").exists()


def test_a_check_of_another_signer_does_not_stand_for_the_batchs_own(tmp_path):
    """issue_batch(checked=...) took a SignerCheck but used it only as a flag: any check
    (another commune's, one made before a revocation was known) skipped the batch's own,
    and a revoked signer signed."""
    import shutil

    from vaxqr import certs, revocation
    from vaxqr.signercheck import check_signer_dir

    signer = _fresh_signer(tmp_path, 700)
    certs.issue_signer(tmp_path / "ca", ca_password=b"a test password", commune_code="30763",
                       name="UBND phường Vĩnh Lạc", out_dir=tmp_path / "s2",
                       password=b"a test password")
    other = check_signer_dir(tmp_path / "s2")
    revocation.revoke_certificate(tmp_path / "ca", "31078", password=b"a test password")
    (tmp_path / "s" / "trust").mkdir(exist_ok=True)
    shutil.copy(tmp_path / "ca" / "crl.pem", tmp_path / "s" / "trust" / "crl.pem")
    src = write_csv(tmp_path / "r.csv", good_rows(3, seed=21))
    with pytest.raises(KeyCertError, match="has been revoked"):
        issue.issue_batch(signer, src, tmp_path / "out", workers=1, checked=other)
    assert not (tmp_path / "out").exists()


def _read(path):
    with path.open(encoding="utf-8-sig") as fh:
        return list(csv.DictReader(fh))


def test_batch_with_planted_bad_rows_and_resume(signer, verifier, tmp_path):
    rows = good_rows(300)
    bad = {5: ("dob", "2021-02-30"), 17: ("id_number", "12345"), 100: ("vaccine", "xyz"),
           250: ("dose_number", "9")}
    for row, (col, value) in bad.items():
        rows[row - 1][HEADER.index(col)] = value
    src = write_csv(tmp_path / "records.csv", rows, bom=True)
    out = tmp_path / "out"
    result = issue.issue_batch(signer, src, out, workers=2)
    assert result.issued == 296 and result.already == 0
    assert sorted(r for r, _ in result.rejected) == sorted(bad)
    manifest = _read(out / "manifest.csv")
    assert [int(m["row"]) for m in manifest] == [r for r in range(1, 301) if r not in bad]
    assert len({m["uvci"] for m in manifest}) == 296
    rejects = _read(out / "rejects.csv")
    assert {int(r["row"]) for r in rejects} == set(bad)
    for m in manifest[:40]:
        assert (out / m["file"]).stat().st_size > 0
        rep = verifier.verify_text(m["hc1"])
        assert rep.valid, rep.reason
        assert rep.summary()["full_name"] == m["full_name"]
    # the same command again: nothing signed twice, manifest unchanged
    again = issue.issue_batch(signer, src, out, workers=2)
    assert again.issued == 0 and again.already == 296
    assert _read(out / "manifest.csv") == manifest
    # a lost image is restored from the ledger, identical payload
    first = out / manifest[0]["file"]
    first.unlink()
    third = issue.issue_batch(signer, src, out, workers=1)
    assert third.images_restored == 1 and first.exists()


def test_changed_row_is_not_reissued(signer, tmp_path):
    rows = good_rows(5, seed=3)
    src = write_csv(tmp_path / "r.csv", rows)
    out = tmp_path / "out"
    issue.issue_batch(signer, src, out, workers=1)
    rows[2][0] = "Trần Văn Đổi"
    write_csv(src, rows)
    result = issue.issue_batch(signer, src, out, workers=1)
    assert result.issued == 0
    assert [r for r, _ in result.rejected] == [3]
    assert "held another record when credential" in result.rejected[0][1]


def test_rows_moved_by_a_deletion_are_not_signed_again(signer, tmp_path):
    """A row deleted from the CSV (a superseded dose, a duplicate the report said to
    delete) moved every row below it up by one: a row whose number had not been issued
    (the deleted one's) got the next record, which was signed a second time, and the rows
    after it were refused as "changed". A record is now known by its content."""
    rows = good_rows(6, seed=23)
    rows.insert(1, list(rows[0]))  # row 2: an exact duplicate of row 1 (superseded)
    src = write_csv(tmp_path / "r.csv", rows)
    out = tmp_path / "out"
    first = issue.issue_batch(signer, src, out, workers=1, today=TODAY)
    assert (first.issued, len(first.superseded)) == (6, 1)
    del rows[1]  # as the rejects file invites
    write_csv(src, rows)
    again = issue.issue_batch(signer, src, out, workers=1, today=TODAY)
    assert (again.issued, again.already, again.rejected) == (0, 6, [])
    with Ledger(out / "ledger.sqlite") as ledger:
        entries = list(ledger.entries())
    assert len(entries) == 6 and len({e.row_hash for e in entries}) == 6
    # a new record put where an issued one was (rows inserted above): not signed, said why
    rows.insert(0, good_rows(7, seed=24)[6])
    write_csv(src, rows)
    third = issue.issue_batch(signer, src, out, workers=1, today=TODAY)
    assert (third.issued, third.already) == (0, 6)
    assert [r for r, _ in third.rejected] == [1]
    assert "rows were added or deleted above it" in third.rejected[0][1]


def _citizen_rows():
    """Rows of a commune export, some citizens on several rows (row numbers from 1)."""
    hong = ["Nguyễn Thị Ánh Hồng", "Nữ", "17/05/1990", "091190000001"]
    binh = ["Trần Văn Bình", "Nam", "1985-02-03", "091085000002"]
    lan = ["Lê Thị Lan", "Nữ", "1979-11-30", "091179000003"]
    an = ["Phạm Văn An", "Nam", "1962-08-08", "091062000004"]
    tuan = ["Võ Văn Tuấn", "Nam", "1970-01-01", "091070000005"]
    return [
        [*hong, "1", "2", "2021-07-01", "pfizer", "L1", ""],  # 1: superseded by 3
        [*binh, "2", "2", "2021-09-15", "astrazeneca", "", ""],  # 2: alone
        [*hong, "2", "2", "2021-10-01", "pfizer", "L2", ""],  # 3: hong's latest dose
        [*lan, "2", "2", "2021-09-01", "moderna", "", ""],  # 4: kept (first of two)
        [*lan, "2", "2", "2021-09-01", "moderna", "", ""],  # 5: exact duplicate of 4
        [*an, "2", "2", "2021-08-01", "verocell", "", ""],  # 6: same ID as 7,
        ["Phạm Văn Ân", *an[1:], "2", "2", "2021-08-01", "verocell", "", ""],  # 7: other name
        [*hong, "2", "2", "2021-12-01", "xyz", "", ""],  # 8: invalid: takes no part
        [*tuan, "2", "3", "2021-12-01", "pfizer", "", ""],  # 9: superseded by 10 (same
        [*tuan, "3", "3", "2021-12-01", "pfizer", "", ""],  # 10: day, higher dose)
    ]


def test_one_credential_per_citizen_with_the_latest_dose(signer, verifier, tmp_path):
    """SPEC: one credential per citizen, holding the latest dose. A citizen on several rows
    got one credential per row; now the latest dose is signed (then the highest dose
    number; of equal rows the first) and the other rows are reported as superseded, apart
    from the invalid rows. Rows sharing an ID number but not the person are all refused."""
    src = write_csv(tmp_path / "r.csv", _citizen_rows())
    out = tmp_path / "out"
    result = issue.issue_batch(signer, src, out, workers=2, today=TODAY)
    assert result.issued == 4 and result.total_rows == 10
    assert sorted(result.superseded) == [
        (1, "superseded by row 3 (spreadsheet row 4; dose 2/2 on 2021-10-01): one credential "
            "per citizen, with the latest dose"),
        (5, "same dose as row 4 (spreadsheet row 5; dose 2/2 on 2021-09-01): one credential "
            "per citizen"),
        (9, "superseded by row 10 (spreadsheet row 11; dose 3/3 on 2021-12-01): one credential "
            "per citizen, with the latest dose")]
    rejected = dict(result.rejected)
    assert sorted(rejected) == [6, 7, 8]
    assert rejected[6] == ("same ID number as row 7 (spreadsheet row 8), which has another "
                           "full name: neither is signed (a credential must not go to the wrong "
                           "person); correct the wrong row and run again")
    assert rejected[7].startswith("same ID number as row 6 (spreadsheet row 7), which has "
                                  "another full name")
    assert "unknown vaccine" in rejected[8]
    manifest = _read(out / "manifest.csv")
    assert [int(m["row"]) for m in manifest] == [2, 3, 4, 10]
    doses = [verifier.verify_text(m["hc1"]).credential["v"][0] for m in manifest]
    assert [(d["dn"], d["sd"], d["dt"]) for d in doses] == [
        (2, 2, "2021-09-15"), (2, 2, "2021-10-01"), (2, 2, "2021-09-01"), (3, 3, "2021-12-01")]
    assert sorted(int(r["row"]) for r in _read(out / "rejects.csv")) == [1, 5, 6, 7, 8, 9]
    again = issue.issue_batch(signer, src, out, workers=1, today=TODAY)
    assert (again.issued, again.already) == (0, 4)
    assert again.superseded == result.superseded and again.rejected == result.rejected
    assert _read(out / "manifest.csv") == manifest


def test_one_per_citizen_resumes_without_signing_twice(signer, tmp_path):
    """Interrupted after its first chunk and run again, a batch with citizens on several
    rows signs each kept row once; a row an earlier run signed stays "already issued"."""
    import multiprocessing

    rows = good_rows(300, seed=19)
    rows[9][4:7] = ["1", "2", "2021-05-01"]  # row 10: dose 1 of the citizen of row 250
    rows[249][:4] = rows[9][:4]
    rows[249][4:7] = ["2", "2", "2021-08-01"]
    rows[199] = list(rows[29])  # row 200: a copy of row 30
    src = write_csv(tmp_path / "r.csv", rows)
    out = tmp_path / "out"

    def interrupt(done, _total):
        if done >= 64:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        issue.issue_batch(signer, src, out, workers=2, progress=interrupt, today=TODAY)
    assert not multiprocessing.active_children()
    result = issue.issue_batch(signer, src, out, workers=2, today=TODAY)
    assert result.already >= 64 and result.issued + result.already == 298
    assert [r for r, _ in result.superseded] == [10, 200] and not result.rejected
    with Ledger(out / "ledger.sqlite") as ledger:
        entries = list(ledger.entries())
    assert sorted(e.row for e in entries) == [r for r in range(1, 301) if r not in (10, 200)]
    assert len({e.uvci for e in entries}) == 298
    # A later export adds a citizen's next dose below the row signed for the first: that
    # row stays issued (not reported as superseded) and the new dose is signed.
    one = write_csv(tmp_path / "one.csv", [rows[9]])
    out1 = tmp_path / "out1"
    assert issue.issue_batch(signer, one, out1, workers=1, today=TODAY).issued == 1
    write_csv(one, [rows[9], rows[249]])
    later = issue.issue_batch(signer, one, out1, workers=1, today=TODAY)
    assert (later.issued, later.already, later.superseded) == (1, 1, [])


def test_csv_problems(signer, tmp_path):
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("name,sex\nA,Nam\n", encoding="utf-8")
    with pytest.raises(ValidationError, match="header lacks"):
        issue.issue_batch(signer, wrong, tmp_path / "o1")
    latin = tmp_path / "latin.csv"
    latin.write_bytes((",".join(HEADER) + "\n").encode() +
                      "Nguyễn Văn A,Nam".encode()[:5] + "é,x\n".encode("latin-1"))
    with pytest.raises(ValidationError, match=r"not UTF-8 \(line 2, byte 5 of that line\)"):
        issue.issue_batch(signer, latin, tmp_path / "o2")
    ragged = write_csv(tmp_path / "ragged.csv", good_rows(3, seed=9))
    with ragged.open("a", encoding="utf-8") as fh:
        fh.write("only,three,fields\n")
        fh.write(",".join(good_rows(1, seed=10)[0]) + ",extra\n")
    result = issue.issue_batch(signer, ragged, tmp_path / "o3", workers=1)
    assert result.issued == 3
    assert dict(result.rejected) == {4: "the row has too few fields",
                                     5: "the row has 1 field(s) too many"}


@pytest.mark.parametrize("on_terminal", [False, True], ids=["piped", "progress-bar"])
def test_an_oversized_field_rejects_its_row_and_the_batch_goes_on(signer, tmp_path,
                                                                   on_terminal):
    """csv's default limit (128 KiB a field) aborted the whole batch on one 140 KB name,
    0 issued; the row is read and rejected by validation, with its row number. A field past
    the (generous, bounded) limit is still an error, which names the line."""
    progress = (lambda _done, _total: None) if on_terminal else None
    rows = good_rows(4, seed=17)
    rows[1][0] = "Nguyễn " + "A" * 140_000
    src = write_csv(tmp_path / "big.csv", rows)
    result = issue.issue_batch(signer, src, tmp_path / "out", workers=1, progress=progress)
    assert result.issued == 3
    assert result.rejected == [(2, "the full name is longer than 160 characters")]
    rows[1][0] = "Nguyễn Văn A"
    rows[2][8] = "L" * (issue.FIELD_LIMIT + 1)  # the lot of row 3, on line 4
    huge = write_csv(tmp_path / "huge.csv", rows)
    with pytest.raises(ValidationError, match=r"the row on line 4 has a field over "
                       r"1,048,576 bytes"):
        issue.issue_batch(signer, huge, tmp_path / "out2", workers=1, progress=progress)
    # a quote opened on line 3 and never closed: the field grows past the limit further
    # down, and the error names where the quote is, not where reading stopped
    rows = good_rows(2, seed=17) + [[f"Nguyễn Văn {i}", *good_rows(1, seed=i)[0][1:]]
                                    for i in range(16_000)]
    rows[1][9] = '"Trạm Y tế'  # written as """Trạm Y tế": fine; made an open quote below
    text = write_csv(tmp_path / "open.csv", rows).read_text(encoding="utf-8")
    (tmp_path / "open.csv").write_text(text.replace('"""Trạm Y tế"', '"Trạm Y tế', 1),
                                       encoding="utf-8")
    with pytest.raises(ValidationError, match=r"the row on line 3 has a field over") as e:
        issue.issue_batch(signer, tmp_path / "open.csv", tmp_path / "out3", workers=1)
    assert "line 3" in e.value.hint and not (tmp_path / "out3").exists()


@pytest.mark.parametrize("closed", [False, True], ids=["to-the-end", "closed-later"])
def test_an_open_quote_that_swallows_rows_stops_the_batch(signer, tmp_path, closed):
    """A quote typed into a field and not closed on its line made csv read the rows after
    it, other citizens, as that field's text: the batch signed the rows before it, rejected
    that one as "too few fields" and said nothing of the others (22 rows, "of 3 rows",
    exit 0). It now stops before signing anything, naming the line of the quote."""
    rows = good_rows(22, seed=31)
    if closed:
        rows[12][9] = 'Trạm "A" xã'  # a later field with quotes: the open one ends there
    text = write_csv(tmp_path / "r.csv", rows).read_text(encoding="utf-8").splitlines(True)
    text[3] = text[3].replace(",", ',"', 1)  # row 3 (line 4): a quote opens its 2nd field
    (tmp_path / "r.csv").write_text("".join(text), encoding="utf-8")
    with pytest.raises(ValidationError, match=r"the row on line 4 runs over the lines after "
                       r"it \(to line \d+\): a quote .* nothing was signed") as e:
        issue.issue_batch(signer, tmp_path / "r.csv", tmp_path / "out", workers=1)
    assert "line 4" in e.value.hint
    assert not (tmp_path / "out").exists()


def test_a_cell_with_a_line_break_is_still_a_row(signer, tmp_path):
    """A spreadsheet cell with a line break (Alt+Enter) is written as a quoted field over
    two lines, with the row's number of fields and no separator in it: read as one row
    (its value on one line), not taken for rows a quote not closed took in."""
    rows = good_rows(3, seed=32)
    rows[1][9] = "Trạm Y tế\nxã Dương Tơ"
    result = issue.issue_batch(signer, write_csv(tmp_path / "r.csv", rows), tmp_path / "out",
                               workers=1)
    assert result.issued == 3 and not result.rejected


def test_rows_taken_in_with_the_right_number_of_fields_stop_the_batch(signer, tmp_path):
    """A quote opened in a name and closed by a quote in the next line's name: the row
    has the header's number of fields, its name the rest of its line and the next one's
    start, and the next citizen would be gone. The separators in the name tell."""
    rows = good_rows(4, seed=33)
    text = write_csv(tmp_path / "r.csv", rows).read_text(encoding="utf-8").splitlines(True)
    text[2] = '"' + text[2]  # row 2's name opens a quote...
    text[3] = text[3].replace(" ", ' "', 1)  # ...closed inside row 3's name
    (tmp_path / "r.csv").write_text("".join(text), encoding="utf-8")
    with pytest.raises(ValidationError, match=r"the row on line 3 runs over the lines after "
                       r"it \(to line 4\)"):
        issue.issue_batch(signer, tmp_path / "r.csv", tmp_path / "out", workers=1)


def test_a_quote_in_a_column_not_read_closed_on_the_next_line_stops_the_batch(signer,
                                                                              tmp_path):
    """A quote opened in a column vaxqr does not read (a note) and closed by the next
    line's quoted note: the row has the header's number of fields, its sex, date of birth
    and ID number those of the next citizen, who was gone. No one line of the note holds a
    whole row's separators (the first the ones after the note, the last the ones before):
    the batch signed the first name with the second citizen's ID number. The separators of
    the cell's lines together tell."""
    header = [HEADER[0], "note", *HEADER[1:]]
    rows = [[r[0], "", *r[1:]] for r in good_rows(3, seed=34)]
    rows[1][1] = "y"
    path = tmp_path / "r.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows([header, *rows])
    text = path.read_text(encoding="utf-8").splitlines(True)
    text[1] = text[1].replace(",,", ',"ghi chú,', 1)  # row 1's note opens a quote...
    text[2] = text[2].replace(",y,", ',"y",', 1)  # ...closed by row 2's quoted note
    path.write_text("".join(text), encoding="utf-8")
    with pytest.raises(ValidationError, match=r"the row on line 2 runs over the lines after "
                       r"it \(to line 3\)"):
        issue.issue_batch(signer, path, tmp_path / "out", workers=1)
    assert not (tmp_path / "out").exists()
    # an address over lines in that column, with a few commas, is still read as one row
    rows[1][1] = "12 Lê Lợi,\nphường 3,\nTP Huế"
    with path.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows([header, *rows])
    result = issue.issue_batch(signer, path, tmp_path / "out2", workers=1)
    assert result.issued == 3 and not result.rejected


def _snapshot(out):
    return {p.relative_to(out): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(out.rglob("*")) if p.is_file() and "ledger" not in p.name}


def test_another_csv_into_the_same_directory_is_refused_and_writes_nothing(signer, tmp_path):
    """Images are named by row and the ledger knows rows by the CSV's name: b.csv (a copy
    of a.csv) into a.csv's directory signed every row again, overwrote a.csv's images and
    left a manifest of b.csv alone. One source per directory; the same CSV still resumes."""
    import shutil

    a = write_csv(tmp_path / "a.csv", good_rows(6, seed=18))
    b = tmp_path / "b.csv"
    shutil.copy(a, b)
    out = tmp_path / "out"
    assert issue.issue_batch(signer, a, out, workers=1).issued == 6
    before = _snapshot(out)
    with Ledger(out / "ledger.sqlite") as ledger:
        entries = list(ledger.entries())
    for progress in (None, lambda _done, _total: None):
        with pytest.raises(StorageError, match=r"a\.csv; b\.csv is another CSV") as info:
            issue.issue_batch(signer, b, out, workers=2, progress=progress, card="png")
        assert "new output directory for b.csv" in (info.value.hint or "")
        assert "run a.csv again" in (info.value.hint or "")
    assert _snapshot(out) == before and not (out / "cards").exists()
    with Ledger(out / "ledger.sqlite") as ledger:
        assert list(ledger.entries()) == entries and ledger.sources() == ["a.csv"]
    again = issue.issue_batch(signer, a, out, workers=1)  # the same CSV: a resume
    assert again.issued == 0 and again.already == 6
    assert _read(out / "manifest.csv") == [
        {"row": str(e.row), "uvci": e.uvci, "full_name": e.full_name, "file": e.file,
         "hc1": e.hc1, "iat": str(e.iat), "exp": str(e.exp)} for e in entries]
    assert issue.issue_batch(signer, b, tmp_path / "out-b", workers=1).issued == 6


def test_other_signer_refused(signer, tmp_path):
    src = write_csv(tmp_path / "r.csv", good_rows(2))
    out = tmp_path / "out"
    issue.issue_batch(signer, src, out, workers=1)
    os.chmod(SIGNER.parent / "30760" / "signer.key", 0o600)
    other = load_signer(SIGNER.parent / "30760", b"vaxqr-demo")
    with pytest.raises(StorageError, match="another commune"):
        issue.issue_batch(other, src, out, workers=1)


KILL_SCRIPT = """
import sys
from pathlib import Path
from vaxqr.certs import load_signer
from vaxqr.issue import issue_batch
s = load_signer(Path(sys.argv[1]), b"vaxqr-demo")
issue_batch(s, Path(sys.argv[2]), Path(sys.argv[3]), workers=2)
"""


def test_kill_minus_9_resume(tmp_path):
    """kill -9 a 2,000-row batch at random points three times; the final run completes it:
    every row exactly once, ledger = manifest = images, no temporary file left."""
    import random

    rng = random.Random(42)
    n = 2000
    src = write_csv(tmp_path / "big.csv", good_rows(n, seed=5))
    out = tmp_path / "out"
    script = tmp_path / "run.py"
    script.write_text(KILL_SCRIPT)
    cmd = [sys.executable, str(script), str(SIGNER), str(src), str(out)]
    kills = 0

    def images() -> int:
        return len(list((out / "qr").glob("*.png"))) if (out / "qr").is_dir() else 0

    for _ in range(3):
        start = images()
        proc = subprocess.Popen(cmd, start_new_session=True)
        # kill at a random point once this run is writing images: a fixed delay can outlast
        # the whole batch on a fast machine (2,000 rows take ~1.5 s)
        deadline = time.monotonic() + 60
        while proc.poll() is None and images() <= start and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.4))
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
    subprocess.run(cmd, check=True, timeout=300)
    assert kills >= 1
    manifest = _read(out / "manifest.csv")
    rows = [int(m["row"]) for m in manifest]
    assert rows == list(range(1, n + 1))
    with Ledger(out / "ledger.sqlite") as ledger:
        entries = list(ledger.entries())
    assert len(entries) == n and len({e.uvci for e in entries}) == n
    assert {e.uvci for e in entries} == {m["uvci"] for m in manifest}
    images = sorted((out / "qr").glob("*.png"))
    assert [p.name for p in images] == [Path(m["file"]).name for m in manifest]
    assert not list(out.rglob("*.tmp"))
    from PIL import Image

    for p in images[:: n // 20]:
        Image.open(p).verify()


@pytest.fixture
def small_fs(tmp_path):
    """A 1 MiB tmpfs (root only): a real disk-full condition, later enlarged."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    with mounted_tmpfs(mnt, "size=1m"):
        yield mnt


def test_disk_full_is_clear_and_resumable(signer, small_fs, tmp_path):
    n = 2500
    src = write_csv(tmp_path / "r.csv", good_rows(n, seed=8))
    out = small_fs / "out"
    with pytest.raises(StorageError) as info:
        issue.issue_batch(signer, src, out, workers=2)
    assert "disk full" in str(info.value)
    assert info.value.hint and "run the same command again" in info.value.hint
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_fs)], check=True)
    result = issue.issue_batch(signer, src, out, workers=2)
    manifest = _read(out / "manifest.csv")
    assert [int(m["row"]) for m in manifest] == list(range(1, n + 1))
    assert len({m["uvci"] for m in manifest}) == n
    assert result.issued + result.already == n
    assert len(list((out / "qr").glob("*.png"))) == n
    assert not list(out.rglob("*.tmp"))


def test_images_left_empty_or_cut_short_by_a_power_loss_are_restored(signer, tmp_path):
    # Batch images are written atomically but not fsynced one by one; after a power loss
    # a renamed image can be empty, zero-filled or cut short. The re-run must find each
    # such file and re-render it from the ledger, with the credential the ledger holds.
    from vaxqr.qr import decode_image

    src = write_csv(tmp_path / "r.csv", good_rows(12, seed=9))
    out = tmp_path / "out"
    issue.issue_batch(signer, src, out, workers=1)
    manifest = _read(out / "manifest.csv")
    files = [out / m["file"] for m in manifest]
    assert all(issue.intact(f) for f in files)
    size = files[1].stat().st_size
    files[0].write_bytes(b"")  # delayed allocation never happened
    files[1].write_bytes(b"\0" * size)  # zero-filled, right size
    files[2].write_bytes(files[2].read_bytes()[: size // 2])  # cut short: no IEND
    files[3].write_bytes(files[3].read_bytes()[:-1])  # last byte missing
    files[4].unlink()  # rename lost
    damaged = files[:5]
    assert not any(issue.intact(f) for f in damaged)
    again = issue.issue_batch(signer, src, out, workers=1)
    assert again.issued == 0 and again.already == 12
    assert again.images_restored == 5
    assert _read(out / "manifest.csv") == manifest
    for f, m in zip(files, manifest, strict=True):
        assert issue.intact(f)
        assert [c.text for c in decode_image(f)] == [m["hc1"]]


@pytest.mark.parametrize("fmt", ["png", "svg"])
def test_an_image_zero_filled_in_its_middle_by_a_power_loss_is_restored(signer, tmp_path, fmt):
    # A power loss can leave a block in the middle of a file unwritten (zeros) while its
    # first and last bytes are right (found by scripts/chaos_issue.py): such an image does
    # not decode, so the re-run must find it and render it again from the ledger.
    from vaxqr.qr import decode_image

    src = write_csv(tmp_path / "r.csv", good_rows(4, seed=21))
    out = tmp_path / "out"
    issue.issue_batch(signer, src, out, workers=1, fmt=fmt)
    manifest = _read(out / "manifest.csv")
    image = out / manifest[1]["file"]
    data = image.read_bytes()
    mid = len(data) // 2
    image.write_bytes(data[:mid - 64] + bytes(128) + data[mid + 64:])
    assert not issue.intact(image)
    again = issue.issue_batch(signer, src, out, workers=1, fmt=fmt)
    assert again.images_restored == 1
    assert image.read_bytes() == data
    if fmt == "png":
        assert [c.text for c in decode_image(image)] == [manifest[1]["hc1"]]


def test_a_card_zero_filled_in_its_middle_by_a_power_loss_is_restored(signer, tmp_path):
    src = write_csv(tmp_path / "r.csv", good_rows(3, seed=23))
    out = tmp_path / "out"
    issue.issue_batch(signer, src, out, workers=1, card="pdf")
    cards = sorted((out / "cards").iterdir())
    assert len(cards) == 3 and all(issue.intact(c) for c in cards)
    data = cards[1].read_bytes()
    block = (len(data) // 2) & ~4095  # a lost page of the file: 4 KiB of zeros
    cards[1].write_bytes(data[:block] + bytes(4096) + data[block + 4096:])
    assert not issue.intact(cards[1])
    again = issue.issue_batch(signer, src, out, workers=1, card="pdf")
    assert (again.images_restored, again.cards_written) == (0, 1)
    assert cards[1].read_bytes() == data


def test_a_resume_that_signs_nothing_syncs_the_earlier_images_before_the_manifest(
        signer, tmp_path, monkeypatch):
    # A run killed during its final sync leaves every credential recorded and its images
    # written, maybe not yet on disk. The re-run signs nothing, but must still sync those
    # images before its manifest (fsynced) lists them: else a power loss right after it
    # leaves a durable manifest that lists images lost with the page cache.
    src = write_csv(tmp_path / "r.csv", good_rows(10, seed=22))
    out = tmp_path / "out"
    issue.issue_batch(signer, src, out, workers=1)
    (out / "manifest.csv").unlink()  # as the kill left it: no manifest yet
    events: list[str] = []
    real_sync, real_replace = os.sync, os.replace

    def sync():
        events.append("sync")
        real_sync()

    def replace(src_, dst, *args, **kwargs):
        events.append(Path(dst).name)
        real_replace(src_, dst, *args, **kwargs)

    monkeypatch.setattr(os, "sync", sync)
    monkeypatch.setattr(os, "replace", replace)
    again = issue.issue_batch(signer, src, out, workers=1)
    assert again.issued == 0 and again.already == 10
    assert "sync" in events and events.index("sync") < events.index("manifest.csv")


def test_intact_knows_each_output_format(tmp_path):
    from vaxqr.qr import to_png, to_svg

    png, svg, pdf = tmp_path / "a.png", tmp_path / "a.svg", tmp_path / "a.pdf"
    png.write_bytes(to_png("HC1:TEST"))
    svg.write_text(to_svg("HC1:TEST"), encoding="utf-8")
    pdf.write_bytes(b"%PDF-1.4\n...\nstartxref\n12\n%%EOF\n")
    assert issue.intact(png) and issue.intact(svg) and issue.intact(pdf)
    for f in (png, svg, pdf):
        data = f.read_bytes()
        f.write_bytes(data[:-8])
        assert not issue.intact(f), f.name
        f.write_bytes(b"")
        assert not issue.intact(f), f.name
    assert not issue.intact(tmp_path / "missing.png")


@pytest.mark.parametrize("unnamed", [True, False], ids=["o_tmpfile", "named_temporary"])
def test_batch_dir_writes_whole_files_with_exact_mode(tmp_path, unnamed):
    from vaxqr.fileio import PUBLIC, BatchDir

    old = os.umask(0o077)  # would remove the group and other read bits
    try:
        d = BatchDir(tmp_path)
    finally:
        os.umask(old)
    d._unnamed = d._unnamed and unnamed
    try:
        d.write("a.png", b"first")
        d.write("a.png", b"second, longer")  # replaces the old file
        d.write("b.png", b"")
    finally:
        d.close()
    assert (tmp_path / "a.png").read_bytes() == b"second, longer"
    assert (tmp_path / "b.png").read_bytes() == b""
    assert (tmp_path / "a.png").stat().st_mode & 0o777 == PUBLIC
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png"]


def test_batch_dir_falls_back_to_named_temporaries(tmp_path, monkeypatch):
    from vaxqr import fileio

    real_open = os.open

    def no_tmpfile(path, flags, *args, **kwargs):
        if flags & getattr(os, "O_TMPFILE", 0) == getattr(os, "O_TMPFILE", -1):
            raise OSError(95, "Operation not supported")  # EOPNOTSUPP
        return real_open(path, flags, *args, **kwargs)

    d = fileio.BatchDir(tmp_path)
    monkeypatch.setattr(os, "open", no_tmpfile)
    try:
        d.write("a.png", b"data")
        d.write("b.png", b"more")
    finally:
        d.close()
    assert not d._unnamed
    assert (tmp_path / "a.png").read_bytes() == b"data"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png"]


def test_batch_with_cards_cleans_its_temporaries(signer, tmp_path):
    src = write_csv(tmp_path / "r.csv", good_rows(2, seed=4))
    out = tmp_path / "out"
    (out / "cards").mkdir(parents=True)
    (out / "cards" / ".0000001.png.4242.tmp").write_bytes(b"left by a killed run")
    result = issue.issue_batch(signer, src, out, workers=2, card="png")
    assert result.issued == 2
    assert not list(out.rglob("*.tmp"))
    manifest = _read(out / "manifest.csv")
    assert [m["card"] for m in manifest] == ["cards/0000001.png", "cards/0000002.png"]
    assert all(issue.intact(out / m["card"]) and issue.intact(out / m["file"])
               for m in manifest)


def test_record_and_signer_info_copy_and_pickle_in_both_builds():
    """SignerInfo is documented picklable for worker processes and Record is a frozen
    dataclass: copy and pickle work on both. Compiled by mypyc (issue.py is), the default
    reconstruction set each field on a blank object and raised FrozenInstanceError."""
    import copy
    import datetime as _dt
    import pickle

    from vaxqr import issue as _issue

    rec = _issue.parse_record(1, {
        "full_name": "Nguyễn Thị Thúy Hòa", "sex": "Nữ", "dob": "1990-05-17",
        "id_number": "091190012345", "dose_number": "2", "total_doses": "2",
        "vaccination_date": "2021-12-01", "vaccine": "moderna", "lot": "L1"},
        today=_dt.date(2022, 1, 1))
    info = _issue.SignerInfo(b"pem", b"12345678", _dt.datetime(2021, 1, 1, tzinfo=_dt.UTC),
                             _dt.datetime(2023, 1, 1, tzinfo=_dt.UTC), "91", "31078", "VN",
                             "Xã A", "Kiên Giang", True)
    for obj in (rec, info):
        for clone in (copy.copy(obj), copy.deepcopy(obj), pickle.loads(pickle.dumps(obj))):
            assert type(clone) is type(obj) and clone == obj
    assert pickle.loads(pickle.dumps(rec)).digest() == rec.digest()


def _dictreader_rows(path):
    """What read_csv gave when it was csv.DictReader: the reference for the faster reader."""
    with path.open("rb") as fh:
        import io

        reader = csv.DictReader(io.TextIOWrapper(fh, encoding="utf-8-sig", newline=""))
        reader.fieldnames = [h.strip().lower() for h in (reader.fieldnames or [])]
        out = []
        for n, row in enumerate(reader, 1):
            extra = row.pop(None, None)
            if extra:
                row["__error__"] = f"the row has {len(extra)} field(s) too many"
            elif any(row.get(c) is None for c in issue.REQUIRED):
                row["__error__"] = "the row has too few fields"
            out.append((n, row))
        return out


_CELL = st.text(alphabet=st.sampled_from(list('ab ,"\r\n;é')), max_size=6)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header=st.permutations([*HEADER, "Extra", " DOB ", "lot"]).flatmap(
           lambda h: st.integers(len(h) - 6, len(h)).map(lambda k: h[:k])),
       rows=st.lists(st.lists(_CELL, max_size=13), max_size=6),
       blank=st.booleans(), crlf=st.booleans())
def test_read_csv_gives_what_dictreader_gave(tmp_path, header, rows, blank, crlf):
    """Headers with every column, some missing, repeated ("dob" and " DOB "), extra."""
    path = tmp_path / "in.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\r\n" if crlf else "\n")
        w.writerow(header)
        for i, row in enumerate(rows):
            w.writerow(row)
            if blank and i == 0:
                fh.write("\n")
    missing = [c for c in issue.REQUIRED if c not in [h.strip().lower() for h in header]]
    if missing:
        with pytest.raises(ValidationError, match="header lacks"):
            list(issue.read_csv(path))
        return
    assert list(issue.read_csv(path)) == _dictreader_rows(path)


@settings(max_examples=300, deadline=None)
@given(names=st.lists(st.text(alphabet=st.sampled_from(list('aé ,"\r\n\t;')) | st.characters(),
                              max_size=12), min_size=1, max_size=5),
       card=st.sampled_from([None, "png", "pdf"]), no_file=st.booleans())
def test_manifest_text_is_what_csv_writer_writes(names, card, no_file):
    import io

    from vaxqr.ledger import Entry

    entries = [Entry(f"URN:UVCI:01:VN:091/31078/ABC{i}#X", "r.csv", i + 1, "h", name, "k",
                     1_600_000_000 + i, 1_700_000_000, "HC1:6BF+70790T9WJWG.FKY*4GO0",
                     "" if no_file else issue.image_name(i + 1, "png"))
               for i, name in enumerate(names)]
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(issue._manifest_row(e, card) for e in entries)
    assert issue._manifest_text(entries, card) == buf.getvalue()


def test_manifest_pieces_keep_each_hc1_in_an_ascii_piece():
    """A Vietnamese name is a piece of its own: the 550-character HC1 beside it stays an
    ASCII string, which the manifest's text file writes as it is instead of encoding it
    character by character; the pieces written are the manifest's text."""
    from vaxqr.ledger import Entry

    hc1 = "HC1:" + "6BF+70790T9WJWG.FKY*4GO0" * 20
    entries = [Entry(f"URN:UVCI:01:VN:091/31078/ABC{i}#X", "r.csv", i + 1, "h", name, "k",
                     1_600_000_000, 1_700_000_000, hc1, issue.image_name(i + 1, "png"))
               for i, name in enumerate(["Nguyễn Thị Ánh Hồng", "Pham Van An", "Lê, Văn"])]
    pieces = issue._manifest_pieces(entries, "pdf")
    assert "".join(pieces) == issue._manifest_text(entries, "pdf")
    assert [p for p in pieces if not p.isascii()] == ["Nguyễn Thị Ánh Hồng",
                                                        '3,URN:UVCI:01:VN:091/31078/ABC2#X,'
                                                        f'"Lê, Văn",qr/0000003.png,{hc1},'
                                                        "1600000000,1700000000,"
                                                        "cards/0000003.pdf\n"]
    assert sum(hc1 in p for p in pieces if p.isascii()) == 2


@given(st.integers(0, 10**9), st.sampled_from(["png", "svg", "pdf"]))
def test_row_file_is_the_row_in_seven_digits(row, ext):
    assert issue.row_file(row, ext) == f"{row:07d}.{ext}"
    assert issue.image_name(row, ext) == f"qr/{row:07d}.{ext}"
    assert issue.card_name(row, ext) == f"cards/{row:07d}.{ext}"


def _kill_a_renderer_once(done, _total):
    import multiprocessing

    children = multiprocessing.active_children()
    if done >= 200 and children and not _kill_a_renderer_once.killed:
        os.kill(children[0].pid, signal.SIGKILL)
        _kill_a_renderer_once.killed = True


def test_a_renderer_killed_mid_batch_is_a_clear_error_and_the_run_resumes(signer, tmp_path):
    import multiprocessing

    n = 1500
    src = write_csv(tmp_path / "r.csv", good_rows(n, seed=12))
    out = tmp_path / "out"
    _kill_a_renderer_once.killed = False
    with pytest.raises(StorageError, match="rendering process ended") as info:
        issue.issue_batch(signer, src, out, workers=2, progress=_kill_a_renderer_once)
    assert _kill_a_renderer_once.killed
    assert "run the same command again" in (info.value.hint or "")
    assert not multiprocessing.active_children()
    result = issue.issue_batch(signer, src, out, workers=2)
    assert result.issued + result.already == n and not result.rejected
    manifest = _read(out / "manifest.csv")
    assert [int(m["row"]) for m in manifest] == list(range(1, n + 1))
    assert all(issue.intact(out / m["file"]) for m in manifest)
    assert not multiprocessing.active_children()


def test_ctrl_c_mid_batch_stops_every_process_and_the_run_resumes(signer, tmp_path):
    import multiprocessing

    n = 1200
    src = write_csv(tmp_path / "r.csv", good_rows(n, seed=13))
    out = tmp_path / "out"

    def interrupt(done, _total):
        if done >= 300:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        issue.issue_batch(signer, src, out, workers=3, progress=interrupt)
    assert not multiprocessing.active_children()
    assert not (out / "manifest.csv").exists()
    result = issue.issue_batch(signer, src, out, workers=3)
    assert result.already >= 300 and result.issued + result.already == n
    manifest = _read(out / "manifest.csv")
    assert [int(m["row"]) for m in manifest] == list(range(1, n + 1))
    assert len({m["uvci"] for m in manifest}) == n
    assert all(issue.intact(out / m["file"]) for m in manifest)


def _children_of(pid):
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as fh:
                    stat = fh.read().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == pid:
                kids.append(int(entry))
    return kids


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="finds the processes through /proc")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "term"])
def test_renderers_end_quietly_when_the_signing_process_is_killed(tmp_path, sig):
    """The signing process alone killed: its forked renderers see their task pipe close
    and exit, instead of waiting forever (each closed the parent's pipe ends), and print no
    traceback on the way (a renderer with a reply for a parent that is gone)."""
    src = write_csv(tmp_path / "big.csv", good_rows(3000, seed=14))
    out = tmp_path / "out"
    script = tmp_path / "run.py"
    script.write_text(KILL_SCRIPT.replace("workers=2", "workers=3"))
    proc = subprocess.Popen([sys.executable, str(script), str(SIGNER), str(src), str(out)],
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (
                (out / "qr").is_dir() and any((out / "qr").iterdir())):
            time.sleep(0.01)
        kids = _children_of(proc.pid)
        assert len(kids) == 2
        proc.send_signal(sig)
        proc.wait()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and any(_alive(k) for k in kids):
            time.sleep(0.05)
        assert not any(_alive(k) for k in kids)
        assert proc.stderr is not None
        err = proc.stderr.read().decode()  # the renderers' stderr too: all ended
        assert "Traceback" not in err and "Error" not in err, err
    finally:
        if proc.poll() is None:
            proc.kill()


def test_a_renderer_error_reaches_the_parent_whole_or_as_a_storage_error():
    import pickle

    from vaxqr.errors import DecodeError

    full = StorageError("disk full while writing x.png", hint="free some space")
    assert issue._portable(full) is full
    again = pickle.loads(pickle.dumps(issue._portable(full)))
    assert type(again) is StorageError and again.hint == "free some space"
    odd = issue._portable(DecodeError("bad text", step="base45", hint="scan again"))
    assert type(odd) is StorageError  # DecodeError needs `step`: pickle cannot rebuild it
    assert str(odd) == "rendering failed: bad text" and odd.hint == "scan again"
    bug = issue._portable(ValueError("boom"))
    assert type(bug) is StorageError and str(bug) == "rendering failed: ValueError: boom"


def test_renderers_fork_before_the_first_progress_call_and_default_to_at_most_6(
        signer, tmp_path, monkeypatch):
    """A progress bar may start a thread on its first call; the forks come before it. And
    the default process count is the number of cores, at most 6 (one signing process
    keeps only about four renderers busy)."""
    import multiprocessing

    src = write_csv(tmp_path / "r.csv", good_rows(40, seed=15))
    seen = []

    def progress(done, _total):
        if not seen:
            seen.append(len(multiprocessing.active_children()))

    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    result = issue.issue_batch(signer, src, tmp_path / "out", progress=progress)
    assert result.issued == 40 and seen == [issue.DEFAULT_PROCESSES_MAX - 1]


def test_renderers_that_cannot_start_are_a_storage_error(signer, tmp_path, monkeypatch):
    import errno
    import multiprocessing

    real = multiprocessing.get_context

    class NoPipes:
        def __getattr__(self, name):
            return getattr(real("fork"), name)

        def Pipe(self, duplex=True):
            raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr(multiprocessing, "get_context", lambda _method=None: NoPipes())
    src = write_csv(tmp_path / "r.csv", good_rows(3, seed=16))
    with pytest.raises(StorageError, match="cannot start 299 rendering processes: Too many "
                                           "open files") as info:
        issue.issue_batch(signer, src, tmp_path / "out", workers=300)
    assert "--workers" in (info.value.hint or "")
    assert not (tmp_path / "out" / "manifest.csv").exists()
    monkeypatch.undo()
    assert issue.issue_batch(signer, src, tmp_path / "out", workers=2).issued == 3


def test_a_renderer_that_failed_is_reported_by_its_error_even_when_found_on_send():
    """The renderer sent its error (a full disk) and exited just before the signing process
    sent it another task: the error it sent is raised, not "ended unexpectedly"."""
    import multiprocessing
    import pickle

    task_r, task_w = multiprocessing.Pipe(duplex=False)
    done_r, done_w = multiprocessing.Pipe(duplex=False)
    done_w.send_bytes(pickle.dumps(StorageError("disk full while writing qr/0000007.png",
                                                hint="free some space")))
    task_r.close()
    done_w.close()
    child = issue._Child(None, task_w, done_r)
    child.in_hand = 1
    with pytest.raises(StorageError, match="disk full") as info:
        child.send([(8, "HC1:X")])
    assert info.value.hint == "free some space"
    with pytest.raises(StorageError, match="ended unexpectedly"):  # nothing more to say
        child.send([(9, "HC1:X")])


@pytest.mark.skipif(not hasattr(os, "O_TMPFILE"), reason="unnamed files are Linux's")
@pytest.mark.parametrize("refusal", [None, 2, 1], ids=["linkat", "enoent", "eperm"])
def test_batch_dir_names_unnamed_files_by_linkat_or_falls_back_to_proc(tmp_path, refusal):
    """linkat(fd, "", dir, name, AT_EMPTY_PATH) names the file; where the kernel or the
    privileges refuse it (ENOENT before Linux 6.10 without CAP_DAC_READ_SEARCH, EPERM), the
    /proc/self/fd path serves from then on. Either way whole files, replaced atomically."""
    import ctypes

    from vaxqr.fileio import BatchDir

    d = BatchDir(tmp_path)
    if d._linkat is None:
        pytest.skip("no libc linkat here")
    calls = []
    real = d._linkat

    def linkat(*args):
        calls.append(args[3])
        if refusal is not None:
            ctypes.set_errno(refusal)
            return -1
        return real(*args)

    d._linkat = linkat
    try:
        d.write("a.png", b"first")
        d.write("a.png", b"second, longer")  # the name exists: replaced through /proc
        d.write("b.png", b"third")
    finally:
        d.close()
    assert (tmp_path / "a.png").read_bytes() == b"second, longer"
    assert (tmp_path / "b.png").read_bytes() == b"third"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png"]
    if refusal is None:
        assert calls == [b"a.png", b"a.png", b"b.png"] and d._linkat is linkat
    else:
        assert calls == [b"a.png"] and d._linkat is None  # asked once, then never again


def test_ledger_records_entries_as_given_all_or_none(tmp_path):
    """add_many hands the entries (tuples in column order) to SQLite as they are: what
    comes back is what went in, from a list or a generator, and a duplicate UVCI records
    none of its transaction."""
    from vaxqr.ledger import Entry

    def entry(i: int, uvci: str | None = None) -> Entry:
        return Entry(uvci or f"URN:UVCI:01:VN:091/31078/A{i:011d}#X", "r.csv", i, f"h{i}",
                     f"Nguyễn Văn {i}", "kid", 1_600_000_000 + i, 1_700_000_000 + i,
                     f"HC1:{i}", None if i % 2 else f"{i:07d}.png")

    first = [entry(i) for i in range(1, 6)]
    with Ledger(tmp_path / "l.sqlite") as ledger:
        ledger.add_many(first)
        ledger.add_many(entry(i) for i in range(6, 9))
        assert list(ledger.entries("r.csv")) == [entry(i) for i in range(1, 9)]
        assert ledger.find(first[2].uvci.lower()) == first[2]
        with pytest.raises(StorageError, match="duplicate credential"):
            ledger.add_many([entry(9), entry(10, uvci=first[0].uvci)])
        assert ledger.count() == 8 and ledger.find(entry(9).uvci) is None


def test_one_per_citizen_reads_names_as_people_do(signer, tmp_path):
    """Case and old/new tone placement are the same name (citizen.name_key): such rows are
    one citizen, not a conflict; a different letter still is."""
    base = ["Nữ", "1990-03-21", "091190536775"]
    rows = [["Lê Thị Hoà", *base, "1", "2", "2021-08-01", "pfizer", "", ""],
            ["LÊ THỊ HÒA", *base, "2", "2", "2021-09-01", "pfizer", "", ""]]
    result = issue.issue_batch(signer, write_csv(tmp_path / "a.csv", rows), tmp_path / "a",
                               workers=1, today=TODAY)
    assert result.issued == 1 and not result.rejected
    assert [r for r, _ in result.superseded] == [1]
    rows[1][0] = "Lê Thị Hóa"  # another tone: another name
    result = issue.issue_batch(signer, write_csv(tmp_path / "b.csv", rows), tmp_path / "b",
                               workers=1, today=TODAY)
    assert result.issued == 0 and sorted(dict(result.rejected)) == [1, 2]


def test_a_conflict_with_a_row_already_issued_says_so(signer, tmp_path):
    """A row added to the CSV after its first run, same ID number as an issued row but
    another person: not signed, and the message names the credential already out."""
    first = ["Bùi Thị Khoa", "Nữ", "1990-03-21", "091190536775", "2", "2", "2021-09-24",
             "pfizer", "", ""]
    src = write_csv(tmp_path / "r.csv", [first])
    out = tmp_path / "out"
    assert issue.issue_batch(signer, src, out, workers=1, today=TODAY).issued == 1
    (uvci,) = [m["uvci"] for m in _read(out / "manifest.csv")]
    write_csv(src, [first, ["Bùi Thị Hoa", *first[1:]]])
    again = issue.issue_batch(signer, src, out, workers=1, today=TODAY)
    assert (again.issued, again.already) == (0, 1)
    (reason,) = dict(again.rejected).values()
    assert f"already issued as {uvci}" in reason and "revoke" in reason
    assert "neither is signed" not in reason


def test_source_row_numbers_the_batch_and_must_increase(signer, tmp_path):
    """A CSV with a source_row column (reconcile's matched.csv) is numbered by it; a
    value that is not an increasing row number stops the batch before anything is signed."""
    rows = [[*r, str(n)] for r, n in zip(good_rows(3), (4, 9, 12), strict=True)]
    path = tmp_path / "matched.csv"

    def write() -> None:
        with path.open("w", encoding="utf-8", newline="") as fh:
            csv.writer(fh).writerows([[*HEADER, "source_row"], *rows])

    write()
    assert [n for n, _f in issue.read_csv(path, source_rows=True)] == [4, 9, 12]
    assert [n for n, _f in issue.read_csv(path)] == [1, 2, 3]
    result = issue.issue_batch(signer, path, tmp_path / "o", today=TODAY, workers=1,
                               source="vac.csv")
    assert result.issued == 3 and result.total_rows == 3
    with Ledger(tmp_path / "o" / "ledger.sqlite") as ledger:
        assert sorted(ledger.issued_rows("vac.csv")) == [4, 9, 12]
    assert sorted(p.name for p in (tmp_path / "o" / "qr").iterdir()) == [
        "0000004.png", "0000009.png", "0000012.png"]
    for bad in ("9", "x", "", "0"):
        rows[2][-1] = bad
        write()
        with pytest.raises(ValidationError, match="source_row"):
            issue.issue_batch(signer, path, tmp_path / "o2", today=TODAY, workers=1)
        assert not (tmp_path / "o2").exists()


def _person(name, dob, id_number, sex="Nam", dose="2", date="2021-09-01", vaccine="pfizer"):
    return [name, sex, dob, id_number, dose, "2", date, vaccine, "", ""]


def test_resumed_batches_speak_of_records_not_row_numbers(signer, tmp_path):
    """After rows were deleted or added, messages named the credential issued at the same
    row NUMBER (another citizen's), said 'neither is signed' of a signed record, advised
    revoking a valid credential that had only moved, and called a signed record superseded."""
    x = _person("Trần Văn Bình", "1985-02-03", "091085000002")
    a = _person("Lê Thị Lan", "1979-11-30", "091179000003", sex="Nữ")
    a_other = _person("Lê Thị Hương", "1979-11-30", "091179000003", sex="Nữ")
    bad = _person("Võ Văn Tuấn", "1970-01-01", "091070000005", vaccine="modern")
    good = _person("Võ Văn Tuấn", "1970-01-01", "091070000005")

    def run(name, *batches):
        src, out = tmp_path / f"{name}.csv", tmp_path / name
        results = []
        for rows in batches:
            write_csv(src, rows)
            results.append(issue.issue_batch(signer, src, out, workers=1, today=TODAY))
        uvcis = {m["full_name"]: m["uvci"] for m in _read(out / "manifest.csv")}
        return results[-1], dict(results[-1].rejected), uvcis

    # S1: X deleted; the conflict names A's credential, not X's (once at A's row number)
    last, rejected, uvcis = run("s1", [x, a], [a, a_other])
    assert last.already == 1 and list(rejected) == [2]
    assert f"already issued as {uvcis['Lê Thị Lan']}" in rejected[2]
    assert uvcis["Trần Văn Bình"] not in rejected[2]
    # S2: a row added above; A's signed record is "already issued", not "neither is signed"
    last, rejected, uvcis = run("s2", [a], [x, a, a_other])
    assert sorted(rejected) == [1, 3] and "neither is signed" not in rejected[3]
    assert "has moved to another row" in rejected[1]  # X's row number is A's credential's
    assert f"already issued as {uvcis['Lê Thị Lan']}" in rejected[3]
    # S6: a duplicate deleted as the rejects file invites, a rejected row fixed below it: the
    # fixed row's number is held by a credential that only moved: no advice to revoke it
    last, rejected, uvcis = run("s6", [a, a, x, bad], [a, x, good])
    assert (last.already, last.issued) == (2, 0) and list(rejected) == [3]
    assert "has moved to another row" in rejected[3] and "revoke" not in rejected[3]
    # S4: a signed record moved down by an added row is already issued, not superseded
    a1 = _person("Lê Thị Lan", "1979-11-30", "091179000003", sex="Nữ", dose="1",
                 date="2021-07-01")
    last, rejected, uvcis = run("s4", [a1], [x, a1, a])
    assert last.already == 1 and last.superseded == [] and last.issued == 1  # A's dose 2
    assert list(rejected) == [1] and "has moved to another row" in rejected[1]  # X


def test_resumed_counts_each_signed_record_once(signer, tmp_path):
    """Copies of a signed record were counted 'already' once each, and a signed record was
    reported superseded by a copy that differs only in the name's case (then signed too)."""
    x1 = _person("Nguyễn Văn An", "1985-03-02", "091085000002", dose="1", date="2021-08-01")
    x2 = [x1[0].upper(), *x1[1:]]
    bad = [*x1[:6], "2099-08-01", *x1[7:]]
    d2 = _person("Nguyễn Văn An", "1985-03-02", "091085000002", dose="2", date="2021-10-01")
    for name, runs, want in (
        ("case", ([bad, x1], [x2, x1]), (0, 1, [1])),   # X1 kept: it is the signed one
        ("copies", ([x1, x1], [x1, x1, d2]), (1, 1, [2])),  # one credential, counted once
    ):
        src, out = tmp_path / f"{name}.csv", tmp_path / name
        for rows in runs:
            write_csv(src, rows)
            last = issue.issue_batch(signer, src, out, workers=1, today=TODAY)
        assert (last.issued, last.already, [r for r, _ in last.superseded]) == want, name
        assert last.issued + last.already + len(last.rejected) + len(last.superseded) == \
            len(runs[-1])


def test_chaos_kill_points_then_a_power_loss_resume_to_one_credential_per_valid_row(tmp_path):
    """scripts/chaos_issue.py's machinery at fixed points: `vaxqr issue` SIGKILLed (whole
    process group) in its first chunk, in its final sync, and as its manifest is renamed
    into place; then a simulated power loss (an image zeroed in its middle, the manifest's
    tail cut off). After each kill nothing recorded is lost or changed and every image is
    its ledger credential's; the last run completes the batch: every valid row exactly one
    verified credential, its image decoding to it, rejects exactly the planted rows."""
    import random

    chaos = scriptload.chaos_issue()
    rng = random.Random(3)
    csv_path = tmp_path / "records.csv"
    expect = chaos.make_csv(csv_path, 300, rng)
    batch = chaos.Batch(csv_path, tmp_path / "out", 2, expect,
                        {r: chaos._digest(f) for r, f in expect.valid.items()},
                        chaos.signer_copy(tmp_path))
    fig = chaos.Figures()
    ledger: dict = {}
    for point, recorded in (("first-chunk", False), ("final-sync", True),
                            ("manifest-rename", True)):
        proc = chaos.start(batch, point)
        assert not chaos._finish(proc)  # no renderer left behind
        err = chaos._stderr(proc)
        assert proc.returncode == -signal.SIGKILL, (point, err)
        found, ledger = chaos.check_interrupted(batch.out, tmp_path, expect, ledger,
                                                batch.digests, set())
        assert found == [], point
        assert (len(ledger) == len(expect.valid)) == recorded, point
        # claimed before signing: a kill in the first chunk leaves claims, no credentials
        claims = chaos.register_claims(batch.signer, tmp_path)
        assert claims if point == "first-chunk" else len(claims) == len(expect.valid), point
        assert chaos.check_register(batch.out, batch.signer, tmp_path, completed=False) == []
        assert not (batch.out / "manifest.csv").exists()
    assert chaos.damage(batch.out, rng, fig, kinds=["zero-image-middle"]) == [
        "zero-image-middle"]
    proc = chaos.start(batch)
    assert not chaos._finish(proc)
    assert proc.returncode == 0, chaos._stderr(proc)
    assert chaos.damage(batch.out, rng, fig, kinds=["cut-manifest-tail"]) == [
        "cut-manifest-tail"]
    proc = chaos.start(batch)
    assert not chaos._finish(proc)
    assert proc.returncode == 0, chaos._stderr(proc)
    verifier = chaos.make_verifier(tmp_path)
    assert chaos.check_completed(batch.out, tmp_path, expect, batch.digests, verifier,
                                 fig) == []
    assert fig.images_decoded == len(expect.valid) > 250
    assert chaos.check_register(batch.out, batch.signer, tmp_path, completed=True) == []
    assert len(chaos.register_claims(batch.signer, tmp_path)) == len(expect.valid)


def test_a_second_run_on_the_same_directory_is_refused_while_the_first_runs(signer, tmp_path):
    # Two clerks (or two terminals) on one output directory: the second used to run
    # alongside and stop with "duplicate credential (UNIQUE constraint failed...)".
    src = write_csv(tmp_path / "r.csv", good_rows(5, seed=24))
    out = tmp_path / "out"
    out.mkdir()
    with held_elsewhere(out):
        with pytest.raises(StorageError, match="in use by another vaxqr issue run") as exc:
            issue.issue_batch(signer, src, out, workers=1)
        assert "run the same command again" in (exc.value.hint or "")
        assert not (out / "ledger.sqlite").exists() and not (out / "qr").exists()
    # once it has ended, the directory is free: no lock file was left in it
    assert issue.issue_batch(signer, src, out, workers=1).issued == 5
    assert sorted(p.name for p in out.iterdir()) == ["ledger.sqlite", "manifest.csv", "qr",
                                                     "rejects.csv"]
    # a flow holding it already (--population's reconcile, then the batch) runs its batch
    with issue.holding(out):
        assert issue.issue_batch(signer, src, out, workers=1).already == 5


def test_rejects_csv_is_written_while_the_directory_is_held(signer, tmp_path, monkeypatch):
    # rejects.csv is part of the batch's output: written after the directory was released,
    # a second run starting then cleared its temporary file (.rejects.csv.PID.tmp) as a
    # crash's leftover, and the first run failed at its last rename.
    import fcntl

    rows = good_rows(4, seed=25)
    rows[1][HEADER.index("id_number")] = "12345"  # one rejected row
    src = write_csv(tmp_path / "r.csv", rows)
    out = tmp_path / "out"
    held: dict[str, bool] = {}
    real_replace = os.replace

    def replace(src_, dst, *args, **kwargs):
        name = Path(dst).name
        if name in ("manifest.csv", "rejects.csv"):
            fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                held[name] = False
            except BlockingIOError:
                held[name] = True
            finally:
                os.close(fd)
        real_replace(src_, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    result = issue.issue_batch(signer, src, out, workers=1)
    assert result.issued == 3 and len(result.rejected) == 1
    assert held == {"manifest.csv": True, "rejects.csv": True}


def test_a_csv_changed_while_the_batch_reads_it_stops_it_before_signing_from_it(
        signer, tmp_path):
    # The first pass decides one credential per citizen by row number; the second signs.
    # A CSV still being written (or replaced) between them could be signed by decisions
    # made on another file: the batch stops before signing any row read after the change.
    src = write_csv(tmp_path / "r.csv", good_rows(6, seed=25))
    extra = good_rows(8, seed=25)[6:]

    def grow(done, total):  # called once the first pass is over: another program appends
        if done == 0:
            with src.open("a", encoding="utf-8", newline="") as fh:
                csv.writer(fh).writerows(extra)

    out = tmp_path / "out"
    with pytest.raises(StorageError, match="changed while it was being read") as exc:
        issue.issue_batch(signer, src, out, workers=1, progress=grow)
    assert "run the same command again" in (exc.value.hint or "")
    with Ledger(out / "ledger.sqlite") as ledger:
        assert ledger.count() == 0
    assert issue.issue_batch(signer, src, out, workers=1).issued == 8


def test_a_semicolon_separated_export_reads_as_the_comma_one(tmp_path):
    """Excel saves "CSV" with the list separator of the computer's region: ';' on a Windows
    set to Vietnamese (decimals are written with a comma). Such a file was refused with
    "the CSV header lacks full_name, sex, …", of a header that shows every one of them;
    it now reads as the comma-separated file does, quoted fields with a ';' included."""
    rows = good_rows(5, seed=31)
    rows[1][9] = "Trạm Y tế; xã Dương Tơ"  # a ';' inside a field: quoted in the ';' file
    comma = write_csv(tmp_path / "comma.csv", rows)
    semi = tmp_path / "semi.csv"
    with semi.open("w", encoding="utf-8-sig", newline="") as fh:
        w = csv.writer(fh, delimiter=";", lineterminator="\r\n")
        w.writerow(HEADER)
        w.writerows(rows)
    assert b'"Tr\xe1\xba\xa1m Y t\xe1\xba\xbf; x' in semi.read_bytes()
    assert list(issue.read_csv(semi)) == list(issue.read_csv(comma))
    # a comma file whose header lacks a column is still refused as such, naming it
    short = tmp_path / "short.csv"
    short.write_text(",".join([*HEADER[:7], "vaccine;lot", "site"]) + "\n", encoding="utf-8")
    with pytest.raises(ValidationError, match="header lacks vaccine"):
        list(issue.read_csv(short))


def _us_dates(rows):
    """``rows`` as Excel set to English (United States) exports them: M/D/YYYY."""
    def us(text):
        d = date.fromisoformat(text) if "-" in text else date(*map(int, text.split("/")[::-1]))
        return f"{d.month}/{d.day}/{d.year}"
    return [[r[0], r[1], us(r[2]), r[3], r[4], r[5], us(r[6]), *r[7:]] for r in rows]


def test_a_month_first_export_stops_the_batch_before_signing(signer, tmp_path):
    """An export written month/day/year (Excel set to English (United States)) had its
    dates with a day above 12 rejected ("there is no month 15") and the others, read day
    first, signed with day and month swapped: a wrong date of birth, refused beside the
    ID card at every checkpoint. The batch now stops before anything is signed."""
    rows = good_rows(40, seed=33)
    src = write_csv(tmp_path / "us.csv", _us_dates(rows))
    out = tmp_path / "out"
    with pytest.raises(ValidationError, match=r"month/day/year \(row \d+ \(spreadsheet row "):
        issue.issue_batch(signer, src, out, workers=1)
    assert not (out / "ledger.sqlite").exists() and not (out / "manifest.csv").exists()


def test_a_month_first_typo_among_day_first_dates_is_one_rejected_row(signer, tmp_path):
    """A file whose dates read day first (some only so) with one typed month first is not
    a month/day/year export: that row alone is rejected, the batch goes on."""
    rows = good_rows(6, seed=34)
    rows[0][6] = "25/09/2021"  # day first only
    rows[3][6] = "9/15/2021"  # month first: a typo
    src = write_csv(tmp_path / "r.csv", rows)
    result = issue.issue_batch(signer, src, tmp_path / "out", workers=1)
    assert [r for r, _ in result.rejected] == [4] and result.issued == 5
