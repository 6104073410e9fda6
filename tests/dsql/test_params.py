"""Connection parameters, resolved without I/O: DSN and URL values typed, cluster id -> host, PrivateLink targets,
regions, TLS defaults, and the exact problems reported."""

from __future__ import annotations

from typing import Any

import pytest

from sigv4_proxy.dsql._params import (
    ConnectSpec,
    Environment,
    HelperOptions,
    parse_conninfo,
    resolve,
)
from sigv4_proxy.errors import ConfigError

CLUSTER = "abcdefghijklmnopqrstuvwxyz"
HOST = f"{CLUSTER}.dsql.us-east-1.on.aws"
PRIVATE_HOST = f"{CLUSTER}.dsql-fnh4.us-east-1.on.aws"
VPCE = "vpce-0123456789abcdef0-abcdefgh.dsql-fnh4.us-east-1.vpce.amazonaws.com"
APP = "sigv4-proxy/test psycopg"
BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


def _resolve(
    hostname: str | None, environment: Environment | None = None, iam_auth: bool = True, **params: Any
) -> ConnectSpec:
    helper_names = ("user", "dbname", "region", "profile", "expires_in", "cluster_id")
    options = HelperOptions(**{name: params.pop(name) for name in helper_names if name in params}, iam_auth=iam_auth)
    chosen = environment or Environment(system_ca_file=lambda: BUNDLE)
    return resolve(hostname, options, params, chosen, application_name=APP)


def _problems(hostname: str | None, environment: Environment | None = None, **params: Any) -> list[str]:
    with pytest.raises(ConfigError) as failure:
        _resolve(hostname, environment, **params)
    return failure.value.problems


# ------------------------------------------------------------------------------------------- parsing


def test_keyword_dsn_with_quotes_and_escapes() -> None:
    assert parse_conninfo(r"host=h  user = 'my user' options='-c a=b\'c' password=x\ y database=db") == {
        "host": "h",
        "user": "my user",
        "options": "-c a=b'c",
        "password": "x y",
        "dbname": "db",
    }


def test_url_with_credentials_path_and_query() -> None:
    assert parse_conninfo(
        f"postgresql+psycopg://app%40x:p%2Fw@{HOST}:5433/my%20db?region=us-east-1&expires_in=15&sslrootcert=/ca.pem"
    ) == {
        "host": HOST,
        "port": "5433",
        "user": "app@x",
        "password": "p/w",
        "dbname": "my db",
        "region": "us-east-1",
        "expires_in": "15",
        "sslrootcert": "/ca.pem",
    }


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("mysql://h/db", "unsupported URL scheme 'mysql': use postgresql://user@host:port/dbname?param=value"),
        ("postgresql://h1,h2/db", "a URL with several hosts is not supported: name one cluster endpoint"),
        ("host='unterminated", "invalid connection string: a quoted value has no closing quote"),
        ("host=h junk password=secret", "invalid connection string at character 8: expected key=value"),
    ],
)
def test_unparseable_connection_strings(text: str, problem: str) -> None:
    with pytest.raises(ConfigError) as failure:
        parse_conninfo(text)
    assert failure.value.problems == [problem]


def test_dsn_numbers_become_ints_the_connector_bug() -> None:
    # aurora-dsql-python-connector keeps token_duration_secs from a DSN as a str and fails comparing it.
    spec = _resolve(f"host={HOST} port=5433 connect_timeout=7 token_duration_secs=15")
    assert spec.expires_in == 15 and isinstance(spec.expires_in, int)
    assert spec.params["port"] == 5433 and spec.params["connect_timeout"] == 7
    assert "token_duration_secs" not in spec.params and "expires_in" not in spec.params


