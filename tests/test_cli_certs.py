"""Tests for `vaxqr certs` (vaxqr.cli_certs) through Typer's CliRunner."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from typer.testing import CliRunner

from vaxqr import certinfo, keys
from vaxqr.cli_certs import certs_app

from hierarchy import (
    PW,
    T0,
    Hierarchy,
    make_hierarchy,
    self_signed,
)


def cli(args: list[str], env: dict[str, str] | None = None, input: str | None = None):  # type: ignore[no-untyped-def]
    base = {"VAXQR_PASSWORD": PW.decode(), "COLUMNS": "200", "NO_COLOR": "1"}
    if env is not None:
        base.update(env)
    return CliRunner().invoke(certs_app, args, env=base, input=input)


def test_cli_full_flow(tmp_path: Path) -> None:
    ca, s = str(tmp_path / "ca"), str(tmp_path / "s")
    r = cli(["init", ca, "--name", "Kiên Giang", "--province", "091"])
    assert r.exit_code == 0, r.output
    assert r.stdout == "" and "created" in r.stderr
    r = cli(["issue", ca, "--commune-code", "31078", "--name", "UBND xã Dương Tơ", "--out", s])
    assert r.exit_code == 0, r.output
    assert "issued" in r.stderr
    # one password (VAXQR_PASSWORD) for the CA key and the new commune key: said loudly
    assert "same password as the CA key" in r.stderr
    for name in ("signer.crt", "signer.key", "chain.pem"):
        assert (tmp_path / "s" / name).exists()
    r = cli(["list", ca, "--json"])
    assert r.exit_code == 0
    doc = json.loads(r.stdout)
    assert doc["version"] == 1 and doc["certificates"][0]["status"] == "valid"
    r = cli(["show", f"{s}/signer.crt", "--json"])
    assert r.exit_code == 0
    shown = json.loads(r.stdout)["certificates"][0]
    assert shown["kid"] == certinfo.kid_of(certinfo.load_certificates(f"{s}/signer.crt")[0]).hex()
    r = cli(["show", f"{s}/chain.pem"])
    assert r.exit_code == 0 and "kid" in r.stdout and "SHA-256" in r.stdout
    r = cli(["trustlist", ca, "--out", str(tmp_path / "tl.json")])
    assert r.exit_code == 0, r.output
    r = cli(["show", str(tmp_path / "tl.json"), "--trust", f"{ca}/ca.crt"])
    assert r.exit_code == 0 and "valid" in r.stdout
    assert shown["kid"] in r.stdout  # the kid in hex, as everywhere else
    r = cli(["show", f"{s}/signer.crt", "--trust", f"{ca}/ca.crt"])
    assert r.exit_code == 0 and "valid for vaccination" in r.stdout, r.stdout
    r = cli(["revoke-credential", ca, "URN:UVCI:01:VN:091/31078/000001#P"])
    assert r.exit_code == 0 and "revoked" in r.stderr
    r = cli(["revoke", ca, s, "--reason", "superseded", "--yes"])
    assert r.exit_code == 0, r.output
    r = cli(["list", ca])
    assert r.exit_code == 0 and "revoked" in r.stdout
    r = cli(["trustlist", ca, "--out", "-"])
    assert r.exit_code == 0, r.output
    tl = json.loads(r.stdout)
    assert tl["sequence"] == 2 and tl["dscs"] == [] and len(tl["revoked_credentials"]) == 1
    r = cli(["show", f"{ca}/crl.pem", "--json"])
    assert json.loads(r.stdout)["revoked"][0]["reason"] == "superseded"


def test_cli_errors_and_exit_codes(tmp_path: Path) -> None:
    ca = str(tmp_path / "ca")
    r = cli(["init", ca, "--name", "Kiên Giang", "--province", "91"])
    assert r.exit_code == 2 and "error:" in r.stderr and "province code" in r.stderr
    r = cli(["init", ca, "--name", "Kiên Giang", "--province", "003"])
    assert r.exit_code == 2 and "unknown province code '003'" in r.stderr
    r = cli(["init", ca, "--name", "Kiên Giang", "--province", "091"])
    assert r.exit_code == 0
    r = cli(["init", ca, "--name", "Kiên Giang", "--province", "091"])
    assert r.exit_code == 3 and "already exists" in r.stderr and "--force" in r.stderr
    wrong = tmp_path / "wrong.pass"
    wrong.write_text("not the password\n")
    r = cli(
        [
            "issue",
            ca,
            "--commune-code",
            "31078",
            "--name",
            "UBND xã A",
            "--out",
            str(tmp_path / "s"),
            "--ca-password-file",
            str(wrong),
        ]
    )
    assert r.exit_code == 3 and "wrong password" in r.stderr
    assert "not the password" not in r.output
    assert not (tmp_path / "s").exists()
    # no password source and no terminal: a usage error, nothing written
    r = cli(
        [
            "issue",
            ca,
            "--commune-code",
            "31078",
            "--name",
            "UBND xã A",
            "--out",
            str(tmp_path / "s"),
        ],
        env={"VAXQR_PASSWORD": ""},
    )
    assert r.exit_code == 2 and "password" in r.stderr
    assert not (tmp_path / "s").exists()
    r = cli(
        [
            "init",
            str(tmp_path / "x"),
            "--name",
            "A",
            "--province",
            "001",
            "--insecure-no-password",
            "--password-file",
            str(wrong),
        ]
    )
    assert r.exit_code == 2
    r = cli(["init", str(tmp_path / "x"), "--name", "A", "--province", "001", "--password", "x"])
    assert r.exit_code == 2  # there is no --password option
    r = cli(["revoke", ca, "0123", "--reason", "whim"])
    assert r.exit_code == 2 and "unknown reason" in r.stderr
    r = cli(["revoke-credential", ca, "not-a-uvci"])
    assert r.exit_code == 2
    r = cli(["revoke-credential", ca, "URN:UVCI:01:VN:091/30760/STK91LB7DT93#X"])  # ...#U
    assert r.exit_code == 2 and "check character" in r.stderr and "typo" in r.stderr
    assert "revoked URN" not in r.stderr
    r = cli(["list", str(tmp_path / "nope")])
    assert r.exit_code == 3 and "not a vaxqr CA directory" in r.stderr
    r = cli(["show", str(tmp_path / "nope.pem")])
    assert r.exit_code == 3


def test_cli_password_file_and_insecure(tmp_path: Path) -> None:
    pf = tmp_path / "pw"
    pf.write_bytes(PW + b"\r\n")
    ca = tmp_path / "ca"
    r = cli(
        ["init", str(ca), "--name", "Kiên Giang", "--province", "091", "--password-file", str(pf)],
        env={"VAXQR_PASSWORD": ""},
    )
    assert r.exit_code == 0, r.output
    assert keys.load_private_key(ca / "ca.key", PW)
    r = cli(
        [
            "issue",
            str(ca),
            "--commune-code",
            "31078",
            "--name",
            "UBND xã A",
            "--out",
            str(tmp_path / "s"),
            "--ca-password-file",
            str(pf),
            "--insecure-no-password",
        ],
        env={"VAXQR_PASSWORD": ""},
    )
    assert r.exit_code == 0, r.output
    assert "NOT encrypted" in r.stderr
    assert keys.load_private_key(tmp_path / "s" / "signer.key", None)
    r = cli(
        ["trustlist", str(ca), "--out", str(tmp_path / "tl.json"), "--password-file", "-"],
        env={"VAXQR_PASSWORD": ""},
        input=PW.decode() + "\n",
    )
    assert r.exit_code == 0, r.output


def test_cli_escapes_untrusted_text(tmp_path: Path) -> None:
    ca = str(tmp_path / "ca")
    assert cli(["init", ca, "--name", "Kiên Giang", "--province", "091"]).exit_code == 0
    r = cli(
        [
            "issue",
            ca,
            "--commune-code",
            "31078",
            "--name",
            "UBND xã [bold]X[/bold]",
            "--out",
            str(tmp_path / "s"),
        ]
    )
    assert r.exit_code == 0, r.output
    assert "[bold]X[/bold]" in r.stderr
    r = cli(["show", str(tmp_path / "s" / "signer.crt")])
    assert "[bold]X[/bold]" in r.stdout


def test_cli_help_has_examples_and_exit_codes() -> None:
    for cmd in ("init", "issue", "show", "list", "revoke", "revoke-credential", "trustlist"):
        r = cli([cmd, "--help"])
        assert r.exit_code == 0
        assert "Examples" in r.stdout and "Exit codes" in r.stdout, cmd


def test_vaxqr_help_names_every_command_group() -> None:
    from vaxqr import cli as root

    r = CliRunner().invoke(root.app, ["--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert r.exit_code == 0
    summary = r.stdout.split("Exit codes")[0]  # the summary line, before the commands' table
    for name in root._GROUPS:
        assert name in summary, name


def test_cli_init_days_help_states_the_range_enforced(tmp_path: Path) -> None:
    import re

    found = re.search(r"Validity, (\d+)-(\d+) days", cli(["init", "--help"]).stdout)
    assert found, "the --days help names its range"
    lo, hi = map(int, found.groups())
    base = ["--name", "Kiên Giang", "--province", "091", "--days"]
    assert cli(["init", str(tmp_path / "a"), *base, str(lo - 1)]).exit_code == 2
    assert cli(["init", str(tmp_path / "b"), *base, str(hi + 1)]).exit_code == 2
    assert cli(["init", str(tmp_path / "c"), *base, str(lo)]).exit_code == 0
    assert cli(["init", str(tmp_path / "d"), *base, str(hi)]).exit_code == 0


def test_cli_show_reports_bad_signature(published: tuple[Hierarchy, Path], tmp_path: Path) -> None:
    _, tl = published
    other = make_hierarchy(tmp_path / "o")
    r = cli(["show", str(tl), "--trust", str(other.ca / "ca.crt"), "--json"])
    assert r.exit_code == 1
    assert json.loads(r.stdout)["signature"]["status"] == "invalid"


def test_cli_show_never_prints_control_characters(tmp_path: Path) -> None:
    evil = self_signed([])
    k = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "UBND \x1b[31mxã\u202e [b]A[/b]")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(evil.subject)
        .public_key(k.public_key())
        .serial_number(9)
        .not_valid_before(T0)
        .not_valid_after(T0 + dt.timedelta(days=2))
        .sign(k, hashes.SHA256())
    )
    f = tmp_path / "evil.pem"
    f.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    r = cli(["show", str(f)])
    assert r.exit_code == 0
    assert "\x1b" not in r.stdout and "\u202e" not in r.stdout
    assert "[b]A[/b]" in r.stdout


def test_read_password_for_other_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import typer

    from vaxqr import cli_password

    monkeypatch.setenv("VAXQR_PASSWORD", "from-the-env")
    assert cli_password.read_password(None, confirm=False, what="key") == b"from-the-env"
    pf = tmp_path / "pw"
    pf.write_text("from-the-file\n")
    assert cli_password.read_password(pf, confirm=False, what="key") == b"from-the-file"
    plain = tmp_path / "plain.key"
    plain.write_bytes(keys.key_to_pem(keys.generate_key(), None))
    assert cli_password.read_password(None, confirm=False, what="key", key=plain) is None
    monkeypatch.delenv("VAXQR_PASSWORD")
    with pytest.raises(typer.Exit) as exc:
        cli_password.read_password(None, confirm=False, what="key")
    assert exc.value.exit_code == 2


def test_cli_root_revokes_a_province_and_refreshes_its_crl(tmp_path: Path) -> None:
    root, ca = str(tmp_path / "root"), str(tmp_path / "ca")
    assert cli(["init", root, "--root", "--name", "Bộ Y tế"]).exit_code == 0
    r = cli(["init", ca, "--name", "Kiên Giang", "--province", "091", "--parent", root])
    assert r.exit_code == 0, r.output
    r = cli(["revoke", root, f"{ca}/ca.crt", "--reason", "key-compromise", "--yes"])
    assert r.exit_code == 0, r.output
    assert "give checkpoints the new" in r.stderr and "certs crl" in r.stderr
    assert "trustlist" not in r.stderr  # a root cannot publish one
    r = cli(["crl", root, "--days", "10"])
    assert r.exit_code == 0 and "CRL re-signed" in r.stderr and "1 revoked" in r.stderr, r.output
    r = cli(["crl", root, "--days", "0"])
    assert r.exit_code == 2 and "1 to 366" in r.stderr, r.output


def test_cli_no_warning_when_the_new_key_has_its_own_password(tmp_path: Path) -> None:
    ca = str(tmp_path / "ca")
    assert cli(["init", ca, "--name", "Kiên Giang", "--province", "091"]).exit_code == 0
    r = cli(["issue", ca, "--commune-code", "30760", "--name", "UBND phường Vĩnh Thanh Vân",
             "--out", str(tmp_path / "s")], env={"VAXQR_CA_PASSWORD": PW.decode(),
                                                 "VAXQR_PASSWORD": "another password"})
    assert r.exit_code == 0 and "same password" not in r.stderr, r.output
    assert keys.load_private_key(tmp_path / "s" / "signer.key", b"another password")


def test_cli_revoke_by_commune_code_twice(tmp_path: Path) -> None:
    ca, s = str(tmp_path / "ca"), str(tmp_path / "s")
    assert cli(["init", ca, "--name", "Kiên Giang", "--province", "091"]).exit_code == 0
    assert cli(["issue", ca, "--commune-code", "30760", "--name", "UBND x",
                "--out", s]).exit_code == 0
    r = cli(["revoke", ca, "30760", "--reason", "cessation-of-operation", "--yes"])
    assert r.exit_code == 0 and "revoked" in r.stderr, r.output
    r = cli(["revoke", ca, "30760", "--reason", "cessation-of-operation"])  # as --help says
    assert r.exit_code == 0 and "already revoked" in r.stderr, r.output
    text = " ".join(r.stderr.split())
    assert "nothing changed in state.json" in text and "CRL re-signed" not in text
    assert text.count("already revoked") == 1  # said once, not again as a warning
    r = cli(["revoke", ca, "30760", "--reason", "key-compromise"])  # the first reason stays
    text = " ".join(r.stderr.split())
    assert r.exit_code == 0 and "its reason stays cessation-of-operation, not key-compromise" \
        in text, r.output


def test_show_a_key_file_says_how_it_is_encrypted(tmp_path: Path) -> None:
    key = keys.generate_key()
    weak = tmp_path / "weak.key"
    weak.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.BestAvailableEncryption(PW)))
    r = cli(["show", str(weak)])
    assert r.exit_code == 0, r.output
    assert "private key" in r.output and "PBKDF2, 2,048 rounds  (WEAK)" in r.output
    assert f"vaxqr certs password {weak}" in " ".join(r.output.split())
    strong = tmp_path / "strong.key"
    strong.write_bytes(keys.key_to_pem(key, PW))
    r = cli(["show", str(strong)])
    assert r.exit_code == 0 and "WEAK" not in r.output and "warning" not in r.output
    assert "PBKDF2, 600,000 rounds" in r.output


def test_revoke_says_how_to_publish_with_the_ca_directory_given(tmp_path: Path) -> None:
    h = make_hierarchy(tmp_path / "kg site")  # a space: the command is given quoted
    quoted = f"'{h.ca}'"
    hint = (f"publish a new trust list: vaxqr certs trustlist {quoted} --out FILE (add "
            "--force to replace the published one)")
    r = cli(["revoke", str(h.ca), "31078", "--reason", "key-compromise", "--yes"])
    assert r.exit_code == 0, r.output
    assert hint in r.stderr and "CA_DIR" not in r.stderr
    r = cli(["revoke-credential", str(h.ca), "URN:UVCI:01:VN:091/31078/1#Q"])
    assert r.exit_code == 0, r.output
    assert hint in r.stderr and "CA_DIR" not in r.stderr


def test_show_on_a_ca_or_signer_directory_names_its_certificate(tmp_path: Path) -> None:
    h = make_hierarchy(tmp_path)
    r = cli(["show", str(h.ca)])
    assert r.exit_code == 3
    assert f"{h.ca} is a directory, a file was expected" in r.stderr
    assert (f"\n  hint: {h.ca} is a CA directory: give its certificate, {h.ca / 'ca.crt'} (or "
            f"{h.ca / 'chain.pem'}, with the CA above it)") in r.stderr
    r = cli(["show", str(h.s1)])
    assert r.exit_code == 3
    assert f"hint: {h.s1} is a commune signer directory: give its certificate, " \
        f"{h.s1 / 'signer.crt'}" in r.stderr
    r = cli(["show", str(tmp_path)])  # any other directory: no hint
    assert r.exit_code == 3 and "hint" not in r.stderr


def test_hints_are_indented_as_every_command_indents_them(tmp_path: Path) -> None:
    """`vaxqr certs` errors use the shared cli.fail style: "error: …", then "  hint: …"."""
    r = cli(["list", str(tmp_path)])
    assert r.exit_code == 3
    lines = r.stderr.splitlines()
    assert lines[0].startswith("error: ") and "not a vaxqr CA directory" in lines[0]
    assert lines[1].startswith("  hint: create one with: vaxqr certs init")


def test_cli_renewing_a_signer_in_place_says_what_it_kept_and_what_to_do_next(
    tmp_path: Path,
) -> None:
    """The province renews a commune's certificate into its directory: told how (--force),
    what stays (the office ledger) and what to do next (publish a trust list; not revoke
    the old certificate, which would make every credential it signed NOT VALID)."""
    ca, s = tmp_path / "ca", tmp_path / "s"
    assert cli(["init", str(ca), "--name", "Kiên Giang", "--province", "091"]).exit_code == 0
    args = ["issue", str(ca), "--commune-code", "31078", "--name", "UBND xã Dương Tơ",
            "--out", str(s)]
    assert cli(args).exit_code == 0
    (s / "ledger.sqlite").write_bytes(b"")  # an office that has issued
    (s / "trust").mkdir(exist_ok=True)  # and keeps the province's files there, as the README says
    (s / "trust" / "crl.pem").write_bytes((ca / "crl.pem").read_bytes())
    r = cli(args)
    assert r.exit_code == 3 and "--force to renew it" in r.stderr and "ledger.sqlite" in r.stderr
    r = cli([*args, "--force"])
    assert r.exit_code == 0, r.output
    assert f"kept {s / 'ledger.sqlite'}" in r.stderr
    assert f"kept {s / 'trust'}: the province's trust list" in " ".join(r.stderr.split())
    assert (s / "trust" / "crl.pem").exists()
    assert f"vaxqr certs trustlist {ca} --out FILE" in r.stderr
    assert "vaxqr certs revoke" not in r.stderr and "revoke it if" not in r.stderr
    assert (s / "ledger.sqlite").exists()


def test_cli_renewal_as_told_keeps_the_old_certificates_credentials_valid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Renewing a commune's certificate as vaxqr said to (README, the hints) used to end
    with "then revoke the old one: vaxqr certs revoke CA SERIAL --reason superseded": the
    old DSC left the trust list and every credential the commune had issued became NOT
    VALID at every checkpoint. Followed now, the old and the new credentials both verify."""
    from vaxqr.cli import app

    monkeypatch.setenv("VAXQR_PASSWORD", PW.decode())
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    ca, s, tl = tmp_path / "ca", tmp_path / "s", tmp_path / "trustlist.json"
    assert cli(["init", str(ca), "--name", "Kiên Giang", "--province", "091"]).exit_code == 0
    args = ["issue", str(ca), "--commune-code", "31078", "--name", "UBND xã Dương Tơ",
            "--out", str(s)]
    assert cli(args).exit_code == 0
    runner = CliRunner()

    def issue(id_number: str, name: str) -> str:
        r = runner.invoke(app, ["issue", "--signer", str(s), "--name", name, "--sex", "Nam",
                                "--dob", "1980-01-15", "--id", id_number, "--vaccine",
                                "pfizer", "--dose", "2/2", "--date", "2021-10-01",
                                "--out", "-"])
        assert r.exit_code == 0, r.output
        return r.stdout.strip()

    old = issue("091080000001", "Nguyễn Văn An")
    r = cli([*args, "--force"])
    assert r.exit_code == 0, r.output
    # follow every command the output names
    for line in r.stderr.splitlines():
        if "vaxqr certs " in line:
            cmd = line.split("vaxqr certs ", 1)[1].split(" (")[0].split()
            cmd = [str(tl) if a == "FILE" else a for a in cmd]
            assert cli(cmd).exit_code == 0, cmd
    new = issue("091080000002", "Trần Văn Bình")
    for hc1 in (old, new):
        v = runner.invoke(app, ["verify", hc1, "--trust", str(ca / "ca.crt"), "--trust", str(tl)])
        assert v.exit_code == 0, v.output


