"""`sigv4-proxy http`: a local plain-HTTP endpoint that forwards every request, signed, to the target.

    curl -N http://127.0.0.1:8080/            ->  POST https://abc123.execute-api.../prod/mcp  (SigV4-signed)

Any MCP client that speaks Streamable HTTP, and curl, can then reach an IAM-protected endpoint.

Design:

- **Server stack**: a small asyncio server on ``h11`` (the HTTP/1.1 state machine httpx already depends on),
  not uvicorn/starlette: no new runtime dependency, tens of milliseconds less start-up, and direct control of
  backpressure — each response chunk is written and drained before the next is read from the upstream, so a
  50 MB body or an endless SSE stream passes through in constant memory.
- **Request bodies are read completely** (up to ``--max-message-bytes``) before they are sent: the signature
  covers the body's SHA-256, so nothing can be sent before the last byte arrived, and a complete body is what
  makes a retry possible. **Response bodies stream** chunk by chunk, SSE included, in their wire encoding.
- **Paths**: ``/`` is the target URL itself; any other path is appended to the target URL's path
  (target ``https://h/prod/mcp``: ``/`` -> ``/prod/mcp``, ``/x?a=1`` -> ``/prod/mcp/x?a=1``). ``/healthz``
  is answered locally.
- **Confinement**: this door signs with the user's credentials, so a request can only ever reach the target's
  scheme, host and port, under its path. Only origin-form targets (``/...``) are accepted; the upstream URL is
  built from the target's components (:func:`upstream_url`), never by pasting text onto its netloc; dot
  segments (``..``, ``%2e%2e``) are resolved and a path that climbs out of the target's path — also once
  ``%2F``, ``%5C`` or double encoding is decoded — is refused; and :func:`check_upstream_url` re-checks the
  final URL right before each request is signed. ``CONNECT``, ``TRACE`` and ``PRI`` (HTTP/2) are refused.
- **Who may call**: a browser page must not drive this door (DNS rebinding, cross-site requests), so the
  ``Host`` header must name the listener (localhost names, the listen address, or ``--allowed-host``) — else
  421 — and a request carrying an ``Origin`` header is refused with 403 unless ``--allowed-origin`` names it
  (:func:`host_allowed`, :func:`origin_allowed`). Refusals happen on the request head, before a body is read.
- **Bounds**: a request head must arrive within ``--header-timeout`` (else 408), a keep-alive connection or a
  stalled body is closed after ``--idle-timeout``; at most ``--max-connections`` are open (over it, the
  connection waiting longest for a request is closed to make room, and 503 when every one has a request in
  flight); request bodies held at once are capped by ``--max-buffered-bytes`` (503). A request with both
  ``Content-Length`` and ``Transfer-Encoding`` is refused (RFC 9112 §6.1), headers named by ``Connection`` are
  not forwarded, and connection errors (asyncio's included) are logged at most once per
  ``LOG_INTERVAL`` seconds per kind, with a count of the lines held back (:class:`LogLimiter`).
- **Headers**: only the allow-list below (plus ``--pass-header`` names) is forwarded; the proxy's
  ``--headers`` are added; everything is signed with :class:`sigv4_proxy.auth.SigV4Auth`.
- **Failures** go through the same retry policy (:mod:`sigv4_proxy.retry`), diagnosis
  (:mod:`sigv4_proxy.diagnose`) and recovery before a re-signed retry (:func:`sigv4_proxy.upstream.recover`)
  as the MCP proxy; the signed client and the credential provider are the proxy's too
  (:mod:`sigv4_proxy.upstream`). Nothing here imports the MCP bridge. A final failure is answered with the
  upstream status (or 502/504/503 when there was no answer) and a JSON body ``{"error": {...diagnosis...}}``;
  the one-line diagnosis is also in the ``x-sigv4-proxy-diagnosis`` header. An upstream JSON-RPC error body is
  passed through unchanged (it is the MCP server's own answer), and so is every body with ``--raw-errors``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import re
import signal
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import h11
import httpx

from sigv4_proxy import diagnose, retry
from sigv4_proxy.clock import SkewedClock, utc_now
from sigv4_proxy.credentials import credentials_refreshable
from sigv4_proxy.endpoints import host_port
from sigv4_proxy.logs import get_logger
from sigv4_proxy.redact import display_url, redact
from sigv4_proxy.terminal import printable
from sigv4_proxy.upstream import build_client, recover, signing_context

if TYPE_CHECKING:
    from sigv4_proxy.config import ProxyConfig
    from sigv4_proxy.credentials import CredentialSource

__all__ = [
    "FORWARDED_REQUEST_HEADERS",
    "HttpListener",
    "ListenerOptions",
    "LogLimiter",
    "Refusal",
    "TargetRefused",
    "check_request_head",
    "check_upstream_url",
    "file_limit_target",
    "forward_request_headers",
    "host_allowed",
    "normalize_origin",
    "origin_allowed",
    "parse_listen",
    "resolve_path",
    "run_http_listener",
    "split_host",
    "upstream_url",
]

log = get_logger("http")

HEALTH_PATH = "/healthz"
DIAGNOSIS_HEADER = "x-sigv4-proxy-diagnosis"
DEFAULT_LISTEN = "127.0.0.1:8080"
DEFAULT_CONNECT_TIMEOUT = 30.0
MAX_HEADER_BYTES = 64 * 1024
READ_CHUNK = 64 * 1024
SHUTDOWN_GRACE = 5.0
# A client that hangs up mid-response (the MCP SDK closes a POST's stream once its answer arrived) leaves the
# upstream response running: it is drained, up to this long and this much, so its connection can be reused —
# to AWS that saves a TLS handshake. An endless event stream is cut when the time is up.
HANGUP_DRAIN_SECONDS = 2.0
HANGUP_DRAIN_BYTES = 1024 * 1024
# Connection bounds (see docs/http.md, "Limits"). A slow client must not hold a slot, memory or the log hostage.
DEFAULT_HEADER_TIMEOUT = 10.0
DEFAULT_IDLE_TIMEOUT = 60.0
DEFAULT_MAX_CONNECTIONS = 100
BUFFERED_BYTES_FACTOR = 4  # default --max-buffered-bytes: this many --max-message-bytes bodies at once
LOG_INTERVAL = 10.0  # connection errors: at most one line per kind this often
# After a close-answer (refusal, 413, 503) the client may still be sending; its unread bytes would turn our
# close into a reset that can destroy the answer before it is read. Read and discard them, this long at most.
LINGER_SECONDS = 1.0
LINGER_BYTES = 1024 * 1024
# Host names that always mean this machine. A DNS-rebinding page reaches 127.0.0.1 under its own name, which
# is what the Host check catches; these names cannot be an attacker's.
LOCAL_HOST_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]"})
# Methods refused before anything is signed: (status, why).
REFUSED_METHODS = {
    "CONNECT": (405, "CONNECT is refused: this listener is not a forward proxy, it only sends to its target URL"),
    "TRACE": (405, "TRACE is refused: the target would echo the signed request, session token included"),
    "PRI": (505, "HTTP/2 is not supported: speak HTTP/1.1 to this listener (no prior-knowledge HTTP/2)"),
}
# Origin-form request target (RFC 9112 §3.2.1): a path and optional query of visible ASCII, no fragment.
_ORIGIN_FORM = re.compile(r"/[\x21-\x22\x24-\x7e]*")

# Client request headers forwarded to the target (and signed). Everything else is dropped: cookies, the
# client's own Authorization (the signature takes its place), Host (the target's), hop-by-hop headers,
# Forwarded/X-Forwarded-* (they would reveal local addresses), and the signing headers below.
FORWARDED_REQUEST_HEADERS = frozenset(
    {
        "accept",
        "accept-encoding",
        "accept-language",
        "baggage",
        "cache-control",
        "content-encoding",
        "content-language",
        "content-type",
        "if-match",
        "if-modified-since",
        "if-none-match",
        "if-range",
        "if-unmodified-since",
        "last-event-id",
        "mcp-protocol-version",
        "mcp-session-id",
        "range",
        "traceparent",
        "tracestate",
        "user-agent",
        "x-amzn-trace-id",
        "x-api-key",
    }
)
# x-amz-* headers pass (x-amz-target, x-amz-user-agent, ...) except those that signing owns.
SIGNING_HEADERS = frozenset(
    {
        "authorization",
        "x-amz-date",
        "x-amz-security-token",
        "x-amz-content-sha256",
        "x-amz-region-set",
        "x-amz-signature",
        "x-amz-credential",
        "x-amz-algorithm",
        "x-amz-signedheaders",
        "x-amz-expires",
    }
)
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)


# --- pure helpers ----------------------------------------------------------------------------------------------


def parse_listen(text: str) -> tuple[str, int]:
    """``127.0.0.1:8080``, ``[::1]:8080``, ``localhost:0``, ``:8080`` or ``8080`` -> (host, port)."""
    value = text.strip()
    if value.isdigit():
        host, port_text = "127.0.0.1", value
    elif value.startswith("["):
        host, sep, rest = value[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ValueError(f"listen address must be HOST:PORT, got: {text}")
        port_text = rest[1:]
    else:
        host, sep, port_text = value.rpartition(":")
        if not sep:
            raise ValueError(f"listen address must be HOST:PORT, got: {text}")
        host = host or "127.0.0.1"
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"listen port must be a number from 0 to 65535, got: {port_text or '(none)'}")
    return host, int(port_text)


def forward_request_headers(
    headers: Iterable[tuple[str, str]], pass_headers: frozenset[str] = frozenset()
) -> tuple[list[tuple[str, str]], list[str]]:
    """(headers to forward, names dropped). Names compare case-insensitively; order is kept.

    Headers that the ``Connection`` header names are hop-by-hop for this request (RFC 9110 §7.6.1): they are
    dropped even when allow-listed or passed, so a client cannot smuggle e.g. ``x-api-key`` past a proxy that
    was told to consume it.
    """
    pairs = list(headers)
    hop_by_hop = HOP_BY_HOP | connection_header_names(pairs)
    kept: list[tuple[str, str]] = []
    dropped: list[str] = []
    for name, value in pairs:
        lowered = name.lower()
        allowed = (
            lowered in FORWARDED_REQUEST_HEADERS
            or lowered in pass_headers
            or (lowered.startswith("x-amz-") and lowered not in SIGNING_HEADERS)
        )
        if allowed and lowered not in SIGNING_HEADERS and lowered not in hop_by_hop:
            kept.append((name, value))
        else:
            dropped.append(lowered)
    return kept, dropped


def connection_header_names(headers: Iterable[tuple[str, str]]) -> frozenset[str]:
    """The header names listed in every ``Connection`` header (lower case)."""
    return frozenset(
        token.strip().lower()
        for name, value in headers
        if name.lower() == "connection"
        for token in value.split(",")
        if token.strip()
    )


def response_headers(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Upstream response headers (raw bytes) to pass back: all but hop-by-hop ones (framing is redone here)."""
    return [(name, value) for name, value in headers if name.decode("latin-1").lower() not in HOP_BY_HOP]


