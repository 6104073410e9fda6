"""`emulate mcp --sigv4a accept|require|reject` (library: ``start_mcp(sigv4a=...)``): a service that takes only one
signature algorithm refuses the other the way AWS's own services do, and the proxy's diagnosis says which
``--sig-version`` to use instead.

AWS's wording (API Gateway, Lambda and the other "coral" services, which check the algorithm before the
credential scope): 403 ``IncompleteSignatureException`` "Unsupported AWS 'algorithm': 'AWS4-ECDSA-P256-SHA256'
(only AWS4-HMAC-SHA256 for now). ".
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import httpx
import pytest

from sigv4_proxy import Credentials, SigV4Auth
from sigv4_proxy.emulate import McpEmulator, start_mcp
from sigv4_proxy.signing.model import V4, V4A
from tests.mcp_proxy.harness import initialize_message, raw_proxy

from .helpers import emulate, initialize_body

HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
REFUSED_V4A = "Unsupported AWS 'algorithm': 'AWS4-ECDSA-P256-SHA256' (only AWS4-HMAC-SHA256 for now). "
REFUSED_V4 = "Unsupported AWS 'algorithm': 'AWS4-HMAC-SHA256' (only AWS4-ECDSA-P256-SHA256 for now). "


def signed_post(url: str, credentials: Credentials, region: str, service: str, algorithm: str) -> httpx.Response:
    scope: str | list[str] = [region] if algorithm == "v4a" else region
    auth = SigV4Auth(credentials, scope, service, algorithm=algorithm)
    return httpx.post(url, content=initialize_body(), headers=HEADERS, auth=auth, timeout=10)


def post(emulator: McpEmulator, algorithm: str) -> httpx.Response:
    return signed_post(emulator.url, emulator.credentials, emulator.region, emulator.service, algorithm)


# policy, signed with, expected status, expected message (None: accepted), log reason
POLICY_TABLE = [
    ("accept", "v4", 200, None, "ok"),
    ("accept", "v4a", 200, None, "ok"),
    ("reject", "v4", 200, None, "ok"),
    ("reject", "v4a", 403, REFUSED_V4A, "sigv4a_rejected"),
    ("require", "v4", 403, REFUSED_V4, "sigv4a_required"),
    ("require", "v4a", 200, None, "ok"),
]


@pytest.mark.parametrize(("policy", "algorithm", "status", "message", "reason"), POLICY_TABLE)
def test_policy_decides_by_algorithm_with_awss_refusal(
    emulator: McpEmulator, policy: str, algorithm: str, status: int, message: str | None, reason: str
) -> None:
    emulator.sigv4a = policy  # type: ignore[assignment]
    before = len(emulator.requests)
    response = post(emulator, algorithm)
    assert response.status_code == status, response.text
    record = emulator.wait_for_requests(before + 1)[before]
    assert record.reason == reason
    if message is None:
        return
    assert response.headers["x-amzn-ErrorType"] == "IncompleteSignatureException"
    assert response.json() == {"message": message}
    assert record.line().endswith(f"-> 403 IncompleteSignatureException ({reason})")


def test_the_policy_comes_before_the_credential_scope(emulator: McpEmulator) -> None:
    """As on AWS: a refused algorithm is said first, even when the region set is wrong too."""
    emulator.sigv4a = "reject"
    response = signed_post(emulator.url, emulator.credentials, "eu-west-1", emulator.service, "v4a")
    assert (response.status_code, response.json()) == (403, {"message": REFUSED_V4A})


def test_unsigned_requests_are_judged_as_before(emulator: McpEmulator) -> None:
    emulator.sigv4a = "require"
    response = httpx.post(emulator.url, content=initialize_body(), headers=HEADERS, timeout=10)
    assert response.status_code == 403
    assert response.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"


def test_presigned_urls_follow_the_policy(emulator: McpEmulator) -> None:
    from sigv4_proxy import presign

    emulator.sigv4a = "reject"
    presigned = presign(
        "POST",
        emulator.url,
        credentials=emulator.credentials,
        region=[emulator.region],
        service=emulator.service,
        algorithm="v4a",
        expires_in=60,
        body=initialize_body(),
    )
    response = httpx.post(presigned.url, content=initialize_body(), headers=HEADERS, timeout=10)
    assert (response.status_code, response.json()) == (403, {"message": REFUSED_V4A})


def test_start_mcp_takes_the_policy_and_refuses_unknown_ones() -> None:
    with start_mcp(sigv4a="require") as running:
        assert running.sigv4a == "require"
        assert post(running, "v4").status_code == 403
        assert post(running, "v4a").status_code == 200
    with pytest.raises(ValueError, match="sigv4a must be one of accept, require, reject, got: 'never'"):
        start_mcp(sigv4a="never")  # type: ignore[arg-type]


def test_algorithm_refusal_is_a_pure_decision() -> None:
    from sigv4_proxy.emulate.front import algorithm_refusal

    assert algorithm_refusal(V4, "reject") is None
    assert algorithm_refusal(None, "require") is None  # no algorithm: the verifier says what is missing
    refusal = algorithm_refusal(V4A, "reject")
    assert refusal is not None
    assert (refusal.status, json.loads(refusal.body)) == (403, {"message": REFUSED_V4A})
    assert ("x-amzn-ErrorType", "IncompleteSignatureException") in refusal.headers


# --- the CLI -----------------------------------------------------------------------------------------------


def test_cli_flag_json_and_refusal() -> None:
    with emulate("--json", "--sigv4a", "reject") as (_, first):
        info = json.loads(first)
        assert info["signatures"] == "SigV4 only (SigV4a requests are refused)"
        creds = Credentials(info["access_key_id"], info["secret_access_key"])
        refused = signed_post(info["url"], creds, info["region"], info["service"], "v4a")
        assert (refused.status_code, refused.json()) == (403, {"message": REFUSED_V4A})
        assert signed_post(info["url"], creds, info["region"], info["service"], "v4").status_code == 200


def test_cli_banner_names_a_restricted_policy_only() -> None:
    with emulate("--sigv4a", "require") as (process, first):
        lines = [first]
        assert process.stdout is not None
        while "Ctrl-C stops" not in lines[-1]:
            lines.append(process.stdout.readline())
    assert "  signing:  SigV4a only (SigV4 requests are refused)\n" in lines
    with emulate() as (process, first):
        lines = [first]
        assert process.stdout is not None
        while "Ctrl-C stops" not in lines[-1]:
            lines.append(process.stdout.readline())
    assert not any(line.startswith("  signing:") for line in lines)


def test_cli_choices_are_the_librarys_policies() -> None:
    from sigv4_proxy.cli.emulate import SIGV4A_CHOICES
    from sigv4_proxy.emulate.state import SIGV4A_POLICIES

    assert SIGV4A_CHOICES == SIGV4A_POLICIES


def test_cli_rejects_an_unknown_policy() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sigv4_proxy", "emulate", "mcp", "--sigv4a", "sometimes"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "argument --sigv4a: invalid choice: 'sometimes' (choose from 'accept', 'require', 'reject')" in done.stderr


# --- through the proxy: the MCP client reads which --sig-version to use ----------------------------------------


def child_env() -> dict[str, str]:
    """The proxy subprocess gets this test run's PYTHONPATH (so it runs the code under test)."""
    return {"PYTHONPATH": os.environ["PYTHONPATH"]} if os.environ.get("PYTHONPATH") else {}


