"""Issuing: from commune records to signed ``HC1:`` credentials, one or a hundred thousand.

Each record is validated before signing (ID number against DOB and sex, real dates in a sane
order, dose ≤ total, known vaccine, a name); a bad row is rejected with its row number and
reason and the batch goes on. One credential per citizen (ID number), with the latest dose:
a first pass over the CSV finds the citizens on several rows, whose other rows are reported
as superseded instead of signed; across batches and single issues, the office's citizen
register in the signer directory's ledger (:func:`issue_single`, ``issue_batch(register=)``)
holds each citizen's credential and where it was issued. Batches are crash-safe through
the :mod:`vaxqr.ledger`: a credential is recorded before its image is written, a re-run
skips what the ledger holds, re-renders missing or damaged images, and rewrites the manifest
from the ledger. This process reads, validates, signs and records; QR rendering and image
files are shared between it and forked processes (one process per core in all), and the
images are synced before the manifest lists them.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import multiprocessing
import os
import sys
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Container, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Final, TypeVar

from . import citizen, sign
from .codec import encode_hc1
from .credential import (
    VALIDITY_DAYS,
    PersonName,
    UvciMaker,
    dose_problem,
    find_vaccine,
    vaccination_dcc,
)
from .errors import KeyCertError, StorageError, ValidationError, VaxqrError, when_full
from .fileio import (
    CSV_UTF8_HINT,
    UTF8_BOM,
    BatchDir,
    atomic_open,
    atomic_write,
    check_csv_start,
    check_unchanged,
    csv_delimiter,
    ensure_dir,
    ensure_private_dir,
    exclusive_dir,
    file_identity,
    open_quote_error,
    rows_taken_in,
)
from .ledger import (
    PLACE_SINGLE,
    RESUME_HINT,
    Claim,
    ClaimRow,
    Entry,
    Ledger,
    Register,
    Signed,
    hc1_digest,
)
from .safetext import formula_reason, row_label, spreadsheet_cell, spreadsheet_formula

COLUMNS = ("full_name", "sex", "dob", "id_number", "dose_number", "total_doses",
           "vaccination_date", "vaccine", "lot", "site")
REQUIRED = COLUMNS[:8]
# `row` numbers the CSV's data rows from 1, as the manifest, the images and the ledger do;
# `spreadsheet_row` is the row a spreadsheet shows it at (its header is row 1): row + 1
REJECT_COLUMNS = ("row", "spreadsheet_row", "reason")
MAX_ISSUER = 80
_T = TypeVar("_T")
CHUNK = 64  # rows signed and recorded in the first ledger transaction; then doubling to
MAX_CHUNK = 512  # (each transaction ends with an fsync: ~4 ms the signing process waits)
RENDER_TASK = 16  # credentials rendered by one task (~3.5 ms)
_WINDOW = 3  # tasks in hand per forked process: enough until this one next feeds it
FEED_EVERY = 16  # rows signed between two feeds of the forked processes (~1 ms)
# Credentials a forked process renders while this one signs a row: ~60 µs against ~220;
# a little more, so that none waits for work (any surplus is rendered here later).
_CHUNK_RENDERED_MEANWHILE = 0.35
# The default number of processes, at most: one signing process (~60 µs a row) keeps about
# four renderers (~220 µs a credential) busy; more would only take memory (~60 MiB each).
DEFAULT_PROCESSES_MAX = 6
SYNC_EVERY = 1024  # images between two background syncs (the final one waits for less)


def _rebuild(cls: Any, values: dict[str, Any]) -> Any:
    return cls(**values)


def _reduce(obj: Any, derived: tuple[str, ...] = ()) -> tuple[Any, ...]:
    """Copy and pickle a frozen dataclass by its fields but the ``derived`` ones: compiled
    by mypyc, the default way (set each field on a blank object) raises
    FrozenInstanceError; pure Python, it works."""
    return (_rebuild, (type(obj), {f.name: getattr(obj, f.name) for f in fields(obj)
                                   if f.name not in derived}))


@dataclass(frozen=True, slots=True, kw_only=True)
class Record:
    """One validated citizen record, ready to sign."""

    row: int
    full_name: str
    sex: str
    dob: date
    id_number: str
    dose: int
    total: int
    vaccination_date: date
    vaccine_key: str
    lot: str = ""
    site: str = ""
    # full_name split and transliterated, as parse_record checked it (not in the digest)
    name: PersonName | None = field(default=None, compare=False, repr=False)

    def __reduce__(self) -> tuple[Any, ...]:
        return _reduce(self, derived=("name",))  # sign_record makes it again

    def digest(self) -> str:
        """SHA-256 of the normalised record: what the ledger recognises on a re-run."""
        parts = [self.full_name, self.sex, self.dob.isoformat(), self.id_number, str(self.dose),
                 str(self.total), self.vaccination_date.isoformat(), self.vaccine_key, self.lot,
                 self.site]
        return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


def _int(value: str, what: str) -> int:
    v = value.strip()
    if not (v.isascii() and v.isdigit()) or len(v) > 3:  # '²'.isdigit(), int('²') fails
        raise ValidationError(f"{what} {value!r} is not a whole number")
    return int(v)


_FIRST_VACCINES: Final = date(2020, 12, 1)  # (as matching.EARLIEST_VACCINATION)


def parse_record(row: int, fields: Mapping[str, str | None], *, today: date) -> Record:
    """Validate one input row; raise :class:`ValidationError` with the reason."""
    values = {k: v.strip() for k, v in fields.items() if isinstance(v, str)}
    get = values.get

    for key in REQUIRED:
        if not get(key):
            raise ValidationError(f"{key} is empty")
    name = citizen.normalize_name(get("full_name", ""))
    person = PersonName.from_full_name(name)  # transliterable, not too long
    sex = citizen.parse_sex(get("sex", ""))
    dob = citizen.parse_date(get("dob", ""))
    vdate = citizen.parse_date(get("vaccination_date", ""))
    if dob > today:
        raise ValidationError(f"date of birth {dob} is in the future")
    if dob.year < 1900:
        raise ValidationError(f"date of birth {dob} is before 1900")
    if vdate > today:
        raise ValidationError(f"vaccination date {vdate} is in the future")
    if vdate < dob:
        raise ValidationError(f"vaccination date {vdate} is before the date of birth {dob}")
    if vdate < _FIRST_VACCINES:
        raise ValidationError(f"vaccination date {vdate} is before COVID-19 vaccines existed")
    id_number = get("id_number", "")
    problems = citizen.check_id_against(citizen.parse_id_number(id_number), dob=dob,
                                        sex=get("sex", ""))
    if problems:
        raise ValidationError("ID number disagrees with the record: " + "; ".join(problems))
    dose = _int(get("dose_number", ""), "dose number")
    total = _int(get("total_doses", ""), "total doses")
    problem = dose_problem(dose, total)
    if problem:
        raise ValidationError(problem)
    vaccine = find_vaccine(get("vaccine", ""))
    lot = citizen.normalize_name(get("lot", ""))
    site = citizen.normalize_name(get("site", ""))
    for what, value in (("lot", lot), ("site", site)):
        if spreadsheet_formula(value):
            raise ValidationError(formula_reason(what, value))
    return Record(row=row, full_name=name, sex=sex, dob=dob, id_number=id_number, dose=dose,
                  total=total, vaccination_date=vdate, vaccine_key=vaccine.key,
                  lot=lot, site=site, name=person)



# --------------------------------------------------------------------------- signing


@dataclass(frozen=True, slots=True)
class SignerInfo:
    """What signing needs of a commune signer, picklable for worker processes."""

    key_pem: bytes  # PKCS#8, unencrypted, only ever in memory / inter-process pipes
    kid: bytes
    not_before: datetime
    not_after: datetime
    province_code: str
    commune_code: str
    issuer: str
    commune_name: str = ""
    province_name: str = ""
    demo: bool = False

    def __reduce__(self) -> tuple[Any, ...]:  # picklable in the compiled build too
        return _reduce(self)


def signer_info(signer: Any) -> SignerInfo:
    """Extract signing material from a loaded :class:`vaxqr.certs.Signer`; from a
    :class:`vaxqr.certs.SignerCertificate` (no key: ``key_pem`` empty), what describes the
    office (cards of credentials written again), which cannot sign."""
    from cryptography.hazmat.primitives import serialization

    key = getattr(signer, "private_key", None)
    pem = b"" if key is None else key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    cert = signer.certificate
    issuer = signer.commune_name
    province = getattr(signer, "province_name", "") or ""
    if province and len(issuer) + len(province) + 2 <= MAX_ISSUER:
        issuer = f"{issuer}, {province}"
    return SignerInfo(pem, signer.kid, cert.not_valid_before_utc, cert.not_valid_after_utc,
                      signer.province_code, signer.commune_code, issuer[:MAX_ISSUER],
                      signer.commune_name, province, bool(signer.is_demo))


def credential_times(info: SignerInfo, now: datetime, days: int = VALIDITY_DAYS) -> tuple[int, int]:
    """(iat, exp): exp = iat + ``days`` but never after the DSC's notAfter."""
    if now < info.not_before:
        raise KeyCertError(f"the commune certificate is not valid before "
                           f"{info.not_before:%Y-%m-%d}", hint="check this computer's date "
                           "and time; if they are right, ask provincial IT for a commune "
                           "certificate valid now")
    if now >= info.not_after:
        raise KeyCertError(f"the commune certificate expired on {info.not_after:%Y-%m-%d}",
                           hint="ask provincial IT for a new commune certificate")
    iat = int(now.timestamp())  # whole seconds: adding whole days keeps the same fraction
    exp = min(iat + days * 86400, int(info.not_after.timestamp()))
    return iat, exp


