"""Sans-IO framing: the event-stream parser, stdin's line splitter, routing headers, log redaction."""

from __future__ import annotations

import base64
import io
import json
import logging

from hypothesis import given, settings
from hypothesis import strategies as st

from sigv4_proxy.logs import get_logger, redact, register_secret, setup_logging
from sigv4_proxy.mcp.jsonrpc import peek
from sigv4_proxy.mcp.routing import ToolHeaderMaps, encode_header_value, routing_headers
from sigv4_proxy.mcp.sse import SSEParser
from sigv4_proxy.mcp.stdio import Line, LineSplitter, Oversize


def feed_all(parser: SSEParser, chunks: list[bytes]) -> list[tuple[str, bytes, str | None]]:
    events = []
    for chunk in chunks:
        events.extend(parser.feed(chunk))
    events.extend(parser.close())
    return [(event.event, bytes(event.data), event.id) for event in events if event.data]


STREAM = (
    b": keep-alive comment\r\n"
    b"id: 1\r\n"
    b"retry: 1500\r\n"
    b"data: \r\n\r\n"  # priming event: id, empty data
    b"event: message\n"
    b'data: {"jsonrpc":"2.0","method":"notifications/progress"}\n\n'
    b"id: 3\r"
    b'data:{"a":\r'
    b"data: 1}\r\r"
    b"event: ping\ndata: x\n\n"
    b'data: {"unfinished": true}\n'  # no blank line before the end: discarded
)


def test_sse_parser_follows_the_event_stream_rules() -> None:
    parser = SSEParser()
    events = feed_all(parser, [STREAM])
    assert events == [
        ("message", b'{"jsonrpc":"2.0","method":"notifications/progress"}', None),
        ("message", b'{"a":\n1}', "3"),
        ("ping", b"x", None),
    ]
    assert parser.last_event_id == "3" and parser.retry == 1500


@given(st.lists(st.integers(min_value=1, max_value=len(STREAM) - 1), max_size=12))
@settings(max_examples=200, deadline=None)
def test_sse_parser_is_independent_of_chunking(cuts: list[int]) -> None:
    points = sorted(set(cuts))
    chunks = [STREAM[a:b] for a, b in zip([0, *points], [*points, len(STREAM)], strict=True)]
    assert feed_all(SSEParser(), chunks) == feed_all(SSEParser(), [STREAM])


def test_sse_large_event_data_is_not_copied_per_chunk() -> None:
    parser = SSEParser()
    payload = b"y" * (8 * 1024 * 1024)
    events = []
    data = b"data: " + payload + b"\n\n"
    for start in range(0, len(data), 65536):
        events.extend(parser.feed(data[start : start + 65536]))
    assert len(events) == 1 and events[0].data == payload


def lines(splitter: LineSplitter, chunks: list[bytes]) -> list[Line | Oversize]:
    out: list[Line | Oversize] = []
    for chunk in chunks:
        out.extend(splitter.feed(chunk))
    out.extend(splitter.close())
    return out


def test_line_splitter_lines_crlf_and_last_line_without_newline() -> None:
    result = lines(LineSplitter(100), [b"one\ntw", b"o\r\n\nthree"])
    assert [bytes(item.data) for item in result if isinstance(item, Line)] == [b"one", b"two", b"", b"three"]


def test_line_splitter_turns_an_over_size_line_into_a_marker_and_goes_on() -> None:
    big = b'{"jsonrpc":"2.0","id":5,"method":"x","params":"' + b"z" * 5000 + b'"}'
    result = lines(LineSplitter(1000), [b"a\n", big[:700], big[700:3000], big[3000:] + b"\nb\n"])
    assert isinstance(result[0], Line) and bytes(result[0].data) == b"a"
    assert isinstance(result[1], Oversize) and result[1].size == len(big)
    assert result[1].prefix.startswith(b'{"jsonrpc":"2.0","id":5')
    assert isinstance(result[2], Line) and bytes(result[2].data) == b"b"
    assert len(result) == 3


def test_line_splitter_over_size_line_in_one_chunk() -> None:
    result = lines(LineSplitter(10), [b"0123456789ABC\nok\n"])
    assert isinstance(result[0], Oversize) and result[0].size == 13
    assert isinstance(result[1], Line) and bytes(result[1].data) == b"ok"


@given(st.lists(st.binary(max_size=40), max_size=8), st.integers(min_value=1, max_value=64))
@settings(max_examples=200, deadline=None)
def test_line_splitter_matches_split_for_any_chunking(parts: list[bytes], chunk_size: int) -> None:
    data = b"".join(parts)
    chunks = [data[i : i + chunk_size] for i in range(0, len(data), chunk_size)]
    result = lines(LineSplitter(1 << 20), chunks)
    expected = data.split(b"\n")
    if expected and expected[-1] == b"":
        expected.pop()
    expected = [line[:-1] if line.endswith(b"\r") else line for line in expected]
    assert [bytes(item.data) for item in result if isinstance(item, Line)] == expected


# --- routing headers ------------------------------------------------------------------------------------------


def test_handshake_era_headers_come_from_the_session() -> None:
    request = peek(b'{"jsonrpc":"2.0","id":2,"method":"tools/list"}')
    assert routing_headers(request, session_id="s-1", negotiated_version="2025-06-18") == {
        "Mcp-Session-Id": "s-1",
        "MCP-Protocol-Version": "2025-06-18",
    }
    initialize = peek(b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}')
    assert routing_headers(initialize, session_id="old", negotiated_version="2025-06-18") == {}


