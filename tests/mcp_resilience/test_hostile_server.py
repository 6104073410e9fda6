"""The hostile upstream fixture (:mod:`tests.support.hostile`) does what its documentation says, with a plain
httpx client, so that tests built on it prove what they claim."""

from __future__ import annotations

import gzip
import json
import time
from typing import Any

import httpx
import pytest

from tests.support.hostile import MODES, HostileServer, Record

SIZE = 256 * 1024


def rpc(message_id: Any, method: str, **params: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": message_id, "method": method, "params": params}


def all_finished(server: HostileServer) -> list[Record]:
    """The records, once the server is done with each (a client can have a whole body before that)."""
    server.wait_for(lambda _: all(record.finished for record in server.records))
    return server.records


def test_normal_mode_speaks_enough_mcp() -> None:
    with HostileServer() as server, httpx.Client(timeout=5) as client:
        initialized = client.post(server.url, json=rpc(1, "initialize", protocolVersion="2025-03-26"))
        assert initialized.headers["mcp-session-id"] == "hostile-session"
        assert initialized.json()["result"]["protocolVersion"] == "2025-03-26"
        notification = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        assert client.post(server.url, json=notification).status_code == 202
        echo = client.post(server.url, json=rpc(2, "tools/call", name="echo", arguments={"message": "hi"}))
        assert echo.json() == {
            "jsonrpc": "2.0",
            "id": 2,
            "result": {"content": [{"type": "text", "text": "hi"}], "isError": False},
        }
        tools = client.post(server.url, json=rpc(3, "tools/list")).json()["result"]["tools"]
        assert [tool["name"] for tool in tools] == ["echo", *MODES[1:]]
        assert (client.get(server.url).status_code, client.delete(server.url).status_code) == (405, 200)
        assert [record.rpc_id for record in server.records if record.method == "POST"] == [1, None, 2, 3]
        assert all(record.completed for record in all_finished(server))


def test_each_hostile_answer_has_the_promised_shape() -> None:
    with HostileServer(size=SIZE) as server, httpx.Client(timeout=5) as client:
        huge = client.post(server.url, json=rpc("a", "tools/call", name="huge_json")).json()
        assert len(huge["result"]["content"][0]["text"]) == SIZE
        with client.stream("POST", server.url, json=rpc("b", "tools/call", name="gzip_bomb")) as bomb:
            assert bomb.headers["content-encoding"] == "gzip"
            raw = b"".join(bomb.iter_raw())
        assert len(raw) < SIZE // 100 and len(json.loads(gzip.decompress(raw))["result"]["content"][0]["text"]) == SIZE
        line = client.post(server.url, json=rpc("c", "tools/call", name="huge_sse_line"))
        assert line.headers["content-type"] == "text/event-stream"
        assert line.text.startswith("event: message\ndata: {") and line.text.count("\n") == 3
        duplicates = client.post(server.url, json=rpc("d", "tools/call", name="duplicate_ids")).json()
        assert duplicates == [{"jsonrpc": "2.0", "id": "d", "result": {"n": n}} for n in (1, 2)]
        assert all(record.completed and not record.client_closed for record in all_finished(server))


def test_endless_and_silent_answers_record_that_the_client_hung_up() -> None:
    with HostileServer(interval=0.01) as server, httpx.Client(timeout=5) as client:
        with client.stream("POST", server.url, json=rpc("e", "tools/call", name="endless_sse")) as stream:
            events = 0
            for line in stream.iter_lines():
                events += line.startswith("data: ")
                if events == 5:
                    break
        endless = server.wait_for(lambda record: record.rpc_id == "e" and record.finished)
        assert endless.client_closed and not endless.completed and endless.bytes_sent > 0
        with pytest.raises(httpx.ReadTimeout):
            client.post(server.url, json=rpc("n", "tools/call", name="never_answers"), timeout=0.3)
        silent = server.wait_for(lambda record: record.rpc_id == "n" and record.finished)
        assert silent.client_closed and silent.bytes_sent == 0


def test_the_mode_comes_from_the_path_then_the_tool_then_the_default() -> None:
    with HostileServer(mode="duplicate_ids", size=SIZE) as server, httpx.Client(timeout=5) as client:
        assert len(client.get(server.url_for("huge_json")).content) > SIZE  # any method, any body
        tool = client.post(server.url, json=rpc(1, "tools/call", name="huge_json")).json()
        assert len(tool["result"]["content"][0]["text"]) == SIZE
        assert len(client.post(server.url, json=rpc(2, "tools/call", name="echo")).json()) == 2  # not a mode
        server.mode = "normal"
        assert client.post(server.url, json=rpc(3, "ping")).json() == {"jsonrpc": "2.0", "id": 3, "result": {}}
        with pytest.raises(ValueError, match="unknown mode"):
            HostileServer(mode="polite")


@pytest.mark.parametrize("gzip_streams", [False, True])
def test_legacy_answers_arrive_on_the_event_stream(gzip_streams: bool) -> None:
    with (
        HostileServer(legacy=True, size=SIZE, gzip_streams=gzip_streams) as server,
        httpx.Client(timeout=5) as client,
        client.stream("GET", server.url) as stream,
    ):
        assert (stream.headers.get("content-encoding") == "gzip") is gzip_streams
        lines = stream.iter_lines()
        assert next(lines) == "event: endpoint"
        path = next(lines).removeprefix("data: ")
        assert path.startswith("/messages/?session_id=")
        endpoint = f"http://127.0.0.1:{server.port}{path}"
        for message_id, tool in (("x", "echo"), ("y", "huge_json")):
            assert client.post(endpoint, json=rpc(message_id, "tools/call", name=tool)).status_code == 202
            data = next(line for line in lines if line.startswith("data: "))
            assert json.loads(data[6:])["id"] == message_id
        assert len(data) > SIZE
        assert client.post(endpoint + "x", json=rpc(1, "ping")).status_code == 404  # an unknown session


def test_stop_ends_endless_answers_at_once() -> None:
    server = HostileServer().start()
    client = httpx.Client(timeout=5)
    with client.stream("POST", server.url, json=rpc(1, "tools/call", name="endless_sse")) as stream:
        next(stream.iter_lines())
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 2
    client.close()
