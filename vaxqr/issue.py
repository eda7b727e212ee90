"""Issuing: from commune records to signed ``HC1:`` credentials, one or a hundred thousand.

Each record is validated before signing (ID number against DOB and sex, real dates in a sane
order, dose ≤ total, known vaccine, a name); a bad row is rejected with its row number and
reason and the batch goes on. Batches are crash-safe through the :mod:`vaxqr.ledger`:
a credential is recorded before its image is written, a re-run skips what the ledger holds,
re-renders missing images, and rewrites the manifest from the ledger. Signing and QR rendering
run in worker processes (one per core).
"""

from __future__ import annotations

import csv
import hashlib
import io
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from . import citizen, sign
from .codec import encode_hc1
from .credential import Certificate, PersonName, Vaccination, find_vaccine, make_uvci
from .errors import KeyCertError, StorageError, ValidationError
from .fileio import atomic_open, atomic_write, ensure_dir
from .ledger import Entry, Ledger

COLUMNS = ("full_name", "sex", "dob", "id_number", "dose_number", "total_doses",
           "vaccination_date", "vaccine", "lot", "site")
REQUIRED = COLUMNS[:8]
VALIDITY_DAYS = 365  # QĐ 5772: the QR is valid for 12 months
MAX_ISSUER = 80
CHUNK = 64


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

    def digest(self) -> str:
        """SHA-256 of the normalised record: what the ledger recognises on a re-run."""
        parts = [self.full_name, self.sex, self.dob.isoformat(), self.id_number, str(self.dose),
                 str(self.total), self.vaccination_date.isoformat(), self.vaccine_key, self.lot,
                 self.site]
        return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


def _int(value: str, what: str) -> int:
    v = value.strip()
    if not v.isdigit() or len(v) > 3:
        raise ValidationError(f"{what} {value!r} is not a whole number")
    return int(v)


def parse_record(row: int, fields: Mapping[str, str | None], *, today: date) -> Record:
    """Validate one input row; raise :class:`ValidationError` with the reason."""
    def get(key: str) -> str:
        value = fields.get(key)
        return value.strip() if isinstance(value, str) else ""

    for key in REQUIRED:
        if not get(key):
            raise ValidationError(f"{key} is empty")
    name = citizen.normalize_name(get("full_name"))
    PersonName.from_full_name(name)  # transliterable, not too long
    sex = citizen.parse_sex(get("sex"))
    dob = citizen.parse_date(get("dob"))
    vdate = citizen.parse_date(get("vaccination_date"))
    if dob > today:
        raise ValidationError(f"date of birth {dob} is in the future")
    if dob.year < 1900:
        raise ValidationError(f"date of birth {dob} is before 1900")
    if vdate > today:
        raise ValidationError(f"vaccination date {vdate} is in the future")
    if vdate < dob:
        raise ValidationError(f"vaccination date {vdate} is before the date of birth {dob}")
    if vdate < date(2020, 12, 1):
        raise ValidationError(f"vaccination date {vdate} is before COVID-19 vaccines existed")
    id_number = get("id_number")
    problems = citizen.check_id_against(citizen.parse_id_number(id_number), dob=dob,
                                        sex=get("sex"))
    if problems:
        raise ValidationError("ID number disagrees with the record: " + "; ".join(problems))
    dose, total = _int(get("dose_number"), "dose number"), _int(get("total_doses"), "total doses")
    if dose < 1 or total < 1:
        raise ValidationError("dose numbers start at 1")
    if dose > total:
        raise ValidationError(f"dose {dose} is greater than the total {total}")
    vaccine = find_vaccine(get("vaccine"))
    return Record(row=row, full_name=name, sex=sex, dob=dob, id_number=id_number, dose=dose,
                  total=total, vaccination_date=vdate, vaccine_key=vaccine.key,
                  lot=citizen.normalize_name(get("lot")), site=citizen.normalize_name(get("site")))


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


