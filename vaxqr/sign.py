"""COSE_Sign1 over CWT claims: signing and verification (ES256, PS256).

This module knows bytes, keys and certificates; it knows nothing of the DCC's fields.
Rules (HCERT §3.3, RFC 8152, and the deployed-data quirks in docs/standards.md §6):

* emitted: tag 18, protected ``{1: alg, 4: kid}``, empty unprotected map;
* accepted: untagged, tag 18, or 61(18); any other tag (COSE_Sign 98 included) is refused,
  around the message or anywhere in it, in the protected header or in the CWT, where only
  tag 0 (a date-time, which the DCC's ``sc`` may be) is read (55799 and 256, which cbor2
  drops silently, included);
* ES256 is ECDSA with SHA-256 on P-256 (or P-384, which deployed EU DSCs use with it);
  a key on any other curve is refused; PS256 needs RSA of at least 2048 bits;
* a ``crit`` header must be protected, non-empty, and list only ``alg`` and ``kid``;
* ``alg`` is read from the protected header only; ``kid`` from the protected header (where it
  must then be a byte string), else the unprotected one, and must be 8 bytes;
* the signature is checked over the protected bytes *as received*, never re-encoded;
* duplicate CBOR map keys are refused everywhere.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from typing import Any, Final, cast

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from .errors import DecodeError, KeyCertError, VerificationError

ES256 = -7
PS256 = -37
ALG_NAMES = {ES256: "ES256", PS256: "PS256"}
HDR_ALG = 1
HDR_CRIT = 2
HDR_KID = 4
KID_LEN = 8
TAG_SIGN1 = 18
TAG_CWT = 61
CLAIM_ISS, CLAIM_EXP, CLAIM_NBF, CLAIM_IAT, CLAIM_HCERT = 1, 4, 5, 6, -260
MAX_CBOR_DEPTH = 64

_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
_ECDSA = ec.ECDSA(hashes.SHA256())

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
_ECKey = ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey
_RSAKey = rsa.RSAPrivateKey | rsa.RSAPublicKey


# CBOR tags. HCERT allows untagged, 18 or 61(18) around the COSE_Sign1 and, inside the
# CWT, only tag 0, the date-time tag a DCC's ``sc`` may carry (docs/standards.md §1.3,
# §1.5; read wherever it stands in the claims); every other tag is refused where it stands.
# cbor2 decodes the tags below itself ("semantic" tags): it turns
# them into Python values, or for 55799 (self-described CBOR) and 256 (string-reference
# namespace) drops them silently, so a check of the decoded item would never see them; each
# is refused by a decoder of our own (tests hold this list to what cbor2 decodes). Any other
# tag reaches the tag hook.
_CBOR2_TAGS: Final = {
    0: "date-time text", 1: "epoch date-time", 2: "bignum", 3: "negative bignum",
    4: "decimal fraction", 5: "bigfloat", 25: "string reference", 28: "value sharing",
    29: "value sharing", 30: "rational number", 35: "regular expression",
    36: "MIME message", 37: "UUID", 52: "IPv4 address", 54: "IPv6 address",
    100: "epoch date", 256: "string-reference namespace", 258: "set",
    260: "network address", 261: "network prefix", 1004: "date text",
    43000: "complex number", 55799: "self-described CBOR",
}
_KNOWN_TAG_NAMES: Final = {18: "COSE_Sign1", 61: "CWT", 98: "COSE_Sign"}


class _TagRefused(Exception):
    """A CBOR tag its place does not allow: raised inside cbor2 (which wraps it in a
    CBORDecodeError whose cause it is) and worded by :func:`loads`."""


def _tag_text(tag: int) -> str:
    name = _CBOR2_TAGS.get(tag) or _KNOWN_TAG_NAMES.get(tag)
    return f"CBOR tag {tag} ({name})" if name else f"CBOR tag {tag}"


def _refuser(tag: int, where: str) -> Any:
    message = f"{_tag_text(tag)} is not allowed {where}"

    def refuse(*_args: Any) -> Any:
        raise _TagRefused(message)

    return refuse


class _TagRules:
    """Which CBOR tags one decoded item may hold: the semantic decoders and the tag hook
    that refuse the others, saying where they are not allowed."""

    __slots__ = ("semantic", "where")

    def __init__(self, where: str, allowed: frozenset[int] = frozenset()) -> None:
        self.where: Final = where
        self.semantic: Final = {tag: _refuser(tag, where) for tag in _CBOR2_TAGS
                                if tag not in allowed}

    def hook(self, tag: Any, *_args: Any) -> Any:
        raise _TagRefused(f"{_tag_text(tag.tag)} is not allowed {self.where}")


_NO_TAGS = _TagRules("here")
_COSE_TAGS = _TagRules("around or in a COSE_Sign1 (it may be untagged, or tagged 18 or 61(18))")
_HEADER_TAGS = _TagRules("in the COSE protected header")
_CWT_TAGS = _TagRules("in the CWT claims (only tag 0, a date-time)", frozenset({0}))


def _refusal(exc: BaseException) -> str | None:
    """The message of the tag refusal that caused ``exc``, if one did."""
    seen = 0
    cause: BaseException | None = exc
    while cause is not None and seen < 8:
        if isinstance(cause, _TagRefused):
            return str(cause)
        cause = cause.__cause__ or cause.__context__
        seen += 1
    return None


def loads(data: bytes, *, step: str, tags: _TagRules = _NO_TAGS,
          tag_hook: Any = None) -> Any:
    """Decode one CBOR item strictly (no duplicate keys, bounded depth, no trailing bytes,
    no tag but those ``tags`` allows: by default none)."""
    fp = io.BytesIO(data)
    try:
        item = cbor2.CBORDecoder(
            fp, allow_duplicate_keys=False, max_depth=MAX_CBOR_DEPTH,
            semantic_decoders=tags.semantic, tag_hook=tag_hook or tags.hook,
        ).decode()
    except RecursionError:
        raise DecodeError("CBOR nesting is too deep", step=step) from None
    except _TagRefused as refused_tag:  # (its own name: mypyc types each name once)
        raise DecodeError(str(refused_tag), step=step) from None
    except (cbor2.CBORDecodeError, ValueError, TypeError, OverflowError, MemoryError) as exc:
        refused = _refusal(exc)
        if refused is not None:
            raise DecodeError(refused, step=step) from None
        msg = str(exc) or type(exc).__name__
        if "duplicate" in msg.lower():
            msg = "a CBOR map repeats a key (" + msg + ")"
        raise DecodeError(f"invalid CBOR: {msg}", step=step) from None
    if fp.tell() != len(data):
        raise DecodeError(
            f"invalid CBOR: {len(data) - fp.tell()} unexpected byte(s) after the data item",
            step=step,
        )
    return item


# The fast path of ``loads(payload)`` for the CWT: cbor2.loads (no decoder object, ~0.6 µs
# less) of ``[payload, sentinel]``, where the sentinel is a byte string of 16 random bytes
# drawn per process. cbor2.loads ignores bytes after the item it decodes, so the sentinel is
# what proves the payload was exactly one item: if it ended early, the second element is
# decoded from the payload's own tail (equal to the sentinel only by knowing the secret
# bytes); if it ran into the sentinel, what is left of it is too short to be one. Anything
# else (an error, a mismatch, nesting one level too deep for the wrapper) goes to the strict
# path, whose verdict and message are then the answer, as before.
_SENTINEL_VALUE = os.urandom(16)
_SENTINEL = b"\x50" + _SENTINEL_VALUE  # bstr(16)


def _unsure_tag(*_args: Any) -> Any:
    raise cbor2.CBORDecodeError("left to the strict decoder")


# Any tag is "unsure" in the fast path: the strict decoder refuses it or (tag 0) reads it.
# (Tags 55799 and 256 also matter for the sentinel: trailing bytes ``d9 d9 f7`` after a
# payload would wrap the sentinel and cbor2 would give it back unchanged.)
_FAST_SEMANTIC = dict.fromkeys(_CBOR2_TAGS, _unsure_tag)


def _loads_exactly_one(data: bytes) -> Any:
    """The item ``data`` holds, when it holds exactly one (strictly decoded); else
    ``_SENTINEL`` (unsure: ask :func:`loads`)."""
    try:
        pair = cbor2.loads(b"\x82" + data + _SENTINEL, allow_duplicate_keys=False,
                           max_depth=MAX_CBOR_DEPTH, semantic_decoders=_FAST_SEMANTIC,
                           tag_hook=_unsure_tag)
    except Exception:  # whatever it was, the strict path decides and words it
        return _SENTINEL
    if type(pair) is list and len(pair) == 2 and type(pair[1]) is bytes \
            and pair[1] == _SENTINEL_VALUE:
        return pair[0]
    return _SENTINEL


# The compiled build's fast path instead: a reader of the plain subset of CBOR that CWTs
# are made of (unsigned and negative integers, definite-length byte and text strings,
# arrays and maps with text or integer keys), nothing else. It answers "unsure" on anything
# outside that subset or against a strictness rule (a repeated key, invalid UTF-8, nesting
# deeper than the strict limit, trailing bytes), and the strict path then decides and words
# the verdict; for what it does read, it makes the very values cbor2 makes (tests compare
# them). Compiled, it is ~0.8 µs faster per CWT than the sentinel path; interpreted it
# would be slower, so the pure-Python build keeps the sentinel path.
_COMPILED = not __file__.endswith(".py")


class _Unsure(Exception):
    """Outside the subset the fast reader handles: the strict decoder decides."""


class _CborReader:
    __slots__ = ("data", "end", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.end = len(data)

    def _argument(self, info: int) -> int:
        i = self.pos
        if info < 24:
            return info
        size = 1 << (info - 24) if info <= 27 else 0
        if not size or i + size > self.end:
            raise _Unsure  # reserved (28-30), indefinite (31), or cut short
        self.pos = i + size
        if size == 1:
            return self.data[i]
        return int.from_bytes(self.data[i:i + size], "big")

    def item(self, depth: int) -> Any:
        i = self.pos
        if i >= self.end or depth <= 0:
            raise _Unsure
        head = self.data[i]
        self.pos = i + 1
        major = head >> 5
        n = self._argument(head & 31)
        if major == 3 or major == 2:
            start = self.pos
            stop = start + n
            if stop > self.end:
                raise _Unsure
            self.pos = stop
            if major == 2:
                return self.data[start:stop]
            try:
                return self.data[start:stop].decode("utf-8")
            except UnicodeDecodeError:
                raise _Unsure from None
        if major == 0:
            return n
        if major == 5:
            out: dict[Any, Any] = {}
            for _ in range(n):  # each pass reads at least one byte: bounded by the data
                key = self.item(depth - 1)
                if type(key) is not str and type(key) is not int:
                    raise _Unsure
                out[key] = self.item(depth - 1)
            if len(out) != n:  # a key repeated (and overwritten): the strict path says so
                raise _Unsure
            return out
        if major == 4:
            items: list[Any] = []
            for _ in range(n):
                items.append(self.item(depth - 1))
            return items
        if major == 1:
            return -1 - n
        raise _Unsure  # tags, floats and simple values


def _loads_plain(data: bytes) -> Any:
    """The one item of ``data`` when it is plain CBOR (see above); else ``_SENTINEL``."""
    reader = _CborReader(data)
    try:
        item = reader.item(MAX_CBOR_DEPTH - 1)  # one level stricter than the strict path
    except _Unsure:
        return _SENTINEL
    return item if reader.pos == reader.end else _SENTINEL


# --------------------------------------------------------------------------- signing


_KINDS: dict[type, str] = {}  # concrete key class → "ec-private", "ec-public", "rsa", "other"


def _kind(key: object) -> str:
    """What a key is, by its class (isinstance against cryptography's ABCs costs ~0.1 µs
    each; the answer for a class never changes, so it is remembered)."""
    cls = type(key)
    kind = _KINDS.get(cls)
    if kind is None:
        if isinstance(key, ec.EllipticCurvePrivateKey):
            kind = "ec-private"
        elif isinstance(key, ec.EllipticCurvePublicKey):
            kind = "ec-public"
        elif isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
            kind = "rsa"
        else:
            kind = "other"
        if len(_KINDS) < 64:
            _KINDS[cls] = kind
    return kind


def algorithm_for(key: PrivateKey | PublicKey) -> int:
    """The COSE algorithm a key signs with: ES256 for P-256, PS256 for RSA ≥ 2048."""
    kind = _kind(key)
    if kind in ("ec-private", "ec-public"):
        curve = cast(_ECKey, key).curve
        if not isinstance(curve, ec.SECP256R1):
            raise KeyCertError(f"ES256 needs a P-256 key, not {curve.name}")
        return ES256
    if kind == "rsa":
        size = cast(_RSAKey, key).key_size
        if size < 2048:
            raise KeyCertError(f"PS256 needs an RSA key of at least 2048 bits, not {size}")
        return PS256
    raise KeyCertError(f"unsupported key type {type(key).__name__}")


# CBOR heads written by hand on the hot paths (signing, Sig_structure): the same bytes as
# cbor2.dumps, which always uses the shortest length form (tests compare the two).
_BSTR_HEADS = [bytes((0x40 + n,)) for n in range(24)] + [bytes((0x58, n)) for n in range(24, 256)]


def _bstr_head(n: int) -> bytes:
    """The CBOR head of a byte string of ``n`` bytes (major type 2, shortest form)."""
    if n < 256:
        return _BSTR_HEADS[n]
    if n < 0x10000:
        return b"\x59" + n.to_bytes(2, "big")
    if n < 0x100000000:
        return b"\x5a" + n.to_bytes(4, "big")
    return b"\x5b" + n.to_bytes(8, "big")


_SIG1_CONTEXT = b"\x84\x6aSignature1"  # array(4), text(10) "Signature1"


def sig_structure(protected: bytes, payload: bytes) -> bytes:
    """The COSE ``Sig_structure`` for COSE_Sign1 with empty external AAD."""
    # = cbor2.dumps(["Signature1", protected, b"", payload])
    return b"".join((_SIG1_CONTEXT, _bstr_head(len(protected)), protected,
                     b"\x40", _bstr_head(len(payload)), payload))


def encode_cwt(*, iss: str | None, iat: int, exp: int, hcert: Mapping[str, Any]) -> bytes:
    """CBOR-encode CWT claims ``{1: iss, 6: iat, 4: exp, -260: {1: hcert}}`` (integer dates)."""
    claims: dict[int, Any] = {}
    if iss is not None:
        claims[CLAIM_ISS] = iss
    claims[CLAIM_IAT] = int(iat)
    claims[CLAIM_EXP] = int(exp)
    claims[CLAIM_HCERT] = {1: dict(hcert)}
    return cbor2.dumps(claims)


_PROTECTED: dict[tuple[int, bytes], bytes] = {}  # (alg, kid) → protected header bytes


def _protected_header(alg: int, kid: bytes) -> bytes:
    protected = _PROTECTED.get((alg, kid))
    if protected is None:
        protected = cbor2.dumps({HDR_ALG: alg, HDR_KID: kid})
        if len(_PROTECTED) < 256:  # a process signs for a handful of keys
            _PROTECTED[(alg, kid)] = protected
    return protected


def _raw_ecdsa(der: bytes) -> bytes:
    """cryptography's DER ECDSA-Sig-Value for P-256 → COSE's raw ``r || s`` (32 + 32 bytes)."""
    # SEQUENCE { INTEGER r, INTEGER s }: 30 L 02 Lr r 02 Ls s, every length one byte for
    # P-256 (at most 72 bytes); each integer minimal, with a 00 in front when its top bit is
    # set. Anything else takes the general route through decode_dss_signature.
    n = len(der)
    if 8 <= n < 128 and der[0] == 0x30 and der[1] == n - 2 and der[2] == 2:
        lr = der[3]
        if 0 < lr <= 33 and 6 + lr < n and der[4 + lr] == 2 and der[5 + lr] == n - 6 - lr:
            r = der[4:4 + lr]
            s = der[6 + lr:]
            if (lr < 33 or r[0] == 0) and (len(s) < 33 or s[0] == 0) and s:
                return r[-32:].rjust(32, b"\0") + s[-32:].rjust(32, b"\0")
    r_int, s_int = decode_dss_signature(der)
    return r_int.to_bytes(32, "big") + s_int.to_bytes(32, "big")


def sign1(payload: bytes, key: PrivateKey, kid: bytes | bytearray | memoryview) -> bytes:
    """Return a tagged COSE_Sign1 (tag 18) over ``payload`` with protected ``{1: alg, 4: kid}``."""
    alg = algorithm_for(key)
    protected = _protected_header(alg, bytes(kid))
    tbs = sig_structure(protected, payload)
    if _kind(key) == "ec-private":
        signature = _raw_ecdsa(cast(ec.EllipticCurvePrivateKey, key).sign(tbs, _ECDSA))
    else:
        signature = cast(rsa.RSAPrivateKey, key).sign(tbs, _PSS, hashes.SHA256())
    # = cbor2.dumps(CBORTag(18, [protected, {}, payload, signature])): d2 84 … a0 …
    return b"".join((b"\xd2\x84", _bstr_head(len(protected)), protected, b"\xa0",
                     _bstr_head(len(payload)), payload, _bstr_head(len(signature)), signature))


# --------------------------------------------------------------------------- parsing


class CoseSign1:
    """A parsed COSE_Sign1 message; ``protected_bytes`` are kept exactly as received.

    Read-only (``Final``: mypy rejects assignments, and the compiled build raises on them).
    A plain class rather than a frozen dataclass: mypyc compiles it to a native object,
    made in 40 ns instead of 270 (one per credential verified).
    """

    __slots__ = ("payload", "protected", "protected_bytes", "signature", "tags", "unprotected")

    def __init__(self, protected_bytes: bytes, protected: Mapping[Any, Any],
                 unprotected: Mapping[Any, Any], payload: bytes, signature: bytes,
                 tags: tuple[int, ...]) -> None:
        self.protected_bytes: Final = protected_bytes
        self.protected: Final = protected
        self.unprotected: Final = unprotected
        self.payload: Final = payload
        self.signature: Final = signature
        self.tags: Final = tags

    def __repr__(self) -> str:
        return (f"CoseSign1(protected={dict(self.protected)!r}, "
                f"unprotected={dict(self.unprotected)!r}, payload={len(self.payload)} bytes, "
                f"signature={len(self.signature)} bytes, tags={self.tags!r})")

    def __reduce__(self) -> tuple[Any, ...]:  # copy and pickle by fields, in both builds
        return (CoseSign1, (self.protected_bytes, self.protected, self.unprotected,
                            self.payload, self.signature, self.tags))

    @property
    def alg(self) -> int | None:
        """``alg`` from the protected header (never from the unprotected one)."""
        value = self.protected.get(HDR_ALG)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    @property
    def kid(self) -> bytes | None:
        """``kid`` from the protected header when it has one (HCERT §3.3.3: that one MUST be
        used, so one that is not a byte string gives None), else from the unprotected one."""
        location = self.kid_location
        if location is None:
            return None
        value = (self.protected if location == "protected" else self.unprotected)[HDR_KID]
        return value if isinstance(value, bytes) else None

    @property
    def kid_location(self) -> str | None:
        """Where the kid that counts is: ``protected`` whenever that header has one."""
        if HDR_KID in self.protected:
            return "protected"
        if isinstance(self.unprotected.get(HDR_KID), bytes):
            return "unprotected"
        return None


def parse_sign1(data: bytes) -> CoseSign1:
    """Parse a COSE_Sign1 (untagged, 18 or 61(18)); raise ``DecodeError`` (step ``cose``)."""
    fast = _parse_sign1_fast(data)
    return fast if fast is not None else _parse_sign1_general(data)


def _parse_sign1_general(data: bytes) -> CoseSign1:
    met: list[int] = []  # the tags the decoder met that cbor2 does not decode itself

    def tag_hook(tag: Any, *_args: Any) -> Any:
        met.append(tag.tag)
        return tag

    item = loads(data, step="cose", tags=_COSE_TAGS, tag_hook=tag_hook)
    tags: list[int] = []
    while isinstance(item, cbor2.CBORTag):
        tags.append(item.tag)
        item = item.value
    if tags not in ([], [TAG_SIGN1], [TAG_CWT, TAG_SIGN1]):
        shown = "".join(f"{t}(" for t in tags) + "…" + ")" * len(tags)  # 61(18(…))
        what = " (COSE_Sign, not COSE_Sign1)" if TAG_SIGN1 not in tags and 98 in tags else ""
        raise DecodeError(
            f"unexpected CBOR tag {shown}{what}; expected COSE_Sign1 (tag 18)", step="cose"
        )
    if len(met) != len(tags):  # a tag inside the message (in the unprotected header)
        inner = met[0]  # met holds at least the tags of ``tags``
        raise DecodeError(f"{_tag_text(inner)} is not allowed inside a COSE_Sign1",
                          step="cose")
    if not isinstance(item, list | tuple) or len(item) != 4:
        raise DecodeError("not a COSE_Sign1 structure (an array of 4 items)", step="cose")
    protected_bytes, unprotected, payload, signature = item
    if not isinstance(protected_bytes, bytes):
        raise DecodeError("COSE protected header is not a byte string", step="cose")
    if not isinstance(unprotected, Mapping):
        raise DecodeError("COSE unprotected header is not a map", step="cose")
    _label_keys(unprotected, "the COSE unprotected header", "cose")
    if not isinstance(payload, bytes):
        raise DecodeError("COSE payload is missing or not a byte string", step="cose")
    if not isinstance(signature, bytes):
        raise DecodeError("COSE signature is not a byte string", step="cose")
    return CoseSign1(protected_bytes, _protected_map(protected_bytes), unprotected, payload,
                     signature, tuple(tags))


# The fast path: the shape every HCERT signer emits, read straight from the bytes (the general
# path above costs two CBORDecoders, ~3 µs). Only this exact shape is taken: an optional tag
# 18 or 61(18), an array of 4, a definite-length byte string, an empty map, two definite-length
# byte strings, and nothing after them. For such bytes the general path decodes the very same
# values (tests compare the two), so every other input, well-formed or not, goes there and
# gets its verdict and message from it.
_SIGN1_STARTS = {b"\x84": (), b"\xd2\x84": (TAG_SIGN1,), b"\xd8\x3d\xd2\x84": (TAG_CWT, TAG_SIGN1)}


def _bstr_end(data: bytes, i: int) -> tuple[int, int]:
    """(start, end) of the definite-length byte string whose head is at ``data[i]``; (0, -1)
    when there is none (another type, an indefinite length, or a head cut short)."""
    if i >= len(data):
        return 0, -1
    b = data[i]
    if 0x40 <= b <= 0x57:
        start, length = i + 1, b - 0x40
    elif 0x58 <= b <= 0x5B:
        size = 1 << (b - 0x58)
        start = i + 1 + size
        if start > len(data):
            return 0, -1
        length = int.from_bytes(data[i + 1:start], "big")
    else:
        return 0, -1
    return start, start + length


def _parse_sign1_fast(data: bytes) -> CoseSign1 | None:
    if data[:2] == b"\xd2\x84":
        i, tags = 2, _SIGN1_STARTS[b"\xd2\x84"]
    elif data[:1] == b"\x84":
        i, tags = 1, ()
    elif data[:4] == b"\xd8\x3d\xd2\x84":
        i, tags = 4, _SIGN1_STARTS[b"\xd8\x3d\xd2\x84"]
    else:
        return None
    n = len(data)
    b = data[i] if i < n else 0
    if 0x40 <= b <= 0x57:  # a short protected header (the usual 13 bytes), read inline
        p0 = i + 1
        p1 = p0 + b - 0x40
    else:
        p0, p1 = _bstr_end(data, i)
    if p1 < 0 or p1 >= n or data[p1] != 0xA0:
        return None
    m0, m1 = _bstr_end(data, p1 + 1)
    if m1 < 0:
        return None
    s0, s1 = _bstr_end(data, m1)
    if s1 != n:
        return None
    protected_bytes = data[p0:p1]
    return CoseSign1(protected_bytes, _protected_map(protected_bytes), {}, data[m0:m1],
                     data[s0:s1], tags)


# Parsed protected headers by their bytes: one signer's are the same in every credential.
# Only maps of plain values are kept, and each message gets its own copy.
_PROTECTED_MAPS: dict[bytes, dict[Any, Any]] = {}
_PLAIN = (int, bytes, str)


def _protected_map(protected_bytes: bytes) -> Mapping[Any, Any]:
    if not protected_bytes:
        return {}
    cached = _PROTECTED_MAPS.get(protected_bytes)
    if cached is not None:
        return dict(cached)
    protected: Mapping[Any, Any] = loads(protected_bytes, step="cose", tags=_HEADER_TAGS)
    if not isinstance(protected, Mapping):
        raise DecodeError("COSE protected header is not a map", step="cose")
    _label_keys(protected, "the COSE protected header", "cose")
    if type(protected) is dict and all(
        type(k) in _PLAIN and type(v) in _PLAIN for k, v in protected.items()
    ):
        if len(_PROTECTED_MAPS) >= 256:
            _PROTECTED_MAPS.clear()
        _PROTECTED_MAPS[protected_bytes] = dict(protected)
    return protected


class CwtClaims:
    """The CWT claims of an HCERT: issuer, issue and expiry times, the health certificate,
    and the not-before time when there is one (read-only, as :class:`CoseSign1`)."""

    __slots__ = ("exp", "hcert", "iat", "iss", "nbf")

    def __init__(self, iss: str | None, iat: int | None, exp: int | None,
                 hcert: Mapping[str, Any], nbf: int | None = None) -> None:
        self.iss: Final = iss
        self.iat: Final = iat
        self.exp: Final = exp
        self.hcert: Final = hcert
        self.nbf: Final = nbf

    def __repr__(self) -> str:
        nbf = f", nbf={self.nbf!r}" if self.nbf is not None else ""
        return f"CwtClaims(iss={self.iss!r}, iat={self.iat!r}, exp={self.exp!r}{nbf}, hcert=…)"

    def __reduce__(self) -> tuple[Any, ...]:
        return (CwtClaims, (self.iss, self.iat, self.exp, self.hcert, self.nbf))


_CBOR_TYPE_NAMES: Final = {bool: "a boolean", float: "a float", str: "text", int: "an integer",
                            bytes: "a byte string", list: "an array", tuple: "an array",
                            dict: "a map"}


def _int_claim(claims: Mapping[Any, Any], key: int, name: str) -> int | None:
    """A NumericDate claim: an integer (RFC 8392 allows floats; HCERT does not), or None
    when absent."""
    value = claims.get(key)
    if type(value) is int and -(2**40) < value < 2**40:  # the usual case, checked first
        return value
    if value is None and key not in claims:
        return None
    if type(value) is not int:  # a float (1.6e9), a boolean, text, null, ...
        raise DecodeError(f"CWT claim {name} must be an integer NumericDate, not "
                          f"{_type_text(value, 'another type')}", step="cbor")
    raise DecodeError(f"CWT claim {name} is out of range", step="cbor")


def _type_text(value: Any, other: str = "") -> str:
    """A CBOR value's type as messages name it, with the value of a float or a boolean
    (``a float (1.0)``, ``text``, ``null``); a type without a CBOR name is ``other``, by
    default its Python name."""
    name = _CBOR_TYPE_NAMES.get(type(value),
                                "null" if value is None else other or type(value).__name__)
    return f"{name} ({value!r})" if type(value) in (float, bool) else name


def _label_keys(mapping: Mapping[Any, Any], what: str, step: str) -> None:
    """Refuse a key that is neither an integer nor text (COSE labels and CWT claim keys):
    Python's ``==`` and hash would take 1.0 or True for the integer 1."""
    for key in mapping:
        if type(key) is not int and type(key) is not str:
            raise DecodeError(f"{what} has a key that is not an integer or text: "
                              f"{_type_text(key)}", step=step)