_KEYS: dict[bytes, Any] = {}


def _check_signer(signer: Any) -> list[str]:
    """:func:`vaxqr.signercheck.check_signer` of a loaded signer (with its directory's
    revocation information): raises if it must not sign; returns its warnings."""
    from .signercheck import check_signer, revocation_sources

    where = getattr(signer, "directory", None)
    check = check_signer(signer.certificate, signer.chain,
                         trust=revocation_sources(where) if where is not None else [],
                         where=str(where or ""))
    return list(check.warnings)


def _checks_signer(check: Any, signer: Any) -> bool:
    """Whether ``check`` (a :class:`vaxqr.signercheck.SignerCheck`, or None) is a check of
    ``signer``'s certificate: a check of another one does not stand for its checks."""
    return check is not None and bool(check.chain) and check.chain[0] == signer.certificate


def _private_key(pem: bytes) -> Any:
    key = _KEYS.get(pem)
    if key is None:
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        key = _KEYS[pem] = load_pem_private_key(pem, password=None)
    return key


def sign_record(info: SignerInfo, record: Record, uvci: str, *, now: datetime | None = None,
                days: int = VALIDITY_DAYS) -> tuple[str, int, int]:
    """Sign one record; return (``HC1:`` text, iat, exp)."""
    iat, exp = credential_times(info, now or datetime.now(UTC), days)
    name = record.name  # parse_record's, if it is of this full name
    if name is None or name.full_name != record.full_name:
        name = PersonName.from_full_name(record.full_name)
    dcc = vaccination_dcc(  # = Certificate(...).to_dict(), without the frozen objects
        name=name, dob=record.dob,
        vaccine=find_vaccine(record.vaccine_key), dn=record.dose, sd=record.total,
        dt=record.vaccination_date, issuer=info.issuer, ci=uvci)
    payload = sign.encode_cwt(iss="VN", iat=iat, exp=exp, hcert=dcc)
    return encode_hc1(sign.sign1(payload, _private_key(info.key_pem), info.kid)), iat, exp


def render(hc1: str, fmt: str) -> bytes:
    """The QR picture of a credential (``png`` or ``svg``)."""
    from . import qr

    if fmt == "svg":
        return qr.to_svg(hc1).encode("utf-8")
    return qr.to_png(hc1)


def render_card(hc1: str, info: SignerInfo, fmt: str = "png") -> bytes:
    """A printable card (``png`` or ``pdf``), built from the credential's own content."""
    from .card import CardData
    from .card import render_card as draw
    from .codec import b45decode, decompress, strip_prefix
    from .credential import summary
    from .sign import parse_cwt, parse_sign1

    claims = parse_cwt(parse_sign1(decompress(b45decode(strip_prefix(hc1)))).payload)
    s = summary(claims.hcert)
    exp = datetime.fromtimestamp(claims.exp or 0, UTC).date().isoformat()
    data = CardData(full_name=s["full_name"], dob=s["dob"], dose=s["dose"], doses=s["doses"],
                    vaccine=s["vaccine"], vaccination_date=s["date"],
                    commune=info.commune_name or info.issuer, province=info.province_name,
                    uvci=s["uvci"], valid_until=exp, demo=info.demo)
    from .qrencode import encode_matrix

    return draw(data, encode_matrix(hc1), fmt=fmt)


# --------------------------------------------------------------------------- batches


@dataclass
class BatchResult:
    issued: int = 0  # signed in this run
    already: int = 0  # found in the ledger from an earlier run
    rejected: list[tuple[int, str]] = field(default_factory=list)
    # rows of a citizen the batch signs another row of (a later dose, or the same again)
    superseded: list[tuple[int, str]] = field(default_factory=list)
    # rows signed for a citizen whose earlier dose has a credential from another batch or a
    # single issue (the office's register): (row, that credential's UVCI), still valid
    replaced: list[tuple[int, str]] = field(default_factory=list)
    images_restored: int = 0  # QR images of earlier runs, missing or damaged, re-rendered
    # cards of earlier runs' rows written from the ledger: --card added to a finished batch,
    # or cards missing or damaged
    cards_written: int = 0
    # credentials this OUT_DIR's ledger held from before the office's register (an older
    # vaxqr, or a batch run without it), entered into the register in this run
    registered: int = 0
    total_rows: int = 0
    warnings: list[str] = field(default_factory=list)  # for the user, once per batch
    seconds: float = 0.0
    out_dir: Path = Path(".")


# csv's default field limit (128 KiB) made one oversized field (a 140 KB name) abort the
# whole batch. No real field is more than a few hundred bytes: 1 MiB lets any field through
# to validation, which rejects its row with the row number, and still stops a runaway field
# (an unclosed quote swallowing every line after it) with its line number instead of
# reading the rest of a large export into memory as one field.
FIELD_LIMIT = 1 << 20


@contextmanager
def _csv_reader(path: Path) -> Iterator[tuple[list[str], Any]]:
    """Open a CSV export: (header, lower-cased and stripped; csv.reader of the data rows).
    Raise :class:`StorageError` when it cannot be read, :class:`ValidationError` when its
    header lacks a required column, it is not UTF-8 or it is malformed (with the line)."""
    try:
        fh = path.open("rb")
    except OSError as exc:
        raise StorageError(f"cannot read {path}: {exc.strerror}") from exc
    with fh:
        try:
            head = fh.read(4)
            fh.seek(0)
            # the header line, to tell ',' from ';' (csv_delimiter); read again below
            first = fh.readline(1 << 16).decode("utf-8-sig", errors="replace")
            fh.seek(0)
        except OSError as exc:
            raise StorageError(f"cannot read {path}: {exc.strerror}") from exc
        check_csv_start(path, head)
        text = io.TextIOWrapper(fh, encoding="utf-8-sig", newline="")
        if csv.field_size_limit() < FIELD_LIMIT:
            csv.field_size_limit(FIELD_LIMIT)  # process-wide; only ever raised
        reader = csv.reader(text, delimiter=csv_delimiter(first, REQUIRED))
        try:
            header = [h.strip().lower() for h in next(reader, [])]
            if not any(header):
                raise ValidationError(f"{path}: the first line is blank; the CSV header "
                                      "must be there", hint="expected header: "
                                      + ",".join(COLUMNS))
            missing = [c for c in REQUIRED if c not in header]
            if missing:
                raise ValidationError(
                    f"{path}: the CSV header lacks {', '.join(missing)}",
                    hint="expected header: " + ",".join(COLUMNS))
            yield header, reader
        except UnicodeDecodeError:
            line, byte = _first_bad_utf8(path)
            raise ValidationError(
                f"{path} is not UTF-8 (line {line}, byte {byte} of that line)",
                hint=CSV_UTF8_HINT) from None
        except csv.Error as exc:
            raise ValidationError(
                f"{path}: malformed CSV at line {reader.line_num} ({exc})") from None


def _first_bad_utf8(path: Path) -> tuple[int, int]:
    """(line, byte in that line), both from 1, of the first bytes that are not UTF-8.
    Line by line is exact: a newline byte is never part of a multi-byte character."""
    try:
        with path.open("rb") as fh:
            for number, line in enumerate(fh, 1):
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError as exc:
                    return number, exc.start + 1
    except OSError:
        pass
    return 0, 0


SOURCE_ROW = "source_row"
"""The column of ``vaxqr reconcile``'s matched.csv that holds each row's number in the
clerk's input CSV: a batch from such a file is numbered by it (:func:`read_csv`)."""


def _source_rows(header: Sequence[str]) -> int | None:
    """The index of the (last) ``source_row`` column, or None."""
    return len(header) - 1 - header[::-1].index(SOURCE_ROW) if SOURCE_ROW in header else None


def _source_row(path: Path, row: Sequence[str], col: int, last: int) -> int:
    """The ``source_row`` of one data row, which must be a whole number above ``last``
    (matched.csv keeps the input's order): else the file is not reconcile's output, or was
    edited, and the batch stops before anything is signed."""
    text = row[col].strip() if len(row) > col else ""
    if not (text.isascii() and text.isdigit() and 0 < len(text) <= 9) or int(text) <= last:
        raise ValidationError(
            f"{path}: source_row {text!r} after {last} is not a row number of the input "
            "(a whole number, increasing)",
            hint="run vaxqr reconcile again to regenerate matched.csv, or remove the "
                 "source_row column")
    return int(text)


def read_csv(path: Path, *, source_rows: bool = False
             ) -> Iterator[tuple[int, dict[str, str | None]]]:
    """Yield (row number, fields); row 1 is the first data row. UTF-8 with or without BOM.

    With ``source_rows``, a CSV with a ``source_row`` column (:data:`SOURCE_ROW`: the
    matched.csv of ``vaxqr reconcile``) is numbered by it: the row numbers are those of the
    clerk's input CSV, stable when a corrected row joins matched.csv on a later run."""
    with _csv_reader(path) as (header, reader):
        # csv.DictReader's rows (blank lines skipped, a short row's missing columns
        # None), without its Python-level loop; extra fields are counted, not kept.
        width = len(header)
        # fields a row needs for every required column (the last of a repeated name wins)
        need = max(width - header[::-1].index(c) for c in REQUIRED)
        src = _source_rows(header) if source_rows else None
        n = 0
        for row in reader:
            if not row:
                continue
            n = n + 1 if src is None else _source_row(path, row, src, n)
            fields: dict[str, str | None] = dict(zip(header, row, strict=False))
            if len(row) > width:
                fields["__error__"] = f"the row has {len(row) - width} field(s) too many"
            elif len(row) < width:
                for key in header[len(row):]:
                    fields[key] = None
                if len(row) < need:
                    fields["__error__"] = "the row has too few fields"
            yield n, fields


