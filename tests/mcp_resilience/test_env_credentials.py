"""Keys from the environment cannot be refreshed (issue 9 item 8): when the server says their token expired,
the stdio proxy says so and what to do, and neither pretends to refresh them nor resends with the same keys.
The proxy runs as a real subprocess in front of ``emulate mcp``, which expires the keys on request."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from sigv4_proxy.emulate.credentials import generate_credentials

from .helpers import call, error_of, exchange, initialize_message, log_lines, resilient_proxy

if TYPE_CHECKING:
    from sigv4_proxy.emulate import McpEmulator

NOT_REFRESHABLE = "not retried: credentials from the environment cannot be refreshed, the same keys would fail again"


def environment_keys(credentials: Any) -> dict[str, str]:
    env = {
        "AWS_ACCESS_KEY_ID": credentials.access_key_id,
        "AWS_SECRET_ACCESS_KEY": credentials.secret_access_key,
        "AWS_SESSION_TOKEN": credentials.session_token or "",
    }
    if "PYTHONPATH" in os.environ:  # the same code in the child (runs against a base tree set it)
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return env


async def test_expired_environment_keys_fail_once_with_what_to_do(emulator: McpEmulator) -> None:
    temporary = generate_credentials(session_token=True)
    emulator.accept(temporary)
    async with resilient_proxy(emulator, env=environment_keys(temporary)) as proxy:
        assert "result" in await exchange(proxy, initialize_message(1))
        emulator.expire_credentials(temporary.access_key_id)
        error = error_of(await exchange(proxy, call(2, "echo", {"message": "after expiry"})))
        assert await proxy.close() == 0
    calls = [(r.status, r.verdict) for r in emulator.requests if r.rpc == "tools/call echo"]
    assert calls == [(403, "ExpiredTokenException")]  # not resent with the same keys
    assert error["message"].startswith(
        "HTTP 403 ExpiredTokenException: The security token included in the request is expired. Diagnosis: "
    )
    assert "AWS_SESSION_TOKEN" in error["message"]  # the diagnosis names where the keys come from
    assert error["message"].endswith(f" ({NOT_REFRESHABLE})")
    assert error["data"] == {
        "kind": "expired_token",
        "retryable": False,
        "status": 403,
        "errorType": "ExpiredTokenException",
    }
    assert not log_lines(proxy.stderr, r"credentials refreshed|refreshing the credentials|still expired after"), (
        proxy.stderr
    )
    assert log_lines(proxy.stderr, rf"WARNING tools/call id=2 failed: .*\({NOT_REFRESHABLE}\)$")
