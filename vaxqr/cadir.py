"""The CA directory on disk: its state, the certificates it issued, locking, atomic creation.

CA directory layout (``CA_DIR``)::

    ca.crt      the CA certificate (PEM)
    ca.key      its private key, encrypted PKCS#8 (PEM), mode 0600
    chain.pem   the CA certificate followed by its parent root, if any
    crl.pem     the current CRL, re-signed on every revocation and every trust list
    state.json  the CA's whole state: role, names, trust-list sequence, CRL number, every
                certificate issued (with its PEM) and every revocation (DSCs and credentials)
    .lock       an flock(2) lock file that serialises concurrent commands

:func:`open_ca` reads it (the key stays on disk); commands that change it take the lock,
re-read the state and write ``state.json`` atomically. New CA and signer directories are
written into a hidden sibling and renamed into place, so a failure leaves nothing half-made.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import json
import os
import re
import secrets
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .certinfo import (
    _aware,
    _dump_json,
    _parse_iso,
    _pem,
    _read_file,
    _unb64,
    _utcnow,
    b64,
    fingerprint,
    is_demo_certificate,
    iso,
    kid_of,
    load_certificates,
    name_str,
)
from .errors import (
    DiskFullError,
    KeyCertError,
    StorageError,
    TrustError,
    ValidationError,
    VaxqrError,
    full_disk_hint,
)
from .fileio import (
    PRIVATE,
    _fsync_dir,
    atomic_write,
    check_private_file,
    ensure_dir,
    refuse_foreign_symlink,
)
from .keys import PrivateKey, load_private_key, protection_warning

Status = Literal["valid", "expired", "revoked", "not-yet-valid"]
# what a new CA or signer directory holds (refuse_foreign_symlink's message)
NEW_KEY_HOLDS = "the new private key and certificate"


# --------------------------------------------------------------------------------------
# Directories written all at once


# The files that make a directory a CA's or a commune signer's: --force replaces a directory
# only by one of its own kind (never a CA's key and state by a signer's, or the reverse; nor
# a root CA by a province CA, or the reverse).
_KIND_FILES: dict[str, frozenset[str]] = {
    "ca": frozenset({"ca.crt", "ca.key", "state.json"}),
    "signer": frozenset({"signer.crt", "signer.key", "signer.json"}),
}


def this_host() -> str:
    """This computer's name as the directories a run leaves carry it: letters, digits and
    hyphens (``box.example.org`` is ``box-example-org``)."""
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:63] or "unknown"


def _run_tag() -> str:
    """``PID-RANDOM@HOST``, what a run's hidden directories end with: the pid and the
    computer tell :mod:`vaxqr.recover` whether the run is gone (a pid means nothing on
    another computer sharing the folder)."""
    return f"{os.getpid()}-{secrets.token_hex(4)}@{this_host()}"


def _prepare_dir(target: Path, files: dict[str, tuple[bytes, int]], *, force: bool,
                 kind: str) -> Path:
    """Write ``files`` into a fresh hidden sibling of ``target``; :func:`_commit_dir` it later.
    ``kind`` (``root``, ``province`` or ``signer``): with ``force``, what ``target`` may
    already be. A ``target`` reached through another user's symbolic link is refused."""
    refuse_foreign_symlink(target, NEW_KEY_HOLDS)
    if target.exists():
        if not target.is_dir():
            raise StorageError(f"{target} exists and is not a directory")
        if any(target.iterdir()):
            if not force:
                raise StorageError(f"{target} already exists", hint="use --force to replace it")
            _check_replaceable(target, kind)
    ensure_dir(target.parent)
    tmp = target.parent / f".{target.name}.new-{_run_tag()}"
    try:
        tmp.mkdir(mode=0o700)
        os.chmod(tmp, 0o700)
        for name, (data, mode) in files.items():
            (tmp / name).parent.mkdir(mode=0o700, exist_ok=True)  # trust/crl.pem
            atomic_write(tmp / name, data, mode=mode)
    except (OSError, StorageError) as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise _as_target(exc, tmp, target) from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return tmp


def _as_target(exc: OSError | StorageError, tmp: Path, target: Path) -> StorageError:
    """``exc``, met while writing the hidden ``tmp`` that becomes ``target``, naming what the
    user asked for: the hidden name means nothing to them, and it is removed already."""
    if isinstance(exc, StorageError):
        return type(exc)(exc.message.replace(str(tmp), str(target)), hint=exc.hint)
    if exc.errno == errno.ENOSPC:
        return DiskFullError(f"disk full while writing {target}", hint=full_disk_hint())
    return StorageError(f"cannot write {target}: {exc.strerror or exc}")


