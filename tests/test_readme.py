"""The README's quick tour is executed, so the docs cannot drift from the program."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _tour() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"## Quick tour.*?```sh\n(.*?)```", text, re.S)
    assert block, "README has no quick tour"
    commands, current = [], ""
    for line in block.group(1).splitlines():
        current += line.rstrip("\\").rstrip() + " "
        if not line.endswith("\\"):
            commands.append(current.strip())
            current = ""
    return [c for c in commands if c]


def test_readme_starts_with_the_two_commands():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    head = "\n".join(lines[:6])
    assert "make demo" in head and "make test" in head
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_quick_tour_runs(tmp_path):
    bindir = Path(sys.executable).parent
    # a copy of the keys without their ledgers: the signers' office registers start empty
    # (run twice, the tour's batch would otherwise find every citizen issued already)
    shutil.copytree(ROOT / "keys", tmp_path / "keys",
                    ignore=shutil.ignore_patterns("ledger.sqlite*", ".lock"))
    os.symlink(ROOT / "docs", tmp_path / "docs")
    for key in (tmp_path / "keys" / "examples").rglob("*.key"):
        key.chmod(0o600)
    env = {k: v for k, v in os.environ.items()
           if k not in ("VAXQR_LANG", "LC_ALL", "LC_MESSAGES")}  # English but where asked
    env.update(PATH=f"{bindir}{os.pathsep}{os.environ['PATH']}", LANG="C.UTF-8",
               XDG_STATE_HOME=str(tmp_path / "state"))
    commands = _tour()
    assert any(c.startswith("vaxqr issue") for c in commands)
    assert any(c.startswith("vaxqr verify") for c in commands)
    hc1 = None
    for cmd in commands:
        if cmd.startswith("scanner |"):
            assert hc1 is not None
            (tmp_path / "scans.txt").write_text(hc1 + "\r\n" + hc1 + "\n")
            cmd = cmd.replace("scanner |", "cat scans.txt |", 1)
        proc = subprocess.run(["bash", "-c", cmd], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 0, (cmd, proc.stdout, proc.stderr)
        if cmd.startswith("export "):
            key, _, value = cmd[len("export "):].partition("=")
            env[key] = value.split("#")[0].strip()
        if "verify hong.png" in cmd:
            if "--lang vi" in cmd:
                assert proc.stdout.startswith(" ✔ HỢP LỆ  hong.png\n"), proc.stdout
                assert "  Họ và tên:      Nguyễn Thị Ánh Hồng\n" in proc.stdout
                assert "  Ngày sinh:      17/05/1990\n" in proc.stdout
            else:
                assert proc.stdout.startswith(" ✔ VALID  hong.png\n"), proc.stdout
            hc1 = _payload_from_ledger(tmp_path)
        if "cat scans.txt" in cmd:
            assert proc.stdout.count('"valid": true') == 2
    manifest = (tmp_path / "batch" / "manifest.csv").read_text(encoding="utf-8-sig").splitlines()
    assert len(manifest) == 1 + 5  # five citizens in docs/examples/records.csv
    rejects = (tmp_path / "batch" / "rejects.csv").read_text(encoding="utf-8-sig")
    assert "superseded by row 2" in rejects
    shutil.rmtree(tmp_path / "batch")


def _payload_from_ledger(home: Path) -> str:
    from vaxqr.ledger import Ledger

    with Ledger(home / "keys" / "examples" / "communes" / "31078" / "ledger.sqlite") as ledger:
        entries = list(ledger.entries("single"))
    return entries[-1].hc1
