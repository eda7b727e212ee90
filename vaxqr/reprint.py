"""Finding a credential the office issued, to write it again (a lost or damaged card).

A citizen who lost their card comes back with their ID card, not their credential: the
office's citizen register (the signer directory's ``ledger.sqlite``) knows, by ID number,
which credential holds their latest dose and where it was issued; the ledger of that
place (the signer directory's for a single issue, the batch's OUT_DIR's for a batch)
holds its ``HC1:`` text. Writing it again signs nothing: the citizen keeps one credential
(SPEC §4), the one the office's records and any revocation name. No key is opened, so no
password is asked, and what only signing needs (time left on the certificate) is not
checked; :func:`check_reprint` asks instead what a checkpoint would: is the credential, or
the certificate that signed it, revoked or no longer valid, as far as the trust material on
this machine tells.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509

from . import citizen
from .certinfo import name_str
from .certs import load_signer_certificate
from .errors import (
    KeyCertError,
    StorageError,
    TrustError,
    ValidationError,
    VaxqrError,
    VerificationError,
)
from .ledger import PLACE_SINGLE, Claim, Entry, Ledger, Register, hc1_digest
from .safetext import row_label
from .trustlist import TrustList, credential_revocation_hash, verify_trustlist

_ID = re.compile(r"\d{12}")
_LEDGER = "ledger.sqlite"
_BEFORE_REGISTER = ("A credential from a batch issued before this office's register existed "
                    "(an older vaxqr) enters it when you run that batch's command again (the "
                    "same --from CSV and --out: nothing is signed); one from a single issue "
                    "then, when you issue the same record again (the same options: the same "
                    "credential is written, nothing is signed)")
_REISSUE = "the citizen needs a new credential: the single issue with their record and --reissue"


@dataclass(frozen=True, kw_only=True)
class Found:
    """A credential found again: its ledger entry, the register's claim (who, which dose,
    where) and the ledger file that holds it."""

    entry: Entry
    claim: Claim
    ledger: Path

    @property
    def expires(self) -> datetime:
        return datetime.fromtimestamp(self.entry.exp, UTC)


def _claim(register: Register, ref: str) -> Claim:
    """The register's claim for ``ref``: a 12-digit ID number or a UVCI."""
    text = ref.strip()
    if _ID.fullmatch(text):
        claim = register.lookup([citizen.citizen_key(text)]).get(citizen.citizen_key(text))
        if claim is None:
            raise ValidationError(
                f"no credential for ID number {text} in this office's register",
                hint="check the number on the citizen's ID card; a credential issued by "
                     f"another commune is reprinted there. {_BEFORE_REGISTER}")
        return claim
    if text.upper().startswith("URN:UVCI:"):
        claim = register.claim_of(text)
        if claim is None:
            raise ValidationError(
                f"{text} is not a citizen's latest credential in this office's register",
                hint="give the citizen's 12-digit ID number instead: the register finds "
                     "their latest credential by it")
        return claim
    raise ValidationError(f"--reprint {text!r}: give the citizen's 12-digit ID number or a "
                          "UVCI (URN:UVCI:01:VN:…)")