# Around _prepare_dir and _record_and_commit (certs init, certs issue), with
# errors.when_full: a full disk leaves nothing behind (the hidden directory is removed, the
# issuer's state and a directory to be replaced are as they were).
NOTHING_LEFT_HINT = full_disk_hint("run the same command again", "nothing was left behind "
                                   "(a directory it was to replace is unchanged)")


# A commune signer directory's office ledger (its citizen register and single issues,
# vaxqr.ledger): renewing the certificate in place keeps it, with SQLite's side files.
SIGNER_LEDGER = ("ledger.sqlite", "ledger.sqlite-wal", "ledger.sqlite-shm",
                 "ledger.sqlite-journal")
# ... and the trust material its clerk put in SIGNER/trust/ (the province's trust list and
# CRLs, which every `vaxqr issue` reads to know a revocation): a renewal must not drop it.
SIGNER_KEPT = (*SIGNER_LEDGER, "trust")


def signer_ledger(target: Path, commune_code: str) -> tuple[str, ...]:
    """The names of the office-ledger files (and the ``trust`` folder) in the signer
    directory ``target`` that a new certificate for ``commune_code`` written there with
    ``--force`` keeps (those that exist when it is committed); :class:`StorageError` when they
    belong to another commune (or to one that cannot be read), since a commune's ledger must
    be neither lost nor handed to another."""
    held = signer_commune(target)
    if not any((target / n).exists() for n in SIGNER_LEDGER):
        # a batch may open the register before the commit: the names are only candidates
        return SIGNER_KEPT if held == commune_code else ()
    if held != commune_code:
        whose = f"commune {held}'s" if held else "an unreadable signer's"
        raise StorageError(
            f"{target} holds {whose} office ledger (ledger.sqlite: its citizen register and "
            f"single issues); refusing to replace it with commune {commune_code}'s signer",
            hint="choose another directory")
    # all of them, not those here now: a -wal or -shm a `vaxqr issue` makes before the
    # commit (it opens the register meanwhile) moves too (_commit_dir moves what exists)
    return SIGNER_KEPT


def signer_commune(target: Path) -> str | None:
    """The commune code of the signer in ``target`` (signer.json, else signer.crt), or None."""
    try:
        code = json.loads(_read_file(target / "signer.json")).get("commune_code")
        if isinstance(code, str):
            return code
    except (VaxqrError, ValueError, AttributeError):
        pass
    try:
        attrs = load_certificates(target / "signer.crt")[0].subject.get_attributes_for_oid(
            x509.NameOID.SERIAL_NUMBER)
    except (VaxqrError, ValueError, IndexError):
        return None
    value = attrs[0].value if attrs else None
    return value if isinstance(value, str) else None


def _check_replaceable(target: Path, kind: str) -> None:
    """Refuse to replace ``target`` unless it is a directory of the same ``kind``:
    ``signer``, or a CA's role, ``root`` or ``province`` (read by :func:`existing_role`)."""
    has = {k: any((target / n).exists() for n in names) for k, names in _KIND_FILES.items()}
    new_is_ca = kind != "signer"
    what = "a CA directory" if new_is_ca else "a commune signer directory"
    if has["signer"] and new_is_ca:
        raise StorageError(f"{target} is a commune signer directory; refusing to replace it "
                           f"with {what}", hint="choose another directory")
    if has["ca"]:
        if not new_is_ca:
            raise StorageError(f"{target} is a CA directory; refusing to replace it with "
                               f"{what}", hint="choose another directory")
        old = existing_role(target)
        if old is None:
            raise StorageError(f"{target} holds a CA whose kind (root or province) cannot "
                               "be read; refusing to replace it",
                               hint="choose another directory")
        if old != kind:
            raise StorageError(f"{target} is a {old} CA; refusing to replace it with a "
                               f"{kind} CA", hint="choose another directory")
    elif not has["signer"]:
        raise StorageError(f"{target} is not a vaxqr CA or signer directory; refusing to "
                           "replace it")


def existing_role(target: Path) -> str | None:
    """``root`` or ``province``: the CA in ``target`` by its state, else by its certificate
    (basicConstraints pathLen 1 or 0); None when neither can be read."""
    try:
        return open_ca(target).role
    except VaxqrError:
        pass
    try:
        bc = load_certificates(target / "ca.crt")[0].extensions.get_extension_for_class(
            x509.BasicConstraints).value
    except (VaxqrError, ValueError, IndexError, x509.ExtensionNotFound):
        return None
    if not bc.ca or bc.path_length not in (0, 1):
        return None
    return "root" if bc.path_length == 1 else "province"