def parse_cwt(payload: bytes) -> CwtClaims:
    """Decode the CWT claims map and extract claim -260/1; raise ``DecodeError`` (step ``cbor``)."""
    if _COMPILED:
        claims = _loads_plain(payload)
        plain_keys = claims is not _SENTINEL  # the plain reader makes int and str keys only
    else:
        claims = _loads_exactly_one(payload)
        plain_keys = False
    if claims is _SENTINEL:
        claims = loads(payload, step="cbor", tags=_CWT_TAGS)
    if type(claims) is dict:  # the decoders make dicts: typed, for native lookups
        plain: dict[Any, Any] = claims
        if not plain_keys:
            _label_keys(plain, "the CWT claims map", "cbor")
        hcert_map = plain.get(CLAIM_HCERT)
        if type(hcert_map) is dict and len(hcert_map) == 1:
            dcc = hcert_map.get(1)
            iss = plain.get(CLAIM_ISS)
            if type(dcc) is dict and (iss is None or type(iss) is str) and \
                    (plain_keys or type(next(iter(hcert_map))) is int):
                return CwtClaims(iss, _int_claim(plain, CLAIM_IAT, "iat"),
                                 _int_claim(plain, CLAIM_EXP, "exp"), dcc,
                                 _int_claim(plain, CLAIM_NBF, "nbf"))
    elif isinstance(claims, Mapping):  # (against the Mapping ABC: ~0.1 µs, so dicts first)
        _label_keys(claims, "the CWT claims map", "cbor")
    else:
        raise DecodeError("the COSE payload is not a CWT claims map", step="cbor")
    hcert_map = claims.get(CLAIM_HCERT)
    if type(hcert_map) is not dict and not isinstance(hcert_map, Mapping):
        raise DecodeError("the CWT has no health certificate claim (-260)", step="cbor")
    if len(hcert_map) == 1:
        key = next(iter(hcert_map))
        if type(key) is not int and key == 1:
            raise DecodeError("claim -260 holds the EU DCC under a key that is not an "
                              f"integer: {_type_text(key)}; it must be the integer 1",
                              step="cbor")
    dcc = hcert_map.get(1)
    if len(hcert_map) != 1 or (type(dcc) is not dict and not isinstance(dcc, Mapping)):
        raise DecodeError("claim -260 must hold exactly one EU DCC (key 1)", step="cbor")
    iss = claims.get(CLAIM_ISS)
    if iss is not None and type(iss) is not str and not isinstance(iss, str):
        raise DecodeError("CWT claim iss is not a text string", step="cbor")
    return CwtClaims(
        iss=iss,
        iat=_int_claim(claims, CLAIM_IAT, "iat"),
        exp=_int_claim(claims, CLAIM_EXP, "exp"),
        hcert=dcc,
        nbf=_int_claim(claims, CLAIM_NBF, "nbf"),
    )