class _DateOrder:
    """The first pass's look at the date columns (:func:`vaxqr.citizen.date_order`): a file
    with dates that read only month first (``3/15/1975``) and none that read only day first
    was exported month/day/year, and of its other dates those with a day up to 12 read day
    first as other real dates, which would be signed in silence (a wrong date of birth,
    refused beside the ID card at every checkpoint): the batch stops before signing. A
    file with both (typed by hand) has its month-first dates rejected row by row."""

    def __init__(self, header: Sequence[str]) -> None:
        self.header = header
        self.cols = [len(header) - 1 - header[::-1].index(c) for c in ("dob", "vaccination_date")]
        self.day_first = False
        self.month_first: tuple[int, int] | None = None  # (row, column) of the first
        self.text = ""  # its value

    def see(self, row: Sequence[str], n: int) -> None:
        if self.day_first:  # decided: not a month/day/year export
            return
        for c in self.cols:
            if len(row) > c:
                order = citizen.date_order(row[c])
                if order == citizen.DAY_FIRST:
                    self.day_first = True
                elif order == citizen.MONTH_FIRST and self.month_first is None:
                    self.month_first = (n, c)
                    self.text = row[c].strip()

    def check(self, path: Path) -> None:
        if self.month_first is None or self.day_first:
            return
        n, c = self.month_first
        raise month_first_error(path, n, self.header[c], self.text, "signed", "signed")


def month_first_error(path: Path, row: int, column: str, text: str, verb: str,
                      nothing: str) -> ValidationError:
    """The error of an export whose dates are month/day/year (:class:`_DateOrder`)."""
    return ValidationError(
        f"{path}: the dates are month/day/year ({row_label(row)}: {column} {text!r}), as a "
        "spreadsheet set to English (United States) writes them; vaxqr reads DD/MM/YYYY, "
        f"so the dates with a day up to 12 would be {verb} with day and month swapped: "
        f"nothing was {nothing}",
        hint="format the date columns as yyyy-mm-dd (Format Cells → Custom: yyyy-mm-dd), "
             "or set the computer's region to Vietnamese, and export again")


def _index_citizens(path: Path) -> tuple[int, dict[str, list[int]]]:
    """The first pass over a CSV: (data rows, ``{ID number: its rows}`` for each ID number
    on more than one row; rows numbered as ``read_csv(path, source_rows=True)`` numbers
    them, and a bad ``source_row`` raises here, before anything is signed). Only the ID
    column is looked at, and the date columns until one reads only day first: ~1.1 µs a
    row compiled (0.9 without the dates, of an ISO-dated file, where they are looked at to
    the end), most of it csv's own parsing (what counting the rows for the progress bar
    cost before); memory: one dict entry per
    distinct ID number (~10 MB for 100,000). Raises what :func:`read_csv` raises, so a
    malformed file stops the batch before anything is signed, and so does a date written
    month/day/year (:class:`_DateOrder`)."""
    with _csv_reader(path) as (header, reader):
        col = len(header) - 1 - header[::-1].index("id_number")  # the last one, as read_csv
        dates = _DateOrder(header)
        src = _source_rows(header)
        width, delimiter = len(header), reader.dialect.delimiter
        known = {i for i, name in enumerate(header) if name in COLUMNS}
        first: dict[str, int] = {}
        repeated: dict[str, list[int]] = {}
        count = n = 0
        line = reader.line_num  # the last line of the row before
        for row in _rows(path, reader):
            if not row:
                line = reader.line_num
                continue
            count += 1
            if reader.line_num - line > 1 and rows_taken_in(row, width, delimiter, known):
                # a quote not closed took other citizens' rows in: the batch stops
                raise open_quote_error(path, line + 1, reader.line_num, "signed")
            line = reader.line_num
            n = count if src is None else _source_row(path, row, src, n)
            dates.see(row, n)
            if len(row) > col:  # else too few fields: rejected as such
                key = row[col].strip()
                if len(key) == 12:  # else not an ID number: rejected as such
                    seen = first.setdefault(key, n)
                    if seen != n:
                        rows = repeated.get(key)
                        if rows is None:
                            repeated[key] = [seen, n]
                        else:
                            rows.append(n)
    dates.check(path)
    return count, repeated


def _rows(path: Path, reader: Any) -> Iterator[list[str]]:
    """``reader``'s rows (a csv.reader); a field over :data:`FIELD_LIMIT` (csv.Error)
    raises :class:`ValidationError` naming the line its row starts on, where a quote not
    closed would be, rather than the line where reading stopped."""
    start = reader.line_num + 1
    try:
        for row in reader:
            yield row
            start = reader.line_num + 1
    except csv.Error as exc:
        if "field larger than field limit" not in str(exc):
            raise
        raise ValidationError(
            f"{path}: the row on line {start} has a field over {FIELD_LIMIT:,} bytes: a "
            "quote (\") opened there and never closed takes the rest of the file into it; "
            "nothing was signed",
            hint=f"close or remove the quote on line {start}, or shorten that field, save "
                 "the CSV and run the same command again") from None


_IDENTITY = (("full_name", "full name"), ("sex", "sex"), ("dob", "date of birth"))


def _one_per_citizen(path: Path, repeated: Mapping[str, Sequence[int]], *, today: date,
                     issued: Mapping[str, str]) -> dict[int, tuple[str, str]]:
    """``row → (kind, reason)`` for every row not to sign of the citizens on several
    rows (from :func:`_index_citizens`), ``kind`` being ``conflict`` (refused), ``older``
    (an earlier dose) or ``same`` (a copy of the kept row's dose): one credential per
    citizen, with the latest dose (latest vaccination date, then highest dose number; of
    equal ones the one already signed, else the first row). Rows
    that share an ID number but not the name, sex or date of birth are all refused (not
    superseded): which one is that citizen is for a person to decide. Invalid rows take no
    part (they are rejected for what is wrong with them). Names compare as people read
    them (:func:`vaxqr.citizen.name_key`: case and old/new tone placement aside). ``issued``
    (record digest → UVCI, from the ledger: records, not row numbers, which move when rows
    are deleted) names a conflicting record already signed."""
    wanted = {row for rows in repeated.values() for row in rows}
    # per ID number: its valid rows as (row, vaccination date, dose, total, identity,
    # digest: only when resuming, to recognise a signed record)
    seen: dict[str, list[tuple[int, date, int, int, tuple[str, str, date], str]]] = {}
    for n, values in read_csv(path, source_rows=True):
        if n not in wanted or "__error__" in values:
            continue
        try:
            rec = parse_record(n, values, today=today)
        except ValidationError:
            continue
        seen.setdefault(rec.id_number, []).append(
            (n, rec.vaccination_date, rec.dose, rec.total,
             (citizen.name_key(rec.full_name), rec.sex, rec.dob),
             rec.digest() if issued else ""))
    decided: dict[int, tuple[str, str]] = {}  # row -> (conflict / older / same, reason)
    for rows in seen.values():
        if len(rows) < 2:
            continue
        first = rows[0]
        if any(r[4] != first[4] for r in rows):
            other = next(r for r in rows if r[4] != first[4])
            for r in rows:
                against = other if r[4] == first[4] else first
                differs = " and ".join(what for i, (_key, what) in enumerate(_IDENTITY)
                                       if r[4][i] != against[4][i])
                if against[5] in issued:
                    reason = (f"same ID number as {row_label(against[0])}, already issued as "
                              f"{issued[against[5]]}, which has another {differs}: this "
                              "row is not signed; if that credential went to the wrong person, "
                              "revoke it (vaxqr certs revoke-credential) and correct the rows")
                else:
                    reason = (f"same ID number as {row_label(against[0])}, which has another "
                              f"{differs}: neither is signed (a credential must not go to the "
                              "wrong person); correct the wrong row and run again")
                decided[r[0]] = ("conflict", reason)
            continue
        best = first
        for r in rows[1:]:  # of equal doses the first, or the one already signed
            if (r[1], r[2]) > (best[1], best[2]) or (
                    (r[1], r[2]) == (best[1], best[2]) and r[5] in issued
                    and best[5] not in issued):
                best = r
        kept = row_label(best[0], f"dose {best[2]}/{best[3]} on {best[1].isoformat()}")
        for r in rows:
            if r[0] == best[0]:  # by row: compiled, the tuples are values, not objects
                continue
            if (r[1], r[2]) == (best[1], best[2]):
                decided[r[0]] = ("same", f"same dose as {kept}: one credential per citizen")
            else:
                decided[r[0]] = ("older", f"superseded by {kept}: one credential per citizen, "
                                          "with the latest dose")
    return decided


# --------------------------------------------------------------------------- the register


def _utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _claim_of(rec: Record, key: bytes, entry: Entry, place: str, source: str, now: str,
              replaces: str) -> Claim:
    """The claim of ``rec``'s citizen for the credential ``entry`` (signed already)."""
    return Claim(key, rec.full_name, rec.sex, rec.dob.isoformat(), rec.dose, rec.total,
                 rec.vaccination_date.isoformat(), entry.uvci, place, source, rec.row, now,
                 replaces, entry.kid, hc1_digest(entry.hc1), entry.exp)


def _where(claim: Claim) -> str:
    """Where a claimed credential was issued, for a reason."""
    when = claim.issued_at[:10]
    if claim.place == PLACE_SINGLE:
        return f"by a single issue on {when}"
    return f"in {claim.place} ({claim.source} {row_label(claim.row)}) on {when}"


def _differs(rec: Record, claim: Claim) -> str:
    """What of name, sex and date of birth ``rec`` has other than ``claim`` ('' if none)."""
    what = []
    if citizen.name_key(rec.full_name) != citizen.name_key(claim.full_name):
        what.append("full name")
    if rec.sex != claim.sex:
        what.append("sex")
    if rec.dob.isoformat() != claim.dob:
        what.append("date of birth")
    return " and ".join(what)


