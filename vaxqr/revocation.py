"""Revocation on the CA side: revoking DSCs (re-signing the CRL) and recording credentials.

A revoked DSC goes into ``crl.pem`` at once and, as ``revoked_dscs``, into every later
trust list, which also leaves its certificate out. A revoked credential is recorded by
its DCC ``UCI`` hash (:func:`vaxqr.trustlist.credential_revocation_hash`) and published
with the next trust list. The verifier's side is :class:`vaxqr.trust.TrustStore`.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from .cadir import (
    REVOCATION_REASONS as REVOCATION_REASONS,  # (the reasons certs revoke takes)
)
from .cadir import (
    CAInfo,
    IssuedCert,
    RevokedCredential,
    _load_ca_key,
    _locked,
    _replace,
    _save_state,
    find_issued,
    open_ca,
)
from .certinfo import _aware, _utcnow
from .credential import uvci_check_ok
from .errors import ValidationError
from .fileio import atomic_write
from .keys import PrivateKey, _sign_kwargs
from .trustlist import credential_revocation_hash, normalize_uvci

CRL_DAYS_DEFAULT = 30



def _build_crl(
    ca: CAInfo, key: PrivateKey, *, now: dt.datetime, next_update: dt.datetime, number: int
) -> x509.CertificateRevocationList:
    ski = ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(now)
        .next_update(next_update)
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), False)
    )
    for r in ca.issued:
        if r.revoked_at is None:
            continue
        entry = (
            x509.RevokedCertificateBuilder().serial_number(r.serial).revocation_date(r.revoked_at)
        )
        if r.reason and r.reason != "unspecified":
            entry = entry.add_extension(x509.CRLReason(REVOCATION_REASONS[r.reason]), False)
        builder = builder.add_revoked_certificate(entry.build())
    return builder.sign(key, hashes.SHA256(), **_sign_kwargs(key))


def _write_crl(directory: Path, crl: x509.CertificateRevocationList) -> None:
    pem = crl.public_bytes(serialization.Encoding.PEM)
    atomic_write(directory / "crl.pem", pem, overwrite=True)


def _crl_number_on_disk(directory: Path) -> int:
    """The CRL number of ``directory``'s ``crl.pem`` (0 when there is none to read)."""
    try:
        crl = x509.load_pem_x509_crl((directory / "crl.pem").read_bytes())
        return int(crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number)
    except (OSError, ValueError, x509.ExtensionNotFound):
        return 0


def resign_crl(ca: CAInfo, key: PrivateKey, *, now: dt.datetime,
               next_update: dt.datetime) -> tuple[CAInfo, x509.CertificateRevocationList]:
    """Sign and write the CA's CRL from its state, then save the state (the caller holds
    the CA's lock). The CRL goes first, so a revocation recorded in the state is always
    on the CRL too; its number follows both the state's and the CRL on disk, so no two
    CRLs ever share one, even after a write that failed half-way."""
    number = max(ca.crl_number, _crl_number_on_disk(ca.directory)) + 1
    ca = _replace(ca, crl_number=number)
    crl = _build_crl(ca, key, now=now, next_update=next_update, number=number)
    _write_crl(ca.directory, crl)
    _save_state(ca)
    return ca, crl


@dataclass(frozen=True)
class Revocation:
    record: IssuedCert
    already_revoked: bool
    files: tuple[Path, ...]
    warnings: tuple[str, ...]


def revoke_certificate(
    ca_dir: str | os.PathLike[str],
    ref: str,
    *,
    password: bytes | None,
    reason: str = "unspecified",
    now: dt.datetime | None = None,
) -> Revocation:
    """Revoke an issued certificate: record it in state.json and re-sign ``crl.pem``.

    A revoked DSC is left out of every later trust list (and listed in ``revoked_dscs``).
    """
    if reason not in REVOCATION_REASONS:
        raise ValidationError(
            f"unknown reason {reason!r}; use one of {', '.join(REVOCATION_REASONS)}"
        )
    now = _aware(now) if now else _utcnow()
    d = Path(ca_dir)
    ca = open_ca(d)
    key, warnings = _load_ca_key(ca, password)
    with _locked(d):
        ca = open_ca(d)
        record = find_issued(ca, ref)
        # revoked by crl.pem only (an earlier run stopped before saving the state): that
        # run's revocation, recorded now
        already = record.revoked_at is not None and record.serial not in ca.crl_only
        if record.revoked_at is None:
            record = IssuedCert(**{**record.__dict__, "revoked_at": now, "reason": reason})
            issued = tuple(record if r.serial == record.serial else r for r in ca.issued)
            ca = _replace(ca, issued=issued)
        # re-signed either way: an earlier run may have recorded it and failed to write
        resign_crl(ca, key, now=now, next_update=now + dt.timedelta(days=CRL_DAYS_DEFAULT))
    return Revocation(record, already, (d / "state.json", d / "crl.pem"), tuple(warnings))


