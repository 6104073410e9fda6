"""The retry policy table: outcome -> retry after how long, refresh, correct the clock, or give up (and why)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import pytest

from sigv4_proxy import diagnose as d
from sigv4_proxy.retry import (
    CORRECT_CLOCK,
    GIVE_UP,
    REFRESH_CREDENTIALS,
    RETRY,
    Outcome,
    RetryPolicy,
    RetryState,
    http_replay_safe,
    mcp_replay_safe,
    parse_retry_after,
)

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)
POLICY = RetryPolicy(retries=2, base_delay=0.5, max_delay=8.0, cold_start_base_delay=2.0, cold_start_max_delay=30.0)


def half() -> float:
    return 0.5


@dataclass
class Row:
    id: str
    outcome: Outcome
    action: str
    delay: float
    reason: str


ROWS = [
    Row(
        "429-retry-after-seconds",
        Outcome(d.THROTTLED, 429, [("Retry-After", "3")], request_sent=True),
        RETRY,
        3.0,
        "HTTP 429: retry 1 of 2 in 3.00 s (as Retry-After asks)",
    ),
    Row(
        "503-retry-after-http-date",
        Outcome(d.UNAVAILABLE, 503, {"retry-after": "Wed, 01 May 2024 12:00:07 GMT"}),
        RETRY,
        7.0,
        "HTTP 503: retry 1 of 2 in 7.00 s (as Retry-After asks)",
    ),
    Row(
        "503-retry-after-in-the-past",
        Outcome(d.UNAVAILABLE, 503, {"Retry-After": "Wed, 01 May 2024 11:00:00 GMT"}),
        RETRY,
        0.0,
        "HTTP 503: retry 1 of 2 in 0.00 s (as Retry-After asks)",
    ),
    Row(
        "502-backoff-full-jitter",
        Outcome(d.UNAVAILABLE, 502),
        RETRY,
        0.25,
        "HTTP 502: retry 1 of 2 in 0.25 s (backoff)",
    ),
    Row("throttled-400-awsjson", Outcome(d.THROTTLED, 400), RETRY, 0.25, "HTTP 400: retry 1 of 2 in 0.25 s (backoff)"),
    Row(
        "424-cold-start-equal-jitter",
        Outcome(d.COLD_START, 424),
        RETRY,
        1.5,
        "HTTP 424: retry 1 of 2 in 1.50 s (backoff)",
    ),
    Row(
        "connection-refused",
        Outcome(d.CONNECTION_REFUSED),
        RETRY,
        0.25,
        "connection refused: retry 1 of 2 in 0.25 s (backoff)",
    ),
    Row(
        "connect-timeout", Outcome(d.CONNECT_TIMEOUT), RETRY, 0.25, "connect timeout: retry 1 of 2 in 0.25 s (backoff)"
    ),
    Row("pool-timeout", Outcome(d.POOL_TIMEOUT), RETRY, 0.25, "pool timeout: retry 1 of 2 in 0.25 s (backoff)"),
    Row(
        "write-failed-before-body-sent",
        Outcome(d.WRITE_FAILED),
        RETRY,
        0.25,
        "write failed: retry 1 of 2 in 0.25 s (backoff)",
    ),
    Row("dns-temporary", Outcome(d.DNS_TEMPORARY), RETRY, 0.25, "dns temporary: retry 1 of 2 in 0.25 s (backoff)"),
    Row(
        "read-timeout-after-send",
        Outcome(d.READ_TIMEOUT),
        GIVE_UP,
        0.0,
        "not resent: the server may have started executing the request",
    ),
    Row(
        "reset-after-send",
        Outcome(d.CONNECTION_RESET, request_sent=True),
        GIVE_UP,
        0.0,
        "not resent: the server may have started executing the request",
    ),
    Row(
        "closed-mid-response",
        Outcome(d.CONNECTION_CLOSED),
        GIVE_UP,
        0.0,
        "not resent: the server may have started executing the request",
    ),
    Row(
        "reset-but-caller-knows-nothing-was-sent",
        Outcome(d.CONNECTION_RESET, request_sent=False),
        RETRY,
        0.25,
        "connection reset: retry 1 of 2 in 0.25 s (backoff)",
    ),
    Row(
        "read-timeout-replay-safe",
        Outcome(d.READ_TIMEOUT, replay_safe=True),
        RETRY,
        0.25,
        "read timeout: retry 1 of 2 in 0.25 s (backoff)",
    ),
    Row(
        "504-not-replay-safe",
        Outcome(d.GATEWAY_TIMEOUT, 504, request_sent=True),
        GIVE_UP,
        0.0,
        "not resent: the server may have started executing the request",
    ),
    Row(
        "504-replay-safe",
        Outcome(d.GATEWAY_TIMEOUT, 504, request_sent=True, replay_safe=True),
        RETRY,
        0.25,
        "HTTP 504: retry 1 of 2 in 0.25 s (backoff)",
    ),
    Row(
        "retry-after-too-long",
        Outcome(d.THROTTLED, 429, {"Retry-After": "3600"}),
        GIVE_UP,
        0.0,
        "the server asked to retry after 1 h, longer than the 2 min this proxy waits",
    ),
    Row(
        "clock-skew",
        Outcome(d.CLOCK_SKEW, 403),
        CORRECT_CLOCK,
        0.0,
        "clock skew: signing with the server's time and retrying once",
    ),
    Row(
        "expired-token",
        Outcome(d.EXPIRED_TOKEN, 403),
        REFRESH_CREDENTIALS,
        0.0,
        "expired token: refreshing the credentials and retrying once",
    ),
    Row("signature-mismatch-final", Outcome(d.SIGNATURE_MISMATCH, 403), GIVE_UP, 0.0, ""),
    Row("500-final", Outcome(d.SERVER_ERROR, 500), GIVE_UP, 0.0, ""),
    Row("404-final", Outcome(d.NOT_FOUND, 404), GIVE_UP, 0.0, ""),
    Row("dns-final", Outcome(d.DNS), GIVE_UP, 0.0, ""),
    Row("tls-certificate-final", Outcome(d.TLS_CERTIFICATE), GIVE_UP, 0.0, ""),
    Row("credentials-final", Outcome(d.CREDENTIALS), GIVE_UP, 0.0, ""),
]


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_first_failure(row: Row) -> None:
    decision = POLICY.decide(RetryState(), row.outcome, random=half, now=NOW)
    assert (decision.action, decision.delay, decision.reason) == (row.action, pytest.approx(row.delay), row.reason)


def test_backoff_grows_exponentially_with_full_jitter_and_caps() -> None:
    policy = RetryPolicy(retries=10, base_delay=0.5, max_delay=4.0)
    assert [policy.backoff(n, d.UNAVAILABLE, lambda: 1.0) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert policy.backoff(3, d.UNAVAILABLE, lambda: 0.0) == 0.0  # full jitter reaches zero
    assert policy.backoff(3, d.UNAVAILABLE, lambda: 0.25) == 0.5


def test_cold_start_backoff_is_longer_and_never_near_zero() -> None:
    assert [POLICY.backoff(n, d.COLD_START, lambda: 0.0) for n in (1, 2, 3, 5)] == [1.0, 2.0, 4.0, 15.0]
    assert [POLICY.backoff(n, d.COLD_START, lambda: 1.0) for n in (1, 2, 3, 5)] == [2.0, 4.0, 8.0, 30.0]


def test_an_expired_token_is_final_when_the_credentials_cannot_be_refreshed() -> None:
    """Keys from the environment: a "refresh" would hand back the same keys, so nothing is retried."""
    state = RetryState(credentials_refreshable=False)
    decision = POLICY.decide(state, Outcome(d.EXPIRED_TOKEN, 403), random=half, now=NOW)
    assert (decision.action, decision.reason) == (
        GIVE_UP,
        "not retried: credentials from the environment cannot be refreshed, the same keys would fail again",
    )
    assert (state.attempts, state.refreshed_credentials) == (1, False)


def test_retries_are_bounded_by_the_budget() -> None:
    state = RetryState()
    outcome = Outcome(d.UNAVAILABLE, 503)
    actions = [POLICY.decide(state, outcome, random=half).action for _ in range(3)]
    assert actions == [RETRY, RETRY, GIVE_UP]
    last = POLICY.decide(state, outcome, random=half)
    assert last.reason == "gave up after 3 attempts"
    assert state.attempts == 3


def test_424_twice_then_success_fits_the_default_budget() -> None:
    state = RetryState()
    decisions = [POLICY.decide(state, Outcome(d.COLD_START, 424), random=half) for _ in range(2)]
    assert [x.action for x in decisions] == [RETRY, RETRY]
    assert [x.delay for x in decisions] == [1.5, 3.0]
    assert state.attempts == 3  # the third attempt is the 200


def test_retries_zero_never_retries_transient_failures() -> None:
    decision = RetryPolicy(retries=0).decide(RetryState(), Outcome(d.THROTTLED, 429), random=half)
    assert (decision.action, decision.reason) == (GIVE_UP, "gave up after 1 attempt")


def test_refresh_and_clock_correction_happen_once_each_and_do_not_use_the_budget() -> None:
    state = RetryState()
    policy = RetryPolicy(retries=0)
    assert policy.decide(state, Outcome(d.EXPIRED_TOKEN, 403), random=half).action == REFRESH_CREDENTIALS
    assert policy.decide(state, Outcome(d.CLOCK_SKEW, 403), random=half).action == CORRECT_CLOCK
    again = policy.decide(state, Outcome(d.EXPIRED_TOKEN, 403), random=half)
    assert (again.action, again.reason) == (GIVE_UP, "the token is still expired after refreshing the credentials")
    skew = policy.decide(state, Outcome(d.CLOCK_SKEW, 403), random=half)
    assert (skew.action, skew.reason) == (GIVE_UP, "still rejected after correcting the clock")
    assert state.attempts == 3


def test_waited_time_accumulates() -> None:
    state = RetryState()
    POLICY.decide(state, Outcome(d.THROTTLED, 429, {"Retry-After": "2"}), random=half)
    POLICY.decide(state, Outcome(d.THROTTLED, 429, {"Retry-After": "1"}), random=half)
    assert state.waited == 3.0


def test_outcome_from_diagnosis() -> None:
    diagnosis = d.Diagnosis(429, "ThrottlingException", "Rate exceeded", "h", d.THROTTLED, True)
    outcome = Outcome.from_diagnosis(diagnosis, headers={"Retry-After": "1"}, request_sent=True)
    assert (outcome.kind, outcome.status, outcome.may_have_executed) == (d.THROTTLED, 429, False)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", 0.0),
        ("120", 120.0),
        ("1.5", 1.5),
        ("Wed, 01 May 2024 12:00:30 GMT", 30.0),
        ("Wednesday, 01-May-24 12:00:30 GMT", 30.0),
        ("Wed May  1 12:00:30 2024", 30.0),
        ("-1", None),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, NOW) == expected


def test_replay_safety() -> None:
    assert mcp_replay_safe("tools/list")
    assert mcp_replay_safe(["initialize", "ping"])
    assert not mcp_replay_safe("tools/call")
    assert not mcp_replay_safe(["tools/list", "tools/call"])
    assert not mcp_replay_safe([])
    assert not mcp_replay_safe(None)
    assert http_replay_safe("get") and http_replay_safe("DELETE")
    assert not http_replay_safe("POST") and not http_replay_safe("PATCH")


def test_negative_retries_rejected() -> None:
    with pytest.raises(ValueError, match="retries must be 0 or more"):
        RetryPolicy(retries=-1)
