"""``vaxqr certs``: the province certificate hierarchy, revocation and trust lists.

Mounted by :mod:`vaxqr.cli` with ``app.add_typer(certs_app, name="certs")``. This module
only parses options, asks for passwords and prints; the work is in :mod:`vaxqr.certs` and
the modules next to it.
"""

from __future__ import annotations

import datetime as dt
import json
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from . import cadir, certinfo, certs, describe, keys, revocation
from .cli import Exit, fail
from .cli import safe as esc  # one escaping rule for every command
from .cli_password import PASSWORD_ENV
from .cli_password import Usage as _Usage
from .cli_password import confirm as _confirm
from .cli_password import existing_password as _existing_password
from .cli_password import new_password as _new_password
from .errors import ValidationError, VaxqrError

EXIT_OK, EXIT_USAGE, EXIT_TRUST = int(Exit.OK), int(Exit.USAGE), int(Exit.TRUST_OR_IO)

certs_app = typer.Typer(
    name="certs",
    help="Run the province certificate hierarchy: CA, commune signing certificates, "
    "revocation, and the signed trust list checkpoints load.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
    pretty_exceptions_show_locals=False,
)

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

T = TypeVar("T")


def _fail(message: str, hint: str | None, code: int) -> NoReturn:
    fail(message, code=Exit(code), hint=hint)  # the one style: "error: …", "  hint: …"


def _arg(path: Path) -> str:
    """``path`` as a shell argument, escaped for rich."""
    return esc(shlex.quote(str(path)))


def _publish_hint(ca_dir: Path) -> str:
    return (f"publish a new trust list: vaxqr certs trustlist {_arg(ca_dir)} --out FILE "
            "(add --force to replace the published one)")


def _run(fn: Callable[[], T]) -> T:
    """Run library work, turning vaxqr errors into messages and exit codes."""
    try:
        return fn()
    except _Usage as exc:
        _fail(str(exc), None, EXIT_USAGE)
    except ValidationError as exc:
        _fail(exc.message, exc.hint, EXIT_USAGE)
    except VaxqrError as exc:
        _fail(exc.message, exc.hint, EXIT_TRUST)


def _warn(warnings: tuple[str, ...] | list[str]) -> None:
    for w in warnings:
        err.print(f"[bold yellow]warning:[/] {esc(w)}")


# --------------------------------------------------------------------------------------
# Shared options

PasswordFile = Annotated[
    Path | None,
    typer.Option(
        "--password-file",
        help=f"Read the key password from the first line of FILE ('-' = stdin). "
        f"Default: ${PASSWORD_ENV}, else a hidden prompt.",
        metavar="FILE",
    ),
]
Force = Annotated[bool, typer.Option("--force", help="Replace existing output.")]
Insecure = Annotated[
    bool,
    typer.Option(
        "--insecure-no-password",
        help="Write the new private key UNENCRYPTED (testing only).",
    ),
]
JsonOut = Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")]


def _same_password(new: str, issuer: str) -> str:
    return (f"the new {new} key has the same password as the {issuer} key (one password "
            f"given for both, e.g. {PASSWORD_ENV}): whoever is given it can open the {issuer} "
            f"key too; give the new key its own with --password-file")


def _parse_at(value: str | None) -> dt.datetime:
    if value is None:
        return dt.datetime.now(dt.UTC)
    try:
        t = dt.datetime.fromisoformat(value)
    except ValueError:
        raise _Usage(f"--at {value!r} is not an ISO 8601 date-time") from None
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def _dump(doc: Any) -> None:
    from .safetext import printable_json

    # one line per JSON line of the indented text: each is escaped on its own
    text = json.dumps(doc, ensure_ascii=False, indent=2)
    out.out("\n".join(printable_json(line) for line in text.split("\n")), highlight=False)


# --------------------------------------------------------------------------------------
# Commands


