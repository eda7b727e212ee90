"""Reconciling: match vaccination records to the population register (9438/BYT-CNTT).

Every dose record is compared with the register entry of its ID number on the four fields
of 9438/BYT-CNTT (full name, sex, date of birth, ID number) and gets exactly one class, the
first of :data:`CLASSES` that applies:

``id_invalid``
    The ID number is not 12 ASCII digits or its first three digits are not one of the 63
    province codes (:func:`vaxqr.citizen.parse_id_number`). Disagreements between the ID's
    digits and the DOB or sex are not this class: the register decides, so they show up as
    ``dob_*``/``sex_differs`` (below).
``id_not_found``
    A well-formed ID number that is not in the register.
``duplicate_dose``
    An earlier row of the input has the same ID number and the same dose number: the second
    and later occurrences get this class, the first is classified on its own merits.
``name_tone_style``
    The names differ only in old/new tone placement (``Hòa``/``Hoà``, ``Thúy``/``Thuý``):
    equal :func:`~vaxqr.citizen.name_key` but not equal ignoring case. Auto-fixed: when
    every later check passes the row goes to ``matched.csv`` with the register's spelling
    (and is listed in ``mismatches.csv`` for the record); when another field is wrong too,
    the row keeps this class (it comes first), is not signed, and its reason and fix name
    the other problem.
``name_no_diacritics``
    Same words in the same order, and every word that differs is the register's word with
    all its diacritics removed (``Nguyen`` for ``Nguyễn``, ``Dang`` for ``Đặng``).
``name_order``
    The same words (tone style ignored) in another order (``An Nguyễn Văn``).
``name_differs``
    Any other name difference, an empty name, or a register name that cannot be written in
    a credential (no ICAO transliteration).
``dob_swapped``
    The record's date of birth is the register's with day and month swapped, also when the
    swap makes it an impossible date (``1990-17-05`` for 17 May 1990).
``dob_differs``
    Any other DOB difference (unreadable date included), or a register DOB that disagrees
    with the ID number's digits (century and year digits).
``sex_differs``
    The record's sex (``Nam``/``Nữ``/``M``/``F``/…) is not the register's, is unreadable, or
    the register's disagrees with the ID's 4th digit.
``dose_sequence``
    The dose data cannot be placed in the person's series: dose ``n`` (n ≥ 2) is dated
    before the first record of dose ``n-1`` of the same ID, or fewer days after it than the
    dose ``n-1`` vaccine's ``min_interval_days``; or the dose fields are unusable (dose
    number not 1…total, unknown vaccine, vaccination date unreadable, after ``today``,
    before 2020-12-01 or before the date of birth).
``matched``
    Everything agrees after normalisation (NFC, case, spacing; any accepted date and sex
    spelling).

:func:`classify` is a pure function of one record, its register entry and two facts about
the other records of the same ID (:class:`DoseContext`), so the same code runs as a
Spark/DuckDB/pandas UDF; :func:`dose_context` derives those facts from the ID's records.
:func:`reconcile_files` is the streaming driver for a province: a first pass collects
``(ID, dose, date)`` compactly in NumPy arrays while the register is indexed (sorted int64
IDs, columnar), then the records are classified in chunks on every core: a vectorised
pre-check passes the rows whose fields are exactly the register's (``FAST_PATH``; tested to
give byte-identical output), :func:`classify` decides every other row.
"""

from __future__ import annotations

import csv
import gc
import io
import json
import multiprocessing
import os
import re
import time
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from functools import lru_cache
from itertools import islice
from operator import itemgetter
from pathlib import Path
from typing import IO, Any, Final, NamedTuple

import numpy as np
import numpy.typing as npt

from .citizen import (
    PROVINCES,
    name_key,
    normalize_name,
    parse_date,
    parse_id_number,
    strip_diacritics,
)
from .credential import PersonName, Vaccine, find_vaccine
from .errors import StorageError, ValidationError, VaxqrError
from .fileio import atomic_open, ensure_dir
from .issue import COLUMNS, REQUIRED

__all__ = [
    "CLASSES",
    "CLEAN",
    "MATCHED_COLUMNS",
    "MISMATCH_COLUMNS",
    "POPULATION_COLUMNS",
    "Coverage",
    "DoseContext",
    "DoseRef",
    "Match",
    "Person",
    "PreviousDose",
    "ReconcileResult",
    "Register",
    "VaccRecord",
    "classify",
    "dose_context",
    "reconcile_files",
]

CLASSES: Final = ("id_invalid", "id_not_found", "duplicate_dose", "name_tone_style",
                  "name_no_diacritics", "name_order", "name_differs", "dob_swapped",
                  "dob_differs", "sex_differs", "dose_sequence", "matched")
"""Every class, in precedence order: a record gets the first that applies."""
CLEAN: Final = frozenset({"matched", "name_tone_style"})
"""Classes whose rows go to ``matched.csv`` (with the register's values)."""
POPULATION_COLUMNS: Final = ("id_number", "full_name", "sex", "dob", "commune_code")
"""Required columns of the population export (any order, more columns are ignored)."""
MATCHED_COLUMNS: Final = (*COLUMNS, "source_row")
MISMATCH_COLUMNS: Final = ("row", "class", "id_number", "full_name", "register_full_name",
                           "sex", "register_sex", "dob", "register_dob", "dose_number",
                           "total_doses", "vaccination_date", "vaccine",
                           "register_commune_code", "reason", "fix")
EARLIEST_VACCINATION: Final = date(2020, 12, 1)
CHUNK: Final = 50_000  # rows a pass-2 task classifies
BLOCK: Final = 1_000  # lines parsed at a time (small: short-lived rows stay in cache)
PARALLEL_MIN_BYTES: Final = 4 << 20  # smaller inputs are classified in-process
_PROVINCE_CODES: Final = frozenset(PROVINCES)
_SEX_WORD: Final = {"M": "Nam", "F": "Nữ"}


# --------------------------------------------------------------------------- data model


class VaccRecord(NamedTuple):
    """One row of the vaccination export, verbatim (the ``vaxqr issue`` columns)."""

    full_name: str
    sex: str
    dob: str
    id_number: str
    dose_number: str
    total_doses: str
    vaccination_date: str
    vaccine: str
    lot: str = ""
    site: str = ""


class Person(NamedTuple):
    """One register entry: name (normalised by :func:`classify` before use), sex
    ``'M'``/``'F'``, date of birth, commune code."""

    id_number: str
    full_name: str
    sex: str
    dob: date
    commune_code: str


class PreviousDose(NamedTuple):
    """The first record of dose ``n-1`` of the same ID (row is 1-based)."""

    row: int
    date: date
    min_interval_days: int


