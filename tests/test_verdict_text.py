"""The verdict's words in each language (vaxqr/verdict_text.py): none missing, none broken,
and how `vaxqr verify` picks the language."""

from __future__ import annotations

import unicodedata

import pytest

from vaxqr import verdict_text, verify_view
from vaxqr.cli_verify import Lang, verdict_language
from vaxqr.verdict_text import DATE_ORDER, LABELS, LANGUAGES, REASONS, WORDS
from vaxqr.verify import INPUT, STEPS, TRUST

_VIETNAMESE = set("ăâđêôơưàảãáạằẳẵắặầẩẫấậèẻẽéẹềểễếệìỉĩíịòỏõóọồổỗốộờởỡớợùủũúụừửữứựỳỷỹýỵ")


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_step_has_a_reason(lang: str) -> None:
    """Every step that can fail (SPEC §5's names, "input" and "trust") has a plain-words reason in
    every language, and no language has a reason for a step that does not exist."""
    assert set(REASONS[lang]) == {*STEPS, INPUT, TRUST}
    assert all(REASONS[lang][step].strip() for step in (*STEPS, INPUT, TRUST))


def test_every_language_has_every_word_and_label() -> None:
    for lang in LANGUAGES:
        assert set(WORDS[lang]) == set(WORDS["en"]), lang
        # a language may show the vaccine on a row of its own (vaxqr/verdict_text.py)
        assert set(LABELS[lang]) - {"vaccine"} == set(LABELS["en"]), lang
        assert DATE_ORDER[lang] in ("yyyy-mm-dd", "dd/mm/yyyy")
    assert set(LANGUAGES) == set(REASONS) == set(WORDS) == set(LABELS) == set(DATE_ORDER)
    assert {lang.value for lang in Lang} == set(LANGUAGES)  # what --lang accepts


def _texts() -> list[tuple[str, str]]:
    return [(lang, text) for table in (REASONS, WORDS, LABELS) for lang in LANGUAGES
            for text in table[lang].values()]


def test_texts_are_nfc_printable_and_single_line() -> None:
    for lang, text in _texts():
        assert unicodedata.is_normalized("NFC", text), (lang, text)
        assert text.isprintable() and text == text.strip(), (lang, text)


def test_vietnamese_is_written_with_its_diacritics() -> None:
    """Each Vietnamese sentence and label carries its marks (a text typed without them,
    "khong hop le", would still read as Vietnamese to a program, not to a person)."""
    for table in (REASONS, WORDS, LABELS):
        for key, text in table["vi"].items():
            if text in ("CCCD",):
                continue
            assert _VIETNAMESE & set(text.lower()), (key, text)
            assert text != table["en"].get(key), (key, text)


def test_english_reasons_are_the_renderers() -> None:
    assert verify_view.PLAIN is REASONS["en"]


def test_catalogue_is_data_only() -> None:
    """Nothing in the catalogue module but its tables (and their annotations)."""
    names = {n for n in vars(verdict_text) if not n.startswith("_")}
    assert names == {"annotations", "Final", "LANGUAGES", "REASONS", "WORDS", "LABELS",
                     "DATE_ORDER"}


@pytest.mark.parametrize(("text", "shown"), [
    ("1990-01-02", "02/01/1990"), ("2021-10", "10/2021"), ("1990", "1990"), ("", ""),
    ("2021-10-01T08:00:00Z", "2021-10-01T08:00:00Z"), ("1990-1-02", "1990-1-02"),
    ("١٩٩٠-٠١-٠٢", "١٩٩٠-٠١-٠٢"), ("abcd-ef-gh", "abcd-ef-gh"), ("1990/01/02", "1990/01/02"),
])
def test_day_month_year(text: str, shown: str) -> None:
    assert verify_view._dmy(text) == shown


@pytest.mark.parametrize(("environ", "lang"), [
    ({}, "en"),
    ({"LANG": "vi_VN.UTF-8"}, "vi"),
    ({"LANG": "VI_VN"}, "vi"),
    ({"LANG": "en_US.UTF-8"}, "en"),
    ({"LANG": "C.UTF-8"}, "en"),
    ({"LC_MESSAGES": "vi_VN", "LANG": "C"}, "vi"),
    ({"LC_ALL": "en_US.UTF-8", "LC_MESSAGES": "vi_VN", "LANG": "vi_VN"}, "en"),
    ({"LC_ALL": "", "LANG": "vi_VN.UTF-8"}, "vi"),  # empty is unset, as in POSIX
    ({"LANGUAGE": "vi", "LANG": "C.UTF-8"}, "en"),  # GNU's LANGUAGE is not read
])
def test_language_from_the_locale(environ: dict[str, str], lang: str) -> None:
    assert verdict_language(None, environ) == lang


@pytest.mark.parametrize(("value", "lang"), [
    ("vi", "vi"), ("EN", "en"), ("vi_VN.UTF-8", "vi"), ("en_US", "en"), ("vi@latin", "vi"),
])
def test_vaxqr_lang_takes_a_language_or_a_locale_name(value: str, lang: str) -> None:
    """VAXQR_LANG=vi_VN.UTF-8 (a machine's locale copied into it) chooses Vietnamese; it
    was a usage error on every verify."""
    assert verdict_language(None, {"VAXQR_LANG": value, "LANG": "C"}) == lang


def test_a_given_language_wins_over_the_locale() -> None:
    assert verdict_language(Lang.en, {"LC_ALL": "vi_VN.UTF-8"}) == "en"
    assert verdict_language(Lang.vi, {"LANG": "en_US.UTF-8"}) == "vi"