@certs_app.command("init")
def init_cmd(
    ca_dir: Annotated[Path, typer.Argument(metavar="CA_DIR", help="Directory to create.")],
    name: Annotated[str, typer.Option("--name", help="Province name, e.g. 'Kiên Giang'.")],
    province: Annotated[
        str | None,
        typer.Option("--province", help="3-digit province code, e.g. 091.", metavar="CODE"),
    ] = None,
    parent: Annotated[
        Path | None,
        typer.Option("--parent", help="Root CA directory that signs this CA.", metavar="ROOT_DIR"),
    ] = None,
    root: Annotated[
        bool, typer.Option("--root", help="Create a national root CA (signs province CAs).")
    ] = False,
    days: Annotated[int, typer.Option(
        "--days", help=f"Validity, {certs.CA_DAYS_MIN}-{certs.CA_DAYS_MAX} days (4-10 years).")] = (
        certs.CA_DAYS_DEFAULT
    ),
    use_rsa: Annotated[bool, typer.Option("--rsa", help="RSA-3072 key instead of P-256.")] = False,
    password_file: PasswordFile = None,
    parent_password_file: Annotated[
        Path | None,
        typer.Option(
            "--parent-password-file",
            help=f"Password of the root CA key. Default: $VAXQR_PARENT_PASSWORD, ${PASSWORD_ENV}.",
            metavar="FILE",
        ),
    ] = None,
    insecure_no_password: Insecure = False,
    force: Force = False,
) -> None:
    """Create a province CA (the DCC "CSCA") in CA_DIR.

    Writes ca.crt, ca.key (encrypted PKCS#8, mode 0600), chain.pem, crl.pem and
    state.json. The CA is self-signed unless --parent names a root CA directory.

    **Examples**

    * `vaxqr certs init kg-ca --name "Kiên Giang" --province 091`
    * `VAXQR_PASSWORD=... vaxqr certs init kg-ca --name "Kiên Giang" --province 091 --rsa`
    * `vaxqr certs init vn-root --root --name "Bộ Y tế"`
    * `vaxqr certs init kg-ca --name "Kiên Giang" --province 091 --parent vn-root`

    **Exit codes**

    * 0  created
    * 2  usage error (bad option, bad code, no password available)
    * 3  key, certificate or file problem (wrong password, CA_DIR exists, I/O)
    """

    def work() -> cadir.CAInfo:
        if root and province:
            raise _Usage("--root and --province do not go together")
        # what init_ca refuses, refused before any password question (CA_DIR exists, a bad
        # province code, a parent that is no root CA...)
        certs.check_ca_request(ca_dir, name=name, province_code=province, parent_dir=parent,
                               root=root, days=days, force=force)
        parent_pw = None
        if parent is not None:
            parent_pw = _existing_password(
                parent / "ca.key",
                parent_password_file,
                ("VAXQR_PARENT_PASSWORD", PASSWORD_ENV),
                f"the root CA key in {parent}",
                option="--parent-password-file",
            )
        pw = _new_password(password_file, insecure_no_password, f"the CA key in {ca_dir}")
        if pw is not None and pw == parent_pw:
            shared.append(_same_password("province CA", "root CA"))
        return certs.init_ca(
            ca_dir,
            name=name,
            province_code=province,
            password=pw,
            parent_dir=parent,
            parent_password=parent_pw,
            root=root,
            days=days,
            key_type="rsa" if use_rsa else "ec",
            force=force,
        )

    shared: list[str] = []
    ca = _run(work)
    _warn([*ca.warnings, *shared])
    kind = "root CA" if ca.role == "root" else f"province CA {ca.code}"
    err.print(f"[green]created[/] {kind} [bold]{esc(certinfo.name_str(ca.certificate.subject))}[/]")
    err.print(
        f"  valid {certinfo.iso(ca.certificate.not_valid_before_utc)} → "
        f"{certinfo.iso(ca.certificate.not_valid_after_utc)}, kid {ca.kid.hex()}"
    )
    for f in ca.files:
        err.print(f"  {esc(str(f))}")


