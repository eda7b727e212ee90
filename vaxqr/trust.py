"""The verifier's trust: :class:`TrustStore` and the signers it accepts.

:class:`TrustStore` loads certificates, CRLs and trust lists (files or directories),
checks trust-list signatures and rollback (the highest sequence seen per CA is kept in a
state file), validates DSC chains (:mod:`vaxqr.chain`) and answers the verifier's
questions: which DSCs have this kid, is this DSC or credential revoked.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import fcntl
import functools
import json
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

from .certinfo import (
    _aware,
    _dump_json,
    _name_attr,
    _read_file,
    _unb64,
    _utcnow,
    fingerprint,
    is_ca_certificate,
    iso,
    kid_of,
    name_str,
    public_key,
    spki_sha256,
)
from .chain import _clamp, validate_chain
from .errors import KeyCertError, StorageError, TrustError
from .fileio import atomic_write, ensure_dir
from .keys import PublicKey, _public_key
from .trustfiles import open_to_others, read_trust_material
from .trustlist import (
    SignerNotValid,
    TrustList,
    credential_revocation_hash,
    verify_trustlist,
)


@dataclass(frozen=True)
class TrustedSigner:
    """A DSC the verifier accepts signatures from."""

    certificate: x509.Certificate
    public_key: PublicKey
    kid: bytes
    chain: tuple[x509.Certificate, ...]  # DSC first; just the DSC when trusted as given
    source: str
    revoked: bool = False
    chain_validated: bool = False
    is_ca: bool = False  # a CA certificate used directly as a signer (EU test data, LV)
    revoked_reason: str = ""  # why it is revoked: itself, or a CA on its chain


def default_state_file() -> Path:
    """``$XDG_STATE_HOME/vaxqr/trustlists.json`` (default ``~/.local/state/vaxqr/…``)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "vaxqr" / "trustlists.json"


_KEY_AT_CHECKPOINT = "a checkpoint needs only certificates and trust lists; remove it from " \
    "this machine"


_OPEN_RISK = ("a signer certificate added there is trusted, a revocation taken away is "
              "forgotten")


