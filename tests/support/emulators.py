"""One running ``emulate mcp`` per configuration for the whole test session, put back as new between tests.

Starting an emulator costs a thread, a uvicorn server and the MCP SDK's session manager; most tests only need
*an* emulator in a known state. :class:`EmulatorPool` starts one per distinct set of :func:`start_mcp` options
on first use and keeps it until the session ends; :func:`reset` returns one to the state ``start_mcp`` left it
in, so a test never sees another test's requests, executions, faults, credentials, clock or SigV4a policy.
:func:`unconsumed_faults` lets the fixture fail a test whose injected faults were never hit (a fault left
behind would otherwise fire in whichever test comes next).

The fixtures that use this live in tests/conftest.py (``emulator``, ``emulator_options``, ``emulator_variant``).
Tests that need what the pool cannot share (their own ``credentials_resolver`` at start-up, ``on_record``, an
``upstream`` server of their own) still call ``start_mcp`` themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the emulator imports uvicorn and the MCP SDK: only when a test asks for one
    from sigv4_proxy.emulate import McpEmulator
    from sigv4_proxy.emulate.faults import FaultRule
    from sigv4_proxy.signing.model import Credentials


#: The ``emulator_variant`` fixture: ``emulator_variant(**start_mcp_options)`` -> the shared emulator, reset.
EmulatorVariant = Callable[..., "McpEmulator"]


@dataclass(frozen=True)
class _Baseline:
    """What a test may change on a shared emulator, as it was right after start-up."""

    credentials: tuple[Credentials, ...]


class EmulatorPool:
    """Running emulators keyed by their :func:`start_mcp` keyword arguments (which must be hashable)."""

    def __init__(self) -> None:
        self._running: dict[frozenset[tuple[str, Hashable]], tuple[McpEmulator, _Baseline]] = {}

    def get(self, **options: Hashable) -> McpEmulator:
        """The emulator started with ``options`` (started now if it is the first request for them)."""
        key = frozenset(options.items())
        if key not in self._running:
            from sigv4_proxy.emulate import start_mcp

            running = start_mcp(**options)  # type: ignore[arg-type]  # the caller's options are start_mcp's
            self._running[key] = (running, _Baseline(tuple(running.state.credentials.all())))
        return self._running[key][0]

    def reset(self, emulator: McpEmulator) -> None:
        """Back to the state ``start_mcp`` left ``emulator`` in (see :func:`reset`)."""
        for running, baseline in self._running.values():
            if running is emulator:
                reset(running, baseline.credentials)
                return
        raise ValueError("this emulator does not belong to the pool")

    def close(self) -> None:
        for running, _ in self._running.values():
            running.close()
        self._running.clear()


def reset(emulator: McpEmulator, credentials: tuple[Credentials, ...]) -> None:
    """Forget every request, execution and fault; accept exactly ``credentials`` (expiries undone); put the clock,
    the credentials resolver and the SigV4a policy back to the emulator's configuration.

    MCP sessions are kept: they belong to clients that have gone, and no test reads them."""
    emulator.clear_faults()
    emulator.log.clear()
    emulator.executions.clear()
    emulator.accept_only(*credentials)
    emulator.set_credentials_resolver(emulator.config.credentials_resolver)
    emulator.clock_offset = 0
    emulator.sigv4a = emulator.config.sigv4a


def unconsumed_faults(emulator: McpEmulator) -> list[FaultRule]:
    """Injected faults that still have uses left."""
    return emulator.state.faults.pending()
