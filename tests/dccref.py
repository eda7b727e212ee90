"""A DCC reader written from the HCERT specification, not from vaxqr's code.

It imports nothing from ``vaxqr``: every layer is undone with general libraries (zlib, cbor2,
cryptography, jsonschema) or by the text of the standard (Base45 from RFC 9285, the UVCI
check character from eHN Annex 2, the ``fnt``/``gnt`` transliteration from ICAO 9303 as
docs/vietnam.md §5.2 gives it). What it reads from the repository is data: the EU's DCC
schema and value-set files. Tests run vaxqr's credentials through it, so that they are read
as another DCC verifier reads them, and held to the rules an *issuer* must keep (standards.md
§1.2-1.13: "be strict when generating").

Each check fails with an ``AssertionError`` naming the rule.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
import zlib
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from jsonschema import Draft202012Validator

DATA = Path(__file__).resolve().parent.parent / "vaxqr" / "data"
B45 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"  # RFC 9285 §4, values 0-44
UVCI_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/:"  # eHN Annex 2: Luhn mod 38
OID_VACCINATION = ("1.3.6.1.4.1.1847.2021.1.2", "1.3.6.1.4.1.0.1847.2021.1.2")
OID_DCC_TYPES = ("1.3.6.1.4.1.1847.2021.1.", "1.3.6.1.4.1.0.1847.2021.1.")
TG_COVID19 = "840539006"
# standards.md §1.13 / vietnam.md §4.2: the (mp, ma) pair of each vaccine Vietnam used
MP_MA = {
    "EU/1/20/1528": "ORG-100030215", "EU/1/20/1507": "ORG-100031184",
    "EU/1/21/1529": "ORG-100001699", "EU/1/20/1525": "ORG-100001417",
    "Sputnik-V": "Gamaleya-Research-Institute", "BBIBP-CorV": "ORG-100020693",
    "Hayat-Vax": "ORG-100023050", "Abdala": "CIGB",
}


def b45decode(text: str) -> bytes:
    """RFC 9285 §4.2, group by group; ``ValueError`` for anything the RFC refuses."""
    if any(ch not in B45 for ch in text):
        raise ValueError("a character outside the Base45 alphabet")
    if len(text) % 3 == 1:
        raise ValueError("a Base45 length of 1 mod 3")
    out = bytearray()
    for i in range(0, len(text) - len(text) % 3, 3):
        n = B45.index(text[i]) + 45 * B45.index(text[i + 1]) + 2025 * B45.index(text[i + 2])
        if n > 0xFFFF:
            raise ValueError(f"Base45 group {text[i:i + 3]!r} at position {i} overflows 65535")
        out += n.to_bytes(2, "big")
    if len(text) % 3:
        n = B45.index(text[-2]) + 45 * B45.index(text[-1])
        if n > 0xFF:
            raise ValueError(f"Base45 final pair {text[-2:]!r} overflows 255")
        out.append(n)
    return bytes(out)


def uvci_check_character(body: str) -> str:
    """Luhn mod N (N = 38) over the whole UVCI before ``#`` (eHN Annex 2)."""
    n = len(UVCI_ALPHABET)
    factor, total = 2, 0
    for ch in reversed(body):
        addend = factor * UVCI_ALPHABET.index(ch)
        total += addend // n + addend % n
        factor = 1 if factor == 2 else 2
    return UVCI_ALPHABET[(n - total % n) % n]


def transliterate(name: str) -> str:
    """docs/vietnam.md §5.2's algorithm: NFC, Đ→D, drop every combining mark, upper-case,
    runs of space, hyphen or comma → ``<``, anything else outside A-Z dropped."""
    text = unicodedata.normalize("NFC", name).replace("Đ", "D").replace("đ", "d")
    text = "".join(c for c in unicodedata.normalize("NFD", text)
                   if unicodedata.category(c) != "Mn").upper()
    text = re.sub(r"[ ,\-]+", "<", text.strip())
    return re.sub(r"[^A-Z<]", "", text)


def _value_set(name: str) -> set[str]:
    return set(json.loads((DATA / "valuesets" / f"{name}.json").read_text())["valueSetValues"])


_VALIDATOR: Draft202012Validator | None = None


def _schema() -> Draft202012Validator:
    global _VALIDATOR
    if _VALIDATOR is None:
        schema = json.loads((DATA / "schemas" / "DCC-1.3.0.json").read_text())
        _VALIDATOR = Draft202012Validator(schema,
                                          format_checker=Draft202012Validator.FORMAT_CHECKER)
    return _VALIDATOR


@dataclass(frozen=True)
class Read:
    """What a reader of the standard finds in a credential."""

    dcc: dict[str, Any]
    iss: str
    iat: int
    exp: int
    kid: bytes


