"""Matching one vaccination record to its register entry (9438/BYT-CNTT).

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
    Another row of the input has the same ID number and the same dose number. Of such rows
    one is kept and classified on its own merits: the first that is clean on its own (it
    matches the register and its dose data is usable), else the first; the others get this
    class. So a corrected re-entry below a wrong row is kept, and the wrong row is the one
    to delete; the only good record is never the one to delete.
``name_tone_style``
    The names differ only in old/new tone placement (``Hòa``/``Hoà``, ``Thúy``/``Thuý``):
    equal :func:`~vaxqr.citizen.name_key` but not equal ignoring case. Auto-fixed: the row
    goes to ``matched.csv`` with the register's spelling (and is listed in
    ``mismatches.csv`` for the record). Only when every later check passes: when another
    field is wrong too, the row gets that field's class (it is not signed), and its reason
    and fix mention the tone placement as well.
``name_no_diacritics``
    Same words in the same order, and every word that differs is the register's word with
    all its diacritics removed (``Nguyen`` for ``Nguyễn``, ``Dang`` for ``Đặng``).
``name_order``
    The same words (tone style ignored) in another order (``An Nguyễn Văn``).
``name_differs``
    Any other name difference, an empty name, or a register name that cannot be written in
    a credential (no ICAO transliteration). When the date of birth or the sex is not the
    register's either, the record is probably another person's under this ID number: the
    reason says so and the fix is to check the ID number, never to take the register's
    name (which would give the ID's owner a credential for someone else's dose).
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
    before the kept record of dose ``n-1`` of the same ID (the first that matches the
    register, else the first), or fewer days after it than the
    dose ``n-1`` vaccine's ``min_interval_days``; or the dose fields are unusable (dose
    number not 1…total, unknown vaccine, vaccination date unreadable, after ``today``,
    before 2020-12-01 or before the date of birth), or the lot or the site starts with
    ``= + - @`` or has a part after ``;`` that does
    (:func:`vaxqr.safetext.spreadsheet_formula`: a spreadsheet opening matched.csv would
    run it; ``vaxqr issue`` refuses such a row too).
``matched``
    Everything agrees after normalisation (NFC, case, spacing; any accepted date and sex
    spelling).

:func:`classify` is a pure function of one record, its register entry and two facts about
the other records of the same ID (:class:`DoseContext`), so the same code runs as a
Spark/DuckDB/pandas UDF; :func:`dose_context` derives those facts from the ID's records.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from datetime import date
from functools import lru_cache
from typing import Final, NamedTuple

from .citizen import (
    PROVINCES,
    name_key,
    normalize_name,
    parse_date,
    parse_id_number,
    strip_diacritics,
    without_midnight,
)
from .credential import PersonName, Vaccine, dose_problem, find_vaccine
from .errors import ValidationError, VaxqrError
from .safetext import formula_reason, row_label, spreadsheet_formula

__all__ = [
    "CLASSES",
    "CLEAN",
    "DoseContext",
    "DoseRef",
    "Match",
    "Person",
    "PreviousDose",
    "VaccRecord",
    "classify",
    "dose_context",
]

CLASSES: Final = ("id_invalid", "id_not_found", "duplicate_dose", "name_tone_style",
                  "name_no_diacritics", "name_order", "name_differs", "dob_swapped",
                  "dob_differs", "sex_differs", "dose_sequence", "matched")
"""Every class, in precedence order: a record gets the first that applies."""
CLEAN: Final = frozenset({"matched", "name_tone_style"})
"""Classes whose rows go to ``matched.csv`` (with the register's values)."""
EARLIEST_VACCINATION: Final = date(2020, 12, 1)
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
    """The kept record of dose ``n-1`` of the same ID (the first that matches the register,
    else the first; row is 1-based)."""

    row: int
    date: date
    min_interval_days: int


class DoseContext(NamedTuple):
    """What :func:`classify` needs to know about the other records of the same ID."""

    duplicate_of: int | None = None  # row of the record kept for the same dose number
    previous: PreviousDose | None = None
    duplicate_good: bool = False  # whether that kept record is clean on its own


class DoseRef(NamedTuple):
    """One record of an ID, reduced to what the dose checks use (for :func:`dose_context`).
    ``good``: the record is clean on its own (:func:`classify` with no ``duplicate_of``
    gives a clean :class:`Match`); of the records of one dose, the first good one is kept."""

    row: int
    dose: int | None
    date: date | None
    min_interval_days: int
    good: bool = False

    @classmethod
    def of(cls, row: int, record: VaccRecord, good: bool = False) -> DoseRef:
        v = _vaccine(record.vaccine)
        dose = _small_int(record.dose_number)
        return cls(row, dose if dose else None, _date(record.vaccination_date),
                   v.min_interval_days if v else 0, good)


class Match(NamedTuple):
    """The verdict on one record: its class, why, the suggested fix, and for the clean
    classes the row to sign (the :data:`vaxqr.issue.COLUMNS` values, register's identity)."""

    cls: str
    reason: str = ""
    fix: str = ""
    clean: tuple[str, ...] | None = None


def _kept(refs: Iterable[DoseRef]) -> DoseRef | None:
    """Of the records of one dose: the first good one, else the first."""
    rows = sorted(refs, key=lambda r: r.row)
    return next((r for r in rows if r.good), rows[0] if rows else None)


def dose_context(row: int, history: Iterable[DoseRef]) -> DoseContext:
    """The :class:`DoseContext` of the record at ``row`` among all records of its ID
    (``history``, which includes the record itself): the record kept for its dose number
    when that is another (the first good one, else the first: see :class:`DoseRef`), and
    the record kept for the previous dose. Without ``good`` flags the first is kept."""
    refs = list(history)
    me = next((r for r in refs if r.row == row), None)
    if me is None or me.dose is None:
        return DoseContext()
    kept = _kept(r for r in refs if r.dose == me.dose)
    prev = _kept(r for r in refs if me.dose > 1 and r.dose == me.dose - 1)
    previous = None
    if prev is not None and prev.date is not None:
        previous = PreviousDose(prev.row, prev.date, prev.min_interval_days)
    if kept is None or kept.row == row:
        return DoseContext(None, previous)
    return DoseContext(kept.row, previous, kept.good)


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
    # a spreadsheet's date-time cell at midnight, read as parse_date reads it
    text = without_midnight(text.strip())
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

    A ``name_tone_style`` record is always clean (``Match.clean`` set, the register's
    spelling): when another field is wrong too, the record gets that field's class (not
    clean), with the tone placement mentioned in ``reason``/``fix``.
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
        dose = record.dose_number.strip()
        if context.duplicate_good:
            return Match("duplicate_dose",
                         f"dose {dose} of this ID is also at {row_label(context.duplicate_of)}, "
                         "which matches the register",
                         "delete this row, or correct its dose number")
        return Match("duplicate_dose",
                     f"dose {dose} of this ID is also at {row_label(context.duplicate_of)}, "
                     "and neither matches the register",
                     f"correct {row_label(context.duplicate_of)} and delete this row, or correct "
                     "this row's dose number")
    reg_name = _norm_cached(person.full_name)
    tone_style = False
    if record.full_name != reg_name:
        verdict = _name_verdict(_norm(record.full_name), reg_name)
        if verdict is not None:
            if verdict[0] == "name_differs":
                return _name_differs(record, person, verdict[1], reg_name)
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
        return Match(rest.cls, f"{rest.reason}; also the name's old/new tone placement "
                               "differs", f"{rest.fix}; the register's spelling of the name "
                                           f"is {reg_name}")
    return Match("name_tone_style", why,
                 f"auto-fixed: the register's spelling {reg_name} is used", rest.clean)


