"""Private keys: generation, encrypted PKCS#8 PEM, loading with a password, key types.

A new key is P-256 (ES256) or RSA-3072 (PS256), written as PKCS#8 PEM encrypted unless the
caller explicitly asks for none; a wrong or missing password is a
:class:`~vaxqr.errors.KeyCertError` naming the file.

Encryption
    PBES2 (RFC 8018): the key from the password by PBKDF2-HMAC-SHA256 with
    :data:`PBKDF2_ITERATIONS` rounds and a 16-byte random salt, then AES-256-CBC, as OpenSSL's
    ``openssl pkcs8 -topk8 -v2 aes-256-cbc -v2prf hmacWithSHA256 -iter 600000`` writes it, so
    OpenSSL and cryptography read the file. cryptography's own ``BestAvailableEncryption``
    uses the same scheme with only 2,048 rounds and offers no way to ask for more for PKCS#8
    (its ``encryption_builder`` is for OpenSSH and PKCS#12 only); a CA key file copied off a
    laptop would then cost an attacker ~300 times less per guessed password. The structure
    is built here from cryptography's PBKDF2 and AES: a fixed template of a dozen DER fields.
    :func:`protection_warning` tells a key written with fewer rounds (every vaxqr key made
    before this, and OpenSSL's default) so that ``vaxqr certs password`` can re-encrypt it.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from cryptography.hazmat.primitives.padding import PKCS7

from .certinfo import _read_file, name_str, public_key
from .errors import KeyCertError, TrustError, ValidationError, WrongPasswordError
from .fileio import PRIVATE, atomic_write

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey
KeyType = Literal["ec", "rsa"]

MIN_PASSWORD_LEN = 8


def generate_key(key_type: KeyType = "ec") -> PrivateKey:
    """A new P-256 key (ES256), or an RSA-3072 key (PS256) with ``key_type="rsa"``."""
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=3072)
    return ec.generate_private_key(ec.SECP256R1())


# OWASP Password Storage Cheat Sheet (2023): 600,000 rounds for PBKDF2-HMAC-SHA256
# (~65 ms to open a key here, once per command).
PBKDF2_ITERATIONS = 600_000

# DER of the object identifiers of RFC 8018 and NIST (tag, length, value)
_OID_PBES2 = bytes.fromhex("06092a864886f70d01050d")  # 1.2.840.113549.1.5.13
_OID_PBKDF2 = bytes.fromhex("06092a864886f70d01050c")  # 1.2.840.113549.1.5.12
_OID_SCRYPT = bytes.fromhex("06092b06010401da47040b")  # 1.3.6.1.4.1.11591.4.11
_HMAC_SHA256 = bytes.fromhex("300c06082a864886f70d02090500")  # AlgorithmIdentifier, NULL
_OID_AES256_CBC = bytes.fromhex("060960864801650304012a")  # 2.16.840.1.101.3.4.1.42
_SEQUENCE, _INTEGER, _OCTET_STRING = 0x30, 0x02, 0x04


def _der(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        return bytes((tag, n)) + body
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(size))) + size + body


def _encrypt_pkcs8(der: bytes, password: bytes, iterations: int) -> bytes:
    """An unencrypted PKCS#8 ``der`` as an EncryptedPrivateKeyInfo (RFC 5958) with PBES2."""
    salt, iv = os.urandom(16), os.urandom(16)
    aes_key = PBKDF2HMAC(hashes.SHA256(), 32, salt, iterations).derive(password)
    padder = PKCS7(128).padder()
    padded = padder.update(der) + padder.finalize()
    encryptor = Cipher(algorithms.AES(aes_key), modes.CBC(iv)).encryptor()
    sealed = encryptor.update(padded) + encryptor.finalize()
    rounds = iterations.to_bytes(iterations.bit_length() // 8 + 1, "big")  # positive INTEGER
    kdf = _der(_SEQUENCE, _OID_PBKDF2 + _der(_SEQUENCE, _der(_OCTET_STRING, salt)
                                              + _der(_INTEGER, rounds) + _HMAC_SHA256))
    cipher = _der(_SEQUENCE, _OID_AES256_CBC + _der(_OCTET_STRING, iv))
    algorithm = _der(_SEQUENCE, _OID_PBES2 + _der(_SEQUENCE, kdf + cipher))
    return _der(_SEQUENCE, algorithm + _der(_OCTET_STRING, sealed))


def key_to_pem(key: PrivateKey, password: bytes | None, *,
               iterations: int = PBKDF2_ITERATIONS) -> bytes:
    """PKCS#8 PEM, encrypted (module docstring) unless ``password`` is None."""
    if password is not None and not password:
        raise ValidationError("the password is empty")
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    if password is None:
        return _pem_block("PRIVATE KEY", der)
    return _pem_block("ENCRYPTED PRIVATE KEY", _encrypt_pkcs8(der, password, iterations))


def _pem_block(label: str, der: bytes) -> bytes:
    text = base64.b64encode(der)
    lines = [text[i:i + 64] for i in range(0, len(text), 64)]
    return b"\n".join([f"-----BEGIN {label}-----".encode(), *lines,
                       f"-----END {label}-----".encode(), b""])


def _der_fields(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    """The (tag, start, end) of each DER field between ``start`` and ``end``; ValueError if
    they do not fill it exactly."""
    fields = []
    while start < end:
        if start + 2 > end:
            raise ValueError("truncated")
        tag, n = data[start], data[start + 1]
        start += 2
        if n & 0x80:
            size = n & 0x7F
            if not 0 < size <= 4 or start + size > end:
                raise ValueError("bad length")
            n = int.from_bytes(data[start:start + size], "big")
            start += size
        if start + n > end:
            raise ValueError("truncated")
        fields.append((tag, start, start + n))
        start += n
    return fields


def _kdf_of(der: bytes) -> tuple[str, int | None]:
    """The password scheme of an EncryptedPrivateKeyInfo: ("PBKDF2", rounds), ("scrypt",
    None), or (a description, None) for any other; ValueError if it is not one."""
    ((_, a, b),) = _der_fields(der, 0, len(der))
    (_, a, b), _data = _der_fields(der, a, b)
    (_, oa, ob), (_, pa, pb) = _der_fields(der, a, b)
    if der[oa - 2:ob] != _OID_PBES2:
        return "a PKCS#5 v1.5 or PKCS#12 scheme", None
    (_, ka, kb), _cipher = _der_fields(der, pa, pb)
    (_, oa, ob), (_, qa, qb), *_ = _der_fields(der, ka, kb)
    oid = der[oa - 2:ob]
    if oid == _OID_SCRYPT:
        return "scrypt", None
    if oid != _OID_PBKDF2:
        return "an unknown key derivation", None
    _salt, (tag, ia, ib), *_ = _der_fields(der, qa, qb)
    if tag != _INTEGER:
        raise ValueError("no iteration count")
    return "PBKDF2", int.from_bytes(der[ia:ib], "big")


def key_protection(path: str | os.PathLike[str]) -> tuple[str, bool]:
    """How the key file at ``path`` is protected, for display, and whether that is strong:
    PBKDF2 with at least :data:`PBKDF2_ITERATIONS` rounds, or scrypt. Weak: fewer rounds,
    PKCS#5 v1.5 or PKCS#12 schemes, OpenSSL's legacy ``Proc-Type`` PEM (MD5, one round),
    no encryption."""
    data = _read_file(Path(path))
    if b"Proc-Type: 4,ENCRYPTED" in data:
        return "OpenSSL's legacy PEM encryption (MD5, one round)", False
    if not key_is_encrypted(path):
        return "not encrypted", False
    try:
        kind, rounds = _kdf_of(_pem_body(data, "ENCRYPTED PRIVATE KEY"))
    except ValueError:
        return "an unreadable encryption", False
    if kind == "PBKDF2" and rounds is not None:
        return f"PBKDF2, {rounds:,} rounds", rounds >= PBKDF2_ITERATIONS
    return kind, kind == "scrypt"


def protection_warning(path: str | os.PathLike[str]) -> str | None:
    """A warning, with the command that fixes it, when the key file at ``path`` is not
    encrypted or encrypted weakly (:func:`key_protection`); None when it is strong."""
    how, strong = key_protection(path)
    if strong:
        return None
    fix = f"vaxqr certs password {path}"
    if how == "not encrypted":
        return (f"{path} is not encrypted: whoever copies it can sign with it; encrypt it "
                f"with: {fix}")
    return (f"{path} is protected by {how} (vaxqr now uses PBKDF2, {PBKDF2_ITERATIONS:,} "
            f"rounds): a stolen copy is cheap to guess; re-encrypt it with: {fix}")


def _pem_body(data: bytes, label: str) -> bytes:
    """The DER inside the first PEM block ``label``; ValueError if there is none."""
    begin, end = f"-----BEGIN {label}-----".encode(), f"-----END {label}-----".encode()
    a = data.find(begin)
    b = data.find(end, a + len(begin)) if a >= 0 else -1
    if a < 0 or b < 0:
        raise ValueError("no PEM block")
    try:
        return base64.b64decode(b"".join(data[a + len(begin):b].split()), validate=True)
    except binascii.Error as exc:
        raise ValueError("bad base64") from exc


def change_password(path: str | os.PathLike[str], password: bytes | None,
                    new_password: bytes) -> PrivateKey:
    """Re-encrypt the key file at ``path`` with ``new_password`` (which may be the same
    password: the key is then only re-encrypted with the current scheme). The new file is
    read back with the new password and must hold the same key before it atomically
    replaces the old one (mode 0600); a failure leaves the old file as it was."""
    _check_new_password(new_password)
    p = Path(path)
    key = load_private_key(p, password)
    pem = key_to_pem(key, new_password)
    again = serialization.load_pem_private_key(pem, new_password)
    der = serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, \
        serialization.NoEncryption()
    if not isinstance(again, type(key)) or again.private_bytes(*der) != key.private_bytes(*der):
        raise KeyCertError(f"re-encrypting {p} did not give the same key back; nothing changed")
    atomic_write(p, pem, mode=PRIVATE, overwrite=True)
    return key


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
        raise WrongPasswordError(
            f"wrong password for {p} (or the file is not a private key, or is damaged)",
            hint=wrong_password_hint(p),
        ) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise KeyCertError(f"{p} holds a {type(key).__name__}; vaxqr uses EC P-256 or RSA keys")
    return key


def wrong_password_hint(path: Path) -> str:
    """What to do when the key at ``path`` does not open: a wrong password and a damaged
    file look the same (the key is decrypted with the password first), and a forgotten
    password cannot be recovered (vaxqr stores it nowhere), so say what replaces the key."""
    check = ("check the password given (--password-file, VAXQR_PASSWORD or the one typed: "
             "keyboard layout, Caps Lock, Vietnamese input method off); if it is right, the "
             "file is damaged: restore it from a backup (vaxqr backup)")
    if path.name == "ca.key":
        return (f"{check}. A forgotten CA password cannot be recovered (vaxqr stores it "
                "nowhere): take it from where it was kept apart from the key; without it "
                "the CA signs nothing again, and a new CA (vaxqr certs init) needs new "
                "commune certificates and every checkpoint to load it")
    if path.name == "signer.key":
        return (f"{check}. A forgotten password cannot be recovered (vaxqr stores it "
                f"nowhere): provincial IT issues a new certificate into {path.parent} "
                "(vaxqr certs issue CA_DIR --commune-code CODE --name NAME --out "
                f"{path.parent} --force: a new key, the office's register kept) and "
                "publishes a new trust list")
    return f"{check}. A forgotten password cannot be recovered: vaxqr stores it nowhere"


def _check_new_password(password: bytes | None) -> None:
    # counted in characters, as the message says ("mật khẩu" is 8 characters, 11 bytes)
    if password is not None and len(password.decode("utf-8", "replace")) < MIN_PASSWORD_LEN:
        raise ValidationError(
            f"a new password must have at least {MIN_PASSWORD_LEN} characters"
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