#: How the reason of a superseded row whose citizen the office's register holds a
#: credential of (another batch, a single issue) begins: told apart, in a batch's summary,
#: from rows a later dose in the same CSV supersedes (:func:`held_by_office`).
HELD_BY_OFFICE: Final = "already issued as "


def held_by_office(superseded: Sequence[tuple[int, str]]) -> int:
    """How many of a batch's ``superseded`` rows the office's register holds a credential
    of the citizen of, for that dose or a later one (:func:`register_verdict`'s ``same``)."""
    return sum(reason.startswith(HELD_BY_OFFICE) for _, reason in superseded)


def register_verdict(rec: Record, claim: Claim) -> tuple[str, str]:
    """What the office's register says of signing ``rec`` for a citizen it holds ``claim``
    of, issued elsewhere (another batch, or a single issue): ``(kind, reason)``, ``kind``
    being ``conflict`` (another name, sex or date of birth: refused), ``same`` (that
    credential holds the same or a later dose: not signed) or ``later`` (it holds an
    earlier dose: sign; the register then names the new credential, the older one stays
    valid unless revoked)."""
    differs = _differs(rec, claim)
    if differs:
        return ("conflict",
                f"same ID number as credential {claim.uvci}, issued {_where(claim)}, which "
                f"has another {differs}: this row is not signed (a credential must not go to "
                "the wrong person); if that credential went to the wrong person, revoke it "
                "(vaxqr certs revoke-credential) and correct the records")
    if (claim.vaccination_date, claim.dose) >= (rec.vaccination_date.isoformat(), rec.dose):
        return ("same",
                f"{HELD_BY_OFFICE}{claim.uvci} {_where(claim)} (dose {claim.dose}/"
                f"{claim.total} on {claim.vaccination_date}): one credential per citizen")
    return ("later", f"replaces {claim.uvci}, issued {_where(claim)} for dose {claim.dose}/"
                     f"{claim.total} on {claim.vaccination_date} (it stays valid unless revoked)")


#: Batch ledger meta key: set once every credential of the OUT_DIR is in the office's
#: register (a batch started with it, or one from before it once run again).
REGISTERED = "office_register"


def _backfill(register: Register, ledger: Ledger, issued: Sequence[tuple[Record, str]],
              place: str, source: str, result: BatchResult) -> None:
    """Enter into the office's register the citizens of credentials this batch issued
    before the register knew of them (``issued``: the record read again from its row, whose
    digest the ledger holds, and its UVCI), as a batch that claimed them would have: a
    citizen the register does not hold, or holds for an earlier dose, is claimed for that
    credential (a citizen with several, dose 1 and dose 2 both issued before the register:
    for the latest, and counted once in ``result.registered``). Two credentials for one
    dose (the register's from elsewhere: signed while it did not know this one) are warned
    about; a citizen it holds with another name, sex or date of birth is left as it is,
    with a warning."""
    keys = [citizen.citizen_key(rec.id_number) for rec, _ in issued]
    times = {}
    signed: dict[str, tuple[str, str, int]] = {}  # uvci -> kid, digest, exp (as recorded)
    for _, uvci in issued:
        entry = ledger.find(uvci)
        times[uvci] = (datetime.fromtimestamp(entry.iat, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                       if entry is not None else _utc_now())
        signed[uvci] = ((entry.kid, hc1_digest(entry.hc1), entry.exp) if entry is not None
                        else ("", "", 0))
    added: list[ClaimRow] = []
    said: list[str] = []
    entered: set[bytes] = set()  # citizens this call enters (rows of one citizen: once)

    def decide(held: Mapping[bytes, Claim]) -> list[ClaimRow]:
        added.clear()
        said.clear()
        entered.clear()
        mine: dict[bytes, int] = {}  # citizen -> their claim in ``added``: one each
        for (rec, uvci), key in zip(issued, keys, strict=True):
            at = mine.get(key)
            old = held.get(key) if at is None else Claim(*added[at])
            replaces = ""
            if old is not None and old.uvci != uvci:
                kind, reason = register_verdict(rec, old)
                if kind == "conflict":
                    said.append(f"{row_label(rec.row)} ({uvci}, issued before the office's "
                                f"register): {reason}")
                    continue
                if kind == "same":
                    if (old.vaccination_date, old.dose) == (rec.vaccination_date.isoformat(),
                                                            rec.dose):
                        said.append(
                            f"{row_label(rec.row)}: {uvci} (issued before the office's "
                            f"register) and {old.uvci}, issued {_where(old)}, are both for "
                            f"dose {rec.dose}/{rec.total} of one citizen: revoke one (vaxqr "
                            "certs revoke-credential)")
                    continue
                replaces = old.uvci
            elif old is not None:
                continue  # claimed already
            claim = (key, rec.full_name, rec.sex, rec.dob.isoformat(), rec.dose, rec.total,
                     rec.vaccination_date.isoformat(), uvci, place, source, rec.row,
                     times[uvci], replaces, *signed[uvci])
            if at is None:
                mine[key] = len(added)
                added.append(claim)
            else:  # a later dose of a citizen entered just above: it is their claim
                added[at] = claim
            first = held.get(key)
            if first is None or (first.place, first.source) != (place, source):
                entered.add(key)  # not already entered by this batch (an earlier chunk)
        return added

    register.claim(keys, decide)
    result.registered += len(entered)
    result.warnings.extend(said)


def _claim_chunk(register: Register, chunk: Sequence[Record], uvcis: UvciMaker, place: str,
                 source: str, result: BatchResult, kid: str = "",
                 signed: Sequence[Signed] = (),
                 issued_here: Callable[[str], bool] | None = None,
                 earlier: Container[str] = ()) -> list[tuple[Record, str]]:
    """Consult and update the office's register for a chunk of records about to be signed,
    in one transaction committed before any of them is signed: return the records to sign
    with their UVCIs, and add the others to ``result`` (refused or superseded). A citizen
    the register holds from this batch (``place`` and ``source``) under a UVCI its ledger
    does not hold (``issued_here`` false: a run killed between the claim and the ledger) is
    this batch's to sign again, under the claimed UVCI when it is the same row (the UVCI a
    refusal elsewhere meanwhile named). One whose credential this batch did issue (an edited
    row, now at a row number it never issued from) is judged as a credential issued
    elsewhere is (:func:`register_verdict`): another name, sex or date of birth is refused.
    A claim made where this batch's OUT_DIR was before (``earlier``: moved, or restored on
    another computer) is this batch's too; claimed again, it is claimed here.

    A claim records the key id ``kid`` that will sign it; the digest and expiry of the
    credentials of an earlier chunk, once signed (``signed``), are recorded in the same
    transaction (:meth:`Register.claim`)."""
    keys = [citizen.citizen_key(rec.id_number) for rec in chunk]
    to_sign: list[tuple[Record, str]] = []
    refused: list[tuple[int, str]] = []
    superseded: list[tuple[int, str]] = []
    replaced: list[tuple[int, str]] = []

    def decide(held: Mapping[bytes, Claim]) -> list[ClaimRow]:
        to_sign.clear()
        refused.clear()
        superseded.clear()
        replaced.clear()
        claims: list[ClaimRow] = []  # tuples, not Claims: ~0.5 µs less each
        now = _utc_now()
        drawn = uvcis.draw(len(chunk))
        mine: dict[bytes, int] = {}  # claimed in this chunk, at (a citizen twice: not expected)
        for rec, key, uvci in zip(chunk, keys, drawn, strict=True):
            at = mine.get(key)
            old = held.get(key) if at is None else Claim(*claims[at])
            replaces = ""
            if old is not None:
                if ((old.place == place or old.place in earlier) and old.source == source
                        and (at is not None or issued_here is None
                             or not issued_here(old.uvci))):
                    replaces = old.replaces  # this batch's own claim: what it replaced
                    if old.row == rec.row and key not in mine:
                        # claimed by a run killed before its ledger commit: that UVCI was
                        # never recorded nor written out, and is the one other runs saw
                        uvci = old.uvci
                else:
                    kind, reason = register_verdict(rec, old)
                    if kind == "conflict":
                        refused.append((rec.row, reason))
                        continue
                    if kind == "same":
                        superseded.append((rec.row, reason))
                        continue
                    replaces = old.uvci
                    replaced.append((rec.row, old.uvci))
            mine[key] = len(claims)
            claims.append((key, rec.full_name, rec.sex, rec.dob.isoformat(), rec.dose, rec.total,
                           rec.vaccination_date.isoformat(), uvci, place, source, rec.row, now,
                           replaces, kid, "", 0))
            to_sign.append((rec, uvci))
        return claims

    register.claim(keys, decide, signed)
    result.rejected.extend(refused)
    result.superseded.extend(superseded)
    result.replaced.extend(replaced)
    return to_sign


def _claimed_exp(claim: Claim, earlier: Entry | None) -> int:
    """When the credential ``claim`` names expires (a NumericDate; 0 when it cannot be told):
    a single issue's as the signer directory's ledger records it (``earlier``), a batch's as
    the register does, else (an entry of an older register) as the batch's ledger in its
    OUT_DIR does, when that is still there."""
    if earlier is not None and earlier.uvci == claim.uvci:
        return earlier.exp
    if claim.exp:
        return claim.exp
    path = Path(claim.place) / "ledger.sqlite"
    if claim.place == PLACE_SINGLE or not path.is_file():
        return 0
    try:
        with Ledger(path) as ledger:
            found = ledger.find(claim.uvci)
    except StorageError:  # (only the wording of a refusal depends on it)
        return 0
    return found.exp if found is not None else 0


def _expired_note(earlier: Entry) -> str:
    """The note of a single issue that signs a new credential because the one issued for
    the same record has expired (checkpoints refuse it: it is not written again)."""
    issued = datetime.fromtimestamp(earlier.iat, UTC)
    ended = datetime.fromtimestamp(earlier.exp, UTC)
    return (f"{earlier.uvci}, issued for this record by a single issue on {issued:%Y-%m-%d}, "
            f"expired on {ended:%Y-%m-%d} (checkpoints refuse it): a new credential is signed")


def issue_single(register: Register, info: SignerInfo, record: Record, *,
                 file: str | None = None, reissue: bool = False,
                 now: datetime | None = None) -> tuple[Entry, str | None]:
    """Sign one record and record it in the signer directory's ledger and the office's
    register, in one transaction: return the entry (the credential to write out) and a
    note for the user, or None.

    A citizen the register holds already: with another name, sex or date of birth, or with
    the same or a later dose, :class:`ValidationError` naming the credential (unless
    ``reissue``: a lost card after the old credential was revoked; one that has expired is
    refused saying so, and that ``reissue`` signs a new one); with an earlier dose,
    the new credential replaces it in the register (the note says the old one stays valid
    unless revoked). The same record again, issued by a single issue of this signer, gives
    that credential back (nothing is signed: running the same command twice writes the same
    QR), unless ``reissue``, or unless it has expired: checkpoints refuse it, so a new one is
    signed, as for one expired since it was issued for this record before the register
    existed (an older vaxqr kept no ID numbers; found by the record's digest, its citizen
    then enters the register)."""
    key = citizen.citizen_key(record.id_number)
    uvci = UvciMaker(info.province_code, info.commune_code).draw(1)[0]
    hc1, iat, exp = sign_record(info, record, uvci, now=now)
    entry = Entry(uvci, PLACE_SINGLE, 0, record.digest(), record.full_name, info.kid.hex(),
                  iat, exp, hc1, file)
    note: list[str] = []
    given: list[Entry] = []

    def decide(old: Claim | None, earlier: Entry | None) -> tuple[Entry | None, Claim] | None:
        note.clear()
        given.clear()
        replaces = ""
        if old is None and earlier is not None:  # this record, before the register
            when = datetime.fromtimestamp(earlier.iat, UTC)
            if not reissue and earlier.exp > iat:
                given.append(earlier)
                note.append(f"already issued as {earlier.uvci} by a single issue on "
                            f"{when:%Y-%m-%d}, before the office's register: the same "
                            "credential is written again, and the register now holds it "
                            "(nothing new is signed; --reissue signs a new one)")
                return None, _claim_of(record, key, earlier, PLACE_SINGLE, PLACE_SINGLE,
                                       f"{when:%Y-%m-%dT%H:%M:%SZ}", "")
            replaces = earlier.uvci
            note.append(f"reissued: {earlier.uvci}, issued by a single issue on "
                        f"{when:%Y-%m-%d}, stays valid unless revoked (vaxqr certs "
                        "revoke-credential)" if earlier.exp > iat else _expired_note(earlier))
        elif old is not None:
            if reissue:
                replaces = old.uvci
                note.append(
                    f"reissued: {old.uvci}, issued {_where(old)}, has expired (checkpoints "
                    "refuse it)" if 0 < _claimed_exp(old, earlier) <= iat else
                    f"reissued: {old.uvci}, issued {_where(old)}, stays valid unless revoked "
                    "(vaxqr certs revoke-credential)")
            elif (earlier is not None and old.place == PLACE_SINGLE
                  and earlier.row_hash == entry.row_hash):
                if earlier.exp > iat:
                    given.append(earlier)
                    note.append(f"already issued as {old.uvci} by a single issue on "
                                f"{old.issued_at[:10]}: the same credential is written again "
                                "(nothing new is signed; --reissue signs a new one)")
                    return None
                # expired: written again it would be refused at every checkpoint, unsaid
                replaces = old.uvci
                note.append(_expired_note(earlier))
            else:
                kind, reason = register_verdict(record, old)
                ended = _claimed_exp(old, earlier) if kind == "same" else 0
                if 0 < ended <= iat:  # (--reprint refuses it too: say at once what to do)
                    raise ValidationError(
                        f"{old.uvci}, issued {_where(old)} for dose {old.dose}/{old.total} on "
                        f"{old.vaccination_date}, expired on "
                        f"{datetime.fromtimestamp(ended, UTC):%Y-%m-%d}: checkpoints refuse "
                        "it, so it is not written again (nor by --reprint)",
                        hint="add --reissue to sign the citizen a new credential with this "
                             "record")
                if kind != "later":
                    raise ValidationError(
                        reason.replace("this row is not signed", "not signed"),
                        hint="a lost card: --reprint ID_NUMBER writes that credential "
                             "again; to sign a new one anyway (its credential was revoked), "
                             "add --reissue: the earlier credential stays valid unless "
                             "revoked")
                replaces = old.uvci
                note.append(reason)
        given.append(entry)
        return entry, _claim_of(record, key, entry, PLACE_SINGLE, PLACE_SINGLE, _utc_now(),
                                replaces)

    register.issue_single(key, decide, record_hash=entry.row_hash)
    return given[0], (note[0] if note else None)


def _pool_init(info: SignerInfo, out: str, fmt: str, card: str | None) -> None:
    """Initialise a worker process (ours alone, so its allocator may be tuned)."""
    _keep_heap()
    _writer_init(info, out, fmt, card)


def _keep_heap(pad: int = 16 * 1024 * 1024) -> None:
    """Let glibc keep 16 MiB of freed heap instead of returning it to the kernel at once.

    The QR renderer allocates and frees a few large NumPy arrays per image; with glibc's
    defaults each cycle gives the pages back and faults them in again, which was ~40% of a
    worker's CPU time (0.4 ms of system time per PNG, see benchmarks/README.md).
    """
    if sys.platform != "linux":
        return
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-2, pad)  # M_TOP_PAD
    except (OSError, AttributeError):  # not glibc: nothing to tune
        pass


