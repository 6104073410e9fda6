"""Targets and tokens, without sockets: where the proxy dials, what host the token names, which action it signs."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from sigv4_proxy.credentials import StaticCredentialProvider
from sigv4_proxy.pgproxy.config import PgProxyConfig, Target
from sigv4_proxy.pgproxy.tokens import TokenMinter, diagnose
from sigv4_proxy.pgproxy.upstream import startup_params
from sigv4_proxy.signing.model import Credentials
from sigv4_proxy.tokens import parse_token

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
CREDENTIALS = Credentials("AKIDEXAMPLE1234567890", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
CLUSTER = "abcdefghijklmnopqrstuvwxyz.dsql.us-east-1.on.aws"
VPCE = "vpce-0123456789abcdef0-abcdefgh.dsql-fnh4.us-east-1.vpce.amazonaws.com"
RDS = "mydb.cluster-c9akciq32.eu-west-1.rds.amazonaws.com"


def minter(expires_in: int = 900) -> TokenMinter:
    return TokenMinter(StaticCredentialProvider(CREDENTIALS), expires_in=expires_in, now=lambda: NOW)


def test_listen_ports_count_up_from_the_listen_port_unless_a_target_names_its_own() -> None:
    config = PgProxyConfig(
        targets=(
            Target("a.dsql.us-east-1.on.aws"),
            Target("b.dsql.us-east-1.on.aws", listen_port=7000),
            Target(CLUSTER),
        ),
        listen_port=5432,
    )
    assert [config.listen_port_of(i) for i in range(3)] == [5432, 7000, 5434]
    assert PgProxyConfig(targets=(Target(CLUSTER), Target(CLUSTER)), listen_port=0).listen_port_of(1) == 0


def test_hostaddr_changes_where_the_proxy_dials_not_what_it_names() -> None:
    target = Target(CLUSTER, hostaddr="127.0.0.1", hostaddr_port=6000)
    assert (target.dial_host, target.dial_port, target.token_host) == ("127.0.0.1", 6000, CLUSTER)
    assert Target(CLUSTER, port=5433, hostaddr="10.0.0.5").dial_port == 5433
    assert (Target(CLUSTER).dial_host, Target(CLUSTER).dial_port) == (CLUSTER, 5432)


def test_dsql_admin_gets_dbconnectadmin_and_other_users_dbconnect() -> None:
    admin = parse_token(minter().mint(Target(CLUSTER), "admin", CREDENTIALS))
    app = parse_token(minter().mint(Target(CLUSTER), "app_reader", CREDENTIALS))
    assert (admin.action, app.action) == ("DbConnectAdmin", "DbConnect")
    assert admin.hostname == CLUSTER and admin.port is None  # DSQL signs the bare host
    assert (admin.scope_service, admin.scope_region, admin.expires) == ("dsql", "us-east-1", "900")


def test_privatelink_without_private_dns_signs_for_the_cluster_host_and_names_the_cluster_in_options() -> None:
    target = Target(VPCE, cluster_id="abcdefghijklmnopqrstuvwxyz")
    token = parse_token(minter().mint(target, "admin", CREDENTIALS))
    assert token.hostname == CLUSTER
    assert target.dial_host == VPCE  # TLS and SNI go to the endpoint's own name
    params = startup_params(target, {"user": "admin", "options": "-c search_path=app"})
    assert params["options"] == "-c search_path=app -c amzn-cluster-id=abcdefghijklmnopqrstuvwxyz"
    assert startup_params(Target(CLUSTER), {"user": "admin"}) == {"user": "admin"}


def test_rds_token_signs_host_port_and_the_user_and_never_lives_past_900_seconds() -> None:
    token = parse_token(minter(expires_in=3600).mint(Target(RDS, port=5433, kind="rds"), "iam_user", CREDENTIALS))
    assert (token.host, token.action, token.db_user) == (f"{RDS}:5433", "connect", "iam_user")
    assert (token.scope_service, token.scope_region, token.expires) == ("rds-db", "eu-west-1", "900")


def test_a_region_the_host_does_not_carry_must_be_given() -> None:
    with pytest.raises(ValueError, match=r"no region for db\.internal"):
        Target("db.internal").signing_region  # noqa: B018
    assert Target("db.internal", region="eu-central-1").signing_region == "eu-central-1"


def test_diagnosis_of_a_good_token_points_at_iam_and_the_role_mapping_without_the_token() -> None:
    token = minter().mint(Target(CLUSTER), "app_reader", CREDENTIALS)
    lines = diagnose(token, user="app_reader", now=NOW + timedelta(seconds=5))
    assert len(lines) == 1
    assert "passed every inspect check" in lines[0]
    assert "dsql:DbConnect on this cluster" in lines[0]
    assert "role 'app_reader' exists with LOGIN and is mapped" in lines[0]
    assert "AKID****7890" in lines[0]
    assert parse_token(token).signature not in lines[0] and CREDENTIALS.secret_access_key not in lines[0]


def test_diagnosis_of_an_expired_token_names_the_expiry() -> None:
    token = minter(expires_in=60).mint(Target(CLUSTER), "admin", CREDENTIALS)
    lines = diagnose(token, user="admin", now=NOW + timedelta(hours=2))
    assert any("expired" in line.lower() for line in lines), lines