class DoseContext(NamedTuple):
    """What :func:`classify` needs to know about the other records of the same ID."""

    duplicate_of: int | None = None  # row of an earlier record with the same dose number
    previous: PreviousDose | None = None


class DoseRef(NamedTuple):
    """One record of an ID, reduced to what the dose checks use (for :func:`dose_context`)."""

    row: int
    dose: int | None
    date: date | None
    min_interval_days: int

    @classmethod
    def of(cls, row: int, record: VaccRecord) -> DoseRef:
        v = _vaccine(record.vaccine)
        dose = _small_int(record.dose_number)
        return cls(row, dose if dose else None, _date(record.vaccination_date),
                   v.min_interval_days if v else 0)


class Match(NamedTuple):
    """The verdict on one record: its class, why, the suggested fix, and for the clean
    classes the row to sign (the :data:`vaxqr.issue.COLUMNS` values, register's identity)."""

    cls: str
    reason: str = ""
    fix: str = ""
    clean: tuple[str, ...] | None = None


def dose_context(row: int, history: Iterable[DoseRef]) -> DoseContext:
    """The :class:`DoseContext` of the record at ``row`` among all records of its ID
    (``history``, which includes the record itself): the earliest other row with the same
    dose number if it comes first, and the first record of the previous dose."""
    refs = list(history)
    me = next((r for r in refs if r.row == row), None)
    if me is None or me.dose is None:
        return DoseContext()
    same = [r.row for r in refs if r.dose == me.dose and r.row < row]
    prev = sorted((r for r in refs if me.dose > 1 and r.dose == me.dose - 1),
                  key=lambda r: r.row)
    previous = None
    if prev and prev[0].date is not None:
        previous = PreviousDose(prev[0].row, prev[0].date, prev[0].min_interval_days)
    return DoseContext(min(same) if same else None, previous)


# --------------------------------------------------------------------------- cached parsing


@lru_cache(maxsize=1 << 18)  # dates of birth: ~40,000 days × a few spellings
def _date(text: str) -> date | None:
    try:
        return parse_date(text)
    except ValidationError:
        return None


_LOOSE_DATE: Final = (
    (re.compile(r"\s*([0-9]{4})[-/.]([0-9]{1,2})[-/.]([0-9]{1,2})\s*"), (1, 2, 3)),
    (re.compile(r"\s*([0-9]{1,2})[-/.]([0-9]{1,2})[-/.]([0-9]{4})\s*"), (3, 2, 1)),
)


@lru_cache(maxsize=1 << 14)
def _loose_ymd(text: str) -> tuple[int, int, int] | None:
    """(year, month, day) as written, without checking that the date exists."""
    for pattern, (y, m, d) in _LOOSE_DATE:
        match = pattern.fullmatch(text)
        if match:
            return int(match[y]), int(match[m]), int(match[d])
    return None


@lru_cache(maxsize=64)
def _sex(text: str) -> str | None:
    key = unicodedata.normalize("NFC", text).strip().casefold()
    return {"nam": "M", "nữ": "F", "nu": "F", "m": "M", "f": "F", "male": "M",
            "female": "F"}.get(key)


@lru_cache(maxsize=256)
def _vaccine(text: str) -> Vaccine | None:
    try:
        return find_vaccine(text)
    except VaxqrError:
        return None


@lru_cache(maxsize=1024)
def _small_int(text: str) -> int | None:
    t = text.strip()
    return int(t) if t.isascii() and t.isdigit() and len(t) <= 3 else None


@lru_cache(maxsize=1 << 18)
def _norm_cached(text: str) -> str:
    return normalize_name(text)


def _norm(text: str) -> str:
    """:func:`~vaxqr.citizen.normalize_name`, cached (ASCII needs no cache: lot numbers)."""
    if text.isascii():
        return " ".join(text.split())
    return _norm_cached(text)


@lru_cache(maxsize=1 << 18)
def _key(text: str) -> str:
    return name_key(text)


@lru_cache(maxsize=1 << 18)
def _date_ord(text: str) -> int:
    d = _date(text)
    return d.toordinal() if d is not None else -1


@lru_cache(maxsize=256)
def _interval(text: str) -> int:
    v = _vaccine(text)
    return v.min_interval_days if v is not None else 0


def _viet_letter(ch: str) -> bool:
    nfd = unicodedata.normalize("NFD", ch)
    base, marks = nfd[0], nfd[1:]
    return base.isascii() and base.isalpha() and all(m in "\u0300\u0301\u0302\u0303\u0306"
                                                     "\u0309\u031b\u0323" for m in marks)


_WRITABLE: Final = frozenset(
    " Đđ" + "".join(chr(i) for i in range(0x41, 0x7B) if chr(i).isalpha())
    + "".join(chr(i) for i in range(0xC0, 0x1EFA) if _viet_letter(chr(i))))


def _unwritable_slow(name: str) -> str | None:
    try:
        PersonName.from_full_name(name)
    except VaxqrError as exc:
        return str(exc)
    return None


@lru_cache(maxsize=1 << 18)
def _unwritable(name: str) -> str | None:
    """Why a register name cannot go into a credential (``vaxqr issue`` would refuse it)."""
    if len(name) <= 80 and _WRITABLE.issuperset(name):
        return None
    return _unwritable_slow(name)


def _id_problem(idn: str) -> str | None:
    if len(idn) == 12 and idn.isascii() and idn.isdigit() and idn[:3] in _PROVINCE_CODES:
        return None
    try:
        parse_id_number(idn)
    except ValidationError as exc:
        return str(exc)
    return None  # pragma: no cover - the fast path accepts everything parse_id_number does


@lru_cache(maxsize=1 << 12)
def _id_digits_problem(digits: str, year: int, sex: str) -> tuple[str, str] | None:
    """(class, reason) when a register entry's birth year or sex disagrees with digits 4-6
    of its own ID number (century and sex, year)."""
    d4, yy = ord(digits[0]) - 48, int(digits[1:])
    start = 1900 + 100 * (d4 >> 1)
    if not start <= year < start + 100 or year % 100 != yy:
        return "dob_differs", (f"the ID number's digits 4-6 say born in {start + yy}, the "
                               f"register says {year}")
    if ("F" if d4 & 1 else "M") != sex:
        return "sex_differs", (f"the ID number's digit 4 says "
                               f"{_SEX_WORD['F' if d4 & 1 else 'M']}, the register says "
                               f"{_SEX_WORD[sex]}")
    return None


# --------------------------------------------------------------------------- the pure function


