"""The verification pipeline: from a scanned text or picture to a report of named steps.

Steps run in this order, each ``pass``, ``fail`` or ``skipped`` with a message:
``picture, prefix, base45, zlib, cose, cbor, signature, key_usage, expiry, schema,
revocation, holder``. The signature is verified before any content is interpreted; once it
holds, the content checks (key usage, expiry, schema, revocation, holder) all run so that the
report gives every reason, and the first failure is the verdict's reason.
"""

from __future__ import annotations

import json
import json.encoder
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final, Protocol

from . import codec, sign
from .credential import certificate_type, summary, to_jsonable
from .errors import DecodeError, SetupError, ValidationError, VaxqrError, VerificationError
from .safetext import printable_json

STEPS = (
    "picture", "prefix", "base45", "zlib", "cose", "cbor", "signature",
    "key_usage", "expiry", "schema", "revocation", "holder",
)
PASS, FAIL, SKIPPED = "pass", "fail", "skipped"
# The step of an input that gave nothing to verify (a missing file, a directory, an empty
# file or stream): before every step of STEPS, and only in such a report.
INPUT = "input"
# The step of a credential the trust material cannot judge: no trusted certificate has its
# key id and no DSC is trusted at all (only CA certificates, which communes do not sign with,
# or nothing usable). Between "cbor" and "signature", and only in such a report.
TRUST = "trust"
# In the message of a failed "trust" step: the trust list that names the credential's key id
# was loaded but set aside (its CA not valid at the validation time); the renderer then
# gives that reason, not "load the province's trust list" (vaxqr/verdict_text.py).
SET_ASIDE = "a trust list set aside names it"
# The step of a picture in which no QR code could be read (a blurred or partial photo, a
# damaged file, a PDF): nothing was read, so no verdict on a credential. A picture whose
# QR codes were read but hold no credential fails at "prefix", as one such code does.
PICTURE = "picture"
# The failed steps of a report that is no verdict on a credential (CANNOT CHECK: the trust
# material cannot judge it; CANNOT READ: no QR code read): exit 3, never NOT VALID.
NOT_JUDGED: Final = frozenset({TRUST, PICTURE})
# The order of a report's steps when one is missing or added (the slow path of _Run.report)
_ORDER = tuple(n for name in STEPS for n in ((TRUST, name) if name == "signature" else (name,)))
JSON_VERSION = 1

EKU_TYPES = {"1": "t", "2": "v", "3": "r"}
_EKU_PREFIXES = ("1.3.6.1.4.1.1847.2021.1.", "1.3.6.1.4.1.0.1847.2021.1.")
_TYPE_NAMES = {"v": "vaccination", "t": "test", "r": "recovery"}


class Signer(Protocol):
    """What the pipeline needs of a trusted document-signing certificate."""

    @property
    def certificate(self) -> Any: ...
    @property
    def public_key(self) -> Any: ...
    @property
    def kid(self) -> bytes: ...
    @property
    def chain(self) -> Sequence[Any]: ...
    @property
    def revoked(self) -> bool: ...


class Trust(Protocol):
    """What the pipeline needs of a trust store (see :class:`vaxqr.trust.TrustStore`)."""

    def signers_for_kid(self, kid: bytes) -> Sequence[Signer]: ...
    def is_credential_revoked(self, uvci: str) -> bool: ...
    @property
    def has_revocation_data(self) -> bool: ...


# The result classes are read-only value objects: their fields are Final (mypy rejects
# assignments; the compiled build refuses them at run time), and they compare and print by
# their fields as frozen dataclasses did. Plain classes because mypyc compiles them to
# native objects: a frozen dataclass's __init__ (a setattr per field) cost ~1 µs per report.


class _Value:
    """Equality, hash, and copy/pickle by the fields a subclass lists in ``_fields``."""

    __slots__ = ()

    def _fields(self) -> tuple[Any, ...]:
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self) or not isinstance(other, _Value):
            return NotImplemented
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())  # a TypeError for an unhashable field, as dataclasses

    def __reduce__(self) -> tuple[Any, ...]:  # copy and pickle by fields, in both builds
        return (type(self), self._fields())


class Step(_Value):
    """One step of a verification: its name, ``pass``/``fail``/``skipped``, and why."""

    __slots__ = ("message", "name", "status")

    def __init__(self, name: str, status: str, message: str = "") -> None:
        self.name: Final = name
        self.status: Final = status
        self.message: Final = message

    def _fields(self) -> tuple[str, str, str]:
        return (self.name, self.status, self.message)

    def __repr__(self) -> str:
        return f"Step(name={self.name!r}, status={self.status!r}, message={self.message!r})"


# Where the CCCD card's QR of a holder check was read (HolderResult.card_source, and
# "card_source" in --json): from what was given as the ID card, or from a picture that also
# holds a credential (a screenshot can carry anyone's credential beside a card QR that
# anyone can make, so a match there does not show that a card was scanned).
CARD_GIVEN = "id_card"
CARD_IN_CREDENTIAL_PICTURE = "credential_picture"
_CAUTION = ("; but the ID card's QR was read from a picture that also holds a credential, "
            "not from the card itself: check the physical card")


