"""The optional mypyc build: an extension runs only while its sources are unchanged.

``vaxqr/__init__.py`` decides at import time, from the manifest that
``scripts/build_native.py`` writes last, whether the compiled modules may be used; these tests
drive that decision on a copy of the package in a temporary directory, in fresh interpreters.
"""

from __future__ import annotations

import json
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
    for name in vaxqr.NATIVE_C:
        st = (pkg / f"{name}.c").stat()
        lines.append(f"{name}.c {st.st_size} {st.st_mtime_ns}")
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

    # and so does a change of a C source: its extension would be older than it
    _write_manifest(pkg)
    assert _probe(tmp_path)[0] == "native"
    with open(pkg / f"{vaxqr.NATIVE_C[0]}.c", "a", encoding="utf-8") as f:
        f.write("\n")
    assert _probe(tmp_path)[0] == "stale"

    # a copy without the .c: a .py edited since the build must still be seen
    _write_manifest(pkg)
    (pkg / f"{vaxqr.NATIVE_C[0]}.c").unlink()
    with open(pkg / "codec.py", "a", encoding="utf-8") as f:
        f.write("\n")
    assert _probe(tmp_path) == ["stale", str(pkg / "codec.py")]


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
    # extensions without a manifest (a build cut short before writing it): never used
    (pkg / vaxqr.NATIVE_MANIFEST).unlink()
    state, origin = _probe(tmp_path)
    assert (state, origin) == ("pure", str(pkg / "codec.py"))
    _write_manifest(pkg)
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
    if vaxqr.NATIVE_STATE in ("pure", "stale") and shutil.which("cc") is not None \
            and os.environ.get("VAXQR_NATIVE_REQUIRED"):
        pytest.fail(f"VAXQR_NATIVE_REQUIRED is set but vaxqr's compiled build is "
                    f"{vaxqr.NATIVE_STATE}")
    expected = ((*vaxqr.NATIVE_MODULES, vaxqr.SCHEMA_CHECKERS, *vaxqr.NATIVE_C)
                if vaxqr.NATIVE_STATE == "native" else ())
    assert vaxqr.native_modules() == expected


# --- the generated schema pre-checks: used only for exactly the source they were made from ---

_VALID = {"ver": "1.3.0", "nam": {"fnt": "NGUYEN", "gnt": "THI<DAO"}, "dob": "1964-01-01",
          "v": [{"tg": "840539006", "vp": "1119349007", "mp": "EU/1/20/1528",
                 "ma": "ORG-100030215", "dn": 2, "sd": 2, "dt": "2021-09-01", "co": "VN",
                 "is": "Ministry of Health of Viet Nam", "ci": "URN:UVCI:01:VN:KG/123/456#Z"}]}


def _schema_probe(root: Path, **env: str) -> tuple[str, str, list[str]]:
    """In a fresh interpreter: the state, the versions whose pre-check runs compiled, and
    validate_dcc's messages for a valid 1.3.0 DCC."""
    code = textwrap.dedent(f"""
        import json, vaxqr
        from vaxqr import schemas
        print(vaxqr.NATIVE_STATE)
        print(",".join(schemas.compiled_versions()) or "-")
        print(json.dumps(schemas.validate_dcc({_VALID!r})))
    """)
    full_env = {k: v for k, v in os.environ.items() if k != "VAXQR_PURE"}
    full_env.update(env)
    full_env["PYTHONPATH"] = str(root)
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, env=full_env,
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    state, versions, messages = proc.stdout.splitlines()
    return state, versions, json.loads(messages)


def _copy_with_build(tmp_path: Path) -> Path:
    from importlib.machinery import EXTENSION_SUFFIXES

    if not (PKG / f"{vaxqr.SCHEMA_CHECKERS}{EXTENSION_SUFFIXES[0]}").exists():
        pytest.skip("this tree has no compiled schema pre-checks (no native build)")
    dest = tmp_path / "vaxqr"
    shutil.copytree(PKG, dest, ignore=shutil.ignore_patterns("__pycache__"))  # mtimes kept
    return dest


