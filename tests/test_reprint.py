"""`vaxqr issue --reprint ID|UVCI`: a citizen's existing credential written again (a lost
card), found through the office's register, from a single issue's or a batch's ledger."""

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import test_cli_issue
from mounts import mounted_tmpfs
from test_cli_issue import CA, PERSON, TRUSTLIST, _demo_ca_copy, _fresh_signer, _signer_copy

from vaxqr import reprint
from vaxqr.cli import app
from vaxqr.errors import StorageError, VerificationError
from vaxqr.ledger import Ledger, Register

from records import good_rows, write_csv

runner = test_cli_issue.runner  # the fixture: the demo password, a private state directory


@pytest.fixture
def office(tmp_path):
    return _signer_copy(tmp_path)


def _verify(runner, path):
    return runner.invoke(app, ["verify", str(path), "--trust", str(CA), "--trust",
                               str(TRUSTLIST), "--json"])


def test_a_single_issue_is_reprinted_by_id_number_and_by_uvci(runner, tmp_path, office):
    first = runner.invoke(app, ["issue", "--signer", str(office), *PERSON, "--out", "-"])
    assert first.exit_code == 0, first.output
    hc1 = first.stdout.strip()
    with Ledger(office / "ledger.sqlite") as ledger:
        (entry,) = ledger.entries()
    for ref in ("091190012345", entry.uvci.lower()):
        r = runner.invoke(app, ["issue", "--signer", str(office), "--reprint", ref,
                                "--out", "-"])
        assert r.exit_code == 0, r.output
        assert r.stdout.strip() == hc1  # the same credential: nothing signed
        assert f"found {entry.uvci}: Nguyễn Thị Ánh Hồng, dose 2/2 on 2021-10-01" in r.stderr
    with Ledger(office / "ledger.sqlite") as ledger:
        assert ledger.count() == 1
    out = tmp_path / "lost.png"
    r = runner.invoke(app, ["issue", "--signer", str(office), "--reprint", "091190012345",
                            "--out", str(out), "--card", "pdf"])
    assert r.exit_code == 0, r.output
    assert f"reprinted {entry.uvci} → {out}" in r.stderr
    assert (tmp_path / "lost-card.pdf").read_bytes()[:5] == b"%PDF-"
    v = _verify(runner, out)
    assert v.exit_code == 0 and entry.uvci in v.stdout
    again = runner.invoke(app, ["issue", "--signer", str(office), "--reprint", "091190012345",
                                "--out", str(out)])
    assert again.exit_code == 3 and "already exists" in again.stderr  # --force to replace


def _batch(runner, tmp_path, office, seed):
    """A batch of 4 rows issued by ``office``: (its rows, OUT_DIR, ledger entries by row)."""
    rows = good_rows(4, seed=seed)
    src = write_csv(tmp_path / "records.csv", rows)
    batch = tmp_path / "batch"
    r = runner.invoke(app, ["issue", "--signer", str(office), "--from", str(src), "--out",
                            str(batch), "--workers", "1"])
    assert r.exit_code == 0, r.output
    with Ledger(batch / "ledger.sqlite") as ledger:
        return rows, batch, {e.row: e for e in ledger.entries()}


def test_a_batch_credential_is_reprinted_from_its_out_dir(runner, tmp_path, office):
    rows, batch, issued = _batch(runner, tmp_path, office, seed=61)
    r = runner.invoke(app, ["issue", "--signer", str(office), "--reprint", rows[2][3],
                            "--out", "-"])
    assert r.exit_code == 0, r.output
    assert r.stdout.strip() == issued[3].hc1
    assert "records.csv row 3" in r.stderr

    # the batch directory moved away: named, with what to do
    batch.rename(tmp_path / "elsewhere")
    r = runner.invoke(app, ["issue", "--signer", str(office), "--reprint", rows[2][3],
                            "--out", "-"])
    assert r.exit_code == 3 and r.stdout == ""
    assert f"{issued[3].uvci} was issued in {batch.resolve()}" in r.stderr
    assert "put that batch directory back" in r.stderr



def test_an_office_restored_on_another_computer_reprints_from_its_batches(runner, tmp_path,
                                                                          office):
    """The office moved: `vaxqr backup` of the signer and batch directories, extracted
    side by side elsewhere (the README's restore). The register names each batch by the
    old computer's path, so every reprint of a batch's citizen said to put the batch back
    "where it was", though it lay beside the signer directory."""
    import shutil

    rows, batch, issued = _batch(runner, tmp_path, office, seed=62)
    new = tmp_path / "new-computer" / "restored"
    new.mkdir(parents=True)
    moved = Path(shutil.move(office, new / office.name))
    shutil.move(batch, new / batch.name)
    r = runner.invoke(app, ["issue", "--signer", str(moved), "--reprint", rows[1][3],
                            "--out", "-"])
    assert r.exit_code == 0, r.output
    assert r.stdout.strip() == issued[2].hc1
    # beside it under another name, or holding another batch: not taken for it
    (new / batch.name).rename(new / "other")
    r = runner.invoke(app, ["issue", "--signer", str(moved), "--reprint", rows[1][3],
                            "--out", "-"])
    assert r.exit_code == 3 and r.stdout == ""
    assert f"beside {moved} under its name {batch.name}" in " ".join(r.stderr.split())
    (new / batch.name).mkdir()
    with Ledger(new / batch.name / "ledger.sqlite") as ledger:
        assert ledger.count() == 0
    r = runner.invoke(app, ["issue", "--signer", str(moved), "--reprint", rows[1][3],
                            "--out", "-"])
    assert r.exit_code == 3 and r.stdout == ""

