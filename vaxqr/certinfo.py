"""Facts about one certificate, and the small helpers the certificate modules share.

The DCC key identifier (:func:`kid_of`), fingerprints, the extended key usage and what it
allows (read leniently: a minimal DER reader handles the non-DER extensions some deployed
DSCs carry), the CA flag, names and the DEMO ONLY mark; reading certificate files; and
UTC time, base64 and JSON as the CA state, signer metadata and trust lists write them.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtensionOID, NameOID

from .errors import KeyCertError, StorageError, TrustError

CertType = Literal["v", "t", "r"]

UTC = dt.UTC
EKU_TEST = "1.3.6.1.4.1.1847.2021.1.1"
EKU_VACCINATION = "1.3.6.1.4.1.1847.2021.1.2"
EKU_RECOVERY = "1.3.6.1.4.1.1847.2021.1.3"
#: The HCERT EKU OIDs per credential type, each in its official and its deployed ``.0.`` form.
DCC_EKU_OIDS: dict[str, frozenset[str]] = {
    t: frozenset({oid, oid.replace(".4.1.1847.", ".4.1.0.1847.")})
    for t, oid in (("t", EKU_TEST), ("v", EKU_VACCINATION), ("r", EKU_RECOVERY))
}
ALL_DCC_EKU_OIDS: frozenset[str] = frozenset().union(*DCC_EKU_OIDS.values())

DEMO_MARK = "DEMO ONLY"
#: The largest file read: certificates, keys, CRLs, state files and trust lists.
MAX_FILE_BYTES = 32 * 1024 * 1024


# --------------------------------------------------------------------------------------
# Small helpers: time and base64


def _utcnow() -> dt.datetime:
    return dt.datetime.now(UTC).replace(microsecond=0)


def _aware(t: dt.datetime) -> dt.datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def iso(t: dt.datetime) -> str:
    """``2021-11-01T00:00:00Z`` (UTC, seconds)."""
    return _aware(t).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_iso(value: object, what: str) -> dt.datetime:
    if not isinstance(value, str):
        raise TrustError(f"{what} is not a date-time string")
    try:
        return _aware(dt.datetime.fromisoformat(value))
    except ValueError as exc:
        raise TrustError(f"{what} is not an ISO 8601 date-time: {value!r}") from exc
    except OverflowError as exc:  # 0001-01-01T00:00+14:00 is before the first UTC datetime
        raise TrustError(f"{what} is out of range: {value!r}") from exc


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise TrustError(f"{what} is not a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except ValueError as exc:
        raise TrustError(f"{what} is not valid base64") from exc


# --------------------------------------------------------------------------------------
# Identifiers and fingerprints


def kid_of(cert: x509.Certificate) -> bytes:
    """The DCC key identifier: the first 8 bytes of SHA-256 over the certificate's DER."""
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).digest()[:8]


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 fingerprint of the certificate's DER, lower-case hex."""
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def public_key(cert: x509.Certificate) -> CertificatePublicKeyTypes | None:
    """The certificate's public key, or None when cryptography cannot read it: an unknown
    algorithm (UnsupportedAlgorithm, no ValueError) or a malformed key (ValueError)."""
    try:
        return cert.public_key()
    except (ValueError, UnsupportedAlgorithm, x509.UnsupportedGeneralNameType):
        return None


def spki_sha256(cert: x509.Certificate) -> str:
    """SHA-256 over the SubjectPublicKeyInfo: identifies a CA across certificate renewals."""
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).hexdigest()


# --------------------------------------------------------------------------------------
# Minimal DER reading, for certificates whose extensions recent cryptography refuses


class _DerError(ValueError):
    pass


