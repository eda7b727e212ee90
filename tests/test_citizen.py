"""Tests for vaxqr.citizen: ID numbers, sex, dates, names and the CCCD card QR.

Every ID number here is synthetic (random part 9xx0xx-style), never one of the public
samples quoted in docs/vietnam.md.
"""

from __future__ import annotations

import unicodedata
from datetime import date

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from vaxqr.citizen import (
    PROVINCES,
    CccdCard,
    IdNumber,
    check_id_against,
    name_key,
    names_match,
    normalize_name,
    parse_cccd,
    parse_date,
    parse_id_number,
    parse_sex,
    place_tones,
    split_name,
    strip_diacritics,
)
from vaxqr.errors import ValidationError, VaxqrError


def nfd(s: str) -> str:
    return unicodedata.normalize("NFD", s)


def nfc(s: str) -> str:
    return unicodedata.normalize("NFC", s)


# ----------------------------------------------------------------------------- provinces

APPENDIX_CODES = (
    "001 002 004 006 008 010 011 012 014 015 017 019 020 022 024 025 026 027 030 031 033 "
    "034 035 036 037 038 040 042 044 045 046 048 049 051 052 054 056 058 060 062 064 066 "
    "067 068 070 072 074 075 077 079 080 082 083 084 086 087 089 091 092 093 094 095 096"
).split()


def test_provinces_are_the_63_appendix_codes() -> None:
    assert len(PROVINCES) == 63
    assert sorted(PROVINCES) == APPENDIX_CODES


@pytest.mark.parametrize(
    ("code", "name"),
    [
        ("001", "Hà Nội"),
        ("079", "Hồ Chí Minh"),
        ("091", "Kiên Giang"),
        ("089", "An Giang"),
        ("048", "Đà Nẵng"),
        ("046", "Thừa Thiên Huế"),
        ("077", "Bà Rịa - Vũng Tàu"),
        ("096", "Cà Mau"),
        ("017", "Hòa Bình"),
        ("066", "Đắk Lắk"),
    ],
)
def test_province_names(code: str, name: str) -> None:
    assert PROVINCES[code] == name


def test_province_table_gaps_are_not_filled_and_names_are_nfc() -> None:
    for gap in ("000", "003", "005", "028", "097", "099", "100"):
        assert gap not in PROVINCES
    for code, name in PROVINCES.items():
        assert len(code) == 3 and code.isdigit() and code.startswith("0")
        assert name == nfc(name) == normalize_name(name)


def test_province_table_is_read_only() -> None:
    with pytest.raises(TypeError):
        PROVINCES["999"] = "X"  # type: ignore[index]


# ----------------------------------------------------------------------------- ID numbers


def test_parse_id_number_kien_giang_male_1985() -> None:
    got = parse_id_number("091085900123")
    assert got == IdNumber(
        number="091085900123",
        province_code="091",
        province_name="Kiên Giang",
        sex="M",
        birth_year=1985,
        century=20,
    )


@pytest.mark.parametrize(
    ("number", "sex", "year", "century"),
    [
        ("001000900001", "M", 1900, 20),
        ("001199900002", "F", 1999, 20),
        ("079203900003", "M", 2003, 21),
        ("079310900004", "F", 2010, 21),
        ("089421900005", "M", 2121, 22),
        ("089521900006", "F", 2121, 22),
        ("096600900007", "M", 2200, 23),
        ("096799900008", "F", 2299, 23),
        ("092812900009", "M", 2312, 24),
        ("092912900010", "F", 2312, 24),
    ],
)
def test_parse_id_number_century_sex_digit(number: str, sex: str, year: int, century: int) -> None:
    got = parse_id_number(number)
    assert (got.sex, got.birth_year, got.century) == (sex, year, century)


def test_parse_id_number_ignores_surrounding_whitespace() -> None:
    assert parse_id_number("  091085900123\r\n").number == "091085900123"


def test_id_number_is_frozen() -> None:
    got = parse_id_number("091085900123")
    with pytest.raises(AttributeError):
        got.sex = "F"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("value", "fragments"),
    [
        ("", ["empty"]),
        ("   ", ["empty"]),
        # every ID number starts with 0: the fix, with the zeros a spreadsheet dropped
        ("91085900123", ["12 digits", "got 11", "leading zeros", "format the column as Text",
                         "write it as 091085900123 and export again"]),
        ("1085900123", ["12 digits", "got 10", "leading zeros", "write it as 001085900123"]),
        ("385900123", ["12 digits", "got 9", "old CMND"]),
        # a spreadsheet showed the number in scientific notation and exported it so
        ("9.1072E+10", ["12 digits", "scientific notation", "as Text"]),
        ("9,10859E+11", ["scientific notation"]),
        ("0910859001234", ["12 digits", "got 13"]),
        ("09108590012", ["got 11"]),  # a digit missing, no zero dropped: no such guess
        ("09108590012X", ["non-digit", "'X'", "position 12"]),
        ("091-85900123", ["non-digit", "'-'", "position 4"]),
        ("091 85900123", ["non-digit", "' '", "position 4"]),
        ("０９１085900123", ["non-ASCII digit", "position 1"]),
        ("091٠85900123", ["non-ASCII digit", "position 4"]),
    ],
)
def test_parse_id_number_rejects_bad_shape(value: str, fragments: list[str]) -> None:
    with pytest.raises(ValidationError) as err:
        parse_id_number(value)
    for fragment in fragments:
        assert fragment in str(err.value)


