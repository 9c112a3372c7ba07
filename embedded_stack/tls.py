"""Private TLS material for a TLS-only embedded stack: a CA and a server certificate, made for that stack.

``EmbeddedStack(tls=True)`` (``secretswitch local --tls``, ``demo --tls``)
calls :func:`make_stack_tls` in its temporary folder before SecantusDB starts:

* ``tls/ca.pem``: a new certificate authority, made for this stack only and
  trusted by nothing else (its key is never written: no one can sign with it
  once the stack has made its one server certificate);
* ``tls/server.pem`` and ``tls/server-key.pem``: a server certificate signed
  by that CA for ``127.0.0.1`` and ``localhost`` (the names the stack's
  secrets and clients use), and its key, written ``0600``.

The folder goes when the stack stops. Keys are ECDSA P-256: a CA and a server
certificate take a few milliseconds.

The building blocks (:func:`new_certificate_authority`,
:meth:`CertificateAuthority.issue_server_certificate`, :func:`write_tls_files`)
take the names and the validity as arguments, so tests make the bad
certificates they need (another CA, another host name, an expired one) the
same way.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "DEFAULT_VALIDITY",
    "STACK_HOSTS",
    "CertificateAuthority",
    "ServerCertificate",
    "TlsFiles",
    "make_stack_tls",
    "new_certificate_authority",
    "write_tls_files",
]

STACK_HOSTS: tuple[str, ...] = ("127.0.0.1", "localhost")
"""The names the stack's server certificate is valid for: its secrets say ``127.0.0.1``."""
DEFAULT_VALIDITY = dt.timedelta(days=30)
"""How long the stack's CA and certificate are valid: longer than any ``secretswitch local`` session."""
# Tolerates a clock a little behind the one that made the certificate.
_BACKDATE = dt.timedelta(minutes=5)

Clock = Callable[[], dt.datetime]


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class TlsFiles:
    """Where one stack's TLS files are (they exist once :func:`write_tls_files` ran)."""

    folder: Path

    @property
    def ca_file(self) -> Path:
        """The CA certificate clients verify the server with (``tlsCAFile``)."""
        return self.folder / "ca.pem"

    @property
    def cert_file(self) -> Path:
        """The server's certificate (SecantusDB's ``--tls-cert-file``)."""
        return self.folder / "server.pem"

    @property
    def key_file(self) -> Path:
        """The server's private key, ``0600`` (SecantusDB's ``--tls-key-file``)."""
        return self.folder / "server-key.pem"


@dataclass(frozen=True)
class ServerCertificate:
    """A server certificate and its private key."""

    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate


@dataclass(frozen=True)
class CertificateAuthority:
    """A CA that signs server certificates."""

    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    def issue_server_certificate(
        self,
        hosts: Sequence[str] = STACK_HOSTS,
        *,
        now: Clock = _utc_now,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
    ) -> ServerCertificate:
        """A certificate for ``hosts`` (IP addresses and DNS names) signed by this CA.

        Args:
            hosts: the names it is valid for; the first one is also its common name.
            now: the clock the validity is counted from.
            not_before: the start of its validity (default: ``now()`` less five minutes).
            not_after: its end (default: :data:`DEFAULT_VALIDITY` after ``now()``).
        """
        if not hosts:
            raise ValueError("a server certificate needs at least one host name or address")
        start = now()
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or start - _BACKDATE)
            .not_valid_after(not_after or start + DEFAULT_VALIDITY)
            .add_extension(x509.SubjectAlternativeName([_general_name(host) for host in hosts]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=True,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
        )
        return ServerCertificate(key, builder.sign(self.key, hashes.SHA256()))


def new_certificate_authority(
    common_name: str = "secretswitch embedded stack CA",
    *,
    now: Clock = _utc_now,
    valid_for: dt.timedelta = DEFAULT_VALIDITY,
) -> CertificateAuthority:
    """A new self-signed CA (its key exists only in memory)."""
    start = now()
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start - _BACKDATE)
        .not_valid_after(start + valid_for)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return CertificateAuthority(key, certificate)


def write_tls_files(folder: Path, ca: CertificateAuthority, server: ServerCertificate) -> TlsFiles:
    """Write the CA certificate, the server certificate and its key (``0600``) into ``folder`` (made ``0700``).

    Files that exist are refused rather than overwritten.
    """
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    files = TlsFiles(folder)
    _write(files.ca_file, ca.certificate.public_bytes(serialization.Encoding.PEM), mode=0o644)
    _write(files.cert_file, server.certificate.public_bytes(serialization.Encoding.PEM), mode=0o644)
    key_pem = server.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _write(files.key_file, key_pem, mode=0o600)
    return files


def make_stack_tls(folder: Path, hosts: Sequence[str] = STACK_HOSTS, *, now: Clock = _utc_now) -> TlsFiles:
    """A new CA and a server certificate for ``hosts``, written into ``folder`` (see the module docstring)."""
    ca = new_certificate_authority(now=now)
    return write_tls_files(folder, ca, ca.issue_server_certificate(hosts, now=now))


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _write(path: Path, data: bytes, *, mode: int) -> None:
    # Created with its final mode: a key is never readable by others, not even for a moment.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
