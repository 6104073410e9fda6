"""Credentials over time, through botocore's real refresh paths (the proxy runs with a profile, never keys).

* ``credential_process`` minting credentials that live a few seconds (``CredentialMint``, which the emulator
  recognises without being told): continuous calls, zero failures; 10 seconds of 2-second credentials in the
  default run, and the 60-second soak of 4-second credentials, with its rate floor, under ``-m slow`` (CI);
* a token the server calls expired while the proxy still holds it: one refresh, one re-signed retry;
* an SSO session that ends while its role credentials near their expiry (the SSO portal is a local stand-in
  reached through ``AWS_ENDPOINT_URL_SSO``): the refresh before the request fails, the error names
  ``aws sso login --profile P``, the proxy keeps running, and the call after the login works.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import shlex
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from sigv4_proxy.emulate import CredentialMint, McpEmulator
from sigv4_proxy.emulate.credentials import generate_credentials
from sigv4_proxy.signing.model import Credentials
from tests.mcp_proxy.harness import text_of

from .helpers import call, error_of, exchange, log_lines, resilient_client, resilient_proxy


class Resolver:
    """The emulator's view of minted keys: records every key it is asked about; can expire chosen ones."""

    def __init__(self, mint: CredentialMint) -> None:
        self.mint = mint
        self.seen: list[str] = []
        self.expired: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, access_key_id: str) -> Credentials | None:
        creds = self.mint.resolve(access_key_id)
        if creds is None:
            return None
        with self._lock:
            if access_key_id not in self.seen:
                self.seen.append(access_key_id)
            if access_key_id in self.expired:
                return dataclasses.replace(creds, expiry=datetime.now(timezone.utc) - timedelta(seconds=1))
        return creds


def minted_profile(home: Path, master: str, lifetime: float) -> dict[str, str]:
    """Environment for a proxy whose credentials come from ``credential_process`` in profile ``minted``."""
    config = home / "config"
    command = shlex.join([sys.executable, "-m", "sigv4_proxy.emulate.mint", master, str(lifetime)])
    config.write_text(f"[profile minted]\ncredential_process = {command}\n")
    return {"AWS_CONFIG_FILE": str(config), "AWS_PROFILE": "minted", "HOME": str(home)}


def target(emulator: McpEmulator) -> list[str]:
    return ["--target-url", emulator.url, "--region", emulator.region, "--service-name", emulator.service]


@dataclasses.dataclass
class Soak:
    """What a run of continuous calls under short-lived credentials saw."""

    calls: int
    failures: int
    keys: int
    refused: list[str]
    stderr: str


async def soak(emulator: McpEmulator, home: Path, *, seconds: float, lifetime: int) -> Soak:
    """Three callers calling ``echo`` back to back for ``seconds``, through a proxy whose credentials come from a
    ``credential_process`` minting keys that live ``lifetime`` seconds (the emulator resolves every minted key)."""
    master = f"soak-{lifetime}s-master"
    resolver = Resolver(CredentialMint(master, lifetime_seconds=lifetime))
    emulator.set_credentials_resolver(resolver)
    calls = failures = 0
    stderr: list[str] = []
    env = minted_profile(home, master, lifetime)
    async with resilient_client(None, *target(emulator), env=env, stderr_sink=stderr) as client:
        deadline = time.monotonic() + seconds

        async def caller(worker: int) -> None:
            nonlocal calls, failures
            while time.monotonic() < deadline:
                message = f"w{worker}-{calls}"
                result = await client.call_tool("echo", {"message": message})
                calls += 1
                if result.is_error or text_of(result) != message:
                    failures += 1

        await asyncio.gather(*(caller(worker) for worker in range(3)))
    refused = [record.line() for record in emulator.requests if not record.ok]
    keys = len(resolver.seen)
    print(f"\n{seconds:g} s of {lifetime}-second credentials: {calls} calls, {keys} keys, {failures} failures")
    return Soak(calls, failures, keys, refused, stderr[0])


async def test_credentials_expiring_every_two_seconds(emulator: McpEmulator, tmp_path: Path) -> None:
    """The soak's behaviour, short: every call succeeds while the keys keep changing under it (no rate floor, so a
    slow machine cannot fail it)."""
    result = await soak(emulator, tmp_path, seconds=10, lifetime=2)
    assert result.failures == 0 and result.refused == [], result.refused
    assert result.keys >= 2, "the credentials were never refreshed"
    assert emulator.executions.duplicates() == {}
    assert "WARNING" not in result.stderr, log_lines(result.stderr, "WARNING")


@pytest.mark.slow
async def test_credentials_expiring_every_few_seconds_for_a_minute(emulator: McpEmulator, tmp_path: Path) -> None:
    result = await soak(emulator, tmp_path, seconds=60, lifetime=4)
    assert result.failures == 0 and result.refused == [], result.refused
    assert result.calls >= 60, result.calls  # continuous: at least one call a second
    assert result.keys >= 10, f"only {result.keys} keys in 60 s of 4-second credentials"
    assert emulator.executions.duplicates() == {}
    assert "WARNING" not in result.stderr, log_lines(result.stderr, "WARNING")