def test_an_eleven_digit_id_starting_with_0_is_not_blamed_on_dropped_zeros() -> None:
    """A spreadsheet drops every leading zero: what it left never starts with 0."""
    with pytest.raises(ValidationError) as err:
        parse_id_number("09108590012")
    assert "leading zeros" not in str(err.value) and "write it as" not in str(err.value)


@pytest.mark.parametrize("code", ["000", "003", "028", "097", "099", "123", "999"])
def test_parse_id_number_rejects_unknown_province(code: str) -> None:
    with pytest.raises(ValidationError, match=f"unknown province code '{code}'"):
        parse_id_number(code + "085900123")


def test_validation_error_is_a_vaxqr_error() -> None:
    with pytest.raises(VaxqrError):
        parse_id_number("x")


@st.composite
def valid_ids(draw: st.DrawFn) -> tuple[str, str, str, int]:
    code = draw(st.sampled_from(sorted(PROVINCES)))
    sex = draw(st.sampled_from("MF"))
    year = draw(st.integers(1900, 2399))
    rest = draw(st.integers(0, 999_999))
    digit4 = 2 * ((year - 1900) // 100) + (1 if sex == "F" else 0)
    return f"{code}{digit4}{year % 100:02d}{rest:06d}", code, sex, year


@given(valid_ids())
def test_parse_id_number_round_trip(case: tuple[str, str, str, int]) -> None:
    number, code, sex, year = case
    got = parse_id_number(number)
    assert got.number == number
    assert got.province_code == code
    assert got.province_name == PROVINCES[code]
    assert got.sex == sex
    assert got.birth_year == year
    assert got.century == year // 100 + 1
    assert check_id_against(got, dob=date(year, 6, 15), sex=sex) == []


@given(st.text(max_size=20))
def test_parse_id_number_never_crashes(text: str) -> None:
    try:
        parse_id_number(text)
    except ValidationError:
        pass


# ----------------------------------------------------------------------------- ID vs record


def test_check_id_agrees() -> None:
    ident = parse_id_number("091085900123")
    assert check_id_against(ident, dob=date(1985, 3, 2), sex="Nam") == []
    assert check_id_against(ident, dob=date(1985, 12, 31), sex="M") == []
    female = parse_id_number("034303900124")
    assert check_id_against(female, dob=date(2003, 3, 21), sex=nfd("Nữ")) == []
    assert check_id_against(female, dob=date(2003, 3, 21), sex=" nu ") == []


def test_check_id_sex_message() -> None:
    female = parse_id_number("034303900124")
    assert check_id_against(female, dob=date(2003, 3, 21), sex="Nam") == [
        "ID digit 4 says female, record says Nam"
    ]
    male = parse_id_number("091085900123")
    assert check_id_against(male, dob=date(1985, 1, 1), sex="Nữ") == [
        "ID digit 4 says male, record says Nữ"
    ]


def test_check_id_century_only() -> None:
    ident = parse_id_number("091299900123")  # male, 2099
    problems = check_id_against(ident, dob=date(1999, 5, 1), sex="Nam")
    assert problems == ["ID digit 4 says born in 2000-2099, record's date of birth is 1999-05-01"]


def test_check_id_year_only() -> None:
    ident = parse_id_number("091085900123")
    problems = check_id_against(ident, dob=date(1986, 5, 1), sex="Nam")
    assert problems == [
        "ID digits 5-6 say birth year ending in 85, record's date of birth is in 1986"
    ]


def test_check_id_everything_wrong() -> None:
    ident = parse_id_number("091385900123")  # female, 2085
    problems = check_id_against(ident, dob=date(1996, 11, 24), sex="nam")
    assert len(problems) == 3
    assert problems[0].startswith("ID digit 4 says born in 2000-2099")
    assert problems[1].startswith("ID digits 5-6 say birth year ending in 85")
    assert problems[2] == "ID digit 4 says female, record says nam"


def test_check_id_unknown_sex_raises() -> None:
    with pytest.raises(ValidationError, match="unknown sex"):
        check_id_against(parse_id_number("091085900123"), dob=date(1985, 1, 1), sex="?")


# ----------------------------------------------------------------------------- sex


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Nam", "M"),
        ("nam", "M"),
        ("NAM", "M"),
        ("  Nam\r\n", "M"),
        ("Nữ", "F"),
        ("nữ", "F"),
        ("NỮ", "F"),
        (nfd("Nữ"), "F"),
        (nfd("NỮ"), "F"),
        ("\u00a0Nữ\u00a0", "F"),
        ("Nu", "F"),
        ("nu", "F"),
        ("NU", "F"),
        ("M", "M"),
        ("m", "M"),
        ("F", "F"),
        ("f", "F"),
        ("male", "M"),
        ("Male", "M"),
        ("FEMALE", "F"),
        ("female", "F"),
    ],
)
def test_parse_sex_accepts(value: str, expected: str) -> None:
    assert parse_sex(value) == expected


@pytest.mark.parametrize(
    "value", ["", " ", "X", "0", "1", "Nam Nữ", "Nư", "nũ", "Na", "men", "woman", "Khác"]
)
def test_parse_sex_rejects(value: str) -> None:
    with pytest.raises(ValidationError, match="expected Nam or Nữ"):
        parse_sex(value)