@lru_cache(maxsize=1 << 16)
def _name_verdict(record: str, register: str) -> tuple[str, str] | None:
    """(class, reason) for two NFC, space-collapsed names, or None when they agree."""
    if not record:
        return "name_differs", "the name is empty"
    if record.casefold() == register.casefold():
        return None
    ka, kb = _key(record), _key(register)
    if ka == kb:
        return "name_tone_style", "only the old/new tone placement differs"
    wa, wb = ka.split(" "), kb.split(" ")
    if len(wa) == len(wb) and all(x == y or x == strip_diacritics(y)
                                  for x, y in zip(wa, wb, strict=True)):
        return "name_no_diacritics", "the record lacks the register's diacritics"
    if sorted(wa) == sorted(wb):
        return "name_order", "the same words in another order"
    return "name_differs", "the name is not the register's"


_NO_CONTEXT: Final = DoseContext()
_new_match: Final = tuple.__new__  # Match(...) without the keyword-argument machinery


def classify(record: VaccRecord, person: Person | None, *, today: date,
             context: DoseContext = _NO_CONTEXT) -> Match:
    """Classify one vaccination record against its register entry (``None``: the ID is not
    in the register). ``today`` bounds the vaccination date; ``context`` says whether an
    earlier row has the same ID and dose number and where the previous dose is
    (:func:`dose_context`). Pure: no I/O, no state beyond caches; see the module docstring
    for the exact meaning of each class.

    A ``name_tone_style`` record is clean (``Match.clean`` set, the register's spelling)
    only when every later check passes; when another field is wrong too it keeps the class
    (it comes first) with that problem in ``reason``/``fix`` and is not clean.
    """
    idn = record.id_number.strip()
    if not (len(idn) == 12 and idn.isdigit() and idn.isascii()
            and idn[:3] in _PROVINCE_CODES):
        return Match("id_invalid", _id_problem(idn) or "",
                     "copy the 12-digit number from the CCCD card")
    if person is None:
        return Match("id_not_found", "the ID number is not in the population register",
                     "check the number against the CCCD card, or the register")
    if context.duplicate_of is not None:
        return Match("duplicate_dose",
                     f"dose {record.dose_number.strip()} of this ID is already at row "
                     f"{context.duplicate_of}",
                     "delete this row, or correct its dose number")
    reg_name = _norm_cached(person.full_name)
    tone_style = False
    if record.full_name != reg_name:
        verdict = _name_verdict(_norm(record.full_name), reg_name)
        if verdict is not None:
            if verdict[0] != "name_tone_style":
                return Match(verdict[0], verdict[1], f"use the register's name: {reg_name}")
            tone_style = True
    bad = _unwritable(reg_name)
    if bad is not None:
        return Match("name_differs", f"the register's name cannot go into a credential: {bad}",
                     "correct the register entry")
    rest = _check_rest(record, person, reg_name, idn, today, context)
    if not tone_style:
        return rest
    why = "only the old/new tone placement differs"
    if rest.clean is None:
        return Match("name_tone_style", f"{why}; also {rest.cls}: {rest.reason}",
                     f"{rest.fix}; the register's spelling of the name is {reg_name}")
    return Match("name_tone_style", why,
                 f"auto-fixed: the register's spelling {reg_name} is used", rest.clean)


def _check_rest(record: VaccRecord, person: Person, reg_name: str, idn: str, today: date,
                context: DoseContext) -> Match:
    """DOB, sex, the ID's digits against the register, and the dose data."""
    dob = _date(record.dob)
    if dob != person.dob:
        rd = person.dob
        fix = f"use the register's date of birth: {rd.isoformat()}"
        if rd.day != rd.month and _loose_ymd(record.dob) == (rd.year, rd.day, rd.month):
            return Match("dob_swapped", "day and month are swapped", fix)
        why = "the date of birth is unreadable" if dob is None else \
            "the date of birth is not the register's"
        return Match("dob_differs", why, fix)
    sex = _sex(record.sex)
    if sex != person.sex:
        why = "the sex is unreadable" if sex is None else "the sex is not the register's"
        return Match("sex_differs", why, f"use the register's sex: {_SEX_WORD[person.sex]}")
    digits = _id_digits_problem(idn[3:6], person.dob.year, person.sex)
    if digits is not None:
        return Match(digits[0], digits[1], "verify the ID number and the register entry "
                                           "with the commune police")
    why, dose, dose_s, total_s, vaccine, vdate, vdate_s, _ord = _dose_fields(
        record.dose_number, record.total_doses, record.vaccine, record.vaccination_date)
    if vdate is not None:
        if vdate > today:
            why = f"the vaccination date {vdate_s} is in the future"
        elif vdate < person.dob:
            why = f"the vaccination date {vdate_s} is before the date of birth"
        elif context.previous is not None:
            prev = context.previous
            gap = (vdate - prev.date).days
            if gap < 0:
                why = (f"dose {dose} on {vdate_s} is before dose {dose - 1} on {prev.date} "
                       f"(row {prev.row})")
            elif gap < prev.min_interval_days:
                why = (f"dose {dose} on {vdate_s} is {gap} days after dose {dose - 1} (row "
                       f"{prev.row}); the minimum interval is {prev.min_interval_days} days")
        if not why:
            lot, site = record.lot, record.site
            return _new_match(Match, ("matched", "", "", (
                reg_name, _SEX_WORD[person.sex], _iso(person.dob), idn, dose_s, total_s, vdate_s,
                vaccine, " ".join(lot.split()) if lot.isascii() else _norm(lot),
                " ".join(site.split()) if site.isascii() else _norm(site))))
    return Match("dose_sequence", why, "check the dose number and the vaccination dates of "
                                       "this person's doses")


@lru_cache(maxsize=1 << 16)
def _iso(d: date) -> str:
    return d.isoformat()


_DoseFields = tuple[str, int, str, str, str, date | None, str, int]


@lru_cache(maxsize=1 << 18)
def _dose_fields(dose_text: str, total_text: str, vaccine_text: str, date_text: str
                 ) -> _DoseFields:
    """(why, dose, dose text, total text, vaccine key, date, ISO date, date ordinal) of the
    dose fields; ``why`` is empty when they are usable, else the reason (and the date
    ordinal is -1). The checks against the person's DOB and ``today`` are not here."""
    dose, total = _small_int(dose_text), _small_int(total_text)
    vaccine = _vaccine(vaccine_text)
    vdate = _date(date_text)
    why = ""
    if dose is None or total is None or not 1 <= dose <= total:
        why = (f"dose {dose_text.strip()!r} of {total_text.strip()!r} is not a dose number "
               "from 1 to the total")
    elif vaccine is None:
        why = f"unknown vaccine {vaccine_text.strip()!r}"
    elif vdate is None:
        why = f"the vaccination date {date_text.strip()!r} is unreadable"
    elif vdate < EARLIEST_VACCINATION:
        why = f"the vaccination date {vdate} is before COVID-19 vaccines (2020-12-01)"
    if why or dose is None or total is None or vaccine is None or vdate is None:
        return why, 0, "", "", "", None, "", -1
    return "", dose, str(dose), str(total), vaccine.key, vdate, vdate.isoformat(), \
        vdate.toordinal()


