"""The emulator's request log: one record per HTTP request, safe to print (thread-safe).

A record carries the method, path, the masked credential scope (``AKIA****MPLE/20250101/us-east-1/
execute-api/aws4_request``), the verdict (``ok`` or the AWS error type), the verifier's short reason and
the JSON-RPC summary. Never a signature, a secret, a session token or a query string (presigned URLs carry
signatures there).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sigv4_proxy.redact import mask_access_key


def masked_scope(
    access_key_id: str | None, amz_date: str | None, region: str | list[str] | None, service: str | None
) -> str:
    """The credential scope with the access key masked; SigV4a scopes have no region (a region set)."""
    if not access_key_id:
        return "-"
    date = (amz_date or "")[:8] or "?"
    parts = [mask_access_key(access_key_id), date]
    if isinstance(region, str):
        parts.append(region)
    parts.extend([service or "?", "aws4_request"])
    return "/".join(parts)


@dataclass(frozen=True)
class RequestRecord:
    """One HTTP request as the emulator saw and judged it."""

    time: datetime
    method: str
    path: str
    scope: str
    status: int
    verdict: str
    reason: str
    rpc: str = ""
    fault: str = ""
    algorithm: str = ""

    @property
    def ok(self) -> bool:
        return self.verdict == "ok"

    @property
    def outcome(self) -> str:
        """``signature ok, 200``, ``signature ok, connection dropped``, ``403 InvalidSignatureException``."""
        if not self.ok:
            return f"{self.status} {self.verdict}"
        return "signature ok, " + (str(self.status) if self.status else "connection dropped")

    def line(self) -> str:
        """``POST /mcp  tools/call echo  AKIA****MPLE/20250101/us-east-1/execute-api/aws4_request  -> signature
        ok, 200`` (a refusal ends with ``-> 403 InvalidSignatureException (signature)``)."""
        outcome = self.outcome if self.ok else f"{self.outcome} ({self.reason})"
        text = f"{self.method} {self.path}"
        if self.rpc:
            text += f"  {self.rpc}"
        text += f"  {self.scope}  -> {outcome}"
        if self.fault:
            text += f"  [fault: {self.fault}]"
        return text


class RequestLog:
    """Records in arrival order, with a way to wait for them (no blind sleeps in tests)."""

    def __init__(self, on_record: Callable[[RequestRecord], None] | None = None) -> None:
        self._condition = threading.Condition()
        self._records: list[RequestRecord] = []
        self._on_record = on_record

    def add(self, record: RequestRecord) -> None:
        with self._condition:
            self._records.append(record)
            self._condition.notify_all()
        if self._on_record is not None:
            self._on_record(record)

    def records(self) -> list[RequestRecord]:
        with self._condition:
            return list(self._records)

    def clear(self) -> None:
        with self._condition:
            self._records.clear()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[RequestRecord]:
        """Block until at least ``count`` records exist; raises TimeoutError with what was seen otherwise."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while len(self._records) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = "\n".join(record.line() for record in self._records) or "(none)"
                    raise TimeoutError(f"expected {count} requests within {timeout:g}s, saw:\n{seen}")
                self._condition.wait(remaining)
            return list(self._records)