def _plain(value: Any, where: str = "dcc") -> None:
    """CBOR types of DCC content (standards.md §1.3): ints, text, arrays, maps; no
    floats, byte strings, tags or undefined/null values."""
    if isinstance(value, dict):
        for k, v in value.items():
            assert type(k) is str, f"{where}: a map key that is not text ({k!r})"
            _plain(v, f"{where}.{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _plain(v, f"{where}[{i}]")
    else:
        assert type(value) in (str, int), f"{where}: a {type(value).__name__} value"


def read(hc1: str, dsc: x509.Certificate, *, at: datetime | None = None) -> Read:
    """Undo every layer of ``hc1`` as hcert_spec.md §4 and the FAQ's verifier steps say,
    verify the signature with ``dsc`` before reading the contents, and check what an
    issuer must do. ``at``: the validation time (default now)."""
    at = at or datetime.now(UTC)
    assert hc1.startswith("HC1:"), "the context identifier HC1: (hcert_spec §4.2.2)"
    compressed = b45decode(hc1[4:])
    assert compressed[:2] == b"\x78\xda", "zlib with best compression (78 DA), §1.6"
    cose = zlib.decompress(compressed)
    assert cose[:1] == b"\xd2", "COSE_Sign1 emitted with tag 18 (D2) only, §1.5"
    tagged = cbor2.loads(cose)
    assert isinstance(tagged, cbor2.CBORTag) and tagged.tag == 18
    assert isinstance(tagged.value, (list, tuple)) and len(tagged.value) == 4, \
        "COSE_Sign1 is an array of 4"
    protected, unprotected, payload, signature = tagged.value
    assert isinstance(protected, bytes) and isinstance(payload, bytes)
    header = cbor2.loads(protected)
    assert header.get(1) == -7, "alg ES256 (-7) in the protected header, §1.4"
    kid = header.get(4)
    assert isinstance(kid, bytes) and len(kid) == 8, "an 8-byte kid, protected"
    assert set(header) == {1, 4}, f"nothing but alg and kid protected: {sorted(header)}"
    assert unprotected == {}, "an empty unprotected header (the kid is protected)"
    der = dsc.public_bytes(serialization.Encoding.DER)
    assert kid == hashlib.sha256(der).digest()[:8], "kid = SHA-256(DSC DER)[:8], App. A.1"
    # the signature first (hcert_spec §6.3), over the protected bytes as received
    assert isinstance(signature, bytes) and len(signature) == 64, "raw r||s, 64 bytes"
    to_sign = cbor2.dumps(["Signature1", protected, b"", payload])
    der_sig = encode_dss_signature(int.from_bytes(signature[:32], "big"),
                                   int.from_bytes(signature[32:], "big"))
    key = dsc.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"
    key.verify(der_sig, to_sign, ec.ECDSA(hashes.SHA256()))  # raises InvalidSignature
    claims = cbor2.loads(payload)
    assert set(claims) == {1, 4, 6, -260}, f"CWT claims iss, exp, iat, hcert: {sorted(claims)}"
    iss, exp, iat = claims[1], claims[4], claims[6]
    assert type(exp) is int and type(iat) is int, "integer NumericDates, §1.3"
    assert iss == "VN", "iss: the issuing country"
    not_before = dsc.not_valid_before_utc.timestamp()
    not_after = dsc.not_valid_after_utc.timestamp()
    assert not_before <= iat <= at.timestamp() <= exp <= not_after, \
        "DSC.notBefore <= iat <= now <= exp <= DSC.notAfter (§1.10)"
    hcert = claims[-260]
    assert set(hcert) == {1}, "hcert holds eu_dcc_v1 only"
    dcc = hcert[1]
    _plain(dcc)
    _check_dcc(dcc)
    return Read(dcc, iss, iat, exp, kid)


def _check_dcc(dcc: dict[str, Any]) -> None:
    errors = sorted(_schema().iter_errors(dcc), key=str)
    assert not errors, f"DCC schema 1.3.0: {errors[0].message}"
    assert dcc["ver"] == "1.3.0"
    nam = dcc["nam"]
    for field in ("fn", "gn"):
        if field in nam:
            assert unicodedata.is_normalized("NFC", nam[field]), f"{field} in NFC, §1.3"
    assert nam["fnt"] == transliterate(nam["fn"])[:80], "fnt: ICAO 9303 of fn"
    if "gn" in nam:
        assert nam.get("gnt") == transliterate(nam["gn"])[:80], "gnt: ICAO 9303 of gn"
    assert "v" in dcc and "t" not in dcc and "r" not in dcc, "a vaccination certificate"
    (v,) = dcc["v"]
    assert v["tg"] == TG_COVID19
    assert v["vp"] in _value_set("vaccine-prophylaxis")
    assert v["mp"] in _value_set("vaccine-medicinal-product")
    assert v["ma"] in _value_set("vaccine-mah-manf")
    assert MP_MA.get(v["mp"]) == v["ma"], f"{v['mp']} is made by {MP_MA.get(v['mp'])}"
    assert 1 <= v["dn"] <= v["sd"]
    assert v["co"] == "VN"
    date.fromisoformat(v["dt"])
    ci = v["ci"]
    m = re.fullmatch(r"URN:UVCI:01:VN:([A-Z0-9/]+)#([A-Z0-9/:])", ci)
    assert m, f"UVCI shape (eHN Annex 2): {ci}"
    assert uvci_check_character(ci.split("#")[0]) == m[2], f"UVCI check character: {ci}"


def check_dsc(dsc: x509.Certificate, ca: x509.Certificate) -> None:
    """What hcert_spec.md §5 and certificate governance ask of a CSCA and its DSCs."""
    assert any(a.oid == NameOID.COUNTRY_NAME and a.value == "VN" for a in ca.subject), \
        "the CSCA's subject names its country (C=VN)"
    dsc.verify_directly_issued_by(ca)
    ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    aki = dsc.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ski, "the DSC's AKI is its CSCA's SKI"
    dsc.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)  # a DSC SKI
    assert dsc.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
    try:
        eku = dsc.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return  # no EKU: any type (App. A.4)
    dotted = [o.dotted_string for o in eku]
    ours = [o for o in dotted if o.startswith(OID_DCC_TYPES)]
    assert not ours or any(o in OID_VACCINATION for o in ours), \
        f"an EKU that allows vaccination certificates: {dotted}"
    assert ExtendedKeyUsageOID.SERVER_AUTH.dotted_string not in dotted
