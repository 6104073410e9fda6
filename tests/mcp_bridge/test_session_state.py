"""`SessionState`'s transitions and invariants, as plain data (no I/O): what each event changes, which events
are illegal in which state, and the initialize gate."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from sigv4_proxy.mcp import jsonrpc
from sigv4_proxy.mcp.session import SessionState, SessionStateError

from .harness import initialize


def envelope(message: Any) -> jsonrpc.Envelope:
    return jsonrpc.peek(json.dumps(message).encode())


def started() -> SessionState:
    state = SessionState()
    state.initialize_started(envelope(initialize(1)))
    return state


def test_a_new_state_has_no_session_and_an_open_gate() -> None:
    state = SessionState()
    assert (state.session_id, state.protocol_version, state.epoch) == (None, None, 0)
    assert not state.initializing and not state.needs_initialize and not state.modern
    assert state.describe() == "no session"


def test_the_client_initialize_runs_through_its_events() -> None:
    state = started()
    assert state.initializing and state.initialize_message is not None
    state.assigned("s1")
    state.learned_version("2025-06-18")
    state.established()
    state.initialize_finished()
    assert (state.session_id, state.protocol_version, state.epoch) == ("s1", "2025-06-18", 1)
    assert not state.initializing
    assert state.describe() == "session s1, protocol 2025-06-18"


def test_fields_are_read_only() -> None:
    state = SessionState()
    with pytest.raises(AttributeError):
        state.session_id = "forged"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        state.epoch = 7  # type: ignore[misc]


@pytest.mark.parametrize(
    "transition",
    [
        lambda s: s.assigned("s1"),
        lambda s: s.learned_version("2025-06-18"),
        lambda s: s.established(),
        lambda s: s.warm_failed(),
        lambda s: s.initialize_finished(),
    ],
    ids=["assigned", "learned_version", "established", "warm_failed", "initialize_finished"],
)
def test_initialize_events_are_illegal_outside_an_initialize(transition: Any) -> None:
    state = SessionState()
    with pytest.raises(SessionStateError, match="while no initialize is in flight"):
        transition(state)
    assert (state.session_id, state.epoch, state.needs_initialize) == (None, 0, False)


def test_reinitialize_needs_an_initialize_to_repeat() -> None:
    with pytest.raises(SessionStateError, match="before the client sent any initialize"):
        SessionState().reinitialize_started()


def test_only_an_initialize_request_starts_an_initialize() -> None:
    with pytest.raises(SessionStateError):
        SessionState().initialize_started(envelope({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))


def test_a_new_initialize_forgets_the_old_session_and_a_reinitialize_keeps_the_version() -> None:
    state = started()
    state.assigned("s1")
    state.learned_version("2025-06-18")
    state.established()
    state.initialize_finished()
    state.reinitialize_started()
    assert state.session_id is None and state.protocol_version == "2025-06-18"  # the client negotiated it
    state.assigned("s2")
    state.established()
    state.initialize_finished()
    assert (state.session_id, state.epoch) == ("s2", 2)
    state.initialize_started(envelope(initialize(2)))
    assert state.session_id is None and state.protocol_version is None


def test_warm_failure_is_owed_a_reinitialize_until_one_establishes() -> None:
    state = started()
    state.warm_failed()
    state.initialize_finished()
    assert state.needs_initialize and state.epoch == 0
    state.reinitialize_started()
    state.established()
    state.initialize_finished()
    assert not state.needs_initialize and state.epoch == 1


def test_the_gate_opens_when_the_last_initialize_ends() -> None:
    state = started()
    state.reinitialize_started()
    state.initialize_finished()
    assert state.initializing  # one is still in flight
    state.initialize_finished()
    assert not state.initializing
    with pytest.raises(SessionStateError):
        state.initialize_finished()  # never below zero


async def test_wait_ready_waits_for_the_gate() -> None:
    state = started()
    waiter = asyncio.create_task(state.wait_ready())
    await asyncio.sleep(0)
    assert not waiter.done()
    state.initialize_finished()
    await asyncio.wait_for(waiter, 1)


def test_client_messages_set_the_wire_era_and_keep_initialized() -> None:
    state = SessionState()
    modern = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28"}}}  # fmt: skip
    state.client_message(envelope(modern))
    assert state.modern
    state.client_message(envelope({"jsonrpc": "2.0", "method": "notifications/initialized"}))
    assert state.modern  # a notification never ends the modern era
    assert state.initialized_notification == b'{"jsonrpc": "2.0", "method": "notifications/initialized"}'
    state.client_message(envelope({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}))
    assert not state.modern