@lru_cache(maxsize=1 << 16)
def _iso_ord(ordinal: int) -> str:
    return date.fromordinal(ordinal).isoformat()


@lru_cache(maxsize=64)
def _sex_code(text: str) -> int:
    """1 female, 0 male, -1 unreadable (as the register's ``female`` column)."""
    sex = _sex(text)
    return -1 if sex is None else int(sex == "F")


# --------------------------------------------------------------------------- CSV reading


def _open(path: Path) -> IO[bytes]:
    try:
        return path.open("rb")
    except OSError as exc:
        raise StorageError(f"cannot read {path}: {exc.strerror}") from exc


def _header(path: Path, fh: IO[bytes], required: Sequence[str],
            wanted: Sequence[str]) -> tuple[list[int], int]:
    """Column positions of ``wanted`` (-1 if absent) and the offset of the first data row."""
    raw = fh.readline()
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationError(f"{path} is not UTF-8 (in the header)") from None
    names = [h.strip().lower() for h in next(csv.reader([text]), [])]
    missing = [c for c in required if c not in names]
    if missing:
        raise ValidationError(f"{path}: the CSV header lacks {', '.join(missing)}",
                              hint="expected header: " + ",".join(wanted))
    return [names.index(c) if c in names else -1 for c in wanted], fh.tell()


def _blocks(fh: IO[bytes], start: int, lines: int) -> Iterator[tuple[int, bytes]]:
    """Consecutive (offset, bytes) blocks of about ``lines`` lines from ``start``, each
    ending on a record boundary (an even number of quote characters: a quoted field with a
    line break inside stays in one block)."""
    fh.seek(start)
    pos = start
    while True:
        data = b"".join(islice(fh, lines))
        if not data:
            return
        if data.count(b'"') % 2:
            parts = [data]
            while True:
                more = fh.readline()
                parts.append(more)
                if not more or more.count(b'"') % 2:
                    break
            data = b"".join(parts)
        yield pos, data
        pos += len(data)