class TargetRefused(ValueError):
    """A request target (or upstream URL) the listener does not send anywhere; the message says why."""


def split_origin_form(request_target: str) -> tuple[str, str]:
    """(path, query) of an origin-form request target; TargetRefused for every other form."""
    shown = _shown(request_target)
    if request_target == "*":
        raise TargetRefused("the asterisk form (OPTIONS *) is not forwarded: ask the target with OPTIONS /")
    if not request_target.startswith("/"):
        if "://" in request_target:
            raise TargetRefused(
                f"absolute-form request target {shown} refused: this listener is not a forward proxy; send the "
                "path only (GET /...)"
            )
        raise TargetRefused(f"request target {shown} refused: it must be a path starting with /")
    if not _ORIGIN_FORM.fullmatch(request_target):
        raise TargetRefused(
            f"request target {shown} refused: only visible ASCII characters are allowed, and no fragment (#)"
        )
    path, _, query = request_target.partition("?")
    return path, query


def resolve_path(path: str) -> str:
    """`path` with its dot segments resolved (RFC 3986 §5.2.4) — ``.`` and ``..`` percent-encoded too.

    Other segments stay byte for byte (an AgentCore ``/runtimes/arn%3A...%2Fr-1/invocations`` keeps its
    encoding). A ``..`` that climbs above ``/`` would leave the target's path: TargetRefused. So does a path
    that stays inside only until a server decodes ``%2F``, ``%5C``, ``;`` parameters or double encoding (what
    the target does with them is unknown, so the strictest reading decides).
    """
    if not path.startswith("/"):
        raise TargetRefused(f"path {_shown(path)} refused: it must start with /")
    kept: list[str] = []
    segments = path.split("/")[1:]
    for position, segment in enumerate(segments):
        dots = unquote(segment)
        if dots in (".", ".."):
            if dots == "..":
                if not kept:
                    raise TargetRefused(
                        f"path {_shown(path)} refused: its '..' segments climb out of the target's path"
                    )
                kept.pop()
            if position == len(segments) - 1:
                kept.append("")  # `/a/b/..` is `/a/`: a dot segment at the end leaves a directory
            continue
        kept.append(segment)
    resolved = "/" + "/".join(kept)
    if _climbs_when_decoded(resolved):
        raise TargetRefused(
            f"path {_shown(path)} refused: once %2F, %5C or double percent-encoding is decoded, its '..' segments "
            "climb out of the target's path"
        )
    return resolved


def _climbs_when_decoded(path: str) -> bool:
    """Whether a server that decodes everything (up to three times), treats ``\\`` as ``/``, merges ``//`` and
    ignores ``;params`` before resolving dot segments would climb above ``/``."""
    decoded = path
    for _ in range(3):
        again = unquote(decoded)
        if again == decoded:
            break
        decoded = again
    depth = 0
    for segment in decoded.replace("\\", "/").split("/"):
        name = segment.split(";", 1)[0]
        if name == "..":
            if depth == 0:
                return True
            depth -= 1
        elif name not in ("", "."):
            depth += 1
    return False


def upstream_url(target_url: str | httpx.URL, request_target: str) -> httpx.URL:
    """Map a local request target (path and query, as received) onto the target URL.

    ``/`` is the target URL itself; other paths are appended to its path; query strings are joined. The
    URL is built from the target's components — scheme, host and port are always the target's — and the
    path is kept byte for byte once dot segments are resolved (see :func:`resolve_path`). TargetRefused for
    anything but an origin-form target, or a path that would leave the target's path.
    """
    target = target_url if isinstance(target_url, httpx.URL) else httpx.URL(target_url)
    path, query = split_origin_form(request_target)
    path = resolve_path(path)
    base = _target_path(target)
    full_path = base if path == "/" else base.rstrip("/") + path
    queries = [part for part in (target.query.decode("ascii"), query) if part]
    raw = full_path + ("?" + "&".join(queries) if queries else "")
    try:
        url = target.copy_with(raw_path=raw.encode("ascii"))
    except httpx.InvalidURL as exc:
        raise TargetRefused(f"request target {_shown(request_target)} refused: {exc}") from None
    check_upstream_url(url, target)
    return url