# ----------------------------------------------------------------------------- dates


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2021-11-23", date(2021, 11, 23)),
        ("1996-02-29", date(1996, 2, 29)),
        ("23/11/2021", date(2021, 11, 23)),
        ("3/7/2021", date(2021, 7, 3)),
        ("03/7/2021", date(2021, 7, 3)),
        ("3/07/2021", date(2021, 7, 3)),
        ("23-11-2021", date(2021, 11, 23)),
        ("23.11.2021", date(2021, 11, 23)),
        ("29/02/2000", date(2000, 2, 29)),
        ("  2021-11-23\n", date(2021, 11, 23)),
        ("31/12/1899", date(1899, 12, 31)),
        # a spreadsheet's date-time cell at midnight is its date
        ("2021-09-12 00:00:00", date(2021, 9, 12)),
        ("2021-09-12 00:00", date(2021, 9, 12)),
        ("2021-09-12T00:00:00", date(2021, 9, 12)),
        ("2021-09-12T00:00", date(2021, 9, 12)),
        ("12/09/2021 00:00:00", date(2021, 9, 12)),
        (" 2021-09-12 00:00:00.000 ", date(2021, 9, 12)),
    ],
)
def test_parse_date_accepts(value: str, expected: date) -> None:
    assert parse_date(value) == expected


def test_parse_date_compact_only_when_asked() -> None:
    assert parse_date("24111996", compact=True) == date(1996, 11, 24)
    assert parse_date("01012000", compact=True) == date(2000, 1, 1)
    assert parse_date("2021-11-23", compact=True) == date(2021, 11, 23)
    with pytest.raises(ValidationError, match="not in an accepted form"):
        parse_date("24111996")


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("31/02/2021", "February 2021 has 28 days"),
        ("30/02/2020", "February 2020 has 29 days"),
        ("29/02/1900", "February 1900 has 28 days"),
        ("2021-02-29", "February 2021 has 28 days"),
        ("31/04/2021", "April 2021 has 30 days"),
        ("32/01/2021", "January 2021 has 31 days"),
        ("00/01/2021", "January 2021 has 31 days"),
        ("01/13/2021", "there is no month 13"),
        ("2021-00-10", "there is no month 0"),
        ("0000-01-01", "year 0 does not exist"),
    ],
)
def test_parse_date_rejects_unreal_dates(value: str, fragment: str) -> None:
    with pytest.raises(ValidationError) as err:
        parse_date(value)
    assert "not a real date" in str(err.value)
    assert fragment in str(err.value)


def test_parse_date_compact_rejects_unreal() -> None:
    with pytest.raises(ValidationError, match="February 2021 has 28 days"):
        parse_date("31022021", compact=True)


@pytest.mark.parametrize(
    "value",
    [
        "2021/11/23",
        "23/11/21",
        "23-11/2021",
        "2021-1-5",
        "23 11 2021",
        "Nov 23 2021",
        "2021-11-23T",
        "2021-11-23 00",
        "2021-11-23  00:00",
        "２０２１-11-23",
        "23/11/２０２１",
        "123/11/2021",
        "1996112",
    ],
)
def test_parse_date_rejects_other_forms(value: str) -> None:
    with pytest.raises(ValidationError, match="not in an accepted form"):
        parse_date(value, compact=True)


@pytest.mark.parametrize(
    ("value", "time"),
    [("2021-09-12 14:30", "14:30"), ("2021-09-12T00:00:01", "00:00:01"),
     ("12/09/2021 7:05:00", "7:05:00"), ("2021-09-12 00:00:00.5", "00:00:00.5")],
)
def test_parse_date_refuses_any_other_time_naming_it(value: str, time: str) -> None:
    with pytest.raises(ValidationError) as err:
        parse_date(value)
    assert f"has a time of day ({time})" in str(err.value)
    assert value.strip() in str(err.value)


def test_parse_date_with_a_time_still_checks_the_date() -> None:
    with pytest.raises(ValidationError, match="February 2021 has 28 days"):
        parse_date("2021-02-29 00:00:00")


def test_parse_date_empty() -> None:
    with pytest.raises(ValidationError, match="date is empty"):
        parse_date("  ")


@given(st.dates(min_value=date(1, 1, 1)))
def test_parse_date_round_trips_every_form(day: date) -> None:
    y = f"{day.year:04d}"
    assert parse_date(day.isoformat()) == day
    assert parse_date(f"{day.day:02d}/{day.month:02d}/{y}") == day
    assert parse_date(f"{day.day}/{day.month}/{y}") == day
    assert parse_date(f"{day.day:02d}{day.month:02d}{y}", compact=True) == day


# ----------------------------------------------------------------------------- normalize


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Nguyễn Thị Hoa", "Nguyễn Thị Hoa"),
        ("  Nguyễn   Thị\tHoa \r\n", "Nguyễn Thị Hoa"),
        ("Nguyễn\u00a0Thị\u00a0Hoa", "Nguyễn Thị Hoa"),
        ("Nguyễn\u2003Thị\u202fHoa\u3000", "Nguyễn Thị Hoa"),
        ("Nguyễn\u200bThị Hoa", "Nguyễn Thị Hoa"),
        ("\ufeffNguyễn Thị Ho\u00ada", "Nguyễn Thị Hoa"),
        (nfd("Nguyễn Thị Hoa"), "Nguyễn Thị Hoa"),
        ("ĐINH XUÂN HOÀNG", "ĐINH XUÂN HOÀNG"),
        ("\u00d0INH Xuân \u00f0ào", "ĐINH Xuân đào"),
        ("Hoà", "Hoà"),  # tone style is kept: normalize_name is not name_key
        ("", ""),
        (" \t ", ""),
    ],
)
def test_normalize_name(value: str, expected: str) -> None:
    got = normalize_name(value)
    assert got == expected
    assert unicodedata.is_normalized("NFC", got)


