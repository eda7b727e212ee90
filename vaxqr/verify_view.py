"""Human rendering of verification reports (imported only by the CLI, which prints it).

Plain string formatting with a few ANSI styles, not rich: a checkpoint stream renders one
report per scanned line, and rich's markup parser cost ~300 µs a report, several times the
verification itself (benchmarks/README.md). Untrusted text goes through ``printable``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .verify import Report

PLAIN = {
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


def render(report: Report, printable: Callable[[object], str], *, color: bool) -> str:
    """The report as text lines: a VALID / NOT VALID verdict (words, not only colour), the
    holder, the reason. ``printable`` escapes untrusted text; ``color`` adds ANSI styles."""

    def style(name: str, text: str) -> str:
        return f"{_STYLES[name]}{text}{_RESET}" if color else text

    s = report.summary() or {}
    label = style("dim", printable(report.label))
    if report.valid:
        out = [f"{style('valid', ' ✔ VALID ')} {label}"]
    else:
        out = [f"{style('invalid', ' ✘ NOT VALID ')} {label}",
               f"  {style('bold', 'Reason:')}  {PLAIN.get(report.failed or '', 'not valid')}",
               f"  {style('dim', 'Details:')} {printable(report.failed)}: "
               f"{printable(report.reason)}"]
    rows = []
    if s.get("full_name"):
        rows.append(("Holder", s["full_name"]))
    if s.get("dob"):
        rows.append(("Born", s["dob"]))
    if s.get("type") == "vaccination":
        rows.append(("Dose", f"{s.get('dose')}/{s.get('doses')}  {s.get('vaccine')}"))
        rows.append(("Vaccinated", s.get("date")))
    elif s.get("type"):
        rows.append(("Type", s["type"]))
    commune = _commune(report) or s.get("issuer")
    if commune:
        rows.append(("Issued by", commune))
    exp = (report.claims or {}).get("exp")
    if exp is not None and report.signer is not None:
        try:
            until = datetime.fromtimestamp(exp, UTC).date().isoformat()
        except (ValueError, OverflowError, OSError):
            until = f"{exp} (not a calendar date)"
        rows.append(("Valid until", until))
    if report.holder is not None:
        rows.append(("ID card", "matches" if report.holder.matched else "DOES NOT MATCH"))
    out.extend(f"  {key + ':':<12} {printable(value)}" for key, value in rows)
    out.extend(f"  {style('warn', 'warning:')} {printable(w)}" for w in report.warnings)
    return "\n".join(out) + "\n"
