"""PostgreSQL protocol 3.0 framing and message codecs: pure functions over bytes.

Two framings exist. The first packet of a connection is *untyped* (``Int32 length`` including itself, then
``Int32 code``): SSLRequest, GSSENCRequest, CancelRequest or StartupMessage, read with
:func:`parse_startup_packet`. Every later message is *typed* (``Byte1 type``, ``Int32 length`` including itself
but not the type byte, payload), found with :func:`iter_frames` — which yields offsets, never copies, because
the relay scans every backend message with it.

Encoders return ``bytes``; they raise ``ValueError`` for a value that cannot be put on the wire (a NUL inside a
string, a field code that is not one ASCII letter). Decoders take the *payload* (the bytes after the 5-byte
header) and raise :class:`ProtocolViolation` for anything malformed: a missing terminator, trailing bytes, a
short read, text that is not UTF-8 (DSQL speaks UTF-8 only). A violation's message never quotes payload bytes —
the payload may be a password.

Reference: PostgreSQL's "Frontend/Backend Protocol — Message Formats" chapter (protocol.sgml).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

# Untyped packet codes (the Int32 after the length), PostgreSQL's pqcomm.h.
SSL_REQUEST_CODE = 80877103
GSSENC_REQUEST_CODE = 80877104
CANCEL_REQUEST_CODE = 80877102
PROTOCOL_3_0 = 196608  # (3 << 16) | 0
PROTOCOL_3_2 = 196610  # libpq 18's max_protocol_version=3.2 (variable-length cancel keys)
# PostgreSQL's MAX_STARTUP_PACKET_LENGTH: a longer startup packet is refused before it is read.
MAX_STARTUP_PACKET = 10_000
DEFAULT_MAX_MESSAGE = 1 << 30  # PostgreSQL's own hard cap (MaxAllocSize) for one message
# Cancel keys: exactly 4 bytes in protocol 3.0; 3.2 allows up to 256 and PostgreSQL 18 accepts 1..256 in a
# CancelRequest.
MAX_CANCEL_KEY = 256
TLS_HANDSHAKE_RECORD = 0x16  # the first byte of a TLS ClientHello record

_INT32 = struct.Struct("!i")
_UINT32 = struct.Struct("!I")
_INT16 = struct.Struct("!h")
_LENGTH_CODE = struct.Struct("!ii")
_TYPE_LENGTH = struct.Struct("!Bi")

READY_STATUSES = frozenset({"I", "T", "E"})  # idle, in a transaction block, in a failed transaction block
TEXT_OID = 25


class ProtocolViolation(Exception):
    """The peer broke the protocol: the connection cannot go on.

    ``sqlstate`` is the code a server would answer with before closing (``08P01`` protocol_violation unless the
    check says otherwise, e.g. ``0A000`` for an unsupported protocol version, ``28000`` for a startup packet
    without a user). The message names the check, never the payload bytes.
    """

    def __init__(self, message: str, *, sqlstate: str = "08P01") -> None:
        super().__init__(message)
        self.message = message
        self.sqlstate = sqlstate

    def fields(self) -> list[tuple[str, str]]:
        """The FATAL ErrorResponse fields a server sends for this violation (PostgreSQL sends one for most)."""
        return error_fields("FATAL", self.sqlstate, self.message)


# --------------------------------------------------------------------------------------------------------------
# Untyped startup packets


@dataclass(frozen=True)
class SSLRequest:
    """The client asks for TLS; the server answers one byte, ``S`` or ``N``."""


@dataclass(frozen=True)
class GSSEncRequest:
    """The client asks for GSSAPI encryption; we always answer ``N``."""


@dataclass(frozen=True)
class CancelRequest:
    """Cancel the query running on the backend ``pid`` if ``secret`` matches its key (sent on a new connection)."""

    pid: int
    secret: bytes

    def __repr__(self) -> str:
        # The key authorizes a cancel: keep it out of logs and tracebacks.
        return f"CancelRequest(pid={self.pid}, secret=<{len(self.secret)} bytes>)"


@dataclass(frozen=True)
class StartupMessage:
    """The protocol version the client asks for and its parameters (``user``, ``database``, ``options``, ...)."""

    protocol: int
    params: dict[str, str]

    @property
    def major(self) -> int:
        return self.protocol >> 16

    @property
    def minor(self) -> int:
        return self.protocol & 0xFFFF


StartupPacket = SSLRequest | GSSEncRequest | CancelRequest | StartupMessage


def is_tls_client_hello(first_bytes: bytes | bytearray | memoryview) -> bool:
    """True when a connection starts with a TLS record (direct TLS, libpq's ``sslnegotiation=direct``).

    Unambiguous: a startup packet starts with the high byte of its length, which is 0 for any length PostgreSQL
    accepts.
    """
    return len(first_bytes) > 0 and first_bytes[0] == TLS_HANDSHAKE_RECORD


def parse_startup_packet(buf: bytes | bytearray) -> tuple[StartupPacket | None, int]:
    """Parse the untyped packet at the start of ``buf``: ``(packet, bytes consumed)``, or ``(None, 0)`` while
    it is incomplete. The length is checked as soon as its four bytes arrived, so an oversized packet is
    refused without waiting for it."""
    if len(buf) < 4:
        return None, 0
    (length,) = _INT32.unpack_from(buf, 0)
    if length < 8 or length > MAX_STARTUP_PACKET:
        raise ProtocolViolation("invalid length of startup packet")
    if len(buf) < length:
        return None, 0
    (code,) = _UINT32.unpack_from(buf, 4)
    body = bytes(buf[8:length])
    return _startup_packet(code, body), length


def _startup_packet(code: int, body: bytes) -> StartupPacket:
    if code in (SSL_REQUEST_CODE, GSSENC_REQUEST_CODE):
        if body:
            raise ProtocolViolation("invalid length of encryption request packet")
        return SSLRequest() if code == SSL_REQUEST_CODE else GSSEncRequest()
    if code == CANCEL_REQUEST_CODE:
        if not 4 + 1 <= len(body) <= 4 + MAX_CANCEL_KEY:
            raise ProtocolViolation("invalid length of cancel request packet")
        (pid,) = _INT32.unpack_from(body, 0)
        return CancelRequest(pid, body[4:])
    return StartupMessage(code, _startup_params(body))


def _startup_params(body: bytes) -> dict[str, str]:
    # name\0value\0 ... \0 — PostgreSQL demands the final terminator as the last byte.
    if not body or body[-1] != 0:
        raise ProtocolViolation("invalid startup packet layout: expected terminator as last byte")
    parts = body[:-1].split(b"\0")
    if parts == [b""]:
        return {}
    # After dropping the final terminator the list is name, value, ..., "" (the last pair's value terminator).
    if parts[-1] != b"" or len(parts) % 2 != 1:
        raise ProtocolViolation("invalid startup packet layout: expected terminator as last byte")
    params: dict[str, str] = {}
    for index in range(0, len(parts) - 1, 2):
        name = _text(parts[index], "startup parameter name")
        if not name:
            raise ProtocolViolation("invalid startup packet layout: empty parameter name")
        params[name] = _text(parts[index + 1], "startup parameter value")
    return params


# --------------------------------------------------------------------------------------------------------------
# Typed frames


@dataclass(frozen=True, slots=True)
class Frame:
    """One typed message inside a buffer: ``buf[start:end]`` is the whole message, ``buf[start + 5:end]`` its
    payload, ``type`` the type byte as an int (``ord("Q")``)."""

    type: int
    start: int
    end: int

    @property
    def payload_start(self) -> int:
        return self.start + 5


def iter_frames(
    buf: bytes | bytearray | memoryview, start: int = 0, max_size: int = DEFAULT_MAX_MESSAGE
) -> Iterator[Frame]:
    """The complete typed messages in ``buf`` from ``start`` on; stops at the first incomplete one (its start
    is the last frame's ``end``, or ``start``). Raises :class:`ProtocolViolation` as soon as a header declares a
    length below 4 or above ``max_size``, without waiting for the body."""
    unpack = _TYPE_LENGTH.unpack_from
    new_frame = _new_frame
    size = len(buf)
    pos = start
    while pos + 5 <= size:
        message_type, length = unpack(buf, pos)
        if length < 4 or length > max_size:
            raise ProtocolViolation(_bad_length(length, max_size))
        end = pos + 1 + length
        if end > size:
            return
        yield new_frame(message_type, pos, end)
        pos = end


def _new_frame(message_type: int, start: int, end: int) -> Frame:
    # The dataclass __init__ of a frozen class goes through object.__setattr__ per field; set the slots directly
    # (same result, ~3x faster — this runs once per relayed message).
    frame = object.__new__(Frame)
    _set_type(frame, message_type)
    _set_start(frame, start)
    _set_end(frame, end)
    return frame


# The slot descriptors of Frame's fields (vars(): mypy knows them only as instance attributes).
_set_type = vars(Frame)["type"].__set__
_set_start = vars(Frame)["start"].__set__
_set_end = vars(Frame)["end"].__set__


def _bad_length(length: int, max_size: int) -> str:
    if length < 4:
        return f"invalid message length {length}"
    return f"message length {length} exceeds the limit of {max_size} bytes"


def frame_header(buf: bytes | bytearray | memoryview, pos: int = 0) -> tuple[int, int] | None:
    """``(type, total size incl. the type byte)`` of the message at ``pos``, or None when fewer than 5 bytes are
    there. No bound is checked: callers that need one use :func:`iter_frames`."""
    if len(buf) - pos < 5:
        return None
    message_type, length = _TYPE_LENGTH.unpack_from(buf, pos)
    return message_type, 1 + length


# --------------------------------------------------------------------------------------------------------------
# Encoding helpers


def _cstring(text: str) -> bytes:
    data = text.encode("utf-8")
    if b"\0" in data:
        raise ValueError("a protocol string cannot contain a NUL character")
    return data + b"\0"


def _message(message_type: bytes, payload: bytes = b"") -> bytes:
    return message_type + _INT32.pack(len(payload) + 4) + payload


def _untyped(code: int, payload: bytes = b"") -> bytes:
    return _LENGTH_CODE.pack(len(payload) + 8, code) + payload


def _fields(message_type: bytes, fields: Sequence[tuple[str, str]]) -> bytes:
    parts = []
    for code, value in fields:
        if len(code) != 1 or not code.isascii() or not code.isalpha():
            raise ValueError("an error field code is one ASCII letter")
        parts.append(code.encode("ascii") + _cstring(value))
    parts.append(b"\0")
    return _message(message_type, b"".join(parts))


def _check_key(secret: bytes) -> bytes:
    if not 1 <= len(secret) <= MAX_CANCEL_KEY:
        raise ValueError(f"a cancel key is 1 to {MAX_CANCEL_KEY} bytes")
    return bytes(secret)


# --------------------------------------------------------------------------------------------------------------
# Backend messages (server -> client)

AUTH_OK = 0
AUTH_KERBEROS_V5 = 2
AUTH_CLEARTEXT_PASSWORD = 3
AUTH_MD5_PASSWORD = 5
AUTH_GSS = 7
AUTH_GSS_CONTINUE = 8
AUTH_SSPI = 9
AUTH_SASL = 10
AUTH_SASL_CONTINUE = 11
AUTH_SASL_FINAL = 12


def authentication_ok() -> bytes:
    return _message(b"R", _INT32.pack(AUTH_OK))


def authentication_cleartext_password() -> bytes:
    return _message(b"R", _INT32.pack(AUTH_CLEARTEXT_PASSWORD))


def parameter_status(name: str, value: str) -> bytes:
    return _message(b"S", _cstring(name) + _cstring(value))


def backend_key_data(pid: int, secret: bytes) -> bytes:
    return _message(b"K", _INT32.pack(pid) + _check_key(secret))


def ready_for_query(status: str) -> bytes:
    if status not in READY_STATUSES:
        raise ValueError("a transaction status is one of I, T, E")
    return _message(b"Z", status.encode("ascii"))


def error_fields(
    severity: str, sqlstate: str, message: str, *, detail: str | None = None, hint: str | None = None
) -> list[tuple[str, str]]:
    """ErrorResponse/NoticeResponse fields in PostgreSQL's order: S, V (the unlocalized severity), C, M, D, H."""
    fields = [("S", severity), ("V", severity), ("C", sqlstate), ("M", message)]
    if detail is not None:
        fields.append(("D", detail))
    if hint is not None:
        fields.append(("H", hint))
    return fields


def error_response(fields: Sequence[tuple[str, str]]) -> bytes:
    return _fields(b"E", fields)


def notice_response(fields: Sequence[tuple[str, str]]) -> bytes:
    return _fields(b"N", fields)


def command_complete(tag: str) -> bytes:
    return _message(b"C", _cstring(tag))


def row_description(names: Sequence[str]) -> bytes:
    """Text columns (type ``text``, oid 25, variable length, no typmod, text format), not tied to a table."""
    column = struct.pack("!ihihih", 0, 0, TEXT_OID, -1, -1, 0)
    payload = _INT16.pack(len(names)) + b"".join(_cstring(name) + column for name in names)
    return _message(b"T", payload)


def data_row(values: Sequence[str | None]) -> bytes:
    parts = [_INT16.pack(len(values))]
    for value in values:
        if value is None:
            parts.append(_INT32.pack(-1))
        else:
            data = value.encode("utf-8")
            parts.append(_INT32.pack(len(data)) + data)
    return _message(b"D", b"".join(parts))


def empty_query_response() -> bytes:
    return _message(b"I")


def negotiate_protocol_version(newest_minor: int, unrecognized: Sequence[str]) -> bytes:
    """NegotiateProtocolVersion. The first field is the *whole* version, ``(3 << 16) | newest_minor`` — what
    PostgreSQL sends (``FrontendProtocol``) and what libpq checks (a value below 196608 fails the connection with
    "server requested downgrade to pre-3.0 protocol version"), although the documentation says "minor version"."""
    payload = _INT32.pack((3 << 16) | newest_minor) + _INT32.pack(len(unrecognized))
    return _message(b"v", payload + b"".join(_cstring(option) for option in unrecognized))


# --------------------------------------------------------------------------------------------------------------
# Frontend messages (client -> server)


def startup_message(params: Mapping[str, str], protocol: int = PROTOCOL_3_0) -> bytes:
    body = b"".join(_cstring(name) + _cstring(value) for name, value in params.items()) + b"\0"
    packet = _untyped(protocol, body)
    if len(packet) > MAX_STARTUP_PACKET:
        raise ValueError(f"a startup packet is at most {MAX_STARTUP_PACKET} bytes")
    return packet


def ssl_request() -> bytes:
    return _untyped(SSL_REQUEST_CODE)


def gssenc_request() -> bytes:
    return _untyped(GSSENC_REQUEST_CODE)


def cancel_request(pid: int, secret: bytes) -> bytes:
    return _untyped(CANCEL_REQUEST_CODE, _INT32.pack(pid) + _check_key(secret))


def password_message(text: str) -> bytes:
    return _message(b"p", _cstring(text))


def sasl_initial_response(mechanism: str, data: bytes | None) -> bytes:
    """SASLInitialResponse (a ``p`` message): the mechanism and its first message (None: no data, length -1)."""
    tail = _INT32.pack(-1) if data is None else _INT32.pack(len(data)) + data
    return _message(b"p", _cstring(mechanism) + tail)


def sasl_response(data: bytes) -> bytes:
    return _message(b"p", data)


def query(sql: str) -> bytes:
    return _message(b"Q", _cstring(sql))


def parse(name: str, sql: str, param_oids: Sequence[int] = ()) -> bytes:
    oids = b"".join(_UINT32.pack(oid) for oid in param_oids)
    return _message(b"P", _cstring(name) + _cstring(sql) + _INT16.pack(len(param_oids)) + oids)


def bind(portal: str, statement: str, params: Sequence[str | None] = ()) -> bytes:
    """Bind with every parameter and every result column in text format (no format codes: all text)."""
    parts = [_cstring(portal), _cstring(statement), _INT16.pack(0), _INT16.pack(len(params))]
    for value in params:
        if value is None:
            parts.append(_INT32.pack(-1))
        else:
            data = value.encode("utf-8")
            parts.append(_INT32.pack(len(data)) + data)
    parts.append(_INT16.pack(0))
    return _message(b"B", b"".join(parts))


def _kind(kind: str) -> bytes:
    if kind not in ("S", "P"):
        raise ValueError("kind is 'S' (statement) or 'P' (portal)")
    return kind.encode("ascii")


def describe(kind: str, name: str) -> bytes:
    return _message(b"D", _kind(kind) + _cstring(name))


def close(kind: str, name: str) -> bytes:
    return _message(b"C", _kind(kind) + _cstring(name))


def execute(portal: str, max_rows: int = 0) -> bytes:
    return _message(b"E", _cstring(portal) + _INT32.pack(max_rows))


def sync() -> bytes:
    return _message(b"S")


def flush() -> bytes:
    return _message(b"H")


def terminate() -> bytes:
    return _message(b"X")


# --------------------------------------------------------------------------------------------------------------
# Decoders (payload = the bytes after the 5-byte header)


def _text(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolViolation(f"invalid UTF-8 in {what}") from None


class _Reader:
    """Reads a payload front to back; every short read or leftover byte is a ProtocolViolation."""

    __slots__ = ("data", "pos", "what")

    def __init__(self, payload: bytes | bytearray | memoryview, what: str) -> None:
        self.data = bytes(payload)
        self.pos = 0
        self.what = what

    def cstring(self) -> str:
        end = self.data.find(b"\0", self.pos)
        if end < 0:
            raise ProtocolViolation(f"missing string terminator in {self.what}")
        text = _text(self.data[self.pos : end], self.what)
        self.pos = end + 1
        return text

    def take(self, count: int) -> bytes:
        if count < 0 or self.pos + count > len(self.data):
            raise ProtocolViolation(f"{self.what} is too short")
        chunk = self.data[self.pos : self.pos + count]
        self.pos += count
        return chunk

    def int16(self) -> int:
        (value,) = _INT16.unpack(self.take(2))
        return int(value)

    def int32(self) -> int:
        (value,) = _INT32.unpack(self.take(4))
        return int(value)

    def uint32(self) -> int:
        (value,) = _UINT32.unpack(self.take(4))
        return int(value)

    def byte(self) -> str:
        return chr(self.take(1)[0])

    def rest(self) -> bytes:
        chunk = self.data[self.pos :]
        self.pos = len(self.data)
        return chunk

    def at_end(self) -> bool:
        return self.pos == len(self.data)

    def end(self) -> None:
        if self.pos != len(self.data):
            raise ProtocolViolation(f"unexpected trailing bytes in {self.what}")


def _single_cstring(payload: bytes | bytearray | memoryview, what: str) -> str:
    reader = _Reader(payload, what)
    text = reader.cstring()
    reader.end()
    return text


def decode_fields(payload: bytes | bytearray | memoryview) -> list[tuple[str, str]]:
    """ErrorResponse / NoticeResponse fields, in the order received."""
    reader = _Reader(payload, "error fields")
    fields: list[tuple[str, str]] = []
    while True:
        code = reader.take(1)
        if code == b"\0":
            break
        fields.append((chr(code[0]), reader.cstring()))
    reader.end()
    return fields


def decode_query(payload: bytes | bytearray | memoryview) -> str:
    return _single_cstring(payload, "query string")


def decode_parse(payload: bytes | bytearray | memoryview) -> tuple[str, str, tuple[int, ...]]:
    """Parse: (statement name, SQL, parameter type oids)."""
    reader = _Reader(payload, "Parse message")
    name = reader.cstring()
    sql = reader.cstring()
    count = reader.int16()
    if count < 0:
        raise ProtocolViolation("invalid parameter count in Parse message")
    oids = tuple(reader.uint32() for _ in range(count))
    reader.end()
    return name, sql, oids


def decode_bind_names(payload: bytes | bytearray | memoryview) -> tuple[str, str]:
    """Bind: (portal, statement) — the rest of the message (parameter values) is not read."""
    reader = _Reader(payload, "Bind message")
    return reader.cstring(), reader.cstring()


@dataclass(frozen=True)
class BindMessage:
    portal: str
    statement: str
    param_formats: tuple[int, ...]
    params: tuple[bytes | None, ...]
    result_formats: tuple[int, ...]


def decode_bind(payload: bytes | bytearray | memoryview) -> BindMessage:
    """The whole Bind message (parameter values as raw bytes, None for NULL)."""
    reader = _Reader(payload, "Bind message")
    portal, statement = reader.cstring(), reader.cstring()
    param_formats = _int16_list(reader)
    count = reader.int16()
    if count < 0:
        raise ProtocolViolation("invalid parameter count in Bind message")
    params = tuple(_bind_value(reader) for _ in range(count))
    result_formats = _int16_list(reader)
    reader.end()
    return BindMessage(portal, statement, param_formats, params, result_formats)


def _int16_list(reader: _Reader) -> tuple[int, ...]:
    count = reader.int16()
    if count < 0:
        raise ProtocolViolation(f"invalid count in {reader.what}")
    return tuple(reader.int16() for _ in range(count))


def _bind_value(reader: _Reader) -> bytes | None:
    length = reader.int32()
    if length == -1:
        return None
    return reader.take(length)


def _kind_and_name(payload: bytes | bytearray | memoryview, what: str) -> tuple[str, str]:
    reader = _Reader(payload, what)
    kind = reader.byte()
    if kind not in ("S", "P"):
        raise ProtocolViolation(f"invalid kind in {what}")
    name = reader.cstring()
    reader.end()
    return kind, name


def decode_describe(payload: bytes | bytearray | memoryview) -> tuple[str, str]:
    """Describe: (kind ``S``/``P``, name)."""
    return _kind_and_name(payload, "Describe message")


def decode_close(payload: bytes | bytearray | memoryview) -> tuple[str, str]:
    """Close: (kind ``S``/``P``, name)."""
    return _kind_and_name(payload, "Close message")


def decode_execute(payload: bytes | bytearray | memoryview) -> tuple[str, int]:
    """Execute: (portal, maximum rows, 0 for all)."""
    reader = _Reader(payload, "Execute message")
    portal = reader.cstring()
    max_rows = reader.int32()
    reader.end()
    return portal, max_rows


def decode_password(payload: bytes | bytearray | memoryview) -> str:
    """PasswordMessage: one string, exactly filling the message (PostgreSQL's "invalid password packet size")."""
    return _single_cstring(payload, "password message")


def decode_command_complete(payload: bytes | bytearray | memoryview) -> str:
    return _single_cstring(payload, "CommandComplete message")


def decode_ready_for_query(payload: bytes | bytearray | memoryview) -> str:
    if len(payload) != 1 or chr(payload[0]) not in READY_STATUSES:
        raise ProtocolViolation("invalid ReadyForQuery message")
    return chr(payload[0])


def decode_backend_key_data(payload: bytes | bytearray | memoryview) -> tuple[int, bytes]:
    reader = _Reader(payload, "BackendKeyData message")
    pid = reader.int32()
    secret = reader.rest()
    if not 1 <= len(secret) <= MAX_CANCEL_KEY:
        raise ProtocolViolation("invalid cancel key length in BackendKeyData message")
    return pid, secret


def decode_parameter_status(payload: bytes | bytearray | memoryview) -> tuple[str, str]:
    reader = _Reader(payload, "ParameterStatus message")
    name, value = reader.cstring(), reader.cstring()
    reader.end()
    return name, value


def decode_authentication(payload: bytes | bytearray | memoryview) -> tuple[int, bytes]:
    """Authentication* (``R``): (request code, the data after it: md5 salt, SASL mechanisms, SASL data)."""
    reader = _Reader(payload, "Authentication message")
    code = reader.int32()
    return code, reader.rest()


def decode_sasl_mechanisms(data: bytes) -> tuple[str, ...]:
    """The mechanism list of AuthenticationSASL: strings, then an empty one."""
    reader = _Reader(data, "AuthenticationSASL message")
    names: list[str] = []
    while True:
        name = reader.cstring()
        if not name:
            break
        names.append(name)
    reader.end()
    return tuple(names)


def decode_negotiate_protocol_version(payload: bytes | bytearray | memoryview) -> tuple[int, tuple[str, ...]]:
    """NegotiateProtocolVersion: (the newest version the server speaks — the whole number, e.g. 196608 for 3.0 —,
    the options it did not recognize)."""
    reader = _Reader(payload, "NegotiateProtocolVersion message")
    version = reader.int32()
    count = reader.int32()
    if count < 0:
        raise ProtocolViolation("invalid option count in NegotiateProtocolVersion message")
    options = tuple(reader.cstring() for _ in range(count))
    reader.end()
    return version, options


def decode_row_description(payload: bytes | bytearray | memoryview) -> tuple[tuple[str, int], ...]:
    """RowDescription: (column name, type oid) per column."""
    reader = _Reader(payload, "RowDescription message")
    count = reader.int16()
    columns = []
    for _ in range(max(count, 0)):
        name = reader.cstring()
        reader.take(6)  # table oid, column number
        type_oid = reader.uint32()
        reader.take(8)  # type size, type modifier, format code
        columns.append((name, type_oid))
    reader.end()
    return tuple(columns)


def decode_data_row(payload: bytes | bytearray | memoryview) -> tuple[bytes | None, ...]:
    """DataRow: the raw column values (None for NULL)."""
    reader = _Reader(payload, "DataRow message")
    count = reader.int16()
    values = tuple(_bind_value(reader) for _ in range(max(count, 0)))
    reader.end()
    return values


def split_options(options: str) -> list[str]:
    """The words of a StartupMessage's ``options`` as PostgreSQL's ``pg_split_opts`` splits them: whitespace
    separates, a backslash keeps the next character literally (``-c search_path=a\\ b``)."""
    words: list[str] = []
    current: list[str] = []
    in_word = escaped = False
    for char in options:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = in_word = True
        elif char.isspace():
            if in_word:
                words.append("".join(current))
                current, in_word = [], False
        else:
            current.append(char)
            in_word = True
    if in_word:
        words.append("".join(current))
    return words