def test_what_cannot_be_reprinted_is_said(runner, tmp_path, office):
    r = runner.invoke(app, ["issue", "--signer", str(office), "--reprint", "091190012345",
                            "--out", "-"])
    assert r.exit_code == 3 and "has no ledger.sqlite" in r.stderr  # nothing issued yet
    assert runner.invoke(app, ["issue", "--signer", str(office), *PERSON,
                               "--out", "-"]).exit_code == 0
    for ref, said in (("091190012346", "no credential for ID number 091190012346"),
                      ("URN:UVCI:01:VN:091/31078/NOPE#A", "is not a citizen's latest"),
                      ("Nguyễn Thị Ánh Hồng", "give the citizen's 12-digit ID number")):
        r = runner.invoke(app, ["issue", "--signer", str(office), "--reprint", ref,
                                "--out", "-"])
        assert r.exit_code == 2 and said in r.stderr, r.stderr
        assert r.stdout == ""
    for extra in (["--reissue"], ["--name", "X"], ["--from", "x.csv"]):
        r = runner.invoke(app, ["issue", "--signer", str(office), "--reprint", "091190012345",
                                "--out", "-", *extra])
        assert r.exit_code == 2 and "--reprint writes an existing credential" in r.stderr


def test_an_expired_credential_is_not_reprinted(runner, office, monkeypatch):
    assert runner.invoke(app, ["issue", "--signer", str(office), *PERSON,
                               "--out", "-"]).exit_code == 0
    found = reprint.find_issued(office, "091190012345")
    assert found.expires > datetime.now(UTC) + timedelta(days=300)
    with pytest.raises(VerificationError, match=r"expired on .*checkpoints refuse") as e:
        reprint.find_issued(office, "091190012345", now=found.expires + timedelta(seconds=1))
    assert "--reissue" in (e.value.hint or "")
    # the CLI, on a day after it expired (the ledger's exp can no longer be edited to fake
    # it: the expiry must be the text's own, or the ledger is refused as altered)
    later = found.expires + timedelta(days=1)

    class _Later(datetime):
        @classmethod
        def now(cls, tz=None):  # type: ignore[override]
            return later

    monkeypatch.setattr(reprint, "datetime", _Later)
    r = _reprint(runner, office)  # 1, "a credential is not valid" (README's exit codes)
    day = f"{found.expires:%Y-%m-%d}"
    assert r.exit_code == 1 and f"expired on {day}" in r.stderr and r.stdout == "", r.output
    # and `vaxqr issue --help` says so: it gave 2 for the credential itself, and no 1
    import re

    h = runner.invoke(app, ["issue", "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    said = " ".join(h.stdout.replace("│", " ").split())
    assert re.search(r"\(exit 3, or 1 for the credential itself\)", said), said
    assert re.search(r"Exit codes: 0 [^·]*· 1 --reprint: the credential is one checkpoints "
                     r"refuse ·", said), said


@pytest.mark.parametrize("register_knows", [True, False], ids=["register", "older-register"])
def test_a_batch_credential_that_has_expired_takes_one_step_to_replace(
        runner, tmp_path, office, register_knows):
    """A citizen whose batch credential has expired comes to the desk: issuing them again
    was refused as "already issued" pointing to --reprint, which refused it as expired,
    pointing to --reissue: three steps. The first refusal says it has expired and that
    --reissue signs a new one; --reissue then does, saying the old one has expired. The
    expiry is the register's, or (a register of an older vaxqr) the batch ledger's."""

    from vaxqr.citizen import citizen_key

    row = ["Nguyễn Thị Ánh Hồng", "Nữ", "1990-05-17", "091190012345", "2", "2",
           "2021-10-01", "pfizer", "", ""]
    src = write_csv(tmp_path / "records.csv", [row])
    batch = tmp_path / "batch"
    r = runner.invoke(app, ["issue", "--signer", str(office), "--from", str(src), "--out",
                            str(batch), "--workers", "1"])
    assert r.exit_code == 0, r.output
    for db_path, sql in ((batch / "ledger.sqlite", "UPDATE credentials SET exp = 1"),
                         (office / "ledger.sqlite", "UPDATE citizens SET exp = ?")):
        db = sqlite3.connect(db_path)  # long expired (1970-01-01)
        with db:
            if "citizens" in sql:
                db.execute(sql, (1 if register_knows else 0,))
            else:
                db.execute(sql)
        db.close()
    with Ledger(batch / "ledger.sqlite") as ledger:
        (old,) = ledger.entries()

    r = runner.invoke(app, ["issue", "--signer", str(office), *PERSON, "--out", "-"])
    assert r.exit_code == 2 and r.stdout == "", r.output
    said = " ".join(r.stderr.split())
    assert f"{old.uvci}, issued in {batch.resolve()}" in said
    assert "expired on 1970-01-01: checkpoints refuse it" in said
    assert "add --reissue to sign the citizen a new credential" in said
    assert "--reprint ID_NUMBER writes" not in said  # no detour through --reprint

    r = runner.invoke(app, ["issue", "--signer", str(office), *PERSON, "--out", "-",
                            "--reissue"])
    assert r.exit_code == 0, r.output
    said = " ".join(r.stderr.split())
    assert f"reissued: {old.uvci}" in said and "has expired (checkpoints refuse it)" in said
    assert "stays valid" not in said
    new = r.stdout.strip()
    with Register(office / "ledger.sqlite") as reg:
        (claim,) = reg.lookup([citizen_key("091190012345")]).values()
    assert claim.uvci != old.uvci and claim.replaces == old.uvci
    assert _reprint(runner, office).stdout.strip() == new  # the lost card, from now on


def test_a_claim_without_its_credential_names_the_unfinished_batch(tmp_path, office):
    from vaxqr.citizen import citizen_key
    from vaxqr.ledger import Register

    out = tmp_path / "batch"
    out.mkdir()
    Ledger(out / "ledger.sqlite").close()
    with Register(office / "ledger.sqlite") as reg:  # what a kill between claim and ledger leaves
        reg.claim([citizen_key("091190012345")], lambda held: [(
            citizen_key("091190012345"), "Nguyễn Thị Ánh Hồng", "F", "1990-05-17", 2, 2,
            "2021-10-01", "URN:UVCI:01:VN:091/31078/AAAA#B", str(out), "r.csv", 7,
            "2026-11-28T00:00:00Z", "", "", "", 0)])
    with pytest.raises(StorageError, match=r"claimed in .* but not recorded") as e:
        reprint.find_issued(office, "091190012345")
    assert f"vaxqr issue --from r.csv --out {out}" in (e.value.hint or "")


def test_refusing_a_single_issue_points_to_reprint(runner, office):
    assert runner.invoke(app, ["issue", "--signer", str(office), *PERSON,
                               "--out", "-"]).exit_code == 0
    other = [a if a != "2021-10-01" else "2021-09-01" for a in PERSON]  # same dose, earlier
    r = runner.invoke(app, ["issue", "--signer", str(office), *other, "--out", "-"])
    assert r.exit_code == 2, r.output
    assert "--reprint ID_NUMBER writes that credential again" in r.stderr


def test_a_batch_ledger_holding_another_credential_is_not_reprinted(runner, tmp_path, office):
    """The batch's ledger lives in its OUT_DIR, outside the office's signer directory (a
    shared folder, a directory put back from a backup): what it holds is checked before it
    is written again. Another citizen's genuine credential put under this UVCI, or text
    that this office's certificate did not sign, is refused, never printed on the card of
    the citizen at the desk."""

    from vaxqr.codec import b45decode, decompress, encode_hc1, strip_prefix

    rows, batch, issued = _batch(runner, tmp_path, office, seed=62)
    cose = decompress(b45decode(strip_prefix(issued[3].hc1)))
    forged = encode_hc1(cose[:-1] + bytes([cose[-1] ^ 1]))  # its signature altered
    for text, said in ((issued[1].hc1, f"holds {issued[1].uvci}, not {issued[3].uvci}"),
                       (forged, "does not verify"), ("HC1:NOT A CREDENTIAL", "cannot be read")):
        db = sqlite3.connect(batch / "ledger.sqlite")
        with db:
            db.execute("UPDATE credentials SET hc1 = ? WHERE row = 3", (text,))
        db.close()
        with pytest.raises(StorageError, match=said) as e:
            reprint.find_issued(office, rows[2][3], certificate=_office_cert(office))
        assert "batch" in str(e.value) and str(batch) in str(e.value)
        r = runner.invoke(app, ["issue", "--signer", str(office), "--reprint", rows[2][3],
                                "--out", "-"])
        assert r.exit_code == 3 and r.stdout == "", r.output
        assert said in r.stderr


def _resigned(hc1, kid):
    """``hc1``'s payload (its UVCI, its citizen) signed again with a new key, under ``kid``
    (bytes): a credential no trust list can verify."""
    from cryptography.hazmat.primitives.asymmetric import ec

    from vaxqr.codec import b45decode, decompress, encode_hc1, strip_prefix
    from vaxqr.sign import parse_sign1, sign1

    msg = parse_sign1(decompress(b45decode(strip_prefix(hc1))))
    return encode_hc1(sign1(msg.payload, ec.generate_private_key(ec.SECP256R1()), kid))


def test_the_register_records_what_the_office_signed(runner, tmp_path, office):
    """Every claim, a batch's (its last chunk too) and a single issue's, records the key
    id, the SHA-256 of the HC1: text and the expiry of its credential."""
    from vaxqr.ledger import Register, hc1_digest

    _rows, out, issued = _batch(runner, tmp_path, office, seed=63)
    entry = _issued(runner, office)
    with Register(office / "ledger.sqlite") as reg:
        claims = {c.uvci: c for c in reg.claims()}
    for e in (*issued.values(), entry):
        c = claims[e.uvci]
        assert (c.kid, c.hc1_sha256, c.exp) == (e.kid, hc1_digest(e.hc1), e.exp)
    # a run stopped between a chunk's ledger commit and the next claims: the batch run
    # again (nothing to sign) records what its claims lack
    _stopped_before_recording(office)
    claims = _run_again(runner, tmp_path, office, out)
    for e in issued.values():
        assert (claims[e.uvci].hc1_sha256, claims[e.uvci].exp) == (hc1_digest(e.hc1), e.exp)


def test_a_batch_ledger_holding_a_text_of_another_key_is_not_reprinted(
        runner, tmp_path, office):
    """Whoever can write a batch's OUT_DIR ledger could put there, under a citizen's UVCI,
    a text signed with a key of their own under a key id no trust list names (recording
    that key id in the ledger as well): it was written with a warning and exit 0. The
    office's register records the key id and the digest of the text it signed: refused,
    naming the ledger (exit 3)."""

    rows, batch, issued = _batch(runner, tmp_path, office, seed=64)
    genuine = issued[3]
    # under the office's own key id, vaxqr issue verifies the signature with its
    # certificate first; the library without it has only the register's digest
    for kid, said, cli_said in (
            (bytes(8), f"not {genuine.kid} as this office's register", None),
            (bytes.fromhex(genuine.kid), "not the one this office signed", "does not verify")):
        db = sqlite3.connect(batch / "ledger.sqlite")
        with db:
            db.execute("UPDATE credentials SET hc1 = ?, kid = ? WHERE row = 3",
                       (_resigned(genuine.hc1, kid), kid.hex()))
        db.close()
        # without the office's certificate at hand, only the register's digest tells
        with pytest.raises(StorageError, match=said) as e:
            reprint.find_issued(office, rows[2][3])
        assert str(batch / "ledger.sqlite") in str(e.value)
        r = runner.invoke(app, ["issue", "--signer", str(office), "--reprint", rows[2][3],
                                "--out", "-"])
        assert r.exit_code == 3 and r.stdout == "", r.output
        assert (cli_said or said) in r.stderr and str(batch / "ledger.sqlite") in r.stderr


def test_a_register_of_an_older_vaxqr_keeps_working(runner, tmp_path, office):
    """A register made before it recorded key ids and digests gains the columns, empty,
    when opened; its entries are reprinted with the checks they had (UVCI, the ledger's key
    id, the office's signature), and new claims record them."""

    from vaxqr.ledger import Register

    entry = _issued(runner, office)
    db = sqlite3.connect(office / "ledger.sqlite")
    with db:
        for column in ("kid", "hc1_sha256", "exp"):
            db.execute(f"ALTER TABLE citizens DROP COLUMN {column}")
    db.close()
    r = _reprint(runner, office)
    assert r.exit_code == 0, r.output
    assert r.stdout.strip() == entry.hc1
    with Register(office / "ledger.sqlite") as reg:
        (claim,) = reg.claims()
    assert (claim.kid, claim.hc1_sha256, claim.exp) == ("", "", 0)
    # the older checks still hold: a text of another key under the recorded kid is refused
    # with the office's certificate, whose key id it is
    db = sqlite3.connect(office / "ledger.sqlite")
    with db:
        db.execute("UPDATE credentials SET hc1 = ?",
                   (_resigned(entry.hc1, bytes.fromhex(entry.kid)),))
    db.close()
    r = _reprint(runner, office)
    assert r.exit_code == 3 and "does not verify" in r.stderr, r.output


def _office_cert(office):
    from cryptography import x509

    return x509.load_pem_x509_certificate((office / "signer.crt").read_bytes())


def test_a_reprint_asks_no_password_and_no_time_left(runner, tmp_path, monkeypatch):
    """Nothing is signed: no password (the key is not opened, a --password-file given is
    not read), and a commune certificate ending within 30 days needs no --short-validity."""
    _ca, s = _fresh_signer(tmp_path, days=20)
    monkeypatch.setenv("VAXQR_PASSWORD", "a test password")
    first = runner.invoke(app, ["issue", "--signer", str(s), *PERSON, "--out", "-",
                                "--short-validity"])
    assert first.exit_code == 0, first.output
    monkeypatch.delenv("VAXQR_PASSWORD")
    (s / "signer.key").unlink()  # not even there: a reprint never needs it
    for extra in ([], ["--password-file", str(tmp_path / "no-such-file")]):
        r = runner.invoke(app, ["issue", "--signer", str(s), "--reprint", "091190012345",
                                "--out", "-", *extra])
        assert r.exit_code == 0, r.output
        assert r.stdout == first.stdout
        assert "password" not in r.stderr and "not in 12 months" not in r.stderr


def _issued(runner, office):
    r = runner.invoke(app, ["issue", "--signer", str(office), *PERSON, "--out", "-"])
    assert r.exit_code == 0, r.output
    with Ledger(office / "ledger.sqlite") as ledger:
        (entry,) = ledger.entries()
    return entry


def _reprint(runner, office, *extra):
    return runner.invoke(app, ["issue", "--signer", str(office), "--reprint", "091190012345",
                               "--out", "-", *extra])


def test_a_credential_of_a_revoked_certificate_is_not_reprinted(runner, tmp_path, office):
    """Checkpoints refuse every credential of a revoked commune certificate: the CRL in
    SIGNER/trust/, or the province's trust list given with --trust, stops the reprint."""
    import shutil

    from vaxqr import certs, revocation

    ca = _demo_ca_copy(tmp_path)
    _issued(runner, office)
    revocation.revoke_certificate(ca, "31078", password=b"vaxqr-demo", reason="superseded")
    certs.build_trustlist(ca, password=b"vaxqr-demo", out=tmp_path / "tl.json")
    assert _reprint(runner, office).exit_code == 0  # nothing on this machine says it yet
    (office / "trust").mkdir(exist_ok=True)
    shutil.copy(ca / "crl.pem", office / "trust" / "crl.pem")
    for extra in ([], ["--trust", str(tmp_path / "tl.json")]):
        if extra:
            (office / "trust" / "crl.pem").unlink()
        r = _reprint(runner, office, *extra)
        assert r.exit_code == 3, r.output
        assert "is not reprinted" in r.stderr and "has been revoked" in r.stderr
        assert "--reissue" in r.stderr and r.stdout == ""


def test_a_revoked_credential_is_not_reprinted(runner, tmp_path, office):
    from vaxqr import certs, revocation

    ca = _demo_ca_copy(tmp_path)
    entry = _issued(runner, office)
    (office / "trust").mkdir(exist_ok=True)
    certs.build_trustlist(ca, password=b"vaxqr-demo", out=office / "trust" / "tl.json")
    assert _reprint(runner, office).exit_code == 0
    revocation.revoke_credentials(ca, [entry.uvci])
    certs.build_trustlist(ca, password=b"vaxqr-demo", out=office / "trust" / "tl.json",
                          force=True)
    r = _reprint(runner, office)
    assert r.exit_code == 1, r.output  # not valid, as at a checkpoint (2 is a usage error)
    assert f"{entry.uvci} has been revoked by the province" in r.stderr
    assert "checkpoints refuse it" in r.stderr and "--reissue" in r.stderr
    assert r.stdout == ""


def test_a_credential_of_an_earlier_certificate_is_checked_against_the_trust_list(
        runner, tmp_path, office):
    """After a renewal (certs issue --force), the earlier certificate is no longer in the
    directory: the province's trust list says whether checkpoints still trust it."""
    from vaxqr import certs, revocation

    ca = _demo_ca_copy(tmp_path)
    entry = _issued(runner, office)
    certs.issue_signer(ca, ca_password=b"vaxqr-demo", commune_code="31078",
                       name="UBND xã Dương Tơ", out_dir=office, password=b"vaxqr-demo",
                       force=True)
    r = _reprint(runner, office)
    assert r.exit_code == 0, r.output
    assert f"signed with an earlier certificate of this office (kid {entry.kid})" in r.stderr
    assert "no trust list in SIGNER/trust/ tells" in r.stderr
    (office / "trust").mkdir(exist_ok=True)
    tl = office / "trust" / "tl.json"
    certs.build_trustlist(ca, password=b"vaxqr-demo", out=tl)
    r = _reprint(runner, office)
    assert r.exit_code == 0 and "earlier certificate" not in r.stderr, r.output  # listed
    revocation.revoke_certificate(ca, entry.kid, password=b"vaxqr-demo")
    certs.build_trustlist(ca, password=b"vaxqr-demo", out=tl, force=True)
    r = _reprint(runner, office)
    assert r.exit_code == 3, r.output
    assert f"earlier certificate of this office (kid {entry.kid}), which has been revoked" \
        in r.stderr and "--reissue" in r.stderr and r.stdout == ""


def test_a_damaged_trust_file_is_not_a_reason_to_reissue(runner, office):
    """A CRL in SIGNER/trust/ that cannot be read refuses the reprint as it refuses a
    signing (its revocations must not be dropped), but it says nothing of the credential:
    the hint is not to sign the citizen a new one (that would be refused the same way)."""
    _issued(runner, office)
    (office / "trust").mkdir(exist_ok=True)
    (office / "trust" / "crl.pem").write_text(
        "-----BEGIN X509 CRL-----\nbm90IGEgQ1JM\n-----END X509 CRL-----\n")
    r = _reprint(runner, office)
    assert r.exit_code == 3, r.output
    assert "crl.pem is not a readable CRL" in r.stderr and r.stdout == ""
    assert "--reissue" not in r.stderr and "needs a new credential" not in r.stderr
    signing = runner.invoke(app, ["issue", "--signer", str(office), *PERSON, "--out", "-",
                                  "--reissue"])
    assert signing.exit_code == 3 and "not a readable CRL" in signing.stderr


def _renewed_and_listed(runner, tmp_path, office):
    """A credential issued, the office's certificate renewed, and the province's trust list
    (naming both) in SIGNER/trust/: the credential is reprinted. Returns the CA directory
    and the credential's ledger entry."""
    from vaxqr import certs

    ca = _demo_ca_copy(tmp_path)
    entry = _issued(runner, office)
    certs.issue_signer(ca, ca_password=b"vaxqr-demo", commune_code="31078",
                       name="UBND xã Dương Tơ", out_dir=office, password=b"vaxqr-demo",
                       force=True)
    (office / "trust").mkdir(exist_ok=True)
    certs.build_trustlist(ca, password=b"vaxqr-demo", out=office / "trust" / "tl.json")
    assert _reprint(runner, office).exit_code == 0
    return ca, entry


def test_a_credential_of_an_earlier_certificate_is_verified_with_the_listed_one(
        runner, tmp_path, office):
    """After a renewal, the province's trust list holds the earlier certificate: a text
    under the credential's UVCI and kid whose signature it does not verify (altered) is
    refused, as one of the current certificate is."""

    from vaxqr.codec import b45decode, decompress, encode_hc1, strip_prefix

    _ca, entry = _renewed_and_listed(runner, tmp_path, office)
    cose = decompress(b45decode(strip_prefix(entry.hc1)))
    forged = encode_hc1(cose[:-1] + bytes([cose[-1] ^ 1]))  # its signature altered
    db = sqlite3.connect(office / "ledger.sqlite")
    with db:
        db.execute("UPDATE credentials SET hc1 = ? WHERE uvci = ?", (forged, entry.uvci))
    db.close()
    r = _reprint(runner, office)
    assert r.exit_code == 3, r.output
    assert "not the one this office signed" in r.stderr and r.stdout == ""  # its digest
    db = sqlite3.connect(office / "ledger.sqlite")  # an older register's entry: no digest
    with db:
        db.execute("UPDATE citizens SET hc1_sha256 = ''")
    db.close()
    r = _reprint(runner, office)
    assert r.exit_code == 3, r.output
    assert "does not verify" in r.stderr and r.stdout == ""


def test_a_reprint_reads_a_read_only_signer_directory(runner, tmp_path):
    """--reprint writes nothing, but the office register was opened for writing (its
    set-up, WAL switch and schema): refused on a read-only signer directory. Now read-only:
    a ledger closed cleanly (no -wal or -shm, which a read-only mount cannot make) is read
    as immutable; one with its -wal and -shm (a process had it open) through them; a -wal
    holding records without its -shm cannot be read without writing: said so, exit 3."""
    import shutil
    import subprocess

    where = tmp_path / "mnt"
    where.mkdir()
    with mounted_tmpfs(where, "size=8m"):
        office = where / "clean"
        shutil.copytree(_signer_copy(tmp_path), office)
        entry = _issued(runner, office)
        rows = good_rows(2, seed=71)
        src = write_csv(tmp_path / "two.csv", rows)
        holder = sqlite3.connect(office / "ledger.sqlite")  # keeps the next records in -wal
        holder.execute("PRAGMA wal_autocheckpoint=0")
        holder.execute("SELECT count(*) FROM citizens").fetchone()
        r = runner.invoke(app, ["issue", "--signer", str(office), "--from", str(src),
                                "--out", str(tmp_path / "batch"), "--workers", "1"])
        assert r.exit_code == 0, r.output
        # as a process killed with the register open leaves it: records in its -wal
        shutil.copytree(office, where / "open")
        shutil.copytree(office, where / "no-shm")
        (where / "no-shm" / "ledger.sqlite-shm").unlink()
        assert (where / "open" / "ledger.sqlite-wal").stat().st_size > 0
        holder.close()  # the last connection: folds the -wal in, removes -wal and -shm
        assert not (office / "ledger.sqlite-wal").exists()
        subprocess.run(["mount", "-o", "remount,ro", str(where)], check=True)
        r = _reprint(runner, office)
        assert r.exit_code == 0, r.output
        assert r.stdout.strip() == entry.hc1
        r = runner.invoke(app, ["issue", "--signer", str(where / "open"), "--reprint",
                                rows[1][3], "--out", "-"])
        assert r.exit_code == 0, r.output
        assert r.stdout.startswith("HC1:") and "two.csv row 2" in r.stderr
        r = runner.invoke(app, ["issue", "--signer", str(where / "no-shm"), "--reprint",
                                rows[1][3], "--out", "-"])
        assert r.exit_code == 3, r.output
        text = " ".join(r.stderr.split())
        assert "cannot be read without writing: records are in its ledger.sqlite-wal, " \
               "whose ledger.sqlite-shm is missing" in text, text
        assert r.stdout == ""


def test_a_reprint_reads_a_read_only_register_file(runner, tmp_path, office):
    """The register file itself read-only (a bind mount; a file of another user), in a
    directory that can be written: read through a -shm made there."""
    import subprocess

    entry = _issued(runner, office)
    ledger = office / "ledger.sqlite"
    bind = subprocess.run(["mount", "--bind", str(ledger), str(ledger)], capture_output=True,
                          text=True, check=False)
    if bind.returncode != 0:
        pytest.skip(f"cannot bind-mount a file (needs root): {bind.stderr.strip()}")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(ledger)], check=True)
        with pytest.raises(OSError):
            ledger.open("ab").close()
        r = _reprint(runner, office)
        assert r.exit_code == 0, r.output
        assert r.stdout.strip() == entry.hc1
    finally:
        subprocess.run(["umount", "-l", str(ledger)], check=False)


