"""Private keys at rest: PBES2 with PBKDF2-HMAC-SHA256 at 600,000 rounds and AES-256-CBC,
read by OpenSSL and cryptography; keys protected more weakly are told apart and warned
about, and ``certs.change_key_password`` re-encrypts them without ever losing the key."""

from __future__ import annotations

import base64
import datetime as dt
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from vaxqr import certs, keys, revocation
from vaxqr.errors import KeyCertError, StorageError, ValidationError

from hierarchy import EXAMPLES, HAVE_OPENSSL, PW, make_hierarchy, openssl

NEW_PW = b"m\xe1\xba\xadt kh\xe1\xba\xa9u m\xe1\xbb\x9bi"  # "mật khẩu mới"
RAW = serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()


def _same_key(a: keys.PrivateKey, b: object) -> bool:
    return isinstance(b, type(a)) and b.private_bytes(*RAW) == a.private_bytes(*RAW)  # type: ignore[attr-defined]


def _old_style(key: keys.PrivateKey, password: bytes) -> bytes:
    """What vaxqr wrote before: cryptography's BestAvailableEncryption (2,048 rounds)."""
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.BestAvailableEncryption(password))


@pytest.mark.parametrize("kind", ["ec", "rsa"])
def test_new_keys_are_pbes2_pbkdf2_sha256_600000_aes256(kind, tmp_path):
    key = keys.generate_key(kind)
    pem = keys.key_to_pem(key, PW)
    assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n")
    assert all(len(line) <= 64 for line in pem.splitlines())
    assert _same_key(key, serialization.load_pem_private_key(pem, PW))
    with pytest.raises(ValueError):
        serialization.load_pem_private_key(pem, b"not the password")
    (tmp_path / "k.pem").write_bytes(pem)
    assert keys.key_protection(tmp_path / "k.pem") == ("PBKDF2, 600,000 rounds", True)
    assert keys.protection_warning(tmp_path / "k.pem") is None
    # a fresh salt and IV every time
    assert keys.key_to_pem(key, PW) != pem


@pytest.mark.skipif(not HAVE_OPENSSL, reason="openssl not installed: the check is that "
                    "another implementation reads the file")
def test_openssl_reads_the_key_and_sees_600000_rounds(tmp_path):
    key = keys.generate_key()
    path = tmp_path / "k.pem"
    path.write_bytes(keys.key_to_pem(key, PW))
    fields = openssl("asn1parse", "-in", str(path)).stdout
    for name in ("PBES2", "PBKDF2", "hmacWithSHA256", "aes-256-cbc"):
        assert f":{name}" in fields, fields
    assert ":0927C0" in fields  # 600,000 as the INTEGER iterationCount
    pw_file = tmp_path / "pw"
    pw_file.write_bytes(PW)
    r = openssl("pkey", "-in", str(path), "-passin", f"file:{pw_file}", "-pubout")
    assert r.returncode == 0, r.stderr
    assert r.stdout.encode() == key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    pw_file.write_bytes(b"wrong password")
    assert openssl("pkey", "-in", str(path), "-passin", f"file:{pw_file}").returncode != 0


def test_unencrypted_keys_are_plain_pkcs8():
    key = keys.generate_key()
    assert keys.key_to_pem(key, None) == key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    with pytest.raises(ValidationError):
        keys.key_to_pem(key, b"")


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_weaker_schemes_are_told_apart(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    old = _write(tmp_path / "old.pem", _old_style(key, PW))
    legacy = _write(tmp_path / "legacy.pem", key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.BestAvailableEncryption(PW)))
    plain = _write(tmp_path / "plain.pem", keys.key_to_pem(key, None))
    assert keys.key_protection(old) == ("PBKDF2, 2,048 rounds", False)
    assert keys.key_protection(legacy) == (
        "OpenSSL's legacy PEM encryption (MD5, one round)", False)
    assert keys.key_protection(plain) == ("not encrypted", False)
    for weak in (old, legacy):
        warning = keys.protection_warning(weak)
        assert warning is not None and f"vaxqr certs password {weak}" in warning
    assert "2,048 rounds" in (keys.protection_warning(old) or "")
    assert keys.protection_warning(plain) == (
        f"{plain} is not encrypted: whoever copies it can sign with it; encrypt it with: "
        f"vaxqr certs password {plain}")
    # 599,999 rounds: one short of the goal is weak; the goal itself is strong
    short = _write(tmp_path / "short.pem", keys.key_to_pem(key, PW, iterations=599_999))
    assert keys.key_protection(short) == ("PBKDF2, 599,999 rounds", False)


