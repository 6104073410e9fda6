"""Certificates and TLS on loopback for tests: one home for every certificate a test needs.

* :func:`make_pki` — a throwaway CA and a server certificate it signed (a client that does not trust the CA
  fails with "unable to get local issuer certificate"; one given the CA through ``SSL_CERT_FILE``/``--cacert``
  succeeds);
* :func:`self_signed` — a certificate that is its own issuer (the client's error: "self-signed certificate");
* :class:`TlsFront` — TLS on 127.0.0.1 with a :class:`Pki`'s certificate, piping each decrypted connection to a
  plain-HTTP server (the emulator) on loopback.

``cryptography`` is imported when a certificate is made, not when a test module imports this one.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from tests.support.connect_proxy import accept_in_threads, pipe

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

CA_NAME = "sigv4-proxy test CA"


@dataclass(frozen=True)
class CertificateFiles:
    """A certificate and its private key, as PEM files."""

    cert_pem: Path
    key_pem: Path


@dataclass(frozen=True)
class Pki(CertificateFiles):
    """A server certificate, its key and the CA that signed it, as PEM files."""

    ca_pem: Path


def _new_key() -> ec.EllipticCurvePrivateKey:
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str) -> x509.Name:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    extensions: list[tuple[x509.ExtensionType, bool]],
) -> x509.Certificate:
    """A certificate valid from five minutes ago for a day (tolerates a little clock skew, expires soon)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    now = datetime.now(timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(issuer_key, hashes.SHA256())


def _server_extensions(names: tuple[str, ...], ips: tuple[str, ...]) -> list[tuple[x509.ExtensionType, bool]]:
    from cryptography import x509

    alt_names: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
    alt_names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    return [
        (x509.SubjectAlternativeName(alt_names), False),
        (x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), False),
    ]


def _write_pem(path: Path, value: x509.Certificate | ec.EllipticCurvePrivateKey) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    if isinstance(value, x509.Certificate):
        path.write_bytes(value.public_bytes(serialization.Encoding.PEM))
    else:
        path.write_bytes(
            value.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )


def make_pki(directory: Path, *, names: tuple[str, ...] = ("localhost",), ips: tuple[str, ...] = ("127.0.0.1",)) -> Pki:
    """A self-made CA and a server certificate for `names`/`ips` it signed, valid for a day."""
    from cryptography import x509

    ca_key, ca_name = _new_key(), _name(CA_NAME)
    ca_usage = x509.KeyUsage(
        digital_signature=True,
        key_cert_sign=True,
        crl_sign=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        encipher_only=False,
        decipher_only=False,
    )
    ca_extensions: list[tuple[x509.ExtensionType, bool]] = [
        (x509.BasicConstraints(ca=True, path_length=None), True),
        (ca_usage, True),
    ]
    ca = _certificate(ca_name, ca_key, ca_name, ca_key, ca_extensions)
    key = _new_key()
    cert = _certificate(_name(names[0]), key, ca_name, ca_key, _server_extensions(names, ips))
    directory.mkdir(parents=True, exist_ok=True)
    pki = Pki(cert_pem=directory / "cert.pem", key_pem=directory / "key.pem", ca_pem=directory / "ca.pem")
    _write_pem(pki.ca_pem, ca)
    _write_pem(pki.cert_pem, cert)
    _write_pem(pki.key_pem, key)
    return pki


def self_signed(
    directory: Path, *, names: tuple[str, ...] = ("localhost",), ips: tuple[str, ...] = ()
) -> CertificateFiles:
    """A server certificate for `names`/`ips` that is its own issuer, valid for a day."""
    key = _new_key()
    subject = _name(names[0])
    cert = _certificate(subject, key, subject, key, _server_extensions(names, ips))
    directory.mkdir(parents=True, exist_ok=True)
    files = CertificateFiles(directory / "cert.pem", directory / "key.pem")
    _write_pem(files.cert_pem, cert)
    _write_pem(files.key_pem, key)
    return files


class TlsFront:
    """TLS on 127.0.0.1:<port>, forwarding the plaintext to 127.0.0.1:<upstream_port>."""

    def __init__(self, upstream_port: int, pki: Pki) -> None:
        self.upstream_port = upstream_port
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(pki.cert_pem, pki.key_pem)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.handshake_errors: list[str] = []
        self._closed = threading.Event()
        self._thread = threading.Thread(
            target=accept_in_threads, args=(self.listener, self._closed, self._serve), daemon=True
        )
        self._thread.start()

    def url(self, path: str = "/mcp", host: str = "127.0.0.1") -> str:
        return f"https://{host}:{self.port}{path}"

    def _serve(self, client: socket.socket) -> None:
        try:
            tls = self.context.wrap_socket(client, server_side=True)
        except (ssl.SSLError, OSError) as exc:  # the client refused our certificate: expected in tests
            self.handshake_errors.append(str(exc))
            client.close()
            return
        try:
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        except OSError:
            tls.close()
            return
        threading.Thread(target=pipe, args=(upstream, tls), daemon=True).start()
        pipe(tls, upstream)

    def close(self) -> None:
        self._closed.set()
        self.listener.close()

    def __enter__(self) -> TlsFront:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
