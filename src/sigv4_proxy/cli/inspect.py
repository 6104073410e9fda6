"""`sigv4-proxy inspect`: decode a token / presigned URL / Authorization header and say what is wrong."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from sigv4_proxy.cli.secret_input import SECRET_ACCESS_KEY, add_secret_arguments

if TYPE_CHECKING:  # pragma: no cover
    from sigv4_proxy.inspection import Verification
    from sigv4_proxy.signing.model import Credentials
    from sigv4_proxy.tokens import ParsedToken

HELP = "explain an IAM token, presigned URL or Authorization header: fields, mistakes and fixes"
DESCRIPTION = """\
Decode an Aurora DSQL or RDS IAM token, any SigV4 presigned URL, or (with --header) an Authorization
header; print every field (host, action, masked access key, date, expiry and time left, scope region and
service, signed headers, session token present) and check it for the mistakes that get tokens rejected,
each with its fix. Nothing is sent anywhere.

  --compare OTHER   diff two tokens field by field (parameter order ignored) and name the difference that
                    explains why their signatures differ
  --verify          recompute the signature with your credentials; on a mismatch, find the signer mistake
                    that reproduces it and show both canonical requests and strings to sign, the first
                    differing line marked
"""
EPILOG = """\
examples:
  sigv4-proxy inspect "$TOKEN" --user admin
  echo "$TOKEN" | sigv4-proxy inspect -                      # keeps the token out of the process list
  sigv4-proxy inspect "$THEIR_TOKEN" --compare "$(sigv4-proxy dsql-token --hostname H --timestamp T)"
  sigv4-proxy inspect "$TOKEN" --verify                      # credentials from the AWS chain
  sigv4-proxy inspect "$TOKEN" --verify --secret-access-key-file key.txt   # the token's key, kept out of `ps`
  sigv4-proxy inspect --header 'AWS4-HMAC-SHA256 Credential=AKIA.../20240501/us-east-1/execute-api/aws4_request,
      SignedHeaders=host;x-amz-date, Signature=...' -H 'X-Amz-Date: 20240501T120000Z' \\
      --url https://abc.execute-api.us-east-1.amazonaws.com/prod/mcp

exit status: 0 when no check found an error (and --verify matched), 1 otherwise, 2 for bad usage.
TOKEN may be '-' (stdin) or @FILE. Output never shows the secret key, the session token or a full signature,
and control characters from the token are shown escaped (\\x1b, \\u202e), never sent to the terminal.
environment: SIGV4_PROXY_SECRET_ACCESS_KEY  the secret key for --verify (instead of --secret-access-key)
"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "token",
        nargs="?",
        metavar="TOKEN|URL",
        help="the token, presigned URL, postgresql:// URL or Authorization header; '-' or @FILE to read it",
    )
    parser.add_argument(
        "--header", action="store_true", help="TOKEN is an Authorization header value (or 'Authorization: ...')"
    )
    parser.add_argument("--compare", metavar="OTHER", help="a second token to diff against ('-' or @FILE allowed)")
    parser.add_argument("--verify", action="store_true", help="recompute the signature with your credentials")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    parser.add_argument(
        "--user", metavar="NAME", help="the database user you log in as (checks DbConnect vs DbConnectAdmin, DBUser)"
    )
    parser.add_argument("--now", metavar="ISO8601", help="judge expiry as of this time (default: now)")
    verify = parser.add_argument_group("verification (--verify)")
    verify.add_argument("--profile", help="AWS profile whose credentials signed the token (default: the chain)")
    add_secret_arguments(verify, SECRET_ACCESS_KEY, "the secret key of the token's access key (instead of the chain)")
    verify.add_argument(
        "--canonical-request",
        metavar="FILE",
        help="your signer's canonical request (debug output): diffed line by line against the expected one",
    )
    request = parser.add_argument_group("the request an --header was signed for")
    request.add_argument("--url", help="the request URL (host, path and query are signed)")
    request.add_argument("--method", "-X", default=None, help="the request method (default: GET)")
    request.add_argument(
        "-H",
        dest="headers",
        action="append",
        default=[],
        metavar="'Name: value'",
        help="a request header (X-Amz-Date, X-Amz-Security-Token, Host, ...); repeatable",
    )
    request.add_argument("--data", "-d", metavar="TEXT|@FILE|@-", help="the request body, for --verify")