# ----------------------------------------------------------------------------- tone placement

# (old style, new style): the tone moves between the two vowels of oa / oe / uy.
STYLE_PAIRS = [
    ("Hòa", "Hoà"),
    ("Hóa", "Hoá"),
    ("Hỏa", "Hoả"),
    ("Họa", "Hoạ"),
    ("Xõa", "Xoã"),
    ("Khóa", "Khoá"),
    ("Tòa", "Toà"),
    ("Thỏa", "Thoả"),
    ("Tỏa", "Toả"),
    ("Lòa", "Loà"),
    ("Đóa", "Đoá"),
    ("Xóa", "Xoá"),
    ("Ngọa", "Ngoạ"),
    ("Òa", "Oà"),
    ("Khỏe", "Khoẻ"),
    ("Hòe", "Hoè"),
    ("Xòe", "Xoè"),
    ("Nhòe", "Nhoè"),
    ("Lóe", "Loé"),
    ("Thúy", "Thuý"),
    ("Thủy", "Thuỷ"),
    ("Thùy", "Thuỳ"),
    ("Thụy", "Thuỵ"),
    ("Túy", "Tuý"),
    ("Hủy", "Huỷ"),
    ("Lũy", "Luỹ"),
    ("Lụy", "Luỵ"),
    ("Nhụy", "Nhuỵ"),
    ("Úy", "Uý"),
    ("Tụy", "Tuỵ"),
    ("Khủy", "Khuỷ"),
]

# Spelt the same in both styles.
SAME_IN_BOTH = [
    "Quỳnh", "Quý", "Quyết", "Quyền", "Quảng", "Quốc", "Quế", "Quân", "Quỳ", "Quà", "Quày",
    "Huỳnh", "Huýt", "Khuỷu", "Khuyến", "Nguyễn", "Người", "Trường", "Hưởng", "Rượu",
    "Thuở", "Giàu", "Già", "Giữ", "Giữa", "Giếng", "Giỏi", "Gì", "Gìn", "Giúp", "Giũ",
    "Giường", "Hoàng", "Toàn", "Toán", "Hoạch", "Khoảng", "Oánh", "Loan", "Xoắn", "Ngoài",
    "Xoáy", "Ngoẹo", "Huế", "Thuế", "Tuấn", "Thuận", "Muốn", "Cuối", "Tiến", "Việt",
    "Yến", "Yểu", "Chiều", "Khuya", "Mía", "Của", "Mùa", "Mưa", "Cửa", "Cứu", "Gửi",
    "Ngửi", "Hải", "Cao", "Sáu", "Máy", "Kéo", "Dịu", "Tôi", "Gọi", "Núi", "Đào", "Lý",
    "Mỹ", "Kỳ", "Hồng", "Ánh", "Thị", "Văn", "Đức", "Trần", "Lê", "Phạm", "Hồ", "Võ",
    "Vũ", "Đặng", "Bùi", "Đỗ", "Ngô", "Dương", "Lý", "Lâm", "Hà", "Tĩnh", "Phương",
    "Nhung", "Thảo", "Trâm", "Khuê", "Duệ", "Tuệ", "Hiếu", "Thuyết", "Quyên", "Uyển",
    "Oanh", "Khoát", "Hoắc", "Ngoạn", "Ỷ", "Ý", "Ở", "Ấu", "Ước", "Ươm",
]  # fmt: skip

# Words that are not Vietnamese syllables come back untouched.
FOREIGN = [
    "José", "Marìa", "Pierrè", "H'Hen", "Ksor", "Niê", "Ênuôl", "Byă", "Tëst", "Mñam", "Tuâń",
]  # fmt: skip


@pytest.mark.parametrize(("old", "new"), STYLE_PAIRS)
def test_place_tones_converts_between_styles(old: str, new: str) -> None:
    assert place_tones(old, style="new") == new
    assert place_tones(new, style="old") == old
    assert place_tones(old, style="old") == old
    assert place_tones(new, style="new") == new
    assert place_tones(old.upper(), style="new") == new.upper()
    assert place_tones(nfd(new.lower()), style="old") == old.lower()


@pytest.mark.parametrize("word", SAME_IN_BOTH)
def test_place_tones_keeps_syllables_without_a_style_difference(word: str) -> None:
    assert place_tones(word, style="old") == word
    assert place_tones(word, style="new") == word
    assert place_tones(nfd(word.upper()), style="new") == word.upper()


@pytest.mark.parametrize("word", FOREIGN)
def test_place_tones_leaves_non_vietnamese_words(word: str) -> None:
    assert place_tones(word, style="old") == nfc(word)
    assert place_tones(word, style="new") == nfc(word)


@pytest.mark.parametrize(
    ("misplaced", "fixed"),
    [
        ("Hòang", "Hoàng"),  # tone on the medial vowel before a final consonant
        ("Ngòai", "Ngoài"),
        ("Qúy", "Quý"),  # tone on the u of qu
        ("Gìa", "Già"),  # tone on the i of gi
        ("Nguỹên", "Nguyễn"),
        ("Ngừơi", "Người"),
    ],
)
def test_place_tones_fixes_misplaced_marks(misplaced: str, fixed: str) -> None:
    assert place_tones(misplaced) == fixed
    assert names_match(misplaced, fixed)