def find_issued(signer_dir: str | Path, ref: str, *, now: datetime | None = None,
                certificate: x509.Certificate | None = None) -> Found:
    """The credential the office issued for ``ref`` (a citizen's 12-digit ID number, or the
    UVCI of their latest credential), from the signer directory's register and the ledger
    of the place it was issued. Nothing is written.

    The text found is checked (:func:`_check_text`): it must be the credential the register
    names (its UVCI, signed), and one signed by the key id its ledger records; when that is
    ``certificate``'s (the office's signer certificate), its signature must verify. A batch's
    ledger is in its OUT_DIR, outside the signer directory: another credential put there
    (another citizen's, or one signed by a key no trust list names) would otherwise be
    printed on this citizen's card. The register records the key id and the SHA-256 of the
    text the office signed (an entry of an older vaxqr's register lacks them, and keeps the
    checks above): the text must be that one.

    Raises:
        ValidationError: no such citizen or credential.
        VerificationError: it has expired (a new one must be signed): the CLI's exit 1.
        StorageError: the register or the batch's ledger cannot be read, or no longer holds
            the credential (the batch directory was moved or deleted; a batch that was
            interrupted before recording it), or holds another text under its UVCI.
    """
    home = Path(signer_dir)
    if not (home / _LEDGER).is_file():
        raise StorageError(f"{home} has no {_LEDGER}: this office's register holds no "
                           "credential yet", hint=_BEFORE_REGISTER)
    try:
        with Register(home / _LEDGER, read_only=True) as register:
            claim = _claim(register, ref)
            if claim.place == PLACE_SINGLE:
                path = home / _LEDGER
                entry = register.find(claim.uvci)
            else:
                path = _batch_ledger(home, claim)
                try:
                    with Ledger(path, read_only=True) as ledger:
                        entry = ledger.find(claim.uvci)
                finally:
                    _drop_side_files(path)
    finally:
        _drop_side_files(home / _LEDGER)
    if entry is None:
        raise StorageError(
            f"{claim.uvci} is claimed in {path} but not recorded: its batch was interrupted "
            "before signing it",
            hint=(f"run that batch again (vaxqr issue --from {claim.source} --out "
                  f"{claim.place}) to finish it" if claim.place != PLACE_SINGLE else None))
    _check_text(entry, claim, path, certificate, home / _LEDGER)
    found = Found(entry=entry, claim=claim, ledger=path)
    when = now or datetime.now(UTC)
    if found.expires <= when:
        raise VerificationError(
            f"{claim.uvci} expired on {found.expires:%Y-%m-%d}: reprinting it gives a card "
            "that checkpoints refuse", step="expiry",
            hint="sign a new credential: the single issue with the citizen's record and "
                 "--reissue")
    return found


# SQLite's locks (its unix VFS): a connection to a WAL database holds a read lock on the
# database file's lock bytes (PENDING, RESERVED, SHARED) and on its -shm while it is open;
# the last one to close takes them for writing before it removes -wal and -shm.
_SQLITE_LOCK_BYTES = (0x40000000, 2 + 510)


def _drop_side_files(db: Path) -> None:
    """Remove the -wal (empty) and -shm beside the ledger ``db`` when no connection has it
    open, as SQLite's last connection does when it closes: a read-only one cannot, and a
    read-only open makes both in a directory that can be written (every reprint left
    them). Left alone when it is open anywhere: in this process (a descriptor of one of
    the files: closing one of ours would drop its connection's locks, so nothing is opened
    then), by another process (a lock on one of them in /proc/locks, or the database
    file's lock bytes taken); when the -wal holds records (its writer's, or a killed one's,
    to fold in); where /proc cannot tell or the lock cannot be had. Best effort."""
    wal, shm = db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")
    try:
        files = {(st.st_dev, st.st_ino) for st in
                 (os.stat(f) for f in (db, wal, shm) if os.path.lexists(f))}
        if len(files) < 2 or (os.path.lexists(wal) and wal.stat().st_size):
            return
        for n in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError):  # (the listing's own descriptor, gone)
                st = os.stat(f"/proc/self/fd/{n}")
                if (st.st_dev, st.st_ino) in files:
                    return
        # the inodes of MAJ:MIN:INODE (the device is left out: some file systems, btrfs
        # for one, give another there than stat does)
        with open("/proc/locks", encoding="ascii") as fh:
            held = {field.rpartition(":")[2] for line in fh
                    for field in line.split() if field.count(":") == 2}
        if any(str(ino) in held for _, ino in files):
            return
        fd = os.open(db, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, _SQLITE_LOCK_BYTES[1],
                    _SQLITE_LOCK_BYTES[0])
        if not os.path.lexists(wal) or wal.stat().st_size == 0:  # (none began to write)
            for f in (wal, shm):
                with contextlib.suppress(FileNotFoundError):
                    f.unlink()
    except OSError:
        pass
    finally:
        os.close(fd)  # (releases the lock)


