#!/usr/bin/env python3
"""Generate a synthetic Kiên Giang province for ``vaxqr reconcile``: a population register,
vaccination records with planted errors of every class, and the ground truth per record.

    .venv/bin/python scripts/gen_population.py OUT_DIR [--people 1800000]
        [--records 2000000] [--seed 1] [--error-rate 0.08] [--minors 0.30]

Writes ``population.csv`` (``id_number,full_name,sex,dob,commune_code``),
``vaccinations.csv`` (the ``vaxqr issue`` columns) and ``truth.csv`` (``row,class,planted``:
the expected class of every data row, and every error planted in it). Seeded: the same
arguments give the same files.

* ID numbers are valid by the rules of ``vaxqr.citizen``: a province code of birth
  registration (091 Kiên Giang for most, others from the 63), the century/sex digit, the
  year digits, six random digits; unique.
* Names: weighted surnames (Nguyễn, Trần, Lê, Phạm, Huỳnh/Hoàng, Phan, Vũ/Võ, Đặng, Bùi, Đỗ,
  Hồ, Ngô, Dương, Lý), middle names (Văn, Thị, Hữu, Đức, Ngọc, …), given names with tones,
  including oa/oe/uy syllables (Hoà/Hòa, Thuý/Thúy) written in the old or the new tone
  style per person, as registers do.
* 144 communes with 5-digit codes (30757…31186, including 30760 and 31078).
* ``id_not_found`` is half a one-digit typo in the random part of the person's ID (so
  reconcile can suggest the right one), half a fresh unused ID.
* Clean records vary the harmless things reconcile must normalise (upper case, NFD, extra
  spaces, DD/MM/YYYY dates, Nu/M/F, vaccine aliases); planted errors are one class per
  record, plus a share of records with two errors of which the class earlier in
  ``vaxqr.reconcile.CLASSES`` is expected (name before DOB before sex).
"""

from __future__ import annotations

import argparse
import bisect
import csv
import random
import sys
import time
import unicodedata
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from vaxqr.citizen import PROVINCES, place_tones, strip_diacritics  # noqa: E402
from vaxqr.credential import VACCINES  # noqa: E402

REPORT_DATE = date(2021, 11, 23)  # the plan's report date (Kế hoạch 225/KH-UBND)
LAST_DATE = date(2022, 3, 31)  # the records run until here
FIRST_DATE = date(2021, 3, 8)  # Vietnam's first COVID-19 vaccination
COMMUNES = [str(30757 + 3 * i) for i in range(144)]  # includes 30760 and 31078

SURNAMES = [("Nguyễn", 38), ("Trần", 11), ("Lê", 9.5), ("Phạm", 7), ("Huỳnh", 3),
            ("Hoàng", 2), ("Phan", 4.5), ("Vũ", 2), ("Võ", 2), ("Đặng", 2), ("Bùi", 2),
            ("Đỗ", 1.4), ("Hồ", 1.3), ("Ngô", 1.3), ("Dương", 1), ("Lý", 0.5)]
MIDDLE_M = [("Văn", 40), ("Hữu", 8), ("Đức", 8), ("Minh", 8), ("Quốc", 6), ("Thanh", 6),
            ("Hoàng", 5), ("Ngọc", 5), ("Công", 5), ("Tấn", 5), ("Hoà", 2), ("Chí", 2)]
MIDDLE_F = [("Thị", 50), ("Ngọc", 10), ("Kim", 8), ("Thanh", 6), ("Mỹ", 5), ("Hồng", 5),
            ("Bích", 4), ("Thu", 4), ("Thuý", 4), ("Diễm", 2), ("Ánh", 2)]
GIVEN_M = ["An", "Bình", "Cường", "Dũng", "Đạt", "Hải", "Hùng", "Huy", "Khánh", "Long",
           "Minh", "Nam", "Phúc", "Quang", "Sơn", "Tài", "Thắng", "Toàn", "Trí", "Tuấn",
           "Việt", "Vũ", "Hoà", "Thuỵ", "Khoa", "Lộc", "Nghĩa", "Phát", "Thiện", "Quý",
           "Hiếu", "Trọng", "Giàu", "Nhân", "Quyết"]
