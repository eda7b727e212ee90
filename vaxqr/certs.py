"""Certificates, revocation and trust lists: the province side and the verifier side.

Province side (``vaxqr certs``): a province CA (the DCC "CSCA"; self-signed, or signed by a
national root CA directory) issues one document-signing certificate (DSC) per commune
People's Committee, revokes them (CRL), records revoked credentials, and publishes a signed
trust list for checkpoints. Verifier side: :class:`TrustStore` loads certificates, CRLs and
trust lists, checks trust-list signatures and rollback, and validates DSC chains with
``cryptography.x509.verification`` (no hand-written path building).

CA directory layout (``CA_DIR``)::

    ca.crt      the CA certificate (PEM)
    ca.key      its private key, encrypted PKCS#8 (PEM), mode 0600
    chain.pem   the CA certificate followed by its parent root, if any
    crl.pem     the current CRL, re-signed on every revocation and every trust list
    state.json  the CA's whole state: role, names, trust-list sequence, CRL number, every
                certificate issued (with its PEM) and every revocation (DSCs and credentials)
    .lock       an flock(2) lock file that serialises concurrent commands

Signer directory layout (``SIGNER_DIR``)::

    signer.crt  the commune's DSC (PEM)
    signer.key  its private key, encrypted PKCS#8 (PEM), mode 0600
    chain.pem   DSC, then the province CA, then the root CA if any
    signer.json province code and name, commune code and name, kid, demo flag

Trust list (``vaxqr certs trustlist``): one UTF-8 JSON object::

    {"format": "vaxqr-trustlist", "version": 1,
     "province": {"code": "091", "name": "Kiên Giang"},
     "sequence": 3,                       # +1 on every list the CA signs
     "issued": "2021-11-20T00:00:00Z", "next_update": "2021-11-27T00:00:00Z",
     "cas": ["<base64 DER>", ...],        # signing CA first, then its root, if any
     "dscs": [{"kid": "<base64 8 bytes>", "certificate": "<base64 DER>",
               "commune_code": "31078", "commune_name": "UBND xã Dương Tơ"}, ...],
     "revoked_dscs": [{"kid": ..., "fingerprint": "<sha256 hex>", "serial": "<hex>",
                       "revoked_at": ..., "reason": "key-compromise"}, ...],
     "revoked_credentials": [{"hash": "<base64 16 bytes>", "type": "UCI"}, ...],
     "signature": {"alg": "ecdsa-sha256" | "rsa-pss-sha256",
                   "signer": "<sha256 hex of the CA certificate's DER>",
                   "value": "<base64>"}}

The signature covers the object without its ``signature`` member in canonical form
(:func:`canonical_json`: keys sorted, no white space, UTF-8, no fractional numbers, which
is RFC 8785 for this subset). ECDSA signatures are DER (as ``openssl dgst`` makes them);
RSA uses PSS with SHA-256, MGF1-SHA-256 and a 32-byte salt. A verifier checks the
signature against a CA it already trusts, validates every DSC's chain, and remembers the
highest sequence seen per CA (see :class:`TrustStore`).

Credential revocation entries follow the DCC revocation ``UCI`` hash type
(docs/standards.md §1.14): the first 16 bytes of SHA-256 over the UVCI in UTF-8, after
trimming surrounding white space and upper-casing (UVCIs are emitted in upper case, and
the DCC accepts them case-insensitively), including the ``#`` check character.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtensionOID, NameOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    Policy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from .errors import KeyCertError, StorageError, TrustError, ValidationError
from .fileio import PRIVATE, PUBLIC, atomic_write, check_private_file, ensure_dir

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey
KeyType = Literal["ec", "rsa"]
CertType = Literal["v", "t", "r"]
Status = Literal["valid", "expired", "revoked", "not-yet-valid"]

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

CA_DAYS_DEFAULT = 5 * 365 + 1
CA_DAYS_MIN, CA_DAYS_MAX = 4 * 365, 10 * 365 + 3
DSC_DAYS_DEFAULT = 2 * 365
DSC_DAYS_MAX = 10 * 365 + 3
TRUSTLIST_DAYS_DEFAULT = 7
CRL_DAYS_DEFAULT = 30
#: A chain is at most DSC -> province CA -> national root (3 certificates).
MAX_CHAIN_CERTS = 3
MIN_PASSWORD_LEN = 8
DEMO_MARK = "DEMO ONLY"
TRUSTLIST_FORMAT = "vaxqr-trustlist"
TRUSTLIST_MAX_BYTES = 32 * 1024 * 1024

REVOCATION_REASONS: dict[str, x509.ReasonFlags] = {
    "unspecified": x509.ReasonFlags.unspecified,
    "key-compromise": x509.ReasonFlags.key_compromise,
    "ca-compromise": x509.ReasonFlags.ca_compromise,
    "affiliation-changed": x509.ReasonFlags.affiliation_changed,
    "superseded": x509.ReasonFlags.superseded,
    "cessation-of-operation": x509.ReasonFlags.cessation_of_operation,
}


# --------------------------------------------------------------------------------------
# Small helpers: time, identifiers, fingerprints


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


def kid_of(cert: x509.Certificate) -> bytes:
    """The DCC key identifier: the first 8 bytes of SHA-256 over the certificate's DER."""
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).digest()[:8]


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 fingerprint of the certificate's DER, lower-case hex."""
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def spki_sha256(cert: x509.Certificate) -> str:
    """SHA-256 over the SubjectPublicKeyInfo: identifies a CA across certificate renewals."""
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).hexdigest()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise TrustError(f"{what} is not a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except ValueError as exc:
        raise TrustError(f"{what} is not valid base64") from exc


def normalize_uvci(uvci: str) -> str:
    """Trim and upper-case a UVCI (``urn:uvci:…`` is accepted, the canonical form is upper)."""
    return unicodedata.normalize("NFC", uvci).strip().upper()


def credential_revocation_hash(uvci: str) -> bytes:
    """DCC ``UCI`` revocation hash: SHA-256(UTF-8 of the normalised UVCI)[:16]."""
    return hashlib.sha256(normalize_uvci(uvci).encode("utf-8")).digest()[:16]


def key_type_name(key: PublicKey | PrivateKey | object) -> str:
    """``EC P-256``, ``RSA 3072``, … for display."""
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        return {"secp256r1": "EC P-256", "secp384r1": "EC P-384", "secp521r1": "EC P-521"}.get(
            key.curve.name, f"EC {key.curve.name}"
        )
    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        return f"RSA {key.key_size}"
    return type(key).__name__


def cose_alg_for(key: PublicKey | PrivateKey) -> str:
    """The COSE algorithm a signer with this key uses: ``ES256`` (P-256) or ``PS256`` (RSA)."""
    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        return "PS256"
    return "ES256"


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
            out[_decode_oid(der[parts[0][1] : parts[0][2]])] = (
                critical,
                der[parts[-1][1] : parts[-1][2]],
            )
    return out


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
    except ValueError:
        pass
    try:
        raw = _raw_extensions(cert.public_bytes(serialization.Encoding.DER))
        entry = raw.get(ExtensionOID.EXTENDED_KEY_USAGE.dotted_string)
        return None if entry is None else _raw_eku(entry[1])
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
    except ValueError:
        pass
    try:
        raw = _raw_extensions(cert.public_bytes(serialization.Encoding.DER))
        entry = raw.get(ExtensionOID.BASIC_CONSTRAINTS.dotted_string)
        if entry is None:
            return False
        value = entry[1]
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
# Keys and certificate files


def generate_key(key_type: KeyType = "ec") -> PrivateKey:
    """A new P-256 key (ES256), or an RSA-3072 key (PS256) with ``key_type="rsa"``."""
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=3072)
    return ec.generate_private_key(ec.SECP256R1())


