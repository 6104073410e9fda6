"""The built-in MCP server behind `emulate mcp`, made with the official `mcp` SDK.

It exists to exercise every kind of message a signing proxy has to carry: plain results (`echo`, `add`),
progress notifications (`progress`), server-to-client requests (`elicit`, `sample`, `roots`), logging
notifications (`log`), list-changed notifications (`touch_tools`), tool errors (`fail`), and large results
(`large`). Every `tools/call` that reaches a tool is counted per JSON-RPC request id in an
:class:`ExecutionCounter`, so tests can prove that nothing was executed twice.

This module imports the `mcp` SDK at import time; only `emulate` and `demo` load it, never the proxy.
"""

from __future__ import annotations

import warnings
from typing import Any, Literal

import anyio
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import MCPDeprecationWarning
from pydantic import BaseModel, Field

from sigv4_proxy.emulate.state import ExecutionCounter

SERVER_NAME = "sigv4-proxy-emulator"
INFO_RESOURCE_URI = "emulator://info"
#: Largest result `large` produces (a benchmark needs 50 MB; this leaves room).
MAX_LARGE_RESULT = 256 * 1024 * 1024
LogLevel = Literal["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"]


class _Person(BaseModel):
    name: str = Field(description="Your name")


def _tool_name(params: Any) -> str:
    if isinstance(params, dict):
        return str(params.get("name", "?"))
    return "?"


def build_mcp_server(executions: ExecutionCounter, *, region: str, service: str) -> MCPServer:
    """A fresh server instance (a "restart" of the emulator builds a new one, forgetting all sessions)."""

    async def count_tool_calls(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method == "tools/call" and ctx.request_id is not None:
            executions.record(ctx.request_id, _tool_name(ctx.params))
        return await call_next(ctx)

    server: MCPServer = MCPServer(
        SERVER_NAME,
        instructions="A local IAM-protected MCP endpoint for testing SigV4 signers (sigv4-proxy emulate mcp).",
        version="1",
        middleware=[count_tool_calls],
        log_level="WARNING",
    )

    @server.tool()
    def echo(message: str) -> str:
        """Return the message unchanged."""
        return message

    @server.tool()
    def add(a: float, b: float) -> float:
        """Add two numbers."""
        return a + b

    @server.tool()
    async def progress(ctx: Context, steps: int = 3, delay_seconds: float = 0.05) -> str:
        """Work for `steps` × `delay_seconds`, sending a progress notification after each step."""
        for step in range(1, steps + 1):
            await anyio.sleep(delay_seconds)
            await ctx.report_progress(step, steps, f"step {step} of {steps}")
        return f"done after {steps} steps"

    @server.tool()
    async def sleep(seconds: float) -> str:
        """Wait `seconds` before answering (a slow server, for timeout tests)."""
        await anyio.sleep(seconds)
        return f"slept {seconds:g}s"

    @server.tool()
    async def elicit(ctx: Context) -> str:
        """Ask the client for a name (elicitation/create) and greet it."""
        answer = await ctx.elicit("What is your name?", _Person)
        if answer.action == "accept":
            return f"Hello, {answer.data.name}!"
        return f"elicitation {answer.action}"

    @server.tool()
    async def sample(ctx: Context, prompt: str = "Say hello") -> str:
        """Ask the client's model for a completion (sampling/createMessage) and return its text."""
        from mcp_types import SamplingMessage, TextContent

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MCPDeprecationWarning)
            result = await ctx.session.create_message(
                [SamplingMessage(role="user", content=TextContent(type="text", text=prompt))],
                max_tokens=100,
                related_request_id=ctx.request_context.request_id,
            )
        content = result.content
        return getattr(content, "text", str(content))

    @server.tool()
    async def roots(ctx: Context) -> list[str]:
        """Ask the client for its roots (roots/list) and return their URIs."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MCPDeprecationWarning)
            result = await ctx.session.list_roots()
        return [str(root.uri) for root in result.roots]

    @server.tool()
    async def log(ctx: Context, message: str = "hello", count: int = 3, level: LogLevel = "info") -> str:
        """Send `count` logging notifications (notifications/message) before answering."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MCPDeprecationWarning)
            for index in range(1, count + 1):
                await ctx.log(level, f"{message} {index}/{count}", logger_name=SERVER_NAME)
        return f"sent {count} log messages"

    @server.tool()
    async def touch_tools(ctx: Context) -> str:
        """Send notifications/tools/list_changed (the tool list itself stays the same)."""
        await ctx.session.send_tool_list_changed()
        return "sent notifications/tools/list_changed"

    # Unstructured: the text travels once, so a 50 MiB result is a 50 MiB message (structured output would
    # repeat it in structuredContent and double the message).
    @server.tool(structured_output=False)
    def large(size_bytes: int) -> str:
        """Return a text result of exactly `size_bytes` ASCII bytes (benchmarks ask for 50 MB)."""
        if not 0 <= size_bytes <= MAX_LARGE_RESULT:
            raise ToolError(f"size_bytes must be between 0 and {MAX_LARGE_RESULT}")
        pattern = b"0123456789abcdef" * 4096
        repeats, rest = divmod(size_bytes, len(pattern))
        return (pattern * repeats + pattern[:rest]).decode("ascii")

    @server.tool()
    def fail(message: str = "this tool always fails") -> str:
        """Fail on purpose: the client gets a tool result with isError set and this message."""
        raise ToolError(message)

    @server.resource(INFO_RESOURCE_URI, name="info", mime_type="text/plain")
    def info() -> str:
        """What this endpoint is and how it verifies requests."""
        return (
            f"sigv4-proxy emulator: every request must be signed with SigV4 for region {region} "
            f"and service {service}.\n"
        )

    @server.resource("echo://{text}", name="echo", mime_type="text/plain")
    def echo_resource(text: str) -> str:
        """A templated resource that returns its parameter."""
        return text

    @server.prompt()
    def greet(name: str) -> str:
        """A prompt that asks the model to greet someone."""
        return f"Please greet {name} warmly."

    return server
