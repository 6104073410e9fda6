"""Placeholder for the MCP stdio proxy's flags (owned by the MCP proxy work, issue 3)."""

from __future__ import annotations

import argparse

DESCRIPTION = "Sign MCP traffic with AWS SigV4/SigV4a: a stdio <-> Streamable HTTP proxy."
EPILOG = None


def configure(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    print("ERROR: the MCP proxy is not built yet", flush=True, file=__import__("sys").stderr)
    return 1