def test_cli_no_password_names_the_option_to_give_it_with(tmp_path: Path) -> None:
    """With no terminal to ask on, the error said "use a password file option": which one
    (certs issue has two, --ca-password-file for the CA key)."""
    ca = str(tmp_path / "ca")
    assert cli(["init", ca, "--name", "Kiên Giang", "--province", "091"]).exit_code == 0
    r = cli(["issue", ca, "--commune-code", "31078", "--name", "UBND xã Dương Tơ", "--out",
             str(tmp_path / "s")], env={"VAXQR_PASSWORD": ""})
    assert r.exit_code == 2
    assert "--ca-password-file" in r.stderr and "password file option" not in r.stderr
    r = cli(["trustlist", ca, "--out", "-"], env={"VAXQR_PASSWORD": ""})
    assert r.exit_code == 2 and "use --password-file FILE or" in r.stderr


def test_a_full_disk_says_whether_the_trust_lists_sequence_was_used(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not the shared "what was done is kept": crl.pem and state.json are saved first (the
    sequence is used once state.json is), then the list file, which is written whole or
    not at all."""
    from mounts import full_at

    from vaxqr.cadir import open_ca

    h = make_hierarchy(tmp_path)
    out = tmp_path / "tl.json"
    seq = open_ca(h.ca).trustlist_sequence
    full_at(monkeypatch, "tl.json")
    r = cli(["trustlist", str(h.ca), "--out", str(out)])
    assert r.exit_code == 3, r.output
    text = " ".join(r.stderr.split())
    assert f"disk full while writing {out}" in text and "what was done" not in text, text
    assert (f"sequence {seq + 1} is used (the CA's state and crl.pem are saved) but no trust "
            f"list was written (no partial file is left); the next run signs {seq + 2}") \
        in text, text
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert open_ca(h.ca).trustlist_sequence == seq + 1
    full_at(monkeypatch, "crl.pem")
    r = cli(["trustlist", str(h.ca), "--out", str(out)])
    assert r.exit_code == 3, r.output
    text = " ".join(r.stderr.split())
    assert f"sequence {seq + 2} was not used and no trust list was written" in text, text
    assert open_ca(h.ca).trustlist_sequence == seq + 1 and not out.exists()
    monkeypatch.undo()
    r = cli(["trustlist", str(h.ca), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert json.loads(out.read_text(encoding="utf-8"))["sequence"] == seq + 2


@pytest.mark.parametrize("file", ["signer.key", "chain.pem"])
def test_a_full_disk_in_certs_issue_names_the_directory_asked_for(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, file: str) -> None:
    """The error named the hidden directory the files are written into before it is renamed
    (".s3.new-PID-RANDOM/signer.key"), which the user never asked for and which is gone by
    then: it names SIGNER_DIR's file now (walkthrough finding)."""
    from mounts import full_at

    h = make_hierarchy(tmp_path)
    out = tmp_path / "s3"
    full_at(monkeypatch, file)
    r = cli(["issue", str(h.ca), "--commune-code", "30763", "--name", "UBND phường Vĩnh Lạc",
             "--out", str(out)])
    assert r.exit_code == 3, r.output
    text = " ".join(r.stderr.split())
    assert f"disk full while writing {out / file}" in text, text
    assert ".new-" not in text and "nothing was left behind" in text, text
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def _revoked(ca: Path) -> list[str]:
    from vaxqr import cadir

    return [r.code for r in cadir.list_issued(ca) if r.revoked_at is not None]


@pytest.mark.parametrize("then", ["list", "trustlist", "revoke", "crl"])
def test_a_revoke_stopped_between_crl_and_state_never_shows_the_certificate_valid(
        tmp_path: Path, then: str) -> None:
    """certs revoke writes crl.pem, then state.json; killed between the two (kill -9, a
    power cut), certs list showed the certificate valid while crl.pem revoked it, and a
    trust list signed then put it back among the current DSCs and re-signed the CRL
    without it: the revocation undone (walkthrough finding). The CA's own crl.pem is now
    read with its state: the certificate is revoked for every command, list says why, and
    the next command that saves the state records it there."""
    from vaxqr import cadir

    h = make_hierarchy(tmp_path)
    before = (h.ca / "state.json").read_bytes()
    r = cli(["revoke", str(h.ca), "30760", "--reason", "key-compromise", "--yes"])
    assert r.exit_code == 0, r.output
    (h.ca / "state.json").write_bytes(before)  # as the kill left it: the new CRL, the old state
    r = cli(["list", str(h.ca), "--json"])
    assert r.exit_code == 0, r.output
    row = next(c for c in json.loads(r.stdout)["certificates"] if c["code"] == "30760")
    assert row["status"] == "revoked" and row["reason"] == "key-compromise", row
    text = " ".join(r.stderr.split())
    assert "crl.pem revokes" in text and "does not record" in text, text
    tl = tmp_path / "tl.json"
    args = {"list": ["list", str(h.ca)],
            "trustlist": ["trustlist", str(h.ca), "--out", str(tl)],
            "revoke": ["revoke", str(h.ca), "30760", "--reason", "key-compromise", "--yes"],
            "crl": ["crl", str(h.ca)]}[then]
    r = cli(args)
    assert r.exit_code == 0, r.output
    if then == "revoke":  # it completes that revocation, not "nothing changed in state.json"
        assert "nothing changed" not in r.stderr and "revoked" in r.stderr, r.output
    if then == "trustlist":
        doc = json.loads(tl.read_text(encoding="utf-8"))
        assert "30760" not in [d["commune_code"] for d in doc["dscs"]]
        assert [d["serial"] for d in doc["revoked_dscs"]] == \
            [format(h.dsc(h.s1).serial_number, "x")]
    crl = x509.load_pem_x509_crl((h.ca / "crl.pem").read_bytes())
    assert crl.get_revoked_certificate_by_serial_number(h.dsc(h.s1).serial_number) is not None
    recorded = json.loads((h.ca / "state.json").read_bytes())["issued"]
    saved = {e["code"]: e["reason"] for e in recorded if e["revoked_at"]}
    assert saved == ({} if then == "list" else {"30760": "key-compromise"}), saved
    assert _revoked(h.ca) == ["30760"]
    if then != "list":
        assert cadir.open_ca(h.ca).warnings == ()


def test_revoke_without_a_terminal_needs_yes(tmp_path: Path) -> None:
    """Revoking a commune's certificate makes every credential it signed NOT VALID at every
    checkpoint, for good; `certs revoke` did it on the spot, asking nothing. Without a
    terminal to ask on it now needs --yes, and says what it would do."""
    h = make_hierarchy(tmp_path)
    serial = format(h.dsc(h.s2).serial_number, "x")
    r = cli(["revoke", str(h.ca), "31078", "--reason", "key-compromise"])
    text = " ".join(r.stderr.split())
    assert r.exit_code == 2, r.output
    assert f"commune 31078), serial {serial}" in text and "Dương Tơ" in text
    assert "NOT VALID" in text and "cannot be undone" in text and "--yes" in text
    assert _revoked(h.ca) == []
    r = cli(["revoke", str(h.ca), "31078", "--reason", "key-compromise", "--yes"])
    assert r.exit_code == 0 and _revoked(h.ca) == ["31078"], r.output
    r = cli(["revoke", str(h.ca), "31078"])  # already revoked: nothing to confirm
    assert r.exit_code == 0 and "already revoked" in r.stderr, r.output


@pytest.mark.parametrize(("answer", "code", "revoked"), [
    (b"\r", 1, []), (b"n\r", 1, []), (b"y\r", 0, ["31078"])], ids=["enter", "no", "yes"])
def test_revoke_on_a_terminal_asks_first(tmp_path: Path, answer: bytes, code: int,
                                         revoked: list[str]) -> None:
    from terminal import answer_on

    h = make_hierarchy(tmp_path)
    serial = format(h.dsc(h.s2).serial_number, "x")
    got, seen = answer_on(["certs", "revoke", str(h.ca), "31078"], answer, cwd=tmp_path,
                          env={"VAXQR_PASSWORD": PW.decode()})
    text = " ".join(seen.split())
    assert got == code, seen
    assert (f"Revoking the certificate of UBND xã Dương Tơ (commune 31078), serial {serial}: "
            "every credential it signed, before and after, becomes NOT VALID") in text, seen
    assert "cannot be undone" in text and "Revoke it? [y/N]:" in text
    assert _revoked(h.ca) == revoked
    assert ("nothing revoked" in text) == (not revoked)


@pytest.mark.parametrize(("args", "said"), [
    (["--commune-code", "3107"], "commune code must be 5 digits"),
    (["--commune-code", "31078", "--days", "0"], "DSC validity must be 1 to"),
], ids=["code", "days"])
def test_certs_issue_says_a_bad_argument_before_the_directory_exists(
        tmp_path: Path, args: list[str], said: str) -> None:
    """Into an existing SIGNER_DIR, a bad commune code was reported as "already exists":
    fixed that, the clerk ran again with --force to be told the code was wrong."""
    h = make_hierarchy(tmp_path)
    r = cli(["issue", str(h.ca), *args, "--name", "UBND xã Dương Tơ", "--out", str(h.s2)])
    assert r.exit_code == 2 and said in r.stderr, r.output
    assert "already exists" not in r.stderr


def _refusals_known_before_the_password(h: Hierarchy, root: Path) -> list[tuple[list[str], str]]:
    return [
        (["issue", str(h.ca), "--commune-code", "30760", "--name", "UBND phường Vĩnh Thanh Vân",
          "--out", str(h.s1)], f"{h.s1} already exists"),
        (["issue", str(root), "--commune-code", "31078", "--name", "UBND xã Dương Tơ",
          "--out", str(h.tmp / "s9")], "is a root CA; commune certificates are issued by"),
        (["init", str(h.ca), "--name", "Kiên Giang", "--province", "091"], "already"),
        (["init", str(h.tmp / "ca9"), "--name", "Kiên Giang", "--province", "091", "--parent",
          str(h.ca)], "is a province CA, not a root CA"),
        (["init", str(h.tmp / "ca9"), "--name", "Kiên Giang", "--province", "091", "--parent",
          str(root), "--days", "30"], "CA validity must be 4 to 10 years"),
        (["trustlist", str(h.ca), "--out", str(h.tmp / "tl9.json"), "--valid-days", "0"],
         "--valid-days must be between 1 and 3660"),
        (["trustlist", str(root), "--out", str(h.tmp / "tl9.json")],
         "is a root CA; trust lists are published by province CAs"),
        (["crl", str(h.ca), "--days", "0"], "a CRL's next update must be 1 to 366 days"),
    ]


def test_certs_refuse_what_they_could_know_before_asking_a_password(tmp_path: Path) -> None:
    """certs issue asked the CA password, then said SIGNER_DIR already exists (the clerk
    typed the province's password for nothing); init asked the root's, trustlist and crl
    the CA's, before refusing a CA_DIR that exists, a parent that is no root, a province CA
    to issue from a root, out-of-range days (walkthrough finding). Each is refused now
    before any password is read: the password file given does not exist, and is not named."""
    h = make_hierarchy(tmp_path)
    root = tmp_path / "root"
    assert cli(["init", str(root), "--root", "--name", "Bộ Y tế"]).exit_code == 0
    missing = str(tmp_path / "no-such.pass")
    for args, said in _refusals_known_before_the_password(h, root):
        pw_options = ["--ca-password-file", missing] if args[0] == "issue" else []
        if args[0] == "init" and "--parent" in args:
            pw_options = ["--parent-password-file", missing]
        r = cli([*args, *pw_options, "--password-file", missing])
        text = " ".join(r.stderr.split())
        assert r.exit_code in (2, 3) and said in text, (args, r.output)
        assert "no-such.pass" not in text, (args, r.output)
    assert not (tmp_path / "s9").exists() and not (tmp_path / "ca9").exists()


def test_certs_outputs_through_another_users_symlink_are_refused(tmp_path: Path,
                                                                 monkeypatch) -> None:
    """A new CA or commune directory, or a trust list, written through a symbolic link
    another user made (a shared /tmp) went to the directory of their choosing, the new
    private key with it: refused, before any password is asked (none is available here),
    and nothing is written there."""
    from test_cli_issue import _made_by_another_user

    h = make_hierarchy(tmp_path / "site")
    target = tmp_path / "chosen"
    target.mkdir(mode=0o700)
    link = tmp_path / "x"
    link.symlink_to(target, target_is_directory=True)
    uid = _made_by_another_user(link, monkeypatch)
    missing = str(tmp_path / "no-such.pass")
    for args, holds in (
            (["init", str(link / "ca"), "--name", "Kiên Giang", "--province", "091",
              "--password-file", missing], "the new private key"),
            (["issue", str(h.ca), "--commune-code", "31078", "--name", "UBND xã Dương Tơ",
              "--out", str(link / "s"), "--ca-password-file", missing,
              "--password-file", missing], "the new private key"),
            (["trustlist", str(h.ca), "--out", str(link / "tl.json"), "--password-file",
              missing], "the trust list")):
        r = cli(args)
        text = " ".join(r.output.split())
        assert r.exit_code == 3, (args, r.output)
        assert (f"{link} is a symbolic link made by another user of this computer (uid "
                f"{uid})") in text and f"{holds}" in text, text
        assert "no-such.pass" not in text
        assert list(target.iterdir()) == []


def test_a_crl_revocation_of_a_reason_vaxqr_does_not_write_is_kept_as_unspecified(
        tmp_path: Path) -> None:
    """The CA's own crl.pem is read with its state: one it signed with a reason `certs
    revoke` does not give (certificateHold, from `openssl ca -gencrl`, say) made every
    command that re-signs the CRL fail with a KeyError (a traceback, exit 1), the
    revocation adopted but never recorded."""
    from vaxqr import cadir

    h = make_hierarchy(tmp_path)
    serial = h.dsc(h.s1).serial_number
    ca_cert = cadir.open_ca(h.ca).certificate
    now = dt.datetime.now(dt.UTC)
    entry = (x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now)
             .add_extension(x509.CRLReason(x509.ReasonFlags.certificate_hold), False).build())
    crl = (x509.CertificateRevocationListBuilder().issuer_name(ca_cert.subject)
           .last_update(now).next_update(now + dt.timedelta(days=30))
           .add_extension(x509.CRLNumber(99), False)
           .add_revoked_certificate(entry)
           .sign(keys.load_private_key(h.ca / "ca.key", PW), hashes.SHA256()))
    (h.ca / "crl.pem").write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    r = cli(["crl", str(h.ca)])
    assert r.exit_code == 0, r.output
    recorded = json.loads((h.ca / "state.json").read_bytes())["issued"]
    assert {e["code"]: e["reason"] for e in recorded if e["revoked_at"]} == \
        {"30760": "unspecified"}
    assert _revoked(h.ca) == ["30760"]


