"""dsql_token / rds_token against botocore's generate_db_connect_auth_token,
generate_db_connect_admin_auth_token and generate_db_auth_token: same fields, same signature."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from sigv4_proxy import dsql_token, rds_token
from sigv4_proxy.signing.model import Credentials
from tests.tokens.helpers import LONG_TERM, NOW, TEMPORARY, botocore_client, frozen_botocore, token_fields

CREDENTIALS = pytest.mark.parametrize("credentials", [LONG_TERM, TEMPORARY], ids=["long-term", "session-token"])
MOMENTS = [NOW, datetime(2023, 12, 31, 23, 59, 59, tzinfo=timezone.utc), NOW + timedelta(microseconds=999_999)]
DSQL_HOSTS = [
    ("abc123def456ghi.dsql.us-east-1.on.aws", "us-east-1"),
    ("abc123def456ghi.dsql-fnh4.eu-west-1.on.aws", "eu-west-1"),
    ("ABC123.DSQL.AP-SOUTHEAST-2.ON.AWS", "ap-southeast-2"),  # signed lower-case, as botocore does
]


def botocore_dsql(
    host: str, region: str, *, admin: bool, expires_in: int, credentials: Credentials, now: datetime
) -> str:
    client = botocore_client("dsql", credentials, region)
    generate = client.generate_db_connect_admin_auth_token if admin else client.generate_db_connect_auth_token
    with frozen_botocore(now):
        return generate(host, region, expires_in)


@CREDENTIALS
@pytest.mark.parametrize(("host", "region"), DSQL_HOSTS)
@pytest.mark.parametrize("admin", [False, True], ids=["DbConnect", "DbConnectAdmin"])
def test_dsql_token_equals_botocore(credentials: Credentials, host: str, region: str, admin: bool) -> None:
    ours = dsql_token(host, admin=admin, credentials=credentials, now=NOW)  # region inferred from the host
    theirs = botocore_dsql(host, region, admin=admin, expires_in=900, credentials=credentials, now=NOW)
    assert token_fields(ours) == token_fields(theirs)
    assert ours.startswith(host.lower() + "/?Action=" + ("DbConnectAdmin" if admin else "DbConnect") + "&")


@CREDENTIALS
@pytest.mark.parametrize("expires_in", [1, 900, 3600, 604800])
@pytest.mark.parametrize("now", MOMENTS, ids=["noon", "new-year-eve", "sub-second"])
def test_dsql_token_expiry_and_time_equal_botocore(credentials: Credentials, expires_in: int, now: datetime) -> None:
    host, region = DSQL_HOSTS[0]
    ours = dsql_token(host, region, expires_in=expires_in, credentials=credentials, now=now)
    theirs = botocore_dsql(host, region, admin=False, expires_in=expires_in, credentials=credentials, now=now)
    assert token_fields(ours) == token_fields(theirs)


@CREDENTIALS
@pytest.mark.parametrize(
    ("host", "port", "user", "region"),
    [
        ("mydb.c9akciq32.us-east-1.rds.amazonaws.com", 5432, "iam_user", "us-east-1"),
        ("mycluster.cluster-c9akciq32.eu-central-1.rds.amazonaws.com", 3306, "user with space", "eu-central-1"),
        ("proxy1.proxy-c9akciq32.us-west-2.rds.amazonaws.com", 5432, "a+b=c/d&e@f", "us-west-2"),
        ("10.0.0.12", 15432, "jöe", "ap-northeast-1"),
    ],
)
def test_rds_token_equals_botocore(credentials: Credentials, host: str, port: int, user: str, region: str) -> None:
    ours = rds_token(host, port, user, region, credentials=credentials, now=NOW)
    client = botocore_client("rds", credentials, region)
    with frozen_botocore(NOW):
        theirs = client.generate_db_auth_token(host, port, user, region)
    assert token_fields(ours) == token_fields(theirs)
    assert ours.startswith(f"{host}:{port}/?Action=connect&DBUser=")


def test_session_token_is_inside_the_signed_query() -> None:
    fields = token_fields(dsql_token(DSQL_HOSTS[0][0], credentials=TEMPORARY, now=NOW))
    assert fields["X-Amz-Security-Token"] == TEMPORARY.session_token
    assert fields["X-Amz-SignedHeaders"] == "host"
    assert "X-Amz-Security-Token" not in token_fields(dsql_token(DSQL_HOSTS[0][0], credentials=LONG_TERM, now=NOW))


@pytest.mark.parametrize(
    "given",
    [
        "abc123.dsql.us-east-1.on.aws:5432",
        "https://abc123.dsql.us-east-1.on.aws",
        "https://abc123.dsql.us-east-1.on.aws:443/",
        "  abc123.dsql.us-east-1.on.aws  ",
        "abc123.dsql.us-east-1.on.aws.",
    ],
)
def test_dsql_token_signs_the_bare_lower_case_host(given: str) -> None:
    """The port, a pasted scheme, padding and a trailing dot never reach the signature."""
    expected = dsql_token("abc123.dsql.us-east-1.on.aws", credentials=LONG_TERM, now=NOW)
    assert dsql_token(given, credentials=LONG_TERM, now=NOW) == expected


def test_dsql_token_uses_the_clock_when_now_is_omitted() -> None:
    before = datetime.now(timezone.utc).replace(microsecond=0)
    fields = token_fields(dsql_token("abc.dsql.us-east-1.on.aws", credentials=LONG_TERM))
    signed_at = datetime.strptime(str(fields["X-Amz-Date"]), "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    assert before <= signed_at <= datetime.now(timezone.utc)
