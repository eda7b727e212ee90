"""Running vaxqr with its stderr on a pseudo-terminal, as a clerk at a console sees it, or on
a pipe: for what only a terminal shows (progress bars, questions)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def _on_pty(args, env, cwd, *, stdin_too: bool, answer: bytes = b"", until: bytes = b""):
    """Run vaxqr with stderr (and stdin when ``stdin_too``) on a pseudo-terminal; type
    ``answer`` once the terminal shows ``until``. Returns (exit code, what it showed)."""
    import pty
    import select

    cmd = [str(Path(sys.executable).parent / "vaxqr"), *args]
    main, sub = pty.openpty()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd,
                            stdin=sub if stdin_too else subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=sub)
    os.close(sub)
    got, answered = b"", not answer
    while True:
        if not select.select([main], [], [], 60)[0]:
            proc.kill()
            raise AssertionError(f"no output for 60 s: {got!r}")
        try:
            chunk = os.read(main, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        got += chunk
        if not answered and until in got:
            os.write(main, answer)
            answered = True
    os.close(main)
    return proc.wait(timeout=120), got.decode("utf-8", "replace")


def stderr_on(args, *, terminal, cwd):
    """Run vaxqr with stderr on a pseudo-terminal (as a clerk at a console) or a pipe;
    return (exit code, what stderr received)."""
    env = {**os.environ, "TERM": "xterm", "COLUMNS": "100"}
    env.pop("NO_COLOR", None)
    if not terminal:
        cmd = [str(Path(sys.executable).parent / "vaxqr"), *args]
        r = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, timeout=120,
                           stdin=subprocess.DEVNULL, check=False)
        return r.returncode, r.stderr.decode("utf-8", "replace")
    return _on_pty(args, env, cwd, stdin_too=False)


def answer_on(args, answer: bytes, *, cwd, env=None, until: bytes = b"[y/N]:"):
    """Run vaxqr with stdin and stderr on a pseudo-terminal (a clerk at a console), type
    ``answer`` once stderr shows ``until`` (a question), and return (exit code, what the
    terminal showed). The question not asked: its output, without an answer typed."""
    env = {**os.environ, "TERM": "xterm", "COLUMNS": "100", "NO_COLOR": "1", **(env or {})}
    return _on_pty(args, env, cwd, stdin_too=True, answer=answer, until=until)
