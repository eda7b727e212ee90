import subprocess
import sys
import unicodedata
from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vaxqr import credential as c
from vaxqr.errors import ValidationError


@pytest.mark.parametrize(
    ("full", "fn", "gn", "fnt", "gnt"),
    [
        ("Nguyễn Thị Ánh Hồng", "Nguyễn", "Thị Ánh Hồng", "NGUYEN", "THI<ANH<HONG"),
        ("Trương Văn Đạt", "Trương", "Văn Đạt", "TRUONG", "VAN<DAT"),
        ("ĐINH XUÂN HOÀNG", "ĐINH", "XUÂN HOÀNG", "DINH", "XUAN<HOANG"),
        ("  Lê   Thị\u00a0Thu  ", "Lê", "Thị Thu", "LE", "THI<THU"),
        ("Phạm Ngọc Ưng-Ơn", "Phạm", "Ngọc Ưng-Ơn", "PHAM", "NGOC<UNG<ON"),
        ("Danh", "Danh", "", "DANH", ""),
        ("Musterfrau-Gößinger Gabriele", "Musterfrau-Gößinger", "Gabriele",
         "MUSTERFRAU<GOSSINGER", "GABRIELE"),
        ("d'Artagnan Huy", "d'Artagnan", "Huy", "DARTAGNAN", "HUY"),
    ],
)
def test_names(full, fn, gn, fnt, gnt):
    for form in ("NFC", "NFD"):
        name = c.PersonName.from_full_name(unicodedata.normalize(form, full))
        assert (name.fn, name.gn, name.fnt, name.gnt) == (fn, gn, fnt, gnt)
        assert unicodedata.is_normalized("NFC", name.fn + name.gn)


def test_no_letter_vanishes():
    assert c.transliterate("NGUYỄN") == "NGUYEN"
    assert c.transliterate("TRƯƠNG") == "TRUONG"
    for bad in ("Nguyễn 2", "Lý 李", "Trần\u200b"):
        with pytest.raises(ValidationError, match="no ICAO transliteration"):
            c.transliterate(bad)


@given(st.lists(st.sampled_from(list("aăâbcdđeêghiklmnoôơpqrstuưvxyàáảãạằắẳẵặầấẩẫậèéẻẽẹềếểễệ"
                                     "ìíỉĩịòóỏõọồốổỗộờớởỡợùúủũụừứửữựỳýỷỹỵ")), min_size=1,
                max_size=12))
def test_transliteration_keeps_every_letter(letters):
    word = "".join(letters)
    out = c.transliterate(word)
    assert len(out) == len(word)
    assert set(out) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def test_empty_and_long_names():
    with pytest.raises(ValidationError, match="empty"):
        c.PersonName.from_full_name("   ")
    with pytest.raises(ValidationError):
        c.PersonName.from_full_name("A" * 81 + " B")


def test_uvci_luhn_mod38():
    assert c.luhn_mod38("URN:UVCI:01:NL:187/37512422923") == "Z"
    u = c.make_uvci("091", "30760")
    assert u.startswith("URN:UVCI:01:VN:091/30760/")
    assert c.uvci_check_ok(u) and c.uvci_check_ok(u.lower())
    assert len(u) <= 80
    assert c.make_uvci("091", "30760") != u
    body, check = u.rsplit("#", 1)
    wrong = "A" if check != "A" else "B"
    assert not c.uvci_check_ok(f"{body}#{wrong}")
    assert c.make_uvci("091", "30760", "ABC123") == "URN:UVCI:01:VN:091/30760/ABC123#" + \
        c.luhn_mod38("URN:UVCI:01:VN:091/30760/ABC123")


def test_vaccines():
    # SPEC's eight, AstraZeneca's as two products: Vaxzevria and Covishield (their EU codes)
    assert len(c.VACCINES) == 9
    assert c.find_vaccine("pfizer").mp == "EU/1/20/1528"
    assert c.find_vaccine("EU/1/21/1529").key == "astrazeneca"
    assert c.find_vaccine(" Vero Cell ").mp == "BBIBP-CorV"
    assert c.find_vaccine("Sputnik-V").ma == "Gamaleya-Research-Institute"
    with pytest.raises(ValidationError, match="unknown vaccine"):
        c.find_vaccine("covaxin")


