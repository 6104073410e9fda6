"""The listener's everyday messages (issue 9 item 8): a 404 names the path that was asked for (and ``/sse`` on a
legacy server); keys from the environment are not "refreshed" when the server says their token expired.
Clients -> listener -> ``emulate mcp`` (a real upstream that verifies every signature)."""

from __future__ import annotations

import httpx

from sigv4_proxy.credentials import StaticCredentialProvider
from sigv4_proxy.emulate import McpEmulator, generate_credentials
from tests.support.emulators import EmulatorVariant

from .conftest import LogLines, proxy_config, running_listener
from .test_listener import ACCEPT, INIT, call, handshake

DIAGNOSIS = "x-sigv4-proxy-diagnosis"
NOT_REFRESHABLE = "not retried: credentials from the environment cannot be refreshed, the same keys would fail again"


async def test_a_404_names_the_path_the_request_went_to(emulator: McpEmulator) -> None:
    provider = StaticCredentialProvider(emulator.credentials)
    async with running_listener(proxy_config(emulator), provider) as listener, httpx.AsyncClient() as http:
        response = await http.post(f"{listener.url}/nope", json=INIT, headers={"accept": ACCEPT})
    assert emulator.requests[-1].path == "/mcp/nope" and emulator.requests[-1].ok
    assert response.status_code == 404
    assert "Diagnosis: nothing at /mcp/nope on 127.0.0.1: check the target URL's path" in response.headers[DIAGNOSIS]
    assert "nothing at /mcp/nope on 127.0.0.1" in response.json()["error"]["message"]


async def test_a_404_from_a_legacy_server_mentions_sse(emulator_variant: EmulatorVariant) -> None:
    legacy_server = emulator_variant(transport="sse")  # the legacy HTTP+SSE transport (GET /sse, POST /messages/)
    provider = StaticCredentialProvider(legacy_server.credentials)
    config = proxy_config(legacy_server, target_url=legacy_server.base_url + "/mcp")
    async with running_listener(config, provider) as listener, httpx.AsyncClient() as http:
        response = await http.post(f"{listener.url}/", json=INIT, headers={"accept": ACCEPT})
    assert legacy_server.requests[-1].path == "/mcp" and legacy_server.requests[-1].ok
    assert response.status_code == 404
    diagnosis = response.headers[DIAGNOSIS]
    assert "nothing at /mcp on 127.0.0.1" in diagnosis
    assert "GET /sse" in diagnosis, diagnosis


async def test_expired_environment_keys_are_not_refreshed_or_resent(emulator: McpEmulator, log_lines: LogLines) -> None:
    temporary = generate_credentials(session_token=True)
    emulator.accept_only(temporary)
    provider = StaticCredentialProvider(temporary, method="env")  # what the proxy builds from AWS_* variables
    async with running_listener(proxy_config(emulator), provider) as listener, httpx.AsyncClient() as http:
        headers = await handshake(http, f"{listener.url}/")
        emulator.expire_credentials(temporary.access_key_id)
        response = await http.post(f"{listener.url}/", json=call(10, "echo", message="x"), headers=headers)
    assert [r.verdict for r in emulator.requests if r.rpc.startswith("tools/call")] == ["ExpiredTokenException"]
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["kind"] == "expired_token"
    assert error["attempts"] == 1
    assert error["retry"] == NOT_REFRESHABLE
    assert error["message"].endswith(f" ({NOT_REFRESHABLE})")
    assert "AWS_SESSION_TOKEN" in error["message"]  # the diagnosis names where the keys come from
    assert "credentials refreshed" not in log_lines.text
    assert "refreshing the credentials" not in log_lines.text
