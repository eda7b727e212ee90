"""The console script's entry point (``vaxqr = vaxqr.entry:main``).

It only imports :mod:`vaxqr.cli` and runs it. The import (typer, click, the commands'
options: ~30 ms) is the one moment :func:`vaxqr.cli.main` cannot guard, so a Ctrl-C during
it printed Python's traceback; here it says "interrupted" and exits 130, as a Ctrl-C at
any later moment does. Nothing has been read or written by then.
"""

from __future__ import annotations

import os
import sys
from importlib import import_module


def main() -> None:
    try:
        # by name: mypy leaves the command-line modules out (pyproject.toml) and so must
        # not follow an import statement into them from here
        run = import_module("vaxqr.cli").main
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.stderr.flush()
        os._exit(130)  # half-imported modules: no teardown of them
    run()
