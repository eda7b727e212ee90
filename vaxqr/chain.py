"""Certificate chain validation with ``cryptography.x509.verification``.

No hand-written path building: cryptography's path builder with the webpki CA profile,
a DSC profile (:func:`validate_chain`) and a subordinate-CA profile
(:func:`validate_ca_chain`), at a validation time the caller gives.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from cryptography import x509
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    Policy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from .certinfo import _aware, eku_allows, name_str
from .errors import TrustError

#: A chain is at most DSC -> province CA -> national root (3 certificates).
MAX_CHAIN_CERTS = 3
# cryptography's path builder found no issuer to go on with (its message, not a word to show)
_NO_ISSUER = "all candidates exhausted with no interior errors"
_OTHER_KEY = "candidates exhausted: signature does not match"


class NoIssuer(TrustError):
    """No path from the certificate to a CA given: none of them (nor a CA under one of
    them) issued it. Its message says who did, not the path builder's words;
    ``same_name``: a CA given has the issuer's name (another key signed it)."""

    def __init__(self, message: str, *, hint: str | None = None,
                 same_name: bool = False) -> None:
        super().__init__(message, hint=hint)
        self.same_name = same_name


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
    """Validate a subordinate CA certificate (as the leaf) up to one of ``anchors`` at
    ``at`` (the CA itself must be valid then)."""
    if not anchors:
        raise TrustError("no trusted CA certificate to validate against")
    leaf_policy = ExtensionPolicy.permit_all().require_present(
        x509.BasicConstraints, Criticality.AGNOSTIC, _require_ca
    )
    return _verify(ca, anchors, [c for c in intermediates if c != ca], at, leaf_policy)


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
        # (cryptography's words for "no path to an anchor": no issuer of that name, or
        # one whose key did not sign it)
        same = any(c.subject == leaf.issuer for c in [*anchors, *intermediates])
        if _NO_ISSUER in str(exc) or (same and str(exc).endswith(_OTHER_KEY)):
            raise NoIssuer(
                f"certificate {name_str(leaf.subject)} was not issued by any CA given here "
                f"(nor under one): it was issued by {name_str(leaf.issuer)}"
                + (", and the CA of that name given here did not sign it (another key: "
                   "an earlier or later CA of the same name)" if same else ""),
                same_name=same) from exc
        raise TrustError(
            f"certificate {name_str(leaf.subject)} does not chain to a trusted CA: {exc}"
        ) from exc
    except ValueError as exc:  # unparsable extensions and the like
        raise TrustError(f"certificate {name_str(leaf.subject)} is unusable: {exc}") from exc