class CardInPicture(_Value):
    """A CCCD card whose QR was read from a picture that also holds a credential (given as
    ``holder`` to :meth:`Verifier.verify_text`): the holder check runs on it as on any
    card, and its result says where the card came from (``credential_picture``)."""

    __slots__ = ("card",)

    def __init__(self, card: Any) -> None:
        self.card: Final = card

    def _fields(self) -> tuple[Any]:
        return (self.card,)

    def __repr__(self) -> str:
        return f"CardInPicture(card={self.card!r})"


class HolderResult(_Value):
    """Outcome of matching a credential to the holder's CCCD card: what the card says
    (``card_name``, ``card_dob`` ISO 8601; never its ID number), which of the compared
    facts differ from the credential's (``mismatched``: ``full_name``, ``dob``, named as
    in :meth:`Report.summary`, in that order), and where the card's QR was read
    (``card_source``: :data:`CARD_GIVEN` or :data:`CARD_IN_CREDENTIAL_PICTURE`)."""

    __slots__ = ("card_dob", "card_name", "card_source", "matched", "mismatched", "reasons")

    def __init__(self, matched: bool, card_name: str, card_dob: str,
                 reasons: tuple[str, ...] = (), card_source: str = CARD_GIVEN,
                 mismatched: tuple[str, ...] = ()) -> None:
        self.matched: Final = matched
        self.card_name: Final = card_name
        self.card_dob: Final = card_dob
        self.reasons: Final = reasons
        self.card_source: Final = card_source
        self.mismatched: Final = mismatched

    def _fields(self) -> tuple[bool, str, str, tuple[str, ...], str, tuple[str, ...]]:
        return (self.matched, self.card_name, self.card_dob, self.reasons, self.card_source,
                self.mismatched)

    def __repr__(self) -> str:
        return (f"HolderResult(matched={self.matched!r}, card_name={self.card_name!r}, "
                f"card_dob={self.card_dob!r}, reasons={self.reasons!r}, "
                f"card_source={self.card_source!r}, mismatched={self.mismatched!r})")


class Report(_Value):
    """Everything one verification found out. ``valid`` only if no step failed."""

    __slots__ = ("claims", "credential", "holder", "label", "payload", "signer", "steps",
                 "warnings")

    def __init__(
        self,
        label: str,
        steps: tuple[Step, ...],
        payload: str | None = None,
        credential: Mapping[str, Any] | None = None,
        claims: Mapping[str, Any] | None = None,
        signer: Signer | None = None,
        holder: HolderResult | None = None,
        warnings: tuple[str, ...] = (),
    ) -> None:
        self.label: Final = label
        self.steps: Final = steps
        self.payload: Final = payload
        self.credential: Final = credential
        self.claims: Final = claims
        self.signer: Final = signer
        self.holder: Final = holder
        self.warnings: Final = warnings

    def _fields(self) -> tuple[Any, ...]:
        return (self.label, self.steps, self.payload, self.credential, self.claims,
                self.signer, self.holder, self.warnings)

    def __repr__(self) -> str:
        return (f"Report(label={self.label!r}, valid={self.valid}, failed={self.failed!r}, "
                f"steps={self.steps!r})")

    @property
    def valid(self) -> bool:
        return not any(s.status == FAIL for s in self.steps)

    @property
    def failed(self) -> str | None:
        return next((s.name for s in self.steps if s.status == FAIL), None)

    @property
    def reason(self) -> str | None:
        return next((s.message for s in self.steps if s.status == FAIL), None)

    def step(self, name: str) -> Step:
        return next(s for s in self.steps if s.name == name)

    def raise_for_failure(self) -> None:
        """The strict call: raise :class:`VerificationError` on the first failed step."""
        if not self.valid:
            raise VerificationError(self.reason or "not valid", step=self.failed or "")

    def summary(self) -> dict[str, Any] | None:
        return summary(self.credential) if self.credential is not None else None

    def to_json(self) -> dict[str, Any]:
        """A plain-JSON view with stable keys (``version`` tells the layout)."""
        out: dict[str, Any] = {
            "version": JSON_VERSION,
            "input": self.label,
            "valid": self.valid,
            "failed": self.failed,
            "reason": self.reason,
            "steps": {s.name: {"status": s.status, "message": s.message} for s in self.steps},
            "payload": self.payload,
            "credential": self.credential,
            "summary": self.summary(),
            "claims": self.claims,
            "signer": _signer_json(self.signer) if self.signer is not None else None,
        }
        if self.holder is not None:
            out["holder"] = {
                "matched": self.holder.matched, "card_name": self.holder.card_name,
                "card_dob": self.holder.card_dob, "reasons": list(self.holder.reasons),
                "card_source": self.holder.card_source,
                "mismatched": list(self.holder.mismatched),
            }
        if self.warnings:
            out["warnings"] = list(self.warnings)
        return out