def key_to_pem(key: PrivateKey, password: bytes | None) -> bytes:
    """PKCS#8 PEM, encrypted with the best available scheme unless ``password`` is None."""
    if password is not None and not password:
        raise ValidationError("the password is empty")
    enc: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password is not None
        else serialization.NoEncryption()
    )
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)


def key_is_encrypted(path: str | os.PathLike[str]) -> bool:
    """Whether a PEM key file is encrypted (so a password must be asked for)."""
    data = _read_file(Path(path))
    return b"ENCRYPTED" in data.split(b"\n", 1)[0] or b"Proc-Type: 4,ENCRYPTED" in data


def load_private_key(path: str | os.PathLike[str], password: bytes | None) -> PrivateKey:
    """Load a PEM private key. A wrong or missing password is a KeyCertError naming the file."""
    p = Path(path)
    data = _read_file(p)
    try:
        key = serialization.load_pem_private_key(data, password)
    except TypeError as exc:
        if password is None:
            raise KeyCertError(
                f"{p} is encrypted and no password was given",
                hint="use --password-file, VAXQR_PASSWORD, or run on a terminal to be asked",
            ) from None
        try:  # a password was given for an unencrypted key: use the key as it is
            key = serialization.load_pem_private_key(data, None)
        except (TypeError, ValueError):
            raise KeyCertError(f"cannot read the private key in {p}") from exc
    except ValueError:
        raise KeyCertError(
            f"wrong password for {p} (or the file is not a private key)",
            hint="check the password file or VAXQR_PASSWORD",
        ) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise KeyCertError(f"{p} holds a {type(key).__name__}; vaxqr uses EC P-256 or RSA keys")
    return key


def _read_file(path: Path, limit: int = TRUSTLIST_MAX_BYTES) -> bytes:
    try:
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)
    except FileNotFoundError:
        raise StorageError(f"{path} does not exist") from None
    except IsADirectoryError:
        raise StorageError(f"{path} is a directory, a file was expected") from None
    except OSError as exc:
        raise StorageError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if len(data) > limit:
        raise StorageError(f"{path} is larger than {limit} bytes")
    return data


def parse_certificates(data: bytes, source: str = "input") -> list[x509.Certificate]:
    """Every certificate in PEM (one or many) or DER data. Extensions are not parsed."""
    try:
        if b"-----BEGIN" in data:
            return list(x509.load_pem_x509_certificates(data))
        return [x509.load_der_x509_certificate(data)]
    except ValueError as exc:
        raise KeyCertError(f"{source} holds no readable certificate") from exc


def load_certificates(path: str | os.PathLike[str]) -> list[x509.Certificate]:
    """Certificates from a PEM (bundle) or DER file."""
    return parse_certificates(_read_file(Path(path)), str(path))


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _sign_kwargs(key: PrivateKey) -> dict[str, Any]:
    if isinstance(key, rsa.RSAPrivateKey):
        return {"rsa_padding": padding.PSS(padding.MGF1(hashes.SHA256()), 32)}
    return {}


def _check_new_password(password: bytes | None) -> None:
    if password is not None and len(password) < MIN_PASSWORD_LEN:
        raise ValidationError(
            f"the password for a new key must have at least {MIN_PASSWORD_LEN} characters"
        )


# --------------------------------------------------------------------------------------
# Directories written all at once


def _prepare_dir(target: Path, files: dict[str, tuple[bytes, int]], *, force: bool) -> Path:
    """Write ``files`` into a fresh hidden sibling of ``target``; :func:`_commit_dir` it later."""
    if target.exists():
        if not target.is_dir():
            raise StorageError(f"{target} exists and is not a directory")
        if any(target.iterdir()):
            if not force:
                raise StorageError(f"{target} already exists", hint="use --force to replace it")
            known = {"ca.crt", "signer.crt", "state.json", "signer.json", "ca.key", "signer.key"}
            if not any((target / n).exists() for n in known):
                raise StorageError(
                    f"{target} is not a vaxqr CA or signer directory; refusing to replace it"
                )
    ensure_dir(target.parent)
    tmp = target.parent / f".{target.name}.new-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        tmp.mkdir(mode=0o700)
        os.chmod(tmp, 0o700)
        for name, (data, mode) in files.items():
            atomic_write(tmp / name, data, mode=mode)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise StorageError(f"cannot write {target}: {exc.strerror or exc}") from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return tmp


def _commit_dir(tmp: Path, target: Path) -> None:
    old: Path | None = None
    try:
        if target.exists():
            old = target.parent / f".{target.name}.old-{os.getpid()}-{secrets.token_hex(4)}"
            os.rename(target, old)
        os.rename(tmp, target)
    except OSError as exc:
        if old is not None and not target.exists():
            os.rename(old, target)
            old = None
        shutil.rmtree(tmp, ignore_errors=True)
        raise StorageError(f"cannot create {target}: {exc.strerror or exc}") from exc
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


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
# The CA directory


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

    @property
    def is_demo(self) -> bool:
        return is_demo_certificate(self.certificate)

    @property
    def kid(self) -> bytes:
        return kid_of(self.certificate)


_CODE_RE = {"province": re.compile(r"^\d{3}$"), "commune": re.compile(r"^\d{5}$")}


def _check_text(value: str, what: str, limit: int = 64) -> str:
    value = unicodedata.normalize("NFC", value).strip()
    if not value:
        raise ValidationError(f"{what} is empty")
    if len(value) > limit:
        raise ValidationError(f"{what} is longer than {limit} characters")
    if any(unicodedata.category(c).startswith("C") for c in value):
        raise ValidationError(f"{what} contains control characters")
    return value


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


def _dump_json(doc: Any) -> bytes:
    return (json.dumps(doc, indent=2, ensure_ascii=False, sort_keys=False) + "\n").encode("utf-8")


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
        return CAInfo(
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


def _load_ca_key(ca: CAInfo, password: bytes | None) -> tuple[PrivateKey, list[str]]:
    path = ca.directory / "ca.key"
    key = load_private_key(path, password)
    warnings = [w for w in [check_private_file(path)] if w]
    if key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) != ca.certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ):
        raise KeyCertError(f"{path} does not belong to {ca.directory / 'ca.crt'}")
    return key, warnings


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


def _ca_name(name: str, code: str | None, role: str, demo: bool) -> x509.Name:
    cn = f"{name} Province CSCA" if role == "province" else f"{name} Root CA"
    if demo:
        cn += f" ({DEMO_MARK})"
    attrs = [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
        x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, name) if role == "province" else None,
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, name),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, f"{DEMO_MARK} - not for real use")
        if demo
        else None,
        x509.NameAttribute(NameOID.COMMON_NAME, _check_text(cn, "the CA name")),
        x509.NameAttribute(NameOID.SERIAL_NUMBER, code) if code else None,
    ]
    return x509.Name([a for a in attrs if a is not None])


