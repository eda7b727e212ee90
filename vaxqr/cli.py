"""The vaxqr command line: the only module that prints, prompts or exits.

Exit codes (one enum, documented in every help page):
0 success / all valid, 1 a credential is not valid, 2 usage error, 3 trust material or I/O.
"""

from __future__ import annotations

import contextlib
import enum
import os
import re
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from typer.core import TyperGroup

from . import __version__
from .errors import KeyCertError, StorageError, ValidationError, VaxqrError
from .safetext import printable

if TYPE_CHECKING:
    from rich.console import Console

    from .verify import Report


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
    """The root group. The other command groups (issue, certs, reconcile, backup) are imported on
    first need, and only the one asked for: `vaxqr verify` starts without any of them
    (~70 ms, see benchmarks/), `vaxqr issue` without the CA tooling (~60 ms)."""

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
    help="Signed vaccination credentials (EU DCC, HC1:) in QR codes: certs, issue, verify.\n\n"
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
    code = Exit.USAGE if isinstance(exc, ValidationError) else Exit.TRUST_OR_IO
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


def parse_time(value: str | None) -> datetime | None:
    if value is None:
        return None
    text = value.strip().replace("Z", "+00:00")
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        fail(f"--at: not an ISO 8601 time: {value!r}", code=Exit.USAGE,
             hint="for example 2021-12-01T08:00:00+07:00")
    dt = dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt
    try:
        dt.astimezone(UTC)  # 9999-12-31T23:59-12:00 is past what a datetime can hold in UTC
    except OverflowError:
        fail(f"--at: {value!r} is out of range", code=Exit.USAGE,
             hint="for example 2021-12-01T08:00:00+07:00")
    return dt


# --------------------------------------------------------------------------- verify

_IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM", b"RIFF")
# A file named as a picture is read as one even when its bytes are not (a damaged or
# mislabelled photo gets one verdict failing at "picture", not one per line of garbage).
_IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif",
                             ".tiff", ".heic"})
MAX_LINE = 64 * 1024


_FILE_SUFFIXES = (".png", ".jpg", ".jpeg", ".txt", ".gif", ".bmp", ".webp", ".hc1", ".pdf",
                  ".svg", ".tif", ".tiff", ".heic")
# vaxqr issue --format svg / --card pdf write these; verify reads neither (one verdict each)
_VECTOR = {
    ".pdf": "a PDF is not read: verify the card's PNG, or a photo or screenshot of its QR code",
    ".svg": "an SVG picture is not read: verify the QR code's PNG (vaxqr issue writes PNG "
            "unless --format svg), or a photo or screenshot of it",
}


def _is_path(arg: str) -> bool:
    """Whether an INPUT names a file (else it is payload text). One that exists is a file
    (or a directory: an error of its own). One that does not is a missing file when it
    could only be a name: text has a ':' (``HC1:``, URLs, ``shc:/``, ``WIFI:``…), a ``|``
    (a CCCD card's QR) or a line break, or is longer than any file name; a name with a
    picture's or text file's suffix is a file even with a ':' past its first five
    characters. A checkpoint is never told a credential is not valid when nothing was read."""
    if len(arg) > 4096 or "\0" in arg or not arg.strip():
        return False
    try:
        if os.path.lexists(arg):
            return True
    except (OSError, ValueError):
        return False
    if ":" not in arg[:5] and arg.lower().endswith(_FILE_SUFFIXES):
        return True
    if any(c in arg for c in ":|\n\r"):
        return False
    return all(len(part.encode("utf-8", "surrogateescape")) <= 255 for part in arg.split("/"))


_LABEL_HEAD, _LABEL_TAIL = 20, 6


def _text_label(arg: str) -> str:
    """The label of a payload given as an argument: the text itself, abbreviated (its
    head and tail: two payloads of one signer can share a long head). Escaped where it
    is shown, like every label."""
    text = arg.strip()
    if len(text) <= _LABEL_HEAD + _LABEL_TAIL + 4:
        return text
    return f"{text[:_LABEL_HEAD]}…{text[-_LABEL_TAIL:]}"


class _NothingRead(Exception):
    """An input gave nothing to verify: ``verify`` says why, exit 3 (and a JSON object)."""


class OutputError(Exception):
    """Writing our own output (stdout) failed, e.g. a full disk: ``main`` says so, exit 3."""

    def __init__(self, exc: OSError) -> None:
        super().__init__(exc.strerror or str(exc))


# Reports waiting to be written: stdout is written in blocks (one encode and one write for
# many reports), and always before the stream waits for more input (``_flush_out``).
_pending: list[str] = []
_PENDING_MAX = 64


