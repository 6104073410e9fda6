"""`emulate dsql`'s TLS material: the files and their modes, the certificate's names, re-use versus regeneration,
and real handshakes over loopback with Python's ssl client verifying the cluster host (verify-full) and ALPN."""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
import stat
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sigv4_proxy.emulate.dsql.tls import (
    TlsMaterial,
    certificate_names,
    ensure_tls_material,
    requested_sni,
    server_context,
)

CLUSTER = "abcdefghijklmnopqrstuvwxyz.dsql.us-east-1.on.aws"
PRIVATELINK = "abcdefghijklmnopqrstuvwxyz.dsql-fnh4.us-east-1.on.aws"
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)


def load_cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def san_names(cert: x509.Certificate) -> list[str]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return [str(name.value) for name in san]


def contents(material: TlsMaterial) -> tuple[bytes, bytes, bytes]:
    return material.ca_file.read_bytes(), material.cert_file.read_bytes(), material.key_file.read_bytes()


# -- names ------------------------------------------------------------------------------------------------------


def test_a_public_host_brings_its_privatelink_forms_and_the_local_names() -> None:
    assert certificate_names([CLUSTER]) == (CLUSTER, PRIVATELINK, "localhost", "127.0.0.1", "::1")


def test_privatelink_suffixes_are_configurable_and_names_are_lower_case_and_unique() -> None:
    names = certificate_names([CLUSTER.upper() + ".", "localhost"], ["dsql-abcd", "DSQL-EF01"])
    assert names == (
        CLUSTER,
        "abcdefghijklmnopqrstuvwxyz.dsql-abcd.us-east-1.on.aws",
        "abcdefghijklmnopqrstuvwxyz.dsql-ef01.us-east-1.on.aws",
        "localhost",
        "127.0.0.1",
        "::1",
    )


def test_a_host_that_is_not_a_public_cluster_host_is_taken_as_it_is() -> None:
    assert certificate_names([PRIVATELINK]) == (PRIVATELINK, "localhost", "127.0.0.1", "::1")


# -- the files --------------------------------------------------------------------------------------------------


def test_without_a_directory_new_files_go_to_a_private_temporary_one() -> None:
    lines: list[str] = []
    material = ensure_tls_material(None, [CLUSTER], log=lines.append)
    folder = material.ca_file.parent
    try:
        assert material.temporary and not material.reused
        assert (material.cert_file.parent, material.key_file.parent) == (folder, folder)
        assert (material.ca_file.name, material.cert_file.name, material.key_file.name) == (
            "ca.pem",
            "server.pem",
            "server.key",
        )
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        assert stat.S_IMODE(material.key_file.stat().st_mode) == 0o600
        assert lines == [f"TLS: new CA {material.ca_file} and server certificate (a temporary directory for this run)"]
        assert material.note == lines[0]
        assert sorted(path.name for path in folder.iterdir()) == ["ca.pem", "server.key", "server.pem"]
    finally:
        for path in folder.iterdir():
            path.unlink()
        folder.rmdir()


def test_the_certificates_are_a_one_year_p256_ca_and_a_server_certificate_for_every_name(tmp_path: Path) -> None:
    material = ensure_tls_material(tmp_path / "tls", [CLUSTER], now=NOW)
    ca, cert = load_cert(material.ca_file), load_cert(material.cert_file)
    key = load_pem_private_key(material.key_file.read_bytes(), password=None)

    assert ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "sigv4-proxy emulate dsql CA"
    assert ca.issuer == ca.subject and cert.issuer == ca.subject
    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    assert ca.not_valid_after_utc - NOW == timedelta(days=365)
    assert cert.not_valid_before_utc <= NOW <= cert.not_valid_after_utc <= ca.not_valid_after_utc
    cert.verify_directly_issued_by(ca)

    assert san_names(cert) == [CLUSTER, PRIVATELINK, "localhost", "127.0.0.1", "::1"]
    ips = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.IPAddress)
    assert ips == [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.SERVER_AUTH
    ]
    for public in (ca.public_key(), cert.public_key()):
        assert isinstance(public, ec.EllipticCurvePublicKey) and public.curve.name == "secp256r1"
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.public_key() == cert.public_key()
    assert not material.temporary and material.names == tuple(san_names(cert))


