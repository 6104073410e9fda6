"""The shared test infrastructure keeps its promises: a reset emulator is as new, a closed port refuses, the
certificates are what their names say."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509

from sigv4_proxy.auth import SigV4Auth
from sigv4_proxy.emulate import McpEmulator, generate_credentials
from tests.support.emulators import EmulatorPool, unconsumed_faults
from tests.support.ports import closed_port
from tests.support.tls import CA_NAME, TlsFront, make_pki, self_signed

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
ACCEPT = {"accept": "application/json, text/event-stream"}


@pytest.fixture
def pool() -> Iterator[EmulatorPool]:
    """A pool of its own, so that what these tests change never reaches the session's shared emulators."""
    own = EmulatorPool()
    yield own
    own.close()


def signed_initialize(emulator: McpEmulator) -> httpx.Response:
    auth = SigV4Auth(emulator.credentials, emulator.region, emulator.service)
    return httpx.post(emulator.url, json=INITIALIZE, headers=ACCEPT, auth=auth, timeout=10)


def test_the_pool_starts_one_emulator_per_configuration(pool: EmulatorPool) -> None:
    default = pool.get()
    assert pool.get() is default
    assert pool.get(stateless=True) is not default
    assert pool.get(stateless=True).config.stateless


def test_reset_puts_everything_a_test_may_change_back(pool: EmulatorPool) -> None:
    emulator = pool.get()
    original = emulator.credentials
    assert signed_initialize(emulator).status_code == 200
    emulator.executions.record(1, "echo")
    emulator.fail_next(503)
    emulator.clock_offset = 3600
    emulator.sigv4a = "require"
    emulator.set_credentials_resolver(lambda key: None)
    emulator.expire_credentials()
    emulator.rotate_credentials(keep_old=True)
    assert unconsumed_faults(emulator) != []

    pool.reset(emulator)

    assert (emulator.requests, emulator.executions.total(), unconsumed_faults(emulator)) == ([], 0, [])
    assert (emulator.clock_offset, emulator.sigv4a) == (0, "accept")
    assert emulator.state.credentials.all() == [original]  # the rotated key is gone, the expiry undone
    assert emulator.state.credentials.lookup(generate_credentials().access_key_id) is None  # no resolver
    assert signed_initialize(emulator).status_code == 200


def test_reset_refuses_an_emulator_from_elsewhere(pool: EmulatorPool, emulator: McpEmulator) -> None:
    with pytest.raises(ValueError, match="does not belong to the pool"):
        pool.reset(emulator)


def test_a_closed_port_refuses_connections_while_it_is_held() -> None:
    with closed_port() as port, pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5)


def test_the_closed_port_fixture_is_held_for_the_test(closed_port: int) -> None:
    with socket.socket() as other, pytest.raises(OSError):
        other.bind(("127.0.0.1", closed_port))


def test_a_certificate_from_the_test_ca_is_trusted_only_with_that_ca(emulator: McpEmulator, tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    with TlsFront(emulator.port, pki) as front:
        with pytest.raises(httpx.ConnectError, match="unable to get local issuer certificate"):
            httpx.get(front.url("/"), timeout=10)
        trusted = httpx.get(front.url("/"), verify=ssl.create_default_context(cafile=pki.ca_pem), timeout=10)
    assert "x-amzn-RequestId" in trusted.headers  # the emulator answered, through the TLS front
    certificate = x509.load_pem_x509_certificate(pki.cert_pem.read_bytes())
    assert certificate.issuer.rfc4514_string() == f"CN={CA_NAME}"


def test_a_self_signed_certificate_is_refused_as_such(tmp_path: Path) -> None:
    files = self_signed(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(files.cert_pem, files.key_pem)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        raw = socket.create_connection(listener.getsockname()[:2], timeout=5)
        accepted, _ = listener.accept()
        server = threading.Thread(target=_offer_certificate, args=(server_context, accepted), daemon=True)
        server.start()
        with raw, pytest.raises(ssl.SSLCertVerificationError, match="self-signed certificate"):
            ssl.create_default_context().wrap_socket(raw, server_hostname="localhost")
        server.join(5)


def _offer_certificate(context: ssl.SSLContext, connection: socket.socket) -> None:
    """The server half of a handshake the client is expected to abort."""
    with connection, contextlib.suppress(ssl.SSLError, OSError):  # the client refuses the certificate: expected
        context.wrap_socket(connection, server_side=True).close()
