"""A throwaway certificate authority for the local servers' TLS, made with the `openssl` command.

It signs server certificates for 127.0.0.1 and localhost; clients trust `ca_cert`. Keys are unencrypted
PKCS#8 PEM files, readable by Kafka (PEM key stores), Redis and Python's ssl alike. For tests and local
stacks only: a real deployment's certificates come from its own CA.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from finsentry.services.process import ServiceError

LOOPBACK_NAMES = ("IP:127.0.0.1", "DNS:localhost")


@dataclass(frozen=True)
class ServerCertificate:
    cert: Path  # the server's certificate (PEM)
    key: Path  # its private key (unencrypted PKCS#8 PEM)
    ca_cert: Path  # the CA that signed it, which clients trust

    def pem(self) -> tuple[str, str, str]:
        """The certificate, key and CA certificate as PEM text."""
        return self.cert.read_text(), self.key.read_text(), self.ca_cert.read_text()


class ThrowawayCA:
    """A CA in `folder` (made on first use, valid for `days`), and the server certificates it signs."""

    def __init__(self, folder: Path, days: int = 2, name: str = "finsentry throwaway CA"):
        self.folder = folder
        self.days = days
        self.name = name

    @property
    def cert(self) -> Path:
        return self.folder / "ca.pem"

    @property
    def key(self) -> Path:
        return self.folder / "ca.key"

    def ensure(self) -> ThrowawayCA:
        if not (self.cert.is_file() and self.key.is_file()):
            self.folder.mkdir(parents=True, exist_ok=True)
            _openssl(
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(self.key),
                "-out", str(self.cert), "-days", str(self.days), "-subj", f"/CN={self.name}",
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            )  # fmt: skip
            self.key.chmod(0o600)
        return self

    def issue(self, name: str, alt_names: tuple[str, ...] = LOOPBACK_NAMES) -> ServerCertificate:
        """A key and certificate for a server on `alt_names` (by default 127.0.0.1 and localhost)."""
        self.ensure()
        key, csr, cert = (self.folder / f"{name}{suffix}" for suffix in (".key", ".csr", ".pem"))
        extensions = self.folder / f"{name}.ext"
        extensions.write_text(
            "\n".join(
                [
                    "basicConstraints=critical,CA:FALSE",
                    "keyUsage=critical,digitalSignature,keyEncipherment",
                    "extendedKeyUsage=serverAuth,clientAuth",
                    f"subjectAltName={','.join(alt_names)}",
                    "subjectKeyIdentifier=hash",
                    "authorityKeyIdentifier=keyid,issuer",
                    "",
                ]
            )
        )
        _openssl(
            "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
            "-subj", f"/CN={name}",
        )  # fmt: skip
        key.chmod(0o600)
        _openssl(
            "x509", "-req", "-in", str(csr), "-CA", str(self.cert), "-CAkey", str(self.key),
            "-set_serial", str(secrets.randbits(63)), "-days", str(self.days), "-sha256",
            "-extfile", str(extensions), "-out", str(cert),
        )  # fmt: skip
        csr.unlink()
        return ServerCertificate(cert, key, self.cert)


def _openssl(*args: str) -> None:
    binary = shutil.which("openssl")
    if binary is None:
        raise ServiceError(
            "the openssl command is needed to make test certificates (`apt-get install openssl`)"
        )
    result = subprocess.run([binary, *args], capture_output=True, text=True)  # noqa: S603 - a fixed argv of our own tools, no shell
    if result.returncode != 0:
        raise ServiceError(f"openssl {args[0]} failed: {result.stderr[-2000:]}")
