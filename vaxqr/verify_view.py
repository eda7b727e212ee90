"""Human rendering of verification reports (imported only by the CLI)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC
from typing import Any

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


def _commune(report: Report) -> str | None:
    if report.signer is None:
        return None
    try:
        from cryptography.x509.oid import NameOID

        attrs = report.signer.certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return str(attrs[0].value) if attrs else None
    except Exception:
        return None


def render(console: Any, report: Report, safe: Callable[[object], str]) -> None:
    """Print a large VALID / NOT VALID (words, not only colour), the holder and the reason."""
    s = report.summary() or {}
    if report.valid:
        console.print(f"[bold white on green] ✔ VALID [/] [dim]{safe(report.label)}[/]")
    else:
        console.print(f"[bold white on red] ✘ NOT VALID [/] [dim]{safe(report.label)}[/]")
        console.print(f"  [bold]Reason:[/]  {PLAIN.get(report.failed or '', 'not valid')}")
        console.print(f"  [dim]Details:[/] {safe(report.failed)}: {safe(report.reason)}")
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
        from datetime import datetime

        try:
            until = datetime.fromtimestamp(exp, UTC).date().isoformat()
        except (ValueError, OverflowError, OSError):
            until = f"{exp} (not a calendar date)"
        rows.append(("Valid until", until))
    if report.holder is not None:
        rows.append(("ID card", "matches" if report.holder.matched else "DOES NOT MATCH"))
    for key, value in rows:
        console.print(f"  {key + ':':<12} {safe(value)}")
    for w in report.warnings:
        console.print(f"  [yellow]warning:[/] {safe(w)}")