def check_crl_request(ca_dir: str | os.PathLike[str], days: int) -> CAInfo:
    """The CA directory ``ca_dir``, checked before any key work (the CLI: before the
    password is asked) to re-sign its CRL for ``days``."""
    if not 1 <= days <= 366:
        raise ValidationError(f"a CRL's next update must be 1 to 366 days ahead, not {days}")
    return open_ca(ca_dir)


def refresh_crl(ca_dir: str | os.PathLike[str], *, password: bytes | None,
                days: int = CRL_DAYS_DEFAULT, now: dt.datetime | None = None
                ) -> tuple[x509.CertificateRevocationList, tuple[str, ...]]:
    """Re-sign the CA's CRL with a new next update ``days`` ahead: what a national root
    (which publishes no trust list, whose run re-signs a province CA's CRL) does before
    its CRL goes out of date. Returns the new CRL and the warnings about the CA key (as
    :func:`revoke_certificate` does: a key file others can read, an unencrypted key)."""
    ca = check_crl_request(ca_dir, days)
    now = _aware(now) if now else _utcnow()
    d = Path(ca_dir)
    key, warnings = _load_ca_key(ca, password)
    with _locked(d):
        _ca, crl = resign_crl(open_ca(d), key, now=now, next_update=now + dt.timedelta(days=days))
    return crl, tuple(warnings)


@dataclass(frozen=True)
class CredentialRevocation:
    added: tuple[RevokedCredential, ...]
    already: tuple[str, ...]
    warnings: tuple[str, ...]


_UVCI_RE = re.compile(r"^URN:UVCI:01:[A-Z]{2}:[A-Z0-9/:]+(#[A-Z0-9/:])?$")


def revoke_credentials(
    ca_dir: str | os.PathLike[str], uvcis: Iterable[str], *, now: dt.datetime | None = None
) -> CredentialRevocation:
    """Record credential revocations (DCC ``UCI`` hashes) for the next trust list.

    Every UVCI is checked first (form, and its ``#`` Luhn mod 38 check character): one
    that fails raises :class:`ValidationError` and none is recorded. No key is needed: the
    entries are signed when the next trust list is published.
    """
    now = _aware(now) if now else _utcnow()
    wanted = [normalize_uvci(u) for u in uvcis if u.strip()]
    if not wanted:
        raise ValidationError("no UVCI given")
    warnings = []
    for u in wanted:
        if not _UVCI_RE.match(u):
            raise ValidationError(f"{u!r} is not a UVCI (URN:UVCI:01:VN:…#C)")
        if "#" not in u:
            warnings.append(f"{u} has no '#' check character; the hash covers the exact string")
        elif not uvci_check_ok(u):
            # A typo revoked nothing real and left the credential valid, while saying
            # "revoked". The right character is not shown: the typo may be in the serial.
            raise ValidationError(
                f"{u}: the check character after '#' does not match the rest of the UVCI "
                "(Luhn mod 38): likely a typo; nothing was revoked",
                hint="copy the UVCI from the commune's manifest.csv or ledger, or from the "
                "credential (vaxqr verify --json shows it as summary.uvci)")
    d = Path(ca_dir)
    open_ca(d)
    with _locked(d):
        ca = open_ca(d)
        if ca.role != "province":
            raise ValidationError(f"{d} is a root CA; credentials are revoked by a province CA")
        known = {c.hash for c in ca.revoked_credentials}
        added, already = [], []
        for u in dict.fromkeys(wanted):
            h = credential_revocation_hash(u)
            if h in known:
                already.append(u)
            else:
                added.append(RevokedCredential(u, h, now))
                known.add(h)
        if added:
            _save_state(_replace(ca, revoked_credentials=(*ca.revoked_credentials, *added)))
    return CredentialRevocation(tuple(added), tuple(already), tuple(warnings))
