"""TLS for `emulate dsql`: a private CA and a server certificate for the cluster's host names.

DSQL is TLS only, and its clients verify the server (``sslmode=verify-full``), so the emulator needs a
certificate whose names are the cluster hosts the clients dial: the public form ``<id>.dsql.<region>.on.aws``
and the PrivateLink private-DNS forms ``<id>.dsql-<suffix>.<region>.on.aws`` (one SAN per suffix: a wildcard
covers one whole label, so ``*.dsql-*`` cannot exist), plus ``localhost``, 127.0.0.1 and ::1.

:func:`ensure_tls_material` writes ``ca.pem``, ``server.pem`` and ``server.key`` (mode 0600) into the
``--tls-dir`` directory, or re-uses the ones already there when they are still valid and name every host, so
a client that trusts ``ca.pem`` keeps trusting it across restarts. The CA's private key is never written: it
signs the one server certificate in memory and is dropped, so the ``ca.pem`` a user trusts can vouch for
nothing else, even if the directory leaks. The price: a new host means a new CA (the log line says so).

:func:`server_context` builds the server's ``SSLContext`` (TLS 1.2+, ALPN ``postgresql`` as libpq's direct TLS
requires) and records the SNI each connection sent, read back with :func:`requested_sni`.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
import tempfile
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

__all__ = [
    "CA_COMMON_NAME",
    "CA_FILE",
    "CERT_FILE",
    "DEFAULT_PRIVATELINK_SUFFIXES",
    "KEY_FILE",
    "LOCAL_NAMES",
    "TlsMaterial",
    "certificate_names",
    "ensure_tls_material",
    "requested_sni",
    "server_context",
]

CA_FILE = "ca.pem"
CERT_FILE = "server.pem"
KEY_FILE = "server.key"
CA_COMMON_NAME = "sigv4-proxy emulate dsql CA"
# The private-DNS service id of DSQL's PrivateLink endpoints in AWS's docs (com.amazonaws.<region>.dsql-fnh4).
DEFAULT_PRIVATELINK_SUFFIXES = ("dsql-fnh4",)
# Names every certificate carries, so `host=localhost` and `hostaddr`-less IP connections verify too.
LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")
VALIDITY = timedelta(days=365)
# Files that expire sooner than this are replaced at start-up, so a long-running emulator does not expire mid-run.
RENEW_BEFORE = timedelta(days=1)
# Certificates are back-dated a little: a client whose clock lags the emulator's still accepts a fresh one.
BACKDATE = timedelta(minutes=5)
ALPN_PROTOCOL = "postgresql"
_PUBLIC_LABEL = "dsql"  # <id>.dsql.<region>.on.aws


@dataclass(frozen=True)
class TlsMaterial:
    """The three PEM files a server needs, and where they came from.

    ``reused`` is True when the files were already there and good; ``temporary`` when they live in a directory
    made for this run (the caller removes ``ca_file.parent`` on exit); ``names`` are the certificate's SANs;
    ``note`` is the one log line saying which of these happened and why.
    """

    ca_file: Path
    cert_file: Path
    key_file: Path
    reused: bool = False
    temporary: bool = False
    names: tuple[str, ...] = ()
    note: str = ""


def certificate_names(
    hosts: Sequence[str], privatelink_suffixes: Sequence[str] = DEFAULT_PRIVATELINK_SUFFIXES
) -> tuple[str, ...]:
    """Every name the certificate must carry, in a stable order: each host (lower-case), the PrivateLink
    forms of each public DSQL host (``<id>.dsql.<r>.on.aws`` -> ``<id>.<suffix>.<r>.on.aws``), then the
    local names."""
    names: list[str] = []
    for host in hosts:
        name = host.strip().rstrip(".").lower()
        names.append(name)
        labels = name.split(".")
        if len(labels) == 5 and labels[1] == _PUBLIC_LABEL and labels[3:] == ["on", "aws"]:
            names.extend(f"{labels[0]}.{suffix.lower()}.{labels[2]}.on.aws" for suffix in privatelink_suffixes)
    names.extend(LOCAL_NAMES)
    return tuple(dict.fromkeys(name for name in names if name))


def ensure_tls_material(
    directory: Path | None,
    hosts: Sequence[str],
    *,
    privatelink_suffixes: Sequence[str] = DEFAULT_PRIVATELINK_SUFFIXES,
    now: datetime | None = None,
    log: Callable[[str], None] | None = None,
) -> TlsMaterial:
    """The CA, certificate and key for ``hosts`` in ``directory`` (created with mode 0700 when missing): the
    files there when they are valid for a day more, belong together and name every host; new ones otherwise.
    With no directory, new files in a temporary one (``temporary=True``: the caller removes it). ``log``
    receives the one line saying which happened (paths and reasons, never key material)."""
    moment = now or datetime.now(timezone.utc)
    names = certificate_names(hosts, privatelink_suffixes)
    temporary = directory is None
    folder = Path(tempfile.mkdtemp(prefix="sigv4-proxy-dsql-tls-")) if directory is None else directory
    material = TlsMaterial(folder / CA_FILE, folder / CERT_FILE, folder / KEY_FILE, temporary=temporary, names=names)
    problem = "a temporary directory for this run" if temporary else _reuse_problem(material, names, moment)
    if problem is None:
        note = f"TLS: re-using {material.ca_file} and the server certificate beside it"
        material = _with(material, reused=True, note=note)
    else:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        _write_new(material, names, moment)
        note = f"TLS: new CA {material.ca_file} and server certificate ({problem})"
        material = _with(material, reused=False, note=note)
    if log is not None:
        log(material.note)
    return material


def server_context(material: TlsMaterial) -> ssl.SSLContext:
    """A server-side context: TLS 1.2 or newer, the material's certificate, ALPN ``postgresql`` offered (libpq's
    ``sslnegotiation=direct`` insists on it), and the client's SNI recorded for :func:`requested_sni`."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(material.cert_file, material.key_file)
    context.set_alpn_protocols([ALPN_PROTOCOL])
    context.sni_callback = _record_sni
    return context