_encode = json.JSONEncoder(ensure_ascii=False).encode
_encode_str: Callable[[str], str] = json.encoder.encode_basestring
_STEP_JSON: dict[tuple[str, str, str], str] = {}
_STEP_JSON_BY_ID: dict[int, tuple[Step, str]] = {}


def _step_json(step: Step) -> str:
    """``"name": {"status": ..., "message": ...}`` (cached: most steps' texts repeat, and
    most steps are the same objects from one report to the next, found by identity)."""
    hit = _STEP_JSON_BY_ID.get(id(step))
    if hit is not None and hit[0] is step:
        return hit[1]
    key = (step.name, step.status, step.message)
    text = _STEP_JSON.get(key)
    if text is None:
        text = printable_json(
            _encode({step.name: {"status": step.status, "message": step.message}})[1:-1])
        if len(_STEP_JSON) >= 4096:
            _STEP_JSON.clear()
        _STEP_JSON[key] = text
    if len(_STEP_JSON_BY_ID) >= 4096:
        _STEP_JSON_BY_ID.clear()
    _STEP_JSON_BY_ID[id(step)] = (step, text)  # holds the step: its id stays its own
    return text


def _value_json(value: Any) -> str:
    if value is None:
        return "null"
    if type(value) is str:
        return _encode_str(value)
    return _encode(value)


def _one_shot_encoder() -> Callable[[Any], str]:
    """What ``json.dumps(value, ensure_ascii=False)`` runs for a dict or list (the C encoder,
    circular references detected), made once instead of on every call; ``_encode`` where
    Python has no C encoder."""
    make: Any = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - CPython has it
        return _encode
    markers: dict[int, Any] = {}
    encoder = make(markers, json.JSONEncoder().default, _encode_str, None, ": ", ", ", False,
                   False, True)

    def encode(value: Any) -> str:
        try:
            return "".join(encoder(value, 0))
        except BaseException:
            markers.clear()  # a failed call may leave its open containers marked
            raise

    return encode


_encode_one_shot = _one_shot_encoder()


def report_json_text(report: Report, tail: str = "") -> str:
    """``json.dumps(report.to_json(), ensure_ascii=False)`` with what a terminal would not
    print as itself escaped (:func:`vaxqr.safetext.printable_json`: names and issuers are
    anyone's text), built from cached pieces (the steps' and the signer's texts repeat from
    one credential to the next in a stream, and are escaped once, when cached) and one
    encoder call for the rest. tests/test_verify.py, tests/test_hostile.py,
    tests/test_verify_stream.py and the fuzzers check that the two agree. ``tail``, when
    given, is more members (``', "key": value'``, escaped already) put after the others."""
    content = printable_json(_encode_one_shot({
        "payload": report.payload, "credential": report.credential,
        "summary": report.summary(), "claims": report.claims,
    }))  # '{"payload": ..., "claims": ...}': its braces are dropped below
    parts = [
        '{"version": ', str(JSON_VERSION), ', "input": ', printable_json(_encode_str(report.label)),
        ', "valid": ', "true" if report.valid else "false",
        ', "failed": ', _value_json(report.failed),
        ', "reason": ', printable_json(_value_json(report.reason)),
        ', "steps": {', ", ".join([_step_json(st) for st in report.steps]),
        '}, ', content[1:-1],
        ', "signer": ', "null" if report.signer is None else _signer_json_text(report.signer),
    ]
    full = report.to_json() if report.holder is not None or report.warnings else None
    if full is not None:
        for key in ("holder", "warnings"):
            if key in full:
                parts += [", ", _encode_str(key), ": ", printable_json(_encode(full[key]))]
    parts.append(tail)
    parts.append("}")
    return "".join(parts)


def _name(cert: Any) -> str:
    try:
        return str(cert.subject.rfc4514_string())
    except Exception:  # a lenient DSC may have an odd subject; never fail the report on it
        return "(unreadable subject)"


def _issuer_name(cert: Any) -> str:
    """The certificate's own issuer field (for a DSC trusted as given, too: not its subject)."""
    try:
        return str(cert.issuer.rfc4514_string())
    except Exception:
        return "(unreadable issuer)"


_SIGNER_JSON: dict[int, tuple[Signer, dict[str, Any]]] = {}


def _signer_json(signer: Signer) -> dict[str, Any]:
    # Reading names from a certificate costs ~20 µs, more than the rest of a report's JSON;
    # certificates are immutable, so it is done once per signer object (a fresh copy out).
    hit = _SIGNER_JSON.get(id(signer))
    if hit is None or hit[0] is not signer:
        cert = signer.certificate
        facts = {
            "subject": _name(cert),
            "issuer": _issuer_name(cert),
            "kid": signer.kid.hex(),
            "not_before": cert.not_valid_before_utc.isoformat(),
            "not_after": cert.not_valid_after_utc.isoformat(),
            "chain": [_name(c) for c in signer.chain],
        }
        if len(_SIGNER_JSON) >= 1024:
            _SIGNER_JSON.clear()
        hit = _SIGNER_JSON[id(signer)] = (signer, facts)
    out = dict(hit[1])
    out["chain"] = list(out["chain"])
    return out


