"""`sigv4-proxy demo`: see the proxy work end to end on this machine, no AWS account needed."""

from __future__ import annotations

import argparse

HELP = (
    "see both doors work end to end on this machine: MCP to an IAM-protected endpoint, PostgreSQL to a local "
    "Aurora DSQL through `sigv4-proxy pg` (no AWS account needed)"
)
DESCRIPTION = """\
Start a local MCP endpoint that verifies SigV4 signatures the way AWS does (sigv4-proxy emulate mcp, with
fresh throwaway credentials on a free loopback port), launch the proxy against it the way an MCP client
does, and drive it with the official MCP SDK client: initialize, list tools, call echo, call a tool that
reports progress. Then show what happens with a wrong service name, and the diagnosis you get.

Then part 2, PostgreSQL and Aurora DSQL: start a local Aurora DSQL (sigv4-proxy emulate dsql: DSQL's rules,
TLS, IAM token checks, a throwaway identity); log in with a Java-style token signed for host:5432 and show
DSQL's refusal and our diagnosis; log in with a token as `sigv4-proxy dsql-token` makes it (verify-full TLS);
run a query through `sigv4-proxy pg` with no password at all.

Prints each signed request as the endpoint verified it (method, path, masked credential scope, verdict).
Exits 0 when everything behaved as expected, 1 otherwise.
"""
EPILOG = """\
Needs the optional [mcp] dependencies; the DSQL part needs the [pg] extra (without it, one line says so and
that part is skipped): pip install '.[mcp,pg]' in the project's clone.
Nothing leaves this machine; your own AWS configuration is not read.
Documentation: sigv4-proxy help demo.
"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--verbose", "-v", action="store_true", help="also print the proxy's own log (stderr)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="give up on a step after this long (default: 60)",
    )


def run(args: argparse.Namespace) -> int:
    # Without the [mcp] extra, main() says which extra to install (sigv4_proxy.cli.EXTRA_OF_COMMAND).
    import asyncio

    from sigv4_proxy.demo import render, run_demo

    report = asyncio.run(run_demo(timeout=args.timeout))
    print(render(report, verbose=args.verbose), flush=True)
    return 0 if report.ok else 1
