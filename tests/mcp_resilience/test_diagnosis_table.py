"""The diagnosis table through the proxy: each AWS error shape ``emulate mcp`` produces -> the exact JSON-RPC
error the MCP client reads (code -32000, the message with the cause and the fix, machine-readable data).

Signing mistakes are judged by the emulator's verifier (the real ``verify()``); the other shapes are its
fault injection, answered the way API Gateway / AgentCore answer. ``--retries 0`` keeps the transient rows
to one attempt (the retrying itself is tested in test_faults.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from sigv4_proxy.emulate.credentials import generate_credentials
from sigv4_proxy.emulate.faults import Match

from .helpers import call, error_of, exchange, initialize_message, resilient_proxy

if TYPE_CHECKING:
    from sigv4_proxy.emulate import McpEmulator

ECHO = Match(tool="echo")
SIGNATURE_MISMATCH = (
    "HTTP 403 InvalidSignatureException: The request signature we calculated does not match the signature you "
    "provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for "
    "details. Diagnosis: host 127.0.0.1 does not tell its service and region: check that 'execute-api' and "
    "'us-east-1' are the endpoint's; otherwise the secret key does not belong to access key {key} (check "
    "AWS_SECRET_ACCESS_KEY or the profile's credentials; `aws sts get-caller-identity` tests them), or something "
    "between us and the server changed the request (path, host or headers)"
)


def masked(key: str) -> str:
    return f"{key[:4]}****{key[-4:]}"


async def initialize_error(emulator: McpEmulator, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    async with resilient_proxy(emulator, *args, env=env) as proxy:
        error = error_of(await exchange(proxy, initialize_message(1)))
        assert await proxy.close() == 0
    return error


async def test_signing_mistakes_judged_by_the_verifier(emulator: McpEmulator) -> None:
    key = emulator.credentials.access_key_id
    error = await initialize_error(emulator, "--service-name", "lambda")
    assert error == {
        "code": -32000,
        "message": "HTTP 403 InvalidSignatureException: Credential should be scoped to correct service: "
        "'execute-api'. Diagnosis: signed for service 'lambda' but the server expects 'execute-api': use "
        "--service-name execute-api",
        "data": {"kind": "wrong_service", "retryable": False, "status": 403, "errorType": "InvalidSignatureException"},
    }

    error = await initialize_error(emulator, "--region", "eu-west-1")
    assert error["message"] == (
        "HTTP 403 InvalidSignatureException: Credential should be scoped to a valid region, not 'eu-west-1'. "
        "Diagnosis: the endpoint is not in region 'eu-west-1': use --region REGION with the endpoint's region (AWS "
        "host names carry it, e.g. abc123.execute-api.REGION.amazonaws.com; for a custom domain, the region of the "
        "API behind it)"
    )
    assert error["data"]["kind"] == "wrong_region"

    error = await initialize_error(emulator, env={"AWS_SECRET_ACCESS_KEY": "not-the-secret-" * 3})
    assert error["message"] == SIGNATURE_MISMATCH.format(key=masked(key))
    assert error["data"]["kind"] == "signature_mismatch"

    error = await initialize_error(emulator, env={"AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE"})
    assert error["message"] == (
        "HTTP 403 UnrecognizedClientException: The security token included in the request is invalid. Diagnosis: "
        "AWS does not recognise access key AKIA****MPLE: the key was deleted or deactivated, the key belongs to "
        "another partition (China, GovCloud), or region us-east-1 is not enabled for the account; check with `aws "
        "sts get-caller-identity`"
    )
    assert error["data"]["kind"] == "invalid_token"

    temporary = generate_credentials(session_token=True)
    emulator.accept(temporary)
    env = {"AWS_ACCESS_KEY_ID": temporary.access_key_id, "AWS_SECRET_ACCESS_KEY": temporary.secret_access_key}
    error = await initialize_error(emulator, env=env)  # the session token was left out
    assert error["message"] == (
        "HTTP 403 UnrecognizedClientException: The security token included in the request is invalid. Diagnosis: "
        f"access key {masked(temporary.access_key_id)} is a temporary key (ASIA…) but no session token was sent: "
        "set AWS_SESSION_TOKEN (or aws_session_token in the profile) together with the key"
    )
    assert error["data"]["kind"] == "missing_session_token"

    emulator.expire_credentials(temporary.access_key_id)
    error = await initialize_error(emulator, env={**env, "AWS_SESSION_TOKEN": temporary.session_token or ""})
    assert error["message"] == (
        "HTTP 403 ExpiredTokenException: The security token included in the request is expired. Diagnosis: the "
        "temporary credentials in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN have expired and "
        "environment credentials cannot refresh: export fresh ones and restart, or use a profile that refreshes "
        "itself (SSO, role_arn + source_profile, credential_process) (not retried: credentials from the "
        "environment cannot be refreshed, the same keys would fail again)"
    )
    assert error["data"] == {
        "kind": "expired_token",
        "retryable": False,
        "status": 403,
        "errorType": "ExpiredTokenException",
    }

    error = await initialize_error(emulator, "--target-url", emulator.base_url + "/nope")
    assert error["message"] == (
        "HTTP 404: Not Found. Diagnosis: nothing at /nope on 127.0.0.1: check the target URL's path (MCP servers "
        "usually serve /mcp, legacy HTTP+SSE ones GET /sse and POST /messages/; API Gateway needs the stage, e.g. "
        "/prod/mcp; AgentCore /runtimes/<url-encoded ARN>/invocations). For an MCP request with a session id, the "
        "server has forgotten the session"
    )


Fault = Callable[[Any], object]

FAULTS: list[tuple[str, Fault, str, dict[str, Any]]] = [
    (
        "iam-deny",
        lambda e: e.deny_next(match=ECHO),
        "HTTP 403 AccessDeniedException: User: arn:aws:iam::123456789012:user/sigv4-proxy-emulator is not "
        "authorized to perform: execute-api:Invoke on resource: arn:aws:execute-api:us-east-1:********9012:emulator"
        "/prod/*. Diagnosis: missing IAM permission: allow execute-api:Invoke on arn:aws:execute-api:us-east-1:"
        "123456789012:emulator/prod/* for arn:aws:iam::123456789012:user/sigv4-proxy-emulator in the IAM policy "
        "(and the resource policy, if any)",
        {"kind": "access_denied", "retryable": False, "status": 403, "errorType": "AccessDeniedException"},
    ),
    (
        "throttled",
        lambda e: e.throttle_next(retry_after=None, match=ECHO),
        "HTTP 429 TooManyRequestsException: Too Many Requests. Diagnosis: the server is throttling requests: not "
        "retried; if it persists, lower the request rate or ask for a higher quota (--retries is 0)",
        {"kind": "throttled", "retryable": True, "status": 429, "errorType": "TooManyRequestsException"},
    ),
    (
        "cold-start",
        lambda e: e.fail_next(424, match=ECHO),
        "HTTP 424. Diagnosis: the backend is not ready (Bedrock AgentCore answers 424 while a runtime cold-starts "
        "or when its container fails): not retried; if it persists, check the runtime's CloudWatch logs "
        "(--retries is 0)",
        {"kind": "cold_start", "retryable": True, "status": 424},
    ),
    (
        "bad-gateway",
        lambda e: e.fail_next(502, match=ECHO),
        "HTTP 502. Diagnosis: the gateway could not get a valid answer from the backend (502/503; restarting, "
        "overloaded, or a malformed backend response): not retried; if it persists, check the backend's logs "
        "(--retries is 0)",
        {"kind": "unavailable", "retryable": True, "status": 502},
    ),
    (
        "service-unavailable",
        lambda e: e.fail_next(503, error_type="ServiceUnavailableException", match=ECHO),
        "HTTP 503 ServiceUnavailableException: Service Unavailable. Diagnosis: the service is temporarily "
        "unavailable: not retried (--retries is 0)",
        {"kind": "unavailable", "retryable": True, "status": 503, "errorType": "ServiceUnavailableException"},
    ),
    (
        "gateway-timeout",
        lambda e: e.fail_next(504, match=ECHO),
        "HTTP 504. Diagnosis: the gateway gave up waiting for the backend (504; API Gateway's limit is 29 s by "
        "default); the backend may still have run the request, so it is only resent when that is safe; check the "
        "backend's duration and logs (not resent: the server may have started executing the request)",
        {"kind": "gateway_timeout", "retryable": True, "status": 504},
    ),
    (
        "server-error",
        lambda e: e.fail_next(500, match=ECHO),
        "HTTP 500. Diagnosis: the server failed while handling the request: it may have been executed, so it was "
        "not resent; check the server's logs",
        {"kind": "server_error", "retryable": False, "status": 500},
    ),
    (
        "not-iam",
        lambda e: e.fail_next(401, match=ECHO),
        "HTTP 401. Diagnosis: the server asks for a different kind of authentication (401; e.g. an OAuth bearer "
        "token or a Cognito authorizer), not IAM: check that the endpoint uses AWS_IAM authorization",
        {"kind": "unauthorized", "retryable": False, "status": 401},
    ),
    (
        "forbidden",
        lambda e: e.fail_next(403, error_type="ForbiddenException", body={"message": "Forbidden"}, match=ECHO),
        "HTTP 403 ForbiddenException: Forbidden. Diagnosis: API Gateway answered 'Forbidden' without naming a "
        "permission: the stage may require an API key (send it with --headers x-api-key=KEY), a private API was "
        "called outside its VPC endpoint, a WAF rule blocked the request, or the path does not exist on a custom "
        "domain mapping",
        {"kind": "forbidden", "retryable": False, "status": 403, "errorType": "ForbiddenException"},
    ),
    (
        "missing-auth",
        lambda e: e.fail_next(
            403,
            error_type="MissingAuthenticationTokenException",
            body={"message": "Missing Authentication Token"},
            match=ECHO,
        ),
        "HTTP 403 MissingAuthenticationTokenException: Missing Authentication Token. Diagnosis: API Gateway answers "
        "this both for unsigned requests and for a path or method the API does not define: check the target URL's "
        "path (stage name included, e.g. /prod/mcp) and the method",
        {"kind": "missing_auth", "retryable": False, "status": 403, "errorType": "MissingAuthenticationTokenException"},
    ),
    (
        "too-large",
        lambda e: e.fail_next(413, match=ECHO),
        "HTTP 413. Diagnosis: the request body is over the endpoint's limit (API Gateway: 10 MB, Lambda function "
        "URLs: 6 MB): send less per request",
        {"kind": "payload_too_large", "retryable": False, "status": 413},
    ),
]


@pytest.mark.parametrize("fault", [row[0] for row in FAULTS])
async def test_error_shapes(emulator: McpEmulator, fault: str) -> None:
    _, inject, message, data = next(row for row in FAULTS if row[0] == fault)
    async with resilient_proxy(emulator, "--retries", "0") as proxy:
        await proxy.initialize()
        inject(emulator)
        error = error_of(await exchange(proxy, call(fault, "echo", {"message": "x"})))
        assert error == {"code": -32000, "message": message, "data": data}
        assert await proxy.close() == 0
    assert f'tools/call id="{fault}" failed: {message}' in proxy.stderr
    assert emulator.executions.count(fault) == 0
