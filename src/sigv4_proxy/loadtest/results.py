"""What a DSQL load test found: the numbers behind the summary table, the HTML report and the JSON report.
Plain data, no I/O; no secret anywhere in it (targets are described by host and user, tokens never kept)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# Locust request names: one "connect" per physical connection, one "transaction" per iteration (its rows are the
# request's response_length, so Locust's content-length total is the rows the users committed).
OP_CONNECT = "connect"
OP_TRANSACTION = "transaction"
REQUEST_TYPE = "dsql"


@dataclass(frozen=True)
class OperationLatency:
    """One operation's latency, in milliseconds, from Locust's merged statistics."""

    name: str  # OP_CONNECT or OP_TRANSACTION
    count: int  # successes and failures
    failures: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    # (response time in ms as Locust buckets it, how many): the latency histogram's data
    histogram: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class TimePoint:
    """One sample of the run, taken every second while it runs."""

    elapsed_s: float
    rows_per_s: float  # over the last second
    transactions_per_s: float
    p50_ms: float | None  # of the transactions that ended in the last second (None: none ended)
    p99_ms: float | None
    users: int
    errors: int  # total so far
    occ_retries: int  # total so far


@dataclass(frozen=True)
class ErrorCount:
    sqlstate: str  # "08006", "40001", ...; "-----" for a failure without one (a dropped connection, a timeout)
    count: int
    operation: str  # OP_CONNECT or OP_TRANSACTION
    example: str  # one message, as the server (or the driver) said it


@dataclass(frozen=True)
class AuthFailure:
    """A login the cluster refused, with what the `inspect` checks say about the token that was sent."""

    sqlstate: str
    message: str  # the server's message (and hint), no token
    count: int
    diagnosis: tuple[str, ...]  # one line per finding (pgproxy.tokens.diagnose)


@dataclass(frozen=True)
class LoadtestResult:
    scenario: str
    users: int
    iterations: int | None
    rows_per_transaction: int
    target: str  # DsqlTarget.describe(), or "emulate dsql (<host>)"
    table: str
    run_id: str
    started_at: str  # ISO 8601, UTC
    duration_s: float  # from the first user started to the last one finished
    workers: int  # 0 for a local run
    rows_expected: int | None  # users x iterations x rows per transaction; None for a --duration run
    rows_committed: int  # what the users committed, by their own count
    rows_counted: int | None  # counted back in the database (None: the count itself failed; see problems)
    transactions: int  # attempted (one per iteration that got a connection)
    transactions_failed: int
    rows_per_s: float
    transactions_per_s: float
    operations: tuple[OperationLatency, ...]
    errors: tuple[ErrorCount, ...]
    occ_retries: int  # conflicts retried by run_transaction
    occ_gave_up: int  # transactions that still conflicted after the retries
    auth_failures: tuple[AuthFailure, ...]
    timeline: tuple[TimePoint, ...]
    problems: tuple[str, ...] = field(default=())  # why the run failed, one line each; empty: it passed

    @property
    def ok(self) -> bool:
        return not self.problems

    def operation(self, name: str) -> OperationLatency | None:
        return next((op for op in self.operations if op.name == name), None)

    def to_json(self) -> dict[str, Any]:
        """The result as JSON-ready data (``--report FILE.json``); ``ok`` included."""
        data = asdict(self)
        data["ok"] = self.ok
        return data
