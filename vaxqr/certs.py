"""The province side of ``vaxqr certs``: CAs, commune signing certificates, trust lists.

A province CA (the DCC "CSCA"; self-signed, or signed by a national root CA directory)
issues one document-signing certificate (DSC) per commune People's Committee
(:func:`init_ca`, :func:`issue_signer`) and publishes a signed trust list for checkpoints
(:func:`build_trustlist`); a commune loads its DSC and key to sign credentials
(:func:`load_signer`). Next to this module: :mod:`vaxqr.cadir` (the CA directory and its
state), :mod:`vaxqr.revocation` (CRL, revoked DSCs and credentials), :mod:`vaxqr.keys`,
:mod:`vaxqr.certinfo` (kid, fingerprints, EKU, names), :mod:`vaxqr.trustlist` (the list
format), and on the verifier's side :mod:`vaxqr.chain` and :mod:`vaxqr.trust`.

Signer directory layout (``SIGNER_DIR``)::

    signer.crt  the commune's DSC (PEM)
    signer.key  its private key, encrypted PKCS#8 (PEM), mode 0600
    chain.pem   DSC, then the province CA, then the root CA if any
    signer.json province code and name, commune code and name, kid, demo flag
    trust/      (optional) the CRLs and trust list the province hands out, which
                ``vaxqr issue`` reads before signing (:mod:`vaxqr.signercheck`)
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import shutil
import unicodedata
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from .cadir import (
    NEW_KEY_HOLDS,
    NOTHING_LEFT_HINT,
    CAInfo,
    IssuedCert,
    _check_replaceable,
    _commit_dir,
    _load_ca_key,
    _locked,
    _prepare_dir,
    _replace,
    _save_state,
    _state_doc,
    open_ca,
    signer_commune,
    signer_ledger,
)
from .certinfo import (
    DEMO_MARK,
    EKU_VACCINATION,
    _aware,
    _dump_json,
    _name_attr,
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
)
from .citizen import PROVINCES
from .errors import (
    KeyCertError,
    StorageError,
    ValidationError,
    VaxqrError,
    full_disk_hint,
    when_full,
)
from .fileio import (
    PRIVATE,
    PUBLIC,
    atomic_write,
    check_private_file,
    check_writable,
    ensure_dir,
    refuse_foreign_symlink,
)
from .keys import (
    KeyType,
    PrivateKey,
    _check_new_password,
    _public_key,
    _sign_kwargs,
    change_password,
    cose_alg_for,
    generate_key,
    key_protection,
    key_to_pem,
    key_type_name,
    load_private_key,
    protection_warning,
)
from .recover import Finished, finish_interrupted
from .revocation import CRL_DAYS_DEFAULT, _build_crl, resign_crl
from .trustlist import (
    TRUSTLIST_FORMAT,
    TrustList,
    _sign_bytes,
    _verify_bytes,
    canonical_json,
    parse_trustlist,
)

CA_DAYS_DEFAULT = 5 * 365 + 1
CA_DAYS_MIN, CA_DAYS_MAX = 4 * 365, 10 * 365 + 3
DSC_DAYS_DEFAULT = 2 * 365
DSC_DAYS_MAX = 10 * 365 + 3
TRUSTLIST_DAYS_DEFAULT = 7


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


# --------------------------------------------------------------------------------------
# The CA


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


def _refuse_existing_ca(target: Path) -> None:
    """``target`` exists: say so, and when it is a CA in use, what ``--force`` would undo."""
    try:
        ca = open_ca(target)
    except VaxqrError:
        raise StorageError(f"{target} already exists", hint="use --force to replace it") from None
    kind = "root CA" if ca.role == "root" else f"province CA {ca.code} ({ca.name})"
    issued = [r for r in ca.issued if r.kind == ("ca" if ca.role == "root" else "dsc")]
    what = "province CA" if ca.role == "root" else "commune"
    add = ("vaxqr certs init PROVINCE_DIR --parent" if ca.role == "root"
           else "vaxqr certs issue")
    raise StorageError(
        f"{target} already exists: the {kind}, which issued {len(issued)} {what} certificates",
        hint=f"to add a {what.split()[0]}, use {add} {target} …; a new CA here (--force) "
             f"deletes this one's key: every {what} would need a new certificate, and every "
             "checkpoint the new ca.crt")


def check_ca_request(
    ca_dir: str | os.PathLike[str],
    *,
    name: str,
    province_code: str | None,
    parent_dir: str | os.PathLike[str] | None = None,
    root: bool = False,
    days: int = CA_DAYS_DEFAULT,
    force: bool = False,
    explicit_end: bool = False,
    now: dt.datetime | None = None,
) -> str:
    """Check a CA to create with :func:`init_ca` before any key work (the CLI: before any
    password is asked): the name, the province code, the validity in ``days`` (unless
    ``explicit_end``: the caller gives the end; from ``now``, by default the current
    time), ``ca_dir`` (not reached through another
    user's symbolic link, not an existing CA unless ``force``, not the parent itself) and
    the parent (a root CA, valid today and long enough for a province CA). Return the name
    as it goes into the certificate."""
    target = Path(ca_dir)
    refuse_foreign_symlink(target, NEW_KEY_HOLDS)
    role: Literal["province", "root"] = "root" if root else "province"
    name = _check_text(name, "the name")
    if role == "province":
        if province_code is None:
            raise ValidationError("a province CA needs --province, its 3-digit code (e.g. 091 "
                                  "for Kiên Giang); a national root CA needs --root")
        if not _CODE_RE["province"].match(province_code):
            raise ValidationError(
                f"province code must be 3 digits (e.g. 091 for Kiên Giang), got {province_code!r}"
            )
        if province_code not in PROVINCES:  # the codes have gaps (003, 005…): never fill them
            raise ValidationError(
                f"unknown province code {province_code!r}: it must be one of the 63 province "
                "codes of ID numbers (e.g. 001 Hà Nội, 079 Hồ Chí Minh, 089 An Giang, "
                "091 Kiên Giang); its UVCIs and every commune certificate would carry it")
    elif parent_dir is not None:
        raise ValidationError("a root CA has no parent")
    if not CA_DAYS_MIN <= days <= CA_DAYS_MAX and not explicit_end:
        raise ValidationError(
            f"CA validity must be 4 to 10 years ({CA_DAYS_MIN}-{CA_DAYS_MAX} days)"
        )
    if not force and target.exists() and target.is_dir() and any(target.iterdir()):
        _refuse_existing_ca(target)
    if parent_dir is not None and target.resolve() == Path(parent_dir).resolve():
        raise ValidationError(f"{target} is the parent root CA itself; a CA cannot replace "
                              "the CA that signs it", hint="choose another directory")
    if force and target.is_dir() and any(target.iterdir()):  # early: before any key work
        _check_replaceable(target, role)
    if parent_dir is not None:
        parent = open_ca(parent_dir)
        if parent.role != "root":
            raise ValidationError(f"{parent.directory} is a province CA, not a root CA")
        if not explicit_end:
            start = _aware(now) if now else _utcnow()
            _under_root(parent, start, start + dt.timedelta(days=days))
    return name


def _under_root(parent: CAInfo, start: dt.datetime, end: dt.datetime
                ) -> tuple[dt.datetime, list[str]]:
    """The end of a province CA from ``start`` to ``end`` signed by the root CA ``parent``
    (never past the root's), with the warning when it was shortened; ValidationError when
    the root is not valid at ``start`` or would leave it less than 4 years."""
    root_end = parent.certificate.not_valid_after_utc
    if start >= root_end or start < parent.certificate.not_valid_before_utc:
        raise ValidationError(
            f"the root CA in {parent.directory} is not valid on {iso(start)} (valid "
            f"{iso(parent.certificate.not_valid_before_utc)} to {iso(root_end)})",
            hint="renew the national root first")
    if end <= root_end:
        return end, []
    left = (root_end - start).days
    if left < CA_DAYS_MIN:  # SPEC §3: a CA is valid 4 to 10 years
        raise ValidationError(
            f"the root CA in {parent.directory} ends on {iso(root_end)}: a province "
            f"CA under it would be valid {left} days, less than 4 years",
            hint="renew the national root first")
    return root_end, [f"validity shortened to the root CA's end, {iso(root_end)}"]


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
    now = _aware(now) if now else _utcnow()
    start = _aware(not_before) if not_before else now
    name = check_ca_request(target, name=name, province_code=province_code,
                            parent_dir=parent_dir, root=root, days=days, force=force,
                            explicit_end=not_after is not None, now=start)
    _check_new_password(password)
    end = _aware(not_after) if not_after else start + dt.timedelta(days=days)
    span = (end - start).days
    if not CA_DAYS_MIN <= span <= CA_DAYS_MAX:
        raise ValidationError(f"CA validity must be 4 to 10 years, got {span} days")
    warnings: list[str] = []

    parent: CAInfo | None = None
    parent_key: PrivateKey | None = None
    if parent_dir is not None:
        parent = open_ca(parent_dir)
        end, shortened = _under_root(parent, start, end)
        parent_key, w = _load_ca_key(parent, parent_password)
        warnings += [*w, *shortened]

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
    record = None
    if parent is not None:
        record = IssuedCert(serial, "ca", cert, province_code or "", name, now)
    with when_full(NOTHING_LEFT_HINT):
        tmp = _prepare_dir(target, files, force=force, kind=role)
        _record_and_commit(tmp, target, parent.directory if parent else None, record,
                           force=force, kind=role)
    if password is None:
        warnings.append(f"{target / 'ca.key'} is NOT encrypted")
    return _replace(info, files=tuple(target / n for n in files), warnings=tuple(warnings))


# --------------------------------------------------------------------------------------
# Commune signing certificates (DSCs)


@dataclass(frozen=True)
class IssuedSigner:
    """What ``issue_signer`` produced."""

    record: IssuedCert
    directory: Path
    chain: tuple[x509.Certificate, ...]
    files: tuple[Path, ...]
    warnings: tuple[str, ...]
    kept: tuple[Path, ...] = ()  # the office ledger and trust/ of the directory it replaced


def _finished_signer(finished: Finished, target: Path, password: bytes | None, *,
                     asked: tuple[str, int, KeyType]) -> IssuedSigner:
    """The signer an interrupted run made, now in place (:func:`finish_interrupted`). Its
    key has the interrupted run's password: a warning says so when ``password`` (this
    run's) does not open it, or when it is not encrypted though this run gave one; a key
    that opens and is not the certificate's is refused (:class:`KeyCertError`). Its name,
    validity and key type are the interrupted run's too: a warning names those that differ
    from ``asked`` (this run's name, days and key type), which were not used."""
    record = finished.placed
    assert record is not None
    key_path = target / "signer.key"
    files = (key_path, *(target / n for n in ("signer.crt", "chain.pem", "signer.json")))
    kept = tuple(target / n for n in finished.kept if (target / n).exists())
    warnings = list(finished.notes)
    try:
        key = load_private_key(key_path, password)
    except KeyCertError:
        if password is not None:
            warnings.append(f"the password given to this run does not open {key_path}: it "
                            "has the password given to the interrupted run, which is the one "
                            "to keep")
    else:
        if _spki(key.public_key()) != _spki(record.certificate.public_key()):
            raise KeyCertError(f"{key_path} does not belong to {target / 'signer.crt'}",
                               hint="issue the commune a new certificate (--force)")
        if password is not None and (w := protection_warning(key_path)):
            warnings.append(w)
    chain = tuple(load_certificates(target / "chain.pem"))
    if unused := _not_used(record, chain, asked):
        warnings.append(
            f"{target} holds the certificate of the interrupted run, which this run finished "
            f"instead of issuing another; this run's {', '.join(unused)} were not used: run "
            "the same command again with --force to renew it with them (the office ledger and "
            "trust/ are kept)")
    return IssuedSigner(record, target, chain, files, tuple(warnings), kept)


def _not_used(record: IssuedCert, chain: tuple[x509.Certificate, ...],
              asked: tuple[str, int, KeyType]) -> list[str]:
    """The options of this run (``asked``) that the finished certificate ``record`` does
    not have, each with what it has instead."""
    name, days, key_type = asked
    cert = record.certificate
    unused = []
    if name != record.name:
        unused.append(f"--name {name!r} (it is {record.name!r})")
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    ca_end = chain[1].not_valid_after_utc if len(chain) > 1 else end
    if min(start + dt.timedelta(days=days), ca_end) != end:  # (both shortened to the CA's)
        unused.append(f"--days {days} (it is valid {(end - start).days} days, to {iso(end)})")
    has = key_type_name(cert.public_key())
    if (key_type == "rsa") != has.startswith("RSA"):
        unused.append(f"--rsa (it has an {has} key)" if key_type == "rsa"
                      else f"an EC key, without --rsa (it has an {has} key)")
    return unused


def _spki(public: Any) -> bytes:
    return bytes(public.public_bytes(serialization.Encoding.DER,
                                     serialization.PublicFormat.SubjectPublicKeyInfo))


def _record_and_commit(tmp: Path, target: Path, issuer_dir: Path | None,
                       record: IssuedCert | None, *, force: bool, kind: str,
                       keep: tuple[str, ...] = ()) -> None:
    """Record a new certificate in its issuer's state and move the prepared directory into
    place, both under the issuer's lock: if the directory cannot be placed (another run
    made it meanwhile), the record is taken back, so the issuer never lists a certificate
    whose key is gone. On any failure the prepared directory is removed."""
    if issuer_dir is None or record is None:
        _commit_dir(tmp, target, force=force, kind=kind, keep=keep)
        return
    try:
        with _locked(issuer_dir):
            before = open_ca(issuer_dir)
            _save_state(_replace(before, issued=(*before.issued, record)))
            try:
                _commit_dir(tmp, target, force=force, kind=kind, keep=keep)
            except BaseException:
                _save_state(before)
                raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def check_signer_request(commune_code: str, name: str, days: int) -> str:
    """Check the commune code, name and validity of a DSC to issue, before anything is
    read or written (a bad code is said before "SIGNER_DIR already exists"); return the
    name as it goes into the certificate."""
    if not _CODE_RE["commune"].match(commune_code):
        raise ValidationError(f"commune code must be 5 digits (GSO code), got {commune_code!r}")
    name = _check_text(name, "the commune name")
    if not 1 <= days <= DSC_DAYS_MAX:
        raise ValidationError(f"DSC validity must be 1 to {DSC_DAYS_MAX} days")
    return name


def check_issuing_ca(ca_dir: str | os.PathLike[str], *,
                     now: dt.datetime | None = None) -> CAInfo:
    """The CA directory ``ca_dir``, checked before any key work (the CLI: before the CA
    password is asked) to be a province CA, valid at ``now`` (by default the current time),
    that can issue a commune certificate."""
    ca = open_ca(ca_dir)
    if ca.role != "province":
        raise ValidationError(
            f"{ca.directory} is a root CA; commune certificates are issued by a province CA"
        )
    ca_end = ca.certificate.not_valid_after_utc
    if (_aware(now) if now else _utcnow()) > ca_end:
        raise KeyCertError(f"the CA in {ca.directory} has expired ({iso(ca_end)})")
    return ca


def check_signer_out(target: Path, commune_code: str, *, force: bool) -> tuple[str, ...]:
    """Check, before any key work, that a signer for ``commune_code`` may be written into
    ``target``: it does not exist (is empty), or ``force`` is given and it is not another
    commune's office, nor reached through another user's symbolic link. Return the
    office-ledger files (and trust/) the new directory keeps."""
    refuse_foreign_symlink(target, NEW_KEY_HOLDS)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        if not force:
            hint = "use --force to replace it"
            if target.is_dir() and signer_commune(target) == commune_code:
                hint = ("use --force to renew it: a new key and certificate, its ledger.sqlite "
                        "(the office's register) kept; then publish a trust list with the new "
                        "certificate")
            raise StorageError(f"{target} already exists", hint=hint)
        if target.is_dir():
            return signer_ledger(target, commune_code)
    return ()


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
    name = check_signer_request(commune_code, name, days)
    _check_new_password(password)
    target = Path(out_dir)
    # the place, the CA and the CA password are checked before an interrupted run's
    # leftovers are finished (moved, removed): a wrong password writes nothing, and a
    # finished signer is only handed to whoever may issue one
    check_signer_out(target, commune_code, force=force)  # before the password is asked
    now = _aware(now) if now else _utcnow()
    ca = check_issuing_ca(ca_dir, now=now)
    ca_key, warnings = _load_ca_key(ca, ca_password)
    finished = finish_interrupted(target, Path(ca_dir))
    if finished.placed is not None and finished.placed.code == commune_code:
        return _finished_signer(finished, target, password,  # the run again
                                asked=(name, days, key_type))
    keep = check_signer_out(target, commune_code, force=force)  # as the leftovers left it
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
            f"commune {commune_code} already has a valid certificate: it stays in the trust list "
            "until it expires, so the credentials it signed stay valid (revoke it only if its "
            "key was lost or stolen: that makes every credential it signed NOT VALID)"
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
    if ("trust" not in keep or not (target / "trust").exists()) \
            and (ca.directory / "crl.pem").is_file():
        # the CA's current CRL, so that the office knows a revocation from its first
        # signing on (vaxqr.signercheck warns when it knows none); a renewal keeps its own
        # trust/, and one that has none (an older vaxqr's directory) gets the CA's
        crl = _own_crl(ca)
        if crl is not None:
            files["trust/crl.pem"] = (crl, PUBLIC)
        else:  # a damaged CRL in trust/ would stop every signing of the office
            warnings.append(f"{ca.directory / 'crl.pem'} is not a CRL this CA signed: it is "
                            f"not put in {target / 'trust'} (run vaxqr certs crl "
                            f"{ca.directory}, and put the new one there)")
    record = IssuedCert(serial, "dsc", cert, commune_code, name, now)
    with when_full(NOTHING_LEFT_HINT):
        tmp = _prepare_dir(target, files, force=force, kind="signer")
        _record_and_commit(tmp, target, ca.directory, record, force=force, kind="signer",
                           keep=keep)
    if password is None:
        warnings.append(f"{target / 'signer.key'} is NOT encrypted")
    made = {n.split("/")[0] for n in files}  # (trust/, when it got the CA's CRL: not kept)
    return IssuedSigner(record, target, chain, tuple(target / n for n in files), tuple(warnings),
                        tuple(target / n for n in keep if n not in made and (target / n).exists()))


def _own_crl(ca: CAInfo) -> bytes | None:
    """The content of ``ca``'s ``crl.pem`` when it is a CRL its key signed, else None."""
    try:
        data = (ca.directory / "crl.pem").read_bytes()
        crl = x509.load_pem_x509_crl(data)
        key: Any = ca.certificate.public_key()
        return data if crl.is_signature_valid(key) else None
    except (OSError, ValueError, TypeError):
        return None


# --------------------------------------------------------------------------------------
# Trust lists


@dataclass(frozen=True)
class PublishedTrustList:
    trustlist: TrustList
    crl: x509.CertificateRevocationList
    files: tuple[Path, ...]
    warnings: tuple[str, ...]
    data: bytes  # the file content (also what ``out="-"`` callers print)


def check_trustlist_request(ca_dir: str | os.PathLike[str], valid_days: int) -> CAInfo:
    """The CA directory ``ca_dir``, checked before any key work (the CLI: before the
    password is asked) to publish a trust list valid ``valid_days``: a province CA."""
    if not 1 <= valid_days <= 3660:
        raise ValidationError("--valid-days must be between 1 and 3660")
    ca = open_ca(ca_dir)
    if ca.role != "province":
        raise ValidationError(f"{ca_dir} is a root CA; trust lists are published by province "
                              "CAs")
    return ca


def check_trustlist_out(target: Path, *, force: bool) -> None:
    """Refuse, before any key work, a trust-list output that is a directory, exists
    (without ``force``) or cannot be written (:func:`vaxqr.fileio.check_writable`; its
    directory, when missing, is made later)."""
    check_writable(target, overwrite=force, dir_made_later=True,
                   file_hint=f"give a file name, e.g. {target / 'trustlist.json'}",
                   holds="the trust list")


def _published_sequence(ca: CAInfo, target: Path) -> int | None:
    """The sequence of the trust list in ``target`` when this CA signed it (its signature
    checked against the CA's key), else None (no file, not a trust list, another CA's)."""
    try:
        if not target.is_file():
            return None
        tl = parse_trustlist(_read_file(target), str(target))
        if tl.signer_fingerprint != fingerprint(ca.certificate):
            return None
        key = ca.certificate.public_key()
        body = {k: v for k, v in tl.raw.items() if k != "signature"}
        signature = _unb64(tl.raw["signature"].get("value"), "signature")
        if not _verify_bytes(key, tl.signature_alg, signature, canonical_json(body)):
            return None
    except (VaxqrError, KeyError, AttributeError, TypeError, ValueError, OSError):
        return None
    return tl.sequence


def _check_not_behind(ca: CAInfo, target: Path, seq: int) -> None:
    """Refuse to replace a list this CA signed with a number ``seq`` or above: the CA's
    state.json is older than what it published (a backup extracted over the directory), so
    it has forgotten the revocations since, and the new list would reuse a number that
    checkpoints which saw the published one refuse (rollback or same sequence)."""
    published = _published_sequence(ca, target)
    if published is None or published < seq:
        return
    raise StorageError(
        f"{target} holds trust list {published}, signed by this CA, but "
        f"{ca.directory / 'state.json'} has only reached {seq - 1}: the CA directory is "
        "older than the list it published (a backup restored over it?), so it lacks the "
        "certificates issued and revoked since; nothing was signed",
        hint="use the CA directory that published it (restore a backup into a new, empty "
             "directory, never over the live one: see README 'Backups')")


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
    ca = check_trustlist_request(ca_dir, valid_days)
    now = _aware(now) if now else _utcnow()
    nu = _aware(next_update) if next_update else now + dt.timedelta(days=valid_days)
    d = Path(ca_dir)
    target = Path(out) if out is not None else None
    if target is not None:
        check_trustlist_out(target, force=force)
    key, warnings = _load_ca_key(ca, password)
    if ca.is_demo:
        warnings.append(f"{d} is a {DEMO_MARK} CA")
    if now > ca.certificate.not_valid_after_utc:
        warnings.append(f"the CA certificate expired on {iso(ca.certificate.not_valid_after_utc)}")
    if target is not None:
        ensure_dir(target.parent)
        # a read-only mount: before a number is used
        check_writable(target, overwrite=True, holds="the trust list")
    with _locked(d):
        ca = open_ca(d)
        seq = ca.trustlist_sequence + 1
        if target is not None and force:
            _check_not_behind(ca, target, seq)
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
        ca = _replace(ca, trustlist_sequence=seq)
        # crl.pem, then state.json: the sequence is used once the state is saved
        with when_full(full_disk_hint("run the same command again", f"sequence {seq} was "
                                      "not used and no trust list was written")):
            ca, crl = resign_crl(ca, key, now=now,
                                 next_update=max(nu, now + dt.timedelta(days=1)))
    files = [d / "state.json", d / "crl.pem"]
    if target is not None:
        kept = "the file it was to replace is unchanged" if force and target.exists() \
            else "no partial file is left"
        with when_full(full_disk_hint(
                "run the same command again", f"sequence {seq} is used (the CA's state and "
                f"crl.pem are saved) but no trust list was written ({kept}); the next run "
                f"signs {seq + 1}, which checkpoints accept")):
            atomic_write(target, data, overwrite=force)
        files.insert(0, target)
    tl = parse_trustlist(data, str(target or "trust list"))
    return PublishedTrustList(tl, crl, tuple(files), tuple(warnings), data)


# --------------------------------------------------------------------------------------
# The signing office's view


@dataclass(frozen=True, kw_only=True)
class SignerCertificate:
    """The public half of a commune signer directory (``signer.crt``, ``chain.pem``,
    ``signer.json``): who signs, under which CA. Enough to describe the office and to write
    a credential it issued again (``vaxqr issue --reprint``); nothing can be signed with it."""

    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    kid: bytes
    province_code: str
    commune_code: str
    commune_name: str
    province_name: str | None
    is_demo: bool
    warnings: tuple[str, ...] = ()
    directory: Path | None = None  # the signer directory it was loaded from

    @property
    def uvci_prefix(self) -> str:
        """``URN:UVCI:01:VN:<province>/<commune>/``; add the serial and the check character."""
        return f"URN:UVCI:01:VN:{self.province_code}/{self.commune_code}/"


@dataclass(frozen=True, kw_only=True)
class Signer(SignerCertificate):
    """A commune's signing key and certificate, ready for ``vaxqr issue``."""

    private_key: PrivateKey = field(repr=False)

    @property
    def alg(self) -> str:
        """COSE algorithm name: ``ES256`` or ``PS256``."""
        return cose_alg_for(self.private_key)


@dataclass(frozen=True)
class SignerCertificates:
    """A signer directory's ``signer.crt`` and ``chain.pem``, read once: ``vaxqr issue``
    checks them (:func:`vaxqr.signercheck.check_signer_dir`) and signs with the same."""

    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]  # the DSC first, then its CA(s)


def load_signer_certificates(signer_dir: str | os.PathLike[str]) -> SignerCertificates:
    """Read ``signer.crt`` and ``chain.pem`` (just the DSC when there is none)."""
    d = Path(signer_dir)
    cert_path, chain_path = d / "signer.crt", d / "chain.pem"
    if not cert_path.exists():
        raise StorageError(f"{d} is not a signer directory (no signer.crt)")
    cert = load_certificates(cert_path)[0]
    chain = tuple(load_certificates(chain_path)) if chain_path.exists() else (cert,)
    if fingerprint(chain[0]) != fingerprint(cert):
        chain = (cert, *chain)
    return SignerCertificates(cert, chain)


def load_signer_certificate(signer_dir: str | os.PathLike[str], *,
                            certificates: SignerCertificates | None = None
                            ) -> SignerCertificate:
    """Load ``signer.crt``, ``chain.pem`` (``certificates`` when given, as
    :func:`load_signer_certificates` read them) and ``signer.json``; the key is not opened.

    Warnings (returned, not printed): DEMO ONLY.
    """
    d = Path(signer_dir)
    if certificates is None:
        certificates = load_signer_certificates(d)
    cert, chain = certificates.certificate, certificates.chain
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
    return SignerCertificate(
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
        warnings=(f"{d} holds a {DEMO_MARK} key: credentials it signs are not real",)
        if demo else (),
        directory=d,
    )


def load_signer(signer_dir: str | os.PathLike[str], password: bytes | None, *,
                certificates: SignerCertificates | None = None) -> Signer:
    """Load ``signer.key`` (decrypting it), ``signer.crt``, ``chain.pem`` and ``signer.json``
    (the two certificate files as ``certificates`` when given: read once, for the check
    before the password and the signing after it).

    Warnings (returned, not printed): key readable by others, key not encrypted, DEMO ONLY.
    """
    d = Path(signer_dir)
    key_path, cert_path = d / "signer.key", d / "signer.crt"
    if certificates is None and not cert_path.exists():
        raise StorageError(f"{d} is not a signer directory (no signer.crt)")
    warnings = [w for w in [check_private_file(key_path)] if w] if key_path.exists() else []
    key = load_private_key(key_path, password)
    warnings += [w for w in [protection_warning(key_path)] if w]  # unencrypted, or weakly
    public = load_signer_certificate(d, certificates=certificates)
    if key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) != _public_key(public.certificate).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ):
        raise KeyCertError(f"{key_path} does not belong to {cert_path}")
    known = {f.name: getattr(public, f.name) for f in fields(SignerCertificate)}
    return Signer(**{**known, "warnings": (*warnings, *public.warnings)}, private_key=key)


