"""Key passwords for the commands that need one (``certs``, ``issue``): a password file,
then the environment, then a hidden prompt on a terminal; and the yes/no question an
irreversible command asks (:func:`confirm`).

Kept apart from :mod:`vaxqr.cli_certs` so that ``vaxqr issue`` does not import the CA
tooling and rich's tables to ask for a password (~60 ms of its start-up).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from . import keys
from .cli import Exit, fail
from .errors import VaxqrError, WrongPasswordError

PASSWORD_ENV = "VAXQR_PASSWORD"


class Usage(Exception):
    """A usage problem found after option parsing (exit 2)."""


def read_password_file(path: Path) -> bytes:
    try:
        if str(path) == "-":
            data = sys.stdin.buffer.readline()
        else:
            data = path.read_bytes()
    except OSError as exc:
        raise Usage(f"cannot read the password file {path}: {exc.strerror or exc}") from None
    data = data.split(b"\n", 1)[0].removesuffix(b"\r")
    if not data:
        raise Usage(f"the password file {path} is empty")
    return data


def _ask(prompt: str, *, confirm: bool) -> bytes:
    """A hidden prompt on the terminal. Ctrl-C (or Ctrl-D) there ends the command as a
    Ctrl-C anywhere does ("interrupted", exit 130), not with click's "Aborted!" and exit 1,
    which is the code for a credential that is not valid."""
    try:
        value = typer.prompt(prompt, hide_input=True, confirmation_prompt=confirm, err=True)
    except typer.Abort:  # click's, whether typer vendors click (>= 0.2x) or not
        raise KeyboardInterrupt from None
    return str(value).encode("utf-8")


#: Tries a typed password gets (never one from a file or the environment: a script's
#: wrong password is not mistyped, and fails at once).
TRIES = 3


def _ask_existing(key_path: Path, what: str) -> bytes:
    """The password of the existing key ``key_path``, typed at a hidden prompt: a password
    that does not open it (a typing slip) is asked again, saying how many tries are left,
    :data:`TRIES` in all (one key derivation each, ~0.1 s). The last one is returned
    unchecked: the command opening the key then says what is wrong and what to do."""
    for left in range(TRIES - 1, 0, -1):
        pw = _ask(f"Password for {what}", confirm=False)
        try:
            keys.load_private_key(key_path, pw)
        except WrongPasswordError:
            sys.stderr.write(f"Wrong password: {left} {'try' if left == 1 else 'tries'} "
                             "left.\n")
            continue
        except VaxqrError:  # not a password problem: the command says it
            pass
        return pw
    return _ask(f"Password for {what}", confirm=False)


def _interactive() -> bool:
    return sys.stdin.isatty() and sys.stderr.isatty()


def confirm(question: str, *, yes: bool, refusal: str) -> bool:
    """Whether to go on with something that cannot be undone: ``yes`` (the command's
    ``--yes``), else ``question`` asked on the terminal, No unless answered yes. With no
    terminal to ask on (a script, a pipe) and no ``yes``: :class:`Usage` with ``refusal``,
    never a silent yes."""
    if yes:
        return True
    if not _interactive():
        raise Usage(refusal)
    try:
        return bool(typer.confirm(question, default=False, err=True))
    except typer.Abort:  # Ctrl-C or Ctrl-D at the question: "interrupted", as in _ask
        raise KeyboardInterrupt from None


def existing_password(
    key_path: Path, password_file: Path | None, envs: tuple[str, ...], what: str, *,
    option: str = "--password-file",
) -> bytes | None:
    """The password of an existing key (None when the key is not encrypted); ``option``
    is the command's option that gives it, named when none is available."""
    if key_path.exists() and not keys.key_is_encrypted(key_path):
        return None
    if password_file is not None:
        return read_password_file(password_file)
    for name in envs:
        value = os.environ.get(name)
        if value:
            return value.encode("utf-8")
    if _interactive():
        return _ask_existing(key_path, what)
    raise Usage(
        f"a password is needed for {key_path}: use {option} FILE or "
        f"{' / '.join(envs)} (no terminal to ask on)"
    )


def new_password(password_file: Path | None, insecure: bool, what: str, *,
                 env: str = PASSWORD_ENV, option: str = "--password-file") -> bytes | None:
    """The password for a new key (None with ``insecure``: an unencrypted key):
    ``password_file``, then ``$env``, then a confirmed hidden prompt on a terminal."""
    if insecure:
        if password_file is not None:
            raise Usage("--insecure-no-password and --password-file contradict each other")
        return None
    if password_file is not None:
        return read_password_file(password_file)
    value = os.environ.get(env)
    if value:
        return value.encode("utf-8")
    if _interactive():
        while True:  # a terminal is asked again for a password too short
            pw = _ask(f"New password for {what}", confirm=True)
            if len(pw.decode("utf-8", "replace")) >= keys.MIN_PASSWORD_LEN:
                return pw
            sys.stderr.write(f"A new password needs at least {keys.MIN_PASSWORD_LEN} "
                             "characters.\n")
    raise Usage(
        f"a password is needed to encrypt {what}: use {option} or {env}"
        + (" (or --insecure-no-password for an unencrypted key)"
           if option == "--password-file" else " (no terminal to ask on)")
    )


def read_password(
    password_file: Path | None,
    *,
    confirm: bool,
    what: str,
    key: Path | None = None,
    envs: tuple[str, ...] = (PASSWORD_ENV,),
) -> bytes | None:
    """A password for other commands (``vaxqr issue``): ``password_file``, then ``envs``,
    then a hidden prompt on a terminal (with confirmation when ``confirm``). Returns None
    when ``key`` is given and is not encrypted. Exits with code 2 when none is available."""
    try:
        if confirm:
            return new_password(password_file, False, what)
        return existing_password(key or Path("/nonexistent"), password_file, envs, what)
    except Usage as exc:
        fail(str(exc), code=Exit.USAGE)
