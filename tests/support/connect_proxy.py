"""A loopback HTTP CONNECT proxy for tests: what `HTTPS_PROXY=http://127.0.0.1:<port>` points at.

    with ConnectProxy() as proxy:                       # 127.0.0.1, a free port, threads
        environ = {"HTTPS_PROXY": proxy.url}              # or proxy.url_with("user", "secret")
        ...
        proxy.tunnels                                     # [Tunnel("localhost:8443", 200, None), ...]

Each connection's first request must be ``CONNECT host:port``; the proxy records it (authority, the status it
answered, the user of a ``Proxy-Authorization: Basic`` header) *before* answering, so a client that got its
answer can rely on the record. Then it connects to the target and pipes bytes both ways until either side
closes. It only tunnels to loopback hosts (a test must never reach further); any other target gets 403.

Knobs: ``require=("user", "password")`` answers 407 (with ``Proxy-Authenticate``) to a CONNECT without those
credentials; ``refuse=403`` (or 502, ...) answers every CONNECT with that status. A request other than
CONNECT gets 405: this proxy does not forward plain-http requests.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

__all__ = ["ConnectProxy", "Tunnel", "pipe"]

MAX_HEAD_BYTES = 16 * 1024
REASONS = {
    200: "Connection established",
    403: "Forbidden",
    405: "Method Not Allowed",
    407: "Proxy Authentication Required",
    418: "I'm a teapot",
    502: "Bad Gateway",
}


@dataclass(frozen=True)
class Tunnel:
    """One CONNECT request: its target, the status answered, and the proxy user it presented (if any)."""

    authority: str
    status: int
    user: str | None = None


class ConnectProxy:
    """An HTTP CONNECT proxy on 127.0.0.1 that records every tunnel it was asked for."""

    def __init__(self, *, require: tuple[str, str] | None = None, refuse: int | None = None) -> None:
        self.require = require
        self.refuse = refuse
        self._tunnels: list[Tunnel] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=accept_in_threads,
            args=(self.listener, self._closed, self._serve),
            name=f"connect-proxy:{self.port}",
            daemon=True,
        )
        self._thread.start()

    def url_with(self, user: str, password: str) -> str:
        return f"http://{user}:{password}@127.0.0.1:{self.port}"

    @property
    def tunnels(self) -> list[Tunnel]:
        with self._lock:
            return list(self._tunnels)

    # -- serving ------------------------------------------------------------------------------------------------

    def _serve(self, client: socket.socket) -> None:
        try:
            head = _read_head(client)
        except OSError:
            client.close()
            return
        if head is None:
            client.close()
            return
        request_line, headers = head
        method, _, rest = request_line.partition(" ")
        authority = rest.partition(" ")[0]
        user = _basic_user(headers.get("proxy-authorization"))
        status = self._decide(method, authority, headers)
        upstream = None
        if status == 200:
            try:
                upstream = socket.create_connection(_split_authority(authority), timeout=5)
                upstream.settimeout(None)
            except (OSError, ValueError):
                status = 502
        with self._lock:
            self._tunnels.append(Tunnel(authority, status, user))
        extra = 'Proxy-Authenticate: Basic realm="test"\r\n' if status == 407 else ""
        reply = f"HTTP/1.1 {status} {REASONS.get(status, 'Refused')}\r\n{extra}"
        if status != 200:
            reply += "Content-Length: 0\r\nConnection: close\r\n"
        with contextlib.suppress(OSError):
            client.sendall((reply + "\r\n").encode())
        if upstream is None:
            client.close()
            return
        threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()
        pipe(client, upstream)

    def _decide(self, method: str, authority: str, headers: dict[str, str]) -> int:
        if method.upper() != "CONNECT":
            return 405
        if self.require is not None and headers.get("proxy-authorization") != _basic(*self.require):
            return 407
        if self.refuse is not None:
            return self.refuse
        try:
            host, _ = _split_authority(authority)
        except ValueError:
            return 403
        return 200 if _is_loopback(host) else 403

    # -- lifecycle ----------------------------------------------------------------------------------------------

    def close(self) -> None:
        self._closed.set()
        self.listener.close()

    def __enter__(self) -> ConnectProxy:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _read_head(sock: socket.socket) -> tuple[str, dict[str, str]] | None:
    """The request line and headers (names lower-cased), or None for a connection closed early or a head too long.

    Reads no further than the blank line: a tunnel's client speaks only once it got the proxy's answer."""
    data = bytearray()
    while b"\r\n\r\n" not in data:
        if len(data) > MAX_HEAD_BYTES:
            return None
        chunk = sock.recv(1)
        if not chunk:
            return None
        data += chunk
    lines = data.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return lines[0], headers


def _split_authority(authority: str) -> tuple[str, int]:
    host, _, port = authority.rpartition(":")
    return host.strip("[]"), int(port)


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _basic_user(value: str | None) -> str | None:
    if not value or not value.startswith("Basic "):
        return None
    try:
        return base64.b64decode(value[6:]).decode().partition(":")[0]
    except (ValueError, UnicodeDecodeError):
        return None


def accept_in_threads(listener: socket.socket, closed: threading.Event, serve: Callable[[socket.socket], None]) -> None:
    """Accept connections until `closed` is set or the listener is closed; each is served on its own thread."""
    while not closed.is_set():
        try:
            client, _ = listener.accept()
        except OSError:
            return
        threading.Thread(target=serve, args=(client,), daemon=True).start()


def pipe(source: socket.socket, sink: socket.socket) -> None:
    """Copy `source` to `sink` until either side closes, then close both (one direction of a tunnel)."""
    try:
        while chunk := source.recv(65536):
            sink.sendall(chunk)
    except OSError:
        pass
    finally:
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()
