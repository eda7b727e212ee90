"""``vaxqr verify``: the checkpoint's verdicts, from arguments, files, pictures and stdin.

Registered on :data:`vaxqr.cli.app` by ``_mount()`` (the one group a one-shot verify
imports); the work is in :mod:`vaxqr.verify`, the human rendering in :mod:`vaxqr.verify_view`.
"""

from __future__ import annotations

import enum
import os
import re
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .cli import (
    PENDING_MAX,
    Exit,
    _use_colour,
    app,
    console,
    end_at_once,
    fail,
    flush_out,
    pending,
    printable,
    safe,
    warn,
    write_pending,
)
from .errors import SetupError, StorageError, VaxqrError

if TYPE_CHECKING:
    from .verify import Report


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


class Lang(enum.StrEnum):
    """The languages of the human verdict (vaxqr/verdict_text.py)."""

    vi = "vi"
    en = "en"


_LOCALE_VARS = ("LC_ALL", "LC_MESSAGES", "LANG")


def verdict_language(given: str | None, environ: Mapping[str, str] = os.environ) -> str:
    """The verdict's language: ``given`` (``--lang``) when set; else ``VAXQR_LANG``'s
    (``vi``, ``en``, or a locale name of either language, any case); else the locale's,
    as POSIX picks the messages' locale (the first of LC_ALL, LC_MESSAGES, LANG that is
    set and not empty): Vietnamese for ``vi`` and
    ``vi_VN…``, English for any other (``C``, ``POSIX``, ``en_US.UTF-8``…) or none.

    The locale counts because a checkpoint's machine set up in Vietnamese is where a
    Vietnamese verdict is wanted, with no option to remember (as every gettext program
    does); it changes only words for people: ``--json`` and the exit codes, what scripts
    read, are the same in every language."""
    if given:
        return str(given)
    chosen = environ.get("VAXQR_LANG")
    if chosen:
        # "vi", "en", or a locale name whose language is one of them ("vi_VN.UTF-8"): a
        # machine's locale copied into VAXQR_LANG is meant, not a usage error on every verify
        language = re.split(r"[_.@-]", chosen, maxsplit=1)[0].lower()
        if language not in ("vi", "en"):
            raise typer.BadParameter(
                f"{chosen!r}: use 'vi' or 'en' (or a locale name of one of them, such as "
                "vi_VN.UTF-8)", param_hint="VAXQR_LANG")
        return language
    for var in _LOCALE_VARS:
        value = environ.get(var)
        if value:
            return "vi" if value.lower().startswith("vi") else "en"
    return "en"


def trust_warnings_json(warnings: tuple[str, ...]) -> str:
    """The ``"trust_warnings"`` member every ``--json`` object ends with: the warnings met
    loading the trust material (an expired trust list, no revocation data, a CA given
    alone...), the same on each object (one per input, so a reader of any one line has
    them), ``[]`` when there are none; escaped as the rest of the object is."""
    import json

    from .safetext import printable_json

    return ', "trust_warnings": ' + printable_json(json.dumps(list(warnings),
                                                              ensure_ascii=False))