# --------------------------------------------------------------------------- verifying


# The header parameters vaxqr acts on: a crit that lists any other is refused.
_UNDERSTOOD: Final = frozenset({HDR_ALG, HDR_KID})


def _check_crit(msg: CoseSign1) -> None:
    """RFC 9052 §3.1: crit is protected, a non-empty array of labels, and a recipient MUST
    reject a message whose crit lists a parameter it does not understand."""
    if HDR_CRIT in msg.unprotected:
        raise VerificationError("the COSE crit parameter must be in the protected header",
                                step="signature")
    if HDR_CRIT not in msg.protected:
        return
    crit = msg.protected[HDR_CRIT]
    if type(crit) is not list or not crit or any(
            type(label) is not int and type(label) is not str for label in crit):
        raise VerificationError(
            "the COSE crit parameter must be a non-empty array of header labels",
            step="signature")
    unknown = [label for label in crit if label not in _UNDERSTOOD]
    if unknown:
        shown = ", ".join(repr(label) for label in unknown)
        many = "s" if len(unknown) > 1 else ""
        raise VerificationError(
            f"the COSE header marks parameter{many} {shown} as critical (crit), and vaxqr "
            f"does not understand {'them' if many else 'it'}", step="signature")


def check_headers(msg: CoseSign1) -> tuple[int, bytes]:
    """Return (alg, kid) or raise ``VerificationError`` (step ``signature``)."""
    protected = msg.protected
    alg = protected.get(HDR_ALG)
    kid = protected.get(HDR_KID)
    if type(alg) is int and alg in ALG_NAMES and type(kid) is bytes and len(kid) == KID_LEN \
            and HDR_CRIT not in protected and HDR_CRIT not in msg.unprotected:
        return alg, kid  # the usual headers: the checks below would all pass
    _check_crit(msg)
    alg = msg.alg
    if alg is None:
        where = " (it is only in the unprotected header)" if HDR_ALG in msg.unprotected else ""
        raise VerificationError(f"no signature algorithm in the protected header{where}",
                                step="signature")
    if alg not in ALG_NAMES:
        raise VerificationError(f"unsupported signature algorithm {alg}", step="signature")
    if HDR_KID in protected and type(protected[HDR_KID]) is not bytes:
        what = _type_text(protected[HDR_KID])
        raise VerificationError(
            f"the key identifier (kid) in the protected header is {what}, not a byte string",
            step="signature")
    kid = msg.kid
    if kid is None:
        raise VerificationError("no key identifier (kid) in the COSE headers", step="signature")
    if len(kid) != KID_LEN:
        raise VerificationError(
            f"key identifier has {len(kid)} bytes; HCERT requires {KID_LEN}", step="signature"
        )
    return alg, kid


