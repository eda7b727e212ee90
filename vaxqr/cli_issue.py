"""``vaxqr issue``: sign one credential from options, or a batch from a CSV export."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from contextlib import ExitStack
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer

from .cli import (
    Exit,
    app,
    checked_progress,
    console,
    end_at_once,
    fail,
    fail_from,
    printable,
    progress_bar,
    safe,
    warn,
)
from .errors import ValidationError, VaxqrError
from .safetext import row_label

_SINGLE_OPTIONS = ("--name", "--sex", "--dob", "--id", "--vaccine", "--dose", "--date")
_INTERRUPTED = ("interrupted: every credential signed so far is in the ledger; run the same "
                "command again to finish the batch (nothing is signed twice)")


def _require_signer_dir(signer_dir: Path, *, key: bool = True) -> None:
    """A commune signer directory (signer.crt, and signer.key when ``key``), else exit 3:
    before any password question, a wrong directory is not a password problem."""
    if (signer_dir / "signer.crt").is_file() and (not key or (signer_dir / "signer.key")
                                                  .is_file()):
        return
    if (signer_dir / "ca.crt").is_file():  # the province CA's: a clerk's likely slip
        fail(f"{printable(signer_dir)} is the province CA's directory (ca.crt), not a "
             "commune signer directory: credentials are signed with a commune's "
             "certificate (signer.crt and signer.key)", code=Exit.TRUST_OR_IO,
             hint=f"give --signer the commune's directory, which `vaxqr certs issue "
             f"{printable(signer_dir)} --commune-code CODE --name NAME --out DIR` made "
             "(DIR)")
    fail(f"{printable(signer_dir)} is not a commune signer directory (it needs signer.crt"
         f"{' and signer.key' if key else ''})", code=Exit.TRUST_OR_IO,
         hint="give the directory `vaxqr certs issue --out` made for this commune")


def _load_signer(signer_dir: Path, password_file: Path | None, trust: list[Path] | None,
                 short_validity: bool) -> tuple[Any, Any]:
    """The signer, loaded after its certificate passed its checks (vaxqr.signercheck:
    validity, chain, revocation, time left), and the check; both sets of warnings shown."""
    from .certs import load_signer, load_signer_certificates
    from .cli_password import read_password
    from .signercheck import check_signer_dir

    _require_signer_dir(signer_dir)
    try:  # before the password too: an unusable certificate is refused whatever the key
        certificates = load_signer_certificates(signer_dir)  # read once: checked, then used
        check = check_signer_dir(signer_dir, trust=trust or (), allow_short=short_validity,
                                 certificates=certificates)
    except VaxqrError as exc:
        fail_from(exc)
    password = read_password(password_file, confirm=False,
                             what=f"the commune key in {signer_dir}", key=signer_dir / "signer.key")
    try:
        signer = load_signer(signer_dir, password, certificates=certificates)
    except VaxqrError as exc:
        fail_from(exc)
    for w in (*signer.warnings, *check.warnings):  # DEMO ONLY keys; credentials ending soon
        warn(w)
    return signer, check


@app.command()
def issue(
    signer: Annotated[Path, typer.Option(help="Commune signer directory (from `vaxqr certs "
                                         "issue`).", show_default=False)],
    out: Annotated[str, typer.Option(help="Batch: output directory. Single: FILE.png, "
                                     "FILE.svg, or - for the HC1 text on stdout.",
                                     show_default=False)],
    from_csv: Annotated[Path | None, typer.Option(
        "--from", help="CSV export whose header names the columns full_name, sex, dob, "
        "id_number, dose_number, total_doses, vaccination_date, vaccine, lot, site.")] = None,
    name: Annotated[str | None, typer.Option(help="Full name, surname first.")] = None,
    sex: Annotated[str | None, typer.Option(help="Nam or Nữ (M/F accepted).")] = None,
    dob: Annotated[str | None, typer.Option(help="Date of birth, YYYY-MM-DD or DD/MM/YYYY.")]
    = None,
    id_number: Annotated[str | None, typer.Option(
        "--id", help="12-digit ID number (checked, never put in the credential).")] = None,
    vaccine: Annotated[str | None, typer.Option(
        help="astrazeneca, sputnik, verocell, pfizer, moderna, janssen, hayatvax, abdala, "
             "or an EU product code.")] = None,
    dose: Annotated[str | None, typer.Option(help="Dose n/N, e.g. 2/2.")] = None,
    date_: Annotated[str | None, typer.Option("--date", help="Vaccination date.")] = None,
    lot: Annotated[str, typer.Option(help="Vaccine lot (kept in the ledger).")] = "",
    fmt: Annotated[str, typer.Option("--format", help="Batch image format: png or svg.")]
    = "png",
    workers: Annotated[int | None, typer.Option(help="Processes rendering the images, including "
                                                "the one signing (default: one per core, at "
                                                "most 6).")]
    = None,
    password_file: Annotated[Path | None, typer.Option(
        help="File holding the signer key password (else VAXQR_PASSWORD, else a prompt); "
        "not read by --reprint, which opens no key.")]
    = None,
    card: Annotated[str | None, typer.Option(
        help="Also write a printable card: png or pdf (batch: OUT_DIR/cards/; single: "
             "beside --out).")] = None,
    force: Annotated[bool, typer.Option(help="Overwrite an existing output file.")] = False,
    reissue: Annotated[bool, typer.Option(
        "--reissue", help="Single issue: sign a new credential although the office's "
        "register holds one for this ID number (a lost card whose credential was revoked); "
        "the earlier one stays valid unless revoked.")] = False,
    reprint: Annotated[str | None, typer.Option(
        "--reprint", metavar="ID|UVCI",
        help="Write a citizen's existing credential again (a lost or damaged card), found "
        "in the office's register by their 12-digit ID number or its UVCI: nothing is "
        "signed, no password is asked; refused when checkpoints would refuse it (expired, "
        "revoked).", show_default=False)] = None,
    # --- reconcile (issue 8): match --from against the register, sign matched rows only
    population: Annotated[Path | None, typer.Option(
        "--population", help="Population register CSV: reconcile --from against it first "
        "(into OUT/reconcile/) and sign only the matched rows.")] = None,
    # --- end reconcile
    trust: Annotated[list[Path] | None, typer.Option(
        "--trust", help="A CRL (the province's crl.pem, the national root's) or the "
        "province's trust list, or a folder of them, as checkpoints get them: a revoked "
        "commune certificate or province CA is refused before signing. SIGNER/trust/ is "
        "always read.", show_default=False)] = None,
    short_validity: Annotated[bool, typer.Option(
        "--short-validity", help="Sign although the commune certificate ends within 30 "
        "days: the credentials expire with it (--reprint needs no such flag).")] = False,
    bom: Annotated[bool, typer.Option(
        help="Start the CSV files written (manifest, rejects, reconcile's) with a UTF-8 BOM, "
             "so that Excel on Windows shows Vietnamese; --no-bom for programs that do not "
             "expect one.")] = True,
) -> None:
    """Sign vaccination credentials with a commune's certificate.

    **Examples**

    * `vaxqr issue --signer keys/examples/communes/30760 --from records.csv --out batch/`
    * `vaxqr issue --signer SIGNER --from records.csv --population register.csv --out batch/`
      (reconciles first: OUT/reconcile/mismatches.csv lists what was not signed)
    * `vaxqr issue --signer SIGNER --name "Nguyễn Thị Ánh Hồng" --sex Nữ --dob 1990-05-17
      --id 091190001234 --vaccine pfizer --dose 2/2 --date 2021-10-01 --out card.png`
    * `vaxqr issue --signer SIGNER --reprint 091190001234 --out card.png --card pdf`
      (a lost card: the citizen's credential from the office's register, written again)

    A batch writes `manifest.csv`, `rejects.csv`, `qr/*.png` and `ledger.sqlite` into the
    output directory; running the same command again after a crash resumes it and signs
    nothing twice. One output directory per CSV: another CSV into it is refused. One
    credential per citizen: of a citizen's rows, the latest dose is signed and the others
    are listed in rejects.csv as superseded. This holds across every batch and single issue
    of the signer: its directory's ledger.sqlite keeps the office's citizen register, and a
    citizen it holds from elsewhere is signed only for a later dose (a single issue is
    refused, naming the credential, unless --reissue). A batch issued before the register
    (an older vaxqr) enters it when its command is run again; a single issue then, when
    the same record is issued again (its credential is written again).

    Before the key's password is asked, the commune certificate is checked and refused
    (exit 3) when it has expired or is not valid yet, when its chain (chain.pem) no longer
    validates, when a CRL or the province's trust list in SIGNER/trust/ (or given with
    --trust) revokes it or its province CA, or when it ends within 30 days (unless
    --short-validity). When it ends within 12 months, a warning says when the credentials
    expire: with it.

    --reprint signs nothing: no password is asked and the time left does not matter, but a
    credential checkpoints would refuse (expired; revoked, itself or its certificate, by
    the files in SIGNER/trust/ or --trust; a certificate expired or off its chain) is not
    written again (exit 3, or 1 for the credential itself): sign a new one with --reissue.

    **Exit codes:** 0 done (rejected rows are listed in rejects.csv) · 1 --reprint: the
    credential is one checkpoints refuse · 2 usage, invalid record, or a CSV that cannot be
    read as records · 3 key, certificate or I/O problem.
    """
    from . import issue as flow

    single = [name, sex, dob, id_number, vaccine, dose, date_]
    if reprint is not None:
        if from_csv is not None or population is not None or reissue \
                or any(v is not None for v in single):
            fail("--reprint writes an existing credential again: give it with --signer, "
                 "--out and --card only", code=Exit.USAGE)
        _check_out_name(out, card)
        _require_signer_dir(signer, key=False)  # no key, no password: nothing is signed
        try:
            _reprint(flow, signer, reprint, out, force, card, trust or ())
        except VaxqrError as exc:
            fail_from(exc)
        return
    if from_csv is not None:
        began = False
        try:
            if any(v is not None for v in single):
                fail("give either --from CSV or the citizen options, not both", code=Exit.USAGE)
            if workers is not None and workers < 1:
                fail("--workers must be at least 1", code=Exit.USAGE)
            if reissue:
                fail("--reissue is for a single issue (a batch signs a citizen the office "
                     "has a credential for only for a later dose)", code=Exit.USAGE)
            _check_out_dir(Path(out))  # before the password, as a single issue's --out
            s, check = _load_signer(signer, password_file, trust, short_validity)
            source = from_csv.name  # the ledger's name for the batch: the clerk's CSV
            if population is None:
                began = True
                _batch(flow, s, check, signer, from_csv, Path(out), fmt, workers, card, source,
                       bom)
                return
            # --- reconcile (issue 8), then the batch, with OUT_DIR held around both: another
            # run must not rewrite OUT_DIR/reconcile/ under a batch reading its matched.csv
            from .cli_reconcile import run_reconcile

            with ExitStack() as hold:
                try:
                    hold.enter_context(flow.holding(Path(out)))
                except VaxqrError as exc:
                    fail_from(exc)
                res = run_reconcile(from_csv, population, Path(out) / "reconcile",
                                    report_date=None, overwrite=True, workers=workers,
                                    bom=bom)
                others = (f"; the others are in {safe(res.out_dir / 'mismatches.csv')}"
                          if res.matched_rows < res.rows else "")
                console(err=True).print(
                    f"reconcile: {res.matched_rows} of {res.rows} rows match the register{others}")
                # numbered by its source_row: rows, image names and the ledger are the input's
                began = True
                _batch(flow, s, check, signer, res.out_dir / "matched.csv", Path(out), fmt,
                       workers, card, source, bom)
        except KeyboardInterrupt:  # where _batch's own handler is not (before, after it)
            console(err=True).print(
                _INTERRUPTED if began else "interrupted before any credential was signed; run "
                "the same command again to issue the batch")
            raise typer.Exit(130) from None
        return
    if population is not None:
        fail("--population needs --from CSV", code=Exit.USAGE)
    missing = [o for o, v in zip(_SINGLE_OPTIONS, single, strict=True) if v is None]
    if missing:
        named = " and ".join([", ".join(missing[:-1]), missing[-1]] if len(missing) > 1
                             else missing)
        fail(f"a single credential needs --name, --sex, --dob, --id, --vaccine, --dose and "
             f"--date: missing {named} (or use --from CSV)", code=Exit.USAGE)
    assert dose is not None
    n, _, total = dose.partition("/")
    fields = {"full_name": name, "sex": sex, "dob": dob, "id_number": id_number,
              "dose_number": n, "total_doses": total or n, "vaccination_date": date_,
              "vaccine": vaccine, "lot": lot, "site": ""}
    try:
        record = flow.parse_record(0, fields, today=date.today())
    except ValidationError as exc:
        fail(f"invalid record: {exc}", code=Exit.USAGE, hint=exc.hint)
    try:  # before the password: a file that cannot be written is not a key problem
        _outputs(out, card, force)
    except VaxqrError as exc:
        fail_from(exc)
    s, _check = _load_signer(signer, password_file, trust, short_validity)
    try:
        _single(flow, s, signer, record, out, force, card, reissue)
    except VaxqrError as exc:
        fail_from(exc)


def _check_out_dir(out: Path) -> None:
    """A batch's OUT_DIR reached through another user's symbolic link, refused before the
    password is asked (:func:`vaxqr.issue.issue_batch` refuses it too)."""
    from .fileio import refuse_foreign_symlink
    from .issue import OUT_DIR_HOLDS

    try:
        refuse_foreign_symlink(out, OUT_DIR_HOLDS)
    except VaxqrError as exc:
        fail_from(exc)


def _check_out_name(out: str, card: str | None) -> None:
    """A single credential's --out and --card, as given (a usage error, exit 2)."""
    target = None if out == "-" else Path(out)
    if target is not None and target.suffix.lower() == ".pdf":
        png = target.with_suffix(".png")
        fail(f"--out {printable(out)}: --out is the QR image (.png or .svg, or - for stdout); "
             "a PDF card is asked for with --card pdf and written beside the image: "
             f"--out {printable(png)} --card pdf writes {printable(png)} and "
             f"{printable(png.with_name(png.stem + '-card.pdf'))}", code=Exit.USAGE)
    if target is not None and target.suffix.lower() not in (".png", ".svg"):
        fail(f"--out {out}: use a .png or .svg file, or - for stdout", code=Exit.USAGE)
    if card not in (None, "png", "pdf"):
        fail("--card: png or pdf", code=Exit.USAGE)
    if card and target is None:
        fail("--card needs --out FILE (the card is written beside it)", code=Exit.USAGE)


