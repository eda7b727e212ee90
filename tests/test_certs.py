"""Tests for the province side: vaxqr.certs, vaxqr.cadir, vaxqr.revocation, vaxqr.keys."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from vaxqr import cadir, certinfo, certs, keys, revocation, trust, trustlist
from vaxqr.errors import KeyCertError, StorageError, ValidationError

from hierarchy import (
    AT_T0,
    CA_DAYS,
    EXAMPLES,
    HAVE_OPENSSL,
    OTHER_PW,
    PW,
    T0,
    UTC,
    Hierarchy,
    ext,
    make_hierarchy,
    openssl,
)


@pytest.fixture
def h(tmp_path: Path) -> Hierarchy:
    return make_hierarchy(tmp_path)


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
    assert certinfo.kid_of(cert) == hashlib.sha256(der).digest()[:8]
    meta = json.loads((h.s1 / "signer.json").read_text())
    assert meta["kid"] == hashlib.sha256(der).digest()[:8].hex()


def test_a_ca_lives_five_years_unless_told(tmp_path) -> None:
    certs.init_ca(tmp_path / "ca", name="Kiên Giang", province_code="091", password=PW, now=T0)
    ca = certinfo.load_certificates(tmp_path / "ca" / "ca.crt")[0]
    years = (ca.not_valid_after_utc - ca.not_valid_before_utc).days / 365.25
    assert 4.9 < years < 5.1


def test_ca_profile(h: Hierarchy) -> None:
    ca = certinfo.load_certificates(h.ca / "ca.crt")[0]
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
    assert (ca.not_valid_after_utc - ca.not_valid_before_utc).days == CA_DAYS  # as asked
    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey)
    assert ca.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]


def test_dsc_profile(h: Hierarchy) -> None:
    ca = certinfo.load_certificates(h.ca / "ca.crt")[0]
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
    chain = certinfo.load_certificates(h.s2 / "chain.pem")
    assert [certinfo.fingerprint(c) for c in chain] == [
        certinfo.fingerprint(dsc),
        certinfo.fingerprint(ca),
    ]
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
    rc = certinfo.load_certificates(root / "ca.crt")[0]
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
    assert [r.kind for r in cadir.list_issued(root)] == ["ca"]
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
    assert len(certinfo.load_certificates(s / "chain.pem")) == 3
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
    store = trust.TrustStore.from_paths(
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
    assert keys.cose_alg_for(key) == "PS256"
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
    store = trust.TrustStore.from_paths(
        [ca / "ca.crt", tmp_path / "tl.json"], at=certinfo._utcnow(), state_file=tmp_path / "st"
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
        assert keys.key_is_encrypted(key)
        with pytest.raises(TypeError):
            serialization.load_pem_private_key(data, None)
        with pytest.raises(KeyCertError, match="no password"):
            keys.load_private_key(key, None)
        assert keys.load_private_key(key, PW)


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
        revocation.revoke_certificate(h.ca, str(h.s1), password=OTHER_PW)
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
    assert len(cadir.list_issued(h.ca)) == 2
    certs.build_trustlist(h.ca, password=PW, out=h.tmp / "tl.json")
    with pytest.raises(StorageError, match="already exists"):
        certs.build_trustlist(h.ca, password=PW, out=h.tmp / "tl.json")
    assert cadir.open_ca(h.ca).trustlist_sequence == 1
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
    assert cadir.list_issued(h.ca) == ()
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


def test_force_replaces_only_a_directory_of_the_same_kind(h: Hierarchy) -> None:
    """`certs issue --force --out <the CA directory>` deleted the CA's key, state and CRL."""
    before = {n: (h.ca / n).read_bytes() for n in ("ca.key", "state.json", "crl.pem")}
    with pytest.raises(StorageError, match="is a CA directory"):
        certs.issue_signer(h.ca, ca_password=PW, commune_code="31300", name="UBND xã X",
                           out_dir=h.ca, password=PW, force=True)
    with pytest.raises(StorageError, match="is a commune signer directory"):
        certs.init_ca(h.s1, name="Kiên Giang", province_code="091", password=PW, force=True)
    assert {n: (h.ca / n).read_bytes() for n in before} == before
    assert (h.s1 / "signer.key").exists() and len(cadir.list_issued(h.ca)) == 2
    assert hidden_leftovers(h.tmp) == []