def test_place_tones_keeps_text_around_words() -> None:
    text = "  Lê Thị Thúy,\u00a0Khánh Hòa (1985) - Nguyễn-Văn Hoà's "
    assert place_tones(text, style="new") == (
        "  Lê Thị Thuý,\u00a0Khánh Hoà (1985) - Nguyễn-Văn Hoà's "
    )
    assert place_tones(text, style="old") == (
        "  Lê Thị Thúy,\u00a0Khánh Hòa (1985) - Nguyễn-Văn Hòa's "
    )


def test_place_tones_two_tone_marks_left_alone() -> None:
    doubled = nfc("Hoa\u0300\u0301")
    assert place_tones(doubled) == doubled


# ----------------------------------------------------------------------------- name_key

SAME_NAME = [
    ("Nguyễn Thị Hoà", "Nguyễn Thị Hòa"),
    ("Lê Thị Thuý", "LÊ THỊ THÚY"),
    ("Trần Văn Khoẻ", "trần văn khỏe"),
    ("Phạm Thị Thủy Tiên", "Phạm  Thị\u00a0Thuỷ Tiên "),
    ("Đỗ Quỳnh Như", nfd("ĐỖ QUỲNH NHƯ")),
    ("Huỳnh Hiếu Thuận", "huỳnh hiếu thuận"),
    ("Võ Thị Xuân Hòe", "VÕ THỊ XUÂN HOÈ"),
    ("Ngô Bảo Ngọc", "\ufeffNgô Bảo\u200b Ngọc"),
    ("Lê Thuý Hằng", nfd("Lê Thúy Hằng")),
    ("Khánh Hòa", "Khánh Hoà"),
    ("Thanh Hóa", "Thanh Hoá"),
    ("Đinh Xuân Hoàng", "\u00d0INH XUÂN HOÀNG"),
    ("Nguyễn Thị Ánh Hồng", nfd(" nguyễn thị ánh hồng ")),
    ("Đặng Văn Úy", "Đặng Văn Uý"),
    ("Lâm Thị Mộng Tuyền", "LÂM THỊ MỘNG TUYỀN"),
]

DIFFERENT_NAME = [
    ("Nguyễn Thị Hòa", "Nguyễn Thị Hóa"),  # different tone
    ("Nguyễn Văn An", "Nguyên Văn An"),  # tone vs none
    ("Đào Văn Nam", "Dao Văn Nam"),  # missing tone and Đ
    ("Đào Văn Nam", "Dào Văn Nam"),  # Đ vs D
    ("Lê Thị Thủy", "Lê Thị Thúy"),  # hỏi vs sắc
    ("Lê Thị Thủy", "Lê Thị Thũy"),  # hỏi vs ngã
    ("Lý Văn Tú", "Lí Văn Tú"),  # y vs i is a different letter
    ("Trần Văn Bảo", "Trần Văn Bão"),
    ("Trần Văn Bảo", "Trân Văn Bảo"),  # â vs ầ
    ("Trương Thị Mai", "Trường Thị Mai"),
    ("Vũ Thị Hương", "Vũ Thị Huơng"),  # ư vs u
    ("Phạm Quang Huy", "Phạm Quang Huỳ"),
    ("Nguyễn Thị Hoa", "Nguyễn Thị Hoà"),
    ("Nguyễn Thị Hoa", "Nguyễn Hoa Thị"),  # order matters
    ("Nguyễn Văn Anh", "Nguyễn Văn An"),
    ("Hoàng Văn Nam", "Hòang Văn Năm"),
]


@pytest.mark.parametrize(("a", "b"), SAME_NAME)
def test_name_key_equal(a: str, b: str) -> None:
    assert name_key(a) == name_key(b)
    assert names_match(a, b)
    assert names_match(b, a)


@pytest.mark.parametrize(("a", "b"), DIFFERENT_NAME)
def test_name_key_different(a: str, b: str) -> None:
    assert name_key(a) != name_key(b)
    assert not names_match(a, b)


def test_name_key_form() -> None:
    assert name_key("  NGUYỄN\u00a0Thị   THÚY \r\n") == "nguyễn thị thuý"
    assert name_key("Khánh Hòa") == "khánh hoà"
    assert name_key("") == ""
    assert name_key(" \u3000 ") == ""
    key = name_key(nfd("ĐINH XUÂN HOÀNG"))
    assert key == "đinh xuân hoàng"
    assert unicodedata.is_normalized("NFC", key)


VIETNAMESE_SYLLABLES = [word for pair in STYLE_PAIRS for word in pair] + SAME_IN_BOTH
SPACES = st.sampled_from([" ", "  ", "\u00a0", "\t", "\u2003", "\u3000", " \u200b "])


@st.composite
def name_variants(draw: st.DrawFn) -> tuple[str, str]:
    """A name and a variant of it differing only by case, NFC/NFD, spacing and tone style."""
    words = draw(st.lists(st.sampled_from(VIETNAMESE_SYLLABLES), min_size=1, max_size=5))
    variant_words = []
    for word in words:
        w = place_tones(word, style=draw(st.sampled_from(["old", "new"])))
        w = draw(st.sampled_from([w, w.upper(), w.lower(), w.title()]))
        variant_words.append(nfd(w) if draw(st.booleans()) else w)
    seps = [draw(SPACES) for _ in range(len(words) - 1)]
    variant = draw(SPACES) + variant_words[0]
    for sep, w in zip(seps, variant_words[1:], strict=True):
        variant += sep + w
    variant += draw(st.sampled_from(["", " ", "\r\n", "\u00a0"]))
    return " ".join(words), variant