def init_ca(
    ca_dir: str | os.PathLike[str],
    *,
    name: str,
    province_code: str | None,
    password: bytes | None,
    parent_dir: str | os.PathLike[str] | None = None,
    parent_password: bytes | None = None,
    root: bool = False,
    days: int = CA_DAYS_DEFAULT,
    key_type: KeyType = "ec",
    force: bool = False,
    now: dt.datetime | None = None,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    demo: bool = False,
) -> CAInfo:
    """Create a CA directory: a province CA (CSCA), or with ``root=True`` a national root.

    The province CA is self-signed unless ``parent_dir`` names a root CA directory, which
    then signs it (and records it). ``password=None`` writes an unencrypted key (the CLI
    asks for an explicit insecure flag). Nothing is written unless every step succeeded.
    """
    target = Path(ca_dir)
    role: Literal["province", "root"] = "root" if root else "province"
    name = _check_text(name, "the name")
    if role == "province":
        if province_code is None or not _CODE_RE["province"].match(province_code):
            raise ValidationError(
                f"province code must be 3 digits (e.g. 091 for Kiên Giang), got {province_code!r}"
            )
    elif parent_dir is not None:
        raise ValidationError("a root CA has no parent")
    if not CA_DAYS_MIN <= days <= CA_DAYS_MAX and not_after is None:
        raise ValidationError(
            f"CA validity must be 4 to 10 years ({CA_DAYS_MIN}-{CA_DAYS_MAX} days)"
        )
    _check_new_password(password)
    now = _aware(now) if now else _utcnow()
    start = _aware(not_before) if not_before else now
    end = _aware(not_after) if not_after else start + dt.timedelta(days=days)
    span = (end - start).days
    if not CA_DAYS_MIN <= span <= CA_DAYS_MAX:
        raise ValidationError(f"CA validity must be 4 to 10 years, got {span} days")
    if not force and target.exists() and target.is_dir() and any(target.iterdir()):
        raise StorageError(f"{target} already exists", hint="use --force to replace it")
    warnings: list[str] = []

    parent: CAInfo | None = None
    parent_key: PrivateKey | None = None
    if parent_dir is not None:
        parent = open_ca(parent_dir)
        if parent.role != "root":
            raise ValidationError(f"{parent.directory} is a province CA, not a root CA")
        parent_key, w = _load_ca_key(parent, parent_password)
        warnings += w
        if end > parent.certificate.not_valid_after_utc:
            end = parent.certificate.not_valid_after_utc
            warnings.append(f"validity shortened to the root CA's end, {iso(end)}")

    key = generate_key(key_type)
    subject = _ca_name(name, province_code if role == "province" else None, role, demo)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    issuer_ski = (
        parent.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        if parent
        else ski
    )
    serial = x509.random_serial_number()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(parent.certificate.subject if parent else subject)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=1 if root else 0), True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_ski), False
        )
        .sign(parent_key or key, hashes.SHA256(), **_sign_kwargs(parent_key or key))
    )
    chain = (cert, *(parent.chain if parent else ()))
    info = CAInfo(
        directory=target,
        certificate=cert,
        chain=chain,
        role=role,
        code=province_code if role == "province" else None,
        name=name,
        trustlist_sequence=0,
        crl_number=1,
        issued=(),
        revoked_credentials=(),
    )
    crl = _build_crl(
        info, key, now=now, next_update=now + dt.timedelta(days=CRL_DAYS_DEFAULT), number=1
    )
    files = {
        "ca.key": (key_to_pem(key, password), PRIVATE),
        "ca.crt": (_pem(cert), PUBLIC),
        "chain.pem": (b"".join(_pem(c) for c in chain), PUBLIC),
        "crl.pem": (crl.public_bytes(serialization.Encoding.PEM), PUBLIC),
        "state.json": (_dump_json(_state_doc(info)), PUBLIC),
    }
    tmp = _prepare_dir(target, files, force=force)
    try:
        if parent is not None:
            record = IssuedCert(serial, "ca", cert, province_code or "", name, now)
            with _locked(parent.directory):
                fresh = open_ca(parent.directory)
                _save_state(_replace(fresh, issued=(*fresh.issued, record)))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _commit_dir(tmp, target)
    if password is None:
        warnings.append(f"{target / 'ca.key'} is NOT encrypted")
    return _replace(info, files=tuple(target / n for n in files), warnings=tuple(warnings))


def _save_state(ca: CAInfo) -> None:
    atomic_write(ca.directory / "state.json", _dump_json(_state_doc(ca)), overwrite=True)


def _write_crl(directory: Path, crl: x509.CertificateRevocationList) -> None:
    pem = crl.public_bytes(serialization.Encoding.PEM)
    atomic_write(directory / "crl.pem", pem, overwrite=True)


def _replace(ca: CAInfo, **changes: Any) -> CAInfo:
    return CAInfo(**{**ca.__dict__, **changes})


@dataclass(frozen=True)
class IssuedSigner:
    """What ``issue_signer`` produced."""

    record: IssuedCert
    directory: Path
    chain: tuple[x509.Certificate, ...]
    files: tuple[Path, ...]
    warnings: tuple[str, ...]


def issue_signer(
    ca_dir: str | os.PathLike[str],
    *,
    ca_password: bytes | None,
    commune_code: str,
    name: str,
    out_dir: str | os.PathLike[str],
    password: bytes | None,
    days: int = DSC_DAYS_DEFAULT,
    key_type: KeyType = "ec",
    force: bool = False,
    now: dt.datetime | None = None,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
) -> IssuedSigner:
    """Issue a commune DSC into ``out_dir`` (signer.crt, signer.key, chain.pem, signer.json).

    The DSC never outlives its CA (its end is shortened, with a warning). A wrong CA
    password, an existing ``out_dir`` without ``force``, or any other failure writes nothing.
    """
    if not _CODE_RE["commune"].match(commune_code):
        raise ValidationError(f"commune code must be 5 digits (GSO code), got {commune_code!r}")
    name = _check_text(name, "the commune name")
    if not 1 <= days <= DSC_DAYS_MAX:
        raise ValidationError(f"DSC validity must be 1 to {DSC_DAYS_MAX} days")
    _check_new_password(password)
    target = Path(out_dir)
    if not force and target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise StorageError(f"{target} already exists", hint="use --force to replace it")
    now = _aware(now) if now else _utcnow()
    ca = open_ca(ca_dir)
    if ca.role != "province":
        raise ValidationError(
            f"{ca.directory} is a root CA; commune certificates are issued by a province CA"
        )
    ca_key, warnings = _load_ca_key(ca, ca_password)
    if ca.is_demo:
        warnings.append(f"{ca.directory} is a {DEMO_MARK} CA: its certificates are for testing")
    if not name.upper().startswith("UBND "):
        warnings.append(f"the commune name {name!r} does not start with 'UBND '")
    start = _aware(not_before) if not_before else now
    end = _aware(not_after) if not_after else start + dt.timedelta(days=days)
    ca_end = ca.certificate.not_valid_after_utc
    if end > ca_end:
        end = ca_end
        warnings.append(f"validity shortened to the CA's end, {iso(end)}")
    if start < ca.certificate.not_valid_before_utc:
        start = ca.certificate.not_valid_before_utc
    if end <= start or now > ca_end:
        raise KeyCertError(f"the CA in {ca.directory} has expired ({iso(ca_end)})")
    if any(r.code == commune_code and r.status(now) == "valid" for r in ca.issued):
        warnings.append(
            f"commune {commune_code} already has a valid certificate; revoke it if it is replaced"
        )

    key = generate_key(key_type)
    subject_attrs = [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, ca.name),
    ]
    if ca.is_demo:
        subject_attrs.append(
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, f"{DEMO_MARK} - not for real use")
        )
    subject_attrs += [
        x509.NameAttribute(NameOID.COMMON_NAME, name),
        x509.NameAttribute(NameOID.SERIAL_NUMBER, commune_code),
    ]
    ca_ski = ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    serial = x509.random_serial_number()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(subject_attrs))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([x509.ObjectIdentifier(EKU_VACCINATION)]), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), False
        )
        .sign(ca_key, hashes.SHA256(), **_sign_kwargs(ca_key))
    )
    chain = (cert, *ca.chain)
    meta = {
        "format": "vaxqr-signer",
        "version": 1,
        "province_code": ca.code,
        "province_name": ca.name,
        "commune_code": commune_code,
        "commune_name": name,
        "kid": kid_of(cert).hex(),
        "serial": format(serial, "x"),
        "not_after": iso(end),
        "demo": ca.is_demo,
    }
    files = {
        "signer.key": (key_to_pem(key, password), PRIVATE),
        "signer.crt": (_pem(cert), PUBLIC),
        "chain.pem": (b"".join(_pem(c) for c in chain), PUBLIC),
        "signer.json": (_dump_json(meta), PUBLIC),
    }
    record = IssuedCert(serial, "dsc", cert, commune_code, name, now)
    tmp = _prepare_dir(target, files, force=force)
    try:
        with _locked(ca.directory):
            fresh = open_ca(ca.directory)
            _save_state(_replace(fresh, issued=(*fresh.issued, record)))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _commit_dir(tmp, target)
    if password is None:
        warnings.append(f"{target / 'signer.key'} is NOT encrypted")
    return IssuedSigner(record, target, chain, tuple(target / n for n in files), tuple(warnings))


