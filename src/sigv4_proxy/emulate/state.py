"""The emulator's mutable state, shared by the ASGI front (server thread) and its handle (test thread).

Everything here is plain data behind locks: the accepted credentials, the fault plan, the request log, the
tool-execution counter and the clock offset. The front reads the clock only through :meth:`EmulatorState.now`,
so a skewed emulator clock (``clock_offset``) shows up consistently in verification and in the ``Date`` header.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Literal, get_args

from sigv4_proxy.emulate.credentials import AcceptedCredentials
from sigv4_proxy.emulate.faults import FaultPlan
from sigv4_proxy.emulate.log import RequestLog

DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024 + 64 * 1024  # the proxy's default --max-message-bytes, plus slack
#: Which signature algorithms the emulator takes (``--sigv4a``): ``accept`` SigV4 and SigV4a, ``require`` SigV4a
#: only, ``reject`` SigV4 only (as a service that does not support SigV4a).
Sigv4aPolicy = Literal["accept", "require", "reject"]
SIGV4A_POLICIES: tuple[Sigv4aPolicy, ...] = get_args(Sigv4aPolicy)


class ExecutionCounter:
    """How many times each ``tools/call`` reached a tool, per JSON-RPC request id (thread-safe).

    Ids are recorded as received (``1`` and ``"1"`` are different ids). A tool that was started counts,
    whether or not its result ever reached the client: that is what "executed" means to the server. Only
    the built-in server counts; with ``--upstream`` the counter stays empty.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_id: Counter[str | int] = Counter()
        self._by_tool: Counter[str] = Counter()

    def record(self, request_id: str | int, tool: str) -> None:
        with self._lock:
            self._by_id[request_id] += 1
            self._by_tool[tool] += 1

    def count(self, request_id: str | int) -> int:
        with self._lock:
            return self._by_id[request_id]

    def by_id(self) -> dict[str | int, int]:
        with self._lock:
            return dict(self._by_id)

    def by_tool(self) -> dict[str, int]:
        with self._lock:
            return dict(self._by_tool)

    def total(self) -> int:
        with self._lock:
            return sum(self._by_id.values())

    def duplicates(self) -> dict[str | int, int]:
        """Request ids that were executed more than once, with their counts (empty: nothing ran twice)."""
        with self._lock:
            return {request_id: n for request_id, n in self._by_id.items() if n > 1}

    def clear(self) -> None:
        with self._lock:
            self._by_id.clear()
            self._by_tool.clear()


@dataclass
class EmulatorState:
    """What the verifying front needs to judge and answer a request."""

    region: str
    service: str
    credentials: AcceptedCredentials
    faults: FaultPlan = field(default_factory=FaultPlan)
    log: RequestLog = field(default_factory=RequestLog)
    executions: ExecutionCounter = field(default_factory=ExecutionCounter)
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_skew_seconds: int = 300
    clock_offset_seconds: float = 0.0
    sigv4a: Sigv4aPolicy = "accept"

    def now(self) -> datetime:
        """The emulator's clock: real UTC time shifted by ``clock_offset_seconds``."""
        return datetime.now(timezone.utc) + timedelta(seconds=self.clock_offset_seconds)
