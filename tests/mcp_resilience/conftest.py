"""Fixtures for the resilience tests (helpers live in :mod:`tests.mcp_resilience.helpers`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="module")
def emulator() -> Iterator[Any]:
    """Stateful Streamable HTTP with SSE responses; execution counts, faults and clock are reset per test."""
    from sigv4_proxy.emulate.server import start_mcp

    with start_mcp() as running:
        yield running


@pytest.fixture(autouse=True)
def _clean_emulator(request: pytest.FixtureRequest) -> Iterator[None]:
    if "emulator" in request.fixturenames:
        request.getfixturevalue("emulator").executions.clear()  # ids repeat from one client to the next
    yield
    if "emulator" in request.fixturenames:
        running = request.getfixturevalue("emulator")
        assert running.state.faults.pending() == [], "a test left faults unconsumed"
        running.clear_faults()
        running.clock_offset = 0
