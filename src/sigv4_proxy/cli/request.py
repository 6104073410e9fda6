"""`sigv4-proxy request`: send one SigV4-signed HTTP request from the shell (what awscurl does)."""

from __future__ import annotations

import argparse
import re
import sys
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    import ssl

    import httpx

    from sigv4_proxy.terminal import TerminalWriter

HELP = "send a signed HTTP request and stream the response to stdout (like awscurl)"
DESCRIPTION = """\
Send one HTTP request signed with SigV4 or SigV4a and stream the response body to stdout as it arrives
(server-sent events included). Region and service are inferred from the URL when it names them; credentials
come from the AWS chain (environment variables, --profile, SSO, roles, ...). On HTTP >= 400 the body is still
printed, and the AWS error is decoded on stderr with the cause and the fix.
"""
EPILOG = """\
examples:
  sigv4-proxy request GET https://abc123.execute-api.us-east-1.amazonaws.com/prod/health
  sigv4-proxy request POST https://abc.lambda-url.us-east-1.on.aws/mcp -i \\
      -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \\
      --data '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18",
      "capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}'
  sigv4-proxy request GET https://internal.example.com/api --region eu-west-1 --service-name execute-api -v

-v prints the request line, the canonical request and the string to sign on stderr (the session token
masked, never the signature or the secret), then the response status and headers.
Private CA? set SSL_CERT_FILE=/path/to/ca.pem or pass --cacert.

terminal safety: the body goes to stdout byte for byte when stdout is a pipe or a file; on a terminal its
control characters (ESC, BEL, bidi overrides, ...) are shown escaped (\\x1b, \\u202e), line breaks and tabs
kept: pipe through `cat` for the raw bytes. What goes to stderr (-v, the diagnosis) is always escaped.

exit status: 0 for HTTP < 400; 1 for HTTP >= 400 or when no response arrived (DNS, TCP, TLS, timeout);
2 for bad usage.
"""


def configure(parser: argparse.ArgumentParser) -> None:
    from sigv4_proxy.cli._common import add_request_arguments, add_signing_arguments

    parser.add_argument("method", metavar="METHOD", help="HTTP method: GET, POST, PUT, DELETE, ...")
    parser.add_argument("url", metavar="URL", help="the full https:// URL")
    add_request_arguments(parser, header_help="a header to send (signed); repeatable")
    add_signing_arguments(parser)
    parser.add_argument("--unsigned-payload", action="store_true", help="sign UNSIGNED-PAYLOAD instead of the body")
    parser.add_argument("-i", "--include", action="store_true", help="print the status line and headers first")
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="print the canonical request and string to sign, and the response headers, on stderr",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="give up when no data arrives for this long (default: wait; a live stream is never cut)",
    )
    parser.add_argument(
        "--connect-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="time allowed to connect, TLS included (default: 10)",
    )
    parser.add_argument("--cacert", metavar="FILE", help="trust this CA bundle (default: certifi, or SSL_CERT_FILE)")
    parser.add_argument("-k", "--insecure", action="store_true", help="do not verify the server's TLS certificate")


def _ssl_verify(args: argparse.Namespace) -> ssl.SSLContext | bool:
    import ssl

    from sigv4_proxy.errors import UsageError

    if args.insecure:
        return False
    if args.cacert:
        try:
            return ssl.create_default_context(cafile=args.cacert)
        except (OSError, ssl.SSLError) as exc:
            raise UsageError(f"cannot use --cacert {args.cacert}: {exc}") from None
    return True


def _print_verbose_request(request: httpx.Request) -> None:
    from sigv4_proxy.inspection import redact
    from sigv4_proxy.redact import redact_header
    from sigv4_proxy.terminal import printable

    signed = request.extensions.get("sigv4")
    lines = [f"> {request.method} {request.url}"]
    lines += [f"> {name}: {redact_header(name, value)}" for name, value in request.headers.multi_items()]
    if signed is not None:
        lines.append("* canonical request:")
        lines += [f"*   {line}" for line in (redact(signed.canonical_request) or "").split("\n")]
        lines.append("* string to sign:")
        lines += [f"*   {line}" for line in signed.string_to_sign.split("\n")]
    sys.stderr.write("".join(f"{printable(line)}\n" for line in lines))
    sys.stderr.flush()


def _status_block(response: httpx.Response, prefix: str = "") -> bytes:
    """The status line and headers, as curl -i prints them (or prefixed with '< ' for -v on stderr)."""
    lines = [f"{response.http_version} {response.status_code} {response.reason_phrase}"]
    lines += [f"{name}: {value}" for name, value in response.headers.multi_items()]
    if prefix:
        return "".join(f"{prefix}{line}\n" for line in lines).encode("latin-1", errors="replace")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", errors="replace")


