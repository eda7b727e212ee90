"""vaxqr.signercheck: the commune office refuses to sign with a certificate checkpoints refuse
(expired, not yet valid, broken chain, revoked, its CA revoked) or that ends within 30 days,
and says when the credentials expire when that is sooner than 12 months."""

from __future__ import annotations

import datetime as dt
import shutil

import pytest

from vaxqr import certs, revocation
from vaxqr.errors import KeyCertError, TrustError
from vaxqr.signercheck import MIN_DAYS, TRUST_DIR, check_signer_dir, no_revocation_data

from hierarchy import PW, T0, make_hierarchy, root_province_commune

DAY = dt.timedelta(days=1)
AT = T0 + DAY


@pytest.fixture
def h(tmp_path):
    return make_hierarchy(tmp_path)


def _ends(h, which):
    return h.dsc(which).not_valid_after_utc


def test_a_good_signer_passes_without_a_word(h):
    check = check_signer_dir(h.s1, at=AT)
    assert check.warnings == () and not check.short and len(check.chain) == 2
    assert check.credentials_expire == AT + dt.timedelta(days=365)


def test_expired_and_not_yet_valid_are_refused(h):
    with pytest.raises(KeyCertError, match=r"in .*s1 expired on \d{4}-\d\d-\d\d: nothing can be "
                       "signed") as exc:
        check_signer_dir(h.s1, at=_ends(h, h.s1) + DAY)
    assert "ask provincial IT for a new commune certificate" in exc.value.hint
    with pytest.raises(KeyCertError, match="is not valid until") as exc:
        check_signer_dir(h.s1, at=T0 - DAY)
    assert "date and time" in exc.value.hint


def test_a_short_remaining_validity_is_warned_about_then_refused(h):
    shutil.rmtree(h.s1 / TRUST_DIR)  # (its CRL would be out of date by then: warned too)
    end = _ends(h, h.s1)
    check = check_signer_dir(h.s1, at=end - dt.timedelta(days=100))
    day = f"{end:%Y-%m-%d}"
    assert check.short and check.credentials_expire == end
    assert check.warnings == (
        no_revocation_data(str(h.s1)),
        f"the commune certificate ends on {day}: credentials signed now expire on {day} "
        "(in 100 days), not in 12 months; ask provincial IT for a new certificate (a citizen "
        "signed now gets a new credential from a later batch only for a later dose)",)
    soon = end - dt.timedelta(days=MIN_DAYS - 1)
    with pytest.raises(KeyCertError, match=f"ends on {day}, in 29 days: credentials signed "
                       "with it would expire then, not in 12 months") as exc:
        check_signer_dir(h.s1, at=soon)
    assert "--short-validity" in exc.value.hint
    check = check_signer_dir(h.s1, at=soon, allow_short=True)
    assert "(in 29 days)" in check.warnings[-1]
    hours = check_signer_dir(h.s1, at=end - dt.timedelta(hours=3), allow_short=True)
    assert "(in less than a day)" in hours.warnings[-1]
    # a credential written again (vaxqr issue --reprint) signs nothing: no time-left rule
    assert check_signer_dir(h.s1, at=soon, signing=False).warnings == (
        no_revocation_data(str(h.s1)),)


def test_a_chain_that_no_longer_validates_is_refused(h, tmp_path):
    other = tmp_path / "other-ca"  # a CA of the same name, another key (re-keyed, mixed up)
    certs.init_ca(other, name="Kiên Giang", province_code="091", password=PW, now=T0)
    dsc = (h.s1 / "signer.crt").read_bytes()
    (h.s1 / "chain.pem").write_bytes(dsc + (other / "ca.crt").read_bytes())
    with pytest.raises(TrustError, match="no longer validates against its CA") as exc:
        check_signer_dir(h.s1, at=AT)
    assert "provincial IT" in exc.value.hint
    (h.s1 / "chain.pem").write_bytes(dsc)
    with pytest.raises(TrustError, match="no CA certificate above it"):
        check_signer_dir(h.s1, at=AT)
    (h.s1 / "chain.pem").unlink()
    with pytest.raises(TrustError, match="no CA certificate above it"):
        check_signer_dir(h.s1, at=AT)