def _write_pending() -> None:
    text = "".join(_pending)
    _pending.clear()  # written or failed: never written twice
    try:
        sys.stdout.write(text)
    except OSError as exc:
        raise OutputError(exc) from exc


def _flush_out() -> None:
    if _pending:
        _write_pending()
    try:
        sys.stdout.flush()
    except OSError as exc:
        raise OutputError(exc) from exc


def _report_writer(*, as_json: bool) -> Any:
    """A function that prints one report: a JSON line, or the human rendering (the caller
    flushes stdout before it waits for more input)."""
    pending = _pending
    if as_json:
        from .verify import report_json_text

        def emit_json(report: Report) -> None:
            pending.append(report_json_text(report))
            pending.append("\n")
            if len(pending) >= _PENDING_MAX:
                _write_pending()

        return emit_json
    from .verify_view import render

    color = _use_colour()

    def emit_text(report: Report) -> None:
        pending.append(render(report, printable, color=color))
        if len(pending) >= _PENDING_MAX:
            _write_pending()

    return emit_text


def _read_stdin_blocks(before_wait: Any = None) -> Any:
    """Lists of the lines from stdin, one list per read, each line as soon as it arrives,
    ended by LF, CR (many handheld scanners) or CRLF; a line over MAX_LINE bytes is dropped
    (memory stays bounded) and is None. ``before_wait`` is called before each read that may
    block (to flush the output: a scanner's user sees each verdict at once, a piped file is
    written in large blocks)."""
    stream = sys.stdin.buffer
    read = getattr(stream, "read1", stream.read)
    buf = b""
    too_long = skip_lf = False
    while True:
        if before_wait is not None:
            before_wait()
        chunk = read(MAX_LINE)
        if not chunk:
            break
        if skip_lf and chunk.startswith(b"\n"):
            chunk = chunk[1:]  # the LF of a CRLF split across two reads
        skip_lf = False
        buf = buf + chunk if buf else chunk
        end = max(buf.rfind(b"\n"), buf.rfind(b"\r"))  # the last line end of buf
        if end >= 0:
            cut = end - 1 if buf[end] == 0x0A and end and buf[end - 1] == 0x0D else end
            # a CR that ends this read: its LF may start the next
            skip_lf = cut == end and end + 1 == len(buf) and buf[end] == 0x0D
            # all the complete lines at once, decoded together: a UTF-8 error cannot span
            # a CR or LF (ASCII), so this is each line decoded on its own
            text = buf[:cut].decode("utf-8", errors="replace")
            buf = buf[end + 1:]
            if "\r" in text:
                text = text.replace("\r\n", "\n").replace("\r", "\n")
            lines: list[str | None] = text.split("\n")  # type: ignore[assignment]
            if too_long:
                too_long = False
                lines[0] = None
            yield lines
        if len(buf) > MAX_LINE:
            buf, too_long = b"", True
    if too_long:
        yield [None]
    elif buf:
        yield [buf.decode("utf-8", errors="replace")]


def _read_stdin_lines(before_wait: Any = None) -> Any:
    """The lines of :func:`_read_stdin_blocks` one by one."""
    for lines in _read_stdin_blocks(before_wait):
        yield from lines