def _outputs(out: str, card: str | None, force: bool) -> tuple[Path | None, Path | None]:
    """A single credential's QR file (None: stdout) and card file, checked writable first:
    the ledger records a credential before its file is written, so none is recorded that
    could not be written (StorageError); refused, as a batch's OUT_DIR is, when reached
    through another user's symbolic link."""
    from .fileio import check_writable

    _check_out_name(out, card)
    target = None if out == "-" else Path(out)
    card_path = None
    if card and target is not None:
        card_path = target.with_name(target.stem + "-card." + card)
    for path, holds in ((target, "the citizen's credential"), (card_path, "their card")):
        if path is not None:  # a folder of another user's link: where they chose (as OUT_DIR)
            check_writable(path, overwrite=force, holds=holds)
    return target, card_path


def _write_single(flow: Any, info: Any, hc1: str, uvci: str, target: Path | None,
                  card_path: Path | None, force: bool, verb: str) -> None:
    """Write one credential: its HC1 text to stdout, or its QR (and card) files."""
    from .fileio import atomic_write

    end_at_once()  # the ledger is closed; each file below is written whole or not at all
    if target is None:
        sys.stdout.write(hc1 + "\n")  # stdout holds the HC1: text alone: people read stderr
        sys.stdout.flush()
        console(err=True).print(f"{verb} {safe(uvci)}")
        return
    atomic_write(target, flow.render(hc1, target.suffix.lower()[1:]), overwrite=force)
    console(err=True).print(f"{verb} {safe(uvci)} → {safe(target)}")
    if card_path is not None:
        atomic_write(card_path, flow.render_card(hc1, info, card_path.suffix[1:]),
                     overwrite=force)
        console(err=True).print(f"card → {safe(card_path)}")


