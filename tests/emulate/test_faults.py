"""Fault injection: each knob behaves as documented on the wire (raw signed HTTP with the product's SigV4Auth),
plus the sans-IO pieces (fault plan, SSE event counting, request description) on their own."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from sigv4_proxy import SigV4Auth
from sigv4_proxy.emulate import Match, McpEmulator, generate_credentials
from sigv4_proxy.emulate.faults import Delay, Drop, FaultPlan, Respond, SseEventCounter, describe_request
from tests.support.emulators import EmulatorVariant

from .helpers import initialize_body

ACCEPT = "application/json, text/event-stream"


class RawSession:
    """A hand-driven MCP session over signed httpx requests: initialize, then any JSON-RPC message."""

    def __init__(self, emulator: McpEmulator, client: httpx.Client) -> None:
        self.emulator = emulator
        self.client = client
        self.session_id: str | None = None
        self.next_id = 1

    def headers(self) -> dict[str, str]:
        headers = {"content-type": "application/json", "accept": ACCEPT, "mcp-protocol-version": "2025-06-18"}
        if self.session_id:
            headers["mcp-session-id"] = self.session_id
        return headers

    def initialize(self) -> None:
        response = self.client.post(self.emulator.url, content=initialize_body(), headers=self.headers())
        assert response.status_code == 200, response.text
        self.session_id = response.headers["mcp-session-id"]
        self.notify("notifications/initialized")

    def notify(self, method: str) -> httpx.Response:
        body = json.dumps({"jsonrpc": "2.0", "method": method}).encode()
        return self.client.post(self.emulator.url, content=body, headers=self.headers())

    def request(self, method: str, params: dict | None = None) -> tuple[int, bytes]:
        self.next_id += 1
        message = {"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params or {}}
        return self.next_id, json.dumps(message).encode()

    def call(self, tool: str, arguments: dict, **params: object) -> httpx.Response:
        _, body = self.request("tools/call", {"name": tool, "arguments": arguments, **params})
        return self.client.post(self.emulator.url, content=body, headers=self.headers())


@pytest.fixture
def session(emulator: McpEmulator) -> Iterator[RawSession]:
    auth = SigV4Auth(emulator.credentials, emulator.region, emulator.service)
    with httpx.Client(auth=auth, timeout=10) as client:
        raw = RawSession(emulator, client)
        raw.initialize()
        yield raw


def sse_messages(response: httpx.Response) -> list[dict]:
    return [
        json.loads(line[5:]) for line in response.text.splitlines() if line.startswith("data:") and line[5:].strip()
    ]


def test_fail_next_answers_instead_of_forwarding(emulator: McpEmulator, session: RawSession) -> None:
    rule = emulator.fail_next(502, times=2, match=Match(rpc_method="tools/call"))
    assert session.notify("notifications/initialized").status_code == 202  # not matched: forwarded
    first = session.call("echo", {"message": "a"})
    second = session.call("echo", {"message": "b"})
    third = session.call("echo", {"message": "c"})
    assert (first.status_code, first.content, second.status_code) == (502, b"", 502)
    assert third.status_code == 200 and sse_messages(third)[-1]["result"]["content"][0]["text"] == "c"
    assert rule.applied == 2 and emulator.state.faults.pending() == []
    assert emulator.executions.by_tool() == {"echo": 1}
    faults = [record.fault for record in emulator.requests if record.fault]
    assert faults == ["respond 502 (empty body)", "respond 502 (empty body)"]


def test_throttle_has_retry_after_and_the_aws_shape(emulator: McpEmulator, session: RawSession) -> None:
    emulator.throttle_next(retry_after=2)
    response = session.call("echo", {"message": "a"})
    assert response.status_code == 429
    assert response.headers["retry-after"] == "2"
    assert response.headers["x-amzn-ErrorType"] == "TooManyRequestsException"
    assert response.json() == {"message": "Too Many Requests"}
    assert "date" in response.headers


def test_fail_next_with_error_type_and_bodies(emulator: McpEmulator, session: RawSession) -> None:
    emulator.fail_next(424, error_type="RuntimeClientError")
    emulator.fail_next(503, body={"message": "try later"}, headers={"Retry-After": "0"})
    emulator.fail_next(200)  # an empty 200
    cold = session.call("echo", {"message": "a"})
    assert (cold.status_code, cold.headers["x-amzn-ErrorType"], cold.json()) == (
        424,
        "RuntimeClientError",
        {"message": "Failed Dependency"},
    )
    busy = session.call("echo", {"message": "a"})
    assert (busy.status_code, busy.json(), busy.headers["retry-after"]) == (503, {"message": "try later"}, "0")
    empty = session.call("echo", {"message": "a"})
    assert (empty.status_code, empty.content, empty.headers["content-length"]) == (200, b"", "0")
    assert emulator.executions.total() == 0


def test_deny_next_is_an_iam_denial(emulator: McpEmulator, session: RawSession) -> None:
    emulator.deny_next()
    response = session.call("echo", {"message": "a"})
    assert (response.status_code, response.headers["x-amzn-ErrorType"]) == (403, "AccessDeniedException")
    assert response.json() == {
        "Message": "User: arn:aws:iam::123456789012:user/sigv4-proxy-emulator is not authorized to perform: "
        "execute-api:Invoke on resource: arn:aws:execute-api:us-east-1:********9012:emulator/prod/*"
    }
    assert emulator.executions.total() == 0


def test_session_not_found_next(emulator: McpEmulator, session: RawSession) -> None:
    emulator.session_not_found_next()
    response = session.call("echo", {"message": "a"})
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "Session not found"
    assert session.call("echo", {"message": "a"}).status_code == 200


def test_forget_sessions_is_a_server_restart(emulator: McpEmulator, session: RawSession) -> None:
    assert session.call("echo", {"message": "a"}).status_code == 200
    emulator.forget_sessions()
    forgotten = session.call("echo", {"message": "b"})
    assert forgotten.status_code == 404
    assert forgotten.json()["error"]["message"] == "Session not found"
    session.session_id = None
    session.initialize()  # a new session on the restarted server works
    assert session.call("echo", {"message": "c"}).status_code == 200


def test_forget_sessions_cuts_open_streams(emulator: McpEmulator, session: RawSession) -> None:
    with session.client.stream("GET", emulator.url, headers=session.headers()) as stream:
        assert stream.status_code == 200
        emulator.wait_for_requests(3)  # initialize, initialized, GET
        emulator.forget_sessions()
        with pytest.raises(httpx.RemoteProtocolError):
            for _ in stream.iter_raw():
                pass


def test_drop_before_forwarding_never_reaches_the_server(emulator: McpEmulator, session: RawSession) -> None:
    emulator.drop_next(forward=False, match=Match(tool="echo"))
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        session.call("echo", {"message": "a"})
    assert emulator.executions.total() == 0
    assert emulator.requests[-1].fault == "drop before forwarding"
    assert emulator.requests[-1].outcome == "signature ok, connection dropped"
    assert session.call("echo", {"message": "a"}).status_code == 200


def test_drop_after_forwarding_executes_once(emulator: McpEmulator, session: RawSession) -> None:
    emulator.drop_next(match=Match(tool="echo"))
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        session.call("echo", {"message": "a"})
    assert emulator.executions.by_tool() == {"echo": 1}


def test_drop_mid_sse_response_after_the_first_event(emulator: McpEmulator, session: RawSession) -> None:
    emulator.drop_next(after_events=1, match=Match(tool="progress"))
    request_id, body = session.request(
        "tools/call", {"name": "progress", "arguments": {"steps": 3, "delay_seconds": 0}, "_meta": {"progressToken": 7}}
    )
    received = b""
    with session.client.stream("POST", emulator.url, content=body, headers=session.headers()) as stream:
        assert stream.status_code == 200
        with pytest.raises(httpx.RemoteProtocolError):
            for chunk in stream.iter_raw():
                received += chunk
    events = [block for block in received.replace(b"\r\n", b"\n").split(b"\n\n") if block.strip()]
    assert len(events) == 1  # exactly one complete event got through
    assert emulator.executions.count(request_id) == 1
    assert emulator.requests[-1].fault == "drop after 1 SSE event(s)"


def test_delay_next_is_applied_and_logged(emulator: McpEmulator, session: RawSession) -> None:
    rule = emulator.delay_next(0.05, match=Match(tool="echo"))
    assert session.call("echo", {"message": "a"}).status_code == 200
    assert rule.applied == 1
    assert emulator.requests[-1].fault == "delay 0.05s"


def test_rotate_credentials(emulator: McpEmulator) -> None:
    old = emulator.credentials
    new = emulator.rotate_credentials()
    old_response = httpx.post(emulator.url, content=initialize_body(), auth=SigV4Auth(old, "us-east-1", "execute-api"))
    assert old_response.headers["x-amzn-ErrorType"] == "UnrecognizedClientException"
    new_response = httpx.post(
        emulator.url,
        content=initialize_body(),
        headers={"accept": ACCEPT, "content-type": "application/json"},
        auth=SigV4Auth(new, "us-east-1", "execute-api"),
    )
    assert new_response.status_code == 200
    emulator.accept(old)
    assert {c.access_key_id for c in emulator.state.credentials.all()} == {old.access_key_id, new.access_key_id}
    emulator.accept_only(old)
    assert [c.access_key_id for c in emulator.state.credentials.all()] == [old.access_key_id]


def test_credentials_resolver_is_asked_about_unknown_keys(emulator: McpEmulator) -> None:
    minted = generate_credentials()
    emulator.set_credentials_resolver(lambda key: minted if key == minted.access_key_id else None)
    response = httpx.post(
        emulator.url,
        content=initialize_body(),
        headers={"accept": ACCEPT, "content-type": "application/json"},
        auth=SigV4Auth(minted, "us-east-1", "execute-api"),
    )
    assert response.status_code == 200


def test_faults_never_apply_to_refused_requests(emulator: McpEmulator) -> None:
    rule = emulator.fail_next(503)
    assert httpx.post(emulator.url, content=b"{}").status_code == 403
    assert rule.applied == 0 and emulator.state.faults.pending() == [rule]
    emulator.clear_faults()
    assert emulator.state.faults.pending() == []


# --- sans-IO pieces ------------------------------------------------------------------------------------------


def test_fault_plan_first_matching_rule_wins_and_counts_down() -> None:
    plan = FaultPlan()
    tools = plan.add(Respond(502), times=2, match=Match(rpc_method="tools/call"))
    anything = plan.add(Delay(1))
    call = describe_request("POST", "/mcp", b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}}')
    ping = describe_request("POST", "/mcp", b'{"jsonrpc":"2.0","id":2,"method":"ping"}')
    assert plan.take(ping) == Delay(1)
    assert plan.take(ping) is None
    assert plan.take(call) == Respond(502)
    assert plan.take(call) == Respond(502)
    assert plan.take(call) is None
    assert (tools.applied, anything.applied) == (2, 1)
    with pytest.raises(ValueError, match="times must be at least 1"):
        plan.add(Drop(), times=0)


@pytest.mark.parametrize(
    ("match", "expected"),
    [
        (Match(), True),
        (Match(http_method="post"), True),
        (Match(http_method="GET"), False),
        (Match(path="/mcp"), True),
        (Match(path="/other"), False),
        (Match(rpc_method="tools/call"), True),
        (Match(rpc_method="initialize"), False),
        (Match(tool="echo"), True),
        (Match(tool="add"), False),
    ],
)
def test_match(match: Match, expected: bool) -> None:
    info = describe_request(
        "POST", "/mcp", b'{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"echo"}}'
    )
    assert match.matches(info) is expected


def test_describe_request_tolerates_anything() -> None:
    batch = b'[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"notifications/initialized"}]'
    info = describe_request("POST", "/mcp", batch)
    assert (info.rpc_methods, info.rpc_ids, info.summary) == (
        ("ping", "notifications/initialized"),
        (1,),
        "batch of 2: ping, notifications/initialized",
    )
    for body in (b"", b"not json", b"{broken", b"[1, 2]", b'{"id": true}', b"\xff\xfe"):
        assert describe_request("POST", "/mcp", body).rpc_methods == ()
    response = describe_request("POST", "/mcp", b'{"jsonrpc":"2.0","id":3,"result":{}}')
    assert (response.rpc_methods, response.rpc_ids, response.summary) == ((), (3,), "")


@pytest.mark.parametrize("separator", [b"\n", b"\r\n", b"\r"])
@pytest.mark.parametrize("chunk_size", [1, 3, 1000])
def test_sse_event_counter_cuts_after_exactly_n_events(separator: bytes, chunk_size: int) -> None:
    events = [b"event: message" + separator + b"data: {}" + separator + separator for _ in range(3)]
    stream = b"".join(events)
    counter = SseEventCounter()
    sent = b""
    for start in range(0, len(stream), chunk_size):
        chunk = stream[start : start + chunk_size]
        cut = counter.cut(chunk, 2)
        if cut is not None:
            sent += chunk[:cut]
            break
        sent += chunk
    assert counter.events == 2
    expected = events[0] + events[1]
    # with CR CR the counter cannot wait for a LF that will never come: it cuts right at the second CR
    assert sent == expected


def test_drop_after_events_on_a_json_response_loses_it_whole(emulator_variant: EmulatorVariant) -> None:
    emulator = emulator_variant(json_response=True)
    auth = SigV4Auth(emulator.credentials, emulator.region, emulator.service)
    with httpx.Client(auth=auth, timeout=10) as client:
        session = RawSession(emulator, client)
        session.initialize()
        emulator.drop_next(after_events=2, match=Match(tool="echo"))
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            session.call("echo", {"message": "a"})
    assert emulator.executions.by_tool() == {"echo": 1}
    assert emulator.requests[-1].outcome == "signature ok, 200"
