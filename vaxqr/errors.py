"""One error root for the whole library, with a few typed leaves.

Every third-party exception (``zlib.error``, cbor2 decode errors, cryptography's
``ValueError``) is wrapped at the boundary with ``raise ... from``, so callers only ever
catch :class:`VaxqrError`. Each error carries an optional one-line ``hint`` the CLI shows.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class VaxqrError(Exception):
    """Root of every error vaxqr raises on purpose."""

    hint: str | None = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        if hint is not None:
            self.hint = hint

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class DecodeError(VaxqrError):
    """Input could not be decoded (prefix, Base45, zlib, CBOR, COSE structure, QR)."""

    def __init__(self, message: str, *, step: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.step = step


class VerificationError(VaxqrError):
    """A credential was decoded but failed a check (signature, key usage, expiry, schema...)."""

    def __init__(self, message: str, *, step: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.step = step


class ValidationError(VaxqrError):
    """Input data (a citizen record, a CLI value, a CCCD payload) is not acceptable."""


class KeyCertError(VaxqrError):
    """A key, certificate, CRL or trust list is unusable (wrong password, bad format, bad chain)."""


class WrongPasswordError(KeyCertError):
    """An encrypted key does not open with the password given (or its file is damaged: the
    two look the same)."""


class TrustError(KeyCertError):
    """Trust material is unusable: bad signature, rolled-back sequence, expired list."""


class SetupError(VaxqrError):
    """This machine lacks something vaxqr needs to do the work asked (no QR decoder can be
    loaded): a problem of its installation, not of the input, which its hint says how to
    fix."""


class StorageError(VaxqrError):
    """A file or database could not be read or written (I/O, disk full, refuses to overwrite)."""


class DiskFullError(StorageError):
    """A write failed for want of space (ENOSPC, SQLite's "database or disk is full"). Its
    hint says what the command leaves behind, which depends on the command (a resumable
    batch keeps what it did; a backup leaves no partial archive): the place that writes
    raises it with the neutral :func:`full_disk_hint`, and the caller that knows what was
    left gives it its own with :func:`when_full`."""


def full_disk_hint(then: str = "try again", left: str = "") -> str:
    """The one wording of a full disk's hint: ``free some space and THEN``, then ``: LEFT``
    (what the command left behind, and so what the next run needs) when the caller knows it.
    The default claims nothing about what was kept."""
    return f"free some space and {then}" + (f": {left}" if left else "")


@contextmanager
def when_full(hint: str) -> Iterator[None]:
    """Give a :class:`DiskFullError` raised in the block ``hint`` (the caller's, who knows
    what the command left behind), with the same message."""
    try:
        yield
    except DiskFullError as exc:
        raise DiskFullError(exc.message, hint=hint) from exc
