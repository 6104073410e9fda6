"""A minimal blocking PostgreSQL client over our own codecs, for tests that must see the exact bytes a server sends
(the ErrorResponse fields of a refused login, a refusal before TLS), with control over SNI and negotiation that
libpq does not give."""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from sigv4_proxy.pg import protocol as pgp


@dataclass
class Outcome:
    authenticated: bool = False
    error: dict[str, str] = field(default_factory=dict)  # the ErrorResponse's fields by code (S, C, M, D, H, ...)
    parameters: dict[str, str] = field(default_factory=dict)
    ssl_answer: bytes = b""
    closed: bool = False


def login(
    address: tuple[str, int],
    *,
    user: str,
    password: str,
    sni: str | None,
    ca_file: Path | None = None,
    tls: str = "request",  # "request" (SSLRequest), "direct", or "none"
    database: str = "postgres",
    extra: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> Outcome:
    outcome = Outcome()
    raw = socket.create_connection(address, timeout=timeout)
    sock: socket.socket = raw
    try:
        if tls == "request":
            raw.sendall(pgp.ssl_request())
            outcome.ssl_answer = raw.recv(1)
            sock = _wrap(raw, sni, ca_file)
        elif tls == "direct":
            sock = _wrap(raw, sni, ca_file, alpn=True)
        sock.sendall(pgp.startup_message({"user": user, "database": database, **(extra or {})}))
        return _converse(sock, password, outcome)
    finally:
        sock.close()


def _wrap(raw: socket.socket, sni: str | None, ca_file: Path | None, *, alpn: bool = False) -> socket.socket:
    context = ssl.create_default_context(cafile=str(ca_file)) if ca_file else ssl.create_default_context()
    context.check_hostname = False  # SNI is under test here, not the certificate (test_tls.py covers that)
    context.verify_mode = ssl.CERT_NONE
    if alpn:
        context.set_alpn_protocols(["postgresql"])
    return context.wrap_socket(raw, server_hostname=sni)


def _converse(sock: socket.socket, password: str, outcome: Outcome) -> Outcome:
    buffer = bytearray()
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            outcome.closed = True
            return outcome
        buffer += chunk
        consumed = 0
        for frame in pgp.iter_frames(buffer):
            consumed = frame.end
            payload = bytes(buffer[frame.start + 5 : frame.end])
            kind = chr(frame.type)
            if kind == "R":
                code, _ = pgp.decode_authentication(payload)
                if code == 3:
                    sock.sendall(pgp.password_message(password))
                elif code == 0:
                    outcome.authenticated = True
            elif kind == "S":
                name, value = pgp.decode_parameter_status(payload)
                outcome.parameters[name] = value
            elif kind == "E":
                outcome.error = dict(pgp.decode_fields(payload))
                return outcome
            elif kind == "Z":
                sock.sendall(pgp.terminate())
                return outcome
        del buffer[:consumed]
