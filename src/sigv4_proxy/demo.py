"""`sigv4-proxy demo`: the whole product in one command, no AWS account needed.

1. Start `emulate mcp` (the built-in MCP server behind an IAM-verifying front) on a free loopback port with
   fresh random credentials.
2. Launch the proxy (``sigv4-proxy`` with no subcommand) as a subprocess with those credentials in its
   environment, and drive it over stdio with the official `mcp` SDK client: initialize, list tools, call
   ``echo``, call ``progress``. Show each signed request as the endpoint saw it.
3. Launch it again with a deliberately wrong service name, and show the diagnosis the MCP client receives.

Then the DSQL part (:mod:`sigv4_proxy.demo_dsql`, run on a thread while the MCP part runs, rendered after it):
`emulate dsql`, a Java-style token refused with DSQL's error and our diagnosis, a `dsql-token` login, and a query
through `sigv4-proxy pg` with no password. Without the [pg] extra it is skipped with one line saying so.

The result is a :class:`DemoReport`; :func:`render` turns it into the text the CLI prints. Exit status 0 means
every step behaved as expected (including the wrong configuration being refused and explained), in both parts
(a skipped DSQL part leaves the MCP part's status).
"""

from __future__ import annotations

import os
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TextIO

from sigv4_proxy.emulate.credentials import credentials_environment
from sigv4_proxy.emulate.log import RequestRecord
from sigv4_proxy.signing.model import Credentials

if TYPE_CHECKING:  # pragma: no cover
    from sigv4_proxy.demo_dsql import DsqlDemoReport

ECHO_TEXT = "hello through sigv4-proxy"
WRONG_SERVICE = "lambda"
PROGRESS_STEPS = 3


@dataclass
class Step:
    """One thing the demo did, as the user should read it."""

    title: str
    ok: bool
    detail: str


@dataclass
class DemoReport:
    url: str = ""
    region: str = ""
    service: str = ""
    masked_key: str = ""
    command: str = ""
    steps: list[Step] = field(default_factory=list)
    requests: list[RequestRecord] = field(default_factory=list)
    wrong_command: str = ""
    wrong_requests: list[RequestRecord] = field(default_factory=list)
    diagnosis: str = ""
    diagnosis_ok: bool = False
    proxy_log: str = ""
    error: str = ""
    dsql: DsqlDemoReport | None = None  # the DSQL part (None: not run)

    @property
    def mcp_ok(self) -> bool:
        return (
            not self.error
            and bool(self.steps)
            and all(step.ok for step in self.steps)
            and bool(self.requests)
            and all(record.ok for record in self.requests)
            and self.diagnosis_ok
        )

    @property
    def ok(self) -> bool:
        dsql_ok = self.dsql is None or bool(self.dsql.skipped) or self.dsql.ok
        return self.mcp_ok and dsql_ok


def proxy_command(url: str, region: str, service: str) -> list[str]:
    """The proxy as the user would configure it (flags, credentials from the environment)."""
    return ["--target-url", url, "--region", region, "--service-name", service]


def proxy_environment(credentials: Credentials) -> dict[str, str]:
    """Only the demo's throwaway credentials: nothing from the user's AWS configuration leaks in or out."""
    return {
        **credentials_environment(credentials),
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
        "PYTHONUNBUFFERED": "1",
    }


def _leaves(error: BaseException) -> list[BaseException]:
    inner = getattr(error, "exceptions", None)
    if inner is None:
        return [error]
    return [leaf for child in inner for leaf in _leaves(child)]


def _error_text(error: BaseException) -> str:
    """The innermost meaningful message (the SDK wraps errors in exception groups)."""
    from mcp import MCPError

    leaves = _leaves(error)
    for leaf in leaves:
        if isinstance(leaf, MCPError):
            return str(leaf)
    return "; ".join(f"{type(leaf).__name__}: {leaf}" for leaf in leaves)