def list_issued(ca_dir: str | os.PathLike[str]) -> tuple[IssuedCert, ...]:
    """Every certificate the CA issued, oldest first; use ``IssuedCert.status(at)``."""
    return open_ca(ca_dir).issued


def find_issued(ca: CAInfo, ref: str) -> IssuedCert:
    """Find an issued certificate by a certificate file or signer directory, serial (hex),
    kid (hex), SHA-256 fingerprint, or commune code (when exactly one is unrevoked)."""
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
    if len(hits) == 1:
        return hits[0]
    if not hits:
        raise KeyCertError(
            f"no certificate issued by {ca.directory} matches {ref!r}",
            hint="give a certificate file, a serial or kid (hex), or see: vaxqr certs list CA_DIR",
        )
    raise ValidationError(f"{ref!r} matches {len(hits)} certificates; give a serial or a file")


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
        already = record.revoked_at is not None
        if not already:
            record = IssuedCert(**{**record.__dict__, "revoked_at": now, "reason": reason})
            issued = tuple(record if r.serial == record.serial else r for r in ca.issued)
            ca = _replace(ca, issued=issued, crl_number=ca.crl_number + 1)
            crl = _build_crl(
                ca,
                key,
                now=now,
                next_update=now + dt.timedelta(days=CRL_DAYS_DEFAULT),
                number=ca.crl_number,
            )
            _save_state(ca)
            _write_crl(d, crl)
        else:
            warnings.append(f"certificate {record.serial_hex} was already revoked")
    return Revocation(record, already, (d / "state.json", d / "crl.pem"), tuple(warnings))


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

    No key is needed: the entries are signed when the next trust list is published.
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


# --------------------------------------------------------------------------------------
# Trust lists


