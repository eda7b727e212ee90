"""Shared material for vaxqr's hostile-input tests and fuzzers.

Everything here is deterministic: the signing key is derived from a label, ECDSA
signatures are deterministic (RFC 6979) and the DSC is self-signed with a deterministic
signature, so the same seed corpus comes out on every run and every machine.

Used by ``fuzz/run.py`` (the seeded corpus-mutation runner), ``fuzz/fuzz_verify.py``
(atheris) and ``tests/test_hostile.py``.
"""

from __future__ import annotations

import functools
import hashlib
import random
import time
import tracemalloc
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from vaxqr import codec, sign
from vaxqr.verify import Report, Verifier, report_json_text

try:  # the trust store moved from vaxqr.certs to vaxqr.trust
    from vaxqr.trust import TrustStore
except ImportError:  # pragma: no cover
    from vaxqr.certs import TrustStore  # type: ignore[attr-defined,no-redef]

AT = datetime(2022, 6, 1, tzinfo=UTC)  # the verifier's clock
IAT = int(datetime(2021, 12, 1, tzinfo=UTC).timestamp())
EXP = int(datetime(2022, 12, 1, tzinfo=UTC).timestamp())
EKU_VACCINATION = "1.3.6.1.4.1.1847.2021.1.2"
_N_P256 = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_ECDSA_DET = ec.ECDSA(hashes.SHA256(), deterministic_signing=True)

# Steps a hostile input may fail at (picture only for images).
DECODE_STEPS = ("picture", "prefix", "base45", "zlib", "cose", "cbor")


def kid_of(cert: x509.Certificate) -> bytes:
    """HCERT kid: the first 8 bytes of SHA-256 over the certificate's DER."""
    from cryptography.hazmat.primitives.serialization import Encoding

    return hashlib.sha256(cert.public_bytes(Encoding.DER)).digest()[:8]


def derive_key(label: str) -> ec.EllipticCurvePrivateKey:
    """A P-256 key derived from ``label`` (test material only)."""
    n = int.from_bytes(hashlib.sha256(b"vaxqr-fuzz:" + label.encode()).digest(), "big")
    return ec.derive_private_key(n % (_N_P256 - 1) + 1, ec.SECP256R1())


def make_dsc(
    key: ec.EllipticCurvePrivateKey,
    *,
    cn: str = "UBND xã Fuzz (TEST ONLY)",
    eku: str | None = EKU_VACCINATION,
    not_before: datetime = datetime(2021, 1, 1, tzinfo=UTC),
    not_after: datetime = datetime(2031, 1, 1, tzinfo=UTC),
) -> x509.Certificate:
    """A deterministic self-signed document signer certificate (not a CA)."""
    name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    serial = int.from_bytes(hashlib.sha256(cn.encode()).digest()[:8], "big") | 1
    b = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )
    if eku is not None:
        b = b.add_extension(
            x509.ExtendedKeyUsage([x509.ObjectIdentifier(eku)]), critical=False)
    return b.sign(key, hashes.SHA256(), ecdsa_deterministic=True)


def default_dcc(*, fn: str = "Nguyễn", gn: str = "Văn An", fnt: str = "NGUYEN",
                gnt: str = "VAN<AN", dob: Any = "1990-01-02", **extra: Any) -> dict[str, Any]:
    """A schema-valid DCC 1.3.0 vaccination certificate (keyword args override fields)."""
    nam: dict[str, Any] = {"fn": fn, "fnt": fnt, "gn": gn, "gnt": gnt}
    dcc: dict[str, Any] = {
        "ver": "1.3.0",
        "nam": nam,
        "dob": dob,
        "v": [{
            "tg": "840539006", "vp": "1119349007", "mp": "EU/1/20/1528",
            "ma": "ORG-100030215", "dn": 2, "sd": 2, "dt": "2021-10-01", "co": "VN",
            "is": "UBND xã Fuzz", "ci": "URN:UVCI:01:VN:091/31078/FUZZ0001#T",
        }],
    }
    dcc.update(extra)
    return dcc


def claims_bytes(hcert: Any, *, iss: Any = "VN", iat: Any = IAT, exp: Any = EXP,
                 extra: Mapping[Any, Any] | None = None) -> bytes:
    """CBOR CWT claims ``{1: iss, 6: iat, 4: exp, -260: {1: hcert}}`` (None leaves a claim out)."""
    claims: dict[Any, Any] = {}
    if iss is not None:
        claims[1] = iss
    if iat is not None:
        claims[6] = iat
    if exp is not None:
        claims[4] = exp
    claims[-260] = {1: hcert}
    if extra:
        claims.update(extra)
    return cbor2.dumps(claims)


def hc1_of(cose: bytes, *, level: int = 9) -> str:
    """COSE bytes → ``HC1:`` text (zlib at ``level``)."""
    return codec.PREFIX + codec.b45encode(zlib.compress(cose, level))


@dataclass
class Kit:
    """A trusted signer and a verifier at :data:`AT`, plus builders for crafted credentials."""

    label: str = "main"
    key: ec.EllipticCurvePrivateKey = field(init=False)
    cert: x509.Certificate = field(init=False)
    kid: bytes = field(init=False)
    verifier: Verifier = field(init=False)

    def __post_init__(self) -> None:
        self.key = derive_key(self.label)
        self.cert = make_dsc(self.key)
        self.kid = kid_of(self.cert)
        self.store = TrustStore.from_certificates([self.cert], at=AT)
        self.verifier = Verifier(self.store, at=AT)

    def signature(self, protected: bytes, payload: bytes,
                  key: ec.EllipticCurvePrivateKey | None = None) -> bytes:
        r, s = decode_dss_signature(
            (key or self.key).sign(sign.sig_structure(protected, payload), _ECDSA_DET))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    def cose(
        self,
        payload: bytes,
        *,
        protected: Mapping[Any, Any] | bytes | None = None,
        unprotected: Mapping[Any, Any] | None = None,
        tags: tuple[int, ...] = (18,),
        signature: bytes | None = None,
        key: ec.EllipticCurvePrivateKey | None = None,
    ) -> bytes:
        """A COSE_Sign1 over ``payload``, validly signed unless ``signature`` is given.

        ``protected`` is a map (CBOR-encoded here) or raw bytes; default ``{1: -7, 4: kid}``.
        """
        if protected is None:
            protected = {1: sign.ES256, 4: self.kid}
        prot = protected if isinstance(protected, bytes) else cbor2.dumps(dict(protected))
        sig = signature if signature is not None else self.signature(prot, payload, key)
        obj: Any = [prot, dict(unprotected or {}), payload, sig]
        for t in reversed(tags):
            obj = cbor2.CBORTag(t, obj)
        return cbor2.dumps(obj)

    def credential(self, hcert: Any = None, *, level: int = 9, **claims: Any) -> str:
        """A validly signed ``HC1:`` credential over ``hcert`` (default: :func:`default_dcc`)."""
        payload = claims_bytes(default_dcc() if hcert is None else hcert, **claims)
        return hc1_of(self.cose(payload), level=level)

    def verify(self, text: str) -> Report:
        return self.verifier.verify_text(text)


