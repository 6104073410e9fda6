"""DSQL login verification (sans-IO): tokens, SNI, roles and identities, with time passed in.

Golden values come from /work/shared/reference/dsql-tokens.md (botocore 1.44, AKIDEXAMPLE, 2025-01-15T12:00:00Z).
"""

from __future__ import annotations

import hashlib
import hmac
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta, timezone
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sigv4_proxy.emulate.dsql.auth import (
    MAX_TOKEN_BYTES,
    OURS,
    TEXTS,
    ClusterAddress,
    Identity,
    Refusal,
    RoleInfo,
    TokenVerdict,
    check_role,
    check_token,
    generate_identity,
    mapping_arn_for,
    parse_identity,
    principal_matches,
    resolve_sni,
)
from sigv4_proxy.signing.model import Credentials
from sigv4_proxy.tokens import dsql_token

NOW = datetime(2025, 1, 15, 12, 0, 0, tzinfo=timezone.utc)
CLUSTER = ClusterAddress("abcdefghijklmnopqrst123456", "us-east-1")
HOST = "abcdefghijklmnopqrst123456.dsql.us-east-1.on.aws"
PRIVATE_HOST = "abcdefghijklmnopqrst123456.dsql-fnh4.us-east-1.on.aws"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
SESSION_TOKEN = "FwoGZXIvYXdzEXAMPLE//token+with/slash="
ROLE_ARN = "arn:aws:iam::123456789012:role/app"
SESSION_ARN = "arn:aws:sts::123456789012:assumed-role/app/s1"
ACCESS_DENIED = "unable to accept connection, access denied"

LONG_TERM = Identity("AKIDEXAMPLE", SECRET, ROLE_ARN)
SESSION = Identity("ASIAEXAMPLE", SECRET, SESSION_ARN, SESSION_TOKEN, NOW + timedelta(hours=1))
EXPIRED_SESSION = Identity("ASIAEXPIRED1", SECRET, SESSION_ARN, SESSION_TOKEN, NOW - timedelta(minutes=1))
IDENTITIES = {i.access_key_id: i for i in (LONG_TERM, SESSION, EXPIRED_SESSION)}

# The reference's golden tokens (dsql-tokens.md §1).
GOLDEN_CONNECT = (
    f"{HOST}/?Action=DbConnect&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20250115%2F"
    "us-east-1%2Fdsql%2Faws4_request&X-Amz-Date=20250115T120000Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host"
    "&X-Amz-Signature=c2cff9121fb191e866d40a1f88c03ed01b306089221a2381e924ae23688d3ba7"
)
GOLDEN_ADMIN_CRT = (
    f"{HOST}/?Action=DbConnectAdmin&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20250115%2F"
    "us-east-1%2Fdsql%2Faws4_request&X-Amz-Date=20250115T120000Z&X-Amz-SignedHeaders=host&X-Amz-Expires=900"
    "&X-Amz-Signature=21eafa1f8c88f1d7f0065b3878e7d1b603e3f92d15eef1e4f5e9f24947e80344"
)
GOLDEN_SESSION_CRT = (
    f"{HOST}/?Action=DbConnectAdmin&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=ASIAEXAMPLE%2F20250115%2F"
    "us-east-1%2Fdsql%2Faws4_request&X-Amz-Date=20250115T120000Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host"
    "&X-Amz-Security-Token=FwoGZXIvYXdzEXAMPLE%2F%2Ftoken%2Bwith%2Fslash%3D"
    "&X-Amz-Signature=5a3fc6c24c4d3c575f5076823105207a091bb08898bd093eeab2ed90a42db0c1"
)
GOLDEN_RDS = (
    "mydb.cluster-abc123.us-east-1.rds.amazonaws.com:5432/?Action=connect&DBUser=iam_user"
    "&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20250115%2Fus-east-1%2Frds-db%2Faws4_request"
    "&X-Amz-Date=20250115T120000Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host"
    "&X-Amz-Signature=47af128a5e1e8e903608e08b421f91970486135d3b900c1524459cadb1e3e495"
)


