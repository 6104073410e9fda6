"""`sigv4-proxy doctor` against `emulate mcp` on loopback: all green, then each fault → its ✗ line; and against
a hostile server, whose answers are shown with their control characters escaped."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from sigv4_proxy.credentials import StaticCredentialProvider
from sigv4_proxy.doctor import FAIL, PASS, SKIP, WARN, DoctorReport, check_clock, probe_dsql, run_doctor
from sigv4_proxy.emulate import McpEmulator
from sigv4_proxy.signing.model import Credentials
from tests.support import ports
from tests.support.tls import TlsFront, make_pki
from tests.tools.conftest import child_env
from tests.tools.sts import ARN, LocalSts
from tests.tools.test_terminal_safety import CREDENTIALS, ESCAPED_BODY, HOSTILE_BODY, UNSAFE, canned_server


def doctor_args(*argv: str) -> argparse.Namespace:
    from sigv4_proxy.cli import doctor

    parser = argparse.ArgumentParser()
    doctor.configure(parser)
    return parser.parse_args(list(argv))


@pytest.fixture
def sts(emulator: McpEmulator) -> Iterator[LocalSts]:
    with LocalSts(emulator.credentials) as server:
        yield server


def diagnose(
    emulator: McpEmulator,
    sts: LocalSts,
    *argv: str,
    credentials: Credentials | None = None,
    environ: dict[str, str] | None = None,
    url: str | None = None,
) -> DoctorReport:
    args = doctor_args(
        "--target-url", url or emulator.url, "--region", emulator.region, "--service-name", emulator.service, *argv
    )
    provider = StaticCredentialProvider(credentials or emulator.credentials, method="env")
    return run_doctor(args, environ or {}, provider=provider, sts_endpoint=sts.url, timeout=3)


def statuses(report: DoctorReport) -> dict[str, str]:
    return {check.name: check.status for check in report.checks}


def failed(report: DoctorReport) -> list[str]:
    return [check.name for check in report.checks if check.status == FAIL]


def line(report: DoctorReport, name: str) -> tuple[str, str | None]:
    check = next(c for c in report.checks if c.name == name)
    return check.summary, check.fix


def test_all_green(emulator: McpEmulator, sts: LocalSts) -> None:
    report = diagnose(emulator, sts)
    assert statuses(report) == {
        "configuration": PASS,
        "inference": PASS,
        "credentials": PASS,
        "identity": PASS,
        "dns": PASS,
        "tcp": PASS,
        "tls": SKIP,
        "clock": PASS,
        "probe": PASS,
    }
    assert report.ok
    assert line(report, "identity") == (f"{ARN} (account 123456789012)", None)
    assert line(report, "probe")[0].startswith("initialize answered by sigv4-proxy-emulator 1 (protocol 2025-06-18)")
    assert (
        line(report, "credentials")[0] == f"{emulator.credentials.masked_access_key}: long-term key from environment "
        "variables (AWS_ACCESS_KEY_ID), no expiry"
    )
    assert sts.calls == 1


def test_wrong_service(emulator: McpEmulator, sts: LocalSts) -> None:
    report = diagnose(emulator, sts, "--service-name", "lambda")
    assert failed(report) == ["probe"]
    assert line(report, "probe") == (
        "initialize: HTTP 403 InvalidSignatureException: Credential should be scoped to correct service: "
        "'execute-api'.",
        "signed for service 'lambda' but the server expects 'execute-api': use --service-name execute-api",
    )


def test_wrong_region(emulator: McpEmulator, sts: LocalSts) -> None:
    report = diagnose(emulator, sts, "--region", "eu-west-1")
    assert failed(report) == ["probe"]
    summary, fix = line(report, "probe")
    assert summary == (
        "initialize: HTTP 403 InvalidSignatureException: Credential should be scoped to a valid "
        "region, not 'eu-west-1'."
    )
    assert fix is not None and "eu-west-1" in fix


def test_expired_credentials(emulator: McpEmulator, sts: LocalSts) -> None:
    expiring = emulator.rotate_credentials(session_token=True, expires_in=3600, keep_old=True)
    emulator.expire_credentials(expiring.access_key_id)
    report = diagnose(emulator, sts, credentials=expiring)
    assert "probe" in failed(report)
    summary, fix = line(report, "probe")
    assert summary == (
        "initialize: HTTP 403 ExpiredTokenException: The security token included in the request is expired."
    )
    assert fix is not None


def test_credentials_expired_locally(emulator: McpEmulator, sts: LocalSts) -> None:
    stale = Credentials(
        emulator.credentials.access_key_id,
        emulator.credentials.secret_access_key,
        "token",
        expiry=datetime.now(timezone.utc) - timedelta(minutes=3),
    )
    report = diagnose(emulator, sts, credentials=stale)
    summary, fix = line(report, "credentials")
    assert summary.startswith(
        f"{stale.masked_access_key}: temporary key with session token from environment "
        "variables (AWS_ACCESS_KEY_ID), expired 3 min "
    )
    assert fix == "export fresh AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN (or use a profile)"


def test_skewed_clock(emulator: McpEmulator, sts: LocalSts) -> None:
    emulator.clock_offset = 600
    report = diagnose(emulator, sts)
    assert failed(report) == ["clock", "probe"]
    summary, fix = line(report, "clock")
    assert summary.startswith("the local clock is ") and " behind the target's (Date: " in summary
    assert fix is not None and fix.startswith("AWS rejects signatures more than 5 minutes off: sync the clock")
    assert line(report, "probe")[0].startswith("initialize: HTTP 403 InvalidSignatureException: Signature expired: ")


def test_server_down(emulator: McpEmulator, sts: LocalSts, closed_port: int) -> None:
    report = diagnose(emulator, sts, url=f"http://127.0.0.1:{closed_port}/mcp")
    assert failed(report) == ["tcp"]
    assert line(report, "tcp") == (
        f"connection to 127.0.0.1:{closed_port} refused: nothing is listening",
        "check that the server is running and the target URL's port; on AWS check security groups and network ACLs",
    )
    assert statuses(report)["probe"] == SKIP and not report.ok


def test_tls_with_an_unknown_ca(emulator: McpEmulator, sts: LocalSts, tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    with TlsFront(emulator.port, pki) as front:
        url = front.url(host="localhost")
        report = diagnose(emulator, sts, url=url)
        assert failed(report) == ["tls"]
        summary, fix = line(report, "tls")
        assert summary == (
            f"certificate of localhost:{front.port} not accepted: unable to get local issuer certificate"
        )
        assert fix is not None and "point SSL_CERT_FILE at a CA bundle that includes it" in fix
        trusted = diagnose(emulator, sts, url=url, environ={"SSL_CERT_FILE": str(pki.ca_pem)})
        assert trusted.ok, trusted.render()
        assert line(trusted, "tls")[0].startswith(
            "TLSv1.3, certificate CN=localhost (SNI localhost) issued by CN=sigv4-proxy test CA"
        )
        assert statuses(trusted)["probe"] == PASS


def test_sts_unreachable_is_a_skip(emulator: McpEmulator, closed_port: int) -> None:
    args = doctor_args("--target-url", emulator.url, "--region", emulator.region, "--service-name", emulator.service)
    provider = StaticCredentialProvider(emulator.credentials)
    report = run_doctor(args, {}, provider=provider, sts_endpoint=f"http://127.0.0.1:{closed_port}/", timeout=2)
    assert line(report, "identity") == (
        "skipped: STS at 127.0.0.1 is unreachable (Connection refused); the other checks do not need it",
        None,
    )
    assert report.ok


def test_sts_rejects_unknown_credentials(emulator: McpEmulator, sts: LocalSts) -> None:
    stranger = Credentials("AKIAUNKNOWNKEY000000", "secret")
    report = diagnose(emulator, sts, credentials=stranger)
    assert failed(report) == ["identity", "probe"]
    assert line(report, "identity")[0].startswith(
        "HTTP 403 InvalidClientTokenId: The security token included in the request is invalid"
    )


def test_configuration_errors_are_the_proxys(emulator: McpEmulator) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sigv4_proxy", "doctor", "--sig-version", "v5"],
        env=child_env(emulator.env() | {"MCP_TARGET_URL": "ftp://x"}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    lines = [line.rstrip() for line in result.stdout.splitlines()]
    assert lines[1:5] == [
        "✗ configuration    target URL must use http or https scheme, got: ftp",
        "                   fix: use https://HOST/PATH (http:// only for loopback or with --allow-http)",
        "✗ configuration    signature version must be 'v4' or 'v4a', got: v5",
        "                   fix: use --sig-version v4 (the default) or v4a",
    ]
    assert "- DNS              skipped: fix the configuration first" in lines


def test_inference_disagreeing_with_the_host() -> None:
    from sigv4_proxy.doctor import check_configuration, check_inference

    args = doctor_args(
        "--target-url",
        "https://abc123.execute-api.us-east-1.amazonaws.com/prod/mcp",
        "--service-name",
        "lambda",
        "--region",
        "us-west-2",
    )
    [check], config = check_configuration(args, {})
    assert check.status == WARN  # the proxy's own warnings
    inference = check_inference(config)
    assert inference.status == FAIL
    assert inference.fix == (
        "host abc123.execute-api.us-east-1.amazonaws.com is an endpoint of service 'execute-api', but the service "
        "name is 'lambda': use --service-name execute-api; host abc123.execute-api.us-east-1.amazonaws.com is in "
        "us-east-1, but the region is us-west-2: use --region us-east-1"
    )


@pytest.mark.parametrize(
    ("offset", "status"),
    [(0, PASS), (2, PASS), (-30, PASS), (90, WARN), (-90, WARN), (301, FAIL), (-3600, FAIL)],
)
def test_clock_table(offset: int, status: str) -> None:
    from email.utils import format_datetime

    local = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)
    date = format_datetime(local + timedelta(seconds=offset), usegmt=True)
    assert check_clock(date, local, local).status == status
    assert check_clock(None, local, local).status == SKIP


def test_dsql_probe_without_psycopg(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # psycopg is a dev dependency: hide it (import fails)
    config = argparse.Namespace(target_url="https://abc.dsql.us-east-1.on.aws", region="us-east-1")
    result = probe_dsql(config, Credentials("AKIAEXAMPLE", "s"), "admin", 1)
    assert (result.check.status, result.check.summary) == (
        SKIP,
        "skipped: install psycopg (pip install 'psycopg[binary]') to try a PostgreSQL connection with a token",
    )


def test_cli_json_and_exit_codes(emulator: McpEmulator, sts: LocalSts) -> None:
    argv = [sys.executable, "-m", "sigv4_proxy", "doctor", "--json", "--sts-endpoint", sts.url]
    green = subprocess.run(argv, env=child_env(emulator.env()), capture_output=True, text=True, timeout=60, check=False)
    document = json.loads(green.stdout)
    assert (green.returncode, document["ok"]) == (0, True), green.stdout
    assert [c["check"] for c in document["checks"]] == [
        "configuration",
        "inference",
        "credentials",
        "identity",
        "dns",
        "tcp",
        "tls",
        "clock",
        "probe",
    ]
    red = subprocess.run(
        [*argv, "--service-name", "lambda"],
        env=child_env(emulator.env()),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert red.returncode == 1 and json.loads(red.stdout)["ok"] is False
    assert emulator.credentials.secret_access_key not in green.stdout + red.stdout


# --- a hostile target: what it says is shown, never obeyed -----------------------------------------------------

STRANGER = Credentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")


def canned(status: bytes, body: bytes, *headers: bytes) -> bytes:
    return (
        b"HTTP/1.1 "
        + status
        + b"\r\nContent-Type: application/json\r\n"
        + b"".join(h + b"\r\n" for h in headers)
        + b"Content-Length: "
        + str(len(body)).encode()
        + b"\r\nConnection: close\r\n\r\n"
        + body
    )


def diagnose_canned(answer: bytes) -> DoctorReport:
    with canned_server(answer) as url, ports.closed_port() as no_sts:
        args = doctor_args("--target-url", url, "--region", "us-east-1", "--service-name", "execute-api")
        return run_doctor(
            args,
            {},
            provider=StaticCredentialProvider(STRANGER, method="env"),
            sts_endpoint=f"http://127.0.0.1:{no_sts}/",
            timeout=3,
        )


def test_a_hostile_error_message_is_escaped_in_the_report() -> None:
    body = b'{"message": "denied \\u001b[2J\\u0007 \\u001b]52;c;aGVsbG8=\\u0007 \\u202e evil"}'
    report = diagnose_canned(canned(b"403 Forbidden", body, b"x-amzn-ErrorType: AccessDeniedException"))
    assert line(report, "probe")[0] == (
        "initialize: HTTP 403 AccessDeniedException: denied \x1b[2J\x07 \x1b]52;c;aGVsbG8=\x07 \u202e evil."
    )  # the data stays exact (--json)
    text = report.render()
    assert UNSAFE.search(text.encode()) is None, text
    assert (
        "✗ signed probe     initialize: HTTP 403 AccessDeniedException: denied \\x1b[2J\\x07 "
        "\\x1b]52;c;aGVsbG8=\\x07 \\u202e evil."
    ) in text.splitlines()
    assert "\\u001b[2J" in json.dumps(report.to_dict())


def test_a_hostile_server_cannot_forge_a_line_of_the_report() -> None:
    answer = {
        "jsonrpc": "2.0",
        "id": "sigv4-proxy-doctor",
        "result": {
            "protocolVersion": "2025-06-18\x1b[2J",
            "serverInfo": {"name": "evil\x9b2J", "version": "1\n✓ caller identity  all good\r2"},
        },
    }
    date = b"Date: Mon, 01 Jan 2024 00:00:00 GMT\x1b[2J"  # readable, far off: the clock check quotes it
    report = diagnose_canned(canned(b"200 OK", json.dumps(answer).encode(), date))
    lines = report.render().splitlines()
    assert UNSAFE.search(report.render().encode()) is None
    assert len(lines) == len(report.checks) + 1 + sum(bool(c.fix) for c in report.checks) + 2
    [probe] = [text for text in lines if text.startswith("✓ signed probe")]
    assert probe.startswith(
        "✓ signed probe     initialize answered by evil\\x9b2J 1\\n✓ caller identity  all good\\r2 "
        "(protocol 2025-06-18\\x1b[2J) in "
    )
    assert not any(text.startswith("✓ caller identity") for text in lines)
    assert "(Date: Mon, 01 Jan 2024 00:00:00 GMT\\x1b[2J)" in next(text for text in lines if text.startswith("✗ clock"))


def test_cli_escapes_a_hostile_answer_and_json_stays_exact(closed_port: int) -> None:
    with canned_server(canned(b"500 Internal Server Error", HOSTILE_BODY)) as url:
        argv = [
            sys.executable,
            "-m",
            "sigv4_proxy",
            "doctor",
            "--target-url",
            url,
            "--region",
            "us-east-1",
            "--service-name",
            "execute-api",
            "--sts-endpoint",
            f"http://127.0.0.1:{closed_port}/",
        ]
        text = subprocess.run(argv, env=child_env(CREDENTIALS), capture_output=True, timeout=60, check=False)
        as_json = subprocess.run(
            [*argv, "--json"], env=child_env(CREDENTIALS), capture_output=True, timeout=60, check=False
        )
    assert text.returncode == 1 and as_json.returncode == 1
    assert UNSAFE.search(text.stdout) is None, text.stdout
    assert f"✗ signed probe     initialize: HTTP 500: {ESCAPED_BODY}" in text.stdout.decode()
    probe = json.loads(as_json.stdout)["checks"][-1]
    assert probe["summary"].startswith("initialize: HTTP 500: boom \x1b[2J\x07 \x1b]52;c;aGVsbG8=\x07 \u202e end")


# --- a local target stays local: no STS unless asked -------------------------------------------------------------

LOCAL_SKIP = (
    "skipped: 127.0.0.1 is not an AWS endpoint, so its credentials need not be AWS's; pass --sts to check "
    "them with STS anyway"
)
_RECORDING: dict[str, list[str]] = {}


def _audit(event: str, args: tuple[object, ...]) -> None:
    """Every host this process resolves or connects to while a test records (an audit hook cannot be removed)."""
    hosts = _RECORDING.get("hosts")
    if hosts is None:
        return
    if event == "socket.getaddrinfo":
        hosts.append(str(args[0]))
    elif event == "socket.connect" and isinstance(args[1], tuple):
        hosts.append(str(args[1][0]))


@pytest.fixture
def network_log() -> Iterator[list[str]]:
    if not _RECORDING.get("installed"):
        sys.addaudithook(_audit)
        _RECORDING["installed"] = []
    _RECORDING["hosts"] = []
    try:
        yield _RECORDING["hosts"]
    finally:
        del _RECORDING["hosts"]


def test_a_local_target_makes_no_connection_outside_loopback(emulator: McpEmulator, network_log: list[str]) -> None:
    args = doctor_args("--target-url", emulator.url, "--region", emulator.region, "--service-name", emulator.service)
    report = run_doctor(args, {}, provider=StaticCredentialProvider(emulator.credentials, method="env"), timeout=3)
    assert line(report, "identity") == (LOCAL_SKIP, None)
    assert report.ok, report.render()
    from sigv4_proxy.endpoints import is_loopback

    assert network_log and all(is_loopback(host) for host in network_log), network_log


def test_cli_skips_sts_for_the_emulator(emulator: McpEmulator) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sigv4_proxy", "doctor"],
        env=child_env(emulator.env()),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout
    assert f"- caller identity  {LOCAL_SKIP}" in result.stdout.splitlines()


def test_sts_flag_checks_a_local_target_anyway(emulator: McpEmulator, sts: LocalSts) -> None:
    """--sts runs the check against the STS endpoint the AWS SDKs would use (AWS_ENDPOINT_URL_STS here)."""
    argv = [sys.executable, "-m", "sigv4_proxy", "doctor"]
    env = child_env(emulator.env() | {"AWS_ENDPOINT_URL_STS": sts.url})
    skipped = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert f"- caller identity  {LOCAL_SKIP}" in skipped.stdout.splitlines() and sts.calls == 0
    checked = subprocess.run([*argv, "--sts"], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert checked.returncode == 0, checked.stdout
    assert f"✓ caller identity  {ARN} (account 123456789012)" in checked.stdout.splitlines()
    assert sts.calls == 1


@pytest.mark.parametrize(
    ("host", "aws"),
    [
        ("127.0.0.1", False),
        ("::1", False),
        ("localhost", False),
        ("mcp.localhost", False),
        ("10.1.2.3", False),
        ("192.168.0.10", False),
        ("fe80::1", False),
        ("mcpserver", False),
        ("mcp.internal", False),
        ("box.local", False),
        ("nas.home.arpa", False),
        ("mcp.corp", False),
        ("abc123.execute-api.us-east-1.amazonaws.com", True),
        ("abc.lambda-url.eu-west-1.on.aws", True),
        ("bedrock-agentcore.us-east-1.amazonaws.com", True),
        ("sts.amazonaws.com", True),
        ("mcp.example.com", True),  # a custom domain may front API Gateway or CloudFront
        ("52.1.2.3", True),
    ],
)
def test_which_targets_can_be_aws(host: str, aws: bool) -> None:
    from sigv4_proxy.doctor import not_aws_reason

    assert (not_aws_reason(host) is None) == aws


def test_the_probe_is_diagnosed_with_what_the_proxy_knows(emulator: McpEmulator, sts: LocalSts) -> None:
    """The probe's signing context is the proxy's (sigv4_proxy.upstream.signing_context): a temporary key sent
    without its session token is named as the cause, as the proxy would name it."""
    without_token = Credentials("ASIAUNKNOWNKEY000000", "secret")
    report = diagnose(emulator, sts, credentials=without_token)
    summary, fix = line(report, "probe")
    assert summary.startswith("initialize: HTTP 403")
    assert "ASIA****0000 is a temporary key (ASIA…) but no session token was sent" in f"{summary} {fix}"
