"""Every broken login is refused the way DSQL refuses it — FATAL, SQLSTATE 08006, `unable to accept connection,
access denied`, the cause in HINT — with our diagnosis in DETAIL. Checked on the wire (exact ErrorResponse fields)
and through psql (what a user sees)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from sigv4_proxy.credentials import Credentials
from sigv4_proxy.signing.api import presign
from sigv4_proxy.tokens import dsql_token, rds_token
from tests.emulate_dsql import rawclient
from tests.emulate_dsql.conftest import Cast, connect

psycopg = pytest.importorskip("psycopg")

ACCESS_DENIED = "unable to accept connection, access denied"


def _creds(identity: Any, *, session_token: bool = True) -> Credentials:
    return Credentials(
        identity.access_key_id, identity.secret_access_key, identity.session_token if session_token else None
    )


def _login(dsql: Any, user: str, password: str, *, sni: str | None = "", **options: Any) -> rawclient.Outcome:
    return rawclient.login(
        (dsql.listen_host, dsql.port),
        user=user,
        password=password,
        sni=dsql.host if sni == "" else sni,
        ca_file=dsql.ca_file,
        **options,
    )


def _assert_denied(outcome: rawclient.Outcome, hint_start: str) -> None:
    assert not outcome.authenticated
    assert outcome.error.get("S") == "FATAL", outcome.error
    assert outcome.error.get("C") == "08006", outcome.error
    assert outcome.error.get("M") == ACCESS_DENIED, outcome.error
    assert outcome.error.get("H", "").startswith(hint_start), outcome.error


def _hand_signed(identity: Any, host: str, region: str, action: str = "DbConnectAdmin") -> str:
    """A token from a hand-written signer: presigned as told, without dsql_token's guard rails."""
    url = presign(
        "GET",
        f"https://{host}/?Action={action}",
        credentials=_creds(identity),
        region=region,
        service="dsql",
        expires_in=900,
        now=datetime.now(timezone.utc),
    ).url
    return url[len("https://") :]


def _java_style_token(dsql: Any, identity: Any) -> str:
    """The debezium-style signer users copied: `host:5432` in the signed host and in the token."""
    return _hand_signed(identity, f"{dsql.host}:5432", dsql.region)


def test_a_good_login_for_reference(dsql: Any, cast: Cast) -> None:
    outcome = _login(dsql, "admin", dsql.token("admin", cast.admin))
    assert outcome.ssl_answer == b"S"
    assert outcome.authenticated and not outcome.error
    assert outcome.parameters["server_version"] == "16.15"


def test_expired_token(dsql: Any, cast: Cast) -> None:
    old = datetime.now(timezone.utc) - timedelta(minutes=20)
    outcome = _login(dsql, "admin", dsql.token("admin", cast.admin, expires_in=900, now=old))
    _assert_denied(outcome, "Signature expired: ")


def test_future_dated_token(dsql: Any, cast: Cast) -> None:
    ahead = datetime.now(timezone.utc) + timedelta(minutes=10)
    _assert_denied(_login(dsql, "admin", dsql.token("admin", cast.admin, now=ahead)), "Signature not yet current: ")


def test_wrong_region(dsql: Any, cast: Cast) -> None:
    token = _hand_signed(cast.admin, dsql.host, "eu-west-1")
    outcome = _login(dsql, "admin", token)
    _assert_denied(outcome, "Credential should be scoped to a valid region")
    assert dsql.region in outcome.error.get("D", "")


def test_rds_token_is_refused(dsql: Any, cast: Cast) -> None:
    token = rds_token(dsql.host, 5432, "admin", dsql.region, credentials=_creds(cast.admin))
    outcome = _login(dsql, "admin", token)
    assert outcome.error.get("C") == "08006" and outcome.error.get("M") == ACCESS_DENIED
    assert "rds-db" in outcome.error.get("D", "") + outcome.error.get("H", "")


def test_port_in_the_signed_host_is_diagnosed(dsql: Any, cast: Cast) -> None:
    outcome = _login(dsql, "admin", _java_style_token(dsql, cast.admin))
    assert outcome.error.get("C") == "08006" and outcome.error.get("M") == ACCESS_DENIED
    assert "5432" in outcome.error.get("D", ""), outcome.error


def test_missing_session_token(dsql: Any, cast: Cast, mapped_role: Any) -> None:
    role = mapped_role()
    token = dsql_token(dsql.host, dsql.region, credentials=_creds(cast.session, session_token=False))
    _assert_denied(_login(dsql, role, token), "The security token included in the request is invalid.")


@pytest.mark.parametrize(
    ("user", "admin_token", "hint"),
    [
        ("admin", False, "Wrong user to action mapping. user: admin, action: DbConnect"),
        ("approle", True, "Wrong user to action mapping. user: approle, action: DbConnectAdmin"),
    ],
)
def test_user_and_action_must_match(dsql: Any, cast: Cast, user: str, admin_token: bool, hint: str) -> None:
    token = dsql_token(dsql.host, dsql.region, admin=admin_token, credentials=_creds(cast.admin))
    outcome = _login(dsql, user, token)
    _assert_denied(outcome, hint)
    assert outcome.error["H"] == hint


