"""Failures without an HTTP answer, produced for real on loopback with httpx where possible."""

from __future__ import annotations

import socket
import ssl
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from sigv4_proxy import diagnose as d
from sigv4_proxy.diagnose import SigningContext, diagnose_exception
from sigv4_proxy.errors import CredentialsError
from tests.support.tls import self_signed


def context(url: str) -> SigningContext:
    return SigningContext(url=url, region="us-east-1", service="execute-api")


@contextmanager
def tcp_server(handle: Callable[[socket.socket], None]) -> Iterator[int]:
    """A one-purpose loopback TCP server running `handle` for each connection."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        stop.set()
        thread.join()
        listener.close()


def read_request(conn: socket.socket) -> None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return
        data += chunk


def capture(url: str, **client_args: object) -> BaseException:
    with pytest.raises(httpx.HTTPError) as info, httpx.Client(**client_args) as client:  # type: ignore[arg-type]
        client.post(url, content=b"{}")
    return info.value


def test_connection_refused(closed_port: int) -> None:
    url = f"http://127.0.0.1:{closed_port}/mcp"
    diagnosis = diagnose_exception(capture(url), context=context(url))
    assert (diagnosis.kind, diagnosis.retryable, diagnosis.status) == (d.CONNECTION_REFUSED, True, None)
    assert diagnosis.message() == (
        f"connection to 127.0.0.1:{closed_port} refused. Diagnosis: nothing is listening at 127.0.0.1:{closed_port}: "
        "check that the server is running and the target URL's port; on AWS check security groups and network ACLs"
    )


def test_read_timeout_is_not_resent() -> None:
    release = threading.Event()

    def silent(conn: socket.socket) -> None:
        read_request(conn)
        release.wait(5)
        conn.close()

    with tcp_server(silent) as port:
        url = f"http://127.0.0.1:{port}/mcp"
        exc = capture(url, timeout=httpx.Timeout(5, read=0.2))
        release.set()
    diagnosis = diagnose_exception(exc, context=context(url))
    assert (diagnosis.kind, diagnosis.retryable) == (d.READ_TIMEOUT, False)
    assert diagnosis.message() == (
        f"no response from 127.0.0.1:{port} within the time limit. Diagnosis: the server accepted the request "
        "but did not answer in time; it may still be executing it, so it was not resent; raise --timeout for "
        "slow operations"
    )


def test_server_closes_without_answer() -> None:
    def hang_up(conn: socket.socket) -> None:
        read_request(conn)
        conn.close()

    with tcp_server(hang_up) as port:
        url = f"http://127.0.0.1:{port}/mcp"
        exc = capture(url)
    diagnosis = diagnose_exception(exc, context=context(url))
    assert diagnosis.kind == d.CONNECTION_CLOSED
    assert diagnosis.cause == f"127.0.0.1:{port} closed the connection before the response was complete"


def test_connection_reset_after_send() -> None:
    def reset(conn: socket.socket) -> None:
        read_request(conn)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()  # RST

    with tcp_server(reset) as port:
        url = f"http://127.0.0.1:{port}/mcp"
        exc = capture(url)
    diagnosis = diagnose_exception(exc, context=context(url))
    assert diagnosis.kind in (d.CONNECTION_RESET, d.CONNECTION_CLOSED)  # the kernel decides which one httpx sees
    assert "may have been executed, so it was not resent" in (diagnosis.hint or "")


def test_https_url_to_plain_http_server() -> None:
    def plain(conn: socket.socket) -> None:
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
        conn.close()

    with tcp_server(plain) as port:
        url = f"https://127.0.0.1:{port}/mcp"
        exc = capture(url)
    diagnosis = diagnose_exception(exc, context=context(url))
    assert diagnosis.kind == d.TLS
    assert diagnosis.message() == (
        f"TLS handshake with 127.0.0.1:{port} failed (the server does not speak TLS). Diagnosis: the server "
        "answers plain HTTP on that port: use an http:// target URL (non-loopback hosts also need --allow-http), "
        "or the right HTTPS port"
    )


def test_untrusted_certificate(tmp_path: Path) -> None:
    files = self_signed(tmp_path)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(files.cert_pem, files.key_pem)

    def tls(conn: socket.socket) -> None:
        try:
            with server_context.wrap_socket(conn, server_side=True) as wrapped:
                wrapped.recv(1)
        except (ssl.SSLError, OSError):
            pass

    with tcp_server(tls) as port:
        url = f"https://localhost:{port}/mcp"
        exc = capture(url)
    diagnosis = diagnose_exception(exc, context=context(url))
    assert diagnosis.kind == d.TLS_CERTIFICATE
    assert diagnosis.message() == (
        f"TLS certificate of localhost:{port} not accepted (self-signed certificate). Diagnosis: check that the "
        "target URL's host is the certificate's name; behind a TLS-inspecting corporate proxy point SSL_CERT_FILE "
        f"at its CA bundle; inspect with `openssl s_client -connect localhost:{port} -servername localhost`"
    )


# --- shapes that loopback cannot produce: built the way httpx/httpcore chain them ------------------------------


def chained(outer: BaseException, inner: BaseException) -> BaseException:
    try:
        try:
            raise inner
        except BaseException as cause:
            raise outer from cause
    except BaseException as exc:
        return exc


CTX = context("https://abc123.execute-api.us-east-1.amazonaws.com/prod/mcp")


@pytest.mark.parametrize(
    ("exc", "kind", "retryable", "cause"),
    [
        (
            chained(
                httpx.ConnectError("[Errno -2] Name or service not known"),
                socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
            ),
            d.DNS,
            False,
            "DNS lookup of abc123.execute-api.us-east-1.amazonaws.com failed ([Errno -2] Name or service not known)",
        ),
        (
            chained(
                httpx.ConnectError("[Errno -3] Temporary failure in name resolution"),
                socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution"),
            ),
            d.DNS_TEMPORARY,
            True,
            "DNS lookup of abc123.execute-api.us-east-1.amazonaws.com failed ([Errno -3] Temporary failure in name "
            "resolution)",
        ),
        (
            httpx.ConnectTimeout("timed out"),
            d.CONNECT_TIMEOUT,
            True,
            "connecting to abc123.execute-api.us-east-1.amazonaws.com:443 timed out",
        ),
        (
            httpx.PoolTimeout("timed out"),
            d.POOL_TIMEOUT,
            True,
            "no free connection to abc123.execute-api.us-east-1.amazonaws.com:443 in time",
        ),
        (
            httpx.WriteError("[Errno 32] Broken pipe"),
            d.WRITE_FAILED,
            True,
            "sending the request to abc123.execute-api.us-east-1.amazonaws.com:443 failed ([Errno 32] Broken pipe)",
        ),
        (
            OSError(101, "Network is unreachable"),
            d.NETWORK_UNREACHABLE,
            True,
            "no route to abc123.execute-api.us-east-1.amazonaws.com:443",
        ),
        (TimeoutError(), d.TIMEOUT, False, "request to abc123.execute-api.us-east-1.amazonaws.com:443 timed out"),
        (
            RuntimeError("weird"),
            d.NETWORK_ERROR,
            False,
            "request to abc123.execute-api.us-east-1.amazonaws.com:443 failed (RuntimeError: weird)",
        ),
    ],
)
def test_exception_shapes(exc: BaseException, kind: str, retryable: bool, cause: str) -> None:
    diagnosis = diagnose_exception(exc, context=CTX)
    assert (diagnosis.kind, diagnosis.retryable, diagnosis.cause) == (kind, retryable, cause)


def test_credentials_error_keeps_its_own_fix() -> None:
    exc = CredentialsError(
        "failed to load AWS credentials: the AWS SSO session has expired or is not logged in: "
        "run `aws sso login --profile dev`"
    )
    diagnosis = diagnose_exception(exc, context=CTX)
    assert diagnosis.kind == d.CREDENTIALS
    assert diagnosis.message() == (
        "failed to load AWS credentials: the AWS SSO session has expired or is not logged in: run `aws sso login "
        "--profile dev`. Diagnosis: fix the credential source named above; the request was not sent"
    )


def test_secrets_in_exception_text_are_redacted() -> None:
    exc = RuntimeError("boom x-amz-security-token:IQoJb3JpZ2luSECRET Signature=0123456789abcdef0123456789")
    message = diagnose_exception(exc, context=CTX).message()
    assert "IQoJb3JpZ2luSECRET" not in message
    assert "0123456789abcdef0123456789" not in message


def test_ipv6_host_port() -> None:
    diagnosis = diagnose_exception(
        ConnectionRefusedError(111, "Connection refused"), context=context("http://[::1]:8080/mcp")
    )
    assert diagnosis.cause == "connection to [::1]:8080 refused"


class PoolTimeout(Exception):
    """Another library's exception that merely shares a name with httpx's."""


class ReadError(Exception):
    """Another library's exception that merely shares a name with httpx's."""


class SlowGateway(httpx.ReadTimeout):
    """A subclass of httpx's read timeout under a name of its own."""


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        # A class name is not a class: "the request was not sent" would be a guess about another library.
        (PoolTimeout("no slot"), d.NETWORK_ERROR),
        (ReadError("bad frame"), d.NETWORK_ERROR),
        # A subclass is its base class, whatever it is called.
        (SlowGateway("timed out"), d.READ_TIMEOUT),
    ],
    ids=["lookalike-pool-timeout", "lookalike-read-error", "subclass-of-read-timeout"],
)
def test_exception_rules_match_classes_not_names(exc: BaseException, kind: str) -> None:
    assert diagnose_exception(exc, context=CTX, environ={}).kind == kind