class _Writer:
    """Renders recorded credentials and writes their images (and cards), in one process."""

    def __init__(self, info: SignerInfo, out: str, fmt: str, card: str | None) -> None:
        self.info, self.fmt, self.card = info, fmt, card
        self.qr = BatchDir(Path(out) / "qr")
        self.cards = BatchDir(Path(out) / "cards") if card else None

    def __call__(self, items: Sequence[tuple[int, str]]) -> None:
        fmt, card = self.fmt, self.card
        # All the pictures first, then all the files: alternating NumPy work and file
        # creation in the kernel evicted each other's caches (~30 us more per image).
        images = [render(hc1, fmt) for _row, hc1 in items]
        for (row, _hc1), image in zip(items, images, strict=True):
            self.qr.write(row_file(row, fmt), image)
        if self.cards is not None and card:
            cards = [render_card(hc1, self.info, card) for _row, hc1 in items]
            for (row, _hc1), picture in zip(items, cards, strict=True):
                self.cards.write(row_file(row, card), picture)

    def close(self) -> None:
        self.qr.close()
        if self.cards is not None:
            self.cards.close()


_WRITER: _Writer | None = None


def _writer_init(info: SignerInfo, out: str, fmt: str, card: str | None) -> None:
    global _WRITER
    _WRITER = _Writer(info, out, fmt, card)


def _render_and_write(items: Sequence[tuple[int, str]]) -> None:
    assert _WRITER is not None
    _WRITER(items)


def row_file(row: int, ext: str) -> str:
    """A row's image or card file name, ``0000042.png`` (``f"{row:07d}.{ext}"`` for the
    rows, all ≥ 1, without parsing a format spec: twice per credential)."""
    return str(row).zfill(7) + "." + ext


def image_name(row: int, fmt: str) -> str:
    return "qr/" + row_file(row, fmt)


def card_name(row: int, fmt: str) -> str:
    return "cards/" + row_file(row, fmt)


_CHANGED = ("the credentials signed before it changed are recorded; run the same command "
            "again once the file is complete")


OUT_DIR_HOLDS: Final = "the citizens' names, dates of birth and credentials"


def holding(out_dir: Path) -> AbstractContextManager[None]:
    """Hold a batch's output directory (created if missing, mode 0700) for this run alone:
    another ``vaxqr issue`` on it is refused at once while this one runs.
    :func:`issue_batch` holds it; a flow that writes there first (``--population``'s
    reconcile) holds it around both."""
    return exclusive_dir(ensure_private_dir(out_dir, OUT_DIR_HOLDS)[0],
                         f"{out_dir} is in use by another vaxqr issue run",
                         "wait for it to end; to resume a batch, run the same command again "
                         "once it has")