def test_compiled_schema_checkers_run_only_for_the_source_they_were_made_from(
        tmp_path: Path) -> None:
    from vaxqr.schemas import checker_sources

    pkg = _copy_with_build(tmp_path)
    every = ",".join(checker_sources())
    assert _schema_probe(tmp_path) == ("native", every, [])

    # a schema file edited (fnt at most 5 characters): its own checker is exec'd, and says
    # what the new schema says; the other versions stay compiled
    path = pkg / "data" / "schemas" / "DCC-1.3.0.json"
    schema = json.loads(path.read_text(encoding="utf-8"))
    schema["$defs"]["person_name"]["properties"]["fnt"]["maxLength"] = 5
    path.write_text(json.dumps(schema), encoding="utf-8")
    state, versions, messages = _schema_probe(tmp_path)
    assert (state, versions) == ("native", every.replace("1.3.0,", ""))
    assert messages == ["nam.fnt: 'NGUYEN' is too long (6 characters, at most 5 allowed)"]

    # the generator edited (one comment): no compiled checker at all until the next build
    with open(pkg / "schemafast.py", "a", encoding="utf-8") as f:
        f.write("# edited\n")
    assert _schema_probe(tmp_path)[1:] == ("-", messages)

    # and VAXQR_PURE=1 always execs them
    shutil.rmtree(pkg)
    _copy_with_build(tmp_path)
    assert _schema_probe(tmp_path, VAXQR_PURE="1") == ("off", "-", [])


def test_a_missing_or_corrupt_checker_module_means_the_exec_path(tmp_path: Path) -> None:
    from importlib.machinery import EXTENSION_SUFFIXES

    from vaxqr.schemafast import module_source
    from vaxqr.schemas import checker_sources

    pkg = _copy_package(tmp_path)  # no extension at all
    _write_manifest(pkg)
    assert _schema_probe(tmp_path) == ("native", "-", [])
    # the generated source alone (the build failed or was cleaned): not imported as such
    (pkg / f"{vaxqr.SCHEMA_CHECKERS}.py").write_text(module_source(checker_sources()))
    assert _schema_probe(tmp_path) == ("native", "-", [])
    # an extension that cannot be loaded
    (pkg / f"{vaxqr.SCHEMA_CHECKERS}{EXTENSION_SUFFIXES[0]}").write_bytes(b"\x7fELF broken")
    assert _schema_probe(tmp_path) == ("native", "-", [])


def test_an_extension_no_build_made_is_never_imported(tmp_path: Path) -> None:
    """An extension left by an older build of a module no longer compiled (here a stand-in
    for one that is not, which Python would import first and fail on): the build counts as
    stale and every module comes from its source."""
    pkg = _copy_package(tmp_path)
    from importlib.machinery import EXTENSION_SUFFIXES

    name = "errors"  # imported by everything, and never worth compiling
    assert name not in vaxqr.NATIVE_MODULES
    (pkg / f"{name}{EXTENSION_SUFFIXES[0]}").write_bytes(b"not an extension")
    _write_manifest(pkg)
    code = f"import vaxqr, vaxqr.{name} as m; print(vaxqr.NATIVE_STATE, m.__file__)"
    env = {k: v for k, v in os.environ.items() if k != "VAXQR_PURE"}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path,
                         env={**env, "PYTHONPATH": str(tmp_path)}, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == ["stale", str(pkg / f"{name}.py")]


def _calls_in_slice_indices(source: str) -> list[int]:
    """Lines where a slice bound or step calls anything but ``len``."""
    import ast

    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Slice):
            for part in (node.slice.lower, node.slice.upper, node.slice.step):
                for inner in ast.walk(part) if part is not None else ():
                    if isinstance(inner, ast.Call) and not (
                            isinstance(inner.func, ast.Name) and inner.func.id == "len"):
                        lines.append(node.lineno)
    return lines


def test_no_compiled_module_calls_in_a_slice_index() -> None:
    """mypyc (seen with 2.4.1) evaluates a slice's bounds twice when the object sliced is a
    memoryview or untyped: ``view[os.write(fd, view):]`` wrote a file twice. So no module
    compiled by the build may call anything in a slice bound (``len`` is side-effect free)."""
    assert _calls_in_slice_indices("x = v[f():]\ny = v[:len(v)]\nz = v[1:g(2):h()]") == [1, 3, 3]
    here = Path(vaxqr.__file__).parent
    names = [*vaxqr.NATIVE_MODULES, vaxqr.SCHEMA_CHECKERS]  # the checkers: when generated
    found = {name: _calls_in_slice_indices((here / f"{name}.py").read_text(encoding="utf-8"))
             for name in names if (here / f"{name}.py").exists()}
    assert set(vaxqr.NATIVE_MODULES) <= set(found)
    assert not any(found.values()), found