@certs_app.command("issue")
def issue_cmd(
    ca_dir: Annotated[Path, typer.Argument(metavar="CA_DIR", help="The province CA directory.")],
    commune_code: Annotated[
        str, typer.Option("--commune-code", help="5-digit GSO commune code.", metavar="CODE")
    ],
    name: Annotated[
        str, typer.Option("--name", help="Commune People's Committee, e.g. 'UBND xã Dương Tơ'.")
    ],
    out_dir: Annotated[
        Path, typer.Option("--out", help="Signer directory to create.", metavar="SIGNER_DIR")
    ],
    days: Annotated[int, typer.Option("--days", help="Validity in days (never past the CA).")] = (
        certs.DSC_DAYS_DEFAULT
    ),
    use_rsa: Annotated[
        bool, typer.Option("--rsa", help="RSA-3072 key (PS256) instead of P-256 (ES256).")
    ] = False,
    ca_password_file: Annotated[
        Path | None,
        typer.Option(
            "--ca-password-file",
            help=f"Password of the CA key. Default: $VAXQR_CA_PASSWORD, ${PASSWORD_ENV}.",
            metavar="FILE",
        ),
    ] = None,
    password_file: Annotated[
        Path | None,
        typer.Option(
            "--password-file",
            help=f"Password for the NEW commune key. Default: ${PASSWORD_ENV}, else a prompt.",
            metavar="FILE",
        ),
    ] = None,
    insecure_no_password: Insecure = False,
    force: Force = False,
) -> None:
    """Issue a commune's document-signing certificate (DSC) into SIGNER_DIR.

    Writes signer.crt, signer.key (encrypted, mode 0600), chain.pem (DSC + CA) and
    signer.json, and records the certificate in CA_DIR/state.json. The subject is
    CN=NAME, serialNumber=commune code, O=province, C=VN; EKU vaccination.

    **Examples**

    * `vaxqr certs issue kg-ca --commune-code 31078 --name "UBND xã Dương Tơ" --out duong-to`
    * `vaxqr certs issue kg-ca --commune-code 30760 --name "UBND phường Vĩnh Thanh Vân"
      --out vtv --ca-password-file ca.pass --password-file commune.pass --days 365`

    **Exit codes**

    * 0  issued
    * 2  usage error (bad code or name, no password available)
    * 3  key, certificate or file problem (wrong CA password, SIGNER_DIR exists, I/O)
    """

    def work() -> certs.IssuedSigner:
        certs.check_signer_request(commune_code, name, days)  # before any file is looked at
        # before any password question: not a province CA (or expired), SIGNER_DIR exists
        certs.check_issuing_ca(ca_dir)
        certs.check_signer_out(out_dir, commune_code, force=force)
        ca_pw = _existing_password(
            ca_dir / "ca.key",
            ca_password_file,
            ("VAXQR_CA_PASSWORD", PASSWORD_ENV),
            f"the CA key in {ca_dir}",
            option="--ca-password-file",
        )
        pw = _new_password(password_file, insecure_no_password, f"the commune key in {out_dir}")
        if pw is not None and pw == ca_pw:
            shared.append(_same_password("commune", "CA"))
        return certs.issue_signer(
            ca_dir,
            ca_password=ca_pw,
            commune_code=commune_code,
            name=name,
            out_dir=out_dir,
            password=pw,
            days=days,
            key_type="rsa" if use_rsa else "ec",
            force=force,
        )

    shared: list[str] = []
    res = _run(work)
    _warn([*res.warnings, *shared])
    r = res.record
    err.print(f"[green]issued[/] {esc(r.name)} ({r.code}) serial {r.serial_hex}")
    err.print(
        f"  valid {certinfo.iso(r.not_before)} → {certinfo.iso(r.not_after)}, kid {r.kid.hex()}"
    )
    for f in res.files:
        err.print(f"  {esc(str(f))}")
    for kept in res.kept:
        if kept.name == "ledger.sqlite":
            err.print(f"  kept {esc(str(kept))}: the office's citizen register and single "
                      "issues")
        elif kept.name == "trust":
            err.print(f"  kept {esc(str(kept))}: the province's trust list and CRLs (put the "
                      "new trust list there once published)")
    # Checkpoints know a commune's certificate from the trust list only. A renewal's old
    # certificate is not revoked: revoking it would make every credential it signed NOT VALID.
    err.print(f"  checkpoints refuse its credentials until they load a trust list with it: "
              f"{_publish_hint(ca_dir)}")