def sign(
    host: str = HOST,
    *,
    action: str | None = "DbConnectAdmin",
    region: str = "us-east-1",
    service: str = "dsql",
    key: str = "AKIDEXAMPLE",
    secret: str = SECRET,
    session_token: str | None = None,
    expires: str = "900",
    amz_date: str = "20250115T120000Z",
    signed_host: str | None = None,
) -> str:
    """The reference's minimal signer (dsql-tokens.md §1), open to every mistake a hand-written one makes."""
    date = amz_date[:8]
    scope = f"{date}/{region}/{service}/aws4_request"
    query = {
        "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
        "X-Amz-Credential": f"{key}/{scope}",
        "X-Amz-Date": amz_date,
        "X-Amz-Expires": expires,
        "X-Amz-SignedHeaders": "host",
    }
    if action is not None:
        query["Action"] = action
    if session_token:
        query["X-Amz-Security-Token"] = session_token
    cqs = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(query.items()))
    signed = (signed_host or host).lower()
    creq = "\n".join(["GET", "/", cqs, f"host:{signed}", "", "host", hashlib.sha256(b"").hexdigest()])
    sts = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(creq.encode()).hexdigest()])
    k = ("AWS4" + secret).encode()
    for part in (date, region, service, "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    return f"{host}/?{cqs}&X-Amz-Signature={hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()}"


def check(
    token: str,
    user: str = "admin",
    *,
    now: datetime = NOW,
    token_host: str = HOST,
    denied: tuple[str, ...] = (),
    identities: dict[str, Identity] = IDENTITIES,
) -> TokenVerdict:
    return check_token(
        token, user=user, token_host=token_host, cluster=CLUSTER, identities=identities, denied=denied, now=now
    )


def refused(verdict: TokenVerdict) -> Refusal:
    assert not verdict.ok and verdict.identity is None and verdict.refusal is not None
    refusal = verdict.refusal
    assert (refusal.severity, refusal.sqlstate, refusal.message) == ("FATAL", "08006", ACCESS_DENIED)
    return refusal


# --------------------------------------------------------------------------------------------- accepted


@pytest.mark.parametrize(
    ("token", "user", "identity", "action"),
    [
        (GOLDEN_CONNECT, "app", LONG_TERM, "DbConnect"),
        (GOLDEN_ADMIN_CRT, "admin", LONG_TERM, "DbConnectAdmin"),
        (GOLDEN_SESSION_CRT, "admin", SESSION, "DbConnectAdmin"),
        (sign(session_token=SESSION_TOKEN, key="ASIAEXAMPLE"), "admin", SESSION, "DbConnectAdmin"),
        (sign(HOST.upper()), "admin", LONG_TERM, "DbConnectAdmin"),  # upper-case host signs as lower-case
    ],
    ids=["golden-connect", "golden-admin-crt-order", "golden-session-crt-order", "reference-signer", "upper-host"],
)
def test_golden_tokens_are_accepted(token: str, user: str, identity: Identity, action: str) -> None:
    verdict = check(token, user)
    assert verdict == TokenVerdict(True, identity, action, None, verdict.masked_access_key)
    assert verdict.masked_access_key == ("AKID****MPLE" if identity is LONG_TERM else "ASIA****MPLE")


def test_our_dsql_token_is_accepted_for_admin_and_role() -> None:
    credentials = Credentials("AKIDEXAMPLE", SECRET)
    admin = dsql_token(HOST, admin=True, credentials=credentials, now=NOW)
    role = dsql_token(HOST, credentials=credentials, now=NOW)
    assert check(admin, "admin").ok
    assert check(role, "app").ok
    assert check(role, "app", now=NOW + timedelta(seconds=900)).ok  # the last second of its life


@pytest.fixture(params=["crt", "pure-python"])
def botocore_at_now(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """botocore presigning at NOW with the CRT signer (its default when awscrt is installed) or the pure-Python
    one: the signer is chosen explicitly (BOTO_DISABLE_CRT in the test environment would hide the CRT one) and
    both read the clock through `get_current_datetime`."""
    pytest.importorskip("botocore")
    import botocore.auth

    def frozen(remove_tzinfo: bool = True) -> datetime:
        return NOW.replace(tzinfo=None) if remove_tzinfo else NOW

    monkeypatch.setattr(botocore.auth, "get_current_datetime", frozen)
    signer: type = botocore.auth.SigV4QueryAuth
    if request.param == "crt":
        pytest.importorskip("awscrt")
        import botocore.crt.auth

        monkeypatch.setattr(botocore.crt.auth, "get_current_datetime", frozen)
        signer = botocore.crt.auth.CrtSigV4QueryAuth
    monkeypatch.setitem(botocore.auth.AUTH_TYPE_MAPS, "v4-query", signer)
    return str(request.param)


def test_botocore_tokens_are_accepted(botocore_at_now: str) -> None:
    import boto3

    session = boto3.Session(
        aws_access_key_id="ASIAEXAMPLE", aws_secret_access_key=SECRET, aws_session_token=SESSION_TOKEN
    )
    client = session.client("dsql", region_name="us-east-1")
    admin = client.generate_db_connect_admin_auth_token(HOST, "us-east-1")
    role = client.generate_db_connect_auth_token(HOST, "us-east-1")
    # The two signers order the query differently (dsql-tokens.md §1) but sign the same.
    assert ("X-Amz-SignedHeaders=host&X-Amz-Expires=900" in admin) is (botocore_at_now == "crt")
    assert admin.endswith(GOLDEN_SESSION_CRT[GOLDEN_SESSION_CRT.index("&X-Amz-Signature=") :])
    assert check(admin, "admin").ok
    assert check(role, "app").ok
    assert refused(check(admin, "app")).hint == "Wrong user to action mapping. user: app, action: DbConnectAdmin"


def test_botocore_token_signed_now_is_accepted_now() -> None:
    boto3 = pytest.importorskip("boto3")
    client = boto3.Session(aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key=SECRET).client(
        "dsql", region_name="us-east-1"
    )
    token = client.generate_db_connect_admin_auth_token(HOST, "us-east-1")
    assert check(token, now=datetime.now(timezone.utc)).ok


def test_token_four_minutes_ahead_is_accepted() -> None:
    assert check(sign(amz_date="20250115T120400Z")).ok


def test_token_six_days_old_with_a_week_of_life_is_accepted() -> None:
    assert check(sign(amz_date="20250109T120000Z", expires="604800")).ok


# --------------------------------------------------------------------------------------------- refused


@dataclass(frozen=True)
class Case:
    id: str
    token: Callable[[], str]
    user: str = "admin"
    hint: str | None = None
    reason: str = ""
    detail_has: tuple[str, ...] = ()
    now: datetime = NOW
    token_host: str = HOST
    denied: tuple[str, ...] = ()
    identities: dict[str, Identity] = field(default_factory=lambda: IDENTITIES)


SIGNATURE_HINT = (
    "The request signature we calculated does not match the signature you provided. Check your AWS Secret "
    "Access Key and signing method. Consult the service documentation for details."
)
INVALID_TOKEN = "The security token included in the request is invalid."
CLUSTER_ARN = "arn:aws:dsql:us-east-1:123456789012:cluster/abcdefghijklmnopqrst123456"

CASES = [
    Case(
        "expired",
        sign,
        now=NOW + timedelta(minutes=20),
        hint="Signature expired: 20250115T120000Z is now earlier than 20250115T120500Z (20250115T122000Z - 15 min.)",
        reason="expired",
        detail_has=("the token expired 5 min ago",),
    ),
    Case(
        "expired-odd-lifetime",
        lambda: sign(expires="61"),
        now=NOW + timedelta(seconds=62),
        hint="Signature expired: 20250115T120000Z is now earlier than 20250115T120001Z (20250115T120102Z - 61 sec.)",
        reason="expired",
    ),
    Case(
        "future-dated",
        lambda: sign(amz_date="20250115T120600Z"),
        hint="Signature not yet current: 20250115T120600Z is still later than 20250115T120500Z "
        "(20250115T120000Z + 5 min.)",
        reason="not yet valid",
        detail_has=("X-Amz-Date is 6 min in the future",),
    ),
    Case(
        "wrong-region",
        lambda: sign(region="eu-west-1"),
        hint="Credential should be scoped to a valid region, not 'eu-west-1'.",
        reason="wrong region",
        detail_has=(
            "cluster abcdefghijklmnopqrst123456 is in us-east-1: sign with region us-east-1",
            "the credential scope region 'eu-west-1' is not the host's region 'us-east-1'",
        ),
    ),
    Case(
        "wrong-service",
        lambda: sign(service="execute-api"),
        hint="Credential should be scoped to correct service: 'dsql'.",
        reason="wrong service",
        detail_has=("the credential scope names service 'execute-api', but Aurora DSQL tokens are signed for 'dsql'",),
    ),
    Case(
        "rds-db-token",
        lambda: GOLDEN_RDS,
        user="iam_user",
        hint="Credential should be scoped to correct service: 'dsql'.",
        reason="wrong service",
        detail_has=("the token names host 'mydb.cluster-abc123.us-east-1.rds.amazonaws.com'",),
    ),
    Case(
        "port-in-signed-host",
        lambda: sign(f"{HOST}:5432"),
        hint=SIGNATURE_HINT,
        reason="signature mismatch",
        detail_has=(
            f"host:{HOST}\n",
            f"the host carries a port ('{HOST}:5432')",
            f"sign for '{HOST}' without ':5432': sigv4-proxy dsql-token --hostname {HOST}",
        ),
    ),
    Case(
        "signed-for-another-host",
        lambda: sign(PRIVATE_HOST),
        hint=SIGNATURE_HINT,
        reason="signature mismatch",
        detail_has=(f"the token names host '{PRIVATE_HOST}', but this connection is for '{HOST}'",),
    ),
    Case(
        "wrong-secret",
        lambda: sign(secret="not-the-secret-at-all"),
        hint=SIGNATURE_HINT,
        reason="signature mismatch",
        detail_has=(
            "The canonical request the emulator expected (compare it with your signer's):\nGET\n/\n"
            "Action=DbConnectAdmin&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20250115%2F"
            f"us-east-1%2Fdsql%2Faws4_request&X-Amz-Date=20250115T120000Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host"
            f"\nhost:{HOST}\n\nhost\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "The string to sign:\nAWS4-HMAC-SHA256\n20250115T120000Z\n20250115/us-east-1/dsql/aws4_request\n",
        ),
    ),
    Case(
        "missing-session-token",
        lambda: sign(key="ASIAEXAMPLE"),
        hint=INVALID_TOKEN,
        reason="session token",
        detail_has=("access key ASIA****MPLE is temporary", "has no X-Amz-Security-Token"),
    ),
    Case(
        "wrong-session-token",
        lambda: sign(key="ASIAEXAMPLE", session_token="AnotherSessionTokenEntirely"),
        hint=INVALID_TOKEN,
        reason="session token",
        detail_has=("the token's X-Amz-Security-Token is not the session token of access key ASIA****MPLE",),
    ),
    Case(
        "session-token-with-long-term-key",
        lambda: sign(session_token="AnotherSessionTokenEntirely"),
        hint=INVALID_TOKEN,
        reason="unexpected session token",
        detail_has=("access key AKID****MPLE is a long-term key",),
    ),
    Case(
        "expired-session-identity",
        lambda: sign(key="ASIAEXPIRED1", session_token=SESSION_TOKEN),
        hint='IAM authentication failed for user "admin"',
        reason="session expired",
        detail_has=("The security token included in the request is expired", "expired at 20250115T115900Z"),
    ),
    Case(
        "unknown-key",
        lambda: sign(key="AKIAUNKNOWNKEY123456"),
        hint=INVALID_TOKEN,
        reason="unknown key",
        detail_has=("access key AKIA****3456 is not one of this emulator's identities",),
    ),
    Case(
        "denied-principal",
        sign,
        denied=(ROLE_ARN,),
        hint=f"User: {ROLE_ARN} is not authorized to perform: dsql:DbConnectAdmin on resource: {CLUSTER_ARN} "
        "because no identity-based policy allows the dsql:DbConnectAdmin action",
        reason="denied principal",
        detail_has=(f"principal {ROLE_ARN} is in the emulator's --deny list",),
    ),
    Case(
        "denied-role-covers-its-sessions",
        lambda: sign(key="ASIAEXAMPLE", session_token=SESSION_TOKEN, action="DbConnect"),
        user="app",
        denied=(ROLE_ARN,),
        hint=f"User: {SESSION_ARN} is not authorized to perform: dsql:DbConnect on resource: {CLUSTER_ARN} "
        "because no identity-based policy allows the dsql:DbConnect action",
        reason="denied principal",
    ),
    Case(
        "admin-with-dbconnect",
        lambda: sign(action="DbConnect"),
        hint="Wrong user to action mapping. user: admin, action: DbConnect",
        reason="wrong action for user",
        detail_has=("the 'admin' role needs a DbConnectAdmin token",),
    ),
    Case(
        "role-with-dbconnectadmin",
        sign,
        user="reporting",
        hint="Wrong user to action mapping. user: reporting, action: DbConnectAdmin",
        reason="wrong action for user",
        detail_has=("role 'reporting' needs a DbConnect token",),
    ),
    Case(
        "rds-action",
        lambda: sign(action="connect"),
        hint="Action 'connect' is not DbConnect or DbConnectAdmin",
        reason="bad Action",
    ),
    Case(
        "no-action",
        lambda: sign(action=None),
        hint="Action '(missing)' is not DbConnect or DbConnectAdmin",
        reason="bad Action",
    ),
    Case(
        "expires-604801",
        lambda: sign(expires="604801"),
        hint='IAM authentication failed for user "admin"',
        reason="X-Amz-Expires over a week",
        detail_has=("X-Amz-Expires 604801 is over the maximum of 604800 seconds (a week)",),
    ),
    Case(
        "older-than-a-week",
        lambda: sign(amz_date="20250107T120000Z", expires="604800"),
        user="app\x1b[2J",
        hint='IAM authentication failed for user "app\\x1b[2J"',
        reason="token older than a week",
        detail_has=("the token was signed at 20250107T120000Z, more than a week (604800 seconds) ago",),
    ),
    Case(
        "expires-not-a-number",
        lambda: sign(expires="15m"),
        hint="X-Amz-Expires should be a number",
        reason="bad X-Amz-Expires",
    ),
    Case(
        "too-long",
        lambda: sign() + "&x=" + "a" * MAX_TOKEN_BYTES,
        hint="the password is longer than 65536 bytes; an authentication token is a few hundred",
        reason="token too long",
    ),
    Case(
        "64KiB-plus-one",
        lambda: "a" * (MAX_TOKEN_BYTES + 1),
        hint="the password is longer than 65536 bytes; an authentication token is a few hundred",
        reason="token too long",
    ),
    Case(
        "64KiB-plus-one-in-utf8",
        lambda: "é" * (MAX_TOKEN_BYTES // 2) + "a",
        hint="the password is longer than 65536 bytes; an authentication token is a few hundred",
        reason="token too long",
    ),
    Case(
        "garbage",
        lambda: "hunter2",
        hint="the password is not an Aurora DSQL authentication token "
        "(expected <host>/?Action=DbConnect&X-Amz-Algorithm=...&X-Amz-Signature=...)",
        reason="not a token",
    ),
    Case(
        "host-and-query-without-signature",
        lambda: f"{HOST}/?Action=DbConnectAdmin",
        hint="the password is not an Aurora DSQL authentication token "
        "(expected <host>/?Action=DbConnect&X-Amz-Algorithm=...&X-Amz-Signature=...)",
        reason="not a token",
    ),
    Case(
        "missing-signature",
        lambda: sign().partition("&X-Amz-Signature=")[0],
        hint="AWS query-string parameters must include 'X-Amz-Signature'.",
        reason="malformed token",
        detail_has=("required parameter X-Amz-Signature is missing",),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_refusals(case: Case) -> None:
    verdict = check(
        case.token(),
        case.user,
        now=case.now,
        token_host=case.token_host,
        denied=case.denied,
        identities=case.identities,
    )
    refusal = refused(verdict)
    assert refusal.hint == case.hint
    assert refusal.reason == case.reason
    for text in case.detail_has:
        assert text in (refusal.detail or "")


def test_exactly_64KiB_is_not_refused_for_its_size() -> None:
    token = sign() + "&x=" + "a" * (MAX_TOKEN_BYTES - len(sign()) - 3)
    assert len(token.encode()) == MAX_TOKEN_BYTES
    assert refused(check(token)).reason == "signature mismatch"  # the extra parameter is not signed


def test_expired_verdict_names_action_and_masked_key() -> None:
    verdict = check(sign(), now=NOW + timedelta(hours=1))
    assert (verdict.action, verdict.masked_access_key) == ("DbConnectAdmin", "AKID****MPLE")


def test_fields_are_dsql_shaped() -> None:
    refusal = refused(check(sign(action="DbConnect")))
    assert refusal.fields() == [
        ("S", "FATAL"),
        ("V", "FATAL"),
        ("C", "08006"),
        ("M", ACCESS_DENIED),
        ("D", refusal.detail),
        ("H", "Wrong user to action mapping. user: admin, action: DbConnect"),
    ]


def _secrets_cases() -> list[tuple[str, str, Identity | None]]:
    return [
        ("session", sign(key="ASIAEXAMPLE", session_token=SESSION_TOKEN, secret="wrong-secret-key-here"), SESSION),
        ("expired-session", sign(key="ASIAEXPIRED1", session_token=SESSION_TOKEN), EXPIRED_SESSION),
        ("long-term-with-token", sign(session_token=SESSION_TOKEN, action="DbConnect"), LONG_TERM),
        ("port", sign(f"{HOST}:5432", session_token=SESSION_TOKEN, key="ASIAEXAMPLE"), SESSION),
        ("wrong-region", sign(region="eu-west-1", session_token=SESSION_TOKEN, key="ASIAEXAMPLE"), SESSION),
        (
            "garbage-token",
            "x/?X-Amz-Security-Token=" + quote(SESSION_TOKEN, safe="") + "&X-Amz-Signature=" + "f" * 64,
            None,
        ),
    ]


@pytest.mark.parametrize(("token", "identity"), [c[1:] for c in _secrets_cases()], ids=[c[0] for c in _secrets_cases()])
@pytest.mark.parametrize("user", ["admin", "app"])
def test_no_secret_in_any_refusal(token: str, identity: Identity | None, user: str) -> None:
    refusal = refused(check(token, user))
    signature = token.rpartition("X-Amz-Signature=")[2]
    secrets = [SECRET, SESSION_TOKEN, quote(SESSION_TOKEN, safe="-_.~"), signature, token]
    for name in ("hint", "detail", "reason", "message"):
        value = getattr(refusal, name) or ""
        for secret in secrets:
            assert secret not in value, (name, secret[:6])
    assert "AKIDEXAMPLE" not in refusal.reason


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(exclude_categories=()), max_size=300))  # lone surrogates too
def test_garbage_never_raises(text: str) -> None:
    verdict = check(text)
    assert not verdict.ok
    assert verdict.refusal is not None and verdict.refusal.sqlstate == "08006"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([*sign().replace("/?", "&").split("&"), "%", "%zz", "=", "/", "?", "#", ":5432"])))
def test_token_shaped_garbage_never_raises(pieces: list[str]) -> None:
    verdict = check("&".join(pieces).replace("&", "/?", 1))
    assert verdict.ok or verdict.refusal is not None


# ------------------------------------------------------------------------------------------------- SNI


@pytest.mark.parametrize(
    ("sni", "options_cluster_id", "expected"),
    [
        (HOST, None, HOST),
        (HOST.upper() + ".", None, HOST),
        (PRIVATE_HOST, None, PRIVATE_HOST),
        ("ABCDEFGHIJKLMNOPQRST123456.DSQL-FNH4.US-EAST-1.ON.AWS", None, PRIVATE_HOST),
        ("vpce-0123456789abcdef0-abcdefgh.dsql-fnh4.us-east-1.vpce.amazonaws.com", "abcdefghijklmnopqrst123456", HOST),
        (
            "vpce-0123456789abcdef0-abcdefgh-us-east-1a.dsql-fnh4.us-east-1.vpce.amazonaws.com.",
            "ABCDEFGHIJKLMNOPQRST123456",
            HOST,
        ),
        (HOST, "ignoredbecausethehostnamesit", HOST),
    ],
    ids=["public", "case-and-dot", "privatelink", "privatelink-case", "vpce", "vpce-az", "public-ignores-options"],
)
def test_resolve_sni_accepts(sni: str, options_cluster_id: str | None, expected: str) -> None:
    assert resolve_sni(sni, CLUSTER, options_cluster_id=options_cluster_id) == expected
    assert CLUSTER.accepts_sni(sni)


@pytest.mark.parametrize("sni", [None, ""])
def test_no_sni_is_dsqls_refusal(sni: str | None) -> None:
    refusal = resolve_sni(sni, CLUSTER, options_cluster_id=None)
    assert isinstance(refusal, Refusal)
    assert (refusal.severity, refusal.sqlstate, refusal.message, refusal.hint) == (
        "FATAL",
        "08006",
        "unable to accept connection, sni was not received",
        None,
    )
    assert refusal.reason == "no TLS server name (SNI)"
    assert refusal.fields()[:4] == [
        ("S", "FATAL"),
        ("V", "FATAL"),
        ("C", "08006"),
        ("M", "unable to accept connection, sni was not received"),
    ]


SERVES = f"this endpoint serves cluster abcdefghijklmnopqrst123456 in us-east-1 ({HOST}), not "


@pytest.mark.parametrize(
    ("sni", "options_cluster_id", "hint"),
    [
        (
            "zzzzzzzzzzzzzzzzzzzzzzzzzz.dsql.us-east-1.on.aws",
            None,
            "the server name 'zzzzzzzzzzzzzzzzzzzzzzzzzz.dsql.us-east-1.on.aws'",
        ),
        (
            "abcdefghijklmnopqrst123456.dsql.eu-west-1.on.aws",
            None,
            "the server name 'abcdefghijklmnopqrst123456.dsql.eu-west-1.on.aws'",
        ),
        (
            "zzzzzzzzzzzzzzzzzzzzzzzzzz.dsql-fnh4.us-east-1.on.aws",
            None,
            "the server name 'zzzzzzzzzzzzzzzzzzzzzzzzzz.dsql-fnh4.us-east-1.on.aws'",
        ),
        ("localhost", None, "the server name 'localhost'"),
        ("evil\x1b]52;c;AAAA\x07.example", None, "the server name 'evil\\x1b]52;c;aaaa\\x07.example'"),
        (
            "vpce-0abc-x.dsql-fnh4.us-east-1.vpce.amazonaws.com",
            "zzzzzzzzzzzzzzzzzzzzzzzzzz",
            "amzn-cluster-id 'zzzzzzzzzzzzzzzzzzzzzzzzzz'",
        ),
        (
            "vpce-0abc-x.dsql-fnh4.eu-west-1.vpce.amazonaws.com",
            "abcdefghijklmnopqrst123456",
            "the server name 'vpce-0abc-x.dsql-fnh4.eu-west-1.vpce.amazonaws.com'",
        ),
        (
            "abcdefghijklmnopqrst123456.extra.dsql.us-east-1.on.aws",
            None,
            "the server name 'abcdefghijklmnopqrst123456.extra.dsql.us-east-1.on.aws'",
        ),
        (
            "vpce-0abc-x.dsql.us-east-1.vpce.amazonaws.com",
            "abcdefghijklmnopqrst123456",
            "the server name 'vpce-0abc-x.dsql.us-east-1.vpce.amazonaws.com'",
        ),
    ],
    ids=[
        "other-id",
        "other-region",
        "other-privatelink",
        "localhost",
        "control-chars",
        "vpce-other-id",
        "vpce-other-region",
        "cluster-id-then-more-labels",
        "vpce-of-the-management-api",
    ],
)
def test_sni_of_another_cluster_is_refused(sni: str, options_cluster_id: str | None, hint: str) -> None:
    refusal = resolve_sni(sni, CLUSTER, options_cluster_id=options_cluster_id)
    assert isinstance(refusal, Refusal)
    assert (refusal.sqlstate, refusal.message, refusal.hint) == ("08006", ACCESS_DENIED, SERVES + hint)
    assert (
        refusal.detail
        == f"connect with host={HOST} (hostaddr=<address> to reach this emulator) and sign the token for it"
    )
    assert refusal.reason == "server name of another cluster"
    assert not CLUSTER.accepts_sni(sni) or options_cluster_id is not None


def test_vpce_without_cluster_id_is_refused() -> None:
    refusal = resolve_sni("vpce-0abc-x.dsql-fnh4.us-east-1.vpce.amazonaws.com", CLUSTER, options_cluster_id=None)
    assert isinstance(refusal, Refusal)
    assert refusal.hint == (
        "a connection through a VPC endpoint must name its cluster: options=-c amzn-cluster-id=<cluster-id>"
    )


def test_privatelink_token_is_signed_for_the_privatelink_host() -> None:
    token_host = resolve_sni(PRIVATE_HOST, CLUSTER, options_cluster_id=None)
    assert token_host == PRIVATE_HOST
    assert check(sign(PRIVATE_HOST), token_host=PRIVATE_HOST).ok
    refusal = refused(check(sign(HOST), token_host=PRIVATE_HOST))
    assert refusal.reason == "signature mismatch"
    assert f"the token names host '{HOST}', but this connection is for '{PRIVATE_HOST}'" in (refusal.detail or "")


def test_cluster_address_normalises_and_names_its_resource() -> None:
    cluster = ClusterAddress("ABCDEFGHIJKLMNOPQRST123456", "US-EAST-1")
    assert cluster.public_host == HOST
    assert cluster.resource_arn("123456789012") == CLUSTER_ARN


# ----------------------------------------------------------------------------------------------- roles


def role(name: str = "reporting", *, exists: bool = True, login: bool = True, arns: tuple[str, ...] = ()) -> RoleInfo:
    return RoleInfo(name, exists, login, frozenset(arns))


@pytest.mark.parametrize(
    ("user", "identity", "info"),
    [
        ("admin", LONG_TERM, None),
        ("reporting", LONG_TERM, role(arns=(ROLE_ARN,))),
        ("reporting", SESSION, role(arns=(ROLE_ARN,))),
        ("reporting", SESSION, role(arns=("arn:aws:iam::123456789012:role/team/app",))),
        ("reporting", LONG_TERM, role(arns=("arn:aws:iam::123456789012:role/other", ROLE_ARN))),
    ],
    ids=["admin-needs-no-mapping", "role-arn", "assumed-role-session", "role-with-path", "one-of-many"],
)
def test_check_role_accepts(user: str, identity: Identity, info: RoleInfo | None) -> None:
    assert check_role(user, identity, info, CLUSTER) is None


@pytest.mark.parametrize(
    ("identity", "info", "hint", "reason", "detail"),
    [
        (
            LONG_TERM,
            None,
            "Role reporting does not exist",
            "role does not exist",
            f"as admin: CREATE ROLE reporting WITH LOGIN; AWS IAM GRANT reporting TO '{ROLE_ARN}'",
        ),
        (
            SESSION,
            role(exists=False),
            "Role reporting does not exist",
            "role does not exist",
            f"as admin: CREATE ROLE reporting WITH LOGIN; AWS IAM GRANT reporting TO '{ROLE_ARN}'",
        ),
        (
            SESSION,
            role(arns=("arn:aws:iam::123456789012:role/other",)),
            f"IAM principal {SESSION_ARN} is not mapped to role reporting",
            "principal not mapped to role",
            f"as admin: AWS IAM GRANT reporting TO '{ROLE_ARN}' (map the IAM role ARN, not the assumed-role session "
            "ARN)",
        ),
        (
            LONG_TERM,
            role(arns=("arn:aws:iam::210987654321:role/app",)),
            f"IAM principal {ROLE_ARN} is not mapped to role reporting",
            "principal not mapped to role",
            None,
        ),
        (
            LONG_TERM,
            role(login=False, arns=(ROLE_ARN,)),
            "role reporting must have the LOGIN attribute",
            "role without LOGIN",
            "as admin: ALTER ROLE reporting WITH LOGIN",
        ),
    ],
    ids=["missing", "not-existing", "unmapped", "other-account", "no-login"],
)
def test_check_role_refuses(
    identity: Identity, info: RoleInfo | None, hint: str, reason: str, detail: str | None
) -> None:
    refusal = check_role("reporting", identity, info, CLUSTER)
    assert refusal is not None
    assert (refusal.severity, refusal.sqlstate, refusal.message) == ("FATAL", "08006", ACCESS_DENIED)
    assert (refusal.hint, refusal.reason) == (hint, reason)
    if detail is not None:
        assert refusal.detail == detail


@pytest.mark.parametrize(
    ("mapping", "principal", "matches"),
    [
        (ROLE_ARN, ROLE_ARN, True),
        (ROLE_ARN, SESSION_ARN, True),
        ("arn:aws:iam::123456789012:role/a/b/app", SESSION_ARN, True),
        ("arn:aws:iam::123456789012:role/a/app", ROLE_ARN, True),
        ("arn:aws:iam::123456789012:role/other", SESSION_ARN, False),
        ("arn:aws:iam::210987654321:role/app", SESSION_ARN, False),
        ("arn:aws-cn:iam::123456789012:role/app", SESSION_ARN, False),
        ("arn:aws:iam::123456789012:user/app", "arn:aws:iam::123456789012:user/app", True),
        ("arn:aws:iam::123456789012:user/app", SESSION_ARN, False),
        ("arn:aws:iam::123456789012:user/app", ROLE_ARN, False),
        (SESSION_ARN, "arn:aws:sts::123456789012:assumed-role/app/s2", False),
        ("not an arn", SESSION_ARN, False),
        (ROLE_ARN, "arn:aws:sts::123456789012:assumed-role/application/s1", False),
    ],
)
def test_principal_matches(mapping: str, principal: str, matches: bool) -> None:
    assert principal_matches(mapping, principal) is matches


def test_mapping_arn_for() -> None:
    assert mapping_arn_for(SESSION_ARN) == ROLE_ARN
    assert mapping_arn_for(ROLE_ARN) == ROLE_ARN
    assert mapping_arn_for("arn:aws:iam::123456789012:user/u") == "arn:aws:iam::123456789012:user/u"


# ------------------------------------------------------------------------------------------- identities


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (f"AKIDEXAMPLE:{SECRET}:{ROLE_ARN}", Identity("AKIDEXAMPLE", SECRET, ROLE_ARN)),
        (
            f"  AKIDEXAMPLE:{SECRET}:arn:aws:iam::123456789012:user/path/u\n",
            Identity("AKIDEXAMPLE", SECRET, "arn:aws:iam::123456789012:user/path/u"),
        ),
        (
            f"ASIAEXAMPLE:{SECRET}:{SESSION_ARN}:{SESSION_TOKEN}",
            Identity("ASIAEXAMPLE", SECRET, SESSION_ARN, SESSION_TOKEN),
        ),
        (
            f"ASIAEXAMPLE:{SECRET}:{SESSION_ARN}:{SESSION_TOKEN}:20250115T130000Z",
            Identity("ASIAEXAMPLE", SECRET, SESSION_ARN, SESSION_TOKEN, NOW + timedelta(hours=1)),
        ),
        (
            f"AKIDEXAMPLE:{SECRET}:arn:aws-us-gov:iam::123456789012:role/a/b/c",
            Identity("AKIDEXAMPLE", SECRET, "arn:aws-us-gov:iam::123456789012:role/a/b/c"),
        ),
    ],
    ids=["role", "user-with-path", "session", "session-expiring", "gov-partition"],
)
def test_parse_identity(spec: str, expected: Identity) -> None:
    identity = parse_identity(spec)
    assert identity == expected
    assert identity.spec() == spec.strip()


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        (f"AKIDEXAMPLE:{SECRET}", "2 colon-separated fields"),
        (f"AKIDEXAMPLE:{SECRET}:app", "3 colon-separated fields"),
        (f"AKIDEXAMPLE:{SECRET}:{SESSION_ARN}:{SESSION_TOKEN}:20250115T130000Z:x", "11 colon-separated fields"),
        (f"AKID EXAMPLE:{SECRET}:{ROLE_ARN}", "the access key id (first field) must be 1 to 128 letters and digits"),
        (f":{SECRET}:{ROLE_ARN}", "the access key id (first field)"),
        (f"AKIDEXAMPLE::{ROLE_ARN}", "the secret access key (second field)"),
        (f"AKIDEXAMPLE:{SECRET}:arn:aws:iam::12345:role/app", "the account in the principal ARN must be 12 digits"),
        (f"AKIDEXAMPLE:{SECRET}:arn:aws:iam:us-east-1:123456789012:role/app", "an IAM principal ARN has no region"),
        (f"AKIDEXAMPLE:{SECRET}:arn:aws:s3::123456789012:bucket/x", "the principal ARN must look like"),
        (f"AKIDEXAMPLE:{SECRET}:arn:aws:iam::123456789012:assumed-role/app/s", "the principal ARN must look like"),
        (f"AKIDEXAMPLE:{SECRET}:arn:aws:sts::123456789012:role/app", "the principal ARN must look like"),
        (f"AKIDEXAMPLE:{SECRET}:arn:aws:sts::123456789012:assumed-role/app", "the principal ARN must look like"),
        (
            f"AKIDEXAMPLE:{SECRET}:nra:aws:iam::123456789012:role/app",
            "principal ARN (not an ARN): the principal ARN must",
        ),
        (f"ASIAEXAMPLE:{SECRET}:{SESSION_ARN}:", "the session token (after the ARN)"),
        (
            f"ASIAEXAMPLE:{SECRET}:{SESSION_ARN}:{SESSION_TOKEN}:2025-01-15",
            "EXPIRES '2025-01-15' is not yyyymmddTHHMMSSZ",
        ),
        (f"ASIAEXAMPLE:{SECRET}:{SESSION_ARN}:{SESSION_TOKEN}:20251315T130000Z", "is not yyyymmddTHHMMSSZ"),
        # The secret in the ARN's place (fields shifted): never quoted.
        (f"AKIDEXAMPLE:{ROLE_ARN}:{SECRET}", "principal ARN (not an ARN)"),
    ],
)
def test_parse_identity_refuses_without_quoting_secrets(spec: str, problem: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_identity(spec)
    message = str(caught.value)
    assert problem in message
    assert message.startswith("invalid identity: ")
    assert message.endswith("; expected AKID:SECRET:PRINCIPAL_ARN[:SESSION_TOKEN[:EXPIRES]]")
    assert SECRET not in message and SESSION_TOKEN not in message


def test_identity_repr_and_masked_hide_secrets() -> None:
    shown = repr(SESSION) + SESSION.masked() + str(SESSION.credentials)
    assert SECRET not in shown and SESSION_TOKEN not in shown
    assert LONG_TERM.masked() == f"AKID****MPLE ({ROLE_ARN})"


def test_generate_identity() -> None:
    plain = generate_identity()
    assert plain.generated and plain.access_key_id.startswith("AKIA") and len(plain.access_key_id) == 20
    assert plain.principal_arn == "arn:aws:iam::123456789012:role/dsql-emulator"
    assert plain.session_token is None and plain.expires_at is None
    assert parse_identity(plain.spec()) == Identity(plain.access_key_id, plain.secret_access_key, plain.principal_arn)

    session = generate_identity(account="210987654321", role="app", session=True, expires_at=NOW)
    assert session.access_key_id.startswith("ASIA") and session.session_token
    assert session.principal_arn == "arn:aws:sts::210987654321:assumed-role/app/sigv4-proxy-emulator"
    assert principal_matches("arn:aws:iam::210987654321:role/app", session.principal_arn)
    assert parse_identity(session.spec()).expires_at == NOW
    assert generate_identity().access_key_id != plain.access_key_id

    token = dsql_token(HOST, admin=True, credentials=session.credentials, now=NOW - timedelta(minutes=1))
    verdict = check(token, identities={session.access_key_id: session}, now=NOW - timedelta(seconds=30))
    assert verdict.ok and verdict.identity == session


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"account": "12345"}, "account must be 12 digits"),
        ({"role": "has space"}, "role must be an IAM role name"),
        ({"expires_at": NOW}, "expires_at needs session=True"),
    ],
)
def test_generate_identity_refuses(kwargs: dict[str, object], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        generate_identity(**kwargs)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------------- texts


def test_every_text_has_a_source_and_ours_are_marked() -> None:
    dsql_own = {"access_denied", "no_sni", "wrong_action", "role_missing", "iam_auth_failed", "signature_expired"}
    for name, text in TEXTS.items():
        assert text.source, name
        if name.startswith("detail_"):
            assert text.source == OURS, name
        if name in dsql_own:
            assert OURS not in text.source, name


def test_refusal_is_a_frozen_record() -> None:
    assert [f.name for f in fields(Refusal)] == ["sqlstate", "message", "hint", "detail", "reason", "severity"]


@pytest.fixture(autouse=True)
def _protocol_stand_in(monkeypatch: pytest.MonkeyPatch) -> None:
    """`Refusal.fields()` uses helper P's `pg.protocol.error_fields`; a stand-in of its interface when absent."""
    try:
        import sigv4_proxy.pg.protocol  # noqa: F401
    except ImportError:
        module = types.ModuleType("sigv4_proxy.pg.protocol")

        def error_fields(
            severity: str, sqlstate: str, message: str, *, detail: str | None = None, hint: str | None = None
        ) -> list[tuple[str, str]]:
            items = [("S", severity), ("V", severity), ("C", sqlstate), ("M", message)]
            return items + [(k, v) for k, v in (("D", detail), ("H", hint)) if v is not None]

        module.error_fields = error_fields  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, "sigv4_proxy.pg.protocol", module)