# --------------------------------------------------------------------------- seeds


def _deep_array(levels: int) -> bytes:
    return b"\x81" * levels + b"\x00"


def _deep_map(levels: int) -> bytes:
    return b"\xa1\x01" * levels + b"\x00"


def _zlib_bomb(inflated: int) -> bytes:
    """A zlib stream of ``inflated`` zero bytes, compressed at ~1000:1.

    Whole MiB: one MiB is compressed once and its full-flush block repeated (a GiB in
    50 ms), with the Adler-32 of n zeros computed (A = 1, B = n mod 65521)."""
    mib, rest = divmod(inflated, 1 << 20)
    if mib >= 2 and not rest:
        c = zlib.compressobj(9)
        chunk = bytes(1 << 20)
        first = c.compress(chunk) + c.flush(zlib.Z_FULL_FLUSH)  # with the zlib header
        block = c.compress(chunk) + c.flush(zlib.Z_FULL_FLUSH)
        final = c.flush()[:-4]  # the empty final block, without the Adler-32
        adler = ((inflated % 65521) << 16) | 1
        return first + block * (mib - 1) + final + adler.to_bytes(4, "big")
    c = zlib.compressobj(9)
    chunk = bytes(1 << 20)
    parts = []
    left = inflated
    while left > 0:
        n = min(left, len(chunk))
        parts.append(c.compress(chunk[:n]))
        left -= n
    parts.append(c.flush())
    return b"".join(parts)


def bomb_under_text_cap() -> str:
    """The biggest zero-bomb that fits in the HC1 text cap (about 5.4 KB compressed)."""
    budget = (codec.MAX_TEXT - len(codec.PREFIX)) // 3 * 2  # bytes Base45 can carry
    size = budget * 1000
    while True:
        z = _zlib_bomb(size)
        if len(z) <= budget:
            return codec.PREFIX + codec.b45encode(z)
        size = int(size * 0.95)


Expected = str | tuple[str, ...] | None