def _iter_rows(path: Path, offset: int, data: bytes) -> Iterator[list[str]]:
    """The non-blank CSV rows of one block (blank lines are skipped, as csv.DictReader and
    so ``vaxqr issue`` skip them)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationError(
            f"{path} is not UTF-8 (byte {offset + exc.start})",
            hint="save the export as CSV UTF-8 (Excel: 'CSV UTF-8'), then run again",
        ) from None
    try:
        yield from filter(None, csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise ValidationError(f"{path}: malformed CSV near byte {offset} ({exc})") from None


def _rows(path: Path, offset: int, data: bytes, width: int) -> list[list[str]]:
    """The rows of one block, padded to at least ``width`` fields."""
    rows = list(_iter_rows(path, offset, data))
    if rows and min(map(len, rows)) < width:
        rows = [r if len(r) >= width else r + [""] * (width - len(r)) for r in rows]
    return rows


def _getter(cols: Sequence[int]) -> tuple[Callable[[list[str]], tuple[str, ...]], int]:
    """A row picker for ``cols`` (C speed when every column is present; -1, a missing
    optional column, reads as empty) and the width rows are padded to."""
    if min(cols) >= 0:
        return itemgetter(*cols), max(cols) + 1

    def get(row: list[str]) -> tuple[str, ...]:
        return tuple([row[c] if c >= 0 else "" for c in cols])

    return get, max(cols) + 1


def _valid_ids(col: Iterable[str]) -> list[int]:
    codes = _PROVINCE_CODES
    return [int(x) if len(x) == 12 and x.isascii() and x.isdigit() and x[:3] in codes else -1
            for x in map(str.strip, col)]


# --------------------------------------------------------------------------- the register

I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]


@dataclass(frozen=True, slots=True, eq=False)
class Register:
    """The population register, indexed: IDs as a sorted int64 array with columnar
    attributes (≈ 20 bytes a person plus the distinct names), looked up by binary search."""

    ids: I64
    name_idx: I32
    names: list[str]
    female: npt.NDArray[np.bool_]
    dob: I32  # proleptic ordinals
    commune_idx: npt.NDArray[np.int16]
    communes: list[str]
    writable: npt.NDArray[np.bool_]  # per name: it can go into a credential
    consistent: npt.NDArray[np.bool_]  # per person: DOB and sex agree with the ID's digits
    rows: int = 0
    invalid: int = 0
    duplicates: int = 0
    problems: tuple[tuple[int, str], ...] = ()

    @classmethod
    def from_csv(cls, path: Path, *, today: date) -> Register:
        """Read a population export (:data:`POPULATION_COLUMNS`, UTF-8 with or without
        BOM). Unusable rows (bad ID, empty name, unknown sex, impossible or future DOB, no
        commune) are skipped and counted; of a duplicated ID the first row is kept."""
        names: dict[str, int] = {}
        communes: dict[str, int] = {}
        problems: list[tuple[int, str]] = []
        parts: list[tuple[I64, I32, npt.NDArray[np.bool_], I32, npt.NDArray[np.int16]]] = []
        today_ord = today.toordinal()
        n = invalid = 0
        with _open(path) as fh:
            cols, start = _header(path, fh, POPULATION_COLUMNS, POPULATION_COLUMNS)
            get, width = _getter(cols)
            for offset, data in _blocks(fh, start, BLOCK):
                rows = _rows(path, offset, data, width)
                if not rows:
                    continue
                m = len(rows)
                c_id, c_name, c_sex, c_dob, c_com = zip(*map(get, rows), strict=True)
                ids = np.array(_valid_ids(c_id), dtype=np.int64)
                nm = list(map(_norm_cached, c_name))
                sex = np.fromiter(map(_sex_code, c_sex), dtype=np.int8, count=m)
                dob = np.fromiter(map(_date_ord, c_dob), dtype=np.int32, count=m)
                com = list(map(str.strip, c_com))
                ok = (ids >= 0) & (dob >= _ORD_1900) & (dob <= today_ord) & (sex >= 0)
                ok &= np.fromiter(map(bool, nm), dtype=bool, count=m)
                ok &= np.fromiter(map(bool, com), dtype=bool, count=m)
                if not ok.all():
                    for k in np.flatnonzero(~ok).tolist():
                        invalid += 1
                        if len(problems) < 20:
                            problems.append((n + k + 1, _register_problem(
                                c_id[k], nm[k], c_sex[k], c_dob[k], com[k], today)))
                    keep = ok.tolist()
                    nm = [x for x, k in zip(nm, keep, strict=True) if k]
                    com = [x for x, k in zip(com, keep, strict=True) if k]
                    ids, sex, dob = ids[ok], sex[ok], dob[ok]
                nidx = [names.setdefault(x, len(names)) for x in nm]
                cidx = [communes.setdefault(x, len(communes)) for x in com]
                parts.append((ids, np.array(nidx, dtype=np.int32), sex == 1, dob,
                              np.array(cidx, dtype=np.int16)))
                n += m
        if len(communes) > 32767:
            raise ValidationError(f"{path}: more than 32,767 commune codes")
        cat = [np.concatenate([p[i] for p in parts]) if parts else np.zeros(0, dtype=t)
               for i, t in enumerate((np.int64, np.int32, bool, np.int32, np.int16))]
        order = np.argsort(cat[0], kind="stable")
        sorted_ids = cat[0][order]
        keep = np.ones(len(order), dtype=bool)
        keep[1:] = sorted_ids[1:] != sorted_ids[:-1]
        order = order[keep]
        ids, female, dob = sorted_ids[keep], cat[2][order], cat[3][order]
        d4, yy = (ids // 10**8) % 10, (ids // 10**6) % 100
        year = (dob - _ORD_1970).astype("datetime64[D]").astype("datetime64[Y]").astype(
            np.int64) + 1970
        start = 1900 + 100 * (d4 // 2)
        consistent = (year >= start) & (year < start + 100) & (year % 100 == yy) \
            & ((d4 % 2 == 1) == female)
        return cls(ids=ids, name_idx=cat[1][order], names=list(names), female=female, dob=dob,
                   commune_idx=cat[4][order], communes=list(communes),
                   writable=np.array([_unwritable(x) is None for x in names], dtype=bool),
                   consistent=consistent, rows=n, invalid=invalid,
                   duplicates=int((~keep).sum()), problems=tuple(problems))

    def __len__(self) -> int:
        return len(self.ids)

    def find(self, ids: I64) -> I32:
        """Positions of ``ids`` in the register, -1 where absent (or negative)."""
        if not len(self.ids):
            return np.full(len(ids), -1, dtype=np.int32)
        pos = np.minimum(np.searchsorted(self.ids, ids), len(self.ids) - 1)
        return np.where((self.ids[pos] == ids) & (ids >= 0), pos, -1).astype(np.int32)

    def person(self, i: int) -> Person:
        return Person(f"{int(self.ids[i]):012d}", self.names[int(self.name_idx[i])],
                      "F" if self.female[i] else "M", date.fromordinal(int(self.dob[i])),
                      self.communes[int(self.commune_idx[i])])

    def suggest_id(self, record: VaccRecord) -> str | None:
        """For an ID number not in the register: a register ID one typo away (one digit
        changed, or two neighbours swapped) whose entry has the record's name (any tone
        style, diacritics or order) and date of birth, if there is exactly one."""
        idn = record.id_number.strip()
        dob = _date(record.dob)
        if len(idn) != 12 or not idn.isdigit() or not idn.isascii() or dob is None:
            return None
        cands = {idn[:i] + c + idn[i + 1:] for i in range(12) for c in "0123456789"}
        cands |= {idn[:i] + idn[i + 1] + idn[i] + idn[i + 2:] for i in range(11)}
        cands.discard(idn)
        found = self.find(np.array(sorted(int(c) for c in cands), dtype=np.int64))
        words = sorted(strip_diacritics(_key(_norm(record.full_name))).split())
        hits = [p for i in found.tolist() if i >= 0 and (p := self.person(i)).dob == dob
                and sorted(strip_diacritics(_key(p.full_name)).split()) == words]
        return hits[0].id_number if len(hits) == 1 else None

    def lookup(self, id_number: str) -> Person | None:
        """The register entry of one ID number, or None."""
        ids = np.array(_valid_ids([id_number]), dtype=np.int64)
        i = int(self.find(ids)[0])
        return self.person(i) if i >= 0 else None


_ORD_1900: Final = date(1900, 1, 1).toordinal()
_ORD_1970: Final = date(1970, 1, 1).toordinal()


def _register_problem(idn: str, name: str, sex: str, dob: str, commune: str,
                      today: date) -> str:
    why = _id_problem(idn.strip())
    if why is not None:
        return why
    if not name:
        return "the name is empty"
    if _sex(sex) is None:
        return f"unknown sex {sex!r}"
    if not commune:
        return "the commune code is empty"
    return f"unusable date of birth {dob!r} (before 1900, after {today}, or not a date)"


# --------------------------------------------------------------------------- pass 1


@dataclass(frozen=True, slots=True, eq=False)
class _Scan:
    """Pass 1 over the vaccination file: per row (0-based) what the dose checks need, and
    the blocks (first row, offset, bytes) pass 2 re-reads in parallel."""

    cols: list[int]
    chunks: list[tuple[int, int, int, int]]  # first row, rows, offset, size
    ids: I64
    dose: npt.NDArray[np.int16]
    vdate: I32
    interval: npt.NDArray[np.int16]


def _dose_code(text: str) -> int:
    d = _small_int(text)
    return d if d is not None else -1


def _scan(path: Path) -> _Scan:
    parts: list[list[npt.NDArray[Any]]] = []
    chunks: list[tuple[int, int, int, int]] = []
    n = 0
    with _open(path) as fh:
        cols, start = _header(path, fh, REQUIRED, COLUMNS)
        get, width = _getter([cols[3], cols[4], cols[6], cols[7]])
        chunk_row, chunk_pos = 0, start
        for offset, data in _blocks(fh, start, BLOCK):
            rows = _rows(path, offset, data, width)
            if rows:
                c_id, c_dose, c_date, c_vac = zip(*map(get, rows), strict=True)
                parts.append([np.array(_valid_ids(c_id), dtype=np.int64),
                              np.array(list(map(_dose_code, c_dose)), dtype=np.int16),
                              np.array(list(map(_date_ord, c_date)), dtype=np.int32),
                              np.array(list(map(_interval, c_vac)), dtype=np.int16)])
                n += len(rows)
            end = offset + len(data)
            if n - chunk_row >= CHUNK:
                chunks.append((chunk_row, n - chunk_row, chunk_pos, end - chunk_pos))
                chunk_row, chunk_pos = n, end
        if n > chunk_row:
            chunks.append((chunk_row, n - chunk_row, chunk_pos, end - chunk_pos))
    cat = [np.concatenate([p[i] for p in parts]) if parts else np.zeros(0, dtype=t)
           for i, t in enumerate((np.int64, np.int16, np.int32, np.int16))]
    return _Scan(cols, chunks, *cat)


@dataclass(frozen=True, slots=True, eq=False)
class _Context:
    """Per row (0-based): 1-based row of the earlier same-dose record (0: none), and the
    previous dose's row (0: none), date ordinal and minimum interval; register position."""

    dup_of: I32
    prev_row: I32
    prev_date: I32
    prev_interval: npt.NDArray[np.int16]
    reg_pos: I32


