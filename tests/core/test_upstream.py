"""sigv4_proxy.upstream: the credential provider of every door, the signed client, the signing context each door
diagnoses with, and the recovery before the one re-signed retry (driven by plain data: an action, a Date
header, the server's message)."""

from __future__ import annotations

import logging
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

from sigv4_proxy import retry
from sigv4_proxy.auth import SigV4Auth
from sigv4_proxy.clock import SkewedClock
from sigv4_proxy.config import ProxyConfig
from sigv4_proxy.credentials import CredentialProvider, StaticCredentialProvider
from sigv4_proxy.errors import CredentialsError
from sigv4_proxy.logs import redact as log_redact
from sigv4_proxy.signing.model import Credentials
from sigv4_proxy.upstream import (
    Destination,
    SecretRegisteringProvider,
    build_client,
    credential_provider,
    recover,
    signer,
    signing_context,
)

URL = "https://abc123.execute-api.us-east-1.amazonaws.com/prod/mcp"
TEMPORARY = Credentials("ASIAIOSFODNN7EXAMPLE", "temporary-secret-upstream-1234", "temporary-token-upstream-5678")
LONG_TERM = Credentials("AKIAIOSFODNN7EXAMPLE", "long-term-secret-upstream-1234")
NOW = datetime(2030, 1, 1, 12, 0, tzinfo=timezone.utc)
log = logging.getLogger("sigv4_proxy.test_upstream")


def config(**options: object) -> ProxyConfig:
    return ProxyConfig(target_url=URL, service="execute-api", region="us-east-1", **options)  # type: ignore[arg-type]


class Provider:
    """A CredentialSource whose answers the test sets: credentials in hand, a refresh that works or fails."""

    def __init__(
        self,
        cached: Credentials | None = TEMPORARY,
        refreshed: Credentials | Exception = LONG_TERM,
        method: str | None = "sso",
        profile: str | None = "dev",
    ) -> None:
        self._cached, self._refreshed = cached, refreshed
        self.method, self.profile = method, profile
        self.refreshes = 0

    def get(self, now: datetime | None = None) -> Credentials:
        assert self._cached is not None
        return self._cached

    def cached(self, now: datetime | None = None) -> Credentials | None:
        if isinstance(self._refreshed, Exception) and self._cached is None:
            raise self._refreshed
        return self._cached

    def force_refresh(self) -> Credentials:
        self.refreshes += 1
        if isinstance(self._refreshed, Exception):
            raise self._refreshed
        return self._refreshed


# --- signing_context: one build for every door ------------------------------------------------------------------


def test_the_stdio_proxy_context_names_key_token_source_profile_and_a_named_transport() -> None:
    context = signing_context(config(profile="dev", transport="sse"), Provider())
    assert (context.url, context.region, context.service, context.algorithm) == (URL, "us-east-1", "execute-api", "v4")
    assert (context.access_key, context.has_session_token) == ("ASIA****MPLE", True)
    assert (context.credential_method, context.profile, context.transport) == ("sso", "dev", "sse")
    assert context.request_url is None


def test_with_transport_auto_the_diagnosis_goes_by_the_url() -> None:
    assert signing_context(config(), Provider()).transport is None


def test_the_http_listener_context_names_the_path_the_request_went_to() -> None:
    context = signing_context(config(), Provider(cached=LONG_TERM), request_url=URL + "/tools")
    assert (context.access_key, context.has_session_token, context.request_url) == (
        "AKIA****MPLE",
        False,
        URL + "/tools",
    )
    assert context.requested_path == "/prod/mcp/tools"


def test_a_sigv4a_context_carries_the_region_set() -> None:
    context = signing_context(config(sig_version="v4a", region_set=("us-east-1", "eu-west-1")), Provider())
    assert (context.algorithm, context.region) == ("v4a", ["us-east-1", "eu-west-1"])


def test_the_request_command_context_uses_the_credentials_it_loaded() -> None:
    destination = Destination("https://internal.example.com/api", "eu-west-1", "execute-api", "v4", "ops")
    context = signing_context(destination, Provider(cached=None), credentials=TEMPORARY)
    assert (context.url, context.region, context.profile) == ("https://internal.example.com/api", "eu-west-1", "ops")
    assert (context.access_key, context.has_session_token, context.credential_method) == ("ASIA****MPLE", True, "sso")


def test_without_a_provider_the_context_knows_only_where_and_how() -> None:
    """doctor's STS call: STS's answer is diagnosed by what it says."""
    context = signing_context(Destination("https://sts.us-east-1.amazonaws.com", "us-east-1", "sts"))
    assert (context.service, context.algorithm, context.access_key, context.credential_method) == (
        "sts",
        "v4",
        None,
        None,
    )


def test_credentials_that_fail_to_load_leave_the_key_unknown() -> None:
    failing = Provider(cached=None, refreshed=CredentialsError("the AWS SSO session has expired"))
    context = signing_context(config(), failing)
    assert (context.access_key, context.has_session_token, context.credential_method) == (None, None, "sso")


# --- recover: the one re-signed retry after a 403 ---------------------------------------------------------------


async def test_an_expired_token_refreshes_the_credentials(caplog: pytest.LogCaptureFixture) -> None:
    provider = Provider()
    caplog.set_level(logging.INFO, logger=log.name)
    assert await recover(retry.REFRESH_CREDENTIALS, provider, SkewedClock(), log=log) is None
    assert provider.refreshes == 1
    assert caplog.messages == ["credentials refreshed after the server said the token expired (now AKIA****MPLE)"]