@given(name_variants())
def test_name_key_invariant_under_case_form_spacing_and_style(case: tuple[str, str]) -> None:
    name, variant = case
    assert name_key(name) == name_key(variant)
    assert names_match(variant, name)


@given(name_variants())
def test_name_key_idempotent_on_names(case: tuple[str, str]) -> None:
    _, variant = case
    key = name_key(variant)
    assert name_key(key) == key
    assert name_key(place_tones(key, style="old")) == key


@settings(max_examples=300)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=30))
def test_name_key_idempotent_on_any_text(text: str) -> None:
    key = name_key(text)
    assert name_key(key) == key
    assert key == key.strip()
    assert "  " not in key


TONES = ["\u0300", "\u0301", "\u0303", "\u0309", "\u0323"]
TONELESS = [
    "hoa", "khoe", "thuy", "quynh", "nguyên", "ngươi", "gia", "giư", "hoang", "toan",
    "huynh", "khuyên", "ngoai", "xoay", "thuơ", "rươu", "tuân", "viêt", "mua", "cưa",
    "hai", "chiêu", "khuyu", "ngoeo", "quy", "gin", "tiên", "dương", "hông", "anh",
]  # fmt: skip


@st.composite
def toned_syllables(draw: st.DrawFn) -> tuple[str, str, str]:
    """A syllable with a tone mark attached to an arbitrary vowel letter (any placement)."""
    base = draw(st.sampled_from(TONELESS))
    tone = draw(st.sampled_from(TONES))
    decomposed = nfd(base)
    vowels = [i for i, ch in enumerate(decomposed) if ch in "aeiouy"]
    at = draw(st.sampled_from(vowels))
    # insert after the vowel and its letter-forming marks
    end = at + 1
    while end < len(decomposed) and unicodedata.combining(decomposed[end]):
        end += 1
    return base, tone, nfc(decomposed[:end] + tone + decomposed[end:])


@given(toned_syllables(), toned_syllables())
def test_name_key_ignores_placement_but_not_tone(
    a: tuple[str, str, str], b: tuple[str, str, str]
) -> None:
    base_a, tone_a, word_a = a
    base_b, tone_b, word_b = b
    same = base_a == base_b and tone_a == tone_b
    assert (name_key(word_a) == name_key(word_b)) == same
    assert name_key(word_a) != name_key(base_a)


# ----------------------------------------------------------------------------- diacritics


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Nguyễn Thị Ánh Hồng", "Nguyen Thi Anh Hong"),
        ("ĐINH XUÂN HOÀNG", "DINH XUAN HOANG"),
        ("Trương Thị Ơn", "Truong Thi On"),
        ("đặng ưng", "dang ung"),
        ("Vũ Thuý Quỳnh", "Vu Thuy Quynh"),
        ("\u00d0ào", "Dao"),
        (nfd("Lê Hữu Phước"), "Le Huu Phuoc"),
        ("Nguyen Van A", "Nguyen Van A"),
        ("", ""),
    ],
)
def test_strip_diacritics(value: str, expected: str) -> None:
    assert strip_diacritics(value) == expected


VIETNAMESE_LETTERS = (
    "aàáảãạăằắẳẵặâầấẩẫậbcdđeèéẻẽẹêềếểễệghiìíỉĩịklmnoòóỏõọôồốổỗộơờớởỡợpqrstuùúủũụưừứửữựvxyỳýỷỹỵ"
)


@given(st.text(alphabet=VIETNAMESE_LETTERS + VIETNAMESE_LETTERS.upper() + " ", max_size=40))
def test_strip_diacritics_gives_ascii(text: str) -> None:
    out = strip_diacritics(text)
    assert out.isascii()
    assert len(out) == len(text)
    assert strip_diacritics(out) == out
    assert strip_diacritics(nfd(text)) == out


def test_strip_diacritics_of_key_serves_no_diacritics_class() -> None:
    register = "Nguyễn Thị Thuý"
    record = "NGUYEN THI THUY"
    assert not names_match(register, record)
    assert strip_diacritics(name_key(register)) == strip_diacritics(name_key(record))


# ----------------------------------------------------------------------------- split_name


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Nguyễn Thị Ánh Hồng", ("Nguyễn", "Thị Ánh Hồng")),
        ("  Trần\u00a0 Văn   Bảo ", ("Trần", "Văn Bảo")),
        ("Lê Hoa", ("Lê", "Hoa")),
        ("Sơn", ("Sơn", "")),
        (nfd("Đinh Xuân Hoàng"), ("Đinh", "Xuân Hoàng")),
        ("Tôn Thất Thuyết", ("Tôn", "Thất Thuyết")),
    ],
)
def test_split_name(value: str, expected: tuple[str, str]) -> None:
    assert split_name(value) == expected


@pytest.mark.parametrize("value", ["", "   ", "\u200b"])
def test_split_name_empty(value: str) -> None:
    with pytest.raises(ValidationError, match="name is empty"):
        split_name(value)


# ----------------------------------------------------------------------------- CCCD QR

