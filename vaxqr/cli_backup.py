"""``vaxqr backup``: CA, commune signer and batch directories into one tar archive.

Registered on :data:`vaxqr.cli.app` by ``_mount()``; the work is in :mod:`vaxqr.backup`.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated, Any

import typer

from .cli import Exit, app, console, fail, fail_from, progress_bar, safe, warn
from .errors import VaxqrError

_KIND = {"ca": "CA", "signer": "commune signer", "batch": "batch"}


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    raise AssertionError  # pragma: no cover


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _describe(d: Any) -> str:
    kind = f"{d.role} CA" if d.kind == "ca" and d.role else _KIND[d.kind]
    parts = [f"{_plural(d.files, 'file')}, {_size(d.bytes)}"]
    if d.ledgers:
        where = "its ledger" if d.ledgers == 1 else f"its {d.ledgers} ledgers"
        parts.append(f"{_plural(d.credentials, 'credential')} in {where}")
    if d.citizens:
        parts.append(f"{_plural(d.citizens, 'citizen')} in its register")
    if d.certificates_issued is not None:
        parts.append(f"{_plural(d.certificates_issued, 'certificate')} issued "
                     f"({d.certificates_revoked:,} revoked), "
                     f"{_plural(d.credentials_revoked, 'credential')} revoked")
    lines = [f"  {safe(d.name)}: {kind}, " + ", ".join(parts)]
    for b in d.register_batches:  # where the register's batch credentials are
        where = "in this archive" if b.archived else \
            "NOT in this archive: back that directory up too"
        lines.append(f"    the credentials of {_plural(b.citizens, 'citizen')} are in the "
                     f"ledger of the batch {safe(b.path)}, {where}")
    return "\n".join(lines)


@app.command()
def backup(
    directories: Annotated[list[Path], typer.Argument(
        help="A CA directory, a commune signer directory or a batch OUT_DIR (several: each "
             "goes into the archive under its own name).", show_default=False,
        metavar="DIR...")],
    out: Annotated[str, typer.Option(
        "--out", "-o", help="The archive to write (an uncompressed tar, mode 0600).",
        show_default=False, metavar="FILE.tar")],
    force: Annotated[bool, typer.Option(help="Overwrite an existing archive.")] = False,
) -> None:
    """Back up CA, commune signer and batch directories into one tar archive.

    Each directory is held while it is copied (a CA as `vaxqr certs` holds it; a batch
    OUT_DIR is refused while its batch runs). Each `ledger.sqlite` is copied through
    SQLite, with the records a crash left in `ledger.sqlite-wal`, and checked; the other
    files are copied as they are (keys stay encrypted; no password is asked). Temporary
    files, symbolic links and lock files are left out, and listed (but a CA's `.lock`,
    which vaxqr makes, left out without a word). On a terminal, a progress bar on stderr
    shows the bytes copied.

    The archive holds private keys: it is written with mode 0600; keep it as you keep the
    keys, and the passwords apart from it. Restore into a new, empty directory
    (`mkdir DEST && tar --no-same-owner --no-same-permissions -xf FILE.tar -C DEST`: as
    root too, the files are then yours, with no mode the archive could add), never over a
    live one: an older
    `state.json` would undo the CA's revocations since and reuse trust-list numbers.

    **Examples**

    * `vaxqr backup kg-ca --out kg-ca-2021-12-01.tar`
    * `vaxqr backup kg-ca duong-to batch-1201 --out /media/usb/backup.tar`
    * `vaxqr backup batch-1201 --out backup.tar --force`

    **Exit codes:** 0 done · 2 usage (not a CA, signer or batch directory; two with the
    same name; --out -) · 3 I/O (archive exists without --force, disk full: no partial
    archive is left, unreadable file, damaged ledger) or a directory in use by a running
    batch.
    """
    if out == "-":
        fail("--out -: the archive is binary and holds private keys; give a file name",
             code=Exit.USAGE, hint="for example --out backup.tar")
    from .backup import RESTORE
    from .backup import backup as run

    try:
        with progress_bar("backing up", unit="bytes") as progress:
            result = run(directories, Path(out), overwrite=force, progress=progress)
    except VaxqrError as exc:
        fail_from(exc)
    err = console(err=True)
    n = len(result.directories)
    err.print(f"backed up {n} director{'y' if n == 1 else 'ies'} → {safe(result.archive)} "
              f"({_size(result.size)}, mode 0600)")
    for d in result.directories:
        err.print(_describe(d))
    for s in result.skipped:
        if s.reason.startswith("symbolic"):
            warn(f"left out {s.path}: {s.reason}")
        else:
            err.print(f"  left out {safe(s.path)}: {safe(s.reason)}")
    for w in result.warnings:
        warn(w)
    restore = RESTORE.format(file=shlex.quote(str(result.archive)))
    err.print(f"restore into a new, empty directory: {safe(restore)}  (each directory under "
              "its own name; keys stay 0600; the passwords are not in the archive)")
    err.print("  never over a live directory: an older state.json undoes the CA's revocations "
              "since and reuses trust-list numbers; an older ledger.sqlite forgets the "
              "credentials issued since")
    raise typer.Exit(int(Exit.OK))