@dataclass(frozen=True)
class TrustStore:
    """Trusted DSCs, CA anchors, revocations and the warnings met while loading them."""

    signers: tuple[TrustedSigner, ...]
    anchors: tuple[x509.Certificate, ...]
    trustlists: tuple[TrustList, ...]
    revoked_credential_hashes: frozenset[bytes]
    revoked_fingerprints: frozenset[str]
    revoked_kids: frozenset[bytes]
    at: dt.datetime
    warnings: tuple[str, ...] = ()
    revocation_sources: tuple[str, ...] = ()  # verified trust lists and CRLs
    unusable_kids: tuple[tuple[bytes, str], ...] = ()  # DSCs of lists set aside, and why

    @property
    def has_revocation_data(self) -> bool:
        """A signed trust list or CRL was loaded, so revocation can be checked."""
        return bool(self.revocation_sources)

    @classmethod
    def from_paths(
        cls,
        paths: Iterable[str | os.PathLike[str]],
        *,
        at: dt.datetime,
        state_file: str | os.PathLike[str] | None = None,
        allow_rollback: bool = False,
    ) -> TrustStore:
        """Load certificate files (PEM/DER, bundles), CRLs, trust lists, or directories.

        A DSC given directly is trusted as it is (only its DER, key and validity are used),
        unless a given CA issued it, in which case its chain is validated. A CA certificate
        is an anchor. A trust list must be signed by an anchor (or a CA in it chaining to
        one); its DSCs are validated by chain; an expired list is usable with a warning; a
        lower sequence number than the highest seen for that CA (kept in ``state_file``,
        default :func:`default_state_file`) is refused unless ``allow_rollback``. A CA
        certificate that issued nothing given here and signed no list is also taken as a
        signer as it is (the EU test data's LV files are signed with the CSCA itself).

        Chains are validated at ``at`` clamped into the DSC's own validity period, so an
        expired DSC is still found by kid and the verifier's expiry step reports it.
        Only a trust list's DSCs issued by the CA that signed the list are taken.
        Files of a directory that are no trust material are passed over, but a trust list
        or CRL there that cannot be read raises, as a named one does (its revocations
        must not be dropped in silence).
        """
        paths = list(paths)
        material = read_trust_material(paths)
        key_warnings = [
            f"{k.path} holds a private key beside its certificates: a checkpoint needs only "
            "certificates and trust lists; keep only the certificates on this machine"
            if k.beside_certificates else f"{k.path} is a private key: {_KEY_AT_CHECKPOINT}"
            for k in material.private_keys]
        key_warnings += open_to_others([Path(p) for p in paths], material.files,
                                       "what this checkpoint trusts", _OPEN_RISK)
        store = cls._build(
            list(material.certificates), list(material.crls), list(material.trustlists),
            at=at, allow_rollback=allow_rollback,
            state_file=Path(state_file) if state_file is not None else None,
        )
        if key_warnings:
            store = dataclasses.replace(store, warnings=(*key_warnings, *store.warnings))
        return store

    @classmethod
    def from_certificates(
        cls, certificates: Iterable[x509.Certificate], *, at: dt.datetime, source: str = "given"
    ) -> TrustStore:
        """A store from certificates in memory (e.g. the EU test data's DSC)."""
        return cls._build([(c, source) for c in certificates], [], [], at=at, state_file=None)

    @classmethod
    def _build(
        cls,
        certs: list[tuple[x509.Certificate, str]],
        crls: list[tuple[x509.CertificateRevocationList, str]],
        lists: list[tuple[TrustList, str]],
        *,
        at: dt.datetime,
        state_file: Path | None,
        allow_rollback: bool = False,
    ) -> TrustStore:
        at = _aware(at)
        warnings: list[str] = []
        anchors: dict[str, x509.Certificate] = {}
        anchor_src: dict[str, str] = {}
        direct: list[tuple[x509.Certificate, str]] = []
        for c, src in certs:
            if is_ca_certificate(c):
                anchors.setdefault(fingerprint(c), c)
                anchor_src.setdefault(fingerprint(c), src)
            else:
                direct.append((c, src))
        anchor_list = list(anchors.values())

        # Trust lists: each signature checked against a CA trusted here. A list whose CA
        # has expired (or is not valid yet) is set aside, its sequence not remembered: the
        # last list of a retired CA may well lie beside its successor's.
        checked: list[tuple[TrustList, str]] = []
        aside: list[TrustList] = []
        unusable: dict[bytes, str] = {}
        for tl, src in lists:
            try:
                checked.append((verify_trustlist(tl, anchor_list, at=at, source=src), src))
            except SignerNotValid as exc:
                warnings.append(f"{exc}: the list is ignored")
                aside.append(tl)
                for e in tl.dscs:  # their credentials fail saying why, not as unknown
                    unusable.setdefault(e.kid, str(exc))
        extra_cas = [c for tl, _ in checked for c in tl.cas]

        # CRLs, from a CA trusted here or carried by a checked list.
        revoked_serials: dict[tuple[bytes, int], str] = {}  # (issuer DER, serial) -> CRL
        crl_sources: list[str] = []
        crl_issuers: set[bytes] = set()  # (DER names)
        for crl, src in crls:
            issuer = next((a for a in [*anchor_list, *extra_cas] if a.subject == crl.issuer), None)
            key = public_key(issuer) if issuer is not None else None
            if key is None or not crl.is_signature_valid(key):  # type: ignore[arg-type]
                warnings.append(f"{src}: CRL ignored, its issuer is not a trusted CA")
                continue
            if crl.next_update_utc is not None and crl.next_update_utc < at:
                nxt = iso(crl.next_update_utc)
                warnings.append(f"{src}: CRL is out of date (next update {nxt})")
            der_issuer = crl.issuer.public_bytes()
            for r in crl:
                revoked_serials.setdefault((der_issuer, r.serial_number), src)
            crl_sources.append(src)
            crl_issuers.add(der_issuer)

        def revoked_by(cert: x509.Certificate) -> str | None:
            """The CRL that revokes ``cert``, if one does."""
            return revoked_serials.get((cert.issuer.public_bytes(), cert.serial_number))

        # Newest list per CA, rollback, expiry. A list signed by a revoked CA is not used:
        # its DSCs are still loaded below, as revoked, so their credentials say why.
        verified: dict[str, TrustList] = {}
        sources: dict[str, str] = {}
        distrusted: list[tuple[TrustList, str]] = []
        for tl, src in checked:
            assert tl.verified_by is not None
            crl_src = revoked_by(tl.verified_by)
            if crl_src is not None:
                warnings.append(
                    f"{src}: ignored, the CA {name_str(tl.verified_by.subject)} that signed it "
                    f"has been revoked ({crl_src}); its DSCs are taken as revoked"
                )
                distrusted.append((tl, src))
                continue
            ident = spki_sha256(tl.verified_by)
            prev = verified.get(ident)
            if prev is not None:
                older, newer = (prev, tl) if prev.sequence <= tl.sequence else (tl, prev)
                warnings.append(
                    f"{sources[ident] if older is prev else src}: ignored, an older list "
                    f"(sequence {older.sequence}) than {newer.sequence} from the same CA"
                )
                if newer is prev:
                    continue
            verified[ident] = tl
            sources[ident] = src
        if verified:
            warnings += _check_rollback(
                verified, sources, state_file or default_state_file(), at, allow_rollback
            )
        for ident, tl in verified.items():
            if tl.expired(at):
                warnings.append(
                    f"{sources[ident]}: trust list expired on {iso(tl.next_update)} "
                    f"(sequence {tl.sequence}); get a newer one from the province"
                )
            if tl.issued > at + dt.timedelta(minutes=5):
                warnings.append(f"{sources[ident]}: trust list issued after the validation time")

        revoked_fps: set[str] = set()
        revoked_kids: set[bytes] = set()
        for tl in verified.values():
            for entry in tl.revoked_dscs:
                revoked_fps.add(entry.get("fingerprint", "").lower())
                with contextlib.suppress(TrustError):
                    revoked_kids.add(_unb64(entry.get("kid"), "kid"))

        signers: dict[str, TrustedSigner] = {}

        def add(cert: x509.Certificate, src: str, validate: bool, is_ca: bool = False) -> None:
            try:  # one unusable certificate (an Ed25519 key, say) is skipped, not fatal
                key = _public_key(cert)
            except KeyCertError as exc:
                warnings.append(f"{src}: certificate {name_str(cert.subject)} skipped: {exc}")
                return
            fp = fingerprint(cert)
            chain: tuple[x509.Certificate, ...] = (cert,)
            if validate:
                try:
                    chain = validate_chain(
                        cert,
                        anchors=anchor_list,
                        intermediates=[*extra_cas, *anchor_list],
                        at=_clamp(at, cert),
                        cert_type=None,
                    )
                except TrustError as exc:
                    warnings.append(f"{src}: not trusted: {exc}")
                    return
            if fp in signers and signers[fp].chain_validated and not validate:
                return
            reason = ""
            if fp in revoked_fps or revoked_by(cert) is not None:
                reason = "the signer certificate has been revoked"
            else:  # a CA on its chain revoked (the DSC itself is the first)
                ca = next((c for c in chain[1:] if revoked_by(c) is not None), None)
                if ca is not None:
                    reason = (f"the CA {name_str(ca.subject)} that issued the signer "
                              "certificate has been revoked")
            signers[fp] = TrustedSigner(
                certificate=cert,
                public_key=key,
                kid=kid_of(cert),
                chain=chain,
                source=src,
                revoked=bool(reason),
                chain_validated=validate,
                is_ca=is_ca,
                revoked_reason=reason,
            )

        loaded = [*((tl, sources[i]) for i, tl in verified.items()), *distrusted]
        for tl, src in loaded:
            for e in tl.dscs:
                if tl.verified_by is not None and e.certificate.issuer != tl.verified_by.subject:
                    warnings.append(
                        f"{src}: DSC {name_str(e.certificate.subject)} ignored, "
                        "it was not issued by the CA that signed the list"
                    )
                    continue
                add(e.certificate, src, True)
        ca_subjects = {a.subject.public_bytes() for a in [*anchor_list, *extra_cas]}
        for c, src in direct:
            issued_by_known_ca = c.issuer.public_bytes() in ca_subjects
            add(c, src, issued_by_known_ca)
        # A CA certificate that issued nothing given here and signed no list is taken as a
        # signer as it is: some EU test data (LV) signs credentials with the CSCA itself.
        issuers = {c.issuer.public_bytes() for c, _ in direct}
        issuers |= {e.certificate.issuer.public_bytes() for tl, _ in loaded for e in tl.dscs}
        issuers |= {
            a.issuer.public_bytes() for a in [*anchor_list, *extra_cas] if a.issuer != a.subject
        }
        issuers |= {c.issuer.public_bytes() for tl in aside for c in tl.cas
                    if c.issuer != c.subject}
        list_signers = {fingerprint(tl.verified_by) for tl, _ in loaded if tl.verified_by}
        list_signers |= {tl.signer_fingerprint for tl in aside}  # CAs, not commune signers
        for fp, a in anchors.items():
            if a.subject.public_bytes() not in issuers and fp not in list_signers:
                add(a, anchor_src[fp], False, is_ca=True)

        if not signers and not anchor_list:
            raise TrustError(
                "no trust material: give DSC or CA certificates, or a trust list with its CA"
            )
        if not signers:
            warnings.append("no signing certificate (DSC) is trusted: no credential can be checked")
        elif all(s.is_ca for s in signers.values()):
            names = ", ".join(_name_attr(s.certificate.subject, NameOID.COMMON_NAME)
                              or name_str(s.certificate.subject) for s in signers.values())
            warnings.append(
                f"only CA certificates are trusted ({names}), and communes sign with their own "
                "certificates: give the province's trust list (trustlist.json) or the "
                "communes' signer.crt with --trust as well, or their credentials cannot be checked"
            )
        # the CAs whose commune certificates (validated up to them) no list or CRL covers:
        # a root's CRL revokes province CAs, and another province's list its own communes
        # (a list set aside as its CA is revoked: its communes are taken as revoked)
        covered = {tl.verified_by.subject.public_bytes() for tl, _ in loaded
                   if tl.verified_by is not None}
        covered |= crl_issuers
        uncovered = {s.certificate.issuer.public_bytes(): s.certificate.issuer
                     for s in signers.values() if s.chain_validated and not s.is_ca
                     and s.certificate.issuer.public_bytes() not in covered}
        if anchor_list and uncovered:
            cas = ", ".join(sorted({_name_attr(n, NameOID.COMMON_NAME) or name_str(n)
                                    for n in uncovered.values()}))
            warnings.append(
                f"no revocation data: no trust list or CRL of {cas} was given, so a revoked "
                "commune certificate or credential is not known here and shows VALID; give the "
                "province's trust list (trustlist.json) with --trust as well")
        return cls(
            signers=tuple(signers.values()),
            anchors=tuple(anchor_list),
            trustlists=tuple(verified.values()),
            revoked_credential_hashes=frozenset(
                h for tl in verified.values() for h in tl.revoked_credentials
            ),
            revoked_fingerprints=frozenset(revoked_fps - {""}),
            revoked_kids=frozenset(revoked_kids),
            at=at,
            warnings=tuple(warnings),
            revocation_sources=(*sources.values(), *crl_sources),
            unusable_kids=tuple(unusable.items()),
        )

    def signers_for_kid(self, kid: bytes) -> tuple[TrustedSigner, ...]:
        """Every trusted DSC with this kid (several may share one; try them all), in order."""
        return self._by_kid.get(kid, ())

    @functools.cached_property
    def _by_kid(self) -> dict[bytes, tuple[TrustedSigner, ...]]:
        # an index instead of a scan per credential: an EU trust list holds ~1,000 DSCs
        index: dict[bytes, list[TrustedSigner]] = {}
        for s in self.signers:
            index.setdefault(s.kid, []).append(s)
        return {kid: tuple(found) for kid, found in index.items()}

    def all_signers(self) -> tuple[TrustedSigner, ...]:
        return self.signers

    def is_credential_revoked(self, uvci: str) -> bool:
        return credential_revocation_hash(uvci) in self.revoked_credential_hashes

    def is_dsc_revoked(self, cert: x509.Certificate) -> bool:
        fp = fingerprint(cert)
        return fp in self.revoked_fingerprints or any(
            s.revoked for s in self.signers if fingerprint(s.certificate) == fp
        )

    def unusable_reason(self, kid: bytes) -> str | None:
        """Why a DSC named only by a trust list set aside (its CA not valid at the
        validation time) is not trusted; None for any other kid."""
        return next((why for k, why in self.unusable_kids if k == kid), None)

    def no_dsc_reason(self) -> str | None:
        """Why this store cannot judge a credential whose key id no trusted certificate
        has: no DSC is trusted at all ("only CA certificates are trusted", which communes
        do not sign with, or "no signer certificate is trusted"); None when one is (an
        unknown key id is then an unknown signer: not valid). The verifier asks only when
        a key id matched nothing."""
        return self._no_dsc_reason

    @functools.cached_property
    def _no_dsc_reason(self) -> str | None:
        if any(not s.is_ca for s in self.signers):
            return None
        return ("only CA certificates are trusted, no commune's signer certificate (DSC)"
                if self.signers else "no signer certificate (DSC) is trusted")

    def is_kid_revoked(self, kid: bytes) -> bool:
        """A DSC with this kid was revoked by a trust list (its certificate is gone from it)."""
        return kid in self.revoked_kids


