"""The rule table: what each finding of ``inspect`` says (severity, text, fix), reviewed in one place.

The checks (:mod:`sigv4_proxy.inspection.checks`) decide *whether* a rule applies; :func:`finding` renders it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal

Severity = Literal["error", "warning", "info"]
ERROR: Final = "error"
WARNING: Final = "warning"
INFO: Final = "info"


@dataclass(frozen=True)
class Rule:
    severity: Severity  # the finding's, unless the check passes its own (a finding whose weight depends on a value)
    message: str  # str.format template over the finding's parameters
    fix: str | None = None


RULES: dict[str, Rule] = {
    "whitespace": Rule(
        ERROR,
        "the token contains spaces or line breaks (copied from a wrapped terminal?); they were removed to "
        "inspect it, but the server sees them",
        'pass the token as one line, quoted: PGPASSWORD="$(sigv4-proxy dsql-token --hostname HOST)"',
    ),
    "from_postgres_url": Rule(INFO, "the token was taken from the password of a postgresql:// URL"),
    "scheme_prefix": Rule(
        ERROR,
        "the token starts with '{scheme}://': an IAM database token starts with the host name",
        "remove '{scheme}://' (signers presign https://HOST/?Action=... and strip the scheme); "
        "the token is '{host}/?Action=...'",
    ),
    "missing_host": Rule(
        ERROR,
        "the token has no host before '/?': the host is part of what is signed",
        "a token is '<host>/?Action=...&X-Amz-Signature=...'; generate one with {command}",
    ),
    "port_in_host": Rule(
        ERROR,
        "the host carries a port ('{host}'): Aurora DSQL signs the bare host name, so a token for "
        "host:port is rejected (the RDS habit — a hand-written or Java signer that signs host:port)",
        "sign for '{hostname}' without ':{port}': sigv4-proxy dsql-token --hostname {hostname}",
    ),
    "rds_missing_port": Rule(
        ERROR,
        "the host has no port ('{host}'): RDS signs host:port",
        "sign for '{hostname}:PORT' with the port your client connects to: sigv4-proxy rds-token "
        "--hostname {hostname} --port 5432 --username USER",
    ),
    "host_case": Rule(
        WARNING,
        "the host has upper-case letters ('{hostname}'): the server signs the lower-case name",
        "sign for '{lowered}'",
    ),
    "path_not_root": Rule(
        ERROR,
        "the token's path is '{path}', not '/'",
        "a token is '<host>/?Action=...': the path is '/' (the database name goes in the connection, not the token)",
    ),
    "vpce_host": Rule(
        ERROR,
        "the token is signed for an interface VPC endpoint host ('{hostname}'); the service checks the token "
        "against the cluster's own host name",
        "sign for the cluster host and connect to the endpoint: sigv4-proxy dsql-token --hostname {hostname} "
        "--cluster-host <cluster-id>.dsql.{region}.on.aws",
    ),
    "not_presigned": Rule(
        ERROR,
        "no SigV4 query parameters found (X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, ...)",
        "this is not a presigned URL or IAM token; for an Authorization header use --header",
    ),
    "missing_param": Rule(
        ERROR,
        "required parameter {name} is missing",
        "a presigned URL carries X-Amz-Algorithm, X-Amz-Credential, X-Amz-Date, X-Amz-Expires, "
        "X-Amz-SignedHeaders and X-Amz-Signature",
    ),
    "missing_header_date": Rule(
        ERROR,
        "the request has no X-Amz-Date header: the date is part of the string to sign",
        "send the X-Amz-Date the signer used (or pass it here with -H 'X-Amz-Date: ...')",
    ),
    "param_case": Rule(
        ERROR,
        "parameter '{written}' should be spelled '{expected}': AWS reads parameter names case-sensitively",
        "use '{expected}'",
    ),
    "duplicate_param": Rule(ERROR, "{name} appears {count} times", "send each parameter once"),
    "algorithm": Rule(
        ERROR,
        "unsupported algorithm '{algorithm}'",
        "use AWS4-HMAC-SHA256 (SigV4){v4a}",
    ),
    "credential_shape": Rule(
        ERROR,
        "X-Amz-Credential '{credential}' is not ACCESS_KEY/YYYYMMDD/REGION/SERVICE/aws4_request",
        "build the credential as access key id + '/' + credential scope",
    ),
    "terminator": Rule(
        ERROR, "the credential scope ends with '{terminator}', not 'aws4_request'", "end the scope with /aws4_request"
    ),
    "amz_date_format": Rule(
        ERROR,
        "X-Amz-Date '{amz_date}' is not in the form YYYYMMDDTHHMMSSZ (UTC)",
        "format the signing time as UTC, e.g. 20240501T120000Z",
    ),
    "scope_date": Rule(
        ERROR,
        "the credential scope date {scope_date} is not the date of X-Amz-Date {amz_date}",
        "derive both from the same UTC time (a signer mixing local time and UTC fails around midnight)",
    ),
    "wrong_service": Rule(
        ERROR,
        "the credential scope names service '{service}', but {label} tokens are signed for '{expected}'",
        "sign with service '{expected}': {command}",
    ),
    "host_service": Rule(
        ERROR,
        "the credential scope names service '{service}', but host '{hostname}' is an endpoint of service '{expected}'",
        "sign with service '{expected}' (--service-name {expected})",
    ),
    "wrong_action": Rule(
        ERROR,
        "Action '{action}' is not valid for {label} tokens (expected {expected})",
        "{fix}",
    ),
    "admin_needs_admin_action": Rule(
        ERROR,
        "the 'admin' role needs a DbConnectAdmin token; this token is DbConnect",
        "generate an admin token: sigv4-proxy dsql-token --hostname {hostname} --admin "
        "(boto3: generate_db_connect_admin_auth_token)",
    ),
    "admin_action_for_role": Rule(
        ERROR,
        "DbConnectAdmin tokens log in only as 'admin'; role '{user}' needs a DbConnect token",
        "drop --admin: sigv4-proxy dsql-token --hostname {hostname} (boto3: generate_db_connect_auth_token)",
    ),
    "action_note": Rule(INFO, "{note}"),
    "rds_missing_user": Rule(
        ERROR, "the token has no DBUser parameter", "sign for the database user: rds-token --username USER"
    ),
    "rds_user_mismatch": Rule(
        ERROR,
        "the token is for database user '{db_user}', but you log in as '{user}'",
        "generate the token for '{user}' (--username {user})",
    ),
    "region_mismatch": Rule(
        ERROR,
        "the credential scope region '{scope_region}' is not the host's region '{host_region}'",
        "sign for {host_region}: --region {host_region} (or leave --region out: it is inferred from the host)",
    ),
    "region_unknown": Rule(
        INFO,
        "host '{hostname}' does not name a region, so the scope region '{scope_region}' cannot be checked against it",
    ),
    "temporary_key_without_token": Rule(
        ERROR,
        "access key {key} is a temporary (ASIA...) key, but the token has no X-Amz-Security-Token",
        "temporary credentials (roles, SSO, sessions) need their session token inside the signed query: "
        "include AWS_SESSION_TOKEN when signing",
    ),
    "token_with_long_term_key": Rule(
        WARNING,
        "access key {key} is a long-term (AKIA...) key, yet a session token is present",
        "long-term keys have no session token: a stale AWS_SESSION_TOKEN from another session?",
    ),
    "expires_format": Rule(
        ERROR, "X-Amz-Expires '{expires}' is not a whole number of seconds", "use seconds, e.g. X-Amz-Expires=900"
    ),
    "expires_range": Rule(
        ERROR,
        "X-Amz-Expires {expires} is outside 1..604800 seconds",
        "choose an expiry between 1 second and 7 days (default 900)",
    ),
    "expired": Rule(
        ERROR,
        "the token expired {ago} ago (at {expires_at})",
        "generate a fresh token right before connecting: it is checked only when a connection opens",
    ),
    "header_date_expired": Rule(
        ERROR,
        "the request was signed {ago} ago ({amz_date}); AWS accepts 5 minutes of difference",
        "sign each request when it is sent; if the clock is wrong, sync it (NTP)",
    ),
    "not_yet_valid": Rule(
        ERROR,
        "X-Amz-Date is {ahead} in the future ({amz_date}): the signer's clock is ahead, or this one's behind",
        "sync the clocks (NTP); AWS accepts 5 minutes of difference",
    ),
    "expires_soon": Rule(INFO, "the token expires in {left}"),
    "signed_headers_without_host": Rule(
        ERROR,
        "SignedHeaders '{signed}' does not include 'host'",
        "always sign the host header (SignedHeaders=host for tokens)",
    ),
    "extra_signed_headers": Rule(
        ERROR,
        "the token signs headers other than host ({extra}); a database client cannot send them",
        "sign only the host: X-Amz-SignedHeaders=host",
    ),
    "signed_headers_order": Rule(
        WARNING,
        "SignedHeaders '{signed}' is not lower-case and sorted",
        "list signed header names in lower case, sorted, joined by ';'",
    ),
    "query_unsorted": Rule(
        WARNING,
        "the query parameters are not in sorted order ({order}): harmless in the URL (the server sorts them "
        "before checking), but the mark of a signer that may also have signed them in this order",
        "sort the canonical query by encoded name, then value; --verify tells whether this signer did",
    ),
    "query_unencoded": Rule(
        ERROR,
        "{name} has characters that must be percent-encoded: {chars}{plus}",
        "encode names and values per RFC 3986 (only A-Z a-z 0-9 - _ . ~ stay as they are): "
        "'/' -> %2F, '+' -> %2B, '=' -> %3D, space -> %20",
    ),
    "query_lowercase_escapes": Rule(
        WARNING,
        "{name} uses lower-case percent escapes ({escapes}); the canonical form is upper-case",
        "encode with upper-case hex (%2F, not %2f): a signer that signed the lower-case form cannot match",
    ),
    "query_form_encoding": Rule(
        ERROR,
        "{name} uses '+' for spaces (form encoding); SigV4 reads '+' as a plus sign",
        "encode spaces as %20",
    ),
    "signature_format": Rule(
        ERROR,
        "the signature is not 64 lower-case hex characters ({shown})",
        "X-Amz-Signature is the hex HMAC-SHA256 of the string to sign",
    ),
}


@dataclass(frozen=True)
class Finding:
    code: str
    severity: Severity
    message: str
    fix: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        return {"code": self.code, "severity": self.severity, "message": self.message, "fix": self.fix}


class OwnText(str):
    """Text this module wrote (a note, a fix): passed to :func:`finding` whole, never clipped like the values
    echoed from a token."""


def finding(code: str, *, severity: Severity | None = None, **params: Any) -> Finding:
    """Render rule `code` of :data:`RULES` with `params` (strings clipped, except :class:`OwnText`); `severity`
    overrides the rule's."""
    rule = RULES[code]
    params = {key: _clip(value) if _echoed(value) else value for key, value in params.items()}
    message, fix = rule.message.format(**params), rule.fix.format(**params) if rule.fix else None
    return Finding(code, severity or rule.severity, message, fix)


def _echoed(value: Any) -> bool:
    return isinstance(value, str) and not isinstance(value, OwnText)


def _clip(text: str, limit: int = 100) -> str:
    """Values echoed from a token stay short: a mangled one can be arbitrarily long."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