def signer_info(signer: Any) -> SignerInfo:
    """Extract signing material from a loaded :class:`vaxqr.certs.Signer`."""
    from cryptography.hazmat.primitives import serialization

    pem = signer.private_key.private_bytes(
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
        raise KeyCertError(f"the signer certificate is not valid before {info.not_before:%Y-%m-%d}")
    if now >= info.not_after:
        raise KeyCertError(f"the signer certificate expired on {info.not_after:%Y-%m-%d}",
                           hint="ask the province for a new commune certificate")
    iat = int(now.timestamp())
    exp = min(int((now + timedelta(days=days)).timestamp()), int(info.not_after.timestamp()))
    return iat, exp


_KEYS: dict[bytes, Any] = {}


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
    cert = Certificate(
        name=PersonName.from_full_name(record.full_name),
        dob=record.dob,
        vaccination=Vaccination(vaccine=find_vaccine(record.vaccine_key), dn=record.dose,
                                sd=record.total, dt=record.vaccination_date, issuer=info.issuer,
                                ci=uvci),
    )
    payload = sign.encode_cwt(iss="VN", iat=iat, exp=exp, hcert=cert.to_dict())
    return encode_hc1(sign.sign1(payload, _private_key(info.key_pem), info.kid)), iat, exp


def render(hc1: str, fmt: str) -> bytes:
    """The QR picture of a credential (``png`` or ``svg``)."""
    from . import qr

    if fmt == "svg":
        return qr.to_svg(hc1).encode("utf-8")
    return qr.to_png(hc1)


def render_card(hc1: str, info: SignerInfo, fmt: str = "png") -> bytes:
    """A printable card (``png`` or ``pdf``), built from the credential's own content."""
    from . import qr
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
    return draw(data, qr.to_image(hc1), fmt=fmt)


# --------------------------------------------------------------------------- batches


@dataclass
class BatchResult:
    issued: int = 0  # signed in this run
    already: int = 0  # found in the ledger from an earlier run
    rejected: list[tuple[int, str]] = field(default_factory=list)
    images_restored: int = 0
    total_rows: int = 0
    seconds: float = 0.0
    out_dir: Path = Path(".")


def read_csv(path: Path) -> Iterator[tuple[int, dict[str, str | None]]]:
    """Yield (row number, fields); row 1 is the first data row. UTF-8 with or without BOM."""
    try:
        fh = path.open("rb")
    except OSError as exc:
        raise StorageError(f"cannot read {path}: {exc.strerror}") from exc
    with fh:
        text = io.TextIOWrapper(fh, encoding="utf-8-sig", newline="")
        try:
            reader = csv.DictReader(text)
            header = [h.strip().lower() for h in (reader.fieldnames or [])]
            missing = [c for c in REQUIRED if c not in header]
            if missing:
                raise ValidationError(
                    f"{path}: the CSV header lacks {', '.join(missing)}",
                    hint="expected header: " + ",".join(COLUMNS))
            reader.fieldnames = header
            for n, fields in enumerate(reader, 1):
                extra = fields.pop(None, None)
                if extra:
                    fields["__error__"] = f"the row has {len(extra)} field(s) too many"
                elif any(fields.get(c) is None for c in REQUIRED):
                    fields["__error__"] = "the row has too few fields"
                yield n, fields
        except UnicodeDecodeError as exc:
            raise ValidationError(
                f"{path} is not UTF-8 (byte {exc.start} of a line)",
                hint="save the export as CSV UTF-8 (Excel: 'CSV UTF-8'), then run again") from None
        except csv.Error as exc:
            raise ValidationError(f"{path}: malformed CSV ({exc})") from None


def _count_rows(path: Path) -> int:
    """Data rows in a CSV (quoted newlines counted right), for the progress bar."""
    with path.open(encoding="utf-8-sig", errors="replace", newline="") as fh:
        return max(sum(1 for _ in csv.reader(fh)) - 1, 0)


def _worker_init(info: SignerInfo) -> None:
    global _WORKER_INFO
    _WORKER_INFO = info


def _pool_init(info: SignerInfo) -> None:
    """Initialise a worker process (ours alone, so its allocator may be tuned)."""
    _keep_heap()
    _worker_init(info)


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


_WORKER_INFO: SignerInfo | None = None


def _work(jobs: Sequence[tuple[Record, str]], fmt: str,
          card_fmt: str | None) -> list[tuple[int, str, int, int, bytes, bytes | None]]:
    assert _WORKER_INFO is not None
    out = []
    for record, uvci in jobs:
        hc1, iat, exp = sign_record(_WORKER_INFO, record, uvci)
        card = render_card(hc1, _WORKER_INFO, card_fmt) if card_fmt else None
        out.append((record.row, hc1, iat, exp, render(hc1, fmt), card))
    return out


def image_name(row: int, fmt: str) -> str:
    return f"qr/{row:07d}.{fmt}"


def card_name(row: int, fmt: str) -> str:
    return f"cards/{row:07d}.{fmt}"


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
) -> BatchResult:
    """Issue every valid row of ``csv_path`` into ``out_dir``; resumable after any crash."""
    started = time.perf_counter()
    if fmt not in ("png", "svg"):
        raise ValidationError(f"unknown image format {fmt!r} (png or svg)")
    if card not in (None, "png", "pdf"):
        raise ValidationError(f"unknown card format {card!r} (png or pdf)")
    info = signer_info(signer)
    credential_times(info, datetime.now(UTC))  # fail early on an expired signer
    today = today or date.today()
    out = ensure_dir(out_dir)
    ensure_dir(out / "qr")
    if card:
        ensure_dir(out / "cards")
    _clean_temporaries(out)
    source = csv_path.name
    result = BatchResult(out_dir=out)
    with Ledger(out / "ledger.sqlite") as ledger:
        owner = ledger.get_meta("signer_kid")
        if owner is not None and owner != info.kid.hex():
            raise StorageError(f"{out} holds a batch signed by another commune (kid {owner})",
                               hint="use a new output directory for this signer")
        ledger.set_meta("signer_kid", info.kid.hex())
        done = ledger.issued_rows(source)

        def jobs() -> Iterator[tuple[Record, str]]:
            for n, fields in read_csv(csv_path):
                result.total_rows = n
                if "__error__" in fields:
                    result.rejected.append((n, str(fields["__error__"])))
                    continue
                try:
                    rec = parse_record(n, fields, today=today)
                except ValidationError as exc:
                    result.rejected.append((n, str(exc)))
                    continue
                if n in done:
                    if done[n][0] != rec.digest():
                        result.rejected.append(
                            (n, f"row changed since credential {done[n][1]} was issued from "
                                "it; revoke that credential and issue from a new CSV"))
                    else:
                        result.already += 1
                    continue
                yield rec, make_uvci(info.province_code, info.commune_code)

        total_rows = _count_rows(csv_path) if progress else 0
        if progress:
            progress(0, total_rows)
        kid = info.kid.hex()
        with _Workers(info, fmt, card, workers) as pool:
            for batch in pool.signed(jobs()):
                entries = [Entry(uvci, source, rec.row, rec.digest(), rec.full_name,
                                 kid, iat, exp, hc1, image_name(rec.row, fmt))
                           for (_row, hc1, iat, exp, _img, _card), (rec, uvci) in batch]
                ledger.add_many(entries)  # recorded first: a crash after this re-renders images
                # Only now are the images written (by the workers, in parallel): atomically,
                # but not fsynced one by one (two fsyncs per image were most of a batch's
                # time); after a power loss _restore_images re-renders, from the ledger, any
                # image that is missing, empty or cut short.
                writes = [(str(out / image_name(row, fmt)), img)
                          for (row, _h, _i, _e, img, _c), _job in batch]
                if card:
                    writes += [(str(out / card_name(row, card)), card_bytes)
                               for (row, _h, _i, _e, _img, card_bytes), _job in batch
                               if card_bytes is not None]
                pool.write(writes)
                result.issued += len(batch)
                if progress:
                    progress(result.total_rows, total_rows)
        result.images_restored = _restore_images(ledger, out, source, info, card)
        if result.issued:
            os.sync()  # every image on disk before the manifest (fsynced) lists it
        _write_manifest(out, ledger.entries(source), card)
    _write_rejects(out, result.rejected)
    result.seconds = time.perf_counter() - started
    return result


