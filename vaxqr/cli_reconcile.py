"""``vaxqr reconcile``: match vaccination records to the population register.

Registered on :data:`vaxqr.cli.app` by ``_mount()``; the work is in :mod:`vaxqr.reconcile`.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer

from .cli import Exit, app, console, fail, fail_from, safe, warn
from .errors import VaxqrError
from .safetext import row_label


def parse_report_date(value: str | None) -> date | None:
    """``--date`` as a date (YYYY-MM-DD or DD/MM/YYYY), or exit 2."""
    if value is None:
        return None
    from .citizen import parse_date

    try:
        return parse_date(value)
    except VaxqrError as exc:
        fail(f"--date: {exc}", code=Exit.USAGE, hint="for example 2021-11-23")


def run_reconcile(vaccinations: Path, population: Path, out: Path, *, report_date: date | None,
                  overwrite: bool, workers: int | None = None, bom: bool = True) -> Any:
    """Run the matching with a status line on a terminal; VaxqrError → exit 2 or 3."""
    from .reconcile import reconcile_files

    err = console(err=True)
    status = err.status("reconcile", spinner="dots") if err.is_terminal else None
    if status is not None:
        status.start()
    try:
        def progress(msg: str) -> None:
            if status is not None:
                status.update(f"reconcile: {msg}")

        return reconcile_files(vaccinations, population, out, report_date=report_date,
                               workers=workers, overwrite=overwrite, progress=progress,
                               bom=bom)
    except VaxqrError as exc:
        fail_from(exc)
    finally:
        if status is not None:
            status.stop()


def _print_report(result: Any) -> None:
    from rich.table import Table

    from .reconcile import CLASSES, CLEAN

    out = console()
    t = Table(title=f"{result.rows:,} dose records", title_justify="left")
    t.add_column("class")
    t.add_column("records", justify="right")
    t.add_column("share", justify="right")
    t.add_column("goes to")
    for cls in CLASSES:
        n = result.counts[cls]
        share = f"{n / result.rows:.2%}" if result.rows else "-"
        where = "matched.csv" if cls == "matched" else "mismatches.csv"
        if cls in CLEAN and cls != "matched":
            where = "both (auto-fixed)"
        t.add_row(cls, f"{n:,}", share, where if n else "")
    out.print(t)
    c = Table(title=f"Coverage at {result.report_date.isoformat()} (adults 18+ in the "
              "register; doses in matched.csv; the figures in coverage.csv)",
              title_justify="left")
    for col in ("commune", "people", "adults 18+", "dose 1", "dose 2"):
        c.add_column(col, justify="left" if col == "commune" else "right")
    for row in (*result.coverage, result.total):
        style = "bold" if row is result.total else None
        c.add_row(safe(row.commune_code), f"{row.people:,}", f"{row.adults:,}",
                  row.figure(1), row.figure(2), style=style)
    out.print(c)
    reg = f"register: {result.register_people:,} people from {result.register_rows:,} rows"
    if result.register_invalid or result.register_duplicates:
        reg += (f" ({result.register_invalid:,} unusable rows, "
                f"{result.register_duplicates:,} duplicate IDs skipped)")
    err = console(err=True)
    err.print(reg)
    for row, why in result.register_problems[:5]:
        err.print(f"  register {row_label(row)}: {safe(why)}")
    err.print(f"{result.matched_rows:,} rows → {safe(result.out_dir / 'matched.csv')}, "
              f"{result.rows - result.counts['matched']:,} → "
              f"{safe(result.out_dir / 'mismatches.csv')} ({result.seconds:.1f} s)")


@app.command()
def reconcile(
    vaccinations: Annotated[str, typer.Argument(
        help="Vaccination export, or - for stdin: CSV with the `vaxqr issue` columns "
             "(full_name, sex, dob, id_number, dose_number, total_doses, vaccination_date, "
             "vaccine, lot, site).", show_default=False, metavar="VACCINATIONS.csv")],
    population: Annotated[Path, typer.Option(
        "--population", "-p", help="Population register export: CSV with at least "
        "id_number, full_name, sex, dob, commune_code.", show_default=False)],
    out: Annotated[Path, typer.Option(
        "--out", "-o", help="Output directory (matched.csv, mismatches.csv, coverage.csv, "
        "report.json).",
        show_default=False)],
    date_: Annotated[str | None, typer.Option(
        "--date", help="Report date for the coverage figures (default: today).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    force: Annotated[bool, typer.Option(help="Overwrite existing output files.")] = False,
    workers: Annotated[int | None, typer.Option(
        help="Worker processes (default: one per core).")] = None,
    bom: Annotated[bool, typer.Option(
        help="Start matched.csv, mismatches.csv and coverage.csv with a UTF-8 BOM, so that "
             "Excel on Windows shows Vietnamese (vaxqr issue reads matched.csv either way); "
             "--no-bom for programs that do not expect one.")] = True,
) -> None:
    """Match vaccination records to the population register and say what to fix.

    Each dose record is compared with the register entry of its ID number on full name,
    sex, date of birth and ID number (9438/BYT-CNTT) and gets one class, the first that
    applies: id_invalid, id_not_found, duplicate_dose, name_tone_style, name_no_diacritics,
    name_order, name_differs, dob_swapped, dob_differs, sex_differs, dose_sequence, matched.

    Writes into OUT: `matched.csv` (ready for `vaxqr issue --from`, with the register's
    names; name_tone_style rows auto-fixed), `mismatches.csv` (row, class, the record's and
    the register's values side by side, reason, suggested fix), `coverage.csv` (one row per
    commune, then the province's `total`: commune_code, people, adults (18+), dose1,
    dose1_rate, dose2, dose2_rate, dose1_all_ages, dose2_all_ages; a rate is a fraction,
    the figures are report.json's) and `report.json`; prints the counts per class and the
    coverage per commune (dose 1 / dose 2 over adults 18+).

    **Examples**

    * `vaxqr reconcile records.csv --population register.csv --out recon/`
    * `vaxqr reconcile records.csv -p register.csv -o recon/ --date 2021-11-23 --json`
    * `vaxqr issue --signer SIGNER --from records.csv --population register.csv --out batch/`

    **Exit codes:** 0 done (mismatches are listed in mismatches.csv, not an error) ·
    2 usage or unreadable input (not UTF-8, missing columns, bad --date) · 3 I/O (missing
    file, output exists without --force, disk full).
    """
    report_date = parse_report_date(date_)
    if workers is not None and workers < 1:
        fail("--workers must be at least 1", code=Exit.USAGE)
    spooled: Path | None = None
    try:
        if vaccinations == "-":
            spooled = Path(tempfile.mkdtemp(prefix="vaxqr-reconcile-")) / "stdin.csv"
            with spooled.open("wb") as fh:
                shutil.copyfileobj(sys.stdin.buffer, fh)
            source = spooled
        else:
            source = Path(vaccinations)
        result = run_reconcile(source, population, out, report_date=report_date,
                               overwrite=force, workers=workers, bom=bom)
    finally:
        if spooled is not None:
            shutil.rmtree(spooled.parent, ignore_errors=True)
    for w in result.warnings:
        warn(w)
    if as_json:
        from .safetext import printable_json

        sys.stdout.write(printable_json(json.dumps(result.to_json(), ensure_ascii=False)) + "\n")
        sys.stdout.flush()
    else:
        _print_report(result)
    raise typer.Exit(int(Exit.OK))
