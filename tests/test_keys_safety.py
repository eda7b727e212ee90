"""Keys and files: private even with umask 000, never overwritten, warned about when others
can read them, and the password never shown (output, exception, ``--debug`` traceback)
nor taken on the command line."""

from __future__ import annotations

import errno
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main

from vaxqr.certs import load_signer
from vaxqr.errors import StorageError
from vaxqr.fileio import PRIVATE, PUBLIC, atomic_open, atomic_write

ROOT = Path(__file__).resolve().parents[1]
VAXQR = str(Path(sys.executable).parent / "vaxqr")
DEMO = ROOT / "keys" / "examples"
SECRET = "S3cr3t-Paß-ü-XYZZY-4711"  # never to be seen in any output
WRONG = "Wr0ng-Guess-PLUGH-0815"
CITIZEN = ["--name", "Nguyễn Văn An", "--sex", "Nam", "--dob", "1990-01-02",
           "--id", "091090012345", "--vaccine", "pfizer", "--dose", "2/2",
           "--date", "2021-10-01"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VAXQR_")}
    env.update(NO_COLOR="1", COLUMNS="100", PYTHONIOENCODING="utf-8")
    env.update(extra)
    return env


def _vaxqr(*args: str, cwd: Path, umask: int | None = None, **env: str):
    def pre() -> None:
        if umask is not None:
            os.umask(umask)

    return subprocess.run([VAXQR, *args], cwd=cwd, capture_output=True, env=_env(**env),
                          preexec_fn=pre, timeout=120)


@pytest.fixture(scope="module")
def office(tmp_path_factory):
    """A province CA, a commune signer, a trust list and one issued card, all made by the
    CLI under umask 000 with the password SECRET."""
    d = tmp_path_factory.mktemp("office")
    for args in (["certs", "init", "ca", "--name", "Kiên Giang", "--province", "091"],
                 ["certs", "issue", "ca", "--commune-code", "31078", "--name",
                  "UBND xã Dương Tơ", "--out", "dt"],
                 ["certs", "trustlist", "ca", "--out", "trustlist.json"],
                 ["issue", "--signer", "dt", *CITIZEN, "--out", "card.png"]):
        r = _vaxqr(*args, cwd=d, umask=0, VAXQR_PASSWORD=SECRET)
        assert r.returncode == 0, (args, r.stderr.decode())
    return d


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


# --------------------------------------------------------------------------- permissions


def test_keys_are_private_even_with_umask_000(office):
    keys = sorted(office.rglob("*.key"))
    assert [k.relative_to(office).as_posix() for k in keys] == ["ca/ca.key", "dt/signer.key"]
    for k in keys:
        assert _mode(k) == 0o600, f"{k}: {_mode(k):04o}"
        assert k.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    for p in office.rglob("*"):  # umask 000 never makes anything group/world writable
        assert not _mode(p) & 0o022, f"{p}: {_mode(p):04o}"
    for d in ("ca", "dt"):
        assert not _mode(office / d) & 0o077, f"{d}: {_mode(office / d):04o}"
    assert _mode(office / "card.png") == 0o644
    assert _mode(office / "trustlist.json") == 0o644


def test_atomic_write_modes_ignore_the_umask(tmp_path):
    old = os.umask(0)
    try:
        atomic_write(tmp_path / "k.key", b"x", mode=PRIVATE)
        atomic_write(tmp_path / "p.pem", b"x", mode=PUBLIC)
    finally:
        os.umask(old)
    assert _mode(tmp_path / "k.key") == 0o600
    assert _mode(tmp_path / "p.pem") == 0o644
    old = os.umask(0o077)  # ... in both directions: a public file stays readable
    try:
        atomic_write(tmp_path / "p2.pem", b"x", mode=PUBLIC)
    finally:
        os.umask(old)
    assert _mode(tmp_path / "p2.pem") == 0o644


# --------------------------------------------------------------------------- overwriting


def _snapshot(d: Path) -> dict[str, bytes]:
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*"))
            if p.is_file() and p.name != ".lock" and p.suffix != ".sqlite"}


def test_nothing_is_overwritten_without_force(office, tmp_path):
    d = tmp_path / "office"
    shutil.copytree(office, d)
    before = _snapshot(d)
    for args in (["certs", "init", "ca", "--name", "Kiên Giang", "--province", "091"],
                 ["certs", "issue", "ca", "--commune-code", "31078", "--name",
                  "UBND xã Dương Tơ", "--out", "dt"],
                 ["certs", "issue", "ca", "--commune-code", "30760", "--name",
                  "UBND phường Vĩnh Thanh Vân", "--out", "dt"],
                 ["certs", "trustlist", "ca", "--out", "trustlist.json"],
                 ["issue", "--signer", "dt", *CITIZEN, "--out", "card.png"]):
        r = _vaxqr(*args, cwd=d, VAXQR_PASSWORD=SECRET)
        assert r.returncode == 3, (args, r.returncode, r.stderr.decode())
        assert "already exists" in r.stderr.decode()
        assert "--force" in r.stderr.decode()
    assert _snapshot(d) == before
    # with --force the trust list is replaced (and the keys still are not touched)
    r = _vaxqr("certs", "trustlist", "ca", "--out", "trustlist.json", "--force", cwd=d,
               VAXQR_PASSWORD=SECRET)
    assert r.returncode == 0, r.stderr.decode()
    assert (d / "ca" / "ca.key").read_bytes() == before["ca/ca.key"]
    assert (d / "dt" / "signer.key").read_bytes() == before["dt/signer.key"]


def test_atomic_write_refuses_to_overwrite(tmp_path):
    target = tmp_path / "signer.key"
    atomic_write(target, b"original", mode=PRIVATE)
    with pytest.raises(StorageError, match="already exists"):
        atomic_write(target, b"replacement", mode=PRIVATE)
    assert target.read_bytes() == b"original"
    assert [p.name for p in tmp_path.iterdir()] == ["signer.key"]  # no temporary left behind


