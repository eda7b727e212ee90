"""A test certificate hierarchy (a province CA with two commune DSCs) and shared helpers
for the tests of the certificate modules and of `vaxqr certs`."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from vaxqr import certinfo, certs, revocation

PW = b"correct horse battery"
OTHER_PW = b"a different password"
UTC = dt.UTC
T0 = dt.datetime(2022, 1, 10, tzinfo=UTC)
REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "keys" / "examples"
HAVE_OPENSSL = shutil.which("openssl") is not None
AT_T0 = ("-attime", str(int(T0.timestamp()) + 86400))
# The test CAs live the longest a CA may (10 years from T0, to 2032): with the default 5
# they expired on 2027-01-10, and every test that issues or revokes at today's date would
# have failed from then on (found by running the suite under faketime at 2027-03-01).
CA_DAYS = certs.CA_DAYS_MAX


@dataclass
class Hierarchy:
    ca: Path
    s1: Path
    s2: Path
    tmp: Path

    def dsc(self, which: Path) -> x509.Certificate:
        return certinfo.load_certificates(which / "signer.crt")[0]


def make_hierarchy(tmp: Path, province: str = "Kiên Giang") -> Hierarchy:
    ca = tmp / "ca"
    certs.init_ca(ca, name=province, province_code="091", password=PW, now=T0,
                  days=CA_DAYS)
    s1, s2 = tmp / "s1", tmp / "s2"
    certs.issue_signer(
        ca,
        ca_password=PW,
        commune_code="30760",
        name="UBND phường Vĩnh Thanh Vân",
        out_dir=s1,
        password=PW,
        now=T0,
    )
    certs.issue_signer(
        ca,
        ca_password=PW,
        commune_code="31078",
        name="UBND xã Dương Tơ",
        out_dir=s2,
        password=PW,
        now=T0,
    )
    return Hierarchy(ca, s1, s2, tmp)


def root_province_commune(tmp: Path) -> tuple[Path, Path, Path]:
    """A national root, a province CA under it, one commune DSC, and the province's list."""
    root, ca, s = tmp / "root", tmp / "ca", tmp / "s"
    certs.init_ca(root, name="Bộ Y tế", province_code=None, root=True, password=PW, now=T0,
                  days=CA_DAYS)
    certs.init_ca(ca, name="Kiên Giang", province_code="091", password=PW, days=CA_DAYS,
                  parent_dir=root,
                  parent_password=PW, now=T0)
    certs.issue_signer(ca, ca_password=PW, commune_code="31078", name="UBND xã Dương Tơ",
                       out_dir=s, password=PW, now=T0)
    certs.build_trustlist(ca, password=PW, out=tmp / "tl.json", now=T0)
    return root, ca, s


def publish(h: Hierarchy) -> tuple[Hierarchy, Path]:
    """Revoke one credential and publish the first trust list (``tl.json``) at T0."""
    revocation.revoke_credentials(h.ca, ["URN:UVCI:01:VN:091/31078/1#Q"], now=T0)
    certs.build_trustlist(h.ca, password=PW, out=h.tmp / "tl.json", now=T0)
    return h, h.tmp / "tl.json"


def openssl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)


def ext(cert: x509.Certificate, cls: type) -> x509.Extension:  # type: ignore[type-arg]
    return cert.extensions.get_extension_for_class(cls)


def self_signed(exts: list[tuple[x509.ExtensionType, bool]]) -> x509.Certificate:
    k = ec.generate_private_key(ec.SECP256R1())
    n = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "odd DSC")])
    b = (
        x509.CertificateBuilder()
        .subject_name(n)
        .issuer_name(n)
        .public_key(k.public_key())
        .serial_number(7)
        .not_valid_before(T0)
        .not_valid_after(T0 + dt.timedelta(days=30))
    )
    for e, c in exts:
        b = b.add_extension(e, c)
    der = b.sign(k, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
    return x509.load_der_x509_certificate(der)