def _run_again(runner, tmp_path, office, out):
    """:func:`_batch`'s batch run again (nothing to sign): the register's claims after."""
    r = runner.invoke(app, ["issue", "--signer", str(office), "--from",
                            str(tmp_path / "records.csv"), "--out", str(out),
                            "--workers", "1"])
    assert r.exit_code == 0, r.output
    with Register(office / "ledger.sqlite") as reg:
        return {c.uvci: c for c in reg.claims()}


def _stopped_before_recording(office):
    """The register as a batch stopped between two chunks leaves it: its last chunk's
    claims hold their key id but no digest or expiry (recorded with the next chunk's)."""

    db = sqlite3.connect(office / "ledger.sqlite")
    with db:
        db.execute("UPDATE citizens SET hc1_sha256 = '', exp = 0 WHERE place != 'single'")
    db.close()


def _set_text(batch, row, hc1):

    db = sqlite3.connect(batch / "ledger.sqlite")
    with db:
        db.execute("UPDATE credentials SET hc1 = ? WHERE row = ?", (hc1, row))
    db.close()


def test_a_claim_its_stopped_batch_did_not_record_is_reprinted_only_when_checked(
        runner, tmp_path, office):
    """A batch stopped between two chunks leaves its last chunk's claims without the
    digest of their text until it is run again. Its text then is the batch ledger's word
    alone, the ledger the digest guards against: reprinted when its signature verifies
    with a certificate this office knows (its own; after a renewal, the one the
    province's trust list gives), refused otherwise (it was written with a warning). A run
    of the batch again records only texts it verifies: an altered one is not vouched for
    by the register from then on."""
    from vaxqr import certs
    from vaxqr.ledger import hc1_digest

    rows, batch, issued = _batch(runner, tmp_path, office, seed=66)
    genuine = issued[3]
    _stopped_before_recording(office)

    def reprint_row3():
        return runner.invoke(app, ["issue", "--signer", str(office), "--reprint",
                                   rows[2][3], "--out", "-"])

    r = reprint_row3()  # the office's own certificate verifies it
    assert r.exit_code == 0 and r.stdout.strip() == genuine.hc1, r.output
    _set_text(batch, 3, _resigned(genuine.hc1, bytes.fromhex(genuine.kid)))
    r = reprint_row3()
    assert r.exit_code == 3 and "does not verify" in r.stderr, r.output
    # the batch run again: the digests of the texts it signed are recorded, not that one
    claims = _run_again(runner, tmp_path, office, batch)
    assert claims[genuine.uvci].hc1_sha256 == ""
    assert all(claims[e.uvci].hc1_sha256 == hc1_digest(e.hc1)
               for n, e in issued.items() if n != 3)
    _set_text(batch, 3, genuine.hc1)

    # renewed: the batch's certificate is an earlier one, which no trust list here gives
    ca = _demo_ca_copy(tmp_path)
    certs.issue_signer(ca, ca_password=b"vaxqr-demo", commune_code="31078",
                       name="UBND xã Dương Tơ", out_dir=office, password=b"vaxqr-demo",
                       force=True)
    r = reprint_row3()
    assert r.exit_code == 3 and r.stdout == "", r.output
    text = " ".join(r.stderr.split())
    assert f"{genuine.uvci} cannot be checked: this office's register has no digest of " \
           "its text (its batch stopped before recording it" in text, text
    assert f"earlier certificate of this office (kid {genuine.kid})" in text
    assert "put the province's trust list that lists that certificate in" in text
    # one whose digest the register holds is written, with the warning, as before
    r = runner.invoke(app, ["issue", "--signer", str(office), "--reprint", rows[1][3],
                            "--out", "-"])
    assert r.exit_code == 0 and r.stdout.strip() == issued[2].hc1, r.output
    # the province's trust list gives the earlier certificate: verified with it
    certs.build_trustlist(ca, password=b"vaxqr-demo", out=office / "trust" / "tl.json")
    r = reprint_row3()
    assert r.exit_code == 0 and r.stdout.strip() == genuine.hc1, r.output
    _set_text(batch, 3, _resigned(genuine.hc1, bytes.fromhex(genuine.kid)))
    r = reprint_row3()
    assert r.exit_code == 3 and "does not verify" in r.stderr, r.output