def _single(flow: Any, signer: Any, signer_dir: Path, record: Any, out: str,
            force: bool, card: str | None, reissue: bool) -> None:
    from .errors import full_disk_hint, when_full
    from .ledger import NOTHING_RECORDED_HINT, Register

    info = flow.signer_info(signer)
    target, card_path = _outputs(out, card, force)
    # signed, then checked against the office's register and recorded with its claim in
    # one transaction (or refused: then nothing is recorded or written)
    with when_full(NOTHING_RECORDED_HINT), Register(signer_dir / "ledger.sqlite") as register:
        entry, note = flow.issue_single(register, info, record,
                                        file=str(target) if target else None, reissue=reissue)
    if note:
        warn(note)
    # recorded: with --reissue a run again would sign another
    with when_full(full_disk_hint(
            f"write it with --reprint {entry.uvci} (add --force if a file was written)",
            "the credential is recorded, nothing new needs signing")):
        _write_single(flow, info, entry.hc1, entry.uvci, target, card_path, force, "issued")


def _reprint(flow: Any, signer_dir: Path, ref: str, out: str, force: bool,
             card: str | None, trust: Sequence[Path]) -> None:
    """Write the office's existing credential for a citizen again: nothing is signed, so
    the key is not opened; refused when checkpoints would refuse the credential."""
    from .certs import load_signer_certificate
    from .errors import full_disk_hint, when_full
    from .reprint import check_reprint, find_issued

    office = load_signer_certificate(signer_dir)
    info = flow.signer_info(office)  # the commune named on the card; it cannot sign
    target, card_path = _outputs(out, card, force)
    found = find_issued(signer_dir, ref, certificate=office.certificate)
    c = found.claim
    where = ("a single issue" if c.place == "single"
             else f"{c.place} ({c.source} {row_label(c.row)})")
    console(err=True).print(
        f"found {safe(c.uvci)}: {safe(c.full_name)}, dose {c.dose}/{c.total} on "
        f"{safe(c.vaccination_date)}, issued by {safe(where)} on {safe(c.issued_at[:10])}, "
        "valid until "
        f"{found.expires:%Y-%m-%d}")
    for w in (*office.warnings, *check_reprint(signer_dir, found, trust=trust)):
        warn(w)
    with when_full(full_disk_hint("run the same command again (add --force if a file was "
                                  "written)", "nothing was signed or recorded")):
        _write_single(flow, info, found.entry.hc1, c.uvci, target, card_path, force,
                      "reprinted")


