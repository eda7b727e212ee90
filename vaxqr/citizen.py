"""Citizen data: ID numbers, sex, dates, Vietnamese names and the CCCD card QR.

Everything here is pure, allocation-light and safe to call millions of times (the
reconcile job runs it on every record of a province): regular expressions are compiled
once, tables are module constants, and the per-syllable work of :func:`name_key` is cached.

Sources for the rules: ``docs/vietnam.md`` §1 (CCCD QR), §2 (the 12-digit personal ID
number and the 63 province codes), §5 (names and Unicode).

Tone placement terminology (used by :func:`place_tones` and :func:`name_key`): in the
syllables ``oa``, ``oe`` and ``uy`` with no final consonant, the **old** style puts the tone
mark on the first vowel (``hòa``, ``khỏe``, ``thúy``) and the **new** style on the second,
the main vowel (``hoà``, ``khoẻ``, ``thuý``). Every other syllable is spelt the same way in
both styles (``Hoàng``, ``Quỳnh``, ``Nguyễn``, ``Người``).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from types import MappingProxyType
from typing import Final, Literal

from .errors import ValidationError

__all__ = [
    "PROVINCES",
    "CccdCard",
    "IdNumber",
    "ToneStyle",
    "check_id_against",
    "citizen_key",
    "name_key",
    "names_match",
    "normalize_name",
    "parse_cccd",
    "parse_date",
    "parse_id_number",
    "parse_sex",
    "place_tones",
    "split_name",
    "strip_diacritics",
]

# --------------------------------------------------------------------------------------
# Provinces (docs/vietnam.md, Appendix: TT 07/2016/TT-BCA Phụ lục 1, 63 provinces, 2021)
# --------------------------------------------------------------------------------------

PROVINCES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "001": "Hà Nội",
        "002": "Hà Giang",
        "004": "Cao Bằng",
        "006": "Bắc Kạn",
        "008": "Tuyên Quang",
        "010": "Lào Cai",
        "011": "Điện Biên",
        "012": "Lai Châu",
        "014": "Sơn La",
        "015": "Yên Bái",
        "017": "Hòa Bình",
        "019": "Thái Nguyên",
        "020": "Lạng Sơn",
        "022": "Quảng Ninh",
        "024": "Bắc Giang",
        "025": "Phú Thọ",
        "026": "Vĩnh Phúc",
        "027": "Bắc Ninh",
        "030": "Hải Dương",
        "031": "Hải Phòng",
        "033": "Hưng Yên",
        "034": "Thái Bình",
        "035": "Hà Nam",
        "036": "Nam Định",
        "037": "Ninh Bình",
        "038": "Thanh Hóa",
        "040": "Nghệ An",
        "042": "Hà Tĩnh",
        "044": "Quảng Bình",
        "045": "Quảng Trị",
        "046": "Thừa Thiên Huế",
        "048": "Đà Nẵng",
        "049": "Quảng Nam",
        "051": "Quảng Ngãi",
        "052": "Bình Định",
        "054": "Phú Yên",
        "056": "Khánh Hòa",
        "058": "Ninh Thuận",
        "060": "Bình Thuận",
        "062": "Kon Tum",
        "064": "Gia Lai",
        "066": "Đắk Lắk",
        "067": "Đắk Nông",
        "068": "Lâm Đồng",
        "070": "Bình Phước",
        "072": "Tây Ninh",
        "074": "Bình Dương",
        "075": "Đồng Nai",
        "077": "Bà Rịa - Vũng Tàu",
        "079": "Hồ Chí Minh",
        "080": "Long An",
        "082": "Tiền Giang",
        "083": "Bến Tre",
        "084": "Trà Vinh",
        "086": "Vĩnh Long",
        "087": "Đồng Tháp",
        "089": "An Giang",
        "091": "Kiên Giang",
        "092": "Cần Thơ",
        "093": "Hậu Giang",
        "094": "Sóc Trăng",
        "095": "Bạc Liêu",
        "096": "Cà Mau",
    }
)
"""3-digit province code (first digits of the ID number) → province name (NFC, 2021)."""

_MONTHS: Final = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip


def _show(value: str, limit: int = 40) -> str:
    """Quote a user value for an error message, truncated so messages stay one line."""
    if len(value) > limit:
        value = value[:limit] + "…"
    return repr(value)


# --------------------------------------------------------------------------------------
# ID numbers
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IdNumber:
    """A decoded 12-digit personal identification number (số định danh cá nhân / số CCCD).

    ``century`` is the ordinal century of birth as in the legal table (20 for 1900–1999,
    21 for 2000–2099, …); ``birth_year`` is the full year the digits encode.
    """

    number: str
    province_code: str
    province_name: str
    sex: str
    birth_year: int
    century: int


_SCIENTIFIC = re.compile(r"[0-9][.,][0-9]*[Ee]\+?[0-9]+")


def _check_twelve_digits(s: str, what: str) -> None:
    if len(s) != 12:
        if not s:
            raise ValidationError(f"{what} is empty")
        hint = ""
        if s.isascii() and s.isdigit():
            if len(s) == 9:
                hint = " (9 digits is an old CMND number, not the 12-digit CCCD number)"
            elif len(s) in (10, 11) and s[0] != "0":  # all begin 0 (the province code)
                hint = (" (leading zeros dropped by a spreadsheet? format the column as Text, "
                        f"write it as {'0' * (12 - len(s))}{s} and export again)")
        elif _SCIENTIFIC.fullmatch(s):
            hint = (" (a spreadsheet wrote it in scientific notation: format the column as "
                    "Text, with the leading 0, and export again)")
        raise ValidationError(
            f"{what} must be exactly 12 digits, got {len(s)} characters {_show(s)}{hint}"
        )
    if not (s.isascii() and s.isdigit()):
        for pos, ch in enumerate(s, start=1):
            if not ("0" <= ch <= "9"):
                kind = "a non-ASCII digit" if ch.isdigit() else "a non-digit character"
                raise ValidationError(f"{what} {_show(s)} contains {kind} {ch!r} at position {pos}")


def parse_id_number(s: str) -> IdNumber:
    """Decode a 12-digit ID number (surrounding whitespace ignored).

    Raises :class:`ValidationError` when it is not exactly 12 ASCII digits (saying whether
    the length or a character is wrong) or when its first three digits are not one of the
    63 province codes. Digit 4 gives century and sex (0/1 → 1900s male/female, 2/3 →
    2000s, …), digits 5–6 the last two digits of the birth year. There is no check digit.
    """
    s = s.strip()
    _check_twelve_digits(s, "ID number")
    code = s[:3]
    name = PROVINCES.get(code)
    if name is None:
        raise ValidationError(
            f"unknown province code {code!r} in ID number {_show(s)}: the first 3 digits must "
            "be one of the 63 province codes (e.g. 001 Hà Nội, 079 Hồ Chí Minh, 091 Kiên Giang)"
        )
    d4 = ord(s[3]) - 48
    half = d4 >> 1
    return IdNumber(
        number=s,
        province_code=code,
        province_name=name,
        sex="F" if d4 & 1 else "M",
        birth_year=1900 + 100 * half + int(s[4:6]),
        century=20 + half,
    )


_SEX_WORD: Final = {"M": "male", "F": "female"}


def check_id_against(id: IdNumber, *, dob: date, sex: str) -> list[str]:
    """List the disagreements between an ID number's digits and a record's DOB and sex.

    ``sex`` is the record's value in any spelling :func:`parse_sex` accepts (an
    unrecognised value raises :class:`ValidationError`); messages quote it verbatim, e.g.
    ``"ID digit 4 says female, record says Nam"``. Checks: digit 4's century against the
    DOB's, digits 5–6 against the DOB year, digit 4's parity against the sex. An empty
    list means the ID agrees with the record.
    """
    problems: list[str] = []
    record_sex = parse_sex(sex)
    start = 1900 + 100 * (id.century - 20)
    if not start <= dob.year < start + 100:
        problems.append(
            f"ID digit 4 says born in {start}-{start + 99}, "
            f"record's date of birth is {dob.isoformat()}"
        )
    if id.birth_year % 100 != dob.year % 100:
        problems.append(
            f"ID digits 5-6 say birth year ending in {id.birth_year % 100:02d}, "
            f"record's date of birth is in {dob.year}"
        )
    if id.sex != record_sex:
        problems.append(f"ID digit 4 says {_SEX_WORD[id.sex]}, record says {sex.strip()}")
    return problems


# --------------------------------------------------------------------------------------
# Sex
# --------------------------------------------------------------------------------------

_SEXES: Final = {
    "nam": "M",
    "nữ": "F",
    "nu": "F",  # "Nữ" with its diacritics lost, common in ASCII exports
    "m": "M",
    "f": "F",
    "male": "M",
    "female": "F",
}


CITIZEN_KEY_PREFIX: Final = b"vaxqr office citizen register v1\x1f"


def citizen_key(id_number: str) -> bytes:
    """The citizen register's key for a (validated) 12-digit ID number: the first 16 bytes
    of the SHA-256 of a fixed prefix and the number (a BLOB: the register's index of 16-byte
    keys costs a batch half the time of one of 64 hex characters; 128 bits, no two of the
    10¹² numbers collide in practice). It keeps the numbers out of plain view, no more: the
    numbers have a known structure (province, century/sex and year digits) and a
    computer tries every one of a province and a birth year in seconds."""
    return hashlib.sha256(CITIZEN_KEY_PREFIX + id_number.encode("ascii")).digest()[:16]


def parse_sex(s: str) -> str:
    """Return ``'M'`` or ``'F'`` for ``Nam``/``Nữ`` (any case, NFC or NFD, surrounding spaces).

    Also accepted: ``Nu`` (``Nữ`` without diacritics, frequent in ASCII exports), ``M``/``F``
    and ``male``/``female``. Anything else raises :class:`ValidationError`.
    """
    key = _SEXES.get(unicodedata.normalize("NFC", s).strip().casefold())
    if key is None:
        raise ValidationError(
            f"unknown sex {_show(s)}: expected Nam or Nữ (also accepted: Nu, M, F, male, female)"
        )
    return key


# --------------------------------------------------------------------------------------
# Dates
# --------------------------------------------------------------------------------------

_ISO_DATE: Final = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_DMY_DATE: Final = re.compile(r"([0-9]{1,2})([/.-])([0-9]{1,2})\2([0-9]{4})")
_COMPACT_DATE: Final = re.compile(r"([0-9]{2})([0-9]{2})([0-9]{4})")
# A date with a time of day, as a spreadsheet exports a date-time cell (`2021-09-12 00:00:00`)
_DATE_TIME: Final = re.compile(
    r"([0-9/.-]{6,10})[T ]([0-9]{1,2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?)"
)


def without_midnight(text: str) -> str:
    """``text`` without a time of midnight after its date (`` 00:00``, ``T00:00:00``,
    `` 00:00:00.000``: a spreadsheet's date-time cell), by the rule :func:`parse_date`
    reads one with; any other text as it is (a time of day is not removed)."""
    m = _DATE_TIME.fullmatch(text)
    return m[1] if m is not None and _midnight(m[2]) else text


def _midnight(time: str) -> bool:
    """Whether a time :data:`_DATE_TIME` matched is midnight (00:00, 00:00:00.000)."""
    return not time.strip("0:.")


def _make_date(year: int, month: int, day: int, text: str) -> date:
    if year < 1:
        raise ValidationError(f"{_show(text)} is not a real date: year {year} does not exist")
    if not 1 <= month <= 12:
        raise ValidationError(f"{_show(text)} is not a real date: there is no month {month}")
    try:
        return date(year, month, day)
    except ValueError:
        if month == 2:
            last = 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28
        else:
            last = 30 if month in (4, 6, 9, 11) else 31
        raise ValidationError(
            f"{_show(text)} is not a real date: {_MONTHS[month - 1]} {year} has {last} days"
        ) from None


def date_order(s: str) -> int:
    """Which order a D/M/Y-shaped date (also with a time after it) can only be read in:
    ``DAY_FIRST`` (``15/3/1975``: no month 15), ``MONTH_FIRST`` (``3/15/1975``), else 0
    (either order, or not such a date). A spreadsheet set to English (United States)
    exports every date month first; :func:`parse_date` reads day first, refuses
    ``3/15/1975``, but would read ``3/5/1975`` (5 March) as 3 May."""
    text = s.strip()
    if not any(c in "/.-" for c in text[1:3]):  # not D/M/Y-shaped (ISO: "1975-…")
        return 0
    m = _DMY_DATE.fullmatch(text.split(" ", 1)[0])
    if m is None:
        return 0
    first, second = int(m[1]), int(m[3])
    if 1 <= second <= 12 < first <= 31:
        return DAY_FIRST
    if 1 <= first <= 12 < second <= 31:
        return MONTH_FIRST
    return 0


DAY_FIRST: Final = 1
MONTH_FIRST: Final = 2


def parse_date(s: str, *, compact: bool = False) -> date:
    """Parse ``YYYY-MM-DD``, ``DD/MM/YYYY`` or ``D/M/YYYY`` (also with ``-`` or ``.``).

    With ``compact=True`` an 8-digit ``ddmmyyyy`` (the CCCD QR form) is accepted as well.
    A time of midnight after the date (`` 00:00``, ``T00:00:00``: a spreadsheet's date-time
    cell) is ignored; any other time is an error naming it. Surrounding whitespace is
    ignored. Dates that do not exist (``31/02/2021``) and any other form raise
    :class:`ValidationError` with the reason.
    """
    text = s.strip()
    if len(text) == 10:  # YYYY-MM-DD or DD/MM/YYYY, as the patterns below read them
        if text[4] == "-" and text[7] == "-":
            digits = text[:4] + text[5:7] + text[8:]
            if digits.isascii() and digits.isdigit():
                return _make_date(int(text[:4]), int(text[5:7]), int(text[8:]), text)
        elif text[2] in "/.-" and text[5] == text[2]:
            digits = text[:2] + text[3:5] + text[6:]
            if digits.isascii() and digits.isdigit():
                return _make_date(int(text[6:]), int(text[3:5]), int(text[:2]), text)
    m = _ISO_DATE.fullmatch(text)
    if m:
        return _make_date(int(m[1]), int(m[2]), int(m[3]), text)
    m = _DMY_DATE.fullmatch(text)
    if m:
        return _make_date(int(m[4]), int(m[3]), int(m[1]), text)
    if compact:
        m = _COMPACT_DATE.fullmatch(text)
        if m:
            return _make_date(int(m[3]), int(m[2]), int(m[1]), text)
    m = _DATE_TIME.fullmatch(text)
    if m:
        day = parse_date(m[1], compact=compact)
        if _midnight(m[2]):
            return day
        raise ValidationError(
            f"date {_show(text)} has a time of day ({m[2]}): give the date alone "
            "(a time of 00:00, as spreadsheets export dates, is accepted)"
        )
    if not text:
        raise ValidationError("date is empty")
    forms = "YYYY-MM-DD or DD/MM/YYYY" + (" or ddmmyyyy" if compact else "")
    raise ValidationError(f"date {_show(text)} is not in an accepted form ({forms})")


# --------------------------------------------------------------------------------------
# Names
# --------------------------------------------------------------------------------------

# Characters fixed before anything else: invisible format characters pasted from web pages
# and word processors (dropped; a zero-width space counts as a space), and the Icelandic
# eth Ð/ð (U+00D0/U+00F0), which legacy keyboards and fonts produce for Vietnamese Đ/đ
# (U+0110/U+0111): the capitals are indistinguishable on screen.
_FIXUP_MAP: Final = {
    0x00AD: None,  # soft hyphen
    0x200B: " ",  # zero-width space
    0x200C: None,  # zero-width non-joiner
    0x200D: None,  # zero-width joiner
    0x2060: None,  # word joiner
    0xFEFF: None,  # BOM / zero-width no-break space
    0x00D0: "Đ",
    0x00F0: "đ",
}
_FIXUP_RE: Final = re.compile("[\u00ad\u200b\u200c\u200d\u2060\ufeff\u00d0\u00f0]")


def normalize_name(s: str) -> str:
    """NFC-normalise a name and collapse every whitespace run (NBSP and other Unicode
    spaces included) to one ASCII space, stripped at both ends; case is kept.

    Invisible format characters (zero-width space/joiners, soft hyphen, BOM) are removed
    and a look-alike ``Ð``/``ð`` (eth) becomes ``Đ``/``đ``.
    """
    if _FIXUP_RE.search(s):
        s = s.translate(_FIXUP_MAP)
    return " ".join(unicodedata.normalize("NFC", s).split())


_TONE_MARKS: Final = frozenset("\u0300\u0301\u0303\u0309\u0323")  # huyền sắc ngã hỏi nặng
_CIRCUMFLEX: Final = "\u0302"
_BREVE: Final = "\u0306"
_HORN: Final = "\u031b"
# The letter-forming marks each vowel can carry.
_VOWEL_MARKS: Final[dict[str, tuple[str, ...]]] = {
    "a": (_BREVE, _CIRCUMFLEX),
    "e": (_CIRCUMFLEX,),
    "o": (_CIRCUMFLEX, _HORN),
    "u": (_HORN,),
    "i": (),
    "y": (),
}
_FINALS: Final = frozenset({"", "c", "ch", "m", "n", "ng", "nh", "p", "t"})
_STYLE_PAIRS: Final = frozenset({"oa", "oe", "uy"})
_LETTER_RUN: Final = re.compile(r"(?:[^\W\d_][\u0300-\u036f]*)+")
_TOKEN: Final = re.compile(r"\S+")

ToneStyle = Literal["old", "new"]


def _place_syllable(word: str, new_style: bool) -> str:
    """Re-place the tone mark of one NFC letter run; return it unchanged if it is not a
    Vietnamese syllable this function understands (foreign or minority-language words,
    two tone marks, odd letters)."""
    bases: list[str] = []
    marks: list[str] = []
    tone = ""
    for ch in unicodedata.normalize("NFD", word):
        if ch in _TONE_MARKS:
            # one tone per syllable, and on a vowel (ñ, ǹ, ḿ are other letters)
            if tone or not bases or bases[-1].lower() not in _VOWEL_MARKS:
                return word
            tone = ch
        elif unicodedata.combining(ch):
            if not bases:
                return word
            marks[-1] += ch
        else:
            bases.append(ch)
            marks.append("")
    if not tone:
        return word
    low = [b.lower() for b in bases]
    n = len(low)
    start = 0
    while start < n and low[start] not in _VOWEL_MARKS:
        start += 1
    if start == n:
        return word
    end = start
    while end < n and low[end] in _VOWEL_MARKS:
        end += 1
    final = "".join(low[end:])
    if final not in _FINALS:
        return word
    for i in range(n):
        mark = marks[i]
        if mark and (i < start or i >= end or mark not in _VOWEL_MARKS[low[i]]):
            return word
    # "qu" and "gi" + vowel: the u / i belongs to the onset (quý, quốc, già, giữ, giếng).
    if end - start >= 2 and start > 0:
        prev, first = low[start - 1], low[start]
        if (prev == "q" and first == "u") or (prev == "g" and first == "i"):
            start += 1
    count = end - start
    if count > 3:
        return word
    target = -1
    if count == 1:
        target = start
    else:
        # A letter-forming mark wins: ơ first (ươ, uơ), else the marked vowel.
        for i in range(start, end):
            if marks[i]:
                target = i
                if marks[i] == _HORN and low[i] == "o":
                    break
        if target < 0:
            if count == 3 or final:
                target = start + 1  # oai, uya, oeo; hoàng, toán, huỳnh
            elif low[start] + low[start + 1] in _STYLE_PAIRS:
                target = start + 1 if new_style else start  # hoà / hòa
            else:
                target = start  # ai, ao, au, ay, eo, ia, iu, oi, ua, ui
    parts = [bases[i] + marks[i] + (tone if i == target else "") for i in range(n)]
    return unicodedata.normalize("NFC", "".join(parts))


@lru_cache(maxsize=1 << 16)
def _place_word(word: str, new_style: bool) -> str:
    """Tone placement for one whitespace-free NFC token (cached: names reuse syllables)."""
    if word.isascii():
        return word
    return _LETTER_RUN.sub(lambda m: _place_syllable(m.group(), new_style), word)


def place_tones(s: str, *, style: ToneStyle = "new") -> str:
    """Rewrite every syllable of ``s`` with its tone mark placed by one rule.

    ``style="new"`` gives ``hoà``, ``khoẻ``, ``thuý``; ``style="old"`` gives ``hòa``,
    ``khỏe``, ``thúy``. Both handle ``qu``/``gi`` onsets, ``ươ``, final consonants and the
    priority of ă/â/ê/ô/ơ/ư (``Quỳnh``, ``Giàu``, ``Người``, ``Nguyễn`` are the same in
    both). Case and spacing are kept (invisible characters are dropped and a look-alike
    eth becomes Đ, as in :func:`normalize_name`); the result is NFC; words that are not
    Vietnamese syllables are returned as they are.
    """
    if _FIXUP_RE.search(s):
        s = s.translate(_FIXUP_MAP)
    s = unicodedata.normalize("NFC", s)
    new_style = style == "new"
    return _TOKEN.sub(lambda m: _place_word(m.group(), new_style), s)


def name_key(s: str) -> str:
    """The comparison key of a name: NFC, case-folded, whitespace-collapsed and with the
    tone marks placed in the new style (so ``Hoà``/``Hòa``, ``Thuý``/``Thúy`` compare
    equal), while different letters or tones stay different (``Hòa`` ≠ ``Hóa``,
    ``Nguyễn`` ≠ ``Nguyên``, ``Đào`` ≠ ``Dao``). Idempotent.
    """
    if _FIXUP_RE.search(s):
        s = s.translate(_FIXUP_MAP)
    s = unicodedata.normalize("NFC", unicodedata.normalize("NFC", s).casefold())
    return " ".join([_place_word(w, True) for w in s.split()])


def names_match(a: str, b: str) -> bool:
    """True when two names have the same :func:`name_key`."""
    return name_key(a) == name_key(b)


_COMBINING: Final = re.compile(
    "[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]"
)
_D_MAP: Final = {0x0110: "D", 0x0111: "d", 0x00D0: "D", 0x00F0: "d"}


def strip_diacritics(s: str) -> str:
    """Remove every diacritic: ``Đ``→``D``, ``đ``→``d`` and all combining marks after NFD
    (tones, breve, circumflex, horn). Case and spacing are kept (``Nguyễn Đức`` →
    ``Nguyen Duc``)."""
    s = unicodedata.normalize("NFD", s.translate(_D_MAP))
    return unicodedata.normalize("NFC", _COMBINING.sub("", s))


def split_name(full: str) -> tuple[str, str]:
    """Split a Vietnamese full name (surname first) into ``(fn, gn)``: the first word and
    the rest (``""`` for a one-word name), after :func:`normalize_name`. An empty name
    raises :class:`ValidationError`."""
    name = normalize_name(full)
    if not name:
        raise ValidationError("name is empty")
    fn, _, gn = name.partition(" ")
    return fn, gn


# --------------------------------------------------------------------------------------
# CCCD card QR
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CccdCard:
    """The fields of a chip-based citizen ID card (CCCD) QR code.

    Only positional fields 0–6 are interpreted; later fields (2024 căn cước cards) are
    kept verbatim in ``extra_fields``.
    """

    id_number: str
    old_id: str | None
    full_name: str
    dob: date
    sex: str
    address: str
    issue_date: date | None
    extra_fields: tuple[str, ...] = ()


_CCCD_MAX_LEN: Final = 4096
_URL_RE: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_CONTROL_RE: Final = re.compile(r"[\x00-\x1f\x7f]")
_CJK_RE: Final = re.compile("[\u3000-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef]")
_MOJIBAKE_CODECS: Final = ("big5", "shift_jis", "cp932", "gb18030", "euc_kr")


def _not_cccd(reason: str, hint: str | None = None) -> ValidationError:
    return ValidationError(f"not a CCCD card QR: {reason}", hint=hint)


def _repair_mojibake(text: str) -> str | None:
    """Undo a QR reader's wrong charset guess when it is exactly reversible.

    CCCD payloads are UTF-8 without an ECI header; readers that assume ISO-8859-1 (the QR
    default) or guess Big5/Shift-JIS produce mojibake. Re-encoding with that codec and
    decoding as strict UTF-8 succeeds only when that is what happened.
    """
    codecs: tuple[str, ...] = ()
    if _CJK_RE.search(text):
        codecs = _MOJIBAKE_CODECS
    elif any("\u0080" <= ch <= "\u00ff" for ch in text):
        codecs = ("latin-1", "cp1252")
    for codec in codecs:
        try:
            fixed = text.encode(codec).decode("utf-8")
        except UnicodeError:
            continue
        if fixed != text and not _CJK_RE.search(fixed):
            return fixed
    return None


def _card_date(value: str, field: str) -> date:
    if not _COMPACT_DATE.fullmatch(value):
        raise _not_cccd(f"{field} {_show(value)} is not a date in ddmmyyyy form")
    try:
        return _make_date(int(value[4:]), int(value[2:4]), int(value[:2]), value)
    except ValidationError as exc:
        raise _not_cccd(f"{field}: {exc.message}") from None


def parse_cccd(text: str) -> CccdCard:
    """Parse the text of a CCCD card QR: ``id|old id|name|dob|sex|address|issue date[|…]``.

    A leading BOM and surrounding whitespace (scanners append ``\\r``/``\\r\\n``) are
    stripped. Fields are split on every ``|`` and never shifted, so an empty old ID
    (``||``) gives ``old_id=None``. Field 0 must be 12 ASCII digits (an unknown province
    code is accepted: the card is authoritative and births registered abroad use country
    codes); the old ID, when present, must be digits; the name is normalised
    (:func:`normalize_name`); DOB and issue date are real ``ddmmyyyy`` dates (issue date
    may be empty → ``None``); sex is ``Nam``/``Nữ``. Text mis-decoded by a QR reader as
    Latin-1, Big5 or Shift-JIS is repaired when the repair is exact. Anything else (a URL,
    an ``HC1:`` credential, too few fields, garbage) raises
    ``ValidationError("not a CCCD card QR: <reason>")``.
    """
    if text.startswith("\ufeff"):
        text = text[1:]
    text = text.strip()
    if not text:
        raise _not_cccd("the text is empty")
    if len(text) > _CCCD_MAX_LEN:
        raise _not_cccd(f"the text is {len(text)} characters long, far more than a CCCD QR")
    if text[:4].upper() == "HC1:":
        raise _not_cccd(
            "this is a vaccination credential (HC1:), not the citizen ID card's QR",
            hint="scan the QR code on the front of the chip-based ID card",
        )
    if _URL_RE.match(text):
        raise _not_cccd("this is a URL", hint="scan the QR code on the chip-based ID card")
    if "|" not in text:
        raise _not_cccd("no '|'-separated fields")
    if _CONTROL_RE.search(text):
        raise _not_cccd("the text contains control characters")
    fixed = _repair_mojibake(text)
    if fixed is not None:
        try:
            return parse_cccd(fixed)
        except ValidationError:
            pass
    if _CJK_RE.search(text):
        raise _not_cccd(
            "the text contains CJK characters: the QR reader decoded the card's UTF-8 "
            "bytes with the wrong charset (Big5/Shift-JIS)",
            hint="decode the QR's raw bytes as UTF-8",
        )
    fields = text.split("|")
    if len(fields) < 7:
        raise _not_cccd(f"{len(fields)} '|'-separated fields, a CCCD QR has at least 7")
    id_number = fields[0].strip()
    try:
        _check_twelve_digits(id_number, "field 1 (ID number)")
    except ValidationError as exc:
        raise _not_cccd(exc.message) from None
    old_id = fields[1].strip()
    if old_id and not (old_id.isascii() and old_id.isdigit()):
        raise _not_cccd(f"field 2 (old CMND number) {_show(old_id)} is not a number")
    full_name = normalize_name(fields[2])
    if not any(ch.isalpha() for ch in full_name):
        raise _not_cccd("field 3 (full name) has no letters")
    dob = _card_date(fields[3].strip(), "field 4 (date of birth)")
    try:
        sex = parse_sex(fields[4])
    except ValidationError:
        raise _not_cccd(f"field 5 (sex) {_show(fields[4])} is not Nam or Nữ") from None
    issue_raw = fields[6].strip()
    issue_date = _card_date(issue_raw, "field 7 (issue date)") if issue_raw else None
    return CccdCard(
        id_number=id_number,
        old_id=old_id or None,
        full_name=full_name,
        dob=dob,
        sex=sex,
        address=normalize_name(fields[5]),
        issue_date=issue_date,
        extra_fields=tuple(fields[7:]),
    )