@pytest.mark.parametrize(("name", "key"), [
    # the eight as SPEC §2 and docs/vietnam.md §4.1 name them, as an export would carry them
    ("AstraZeneca", "astrazeneca"), ("Sputnik V", "sputnik"), ("SPUTNIK V", "sputnik"),
    ("Sinopharm Vero Cell", "verocell"), ("Vero  Cell", "verocell"), ("Pfizer", "pfizer"),
    ("Pfizer BioNTech", "pfizer"), ("Moderna", "moderna"), ("Janssen", "janssen"),
    ("Hayat-Vax", "hayatvax"), ("Hayat Vax", "hayatvax"), ("Abdala", "abdala"),
])
def test_vaccines_by_the_names_people_write(name, key):
    assert c.find_vaccine(name).key == key


def test_certificate_dict_is_schema_shaped():
    cert = c.Certificate(
        name=c.PersonName.from_full_name("Nguyễn Văn An"),
        dob=date(1990, 1, 2),
        vaccination=c.Vaccination(vaccine=c.find_vaccine("moderna"), dn=2, sd=2,
                                  dt=date(2021, 9, 1), issuer="UBND xã Dương Tơ",
                                  ci=c.make_uvci("091", "31078")),
    )
    d = cert.to_dict()
    assert d["ver"] == "1.3.0" and d["dob"] == "1990-01-02"
    assert d["v"][0] | {"ci": "x"} == {
        "tg": "840539006", "vp": "1119349007", "mp": "EU/1/20/1507", "ma": "ORG-100031184",
        "dn": 2, "sd": 2, "dt": "2021-09-01", "co": "VN", "is": "UBND xã Dương Tơ", "ci": "x"}
    s = c.summary(d)
    assert s["full_name"] == "Nguyễn Văn An" and s["vaccine"] == "Moderna Spikevax"


def test_to_jsonable():
    dt = datetime(2021, 5, 1, 10, 0, tzinfo=UTC)
    assert c.to_jsonable({"a": [dt, 1, "x"]}) == {"a": ["2021-05-01T10:00:00Z", 1, "x"]}
    with pytest.raises(ValidationError, match="bytes"):
        c.to_jsonable({"nam": {"fn": b"x"}})
    with pytest.raises(ValidationError, match="not text"):
        c.to_jsonable({1: "x"})


_cbor_like = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**60), max_value=2**60)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=5) | st.binary(max_size=3)
    | st.datetimes(timezones=st.just(UTC)) | st.dates(),
    lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner)
    | st.dictionaries(st.text(max_size=3) | st.integers(0, 3), inner, max_size=4),
    max_leaves=20,
)


@given(_cbor_like)
def test_to_jsonable_fast_path_equals_the_careful_one(value):
    # to_jsonable takes a fast path for plain JSON values; it must give exactly what the
    # careful path (which names the field of any problem) gives, result or error.
    def outcome(fn):
        try:
            return ("ok", fn(value))
        except ValidationError as exc:
            return ("error", str(exc))

    fast, careful = outcome(c.to_jsonable), outcome(c._to_jsonable)
    if fast[0] == "ok" and careful[0] == "ok":
        assert repr(fast[1]) == repr(careful[1])  # repr: NaN != NaN, but never accepted
    else:
        assert fast == careful


def test_uvci_serials_use_the_whole_alphabet_evenly():
    from collections import Counter

    serials = [c.make_uvci("091", "31078").split("/")[2].split("#")[0] for _ in range(3000)]
    assert all(len(s) == 12 for s in serials)
    counts = Counter(ch for s in serials for ch in s)
    assert set(counts) == set(c._SERIAL_ALPHABET)
    expected = 3000 * 12 / len(c._SERIAL_ALPHABET)
    assert all(abs(n - expected) < 0.15 * expected for n in counts.values())
    assert len(set(serials)) == len(serials)


@given(st.text(max_size=60))
def test_normalize_text_collapses_exactly_what_the_regex_did(text):
    import re

    expected = re.sub(r"\s+", " ", unicodedata.normalize("NFC", text)).strip()
    assert c.normalize_text(text) == expected


@given(st.sampled_from(sorted(c.VACCINES)), st.integers(1, 9), st.integers(1, 9),
       st.dates(date(1900, 1, 1), date(2030, 1, 1)), st.dates(date(2020, 1, 1), date(2030, 1, 1)),
       st.sampled_from(["Nguyễn Thị Hoà", "Danh", "Lê Văn Tám"]), st.text(max_size=20))
def test_vaccination_dcc_is_the_certificate_dict(key, dn, sd, dob, dt, full, issuer):
    name = c.PersonName.from_full_name(full)
    uvci = c.make_uvci("091", "31078")
    cert = c.Certificate(name=name, dob=dob, vaccination=c.Vaccination(
        vaccine=c.VACCINES[key], dn=dn, sd=sd, dt=dt, issuer=issuer, ci=uvci))
    assert c.vaccination_dcc(name=name, dob=dob, vaccine=c.VACCINES[key], dn=dn, sd=sd, dt=dt,
                             issuer=issuer, ci=uvci) == cert.to_dict()


