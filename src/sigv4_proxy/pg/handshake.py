"""The start of a PostgreSQL connection, up to authentication: two sans-IO state machines.

:class:`ServerHandshake` is what a server sees (the emulator's front door). Feed it the bytes read from the
client with :meth:`~ServerHandshake.receive`; it returns events and the caller answers with the methods that
return bytes to write::

    machine = ServerHandshake()
    if is_tls_client_hello(first_bytes):        # direct TLS (sslnegotiation=direct): no SSLRequest
        machine.tls_started()                   # ... after wrapping the socket
    for event in machine.receive(data):
        TLSRequested     -> write(machine.accept_tls()) and start TLS, then machine.tls_started()
                            (or write(machine.refuse_tls()))
        GSSEncRequested  -> write(machine.refuse_gssenc())
        CancelRequested  -> forward the cancel; the connection is over
        StartupReceived  -> check the parameters; write(machine.request_password())  [or machine.refuse(...)]
        PasswordReceived -> verify; write(machine.accept()) or write(machine.refuse(fields))
        ClientTerminated -> close
    session_bytes = machine.leftover()          # anything the client sent after the password

It speaks protocol 3.0 only: a client asking for 3.2 (libpq 18's ``max_protocol_version``) or sending ``_pq_.``
options gets NegotiateProtocolVersion(3.0, [the options]) before the authentication request, as PostgreSQL does
(:meth:`~ServerHandshake.negotiate_reply`, also prepended automatically to the first answer when not taken).

:class:`ClientHandshake` is a client logging in to a real PostgreSQL (the emulator's backend session, the ``pg``
proxy's upstream): every event carries ``raw``, the exact bytes of its message, so a proxy can forward them.

Errors: :class:`~sigv4_proxy.pg.protocol.ProtocolViolation` when the peer breaks the protocol (its ``fields()``
are the FATAL ErrorResponse a server may send before closing); :class:`HandshakeStateError` when the caller
calls a method in the wrong state (a bug in the caller, not the peer).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum

from sigv4_proxy.pg import protocol
from sigv4_proxy.pg.protocol import PROTOCOL_3_0, ProtocolViolation

# The handshake's own messages are small; a larger one from a backend is a broken or hostile peer.
MAX_HANDSHAKE_MESSAGE = 1 << 20
PROTOCOL_OPTION_PREFIX = "_pq_."
SUPPORTED_MAJOR = 3
NEWEST_MINOR = 0


class HandshakeStateError(RuntimeError):
    """A method was called in a state where it makes no sense (a caller bug, not the peer's fault)."""


# --------------------------------------------------------------------------------------------------------------
# Server side


@dataclass(frozen=True)
class TLSRequested:
    """The client wants TLS: by SSLRequest (``direct=False``) or by starting with a ClientHello (``direct=True``:
    the ClientHello is in :meth:`ServerHandshake.tls_bytes`)."""

    direct: bool


@dataclass(frozen=True)
class GSSEncRequested:
    """The client asks for GSSAPI encryption (libpq tries it first when it has Kerberos credentials)."""


@dataclass(frozen=True)
class CancelRequested:
    pid: int
    secret: bytes

    def __repr__(self) -> str:
        return f"CancelRequested(pid={self.pid}, secret=<{len(self.secret)} bytes>)"


@dataclass(frozen=True)
class StartupReceived:
    """``protocol`` is the version the client asked for; ``params`` its parameters without the ``_pq_.``
    protocol options, which are in ``protocol_options`` (we recognize none)."""

    protocol: int
    params: dict[str, str]
    protocol_options: tuple[str, ...] = ()


@dataclass(frozen=True)
class PasswordReceived:
    password: str = field(repr=False)  # a token: never in a repr, a log line or a traceback


@dataclass(frozen=True)
class ClientTerminated:
    """The client sent Terminate (``X``) instead of a password."""


ServerEvent = TLSRequested | GSSEncRequested | CancelRequested | StartupReceived | PasswordReceived | ClientTerminated


class _Server(Enum):
    STARTUP = "waiting for a startup packet"
    TLS_DECISION = "waiting for the answer to a TLS request"
    TLS_PENDING = "waiting for the TLS layer"
    STARTUP_RECEIVED = "startup received"
    AWAITING_PASSWORD = "waiting for the password"
    PASSWORD_RECEIVED = "password received"
    AUTHENTICATED = "authenticated"
    CLOSED = "closed"


class ServerHandshake:
    """A server's side of the connection start (see the module docstring for the sequence)."""

    def __init__(self, *, tls_active: bool = False, max_password: int = 65_536 + 1024) -> None:
        self._state = _Server.STARTUP
        self._buffer = bytearray()
        self._tls_active = tls_active
        # PostgreSQL allows one encryption negotiation of each kind, and none of either once TLS runs.
        self._ssl_done = tls_active
        self._gss_done = tls_active
        self._direct = False
        self._max_password = max_password
        self._gss_pending = False
        self._negotiate: bytes | None = None
        self.startup: StartupReceived | None = None

    # -- properties -----------------------------------------------------------------------------------------

    @property
    def tls_active(self) -> bool:
        return self._tls_active

    @property
    def closed(self) -> bool:
        return self._state is _Server.CLOSED

    @property
    def authenticated(self) -> bool:
        return self._state is _Server.AUTHENTICATED

    @property
    def state(self) -> str:
        return self._state.value

    # -- input ----------------------------------------------------------------------------------------------

    def receive(self, data: bytes) -> list[ServerEvent]:
        """Feed bytes read from the client (decrypted ones once TLS runs); returns the events they complete."""
        if self._state is _Server.CLOSED:
            return []  # the peer may still be writing after our refusal: nothing to do with it
        if self._state in (_Server.PASSWORD_RECEIVED, _Server.AUTHENTICATED):
            self._buffer += data  # the session's first bytes: kept for leftover()
            return []
        if self._state in (_Server.TLS_DECISION, _Server.TLS_PENDING):
            if self._direct:
                self._buffer += data  # more of the TLS stream: the caller takes it with tls_bytes()
                return []
            # Bytes after SSLRequest but before the TLS layer: plaintext a man in the middle could have injected
            # (CVE-2021-23214); PostgreSQL refuses them too.
            raise ProtocolViolation("received unencrypted data after SSL request")
        self._buffer += data
        events: list[ServerEvent] = []
        while self._buffer and self._state in (_Server.STARTUP, _Server.AWAITING_PASSWORD):
            event = self._next_event()
            if event is None:
                break
            events.append(event)
        if self._buffer and self._state is _Server.STARTUP_RECEIVED:
            raise ProtocolViolation("message received before the server asked for one")
        return events

    def _next_event(self) -> ServerEvent | None:
        if self._state is _Server.STARTUP:
            return self._startup_event()
        return self._password_event()

    def _startup_event(self) -> ServerEvent | None:
        if not self._tls_active and not self._ssl_done and protocol.is_tls_client_hello(self._buffer):
            self._direct = True
            self._ssl_done = self._gss_done = True
            self._state = _Server.TLS_DECISION
            return TLSRequested(direct=True)
        packet, used = protocol.parse_startup_packet(self._buffer)
        if packet is None:
            return None
        del self._buffer[:used]
        if isinstance(packet, protocol.SSLRequest):
            return self._encryption_request(tls=True)
        if isinstance(packet, protocol.GSSEncRequest):
            return self._encryption_request(tls=False)
        if isinstance(packet, protocol.CancelRequest):
            self._state = _Server.CLOSED
            return CancelRequested(packet.pid, packet.secret)
        return self._startup_received(packet)

    def _encryption_request(self, *, tls: bool) -> ServerEvent:
        if self._tls_active:
            raise ProtocolViolation("encryption requested on an encrypted connection")
        if (self._ssl_done if tls else self._gss_done) or self._direct:
            raise ProtocolViolation(f"{'SSL' if tls else 'GSSAPI encryption'} requested twice")
        if tls:
            self._ssl_done = True
            self._state = _Server.TLS_DECISION
            return TLSRequested(direct=False)
        self._gss_done = True
        self._gss_pending = True
        # The answer is always "N"; the client goes on with the same machine state.
        return GSSEncRequested()

    def _startup_received(self, packet: protocol.StartupMessage) -> StartupReceived:
        if packet.major != SUPPORTED_MAJOR:
            raise ProtocolViolation(
                f"unsupported frontend protocol {packet.major}.{packet.minor}: "
                f"server supports {SUPPORTED_MAJOR}.0 to {SUPPORTED_MAJOR}.{NEWEST_MINOR}",
                sqlstate="0A000",
            )
        options = tuple(name for name in packet.params if name.startswith(PROTOCOL_OPTION_PREFIX))
        params = {name: value for name, value in packet.params.items() if not name.startswith(PROTOCOL_OPTION_PREFIX)}
        if not params.get("user"):
            raise ProtocolViolation("no PostgreSQL user name specified in startup packet", sqlstate="28000")
        if packet.minor > NEWEST_MINOR or options:
            self._negotiate = protocol.negotiate_protocol_version(NEWEST_MINOR, options)
        self._state = _Server.STARTUP_RECEIVED
        self.startup = StartupReceived(packet.protocol, params, options)
        return self.startup

    def _password_event(self) -> ServerEvent | None:
        header = protocol.frame_header(self._buffer)
        if header is None:
            return None
        message_type, size = header
        if message_type == ord("X"):
            if size != 5:
                raise ProtocolViolation("invalid Terminate message")
            self._state = _Server.CLOSED
            self._buffer.clear()
            return ClientTerminated()
        if message_type != ord("p"):
            raise ProtocolViolation(f"expected password response, got message type {message_type}")
        if size - 1 < 4 or size - 1 > self._max_password:
            raise ProtocolViolation("invalid password packet size")
        if len(self._buffer) < size:
            return None
        password = protocol.decode_password(self._buffer[5:size])
        del self._buffer[:size]
        self._state = _Server.PASSWORD_RECEIVED
        return PasswordReceived(password)

    # -- answers --------------------------------------------------------------------------------------------

    def _expect(self, *states: _Server) -> None:
        if self._state not in states:
            raise HandshakeStateError(f"not possible while {self._state.value}")

    def accept_tls(self) -> bytes:
        """Answer a TLS request: ``b"S"`` for SSLRequest, nothing for direct TLS (the ClientHello is in
        :meth:`tls_bytes`). Then start TLS and call :meth:`tls_started`."""
        self._expect(_Server.TLS_DECISION)
        self._state = _Server.TLS_PENDING
        if self._direct:
            return b""
        if self._buffer:
            raise ProtocolViolation("received unencrypted data after SSL request")
        return b"S"

    def refuse_tls(self) -> bytes:
        """Refuse a TLS request: ``b"N"`` (the client may go on in plaintext; bytes it sent along with the
        SSLRequest are processed by the next :meth:`receive`, ``receive(b"")`` included); for direct TLS nothing to
        send and the machine is closed (a TLS ClientHello cannot be answered in plaintext)."""
        self._expect(_Server.TLS_DECISION)
        if self._direct:
            self._state = _Server.CLOSED
            self._buffer.clear()
            return b""
        self._state = _Server.STARTUP
        return b"N"

    def tls_bytes(self) -> bytes:
        """The bytes of a direct-TLS ClientHello received so far: feed them to the TLS layer."""
        if not self._direct or self._state not in (_Server.TLS_DECISION, _Server.TLS_PENDING):
            raise HandshakeStateError("no direct TLS ClientHello to hand over")
        data = bytes(self._buffer)
        self._buffer.clear()
        return data

    def tls_started(self) -> None:
        """The TLS layer runs: from now on feed decrypted bytes. Called after :meth:`accept_tls`, or directly at
        the start when the caller detected a direct-TLS ClientHello itself (:func:`is_tls_client_hello`)."""
        if self._state is _Server.STARTUP and not self._buffer and not self._tls_active and not self._ssl_done:
            self._direct = True
        else:
            self._expect(_Server.TLS_PENDING)
            if self._buffer:
                raise HandshakeStateError("take the ClientHello bytes with tls_bytes() first")
        self._tls_active = True
        self._ssl_done = self._gss_done = True
        self._state = _Server.STARTUP

    def refuse_gssenc(self) -> bytes:
        self._expect(_Server.STARTUP)
        if not self._gss_pending:
            raise HandshakeStateError("no GSSAPI encryption request to refuse")
        self._gss_pending = False
        return b"N"

    def negotiate_reply(self) -> bytes | None:
        """NegotiateProtocolVersion when the client asked for more than 3.0 or sent ``_pq_.`` options, else None.
        Returned once; the first answer after the startup packet carries it when not taken here."""
        reply, self._negotiate = self._negotiate, None
        return reply

    def _with_negotiation(self, message: bytes) -> bytes:
        reply = self.negotiate_reply()
        return message if reply is None else reply + message

    def request_password(self) -> bytes:
        """AuthenticationCleartextPassword (DSQL receives the IAM token as the password, over TLS)."""
        self._expect(_Server.STARTUP_RECEIVED)
        self._state = _Server.AWAITING_PASSWORD
        return self._with_negotiation(protocol.authentication_cleartext_password())

    def accept(self) -> bytes:
        """AuthenticationOk, after the password (or directly after the startup packet: no password asked). The
        caller follows with ParameterStatus/BackendKeyData/ReadyForQuery (its session's)."""
        self._expect(_Server.STARTUP_RECEIVED, _Server.PASSWORD_RECEIVED)
        self._state = _Server.AUTHENTICATED
        return self._with_negotiation(protocol.authentication_ok())

    def refuse(self, fields: Sequence[tuple[str, str]]) -> bytes:
        """An ErrorResponse with ``fields`` (a FATAL one); the machine is closed, the caller closes the socket."""
        self._expect(_Server.STARTUP, _Server.STARTUP_RECEIVED, _Server.AWAITING_PASSWORD, _Server.PASSWORD_RECEIVED)
        message = protocol.error_response(fields)
        self._state = _Server.CLOSED
        self._buffer.clear()
        return self._with_negotiation(message)

    def leftover(self) -> bytes:
        """The bytes received after the password (they belong to the session); taken once."""
        self._expect(_Server.PASSWORD_RECEIVED, _Server.AUTHENTICATED)
        data = bytes(self._buffer)
        self._buffer.clear()
        return data


# --------------------------------------------------------------------------------------------------------------
# Client side


@dataclass(frozen=True)
class PasswordRequested:
    """The server asks for a password: ``method`` is ``cleartext``, ``md5`` (``data`` = the 4-byte salt) or
    ``sasl`` (``mechanisms`` lists them, e.g. ``SCRAM-SHA-256``)."""

    method: str
    raw: bytes = field(repr=False)
    data: bytes = field(default=b"", repr=False)
    mechanisms: tuple[str, ...] = ()


@dataclass(frozen=True)
class SASLChallenge:
    """AuthenticationSASLContinue (``final=False``) or AuthenticationSASLFinal (``final=True``)."""

    final: bool
    data: bytes = field(repr=False)
    raw: bytes = field(repr=False)


@dataclass(frozen=True)
class AuthenticationOk:
    raw: bytes = field(repr=False)


@dataclass(frozen=True)
class ProtocolNegotiated:
    """NegotiateProtocolVersion: the newest version the server speaks (whole, ``196608`` is 3.0) and the
    options it ignored."""

    version: int
    unrecognized: tuple[str, ...]
    raw: bytes = field(repr=False)

    @property
    def newest_minor(self) -> int:
        return self.version & 0xFFFF


@dataclass(frozen=True)
class ParameterStatus:
    name: str
    value: str
    raw: bytes = field(repr=False)


@dataclass(frozen=True)
class BackendKey:
    pid: int
    secret: bytes = field(repr=False)
    raw: bytes = field(repr=False)


@dataclass(frozen=True)
class ServerNotice:
    fields: list[tuple[str, str]]
    raw: bytes = field(repr=False)


@dataclass(frozen=True)
class Ready:
    status: str
    raw: bytes = field(repr=False)


@dataclass(frozen=True)
class ServerError:
    """A FATAL ErrorResponse during the handshake: the server closes the connection."""

    fields: list[tuple[str, str]]
    raw: bytes = field(repr=False)


ClientEvent = (
    PasswordRequested
    | SASLChallenge
    | AuthenticationOk
    | ProtocolNegotiated
    | ParameterStatus
    | BackendKey
    | ServerNotice
    | Ready
    | ServerError
)

_PASSWORD_METHODS = {protocol.AUTH_CLEARTEXT_PASSWORD: "cleartext", protocol.AUTH_MD5_PASSWORD: "md5"}


class _Client(Enum):
    NEW = "not started"
    AUTHENTICATING = "authenticating"
    STARTING = "authenticated, waiting for ReadyForQuery"
    READY = "ready"
    FAILED = "refused by the server"


class ClientHandshake:
    """A client's side of the connection start: :meth:`start`, then :meth:`receive` the server's bytes until
    :class:`Ready` (or :class:`ServerError`); :meth:`password` answers :class:`PasswordRequested`."""

    def __init__(
        self, params: Mapping[str, str], *, protocol: int = PROTOCOL_3_0, max_message: int = MAX_HANDSHAKE_MESSAGE
    ) -> None:
        self._params = dict(params)
        self._protocol = protocol
        self._max_message = max_message
        self._state = _Client.NEW
        self._buffer = bytearray()
        self.parameters: dict[str, str] = {}
        self.backend_key: tuple[int, bytes] | None = None

    @property
    def ready(self) -> bool:
        return self._state is _Client.READY

    @property
    def failed(self) -> bool:
        return self._state is _Client.FAILED

    def start(self) -> bytes:
        """The StartupMessage to send first."""
        if self._state is not _Client.NEW:
            raise HandshakeStateError("the handshake has already started")
        self._state = _Client.AUTHENTICATING
        return protocol.startup_message(self._params, self._protocol)

    def password(self, text: str) -> bytes:
        """The PasswordMessage answering a ``cleartext`` request (or an ``md5`` one with the hash as ``text``)."""
        if self._state is not _Client.AUTHENTICATING:
            raise HandshakeStateError("the server did not ask for a password")
        return protocol.password_message(text)

    def receive(self, data: bytes) -> list[ClientEvent]:
        """Feed bytes from the server; returns the events of the complete messages. After :class:`Ready` the
        bytes are the session's (see :meth:`leftover`); after :class:`ServerError` they are ignored."""
        if self._state is _Client.NEW:
            raise HandshakeStateError("call start() first")
        if self._state is _Client.FAILED:
            return []
        self._buffer += data
        if self._state is _Client.READY:
            return []
        events: list[ClientEvent] = []
        consumed = 0
        for frame in protocol.iter_frames(self._buffer, 0, self._max_message):
            event = self._event(frame.type, bytes(self._buffer[frame.start : frame.end]))
            consumed = frame.end
            events.append(event)
            if self._state in (_Client.READY, _Client.FAILED):
                break
        del self._buffer[:consumed]
        if self._state is _Client.FAILED:
            self._buffer.clear()
        return events

    def leftover(self) -> bytes:
        """The bytes received after ReadyForQuery (the session's); taken once."""
        if self._state is not _Client.READY:
            raise HandshakeStateError("the handshake is not complete")
        data = bytes(self._buffer)
        self._buffer.clear()
        return data

    def _event(self, message_type: int, raw: bytes) -> ClientEvent:
        payload = raw[5:]
        kind = chr(message_type)
        if kind == "E":
            self._state = _Client.FAILED
            return ServerError(protocol.decode_fields(payload), raw)
        if kind == "N":
            return ServerNotice(protocol.decode_fields(payload), raw)
        if self._state is _Client.AUTHENTICATING:
            return self._authentication_event(kind, payload, raw)
        return self._startup_event(kind, payload, raw)

    def _authentication_event(self, kind: str, payload: bytes, raw: bytes) -> ClientEvent:
        if kind == "v":
            version, unrecognized = protocol.decode_negotiate_protocol_version(payload)
            return ProtocolNegotiated(version, unrecognized, raw)
        if kind != "R":
            raise ProtocolViolation(f"unexpected message type {ord(kind)} during authentication")
        code, data = protocol.decode_authentication(payload)
        if code == protocol.AUTH_OK:
            _expect_empty(data)
            self._state = _Client.STARTING
            return AuthenticationOk(raw)
        if code in _PASSWORD_METHODS:
            if len(data) != (4 if code == protocol.AUTH_MD5_PASSWORD else 0):
                raise ProtocolViolation("invalid authentication request")
            return PasswordRequested(_PASSWORD_METHODS[code], raw, data)
        if code == protocol.AUTH_SASL:
            return PasswordRequested("sasl", raw, data, protocol.decode_sasl_mechanisms(data))
        if code in (protocol.AUTH_SASL_CONTINUE, protocol.AUTH_SASL_FINAL):
            return SASLChallenge(code == protocol.AUTH_SASL_FINAL, data, raw)
        raise ProtocolViolation(f"unsupported authentication request {code}")

    def _startup_event(self, kind: str, payload: bytes, raw: bytes) -> ClientEvent:
        if kind == "S":
            name, value = protocol.decode_parameter_status(payload)
            self.parameters[name] = value
            return ParameterStatus(name, value, raw)
        if kind == "K":
            pid, secret = protocol.decode_backend_key_data(payload)
            self.backend_key = (pid, secret)
            return BackendKey(pid, secret, raw)
        if kind == "Z":
            self._state = _Client.READY
            return Ready(protocol.decode_ready_for_query(payload), raw)
        raise ProtocolViolation(f"unexpected message type {ord(kind)} during connection start-up")


def _expect_empty(data: bytes) -> None:
    if data:
        raise ProtocolViolation("invalid authentication request")