@certs_app.command("show")
def show_cmd(
    file: Annotated[
        Path, typer.Argument(metavar="FILE",
                             help="Certificate(s), CRL, trust list, or a private key.")
    ],
    trust: Annotated[
        list[Path] | None,
        typer.Option(
            "--trust",
            help="CA certificate to check signatures and chains against.",
            metavar="CA_CERT",
        ),
    ] = None,
    at: Annotated[str | None, typer.Option("--at", help="Validation time (ISO 8601).")] = None,
    as_json: JsonOut = False,
) -> None:
    """Show a certificate file (PEM/DER, bundles), a CRL or a trust list.

    For certificates: subject, issuer, validity, kid (hex of SHA-256(DER)[:8]), EKU OIDs,
    key type, SHA-256 fingerprint, and the chain check (against --trust CAs, or the CA
    certificates in the same file). For trust lists: sequence, dates, signer, DSCs,
    revocations, and the signature check with --trust. For a private key: how it is
    encrypted (no password is asked), and a warning when that is weak.

    **Examples**

    * `vaxqr certs show duong-to/signer.crt`
    * `vaxqr certs show duong-to/chain.pem --json`
    * `vaxqr certs show trustlist.json --trust kg-ca/ca.crt`
    * `vaxqr certs show kg-ca/crl.pem`

    **Exit codes**

    * 0  shown (and every check passed)
    * 1  shown, but a signature or chain check failed
    * 2  usage error
    * 3  unreadable file
    """

    def work() -> dict[str, Any]:
        anchors = [c for p in (trust or []) for c in certinfo.load_certificates(p)]
        return describe.describe_file(file, trust=anchors, at=_parse_at(at))

    doc = _run(work)
    failed = _show_failed(doc)
    if as_json:
        _dump(doc)
    else:
        _print_description(doc)
    raise typer.Exit(1 if failed else EXIT_OK)


def _show_failed(doc: dict[str, Any]) -> bool:
    if doc.get("signature", {}).get("status") == "invalid":
        return True
    return any(c.get("chain", {}).get("status") == "invalid" for c in doc.get("certificates", []))


def _kv(table: Table, key: str, value: object) -> None:
    table.add_row(key, esc("" if value is None else str(value)))


def _cert_table(c: dict[str, Any], title: str) -> Table:
    t = Table(title=esc(title), show_header=False, title_justify="left", box=None, pad_edge=False)
    t.add_column(style="bold")
    t.add_column()
    _kv(t, "subject", c["subject"])
    _kv(t, "issuer", c["issuer"])
    _kv(t, "serial", c["serial"])
    _kv(t, "valid", f"{c['not_before']} → {c['not_after']}")
    _kv(t, "kid", f"{c['kid']} (base64 {c['kid_b64']})")
    eku = c.get("eku")
    _kv(
        t,
        "EKU",
        c.get("eku_error")
        or ("none (valid for every type)" if eku is None else ", ".join(eku) or "empty"),
    )
    _kv(t, "CA", "yes" if c["is_ca"] else "no")
    _kv(t, "key", c["key_type"])
    _kv(t, "SHA-256", c["sha256"])
    if c.get("demo"):
        t.add_row("note", "[bold yellow]DEMO ONLY certificate[/]")
    chain = c.get("chain")
    if chain:
        if chain["status"] == "valid":
            path = " → ".join(chain["path"])
            _kv(
                t,
                "chain",
                f"valid ({chain['anchor']}): {path}; valid for "
                f"{', '.join(_CERT_TYPES.get(v, v) for v in chain['valid_for'])}",
            )
        else:
            t.add_row("chain", f"[bold red]INVALID[/] {esc(chain['error'])}")
    return t


_CERT_TYPES = {"v": "vaccination", "t": "test", "r": "recovery"}