_SIGNER_TEXT: dict[int, tuple[Signer, str]] = {}


def _signer_json_text(signer: Signer) -> str:
    hit = _SIGNER_TEXT.get(id(signer))
    if hit is None or hit[0] is not signer:
        if len(_SIGNER_TEXT) >= 1024:
            _SIGNER_TEXT.clear()
        hit = _SIGNER_TEXT[id(signer)] = (signer, printable_json(_encode(_signer_json(signer))))
    return hit[1]


_PASSED: dict[tuple[str, str], Step] = {}


class _Run:
    """Mutable state of one verification; becomes a frozen :class:`Report`."""

    __slots__ = ("claims", "credential", "facts", "holder", "label", "payload", "signer",
                 "steps", "warnings")

    def __init__(self, label: str) -> None:
        self.label = label
        self.steps: dict[str, Step] = {}
        self.payload: str | None = None
        self.credential: Mapping[str, Any] | None = None
        self.claims: dict[str, Any] | None = None
        self.signer: Signer | None = None
        self.facts: _CertFacts | None = None  # the signer certificate's, once it verified
        self.holder: HolderResult | None = None
        self.warnings: list[str] = []

    def ok(self, name: str, message: str = "") -> None:
        # Steps are immutable, so the common ones ("prefix: HC1", "cbor: CWT with an EU
        # DCC", ...) are shared rather than rebuilt for every credential of a stream.
        step = _PASSED.get((name, message))
        if step is None:
            step = Step(name, PASS, message)
            if len(_PASSED) < 1024:
                _PASSED[(name, message)] = step
        self.steps[name] = step

    def fail(self, name: str, message: str) -> None:
        self.steps[name] = Step(name, FAIL, message)

    def skip(self, name: str, message: str = "") -> None:
        self.steps[name] = Step(name, SKIPPED, message)

    def report(self, *, applicable: tuple[str, ...], complete: tuple[str, ...] = ()) -> Report:
        steps: tuple[Step, ...]
        ran = tuple(self.steps)
        if ran == applicable or ran == complete:  # every step ran, in order: the common case
            steps = tuple(self.steps.values())
        else:
            wanted = set(applicable)
            steps = tuple(
                self.steps[name] if name in self.steps else Step(name, SKIPPED, "not reached")
                for name in _ORDER if name in self.steps or name in wanted)
        return Report(self.label, steps, self.payload, self.credential, self.claims,
                      self.signer, self.holder, tuple(self.warnings))


# The steps that apply to a text (with a picture before it, a revocation check when the
# trust store has revocation data, a holder check after it), in report order: those shown
# as "not reached" when an earlier step fails (SPEC §5), and the same with "revocation",
# which also runs (after the signature) for a revoked signer.
_APPLICABLE = {
    (picture, holder, revocation): tuple(
        n for n in STEPS
        if n in ("prefix", "base45", "zlib", "cose", "cbor", "signature", "key_usage",
                 "expiry", "schema")
        or (n == "picture" and picture) or (n == "holder" and holder)
        or (n == "revocation" and revocation))
    for picture in (False, True) for holder in (False, True) for revocation in (False, True)
}
_COMPLETE = {
    key: tuple(n for n in STEPS if n in steps or n == "revocation")
    for key, steps in _APPLICABLE.items()
}


def _utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _fmt(dt: datetime) -> str:
    # as strftime("%Y-%m-%d %H:%M UTC") with glibc (year unpadded), at half the cost
    return f"{dt.year}-{dt.month:02d}-{dt.day:02d} {dt.hour:02d}:{dt.minute:02d} UTC"


# NumericDates of 0001-01-01 00:00:00 and 9999-12-31 23:59:59 UTC: the years a datetime holds
_MIN_TS, _MAX_TS = -62135596800, 253402300799
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FMT_CACHE: dict[int, str] = {}


def _fmt_ts(seconds: int) -> str:
    """``_fmt`` of a NumericDate inside years 1-9999 (cached per minute: the credentials of
    one batch share their minutes)."""
    minute = seconds // 60
    text = _FMT_CACHE.get(minute)
    if text is None:
        if len(_FMT_CACHE) >= 4096:
            _FMT_CACHE.clear()
        text = _FMT_CACHE[minute] = _fmt(datetime.fromtimestamp(minute * 60, UTC))
    return text


def _fmt_near(seconds: int, now: int) -> str:
    """:func:`_fmt_ts`, with the seconds when ``now`` falls in the same minute: "not valid
    before 05:24" said at 05:24:30 of a credential issued at 05:24:38 reads as a mistake."""
    if seconds // 60 != now // 60 or seconds % 60 == 0:
        return _fmt_ts(seconds)
    return _fmt_ts(seconds).replace(" UTC", f":{seconds % 60:02d} UTC")


