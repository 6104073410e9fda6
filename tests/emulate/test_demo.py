"""`sigv4-proxy demo`: the README's first command, run as a user runs it (the real proxy subprocess, the
real MCP SDK client, the emulator), and its report rendering when something goes wrong."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import datetime, timezone

from sigv4_proxy.demo import DemoReport, Step, proxy_environment, render
from sigv4_proxy.emulate import RequestRecord, generate_credentials


def test_demo_exits_0_and_shows_every_step() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sigv4_proxy", "demo"], capture_output=True, text=True, timeout=120, check=False
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert re.search(
        r"^1\. Started a local endpoint that verifies SigV4 the way AWS does: http://127\.0\.0\.1:\d+/mcp$", out, re.M
    )
    assert re.search(r"throwaway credentials AKIA\*\*\*\*\w{4}$", out, re.M)
    assert re.search(
        r"sigv4-proxy --target-url http://127\.0\.0\.1:\d+/mcp --region us-east-1 --service-name execute-api$",
        out,
        re.M,
    )
    for step in ("initialize", "tools/list", "tools/call echo", "tools/call progress"):
        assert re.search(rf"^   ok   {re.escape(step)} ", out, re.M), step
    assert "'hello through sigv4-proxy'" in out
    assert "3 progress notifications (step 1 of 3, step 2 of 3, step 3 of 3), then 'done after 3 steps'" in out
    scope = r"AKIA\*\*\*\*\w{4}/\d{8}/us-east-1/execute-api/aws4_request"
    for rpc in ("initialize", "notifications/initialized", "tools/list", "tools/call echo", "tools/call progress"):
        assert re.search(rf"^    POST +/mcp +{re.escape(rpc)} +{scope} +signature ok, 20[02]$", out, re.M), rpc
    wrong = r"AKIA\*\*\*\*\w{4}/\d{8}/us-east-1/lambda/aws4_request"
    assert re.search(rf"^    POST +/mcp +initialize +{wrong} +403 InvalidSignatureException$", out, re.M)
    assert "HTTP 403 InvalidSignatureException: Credential should be scoped to correct service: 'execute-api'." in out
    assert "--service-name execute-api" in out.split("received this error")[1]
    assert out.rstrip().endswith(
        "sigv4-proxy --target-url https://<api-id>.execute-api.<region>.amazonaws.com/<stage>/mcp"
    )
    assert "AWS_SECRET_ACCESS_KEY" not in out and not re.search(r"AKIA[A-Z2-7]{16}", out)
    assert done.stderr == ""


def record(rpc: str, *, status: int = 200, verdict: str = "ok", service: str = "execute-api") -> RequestRecord:
    return RequestRecord(
        time=datetime.now(timezone.utc),
        method="POST",
        path="/mcp",
        scope=f"AKIA****ABCD/20250101/us-east-1/{service}/aws4_request",
        status=status,
        verdict=verdict,
        reason="ok" if verdict == "ok" else "scope_service",
        rpc=rpc,
    )


def test_a_failed_step_is_reported_and_not_ok() -> None:
    report = DemoReport(
        url="http://127.0.0.1:1/mcp",
        region="us-east-1",
        service="execute-api",
        steps=[Step("initialize", True, "server x"), Step("tools/call echo", False, "''")],
        requests=[record("initialize")],
        diagnosis="",
    )
    assert not report.ok
    text = render(report)
    assert "   FAIL tools/call echo  ''" in text
    assert "FAIL the MCP client received no error (the wrong configuration went unnoticed)" in text
    assert text.endswith("run with --verbose for the proxy's log.")


def test_refused_request_in_the_happy_path_is_not_ok() -> None:
    report = DemoReport(
        steps=[Step("initialize", True, "")],
        requests=[record("initialize", status=403, verdict="InvalidSignatureException")],
        diagnosis="HTTP 403 InvalidSignatureException",
        diagnosis_ok=True,
    )
    assert not report.ok


def test_verbose_adds_the_proxy_log() -> None:
    report = DemoReport(proxy_log="INFO  Proxy is ready to accept MCP protocol messages\n")
    assert "  INFO  Proxy is ready to accept MCP protocol messages" in render(report, verbose=True)
    assert "Proxy is ready" not in render(report)


def test_proxy_environment_is_hermetic() -> None:
    creds = generate_credentials(session_token=True)
    env = proxy_environment(creds)
    assert env["AWS_ACCESS_KEY_ID"] == creds.access_key_id
    assert env["AWS_SESSION_TOKEN"] == creds.session_token
    assert env["AWS_EC2_METADATA_DISABLED"] == "true"
    assert not {"AWS_PROFILE", "AWS_REGION", "MCP_TARGET_URL"} & set(env)
