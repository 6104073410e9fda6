"""The MCP routing headers a Streamable HTTP POST carries, derived from the message itself (sans-IO).

Over stdio a message has no headers; over HTTP the MCP specification wants some of its content mirrored
into headers so that intermediaries can route without reading bodies:

* every era: ``Mcp-Session-Id`` (from the ``initialize`` response) and ``MCP-Protocol-Version`` (the
  version ``initialize`` negotiated);
* the 2026-07-28 per-request envelope (a request whose ``params._meta`` names its protocol version):
  ``MCP-Protocol-Version`` from that envelope, ``Mcp-Method``, ``Mcp-Name`` for ``tools/call`` /
  ``prompts/get`` / ``resources/read``, and ``Mcp-Param-<token>`` for tool arguments whose input schema
  property carries an ``x-mcp-header`` annotation (learnt from ``tools/list`` results as they pass).

Header values that would not survive HTTP (non-ASCII, control characters, edge whitespace) use the
specification's ``=?base64?...?=`` form. Standard library only.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from typing import Any

from sigv4_proxy.mcp.jsonrpc import Envelope

__all__ = ["ToolHeaderMaps", "encode_header_value", "routing_headers"]

MCP_SESSION_ID = "Mcp-Session-Id"
MCP_PROTOCOL_VERSION = "MCP-Protocol-Version"
MCP_METHOD = "Mcp-Method"
MCP_NAME = "Mcp-Name"
MCP_PARAM_PREFIX = "Mcp-Param-"
LAST_EVENT_ID = "Last-Event-ID"

_HEADER_SAFE = re.compile(r"^[\x20-\x7E]*$")
_B64_SENTINEL = re.compile(r"^=\?base64\?.*\?=$")
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_PRIMITIVE_TYPES = {"string", "integer", "boolean"}


def encode_header_value(value: str) -> str:
    """``value`` as is when it is safe printable ASCII, else ``=?base64?<utf-8 base64>?=``."""
    if _HEADER_SAFE.match(value) and value == value.strip() and not _B64_SENTINEL.match(value):
        return value
    return f"=?base64?{base64.b64encode(value.encode('utf-8')).decode('ascii')}?="


class ToolHeaderMaps:
    """Tool name -> {argument path: header token}, learnt from ``tools/list`` results."""

    def __init__(self) -> None:
        self._maps: dict[str, dict[tuple[str, ...], str]] = {}

    def learn(self, tools_list_result: Any) -> None:
        """Record the ``x-mcp-header`` annotations of every tool in a ``tools/list`` result."""
        if not isinstance(tools_list_result, Mapping):
            return
        tools = tools_list_result.get("tools")
        if not isinstance(tools, list):
            return
        for tool in tools:
            if isinstance(tool, Mapping) and isinstance(tool.get("name"), str):
                header_map = _annotations(tool.get("inputSchema"))
                if header_map:
                    self._maps[tool["name"]] = header_map
                else:
                    self._maps.pop(tool["name"], None)

    def headers_for(self, tool: str, arguments: Any) -> dict[str, str]:
        header_map = self._maps.get(tool)
        if not header_map or not isinstance(arguments, Mapping):
            return {}
        headers: dict[str, str] = {}
        for path, token in header_map.items():
            rendered = _render(_value_at(arguments, path))
            if rendered is not None:
                headers[f"{MCP_PARAM_PREFIX}{token}"] = encode_header_value(rendered)
        return headers

    def __bool__(self) -> bool:
        return bool(self._maps)


def _annotations(schema: Any) -> dict[tuple[str, ...], str]:
    """Valid ``x-mcp-header`` annotations reachable from the root through ``properties`` only."""
    found: dict[tuple[str, ...], str] = {}
    stack: list[tuple[tuple[str, ...], Any]] = [((), schema)]
    seen_tokens: set[str] = set()
    while stack:
        path, node = stack.pop()
        if not isinstance(node, Mapping):
            continue
        token = node.get("x-mcp-header")
        if path and isinstance(token, str) and _TOKEN.match(token) and node.get("type") in _PRIMITIVE_TYPES:
            if token.lower() in seen_tokens:
                return {}  # duplicate tokens make the schema invalid: conforming clients send none
            seen_tokens.add(token.lower())
            found[path] = token
        properties = node.get("properties")
        if isinstance(properties, Mapping):
            stack.extend(((*path, name), sub) for name, sub in properties.items())
    return found


def _value_at(arguments: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = arguments
    for key in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


def _render(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        try:
            return str(value)
        except ValueError:
            return None
    return None


def routing_headers(
    message: Envelope,
    *,
    session_id: str | None,
    negotiated_version: str | None,
    tool_headers: ToolHeaderMaps | None = None,
) -> dict[str, str]:
    """The MCP headers for POSTing ``message`` (besides Accept / Content-Type and signing)."""
    headers: dict[str, str] = {}
    is_initialize = message.kind == "request" and message.method == "initialize"
    if session_id and not is_initialize:
        headers[MCP_SESSION_ID] = session_id
    if message.protocol_version is not None:
        # The 2026 per-request envelope: the message names its own version and routing headers mirror it.
        headers[MCP_PROTOCOL_VERSION] = message.protocol_version
        if message.method is not None:
            headers[MCP_METHOD] = message.method
        if message.name is not None:
            headers[MCP_NAME] = encode_header_value(message.name)
        if message.method == "tools/call" and message.name is not None and tool_headers:
            headers.update(tool_headers.headers_for(message.name, message.arguments()))
    elif negotiated_version and not is_initialize:
        headers[MCP_PROTOCOL_VERSION] = negotiated_version
    return headers
