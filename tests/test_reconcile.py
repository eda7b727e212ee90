"""vaxqr.reconcile: every class on a generated province with planted errors, precedence,
matched.csv for `vaxqr issue`, coverage, the CSV reader's edges, the CLI and
`vaxqr issue --from … --population …`."""

from __future__ import annotations

import csv
import importlib.util
import io
import itertools
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import unicodedata
from collections import defaultdict
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mounts import full_at, held_elsewhere
from typer.testing import CliRunner

from vaxqr import reconcile as R
from vaxqr.cli import app
from vaxqr.errors import StorageError, ValidationError
from vaxqr.issue import COLUMNS, parse_record, read_csv
from vaxqr.reconcile import (
    CLASSES,
    DoseContext,
    DoseRef,
    Person,
    PreviousDose,
    VaccRecord,
    classify,
    dose_context,
    reconcile_files,
)
from vaxqr.register import BLOCK, MAX_RECORD

from records import write_csv

REPO = Path(__file__).resolve().parent.parent
TODAY = date(2022, 6, 30)
REPORT = date(2021, 11, 23)


def _load_generator():
    spec = importlib.util.spec_from_file_location("gen_population",
                                                  REPO / "scripts" / "gen_population.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["gen_population"] = mod
    spec.loader.exec_module(mod)
    return mod


gen = _load_generator()


@pytest.fixture(scope="module")
def province(tmp_path_factory: pytest.TempPathFactory):
    d = tmp_path_factory.mktemp("province")
    g = gen.generate(d, people=4000, records=5000, seed=7, error_rate=0.3, pair_rate=0.3)
    res = reconcile_files(g.vaccinations, g.population, d / "out", report_date=REPORT,
                          today=TODAY, workers=1)
    return g, res, d / "out"


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


def _classes(out: Path, rows: int) -> dict[int, str]:
    got = dict.fromkeys(range(1, rows + 1), "matched")
    for r in _csv(out / "mismatches.csv"):
        got[int(r["row"])] = r["class"]
    return got


# --------------------------------------------------------------------------- the province


def test_every_planted_class_is_found(province) -> None:
    g, res, out = province
    truth = {int(r["row"]): r["class"] for r in _csv(g.truth)}
    got = _classes(out, res.rows)
    assert res.rows == len(truth) == g.records
    wrong = [(row, truth[row], got[row]) for row in truth if truth[row] != got[row]]
    assert not wrong, wrong[:10]
    per_class = defaultdict(int)
    for cls in truth.values():
        per_class[cls] += 1
    for cls in CLASSES:
        assert per_class[cls] >= 40, (cls, per_class[cls])  # every class, well represented
        assert res.counts[cls] == per_class[cls]


def test_precedence_on_records_with_two_errors(province) -> None:
    g, _res, out = province
    got = _classes(out, g.records)
    pairs = defaultdict(int)
    for r in _csv(g.truth):
        planted = r["planted"].split("+") if r["planted"] else []
        if len(planted) == 2:
            # the first class that applies; a tone-style name is auto-fixed, so a record
            # with another error too has that error's class
            first = min([c for c in planted if c != "name_tone_style"], key=CLASSES.index)
            assert got[int(r["row"])] == first == r["class"], r
            pairs[tuple(planted)] += 1
    # name before DOB and sex, DOB before sex, ID before name, duplicate before name
    for pair in [("name_no_diacritics", "dob_differs"), ("name_order", "sex_differs"),
                 ("name_tone_style", "dob_differs"), ("dob_differs", "sex_differs"),
                 ("id_not_found", "name_differs"), ("duplicate_dose", "name_order")]:
        assert pairs[pair] > 0, pair


def test_matched_csv_is_ready_for_issue(province) -> None:
    g, res, out = province
    register = {r["id_number"]: r for r in _csv(g.population)}
    rows = list(read_csv(out / "matched.csv"))
    assert len(rows) == res.matched_rows > 0
    with (out / "matched.csv").open(encoding="utf-8-sig") as fh:
        assert fh.readline().strip() == ",".join((*COLUMNS, "source_row"))
    for n, fields in rows:
        rec = parse_record(n, fields, today=TODAY)  # raises on anything issue would reject
        person = register[rec.id_number]
        assert fields["full_name"] == person["full_name"]  # the register's spelling
        assert unicodedata.is_normalized("NFC", fields["full_name"])
        assert rec.dob.isoformat() == person["dob"]
        assert fields["sex"] == person["sex"]


def test_tone_style_rows_are_fixed_and_signed(province) -> None:
    g, _res, out = province
    src = dict(read_csv(g.vaccinations))
    matched = {int(f["source_row"]): f for _n, f in read_csv(out / "matched.csv")}
    tone = [r for r in _csv(g.truth) if r["class"] == "name_tone_style"]
    signed = [r for r in tone if int(r["row"]) in matched]
    assert len(signed) > 20
    for r in signed:
        n = int(r["row"])
        assert matched[n]["full_name"] != unicodedata.normalize("NFC", src[n]["full_name"])
    assert all(int(r["row"]) in matched for r in tone)  # name_tone_style: always signed
    # a tone-style row with a second error has that error's class and is not signed
    paired = [r for r in _csv(g.truth) if r["planted"].startswith("name_tone_style+")]
    assert paired
    for r in paired:
        assert r["class"] == r["planted"].split("+")[1]
        assert int(r["row"]) not in matched


def test_mismatches_put_both_sides_and_a_fix(province) -> None:
    _g, _res, out = province
    rows = _csv(out / "mismatches.csv")
    assert list(rows[0])[:3] == ["row", "spreadsheet_row", "class"]
    assert all(int(r["spreadsheet_row"]) == int(r["row"]) + 1 for r in rows)
    by_class = {r["class"]: r for r in rows}
    assert set(by_class) == set(CLASSES) - {"matched"}
    for cls, r in by_class.items():
        assert r["fix"], cls
        if cls not in ("id_invalid", "id_not_found"):
            assert r["register_full_name"] and r["register_dob"] and r["register_sex"], cls
    swapped = by_class["dob_swapped"]
    assert swapped["register_dob"] in swapped["fix"]
    typos = [r for r in rows if r["class"] == "id_not_found" and "typo?" in r["fix"]]
    assert len(typos) > 10
    for r in typos:
        near = r["fix"].split("has ")[1][:12]
        assert sum(a != b for a, b in zip(near, r["id_number"].strip(), strict=True)) in (1, 2)


def test_pure_function_as_a_udf_gives_the_same_classes(province) -> None:
    """What a Spark/DuckDB job would do: group the records by ID, derive each record's
    DoseContext with dose_context(), look the person up, call classify()."""
    g, res, out = province
    register = {r["id_number"]: Person(r["id_number"], r["full_name"],
                                       "F" if r["sex"] == "Nữ" else "M",
                                       date.fromisoformat(r["dob"]), r["commune_code"])
                for r in _csv(g.population)}
    records = [(n, VaccRecord(*(f.get(c) or "" for c in COLUMNS)))
               for n, f in read_csv(g.vaccinations)]
    by_id = defaultdict(list)
    for n, rec in records:
        by_id[rec.id_number.strip()].append(DoseRef.of(n, rec))
    got = _classes(out, res.rows)
    for n, rec in records:
        m = classify(rec, register.get(rec.id_number.strip()), today=TODAY,
                     context=dose_context(n, by_id[rec.id_number.strip()]))
        assert m.cls == got[n], (n, rec, m)


# --------------------------------------------------------------------------- one record

P = Person("091190001234", "Nguyễn Thị Thuý Hằng", "F", date(1990, 5, 17), "31078")


def rec(**kw: str) -> VaccRecord:
    base = {"full_name": "Nguyễn Thị Thuý Hằng", "sex": "Nữ", "dob": "1990-05-17",
            "id_number": "091190001234", "dose_number": "2", "total_doses": "2",
            "vaccination_date": "2021-10-01", "vaccine": "pfizer", "lot": "FK1234",
            "site": "Trạm Y tế"}
    base.update(kw)
    return VaccRecord(**base)


def cls(record: VaccRecord, person: Person | None = P, context: DoseContext | None = None
        ) -> str:
    return classify(record, person, today=TODAY, context=context or DoseContext()).cls


@pytest.mark.parametrize(("fields", "expected"), [
    ({}, "matched"),
    ({"full_name": "NGUYỄN THỊ THUÝ HẰNG", "sex": "nu", "dob": "17/05/1990"}, "matched"),
    ({"full_name": unicodedata.normalize("NFD", " Nguyễn  Thị Thuý Hằng ")}, "matched"),
    ({"vaccine": "Comirnaty", "dose_number": " 2 "}, "matched"),
    ({"id_number": "91190001234"}, "id_invalid"),
    ({"id_number": "003190001234"}, "id_invalid"),
    ({"id_number": "09119000123O"}, "id_invalid"),
    ({"full_name": "Nguyễn Thị Thúy Hằng"}, "name_tone_style"),
    ({"full_name": "Nguyen Thi Thuy Hang"}, "name_no_diacritics"),
    ({"full_name": "nguyen Thị Thuý Hằng"}, "name_no_diacritics"),
    ({"full_name": "Hằng Nguyễn Thị Thuý"}, "name_order"),
    ({"full_name": "Hằng Nguyễn Thị Thúy"}, "name_order"),
    ({"full_name": "Nguyên Thị Thuý Hằng"}, "name_differs"),  # a wrong tone is not lost
    ({"full_name": "Nguyễn Thị Thuý Hà"}, "name_differs"),
    ({"full_name": ""}, "name_differs"),
    ({"dob": "1990-17-05"}, "dob_swapped"),  # not even a date
    ({"dob": "05/17/1990"}, "dob_swapped"),
    # a spreadsheet's date-time cells at midnight read as their dates, as `vaxqr issue` reads them
    ({"dob": "1990-05-17 00:00:00", "vaccination_date": "2021-10-01T00:00"}, "matched"),
    ({"dob": "1990-17-05 00:00:00"}, "dob_swapped"),
    # ... by parse_date's rule, not a looser one of its own: "0" is no time of midnight
    ({"dob": "1990-17-05 0"}, "dob_differs"),
    ({"dob": "1990-17-05T::"}, "dob_differs"),
    ({"dob": "1990-17-05 00:00:00.000"}, "dob_swapped"),
    ({"dob": "1990-05-17 08:00"}, "dob_differs"),
    ({"dob": "1990-05-18"}, "dob_differs"),
    ({"dob": "31/02/1990"}, "dob_differs"),
    ({"sex": "Nam"}, "sex_differs"),
    ({"sex": "?"}, "sex_differs"),
    ({"dose_number": "3"}, "dose_sequence"),  # dose > total
    ({"vaccine": "sinovac"}, "dose_sequence"),
    ({"vaccination_date": "2023-01-01"}, "dose_sequence"),  # after today
    ({"vaccination_date": "2020-06-01"}, "dose_sequence"),
])
def test_one_record(fields: dict[str, str], expected: str) -> None:
    assert cls(rec(**fields)) == expected


def test_id_classes_and_register_decides() -> None:
    assert cls(rec(), None) == "id_not_found"
    # the ID's digits say female 1990; the record says male: the sex class reports it
    assert cls(rec(sex="Nam")) == "sex_differs"
    # a register entry that disagrees with its own ID digits is never signed
    bad = P._replace(dob=date(1991, 5, 17))
    m = classify(rec(dob="1991-05-17"), bad, today=TODAY)
    assert (m.cls, m.clean) == ("dob_differs", None)
    m = classify(rec(sex="Nam"), P._replace(sex="M"), today=TODAY)
    assert (m.cls, m.clean) == ("sex_differs", None)


def test_precedence_name_before_dob_before_sex() -> None:
    assert cls(rec(full_name="Nguyen Thi Thuy Hang", dob="1991-01-01", sex="Nam")) \
        == "name_no_diacritics"
    assert cls(rec(full_name="Hằng Nguyễn Thị Thuý", dob="1990-17-05")) == "name_order"
    assert cls(rec(dob="1991-01-01", sex="Nam")) == "dob_differs"
    assert cls(rec(full_name="X"), None) == "id_not_found"
    dup = DoseContext(duplicate_of=3)
    assert cls(rec(full_name="X", sex="Nam"), context=dup) == "duplicate_dose"
    # tone style + another error: the other error's class, not signed, both reported
    m = classify(rec(full_name="Nguyễn Thị Thúy Hằng", dob="1991-01-01"), P, today=TODAY)
    assert m.cls == "dob_differs" and m.clean is None
    assert "tone placement" in m.reason and "1990-05-17" in m.fix
    assert "Nguyễn Thị Thuý Hằng" in m.fix


def test_clean_row_uses_the_register() -> None:
    m = classify(rec(full_name="nguyễn thị thúy hằng", sex="F", dob="17/5/1990",
                     vaccine="Comirnaty", lot=" FK  1234 "), P, today=TODAY)
    assert m.cls == "name_tone_style"
    assert m.clean == ("Nguyễn Thị Thuý Hằng", "Nữ", "1990-05-17", "091190001234", "2", "2",
                       "2021-10-01", "pfizer", "FK 1234", "Trạm Y tế")


def test_dose_sequence_and_duplicates_from_history() -> None:
    r1 = rec(dose_number="1", vaccination_date="2021-09-01")
    r2 = rec(dose_number="2", vaccination_date="2021-09-15")  # 14 days, pfizer needs 21
    r2b = rec(dose_number="2", vaccination_date="2021-10-01")
    r3 = rec(dose_number="2", total_doses="3", vaccination_date="2021-08-01")  # before d1
    hist = [DoseRef.of(1, r1), DoseRef.of(2, r2), DoseRef.of(3, r2b)]
    assert dose_context(1, hist) == DoseContext()
    ctx2 = dose_context(2, hist)
    assert ctx2 == DoseContext(None, PreviousDose(1, date(2021, 9, 1), 21))
    assert cls(r2, context=ctx2) == "dose_sequence"
    assert dose_context(3, hist).duplicate_of == 2
    assert cls(r2b, context=dose_context(3, hist)) == "duplicate_dose"
    ctx3 = dose_context(4, [DoseRef.of(1, r1), DoseRef.of(4, r3)])
    assert cls(r3, context=ctx3) == "dose_sequence"
    ok = dose_context(2, [DoseRef.of(1, r1), DoseRef.of(2, r2b)])
    assert cls(r2b, context=ok) == "matched"
    # the interval is the dose n-1 vaccine's: AstraZeneca needs 28 days
    az1 = rec(dose_number="1", vaccination_date="2021-09-01", vaccine="astrazeneca")
    az2 = rec(dose_number="2", vaccination_date="2021-09-27", vaccine="astrazeneca")
    assert cls(az2, context=dose_context(2, [DoseRef.of(1, az1), DoseRef.of(2, az2)])) \
        == "dose_sequence"


def test_more_than_nine_doses_is_unusable_dose_data() -> None:
    """As vaxqr issue refuses them: 2 of 99 is a typing error, not a clean record."""
    for dose, total in (("2", "99"), ("22", "22"), ("10", "10")):
        m = classify(rec(dose_number=dose, total_doses=total), P, today=TODAY)
        assert m.cls == "dose_sequence", (dose, total)
        assert f"total doses {total} is more than 9" in m.reason
        assert m.clean is None
    assert cls(rec(dose_number="1", total_doses="9")) == "matched"


# --------------------------------------------------------------------------- files


HEADER = ",".join(COLUMNS)
POP_HEADER = "id_number,full_name,sex,dob,commune_code"


def _write(path: Path, text: str, *, bom: bool = False) -> Path:
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


def test_coverage_adults_and_doses_per_commune(tmp_path: Path) -> None:
    # report date 2021-11-23: born 2003-11-23 is 18 that day, 2003-11-24 is not
    people = [
        ("091203000001", "Lê Văn An", "Nam", "2003-11-23", "31078"),  # adult, doses 1+2
        ("091180000002", "Lê Thị Bình", "Nữ", "1980-01-01", "31078"),  # adult, dose 1
        ("091203000003", "Lê Văn Cường", "Nam", "2003-11-24", "31078"),  # 17: dose 1
        ("091170000004", "Lê Thị Dung", "Nữ", "1970-01-01", "31078"),  # adult, none
        ("091060000005", "Trần Văn Em", "Nam", "1960-02-29", "30760"),  # adult, dose 2 late
        ("091161000006", "Trần Thị Gấm", "Nữ", "1961-02-01", "30760"),  # adult, mismatched
    ]
    pop = _write(tmp_path / "pop.csv", POP_HEADER + "\n" + "\n".join(",".join(p)
                                                                    for p in people) + "\n")

    def row(p, dose, when, name=None):
        return ",".join((name or p[1], p[2], p[3], p[0], str(dose), "2", when, "pfizer", "",
                         ""))

    recs = [row(people[0], 1, "2021-10-01"), row(people[0], 2, "2021-10-25"),
            row(people[1], 1, "2021-10-01"), row(people[2], 1, "2021-11-01"),
            row(people[4], 1, "2021-10-01"), row(people[4], 2, "2021-12-01"),
            row(people[5], 1, "2021-10-01", name="Trần Thị Gấm Hoa")]
    vac = _write(tmp_path / "v.csv", HEADER + "\n" + "\n".join(recs) + "\n")
    res = reconcile_files(vac, pop, tmp_path / "out", report_date=REPORT, today=TODAY)
    assert res.counts["matched"] == 6 and res.counts["name_differs"] == 1
    cov = {c.commune_code: c for c in res.coverage}
    a, b = cov["31078"], cov["30760"]
    assert (a.people, a.adults, a.dose1, a.dose2, a.dose1_all_ages) == (4, 3, 2, 1, 3)
    assert (b.people, b.adults, b.dose1, b.dose2) == (2, 2, 1, 0)
    assert a.figure(1) == "2 = 66.67%" and a.figure(2) == "1 = 33.33%"
    assert res.total.figure(1) == "3 = 60.00%"
    doc = json.loads((tmp_path / "out" / "report.json").read_text(encoding="utf-8"))
    assert doc["version"] == 1 and doc["coverage"]["total"]["dose1"] == 3
    assert doc["counts"]["matched"] == 6


def _coverage_csv(out: Path) -> list[dict[str, str]]:
    data = (out / "coverage.csv").read_bytes()
    assert data.count(b"\xef\xbb\xbf") <= 1
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def test_coverage_csv_has_the_reports_figures(province) -> None:
    """coverage.csv: one row per commune, then the province's total, each figure the one
    report.json gives (a rate its exact fraction)."""
    _g, res, out = province
    rows = _coverage_csv(out)
    doc = json.loads((out / "report.json").read_text(encoding="utf-8"))
    want = [*doc["coverage"]["communes"], doc["coverage"]["total"]]
    assert len(rows) == len(res.coverage) + 1 > 2
    assert list(rows[0]) == list(R.COVERAGE_COLUMNS)
    assert rows[-1]["commune_code"] == "total"
    for got, exp in zip(rows, want, strict=True):
        for col in R.COVERAGE_COLUMNS:
            value = exp[col]
            if col == "commune_code":
                assert got[col] == value
            elif col.endswith("_rate"):
                assert (float(got[col]) if got[col] else None) == value, (got, col)
            else:
                assert int(got[col]) == value, (got, col)
    assert doc["files"]["coverage.csv"] == str(out / "coverage.csv")


@pytest.mark.parametrize("bom", [True, False])
def test_coverage_csv_is_written_like_the_other_csv_files(tmp_path: Path, bom: bool) -> None:
    """BOM as asked, a commune code a spreadsheet would run escaped, an empty rate where
    a commune has no adults; not overwritten without ``overwrite``."""
    pop = _write(tmp_path / "p.csv", POP_HEADER + "\n"
                 "091190000001,Lê Thị Hòa,Nữ,1990-03-21,=1+2\n"
                 "091205000002,Trần Văn Đạt,Nam,2005-07-02,31078\n")
    vac = _write(tmp_path / "v.csv", HEADER + "\n"
                 "Lê Thị Hòa,Nữ,1990-03-21,091190000001,1,2,2021-08-01,pfizer,,\n")
    out = tmp_path / "out"
    reconcile_files(vac, pop, out, report_date=REPORT, today=TODAY, workers=1, bom=bom)
    data = (out / "coverage.csv").read_bytes()
    assert data.startswith(b"\xef\xbb\xbf") == bom
    assert {r["commune_code"]: (r["adults"], r["dose1"], r["dose1_rate"], r["dose2_rate"])
            for r in _coverage_csv(out)} == {
        "'=1+2": ("1", "1", "1.0", "0.0"), "31078": ("0", "0", "", ""),
        "total": ("1", "1", "1.0", "0.0")}
    for name in ("matched.csv", "mismatches.csv", "report.json"):
        (out / name).unlink()  # coverage.csv alone is enough to refuse
    with pytest.raises(StorageError, match=r"coverage\.csv already exists"):
        reconcile_files(vac, pop, out, report_date=REPORT, today=TODAY, workers=1)
    (out / "coverage.csv").write_text("old\n", encoding="utf-8")
    reconcile_files(vac, pop, out, report_date=REPORT, today=TODAY, workers=1,
                    overwrite=True)
    assert (out / "coverage.csv").read_bytes().startswith(b"commune_code,")
    assert not list(out.glob(".*.tmp"))


def test_plan_figures_format() -> None:
    c = R.Coverage(commune_code="total", people=1_763_826, adults=1_196_117,
                   dose1=1_163_941, dose2=749_425, dose1_all_ages=0, dose2_all_ages=0)
    assert c.figure(1) == "1,163,941 = 97.31%"
    assert c.figure(2) == "749,425 = 62.65%"  # the plan's 62.71% used another base
    assert R._adult_cutoff(date(2022, 2, 28)) == date(2004, 2, 28).toordinal()
    assert R._adult_cutoff(date(2024, 2, 29)) == date(2006, 2, 28).toordinal()


def test_csv_edges_bom_crlf_blank_lines_quoted_newlines(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(R, "BLOCK", 2)  # quoted line breaks across block boundaries
    monkeypatch.setattr(R, "CHUNK", 3)
    pop = _write(tmp_path / "p.csv", "commune_code,ID_Number , full_name,sex,dob,extra\r\n"
                 "31078,091190001234,Nguyễn Thị Thuý Hằng,Nữ,1990-05-17,x\r\n"
                 "31078,bad,Nguyễn Văn A,Nam,1990-01-01,x\r\n"
                 "31078,091190001234,Someone Else,Nữ,1990-05-17,x\r\n", bom=True)
    body = [f'"Nguyễn Thị\nThuý Hằng",{"Nữ" if d == 1 else "Nam"},1990-05-17,091190001234,'
            f'{d},9,2021-0{d}-01,pfizer,L{d},"site\n{d}"' for d in range(1, 6)]
    vac = _write(tmp_path / "v.csv", HEADER + "\r\n" + body[0] + "\r\n\r\n"
                 + "\r\n".join(body[1:]) + "\r\n", bom=True)
    res = reconcile_files(vac, pop, tmp_path / "o", report_date=REPORT, today=TODAY)
    assert res.rows == 5
    assert res.register_invalid == 1 and res.register_duplicates == 1
    assert res.counts["sex_differs"] == 4 and res.counts["matched"] == 1
    rows = _csv(tmp_path / "o" / "mismatches.csv")
    assert [r["row"] for r in rows] == ["2", "3", "4", "5"]
    matched = _csv(tmp_path / "o" / "matched.csv")
    assert [m["source_row"] for m in matched] == ["1"]
    assert matched[0]["site"] == "site 1"


def test_parallel_output_is_identical(province, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    g, _res, out = province
    monkeypatch.setattr(R, "CHUNK", 700)
    monkeypatch.setattr(R, "PARALLEL_MIN_BYTES", 0)
    reconcile_files(g.vaccinations, g.population, tmp_path / "par", report_date=REPORT,
                    today=TODAY, workers=2)
    for name in ("matched.csv", "mismatches.csv"):
        assert (tmp_path / "par" / name).read_bytes() == (out / name).read_bytes(), name


def test_semicolon_separated_exports_give_the_same_output(province, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Both exports saved by a spreadsheet whose list separator is ';' (Excel on a Windows
    set to Vietnamese) were refused ("the CSV header lacks …"); read in parallel, in small
    chunks, they give what the comma-separated files give."""
    g, _res, out = province
    semi = {}
    for name, src in (("vac", g.vaccinations), ("pop", g.population)):
        with open(src, encoding="utf-8-sig", newline="") as fh:
            rows = list(csv.reader(fh))
        semi[name] = tmp_path / f"{name}.csv"
        with semi[name].open("w", encoding="utf-8", newline="") as fh:
            csv.writer(fh, delimiter=";").writerows(rows)
    monkeypatch.setattr(R, "CHUNK", 700)
    monkeypatch.setattr(R, "PARALLEL_MIN_BYTES", 0)
    reconcile_files(semi["vac"], semi["pop"], tmp_path / "semi", report_date=REPORT,
                    today=TODAY, workers=2)
    for name in ("matched.csv", "mismatches.csv", "coverage.csv"):
        assert (tmp_path / "semi" / name).read_bytes() == (out / name).read_bytes(), name


def test_fast_path_is_classify(province, tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The vectorised pre-check only short-cuts rows classify() itself calls matched."""
    g, _res, out = province
    monkeypatch.setattr(R, "FAST_PATH", False)
    reconcile_files(g.vaccinations, g.population, tmp_path / "slow", report_date=REPORT,
                    today=TODAY, workers=1)
    for name in ("matched.csv", "mismatches.csv", "report.json"):
        slow = (tmp_path / "slow" / name).read_bytes()
        fast = (out / name).read_bytes()
        if name == "report.json":
            slow, fast = (json.loads(x) for x in (slow, fast))
            for doc in (slow, fast):
                doc.pop("seconds"), doc.pop("files")
        assert slow == fast, name


def test_the_csv_layout_does_not_change_the_output(province, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The province's records again with CRLF line ends, blank lines and, in some chunks,
    quoted rows: the output is the plain file's. (The probe of duplicate doses parses only
    the wanted lines of a chunk or block whose lines are its rows, other blocks whole.)"""
    g, _res, out = province
    monkeypatch.setattr(R, "BLOCK", 7)
    monkeypatch.setattr(R, "CHUNK", 300)
    with g.vaccinations.open(encoding="utf-8", newline="") as fh:
        header, *rows = csv.reader(fh)
    buf = io.StringIO()
    plain = csv.writer(buf, lineterminator="\r\n")
    quoted = csv.writer(buf, lineterminator="\r\n", quoting=csv.QUOTE_ALL)
    plain.writerow(header)
    for n, row in enumerate(rows):
        if n % 97 == 5:
            buf.write("\r\n")
        (quoted if n % 1000 < 40 and n % 3 == 0 else plain).writerow(row)
    vac = _write(tmp_path / "crlf.csv", buf.getvalue())
    reconcile_files(vac, g.population, tmp_path / "crlf", report_date=REPORT, today=TODAY,
                    workers=1)
    for name in ("matched.csv", "mismatches.csv"):
        assert (tmp_path / "crlf" / name).read_bytes() == (out / name).read_bytes(), name


def test_bad_inputs(tmp_path: Path) -> None:
    pop = _write(tmp_path / "p.csv", POP_HEADER + "\n")
    vac = _write(tmp_path / "v.csv", "full_name,sex\nA,Nam\n")
    with pytest.raises(ValidationError, match="lacks dob, id_number"):
        reconcile_files(vac, pop, tmp_path / "o")
    vac.write_bytes(HEADER.encode() + b"\nNguy\xe1n,Nam\n")
    with pytest.raises(ValidationError, match="not UTF-8"):
        reconcile_files(vac, pop, tmp_path / "o2")
    with pytest.raises(StorageError):
        reconcile_files(tmp_path / "missing.csv", pop, tmp_path / "o3")
    _write(tmp_path / "p2.csv", "id,name\n")
    vac.write_text(HEADER + "\n", encoding="utf-8")
    with pytest.raises(ValidationError, match="lacks id_number"):
        reconcile_files(vac, tmp_path / "p2.csv", tmp_path / "o4")
    for out in ("o", "o2", "o3", "o4"):  # a run that stops on its input leaves nothing
        assert not (tmp_path / out).exists(), out


def test_a_run_stopped_by_its_input_leaves_no_directory_it_made(tmp_path: Path) -> None:
    """OUT (and its missing parents) was made before the inputs were read: a run refused
    for a missing column left an empty directory behind. A directory that existed stays,
    and so does one that holds anything."""
    pop = _write(tmp_path / "p.csv", POP_HEADER + "\n")
    vac = _write(tmp_path / "v.csv", "full_name,sex\nA,Nam\n")
    for out in (tmp_path / "new" / "deeper" / "o", tmp_path / "existing"):
        if out.name == "existing":
            out.mkdir()
        with pytest.raises(ValidationError, match="lacks dob"):
            reconcile_files(vac, pop, out)
    assert not (tmp_path / "new").exists()
    assert (tmp_path / "existing").is_dir()
    from vaxqr.fileio import no_dir_left_behind

    with pytest.raises(RuntimeError), no_dir_left_behind(tmp_path / "a" / "b"):
        (tmp_path / "a" / "b").mkdir(parents=True)
        (tmp_path / "a" / "kept.txt").write_text("x")
        raise RuntimeError
    assert not (tmp_path / "a" / "b").exists() and (tmp_path / "a" / "kept.txt").exists()



@pytest.mark.parametrize("which", ["population", "vaccinations"])
def test_a_lone_cr_in_the_header_is_a_malformed_csv(tmp_path: Path, which: str) -> None:
    """A header line holding a CR alone (a file saved with classic Mac line endings) is a
    ValidationError naming the file, not csv.Error from the header's reader (found by
    fuzz/run_inputs.py)."""
    pop = _write(tmp_path / "p.csv", POP_HEADER + "\n")
    vac = _write(tmp_path / "v.csv", HEADER + "\n")
    bad = pop if which == "population" else vac
    bad.write_bytes(bad.read_bytes().replace(b",", b"\r", 1))
    with pytest.raises(ValidationError, match=r"malformed CSV header") as info:
        reconcile_files(vac, pop, tmp_path / "o")
    assert str(bad) in str(info.value) and "CR alone" in (info.value.hint or "")


@pytest.mark.parametrize("which", ["population", "vaccinations"])
@pytest.mark.parametrize("where", ["header", "row", "quoted"])
def test_a_row_longer_than_any_record_is_refused(tmp_path: Path, which: str,
                                                  where: str) -> None:
    """A line (or a quoted field's lines) longer than MAX_RECORD bytes is no record: it is
    refused naming the file and where, before it is read whole. It was read whole into one
    block and decoded: a 200 MB line took 1.4-1.6 GB to be refused (csv's field limit), a
    line of short fields was taken, and an odd quote read the whole rest of the file."""
    pop = _write(tmp_path / "p.csv", POP_HEADER + "\n")
    vac = _write(tmp_path / "v.csv", HEADER + "\n")
    bad = pop if which == "population" else vac
    header, _rows = bad.read_bytes().split(b"\n", 1)
    long = b"a," * (MAX_RECORD // 2 + 1)  # short fields: within csv's field limit
    if where == "header":
        bad.write_bytes(header + b"," + long + b"\n")
    elif where == "row":
        bad.write_bytes(header + b"\n" + long + b"\n")
    else:  # a quote opened and not closed: every line after it is one field
        bad.write_bytes(header + b'\n"' + b"x\n" * (MAX_RECORD // 2 + 2 * BLOCK))
    # the quote's line named (the header is line 1), not where the reading stopped
    expected = (r"the row on line 2 runs over the lines after it \(past the longest a row "
                r"can be\)" if where == "quoted" else r"longer than 64 KiB")
    with pytest.raises(ValidationError, match=expected) as info:
        reconcile_files(vac, pop, tmp_path / "o")
    assert str(bad) in str(info.value)


def test_lines_far_longer_than_records_are_parsed_in_bounded_blocks(tmp_path: Path) -> None:
    """A block of BLOCK lines is decoded and parsed at once (~7 bytes of memory a byte):
    lines just under MAX_RECORD made blocks of ~60 MiB (192 MB of such rows: 1.2 GB peak
    RSS). Such blocks are cut in parts of about BLOCK_BYTES, on record boundaries (a
    quoted field's lines stay together), and the whole file is still read once, in order."""
    from vaxqr.register import BLOCK_BYTES, _blocks

    wide = b"a," * (MAX_RECORD // 2 - 10) + b"\n"
    quoted = b'x,"' + b"q" * 1000 + b"\n" + b"r" * 5000 + b'",y\n'  # one record, 2 lines
    data = b"".join(quoted if n % 7 == 3 else wide for n in range(3 * BLOCK))
    blocks = list(_blocks(io.BytesIO(data), 0, BLOCK, tmp_path / "v.csv"))
    assert b"".join(b for _at, b in blocks) == data
    assert [at for at, _b in blocks] == list(itertools.accumulate(
        [0] + [len(b) for _at, b in blocks[:-1]]))
    assert all(b.count(b'"') % 2 == 0 for _at, b in blocks)
    assert max(len(b) for _at, b in blocks) <= BLOCK_BYTES + MAX_RECORD
    opened = b'"' + wide * 40  # a quote never closed: its lines are one field, too long
    with pytest.raises(ValidationError, match=r"the row on line 1 runs over"):
        list(_blocks(io.BytesIO(opened), 0, BLOCK, tmp_path / "v.csv"))
    # the same after whole blocks of records and a part of one: the quote's own line
    late = wide * (BLOCK + 5) + b"x,y\n" * 3 + b'z,"' + wide * 40
    with pytest.raises(ValidationError, match=rf"the row on line {BLOCK + 9} runs over"):
        list(_blocks(io.BytesIO(late), 0, BLOCK, tmp_path / "v.csv"))


# --------------------------------------------------------------------------- CLI


def test_cli_reconcile(province, tmp_path: Path) -> None:
    g, res, _out = province
    runner = CliRunner()
    out = tmp_path / "cli"
    args = ["reconcile", str(g.vaccinations), "--population", str(g.population), "--out",
            str(out), "--date", "2021-11-23", "--workers", "1"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "name_tone_style" in r.stdout and "31078" in r.stdout and " = " in r.stdout
    for name in ("matched.csv", "mismatches.csv", "coverage.csv", "report.json"):
        assert (out / name).is_file()
    r = runner.invoke(app, args)
    assert r.exit_code == 3 and "--force" in r.stderr
    r = runner.invoke(app, [*args, "--force", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["version"] == 1 and doc["counts"] == res.counts
    assert doc["report_date"] == "2021-11-23"
    assert doc["coverage"]["total"]["dose1_figure"].endswith("%")
    r = runner.invoke(app, [*args[:-4], "--date", "23/13/2021"])
    assert r.exit_code == 2
    r = runner.invoke(app, ["reconcile", str(tmp_path / "nope.csv"), "--population",
                            str(g.population), "--out", str(tmp_path / "x")])
    assert r.exit_code == 3
    bad = _write(tmp_path / "bad.csv", "a,b\n1,2\n")
    r = runner.invoke(app, ["reconcile", str(bad), "-p", str(g.population), "-o",
                            str(tmp_path / "y")])
    assert r.exit_code == 2 and "lacks" in r.stderr
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
    r = runner.invoke(app, ["reconcile", "-", "-p", str(g.population), "-o", str(tmp_path / "in"),
                            "--json"], input=g.vaccinations.read_bytes())
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["counts"] == res.counts
    r = runner.invoke(app, ["reconcile", "--help"])
    assert r.exit_code == 0 and "Examples" in r.stdout and "Exit codes" in r.stdout


def test_a_full_disk_says_which_outputs_were_written_and_asks_for_force(
        province, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The shared hint said "run the same command again (what was done is kept)": once
    matched.csv and mismatches.csv are written, that run is refused (they exist)."""
    g, _res, _out = province
    runner = CliRunner()
    out = tmp_path / "full"
    args = ["reconcile", str(g.vaccinations), "-p", str(g.population), "-o", str(out),
            "--workers", "1"]
    full_at(monkeypatch, "coverage.csv")
    r = runner.invoke(app, args)
    assert r.exit_code == 3, r.output
    text = " ".join(r.stderr.split())
    assert f"disk full while writing {out / 'coverage.csv'}" in text, text
    assert ("run the same command again with --force: matched.csv and mismatches.csv were "
            "written, coverage.csv and report.json not") in text, text
    assert sorted(p.name for p in out.iterdir()) == ["matched.csv", "mismatches.csv"]
    r = runner.invoke(app, [*args, "--force"])  # still full: --force was given, so no --force
    assert r.exit_code == 3
    assert "run the same command again: matched.csv and mismatches.csv were" in \
        " ".join(r.stderr.split())
    full_at(monkeypatch, "mismatches.csv")  # the first one written: nothing is
    r = runner.invoke(app, [*args[:-4], "-o", str(tmp_path / "none"), "--workers", "1"])
    assert r.exit_code == 3
    assert "run the same command again: nothing was written" in " ".join(r.stderr.split())
    monkeypatch.undo()
    r = runner.invoke(app, [*args, "--force"])
    assert r.exit_code == 0, r.output


def test_issue_from_population_signs_matched_rows_only(province, tmp_path: Path) -> None:
    g, _res, _out = province
    signer = tmp_path / "signer"
    shutil.copytree(REPO / "keys" / "examples" / "communes" / "31078", signer)
    os.chmod(signer / "signer.key", 0o600)
    src = list(read_csv(g.vaccinations))
    truth = {int(r["row"]): (r["class"], r["planted"]) for r in _csv(g.truth)}
    pick = [n for n, t in truth.items() if t[0] == "matched"][:3]
    pick += [n for n, t in truth.items() if t == ("name_tone_style", "name_tone_style")][:1]
    pick += [n for n, t in truth.items() if t[0] in ("name_differs", "dob_swapped")][:2]
    small = tmp_path / "v.csv"
    with small.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(COLUMNS)
        for n in pick:
            w.writerow([src[n - 1][1].get(c) or "" for c in COLUMNS])
    out = tmp_path / "batch"
    r = CliRunner().invoke(app, ["issue", "--signer", str(signer), "--from", str(small),
                                 "--population", str(g.population), "--out", str(out),
                                 "--workers", "1"],
                           env={"VAXQR_PASSWORD": "vaxqr-demo"})
    assert r.exit_code == 0, r.output
    manifest = _csv(out / "manifest.csv")
    assert len(manifest) == 4  # 3 matched + 1 tone-style fixed; the 2 mismatches unsigned
    register = {p["id_number"]: p["full_name"] for p in _csv(g.population)}
    matched = _csv(out / "reconcile" / "matched.csv")
    assert [m["full_name"] for m in manifest] == [register[m["id_number"]] for m in matched]
    assert len(_csv(out / "reconcile" / "mismatches.csv")) == 3  # incl. the tone-style row
    r = CliRunner().invoke(app, ["issue", "--signer", str(signer), "--population",
                                 str(g.population), "--out", str(tmp_path / "z.png")])
    assert r.exit_code == 2


def test_issue_population_waits_for_no_one_and_writes_nothing_while_a_batch_runs(
        province, tmp_path: Path) -> None:
    # --population rewrites OUT_DIR/reconcile/ (its matched.csv is what the batch reads):
    # while another run holds OUT_DIR it is refused before reconciling anything.
    g, _res, _out = province
    out = tmp_path / "batch"
    out.mkdir()
    with held_elsewhere(out):
        r = CliRunner().invoke(app, ["issue", "--signer", str(_signer_copy(tmp_path)),
                                     "--from", str(g.vaccinations), "--population",
                                     str(g.population), "--out", str(out)],
                               env={"VAXQR_PASSWORD": "vaxqr-demo"})
    assert r.exit_code == 3 and "in use by another vaxqr issue run" in r.stderr
    assert list(out.iterdir()) == []


def test_a_records_file_changed_between_the_passes_is_an_error_and_writes_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The passes read the records by the offsets the first found: an export still being
    # written (or replaced) mixed two files, or ended in an internal error (a ValueError
    # from rows that no longer lined up).
    pop = _write(tmp_path / "p.csv", SMALL_POP)
    vac = _write(tmp_path / "v.csv", HEADER + "\n" + "".join(
        f"Lê Thị Hòa,Nữ,1990-03-21,091190000001,{d},2,2021-0{d + 5}-01,pfizer,,\n"
        for d in (1, 2, 1)))
    keep = R._keep_good_duplicates

    def grow(*args: object, **kw: object) -> object:  # another program appends meanwhile
        with vac.open("a", encoding="utf-8") as fh:
            fh.write("Trần Văn Đạt,Nam,1985-07-02,091085000002,1,2,2021-06-01,pfizer,,\n")
        return keep(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(R, "_keep_good_duplicates", grow)
    with pytest.raises(StorageError, match="changed while it was being read"):
        reconcile_files(vac, pop, tmp_path / "o", report_date=REPORT, today=TODAY, workers=1)
    assert not (tmp_path / "o" / "matched.csv").exists()
    assert not (tmp_path / "o" / "report.json").exists()
    monkeypatch.setattr(R, "_keep_good_duplicates", keep)
    res = reconcile_files(vac, pop, tmp_path / "o", report_date=REPORT, today=TODAY, workers=1)
    assert res.rows == 4


def test_an_address_over_lines_in_a_column_of_the_clerks_is_read_as_issue_reads_it(
        tmp_path: Path) -> None:
    """A vaccination CSV with a column of the clerk's own (an address) whose cell holds a
    line break (Alt+Enter) and a comma: issue signs it, reconcile (and so issue
    --population) refused it as rows a quote not closed took in, checking every column.
    It checks the columns vaxqr reads, as issue does; a quote opened in the address and
    closed on the next line is still refused."""
    pop = _write(tmp_path / "pop.csv", SMALL_POP)
    first = 'Lê Thị Hòa,Nữ,1990-03-21,091190000001,1,2,2021-08-01,pfizer,L1,x,'
    second = 'Võ Văn Ánh,Nam,1960-01-15,091060000004,1,2,2021-08-01,verocell,L7,x,'
    vac = _write(tmp_path / "v.csv", f'{HEADER},address\n{first}"12 Lê Lợi,\nphường 3"\n'
                 f"{second}\n")
    res = reconcile_files(vac, pop, tmp_path / "o", report_date=REPORT, today=TODAY)
    assert res.rows == 2 and res.counts["matched"] == 2
    vac = _write(tmp_path / "v2.csv", f'{HEADER},address\n{first}"12 Lê Lợi\n{second}"x"\n')
    with pytest.raises(ValidationError, match=r"the row on line 2 runs over the lines after "
                       r"it \(to line 3\)"):
        reconcile_files(vac, pop, tmp_path / "o2", report_date=REPORT, today=TODAY)


def test_stray_quotes_keep_rows_aligned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Quote characters inside unquoted fields (literal for csv) do not shift row numbers
    between the passes, whatever the block and chunk boundaries."""
    monkeypatch.setattr(R, "BLOCK", 2)
    monkeypatch.setattr(R, "CHUNK", 2)
    pop = _write(tmp_path / "p.csv", POP_HEADER + "\n"
                 + "".join(f"0911900000{i:02d},Lê Thị {n},Nữ,1990-05-17,31078\n"
                           for i, n in enumerate(["An", "Bé", "Cúc", "Dung", "Em", "Gấm"])))
    names = ['Lê Thị An', 'Lê Thị "Bé', 'Lê Thị Cúc', 'Lê "Thị" Dung', 'Lê Thị Em', 'Lê Thị Gấm']
    lines = [f"{n},Nữ,1990-05-17,0911900000{i:02d},1,2,2021-10-01,pfizer,,"
             for i, n in enumerate(names)]
    vac = _write(tmp_path / "v.csv", HEADER + "\n" + "\n".join(lines) + "\n")
    res = reconcile_files(vac, pop, tmp_path / "o", report_date=REPORT, today=TODAY)
    expected = dict(read_csv(vac))
    assert res.rows == len(expected) == 6
    for r in _csv(tmp_path / "o" / "mismatches.csv"):
        assert r["id_number"] == expected[int(r["row"])]["id_number"]
        assert r["class"] == "name_differs"
    assert res.counts["matched"] == 4


def _signer_copy(tmp_path: Path, commune: str = "31078") -> Path:
    signer = tmp_path / "signer"
    shutil.copytree(REPO / "keys" / "examples" / "communes" / commune, signer)
    os.chmod(signer / "signer.key", 0o600)
    return signer


SMALL_POP = POP_HEADER + "\n" + "".join(
    f"{i},{n},{s},{d},31078\n" for i, n, s, d in [
        ("091190000001", "Lê Thị Hòa", "Nữ", "1990-03-21"),
        ("091085000002", "Trần Văn Đạt", "Nam", "1985-07-02"),
        ("091060000004", "Võ Văn Ánh", "Nam", "1960-01-15"),
        ("091070000006", "Đặng Văn Long", "Nam", "1970-04-04")])


def test_issue_population_rerun_after_fixes_signs_only_the_fixed_rows(tmp_path: Path) -> None:
    """The clerk's loop: issue --population, fix what mismatches.csv lists, run again. The
    batch is numbered by the input's rows (matched.csv's source_row), so a corrected row
    joining matched.csv shifts nothing: the re-run signs exactly it, and rows, rejects,
    manifest and image names are the input CSV's."""
    signer = _signer_copy(tmp_path)
    pop = _write(tmp_path / "pop.csv", SMALL_POP)
    rows = ["Lê Thị Hòa,Nữ,1990-03-21,091190000001,1,2,2021-08-01,pfizer,L1,x",
            "Tran Van Dat,Nam,1985-02-07,091085000002,1,2,2021-07-01,astrazeneca,L3,x",
            "Trần Văn Đạt,Nam,1985-02-07,091085000002,2,2,2021-09-30,astrazeneca,L4,x",
            "Võ Văn Ánh,Nam,1960-01-15,091060000004,1,2,2021-08-01,verocell,L7,x",
            "Đặng Văn Long,Nam,1970-04-04,091070000006,1,2,2021-08-01,pfizer,L9,x",
            "Đặng Văn Long,Nữ,1970-04-04,091070000006,2,2,2021-09-01,pfizer,L10,x"]
    vac = _write(tmp_path / "vac.csv", HEADER + "\n" + "\n".join(rows) + "\n")
    out = tmp_path / "batch"
    args = ["issue", "--signer", str(signer), "--from", str(vac), "--population", str(pop),
            "--out", str(out), "--workers", "1"]
    env = {"VAXQR_PASSWORD": "vaxqr-demo"}
    r = CliRunner().invoke(app, args, env=env)
    assert r.exit_code == 0, r.output
    first = {m["row"]: m["uvci"] for m in _csv(out / "manifest.csv")}
    assert list(first) == ["1", "4", "5"]  # rows 2, 3 and 6 are in mismatches.csv
    assert sorted(p.name for p in (out / "qr").iterdir()) == [
        "0000001.png", "0000004.png", "0000005.png"]
    # the clerk fixes rows 2 and 3 (name, DOB) and the sex of row 6, and runs again
    rows[1] = rows[1].replace("Tran Van Dat", "Trần Văn Đạt").replace("02-07", "07-02")
    rows[2] = rows[2].replace("02-07", "07-02")
    rows[5] = rows[5].replace("Nữ", "Nam")
    vac.write_text(HEADER + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    r = CliRunner().invoke(app, args, env=env)
    assert r.exit_code == 0, r.output
    assert "2 issued" in r.stderr and "3 already issued, 0 rejected" in r.stderr
    manifest = _csv(out / "manifest.csv")
    assert [m["row"] for m in manifest] == ["1", "3", "4", "5", "6"]  # no duplicates
    assert {m["row"]: m["uvci"] for m in manifest if m["row"] in first} == first
    assert [m["full_name"] for m in manifest if m["row"] in ("3", "6")] == [
        "Trần Văn Đạt", "Đặng Văn Long"]  # the corrected people, dose 2 each
    assert [m["file"] for m in manifest] == [f"qr/{int(m['row']):07d}.png" for m in manifest]
    assert sorted(p.name for p in (out / "qr").iterdir()) == [
        f"{n:07d}.png" for n in (1, 3, 4, 5, 6)]
    rejects = _csv(out / "rejects.csv")
    assert [(x["row"], "superseded by row 3" in x["reason"]) for x in rejects] == [
        ("2", True)]  # the input's row: dose 1 of Đạt
    r = CliRunner().invoke(app, args, env=env)  # nothing left to do
    assert r.exit_code == 0 and "0 issued" in r.stderr and "5 already" in r.stderr
    # the ledger knows the batch by the input's name: another input into OUT is refused
    other = _write(tmp_path / "other.csv", HEADER + "\n" + rows[0] + "\n")
    r = CliRunner().invoke(app, [*args[:4], str(other), *args[5:]], env=env)
    assert r.exit_code == 3 and "vac.csv" in r.stderr


def test_another_persons_record_is_never_told_to_take_the_registers_name() -> None:
    """A different name and a different DOB or sex under one ID number: probably another
    person, so the fix is to check the ID, not to copy the register's name (following
    that fix, then the DOB and sex fixes, signed the ID owner's credential on another
    person's dose)."""
    dat = Person("091085000002", "Trần Văn Đạt", "M", date(1985, 7, 2), "30760")
    base = {"id_number": "091085000002", "dose_number": "1", "total_doses": "2",
            "vaccination_date": "2021-08-01"}
    for sex, dob, differs in [("Nữ", "1999-01-01", "date of birth and sex"),
                              ("Nam", "1999-01-01", "date of birth"),
                              ("Nữ", "1985-07-02", "sex"), ("Nam", "1985-02-07", "date of birth")]:
        m = classify(rec(full_name="Trương Văn Bảy", sex=sex, dob=dob, **base), dat,
                     today=TODAY)
        assert m.cls == "name_differs" and m.clean is None
        assert "another person" in m.reason and differs in m.reason
        assert "Trần Văn Đạt" not in m.fix and "check the ID number" in m.fix
    # a name typo on a record whose DOB and sex are the owner's: take the register's name
    m = classify(rec(full_name="Trần Văn Đạo", sex="Nam", dob="1985-07-02", **base), dat,
                 today=TODAY)
    assert m.cls == "name_differs" and m.fix == "use the register's name: Trần Văn Đạt"


@pytest.mark.parametrize("workers", [1, 2])
def test_a_corrected_re_entry_is_kept_and_the_wrong_row_is_the_duplicate(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int) -> None:
    """Two rows of one ID and dose: the one that matches the register is kept, wherever it
    is; the wrong one is the duplicate to delete. Never 'delete this row' on the only good
    record."""
    monkeypatch.setattr(R, "CHUNK", 2)
    monkeypatch.setattr(R, "PARALLEL_MIN_BYTES", 0)
    pop = _write(tmp_path / "pop.csv", SMALL_POP)
    rows = [
        "Lê Thị Hòa,Nữ,1990-12-03,091190000001,1,2,2021-08-01,pfizer,L1,x",  # DOB typo
        "Lê Thị Hòa,Nữ,1990-03-21,091190000001,1,2,2021-08-01,pfizer,L1,x",  # re-entry
        "Trần Văn Đạt,Nam,1985-07-02,091085000002,1,2,2021-07-01,pfizerr,L3,x",  # vaccine
        "Trần Văn Đạt,Nam,1985-07-02,091085000002,1,2,2021-07-01,pfizer,L3,x",
        "?,?,?,091060000004,1,2,?,?,,",  # garbage
        "Võ Văn Ánh,Nam,1960-01-15,091060000004,1,2,2021-08-01,verocell,L7,x",
        "Đặng Văn Long,Nam,1970-04-04,091070000006,1,2,2021-08-01,pfizer,L9,x",  # both good
        "Đặng Văn Long,Nam,1970-04-04,091070000006,1,2,2021-08-01,pfizer,L9,x",
        "Lê Thị Hòa,Nữ,1990-03-21,091190000001,2,2,2021-08-15,pfizer,L2,x",  # too soon
        "Trần Văn Đạt,Nam,1985-07-02,091085000002,2,2,1999-09-01,pfizer,L4,x",  # both bad
        "Trần Văn Đạt,Nam,1985-07-22,091085000002,2,2,2021-09-01,pfizer,L4,x",
    ]
    vac = _write(tmp_path / "vac.csv", HEADER + "\n" + "\n".join(rows) + "\n")
    res = reconcile_files(vac, pop, tmp_path / "o", report_date=REPORT, today=TODAY,
                          workers=workers)
    got = _classes(tmp_path / "o", res.rows)
    assert got == {1: "duplicate_dose", 2: "matched", 3: "duplicate_dose", 4: "matched",
                   5: "duplicate_dose", 6: "matched", 7: "matched", 8: "duplicate_dose",
                   9: "dose_sequence", 10: "dose_sequence", 11: "duplicate_dose"}
    bad = {int(r["row"]): r for r in _csv(tmp_path / "o" / "mismatches.csv")}
    assert "row 2 (spreadsheet row 3), which matches the register" in bad[1]["reason"]
    assert "delete this row" in bad[1]["fix"]
    assert "row 7 (spreadsheet row 8), which matches" in bad[8]["reason"]
    assert "row 2" in bad[9]["reason"]  # the interval is counted from the kept dose 1
    assert "correct row 10" in bad[11]["fix"]  # neither matches: no good row to keep
    matched = [int(m["source_row"]) for m in _csv(tmp_path / "o" / "matched.csv")]
    assert matched == [2, 4, 6, 7]
    # the pure function agrees, given each record's 'good' flag
    refs = [DoseRef.of(1, rec(dose_number="1"), good=False),
            DoseRef.of(2, rec(dose_number="1"), good=True),
            DoseRef.of(3, rec(dose_number="2", vaccination_date="2021-09-01"), good=True)]
    assert dose_context(1, refs) == DoseContext(2, None, True)
    assert dose_context(2, refs) == DoseContext()
    assert dose_context(3, refs).previous.row == 2
    assert dose_context(2, [r._replace(good=False) for r in refs]).duplicate_of == 1


def test_a_lot_or_site_that_a_spreadsheet_would_run_is_refused(tmp_path: Path) -> None:
    """matched.csv never holds a cell starting with = + - @ (Excel runs it): reconcile
    refuses the record (dose_sequence, the dose data is unusable), vaxqr issue the row."""
    pop = _write(tmp_path / "pop.csv", SMALL_POP)
    rows = ["Lê Thị Hòa,Nữ,1990-03-21,091190000001,1,2,2021-08-01,pfizer,"
            "\"=cmd|' /C calc'!A0\",@SUM(1+1)",
            "Trần Văn Đạt,Nam,1985-07-02,091085000002,1,2,2021-07-01,pfizer,+1+2,x",
            "Võ Văn Ánh,Nam,1960-01-15,091060000004,1,2,2021-08-01,verocell,L7,\u00a0-3+4",
            "Đặng Văn Long,Nam,1970-04-04,091070000006,1,2,2021-08-01,pfizer,-,Trạm Y tế"]
    vac = _write(tmp_path / "vac.csv", HEADER + "\n" + "\n".join(rows) + "\n")
    for fast in (True, False):
        out = tmp_path / f"o{fast}"
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(R, "FAST_PATH", fast)
            res = reconcile_files(vac, pop, out, report_date=REPORT, today=TODAY)
        assert _classes(out, res.rows) == {1: "dose_sequence", 2: "dose_sequence",
                                           3: "dose_sequence", 4: "matched"}
        bad = {int(r["row"]): r for r in _csv(out / "mismatches.csv")}
        assert "formula" in bad[1]["reason"] and "lot" in bad[1]["reason"]
        assert "site" in bad[3]["reason"]
        matched = _csv(out / "matched.csv")
        assert [(m["lot"], m["site"]) for m in matched] == [("-", "Trạm Y tế")]
    recs = [dict(zip(COLUMNS, next(csv.reader([r])), strict=True)) for r in rows]
    for r in recs[:3]:
        with pytest.raises(ValidationError, match="formula"):
            parse_record(1, r, today=TODAY)
    assert parse_record(1, recs[3], today=TODAY).lot == "-"


def test_the_report_counts_auto_fixed_tone_style_rows_only(tmp_path: Path) -> None:
    """'name_tone_style … both (auto-fixed)' counts only rows in matched.csv: a tone-style
    name on a record with a wrong DOB or sex is counted by that error."""
    pop = _write(tmp_path / "pop.csv", POP_HEADER + "\n"
                 "091190000001,Lê Thị Hòa,Nữ,1990-03-21,30760\n"
                 "091192000003,Phạm Thị Thuý,Nữ,1992-12-01,31078\n"
                 "091060000004,Võ Văn Hoà,Nam,1960-01-15,31078\n")
    vac = _write(tmp_path / "vac.csv", HEADER + "\n"
                 "Lê Thị Hoà,Nữ,1991-03-21,091190000001,1,2,2021-08-01,pfizer,L,x\n"
                 "Phạm Thị Thúy,Nam,1992-12-01,091192000003,1,2,2021-08-01,pfizer,L,x\n"
                 "Võ Văn Hòa,Nam,1960-01-15,091060000004,1,2,2021-08-01,pfizer,L,x\n")
    r = CliRunner().invoke(app, ["reconcile", str(vac), "-p", str(pop), "-o",
                                 str(tmp_path / "o"), "--json"])
    assert r.exit_code == 0, r.output
    counts = json.loads(r.stdout)["counts"]
    assert (counts["name_tone_style"], counts["dob_differs"], counts["sex_differs"]) == (1, 1, 1)
    assert json.loads(r.stdout)["matched_rows"] == 1
    r = CliRunner().invoke(app, ["reconcile", str(vac), "-p", str(pop), "-o",
                                 str(tmp_path / "o"), "--force"])
    line = next(x for x in r.stdout.splitlines() if "name_tone_style" in x)
    assert " 1 " in line and "auto-fixed" in line


def _mismatches_and_matched(out: Path) -> tuple[dict[int, dict[str, str]], list[int]]:
    bad = {int(r["row"]): r for r in _csv(out / "mismatches.csv")}
    return bad, [int(m["source_row"]) for m in _csv(out / "matched.csv")]


@pytest.mark.parametrize("workers", [1, 2])
def test_duplicates_of_a_dose_are_judged_after_the_kept_previous_dose(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int) -> None:
    """Whether a duplicate dose record is good (clean on its own) is judged against the
    record kept for the previous dose, the same for every record of the dose: a dose 2
    too soon after dose 1 is not good, on any of its rows; a dose 2 is not judged against
    a dose 1 row that is itself the duplicate to delete (found by review)."""
    monkeypatch.setattr(R, "CHUNK", 2)
    monkeypatch.setattr(R, "PARALLEL_MIN_BYTES", 0)
    pop = _write(tmp_path / "pop.csv", SMALL_POP)
    hoa = "Lê Thị Hòa,Nữ,1990-03-21,091190000001"

    def run(name: str, lines: list[str]) -> tuple[Path, dict[int, dict[str, str]], list[int]]:
        vac = _write(tmp_path / f"{name}.csv", HEADER + "\n" + "".join(f"{ln}\n" for ln in lines))
        reconcile_files(vac, pop, tmp_path / name, today=TODAY, workers=workers)
        return (vac, *_mismatches_and_matched(tmp_path / name))

    # A: both dose 2 rows are too soon after dose 1: neither is good, the first is kept
    _vac, bad, matched = run("a", [f"{hoa},{d},2,{when},pfizer,L{d},x" for d, when in [
        (1, "2021-07-01"), (2, "2021-07-05"), (2, "2021-07-10")]])
    assert {n: r["class"] for n, r in bad.items()} == {2: "dose_sequence",
                                                        3: "duplicate_dose"}
    assert "4 days after dose 1 at row 1 (spreadsheet row 2);" in bad[2]["reason"]
    assert "also at row 2 (spreadsheet row 3), and neither matches the register" in bad[3]["reason"]
    assert bad[3]["fix"].startswith("correct row 2 (spreadsheet row 3) and delete this row")
    assert matched == [1]
    # B: dose 1 with a DOB typo (deleted) above its re-entry; dose 2 twice, both after the
    # kept dose 1: the first dose 2 is kept, the second is the duplicate
    vac, bad, matched = run("b", [
        "Lê Thị Hòa,Nữ,1990-12-03,091190000001,1,2,2021-09-01,pfizer,L1,x",
        f"{hoa},1,2,2021-07-01,pfizer,L1,x",
        f"{hoa},2,2,2021-08-01,pfizer,L2,x",
        f"{hoa},2,2,2021-08-01,pfizer,L2,x"])
    assert {n: r["class"] for n, r in bad.items()} == {1: "duplicate_dose",
                                                        4: "duplicate_dose"}
    assert "also at row 2 (spreadsheet row 3), which matches" in bad[1]["reason"]
    assert "also at row 3 (spreadsheet row 4), which matches" in bad[4]["reason"]
    assert matched == [2, 3]
    # the pure function, given the good flags decided dose by dose, says the same
    recs = [VaccRecord(*line.split(",")) for line in _csv_lines(vac)]
    people = {"091190000001": Person("091190000001", "Lê Thị Hòa", "F", date(1990, 3, 21),
                                     "31078")}
    pure = _pure_matches(recs, people)
    assert {n: m.cls for n, m in pure.items() if m.cls != "matched"} == {
        1: "duplicate_dose", 4: "duplicate_dose"}


def _csv_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8-sig").splitlines()[1:]


def _pure_matches(records: list[VaccRecord], register: dict[str, Person]
                  ) -> dict[int, R.Match]:
    """What a Spark/DuckDB job does with the pure API: per ID, each record's ``good`` flag
    decided dose by dose in increasing order (clean on its own, with the previous dose's
    kept record as context), then every record classified with :func:`dose_context`."""
    by_id: dict[str, list[tuple[int, VaccRecord]]] = defaultdict(list)
    for n, r in enumerate(records, 1):
        by_id[r.id_number.strip()].append((n, r))
    out = {}
    for idn, recs in by_id.items():
        person = register.get(idn)
        refs = {n: DoseRef.of(n, r) for n, r in recs}
        for d in sorted({ref.dose for ref in refs.values() if ref.dose is not None}):
            for n, r in recs:
                if refs[n].dose == d:
                    prev = dose_context(n, refs.values()).previous
                    m = classify(r, person, today=TODAY, context=DoseContext(None, prev))
                    refs[n] = refs[n]._replace(good=m.clean is not None)
        for n, r in recs:
            out[n] = classify(r, person, today=TODAY, context=dose_context(n, refs.values()))
    return out


_SMALL_PEOPLE = {
    "091190000001": Person("091190000001", "Lê Thị Hòa", "F", date(1990, 3, 21), "31078"),
    "091085000002": Person("091085000002", "Trần Văn Đạt", "M", date(1985, 7, 2), "31078")}
_record = st.builds(
    lambda idn, dob_ok, dose, total, when, vaccine, lot, site: VaccRecord(
        _SMALL_PEOPLE[idn].full_name if idn in _SMALL_PEOPLE else "Ai Đó",
        "Nữ" if idn == "091190000001" else "Nam",
        (_SMALL_PEOPLE[idn].dob.isoformat() if idn in _SMALL_PEOPLE else "1990-01-01")
        if dob_ok else "1999-09-09", idn, dose, total, when, vaccine, lot, site),
    st.sampled_from(["091190000001", "091190000001", "091085000002", "091085000009"]),
    st.booleans() | st.just(True),
    st.sampled_from(["1", "2", "3", "0", "x"]),
    st.sampled_from(["3", "3", "2"]),
    st.sampled_from(["2021-07-01", "2021-07-10", "2021-07-25", "2021-08-01", "2021-08-20",
                     "2021-09-15", "2021-10-20", "2023-01-01", "?"]),
    st.sampled_from(["pfizer", "pfizer", "astrazeneca", "pfizerr"]),
    st.sampled_from(["L1", "L1", "L1", "=1"]),
    st.sampled_from(["x", "x", "Trạm\nY tế"]))  # a quoted line break


# how a row is written: as csv.writer does, every field quoted, after a blank line
_LAYOUT = st.sampled_from(["plain", "plain", "quoted", "blank"])


@settings(max_examples=120, deadline=None)
@given(st.lists(_record, min_size=1, max_size=9), st.sampled_from([2, 3, 50_000]),
       st.lists(_LAYOUT, min_size=9, max_size=9), st.sampled_from(["\n", "\r\n"]),
       st.sampled_from([2, 1000]))
def test_batch_and_pure_path_agree_on_duplicates_and_dose_series(
        records: list[VaccRecord], chunk: int, layout: list[str], eol: str,
        block: int) -> None:
    """Random small inputs with duplicate doses, several doses, errors: reconcile_files
    (the probe of duplicates, the vectorised contexts, the fast path) gives every row the
    class, reason and matched.csv line of the pure classify()/dose_context() path, however
    the CSV is laid out (quoted rows, blank lines, CRLF: the probe parses only the wanted
    lines of a block where the lines are the rows, and other blocks whole)."""
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as mp:
        mp.setattr(R, "CHUNK", chunk)
        mp.setattr(R, "BLOCK", block)
        d = Path(tmp)
        pop = _write(d / "pop.csv", SMALL_POP)
        buf = io.StringIO()
        plain = csv.writer(buf, lineterminator=eol)
        quoted = csv.writer(buf, lineterminator=eol, quoting=csv.QUOTE_ALL)
        plain.writerow(COLUMNS)
        for rec, how in zip(records, layout, strict=False):
            if how == "blank":
                buf.write(eol)
            (quoted if how == "quoted" else plain).writerow(rec)
        vac = _write(d / "vac.csv", buf.getvalue())
        res = reconcile_files(vac, pop, d / "o", report_date=REPORT, today=TODAY, workers=1)
        bad, matched = _mismatches_and_matched(d / "o")
        good_rows = {int(m["source_row"]): tuple(m[c] for c in COLUMNS)
                     for m in _csv(d / "o" / "matched.csv")}
    assert res.rows == len(records)
    pure = _pure_matches(records, _SMALL_PEOPLE)
    for n, m in pure.items():
        if m.cls == "matched":
            assert n not in bad, (n, bad[n], records)
        else:
            got = bad[n]
            assert (got["class"], got["reason"]) == (m.cls, m.reason), (n, records)
            if m.cls != "id_not_found":  # reconcile may suggest a near ID
                assert got["fix"] == m.fix, (n, records)
        assert good_rows.get(n) == m.clean, (n, records)
    assert matched == sorted(good_rows)


def test_an_unusable_register_row_is_named_as_what_to_correct(tmp_path: Path) -> None:
    """A record whose ID number is on a register row that was skipped as unusable (an
    impossible date of birth) was told its ID number is not in the register and to check
    the CCCD card: the register's row is what to correct."""
    pop = _write(tmp_path / "pop.csv", POP_HEADER + "\n"
                 "091190000001,Lê Thị Hòa,Nữ,1990-03-21,30760\n"
                 "091095000505,Trần Văn Bình,Nam,1995-15-06,31078\n")
    vac = _write(tmp_path / "vac.csv", HEADER + "\n"
                 "Trần Văn Bình,Nam,1995-06-15,091095000505,1,2,2021-08-01,pfizer,L,x\n"
                 "Lê Văn Cường,Nam,1995-06-15,091095000506,1,2,2021-08-01,pfizer,L,x\n")
    res = reconcile_files(vac, pop, tmp_path / "out", report_date=REPORT, today=TODAY)
    assert res.counts["id_not_found"] == 2
    bad, _ = _mismatches_and_matched(tmp_path / "out")
    assert bad[1]["reason"] == ("the population register's entry for this ID number is "
                                "unusable (register row 2 (spreadsheet row 3): unusable date of "
                                "birth '1995-15-06' "
                                f"(before 1900, after {TODAY}, or not a date))")
    assert bad[1]["fix"] == "correct row 2 (spreadsheet row 3) of the population register"
    assert bad[2]["reason"] == "the ID number is not in the population register"


@pytest.mark.parametrize("which", ["population", "vaccinations"])
@pytest.mark.parametrize("content, said", [
    (b"", "is empty (not even a header line)"),
    ("a\tb\n".encode("utf-16"), "is UTF-16 (Excel's 'Unicode Text'), not a UTF-8 CSV"),
    (b"\n" + POP_HEADER.encode() + b"\n", "the first line is blank"),
], ids=["empty", "utf16", "blank-first-line"])
def test_an_empty_or_utf16_csv_is_named_as_vaxqr_issue_names_it(
        tmp_path: Path, which: str, content: bytes, said: str) -> None:
    pop = _write(tmp_path / "p.csv", POP_HEADER + "\n")
    vac = _write(tmp_path / "v.csv", HEADER + "\n")
    bad = pop if which == "population" else vac
    bad.write_bytes(content)
    with pytest.raises(ValidationError) as info:
        reconcile_files(vac, pop, tmp_path / "o")
    assert said in str(info.value) and str(bad) in str(info.value)
    assert "lacks" not in str(info.value)


def test_a_new_out_dir_is_private_and_an_open_one_is_warned_about(tmp_path: Path) -> None:
    """matched.csv and mismatches.csv hold names and dates of birth: the --out directory
    vaxqr creates is 0700; one the user made keeps its mode, with a warning."""
    pop = _write(tmp_path / "p.csv", POP_HEADER + "\n")
    vac = _write(tmp_path / "v.csv", HEADER + "\n")
    runner = CliRunner()
    out = tmp_path / "new" / "recon"
    r = runner.invoke(app, ["reconcile", str(vac), "-p", str(pop), "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert (out.stat().st_mode & 0o777) == 0o700 and "other users" not in r.stderr
    mine = tmp_path / "mine"
    mine.mkdir()
    os.chmod(mine, 0o750)
    r = runner.invoke(app, ["reconcile", str(vac), "-p", str(pop), "-o", str(mine), "--json"])
    assert r.exit_code == 0, r.output
    assert (mine.stat().st_mode & 0o777) == 0o750
    assert f"warning: {mine} can be read by other users of this computer (mode 0750)" \
        in r.stderr and f"chmod 700 {mine}" in r.stderr
    assert json.loads(r.stdout)["version"] == 1  # stdout stays data


def test_a_month_first_export_is_refused_before_anything_is_written(province, tmp_path: Path
                                                                    ) -> None:
    """The vaccination export written month/day/year (Excel set to English (United
    States)): its vaccination dates with a day up to 12 went to matched.csv with day and
    month swapped (its dates of birth too, when the register had the same swap), and from
    there into the credentials. Refused, naming a row."""
    g, _res, _out = province
    with open(g.vaccinations, encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.reader(fh))
    from vaxqr.citizen import parse_date

    cols = (rows[0].index("dob"), rows[0].index("vaccination_date"))
    us_rows = [rows[0]]
    for r in rows[1:]:
        try:
            dates = [parse_date(r[c]) for c in cols]
        except ValidationError:
            continue  # a planted date that is not one (31/02/1990)
        for c, d in zip(cols, dates, strict=True):
            r[c] = f"{d.month}/{d.day}/{d.year}"
        us_rows.append(r)
    us = tmp_path / "us.csv"
    with us.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows(us_rows)
    with pytest.raises(ValidationError, match=r"month/day/year \(row \d+ \(spreadsheet row "):
        reconcile_files(us, g.population, tmp_path / "o", report_date=REPORT, today=TODAY,
                        workers=1)
    assert not (tmp_path / "o").exists()  # nor the directory it would have written into


def _open_a_quote(src: Path, dst: Path, line: int) -> None:
    """``src`` with a quote opened at the start of line ``line``'s second field (``,"``)."""
    lines = src.read_bytes().splitlines(keepends=True)
    lines[line - 1] = lines[line - 1].replace(b",", b',"', 1)
    dst.write_bytes(b"".join(lines))


@pytest.mark.parametrize("which", ["vaccinations", "population"])
def test_an_open_quote_that_swallows_rows_is_refused(province, tmp_path: Path, which) -> None:
    """A quote typed into a field and not closed on its line made csv read the rows after
    it, other people's, as that field's text, to the next quote or the end of the file:
    22 vaccination rows were counted as 3, coverage 9.09% instead of 100%, exit 0. The
    file is now refused before anything is written, naming the line of the quote."""
    g, _res, _out = province
    files = {"vaccinations": g.vaccinations, "population": g.population}
    line = 40
    _open_a_quote(files[which], tmp_path / "bad.csv", line)
    # a quote typed further down closes it: the file is read on from there
    _open_a_quote(tmp_path / "bad.csv", tmp_path / "bad.csv", line + 20)
    files[which] = tmp_path / "bad.csv"
    with pytest.raises(ValidationError, match=rf"the row on line {line} runs over the lines "
                       rf"after it \(to line {line + 20}\): a quote .* nothing was written"
                       ) as e:
        reconcile_files(files["vaccinations"], files["population"], tmp_path / "o",
                        report_date=REPORT, today=TODAY, workers=1)
    assert f"line {line}" in e.value.hint
    assert not (tmp_path / "o").exists()


def test_a_cell_with_a_line_break(tmp_path: Path) -> None:
    """A spreadsheet cell with a line break (Alt+Enter) is a quoted field over two lines:
    a name or an address so typed is read (rows a quote took in are told apart by the
    separators in the cell, :func:`vaxqr.fileio.rows_taken_in`); a name over two lines
    holding the separator is such rows, and the file is refused."""
    header = ["id_number", "full_name", "sex", "dob", "commune_code", "address"]
    people = [["091190012345", "Nguyễn Thị Ánh Hồng", "Nữ", "1990-05-17", "31078", "x"],
              ["091090012346", "Trần Văn\nBình", "Nam", "1990-01-02", "31078",
               "Thôn 3,\nxã Dương Tơ"]]
    pop = tmp_path / "pop.csv"

    def population(rows):
        with pop.open("w", encoding="utf-8", newline="") as fh:
            csv.writer(fh).writerows([header, *rows])

    population(people)
    vacc = write_csv(tmp_path / "v.csv", [
        ["Nguyễn Thị Ánh Hồng", "Nữ", "1990-05-17", "091190012345", "1", "2", "2021-08-01",
         "pfizer", "L", "Trạm Y tế\nxã Dương Tơ"]])
    res = reconcile_files(vacc, pop, tmp_path / "o", report_date=REPORT, today=TODAY,
                          workers=1)
    assert res.register_people == 2 and res.counts["matched"] == 1, res
    population([people[0], [*people[1][:1], "Trần Văn,\nBình", *people[1][2:]]])
    with pytest.raises(ValidationError, match=r"the row on line 3 runs over the lines after "
                       r"it \(to line 5\)"):  # the name's line break, the address's
        reconcile_files(vacc, pop, tmp_path / "o2", report_date=REPORT, today=TODAY,
                        workers=1)


def test_a_pool_interrupted_while_it_forks_leaves_no_worker_behind(monkeypatch) -> None:
    """Ctrl-C or SIGTERM (a KeyboardInterrupt) while the pool forks its workers: Pool()
    cleans up after an Exception only, and the ``with`` had not begun, so the workers
    already started were left running, holding the command's stdout and stderr (a CI run
    timed out waiting for them after vaxqr had exited 143). They are ended now."""
    import time as _time

    real = multiprocessing.get_context("fork")
    started = []

    class Forking:
        def Pool(self, _workers):
            child = real.Process(target=_time.sleep, args=(60,))
            child.start()
            started.append(child)
            raise KeyboardInterrupt  # as the signal handler raises it, mid-fork

    monkeypatch.setattr(R.multiprocessing, "get_context", lambda _method: Forking())
    with pytest.raises(KeyboardInterrupt), R._pool(2):
        pass
    started[0].join(10)
    assert not started[0].is_alive()