def test_unmapped_principal(dsql: Any, cast: Cast, admin: Any) -> None:
    if not _role_exists(admin, "unmapped_role"):
        admin.execute("CREATE ROLE unmapped_role WITH LOGIN")
    outcome = _login(dsql, "unmapped_role", dsql.token("unmapped_role", cast.app))
    assert outcome.error.get("C") == "08006" and outcome.error.get("M") == ACCESS_DENIED
    assert "AWS IAM GRANT unmapped_role" in outcome.error.get("D", "")


def _role_exists(conn: Any, name: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone() is not None


def test_revoked_mapping_is_refused(dsql: Any, cast: Cast, mapped_role: Any) -> None:
    from tests.emulate_dsql.conftest import APP_ROLE_ARN

    role = mapped_role()
    assert _login(dsql, role, dsql.token(role, cast.app)).authenticated
    with connect(dsql, "admin", cast.admin) as admin:
        admin.execute(f"AWS IAM REVOKE {role} FROM '{APP_ROLE_ARN}'")
    outcome = _login(dsql, role, dsql.token(role, cast.app))
    assert not outcome.authenticated and outcome.error.get("M") == ACCESS_DENIED


def test_mapped_role_without_login(dsql: Any, cast: Cast, mapped_role: Any) -> None:
    role = mapped_role(login=False)
    outcome = _login(dsql, role, dsql.token(role, cast.app))
    assert not outcome.authenticated
    assert f"role {role} must have the LOGIN attribute" in outcome.error.get("H", ""), outcome.error


def test_denied_principal(dsql: Any, cast: Cast) -> None:
    outcome = _login(dsql, "admin", dsql.token("admin", cast.denied))
    _assert_denied(outcome, f"User: {cast.denied.principal_arn} is not authorized to perform: dsql:DbConnectAdmin")


def test_unknown_access_key(dsql: Any) -> None:
    stranger = Credentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    token = dsql_token(dsql.host, dsql.region, admin=True, credentials=stranger)
    _assert_denied(_login(dsql, "admin", token), "The security token included in the request is invalid.")


def test_token_over_64_kib_is_refused_before_parsing(dsql: Any) -> None:
    outcome = _login(dsql, "admin", "x" * (64 * 1024 + 1))
    assert not outcome.authenticated and outcome.error.get("M") == ACCESS_DENIED


def test_no_sni(dsql: Any, cast: Cast) -> None:
    outcome = _login(dsql, "admin", dsql.token("admin", cast.admin), sni=None)
    assert outcome.error.get("S") == "FATAL"
    assert outcome.error.get("M") == "unable to accept connection, sni was not received"


def test_another_clusters_sni(dsql: Any, cast: Cast) -> None:
    other = f"{'z' * 26}.dsql.{dsql.region}.on.aws"
    outcome = _login(dsql, "admin", dsql.token("admin", cast.admin, host=other), sni=other)
    assert outcome.error.get("M") == ACCESS_DENIED
    assert dsql.cluster_id in outcome.error.get("H", "") + outcome.error.get("D", "")


def test_plain_tcp_is_refused(dsql: Any, cast: Cast) -> None:
    outcome = _login(dsql, "admin", dsql.token("admin", cast.admin), tls="none")
    assert outcome.error.get("S") == "FATAL"
    assert outcome.error.get("M") == "unable to accept connection, SSL is required"


def test_direct_tls_login(dsql: Any, cast: Cast) -> None:
    assert _login(dsql, "admin", dsql.token("admin", cast.admin), tls="direct").authenticated


def test_privatelink_host_with_its_own_token(dsql: Any, cast: Cast) -> None:
    private = f"{dsql.cluster_id}.dsql-fnh4.{dsql.region}.on.aws"
    outcome = _login(dsql, "admin", dsql.token("admin", cast.admin, host=private), sni=private)
    assert outcome.authenticated, outcome.error
    # ... and a token for the public host is refused on the private name (the token must name that host).
    outcome = _login(dsql, "admin", dsql.token("admin", cast.admin), sni=private)
    assert not outcome.authenticated and outcome.error.get("M") == ACCESS_DENIED


def test_psycopg_user_sees_the_hint_and_the_fix(dsql: Any, cast: Cast) -> None:
    with pytest.raises(psycopg.OperationalError) as failure:
        connect(dsql, "admin", cast.admin, password=_java_style_token(dsql, cast.admin))
    text = str(failure.value)
    assert ACCESS_DENIED in text
    assert "5432" in text


def test_refusals_are_logged_without_secrets(dsql: Any, cast: Cast) -> None:
    before = len(dsql.records)
    _login(dsql, "admin", dsql.token("someone", cast.admin))
    record = dsql.wait_for_records(before + 1)[-1]
    assert record.verdict == "refused"
    assert record.user == "admin"
    assert record.access_key and "****" in record.access_key
    assert cast.admin.access_key_id not in record.line()
