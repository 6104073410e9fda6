"""`sigv4-proxy sign`: sign any request and print what is needed to debug a signature."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from sigv4_proxy.cli._common import (
    add_presign_arguments,
    add_request_arguments,
    add_signing_arguments,
    parse_header_args,
    parse_timestamp,
    read_body,
    resolve_scope,
)

if TYPE_CHECKING:  # pragma: no cover
    from sigv4_proxy.signing.model import PresignedURL, SignedRequest

HELP = "sign an HTTP request (or presign a URL) and print the canonical request, string to sign, headers, ..."
DESCRIPTION = """\
Sign an HTTP request with SigV4 or SigV4a and print what you need to debug a signature: the canonical
request, the string to sign, the Authorization header, the full signed headers, a ready curl command, or
a presigned URL. Credentials come from the AWS chain (environment variables, --profile, SSO, roles, ...).
"""
EPILOG = """\
outputs (--output):
  canonical-request   the canonical request, exactly as hashed
  string-to-sign      the string to sign
  authorization       the Authorization header value (presigned: the signature)
  headers             every header to send, one 'Name: value' per line (default for header signing)
  url                 the presigned URL (default with --presign)
  curl                a curl command that sends the signed request
  json                everything above as one JSON object (secrets masked except in the headers/URL)

examples:
  sigv4-proxy sign GET https://abc123.execute-api.us-east-1.amazonaws.com/prod/mcp
  sigv4-proxy sign POST https://abc.lambda-url.us-east-1.on.aws/ -H 'Content-Type: application/json' \\
      --data '{"jsonrpc":"2.0","id":1,"method":"ping"}' --output canonical-request
  sigv4-proxy sign --raw-request request.txt --region us-east-1 --service-name service \\
      --timestamp 2015-08-30T12:36:00Z --output string-to-sign
  sigv4-proxy sign GET https://example.amazonaws.com/ --region us-east-1 --service-name s3 --presign --expires-in 300

The signature, the secret key and the session token appear only where they must (the headers, curl and
url outputs are the signed request itself); treat those outputs as secrets.

