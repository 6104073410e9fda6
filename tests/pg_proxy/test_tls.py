"""TLS on both legs: direct TLS upstream, mutual TLS from clients, the PrivateLink forms, and readiness that dials.

The upstream is `emulate dsql`: it checks SNI and the token's host as DSQL does, so a proxy that named the wrong
host (in the TLS server name or in the token) is refused there.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme

from sigv4_proxy.emulate.dsql.server import DsqlEmulator
from sigv4_proxy.pgproxy.runner import PgProxy
from tests.emulate_dsql import rawclient
from tests.pg_proxy.conftest import pg_connect, psycopg, target_for


def test_direct_tls_to_the_upstream(proxy_for: Callable[..., PgProxy], dsql_off: DsqlEmulator) -> None:
    proxy = proxy_for(dsql_off, upstream_sslnegotiation="direct")
    before = len(dsql_off.records)
    with pg_connect(proxy) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("admin",)
    record = dsql_off.wait_for_records(before + 1)[-1]
    assert (record.verdict, record.sni) == ("accepted", dsql_off.host)


@pytest.fixture
def client_pki(tmp_path: Path) -> dict[str, Path]:
    """A CA that signs the proxy's listener certificate and the client certificates, and a stranger CA."""
    ca = trustme.CA()
    files = {"ca": tmp_path / "ca.pem", "cert": tmp_path / "proxy.pem", "key": tmp_path / "proxy.key"}
    ca.cert_pem.write_to_path(str(files["ca"]))
    server = ca.issue_cert("127.0.0.1", "localhost")
    server.cert_chain_pems[0].write_to_path(str(files["cert"]))
    server.private_key_pem.write_to_path(str(files["key"]))
    client = ca.issue_cert("app@example.com")
    files["client_cert"], files["client_key"] = tmp_path / "client.pem", tmp_path / "client.key"
    client.cert_chain_pems[0].write_to_path(str(files["client_cert"]))
    client.private_key_pem.write_to_path(str(files["client_key"]))
    stranger = trustme.CA().issue_cert("app@example.com")
    files["stranger_cert"], files["stranger_key"] = tmp_path / "stranger.pem", tmp_path / "stranger.key"
    stranger.cert_chain_pems[0].write_to_path(str(files["stranger_cert"]))
    stranger.private_key_pem.write_to_path(str(files["stranger_key"]))
    for name in ("key", "client_key", "stranger_key"):
        files[name].chmod(0o600)  # libpq refuses a key file others can read
    return files


def mtls_proxy(proxy_for: Callable[..., PgProxy], emulator: DsqlEmulator, pki: dict[str, Path]) -> PgProxy:
    return proxy_for(emulator, tls_cert=pki["cert"], tls_key=pki["key"], tls_client_ca=pki["ca"])


def test_mutual_tls_from_a_client_with_a_certificate_of_the_ca(
    proxy_for: Callable[..., PgProxy], dsql_off: DsqlEmulator, client_pki: dict[str, Path]
) -> None:
    proxy = mtls_proxy(proxy_for, dsql_off, client_pki)
    tls = {
        "sslmode": "verify-full",
        "sslrootcert": str(client_pki["ca"]),
        "sslcert": str(client_pki["client_cert"]),
        "sslkey": str(client_pki["client_key"]),
    }
    with pg_connect(proxy, **tls) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("admin",)
        assert conn.pgconn.ssl_in_use


def test_mutual_tls_refuses_a_plaintext_client_with_a_fatal_before_signing(
    proxy_for: Callable[..., PgProxy], dsql_off: DsqlEmulator, client_pki: dict[str, Path]
) -> None:
    proxy = mtls_proxy(proxy_for, dsql_off, client_pki)
    result = rawclient.login(("127.0.0.1", proxy.port()), user="admin", password="", sni=None, tls="none")
    assert result.error
    assert result.error["C"] == "28000"
    assert result.error["M"] == (
        "sigv4-proxy: this listener requires TLS with a client certificate: whoever connects acts with the proxy's "
        "IAM identity"
    )
    counters = proxy.counters()
    assert (counters["refused_client_tls"], counters["tokens_minted"]) == (1, 0)