def test_the_ca_key_is_never_written(tmp_path: Path) -> None:
    material = ensure_tls_material(tmp_path, [CLUSTER], now=NOW)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["ca.pem", "server.key", "server.pem"]
    assert material.ca_file.read_bytes().count(b"PRIVATE KEY") == 0
    assert material.cert_file.read_bytes().count(b"PRIVATE KEY") == 0


def test_a_missing_directory_is_created_private(tmp_path: Path) -> None:
    ensure_tls_material(tmp_path / "a" / "tls", [CLUSTER], now=NOW)
    assert stat.S_IMODE((tmp_path / "a" / "tls").stat().st_mode) == 0o700


# -- re-use or regenerate ---------------------------------------------------------------------------------------


def test_valid_files_that_name_every_host_are_reused_byte_for_byte(tmp_path: Path) -> None:
    before = contents(ensure_tls_material(tmp_path, [CLUSTER], now=NOW))
    lines: list[str] = []
    again = ensure_tls_material(tmp_path, [CLUSTER], now=NOW + timedelta(days=100), log=lines.append)
    assert again.reused and not again.temporary
    assert contents(again) == before
    assert lines == [f"TLS: re-using {tmp_path / 'ca.pem'} and the server certificate beside it"]


def test_first_start_in_an_empty_directory_says_so(tmp_path: Path) -> None:
    material = ensure_tls_material(tmp_path, [CLUSTER], now=NOW)
    assert material.note == f"TLS: new CA {tmp_path / 'ca.pem'} and server certificate (none in {tmp_path})"


def test_a_subset_of_the_hosts_is_still_covered(tmp_path: Path) -> None:
    ensure_tls_material(tmp_path, [CLUSTER], now=NOW)
    assert ensure_tls_material(tmp_path, [PRIVATELINK], now=NOW).reused


def test_another_cluster_host_regenerates_everything(tmp_path: Path) -> None:
    first_ca = ensure_tls_material(tmp_path, [CLUSTER], now=NOW).ca_file.read_bytes()
    other = "zyxwvutsrqponmlkjihgfedcba.dsql.eu-west-1.on.aws"
    again = ensure_tls_material(tmp_path, [other], now=NOW)
    assert not again.reused
    assert again.note == (
        f"TLS: new CA {tmp_path / 'ca.pem'} and server certificate (the certificate does not name {other}, "
        "zyxwvutsrqponmlkjihgfedcba.dsql-fnh4.eu-west-1.on.aws)"
    )
    assert again.ca_file.read_bytes() != first_ca
    assert san_names(load_cert(again.cert_file))[0] == other


@pytest.mark.parametrize(
    ("later", "reason"),
    [
        (timedelta(days=364, hours=12), "the CA expires 2027-06-01 12:00 UTC"),  # within a day of the end
        (timedelta(days=400), "the CA expires 2027-06-01 12:00 UTC"),
        (-timedelta(hours=1), "the CA is not valid before 2026-06-01 11:55 UTC"),  # a clock set back
    ],
    ids=["expires-within-a-day", "expired", "not-yet-valid"],
)
def test_certificates_outside_their_validity_are_replaced(tmp_path: Path, later: timedelta, reason: str) -> None:
    first_ca = ensure_tls_material(tmp_path, [CLUSTER], now=NOW).ca_file.read_bytes()
    again = ensure_tls_material(tmp_path, [CLUSTER], now=NOW + later)
    assert not again.reused
    assert again.note == f"TLS: new CA {tmp_path / 'ca.pem'} and server certificate ({reason})"
    assert again.ca_file.read_bytes() != first_ca
    assert load_cert(again.ca_file).not_valid_after_utc == NOW + later + timedelta(days=365)


def test_a_missing_file_regenerates(tmp_path: Path) -> None:
    ensure_tls_material(tmp_path, [CLUSTER], now=NOW)
    (tmp_path / "server.key").unlink()
    again = ensure_tls_material(tmp_path, [CLUSTER], now=NOW)
    assert again.note.endswith(f"(server.key missing in {tmp_path})")
    assert again.key_file.exists()


