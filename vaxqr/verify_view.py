"""Rendering of verification reports for the terminal and of the `verify -` stream
(imported only by the CLI, which prints it).

Plain string formatting with a few ANSI styles, not rich: a checkpoint stream renders one
report per scanned line, and rich's markup parser cost ~300 µs a report, several times the
verification itself (benchmarks/README.md). Untrusted text goes through ``printable``.
The fixed words come in each language of vaxqr/verdict_text.py (``lang``), made once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from typing import Any, Final, Protocol

from .verdict_text import DATE_ORDER, LABELS, LANGUAGES, REASONS, WORDS
from .verify import (
    CARD_IN_CREDENTIAL_PICTURE,
    NOT_JUDGED,
    PICTURE,
    SET_ASIDE,
    TRUST,
    Report,
    report_json_text,
)

# The plain-words reason of each failed step, in English (every language's are in
# vaxqr/verdict_text.py)
PLAIN = REASONS["en"]

# SGR styles: the verdict is also in words, so nothing is lost without colour.
_STYLES = {
    "valid": "\x1b[1;37;42m", "invalid": "\x1b[1;37;41m", "cannot": "\x1b[1;30;43m",
    "bold": "\x1b[1m",
    "dim": "\x1b[2m", "warn": "\x1b[33m",
}
_RESET = "\x1b[0m"

_communes: dict[int, tuple[Any, str | None]] = {}


def _commune(report: Report) -> str | None:
    """The signer certificate's common name (read once per certificate object)."""
    if report.signer is None:
        return None
    cert = report.signer.certificate
    hit = _communes.get(id(cert))
    if hit is not None and hit[0] is cert:
        return hit[1]
    try:
        from cryptography.x509.oid import NameOID

        attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        name = str(attrs[0].value) if attrs else None
    except Exception:
        name = None
    if len(_communes) >= 1024:
        _communes.clear()
    _communes[id(cert)] = (cert, name)
    return name


_Parts = tuple[str, str, str, str, str, str, str, str]

#: The DCC value set's code of a test result "detected" (SNOMED CT 260373001): positive.
POSITIVE_TEST: Final = "260373001"


def _parts(words: dict[str, str], color: bool) -> _Parts:
    """The fixed texts around the untrusted ones: the verdict heads up to the label (valid,
    not valid), what ends the label, the "Reason:", "Details:" and "warning:" heads, the
    head of a credential the trust material cannot judge (failed at ``trust``), and that
    of a picture in which no QR code could be read (failed at ``picture``)."""

    def style(name: str, text: str) -> str:
        return f"{_STYLES[name]}{text}{_RESET}" if color else text

    dim = _STYLES["dim"] if color else ""
    valid, not_valid = " ✔ " + words["valid"] + " ", " ✘ " + words["not_valid"] + " "
    reason, details = words["reason"], words["details"]
    pad = max(len(reason), len(details)) + 1  # the two lines' texts start in one column
    return (f"{style('valid', valid)} {dim}", f"{style('invalid', not_valid)} {dim}",
            _RESET if color else "",
            f"\n  {style('bold', reason)}{' ' * (pad - len(reason))}",
            f"\n  {style('dim', details)}{' ' * (pad - len(details))}",
            f"  {style('warn', words['warning'])} ",
            f"{style('cannot', ' ? ' + words['cannot_check'] + ' ')} {dim}",
            f"{style('cannot', ' ? ' + words['cannot_read'] + ' ')} {dim}")


class _Words:
    """One language's fixed texts of a verdict (vaxqr/verdict_text.py), made once."""

    def __init__(self, lang: str) -> None:
        words, labels = WORDS[lang], LABELS[lang]
        self.parts = {False: _parts(words, False), True: _parts(words, True)}
        width = max(len(label) for label in labels.values()) + 1
        # "  {label + ':':<width} " for each row of the holder's facts
        self.rows = {key: f"  {label + ':':<{width}} " for key, label in labels.items()}
        self.vaccine_row = "vaccine" in labels
        self.reasons = REASONS[lang]
        self.other = words["other"]
        self.set_aside = words["trust_set_aside"]
        self.matches, self.does_not_match = words["matches"], words["does_not_match"]
        self.card_says = words["card_says"]
        self.card_in_picture = words["card_in_picture"]
        self.not_a_date = words["not_a_date"]
        self.kinds = {kind: words[kind] for kind in ("vaccination", "test", "recovery")}
        # a test's result (SNOMED CT codes of the DCC value set), what else it said, and the
        # words around a test's sampling date and a recovery's validity
        self.results = {POSITIVE_TEST: words["detected"], "260415000": words["not_detected"]}
        self.result, self.sampled = words["result"], words["sampled"]
        self.valid_from, self.valid_to = words["valid_from"], words["valid_to"]
        self.positive_test = words["positive_test"]
        self.dmy = DATE_ORDER[lang] == "dd/mm/yyyy"