def issue_batch(
    signer: Any,
    csv_path: Path,
    out_dir: Path,
    *,
    fmt: str = "png",
    workers: int | None = None,
    today: date | None = None,
    progress: Callable[[int, int], None] | None = None,
    card: str | None = None,
    source: str | None = None,
    register: Path | None = None,
    checked: Any = None,
    bom: bool = False,
) -> BatchResult:
    """Issue every valid row of ``csv_path`` into ``out_dir``; resumable after any crash.

    Rows are numbered as :func:`read_csv` numbers them with ``source_rows``: a CSV with a
    ``source_row`` column (reconcile's matched.csv) by the clerk's input rows, so that a
    row keeps its number, its credential and its image name when a corrected row joins
    matched.csv on a later run. The ledger knows the batch by ``source`` (default: the
    CSV's file name; ``vaxqr issue --population`` gives the input CSV's name).

    ``register``: the office's ledger (``SIGNER_DIR/ledger.sqlite``; ``vaxqr issue`` always
    gives it), whose citizen register makes it one credential per citizen across batches
    and single issues of the signer: each chunk's citizens are claimed there, in one
    transaction, before the chunk is signed (:func:`_claim_chunk`). Without it, one
    credential per citizen holds within this CSV and ``out_dir`` only.

    ``checked``: the :class:`vaxqr.signercheck.SignerCheck` the caller made of ``signer``
    (``vaxqr issue`` does, before it asks for the key's password) and whose warnings it
    showed. It stands for the batch's own checks only when it is a check of this signer's
    certificate (its validated chain starts with it); otherwise, or without it, the batch
    makes the same checks (:func:`_check_signer`: refused before anything is written) and
    returns their warnings in ``BatchResult.warnings``.

    ``bom``: start ``manifest.csv`` and ``rejects.csv`` with a UTF-8 byte order mark, which
    Excel on Windows needs to read them as UTF-8 (``vaxqr issue`` does, unless
    ``--no-bom``). Their cells of free text (names, reasons) are written through
    :func:`spreadsheet_cell`, so a spreadsheet never runs one as a formula.

    This process reads, validates and signs each chunk of rows and records it in the ledger;
    only then are the chunk's images rendered and written, by forked processes (``workers``
    processes in all, this one included; default: one per core) and, when they have enough
    in hand, by this one, which then goes on with the next chunk.
    """
    started = time.perf_counter()
    if fmt not in ("png", "svg"):
        raise ValidationError(f"unknown image format {fmt!r} (png or svg)")
    if card not in (None, "png", "pdf"):
        raise ValidationError(f"unknown card format {card!r} (png or pdf)")
    info = signer_info(signer)
    # the signer's own checks (validity, chain, revocation, a short remaining validity),
    # unless the caller made them of this certificate and showed their warnings
    # (``checked``); then an expired signer still fails here, before anything is written
    notes = [] if _checks_signer(checked, signer) else _check_signer(signer)
    credential_times(info, datetime.now(UTC))
    today = today or date.today()
    # The first pass: the rows to count (for the progress bar), the CSV's errors (before
    # anything is written) and the citizens on several rows, who get one credential.
    before = file_identity(csv_path)  # the CSV is read twice: both passes must see one file
    total_rows, repeated = _index_citizens(csv_path)
    out, open_dir = ensure_private_dir(out_dir, OUT_DIR_HOLDS)  # created 0700
    source = source or csv_path.name
    result = BatchResult(out_dir=out)
    if open_dir:
        result.warnings.append(open_dir)
    result.warnings.extend(notes)
    place = str(out.resolve())
    # a full disk: what was signed is in the ledger, what was written is kept; a run resumes
    with when_full(RESUME_HINT), holding(out), Ledger(out / "ledger.sqlite") as ledger, \
            ExitStack() as stack:
        office = stack.enter_context(Register(register)) if register is not None else None
        # One signer and one source per directory, checked before anything is written:
        # images are named by row, the ledger knows rows by source, the manifest lists one.
        owner = ledger.get_meta("signer_kid")
        if owner is not None and owner != info.kid.hex():
            raise StorageError(f"{out} holds a batch signed by another commune (kid {owner})",
                               hint="use a new output directory for this signer")
        others = [s for s in ledger.sources() if s != source]
        if others:
            raise StorageError(
                f"{out} holds the credentials issued from {others[0]}; {source} is another "
                f"CSV, whose images would overwrite them (they are named by row)",
                hint=f"use a new output directory for {source} (or run {others[0]} again "
                "to resume its batch)")
        ledger.set_meta("signer_kid", info.kid.hex())
        earlier = _earlier_places(ledger, place)
        ensure_dir(out / "qr")
        if card:
            ensure_dir(out / "cards")
        _clean_temporaries(out)
        done = ledger.issued_rows(source)
        fresh = not ledger.count(source)  # then this run issues all the manifest lists
        # credentials issued here before the office's register knew of them (an older
        # vaxqr): their citizens are entered as their rows are read again
        unregistered: list[tuple[Record, str]] | None = None
        if office is not None:
            if fresh:
                ledger.set_meta(REGISTERED, "1")
            elif ledger.get_meta(REGISTERED) is None:
                unregistered = []
        issued_uvci = dict(done.values())  # record digest -> UVCI
        skips = _one_per_citizen(csv_path, repeated, today=today, issued=issued_uvci) \
            if repeated else {}
        del repeated

        def not_signed(n: int, skip: tuple[str, str]) -> None:
            """A row one credential per citizen leaves out: refused or superseded."""
            (result.rejected if skip[0] == "conflict" else result.superseded).append(
                (n, skip[1]))

        def jobs() -> Iterator[Record]:
            seen: set[str] = set()  # the records of this CSV (resumed batches only)
            counted: set[str] = set()  # the signed records counted "already" in this run
            taken: list[int] = []  # rows whose number an earlier record's credential holds
            for n, fields in read_csv(csv_path, source_rows=True):
                result.total_rows += 1
                if "__error__" in fields:
                    result.rejected.append((n, str(fields["__error__"])))
                    continue
                skip = skips.get(n) if skips else None
                if skip is not None and not done:  # a fresh batch: not even parsed
                    not_signed(n, skip)
                    continue
                try:
                    rec = parse_record(n, fields, today=today)
                except ValidationError as exc:
                    result.rejected.append((n, str(exc)))
                    continue
                if done:  # a resumed batch: a record is known by its content, not its row
                    digest = rec.digest()
                    seen.add(digest)
                    # signed here, or moved (rows deleted or added above): counted once; an
                    # identical copy of it is what it was, a superseded duplicate
                    if digest in issued_uvci and digest not in counted:
                        counted.add(digest)
                        result.already += 1
                        if unregistered is not None:
                            unregistered.append((rec, issued_uvci[digest]))
                        continue
                    if skip is not None:
                        not_signed(n, skip)
                        continue
                    if digest in issued_uvci:  # a copy outside any group (not expected)
                        result.superseded.append(
                            (n, f"the same record as another row, issued as "
                                f"{issued_uvci[digest]}: one credential per citizen"))
                        continue
                    if n in done:  # said at the end, once every record of the CSV is seen
                        taken.append(n)
                        continue
                yield rec
            for n in taken:
                old, uvci = done[n]
                if old in seen:  # that record is still in the CSV, at another row
                    why = (f"row {n}'s number is held in this output directory by credential "
                           f"{uvci}, whose record has moved to another row (rows were added or "
                           "deleted above it)")
                else:
                    why = (f"row {n} held another record when credential {uvci} was issued "
                           "from it (the row was edited, or rows were added or deleted above "
                           "it; check that credential and revoke it if it is wrong)")
                result.rejected.append((n, why + ": this row is not signed; issue new or "
                                        "changed rows from a new CSV into a new output "
                                        "directory"))

        kid = info.kid.hex()
        uvcis = UvciMaker(info.province_code, info.commune_code)

        def issued_here(uvci: str) -> bool:  # a claim of this batch's: signed, or cut short
            return ledger.find(uvci) is not None

        signed: list[Signed] = []  # a chunk's credentials, signed, for the register
        # The manifest is streamed while the batch runs when this run issues every entry
        # it will list (a fresh batch); otherwise (a resumed batch) it is written from the
        # ledger at the end. Either way it appears (atomically) only once its images are
        # on disk.
        with atomic_open(out / "manifest.csv", overwrite=True, text=True) as manifest_fh:
            manifest = csv.writer(manifest_fh, lineterminator="\n")
            manifest_fh.write("\ufeff" if bom else "")
            manifest.writerow(_manifest_header(card))
            flushing: _Sync | None = None  # writes the images out as the batch goes
            synced = 0  # credentials issued when the last background sync started
            with _Workers(info, out, fmt, card, workers) as pool:
                if progress:  # after the forks: a progress bar may start a thread
                    progress(0, total_rows)
                for chunk in _chunks(jobs()):
                    # every row signed was read from the file the first pass read
                    check_unchanged(csv_path, before, _CHANGED)
                    entries = []
                    if unregistered:  # before a later row of one of their citizens
                        assert office is not None
                        _backfill(office, ledger, unregistered, place, source, result)
                        unregistered.clear()
                    if office is None:
                        pairs = list(zip(chunk, uvcis.draw(len(chunk)), strict=True))
                    else:  # claimed, committed, before anything is signed
                        pairs = _claim_chunk(office, chunk, uvcis, place, source, result,
                                             kid, signed, issued_here, earlier)
                        signed = []
                    for rec, uvci in pairs:
                        hc1, iat, exp = sign_record(info, rec, uvci)
                        entries.append(Entry(uvci, source, rec.row, rec.digest(),
                                             rec.full_name, kid, iat, exp, hc1,
                                             image_name(rec.row, fmt)))
                        if len(entries) % FEED_EVERY == 0:
                            pool.feed()  # the forked renderers never wait for work
                    if entries:
                        ledger.add_many(entries)  # fsynced: only now may the images appear
                        if office is not None:  # recorded with the next chunk's claims
                            signed = [(kid, hc1_digest(e.hc1), e.exp,
                                       citizen.citizen_key(rec.id_number), e.uvci)
                                      for (rec, _), e in zip(pairs, entries, strict=True)]
                    pool.add([(e.row, e.hc1) for e in entries])
                    if fresh:
                        manifest_fh.writelines(_manifest_pieces(entries, card))
                    result.issued += len(entries)
                    if result.issued - synced >= SYNC_EVERY and (flushing is None
                                                                 or flushing.done()):
                        synced = result.issued
                        flushing = _Sync()  # less left for the final sync
                    pool.work(next_rows=min(2 * len(chunk), MAX_CHUNK))
                    if progress:
                        progress(result.total_rows, total_rows)
                if office is not None:  # the last chunk's (and, resumed, an earlier run's)
                    office.record_signed([*signed, *(
                        [s for at in (place, *earlier)
                         for s in _unrecorded(office, ledger, at, signer.certificate)]
                        if done else ())])
                check_unchanged(csv_path, before, _CHANGED)  # what the rejects list says
                if unregistered is not None:
                    assert office is not None
                    if unregistered:
                        _backfill(office, ledger, unregistered, place, source, result)
                    if result.already == len(done):  # each one's row was read again
                        ledger.set_meta(REGISTERED, "1")
                if done:  # credentials of earlier runs, kept as issued, may have expired
                    ended = ledger.expired(source, int(time.time()))
                    if ended:
                        result.warnings.append(_expired_warning(ended))
                pool.drain()
            # This run's images are written (the run raised otherwise) but not yet synced;
            # earlier runs' may be missing or damaged by a crash or a power loss, or be
            # whole but not yet synced either (a run killed before its final sync): synced
            # here too, even when this run signs nothing.
            if flushing is not None:
                flushing.wait()
            syncer = _Sync() if result.issued or done else None
            try:
                result.images_restored, result.cards_written = _restore_images(
                    ledger, out, source, info, card, done)
                if not fresh:
                    manifest_fh.seek(0)
                    manifest_fh.truncate()
                    manifest_fh.write("\ufeff" if bom else "")
                    manifest.writerow(_manifest_header(card))
                    for part in _chunks(ledger.entries(source)):
                        manifest_fh.writelines(_manifest_pieces(part, card))
            finally:
                if syncer is not None:
                    syncer.wait()  # every image on disk before the manifest lists it
        # still holding the directory: a run starting now would clear this file's
        # temporary as a crash's leftover
        _write_rejects(out, [*result.rejected, *result.superseded], bom)
    result.seconds = time.perf_counter() - started
    return result


