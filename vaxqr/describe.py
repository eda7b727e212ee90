"""Descriptions of certificates, CRLs and trust lists as JSON data (``vaxqr certs show``)."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cryptography import x509

from .certinfo import (
    _aware,
    _read_file,
    _utcnow,
    b64,
    eku_allows,
    eku_oids,
    fingerprint,
    is_ca_certificate,
    is_demo_certificate,
    iso,
    kid_of,
    name_str,
    parse_certificates,
    public_key,
)
from .chain import _clamp, validate_chain
from .errors import KeyCertError, TrustError
from .keys import key_protection, key_type_name, protection_warning
from .revocation import REVOCATION_REASONS
from .trustfiles import parse_crl, sniff
from .trustlist import parse_trustlist, verify_trustlist


def describe_certificate(cert: x509.Certificate) -> dict[str, Any]:
    """Subject, issuer, validity, kid, EKU, key type and fingerprint, as plain JSON data."""
    try:
        ekus: list[str] | None = sorted(e) if (e := eku_oids(cert)) is not None else None
        eku_error = None
    except KeyCertError as exc:
        ekus, eku_error = None, str(exc)
    key = public_key(cert)
    key_type = "unreadable" if key is None else key_type_name(key)
    out: dict[str, Any] = {
        "subject": name_str(cert.subject),
        "issuer": name_str(cert.issuer),
        "serial": format(cert.serial_number, "x"),
        "not_before": iso(cert.not_valid_before_utc),
        "not_after": iso(cert.not_valid_after_utc),
        "kid": kid_of(cert).hex(),
        "kid_b64": b64(kid_of(cert)),
        "eku": ekus,
        "is_ca": is_ca_certificate(cert),
        "key_type": key_type,
        "sha256": fingerprint(cert),
        "demo": is_demo_certificate(cert),
    }
    if eku_error:
        out["eku_error"] = eku_error
    return out


def describe_file(
    path: str | os.PathLike[str],
    *,
    trust: Sequence[x509.Certificate] = (),
    at: dt.datetime | None = None,
) -> dict[str, Any]:
    """Describe a certificate file, CRL, trust list or private key (how it is encrypted:
    its content needs the password) as JSON data (``certs show``).

    With ``trust`` (CA certificates), a trust list's signature and a certificate's chain
    are checked against them; without, certificates are checked against the CA
    certificates in the same file (labelled ``"anchor": "same file"``).
    """
    p = Path(path)
    data = _read_file(p)
    at = _aware(at) if at else _utcnow()
    kind = sniff(data)
    out: dict[str, Any] = {"version": 1, "file": str(p)}
    if kind == "trustlist":
        tl = parse_trustlist(data, str(p))
        sig: dict[str, Any] = {"alg": tl.signature_alg, "signer_sha256": tl.signer_fingerprint}
        if trust:
            try:
                verify_trustlist(tl, trust, at=at, source=str(p))
                sig["status"] = "valid"
            except TrustError as exc:
                sig["status"] = "invalid"
                sig["error"] = exc.message
        else:
            sig["status"] = "not checked (give --trust CA_CERT)"
        out.update(
            type="trustlist",
            province={"code": tl.province_code, "name": tl.province_name},
            sequence=tl.sequence,
            issued=iso(tl.issued),
            next_update=iso(tl.next_update),
            expired=tl.expired(at),
            signature=sig,
            cas=[describe_certificate(c) for c in tl.cas],
            dscs=[
                {**describe_certificate(e.certificate), "commune_code": e.commune_code}
                for e in tl.dscs
            ],
            revoked_dscs=list(tl.revoked_dscs),
            revoked_credentials=len(tl.revoked_credentials),
            sha256=tl.digest,
        )
        return out
    if kind == "crl":
        crl = parse_crl(data, str(p))
        try:
            ext = crl.extensions.get_extension_for_class(x509.CRLNumber)
            number: int | None = ext.value.crl_number
        except (x509.ExtensionNotFound, ValueError):
            number = None
        out.update(
            type="crl",
            issuer=name_str(crl.issuer),
            last_update=iso(crl.last_update_utc),
            next_update=iso(crl.next_update_utc) if crl.next_update_utc else None,
            crl_number=number,
            revoked=[
                {
                    "serial": format(r.serial_number, "x"),
                    "revoked_at": iso(r.revocation_date_utc),
                    "reason": _crl_reason(r),
                }
                for r in crl
            ],
        )
        if trust:
            issuer = next((a for a in trust if a.subject == crl.issuer), None)
            key = public_key(issuer) if issuer is not None else None
            ok = key is not None and crl.is_signature_valid(key)  # type: ignore[arg-type]
            out["signature"] = {"status": "valid" if ok else "invalid"}
        return out
    if kind == "key":
        how, strong = key_protection(p)
        out.update(type="private key", encryption=how, strong=strong,
                   warning=protection_warning(p) or (
                       None if how != "not encrypted" else f"{p} is not encrypted"))
        return out
    if kind != "certs":
        raise KeyCertError(f"{p} is not a certificate, CRL or vaxqr trust list")
    certs = parse_certificates(data, str(p))
    described = [describe_certificate(c) for c in certs]
    anchors = list(trust) or [c for c in certs if is_ca_certificate(c)]
    if anchors:
        for c, d in zip(certs, described, strict=True):
            if d["is_ca"]:
                continue
            try:
                chain = validate_chain(
                    c, anchors=anchors, intermediates=certs, at=_clamp(at, c), cert_type=None
                )
                d["chain"] = {
                    "status": "valid",
                    "anchor": "--trust" if trust else "same file",
                    "path": [name_str(x.subject) for x in chain],
                    "valid_for": [t for t in "vtr" if eku_allows(eku_oids(c), t)],
                }
            except (TrustError, KeyCertError) as exc:
                d["chain"] = {"status": "invalid", "error": exc.message}
    out.update(type="certificates", certificates=described)
    return out


def _crl_reason(r: x509.RevokedCertificate) -> str:
    try:
        reason = r.extensions.get_extension_for_class(x509.CRLReason).value.reason
    except x509.ExtensionNotFound:
        return "unspecified"
    except (ValueError, TypeError):  # (a malformed extension of the entry: revoked all the same)
        return "unreadable"
    names = {v: k for k, v in REVOCATION_REASONS.items()}
    return names.get(reason, reason.name)