# Passed steps are immutable and most messages repeat from one credential to the next, so
# they are made once: the fixed ones here, the others cached by what their message says.
_PREFIX_OK = Step("prefix", PASS, "HC1")
_COSE_OK = Step("cose", PASS, "COSE_Sign1")
_CBOR_OK = Step("cbor", PASS, "CWT with an EU DCC")
_REVOCATION_OK = Step("revocation", PASS, "not revoked")
_SIZE_STEPS: dict[str, dict[int, Step]] = {"base45": {}, "zlib": {}}
_EXPIRY_OK: dict[int, Step] = {}
_SCHEMA_OK: dict[str, Step] = {}


def _size_step(name: str, size: int) -> Step:
    by_size = _SIZE_STEPS[name]
    step = by_size.get(size)
    if step is None:
        if len(by_size) >= 4096:
            by_size.clear()
        step = by_size[size] = Step(name, PASS, f"{size} bytes")
    return step


def _expiry_ok(exp: int) -> Step:
    step = _EXPIRY_OK.get(exp)
    if step is None:
        if len(_EXPIRY_OK) >= 4096:
            _EXPIRY_OK.clear()
        step = _EXPIRY_OK[exp] = Step("expiry", PASS, f"valid until {_fmt_ts(exp)}")
    return step


class _CertFacts:
    """What the checks read of a signer certificate (cached: it is immutable), and the
    passed steps that name it (their messages depend only on it and on the key)."""

    __slots__ = ("cert", "eku", "na", "na_ts", "nb", "nb_ts", "steps", "subject")

    def __init__(self, cert: Any, subject: str, eku: Any, nb: datetime, na: datetime) -> None:
        self.cert = cert
        self.subject = subject
        self.eku = eku  # frozenset of OIDs, None (no EKU), or the VaxqrError reading it
        self.nb = nb
        self.na = na
        self.nb_ts = nb.timestamp()
        self.na_ts = na.timestamp()
        self.steps: dict[tuple[str, object], Step] = {}


