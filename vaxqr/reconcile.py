"""Reconciling: match vaccination records to the population register (9438/BYT-CNTT).

The classes and the pure check of one record are in :mod:`vaxqr.matching`, the indexed
register in :mod:`vaxqr.register`; their public names are re-exported here.

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
import time
from bisect import bisect_left
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any, Final, NamedTuple, TypeVar

import numpy as np
import numpy.typing as npt

from .citizen import DAY_FIRST, MONTH_FIRST, date_order
from .errors import DiskFullError, StorageError, full_disk_hint
from .fileio import (
    UTF8_BOM,
    atomic_open,
    check_unchanged,
    ensure_private_dir,
    file_identity,
    no_dir_left_behind,
)
from .issue import COLUMNS, REQUIRED, month_first_error
from .matching import (
    _NO_CONTEXT,
    _SEX_WORD,
    CLASSES,
    CLEAN,
    DoseContext,
    DoseRef,
    Match,
    Person,
    PreviousDose,
    VaccRecord,
    _date_ord,
    _dose_fields,
    _interval,
    _iso_ord,
    _norm,
    _sex_code,
    _small_int,
    classify,
    dose_context,
)
from .register import (
    BLOCK,
    I32,
    I64,
    POPULATION_COLUMNS,
    Register,
    _blocks,
    _getter,
    _header,
    _open,
    _rows,
    _valid_ids,
)
from .safetext import row_label, spreadsheet_cell

__all__ = [
    "CLASSES",
    "CLEAN",
    "COVERAGE_COLUMNS",
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

MATCHED_COLUMNS: Final = (*COLUMNS, "source_row")
MISMATCH_COLUMNS: Final = ("row", "spreadsheet_row", "class", "id_number", "full_name",
                           "register_full_name", "sex", "register_sex", "dob",
                           "register_dob", "dose_number", "total_doses", "vaccination_date",
                           "vaccine",
                           "register_commune_code", "reason", "fix")
COVERAGE_COLUMNS: Final = ("commune_code", "people", "adults", "dose1", "dose1_rate", "dose2",
                            "dose2_rate", "dose1_all_ages", "dose2_all_ages")
CHUNK: Final = 50_000  # rows a pass-2 task classifies
PARALLEL_MIN_BYTES: Final = 4 << 20  # smaller inputs are classified in-process


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
    delimiter: str = ","  # the file's field separator (csv_delimiter)


def _dose_code(text: str) -> int:
    d = _small_int(text)
    return d if d is not None else -1


def _scan(path: Path) -> _Scan:
    parts: list[list[npt.NDArray[Any]]] = []
    chunks: list[tuple[int, int, int, int]] = []
    n = 0
    with _open(path) as fh:
        cols, start, delimiter, columns = _header(path, fh, REQUIRED, COLUMNS)
        get, width = _getter([cols[3], cols[4], cols[6], cols[7], cols[2]])
        read = [c for c in cols if c >= 0]
        chunk_row, chunk_pos = 0, start
        day_first = False
        month_first: tuple[int, str, str] | None = None  # (row, column, value), the first
        for offset, data in _blocks(fh, start, BLOCK, path):
            # the columns vaxqr reads (as issue's first pass: an address over lines, in
            # a column of the clerk's own, is one row there and here)
            rows = _rows(path, offset, data, width, delimiter, columns, read)
            if rows:
                c_id, c_dose, c_date, c_vac, c_dob = zip(*map(get, rows), strict=True)
                for column, values in (("dob", c_dob), ("vaccination_date", c_date)):
                    if day_first:
                        break
                    orders = {v: date_order(v) for v in set(values)}  # few distinct dates
                    day_first = DAY_FIRST in orders.values()
                    if month_first is None and MONTH_FIRST in orders.values():
                        k = min(i for i, v in enumerate(values) if orders[v] == MONTH_FIRST)
                        month_first = (n + k + 1, column, values[k].strip())
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
    if month_first is not None and not day_first:  # see issue._DateOrder
        raise month_first_error(path, *month_first, "checked", "written")
    cat = [np.concatenate([p[i] for p in parts]) if parts else np.zeros(0, dtype=t)
           for i, t in enumerate((np.int64, np.int16, np.int32, np.int16))]
    ids, dose, vdate, interval = cat
    return _Scan(cols, chunks, ids, dose, vdate, interval, delimiter)


@dataclass(frozen=True, slots=True, eq=False)
class _Context:
    """Per row (0-based): 1-based row of the record kept for the same (ID, dose) when that
    is another (0: none) and whether that one is good (clean on its own), and the kept row
    of the previous dose (0: none), its date ordinal and minimum interval (every record of
    a dose has it, as :func:`dose_context` gives it); register position."""

    dup_of: I32
    dup_good: npt.NDArray[np.bool_]
    prev_row: I32
    prev_date: I32
    prev_interval: npt.NDArray[np.int16]
    reg_pos: I32


def _contexts(scan: _Scan, alone: npt.NDArray[np.bool_] | None = None) -> _Context:
    """Duplicates and previous doses (everything but ``reg_pos``, left empty), as
    :func:`dose_context` derives them. Of the records of one (ID, dose), the first good one
    is kept, else the first; without ``alone``, the first. ``alone``: whether a record is
    clean on its own with no previous dose (needed for the records of an (ID, dose) on
    several rows). A record is good when it is ``alone`` and its date is not too soon after
    the kept record of the previous dose (the only check of :func:`classify` that this
    context changes), so the kept records are decided dose by dose, in increasing order."""
    n = len(scan.ids)
    dup_of = np.zeros(n, dtype=np.int32)
    dup_good = np.zeros(n, dtype=bool)
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
        starts = np.flatnonzero(first)
        fkey = key[starts]
        del key
        group = np.cumsum(first, dtype=np.int32) - 1
        del first
        gdose = scan.dose[rows[starts]]
        # the group of the previous dose of the same ID, where there is one
        pg = np.minimum(np.searchsorted(fkey, fkey - 1), len(fkey) - 1)
        has_prev = (fkey[pg] == fkey - 1) & (gdose >= 2)
        del fkey
        kept = starts.copy()  # position (in ``rows``) of the kept record of each group
        good = np.zeros(n, dtype=bool)
        sizes = np.diff(starts, append=len(rows))
        if alone is not None and (sizes > 1).any():
            mpos = np.flatnonzero(sizes[group] > 1)  # the records of a dose on several rows
            mgroup = group[mpos]
            mdose = gdose[mgroup]
            for d in np.unique(mdose).tolist():  # the previous dose's kept one is final
                sel = np.flatnonzero(mdose == d)
                p, g = mpos[sel], mgroup[sel]
                r = rows[p]
                ok = alone[r]
                src = rows[kept[pg[g]]]
                pdate = np.where(has_prev[g], scan.vdate[src], -1)
                ok &= (pdate < 0) | (scan.vdate[r] - pdate >= np.maximum(
                    scan.interval[src], 0))
                good[r] = ok
                at = np.flatnonzero(np.diff(g, prepend=-1))  # each group's first record
                fg = np.minimum.reduceat(np.where(ok, p, len(rows)), at)
                ug = g[at]
                kept[ug] = np.where(fg < len(rows), fg, starts[ug])
        frow = rows[kept]  # the kept record of each group
        dup = np.ones(len(rows), dtype=bool)
        dup[kept] = False
        dup_of[rows[dup]] = frow[group[dup]] + 1
        dup_good[rows[dup]] = good[frow[group[dup]]]
        del dup, starts, kept, sizes
        # every record of a dose gets the previous dose's kept record (when it is dated)
        src = frow[pg[group]]
        hit = has_prev[group] & (scan.vdate[src] >= 0)
        tgt, src = rows[hit], src[hit]
        prev_row[tgt] = src + 1
        prev_date[tgt] = scan.vdate[src]
        prev_interval[tgt] = scan.interval[src]
    return _Context(dup_of, dup_good, prev_row, prev_date, prev_interval,
                    np.zeros(0, dtype=np.int32))


# --------------------------------------------------------------------------- pass 2


def _plain_start(text: str) -> bool:
    """Whether a lot or site cannot be a spreadsheet formula, before or after normalisation
    (which strips leading spaces): empty or starting with a letter or digit, and no ``;`` or
    tab (:func:`spreadsheet_formula` looks at the parts after them)."""
    return not text or (text[0].isalnum() and ";" not in text and "\t" not in text)


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
        rows = _rows(path, offset + at, block, _JOB["width"], _JOB["delimiter"])
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
        # a lot or site that may start with = + - @ once normalised: classify() decides
        fast &= np.fromiter(map(_plain_start, c_lot), dtype=bool, count=m)
        fast &= np.fromiter(map(_plain_start, c_site), dtype=bool, count=m)
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
                prow, fromord(pdate_l[j]), piv_l[j]) if prow else None,
                bool(ctx.dup_good[n]))
        res = classify(rec, person, today=_JOB["today"], context=context)
        if p < 0 and res.cls == "id_not_found":
            skipped = reg.unusable.get(int(c_id[j].strip())) if reg.unusable else None
            near = reg.suggest_id(rec) if skipped is None else None
            if skipped is not None:
                res = res._replace(
                    reason="the population register's entry for this ID number is unusable "
                           f"(register {row_label(skipped[0])}: {skipped[1]})",
                    fix=f"correct {row_label(skipped[0])} of the population register")
            elif near is not None:
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
        out.bad_row((n + 1, n + 2, res.cls, *[spreadsheet_cell(v) for v in (
            rec.id_number, rec.full_name, person.full_name if person else "", rec.sex,
            _SEX_WORD[person.sex] if person else "", rec.dob,
            person.dob.isoformat() if person else "", rec.dose_number, rec.total_doses,
            rec.vaccination_date, rec.vaccine, person.commune_code if person else "",
            res.reason, res.fix)]))
    out.good_rows(filter(None, slots))
    if cov_pos:
        out.cov_pos.append(np.array(cov_pos, dtype=np.int32))
        out.cov_dose.append(np.array(cov_dose, dtype=np.int16))


def _lines(data: bytes) -> list[bytes] | None:
    """The non-blank lines of ``data`` when each is one CSV row: no quote character (so no
    quoted line break) and no carriage return but in CRLF line ends; else None."""
    if b'"' in data:
        return None
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n")
        if b"\r" in data:
            return None
    return list(filter(None, data.split(b"\n")))


def _pick_rows(path: Path, offset: int, data: bytes, first: int, wanted: list[int]
               ) -> Iterator[tuple[int, list[str]]]:
    """(row, fields) of the rows ``wanted`` (0-based, ascending) among the rows of ``data``
    (read at ``offset``; its first row is ``first``), the fields as :func:`_rows` gives
    them. Where the lines are the rows (:func:`_lines`: in the whole chunk, else block by
    block as pass 1 read them) only the wanted lines are parsed; other blocks are parsed
    whole."""
    width: int = _JOB["width"]
    delimiter: str = _JOB["delimiter"]
    k, w = first, 0
    lines = _lines(data)
    parts = [(0, data, lines)] if lines is not None else (
        (at, block, _lines(block)) for at, block in _blocks(io.BytesIO(data), 0, BLOCK))
    for at, block, lines in parts:
        if w == len(wanted):
            return
        if lines is not None:
            end = bisect_left(wanted, k + len(lines), w)
            if end > w:
                yield from zip(wanted[w:end], _rows(path, offset + at, b"\n".join(
                    [lines[r - k] for r in wanted[w:end]]), width, delimiter), strict=True)
            k += len(lines)
        else:
            rows = _rows(path, offset + at, block, width, delimiter)
            end = bisect_left(wanted, k + len(rows), w)
            yield from ((r, rows[r - k]) for r in wanted[w:end])
            k += len(rows)
        w = end


def _probe_chunk(chunk: tuple[int, int, int, int]) -> list[int]:
    """The rows (0-based) of one chunk among ``_JOB["probe"]`` (the records of an (ID,
    dose) on several rows) that are clean on their own: :func:`classify` with no context
    (:func:`_contexts` adds the previous dose's check), so that the kept one of each such
    dose is a good one when there is one."""
    first, n_rows, offset, size = chunk
    probe: I32 = _JOB["probe"]
    lo, hi = np.searchsorted(probe, [first, first + n_rows]).tolist()
    wanted = probe[lo:hi].tolist()
    if not wanted:
        return []
    path: Path = _JOB["path"]
    ctx: _Context = _JOB["ctx"]
    reg: Register = _JOB["register"]
    get = _JOB["get"]
    with _open(path) as fh:
        fh.seek(offset)
        data = fh.read(size)
    good: list[int] = []
    positions = ctx.reg_pos[wanted].tolist()
    for (k, fields), pos in zip(_pick_rows(path, offset, data, first, wanted), positions,
                                strict=True):
        person = reg.person(pos) if pos >= 0 else None
        if classify(VaccRecord(*get(fields)), person, today=_JOB["today"]).clean:
            good.append(k)
    return good


def _keep_good_duplicates(scan: _Scan, contexts: _Context, workers: int) -> _Context:
    """The contexts again, keeping of each (ID, dose) on several rows the first record
    that is good (else the first, as :func:`_contexts` did), dose by dose."""
    dups = np.flatnonzero(contexts.dup_of)
    if not len(dups):
        return contexts
    probe = np.unique(np.concatenate([dups, contexts.dup_of[dups] - 1])).astype(np.int32)
    _JOB["probe"] = probe
    chunks = [c for c in scan.chunks if np.searchsorted(probe, c[0] + c[1]) >
              np.searchsorted(probe, c[0])]
    good = np.zeros(len(scan.ids), dtype=bool)
    for rows in _run(chunks, workers, _probe_chunk):
        good[rows] = True
    return replace(_contexts(scan, good), reg_pos=contexts.reg_pos)


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

    def csv_row(self) -> list[str]:
        """The row of coverage.csv (:data:`COVERAGE_COLUMNS`): :meth:`to_json`'s figures,
        a rate as its exact fraction (empty where there are no adults), the commune code
        escaped for a spreadsheet."""
        doc = self.to_json()
        return [spreadsheet_cell(self.commune_code),
                *("" if doc[k] is None else repr(doc[k]) for k in COVERAGE_COLUMNS[1:])]


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
    warnings: tuple[str, ...] = ()  # for the user (an output directory others can read)

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
            "files": {k: str(self.out_dir / k) for k in OUTPUTS},
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

OUTPUTS: Final = ("matched.csv", "mismatches.csv", "coverage.csv", "report.json")


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
    bom: bool = False,
) -> ReconcileResult:
    """Match a vaccination export against a population export; write ``matched.csv``
    (:data:`MATCHED_COLUMNS`: the ``vaxqr issue`` columns with the register's identity,
    NFC, plus ``source_row``), ``mismatches.csv`` (:data:`MISMATCH_COLUMNS`, every row
    whose class is not ``matched``), ``coverage.csv`` (:data:`COVERAGE_COLUMNS`: one row
    per commune, then the province's ``total``, the figures of the report's coverage) and
    ``report.json`` into ``out_dir``.

    ``report_date`` (default ``today``) is the date the coverage is computed at;
    ``today`` (default: the real date) bounds vaccination dates. ``workers`` processes
    classify chunks of 50,000 rows (default: one per core; 1 runs everything in-process).
    Existing outputs are an error unless ``overwrite``. ``bom``: start the CSV files with
    a UTF-8 byte order mark, which Excel on Windows needs to read them as UTF-8 (``vaxqr
    reconcile`` does, unless ``--no-bom``; ``vaxqr issue`` reads matched.csv either way).
    """
    gc_enabled = gc.isenabled()
    gc.disable()  # millions of short-lived rows and no cycles: collections only cost time
    try:
        with no_dir_left_behind(out_dir), _full_disk_names_outputs(Path(out_dir), overwrite):
            return _reconcile(vaccinations, population, out_dir, report_date=report_date,
                          today=today, workers=workers, overwrite=overwrite,
                          progress=progress, bom=bom)
    finally:
        if gc_enabled:
            gc.enable()


_CHANGED = "nothing was written; run again once the file is complete"


def _output_ids(out_dir: Path) -> dict[str, tuple[int, ...] | None]:
    ids: dict[str, tuple[int, ...] | None] = {}
    for name in OUTPUTS:
        try:
            ids[name] = file_identity(out_dir / name)
        except StorageError:
            ids[name] = None
    return ids


@contextmanager
def _full_disk_names_outputs(out_dir: Path, overwrite: bool) -> Iterator[None]:
    """A full disk's hint says which outputs this run wrote (each is replaced whole, and
    a new one has a new inode): once one is, a run again without ``overwrite`` is refused
    (it exists), so the hint asks for --force then."""
    before = _output_ids(out_dir)
    try:
        yield
    except DiskFullError as exc:
        now = _output_ids(out_dir)
        written = [n for n in OUTPUTS if now[n] is not None and now[n] != before[n]]
        if not written:
            hint = full_disk_hint("run the same command again", "nothing was written")
        else:
            rest = [n for n in OUTPUTS if n not in written]
            hint = full_disk_hint(
                "run the same command again" + ("" if overwrite else " with --force"),
                f"{_and(written)} {'was' if len(written) == 1 else 'were'} written"
                + (f", {_and(rest)} not" if rest else ""))
        raise DiskFullError(exc.message, hint=hint) from exc


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _reconcile(vaccinations: Path, population: Path, out_dir: Path, *,
               report_date: date | None, today: date | None, workers: int | None,
               overwrite: bool, progress: Callable[[str], None] | None,
               bom: bool) -> ReconcileResult:
    started = time.perf_counter()
    today = today or date.today()
    report_date = report_date or today
    out, open_dir = ensure_private_dir(out_dir, "the citizens' names and dates of birth")
    if not overwrite:
        for name in OUTPUTS:
            if (out / name).exists():
                raise StorageError(f"{out / name} already exists",
                                   hint="use --force to overwrite it")
    for p in (vaccinations, population):
        if not p.is_file():
            raise StorageError(f"cannot read {p}: no such file")
    # The records are read in several passes, by offsets the first pass found: a file
    # another program is still writing (or replaces) must not mix two versions.
    before = file_identity(vaccinations)
    n_workers = workers if workers is not None else (os.cpu_count() or 1)
    parallel = n_workers > 1 and "fork" in multiprocessing.get_all_start_methods() \
        and vaccinations.stat().st_size >= PARALLEL_MIN_BYTES
    say = progress or (lambda _msg: None)
    say("register index + record scan")
    if parallel:
        with _pool(1) as pool:
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
                width=width, delimiter=scan.delimiter)
    counts = dict.fromkeys(CLASSES, 0)
    clean = 0
    max_dose = np.zeros(len(register), dtype=np.int16)
    try:
        say("duplicate doses")
        _JOB["ctx"] = _keep_good_duplicates(scan, contexts, n_workers if parallel else 1)
        say("classify + write")
        with atomic_open(out / "matched.csv", overwrite=overwrite) as good, \
                atomic_open(out / "mismatches.csv", overwrite=overwrite) as bad:
            start = UTF8_BOM if bom else b""
            good.write(start + (",".join(MATCHED_COLUMNS) + "\n").encode())
            bad.write(start + (",".join(MISMATCH_COLUMNS) + "\n").encode())
            for part in _run(scan.chunks, n_workers if parallel else 1, _classify_chunk):
                clean += part.clean
                good.write(part.matched)
                bad.write(part.mismatches)
                for k, v in part.counts.items():
                    counts[k] += v
                np.maximum.at(max_dose, part.cov_pos, part.cov_dose)
            check_unchanged(vaccinations, before, _CHANGED)  # else no output appears
    except Exception:
        check_unchanged(vaccinations, before, _CHANGED)  # changed under the passes: say so
        raise
    finally:
        _JOB.clear()
    coverage, total = _coverage(register, max_dose, report_date)
    result = ReconcileResult(
        rows=len(scan.ids), counts=counts, matched_rows=clean, coverage=coverage, total=total,
        report_date=report_date, register_rows=register.rows,
        register_people=len(register), register_invalid=register.invalid,
        register_duplicates=register.duplicates, register_problems=register.problems,
        seconds=time.perf_counter() - started, out_dir=out,
        warnings=(open_dir,) if open_dir else ())
    with atomic_open(out / "coverage.csv", overwrite=overwrite) as fh:
        text = io.StringIO()
        csv.writer(text, lineterminator="\n").writerows(
            [COVERAGE_COLUMNS, *(c.csv_row() for c in (*coverage, total))])
        fh.write((UTF8_BOM if bom else b"") + text.getvalue().encode())
    with atomic_open(out / "report.json", overwrite=overwrite, text=True) as fh:
        json.dump(result.to_json(), fh, ensure_ascii=False, indent=1)
        fh.write("\n")
    return result


_R = TypeVar("_R")


def _run(chunks: list[tuple[int, int, int, int]], workers: int,
         work: Callable[[tuple[int, int, int, int]], _R]) -> Iterator[_R]:
    if workers <= 1 or len(chunks) <= 1:
        for chunk in chunks:
            yield work(chunk)
        return
    with _pool(workers) as pool:
        yield from pool.imap(work, chunks)


@contextmanager
def _pool(workers: int) -> Iterator[Any]:
    """A pool of ``workers`` forked processes, terminated when the block ends, however it
    ends. Ctrl-C or SIGTERM (a KeyboardInterrupt, vaxqr.cli) while the pool forks its
    workers left those already started behind, holding the command's stdout and stderr
    (Pool() cleans up after an Exception only, and the ``with`` had not begun): they are
    ended too."""
    pool = None
    try:
        pool = multiprocessing.get_context("fork").Pool(workers)
        yield pool
    finally:
        if pool is not None:
            pool.terminate()  # as Pool's own ``with`` does
        else:
            for child in multiprocessing.active_children():
                child.terminate()
                child.join(10)
