"""When to try a failed request again, and after how long. Sans-IO: randomness and time are passed in.

One :class:`RetryPolicy` per process (built from ``--retries``), one :class:`RetryState` per request. After
each failed attempt the caller diagnoses the failure (:mod:`sigv4_proxy.diagnose`) and asks the policy:

    state = RetryState()
    while True:
        outcome = ...                       # Outcome.from_diagnosis(diagnosis, headers=..., replay_safe=...)
        decision = policy.decide(state, outcome, random=rng.random, now=datetime.now(timezone.utc))
        if decision.action == GIVE_UP:      # report diagnosis.message() (+ decision.reason)
            ...
        if decision.action == REFRESH_CREDENTIALS: provider.force_refresh()
        if decision.action == CORRECT_CLOCK:       clock.correct(date_header, received_at, ...)
        await sleep(decision.delay)         # then re-sign and resend

Rules, in order:

- **Clock skew** (the server says the signature is expired / not yet valid): correct the clock and retry
  once, immediately. **Expired token**: refresh the credentials and retry once, immediately — unless they
  cannot be refreshed (keys from the process's environment: ``RetryState(credentials_refreshable=False)``),
  when a retry would send the same keys again. Neither counts against ``--retries``.
- **A request the server may have started executing is never resent** unless the caller says replaying it is
  harmless (``replay_safe``): a read timeout, a reset or a closed connection after the request went out, a
  504 (the backend may still be running it).
- **Transient failures** — connection refused, connect/pool timeouts, temporary DNS failures, a request that
  could not be completely sent, 429/throttling, 502/503, 424 — are retried up to ``retries`` times with
  exponential backoff and full jitter (``random() * min(max_delay, base_delay * 2**n)``); 424 (a cold start)
  uses a longer base and "equal jitter" so the wait is never near zero. A ``Retry-After`` header (seconds or an
  HTTP date) replaces the computed backoff; one above ``max_retry_after`` makes us give up and say so.
- Everything else is final.

The action names (:data:`Action`: ``RETRY``, ``REFRESH_CREDENTIALS``, ``CORRECT_CLOCK``, ``GIVE_UP``) are the one
vocabulary of what to do about a failure: :attr:`sigv4_proxy.diagnose.Diagnosis.recovery` answers with a
:data:`RecoveryAction` from :data:`RECOVERIES`, and the doors' recovery switches on these names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Final, Literal

from sigv4_proxy import diagnose as d
from sigv4_proxy.clock import format_duration, parse_http_date

Random = Callable[[], float]
Headers = d.Headers

DEFAULT_RETRIES = 2

# What to do next: the one vocabulary of actions (the doors switch on these; Diagnosis.recovery answers in it).
Action = Literal["retry", "refresh_credentials", "correct_clock", "give_up"]
# The actions that repair the request before one immediate re-signed retry.
RecoveryAction = Literal["refresh_credentials", "correct_clock"]
RETRY: Final = "retry"
REFRESH_CREDENTIALS: Final = "refresh_credentials"
CORRECT_CLOCK: Final = "correct_clock"
GIVE_UP: Final = "give_up"
# The kinds one re-signed retry may cure, and what to repair first (Diagnosis.recovery reads this table).
RECOVERIES: Mapping[d.Kind, RecoveryAction] = {d.EXPIRED_TOKEN: REFRESH_CREDENTIALS, d.CLOCK_SKEW: CORRECT_CLOCK}
# Why an expired token is final when the credentials cannot be refreshed.
NOT_REFRESHABLE = "not retried: credentials from the environment cannot be refreshed, the same keys would fail again"

# The request never reached the server completely: resending cannot execute it twice.
NOT_SENT_KINDS = frozenset(
    {d.CONNECTION_REFUSED, d.CONNECT_TIMEOUT, d.POOL_TIMEOUT, d.DNS_TEMPORARY, d.NETWORK_UNREACHABLE, d.WRITE_FAILED}
)
# The request went out and then the answer failed: the server may have started executing it.
MAY_HAVE_EXECUTED_KINDS = frozenset(
    {d.READ_TIMEOUT, d.CONNECTION_RESET, d.CONNECTION_CLOSED, d.TIMEOUT, d.GATEWAY_TIMEOUT}
)
# The server (or its gateway) answered without executing it.
TRANSIENT_ANSWER_KINDS = frozenset({d.THROTTLED, d.UNAVAILABLE, d.COLD_START})

# HTTP methods whose repetition is harmless by definition (RFC 9110 §9.2.2).
IDEMPOTENT_HTTP_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
# MCP requests that only read (or, for initialize, at worst leave an unused session behind).
REPLAY_SAFE_MCP_METHODS = frozenset(
    {
        "initialize",
        "ping",
        "tools/list",
        "resources/list",
        "resources/templates/list",
        "resources/read",
        "prompts/list",
        "prompts/get",
        "completion/complete",
        "logging/setLevel",
    }
)


def mcp_replay_safe(methods: str | Iterable[str] | None) -> bool:
    """True when every JSON-RPC method in the message (or batch) may be executed twice without harm."""
    if methods is None:
        return False
    names = [methods] if isinstance(methods, str) else list(methods)
    return bool(names) and all(name in REPLAY_SAFE_MCP_METHODS for name in names)


def http_replay_safe(method: str) -> bool:
    return method.upper() in IDEMPOTENT_HTTP_METHODS


@dataclass(frozen=True)
class Outcome:
    """One failed attempt.

    `kind` is the diagnosis kind. `request_sent` says whether the whole request reached the server (None:
    infer it from the kind). `replay_safe` says whether executing the request twice is harmless.
    """

    kind: d.Kind
    status: int | None = None
    headers: Headers = ()
    request_sent: bool | None = None
    replay_safe: bool = False

    @classmethod
    def from_diagnosis(
        cls,
        diagnosis: d.Diagnosis,
        *,
        headers: Headers = (),
        request_sent: bool | None = None,
        replay_safe: bool = False,
    ) -> Outcome:
        return cls(diagnosis.kind, diagnosis.status, headers, request_sent, replay_safe)

    @property
    def may_have_executed(self) -> bool:
        if self.status is not None and self.kind in TRANSIENT_ANSWER_KINDS:
            return False  # an explicit "not now" from the server
        if self.request_sent is not None:
            return self.request_sent
        return self.kind in MAY_HAVE_EXECUTED_KINDS


@dataclass(frozen=True)
class Decision:
    """What to do next. `delay` is in seconds; `reason` is a log-ready sentence."""

    action: Action
    delay: float = 0.0
    reason: str = ""

    @property
    def retry(self) -> bool:
        return self.action != GIVE_UP


@dataclass
class RetryState:
    """Per request: what has been tried so far (:meth:`RetryPolicy.decide` updates it), and whether the
    credentials can be refreshed at all (see :func:`sigv4_proxy.credentials.credentials_refreshable`)."""

    credentials_refreshable: bool = True
    attempts: int = 1
    backoff_retries: int = 0
    refreshed_credentials: bool = False
    corrected_clock: bool = False
    waited: float = 0.0


def parse_retry_after(value: str | None, now: datetime | None) -> float | None:
    """``Retry-After`` in seconds: delta-seconds, or an HTTP date relative to `now` (never negative)."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        seconds = float(text)  # not RFC-conform, but some servers send "1.5"
    except ValueError:
        when = parse_http_date(text)
        if when is None or now is None:
            return None
        return max(0.0, (when - now.astimezone(timezone.utc)).total_seconds())
    return seconds if seconds >= 0 else None


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff parameters; ``retries`` is ``--retries`` (additional attempts after the first)."""

    retries: int = DEFAULT_RETRIES
    base_delay: float = 0.2
    max_delay: float = 10.0
    cold_start_base_delay: float = 2.0
    cold_start_max_delay: float = 30.0
    max_retry_after: float = 120.0

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ValueError("retries must be 0 or more")

    def backoff(self, retry_number: int, kind: d.Kind, random: Random) -> float:
        """The wait before retry `retry_number` (1-based) for a failure of `kind`."""
        if kind == d.COLD_START:
            cap = min(self.cold_start_max_delay, self.cold_start_base_delay * 2 ** (retry_number - 1))
            return cap / 2 + random() * cap / 2  # equal jitter: a cold start needs real time
        cap = min(self.max_delay, self.base_delay * 2 ** (retry_number - 1))
        return random() * cap  # full jitter

    def decide(self, state: RetryState, outcome: Outcome, *, random: Random, now: datetime | None = None) -> Decision:
        """Decide about the attempt that just failed, and record the decision in `state`."""
        decision = self._decide(state, outcome, random, now)
        if decision.action == CORRECT_CLOCK:
            state.corrected_clock = True
        elif decision.action == REFRESH_CREDENTIALS:
            state.refreshed_credentials = True
        elif decision.action == RETRY:
            state.backoff_retries += 1
        if decision.retry:
            state.attempts += 1
            state.waited += decision.delay
        return decision

    def _decide(self, state: RetryState, outcome: Outcome, random: Random, now: datetime | None) -> Decision:
        kind = outcome.kind
        if kind == d.CLOCK_SKEW:
            if state.corrected_clock:
                return Decision(GIVE_UP, reason="still rejected after correcting the clock")
            return Decision(CORRECT_CLOCK, reason="clock skew: signing with the server's time and retrying once")
        if kind == d.EXPIRED_TOKEN:
            if not state.credentials_refreshable:
                return Decision(GIVE_UP, reason=NOT_REFRESHABLE)
            if state.refreshed_credentials:
                return Decision(GIVE_UP, reason="the token is still expired after refreshing the credentials")
            return Decision(REFRESH_CREDENTIALS, reason="expired token: refreshing the credentials and retrying once")

        transient = kind in NOT_SENT_KINDS or kind in TRANSIENT_ANSWER_KINDS or kind in MAY_HAVE_EXECUTED_KINDS
        if not transient:
            return Decision(GIVE_UP)
        if outcome.may_have_executed and not outcome.replay_safe:
            return Decision(GIVE_UP, reason="not resent: the server may have started executing the request")
        if state.backoff_retries >= self.retries:
            tries = state.attempts
            return Decision(GIVE_UP, reason=f"gave up after {tries} attempt{'s' if tries != 1 else ''}")

        retry_after = parse_retry_after(d.header_value(outcome.headers, "retry-after"), now)
        if retry_after is not None:
            if retry_after > self.max_retry_after:
                return Decision(
                    GIVE_UP,
                    reason=f"the server asked to retry after {format_duration(retry_after)}, longer than the "
                    f"{format_duration(self.max_retry_after)} this proxy waits",
                )
            delay, why = retry_after, "as Retry-After asks"
        else:
            delay, why = self.backoff(state.backoff_retries + 1, kind, random), "backoff"
        what = f"HTTP {outcome.status}" if outcome.status is not None else kind.replace("_", " ")
        number = state.backoff_retries + 1
        return Decision(RETRY, delay, f"{what}: retry {number} of {self.retries} in {delay:.2f} s ({why})")