def hostile_seeds(kit: Kit) -> list[tuple[str, str, Expected]]:
    """Hand-made hostile inputs: ``(name, text, expected failed step)``.

    ``None`` as the step means "valid" (a signed credential whose only oddity is
    display-level, e.g. markup in a name); a tuple lists the acceptable steps.
    """
    good_payload = claims_bytes(default_dcc())
    good_cose = kit.cose(good_payload)
    good = hc1_of(good_cose)
    msg = sign.parse_sign1(good_cose)
    prot = msg.protected_bytes
    sig = msg.signature
    body = good[4:]

    def z(cose: bytes) -> str:
        return hc1_of(cose)

    def payload_case(payload: bytes) -> str:
        return z(kit.cose(payload))

    dup_prot = b"\xa3\x01\x26\x04\x48" + kit.kid + b"\x01\x26"  # alg twice
    dup_claims = (b"\xa5\x01\x62VN\x06" + cbor2.dumps(IAT)[0:] + b"\x04" + cbor2.dumps(EXP)
                  + b"\x39\x01\x03\xa1\x01" + cbor2.dumps(default_dcc()) + b"\x01\x62XX")
    dcc_dup = cbor2.dumps(default_dcc())
    assert dcc_dup[0] == 0xA4
    dcc_dup = b"\xa5" + dcc_dup[1:] + b"\x63ver\x65" + b"1.3.0"  # 'ver' twice in the DCC
    dup_dcc_claims = (b"\xa4\x01\x62VN\x06" + cbor2.dumps(IAT) + b"\x04" + cbor2.dumps(EXP)
                      + b"\x39\x01\x03\xa1\x01" + dcc_dup)
    huge_len_payload = b"\x5b" + (2**62).to_bytes(8, "big") + b"abc"
    bignum_exp = claims_bytes(default_dcc(), exp=cbor2.CBORTag(2, b"\xff" * 64))
    neg_bignum_iat = claims_bytes(default_dcc(), iat=-(2**70))
    two_v = default_dcc()
    two_v["v"] = two_v["v"] * 2
    no_nam = default_dcc()
    del no_nam["nam"]
    wrong_types = default_dcc()
    wrong_types["v"][0]["dn"] = "2"
    wrong_types["dob"] = 19900102
    long_name = default_dcc(fn="A" * 5000, fnt="A" * 5000)
    dob_time = default_dcc(dob="1990-01-02T00:00:00")
    dob_tagged = default_dcc(dob=cbor2.CBORTag(0, "1990-01-02T10:00:00Z"))
    seeds: list[tuple[str, str, Expected]] = [
        ("valid", good, None),
        ("valid-level1", kit.credential(level=1), None),
        ("valid-untagged", z(cbor2.dumps([prot, {}, good_payload, sig])), None),
        ("valid-61-18", z(kit.cose(good_payload, tags=(61, 18))), None),
        ("valid-kid-unprotected",
         z(kit.cose(good_payload, protected={1: -7}, unprotected={4: kit.kid})), None),
        # prefix
        ("empty", "", "prefix"),
        ("random-text", "Xin chào, đây không phải là chứng nhận", "prefix"),
        ("no-prefix", body, "prefix"),
        ("hc2", "HC2:" + body, "prefix"),
        ("hl0", "HL0:" + body, "prefix"),
        ("lower-prefix", "hc1:" + body, "prefix"),
        ("all-lower", good.lower(), "prefix"),
        ("leading-space", " \t" + good, None),  # pasted with white space before it
        ("leading-esc", "\x1b[31m" + good, "prefix"),
        ("too-long", "HC1:" + "0" * 20000, "prefix"),
        ("gigabyte-bomb-too-long", codec.PREFIX + codec.b45encode(_zlib_bomb(64 << 20)),
         "prefix"),
        # base45
        ("lower-body", "HC1:" + body.lower(), "base45"),
        ("percent-decoded", "HC1:" + body.replace("%", "\ufffd"), "base45"),
        ("url-decoded-%xx", _url_decode(good), "base45"),
        ("control-char", good[:40] + "\x07" + good[41:], "base45"),
        ("nul-inside", good[:40] + "\x00" + good[41:], "base45"),
        ("non-ascii", good[:40] + "Ễ" + good[41:], "base45"),
        ("bidi", good[:40] + "\u202e" + good[41:], "base45"),
        ("len-1-mod-3", good + "0" * (1 if len(body) % 3 == 0 else 2 if len(body) % 3 == 2
                                          else 3), "base45"),
        ("overflow-GGW", "HC1:GGW" + body[3:], "base45"),
        ("overflow-pair", "HC1:" + ("000" * 10) + "::", "base45"),
        ("truncated-1", good[:-1], ("base45", "zlib")),
        # zlib
        ("truncated-3", good[:-3], "zlib"),
        ("truncated-half", good[: 4 + (len(body) // 2) // 3 * 3], "zlib"),
        ("uncompressed", "HC1:" + codec.b45encode(good_cose), "zlib"),
        ("zlib-bomb", bomb_under_text_cap(), "zlib"),
        ("zlib-trailing", "HC1:" + codec.b45encode(zlib.compress(good_cose, 9) + b"\0\0"), "zlib"),
        ("zlib-bad-adler", "HC1:" + codec.b45encode(_flip_last(zlib.compress(good_cose, 9))),
         "zlib"),
        ("zlib-dict", "HC1:" + codec.b45encode(b"\x78\xbb" + zlib.compress(good_cose)[2:]),
         "zlib"),
        ("raw-deflate", "HC1:" + codec.b45encode(zlib.compress(good_cose)[2:-4]), "zlib"),
        ("gzip", "HC1:" + codec.b45encode(_gzip(good_cose)), "zlib"),
        ("empty-body", "HC1:", "zlib"),
        # cose
        ("not-cbor", z(b"\xff\xfe\xfd"), "cose"),
        ("cbor-trailing", z(good_cose + b"\x00"), "cose"),
        ("deep-array-50k", z(_deep_array(50_000)), "cose"),
        ("deep-map-30k", z(_deep_map(30_000)), "cose"),
        ("deep-tags-20k", z(b"\xd8\x2a" * 20_000 + b"\x00"), "cose"),
        ("huge-length", z(huge_len_payload), "cose"),
        ("huge-array-count", z(b"\x9b" + (2**62).to_bytes(8, "big")), "cose"),
        ("cose-sign-98", z(kit.cose(good_payload, tags=(98,))), "cose"),
        ("unknown-tag", z(kit.cose(good_payload, tags=(12345,))), "cose"),
        ("tag-61-only", z(kit.cose(good_payload, tags=(61,))), "cose"),
        ("tag-18-18", z(kit.cose(good_payload, tags=(18, 18))), "cose"),
        ("three-items", z(cbor2.dumps(cbor2.CBORTag(18, [prot, {}, good_payload]))), "cose"),
        ("protected-not-bytes", z(cbor2.dumps(cbor2.CBORTag(18, [{1: -7}, {}, good_payload,
                                                                   sig]))), "cose"),
        ("protected-dup-key", z(kit.cose(good_payload, protected=dup_prot)), "cose"),
        ("protected-deep", z(kit.cose(good_payload, protected=_deep_map(30_000))), "cose"),
        ("payload-nil", z(cbor2.dumps(cbor2.CBORTag(18, [prot, {}, None, sig]))), "cose"),
        ("unprotected-dup", z(b"\xd2\x84" + cbor2.dumps(prot) + b"\xa2\x04\x41a\x04\x41b"
                              + cbor2.dumps(good_payload) + cbor2.dumps(sig)), "cose"),
        # cbor (the CWT payload)
        ("claims-not-map", payload_case(cbor2.dumps([1, 2, 3])), "cbor"),
        ("claims-dup-key", payload_case(dup_claims), "cbor"),
        ("dcc-dup-key", payload_case(dup_dcc_claims), "cbor"),
        ("claims-deep", payload_case(_deep_array(40_000)), "cbor"),
        ("claims-huge-len", payload_case(huge_len_payload), "cbor"),
        ("claims-no-hcert", payload_case(cbor2.dumps({1: "VN", 6: IAT, 4: EXP})), "cbor"),
        ("claims-two-dccs", payload_case(cbor2.dumps({-260: {1: default_dcc(), 2: {}}})),
         "cbor"),
        ("exp-bignum", payload_case(bignum_exp), "cbor"),
        ("iat-neg-bignum", payload_case(neg_bignum_iat), "cbor"),
        ("exp-text", payload_case(claims_bytes(default_dcc(), exp="tomorrow")), "cbor"),
        ("exp-nan", payload_case(claims_bytes(default_dcc(), exp=float("nan"))), "cbor"),
        ("iss-int", payload_case(claims_bytes(default_dcc(), iss=84)), "cbor"),
        ("rational-zero", payload_case(b"\xd8\x1e\x82\x01\x00"), "cbor"),
        ("bigfloat-huge", payload_case(b"\xc5\x82\x1b" + (2**62).to_bytes(8, "big") + b"\x01"),
         "cbor"),
        # signature
        ("alg-unprotected-only",
         z(kit.cose(good_payload, protected={4: kit.kid}, unprotected={1: -7})), "signature"),
        ("alg-unknown", z(kit.cose(good_payload, protected={1: -8, 4: kit.kid})), "signature"),
        ("alg-text", z(kit.cose(good_payload, protected={1: "ES256", 4: kit.kid})), "signature"),
        ("kid-7", z(kit.cose(good_payload, protected={1: -7, 4: kit.kid[:7]})), "signature"),
        ("kid-9", z(kit.cose(good_payload, protected={1: -7, 4: kit.kid + b"\0"})), "signature"),
        ("kid-32", z(kit.cose(good_payload, protected={1: -7, 4: bytes(32)})), "signature"),
        ("kid-missing", z(kit.cose(good_payload, protected={1: -7})), "signature"),
        ("kid-unknown", z(kit.cose(good_payload, protected={1: -7, 4: bytes(8)})), "signature"),
        ("kid-text", z(kit.cose(good_payload, protected={1: -7, 4: "abcdefgh"})), "signature"),
        ("sig-der", z(kit.cose(good_payload, signature=_der(sig))), "signature"),
        ("sig-zero", z(kit.cose(good_payload, signature=bytes(64))), "signature"),
        ("sig-short", z(kit.cose(good_payload, signature=sig[:63])), "signature"),
        ("sig-empty", z(kit.cose(good_payload, signature=b"")), "signature"),
        ("sig-other-key", z(kit.cose(good_payload, key=derive_key("intruder"))), "signature"),
        ("sig-over-other-payload",
         z(kit.cose(claims_bytes(default_dcc(fn="Trần")), signature=sig)), "signature"),
        ("protected-reencoded",
         z(kit.cose(good_payload, protected=cbor2.dumps({4: kit.kid, 1: -7}), signature=sig)),
         "signature"),
        ("alg-ps256-on-ec", z(kit.cose(good_payload, protected={1: -37, 4: kit.kid})),
         "signature"),
        # expiry (signed)
        ("expired", kit.credential(iat=IAT - 10**8, exp=IAT - 10**7), "expiry"),
        ("no-exp", kit.credential(exp=None), "expiry"),
        ("not-yet-valid", kit.credential(iat=EXP, exp=EXP + 10), "expiry"),
        ("exp-far-future", kit.credential(exp=2**39), "expiry"),
        ("iat-far-future", kit.credential(iat=2**39, exp=2**39 + 1), "expiry"),
        ("iat-far-past", kit.credential(iat=-(2**39)), "expiry"),
        # schema (signed: the signature step passes)
        ("two-v", kit.credential(two_v), "schema"),
        ("dob-with-time", kit.credential(dob_time), "schema"),
        ("dob-tagged-datetime", kit.credential(dob_tagged), "schema"),
        ("missing-nam", kit.credential(no_nam), "schema"),
        ("wrong-types", kit.credential(wrong_types), "schema"),
        ("over-long-name", kit.credential(long_name), "schema"),
        ("dcc-not-map-values", kit.credential(default_dcc(nam=[1, 2])), "schema"),
        ("dcc-int-key", kit.credential({**default_dcc(), 7: "x"}), "schema"),
        ("dcc-huge-int-key", kit.credential({**default_dcc(), 10**5000: "x"}), "cbor"),  # tag 2
        ("dcc-bytes", kit.credential(default_dcc(dob=b"1990")), "schema"),
        ("dcc-undefined", kit.credential(default_dcc(dob=cbor2.undefined)), "schema"),
        ("dcc-float-nan", kit.credential(default_dcc(dob=float("nan"))), "schema"),
        ("dcc-huge-int", kit.credential(default_dcc(dob=2**64)), "cbor"),  # a bignum, tag 2
        ("dcc-cyclic", hc1_of(kit.cose(_cyclic_claims())), "cbor"),
        ("dcc-shared-dag-bomb", hc1_of(kit.cose(_dag_bomb_claims())), "cbor"),
        ("claims-trailing-byte", payload_case(good_payload + b"\x00"), "cbor"),
        ("protected-trailing-byte",
         z(kit.cose(good_payload, protected=cbor2.dumps({1: -7, 4: kit.kid}) + b"\x00")), "cose"),
        ("deflate-padding-bits", padding_mutant(kit), "zlib"),
        ("ver-5000-digits", kit.credential(default_dcc(ver="9" * 5000 + ".0.0")), "schema"),
        ("ver-int", kit.credential(default_dcc(ver=1)), "schema"),
        ("no-v", kit.credential({k: v for k, v in default_dcc().items() if k != "v"}),
         "schema"),
        ("empty-dcc", kit.credential({}), "schema"),
        ("dcc-tags", kit.credential(default_dcc(dob=cbor2.CBORTag(37, bytes(16)))), "cbor"),
        # the security review's defects (tags cbor2 drops, float times and keys, crit, a
        # protected kid of the wrong type, nbf): validly signed, each must fail
        ("cose-55799-18", z(cbor2.dumps(cbor2.CBORTag(55799, cbor2.CBORTag(
            18, [prot, {}, good_payload, sig])))), "cose"),
        ("cose-18-55799", z(cbor2.dumps(cbor2.CBORTag(18, cbor2.CBORTag(
            55799, [prot, {}, good_payload, sig])))), "cose"),
        ("claims-55799", payload_case(cbor2.dumps(cbor2.CBORTag(55799,
                                                                cbor2.loads(good_payload)))),
         "cbor"),
        ("claims-stringref", payload_case(cbor2.dumps(cbor2.loads(good_payload),
                                                      string_referencing=True)), "cbor"),
        ("iat-float", kit.credential(iat=float(IAT)), "cbor"),
        ("hcert-key-true", payload_case(cbor2.dumps(
            {1: "VN", 6: IAT, 4: EXP, -260: {True: default_dcc()}})), "cbor"),
        ("hcert-claim-float-key", payload_case(cbor2.dumps(
            {1: "VN", 6: IAT, 4: EXP, -260.0: {1: default_dcc()}})), "cbor"),
        ("crit-unknown", z(kit.cose(good_payload, protected={1: -7, 4: kit.kid, 2: [99]})),
         "signature"),
        ("kid-text-with-unprotected-kid", z(kit.cose(good_payload, protected={1: -7, 4: "x" * 8},
                                                     unprotected={4: kit.kid})), "signature"),
        ("nbf-future", kit.credential(extra={5: EXP}), "expiry"),
        # display: validly signed, schema-valid, hostile names (valid, but must be escaped)
        ("markup-name", kit.credential(default_dcc(fn="[red]Đỏ[/red]", gn="[bold]X[/]")),
         None),
        ("ansi-name", kit.credential(default_dcc(fn="\x1b[31mĐỏ\x1b[0m", gn="\x1b]0;pwn\x07")),
         None),
        ("bidi-name", kit.credential(default_dcc(fn="\u202eNguyễn", gn="\u2066An\u2069")),
         None),
    ]
    return seeds


def padding_mutant(kit: Kit) -> str:
    """A one-character change to a valid credential that only sets unused padding bits of
    the last deflate byte: plain ``zlib`` inflates it to the very same COSE (the bug
    ``codec._padding_bits_set`` closes). Deterministic: the first such case over a fixed
    list of names."""
    names = ["Đặng", "Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ",
             "Đỗ", "Hồ", "Ngô", "Dương", "Lý", "Bùi", "Đinh", "Mai", "Trịnh", "Lâm"]
    for gn in ["Văn Lâm", "Thị Hoa", "Minh", "Quốc Bảo"]:
        for fn in names:
            text = kit.credential(default_dcc(fn=fn, gn=gn))
            body = text[4:]
            z = codec.b45decode(body)
            cose = zlib.decompress(z)
            byte = len(z) - 5  # the last deflate byte, before the Adler-32
            group = byte // 2 * 3
            for pos in range(group, min(group + 3, len(body))):
                for ch in B45_ALPHABET:
                    if ch == body[pos]:
                        continue
                    mutant = body[:pos] + ch + body[pos + 1:]
                    try:
                        if zlib.decompress(codec.b45decode(mutant)) == cose:
                            return codec.PREFIX + mutant
                    except (zlib.error, Exception):
                        continue
    raise AssertionError("no padding mutant found")  # pragma: no cover


def _dag_bomb_claims(levels: int = 40) -> bytes:
    """A DCC field holding 2**40 paths through shared values (tags 28/29): a few hundred
    bytes of CBOR whose naive traversal never ends."""
    # [s0 = [0, 0], s1 = [s0, s0], s2 = [s1, s1], ...]: shared values are numbered in the
    # order their tag 28 is met, so level i refers to level i - 1
    items = [b"\xd8\x1c\x82\x00\x00"]
    for i in range(1, levels):
        ref = b"\xd8\x1d" + cbor2.dumps(i - 1)
        items.append(b"\xd8\x1c\x82" + ref + ref)
    node = b"\x98" + bytes([levels]) + b"".join(items)
    dcc_body = cbor2.dumps(default_dcc())
    dcc = b"\xa5" + dcc_body[1:] + b"\x61x" + node
    return (b"\xa4\x01\x62VN\x06" + cbor2.dumps(IAT) + b"\x04" + cbor2.dumps(EXP)
            + b"\x39\x01\x03\xa1\x01" + dcc)


def _cyclic_claims() -> bytes:
    # claims map whose DCC contains itself through a shared reference (tags 28/29)
    dcc_body = cbor2.dumps(default_dcc())
    shared_dcc = b"\xd8\x1c" + b"\xa5" + dcc_body[1:] + b"\x64self\xd8\x1d\x00"
    return (b"\xa4\x01\x62VN\x06" + cbor2.dumps(IAT) + b"\x04" + cbor2.dumps(EXP)
            + b"\x39\x01\x03\xa1\x01" + shared_dcc)


def _flip_last(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 0x01])


def _gzip(data: bytes) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    return c.compress(data) + c.flush()


def _der(raw: bytes) -> bytes:
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    return encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))


