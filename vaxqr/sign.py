"""COSE_Sign1 over CWT claims: signing and verification (ES256, PS256).

This module knows bytes, keys and certificates; it knows nothing of the DCC's fields.
Rules (HCERT §3.3, RFC 8152, and the deployed-data quirks in docs/standards.md §6):

* emitted: tag 18, protected ``{1: alg, 4: kid}``, empty unprotected map;
* accepted: untagged, tag 18, or 61(18); any other tag (COSE_Sign 98 included) is refused;
* ``alg`` is read from the protected header only; ``kid`` from the protected header, else the
  unprotected one, and must be 8 bytes;
* the signature is checked over the protected bytes *as received*, never re-encoded;
* duplicate CBOR map keys are refused everywhere.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from .errors import DecodeError, KeyCertError, VerificationError

ES256 = -7
PS256 = -37
ALG_NAMES = {ES256: "ES256", PS256: "PS256"}
HDR_ALG = 1
HDR_KID = 4
KID_LEN = 8
TAG_SIGN1 = 18
TAG_CWT = 61
CLAIM_ISS, CLAIM_EXP, CLAIM_IAT, CLAIM_HCERT = 1, 4, 6, -260
MAX_CBOR_DEPTH = 64

_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
_ECDSA = ec.ECDSA(hashes.SHA256())

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def _no_value_sharing(*_args: Any) -> Any:
    # Tags 28/29 (value sharing) build cycles and DAGs whose traversal is exponential;
    # HCERT never uses them.
    raise cbor2.CBORDecodeError("value sharing (tags 28/29) is not allowed in HCERT")


_SEMANTIC = {28: _no_value_sharing, 29: _no_value_sharing}


def loads(data: bytes, *, step: str) -> Any:
    """Decode one CBOR item strictly (no duplicate keys, bounded depth, no trailing bytes,
    no shared values)."""
    fp = io.BytesIO(data)
    try:
        item = cbor2.CBORDecoder(
            fp, allow_duplicate_keys=False, max_depth=MAX_CBOR_DEPTH, semantic_decoders=_SEMANTIC
        ).decode()
    except RecursionError:
        raise DecodeError("CBOR nesting is too deep", step=step) from None
    except (cbor2.CBORDecodeError, ValueError, TypeError, OverflowError, MemoryError) as exc:
        msg = str(exc) or type(exc).__name__
        if "duplicate" in msg.lower():
            msg = "a CBOR map repeats a key (" + msg + ")"
        raise DecodeError(f"invalid CBOR: {msg}", step=step) from None
    if fp.tell() != len(data):
        raise DecodeError(
            f"invalid CBOR: {len(data) - fp.tell()} unexpected byte(s) after the data item",
            step=step,
        )
    return item


# --------------------------------------------------------------------------- signing


def algorithm_for(key: PrivateKey | PublicKey) -> int:
    """The COSE algorithm a key signs with: ES256 for P-256, PS256 for RSA ≥ 2048."""
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise KeyCertError(f"ES256 needs a P-256 key, not {key.curve.name}")
        return ES256
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise KeyCertError(f"PS256 needs an RSA key of at least 2048 bits, not {key.key_size}")
        return PS256
    raise KeyCertError(f"unsupported key type {type(key).__name__}")


def sig_structure(protected: bytes, payload: bytes) -> bytes:
    """The COSE ``Sig_structure`` for COSE_Sign1 with empty external AAD."""
    return cbor2.dumps(["Signature1", protected, b"", payload])


def encode_cwt(*, iss: str | None, iat: int, exp: int, hcert: Mapping[str, Any]) -> bytes:
    """CBOR-encode CWT claims ``{1: iss, 6: iat, 4: exp, -260: {1: hcert}}`` (integer dates)."""
    claims: dict[int, Any] = {}
    if iss is not None:
        claims[CLAIM_ISS] = iss
    claims[CLAIM_IAT] = int(iat)
    claims[CLAIM_EXP] = int(exp)
    claims[CLAIM_HCERT] = {1: dict(hcert)}
    return cbor2.dumps(claims)


def sign1(payload: bytes, key: PrivateKey, kid: bytes) -> bytes:
    """Return a tagged COSE_Sign1 (tag 18) over ``payload`` with protected ``{1: alg, 4: kid}``."""
    alg = algorithm_for(key)
    protected = cbor2.dumps({HDR_ALG: alg, HDR_KID: bytes(kid)})
    tbs = sig_structure(protected, payload)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        r, s = decode_dss_signature(key.sign(tbs, _ECDSA))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    else:
        signature = key.sign(tbs, _PSS, hashes.SHA256())
    return cbor2.dumps(cbor2.CBORTag(TAG_SIGN1, [protected, {}, payload, signature]))


# --------------------------------------------------------------------------- parsing


@dataclass(frozen=True, slots=True)
class CoseSign1:
    """A parsed COSE_Sign1 message; ``protected_bytes`` are kept exactly as received."""

    protected_bytes: bytes
    protected: Mapping[Any, Any]
    unprotected: Mapping[Any, Any]
    payload: bytes
    signature: bytes
    tags: tuple[int, ...]

    @property
    def alg(self) -> int | None:
        """``alg`` from the protected header (never from the unprotected one)."""
        value = self.protected.get(HDR_ALG)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    @property
    def kid(self) -> bytes | None:
        """``kid`` from the protected header, else from the unprotected one."""
        for header in (self.protected, self.unprotected):
            value = header.get(HDR_KID)
            if isinstance(value, bytes):
                return value
        return None

    @property
    def kid_location(self) -> str | None:
        if isinstance(self.protected.get(HDR_KID), bytes):
            return "protected"
        if isinstance(self.unprotected.get(HDR_KID), bytes):
            return "unprotected"
        return None


def parse_sign1(data: bytes) -> CoseSign1:
    """Parse a COSE_Sign1 (untagged, 18 or 61(18)); raise ``DecodeError`` (step ``cose``)."""
    item = loads(data, step="cose")
    tags: list[int] = []
    while isinstance(item, cbor2.CBORTag):
        tags.append(item.tag)
        item = item.value
    if tags not in ([], [TAG_SIGN1], [TAG_CWT, TAG_SIGN1]):
        shown = "(".join(str(t) for t in tags)
        what = " (COSE_Sign, not COSE_Sign1)" if TAG_SIGN1 not in tags and 98 in tags else ""
        raise DecodeError(
            f"unexpected CBOR tag {shown}{what}; expected COSE_Sign1 (tag 18)", step="cose"
        )
    if not isinstance(item, list | tuple) or len(item) != 4:
        raise DecodeError("not a COSE_Sign1 structure (an array of 4 items)", step="cose")
    protected_bytes, unprotected, payload, signature = item
    if not isinstance(protected_bytes, bytes):
        raise DecodeError("COSE protected header is not a byte string", step="cose")
    if not isinstance(unprotected, Mapping):
        raise DecodeError("COSE unprotected header is not a map", step="cose")
    if not isinstance(payload, bytes):
        raise DecodeError("COSE payload is missing or not a byte string", step="cose")
    if not isinstance(signature, bytes):
        raise DecodeError("COSE signature is not a byte string", step="cose")
    if protected_bytes:
        protected = loads(protected_bytes, step="cose")
        if not isinstance(protected, Mapping):
            raise DecodeError("COSE protected header is not a map", step="cose")
    else:
        protected = {}
    return CoseSign1(protected_bytes, protected, unprotected, payload, signature, tuple(tags))


@dataclass(frozen=True, slots=True)
class CwtClaims:
    """The CWT claims of an HCERT: issuer, issue and expiry times, and the health certificate."""

    iss: str | None
    iat: int | None
    exp: int | None
    hcert: Mapping[str, Any]


def _int_claim(claims: Mapping[Any, Any], key: int, name: str) -> int | None:
    value = claims.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DecodeError(f"CWT claim {name} is not a number", step="cbor")
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise DecodeError(f"CWT claim {name} is not a finite number", step="cbor")
        value = int(value)
    if not -(2**40) < value < 2**40:
        raise DecodeError(f"CWT claim {name} is out of range", step="cbor")
    return value


def parse_cwt(payload: bytes) -> CwtClaims:
    """Decode the CWT claims map and extract claim -260/1; raise ``DecodeError`` (step ``cbor``)."""
    claims = loads(payload, step="cbor")
    if not isinstance(claims, Mapping):
        raise DecodeError("the COSE payload is not a CWT claims map", step="cbor")
    hcert_map = claims.get(CLAIM_HCERT)
    if not isinstance(hcert_map, Mapping):
        raise DecodeError("the CWT has no health certificate claim (-260)", step="cbor")
    if len(hcert_map) != 1 or not isinstance(hcert_map.get(1), Mapping):
        raise DecodeError("claim -260 must hold exactly one EU DCC (key 1)", step="cbor")
    iss = claims.get(CLAIM_ISS)
    if iss is not None and not isinstance(iss, str):
        raise DecodeError("CWT claim iss is not a text string", step="cbor")
    return CwtClaims(
        iss=iss,
        iat=_int_claim(claims, CLAIM_IAT, "iat"),
        exp=_int_claim(claims, CLAIM_EXP, "exp"),
        hcert=hcert_map[1],
    )


# --------------------------------------------------------------------------- verifying


def check_headers(msg: CoseSign1) -> tuple[int, bytes]:
    """Return (alg, kid) or raise ``VerificationError`` (step ``signature``)."""
    alg = msg.alg
    if alg is None:
        where = " (it is only in the unprotected header)" if HDR_ALG in msg.unprotected else ""
        raise VerificationError(f"no signature algorithm in the protected header{where}",
                                step="signature")
    if alg not in ALG_NAMES:
        raise VerificationError(f"unsupported signature algorithm {alg}", step="signature")
    kid = msg.kid
    if kid is None:
        raise VerificationError("no key identifier (kid) in the COSE headers", step="signature")
    if len(kid) != KID_LEN:
        raise VerificationError(
            f"key identifier has {len(kid)} bytes; HCERT requires {KID_LEN}", step="signature"
        )
    return alg, kid


def verify_signature(msg: CoseSign1, key: PublicKey, alg: int) -> None:
    """Check the signature over the received protected bytes; raise on any mismatch."""
    tbs = sig_structure(msg.protected_bytes, msg.payload)
    sig = msg.signature
    try:
        if alg == ES256:
            if not isinstance(key, ec.EllipticCurvePublicKey):
                raise VerificationError(
                    "ES256 signature but the certificate holds an RSA key", step="signature"
                )
            # ES256 means SHA-256; a few deployed DSCs (ES 401-403) use a P-384 key with it.
            size = (key.curve.key_size + 7) // 8
            if len(sig) != 2 * size:
                raise VerificationError(
                    f"ES256 signature has {len(sig)} bytes; expected {2 * size} (raw r||s)",
                    step="signature",
                )
            r = int.from_bytes(sig[:size], "big")
            s = int.from_bytes(sig[size:], "big")
            key.verify(encode_dss_signature(r, s), tbs, _ECDSA)
        elif alg == PS256:
            if not isinstance(key, rsa.RSAPublicKey):
                raise VerificationError(
                    "PS256 signature but the certificate holds an EC key", step="signature"
                )
            if key.key_size < 2048:
                raise VerificationError("PS256 key shorter than 2048 bits", step="signature")
            key.verify(sig, tbs, _PSS, hashes.SHA256())
        else:  # pragma: no cover - check_headers filters this
            raise VerificationError(f"unsupported algorithm {alg}", step="signature")
    except InvalidSignature:
        raise VerificationError(
            "signature does not match the signer's certificate", step="signature"
        ) from None
    except ValueError as exc:
        raise VerificationError(f"signature is malformed ({exc})", step="signature") from None