def canonical_json(doc: Any) -> bytes:
    """The signed form: UTF-8 JSON, keys sorted, no white space (RFC 8785 for this subset)."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class TrustListDsc:
    kid: bytes
    certificate: x509.Certificate
    commune_code: str | None
    commune_name: str | None


@dataclass(frozen=True)
class TrustList:
    """A parsed trust list. ``verified_by`` is set once its signature was checked."""

    province_code: str | None
    province_name: str | None
    sequence: int
    issued: dt.datetime
    next_update: dt.datetime
    cas: tuple[x509.Certificate, ...]
    dscs: tuple[TrustListDsc, ...]
    revoked_dscs: tuple[dict[str, str], ...]
    revoked_credentials: frozenset[bytes]
    signature_alg: str
    signer_fingerprint: str
    digest: str  # SHA-256 of the signed bytes
    raw: dict[str, Any] = field(repr=False, compare=False)
    verified_by: x509.Certificate | None = None

    def expired(self, at: dt.datetime) -> bool:
        return _aware(at) > self.next_update


def _sign_bytes(key: PrivateKey, data: bytes) -> tuple[str, bytes]:
    if isinstance(key, rsa.RSAPrivateKey):
        return "rsa-pss-sha256", key.sign(
            data, padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256()
        )
    return "ecdsa-sha256", key.sign(data, ec.ECDSA(hashes.SHA256()))


def _verify_bytes(pub: object, alg: str, signature: bytes, data: bytes) -> bool:
    try:
        if alg == "ecdsa-sha256" and isinstance(pub, ec.EllipticCurvePublicKey):
            pub.verify(signature, data, ec.ECDSA(hashes.SHA256()))
            return True
        if alg == "rsa-pss-sha256" and isinstance(pub, rsa.RSAPublicKey):
            pss = padding.PSS(padding.MGF1(hashes.SHA256()), 32)
            pub.verify(signature, data, pss, hashes.SHA256())
            return True
    except InvalidSignature:
        return False
    return False


@dataclass(frozen=True)
class PublishedTrustList:
    trustlist: TrustList
    crl: x509.CertificateRevocationList
    files: tuple[Path, ...]
    warnings: tuple[str, ...]
    data: bytes  # the file content (also what ``out="-"`` callers print)


def build_trustlist(
    ca_dir: str | os.PathLike[str],
    *,
    password: bytes | None,
    out: str | os.PathLike[str] | None,
    valid_days: int = TRUSTLIST_DAYS_DEFAULT,
    force: bool = False,
    now: dt.datetime | None = None,
    next_update: dt.datetime | None = None,
) -> PublishedTrustList:
    """Sign and write the next trust list (sequence + 1); the CRL is re-signed with it.

    ``out=None`` writes no list file (the caller prints ``data``); the sequence still
    advances, so every list a CA ever signs has its own number.
    """
    if not 1 <= valid_days <= 3660:
        raise ValidationError("--valid-days must be between 1 and 3660")
    now = _aware(now) if now else _utcnow()
    nu = _aware(next_update) if next_update else now + dt.timedelta(days=valid_days)
    d = Path(ca_dir)
    target = Path(out) if out is not None else None
    if target is not None and target.exists() and not force:
        raise StorageError(f"{target} already exists", hint="use --force to overwrite it")
    ca = open_ca(d)
    if ca.role != "province":
        raise ValidationError(f"{d} is a root CA; trust lists are published by province CAs")
    key, warnings = _load_ca_key(ca, password)
    if ca.is_demo:
        warnings.append(f"{d} is a {DEMO_MARK} CA")
    if now > ca.certificate.not_valid_after_utc:
        warnings.append(f"the CA certificate expired on {iso(ca.certificate.not_valid_after_utc)}")
    if target is not None:
        ensure_dir(target.parent)
    with _locked(d):
        ca = open_ca(d)
        seq = ca.trustlist_sequence + 1
        current = [r for r in ca.issued if r.kind == "dsc" and r.revoked_at is None]
        live = [r for r in current if r.not_after >= now]
        if len(live) < len(current):
            warnings.append(f"{len(current) - len(live)} expired certificate(s) left out")
        if not live:
            warnings.append("the trust list holds no valid commune certificate")
        body: dict[str, Any] = {
            "format": TRUSTLIST_FORMAT,
            "version": 1,
            "province": {"code": ca.code, "name": ca.name},
            "sequence": seq,
            "issued": iso(now),
            "next_update": iso(nu),
            "cas": [b64(c.public_bytes(serialization.Encoding.DER)) for c in ca.chain],
            "dscs": [
                {
                    "kid": b64(r.kid),
                    "certificate": b64(r.certificate.public_bytes(serialization.Encoding.DER)),
                    "commune_code": r.code,
                    "commune_name": r.name,
                }
                for r in live
            ],
            "revoked_dscs": [
                {
                    "kid": b64(r.kid),
                    "fingerprint": r.fingerprint,
                    "serial": r.serial_hex,
                    "revoked_at": iso(r.revoked_at),
                    "reason": r.reason or "unspecified",
                }
                for r in ca.issued
                if r.kind == "dsc" and r.revoked_at is not None
            ],
            "revoked_credentials": [
                {"hash": b64(c.hash), "type": "UCI"} for c in ca.revoked_credentials
            ],
        }
        alg, sig = _sign_bytes(key, canonical_json(body))
        doc = {
            **body,
            "signature": {"alg": alg, "signer": fingerprint(ca.certificate), "value": b64(sig)},
        }
        data = (json.dumps(doc, indent=1, ensure_ascii=False) + "\n").encode("utf-8")
        ca = _replace(ca, trustlist_sequence=seq, crl_number=ca.crl_number + 1)
        crl_next = max(nu, now + dt.timedelta(days=1))
        crl = _build_crl(ca, key, now=now, next_update=crl_next, number=ca.crl_number)
        _save_state(ca)
        _write_crl(d, crl)
    files = [d / "state.json", d / "crl.pem"]
    if target is not None:
        atomic_write(target, data, overwrite=force)
        files.insert(0, target)
    tl = parse_trustlist(data, str(target or "trust list"))
    return PublishedTrustList(tl, crl, tuple(files), tuple(warnings), data)


def _reject_float(value: str) -> Any:
    raise ValueError(f"numbers with fractions are not allowed ({value})")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def parse_trustlist(data: bytes, source: str = "trust list") -> TrustList:
    """Parse a trust list WITHOUT checking its signature (see :func:`verify_trustlist`)."""
    try:
        doc = json.loads(
            data.decode("utf-8"),
            object_pairs_hook=_no_duplicates,
            parse_float=_reject_float,
            parse_constant=_reject_float,
        )
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise TrustError(f"{source} is not a valid trust list: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("format") != TRUSTLIST_FORMAT:
        raise TrustError(f"{source} is not a vaxqr trust list")
    if doc.get("version") != 1:
        raise TrustError(f"{source}: unsupported trust list version {doc.get('version')!r}")
    try:
        body = {k: v for k, v in doc.items() if k != "signature"}
        sig = doc["signature"]
        province = doc.get("province") or {}
        seq = doc["sequence"]
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
            raise TrustError("sequence must be a positive integer")
        cas = tuple(x509.load_der_x509_certificate(_unb64(c, "CA certificate")) for c in doc["cas"])
        dscs = tuple(
            TrustListDsc(
                kid=_unb64(e["kid"], "kid"),
                certificate=x509.load_der_x509_certificate(_unb64(e["certificate"], "DSC")),
                commune_code=e.get("commune_code"),
                commune_name=e.get("commune_name"),
            )
            for e in doc["dscs"]
        )
        revoked = tuple({k: str(v) for k, v in e.items()} for e in doc.get("revoked_dscs", []))
        creds = frozenset(
            _unb64(e["hash"], "revocation hash")
            for e in doc.get("revoked_credentials", [])
            if e.get("type", "UCI") == "UCI"
        )
        for e in dscs:
            if e.kid != kid_of(e.certificate):
                subject = name_str(e.certificate.subject)
                raise TrustError(f"the kid of DSC {subject} does not match its certificate")
        return TrustList(
            province_code=province.get("code"),
            province_name=province.get("name"),
            sequence=seq,
            issued=_parse_iso(doc["issued"], "issued"),
            next_update=_parse_iso(doc["next_update"], "next_update"),
            cas=cas,
            dscs=dscs,
            revoked_dscs=revoked,
            revoked_credentials=creds,
            signature_alg=str(sig["alg"]),
            signer_fingerprint=str(sig["signer"]).lower(),
            digest=hashlib.sha256(canonical_json(body)).hexdigest(),
            raw=doc,
        )
    except TrustError as exc:
        raise TrustError(f"{source}: {exc}") from exc
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise TrustError(f"{source} is not a valid trust list: {exc!r}") from exc


def verify_trustlist(
    tl: TrustList,
    anchors: Sequence[x509.Certificate],
    *,
    at: dt.datetime,
    source: str = "trust list",
) -> TrustList:
    """Check a trust list's signature against a CA the verifier already trusts.

    The signer is either one of ``anchors`` (matched by fingerprint), or a CA carried in the
    list that chains to an anchor (a province CA under a trusted national root).
    Returns the list with ``verified_by`` set; raises TrustError otherwise.
    """
    body = {k: v for k, v in tl.raw.items() if k != "signature"}
    signed = canonical_json(body)
    signature = _unb64(tl.raw["signature"].get("value"), "signature")
    candidates = [a for a in anchors if fingerprint(a) == tl.signer_fingerprint]
    if not candidates:
        for ca in tl.cas:
            if fingerprint(ca) != tl.signer_fingerprint:
                continue
            try:
                validate_ca_chain(ca, anchors=anchors, intermediates=tl.cas, at=at)
                candidates.append(ca)
            except TrustError:
                pass
    if not candidates:
        raise TrustError(
            f"{source} is signed by a CA that is not trusted here",
            hint="give the province CA certificate (ca.crt) with --trust as well",
        )
    for ca in candidates:
        if _verify_bytes(ca.public_key(), tl.signature_alg, signature, signed):
            return TrustList(**{**tl.__dict__, "verified_by": ca})
    raise TrustError(f"{source}: the signature does not match (the list was altered)")


# --------------------------------------------------------------------------------------
# Chain validation (cryptography.x509.verification)


def _clamp(at: dt.datetime, cert: x509.Certificate) -> dt.datetime:
    return min(max(_aware(at), cert.not_valid_before_utc), cert.not_valid_after_utc)


def _eku_validator(cert_type: str | None) -> Any:
    def check(policy: Policy, cert: x509.Certificate, ext: x509.ExtendedKeyUsage | None) -> None:
        if ext is None or cert_type is None:
            return
        oids = frozenset(o.dotted_string for o in ext)
        if not eku_allows(oids, cert_type):
            raise ValueError(f"extended key usage {sorted(oids)} does not allow type {cert_type!r}")

    return check


def _dsc_key_usage(policy: Policy, cert: x509.Certificate, ext: x509.KeyUsage | None) -> None:
    if ext is not None and (not ext.digital_signature or ext.key_cert_sign):
        raise ValueError("keyUsage must allow digitalSignature (and not keyCertSign)")


def validate_chain(
    leaf: x509.Certificate,
    *,
    anchors: Sequence[x509.Certificate],
    intermediates: Sequence[x509.Certificate] = (),
    at: dt.datetime,
    cert_type: str | None = "v",
) -> tuple[x509.Certificate, ...]:
    """Validate a DSC up to one of ``anchors`` at time ``at``; return the chain, DSC first.

    Uses cryptography's path builder with the webpki CA profile and a DSC profile: AKI
    required, keyUsage (when present) with digitalSignature, no subjectAltName needed, and
    an EKU check for ``cert_type`` (v/t/r; both OID forms; no EKU = every type; None = skip).
    Chains are at most :data:`MAX_CHAIN_CERTS` certificates. Raises TrustError.
    """
    if not anchors:
        raise TrustError("no trusted CA certificate to validate against")
    ee = (
        ExtensionPolicy.webpki_defaults_ee()
        .may_be_present(x509.SubjectAlternativeName, Criticality.AGNOSTIC, None)
        .may_be_present(x509.KeyUsage, Criticality.AGNOSTIC, _dsc_key_usage)
        .may_be_present(x509.ExtendedKeyUsage, Criticality.AGNOSTIC, _eku_validator(cert_type))
    )
    return _verify(leaf, anchors, intermediates, at, ee)


def validate_ca_chain(
    ca: x509.Certificate,
    *,
    anchors: Sequence[x509.Certificate],
    intermediates: Sequence[x509.Certificate] = (),
    at: dt.datetime,
) -> tuple[x509.Certificate, ...]:
    """Validate a subordinate CA certificate (as the leaf) up to one of ``anchors``."""
    leaf_policy = ExtensionPolicy.permit_all().require_present(
        x509.BasicConstraints, Criticality.AGNOSTIC, _require_ca
    )
    return _verify(ca, anchors, [c for c in intermediates if c != ca], _clamp(at, ca), leaf_policy)


def _require_ca(policy: Policy, cert: x509.Certificate, ext: x509.BasicConstraints) -> None:
    if not ext.ca:
        raise ValueError("not a CA certificate")


def _verify(
    leaf: x509.Certificate,
    anchors: Sequence[x509.Certificate],
    intermediates: Sequence[x509.Certificate],
    at: dt.datetime,
    ee_policy: ExtensionPolicy,
) -> tuple[x509.Certificate, ...]:
    try:
        verifier = (
            PolicyBuilder()
            .store(Store(list(anchors)))
            .time(_aware(at))
            .max_chain_depth(MAX_CHAIN_CERTS - 2)
            .extension_policies(ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=ee_policy)
            .build_client_verifier()
        )
        return tuple(verifier.verify(leaf, list(intermediates)).chain)
    except VerificationError as exc:
        raise TrustError(
            f"certificate {name_str(leaf.subject)} does not chain to a trusted CA: {exc}"
        ) from exc
    except ValueError as exc:  # unparsable extensions and the like
        raise TrustError(f"certificate {name_str(leaf.subject)} is unusable: {exc}") from exc


# --------------------------------------------------------------------------------------
# The verifier's view


@dataclass(frozen=True)
class TrustedSigner:
    """A DSC the verifier accepts signatures from."""

    certificate: x509.Certificate
    public_key: PublicKey
    kid: bytes
    chain: tuple[x509.Certificate, ...]  # DSC first; just the DSC when trusted as given
    source: str
    revoked: bool = False
    chain_validated: bool = False
    is_ca: bool = False  # a CA certificate used directly as a signer (EU test data, LV)


def default_state_file() -> Path:
    """``$XDG_STATE_HOME/vaxqr/trustlists.json`` (default ``~/.local/state/vaxqr/…``)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "vaxqr" / "trustlists.json"


