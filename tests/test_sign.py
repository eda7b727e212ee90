import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from vaxqr import sign
from vaxqr.errors import DecodeError, KeyCertError, VerificationError

EC_KEY = ec.generate_private_key(ec.SECP256R1())
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
KID = b"\x01\x02\x03\x04\x05\x06\x07\x08"
PAYLOAD = sign.encode_cwt(iss="VN", iat=1_640_000_000, exp=1_671_536_000,
                          hcert={"ver": "1.3.0", "nam": {"fn": "Nguyễn", "fnt": "NGUYEN"}})


def _verify(data, key):
    msg = sign.parse_sign1(data)
    alg, kid = sign.check_headers(msg)
    sign.verify_signature(msg, key.public_key(), alg)
    return msg, alg, kid


@pytest.mark.parametrize(("key", "alg"), [(EC_KEY, sign.ES256), (RSA_KEY, sign.PS256)])
def test_sign_verify_identity(key, alg):
    data = sign.sign1(PAYLOAD, key, KID)
    assert data[0] == 0xD2  # tag 18
    msg, got_alg, kid = _verify(data, key)
    assert (got_alg, kid) == (alg, KID)
    assert msg.unprotected == {}
    assert cbor2.loads(msg.protected_bytes) == {1: alg, 4: KID}
    claims = sign.parse_cwt(msg.payload)
    assert (claims.iss, claims.iat, claims.exp) == ("VN", 1_640_000_000, 1_671_536_000)
    assert claims.hcert["nam"]["fn"] == "Nguyễn"
    if alg == sign.ES256:
        assert len(msg.signature) == 64


def test_weak_keys_refused():
    with pytest.raises(KeyCertError, match="P-256"):
        sign.sign1(PAYLOAD, ec.generate_private_key(ec.SECP384R1()), KID)


def _retag(data, *tags):
    item = cbor2.loads(data).value
    obj = list(item)
    for t in reversed(tags):
        obj = cbor2.CBORTag(t, obj)
    return cbor2.dumps(obj)


def test_tags_accepted_and_refused():
    data = sign.sign1(PAYLOAD, EC_KEY, KID)
    untagged = cbor2.dumps(list(cbor2.loads(data).value))
    _verify(untagged, EC_KEY)
    _verify(_retag(data, 61, 18), EC_KEY)
    for tags in [(98,), (61,), (18, 18), (1,)]:
        with pytest.raises(DecodeError) as info:
            sign.parse_sign1(_retag(data, *tags))
        assert info.value.step == "cose"


def _build(protected, unprotected, payload, signature):
    return cbor2.dumps(cbor2.CBORTag(18, [protected, unprotected, payload, signature]))


def test_alg_only_in_unprotected_header_refused():
    good = sign.parse_sign1(sign.sign1(PAYLOAD, EC_KEY, KID))
    data = _build(cbor2.dumps({4: KID}), {1: -7}, good.payload, good.signature)
    with pytest.raises(VerificationError, match="unprotected"):
        sign.check_headers(sign.parse_sign1(data))


def test_kid_rules():
    protected = cbor2.dumps({1: -7})
    tbs = sign.sig_structure(protected, PAYLOAD)
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    r, s = decode_dss_signature(EC_KEY.sign(tbs, ec.ECDSA(hashes.SHA256())))
    sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    msg = sign.parse_sign1(_build(protected, {4: KID}, PAYLOAD, sig))
    assert msg.kid == KID and msg.kid_location == "unprotected"
    sign.verify_signature(msg, EC_KEY.public_key(), sign.check_headers(msg)[0])
    for kid in (b"\x01" * 7, b"\x01" * 9):
        with pytest.raises(VerificationError, match="bytes"):
            sign.check_headers(sign.parse_sign1(_build(protected, {4: kid}, PAYLOAD, sig)))
    with pytest.raises(VerificationError, match="no key identifier"):
        sign.check_headers(sign.parse_sign1(_build(protected, {}, PAYLOAD, sig)))


def test_protected_bytes_used_as_received():
    # protected map with keys in the other order {4: kid, 1: alg}: re-encoding would differ
    protected = bytes.fromhex("a2") + cbor2.dumps(4)[0:1] + cbor2.dumps(KID) + b"\x01\x26"
    assert cbor2.loads(protected) == {4: KID, 1: -7}
    tbs = sign.sig_structure(protected, PAYLOAD)
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    r, s = decode_dss_signature(EC_KEY.sign(tbs, ec.ECDSA(hashes.SHA256())))
    data = _build(protected, {}, PAYLOAD, r.to_bytes(32, "big") + s.to_bytes(32, "big"))
    _verify(data, EC_KEY)


def test_alg_key_mismatch_and_bad_lengths():
    data = sign.sign1(PAYLOAD, EC_KEY, KID)
    msg = sign.parse_sign1(data)
    with pytest.raises(VerificationError, match="RSA key"):
        sign.verify_signature(msg, RSA_KEY.public_key(), sign.ES256)
    with pytest.raises(VerificationError, match="EC key"):
        sign.verify_signature(msg, EC_KEY.public_key(), sign.PS256)
    long_sig = _build(msg.protected_bytes, {}, msg.payload, msg.signature + b"\0" * 8)
    with pytest.raises(VerificationError, match="72 bytes"):
        _verify(long_sig, EC_KEY)


def test_duplicate_keys_refused():
    good = sign.parse_sign1(sign.sign1(PAYLOAD, EC_KEY, KID))
    dup_protected = bytes.fromhex("a3012604") + cbor2.dumps(KID) + b"\x01\x26"
    with pytest.raises(DecodeError, match="repeats a key"):
        sign.parse_sign1(_build(dup_protected, {}, good.payload, good.signature))
    dup_claims = bytes.fromhex("a2") + b"\x01" + cbor2.dumps("VN") + b"\x01" + cbor2.dumps("XX")
    with pytest.raises(DecodeError) as info:
        sign.parse_cwt(dup_claims)
    assert info.value.step == "cbor"


def test_deep_nesting_and_huge_lengths():
    deep = b"\x81" * 50_000 + b"\x00"
    with pytest.raises(DecodeError):
        sign.parse_sign1(deep)
    huge = b"\x5b" + (2**62).to_bytes(8, "big") + b"abc"  # claims 2^62 bytes
    with pytest.raises(DecodeError):
        sign.parse_sign1(huge)


def test_cwt_structure_rules():
    for bad in [cbor2.dumps([1, 2]), cbor2.dumps({1: "VN"}), cbor2.dumps({-260: {1: {}, 2: {}}}),
                cbor2.dumps({-260: {1: {}}, 4: "tomorrow"}), cbor2.dumps({-260: {1: {}}, 1: 5})]:
        with pytest.raises(DecodeError) as info:
            sign.parse_cwt(bad)
        assert info.value.step == "cbor"


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_flipped_byte_fails_cleanly(data):
    cose = sign.sign1(PAYLOAD, EC_KEY, KID)
    i = data.draw(st.integers(0, len(cose) - 1))
    bit = data.draw(st.integers(0, 7))
    mutated = bytearray(cose)
    mutated[i] ^= 1 << bit
    with pytest.raises((DecodeError, VerificationError)):
        msg = sign.parse_sign1(bytes(mutated))
        alg, kid = sign.check_headers(msg)
        if kid != KID:
            raise VerificationError("unknown kid", step="signature")
        sign.verify_signature(msg, EC_KEY.public_key(), alg)
        sign.parse_cwt(msg.payload)