def _report_writer(*, as_json: bool, lang: str, json_tail: str = "") -> Any:
    """A function that prints one report: a JSON line (``json_tail`` added to each
    object), or the human rendering (the caller flushes stdout before it waits for more
    input)."""
    out = pending  # a closure's cell, not a global lookup a report
    if as_json:
        from .verify import report_json_text

        def emit_json(report: Report) -> None:
            out.append(report_json_text(report, json_tail))
            out.append("\n")
            if len(out) >= PENDING_MAX:
                write_pending()

        return emit_json
    from .verify_view import render

    color = _use_colour()

    def emit_text(report: Report) -> None:
        out.append(render(report, printable, color=color, lang=lang))
        if len(out) >= PENDING_MAX:
            write_pending()

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
        metavar="INPUT...",
        help="HC1: text, an image (PNG, JPEG, WebP, BMP or GIF), a text file (one payload "
             "per line), or - for stdin (one payload per line, e.g. a handheld scanner).",
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
    lang: Annotated[Lang | None, typer.Option(
        "--lang", case_sensitive=False, show_default=False,
        help="Language of the verdict: vi (Vietnamese: HỢP LỆ / KHÔNG HỢP LỆ) or en. "
             "Default: VAXQR_LANG, else Vietnamese when the locale (LC_ALL, LC_MESSAGES "
             "or LANG) starts with vi, else English. Translated: the verdict, the labels, "
             "the reason, the ID-card result, dates (dd/mm/yyyy in Vietnamese); the "
             "Details line (the library's technical message), warnings and errors stay "
             "English, and --json is the same in every language.")] = None,
) -> None:
    """Verify vaccination credentials: VALID or NOT VALID, with the reason (CANNOT CHECK
    when the trust material holds no DSC to judge one by, CANNOT READ when no QR code
    could be read from a picture: exit 3).

    **Examples**

    * `vaxqr verify 'HC1:6BF...' --trust ca.crt --trust trustlist.json`
    * `vaxqr verify photo.jpg --trust dsc.pem --id-card card.jpg`
    * `vaxqr verify photo.jpg --trust trustlist.json --lang vi` (HỢP LỆ / KHÔNG HỢP LỆ)
    * `scanner | vaxqr verify - --trust trustlist.json --json`

    Steps, each pass/fail/skipped: picture, prefix, base45, zlib, cose, cbor, signature,
    key_usage, expiry, schema, revocation, holder (and trust, before signature, failed
    when the trust material cannot judge the credential).

    **Exit codes:** 0 all valid · 1 any not valid · 2 usage error · 3 trust material or
    I/O, or a picture in which no QR code could be read, when none is not valid.
    """
    from .verify import NOT_JUDGED, Verifier, verify_image

    end_at_once()  # read-only: nothing to finish at exit but stdout (see cli.main)
    when = parse_time(at)
    language = verdict_language(lang)  # a usage error before any trust material is read
    store = _load_trust(trust, when, state)
    for w in store.warnings:
        warn(w)
    verifier = Verifier(store, at=when)
    holder = _load_id_card(id_card) if id_card is not None else None
    outcome = _Outcome()
    json_tail = trust_warnings_json(store.warnings) if as_json else ""
    print_report = _report_writer(as_json=as_json, lang=language, json_tail=json_tail)

    def emit(report: Report) -> None:
        print_report(report)
        if not report.valid:  # not judged (no DSC to judge by, no QR code read): exit 3
            outcome.add(unjudged=report.failed in NOT_JUDGED, invalid=report.failed
                        not in NOT_JUDGED)

    def nothing_read(label: str, message: str, hint: str | None = None) -> None:
        """An input that gave nothing to verify: said on stderr (with ``hint``), not as a
        verdict (a checkpoint must not be told a credential is not valid when none was
        read); with --json also its object on stdout (one per input), failed at step
        "input"; exit 3 (unless another input is NOT VALID)."""
        flush_out()
        err = console(err=True)
        err.print(f"[bold red]error:[/] {safe(message)}")
        if hint:
            err.print(f"  hint: {safe(hint)}")
        if as_json:
            print_report(verifier.input_failure(label, message, holder=holder is not None))
        outcome.add(unjudged=True)

    try:
        for arg in inputs:
            flush_out()  # the reports so far before any error about this input
            try:
                if arg == "-":
                    _verify_stdin(verifier, holder, outcome, as_json=as_json, lang=language,
                                  json_tail=json_tail)
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
            except SetupError as exc:  # no QR decoder: this machine's, not a picture to retake
                nothing_read(arg, _about(arg, str(exc)), exc.hint)
            except VaxqrError as exc:
                nothing_read("stdin" if arg == "-" else arg, _about(arg, str(exc)))
    except BaseException:
        if pending:  # the reports made so far are written, whatever stopped the rest
            write_pending()
        raise
    flush_out()
    raise typer.Exit(int(outcome.exit()))


class _Outcome:
    """What ``verify``'s inputs came to, for its exit code: 1 when any input was judged
    NOT VALID (a forged credential is not hidden behind an unreadable photo beside it); else
    3 when any could not be judged (CANNOT CHECK, CANNOT READ, nothing read: SPEC's trust
    material unusable or I/O error); else 0."""

    def __init__(self) -> None:
        self.invalid = False
        self.unjudged = False

    def add(self, *, invalid: bool = False, unjudged: bool = False) -> None:
        self.invalid = self.invalid or invalid
        self.unjudged = self.unjudged or unjudged

    def exit(self) -> Exit:
        return (Exit.NOT_VALID if self.invalid else Exit.TRUST_OR_IO if self.unjudged
                else Exit.OK)


_BLOCK = 32  # stream lines verified and written together