# Entry extensions that cryptography parses only when they are first read, each broken:
# a reasonCode out of range and one of the wrong type, an invalidityDate that is no
# date, a certificateIssuer that is no list of names.
_BROKEN_ENTRY_EXTENSIONS = {
    "reason-out-of-range": ("2.5.29.21", b"\x0a\x01\x63"),
    "reason-not-enumerated": ("2.5.29.21", b"\x04\x01\x01"),
    "invalidity-date": ("2.5.29.24", b"\x18\x03abc"),
    "certificate-issuer": ("2.5.29.29", b"\x30\x03\x01\x01\xff"),
}


@pytest.mark.parametrize("broken", sorted(_BROKEN_ENTRY_EXTENSIONS))
def test_a_crl_entry_with_a_malformed_extension_is_a_revocation_not_a_traceback(
        tmp_path: Path, broken: str) -> None:
    """A CRL the CA signed by hand (its crl.pem, or a copy in SIGNER/trust/) with a broken
    extension in a revoked entry: every `vaxqr certs` command reading the CA ended in a
    ValueError traceback (the entry's extensions were read outside the try). The entry
    revokes its serial all the same (the CA signed it; its reason reads as unspecified),
    and what else reads such a CRL (a checkpoint's trust, an office's check before
    signing, `certs show`) takes it as revoked too."""
    from vaxqr import describe, signercheck, trust
    from vaxqr.errors import TrustError

    h = make_hierarchy(tmp_path)
    serial = h.dsc(h.s1).serial_number
    ca_cert = x509.load_pem_x509_certificate((h.ca / "ca.crt").read_bytes())
    now = dt.datetime.now(dt.UTC)
    oid, value = _BROKEN_ENTRY_EXTENSIONS[broken]
    entry = (x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(T0)
             .add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), value),
                            False).build())
    crl = (x509.CertificateRevocationListBuilder().issuer_name(ca_cert.subject)
           .last_update(T0).next_update(now + dt.timedelta(days=30))
           .add_extension(x509.CRLNumber(99), False)
           .add_revoked_certificate(entry)
           .sign(keys.load_private_key(h.ca / "ca.key", PW), hashes.SHA256()))
    pem = crl.public_bytes(serialization.Encoding.PEM)
    (h.ca / "crl.pem").write_bytes(pem)
    (h.s1 / "trust").mkdir(exist_ok=True)
    (h.s1 / "trust" / "crl.pem").write_bytes(pem)

    r = cli(["list", str(h.ca), "--json"])
    assert r.exit_code == 0, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)
    assert "crl.pem revokes UBND phường Vĩnh Thanh Vân (30760)" in " ".join(r.stderr.split())
    r = cli(["crl", str(h.ca)])  # recorded in state.json, and a CRL re-signed from it
    assert r.exit_code == 0, r.output
    recorded = json.loads((h.ca / "state.json").read_bytes())["issued"]
    assert {e["code"]: e["reason"] for e in recorded if e["revoked_at"]} == \
        {"30760": "unspecified"}
    assert [e.serial_number for e in x509.load_pem_x509_crl((h.ca / "crl.pem").read_bytes())] \
        == [serial]

    at = T0 + dt.timedelta(days=1)  # (the commune certificates end in 2024)
    store = trust.TrustStore.from_paths([h.ca / "ca.crt", h.s1 / "trust" / "crl.pem",
                                         h.s1 / "signer.crt"], at=at,
                                        state_file=tmp_path / "seen.json")
    assert [s.revoked for s in store.signers] == [True]
    with pytest.raises(TrustError, match="has been revoked"):
        signercheck.check_signer_dir(h.s1, at=at)
    shown = describe.describe_file(h.s1 / "trust" / "crl.pem")
    assert [e["serial"] for e in shown["revoked"]] == [format(serial, "x")]
    assert shown["revoked"][0]["reason"] == "unreadable"  # (not "unspecified": it may say one)