def _print_description(doc: dict[str, Any]) -> None:
    kind = doc["type"]
    if kind == "certificates":
        n = len(doc["certificates"])
        for i, c in enumerate(doc["certificates"], 1):
            out.print(_cert_table(c, f"{doc['file']} — certificate {i} of {n}"))
            out.print()
        return
    if kind == "private key":
        t = Table(title=esc(f"{doc['file']} — private key"), show_header=False,
                  title_justify="left", box=None)
        t.add_column(style="bold")
        t.add_column()
        _kv(t, "encryption", doc["encryption"] + ("" if doc["strong"] else "  (WEAK)"))
        out.print(t)
        if doc["warning"]:
            _warn([doc["warning"]])
        return
    if kind == "crl":
        t = Table(
            title=esc(f"{doc['file']} — CRL"), show_header=False, title_justify="left", box=None
        )
        t.add_column(style="bold")
        t.add_column()
        _kv(t, "issuer", doc["issuer"])
        _kv(t, "last update", doc["last_update"])
        _kv(t, "next update", doc["next_update"])
        _kv(t, "CRL number", doc["crl_number"])
        _kv(t, "revoked", len(doc["revoked"]))
        if "signature" in doc:
            _kv(t, "signature", doc["signature"]["status"])
        out.print(t)
        if doc["revoked"]:
            r = Table("serial", "revoked at", "reason", title_justify="left")
            for e in doc["revoked"]:
                r.add_row(esc(e["serial"]), e["revoked_at"], esc(e["reason"]))
            out.print(r)
        return
    t = Table(
        title=esc(f"{doc['file']} — trust list"),
        show_header=False,
        title_justify="left",
        box=None,
    )
    t.add_column(style="bold")
    t.add_column()
    prov = doc["province"]
    _kv(t, "province", f"{prov.get('name')} ({prov.get('code')})")
    _kv(t, "sequence", doc["sequence"])
    _kv(t, "issued", doc["issued"])
    _kv(t, "next update", doc["next_update"] + ("  (EXPIRED)" if doc["expired"] else ""))
    sig = doc["signature"]
    status = sig["status"]
    styled = {"valid": "[green]valid[/]", "invalid": "[bold red]INVALID[/]"}.get(
        status, esc(status)
    )
    t.add_row("signature", f"{styled} {esc(sig.get('error', ''))} ({esc(sig['alg'])})")
    _kv(t, "signed by", "SHA-256 " + sig["signer_sha256"])
    _kv(t, "CAs", "; ".join(c["subject"] for c in doc["cas"]))
    _kv(t, "revoked DSCs", len(doc["revoked_dscs"]))
    _kv(t, "revoked credentials", doc["revoked_credentials"])
    out.print(t)
    d = Table("kid", "commune", "subject", "valid until", title="DSCs", title_justify="left")
    for e in doc["dscs"]:
        d.add_row(e["kid"], esc(str(e.get("commune_code"))), esc(e["subject"]), e["not_after"])
    out.print(d)


@certs_app.command("list")
def list_cmd(
    ca_dir: Annotated[Path, typer.Argument(metavar="CA_DIR")],
    at: Annotated[str | None, typer.Option("--at", help="Status at this time (ISO 8601).")] = None,
    as_json: JsonOut = False,
) -> None:
    """List every certificate the CA issued, with its status (valid, expired, revoked).

    **Examples**

    * `vaxqr certs list kg-ca`
    * `vaxqr certs list kg-ca --json --at 2023-01-01T00:00:00Z`

    **Exit codes**

    * 0  listed
    * 2  usage error
    * 3  not a CA directory, or unreadable state
    """
    when = _run(lambda: _parse_at(at))
    ca = _run(lambda: cadir.open_ca(ca_dir))
    _warn(ca.warnings)  # a revocation crl.pem holds and state.json lacks
    rows = [
        {
            "serial": r.serial_hex,
            "kind": r.kind,
            "code": r.code,
            "name": r.name,
            "kid": r.kid.hex(),
            "not_before": certinfo.iso(r.not_before),
            "not_after": certinfo.iso(r.not_after),
            "status": r.status(when),
            "revoked_at": certinfo.iso(r.revoked_at) if r.revoked_at else None,
            "reason": r.reason,
        }
        for r in ca.issued
    ]
    if as_json:
        _dump(
            {
                "version": 1,
                "ca": certinfo.name_str(ca.certificate.subject),
                "trustlist_sequence": ca.trustlist_sequence,
                "revoked_credentials": len(ca.revoked_credentials),
                "certificates": rows,
            }
        )
        return
    t = Table(
        "serial",
        "kind",
        "code",
        "name",
        "kid",
        "valid until",
        "status",
        title=esc(f"{certinfo.name_str(ca.certificate.subject)} — {len(rows)} issued"),
        title_justify="left",
    )
    colours = {"valid": "green", "expired": "yellow", "revoked": "red", "not-yet-valid": "yellow"}
    for row in rows:
        status = f"[{colours[row['status']]}]{row['status']}[/]"
        if row["reason"]:
            status += f" ({esc(row['reason'])})"
        t.add_row(
            row["serial"][:16],
            row["kind"],
            esc(row["code"]),
            esc(row["name"]),
            row["kid"],
            row["not_after"],
            status,
        )
    out.print(t)
    out.print(
        f"trust list sequence {ca.trustlist_sequence}, "
        f"{len(ca.revoked_credentials)} revoked credential(s)"
    )