GIVEN_F = ["Thuý", "Thuỷ", "Hoà", "Loan", "Hoa", "Lan", "Hương", "Hằng", "Ngọc", "Trang",
           "Linh", "Nhung", "Phượng", "Yến", "Thảo", "Vy", "Ánh", "Hồng", "Nga", "Oanh",
           "Diệu", "Mai", "Huệ", "Xuân", "Tuyết", "Nguyệt", "Quyên", "Tuý", "Hạnh", "Dung",
           "Giang", "Quỳnh", "Khuê", "Nhàn"]
VACCINE_MIX = [("astrazeneca", 34), ("verocell", 30), ("pfizer", 20), ("moderna", 8),
               ("sputnik", 3), ("abdala", 2), ("hayatvax", 1), ("janssen", 2)]
ALIASES = {"astrazeneca": ["astrazeneca", "AstraZeneca", "AZ", "Vaxzevria"],
           "verocell": ["verocell", "Vero Cell", "Sinopharm"],
           "pfizer": ["pfizer", "Pfizer", "Comirnaty"], "moderna": ["moderna", "Spikevax"],
           "sputnik": ["sputnik", "Sputnik-V"], "abdala": ["abdala"],
           "hayatvax": ["hayatvax"], "janssen": ["janssen"]}
SITES = ["Trạm Y tế", "Trường THCS", "Nhà văn hoá ấp", "Bệnh viện đa khoa"]

ERRORS = ["id_invalid", "id_not_found", "duplicate_dose", "name_tone_style",
          "name_no_diacritics", "name_order", "name_differs", "dob_swapped", "dob_differs",
          "sex_differs", "dose_sequence"]
ORDER = {c: i for i, c in enumerate([*ERRORS, "matched"])}
# second errors for the precedence checks: (first, second), the first is expected (but
# name_tone_style, auto-fixed, gives way to the second)
PAIRS = [("name_no_diacritics", "dob_differs"), ("name_order", "sex_differs"),
         ("name_differs", "dob_swapped"), ("name_tone_style", "dob_differs"),
         ("dob_differs", "sex_differs"), ("dob_swapped", "sex_differs"),
         ("name_no_diacritics", "sex_differs"), ("id_not_found", "name_differs"),
         ("duplicate_dose", "name_order")]


@dataclass(slots=True)
class Person:
    id_number: str
    name: str  # as in the register (old or new tone style)
    female: bool
    dob: date
    commune: str


def _weighted(pairs: list[tuple[str, float]]) -> tuple[list[str], list[float]]:
    items, weights = zip(*pairs, strict=True)
    total, acc, cum = sum(weights), 0.0, []
    for w in weights:
        acc += w / total
        cum.append(acc)
    return list(items), cum