def check_upstream_url(url: httpx.URL, target: httpx.URL) -> None:
    """TargetRefused unless `url` has the target's scheme, host and port and lies under the target's path.

    Runs once more right before each request is signed: whatever built the URL, a request signed with the
    user's credentials goes to the target or nowhere.
    """
    if (url.scheme, url.host, url.port) != (target.scheme, target.host, target.port):
        raise TargetRefused(
            f"refused to send to {url.scheme}://{url.host}:{url.port}: only the target "
            f"{target.scheme}://{target.host}{':' + str(target.port) if target.port else ''} is ever sent to"
        )
    base = _target_path(target)
    path = url.raw_path.partition(b"?")[0].decode("ascii")
    if path != base and not path.startswith(base.rstrip("/") + "/"):
        raise TargetRefused(f"refused to send to path {_shown(path)}: it is outside the target's path {base}")


def _target_path(target: httpx.URL) -> str:
    return target.raw_path.partition(b"?")[0].decode("ascii") or "/"


def _shown(text: str, limit: int = 200) -> str:
    """An untrusted value quoted for a message or a log line: bounded, controls escaped (terminal's rule)."""
    return f"'{printable(text[:limit])}{'...' if len(text) > limit else ''}'"


def split_host(value: str) -> tuple[str, int | None] | None:
    """A ``Host`` header value (or an --allowed-host entry) -> (lower-case name, port or None); None when it
    is not ``name``, ``name:port``, ``[v6]`` or ``[v6]:port``. IPv6 names keep their brackets."""
    text = value.strip().lower()
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            return None
        name, rest = text[: end + 1], text[end + 1 :]
        if rest and not rest.startswith(":"):
            return None
        port_text = rest[1:] if rest else None
    else:
        name, colon, port_text_found = text.partition(":")
        port_text = port_text_found if colon else None
    if name in ("", "[]"):
        return None
    if port_text is None:
        return name, None
    if not port_text.isdigit() or int(port_text) > 65535:
        return None
    return name, int(port_text)


def host_allowed(host: str, listen_host: str, listen_port: int, allowed_hosts: frozenset[str] = frozenset()) -> bool:
    """Whether a ``Host`` header names this listener.

    Allowed: localhost, 127.0.0.1, [::1] and the literal listen host, without a port or with the listen port;
    an --allowed-host ``name`` with any port; an --allowed-host ``name:port`` exactly. Anything else is what a
    DNS-rebinding page sends (its own name, resolved to 127.0.0.1) or a misdirected request.
    """
    parsed = split_host(host)
    if parsed is None:
        return False
    name, port = parsed
    listen_name = f"[{listen_host.lower()}]" if ":" in listen_host else listen_host.lower()
    if name in LOCAL_HOST_NAMES | {listen_name} and port in (None, listen_port):
        return True
    for entry in allowed_hosts:
        allowed = split_host(entry)
        if allowed is not None and allowed[0] == name and allowed[1] in (None, port):
            return True
    return False


def normalize_origin(origin: str) -> str:
    """``HTTP://Localhost:6274/`` -> ``http://localhost:6274`` (the form --allowed-origin entries are kept in)."""
    return origin.strip().lower().rstrip("/")


def origin_allowed(origin: str, allowed_origins: frozenset[str] = frozenset()) -> bool:
    """Whether a request carrying this ``Origin`` header may pass: only origins named by --allowed-origin.

    Browsers send ``Origin`` with every cross-site request (and with same-site POSTs); non-browser clients
    (MCP SDKs, curl) do not send it. The MCP specification requires local servers to validate it.
    """
    normalized = normalize_origin(origin)
    return bool(normalized) and normalized in {normalize_origin(entry) for entry in allowed_origins}


@dataclass(frozen=True)
class Refusal:
    """Why a request is answered locally and never signed: the status, a kind, and the client's message.

    `log` is the line for the listener's log; it names the flag that would allow the request, if any.
    """

    status: int
    kind: str
    message: str
    log: str

    @classmethod
    def bad_target(cls, method: str, refused: TargetRefused) -> Refusal:
        """400 for a request target (or the URL built from it) that is not sent anywhere."""
        return cls(400, "bad_request_target", str(refused), f"refused {method}: {refused}")


def check_request_head(
    method: str,
    target: str,
    headers: Iterable[tuple[str, str]],
    *,
    listen_host: str,
    listen_port: int,
    allowed_hosts: frozenset[str] = frozenset(),
    allowed_origins: frozenset[str] = frozenset(),
) -> Refusal | None:
    """The refusal for a request head, or None when it may proceed (to /healthz, or to the target).

    Order: the method, the framing, the request target's form, the Host, the Origin — the first problem wins.
    """
    pairs = list(headers)
    if method in REFUSED_METHODS:
        status, why = REFUSED_METHODS[method]
        return Refusal(status, "method_refused", why, f"refused {method} {_shown(target)}: {why}")
    names = {name.lower() for name, _ in pairs}
    if "content-length" in names and "transfer-encoding" in names:
        why = "a request with both Content-Length and Transfer-Encoding is refused (RFC 9112 section 6.1)"
        return Refusal(400, "conflicting_framing", why, f"refused {method} {_shown(target)}: {why}")
    try:
        split_origin_form(target)
    except TargetRefused as exc:
        return Refusal.bad_target(method, exc)
    for name, value in pairs:
        if name.lower() == "host" and not host_allowed(value, listen_host, listen_port, allowed_hosts):
            shown = _shown(value.strip().lower(), 100)
            return Refusal(
                421,
                "host_not_allowed",
                f"Host {shown} is not this listener's address (DNS rebinding protection): use "
                f"http://127.0.0.1:{listen_port}/, or start the listener with --allowed-host {shown[1:-1]}",
                f"refused Host {shown}: not the listen address; allow it with --allowed-host {shown[1:-1]}",
            )
    for name, value in pairs:
        if name.lower() == "origin" and not origin_allowed(value, allowed_origins):
            shown = _shown(normalize_origin(value), 100)
            return Refusal(
                403,
                "origin_not_allowed",
                f"requests from Origin {shown} are refused (a web page may not use your AWS credentials): start "
                f"the listener with --allowed-origin {shown[1:-1]} to allow it",
                f"refused Origin {shown}: cross-site requests are refused; allow it with --allowed-origin "
                f"{shown[1:-1]}",
            )
    return None


