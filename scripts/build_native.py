"""Compile vaxqr's hot modules to C extensions with mypyc (optional; pure Python otherwise).

    .venv/bin/python scripts/build_native.py [--force] [--clean]

The modules in ``vaxqr.NATIVE_MODULES`` (the verify and sign paths) are strictly typed
Python; mypyc compiles them, unchanged, into extension modules placed beside their sources,
which Python then imports instead of the ``.py`` files. The code and its behaviour are the
same, the per-credential overhead around the signature is smaller (``benchmarks/README.md``).
The same build compiles ``vaxqr.NATIVE_C``: the Base45 loops in C (``vaxqr/_base45.c``), which
``vaxqr.codec`` uses instead of its Python loops while the build is current.

A manifest (``vaxqr/_native_build.txt``) records the size and mtime of every compiled
source. ``vaxqr/__init__.py`` compares it at import time and, when any source changed since
the build (or ``VAXQR_PURE=1`` is set), imports the pure-Python modules instead: a stale
extension is never run. Without a C compiler or mypyc the build is skipped with a warning
and vaxqr stays pure Python. Run again after editing a compiled module (``make setup`` does).
"""

from __future__ import annotations

import argparse
import importlib.machinery
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "vaxqr"
GROUP = "vaxqr._native"  # the shared library: vaxqr/_native__mypyc.<suffix>
# generated here, compiled in the same group: the schema pre-checks of vaxqr.schemafast
CHECKERS = "_schema_checkers"  # = vaxqr.SCHEMA_CHECKERS


def _modules() -> tuple[str, ...]:
    sys.path.insert(0, str(ROOT))
    os.environ["VAXQR_PURE"] = "1"  # read the list without loading a stale build
    from vaxqr import NATIVE_MANIFEST, NATIVE_MODULES, SCHEMA_CHECKERS

    assert NATIVE_MANIFEST == "_native_build.txt" and SCHEMA_CHECKERS == CHECKERS
    return NATIVE_MODULES


def _checkers_source() -> str:
    """The module of every shipped schema version's generated pre-check (see
    ``vaxqr.schemafast.module_source``); vaxqr.schemas uses one only while the current
    generator still makes exactly that source of the current schema file."""
    from vaxqr import schemafast, schemas

    return schemafast.module_source(schemas.checker_sources())


def _c_sources() -> tuple[str, ...]:
    from vaxqr import NATIVE_C

    return NATIVE_C


def _outputs(modules: tuple[str, ...]) -> list[Path]:
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    return [PKG / f"{m}{suffix}"
            for m in (*modules, CHECKERS, "_native__mypyc", *_c_sources())]


def _manifest(modules: tuple[str, ...]) -> str:
    """What vaxqr/__init__.py compares: each compiled source's size and mtime."""
    lines = []
    for source in (*(f"{m}.py" for m in modules), *(f"{c}.c" for c in _c_sources())):
        st = (PKG / source).stat()
        lines.append(f"{source.removesuffix('.py')} {st.st_size} {st.st_mtime_ns}")
    return "\n".join(lines) + "\n"


def clean(modules: tuple[str, ...]) -> None:
    # every extension in the package is a build's (vaxqr ships no other): also those
    # of a module since dropped from NATIVE_MODULES, which Python would otherwise import
    stale = [p for p in PKG.iterdir()
             if p.name.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))]
    for p in [*_outputs(modules), *stale, PKG / "_native_build.txt", PKG / f"{CHECKERS}.py"]:
        p.unlink(missing_ok=True)


def build(modules: tuple[str, ...], *, force: bool) -> int:
    manifest_path = PKG / "_native_build.txt"
    wanted = _manifest(modules)
    checkers = _checkers_source()
    checkers_path = PKG / f"{CHECKERS}.py"
    if (not force and manifest_path.exists() and manifest_path.read_text() == wanted
            and checkers_path.exists() and checkers_path.read_text() == checkers
            and all(p.exists() for p in _outputs(modules))):
        print("vaxqr native: up to date", file=sys.stderr)
        return 0
    clean(modules)  # never leave an extension of older sources behind
    if shutil.which(os.environ.get("CC", "cc")) is None:
        print("vaxqr native: no C compiler; vaxqr stays pure Python", file=sys.stderr)
        return 0 if not os.environ.get("VAXQR_NATIVE_REQUIRED") else 1
    part = PKG / f".{CHECKERS}.py.part"
    part.write_text(checkers)
    os.replace(part, checkers_path)
    with tempfile.TemporaryDirectory(prefix="vaxqr-native-") as tmp:
        script = Path(tmp) / "setup_native.py"
        # the tree's own mypy settings (strict, as `make lint` checks) and the sources
        sources = ["--config-file", str(ROOT / "pyproject.toml"),
                   *(str(PKG / f"{m}.py") for m in (*modules, CHECKERS))]
        c_exts = [(f"vaxqr.{c}", [str(PKG / f"{c}.c")]) for c in _c_sources()]
        script.write_text(
            "import sys\n"
            "from setuptools import Extension, setup\n"
            "from mypyc.build import mypycify\n"
            f"c_exts = [Extension(name, src, extra_compile_args=['-O2', '-Wall'])"
            f" for name, src in {c_exts!r}]\n"
            f"setup(name='vaxqr-native', py_modules=[], ext_modules=mypycify({sources!r}, "
            f"group_name={GROUP!r}, opt_level='3', target_dir={str(Path(tmp) / 'c')!r})"
            " + c_exts)\n"
        )
        # run in the temporary directory (not under this tree's pyproject.toml)
        cmd = [sys.executable, str(script), "build_ext", "--build-lib", str(Path(tmp) / "lib"),
               "--build-temp", str(Path(tmp) / "obj")]
        proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
        built = [Path(tmp) / "lib" / "vaxqr" / p.name for p in _outputs(modules)]
        if proc.returncode == 0 and all(p.exists() for p in built):
            for src in built:  # each in place atomically: a reader sees old or new, whole
                part = PKG / f".{src.name}.part"
                shutil.copyfile(src, part)
                os.replace(part, PKG / src.name)
        elif proc.returncode == 0:
            proc = subprocess.CompletedProcess(cmd, 1, "", "the build made no extension")
        if proc.returncode != 0:
            clean(modules)
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
            print(f"vaxqr native: the build failed; vaxqr stays pure Python\n{tail}",
                  file=sys.stderr)
            return 0 if not os.environ.get("VAXQR_NATIVE_REQUIRED") else 1
    # written last, and as the sources were before the build: a source edited while it
    # ran no longer matches, so its extension is not used
    manifest_path.write_text(wanted)
    print(f"vaxqr native: compiled {', '.join(modules)}, the schema pre-checks and the C "
          f"loops ({', '.join(c + '.c' for c in _c_sources())})", file=sys.stderr)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--force", action="store_true", help="rebuild even if up to date")
    ap.add_argument("--clean", action="store_true", help="remove the build: pure Python")
    args = ap.parse_args()
    modules = _modules()
    if args.clean:
        clean(modules)
        return 0
    return build(modules, force=args.force)


if __name__ == "__main__":
    raise SystemExit(main())