def test_2026_envelope_mirrors_method_name_and_params() -> None:
    maps = ToolHeaderMaps()
    maps.learn(
        {
            "tools": [
                {
                    "name": "deploy",
                    "inputSchema": {
                        "type": "object",
                        "properties": {
                            "region": {"type": "string", "x-mcp-header": "Region"},
                            "opts": {
                                "type": "object",
                                "properties": {"dry": {"type": "boolean", "x-mcp-header": "Dry"}},
                            },
                            "count": {"type": "number", "x-mcp-header": "Count"},  # numbers may not be mirrored
                        },
                    },
                },
                {"name": "echo", "inputSchema": {"type": "object"}},
            ]
        }
    )
    meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}
    message = {
        "jsonrpc": "2.0",
        "id": 3,
        "method": "tools/call",
        "params": {"name": "deploy", "arguments": {"region": "eu-west-1", "opts": {"dry": True}}, "_meta": meta},
    }
    headers = routing_headers(
        peek(json.dumps(message).encode()), session_id=None, negotiated_version=None, tool_headers=maps
    )
    assert headers == {
        "MCP-Protocol-Version": "2026-07-28",
        "Mcp-Method": "tools/call",
        "Mcp-Name": "deploy",
        "Mcp-Param-Region": "eu-west-1",
        "Mcp-Param-Dry": "true",
    }


def test_header_values_that_would_not_survive_http_are_base64_wrapped() -> None:
    assert encode_header_value("echo") == "echo"
    wrapped = encode_header_value("héllo ")
    assert wrapped.startswith("=?base64?") and base64.b64decode(wrapped[9:-2]).decode() == "héllo "


# --- redaction --------------------------------------------------------------------------------------------------


def test_redaction_of_signatures_tokens_secrets_and_keys() -> None:
    register_secret("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    text = redact(
        "Authorization: AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20250101/us-east-1/execute-api/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=" + "ab12" * 16 + " X-Amz-Security-Token: IQoJb3JpZ2luX2VjEL//token "
        "?X-Amz-Signature=" + "cd34" * 16 + "&X-Amz-Security-Token=FwoGZXIvYXdzEJr%2Ftoken secret "
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY aws_secret_access_key = abcdefghijklmnop"
    )
    for secret in (
        "ab12ab12",
        "cd34cd34",
        "IQoJb3JpZ2luX2VjEL",
        "FwoGZXIvYXdzEJr",
        "wJalrXUtnFEMI",
        "abcdefghijklmnop",
    ):
        assert secret not in text
    assert "AKIAIOSFODNN7EXAMPLE" not in text and "AKIA****MPLE" in text
    assert "Credential=AKIA****MPLE/20250101/us-east-1/execute-api/aws4_request" in text


def test_json_log_lines_are_redacted_and_carry_fields() -> None:
    stream = io.StringIO()
    setup_logging("debug", "json", stream)
    register_secret("SESSIONTOKENVALUE1234567890")
    get_logger("mcp").info("token is %s", "SESSIONTOKENVALUE1234567890", extra={"fields": {"id": 5}})
    entry = json.loads(stream.getvalue().splitlines()[-1])
    assert entry["message"] == "token is ****" and entry["level"] == "info" and entry["id"] == 5
    setup_logging("info", "text", stream)
    get_logger().debug("hidden")
    assert "hidden" not in stream.getvalue()
    assert not logging.getLogger("httpx").handlers  # debug's httpx handler is gone again
    logging.getLogger("sigv4_proxy").handlers.clear()


# --- the event-size bound (--max-message-bytes for event streams) ---------------------------------------------


def test_sse_parser_refuses_an_event_over_the_limit_and_keeps_the_ones_before() -> None:
    parser = SSEParser(max_event_bytes=100)
    small = b"data: " + b"a" * 100 + b"\n\n"  # exactly the limit: accepted
    big = b"data: " + b"b" * 101 + b"\n\n"
    events = parser.feed(small + big + b"data: after\n\n")
    assert [bytes(event.data) for event in events] == [b"a" * 100]
    assert parser.too_large
    assert parser.feed(b"data: more\n\n") == [] and parser.close() == []


def test_sse_parser_stops_an_endless_line_at_the_limit_plus_one_chunk() -> None:
    parser = SSEParser(max_event_bytes=1024 * 1024)
    parser.feed(b"data: ")
    fed = 0
    while not parser.too_large:
        assert parser.feed(b"x" * 65536) == []
        fed += 65536
        assert fed <= 1024 * 1024 + 65536, "the parser kept buffering past the limit"
    assert len(parser._buffer) == 0  # what the refused event held is let go


def test_sse_parser_counts_multi_line_data_and_a_line_arriving_in_pieces() -> None:
    parser = SSEParser(max_event_bytes=10)
    assert parser.feed(b"data: 12345\ndata: 6789") == [] and not parser.too_large  # 10 bytes so far, with the LF
    parser.feed(b"0\n\n")
    assert parser.too_large  # 11 bytes: over
    exact = SSEParser(max_event_bytes=10)
    events = [*exact.feed(b"data: 01234"), *exact.feed(b"56789\n\n")]
    assert [bytes(event.data) for event in events] == [b"0123456789"] and not exact.too_large