def _batch_ledger(home: Path, claim: Claim) -> Path:
    """The ledger of the batch where ``claim`` was issued: in its OUT_DIR, else in a
    directory of the same name beside the signer directory ``home`` (an office moved to
    another computer: a `vaxqr backup` archive restores its directories side by side, under
    their names), which :func:`_check_text` then holds to the claim like any other."""
    path = Path(claim.place) / _LEDGER
    if path.is_file():
        return path
    beside = home.resolve().parent / Path(claim.place).name / _LEDGER
    if beside.is_file():
        try:
            with Ledger(beside, read_only=True) as ledger:
                if ledger.find(claim.uvci) is not None:
                    return beside
        finally:
            _drop_side_files(beside)
    raise StorageError(
        f"{claim.uvci} was issued in {claim.place} ({claim.source} {row_label(claim.row)}), "
        f"and {path} is not there, nor beside {home}",
        hint=f"put that batch directory back where it was, or beside {home} under its name "
             f"{Path(claim.place).name} (as a restored vaxqr backup archive puts it), and run "
             "this again")


def _check_text(entry: Entry, claim: Claim, path: Path,
                certificate: x509.Certificate | None, register: Path) -> None:
    """Refuse (:class:`StorageError`) a ledger entry whose ``HC1:`` text is not the
    credential ``claim`` names: unreadable, another UVCI, another key id than the entry's
    or the one the office's ``register`` records, signed by ``certificate``'s key id a
    signature that does not verify, or a text whose SHA-256 is not the one the register
    records (when it records them: an entry of an older register does not)."""
    from .certinfo import kid_of
    from .credential import summary
    from .sign import check_headers, parse_cwt

    where, hint = _where(path, claim), _ALTERED
    try:
        msg = _sign1(entry)
        _alg, kid = check_headers(msg)
        cwt = parse_cwt(msg.payload)
        uvci = summary(cwt.hcert).get("uvci")
    except (VaxqrError, ValueError, TypeError, RecursionError) as exc:
        raise StorageError(f"{where} holds text under {claim.uvci} that cannot be read as "
                           f"a credential: {exc}", hint=hint) from exc
    if not isinstance(uvci, str) or uvci.upper() != claim.uvci.upper():
        raise StorageError(f"{where} holds {uvci!s:.80}, not {claim.uvci}, under that UVCI: "
                           "it is not this citizen's credential", hint=hint)
    if cwt.exp != entry.exp:  # (the expiry said and checked is the ledger's column)
        raise StorageError(f"{where}: {claim.uvci} expires at {cwt.exp}, not at {entry.exp} "
                           "as recorded", hint=hint)
    if kid.hex() != entry.kid:
        raise StorageError(f"{where}: {claim.uvci} is signed with key id {kid.hex()}, not "
                           f"{entry.kid} as recorded", hint=hint)
    if claim.kid and kid.hex() != claim.kid:
        raise StorageError(f"{where}: {claim.uvci} is signed with key id {kid.hex()}, not "
                           f"{claim.kid} as this office's register ({register}) records",
                           hint=hint)
    if certificate is not None and kid == kid_of(certificate):
        _verify(entry, claim, path, certificate, "this office's certificate")
    if claim.hc1_sha256 and hc1_digest(entry.hc1) != claim.hc1_sha256:
        raise StorageError(f"{where} holds a text under {claim.uvci} that is not the one this "
                           f"office signed: its SHA-256 is not the one this office's register "
                           f"({register}) records", hint=hint)


# A batch claim without the digest of its text: its batch stopped between a chunk's ledger
# commit and the register's record of it (Register.record_signed; a run of the batch again
# records it), or the register is an older vaxqr's. The text is then the batch ledger's word
# alone, and that ledger (in OUT_DIR) is what the digest guards against: it is written only
# when its signature verifies with a certificate this office knows (its own, or the one a
# trust list gives for an earlier kid). The digest is not filled in from that ledger here:
# that would make the ledger vouch for itself (and a reprint writes nothing).
_UNCHECKED = ("{uvci} cannot be checked: this office's register has no digest of its text "
              "(its batch stopped before recording it, or the register is from an older "
              "vaxqr), and {where} gives it signed with an earlier certificate of this office "
              "(kid {kid}) that no trust list here gives to verify it with")

_ALTERED = ("restore that ledger from a backup made before it changed, or sign a new "
            "credential (the single issue with --reissue)")


def _where(path: Path, claim: Claim) -> str:
    return f"{path} (the ledger of {_place(claim)})"


