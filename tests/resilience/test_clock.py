"""Clock-skew correction: offsets from Date headers and AWS skew errors; SkewedClock signs with server time."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import httpx
import pytest

from sigv4_proxy.auth import SigV4Auth
from sigv4_proxy.clock import (
    SkewedClock,
    describe_offset,
    format_duration,
    measure_offset,
    offset_from_skew_error,
    parse_aws_time,
    parse_http_date,
)
from sigv4_proxy.signing.model import Credentials
from sigv4_proxy.signing.verify import verify

SERVER = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    "value",
    [
        "Wed, 01 May 2024 12:00:00 GMT",
        "Wednesday, 01-May-24 12:00:00 GMT",
        "Wed May  1 12:00:00 2024",
        "Wed, 01 May 2024 14:00:00 +0200",
    ],
)
def test_parse_http_date_forms(value: str) -> None:
    assert parse_http_date(value) == SERVER


@pytest.mark.parametrize("value", [None, "", "yesterday", "Wed, 99 May 2024 12:00:00 GMT"])
def test_parse_http_date_garbage(value: str | None) -> None:
    assert parse_http_date(value) is None


def test_parse_aws_time_forms() -> None:
    assert parse_aws_time("20240501T120000Z") == SERVER
    assert parse_aws_time("2024-05-01T12:00:00Z") == SERVER
    assert parse_aws_time("2024-05-01T12:00:00.000Z") == SERVER
    assert parse_aws_time("nope") is None


def test_an_impossible_date_in_a_skew_error_is_no_offset() -> None:
    """An X-Amz-Date of the right shape that no calendar has (month 13) is no time: the error reveals nothing
    (it used to raise ValueError from strptime)."""
    message = "Signature expired: 20241301T120000Z is now earlier than 20240501T115500Z (20240501T120000Z - 5 min.)"
    assert offset_from_skew_error(message) is None


def test_measure_offset_sign_convention() -> None:
    assert measure_offset("Wed, 01 May 2024 12:00:00 GMT", SERVER - timedelta(minutes=10)) == 600.0
    assert measure_offset("Wed, 01 May 2024 12:00:00 GMT", SERVER + timedelta(seconds=90)) == -90.0
    assert measure_offset(None, SERVER) is None


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("Signature expired: 20240501T115000Z is now earlier than 20240501T115500Z (20240501T120000Z - 5 min.)", 600.0),
        (
            "Signature not yet current: 20240501T121500Z is still later than 20240501T120500Z "
            "(20240501T120000Z + 5 min.)",
            -900.0,
        ),
        # A presigned URL's expiry is its age, not a skew.
        (
            "Signature expired: 20240501T110000Z is now earlier than 20240501T114500Z (20240501T120000Z - 900 sec.)",
            None,
        ),
        ("The security token included in the request is expired", None),
        (None, None),
    ],
)
def test_offset_from_skew_error(message: str | None, expected: float | None) -> None:
    assert offset_from_skew_error(message) == expected


def test_offset_from_s3_fields() -> None:
    fields = {"RequestTime": "20240501T115500Z", "ServerTime": "2024-05-01T12:00:00Z"}
    assert (
        offset_from_skew_error("The difference between the request time and the current time is too large.", fields)
        == 300.0
    )


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0 s"),
        (0.4, "0 s"),
        (59.6, "1 min"),
        (603.4, "10 min 3 s"),
        (-7384, "2 h 3 min 4 s"),
        (3600, "1 h"),
        (7 * 86400, "7 d"),  # an expiry a week ago: days, not "168 h"
        (86400 + 7384, "1 d 2 h 3 min"),  # past a day, seconds are noise
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert format_duration(timedelta(seconds=seconds)) == text


def test_describe_offset() -> None:
    assert describe_offset(603) == "10 min 3 s behind"
    assert describe_offset(-120) == "2 min ahead of"
    assert describe_offset(0.2) == "in step with"


def test_skewed_clock_adopts_date_header_measured_against_the_raw_local_clock() -> None:
    local = SERVER - timedelta(minutes=10)
    clock = SkewedClock(now=lambda: local)
    assert clock() == local
    assert clock.correct("Wed, 01 May 2024 12:00:00 GMT") == 600.0
    assert clock() == SERVER
    # A second correction replaces the offset (measured against the raw clock), it does not add to it.
    assert clock.correct("Wed, 01 May 2024 12:00:00 GMT", local) == 600.0
    assert (
        clock.describe() == "local clock is 10 min behind the server's; signing with the server's time (offset +600 s)"
    )


def test_skewed_clock_falls_back_to_the_aws_message_and_adds_to_the_current_offset() -> None:
    local = SERVER + timedelta(minutes=20)
    clock = SkewedClock(now=lambda: local, offset_seconds=-300)  # a first, partial correction
    signed = clock()  # 12:15, still 15 min ahead
    message = (
        f"Signature not yet current: {signed:%Y%m%dT%H%M%SZ} is still later than 20240501T120500Z "
        "(20240501T120000Z + 5 min.)"
    )
    assert clock.correct("not a date", aws_message=message) == -1200.0
    assert clock() == SERVER
    assert (
        clock.describe()
        == "local clock is 20 min ahead of the server's; signing with the server's time (offset -1200 s)"
    )


def test_skewed_clock_without_evidence_keeps_its_offset() -> None:
    clock = SkewedClock(now=lambda: SERVER, offset_seconds=5)
    assert clock.correct(None, aws_message="Access denied") is None
    assert clock.offset == 5
    assert SkewedClock(now=lambda: SERVER).describe() == "local clock is in step with the server's"


def test_sigv4auth_signs_with_the_corrected_time_and_verify_accepts_it() -> None:
    """The clock plugs into the lead's SigV4Auth: 10 minutes off, then corrected, then accepted by verify()."""
    credentials = Credentials("AKIDEXAMPLEKEY000001", "secret")
    clock = SkewedClock(now=lambda: SERVER - timedelta(minutes=10))
    auth = SigV4Auth(credentials, "us-east-1", "execute-api", clock=clock)

    def check() -> httpx.Response:
        def handler(request: httpx.Request) -> httpx.Response:
            result = verify(
                request.method,
                request.url.raw_path.decode(),
                request.headers.multi_items(),
                request.content,
                credentials_for={credentials.access_key_id: credentials}.get,
                now=SERVER,
                region="us-east-1",
                service="execute-api",
            )
            status, headers, body = result.to_response() if not result.ok else (200, [], b"ok")
            return httpx.Response(status, headers=[*headers, ("Date", "Wed, 01 May 2024 12:00:00 GMT")], content=body)

        with httpx.Client(transport=httpx.MockTransport(handler), auth=auth) as client:
            return client.post("https://abc.execute-api.us-east-1.amazonaws.com/mcp", content=b"{}")

    rejected = check()
    assert rejected.status_code == 403
    assert rejected.json()["message"].startswith("Signature expired")
    clock.correct(rejected.headers["date"])
    assert check().status_code == 200
