"""The vaxqr command line: the only module that prints, prompts or exits (with the command
groups it mounts, vaxqr/cli_*.py, and what only they import).

Exit codes (one enum, documented in every help page):
0 success / all valid, 1 a credential is not valid, 2 usage error, 3 trust material or I/O.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import os
import re
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from typer.core import TyperGroup

from . import __version__
from .errors import KeyCertError, ValidationError, VaxqrError, VerificationError
from .safetext import printable

if TYPE_CHECKING:
    from rich.console import Console


class Exit(enum.IntEnum):
    OK = 0
    NOT_VALID = 1
    USAGE = 2
    TRUST_OR_IO = 3


EXIT_CODES_HELP = (
    "**Exit codes:** 0 success (every credential valid) · 1 a credential is not valid · "
    "2 usage error · 3 trust material unusable or I/O error."
)


class _LazyGroup(TyperGroup):
    """The root group. The command groups (verify, issue, certs, reconcile, backup: the
    modules cli_*.py) are imported on first need, and only the one asked for: `vaxqr verify`
    starts without any of the others (~70 ms, see benchmarks/), `vaxqr issue` without the CA
    tooling (~60 ms)."""

    def _load(self, names: tuple[str, ...]) -> None:
        if not _mount(names):
            return
        full = typer.main.get_command(app)
        assert isinstance(full, TyperGroup)
        commands = dict(full.commands)  # creation order, as before
        self.commands.clear()
        self.commands.update(commands)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        cmd = super().get_command(ctx, cmd_name)
        if cmd is None:
            self._load((cmd_name,) if cmd_name in _GROUPS else tuple(_GROUPS))
            cmd = super().get_command(ctx, cmd_name)
        return cmd

    def list_commands(self, ctx: Any) -> list[str]:
        self._load(tuple(_GROUPS))
        return super().list_commands(ctx)


app = typer.Typer(
    cls=_LazyGroup,
    name="vaxqr",
    # every command group of _GROUPS is named (tests/test_cli_certs.py checks it)
    help="Signed vaccination credentials (EU DCC, HC1:) in QR codes: certs, issue, verify, "
    "reconcile, backup.\n\n"
    + EXIT_CODES_HELP,
    no_args_is_help=True,
    rich_markup_mode="markdown",
    pretty_exceptions_show_locals=False,
)

_state: dict[str, Any] = {"debug": False}


def _version(value: bool) -> None:
    if value:
        from . import NATIVE_STATE, native_modules

        compiled = native_modules()
        how = (f"compiled: {', '.join(compiled)}" if compiled else
               "pure Python" + {"stale": ", the compiled build is out of date: make setup",
                                "off": ", VAXQR_PURE is set"}.get(NATIVE_STATE, ""))
        typer.echo(f"vaxqr {__version__} ({how})")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Show the version and exit.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of internal errors "
                                        "(never local variables).")] = False,
) -> None:
    _state["debug"] = debug


# --------------------------------------------------------------------------- helpers

_console: dict[str, Console] = {}


def console(*, err: bool = False) -> Console:
    """rich consoles, created lazily (honour NO_COLOR / FORCE_COLOR and plain pipes)."""
    key = "err" if err else "out"
    if key not in _console:
        from rich.console import Console

        _console[key] = Console(stderr=err, highlight=False, soft_wrap=True)
    return _console[key]


# rich.markup.escape's pattern, tried only where a run of backslashes starts: rich's own
# tries it at every backslash of a run, quadratic (a minute for 150,000 backslashes)
_MARKUP_TAG = re.compile(r"(?<!\\)(\\*)(\[[a-z#/@][^[]*?])")


SAFE_MAX = 2000  # characters of one untrusted text shown in a message


def safe(text: object) -> str:
    """``printable`` text with rich markup escaped, for rich consoles: what
    ``rich.markup.escape`` returns, in linear time, of at most :data:`SAFE_MAX` characters
    (rich's markup parser, which every console.print runs, is quadratic in a run of
    backslashes too: 100,000 of them in an --at value took minutes)."""
    shown = printable(text)
    if len(shown) > SAFE_MAX:
        shown = f"{shown[:SAFE_MAX]}… ({len(shown):,} characters)"
    out = _MARKUP_TAG.sub(lambda m: f"{m[1]}{m[1]}\\{m[2]}", shown)
    return out + "\\" if out.endswith("\\") and not out.endswith("\\\\") else out


def _use_colour(stream: Any = None) -> bool:
    """Whether to colour ``stream`` (default stdout), as rich decides: NO_COLOR wins,
    FORCE_COLOR forces, else a real terminal."""
    env = os.environ
    if env.get("NO_COLOR"):
        return False
    if env.get("FORCE_COLOR"):
        return True
    if env.get("TERM", "") in ("dumb", "unknown"):
        return False
    try:
        return bool((stream or sys.stdout).isatty())
    except (AttributeError, ValueError):
        return False


def fail(message: str, *, code: Exit, hint: str | None = None) -> NoReturn:
    err = console(err=True)
    err.print(f"[bold red]error:[/] {safe(message)}")
    if hint:
        err.print(f"  hint: {safe(hint)}")
    raise typer.Exit(int(code))


def fail_from(exc: VaxqrError) -> NoReturn:
    # a credential refused for what a checkpoint would find (a reprint of an expired or
    # revoked one): 1, "a credential is not valid", as README's table of exit codes says
    code = (Exit.USAGE if isinstance(exc, ValidationError) else
            Exit.NOT_VALID if isinstance(exc, VerificationError) else Exit.TRUST_OR_IO)
    fail(str(exc), code=code, hint=exc.hint)


@contextlib.contextmanager
def progress_bar(label: str, *, unit: str) -> Iterator[Callable[[int, int], None] | None]:
    """The ``progress(done, total)`` callback a library flow takes, drawing a transient rich
    progress bar on stderr, or None when stderr is not a terminal (a pipe, a log file).
    ``unit``: ``bytes`` (sizes and transfer speed), else what is counted (``rows``: N/M and
    rows/s). rich (~15 ms to import) is loaded at the first call; the bar is gone when the
    block ends, however it ends (Ctrl-C included), before anything else is printed."""
    if not sys.stderr.isatty():
        yield None
        return
    bar: dict[str, Any] = {}

    def progress(done: int, total: int) -> None:
        if "p" not in bar:
            from rich import progress as rp

            rate = rp.TextColumn("[progress.data.speed]{task.fields[rate]}")
            counts: tuple[Any, ...] = (
                (rp.DownloadColumn(), rp.TransferSpeedColumn()) if unit == "bytes"
                else (rp.MofNCompleteColumn(), rate))
            bar["p"] = rp.Progress(label, rp.BarColumn(), *counts, rp.TimeRemainingColumn(),
                                   console=console(err=True), transient=True)
            bar["p"].start()
            bar["t"] = bar["p"].add_task(label, total=total or None, rate="")
        speed = bar["p"].tasks[0].speed
        bar["p"].update(bar["t"], completed=done, total=total or None,
                        rate=f"{speed:,.0f} {unit}/s" if speed else "")

    try:
        yield progress
    finally:
        if "p" in bar:
            bar["p"].stop()


def warn(message: str) -> None:
    """A warning on stderr, written directly (rich's console costs ~15 ms to import, and
    the demo key's warning comes with every batch)."""
    label = "\x1b[33mwarning:\x1b[0m" if _use_colour(sys.stderr) else "warning:"
    sys.stderr.write(f"{label} {printable(message)}\n")


# --------------------------------------------------------------------------- output

class OutputError(Exception):
    """Writing our own output (stdout) failed, e.g. a full disk: ``main`` says so, exit 3."""

    def __init__(self, exc: OSError) -> None:
        super().__init__(exc.strerror or str(exc))
        self.reader_gone = isinstance(exc, BrokenPipeError)  # `| head`: nothing to say


class _Closed:
    """What stands for stdout or stderr when the shell closed it (``>&-``, ``2>&-``: Python
    makes it None): stdout refuses every write with :class:`OutputError` ("stdout is
    closed", exit 3, and only when something was to be written there: `issue --out FILE`
    writes nothing on stdout); stderr, which nothing can be said on, drops what it is
    given."""

    encoding, errors = "utf-8", "strict"

    def __init__(self, name: str) -> None:
        self.name = name

    def write(self, text: str) -> int:
        if self.name == "stdout" and text:
            raise OutputError(OSError(errno.EBADF, "stdout is closed"))
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        raise OSError(errno.EBADF, f"{self.name} is closed")


# Reports waiting to be written: stdout is written in blocks (one encode and one write for
# many reports), and always before the stream waits for more input (``flush_out``).
pending: list[str] = []
PENDING_MAX = 64


def write_pending() -> None:
    text = "".join(pending)
    pending.clear()  # written or failed: never written twice
    try:
        sys.stdout.write(text)
    except OSError as exc:
        raise OutputError(exc) from exc


def flush_out() -> None:
    if pending:
        write_pending()
    try:
        sys.stdout.flush()
    except OSError as exc:
        raise OutputError(exc) from exc



# --------------------------------------------------------------------------- sub-apps


def _mount_verify() -> None:
    from . import cli_verify  # noqa: F401  (registers `verify` on app)


def _mount_issue() -> None:
    from . import cli_issue  # noqa: F401  (registers `issue` on app)


def _mount_certs() -> None:
    from .cli_certs import certs_app

    app.add_typer(certs_app, name="certs")


def _mount_reconcile() -> None:
    from . import cli_reconcile  # noqa: F401  (registers `reconcile` on app)


def _mount_backup() -> None:
    from . import cli_backup  # noqa: F401  (registers `backup` on app)


# The command groups outside this module, in the order help lists them.
_GROUPS = {"verify": _mount_verify, "issue": _mount_issue, "certs": _mount_certs,
           "reconcile": _mount_reconcile, "backup": _mount_backup}


def _mount(names: tuple[str, ...]) -> bool:
    """Register the named command groups on ``app`` (each once); whether any was new."""
    mounted: set[str] = _state.setdefault("mounted", set())
    new = [n for n in _GROUPS if n in names and n not in mounted]
    for name in new:
        mounted.add(name)
        _GROUPS[name]()
    return bool(new)


def end_at_once() -> None:
    """Have :func:`main` end the process with ``os._exit`` when the command returns: for a
    command whose every file is written and closed (the interpreter's teardown of NumPy,
    cryptography and the rest costs a batch ~25 ms)."""
    _state["exit_now"] = True


def _exit_now(code: object) -> NoReturn:
    """End the process at once with ``code`` (as SystemExit would), skipping the
    interpreter's teardown of every module and object: ~12 ms of a one-shot verify's
    ~90 ms (benchmarks/README.md). Only after a command that wrote nothing but its output."""
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:
        sys.stderr.write(f"{code}\n")
        status = 1
    try:
        if pending:  # (verify writes its reports before it ends: nothing is left here)
            sys.stdout.write("".join(pending))
        sys.stdout.flush()
    except BrokenPipeError:
        pass  # the reader went away (`| head`): nothing more can be said to it
    except (OSError, ValueError) as exc:  # e.g. a full disk: the output is incomplete
        sys.stderr.write(f"error: could not write the output: {exc}\n")
        status = int(Exit.TRUST_OR_IO)
    try:
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    os._exit(status)


def _escape_what_cannot_be_shown() -> None:
    """Have stdout and stderr write what their encoding cannot hold as escapes instead of
    failing: an ASCII or Latin-1 terminal (``PYTHONIOENCODING=ascii``, a Latin-1 locale)
    shows ``Nguy\\u1ec5n`` (:mod:`vaxqr.safetext`'s ``json_escapes`` for --json, else
    ``ascii_words``: ``→`` as ``->`` too), never a UnicodeEncodeError.
    A UTF-8 stream (the usual case, and Python's own in the C locale) is left as it is."""
    import codecs

    from .safetext import ascii_words, json_escapes

    codecs.register_error("vaxqr-json", json_escapes)
    codecs.register_error("vaxqr-words", ascii_words)
    # --json's stdout is data: escapes a JSON parser reads back; what is for people is
    # written with ASCII words for vaxqr's own marks (→ as ->)
    data = "vaxqr-json" if "--json" in sys.argv[1:] else "vaxqr-words"
    for stream, errors in ((sys.stdout, data), (sys.stderr, "vaxqr-words")):
        try:
            if codecs.lookup(stream.encoding).name.startswith("utf"):
                continue
            stream.reconfigure(errors=errors)
        except (AttributeError, LookupError, TypeError, ValueError, OSError):
            continue  # closed (`>&-`), or not a text file: nothing to set


def _stop(signum: int, _frame: object) -> None:
    """SIGTERM and SIGHUP (a closed SSH session) end a command as Ctrl-C does, so that a
    batch ends as after Ctrl-C (everything signed in the ledger, no half-written file,
    "run the same command again"), not in the middle of its work. A forked helper
    process ignores SIGHUP, as it does Ctrl-C: its parent ends the work. SIGTERM ends one
    at once, as it did: it is how a process pool's terminate() (reconcile's, when its
    parent stops) and the batch's renderers' ends them; ignored, reconcile's parent waited
    forever for a worker blocked on the pool's queue, and a second signal left that worker
    behind. A second signal ends the process at once."""
    import signal

    if os.getpid() != _state.get("pid"):
        if signum == signal.SIGTERM:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
        return

    signal.signal(signum, signal.SIG_DFL)
    _state["signal"] = signum
    if signum == signal.SIGHUP and sys.stderr.isatty():  # the terminal is gone
        sys.stderr = _Closed("stderr")  # type: ignore[assignment]
    raise KeyboardInterrupt


def _interrupt(signum: int, frame: Any) -> None:
    """Ctrl-C: Python's own KeyboardInterrupt, remembered (:func:`checked_progress`)."""
    import signal

    _state["interrupt"] = True
    signal.default_int_handler(signum, frame)


def _on_signals() -> None:
    import signal

    _state["pid"] = os.getpid()
    for name in ("SIGTERM", "SIGHUP"):
        number = getattr(signal, name, None)
        if number is not None and signal.getsignal(number) is signal.SIG_DFL:
            signal.signal(number, _stop)  # (an ignored one, `nohup`, stays ignored)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _interrupt)


def checked_progress(progress: Callable[[int, int], None] | None
                     ) -> Callable[[int, int], None]:
    """``progress`` (or nothing) for a long library flow, which calls it between its steps
    (a batch: after each chunk is committed), raising KeyboardInterrupt there when Ctrl-C,
    SIGTERM or SIGHUP came and the KeyboardInterrupt they raised did not end the flow: one
    raised while C code (an encoder, a finaliser) had called back into Python can be
    printed as "Exception ignored" and dropped, and the batch went on to the end, exit 0
    (seen in a test, 1 run in ~20). Here it is raised again where stopping is safe."""
    def checked(done: int, total: int) -> None:
        if _state.get("signal") or _state.get("interrupt"):
            raise KeyboardInterrupt
        if progress is not None:
            progress(done, total)

    return checked


def _interrupted_code(code: object) -> object:
    """Exit 130 of a Ctrl-C, as 128 + the signal's number for SIGTERM (143) and SIGHUP
    (129), as the shell shows a process those signals ended."""
    signum = _state.get("signal")
    return 128 + signum if code == 130 and signum else code


def _narrow_help() -> None:
    """On a terminal narrower than :data:`vaxqr.cli_help.NARROW`, help pages stack their
    option and command tables (option names were cut at 40 columns)."""
    import shutil

    from .cli_help import NARROW, stack_narrow_help

    if shutil.get_terminal_size().columns < NARROW:
        stack_narrow_help()


def main() -> None:
    """Console-script entry point: no traceback reaches the user unless ``--debug``."""
    if sys.stdout is None:
        sys.stdout = _Closed("stdout")  # type: ignore[assignment]
    if sys.stderr is None:
        sys.stderr = _Closed("stderr")  # type: ignore[assignment]
    _escape_what_cannot_be_shown()
    _on_signals()
    if "--help" in sys.argv[1:] or len(sys.argv) <= 2:  # a help page, or may be one
        _narrow_help()
    # vaxqr does no linear algebra; an OpenBLAS thread pool, started when NumPy is
    # imported, spins ~40 ms of CPU that the batch's renderers need (benchmarks/README.md)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    try:
        app(standalone_mode=True)
    except SystemExit as exc:
        cause = exc.__context__.__cause__ if exc.__context__ is not None else None
        if exc.code == 130 and isinstance(cause, KeyboardInterrupt):
            sys.stderr.write("interrupted\n")  # typer ends a command's Ctrl-C with no word
        if isinstance(exc.__context__, BrokenPipeError):  # click's exit 1 for `--help | head`
            _exit_now(int(Exit.TRUST_OR_IO))  # the reader went away: quietly, as below
        code = _interrupted_code(exc.code)
        if _state.get("exit_now"):
            _exit_now(code)
        if code != exc.code:
            raise SystemExit(code) from None
        raise
    except KeyboardInterrupt:  # Ctrl-C before a command runs (typer reading the commands)
        sys.stderr.write("interrupted\n")
        _exit_now(_interrupted_code(130))
    except KeyCertError as exc:  # pragma: no cover - commands handle their own
        fail_from(exc)
    except OutputError as exc:  # e.g. a full disk under stdout: the verdicts are incomplete
        if _state.get("debug"):
            raise
        if not exc.reader_gone:  # `verify - | head -3`: what was wanted was read, quietly
            sys.stderr.write(f"error: could not write the output: {exc}\n")
        _exit_now(int(Exit.TRUST_OR_IO))
    except Exception as exc:  # pragma: no cover - last line of defence
        if _state.get("debug"):
            raise
        sys.stderr.write(f"error: internal error ({type(exc).__name__}); "
                         "run again with --debug for details\n")
        sys.exit(int(Exit.TRUST_OR_IO))