@dataclass(frozen=True)
class PasswordChange:
    """What :func:`change_key_password` did: the key file, and its protection before and
    after (:func:`vaxqr.keys.key_protection`)."""

    path: Path
    before: str
    after: str
    password_changed: bool  # False: the same password, only re-encrypted


def key_file_of(target: str | os.PathLike[str]) -> Path:
    """The key file of a CA directory (``ca.key``), a signer directory (``signer.key``), or
    ``target`` itself when it is a file; StorageError for a symbolic link (replacing it
    would replace the link, not the key it names), KeyCertError for what is no key."""
    p = Path(target)
    if p.is_dir():  # a directory given through a link is fine: its key file is replaced
        for cert, key in (("ca.crt", "ca.key"), ("signer.crt", "signer.key")):
            if (p / cert).exists():
                if not (p / key).exists() and not (p / key).is_symlink():
                    raise StorageError(f"{p} has {cert} but no {key}")
                p = p / key
                break
        else:
            raise StorageError(f"{p} is neither a CA directory (ca.crt) nor a signer "
                               "directory (signer.crt)")
    if p.is_symlink():
        raise StorageError(f"{p} is a symbolic link to {os.path.realpath(p)}",
                           hint="give the key file itself (its new copy would replace the "
                           "link, not the file it names)")
    if not p.exists():
        raise StorageError(f"{p} does not exist")
    data = _read_file(p)
    if b"PRIVATE KEY-----" not in data:
        what = "a certificate" if b"CERTIFICATE-----" in data else "not a PEM file"
        raise KeyCertError(f"{p} is {what}, not a private key",
                           hint="give the CA or signer directory, or its ca.key / signer.key")
    return p


def change_key_password(target: str | os.PathLike[str], password: bytes | None,
                        new_password: bytes) -> PasswordChange:
    """Re-encrypt the key of a CA directory, a signer directory or a key file with
    ``new_password`` and the current scheme (:func:`vaxqr.keys.change_password`: the old
    file stays until the new one is read back). A CA directory is held as every ``certs``
    command holds it. The same password again only upgrades the encryption."""
    path = key_file_of(target)
    before = key_protection(path)[0]
    with _locked(path.parent) if path.name == "ca.key" else contextlib.nullcontext():
        change_password(path, password, new_password)
    return PasswordChange(path, before, key_protection(path)[0],
                          password_changed=password != new_password)
