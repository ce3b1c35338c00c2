"""A throw-away certificate authority for the emulator's HTTPS side, generated fresh for every run.

The official Azure SDKs refuse to send a bearer token over plain http, so the ARM stand-in speaks TLS.
:class:`TlsMaterial` makes an EC P-256 CA and a server certificate it signs (SANs ``localhost``,
``127.0.0.1`` and ``::1``), writes the CA certificate (the *bundle* a client passes as ``verify=``)
and the server's key and certificate into a private temporary directory, and removes that directory
on :meth:`TlsMaterial.cleanup`. EC keys keep start-up in the milliseconds (an RSA key takes ~50 ms).
Nothing secret outlives the run: the CA's private key never touches the disk and is dropped once the
server certificate is signed, so the CA cannot vouch for anything else.

Example::

    >>> import ssl
    >>> tls = TlsMaterial.generate()
    >>> isinstance(tls.server_context(), ssl.SSLContext), open(tls.ca_bundle).read().startswith("-----BEGIN")
    (True, True)
    >>> tls.cleanup(); import os; os.path.exists(tls.ca_bundle)
    False
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
import os
import shutil
import ssl
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["DEFAULT_HOSTS", "TlsMaterial"]

DEFAULT_HOSTS = ("localhost", "127.0.0.1", "::1")


def _san(hosts: Iterable[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host.strip("[]"))))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


@dataclass
class TlsMaterial:
    """Where the generated files are: ``ca_bundle`` (CA certificate, PEM), ``cert_file``, ``key_file``.

    ``directory`` is the private temporary directory holding all three (mode 0700).

    Example::

        >>> tls = TlsMaterial.generate(["localhost"])
        >>> tls.hosts, os.path.dirname(tls.ca_bundle) == tls.directory
        (('localhost',), True)
        >>> tls.cleanup()
    """

    directory: str
    ca_bundle: str
    cert_file: str
    key_file: str
    hosts: tuple[str, ...]

    @classmethod
    def generate(cls, hosts: Iterable[str] = DEFAULT_HOSTS, *, days: int = 7,
                 common_name: str = "mi-notebook emulator CA") -> TlsMaterial:
        """A new CA and a server certificate for ``hosts`` (DNS names or IP addresses), valid ``days``."""
        hosts = tuple(hosts)
        if not hosts:
            raise ValueError("the server certificate needs at least one host name or address")
        now = _dt.datetime.now(_dt.timezone.utc)
        not_before, not_after = now - _dt.timedelta(hours=1), now + _dt.timedelta(days=days)

        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                             x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mi-notebook")])
        ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(ca_name).issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before).not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(ca_ski, critical=False)
            .sign(ca_key, hashes.SHA256())
        )

        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before).not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=True,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(_san(hosts), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
            .sign(ca_key, hashes.SHA256())
        )

        directory = tempfile.mkdtemp(prefix="mi-notebook-arm-tls-")  # mode 0700
        ca_bundle = os.path.join(directory, "ca.pem")
        cert_file = os.path.join(directory, "server.pem")
        key_file = os.path.join(directory, "server.key")
        pem = serialization.Encoding.PEM
        _write(ca_bundle, ca_cert.public_bytes(pem))
        _write(cert_file, cert.public_bytes(pem))
        _write(key_file, key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()), mode=0o600)
        return cls(directory, ca_bundle, cert_file, key_file, hosts)

    def server_context(self) -> ssl.SSLContext:
        """A server-side ``SSLContext`` (TLS 1.2+) presenting the generated certificate."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.cert_file, self.key_file)
        return context

    def cleanup(self) -> None:
        """Remove the temporary directory (idempotent)."""
        shutil.rmtree(self.directory, ignore_errors=True)


def _write(path: str, data: bytes, mode: int = 0o644) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