def _der_tlv(buf: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """Read one TLV at ``pos``: return (tag, content start, content end)."""
    if pos + 2 > end:
        raise _DerError("truncated")
    tag = buf[pos]
    if tag & 0x1F == 0x1F:
        raise _DerError("high tag numbers are not used in certificates")
    length = buf[pos + 1]
    pos += 2
    if length & 0x80:
        n = length & 0x7F
        if n == 0 or n > 4 or pos + n > end:
            raise _DerError("bad length")
        length = int.from_bytes(buf[pos : pos + n], "big")
        pos += n
    if pos + length > end:
        raise _DerError("truncated")
    return tag, pos, pos + length


def _der_children(buf: bytes, start: int, end: int) -> Iterator[tuple[int, int, int]]:
    pos = start
    while pos < end:
        tag, cstart, cend = _der_tlv(buf, pos, end)
        yield tag, cstart, cend
        pos = cend


def _decode_oid(body: bytes) -> str:
    if not body or body[-1] & 0x80:
        raise _DerError("bad OID")
    arcs: list[int] = []
    value = 0
    for byte in body:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    first = arcs[0]
    head = [min(first // 40, 2), first - 40 * min(first // 40, 2)]
    return ".".join(str(a) for a in head + arcs[1:])


def _raw_extensions(der: bytes) -> dict[str, tuple[bool, bytes]]:
    """Extensions of a certificate as ``{oid: (critical, value DER)}``, parsed leniently."""
    _, cstart, cend = _der_tlv(der, 0, len(der))  # Certificate
    _, tstart, tend = _der_tlv(der, cstart, cend)  # TBSCertificate
    out: dict[str, tuple[bool, bytes]] = {}
    for tag, s, e in _der_children(der, tstart, tend):
        if tag != 0xA3:  # [3] EXPLICIT Extensions
            continue
        _, xs, xe = _der_tlv(der, s, e)
        for _, es, ee in _der_children(der, xs, xe):
            parts = list(_der_children(der, es, ee))
            if len(parts) not in (2, 3) or parts[0][0] != 0x06 or parts[-1][0] != 0x04:
                raise _DerError("bad extension")
            critical = len(parts) == 3 and parts[1][0] == 0x01 and der[parts[1][1]] != 0
            oid = _decode_oid(der[parts[0][1] : parts[0][2]])
            if oid in out:  # RFC 5280 4.2: at most one instance of an extension
                raise _DerError(f"the extension {oid} appears twice")
            out[oid] = (
                critical,
                der[parts[-1][1] : parts[-1][2]],
            )
    return out


def _raw_extension(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> bytes | None:
    """The value (DER) of one extension read from the certificate's raw DER (for the
    extensions cryptography refuses to parse), or None when the certificate has none."""
    entry = _raw_extensions(cert.public_bytes(serialization.Encoding.DER)).get(
        oid.dotted_string)
    return None if entry is None else entry[1]


def _raw_eku(value: bytes) -> frozenset[str]:
    tag, s, e = _der_tlv(value, 0, len(value))
    if tag != 0x30:
        raise _DerError("EKU is not a SEQUENCE")
    oids = []
    for t, cs, ce in _der_children(value, s, e):
        if t != 0x06:
            raise _DerError("EKU holds a non-OID")
        oids.append(_decode_oid(value[cs:ce]))
    return frozenset(oids)


def eku_oids(cert: x509.Certificate) -> frozenset[str] | None:
    """The certificate's extended key usage OIDs (dotted), or None when it has no EKU.

    Reads with cryptography first. Some deployed DSCs (e.g. in the EU test data) have
    extensions that are not strict DER (an empty EKU sequence, an encoded DEFAULT in
    basicConstraints) which recent cryptography refuses to parse; for those the EKU is
    decoded from the raw DER. Raises KeyCertError when even that fails.
    """
    try:
        ext = cert.extensions.get_extension_for_oid(ExtensionOID.EXTENDED_KEY_USAGE)
        return frozenset(o.dotted_string for o in ext.value)  # type: ignore[attr-defined]
    except x509.ExtensionNotFound:
        return None
    except (ValueError, x509.DuplicateExtension):  # DuplicateExtension is no ValueError
        pass
    try:
        value = _raw_extension(cert, ExtensionOID.EXTENDED_KEY_USAGE)
        return None if value is None else _raw_eku(value)
    except _DerError as exc:
        raise KeyCertError(f"cannot read the extended key usage of the certificate: {exc}") from exc


def eku_allows(oids: frozenset[str] | None, cert_type: str) -> bool:
    """Whether a DSC with these EKU OIDs may sign credentials of ``cert_type`` (v, t or r).

    hcert spec A.4 as the EU test data applies it: no EKU (or an empty one) allows every
    type; otherwise one of the type's OIDs, in either form (with or without the extra
    ``.0.``), must be present. Other OIDs next to them are ignored; an EKU holding only
    unrelated OIDs allows nothing (dgc-testdata IS/3).
    """
    if not oids:
        return True
    return bool(oids & DCC_EKU_OIDS[cert_type])


def is_ca_certificate(cert: x509.Certificate) -> bool:
    """basicConstraints cA is asserted (read leniently, never raises)."""
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
        return bc.value.ca
    except x509.ExtensionNotFound:
        return False
    except (ValueError, x509.DuplicateExtension):  # DuplicateExtension is no ValueError
        pass
    try:
        value = _raw_extension(cert, ExtensionOID.BASIC_CONSTRAINTS)
        if value is None:
            return False
        tag, s, e = _der_tlv(value, 0, len(value))
        first = next(_der_children(value, s, e), None)
        return tag == 0x30 and first is not None and first[0] == 0x01 and value[first[1]] != 0
    except (_DerError, IndexError):
        return False


def _name_attr(name: x509.Name, oid: x509.ObjectIdentifier) -> str | None:
    attrs = name.get_attributes_for_oid(oid)
    if not attrs:
        return None
    value = attrs[0].value
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


_NAME_OVERRIDES = {NameOID.SERIAL_NUMBER: "serialNumber"}


def name_str(name: x509.Name) -> str:
    """RFC 4514 text of a name, with ``serialNumber`` spelled out (not ``2.5.4.5``)."""
    return name.rfc4514_string(_NAME_OVERRIDES)


def is_demo_certificate(cert: x509.Certificate) -> bool:
    """The subject says DEMO ONLY (the keys/examples hierarchy)."""
    return DEMO_MARK in name_str(cert.subject)


# --------------------------------------------------------------------------------------
# Files: certificates (PEM/DER), JSON


def _directory_hint(path: Path) -> str | None:
    """What to give instead of a CA or commune signer directory: its certificate."""
    for name, what in (("ca.crt", "a CA directory"), ("signer.crt", "a commune signer directory")):
        try:
            if (path / name).is_file():
                chain = path / "chain.pem"
                also = f" (or {chain}, with the CA above it)" if chain.is_file() else ""
                return f"{path} is {what}: give its certificate, {path / name}{also}"
        except OSError:
            return None
    return None


def _read_file(path: Path, limit: int = MAX_FILE_BYTES) -> bytes:
    try:
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)
    except FileNotFoundError:
        raise StorageError(f"{path} does not exist") from None
    except IsADirectoryError:
        raise StorageError(f"{path} is a directory, a file was expected",
                           hint=_directory_hint(Path(path))) from None
    except OSError as exc:
        raise StorageError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if len(data) > limit:
        raise StorageError(f"{path} is larger than {limit} bytes")
    return data


def checked(cert: x509.Certificate) -> x509.Certificate:
    """``cert`` once the parts vaxqr reads of every certificate (names, serial, validity)
    are known to parse. cryptography reads them lazily, so a malformed subject would raise
    ValueError or TypeError wherever it is first used; here it is a ValueError at load."""
    try:
        for name in (cert.subject, cert.issuer):
            name_str(name)
            name.public_bytes()
        _ = cert.serial_number, cert.not_valid_before_utc, cert.not_valid_after_utc
    except (ValueError, TypeError) as exc:
        raise ValueError(f"malformed certificate: {exc}") from exc
    return cert


def parse_certificates(data: bytes, source: str = "input") -> list[x509.Certificate]:
    """Every certificate in PEM (one or many) or DER data. Extensions are not parsed."""
    try:
        if b"-----BEGIN" in data:
            return [checked(c) for c in x509.load_pem_x509_certificates(data)]
        return [checked(x509.load_der_x509_certificate(data))]
    except (ValueError, x509.InvalidVersion) as exc:  # InvalidVersion is no ValueError
        raise KeyCertError(f"{source} holds no readable certificate") from exc


def load_certificates(path: str | os.PathLike[str]) -> list[x509.Certificate]:
    """Certificates from a PEM (bundle) or DER file."""
    return parse_certificates(_read_file(Path(path)), str(path))


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _dump_json(doc: Any) -> bytes:
    return (json.dumps(doc, indent=2, ensure_ascii=False, sort_keys=False) + "\n").encode("utf-8")
