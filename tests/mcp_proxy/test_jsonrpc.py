"""The byte scanner and stdin's gate: classification without re-serialisation, checked against json."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sigv4_proxy.mcp import jsonrpc
from sigv4_proxy.mcp.jsonrpc import (
    INVALID_REQUEST,
    PARSE_ERROR,
    Envelope,
    Rejection,
    ScanError,
    classify_line,
    error_line,
    id_key,
    member_spans,
    peek,
    truncated_kind,
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(st.text(max_size=10), json_values, max_size=6), st.sampled_from([None, 0, 2]))
@settings(max_examples=300, deadline=None)
def test_member_spans_agree_with_json(obj: dict[str, Any], indent: int | None) -> None:
    raw = json.dumps(obj, indent=indent, ensure_ascii=False).encode()
    spans = member_spans(raw)
    assert set(spans) == set(obj)
    for name, (start, end) in spans.items():
        assert json.loads(raw[start:end]) == obj[name]


@given(
    st.one_of(st.integers(), st.text(max_size=12)),
    st.text(min_size=1, max_size=20),
    st.dictionaries(st.text(max_size=8), json_values, max_size=4),
)
@settings(max_examples=200, deadline=None)
def test_peek_reads_id_and_method_like_json(message_id: Any, method: str, params: dict[str, Any]) -> None:
    message = {"params": params, "method": method, "jsonrpc": "2.0", "id": message_id}
    envelope = peek(json.dumps(message).encode())
    assert (envelope.kind, envelope.id, envelope.method) == ("request", message_id, method)
    assert envelope.key == id_key(message_id)


@pytest.mark.parametrize(
    "text",
    ['{"a":1', '{"a":"x}', '{"a" 1}', '{"a":1,}', "[1,2", '{"a":[1,2}', '{"a":1} x', "", "   ", '{"a":}'],
)
def test_scanner_rejects_malformed_objects(text: str) -> None:
    with pytest.raises(ScanError):
        member_spans(text.encode())


def test_strings_with_escaped_quotes_and_brackets_are_skipped() -> None:
    raw = rb'{"text":"he said \"}]{[\\\" and \\\\","id":5}'
    assert json.loads(raw[slice(*member_spans(raw)["id"])]) == 5


def test_large_message_is_classified_without_decoding_its_payload() -> None:
    payload = "x" * (30 * 1024 * 1024)
    raw = ('{"jsonrpc":"2.0","id":"big","result":{"content":[{"type":"text","text":"' + payload + '"}]}}').encode()
    envelope = peek(raw)
    assert (envelope.kind, envelope.id, envelope.is_error) == ("response", "big", False)
    assert envelope.result(limit=1024) is None  # too big to decode for routing: left alone


def test_request_routing_fields() -> None:
    envelope = peek(
        json.dumps(
            {
                "jsonrpc": "2.0",
                "id": 7,
                "method": "tools/call",
                "params": {
                    "name": "echo",
                    "arguments": {"message": "hi", "region": "eu"},
                    "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "progressToken": 1},
                },
            }
        ).encode()
    )
    assert (envelope.name, envelope.protocol_version) == ("echo", "2026-07-28")
    assert envelope.arguments() == {"message": "hi", "region": "eu"}
    assert peek(b'{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///a"}}').name == "file:///a"
    cancel = peek(b'{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"r1"}}')
    assert (cancel.kind, cancel.cancelled_id) == ("notification", "r1")


def test_ids_of_different_types_route_apart() -> None:
    assert id_key(1) != id_key("1")
    assert peek(b'{"jsonrpc":"2.0","id":"1","result":{}}').key == '"1"'


def test_batches() -> None:
    batch = peek(b'[{"jsonrpc":"2.0","id":1,"method":"ping"}, {"jsonrpc":"2.0","method":"notifications/x"}]')
    assert batch.kind == "batch"
    assert [member.kind for member in batch.members] == ["request", "notification"]
    assert [request.id for request in batch.requests()] == [1]
    assert isinstance(classify_line(b"[]"), Rejection)


# --- classify_line: stdin's gate ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "code", "message_id"),
    [
        (b"not json", PARSE_ERROR, None),
        (b'{"jsonrpc":"2.0","id":1,"method":"ping"', PARSE_ERROR, None),
        (b"\xff\xfe\x00garbage\x01", PARSE_ERROR, None),
        (b'{"jsonrpc":"2.0","id":1,"method":"x","params":NaN}', PARSE_ERROR, None),
        (b"42", INVALID_REQUEST, None),
        (b'"just a string"', INVALID_REQUEST, None),
        (b'{"hello":"world"}', INVALID_REQUEST, None),
        (b'{"jsonrpc":"1.0","id":3,"method":"ping"}', INVALID_REQUEST, 3),
        (b'{"jsonrpc":"2.0","id":4,"method":5}', INVALID_REQUEST, 4),
        (b'{"jsonrpc":"2.0","id":{"x":1},"method":"ping"}', INVALID_REQUEST, None),
        (b'{"jsonrpc":"2.0","id":true,"method":"ping"}', INVALID_REQUEST, None),
        (b'{"jsonrpc":"2.0","id":9,"result":1,"error":{}}', INVALID_REQUEST, 9),
        (b"[]", INVALID_REQUEST, None),
        (b'[{"jsonrpc":"2.0","id":1,"method":"ping"}, 3]', INVALID_REQUEST, None),
    ],
)
def test_rejections(line: bytes, code: int, message_id: Any) -> None:
    verdict = classify_line(line)
    assert isinstance(verdict, Rejection), verdict
    assert (verdict.code, verdict.id) == (code, message_id)
    error = json.loads(verdict.line())
    assert error["jsonrpc"] == "2.0" and error["id"] == message_id and error["error"]["code"] == code


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        (b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}', "request"),
        (b'{"jsonrpc":"2.0","method":"notifications/initialized"}', "notification"),
        (b'{"jsonrpc":"2.0","id":"s1","result":{"action":"accept"}}', "response"),
        (b'{"jsonrpc":"2.0","id":"s2","error":{"code":-1,"message":"no"}}', "response"),
        (b'  {"jsonrpc":"2.0","id":1,"method":"ping"}  ', "request"),
    ],
)
def test_accepted_messages(line: bytes, kind: str) -> None:
    verdict = classify_line(line)
    assert isinstance(verdict, Envelope) and verdict.kind == kind
    assert verdict.raw is line  # classification never copies or re-serialises


def test_truncated_kind_finds_the_id_of_an_over_size_request() -> None:
    assert truncated_kind(b'{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"x":"aaaa') == ("request", 7)
    assert truncated_kind(b'{"jsonrpc":"2.0","method":"notifications/x","params":{"y":"aa') == ("notification", None)
    assert truncated_kind(b'{"jsonrpc":"2.0","id":"s","result":{"big":"aa') == ("response", "s")
    assert truncated_kind(b'{"params":{"big":"aaa') == (None, None)
    assert truncated_kind(b"\x00\x01\x02") == (None, None)
    # an id whose value may continue beyond the prefix is not trusted
    assert truncated_kind(b'{"jsonrpc":"2.0","id":12') == (None, None)


def test_error_line() -> None:
    assert json.loads(error_line("a", -32000, "boom", {"status": 403})) == {
        "jsonrpc": "2.0",
        "id": "a",
        "error": {"code": -32000, "message": "boom", "data": {"status": 403}},
    }
    assert b"\n" not in error_line(None, -1, "two\nlines")


def test_full_validation_limit_is_reasonable() -> None:
    assert jsonrpc.FULL_VALIDATION_LIMIT >= 1 << 20


# --- ids JSON cannot write back ------------------------------------------------------------------------------


def strict_json(data: bytes) -> Any:
    """json.loads refusing NaN / Infinity: what any other JSON parser (the client's) accepts."""
    return json.loads(data, parse_constant=lambda name: pytest.fail(f"{name} in {data!r}"))


@pytest.mark.parametrize(
    "line",
    [
        b'{"jsonrpc":"2.0","id":1e400,"method":"ping"}',
        b'{"jsonrpc":"2.0","id":-1E999,"method":"tools/call","params":{}}',
        b'{"jsonrpc":"2.0","id":1e400,"result":{}}',
        b'[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":1e400,"method":"ping"}]',
    ],
)
def test_a_non_finite_id_is_an_invalid_request_answered_with_a_null_id(line: bytes) -> None:
    verdict = classify_line(line)
    assert verdict == Rejection(INVALID_REQUEST, "Invalid Request: JSON-RPC id must be a finite number", None)
    assert strict_json(verdict.line())["id"] is None


def test_nan_and_infinity_literals_are_refused_even_beyond_full_validation() -> None:
    """Up to FULL_VALIDATION_LIMIT the JSON parser rejects them (-32700); longer lines are only scanned."""
    small = b'{"jsonrpc":"2.0","id":NaN,"method":"ping"}'
    assert isinstance(verdict := classify_line(small), Rejection) and (verdict.code, verdict.id) == (PARSE_ERROR, None)
    pad = b"p" * (jsonrpc.FULL_VALIDATION_LIMIT + 1)
    for literal in (b"NaN", b"Infinity", b"-Infinity", b"1e400"):
        line = b'{"jsonrpc":"2.0","id":' + literal + b',"method":"x","params":{"pad":"' + pad + b'"}}'
        verdict = classify_line(line)
        assert isinstance(verdict, Rejection) and (verdict.code, verdict.id) == (INVALID_REQUEST, None), literal
        assert strict_json(verdict.line())["error"]["message"] == "Invalid Request: JSON-RPC id must be a finite number"


def test_an_over_size_line_with_a_non_finite_id_is_answered_under_null() -> None:
    assert truncated_kind(b'{"jsonrpc":"2.0","id":1e400,"method":"tools/call","params":{"x":"aaa') == ("request", None)
    assert truncated_kind(b'{"jsonrpc":"2.0","id":-1e999,"result":{"big":"aa') == ("response", None)


def test_finite_ids_still_pass() -> None:
    for text, value in [(b"1e300", 1e300), (b"-0.5", -0.5), (b"12345678901234567890", 12345678901234567890)]:
        envelope = peek(b'{"jsonrpc":"2.0","id":' + text + b',"method":"ping"}')
        assert envelope.id == value and strict_json(error_line(envelope.id, -1, "x"))["id"] == value


def test_batch_members_know_their_own_bytes() -> None:
    raw = b' [ {"jsonrpc":"2.0","id":1,"result":{"a":[1, 2]}} ,\n{"jsonrpc":"2.0","method":"n"}]'
    batch = peek(raw)
    assert [raw[slice(*member.span)] for member in batch.members if member.span] == [
        b'{"jsonrpc":"2.0","id":1,"result":{"a":[1, 2]}}',
        b'{"jsonrpc":"2.0","method":"n"}',
    ]
