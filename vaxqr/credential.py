"""The EU DCC 1.3.0 data model for one vaccination event, with Vietnamese naming rules.

Knows the DCC and the Vietnamese data rules; knows nothing of COSE, keys or QR codes.

* Names are NFC-normalised; Vietnamese order is surname first, so ``fn`` is the first word
  and ``gn`` the rest (``fn + " " + gn`` gives back the full name).
* ``fnt``/``gnt`` are ICAO 9303 transliterations: Đ→D, combining marks stripped after NFD,
  upper case, spaces and hyphens → ``<``; a character that has no transliteration is an
  error, never silently dropped (``NGUYỄN`` must not become ``NGUYN``).
* UVCIs carry the Luhn mod 38 check character over the whole string.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from functools import lru_cache
from typing import Any, Final

from .errors import ValidationError

SCHEMA_VERSION = "1.3.0"
TG_COVID19 = "840539006"
COUNTRY = "VN"
NAME_MAX = 80
#: exp = iat + this many days (QĐ 5772: the QR is valid for 12 months), never past the
#: DSC's notAfter (SPEC §2)
VALIDITY_DAYS = 365
#: the most doses a record may give (dose number and total): no schedule has more, and the
#: DCC schemas before 1.3.0 bounded both to [1, 9]; "22" for "2" is a slip of the keyboard
MAX_DOSES = 9


def dose_problem(dose: int, total: int) -> str:
    """Why a dose number and total are not a sane pair (empty when they are)."""
    if dose < 1 or total < 1:
        return "dose numbers start at 1"
    if total > MAX_DOSES:
        return f"total doses {total} is more than {MAX_DOSES}: check the dose columns"
    if dose > total:
        return f"dose {dose} is greater than the total {total}"
    return ""

# --------------------------------------------------------------------------- vaccines


@dataclass(frozen=True, slots=True)
class Vaccine:
    """One vaccine licensed in Vietnam, with its EU DCC value-set codes."""

    key: str
    name: str
    mp: str
    ma: str
    vp: str
    doses: int  # doses in the primary series
    min_interval_days: int  # shortest interval between primary doses

    @property
    def display(self) -> str:
        return self.name


# vp codes are the 2021 value-set entries (docs/standards.md §1.13); all stay valid.
VACCINES: Mapping[str, Vaccine] = {
    v.key: v
    for v in (
        Vaccine("astrazeneca", "AstraZeneca Vaxzevria", "EU/1/21/1529", "ORG-100001699",
                "J07BX03", 2, 28),
        # AstraZeneca's vaccine made by the Serum Institute of India (much of COVAX's supply):
        # the EU's coding rules (Annex A) give it its own product and maker, not Vaxzevria's
        Vaccine("covishield", "Covishield (AstraZeneca, Serum Institute of India)",
                "Covishield", "ORG-100001981", "J07BX03", 2, 28),
        Vaccine("sputnik", "Sputnik V (Gamaleya)", "Sputnik-V", "Gamaleya-Research-Institute",
                "J07BX03", 2, 21),
        Vaccine("verocell", "Vero Cell (Sinopharm BIBP)", "BBIBP-CorV", "ORG-100020693",
                "J07BX03", 2, 21),
        Vaccine("pfizer", "Pfizer-BioNTech Comirnaty", "EU/1/20/1528", "ORG-100030215",
                "1119349007", 2, 21),
        Vaccine("moderna", "Moderna Spikevax", "EU/1/20/1507", "ORG-100031184",
                "1119349007", 2, 28),
        Vaccine("janssen", "Janssen (Johnson & Johnson)", "EU/1/20/1525", "ORG-100001417",
                "J07BX03", 1, 0),
        Vaccine("hayatvax", "Hayat-Vax (Gulf Pharmaceutical)", "Hayat-Vax", "ORG-100023050",
                "J07BX03", 2, 21),
        Vaccine("abdala", "Abdala (CIGB)", "Abdala", "CIGB", "1119305005", 3, 14),
    )
}
_ALIASES = {
    "az": "astrazeneca", "vaxzevria": "astrazeneca",
    "sputnikv": "sputnik", "sputnik-v": "sputnik", "vero cell": "verocell",
    "vero-cell": "verocell", "sinopharm": "verocell", "bbibp-corv": "verocell",
    "comirnaty": "pfizer", "pfizer-biontech": "pfizer", "spikevax": "moderna",
    "jcovden": "janssen", "j&j": "janssen", "hayat-vax": "hayatvax",
    "pfizerbiontech": "pfizer", "sinopharmverocell": "verocell",
}
_BY_MP = {v.mp.upper(): v for v in VACCINES.values()}


def find_vaccine(name_or_code: str) -> Vaccine:
    """Look a vaccine up by short name, alias or EU medicinal-product code."""
    key = unicodedata.normalize("NFC", name_or_code).strip().lower()
    key = _ALIASES.get(key, key)
    if key in VACCINES:
        return VACCINES[key]
    # the names as exports and SPEC write them, "Sputnik V", "Hayat Vax", "Vero  Cell":
    # the same words without their spaces, hyphens or dots
    compact = "".join(ch for ch in key if not (ch.isspace() or ch in "-_."))
    compact = _ALIASES.get(compact, compact)
    if compact in VACCINES:
        return VACCINES[compact]
    by_code = _BY_MP.get(name_or_code.strip().upper())
    if by_code is not None:
        return by_code
    known = ", ".join(VACCINES)
    raise ValidationError(
        f"unknown vaccine {name_or_code!r}; use one of: {known}, or an EU mp code")


def vaccine_for_mp(mp: str) -> Vaccine | None:
    """The catalogue entry for a medicinal-product code, if it is one of Vietnam's eight."""
    return _BY_MP.get(mp) or _BY_MP.get(mp.upper())  # the keys are upper case already


