"""Tests for the verifier side: vaxqr.trustlist, vaxqr.trust (TrustStore), vaxqr.chain."""

from __future__ import annotations

import base64
import datetime as dt
import json
import shutil
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from vaxqr import cadir, certinfo, certs, issue, keys, revocation, trust, trustlist
from vaxqr.chain import validate_chain
from vaxqr.errors import KeyCertError, StorageError, TrustError
from vaxqr.verify import Verifier

from hierarchy import (
    HAVE_OPENSSL,
    PW,
    T0,
    Hierarchy,
    ext,
    make_hierarchy,
    openssl,
    root_province_commune,
)

# ---------------------------------------------------------------------------- trust lists


def _load(h: Hierarchy, *paths: Path, at: dt.datetime = T0, **kw: object) -> trust.TrustStore:
    return trust.TrustStore.from_paths(
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
        assert s.kid == certinfo.kid_of(s.certificate)
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
    pub = certinfo.load_certificates(h.ca / "ca.crt")[0].public_key()
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
    assert sig["signer"] == certinfo.fingerprint(certinfo.load_certificates(h.ca / "ca.crt")[0])


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
    with pytest.raises(TrustError, match="not signed by any CA given to trust it"):
        trust.TrustStore.from_paths([other.ca / "ca.crt", tl], at=T0, state_file=h.tmp / "s")
    with pytest.raises(TrustError, match="not trusted here"):
        trust.TrustStore.from_paths([tl], at=T0, state_file=h.tmp / "s")


def test_a_trustlist_of_another_ca_says_whose_it_is_not_the_path_builders_words(
    published: tuple[Hierarchy, Path], tmp_path: Path
) -> None:
    """A list that carries its own CA, given with another province's CA: the message was
    cryptography's "candidates exhausted: all candidates exhausted with no interior
    errors". It says now that the list is not signed by any CA given, which CA signed it
    (by subject), and what to do."""
    h, tl = published
    other = make_hierarchy(tmp_path / "other", province="An Giang")
    with pytest.raises(TrustError) as caught:
        trust.TrustStore.from_paths([other.ca / "ca.crt", tl], at=T0, state_file=h.tmp / "s")
    message, hint = str(caught.value), caught.value.hint or ""
    assert "candidates" not in message and "exhausted" not in message
    assert f"{tl} is not signed by any CA given to trust it (" in message
    assert "An Giang Province CSCA" in message.split("(")[1]  # the CA given
    assert "it is signed by the CA serialNumber=091,CN=Kiên Giang Province CSCA" in message
    assert "another province's" in hint and "C=VN, its ca.crt" in hint
    same = make_hierarchy(tmp_path / "same")  # a CA of the same name, another key
    with pytest.raises(TrustError) as caught:
        trust.TrustStore.from_paths([same.ca / "ca.crt", tl], at=T0, state_file=h.tmp / "s")
    assert "not signed by any CA given" in str(caught.value)
    assert "exhausted" not in str(caught.value) and "another key" in str(caught.value)


def test_trustlist_alone_names_the_missing_ca_not_an_internal_error(
    published: tuple[Hierarchy, Path],
) -> None:
    """A trust list given without any CA certificate: the message says what is missing
    (cryptography's "can't create an empty store" once showed through), with the hint."""
    h, tl = published
    with pytest.raises(TrustError) as caught:
        trust.TrustStore.from_paths([tl], at=T0, state_file=h.tmp / "s")
    message = str(caught.value)
    assert "no CA certificate was given" in message and "not trusted here" in message
    assert "empty store" not in message
    assert "ca.crt" in (caught.value.hint or "")


def test_trustlist_json_is_strict(published: tuple[Hierarchy, Path]) -> None:
    _, tl = published
    text = tl.read_text()
    dup = text.replace('"version": 1,', '"version": 1, "version": 1,', 1)
    with pytest.raises(TrustError, match="duplicate"):
        trustlist.parse_trustlist(dup.encode())
    with pytest.raises(TrustError, match="fraction"):
        trustlist.parse_trustlist(text.replace('"version": 1,', '"version": 1.0,', 1).encode())
    with pytest.raises(TrustError):
        trustlist.parse_trustlist(b"\xff\xfe{")


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
    revocation.revoke_credentials(h.ca, ["URN:UVCI:01:VN:091/31078/9#A"])
    certs.build_trustlist(h.ca, password=PW, out=h.tmp / "again.json", now=T0)
    with pytest.raises(TrustError, match="same sequence"):
        _load(h, h.tmp / "again.json")


def test_checkpoints_sharing_a_state_file_take_turns(
    h: Hierarchy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two checkpoints sharing a state file: one loading sequence 2 reads the state (1)
    and is slow to write it back; the other loads sequence 3 meanwhile. Without a lock
    the slow one wrote 2 over the 3 (a lost update), and sequence 2, the list from before
    a revocation, was taken again. With it the second waits for the first, and 3 stays."""
    import threading

    for n in (1, 2, 3):
        certs.build_trustlist(h.ca, password=PW, out=h.tmp / f"tl{n}.json", now=T0)
    _load(h, h.tmp / "tl1.json")
    read_by_slow = threading.Event()
    fast_done = threading.Event()
    real_read = trust._read_state

    def read(path: Path) -> dict[str, object]:
        state = real_read(path)
        if threading.current_thread().name == "slow":
            read_by_slow.set()
            fast_done.wait(timeout=2)  # (with the lock the fast one cannot end meanwhile)
        return state

    monkeypatch.setattr(trust, "_read_state", read)
    errors: list[BaseException] = []

    def run(name: str) -> None:
        try:
            _load(h, h.tmp / f"{name}.json")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            if name == "tl3":
                fast_done.set()

    slow = threading.Thread(target=run, args=("tl2",), name="slow")
    slow.start()
    assert read_by_slow.wait(timeout=30)
    fast = threading.Thread(target=run, args=("tl3",), name="fast")
    fast.start()
    slow.join()
    fast.join()
    assert errors == []
    state = json.loads((h.tmp / "state.json").read_text())
    assert [v["sequence"] for v in state["cas"].values()] == [3]
    with pytest.raises(TrustError, match="rollback refused"):
        _load(h, h.tmp / "tl2.json")


def test_a_state_held_too_long_is_an_error_not_a_silent_wait(
    h: Hierarchy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A checkpoint whose state file another process holds (stopped, hung) waited for ever
    with nothing said; it now waits STATE_LOCK_WAIT seconds and says which file is held."""
    import fcntl
    import os

    certs.build_trustlist(h.ca, password=PW, out=h.tmp / "tl1.json", now=T0)
    _load(h, h.tmp / "tl1.json")  # makes the state and its lock file
    monkeypatch.setattr(trust, "STATE_LOCK_WAIT", 0.2)
    fd = os.open(h.tmp / ".state.json.lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(TrustError, match=r"state\.json is held by another process") as e:
            _load(h, h.tmp / "tl1.json")
        assert "--state" in (e.value.hint or "")
    finally:
        os.close(fd)
    _load(h, h.tmp / "tl1.json")  # released: loads again


def test_state_file_default_location(
    published: tuple[Hierarchy, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    h, tl = published
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert trust.default_state_file() == tmp_path / "xdg" / "vaxqr" / "trustlists.json"
    trust.TrustStore.from_paths([h.ca / "ca.crt", tl], at=T0)
    assert (tmp_path / "xdg" / "vaxqr" / "trustlists.json").exists()
    (tmp_path / "xdg" / "vaxqr" / "trustlists.json").write_text("{broken")
    with pytest.raises(TrustError, match="damaged"):
        trust.TrustStore.from_paths([h.ca / "ca.crt", tl], at=T0)


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
    store = trust.TrustStore.from_paths([d], at=T0, state_file=h.tmp / "st.json")
    assert len(store.signers) == 2
    with pytest.raises(KeyCertError):
        trust.TrustStore.from_paths([d / "notes.txt"], at=T0)
    with pytest.raises(StorageError):
        trust.TrustStore.from_paths([d / "missing.pem"], at=T0)


@pytest.mark.parametrize("damage", ["truncated", "version", "crl"])
def test_damaged_revocation_material_in_a_trust_directory_is_an_error(
    published: tuple[Hierarchy, Path], damage: str
) -> None:
    """A checkpoint's trust directory holds the CA, the communes' signer.crt and the trust
    list that revokes a credential. A trust list or CRL there that cannot be read (cut
    short by a download, a newer format) was skipped in silence: the signer.crt files still
    verified, and the revoked credential was VALID, with nothing said. It is an error, as
    when the file is named."""
    h, _ = published
    uvci = "URN:UVCI:01:VN:091/31078/9#A"
    revocation.revoke_credentials(h.ca, [uvci])
    certs.build_trustlist(h.ca, password=PW, out=h.tmp / "tl2.json", now=T0)
    d = h.tmp / "trust"
    d.mkdir()
    shutil.copy(h.ca / "ca.crt", d / "ca.crt")
    shutil.copy(h.s1 / "signer.crt", d / "signer.crt")
    data = (h.tmp / "tl2.json").read_bytes()
    if damage == "truncated":
        (d / "trustlist.json").write_bytes(data[: len(data) // 2])
    elif damage == "version":
        (d / "trustlist.json").write_bytes(data.replace(b'"version": 1', b'"version": 2'))
    else:
        (d / "crl.pem").write_bytes((h.ca / "crl.pem").read_bytes()[:120] + b"\n-----END "
                                    b"X509 CRL-----\n")
    with pytest.raises(KeyCertError, match=r"trustlist\.json|crl\.pem"):
        trust.TrustStore.from_paths([d], at=T0, state_file=h.tmp / "st.json")
    # other files a directory may hold are still passed over
    (d / "trustlist.json").unlink(missing_ok=True)
    (d / "crl.pem").unlink(missing_ok=True)
    (d / "signer.json").write_text('{"commune": "31078"}')
    (d / "notes.pem").write_text("not a certificate")
    store = trust.TrustStore.from_paths([d], at=T0, state_file=h.tmp / "st.json")
    assert len(store.signers) == 1


def test_private_keys_among_trust_material_are_warned_about(
    published: tuple[Hierarchy, Path],
) -> None:
    """A checkpoint given the CA's own directory (ca.key beside ca.crt), a key renamed to
    .pem in a trust directory, or a bundle with a PRIVATE KEY block: each is named in a
    warning and the certificates and lists are loaded all the same."""
    h, tl = published
    d = h.tmp / "kg-ca"
    d.mkdir()
    shutil.copy(h.ca / "ca.crt", d / "ca.crt")
    shutil.copy(h.ca / "ca.key", d / "ca.key")
    shutil.copy(h.ca / "ca.key", d / "province.pem")  # renamed: found by its content
    shutil.copy(tl, d / "tl.json")
    store = trust.TrustStore.from_paths([d], at=T0, state_file=h.tmp / "st-keys.json")
    assert len(store.signers) == 2
    for name in ("ca.key", "province.pem"):
        assert any(w.startswith(f"{d / name} is a private key: a checkpoint needs only "
                                "certificates and trust lists; remove it") for w in
                   store.warnings), store.warnings
    bundle = h.tmp / "bundle.pem"
    bundle.write_bytes((h.ca / "ca.crt").read_bytes() + (h.ca / "ca.key").read_bytes())
    store = trust.TrustStore.from_paths([bundle, tl], at=T0, state_file=h.tmp / "st-keys.json")
    assert len(store.signers) == 2
    assert [w for w in store.warnings if "private key" in w] == [
        f"{bundle} holds a private key beside its certificates: a checkpoint needs only "
        "certificates and trust lists; keep only the certificates on this machine"]
    clean = _load(h, tl)  # certificates and lists only: no such warning
    assert not any("private key" in w for w in clean.warnings)


def test_trust_material_other_users_can_change_is_warned_about(
    published: tuple[Hierarchy, Path],
) -> None:
    """On a shared computer, a --trust directory or file every user can write (or another
    user's) lets any of them add a signer certificate the checkpoint then trusts, so that
    their forged credentials show VALID: each such place is named in a warning (loaded all
    the same). A sticky directory such as /tmp keeps others from replacing our files, so
    it is not named for itself."""
    import os
    import stat

    h, tl = published
    d = h.tmp / "trust-shared"
    d.mkdir()
    shutil.copy(h.ca / "ca.crt", d / "ca.crt")
    shutil.copy(tl, d / "tl.json")

    def opened(store: trust.TrustStore) -> list[str]:
        return [w for w in store.warnings if "this checkpoint trusts" in w
                or "can be written by every user" in w]

    def load() -> trust.TrustStore:
        return trust.TrustStore.from_paths([d], at=T0, state_file=h.tmp / "st-open.json")

    assert opened(load()) == []
    os.chmod(d, 0o777)
    assert opened(load()) == [
        f"{d} can be written by every user of this computer (mode 0777): a signer "
        "certificate added there is trusted, a revocation taken away is forgotten; to keep "
        f"them out: chmod o-w {d}"]
    os.chmod(d, 0o1777)  # sticky: only the files' own modes count
    os.chmod(d / "tl.json", 0o666)
    store = load()
    assert [w.split(" can ")[0] for w in opened(store)] == [str(d / "tl.json")]
    assert len(store.signers) == 2  # loaded all the same
    os.chmod(d / "tl.json", 0o644)
    assert opened(load()) == []
    if os.geteuid() == 0:  # another user's file: only root can make one here
        os.chown(d / "ca.crt", 4321, 4321)
        assert [w.split(" belongs")[0] for w in opened(load())] == [str(d / "ca.crt")]
    assert stat.S_IMODE(d.stat().st_mode) == 0o1777


# ---------------------------------------------------------------------------- TrustStore, direct


def test_direct_dsc_with_its_ca_is_chain_validated(h: Hierarchy, tmp_path: Path) -> None:
    store = trust.TrustStore.from_paths([h.ca / "ca.crt", h.s1 / "signer.crt"], at=T0)
    (s,) = store.all_signers()
    assert s.chain_validated and len(s.chain) == 2 and not s.is_ca
    # the CA is only an anchor here; alone it would be taken as a signer (EU test data LV)
    alone = trust.TrustStore.from_paths([h.ca / "ca.crt"], at=T0)
    assert [x.is_ca for x in alone.signers] == [True]
    (w,) = alone.warnings  # a checkpoint given only the CA is told what is missing
    assert "only CA certificates" in w and "trust list" in w and "Kiên Giang" in w
    # so a credential no trusted certificate signed cannot be judged (failed "trust"), where
    # with a DSC trusted it is an unknown issuer (failed "signature")
    assert alone.no_dsc_reason() is not None and "only CA certificates" in alone.no_dsc_reason()
    assert store.no_dsc_reason() is None
    # a DSC from elsewhere, given alone, is trusted as it is
    other = make_hierarchy(tmp_path / "o", province="An Giang")
    store = trust.TrustStore.from_paths([other.s1 / "signer.crt"], at=T0)
    (s,) = store.all_signers()
    assert not s.chain_validated and s.chain == (s.certificate,)
    assert s.source == str(other.s1 / "signer.crt")


def test_direct_dsc_failing_its_chain_is_not_trusted(h: Hierarchy, tmp_path: Path) -> None:
    # a DSC signed by a different key under the same CA name
    other = make_hierarchy(tmp_path / "o")
    store = trust.TrustStore.from_paths(
        [other.ca / "ca.crt", h.s1 / "signer.crt", other.s2 / "signer.crt"], at=T0
    )
    assert [certinfo.kid_of(s.certificate) for s in store.signers] == [
        certinfo.kid_of(other.dsc(other.s2))
    ]
    assert any("not trusted" in w for w in store.warnings)


def test_has_revocation_data(published: tuple[Hierarchy, Path]) -> None:
    h, tl = published
    assert _load(h, tl).has_revocation_data
    assert not trust.TrustStore.from_paths([h.s1 / "signer.crt"], at=T0).has_revocation_data
    with_crl = trust.TrustStore.from_paths([h.ca / "ca.crt", h.ca / "crl.pem"], at=T0)
    assert with_crl.has_revocation_data


# ---------------------------------------------------------------------------- chain validation


def _dsc_with_eku(h: Hierarchy, oids: list[str] | None) -> x509.Certificate:
    ca = cadir.open_ca(h.ca)
    key = keys.load_private_key(h.ca / "ca.key", PW)
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
    anchors = certinfo.load_certificates(h.ca / "ca.crt")
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
        chain = validate_chain(_dsc_with_eku(h, oids), anchors=anchors, at=at, cert_type="v")
        assert len(chain) == 2, name
    test_only = _dsc_with_eku(h, ["1.3.6.1.4.1.1847.2021.1.1"])
    with pytest.raises(TrustError, match="does not allow type 'v'"):
        validate_chain(test_only, anchors=anchors, at=at, cert_type="v")
    validate_chain(test_only, anchors=anchors, at=at, cert_type="t")
    validate_chain(test_only, anchors=anchors, at=at, cert_type=None)
    unrelated = _dsc_with_eku(h, ["1.3.6.1.5.5.7.3.2"])
    with pytest.raises(TrustError):
        validate_chain(unrelated, anchors=anchors, at=at, cert_type="v")
    # time is an input: outside the DSC's validity the chain does not validate
    with pytest.raises(TrustError):
        validate_chain(_dsc_with_eku(h, None), anchors=anchors, at=T0 + dt.timedelta(days=200))
    # a DSC is not a CA: nothing chains through it
    with pytest.raises(TrustError):
        validate_chain(h.dsc(h.s1), anchors=[h.dsc(h.s2)], at=at)


# ---------------------------------------------------------------------------- revoked or expired CA


def _credential_of(signer_dir: Path) -> str:
    """A credential signed at T0 by the commune signer in ``signer_dir``."""
    info = issue.signer_info(certs.load_signer(signer_dir, PW))
    rec = issue.parse_record(1, {
        "full_name": "Nguyễn Văn An", "sex": "Nam", "dob": "1990-05-17",
        "id_number": "091090012345", "dose_number": "2", "total_doses": "2",
        "vaccination_date": "2021-12-01", "vaccine": "moderna"}, today=T0.date())
    return issue.sign_record(info, rec, "URN:UVCI:01:VN:091/31078/AAAAAAAAAAAA#B", now=T0)[0]


def test_a_province_ca_revoked_by_its_root_is_not_trusted(tmp_path: Path) -> None:
    root, ca, s = root_province_commune(tmp_path)
    before = trust.TrustStore.from_paths([root / "ca.crt", tmp_path / "tl.json"], at=T0,
                                         state_file=tmp_path / "st0.json")
    (good,) = before.signers
    assert not good.revoked and len(before.trustlists) == 1
    revocation.revoke_certificate(root, str(ca / "ca.crt"), password=PW,
                                  reason="key-compromise", now=T0)
    store = trust.TrustStore.from_paths(
        [root / "ca.crt", root / "crl.pem", tmp_path / "tl.json"], at=T0,
        state_file=tmp_path / "st.json")
    # the list it signed is not used (not even for the rollback state) ...
    assert store.trustlists == ()
    assert not (tmp_path / "st.json").exists()
    assert any("ignored" in w and "Kiên Giang" in w and "revoked" in w for w in store.warnings)
    # ... and its commune's DSC is still found by kid, as revoked, saying why
    (dsc,) = store.signers
    assert dsc.kid == good.kid and dsc.revoked
    assert "CA" in dsc.revoked_reason and "Kiên Giang" in dsc.revoked_reason
    hc1 = _credential_of(s)
    at = T0 + dt.timedelta(hours=1)
    assert Verifier(before, at=at).verify_text(hc1).valid
    report = Verifier(store, at=at).verify_text(hc1)
    assert report.failed == "revocation" and "Kiên Giang" in report.reason
    # the same DSC given directly, with both CAs: revoked through its chain
    direct = trust.TrustStore.from_paths(
        [root / "ca.crt", ca / "ca.crt", root / "crl.pem", s / "signer.crt"], at=T0)
    (d,) = [x for x in direct.signers if not x.is_ca]
    assert d.revoked and "Kiên Giang" in d.revoked_reason


def test_a_trust_list_signed_by_an_expired_ca_is_set_aside(tmp_path: Path) -> None:
    root, ca, signer_dir = root_province_commune(tmp_path)
    end = certinfo.load_certificates(ca / "ca.crt")[0].not_valid_after_utc
    later = end + dt.timedelta(days=1)
    store = trust.TrustStore.from_paths([root / "ca.crt", tmp_path / "tl.json"], at=later,
                                        state_file=tmp_path / "st.json")
    assert store.trustlists == () and store.signers == ()
    assert any("expired on" in w and "Kiên Giang" in w and "ignored" in w
               for w in store.warnings), store.warnings
    assert not (tmp_path / "st.json").exists()  # no sequence remembered from it
    # signed by an anchor given directly: the same rule; and before the CA's validity
    for at in (later, T0 - dt.timedelta(days=2)):
        store = trust.TrustStore.from_paths([ca / "ca.crt", tmp_path / "tl.json"], at=at,
                                            state_file=tmp_path / "st2.json")
        assert store.trustlists == ()
        assert any(("expired on" if at == later else "not valid before") in w
                   for w in store.warnings)
    # a credential of a DSC that only such a list names, no DSC trusted at all: the trust
    # material cannot judge it (failed "trust", exit 3 in the CLI), saying why
    hc1 = _credential_of(signer_dir)
    report = Verifier(store, at=T0 - dt.timedelta(days=2)).verify_text(hc1)
    assert store.signers == () and report.failed == "trust", report
    assert "not valid before" in report.reason and "no signer certificate (DSC)" in report.reason
    assert report.step("signature").status == "skipped"
    # with a DSC trusted beside it (another province's): not "forged", but not valid now
    other = make_hierarchy(tmp_path / "o", province="An Giang")
    store = trust.TrustStore.from_paths(
        [ca / "ca.crt", tmp_path / "tl.json", other.s1 / "signer.crt"],
        at=T0 - dt.timedelta(days=2), state_file=tmp_path / "st2.json")
    report = Verifier(store, at=T0 - dt.timedelta(days=2)).verify_text(hc1)
    assert report.failed == "expiry" and "not usable at this time" in report.reason
    assert report.step("signature").status == "skipped"
    # a checkpoint clock a few minutes behind a CA made just now: accepted
    start = certinfo.load_certificates(ca / "ca.crt")[0].not_valid_before_utc
    store = trust.TrustStore.from_paths([ca / "ca.crt", tmp_path / "tl.json"],
                                        at=start - dt.timedelta(minutes=3),
                                        state_file=tmp_path / "st3.json")
    assert len(store.trustlists) == 1


def test_a_retired_cas_last_list_beside_its_successors(tmp_path: Path) -> None:
    """CA rollover: the old province CA's last list and the new CA's list in one trust
    directory, after the old CA expired. The old list is set aside; the new one serves."""
    old, new, d = tmp_path / "old", tmp_path / "new", tmp_path / "trust"
    d.mkdir()
    rollover = T0 + dt.timedelta(days=1400)
    certs.init_ca(old, name="Kiên Giang", province_code="091", password=PW, now=T0,
                  days=1460)
    certs.init_ca(new, name="Kiên Giang 2", province_code="091", password=PW, now=rollover)
    for ca, when in ((old, rollover - dt.timedelta(days=1)), (new, rollover)):
        certs.issue_signer(ca, ca_password=PW, commune_code="31078", name="UBND xã Dương Tơ",
                           out_dir=ca / "s", password=PW, now=when)
        certs.build_trustlist(ca, password=PW, out=d / f"{ca.name}.json", now=when)
        shutil.copy(ca / "ca.crt", d / f"{ca.name}.crt")
    store = trust.TrustStore.from_paths([d], at=T0 + dt.timedelta(days=1470),
                                        state_file=tmp_path / "st.json")
    (tl,) = store.trustlists
    assert tl.verified_by is not None and "Kiên Giang 2" in certinfo.name_str(
        tl.verified_by.subject)
    (s,) = store.signers
    assert s.kid == certinfo.kid_of(certinfo.load_certificates(new / "s" / "signer.crt")[0])
    assert any("old.json" in w and "expired on" in w for w in store.warnings)


def test_an_unusable_certificate_is_skipped_not_fatal(h: Hierarchy, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import ed25519

    k = ed25519.Ed25519PrivateKey.generate()
    odd = (x509.CertificateBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Ed\u202eDSC")]))
           .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "elsewhere")]))
           .public_key(k.public_key()).serial_number(7)
           .not_valid_before(T0).not_valid_after(T0 + dt.timedelta(days=9))
           .sign(k, None))
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(odd.public_bytes(serialization.Encoding.PEM)
                       + (h.s1 / "signer.crt").read_bytes())
    store = trust.TrustStore.from_paths([bundle], at=T0)
    (s,) = store.signers
    assert s.kid == certinfo.kid_of(h.dsc(h.s1))
    (w,) = store.warnings
    assert "skipped" in w and "Ed25519" in w


@pytest.mark.parametrize("content", [b"[" * 100_000, b'{"cas": ' * 50_000 + b"{}" + b"}" * 50_000])
def test_deeply_nested_state_file_is_damaged(published: tuple[Hierarchy, Path],
                                             content: bytes) -> None:
    """A hostile --state file nested 100,000 deep is 'damaged' (TrustError), not a
    RecursionError out of the JSON decoder (found by fuzz/run_inputs.py)."""
    h, tl = published
    (h.tmp / "state.json").write_bytes(content)
    with pytest.raises(TrustError, match="damaged: its JSON is nested too deeply"):
        _load(h, tl)


@pytest.mark.parametrize("entry", [{"sequence": "9", "digest": "ab"}, {"sequence": True,
                                   "digest": "ab"}, {"sequence": 9.0, "digest": "ab"},
                                   {"sequence": 9}, [9], 9])
def test_state_file_entry_that_cannot_be_read_is_damaged(
    published: tuple[Hierarchy, Path], entry: object
) -> None:
    """A CA's entry the checker cannot read (a sequence as text, a float, a boolean, no
    digest) was taken as no entry and overwritten: any older list of that CA was
    accepted. The state file is damaged, as when its JSON is broken."""
    h, tl = published
    _load(h, tl)
    state_file = h.tmp / "state.json"
    state = json.loads(state_file.read_text())
    (ident,) = state["cas"]
    state["cas"][ident] = entry
    state_file.write_text(json.dumps(state))
    with pytest.raises(TrustError, match="damaged"):
        _load(h, tl)


def test_state_file_with_a_lone_surrogate_is_damaged(published: tuple[Hierarchy, Path]) -> None:
    """A --state file holding a \\ud800 escape (valid JSON, not a character) is 'damaged'
    (TrustError), not a UnicodeEncodeError when the state is written back after a newer
    list (found by fuzz/run_inputs.py)."""
    h, tl = published
    (h.tmp / "state.json").write_text('{"format": "\\ud800", "cas": {}}')
    with pytest.raises(TrustError, match=r"damaged: it holds a \\u escape that is not a char"):
        _load(h, tl)


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
@pytest.mark.parametrize("key", ["issued", "next_update"])
def test_trustlist_time_past_the_datetime_range_is_refused(
        published: tuple[Hierarchy, Path], key: str, when: str) -> None:
    """A trust list time that is no datetime once in UTC is a TrustError naming the field,
    not an OverflowError (found by fuzz/run_inputs.py)."""
    h, tl = published
    doc = json.loads(tl.read_text())
    doc[key] = when
    tl.write_text(json.dumps(doc))
    with pytest.raises(TrustError, match=f"{key} is out of range"):
        _load(h, tl)


def _damaged_subject(der: bytes, how: str) -> bytes:
    """The DER of a certificate whose subject CN is a BIT STRING, or invalid UTF-8:
    cryptography loads it, and raises only when the subject is first read."""
    i = der.rindex(b"\x06\x03\x55\x04\x03\x0c")  # the subject's CN (after the issuer's)
    return der[:i + 5] + b"\x03" + der[i + 6:] if how == "bitstring" else \
        der[:i + 7] + b"\xff" + der[i + 8:]


@pytest.mark.parametrize("how", ["bitstring", "bad-utf8"])
@pytest.mark.parametrize("form", ["der", "pem", "trustlist"])
def test_certificate_with_a_malformed_subject_is_unreadable(
        published: tuple[Hierarchy, Path], how: str, form: str) -> None:
    """A certificate whose subject cryptography parses only when it is read (a CN as a BIT
    STRING, or not UTF-8) is refused when loaded (KeyCertError/TrustError), not a
    TypeError or ValueError from the first use of its subject; in a directory a
    certificate file is skipped, a trust list (whose revocations must not vanish) refused
    (found by fuzz/run_inputs.py)."""
    h, tl = published
    der = _damaged_subject(h.dsc(h.s2).public_bytes(serialization.Encoding.DER), how)
    bad = h.tmp / ("bad.json" if form == "trustlist" else "bad.crt")
    if form == "trustlist":
        doc = json.loads(tl.read_text())
        doc["dscs"][0]["certificate"] = base64.b64encode(der).decode()
        bad.write_text(json.dumps(doc))
    else:
        bad.write_bytes(der if form == "der" else b"-----BEGIN CERTIFICATE-----\n"
                        + base64.encodebytes(der) + b"-----END CERTIFICATE-----\n")
    with pytest.raises(KeyCertError, match="malformed certificate" if form == "trustlist"
                       else "holds no readable certificate"):
        _load(h, bad)
    d = h.tmp / "dir"
    d.mkdir()
    shutil.copy(bad, d / bad.name)
    shutil.copy(h.s1 / "signer.crt", d / "signer.crt")
    if form == "trustlist":
        with pytest.raises(KeyCertError, match="malformed certificate"):
            _load(h, d)
    else:
        assert len(_load(h, d).signers) == 1


@pytest.mark.parametrize("form", ["der", "pem", "trustlist", "crl-der", "crl-pem"])
def test_certificate_or_crl_of_an_unknown_version_is_unreadable(
        published: tuple[Hierarchy, Path], form: str) -> None:
    """A certificate or CRL whose version field is 42 makes cryptography raise InvalidVersion,
    which is no ValueError: it is unreadable trust material (KeyCertError), not an uncaught
    exception (found by fuzz/run_inputs.py)."""
    h, tl = published
    if form.startswith("crl"):
        der = x509.load_pem_x509_crl((h.ca / "crl.pem").read_bytes()).public_bytes(
            serialization.Encoding.DER)
        at = der.index(b"\x02\x01\x01")  # version v2 (1)
        der = der[:at + 2] + b"\x2a" + der[at + 3:]
        kind, match = "X509 CRL", "not a readable CRL"
    else:
        der = h.dsc(h.s2).public_bytes(serialization.Encoding.DER)
        at = der.index(b"\xa0\x03\x02\x01\x02")  # [0] version v3 (2)
        der = der[:at + 4] + b"\x2a" + der[at + 5:]
        kind, match = "CERTIFICATE", "holds no readable certificate"
    bad = h.tmp / ("bad.json" if form == "trustlist" else "bad.crl" if kind == "X509 CRL"
                   else "bad.crt")
    if form == "trustlist":
        doc = json.loads(tl.read_text())
        doc["dscs"][0]["certificate"] = base64.b64encode(der).decode()
        bad.write_text(json.dumps(doc))
        match = "not a valid trust list"
    elif form.endswith("pem"):
        bad.write_bytes(f"-----BEGIN {kind}-----\n".encode() + base64.encodebytes(der)
                        + f"-----END {kind}-----\n".encode())
    else:
        bad.write_bytes(der)
    with pytest.raises(KeyCertError, match=match):
        _load(h, bad)


def _unknown_key_algorithm(cert: x509.Certificate) -> x509.Certificate:
    """``cert`` with its key's algorithm OID (id-ecPublicKey) changed to an unknown one:
    loads, but public_key() raises UnsupportedAlgorithm, which is no ValueError."""
    der = cert.public_bytes(serialization.Encoding.DER)
    ec_key = b"\x06\x07\x2a\x86\x48\xce\x3d\x02\x01"
    assert der.count(ec_key) == 1
    return x509.load_der_x509_certificate(der.replace(ec_key, ec_key[:-1] + b"\x09"))


def test_certificates_with_an_unreadable_key_do_not_escape(
        published: tuple[Hierarchy, Path]) -> None:
    """A key cryptography cannot read (an unknown algorithm: UnsupportedAlgorithm) in a DSC
    given directly skips that DSC with a warning; in a CA, its CRL is ignored and a trust
    list it signed is refused with a TrustError saying why; none of it escapes as an
    uncaught exception (found by fuzz/run_inputs.py)."""
    h, tl = published
    pem = serialization.Encoding.PEM
    dsc = h.tmp / "bad-dsc.crt"
    dsc.write_bytes(_unknown_key_algorithm(h.dsc(h.s2)).public_bytes(pem))
    store = trust.TrustStore.from_paths([dsc, h.s1 / "signer.crt"], at=T0,
                                        state_file=h.tmp / "s1.json")
    assert len(store.signers) == 1 and any("cannot read the key" in w for w in store.warnings)
    from vaxqr.describe import describe_file  # vaxqr certs show

    assert describe_file(dsc)["certificates"][0]["key_type"] == "unreadable"
    bad_ca = _unknown_key_algorithm(certinfo.load_certificates(h.ca / "ca.crt")[0])
    ca = h.tmp / "bad-ca.crt"
    ca.write_bytes(bad_ca.public_bytes(pem))
    store = trust.TrustStore.from_paths([ca, h.ca / "crl.pem", h.s1 / "signer.crt"], at=T0,
                                        state_file=h.tmp / "s2.json")
    assert any("CRL ignored" in w for w in store.warnings)
    doc = json.loads(tl.read_text())
    doc["signature"]["signer"] = certinfo.fingerprint(bad_ca)
    tl.write_text(json.dumps(doc))
    with pytest.raises(TrustError, match="whose key cannot be read"):
        trust.TrustStore.from_paths([ca, tl], at=T0, state_file=h.tmp / "s3.json")


def test_crl_with_a_malformed_issuer_is_unreadable(published: tuple[Hierarchy, Path]) -> None:
    """A CRL whose issuer cryptography parses only on first read (its CN a BIT STRING) is
    'not a readable CRL' (KeyCertError) for TrustStore and certs show, not a TypeError
    from the first use of its issuer (found by fuzz/run_inputs.py)."""
    from vaxqr.describe import describe_file

    h, _tl = published
    der = x509.load_pem_x509_crl((h.ca / "crl.pem").read_bytes()).public_bytes(
        serialization.Encoding.DER)
    bad = h.tmp / "bad.crl"
    bad.write_bytes(_damaged_subject(der, "bitstring"))
    with pytest.raises(KeyCertError, match="not a readable CRL"):
        _load(h, bad)
    with pytest.raises(KeyCertError, match="not a readable CRL"):
        describe_file(bad)


def test_no_revocation_data_is_said_of_each_ca_whose_communes_lack_it(tmp_path: Path) -> None:
    """"no revocation data" was said only when no trust list and no CRL at all was given:
    the national root's CRL (which revokes province CAs, never a commune's certificate), or
    another province's trust list, silenced it while a revoked commune of this province
    showed VALID. It is said of the CAs whose commune certificates no list or CRL given
    covers."""
    root, ca, s = root_province_commune(tmp_path)
    assert (root / "crl.pem").is_file()
    paths = [root / "ca.crt", ca / "ca.crt", s / "signer.crt"]
    for extra, warned in (([root / "crl.pem"], True), ([], True),
                          ([ca / "crl.pem"], False), ([root / "crl.pem", ca / "crl.pem"], False)):
        store = trust.TrustStore.from_paths([*paths, *extra], at=T0 + dt.timedelta(days=1),
                                            state_file=tmp_path / "state.json")
        said = [w for w in store.warnings if w.startswith("no revocation data")]
        assert bool(said) is warned, (extra, store.warnings)
        if warned:
            assert "Kiên Giang" in said[0] and "Bộ Y tế" not in said[0], said