_TRUST_SUFFIXES = {".pem", ".crt", ".cer", ".der", ".json", ".crl"}


def _expand(paths: Iterable[str | os.PathLike[str]]) -> list[tuple[Path, bool]]:
    """Files to read, with whether each was named explicitly."""
    out: list[tuple[Path, bool]] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                rel = f.relative_to(p).parts
                if (
                    f.is_file()
                    and f.suffix.lower() in _TRUST_SUFFIXES
                    and not any(part.startswith(".") for part in rel)
                ):
                    out.append((f, False))
        elif p.exists():
            out.append((p, True))
        else:
            raise StorageError(f"trust file {p} does not exist")
    return out


@dataclass(frozen=True)
class TrustStore:
    """Trusted DSCs, CA anchors, revocations and the warnings met while loading them."""

    signers: tuple[TrustedSigner, ...]
    anchors: tuple[x509.Certificate, ...]
    trustlists: tuple[TrustList, ...]
    revoked_credential_hashes: frozenset[bytes]
    revoked_fingerprints: frozenset[str]
    revoked_kids: frozenset[bytes]
    at: dt.datetime
    warnings: tuple[str, ...] = ()
    revocation_sources: tuple[str, ...] = ()  # verified trust lists and CRLs

    @property
    def has_revocation_data(self) -> bool:
        """A signed trust list or CRL was loaded, so revocation can be checked."""
        return bool(self.revocation_sources)

    @classmethod
    def from_paths(
        cls,
        paths: Iterable[str | os.PathLike[str]],
        *,
        at: dt.datetime,
        state_file: Path | None = None,
        allow_rollback: bool = False,
    ) -> TrustStore:
        """Load certificate files (PEM/DER, bundles), CRLs, trust lists, or directories.

        A DSC given directly is trusted as it is (only its DER, key and validity are used),
        unless a given CA issued it, in which case its chain is validated. A CA certificate
        is an anchor. A trust list must be signed by an anchor (or a CA in it chaining to
        one); its DSCs are validated by chain; an expired list is usable with a warning; a
        lower sequence number than the highest seen for that CA (kept in ``state_file``,
        default :func:`default_state_file`) is refused unless ``allow_rollback``. A CA
        certificate that issued nothing given here and signed no list is also taken as a
        signer as it is (the EU test data's LV files are signed with the CSCA itself).

        Chains are validated at ``at`` clamped into the DSC's own validity period, so an
        expired DSC is still found by kid and the verifier's expiry step reports it.
        Only a trust list's DSCs issued by the CA that signed the list are taken.
        """
        certs: list[tuple[x509.Certificate, str]] = []
        crls: list[tuple[x509.CertificateRevocationList, str]] = []
        lists: list[tuple[TrustList, str]] = []
        for path, explicit in _expand(paths):
            data = _read_file(path)
            kind = _sniff(data)
            try:
                if kind == "trustlist":
                    lists.append((parse_trustlist(data, str(path)), str(path)))
                elif kind == "crl":
                    crls.append((_parse_crl(data, str(path)), str(path)))
                elif kind == "certs":
                    certs += [(c, str(path)) for c in parse_certificates(data, str(path))]
                elif explicit:
                    raise TrustError(f"{path} is not a certificate, CRL or vaxqr trust list")
            except KeyCertError:
                if explicit:
                    raise
        return cls._build(
            certs, crls, lists, at=at, state_file=state_file, allow_rollback=allow_rollback
        )

    @classmethod
    def from_certificates(
        cls, certificates: Iterable[x509.Certificate], *, at: dt.datetime, source: str = "given"
    ) -> TrustStore:
        """A store from certificates in memory (e.g. the EU test data's DSC)."""
        return cls._build([(c, source) for c in certificates], [], [], at=at, state_file=None)

    @classmethod
    def _build(
        cls,
        certs: list[tuple[x509.Certificate, str]],
        crls: list[tuple[x509.CertificateRevocationList, str]],
        lists: list[tuple[TrustList, str]],
        *,
        at: dt.datetime,
        state_file: Path | None,
        allow_rollback: bool = False,
    ) -> TrustStore:
        at = _aware(at)
        warnings: list[str] = []
        anchors: dict[str, x509.Certificate] = {}
        anchor_src: dict[str, str] = {}
        direct: list[tuple[x509.Certificate, str]] = []
        for c, src in certs:
            if is_ca_certificate(c):
                anchors.setdefault(fingerprint(c), c)
                anchor_src.setdefault(fingerprint(c), src)
            else:
                direct.append((c, src))
        anchor_list = list(anchors.values())

        # Trust lists: signature, newest per CA, rollback, expiry.
        verified: dict[str, TrustList] = {}
        sources: dict[str, str] = {}
        for tl, src in lists:
            tl = verify_trustlist(tl, anchor_list, at=at, source=src)
            assert tl.verified_by is not None
            ident = spki_sha256(tl.verified_by)
            prev = verified.get(ident)
            if prev is not None:
                older, newer = (prev, tl) if prev.sequence <= tl.sequence else (tl, prev)
                warnings.append(
                    f"{sources[ident] if older is prev else src}: ignored, an older list "
                    f"(sequence {older.sequence}) than {newer.sequence} from the same CA"
                )
                if newer is prev:
                    continue
            verified[ident] = tl
            sources[ident] = src
        if verified:
            _check_rollback(
                verified, sources, state_file or default_state_file(), at, allow_rollback
            )
        for ident, tl in verified.items():
            if tl.expired(at):
                warnings.append(
                    f"{sources[ident]}: trust list expired on {iso(tl.next_update)} "
                    f"(sequence {tl.sequence}); get a newer one from the province"
                )
            if tl.issued > at + dt.timedelta(minutes=5):
                warnings.append(f"{sources[ident]}: trust list issued after the validation time")

        extra_cas = [c for tl in verified.values() for c in tl.cas]
        revoked_fps: set[str] = set()
        revoked_kids: set[bytes] = set()
        for tl in verified.values():
            for entry in tl.revoked_dscs:
                revoked_fps.add(entry.get("fingerprint", "").lower())
                with contextlib.suppress(TrustError):
                    revoked_kids.add(_unb64(entry.get("kid"), "kid"))
        revoked_serials: set[tuple[bytes, int]] = set()
        crl_sources: list[str] = []
        for crl, src in crls:
            issuer = next((a for a in [*anchor_list, *extra_cas] if a.subject == crl.issuer), None)
            if issuer is None or not crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]
                warnings.append(f"{src}: CRL ignored, its issuer is not a trusted CA")
                continue
            if crl.next_update_utc is not None and crl.next_update_utc < at:
                nxt = iso(crl.next_update_utc)
                warnings.append(f"{src}: CRL is out of date (next update {nxt})")
            der_issuer = crl.issuer.public_bytes()
            revoked_serials |= {(der_issuer, r.serial_number) for r in crl}
            crl_sources.append(src)

        signers: dict[str, TrustedSigner] = {}

        def add(cert: x509.Certificate, src: str, validate: bool, is_ca: bool = False) -> None:
            fp = fingerprint(cert)
            chain: tuple[x509.Certificate, ...] = (cert,)
            if validate:
                try:
                    chain = validate_chain(
                        cert,
                        anchors=anchor_list,
                        intermediates=[*extra_cas, *anchor_list],
                        at=_clamp(at, cert),
                        cert_type=None,
                    )
                except TrustError as exc:
                    warnings.append(f"{src}: not trusted: {exc}")
                    return
            if fp in signers and signers[fp].chain_validated and not validate:
                return
            revoked = (
                fp in revoked_fps
                or (cert.issuer.public_bytes(), cert.serial_number) in revoked_serials
            )
            signers[fp] = TrustedSigner(
                certificate=cert,
                public_key=_public_key(cert),
                kid=kid_of(cert),
                chain=chain,
                source=src,
                revoked=revoked,
                chain_validated=validate,
                is_ca=is_ca,
            )

        for ident, tl in verified.items():
            for e in tl.dscs:
                if tl.verified_by is not None and e.certificate.issuer != tl.verified_by.subject:
                    warnings.append(
                        f"{sources[ident]}: DSC {name_str(e.certificate.subject)} ignored, "
                        "it was not issued by the CA that signed the list"
                    )
                    continue
                add(e.certificate, sources[ident], True)
        ca_subjects = {a.subject.public_bytes() for a in [*anchor_list, *extra_cas]}
        for c, src in direct:
            issued_by_known_ca = c.issuer.public_bytes() in ca_subjects
            add(c, src, issued_by_known_ca)
        # A CA certificate that issued nothing given here and signed no list is taken as a
        # signer as it is: some EU test data (LV) signs credentials with the CSCA itself.
        issuers = {c.issuer.public_bytes() for c, _ in direct}
        issuers |= {
            e.certificate.issuer.public_bytes() for tl in verified.values() for e in tl.dscs
        }
        issuers |= {
            a.issuer.public_bytes() for a in [*anchor_list, *extra_cas] if a.issuer != a.subject
        }
        list_signers = {fingerprint(tl.verified_by) for tl in verified.values() if tl.verified_by}
        for fp, a in anchors.items():
            if a.subject.public_bytes() not in issuers and fp not in list_signers:
                add(a, anchor_src[fp], False, is_ca=True)

        if not signers and not anchor_list:
            raise TrustError(
                "no trust material: give DSC or CA certificates, or a trust list with its CA"
            )
        if not signers:
            warnings.append("no signing certificate (DSC) is trusted: every credential will fail")
        return cls(
            signers=tuple(signers.values()),
            anchors=tuple(anchor_list),
            trustlists=tuple(verified.values()),
            revoked_credential_hashes=frozenset(
                h for tl in verified.values() for h in tl.revoked_credentials
            ),
            revoked_fingerprints=frozenset(revoked_fps - {""}),
            revoked_kids=frozenset(revoked_kids),
            at=at,
            warnings=tuple(warnings),
            revocation_sources=(*sources.values(), *crl_sources),
        )

    def signers_for_kid(self, kid: bytes) -> tuple[TrustedSigner, ...]:
        """Every trusted DSC with this kid (several may share one; try them all)."""
        return tuple(s for s in self.signers if s.kid == kid)

    def all_signers(self) -> tuple[TrustedSigner, ...]:
        return self.signers

    def is_credential_revoked(self, uvci: str) -> bool:
        return credential_revocation_hash(uvci) in self.revoked_credential_hashes

    def is_dsc_revoked(self, cert: x509.Certificate) -> bool:
        fp = fingerprint(cert)
        return fp in self.revoked_fingerprints or any(
            s.revoked for s in self.signers if fingerprint(s.certificate) == fp
        )

    def is_kid_revoked(self, kid: bytes) -> bool:
        """A DSC with this kid was revoked by a trust list (its certificate is gone from it)."""
        return kid in self.revoked_kids