async def _drive_proxy(args: list[str], env: dict[str, str], errlog: TextIO, report: DemoReport) -> None:
    """The happy path: a real MCP session through the proxy."""
    from mcp import Client, StdioServerParameters
    from mcp.client.stdio import stdio_client

    params = StdioServerParameters(command=sys.executable, args=["-m", "sigv4_proxy", *args], env=env)
    async with Client(stdio_client(params, errlog=errlog), mode="legacy") as client:
        info = client.server_info
        name = info.name if info is not None else "?"
        report.steps.append(Step("initialize", True, f"server {name}, protocol {client.protocol_version}"))

        tools = [tool.name for tool in (await client.list_tools()).tools]
        has_tools = {"echo", "progress"} <= set(tools)
        shown = ", ".join(tools[:6]) + (", ..." if len(tools) > 6 else "")
        report.steps.append(Step("tools/list", has_tools, f"{len(tools)} tools: {shown}"))

        echoed = await client.call_tool("echo", {"message": ECHO_TEXT})
        text = getattr(echoed.content[0], "text", "") if echoed.content else ""
        report.steps.append(Step("tools/call echo", text == ECHO_TEXT and not echoed.is_error, repr(text)))

        notifications: list[str] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            notifications.append(message or f"{progress:g}/{total:g}")

        result = await client.call_tool(
            "progress", {"steps": PROGRESS_STEPS, "delay_seconds": 0.1}, progress_callback=on_progress
        )
        final = getattr(result.content[0], "text", "") if result.content else ""
        ok = len(notifications) == PROGRESS_STEPS and not result.is_error
        detail = f"{len(notifications)} progress notifications ({', '.join(notifications)}), then {final!r}"
        report.steps.append(Step("tools/call progress", ok, detail))


async def _wrong_service(args: list[str], env: dict[str, str], errlog: TextIO) -> str:
    """Connect with the wrong service name; returns the error the MCP client receives ('' if none)."""
    from mcp import Client, StdioServerParameters
    from mcp.client.stdio import stdio_client

    params = StdioServerParameters(command=sys.executable, args=["-m", "sigv4_proxy", *args], env=env)
    try:
        async with Client(stdio_client(params, errlog=errlog), mode="legacy") as client:
            await client.list_tools()
    except Exception as error:  # what we are here to show
        return _error_text(error)
    return ""


async def run_demo(timeout: float = 60.0, *, dsql: bool = True) -> DemoReport:
    """Run the MCP part's three steps against a fresh emulator, and the DSQL part (``dsql``) meanwhile on a
    thread (its PostgreSQL starts while the MCP part runs); never raises for a failing step (the report says)."""
    import anyio

    from sigv4_proxy.demo_dsql import run_dsql_demo

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="demo-dsql") as pool:
        dsql_part = pool.submit(run_dsql_demo, timeout) if dsql else None
        report = await _run_mcp_part(timeout)
        if dsql_part is not None:
            report.dsql = await anyio.to_thread.run_sync(dsql_part.result)
    return report


