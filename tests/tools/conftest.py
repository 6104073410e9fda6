"""Fixtures for the tool tests: an IAM-verifying MCP emulator on loopback and the env that reaches it."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from sigv4_proxy.emulate import McpEmulator, start_mcp


@pytest.fixture(scope="module")
def emulator() -> Iterator[McpEmulator]:
    with start_mcp(stateless=True) as emu:
        yield emu


@pytest.fixture
def emu(emulator: McpEmulator) -> Iterator[McpEmulator]:
    """The shared emulator, with faults, clock and credentials reset after each test."""
    original = emulator.credentials
    yield emulator
    emulator.clear_faults()
    emulator.clock_offset = 0
    emulator.accept_only(original)


def child_env(extra: dict[str, str]) -> dict[str, str]:
    """The (isolated) test environment plus `extra`, for a subprocess."""
    return {**os.environ, **extra}