@pytest.mark.skipif(not HAVE_OPENSSL, reason="openssl not installed: it writes the scrypt "
                    "and PKCS#5 v1.5 files")
def test_scrypt_is_strong_and_pkcs5_v15_is_weak(tmp_path):
    plain = _write(tmp_path / "plain.pem", keys.key_to_pem(keys.generate_key(), None))
    made = {}
    for name, args in (("scrypt", ["-scrypt"]), ("pbes1", ["-v1", "PBE-SHA1-3DES"])):
        path = tmp_path / f"{name}.pem"
        r = openssl("pkcs8", "-topk8", "-in", str(plain), "-out", str(path), *args,
                    "-passout", "pass:" + PW.decode())
        assert r.returncode == 0, r.stderr
        made[name] = path
    assert keys.key_protection(made["scrypt"]) == ("scrypt", True)
    assert keys.key_protection(made["pbes1"]) == ("a PKCS#5 v1.5 or PKCS#12 scheme", False)
    assert keys.protection_warning(made["pbes1"]) is not None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_a_damaged_encrypted_key_is_described_never_crashes(tmp_path_factory, body):
    path = tmp_path_factory.mktemp("k") / "k.pem"
    path.write_bytes(b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n" + base64.b64encode(body)
                     + b"\n-----END ENCRYPTED PRIVATE KEY-----\n")
    how, strong = keys.key_protection(path)
    assert isinstance(how, str) and not (strong and how.startswith("PBKDF2, 6"))


def test_a_real_key_cut_short_is_unreadable_not_strong(tmp_path):
    der = base64.b64decode(b"".join(keys.key_to_pem(keys.generate_key(), PW).split(b"\n")[1:-2]))
    for cut in (5, 20, 40, 60, len(der) - 1):
        path = _write(tmp_path / "k.pem", b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n"
                      + base64.b64encode(der[:cut]) + b"\n-----END ENCRYPTED PRIVATE KEY-----\n")
        assert keys.key_protection(path) == ("an unreadable encryption", False), cut


def test_the_demo_keys_are_encrypted_the_current_way():
    for key in (EXAMPLES / "ca" / "ca.key", *sorted(EXAMPLES.glob("communes/*/signer.key"))):
        assert keys.key_protection(key) == ("PBKDF2, 600,000 rounds", True), key


# ------------------------------------------------------------------- changing the password

def _downgrade(path: Path, password: bytes) -> keys.PrivateKey:
    """Rewrite a vaxqr key file the way vaxqr wrote it before (2,048 rounds)."""
    key = keys.load_private_key(path, password)
    path.write_bytes(_old_style(key, password))
    return key


def test_change_password_upgrades_an_old_key_and_keeps_it(tmp_path):
    h = make_hierarchy(tmp_path)
    for target, key_path in ((h.ca, h.ca / "ca.key"), (h.s1, h.s1 / "signer.key")):
        key = _downgrade(key_path, PW)
        res = certs.change_key_password(target, PW, PW)  # the same password: only upgraded
        assert (res.path, res.before, res.after, res.password_changed) == (
            key_path, "PBKDF2, 2,048 rounds", "PBKDF2, 600,000 rounds", False)
        assert _same_key(key, keys.load_private_key(key_path, PW))
        assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    # and the CA and the signer go on working with their keys
    revocation.refresh_crl(h.ca, password=PW)
    assert certs.load_signer(h.s1, PW).warnings == ()


def test_change_password_to_a_new_one(tmp_path):
    h = make_hierarchy(tmp_path)
    key = keys.load_private_key(h.s2 / "signer.key", PW)
    res = certs.change_key_password(h.s2 / "signer.key", PW, NEW_PW)  # the key file itself
    assert res.path == h.s2 / "signer.key"
    assert _same_key(key, keys.load_private_key(h.s2 / "signer.key", NEW_PW))
    with pytest.raises(KeyCertError, match="wrong password"):
        keys.load_private_key(h.s2 / "signer.key", PW)
    assert [p.name for p in h.s2.iterdir() if p.name.startswith(".")] == []  # no temporaries


def test_a_failed_change_leaves_the_key_file_as_it_was(tmp_path):
    h = make_hierarchy(tmp_path)
    key_path = h.ca / "ca.key"
    before = key_path.read_bytes()
    with pytest.raises(KeyCertError, match="wrong password"):
        certs.change_key_password(h.ca, b"not the password", NEW_PW)
    with pytest.raises(ValidationError, match="at least 8 characters"):
        certs.change_key_password(h.ca, PW, b"short")
    assert key_path.read_bytes() == before


