"""vaxqr's credentials as another DCC verifier reads them.

Every credential here goes through ``tests/dccref.py``, a reader written from the HCERT
specification that shares no code with vaxqr, and the QR images through zxing-cpp alone:
what SPEC §1 promises ("any EU DCC verifier reads vaxqr credentials") checked against the
standard's own rules rather than against vaxqr's reader.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import unicodedata
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import zxingcpp
from cryptography import x509
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from vaxqr import certs, issue
from vaxqr.credential import UvciMaker

import dccref
from hierarchy import PW, make_hierarchy
from records import HEADER, good_rows, write_csv

ROOT = Path(__file__).resolve().parent.parent
SIGNER = ROOT / "keys" / "examples" / "communes" / "31078"
CA = ROOT / "keys" / "examples" / "ca" / "ca.crt"
TODAY = date(2022, 1, 15)
# every vaccine SPEC §4 lists, by the key a clerk types, with its EU product code
VACCINES = {"astrazeneca": "EU/1/21/1529", "sputnik": "Sputnik-V", "verocell": "BBIBP-CorV",
            "pfizer": "EU/1/20/1528", "moderna": "EU/1/20/1507", "janssen": "EU/1/20/1525",
            "hayatvax": "Hayat-Vax", "abdala": "Abdala"}


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


@pytest.fixture(scope="module")
def signer():
    os.chmod(SIGNER / "signer.key", 0o600)
    return certs.load_signer(SIGNER, b"vaxqr-demo")


@pytest.fixture(scope="module")
def dsc() -> x509.Certificate:
    return _cert(SIGNER / "signer.crt")


def _record(**over: str) -> issue.Record:
    fields = dict(zip(HEADER, ["Nguyễn Thị Ánh Hồng", "Nữ", "17/05/1990", "091190012345", "2",
                               "2", "2021-10-01", "pfizer", "", ""], strict=True))
    fields.update(over)
    return issue.parse_record(1, fields, today=TODAY)


def _sign(signer, rec: issue.Record) -> str:
    info = issue.signer_info(signer)
    (uvci,) = UvciMaker(info.province_code, info.commune_code).draw(1)
    return issue.sign_record(info, rec, uvci)[0]


def test_the_reference_reader_knows_the_standards_examples():
    """The reader itself, on the examples the standards give (so a passing interop test
    means the standard's rules, not a reader that accepts anything)."""
    assert dccref.b45decode("BB8") == b"AB"
    assert dccref.b45decode("%69 VD92EX0") == b"Hello!!"
    assert dccref.b45decode("UJCLQE7W581") == b"base-45"
    assert dccref.b45decode("FGW") == b"\xff\xff"
    for bad in ("GGW", "U6", "abc", "A"):
        with pytest.raises(ValueError):
            dccref.b45decode(bad)
    assert dccref.uvci_check_character("URN:UVCI:01:NL:187/37512422923") == "Z"
    assert dccref.transliterate("Trương Thị Ánh Hồng") == "TRUONG<THI<ANH<HONG"
    assert dccref.transliterate("ĐINH XUÂN HOÀNG") == "DINH<XUAN<HOANG"
    assert dccref.transliterate("d'Červenková Panklová") == "DCERVENKOVA<PANKLOVA"
    assert dccref.transliterate("Jiřina-Maria Alena") == "JIRINA<MARIA<ALENA"


@pytest.mark.parametrize("vaccine", sorted(VACCINES))
def test_every_vaccine_reads_as_the_standard_says(signer, dsc, vaccine):
    rec = _record(vaccine=vaccine, dose_number="1", total_doses="1" if vaccine == "janssen"
                  else "2")
    got = dccref.read(_sign(signer, rec), dsc)
    (v,) = got.dcc["v"]
    assert v["mp"] == VACCINES[vaccine] and v["dt"] == "2021-10-01" and v["dn"] == 1
    assert got.dcc["dob"] == "1990-05-17"
    assert got.dcc["nam"] == {"fn": "Nguyễn", "gn": "Thị Ánh Hồng", "fnt": "NGUYEN",
                              "gnt": "THI<ANH<HONG"}
    assert got.exp - got.iat == 365 * 86400


def test_a_name_typed_decomposed_is_signed_precomposed(signer, dsc):
    name = unicodedata.normalize("NFD", "Đặng Thị Thuý Hằng")
    got = dccref.read(_sign(signer, _record(full_name=name)), dsc)
    assert got.dcc["nam"]["fn"] == "Đặng" and got.dcc["nam"]["gnt"] == "THI<THUY<HANG"


# Vietnamese letters, precomposed, with every tone on every vowel (docs/vietnam.md §5)
_VOWELS = "aăâeêioôơuưy"
_TONES = ["", "\u0300", "\u0301", "\u0303", "\u0309", "\u0323"]
_LETTERS = sorted({unicodedata.normalize("NFC", v + t) for v in _VOWELS for t in _TONES}
                  | set("bcdđghklmnpqrstvx"))
_word = st.text(alphabet=_LETTERS, min_size=1, max_size=7).map(str.capitalize)


@settings(max_examples=150, deadline=None)
@given(words=st.lists(_word, min_size=1, max_size=5))
def test_any_vietnamese_name_is_transliterated_as_icao_9303_says(signer, dsc, words):
    name = " ".join(words)
    got = dccref.read(_sign(signer, _record(full_name=name)), dsc)
    assert got.dcc["nam"]["fn"] == words[0]
    assert got.dcc["nam"].get("gn") == (" ".join(words[1:]) or None)


def _zxing(path: Path) -> zxingcpp.Barcode:
    """The picture's one QR code, as zxing-cpp reads it. zxing-cpp, reading every
    symbology, once (in one of thousands of runs) reported a second code in a batch image;
    so only QR codes are read, and a code found twice at the same text counts once (a
    second credential, a different text, still fails)."""
    codes = zxingcpp.read_barcodes(Image.open(path), formats=zxingcpp.BarcodeFormat.QRCode)
    assert len({c.text for c in codes}) == 1, [c.text[:40] for c in codes]
    return codes[0]


def test_a_single_credential_picture_reads_with_zxing_alone(dsc, tmp_path):
    out = tmp_path / "card.png"
    env = {**os.environ, "VAXQR_PASSWORD": "vaxqr-demo"}
    signer_dir = tmp_path / "signer"  # a copy: its ledger and office register start empty
    shutil.copytree(SIGNER, signer_dir, ignore=shutil.ignore_patterns("ledger.sqlite*"))
    os.chmod(signer_dir / "signer.key", 0o600)
    subprocess.run([str(Path(sys.executable).parent / "vaxqr"), "issue", "--signer",
                    str(signer_dir),
                    "--name", "Trương Thị Ánh Hồng", "--sex", "Nữ", "--dob", "1990-05-17",
                    "--id", "091190001234", "--vaccine", "verocell", "--dose", "2/2",
                    "--date", "2021-10-01", "--out", str(out)], check=True, env=env,
                   capture_output=True)
    code = _zxing(out)
    assert code.ec_level == "Q", "error correction Q, as hcert_spec §4.2.2 recommends"
    got = dccref.read(code.text, dsc)
    assert got.dcc["nam"]["fnt"] == "TRUONG" and got.dcc["v"][0]["mp"] == "BBIBP-CorV"


def test_a_batch_reads_with_zxing_and_the_reference_reader(signer, dsc, tmp_path):
    src = write_csv(tmp_path / "records.csv", good_rows(24, seed=7))
    out = tmp_path / "out"
    result = issue.issue_batch(signer, src, out, workers=2)
    assert result.issued == 24
    with (out / "manifest.csv").open(encoding="utf-8-sig", newline="") as fh:
        manifest = list(csv.DictReader(fh))
    assert len(manifest) == 24
    uvcis = set()
    for row in manifest:
        code = _zxing(out / row["file"])
        assert code.text == row["hc1"] and code.ec_level == "Q"
        got = dccref.read(code.text, dsc)
        nam = got.dcc["nam"]
        assert f"{nam['fn']} {nam['gn']}" == row["full_name"]
        assert got.dcc["v"][0]["ci"] == row["uvci"]
        uvcis.add(row["uvci"])
    assert len(uvcis) == 24


def test_the_example_certificates_are_what_the_dcc_trust_model_asks(dsc):
    dccref.check_dsc(dsc, _cert(CA))
    for commune in (ROOT / "keys" / "examples" / "communes").iterdir():
        dccref.check_dsc(_cert(commune / "signer.crt"), _cert(CA))


def test_certificates_vaxqr_makes_are_what_the_dcc_trust_model_asks(tmp_path):
    h = make_hierarchy(tmp_path)
    ca = _cert(h.ca / "ca.crt")
    for d in (h.s1, h.s2):
        dccref.check_dsc(h.dsc(d), ca)
    signer = certs.load_signer(h.s1, PW)
    info = issue.signer_info(signer)
    (uvci,) = UvciMaker(info.province_code, info.commune_code).draw(1)
    rec = _record()
    when = h.dsc(h.s1).not_valid_before_utc + timedelta(days=2)
    hc1 = issue.sign_record(info, rec, uvci, now=when)[0]
    got = dccref.read(hc1, h.dsc(h.s1), at=when + timedelta(hours=1))
    assert got.iat == int(when.timestamp()) and got.dcc["v"][0]["ci"] == uvci
    assert datetime.fromtimestamp(got.exp, UTC) <= h.dsc(h.s1).not_valid_after_utc