def signed_by(entry: Entry, uvci: str, certificate: x509.Certificate) -> bool:
    """Whether ``entry``'s ``HC1:`` text is ``uvci``'s credential signed with
    ``certificate``'s key (its UVCI, key id and signature), as a batch run again checks a
    text of its ledger before the register records its digest (:mod:`vaxqr.issue`)."""
    from .certinfo import kid_of
    from .credential import summary
    from .sign import check_headers, parse_cwt, verify_signature

    try:
        msg = _sign1(entry)
        alg, kid = check_headers(msg)
        found = summary(parse_cwt(msg.payload).hcert).get("uvci")
        if kid != kid_of(certificate) or not isinstance(found, str) \
                or found.upper() != uvci.upper():
            return False
        key: Any = certificate.public_key()
        verify_signature(msg, key, alg)
    except (VaxqrError, ValueError, TypeError, RecursionError):
        return False
    return True


def _sign1(entry: Entry) -> Any:
    from .codec import b45decode, decompress, strip_prefix
    from .sign import parse_sign1

    return parse_sign1(decompress(b45decode(strip_prefix(entry.hc1))))


def _verify(entry: Entry, claim: Claim, path: Path, certificate: x509.Certificate,
            whose: str) -> None:
    """Refuse (:class:`StorageError`) ``entry``'s text (read by :func:`_check_text`
    already) when its signature does not verify with ``certificate`` (``whose``)."""
    from .sign import check_headers, verify_signature

    msg = _sign1(entry)
    key: Any = certificate.public_key()  # an EC or RSA key: a DSC's (check_headers)
    try:
        verify_signature(msg, key, check_headers(msg)[0])
    except VaxqrError as exc:
        raise StorageError(f"{_where(path, claim)}: the signature of {claim.uvci} does not "
                           f"verify with {whose} ({exc}): it was altered",
                           hint=_ALTERED) from exc


def _place(claim: Claim) -> str:
    return ("a single issue" if claim.place == PLACE_SINGLE
            else f"the batch {claim.place}, {claim.source} {row_label(claim.row)}")