def test_a_key_readable_by_others_is_not_reused(tmp_path: Path) -> None:
    material = ensure_tls_material(tmp_path, [CLUSTER], now=NOW)
    material.key_file.chmod(0o644)
    again = ensure_tls_material(tmp_path, [CLUSTER], now=NOW)
    assert again.note.endswith("(server.key is readable by other users)")
    assert stat.S_IMODE(again.key_file.stat().st_mode) == 0o600


def test_files_that_do_not_belong_together_are_replaced(tmp_path: Path) -> None:
    ensure_tls_material(tmp_path / "one", [CLUSTER], now=NOW)
    ensure_tls_material(tmp_path / "two", [CLUSTER], now=NOW)
    (tmp_path / "one" / "ca.pem").write_bytes((tmp_path / "two" / "ca.pem").read_bytes())
    assert ensure_tls_material(tmp_path / "one", [CLUSTER], now=NOW).note.endswith(
        "(server.pem was not issued by ca.pem)"
    )
    ensure_tls_material(tmp_path / "two", [CLUSTER], now=NOW)
    (tmp_path / "two" / "server.key").write_bytes((tmp_path / "one" / "server.key").read_bytes())
    assert ensure_tls_material(tmp_path / "two", [CLUSTER], now=NOW).note.endswith(
        "(server.key does not belong to server.pem)"
    )


def test_a_damaged_file_is_replaced(tmp_path: Path) -> None:
    ensure_tls_material(tmp_path, [CLUSTER], now=NOW)
    (tmp_path / "server.pem").write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    again = ensure_tls_material(tmp_path, [CLUSTER], now=NOW)
    assert again.note.endswith("(the files there do not load: ValueError)")
    load_cert(again.cert_file)


# -- handshakes over loopback -----------------------------------------------------------------------------------


async def handshake(
    material: TlsMaterial, server_hostname: str | None, *, verify: bool = True
) -> tuple[str | None, str | None, str | None]:
    """One TLS connection to a server using :func:`server_context`: what the server saw (SNI, ALPN) and the
    TLS version the client negotiated."""
    seen: asyncio.Future[tuple[str | None, str | None]] = asyncio.get_running_loop().create_future()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ssl_object = writer.get_extra_info("ssl_object")
        seen.set_result((requested_sni(ssl_object), ssl_object.selected_alpn_protocol()))
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server_context(material))
    port = server.sockets[0].getsockname()[1]
    client = ssl.create_default_context(cafile=str(material.ca_file))
    client.set_alpn_protocols(["postgresql"])
    if not verify:
        client.check_hostname = False
    try:
        async with server:
            _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client, server_hostname=server_hostname)
            version = writer.get_extra_info("ssl_object").version()
            sni, alpn = await asyncio.wait_for(seen, 10)
            writer.close()
            return sni, alpn, version
    finally:
        server.close()


@pytest.mark.parametrize("host", [CLUSTER, PRIVATELINK, "localhost"])
async def test_a_verifying_client_connects_to_each_host_and_alpn_is_postgresql(tmp_path: Path, host: str) -> None:
    material = ensure_tls_material(tmp_path, [CLUSTER])
    sni, alpn, version = await handshake(material, host)
    assert (sni, alpn) == (host, "postgresql")
    assert version in ("TLSv1.2", "TLSv1.3")


async def test_the_sni_is_recorded_lower_case(tmp_path: Path) -> None:
    material = ensure_tls_material(tmp_path, [CLUSTER])
    sni, _, _ = await handshake(material, CLUSTER.upper())
    assert sni == CLUSTER


async def test_a_client_without_sni_is_seen_as_such(tmp_path: Path) -> None:
    material = ensure_tls_material(tmp_path, [CLUSTER])
    sni, alpn, _ = await handshake(material, None, verify=False)
    assert (sni, alpn) == (None, "postgresql")


async def test_a_host_the_certificate_does_not_name_fails_verify_full(tmp_path: Path) -> None:
    material = ensure_tls_material(tmp_path, [CLUSTER])
    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        await handshake(material, "zyxwvutsrqponmlkjihgfedcba.dsql.us-east-1.on.aws")


def test_the_server_context_refuses_tls_before_1_2(tmp_path: Path) -> None:
    context = server_context(ensure_tls_material(tmp_path, [CLUSTER]))
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