_WORDS = {lang: _Words(lang) for lang in LANGUAGES}


def _day(value: object, w: _Words) -> str:
    """The date part of a DCC date or date-time, as the language shows dates."""
    text = str(value)[:10]
    return _dmy(text) if w.dmy else text


def _kind_details(s: dict[str, Any], kind: str, w: _Words) -> str:
    """The "Type" row of a test or recovery certificate: the kind and what a checkpoint
    must see of it (a test's result and sampling date, a recovery's validity), which its
    VALID (the credential is genuine and unexpired) does not say."""
    text = w.kinds.get(kind, kind)
    if kind == "test":
        result = s.get("test_result")
        if result is not None:
            text += f", {w.result} {w.results.get(str(result), str(result))}"
        if s.get("sampled"):
            text += f", {w.sampled} {_day(s['sampled'], w)}"
    elif kind == "recovery" and s.get("valid_from") and s.get("valid_until"):
        text += (f", {w.valid_from} {_day(s['valid_from'], w)} {w.valid_to} "
                 f"{_day(s['valid_until'], w)}")
    return text
_EPOCH_DAY = date(1970, 1, 1).toordinal()
_MAX_EXP = 253402300800  # 10000-01-01T00:00:00Z: datetime's range ends before it
_DAYS: dict[int, str] = {}


def _until(exp: Any, not_a_date: str = WORDS["en"]["not_a_date"]) -> str:
    """``exp`` (seconds since the epoch) as its UTC date, as ``datetime.fromtimestamp(exp,
    UTC).date().isoformat()`` says it (an integer in datetime's range by day arithmetic,
    the few dates of a stream remembered), or ``not_a_date`` when it is no calendar date."""
    if type(exp) is int and 0 <= exp < _MAX_EXP:
        day = exp // 86400
        text = _DAYS.get(day)
        if text is None:
            text = date.fromordinal(_EPOCH_DAY + day).isoformat()
            if len(_DAYS) >= 4096:
                _DAYS.clear()
            _DAYS[day] = text
        return text
    try:
        return datetime.fromtimestamp(exp, UTC).date().isoformat()
    except (ValueError, OverflowError, OSError):
        return f"{exp} ({not_a_date})"


def _dmy(text: str) -> str:
    """An ISO 8601 date as day/month/year: ``YYYY-MM-DD`` as ``DD/MM/YYYY``, ``YYYY-MM`` as
    ``MM/YYYY``; anything else (a year alone, a time, garbage) as it is."""
    n = len(text)
    if (n == 10 or n == 7) and text[4] == "-" and text.isascii():
        if n == 10 and text[7] == "-" and (text[:4] + text[5:7] + text[8:]).isdigit():
            return f"{text[8:]}/{text[5:7]}/{text[:4]}"
        if n == 7 and (text[:4] + text[5:]).isdigit():
            return f"{text[5:]}/{text[:4]}"
    return text


def render(report: Report, printable: Callable[[object], str], *, color: bool,
           lang: str = "en") -> str:
    """The report as text lines: a VALID / NOT VALID verdict (words, not only colour; CANNOT
    CHECK when the trust material cannot judge the credential, CANNOT READ when no QR code
    could be read from the picture), the holder, the reason, in
    ``lang`` (one of :data:`vaxqr.verdict_text.LANGUAGES`; the "Details" line and warnings
    are the library's own English). ``printable`` escapes
    untrusted text (and leaves text for which ``str.isprintable`` holds as it is);
    ``color`` adds ANSI styles."""
    w = _WORDS[lang]
    return _render(report, printable, w, w.parts[color])