class LogLimiter:
    """At most one log line per `interval` seconds per kind; the line that passes says how many were held.

    A flood of bad connections (slow clients, resets, out-of-descriptors accept errors) must not become a flood
    of log lines: 300 slow connections once produced 14 MB of tracebacks in ten seconds.
    """

    def __init__(self, interval: float = LOG_INTERVAL, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def admit(self, kind: str) -> int | None:
        """None: hold this line back (it is counted); else the number held back since the last line."""
        now = self._clock()
        last = self._last.get(kind)
        if last is not None and now - last < self.interval:
            self._held[kind] = self._held.get(kind, 0) + 1
            return None
        self._last[kind] = now
        return self._held.pop(kind, 0)

    def held(self) -> dict[str, int]:
        """Lines held back and not yet reported, by kind."""
        return dict(self._held)


def jsonrpc_methods(body: bytes, content_type: str | None) -> list[str] | None:
    """The JSON-RPC methods of a request body, or None when it is not JSON-RPC (used for replay safety)."""
    if not body or len(body) > 1024 * 1024 or "json" not in (content_type or "").lower():
        return None
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    messages = parsed if isinstance(parsed, list) else [parsed]
    methods = [m.get("method") for m in messages if isinstance(m, dict)]
    if not methods or not all(isinstance(m, str) for m in methods):
        return None
    return methods  # type: ignore[return-value]


def is_jsonrpc_message(body: bytes) -> bool:
    """An upstream error body that is a JSON-RPC message is the MCP server's own answer: pass it on."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return False
    messages = parsed if isinstance(parsed, list) else [parsed]
    return bool(messages) and all(isinstance(m, dict) and m.get("jsonrpc") == "2.0" for m in messages)


def decode_for_diagnosis(body: bytes, content_encoding: str | None) -> bytes:
    """Undo gzip/deflate on an error body so it can be read; anything else is diagnosed as is."""
    encoding = (content_encoding or "").strip().lower()
    if encoding not in ("gzip", "x-gzip", "deflate"):
        return body
    wbits = 16 + zlib.MAX_WBITS if "gzip" in encoding else zlib.MAX_WBITS
    try:
        return zlib.decompressobj(wbits).decompress(body, diagnose.MAX_DIAGNOSED_BODY)
    except zlib.error:
        return body


def ascii_header_value(text: str, limit: int = 2000) -> str:
    """A one-line diagnosis as a header value (HTTP header values are ASCII in practice)."""
    text = " ".join(text.replace("…", "...").split())
    return text.encode("ascii", "replace").decode("ascii")[:limit]


def status_for_failure(kind: str) -> int:
    """The local status for a failure with no upstream answer."""
    if kind in (diagnose.READ_TIMEOUT, diagnose.TIMEOUT, diagnose.CONNECT_TIMEOUT, diagnose.POOL_TIMEOUT):
        return 504
    if kind == diagnose.CREDENTIALS:
        return 503  # nothing to sign with: temporary, e.g. until `aws sso login`
    return 502


# --- the listener ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ListenerOptions:
    """What `sigv4-proxy http` adds to the proxy's configuration."""

    host: str = "127.0.0.1"
    port: int = 8080
    policy: retry.RetryPolicy = field(default_factory=retry.RetryPolicy)
    pass_headers: frozenset[str] = frozenset()
    raw_errors: bool = False
    allowed_hosts: frozenset[str] = frozenset()  # --allowed-host: `name` (any port) or `name:port`
    allowed_origins: frozenset[str] = frozenset()  # --allowed-origin, normalized (see normalize_origin)
    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    max_buffered_bytes: int | None = None  # None: BUFFERED_BYTES_FACTOR x --max-message-bytes


@dataclass
class _Incoming:
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes
    http_version: str
    url: httpx.URL | None = None  # where it goes; None for /healthz
    held: int = 0  # body bytes counted against --max-buffered-bytes


class _ClientGone(Exception):
    """The local client closed its connection."""


class _ReadTimeout(Exception):
    """The client sent too little in time. `phase`: ``idle`` (no new request), ``head`` or ``body``."""

    def __init__(self, phase: str) -> None:
        super().__init__(phase)
        self.phase = phase


class _Connection:
    """One client connection: h11 state plus the socket, with backpressure on every write."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADER_BYTES)
        self.gone = False  # the client closed its side: nothing more is written
        self.in_flight = False  # a request is being answered: the connection is not closed to make room
        self.linger = False  # answered with `connection: close` while the client may still be sending
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)

    def has_buffered_data(self) -> bool:
        """Bytes of a next (pipelined) request already received."""
        return bool(self.h11.trailing_data[0])

    async def next_event(self, *, deadline: float | None = None, gap: float | None = None, phase: str = "") -> Any:
        """The next h11 event. `deadline` (loop time) bounds the whole wait, `gap` each read: _ReadTimeout."""
        loop = asyncio.get_running_loop()
        while True:
            event = self.h11.next_event()
            if event is not h11.NEED_DATA:
                return event
            if self.h11.they_are_waiting_for_100_continue:
                await self.send(h11.InformationalResponse(status_code=100, headers=[]))
            timeout = gap
            if deadline is not None:
                left = deadline - loop.time()
                timeout = left if timeout is None else min(timeout, left)
            await self.receive(timeout, phase)

    async def receive(self, timeout: float | None, phase: str = "") -> None:
        """Read once and hand the bytes (b"" at the end) to h11; _ReadTimeout when nothing came in time."""
        if timeout is None:
            data = await self.reader.read(READ_CHUNK)
        else:
            if timeout <= 0:
                raise _ReadTimeout(phase)
            try:
                data = await asyncio.wait_for(self.reader.read(READ_CHUNK), timeout)
            except asyncio.TimeoutError:
                raise _ReadTimeout(phase) from None
        self.h11.receive_data(data)

    async def send(self, event: Any) -> None:
        data = self.h11.send(event)
        if data and not self.gone:
            try:
                self.writer.write(data)
                await self.writer.drain()
            except (ConnectionError, RuntimeError) as exc:
                raise _ClientGone() from exc

    async def wait_for_disconnect(self) -> None:
        """Returns when the client closes its side; pipelined bytes are kept for h11."""
        while True:
            data = await self.reader.read(READ_CHUNK)
            if not data:
                return
            self.h11.receive_data(data)

    def abort(self) -> None:
        transport = self.writer.transport
        if transport is not None and not transport.is_closing():
            transport.abort()

    async def close(self) -> None:
        if self.linger:
            await self._discard_input()
        with contextlib.suppress(Exception):
            self.writer.close()
            await asyncio.wait_for(self.writer.wait_closed(), 1)

    async def _discard_input(self) -> None:
        """Half-close, then read what the client still sends (bounded), so our answer is not lost to a reset."""
        with contextlib.suppress(Exception):
            if self.writer.can_write_eof():
                self.writer.write_eof()
            deadline = asyncio.get_running_loop().time() + LINGER_SECONDS
            discarded = 0
            while discarded < LINGER_BYTES:
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0:
                    return
                data = await asyncio.wait_for(self.reader.read(READ_CHUNK), left)
                if not data:
                    return
                discarded += len(data)


class HttpListener:
    """The local endpoint. Use from async code::

        listener = HttpListener(config, provider, ListenerOptions(port=0))
        await listener.start()          # listener.url is now http://127.0.0.1:<port>
        ...
        await listener.aclose()

    `provider` is the process's credential provider; `client` (optional) a signing ``httpx.AsyncClient``;
    `clock` the :class:`SkewedClock` the client signs with (corrected on clock-skew answers); `random_source`
    the jitter source; `sleep` waits between attempts (tests record the delays instead of waiting).
    """

    hangup_drain_seconds = HANGUP_DRAIN_SECONDS

    def __init__(
        self,
        config: ProxyConfig,
        provider: CredentialSource,
        options: ListenerOptions | None = None,
        *,
        clock: SkewedClock | None = None,
        client: httpx.AsyncClient | None = None,
        random_source: Callable[[], float] = random.random,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.config = config
        self.provider = provider
        self.options = options or ListenerOptions()
        self.clock = clock or SkewedClock()
        self._own_client = client is None
        self.client = client or build_client(config, provider, clock=self.clock)
        self._random = random_source
        self._sleep = sleep
        self._target = httpx.URL(config.target_url)
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        # Open connections, oldest first: the one to close when --max-connections is reached.
        self._connections: dict[_Connection, None] = {}
        self._buffered_bytes = 0
        self._max_buffered_bytes = self.options.max_buffered_bytes or BUFFERED_BYTES_FACTOR * config.max_message_bytes
        self._log_limiter = LogLimiter()
        self._previous_exception_handler: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._active_requests = 0
        self._event_streams: set[asyncio.Task[Any]] = set()  # GETs: cut at once on shutdown, they never end
        self._idle = asyncio.Event()
        self._idle.set()
        self.url = ""
        connect = config.timeout if config.timeout else DEFAULT_CONNECT_TIMEOUT
        self._upstream_timeout = httpx.Timeout(
            connect=min(connect, DEFAULT_CONNECT_TIMEOUT), read=None, write=config.timeout, pool=None
        )

    # -- lifecycle ------------------------------------------------------------------------------------------------

    async def start(self) -> str:
        # asyncio logs accept() failures (out of file descriptors) with a traceback, up to `backlog` times per
        # wakeup: its exception handler goes through the log limiter while the listener runs.
        self._loop = asyncio.get_running_loop()
        self._previous_exception_handler = self._loop.get_exception_handler()
        self._loop.set_exception_handler(self._on_loop_exception)
        self._server = await asyncio.start_server(
            self._on_connection, self.options.host, self.options.port, limit=READ_CHUNK, backlog=512
        )
        sockname = self._server.sockets[0].getsockname()
        self.url = f"http://{host_port(sockname[0], sockname[1])}"
        return self.url

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    @property
    def buffered_bytes(self) -> int:
        """Request-body bytes held right now, across connections (bounded by --max-buffered-bytes)."""
        return self._buffered_bytes

    async def serve_until(self, stop: asyncio.Event) -> None:
        await stop.wait()

    async def aclose(self, grace: float = SHUTDOWN_GRACE) -> None:
        """Stop accepting, cut GET requests (event streams never end), give other requests in flight `grace`
        seconds, cut what is left, close."""
        if self._server is not None:
            self._server.close()
        for stream in list(self._event_streams):
            stream.cancel()
        if self._active_requests:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._idle.wait(), grace)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1)
        if self._own_client:
            await self.client.aclose()
        for kind, count in sorted(self._log_limiter.held().items()):
            log.info("%d more '%s' log lines were held back (at most one per %g s)", count, kind, LOG_INTERVAL)
        if self._loop is not None:
            self._loop.set_exception_handler(self._previous_exception_handler)
            self._loop = None

    # -- connections ----------------------------------------------------------------------------------------------

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        connection = _Connection(reader, writer)
        try:
            if self._make_room():
                self._connections[connection] = None
                await self._serve_connection(connection)
            else:
                await self._over_capacity(connection)
        except (_ClientGone, ConnectionError):
            pass
        except asyncio.CancelledError:
            connection.abort()
        except Exception as exc:
            self._log_limited(
                logging.ERROR,
                "unexpected",
                "HTTP listener: unexpected error on a connection from %s: %s: %s",
                connection.peer,
                type(exc).__name__,
                exc,
                exc_info=True,
            )
            connection.abort()
        finally:
            self._connections.pop(connection, None)
            self._tasks.discard(task)
            await connection.close()

    def _make_room(self) -> bool:
        """Whether a new connection may be served. At --max-connections, the oldest connection with no request
        in flight (idle keep-alive, or still sending its request: what a slow-loris client holds) is closed
        to make room — new clients, /healthz included, keep being served. False when every one is busy."""
        if len(self._connections) < self.options.max_connections:
            return True
        victim = next((c for c in self._connections if not c.in_flight), None)
        if victim is None:
            return False
        del self._connections[victim]
        victim.abort()
        self._log_limited(
            logging.DEBUG,
            "evicted",
            "--max-connections %d reached: closed the connection from %s, which had no request in flight",
            self.options.max_connections,
            victim.peer,
        )
        return True

    async def _over_capacity(self, connection: _Connection) -> None:
        limit = self.options.max_connections
        self._log_limited(
            logging.WARNING,
            "capacity",
            "--max-connections %d reached and every connection has a request in flight: answered 503",
            limit,
        )
        message = (
            f"the listener is at --max-connections {limit} and every connection has a request in flight: retry "
            "shortly, or start the listener with a higher --max-connections"
        )
        await self._answer_and_close(connection, 503, message, "too_many_connections", retry_after=True)

    async def _serve_connection(self, connection: _Connection) -> None:
        keep_alive = False
        while True:
            try:
                incoming = await self._read_request(connection, keep_alive=keep_alive)
            except h11.RemoteProtocolError as exc:
                await self._reject_malformed(connection, exc)
                return
            except _ReadTimeout as exc:
                await self._timed_out(connection, exc.phase)
                return
            if incoming is None:
                return
            connection.in_flight = True
            try:
                await self._handle(connection, incoming)
            finally:
                connection.in_flight = False
                self._release(incoming)
            if connection.h11.our_state is h11.MUST_CLOSE or connection.h11.their_state is not h11.DONE:
                return
            try:
                connection.h11.start_next_cycle()
            except h11.LocalProtocolError:
                return
            keep_alive = True

    async def _read_request(self, connection: _Connection, *, keep_alive: bool) -> _Incoming | None:
        """The next request, head checked and body read; None when the connection is done (or was answered)."""
        loop = asyncio.get_running_loop()
        if keep_alive and not connection.has_buffered_data():
            await connection.receive(self.options.idle_timeout, "idle")  # a kept-alive connection waits this long
        event = await connection.next_event(deadline=loop.time() + self.options.header_timeout, phase="head")
        if not isinstance(event, h11.Request):  # ConnectionClosed: the client is done with this connection
            return None
        headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in event.headers]
        incoming = _Incoming(
            method=event.method.decode("ascii"),
            target=event.target.decode("latin-1"),
            headers=headers,
            body=b"",
            http_version=event.http_version.decode("ascii"),
        )
        if not await self._admit(connection, incoming):
            return None
        try:
            complete = await self._read_body(connection, incoming)
        except BaseException:
            self._release(incoming)
            raise
        if not complete:
            self._release(incoming)
            return None
        return incoming

    async def _admit(self, connection: _Connection, incoming: _Incoming) -> bool:
        """Check the head before any body byte is read or anything is signed; answer a refusal and close."""
        refusal = check_request_head(
            incoming.method,
            incoming.target,
            incoming.headers,
            listen_host=self.options.host,
            listen_port=self.port,
            allowed_hosts=self.options.allowed_hosts,
            allowed_origins=self.options.allowed_origins,
        )
        if refusal is None and not _is_health(incoming):
            try:
                incoming.url = upstream_url(self._target, incoming.target)
            except TargetRefused as exc:
                refusal = Refusal.bad_target(incoming.method, exc)
        if refusal is None:
            return True
        await self._refuse(connection, refusal)
        return False

    async def _refuse(self, connection: _Connection, refusal: Refusal) -> None:
        self._log_limited(logging.WARNING, refusal.kind, "%s", refusal.log)
        await self._answer_and_close(connection, refusal.status, refusal.message, refusal.kind)

    async def _read_body(self, connection: _Connection, incoming: _Incoming) -> bool:
        """Read the body into `incoming`; False (answered) when it is too large or the client went away."""
        limit = self.config.max_message_bytes
        declared = diagnose.header_value(incoming.headers, "content-length")
        if declared is not None and declared.isdigit():
            if int(declared) > limit:
                await self._too_large(connection, limit)
                return False
            if self._buffered_bytes + int(declared) > self._max_buffered_bytes:
                await self._over_buffered(connection)
                return False
        chunks: list[bytes] = []
        size = 0
        while True:
            event = await connection.next_event(gap=self.options.idle_timeout, phase="body")
            if isinstance(event, h11.Data):
                size += len(event.data)
                incoming.held += len(event.data)
                self._buffered_bytes += len(event.data)
                if size > limit:
                    await self._too_large(connection, limit)
                    return False
                if self._buffered_bytes > self._max_buffered_bytes:
                    await self._over_buffered(connection)
                    return False
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                incoming.body = b"".join(chunks)
                return True
            else:  # the client went away mid-body
                return False

    def _release(self, incoming: _Incoming) -> None:
        self._buffered_bytes -= incoming.held
        incoming.held = 0

    async def _over_buffered(self, connection: _Connection) -> None:
        limit = self._max_buffered_bytes
        self._log_limited(
            logging.WARNING,
            "buffered",
            "request bodies held at once would exceed --max-buffered-bytes %d: answered 503",
            limit,
        )
        message = (
            f"the listener already holds close to --max-buffered-bytes {limit} bytes of request bodies (each is "
            "read completely before it is signed): retry shortly, or start the listener with a higher "
            "--max-buffered-bytes"
        )
        await self._answer_and_close(connection, 503, message, "buffer_full", retry_after=True)

    async def _timed_out(self, connection: _Connection, phase: str) -> None:
        if phase == "idle":  # an idle keep-alive connection: closing it is routine, nothing to say
            return
        seconds = self.options.header_timeout if phase == "head" else self.options.idle_timeout
        flag = "--header-timeout" if phase == "head" else "--idle-timeout"
        self._log_limited(
            logging.INFO,
            "timeout",
            "closed the connection from %s: no complete request %s within %s %g s",
            connection.peer,
            phase,
            flag,
            seconds,
        )
        message = f"no complete request {phase} within {seconds:g} s ({flag}): closing the connection"
        await self._answer_and_close(connection, 408, message, "request_timeout", stalled=True)

    async def _answer_and_close(
        self,
        connection: _Connection,
        status: int,
        message: str,
        kind: str,
        *,
        retry_after: bool = False,
        stalled: bool = False,
    ) -> None:
        """A local JSON error with `connection: close`; the client's unread bytes are drained on close. A client
        that `stalled` sends nothing more to drain, and may not read either: a failed answer is let go."""
        if connection.h11.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        extra = [("retry-after", "1")] if retry_after else []
        body = {"error": {"message": message, "kind": kind}}
        connection.linger = not stalled
        try:
            await asyncio.wait_for(
                self._send_json(connection, status, body, extra_headers=extra, close=True), LINGER_SECONDS
            )
        except asyncio.TimeoutError:  # the client does not read: no answer is worth waiting for
            connection.linger = False
            connection.abort()
        except Exception:
            if not stalled:
                raise

    async def _reject_malformed(self, connection: _Connection, exc: h11.RemoteProtocolError) -> None:
        if connection.h11.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            status = exc.error_status_hint or 400
            await self._send_json(
                connection, status, {"error": {"message": f"malformed HTTP request: {exc}"}}, close=True
            )

    async def _too_large(self, connection: _Connection, limit: int) -> None:
        message = (
            f"request body larger than {limit} bytes: raise --max-message-bytes (the body is read completely "
            "because the signature covers its SHA-256)"
        )
        await self._answer_and_close(connection, 413, message, "payload_too_large")

    # -- logging ----------------------------------------------------------------------------------------------------

    def _log_limited(self, level: int, kind: str, message: str, *args: Any, exc_info: bool = False) -> None:
        """One line per kind per LOG_INTERVAL at most; the line that passes counts the ones held back."""
        if not log.isEnabledFor(level):
            return
        held = self._log_limiter.admit(kind)
        if held is None:
            return
        if held:
            message += " (%d similar lines held back in the last %g s)"
            args = (*args, held, LOG_INTERVAL)
        log.log(level, message, *args, exc_info=exc_info)

    def _on_loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """asyncio's own error reports (accept() out of file descriptors, transport errors): one line, limited,
        without the traceback that made 300 slow connections print 14 MB."""
        error = context.get("exception")
        detail = f": {type(error).__name__}: {error}" if error is not None else ""
        self._log_limited(logging.ERROR, "asyncio", "HTTP listener: %s%s", context.get("message", "error"), detail)

    # -- one request ----------------------------------------------------------------------------------------------

    async def _handle(self, connection: _Connection, incoming: _Incoming) -> None:
        if _is_health(incoming):
            await self._health(connection, incoming)
            return
        self._active_requests += 1
        self._idle.clear()
        started = time.monotonic()
        # The request runs in this task. A watcher notices the client hanging up: the upstream response is then
        # drained for a moment (see HANGUP_DRAIN_SECONDS) and cut if it does not end.
        current = asyncio.current_task()
        assert current is not None
        cut = False

        async def watch() -> None:
            nonlocal cut
            await connection.wait_for_disconnect()
            connection.gone = True
            await asyncio.sleep(self.hangup_drain_seconds)
            cut = True
            current.cancel()

        watcher = asyncio.ensure_future(watch())
        if incoming.method == "GET":
            self._event_streams.add(current)
        try:
            await self._proxy(connection, incoming, started)
        except asyncio.CancelledError:
            if not cut:
                raise  # shutting down
            raise _ClientGone() from None
        finally:
            self._event_streams.discard(current)
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher  # the next request reads from the same stream: the watcher must be gone first
            self._active_requests -= 1
            if not self._active_requests:
                self._idle.set()
            if connection.gone:
                log.debug(
                    "%s %s: the client closed the connection after %.1f ms",
                    incoming.method,
                    incoming.target,
                    (time.monotonic() - started) * 1000,
                )
        if connection.gone:
            raise _ClientGone()

    async def _proxy(self, connection: _Connection, incoming: _Incoming, started: float) -> None:
        headers, dropped = forward_request_headers(incoming.headers, self.options.pass_headers)
        if dropped:
            log.debug("not forwarded (not in the allow-list; see --pass-header): %s", ", ".join(sorted(set(dropped))))
        if not any(name.lower() == "accept-encoding" for name, _ in headers):
            headers.append(("Accept-Encoding", "identity"))  # bodies pass through undecoded: ask for plain ones
        headers.extend(self.config.headers)
        url = incoming.url
        assert url is not None  # set by _admit for every request that is not /healthz
        replay_safe = retry.http_replay_safe(incoming.method) or retry.mcp_replay_safe(
            jsonrpc_methods(incoming.body, diagnose.header_value(incoming.headers, "content-type"))
        )
        state = retry.RetryState(credentials_refreshable=credentials_refreshable(self.provider))
        while True:
            response: httpx.Response | None = None
            prefix, rest = b"", None
            try:
                response = await self._send_upstream(incoming.method, url, headers, incoming.body)
            except asyncio.CancelledError:
                raise
            except TargetRefused as exc:  # the last check before signing: nothing was sent
                await self._refuse(connection, Refusal.bad_target(incoming.method, exc))
                return
            except Exception as exc:
                diagnosis = diagnose.diagnose_exception(exc, context=self._context(url))
                outcome = retry.Outcome.from_diagnosis(diagnosis, replay_safe=replay_safe)
            else:
                if response.status_code < 400:
                    await self._stream(connection, incoming, response, started, state)
                    return
                try:
                    prefix, rest = await _read_prefix(response, diagnose.MAX_DIAGNOSED_BODY)
                except Exception as exc:  # the error body itself broke off
                    await response.aclose()
                    diagnosis = diagnose.diagnose_exception(exc, context=self._context(url))
                    outcome = retry.Outcome.from_diagnosis(diagnosis, replay_safe=replay_safe)
                    response = None
                else:
                    diagnosis = diagnose.diagnose_response(
                        response.status_code,
                        response.headers.multi_items(),
                        decode_for_diagnosis(prefix, response.headers.get("content-encoding")),
                        context=self._context(url),
                    )
                    outcome = retry.Outcome.from_diagnosis(
                        diagnosis, headers=response.headers.multi_items(), request_sent=True, replay_safe=replay_safe
                    )
            decision = self.options.policy.decide(state, outcome, random=self._random, now=utc_now())
            if not decision.retry:
                await self._fail(connection, incoming, diagnosis, decision, state, response, prefix, rest, started)
                return
            if response is not None:
                await response.aclose()
            log.warning("%s %s: %s — %s", incoming.method, incoming.target, diagnosis.message(), decision.reason)
            failure = await self._recover(decision.action, diagnosis, response)
            if failure is not None:
                await self._fail(
                    connection, incoming, failure, retry.Decision(retry.GIVE_UP), state, None, b"", None, started
                )
                return
            if connection.gone:
                raise _ClientGone()  # nobody is waiting for a retry
            if decision.delay:
                await self._sleep(decision.delay)

    async def _send_upstream(
        self, method: str, url: httpx.URL, headers: list[tuple[str, str]], body: bytes
    ) -> httpx.Response:
        request = self.client.build_request(method, url, headers=headers, content=body, timeout=self._upstream_timeout)
        # Signing happens inside send(): this is the last moment to make sure the request goes to the target.
        check_upstream_url(request.url, self._target)
        sending = self.client.send(request, stream=True)
        if not self.config.timeout:
            return await sending
        try:
            return await asyncio.wait_for(sending, self.config.timeout)
        except asyncio.TimeoutError:
            # --timeout bounds the wait for the response head; streams that deliver are never cut.
            raise httpx.ReadTimeout(f"no response within {self.config.timeout:g} s", request=request) from None

    async def _recover(
        self, action: retry.Action, diagnosis: diagnose.Diagnosis, response: httpx.Response | None
    ) -> diagnose.Diagnosis | None:
        """Refresh credentials or correct the clock before the retry; a diagnosis when that fails."""
        error = await recover(
            action,
            self.provider,
            self.clock,
            log=log,
            date=response.headers.get("date") if response is not None else None,
            aws_message=diagnosis.aws_message,
        )
        return diagnose.diagnose_exception(error, context=self._context()) if error is not None else None

    async def _stream(
        self,
        connection: _Connection,
        incoming: _Incoming,
        response: httpx.Response,
        started: float,
        state: retry.RetryState,
    ) -> None:
        sent = 0
        try:
            await connection.send(
                h11.Response(
                    status_code=response.status_code,
                    headers=response_headers(response.headers.raw),
                    reason=response.reason_phrase.encode("latin-1", "replace"),
                )
            )
            async for chunk in response.aiter_raw():
                sent += len(chunk)
                if connection.gone and sent > HANGUP_DRAIN_BYTES:
                    raise _ClientGone()  # too much left to drain: cut the upstream connection instead
                await connection.send(h11.Data(data=chunk))
            await connection.send(h11.EndOfMessage())
        except (httpx.HTTPError, OSError) as exc:
            # The head is already out: the only honest signal left is an incomplete response.
            diagnosis = diagnose.diagnose_exception(exc, context=self._context(incoming.url))
            log.warning(
                "%s %s: upstream response broke off after %d bytes: %s",
                incoming.method,
                incoming.target,
                sent,
                diagnosis.message(),
            )
            connection.abort()
            raise _ClientGone() from exc
        finally:
            await response.aclose()
        self._log_done(incoming, response.status_code, started, state, sent)

    async def _fail(
        self,
        connection: _Connection,
        incoming: _Incoming,
        diagnosis: diagnose.Diagnosis,
        decision: retry.Decision,
        state: retry.RetryState,
        response: httpx.Response | None,
        prefix: bytes,
        rest: AsyncIterator[bytes] | None,
        started: float,
    ) -> None:
        message = diagnosis.final_message(state.attempts, decision.reason or "")
        log.warning("%s %s: %s", incoming.method, incoming.target, message)
        if response is not None and (
            self.options.raw_errors
            or rest is not None
            or is_jsonrpc_message(decode_for_diagnosis(prefix, response.headers.get("content-encoding")))
        ):
            await self._pass_through_error(connection, response, prefix, rest, message)
            self._log_done(incoming, response.status_code, started, state, len(prefix))
            return
        if response is not None:
            await response.aclose()
        status = diagnosis.status if diagnosis.status is not None else status_for_failure(diagnosis.kind)
        error = {**diagnosis.to_dict(), "message": message, "attempts": state.attempts}
        error["retry"] = decision.reason or None
        body: dict[str, Any] = {"error": error}
        if response is not None:
            body["upstream"] = {
                "status": response.status_code,
                "content_type": response.headers.get("content-type"),
                "body": redact(
                    decode_for_diagnosis(prefix, response.headers.get("content-encoding")).decode("utf-8", "replace")
                ),
            }
        extra = [(DIAGNOSIS_HEADER, ascii_header_value(message))]
        if response is not None:
            keep = ("x-amzn-requestid", "x-amzn-errortype", "x-amz-apigw-id", "retry-after", "mcp-session-id")
            extra += [(k, v) for k, v in response.headers.multi_items() if k.lower() in keep]
        await self._send_json(connection, status, body, extra_headers=extra)
        self._log_done(incoming, status, started, state, None)

    async def _pass_through_error(
        self,
        connection: _Connection,
        response: httpx.Response,
        prefix: bytes,
        rest: AsyncIterator[bytes] | None,
        message: str,
    ) -> None:
        headers = response_headers(response.headers.raw)
        headers.append((DIAGNOSIS_HEADER.encode(), ascii_header_value(message).encode()))
        try:
            await connection.send(h11.Response(status_code=response.status_code, headers=headers))
            if prefix:
                await connection.send(h11.Data(data=prefix))
            if rest is not None:
                async for chunk in rest:
                    await connection.send(h11.Data(data=chunk))
            await connection.send(h11.EndOfMessage())
        except (httpx.HTTPError, OSError) as exc:
            connection.abort()
            raise _ClientGone() from exc
        finally:
            await response.aclose()

    async def _health(self, connection: _Connection, incoming: _Incoming) -> None:
        credentials = None
        with contextlib.suppress(Exception):
            credentials = self.provider.cached()
        body = {
            "status": "ok",
            "target": display_url(self.config.target_url),
            "service": self.config.service,
            "region": self.config.signing_region,
            "signature_version": self.config.sig_version,
            "credentials": credentials.masked_access_key if credentials is not None else None,
            "clock_offset_seconds": round(self.clock.offset, 3),
        }
        await self._send_json(connection, 200, body, head_only=incoming.method == "HEAD")

    async def _send_json(
        self,
        connection: _Connection,
        status: int,
        body: dict[str, Any],
        *,
        extra_headers: Iterable[tuple[str, str]] = (),
        close: bool = False,
        head_only: bool = False,
    ) -> None:
        payload = json.dumps(body, ensure_ascii=False).encode("utf-8") + b"\n"
        headers = [
            ("content-type", "application/json"),
            ("content-length", str(len(payload))),
            ("cache-control", "no-store"),
            *extra_headers,
        ]
        if close:
            headers.append(("connection", "close"))
        await connection.send(h11.Response(status_code=status, headers=headers, reason=_reason(status)))
        if not head_only:
            await connection.send(h11.Data(data=payload))
        await connection.send(h11.EndOfMessage())

    # -- helpers ----------------------------------------------------------------------------------------------------

    def _context(self, request_url: httpx.URL | None = None) -> diagnose.SigningContext:
        """How requests are signed; ``request_url`` is where the failed one went (the listener forwards other
        paths than the target's, and a diagnosis must name the path that was asked for)."""
        return signing_context(
            self.config, self.provider, request_url=str(request_url) if request_url is not None else None
        )

    def _log_done(
        self, incoming: _Incoming, status: int, started: float, state: retry.RetryState, size: int | None
    ) -> None:
        elapsed = (time.monotonic() - started) * 1000
        attempts = f", {state.attempts} attempts" if state.attempts > 1 else ""
        sent = f", {size} bytes" if size is not None else ""
        log.info("%s %s -> %d (%.1f ms%s%s)", incoming.method, incoming.target, status, elapsed, attempts, sent)


def _is_health(incoming: _Incoming) -> bool:
    return incoming.target.partition("?")[0] == HEALTH_PATH and incoming.method in ("GET", "HEAD")


async def _read_prefix(response: httpx.Response, limit: int) -> tuple[bytes, AsyncIterator[bytes] | None]:
    """At least `limit` raw bytes of a body (or all of it), and the iterator over the rest — None when the
    body ended. A pass-through then sends the prefix and the rest: every byte exactly once."""
    buffer = bytearray()
    iterator = response.aiter_raw()
    async for chunk in iterator:
        buffer += chunk
        if len(buffer) >= limit:
            return bytes(buffer), iterator
    return bytes(buffer), None


def _reason(status: int) -> bytes:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b""


# --- the command ----------------------------------------------------------------------------------------------


def run_http_listener(config: ProxyConfig, options: ListenerOptions, environ: Mapping[str, str] | None = None) -> int:
    """`sigv4-proxy http`: load credentials (failing fast with the proxy's message), serve until a signal."""
    from sigv4_proxy.credentials import describe_credentials
    from sigv4_proxy.logs import setup_logging
    from sigv4_proxy.upstream import SecretRegisteringProvider, credential_provider

    setup_logging(config.log_level, config.log_format)
    provider = SecretRegisteringProvider(credential_provider(config, os.environ if environ is None else environ))
    credentials = provider.get()
    _log_startup(config, options, describe_credentials(credentials, provider.method))
    _raise_file_limit(options.max_connections)
    return asyncio.run(_serve(config, provider, options))


def file_limit_target(soft: int, hard: int, max_connections: int) -> int | None:
    """The soft RLIMIT_NOFILE to raise to, or None to leave it: room for --max-connections client sockets,
    as many upstream ones, and a burst that asyncio accepts (up to `backlog` per wakeup) before the cap closes
    the surplus — never above the hard limit (``-1`` is unlimited)."""
    wanted = 4 * max_connections + 512
    ceiling = wanted if hard < 0 else min(wanted, hard)
    return ceiling if ceiling > soft else None


def _raise_file_limit(max_connections: int) -> None:
    """Out of file descriptors, accept() fails and asyncio stops accepting for a second (macOS's default soft
    limit is 256): raise the soft limit when the hard limit allows."""
    try:
        import resource
    except ImportError:  # Windows: no such limit
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = file_limit_target(soft, hard, max_connections)
    if target is None:
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError) as exc:
        log.debug("could not raise the open-file limit from %d to %d: %s", soft, target, exc)
    else:
        log.debug("open-file limit raised from %d to %d (--max-connections %d)", soft, target, max_connections)


def _log_startup(config: ProxyConfig, options: ListenerOptions, credentials: str) -> None:
    from sigv4_proxy import __version__
    from sigv4_proxy.signing.algorithm import algorithm_for

    log.info("sigv4-proxy %s: HTTP listener starting", __version__)
    log.info("Target URL: %s", display_url(config.target_url))
    algorithm = algorithm_for(config.sig_version)
    if algorithm.uses_region_set:
        signing = f"{algorithm.label}, region set {','.join(config.region_set or ('*',))}"
    else:
        signing = f"{algorithm.label}, region {config.region} ({config.sources.get('region', 'default')})"
    log.info("Signing: %s, service %s (%s)", signing, config.service, config.sources.get("service_name"))
    log.info("Credentials: %s", credentials)
    details = [f"retries {options.policy.retries}", f"timeout {config.timeout:g}s" if config.timeout else "no timeout"]
    if options.pass_headers:
        details.append("extra forwarded headers: " + ", ".join(sorted(options.pass_headers)))
    if config.headers:
        details.append("added headers: " + ", ".join(name for name, _ in config.headers))
    if options.raw_errors:
        details.append("raw error bodies")
    if options.allowed_hosts:
        details.append("allowed hosts: " + ", ".join(sorted(options.allowed_hosts)))
    if options.allowed_origins:
        details.append("allowed origins: " + ", ".join(sorted(options.allowed_origins)))
    details.extend(_changed_limits(options))
    log.info("Options: %s", "; ".join(details))
    buffered = options.max_buffered_bytes
    if buffered is not None and buffered < config.max_message_bytes:
        log.warning(
            "--max-buffered-bytes %d is below --max-message-bytes %d: larger bodies always get 503",
            buffered,
            config.max_message_bytes,
        )
    for warning in config.warnings:
        log.warning("%s", warning)


def _changed_limits(options: ListenerOptions) -> list[str]:
    """The connection limits that differ from their defaults, for the start-up line."""
    changed = []
    if options.header_timeout != DEFAULT_HEADER_TIMEOUT:
        changed.append(f"header timeout {options.header_timeout:g}s")
    if options.idle_timeout != DEFAULT_IDLE_TIMEOUT:
        changed.append(f"idle timeout {options.idle_timeout:g}s")
    if options.max_connections != DEFAULT_MAX_CONNECTIONS:
        changed.append(f"max connections {options.max_connections}")
    if options.max_buffered_bytes is not None:
        changed.append(f"max buffered bytes {options.max_buffered_bytes}")
    return changed


async def _serve(config: ProxyConfig, provider: CredentialSource, options: ListenerOptions) -> int:
    listener = HttpListener(config, provider, options)
    try:
        url = await listener.start()
    except OSError as exc:
        from sigv4_proxy.errors import Sigv4ProxyError

        await listener.aclose(grace=0)
        raise Sigv4ProxyError(
            f"cannot listen on {options.host}:{options.port}: {os.strerror(exc.errno) if exc.errno else exc} (is "
            "another process using the port? choose another with --listen, or port 0 for a free one)"
        ) from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # Windows: Ctrl-C still interrupts
            loop.add_signal_handler(signum, stop.set)
    log.info("Listening on %s/ -> %s (health: %s%s)", url, display_url(config.target_url), url, HEALTH_PATH)
    try:
        await stop.wait()
    finally:
        log.info("shutting down: letting requests in flight finish (up to %g s)", SHUTDOWN_GRACE)
        await listener.aclose()
    return 0