def _contexts(scan: _Scan) -> _Context:
    """Duplicates and previous doses (everything but ``reg_pos``, left empty)."""
    n = len(scan.ids)
    dup_of = np.zeros(n, dtype=np.int32)
    prev_row = np.zeros(n, dtype=np.int32)
    prev_date = np.full(n, -1, dtype=np.int32)
    prev_interval = np.zeros(n, dtype=np.int16)
    rows = np.flatnonzero((scan.ids >= 0) & (scan.dose >= 1)).astype(np.int32)
    if len(rows):
        key = scan.ids[rows] * 1024 + scan.dose[rows]
        order = np.argsort(key, kind="stable")  # by (ID, dose), then row
        key = key[order]
        rows = rows[order]
        del order
        first = np.ones(len(key), dtype=bool)
        first[1:] = key[1:] != key[:-1]
        frow, fkey = rows[first], key[first]  # the first record of each (ID, dose)
        group = np.cumsum(first, dtype=np.int32) - 1
        dup = ~first
        dup_of[rows[dup]] = frow[group[dup]] + 1
        del key, rows, first, group, dup
        pos = np.minimum(np.searchsorted(fkey, fkey - 1), len(fkey) - 1)
        hit = (fkey[pos] == fkey - 1) & (scan.dose[frow] >= 2) & (scan.vdate[frow[pos]] >= 0)
        tgt, src = frow[hit], frow[pos[hit]]
        prev_row[tgt] = src + 1
        prev_date[tgt] = scan.vdate[src]
        prev_interval[tgt] = scan.interval[src]
    return _Context(dup_of, prev_row, prev_date, prev_interval, np.zeros(0, dtype=np.int32))


# --------------------------------------------------------------------------- pass 2


