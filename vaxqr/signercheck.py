"""The commune office's checks of its own certificate, before ``vaxqr issue`` signs anything.

A credential signed with a certificate that checkpoints refuse, or that ends soon, is worse
than none: it is printed, handed out, and fails later at the roadside; and the office's
register then holds the citizen, so a later batch does not sign them again for the same
dose. :func:`check_signer` therefore refuses, before a key is opened:

* a commune certificate (DSC) that has expired or is not valid yet;
* one whose chain (``chain.pem``: the DSC, its province CA, the national root if any) no
  longer validates at the signing time, with ``cryptography.x509.verification`` as the
  verifier does (:func:`vaxqr.chain.validate_chain`, EKU for vaccination);
* one revoked by its province CA, or whose province CA its national root revoked, as far as
  the revocation information on this machine tells: CRLs (the province's ``crl.pem``, the
  root's) and the province's trust list, from ``SIGNER_DIR/trust/`` (:data:`TRUST_DIR`) and
  any given explicitly, read as a checkpoint reads its ``--trust`` files
  (:func:`vaxqr.trustfiles.read_trust_material`: a file there that is no trust material is
  passed over, a damaged CRL or trust list refuses). vaxqr works offline: it fetches
  nothing, so what no such file says cannot be known here (a checkpoint with a newer list
  or CRL may still refuse);
* one that ends in less than :data:`MIN_DAYS` days (:func:`days_left`), unless
  ``allow_short``: its credentials would expire with it (SPEC §2: never past the DSC's
  notAfter), within weeks instead of 12 months.

It warns, once, when the credentials will expire sooner than 12 months, and about
revocation files it cannot use (not from this signer's CAs, out of date, a trust list that
does not list this DSC), and when it read none (:func:`no_revocation_data`).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm

from .certinfo import (
    _aware,
    _name_attr,
    _unb64,
    _utcnow,
    fingerprint,
    kid_of,
    name_str,
    public_key,
)
from .chain import validate_chain
from .credential import VALIDITY_DAYS
from .errors import KeyCertError, TrustError
from .trustfiles import TrustMaterial, open_to_others, read_trust_material
from .trustlist import ForeignList, TrustList, verify_trustlist

if TYPE_CHECKING:
    from .certs import SignerCertificates

#: Below this many days left on the DSC, signing is refused unless asked for explicitly.
MIN_DAYS = 30
#: The folder of a signer directory read for revocation information (CRLs, trust lists).
TRUST_DIR = "trust"
_NEW_CERT = "ask provincial IT for a new commune certificate (vaxqr certs issue) and sign " \
    "with its directory"


@dataclass(frozen=True, kw_only=True)
class SignerCheck:
    """What :func:`check_signer` found: the validated chain (DSC first), when credentials
    signed at ``at`` expire, the revocation files consulted, and warnings for the user."""

    chain: tuple[x509.Certificate, ...]
    at: dt.datetime
    credentials_expire: dt.datetime
    revocation_sources: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def short(self) -> bool:
        """Credentials signed now end before :data:`VALIDITY_DAYS` days (the DSC ends)."""
        return self.credentials_expire < self.at + dt.timedelta(days=VALIDITY_DAYS)


def revocation_sources(signer_dir: str | os.PathLike[str],
                       extra: Iterable[str | os.PathLike[str]] = ()) -> list[Path]:
    """Where the revocation information for ``signer_dir`` is: its :data:`TRUST_DIR` folder
    when it has one, then ``extra`` (files or folders, as ``vaxqr verify --trust`` takes)."""
    own = Path(signer_dir) / TRUST_DIR
    return [*([own] if own.is_dir() else []), *map(Path, extra)]


def check_signer_dir(signer_dir: str | os.PathLike[str], *, at: dt.datetime | None = None,
                     trust: Iterable[str | os.PathLike[str]] = (),
                     allow_short: bool = False, signing: bool = True,
                     certificates: SignerCertificates | None = None) -> SignerCheck:
    """:func:`check_signer` for a signer directory: its ``signer.crt`` and ``chain.pem``
    (``certificates``, as :func:`vaxqr.certs.load_signer_certificates` read them, or read
    here), and the revocation information of :func:`revocation_sources`. No key is opened."""
    if certificates is None:
        from .certs import load_signer_certificates

        certificates = load_signer_certificates(signer_dir)
    return check_signer(certificates.certificate, certificates.chain, at=at,
                        trust=revocation_sources(signer_dir, trust), allow_short=allow_short,
                        where=str(signer_dir), signing=signing)


def check_signer(certificate: x509.Certificate, chain: Sequence[x509.Certificate], *,
                 at: dt.datetime | None = None, trust: Sequence[Path] = (),
                 allow_short: bool = False, where: str = "", signing: bool = True
                 ) -> SignerCheck:
    """Refuse a DSC that cannot sign credentials checkpoints accept for 12 months; see the
    module documentation. ``trust``: files and folders of CRLs and trust lists. Raises
    :class:`KeyCertError` (validity) or :class:`TrustError` (chain, revocation, a damaged
    CRL or trust list), each with a hint; returns the warnings otherwise. ``signing=False``
    (a credential written again, nothing signed) leaves out what only signing needs: the
    time left (:data:`MIN_DAYS`, and the warning about credentials signed now)."""
    at = _aware(at) if at else _utcnow()
    what = f"the commune certificate in {where}" if where else "the commune certificate"
    start, end = certificate.not_valid_before_utc, certificate.not_valid_after_utc
    if at < start:
        raise KeyCertError(
            f"{what} is not valid until {start:%Y-%m-%d %H:%M} UTC: nothing can be signed "
            "with it before then",
            hint="check this computer's date and time; if they are right, ask provincial "
                 "IT for a commune certificate valid now")
    if at >= end:
        raise KeyCertError(f"{what} expired on {end:%Y-%m-%d}: nothing can be signed with it",
                           hint=_NEW_CERT)
    validated = _validate(certificate, chain, at, what)
    material = read_trust_material(trust)
    sources, warnings, own = _check_revocation(certificate, validated, material, at, what)
    if not material.crls and not material.trustlists:
        warnings.append(no_revocation_data(where))
    elif not own:  # the root's CRL, another province's list: they say nothing of this DSC
        warnings.append(no_revocation_data(where, of=validated[1] if len(validated) > 1
                                           else None))
    warnings += open_to_others(
        trust, material.files, "what this office checks before signing",
        "a CRL or trust list taken away there lets this office sign with a revoked certificate")
    expire = min(at + dt.timedelta(days=VALIDITY_DAYS), end)
    days = days_left(end, at)
    if signing and days < VALIDITY_DAYS:
        span = _span(end, at)
        if days < MIN_DAYS and not allow_short:
            raise KeyCertError(
                f"{what} ends on {end:%Y-%m-%d}, in {span}: credentials signed with it would "
                f"expire then, not in 12 months (signing is refused with less than "
                f"{MIN_DAYS} days left)",
                hint="ask provincial IT for a new commune certificate; to sign anyway, "
                     "credentials valid only until then, add --short-validity")
        warnings.append(
            f"the commune certificate ends on {end:%Y-%m-%d}: credentials signed now expire "
            f"on {end:%Y-%m-%d} (in {span}), not in 12 months; ask provincial IT for a new "
            "certificate (a citizen signed now gets a new credential from a later batch only "
            "for a later dose)")
    return SignerCheck(chain=validated, at=at, credentials_expire=expire,
                       revocation_sources=tuple(sources), warnings=tuple(warnings))


def no_revocation_data(where: str = "", *, of: x509.Certificate | None = None) -> str:
    """The warning for a check that read no CRL and no trust list: ``SIGNER/trust/``
    missing or empty (a signer directory copied without it, one made by hand) and no
    ``--trust``; with ``of`` (the CA that issued the commune certificate), one that read
    none of that CA's (only the national root's CRL, another province's list). Said once
    per check (a batch: once, not per row)."""
    trust = os.path.join(where or "SIGNER", TRUST_DIR, "")
    whose = "" if of is None else \
        f" of {_name_attr(of.subject, x509.NameOID.COMMON_NAME) or name_str(of.subject)}"
    return (f"no CRL or trust list{whose} in {trust} (nor --trust): whether the province has "
            "revoked this commune's certificate cannot be known on this machine "
            "(checkpoints that know it refuse its credentials); put the files the province "
            f"hands to checkpoints (its trustlist.json and crl.pem) in {trust}")


def days_left(end: dt.datetime, at: dt.datetime) -> int:
    """The days from ``at`` to ``end`` as a person counts them from the dates shown (UTC,
    as "ends on DATE" prints it): a certificate valid until a date 20 days from today has
    20 days left, whatever the hour (a whole-day count of ``end - at`` said 19 for one made
    minutes before); 0 when less than a day is left."""
    if end - at < dt.timedelta(days=1):
        return 0
    return (end.astimezone(dt.UTC).date() - at.astimezone(dt.UTC).date()).days


def _span(end: dt.datetime, at: dt.datetime) -> str:
    days = days_left(end, at)
    return f"{days} day{'' if days == 1 else 's'}" if days else "less than a day"


def _validate(cert: x509.Certificate, chain: Sequence[x509.Certificate], at: dt.datetime,
              what: str) -> tuple[x509.Certificate, ...]:
    """The DSC validated up to the top certificate of its ``chain.pem`` at ``at``."""
    cas = [c for c in chain if fingerprint(c) != fingerprint(cert)]
    if not cas:
        raise TrustError(f"{what} has no CA certificate above it (chain.pem): its chain "
                         "cannot be checked",
                         hint="use the whole directory `vaxqr certs issue` made (its "
                              "chain.pem), or ask provincial IT")
    try:
        return validate_chain(cert, anchors=[cas[-1]], intermediates=cas[:-1], at=at,
                              cert_type="v")
    except TrustError as exc:
        raise TrustError(f"{what} no longer validates against its CA (chain.pem): {exc}",
                         hint=_NEW_CERT) from exc


def _check_revocation(cert: x509.Certificate, chain: tuple[x509.Certificate, ...],
                      material: TrustMaterial, at: dt.datetime, what: str
                      ) -> tuple[list[str], list[str], bool]:
    """Refuse a DSC, or a CA above it, that a CRL or trust list in ``material`` revokes
    (its certificates say nothing of revocation). Returns (the files used, warnings, whether
    one of them is of the CA that issued the DSC: only that CA's can revoke it)."""
    own = False
    sources: list[str] = []
    warnings = [f"{k.path} holds a private key, which is no trust material (passed over): "
                "keep the commune's key only as signer.key" for k in material.private_keys]
    cas = chain[1:]
    crls, warnings_ = checked_crls(material.crls, cas)
    warnings += warnings_
    for crl, path in crls:
        sources.append(path)
        own = own or crl.issuer == cert.issuer
        if crl.next_update_utc is not None and crl.next_update_utc < at:
            warnings.append(f"{path}: CRL out of date since {crl.next_update_utc:%Y-%m-%d}: "
                            "get the current one from provincial IT")
    revoked = crl_revokes(crls, chain[:-1])
    if revoked is not None:
        _revoked(revoked[0], cert, revoked[1], what)
    for tl, path in material.trustlists:
        try:
            tl = verify_trustlist(tl, cas, at=at, source=path)
        except ForeignList as exc:  # (its hint speaks to a checkpoint's --trust)
            warnings.append(f"{exc}: ignored, it says nothing of this commune certificate; "
                            "take it away, and put the province's own trustlist.json there")
            continue
        except TrustError as exc:
            warnings.append(f"{exc}: ignored")
            continue
        sources.append(path)
        own = own or (tl.verified_by is not None and len(chain) > 1
                      and fingerprint(tl.verified_by) == fingerprint(chain[1]))
        warnings += _trustlist_says(tl, cert, chain, path, at, what)
    return sources, warnings, own


def checked_crls(crls: Iterable[tuple[x509.CertificateRevocationList, str]],
                 cas: Sequence[x509.Certificate]
                 ) -> tuple[list[tuple[x509.CertificateRevocationList, str]], list[str]]:
    """The CRLs of ``crls`` (each with its file) signed by one of ``cas`` (the CAs above a
    commune certificate), and a warning for each that is clearly another CA's: its issuer
    is none of theirs by name, or it names (AuthorityKeyIdentifier) another key than any
    of theirs of that name (a retired CA's, or another province's under the same name).

    Raises :class:`TrustError` for a CRL of one of ``cas`` whose signature cannot be
    checked with it (altered, or an algorithm that cannot be read): the office put it
    there for its revocations, and dropping them in silence would let a revoked
    certificate sign (fail closed)."""
    usable, warnings = [], []
    for crl, path in crls:
        named = [c for c in cas if c.subject == crl.issuer]
        whys = [why for c in named if (why := _unsigned(crl, c))]
        if named and len(whys) < len(named):
            usable.append((crl, path))
            continue
        if named and not _another_key(crl, named):
            raise TrustError(
                f"{path} is a CRL of {name_str(crl.issuer)}, the CA above this commune "
                f"certificate, whose signature cannot be checked with that CA's "
                f"certificate ({'; '.join(whys)}): its revocations can be neither trusted "
                "nor left out",
                hint="put the CA's current crl.pem in its place (provincial IT makes it with "
                     "vaxqr certs crl), or take that file away if it is not the province's; "
                     "then run this again")
        warnings.append(f"{path}: CRL ignored, not signed by a CA above this commune "
                        f"certificate: it is {name_str(crl.issuer)}'s" + (
                            ", made with another key than that CA's (an earlier CA's of "
                            "that name)" if named else ""))
    return usable, warnings


def _unsigned(crl: x509.CertificateRevocationList, ca: x509.Certificate) -> str:
    """Why ``crl``'s signature is not ``ca``'s ("" when it is)."""
    key = public_key(ca)
    if key is None:
        return "the CA's key cannot be read"
    try:
        if crl.is_signature_valid(key):  # type: ignore[arg-type]
            return ""
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        return f"its signature algorithm cannot be checked: {exc}"
    return "the signature does not match: altered, or signed by another key"


def _another_key(crl: x509.CertificateRevocationList,
                 named: Sequence[x509.Certificate]) -> bool:
    """``crl`` says (AuthorityKeyIdentifier) it was signed by another key than any of
    ``named``'s (their SubjectKeyIdentifier)."""
    try:
        aki = crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    except (x509.ExtensionNotFound, ValueError):
        return False
    if aki.key_identifier is None:
        return False
    for ca in named:
        try:
            ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        except (x509.ExtensionNotFound, ValueError):
            return False  # (cannot tell)
        if ski.digest == aki.key_identifier:
            return False
    return True


def crl_revokes(crls: Iterable[tuple[x509.CertificateRevocationList, str]],
                certificates: Iterable[x509.Certificate]
                ) -> tuple[x509.Certificate, str] | None:
    """The first of ``certificates`` that one of ``crls`` (checked ones:
    :func:`checked_crls`) revokes, and where ("FILE, DATE"); None when none does. A CRL
    revokes a serial number of its issuer's only."""
    crls = list(crls)
    for c in certificates:
        for crl, path in crls:
            entry = crl.get_revoked_certificate_by_serial_number(c.serial_number)
            if entry is not None and c.issuer == crl.issuer:
                return c, f"{path}, {entry.revocation_date_utc:%Y-%m-%d}"
    return None


def _trustlist_says(tl: TrustList, cert: x509.Certificate, chain: tuple[x509.Certificate, ...],
                    path: str, at: dt.datetime, what: str) -> list[str]:
    if tl.verified_by is None or len(chain) < 2 or fingerprint(tl.verified_by) != \
            fingerprint(chain[1]):
        return []  # another province's list, or the root's: it says nothing of this DSC
    fp, kid = fingerprint(cert), kid_of(cert)
    for e in tl.revoked_dscs:
        kids = set()
        try:
            kids.add(_unb64(e.get("kid"), "kid"))
        except TrustError:
            pass
        if e.get("fingerprint", "").lower() == fp or kid in kids:
            _revoked(cert, cert, f"{path}, sequence {tl.sequence}, "
                                 f"{e.get('revoked_at', '')[:10]}", what)
    warnings = []
    if tl.expired(at):
        warnings.append(f"{path}: the trust list is out of date since "
                        f"{tl.next_update:%Y-%m-%d}: get the current one from provincial IT")
    if all(fingerprint(e.certificate) != fp for e in tl.dscs):
        warnings.append(f"{path}: the province's trust list (sequence {tl.sequence}, issued "
                        f"{tl.issued:%Y-%m-%d}) does not list this commune certificate: "
                        "checkpoints using that list refuse its credentials; get the current "
                        "list, or ask provincial IT why it is not on it")
    return warnings


def _revoked(which: x509.Certificate, cert: x509.Certificate, source: str, what: str) -> None:
    if which is cert or fingerprint(which) == fingerprint(cert):
        raise TrustError(f"{what} has been revoked ({source}): checkpoints refuse every "
                         "credential it signs", hint=_NEW_CERT)
    raise TrustError(f"the CA {name_str(which.subject)} above {what} has been revoked by "
                     f"{name_str(which.issuer)} ({source}): checkpoints given that CRL refuse "
                     "every credential signed under it",
                     hint="ask provincial IT: the province needs a new CA, and the commune "
                          "a new certificate from it")