@certs_app.command("revoke")
def revoke_cmd(
    ca_dir: Annotated[Path, typer.Argument(metavar="CA_DIR")],
    cert: Annotated[
        str,
        typer.Argument(
            metavar="CERT",
            help="Certificate file, signer directory, serial or kid (hex; its first 8 "
                 "characters or more, as certs list shows it), or commune code.",
        ),
    ],
    reason: Annotated[
        str,
        typer.Option(
            "--reason",
            help="One of: " + ", ".join(revocation.REVOCATION_REASONS) + ".",
        ),
    ] = "unspecified",
    password_file: PasswordFile = None,
    yes: Annotated[
        bool,
        typer.Option("--yes", help="Do not ask for confirmation (needed without a terminal)."),
    ] = False,
) -> None:
    """Revoke a commune certificate: the CRL is re-signed and the DSC leaves the next trust list.

    Every credential it signed, before and after, is then NOT VALID at checkpoints that load
    the next trust list (or the CRL), and that cannot be undone: on a terminal it asks first
    (naming the commune and the serial), elsewhere it needs --yes. Revoke a certificate
    whose key was lost or stolen; a commune given a new certificate (vaxqr certs issue
    --force) needs no revocation of the old one, which stays in the trust list until it
    expires, with the credentials it signed.

    **Examples**

    * `vaxqr certs revoke kg-ca duong-to/signer.crt --reason key-compromise`
    * `vaxqr certs revoke kg-ca 31078 --reason cessation-of-operation --yes   # in a script`
    * `vaxqr certs trustlist kg-ca --out trustlist.json --force   # publish the change`

    **Exit codes**

    * 0  revoked (or already revoked)
    * 1  not confirmed: nothing revoked
    * 2  usage error (unknown reason, ambiguous CERT, no terminal to ask on and no --yes)
    * 3  certificate not issued by this CA, wrong password, I/O
    """

    def work() -> revocation.Revocation:
        if reason not in revocation.REVOCATION_REASONS:
            raise _Usage(
                f"unknown reason {reason!r}; use one of {', '.join(revocation.REVOCATION_REASONS)}"
            )
        ca = cadir.open_ca(ca_dir)
        record = cadir.find_issued(ca, cert)
        if record.revoked_at is None and not _confirm_revocation(record, yes):
            err.print("not confirmed: nothing revoked")
            raise typer.Exit(int(Exit.NOT_VALID))
        pw = _existing_password(ca_dir / "ca.key", password_file,
                                ("VAXQR_CA_PASSWORD", PASSWORD_ENV), f"the CA key in {ca_dir}")
        return revocation.revoke_certificate(ca_dir, cert, password=pw, reason=reason)

    res = _run(work)
    _warn(res.warnings)
    r = res.record
    verb = "already revoked" if res.already_revoked else "revoked"
    err.print(
        f"[red]{verb}[/] {esc(r.name)} ({esc(r.code)}) serial {r.serial_hex} "
        f"kid {r.kid.hex()} ({esc(r.reason or '')})"
    )
    crl = esc(str(ca_dir / "crl.pem"))
    if res.already_revoked:  # state.json unchanged; the CRL signed again, as it already was
        when = f" on {r.revoked_at:%Y-%m-%d}" if r.revoked_at else ""
        kept = (f"; its reason stays {esc(r.reason or 'unspecified')}, not {esc(reason)}"
                if reason != (r.reason or "unspecified") else "")
        err.print(f"  it was revoked{when}: nothing changed in state.json{kept}; {crl} was "
                  "signed again with the same revocations (in case an earlier run stopped "
                  "before writing it)")
        return
    if cadir.open_ca(ca_dir).role == "root":  # a root publishes its CRL, not a trust list
        err.print(f"  CRL re-signed: give checkpoints the new {crl} (vaxqr verify --trust "
                  f"{crl}); re-sign it before its next update with: vaxqr certs crl "
                  f"{_arg(ca_dir)}")
    else:
        err.print(f"  CRL re-signed ({crl}); {_publish_hint(ca_dir)}")
        err.print("  every credential this certificate signed is NOT VALID at checkpoints once "
                  "they load that trust list or the CRL")


