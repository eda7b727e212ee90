"""Private keys: generation, encrypted PKCS#8 PEM, loading with a password, key types.

A new key is P-256 (ES256) or RSA-3072 (PS256), written as PKCS#8 PEM encrypted with
cryptography's ``BestAvailableEncryption`` unless the caller explicitly asks for none;
a wrong or missing password is a :class:`~vaxqr.errors.KeyCertError` naming the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from .certinfo import _read_file, name_str, public_key
from .errors import KeyCertError, TrustError, ValidationError

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey
KeyType = Literal["ec", "rsa"]

MIN_PASSWORD_LEN = 8


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


def _check_new_password(password: bytes | None) -> None:
    # counted in characters, as the message says ("mật khẩu" is 8 characters, 11 bytes)
    if password is not None and len(password.decode("utf-8", "replace")) < MIN_PASSWORD_LEN:
        raise ValidationError(
            f"the password for a new key must have at least {MIN_PASSWORD_LEN} characters"
        )


def _sign_kwargs(key: PrivateKey) -> dict[str, Any]:
    if isinstance(key, rsa.RSAPrivateKey):
        return {"rsa_padding": padding.PSS(padding.MGF1(hashes.SHA256()), 32)}
    return {}


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


def _public_key(cert: x509.Certificate) -> PublicKey:
    key = public_key(cert)
    if key is None:
        raise TrustError(f"cannot read the key of {name_str(cert.subject)}")
    if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise TrustError(f"unsupported key type {type(key).__name__} in a DSC")
    return key