# The DER around two 32-byte INTEGERs, by their top bits (a set top bit needs a 00 first).
_DER256_HEAD = ((b"\x30\x44\x02\x20", b"\x30\x45\x02\x20"),
                (b"\x30\x45\x02\x21\x00", b"\x30\x46\x02\x21\x00"))
_DER256_MID = (b"\x02\x20", b"\x02\x21\x00")


def _der_ecdsa(sig: bytes, size: int) -> bytes:
    """Raw ``r || s`` (``size`` bytes each) → DER ECDSA-Sig-Value, as
    ``encode_dss_signature(int(r), int(s))`` gives it (tests compare the two): each INTEGER
    minimal, with a leading 00 when its top bit is set."""
    if size > 48:  # P-521: the SEQUENCE needs a long-form length; leave it to cryptography
        return encode_dss_signature(int.from_bytes(sig[:size], "big"),
                                    int.from_bytes(sig[size:], "big"))
    if size == 32 and sig[0] and sig[32]:  # P-256 with no leading zero byte: 255 in 256
        return b"".join((_DER256_HEAD[sig[0] >> 7][sig[32] >> 7], sig[:32],
                         _DER256_MID[sig[32] >> 7], sig[32:]))
    r = sig[:size].lstrip(b"\0") or b"\0"
    s = sig[size:].lstrip(b"\0") or b"\0"
    if r[0] > 0x7F:
        r = b"\0" + r
    if s[0] > 0x7F:
        s = b"\0" + s
    return b"".join((bytes((0x30, len(r) + len(s) + 4, 2, len(r))), r, bytes((2, len(s))), s))