# --------------------------------------------------------------------------- names

_SEPARATORS = re.compile(r"[\s\-‐‑‒–—,]+")
_DROPPED = frozenset("'’ʼ`´.")
_EXTRA = {"Đ": "D", "Ð": "D", "ß": "SS", "Æ": "AE", "Ø": "OE", "Œ": "OE", "Þ": "TH",
          "Ł": "L", "Ħ": "H", "Ŧ": "T", "Ŀ": "L", "Ŋ": "N", "ẞ": "SS", "I": "I"}


def normalize_text(value: str) -> str:
    """NFC with whitespace runs (any Unicode space) collapsed to one space, trimmed."""
    # = re.sub(r"\s+", " ", …).strip(): str.split() splits on exactly the characters that
    # re's \s matches (str.isspace), in a third of the time
    return " ".join(unicodedata.normalize("NFC", value).split())


@lru_cache(maxsize=4096)  # pure; names repeat (Nguyễn, Thị, Văn…) across a batch
def transliterate(name: str) -> str:
    """ICAO 9303 transliteration for ``fnt``/``gnt`` (``Nguyễn Thị`` → ``NGUYEN<THI``).

    Raises :class:`ValidationError` when a character has no transliteration, rather than
    dropping it, and when the result would exceed 80 characters.
    """
    text = unicodedata.normalize("NFC", name).upper().strip()
    out: list[str] = []
    for ch in text:
        ch = _EXTRA.get(ch, ch)
        base = "".join(c for c in unicodedata.normalize("NFD", ch) if not unicodedata.combining(c))
        out.append(base)
    joined = _SEPARATORS.sub("<", "".join(out).strip())
    result = "".join(c for c in joined if c not in _DROPPED)
    bad = sorted({c for c in result if not ("A" <= c <= "Z" or c == "<")})
    if bad:
        raise ValidationError(
            f"name {name!r} has characters with no ICAO transliteration: {' '.join(bad)}"
        )
    result = result.strip("<")
    if len(result) > NAME_MAX:
        raise ValidationError(f"transliterated name is longer than {NAME_MAX} characters")
    return result


