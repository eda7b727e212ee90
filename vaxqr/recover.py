"""Finishing a ``vaxqr certs issue`` that a kill or a power cut interrupted.

A signer directory is written into a hidden sibling ``.NAME.new-PID-XXXXXXXX@HOST`` and
renamed into place after the CA's ``state.json`` records its certificate; a renewal in place
(``--force``) first moves the old directory aside as ``.NAME.old-PID-XXXXXXXX@HOST`` and its
office ledger and ``trust/`` into the new one (:func:`vaxqr.cadir._commit_dir`). A kill
between those steps left the commune with no signer directory, or with its register (the
citizens it issued to) in a hidden directory that the next run did not look at: that run
made a new directory without it, and the next batch signed those citizens again.

:func:`finish_interrupted`, run before a signer is issued into the same place, completes or
undoes what such a run left, under the CA's lock (so never while a run commits): a prepared
directory whose certificate the state records is moved into place, as the run would have
done; one it does not record (killed before that) is removed, its key never certified; a
directory moved aside goes back in place if nothing replaced it, and gives its office
ledger and ``trust/`` to the one that did. What a run on another computer left (its HOST,
on a folder shared over the network) is refused, whatever its pid: that run may be going.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from .cadir import (
    SIGNER_KEPT,
    SIGNER_LEDGER,
    IssuedCert,
    _commit_dir,
    _drop_prepared,
    _locked,
    open_ca,
    signer_commune,
    this_host,
)
from .certinfo import load_certificates
from .errors import StorageError, VaxqrError
from .fileio import _fsync_dir

# (without "@HOST": a run of vaxqr before the computer was named, taken as this one's)
_LEFT = re.compile(r"\.(?P<name>.+)\.(?P<what>new|old)-(?P<pid>\d+)-[0-9a-f]{8}"
                   r"(?:@(?P<host>[A-Za-z0-9-]+))?")


@dataclass(frozen=True)
class Finished:
    """What :func:`finish_interrupted` did: the certificate it moved into place (None when
    none), and one sentence per step, for the user."""

    placed: IssuedCert | None
    notes: tuple[str, ...]
    # what the placed one kept of the directory it renews (names in SIGNER_KEPT): not the
    # trust/ it prepared itself when that directory had none
    kept: tuple[str, ...] = ()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _leftovers(target: Path) -> dict[int, dict[str, Path]]:
    """``pid → {"new"|"old": directory}`` of the runs into ``target`` that are not running.
    Only this user's directories: another user's (anyone who may write beside ``target``
    can make one, with a certificate the trust list publishes) is no run of this user's to
    finish, nor to remove. One that a run on another computer left (a folder shared over
    the network), running there or not, is refused: its pid says nothing here."""
    found: dict[int, dict[str, Path]] = {}
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return found
    me = os.geteuid()
    elsewhere: list[tuple[Path, str, int]] = []
    for e in entries:
        m = _LEFT.fullmatch(e.name)
        if m is None or m["name"] != target.name or not e.is_dir(follow_symlinks=False):
            continue
        try:
            if e.stat(follow_symlinks=False).st_uid != me:
                continue
        except OSError:
            continue
        pid = int(m["pid"])
        if m["host"] is not None and m["host"] != this_host():
            elsewhere.append((Path(e.path), m["host"], pid))
        if pid != os.getpid() and not _alive(pid):
            found.setdefault(pid, {})[m["what"]] = Path(e.path)
    if elsewhere:
        raise _elsewhere(target, sorted(elsewhere))
    return found


def _elsewhere(target: Path, left: list[tuple[Path, str, int]]) -> StorageError:
    """The refusal of what runs on other computers left beside ``target`` (``left``:
    directory, computer, pid)."""
    hosts = sorted({host for _, host, _ in left})
    where = " and ".join(hosts)
    runs = ", ".join(f"{p.name} (process {pid} on {host})" for p, host, pid in left)
    renames = "; ".join(f"{p.name} to {p.name.rpartition('@')[0]}" for p, _, _ in left)
    return StorageError(
        f"a vaxqr certs issue into {target} on the computer {where}, which may still be "
        f"running there, left {runs} in {target.parent}: it is not finished or removed from "
        f"this computer ({this_host()})",
        hint=f"run the same vaxqr certs issue on {where} (it finishes what its run left, once "
             f"that run has ended); only if that computer cannot, rename {renames}, and run "
             "this command here again")


def _recorded(ca_issued: tuple[IssuedCert, ...], prepared: Path) -> IssuedCert | None:
    try:
        cert = load_certificates(prepared / "signer.crt")[0]
    except (VaxqrError, ValueError, IndexError):
        return None
    return next((r for r in ca_issued if r.kind == "dsc" and r.certificate == cert), None)


def _vacant(target: Path) -> bool:
    return not target.exists() or (target.is_dir() and not any(target.iterdir()))


def _give_kept(old: Path, target: Path, *, prepared: bool = False) -> list[str]:
    """Move the office ledger and ``trust/`` from ``old`` into ``target`` where it has none,
    or, ``prepared`` (the run's new directory, not yet in place), over what it prepared
    (the CA's CRL in trust/: the office's own wins, as :func:`vaxqr.cadir._commit_dir`)."""
    moved = []
    for name in SIGNER_KEPT:
        if (old / name).exists() and (prepared or not (target / name).exists()):
            if prepared:
                _drop_prepared(target / name)
            os.rename(old / name, target / name)
            moved.append(name)
    return moved


def finish_interrupted(target: Path, ca_dir: Path) -> Finished:
    """Complete or undo what interrupted ``certs issue`` runs into ``target`` left (see the
    module documentation). Best effort on a directory that cannot be listed."""
    left = _leftovers(target)
    if not left:
        return Finished(None, ())
    placed: IssuedCert | None = None
    kept: list[str] = []
    notes: list[str] = []
    open_ca(ca_dir)  # a CA directory (its lock file is made nowhere else)
    with _locked(ca_dir):
        issued = open_ca(ca_dir).issued
        for _pid, dirs in sorted(left.items()):
            new, old = dirs.get("new"), dirs.get("old")
            record = _recorded(issued, new) if new is not None else None
            if new is None or record is None:
                pass
            elif _vacant(target):
                kept = [] if old is None else _kept_of(old, new)  # (none old: a first issue)
                os.rename(new, target)  # over at most an empty directory
                placed = record
            elif _renewed_by(target, new, record, issued):
                # killed before the old directory was moved aside: the renewal, as it was
                kept = [n for n in SIGNER_KEPT if os.path.lexists(target / n)]
                _commit_dir(new, target, force=True, kind="signer", keep=SIGNER_KEPT)
                placed = record
            if record is not None and placed is record:
                notes.append(
                    f"an interrupted vaxqr certs issue into {target} was completed: its "
                    f"certificate (serial {record.serial:x}), which {ca_dir}/state.json "
                    "records, is now in place (its key has the password given to that run)"
                    + _with_kept(kept))
                new = None
            if old is not None and _vacant(target):
                os.rename(old, target)
                notes.append(f"{target}, moved aside by an interrupted vaxqr certs issue "
                             "--force, is back in place")
                old = None
            if new is not None and record is None:
                # killed before its certificate was recorded, so before anything of the
                # directory it renews was moved into it: its trust/ is the CA's CRL that it
                # prepared, not the office's (given to the directory, it was then kept as
                # the office's own, and "kept" said so)
                _drop_prepared(new / "trust")
            for aside in (new, old):  # its key never served, or was replaced: no use left
                if aside is not None:
                    notes.extend(_drop(aside, target))
        _fsync_dir(target.parent)
    return Finished(placed, tuple(notes), tuple(kept))


def _kept_of(old: Path, new: Path) -> list[str]:
    """Move what the renewal's prepared ``new`` keeps of the directory ``old`` it renews
    into it (:func:`_give_kept`); return what ``new`` now holds of ``old``'s: what was just
    moved, and the office ledger the killed run had moved already (nothing prepares one).
    A trust/ the killed run moved is not told from the CA's CRL that it prepares when
    ``old`` has none: not said to be kept (the report would be false for the prepared
    one)."""
    moved = _give_kept(old, new, prepared=True)
    return [*moved, *(n for n in SIGNER_LEDGER if n not in moved and (new / n).exists())]


def _with_kept(kept: list[str]) -> str:
    """", with the office ledger and trust/ of the directory it renews", as far as true."""
    parts = [what for what, names in (("the office ledger", SIGNER_LEDGER), ("trust/", ("trust",)))
             if any(n in kept for n in names)]
    return f", with {' and '.join(parts)} of the directory it renews" if parts else ""


def _renewed_by(target: Path, new: Path, record: IssuedCert,
                issued: tuple[IssuedCert, ...]) -> bool:
    """Whether ``new`` (recorded as ``record``) renews the signer in ``target``: the same
    commune's, with a certificate issued before it (or not recorded by this CA)."""
    if not target.is_dir() or signer_commune(target) != signer_commune(new):
        return False
    current = _recorded(issued, target)
    return current is None or current.issued_at <= record.issued_at


def _drop(aside: Path, target: Path) -> list[str]:
    """Remove a directory left aside, once its office ledger and ``trust/`` are back in
    ``target`` (the same commune's); kept, with nothing removed, otherwise."""
    notes = []
    if target.is_dir() and signer_commune(target) == signer_commune(aside):
        moved = _give_kept(aside, target)
        if moved:
            notes.append(f"{', '.join(moved)} of {target}, left aside by an interrupted "
                         "vaxqr certs issue, moved back into it")
    if not any((aside / n).exists() for n in SIGNER_KEPT):
        shutil.rmtree(aside, ignore_errors=True)
    return notes