# The curves an ES256 signature is accepted on: P-256 (SPEC §2, HCERT §3.3.2), and P-384,
# which deployed DSCs use with alg -7 and the EU test data expects to verify (ES 401-403;
# docs/standards.md §2.3, a deliberate exception). Any other curve (secp256k1, P-192,
# brainpool, P-521, ...) is refused: "other elliptic curves are not supported".
_ES256_CURVES: Final = frozenset({"secp256r1", "secp384r1"})

# Bytes per coordinate of a public key on an accepted curve, or 0 on any other, by key
# object (``key.curve`` makes a new curve object on every call); the key is kept in the
# entry, so an id is never reused while cached.
_EC_SIZES: dict[int, tuple[ec.EllipticCurvePublicKey, int]] = {}


def _ec_size(key: ec.EllipticCurvePublicKey) -> int:
    hit = _EC_SIZES.get(id(key))
    if hit is not None and hit[0] is key:
        return hit[1]
    curve = key.curve
    size = (curve.key_size + 7) // 8 if curve.name in _ES256_CURVES else 0
    if len(_EC_SIZES) >= 1024:
        _EC_SIZES.clear()
    _EC_SIZES[id(key)] = (key, size)
    return size


def verify_signature(msg: CoseSign1, key: PublicKey, alg: int) -> None:
    """Check the signature over the received protected bytes; raise on any mismatch."""
    tbs = sig_structure(msg.protected_bytes, msg.payload)
    sig = msg.signature
    try:
        if alg == ES256:
            if _kind(key) != "ec-public":
                raise VerificationError(
                    "ES256 signature but the certificate holds an RSA key", step="signature"
                )
            ec_key = cast(ec.EllipticCurvePublicKey, key)
            # ES256 means SHA-256; a few deployed DSCs (ES 401-403) use a P-384 key with it.
            size = _ec_size(ec_key)
            if not size:
                raise VerificationError(
                    f"the signer's key is on curve {ec_key.curve.name}; ES256 needs P-256 "
                    "(or P-384)",
                    step="signature",
                )
            if len(sig) != 2 * size:
                raise VerificationError(
                    f"ES256 signature has {len(sig)} bytes; expected {2 * size} (raw r||s)",
                    step="signature",
                )
            ec_key.verify(_der_ecdsa(sig, size), tbs, _ECDSA)
        elif alg == PS256:
            if not isinstance(key, rsa.RSAPublicKey):
                raise VerificationError(
                    "PS256 signature but the certificate holds an EC key", step="signature"
                )
            if key.key_size < 2048:
                raise VerificationError("PS256 key shorter than 2048 bits", step="signature")
            key.verify(sig, tbs, _PSS, hashes.SHA256())
        else:  # pragma: no cover - check_headers filters this
            raise VerificationError(f"unsupported algorithm {alg}", step="signature")
    except InvalidSignature:
        raise VerificationError(
            "signature does not match the signer's certificate", step="signature"
        ) from None
    except ValueError as exc:
        raise VerificationError(f"signature is malformed ({exc})", step="signature") from None
