"""Tests for vaxqr.certs (CA, DSCs, revocation, trust lists, TrustStore) and `vaxqr certs`."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtensionOID, NameOID
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from vaxqr import certs
from vaxqr.cli_certs import certs_app
from vaxqr.errors import KeyCertError, StorageError, TrustError, ValidationError

PW = b"correct horse battery"
OTHER_PW = b"a different password"
UTC = dt.UTC
T0 = dt.datetime(2022, 1, 10, tzinfo=UTC)
REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "keys" / "examples"
HAVE_OPENSSL = shutil.which("openssl") is not None
AT_T0 = ("-attime", str(int(T0.timestamp()) + 86400))


@dataclass
class Hierarchy:
    ca: Path
    s1: Path
    s2: Path
    tmp: Path

    def dsc(self, which: Path) -> x509.Certificate:
        return certs.load_certificates(which / "signer.crt")[0]


def make_hierarchy(tmp: Path, province: str = "Kiên Giang") -> Hierarchy:
    ca = tmp / "ca"
    certs.init_ca(ca, name=province, province_code="091", password=PW, now=T0)
    s1, s2 = tmp / "s1", tmp / "s2"
    certs.issue_signer(
        ca,
        ca_password=PW,
        commune_code="30760",
        name="UBND phường Vĩnh Thanh Vân",
        out_dir=s1,
        password=PW,
        now=T0,
    )
    certs.issue_signer(
        ca,
        ca_password=PW,
        commune_code="31078",
        name="UBND xã Dương Tơ",
        out_dir=s2,
        password=PW,
        now=T0,
    )
    return Hierarchy(ca, s1, s2, tmp)


@pytest.fixture
def h(tmp_path: Path) -> Hierarchy:
    return make_hierarchy(tmp_path)


def openssl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)


def ext(cert: x509.Certificate, cls: type) -> x509.Extension:  # type: ignore[type-arg]
    return cert.extensions.get_extension_for_class(cls)


def hidden_leftovers(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if p.name.startswith(".") and ".new-" in p.name]


# ---------------------------------------------------------------------------- profiles


def test_kid_is_sha256_of_der_first_8_bytes(h: Hierarchy) -> None:
    der = (h.s1 / "signer.crt").read_bytes()
    cert = x509.load_pem_x509_certificate(der)
    if HAVE_OPENSSL:
        der = subprocess.run(
            ["openssl", "x509", "-in", str(h.s1 / "signer.crt"), "-outform", "DER"],
            capture_output=True,
            check=True,
        ).stdout
    else:
        der = cert.public_bytes(serialization.Encoding.DER)
    assert certs.kid_of(cert) == hashlib.sha256(der).digest()[:8]
    meta = json.loads((h.s1 / "signer.json").read_text())
    assert meta["kid"] == hashlib.sha256(der).digest()[:8].hex()


def test_ca_profile(h: Hierarchy) -> None:
    ca = certs.load_certificates(h.ca / "ca.crt")[0]
    subj = ca.subject
    assert subj.get_attributes_for_oid(NameOID.COUNTRY_NAME)[0].value == "VN"
    assert subj.get_attributes_for_oid(NameOID.STATE_OR_PROVINCE_NAME)[0].value == "Kiên Giang"
    assert subj.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "Kiên Giang"
    assert subj.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value == "091"
    assert "Kiên Giang Province CSCA" in subj.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    bc = ext(ca, x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == 0
    ku = ext(ca, x509.KeyUsage)
    assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign
    assert not ku.value.digital_signature
    ski = ext(ca, x509.SubjectKeyIdentifier).value
    assert ski.digest == x509.SubjectKeyIdentifier.from_public_key(ca.public_key()).digest
    years = (ca.not_valid_after_utc - ca.not_valid_before_utc).days / 365.25
    assert 4.9 < years < 5.1
    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey)
    assert ca.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]


def test_dsc_profile(h: Hierarchy) -> None:
    ca = certs.load_certificates(h.ca / "ca.crt")[0]
    dsc = h.dsc(h.s2)
    s = dsc.subject
    assert s.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "UBND xã Dương Tơ"
    assert s.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value == "31078"
    assert s.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "Kiên Giang"
    assert s.get_attributes_for_oid(NameOID.COUNTRY_NAME)[0].value == "VN"
    assert dsc.issuer == ca.subject
    aki = ext(dsc, x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ext(ca, x509.SubjectKeyIdentifier).value.digest
    assert ext(dsc, x509.SubjectKeyIdentifier).value.digest != aki.key_identifier
    ku = ext(dsc, x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and not ku.value.key_cert_sign
    eku = ext(dsc, x509.ExtendedKeyUsage)
    assert not eku.critical
    assert [o.dotted_string for o in eku.value] == ["1.3.6.1.4.1.1847.2021.1.2"]
    assert ext(dsc, x509.BasicConstraints).value.ca is False
    assert (dsc.not_valid_after_utc - dsc.not_valid_before_utc).days == 730
    chain = certs.load_certificates(h.s2 / "chain.pem")
    assert [certs.fingerprint(c) for c in chain] == [certs.fingerprint(dsc), certs.fingerprint(ca)]
    # every issued certificate has its own SKI and serial
    other = h.dsc(h.s1)
    assert other.serial_number != dsc.serial_number
    assert ext(other, x509.SubjectKeyIdentifier).value != ext(dsc, x509.SubjectKeyIdentifier).value


@pytest.mark.skipif(not HAVE_OPENSSL, reason="openssl not installed")
def test_openssl_accepts_the_chain(h: Hierarchy) -> None:
    for s in (h.s1, h.s2):
        r = openssl("verify", *AT_T0, "-CAfile", str(h.ca / "ca.crt"), str(s / "signer.crt"))
        assert r.returncode == 0, r.stderr
        assert "OK" in r.stdout
    # the key is encrypted PKCS#8 that openssl reads only with the passphrase
    ok = openssl(
        "pkey", "-in", str(h.s1 / "signer.key"), "-passin", "pass:" + PW.decode(), "-noout"
    )
    assert ok.returncode == 0, ok.stderr
    bad = openssl("pkey", "-in", str(h.s1 / "signer.key"), "-passin", "pass:wrong", "-noout")
    assert bad.returncode != 0
    crl = openssl("crl", "-in", str(h.ca / "crl.pem"), "-CAfile", str(h.ca / "ca.crt"), "-noout")
    assert crl.returncode == 0, crl.stderr


@pytest.mark.skipif(not HAVE_OPENSSL, reason="openssl not installed")
def test_root_hierarchy_three_certificates(tmp_path: Path) -> None:
    root = tmp_path / "root"
    certs.init_ca(root, name="Bộ Y tế", province_code=None, root=True, password=PW, now=T0)
    rc = certs.load_certificates(root / "ca.crt")[0]
    assert ext(rc, x509.BasicConstraints).value.path_length == 1
    ca = tmp_path / "ca"
    info = certs.init_ca(
        ca,
        name="Kiên Giang",
        province_code="091",
        password=PW,
        parent_dir=root,
        parent_password=PW,
        now=T0,
    )
    assert info.certificate.issuer == rc.subject
    assert [r.kind for r in certs.list_issued(root)] == ["ca"]
    s = tmp_path / "s"
    certs.issue_signer(
        ca,
        ca_password=PW,
        commune_code="31078",
        name="UBND xã Dương Tơ",
        out_dir=s,
        password=PW,
        now=T0,
    )
    assert len(certs.load_certificates(s / "chain.pem")) == 3
    r = openssl(
        "verify",
        *AT_T0,
        "-CAfile",
        str(root / "ca.crt"),
        "-untrusted",
        str(ca / "ca.crt"),
        str(s / "signer.crt"),
    )
    assert r.returncode == 0, r.stderr
    # a checkpoint trusting only the national root accepts the province's trust list
    certs.build_trustlist(ca, password=PW, out=tmp_path / "tl.json", now=T0)
    store = certs.TrustStore.from_paths(
        [root / "ca.crt", tmp_path / "tl.json"], at=T0, state_file=tmp_path / "state.json"
    )
    (signer,) = store.all_signers()
    assert signer.chain_validated and len(signer.chain) == 3
    with pytest.raises(ValidationError):
        certs.issue_signer(
            root,
            ca_password=PW,
            commune_code="31078",
            name="UBND x",
            out_dir=tmp_path / "x",
            password=PW,
        )


def test_rsa_3072_ca_with_pss(tmp_path: Path) -> None:
    ca = tmp_path / "ca"
    info = certs.init_ca(ca, name="Kiên Giang", province_code="091", password=PW, key_type="rsa")
    key = info.certificate.public_key()
    assert isinstance(key, rsa.RSAPublicKey) and key.key_size == 3072
    assert isinstance(info.certificate.signature_algorithm_parameters, padding.PSS)
    assert certs.cose_alg_for(key) == "PS256"
    certs.issue_signer(
        ca,
        ca_password=PW,
        commune_code="31078",
        name="UBND xã Dương Tơ",
        out_dir=tmp_path / "s",
        password=PW,
    )
    pub = certs.build_trustlist(ca, password=PW, out=tmp_path / "tl.json")
    assert pub.trustlist.signature_alg == "rsa-pss-sha256"
    store = certs.TrustStore.from_paths(
        [ca / "ca.crt", tmp_path / "tl.json"], at=certs._utcnow(), state_file=tmp_path / "st"
    )
    assert len(store.signers) == 1 and store.signers[0].chain_validated
    if HAVE_OPENSSL:
        r = openssl("verify", "-CAfile", str(ca / "ca.crt"), str(tmp_path / "s" / "signer.crt"))
        assert r.returncode == 0, r.stderr


# ---------------------------------------------------------------------------- key safety


def test_key_files_are_0600_even_with_umask_000(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        hh = make_hierarchy(tmp_path)
    finally:
        os.umask(old)
    for key in (hh.ca / "ca.key", hh.s1 / "signer.key", hh.s2 / "signer.key"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    for d in (hh.ca, hh.s1):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700
    assert stat.S_IMODE((hh.ca / "ca.crt").stat().st_mode) == 0o644


def test_keys_are_encrypted(h: Hierarchy) -> None:
    for key in (h.ca / "ca.key", h.s1 / "signer.key"):
        data = key.read_bytes()
        assert data.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
        assert certs.key_is_encrypted(key)
        with pytest.raises(TypeError):
            serialization.load_pem_private_key(data, None)
        with pytest.raises(KeyCertError, match="no password"):
            certs.load_private_key(key, None)
        assert certs.load_private_key(key, PW)


def test_wrong_password_is_clear_and_writes_nothing(h: Hierarchy) -> None:
    state = (h.ca / "state.json").read_bytes()
    crl = (h.ca / "crl.pem").read_bytes()
    out = h.tmp / "new-signer"
    with pytest.raises(KeyCertError, match=r"wrong password for .*ca\.key") as exc:
        certs.issue_signer(
            h.ca,
            ca_password=OTHER_PW,
            commune_code="31079",
            name="UBND xã A",
            out_dir=out,
            password=PW,
        )
    assert OTHER_PW.decode() not in str(exc.value) and PW.decode() not in str(exc.value)
    assert not out.exists()
    assert hidden_leftovers(h.tmp) == []
    with pytest.raises(KeyCertError, match="wrong password"):
        certs.build_trustlist(h.ca, password=OTHER_PW, out=h.tmp / "tl.json")
    assert not (h.tmp / "tl.json").exists()
    with pytest.raises(KeyCertError, match="wrong password"):
        certs.revoke_certificate(h.ca, str(h.s1), password=OTHER_PW)
    assert (h.ca / "state.json").read_bytes() == state
    assert (h.ca / "crl.pem").read_bytes() == crl
    with pytest.raises(KeyCertError, match=r"wrong password for .*signer\.key"):
        certs.load_signer(h.s1, OTHER_PW)


def test_refuses_to_overwrite_without_force(h: Hierarchy) -> None:
    before = (h.ca / "ca.key").read_bytes()
    with pytest.raises(StorageError, match="already exists"):
        certs.init_ca(h.ca, name="Kiên Giang", province_code="091", password=PW)
    with pytest.raises(StorageError, match="already exists"):
        certs.issue_signer(
            h.ca, ca_password=PW, commune_code="30760", name="UBND x", out_dir=h.s1, password=PW
        )
    assert (h.ca / "ca.key").read_bytes() == before
    assert len(certs.list_issued(h.ca)) == 2
    certs.build_trustlist(h.ca, password=PW, out=h.tmp / "tl.json")
    with pytest.raises(StorageError, match="already exists"):
        certs.build_trustlist(h.ca, password=PW, out=h.tmp / "tl.json")
    assert certs.open_ca(h.ca).trustlist_sequence == 1
    # with force the files are replaced
    certs.build_trustlist(h.ca, password=PW, out=h.tmp / "tl.json", force=True)
    certs.issue_signer(
        h.ca,
        ca_password=PW,
        commune_code="30760",
        name="UBND x",
        out_dir=h.s1,
        password=PW,
        force=True,
    )
    certs.init_ca(h.ca, name="Kiên Giang", province_code="091", password=PW, force=True)
    assert (h.ca / "ca.key").read_bytes() != before
    assert certs.list_issued(h.ca) == ()
    assert hidden_leftovers(h.tmp) == []


def test_force_never_replaces_a_foreign_directory(tmp_path: Path) -> None:
    d = tmp_path / "home"
    d.mkdir()
    (d / "thesis.txt").write_text("precious")
    with pytest.raises(StorageError, match="not a vaxqr"):
        certs.init_ca(d, name="Kiên Giang", province_code="091", password=PW, force=True)
    assert (d / "thesis.txt").read_text() == "precious"
    empty = tmp_path / "empty"
    empty.mkdir()
    certs.init_ca(empty, name="Kiên Giang", province_code="091", password=PW)
    assert (empty / "ca.crt").exists()


def test_failure_mid_write_leaves_no_half_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"n": 0}
    real = certs.atomic_write

    def flaky(path: object, data: object, **kw: object) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise StorageError("disk full while writing (simulated)")
        real(path, data, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(certs, "atomic_write", flaky)
    with pytest.raises(StorageError, match="disk full"):
        certs.init_ca(tmp_path / "ca", name="Kiên Giang", province_code="091", password=PW)
    assert list(tmp_path.iterdir()) == []


def test_password_rules(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="at least 8"):
        certs.init_ca(tmp_path / "ca", name="Kiên Giang", province_code="091", password=b"short")
    info = certs.init_ca(tmp_path / "ca", name="Kiên Giang", province_code="091", password=None)
    assert any("NOT encrypted" in w for w in info.warnings)
    assert b"ENCRYPTED" not in (tmp_path / "ca" / "ca.key").read_bytes()
    assert not certs.key_is_encrypted(tmp_path / "ca" / "ca.key")


def test_input_validation(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="province code"):
        certs.init_ca(tmp_path / "a", name="Kiên Giang", province_code="91", password=PW)
    with pytest.raises(ValidationError, match="4 to 10 years"):
        certs.init_ca(tmp_path / "a", name="Kiên Giang", province_code="091", password=PW, days=400)
    with pytest.raises(ValidationError, match="control"):
        certs.init_ca(tmp_path / "a", name="Kiên\x1b[31mGiang", province_code="091", password=PW)
    certs.init_ca(tmp_path / "ca", name="Kiên Giang", province_code="091", password=PW)
    with pytest.raises(ValidationError, match="5 digits"):
        certs.issue_signer(
            tmp_path / "ca",
            ca_password=PW,
            commune_code="3107",
            name="UBND xã A",
            out_dir=tmp_path / "s",
            password=PW,
        )
    assert not (tmp_path / "a").exists()


def test_dsc_never_outlives_its_ca(tmp_path: Path) -> None:
    ca = tmp_path / "ca"
    info = certs.init_ca(ca, name="Kiên Giang", province_code="091", password=PW, days=1461)
    res = certs.issue_signer(
        ca,
        ca_password=PW,
        commune_code="31078",
        name="UBND xã Dương Tơ",
        out_dir=tmp_path / "s",
        password=PW,
        days=3000,
    )
    assert res.record.not_after == info.certificate.not_valid_after_utc
    assert any("shortened" in w for w in res.warnings)


# ---------------------------------------------------------------------------- signer


def test_load_signer(h: Hierarchy) -> None:
    s = certs.load_signer(h.s2, PW)
    assert s.kid == certs.kid_of(s.certificate)
    assert (s.province_code, s.commune_code) == ("091", "31078")
    assert s.commune_name == "UBND xã Dương Tơ"
    assert s.uvci_prefix == "URN:UVCI:01:VN:091/31078/"
    assert s.alg == "ES256"
    assert not s.is_demo and s.warnings == ()
    assert len(s.chain) == 2
    assert "private_key" not in repr(s)
    os.chmod(h.s2 / "signer.key", 0o644)
    assert any("chmod 600" in w for w in certs.load_signer(h.s2, PW).warnings)
    # without signer.json the codes come from the certificates' serialNumber attributes
    (h.s2 / "signer.json").unlink()
    s2 = certs.load_signer(h.s2, PW)
    assert (s2.province_code, s2.commune_code) == ("091", "31078")


# ---------------------------------------------------------------------------- revocation


def test_revocation_reaches_crl_and_next_trustlist(h: Hierarchy) -> None:
    first = certs.build_trustlist(h.ca, password=PW, out=h.tmp / "tl1.json", now=T0)
    assert {e.commune_code for e in first.trustlist.dscs} == {"30760", "31078"}
    dsc = h.dsc(h.s1)
    rev = certs.revoke_certificate(
        h.ca,
        str(h.s1 / "signer.crt"),
        password=PW,
        reason="key-compromise",
        now=T0 + dt.timedelta(days=1),
    )
    assert rev.record.serial == dsc.serial_number and not rev.already_revoked
    ca_cert = certs.load_certificates(h.ca / "ca.crt")[0]
    crl = x509.load_pem_x509_crl((h.ca / "crl.pem").read_bytes())
    assert crl.is_signature_valid(ca_cert.public_key())  # type: ignore[arg-type]
    entry = crl.get_revoked_certificate_by_serial_number(dsc.serial_number)
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == (
        x509.ReasonFlags.key_compromise
    )
    assert crl.get_revoked_certificate_by_serial_number(h.dsc(h.s2).serial_number) is None
    assert crl.next_update_utc is not None and crl.next_update_utc > crl.last_update_utc
    again = certs.revoke_certificate(h.ca, format(dsc.serial_number, "x"), password=PW)
    assert again.already_revoked and again.record.reason == "key-compromise"

    statuses = {r.code: r.status(T0 + dt.timedelta(days=2)) for r in certs.list_issued(h.ca)}
    assert statuses == {"30760": "revoked", "31078": "valid"}

    second = certs.build_trustlist(
        h.ca, password=PW, out=h.tmp / "tl2.json", now=T0 + dt.timedelta(days=2)
    )
    kid = certs.kid_of(dsc)
    assert second.trustlist.sequence == first.trustlist.sequence + 1
    assert kid not in {e.kid for e in second.trustlist.dscs}
    raw = json.loads((h.tmp / "tl2.json").read_text())
    assert base64.b64encode(kid).decode() not in {e["kid"] for e in raw["dscs"]}
    assert raw["revoked_dscs"][0]["fingerprint"] == certs.fingerprint(dsc)
    store = certs.TrustStore.from_paths(
        [h.ca / "ca.crt", h.tmp / "tl2.json"],
        at=T0 + dt.timedelta(days=2),
        state_file=h.tmp / "state.json",
    )
    assert store.signers_for_kid(kid) == ()
    assert store.is_kid_revoked(kid) and store.is_dsc_revoked(dsc)
    assert len(store.signers_for_kid(certs.kid_of(h.dsc(h.s2)))) == 1
    # the same DSC given directly is still marked revoked
    store2 = certs.TrustStore.from_paths(
        [h.ca / "ca.crt", h.tmp / "tl2.json", h.s1 / "signer.crt"],
        at=T0 + dt.timedelta(days=2),
        state_file=h.tmp / "state.json",
    )
    (signer,) = store2.signers_for_kid(kid)
    assert signer.revoked
    # and a CRL given to the store marks it too
    store3 = certs.TrustStore.from_paths(
        [h.ca / "ca.crt", h.s1 / "signer.crt", h.ca / "crl.pem"], at=T0 + dt.timedelta(days=2)
    )
    assert store3.signers_for_kid(kid)[0].revoked


def test_revoke_unknown_certificate(h: Hierarchy, tmp_path: Path) -> None:
    other = make_hierarchy(tmp_path / "other")
    with pytest.raises(KeyCertError, match="not issued by"):
        certs.revoke_certificate(h.ca, str(other.s1), password=PW)
    with pytest.raises(KeyCertError, match="matches"):
        certs.revoke_certificate(h.ca, "deadbeef", password=PW)
    with pytest.raises(ValidationError, match="reason"):
        certs.revoke_certificate(h.ca, str(h.s1), password=PW, reason="because")


def test_credential_revocation_hash_dcc_style(h: Hierarchy) -> None:
    uvci = "URN:UVCI:01:VN:091/31078/000123#K"
    expected = hashlib.sha256(uvci.encode("utf-8")).digest()[:16]
    assert certs.credential_revocation_hash(uvci) == expected
    assert certs.credential_revocation_hash("  urn:uvci:01:vn:091/31078/000123#k\n") == expected
    res = certs.revoke_credentials(h.ca, [uvci.lower()])
    assert [c.hash for c in res.added] == [expected]
    assert certs.revoke_credentials(h.ca, [uvci]).already == (uvci,)
    with pytest.raises(ValidationError, match="not a UVCI"):
        certs.revoke_credentials(h.ca, ["hello"])
    certs.build_trustlist(h.ca, password=PW, out=h.tmp / "tl.json")
    raw = json.loads((h.tmp / "tl.json").read_text())
    assert raw["revoked_credentials"] == [
        {"hash": base64.b64encode(expected).decode(), "type": "UCI"}
    ]
    store = certs.TrustStore.from_paths(
        [h.ca / "ca.crt", h.tmp / "tl.json"], at=certs._utcnow(), state_file=h.tmp / "st.json"
    )
    assert store.is_credential_revoked(uvci)
    assert not store.is_credential_revoked("URN:UVCI:01:VN:091/31078/000124#L")


# ---------------------------------------------------------------------------- trust lists


@pytest.fixture
def published(h: Hierarchy) -> tuple[Hierarchy, Path]:
    certs.revoke_credentials(h.ca, ["URN:UVCI:01:VN:091/31078/1#A"], now=T0)
    certs.build_trustlist(h.ca, password=PW, out=h.tmp / "tl.json", now=T0)
    return h, h.tmp / "tl.json"


def _load(h: Hierarchy, *paths: Path, at: dt.datetime = T0, **kw: object) -> certs.TrustStore:
    return certs.TrustStore.from_paths(
        [h.ca / "ca.crt", *paths],
        at=at,
        state_file=h.tmp / "state.json",
        **kw,  # type: ignore[arg-type]
    )


def test_trustlist_loads_and_validates_chains(published: tuple[Hierarchy, Path]) -> None:
    h, tl = published
    store = _load(h, tl)
    assert store.warnings == ()
    assert len(store.signers) == 2
    for s in store.signers:
        assert s.chain_validated and len(s.chain) == 2 and not s.revoked and not s.is_ca
        assert s.kid == certs.kid_of(s.certificate)
        assert s.source == str(tl)
    (tlist,) = store.trustlists
    assert tlist.sequence == 1 and tlist.province_code == "091"


@pytest.mark.skipif(not HAVE_OPENSSL, reason="openssl not installed")
def test_trustlist_signature_checks_with_openssl(published: tuple[Hierarchy, Path]) -> None:
    h, tl = published
    doc = json.loads(tl.read_text())
    sig = doc.pop("signature")
    signed = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    (h.tmp / "tl.bytes").write_bytes(signed.encode("utf-8"))
    (h.tmp / "tl.sig").write_bytes(base64.b64decode(sig["value"]))
    pub = certs.load_certificates(h.ca / "ca.crt")[0].public_key()
    (h.tmp / "ca.pub").write_bytes(
        pub.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    r = openssl(
        "dgst",
        "-sha256",
        "-verify",
        str(h.tmp / "ca.pub"),
        "-signature",
        str(h.tmp / "tl.sig"),
        str(h.tmp / "tl.bytes"),
    )
    assert r.returncode == 0 and "Verified OK" in r.stdout, r.stderr
    assert sig["signer"] == certs.fingerprint(certs.load_certificates(h.ca / "ca.crt")[0])


def _tamper(path: Path, fn: object) -> None:
    doc = json.loads(path.read_text())
    fn(doc)  # type: ignore[operator]
    path.write_text(json.dumps(doc))


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda d: d.update(next_update="2099-01-01T00:00:00Z"), id="next_update"),
        pytest.param(lambda d: d.update(sequence=d["sequence"] + 100), id="sequence"),
        pytest.param(lambda d: d["revoked_credentials"].clear(), id="drop-revocation"),
        pytest.param(lambda d: d["dscs"].pop(), id="drop-dsc"),
        pytest.param(
            lambda d: d["signature"].update(
                value=base64.b64encode(
                    bytes([base64.b64decode(d["signature"]["value"])[0] ^ 1])
                    + base64.b64decode(d["signature"]["value"])[1:]
                ).decode()
            ),
            id="signature-bit",
        ),
        pytest.param(lambda d: d["province"].update(name="Kien Giang"), id="province"),
    ],
)
def test_tampered_trustlist_is_rejected(published: tuple[Hierarchy, Path], change: object) -> None:
    h, tl = published
    _tamper(tl, change)
    with pytest.raises(TrustError):
        _load(h, tl)


def test_trustlist_from_an_untrusted_ca_is_rejected(
    published: tuple[Hierarchy, Path], tmp_path: Path
) -> None:
    h, tl = published
    other = make_hierarchy(tmp_path / "other")
    with pytest.raises(TrustError, match="not trusted here"):
        certs.TrustStore.from_paths([other.ca / "ca.crt", tl], at=T0, state_file=h.tmp / "s")
    with pytest.raises(TrustError, match="not trusted here"):
        certs.TrustStore.from_paths([tl], at=T0, state_file=h.tmp / "s")


def test_trustlist_json_is_strict(published: tuple[Hierarchy, Path]) -> None:
    _, tl = published
    text = tl.read_text()
    dup = text.replace('"version": 1,', '"version": 1, "version": 1,', 1)
    with pytest.raises(TrustError, match="duplicate"):
        certs.parse_trustlist(dup.encode())
    with pytest.raises(TrustError, match="fraction"):
        certs.parse_trustlist(text.replace('"version": 1,', '"version": 1.0,', 1).encode())
    with pytest.raises(TrustError):
        certs.parse_trustlist(b"\xff\xfe{")


def test_older_sequence_is_refused(h: Hierarchy) -> None:
    certs.build_trustlist(h.ca, password=PW, out=h.tmp / "tl1.json", now=T0)
    certs.build_trustlist(h.ca, password=PW, out=h.tmp / "tl2.json", now=T0)
    state = h.tmp / "state.json"
    _load(h, h.tmp / "tl1.json")
    _load(h, h.tmp / "tl2.json")
    doc = json.loads(state.read_text())
    assert [v["sequence"] for v in doc["cas"].values()] == [2]
    with pytest.raises(TrustError, match="rollback refused"):
        _load(h, h.tmp / "tl1.json")
    store = _load(h, h.tmp / "tl1.json", allow_rollback=True)
    assert store.trustlists[0].sequence == 1
    assert [v["sequence"] for v in json.loads(state.read_text())["cas"].values()] == [2]
    _load(h, h.tmp / "tl2.json")  # the same list again is fine
    # both given at once: the newest is used, the older one is reported
    store = _load(h, h.tmp / "tl1.json", h.tmp / "tl2.json")
    assert store.trustlists[0].sequence == 2 and any("older" in w for w in store.warnings)


def test_same_sequence_different_content_is_refused(h: Hierarchy, tmp_path: Path) -> None:
    certs.build_trustlist(h.ca, password=PW, out=h.tmp / "tl.json", now=T0)
    _load(h, h.tmp / "tl.json")
    # restore the CA from a "backup" and publish sequence 1 again with other content
    state = json.loads((h.ca / "state.json").read_text())
    state["trustlist_sequence"] = 0
    (h.ca / "state.json").write_text(json.dumps(state))
    certs.revoke_credentials(h.ca, ["URN:UVCI:01:VN:091/31078/9#Z"])
    certs.build_trustlist(h.ca, password=PW, out=h.tmp / "again.json", now=T0)
    with pytest.raises(TrustError, match="same sequence"):
        _load(h, h.tmp / "again.json")


def test_state_file_default_location(
    published: tuple[Hierarchy, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    h, tl = published
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert certs.default_state_file() == tmp_path / "xdg" / "vaxqr" / "trustlists.json"
    certs.TrustStore.from_paths([h.ca / "ca.crt", tl], at=T0)
    assert (tmp_path / "xdg" / "vaxqr" / "trustlists.json").exists()
    (tmp_path / "xdg" / "vaxqr" / "trustlists.json").write_text("{broken")
    with pytest.raises(TrustError, match="damaged"):
        certs.TrustStore.from_paths([h.ca / "ca.crt", tl], at=T0)


def test_expired_trustlist_is_usable_with_a_warning(published: tuple[Hierarchy, Path]) -> None:
    h, tl = published
    store = _load(h, tl, at=T0 + dt.timedelta(days=30))
    assert any("expired" in w for w in store.warnings)
    assert len(store.signers) == 2


def test_directory_of_trust_material(published: tuple[Hierarchy, Path]) -> None:
    h, tl = published
    d = h.tmp / "trust"
    d.mkdir()
    shutil.copy(h.ca / "ca.crt", d / "ca.crt")
    shutil.copy(tl, d / "tl.json")
    (d / "notes.txt").write_text("ignored")
    store = certs.TrustStore.from_paths([d], at=T0, state_file=h.tmp / "st.json")
    assert len(store.signers) == 2
    with pytest.raises(KeyCertError):
        certs.TrustStore.from_paths([d / "notes.txt"], at=T0)
    with pytest.raises(StorageError):
        certs.TrustStore.from_paths([d / "missing.pem"], at=T0)


# ---------------------------------------------------------------------------- TrustStore, direct


def test_direct_dsc_with_its_ca_is_chain_validated(h: Hierarchy, tmp_path: Path) -> None:
    store = certs.TrustStore.from_paths([h.ca / "ca.crt", h.s1 / "signer.crt"], at=T0)
    (s,) = store.all_signers()
    assert s.chain_validated and len(s.chain) == 2 and not s.is_ca
    # the CA is only an anchor here; alone it would be taken as a signer (EU test data LV)
    alone = certs.TrustStore.from_paths([h.ca / "ca.crt"], at=T0)
    assert [x.is_ca for x in alone.signers] == [True]
    # a DSC from elsewhere, given alone, is trusted as it is
    other = make_hierarchy(tmp_path / "o", province="An Giang")
    store = certs.TrustStore.from_paths([other.s1 / "signer.crt"], at=T0)
    (s,) = store.all_signers()
    assert not s.chain_validated and s.chain == (s.certificate,)
    assert s.source == str(other.s1 / "signer.crt")


def test_direct_dsc_failing_its_chain_is_not_trusted(h: Hierarchy, tmp_path: Path) -> None:
    # a DSC signed by a different key under the same CA name
    other = make_hierarchy(tmp_path / "o")
    store = certs.TrustStore.from_paths(
        [other.ca / "ca.crt", h.s1 / "signer.crt", other.s2 / "signer.crt"], at=T0
    )
    assert [certs.kid_of(s.certificate) for s in store.signers] == [
        certs.kid_of(other.dsc(other.s2))
    ]
    assert any("not trusted" in w for w in store.warnings)


def _self_signed(exts: list[tuple[x509.ExtensionType, bool]]) -> x509.Certificate:
    k = ec.generate_private_key(ec.SECP256R1())
    n = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "odd DSC")])
    b = (
        x509.CertificateBuilder()
        .subject_name(n)
        .issuer_name(n)
        .public_key(k.public_key())
        .serial_number(7)
        .not_valid_before(T0)
        .not_valid_after(T0 + dt.timedelta(days=30))
    )
    for e, c in exts:
        b = b.add_extension(e, c)
    der = b.sign(k, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
    return x509.load_der_x509_certificate(der)


def test_eku_read_leniently_from_non_der_extensions() -> None:
    empty_eku = _self_signed(
        [(x509.UnrecognizedExtension(ExtensionOID.EXTENDED_KEY_USAGE, b"\x30\x00"), False)]
    )
    with pytest.raises(ValueError):
        _ = empty_eku.extensions
    assert certs.eku_oids(empty_eku) == frozenset()
    assert certs.eku_allows(certs.eku_oids(empty_eku), "v")
    # basicConstraints with an encoded DEFAULT (FI test data) and the .0. OID forms
    bc_default = _self_signed(
        [
            (
                x509.UnrecognizedExtension(ExtensionOID.BASIC_CONSTRAINTS, b"\x30\x03\x01\x01\x00"),
                True,
            ),
            (
                x509.ExtendedKeyUsage(
                    [
                        x509.ObjectIdentifier("1.3.6.1.4.1.0.1847.2021.1.1"),
                        x509.ObjectIdentifier("1.3.6.1.4.1.0.1847.2021.1.2"),
                    ]
                ),
                False,
            ),
        ]
    )
    with pytest.raises(ValueError):
        _ = bc_default.extensions
    assert certs.eku_oids(bc_default) == {
        "1.3.6.1.4.1.0.1847.2021.1.1",
        "1.3.6.1.4.1.0.1847.2021.1.2",
    }
    assert not certs.is_ca_certificate(bc_default)
    ca_true = _self_signed(
        [
            (
                x509.UnrecognizedExtension(ExtensionOID.BASIC_CONSTRAINTS, b"\x30\x03\x01\x01\xff"),
                True,
            ),
            (x509.UnrecognizedExtension(ExtensionOID.EXTENDED_KEY_USAGE, b"\x30\x00"), False),
        ]
    )
    assert certs.is_ca_certificate(ca_true)
    assert certs.eku_oids(_self_signed([])) is None
    # such DSCs load into a TrustStore as they are (only DER, key and validity are used)
    store = certs.TrustStore.from_certificates([empty_eku, bc_default], at=T0)
    assert len(store.signers) == 2
    info = certs.describe_certificate(bc_default)
    assert info["eku"] == sorted(certs.eku_oids(bc_default) or [])


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 2),
            st.integers(0, 39),
            st.lists(st.integers(0, 2**40), max_size=8),
        ),
        min_size=1,
        max_size=5,
    )
)
def test_raw_eku_decoder_matches_cryptography(arcs: list[tuple[int, int, list[int]]]) -> None:
    oids = [".".join(map(str, [a, b, *rest])) for a, b, rest in arcs]
    value = x509.ExtendedKeyUsage([x509.ObjectIdentifier(o) for o in oids]).public_bytes()
    assert certs._raw_eku(value) == frozenset(oids)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_raw_der_reader_never_crashes(data: bytes) -> None:
    for fn in (certs._raw_eku, certs._raw_extensions):
        try:
            fn(data)
        except certs._DerError:
            pass


def _dsc_with_eku(h: Hierarchy, oids: list[str] | None) -> x509.Certificate:
    ca = certs.open_ca(h.ca)
    key = certs.load_private_key(h.ca / "ca.key", PW)
    k = ec.generate_private_key(ec.SECP256R1())
    ca_ski = ext(ca.certificate, x509.SubjectKeyIdentifier).value
    b = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "UBND xã Thử")]))
        .issuer_name(ca.certificate.subject)
        .public_key(k.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(T0)
        .not_valid_after(T0 + dt.timedelta(days=100))
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), False
        )
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False), True
        )
    )
    if oids is not None:
        b = b.add_extension(x509.ExtendedKeyUsage([x509.ObjectIdentifier(o) for o in oids]), False)
    return b.sign(key, hashes.SHA256())


def test_chain_validation_eku_policy(h: Hierarchy) -> None:
    anchors = certs.load_certificates(h.ca / "ca.crt")
    at = T0 + dt.timedelta(days=1)
    ok_cases = {
        "vaccination": ["1.3.6.1.4.1.1847.2021.1.2"],
        "dot-zero variant": ["1.3.6.1.4.1.0.1847.2021.1.2"],
        "all three, extra OID": [
            "1.3.6.1.4.1.1847.2021.1.1",
            "1.3.6.1.4.1.1847.2021.1.2",
            "1.3.6.1.4.1.1847.2021.1.3",
            "1.3.6.1.5.5.7.3.2",
        ],
        "no EKU": None,
    }
    for name, oids in ok_cases.items():
        chain = certs.validate_chain(_dsc_with_eku(h, oids), anchors=anchors, at=at, cert_type="v")
        assert len(chain) == 2, name
    test_only = _dsc_with_eku(h, ["1.3.6.1.4.1.1847.2021.1.1"])
    with pytest.raises(TrustError, match="does not allow type 'v'"):
        certs.validate_chain(test_only, anchors=anchors, at=at, cert_type="v")
    certs.validate_chain(test_only, anchors=anchors, at=at, cert_type="t")
    certs.validate_chain(test_only, anchors=anchors, at=at, cert_type=None)
    unrelated = _dsc_with_eku(h, ["1.3.6.1.5.5.7.3.2"])
    with pytest.raises(TrustError):
        certs.validate_chain(unrelated, anchors=anchors, at=at, cert_type="v")
    # time is an input: outside the DSC's validity the chain does not validate
    with pytest.raises(TrustError):
        certs.validate_chain(
            _dsc_with_eku(h, None), anchors=anchors, at=T0 + dt.timedelta(days=200)
        )
    # a DSC is not a CA: nothing chains through it
    with pytest.raises(TrustError):
        certs.validate_chain(h.dsc(h.s1), anchors=[h.dsc(h.s2)], at=at)


def test_eku_allows_matches_hcert_rules() -> None:
    v, v0, t = (
        "1.3.6.1.4.1.1847.2021.1.2",
        "1.3.6.1.4.1.0.1847.2021.1.2",
        "1.3.6.1.4.1.1847.2021.1.1",
    )
    assert certs.eku_allows(None, "v") and certs.eku_allows(frozenset(), "r")
    assert certs.eku_allows(frozenset({v}), "v") and certs.eku_allows(frozenset({v0}), "v")
    assert not certs.eku_allows(frozenset({t}), "v")
    assert not certs.eku_allows(frozenset({"2.23.136.1.1.14.2"}), "t")


# ---------------------------------------------------------------------------- show / list


def test_describe_files(published: tuple[Hierarchy, Path]) -> None:
    h, tl = published
    ca = certs.load_certificates(h.ca / "ca.crt")
    d = certs.describe_file(tl, trust=ca, at=T0)
    assert d["type"] == "trustlist" and d["signature"]["status"] == "valid"
    assert d["sequence"] == 1 and len(d["dscs"]) == 2 and d["revoked_credentials"] == 1
    c = certs.describe_file(h.s1 / "chain.pem", at=T0)
    leaf = c["certificates"][0]
    assert leaf["kid"] == certs.kid_of(h.dsc(h.s1)).hex()
    assert leaf["eku"] == ["1.3.6.1.4.1.1847.2021.1.2"]
    assert leaf["key_type"] == "EC P-256"
    assert (
        leaf["sha256"]
        == hashlib.sha256(h.dsc(h.s1).public_bytes(serialization.Encoding.DER)).hexdigest()
    )
    assert leaf["chain"]["status"] == "valid" and leaf["chain"]["valid_for"] == ["v"]
    assert "serialNumber=30760" in leaf["subject"]
    crl = certs.describe_file(h.ca / "crl.pem", trust=ca)
    assert crl["type"] == "crl" and crl["signature"]["status"] == "valid"


# ---------------------------------------------------------------------------- CLI


def cli(args: list[str], env: dict[str, str] | None = None, input: str | None = None):  # type: ignore[no-untyped-def]
    base = {"VAXQR_PASSWORD": PW.decode(), "COLUMNS": "200", "NO_COLOR": "1"}
    if env is not None:
        base.update(env)
    return CliRunner().invoke(certs_app, args, env=base, input=input)


def test_cli_full_flow(tmp_path: Path) -> None:
    ca, s = str(tmp_path / "ca"), str(tmp_path / "s")
    r = cli(["init", ca, "--name", "Kiên Giang", "--province", "091"])
    assert r.exit_code == 0, r.output
    assert r.stdout == "" and "created" in r.stderr
    r = cli(["issue", ca, "--commune-code", "31078", "--name", "UBND xã Dương Tơ", "--out", s])
    assert r.exit_code == 0, r.output
    assert "issued" in r.stderr
    for name in ("signer.crt", "signer.key", "chain.pem"):
        assert (tmp_path / "s" / name).exists()
    r = cli(["list", ca, "--json"])
    assert r.exit_code == 0
    doc = json.loads(r.stdout)
    assert doc["version"] == 1 and doc["certificates"][0]["status"] == "valid"
    r = cli(["show", f"{s}/signer.crt", "--json"])
    assert r.exit_code == 0
    shown = json.loads(r.stdout)["certificates"][0]
    assert shown["kid"] == certs.kid_of(certs.load_certificates(f"{s}/signer.crt")[0]).hex()
    r = cli(["show", f"{s}/chain.pem"])
    assert r.exit_code == 0 and "kid" in r.stdout and "SHA-256" in r.stdout
    r = cli(["trustlist", ca, "--out", str(tmp_path / "tl.json")])
    assert r.exit_code == 0, r.output
    r = cli(["show", str(tmp_path / "tl.json"), "--trust", f"{ca}/ca.crt"])
    assert r.exit_code == 0 and "valid" in r.stdout
    r = cli(["revoke-credential", ca, "URN:UVCI:01:VN:091/31078/000001#A"])
    assert r.exit_code == 0 and "revoked" in r.stderr
    r = cli(["revoke", ca, s, "--reason", "superseded"])
    assert r.exit_code == 0, r.output
    r = cli(["list", ca])
    assert r.exit_code == 0 and "revoked" in r.stdout
    r = cli(["trustlist", ca, "--out", "-"])
    assert r.exit_code == 0, r.output
    tl = json.loads(r.stdout)
    assert tl["sequence"] == 2 and tl["dscs"] == [] and len(tl["revoked_credentials"]) == 1
    r = cli(["show", f"{ca}/crl.pem", "--json"])
    assert json.loads(r.stdout)["revoked"][0]["reason"] == "superseded"


def test_cli_errors_and_exit_codes(tmp_path: Path) -> None:
    ca = str(tmp_path / "ca")
    r = cli(["init", ca, "--name", "Kiên Giang", "--province", "91"])
    assert r.exit_code == 2 and "error:" in r.stderr and "province code" in r.stderr
    r = cli(["init", ca, "--name", "Kiên Giang", "--province", "091"])
    assert r.exit_code == 0
    r = cli(["init", ca, "--name", "Kiên Giang", "--province", "091"])
    assert r.exit_code == 3 and "already exists" in r.stderr and "--force" in r.stderr
    wrong = tmp_path / "wrong.pass"
    wrong.write_text("not the password\n")
    r = cli(
        [
            "issue",
            ca,
            "--commune-code",
            "31078",
            "--name",
            "UBND xã A",
            "--out",
            str(tmp_path / "s"),
            "--ca-password-file",
            str(wrong),
        ]
    )
    assert r.exit_code == 3 and "wrong password" in r.stderr
    assert "not the password" not in r.output
    assert not (tmp_path / "s").exists()
    # no password source and no terminal: a usage error, nothing written
    r = cli(
        [
            "issue",
            ca,
            "--commune-code",
            "31078",
            "--name",
            "UBND xã A",
            "--out",
            str(tmp_path / "s"),
        ],
        env={"VAXQR_PASSWORD": ""},
    )
    assert r.exit_code == 2 and "password" in r.stderr
    assert not (tmp_path / "s").exists()
    r = cli(
        [
            "init",
            str(tmp_path / "x"),
            "--name",
            "A",
            "--province",
            "001",
            "--insecure-no-password",
            "--password-file",
            str(wrong),
        ]
    )
    assert r.exit_code == 2
    r = cli(["init", str(tmp_path / "x"), "--name", "A", "--province", "001", "--password", "x"])
    assert r.exit_code == 2  # there is no --password option
    r = cli(["revoke", ca, "0123", "--reason", "whim"])
    assert r.exit_code == 2 and "unknown reason" in r.stderr
    r = cli(["revoke-credential", ca, "not-a-uvci"])
    assert r.exit_code == 2
    r = cli(["list", str(tmp_path / "nope")])
    assert r.exit_code == 3 and "not a vaxqr CA directory" in r.stderr
    r = cli(["show", str(tmp_path / "nope.pem")])
    assert r.exit_code == 3


def test_cli_password_file_and_insecure(tmp_path: Path) -> None:
    pf = tmp_path / "pw"
    pf.write_bytes(PW + b"\r\n")
    ca = tmp_path / "ca"
    r = cli(
        ["init", str(ca), "--name", "Kiên Giang", "--province", "091", "--password-file", str(pf)],
        env={"VAXQR_PASSWORD": ""},
    )
    assert r.exit_code == 0, r.output
    assert certs.load_private_key(ca / "ca.key", PW)
    r = cli(
        [
            "issue",
            str(ca),
            "--commune-code",
            "31078",
            "--name",
            "UBND xã A",
            "--out",
            str(tmp_path / "s"),
            "--ca-password-file",
            str(pf),
            "--insecure-no-password",
        ],
        env={"VAXQR_PASSWORD": ""},
    )
    assert r.exit_code == 0, r.output
    assert "NOT encrypted" in r.stderr
    assert certs.load_private_key(tmp_path / "s" / "signer.key", None)
    r = cli(
        ["trustlist", str(ca), "--out", str(tmp_path / "tl.json"), "--password-file", "-"],
        env={"VAXQR_PASSWORD": ""},
        input=PW.decode() + "\n",
    )
    assert r.exit_code == 0, r.output


def test_cli_escapes_untrusted_text(tmp_path: Path) -> None:
    ca = str(tmp_path / "ca")
    assert cli(["init", ca, "--name", "Kiên Giang", "--province", "091"]).exit_code == 0
    r = cli(
        [
            "issue",
            ca,
            "--commune-code",
            "31078",
            "--name",
            "UBND xã [bold]X[/bold]",
            "--out",
            str(tmp_path / "s"),
        ]
    )
    assert r.exit_code == 0, r.output
    assert "[bold]X[/bold]" in r.stderr
    r = cli(["show", str(tmp_path / "s" / "signer.crt")])
    assert "[bold]X[/bold]" in r.stdout


def test_cli_help_has_examples_and_exit_codes() -> None:
    for cmd in ("init", "issue", "show", "list", "revoke", "revoke-credential", "trustlist"):
        r = cli([cmd, "--help"])
        assert r.exit_code == 0
        assert "Examples" in r.stdout and "Exit codes" in r.stdout, cmd


def test_cli_show_reports_bad_signature(published: tuple[Hierarchy, Path], tmp_path: Path) -> None:
    _, tl = published
    other = make_hierarchy(tmp_path / "o")
    r = cli(["show", str(tl), "--trust", str(other.ca / "ca.crt"), "--json"])
    assert r.exit_code == 1
    assert json.loads(r.stdout)["signature"]["status"] == "invalid"


# ---------------------------------------------------------------------------- keys/examples


@pytest.mark.skipif(not (EXAMPLES / "trustlist.json").exists(), reason="run make_example_keys.py")
def test_bundled_demo_hierarchy(tmp_path: Path) -> None:
    ca = certs.load_certificates(EXAMPLES / "ca" / "ca.crt")[0]
    assert certs.is_demo_certificate(ca) and "091" in certs.name_str(ca.subject)
    assert ca.not_valid_after_utc.year == 2031
    for code in ("30760", "31078"):
        s = certs.load_signer(EXAMPLES / "communes" / code, b"vaxqr-demo")
        assert s.is_demo and any("DEMO ONLY" in w for w in s.warnings)
        assert s.province_code == "091" and s.commune_code == code
        assert s.certificate.not_valid_after_utc.year == 2031
        if HAVE_OPENSSL:
            r = openssl(
                "verify",
                "-CAfile",
                str(EXAMPLES / "ca" / "ca.crt"),
                str(EXAMPLES / "communes" / code / "signer.crt"),
            )
            assert r.returncode == 0, r.stderr
    store = certs.TrustStore.from_paths(
        [EXAMPLES / "ca" / "ca.crt", EXAMPLES / "trustlist.json"],
        at=dt.datetime(2026, 1, 1, tzinfo=UTC),
        state_file=tmp_path / "state.json",
    )
    assert len(store.signers) == 2 and store.warnings == ()
    assert (EXAMPLES / "README.md").read_text().count("vaxqr-demo") >= 1
    assert sum(f.stat().st_size for f in EXAMPLES.rglob("*") if f.is_file()) < 64_000


def test_cli_show_never_prints_control_characters(tmp_path: Path) -> None:
    evil = _self_signed([])
    k = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "UBND \x1b[31mxã\u202e [b]A[/b]")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(evil.subject)
        .public_key(k.public_key())
        .serial_number(9)
        .not_valid_before(T0)
        .not_valid_after(T0 + dt.timedelta(days=2))
        .sign(k, hashes.SHA256())
    )
    f = tmp_path / "evil.pem"
    f.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    r = cli(["show", str(f)])
    assert r.exit_code == 0
    assert "\x1b" not in r.stdout and "\u202e" not in r.stdout
    assert "[b]A[/b]" in r.stdout


def test_has_revocation_data(published: tuple[Hierarchy, Path]) -> None:
    h, tl = published
    assert _load(h, tl).has_revocation_data
    assert not certs.TrustStore.from_paths([h.s1 / "signer.crt"], at=T0).has_revocation_data
    with_crl = certs.TrustStore.from_paths([h.ca / "ca.crt", h.ca / "crl.pem"], at=T0)
    assert with_crl.has_revocation_data


def test_read_password_for_other_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import typer

    from vaxqr import cli_certs

    monkeypatch.setenv("VAXQR_PASSWORD", "from-the-env")
    assert cli_certs.read_password(None, confirm=False, what="key") == b"from-the-env"
    pf = tmp_path / "pw"
    pf.write_text("from-the-file\n")
    assert cli_certs.read_password(pf, confirm=False, what="key") == b"from-the-file"
    plain = tmp_path / "plain.key"
    plain.write_bytes(certs.key_to_pem(certs.generate_key(), None))
    assert cli_certs.read_password(None, confirm=False, what="key", key=plain) is None
    monkeypatch.delenv("VAXQR_PASSWORD")
    with pytest.raises(typer.Exit) as exc:
        cli_certs.read_password(None, confirm=False, what="key")
    assert exc.value.exit_code == 2