#: Batch ledger meta key: the places (resolved OUT_DIR paths, a JSON list) the batch ran
#: at, the register's claims naming them being its own (:func:`_earlier_places`).
PLACES = "places"


def _earlier_places(ledger: Ledger, place: str) -> tuple[str, ...]:
    """The other places this batch's ledger ran at (its OUT_DIR moved, or restored on
    another computer), after recording ``place`` among them. A run killed between a
    chunk's claims and its ledger commit left claims naming the place it ran at: the run
    again, elsewhere, took them for another batch's and refused those citizens as "already
    issued" under UVCIs never signed. A claim taken as its own is claimed again naming the
    new place, so a copy of the OUT_DIR resumed too finds it another batch's."""
    try:
        known = [str(p) for p in json.loads(ledger.get_meta(PLACES) or "[]")]
    except (ValueError, TypeError):
        known = []
    if place not in known:
        known.append(place)
        ledger.set_meta(PLACES, json.dumps(known))
    return tuple(p for p in known if p != place)


def _unrecorded(register: Register, ledger: Ledger, place: str,
                certificate: Any) -> list[Signed]:
    """What the office's register lacks of this batch's credentials (``place``): claims of
    a run that stopped between a chunk's ledger commit and the next chunk's claims, whose
    key id, digest and expiry are recorded from the batch's ledger as a later run of the
    batch finds it (a claim of another run's ledger lacks them for good: old entries, see
    :mod:`vaxqr.reprint`). The batch's ledger lies outside the signer directory, and may
    have changed since: a text is recorded only when it is the claim's credential signed
    with this batch's ``certificate`` (:func:`vaxqr.reprint.signed_by`), or the register
    would vouch for whatever was put there; another stays unrecorded, and --reprint then
    checks it as it can (and refuses it: its signature does not verify)."""
    from .reprint import signed_by

    missing = [c for c in register.claims(place) if not c.hc1_sha256]
    found = [(c, ledger.find(c.uvci)) for c in missing]
    return [(e.kid, hc1_digest(e.hc1), e.exp, c.citizen, c.uvci) for c, e in found
            if e is not None and signed_by(e, c.uvci, certificate)]


def _expired_warning(ended: Sequence[tuple[int, str, int]]) -> str:
    """What a resumed batch says of its earlier runs' credentials that have expired
    (``(row, uvci, exp)``, in row order): kept as issued (images, cards, manifest), they
    are refused at every checkpoint and no batch signs their citizens again."""
    n = len(ended)
    rows = ", ".join(row_label(row) for row, _, _ in ended[:5]) + (", …" if n > 5 else "")
    first = datetime.fromtimestamp(min(exp for _, _, exp in ended), UTC)
    return (f"{n} credential{'' if n == 1 else 's'} of this batch ha{'s' if n == 1 else 've'} "
            f"expired (the first on {first:%Y-%m-%d}: {rows}): kept as issued, in the "
            f"manifest and the images, but every checkpoint refuses {'it' if n == 1 else 'them'}"
            " and no batch signs a citizen again for the same dose: sign each a new "
            "credential with a single issue of their record and --reissue")


def _chunks(jobs: Iterable[_T]) -> Iterator[list[_T]]:
    """Chunks of CHUNK jobs, doubling up to MAX_CHUNK: the workers get their first images
    soon, and a long batch waits for one ledger fsync per 512 rows instead of per 64."""
    size = CHUNK
    chunk: list[_T] = []
    for job in jobs:
        chunk.append(job)
        if len(chunk) == size:
            yield chunk
            chunk = []
            size = min(2 * size, MAX_CHUNK)
    if chunk:
        yield chunk


class _Child:
    """A forked rendering process and this process's ends of its two pipes."""

    def __init__(self, proc: Any, tasks: Any, done: Any) -> None:
        self.proc, self.tasks, self.done = proc, tasks, done
        self.in_hand = 0  # tasks sent and not yet acknowledged

    def send(self, items: Sequence[tuple[int, str]]) -> None:
        try:
            self.tasks.send(items)
        except OSError:  # its end of the pipe is closed: it died, maybe after reporting why
            self.collect(wait=True)  # raises its error if it sent one, else _ended()
            raise _ended() from None
        self.in_hand += 1

    def collect(self, *, wait: bool = False) -> None:
        """Count the finished tasks (all in hand with ``wait``); raise the child's error."""
        while self.in_hand and (wait or self.done.poll()):
            try:
                reply = self.done.recv_bytes()
            except (EOFError, OSError):
                raise _ended() from None
            if reply:
                raise _child_error(reply)
            self.in_hand -= 1


def _ended() -> StorageError:
    return StorageError("a rendering process ended unexpectedly",
                        hint="run the same command again: it resumes")


def _child_error(reply: bytes) -> BaseException:
    import pickle

    try:
        exc = pickle.loads(reply)  # from our own forked process
    except Exception:  # any failure to rebuild it is reported as such
        return StorageError("a rendering process failed")
    return exc if isinstance(exc, BaseException) else StorageError(str(exc))


def _portable(exc: Exception) -> VaxqrError:
    """A renderer's error as the parent will raise it: a vaxqr error as it is when pickle
    can rebuild it, else a :class:`StorageError` with its message and hint."""
    import pickle

    if isinstance(exc, VaxqrError):
        try:
            again = pickle.loads(pickle.dumps(exc))
        except Exception:
            again = None
        if type(again) is type(exc) and str(again) == str(exc):
            return exc
        return StorageError(f"rendering failed: {exc}", hint=exc.hint)
    return StorageError(f"rendering failed: {type(exc).__name__}: {exc}")


def _child_main(tasks: Any, done: Any, others: Sequence[Any], info: SignerInfo, out: str,
                fmt: str, card: str | None) -> None:
    """A forked rendering process: render and write each task until told to stop."""
    import pickle
    import signal

    for conn in others:  # the parent's ends of every pipe, inherited: so that this process
        conn.close()  # sees the end of its tasks when the parent dies, even by SIGKILL
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle, and
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a `kill` of the group: the parent ends
    # this process (SIGKILL, _Workers._stop) once it has stopped the batch where it is safe
    _pool_init(info, out, fmt, card)
    assert _WRITER is not None
    try:
        while True:
            try:
                items = tasks.recv()
            except EOFError:  # the parent is gone
                return
            if items is None:
                return
            try:
                _WRITER(items)
            except Exception as exc:  # every failure goes to the parent
                reply = pickle.dumps(_portable(exc))
                try:
                    done.send_bytes(reply)
                except OSError:  # the parent is gone or stopping us: nothing to report to
                    pass
                return
            try:
                done.send_bytes(b"")
            except OSError:
                return
    finally:
        _WRITER.close()