# --------------------------------------------------------------------------- loading


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660, 0o606])
def test_key_readable_by_others_is_warned_about(tmp_path, mode):
    d = tmp_path / "signer"
    shutil.copytree(DEMO / "communes" / "31078", d,
                    ignore=shutil.ignore_patterns("ledger.sqlite*"))
    os.chmod(d / "signer.key", 0o600)
    assert not [w for w in load_signer(d, b"vaxqr-demo").warnings if "other users" in w]
    os.chmod(d / "signer.key", mode)
    warnings = [w for w in load_signer(d, b"vaxqr-demo").warnings if "other users" in w]
    assert len(warnings) == 1
    assert f"{mode:04o}" in warnings[0] and "chmod 600" in warnings[0]


def test_cli_warns_about_a_readable_key(office, tmp_path):
    d = tmp_path / "office"
    shutil.copytree(office, d)
    os.chmod(d / "dt" / "signer.key", 0o644)
    r = _vaxqr("issue", "--signer", "dt", *CITIZEN, "--out", "-", cwd=d,
               VAXQR_PASSWORD=SECRET)
    assert r.returncode == 0, r.stderr.decode()
    assert "accessible by other users" in r.stderr.decode()
    os.chmod(d / "ca" / "ca.key", 0o644)
    r = _vaxqr("certs", "trustlist", "ca", "--out", "tl2.json", cwd=d, VAXQR_PASSWORD=SECRET)
    assert r.returncode == 0, r.stderr.decode()
    assert "accessible by other users" in r.stderr.decode()


# --------------------------------------------------------------------------- the password


def _assert_secret_absent(*blobs: bytes) -> None:
    for secret in (SECRET, WRONG):
        for form in (secret.encode("utf-8"), secret.encode("unicode_escape"),
                     secret.encode("utf-8").hex().encode(), repr(secret.encode()).encode()):
            for blob in blobs:
                assert form not in blob, f"the password shows up: {blob[:2000]!r}"


def test_wrong_password_is_never_echoed(office, tmp_path):
    d = tmp_path / "office"
    shutil.copytree(office, d)
    pwfile = tmp_path / "pw.txt"
    pwfile.write_text(WRONG + "\n")
    runs = [
        (["--debug", "issue", "--signer", "dt", *CITIZEN, "--out", "-"],
         {"VAXQR_PASSWORD": WRONG}),
        (["--debug", "issue", "--signer", "dt", *CITIZEN, "--out", "-", "--password-file",
          str(pwfile)], {"VAXQR_PASSWORD": SECRET}),
        (["--debug", "certs", "issue", "ca", "--commune-code", "30760", "--name",
          "UBND phường Vĩnh Thanh Vân", "--out", "vtv"],
         {"VAXQR_CA_PASSWORD": WRONG, "VAXQR_PASSWORD": SECRET}),
        (["--debug", "certs", "trustlist", "ca", "--out", "x.json"], {"VAXQR_PASSWORD": WRONG}),
        (["--debug", "certs", "revoke", "ca", "31078", "--yes"], {"VAXQR_PASSWORD": WRONG}),
        (["--debug", "certs", "init", "ca2", "--name", "Kiên Giang", "--province", "091",
          "--parent", "ca"], {"VAXQR_PASSWORD": WRONG}),
    ]
    for args, env in runs:
        r = _vaxqr(*args, cwd=d, **env)
        assert r.returncode in (2, 3), (args, r.returncode, r.stderr.decode())
        assert "password" in r.stderr.decode().lower() or "root" in r.stderr.decode(), args
        _assert_secret_absent(r.stdout, r.stderr)