def _safe_cell(value: str) -> str:
    """Keep spreadsheet programs from running a cell as a formula (mismatches.csv is read
    by people, in Excel)."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


class _ChunkOut(NamedTuple):
    clean: int
    matched: bytes
    mismatches: bytes
    counts: dict[str, int]
    cov_pos: I32
    cov_dose: npt.NDArray[np.int16]


_JOB: dict[str, Any] = {}
FAST_PATH = True  # the vectorised pre-check below; False sends every row through classify()


def _classify_chunk(chunk: tuple[int, int, int, int]) -> _ChunkOut:
    """Classify one chunk of rows (pass 2), block by block as pass 1 parsed them."""
    first, _rows_in_chunk, offset, size = chunk
    path: Path = _JOB["path"]
    with _open(path) as fh:
        fh.seek(offset)
        data = fh.read(size)
    out = _Out()
    k = first
    for at, block in _blocks(io.BytesIO(data), 0, BLOCK):
        rows = _rows(path, offset + at, block, _JOB["width"])
        if rows:
            _classify_block(rows, k, out)
            k += len(rows)
    return _ChunkOut(out.clean, out.good.getvalue().encode("utf-8"),
                     out.bad.getvalue().encode("utf-8"), out.counts,
                     np.concatenate(out.cov_pos) if out.cov_pos else np.zeros(0, np.int32),
                     np.concatenate(out.cov_dose) if out.cov_dose else np.zeros(0, np.int16))


class _Out:
    """What a chunk accumulates: CSV text, counts, (register position, dose) of clean
    rows dated on or before the report date."""

    def __init__(self) -> None:
        self.good, self.bad = io.StringIO(), io.StringIO()
        self.good_rows = csv.writer(self.good, lineterminator="\n").writerows
        self.bad_row = csv.writer(self.bad, lineterminator="\n").writerow
        self.counts = dict.fromkeys(CLASSES, 0)
        self.clean = 0
        self.cov_pos: list[I32] = []
        self.cov_dose: list[npt.NDArray[np.int16]] = []


def _classify_block(rows: list[list[str]], n0: int, out: _Out) -> None:
    """Rows ``n0 …`` (0-based). A vectorised pre-check finds the rows where every field is
    exactly the register's and the dose data is in order: those are ``matched`` (it is
    exactly the path through :func:`classify` that returns ``matched`` without a name
    verdict). Every other row goes through :func:`classify` itself."""
    ctx: _Context = _JOB["ctx"]
    reg: Register = _JOB["register"]
    today: date = _JOB["today"]
    m = len(rows)
    sl = slice(n0, n0 + m)
    c_name, c_sex, c_dob, c_id, c_dose, c_total, c_date, c_vac, c_lot, c_site = zip(
        *map(_JOB["get"], rows), strict=True)
    pos = ctx.reg_pos[sl]
    fpos = np.maximum(pos, 0) if len(reg) else np.zeros(0, dtype=np.int32)
    names = reg.names
    ni = reg.name_idx[fpos].tolist() if len(reg) else [0] * m
    reg_names = [names[i] for i in ni] if len(reg) else [""] * m
    reg_dob = reg.dob[fpos] if len(reg) else np.zeros(m, dtype=np.int32)
    _why, dose, dose_s, total_s, vkey, _vd, vdate_s, vord_t = zip(
        *map(_dose_fields, c_dose, c_total, c_vac, c_date), strict=True)
    vord = np.array(vord_t, dtype=np.int32)
    fast = np.zeros(m, dtype=bool)
    if FAST_PATH and len(reg):
        fast = (pos >= 0) & (ctx.dup_of[sl] == 0) & reg.writable[reg.name_idx[fpos]]
        fast &= reg.consistent[fpos] & (vord >= 0) & (vord <= today.toordinal())
        fast &= vord >= reg_dob
        fast &= (ctx.prev_row[sl] == 0) | (vord - ctx.prev_date[sl] >= np.maximum(
            ctx.prev_interval[sl], 0))
        fast &= np.fromiter(map(_date_ord, c_dob), dtype=np.int32, count=m) == reg_dob
        fast &= np.fromiter(map(_sex_code, c_sex), dtype=np.int8, count=m) == reg.female[fpos]
        fast &= np.fromiter(map(str.__eq__, c_name, reg_names), dtype=bool, count=m)
    n_fast = int(fast.sum())
    slots: list[tuple[Any, ...] | None] = [None] * m  # the matched.csv line of each row
    reg_female = reg.female[fpos].tolist() if len(reg) else [False] * m
    reg_dob_l = reg_dob.tolist()
    if n_fast:
        sexw = ("Nam", "Nữ")
        slots = list(zip(
            reg_names, [sexw[f] for f in reg_female],
            list(map(_iso_ord, reg_dob_l)), list(map(str.strip, c_id)), dose_s,
            total_s, vdate_s, vkey, list(map(_norm, c_lot)), list(map(_norm, c_site)),
            range(n0 + 1, n0 + m + 1), strict=True))
        report = fast & (vord <= _JOB["report_date"].toordinal())
        out.cov_pos.append(pos[report])
        out.cov_dose.append(np.array(dose, dtype=np.int16)[report])
        out.counts["matched"] += n_fast
        out.clean += n_fast
    if n_fast == m:
        out.good_rows(filter(None, slots))
        return
    report_iso: str = _JOB["report_iso"]
    fromord = date.fromordinal
    new = tuple.__new__
    communes = reg.communes
    reg_commune = reg.commune_idx[fpos].tolist() if len(reg) else [0] * m
    pos_l = pos.tolist()
    dup_l, prow_l = ctx.dup_of[sl].tolist(), ctx.prev_row[sl].tolist()
    pdate_l, piv_l = ctx.prev_date[sl].tolist(), ctx.prev_interval[sl].tolist()
    cov_pos: list[int] = []
    cov_dose: list[int] = []
    for j in np.flatnonzero(~fast).tolist():
        slots[j] = None
        n = n0 + j
        rec: VaccRecord = new(VaccRecord, (c_name[j], c_sex[j], c_dob[j], c_id[j], c_dose[j],
                                           c_total[j], c_date[j], c_vac[j], c_lot[j],
                                           c_site[j]))
        p = pos_l[j]
        person = None
        if p >= 0:
            person = new(Person, (c_id[j].strip(), reg_names[j], "F" if reg_female[j] else "M",
                                  fromord(reg_dob_l[j]), communes[reg_commune[j]]))
        context = _NO_CONTEXT
        dup, prow = dup_l[j], prow_l[j]
        if dup or prow:
            context = DoseContext(dup or None, PreviousDose(
                prow, fromord(pdate_l[j]), piv_l[j]) if prow else None)
        res = classify(rec, person, today=_JOB["today"], context=context)
        if p < 0 and res.cls == "id_not_found":
            near = reg.suggest_id(rec)
            if near is not None:
                res = res._replace(fix=f"typo? the register has {near} for this name and "
                                       "date of birth: check the CCCD card")
        out.counts[res.cls] += 1
        if res.clean is not None:
            out.clean += 1
            slots[j] = (*res.clean, n + 1)
            if res.clean[6] <= report_iso:
                cov_pos.append(p)
                cov_dose.append(int(res.clean[4]))
            if res.cls == "matched":
                continue
        out.bad_row((n + 1, res.cls, *[_safe_cell(v) for v in (
            rec.id_number, rec.full_name, person.full_name if person else "", rec.sex,
            _SEX_WORD[person.sex] if person else "", rec.dob,
            person.dob.isoformat() if person else "", rec.dose_number, rec.total_doses,
            rec.vaccination_date, rec.vaccine, person.commune_code if person else "",
            res.reason, res.fix)]))
    out.good_rows(filter(None, slots))
    if cov_pos:
        out.cov_pos.append(np.array(cov_pos, dtype=np.int32))
        out.cov_dose.append(np.array(cov_dose, dtype=np.int16))


# --------------------------------------------------------------------------- the report


@dataclass(frozen=True, slots=True, kw_only=True)
class Coverage:
    """Coverage of one commune (or ``"total"``) at the report date: register adults (18+),
    and people with at least one / at least two doses in the clean set (dated on or before
    the report date), among adults and among all ages."""

    commune_code: str
    people: int
    adults: int
    dose1: int
    dose2: int
    dose1_all_ages: int
    dose2_all_ages: int

    def rate(self, dose: int) -> float | None:
        if not self.adults:
            return None
        return (self.dose1 if dose == 1 else self.dose2) / self.adults

    def figure(self, dose: int) -> str:
        """The plan's style: ``"1,163,941 = 97.31%"``."""
        n = self.dose1 if dose == 1 else self.dose2
        r = self.rate(dose)
        return f"{n:,} = {r * 100:.2f}%" if r is not None else f"{n:,} = n/a"

    def to_json(self) -> dict[str, Any]:
        return {"commune_code": self.commune_code, "people": self.people,
                "adults": self.adults, "dose1": self.dose1, "dose2": self.dose2,
                "dose1_rate": self.rate(1), "dose2_rate": self.rate(2),
                "dose1_figure": self.figure(1), "dose2_figure": self.figure(2),
                "dose1_all_ages": self.dose1_all_ages, "dose2_all_ages": self.dose2_all_ages}


@dataclass(frozen=True, slots=True, kw_only=True)
class ReconcileResult:
    """What :func:`reconcile_files` did: class counts, coverage, register statistics."""

    rows: int
    counts: dict[str, int]
    matched_rows: int  # rows written to matched.csv
    coverage: tuple[Coverage, ...]
    total: Coverage
    report_date: date
    register_rows: int
    register_people: int
    register_invalid: int
    register_duplicates: int
    register_problems: tuple[tuple[int, str], ...] = ()
    seconds: float = 0.0
    out_dir: Path = field(default=Path("."))

    def to_json(self) -> dict[str, Any]:
        return {
            "version": 1, "report_date": self.report_date.isoformat(), "rows": self.rows,
            "matched_rows": self.matched_rows, "counts": dict(self.counts),
            "register": {"rows": self.register_rows, "people": self.register_people,
                         "invalid": self.register_invalid,
                         "duplicate_ids": self.register_duplicates,
                         "problems": [{"row": r, "reason": w}
                                      for r, w in self.register_problems]},
            "coverage": {"total": self.total.to_json(),
                         "communes": [c.to_json() for c in self.coverage]},
            "files": {k: str(self.out_dir / k) for k in ("matched.csv", "mismatches.csv",
                                                         "report.json")},
            "seconds": round(self.seconds, 3),
        }


