"""Bad input to dsql_token / rds_token: one clear SigningError each, with the fix in the message."""

from __future__ import annotations

import pytest

from sigv4_proxy import dsql_token, rds_token
from sigv4_proxy.errors import SigningError
from tests.tokens.helpers import LONG_TERM, NOW

DSQL = "abc123.dsql.us-east-1.on.aws"
RDS = "mydb.c9akciq32.us-east-1.rds.amazonaws.com"


@pytest.mark.parametrize(
    ("expires_in", "message"),
    [
        (0, "expires_in must be between 1 and 604800 seconds (7 days), got: 0"),
        (604801, "expires_in must be between 1 and 604800 seconds (7 days), got: 604801"),
        (-5, "expires_in must be between 1 and 604800 seconds (7 days), got: -5"),
        ("900", "expires_in must be a whole number of seconds, got: '900'"),
        (900.0, "expires_in must be a whole number of seconds, got: 900.0"),
        (True, "expires_in must be a whole number of seconds, got: True"),
    ],
)
def test_expires_in_out_of_range(expires_in: object, message: str) -> None:
    with pytest.raises(SigningError) as caught:
        dsql_token(DSQL, expires_in=expires_in, credentials=LONG_TERM, now=NOW)  # type: ignore[arg-type]
    assert str(caught.value) == message
    with pytest.raises(SigningError) as caught:
        rds_token(RDS, 5432, "u", expires_in=expires_in, credentials=LONG_TERM, now=NOW)  # type: ignore[arg-type]
    assert str(caught.value) == message


def test_region_required_when_the_host_does_not_name_one() -> None:
    with pytest.raises(SigningError) as caught:
        dsql_token("db.internal.example.com", credentials=LONG_TERM, now=NOW)
    assert str(caught.value) == (
        "region is required: it cannot be inferred from host 'db.internal.example.com' (only "
        "<cluster-id>.dsql.<region>.on.aws names carry it); pass --region (region= in Python)"
    )
    with pytest.raises(SigningError) as caught:
        rds_token("10.1.2.3", 5432, "u", credentials=LONG_TERM, now=NOW)
    assert "only <name>.<id>.<region>.rds.amazonaws.com names carry it" in str(caught.value)
    assert dsql_token("db.internal.example.com", "eu-west-1", credentials=LONG_TERM, now=NOW).startswith(
        "db.internal.example.com/?Action=DbConnect&"
    )


def test_region_that_contradicts_the_host() -> None:
    with pytest.raises(SigningError) as caught:
        dsql_token(DSQL, "us-west-2", credentials=LONG_TERM, now=NOW)
    assert str(caught.value) == (
        "region 'us-west-2' does not match host 'abc123.dsql.us-east-1.on.aws', which is in 'us-east-1': the "
        "token would be rejected; use --region us-east-1 (or omit it)"
    )


@pytest.mark.parametrize(
    "hostname", ["", "   ", "abc.dsql.us-east-1.on.aws/postgres", "abc dsql", "a?b=c", "host:port"]
)
def test_invalid_hostname(hostname: str) -> None:
    with pytest.raises(SigningError) as caught:
        dsql_token(hostname, "us-east-1", credentials=LONG_TERM, now=NOW)
    text = str(caught.value)
    assert text.startswith("hostname is required") or text.startswith("invalid hostname"), text


@pytest.mark.parametrize(
    ("port", "message"),
    [
        (0, "port must be a number between 1 and 65535, got 0"),
        (70000, "port must be a number between 1 and 65535, got 70000"),
        ("5432", "port must be a number between 1 and 65535, got '5432'"),
    ],
)
def test_rds_bad_port(port: object, message: str) -> None:
    with pytest.raises(SigningError) as caught:
        rds_token(RDS, port, "u", credentials=LONG_TERM, now=NOW)  # type: ignore[arg-type]
    assert str(caught.value) == message


def test_rds_port_in_hostname_must_agree() -> None:
    with pytest.raises(SigningError) as caught:
        rds_token(f"{RDS}:3306", 5432, "u", credentials=LONG_TERM, now=NOW)
    assert str(caught.value) == f"hostname '{RDS}:3306' names port 3306 but port is 5432"
    assert rds_token(f"{RDS}:5432", 5432, "u", credentials=LONG_TERM, now=NOW) == rds_token(
        RDS, 5432, "u", credentials=LONG_TERM, now=NOW
    )


def test_rds_username_required() -> None:
    with pytest.raises(SigningError) as caught:
        rds_token(RDS, 5432, "", credentials=LONG_TERM, now=NOW)
    assert str(caught.value) == "username is required (the database user that has IAM authentication enabled)"


@pytest.mark.parametrize(
    ("host", "kind", "cluster_id"),
    [
        ("abc123.dsql.us-east-1.on.aws", "dsql", "abc123"),
        ("abc123.dsql-fnh4.us-east-1.on.aws", "dsql", "abc123"),
        ("ABC123.dsql.us-east-1.on.aws.", "dsql", "abc123"),
        # Only <cluster-id>.dsql[-suffix].<region>.on.aws names a cluster: a longer name's first label is not one.
        ("abc123.extra.dsql.us-east-1.on.aws", "unknown", None),
    ],
)
def test_host_info_reads_a_cluster_only_from_the_cluster_endpoint_shape(
    host: str, kind: str, cluster_id: str | None
) -> None:
    from sigv4_proxy.tokens import host_info

    info = host_info(host)
    assert (info.kind, info.cluster_id, info.region) == (kind, cluster_id, "us-east-1")