def _is_mark(ch: str) -> bool:
    return unicodedata.category(ch) in ("Mn", "Mc", "Me")


# Characters that are not combining marks, below U+2000 (Latin, Vietnamese included): a
# name made of these alone needs no mark check (one C-level set test per name).
_NO_MARKS = frozenset(chr(i) for i in range(0x20, 0x2000) if not _is_mark(chr(i)))
MAX_MARKS = 2  # Vietnamese needs at most two on a letter: a vowel mark and a tone


def _mark_problem(full: str) -> str | None:
    """Why the combining marks of an NFC name would print otherwise than they read: a mark
    that follows no letter (on a space, first), or more than :data:`MAX_MARKS` on one
    letter (``Á`` and twenty more acute accents stacked up)."""
    if _NO_MARKS.issuperset(full):
        return None
    base, marks = "", 0
    for ch in full:
        if _is_mark(ch):
            if not base:
                return (f"the name has a combining mark (U+{ord(ch):04X}) that does not "
                        "follow a letter")
            marks += 1
            if marks > MAX_MARKS:
                return (f"the name has more than {MAX_MARKS} marks on the letter {base!r}: "
                        "Vietnamese needs at most two (a vowel mark and a tone)")
        elif ch.isalpha():
            base, marks = ch, len(unicodedata.normalize("NFD", ch)) - 1
        else:
            base, marks = "", 0
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class PersonName:
    """DCC ``nam``: surname (``fn``), forenames (``gn``) and their transliterations."""

    fn: str
    gn: str
    fnt: str
    gnt: str

    @classmethod
    def from_full_name(cls, full_name: str) -> PersonName:
        """Split a Vietnamese full name (surname first) and transliterate both parts."""
        full = normalize_text(full_name)
        if not full:
            raise ValidationError("the full name is empty")
        marks = _mark_problem(full)
        if marks is not None:
            raise ValidationError(marks, hint="retype the name (a Vietnamese keyboard in "
                                              "Unicode dựng sẵn mode)")
        if not full[0].isalpha():  # '-Nguyễn', "'Lê": a typo, and "-…" a spreadsheet formula
            raise ValidationError(f"the full name {full[:40]!r} does not start with a letter")
        if len(full) > 2 * NAME_MAX:
            raise ValidationError(f"the full name is longer than {2 * NAME_MAX} characters")
        fn, _, gn = full.partition(" ")
        if len(fn) > NAME_MAX or len(gn) > NAME_MAX:
            raise ValidationError(f"a name part is longer than {NAME_MAX} characters")
        return cls(fn=fn, gn=gn, fnt=transliterate(fn), gnt=transliterate(gn) if gn else "")

    @property
    def full_name(self) -> str:
        return f"{self.fn} {self.gn}".strip()

    def to_dict(self) -> dict[str, str]:
        d = {"fn": self.fn, "fnt": self.fnt}
        if self.gn:
            d["gn"] = self.gn
        if self.gnt:
            d["gnt"] = self.gnt
        return d


# --------------------------------------------------------------------------- UVCI

_LUHN_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/:"
_LUHN_INDEX = {c: i for i, c in enumerate(_LUHN_ALPHABET)}
_SERIAL_ALPHABET = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no I/O: readable when typed


def luhn_mod38(text: str) -> str:
    """The Luhn mod N (N = 38) check character of a UVCI (eHN guidelines, Annex 2)."""
    n = len(_LUHN_ALPHABET)
    factor, total = 2, 0
    for ch in reversed(text.upper()):
        try:
            addend = factor * _LUHN_INDEX[ch]
        except KeyError:
            raise ValidationError(f"character {ch!r} is not allowed in a UVCI") from None
        factor = 1 if factor == 2 else 2
        total += addend // n + addend % n
    return _LUHN_ALPHABET[(n - total % n) % n]