@given(st.integers(0, c._SERIALS - 1), st.sampled_from([("091", "30760"), ("01", "00004")]))
def test_uvci_maker_gives_make_uvci_of_the_same_serial(n, place):
    maker = c.UvciMaker(*place)
    uvci = maker.from_number(n)
    serial = uvci.split("/")[2].split("#")[0]
    assert uvci == c.make_uvci(*place, serial)
    assert c.uvci_check_ok(uvci)
    digits = []  # base 34, lowest digit first: the serial make_uvci drew from a number
    for _ in range(c.SERIAL_DIGITS):
        n, d = divmod(n, len(c._SERIAL_ALPHABET))
        digits.append(c._SERIAL_ALPHABET[d])
    assert serial == "".join(digits)


def test_uvci_maker_rejects_draws_that_would_bias_the_serials(monkeypatch):
    import os

    def half(v):
        return v.to_bytes(5, "little")

    limit, h = c._DRAW_LIMIT, c._HALF
    # (high, low) pairs: a rejected high, a rejected low, the last accepted values, zeros
    stream = bytearray(half(limit) + half(0) + half(0) + half(limit)
                       + half(limit - 1) + half(limit - 1) + bytes(10 * 8))

    def urandom(n):
        taken = bytes(stream[:n])
        del stream[:n]
        return taken

    monkeypatch.setattr(os, "urandom", urandom)
    maker = c.UvciMaker("091", "30760")
    got = maker.draw(2)
    assert got == [maker.from_number((limit - 1) % h * h + (limit - 1) % h),
                   maker.from_number(0)]
    assert limit == (1 << 40) // h * h and limit < 1 << 40 and h * h == c._SERIALS
    with pytest.raises(ValueError, match="out of range"):
        maker.from_number(c._SERIALS)
    with pytest.raises(ValidationError, match="not allowed"):
        c.UvciMaker("09_1", "30760")


def test_uvci_maker_draws_distinct_uvcis_in_any_number():
    maker = c.UvciMaker("091", "30760")
    assert maker.draw(0) == []
    many = maker.draw(5000)
    assert len(many) == len(set(many)) == 5000
    assert all(u.startswith("URN:UVCI:01:VN:091/30760/") and c.uvci_check_ok(u) for u in many)


def test_covishield_has_its_own_codes_not_vaxzevrias():
    """The EU's coding rules (Annex A): AstraZeneca's code EU/1/21/1529 is for its vaccines
    except R-COVI, Covishield and Fiocruz; Covishield is `Covishield` by the Serum Institute
    of India (ORG-100001981). It was an alias of Vaxzevria, so a record naming Covishield
    was signed as another product and maker."""
    v = c.find_vaccine("Covishield")
    assert (v.mp, v.ma) == ("Covishield", "ORG-100001981")
    assert c.find_vaccine("COVISHIELD") == v and c.find_vaccine("Covishield").key == "covishield"
    assert c.find_vaccine("AstraZeneca").mp == "EU/1/21/1529"
    assert c.find_vaccine("Vaxzevria").mp == "EU/1/21/1529"


def test_to_jsonable_refuses_deep_nesting_in_both_builds():
    """Compiled, _plain_json and _to_jsonable recursed without a recursion limit: a list
    nested 100,000 deep overflowed the C stack (a segfault; Python raised RecursionError).
    Both refuse anything nested over MAX_NESTING (decoded CBOR is at most 64 deep) with a
    ValidationError; run apart, as the failure it guards against kills the process."""
    code = (
        "from vaxqr import credential as c\n"
        "from vaxqr.errors import ValidationError\n"
        "deep = []\n"
        "for _ in range(100_000):\n"
        "    deep = [deep]\n"
        "for value in (deep, {'v': deep}, [deep, b'']):\n"
        "    try:\n"
        "        c.to_jsonable(value)\n"
        "    except ValidationError as exc:\n"
        "        print(exc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert len(lines) == 3 and all("nested more than 100 levels deep" in ln for ln in lines)
    assert lines[1].startswith("v" + "[0]" * 99 + ":")
    edge: list = []
    for _ in range(c.MAX_NESTING - 1):
        edge = [edge]
    assert c.to_jsonable(edge) == edge  # 100 levels of lists: still accepted
    with pytest.raises(ValidationError, match="nested more than"):
        c.to_jsonable([edge])
