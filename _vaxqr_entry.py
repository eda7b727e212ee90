"""The ``vaxqr`` console script's entry point (``vaxqr = "_vaxqr_entry:main"``).

It lives outside the vaxqr package on purpose. The script pip writes runs
``from _vaxqr_entry import main`` and ``main()``; a module of the package would first run
``vaxqr/__init__.py`` (the native build's check) with nothing there to catch a Ctrl-C, and
Python printed its traceback. Importing this module runs none of vaxqr's code (``os`` and
``sys`` are loaded before any script), so from the moment :func:`main` is called every
Ctrl-C is ours to end: "interrupted" on stderr and exit 130, the Unix convention
(128 + SIGINT), no traceback. That covers importing vaxqr and the command line (typer,
click, the commands' options: ~30 ms before :func:`vaxqr.cli.main` can guard anything; no
file has been read or written by then), one that lands in that function's own handlers,
and the interpreter's shutdown after the command (atexit work, a batch's worker processes
being joined). A command's own Ctrl-C is handled in vaxqr.cli (a batch says what it kept).
"""

from __future__ import annotations

import os
import sys


def _interrupted(*_: object) -> None:
    try:
        sys.stderr.write("interrupted\n")
        sys.stderr.flush()
    finally:
        os._exit(130)  # half-imported modules, or a shutdown under way: no teardown of them


def _interrupted_late(*_: object) -> None:
    """SIGINT while the interpreter shuts down: what the command printed is written out
    first (a second Ctrl-C while stdout is stuck ends the process at once)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        pass
    _interrupted()


def main() -> None:
    try:
        import signal
        from importlib import import_module

        # by name: mypy leaves the command-line modules out (pyproject.toml) and so must
        # not follow an import statement into them from here
        run = import_module("vaxqr.cli").main
        try:
            run()
        finally:  # the command is over: only the interpreter's shutdown is left
            signal.signal(signal.SIGINT, _interrupted_late)
    except KeyboardInterrupt:
        _interrupted()