def _one_byte_changed(path: Path) -> None:
    """A byte of the key's ciphertext changed (a disk or USB stick error): still base64, so
    it decrypts to garbage as a wrong password does."""
    lines = path.read_bytes().split(b"\n")
    mid = lines[len(lines) // 2]
    lines[len(lines) // 2] = mid[:10] + (b"A" if mid[10:11] != b"A" else b"B") + mid[11:]
    path.write_bytes(b"\n".join(lines))


@pytest.mark.parametrize("damaged", [False, True], ids=["forgotten", "damaged"])
def test_a_key_that_does_not_open_says_what_to_do(office, tmp_path, damaged):
    """A wrong password and a damaged key file look alike: the message says both, how to
    tell them apart (a backup), and what replaces a key whose password is forgotten: a
    new commune certificate in the same directory (its register kept), or, for the CA,
    the password kept apart from the key."""
    d = tmp_path / "office"
    shutil.copytree(office, d)
    if damaged:
        _one_byte_changed(d / "dt" / "signer.key")
        _one_byte_changed(d / "ca" / "ca.key")
    pw = SECRET if damaged else WRONG
    r = _vaxqr("issue", "--signer", "dt", *CITIZEN, "--out", "-", cwd=d, VAXQR_PASSWORD=pw)
    err = " ".join(r.stderr.decode().split())
    assert r.returncode == 3, err
    assert "or is damaged" in err and "restore it from a backup" in err
    assert "--password-file, VAXQR_PASSWORD or the one typed" in err
    assert "cannot be recovered" in err and "--out dt --force" in err
    assert "register kept" in err
    r = _vaxqr("certs", "trustlist", "ca", "--out", "x.json", cwd=d, VAXQR_PASSWORD=pw)
    err = " ".join(r.stderr.decode().split())
    assert r.returncode == 3, err
    assert "or is damaged" in err and "restore it from a backup" in err
    assert "forgotten CA password cannot be recovered" in err and "kept apart" in err
    assert not (d / "x.json").exists()

_CRASH = """
import sys
from cryptography.hazmat.primitives import serialization
import vaxqr.keys

def boom(data, password, *args, **kwargs):
    raise RuntimeError("simulated failure while decrypting")

serialization.load_pem_private_key = boom
if hasattr(vaxqr.keys, "serialization"):
    vaxqr.keys.serialization.load_pem_private_key = boom
from vaxqr.cli import main
sys.argv = ["vaxqr", *sys.argv[1:]]
main()
"""


@pytest.mark.parametrize("debug", [True, False], ids=["debug", "no-debug"])
def test_password_not_in_a_traceback(office, tmp_path, debug):
    """An unexpected exception while the password is in hand (inside the key decryption):
    with --debug a traceback, without it one line; the password in neither."""
    d = tmp_path / "office"
    shutil.copytree(office, d)
    args = ["issue", "--signer", "dt", *CITIZEN, "--out", "-"]
    r = subprocess.run([sys.executable, "-c", _CRASH, *(["--debug"] if debug else []), *args],
                       cwd=d, capture_output=True, env=_env(VAXQR_PASSWORD=SECRET), timeout=120)
    err = r.stderr.decode("utf-8", "replace")
    assert r.returncode != 0
    if debug:
        assert "simulated failure" in err and "Traceback" in err, err
    else:
        assert "internal error" in err and "Traceback" not in err, err
    _assert_secret_absent(r.stdout, r.stderr)


def test_password_not_stored_in_clear(office):
    for p in office.rglob("*"):
        if p.is_file():
            _assert_secret_absent(p.read_bytes())


def _options(cmd, path="vaxqr"):
    for p in cmd.params:
        yield path, p
    if hasattr(cmd, "list_commands"):
        for name in cmd.list_commands(None):
            yield from _options(cmd.get_command(None, name), f"{path} {name}")


def test_no_command_takes_a_password_on_the_command_line():
    """Passwords come from a file, the environment or a hidden prompt: an option may name a
    password FILE, or be the --insecure-no-password flag, nothing else."""
    from vaxqr.cli import app

    seen = []
    commands = set()
    for path, p in _options(typer.main.get_command(app)):
        commands.add(path)
        names = " ".join([*p.opts, *getattr(p, "secondary_opts", []), p.name or ""]).lower()
        if not any(w in names for w in ("pass", "pwd", "secret", "phrase", "pin")):
            continue
        seen.append(f"{path} {p.opts}")
        assert p.param_type_name == "option", (path, p.opts)
        for opt in p.opts:
            assert opt.endswith("-file") or (opt == "--insecure-no-password" and p.is_flag), \
                (path, opt)
    assert {"vaxqr issue", "vaxqr certs init", "vaxqr certs issue", "vaxqr certs trustlist",
            "vaxqr certs revoke", "vaxqr certs password"} <= commands
    assert len(seen) >= 10  # the password-file options were really inspected


# --------------------------------------------------------------------------- atomic writes

_DISK_FULL = """
import errno, os, sys
calls = {"n": 0}
at = int(os.environ["FAULT_AT"])
real = os.fsync
def fsync(fd):
    calls["n"] += 1
    if calls["n"] == at:
        raise OSError(errno.ENOSPC, "No space left on device")
    return real(fd)
os.fsync = fsync
from vaxqr.cli import main
sys.argv = ["vaxqr", *sys.argv[1:]]
main()
"""


def _leftovers(d: Path) -> list[str]:
    return sorted(p.name for p in d.rglob(".*") if p.name != ".lock")


@pytest.mark.parametrize("fault_at", [1, 2, 3, 5, 7])  # state, its dir, CRL, list, none
def test_disk_full_at_any_write_leaves_whole_files(office, tmp_path, fault_at):
    """The disk fills up at the n-th fsync of `certs trustlist --force` (state, CRL, list):
    every file is the old one or a complete new one, no temporary file is left, and the
    CA's sequence number is never behind the published list (no number is reused)."""
    import json

    d = tmp_path / "office"
    shutil.copytree(office, d)
    old = _snapshot(d)
    r = subprocess.run([sys.executable, "-c", _DISK_FULL, "certs", "trustlist", "ca",
                        "--out", "trustlist.json", "--force"], cwd=d, capture_output=True,
                       env=_env(VAXQR_PASSWORD=SECRET, FAULT_AT=str(fault_at)), timeout=120)
    err = r.stderr.decode()
    assert r.returncode in (0, 3), err
    if r.returncode == 3:
        assert "disk full" in err and "Traceback" not in err
    assert _leftovers(d) == []
    new = _snapshot(d)
    listed = json.loads(new["trustlist.json"])["sequence"]
    state = json.loads(new["ca/state.json"])
    assert state.get("trustlist_sequence", listed) >= listed
    for name in ("ca/crl.pem", "trustlist.json", "ca/state.json"):
        assert new[name] == old[name] or (d / name).stat().st_size > 0
    assert new["ca/ca.key"] == old["ca/ca.key"]
    _assert_secret_absent(r.stdout, r.stderr)


@pytest.mark.parametrize("command", ["issue", "certs-issue", "certs-init", "certs-password"])
def test_disk_full_leaves_no_partial_output(office, tmp_path, command):
    d = tmp_path / "office"
    shutil.copytree(office, d)
    (d / "new.txt").write_text("a new password\n")
    old = _snapshot(d)
    args = {
        "issue": ["issue", "--signer", "dt", *CITIZEN, "--out", "card.png", "--force"],
        "certs-issue": ["certs", "issue", "ca", "--commune-code", "30760", "--name",
                        "UBND phường Vĩnh Thanh Vân", "--out", "vtv"],
        "certs-init": ["certs", "init", "ca2", "--name", "Kiên Giang", "--province", "091"],
        # the old key stays until its re-encrypted copy is whole on disk
        "certs-password": ["certs", "password", "ca", "--new-password-file", "new.txt"],
    }[command]
    r = subprocess.run([sys.executable, "-c", _DISK_FULL, *args], cwd=d, capture_output=True,
                       env=_env(VAXQR_PASSWORD=SECRET, FAULT_AT="1"), timeout=120)
    assert r.returncode == 3 and "disk full" in r.stderr.decode(), r.stderr.decode()
    assert _leftovers(d) == []
    assert not (d / "vtv").exists() and not (d / "ca2").exists()
    new = _snapshot(d)
    assert {k: v for k, v in new.items() if k in old} == old  # old files untouched
    assert set(new) == set(old)


def _on_a_terminal(args: list[str], answers: list[bytes], cwd: Path,
                   **extra: str) -> tuple[int, bytes]:
    """Run the console script on a pseudo-terminal, typing each answer after its prompt
    (``extra``: more environment)."""
    import pty
    import select
    import time

    env = {k: v for k, v in os.environ.items()
           if not k.startswith("VAXQR_") or k == "VAXQR_PURE"}
    env.update(NO_COLOR="1", COLUMNS="100", **extra)
    pid, fd = pty.fork()
    if pid == 0:  # the child: the command, its stdin and stderr the terminal
        os.chdir(cwd)
        os.execve(VAXQR, [VAXQR, *args], env)
    out = b""

    def read_until(marker: bytes | None, limit: float = 60) -> None:
        """Read until new output (after what was read before) ends with ``marker``."""
        nonlocal out
        start = len(out)
        end = time.monotonic() + limit
        while time.monotonic() < end and (
                marker is None or not out[start:].endswith(marker)):
            if select.select([fd], [], [], 0.1)[0]:
                try:
                    data = os.read(fd, 4096)
                except OSError:  # the child closed the terminal
                    return
                if not data:
                    return
                out += data

    for answer in answers:
        # click writes "prompt:" then has getpass write the " ", after it turned echo off
        # and flushed the input: typing before the space would be echoed, then lost
        read_until(b": ")
        os.write(fd, answer + b"\n")
    read_until(None, 30)
    deadline = time.monotonic() + 10
    done, status = os.waitpid(pid, os.WNOHANG)
    while done == 0 and time.monotonic() < deadline:  # closing its terminal, exiting
        time.sleep(0.05)
        done, status = os.waitpid(pid, os.WNOHANG)
    if done == 0:  # still running (waiting for input?): never hang the suite
        os.kill(pid, 9)
        _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), out


@pytest.mark.skipif(sys.platform == "win32", reason="a POSIX pseudo-terminal")
def test_new_key_password_prompt_is_hidden_and_confirmed(tmp_path):
    """SPEC §3: with no password file or VAXQR_PASSWORD, a terminal is asked, with hidden
    input and confirmation; two different answers are asked again, never used."""
    code, out = _on_a_terminal(
        ["certs", "init", "ca", "--name", "Kiên Giang", "--province", "091"],
        [b"first-typing-1", b"first-typing-2", *["mật khẩu tỉnh".encode()] * 2], tmp_path)
    text = out.decode("utf-8", "replace")
    assert code == 0, text
    assert text.count("New password for the CA key") == 2, text
    assert "do not match" in text
    assert b"first-typing" not in out and "mật khẩu" not in text  # nothing echoed
    key = tmp_path / "ca" / "ca.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    load_pem_private_key(key.read_bytes(), password="mật khẩu tỉnh".encode())
    with pytest.raises(ValueError):
        load_pem_private_key(key.read_bytes(), password=b"first-typing-1")


# ------------------------------------------------------------------ vaxqr certs password

def _old_style_key(path: Path, password: str) -> None:
    """Rewrite a key the way vaxqr wrote keys before: cryptography's default, 2,048 rounds."""
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(path.read_bytes(), password.encode())
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.BestAvailableEncryption(password.encode())))