def _url_decode(text: str) -> str:
    """What a phone scanner that URL-decodes ``%xx`` makes of an HC1 text."""
    from urllib.parse import unquote

    return unquote(text, errors="replace")


# --------------------------------------------------------------------------- mutation

B45_ALPHABET = codec.ALPHABET
NASTY_CHARS = (
    "\x00", "\x07", "\x1b", "\x7f", "\r", "\n", "\t", "\ufeff", "\ufffd", "\u202e", "\u2066",
    "Ễ", "đ", "é", "€", "𝔸", "\U0010ffff", "\ud800",
)


def _b45_body(text: str) -> str:
    return text[4:] if text.startswith(codec.PREFIX) else text


def mutate_text(text: str, rng: random.Random) -> str:
    """One random text-level mutation of an HC1 string (what scanners and attackers do)."""
    op = rng.randrange(16)
    n = len(text)
    pos = rng.randrange(n) if n else 0
    if op == 0 and n:  # substitute an alphabet character
        return text[:pos] + rng.choice(B45_ALPHABET) + text[pos + 1:]
    if op == 1 and n:  # substitute anything
        return text[:pos] + rng.choice(NASTY_CHARS + tuple(B45_ALPHABET.lower())) + text[pos + 1:]
    if op == 2:  # insert
        return text[:pos] + rng.choice(B45_ALPHABET + "".join(NASTY_CHARS)) + text[pos:]
    if op == 3 and n:  # delete
        return text[:pos] + text[pos + 1:]
    if op == 4:  # truncate
        return text[:pos]
    if op == 5:  # lower case (all or part)
        return text.lower() if rng.random() < 0.3 else text[:pos] + text[pos:].lower()
    if op == 6:  # %xx damage
        return _url_decode(text)
    if op == 7:  # prefix damage
        return rng.choice(["", "hc1:", "HC2:", "HC1", "HC1:HC1:", " HC1:", "\ufeffHC1:",
                           "HL0:", "HC:", "HCZ:"]) + _b45_body(text)
    if op == 8 and n > 1:  # duplicate a slice
        a = rng.randrange(n)
        b = rng.randrange(a, min(n, a + 64) + 1)
        return text[:b] + text[a:b] + text[b:]
    if op == 9 and n > 1:  # swap two characters
        a, b = rng.randrange(n), rng.randrange(n)
        lst = list(text)
        lst[a], lst[b] = lst[b], lst[a]
        return "".join(lst)
    if op == 10:  # wrap in whitespace / control characters
        return rng.choice(["\r", "\n", "\x00", " ", "\t", "\x1b[0m"]) + text + rng.choice(
            ["\r\n", "\x00", " ", "\u202e", ""])
    if op == 11:  # blow up the length
        return text + rng.choice(B45_ALPHABET) * rng.choice([1, 2, 3, 100, 5000, 9000])
    if op == 12:  # random text
        return "".join(chr(rng.randrange(0x20, 0x3000)) for _ in range(rng.randrange(64)))
    return mutate_layer(text, rng)