def make_uvci(province: str, commune: str, serial: str | None = None) -> str:
    """``URN:UVCI:01:VN:<province>/<commune>/<serial>#<check>``; a random serial if none given."""
    if serial is None:
        return UvciMaker(province, commune).draw(1)[0]
    body = f"URN:UVCI:01:{COUNTRY}:{province}/{commune}/{serial}".upper()
    return f"{body}#{luhn_mod38(body)}"


SERIAL_DIGITS = 12  # base-34 digits of a random serial: 34**12 ≈ 2.4e18 values
_SERIALS: Final = len(_SERIAL_ALPHABET) ** SERIAL_DIGITS
_PAIR: Final = len(_SERIAL_ALPHABET) ** 2
# Two serial digits at a time: their characters (low digit first) and their share of the
# Luhn sum. Within a serial of even length, the first character of each pair has an odd
# distance from the end of the body (Luhn factor 1), the second an even one (factor 2).
_PAIR_TEXT: Final = [_SERIAL_ALPHABET[p % len(_SERIAL_ALPHABET)]
              + _SERIAL_ALPHABET[p // len(_SERIAL_ALPHABET)] for p in range(_PAIR)]


def _luhn_addend(ch: str, factor: int) -> int:
    addend = factor * _LUHN_INDEX[ch]
    return addend // len(_LUHN_ALPHABET) + addend % len(_LUHN_ALPHABET)


_PAIR_LUHN: Final = [_luhn_addend(t[0], 1) + _luhn_addend(t[1], 2) for t in _PAIR_TEXT]
# A serial number is drawn as two halves below 34**6, each from 5 random bytes; draws at or
# above _DRAW_LIMIT are rejected (0.1%), so each half is uniform. Every value stays below
# 2**62: compiled, arithmetic on larger ints aborts the process if interrupted (Ctrl-C).
_HALF: Final = len(_SERIAL_ALPHABET) ** (SERIAL_DIGITS // 2)
_DRAW_LIMIT: Final = (1 << 40) // _HALF * _HALF


class UvciMaker:
    """Random UVCIs of one commune, many at a time (a batch's chunk of rows).

    Each serial is a uniform number below 34¹² (from ``os.urandom``, the source of
    :mod:`secrets`, by rejection sampling of 40-bit draws, one per half) written in base
    34: the UVCI :func:`make_uvci` gives for that serial. One random read serves a whole
    chunk and the Luhn sum of the fixed prefix is computed once: ~1 µs a UVCI instead of
    ~6. No drawn number is kept between calls, so a forked process never repeats one.
    """

    def __init__(self, province: str, commune: str) -> None:
        self.prefix = f"URN:UVCI:01:{COUNTRY}:{province}/{commune}/".upper()
        luhn_mod38(self.prefix)  # every character allowed
        # The prefix's share of the Luhn sum. Factors alternate 2, 1, 2, ... from the last
        # character of the body; the prefix's last one is SERIAL_DIGITS characters from it.
        total = 0
        factor = 2 if SERIAL_DIGITS % 2 == 0 else 1
        for ch in reversed(self.prefix):
            total += _luhn_addend(ch, factor)
            factor = 1 if factor == 2 else 2
        self._prefix_luhn = total

    def from_number(self, n: int) -> str:
        """The UVCI of serial number ``n`` (0 ≤ n < 34¹²)."""
        if not 0 <= n < _SERIALS:
            raise ValueError("serial number out of range")
        total = self._prefix_luhn
        parts = [self.prefix]
        for _ in range(SERIAL_DIGITS // 2):
            p = n % _PAIR  # not divmod: compiled, % and // of small ints are C arithmetic
            n //= _PAIR
            parts.append(_PAIR_TEXT[p])
            total += _PAIR_LUHN[p]
        parts.append("#")
        parts.append(_LUHN_ALPHABET[-total % len(_LUHN_ALPHABET)])
        return "".join(parts)

    def draw(self, count: int) -> list[str]:
        """``count`` new random UVCIs."""
        out: list[str] = []
        while len(out) < count:
            need = count - len(out)
            raw = os.urandom(10 * (need + need // 64 + 1))  # ~0.2% of pairs are rejected
            for i in range(0, len(raw), 10):
                high = int.from_bytes(raw[i:i + 5], "little")
                low = int.from_bytes(raw[i + 5:i + 10], "little")
                if high < _DRAW_LIMIT and low < _DRAW_LIMIT:
                    out.append(self.from_number(high % _HALF * _HALF + low % _HALF))
                    if len(out) == count:
                        break
        return out


def uvci_check_ok(uvci: str) -> bool:
    """True when a UVCI's ``#`` check character is present and correct (case-insensitive)."""
    body, sep, check = uvci.upper().rpartition("#")
    if not sep or len(check) != 1:
        return False
    try:
        return luhn_mod38(body) == check
    except ValidationError:
        return False


# --------------------------------------------------------------------------- the DCC


@dataclass(frozen=True, slots=True, kw_only=True)
class Vaccination:
    """One DCC vaccination entry (``v[0]``)."""

    vaccine: Vaccine
    dn: int
    sd: int
    dt: date
    issuer: str
    ci: str
    co: str = COUNTRY
    tg: str = TG_COVID19

    def to_dict(self) -> dict[str, Any]:
        return {
            "tg": self.tg, "vp": self.vaccine.vp, "mp": self.vaccine.mp, "ma": self.vaccine.ma,
            "dn": self.dn, "sd": self.sd, "dt": self.dt.isoformat(), "co": self.co,
            "is": self.issuer, "ci": self.ci,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Certificate:
    """A DCC holding one vaccination event (the schema's ``maxItems 1``: the latest dose)."""

    name: PersonName
    dob: date
    vaccination: Vaccination
    ver: str = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {
            "ver": self.ver,
            "nam": self.name.to_dict(),
            "dob": self.dob.isoformat(),
            "v": [self.vaccination.to_dict()],
        }


def vaccination_dcc(*, name: PersonName, dob: date, vaccine: Vaccine, dn: int, sd: int, dt: date,
                    issuer: str, ci: str) -> dict[str, Any]:
    """The DCC of one vaccination event: ``Certificate(name=name, dob=dob,
    vaccination=Vaccination(vaccine=vaccine, dn=dn, sd=sd, dt=dt, issuer=issuer, ci=ci))
    .to_dict()`` without building the two frozen objects (~1.4 µs of the ~35 µs a credential
    costs to sign besides its signature; tests compare the two)."""
    return {
        "ver": SCHEMA_VERSION,
        "nam": name.to_dict(),
        "dob": dob.isoformat(),
        "v": [{
            "tg": TG_COVID19, "vp": vaccine.vp, "mp": vaccine.mp, "ma": vaccine.ma,
            "dn": dn, "sd": sd, "dt": dt.isoformat(), "co": COUNTRY, "is": issuer, "ci": ci,
        }],
    }


# --------------------------------------------------------------------------- decoded content


_INF = float("inf")
# Containers nested deeper than this are refused (decoded CBOR is at most sign.MAX_CBOR_DEPTH
# = 64 deep): compiled, the recursion below has no recursion limit and a deep enough value
# overflowed the C stack (a segfault) where Python raised RecursionError.
MAX_NESTING: Final = 100


def _plain_json(value: Any, depth: int = 0) -> bool:
    """Whether ``value`` is made of plain JSON values only (the common case of
    :func:`to_jsonable`, which then returns it as it is, without copying)."""
    t = type(value)
    if t is str or t is bool or value is None:
        return True
    if t is dict:
        if depth >= MAX_NESTING:
            return False
        d: dict[Any, Any] = value  # typed, so the compiled build iterates it natively
        for k, v in d.items():
            if type(k) is not str or (type(v) is not str and not _plain_json(v, depth + 1)):
                return False
        return True
    if t is list:
        if depth >= MAX_NESTING:
            return False
        items: list[Any] = value
        for v in items:
            if type(v) is not str and not _plain_json(v, depth + 1):
                return False
        return True
    if t is int:
        return bool(-(2**53) < value < 2**53)
    return t is float and value == value and -_INF < value < _INF


def to_jsonable(value: Any, path: str = "") -> Any:
    """Turn decoded CBOR into JSON values, or raise ``ValidationError`` naming the field.

    Tag-0 date-times become RFC 3339 strings (validators must read tagged and untagged).
    """
    if _plain_json(value):
        return value
    return _to_jsonable(value, path)


def _to_jsonable(value: Any, path: str = "", depth: int = 0) -> Any:
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        if abs(value) >= 2**53:
            raise ValidationError(f"{path or 'value'}: integer out of range")
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValidationError(f"{path or 'value'}: not a finite number")
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping | list | tuple) and depth >= MAX_NESTING:
        raise ValidationError(f"{path or 'value'}: nested more than {MAX_NESTING} levels deep")
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValidationError(
                    f"{path or 'certificate'}: a map key of type {type(k).__name__} is not text")
            out[k] = _to_jsonable(v, f"{path}.{k}" if path else k, depth + 1)
        return out
    if isinstance(value, list | tuple):
        return [_to_jsonable(v, f"{path}[{i}]", depth + 1) for i, v in enumerate(value)]
    raise ValidationError(f"{path or 'value'}: a {type(value).__name__} has no JSON form")


def certificate_type(dcc: Mapping[str, Any]) -> str | None:
    """``'v'``, ``'t'`` or ``'r'`` when exactly one of them is present, else None."""
    v, t, r = "v" in dcc, "t" in dcc, "r" in dcc
    if v + t + r != 1:
        return None
    return "v" if v else "t" if t else "r"


_KIND_NAMES = {"v": "vaccination", "t": "test", "r": "recovery"}


def summary(dcc: Mapping[str, Any]) -> dict[str, Any]:
    """A display summary of decoded DCC content (tolerant: missing fields become None)."""
    raw_nam = dcc.get("nam")
    # (``type(x) is dict or``: isinstance against the Mapping ABC costs ~0.1 µs a time)
    nam: Mapping[str, Any] = raw_nam if type(raw_nam) is dict or \
        isinstance(raw_nam, Mapping) else {}
    fn, gn = nam.get("fn"), nam.get("gn")
    parts = [p for p in (fn, gn) if isinstance(p, str) and p]
    if not parts:
        parts = [p for p in (nam.get("fnt"), nam.get("gnt")) if isinstance(p, str) and p]
    entry: dict[str, Any] = {}
    kind = certificate_type(dcc)
    if kind is not None:
        entries = dcc.get(kind)
        if isinstance(entries, list) and entries and isinstance(entries[0], dict):
            entry = entries[0]
    out: dict[str, Any] = {
        "type": _KIND_NAMES.get(kind or ""),
        "full_name": " ".join(parts) or None,
        "dob": dcc.get("dob"),
        "uvci": entry.get("ci"),
        "issuer": entry.get("is"),
        "country": entry.get("co"),
    }
    if kind == "v":
        mp = entry.get("mp")
        vac = vaccine_for_mp(mp) if isinstance(mp, str) else None
        out["dose"] = entry.get("dn")
        out["doses"] = entry.get("sd")
        out["date"] = entry.get("dt")
        out["vaccine"] = vac.display if vac else mp
        out["vaccine_code"] = mp
    elif kind == "t":  # what a checkpoint must see of a test: its result and when it was
        out["test_result"] = entry.get("tr")
        out["sampled"] = entry.get("sc")
    elif kind == "r":  # a recovery is valid from df to du, whatever the credential's exp
        out["valid_from"] = entry.get("df")
        out["valid_until"] = entry.get("du")
    return out


def at_midnight_utc(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)
