"""`sigv4-proxy demo`: see the proxy work end to end on this machine, no AWS account needed."""

from __future__ import annotations

import argparse

HELP = "see the proxy work end to end against a local IAM-protected MCP endpoint (no AWS account needed)"
DESCRIPTION = """\
Start a local MCP endpoint that verifies SigV4 signatures the way AWS does (sigv4-proxy emulate mcp, with
fresh throwaway credentials on a free loopback port), launch the proxy against it the way an MCP client
does, and drive it with the official MCP SDK client: initialize, list tools, call echo, call a tool that
reports progress. Then show what happens with a wrong service name, and the diagnosis you get.

Prints each signed request as the endpoint verified it (method, path, masked credential scope, verdict).
Exits 0 when everything behaved as expected, 1 otherwise.
"""
EPILOG = """\
Needs the optional [mcp] dependencies: pip install '.[mcp]' in the project's clone.
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