def _recode(text: str, compressed: bytes) -> str:
    return codec.PREFIX + codec.b45encode(compressed)


def mutate_layer(text: str, rng: random.Random) -> str:
    """A byte-level mutation inside the Base45, zlib or COSE layer, re-encoded properly."""
    try:
        compressed = codec.b45decode(_b45_body(text))
    except Exception:
        return text + "0"
    layer = rng.randrange(3)
    if layer == 0 or not compressed:  # flip bits of the zlib stream
        return _recode(text, _flip_bits(compressed, rng))
    d = zlib.decompressobj()
    try:
        cose = d.decompress(compressed, 1 << 20)  # the generator must stay small too
    except zlib.error:
        return _recode(text, _flip_bits(compressed, rng))
    if d.unconsumed_tail or not cose:
        return _recode(text, _flip_bits(compressed, rng))
    if layer == 1:  # flip bits in the COSE bytes, re-compress (zlib stays consistent)
        return _recode(text, zlib.compress(_flip_bits(cose, rng), 9))
    # structural: splice, truncate, or extend the COSE bytes
    choice = rng.randrange(4)
    if choice == 0:
        cut = rng.randrange(len(cose) + 1)
        new = cose[:cut]
    elif choice == 1:
        new = cose + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 9)))
    elif choice == 2:
        a = rng.randrange(len(cose) + 1)
        new = cose[:a] + rng.choice([b"\x81" * 2000, b"\xa1\x01" * 1000, b"\xd8\x62",
                                     b"\x1b\xff\xff\xff\xff\xff\xff\xff\xff",
                                     b"\x5b\x7f\xff\xff\xff\xff\xff\xff\xff", b"\xf7",
                                     b"\xc2\x58\x40" + b"\xff" * 64]) + cose[a:]
    else:
        a = rng.randrange(len(cose) + 1)
        new = cose[:a] + cose[a:][::-1][:16] + cose[a + 16:]
    return _recode(text, zlib.compress(new, 9))


def _flip_bits(data: bytes, rng: random.Random) -> bytes:
    if not data:
        return bytes([rng.randrange(256)])
    b = bytearray(data)
    for _ in range(rng.choice([1, 1, 1, 2, 3, 8])):
        i = rng.randrange(len(b))
        b[i] ^= 1 << rng.randrange(8)
    return bytes(b)


# --------------------------------------------------------------------------- running