def read_token_argument(value: str | None, *, what: str = "TOKEN") -> str:
    from pathlib import Path

    from sigv4_proxy.errors import UsageError

    if value is None:
        if sys.stdin.isatty():
            raise UsageError(f"{what} is required (or '-' to read it from stdin)")
        value = "-"
    if value == "-":
        return sys.stdin.read()
    if value.startswith("@"):
        try:
            return Path(value[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot read {value[1:]}: {exc.strerror}") from None
    return value


def _parse(args: argparse.Namespace, text: str) -> ParsedToken:
    from sigv4_proxy.cli._common import parse_header_args
    from sigv4_proxy.tokens import parse_authorization, parse_token

    if args.header:
        return parse_authorization(text, url=args.url, headers=parse_header_args(args.headers))
    return parse_token(text)


def _credentials(
    args: argparse.Namespace, token: ParsedToken, secret: str | None
) -> tuple[Credentials | None, str | None]:
    """(credentials for the token's key, or None with the reason); `secret` is the key given for it."""
    from sigv4_proxy.credentials import CredentialProvider
    from sigv4_proxy.errors import CredentialsError
    from sigv4_proxy.redact import mask_access_key
    from sigv4_proxy.signing.model import Credentials

    if not token.access_key_id:
        return None, "cannot verify: the token names no access key"
    if secret:
        return Credentials(token.access_key_id, secret), None
    try:
        credentials = CredentialProvider(args.profile).get()
    except CredentialsError as exc:
        return None, f"cannot verify: {exc}; or give the token's secret key with --secret-access-key-file"
    if credentials.access_key_id != token.access_key_id:
        return None, (
            f"cannot verify: the token was signed with access key {mask_access_key(token.access_key_id)}, but your "
            f"credentials are {credentials.masked_access_key}; use --profile or --secret-access-key-file for the "
            f"token's key"
        )
    return credentials, None


def _verify(args: argparse.Namespace, token: ParsedToken, secret: str | None) -> Verification:
    from sigv4_proxy.cli._common import parse_header_args, read_body
    from sigv4_proxy.errors import UsageError
    from sigv4_proxy.inspection import Verification, verify_token

    credentials, problem = _credentials(args, token, secret)
    if credentials is None:
        return Verification(False, problem or "cannot verify", "credentials")
    theirs = None
    if args.canonical_request:
        theirs = read_token_argument("@" + args.canonical_request, what="--canonical-request")
    headers = parse_header_args(args.headers)
    if args.header:
        if not args.url:
            raise UsageError("--verify with --header needs the request: --url URL (and -H for its headers)")
        if not any(name.lower() == "host" for name, _ in headers):
            headers = [("host", token.host), *headers]
    return verify_token(
        token,
        credentials,
        their_canonical_request=theirs,
        method=(args.method or "GET").upper(),
        headers=headers if args.header else (),
        body=read_body(args.data) if args.header else b"",
    )


def run(args: argparse.Namespace) -> int:
    import json
    import os
    from datetime import datetime, timezone

    from sigv4_proxy.cli._common import parse_timestamp
    from sigv4_proxy.cli.secret_input import read_secret
    from sigv4_proxy.inspection import (
        compare_tokens,
        inspect_token,
        render_comparison,
        render_report,
        render_verification,
    )
    from sigv4_proxy.terminal import printable

    _check_stdin(args)
    secret = read_secret(args, os.environ, SECRET_ACCESS_KEY)
    now = parse_timestamp(args.now) or datetime.now(timezone.utc)
    token = _parse(args, read_token_argument(args.token))
    report = inspect_token(token, now=now, user=args.user)
    verification = _verify(args, token, secret) if args.verify else None
    if verification is not None and verification.ok:
        # A signature that verifies settles what the order note leaves open.
        report = type(report)(report.token, report.now, tuple(f for f in report.findings if f.code != "query_unsorted"))
    other_report = comparison = None
    if args.compare is not None:
        other = _parse(args, read_token_argument(args.compare, what="--compare"))
        other_report = inspect_token(other, now=now, user=args.user)
        comparison = compare_tokens(token, other)

    if args.json:
        document: dict[str, Any] = {"token": report.to_dict()}
        if verification is not None:
            document["verify"] = verification.to_dict()
        if comparison is not None and other_report is not None:
            document["compare"] = {"other": other_report.to_dict(), **comparison.to_dict()}
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
    else:
        out = [render_report(report)]
        if verification is not None:
            out += ["", render_verification(verification)]
        if comparison is not None and other_report is not None:
            out += [
                "",
                "Second token (--compare)",
                render_report(other_report),
                "",
                "Differences",
                render_comparison(comparison),
            ]
        # The renderers escape what comes from the tokens; this pass guarantees that no control character
        # reaches the terminal even from a renderer that forgot (layout: the report's own line breaks stay).
        sys.stdout.write(printable("\n".join(out), layout=True) + "\n")
    failed = (
        not report.ok
        or (other_report is not None and not other_report.ok)
        or (verification is not None and not verification.ok)
    )
    return 1 if failed else 0


def _check_stdin(args: argparse.Namespace) -> None:
    """Stdin can be read once: at most one input may come from it (an omitted TOKEN is read from it)."""
    from sigv4_proxy.cli.secret_input import wants_stdin
    from sigv4_proxy.errors import UsageError

    readers = [
        name
        for name, reads in (
            ("TOKEN", args.token == "-" or (args.token is None and wants_stdin(args))),
            ("--compare", args.compare == "-"),
            ("--data", args.header and args.verify and args.data == "@-"),
            ("--secret-access-key-file", wants_stdin(args)),
        )
        if reads
    ]
    if len(readers) > 1:
        raise UsageError(f"only one of {', '.join(readers[:-1])} and {readers[-1]} can be read from stdin")