@pytest.mark.parametrize(
    "token",
    [
        sign().replace("Action=", "Action=\ud800"),
        sign(session_token="PLACEHOLDER").replace("PLACEHOLDER", "\ud800" * 8),
        "\x00/?\x00",
        f"https://{HOST}/?" + sign().partition("?")[2],
        sign().replace("X-Amz-Date=20250115T120000Z", "X-Amz-Date=99991231T235959Z"),
        sign().replace("X-Amz-Expires=900", "X-Amz-Expires=" + "9" * 5000),
    ],
    ids=["surrogate-in-query", "surrogate-session-token", "nul", "scheme", "year-9999", "huge-expires"],
)
def test_odd_tokens_are_refused_without_raising(token: str) -> None:
    refused(check(token))


def test_the_host_written_before_the_query_is_not_what_is_checked() -> None:
    """The signature is checked against the connection's host (the SNI); the host the token prints is only
    diagnosed: a token signed for the right host passes whatever it prints (DSQL's handling is not recorded)."""
    query = sign().partition("/?")[2]
    assert check(f"{HOST}:5432/?{query}").ok
    assert check(f"elsewhere\ud800/?{query}").ok


def test_identity_credentials_are_built_once() -> None:
    assert LONG_TERM.credentials is LONG_TERM.credentials
    assert LONG_TERM.credentials == Credentials("AKIDEXAMPLE", SECRET)
