"""Untrusted text made safe for a terminal, as plain text or as JSON.

Names, issuers and certificate subjects come from credentials and files anyone can make.
Printed raw, a control character (C0, C1: ``ESC [``, ``CSI``, ``OSC``), a bidi override or a
line separator could rewrite what an officer reads on the screen. Both functions leave
ordinary text (Vietnamese included) untouched and are one C-level check in that case.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final


def printable(text: object) -> str:
    """``text`` with its control and format (bidi) characters and its line and paragraph
    separators (U+2028/U+2029: a line break to many terminals) shown as escapes, never
    obeyed."""
    s = str(text)
    if s.isprintable():  # the common case: no Cc/Cf/Zl/Zp character can be in it
        return s
    return "".join(
        c.encode("unicode_escape").decode("ascii")
        if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") else c
        for c in s
    )


def _json_escape(c: str) -> str:
    n = ord(c)
    if n < 0x10000:
        return f"\\u{n:04x}"
    n -= 0x10000  # a UTF-16 surrogate pair, as JSON writes characters beyond the BMP
    return f"\\u{0xD800 + (n >> 10):04x}\\u{0xDC00 + (n & 0x3FF):04x}"


def json_escapes(error: UnicodeError) -> tuple[str, int]:
    """A codec error handler (``codecs.register_error``): each character the stream's
    encoding cannot hold (a Vietnamese name on an ASCII or Latin-1 terminal) written as its
    JSON ``\\u`` escape, ``Nguy\\u1ec5n``. Readable, and in a ``--json`` line (where such
    characters stand only inside strings) the very value, which a JSON parser reads back:
    ``backslashreplace``'s ``\\xc1`` and ``\\U0001f600`` are not JSON."""
    if not isinstance(error, UnicodeEncodeError):
        raise error
    return "".join(map(_json_escape, error.object[error.start:error.end])), error.end


#: vaxqr's own punctuation in messages for people, as ASCII (:func:`ascii_words`)
_ASCII_WORDS: Final = {"→": "->", "←": "<-", "…": "...", "—": "--", "–": "-", "·": "-",
                       "✔": "+", "✘": "x", "‘": "'", "’": "'", "“": '"', "”": '"', "×": "x",
                       "≥": ">=", "≤": "<=", "≠": "!=", "•": "*"}


def ascii_words(error: UnicodeError) -> tuple[str, int]:
    """:func:`json_escapes` for messages to people (stderr): the typographic marks vaxqr's
    messages use (→ … — · ✔) as their ASCII forms first (``->``, ``...``)."""
    if not isinstance(error, UnicodeEncodeError):
        raise error
    text = error.object[error.start:error.end]
    return "".join(_ASCII_WORDS.get(c) or _json_escape(c) for c in text), error.end


def printable_json(text: str) -> str:
    """One line of JSON (``ensure_ascii=False``) with every character a terminal would not
    print as itself written as a JSON ``\\u`` escape: C1 controls, DEL, bidi and other
    format characters, U+2028/U+2029 (line ends to line-splitting readers), unassigned and
    private-use code points. A JSON parser reads the same value; the JSON encoder already
    escapes C0 controls, so the line has no raw newline."""
    if text.isascii():
        return text.replace("\x7f", "\\u007f") if "\x7f" in text else text
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _json_escape(c) for c in text)


#: What makes a spreadsheet cell a formula (OWASP "CSV Injection"): ``= + - @`` first, or a
#: tab or carriage return before them.
FORMULA_START = "=+-@\t\r"
#: A part of a cell that a spreadsheet splitting lines on ``;`` (Excel where the list
#: separator is ``;``, LibreOffice when told so) or on tabs makes a cell of its own, or that
#: starts a line of its own after a line break inside a quoted cell (a reader splitting on
#: ``;`` does not see the quotes of a comma-separated file), and that starts like a formula.
_PART_FORMULA = re.compile(r'([;\t\r\n][ "]*)(?=[=+\-@\t\r])')  # '"': see spreadsheet_cell


def _dashes(text: str) -> bool:
    """A run of dashes alone: "none", shown as text."""
    return text.strip("-") == ""


def spreadsheet_formula(text: str) -> bool:
    """Whether a spreadsheet program would run a CSV cell holding ``text`` as a formula:
    it starts with ``= + - @`` (or a tab or carriage return), or has a part after a ``;``,
    a tab or a line break that does (a spreadsheet reading ``;`` as the separator, as Excel
    does where the list separator is ``;``, makes that part a cell). A run of dashes alone,
    the usual placeholder for "none", is shown as text."""
    if not text:
        return False
    if text[0] in FORMULA_START and not _dashes(text):
        return True
    return (";" in text or not text.isprintable()) and _PART_FORMULA.search(text) is not None


_CONTROL_PICTURES: Final = {
    **{c: 0x2400 + c for c in range(0x20) if c not in (0x09, 0x0A, 0x0D)},
    0x7F: 0x2421, **dict.fromkeys(range(0x80, 0xA0), 0xFFFD)}
"""Control characters (but tab, LF, CR, which a CSV cell may hold) → visible pictures."""


def spreadsheet_cell(text: str) -> str:
    """``text`` as a CSV cell for people, who open it in Excel or LibreOffice: a leading
    apostrophe (OWASP's remedy) when it starts (after any spaces) as a spreadsheet formula
    (:data:`FORMULA_START`), and one before each such part after a ``;``, a tab or a line
    break; a control character other than a tab or a line break (an escape sequence that
    ``cat`` or ``less -R`` would act on in a terminal) as its visible picture (U+2400 +
    code: ␛ for ESC; ␡ for DEL; C1 controls as U+FFFD); other text unchanged. Only for files
    vaxqr never reads back (mismatches.csv, rejects.csv, the manifest): the apostrophe and the
    pictures are part of the value."""
    printable = text.isprintable()  # tabs and line breaks are not
    if not printable:
        text = text.translate(_CONTROL_PICTURES)
    lead = text.lstrip(" ")[:1]
    formula = bool(lead) and lead in FORMULA_START
    split = ";" in text or not printable
    if not (formula or split) or _dashes(text):
        return text
    # after a separator, a quote (doubled by the CSV writer) may open a quoted part in a
    # reader splitting on ';': what follows it counts as the part's start
    out = _PART_FORMULA.sub(r"\1'", text) if split else text
    return "'" + out if formula else out


def row_label(row: int, note: str = "") -> str:
    """A CSV data row as a clerk finds it: ``row 8 (spreadsheet row 9)``, with ``note``
    after a ``;`` inside the brackets. vaxqr numbers a CSV's data rows from 1 (the manifest,
    the image names and the ledgers keep those numbers); a spreadsheet shows the header as
    its row 1, so data row 8 is the spreadsheet's row 9."""
    return f"row {row} (spreadsheet row {row + 1}{'; ' + note if note else ''})"


def formula_reason(what: str, value: str) -> str:
    """Why a lot or site that :func:`spreadsheet_formula` flags is refused."""
    lead = value.lstrip(" ")[:1]
    where = f"starts with {lead!r}" if lead and lead in FORMULA_START else \
        "has a part after ';' (or a tab) that starts with = + - @"
    return (f"the {what} {value[:40]!r} {where}: a spreadsheet would run it as a formula; "
            f"correct the {what}")