def test_certs_password_changes_a_password_from_files_or_the_environment(office, tmp_path):
    from vaxqr.keys import key_protection, load_private_key

    d = tmp_path / "office"
    shutil.copytree(office, d)
    key = d / "dt" / "signer.key"
    _old_style_key(key, SECRET)
    r = _vaxqr("issue", "--signer", "dt", *CITIZEN, "--out", "again.png", cwd=d,
               VAXQR_PASSWORD=SECRET)
    assert r.returncode == 0 and "2,048 rounds" in r.stderr.decode()  # warned, still works
    assert "vaxqr certs password dt/signer.key" in r.stderr.decode()
    (d / "old.txt").write_text(SECRET + "\n")
    (d / "new.txt").write_text(WRONG + "\n")
    r = _vaxqr("certs", "password", "dt", "--password-file", "old.txt",
               "--new-password-file", "new.txt", cwd=d)
    err = r.stderr.decode()
    assert r.returncode == 0, err
    assert ("re-encrypted dt/signer.key: password changed: the old one no longer opens this "
            "file") in err
    assert "encryption PBKDF2, 2,048 rounds → PBKDF2, 600,000 rounds" in err
    _assert_secret_absent(r.stdout, r.stderr)
    assert key_protection(key) == ("PBKDF2, 600,000 rounds", True) and _mode(key) == 0o600
    load_private_key(key, WRONG.encode())
    r = _vaxqr("issue", "--signer", "dt", *CITIZEN, "--out", "third.png", cwd=d,
               VAXQR_PASSWORD=WRONG)
    assert r.returncode == 0 and "rounds" not in r.stderr.decode(), r.stderr.decode()
    # both from stdin: the old password on its first line, the new on its second
    r = subprocess.run([VAXQR, "certs", "password", "dt", "--password-file", "-",
                        "--new-password-file", "-"], cwd=d, capture_output=True, env=_env(),
                       input=f"{WRONG}\n{SECRET}\n".encode(), timeout=120)
    assert r.returncode == 0, r.stderr.decode()
    load_private_key(key, SECRET.encode())
    # the CA's key, by its directory, with the passwords in the environment
    r = _vaxqr("certs", "password", "ca", cwd=d, VAXQR_CA_PASSWORD=SECRET,
               VAXQR_NEW_PASSWORD="another good one")
    assert r.returncode == 0, r.stderr.decode()
    load_private_key(d / "ca" / "ca.key", b"another good one")


