"""Fixtures for the MCP proxy tests (helpers live in :mod:`tests.mcp_proxy.harness`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="module")
def emulator() -> Iterator[Any]:
    """The default emulator: stateful Streamable HTTP with SSE responses, us-east-1 / execute-api."""
    from sigv4_proxy.emulate.server import start_mcp

    with start_mcp() as running:
        yield running