def _public_key(cert: x509.Certificate) -> PublicKey:
    try:
        key = cert.public_key()
    except (ValueError, x509.UnsupportedGeneralNameType) as exc:
        raise TrustError(f"cannot read the key of {name_str(cert.subject)}") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise TrustError(f"unsupported key type {type(key).__name__} in a DSC")
    return key


def _sniff(data: bytes) -> str:
    head = data.lstrip()[:1]
    if head == b"{":
        return "trustlist"
    if b"-----BEGIN X509 CRL-----" in data:
        return "crl"
    if b"-----BEGIN CERTIFICATE-----" in data or b"-----BEGIN TRUSTED CERTIFICATE" in data:
        return "certs"
    if head == b"\x30":
        try:
            x509.load_der_x509_certificate(data)
            return "certs"
        except ValueError:
            return "crl"
    return "unknown"


def _parse_crl(data: bytes, source: str) -> x509.CertificateRevocationList:
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_crl(data)
        return x509.load_der_x509_crl(data)
    except ValueError as exc:
        raise KeyCertError(f"{source} is not a readable CRL") from exc


def _check_rollback(
    lists: dict[str, TrustList],
    sources: dict[str, str],
    state_file: Path,
    at: dt.datetime,
    allow_rollback: bool,
) -> None:
    state: dict[str, Any] = {"format": "vaxqr-trustlist-state", "version": 1, "cas": {}}
    if state_file.exists():
        try:
            loaded = json.loads(_read_file(state_file))
            if not isinstance(loaded.get("cas"), dict):
                raise ValueError("no 'cas' object")
            state = loaded
        except (ValueError, AttributeError) as exc:
            raise TrustError(
                f"the trust-list state file {state_file} is damaged: {exc}",
                hint="fix or delete it (deleting it forgets which lists were seen)",
            ) from exc
    changed = False
    for ident, tl in lists.items():
        seen = state["cas"].get(ident)
        if isinstance(seen, dict) and isinstance(seen.get("sequence"), int):
            if tl.sequence < seen["sequence"] and not allow_rollback:
                raise TrustError(
                    f"{sources[ident]}: trust list sequence {tl.sequence} is older than "
                    f"{seen['sequence']}, already seen from this CA (rollback refused)",
                    hint="get the current trust list from the province",
                )
            if tl.sequence == seen["sequence"] and tl.digest != seen.get("digest"):
                if not allow_rollback:
                    raise TrustError(
                        f"{sources[ident]}: a different trust list with the same sequence "
                        f"{tl.sequence} was already seen from this CA"
                    )
            if tl.sequence <= seen["sequence"]:
                continue
        assert tl.verified_by is not None
        state["cas"][ident] = {
            "sequence": tl.sequence,
            "digest": tl.digest,
            "subject": name_str(tl.verified_by.subject),
            "seen_at": iso(_utcnow()),
        }
        changed = True
    if changed:
        ensure_dir(state_file.parent, mode=0o700)
        atomic_write(state_file, _dump_json(state), overwrite=True)


