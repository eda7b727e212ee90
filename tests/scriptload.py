"""The repository's scripts (``scripts/*.py``) as modules, for the tests that use their
machinery (``chaos_issue``'s kill points and checks)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def chaos_issue() -> ModuleType:
    """``scripts/chaos_issue.py``, imported once."""
    sys.path.insert(0, str(SCRIPTS))
    try:
        return importlib.import_module("chaos_issue")
    finally:
        sys.path.remove(str(SCRIPTS))