async def initialize_error(emulator: McpEmulator, *args: str) -> dict[str, Any]:
    async with raw_proxy(emulator, "--retries", "0", *args, env=child_env()) as proxy:
        response = await proxy.request(initialize_message(1))
        assert await proxy.close() == 0
    assert "error" in response, response
    return response["error"]


PROXY_TABLE = [
    (
        "reject",
        ("--sig-version", "v4a"),
        "HTTP 403 IncompleteSignatureException: " + REFUSED_V4A.strip() + " Diagnosis: the server does not accept "
        "SigV4a (AWS4-ECDSA-P256-SHA256) signatures, it wants SigV4: use --sig-version v4",
    ),
    (
        "require",
        (),
        "HTTP 403 IncompleteSignatureException: " + REFUSED_V4.strip() + " Diagnosis: the server does not accept "
        "SigV4 (AWS4-HMAC-SHA256) signatures, it wants SigV4a: use --sig-version v4a",
    ),
]


@pytest.mark.parametrize(("policy", "args", "message"), PROXY_TABLE, ids=["v4a-to-v4-only", "v4-to-v4a-only"])
async def test_proxy_error_names_the_other_sig_version(
    emulator: McpEmulator, policy: str, args: tuple[str, ...], message: str
) -> None:
    emulator.sigv4a = policy  # type: ignore[assignment]
    error = await initialize_error(emulator, *args)
    assert error == {
        "code": -32000,
        "message": message,
        "data": {
            "kind": "unsupported_algorithm",
            "retryable": False,
            "status": 403,
            "errorType": "IncompleteSignatureException",
        },
    }


async def test_proxy_with_the_accepted_version_works(emulator: McpEmulator) -> None:
    emulator.sigv4a = "reject"
    async with raw_proxy(emulator, "--sig-version", "v4", env=child_env()) as proxy:
        response = await proxy.request(initialize_message(1))
        assert await proxy.close() == 0
    assert "result" in response, response