def test_change_password_refuses_what_is_not_a_key(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(StorageError, match="neither a CA directory"):
        certs.change_key_password(tmp_path / "empty", PW, NEW_PW)
    with pytest.raises(StorageError, match="does not exist"):
        certs.change_key_password(tmp_path / "nothing.key", PW, NEW_PW)
    h = make_hierarchy(tmp_path / "h")
    os.remove(h.s1 / "signer.key")
    with pytest.raises(StorageError, match=r"no signer\.key"):
        certs.change_key_password(h.s1, PW, NEW_PW)
    text = _write(tmp_path / "notes.txt", b"not a key\n")
    with pytest.raises(KeyCertError, match="not a PEM file, not a private key"):
        certs.change_key_password(text, PW, NEW_PW)
    assert text.read_bytes() == b"not a key\n"
    with pytest.raises(KeyCertError, match="is a certificate, not a private key"):
        certs.change_key_password(h.s1 / "signer.crt", PW, NEW_PW)


def test_change_password_refuses_a_key_that_is_a_symbolic_link(tmp_path):
    # the new file would replace the link, and the key file it names keep the old password
    h = make_hierarchy(tmp_path)
    real = tmp_path / "kept-elsewhere.key"
    os.replace(h.s1 / "signer.key", real)
    os.symlink(real, h.s1 / "signer.key")
    before = real.read_bytes()
    for target in (h.s1, h.s1 / "signer.key"):
        with pytest.raises(StorageError, match="is a symbolic link to"):
            certs.change_key_password(target, PW, NEW_PW)
    assert real.read_bytes() == before and (h.s1 / "signer.key").is_symlink()
    res = certs.change_key_password(real, PW, NEW_PW)  # the file itself
    assert res.password_changed and keys.load_private_key(h.s1 / "signer.key", NEW_PW)


def test_an_old_key_is_warned_about_where_it_is_opened(tmp_path):
    h = make_hierarchy(tmp_path)
    _downgrade(h.s1 / "signer.key", PW)
    (warning,) = certs.load_signer(h.s1, PW).warnings
    assert "2,048 rounds" in warning and f"vaxqr certs password {h.s1 / 'signer.key'}" in warning
    _downgrade(h.ca / "ca.key", PW)
    _crl, warnings = revocation.refresh_crl(h.ca, password=PW)
    assert any("2,048 rounds" in w for w in warnings), warnings


# ------------------------------------------------------- a key where a certificate is due

def test_certs_show_describes_a_key_by_its_encryption(tmp_path):
    from vaxqr.describe import describe_file

    key = keys.generate_key()
    strong = _write(tmp_path / "strong.key", keys.key_to_pem(key, PW))
    weak = _write(tmp_path / "weak.key", _old_style(key, PW))
    plain = _write(tmp_path / "plain.key", keys.key_to_pem(key, None))
    doc = describe_file(strong)
    assert (doc["type"], doc["encryption"], doc["strong"], doc["warning"]) == (
        "private key", "PBKDF2, 600,000 rounds", True, None)
    doc = describe_file(weak)
    assert (doc["encryption"], doc["strong"]) == ("PBKDF2, 2,048 rounds", False)
    assert f"vaxqr certs password {weak}" in doc["warning"]
    doc = describe_file(plain)
    assert doc["encryption"] == "not encrypted"
    assert doc["warning"] == keys.protection_warning(plain)


def test_a_key_given_as_trust_material_is_named_as_such(tmp_path):
    from vaxqr.errors import TrustError
    from vaxqr.trust import TrustStore

    key = _write(tmp_path / "ca.key", keys.key_to_pem(keys.generate_key(), PW))
    with pytest.raises(TrustError, match="is a private key") as caught:
        TrustStore.from_paths([key], at=dt.datetime.now(dt.UTC))
    assert "give the CA certificate" in (caught.value.hint or "")



def test_change_password_encrypts_an_unencrypted_key(tmp_path):
    key = keys.generate_key()
    path = _write(tmp_path / "signer.key", keys.key_to_pem(key, None))
    res = certs.change_key_password(path, None, NEW_PW)
    assert (res.before, res.after) == ("not encrypted", "PBKDF2, 600,000 rounds")
    assert _same_key(key, keys.load_private_key(path, NEW_PW))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_an_unencrypted_ca_key_is_warned_about_where_it_is_opened(tmp_path):
    certs.init_ca(tmp_path / "ca", name="Kiên Giang", province_code="091", password=None)
    _crl, warnings = revocation.refresh_crl(tmp_path / "ca", password=None)
    assert any("is not encrypted" in w and "vaxqr certs password" in w for w in warnings)
