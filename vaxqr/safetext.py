"""Untrusted text made safe for a terminal, as plain text or as JSON.

Names, issuers and certificate subjects come from credentials and files anyone can make.
Printed raw, a control character (C0, C1: ``ESC [``, ``CSI``, ``OSC``), a bidi override or a
line separator could rewrite what an officer reads on the screen. Both functions leave
ordinary text (Vietnamese included) untouched and are one C-level check in that case.
"""

from __future__ import annotations

import unicodedata


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


def spreadsheet_formula(text: str) -> bool:
    """Whether a spreadsheet program would run a CSV cell holding ``text`` as a formula:
    it starts with ``= + - @`` (or a tab or carriage return). A run of dashes alone, the
    usual placeholder for "none", is shown as text."""
    return bool(text) and text[0] in "=+-@\t\r" and text.strip("-") != ""


def formula_reason(what: str, value: str) -> str:
    """Why a lot or site that :func:`spreadsheet_formula` flags is refused."""
    return (f"the {what} {value[:40]!r} starts with {value[0]!r}: a spreadsheet would run "
            f"it as a formula; correct the {what}")