def _name_differs(record: VaccRecord, person: Person, why: str, reg_name: str) -> Match:
    """A name that is not the register's: a typo to correct from the register when the
    date of birth and sex agree; when one of them disagrees too, probably another person's
    record under this ID number, and the register's name must not be copied onto it (that
    would sign the ID owner's credential on someone else's dose)."""
    differs = [what for what, bad in (("date of birth", _date(record.dob) != person.dob),
                                      ("sex", _sex(record.sex) != person.sex)) if bad]
    if not differs:
        return Match("name_differs", why, f"use the register's name: {reg_name}")
    return Match("name_differs",
                 f"probably another person: the name and the {' and '.join(differs)} are not "
                 "those of the ID number's owner in the register",
                 "check the ID number against this person's CCCD card (do not copy the "
                 "register's name onto this record: it may be someone else's dose)")


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
                       f"at {row_label(prev.row)}")
            elif gap < prev.min_interval_days:
                why = (f"dose {dose} on {vdate_s} is {gap} days after dose {dose - 1} "
                       f"at {row_label(prev.row)}; the minimum interval is "
                       f"{prev.min_interval_days} days")
        if not why:
            lot, site = _norm(record.lot), _norm(record.site)
            for what, value in (("lot", lot), ("site", site)):
                if spreadsheet_formula(value):
                    return Match("dose_sequence", formula_reason(what, value),
                                 f"correct the {what} (no = + - @ at its start or after a ';')")
            return _new_match(Match, ("matched", "", "", (
                reg_name, _SEX_WORD[person.sex], _iso(person.dob), idn, dose_s, total_s, vdate_s,
                vaccine, lot, site)))
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
    elif dose_problem(dose, total):
        why = dose_problem(dose, total)
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