def _batch(flow: Any, signer: Any, check: Any, signer_dir: Path, csv_path: Path, out: Path,
           fmt: str, workers: int | None, card: str | None, source: str, bom: bool) -> None:
    try:
        with progress_bar("signing", unit="rows") as progress:
            result = flow.issue_batch(signer, csv_path, out, fmt=fmt, workers=workers,
                                      progress=checked_progress(progress), card=card,
                                      source=source,
                                      register=signer_dir / "ledger.sqlite", checked=check,
                                      bom=bom)
    except VaxqrError as exc:
        fail_from(exc)
    except KeyboardInterrupt:  # the bar is gone already
        console(err=True).print(_INTERRUPTED)
        raise typer.Exit(130) from None
    for w in result.warnings:
        warn(w)
    rate = result.issued / result.seconds if result.seconds > 0 else 0.0
    # rows whose citizen the office's register holds a credential of, for this dose or a
    # later one (another batch, a single issue), told from rows a later dose in this same
    # CSV supersedes: both are "one credential per citizen", the first nothing to redo here
    held = flow.held_by_office(result.superseded)
    later = len(result.superseded) - held
    superseded = "".join((
        f", {later} superseded by a later dose in this file" if later else "",
        f", {held} already issued by the office (another batch or a single issue)"
        if held else "")) + (" (one credential per citizen)" if result.superseded else "")
    lines = [f"{result.issued} issued ({rate:,.0f}/s), {result.already} already issued, "
             f"{len(result.rejected)} rejected{superseded} of {result.total_rows} rows → "
             f"{printable(out)}"]
    if result.replaced:
        n = len(result.replaced)
        lines.append(f"{n} credential{'' if n == 1 else 's'} signed for a later dose of a citizen "
                     "the office issued an earlier credential to (another batch or a single "
                     "issue): those stay valid unless revoked")
        lines += [f"  {row_label(row)}: replaces {printable(uvci)}"
                  for row, uvci in result.replaced[:10]]
    if result.registered:
        n = result.registered
        lines.append(f"{n} credential{'' if n == 1 else 's'} issued here before the office's "
                     "register (an older vaxqr) now in it: --reprint finds "
                     f"{'it' if n == 1 else 'them'}, and no batch signs "
                     f"{'its citizen' if n == 1 else 'their citizens'} again for the same dose")
    if result.images_restored:
        lines.append(f"{result.images_restored} missing image(s) restored from the ledger")
    if result.cards_written:  # --card added to a finished batch, or cards lost
        n = result.cards_written
        lines.append(f"{n} card{'' if n == 1 else 's'} of rows issued earlier written from "
                     "the ledger")
    lines += [f"  {row_label(row)}: {printable(reason)}" for row, reason in result.rejected[:10]]
    more = max(len(result.rejected) - 10, 0)
    left_out = [f"{more:,} more rejected"] if more else []
    if result.superseded:  # superseded rows: not one by one
        left_out.append(f"{len(result.superseded):,} superseded")
    if left_out:  # every rejected row listed above: no "see rejects.csv" for nothing
        n = more + len(result.superseded)
        lines.append(f"  {'… ' if more else ''}{' and '.join(left_out)} row{'' if n == 1 else 's'}"
                     f": see {printable(out / 'rejects.csv')}")
    sys.stderr.write("".join(line + "\n" for line in lines))
    end_at_once()  # the batch closed its ledger, manifest and images
    raise typer.Exit(int(Exit.OK))