def _chunks(jobs: Iterator[tuple[Record, str]]) -> Iterator[list[tuple[Record, str]]]:
    chunk: list[tuple[Record, str]] = []
    for job in jobs:
        chunk.append(job)
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


Signed = tuple[int, str, int, int, bytes, bytes | None]
Done = list[tuple[Signed, tuple[Record, str]]]


def _write_files(items: Sequence[tuple[str, bytes]]) -> None:
    for path, data in items:
        atomic_write(path, data, overwrite=True, durable=False)


class _Workers:
    """Signing, rendering and image writing in worker processes (or in this one).

    A bounded window of chunks is in flight (memory stays constant); image writes are
    submitted only after their chunk is in the ledger, and all have finished (or raised)
    when the ``with`` block exits normally.
    """

    def __init__(self, info: SignerInfo, fmt: str, card: str | None,
                 workers: int | None) -> None:
        self.info, self.fmt, self.card = info, fmt, card
        self.n = workers if workers is not None else (os.cpu_count() or 1)
        self.pool: ProcessPoolExecutor | None = None
        self.writes: list[Future[None]] = []

    def __enter__(self) -> _Workers:
        if self.n > 1:
            ctx = multiprocessing.get_context("fork")
            self.pool = ProcessPoolExecutor(self.n, mp_context=ctx, initializer=_pool_init,
                                            initargs=(self.info,))
        else:
            _worker_init(self.info)
        return self

    def __exit__(self, exc_type: object, *_exc: object) -> None:
        try:
            if exc_type is None:
                for fut in self.writes:
                    fut.result()  # raise the first write error (a full disk, say)
        finally:
            if self.pool is not None:
                self.pool.shutdown(wait=True, cancel_futures=exc_type is not None)

    def signed(self, jobs: Iterator[tuple[Record, str]]) -> Iterator[Done]:
        """Sign and render in chunks, yielding each chunk's results in order."""
        chunks = _chunks(jobs)
        if self.pool is None:
            for chunk in chunks:
                yield list(zip(_work(chunk, self.fmt, self.card), chunk, strict=True))
            return
        pending: list[tuple[Future[list[Signed]], list[Any]]] = []
        for chunk in chunks:
            pending.append((self.pool.submit(_work, chunk, self.fmt, self.card), chunk))
            if len(pending) >= 3 * self.n:
                fut, ch = pending.pop(0)
                yield list(zip(fut.result(), ch, strict=True))
        for fut, ch in pending:
            yield list(zip(fut.result(), ch, strict=True))

    def write(self, items: Sequence[tuple[str, bytes]]) -> None:
        """Write files (already recorded in the ledger) atomically, without fsync."""
        if self.pool is None:
            _write_files(items)
            return
        self.writes.append(self.pool.submit(_write_files, items))
        while self.writes and (self.writes[0].done() or len(self.writes) > 3 * self.n):
            self.writes.pop(0).result()