def test_certs_password_needs_a_new_password_and_the_right_old_one(office, tmp_path):
    d = tmp_path / "office"
    shutil.copytree(office, d)
    before = (d / "ca" / "ca.key").read_bytes()
    r = _vaxqr("certs", "password", "ca", cwd=d, VAXQR_PASSWORD=SECRET)  # no terminal
    assert r.returncode == 2
    assert "use --new-password-file or VAXQR_NEW_PASSWORD" in r.stderr.decode()
    r = _vaxqr("certs", "password", "ca", cwd=d, VAXQR_PASSWORD=WRONG,
               VAXQR_NEW_PASSWORD="another good one")
    assert r.returncode == 3 and "wrong password" in r.stderr.decode()
    r = _vaxqr("certs", "password", "ca", cwd=d, VAXQR_PASSWORD=SECRET,
               VAXQR_NEW_PASSWORD="short")
    assert r.returncode == 2 and "at least 8 characters" in r.stderr.decode()
    r = _vaxqr("certs", "password", "nowhere", cwd=d, VAXQR_PASSWORD=SECRET,
               VAXQR_NEW_PASSWORD="another good one")
    assert r.returncode == 3 and "nowhere does not exist" in r.stderr.decode()
    assert (d / "ca" / "ca.key").read_bytes() == before
    for out in (r.stdout, r.stderr):
        assert b"another good one" not in out


@pytest.mark.skipif(sys.platform == "win32", reason="a POSIX pseudo-terminal")
def test_certs_password_asks_on_a_terminal_hidden_and_confirmed(office, tmp_path):
    from vaxqr.keys import load_private_key

    d = tmp_path / "office"
    shutil.copytree(office, d)
    code, out = _on_a_terminal(["certs", "password", "dt"],
                               [SECRET.encode(), *["mật khẩu mới".encode()] * 2], d)
    text = out.decode("utf-8", "replace")
    assert code == 0, text
    assert "Password for the key dt/signer.key" in text
    assert "New password for the key dt/signer.key" in text and "Repeat" in text
    assert SECRET not in text and "mật khẩu" not in text  # nothing echoed
    load_private_key(d / "dt" / "signer.key", "mật khẩu mới".encode())


@pytest.mark.skipif(sys.platform == "win32", reason="a POSIX pseudo-terminal")
def test_certs_password_checks_the_old_password_before_asking_a_new_one(office, tmp_path):
    d = tmp_path / "office"
    shutil.copytree(office, d)
    code, out = _on_a_terminal(["certs", "password", "dt"], [WRONG.encode()] * 3, d)
    text = out.decode("utf-8", "replace")
    assert code == 3 and "wrong password" in text, text
    assert "New password" not in text


@pytest.mark.skipif(sys.platform == "win32", reason="a POSIX pseudo-terminal")
@pytest.mark.parametrize("args", [
    ["issue", "--signer", "dt", *CITIZEN, "--out", "again.png"],
    ["certs", "password", "dt"]], ids=["issue", "certs-password"])
def test_a_mistyped_password_is_asked_again_three_tries_in_all(office, tmp_path, args):
    """The prompt gave one try, then exit 3. A typed password that does not open the key
    is asked for again, saying how many tries are left: three in all."""
    d = tmp_path / "office"
    shutil.copytree(office, d)
    answers = [WRONG.encode(), WRONG.encode(), SECRET.encode()]
    if args[0] == "certs":
        answers += [b"a new one, long enough"] * 2
    code, out = _on_a_terminal(args, answers, d)
    text = out.decode("utf-8", "replace")
    assert code == 0, text
    assert "Wrong password: 2 tries left." in text and "Wrong password: 1 try left." in text
    assert text.count("Password for the ") == 3
    assert SECRET not in text and WRONG not in text
    # three wrong: the third says what the command says of a wrong password, exit 3
    before = _snapshot(d)
    code, out = _on_a_terminal([a.replace("again.png", "third.png") for a in args],
                               [WRONG.encode()] * 3, d)
    text = out.decode("utf-8", "replace")
    assert code == 3 and "wrong password for" in text, text
    assert text.count("Password for the ") == 3 and "0 tries" not in text
    assert _snapshot(d) == before


@pytest.mark.skipif(sys.platform == "win32", reason="a POSIX pseudo-terminal")
def test_a_wrong_password_from_a_file_or_the_environment_gets_one_try(office, tmp_path):
    """Only a typed password is a typing slip: one given by --password-file or
    VAXQR_PASSWORD fails at once, on a terminal too, without a prompt."""
    d = tmp_path / "office"
    shutil.copytree(office, d)
    (d / "pw.txt").write_text(WRONG + "\n")
    issue = ["issue", "--signer", "dt", *CITIZEN, "--out", "again.png"]
    for args, env in (([*issue, "--password-file", "pw.txt"], {}),
                      (issue, {"VAXQR_PASSWORD": WRONG})):
        code, out = _on_a_terminal(args, [], d, **env)
        text = out.decode("utf-8", "replace")
        assert code == 3 and "wrong password for" in text, text
        assert "Password for" not in text and "tries left" not in text


@pytest.mark.skipif(sys.platform == "win32", reason="a POSIX pseudo-terminal")
def test_a_short_new_password_is_asked_again_on_a_terminal(office, tmp_path):
    from vaxqr.keys import load_private_key

    d = tmp_path / "office"
    shutil.copytree(office, d)
    code, out = _on_a_terminal(["certs", "password", "dt"],
                               [SECRET.encode(), b"short", b"short",
                                *[b"long enough now"] * 2], d)
    text = out.decode("utf-8", "replace")
    assert code == 0, text
    assert "A new password needs at least 8 characters." in text
    assert text.count("New password for the key dt/signer.key") == 2
    load_private_key(d / "dt" / "signer.key", b"long enough now")