def check_reprint(signer_dir: str | os.PathLike[str], found: Found, *,
                  trust: Iterable[str | os.PathLike[str]] = (), at: datetime | None = None
                  ) -> tuple[str, ...]:
    """Would checkpoints still accept ``found``, as far as this office can tell without its
    key? The office's certificate is checked as for signing (:mod:`vaxqr.signercheck`,
    without the time-left rules: nothing is signed), with the revocation files of
    ``SIGNER_DIR/trust/`` and ``trust``; the province's trust lists among them are asked
    whether they revoke the credential itself, or the earlier certificate of this office
    that signed it. Returns warnings (what cannot be told here, out-of-date files).

    Raises:
        KeyCertError, TrustError: the certificate that signed the credential is revoked, or
            no longer valid (chain, CA): checkpoints refuse it; or a CRL or trust list
            cannot be read (as for signing: :mod:`vaxqr.trustfiles`).
        VerificationError: the province revoked the credential itself (the CLI's exit 1).
        StorageError: a credential of an earlier certificate, which a trust list gives,
            does not verify with it (its ledger's text was altered).
    """
    from .signercheck import check_signer_dir, checked_crls, crl_revokes, revocation_sources
    from .trustfiles import read_trust_material

    at = at or datetime.now(UTC)
    home = Path(signer_dir)
    office = load_signer_certificate(home)
    # a damaged CRL or trust list refuses (its revocations must not be dropped) as it does
    # a signing, as itself: it says nothing of this credential, and a new one would be
    # refused the same way; so does a CRL of the office's CA that cannot be checked
    material = read_trust_material(revocation_sources(home, trust))
    checked_crls(material.crls, office.chain[1:])
    uvci = found.claim.uvci
    current = found.entry.kid == office.kid.hex()
    warnings: list[str] = []
    try:
        check = check_signer_dir(home, at=at, trust=trust, signing=False)
        warnings += check.warnings
        cas: Sequence[x509.Certificate] = check.chain[1:]
    except KeyCertError as exc:
        if current:
            raise type(exc)(f"{uvci} is not reprinted: {exc.message}",
                            hint=f"{exc.hint}; {_REISSUE}" if exc.hint else _REISSUE) from exc
        warnings.append(f"this office's current certificate: {exc.message} ({uvci} was signed "
                        "with an earlier one)")
        cas = office.chain[1:]
    lists = _trust_lists(material.trustlists, cas, at)
    for tl, path in lists:
        if credential_revocation_hash(uvci) in tl.revoked_credentials:
            raise VerificationError(
                f"{uvci} has been revoked by the province ({path}, sequence {tl.sequence}): "
                "checkpoints refuse it", step="revocation", hint=_REISSUE)
    if current:  # (find_issued verified it only when given the certificate)
        _verify(found.entry, found.claim, found.ledger, office.certificate,
                "this office's certificate")
        return tuple(warnings)
    kid = bytes.fromhex(found.entry.kid)
    for tl, path in lists:
        if any(e.get("kid") == base64.b64encode(kid).decode() for e in tl.revoked_dscs):
            raise TrustError(
                f"{uvci} was signed with an earlier certificate of this office (kid "
                f"{found.entry.kid}), which has been revoked ({path}, sequence "
                f"{tl.sequence}): checkpoints refuse it", hint=_REISSUE)
    # the earlier certificate (as the trust lists give it) revoked by a CRL of the CA since
    # those lists were made: a checkpoint given that CRL refuses its credentials
    crls, _ = checked_crls(material.crls, cas)
    earlier = [e.certificate for tl, _ in lists for e in tl.dscs if e.kid == kid]
    revoked = crl_revokes(crls, [*earlier, *(a for c in earlier for a in _above(c, cas))])
    if revoked is not None:
        which = "which" if revoked[0] in earlier else \
            f"whose CA {name_str(revoked[0].subject)}"
        raise TrustError(
            f"{uvci} was signed with an earlier certificate of this office (kid "
            f"{found.entry.kid}), {which} has been revoked ({revoked[1]}): checkpoints "
            "given that CRL refuse it", hint=_REISSUE)
    listed = next(iter(earlier), None)
    if listed is not None:  # what a checkpoint verifies it with
        _verify(found.entry, found.claim, found.ledger, listed,
                "the earlier certificate the province's trust list gives for its kid")
        return tuple(warnings)
    if found.claim.place != PLACE_SINGLE and not found.claim.hc1_sha256:
        raise StorageError(_UNCHECKED.format(uvci=uvci, where=_where(found.ledger, found.claim),
                                             kid=found.entry.kid),
                           hint=f"put the province's trust list that lists that certificate "
                                f"in {home / 'trust'} (or give it with --trust) and run this "
                                f"again; or {_REISSUE}")
    said = (f"the province's trust list ({', '.join(str(p) for _, p in lists)}) does not "
            "list it: checkpoints using that list refuse the credential; if so, "
            f"{_REISSUE}" if lists else "no trust list in SIGNER/trust/ tells whether "
            "checkpoints still trust it")
    warnings.append(f"{uvci} was signed with an earlier certificate of this office (kid "
                    f"{found.entry.kid}): it stays valid while checkpoints trust that "
                    f"certificate; {said}")
    return tuple(warnings)


def _above(certificate: x509.Certificate, cas: Sequence[x509.Certificate]
           ) -> list[x509.Certificate]:
    """The CAs of ``cas`` above ``certificate`` (its issuer, that one's, ...), by name, up
    to a self-signed root (left out: no CRL revokes it)."""
    above: list[x509.Certificate] = []
    name = certificate.issuer
    while (ca := next((c for c in cas if c.subject == name and c not in above), None)) \
            is not None and ca.issuer != ca.subject:
        above.append(ca)
        name = ca.issuer
    return above


def _trust_lists(read: Iterable[tuple[TrustList, str]], cas: Sequence[x509.Certificate],
                 at: datetime) -> list[tuple[TrustList, Path]]:
    """The trust lists ``read`` (:func:`vaxqr.trustfiles.read_trust_material`'s) signed by
    one of ``cas`` (the office's province CA, its root); the others (and CRLs) were named
    by the signer check already."""
    found = []
    for tl, source in read:
        try:
            found.append((verify_trustlist(tl, cas, at=at, source=source), Path(source)))
        except TrustError:
            continue
    return found