def test_url_values_typed_and_keywords_win() -> None:
    url = f"postgresql://app@{HOST}/db1?expires_in=15&connect_timeout=3&hostaddr=127.0.0.1"
    spec = _resolve(url, expires_in=60, dbname="db2", hostaddr="127.0.0.2")
    assert (spec.user, spec.dbname, spec.expires_in) == ("app", "db2", 60)
    assert spec.params == {
        "host": HOST,
        "user": "app",
        "dbname": "db2",
        "port": 5432,
        "connect_timeout": 3,
        "hostaddr": "127.0.0.2",
        "sslmode": "verify-full",
        "sslrootcert": "system",
        "application_name": APP,
    }


def test_defaults() -> None:
    spec = _resolve(HOST)
    assert (spec.user, spec.dbname, spec.expires_in, spec.profile) == ("admin", "postgres", 900, None)
    assert spec.target is not None
    assert (spec.target.token_host, spec.target.signing_region, spec.target.extra_options) == (HOST, "us-east-1", "")


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ({"port": "54x"}, "port must be a whole number, got: '54x'"),
        ({"expires_in": "soon"}, "expires_in must be a whole number of seconds, got: 'soon'"),
        ({"expires_in": 0}, "expires_in must be between 1 and 604800 seconds (7 days), got: 0"),
        ({"password": "x"}, "a password was given, but the password of each connection is a fresh IAM token: leave it "
         "out (or pass iam_auth=False to send your own, e.g. to a local sigv4-proxy pg)"),
        ({"sslmode": "prefer"}, "sslmode=prefer could send the IAM token unencrypted: use verify-full (the default), "
         "verify-ca or require"),
        ({"sslmode": "bogus"}, "sslmode must be one of disable, allow, prefer, require, verify-ca, verify-full, got: "
         "'bogus'"),
    ],
)  # fmt: skip
def test_parameter_problems(params: dict[str, Any], problem: str) -> None:
    assert _problems(HOST, **params) == [problem]


def test_every_problem_at_once() -> None:
    assert _problems(f"host={CLUSTER} expires_in=x password=p") == [
        "expires_in must be a whole number, got: 'x'",
        f"region is required for cluster id '{CLUSTER}' (only {CLUSTER}.dsql.<region>.on.aws names carry it): pass "
        "region=..., or set AWS_REGION or a profile's region",
        "a password was given, but the password of each connection is a fresh IAM token: leave it out (or pass "
        "iam_auth=False to send your own, e.g. to a local sigv4-proxy pg)",
    ]


def test_no_hostname() -> None:
    assert _problems(None) == [
        "a hostname is required: the cluster endpoint (<cluster-id>.dsql.<region>.on.aws), a cluster id, a DSN or a URL"
    ]


# ------------------------------------------------------------------------------------------- hosts


def test_cluster_id_becomes_the_public_host_in_the_region() -> None:
    spec = _resolve(CLUSTER, region="eu-west-1")
    assert spec.host == f"{CLUSTER}.dsql.eu-west-1.on.aws"
    assert spec.target is not None and spec.target.token_host == spec.host


def test_cluster_id_region_from_the_environment_then_the_profile() -> None:
    from_env = Environment(variables={"AWS_DEFAULT_REGION": "ap-south-1", "AWS_REGION": "eu-north-1"})
    assert _resolve(CLUSTER, from_env).host == f"{CLUSTER}.dsql.eu-north-1.on.aws"
    asked: list[str | None] = []

    def profile_region(profile: str | None) -> str | None:
        asked.append(profile)
        return "us-west-2"

    spec = _resolve(CLUSTER, Environment(profile_region=profile_region), profile="dev")
    assert (spec.host, spec.profile, asked) == (f"{CLUSTER}.dsql.us-west-2.on.aws", "dev", ["dev"])


def test_host_with_port_and_upper_case() -> None:
    spec = _resolve(f"{HOST.upper()}:5433")
    assert (spec.host, spec.port) == (HOST, 5433)
    assert _problems(f"{HOST}:5433", port=5432) == [f"hostname '{HOST}:5433' names port 5433 but port is 5432"]