def _confirm_revocation(record: cadir.IssuedCert, yes: bool) -> bool:
    """Ask before revoking ``record`` (not revoked yet), naming it and what follows."""
    from .safetext import printable

    if record.kind == "ca":  # a national root revoking a province CA
        whom = f"the province CA {printable(record.name)} (province {printable(record.code)})"
        signed = "every credential of every commune under it"
        where = "checkpoints given the new CRL"
    else:
        whom = (f"the certificate of {printable(record.name)} "
                f"(commune {printable(record.code)})")
        signed = "every credential it signed, before and after,"
        where = "checkpoints that load the next trust list or the CRL"
    what = (f"revoking {whom}, serial {record.serial_hex}: {signed} becomes NOT VALID at "
            f"{where}, and this cannot be undone")
    return _confirm(f"{what[0].upper()}{what[1:]}.\nRevoke it?", yes=yes,
                    refusal=f"{what}; add --yes to go on (there is no terminal to ask on)")


@certs_app.command("crl")
def crl_cmd(
    ca_dir: Annotated[Path, typer.Argument(metavar="CA_DIR")],
    days: Annotated[int, typer.Option("--days", help="Days until the CRL's next update.")] = (
        revocation.CRL_DAYS_DEFAULT),
    password_file: PasswordFile = None,
) -> None:
    """Re-sign the CA's CRL (crl.pem) with a new next update.

    A province CA's CRL is re-signed with every trust list; a national root publishes no
    trust list, so it re-signs its CRL with this before checkpoints call it out of date.

    **Examples**

    * `vaxqr certs crl national-root --days 30`

    **Exit codes**

    * 0  re-signed
    * 2  usage error (days out of range)
    * 3  not a CA directory, wrong password, I/O
    """

    def work() -> Any:
        revocation.check_crl_request(ca_dir, days)  # before the password question
        pw = _existing_password(ca_dir / "ca.key", password_file,
                                ("VAXQR_CA_PASSWORD", PASSWORD_ENV), f"the CA key in {ca_dir}")
        return revocation.refresh_crl(ca_dir, password=pw, days=days)

    crl, warnings = _run(work)
    _warn(warnings)
    err.print(f"[green]CRL re-signed[/] {esc(str(ca_dir / 'crl.pem'))}: "
              f"{len(list(crl))} revoked, next update {certinfo.iso(crl.next_update_utc)}")


