"""Clock skew: the proxy's clock is 10 minutes off the server's (injected through the emulator's clock, which
verification and its ``Date`` header both use). The first request is refused ("Signature expired" / "not yet
current"); the proxy takes the offset from the ``Date`` header, retries once, and signs every later request
with the corrected time."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.mcp_proxy.harness import text_of

from .helpers import log_lines, resilient_client

if TYPE_CHECKING:
    from sigv4_proxy.emulate import McpEmulator


@pytest.mark.parametrize(
    ("server_offset", "direction"), [(600, "behind"), (-600, "ahead of")], ids=["proxy-behind", "proxy-ahead"]
)
async def test_ten_minutes_off_is_corrected_after_one_retry(
    emulator: McpEmulator, server_offset: int, direction: str
) -> None:
    emulator.clock_offset = server_offset
    seen = len(emulator.requests)
    stderr: list[str] = []
    async with resilient_client(emulator, stderr_sink=stderr) as client:
        for n in range(5):
            assert text_of(await client.call_tool("echo", {"message": f"on time {n}"})) == f"on time {n}"
    records = emulator.requests[seen:]
    refused = [record for record in records if not record.ok]
    assert len(refused) == 1 and refused[0].rpc == "initialize"  # one refusal, then every request signed right
    assert refused[0].reason == ("expired" if server_offset > 0 else "not_yet_valid")
    assert records[1].rpc == "initialize" and records[1].ok  # the one corrected retry
    log = stderr[0]
    expected = "Signature expired" if server_offset > 0 else "Signature not yet current"
    assert log_lines(
        log,
        rf"WARNING initialize id=\S+: HTTP 403 InvalidSignatureException: {expected}: .* — clock skew: "
        r"signing with the server's time and retrying once$",
    )
    # (the Date header has whole seconds: the measured offset is within a second of the real one)
    offsets = log_lines(
        log,
        rf"WARNING clock skew: local clock is (10 min|9 min 59 s|10 min 1 s) {direction} the "
        r"server's; "
        r"signing with the server's time \(offset [+-](599|600|601) s\)$",
    )
    assert len(offsets) == 1, log
    assert emulator.executions.duplicates() == {}
