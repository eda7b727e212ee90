"""The C extensions of the native build (``vaxqr.NATIVE_C``), loaded for their tests."""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import vaxqr


def load(name: str) -> tuple[ModuleType | None, str]:
    """The extension built from ``vaxqr/<name>.c``, even in a pure-Python run (VAXQR_PURE=1:
    vaxqr does not use it, but its tests compare it with the pure-Python code), and why it
    is not tested if not: nothing built, or a build older than its sources (its tests would
    test the old binary; VAXQR_NATIVE_REQUIRED makes that a failure)."""
    pure = os.environ.pop("VAXQR_PURE", None)
    try:
        state = vaxqr._native_state()  # as it would be without VAXQR_PURE
    finally:
        if pure is not None:
            os.environ["VAXQR_PURE"] = pure
    if state == "stale":
        if os.environ.get("VAXQR_NATIVE_REQUIRED"):
            raise RuntimeError("the native build is older than its sources: make setup")
        return None, "the native build is older than its sources (make setup rebuilds it)"
    try:
        return importlib.import_module(f"vaxqr.{name}"), ""
    except ImportError:
        return None, f"no C compiler here: vaxqr/{name}.c not built"