def test_a_dsc_revoked_by_its_province_is_refused_by_crl_and_trust_list(h, tmp_path):
    for s in (h.s1, h.s2):  # as copied without trust/: only what is given here is known
        shutil.rmtree(s / TRUST_DIR)
    revocation.revoke_certificate(h.ca, str(h.s1), password=PW, reason="key-compromise",
                                  now=AT)
    tl = tmp_path / "tl.json"
    certs.build_trustlist(h.ca, password=PW, out=tl, now=AT)
    later = AT + DAY
    # nothing local says it
    assert check_signer_dir(h.s1, at=later).warnings == (no_revocation_data(str(h.s1)),)
    with pytest.raises(TrustError, match=r"has been revoked .*tl\.json, sequence 1"):
        check_signer_dir(h.s1, at=later, trust=[tl])
    (h.s1 / TRUST_DIR).mkdir(exist_ok=True)
    shutil.copy(h.ca / "crl.pem", h.s1 / TRUST_DIR / "crl.pem")
    with pytest.raises(TrustError, match=r"s1 has been revoked .*crl\.pem") as exc:
        check_signer_dir(h.s1, at=later)
    assert "checkpoints refuse every credential it signs" in str(exc.value)
    # the other commune, under the same CA, is fine with both
    ok = check_signer_dir(h.s2, at=later, trust=[tl, h.ca / "crl.pem"])
    assert ok.warnings == () and len(ok.revocation_sources) == 2


def test_a_province_ca_revoked_by_its_root_is_refused_given_the_roots_crl(tmp_path):
    """The known gap: a province CA revoked by its national root went on signing locally,
    and checkpoints given the root's CRL refused every credential."""
    root, ca, s = root_province_commune(tmp_path)
    assert len(check_signer_dir(s, at=AT).chain) == 3
    revocation.revoke_certificate(root, str(ca / "ca.crt"), password=PW, now=AT)
    later = AT + DAY
    assert check_signer_dir(s, at=later).warnings == ()  # offline: nothing here knows
    with pytest.raises(TrustError, match=r"the CA .*Kiên Giang.* above the commune "
                       r"certificate in .* has been revoked by .*Bộ Y tế") as exc:
        check_signer_dir(s, at=later, trust=[root / "crl.pem"])
    assert "the province needs a new CA" in exc.value.hint


def test_revocation_files_it_cannot_use_are_named(h, tmp_path):
    shutil.rmtree(h.s1 / TRUST_DIR)  # only the files given
    other = make_hierarchy(tmp_path / "elsewhere", province="An Giang")
    stale_at = T0 + dt.timedelta(days=40)  # past the CRL's 30-day next update
    tl = tmp_path / "tl.json"
    certs.build_trustlist(h.ca, password=PW, out=tl, now=T0, valid_days=7)
    check = check_signer_dir(h.s1, at=stale_at,
                             trust=[other.ca / "crl.pem", h.ca / "crl.pem", tl])
    text = "\n".join(check.warnings)
    assert f"{other.ca / 'crl.pem'}: CRL ignored, not signed by a CA above" in text
    assert f"{h.ca / 'crl.pem'}: CRL out of date since" in text
    assert f"{tl}: the trust list is out of date since" in text
    assert check.revocation_sources == (str(h.ca / "crl.pem"), str(tl))
    # a commune certificate issued after the list: checkpoints with that list refuse it
    s3 = tmp_path / "s3"
    certs.issue_signer(h.ca, ca_password=PW, commune_code="30757", name="UBND xã Mới",
                       out_dir=s3, password=PW, now=AT)
    check = check_signer_dir(s3, at=AT, trust=[tl])
    assert any("does not list this commune certificate: checkpoints using that list refuse "
               "its credentials" in w for w in check.warnings)