@certs_app.command("revoke-credential")
def revoke_credential_cmd(
    ca_dir: Annotated[Path, typer.Argument(metavar="CA_DIR")],
    uvci: Annotated[
        list[str] | None, typer.Argument(metavar="UVCI...", help="UVCIs (URN:UVCI:01:VN:…#C).")
    ] = None,
    from_file: Annotated[
        Path | None,
        typer.Option("--from-file", help="Read UVCIs, one per line ('-' = stdin).", metavar="FILE"),
    ] = None,
) -> None:
    """Revoke single credentials (wrongly issued data) in the next trust list.

    Each UVCI is recorded as a DCC "UCI" revocation hash: the first 16 bytes of SHA-256 of
    the upper-cased UVCI (with its #check character) in UTF-8. No key is needed now; the
    entries are signed into the next trust list.

    **Examples**

    * `vaxqr certs revoke-credential kg-ca "URN:UVCI:01:VN:091/31078/000123#H"`
    * `vaxqr certs revoke-credential kg-ca --from-file wrong-uvcis.txt`

    **Exit codes**

    * 0  recorded
    * 2  usage error (not a UVCI, none given)
    * 3  not a CA directory, I/O
    """

    def work() -> revocation.CredentialRevocation:
        items = list(uvci or [])
        if from_file is not None:
            try:
                text = sys.stdin.read() if str(from_file) == "-" else from_file.read_text("utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise _Usage(f"cannot read {from_file}: {exc}") from None
            items += [
                line for line in text.splitlines() if line.strip() and not line.startswith("#")
            ]
        return revocation.revoke_credentials(ca_dir, items)

    res = _run(work)
    _warn(res.warnings)
    for c in res.added:
        err.print(f"[red]revoked[/] {esc(c.uvci)}  hash {certinfo.b64(c.hash)}")
    for u in res.already:
        err.print(f"already revoked {esc(u)}")
    err.print(f"  {_publish_hint(ca_dir)}")


@certs_app.command("trustlist")
def trustlist_cmd(
    ca_dir: Annotated[Path, typer.Argument(metavar="CA_DIR")],
    out_file: Annotated[
        Path, typer.Option("--out", help="Trust list file to write ('-' = stdout).", metavar="FILE")
    ],
    valid_days: Annotated[
        int, typer.Option("--valid-days", help="Days until the list's next_update.")
    ] = certs.TRUSTLIST_DAYS_DEFAULT,
    password_file: PasswordFile = None,
    force: Force = False,
) -> None:
    """Sign and write the trust list checkpoints load (sequence number + 1).

    The list holds the CA certificate(s), every current commune DSC, the revoked DSCs and
    credential revocation hashes, the issue time, next update and sequence, signed by the
    CA key. The CRL is re-signed at the same time. Checkpoints verify it with the CA
    certificate and refuse a list older than one they have already seen.

    **Examples**

    * `vaxqr certs trustlist kg-ca --out trustlist.json`
    * `vaxqr certs trustlist kg-ca --out trustlist.json --force --valid-days 30`
    * `vaxqr certs show trustlist.json --trust kg-ca/ca.crt`

    **Exit codes**

    * 0  written
    * 2  usage error
    * 3  wrong password, FILE exists (use --force), I/O
    """
    to_stdout = str(out_file) == "-"

    def work() -> certs.PublishedTrustList:
        certs.check_trustlist_request(ca_dir, valid_days)  # before the password question
        if not to_stdout:
            certs.check_trustlist_out(out_file, force=force)
        pw = _existing_password(ca_dir / "ca.key", password_file,
                                ("VAXQR_CA_PASSWORD", PASSWORD_ENV), f"the CA key in {ca_dir}")
        return certs.build_trustlist(
            ca_dir,
            password=pw,
            out=None if to_stdout else out_file,
            valid_days=valid_days,
            force=force,
        )

    res = _run(work)
    _warn(res.warnings)
    if to_stdout:
        sys.stdout.buffer.write(res.data)
        sys.stdout.flush()
    tl = res.trustlist
    err.print(
        f"[green]trust list[/] sequence {tl.sequence}: {len(tl.dscs)} DSC(s), "
        f"{len(tl.revoked_dscs)} revoked DSC(s), {len(tl.revoked_credentials)} revoked "
        f"credential(s), next update {certinfo.iso(tl.next_update)}"
    )
    if not to_stdout:
        err.print(f"  {esc(str(out_file))}")


@certs_app.command("password")
def password_cmd(
    target: Annotated[Path, typer.Argument(
        metavar="KEY", help="A CA directory, a commune signer directory, or a key file.")],
    password_file: PasswordFile = None,
    new_password_file: Annotated[
        Path | None,
        typer.Option("--new-password-file", metavar="FILE",
                     help="Read the NEW password from the first line of FILE ('-' = stdin; "
                     "with --password-file - too, stdin's first line is the old password "
                     "and its second the new). Default: $VAXQR_NEW_PASSWORD, else a hidden "
                     "prompt, asked twice."),
    ] = None,
) -> None:
    """Change a key's password, or re-encrypt it with vaxqr's current scheme.

    The key is re-encrypted with PBKDF2-HMAC-SHA256 at 600,000 rounds and AES-256 (older
    vaxqr keys, and OpenSSL's defaults, use 2,048 rounds: vaxqr warns when it opens one).
    Give the same password again to keep it and only upgrade the encryption. The new file is
    read back with the new password and must hold the same key before it replaces the old
    one; the certificate and everything signed with the key stay valid.

    **Examples**

    * `vaxqr certs password kg-ca` (a CA: its ca.key)
    * `vaxqr certs password communes/31078 --password-file old.txt --new-password-file new.txt`

    **Exit codes**

    * 0  re-encrypted
    * 2  usage error (no password to read, a new password under 8 characters)
    * 3  not a key, wrong password, I/O
    """

    def work() -> certs.PasswordChange:
        path = certs.key_file_of(target)
        envs = ("VAXQR_CA_PASSWORD", PASSWORD_ENV) if path.name == "ca.key" else (PASSWORD_ENV,)
        pw = _existing_password(path, password_file, envs, f"the key {path}")
        keys.load_private_key(path, pw)  # a wrong password fails now, not after the new one
        new = _new_password(new_password_file, False, f"the key {path}",
                            env="VAXQR_NEW_PASSWORD", option="--new-password-file")
        assert new is not None
        return certs.change_key_password(path, pw, new)

    res = _run(work)
    if res.password_changed:
        what = ("password changed: the old one no longer opens this file (copies and "
                "backups of the old file it still opens)")
    else:
        what = "password kept"
    err.print(f"[green]re-encrypted[/] {esc(str(res.path))}: {what}; encryption "
              f"{esc(res.before)} → {esc(res.after)}")
