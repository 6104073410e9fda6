"""Fixtures shared by every test.

* Isolation: no real AWS configuration, credentials or metadata service. Tests that need credentials set them
  explicitly (environment variables or files under tmp_path), so a developer's own ~/.aws never changes a
  result, and nothing ever reaches for IMDS or the internet.
* ``emulator`` (with ``emulator_options`` and ``emulator_variant``): the one emulator fixture. Emulators are
  shared for the session, one per configuration, and reset before and after each test; a test that leaves an
  injected fault unconsumed fails.
* ``closed_port``: a loopback port that refuses connections.

Tests marked ``slow`` (a minute or more of wall time) are deselected by default (pyproject's ``addopts``);
``pytest -m slow`` runs them.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Iterator
from typing import TYPE_CHECKING

import pytest

from tests.support import ports
from tests.support.emulators import EmulatorPool, EmulatorVariant, unconsumed_faults

if TYPE_CHECKING:
    from sigv4_proxy.emulate import McpEmulator


@pytest.fixture(autouse=True)
def isolated_aws_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    empty = tmp_path_factory.getbasetemp() / "no-aws-config"
    for name in list(os.environ):
        if name.startswith("AWS_") or name.startswith("MCP_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("BOTO_DISABLE_CRT", "true")
    yield


# -- the emulator: one per configuration for the whole session, reset around every test (tests/support/emulators.py)


@pytest.fixture(scope="session")
def emulator_pool() -> Iterator[EmulatorPool]:
    pool = EmulatorPool()
    yield pool
    pool.close()


@pytest.fixture
def emulator_options() -> dict[str, Hashable]:
    """The ``start_mcp`` options of the ``emulator`` fixture: the default emulator (stateful Streamable HTTP, SSE
    responses, us-east-1 / execute-api, random credentials). A folder overrides this fixture (or a test
    parametrizes it) for another variant: ``{"stateless": True}``, ``{"transport": "sse"}``, ..."""
    return {}


@pytest.fixture
def emulator_variant(emulator_pool: EmulatorPool) -> Iterator[EmulatorVariant]:
    """``emulator_variant(**start_mcp_options)``: the shared emulator for those options, reset for this test.

    After the test, every emulator it used must have no injected fault left: a fault nobody hit means the test
    did not exercise what it meant to (and would fire in the next test). Each is then reset again."""
    used: list[McpEmulator] = []

    def variant(**options: Hashable) -> McpEmulator:
        running = emulator_pool.get(**options)
        if running not in used:
            emulator_pool.reset(running)
            used.append(running)
        return running

    yield variant
    left = {running.url: [rule.action.label for rule in unconsumed_faults(running)] for running in used}
    for running in used:
        emulator_pool.reset(running)
    assert not any(left.values()), f"the test left injected faults unconsumed: {left}"


@pytest.fixture
def emulator(emulator_variant: EmulatorVariant, emulator_options: dict[str, Hashable]) -> McpEmulator:
    """The shared emulator of ``emulator_options``, as new: no requests, executions or faults; its own
    credentials only; clock and SigV4a policy as configured."""
    return emulator_variant(**emulator_options)


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port that refuses connections, held for the test (tests/support/ports.py)."""
    with ports.closed_port() as port:
        yield port