CARD = "091185900001||Nguyễn Thị Thúy|24111985|Nữ|Vĩnh Thanh Vân, Rạch Giá, Kiên Giang|01122021"


def test_parse_cccd_basic() -> None:
    card = parse_cccd(CARD)
    assert card == CccdCard(
        id_number="091185900001",
        old_id=None,
        full_name="Nguyễn Thị Thúy",
        dob=date(1985, 11, 24),
        sex="F",
        address="Vĩnh Thanh Vân, Rạch Giá, Kiên Giang",
        issue_date=date(2021, 12, 1),
        extra_fields=(),
    )
    assert names_match(card.full_name, "NGUYỄN THỊ THUÝ")


@pytest.mark.parametrize("ending", ["\r\n", "\n", "\r", "\r\n\r\n", "  \r\n"])
def test_parse_cccd_strips_scanner_line_endings(ending: str) -> None:
    assert parse_cccd(CARD + ending) == parse_cccd(CARD)


def test_parse_cccd_strips_bom() -> None:
    assert parse_cccd("\ufeff" + CARD + "\r\n") == parse_cccd(CARD)


def test_parse_cccd_old_id_and_uppercase_name() -> None:
    text = "079203900002|025900001|LÊ VĂN HOÀNG|05072003|Nam|Phường Bến Nghé, Quận 1|15042021"
    card = parse_cccd(text)
    assert card.old_id == "025900001"
    assert card.full_name == "LÊ VĂN HOÀNG"
    assert card.sex == "M"
    assert card.dob == date(2003, 7, 5)
    assert names_match(card.full_name, "Lê Văn Hoàng")


def test_parse_cccd_twelve_digit_old_id() -> None:
    text = "001090900003|001090900999|Trần Văn Bảo|01011990|Nam|Hà Nội|15042021"
    assert parse_cccd(text).old_id == "001090900999"


def test_parse_cccd_nfd_name_and_sex() -> None:
    card = parse_cccd(nfd(CARD))
    assert card.full_name == "Nguyễn Thị Thúy"
    assert unicodedata.is_normalized("NFC", card.full_name)
    assert unicodedata.is_normalized("NFC", card.address)
    assert card.sex == "F"


def test_parse_cccd_never_shifts_fields() -> None:
    # Empty old ID, empty address and empty issue date: positions stay put.
    card = parse_cccd("091185900001||Lê Hoa|24111985|Nữ||")
    assert card.old_id is None
    assert card.full_name == "Lê Hoa"
    assert card.dob == date(1985, 11, 24)
    assert card.address == ""
    assert card.issue_date is None


def test_parse_cccd_2024_card_extra_fields() -> None:
    text = CARD + "|091185900777|Nguyễn Văn Cha|Lê Thị Mẹ|"
    card = parse_cccd(text + "\r\n")
    assert card.full_name == "Nguyễn Thị Thúy"
    assert card.issue_date == date(2021, 12, 1)
    assert card.extra_fields == ("091185900777", "Nguyễn Văn Cha", "Lê Thị Mẹ", "")


def test_parse_cccd_accepts_unknown_province_code() -> None:
    card = parse_cccd("999185900001||Lê Hoa|24111985|Nữ|Paris|01122021")
    assert card.id_number == "999185900001"


def test_parse_cccd_is_frozen() -> None:
    card = parse_cccd(CARD)
    with pytest.raises(AttributeError):
        card.sex = "M"  # type: ignore[misc]


@pytest.mark.parametrize("codec", ["latin-1", "big5", "shift_jis", "gb18030"])
def test_parse_cccd_repairs_charset_mojibake(codec: str) -> None:
    text = "091203900004||HUỲNH HIẾU THUẬN|05052003|Nữ|Vĩnh Phong, Vĩnh Bảo, Hải Phòng|01122021"
    garbled = text.encode("utf-8").decode(codec)
    assert garbled != text
    card = parse_cccd(garbled + "\r\n")
    assert card == parse_cccd(text)
    assert card.full_name == "HUỲNH HIẾU THUẬN"


