"""The signed trust list: its format, canonical form, parsing and signature check.

A province CA publishes it (:func:`vaxqr.certs.build_trustlist`); a verifier parses it,
checks its signature against a CA it already trusts and loads its DSCs
(:class:`vaxqr.trust.TrustStore`).

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
highest sequence seen per CA (see :class:`vaxqr.trust.TrustStore`).

Credential revocation entries follow the DCC revocation ``UCI`` hash type
(docs/standards.md §1.14): the first 16 bytes of SHA-256 over the UVCI in UTF-8, after
trimming surrounding white space and upper-casing (UVCIs are emitted in upper case, and
the DCC accepts them case-insensitively), including the ``#`` check character.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from .certinfo import (
    _aware,
    _parse_iso,
    _unb64,
    checked,
    fingerprint,
    iso,
    kid_of,
    name_str,
    public_key,
)
from .chain import NoIssuer, validate_ca_chain
from .errors import TrustError
from .keys import PrivateKey

TRUSTLIST_FORMAT = "vaxqr-trustlist"
_CLOCK_SKEW = dt.timedelta(minutes=5)


def normalize_uvci(uvci: str) -> str:
    """Trim and upper-case a UVCI (``urn:uvci:…`` is accepted, the canonical form is upper)."""
    return unicodedata.normalize("NFC", uvci).strip().upper()


def credential_revocation_hash(uvci: str) -> bytes:
    """DCC ``UCI`` revocation hash: SHA-256(UTF-8 of the normalised UVCI)[:16]."""
    return hashlib.sha256(normalize_uvci(uvci).encode("utf-8")).digest()[:16]


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
        cas = tuple(checked(x509.load_der_x509_certificate(_unb64(c, "CA certificate")))
                    for c in doc["cas"])
        dscs = tuple(
            TrustListDsc(
                kid=_unb64(e["kid"], "kid"),
                certificate=checked(x509.load_der_x509_certificate(_unb64(e["certificate"],
                                                                           "DSC"))),
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
    except (KeyError, TypeError, ValueError, AttributeError, x509.InvalidVersion) as exc:
        raise TrustError(f"{source} is not a valid trust list: {exc!r}") from exc


class SignerNotValid(TrustError):
    """The CA that signed a trust list is expired, or not yet valid, at the validation time:
    the list is set aside (a retired CA's last list beside its successor's is normal)."""


class ForeignList(TrustError):
    """A trust list signed by a CA that none of the CAs given issued (another province's,
    another country's): not damaged, only not for these CAs."""


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
    fp = tl.signer_fingerprint
    ca = next((a for a in anchors if fingerprint(a) == fp), None)
    carried = ca is None
    if ca is None:
        ca = next((c for c in tl.cas if fingerprint(c) == fp), None)
    untrusted = "give the province CA certificate (ca.crt) with --trust as well"
    if ca is None:
        raise TrustError(f"{source} is signed by a CA that is not trusted here", hint=untrusted)
    # The CA must be valid now, not only when it says it signed: a retired CA's key could
    # otherwise sign lists with any sequence number and lock out the real ones.
    at = _aware(at)
    # (five minutes' grace for a checkpoint clock a little behind a CA made just now)
    if not ca.not_valid_before_utc - _CLOCK_SKEW <= at <= ca.not_valid_after_utc:
        when = (f"expired on {iso(ca.not_valid_after_utc)}" if at > ca.not_valid_after_utc
                else f"is not valid before {iso(ca.not_valid_before_utc)}")
        raise SignerNotValid(f"{source} is signed by the CA {name_str(ca.subject)}, which "
                             f"{when}", hint="get the current trust list from the province")
    if carried and not anchors:  # the list names its CA, but no CA was given to trust it
        raise TrustError(f"{source} is signed by the CA {name_str(ca.subject)}, which is not "
                         "trusted here: no CA certificate was given", hint=untrusted)
    if carried:
        try:
            validate_ca_chain(ca, anchors=anchors, intermediates=tl.cas, at=at)
        except NoIssuer as exc:
            given = "; ".join(sorted({name_str(a.subject) for a in anchors}))
            by = "a root CA of its own" if ca.issuer == ca.subject else \
                f"issued by {name_str(ca.issuer)}"
            if exc.same_name:
                by += (", not the CA of that name given here (another key: an earlier or "
                       "later CA of the same name)")
            raise ForeignList(
                f"{source} is not signed by any CA given to trust it ({given}): it is signed "
                f"by the CA {name_str(ca.subject)}, {by}",
                hint="it is another province's (or country's) list, which says nothing of "
                     "credentials under these CAs: leave it out; if it is the list you need, "
                     f"give the certificate of the CA that signed it ({name_str(ca.subject)}, "
                     "its ca.crt) or of the national root above it with --trust as well") from exc
        except TrustError as exc:
            raise TrustError(f"{source} is signed by a CA that is not trusted here ({exc})",
                             hint=untrusted) from exc
    key = public_key(ca)
    if key is None:
        raise TrustError(f"{source} is signed by the CA {name_str(ca.subject)}, whose key "
                         "cannot be read")
    if _verify_bytes(key, tl.signature_alg, signature, signed):
        return TrustList(**{**tl.__dict__, "verified_by": ca})
    raise TrustError(f"{source}: the signature does not match (the list was altered)")