# RFC 9110 token characters: what a header name may contain.
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def check_url(url: str) -> None:
    """Reject a URL that cannot be sent, with what is wrong, before anything is signed or sent (httpx and
    the diagnosis would otherwise fail with a traceback or blame connectivity). The checks are the proxy's
    (:func:`sigv4_proxy.config.url_problem`), after one for control characters, which a terminal would obey."""
    import httpx

    from sigv4_proxy.config import url_problem
    from sigv4_proxy.errors import UsageError
    from sigv4_proxy.terminal import printable

    shown = printable(url)
    control = next((char for char in url if char < " " or char == "\x7f"), None)
    if control is not None:
        raise UsageError(f"URL contains the control character {printable(control)}, got: {shown}")
    problem = url_problem(url, subject="URL")
    if problem is not None:
        raise UsageError(printable(problem))
    try:
        httpx.URL(url)  # whatever else httpx would refuse when sending
    except httpx.InvalidURL as exc:
        raise UsageError(f"invalid URL ({printable(str(exc))}), got: {shown}") from None


def check_headers(headers: list[tuple[str, str]]) -> None:
    """Header names must be tokens and values visible ASCII (tabs allowed): HTTP/1.1 sends nothing else. The
    value is never echoed (it may be a secret): the message names the header, the character and where."""
    from sigv4_proxy.config import unsendable_character
    from sigv4_proxy.errors import UsageError
    from sigv4_proxy.terminal import printable

    for name, value in headers:
        if not _HEADER_NAME.fullmatch(name):
            raise UsageError(f"header name '{printable(name)}' is not valid: letters, digits and !#$%&'*+-.^_`|~ only")
        bad = unsendable_character(value)
        if bad is None:
            continue
        index, char = bad
        position = index + 1  # counted from 1 for a person
        if not char.isascii():
            raise UsageError(
                f"header {name}: the value must be ASCII, found '{printable(char)}' at position {position} "
                "(percent-encode or base64 it)"
            )
        raise UsageError(
            f"header {name}: the value contains the control character {printable(char)} at position {position}"
        )


class _RawWriter:
    """stdout into a pipe or a file: the body byte for byte, as curl writes it."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out

    def write(self, data: bytes) -> None:
        self._out.write(data)
        self._out.flush()

    def close(self) -> None:
        pass


def _stdout_writer() -> TerminalWriter | _RawWriter:
    """Where the status block and the body go: raw bytes for scripts, escaped text for a person at a
    terminal (a hostile server must not drive the terminal: clear it, set the clipboard with OSC 52, ...)."""
    from sigv4_proxy.terminal import TerminalWriter

    out = sys.stdout.buffer
    return TerminalWriter(out) if out.isatty() else _RawWriter(out)


def _error(message: str) -> None:
    """One `ERROR:` line on stderr; server-supplied text in it is escaped, line breaks included."""
    from sigv4_proxy.terminal import printable

    print(f"ERROR: {printable(message)}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    import httpx

    from sigv4_proxy.cli._common import parse_header_args, read_body, resolve_scope
    from sigv4_proxy.credentials import CredentialProvider
    from sigv4_proxy.diagnose import MAX_DIAGNOSED_BODY, diagnose_exception, diagnose_response
    from sigv4_proxy.terminal import printable
    from sigv4_proxy.upstream import Destination, signer, signing_context

    url = args.url
    check_url(url)
    headers = parse_header_args(args.headers)
    check_headers(headers)
    body = read_body(args.data)
    region, service = resolve_scope(url, args.region, args.service_name)
    provider = CredentialProvider(args.profile)
    credentials = provider.get()  # fails here, clearly, before any network I/O
    destination = Destination(url, region, service, args.sig_version, args.profile)
    auth = signer(destination, provider, unsigned_payload=args.unsigned_payload)
    context = signing_context(destination, provider, credentials=credentials)
    timeout = httpx.Timeout(args.timeout, connect=args.connect_timeout)
    hooks = {"request": [_print_verbose_request]} if args.verbose else {}
    out = _stdout_writer()
    kept = bytearray()  # the start of an error body, for the diagnosis
    try:
        with (
            httpx.Client(timeout=timeout, verify=_ssl_verify(args), event_hooks=hooks) as client,
            client.stream(args.method.upper(), url, headers=headers, content=body, auth=auth) as response,
        ):
            if args.verbose:
                # latin-1 is how HTTP/1.1 header bytes decode; their C1 controls (0x80-0x9f) are escaped too.
                block = _status_block(response, prefix="< ").decode("latin-1")
                sys.stderr.write(printable(block, layout=True))
                sys.stderr.flush()
            if args.include:
                out.write(_status_block(response))
            for chunk in response.iter_bytes():
                out.write(chunk)
                if response.status_code >= 400 and len(kept) < MAX_DIAGNOSED_BODY:
                    kept += chunk[: MAX_DIAGNOSED_BODY - len(kept)]
    except httpx.HTTPError as exc:
        out.close()
        _error(diagnose_exception(exc, context=context).message())
        return 1
    out.close()
    if response.status_code >= 400:
        signed = response.request.extensions.get("sigv4")
        diagnosis = diagnose_response(
            response.status_code,
            list(response.headers.multi_items()),
            bytes(kept),
            context=context,
            canonical_request=signed.canonical_request if signed is not None else None,
        )
        if kept and not kept.endswith(b"\n"):
            out.write(b"\n")  # after close(): nothing is held back any more, the line break goes out at once
        _error(diagnosis.message())
        return 1
    return 0