async def test_a_refresh_that_fails_returns_its_error_for_the_caller_to_word() -> None:
    provider = Provider(refreshed=CredentialsError("failed to refresh AWS credentials: run `aws sso login`"))
    error = await recover(retry.REFRESH_CREDENTIALS, provider, None, log=log)
    assert isinstance(error, CredentialsError) and "aws sso login" in str(error)


async def test_a_refresh_without_a_provider_is_an_error() -> None:
    assert isinstance(await recover(retry.REFRESH_CREDENTIALS, None, None, log=log), CredentialsError)


async def test_clock_skew_adopts_the_servers_date_for_every_later_request(caplog: pytest.LogCaptureFixture) -> None:
    clock = SkewedClock(now=lambda: NOW)
    server = NOW + timedelta(minutes=10)
    date = server.strftime("%a, %d %b %Y %H:%M:%S GMT")
    caplog.set_level(logging.INFO, logger=log.name)
    assert await recover(retry.CORRECT_CLOCK, Provider(), clock, log=log, date=date, received=NOW) is None
    assert clock.offset == 600
    assert clock() == server
    assert caplog.messages == [f"clock skew: {clock.describe()}"]


async def test_clock_skew_learns_the_time_from_the_aws_message_without_a_date() -> None:
    clock = SkewedClock(now=lambda: NOW)
    signed_at = NOW.strftime("%Y%m%dT%H%M%SZ")
    server_time = (NOW + timedelta(minutes=10)).strftime("%Y%m%dT%H%M%SZ")
    message = f"Signature expired: {signed_at} is now earlier than {server_time} ({server_time} - 5 min.)"
    assert await recover(retry.CORRECT_CLOCK, None, clock, log=log, aws_message=message) is None
    assert clock.offset == pytest.approx(600, abs=1)


async def test_clock_skew_without_a_server_time_retries_unchanged(caplog: pytest.LogCaptureFixture) -> None:
    clock = SkewedClock(now=lambda: NOW)
    caplog.set_level(logging.INFO, logger=log.name)
    assert await recover(retry.CORRECT_CLOCK, Provider(), clock, log=log, date=None, received=NOW) is None
    assert clock.offset == 0
    assert caplog.messages == ["clock skew reported, but the response tells no server time: retrying unchanged"]


@pytest.mark.parametrize("action", [retry.RETRY, retry.GIVE_UP])
async def test_other_actions_need_nothing_before_the_retry(action: retry.Action) -> None:
    provider, clock = Provider(), SkewedClock(now=lambda: NOW)
    assert await recover(action, provider, clock, log=log, date="Tue, 01 Jan 2030 12:30:00 GMT") is None
    assert (provider.refreshes, clock.offset) == (0, 0)


async def test_without_a_clock_a_skew_changes_nothing() -> None:
    assert await recover(retry.CORRECT_CLOCK, Provider(), None, log=log, date="Tue, 01 Jan 2030 12:30:00 GMT") is None


# --- the provider, the client ---------------------------------------------------------------------------------


def test_every_secret_the_provider_hands_out_is_redacted_from_the_logs() -> None:
    rotated = Credentials("ASIAROTATEDEXAMPLE01", "rotated-secret-upstream-9999", "rotated-token-upstream-9999")
    provider = SecretRegisteringProvider(Provider(cached=TEMPORARY, refreshed=rotated))
    assert (provider.method, provider.profile) == ("sso", "dev")
    assert provider.cached() is TEMPORARY
    assert log_redact(f"x {TEMPORARY.secret_access_key} {TEMPORARY.session_token} y") == "x **** **** y"
    assert provider.force_refresh() is rotated
    assert log_redact(f"x {rotated.secret_access_key} y") == "x **** y"


def test_environment_keys_are_read_without_botocore() -> None:
    environ = {"AWS_ACCESS_KEY_ID": LONG_TERM.access_key_id, "AWS_SECRET_ACCESS_KEY": LONG_TERM.secret_access_key}
    provider = credential_provider(config(), environ)
    assert isinstance(provider, StaticCredentialProvider)
    assert (provider.method, provider.get()) == ("env", LONG_TERM)


def test_a_profile_flag_goes_to_botocores_chain_even_with_environment_keys() -> None:
    environ = {"AWS_ACCESS_KEY_ID": LONG_TERM.access_key_id, "AWS_SECRET_ACCESS_KEY": LONG_TERM.secret_access_key}
    provider = credential_provider(config(profile="dev", sources={"profile": "--profile"}), environ)
    assert isinstance(provider, CredentialProvider)
    assert provider.profile == "dev"


async def test_the_client_signs_for_the_configured_scope_with_the_shared_clock() -> None:
    clock = SkewedClock()
    client = build_client(config(sig_version="v4a", region_set=("*",), timeout=60.0), Provider(), clock=clock)
    async with client:
        auth = client.auth
        assert isinstance(auth, SigV4Auth)
        assert (auth.region, auth.service, auth.algorithm, auth.clock) == (["*"], "execute-api", "v4a", clock)
        assert not client.follow_redirects
        assert client.timeout.connect == 30.0 and client.timeout.read == 60.0
        assert client.headers["user-agent"].startswith("sigv4-proxy/")


def test_a_one_off_signer_can_leave_the_payload_unsigned() -> None:
    auth = signer(Destination(URL, "us-east-1", "execute-api"), Provider(), unsigned_payload=True)
    assert (auth.region, auth.service, auth.algorithm, auth.unsigned_payload) == (
        "us-east-1",
        "execute-api",
        "v4",
        True,
    )


def test_the_http_listener_imports_nothing_from_the_mcp_bridge() -> None:
    code = (
        "import sys, sigv4_proxy.http_listener, sigv4_proxy.upstream\n"
        "print(sorted(m for m in sys.modules if m.startswith('sigv4_proxy.mcp')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