@app.command()
def verify(
    inputs: Annotated[list[str], typer.Argument(
        help="HC1: text, an image (PNG/JPEG), a text file (one payload per line), "
             "or - for stdin (one payload per line, e.g. a handheld scanner).",
        show_default=False)],
    trust: Annotated[list[Path], typer.Option(
        "--trust", "-t", help="Trusted certificates (PEM/DER: DSCs are trusted as is, CA "
        "certificates anchor chains), vaxqr trust lists, or directories of them.",
        show_default=False)],
    at: Annotated[str | None, typer.Option(
        help="Validation time, ISO 8601 (default: now).")] = None,
    id_card: Annotated[str | None, typer.Option(
        "--id-card", help="The holder's CCCD card QR: its text, or an image of it.")] = None,
    as_json: Annotated[bool, typer.Option(
        "--json", help="One JSON object per input per line (JSON Lines).")] = False,
    state: Annotated[Path | None, typer.Option(
        help="State file for trust-list sequence numbers (default: under the user's state "
             "directory).")] = None,
) -> None:
    """Verify vaccination credentials: VALID or NOT VALID, with the reason.

    **Examples**

    * `vaxqr verify 'HC1:6BF...' --trust ca.crt --trust trustlist.json`
    * `vaxqr verify photo.jpg --trust dsc.pem --id-card card.jpg`
    * `scanner | vaxqr verify - --trust trustlist.json --json`

    Steps, each pass/fail/skipped: picture, prefix, base45, zlib, cose, cbor, signature,
    key_usage, expiry, schema, revocation, holder.

    **Exit codes:** 0 all valid · 1 any not valid · 2 usage error · 3 trust material or I/O.
    """
    from .verify import Verifier, verify_image

    _state["exit_now"] = True  # read-only: nothing to finish at exit but stdout (see main)
    when = parse_time(at)
    store = _load_trust(trust, when, state)
    for w in store.warnings:
        warn(w)
    verifier = Verifier(store, at=when)
    holder = _load_id_card(id_card) if id_card is not None else None
    worst = Exit.OK
    print_report = _report_writer(as_json=as_json)

    def emit(report: Report) -> None:
        nonlocal worst
        print_report(report)
        if not report.valid:
            worst = max(worst, Exit.NOT_VALID)

    def nothing_read(label: str, message: str) -> None:
        """An input that gave nothing to verify: said on stderr, not as a verdict (a
        checkpoint must not be told a credential is not valid when none was read); with
        --json also its object on stdout (one per input), failed at step "input"; exit 3."""
        nonlocal worst
        _flush_out()
        console(err=True).print(f"[bold red]error:[/] {safe(message)}")
        if as_json:
            print_report(verifier.input_failure(label, message, holder=holder is not None))
        worst = max(worst, Exit.TRUST_OR_IO)

    try:
        for arg in inputs:
            _flush_out()  # the reports so far before any error about this input
            try:
                if arg == "-":
                    worst = max(worst, _verify_stdin(verifier, holder, as_json=as_json))
                elif _is_path(arg):
                    path = Path(arg)
                    if path.is_dir():
                        raise _NothingRead(f"{arg} is a directory, not a picture or a text "
                                           "file")
                    try:
                        with path.open("rb") as fh:
                            head = fh.read(8)
                    except OSError as exc:
                        raise _NothingRead(f"cannot read {arg}: {exc.strerror}") from exc
                    if not head:
                        raise _NothingRead(f"{arg} is empty")
                    vector = _VECTOR.get(path.suffix.lower()) or (
                        _VECTOR[".pdf"] if head.startswith(b"%PDF") else
                        _VECTOR[".svg"] if head.startswith((b"<?xml", b"<svg")) else None)
                    if vector:
                        emit(verifier.picture_failure(arg, vector, holder=holder is not None))
                    elif head.startswith(_IMAGE_MAGIC) or path.suffix.lower() in _IMAGE_SUFFIXES:
                        reports, _card = verify_image(verifier, path, label=arg, holder=holder)
                        for r in reports:
                            emit(r)
                    else:
                        _verify_text_file(verifier, path, arg, holder, emit)
                elif not arg.strip():
                    raise _NothingRead("an empty argument: no HC1: text to verify")
                else:
                    emit(verifier.verify_text(arg, label=_text_label(arg), holder=holder))
            except _NothingRead as exc:
                nothing_read("stdin" if arg == "-" else arg, str(exc))
            except VaxqrError as exc:
                nothing_read("stdin" if arg == "-" else arg, _about(arg, str(exc)))
    except BaseException:
        if _pending:  # the reports made so far are written, whatever stopped the rest
            _write_pending()
        raise
    _flush_out()
    raise typer.Exit(int(worst))


_BLOCK = 32  # stream lines verified and written together


def _about(arg: str, message: str) -> str:
    """``arg: message``, or ``message`` alone when it names the file ``arg`` already (as
    "FILE is larger than …" and "cannot read FILE: …" do), so the name is not said twice."""
    for name in dict.fromkeys((arg, str(Path(arg)))):
        if name and (message.startswith((f"{name} ", f"{name}:")) or f" {name}:" in message
                     or message.endswith(f" {name}")):
            return message
    return f"{arg}: {message}"


def _verify_stdin(verifier: Any, holder: Any, *, as_json: bool) -> Exit:
    """``verify -``: a report per non-empty line of stdin (``stdin:N``), each block of
    lines verified and rendered by compiled code (verify_view.render_lines) and written at
    once; stdout is flushed before every read that may wait (a scanner's user sees each
    verdict as soon as the line is scanned)."""
    from .verify_view import render_lines

    color = _use_colour()
    too_long = f"line longer than {MAX_LINE // 1024} KiB: not an HC1 credential"
    worst = Exit.OK
    done = 0
    verified = False  # a report was made (render_lines puts each on _pending)
    for lines in _read_stdin_blocks(_flush_out):
        for i in range(0, len(lines), _BLOCK):
            block = lines[i:i + _BLOCK] if len(lines) > _BLOCK else lines
            if render_lines(_pending, verifier, block, done, holder=holder, too_long=too_long,
                            as_json=as_json, printable=printable, color=color):
                worst = Exit.NOT_VALID
            done += len(block)
            verified = verified or bool(_pending)
            _write_pending()
    if not verified:  # an empty stream is not "every credential valid"
        raise _NothingRead("no input read from stdin" if not done else
                           "no HC1: text read from stdin: only blank lines")
    return worst


