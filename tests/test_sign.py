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
    for tags in [(98,), (61,), (18, 18), (1,), (55799, 18), (256, 18), (61, 55799, 18),
                 (18, 55799), (55799,), (256,), (18, 256), (55799, 61, 18), (0,), (2,)]:
        with pytest.raises(DecodeError) as info:
            sign.parse_sign1(_retag(data, *tags))
        assert info.value.step == "cose"
        assert "tag" in str(info.value)
    # the nesting is shown whole: "18(18(", unbalanced, read as a typo in the message
    for tags, shown in (((18, 18), "18(18(…))"), ((61,), "61(…)"), ((98,), "98(…)")):
        with pytest.raises(DecodeError) as info:
            sign.parse_sign1(_retag(data, *tags))
        assert f"unexpected CBOR tag {shown}" in str(info.value), str(info.value)


def test_every_tag_cbor2_decodes_itself_is_in_the_refused_list():
    """cbor2 turns the tags it knows into Python values (or drops them: 55799, 256), so a
    check of the decoded item cannot see them: each needs a refusing decoder of ours. Any
    tag a newer cbor2 learns must be added to sign._CBOR2_TAGS."""
    probes = [*range(1 << 16), 55800, 55801, 1 << 16, 2**32 - 1, 2**64 - 1]
    known = set()
    for tag in probes:
        for value in (0, "x", b"x", [0]):
            try:
                item = cbor2.loads(cbor2.dumps(cbor2.CBORTag(tag, value)))
            except Exception:
                known.add(tag)
                break
            if not isinstance(item, cbor2.CBORTag) or item.tag != tag:
                known.add(tag)
                break
    assert known <= set(sign._CBOR2_TAGS), sorted(known - set(sign._CBOR2_TAGS))
    for tag in known:  # and the strict decoder refuses each (tag 0 only in the claims)
        with pytest.raises(DecodeError, match=f"CBOR tag {tag} "):
            sign.loads(cbor2.dumps(cbor2.CBORTag(tag, "2021-01-01T00:00:00Z")), step="cose")


def test_tags_inside_the_protected_header_and_the_claims_are_refused():
    good = sign.parse_sign1(sign.sign1(PAYLOAD, EC_KEY, KID))
    claims = cbor2.loads(PAYLOAD)
    for protected in (cbor2.dumps(cbor2.CBORTag(55799, {1: -7, 4: KID})),
                      cbor2.dumps(cbor2.CBORTag(256, {1: -7, 4: KID})),
                      cbor2.dumps({1: -7, 4: cbor2.CBORTag(55799, KID)}),
                      cbor2.dumps({1: cbor2.CBORTag(4242, -7), 4: KID})):
        with pytest.raises(DecodeError, match="not allowed in the COSE protected header"):
            sign.parse_sign1(_build(protected, {}, good.payload, good.signature))
    with pytest.raises(DecodeError, match="not allowed inside a COSE_Sign1"):
        sign.parse_sign1(_build(good.protected_bytes, {4: cbor2.CBORTag(18, KID)},
                                good.payload, good.signature))
    hcert = claims[-260][1]
    for payload in (cbor2.dumps(cbor2.CBORTag(55799, claims)),
                    cbor2.dumps(cbor2.CBORTag(256, claims)),
                    cbor2.dumps(claims, string_referencing=True),
                    cbor2.dumps({**claims, -260: cbor2.CBORTag(55799, {1: hcert})}),
                    cbor2.dumps({**claims, -260: {1: cbor2.CBORTag(256, hcert)}}),
                    cbor2.dumps({**claims, 6: cbor2.CBORTag(1, 1_640_000_000)}),
                    cbor2.dumps({**claims, 4: 2**64})):
        with pytest.raises(DecodeError, match="is not allowed in the CWT claims") as info:
            sign.parse_cwt(payload)
        assert info.value.step == "cbor"
    dated = {**claims, -260: {1: {**hcert, "dt": cbor2.CBORTag(0, "2021-10-01T00:00:00Z")}}}
    assert str(sign.parse_cwt(cbor2.dumps(dated)).hcert["dt"]) == "2021-10-01 00:00:00+00:00"


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