def _both(h, paths):
    """What the office (SIGNER/trust/, vaxqr issue --trust) and a checkpoint (vaxqr verify
    --trust) make of the same trust material: the check, and the store (or their errors)."""
    from vaxqr.trust import TrustStore

    out = []
    for read in (lambda: check_signer_dir(h.s1, at=AT, trust=paths),
                 lambda: TrustStore.from_paths([h.ca / "ca.crt", h.s1 / TRUST_DIR, *paths],
                                               at=AT, state_file=h.tmp / "state.json")):
        try:
            out.append(read())
        except KeyCertError as exc:
            out.append(exc)
    return out


def test_a_file_that_is_no_trust_material_is_passed_over_as_a_checkpoint_does(h, tmp_path):
    """A stray file in SIGNER/trust/ refused issuing, while a checkpoint given the same
    folder passed over it: one reader now (vaxqr.trustfiles), one rule."""
    trust_dir = h.s1 / TRUST_DIR
    trust_dir.mkdir(exist_ok=True)
    shutil.copy(h.ca / "crl.pem", trust_dir / "crl.pem")
    (trust_dir / "notes.json").write_text('{"printer": "room 2"}', encoding="utf-8")
    (trust_dir / "junk.der").write_bytes(b"\x30\x03\x02\x01\x00")
    (trust_dir / "ca.crt").write_bytes((h.ca / "ca.crt").read_bytes())
    shutil.copy(h.s1 / "signer.key", trust_dir / "oops.pem")
    check, store = _both(h, [])
    assert not isinstance(check, Exception) and not isinstance(store, Exception), (check, store)
    assert check.revocation_sources == (str(trust_dir / "crl.pem"),)
    assert store.revocation_sources == (str(trust_dir / "crl.pem"),)
    assert [w for w in check.warnings if "oops.pem holds a private key, which is no trust "
            "material (passed over)" in w]
    assert [w for w in store.warnings if "oops.pem is a private key" in w]
    # named explicitly, it is refused by both
    for named in (trust_dir / "notes.json", trust_dir / "oops.pem"):
        check, store = _both(h, [named])
        assert isinstance(check, TrustError) and isinstance(store, TrustError), named
        assert str(check) == str(store)


@pytest.mark.parametrize("damaged", ["crl.pem", "list.crl", "trustlist.json"])
def test_a_damaged_crl_or_trust_list_refuses_in_both(h, tmp_path, damaged):
    """Its revocations must not be dropped in silence, in a folder or named."""
    trust_dir = h.s1 / TRUST_DIR
    trust_dir.mkdir(exist_ok=True)
    if damaged == "trustlist.json":
        tl = tmp_path / "tl.json"
        certs.build_trustlist(h.ca, password=PW, out=tl, now=T0)
        data = tl.read_bytes()[:-40]
    else:
        data = (h.ca / "crl.pem").read_bytes()
        data = data.replace(data.splitlines()[3], b"AAAA" * 16) if damaged == "crl.pem" \
            else b"\x30\x82\x01\x00broken"
    (trust_dir / damaged).write_bytes(data)
    check, store = _both(h, [])
    assert isinstance(check, KeyCertError) and isinstance(store, KeyCertError), (check, store)
    assert damaged in str(check) and str(check) == str(store)


def test_the_certificates_are_read_once_for_the_check_and_the_signer(h):
    """vaxqr issue read signer.crt and chain.pem for the check, then again for the key:
    load_signer_certificates reads them once and both use the same objects."""
    read = certs.load_signer_certificates(h.s1)
    (h.s1 / "signer.crt").rename(h.s1 / "elsewhere.crt")  # neither reads the files again
    (h.s1 / "chain.pem").unlink()
    check = check_signer_dir(h.s1, at=AT, certificates=read)
    signer = certs.load_signer(h.s1, PW, certificates=read)
    assert check.chain[0] is read.certificate and signer.certificate is read.certificate
    assert signer.chain == read.chain and len(read.chain) == 2


