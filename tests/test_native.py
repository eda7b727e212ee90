"""The optional mypyc build: an extension runs only while its sources are unchanged.

``vaxqr/__init__.py`` decides at import time, from the manifest that
``scripts/build_native.py`` writes last, whether the compiled modules may be used; these tests
drive that decision on a copy of the package in a temporary directory, in fresh interpreters.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import vaxqr

PKG = Path(vaxqr.__file__).parent


def _copy_package(tmp_path: Path) -> Path:
    dest = tmp_path / "vaxqr"
    shutil.copytree(PKG, dest, ignore=shutil.ignore_patterns("*.so", "_native_build.txt",
                                                             "__pycache__"))
    return dest


def _write_manifest(pkg: Path) -> None:
    lines = []
    for name in vaxqr.NATIVE_MODULES:
        st = (pkg / f"{name}.py").stat()
        lines.append(f"{name} {st.st_size} {st.st_mtime_ns}")
    (pkg / vaxqr.NATIVE_MANIFEST).write_text("\n".join(lines) + "\n", encoding="ascii")


def _probe(root: Path, **env: str) -> list[str]:
    """In a fresh interpreter with ``root`` first on the path: the state and the file that
    ``vaxqr.codec`` was imported from."""
    code = textwrap.dedent("""
        import vaxqr, vaxqr.codec
        print(vaxqr.NATIVE_STATE)
        print(vaxqr.codec.__file__)
    """)
    full_env = {k: v for k, v in os.environ.items() if k != "VAXQR_PURE"}
    full_env.update(env)
    full_env["PYTHONPATH"] = str(root)
    out = subprocess.run([sys.executable, "-c", code], cwd=root, env=full_env,
                         capture_output=True, text=True, check=True).stdout
    return out.split()


def test_no_build_is_pure(tmp_path: Path) -> None:
    pkg = _copy_package(tmp_path)
    state, origin = _probe(tmp_path)
    assert state == "pure"
    assert origin == str(pkg / "codec.py")


def test_fresh_manifest_is_native_and_an_edit_makes_it_stale(tmp_path: Path) -> None:
    pkg = _copy_package(tmp_path)
    _write_manifest(pkg)
    state, _ = _probe(tmp_path)
    assert state == "native"

    # any change of a compiled module's source (here one byte appended) → never native
    with open(pkg / "codec.py", "a", encoding="utf-8") as f:
        f.write("\n")
    state, origin = _probe(tmp_path)
    assert state == "stale"
    assert origin == str(pkg / "codec.py")


def test_stale_or_pure_build_imports_the_source_not_the_extension(tmp_path: Path) -> None:
    """A stale build must never run: the finder picks ``codec.py`` even when an extension
    file sits beside it (here a file Python would import first, and fail on)."""
    pkg = _copy_package(tmp_path)
    from importlib.machinery import EXTENSION_SUFFIXES

    (pkg / f"codec{EXTENSION_SUFFIXES[0]}").write_bytes(b"not an extension")
    _write_manifest(pkg)
    with open(pkg / "sign.py", "a", encoding="utf-8") as f:  # another module edited
        f.write("\n")
    state, origin = _probe(tmp_path)
    assert (state, origin) == ("stale", str(pkg / "codec.py"))
    _write_manifest(pkg)
    state, origin = _probe(tmp_path, VAXQR_PURE="1")
    assert (state, origin) == ("off", str(pkg / "codec.py"))
    # and with a matching manifest and no VAXQR_PURE, Python takes the "extension"
    proc = subprocess.run([sys.executable, "-c", "import vaxqr.codec"], cwd=tmp_path,
                          env={**{k: v for k, v in os.environ.items() if k != "VAXQR_PURE"},
                               "PYTHONPATH": str(tmp_path)},
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "ImportError" in proc.stderr


def test_version_says_how_vaxqr_runs() -> None:
    exe = Path(sys.executable).parent / "vaxqr"
    out = subprocess.run([str(exe), "--version"], capture_output=True, text=True,
                         check=True).stdout
    compiled = vaxqr.native_modules()
    if compiled:
        assert f"(compiled: {', '.join(compiled)})" in out
    else:
        assert "(pure Python" in out
    pure = subprocess.run([str(exe), "--version"], capture_output=True, text=True, check=True,
                          env={**os.environ, "VAXQR_PURE": "1"}).stdout
    assert pure.strip() == f"vaxqr {vaxqr.__version__} (pure Python, VAXQR_PURE is set)"


@pytest.mark.skipif(os.environ.get("VAXQR_PURE") == "1",
                    reason="this run checks the pure-Python modules on purpose")
def test_the_build_is_in_use_when_the_tree_has_one() -> None:
    """``make test`` builds first; where it could (a C compiler), the suite must be testing
    the compiled modules, not silently the sources."""
    if vaxqr.NATIVE_STATE == "pure" and shutil.which("cc") is not None \
            and os.environ.get("VAXQR_NATIVE_REQUIRED"):
        pytest.fail("VAXQR_NATIVE_REQUIRED is set but vaxqr has no compiled build")
    expected = vaxqr.NATIVE_MODULES if vaxqr.NATIVE_STATE == "native" else ()
    assert vaxqr.native_modules() == expected
