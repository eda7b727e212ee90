"""Tests for vaxqr.certinfo (kid, EKU, the lenient DER reader) and vaxqr.describe."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtensionOID
from hypothesis import given, settings
from hypothesis import strategies as st

from vaxqr import certinfo, describe, trust
from vaxqr.errors import KeyCertError

from hierarchy import (
    T0,
    Hierarchy,
    self_signed,
)


def test_eku_read_leniently_from_non_der_extensions() -> None:
    empty_eku = self_signed(
        [(x509.UnrecognizedExtension(ExtensionOID.EXTENDED_KEY_USAGE, b"\x30\x00"), False)]
    )
    with pytest.raises(ValueError):
        _ = empty_eku.extensions
    assert certinfo.eku_oids(empty_eku) == frozenset()
    assert certinfo.eku_allows(certinfo.eku_oids(empty_eku), "v")
    # basicConstraints with an encoded DEFAULT (FI test data) and the .0. OID forms
    bc_default = self_signed(
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
    assert certinfo.eku_oids(bc_default) == {
        "1.3.6.1.4.1.0.1847.2021.1.1",
        "1.3.6.1.4.1.0.1847.2021.1.2",
    }
    assert not certinfo.is_ca_certificate(bc_default)
    ca_true = self_signed(
        [
            (
                x509.UnrecognizedExtension(ExtensionOID.BASIC_CONSTRAINTS, b"\x30\x03\x01\x01\xff"),
                True,
            ),
            (x509.UnrecognizedExtension(ExtensionOID.EXTENDED_KEY_USAGE, b"\x30\x00"), False),
        ]
    )
    assert certinfo.is_ca_certificate(ca_true)
    assert certinfo.eku_oids(self_signed([])) is None
    # such DSCs load into a TrustStore as they are (only DER, key and validity are used)
    store = trust.TrustStore.from_certificates([empty_eku, bc_default], at=T0)
    assert len(store.signers) == 2
    info = describe.describe_certificate(bc_default)
    assert info["eku"] == sorted(certinfo.eku_oids(bc_default) or [])


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
    assert certinfo._raw_eku(value) == frozenset(oids)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_raw_der_reader_never_crashes(data: bytes) -> None:
    for fn in (certinfo._raw_eku, certinfo._raw_extensions):
        try:
            fn(data)
        except certinfo._DerError:
            pass


def test_eku_allows_matches_hcert_rules() -> None:
    v, v0, t = (
        "1.3.6.1.4.1.1847.2021.1.2",
        "1.3.6.1.4.1.0.1847.2021.1.2",
        "1.3.6.1.4.1.1847.2021.1.1",
    )
    assert certinfo.eku_allows(None, "v") and certinfo.eku_allows(frozenset(), "r")
    assert certinfo.eku_allows(frozenset({v}), "v") and certinfo.eku_allows(frozenset({v0}), "v")
    assert not certinfo.eku_allows(frozenset({t}), "v")
    assert not certinfo.eku_allows(frozenset({"2.23.136.1.1.14.2"}), "t")


# ---------------------------------------------------------------------------- describe (certs show)


def test_describe_files(published: tuple[Hierarchy, Path]) -> None:
    h, tl = published
    ca = certinfo.load_certificates(h.ca / "ca.crt")
    d = describe.describe_file(tl, trust=ca, at=T0)
    assert d["type"] == "trustlist" and d["signature"]["status"] == "valid"
    assert d["sequence"] == 1 and len(d["dscs"]) == 2 and d["revoked_credentials"] == 1
    c = describe.describe_file(h.s1 / "chain.pem", at=T0)
    leaf = c["certificates"][0]
    assert leaf["kid"] == certinfo.kid_of(h.dsc(h.s1)).hex()
    assert leaf["eku"] == ["1.3.6.1.4.1.1847.2021.1.2"]
    assert leaf["key_type"] == "EC P-256"
    assert (
        leaf["sha256"]
        == hashlib.sha256(h.dsc(h.s1).public_bytes(serialization.Encoding.DER)).hexdigest()
    )
    assert leaf["chain"]["status"] == "valid" and leaf["chain"]["valid_for"] == ["v"]
    assert "serialNumber=30760" in leaf["subject"]
    crl = describe.describe_file(h.ca / "crl.pem", trust=ca)
    assert crl["type"] == "crl" and crl["signature"]["status"] == "valid"


def _with_duplicate_extension(oid: str) -> x509.Certificate:
    """A CA certificate with two instances of extension ``oid`` (2.5.29.x): made with a
    stand-in 2.5.29.99 renamed in the DER, as no builder writes duplicates."""
    stand_in = x509.ObjectIdentifier("2.5.29.99")
    value = b"\x30\x03\x01\x01\xff" if oid == "2.5.29.19" else b"\x04\x02\xab\xcd"
    cert = self_signed([
        (x509.BasicConstraints(ca=True, path_length=0), True),
        (x509.ExtendedKeyUsage([x509.ObjectIdentifier(certinfo.EKU_VACCINATION)]), False),
        (x509.SubjectKeyIdentifier(b"\xab\xcd"), False),
        (x509.UnrecognizedExtension(stand_in, value), False),
    ])
    der = cert.public_bytes(serialization.Encoding.DER)
    last = bytes([int(oid.rsplit(".", 1)[1])])
    return x509.load_der_x509_certificate(der.replace(b"\x06\x03\x55\x1d\x63",
                                                      b"\x06\x03\x55\x1d" + last))


@pytest.mark.parametrize("oid", ["2.5.29.14", "2.5.29.19"])
def test_duplicate_extensions_do_not_escape(oid: str, tmp_path: Path) -> None:
    """A certificate with an extension twice makes cryptography raise DuplicateExtension (no
    ValueError) on reading any extension: the lenient readers refuse the duplicate (RFC 5280
    4.2) instead, so the CA flag is False, the EKU a KeyCertError, and a trust store given
    it loads (found by fuzz/run_inputs.py)."""
    cert = _with_duplicate_extension(oid)
    with pytest.raises(x509.DuplicateExtension):
        _ = cert.extensions
    assert certinfo.is_ca_certificate(cert) is False
    with pytest.raises(KeyCertError, match="appears twice"):
        certinfo.eku_oids(cert)
    path = tmp_path / "dup.crt"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    store = trust.TrustStore.from_paths([path], at=T0, state_file=tmp_path / "st.json")
    assert [s.certificate for s in store.signers] == [cert]