@pytest.mark.skipif(sys.platform == "win32", reason="a POSIX pseudo-terminal")
@pytest.mark.parametrize(("args", "prompt"), [
    (["certs", "password", "dt"], "Password for the key dt/signer.key"),
    (["certs", "init", "ca2", "--name", "Kiên Giang", "--province", "091"],
     "New password for the CA key in ca2"),
    (["issue", "--signer", "dt", *CITIZEN, "--out", "x.png"],
     "Password for the commune key in dt")])
def test_ctrl_c_at_a_password_prompt_says_interrupted(office, tmp_path, args, prompt):
    # click ended it with "Aborted!" and exit 1, the code of a credential that is not valid
    d = tmp_path / "office"
    shutil.copytree(office, d)
    before = _snapshot(d)
    code, out = _on_a_terminal(args, [b"\x03"], d)
    text = out.decode("utf-8", "replace")
    assert code == 130 and "interrupted" in text and "Aborted" not in text, text
    assert prompt in text  # the same words in every command's prompt
    assert _snapshot(d) == before and not (d / "ca2").exists()


def test_temporaries_left_by_killed_runs_are_cleared_and_no_other(tmp_path, monkeypatch):
    """atomic_write's temporary file is .NAME.PID.RANDOM.tmp (.NAME.PID.tmp before the
    random part). What a killed run left for the same target, in either form, is removed:
    one with this pid (every run in a container has the same pid), and one whose pid runs
    no more (only this pid's were, and a killed `vaxqr backup` left its archive's 80 MB
    temporary beside it for good). A directory by such a name (it once made the write
    fail), a running process's temporary, one its writer holds locked (a run elsewhere on a
    shared file system, whose pid means nothing here), another user's file and another
    target's are left alone, and the write goes on under a name of its own. So is
    .NAME.NUMBER.tmp of another pid (the form before the random part): it is as likely a
    file of the user's (.out.txt.2024.tmp), and was removed when NUMBER ran no process."""
    import fcntl
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    gone = int(dead.stdout)
    running = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                               stdin=subprocess.PIPE)
    monkeypatch.setattr(os, "getpid", lambda: 4242)
    (tmp_path / ".out.txt.4242.tmp").mkdir()
    atomic_write(tmp_path / "out.txt", b"data")
    assert (tmp_path / "out.txt").read_bytes() == b"data"
    (tmp_path / ".out.txt.4242.tmp").rmdir()
    left = [".out.txt.4242.tmp", ".out.txt.4242.0badcafe.tmp", f".out.txt.{gone}.0badcafe.tmp"]
    held = f".out.txt.{gone}.feedbeef.tmp"
    kept = [f".out.txt.{running.pid}.0badcafe.tmp", ".out.txt.4242.tmp.tmp",
            ".other.4242.0badcafe.tmp", ".out.txt.4242.nothex00.tmp", f".other.{gone}.tmp",
            held, f".out.txt.{gone}.tmp", ".out.txt.2024.tmp"]
    for name in [*left, *kept]:
        (tmp_path / name).write_text("left by a killed run")
    if os.geteuid() == 0:  # another user's, in a shared directory: not ours to remove
        theirs = tmp_path / f".out.txt.{gone}.feedf00d.tmp"
        theirs.write_text("someone else's")
        os.chown(theirs, 12345, 12345)
        kept.append(theirs.name)
    with open(tmp_path / held, "rb") as writer:
        fcntl.flock(writer, fcntl.LOCK_EX)
        try:
            atomic_write(tmp_path / "out.txt", b"data2", overwrite=True)
        finally:
            running.communicate(b"")
    assert (tmp_path / "out.txt").read_bytes() == b"data2"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["out.txt", *kept])


