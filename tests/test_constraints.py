"""constraints.txt pins every dependency vaxqr installs (scripts/bootstrap.sh installs with
``pip -c constraints.txt``): a dependency added to pyproject.toml without its tested
version would make fresh machines and CI take whatever is newest."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep and version, f"not an exact pin: {line!r}"
            pins[_name(name)] = version
    return pins


def test_every_dependency_and_test_extra_is_pinned() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["test"]]
    pins = _pins()
    missing = sorted(_name(r) for r in wanted if _name(r) not in pins)
    assert not missing, f"add the tested versions of {missing} to constraints.txt"


def test_bootstrap_installs_with_the_constraints() -> None:
    script = (ROOT / "scripts" / "bootstrap.sh").read_text(encoding="utf-8")
    assert "-c constraints.txt" in script
    assert "constraints.txt -nt" in script  # a new pin reinstalls an existing venv