# The SNI of each live TLS connection, keyed by its SSLObject/SSLSocket. Python gives the server side no other
# way to read it; weak keys, so a closed connection leaves nothing behind.
_SNI: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def requested_sni(ssl_object: ssl.SSLObject | ssl.SSLSocket) -> str | None:
    """The server name the client sent in its ClientHello on a connection of a :func:`server_context`
    (lower-case), or None when it sent none (DSQL then refuses: "sni was not received")."""
    return _SNI.get(ssl_object)


def _record_sni(ssl_object: Any, server_name: str | None, context: ssl.SSLContext) -> None:
    if server_name:
        _SNI[ssl_object] = server_name.lower()


# -- checking existing files -----------------------------------------------------------------------------------


def _reuse_problem(material: TlsMaterial, names: Sequence[str], now: datetime) -> str | None:
    """Why the files in the directory cannot be re-used (a short phrase for the log line), or None."""
    missing = [path.name for path in (material.ca_file, material.cert_file, material.key_file) if not path.exists()]
    if len(missing) == 3:
        return f"none in {material.ca_file.parent}"
    if missing:
        return f"{', '.join(missing)} missing in {material.ca_file.parent}"
    if material.key_file.stat().st_mode & 0o077:
        return "server.key is readable by other users"
    try:
        ca, cert, key = _load(material)
    except (OSError, ValueError, TypeError) as exc:
        return f"the files there do not load: {type(exc).__name__}"
    return _expiry_problem(ca, cert, now) or _chain_problem(ca, cert, key) or _names_problem(cert, names)


def _load(material: TlsMaterial) -> tuple[x509.Certificate, x509.Certificate, Any]:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    ca = x509.load_pem_x509_certificate(material.ca_file.read_bytes())
    cert = x509.load_pem_x509_certificate(material.cert_file.read_bytes())
    key = load_pem_private_key(material.key_file.read_bytes(), password=None)
    return ca, cert, key


def _expiry_problem(ca: x509.Certificate, cert: x509.Certificate, now: datetime) -> str | None:
    for what, certificate in (("the CA", ca), ("the server certificate", cert)):
        if now < certificate.not_valid_before_utc:
            return f"{what} is not valid before {certificate.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"
        if now + RENEW_BEFORE >= certificate.not_valid_after_utc:
            return f"{what} expires {certificate.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
    return None


def _chain_problem(ca: x509.Certificate, cert: x509.Certificate, key: Any) -> str | None:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric import ec

    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
        return "server.key does not belong to server.pem"
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return "server.pem was not issued by ca.pem"
    return None


def _names_problem(cert: x509.Certificate, names: Sequence[str]) -> str | None:
    carried = set(_san_names(cert))
    absent = [name for name in names if name not in carried]
    if absent:
        return f"the certificate does not name {', '.join(absent)}"
    return None


def _san_names(cert: x509.Certificate) -> list[str]:
    from cryptography import x509

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    dns = [name.lower() for name in san.get_values_for_type(x509.DNSName)]
    return dns + [str(address) for address in san.get_values_for_type(x509.IPAddress)]


# -- writing new files -----------------------------------------------------------------------------------------


def _write_new(material: TlsMaterial, names: Sequence[str], now: datetime) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    ca_key = ec.generate_private_key(ec.SECP256R1())
    server_key = ec.generate_private_key(ec.SECP256R1())
    ca = _ca_certificate(ca_key, now)
    cert = _server_certificate(server_key, ca, ca_key, names, now)
    pem = serialization.Encoding.PEM
    key_pem = server_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    # The key first: a reader never finds a certificate whose key is still the old one.
    _write_atomically(material.key_file, key_pem, mode=0o600)
    _write_atomically(material.cert_file, cert.public_bytes(pem), mode=0o644)
    _write_atomically(material.ca_file, ca.public_bytes(pem), mode=0o644)


def _ca_certificate(key: ec.EllipticCurvePrivateKey, now: datetime) -> x509.Certificate:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_COMMON_NAME)])
    public = key.public_key()
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )
    builder = (
        _dated(x509.CertificateBuilder(), now)
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
    )
    return builder.sign(key, hashes.SHA256())


def _server_certificate(
    key: ec.EllipticCurvePrivateKey,
    ca: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    names: Sequence[str],
    now: datetime,
) -> x509.Certificate:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    ca_key_id = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        _dated(x509.CertificateBuilder(), now)
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .add_extension(x509.SubjectAlternativeName([_general_name(name) for name in names]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_key_id), critical=False)
    )
    return builder.sign(ca_key, hashes.SHA256())


def _dated(builder: x509.CertificateBuilder, now: datetime) -> x509.CertificateBuilder:
    from cryptography import x509

    return (
        builder.serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + VALIDITY)
    )


def _general_name(name: str) -> x509.GeneralName:
    from cryptography import x509

    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _write_atomically(path: Path, data: bytes, *, mode: int) -> None:
    """Write through a temporary file created with ``mode`` (a key is never readable by others, not even for a
    moment) and renamed over ``path``, so a reader sees the old file or the new one, never half of one."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.unlink(missing_ok=True)  # a leftover of a killed run: O_EXCL below creates it afresh with `mode`
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
        os.chmod(temporary, mode)  # the umask may have narrowed it; never widened beyond `mode`
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _with(material: TlsMaterial, *, reused: bool, note: str) -> TlsMaterial:
    from dataclasses import replace

    return replace(material, reused=reused, note=note)