def test_a_batch_ledger_with_another_expiry_than_its_text_is_not_reprinted(
        runner, tmp_path, office):
    """The expiry said and checked (an expired credential is not reprinted) was the batch
    ledger's column, which no digest or signature covers: it must be the text's."""

    rows, batch, issued = _batch(runner, tmp_path, office, seed=67)
    db = sqlite3.connect(batch / "ledger.sqlite")
    with db:
        db.execute("UPDATE credentials SET exp = exp + 86400 WHERE row = 2")
    db.close()
    r = runner.invoke(app, ["issue", "--signer", str(office), "--reprint", rows[1][3],
                            "--out", "-"])
    assert r.exit_code == 3 and r.stdout == "", r.output
    assert f"expires at {issued[2].exp}, not at {issued[2].exp + 86400} as recorded" \
        in " ".join(r.stderr.split())


def test_the_library_checks_a_text_without_digest_with_the_offices_certificate(
        tmp_path, runner, office):
    """find_issued may be called without the office's certificate (the library: only the
    register's digest then tells an altered text). check_reprint has the certificate at
    hand, yet for a credential of the office's current key id it returned at once: a batch
    claim whose digest the register lacks (a stopped batch) was passed with a text signed by
    another key under the office's key id, which the CLI refuses ("does not verify")."""
    rows, batch, issued = _batch(runner, tmp_path, office, seed=68)
    genuine = issued[3]
    _stopped_before_recording(office)
    found = reprint.find_issued(office, rows[2][3])
    assert reprint.check_reprint(office, found) == ()  # the genuine text: written
    _set_text(batch, 3, _resigned(genuine.hc1, bytes.fromhex(genuine.kid)))
    found = reprint.find_issued(office, rows[2][3])  # (no certificate, no digest: passed)
    with pytest.raises(StorageError, match="does not verify with this office's certificate"):
        reprint.check_reprint(office, found)