def test_a_trust_folder_others_can_write_is_warned_about(h):
    """Whoever can write SIGNER/trust/ can take the province's CRL away, and the office
    then signs with a revoked certificate without a word: as at a checkpoint (verify
    --trust), such a folder or file is named in a warning (the check goes on)."""
    import os

    trust_dir = h.s1 / TRUST_DIR
    trust_dir.mkdir(exist_ok=True)
    shutil.copy(h.ca / "crl.pem", trust_dir / "crl.pem")
    assert check_signer_dir(h.s1, at=AT).warnings == ()
    os.chmod(trust_dir, 0o777)
    (w,) = check_signer_dir(h.s1, at=AT).warnings
    assert w.startswith(f"{trust_dir} can be written by every user of this computer")
    assert "sign with a revoked certificate" in w and f"chmod o-w {trust_dir}" in w
    os.chmod(trust_dir, 0o700)
    os.chmod(trust_dir / "crl.pem", 0o666)
    (w,) = check_signer_dir(h.s1, at=AT).warnings
    assert w.startswith(f"{trust_dir / 'crl.pem'} can be written by every user")


def test_revocation_files_of_other_cas_only_are_warned_about(tmp_path):
    """The warning that no revocation is known was given only when SIGNER/trust/ held no
    CRL and no trust list at all: with only the national root's crl.pem there (it revokes
    province CAs, never a commune's certificate), or another province's trust list, the
    office signed knowing nothing of its own province's revocations, and was told nothing."""
    root, ca, s = root_province_commune(tmp_path)
    shutil.rmtree(s / TRUST_DIR)
    (s / TRUST_DIR).mkdir()
    shutil.copy(root / "crl.pem", s / TRUST_DIR / "root-crl.pem")
    at = T0 + DAY
    said = [w for w in check_signer_dir(s, at=at).warnings if "revoked this commune" in w]
    assert len(said) == 1 and "Kiên Giang" in said[0], said
    shutil.copy(ca / "crl.pem", s / TRUST_DIR / "crl.pem")  # the province's: known
    assert not [w for w in check_signer_dir(s, at=at).warnings if "revoked this commune" in w]


def _crl_signed_by(issuer_cert, key, *, aki=True):
    """A CRL naming ``issuer_cert``'s subject as its issuer, signed with ``key``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    b = (x509.CertificateRevocationListBuilder().issuer_name(issuer_cert.subject)
         .last_update(T0).next_update(T0 + 30 * DAY))
    if aki:
        ski = issuer_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                            False)
    return b.sign(key, hashes.SHA256())


def test_a_crl_of_the_offices_ca_that_cannot_be_checked_refuses_signing(h, tmp_path):
    """A CRL in SIGNER/trust/ naming the office's CA that its certificate does not verify
    (altered, or made with another key) was ignored with a warning, and the office signed
    on without its revocations: it refuses now, saying what to do. One that is clearly
    another CA's (another issuer name, or another key named by its
    AuthorityKeyIdentifier: an earlier CA's of that name) stays a warning."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    trust_dir = h.s1 / TRUST_DIR
    trust_dir.mkdir(exist_ok=True)
    for f in trust_dir.iterdir():
        f.unlink()
    ca_cert = x509.load_pem_x509_certificate((h.ca / "ca.crt").read_bytes())
    stranger = ec.generate_private_key(ec.SECP256R1())
    pem = serialization.Encoding.PEM
    forged = _crl_signed_by(ca_cert, stranger)
    (trust_dir / "crl.pem").write_bytes(forged.public_bytes(pem))
    with pytest.raises(TrustError, match=r"crl\.pem is a CRL of .*, the CA above this commune "
                       r"certificate, whose signature cannot be checked .*the signature does "
                       "not match") as exc:
        check_signer_dir(h.s1, at=AT)
    assert "current crl.pem" in exc.value.hint
    # the same name, but its AuthorityKeyIdentifier names another key: another CA's
    other = _crl_signed_by(ca_cert, stranger, aki=False).public_bytes(pem)
    (trust_dir / "crl.pem").write_bytes(other)
    with pytest.raises(TrustError, match="cannot be checked"):  # (no AKI: cannot tell)
        check_signer_dir(h.s1, at=AT)
    from cryptography.hazmat.primitives import hashes

    earlier = (x509.CertificateRevocationListBuilder().issuer_name(ca_cert.subject)
               .last_update(T0).next_update(T0 + 30 * DAY)
               .add_extension(x509.AuthorityKeyIdentifier(b"\x01" * 20, None, None), False)
               .sign(stranger, hashes.SHA256()))
    (trust_dir / "crl.pem").write_bytes(earlier.public_bytes(pem))
    text = "\n".join(check_signer_dir(h.s1, at=AT).warnings)
    assert "crl.pem: CRL ignored, not signed by a CA above this commune certificate" in text
    assert "another key than that CA's" in text
    # another CA's name: a warning, as before
    elsewhere = make_hierarchy(tmp_path / "elsewhere", province="An Giang")
    shutil.copy(elsewhere.ca / "crl.pem", trust_dir / "crl.pem")
    text = "\n".join(check_signer_dir(h.s1, at=AT).warnings)
    assert "CRL ignored, not signed by a CA above this commune certificate: it is" in text
    assert "An Giang" in text


