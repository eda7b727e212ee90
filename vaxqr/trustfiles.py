"""Reading trust material from files: certificates, CRLs and trust lists, one set of rules
for everyone who reads them.

A checkpoint's :class:`vaxqr.trust.TrustStore` (``vaxqr verify --trust``) and a commune
office's check of its own certificate (:mod:`vaxqr.signercheck`: ``SIGNER/trust/`` and
``vaxqr issue --trust``) both read through :func:`read_trust_material`, so a file means
the same to both:

* a file named explicitly must be trust material, and readable: anything else raises;
* in a directory, a file that is not trust material at all (another kind of JSON, a
  damaged certificate, a private key) is passed over: a private key is reported, so that
  the caller can say where it belongs;
* a trust list or CRL that cannot be read raises wherever it is (a directory too): its
  revocations must not be dropped in silence. A file is taken for one when it names the
  vaxqr trust-list format, or is a PEM CRL or a ``.crl`` file.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from .certinfo import _read_file, name_str, parse_certificates
from .errors import KeyCertError, StorageError, TrustError
from .trustlist import TRUSTLIST_FORMAT, TrustList, parse_trustlist

TRUST_SUFFIXES = frozenset({".pem", ".crt", ".cer", ".der", ".json", ".crl"})
# files of a directory read only to say that a private key lies there (ca.key,
# signer.key); a renamed one (province.pem) is found among the files above by its content
KEY_SUFFIXES = frozenset({".key", ".p8", ".pk8"})
PRIVATE_KEY_PEM = b"PRIVATE KEY-----"


@dataclass(frozen=True)
class PrivateKeyFile:
    """A private key met among trust material: alone in a directory (passed over), or in a
    file beside its certificates (``beside_certificates``; the certificates are read)."""

    path: Path
    beside_certificates: bool


@dataclass(frozen=True)
class TrustMaterial:
    """What :func:`read_trust_material` read, each item with the file it came from."""

    certificates: tuple[tuple[x509.Certificate, str], ...]
    crls: tuple[tuple[x509.CertificateRevocationList, str], ...]
    trustlists: tuple[tuple[TrustList, str], ...]
    private_keys: tuple[PrivateKeyFile, ...] = ()
    files: tuple[Path, ...] = ()  # every file looked at, trust material or not


def trust_paths(paths: Iterable[str | os.PathLike[str]]) -> list[tuple[Path, bool]]:
    """The files to read for ``paths`` (files, or directories read recursively, hidden
    entries left out), each with whether it was named explicitly. A missing path raises
    :class:`StorageError`."""
    out: list[tuple[Path, bool]] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                rel = f.relative_to(p).parts
                if (
                    f.is_file()
                    and f.suffix.lower() in TRUST_SUFFIXES | KEY_SUFFIXES
                    and not any(part.startswith(".") for part in rel)
                ):
                    out.append((f, False))
        elif p.exists():
            out.append((p, True))
        else:
            raise StorageError(f"trust file {p} does not exist")
    return out


def read_trust_material(paths: Iterable[str | os.PathLike[str]]) -> TrustMaterial:
    """Read the certificates, CRLs and trust lists in ``paths`` by the rules of the module
    documentation. Raises :class:`KeyCertError` (or its :class:`TrustError`) for an
    unusable file named explicitly and for a damaged trust list or CRL anywhere,
    :class:`StorageError` for one that cannot be read. Signatures are not checked here."""
    certs: list[tuple[x509.Certificate, str]] = []
    crls: list[tuple[x509.CertificateRevocationList, str]] = []
    lists: list[tuple[TrustList, str]] = []
    keys: list[PrivateKeyFile] = []
    files = trust_paths(paths)
    for path, explicit in files:
        data = _read_file(path)
        kind = sniff(data)
        if kind == "key" and not explicit:  # in a directory: read on, but say so
            keys.append(PrivateKeyFile(path, beside_certificates=False))
            continue
        if kind in ("certs", "crl") and PRIVATE_KEY_PEM in data:
            keys.append(PrivateKeyFile(path, beside_certificates=True))
        if not explicit and path.suffix.lower() in KEY_SUFFIXES:
            continue  # (a .key file that is not a PEM key: not trust material either)
        try:
            if kind == "trustlist":
                lists.append((parse_trustlist(data, str(path)), str(path)))
            elif kind == "crl":
                crls.append((parse_crl(data, str(path)), str(path)))
            elif kind == "certs":
                certs += [(c, str(path)) for c in parse_certificates(data, str(path))]
            elif explicit and kind == "key":
                raise TrustError(
                    f"{path} is a private key, not a certificate, CRL or trust list",
                    hint="give the CA certificate (ca.crt) or the trust list; a private "
                    "key belongs only in its CA or signer directory, never at a checkpoint")
            elif explicit:
                raise TrustError(f"{path} is not a certificate, CRL or vaxqr trust list")
        except KeyCertError:
            # in a directory too: a damaged trust list or CRL skipped in silence would
            # drop its revocations, and the DSCs given beside it would still verify
            if explicit or _holds_revocations(kind, data, path):
                raise
    return TrustMaterial(tuple(certs), tuple(crls), tuple(lists), tuple(keys),
                         tuple(f for f, _explicit in files))


def sniff(data: bytes) -> str:
    """What a file holds, by its first bytes: ``trustlist``, ``crl``, ``certs``, ``key``
    or ``unknown`` (nothing is parsed; a DER blob that is no certificate is ``crl``)."""
    head = data.lstrip()[:1]
    if head == b"{":
        return "trustlist"
    if b"-----BEGIN X509 CRL-----" in data:
        return "crl"
    if b"-----BEGIN CERTIFICATE-----" in data or b"-----BEGIN TRUSTED CERTIFICATE" in data:
        return "certs"
    if PRIVATE_KEY_PEM in data:  # PKCS#8, encrypted or not, or OpenSSL's legacy PEM
        return "key"
    if head == b"\x30":
        try:
            x509.load_der_x509_certificate(data)
            return "certs"
        except x509.InvalidVersion:  # a certificate, of an unknown version
            return "certs"
        except ValueError:
            return "crl"
    return "unknown"


def _holds_revocations(kind: str, data: bytes, path: Path) -> bool:
    """Whether trust material that could not be read is a vaxqr trust list (it names the
    format) or a CRL (PEM, or a .crl file), so that it may hold revocations."""
    if kind == "trustlist":
        return f'"{TRUSTLIST_FORMAT}"'.encode() in data
    return kind == "crl" and (b"-----BEGIN X509 CRL-----" in data
                              or path.suffix.lower() == ".crl")


def parse_crl(data: bytes, source: str) -> x509.CertificateRevocationList:
    """A CRL (PEM or DER), fully parsed; :class:`KeyCertError` naming ``source`` if not."""
    try:
        crl = x509.load_pem_x509_crl(data) if b"-----BEGIN" in data else \
            x509.load_der_x509_crl(data)
        # what cryptography parses lazily, and raises ValueError/TypeError for on first use
        name_str(crl.issuer)
        crl.issuer.public_bytes()
        _ = crl.last_update_utc, crl.next_update_utc
        for r in crl:
            _ = r.serial_number, r.revocation_date_utc
        return crl
    except (ValueError, TypeError, x509.InvalidVersion) as exc:
        raise KeyCertError(f"{source} is not a readable CRL") from exc


def open_to_others(given: Iterable[Path], files: Iterable[Path], what: str,
                   risk: str) -> list[str]:
    """Warnings for trust material that other users of this computer can change: a file
    read, the directory holding it or a path given, writable by every user (but a
    directory with the sticky bit, as /tmp: others cannot replace a file of ours there) or
    belonging to another user than this one and root. ``what`` is what they could change
    (``what this checkpoint trusts``), ``risk`` how. Directories between a given one and
    a deeper file's folder, and the parents of a given one, are not looked at."""
    uid = os.geteuid()
    out: list[str] = []
    seen: set[Path] = set()
    for p in [*given, *(q for f in files for q in (f, f.parent))]:
        if p in seen:
            continue
        seen.add(p)
        try:
            st = os.stat(p)
        except OSError:
            continue
        mode = stat.S_IMODE(st.st_mode)
        if st.st_uid not in (uid, 0):
            out.append(f"{p} belongs to another user of this computer (uid {st.st_uid}), who "
                       f"can change {what}: {risk}")
        elif mode & stat.S_IWOTH and not (stat.S_ISDIR(st.st_mode) and mode & stat.S_ISVTX):
            out.append(f"{p} can be written by every user of this computer (mode "
                       f"{mode:04o}): {risk}; to keep them out: chmod o-w {p}")
    return out
