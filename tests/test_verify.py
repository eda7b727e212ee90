"""The verification pipeline end to end: trust lists, revocation, expiry, holder check, images."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from jsonref import terminal_safe_json
from PIL import Image

from vaxqr import certs, issue, qr, revocation
from vaxqr.citizen import parse_cccd
from vaxqr.credential import make_uvci
from vaxqr.trust import TrustStore
from vaxqr.verify import Step, Verifier, report_json_text, verify_image

from hierarchy import PW, T0, make_hierarchy

NOW = T0 + dt.timedelta(days=20)
CARD = ("091190012345||NGUYỄN THỊ THUÝ HOÀ|17051990|Nữ|Rạch Giá, Kiên Giang|01122021")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("world")
    h = make_hierarchy(tmp)
    info, rec = _signer_and_record(h)
    creds = {}
    for key in ("good", "revoked"):
        uvci = make_uvci(info.province_code, info.commune_code)
        creds[key] = (uvci, issue.sign_record(info, rec, uvci, now=NOW)[0])
    revocation.revoke_credentials(h.ca, [creds["revoked"][0]], now=NOW)
    certs.build_trustlist(h.ca, password=PW, out=tmp / "tl1.json", now=NOW)
    return h, creds, tmp


def _signer_and_record(h, **fields):
    """The second commune's signer and a record (Hòa's second Moderna dose, or ``fields``)."""
    info = issue.signer_info(certs.load_signer(h.s2, PW))
    rec = issue.parse_record(1, {
        "full_name": "Nguyễn Thị Thúy Hòa", "sex": "Nữ", "dob": "1990-05-17",
        "id_number": "091190012345", "dose_number": "2", "total_doses": "2",
        "vaccination_date": "2021-12-01", "vaccine": "moderna", **fields}, today=NOW.date())
    return info, rec


def _verifier(h, tmp, lists, at=NOW, name="state.json"):
    store = TrustStore.from_paths([h.ca / "ca.crt", *lists], at=at, state_file=tmp / name)
    return Verifier(store, at=at), store


def test_valid_and_revoked_credential(world):
    h, creds, tmp = world
    v, _store = _verifier(h, tmp, [tmp / "tl1.json"])
    good = v.verify_text(creds["good"][1])
    assert good.valid, good.reason
    assert good.step("revocation").status == "pass"
    assert good.to_json()["signer"]["subject"].find("31078") >= 0
    bad = v.verify_text(creds["revoked"][1])
    assert not bad.valid and bad.failed == "revocation"
    assert "revoked" in bad.reason


def test_revoked_commune_certificate_leaves_trust_list(world, tmp_path):
    h, creds, _tmp = world
    import shutil

    ca = tmp_path / "ca"
    shutil.copytree(h.ca, ca)
    revocation.revoke_certificate(ca, "31078", password=PW, reason="key-compromise", now=NOW)
    certs.build_trustlist(ca, password=PW, out=tmp_path / "tl2.json", now=NOW)
    store = TrustStore.from_paths([ca / "ca.crt", tmp_path / "tl2.json"], at=NOW,
                                  state_file=tmp_path / "s.json")
    r = Verifier(store, at=NOW).verify_text(creds["good"][1])
    assert not r.valid and r.failed in ("signature", "revocation")
    assert "revoked" in r.reason or "not in the trust list" in r.reason


def test_expiry_messages(world):
    h, creds, tmp = world
    later = NOW + dt.timedelta(days=400)
    v, _ = _verifier(h, tmp, [tmp / "tl1.json"], at=later, name="late.json")
    r = v.verify_text(creds["good"][1])
    assert r.failed == "expiry" and "expired on" in r.reason
    early = NOW - dt.timedelta(days=1)
    v, _ = _verifier(h, tmp, [tmp / "tl1.json"], at=early, name="early.json")
    r = v.verify_text(creds["good"][1])
    assert r.failed == "expiry" and "not valid before" in r.reason


def test_white_space_after_a_pasted_payload_is_ignored(world):
    """A payload copied from an e-mail or a spreadsheet cell often ends in a space or a tab.
    No Base45 text can end in one (the last character of a group is at most 'W', of a
    final pair at most '5'; the space is 36), so trailing white space is never part of a
    credential: it is dropped as leading white space is, and the credential verifies."""
    from vaxqr import codec

    h, creds, tmp = world
    v, _ = _verifier(h, tmp, [tmp / "tl1.json"], name="blank.json")
    hc1 = creds["good"][1]
    for tail in (" ", "   ", "\t", " \t \r\n", "\u00a0"):
        r = v.verify_text(hc1 + tail)
        assert r.valid, (tail, r.reason)
        assert r.payload == hc1
    for n in range(0, 40):  # why this is safe: no Base45 encoding ends in a space
        for data in (bytes([255]) * n, bytes(range(n)), b"\xff\xff" * n + b"\x00"):
            assert not codec.b45encode(data).endswith(" ")
    assert not v.verify_text(hc1[:-1] + " ").valid  # a space in place of a character is not


def test_expiry_boundaries_to_the_microsecond(world):
    """Valid from iat to exp inclusive; a microsecond outside either end is not."""
    h, creds, tmp = world
    v, _ = _verifier(h, tmp, [tmp / "tl1.json"], name="edge.json")
    claims = v.verify_text(creds["good"][1]).claims
    iat = dt.datetime.fromtimestamp(claims["iat"], dt.UTC)
    exp = dt.datetime.fromtimestamp(claims["exp"], dt.UTC)
    us = dt.timedelta(microseconds=1)
    for at, failed in ((iat - us, "expiry"), (iat, None), (exp, None), (exp + us, "expiry")):
        r = Verifier(v.trust, at=at).verify_text(creds["good"][1])
        assert r.failed == failed, (at, r.reason)
        if failed:
            assert ("expired on" if at > exp else "not valid before") in r.reason


def test_expired_trust_list_is_reported(world):
    h, creds, tmp = world
    later = NOW + dt.timedelta(days=30)  # the list's next update was 7 days after NOW
    v, store = _verifier(h, tmp, [tmp / "tl1.json"], at=later, name="exp.json")
    assert any("next update" in w or "expired" in w for w in store.warnings)
    assert v.verify_text(creds["good"][1]).valid


@pytest.mark.parametrize(
    ("card", "ok"),
    [
        (CARD, True),
        (CARD.replace("THUÝ HOÀ", "THÚY HÒA"), True),  # the other tone-placement style
        (CARD.replace("NGUYỄN THỊ", "nguyễn  thị"), True),  # case and spacing
        (CARD + "\r\n", True),
        (CARD.replace("HOÀ", "HOÁ"), ("full_name",)),  # another tone is another name
        (CARD.replace("NGUYỄN", "NGUYÊN"), ("full_name",)),
        (CARD.replace("17051990", "17051991"), ("dob",)),
        (CARD.replace("NGUYỄN", "NGUYÊN").replace("17051990", "17051991"),
         ("full_name", "dob")),
    ],
)
def test_holder_check(world, card, ok):
    """The holder step passes, or fails naming (``mismatched``) which of the credential's
    facts the card contradicts."""
    h, creds, tmp = world
    v, _ = _verifier(h, tmp, [tmp / "tl1.json"])
    r = v.verify_text(creds["good"][1], holder=parse_cccd(card))
    mismatched = () if ok is True else ok
    ok = ok is True
    assert r.valid is ok, r.reason
    assert r.step("holder").status == ("pass" if ok else "fail")
    assert r.to_json()["holder"]["matched"] is ok
    assert r.holder is not None and r.holder.mismatched == mismatched
    assert r.to_json()["holder"]["mismatched"] == list(mismatched)
    assert report_json_text(r) == terminal_safe_json(r.to_json())


def _side_by_side(*texts: str) -> bytes:
    images = [qr.to_image(t, scale=4).convert("L") for t in texts]
    w = sum(i.width for i in images) + 40 * len(images)
    h = max(i.height for i in images) + 40
    canvas = Image.new("L", (w, h), 255)
    x = 20
    for i in images:
        canvas.paste(i, (x, 20))
        x += i.width + 40
    buf = io.BytesIO()
    canvas.save(buf, "PNG")
    return buf.getvalue()


def test_picture_with_credential_and_id_card(world):
    h, creds, tmp = world
    v, _ = _verifier(h, tmp, [tmp / "tl1.json"])
    png = _side_by_side(creds["good"][1], CARD)
    reports, card = verify_image(v, png, label="photo")
    assert card is not None and card.full_name == "NGUYỄN THỊ THUÝ HOÀ"
    assert len(reports) == 1 and reports[0].valid, reports[0].reason
    assert reports[0].step("picture").status == "pass"
    assert reports[0].step("holder").status == "pass"
    # the card came from the credential's own picture: said, not taken as a scanned card
    assert reports[0].holder is not None
    assert reports[0].holder.card_source == "credential_picture"
    assert "check the physical card" in reports[0].step("holder").message
    given, _ = verify_image(v, png, label="photo", holder=parse_cccd(CARD))
    assert given[0].holder is not None and given[0].holder.card_source == "id_card"
    # QR codes read, none a credential: NOT VALID at prefix (as one such code), the picture
    # read; only a picture with no QR code read fails at picture (CANNOT READ)
    only_card, _ = verify_image(v, _side_by_side(CARD), label="card")
    assert only_card[0].failed == "prefix" and "ID card" in only_card[0].reason
    assert only_card[0].step("picture") == Step("picture", "pass", "QR code read")
    assert [s.name for s in only_card[0].steps] == [
        "picture", "prefix", "base45", "zlib", "cose", "cbor", "signature", "key_usage",
        "expiry", "schema", "revocation"]
    two, _ = verify_image(v, _side_by_side(CARD, "https://example.org"), label="two")
    # the card and another code: both said (it was "found an ID card QR only")
    assert two[0].failed == "prefix"
    assert two[0].reason.endswith("(found an ID card QR and 1 other QR code)"), two[0].reason
    assert two[0].step("picture").message == "2 QR codes read"
    three, _ = verify_image(v, _side_by_side(CARD, "https://a.example", "WIFI:S:x;;"),
                            label="three")
    assert three[0].reason.endswith("(found an ID card QR and 2 other QR codes)")
    assert "found an ID card QR only" in only_card[0].reason
    others, _ = verify_image(v, _side_by_side("https://a.example", "WIFI:S:x;;"), label="o")
    assert others[0].failed == "prefix"
    assert others[0].reason.endswith("(found 2 other QR codes)"), others[0].reason
    junk, _ = verify_image(v, b"not a picture", label="junk")
    assert junk[0].failed == "picture"


def test_unreadable_picture_says_what_to_do_when_the_picture_is_the_cause(world):
    """A picture that is itself the cause (too large, not an image, a decoding bomb): the
    Details (the picture step's message) carry qrdecode's hint of what to do, which was
    dropped; the verdict's translated reason says only how to take a photo again. "No QR
    code found" keeps its message alone: its hint is that reason."""
    h, _creds, tmp = world
    v, _ = _verifier(h, tmp, [tmp / "tl1.json"])
    big = io.BytesIO()
    Image.new("L", (8000, 7000), 255).save(big, "PNG")
    for source, says in (
            (big.getvalue(), "(the limit is 50 megapixels); photograph the code closer or "
                             "resize the picture below 50 megapixels"),
            (b"not a picture", "not a PNG, JPEG, WebP, BMP or GIF picture (the formats "
                               "read); save or screenshot it as PNG or JPEG (a phone's HEIC "
                               "photo too), or give the HC1: text itself"),
            (b"\xff\xd8\xff" + b"\xff\xda" * 300, "(a decoding bomb?); take the picture "
                                                 "again with a camera or a screenshot tool")):
        (report,), _ = verify_image(v, source, label="x")
        assert report.failed == "picture" and report.reason.endswith(says), report.reason
    blank = io.BytesIO()
    Image.new("L", (200, 200), 255).save(blank, "PNG")
    (report,), _ = verify_image(v, blank.getvalue(), label="blank")
    assert report.reason == "no QR code found in the picture"


def test_state_file_may_be_a_string(world):
    h, creds, tmp = world
    store = TrustStore.from_paths([h.ca / "ca.crt", tmp / "tl1.json"], at=NOW,
                                  state_file=str(tmp / "as-text.json"))
    assert Verifier(store, at=NOW).verify_text(creds["good"][1]).valid
    assert (tmp / "as-text.json").exists()


def test_every_signer_sharing_a_kid_is_tried(world):
    """kids are truncated hashes: HCERT says try every DSC with a matching kid."""
    from dataclasses import replace

    h, creds, tmp = world
    _v, store = _verifier(h, tmp, [tmp / "tl1.json"], name="kid.json")
    real = store.signers_for_kid(bytes.fromhex(
        Verifier(store, at=NOW).verify_text(creds["good"][1]).to_json()["signer"]["kid"]))[0]
    other = certs.load_signer(h.s1, PW)  # another commune's key under the same kid
    impostor = replace(real, certificate=other.certificate,
                       public_key=other.certificate.public_key())

    class Colliding:
        has_revocation_data = False

        def __init__(self, signers):
            self.signers = signers

        def signers_for_kid(self, kid):
            return self.signers

        def is_credential_revoked(self, uvci):
            return False

    ok = Verifier(Colliding([impostor, real]), at=NOW).verify_text(creds["good"][1])
    assert ok.valid and ok.signer is real
    bad = Verifier(Colliding([impostor]), at=NOW).verify_text(creds["good"][1])
    assert bad.failed == "signature" and "does not match" in bad.reason


def test_result_objects_are_read_only_values() -> None:
    """Step, HolderResult and Report compare, hash and print by their fields (as the frozen
    dataclasses they replaced); their fields are Final, refused at run time when compiled."""
    import vaxqr
    from vaxqr.verify import HolderResult, Report, Step

    a, b = Step("prefix", "pass", "HC1"), Step("prefix", "pass", "HC1")
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a != Step("prefix", "fail", "HC1") and a != ("prefix", "pass", "HC1")
    assert repr(a) == "Step(name='prefix', status='pass', message='HC1')"
    assert Step("cbor", "skipped").message == ""
    h = HolderResult(False, "NGUYEN VAN A", "1990-01-02", ("date of birth differs",))
    assert h == HolderResult(False, "NGUYEN VAN A", "1990-01-02", ("date of birth differs",))
    assert h != HolderResult(True, "NGUYEN VAN A", "1990-01-02")
    assert "matched=False" in repr(h)
    d = HolderResult(False, "NGUYEN VAN A", "1990-01-02", ("date of birth differs",),
                     mismatched=("dob",))
    assert d.mismatched == ("dob",) and h.mismatched == () and d != h
    assert "mismatched=('dob',)" in repr(d)
    r1 = Report("x", (a, Step("zlib", "fail", "corrupt")), "HC1:…", None, None, None, h)
    r2 = Report("x", (b, Step("zlib", "fail", "corrupt")), "HC1:…", None, None, None, h)
    assert r1 == r2 and hash(r1) == hash(r2)
    assert not r1.valid and r1.failed == "zlib" and r1.reason == "corrupt"
    assert r1 != Report("y", r1.steps) and "failed='zlib'" in repr(r1)
    with pytest.raises(TypeError):  # a dict credential is unhashable, as with a dataclass
        hash(Report("x", (a,), credential={"ver": "1.3.0"}))
    if "verify" in vaxqr.native_modules():
        for obj, field in ((a, "status"), (h, "matched"), (r1, "steps")):
            with pytest.raises(AttributeError):
                setattr(obj, field, None)
    for obj in (a, h, r1):  # slots: no new attributes in either build
        with pytest.raises(AttributeError):
            obj.extra = 1  # type: ignore[attr-defined]


def test_results_copy_and_pickle_as_the_dataclasses_did():
    """Step, HolderResult and Report were frozen dataclasses: copy.copy, copy.deepcopy and
    pickle worked on them. As compiled value classes they must still (the compiled build
    once raised TypeError: mypyc rebuilt them by calling __init__ with no arguments)."""
    import copy
    import pickle

    from vaxqr.verify import HolderResult, Report, Step

    step = Step("expiry", "fail", "credential expired on 2022-01-01 00:00 UTC")
    holder = HolderResult(False, "NGUYEN VAN A", "1990-01-01", ("name differs",))
    report = Report("stdin:1", (Step("prefix", "pass", "HC1"), step), payload="HC1:X",
                    credential={"ver": "1.3.0"}, claims={"iss": "VN", "iat": 1, "exp": 2},
                    holder=holder, warnings=("w",))
    for obj in (step, holder, report):
        for clone in (copy.copy(obj), copy.deepcopy(obj), pickle.loads(pickle.dumps(obj))):
            assert type(clone) is type(obj) and clone == obj and repr(clone) == repr(obj)
    assert pickle.loads(pickle.dumps(report)).to_json() == report.to_json()


def test_signer_issuer_and_claims_in_json(world):
    h, creds, tmp = world
    store = TrustStore.from_paths([h.s2 / "signer.crt"], at=NOW)  # the DSC alone, as given
    r = Verifier(store, at=NOW).verify_text(creds["good"][1])
    assert r.valid, r.reason
    signer = r.to_json()["signer"]
    assert "Kiên Giang" in signer["issuer"] and "31078" not in signer["issuer"]
    assert "31078" in signer["subject"] and signer["chain"] == [signer["subject"]]
    assert r.to_json()["claims"]["iss"] == "VN"
    # a credential whose signature fails: no claims are shown as the credential's
    other = make_hierarchy(tmp / "other")
    wrong = TrustStore.from_paths([other.s2 / "signer.crt"], at=NOW)
    bad = Verifier(wrong, at=NOW).verify_text(creds["good"][1])
    assert bad.failed == "signature" and bad.to_json()["claims"] is None
    assert report_json_text(bad) == terminal_safe_json(bad.to_json())


def test_a_time_in_the_minute_of_the_check_is_given_to_the_second(world):
    """Checked at hh:mm:30, a credential issued at hh:mm:38 said "not valid before hh:mm",
    which reads as a mistake; such a time is given with its seconds (and only such a time)."""
    h, _creds, tmp = world
    info, rec = _signer_and_record(h, dose_number="1", vaccine="pfizer")
    minute = NOW.replace(second=0, microsecond=0) + dt.timedelta(minutes=5)
    hc1, _iat, exp = issue.sign_record(info, rec, make_uvci(info.province_code,
                                                            info.commune_code),
                                       now=minute + dt.timedelta(seconds=38))
    v, _ = _verifier(h, tmp, [tmp / "tl1.json"], name="second.json")
    at_ = f"{minute:%Y-%m-%d %H:%M}"
    r = Verifier(v.trust, at=minute + dt.timedelta(seconds=30)).verify_text(hc1)
    assert r.reason == f"credential not valid before {at_}:38 UTC", r.reason
    r = Verifier(v.trust, at=minute - dt.timedelta(seconds=30)).verify_text(hc1)
    assert r.reason == f"credential not valid before {at_} UTC", r.reason
    end = dt.datetime.fromtimestamp(exp, dt.UTC)
    r = Verifier(v.trust, at=end + dt.timedelta(seconds=1)).verify_text(hc1)
    assert r.failed == "expiry" and r.reason.startswith("credential expired on")
    assert (f":{end.second:02d} UTC" in r.reason) is (end.second not in (0, 59)), r.reason
