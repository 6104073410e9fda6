"""`doctor` takes every flag of the stdio proxy and uses it where it matters, against `emulate mcp` on loopback.

The flag list is the proxy's parser's own: a flag added to the proxy without a use (or a reasoned "validated
only") here fails `test_every_proxy_flag_is_covered`, and each flag's test shows it is accepted *and* used:
the probe goes the legacy way for `--transport sse` (and falls back to it for `auto`), retries for
`--retries`, is bounded by `--timeout`, `--request-deadline` and `--max-message-bytes`, sends `--headers`,
signs with `--sig-version`/`--region-set`; `--sse` opens the standalone stream, `--warm` reports the cache.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from sigv4_proxy.credentials import StaticCredentialProvider
from sigv4_proxy.doctor import FAIL, PASS, SKIP, WARN, DoctorReport, check_configuration, run_doctor
from sigv4_proxy.emulate import Match, McpEmulator, RequestRecord, generate_credentials
from sigv4_proxy.mcp.legacy import PROBLEM_NO_STREAM
from sigv4_proxy.mcp.transport import PROBLEM_TOO_LARGE
from sigv4_proxy.mcp.warm import WarmCache
from sigv4_proxy.redact import mask_access_key
from tests.support.emulators import EmulatorVariant
from tests.tools.conftest import child_env
from tests.tools.test_doctor import STRANGER
from tests.tools.test_terminal_safety import canned_server

INITIALIZE = Match(rpc_method="initialize")
ALL_GREEN_PROBE = "initialize answered by sigv4-proxy-emulator 1 (protocol 2025-06-18) in "


def proxy_flags() -> list[str]:
    """Every option of the stdio proxy (`sigv4-proxy [flags]`), from its own parser."""
    from sigv4_proxy.cli import proxy

    parser = argparse.ArgumentParser()
    proxy.configure(parser)
    return sorted(
        option for action in parser._actions for option in action.option_strings if option not in ("-h", "--help")
    )


def doctor_args(*argv: str) -> argparse.Namespace:
    from sigv4_proxy.cli import doctor

    parser = argparse.ArgumentParser()
    doctor.configure(parser)
    return parser.parse_args(list(argv))


class Servers:
    """The emulators a flag may need: stateless and stateful Streamable HTTP, and the legacy HTTP+SSE one.

    The stateful and legacy ones are the shared emulators of those options, fetched (and reset) on first use."""

    def __init__(
        self, stateless: McpEmulator, variant: EmulatorVariant, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        self.stateless, self._variant = stateless, variant
        self.tmp_path, self.monkeypatch = tmp_path, monkeypatch

    @property
    def stateful(self) -> McpEmulator:
        return self._variant()

    @property
    def legacy(self) -> McpEmulator:
        return self._variant(transport="sse")


@pytest.fixture
def servers(
    emulator: McpEmulator, emulator_variant: EmulatorVariant, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Servers:
    return Servers(emulator, emulator_variant, tmp_path, monkeypatch)


@pytest.fixture
def legacy(emulator_variant: EmulatorVariant) -> McpEmulator:
    """The shared legacy HTTP+SSE emulator (``emulate mcp --transport sse``)."""
    return emulator_variant(transport="sse")


def diagnose(
    emulator: McpEmulator,
    *argv: str,
    environ: dict[str, str] | None = None,
    timeout: float = 3,
    provider: object | None = "static",
) -> DoctorReport:
    """doctor against `emulator` with its region and service by flag, then `argv` (later flags win)."""
    args = doctor_args(
        "--target-url", emulator.url, "--region", emulator.region, "--service-name", emulator.service, *argv
    )
    chosen = StaticCredentialProvider(emulator.credentials, method="env") if provider == "static" else provider
    return run_doctor(args, environ or {}, provider=chosen, timeout=timeout)


def diagnose_alone(emulator: McpEmulator, *argv: str) -> tuple[DoctorReport, list[RequestRecord]]:
    """doctor with credentials of its own, and the emulator's records of the requests signed with them: the exact
    sequence doctor sent, whatever other clients of the shared emulator still send."""
    own = generate_credentials()
    emulator.accept(own)
    report = diagnose(emulator, *argv, provider=StaticCredentialProvider(own, method="env"))
    key = mask_access_key(own.access_key_id) + "/"
    return report, [record for record in emulator.requests if record.scope.startswith(key)]


def check(report: DoctorReport, name: str) -> tuple[str, str, str | None]:
    found = next(c for c in report.checks if c.name == name)
    return found.status, found.summary, found.fix


def names(report: DoctorReport) -> list[str]:
    return [c.name for c in report.checks]


# --- one use per flag ------------------------------------------------------------------------------------------


def use_target_url(s: Servers) -> None:
    # the flag wins over MCP_TARGET_URL (here a closed port): the probe reaches the emulator
    report = diagnose(s.stateless, environ={"MCP_TARGET_URL": "http://127.0.0.1:9/mcp"})
    assert report.target == s.stateless.url
    assert check(report, "probe")[0] == PASS and report.ok, report.render()


def use_region(s: Servers) -> None:
    report = diagnose(s.stateless, "--region", "eu-west-1")
    assert check(report, "inference")[1].endswith(
        "region eu-west-1 (--region); host 127.0.0.1 names neither (nothing to cross-check)"
    )
    assert check(report, "probe")[1] == (
        "initialize: HTTP 403 InvalidSignatureException: Credential should be "
        "scoped to a valid region, not 'eu-west-1'."
    )


def use_service_name(s: Servers) -> None:
    report = diagnose(s.stateless, "--service-name", "lambda")
    assert check(report, "probe")[1] == (
        "initialize: HTTP 403 InvalidSignatureException: Credential should be scoped to correct service: 'execute-api'."
    )


def use_sig_version(s: Servers) -> None:
    report = diagnose(s.stateless, "--sig-version", "v4a")
    assert check(report, "configuration")[1] == f"target {s.stateless.url}, v4a (region set us-east-1)"
    assert check(report, "probe")[0] == PASS
    assert s.stateless.requests[-1].algorithm == "AWS4-ECDSA-P256-SHA256"


def use_region_set(s: Servers) -> None:
    report = diagnose(s.stateless, "--sig-version", "v4a", "--region-set", "eu-west-1,eu-central-1")
    assert check(report, "configuration")[1].endswith("v4a (region set eu-west-1,eu-central-1)")
    status, summary, fix = check(report, "probe")
    assert (status, summary) == (
        FAIL,
        "initialize: HTTP 403 InvalidSignatureException: Credential should be scoped "
        "to a valid region, not 'eu-west-1,eu-central-1'.",
    )
    assert fix is not None and "region set 'eu-west-1,eu-central-1'" in fix


def use_profile(s: Servers) -> None:
    credentials = s.tmp_path / "credentials"
    key = s.stateless.credentials
    credentials.write_text(
        f"[emu]\naws_access_key_id = {key.access_key_id}\naws_secret_access_key = {key.secret_access_key}\n"
    )
    s.monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))  # read by botocore's chain
    report = diagnose(s.stateless, "--profile", "emu", provider=None)
    assert check(report, "credentials")[1] == (
        f"{key.masked_access_key}: long-term key from shared credentials file (~/.aws/credentials), no expiry"
    )
    assert check(report, "probe")[0] == PASS


def use_sse(s: Servers) -> None:
    report = diagnose(s.stateful, "--sse")
    assert check(report, "configuration")[1].endswith("v4; standalone event stream on")
    assert check(report, "stream") == (
        PASS,
        "the server opened the standalone event stream (HTTP 200): its own "
        "messages (list changes, requests) reach the client",
        None,
    )
    assert [(r.method, r.status) for r in s.stateful.requests[-3:]] == [("POST", 200), ("GET", 200), ("DELETE", 200)]


def use_no_sse(s: Servers) -> None:
    assert "stream" in names(diagnose(s.stateful, environ={"MCP_ENABLE_SSE": "true"}))
    assert "stream" not in names(diagnose(s.stateful, "--no-sse", environ={"MCP_ENABLE_SSE": "true"}))


def use_timeout(s: Servers) -> None:
    # the server takes 1 s; each check has 0.5 s, but the probe waits as long as the proxy would (--timeout)
    s.stateless.delay_next(1.0, match=INITIALIZE)
    report = diagnose(s.stateless, "--timeout", "5s", "--retries", "0", timeout=0.5)
    assert check(report, "configuration")[1].endswith("v4; timeout 5s, 0 retries")
    assert check(report, "probe")[0] == PASS, report.render()
    s.stateless.delay_next(1.0, match=INITIALIZE)
    status, summary, _ = check(diagnose(s.stateless, "--retries", "0", timeout=0.5), "probe")
    assert status == FAIL and summary.endswith("(--retries is 0)"), summary


def use_headers(s: Servers) -> None:
    # a header the server acts on: an unknown session id, sent with the probe's initialize
    report = diagnose(s.stateful, "--headers", "Mcp-Session-Id=stale")
    assert check(report, "configuration")[1].endswith("v4; extra headers: Mcp-Session-Id")
    assert check(report, "probe")[1] == "initialize: HTTP 404: Session not found."


def use_log_level(s: Servers) -> None:
    # doctor writes no log: the flag is validated by the proxy's rules, with the proxy's message
    assert diagnose(s.stateless, "--log-level", "debug").ok
    report = diagnose(s.stateless, "--log-level", "loud")
    assert check(report, "configuration")[:2] == (
        FAIL,
        "log level must be one of debug, info, warning, error, got: loud",
    )


def use_log_format(s: Servers) -> None:
    assert diagnose(s.stateless, "--log-format", "json").ok
    report = diagnose(s.stateless, "--log-format", "yaml")
    assert check(report, "configuration")[:2] == (FAIL, "log format must be 'text' or 'json', got: yaml")


def use_max_message_bytes(s: Servers) -> None:
    report = diagnose(s.stateless, "--max-message-bytes", "64")
    summary, fix = PROBLEM_TOO_LARGE.format(limit=64).split(". Diagnosis: ")
    assert check(report, "probe") == (FAIL, summary, fix)
    assert diagnose(s.stateless, "--max-message-bytes", "64KiB").ok


def use_allow_http(s: Servers) -> None:
    assert diagnose(s.stateless, "--allow-http").ok
    # where it matters, a plain-http target that is not loopback (checked without a connection)
    args = doctor_args(
        "--target-url",
        "http://mcp.internal/mcp",
        "--region",
        "us-east-1",
        "--service-name",
        "execute-api",
        "--allow-http",
    )
    assert check_configuration(args, {})[0][0].status == PASS


def use_no_allow_http(s: Servers) -> None:
    report = diagnose(
        s.stateless, "--target-url", "http://mcp.internal/mcp", "--no-allow-http", environ={"MCP_ALLOW_HTTP": "true"}
    )
    assert check(report, "configuration")[:2] == (
        FAIL,
        "target URL uses http for non-loopback host mcp.internal: signed requests would travel unencrypted "
        "(use https, or pass --allow-http / set MCP_ALLOW_HTTP=true)",
    )
    args = doctor_args(
        "--target-url", "http://mcp.internal/mcp", "--region", "us-east-1", "--service-name", "execute-api"
    )
    assert check_configuration(args, {"MCP_ALLOW_HTTP": "true"})[0][0].status == PASS


def use_transport(s: Servers) -> None:
    report, sent = diagnose_alone(s.legacy, "--transport", "sse")
    status, summary, _ = check(report, "probe")
    assert status == PASS and summary.startswith(ALL_GREEN_PROBE)
    assert summary.endswith(" over the legacy HTTP+SSE transport (--transport sse)")
    assert [(r.method, r.path) for r in sent] == [("GET", "/sse"), ("POST", "/messages/")], "\n".join(
        [report.render(), *(record.line() for record in s.legacy.requests)]
    )
    streamable = diagnose(s.legacy, "--transport", "streamable-http")
    assert check(streamable, "probe")[1].startswith("initialize: HTTP 405")  # no fallback


def use_retries(s: Servers) -> None:
    s.stateless.fail_next(503, times=2, match=INITIALIZE)
    report = diagnose(s.stateless, "--retries", "2")
    status, summary, _ = check(report, "probe")
    assert status == PASS and summary.startswith(ALL_GREEN_PROBE)
    assert summary.endswith(", on attempt 3 (--retries 2: retried after HTTP 503, HTTP 503, as the proxy would)")
    s.stateless.fail_next(503, match=INITIALIZE)
    assert check(diagnose(s.stateless, "--retries", "0"), "probe")[1] == "initialize: HTTP 503 (--retries is 0)"


def use_warm(s: Servers) -> None:
    environ = {"SIGV4_PROXY_CACHE_DIR": str(s.tmp_path / "cache")}
    directory = s.tmp_path / "cache" / "warm"
    assert check(diagnose(s.stateless, "--warm", environ=environ), "warm") == (
        WARN,
        f"no initialize answer cached for this target yet (in {directory}): the proxy's next start waits for "
        "the server's answer, then caches it",
        None,
    )
    saved = datetime.now(timezone.utc) - timedelta(hours=3, minutes=5)
    result = {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "serverInfo": {"name": "warm-server", "version": "7"},
    }
    WarmCache(directory.parent, s.stateless.url).save("2025-06-18", result, now=saved)  # as the proxy saves it
    WarmCache(directory.parent, "http://127.0.0.1:9/other").save("2025-06-18", result)  # another target's
    status, summary, _ = check(diagnose(s.stateless, "--warm", environ=environ), "warm")
    stamp = saved.strftime("%Y-%m-%dT%H:%M:%SZ")
    # The stamp has whole seconds: the age is 3 h 5 min and up to a second more.
    assert status == PASS
    assert summary in {
        f"the answer of warm-server 7 (protocol 2025-06-18) is cached since {stamp} "
        f"({age} ago): the proxy answers initialize from it at once"
        for age in ("3 h 5 min", "3 h 5 min 1 s")
    }


def use_no_warm(s: Servers) -> None:
    environ = {"SIGV4_PROXY_CACHE_DIR": str(s.tmp_path / "cache"), "MCP_WARM_START": "true"}
    assert "warm" in names(diagnose(s.stateless, environ=environ))
    assert "warm" not in names(diagnose(s.stateless, "--no-warm", environ=environ))


def use_request_deadline(s: Servers) -> None:
    s.stateless.delay_next(2.0, match=INITIALIZE)
    started = time.monotonic()
    report = diagnose(s.stateless, "--request-deadline", "0.5", timeout=5)
    assert time.monotonic() - started < 1.5  # the doctor stopped waiting at the deadline, as the proxy would
    status, summary, fix = check(report, "probe")
    assert (status, summary) == (
        FAIL,
        "no response within the request deadline of 0.5 s (--request-deadline): the "
        "proxy stopped waiting and closed the request's stream",
    )
    assert fix is not None and fix.startswith("the server kept the request open without answering it")


USES: dict[str, Callable[[Servers], None]] = {
    "--target-url": use_target_url,
    "--region": use_region,
    "--service-name": use_service_name,
    "--sig-version": use_sig_version,
    "--region-set": use_region_set,
    "--profile": use_profile,
    "--sse": use_sse,
    "--no-sse": use_no_sse,
    "--timeout": use_timeout,
    "--headers": use_headers,
    "--log-level": use_log_level,
    "--log-format": use_log_format,
    "--max-message-bytes": use_max_message_bytes,
    "--allow-http": use_allow_http,
    "--no-allow-http": use_no_allow_http,
    "--transport": use_transport,
    "--retries": use_retries,
    "--warm": use_warm,
    "--no-warm": use_no_warm,
    "--request-deadline": use_request_deadline,
}


def test_every_proxy_flag_is_covered() -> None:
    assert sorted(USES) == proxy_flags(), "a flag of the proxy has no doctor test here: add its use to USES"


@pytest.mark.parametrize("flag", proxy_flags())
def test_doctor_accepts_and_uses_the_proxy_flag(flag: str, servers: Servers) -> None:
    assert flag in USES, f"{flag} is a flag of the proxy: say here how doctor uses it"
    USES[flag](servers)


# --- the transports, as the proxy's AutoTransport decides ------------------------------------------------------


def test_auto_falls_back_to_the_legacy_transport_like_the_proxy(legacy: McpEmulator) -> None:
    report, sent = diagnose_alone(legacy)
    status, summary, _ = check(report, "probe")
    assert status == PASS and summary.startswith(ALL_GREEN_PROBE), report.render()
    assert summary.endswith(
        " over the legacy HTTP+SSE transport (the initialize POST got HTTP 405: --transport auto "
        "falls back to it, as the proxy does)"
    )
    assert [(r.method, r.path, r.status) for r in sent] == [
        ("POST", "/sse", 405),
        ("GET", "/sse", 200),
        ("POST", "/messages/", 202),
    ], "\n".join([report.render(), *(record.line() for record in legacy.requests)])
    assert check(report, "clock")[0] == PASS


def test_auto_stays_with_streamable_http_when_the_get_opens_no_legacy_stream(emulator: McpEmulator) -> None:
    seen = len(emulator.requests)
    report = diagnose(emulator, "--target-url", emulator.url.replace("/mcp", "/nope"))
    assert check(report, "probe")[1] == "initialize: HTTP 404: Not Found."
    requests = [(r.method, r.path, r.status) for r in emulator.requests[seen:] if r.path == "/nope"]
    assert requests == [("POST", "/nope", 404), ("GET", "/nope", 404)]


def test_legacy_transport_problems_are_the_proxys() -> None:
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
    with canned_server(answer) as url:
        args = doctor_args(
            "--target-url", url, "--region", "us-east-1", "--service-name", "execute-api", "--transport", "sse"
        )
        report = run_doctor(args, {}, provider=StaticCredentialProvider(STRANGER, method="env"), timeout=3)
    summary, fix = PROBLEM_NO_STREAM.format(status=200, content_type="application/json").split(". Diagnosis: ")
    assert check(report, "probe") == (FAIL, summary, fix)


def test_standalone_stream_is_skipped_where_the_proxy_opens_none(emulator: McpEmulator, legacy: McpEmulator) -> None:
    assert check(diagnose(emulator, "--sse"), "stream") == (
        SKIP,
        "skipped: the server gave no session id (a stateless server), so the proxy opens no standalone stream",
        None,
    )
    assert check(diagnose(legacy, "--sse"), "stream")[1] == (
        "skipped: the legacy HTTP+SSE transport has no standalone stream: server messages arrive on its one stream"
    )


# --- the command line ------------------------------------------------------------------------------------------


def test_cli_accepts_the_flags_of_an_mcp_client_config(emulator: McpEmulator, tmp_path: Path) -> None:
    """The reported failure: `doctor` rejected --transport, --retries and --warm (argparse exit 2)."""
    argv = [
        sys.executable,
        "-m",
        "sigv4_proxy",
        "doctor",
        "--transport",
        "auto",
        "--retries",
        "3",
        "--warm",
        "--request-deadline",
        "30s",
        "--no-sse",
    ]
    env = child_env(emulator.env() | {"SIGV4_PROXY_CACHE_DIR": str(tmp_path)})
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line.rstrip() for line in result.stdout.splitlines()]
    assert lines[1] == f"✓ configuration    target {emulator.url}, v4; 3 retries, request deadline 30s, warm start"
    assert any(line.startswith("✓ signed probe     " + ALL_GREEN_PROBE) for line in lines)
    assert any(line.startswith("! warm start       no initialize answer cached for this target yet") for line in lines)