def _verify_text_file(verifier: Any, path: Path, arg: str, holder: Any, emit: Any) -> None:
    if path.stat().st_size > 16 * 1024 * 1024:
        raise StorageError(f"{path} is larger than 16 MiB; not a file of scanned payloads")
    raw = path.read_bytes()
    # Notepad's "Unicode" is UTF-16 with a byte-order mark: read as such, not as garbage
    utf16 = raw.startswith((b"\xff\xfe", b"\xfe\xff"))
    data = raw.decode("utf-16" if utf16 else "utf-8", errors="replace")
    lines = [ln for ln in data.splitlines() if ln.strip()]
    if not lines:  # nothing to verify: not a verdict (see _NothingRead)
        raise _NothingRead(f"{arg} is empty" if not raw else
                           f"no HC1: text in {arg}: only blank lines")
    for n, line in enumerate(lines, 1):
        label = str(path) if len(lines) == 1 else f"{path}:{n}"
        emit(verifier.verify_text(line, label=label, holder=holder))


def _load_trust(paths: list[Path], when: datetime | None, state: Path | None) -> Any:
    from .trust import TrustStore

    try:
        return TrustStore.from_paths(paths, at=when or datetime.now(UTC),
                                     state_file=state)
    except VaxqrError as exc:
        fail(f"trust material: {exc}", code=Exit.TRUST_OR_IO, hint=exc.hint)


def _load_id_card(arg: str) -> Any:
    from .citizen import parse_cccd

    if not arg.strip():
        fail("--id-card is empty", code=Exit.USAGE,
             hint="give the text of the CCCD card's QR, a file holding it, or a photo of it")
    text = arg
    path = Path(arg)
    try:
        if len(arg) < 4096 and "|" not in arg and path.exists():
            head = path.open("rb").read(8)
            if head.startswith(_IMAGE_MAGIC):
                from .qr import decode_image

                codes = decode_image(path)
                for c in codes:
                    try:
                        return parse_cccd(c.text)
                    except VaxqrError:
                        continue
                fail(f"--id-card: no CCCD card QR found in {arg}", code=Exit.USAGE)
            text = path.read_bytes().decode("utf-8", errors="replace")
        return parse_cccd(text)
    except OSError as exc:
        fail(f"--id-card: cannot read {arg}: {exc.strerror}", code=Exit.TRUST_OR_IO)
    except VaxqrError as exc:
        fail(f"--id-card: {exc}", code=Exit.USAGE, hint=exc.hint)


# --------------------------------------------------------------------------- sub-apps


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
_GROUPS = {"issue": _mount_issue, "certs": _mount_certs, "reconcile": _mount_reconcile,
           "backup": _mount_backup}


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
        if _pending:  # (verify writes its reports before it ends: nothing is left here)
            sys.stdout.write("".join(_pending))
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


def main() -> None:
    """Console-script entry point: no traceback reaches the user unless ``--debug``."""
    # vaxqr does no linear algebra; an OpenBLAS thread pool, started when NumPy is
    # imported, spins ~40 ms of CPU that the batch's renderers need (benchmarks/README.md)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    try:
        app(standalone_mode=True)
    except SystemExit as exc:
        cause = exc.__context__.__cause__ if exc.__context__ is not None else None
        if exc.code == 130 and isinstance(cause, KeyboardInterrupt):
            sys.stderr.write("interrupted\n")  # typer ends a command's Ctrl-C with no word
        if _state.get("exit_now"):
            _exit_now(exc.code)
        raise
    except KeyboardInterrupt:  # Ctrl-C before a command runs (typer reading the commands)
        sys.stderr.write("interrupted\n")
        _exit_now(130)
    except KeyCertError as exc:  # pragma: no cover - commands handle their own
        fail_from(exc)
    except OutputError as exc:  # e.g. a full disk under stdout: the verdicts are incomplete
        if _state.get("debug"):
            raise
        sys.stderr.write(f"error: could not write the output: {exc}\n")
        _exit_now(int(Exit.TRUST_OR_IO))
    except Exception as exc:  # pragma: no cover - last line of defence
        if _state.get("debug"):
            raise
        sys.stderr.write(f"error: internal error ({type(exc).__name__}); "
                         "run again with --debug for details\n")
        sys.exit(int(Exit.TRUST_OR_IO))