def _commit_dir(tmp: Path, target: Path, *, force: bool, kind: str,
                keep: tuple[str, ...] = ()) -> None:
    """Move the prepared ``tmp`` into place as ``target``. Without ``force`` a ``target``
    that appeared meanwhile (another run aimed at the same directory) is never replaced:
    rename(2) refuses a directory that is not empty, and the run fails as "already exists"
    instead of deleting the other run's key. The files named in ``keep`` (a signer's office
    ledger) move from the replaced directory into the new one."""
    old: Path | None = None
    moved: list[str] = []
    try:
        if force and target.is_dir() and any(target.iterdir()):  # an empty one: rename over
            _check_replaceable(target, kind)
            old = target.parent / f".{target.name}.old-{_run_tag()}"
            os.rename(target, old)
            for name in keep:
                if (old / name).exists():
                    _drop_prepared(tmp / name)  # the office's own wins (trust/: see below)
                    os.rename(old / name, tmp / name)
                    moved.append(name)
        os.rename(tmp, target)  # replaces at most an empty directory
        _fsync_dir(target.parent)  # in place before the command says so (a power cut)
    except (OSError, StorageError) as exc:
        if old is not None:
            for name in moved:  # back where they were, before tmp is removed
                os.rename(tmp / name, old / name)
        if old is not None and not target.exists():
            os.rename(old, target)
            old = None
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, StorageError):
            raise
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
            raise StorageError(f"{target} already exists (made by another run meanwhile?)",
                               hint="use --force to replace it") from exc
        raise StorageError(f"cannot create {target}: {exc.strerror or exc}") from exc
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _drop_prepared(path: Path) -> None:
    """Remove ``path`` of a prepared directory that the replaced one has too: a renewal of a
    directory without trust/ prepares the CA's CRL there, and a trust/ put in the old
    directory since is the office's own (rename(2) would refuse to move it onto the other)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    try:
        fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, PRIVATE)
    except OSError as exc:
        raise StorageError(f"cannot lock {directory}: {exc.strerror or exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


# --------------------------------------------------------------------------------------
# The CA state


@dataclass(frozen=True)
class IssuedCert:
    """One certificate a CA issued (a commune DSC, or a province CA under a root)."""

    serial: int
    kind: Literal["dsc", "ca"]
    certificate: x509.Certificate
    code: str  # commune code for a DSC, province code for a CA
    name: str
    issued_at: dt.datetime
    revoked_at: dt.datetime | None = None
    reason: str | None = None

    @property
    def serial_hex(self) -> str:
        return format(self.serial, "x")

    @property
    def kid(self) -> bytes:
        return kid_of(self.certificate)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.certificate)

    @property
    def not_before(self) -> dt.datetime:
        return self.certificate.not_valid_before_utc

    @property
    def not_after(self) -> dt.datetime:
        return self.certificate.not_valid_after_utc

    def status(self, at: dt.datetime | None = None) -> Status:
        t = _aware(at) if at else _utcnow()
        if self.revoked_at is not None and self.revoked_at <= t:
            return "revoked"
        if t > self.not_after:
            return "expired"
        if t < self.not_before:
            return "not-yet-valid"
        return "valid"


@dataclass(frozen=True)
class RevokedCredential:
    uvci: str
    hash: bytes
    revoked_at: dt.datetime


@dataclass(frozen=True)
class CAInfo:
    """A CA directory as read from disk (no private key), plus what the last command did."""

    directory: Path
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]  # this CA first, then its root if any
    role: Literal["province", "root"]
    code: str | None  # province code (None for a root)
    name: str
    trustlist_sequence: int
    crl_number: int
    issued: tuple[IssuedCert, ...]
    revoked_credentials: tuple[RevokedCredential, ...]
    files: tuple[Path, ...] = ()
    warnings: tuple[str, ...] = ()
    # serials crl.pem revokes that state.json did not record (a revocation stopped between
    # the two writes): read as revoked (see _adopt_crl_revocations), saved with the state
    crl_only: tuple[int, ...] = ()

    @property
    def is_demo(self) -> bool:
        return is_demo_certificate(self.certificate)

    @property
    def kid(self) -> bytes:
        return kid_of(self.certificate)


def _state_doc(ca: CAInfo) -> dict[str, Any]:
    return {
        "format": "vaxqr-ca-state",
        "version": 1,
        "role": ca.role,
        "code": ca.code,
        "name": ca.name,
        "trustlist_sequence": ca.trustlist_sequence,
        "crl_number": ca.crl_number,
        "issued": [
            {
                "serial": r.serial_hex,
                "kind": r.kind,
                "code": r.code,
                "name": r.name,
                "kid": r.kid.hex(),
                "fingerprint": r.fingerprint,
                "subject": name_str(r.certificate.subject),
                "not_before": iso(r.not_before),
                "not_after": iso(r.not_after),
                "issued_at": iso(r.issued_at),
                "revoked_at": iso(r.revoked_at) if r.revoked_at else None,
                "reason": r.reason,
                "certificate": _pem(r.certificate).decode("ascii"),
            }
            for r in ca.issued
        ],
        "revoked_credentials": [
            {"uvci": c.uvci, "hash": b64(c.hash), "type": "UCI", "revoked_at": iso(c.revoked_at)}
            for c in ca.revoked_credentials
        ],
    }


def open_ca(ca_dir: str | os.PathLike[str]) -> CAInfo:
    """Read a CA directory (certificates and state; the key stays on disk)."""
    d = Path(ca_dir)
    if not (d / "ca.crt").exists() or not (d / "state.json").exists():
        raise StorageError(
            f"{d} is not a vaxqr CA directory (no ca.crt/state.json)",
            hint="create one with: vaxqr certs init CA_DIR --name NAME --province CODE",
        )
    chain_file = d / "chain.pem"
    chain = load_certificates(chain_file if chain_file.exists() else d / "ca.crt")
    cert = load_certificates(d / "ca.crt")[0]
    try:
        doc = json.loads(_read_file(d / "state.json"))
        issued = tuple(
            IssuedCert(
                serial=int(e["serial"], 16),
                kind=e["kind"],
                certificate=x509.load_pem_x509_certificate(e["certificate"].encode("ascii")),
                code=e["code"],
                name=e["name"],
                issued_at=_parse_iso(e["issued_at"], "issued_at"),
                revoked_at=_parse_iso(e["revoked_at"], "revoked_at") if e["revoked_at"] else None,
                reason=e["reason"],
            )
            for e in doc["issued"]
        )
        creds = tuple(
            RevokedCredential(
                c["uvci"], _unb64(c["hash"], "hash"), _parse_iso(c["revoked_at"], "revoked_at")
            )
            for c in doc["revoked_credentials"]
        )
        ca = CAInfo(
            directory=d,
            certificate=cert,
            chain=tuple(chain),
            role=doc["role"],
            code=doc["code"],
            name=doc["name"],
            trustlist_sequence=int(doc["trustlist_sequence"]),
            crl_number=int(doc["crl_number"]),
            issued=issued,
            revoked_credentials=creds,
        )
    except (ValueError, KeyError, TypeError, AttributeError, TrustError) as exc:
        raise StorageError(f"{d / 'state.json'} is damaged: {exc}") from exc
    return _adopt_crl_revocations(ca)


# The reasons `certs revoke` takes, by the name state.json records.
REVOCATION_REASONS: dict[str, x509.ReasonFlags] = {
    "unspecified": x509.ReasonFlags.unspecified,
    "key-compromise": x509.ReasonFlags.key_compromise,
    "ca-compromise": x509.ReasonFlags.ca_compromise,
    "affiliation-changed": x509.ReasonFlags.affiliation_changed,
    "superseded": x509.ReasonFlags.superseded,
    "cessation-of-operation": x509.ReasonFlags.cessation_of_operation,
}


def _adopt_crl_revocations(ca: CAInfo) -> CAInfo:
    """``ca`` with the revocations its own ``crl.pem`` (signed by its key) holds and its
    state lacks: ``certs revoke`` writes the CRL, then the state, and one stopped between
    the two (kill -9, a power cut) left a certificate the CRL revokes listed as valid, put
    in the next trust list and dropped from the next CRL (re-signed from the state). Read
    as revoked, with a warning, they are saved with the state by the next command that
    saves it (revoke, crl, trustlist, issue)."""
    try:
        crl = x509.load_pem_x509_crl((ca.directory / "crl.pem").read_bytes())
        if not crl.is_signature_valid(ca.certificate.public_key()):  # type: ignore[arg-type]
            return ca
    except (OSError, ValueError, TypeError):
        return ca  # none, damaged or another CA's: the next CRL is signed from the state
    found: dict[int, tuple[dt.datetime, str]] = {}
    for entry in crl:  # (the entries are parsed on loading; only their extensions later)
        found[entry.serial_number] = (entry.revocation_date_utc, _entry_reason(entry))
    adopted: list[IssuedCert] = [r for r in ca.issued
                                 if r.revoked_at is None and r.serial in found]
    if not adopted:
        return ca
    issued = tuple(IssuedCert(**{**r.__dict__, "revoked_at": found[r.serial][0],
                                 "reason": found[r.serial][1]})
                   if r in adopted else r for r in ca.issued)
    notes = tuple(
        f"{ca.directory / 'crl.pem'} revokes {r.name} ({r.code}), serial {r.serial_hex}, "
        f"which {ca.directory / 'state.json'} does not record (a vaxqr certs revoke stopped "
        f"between writing the two): it is revoked; run that revoke again (or vaxqr certs crl "
        f"{ca.directory}) to record it there too" for r in adopted)
    return _replace(ca, issued=issued, warnings=(*ca.warnings, *notes),
                    crl_only=tuple(r.serial for r in adopted))


def _entry_reason(entry: x509.RevokedCertificate) -> str:
    """The reason ``entry`` of a CRL gives, as state.json records it: "unspecified" when it
    gives none, or one state.json does not record (certificate-hold: a CRL signed by hand),
    or an extension that cannot be read (a malformed reasonCode, or any other extension of
    the entry: cryptography parses them all at once). The certificate is revoked all the
    same: the CA signed its serial on the list."""
    try:
        flag = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    except (x509.ExtensionNotFound, ValueError, TypeError):
        return "unspecified"
    reason = flag.name.replace("_", "-")
    return reason if reason in REVOCATION_REASONS else "unspecified"


def _save_state(ca: CAInfo) -> None:
    atomic_write(ca.directory / "state.json", _dump_json(_state_doc(ca)), overwrite=True)


def _replace(ca: CAInfo, **changes: Any) -> CAInfo:
    return CAInfo(**{**ca.__dict__, **changes})


def _load_ca_key(ca: CAInfo, password: bytes | None) -> tuple[PrivateKey, list[str]]:
    path = ca.directory / "ca.key"
    key = load_private_key(path, password)
    warnings = [w for w in [check_private_file(path), protection_warning(path)] if w]
    if key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) != ca.certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ):
        raise KeyCertError(f"{path} does not belong to {ca.directory / 'ca.crt'}")
    return key, warnings


def list_issued(ca_dir: str | os.PathLike[str]) -> tuple[IssuedCert, ...]:
    """Every certificate the CA issued, oldest first; use ``IssuedCert.status(at)``."""
    return open_ca(ca_dir).issued


def find_issued(ca: CAInfo, ref: str) -> IssuedCert:
    """Find an issued certificate by a certificate file or signer directory, serial (hex),
    kid (hex), SHA-256 fingerprint, or commune code (when exactly one is unrevoked, or,
    when none is, exactly one was issued)."""
    p = Path(ref)
    if p.is_dir() and (p / "signer.crt").exists():
        p = p / "signer.crt"
    if p.is_file():
        fp = fingerprint(load_certificates(p)[0])
        for r in ca.issued:
            if r.fingerprint == fp:
                return r
        raise KeyCertError(f"{ref} was not issued by the CA in {ca.directory}")
    key = ref.strip().lower().removeprefix("0x").replace(":", "")
    hits = [
        r
        for r in ca.issued
        if key in (r.serial_hex, r.kid.hex(), r.fingerprint)
        or (r.code == ref.strip() and r.revoked_at is None)
    ]
    if not hits:  # a commune code whose certificates are all revoked: found among them
        hits = [r for r in ca.issued if r.code == ref.strip()]
    if not hits and len(key) >= _MIN_PREFIX and all(c in "0123456789abcdef" for c in key):
        # the start of a serial, kid or fingerprint, as `certs list` shows them (cut short)
        hits = [r for r in ca.issued
                if any(h.startswith(key) for h in (r.serial_hex, r.kid.hex(), r.fingerprint))]
    if len(hits) == 1:
        return hits[0]
    if not hits:
        raise KeyCertError(
            f"no certificate issued by {ca.directory} matches {ref!r}",
            hint="give a certificate file, a serial or kid (hex, its first 8 characters or "
                 "more), or see: vaxqr certs list CA_DIR",
        )
    listed = "; ".join(
        f"serial {r.serial_hex[:16]} (kid {r.kid.hex()}, commune {r.code}, issued "
        f"{iso(r.issued_at)}, {r.status()})" for r in hits)
    raise ValidationError(f"{ref!r} matches {len(hits)} certificates: {listed}",
                          hint="give the serial (its first 8 characters or more) or the "
                               "certificate file of the one to revoke")


_MIN_PREFIX = 8  # hex digits (32 bits); a prefix two certificates share is refused, listing them