class _Workers:
    """Rendering and image writing, shared by this process and ``workers - 1`` forked ones.

    Only credentials already in the ledger are added. They wait in a queue of tasks of
    RENDER_TASK credentials: :meth:`feed` keeps each forked process at _WINDOW tasks in
    hand, and :meth:`work` renders the rest here, but for what the forked processes will
    take while this one signs the next chunk. So each core runs one process and every one
    stays busy (with a pool of ``workers`` renderers beside this process, three processes
    shared two cores: ~60 µs more CPU per credential, in time slicing and the pool's own
    thread), and memory stays constant. :meth:`drain` renders what is left and waits for
    every task to finish (or raise).
    """

    def __init__(self, info: SignerInfo, out: Path, fmt: str, card: str | None,
                 workers: int | None) -> None:
        self.args = (info, str(out), fmt, card)
        self.n = max(1, workers if workers is not None
                     else min(os.cpu_count() or 1, DEFAULT_PROCESSES_MAX))
        self.children: list[_Child] = []
        self.queue: deque[Sequence[tuple[int, str]]] = deque()

    def __enter__(self) -> _Workers:
        # The renderer (NumPy; PIL for cards) is loaded here once, before the forks, instead
        # of in every child (~50 ms of CPU each).
        from . import qr  # noqa: F401
        if self.args[3]:
            from . import card  # noqa: F401
        try:
            if self.n > 1:
                ctx = multiprocessing.get_context("fork")
                for _ in range(self.n - 1):
                    task_r, task_w = ctx.Pipe(duplex=False)
                    done_r, done_w = ctx.Pipe(duplex=False)
                    others = [c for child in self.children for c in (child.tasks, child.done)]
                    proc = ctx.Process(target=_child_main, daemon=True, name="vaxqr-render",
                                       args=(task_r, done_w, [*others, task_w, done_r],
                                             *self.args))
                    proc.start()  # now, before this process starts any thread
                    task_r.close()
                    done_w.close()
                    self.children.append(_Child(proc, task_w, done_r))
            _keep_heap()  # this process renders too
            _writer_init(*self.args)
        except OSError as exc:  # out of processes, memory or file descriptors
            self._stop()
            raise StorageError(f"cannot start {self.n - 1} rendering processes: "
                               f"{exc.strerror or exc}",
                               hint="give --workers a smaller number") from exc
        except BaseException:
            self._stop()
            raise
        return self

    def __exit__(self, exc_type: object, *_exc: object) -> None:
        self._stop(graceful=exc_type is None)

    def _stop(self, *, graceful: bool = False) -> None:
        global _WRITER
        if not graceful:  # before the pipes close: no child sees a broken pipe first
            for child in self.children:  # (SIGKILL: they ignore SIGTERM; an image is
                child.proc.kill()  # linked into place whole or not at all)
        for child in self.children:
            try:
                if graceful:
                    child.tasks.send(None)
            except OSError:
                pass
            child.tasks.close()
            child.done.close()
        for child in self.children:
            child.proc.join()
        self.children = []
        if _WRITER is not None:
            _WRITER.close()
            _WRITER = None

    def add(self, items: Sequence[tuple[int, str]]) -> None:
        """Queue the images of recorded credentials, and hand out what the others can take."""
        for i in range(0, len(items), RENDER_TASK):
            self.queue.append(items[i:i + RENDER_TASK])
        self.feed()

    def feed(self) -> None:
        """Count what the forked processes finished; top each up to _WINDOW tasks in hand."""
        queue = self.queue
        for child in self.children:
            child.collect()
            while queue and child.in_hand < _WINDOW:
                child.send(queue.popleft())

    def work(self, next_rows: int) -> None:
        """Render here all but what the forked processes will take while this process signs
        the next ``next_rows`` rows."""
        keep = _CHUNK_RENDERED_MEANWHILE * next_rows * len(self.children) / RENDER_TASK
        while len(self.queue) > keep:
            _render_and_write(self.queue.pop())  # the newest: the oldest go out first
            self.feed()

    def drain(self) -> None:
        """Render everything queued and wait until every task is done; raise the first error
        (a full disk)."""
        while self.queue:
            self.feed()
            if self.queue:
                _render_and_write(self.queue.pop())
        for child in self.children:
            child.collect(wait=True)


def _clean_temporaries(out: Path) -> None:
    for directory in (out, out / "qr", out / "cards"):
        for tmp in directory.glob(".*.tmp"):
            try:
                tmp.unlink()
            except OSError:
                pass


_PNG_HEAD = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the IEND chunk, always last
_ZEROS = bytes(512)


def _png_whole(data: bytes) -> bool:
    """Whether ``data`` is a PNG signature followed by chunks whose CRCs all hold, the last
    being IEND at the very end."""
    if not data.startswith(_PNG_HEAD) or not data.endswith(_PNG_END):
        return False
    at, end = len(_PNG_HEAD), len(data)
    while at + 12 <= end:
        length = int.from_bytes(data[at:at + 4], "big")
        stop = at + 8 + length
        if stop + 4 > end:
            return False
        if zlib.crc32(data[at + 4:stop]) != int.from_bytes(data[stop:stop + 4], "big"):
            return False
        if data[at + 4:at + 8] == b"IEND":
            return stop + 4 == end
        at = stop + 4
    return False


def intact(path: Path) -> bool:
    """Whether an image or card file is whole: present, with its format's first and last
    bytes (PNG signature and IEND chunk, SVG's closing tag, PDF's ``%%EOF``), a PNG's every
    chunk matching its CRC, an SVG free of NUL bytes, a PDF free of any run of 512 of them.
    A power loss after a non-durable write can leave a file empty, cut short, or
    zero-filled, wholly or in part (a block of its middle never written: its first and last
    bytes alone do not tell). The whole file is read: ~75 µs for a card's PNG from the page
    cache, so a resume of 100,000 cards spends seconds here."""
    try:
        data = path.read_bytes()
    except OSError:
        return False
    suffix = path.suffix.lower()
    if suffix == ".png":
        return _png_whole(data)
    if suffix == ".svg":
        return (data.startswith(b"<?xml") and data.rstrip().endswith(b"</svg>")
                and b"\0" not in data)
    if suffix == ".pdf":  # its streams are deflated: 512 zero bytes are a lost block
        return (data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
                and _ZEROS not in data)
    return len(data) > 0


def _restore_images(ledger: Ledger, out: Path, source: str, info: SignerInfo,
                    card: str | None, earlier: Mapping[int, object]) -> tuple[int, int]:
    """Re-render, from the ledger, every image (and card) of an earlier run (rows in
    ``earlier``) that a crash or a power loss left missing or damaged. This run's images
    were all written (the run raised otherwise), and are synced before the manifest.
    Returns (images, cards) written."""
    restored = cards = 0
    if not earlier:
        return 0, 0
    for e in ledger.entries(source):
        if e.row not in earlier:
            continue
        if e.file and not intact(out / e.file):
            atomic_write(out / e.file, render(e.hc1, e.file.rsplit(".", 1)[-1]), overwrite=True)
            restored += 1
        if card and not intact(out / card_name(e.row, card)):
            atomic_write(out / card_name(e.row, card), render_card(e.hc1, info, card),
                         overwrite=True)
            cards += 1
    return restored, cards


def _csv_bytes(header: Sequence[str], rows: Sequence[Sequence[object]],
               bom: bool) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return (UTF8_BOM if bom else b"") + buf.getvalue().encode("utf-8")


def _manifest_header(card: str | None) -> tuple[str, ...]:
    return ("row", "uvci", "full_name", "file", "hc1", "iat", "exp") + (
        ("card",) if card else ())


def _manifest_row(e: Entry, card: str | None) -> tuple[object, ...]:
    row = (e.row, e.uvci, spreadsheet_cell(e.full_name), e.file or "", e.hc1, e.iat, e.exp)
    return (*row, card_name(e.row, card)) if card else row


def _csv_plain(text: str) -> bool:
    """Whether csv.writer (QUOTE_MINIMAL) writes ``text`` as it is."""
    return "," not in text and '"' not in text and "\n" not in text and "\r" not in text


def _manifest_text(entries: Sequence[Entry], card: str | None) -> str:
    """Manifest rows, exactly as ``csv.writer(fh, lineterminator="\\n")`` writes them."""
    return "".join(_manifest_pieces(entries, card))


def _manifest_pieces(entries: Sequence[Entry], card: str | None) -> list[str]:
    """:func:`_manifest_text` in pieces, for a text file's ``writelines``: a name that is
    not ASCII apart from the ASCII text around it. In one string with a Vietnamese name a
    row's 550-character HC1 is held at 2 bytes a character, and the file's UTF-8 encoder
    then goes through it character by character (~8,000 instructions a row); an ASCII
    piece is written as it is.

    csv.writer checks each character of each field for one to quote, ~5 µs for a row with
    its 550-character HC1; here four C searches per field decide, and a row with any
    character to quote (a name with a comma, say) still goes through the writer. The name
    goes through :func:`spreadsheet_cell` (an earlier version's ledger may hold one that a
    spreadsheet would run).
    """
    pieces: list[str] = []
    for e in entries:
        file = e.file or ""
        name = spreadsheet_cell(e.full_name)
        if (_csv_plain(name) and _csv_plain(e.uvci) and _csv_plain(e.hc1)
                and _csv_plain(file)):
            head = f"{e.row},{e.uvci},"
            tail = f",{file},{e.hc1},{e.iat},{e.exp}"
            tail = f"{tail},{card_name(e.row, card)}\n" if card else tail + "\n"
            if name.isascii():
                pieces.append(head + name + tail)
            else:
                pieces += (head, name, tail)
        else:
            buf = io.StringIO()
            csv.writer(buf, lineterminator="\n").writerow(_manifest_row(e, card))
            pieces.append(buf.getvalue())
    return pieces


class _Sync:
    """``os.sync()`` in a thread: the batch's images (written without fsync) go to disk
    while the manifest is finished; :meth:`wait` before the manifest appears."""

    def __init__(self) -> None:
        self._syncer = threading.Thread(target=os.sync, name="vaxqr-sync", daemon=True)
        self._syncer.start()

    def done(self) -> bool:
        return not self._syncer.is_alive()

    def wait(self) -> None:
        self._syncer.join()


def _write_rejects(out: Path, rejected: Sequence[tuple[int, str]], bom: bool) -> None:
    rows = [(n, n + 1, spreadsheet_cell(why)) for n, why in sorted(rejected)]
    atomic_write(out / "rejects.csv", _csv_bytes(REJECT_COLUMNS, rows, bom),
                 overwrite=True)


__all__ = ["COLUMNS", "BatchResult", "Record", "SignerInfo", "asdict", "credential_times",
           "issue_batch", "issue_single", "parse_record", "read_csv", "register_verdict",
           "render", "sign_record", "signer_info"]