def _about(arg: str, message: str) -> str:
    """``arg: message``, or ``message`` alone when it names the file ``arg`` already (as
    "FILE is larger than …" and "cannot read FILE: …" do), so the name is not said twice."""
    for name in dict.fromkeys((arg, str(Path(arg)))):
        if name and (message.startswith((f"{name} ", f"{name}:")) or f" {name}:" in message
                     or message.endswith(f" {name}")):
            return message
    return f"{arg}: {message}"


def _at_a_terminal() -> bool:
    """Whether stdin and stderr are both a terminal (a person typing, or a scanner that
    types into the terminal as a keyboard does)."""
    try:
        return sys.stdin.isatty() and sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _verify_stdin(verifier: Any, holder: Any, outcome: _Outcome, *, as_json: bool,
                  lang: str, json_tail: str = "") -> None:
    """``verify -``: a report per non-empty line of stdin (``stdin:N``), each block of
    lines verified and rendered by compiled code (verify_view.render_lines) and written at
    once; stdout is flushed before every read that may wait (a scanner's user sees each
    verdict as soon as the line is scanned). What the lines came to goes to ``outcome``."""
    from .verify_view import render_lines

    color = _use_colour()
    too_long = f"line longer than {MAX_LINE // 1024} KiB: not an HC1 credential"
    if _at_a_terminal():  # not a scanner's pipe: someone waits for something to happen
        sys.stderr.write("reading from the terminal: scan or paste one HC1: payload per "
                         "line, Ctrl-D to end\n")
    done = 0
    verified = False  # a report was made (render_lines puts each on pending)
    for lines in _read_stdin_blocks(flush_out):
        for i in range(0, len(lines), _BLOCK):
            block = lines[i:i + _BLOCK] if len(lines) > _BLOCK else lines
            invalid, unchecked = render_lines(
                pending, verifier, block, done, holder=holder, too_long=too_long,
                as_json=as_json, printable=printable, color=color, lang=lang,
                json_tail=json_tail)
            # ``invalid`` counts every report not valid, ``unchecked`` those of them not
            # judged (CANNOT CHECK / READ): exit 3, unless another is NOT VALID (exit 1)
            outcome.add(invalid=invalid > unchecked, unjudged=unchecked > 0)
            done += len(block)
            verified = verified or bool(pending)
            write_pending()
    if not verified:  # an empty stream is not "every credential valid"
        raise _NothingRead("no input read from stdin" if not done else
                           "no HC1: text read from stdin: only blank lines")


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
    """The CCCD card of ``--id-card``: its QR's text, or a file holding it (text or a
    picture), told apart as verify's own INPUTs are (:func:`_is_path`): a name of a file
    that cannot be read is an I/O error (exit 3), not text that is no CCCD QR. A card read
    from a picture that also holds an ``HC1:`` credential comes as a
    :class:`vaxqr.verify.CardInPicture` (its holder check says so)."""
    from .citizen import parse_cccd

    if not arg.strip():
        fail("--id-card is empty", code=Exit.USAGE,
             hint="give the text of the CCCD card's QR, a file holding it, or a photo of it")
    text = arg
    try:
        if _is_path(arg):
            path = Path(arg)
            if path.is_dir():
                fail(f"--id-card: {arg} is a directory, not a picture or a text file",
                     code=Exit.TRUST_OR_IO)
            with path.open("rb") as fh:
                head = fh.read(8)
            if head.startswith(_IMAGE_MAGIC) or path.suffix.lower() in _IMAGE_SUFFIXES:
                from .codec import PREFIX
                from .qr import decode_image
                from .verify import CardInPicture

                codes = decode_image(path)
                with_credential = any(c.text.startswith(PREFIX) for c in codes)
                for c in codes:
                    try:
                        card = parse_cccd(c.text)
                    except VaxqrError:
                        continue
                    return CardInPicture(card) if with_credential else card
                fail(f"--id-card: no CCCD card QR found in {arg}", code=Exit.USAGE)
            if path.stat().st_size > 64 * 1024:
                fail(f"--id-card: {arg} is larger than 64 KiB: not a CCCD card QR's text",
                     code=Exit.USAGE)
            text = path.read_bytes().decode("utf-8", errors="replace")
        return parse_cccd(text)
    except OSError as exc:
        fail(f"--id-card: cannot read {arg}: {exc.strerror}", code=Exit.TRUST_OR_IO)
    except SetupError as exc:  # no QR decoder on this machine: not a usage error
        fail(f"--id-card: {exc}", code=Exit.TRUST_OR_IO, hint=exc.hint)
    except VaxqrError as exc:
        fail(f"--id-card: {exc}", code=Exit.USAGE, hint=exc.hint)