def test_region_problems() -> None:
    assert _problems(HOST, region="eu-west-1") == [
        f"region 'eu-west-1' does not match host '{HOST}', which is in 'us-east-1': the token would be refused; "
        "leave region out"
    ]
    assert _problems("db.example.com") == [
        "region is required for host 'db.example.com' (only <cluster-id>.dsql.<region>.on.aws names carry it): pass "
        "region=..., or set AWS_REGION or a profile's region"
    ]
    alias = _resolve("db.example.com", region="us-east-2")
    assert alias.target is not None and (alias.target.token_host, alias.target.signing_region) == (
        "db.example.com",
        "us-east-2",
    )


def test_rds_host_is_refused() -> None:
    host = "mydb.cluster-abc123.us-east-1.rds.amazonaws.com"
    assert _problems(host) == [
        f"{host} is an RDS endpoint: these helpers are for Aurora DSQL (RDS tokens: sigv4_proxy.rds_token)"
    ]


def test_privatelink_private_dns_signs_for_that_host() -> None:
    spec = _resolve(PRIVATE_HOST)
    assert spec.target is not None
    assert (spec.target.token_host, spec.params["sslmode"], spec.params["sslrootcert"]) == (
        PRIVATE_HOST,
        "verify-full",
        "system",
    )
    assert "options" not in spec.params


def test_vpce_signs_for_the_cluster_host_and_names_the_cluster_in_options() -> None:
    spec = _resolve(VPCE, cluster_id=CLUSTER, options="-c search_path=app")
    assert spec.target is not None
    assert (spec.host, spec.target.token_host, spec.target.signing_region) == (VPCE, HOST, "us-east-1")
    assert spec.params["options"] == f"-c search_path=app -c amzn-cluster-id={CLUSTER}"
    # libpq takes sslrootcert=system with verify-full only: verify-ca gets the system bundle's file.
    assert (spec.params["sslmode"], spec.params["sslrootcert"]) == ("verify-ca", BUNDLE)
    assert _resolve(VPCE, cluster_id=CLUSTER, sslrootcert="/ca.pem").params["sslrootcert"] == "/ca.pem"


def test_vpce_problems() -> None:
    assert _problems(VPCE) == [
        f"{VPCE} is a VPC endpoint, which names no cluster: pass cluster_id=<the 26-character cluster id> (the token "
        "is signed for <cluster-id>.dsql.<region>.on.aws and the cluster is named in the options)"
    ]
    assert _problems(VPCE, cluster_id=CLUSTER, sslmode="verify-full") == [
        "sslmode=verify-full cannot work through a VPC endpoint host: the certificate names the cluster, not the "
        "endpoint; use sslmode=verify-ca (the default there)"
    ]
    assert _problems(VPCE, cluster_id="short") == [
        "cluster_id must be 26 lower-case letters and digits (a DSQL cluster id), got: short"
    ]
    no_bundle = Environment(system_ca_file=lambda: None)
    assert _problems(VPCE, no_bundle, cluster_id=CLUSTER) == [
        "sslmode=verify-ca needs sslrootcert=<a PEM file with Amazon Root CA 1>: no system bundle found"
    ]


def test_cluster_id_must_match_a_cluster_host() -> None:
    assert _problems(HOST, cluster_id="zyxwvutsrqponmlkjihgfedcba") == [
        f"cluster_id 'zyxwvutsrqponmlkjihgfedcba' does not match host '{HOST}': leave cluster_id out"
    ]


def test_iam_auth_off_passes_the_host_and_password_through() -> None:
    spec = _resolve("127.0.0.1", iam_auth=False, port=6543, sslmode="disable", password="pw")
    assert spec.target is None
    assert spec.params == {
        "host": "127.0.0.1",
        "user": "admin",
        "dbname": "postgres",
        "port": 6543,
        "sslmode": "disable",
        "password": "pw",
        "application_name": APP,
    }