async def test_expired_token_forces_one_refresh_and_one_resigned_retry(emulator: McpEmulator, tmp_path: Path) -> None:
    resolver = Resolver(CredentialMint("refresh-master", lifetime_seconds=3600))
    emulator.set_credentials_resolver(resolver)
    env = minted_profile(tmp_path, "refresh-master", 3600)
    async with resilient_proxy(None, *target(emulator), env=env) as proxy:
        await proxy.initialize()
        assert "result" in await exchange(proxy, call(1, "echo", {"message": "first key"}))
        assert len(resolver.seen) == 1
        resolver.expired.add(resolver.seen[0])  # the server now says: expired (botocore thinks 1 h is left)
        assert "result" in await exchange(proxy, call(2, "echo", {"message": "second key"}))
        assert await proxy.close() == 0
    statuses = [(r.rpc, r.status, r.verdict) for r in emulator.requests if r.rpc.startswith("tools/call")]
    assert len(resolver.seen) == 2  # refreshed once
    assert statuses[-2:] == [("tools/call echo", 403, "ExpiredTokenException"), ("tools/call echo", 200, "ok")]
    assert emulator.executions.by_id() == {1: 1, 2: 1}
    assert log_lines(proxy.stderr, r"— expired token: refreshing the credentials and retrying once$")
    assert log_lines(proxy.stderr, r"INFO  credentials refreshed after the server said the token expired \(now ASIA")


class SsoPortal:
    """A stand-in for the AWS SSO portal's GetRoleCredentials (what botocore calls to refresh SSO credentials).
    Role credentials last 30 seconds, so the proxy refreshes them before every request (5-minute margin), and
    once the SSO session has ended they are too close to expiry to be used any longer (the provider keeps using
    credentials that are still good for a minute when a renewal fails)."""

    def __init__(self, emulator: McpEmulator) -> None:
        self.emulator = emulator
        self.issued: list[Credentials] = []
        portal = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # the http.server API names it
                if not self.path.startswith("/federation/credentials") or not self.headers["x-amz-sso_bearer_token"]:
                    self.send_error(404)
                    return
                creds = generate_credentials(session_token=True)
                portal.emulator.accept(creds)
                portal.issued.append(creds)
                expiration = int((time.time() + 30) * 1000)
                body = json.dumps(
                    {
                        "roleCredentials": {
                            "accessKeyId": creds.access_key_id,
                            "secretAccessKey": creds.secret_access_key,
                            "sessionToken": creds.session_token,
                            "expiration": expiration,
                        }
                    }
                ).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def sso_home(tmp_path: Path) -> Iterator[Path]:
    aws = tmp_path / ".aws"
    (aws / "sso" / "cache").mkdir(parents=True)
    (aws / "config").write_text(
        "[profile dev]\nsso_start_url = https://example.awsapps.com/start\nsso_region = us-east-1\n"
        "sso_account_id = 123456789012\nsso_role_name = Developer\nregion = us-east-1\n"
    )
    yield tmp_path


def sso_login(home: Path, *, valid: bool) -> None:
    """What `aws sso login` leaves behind (valid) or a session that has ended (not valid)."""
    start_url = "https://example.awsapps.com/start"
    expires = datetime.now(timezone.utc) + (timedelta(hours=8) if valid else timedelta(hours=-1))
    token = {
        "startUrl": start_url,
        "region": "us-east-1",
        "accessToken": "sso-access-token-" + ("valid" if valid else "ended"),
        "expiresAt": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    name = hashlib.sha1(start_url.encode()).hexdigest() + ".json"
    (home / ".aws" / "sso" / "cache" / name).write_text(json.dumps(token))


async def test_ended_sso_session_names_the_login_command_and_the_proxy_keeps_running(
    emulator: McpEmulator, sso_home: Path
) -> None:
    sso_login(sso_home, valid=True)
    portal = SsoPortal(emulator)
    env = {
        "HOME": str(sso_home),
        "AWS_CONFIG_FILE": str(sso_home / ".aws" / "config"),
        "AWS_PROFILE": "dev",
        "AWS_ENDPOINT_URL_SSO": portal.url,
    }
    try:
        async with resilient_proxy(None, *target(emulator), env=env) as proxy:
            await proxy.initialize()
            assert "result" in await exchange(proxy, call(1, "echo", {"message": "logged in"}))

            issued = len(portal.issued)
            sso_login(sso_home, valid=False)  # the SSO session ends
            error = error_of(await exchange(proxy, call(2, "echo", {"message": "x"})))
            assert error["message"].startswith(
                "failed to refresh AWS credentials: the AWS SSO session has expired or is not logged in: run "
                "`aws sso login --profile dev` ("
            )
            assert error["message"].endswith(
                "Diagnosis: fix the credential source named above; the request was not sent"
            )
            assert error["data"] == {"kind": "credentials", "retryable": False}
            assert len(portal.issued) == issued  # botocore did not get past the ended token

            sso_login(sso_home, valid=True)  # the user logs in again: the same proxy works
            assert "result" in await exchange(proxy, call(3, "echo", {"message": "back"}))
            assert await proxy.close() == 0
    finally:
        portal.close()
    assert emulator.executions.by_id() == {1: 1, 3: 1}
    assert "Traceback" not in proxy.stderr