def test_a_trust_list_of_another_province_is_named_as_such(h, tmp_path):
    """Its warning showed cryptography's "candidates exhausted" words."""
    other = make_hierarchy(tmp_path / "elsewhere", province="An Giang")
    tl = tmp_path / "other.json"
    certs.build_trustlist(other.ca, password=PW, out=tl, now=T0)
    (w,) = [w for w in check_signer_dir(h.s1, at=AT, trust=[tl]).warnings if str(tl) in w]
    assert "exhausted" not in w and "not signed by any CA given to trust it" in w
    assert "signed by the CA serialNumber=091,CN=An Giang Province CSCA" in w
    assert w.endswith("ignored, it says nothing of this commune certificate; take it away, "
                      "and put the province's own trustlist.json there")


def test_the_days_left_are_counted_as_a_person_reads_the_end_date(h):
    """A 20-day certificate made minutes before said "ends on DATE, in 19 days" (a
    whole-day count of the time left): valid until a date 20 days from today, it has 20
    days left, in the refusal, the warning, and the 30-day rule alike."""
    from vaxqr.signercheck import days_left

    def signer(days, out):
        certs.issue_signer(h.ca, ca_password=PW, commune_code="30760", name="UBND phường A",
                           out_dir=out, password=PW, now=T0, days=days)
        return h.dsc(out).not_valid_after_utc

    at = T0 + dt.timedelta(minutes=5)
    end = signer(20, h.tmp / "twenty")
    assert days_left(end, at) == 20
    with pytest.raises(KeyCertError, match=f"ends on {end:%Y-%m-%d}, in 20 days: "):
        check_signer_dir(h.tmp / "twenty", at=at)
    check = check_signer_dir(h.tmp / "twenty", at=at, allow_short=True)
    assert f"expire on {end:%Y-%m-%d} (in 20 days)" in check.warnings[-1]
    end = signer(MIN_DAYS, h.tmp / "thirty")  # 30 days: not "less than 30 days left"
    check = check_signer_dir(h.tmp / "thirty", at=at)
    assert f"(in {MIN_DAYS} days)" in check.warnings[-1]
    # the last day: less than a day left, whatever the dates say
    assert days_left(end, end - dt.timedelta(hours=23)) == 0
    assert end.hour == 0 and days_left(end, end - dt.timedelta(hours=25)) == 2  # (the dates)
    with pytest.raises(KeyCertError, match="in less than a day"):
        check_signer_dir(h.tmp / "thirty", at=end - dt.timedelta(hours=1))
