"""vaxqr: signed vaccination credentials (EU DCC, ``HC1:``) in QR codes.

The library is organised in layers; only :mod:`vaxqr.cli` prints, prompts or exits.
"""

from __future__ import annotations

import os as _os
import sys as _sys

__version__ = "0.1.0"

# The modules ``scripts/build_native.py`` may compile with mypyc (the same source, as C
# extensions beside it). An extension is used only while the manifest written by its build
# matches every source's size and mtime: after an edit, or with VAXQR_PURE=1, the
# pure-Python modules are imported instead, so what runs is always what the sources say.
NATIVE_MODULES = ("codec", "sign", "credential", "verify", "verify_view")
NATIVE_MANIFEST = "_native_build.txt"
_HERE = _os.path.dirname(__file__)


def _native_state() -> str:
    """``"native"``, ``"pure"`` (no build), ``"stale"`` (sources changed) or ``"off"``."""
    if _os.environ.get("VAXQR_PURE"):
        return "off"
    try:
        with open(_os.path.join(_HERE, NATIVE_MANIFEST), encoding="ascii") as f:
            recorded = f.read()
    except OSError:
        return "pure"
    now = []
    for name in NATIVE_MODULES:
        try:
            st = _os.stat(_os.path.join(_HERE, name + ".py"))
        except OSError:
            return "native"  # an installed build without its sources
        now.append(f"{name} {st.st_size} {st.st_mtime_ns}")
    return "native" if recorded == "\n".join(now) + "\n" else "stale"


class _SourceFirst:
    """Meta-path finder: the ``.py`` source of a compiled module, never its extension."""

    @staticmethod
    def find_spec(fullname: str, path: object = None, target: object = None) -> object:
        package, _, name = fullname.rpartition(".")
        if package != __name__ or name not in NATIVE_MODULES:
            return None
        import importlib.util

        return importlib.util.spec_from_file_location(
            fullname, _os.path.join(_HERE, name + ".py"))


NATIVE_STATE = _native_state()
if NATIVE_STATE in ("stale", "off"):
    _sys.meta_path.insert(0, _SourceFirst())  # type: ignore[arg-type]


def native_modules() -> tuple[str, ...]:
    """The modules of ``NATIVE_MODULES`` running as compiled extensions (imports them)."""
    import importlib
    import importlib.machinery

    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    return tuple(name for name in NATIVE_MODULES
                 if str(getattr(importlib.import_module(f"{__name__}.{name}"), "__file__", ""))
                 .endswith(suffixes))