Into a pipe or a file every output is written byte for byte. On a terminal, control characters (ESC, BEL,
a bidi override, ...) from header values, the URL or the body are shown as escapes such as \\x1b instead of
being sent to it, with a note on stderr.
"""
OUTPUTS = ("canonical-request", "string-to-sign", "authorization", "headers", "url", "curl", "json")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("method", nargs="?", help="HTTP method (GET, POST, ...); taken from --raw-request if given")
    parser.add_argument("url", nargs="?", help="the full URL as it will be sent; taken from --raw-request if given")
    add_request_arguments(parser, header_help="a header to send and sign (repeatable)")
    parser.add_argument(
        "--raw-request",
        metavar="FILE",
        help="read the whole request from an HTTP/1.1 text file (request line, headers, blank line, body); - for stdin",
    )
    parser.add_argument("--scheme", default="https", choices=("https", "http"), help="scheme for --raw-request (https)")
    add_signing_arguments(parser)
    parser.add_argument("--presign", action="store_true", help="presign a URL (signature in the query string)")
    add_presign_arguments(parser, lifetime_help="presigned URL lifetime in seconds, 1..604800 (default: 900)")
    parser.add_argument("--unsigned-payload", action="store_true", help="use UNSIGNED-PAYLOAD as the payload hash")
    parser.add_argument(
        "--content-sha256",
        action="store_true",
        help="add and sign the x-amz-content-sha256 header (S3 and some services require it)",
    )
    parser.add_argument(
        "--no-normalize-path",
        action="store_true",
        help="sign the path verbatim, without removing dot segments and double slashes (S3 never normalises)",
    )
    parser.add_argument(
        "--omit-session-token",
        action="store_true",
        help="add the session token after signing instead of signing it (what some services, e.g. IoT, expect)",
    )
    parser.add_argument(
        "--output", "-o", choices=OUTPUTS, help="what to print (default: headers, or url with --presign)"
    )


def run(args: argparse.Namespace) -> int:
    from sigv4_proxy.credentials import CredentialProvider
    from sigv4_proxy.errors import UsageError
    from sigv4_proxy.signing.api import presign, sign
    from sigv4_proxy.signing.rawrequest import parse_raw_request

    method, url, headers, body = args.method, args.url, parse_header_args(args.headers), read_body(args.data)
    if args.raw_request:
        raw_bytes = sys.stdin.buffer.read() if args.raw_request == "-" else _read_file(args.raw_request)
        raw = parse_raw_request(raw_bytes)
        method = method or raw.method
        url = url or raw.url(args.scheme)
        headers = raw.headers + headers
        body = body or raw.body
    if not method or not url:
        raise UsageError("sign needs METHOD and URL (or --raw-request FILE)")
    region, service = resolve_scope(url, args.region, args.service_name)
    credentials = CredentialProvider(args.profile).get()
    options = {
        "credentials": credentials,
        "region": region,
        "service": service,
        "algorithm": args.sig_version,
        "now": parse_timestamp(args.timestamp),
        "omit_session_token": args.omit_session_token,
        "normalize_path": False if args.no_normalize_path else None,
    }
    if args.presign:
        result: SignedRequest | PresignedURL = presign(
            method,
            url,
            headers=headers,
            body=body,
            expires_in=args.expires_in,
            unsigned_payload=args.unsigned_payload,
            **options,
        )
    else:
        result = sign(
            method,
            url,
            headers,
            body,
            unsigned_payload=args.unsigned_payload,
            content_sha256_header=args.content_sha256,
            **options,
        )
    sys.stdout.write(for_stdout(render(result, args.output or ("url" if args.presign else "headers"), body)))
    return 0


def for_stdout(text: str) -> str:
    """`text` as written to stdout: byte for byte into a pipe or a file (the outputs are the signed request
    itself, and the canonical request must match the server's to the byte), escaped on a terminal.

    Header values, the URL and a --raw-request file are often pasted from elsewhere: on a terminal an ESC
    sequence in them is shown as ``\\x1b``, never obeyed (line breaks stay: the canonical request is
    multi-line). The copy on screen then differs from the bytes signed, so a note on stderr says so.
    """
    from sigv4_proxy.terminal import printable

    if not sys.stdout.isatty():
        return text
    shown = printable(text, layout=True)
    if shown != text:
        print(
            "note: control characters in the output are shown as escapes (\\x1b, \\u202e); redirect it to a "
            "file or a pipe for the exact bytes",
            file=sys.stderr,
        )
    return shown


def _read_file(path: str) -> bytes:
    from pathlib import Path

    from sigv4_proxy.errors import UsageError

    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read --raw-request file {path}: {exc.strerror}") from None


def render(result: SignedRequest | PresignedURL, output: str, body: bytes) -> str:
    import json
    import shlex

    from sigv4_proxy.signing.model import SignedRequest

    if output == "canonical-request":
        return result.canonical_request + "\n"
    if output == "string-to-sign":
        return result.string_to_sign + "\n"
    if output == "authorization":
        return (result.authorization if isinstance(result, SignedRequest) else result.signature) + "\n"
    if output == "headers":
        return "".join(f"{name}: {value}\n" for name, value in result.headers)
    if output == "url":
        if isinstance(result, SignedRequest):
            from sigv4_proxy.errors import UsageError

            raise UsageError("--output url needs --presign (header signing leaves the URL unchanged)")
        return result.url + "\n"
    if output == "curl":
        parts = ["curl", "-X", result.method]
        for name, value in result.headers:
            if name.lower() != "host":
                parts += ["-H", f"{name}: {value}"]
        if body:
            parts += ["--data-binary", body.decode("utf-8", errors="replace")]
        parts.append(result.url)
        return " ".join(shlex.quote(p) for p in parts) + "\n"
    document = {
        "algorithm": result.algorithm,
        "credential_scope": result.credential_scope,
        "amz_date": result.amz_date,
        "signed_headers": result.signed_headers,
        "canonical_request": result.canonical_request,
        "string_to_sign": result.string_to_sign,
        "signature": result.signature,
        "headers": [[name, value] for name, value in result.headers],
        "url": result.url,
    }
    return json.dumps(document, indent=2) + "\n"