# --------------------------------------------------------------------------------------
# The signing office's view


@dataclass(frozen=True)
class Signer:
    """A commune's signing key and certificate, ready for ``vaxqr issue``."""

    private_key: PrivateKey = field(repr=False)
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    kid: bytes
    province_code: str
    commune_code: str
    commune_name: str
    province_name: str | None
    is_demo: bool
    warnings: tuple[str, ...] = ()

    @property
    def alg(self) -> str:
        """COSE algorithm name: ``ES256`` or ``PS256``."""
        return cose_alg_for(self.private_key)

    @property
    def uvci_prefix(self) -> str:
        """``URN:UVCI:01:VN:<province>/<commune>/``; add the serial and the check character."""
        return f"URN:UVCI:01:VN:{self.province_code}/{self.commune_code}/"


def load_signer(signer_dir: str | os.PathLike[str], password: bytes | None) -> Signer:
    """Load ``signer.key`` (decrypting it), ``signer.crt``, ``chain.pem`` and ``signer.json``.

    Warnings (returned, not printed): key readable by others, key not encrypted, DEMO ONLY.
    """
    d = Path(signer_dir)
    key_path, cert_path = d / "signer.key", d / "signer.crt"
    if not cert_path.exists():
        raise StorageError(f"{d} is not a signer directory (no signer.crt)")
    warnings = [w for w in [check_private_file(key_path)] if w] if key_path.exists() else []
    if not key_is_encrypted(key_path):
        warnings.append(f"{key_path} is not encrypted")
    key = load_private_key(key_path, password)
    cert = load_certificates(cert_path)[0]
    if key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) != _public_key(cert).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ):
        raise KeyCertError(f"{key_path} does not belong to {cert_path}")
    chain_path = d / "chain.pem"
    chain = tuple(load_certificates(chain_path)) if chain_path.exists() else (cert,)
    if fingerprint(chain[0]) != fingerprint(cert):
        chain = (cert, *chain)
    meta: dict[str, Any] = {}
    if (d / "signer.json").exists():
        try:
            meta = json.loads(_read_file(d / "signer.json"))
        except ValueError as exc:
            raise StorageError(f"{d / 'signer.json'} is damaged: {exc}") from exc
    issuer_code = _name_attr(chain[1].subject, NameOID.SERIAL_NUMBER) if len(chain) > 1 else None
    province = meta.get("province_code") or issuer_code
    commune = meta.get("commune_code") or _name_attr(cert.subject, NameOID.SERIAL_NUMBER)
    if not province or not commune:
        raise KeyCertError(
            f"{d}: cannot tell the province and commune codes (no signer.json, and the "
            "certificates have no serialNumber attributes)"
        )
    demo = bool(meta.get("demo")) or is_demo_certificate(cert)
    if demo:
        warnings.append(f"{d} holds a {DEMO_MARK} key: credentials it signs are not real")
    return Signer(
        private_key=key,
        certificate=cert,
        chain=chain,
        kid=kid_of(cert),
        province_code=str(province),
        commune_code=str(commune),
        commune_name=str(
            meta.get("commune_name") or _name_attr(cert.subject, NameOID.COMMON_NAME) or ""
        ),
        province_name=meta.get("province_name"),
        is_demo=demo,
        warnings=tuple(warnings),
    )


# --------------------------------------------------------------------------------------
# Description (``vaxqr certs show``)


def describe_certificate(cert: x509.Certificate) -> dict[str, Any]:
    """Subject, issuer, validity, kid, EKU, key type and fingerprint, as plain JSON data."""
    try:
        ekus: list[str] | None = sorted(e) if (e := eku_oids(cert)) is not None else None
        eku_error = None
    except KeyCertError as exc:
        ekus, eku_error = None, str(exc)
    try:
        key_type = key_type_name(cert.public_key())
    except ValueError:
        key_type = "unreadable"
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
    """Describe a certificate file, CRL or trust list as JSON data (``certs show``).

    With ``trust`` (CA certificates), a trust list's signature and a certificate's chain
    are checked against them; without, certificates are checked against the CA
    certificates in the same file (labelled ``"anchor": "same file"``).
    """
    p = Path(path)
    data = _read_file(p)
    at = _aware(at) if at else _utcnow()
    kind = _sniff(data)
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
        crl = _parse_crl(data, str(p))
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
            ok = issuer is not None and crl.is_signature_valid(issuer.public_key())  # type: ignore[arg-type]
            out["signature"] = {"status": "valid" if ok else "invalid"}
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
    except (x509.ExtensionNotFound, ValueError):
        return "unspecified"
    names = {v: k for k, v in REVOCATION_REASONS.items()}
    return names.get(reason, reason.name)
