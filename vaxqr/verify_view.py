"""Rendering of verification reports for the terminal and of the `verify -` stream
(imported only by the CLI, which prints it).

Plain string formatting with a few ANSI styles, not rich: a checkpoint stream renders one
report per scanned line, and rich's markup parser cost ~300 µs a report, several times the
verification itself (benchmarks/README.md). Untrusted text goes through ``printable``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from typing import Any, Protocol

from .verify import Report, report_json_text

PLAIN = {
    "input": "nothing was read from this input",
    "picture": "the picture could not be read as a QR code",
    "prefix": "this QR code is not an EU DCC vaccination credential",
    "base45": "the credential's data is damaged or incomplete",
    "zlib": "the credential's data is damaged or incomplete",
    "cose": "the credential's data is damaged or not a credential",
    "cbor": "the credential's data is damaged or not a credential",
    "signature": "the signature does not check out: altered, forged, or an unknown issuer",
    "key_usage": "the issuer is not allowed to sign this kind of certificate",
    "expiry": "the credential is not valid at this time",
    "schema": "the credential's content is malformed",
    "revocation": "the credential or its issuing commune has been revoked",
    "holder": "the credential does not belong to the person on this ID card",
}

# SGR styles: the verdict is also in words, so nothing is lost without colour.
_STYLES = {
    "valid": "\x1b[1;37;42m", "invalid": "\x1b[1;37;41m", "bold": "\x1b[1m",
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


def _parts(color: bool) -> tuple[str, str, str, str, str, str]:
    """The fixed texts around the untrusted ones: the two verdict heads up to the label, what
    ends the label, and the "Reason:", "Details:" and "warning:" heads."""

    def style(name: str, text: str) -> str:
        return f"{_STYLES[name]}{text}{_RESET}" if color else text

    dim = _STYLES["dim"] if color else ""
    return (f"{style('valid', ' ✔ VALID ')} {dim}", f"{style('invalid', ' ✘ NOT VALID ')} {dim}",
            _RESET if color else "", f"\n  {style('bold', 'Reason:')}  ",
            f"\n  {style('dim', 'Details:')} ", f"  {style('warn', 'warning:')} ")


_PARTS = {False: _parts(False), True: _parts(True)}
# "  {key + ':':<12} " for each row of the holder's facts
_ROW = {key: f"  {key + ':':<12} " for key in (
    "Holder", "Born", "Dose", "Vaccinated", "Type", "Issued by", "Valid until", "ID card")}
_EPOCH_DAY = date(1970, 1, 1).toordinal()
_MAX_EXP = 253402300800  # 10000-01-01T00:00:00Z: datetime's range ends before it
_DAYS: dict[int, str] = {}


def _until(exp: Any) -> str:
    """``exp`` (seconds since the epoch) as its UTC date, as ``datetime.fromtimestamp(exp,
    UTC).date().isoformat()`` says it (an integer in datetime's range by day arithmetic,
    the few dates of a stream remembered), or a note when it is no calendar date."""
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
        return f"{exp} (not a calendar date)"


def render(report: Report, printable: Callable[[object], str], *, color: bool) -> str:
    """The report as text lines: a VALID / NOT VALID verdict (words, not only colour), the
    holder, the reason. ``printable`` escapes untrusted text (and leaves text for which
    ``str.isprintable`` holds as it is); ``color`` adds ANSI styles."""
    head_valid, head_invalid, label_end, reason_head, details_head, warn_head = _PARTS[color]
    s = report.summary() or {}
    valid = report.valid
    # the untrusted texts in output order, and the row heads of those after the verdict's
    texts = [report.label] if valid else [report.label, str(report.failed),
                                          str(report.reason)]
    keys: list[str] = []
    value = s.get("full_name")
    if value:
        keys.append(_ROW["Holder"])
        texts.append(str(value))
    value = s.get("dob")
    if value:
        keys.append(_ROW["Born"])
        texts.append(str(value))
    kind = s.get("type")
    if kind == "vaccination":
        keys.append(_ROW["Dose"])
        texts.append(f"{s.get('dose')}/{s.get('doses')}  {s.get('vaccine')}")
        keys.append(_ROW["Vaccinated"])
        texts.append(str(s.get("date")))
    elif kind:
        keys.append(_ROW["Type"])
        texts.append(str(kind))
    value = _commune(report) or s.get("issuer")
    if value:
        keys.append(_ROW["Issued by"])
        texts.append(str(value))
    claims = report.claims
    exp = claims.get("exp") if claims else None
    if exp is not None and report.signer is not None:
        keys.append(_ROW["Valid until"])
        texts.append(_until(exp))
    if report.holder is not None:
        keys.append(_ROW["ID card"])
        texts.append("matches" if report.holder.matched else "DOES NOT MATCH")
    texts.extend(report.warnings)
    if not "".join(texts).isprintable():  # all printable: each one is, and stays as it is
        texts = [printable(t) for t in texts]
    if valid:
        out = [head_valid, texts[0], label_end]
        i = 1
    else:
        out = [head_invalid, texts[0], label_end, reason_head,
               PLAIN.get(report.failed or "", "not valid"), details_head, texts[1], ": ",
               texts[2]]
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
                 printable: Callable[[object], str], color: bool) -> int:
    """The reports of a block of stream lines, rendered onto ``out`` in order: line ``i``
    of ``lines`` is ``stdin:{done + i + 1}``, verified unless blank; None stands for a line
    over the length cap (``too_long`` says so). Each report is the JSON line of
    :func:`vaxqr.verify.report_json_text` plus a newline, or :func:`render` (``printable``,
    ``color``). A report is on ``out`` as soon as it is made, so what came before an
    exception is kept. Returns how many reports are not valid."""
    invalid = 0
    n = done
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
            out.append(report_json_text(report))
            out.append("\n")
        else:
            out.append(render(report, printable, color=color))
        if not report.valid:
            invalid += 1
    return invalid
