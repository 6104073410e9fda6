"""The MCP stdio proxy's command line: ``sigv4-proxy [flags]`` with no subcommand.

Flags and their environment variables live in :mod:`sigv4_proxy.config` (shared with ``doctor`` and
``http``); this module only wires them to the runner. Standard library only at module level.
"""

from __future__ import annotations

import argparse
import os

DESCRIPTION = """\
Sign MCP traffic with AWS SigV4/SigV4a: a stdio <-> Streamable HTTP (or legacy HTTP+SSE) proxy.

An MCP client launches sigv4-proxy as a stdio server; every message is forwarded, unchanged, to an
IAM-protected MCP endpoint (API Gateway, Lambda function URL, Bedrock AgentCore, ...) in a signed HTTP
request, and every answer comes back on stdout. Logs go to stderr.

Built to run all day: credentials are refreshed before they expire (and once more when the server says a
token expired), a server that forgot the session gets a new one without the client noticing, throttling,
502/503/504 and cold starts (424) are retried with backoff, a wrong local clock is corrected from the
server's Date header, and every failure reaches the client as a JSON-RPC error that says the cause and
the fix. A server cannot exhaust its memory or hold a request forever: an answer larger than
--max-message-bytes, or one that does not come within --request-deadline, ends in such an error.

Every flag has an environment variable; a flag wins over its variable. Region and service name are
inferred from AWS endpoint URLs when not given."""

EPILOG = """\
examples:
  sigv4-proxy --target-url https://abc123.execute-api.us-east-1.amazonaws.com/prod/mcp
  sigv4-proxy --target-url https://mcp.example.com/mcp --region eu-west-1 --service-name execute-api
  MCP_TARGET_URL=https://xyz.lambda-url.us-west-2.on.aws/mcp AWS_PROFILE=dev sigv4-proxy --sse
  sigv4-proxy --target-url https://old.example.com/sse --region us-east-1 --service-name execute-api \\
      --transport sse
  sigv4-proxy --target-url "https://bedrock-agentcore.us-east-1.amazonaws.com/runtimes/<ARN>/invocations" \\
      --warm --retries 4

MCP client configuration (e.g. claude_desktop_config.json):
  {"mcpServers": {"my-server": {"command": "sigv4-proxy",
     "args": ["--target-url", "https://abc123.execute-api.us-east-1.amazonaws.com/prod/mcp"],
     "env": {"AWS_PROFILE": "dev"}}}}

Try it without an AWS account: sigv4-proxy demo. Documentation: sigv4-proxy help proxy."""


def configure(parser: argparse.ArgumentParser) -> None:
    from sigv4_proxy.config import add_proxy_arguments

    add_proxy_arguments(parser, bridge=True)


def run(args: argparse.Namespace) -> int:
    from sigv4_proxy.config import load_proxy_config
    from sigv4_proxy.mcp.runner import run_proxy

    config = load_proxy_config(args, os.environ, bridge=True)
    return run_proxy(config, os.environ)