def _clean_temporaries(out: Path) -> None:
    for directory in (out, out / "qr"):
        for tmp in directory.glob(".*.tmp"):
            try:
                tmp.unlink()
            except OSError:
                pass


_PNG_HEAD = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the IEND chunk, always last


def intact(path: Path) -> bool:
    """Whether an image or card file is whole: present, with its format's first and last
    bytes (PNG signature and IEND chunk, SVG's closing tag, PDF's ``%%EOF``). A power loss
    after a non-durable write can leave a file empty, zero-filled or cut short."""
    try:
        with path.open("rb") as fh:
            head = fh.read(16)
            size = fh.seek(0, os.SEEK_END)
            fh.seek(max(0, size - 32))
            tail = fh.read()
    except OSError:
        return False
    suffix = path.suffix.lower()
    if suffix == ".png":
        return head.startswith(_PNG_HEAD) and tail.endswith(_PNG_END)
    if suffix == ".svg":
        return head.startswith(b"<?xml") and tail.rstrip().endswith(b"</svg>")
    if suffix == ".pdf":
        return head.startswith(b"%PDF-") and tail.rstrip().endswith(b"%%EOF")
    return size > 0


def _restore_images(ledger: Ledger, out: Path, source: str, info: SignerInfo,
                    card: str | None) -> int:
    """Re-render, from the ledger, every image (and card) a crash left missing or damaged."""
    restored = 0
    for e in ledger.entries(source):
        if e.file and not intact(out / e.file):
            atomic_write(out / e.file, render(e.hc1, e.file.rsplit(".", 1)[-1]), overwrite=True)
            restored += 1
        if card and not intact(out / card_name(e.row, card)):
            atomic_write(out / card_name(e.row, card), render_card(e.hc1, info, card),
                         overwrite=True)
            restored += 1
    return restored


def _csv_bytes(header: Sequence[str], rows: Sequence[Sequence[object]]) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue().encode("utf-8")


def _write_manifest(out: Path, entries: Iterator[Entry], card: str | None = None) -> None:
    """Stream the manifest from the ledger into an atomically replaced file."""
    with atomic_open(out / "manifest.csv", overwrite=True, text=True) as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(("row", "uvci", "full_name", "file", "hc1", "iat", "exp")
                   + (("card",) if card else ()))
        for e in entries:
            w.writerow((e.row, e.uvci, e.full_name, e.file or "", e.hc1, e.iat, e.exp)
                       + ((card_name(e.row, card),) if card else ()))


def _write_rejects(out: Path, rejected: Sequence[tuple[int, str]]) -> None:
    atomic_write(out / "rejects.csv", _csv_bytes(("row", "reason"), sorted(rejected)),
                 overwrite=True)


__all__ = ["COLUMNS", "BatchResult", "Record", "SignerInfo", "asdict", "credential_times",
           "issue_batch", "parse_record", "read_csv", "render", "sign_record", "signer_info"]