def _adult_cutoff(report_date: date) -> int:
    """Ordinal of the latest birth date that is 18 or older on ``report_date``."""
    y, m, d = report_date.year - 18, report_date.month, report_date.day
    if (m, d) == (2, 29) and not (y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)):
        d = 28
    return date(y, m, d).toordinal()


def _coverage(reg: Register, max_dose: npt.NDArray[np.int16],
              report_date: date) -> tuple[tuple[Coverage, ...], Coverage]:
    adult = reg.dob <= _adult_cutoff(report_date)
    n = len(reg.communes)

    def count(mask: npt.NDArray[np.bool_]) -> list[int]:
        return [int(x) for x in np.bincount(reg.commune_idx[mask], minlength=n)]

    people = count(np.ones(len(reg), dtype=bool))
    cols = [people, count(adult), count(adult & (max_dose >= 1)),
            count(adult & (max_dose >= 2)), count(max_dose >= 1), count(max_dose >= 2)]
    rows = [Coverage(commune_code=reg.communes[i], people=cols[0][i], adults=cols[1][i],
                     dose1=cols[2][i], dose2=cols[3][i], dose1_all_ages=cols[4][i],
                     dose2_all_ages=cols[5][i]) for i in range(n)]
    rows.sort(key=lambda c: c.commune_code)
    total = Coverage(commune_code="total", people=sum(cols[0]), adults=sum(cols[1]),
                     dose1=sum(cols[2]), dose2=sum(cols[3]), dose1_all_ages=sum(cols[4]),
                     dose2_all_ages=sum(cols[5]))
    return tuple(rows), total


# --------------------------------------------------------------------------- the driver

OUTPUTS: Final = ("matched.csv", "mismatches.csv", "report.json")


def _scan_job(path: Path) -> tuple[_Scan, _Context]:
    """Pass 1 and the dose checks' context: needs no register, so it runs beside it."""
    scan = _scan(path)
    return scan, _contexts(scan)


def reconcile_files(
    vaccinations: Path,
    population: Path,
    out_dir: Path,
    *,
    report_date: date | None = None,
    today: date | None = None,
    workers: int | None = None,
    overwrite: bool = False,
    progress: Callable[[str], None] | None = None,
) -> ReconcileResult:
    """Match a vaccination export against a population export; write ``matched.csv``
    (:data:`MATCHED_COLUMNS`: the ``vaxqr issue`` columns with the register's identity,
    NFC, plus ``source_row``), ``mismatches.csv`` (:data:`MISMATCH_COLUMNS`, every row
    whose class is not ``matched``) and ``report.json`` into ``out_dir``.

    ``report_date`` (default ``today``) is the date the coverage is computed at;
    ``today`` (default: the real date) bounds vaccination dates. ``workers`` processes
    classify chunks of 50,000 rows (default: one per core; 1 runs everything in-process).
    Existing outputs are an error unless ``overwrite``.
    """
    gc_enabled = gc.isenabled()
    gc.disable()  # millions of short-lived rows and no cycles: collections only cost time
    try:
        return _reconcile(vaccinations, population, out_dir, report_date=report_date,
                          today=today, workers=workers, overwrite=overwrite,
                          progress=progress)
    finally:
        if gc_enabled:
            gc.enable()


def _reconcile(vaccinations: Path, population: Path, out_dir: Path, *,
               report_date: date | None, today: date | None, workers: int | None,
               overwrite: bool, progress: Callable[[str], None] | None) -> ReconcileResult:
    started = time.perf_counter()
    today = today or date.today()
    report_date = report_date or today
    out = ensure_dir(out_dir)
    if not overwrite:
        for name in OUTPUTS:
            if (out / name).exists():
                raise StorageError(f"{out / name} already exists",
                                   hint="use --force to overwrite it")
    for p in (vaccinations, population):
        if not p.is_file():
            raise StorageError(f"cannot read {p}: no such file")
    n_workers = workers if workers is not None else (os.cpu_count() or 1)
    parallel = n_workers > 1 and "fork" in multiprocessing.get_all_start_methods() \
        and vaccinations.stat().st_size >= PARALLEL_MIN_BYTES
    say = progress or (lambda _msg: None)
    say("register index + record scan")
    if parallel:
        ctx_mp = multiprocessing.get_context("fork")
        with ctx_mp.Pool(1) as pool:
            pending = pool.apply_async(_scan_job, (vaccinations,))
            register = Register.from_csv(population, today=today)
            scan, contexts = pending.get()
    else:
        register = Register.from_csv(population, today=today)
        scan, contexts = _scan_job(vaccinations)
    contexts = replace(contexts, reg_pos=register.find(scan.ids))
    get, width = _getter(scan.cols)
    _JOB.update(path=vaccinations, scan=scan, ctx=contexts, register=register, today=today,
                report_date=report_date, report_iso=report_date.isoformat(), get=get,
                width=width)
    counts = dict.fromkeys(CLASSES, 0)
    clean = 0
    max_dose = np.zeros(len(register), dtype=np.int16)
    say("classify + write")
    try:
        with atomic_open(out / "matched.csv", overwrite=overwrite) as good, \
                atomic_open(out / "mismatches.csv", overwrite=overwrite) as bad:
            good.write((",".join(MATCHED_COLUMNS) + "\n").encode())
            bad.write((",".join(MISMATCH_COLUMNS) + "\n").encode())
            for part in _run(scan.chunks, n_workers if parallel else 1):
                clean += part.clean
                good.write(part.matched)
                bad.write(part.mismatches)
                for k, v in part.counts.items():
                    counts[k] += v
                np.maximum.at(max_dose, part.cov_pos, part.cov_dose)
    finally:
        _JOB.clear()
    coverage, total = _coverage(register, max_dose, report_date)
    result = ReconcileResult(
        rows=len(scan.ids), counts=counts, matched_rows=clean, coverage=coverage, total=total,
        report_date=report_date, register_rows=register.rows,
        register_people=len(register), register_invalid=register.invalid,
        register_duplicates=register.duplicates, register_problems=register.problems,
        seconds=time.perf_counter() - started, out_dir=out)
    with atomic_open(out / "report.json", overwrite=overwrite, text=True) as fh:
        json.dump(result.to_json(), fh, ensure_ascii=False, indent=1)
        fh.write("\n")
    return result


def _run(chunks: list[tuple[int, int, int, int]], workers: int) -> Iterator[_ChunkOut]:
    if workers <= 1 or len(chunks) <= 1:
        for chunk in chunks:
            yield _classify_chunk(chunk)
        return
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        yield from pool.imap(_classify_chunk, chunks)