@dataclass
class Stats:
    """What a fuzz session saw."""

    inputs: int = 0
    verdicts: int = 0
    valid: int = 0
    failed_steps: Counter[str] = field(default_factory=Counter)
    crashes: list[tuple[str, str]] = field(default_factory=list)  # (exception, input repr)
    max_seconds: float = 0.0
    slowest: str = ""
    seconds: float = 0.0
    peak_bytes: int = 0

    def record(self, report: Report) -> None:
        self.verdicts += 1
        if report.valid:
            self.valid += 1
        else:
            self.failed_steps[report.failed or "?"] += 1

    def lines(self) -> Iterator[str]:
        yield f"inputs run:        {self.inputs:,} in {self.seconds:.1f} s " \
              f"({self.inputs / self.seconds if self.seconds else 0:,.0f}/s)"
        yield f"crashes:           {len(self.crashes)}"
        for exc, text in self.crashes[:10]:
            yield f"  {exc}: {text[:160]}"
        yield f"verdicts:          {self.verdicts:,} ({self.valid:,} valid)"
        yield "not valid, by failed step:"
        for step, count in sorted(self.failed_steps.items(), key=lambda kv: -kv[1]):
            yield f"  {step:<11} {count:,}"
        yield f"max time / input:  {self.max_seconds * 1000:.1f} ms ({self.slowest[:60]!r})"
        yield f"peak memory:       {self.peak_bytes / 2**20:.1f} MiB"


def run_one(stats: Stats, fn: Callable[[], Report | Iterable[Report]], shown: str) -> None:
    """Run one verification, recording its verdicts, its time and any exception."""
    t0 = time.perf_counter()
    stats.inputs += 1
    try:
        out = fn()
        reports = [out] if isinstance(out, Report) else list(out)
        for r in reports:
            if not isinstance(r, Report):
                raise AssertionError(f"not a Report: {type(r).__name__}")
            _ = r.to_json(), r.failed, r.reason
            if not r.valid and r.failed is None:
                raise AssertionError("not valid but no failed step")
            stats.record(r)
    except Exception as exc:  # the whole point: anything but a Report is a crash
        stats.crashes.append((f"{type(exc).__name__}: {exc}"[:300], shown))
    dt = time.perf_counter() - t0
    if dt > stats.max_seconds:
        stats.max_seconds, stats.slowest = dt, shown


def memory_probe() -> Callable[[], int]:
    """Start tracemalloc (if not running) and return a peak reader (bytes)."""
    if not tracemalloc.is_tracing():
        tracemalloc.start()
    return lambda: tracemalloc.get_traced_memory()[1]