@pytest.mark.parametrize("overwrite", [True, False])
def test_a_temporary_file_is_held_locked_until_it_has_its_name(tmp_path, monkeypatch,
                                                              overwrite):
    """Every writer holds a lock on its temporary file so that a run elsewhere on a shared
    file system (whose pid means nothing here) never takes it for a killed run's leftover.
    The lock went with the file's close, before the rename (or link) gave it its name: a
    run clearing leftovers then removed a whole, written file, and the write failed."""
    from vaxqr import fileio

    seen: list[bool] = []
    real_replace, real_name_new = os.replace, fileio._name_new

    def replace(src, dst, *a, **k):
        if str(src).endswith(".tmp"):
            seen.append(fileio._locked_file(str(src)))
        return real_replace(src, dst, *a, **k)

    def name_new(tmp, target, **k):
        seen.append(fileio._locked_file(str(tmp)))
        return real_name_new(tmp, target, **k)

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(fileio, "_name_new", name_new)
    atomic_write(tmp_path / "out.txt", b"data", overwrite=overwrite)
    assert (tmp_path / "out.txt").read_bytes() == b"data"
    assert seen == [True]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_two_threads_writing_one_target_do_not_share_a_temporary_file(tmp_path):
    """A library user's threads have one pid: with .NAME.PID.tmp the second writer
    removed and made again the first one's file, whose rename then failed (or put the
    second one's bytes in place under the first one's name)."""
    import threading

    target = tmp_path / "out.txt"
    inside = threading.Barrier(2)
    errors: list[BaseException] = []

    def write(data: bytes, first: bool) -> None:
        try:
            if first:
                with atomic_open(target, overwrite=True) as fh:
                    fh.write(data)
                    inside.wait(10)  # the other opens and writes meanwhile
                    inside.wait(10)
            else:
                inside.wait(10)
                atomic_write(target, data, overwrite=True)
                inside.wait(10)
        except BaseException as exc:  # reported by the test
            errors.append(exc)
            inside.abort()

    threads = [threading.Thread(target=write, args=(b"A" * 1000, True)),
               threading.Thread(target=write, args=(b"B" * 1000, False))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert target.read_bytes() == b"A" * 1000  # the first to open was the last to finish
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


# ------------------------------------------------- no overwrite, even of a file made meanwhile

# How atomic_open names a new file without --force (fileio._name_new): renameat2 with
# RENAME_NOREPLACE; else (NFS, no such libc function) a hard link; else (FAT without the
# rename, some network file systems) a file created with O_EXCL and the data copied in.
COMMITS = ["rename", "link", "copy"]


@pytest.fixture(params=COMMITS)
def commit(request, monkeypatch):
    """Force the way the new name is given; yields the list of ways actually used."""
    from vaxqr import fileio

    used: list[str] = []
    real_rename, real_link = fileio._rename_noreplace, os.link
    if request.param == "rename" and fileio._libc_at("renameat2") is None:
        pytest.skip("libc has no renameat2 here: the link is the first way")

    def rename(src, dst):
        if request.param != "rename":
            return False  # as where libc, the kernel or the file system cannot
        used.append("rename")
        return real_rename(src, dst)

    def link(src, dst, **kw):
        if request.param == "copy":
            used.append("no-link")
            raise OSError(errno.EPERM, "Operation not permitted")  # FAT, exFAT
        used.append("link")
        return real_link(src, dst, **kw)

    monkeypatch.setattr(fileio, "_rename_noreplace", rename)
    monkeypatch.setattr(os, "link", link)
    return request.param, used


def _names(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir())


def test_a_new_file_is_written_whole_and_private_by_each_way(tmp_path, commit):
    way, used = commit
    old = os.umask(0)
    try:
        atomic_write(tmp_path / "k.key", b"secret key", mode=PRIVATE)
        atomic_write(tmp_path / "p.pem", "certificate", mode=PUBLIC)
    finally:
        os.umask(old)
    assert used == {"rename": ["rename"] * 2, "link": ["link"] * 2,
                    "copy": ["no-link"] * 2}[way]
    assert (tmp_path / "k.key").read_bytes() == b"secret key"
    assert (tmp_path / "p.pem").read_text() == "certificate"
    assert _mode(tmp_path / "k.key") == 0o600 and _mode(tmp_path / "p.pem") == 0o644
    assert all(os.stat(tmp_path / n).st_nlink == 1 for n in ("k.key", "p.pem"))
    assert _names(tmp_path) == ["k.key", "p.pem"]  # no temporary file left


def test_a_file_made_after_the_check_is_never_overwritten(tmp_path, commit, monkeypatch):
    """The reviewer's race: the target appears between the early check and the moment the
    written file gets its name (another vaxqr run, or someone in a shared directory). It
    was replaced by os.replace; now it is kept, with the early check's error."""
    from vaxqr import fileio

    target = tmp_path / "signer.key"
    target.write_bytes(b"theirs")
    monkeypatch.setattr(fileio, "_taken", lambda p: False)  # made just after the check
    with pytest.raises(StorageError, match="already exists") as caught:
        atomic_write(target, b"ours", mode=PRIVATE)
    assert "--force" in (caught.value.hint or "")
    assert target.read_bytes() == b"theirs"
    assert _names(tmp_path) == ["signer.key"]
    assert commit[1]  # the commit itself refused it, not a check


def test_a_file_made_while_writing_is_never_overwritten(tmp_path, commit):
    from vaxqr.fileio import atomic_open

    target = tmp_path / "matched.csv"
    with pytest.raises(StorageError, match="already exists"), atomic_open(target) as fh:
        fh.write(b"ours")
        target.write_bytes(b"theirs")  # another run finishes first
    assert target.read_bytes() == b"theirs"
    assert _names(tmp_path) == ["matched.csv"]


def test_a_dangling_symlink_is_neither_followed_nor_replaced(tmp_path, commit, monkeypatch):
    from vaxqr import fileio

    (tmp_path / "out.png").symlink_to(tmp_path / "elsewhere.png")
    with pytest.raises(StorageError, match="already exists"):
        atomic_write(tmp_path / "out.png", b"ours")  # refused by the early check
    with pytest.raises(StorageError, match="already exists"):
        fileio.check_writable(tmp_path / "out.png")
    monkeypatch.setattr(fileio, "_taken", lambda p: False)
    with pytest.raises(StorageError, match="already exists"):
        atomic_write(tmp_path / "out.png", b"ours")  # ... and by the commit
    assert (tmp_path / "out.png").is_symlink() and _names(tmp_path) == ["out.png"]


@pytest.mark.parametrize("err", [errno.EPERM, errno.EOPNOTSUPP, errno.EMLINK, errno.EXDEV])
def test_without_hard_links_the_file_is_created_exclusively(tmp_path, monkeypatch, err):
    from vaxqr import fileio

    monkeypatch.setattr(fileio, "_rename_noreplace", lambda src, dst: False)

    def link(src, dst, **kw):
        raise OSError(err, os.strerror(err))

    monkeypatch.setattr(os, "link", link)
    atomic_write(tmp_path / "tl.json", b"list", mode=PRIVATE)
    assert (tmp_path / "tl.json").read_bytes() == b"list" and _mode(tmp_path / "tl.json") == 0o600
    assert _names(tmp_path) == ["tl.json"]


def test_a_link_error_that_is_not_about_links_is_a_storage_error(tmp_path, monkeypatch):
    from vaxqr import fileio

    monkeypatch.setattr(fileio, "_rename_noreplace", lambda src, dst: False)

    def link(src, dst, **kw):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "link", link)
    with pytest.raises(StorageError, match="disk full"):
        atomic_write(tmp_path / "tl.json", b"list")
    assert _names(tmp_path) == []


def test_a_failed_copy_leaves_neither_file(tmp_path, monkeypatch):
    """Without renames or hard links, the disk fills up while the copy is made durable:
    the half-made target is removed with the temporary file."""
    from vaxqr import fileio

    monkeypatch.setattr(fileio, "_rename_noreplace", lambda src, dst: False)

    def link(src, dst, **kw):
        raise OSError(errno.EPERM, "Operation not permitted")

    real, calls = os.fsync, []

    def fsync(fd):
        calls.append(fd)
        if len(calls) == 2:  # the temporary file's, then the copy's
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd)

    monkeypatch.setattr(os, "link", link)
    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(StorageError, match="disk full"):
        atomic_write(tmp_path / "backup.tar", b"archive" * 1000, mode=PRIVATE)
    assert _names(tmp_path) == []