async def _run_mcp_part(timeout: float) -> DemoReport:
    import anyio

    from sigv4_proxy.emulate.server import start_mcp

    report = DemoReport()
    with tempfile.TemporaryFile("w+", encoding="utf-8") as errlog, start_mcp() as emulator:
        report.url, report.region, report.service = emulator.url, emulator.region, emulator.service
        report.masked_key = emulator.credentials.masked_access_key
        env = proxy_environment(emulator.credentials)
        args = proxy_command(emulator.url, emulator.region, emulator.service)
        report.command = "sigv4-proxy " + " ".join(args)
        try:
            with anyio.fail_after(timeout):
                await _drive_proxy(args, env, errlog, report)
        except TimeoutError:
            report.error = f"the MCP session through the proxy did not finish within {timeout:g}s"
        except Exception as error:
            report.error = f"the MCP session through the proxy failed: {_error_text(error)}"
        report.requests = emulator.requests

        wrong_args = proxy_command(emulator.url, emulator.region, WRONG_SERVICE)
        report.wrong_command = "sigv4-proxy " + " ".join(wrong_args)
        seen = len(emulator.requests)
        try:
            with anyio.fail_after(timeout):
                report.diagnosis = await _wrong_service(wrong_args, env, errlog)
        except TimeoutError:
            report.diagnosis = ""
        # the first proxy's closing DELETE may land late: sort requests by the service they were signed for
        late = emulator.requests[seen:]
        wrong_scope = f"/{WRONG_SERVICE}/aws4_request"
        report.wrong_requests = [record for record in late if record.scope.endswith(wrong_scope)]
        report.requests += [record for record in late if not record.scope.endswith(wrong_scope)]
        refused = [record for record in report.wrong_requests if record.reason == "scope_service"]
        report.diagnosis_ok = bool(refused) and "InvalidSignatureException" in report.diagnosis
        errlog.seek(0)
        report.proxy_log = errlog.read()
    return report


# -- rendering ----------------------------------------------------------------------------------------------


def _rpc_label(record: RequestRecord) -> str:
    if record.rpc:
        return record.rpc
    return "(a response to the server)" if record.method == "POST" and record.ok else ""


def _table(records: list[RequestRecord]) -> list[str]:
    rows = [(r.method, r.path, _rpc_label(r), r.scope, r.outcome) for r in records]
    widths = [max(len(row[column]) for row in rows) for column in range(4)] if rows else []
    return ["    " + "  ".join(row[i].ljust(widths[i]) for i in range(4)) + "  " + row[4] for row in rows]


def render(report: DemoReport, *, verbose: bool = False) -> str:
    lines = [
        "sigv4-proxy demo: an MCP client -> sigv4-proxy -> an IAM-protected MCP endpoint, all on this machine",
        "",
        f"1. Started a local endpoint that verifies SigV4 the way AWS does: {report.url}",
        f"   region {report.region}, service {report.service}, throwaway credentials {report.masked_key}",
        "",
        "2. The official MCP SDK client launched the proxy over stdio, credentials in its environment:",
        f"     {report.command}",
    ]
    width = max((len(step.title) for step in report.steps), default=0)
    for step in report.steps:
        lines.append(f"   {'ok  ' if step.ok else 'FAIL'} {step.title.ljust(width)}  {step.detail}")
    if report.error:
        lines.append(f"   FAIL {report.error}")
    lines.append("   Every HTTP request the proxy signed, as the endpoint verified it:")
    lines.extend(_table(report.requests) or ["    (none)"])
    lines += [
        "",
        f"3. A deliberate mistake: the service name {WRONG_SERVICE!r} instead of {report.service!r}:",
        f"     {report.wrong_command}",
    ]
    lines.extend(_table(report.wrong_requests) or ["    (the endpoint saw no request)"])
    if report.diagnosis:
        lines.append("   The MCP client received this error, with the cause and the fix:")
        lines.extend(f"     {line}" for line in report.diagnosis.splitlines())
    else:
        lines.append("   FAIL the MCP client received no error (the wrong configuration went unnoticed)")
    if verbose and report.proxy_log:
        lines += ["", "The proxy's own log (stderr):"]
        lines.extend(f"  {line}" for line in report.proxy_log.rstrip().splitlines())
    lines.append("")
    if report.dsql is not None:
        from sigv4_proxy.demo_dsql import render_dsql

        lines += [*render_dsql(report.dsql), ""]
    if report.ok:
        from sigv4_proxy.demo_dsql import next_steps

        lines.append("Everything worked. Point the proxy at your own endpoint next:")
        lines.append("  sigv4-proxy --target-url https://<api-id>.execute-api.<region>.amazonaws.com/<stage>/mcp")
        lines += next_steps(report.dsql)
    else:
        lines.append("Something did not work as expected (see FAIL above); run with --verbose for the proxy's log.")
    return "\n".join(lines)