def test_two_runs_aimed_at_one_directory_never_delete_a_key(
    h: Hierarchy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two `certs issue --out X` at once: the second to finish found X made by the first
    and replaced it (its key deleted, both recorded as issued). Now it fails and takes back
    its record; the first run's key and certificate stay."""
    target = tmp_path / "race"
    real = certs._prepare_dir
    raced = []

    def meanwhile(where: Path, files: object, *, force: bool, kind: str) -> Path:
        tmp = real(where, files, force=force, kind=kind)  # type: ignore[arg-type]
        if not raced:  # the other run completes between this one's checks and its commit
            raced.append(None)
            raced[0] = certs.issue_signer(h.ca, ca_password=PW, commune_code="31101",
                                          name="UBND xã Một", out_dir=target, password=PW)
        return tmp

    monkeypatch.setattr(certs, "_prepare_dir", meanwhile)
    with pytest.raises(StorageError, match="already exists"):
        certs.issue_signer(h.ca, ca_password=PW, commune_code="31102", name="UBND xã Hai",
                           out_dir=target, password=PW)
    signer = certs.load_signer(target, PW)
    assert raced[0] is not None and signer.certificate == raced[0].chain[0]
    assert sorted(r.code for r in cadir.list_issued(h.ca)) == ["30760", "31078", "31101"]
    assert hidden_leftovers(tmp_path) == []


def test_failure_mid_write_leaves_no_half_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"n": 0}
    real = cadir.atomic_write

    def flaky(path: object, data: object, **kw: object) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise StorageError("disk full while writing (simulated)")
        real(path, data, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(cadir, "atomic_write", flaky)
    with pytest.raises(StorageError, match="disk full"):
        certs.init_ca(tmp_path / "ca", name="Kiên Giang", province_code="091", password=PW)
    assert list(tmp_path.iterdir()) == []


def test_password_rules(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="at least 8"):
        certs.init_ca(tmp_path / "ca", name="Kiên Giang", province_code="091", password=b"short")
    with pytest.raises(ValidationError, match="at least 8"):  # 7 characters, 12 bytes
        certs.init_ca(tmp_path / "ca", name="Kiên Giang", province_code="091",
                      password="mật khẩ".encode())
    info = certs.init_ca(tmp_path / "ca", name="Kiên Giang", province_code="091", password=None)
    assert any("NOT encrypted" in w for w in info.warnings)
    assert b"ENCRYPTED" not in (tmp_path / "ca" / "ca.key").read_bytes()
    assert not keys.key_is_encrypted(tmp_path / "ca" / "ca.key")


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


@pytest.mark.parametrize("code", ["003", "000", "028", "099"])
def test_unknown_province_code_is_refused(tmp_path: Path, code: str) -> None:
    """A province CA's code goes into every UVCI it signs: one of the 63 codes of ID
    numbers only (the gaps, such as 003 or Hà Tây's old 028, are no province)."""
    with pytest.raises(ValidationError, match=f"unknown province code '{code}'"):
        certs.init_ca(tmp_path / "a", name="Kiên Giang", province_code=code, password=PW)
    assert not (tmp_path / "a").exists()
    info = certs.init_ca(tmp_path / "ag", name="An Giang", province_code="089", password=PW)
    assert info.code == "089"


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
    assert s.kid == certinfo.kid_of(s.certificate)
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
    rev = revocation.revoke_certificate(
        h.ca,
        str(h.s1 / "signer.crt"),
        password=PW,
        reason="key-compromise",
        now=T0 + dt.timedelta(days=1),
    )
    assert rev.record.serial == dsc.serial_number and not rev.already_revoked
    ca_cert = certinfo.load_certificates(h.ca / "ca.crt")[0]
    crl = x509.load_pem_x509_crl((h.ca / "crl.pem").read_bytes())
    assert crl.is_signature_valid(ca_cert.public_key())  # type: ignore[arg-type]
    entry = crl.get_revoked_certificate_by_serial_number(dsc.serial_number)
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == (
        x509.ReasonFlags.key_compromise
    )
    assert crl.get_revoked_certificate_by_serial_number(h.dsc(h.s2).serial_number) is None
    assert crl.next_update_utc is not None and crl.next_update_utc > crl.last_update_utc
    again = revocation.revoke_certificate(h.ca, format(dsc.serial_number, "x"), password=PW)
    assert again.already_revoked and again.record.reason == "key-compromise"

    statuses = {r.code: r.status(T0 + dt.timedelta(days=2)) for r in cadir.list_issued(h.ca)}
    assert statuses == {"30760": "revoked", "31078": "valid"}

    second = certs.build_trustlist(
        h.ca, password=PW, out=h.tmp / "tl2.json", now=T0 + dt.timedelta(days=2)
    )
    kid = certinfo.kid_of(dsc)
    assert second.trustlist.sequence == first.trustlist.sequence + 1
    assert kid not in {e.kid for e in second.trustlist.dscs}
    raw = json.loads((h.tmp / "tl2.json").read_text())
    assert base64.b64encode(kid).decode() not in {e["kid"] for e in raw["dscs"]}
    assert raw["revoked_dscs"][0]["fingerprint"] == certinfo.fingerprint(dsc)
    store = trust.TrustStore.from_paths(
        [h.ca / "ca.crt", h.tmp / "tl2.json"],
        at=T0 + dt.timedelta(days=2),
        state_file=h.tmp / "state.json",
    )
    assert store.signers_for_kid(kid) == ()
    assert store.is_kid_revoked(kid) and store.is_dsc_revoked(dsc)
    assert len(store.signers_for_kid(certinfo.kid_of(h.dsc(h.s2)))) == 1
    # the same DSC given directly is still marked revoked
    store2 = trust.TrustStore.from_paths(
        [h.ca / "ca.crt", h.tmp / "tl2.json", h.s1 / "signer.crt"],
        at=T0 + dt.timedelta(days=2),
        state_file=h.tmp / "state.json",
    )
    (signer,) = store2.signers_for_kid(kid)
    assert signer.revoked
    # and a CRL given to the store marks it too
    store3 = trust.TrustStore.from_paths(
        [h.ca / "ca.crt", h.s1 / "signer.crt", h.ca / "crl.pem"], at=T0 + dt.timedelta(days=2)
    )
    assert store3.signers_for_kid(kid)[0].revoked


def test_revoke_unknown_certificate(h: Hierarchy, tmp_path: Path) -> None:
    other = make_hierarchy(tmp_path / "other")
    with pytest.raises(KeyCertError, match="not issued by"):
        revocation.revoke_certificate(h.ca, str(other.s1), password=PW)
    with pytest.raises(KeyCertError, match="matches"):
        revocation.revoke_certificate(h.ca, "deadbeef", password=PW)
    with pytest.raises(ValidationError, match="reason"):
        revocation.revoke_certificate(h.ca, str(h.s1), password=PW, reason="because")


def _crl(ca_dir: Path) -> x509.CertificateRevocationList:
    return x509.load_pem_x509_crl((ca_dir / "crl.pem").read_bytes())


def _crl_number(ca_dir: Path) -> int:
    return int(_crl(ca_dir).extensions.get_extension_for_class(x509.CRLNumber).value.crl_number)


def test_a_revocation_is_never_recorded_without_its_crl(
    h: Hierarchy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The state was saved before the CRL: a failed CRL write left the DSC 'revoked' in
    the state but not on the CRL, and a retry said 'already revoked' and fixed nothing."""
    serial = h.dsc(h.s1).serial_number
    first = _crl_number(h.ca)
    real = revocation._write_crl

    def full(directory: Path, crl: x509.CertificateRevocationList) -> None:
        raise StorageError("disk full while writing (simulated)")

    monkeypatch.setattr(revocation, "_write_crl", full)
    with pytest.raises(StorageError, match="disk full"):
        revocation.revoke_certificate(h.ca, "30760", password=PW)
    assert all(r.revoked_at is None for r in cadir.list_issued(h.ca))  # nothing recorded
    monkeypatch.setattr(revocation, "_write_crl", real)
    pre = (h.ca / "crl.pem").read_bytes()
    res = revocation.revoke_certificate(h.ca, "30760", password=PW)  # by code: still found
    assert not res.already_revoked
    assert [r.serial_number for r in _crl(h.ca)] == [serial]
    second = _crl_number(h.ca)
    assert second > first
    # a CRL without the entry (an older one put back): revoking again says "already
    # revoked" and puts the entry back, on a CRL with a new, higher number
    (h.ca / "crl.pem").write_bytes(pre)
    again = revocation.revoke_certificate(h.ca, str(h.s1), password=PW)
    assert again.already_revoked and [r.serial_number for r in _crl(h.ca)] == [serial]
    assert _crl_number(h.ca) > second


def test_a_root_refreshes_its_crl(tmp_path: Path) -> None:
    root = tmp_path / "root"
    certs.init_ca(root, name="Bộ Y tế", province_code=None, root=True, password=PW, now=T0)
    before = _crl(root)
    later = T0 + dt.timedelta(days=29)
    crl, warnings = revocation.refresh_crl(root, password=PW, days=30, now=later)
    assert warnings == ()
    assert crl.next_update_utc == later + dt.timedelta(days=30)
    assert _crl(root).next_update_utc == crl.next_update_utc
    assert _crl_number(root) > before.extensions.get_extension_for_class(
        x509.CRLNumber).value.crl_number
    assert crl.is_signature_valid(certinfo.load_certificates(root / "ca.crt")[0].public_key())
    with pytest.raises(ValidationError, match="1 to 366"):
        revocation.refresh_crl(root, password=PW, days=0)
    with pytest.raises(KeyCertError):
        revocation.refresh_crl(root, password=b"wrong password!!")
    (root / "ca.key").chmod(0o644)  # the key's warnings reach the caller, as revoke's do
    assert any("ca.key" in w for w in revocation.refresh_crl(root, password=PW)[1])
    (root / "ca.key").chmod(0o600)


def test_credential_revocation_hash_dcc_style(h: Hierarchy) -> None:
    uvci = "URN:UVCI:01:VN:091/31078/000123#H"
    expected = hashlib.sha256(uvci.encode("utf-8")).digest()[:16]
    assert trustlist.credential_revocation_hash(uvci) == expected
    assert trustlist.credential_revocation_hash("  urn:uvci:01:vn:091/31078/000123#h\n") == expected
    res = revocation.revoke_credentials(h.ca, [uvci.lower()])
    assert [c.hash for c in res.added] == [expected]
    assert revocation.revoke_credentials(h.ca, [uvci]).already == (uvci,)
    with pytest.raises(ValidationError, match="not a UVCI"):
        revocation.revoke_credentials(h.ca, ["hello"])
    certs.build_trustlist(h.ca, password=PW, out=h.tmp / "tl.json")
    raw = json.loads((h.tmp / "tl.json").read_text())
    assert raw["revoked_credentials"] == [
        {"hash": base64.b64encode(expected).decode(), "type": "UCI"}
    ]
    store = trust.TrustStore.from_paths(
        [h.ca / "ca.crt", h.tmp / "tl.json"], at=certinfo._utcnow(), state_file=h.tmp / "st.json"
    )
    assert store.is_credential_revoked(uvci)
    assert not store.is_credential_revoked("URN:UVCI:01:VN:091/31078/000124#F")


def test_credential_revocation_refuses_a_wrong_check_character(h: Hierarchy) -> None:
    """A typo in a UVCI (here its check character: the right one is U) would record the
    hash of a credential that does not exist, say "revoked", and leave the real one valid.
    The Luhn mod 38 check refuses it, and nothing of the call is recorded."""
    good = "URN:UVCI:01:VN:091/30760/STK91LB7DT93#U"
    typo = "URN:UVCI:01:VN:091/30760/STK91LB7DT93#X"
    before = (h.ca / "state.json").read_bytes()
    for given in ([typo], [good, typo], [typo.lower()]):
        with pytest.raises(ValidationError, match="check character") as info:
            revocation.revoke_credentials(h.ca, given)
        assert "typo" in str(info.value) and info.value.hint
        # where the UVCI is to be read: verify's human verdict does not show it, --json does
        assert "vaxqr verify --json" in info.value.hint and "summary.uvci" in info.value.hint
    assert (h.ca / "state.json").read_bytes() == before
    res = revocation.revoke_credentials(h.ca, [good])
    assert [c.uvci for c in res.added] == [good] and not res.warnings
    no_check = revocation.revoke_credentials(h.ca, ["URN:UVCI:01:VN:091/30760/OTHER1"])
    assert len(no_check.added) == 1 and "no '#' check character" in no_check.warnings[0]


# ---------------------------------------------------------------------------- keys/examples


@pytest.mark.skipif(not (EXAMPLES / "trustlist.json").exists(), reason="run make_example_keys.py")
def test_bundled_demo_hierarchy(tmp_path: Path) -> None:
    ca = certinfo.load_certificates(EXAMPLES / "ca" / "ca.crt")[0]
    assert certinfo.is_demo_certificate(ca) and "091" in certinfo.name_str(ca.subject)
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
    store = trust.TrustStore.from_paths(
        [EXAMPLES / "ca" / "ca.crt", EXAMPLES / "trustlist.json"],
        at=dt.datetime(2026, 1, 1, tzinfo=UTC),
        state_file=tmp_path / "state.json",
    )
    assert len(store.signers) == 2 and store.warnings == ()
    assert (EXAMPLES / "README.md").read_text().count("vaxqr-demo") >= 1
    shipped = [f for f in EXAMPLES.rglob("*") if f.is_file() and "ledger.sqlite" not in f.name]
    assert sum(f.stat().st_size for f in shipped) < 64_000  # ledgers are local, not shipped


def test_a_province_ca_under_an_ending_root_is_refused(tmp_path: Path) -> None:
    """SPEC §3: a CA is valid 4 to 10 years. Under a root with little time left, the
    province CA was cut to the root's end (366 days) with only a warning; under an expired
    root, an internal error."""
    root = tmp_path / "root"
    certs.init_ca(root, name="Bộ Y tế", province_code=None, root=True, password=PW,
                  now=T0, not_before=T0 - dt.timedelta(days=3 * 365), days=1461)
    with pytest.raises(ValidationError, match="less than 4 years"):
        certs.init_ca(tmp_path / "p", name="Kiên Giang", province_code="091", password=PW,
                      parent_dir=root, parent_password=PW, now=T0)
    with pytest.raises(ValidationError, match="not valid on"):
        certs.init_ca(tmp_path / "p", name="Kiên Giang", province_code="091", password=PW,
                      parent_dir=root, parent_password=PW, now=T0 + dt.timedelta(days=800))
    assert not (tmp_path / "p").exists() and cadir.list_issued(root) == ()


def test_force_never_makes_a_root_into_a_province_ca(tmp_path: Path) -> None:
    """`certs init ROOT --parent ROOT --force` replaced the national root by a province CA
    it had just signed, deleting the root's key."""
    root = tmp_path / "root"
    certs.init_ca(root, name="Bộ Y tế", province_code=None, root=True, password=PW, now=T0)
    key = (root / "ca.key").read_bytes()
    with pytest.raises(ValidationError, match="parent root CA itself"):
        certs.init_ca(root, name="Kiên Giang", province_code="091", password=PW,
                      parent_dir=root, parent_password=PW, force=True, now=T0)
    prov = tmp_path / "prov"
    certs.init_ca(prov, name="Kiên Giang", province_code="091", password=PW, now=T0)
    with pytest.raises(StorageError, match="is a root CA"):
        certs.init_ca(root, name="Kiên Giang", province_code="091", password=PW, force=True)
    with pytest.raises(StorageError, match="is a province CA"):
        certs.init_ca(prov, name="Bộ Y tế", province_code=None, root=True, password=PW,
                      force=True)
    assert (root / "ca.key").read_bytes() == key and cadir.open_ca(root).role == "root"


def test_force_into_an_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "e1").mkdir()
    certs.init_ca(tmp_path / "e1", name="Kiên Giang", province_code="091", password=PW,
                  force=True)
    (tmp_path / "e2").mkdir()
    certs.issue_signer(tmp_path / "e1", ca_password=PW, commune_code="31078",
                       name="UBND xã Dương Tơ", out_dir=tmp_path / "e2", password=PW, force=True)
    assert (tmp_path / "e2" / "signer.key").exists() and hidden_leftovers(tmp_path) == []


@pytest.mark.parametrize("damage", ["corrupt", "missing"])
def test_force_never_replaces_a_root_whose_state_is_damaged(tmp_path: Path, damage: str) -> None:
    root = tmp_path / "root"
    certs.init_ca(root, name="Bộ Y tế", province_code=None, root=True, password=PW, now=T0)
    key = (root / "ca.key").read_bytes()
    if damage == "corrupt":
        (root / "state.json").write_text("{corrupt")
    else:
        (root / "state.json").unlink()
    with pytest.raises(StorageError, match="is a root CA"):  # told by its certificate
        certs.init_ca(root, name="Kiên Giang", province_code="091", password=PW, force=True)
    (root / "ca.crt").write_text("not a certificate")
    with pytest.raises(StorageError, match="cannot be read"):
        certs.init_ca(root, name="Kiên Giang", province_code="091", password=PW, force=True)
    assert (root / "ca.key").read_bytes() == key


def _office_ledger(signer: Path, tmp: Path) -> None:
    """Put an office ledger into ``signer`` as a crash leaves it: its last record still in
    ``ledger.sqlite-wal`` (copied while the connection that wrote it was open)."""
    import shutil
    import sqlite3

    work = tmp / "ledger-work"
    work.mkdir()
    conn = sqlite3.connect(work / "ledger.sqlite")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("CREATE TABLE citizens (uvci TEXT)")
    conn.execute("INSERT INTO citizens VALUES ('URN:UVCI:01:VN:091/31078/A#B')")
    conn.commit()
    for name in ("ledger.sqlite", "ledger.sqlite-wal"):
        shutil.copyfile(work / name, signer / name)
    conn.close()


def _ledger_rows(signer: Path) -> list[tuple[str]]:
    import sqlite3

    conn = sqlite3.connect(signer / "ledger.sqlite")
    try:
        return conn.execute("SELECT uvci FROM citizens").fetchall()
    finally:
        conn.close()


def test_renewing_a_signer_in_place_keeps_its_office_ledger(h: Hierarchy) -> None:
    """`certs issue --force` into a commune's signer directory (renewing its certificate, as
    "already exists; use --force to replace it" told) deleted its ledger.sqlite: the office's
    citizen register and single issues, so the next batch signed its citizens again."""
    _office_ledger(h.s2, h.tmp)
    old_key = (h.s2 / "signer.key").read_bytes()
    with pytest.raises(StorageError, match="already exists") as info:
        certs.issue_signer(h.ca, ca_password=PW, commune_code="31078", name="UBND xã Dương Tơ",
                           out_dir=h.s2, password=PW, now=T0)
    assert "ledger.sqlite" in (info.value.hint or "")  # the hint says --force keeps it
    res = certs.issue_signer(h.ca, ca_password=PW, commune_code="31078",
                             name="UBND xã Dương Tơ", out_dir=h.s2, password=PW, force=True,
                             now=T0)
    assert (h.s2 / "signer.key").read_bytes() != old_key
    assert res.kept == (h.s2 / "ledger.sqlite", h.s2 / "ledger.sqlite-wal", h.s2 / "trust")
    assert _ledger_rows(h.s2) == [("URN:UVCI:01:VN:091/31078/A#B",)]  # the WAL's record too
    assert hidden_leftovers(h.tmp) == []



def test_renewing_a_signer_in_place_keeps_its_trust_folder(h: Hierarchy) -> None:
    """The renewal kept ledger.sqlite but deleted SIGNER/trust/ with the old directory: the
    province's trust list and CRLs the README has the clerk put there, by which every
    `vaxqr issue` knows a revocation; the next issue then signed knowing none."""
    _office_ledger(h.s2, h.tmp)
    (h.s2 / "trust").mkdir(exist_ok=True)
    (h.s2 / "trust" / "crl.pem").write_bytes((h.ca / "crl.pem").read_bytes())
    res = certs.issue_signer(h.ca, ca_password=PW, commune_code="31078",
                             name="UBND xã Dương Tơ", out_dir=h.s2, password=PW, force=True,
                             now=T0)
    assert h.s2 / "trust" in res.kept
    assert (h.s2 / "trust" / "crl.pem").read_bytes() == (h.ca / "crl.pem").read_bytes()
    assert _ledger_rows(h.s2) == [("URN:UVCI:01:VN:091/31078/A#B",)]
    assert hidden_leftovers(h.tmp) == []

def test_renewing_a_signer_without_a_trust_folder_gives_it_the_cas_crl(h: Hierarchy) -> None:
    """A new signer directory gets the CA's current CRL in trust/; a renewal keeps the
    trust/ it has. One that had none (made by an older vaxqr, or by hand) got none either:
    "trust" was among the names a renewal keeps, so the CA's CRL was not written, and nothing
    was there to keep. The office went on signing knowing no revocation."""
    import shutil

    _office_ledger(h.s2, h.tmp)
    shutil.rmtree(h.s2 / "trust")
    res = certs.issue_signer(h.ca, ca_password=PW, commune_code="31078",
                             name="UBND xã Dương Tơ", out_dir=h.s2, password=PW, force=True,
                             now=T0)
    assert (h.s2 / "trust" / "crl.pem").read_bytes() == (h.ca / "crl.pem").read_bytes()
    assert h.s2 / "trust" / "crl.pem" in res.files
    assert res.kept == (h.s2 / "ledger.sqlite", h.s2 / "ledger.sqlite-wal")  # not trust/
    assert _ledger_rows(h.s2) == [("URN:UVCI:01:VN:091/31078/A#B",)]
    assert hidden_leftovers(h.tmp) == []


def test_a_trust_folder_made_during_a_renewal_is_kept(h: Hierarchy, monkeypatch) -> None:
    """A renewal of a directory without trust/ prepares the new one with the CA's CRL in
    trust/. A trust/ the clerk put in the old directory meanwhile (before the key work ended)
    is the office's own, and wins: the move of it onto the prepared trust/ failed
    (rename(2) onto a directory that is not empty), and the renewal with it, saying the
    directory "already exists (made by another run meanwhile?)"."""
    import shutil

    _office_ledger(h.s2, h.tmp)
    shutil.rmtree(h.s2 / "trust")
    real = certs._prepare_dir

    def prepare(target: Path, *a: object, **k: object) -> Path:
        tmp = real(target, *a, **k)
        (h.s2 / "trust").mkdir()
        (h.s2 / "trust" / "trustlist.json").write_text("the province's list")
        return tmp

    monkeypatch.setattr(certs, "_prepare_dir", prepare)
    res = certs.issue_signer(h.ca, ca_password=PW, commune_code="31078",
                             name="UBND xã Dương Tơ", out_dir=h.s2, password=PW, force=True,
                             now=T0)
    assert sorted(os.listdir(h.s2 / "trust")) == ["trustlist.json"]
    assert (h.s2 / "trust" / "trustlist.json").read_text() == "the province's list"
    assert _ledger_rows(h.s2) == [("URN:UVCI:01:VN:091/31078/A#B",)]
    assert res.record.certificate == h.dsc(h.s2)
    assert hidden_leftovers(h.tmp) == []


def test_a_ledger_file_made_during_a_renewal_is_kept(h: Hierarchy, monkeypatch) -> None:
    """The ledger files to keep were those present when the renewal began, before the key
    work: a ledger.sqlite-wal that a `vaxqr issue` made meanwhile (it opens the register)
    was deleted with the old directory, and its records with it."""
    import shutil

    _office_ledger(h.s2, h.tmp)
    wal = (h.s2 / "ledger.sqlite-wal").read_bytes()
    (h.s2 / "ledger.sqlite-wal").rename(h.tmp / "wal-later")
    real = certs._prepare_dir

    def meanwhile(*args, **kw):  # the WAL appears after the check, before the commit
        shutil.copyfile(h.tmp / "wal-later", h.s2 / "ledger.sqlite-wal")
        return real(*args, **kw)

    monkeypatch.setattr(certs, "_prepare_dir", meanwhile)
    res = certs.issue_signer(h.ca, ca_password=PW, commune_code="31078",
                             name="UBND xã Dương Tơ", out_dir=h.s2, password=PW, force=True,
                             now=T0)
    assert res.kept == (h.s2 / "ledger.sqlite", h.s2 / "ledger.sqlite-wal", h.s2 / "trust")
    assert (h.s2 / "ledger.sqlite-wal").read_bytes() == wal
    assert _ledger_rows(h.s2) == [("URN:UVCI:01:VN:091/31078/A#B",)]


def test_a_signer_directory_with_a_ledger_is_never_given_to_another_commune(
    h: Hierarchy,
) -> None:
    """The office ledger of one commune must neither be lost nor become another's."""
    _office_ledger(h.s2, h.tmp)
    before = {n: (h.s2 / n).read_bytes() for n in ("signer.key", "ledger.sqlite")}
    with pytest.raises(StorageError, match="commune 31078's office ledger"):
        certs.issue_signer(h.ca, ca_password=PW, commune_code="30760",
                           name="UBND phường Vĩnh Thanh Vân", out_dir=h.s2, password=PW,
                           force=True, now=T0)
    assert {n: (h.s2 / n).read_bytes() for n in before} == before
    assert len(cadir.list_issued(h.ca)) == 2


def test_revoke_finds_a_certificate_by_the_serial_certs_list_shows(h: Hierarchy) -> None:
    """`certs list` shows 16 hex digits of a serial (fewer on a narrow terminal) and
    `certs revoke` wanted all 40: the serial copied from the list matched nothing."""
    ca = cadir.open_ca(h.ca)
    r = ca.issued[1]
    for ref in (r.serial_hex[:16], r.serial_hex[:8].upper(), r.kid.hex()[:10],
                r.fingerprint[:12]):
        assert cadir.find_issued(ca, ref) == r, ref
    with pytest.raises(KeyCertError, match="no certificate"):
        cadir.find_issued(ca, r.serial_hex[:7])  # too short to name one certificate
    with pytest.raises(KeyCertError, match="no certificate"):
        cadir.find_issued(ca, "")


def test_an_ambiguous_revoke_lists_the_certificates_to_choose_from(h: Hierarchy) -> None:
    """A commune renewed has two valid certificates: the refusal names both, with what
    tells them apart, so the next command can name one."""
    certs.issue_signer(h.ca, ca_password=PW, commune_code="31078", name="UBND xã Dương Tơ",
                       out_dir=h.tmp / "s2-new", password=PW, now=T0 + dt.timedelta(days=30))
    both = [r for r in cadir.open_ca(h.ca).issued if r.code == "31078"]
    with pytest.raises(ValidationError, match="matches 2 certificates") as info:
        cadir.find_issued(cadir.open_ca(h.ca), "31078")
    for r in both:
        assert r.serial_hex[:16] in str(info.value) and iso_day(r.issued_at) in str(info.value)
    assert "serial" in (info.value.hint or "")


def iso_day(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%d")


def test_a_trust_list_that_cannot_be_written_uses_up_no_sequence(
    h: Hierarchy, tmp_path: Path,
) -> None:
    """`certs trustlist --out /media/usb/` (a directory) said "already exists: use --force",
    and with --force signed a list, used up its sequence number and failed to write it; a
    read-only mount failed the same way, after signing."""
    from mounts import mounted_tmpfs

    usb = tmp_path / "usb"
    usb.mkdir()
    for force in (False, True):
        with pytest.raises(StorageError, match="is a directory") as info:
            certs.build_trustlist(h.ca, password=PW, out=usb, force=force)
        assert "trustlist.json" in (info.value.hint or "")
    assert cadir.open_ca(h.ca).trustlist_sequence == 0
    ro = tmp_path / "ro"
    ro.mkdir()
    with mounted_tmpfs(ro, "ro,size=64k"), pytest.raises(StorageError, match="Read-only"):
        certs.build_trustlist(h.ca, password=PW, out=ro / "tl.json")
    assert cadir.open_ca(h.ca).trustlist_sequence == 0
    assert list(usb.iterdir()) == []


def test_the_early_trust_list_output_check_is_fileios(h: Hierarchy, tmp_path: Path) -> None:
    """check_trustlist_out repeated part of fileio.check_writable and missed the rest: a
    read-only folder was found only after the CA key's password, and a link to nothing
    (which atomic_write will not write through) passed as free."""
    from mounts import mounted_tmpfs

    ro = tmp_path / "ro"
    ro.mkdir()
    with mounted_tmpfs(ro, "ro,size=64k"), pytest.raises(StorageError, match="Read-only"):
        certs.check_trustlist_out(ro / "tl.json", force=False)
    link = tmp_path / "tl.json"
    link.symlink_to(tmp_path / "nowhere.json")
    with pytest.raises(StorageError, match="already exists"):
        certs.check_trustlist_out(link, force=False)
    certs.check_trustlist_out(tmp_path / "new" / "tl.json", force=False)  # made later
    assert not (tmp_path / "new").exists()


def test_init_over_a_ca_in_use_says_what_force_would_destroy(h: Hierarchy) -> None:
    """`certs init` run again on the province CA answered "already exists: use --force to
    replace it", and --force deletes the key every commune certificate chains to."""
    with pytest.raises(StorageError, match="issued 2 commune certificates") as info:
        certs.init_ca(h.ca, name="Kiên Giang", province_code="091", password=PW)
    hint = info.value.hint or ""
    assert "vaxqr certs issue" in hint and "every checkpoint" in hint and "--force" in hint


def test_init_without_a_province_code_names_the_option(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="--province") as info:
        certs.init_ca(tmp_path / "ca", name="Kiên Giang", province_code=None, password=PW)
    assert "None" not in str(info.value)


@pytest.mark.parametrize("command", ["init", "issue"])
def test_a_full_disk_says_certs_init_and_issue_leave_nothing_behind(
    h: Hierarchy, tmp_path: Path, command: str,
) -> None:
    """`certs init` and `certs issue` write a hidden directory and rename it: a full disk
    leaves nothing, and the hint says so."""
    from mounts import mounted_tmpfs

    from vaxqr.errors import DiskFullError

    small = tmp_path / "small"
    small.mkdir()
    state = (h.ca / "state.json").read_bytes()
    with mounted_tmpfs(small, "size=4k"):  # one page: the second file does not fit
        with pytest.raises(DiskFullError, match="disk full") as info:
            if command == "init":
                certs.init_ca(small / "ca2", name="Kiên Giang", province_code="091",
                              password=PW, now=T0)
            else:
                certs.issue_signer(h.ca, ca_password=PW, commune_code="30763",
                                   name="UBND phường Vĩnh Lạc", out_dir=small / "s3",
                                   password=PW, now=T0)
        hint = info.value.hint or ""
        assert "nothing was left behind" in hint and "what was done is kept" not in hint
        assert list(small.iterdir()) == []
    assert (h.ca / "state.json").read_bytes() == state  # no certificate recorded


def test_a_cas_damaged_crl_is_not_put_in_a_new_signer_directory(h: Hierarchy) -> None:
    """certs issue copies the CA's crl.pem into the new signer's trust/ as it was: a damaged
    one (or another CA's) made every `vaxqr issue` of the new office refuse to sign (a
    damaged CRL in SIGNER/trust/ refuses, its revocations must not be dropped). Only a CRL
    that the CA signed is copied; the others are left out, with a warning."""
    from vaxqr.signercheck import check_signer_dir

    (h.ca / "crl.pem").write_text("-----BEGIN X509 CRL-----\nnot a CRL\n-----END X509 CRL-----\n")
    s3 = h.tmp / "s3"
    res = certs.issue_signer(h.ca, ca_password=PW, commune_code="31079", name="UBND xã X",
                             out_dir=s3, password=PW, now=T0)
    assert not (s3 / "trust").exists()
    assert any("crl.pem" in w and "not put in" in w for w in res.warnings), res.warnings
    check_signer_dir(s3, at=T0 + dt.timedelta(days=1))  # it can sign (warned: no CRL)
