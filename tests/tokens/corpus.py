"""A corpus of broken IAM tokens, one per real-world mistake, each made the way the broken signer makes it.

`hand_signed` is a deliberately configurable *broken* signer (for tests only): it signs whatever canonical
request its options describe — the port in the host, the query unsorted or unencoded, the session token added
after signing — using the core's HMAC primitives, so the signature is exactly what that signer would produce.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote

from sigv4_proxy import dsql_token, presign, rds_token
from sigv4_proxy.signing import canonical, v4
from sigv4_proxy.signing.model import EMPTY_SHA256, V4, Credentials
from tests.tokens.helpers import ACCESS_KEY, NOW, SECRET, TEMP_KEY

HOST = "abc123.dsql.us-east-1.on.aws"
RDS_HOST = "mydb.c9akciq32.us-east-1.rds.amazonaws.com"
SESSION_TOKEN = "FwoGZXIvYXdzEBYaDH+kc/8example/token=="
LONG = Credentials(ACCESS_KEY, SECRET)
TEMP = Credentials(TEMP_KEY, SECRET, SESSION_TOKEN)


def _enc(text: str) -> str:
    return quote(text, safe="-_.~")


def hand_signed(
    *,
    token_host: str = HOST,
    signed_host: str | None = None,
    params: list[tuple[str, str]] | None = None,
    credentials: Credentials = LONG,
    region: str = "us-east-1",
    key_region: str | None = None,
    service: str = "dsql",
    key_service: str | None = None,
    now: datetime = NOW,
    expires: str = "900",
    sort: bool = True,
    encode: bool = True,
    sign_session_token: bool = True,
    payload_hash: str = EMPTY_SHA256,
    method: str = "GET",
    prefix: str = "",
    lower_escapes: bool = False,
) -> str:
    """A token from a hand-written signer; every option is one way such signers go wrong."""
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    scope = f"{amz_date[:8]}/{region}/{service}/aws4_request"
    pairs = list(params if params is not None else [("Action", "DbConnect")])
    pairs += [
        ("X-Amz-Algorithm", V4),
        ("X-Amz-Credential", f"{credentials.access_key_id}/{scope}"),
        ("X-Amz-Date", amz_date),
        ("X-Amz-Expires", expires),
        ("X-Amz-SignedHeaders", "host"),
    ]
    token = [("X-Amz-Security-Token", credentials.session_token)] if credentials.session_token else []
    signed = pairs + (token if sign_session_token else [])
    encoded = [(_enc(k), _enc(v)) if encode else (k, v) for k, v in signed]
    if lower_escapes:
        encoded = [(k, re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), v)) for k, v in encoded]
    query = "&".join(f"{k}={v}" for k, v in (sorted(encoded) if sort else encoded))
    creq = canonical.canonical_request(method, "/", query, f"host:{signed_host or token_host}\n", "host", payload_hash)
    sts = v4.string_to_sign(V4, amz_date, scope, creq)
    key = v4.derive_signing_key(
        credentials.secret_access_key, amz_date[:8], key_region or region, key_service or service
    )
    signature = v4.signature(key, sts)
    written = [(_enc(k), _enc(v)) if encode else (k, v) for k, v in pairs + token]
    if lower_escapes:
        written = [(k, re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), v)) for k, v in written]
    return f"{prefix}{token_host}/?" + "&".join(f"{k}={v}" for k, v in written) + f"&X-Amz-Signature={signature}"


def good_dsql(**kwargs: object) -> str:
    return dsql_token(HOST, credentials=kwargs.pop("credentials", LONG), now=NOW, **kwargs)  # type: ignore[arg-type]


def presigned_for(
    host: str,
    query: str,
    *,
    service: str,
    region: str = "us-east-1",
    credentials: Credentials = LONG,
    headers: dict[str, str] | None = None,
) -> str:
    url = presign(
        "GET",
        f"https://{host}/?{query}",
        credentials=credentials,
        region=region,
        service=service,
        now=NOW,
        headers=headers,
    ).url
    return url[len("https://") :]


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[], str]
    expected: frozenset[str]  # error and warning codes, exactly
    user: str | None = None
    hypothesis: str | None = None  # what --verify must find (None: signature consistent or not checked)
    now: datetime = NOW + timedelta(minutes=1)


def _case(
    name: str,
    make: Callable[[], str],
    *expected: str,
    user: str | None = None,
    hypothesis: str | None = None,
    now: datetime = NOW + timedelta(minutes=1),
) -> Case:
    return Case(name, make, frozenset(expected), user, hypothesis, now)


CORPUS: list[Case] = [
    # --- the mistakes from the DSQL load-test story --------------------------------------------------------
    _case("java signer: host:port signed and written", lambda: hand_signed(token_host=f"{HOST}:5432"), "port_in_host"),
    _case(
        "host:port signed, bare host written",
        lambda: hand_signed(signed_host=f"{HOST}:5432"),
        hypothesis="signed_host_with_port",
    ),
    _case(
        "temporary key without X-Amz-Security-Token",
        lambda: good_dsql(credentials=Credentials(TEMP_KEY, SECRET)),
        "temporary_key_without_token",
    ),
    _case("DbConnect for the admin role", lambda: good_dsql(), "admin_needs_admin_action", user="admin"),
    _case(
        "DbConnectAdmin for a custom role", lambda: good_dsql(admin=True), "admin_action_for_role", user="app_reader"
    ),
    _case(
        "scope region is not the cluster's",
        lambda: presigned_for(HOST, "Action=DbConnect", service="dsql", region="us-west-2"),
        "region_mismatch",
    ),
    _case(
        "VPC endpoint host signed",
        lambda: dsql_token("vpce-0abc123-xyz.dsql.us-east-1.vpce.amazonaws.com", credentials=LONG, now=NOW),
        "vpce_host",
    ),
    _case("https:// prefix left in", lambda: "https://" + good_dsql(), "scheme_prefix"),
    # --- service / action ----------------------------------------------------------------------------------
    _case(
        "DSQL token signed for rds-db",
        lambda: presigned_for(HOST, "Action=DbConnect", service="rds-db"),
        "wrong_service",
    ),
    _case(
        "RDS token signed for dsql",
        lambda: presigned_for(f"{RDS_HOST}:5432", "Action=connect&DBUser=app", service="dsql"),
        "wrong_service",
    ),
    _case(
        "RDS-style Action on a DSQL host", lambda: presigned_for(HOST, "Action=connect", service="dsql"), "wrong_action"
    ),
    _case(
        "RDS token without a port",
        lambda: presigned_for(RDS_HOST, "Action=connect&DBUser=app", service="rds-db"),
        "rds_missing_port",
    ),
    _case(
        "RDS token for another user",
        lambda: rds_token(RDS_HOST, 5432, "app", credentials=LONG, now=NOW),
        "rds_user_mismatch",
        user="admin_user",
    ),
    _case(
        "RDS DBUser form-encoded",
        lambda: rds_token(RDS_HOST, 5432, "iam user", credentials=LONG, now=NOW).replace("iam%20user", "iam+user"),
        "query_form_encoding",
    ),
    # --- time ----------------------------------------------------------------------------------------------
    _case("expired", lambda: good_dsql(), "expired", now=NOW + timedelta(minutes=16)),
    _case("signed in the future (clock ahead)", lambda: good_dsql(), "not_yet_valid", now=NOW - timedelta(minutes=10)),
    _case("X-Amz-Expires over a week", lambda: hand_signed(expires="604801"), "expires_range"),
    _case("X-Amz-Expires not a number", lambda: hand_signed(expires="15m"), "expires_format"),
    _case(
        "scope date is not X-Amz-Date's date",
        lambda: good_dsql().replace("%2F20240501%2F", "%2F20240430%2F"),
        "scope_date",
    ),
    # --- signed headers ------------------------------------------------------------------------------------
    _case(
        "host not signed",
        lambda: good_dsql().replace("X-Amz-SignedHeaders=host", "X-Amz-SignedHeaders=x-amz-date"),
        "signed_headers_without_host",
        "extra_signed_headers",
    ),
    _case(
        "extra signed header",
        lambda: presigned_for(HOST, "Action=DbConnect", service="dsql", headers={"X-Amz-Date": "x"}),
        "extra_signed_headers",
    ),
    # --- query encoding and order --------------------------------------------------------------------------
    _case(
        "query signed unsorted (Action appended last)",
        lambda: _unsorted_token(),
        "query_unsorted",
        hypothesis="query_unsorted",
    ),
    _case(
        "query not percent-encoded",
        lambda: hand_signed(credentials=TEMP, encode=False),
        "query_unencoded",
        hypothesis="query_not_encoded",
    ),
    _case(
        "lower-case percent escapes, signed that way",
        lambda: hand_signed(lower_escapes=True),
        "query_lowercase_escapes",
        hypothesis="query_encoded_differently",
    ),
    _case(
        "session token added after signing",
        lambda: hand_signed(credentials=TEMP, sign_session_token=False),
        hypothesis="session_token_unsigned",
    ),
    # --- odd shapes ----------------------------------------------------------------------------------------
    _case("line-wrapped copy", lambda: _wrap(good_dsql()), "whitespace"),
    _case("upper-case host", lambda: hand_signed(token_host=HOST.upper()), "host_case"),
    _case("database name in the path", lambda: good_dsql().replace("/?", "/postgres?"), "path_not_root"),
    _case("signature truncated", lambda: good_dsql()[:-10], "signature_format"),
    _case(
        "parameter name in the wrong case",
        lambda: good_dsql().replace("X-Amz-Signature=", "x-amz-signature="),
        "param_case",
    ),
    _case("expiry parameter missing", lambda: good_dsql().replace("&X-Amz-Expires=900", ""), "missing_param"),
    _case(
        "key derived for the other service",
        lambda: hand_signed(key_service="rds-db"),
        hypothesis="key_for_other_service",
    ),
    _case(
        "signed with UNSIGNED-PAYLOAD",
        lambda: hand_signed(payload_hash="UNSIGNED-PAYLOAD"),
        hypothesis="unsigned_payload",
    ),
]


def _unsorted_token() -> str:
    """A signer that appends Action after its X-Amz-* parameters and signs them in that order."""
    amz_date = NOW.strftime("%Y%m%dT%H%M%SZ")
    scope = f"{amz_date[:8]}/us-east-1/dsql/aws4_request"
    pairs = [
        ("X-Amz-Algorithm", V4),
        ("X-Amz-Credential", f"{ACCESS_KEY}/{scope}"),
        ("X-Amz-Date", amz_date),
        ("X-Amz-Expires", "900"),
        ("X-Amz-SignedHeaders", "host"),
        ("Action", "DbConnect"),
    ]
    query = "&".join(f"{_enc(k)}={_enc(v)}" for k, v in pairs)
    creq = canonical.canonical_request("GET", "/", query, f"host:{HOST}\n", "host", EMPTY_SHA256)
    sts = v4.string_to_sign(V4, amz_date, scope, creq)
    signature = v4.sign_string(SECRET, amz_date, "us-east-1", "dsql", sts)
    return f"{HOST}/?{query}&X-Amz-Signature={signature}"


def _wrap(token: str) -> str:
    return "\n".join(token[i : i + 80] for i in range(0, len(token), 80))
