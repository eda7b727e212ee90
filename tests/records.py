"""Seeded synthetic citizen records for issue tests (synthetic ID numbers only)."""

from __future__ import annotations

import csv
import random
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

SURNAMES = ["Nguyễn", "Trần", "Lê", "Phạm", "Huỳnh", "Phan", "Võ", "Đặng", "Bùi", "Đỗ", "Hồ",
            "Ngô", "Dương", "Lý", "Trương"]
MIDDLE = ["Văn", "Thị", "Hữu", "Đức", "Ngọc", "Minh", "Thanh", "Quốc"]
GIVEN = ["An", "Bình", "Hoà", "Thuý", "Hồng", "Đạt", "Khoa", "Quỳnh", "Tuấn", "Ánh", "Phương",
         "Dũng", "Hương", "Trường", "Nghĩa", "Yến"]
VACCINES = ["astrazeneca", "sputnik", "verocell", "pfizer", "moderna", "hayatvax", "abdala"]
HEADER = ["full_name", "sex", "dob", "id_number", "dose_number", "total_doses",
          "vaccination_date", "vaccine", "lot", "site"]


def make_id(rng: random.Random, dob: date, sex: str, province: str = "091") -> str:
    century = (dob.year // 100) - 19
    digit = 2 * century + (1 if sex == "F" else 0)
    return f"{province}{digit}{dob.year % 100:02d}{rng.randrange(10**6):06d}"


def record(rng: random.Random) -> list[str]:
    sex = rng.choice("MF")
    dob = date(1940, 1, 1) + timedelta(days=rng.randrange(365 * 63))
    total = 2
    dose = rng.choice([1, 2])
    vdate = date(2021, 6, 1) + timedelta(days=rng.randrange(180))
    name = f"{rng.choice(SURNAMES)} {'Thị' if sex == 'F' else 'Văn'} {rng.choice(GIVEN)}"
    dob_text = dob.isoformat() if rng.random() < 0.5 else dob.strftime("%d/%m/%Y")
    return [name, "Nữ" if sex == "F" else "Nam", dob_text, make_id(rng, dob, sex), str(dose),
            str(total), vdate.isoformat(), rng.choice(VACCINES), f"LOT{rng.randrange(999)}",
            "Trạm Y tế xã Dương Tơ"]


def write_csv(path: Path, rows: list[list[str]], *, bom: bool = False) -> Path:
    with path.open("w", encoding="utf-8-sig" if bom else "utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(HEADER)
        w.writerows(rows)
    return path


def citizens(rng: random.Random, n: int) -> Iterator[list[str]]:
    """``n`` records of ``n`` different citizens: an ID number drawn again (about one in
    2,500 pairs of a 100,000-row file share sex, birth year and 6 random digits) moves to
    the next free one, so the draws, and so the other rows, stay those of :func:`record`."""
    seen: set[str] = set()
    for _ in range(n):
        row = record(rng)
        while row[3] in seen:
            row[3] = row[3][:6] + f"{(int(row[3][6:]) + 1) % 10**6:06d}"
        seen.add(row[3])
        yield row


def good_rows(n: int, seed: int = 1) -> list[list[str]]:
    """``n`` valid records, one per citizen (``vaxqr issue`` signs one credential each)."""
    return list(citizens(random.Random(seed), n))