@pytest.mark.parametrize("certificate", ["none", "stranger"])
def test_mutual_tls_refuses_a_client_without_a_certificate_of_the_ca(
    proxy_for: Callable[..., PgProxy], dsql_off: DsqlEmulator, client_pki: dict[str, Path], certificate: str
) -> None:
    proxy = mtls_proxy(proxy_for, dsql_off, client_pki)
    tls: dict[str, Any] = {"sslmode": "verify-full", "sslrootcert": str(client_pki["ca"])}
    if certificate == "stranger":
        tls |= {"sslcert": str(client_pki["stranger_cert"]), "sslkey": str(client_pki["stranger_key"])}
    with pytest.raises(psycopg.OperationalError):
        pg_connect(proxy, **tls)
    assert proxy.counters()["tokens_minted"] == 0
    with pg_connect(  # and the proxy still serves a client that has one
        proxy,
        sslmode="verify-full",
        sslrootcert=str(client_pki["ca"]),
        sslcert=str(client_pki["client_cert"]),
        sslkey=str(client_pki["client_key"]),
    ) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_privatelink_with_private_dns_signs_for_the_name_it_connects_to(
    proxy_for: Callable[..., PgProxy], dsql_off: DsqlEmulator
) -> None:
    private = f"{dsql_off.cluster_id}.dsql-fnh4.{dsql_off.region}.on.aws"
    proxy = proxy_for(dsql_off, targets=(target_for(dsql_off, hostname=private),))
    before = len(dsql_off.records)
    with pg_connect(proxy) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("admin",)
    record = dsql_off.wait_for_records(before + 1)[-1]
    assert (record.verdict, record.sni) == ("accepted", private)


def test_privatelink_without_private_dns_names_the_cluster_in_the_token_and_in_options(
    proxy_for: Callable[..., PgProxy], dsql_off: DsqlEmulator
) -> None:
    """The VPC endpoint's own name is not on the cluster's certificate: verify-ca, as DSQL documents."""
    vpce = f"vpce-0123456789abcdef0-abcdefgh.dsql-fnh4.{dsql_off.region}.vpce.amazonaws.com"
    target = target_for(dsql_off, hostname=vpce, cluster_id=dsql_off.cluster_id)
    proxy = proxy_for(dsql_off, targets=(target,), upstream_sslmode="verify-ca")
    before = len(dsql_off.records)
    with pg_connect(proxy, options="-c search_path=public") as conn:
        assert conn.execute("SELECT current_user, current_setting('search_path')").fetchone() == ("admin", "public")
    record = dsql_off.wait_for_records(before + 1)[-1]
    assert (record.verdict, record.sni) == ("accepted", vpce)


def test_the_upstream_name_is_checked_on_its_certificate_under_verify_full(
    proxy_for: Callable[..., PgProxy], dsql_off: DsqlEmulator
) -> None:
    vpce = f"vpce-0123456789abcdef0-abcdefgh.dsql-fnh4.{dsql_off.region}.vpce.amazonaws.com"
    proxy = proxy_for(dsql_off, targets=(target_for(dsql_off, hostname=vpce, cluster_id=dsql_off.cluster_id),))
    result = rawclient.login(("127.0.0.1", proxy.port()), user="admin", password="", sni=None, tls="none")
    assert result.error and result.error["C"] == "08001"
    assert result.error["M"].startswith(f"sigv4-proxy: TLS with {vpce} (via 127.0.0.1:{dsql_off.port}) failed: ")
    assert "Hostname mismatch" in result.error["M"] or "hostname" in result.error["M"].lower()
    assert proxy.counters()["tokens_minted"] == 0  # no token goes to a server that did not prove the name


def test_readiness_dials_the_upstream_only_when_asked(
    proxy_for: Callable[..., PgProxy], dsql_off: DsqlEmulator
) -> None:
    plain = proxy_for(dsql_off, health_port=0)
    body = httpx.get(f"http://127.0.0.1:{plain.health_port}/readiness").text
    assert "upstream" not in body

    dialling = proxy_for(dsql_off, health_port=0, readiness_dial=True)
    ready = httpx.get(f"http://127.0.0.1:{dialling.health_port}/readiness")
    assert ready.status_code == 200
    assert f"ok upstream {dsql_off.host}: TCP and TLS handshake ok" in ready.text

    down = target_for(dsql_off, hostaddr_port=_closed_port())
    unready = proxy_for(dsql_off, targets=(down,), health_port=0, readiness_dial=True)
    answer = httpx.get(f"http://127.0.0.1:{unready.health_port}/readiness")
    assert answer.status_code == 503
    assert f"failed upstream {dsql_off.host}: sigv4-proxy: cannot connect to {dsql_off.host} (via 127.0.0.1:" in (
        answer.text
    )


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_server_context_is_tls_1_2_or_newer(
    proxy_for: Callable[..., PgProxy], dsql_off: DsqlEmulator, client_pki: dict[str, Path]
) -> None:
    proxy = mtls_proxy(proxy_for, dsql_off, client_pki)
    assert proxy.door.upstream_tls.minimum_version == ssl.TLSVersion.TLSv1_2
    assert proxy.door.upstream_tls.check_hostname and proxy.door.upstream_tls.verify_mode == ssl.CERT_REQUIRED