class Verifier:
    """Verifies HC1 payloads against a trust store at a given time.

    ``at`` is the validation time (default: now, read on each call); ``validate_schema``
    replaces the DCC schema check (tests only).
    """

    def __init__(
        self,
        trust: Trust,
        *,
        at: datetime | None = None,
        validate_schema: Callable[[Any], list[str]] | None = None,
    ) -> None:
        from .certinfo import eku_allows, eku_oids
        from .schemas import validate_dcc

        self.trust = trust
        # a trust store is immutable: whether it can say a credential is revoked is fixed
        self._revocation_data = bool(getattr(trust, "has_revocation_data", False))
        self.at = _utc(at) if at is not None else None
        # the validation time as whole seconds since the epoch and a remainder, exactly
        self._at_parts: tuple[int, int] | None = None
        if self.at is not None:
            since = self.at - _EPOCH
            self._at_parts = (since.days * 86400 + since.seconds, since.microseconds)
        self._eku: Callable[[Any], frozenset[str] | None] = eku_oids
        self._eku_allows: Callable[[frozenset[str] | None, str], bool] = eku_allows
        self._schema: Callable[[Any], list[str]] = validate_schema or validate_dcc
        # Per-certificate facts (subject text, EKU) cost more to read than the rest of a
        # verification; certificates are immutable, so they are read once per object.
        self._cert_facts: dict[int, _CertFacts] = {}

    def _facts(self, cert: Any) -> _CertFacts:
        """What the checks read of a signer certificate, read once per certificate object."""
        hit = self._cert_facts.get(id(cert))
        if hit is not None and hit.cert is cert:
            return hit
        try:
            eku: Any = self._eku(cert)
        except VaxqrError as exc:
            eku = exc
        if len(self._cert_facts) >= 4096:
            self._cert_facts.clear()
        facts = self._cert_facts[id(cert)] = _CertFacts(
            cert, _name(cert), eku, cert.not_valid_before_utc, cert.not_valid_after_utc)
        return facts

    # ------------------------------------------------------------------ entry points

    def verify_text(
        self, text: str, *, label: str = "", holder: Any = None, picture: bool = False
    ) -> Report:
        """Verify one scanned payload (``HC1:...``). Never raises for bad input."""
        run = _Run(label or "text")
        if picture:
            run.ok("picture", "QR code read")
        key = (picture, holder is not None, self._revocation_data)
        try:
            self._pipeline(run, text, holder)
        except VaxqrError as exc:  # a step raised: record it as that step's failure
            run.fail(getattr(exc, "step", "") or "cose", str(exc))
        except (RecursionError, MemoryError, OverflowError) as exc:
            run.fail(_first_missing(run), f"input is too complex to decode ({type(exc).__name__})")
        except Exception as exc:  # a bug, not a verdict: fail closed, never break a stream
            run.fail(_first_missing(run), f"internal error while verifying ({type(exc).__name__})")
        return run.report(applicable=_APPLICABLE[key], complete=_COMPLETE[key])

    def picture_failure(self, label: str, message: str, *, step: str = "picture",
                        holder: bool = False, read: str = "") -> Report:
        """A report for an input that could not be read (a picture, an over-long line):
        ``step`` fails (``picture``, or ``prefix`` for text) and the steps after it that
        apply (``holder`` when a card was given) are skipped. ``read``, when given, is the
        message of a passed ``picture`` step (QR codes read, none a credential: ``step``
        is then ``prefix``)."""
        run = _Run(label)
        if read:
            run.ok(PICTURE, read)
        run.fail(step, message)
        return run.report(applicable=_APPLICABLE[(step == PICTURE or bool(read), holder,
                                                  self._revocation_data)])

    def input_failure(self, label: str, message: str, *, holder: bool = False) -> Report:
        """A report for an input that gave nothing to verify (a file that cannot be read,
        a directory, an empty file or stream): the :data:`INPUT` step fails with
        ``message`` and every step of :data:`STEPS` that would apply is skipped, so a JSON
        reader gets one object for it like for any other input."""
        key = (True, holder, self._revocation_data)
        return Report(label, (Step(INPUT, FAIL, message),
                              *(Step(name, SKIPPED, "not reached") for name in _APPLICABLE[key])))

    # ------------------------------------------------------------------ the steps

    def _pipeline(self, run: _Run, text: str, holder: Any) -> None:
        # White space around a pasted payload is not part of it: one starts "HC1:", and no
        # Base45 text ends in a space (a group's last character is at most 'W', a final
        # pair's at most '5'; the space is 36), although Base45 has one.
        text = text.strip("\r\n\x00\ufeff").strip()
        run.payload = text
        steps = run.steps
        b45 = codec.strip_prefix(text)
        steps["prefix"] = _PREFIX_OK
        compressed = codec.b45decode(b45)
        steps["base45"] = _size_step("base45", len(compressed))
        cose_bytes = codec.decompress(compressed)
        steps["zlib"] = _size_step("zlib", len(cose_bytes))
        msg = sign.parse_sign1(cose_bytes)
        if msg.tags == (18,):
            steps["cose"] = _COSE_OK
        else:
            run.ok("cose", "COSE_Sign1" + f" tag {msg.tags}")
        claims = sign.parse_cwt(msg.payload)
        steps["cbor"] = _CBOR_OK
        if not self._signature(run, msg):
            return  # nothing unsigned is reported as the credential's claims
        run.claims = {"iss": claims.iss, "iat": claims.iat, "exp": claims.exp}
        hcert = claims.hcert
        try:
            dcc = to_jsonable(hcert)
        except ValidationError as exc:
            dcc = None
            run.credential = None
            bad_content = str(exc)
        except (ValueError, RecursionError) as exc:  # e.g. an int key of 5,000 digits
            dcc = None
            run.credential = None
            bad_content = f"it cannot be read ({type(exc).__name__})"
        else:
            run.credential = dcc
            bad_content = ""
        self._key_usage(run, hcert)
        self._expiry(run, claims)
        if dcc is None:
            run.fail("schema", f"content is not valid DCC JSON: {bad_content}")
        else:
            try:
                errors = self._schema(dcc)
            except (ValueError, RecursionError) as exc:  # e.g. a 'ver' of 5,000 digits
                errors = [f"the content cannot be validated ({type(exc).__name__})"]
            if errors:
                more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
                run.fail("schema", errors[0] + more)
            else:
                ver = dcc.get("ver")
                step = _SCHEMA_OK.get(ver) if type(ver) is str else None
                if step is None:
                    step = Step("schema", PASS, f"DCC {ver}")
                    if type(ver) is str and len(_SCHEMA_OK) < 64:
                        _SCHEMA_OK[ver] = step
                run.steps["schema"] = step
        self._revocation(run, dcc)
        if holder is not None:
            self._holder(run, dcc, holder)

    def _signature(self, run: _Run, msg: sign.CoseSign1) -> bool:
        try:
            alg, kid = sign.check_headers(msg)
        except VerificationError as exc:
            run.fail("signature", str(exc))
            return False
        candidates = self.trust.signers_for_kid(kid)
        if not candidates:
            is_revoked = getattr(self.trust, "is_kid_revoked", None)
            unusable = getattr(self.trust, "unusable_reason", None)
            why = unusable(kid) if unusable is not None else None
            no_dsc = getattr(self.trust, "no_dsc_reason", None)
            if is_revoked is not None and is_revoked(kid):
                run.fail("revocation", f"the signer certificate (key id {kid.hex()}) has been "
                                       "revoked and removed from the trust list")
            elif no_dsc is not None and (lacking := no_dsc()):  # cannot judge: not a verdict
                if why:  # loaded, but not usable now: loading it again changes nothing
                    run.fail(TRUST, f"no trusted certificate has key id {kid.hex()} "
                                    f"({SET_ASIDE}: {why}), and {lacking}: give the "
                                    "province's current trust list and the CA certificate "
                                    "that signed it with --trust, or check the validation "
                                    "time (this computer's clock, --at)")
                else:
                    run.fail(TRUST, f"no trusted certificate has key id {kid.hex()}, and "
                                    f"{lacking}: give the province's trust list "
                                    "(trustlist.json) or the communes' signer.crt with --trust")
            elif why:  # named by a trust list set aside: not a forgery, a matter of time
                run.skip("signature", "no signer certificate usable at this time")
                run.fail("expiry", f"the signer certificate (key id {kid.hex()}) is in a trust "
                                   f"list that is not usable at this time: {why}")
            else:
                run.fail("signature", f"no trusted signer certificate has key id {kid.hex()} "
                                      "(unknown commune, or not in the trust list)")
            return False
        last: VerificationError | None = None
        for signer in candidates:
            try:
                sign.verify_signature(msg, signer.public_key, alg)
            except VerificationError as exc:
                last = exc
                continue
            run.signer = signer
            facts = run.facts = self._facts(signer.certificate)
            protected = type(msg.protected.get(sign.HDR_KID)) is bytes or \
                msg.kid_location == "protected"
            step = facts.steps.get(("signature", (alg, protected)))
            if step is None:
                where = "" if protected else " (kid in unprotected header)"
                step = facts.steps[("signature", (alg, protected))] = Step(
                    "signature", PASS, f"{sign.ALG_NAMES[alg]} by {facts.subject}{where}")
            run.steps["signature"] = step
            return True
        run.fail("signature", str(last) if last else "signature does not verify")
        return False

    def _key_usage(self, run: _Run, hcert: Mapping[str, Any]) -> None:
        facts = run.facts
        assert facts is not None
        kind = certificate_type(hcert)
        oids = facts.eku
        if isinstance(oids, VaxqrError):
            run.fail("key_usage", f"cannot read the signer's key usage: {oids}")
            return
        if kind is None:
            run.skip("key_usage", "certificate type unknown (the schema step says why)")
            return
        step = facts.steps.get(("key_usage", kind))
        if step is not None:  # this signer passed this type before (eku_allows is pure)
            run.steps["key_usage"] = step
        elif self._eku_allows(oids, kind):
            step = facts.steps[("key_usage", kind)] = Step(
                "key_usage", PASS, "signer may sign every certificate type" if not oids
                else f"signer may sign {_TYPE_NAMES[kind]} certificates")
            run.steps["key_usage"] = step
        else:
            dcc_oids = sorted(o for o in oids or () if o.startswith(_EKU_PREFIXES))
            allowed = sorted({_TYPE_NAMES[EKU_TYPES[o.rsplit(".", 1)[1]]] for o in dcc_oids
                              if o.rsplit(".", 1)[1] in EKU_TYPES})
            may = (", ".join(allowed) + " certificates only") if allowed else \
                "no EU DCC certificate type (its extended key usage has no DCC OID)"
            run.fail("key_usage", f"the signer may sign {may}, not {_TYPE_NAMES[kind]}")

    def _expiry(self, run: _Run, claims: sign.CwtClaims) -> None:
        facts = run.facts
        assert facts is not None
        # the validation time as whole seconds since the epoch and a remainder, exactly
        if self._at_parts is not None:
            now, fraction = self._at_parts
        else:
            ns = time.time_ns()
            now, fraction = ns // 1_000_000_000, ns % 1_000_000_000
        iat, exp, nbf = claims.iat, claims.exp, claims.nbf
        if nbf is not None and run.claims is not None:  # shown only when the issuer set one
            run.claims["nbf"] = nbf
        if iat is None:
            run.fail("expiry", "the credential has no issue time (iat)")
        elif exp is None:
            run.fail("expiry", "the credential has no expiry time (exp)")
        elif not (_MIN_TS <= iat <= _MAX_TS and _MIN_TS <= exp <= _MAX_TS
                  and (nbf is None or _MIN_TS <= nbf <= _MAX_TS)):
            which, value = ("iat", iat) if not _MIN_TS <= iat <= _MAX_TS else \
                ("exp", exp) if not _MIN_TS <= exp <= _MAX_TS else ("nbf", nbf)
            run.fail("expiry", f"the credential's {which} time ({value}) is outside the "
                               "years 1-9999")
        elif iat < facts.nb_ts:
            run.fail("expiry", f"issued {_fmt_ts(iat)}, before the signer certificate "
                               f"became valid ({_fmt(facts.nb)})")
        elif now < iat:
            run.fail("expiry", f"credential not valid before {_fmt_near(iat, now)}")
        elif nbf is not None and now < nbf:  # CWT nbf (claim 5), when the issuer sets one
            run.fail("expiry", f"credential not valid before {_fmt_near(nbf, now)}")
        elif now > exp or (now == exp and fraction):
            run.fail("expiry", f"credential expired on {_fmt_near(exp, now)}")
        elif exp > facts.na_ts:
            run.fail("expiry", f"credential expiry {_fmt_ts(exp)} is after the signer "
                               f"certificate expires ({_fmt(facts.na)})")
        else:
            run.steps["expiry"] = _expiry_ok(exp)

    def _revocation(self, run: _Run, dcc: Mapping[str, Any] | None) -> None:
        if getattr(run.signer, "revoked", False):
            run.fail("revocation", getattr(run.signer, "revoked_reason", "")
                     or "the signer certificate has been revoked")
            return
        if not self._revocation_data:  # what the reports' applicable steps were keyed on
            return
        kind = certificate_type(dcc) if dcc is not None else None
        entries = dcc.get(kind) if dcc is not None and kind else None
        uvci = entries[0].get("ci") if isinstance(entries, list) and entries and \
            isinstance(entries[0], dict) else None
        if isinstance(uvci, str) and self.trust.is_credential_revoked(uvci):
            run.fail("revocation", "this credential has been revoked by its issuer")
        else:
            run.steps["revocation"] = _REVOCATION_OK

    def _holder(self, run: _Run, dcc: Mapping[str, Any] | None, card: Any) -> None:
        from .citizen import names_match

        source = CARD_GIVEN
        if isinstance(card, CardInPicture):
            source = CARD_IN_CREDENTIAL_PICTURE
            card = card.card
        info = summary(dcc) if dcc is not None else {}
        name, dob = info.get("full_name"), info.get("dob")
        reasons = []
        mismatched = []
        card_dob = card.dob.isoformat()
        if not isinstance(name, str) or not names_match(name, card.full_name):
            reasons.append("name on the credential does not match the ID card")
            mismatched.append("full_name")
        if dob != card_dob:
            reasons.append(f"date of birth {dob} does not match the ID card ({card_dob})")
            mismatched.append("dob")
        run.holder = HolderResult(not reasons, card.full_name, card_dob, tuple(reasons),
                                  source, tuple(mismatched))
        caution = _CAUTION if source == CARD_IN_CREDENTIAL_PICTURE else ""
        if reasons:
            run.fail("holder", "; ".join(reasons) + caution)
        else:
            run.ok("holder", "name and date of birth match the ID card" + caution)