def _render(report: Report, printable: Callable[[object], str], w: _Words,
            parts: _Parts) -> str:
    """:func:`render` with the language's words and the styled parts looked up (once per
    block of a stream, by :func:`render_lines`)."""
    (head_valid, head_invalid, label_end, reason_head, details_head, warn_head, head_cannot,
     head_unread) = parts
    rows = w.rows
    dmy = w.dmy
    s = report.summary() or {}
    valid = report.valid
    # the untrusted texts in output order, and the row heads of those after the verdict's
    texts = [report.label] if valid else [report.label, str(report.failed),
                                          str(report.reason)]
    keys: list[str] = []
    kind = s.get("type")
    if kind == "test" and str(s.get("test_result")) == POSITIVE_TEST:
        # first under the verdict: VALID says the test certificate is genuine, and one of
        # a positive test is no pass at a checkpoint (the result is on the Type row too)
        keys.append(warn_head)
        texts.append(w.positive_test)
    value = s.get("full_name")
    if value:
        keys.append(rows["holder"])
        texts.append(str(value))
    value = s.get("dob")
    if value:
        keys.append(rows["born"])
        texts.append(_dmy(str(value)) if dmy else str(value))
    if kind == "vaccination":
        keys.append(rows["dose"])
        if w.vaccine_row:
            texts.append(f"{s.get('dose')}/{s.get('doses')}")
            value = s.get("vaccine")
            if value:
                keys.append(rows["vaccine"])
                texts.append(str(value))
        else:
            texts.append(f"{s.get('dose')}/{s.get('doses')}  {s.get('vaccine')}")
        keys.append(rows["vaccinated"])
        texts.append(_dmy(str(s.get("date"))) if dmy else str(s.get("date")))
    elif kind:
        keys.append(rows["type"])
        texts.append(_kind_details(s, str(kind), w))
    value = _commune(report) or s.get("issuer")
    if value:
        keys.append(rows["issuer"])
        texts.append(str(value))
    claims = report.claims
    exp = claims.get("exp") if claims else None
    if exp is not None and report.signer is not None:
        keys.append(rows["until"])
        texts.append(_dmy(_until(exp, w.not_a_date)) if dmy else _until(exp, w.not_a_date))
    value = s.get("uvci")  # only a signed credential has a summary
    if value:
        keys.append(rows["credential"])
        texts.append(str(value))
    holder = report.holder
    if holder is not None:
        keys.append(rows["id_card"])
        match = w.matches if holder.matched else w.does_not_match
        if holder.mismatched:  # what the card says of each fact that differs (its name
            # is anyone's text, escaped below with the rest; its ID number is never shown)
            said = [holder.card_name] if "full_name" in holder.mismatched else []
            if "dob" in holder.mismatched:
                said.append(_dmy(holder.card_dob) if dmy else holder.card_dob)
            match = f"{match} — {w.card_says} {', '.join(said)}"
        texts.append(f"{match} — {w.card_in_picture}"
                     if holder.card_source == CARD_IN_CREDENTIAL_PICTURE else match)
    texts.extend(report.warnings)
    if not "".join(texts).isprintable():  # all printable: each one is, and stays as it is
        texts = [printable(t) for t in texts]
    if valid:
        out = [head_valid, texts[0], label_end]
        i = 1
    else:
        failed = report.failed or ""
        head = head_cannot if failed == TRUST else head_unread if failed == PICTURE else \
            head_invalid
        reason = w.set_aside if failed == TRUST and SET_ASIDE in texts[2] else \
            w.reasons.get(failed, w.other)
        out = [head, texts[0], label_end,
               reason_head, reason, details_head, texts[1], ": ", texts[2]]
        i = 3
    for key in keys:
        out += ("\n", key, texts[i])
        i += 1
    for j in range(i, len(texts)):
        out += ("\n", warn_head, texts[j])
    out.append("\n")
    return "".join(out)


class _Verifies(Protocol):
    """What :func:`render_lines` needs of a :class:`vaxqr.verify.Verifier`."""

    def verify_text(self, text: str, *, label: str = "", holder: Any = None,
                    picture: bool = False) -> Report: ...
    def picture_failure(self, label: str, message: str, *, step: str = "picture",
                        holder: bool = False) -> Report: ...


def render_lines(out: list[str], verifier: _Verifies, lines: Sequence[str | None], done: int,
                 *, holder: Any, too_long: str, as_json: bool,
                 printable: Callable[[object], str], color: bool, lang: str = "en",
                 json_tail: str = "") -> tuple[int, int]:
    """The reports of a block of stream lines, rendered onto ``out`` in order: line ``i``
    of ``lines`` is ``stdin:{done + i + 1}``, verified unless blank; None stands for a line
    over the length cap (``too_long`` says so). Each report is the JSON line of
    :func:`vaxqr.verify.report_json_text` (with ``json_tail``, more members) plus a newline,
    or :func:`render` (``printable``, ``color``, ``lang``). A report is on ``out`` as soon
    as it is made, so what came before an exception is kept. Returns how many reports are
    not valid, and how many of those are no verdict on a credential (failed at a step of
    :data:`vaxqr.verify.NOT_JUDGED`: CANNOT CHECK, CANNOT READ)."""
    invalid = unchecked = 0
    n = done
    w = _WORDS[lang]
    parts = w.parts[color]
    for line in lines:
        n += 1
        if line is None:
            report = verifier.picture_failure(f"stdin:{n}", too_long, step="prefix",
                                              holder=holder is not None)
        elif line.strip():
            report = verifier.verify_text(line, label=f"stdin:{n}", holder=holder)
        else:
            continue
        if as_json:
            out.append(report_json_text(report, json_tail))
            out.append("\n")
        else:
            out.append(_render(report, printable, w, parts))
        if not report.valid:
            invalid += 1
            if report.failed in NOT_JUDGED:
                unchecked += 1
    return invalid, unchecked