class Gen:
    """The seeded generator; one instance per province."""

    def __init__(self, seed: int, minors: float = 0.30) -> None:
        self.r = random.Random(seed)
        # age bands: minors, 18-59, 60+ (the adults split 58:12, as in the default 30:58:12)
        self.bands = (minors, round(minors + (1 - minors) * 58 / 70, 12))
        self.used: set[int] = set()
        self.surnames = _weighted(SURNAMES)
        self.mid_m, self.mid_f = _weighted(MIDDLE_M), _weighted(MIDDLE_F)
        self.vaccines = _weighted(VACCINE_MIX)
        others = [c for c in PROVINCES if c != "091"]
        self.provinces = ["091"] * 85 + [self.r.choice(others) for _ in range(15)]
        sizes = [self.r.uniform(0.3, 3.0) for _ in COMMUNES]
        self.communes = _weighted(list(zip(COMMUNES, sizes, strict=True)))
        self._styled: dict[tuple[str, bool], str] = {}

    def pick(self, table: tuple[list[str], list[float]]) -> str:
        items, cum = table
        return items[min(bisect.bisect(cum, self.r.random()), len(items) - 1)]

    def new_id(self, female: bool, dob: date, province: str | None = None) -> str:
        r = self.r
        d4 = 2 * ((dob.year - 1900) // 100) + (1 if female else 0)
        head = f"{province or r.choice(self.provinces)}{d4}{dob.year % 100:02d}"
        while True:
            n = int(head + f"{r.randrange(1_000_000):06d}")
            if n not in self.used:
                self.used.add(n)
                return f"{n:012d}"

    def name(self, female: bool) -> str:
        r = self.r
        parts = [self.pick(self.surnames), self.pick(self.mid_f if female else self.mid_m)]
        if r.random() < 0.2:
            parts.append(self.pick(self.mid_f if female else self.mid_m))
        parts.append(r.choice(GIVEN_F if female else GIVEN_M))
        if parts[-1] == parts[-2]:
            parts.pop(-2)
        full = " ".join(parts)
        old = r.random() < 0.5
        key = (full, old)
        styled = self._styled.get(key)
        if styled is None:
            styled = self._styled[key] = place_tones(full, style="old" if old else "new")
        return styled

    def person(self) -> Person:
        r = self.r
        female = r.random() < 0.5
        band = r.random()
        if band < self.bands[0]:
            age = r.randrange(0, 18)
        elif band < self.bands[1]:
            age = r.randrange(18, 60)
        else:
            age = r.randrange(60, 95)
        dob = REPORT_DATE - timedelta(days=365 * age + r.randrange(365))
        return Person(self.new_id(female, dob), self.name(female), female, dob,
                      self.pick(self.communes))


def _date_text(d: date, r: random.Random) -> str:
    x = r.random()
    if x < 0.6:
        return d.isoformat()
    if x < 0.9:
        return f"{d.day:02d}/{d.month:02d}/{d.year}"
    return f"{d.day}/{d.month}/{d.year}"


def _swapped_text(d: date, r: random.Random) -> str:
    """The date with day and month swapped, as written (may not be a real date)."""
    if r.random() < 0.5:
        return f"{d.year}-{d.day:02d}-{d.month:02d}"
    return f"{d.month:02d}/{d.day:02d}/{d.year}"


def _has_style_syllable(name: str) -> bool:
    return place_tones(name, style="old") != place_tones(name, style="new")


def _sex_text(female: bool, r: random.Random) -> str:
    x = r.random()
    if x < 0.95:
        return "Nữ" if female else "Nam"
    return r.choice(["Nu", "F", "nữ"]) if female else r.choice(["M", "NAM", "nam"])


def _noisy_name(name: str, r: random.Random) -> str:
    """A harmless variant of the register's name (normalisation must absorb it)."""
    x = r.random()
    if x < 0.02:
        return name.upper()
    if x < 0.03:
        return unicodedata.normalize("NFD", name)
    if x < 0.04:
        return "  " + name.replace(" ", "  ") + " "
    return name


class Rec:
    __slots__ = ("cls", "date", "dose", "fields", "key", "person", "planted", "vkey")

    def __init__(self, person: Person, fields: list[str], dose: int, when: date,
                 key: float, vkey: str) -> None:
        self.person, self.fields, self.dose, self.date, self.key = person, fields, dose, \
            when, key
        self.vkey = vkey
        self.cls = "matched"
        self.planted: list[str] = []


def _mangle_id(idn: str, r: random.Random) -> str:
    x = r.randrange(6)
    if x == 0:
        return idn.lstrip("0") if idn.startswith("0") else idn[1:]  # spreadsheet ate a zero
    if x == 1:
        return idn[:9]  # 9 digits, like an old CMND
    if x == 2:
        return idn[:5] + "O" + idn[6:]  # letter O for a zero
    if x == 3:
        return r.choice(["003", "005", "009", "013", "099"]) + idn[3:]  # no such province
    if x == 4:
        return idn + str(r.randrange(10))
    return idn[:6] + " " + idn[6:]


def _other_name(name: str, female: bool, r: random.Random) -> str:
    words = name.split(" ")
    pool = GIVEN_F if female else GIVEN_M
    old = strip_diacritics(words[-1]).casefold()
    while True:
        g = r.choice(pool)
        if strip_diacritics(g).casefold() != old and g not in words:
            return " ".join([*words[:-1], g])


def _plant(g: Gen, rec: Rec, cls: str, by_key: dict[tuple[str, int], Rec]) -> bool:
    """Apply one error to a record; False when this record cannot carry it."""
    r, p, f = g.r, rec.person, rec.fields
    if cls == "id_invalid":
        f[3] = _mangle_id(p.id_number, r)
    elif cls == "id_not_found":
        if r.random() < 0.5:  # a typo in the random digits, unless it is someone's ID
            i = r.randrange(6, 12)
            typo = p.id_number[:i] + str((int(p.id_number[i]) + r.randrange(1, 10)) % 10) \
                + p.id_number[i + 1:]
            if int(typo) not in g.used:
                g.used.add(int(typo))
                f[3] = typo
        if f[3] == p.id_number:
            f[3] = g.new_id(p.female, p.dob, p.id_number[:3])
    elif cls == "name_tone_style":
        if not _has_style_syllable(p.name):
            return False
        old = place_tones(p.name, style="old")
        f[0] = place_tones(p.name, style="new") if old == p.name else old
    elif cls == "name_no_diacritics":
        stripped = strip_diacritics(p.name)
        if stripped == p.name:
            return False
        if r.random() < 0.7:
            f[0] = stripped
        else:  # one word typed without its marks
            words = p.name.split(" ")
            idx = [i for i, w in enumerate(words) if strip_diacritics(w) != w]
            i = r.choice(idx)
            words[i] = strip_diacritics(words[i])
            f[0] = " ".join(words)
    elif cls == "name_order":
        words = p.name.split(" ")
        if len(set(words)) < 2:
            return False
        f[0] = " ".join([words[-1], *words[:-1]]) if r.random() < 0.7 else \
            " ".join([*words[1:], words[0]])
    elif cls == "name_differs":
        f[0] = _other_name(p.name, p.female, r)
    elif cls == "dob_swapped":
        if p.dob.day == p.dob.month:
            return False
        f[2] = _swapped_text(p.dob, r)
    elif cls == "dob_differs":
        while True:
            d = p.dob + timedelta(days=r.choice([-1, 1]) * r.randrange(1, 800))
            if d != p.dob and (d.year, d.month, d.day) != (p.dob.year, p.dob.day, p.dob.month):
                break
        f[2] = _date_text(d, r) if r.random() < 0.9 else r.choice(["", "31/02/1990", "?"])
    elif cls == "sex_differs":
        f[1] = _sex_text(not p.female, r)
    elif cls == "dose_sequence":
        prev = by_key.get((p.id_number, rec.dose - 1))
        if rec.dose < 2 or prev is None or prev.planted:
            return False
        interval = VACCINES[prev.vkey].min_interval_days
        if r.random() < 0.5 or interval < 2:
            d = prev.date - timedelta(days=r.randrange(1, 30))
        else:
            d = prev.date + timedelta(days=r.randrange(0, interval))
        if d < FIRST_DATE or d < p.dob:
            return False
        rec.date = d
        f[6] = _date_text(d, r)
    else:
        raise ValueError(cls)
    rec.planted.append(cls)
    # the first class that applies; name_tone_style only alone (auto-fixed), else the
    # record has the class of its other error
    others = [c for c in rec.planted if c != "name_tone_style"]
    if rec.cls != "duplicate_dose":
        rec.cls = min(others or rec.planted, key=ORDER.__getitem__)
    return True


@dataclass(frozen=True, slots=True)
class Generated:
    population: Path
    vaccinations: Path
    truth: Path
    people: int
    records: int
    planted: dict[str, int]


def generate(out: Path, *, people: int = 1_800_000, records: int = 2_000_000, seed: int = 1,
             error_rate: float = 0.08, pair_rate: float = 0.15,
             minors: float = 0.30) -> Generated:
    """Write a province into ``out``; see the module docstring. ``minors``: the share of
    people under 18 (0 for a register of adults, as Kiên Giang's coverage base is)."""
    out.mkdir(parents=True, exist_ok=True)
    g = Gen(seed, minors)
    r = g.r
    persons = [g.person() for _ in range(people)]
    with (out / "population.csv").open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(("id_number", "full_name", "sex", "dob", "commune_code"))
        w.writerows((p.id_number, p.name, "Nữ" if p.female else "Nam", p.dob.isoformat(),
                     p.commune) for p in persons)
    # clean vaccination records, person by person
    recs: list[Rec] = []
    by_key: dict[tuple[str, int], Rec] = {}
    order = list(range(people))
    r.shuffle(order)
    span = (REPORT_DATE - FIRST_DATE).days
    n_target = int(records * (1 - error_rate / len(ERRORS)))  # room for the duplicates
    for i in order:
        if len(recs) >= n_target:
            break
        p = persons[i]
        if (REPORT_DATE - p.dob).days < 12 * 365:
            continue
        vkey = g.pick(g.vaccines)
        vac = VACCINES[vkey]
        x = r.random()
        doses = 1 if vac.doses == 1 or x < 0.35 else (vac.doses if x < 0.95 else vac.doses + 1)
        when = FIRST_DATE + timedelta(days=int(span * r.random() ** 0.6))
        for d in range(1, doses + 1):
            if d > 1:
                when += timedelta(days=vac.min_interval_days + r.randrange(0, 60))
            if when > LAST_DATE:
                break
            total = max(vac.doses, d)
            fields = [_noisy_name(p.name, r), _sex_text(p.female, r), _date_text(p.dob, r),
                      p.id_number, str(d), str(total), _date_text(when, r),
                      r.choice(ALIASES[vkey]) if r.random() < 0.2 else vkey,
                      f"{vkey[:2].upper()}{r.randrange(10000, 99999)}",
                      f"{r.choice(SITES)} {p.commune}"]
            rec = Rec(p, fields, d, when, (when - FIRST_DATE).days + r.random(), vkey)
            recs.append(rec)
            by_key[(p.id_number, d)] = rec
    # planted errors
    extra: list[Rec] = []
    owed: list[str] = []  # classes drawn for records that could not carry them
    for rec in recs:
        if owed and rec.cls == "matched" and rec.person.id_number == rec.fields[3]:
            for cls in owed:
                if _plant(g, rec, cls, by_key):
                    owed.remove(cls)
                    break
            if rec.planted:
                continue
        if r.random() >= error_rate:
            continue
        cls = r.choice(ERRORS)
        if cls == "duplicate_dose":
            if len(recs) + len(extra) >= records:
                continue
            dup = Rec(rec.person, list(rec.fields), rec.dose, rec.date,
                      rec.key + r.uniform(0.5, 40), rec.vkey)
            if r.random() < 0.3:
                dup.fields[8] = f"{dup.fields[8][:2]}{r.randrange(10000, 99999)}"
            dup.cls = "duplicate_dose"
            dup.planted.append("duplicate_dose")
            if r.random() < pair_rate:
                _plant(g, dup, "name_order", by_key)
            extra.append(dup)
            continue
        if not _plant(g, rec, cls, by_key):  # no oa/oe/uy in the name, dose 1, …
            if len(owed) < 64:
                owed.append(cls)  # planted on a later record that fits
            continue
        if r.random() < pair_rate:
            for first, second in PAIRS:
                if first == cls and r.random() < 0.5:
                    _plant(g, rec, second, by_key)
                    break
    # a record whose dose n-1 lost its ID (id_invalid / id_not_found) has no previous dose
    # any more: a planted sequence error on it would be invisible, so it is not planted
    # (checked by _plant through prev.planted). Order the file by date, duplicates later.
    recs.extend(extra)
    recs.sort(key=lambda x: x.key)
    with (out / "vaccinations.csv").open("w", encoding="utf-8", newline="") as fh, \
            (out / "truth.csv").open("w", encoding="utf-8", newline="") as th:
        w = csv.writer(fh, lineterminator="\n")
        t = csv.writer(th, lineterminator="\n")
        w.writerow(("full_name", "sex", "dob", "id_number", "dose_number", "total_doses",
                    "vaccination_date", "vaccine", "lot", "site"))
        t.writerow(("row", "class", "planted"))
        for n, rec in enumerate(recs, 1):
            w.writerow(rec.fields)
            t.writerow((n, rec.cls, "+".join(rec.planted)))
    planted: dict[str, int] = {}
    for rec in recs:
        planted[rec.cls] = planted.get(rec.cls, 0) + 1
    return Generated(out / "population.csv", out / "vaccinations.csv", out / "truth.csv",
                     people, len(recs), planted)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--people", type=int, default=1_800_000)
    ap.add_argument("--records", type=int, default=2_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--error-rate", type=float, default=0.08)
    ap.add_argument("--minors", type=float, default=0.30,
                    help="share of people under 18 (0: a register of adults)")
    a = ap.parse_args(argv)
    t = time.perf_counter()
    res = generate(a.out, people=a.people, records=a.records, seed=a.seed,
                   error_rate=a.error_rate, minors=a.minors)
    print(f"{res.people:,} people, {res.records:,} records in "
          f"{time.perf_counter() - t:.1f} s → {a.out}")
    for cls in [*ERRORS, "matched"]:
        print(f"  {cls:20} {res.planted.get(cls, 0):>10,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
