"""The signing core's shared pieces: the `Algorithm` strategy (SigV4 / SigV4a) and the amz-date helpers.

The vectors and the differential tests cover what they produce inside sign/presign/verify; these pin the small
API other modules (inspect, doctor, tokens, the emulator) call directly.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from sigv4_proxy import Credentials, SigningError, sign
from sigv4_proxy.signing import model
from sigv4_proxy.signing.algorithm import ALGORITHMS, V4, V4A, Algorithm, algorithm_for, algorithm_named
from sigv4_proxy.signing.amzdate import AUTH_QUERY_PARAMS, MAX_SKEW, format_amz_date, parse_amz_date

CREDENTIALS = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")


def test_each_algorithm_is_found_by_its_version_and_its_name() -> None:
    assert [(a.version, a.name) for a in ALGORITHMS] == [("v4", model.V4), ("v4a", model.V4A)]
    for algorithm in ALGORITHMS:
        assert algorithm_for(algorithm.version) is algorithm
        assert algorithm_named(algorithm.name) is algorithm
    assert algorithm_named("AWS4-HMAC-SHA512") is None
    assert algorithm_named(None) is None
    with pytest.raises(SigningError, match="signature version must be 'v4' or 'v4a', got: v5"):
        algorithm_for("v5")


def test_the_credential_scope_has_a_region_only_in_sigv4() -> None:
    assert V4.scope_regions(["us-east-1"]) == ("us-east-1", None)
    assert V4A.scope_regions(["us-east-1", "eu-*"]) == (None, "us-east-1,eu-*")
    assert V4.credential_scope("20150830", "us-east-1", "iam") == "20150830/us-east-1/iam/aws4_request"
    assert V4A.credential_scope("20150830", None, "iam") == "20150830/iam/aws4_request"
    assert V4.credential_fields(["AKID", "20150830", "us-east-1", "iam", "aws4_request"]) == (
        "AKID",
        "20150830",
        "us-east-1",
        "iam",
    )
    assert V4A.credential_fields(["AKID", "20150830", "iam", "aws4_request"]) == ("AKID", "20150830", None, "iam")
    assert V4A.credential_fields(["AKID", "20150830", "us-east-1", "iam", "aws4_request"]) is None
    with pytest.raises(SigningError, match="exactly one region"):
        V4.scope_regions(["us-east-1", "us-west-2"])


@pytest.mark.parametrize(
    ("algorithm", "claimed", "region", "covered"),
    [
        (V4, "us-east-1", "us-east-1", True),
        (V4, "us-east-1", "us-west-2", False),
        (V4A, ["*"], "ap-south-1", True),
        (V4A, ["us-*"], "us-west-2", True),
        (V4A, ["us-*", "eu-west-1"], "eu-west-1", True),
        (V4A, ["us-*"], "eu-west-1", False),
        (V4A, "us-east-1", "us-east-1", False),  # SigV4a claims a region set, never one region
    ],
)
def test_which_regions_a_claim_covers(
    algorithm: Algorithm, claimed: str | list[str], region: str, covered: bool
) -> None:
    assert algorithm.covers(claimed, region) is covered


@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=lambda a: a.version)
def test_what_an_algorithm_signs_it_verifies(algorithm: Algorithm) -> None:
    text = "AWS4-...\n20150830T123600Z\nscope\nhash"
    signature = algorithm.sign(CREDENTIALS, "20150830T123600Z", "us-east-1", "iam", text)
    assert algorithm.verify(CREDENTIALS, "20150830T123600Z", "us-east-1", "iam", text, signature)
    assert not algorithm.verify(CREDENTIALS, "20150830T123600Z", "us-east-1", "iam", text + "x", signature)


def test_sign_takes_the_version_or_the_algorithm_name() -> None:
    now = datetime(2015, 8, 30, 12, 36, tzinfo=timezone.utc)
    by_version = sign("GET", "https://h.example/", credentials=CREDENTIALS, region="r", service="s", now=now)
    by_name = sign(
        "GET", "https://h.example/", credentials=CREDENTIALS, region="r", service="s", now=now, algorithm=V4.name
    )
    assert by_version.authorization == by_name.authorization


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (datetime(2015, 8, 30, 12, 36, 0, 999999, tzinfo=timezone.utc), "20150830T123600Z"),
        (datetime(2015, 8, 30, 12, 36), "20150830T123600Z"),  # naive: UTC
        (datetime(2015, 8, 30, 14, 36, tzinfo=timezone(timedelta(hours=2))), "20150830T123600Z"),
        (1440938160.7, "20150830T123600Z"),
        (0, "19700101T000000Z"),
        (-0.5, "19691231T235959Z"),  # floored, not truncated towards 1970
        (datetime(1, 1, 1, tzinfo=timezone.utc), "00010101T000000Z"),  # zero-padded year
        # A float timestamp cannot hold this microsecond and rounds up into year 10000.
        (datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc), "99991231T235959Z"),
    ],
)
def test_format_amz_date(moment: float | datetime, text: str) -> None:
    assert format_amz_date(moment) == text


@pytest.mark.parametrize(
    ("text", "moment"),
    [
        ("20150830T123600Z", datetime(2015, 8, 30, 12, 36, tzinfo=timezone.utc)),
        ("00010101T000000Z", datetime(1, 1, 1, tzinfo=timezone.utc)),
        ("20151330T123600Z", None),  # month 13
        ("00000101T000000Z", None),  # year 0
        ("20150830T123600", None),
        ("20150830T123600Z\n", None),
        ("2015083O T123600Z", None),
        ("２0150830T123600Z", None),  # a fullwidth digit: ASCII only
        ("2015-08-30T12:36:00Z", None),
        ("", None),
    ],
)
def test_parse_amz_date(text: str, moment: datetime | None) -> None:
    assert parse_amz_date(text) == moment


def test_the_shared_constants() -> None:
    assert timedelta(minutes=5) == MAX_SKEW
    names = ("Algorithm", "Credential", "Date", "Expires", "SignedHeaders", "Signature", "Security-Token", "Region-Set")
    assert {f"X-Amz-{name}" for name in names} == AUTH_QUERY_PARAMS