def test_parse_cccd_unrepairable_cjk() -> None:
    with pytest.raises(ValidationError, match="wrong charset") as err:
        parse_cccd("091203900004||HU廙軟|05052003|N廙|V藺nh|01122021")
    assert err.value.hint is not None


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("\r\n", "empty"),
        ("\ufeff", "empty"),
        ("HC1:6BFOXN%TS3DH0YOJ58S S-W5HDC *M0II5XHC9B5G2+$N", "vaccination credential"),
        ("hc1:NCFOXN", "vaccination credential"),
        ("https://example.org/verify?id=091185900001|x|y|z|a|b|c", "URL"),
        ("http://qr.example", "URL"),
        ("hello world", "no '|'"),
        ("091185900001", "no '|'"),
        # the 6-field layout some public parsers document (no old-ID field)
        ("091185900001|Lê Hoa|24111985|Nữ|Rạch Giá|01122021", "6 '|'-separated fields"),
        ("a|b", "2 '|'-separated fields"),
        ("ABC||Lê Hoa|24111985|Nữ|Rạch Giá|01122021", "field 1 (ID number)"),
        ("91185900001||Lê Hoa|24111985|Nữ|Rạch Giá|01122021", "got 11"),
        ("09118590000X||Lê Hoa|24111985|Nữ|Rạch Giá|01122021", "position 12"),
        ("091185900001|Lê Hoa|24111985|Nữ|Rạch Giá|01122021|x", "old CMND"),
        ("091185900001||12345|24111985|Nữ|Rạch Giá|01122021", "no letters"),
        ("091185900001||   |24111985|Nữ|Rạch Giá|01122021", "no letters"),
        ("091185900001||Lê Hoa|1985-11-24|Nữ|Rạch Giá|01122021", "ddmmyyyy"),
        ("091185900001||Lê Hoa||Nữ|Rạch Giá|01122021", "date of birth"),
        ("091185900001||Lê Hoa|31021985|Nữ|Rạch Giá|01122021", "February 1985 has 28 days"),
        ("091185900001||Lê Hoa|24111985|X|Rạch Giá|01122021", "field 5 (sex)"),
        ("091185900001||Lê Hoa|24111985||Rạch Giá|01122021", "field 5 (sex)"),
        ("091185900001||Lê Hoa|24111985|Nữ|Rạch Giá|1/12/2021", "issue date"),
        ("091185900001||Lê Hoa|24111985|Nữ|Rạch Giá|32122021", "issue date"),
        ("091185900001||Lê Hoa|24111985|Nữ|Rạch\x00Giá|01122021", "control characters"),
        (CARD + "\r\n" + CARD, "control characters"),
        ("|" * 5000, "characters long"),
    ],
)
def test_parse_cccd_rejects(text: str, reason: str) -> None:
    with pytest.raises(ValidationError) as err:
        parse_cccd(text)
    message = str(err.value)
    assert message.startswith("not a CCCD card QR: ")
    assert reason in message


@given(st.text(max_size=200))
def test_parse_cccd_never_crashes(text: str) -> None:
    try:
        card = parse_cccd(text)
    except ValidationError as exc:
        assert str(exc).startswith("not a CCCD card QR: ")
    else:
        assert len(card.id_number) == 12


@given(
    st.lists(st.text(alphabet=st.characters(exclude_characters="|\r\n"), max_size=8), max_size=12)
)
def test_parse_cccd_random_fields_never_crash(fields: list[str]) -> None:
    try:
        parse_cccd("|".join(fields))
    except ValidationError:
        pass


@given(
    st.sampled_from(sorted(PROVINCES)),
    st.dates(min_value=date(1900, 1, 1), max_value=date(2021, 12, 31)),
    st.sampled_from(["Nam", "Nữ"]),
    st.lists(st.sampled_from(VIETNAMESE_SYLLABLES), min_size=2, max_size=4),
    st.booleans(),
)
def test_parse_cccd_generated_cards(
    code: str, dob: date, sex: str, words: list[str], with_old_id: bool
) -> None:
    digit4 = 2 * ((dob.year - 1900) // 100) + (1 if sex == "Nữ" else 0)
    number = f"{code}{digit4}{dob.year % 100:02d}900042"
    old = "025900042" if with_old_id else ""
    name = " ".join(words).upper()
    text = f"{number}|{old}|{name}|{dob:%d%m%Y}|{sex}|Kiên Giang|01122021\r\n"
    card = parse_cccd(text)
    assert card.id_number == number
    assert card.old_id == (old or None)
    assert card.full_name == name
    assert card.dob == dob
    assert card.sex == parse_sex(sex)
    assert check_id_against(parse_id_number(card.id_number), dob=card.dob, sex=sex) == []


def _parse_date_by_patterns(text: str, compact: bool) -> date | str:
    """parse_date as the regular expressions alone read it (before its fast path): the
    date, or the error message."""
    import vaxqr.citizen as c

    t = text.strip()
    for pattern, order in ((c._ISO_DATE, (1, 2, 3)), (c._DMY_DATE, (4, 3, 1))) + (
            ((c._COMPACT_DATE, (3, 2, 1)),) if compact else ()):
        m = pattern.fullmatch(t)
        if m:
            try:
                return c._make_date(int(m[order[0]]), int(m[order[1]]), int(m[order[2]]), t)
            except ValidationError as exc:
                return str(exc)
    try:
        parse_date(text, compact=compact)
    except ValidationError as exc:
        return str(exc)
    raise AssertionError("parse_date accepted what no pattern matches")


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet="0123456789-/.٣²x ", min_size=8, max_size=12), st.booleans())
@example("2021-11-23", False)
@example("23/11/2021", False)
@example("23.11-2021", False)
@example("2021-1١-23", False)
@example(" 31/02/2021 ", True)
def test_parse_date_fast_path_reads_as_the_patterns_do(text: str, compact: bool) -> None:
    try:
        got: date | str = parse_date(text, compact=compact)
    except ValidationError as exc:
        got = str(exc)
    assert got == _parse_date_by_patterns(text, compact)


@pytest.mark.parametrize(
    ("text", "order"),  # 1: DAY_FIRST, 2: MONTH_FIRST
    [
        ("3/15/1975", 2),  # Excel set to English (United States)
        ("03/15/1975 00:00:00", 2),
        ("12/31/2021", 2),
        ("15/3/1975", 1),
        ("15.03.1975", 1),
        ("3/5/1975", 0),  # either order: what the file's other dates tell apart
        ("1975-03-15", 0),
        ("1975-15-03", 0),
        ("15/15/1975", 0),
        ("", 0),
        ("32/3/1975", 0),
    ],
)
def test_date_order(text: str, order: int) -> None:
    import vaxqr.citizen as citizen

    assert citizen.date_order(text) == order