def _side_files(*dirs):
    return sorted(p.name for d in dirs for p in d.iterdir()
                  if p.name.startswith("ledger.sqlite-"))


def test_a_reprint_leaves_no_side_files_of_the_ledgers_it_read(runner, tmp_path, office):
    """A read-only open of a WAL ledger in a directory that can be written makes its -wal
    (empty) and -shm, and the read-only connection cannot remove them when it closes: every
    --reprint left both beside the register and the batch's ledger. Those it made are
    removed once no other connection has the ledger open; those of a process that still has
    it open (a batch running) are left to it."""
    rows, batch, issued = _batch(runner, tmp_path, office, seed=67)
    assert _side_files(office, batch) == []
    r = runner.invoke(app, ["issue", "--signer", str(office), "--reprint", rows[1][3],
                            "--out", "-"])
    assert r.exit_code == 0, r.output
    assert r.stdout.strip() == issued[2].hc1
    assert _side_files(office, batch) == []

    holder = sqlite3.connect(batch / "ledger.sqlite")  # another process's, say: still open
    try:
        holder.execute("PRAGMA wal_autocheckpoint=0")
        holder.execute("SELECT count(*) FROM credentials").fetchone()
        held = _side_files(batch)
        assert held == ["ledger.sqlite-shm", "ledger.sqlite-wal"]
        r = runner.invoke(app, ["issue", "--signer", str(office), "--reprint", rows[1][3],
                                "--out", "-"])
        assert r.exit_code == 0, r.output
        assert _side_files(batch) == held and _side_files(office) == []
        holder.execute("SELECT count(*) FROM credentials").fetchone()  # still works
    finally:
        holder.close()
    assert _side_files(office, batch) == []

    import subprocess
    import sys

    other = subprocess.Popen(  # another process with the batch's ledger open
        [sys.executable, "-c", "import sqlite3, sys\n"
         "db = sqlite3.connect(sys.argv[1]); db.execute('SELECT 1 FROM credentials')\n"
         "print('open', flush=True); sys.stdin.read()", str(batch / "ledger.sqlite")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout is not None and other.stdout.readline() == "open\n"
        held = _side_files(batch)
        r = runner.invoke(app, ["issue", "--signer", str(office), "--reprint", rows[1][3],
                                "--out", "-"])
        assert r.exit_code == 0, r.output
        assert _side_files(batch) == held and _side_files(office) == []
    finally:
        other.communicate("")
    assert _side_files(office, batch) == []


def test_an_earlier_certificate_revoked_only_in_the_crl_is_not_reprinted(
        runner, tmp_path, office):
    """The province revoked the earlier certificate after its trust list in SIGNER/trust/
    was made: only its CRL (crl.pem there) says so. A checkpoint given the same files
    refuses the credential; the reprint refuses it too."""
    import shutil

    from vaxqr import revocation

    ca, entry = _renewed_and_listed(runner, tmp_path, office)  # listed, not revoked
    revocation.revoke_certificate(ca, entry.kid, password=b"vaxqr-demo")
    shutil.copy(ca / "crl.pem", office / "trust" / "crl.pem")  # the list is not rebuilt
    out = tmp_path / "card.txt"
    out.write_text(entry.hc1 + "\n")
    checkpoint = runner.invoke(app, ["verify", str(out), "--trust", str(CA), "--trust",
                                     str(office / "trust"), "--json"])
    assert checkpoint.exit_code == 1 and "revoked" in checkpoint.output, checkpoint.output
    r = _reprint(runner, office)
    assert r.exit_code == 3, r.output
    assert f"earlier certificate of this office (kid {entry.kid}), which has been revoked" \
        in r.stderr and "crl.pem" in r.stderr and "--reissue" in r.stderr
    assert r.stdout == ""


def test_an_earlier_certificate_whose_ca_its_root_revoked_is_not_reprinted(
        runner, tmp_path, monkeypatch):
    """The province CA above the earlier certificate revoked by the national root (its CRL
    in SIGNER/trust/): the current certificate's check fails (a warning: the credential
    was signed with the earlier one), and the earlier one's chain is checked as well."""
    import shutil

    from vaxqr import certs, revocation

    pw = b"a test password"
    monkeypatch.setenv("VAXQR_PASSWORD", pw.decode())
    root, ca, s = tmp_path / "root", tmp_path / "ca", tmp_path / "s"
    certs.init_ca(root, name="Bộ Y tế", province_code=None, root=True, password=pw)
    certs.init_ca(ca, name="Kiên Giang", province_code="091", password=pw, parent_dir=root,
                  parent_password=pw)
    signer = {"ca_password": pw, "commune_code": "31078", "name": "UBND xã Dương Tơ",
              "out_dir": s, "password": pw}
    certs.issue_signer(ca, **signer)
    entry = _issued(runner, s)
    certs.issue_signer(ca, **signer, force=True)
    (s / "trust").mkdir(exist_ok=True)
    certs.build_trustlist(ca, password=pw, out=s / "trust" / "tl.json")
    assert _reprint(runner, s).exit_code == 0
    revocation.revoke_certificate(root, str(ca / "ca.crt"), password=pw)
    shutil.copy(root / "crl.pem", s / "trust" / "root-crl.pem")
    r = _reprint(runner, s)
    assert r.exit_code == 3, r.output
    assert f"earlier certificate of this office (kid {entry.kid}), whose CA" in r.stderr
    assert "Kiên Giang" in r.stderr and "root-crl.pem" in r.stderr and r.stdout == ""


def test_the_current_certificate_revoked_only_in_the_crl_is_not_reprinted(
        runner, tmp_path, office):
    """The current certificate revoked after the trust list in SIGNER/trust/ was made (it
    still lists it): the CRL there refuses the reprint, as at a checkpoint."""
    import shutil

    from vaxqr import certs, revocation

    ca = _demo_ca_copy(tmp_path)
    entry = _issued(runner, office)
    (office / "trust").mkdir(exist_ok=True)
    certs.build_trustlist(ca, password=b"vaxqr-demo", out=office / "trust" / "tl.json")
    assert _reprint(runner, office).exit_code == 0
    revocation.revoke_certificate(ca, entry.kid, password=b"vaxqr-demo")
    shutil.copy(ca / "crl.pem", office / "trust" / "crl.pem")
    r = _reprint(runner, office)
    assert r.exit_code == 3, r.output
    assert "is not reprinted" in r.stderr and "has been revoked" in r.stderr
    assert "crl.pem" in r.stderr and r.stdout == ""


def test_a_crl_of_the_offices_ca_that_cannot_be_checked_refuses_both(runner, tmp_path,
                                                                     office):
    """Such a CRL says nothing of the credential: the reprint is refused as the signing is,
    without the hint to sign the citizen a new credential."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from test_signercheck import _crl_signed_by

    _issued(runner, office)
    (office / "trust").mkdir(exist_ok=True)
    forged = _crl_signed_by(_ca_cert(), ec.generate_private_key(ec.SECP256R1()))
    (office / "trust" / "crl.pem").write_bytes(forged.public_bytes(serialization.Encoding.PEM))
    r = _reprint(runner, office)
    assert r.exit_code == 3, r.output
    assert "whose signature cannot be checked" in r.stderr and r.stdout == ""
    assert "--reissue" not in r.stderr
    signing = runner.invoke(app, ["issue", "--signer", str(office), *PERSON, "--out", "-",
                                  "--reissue"])
    assert signing.exit_code == 3 and "whose signature cannot be checked" in signing.stderr


def _ca_cert():
    from cryptography import x509

    return x509.load_pem_x509_certificate(CA.read_bytes())