@pytest.mark.parametrize(("err", "falls_back"), [(errno.EINVAL, True), (errno.ENOSYS, True),
                                                 (errno.EIO, False)])
def test_a_rename_the_file_system_cannot_do_falls_back_to_a_link(tmp_path, monkeypatch, err,
                                                                  falls_back):
    """NFS and older kernels refuse RENAME_NOREPLACE (EINVAL, ENOSYS): a hard link then;
    any other error is the write's error."""
    import ctypes

    from vaxqr import fileio

    def renameat2(*args):
        ctypes.set_errno(err)
        return -1

    monkeypatch.setattr(fileio, "_libc_at", lambda name: renameat2)
    if falls_back:
        atomic_write(tmp_path / "a.txt", b"data")
        assert (tmp_path / "a.txt").read_bytes() == b"data" and _names(tmp_path) == ["a.txt"]
    else:
        with pytest.raises(StorageError, match="cannot write"):
            atomic_write(tmp_path / "a.txt", b"data")
        assert _names(tmp_path) == []


def test_force_still_replaces_the_file_in_one_step(tmp_path):
    """With overwrite, the new file is renamed over the old one (never written into it):
    a reader that opened the old file, or a hard link to it, keeps the old content."""
    target = tmp_path / "tl.json"
    atomic_write(target, b"old list")
    os.link(target, tmp_path / "held")
    atomic_write(target, b"new list", mode=PRIVATE, overwrite=True)
    assert target.read_bytes() == b"new list" and _mode(target) == 0o600
    assert (tmp_path / "held").read_bytes() == b"old list"
    assert _names(tmp_path) == ["held", "tl.json"]


def _race(target: str, me: int, start, results) -> None:  # in a child process
    start.wait()
    try:
        atomic_write(Path(target), f"run {me}".encode(), mode=PRIVATE)
        results.put(me)
    except StorageError:
        results.put(-1)


def test_runs_racing_for_one_name_leave_exactly_one_winner(tmp_path):
    """Several processes (each its own temporary name) write the same new file at once:
    one wins, every other is told it already exists, and the file is the winner's."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    for round_ in range(5):
        target = tmp_path / f"card{round_}.png"
        start, results = ctx.Barrier(4), ctx.Queue()
        procs = [ctx.Process(target=_race, args=(str(target), i, start, results))
                 for i in range(4)]
        for p in procs:
            p.start()
        outcome = sorted(results.get(timeout=60) for _ in procs)
        for p in procs:
            p.join(timeout=60)
        assert outcome[:3] == [-1, -1, -1] and outcome[3] >= 0, outcome
        assert target.read_bytes() == f"run {outcome[3]}".encode()
    assert _names(tmp_path) == [f"card{i}.png" for i in range(5)]


def test_many_writes_into_one_directory_list_it_once(tmp_path, monkeypatch):
    """The leftover check lists a directory again only when something else changed it:
    --card added to a finished batch writes 100,000 cards into one directory, and listing
    it for each (5.9 ms a write at 20,000 files) made that quadratic."""
    from vaxqr import fileio

    listed = []
    real = os.scandir

    def counting(path):
        listed.append(path)
        return real(path)

    monkeypatch.setattr(fileio.os, "scandir", counting)
    for i in range(50):
        atomic_write(tmp_path / f"card{i}.png", b"x", overwrite=True)
    assert len(listed) == 1
    monkeypatch.setattr(os, "getpid", lambda: 4242)  # a killed run's leftover, made meanwhile
    (tmp_path / ".card7.png.4242.0badcafe.tmp").write_text("left")
    atomic_write(tmp_path / "card7.png", b"y", overwrite=True)
    assert len(listed) == 2 and not (tmp_path / ".card7.png.4242.0badcafe.tmp").exists()


@pytest.mark.parametrize("fails", ["fchmod", "fdopen"])
def test_a_failure_between_open_and_write_closes_the_temporary_file(tmp_path, monkeypatch,
                                                                   fails):
    """atomic_open's fchmod ran before the descriptor was wrapped in the file object that
    closes it: a failing fchmod (EPERM on some network and FUSE file systems) left the
    temporary file removed but its descriptor open, one lost for every write a long-lived
    library user tried. The same for a failure to wrap it."""
    from vaxqr import fileio

    def refuse(*args, **kwargs):
        raise OSError(errno.EPERM, "Operation not permitted")

    before = sorted(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None
    if before is None:
        pytest.skip("needs /proc/self/fd to count this process's open files")
    monkeypatch.setattr(fileio.os, fails, refuse)
    with pytest.raises(StorageError, match="permission denied"):
        atomic_write(tmp_path / "out.txt", b"data")
    monkeypatch.undo()
    assert sorted(os.listdir("/proc/self/fd")) == before
    assert _names(tmp_path) == []


def test_the_probe_of_a_run_killed_while_checking_its_output_is_cleared_later(tmp_path):
    """check_writable tries the output's directory with a file it removes at once: named
    by mkstemp (.out.txt.RANDOM.tmp), one left by a run killed at that moment was never
    recognised as a dead run's (no pid in its name) and stayed for good. It is named as
    atomic_write's temporary files now, and the next write of the output removes it."""
    import subprocess
    import sys

    killed = subprocess.run(
        [sys.executable, "-c",
         "import os, sys; from vaxqr import fileio\n"
         "fileio._silent_unlink = lambda *a, **k: os._exit(9)  # killed before the unlink\n"
         "fileio.check_writable(sys.argv[1])", str(tmp_path / "out.txt")],
        capture_output=True, text=True)
    assert killed.returncode == 9, killed.stderr
    assert len(_names(tmp_path)) == 1  # the probe it left
    atomic_write(tmp_path / "out.txt", b"data")
    assert _names(tmp_path) == ["out.txt"]