def _read_state(state_file: Path) -> dict[str, Any]:
    """The rollback state file's JSON object; TrustError when it is damaged."""
    try:
        try:
            loaded = json.loads(_read_file(state_file))
        except RecursionError:
            raise ValueError("its JSON is nested too deeply") from None
        if not isinstance(loaded.get("cas"), dict):
            raise ValueError("no 'cas' object")
        for entry in loaded["cas"].values():  # a CA's entry it cannot read would be
            seq = entry.get("sequence") if isinstance(entry, dict) else None  # overwritten
            if type(seq) is not int or seq < 1 or not isinstance(entry.get("digest"), str):
                raise ValueError("a CA's entry has no sequence number and digest")
        try:  # it is written back, which a lone surrogate (\ud800) would stop
            json.dumps(loaded, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("it holds a \\u escape that is not a character") from None
    except (ValueError, AttributeError) as exc:
        raise TrustError(
            f"the trust-list state file {state_file} is damaged: {exc}",
            hint="fix or delete it (deleting it forgets which lists were seen)",
        ) from exc
    return loaded  # type: ignore[no-any-return]


@contextlib.contextmanager
def _state_lock(state_file: Path) -> Iterator[None]:
    """Hold the rollback state for this process alone: an ``flock`` on ``.NAME.lock``
    beside the state file (the state file itself is replaced on every write, so it cannot
    carry the lock). Without it two checkpoints sharing the file could both read sequence
    3, one remember 5, and the other, writing after it, 4: the list before a revocation
    would then be taken again. Where no lock can be made (a read-only place), this goes on
    without one, as the write that follows then fails and says so."""
    try:
        ensure_dir(state_file.parent, mode=0o700)
        fd = os.open(state_file.parent / f".{state_file.name}.lock",
                     os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except (OSError, StorageError):
        yield
        return
    try:
        _wait_for_lock(fd, state_file)
        yield
    finally:
        os.close(fd)  # releases the lock


STATE_LOCK_WAIT = 10.0
"""Seconds to wait for another process's hold on the state (a read and a write of a small
file take milliseconds): longer means that process is stuck, stopped or hung on a network
file system, and a checkpoint told so beats one that waits in silence for ever."""


def _wait_for_lock(fd: int, state_file: Path) -> None:
    deadline = time.monotonic() + STATE_LOCK_WAIT
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise TrustError(
                    f"the trust-list state {state_file} is held by another process "
                    f"(a lock on .{state_file.name}.lock beside it) for over "
                    f"{STATE_LOCK_WAIT:g} s",
                    hint="another vaxqr verify using this state file is stopped or hung: "
                         "end it, or give this one its own --state") from None
            time.sleep(0.02)
        except OSError:  # a file system without flock: as before
            return


def _check_rollback(
    lists: dict[str, TrustList],
    sources: dict[str, str],
    state_file: Path,
    at: dt.datetime,
    allow_rollback: bool,
) -> list[str]:
    """Refuse a rollback (TrustError); remember each CA's newest list. Returns warnings.
    The state file is read, checked and written under :func:`_state_lock`."""
    with _state_lock(state_file):
        return _check_rollback_locked(lists, sources, state_file, allow_rollback)


def _check_rollback_locked(
    lists: dict[str, TrustList],
    sources: dict[str, str],
    state_file: Path,
    allow_rollback: bool,
) -> list[str]:
    state: dict[str, Any] = {"format": "vaxqr-trustlist-state", "version": 1, "cas": {}}
    if state_file.exists():
        state = _read_state(state_file)
    changed = False
    for ident, tl in lists.items():
        seen = state["cas"].get(ident)  # (each entry checked by _read_state)
        if seen is not None:
            if tl.sequence < seen["sequence"] and not allow_rollback:
                raise TrustError(
                    f"{sources[ident]}: trust list sequence {tl.sequence} is older than "
                    f"{seen['sequence']}, already seen from this CA (rollback refused)",
                    hint="get the current trust list from the province",
                )
            if tl.sequence == seen["sequence"] and tl.digest != seen.get("digest"):
                if not allow_rollback:
                    raise TrustError(
                        f"{sources[ident]}: a different trust list with the same sequence "
                        f"{tl.sequence} was already seen from this CA"
                    )
            if tl.sequence <= seen["sequence"]:
                continue
        assert tl.verified_by is not None
        state["cas"][ident] = {
            "sequence": tl.sequence,
            "digest": tl.digest,
            "subject": name_str(tl.verified_by.subject),
            "seen_at": iso(_utcnow()),
        }
        changed = True
    if changed:
        try:
            ensure_dir(state_file.parent, mode=0o700)
            atomic_write(state_file, _dump_json(state), overwrite=True)
        except StorageError as exc:  # verifying goes on: the lists were checked as above
            return [f"the trust-list state file {state_file} cannot be written ({exc}): "
                    "this list's sequence is not remembered, so rollback to an older list "
                    "is not refused next time; give --state a writable file"]
    return []
