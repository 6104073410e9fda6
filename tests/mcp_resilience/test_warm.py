"""``--warm``: ``initialize`` answered from the last successful answer cached for the target, while the real
one completes behind it (for backends whose cold start outlasts the client's initialize time limit)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from sigv4_proxy.emulate.faults import Match

from .helpers import call, exchange, initialize_message, log_lines, resilient_proxy

if TYPE_CHECKING:
    from sigv4_proxy.emulate import McpEmulator

INITIALIZE = Match(rpc_method="initialize")


def cache_env(tmp_path: Path) -> dict[str, str]:
    return {"SIGV4_PROXY_CACHE_DIR": str(tmp_path / "cache")}


async def test_cached_answer_first_real_session_behind_it(emulator: McpEmulator, tmp_path: Path) -> None:
    env = cache_env(tmp_path)
    async with resilient_proxy(emulator, "--warm", env=env) as proxy:  # nothing cached yet: the real answer
        first = await exchange(proxy, initialize_message(1))
        assert await proxy.close() == 0
    assert log_lines(proxy.stderr, "warm start: no cached initialize answer for this target yet")
    [cached] = (tmp_path / "cache" / "warm").glob("*.json")
    entry = json.loads(cached.read_text())
    assert entry["target"] == emulator.url and entry["protocolVersion"] == "2025-06-18"
    assert entry["result"] == first["result"]

    emulator.delay_next(3, match=INITIALIZE)  # a cold start: the real initialize takes 3 s
    seen = len(emulator.requests)
    async with resilient_proxy(emulator, "--warm", env=env) as proxy:
        answer = await exchange(proxy, initialize_message("warm"))
        # answered before the server even started answering the real initialize
        assert not [record for record in emulator.requests[seen:] if record.rpc == "initialize"]
        assert answer == {"jsonrpc": "2.0", "id": "warm", "result": first["result"]}
        await proxy.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        echoed = await exchange(proxy, call(2, "echo", {"message": "after the real initialize"}), timeout=30)
        assert echoed["result"]["content"][0]["text"] == "after the real initialize"
        assert await proxy.close() == 0
    rpc = [record.rpc for record in emulator.requests[seen:] if record.method == "POST"]
    assert rpc[:3] == ["initialize", "notifications/initialized", "tools/call echo"]  # in order, once each
    assert log_lines(proxy.stderr, r"INFO  warm start: answered initialize from the answer cached \d{4}-\d\d-\d\dT")


async def test_failed_real_initialize_is_rerun_by_the_next_request(emulator: McpEmulator, tmp_path: Path) -> None:
    env = cache_env(tmp_path)
    async with resilient_proxy(emulator, "--warm", env=env) as proxy:
        await exchange(proxy, initialize_message(1))
        assert await proxy.close() == 0

    emulator.fail_next(424, match=INITIALIZE)  # still cold: the real initialize fails (no retries here)
    seen = len(emulator.requests)
    async with resilient_proxy(emulator, "--warm", "--retries", "0", env=env) as proxy:
        assert "result" in await exchange(proxy, initialize_message(1))  # the client is told it worked
        await proxy.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        listed = await exchange(proxy, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
        assert any(tool["name"] == "echo" for tool in listed["result"]["tools"])
        assert await proxy.close() == 0
    rpc = [(record.rpc, record.status) for record in emulator.requests[seen:] if record.method == "POST"]
    assert rpc == [
        ("initialize", 424),
        ("initialize", 200),  # re-run before the next request
        ("notifications/initialized", 202),  # once: the client's own is not sent a second time
        ("tools/list", 200),
    ]
    assert log_lines(proxy.stderr, r"WARNING warm start: the real initialize failed \(the next request tries again\)")