def _first_missing(run: _Run) -> str:
    return next((s for s in STEPS[1:] if s not in run.steps), "cose")



__all__ = ["CARD_GIVEN", "CARD_IN_CREDENTIAL_PICTURE", "INPUT", "NOT_JUDGED", "PICTURE",
           "SET_ASIDE", "STEPS", "TRUST", "CardInPicture", "DecodeError", "HolderResult",
           "Report", "Step", "Verifier", "verify_image"]


_NO_QR_CODE: Final = "no QR code found in the picture"  # qrdecode's message


def verify_image(
    verifier: Verifier, source: Any, *, label: str, holder: Any = None
) -> tuple[list[Report], Any]:
    """Read every QR in a picture; verify the ``HC1:`` ones.

    Returns the reports and the CCCD card found in the same picture (or None). A CCCD QR
    beside the credential is used for the holder check when no card was given, as a
    :class:`CardInPicture`: its result says the card came from the credential's picture
    (a match there shows only that the picture agrees with itself). Raises
    :class:`~vaxqr.errors.SetupError` when no QR decoder can be loaded: a problem of the
    machine, not a picture to take again.
    """
    from .citizen import parse_cccd
    from .qr import decode_image

    try:
        codes = decode_image(source)
    except SetupError:
        raise
    except VaxqrError as exc:
        # what to do, when the picture itself is the cause (too large, not an image, a
        # decoding bomb): the verdict's reason says only how to take a photo again, which
        # is all "no QR code found"'s own hint says
        message = str(exc)
        if exc.hint and message != _NO_QR_CODE:
            message = f"{message}; {exc.hint}"
        return [verifier.picture_failure(label, message, holder=holder is not None)], None
    hc1 = [c for c in codes if c.text.startswith(codec.PREFIX)]
    card: Any = None
    for c in codes:
        if c.text.startswith(codec.PREFIX):
            continue
        try:
            card = parse_cccd(c.text)
            break
        except VaxqrError:
            continue
    given = holder is not None
    if holder is None and card is not None:
        holder = CardInPicture(card)
    if not hc1:
        if len(codes) == 1 and card is None:
            return [verifier.verify_text(codes[0].text, label=label, holder=holder,
                                         picture=True)], card
        others = len(codes) - (card is not None)  # the codes besides the card's (if any)
        found = (f"{others} other QR codes" if card is None else
                 "an ID card QR only" if not others else
                 f"an ID card QR and {others} other QR code{'s' if others > 1 else ''}")
        # read, but no credential: NOT VALID at "prefix" (as one such code), not CANNOT READ
        return [verifier.picture_failure(
            label, f"no HC1 credential QR code in the picture (found {found})",
            step="prefix", holder=given,
            read="QR code read" if len(codes) == 1 else f"{len(codes)} QR codes read")], card
    reports = [
        verifier.verify_text(c.text, label=label if len(hc1) == 1 else f"{label}#{i + 1}",
                             holder=holder, picture=True)
        for i, c in enumerate(hc1)
    ]
    return reports, card
