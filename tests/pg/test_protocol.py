"""sigv4_proxy.pg.protocol: framing and codecs against hand-written bytes from the protocol's message formats."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sigv4_proxy.pg import protocol as p
from sigv4_proxy.pg.protocol import (
    CancelRequest,
    Frame,
    GSSEncRequest,
    ProtocolViolation,
    SSLRequest,
    StartupMessage,
)


def int32(value: int) -> bytes:
    return struct.pack("!i", value)


def int16(value: int) -> bytes:
    return struct.pack("!h", value)


# --------------------------------------------------------------------------------------------------------------
# Constants


def test_constants_are_postgresqls() -> None:
    # 1234 << 16 | 5679, 5680, 5678 and 3 << 16: pqcomm.h.
    assert p.SSL_REQUEST_CODE == (1234 << 16) | 5679 == 80877103
    assert p.GSSENC_REQUEST_CODE == (1234 << 16) | 5680
    assert p.CANCEL_REQUEST_CODE == (1234 << 16) | 5678
    assert p.PROTOCOL_3_0 == 3 << 16
    assert p.PROTOCOL_3_2 == (3 << 16) | 2
    assert p.MAX_STARTUP_PACKET == 10_000
    assert p.DEFAULT_MAX_MESSAGE == 1 << 30


# --------------------------------------------------------------------------------------------------------------
# Backend encoders: exact bytes


BACKEND_ENCODINGS = [
    (p.authentication_ok(), b"R\x00\x00\x00\x08\x00\x00\x00\x00"),
    (p.authentication_cleartext_password(), b"R\x00\x00\x00\x08\x00\x00\x00\x03"),
    (p.parameter_status("server_version", "16.15"), b"S\x00\x00\x00\x19server_version\x0016.15\x00"),
    (p.backend_key_data(4242, b"\x01\x02\x03\x04"), b"K\x00\x00\x00\x0c\x00\x00\x10\x92\x01\x02\x03\x04"),
    (p.ready_for_query("I"), b"Z\x00\x00\x00\x05I"),
    (p.ready_for_query("T"), b"Z\x00\x00\x00\x05T"),
    (p.ready_for_query("E"), b"Z\x00\x00\x00\x05E"),
    (p.command_complete("SELECT 1"), b"C\x00\x00\x00\x0dSELECT 1\x00"),
    (p.empty_query_response(), b"I\x00\x00\x00\x04"),
    (
        p.error_response([("S", "FATAL"), ("C", "08006"), ("M", "x")]),
        b"E\x00\x00\x00\x16SFATAL\x00C08006\x00Mx\x00\x00",
    ),
    (p.notice_response([("S", "NOTICE"), ("M", "hi")]), b"N\x00\x00\x00\x11SNOTICE\x00Mhi\x00\x00"),
    (p.error_response([]), b"E\x00\x00\x00\x05\x00"),
    (
        p.row_description(["a"]),
        b"T\x00\x00\x00\x1a\x00\x01a\x00"
        b"\x00\x00\x00\x00"  # table oid
        b"\x00\x00"  # column number
        b"\x00\x00\x00\x19"  # type oid 25 (text)
        b"\xff\xff"  # type size -1
        b"\xff\xff\xff\xff"  # type modifier -1
        b"\x00\x00",  # format: text
    ),
    (p.row_description([]), b"T\x00\x00\x00\x06\x00\x00"),
    (
        p.data_row(["ab", None, ""]),
        b"D\x00\x00\x00\x14\x00\x03\x00\x00\x00\x02ab\xff\xff\xff\xff\x00\x00\x00\x00",
    ),
    (p.data_row(["é"]), b"D\x00\x00\x00\x0c\x00\x01\x00\x00\x00\x02\xc3\xa9"),
    (
        p.negotiate_protocol_version(0, ["_pq_.x"]),
        b"v\x00\x00\x00\x13\x00\x03\x00\x00\x00\x00\x00\x01_pq_.x\x00",
    ),
    (p.negotiate_protocol_version(0, []), b"v\x00\x00\x00\x0c\x00\x03\x00\x00\x00\x00\x00\x00"),
]


@pytest.mark.parametrize(("encoded", "expected"), BACKEND_ENCODINGS)
def test_backend_encoder_bytes(encoded: bytes, expected: bytes) -> None:
    assert encoded == expected


def test_error_fields_order_and_optional_parts() -> None:
    assert p.error_fields("FATAL", "08006", "unable to accept connection, access denied") == [
        ("S", "FATAL"),
        ("V", "FATAL"),
        ("C", "08006"),
        ("M", "unable to accept connection, access denied"),
    ]
    assert p.error_fields("ERROR", "0A000", "m", detail="d", hint="h") == [
        ("S", "ERROR"),
        ("V", "ERROR"),
        ("C", "0A000"),
        ("M", "m"),
        ("D", "d"),
        ("H", "h"),
    ]
    assert p.error_response(p.error_fields("FATAL", "28000", "m", hint="h")) == (
        b"E\x00\x00\x00\x20SFATAL\x00VFATAL\x00C28000\x00Mm\x00Hh\x00\x00"
    )


def test_negotiate_protocol_version_sends_the_whole_version() -> None:
    # libpq 18 refuses a value below 3.0 ("downgrade to pre-3.0 protocol version"): PostgreSQL sends 3 << 16 | minor.
    payload = p.negotiate_protocol_version(0, ["_pq_.a", "_pq_.b"])[5:]
    assert struct.unpack_from("!ii", payload) == (196608, 2)
    assert p.decode_negotiate_protocol_version(payload) == (196608, ("_pq_.a", "_pq_.b"))


@pytest.mark.parametrize(
    "call",
    [
        lambda: p.parameter_status("a\0b", "v"),
        lambda: p.command_complete("x\0"),
        lambda: p.query("SELECT 1\0; DROP TABLE t"),
        lambda: p.error_response([("SS", "x")]),
        lambda: p.error_response([("1", "x")]),
        lambda: p.ready_for_query("X"),
        lambda: p.backend_key_data(1, b""),
        lambda: p.backend_key_data(1, b"x" * 257),
        lambda: p.describe("X", "n"),
        lambda: p.startup_message({"user": "u" * 10_000}),
    ],
)
def test_encoders_refuse_what_cannot_go_on_the_wire(call: object) -> None:
    with pytest.raises(ValueError):
        call()  # type: ignore[operator]


# --------------------------------------------------------------------------------------------------------------
# Frontend encoders: exact bytes

FRONTEND_ENCODINGS = [
    (p.ssl_request(), b"\x00\x00\x00\x08\x04\xd2\x16\x2f"),
    (p.gssenc_request(), b"\x00\x00\x00\x08\x04\xd2\x16\x30"),
    (p.cancel_request(7, b"\x0a\x0b\x0c\x0d"), b"\x00\x00\x00\x10\x04\xd2\x16\x2e\x00\x00\x00\x07\x0a\x0b\x0c\x0d"),
    (
        p.startup_message({"user": "admin", "database": "postgres"}),
        b"\x00\x00\x00\x26\x00\x03\x00\x00user\x00admin\x00database\x00postgres\x00\x00",
    ),
    (p.startup_message({}, p.PROTOCOL_3_2), b"\x00\x00\x00\x09\x00\x03\x00\x02\x00"),
    (p.password_message("tok"), b"p\x00\x00\x00\x08tok\x00"),
    (p.password_message(""), b"p\x00\x00\x00\x05\x00"),
    (p.query("SELECT 1"), b"Q\x00\x00\x00\x0dSELECT 1\x00"),
    (p.parse("s1", "SELECT $1", [23]), b"P\x00\x00\x00\x17s1\x00SELECT $1\x00\x00\x01\x00\x00\x00\x17"),
    (p.parse("", "SELECT 1"), b"P\x00\x00\x00\x10\x00SELECT 1\x00\x00\x00"),
    (
        p.bind("", "s1", ["42", None]),
        b"B\x00\x00\x00\x18\x00s1\x00\x00\x00\x00\x02\x00\x00\x00\x0242\xff\xff\xff\xff\x00\x00",
    ),
    (p.bind("", ""), b"B\x00\x00\x00\x0c\x00\x00\x00\x00\x00\x00\x00\x00"),
    (p.describe("S", "s1"), b"D\x00\x00\x00\x08Ss1\x00"),
    (p.describe("P", ""), b"D\x00\x00\x00\x06P\x00"),
    (p.close("S", "s1"), b"C\x00\x00\x00\x08Ss1\x00"),
    (p.execute("", 0), b"E\x00\x00\x00\x09\x00\x00\x00\x00\x00"),
    (p.execute("p", 100), b"E\x00\x00\x00\x0ap\x00\x00\x00\x00\x64"),
    (p.sync(), b"S\x00\x00\x00\x04"),
    (p.flush(), b"H\x00\x00\x00\x04"),
    (p.terminate(), b"X\x00\x00\x00\x04"),
    (p.sasl_initial_response("SCRAM-SHA-256", b"n,,"), b"p\x00\x00\x00\x19SCRAM-SHA-256\x00\x00\x00\x00\x03n,,"),
    (p.sasl_initial_response("M", None), b"p\x00\x00\x00\x0aM\x00\xff\xff\xff\xff"),
    (p.sasl_response(b"c=biws"), b"p\x00\x00\x00\x0ac=biws"),
]


@pytest.mark.parametrize(("encoded", "expected"), FRONTEND_ENCODINGS)
def test_frontend_encoder_bytes(encoded: bytes, expected: bytes) -> None:
    assert encoded == expected


# --------------------------------------------------------------------------------------------------------------
# Decoders: round trips and strictness


def payload(message: bytes) -> bytes:
    return message[5:]


def test_decoders_round_trip() -> None:
    fields = p.error_fields("FATAL", "08006", "unable to accept connection, access denied", detail="d", hint="h")
    assert p.decode_fields(payload(p.error_response(fields))) == fields
    assert p.decode_fields(payload(p.notice_response([("M", "ü")]))) == [("M", "ü")]
    assert p.decode_query(payload(p.query("SELECT 'ü'"))) == "SELECT 'ü'"
    assert p.decode_parse(payload(p.parse("s", "SELECT $1, $2", [23, 4294967295]))) == (
        "s",
        "SELECT $1, $2",
        (23, 4294967295),
    )
    assert p.decode_parse(payload(p.parse("", "SELECT 1"))) == ("", "SELECT 1", ())
    assert p.decode_bind_names(payload(p.bind("portal", "stmt", ["x"]))) == ("portal", "stmt")
    bound = p.decode_bind(payload(p.bind("portal", "stmt", ["x", None])))
    assert (bound.portal, bound.statement, bound.params, bound.param_formats, bound.result_formats) == (
        "portal",
        "stmt",
        (b"x", None),
        (),
        (),
    )
    assert p.decode_describe(payload(p.describe("P", "x"))) == ("P", "x")
    assert p.decode_close(payload(p.close("S", "y"))) == ("S", "y")
    assert p.decode_execute(payload(p.execute("x", 7))) == ("x", 7)
    assert p.decode_password(payload(p.password_message("tok=en"))) == "tok=en"
    assert p.decode_command_complete(payload(p.command_complete("INSERT 0 3"))) == "INSERT 0 3"
    assert p.decode_ready_for_query(payload(p.ready_for_query("T"))) == "T"
    assert p.decode_backend_key_data(payload(p.backend_key_data(-5, b"abcd"))) == (-5, b"abcd")
    assert p.decode_backend_key_data(payload(p.backend_key_data(5, b"k" * 32))) == (5, b"k" * 32)
    assert p.decode_parameter_status(payload(p.parameter_status("TimeZone", "UTC"))) == ("TimeZone", "UTC")
    assert p.decode_authentication(payload(p.authentication_cleartext_password())) == (3, b"")
    assert p.decode_row_description(payload(p.row_description(["a", "bc"]))) == (("a", 25), ("bc", 25))
    assert p.decode_data_row(payload(p.data_row(["x", None]))) == (b"x", None)
    assert p.decode_sasl_mechanisms(b"SCRAM-SHA-256\x00SCRAM-SHA-256-PLUS\x00\x00") == (
        "SCRAM-SHA-256",
        "SCRAM-SHA-256-PLUS",
    )


@pytest.mark.parametrize(
    ("decoder", "data", "message"),
    [
        (p.decode_query, b"SELECT 1", "missing string terminator in query string"),
        (p.decode_query, b"SELECT 1\x00x\x00", "unexpected trailing bytes in query string"),
        (p.decode_query, b"SELECT '\xff'\x00", "invalid UTF-8 in query string"),
        (p.decode_password, b"secret", "missing string terminator in password message"),
        (p.decode_password, b"a\x00b\x00", "unexpected trailing bytes in password message"),
        (p.decode_password, b"\xc3\x28\x00", "invalid UTF-8 in password message"),
        (p.decode_parse, b"s\x00SELECT 1\x00\x00\x02\x00\x00\x00\x17", "Parse message is too short"),
        (p.decode_parse, b"s\x00SELECT 1\x00\xff\xff", "invalid parameter count in Parse message"),
        (p.decode_parse, b"s\x00SELECT 1\x00\x00\x00\x00", "unexpected trailing bytes in Parse message"),
        (p.decode_bind_names, b"portal\x00", "missing string terminator in Bind message"),
        (p.decode_bind, b"\x00\x00\x00\x00\x00\x01\x00\x00\x00\x05ab\x00\x00", "Bind message is too short"),
        (p.decode_fields, b"Mx\x00", "error fields is too short"),
        (p.decode_fields, b"Mx\x00\x00z", "unexpected trailing bytes in error fields"),
        (p.decode_ready_for_query, b"X", "invalid ReadyForQuery message"),
        (p.decode_ready_for_query, b"II", "invalid ReadyForQuery message"),
        (p.decode_backend_key_data, b"\x00\x00\x00\x01", "invalid cancel key length in BackendKeyData message"),
        (p.decode_describe, b"Xname\x00", "invalid kind in Describe message"),
        (p.decode_close, b"", "Close message is too short"),
        (p.decode_execute, b"p\x00\x00\x00", "Execute message is too short"),
        (p.decode_parameter_status, b"a\x00", "missing string terminator in ParameterStatus message"),
    ],
)
def test_decoders_are_strict(decoder: object, data: bytes, message: str) -> None:
    with pytest.raises(ProtocolViolation) as caught:
        decoder(data)  # type: ignore[operator]
    assert str(caught.value) == message
    assert caught.value.sqlstate == "08P01"


def test_violation_never_quotes_the_payload() -> None:
    with pytest.raises(ProtocolViolation) as caught:
        p.decode_password(b"AKIAIOSFODNN7EXAMPLE-very-secret-token")
    assert "secret" not in str(caught.value)
    assert "AKIA" not in repr(caught.value)
    assert caught.value.fields() == [
        ("S", "FATAL"),
        ("V", "FATAL"),
        ("C", "08P01"),
        ("M", "missing string terminator in password message"),
    ]


# --------------------------------------------------------------------------------------------------------------
# Startup packets


def test_parse_startup_packets() -> None:
    assert p.parse_startup_packet(p.ssl_request()) == (SSLRequest(), 8)
    assert p.parse_startup_packet(p.gssenc_request()) == (GSSEncRequest(), 8)
    assert p.parse_startup_packet(p.cancel_request(99, b"\x00\x00\x00\x01")) == (
        CancelRequest(99, b"\x00\x00\x00\x01"),
        16,
    )
    # Protocol 3.2 keys are up to 256 bytes.
    long_key = bytes(range(32))
    assert p.parse_startup_packet(p.cancel_request(1, long_key)) == (CancelRequest(1, long_key), 12 + 32)
    startup = p.startup_message({"user": "admin", "database": "postgres", "options": "-c a=b"})
    assert p.parse_startup_packet(startup + b"more") == (
        StartupMessage(196608, {"user": "admin", "database": "postgres", "options": "-c a=b"}),
        len(startup),
    )
    packet, used = p.parse_startup_packet(p.startup_message({"user": "u"}, p.PROTOCOL_3_2))
    assert isinstance(packet, StartupMessage)
    assert (packet.protocol, packet.major, packet.minor, used) == (196610, 3, 2, 16)
    assert p.parse_startup_packet(b"\x00\x00\x00\x09\x00\x03\x00\x00\x00") == (StartupMessage(196608, {}), 9)


def test_cancel_request_repr_hides_the_key() -> None:
    assert repr(CancelRequest(3, b"\xde\xad\xbe\xef")) == "CancelRequest(pid=3, secret=<4 bytes>)"


def test_incomplete_startup_packet_at_every_length() -> None:
    startup = p.startup_message({"user": "admin", "database": "postgres"})
    for cut in range(len(startup)):
        assert p.parse_startup_packet(startup[:cut]) == (None, 0)
    assert p.parse_startup_packet(bytearray(startup))[1] == len(startup)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (int32(7) + b"\x00\x03\x00", "invalid length of startup packet"),
        (int32(-1), "invalid length of startup packet"),
        (int32(10_001), "invalid length of startup packet"),  # refused before the body arrives
        (int32(12) + int32(p.SSL_REQUEST_CODE) + b"\x00" * 4, "invalid length of encryption request packet"),
        (int32(12) + int32(p.CANCEL_REQUEST_CODE) + int32(1), "invalid length of cancel request packet"),
        (
            int32(12 + 257) + int32(p.CANCEL_REQUEST_CODE) + int32(1) + b"k" * 257,
            "invalid length of cancel request packet",
        ),
        (
            int32(12) + int32(p.PROTOCOL_3_0) + b"user",
            "invalid startup packet layout: expected terminator as last byte",
        ),
        (int32(8) + int32(p.PROTOCOL_3_0), "invalid startup packet layout: expected terminator as last byte"),
        (
            int32(14) + int32(p.PROTOCOL_3_0) + b"user\x00\x00",
            "invalid startup packet layout: expected terminator as last byte",
        ),
        (
            int32(17) + int32(p.PROTOCOL_3_0) + b"user\x00\xffx\x00\x00",
            "invalid UTF-8 in startup parameter value",
        ),
        (
            int32(16) + int32(p.PROTOCOL_3_0) + b"\x00value\x00\x00",
            "invalid startup packet layout: empty parameter name",
        ),
    ],
)
def test_malformed_startup_packets(data: bytes, message: str) -> None:
    with pytest.raises(ProtocolViolation) as caught:
        p.parse_startup_packet(data)
    assert str(caught.value) == message


def test_startup_packet_at_the_limit() -> None:
    value = "v" * (10_000 - 8 - len(b"user\x00") - 2)
    packet = p.startup_message({"user": value})
    assert len(packet) == 10_000
    assert p.parse_startup_packet(packet)[1] == 10_000


def test_tls_client_hello_detection() -> None:
    assert p.is_tls_client_hello(b"\x16\x03\x01\x02\x00")
    assert not p.is_tls_client_hello(p.ssl_request())
    assert not p.is_tls_client_hello(b"")
    assert not p.is_tls_client_hello(b"GET / HTTP/1.1")


# --------------------------------------------------------------------------------------------------------------
# Typed frames

STREAM_MESSAGES = [
    p.authentication_ok(),
    p.parameter_status("a", "b"),
    p.row_description(["x"]),
    p.data_row(["1" * 300]),
    p.empty_query_response(),
    p.command_complete("SELECT 1"),
    p.ready_for_query("I"),
]


def test_iter_frames_offsets() -> None:
    stream = b"".join(STREAM_MESSAGES)
    frames = list(p.iter_frames(stream))
    assert [chr(frame.type) for frame in frames] == ["R", "S", "T", "D", "I", "C", "Z"]
    pos = 0
    for frame, message in zip(frames, STREAM_MESSAGES, strict=True):
        assert frame == Frame(message[0], pos, pos + len(message))
        assert stream[frame.start : frame.end] == message
        assert stream[frame.payload_start : frame.end] == message[5:]
        pos += len(message)


def test_iter_frames_start_offset_and_buffer_kinds() -> None:
    stream = b"junk" + b"".join(STREAM_MESSAGES)
    expected = list(p.iter_frames(bytearray(stream), 4))
    assert expected[0] == Frame(ord("R"), 4, 13)
    assert list(p.iter_frames(memoryview(stream), 4)) == expected
    assert list(p.iter_frames(stream, 4)) == expected


def test_iter_frames_stops_at_an_incomplete_frame() -> None:
    stream = p.query("SELECT 1") + p.query("SELECT 2")[:-1]
    frames = list(p.iter_frames(stream))
    assert frames == [Frame(ord("Q"), 0, 14)]
    assert list(p.iter_frames(stream[:4])) == []


@pytest.mark.parametrize("length", [-1, 0, 3])
def test_iter_frames_refuses_lengths_below_four(length: int) -> None:
    with pytest.raises(ProtocolViolation, match=f"^invalid message length {length}$"):
        list(p.iter_frames(p.sync() + b"Q" + int32(length)))


def test_iter_frames_refuses_oversized_frames_from_the_header() -> None:
    # Only the header arrived: the refusal does not wait for 1 MiB of body.
    header = b"D" + int32(1025)
    with pytest.raises(ProtocolViolation, match=r"^message length 1025 exceeds the limit of 1024 bytes$"):
        list(p.iter_frames(header, max_size=1024))
    assert list(p.iter_frames(b"D" + int32(1024), max_size=1024)) == []  # at the limit: waits for the body


def test_frame_is_immutable() -> None:
    frame = next(p.iter_frames(p.sync()))
    with pytest.raises(AttributeError):
        frame.type = 0  # type: ignore[misc]
    assert frame == Frame(ord("S"), 0, 5)
    assert hash(frame) == hash(Frame(ord("S"), 0, 5))


def frames_of_chunks(chunks: list[bytes]) -> list[bytes]:
    """Reassemble a stream fed chunk by chunk, the way the relay does: keep the incomplete tail."""
    buffer = bytearray()
    messages = []
    for chunk in chunks:
        buffer += chunk
        end = 0
        for frame in p.iter_frames(buffer):
            messages.append(bytes(buffer[frame.start : frame.end]))
            end = frame.end
        del buffer[:end]
    assert not buffer
    return messages


def test_iter_frames_split_at_every_position() -> None:
    stream = b"".join(STREAM_MESSAGES)
    for cut in range(len(stream) + 1):
        assert frames_of_chunks([stream[:cut], stream[cut:]]) == STREAM_MESSAGES


message_strategy = st.one_of(
    st.text(max_size=40).filter(lambda text: "\0" not in text).map(p.query),
    st.lists(st.one_of(st.none(), st.text(max_size=20)), max_size=5).map(p.data_row),
    st.sampled_from(["I", "T", "E"]).map(p.ready_for_query),
    st.just(p.sync()),
)


@settings(max_examples=200, deadline=None)
@given(messages=st.lists(message_strategy, min_size=1, max_size=8), data=st.data())
def test_iter_frames_any_chunking_yields_the_same_frames(messages: list[bytes], data: st.DataObject) -> None:
    stream = b"".join(messages)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    chunks = [stream[start:end] for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    assert frames_of_chunks(chunks) == messages
