from __future__ import annotations

from collections.abc import Iterator

import pytest

from sigv4_proxy.emulate import McpEmulator, start_mcp


@pytest.fixture
def emulator() -> Iterator[McpEmulator]:
    """The default emulator: built-in server, stateful Streamable HTTP, SSE responses, random credentials."""
    with start_mcp() as running:
        yield running
