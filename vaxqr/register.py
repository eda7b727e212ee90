"""The population register, indexed: a population export (:data:`POPULATION_COLUMNS`)
read into sorted int64 IDs with columnar attributes (:class:`Register`), and the
block-wise CSV reading that the reconcile driver's passes over the vaccination file
share with it."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import partial
from itertools import islice
from operator import itemgetter
from pathlib import Path
from typing import IO, Final

import numpy as np
import numpy.typing as npt

from .citizen import strip_diacritics
from .errors import StorageError, ValidationError
from .fileio import (
    CSV_UTF8_HINT,
    UTF8_BOM,
    check_csv_start,
    csv_delimiter,
    open_quote_error,
    rows_taken_in,
)
from .matching import (
    _PROVINCE_CODES,
    Person,
    VaccRecord,
    _date,
    _date_ord,
    _id_problem,
    _key,
    _norm,
    _norm_cached,
    _sex,
    _sex_code,
    _unwritable,
)

__all__ = ["POPULATION_COLUMNS", "Register"]

POPULATION_COLUMNS: Final = ("id_number", "full_name", "sex", "dob", "commune_code")
"""Required columns of the population export (any order, more columns are ignored)."""
BLOCK: Final = 1_000  # lines parsed at a time (small: short-lived rows stay in cache)
# The longest record (a line, or the lines of a quoted field) read: ~150 bytes in a real
# export. Longer is no record, and is refused before it is read whole: a block of lines is
# decoded and parsed at ~7 bytes of memory a byte (a 200 MB line: 1.4 GB).
MAX_RECORD: Final = 64 * 1024
# A block of lines far longer than records is parsed in parts of about this size (a real
# block of BLOCK lines is ~150 KB), so that what it takes stays bounded whatever the file.
BLOCK_BYTES: Final = 1 << 20


# --------------------------------------------------------------------------- CSV reading


def _open(path: Path) -> IO[bytes]:
    try:
        return path.open("rb")
    except OSError as exc:
        raise StorageError(f"cannot read {path}: {exc.strerror}") from exc


def _header(path: Path, fh: IO[bytes], required: Sequence[str],
            wanted: Sequence[str]) -> tuple[list[int], int, str, int]:
    """Column positions of ``wanted`` (-1 if absent), the offset of the first data row,
    the field separator (:func:`vaxqr.fileio.csv_delimiter`) and the number of columns."""
    raw = fh.readline(MAX_RECORD + 1)
    if len(raw) > MAX_RECORD:
        raise _too_long(path, 0, "the header line")
    check_csv_start(path, raw[:4])
    if raw.startswith(UTF8_BOM):
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationError(f"{path} is not UTF-8 (in the header)",
                              hint=CSV_UTF8_HINT) from None
    delimiter = csv_delimiter(text, required)
    try:
        names = [h.strip().lower() for h in next(csv.reader([text], delimiter=delimiter), [])]
    except csv.Error as exc:  # a line break alone inside the header line: a lone CR
        raise ValidationError(
            f"{path}: malformed CSV header ({exc})",
            hint="end lines with LF or CRLF (a file saved as 'CSV (Macintosh)' ends them "
                 "with CR alone)") from None
    if not any(names):
        raise ValidationError(f"{path}: the first line is blank; the CSV header must be there",
                              hint="expected header: " + ",".join(wanted))
    missing = [c for c in required if c not in names]
    if missing:
        raise ValidationError(f"{path}: the CSV header lacks {', '.join(missing)}",
                              hint="expected header: " + ",".join(wanted))
    return ([names.index(c) if c in names else -1 for c in wanted], fh.tell(), delimiter,
            len(names))


def _too_long(path: Path, offset: int, what: str) -> ValidationError:
    return ValidationError(
        f"{path}: {what} (at byte {offset}) is longer than {MAX_RECORD // 1024} KiB: not a "
        "CSV of records", hint="export the records again as CSV UTF-8 (a quote opened in a "
        "cell and never closed makes every line after it one cell)")


def _blocks(fh: IO[bytes], start: int, lines: int,
            path: Path | None = None) -> Iterator[tuple[int, bytes]]:
    """Consecutive (offset, bytes) blocks of about ``lines`` lines from ``start``, each
    ending on a record boundary (an even number of quote characters: a quoted field with a
    line break inside stays in one block), and of about :data:`BLOCK_BYTES` at most when
    its lines are far longer than records. With ``path`` (reading the file itself), a line
    or a quoted field's lines longer than :data:`MAX_RECORD` are refused (ValidationError)
    before they are read whole."""
    fh.seek(start)
    pos = start
    limit = MAX_RECORD + 1 if path is not None else -1
    read = iter(partial(fh.readline, limit), b"")
    while True:
        got = list(islice(read, lines))
        if not got:
            return
        if path is not None and max(map(len, got)) > MAX_RECORD:
            at = next(i for i, line in enumerate(got) if len(line) > MAX_RECORD)
            raise _too_long(path, pos + sum(map(len, got[:at])), "a line")
        if sum(map(len, got)) > BLOCK_BYTES:
            for part in _parts(got, pos, path, fh):
                yield pos, part
                pos += len(part)
            if not got:
                continue
        data = b"".join(got)
        if data.count(b'"') % 2:
            parts = [data]
            size = len(got[-1])  # counted from the last line (those before: each within)
            while True:
                more = fh.readline(limit)
                size += len(more)
                if path is not None and size > MAX_RECORD:
                    raise open_quote_error(path, _quote_line(fh, pos, got), None,
                                           "written")
                parts.append(more)
                if not more or more.count(b'"') % 2:
                    break
            data = b"".join(parts)
        yield pos, data
        pos += len(data)


def _parts(got: list[bytes], pos: int, path: Path | None, fh: IO[bytes]
           ) -> Iterator[bytes]:
    """Whole records of ``got`` (lines from ``pos``, a record boundary) joined in parts of
    :data:`BLOCK_BYTES` or more, each ending on a record boundary; the lines left after the
    last part stay in ``got``. With ``path``, a quoted field's lines longer than
    :data:`MAX_RECORD` are refused."""
    first = size = run = 0
    quoted = False
    for i, line in enumerate(got):
        size += len(line)
        if line.count(b'"') % 2:
            quoted = not quoted
            run = 0
        if quoted:
            run += len(line)
            if path is not None and run > MAX_RECORD:
                raise open_quote_error(path, _quote_line(fh, pos, got[first:i + 1]), None,
                                       "written")
        elif size >= BLOCK_BYTES:
            part = b"".join(got[first:i + 1])
            yield part
            pos += len(part)
            first, size = i + 1, 0
    del got[:first]


def _quote_line(fh: IO[bytes], start: int, lines: Sequence[bytes]) -> int:
    """The line of the file ``fh`` (from 1) on which the quote still open after ``lines``
    (read from byte ``start``, a record boundary) was opened."""
    opened, odd = 0, False
    for i, line in enumerate(lines):
        if line.count(b'"') % 2:
            odd = not odd
            if odd:
                opened = i
    return _lines_before(fh, start) + opened + 1


def _iter_rows(path: Path, offset: int, data: bytes, delimiter: str = ","
               ) -> Iterator[list[str]]:
    """The non-blank CSV rows of one block (blank lines are skipped, as csv.DictReader and
    so ``vaxqr issue`` skip them)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationError(
            f"{path} is not UTF-8 (byte {offset + exc.start})",
            hint=CSV_UTF8_HINT,
        ) from None
    try:
        yield from filter(None, csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    except csv.Error as exc:
        raise ValidationError(f"{path}: malformed CSV near byte {offset} ({exc})") from None


def _rows(path: Path, offset: int, data: bytes, width: int, delimiter: str = ",",
          columns: int = 0, read: Sequence[int] | None = None) -> list[list[str]]:
    """The rows of one block, padded to at least ``width`` fields. Given the header's
    number of ``columns`` (the first pass over a file), a row over several lines of the
    file is refused (:func:`_check_open_quotes`; ``read``: the columns that matter)."""
    rows = list(_iter_rows(path, offset, data, delimiter))
    # a row over several lines needs a quote; every row on its own line: one row a line
    if (columns and b'"' in data
            and len(rows) != data.count(b"\n") + (not data.endswith(b"\n"))):
        _check_open_quotes(path, offset, data, columns, delimiter, read)
    if rows and min(map(len, rows)) < width:
        rows = [r if len(r) >= width else r + [""] * (width - len(r)) for r in rows]
    return rows


def _check_open_quotes(path: Path, offset: int, data: bytes, columns: int, delimiter: str,
                       read: Sequence[int] | None) -> None:
    """Raise :func:`~vaxqr.fileio.open_quote_error` for the first row of the block ``data``
    (at byte ``offset``) that runs over several lines of the file and holds rows a quote
    not closed took in (:func:`~vaxqr.fileio.rows_taken_in`; ``read``: the columns that are
    read, None: all): those people would be left out of the counts and files in silence."""
    reader = csv.reader(io.StringIO(data.decode("utf-8"), newline=""), delimiter=delimiter)
    before = 0  # the block's lines read before the row
    for row in reader:
        if (row and reader.line_num - before > 1
                and rows_taken_in(row, columns, delimiter, read)):
            lines = _lines_before(path, offset)
            raise open_quote_error(path, lines + before + 1, lines + reader.line_num,
                                   "written")
        before = reader.line_num


def _lines_before(source: Path | IO[bytes], offset: int) -> int:
    """How many lines of the file ``source`` (a path, or an open file: read from its
    start) end before byte ``offset``."""
    if isinstance(source, Path):
        with _open(source) as fh:
            return _lines_before(fh, offset)
    source.seek(0)
    count = 0
    while offset > 0:
        part = source.read(min(offset, 1 << 20))
        if not part:
            break
        count += part.count(b"\n")
        offset -= len(part)
    return count


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
UNUSABLE_MAX: Final = 100_000  # ~10 MB of skipped rows remembered by ID number


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
    # ID number -> (row, why) of a row skipped as unusable although its ID number is valid
    # (an impossible date of birth, say): a record with that ID is then told that the
    # register's entry is what to correct, not the number on the card (at most UNUSABLE_MAX)
    unusable: Mapping[int, tuple[int, str]] = field(default_factory=dict)

    @classmethod
    def from_csv(cls, path: Path, *, today: date) -> Register:
        """Read a population export (:data:`POPULATION_COLUMNS`, UTF-8 with or without
        BOM). Unusable rows (bad ID, empty name, unknown sex, impossible or future DOB, no
        commune) are skipped and counted; of a duplicated ID the first row is kept."""
        names: dict[str, int] = {}
        communes: dict[str, int] = {}
        problems: list[tuple[int, str]] = []
        unusable: dict[int, tuple[int, str]] = {}
        parts: list[tuple[I64, I32, npt.NDArray[np.bool_], I32, npt.NDArray[np.int16]]] = []
        today_ord = today.toordinal()
        n = invalid = 0
        with _open(path) as fh:
            cols, start, delimiter, columns = _header(path, fh, POPULATION_COLUMNS,
                                                      POPULATION_COLUMNS)
            get, width = _getter(cols)
            for offset, data in _blocks(fh, start, BLOCK, path):
                rows = _rows(path, offset, data, width, delimiter, columns, cols)
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
                        valid_id = int(ids[k]) >= 0
                        if len(problems) < 20 or (valid_id and len(unusable) < UNUSABLE_MAX):
                            why = _register_problem(c_id[k], nm[k], c_sex[k], c_dob[k],
                                                    com[k], today)
                            if len(problems) < 20:
                                problems.append((n + k + 1, why))
                            if valid_id and len(unusable) < UNUSABLE_MAX:
                                unusable.setdefault(int(ids[k]), (n + k + 1, why))
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
                   duplicates=int((~keep).sum()), problems=tuple(problems),
                   unusable=unusable)

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