def ps256_material() -> tuple[Any, bytes, Any]:
    """An RSA-2048 key (PS256), its kid and a self-signed DSC (random: not part of the
    deterministic corpus; used by the tests only)."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "UBND PS256 (TEST ONLY)")])
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(7)
        .not_valid_before(AT - timedelta(days=400)).not_valid_after(AT + timedelta(days=400))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, kid_of(cert), cert


# --------------------------------------------------------------------------- the oracle


# Known bugs in files the fuzzers' owners may not edit: counted apart, not as crashes, until
# fixed (each has a strict-xfail test that starts passing with the fix).
KNOWN_RENDER_EXP = (
    "vaxqr/verify_view.py render(): datetime.fromtimestamp(exp) raises for an exp beyond "
    "year 9999 (signed exp=2**39); see tests/test_cli_verify.py::test_far_future_exp_renders"
)


def _ts_out_of_range(seconds: int) -> bool:
    try:
        datetime.fromtimestamp(seconds, UTC)
    except (ValueError, OverflowError, OSError):
        return True
    return False


@functools.cache
def _reference_validator(version: str) -> Any:
    import json
    from importlib import resources

    from jsonschema import validators

    text = resources.files("vaxqr").joinpath("data", "schemas", f"DCC-{version}.json")
    schema = json.loads(text.read_text("utf-8"))
    cls = validators.validator_for(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def reference_schema_errors(dcc: Any) -> list[str]:
    """A differential oracle for the schema step: the official schema of the DCC's version,
    checked by plain jsonschema (its own format checker), independent of vaxqr's validator
    and of its fast path. vaxqr may be stricter (extra HCERT rules, RFC 3339 date-times),
    never more lenient."""
    from vaxqr.schemas import resolve_version

    version = resolve_version(dcc.get("ver") if isinstance(dcc, Mapping) else None)
    if version is None:
        return ["no schema version"]
    return [f"{list(e.absolute_path)}: {e.message}"[:200]
            for e in _reference_validator(version).iter_errors(dcc)]


class FuzzFailure(AssertionError):
    """The verify path broke its contract (the fuzzers' "crash")."""


_STRIP = "\r\n\x00\ufeff"


def trimmed(text: str) -> str:
    """What the verifier reads of an input text: line ends, NULs and BOMs trimmed, and any
    white space around it (a payload starts "HC1:", and no Base45 text ends in a space)."""
    return text.strip(_STRIP).strip()


def signed_triple(text: str) -> tuple[bytes, bytes, bytes] | None:
    """(protected bytes, payload, signature) of an HC1 text, or None when it does not decode
    (zlib read leniently: what matters is the signed message inside)."""
    try:
        d = zlib.decompressobj()
        cose = d.decompress(codec.b45decode(codec.strip_prefix(trimmed(text))), 1 << 20)
        msg = sign.parse_sign1(cose)
    except Exception:
        return None
    return msg.protected_bytes, msg.payload, msg.signature


def _steps(step: Expected) -> tuple[str, ...]:
    return step if isinstance(step, tuple) else (step,) if step else ()


def _unsafe_chars(text: str) -> list[str]:
    import unicodedata

    return sorted({c for c in text
                   if c != "\n" and unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp")})


def stdin_lines(data: bytes) -> list[str | None]:
    """The lines ``vaxqr verify -`` reads from ``data`` on its standard input (None: a line
    over the cap)."""
    import io
    import sys
    import types

    from vaxqr import cli_verify

    old = sys.stdin
    sys.stdin = types.SimpleNamespace(buffer=io.BytesIO(data))  # type: ignore[assignment]
    try:
        return list(cli_verify._read_stdin_lines())
    finally:
        sys.stdin = old


class Oracle:
    """Runs one input through a verify target and checks the contract:

    * the result is one :class:`Report` per input (several for a picture), never an
      exception; ``valid`` is false with a named failed step, or the report is valid;
    * no report says "internal error" (the verifier's last line of defence fired);
    * a valid report carries exactly what a trusted signer signed: its (protected header,
      payload, signature) is one of the valid seeds' (other encodings of the same signed
      message, e.g. untagged or recompressed, are fine);
    * the report serialises to JSON, and renders for the terminal without a control,
      escape or bidi character.
    """

    def __init__(self, kit: Kit, seeds: Iterable[tuple[str, str, Expected]],
                 *, render_every: int = 1) -> None:
        from vaxqr.cli import printable
        from vaxqr.verify_view import render

        self.kit = kit
        self.valid_triples = set()  # every message the trusted key signed among the seeds
        for _name, text, step in seeds:
            t = signed_triple(text)
            if step is None:
                assert t is not None
                self.valid_triples.add(t)
            elif (t is not None and set(_steps(step)) <= {"prefix", "base45", "zlib"}
                  and self._signed_by_kit(t)):
                # only the transport is damaged (e.g. padding bits): a mutation that repairs
                # it gives back the genuine message, and VALID is then right
                self.valid_triples.add(t)
        self._render, self._printable = render, printable
        self.render_every = render_every
        self._n = 0
        self.equivalent = 0  # valid re-encodings of a valid seed
        self.known: Counter[str] = Counter()  # known bugs outside the fuzzers' files

    def _signed_by_kit(self, triple: tuple[bytes, bytes, bytes]) -> bool:
        prot, payload, sig = triple
        try:
            msg = sign.CoseSign1(prot, sign.loads(prot, step="cose"), {}, payload, sig, (18,))
            sign.verify_signature(msg, self.kit.key.public_key(), sign.ES256)
        except Exception:
            return False
        return True

    def check(self, report: Any, source: str,
              genuine: tuple[bytes, bytes, bytes] | None = None) -> Report:
        if not isinstance(report, Report):
            raise FuzzFailure(f"not a Report but {type(report).__name__}")
        failed = report.failed
        if not report.valid and failed is None:
            raise FuzzFailure("not valid, yet no failed step")
        if report.reason and report.reason.startswith("internal error"):
            raise FuzzFailure(f"the verifier's internal-error guard fired: {report.reason}")
        json_text = __import__("json").dumps(report.to_json(), ensure_ascii=False)
        if not json_text:
            raise FuzzFailure("empty JSON")
        # what a terminal would not print as itself is escaped (the same JSON value)
        json_text = "".join(c if c.isprintable() else __import__("json").dumps(c)[1:-1]
                            for c in json_text)
        if report_json_text(report) != json_text:
            raise FuzzFailure("the CLI's JSON line differs from json.dumps(report.to_json()) "
                              "with unprintables escaped")
        self._n += 1
        if report.valid or report.signer is not None or self._n % self.render_every == 0:
            self.render_check(report)
        if report.credential is not None and any(
                st.name == "schema" and st.status == "pass" for st in report.steps):
            errors = reference_schema_errors(report.credential)
            if errors:
                raise FuzzFailure(f"the schema step passed, plain jsonschema finds: {errors}")
        if report.valid:
            triple = signed_triple(report.payload or "")
            if triple not in self.valid_triples and triple != genuine:
                raise FuzzFailure(f"ACCEPTED a credential no trusted signer made: {source!r:.200}")
            if trimmed(report.payload or "") != trimmed(source):
                self.equivalent += 1
        return report

    def render_check(self, report: Report) -> str:
        try:
            out: str = self._render(report, self._printable, color=False)
        except (ValueError, OverflowError, OSError) as exc:
            exp = (report.claims or {}).get("exp")
            if isinstance(exp, int) and _ts_out_of_range(exp):
                self.known[KNOWN_RENDER_EXP] += 1
                return ""
            raise FuzzFailure(f"render failed: {type(exc).__name__}: {exc}") from exc
        bad = _unsafe_chars(out)
        if bad:
            raise FuzzFailure(f"terminal output holds unescaped {bad!r}")
        return out

    # the targets -------------------------------------------------------------------

    def text(self, text: str, *, genuine: tuple[bytes, bytes, bytes] | None = None,
             holder: Any = None) -> list[Report]:
        """``genuine``: the signed triple of ``text`` when the trusted key did sign it;
        ``holder``: a CCCD card to match the credential against."""
        report = self.kit.verifier.verify_text(text, holder=holder)
        if holder is not None and report.step("signature").status == "pass" and \
                report.holder is None:
            raise FuzzFailure("a holder card was given, the holder step did not run")
        return [self.check(report, text, genuine)]

    def stream(self, data: bytes) -> list[Report]:
        """Bytes as piped to ``vaxqr verify -``: the CLI's line reader, then one verdict per
        non-empty line (a line over the cap gives a verdict too)."""
        out = []
        for n, line in enumerate(stdin_lines(data), 1):
            if line is None:
                out.append(self.check(self.kit.verifier.picture_failure(f"stdin:{n}",
                                                                         "line too long"), ""))
            elif line.strip():
                out.append(self.check(self.kit.verifier.verify_text(line, label=f"stdin:{n}"),
                                      line))
        return out

    def image(self, data: bytes) -> list[Report]:
        from vaxqr.verify import verify_image

        reports, _card = verify_image(self.kit.verifier, data, label="image")
        if not reports:
            raise FuzzFailure("a picture gave no report")
        return [self.check(r, r.payload or "") for r in reports]


# --------------------------------------------------------------------------- inputs


def random_text(rng: random.Random) -> str:
    """Random text: pure noise, HC1-looking noise, or Base45 noise."""
    kind = rng.randrange(5)
    n = rng.choice([0, 1, 3, 10, 100, 500, 2000])
    if kind == 0:
        return "".join(chr(rng.randrange(0x20, 0x7F)) for _ in range(n))
    if kind == 1:
        return codec.PREFIX + "".join(rng.choice(B45_ALPHABET) for _ in range(n))
    if kind == 2:
        return "".join(chr(rng.choice([rng.randrange(0, 0x20), rng.randrange(0x80, 0x3000),
                                       rng.randrange(0xE000, 0x110000)])) for _ in range(n))
    if kind == 3:
        return codec.PREFIX + codec.b45encode(bytes(rng.randrange(256) for _ in range(n)))
    body = bytes(rng.randrange(256) for _ in range(n))
    return codec.PREFIX + codec.b45encode(zlib.compress(body, rng.choice([0, 1, 9])))


def random_cbor(rng: random.Random, depth: int = 0) -> Any:
    """A random CBOR-encodable value (for COSE/CWT structure fuzzing)."""
    kinds = 10 if depth < 4 else 6
    k = rng.randrange(kinds)
    if k == 0:
        return rng.choice([0, 1, -1, 23, 24, 255, 2**31, -(2**63), 2**64 - 1, 2**70, -(2**70)])
    if k == 1:
        return "".join(chr(rng.randrange(0x20, 0x2000)) for _ in range(rng.randrange(12)))
    if k == 2:
        return bytes(rng.randrange(256) for _ in range(rng.choice([0, 1, 8, 32, 64])))
    if k == 3:
        return rng.choice([None, True, False, 1.5, float("nan"), float("inf"), cbor2.undefined])
    if k == 4:
        return cbor2.CBORTag(rng.choice([0, 1, 2, 18, 24, 61, 98, 258, 1004, 55799, 999]),
                             random_cbor(rng, depth + 1))
    if k == 5:
        return rng.choice(["1.3.0", "2021-10-01", "URN:UVCI:01:VN:091/1/X#A", "VN", "v", "nam"])
    if k in (6, 7):
        return [random_cbor(rng, depth + 1) for _ in range(rng.randrange(5))]
    keys = [rng.choice([1, 4, 6, -260, -7, "v", "nam", "dob", "ver", "fn", b"k"])
            for _ in range(rng.randrange(5))]
    return {key: random_cbor(rng, depth + 1) for key in keys}


def random_dcc(rng: random.Random) -> Any:
    """A default DCC with a few fields replaced by random CBOR values."""
    dcc: dict[Any, Any] = default_dcc()
    for _ in range(rng.randrange(1, 4)):
        nam, v = dcc.get("nam"), dcc.get("v")
        targets = [dcc] + [t for t in (nam, v[0] if isinstance(v, list) and v else None)
                           if isinstance(t, dict)]
        target = rng.choice(targets)
        key = rng.choice([*list(target), "x", 5])
        target[key] = random_cbor(rng)
    return dcc


_EDGE_VALUES: dict[str, list[Any]] = {
    "ver": ["1.3.0", "1.3.5", "1.0.0", "1.2.1", "1.3", "v1.3.0", "01.3.0", "1.3.0 ", "2.0.0", ""],
    "dob": ["1990-01-02", "1990", "1990-01", "", "1990-13-01", "1990-02-30", "1899-12-31",
            "2100-01-01", "1990-1-2", " 1990-01-02", "1990-01-02\n", "19900102",
            "1990-01-02T00:00:00", "1990-W01-1", "١٩٩٠-٠١-٠٢"],
    "fn": ["", "A" * 80, "A" * 81, "Nguyễn\n", "N\u0301", " ", "Đ"],
    "fnt": ["NGUYEN", "nguyen", "NGUYEN<", "<", "", "N" * 80, "N" * 81, "NGUYỄN", "NGUYEN ",
            "NGUYEN\n", "1", "D<D"],
    "gnt": ["VAN<AN", "", "VAN AN", "<" * 81],
    "dn": [1, 0, -1, 9, 10, 2**31, 1.0, 2.5, True, "2", None],
    "sd": [2, 0, 9, 10, 1.0, -2],
    "dt": ["2021-10-01", "2021-02-30", "2021-10-01T00:00:00Z", "2021-10", "", "20211001",
           "2021-10-01\n", "1899-01-01"],
    "tg": ["840539006", "840539007", "", "840539006 "],
    "co": ["VN", "vn", "XK", "VNM", "", "V"],
    "is": ["", "A" * 80, "A" * 81],
    "ci": ["URN:UVCI:01:VN:091/1/X#A", "", "A" * 80, "A" * 81, "URN:UVCI:01:VN:\n"],
    "vp": ["1119349007", "", "J07BX03", 7],
    "mp": ["EU/1/20/1528", "", "X" * 100],
    "ma": ["ORG-100030215", ""],
}


def near_valid_dcc(rng: random.Random) -> dict[str, Any]:
    """A schema-valid DCC with one or two fields set to an edge value (lengths at the limit,
    patterns just off, dates that do not exist, wrong types): the schema step's border."""
    dcc: dict[str, Any] = default_dcc()
    for _ in range(rng.choice([1, 1, 2])):
        name = rng.choice(list(_EDGE_VALUES))
        value = rng.choice(_EDGE_VALUES[name])
        if name in ("ver", "dob"):
            dcc[name] = value
        elif name in ("fn", "fnt", "gnt"):
            dcc["nam"][name] = value
        else:
            dcc["v"][0][name] = value
    if rng.random() < 0.1:
        dcc[rng.choice(["extra", "t", "r", "nam"])] = rng.choice([{}, [], "x", [{}]])
    if rng.random() < 0.1 and isinstance(dcc["nam"], dict):
        dcc["nam"].pop(rng.choice(["fn", "fnt", "gn", "gnt"]), None)
    return dcc


HOLDER_CARD = ("079090012345|123456789|Nguyễn Văn An|02011990|Nam|Số 1, Phường 2, Rạch Giá|"
               "01012021")


def image_inputs(rng: random.Random, texts: list[str]) -> bytes:
    """A picture: a QR of a (mutated) seed, a damaged picture file, or a hostile header."""
    import io
    import struct

    from vaxqr import qr

    kind = rng.randrange(6)
    text = rng.choice(texts)
    if kind == 1:
        text = mutate_text(text, rng)
    try:
        png = qr.to_png(text, scale=rng.choice([2, 3, 4]))
    except Exception:
        png = qr.to_png("HC1:0")
    if kind <= 1:
        return png
    if kind == 2:  # bit flips in a BMP (no checksums: the pixels really change)
        from PIL import Image

        buf = io.BytesIO()
        Image.open(io.BytesIO(png)).convert("L").save(buf, "BMP")
        b = bytearray(buf.getvalue())
        for _ in range(rng.choice([1, 10, 100, 1000])):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
        return bytes(b)
    if kind == 3:  # damaged PNG bytes (truncated, flipped)
        b = bytearray(png)
        if rng.random() < 0.5:
            return bytes(b[: rng.randrange(len(b))])
        for _ in range(rng.choice([1, 4, 16])):
            i = rng.randrange(len(b))
            b[i] = rng.randrange(256)
        return bytes(b)
    if kind == 4:  # a PNG header claiming a huge picture (valid CRC)
        w, h = rng.choice([(100_000, 100_000), (1, 2**31 - 1), (65535, 65535), (0, 5)])
        ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
        chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(
            ">I", zlib.crc32(b"IHDR" + ihdr))
        return b"\x89PNG\r\n\x1a\n" + chunk + png[33:]
    magic = rng.choice([b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"GIF89a", b"BM", b"RIFF"])
    return magic + bytes(rng.randrange(256) for _ in range(rng.choice([0, 10, 1000])))


def stream_input(rng: random.Random, texts: list[str]) -> bytes:
    """Bytes for ``vaxqr verify -``: a few lines, hostile ones included."""
    parts = []
    for _ in range(rng.randrange(1, 6)):
        kind = rng.randrange(8)
        if kind <= 2:
            line = mutate_text(rng.choice(texts), rng).encode("utf-8", "surrogatepass")
        elif kind == 3:
            line = rng.choice(texts).encode()
        elif kind == 4:
            line = bytes(rng.randrange(256) for _ in range(rng.randrange(200)))
        elif kind == 5:
            line = b"\x00" * rng.randrange(5) + b"HC1:" + b"\xff\xfe" + b"\x00"
        elif kind == 6:
            line = b"A" * rng.choice([65535, 65536, 70000, 200_000])
        else:
            line = b""
        parts.append(line + rng.choice([b"\n", b"\r\n", b"\n", b""]))
    return b"".join(parts)