def _es256_by(key, protected=None, payload=PAYLOAD):
    """A COSE_Sign1 signed "ES256" (ECDSA with SHA-256) by ``key``, whatever its curve."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    protected = protected if protected is not None else cbor2.dumps({1: sign.ES256, 4: KID})
    r, s = decode_dss_signature(key.sign(sign.sig_structure(protected, payload),
                                         ec.ECDSA(hashes.SHA256())))
    size = (key.curve.key_size + 7) // 8
    return sign.parse_sign1(_build(protected, {}, payload,
                                   r.to_bytes(size, "big") + s.to_bytes(size, "big")))


@pytest.mark.parametrize("curve", [ec.SECP256K1(), ec.SECP192R1(), ec.BrainpoolP256R1(),
                                   ec.SECP224R1(), ec.SECP521R1(), ec.BrainpoolP384R1()],
                         ids=lambda c: c.name)
def test_es256_refuses_keys_on_other_curves(curve):
    """ES256 is ECDSA on P-256 (SPEC §2; "other elliptic curves are not supported"): a
    signature that verifies on another curve (a 256-bit one too) is not an ES256 one."""
    key = ec.generate_private_key(curve)
    msg = _es256_by(key)
    with pytest.raises(VerificationError) as info:
        sign.verify_signature(msg, key.public_key(), sign.ES256)
    assert info.value.step == "signature"
    assert str(info.value) == \
        f"the signer's key is on curve {curve.name}; ES256 needs P-256 (or P-384)"


def test_es256_on_p384_is_tolerated_as_in_the_eu_test_data():
    """ES 401-403 of the EU test data: a P-384 DSC under alg -7 (SHA-256), expected valid."""
    key = ec.generate_private_key(ec.SECP384R1())
    sign.verify_signature(_es256_by(key), key.public_key(), sign.ES256)
    key256 = ec.generate_private_key(ec.SECP256R1())
    sign.verify_signature(_es256_by(key256), key256.public_key(), sign.ES256)


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


# --------------------------------------------------------------------------- fast paths
# The byte-level encoders and the COSE_Sign1 fast path must agree with cbor2 and with the
# general (strict CBOR decoder) path on every input.


@pytest.mark.parametrize("n", [0, 1, 23, 24, 255, 256, 65535, 65536])
def test_hand_written_cbor_matches_cbor2(n):
    blob = bytes(range(256)) * (n // 256) + bytes(range(n % 256))
    assert sign.sig_structure(blob, PAYLOAD) == cbor2.dumps(["Signature1", blob, b"", PAYLOAD])
    assert sign.sig_structure(KID, blob) == cbor2.dumps(["Signature1", KID, b"", blob])
    assert sign._bstr_head(n) + blob == cbor2.dumps(blob)


@pytest.mark.parametrize(("key", "alg"), [(EC_KEY, sign.ES256), (RSA_KEY, sign.PS256)])
def test_sign1_bytes_match_cbor2(key, alg):
    for payload in (PAYLOAD, b"", b"x" * 300, b"y" * 70_000):
        data = sign.sign1(payload, key, bytearray(KID))
        item = cbor2.loads(data)
        protected, unprotected, got_payload, signature = item.value
        assert (unprotected, got_payload) == ({}, payload)
        assert protected == cbor2.dumps({1: alg, 4: KID})
        assert data == cbor2.dumps(cbor2.CBORTag(18, [protected, {}, payload, signature]))
        _verify(data, key)


def _der(r: int, s: int) -> bytes:
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    return encode_dss_signature(r, s)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**256 - 1), st.integers(1, 2**256 - 1))
def test_der_and_raw_ecdsa_conversions_match_cryptography(r, s):
    raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    assert sign._raw_ecdsa(_der(r, s)) == raw
    assert sign._der_ecdsa(raw, 32) == _der(r, s)
    raw48 = r.to_bytes(48, "big") + (s << 100).to_bytes(48, "big")
    assert sign._der_ecdsa(raw48, 48) == _der(r, s << 100)


@pytest.mark.parametrize(("r", "s"), [(0, 1), (1, 1), (2**255, 2**255), (2**248 - 1, 127),
                                      (2**256 - 1, 2**256 - 1), (128, 2**7), (2**8, 1)])
def test_der_and_raw_ecdsa_edges(r, s):
    raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    assert sign._raw_ecdsa(_der(r, s)) == raw
    assert sign._der_ecdsa(raw, 32) == _der(r, s)


def test_raw_ecdsa_of_real_signatures():
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    for i in range(300):
        der = EC_KEY.sign(i.to_bytes(2, "big"), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        assert sign._raw_ecdsa(der) == r.to_bytes(32, "big") + s.to_bytes(32, "big")


def _outcome(fn, data):
    try:
        msg = fn(data)
    except DecodeError as exc:
        return ("error", exc.step, str(exc), getattr(exc, "hint", None))
    return ("ok", msg.protected_bytes, dict(msg.protected), dict(msg.unprotected), msg.payload,
            msg.signature, msg.tags)


def _agree(data: bytes) -> None:
    """parse_sign1 (fast path, cache cold and warm) gives what the general path gives."""
    general = _outcome(sign._parse_sign1_general, data)
    sign._PROTECTED_MAPS.clear()
    assert _outcome(sign.parse_sign1, data) == general
    assert _outcome(sign.parse_sign1, data) == general  # from the protected-header cache
    fast = sign._parse_sign1_fast(data) if general[0] == "ok" else None
    if fast is not None:
        assert _outcome(lambda _: fast, data) == general


def _cose_parts():
    bstr_forms = st.sampled_from(["short", "1", "2", "4", "8"])

    def bstr(blob, form):
        n = len(blob)
        if form == "short" and n < 24:
            return bytes((0x40 + n,)) + blob
        size = {"short": 1, "1": 1, "2": 2, "4": 4, "8": 8}[form]
        if n >= 256**size:
            return cbor2.dumps(blob)
        return bytes((0x58 + size.bit_length() - 1,)) + n.to_bytes(size, "big") + blob

    protected = st.sampled_from([b"", cbor2.dumps({1: -7, 4: KID}), cbor2.dumps({1: -7}),
                                 cbor2.dumps({4: KID, 1: -37}), cbor2.dumps([1]),
                                 cbor2.dumps({1: -7, 4: KID}) + b"\x00", b"\xa2\x01\x26\x01\x26",
                                 cbor2.dumps({1: [1, 2]}), cbor2.dumps({True: 1}), b"\xff",
                                 b"\xd8\x1c\x81\x00", cbor2.dumps({"a": {"b": b"c"}}),
                                 b"\xd9\xd9\xf7" + cbor2.dumps({1: -7, 4: KID}),
                                 b"\xd9\x01\x00" + cbor2.dumps({1: -7, 4: KID}),
                                 cbor2.dumps({1: -7, 4: cbor2.CBORTag(55799, KID)}),
                                 cbor2.dumps({1.0: -7, 4: KID}), cbor2.dumps({1: -7, 4.0: KID}),
                                 cbor2.dumps({True: -7, 4: KID})])
    return st.tuples(
        st.sampled_from([b"", b"\xd2", b"\xd8\x3d\xd2", b"\xd8\x62", b"\xd2\xd2", b"\xd8\x3d",
                         b"\xd9\xd9\xf7\xd2", b"\xd9\x01\x00\xd2", b"\xd8\x3d\xd9\xd9\xf7\xd2",
                         b"\xd2\xd9\xd9\xf7", b"\xd9\xd9\xf7"]),
        st.sampled_from([b"\x84", b"\x83", b"\x85", b"\x9f", b"\xa4"]),
        protected, bstr_forms,
        st.sampled_from([b"\xa0", b"\xa1\x04" + cbor2.dumps(KID), b"\xa1\x04\x40", b"\x80",
                         b"\xa1\x04\xd9\xd9\xf7" + cbor2.dumps(KID), b"\xd9\xd9\xf7\xa0",
                         b"\xa1\xf9\x44\x00" + cbor2.dumps(KID), b"\xa1\xf5\x26",
                         b"\xbf\xff", b"\x40", b"\xa2\x01\x01\x01\x01"]),
        st.binary(max_size=80), bstr_forms, st.binary(max_size=70), bstr_forms,
        st.sampled_from([b"", b"\x00", b"\xff", b"\x40"]),
    ).map(lambda p: p[0] + p[1] + bstr(p[2], p[3]) + p[4] + bstr(p[5], p[6]) + bstr(p[7], p[8])
          + p[9])


@settings(max_examples=1500, deadline=None)
@given(_cose_parts())
def test_parse_sign1_fast_path_agrees_with_general_path(data):
    _agree(data)


@settings(max_examples=1500, deadline=None)
@given(st.data())
def test_parse_sign1_fast_path_agrees_on_damaged_messages(data):
    cose = data.draw(st.sampled_from([sign.sign1(PAYLOAD, EC_KEY, KID),
                                      sign.sign1(b"x" * 300, RSA_KEY, KID)]))
    mutated = bytearray(cose)
    for _ in range(data.draw(st.integers(1, 3))):
        mutated[data.draw(st.integers(0, len(cose) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(mutated)))
    extra = data.draw(st.binary(max_size=3))
    _agree(bytes(mutated))
    _agree(bytes(mutated[:cut]) + extra)
    _agree(cose[:cut])


def test_parse_sign1_fast_path_is_taken_for_our_output():
    data = sign.sign1(PAYLOAD, EC_KEY, KID)
    for cose, tags in ((data, (18,)), (b"\xd8\x3d" + data, (61, 18)), (data[1:], ())):
        fast = sign._parse_sign1_fast(cose)
        assert fast is not None and fast.tags == tags


def test_protected_header_cache_hands_out_copies():
    data = sign.sign1(PAYLOAD, EC_KEY, KID)
    first = sign.parse_sign1(data)
    first.protected[1] = -37  # type: ignore[index]  # a careless caller
    assert sign.parse_sign1(data).protected == {1: -7, 4: KID}
    assert sign.check_headers(sign.parse_sign1(data)) == (sign.ES256, KID)


def test_protected_header_cache_is_bounded():
    for i in range(600):
        sign.parse_sign1(_build(cbor2.dumps({1: -7, 4: i.to_bytes(8, "big")}), {}, PAYLOAD,
                                b"\0" * 64))
    assert len(sign._PROTECTED_MAPS) <= 256


def _int_claim_reference(value, present=True):
    """The numeric-claim rule, written plainly (no fast path): an integer NumericDate,
    within ±2**40, or absent (HCERT: integer timestamps only, no floats)."""
    if not present:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        kind = {bool: "a boolean", float: "a float", str: "text", bytes: "a byte string",
                list: "an array", dict: "a map"}.get(type(value))
        what = kind or ("null" if value is None else "another type")
        if isinstance(value, bool | float):
            what += f" ({value!r})"
        raise DecodeError(f"CWT claim iat must be an integer NumericDate, not {what}",
                          step="cbor")
    if not -(2**40) < value < 2**40:
        raise DecodeError("CWT claim iat is out of range", step="cbor")
    return value


@pytest.mark.parametrize("present", [True, False])
@pytest.mark.parametrize("value", [None, 0, 1, -1, 2**40 - 1, 2**40, -(2**40) + 1, -(2**40),
                                   2**64, True, False, 1.5, -0.0, float("nan"), float("inf"),
                                   2.0**41, 1.6e9, float(1_640_000_000), "1", b"1", [1],
                                   {1: 1}])
def test_int_claim_fast_path_agrees(value, present):
    def outcome(fn):
        try:
            return ("ok", fn(), None)
        except DecodeError as exc:
            return ("error", str(exc), exc.step)

    claims = {6: value} if present else {}
    assert outcome(lambda: sign._int_claim(claims, 6, "iat")) == outcome(
        lambda: _int_claim_reference(value, present))


def test_float_numeric_dates_refused():
    """HCERT NumericDates are integers; a float (even a whole one) is refused, not truncated."""
    claims = cbor2.loads(sign.encode_cwt(iss="VN", iat=1, exp=2, hcert={"ver": "1.3.0"}))
    for value in (1.6e9, float(1_640_000_000), 1_640_000_000.5):
        with pytest.raises(DecodeError, match="iat must be an integer NumericDate, not a flo"):
            sign.parse_cwt(cbor2.dumps({**claims, 6: value}))
        with pytest.raises(DecodeError, match="exp must be an integer NumericDate, not a flo"):
            sign.parse_cwt(cbor2.dumps({**claims, 4: value}))


def _crit_reference(msg):
    """RFC 9052 §3.1 as vaxqr applies it: crit protected, a non-empty array of int or text
    labels, each one vaxqr understands (alg 1, kid 4)."""
    if 2 in msg.unprotected:
        raise VerificationError("the COSE crit parameter must be in the protected header",
                                step="signature")
    if 2 not in msg.protected:
        return
    crit = msg.protected[2]
    if not isinstance(crit, list) or not crit or not all(
            isinstance(x, int | str) and not isinstance(x, bool) for x in crit):
        raise VerificationError(
            "the COSE crit parameter must be a non-empty array of header labels",
            step="signature")
    unknown = [x for x in crit if x not in (1, 4)]
    if len(unknown) == 1:
        raise VerificationError(f"the COSE header marks parameter {unknown[0]!r} as critical "
                                "(crit), and vaxqr does not understand it", step="signature")
    if unknown:
        raise VerificationError(
            f"the COSE header marks parameters {', '.join(map(repr, unknown))} as critical "
            "(crit), and vaxqr does not understand them", step="signature")


def _check_headers_reference(msg):
    """check_headers written plainly (no fast path)."""
    _crit_reference(msg)
    alg = msg.alg
    if alg is None:
        where = " (it is only in the unprotected header)" if 1 in msg.unprotected else ""
        raise VerificationError(f"no signature algorithm in the protected header{where}",
                                step="signature")
    if alg not in sign.ALG_NAMES:
        raise VerificationError(f"unsupported signature algorithm {alg}", step="signature")
    if 4 in msg.protected:  # HCERT §3.3.3: the protected kid, when there is one
        kid = msg.protected[4]
        if not isinstance(kid, bytes):
            what = {str: "text", int: "an integer", list: "an array", bool: "a boolean",
                    float: "a float", dict: "a map"}.get(type(kid), "null")
            if isinstance(kid, bool | float):
                what += f" ({kid!r})"
            raise VerificationError(f"the key identifier (kid) in the protected header is "
                                    f"{what}, not a byte string", step="signature")
    else:
        kid = msg.unprotected.get(4)
        kid = kid if isinstance(kid, bytes) else None
    if kid is None:
        raise VerificationError("no key identifier (kid) in the COSE headers", step="signature")
    if len(kid) != 8:
        raise VerificationError(f"key identifier has {len(kid)} bytes; HCERT requires 8",
                                step="signature")
    return alg, kid


_HEADER_VALUES = [None, -7, -37, -35, 1, True, "x", b"\x01" * 8, b"\x01" * 7, b"", [1], 1.0]


def _headers_outcome(fn, msg):
    try:
        return ("ok", fn(msg))
    except VerificationError as exc:
        return ("error", str(exc), exc.step)


@pytest.mark.parametrize("alg", _HEADER_VALUES)
@pytest.mark.parametrize("kid", _HEADER_VALUES)
@pytest.mark.parametrize("unprotected", [{}, {4: KID}, {1: -7}, {4: b"\x02" * 9}])
def test_check_headers_fast_path_agrees(alg, kid, unprotected):
    protected = {k: v for k, v in ((1, alg), (4, kid)) if v is not None}
    msg = sign.CoseSign1(cbor2.dumps(protected), protected, unprotected, b"", b"", (18,))

    assert _headers_outcome(sign.check_headers, msg) == \
        _headers_outcome(_check_headers_reference, msg)


@pytest.mark.parametrize("crit", [None, [99], ["x", 1], [1, 99, "y"], [], 4, [1.0], [True],
                                  [1], [4], [1, 4], [2], [3]])
@pytest.mark.parametrize("where", ["protected", "unprotected"])
@pytest.mark.parametrize(("alg", "kid"), [(-7, KID), (-7, b"\x01" * 7), (None, KID),
                                          (-35, KID)])
def test_check_headers_with_crit_agrees(crit, where, alg, kid):
    protected = {k: v for k, v in ((1, alg), (4, kid)) if v is not None}
    unprotected = {}
    if crit is not None:
        (protected if where == "protected" else unprotected)[2] = crit
    msg = sign.CoseSign1(cbor2.dumps(protected), protected, unprotected, b"", b"", (18,))

    got = _headers_outcome(sign.check_headers, msg)
    assert got == _headers_outcome(_check_headers_reference, msg)
    if crit is not None and (where == "unprotected" or crit not in ([1], [4], [1, 4])):
        assert got[0] == "error" and "crit" in got[1]


def test_parsed_messages_are_read_only_when_compiled():
    """CoseSign1 and CwtClaims declare their fields Final: mypy rejects assignments in the
    pure build, and the compiled build (mypyc) refuses them at run time."""
    import vaxqr

    msg = sign.parse_sign1(sign.sign1(PAYLOAD, EC_KEY, KID))
    claims = sign.parse_cwt(sign.encode_cwt(iss="VN", iat=1, exp=2, hcert={"ver": "1.3.0"}))
    assert (claims.iss, claims.iat, claims.exp, dict(claims.hcert)) == ("VN", 1, 2,
                                                                      {"ver": "1.3.0"})
    assert "CoseSign1(" in repr(msg) and "tags=(18,)" in repr(msg)
    if "sign" in vaxqr.native_modules():
        with pytest.raises(AttributeError):
            msg.payload = b""  # type: ignore[misc]
        with pytest.raises(AttributeError):
            claims.exp = 3  # type: ignore[misc]
        assert msg.payload == PAYLOAD and claims.exp == 2
    else:  # slots still refuse new attributes
        with pytest.raises(AttributeError):
            msg.extra = 1  # type: ignore[attr-defined]


def _strict(data):
    """The strict decoder as parse_cwt calls it (tag 0 allowed, every other tag refused)."""
    try:
        return ("ok", sign.loads(data, step="cbor", tags=sign._CWT_TAGS))
    except DecodeError as exc:
        return ("error", str(exc))


# Tags: those HCERT refuses (cbor2 decodes most of them itself; 55799 and 256 it drops),
# tag 0 (allowed in the claims), and ones cbor2 does not know. Integers outside 64 bits are
# bignums (tags 2 and 3) once encoded.
_TAGS = st.sampled_from([0, 1, 2, 18, 25, 28, 37, 61, 256, 258, 1004, 4242, 55799])
_cbor_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=8)
    | st.binary(max_size=8) | st.floats(allow_nan=False),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=4) | st.integers(-30, 30), inner, max_size=4)
    | st.builds(cbor2.CBORTag, _TAGS, inner),
    max_leaves=20)


def _tags_in(value):
    """The tags ``value`` encodes with (bignums as tags 2 and 3)."""
    if isinstance(value, cbor2.CBORTag):
        return {value.tag} | _tags_in(value.value)
    if type(value) is int and not -(2**64) <= value < 2**64:
        return {2 if value > 0 else 3}
    if isinstance(value, list):
        return set().union(*map(_tags_in, value))
    if isinstance(value, dict):
        return set().union(*map(_tags_in, value), *map(_tags_in, value.values()))
    return set()


@settings(max_examples=1500, deadline=None)
@given(_cbor_values, st.binary(max_size=6), st.sampled_from(["plain", "trailing", "cut"]))
def test_cwt_fast_decode_agrees_with_the_strict_decoder(value, extra, how):
    """The sentinel fast path returns an item only where the strict decoder returns the
    same one (and no trailing bytes); otherwise the strict path answers. Any tag is left to
    the strict path, which refuses all but tag 0 and names the tag."""
    data = cbor2.dumps(value)
    data = {"plain": data, "trailing": data + (extra or b"\x00"), "cut": data[:-1] + extra}[how]
    fast = sign._loads_exactly_one(data)
    strict = _strict(data)
    if fast is not sign._SENTINEL:  # compared encoded: a cut may decode to a NaN
        assert strict[0] == "ok" and cbor2.dumps(strict[1]) == cbor2.dumps(fast)
    tags = _tags_in(value)
    if how == "plain" and not tags:
        assert fast is not sign._SENTINEL and strict == ("ok", value)
    if how == "plain" and tags:
        assert fast is sign._SENTINEL
        if tags - {0}:
            assert strict[0] == "error"
        if 0 not in tags:
            assert "CBOR tag" in strict[1] and "is not allowed in the CWT claims" in strict[1]
    if how == "trailing":
        assert fast is sign._SENTINEL and strict[0] == "error"


def test_cwt_fast_decode_falls_back_on_every_strictness_rule():
    for data in (b"\xa2\x01\x01\x01\x02",  # a repeated map key
                 b"\xd8\x1c\x00",  # value sharing
                 b"\x81" * (sign.MAX_CBOR_DEPTH + 1) + b"\x00",  # too deep
                 b"\x01" + sign._SENTINEL[:8], b"", b"\xff"):
        assert sign._loads_exactly_one(data) is sign._SENTINEL
        assert _strict(data)[0] == "error"
    # around the depth limit, where the wrapper adds a level: the two agree or it falls back
    for depth in range(sign.MAX_CBOR_DEPTH - 3, sign.MAX_CBOR_DEPTH + 3):
        data = b"\x81" * depth + b"\x00"
        fast, strict = sign._loads_exactly_one(data), _strict(data)
        assert fast is sign._SENTINEL or strict == ("ok", fast), depth
    # the whole parse still gives the strict verdicts and messages
    with pytest.raises(DecodeError, match="repeats a key"):
        sign.parse_cwt(b"\xa2\x01\x01\x01\x02")
    with pytest.raises(DecodeError, match="unexpected byte"):
        sign.parse_cwt(sign.encode_cwt(iss="VN", iat=1, exp=2, hcert={"ver": "1.3.0"}) + b"\x00")


def _same_as_strict(data):
    fast = sign._loads_plain(data)
    strict = _strict(data)
    if fast is not sign._SENTINEL:  # it read the item: exactly what the strict path reads
        assert strict[0] == "ok" and type(strict[1]) is type(fast)
        assert cbor2.dumps(strict[1]) == cbor2.dumps(fast)
    return fast


@settings(max_examples=1500, deadline=None)
@given(_cbor_values, st.binary(max_size=6), st.sampled_from(["plain", "trailing", "cut"]))
def test_plain_cbor_reader_agrees_with_the_strict_decoder(value, extra, how):
    data = cbor2.dumps(value)
    data = {"plain": data, "trailing": data + (extra or b"\x00"), "cut": data[:-1] + extra}[how]
    fast = _same_as_strict(data)
    if how == "trailing" or _tags_in(value):
        assert fast is sign._SENTINEL


@settings(max_examples=1500, deadline=None)
@given(st.binary(max_size=40))
def test_plain_cbor_reader_on_random_bytes(data):
    _same_as_strict(data)


@settings(max_examples=500, deadline=None)
@given(st.data())
def test_plain_cbor_reader_on_damaged_cwts(data):
    cwt = sign.encode_cwt(iss="VN", iat=1_700_000_000, exp=1_800_000_000,
                          hcert={"ver": "1.3.0", "nam": {"fn": "Nguyễn", "fnt": "NGUYEN"},
                                 "v": [{"dn": 2, "sd": 2, "ci": "URN:UVCI:01:VN:X"}]})
    assert sign._loads_plain(cwt) == sign.loads(cwt, step="cbor")  # read, not deferred
    mutated = bytearray(cwt)
    for _ in range(data.draw(st.integers(1, 3))):
        mutated[data.draw(st.integers(0, len(cwt) - 1))] = data.draw(st.integers(0, 255))
    _same_as_strict(bytes(mutated))
    _same_as_strict(bytes(mutated[:data.draw(st.integers(0, len(mutated)))]))


def test_plain_cbor_reader_defers_what_it_does_not_read():
    deep = b"\x81" * (sign.MAX_CBOR_DEPTH - 1) + b"\x00"
    for data in (b"\xa2\x01\x01\x01\x02",  # a repeated map key
                 b"\xa1\x62\xc3\x28\x01",  # a key that is not UTF-8
                 b"\xd8\x1c\x00", b"\xc1\x01",  # tags
                 b"\xf5", b"\xf6", b"\xf9\x3c\x00",  # simple values, floats
                 b"\x9f\xff", b"\x5f\xff",  # indefinite lengths
                 b"\xa1\x81\x01\x02",  # an array as a key
                 deep, b"\x81" * 70 + b"\x00",  # at and past the depth limits
                 b"\x5a\xff\xff\xff\xff", b"\x7b" + b"\xff" * 8,  # longer than the data
                 b"", b"\x01\x01"):
        assert sign._loads_plain(data) is sign._SENTINEL, data
    assert sign._loads_plain(b"\x1b" + b"\xff" * 8) == 2**64 - 1
    assert sign._loads_plain(b"\x3b" + b"\xff" * 8) == -(2**64)
    import vaxqr

    assert sign._COMPILED == ("sign" in vaxqr.native_modules())


def _tag_head(tag):
    if tag < 24:
        return bytes((0xC0 + tag,))
    for info, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if tag < 1 << (8 * size):
            return bytes((0xC0 + info,)) + tag.to_bytes(size, "big")
    raise ValueError(tag)


def test_cwt_fast_decode_refuses_a_trailing_tag_around_the_sentinel():
    """Trailing bytes that are a tag head (``d9 d9 f7``: self-described CBOR; ``d9 01 00``:
    a string-reference namespace) wrap the sentinel, and cbor2 gives it back unchanged: the
    fast path must not take that for the end of the payload. Every tag below 2**16 and a
    few wider ones, alone and doubled."""
    cwt = sign.encode_cwt(iss="VN", iat=1, exp=2, hcert={"ver": "1.3.0"})
    tags = [*range(1 << 16), 1 << 16, 2**32 - 1, 2**64 - 1]
    heads = [_tag_head(t) for t in tags]
    heads += [_tag_head(55799) * 2, _tag_head(256) + _tag_head(55799),
              b"\xda\x00\x00\xd9\xf7", b"\xdb" + (55799).to_bytes(8, "big")]  # non-minimal
    for head in heads:
        assert sign._loads_exactly_one(cwt + head) is sign._SENTINEL, head.hex()
        assert sign._loads_plain(cwt + head) is sign._SENTINEL, head.hex()
    for head in (_tag_head(55799), _tag_head(256)):
        with pytest.raises(DecodeError, match="unexpected byte"):
            sign.parse_cwt(cwt + head)


def test_parsed_messages_copy_and_pickle():
    """CoseSign1 and CwtClaims were frozen dataclasses (copy and pickle worked); as
    compiled read-only classes they still copy and pickle by their fields."""
    import copy
    import pickle

    msg = sign.parse_sign1(sign.sign1(PAYLOAD, EC_KEY, KID))
    claims = sign.parse_cwt(sign.encode_cwt(iss="VN", iat=1, exp=2, hcert={"ver": "1.3.0"}))
    with_nbf = sign.parse_cwt(cbor2.dumps({1: "VN", 6: 1, 4: 3, 5: 2, -260: {1: {}}}))
    assert with_nbf.nbf == 2 and claims.nbf is None and "nbf=2" in repr(with_nbf)
    for clone in (copy.copy(with_nbf), pickle.loads(pickle.dumps(with_nbf))):
        assert (clone.iat, clone.exp, clone.nbf) == (1, 3, 2)
    for clone in (copy.copy(msg), copy.deepcopy(msg), pickle.loads(pickle.dumps(msg))):
        assert type(clone) is sign.CoseSign1
        assert (clone.protected_bytes, dict(clone.protected), dict(clone.unprotected),
                clone.payload, clone.signature, clone.tags) == (
            msg.protected_bytes, dict(msg.protected), dict(msg.unprotected), msg.payload,
            msg.signature, msg.tags)
    for clone in (copy.copy(claims), copy.deepcopy(claims), pickle.loads(pickle.dumps(claims))):
        assert type(clone) is sign.CwtClaims
        assert (clone.iss, clone.iat, clone.exp, dict(clone.hcert)) == ("VN", 1, 2,
                                                                       {"ver": "1.3.0"})


def _parse_cwt_reference(payload):
    """parse_cwt's rules written plainly on the strict decoder's output: (iss, iat, exp,
    hcert) or the step of the error."""
    try:
        claims = sign.loads(payload, step="cbor", tags=sign._CWT_TAGS)
    except DecodeError as exc:
        return ("error", exc.step)
    from collections.abc import Mapping

    if not isinstance(claims, Mapping):
        return ("error", "cbor")
    if any(type(k) not in (int, str) for k in claims):  # bool and float are not int
        return ("error", "cbor")
    hcert = claims.get(-260)
    if not isinstance(hcert, Mapping) or len(hcert) != 1:
        return ("error", "cbor")
    (key, dcc), = hcert.items()
    if type(key) is not int or key != 1 or not isinstance(dcc, Mapping):
        return ("error", "cbor")
    iss = claims.get(1)
    if iss is not None and type(iss) is not str:
        return ("error", "cbor")
    times = []
    for k in (6, 4, 5):
        if k not in claims:
            times.append(None)
            continue
        v = claims[k]
        if type(v) is not int or not -(2**40) < v < 2**40:
            return ("error", "cbor")
        times.append(v)
    return ("ok", iss, *times, dict(dcc))


def _parse_cwt_outcome(payload):
    try:
        c = sign.parse_cwt(payload)
    except DecodeError as exc:
        return ("error", exc.step)
    return ("ok", c.iss, c.iat, c.exp, c.nbf, dict(c.hcert))


_CLAIM_KEYS = st.sampled_from([1, 4, 5, 6, 7, -260, 1.0, 4.0, 6.0, -260.0, True, False, "iss",
                               b"k", None, 1.5])
_CLAIM_VALUES = st.sampled_from([None, "VN", 1_640_000_000, 1.6e9, True, b"x", [1], {}, 2**41,
                                 {1: {"ver": "1.3.0"}}, {1.0: {"ver": "1.3.0"}},
                                 {True: {"ver": "1.3.0"}}, {1: {"ver": "1.3.0"}, 2: {}},
                                 cbor2.CBORTag(55799, 1), cbor2.CBORTag(0, "x")])


@settings(max_examples=1500, deadline=None)
@given(st.dictionaries(_CLAIM_KEYS, _CLAIM_VALUES, max_size=6), st.booleans())
def test_parse_cwt_agrees_with_its_rules_written_plainly(claims, with_hcert):
    """The fast paths of parse_cwt (the compiled plain reader, the pure sentinel decode, the
    typed dict branch) give the verdicts of the rules written plainly: integer-or-text claim
    keys, -260 holding one map under the integer 1, integer times, tags refused."""
    if with_hcert:
        claims = {**claims, -260: {1: {"ver": "1.3.0"}}}
    try:
        payload = cbor2.dumps(claims)
    except Exception:
        return
    assert _parse_cwt_outcome(payload) == _parse_cwt_reference(payload)
