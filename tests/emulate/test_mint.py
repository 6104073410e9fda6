"""CredentialMint: short-lived credentials a credential_process mints and the emulator recognises, end to end
through botocore's credential_process support (the lead's CredentialProvider)."""

from __future__ import annotations

import json
import shlex
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from sigv4_proxy import CredentialProvider, SigV4Auth
from sigv4_proxy.emulate import CredentialMint, McpEmulator, start_mcp
from sigv4_proxy.emulate.mint import main

from .helpers import initialize_body

HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=timezone.utc)


def test_minted_keys_resolve_to_the_same_credentials() -> None:
    mint = CredentialMint("master", lifetime_seconds=5)
    creds = mint.mint(NOW)
    assert creds.access_key_id.startswith("ASIA") and len(creds.access_key_id) == 20
    assert creds.expiry == NOW + timedelta(seconds=5)
    assert mint.resolve(creds.access_key_id) == creds
    assert CredentialMint("other").resolve(creds.access_key_id) != creds
    assert mint.mint(NOW).access_key_id != creds.access_key_id


@pytest.mark.parametrize("key", ["AKIAIOSFODNN7EXAMPLE", "ASIA", "ASIA!!!!!!!!!!!!!!!!", ""])
def test_foreign_keys_do_not_resolve(key: str) -> None:
    assert CredentialMint("master").resolve(key) is None


def test_lifetime_must_be_positive() -> None:
    with pytest.raises(ValueError, match="lifetime_seconds must be positive"):
        CredentialMint("master", 0)


def test_emulator_accepts_minted_credentials_until_they_expire() -> None:
    mint = CredentialMint("master", lifetime_seconds=60)
    # an emulator of its own: the resolver given at start-up, as this module's docstring shows it
    with start_mcp(credentials_resolver=mint.resolve) as emulator:
        creds = mint.mint()
        auth = SigV4Auth(creds, emulator.region, emulator.service)
        assert httpx.post(emulator.url, content=initialize_body(), headers=HEADERS, auth=auth).status_code == 200
        emulator.clock_offset = 120  # the emulator's clock is now past the expiry
        clock_auth = SigV4Auth(creds, emulator.region, emulator.service, clock=emulator.now)
        response = httpx.post(emulator.url, content=initialize_body(), headers=HEADERS, auth=clock_auth)
    assert response.status_code == 403
    assert response.headers["x-amzn-ErrorType"] == "ExpiredTokenException"
    assert response.json() == {"message": "The security token included in the request is expired"}


def test_credential_process_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["master", "30"]) == 0
    output = json.loads(capsys.readouterr().out)
    assert set(output) == {"Version", "AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration"}
    assert CredentialMint("master").resolve(output["AccessKeyId"]).secret_access_key == output["SecretAccessKey"]


def test_botocore_credential_process_feeds_the_emulator(
    emulator: McpEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    command = shlex.join([sys.executable, "-m", "sigv4_proxy.emulate.mint", "shared-master", "3600"])
    config = tmp_path / "config"
    config.write_text(f"[profile minted]\ncredential_process = {command}\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    provider = CredentialProvider("minted")
    emulator.set_credentials_resolver(CredentialMint("shared-master").resolve)
    auth = SigV4Auth(provider, emulator.region, emulator.service)
    response = httpx.post(emulator.url, content=initialize_body(), headers=HEADERS, auth=auth)
    assert response.status_code == 200, response.text
    assert provider.method == "custom-process"
