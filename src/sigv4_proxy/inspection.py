"""Explain a token, presigned URL or Authorization header: every field, every mistake and its fix.

Sans-IO: the parsed token, ``now`` and (for verification) credentials are passed in.

* :func:`inspect_token` runs the checks. Each check is a small predicate; what it reports (severity, text,
  fix) lives in the :data:`RULES` table, so the messages are reviewed in one place and tested by code.
* :func:`compare_tokens` diffs two tokens field by field (parameter order ignored) and names the difference
  that explains why their signatures differ.
* :func:`verify_token` recomputes the signature with the core's :func:`~sigv4_proxy.verify` and, when it does
  not match, tries the known signer mistakes (:data:`HYPOTHESES`) to find the one that reproduces it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from sigv4_proxy.signing.model import EMPTY_SHA256, MAX_PRESIGN_EXPIRES, UNSIGNED_PAYLOAD, V4, V4A, mask_key
from sigv4_proxy.terminal import printable
from sigv4_proxy.tokens import (
    DSQL_ACTIONS,
    DSQL_SERVICE,
    FORM_AUTHORIZATION,
    RDS_ACTION,
    RDS_SERVICE,
    HostInfo,
    ParsedToken,
    QueryParam,
    host_info,
    mask_signature,
)

ERROR, WARNING, INFO = "error", "warning", "info"
MAX_SKEW = timedelta(minutes=5)  # AWS's window for a request date ahead of (or, for headers, behind) its clock
_AUTH_PARAMS = frozenset(
    {
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-Expires",
        "X-Amz-SignedHeaders",
        "X-Amz-Security-Token",
        "X-Amz-Signature",
        "X-Amz-Region-Set",
    }
)
REQUIRED_PARAMS = (
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
)
_UNRESERVED = re.compile(r"[A-Za-z0-9\-_.~%]")
_SIGNATURE = re.compile(r"^[0-9a-f]{64}$")
_AMZ_DATE = re.compile(r"^\d{8}T\d{6}Z$")

KIND_LABELS = {"dsql": "Aurora DSQL", "rds": "RDS IAM", "presigned": "presigned URL"}
EXPECTED_SERVICE = {"dsql": DSQL_SERVICE, "rds": RDS_SERVICE}
TOKEN_COMMAND = {
    "dsql": "sigv4-proxy dsql-token --hostname {host}",
    "rds": "sigv4-proxy rds-token --hostname {host} --port PORT --username USER",
}


# ------------------------------------------------------------------------------------------ the rule table


@dataclass(frozen=True)
class Rule:
    severity: str
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
        "{severity}",
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
    severity: str
    message: str
    fix: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        return {"code": self.code, "severity": self.severity, "message": self.message, "fix": self.fix}


class OwnText(str):
    """Text this module wrote (a note, a fix): passed to :func:`finding` whole, never clipped like the values
    echoed from a token."""


def finding(code: str, **params: Any) -> Finding:
    """Render rule `code` of :data:`RULES` with `params` (strings clipped, except :class:`OwnText`)."""
    rule = RULES[code]
    params = {key: _clip(value) if _echoed(value) else value for key, value in params.items()}
    severity = rule.severity.format(**params)
    return Finding(code, severity, rule.message.format(**params), rule.fix.format(**params) if rule.fix else None)


def _echoed(value: Any) -> bool:
    return isinstance(value, str) and not isinstance(value, OwnText)


def _clip(text: str, limit: int = 100) -> str:
    """Values echoed from a token stay short: a mangled one can be arbitrarily long."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --------------------------------------------------------------------------------------------- the checks


@dataclass(frozen=True)
class Context:
    now: datetime
    user: str | None
    host: HostInfo


Check = Callable[[ParsedToken, Context], Iterable[Finding]]


def _command(token: ParsedToken) -> str:
    template = TOKEN_COMMAND.get(token.kind, "sigv4-proxy sign --presign ...")
    return template.format(host=token.hostname.lower() or "HOST")


def check_shape(t: ParsedToken, ctx: Context) -> Iterator[Finding]:
    if t.whitespace and t.form != FORM_AUTHORIZATION:
        yield finding("whitespace")
    if t.wrapper == "postgresql-url":
        yield finding("from_postgres_url")
    if t.form == FORM_AUTHORIZATION:
        return
    if t.is_db_token and t.scheme is not None and t.wrapper is None:
        yield finding("scheme_prefix", scheme=t.scheme, host=t.host or "HOST")
    if not t.host:
        yield finding("missing_host", command=_command(t))
    if t.is_db_token and t.path != "/":
        yield finding("path_not_root", path=t.path or "(empty)")


def check_host(t: ParsedToken, ctx: Context) -> Iterator[Finding]:
    if not t.hostname:
        return
    if t.kind == "dsql" and t.port is not None:
        yield finding("port_in_host", host=t.host, hostname=t.hostname.lower(), port=t.port)
    if t.kind == "rds" and t.port is None and t.form != FORM_AUTHORIZATION:
        yield finding("rds_missing_port", host=t.host, hostname=t.hostname.lower())
    if t.hostname != t.hostname.lower():
        yield finding("host_case", hostname=t.hostname, lowered=t.hostname.lower())
    if ctx.host.kind == "vpce" and t.is_db_token:
        yield finding("vpce_host", hostname=t.hostname.lower(), region=ctx.host.region or "<region>")


def check_params(t: ParsedToken, ctx: Context) -> Iterator[Finding]:
    if t.form == FORM_AUTHORIZATION:
        if t.header_names and "x-amz-date" not in t.header_names and "date" not in t.header_names:
            yield finding("missing_header_date")
        return
    names = [p.name for p in t.params]
    if not any(name.lower().startswith("x-amz-") for name in names):
        yield finding("not_presigned")
        return
    for expected in REQUIRED_PARAMS:
        if expected in names:
            continue
        written = next((n for n in names if n.lower() == expected.lower()), None)
        if written is not None:
            yield finding("param_case", written=written, expected=expected)
        else:
            yield finding("missing_param", name=expected)
    for name in sorted(set(names)):
        count = names.count(name)
        if count > 1:
            yield finding("duplicate_param", name=name, count=count)


def check_credential(t: ParsedToken, ctx: Context) -> Iterator[Finding]:
    if t.algorithm is not None and t.algorithm not in (V4, V4A):
        yield finding("algorithm", algorithm=t.algorithm, v4a="" if t.is_db_token else f" or {V4A} (SigV4a)")
    if t.credential is not None:
        parts = t.credential.split("/")
        expected_parts = 4 if t.algorithm == V4A else 5
        if len(parts) != expected_parts:
            shown = "/".join([mask_key(parts[0]), *parts[1:]])
            yield finding("credential_shape", credential=shown)
        elif t.scope_terminator != "aws4_request" and t.algorithm != V4A:
            yield finding("terminator", terminator=t.scope_terminator)
    if t.amz_date is not None and not _AMZ_DATE.match(t.amz_date):
        yield finding("amz_date_format", amz_date=t.amz_date)
    elif t.amz_date and t.scope_date and t.scope_date != t.amz_date[:8]:
        yield finding("scope_date", scope_date=t.scope_date, amz_date=t.amz_date)


def check_service(t: ParsedToken, ctx: Context) -> Iterator[Finding]:
    service = t.scope_service
    if service is None or t.algorithm == V4A:
        return
    expected = EXPECTED_SERVICE.get(t.kind)
    if expected is not None and service != expected:
        yield finding(
            "wrong_service", service=service, label=KIND_LABELS[t.kind], expected=expected, command=_command(t)
        )
    elif expected is None and ctx.host.service and service != ctx.host.service:
        yield finding("host_service", service=service, hostname=t.hostname.lower(), expected=ctx.host.service)


def check_action(t: ParsedToken, ctx: Context) -> Iterator[Finding]:
    if t.kind == "dsql":
        if t.action not in DSQL_ACTIONS:
            yield finding(
                "wrong_action",
                action=t.action or "(missing)",
                label="Aurora DSQL",
                expected="DbConnect or DbConnectAdmin",
                fix=OwnText("Action=DbConnect for custom database roles, Action=DbConnectAdmin for admin"),
            )
            return
        hostname = t.hostname.lower() or "HOST"
        if ctx.user == "admin" and t.action == "DbConnect":
            yield finding("admin_needs_admin_action", hostname=hostname)
        elif ctx.user is not None and ctx.user != "admin" and t.action == "DbConnectAdmin":
            yield finding("admin_action_for_role", user=ctx.user, hostname=hostname)
        elif ctx.user is None:
            note = OwnText(
                "DbConnect logs in as a custom database role, not as 'admin' (admin needs DbConnectAdmin); "
                "pass --user to check"
                if t.action == "DbConnect"
                else "DbConnectAdmin logs in only as 'admin'; pass --user to check"
            )
            yield finding("action_note", note=note)
    elif t.kind == "rds":
        if t.action != RDS_ACTION:
            yield finding(
                "wrong_action",
                action=t.action or "(missing)",
                label="RDS IAM",
                expected="connect",
                fix="RDS tokens carry Action=connect&DBUser=USER",
            )
        if t.db_user is None:
            yield finding("rds_missing_user")
        elif ctx.user is not None and ctx.user != t.db_user:
            yield finding("rds_user_mismatch", db_user=t.db_user, user=ctx.user)


def check_region(t: ParsedToken, ctx: Context) -> Iterator[Finding]:
    if t.scope_region is None or t.algorithm == V4A or not t.hostname:
        return
    if ctx.host.region is None:
        if t.is_db_token:
            yield finding("region_unknown", hostname=t.hostname.lower(), scope_region=t.scope_region)
    elif ctx.host.region != t.scope_region:
        yield finding("region_mismatch", scope_region=t.scope_region, host_region=ctx.host.region)


def check_session_token(t: ParsedToken, ctx: Context) -> Iterator[Finding]:
    key = t.access_key_id or ""
    if key.startswith("ASIA") and not t.has_session_token:
        yield finding("temporary_key_without_token", key=mask_key(key))
    elif key.startswith("AKIA") and t.has_session_token:
        yield finding("token_with_long_term_key", key=mask_key(key))


def check_time(t: ParsedToken, ctx: Context) -> Iterator[Finding]:
    signed_at = t.signed_at if t.amz_date and _AMZ_DATE.match(t.amz_date) else None
    if t.form != FORM_AUTHORIZATION and t.expires is not None:
        if t.expires_in is None:
            yield finding("expires_format", expires=t.expires)
            signed_at = None if signed_at is None else signed_at
        elif not 1 <= t.expires_in <= MAX_PRESIGN_EXPIRES:
            yield finding("expires_range", expires=t.expires_in)
    if signed_at is None:
        return
    if signed_at > ctx.now + MAX_SKEW:
        yield finding("not_yet_valid", ahead=_duration(signed_at - ctx.now), amz_date=t.amz_date)
        return
    if t.form == FORM_AUTHORIZATION:
        if signed_at < ctx.now - MAX_SKEW:
            yield finding("header_date_expired", ago=_duration(ctx.now - signed_at), amz_date=t.amz_date)
        return
    expires_at = t.expires_at
    if expires_at is None:
        return
    if expires_at < ctx.now:
        yield finding("expired", ago=_duration(ctx.now - expires_at), expires_at=_when(expires_at))
    elif expires_at - ctx.now < timedelta(minutes=2):
        yield finding("expires_soon", left=_duration(expires_at - ctx.now))


def check_signed_headers(t: ParsedToken, ctx: Context) -> Iterator[Finding]:
    if t.signed_headers is None:
        return
    signed = ";".join(t.signed_headers)
    if "host" not in t.signed_headers:
        yield finding("signed_headers_without_host", signed=signed)
    if list(t.signed_headers) != sorted(h.lower() for h in t.signed_headers):
        yield finding("signed_headers_order", signed=signed)
    extra = [h for h in t.signed_headers if h and h.lower() != "host"]
    if t.is_db_token and extra:
        yield finding("extra_signed_headers", extra=", ".join(extra))


def check_query_encoding(t: ParsedToken, ctx: Context) -> Iterator[Finding]:
    if t.form == FORM_AUTHORIZATION:
        return
    for param in t.params:
        yield from _encoding_findings(param)
    if _request_params_unsorted(t.params):
        yield finding("query_unsorted", order=", ".join(p.name for p in t.params if p.name != "X-Amz-Signature"))


def _request_params_unsorted(params: Sequence[QueryParam]) -> bool:
    """SDKs write the request's own parameters (Action, DBUser) sorted, then the X-Amz-* ones in an order of
    their choosing; only a departure from that is worth a word. Hand-written signers append Action last."""
    own = [(p.raw_name, p.raw_value) for p in params if p.name not in _AUTH_PARAMS]
    if own != sorted(own):
        return True
    seen_auth = False
    for p in params:
        if p.name in _AUTH_PARAMS:
            seen_auth = True
        elif seen_auth and p.raw_name < "X-Amz-":
            return True
    return False


def _encoding_findings(param: QueryParam) -> Iterator[Finding]:
    for label, raw in ((f"parameter name {param.raw_name!r}", param.raw_name), (param.name, param.raw_value)):
        bad = sorted({ch for ch in raw if not _UNRESERVED.match(ch)})
        if "+" in bad and param.name != "X-Amz-Security-Token" and " " in raw.replace("+", " ") and _looks_form(raw):
            yield finding("query_form_encoding", name=label)
            bad.remove("+")
        if bad:
            plus = " (a raw '+' is read as a space by many servers)" if "+" in bad or " " in bad else ""
            severity = ERROR if ("+" in bad or " " in bad or "&" in bad) else WARNING
            shown = " ".join(repr(ch) for ch in bad)
            yield finding("query_unencoded", severity=severity, name=label, chars=shown, plus=plus)
        escapes = sorted(set(re.findall(r"%[0-9A-Fa-f]{2}", raw)) - set(re.findall(r"%[0-9A-F]{2}", raw)))
        if escapes:
            yield finding("query_lowercase_escapes", name=label, escapes=" ".join(escapes))


def _looks_form(raw: str) -> bool:
    """`+` between words (DBUser=iam+user) is form encoding; `+` inside base64 (tokens, keys) is not."""
    return bool(re.search(r"[A-Za-z]\+[A-Za-z]", raw)) and "%" not in raw and len(raw) < 64


def check_signature(t: ParsedToken, ctx: Context) -> Iterator[Finding]:
    if t.signature is not None and t.algorithm != V4A and not _SIGNATURE.match(t.signature):
        shown = f"{len(t.signature)} characters" + (", upper-case" if t.signature.lower() != t.signature else "")
        yield finding("signature_format", shown=shown)


# The checks in the order their findings are listed.
CHECKS: tuple[Check, ...] = (
    check_shape,
    check_host,
    check_params,
    check_credential,
    check_service,
    check_action,
    check_region,
    check_session_token,
    check_time,
    check_signed_headers,
    check_query_encoding,
    check_signature,
)


def _duration(delta: timedelta) -> str:
    seconds = int(abs(delta.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{days} d"] if days else []
    if hours:
        parts.append(f"{hours} h")
    if minutes and not days:
        parts.append(f"{minutes} min")
    if not days and not hours:
        parts.append(f"{seconds} s")
    return " ".join(parts)


def _when(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


# ------------------------------------------------------------------------------------------------- report


@dataclass(frozen=True)
class Report:
    token: ParsedToken
    now: datetime
    findings: tuple[Finding, ...]

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == ERROR]

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        document = {
            "ok": self.ok,
            "fields": self.token.display_fields(self.now),
            "findings": [f.to_dict() for f in self.findings],
        }
        return scrub_tree(document, secrets_of(self.token))  # type: ignore[no-any-return]


def inspect_token(token: ParsedToken, *, now: datetime, user: str | None = None) -> Report:
    """Run every check of :data:`CHECKS` on `token`; `user` is the database user you log in as, if known."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    ctx = Context(now=now, user=user, host=host_info(token.hostname) if token.hostname else HostInfo("unknown"))
    findings = [item for check in CHECKS for item in check(token, ctx)]
    return Report(token, now, tuple(findings))


# ------------------------------------------------------------------------------------------------ compare


@dataclass(frozen=True)
class FieldDiff:
    name: str
    left: str | None
    right: str | None
    signed: bool  # part of what the signature covers

    def to_dict(self) -> dict[str, Any]:
        return {"field": self.name, "left": self.left, "right": self.right, "signed": self.signed}


@dataclass(frozen=True)
class Comparison:
    left: ParsedToken
    right: ParsedToken
    diffs: tuple[FieldDiff, ...]
    same_signature: bool
    explanation: str
    order_differs: bool = False

    def to_dict(self) -> dict[str, Any]:
        document = {
            "same_signature": self.same_signature,
            "differences": [d.to_dict() for d in self.diffs],
            "parameter_order_differs": self.order_differs,
            "explanation": self.explanation,
        }
        return scrub_tree(document, secrets_of(self.left, self.right))  # type: ignore[no-any-return]


def _token_digest(value: str | None) -> str | None:
    """Compare session tokens without showing them: length and a short hash."""
    if value is None:
        return None
    return f"present ({len(value)} chars, sha256 {hashlib.sha256(value.encode()).hexdigest()[:8]})"


# (field name, how to read it, is it signed?, why it changes the signature) in the order differences explain
# a mismatch: the first signed difference found is the explanation.
_COMPARED: tuple[tuple[str, Callable[[ParsedToken], str | None], bool, str], ...] = (
    (
        "access key",
        lambda t: t.masked_access_key,
        True,
        "different credentials: signatures from different keys never match",
    ),
    (
        "X-Amz-Date",
        lambda t: t.amz_date,
        True,
        "the tokens were signed at different times, so their signatures differ anyway; regenerate both with the "
        "same --timestamp to compare signers",
    ),
    ("scheme", lambda t: t.scheme, False, ""),
    (
        "host",
        lambda t: t.host or None,
        True,
        "the signed host differs: the host (with any port) is part of the canonical request",
    ),
    ("path", lambda t: t.path or None, True, "the path is part of the canonical request"),
    ("scope region", lambda t: t.scope_region, True, "the scope region goes into the string to sign and the key"),
    ("scope service", lambda t: t.scope_service, True, "the scope service goes into the string to sign and the key"),
    ("scope date", lambda t: t.scope_date, True, "the scope date goes into the string to sign and the key"),
    ("algorithm", lambda t: t.algorithm, True, "a different algorithm signs differently"),
    ("Action", lambda t: t.action, True, "Action is a signed query parameter"),
    ("DBUser", lambda t: t.db_user, True, "DBUser is a signed query parameter"),
    ("X-Amz-Expires", lambda t: t.expires, True, "X-Amz-Expires is a signed query parameter"),
    (
        "X-Amz-Security-Token",
        lambda t: _token_digest(t.session_token),
        True,
        "the session token is a signed query parameter (present in one token only, or a different token)",
    ),
    (
        "X-Amz-SignedHeaders",
        lambda t: ";".join(t.signed_headers) if t.signed_headers is not None else None,
        True,
        "the list of signed headers is part of the canonical request",
    ),
    ("scope terminator", lambda t: t.scope_terminator, True, "the terminator is part of the credential scope"),
    ("signature", lambda t: mask_signature(t.signature), False, ""),
)
_KNOWN_PARAMS = {
    "Action",
    "DBUser",
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
    "X-Amz-Security-Token",
}


def compare_tokens(left: ParsedToken, right: ParsedToken) -> Comparison:
    """Field-by-field differences (parameter order ignored) and the difference that explains the signatures."""
    diffs = [
        FieldDiff(name, read(left), read(right), signed)
        for name, read, signed, _ in _COMPARED
        if read(left) != read(right)
    ]
    diffs.extend(_other_param_diffs(left, right))
    diffs.extend(_encoding_diffs(left, right))
    same_signature = left.signature is not None and left.signature == right.signature
    order_differs = [p.name for p in left.params] != [p.name for p in right.params]
    return Comparison(left, right, tuple(diffs), same_signature, _explain(diffs, same_signature), order_differs)


def _other_param_diffs(left: ParsedToken, right: ParsedToken) -> Iterator[FieldDiff]:
    def extra(t: ParsedToken) -> dict[str, str]:
        return {p.name: p.value for p in t.params if p.name not in _KNOWN_PARAMS}

    a, b = extra(left), extra(right)
    for name in sorted(set(a) | set(b)):
        if a.get(name) != b.get(name):
            shown = _token_digest if is_sensitive(name) else (lambda value: value)
            yield FieldDiff(f"parameter {name}", shown(a.get(name)), shown(b.get(name)), True)


def _encoding_diffs(left: ParsedToken, right: ParsedToken) -> Iterator[FieldDiff]:
    """Same decoded value, different encoding: harmless to AWS (it re-encodes), fatal to a signer that signed
    the raw text."""
    raw_b = {p.name: p.raw_value for p in right.params}
    for param in left.params:
        other = raw_b.get(param.name)
        if other is not None and other != param.raw_value and QueryParam("", other).value == param.value:
            secret = is_sensitive(param.name)
            shown_left = "(encoded one way)" if secret else param.raw_value
            shown_right = "(encoded another way)" if secret else other
            yield FieldDiff(f"encoding of {param.name}", shown_left, shown_right, False)


def _explain(diffs: Sequence[FieldDiff], same_signature: bool) -> str:
    if same_signature:
        return "The signatures are identical: both tokens were signed over the same input with the same key."
    reasons = {name: reason for name, _, _, reason in _COMPARED}
    for diff in diffs:
        if diff.signed:
            reason = reasons.get(diff.name, f"{diff.name} is a signed query parameter")
            return f"The signatures differ because of {diff.name} ({diff.left} vs {diff.right}): {reason}."
    if any(d.name.startswith("encoding of") for d in diffs):
        return (
            "The signed values are equal but encoded differently; AWS decodes and re-encodes them the canonical "
            "way, so the signer that signed its own (non-canonical) encoding produced the wrong signature."
        )
    return (
        "Every signed field is equal, yet the signatures differ: the secret keys differ, or one signer builds "
        "the canonical request differently (host with port, query order or encoding, payload hash). Run "
        "--verify on each token to see which one is right and what the other signed."
    )


# ------------------------------------------------------------------------------------------------- verify


@dataclass(frozen=True)
class Hypothesis:
    """A known signer mistake, as a change to the inputs of the canonical request / signing key."""

    code: str
    explanation: str
    fix: str
    applies: Callable[[ParsedToken], bool]
    change: Callable[[_Inputs, ParsedToken], _Inputs | None]


@dataclass(frozen=True)
class _Inputs:
    """Everything the signature covers, as separate parts that the hypotheses vary."""

    method: str
    uri: str
    query: str  # the canonical query string
    host: str
    signed_headers: str
    payload_hash: str
    key_region: str
    key_service: str
    extra_headers: tuple[tuple[str, str], ...] = ()

    def canonical_request(self) -> str:
        from sigv4_proxy.signing import canonical

        headers = [("host", self.host), *self.extra_headers]
        block, _ = canonical.canonical_headers(headers, self.signed_headers.split(";"))
        return canonical.canonical_request(
            self.method, self.uri, self.query, block, self.signed_headers, self.payload_hash
        )


def _canonical_query(pairs: Iterable[tuple[str, str]]) -> str:
    from sigv4_proxy.signing import canonical

    return canonical.canonical_query(pairs)


def _signed_pairs(t: ParsedToken, *, without: str | None = None) -> list[tuple[str, str]]:
    return [(p.name, p.value) for p in t.params if p.name not in ("X-Amz-Signature", without)]


def _with(inputs: _Inputs, **changes: Any) -> _Inputs:
    from dataclasses import replace

    return replace(inputs, **changes)


def _raw_query(t: ParsedToken, *, sort: bool) -> str:
    pairs = [(p.raw_name, p.raw_value) for p in t.params if p.name != "X-Amz-Signature"]
    return "&".join(f"{k}={v}" for k, v in (sorted(pairs) if sort else pairs))


def _decoded_query(t: ParsedToken) -> str:
    return "&".join(f"{k}={v}" for k, v in sorted(_signed_pairs(t)))


def _other_service(t: ParsedToken) -> str | None:
    return {DSQL_SERVICE: RDS_SERVICE, RDS_SERVICE: DSQL_SERVICE}.get(t.scope_service or "")


HYPOTHESES: tuple[Hypothesis, ...] = (
    Hypothesis(
        "signed_host_with_port",
        "the signer signed the host with the port ('{variant_host}') — the RDS habit, and what a Java-style "
        "signer does; Aurora DSQL signs the bare host",
        "sign the host without the port: sigv4-proxy dsql-token --hostname {hostname}",
        lambda t: t.port is None and bool(t.hostname),
        lambda i, t: _with(i, host=f"{t.hostname}:5432"),
    ),
    Hypothesis(
        "signed_host_with_443",
        "the signer signed the host with ':443' ('{variant_host}'); HTTP clients omit default ports",
        "sign the Host header exactly as sent: without ':443'",
        lambda t: t.port is None and bool(t.hostname),
        lambda i, t: _with(i, host=f"{t.hostname}:443"),
    ),
    Hypothesis(
        "signed_host_without_port",
        "the signer signed the host without the port ('{variant_host}') but the token carries ':{port}'",
        "sign exactly the host:port the token carries (RDS) — or drop the port from both (DSQL)",
        lambda t: t.port is not None,
        lambda i, t: _with(i, host=t.hostname),
    ),
    Hypothesis(
        "signed_host_case",
        "the signer signed the host in a different letter case ('{variant_host}')",
        "lower-case the host both when signing and in the token",
        lambda t: t.host != t.host.lower(),
        lambda i, t: _with(i, host=t.host.lower()),
    ),
    Hypothesis(
        "session_token_unsigned",
        "the signer added X-Amz-Security-Token after signing (it is not in its canonical query)",
        "add the session token to the query before computing the signature: it is a signed parameter",
        lambda t: t.has_session_token,
        lambda i, t: _with(i, query=_canonical_query(_signed_pairs(t, without="X-Amz-Security-Token"))),
    ),
    Hypothesis(
        "query_unsorted",
        "the signer signed the query parameters in the order they appear instead of sorted",
        "sort the canonical query by encoded name, then value",
        lambda t: _raw_query(t, sort=False) != _raw_query(t, sort=True),
        lambda i, t: _with(i, query=_raw_query(t, sort=False)),
    ),
    Hypothesis(
        "query_not_encoded",
        "the signer signed the query values without percent-encoding them (a raw '/' in X-Amz-Credential)",
        "percent-encode names and values in the canonical query: X-Amz-Credential=AKID%2F20240101%2F...",
        lambda t: True,
        lambda i, t: _with(i, query=_decoded_query(t)),
    ),
    Hypothesis(
        "query_encoded_differently",
        "the signer signed the query exactly as written in the token, whose encoding is not canonical",
        "percent-encode every name and value per RFC 3986 (upper-case hex, %20 for space, %2F for /) before signing",
        lambda t: True,
        lambda i, t: _with(i, query=_raw_query(t, sort=True)),
    ),
    Hypothesis(
        "unsigned_payload",
        "the signer used UNSIGNED-PAYLOAD as the payload hash (the S3 convention)",
        "use the SHA-256 of the empty body (e3b0c442...) as the payload hash",
        lambda t: True,
        lambda i, t: _with(i, payload_hash=UNSIGNED_PAYLOAD) if i.payload_hash != UNSIGNED_PAYLOAD else None,
    ),
    Hypothesis(
        "empty_payload_hash",
        "the signer used the SHA-256 of the empty body as the payload hash, where UNSIGNED-PAYLOAD is expected",
        "use UNSIGNED-PAYLOAD for presigned S3 URLs",
        lambda t: True,
        lambda i, t: _with(i, payload_hash=EMPTY_SHA256) if i.payload_hash != EMPTY_SHA256 else None,
    ),
    Hypothesis(
        "empty_path",
        "the signer used an empty canonical URI; it must be '/'",
        "use '/' as the canonical URI of the root path",
        lambda t: True,
        lambda i, t: _with(i, uri="") if i.uri == "/" else None,
    ),
    Hypothesis(
        "method_post",
        "the signer signed method POST; the token is checked as a GET",
        "presign tokens with method GET",
        lambda t: True,
        lambda i, t: _with(i, method="POST") if i.method != "POST" else None,
    ),
    Hypothesis(
        "key_for_other_service",
        "the signer derived its signing key for service '{other_service}' while the scope says '{service}'",
        "derive the key and write the scope with the same service ('{service}')",
        lambda t: _other_service(t) is not None,
        lambda i, t: _with(i, key_service=_other_service(t) or i.key_service),
    ),
    Hypothesis(
        "key_for_host_region",
        "the signer derived its signing key for region '{host_region}' while the scope says '{region}'",
        "derive the key and write the scope with the same region",
        lambda t: bool(t.hostname) and host_info(t.hostname).region not in (None, t.scope_region),
        lambda i, t: _with(i, key_region=host_info(t.hostname).region or i.key_region),
    ),
)


@dataclass(frozen=True)
class Verification:
    ok: bool
    message: str
    reason: str
    expected_canonical_request: str | None = None
    expected_string_to_sign: str | None = None
    their_canonical_request: str | None = None
    their_string_to_sign: str | None = None
    hypothesis: str | None = None
    fix: str | None = None
    secrets: frozenset[str] = field(default=frozenset(), repr=False, compare=False)  # scrubbed from output

    def first_difference(self) -> tuple[int | None, int | None]:
        """(line index in the canonical requests, line index in the strings to sign) of the first difference."""
        return (
            first_differing_line(self.expected_canonical_request, self.their_canonical_request),
            first_differing_line(self.expected_string_to_sign, self.their_string_to_sign),
        )

    def to_dict(self) -> dict[str, Any]:
        creq_line, sts_line = self.first_difference()
        document = {
            "ok": self.ok,
            "reason": self.reason,
            "message": self.message,
            "hypothesis": self.hypothesis,
            "fix": self.fix,
            "expected_canonical_request": self.expected_canonical_request,
            "expected_string_to_sign": self.expected_string_to_sign,
            "their_canonical_request": self.their_canonical_request,
            "their_string_to_sign": self.their_string_to_sign,
            "first_differing_line": {"canonical_request": creq_line, "string_to_sign": sts_line},
        }
        return scrub_tree(document, self.secrets)  # type: ignore[no-any-return]


def first_differing_line(a: str | None, b: str | None) -> int | None:
    """Index of the first line that differs between two texts (None when equal or one is missing)."""
    if a is None or b is None or a == b:
        return None
    left, right = a.split("\n"), b.split("\n")
    for index, (x, y) in enumerate(zip(left, right, strict=False)):
        if x != y:
            return index
    return min(len(left), len(right))


# Any parameter or header that carries a session token or a signature, however (mis)spelled.
_TOKEN_IN_QUERY = re.compile(r"(?i)(security-?token=)([^&\s'\"|]*)")
_TOKEN_HEADER = re.compile(r"(?im)^([^:\n]*security-?token:)(.*)$")
_SIGNATURE_IN_QUERY = re.compile(r"(?i)(signature=)([0-9a-f]{16,})")
_CREDENTIAL_KEY = re.compile(r"(?i)((?:^|(?<=[&?\n]))[^&=\n]*credential=)([A-Z0-9]{12,})(?=%2F|/|&|$)")


def is_sensitive(name: str) -> bool:
    """Parameter names whose values are never shown: session tokens and signatures, however spelled."""
    lowered = name.lower().replace("_", "-")
    return "security-token" in lowered or "securitytoken" in lowered or "signature" in lowered


def redact(text: str | None) -> str | None:
    """Make a canonical request safe to print: the session token becomes its length and a short hash (two
    encodings of the same token still show as different), a signature-looking value is masked, and the access
    key in X-Amz-Credential is shown as AKIA****MPLE."""
    if text is None:
        return None

    def describe(match: re.Match[str]) -> str:
        value = match.group(2)
        digest = hashlib.sha256(value.encode()).hexdigest()[:8]
        return f"{match.group(1)}<session token: {len(value)} chars, sha256 {digest}>"

    text = _TOKEN_HEADER.sub(describe, _TOKEN_IN_QUERY.sub(describe, text))
    text = _SIGNATURE_IN_QUERY.sub(lambda m: f"{m.group(1)}{mask_signature(m.group(2))}", text)
    return _CREDENTIAL_KEY.sub(lambda m: f"{m.group(1)}{mask_key(m.group(2))}", text)


def secrets_of(*tokens: ParsedToken) -> set[str]:
    """The secret values a token carries, raw and decoded: its session token, its signature, and any value of
    a parameter named like one."""
    found: set[str] = set()
    for token in tokens:
        for value in (token.session_token, token.signature):
            if value:
                found.add(value)
        for param in token.params:
            if is_sensitive(param.name):
                found.update({param.raw_value, param.value})
    return {value for value in found if len(value) >= 8}


def as_printed(secrets: Iterable[str]) -> set[str]:
    """The secrets in every form the text renderers can print them: raw, and with control characters
    escaped by :func:`~sigv4_proxy.terminal.printable` (a mangled token can carry them)."""
    return {form for secret in secrets for form in (secret, printable(secret))}


def scrub(text: str, secrets: Iterable[str]) -> str:
    """Everything printed goes through here: pattern redaction, then the known secret values themselves
    (a mangled token can put them anywhere, e.g. inside another parameter's value)."""
    text = redact(text) or ""
    for secret in sorted(secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, "****")
    return text


def scrub_tree(value: Any, secrets: Iterable[str]) -> Any:
    """:func:`scrub` every string of a JSON-ready structure."""
    secrets = list(secrets)
    if isinstance(value, str):
        return scrub(value, secrets)
    if isinstance(value, dict):
        return {key: scrub_tree(item, secrets) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [scrub_tree(item, secrets) for item in value]
    return value


def verify_token(
    token: ParsedToken,
    credentials: Any,
    *,
    their_canonical_request: str | None = None,
    method: str = "GET",
    headers: Sequence[tuple[str, str]] = (),
    body: bytes = b"",
) -> Verification:
    """Recompute the signature of `token` with `credentials` (a :class:`~sigv4_proxy.Credentials` whose access
    key is the token's); see :func:`_verify_token`. The result knows the token's secrets, to keep them out of
    everything it prints."""
    from dataclasses import replace

    result = _verify_token(
        token, credentials, their_canonical_request=their_canonical_request, method=method, headers=headers, body=body
    )
    secrets = secrets_of(token) | {credentials.secret_access_key}
    if credentials.session_token:
        secrets.add(credentials.session_token)
    return replace(result, secrets=frozenset(s for s in secrets if len(s) >= 8))


def _verify_token(
    token: ParsedToken,
    credentials: Any,
    *,
    their_canonical_request: str | None,
    method: str,
    headers: Sequence[tuple[str, str]],
    body: bytes,
) -> Verification:
    """Recompute the signature of `token` with `credentials` (a :class:`~sigv4_proxy.Credentials` whose access
    key is the token's). Time is not judged here (the checks do that): the token is verified as of its own
    X-Amz-Date. On a mismatch, try :data:`HYPOTHESES`; `their_canonical_request` (from the signer's debug
    output) is compared line by line instead when given."""
    from sigv4_proxy.signing.model import Credentials
    from sigv4_proxy.signing.verify import verify

    signed_at = token.signed_at
    if signed_at is None:
        return Verification(False, "cannot verify: X-Amz-Date is missing or malformed", "malformed")
    if token.algorithm == V4 and not _SIGNATURE.match((token.signature or "").lower()):
        return Verification(False, "cannot verify: the signature is not 64 hexadecimal characters", "malformed")
    # The token is compared with the caller's session token only when the caller has one.
    if credentials.session_token and not (credentials.session_token + (token.session_token or "")).isascii():
        return Verification(
            False,
            "cannot verify: the session token has non-ASCII characters (a copy or encoding "
            "mistake: real session tokens are base64)",
            "token",
        )
    # Without a session token of their own, the credentials are checked only for the signature (the token's
    # session token is signed as part of the query either way).
    creds = Credentials(credentials.access_key_id, credentials.secret_access_key, credentials.session_token)
    target = (token.path or "/") + (f"?{token.query}" if token.query else "")
    request_headers = list(headers) or [("host", token.host)]
    if token.form == FORM_AUTHORIZATION and not any(k.lower() == "authorization" for k, _ in request_headers):
        header = re.sub(r"(?i)^authorization\s*:\s*", "", token.text)
        request_headers.append(("authorization", header))
    result = verify(
        method,
        target,
        request_headers,
        body,
        credentials_for=lambda key: creds if key == creds.access_key_id else None,
        now=signed_at,
    )
    base = {
        "expected_canonical_request": result.expected_canonical_request,
        "expected_string_to_sign": result.expected_string_to_sign,
    }
    if (
        result.ok
        and token.has_session_token
        and "X-Amz-Security-Token=" not in (result.expected_canonical_request or "X-Amz-Security-Token=")
    ):
        return _token_signed_after(token, result.expected_canonical_request or "", result.expected_string_to_sign)
    if result.ok:
        return Verification(
            True,
            "the signature matches: the token was signed with this secret key over exactly what it says",
            "ok",
            **base,
        )
    if result.reason != "signature":
        return Verification(False, _first_line(result.message), result.reason, **base)
    if their_canonical_request is not None:
        theirs = their_canonical_request.replace("\r\n", "\n").rstrip("\n")
        from sigv4_proxy.signing import v4

        their_sts = v4.string_to_sign(
            token.algorithm or V4,
            token.amz_date or "",
            f"{token.scope_date}/{token.scope_region}/{token.scope_service}/aws4_request",
            theirs,
        )
        return Verification(
            False,
            "the signature does not match; your signer's canonical request differs from "
            "the one AWS computes (first difference marked)",
            "signature",
            their_canonical_request=theirs,
            their_string_to_sign=their_sts,
            **base,
        )
    found = _search_hypotheses(token, creds, method, headers, result.expected_canonical_request or "")
    if found is not None:
        hypothesis, creq, sts, params = found
        return Verification(
            False,
            "the signature does not match: " + hypothesis.explanation.format(**params),
            "signature",
            their_canonical_request=creq,
            their_string_to_sign=sts,
            hypothesis=hypothesis.code,
            fix=hypothesis.fix.format(**params),
            **base,
        )
    return Verification(
        False,
        f"the signature does not match, and no known signer mistake reproduces it: most likely the token was "
        f"signed with a different secret key than the one for {mask_key(creds.access_key_id)}. Compare the "
        f"expected canonical request below with your signer's (--canonical-request FILE marks the first "
        f"difference).",
        "signature",
        **base,
    )


def _token_signed_after(token: ParsedToken, theirs: str, their_sts: str | None) -> Verification:
    """The signature holds only without the session token: it was added to the URL after signing. Some
    services accept that (IoT); IAM database tokens and most presigned URLs must sign it."""
    from sigv4_proxy.signing import v4

    hypothesis = next(h for h in HYPOTHESES if h.code == "session_token_unsigned")
    lines = theirs.split("\n")
    lines[2] = _canonical_query(_signed_pairs(token))
    expected = "\n".join(lines)
    scope = f"{token.scope_date}/{token.scope_region}/{token.scope_service}/aws4_request"
    expected_sts = v4.string_to_sign(token.algorithm or V4, token.amz_date or "", scope, expected)
    severity_note = "" if token.is_db_token else " (a few services, such as IoT, accept that; most reject it)"
    return Verification(
        ok=not token.is_db_token,
        message="the signature matches only without the session token: " + hypothesis.explanation + severity_note,
        reason="session_token_unsigned",
        expected_canonical_request=expected,
        expected_string_to_sign=expected_sts,
        their_canonical_request=theirs,
        their_string_to_sign=their_sts,
        hypothesis=hypothesis.code,
        fix=hypothesis.fix,
    )


def _first_line(message: str) -> str:
    return message.split("\n", 1)[0]


def _search_hypotheses(
    token: ParsedToken, creds: Any, method: str, headers: Sequence[tuple[str, str]], expected: str
) -> tuple[Hypothesis, str, str, dict[str, Any]] | None:
    if token.algorithm != V4 or token.form == FORM_AUTHORIZATION or expected.count("\n") < 5:
        return None  # v4a signatures are randomised and header requests need the full request: nothing to vary
    from sigv4_proxy.signing import v4

    lines = expected.split("\n")
    signed_headers, payload_hash = lines[-2], lines[-1]
    base = _Inputs(
        method=lines[0],
        uri=lines[1],
        query=lines[2],
        host=next((v for k, v in headers if k.lower() == "host"), token.host),
        signed_headers=signed_headers,
        payload_hash=payload_hash,
        key_region=token.scope_region or "",
        key_service=token.scope_service or "",
    )
    scope = f"{token.scope_date}/{token.scope_region}/{token.scope_service}/aws4_request"
    for hypothesis in HYPOTHESES:
        if not hypothesis.applies(token):
            continue
        variant = hypothesis.change(base, token)
        if variant is None or variant == base:
            continue
        creq = variant.canonical_request()
        sts = v4.string_to_sign(V4, token.amz_date or "", scope, creq)
        signature = v4.signature(
            v4.derive_signing_key(
                creds.secret_access_key, token.scope_date or "", variant.key_region, variant.key_service
            ),
            sts,
        )
        if signature == (token.signature or "").lower():
            params = {
                "variant_host": variant.host,
                "hostname": token.hostname.lower(),
                "port": token.port,
                "service": token.scope_service,
                "other_service": _other_service(token),
                "region": token.scope_region,
                "host_region": host_info(token.hostname).region if token.hostname else None,
            }
            return hypothesis, creq, sts, params
    return None


def render_fields(token: ParsedToken, now: datetime) -> list[tuple[str, str]]:
    """(label, value) lines describing the token, safe to print: the values come from the token, so their
    control characters are escaped (a hostile token must not drive the terminal or fake a line)."""
    rows: list[tuple[str, str]] = []
    add = rows.append
    label = KIND_LABELS.get(token.kind, token.kind)
    if token.form == FORM_AUTHORIZATION:
        label = "Authorization header"
    add(("type", f"{label} ({token.form})"))
    if token.scheme:
        add(("scheme", token.scheme))
    if token.host:
        add(("host", token.host + (f"  (port {token.port})" if token.port is not None else "")))
    if token.path and token.path != "/":
        add(("path", token.path))
    if token.action is not None:
        add(("action", token.action))
    if token.db_user is not None:
        add(("db user", token.db_user))
    if token.algorithm:
        add(("algorithm", token.algorithm))
    if token.access_key_id:
        key_type = token.display_fields()["key_type"]
        add(("access key", f"{token.masked_access_key}  ({key_type})"))
    signed_at = token.signed_at
    if signed_at:
        offset = now - signed_at
        when = f"{_duration(offset)} ago" if offset >= timedelta(0) else f"in {_duration(offset)} (future!)"
        add(("signed at", f"{_when(signed_at)}  ({token.amz_date}, {when})"))
    elif token.amz_date:
        add(("signed at", f"{token.amz_date} (unreadable)"))
    if token.expires is not None:
        expires_at = token.expires_at
        if expires_at is None:
            add(("expires", f"{token.expires} (not a number of seconds)"))
        else:
            left = expires_at - now
            state = f"{_duration(left)} left" if left > timedelta(0) else f"EXPIRED {_duration(left)} ago"
            add(("expires", f"{_when(expires_at)}  ({token.expires_in} s; {state})"))
    if token.credential:
        scope = " / ".join(
            str(p)
            for p in (token.scope_date, token.scope_region, token.scope_service, token.scope_terminator)
            if p is not None
        )
        add(("scope", scope))
    if token.signed_headers is not None:
        add(("signed headers", ";".join(token.signed_headers)))
    if token.form != FORM_AUTHORIZATION or token.header_names:
        add(("session token", f"present ({len(token.session_token)} chars)" if token.session_token else "absent"))
    if token.signature is not None:
        add(("signature", mask_signature(token.signature) or ""))
    return [(label, printable(value)) for label, value in rows]


_MARKS = {ERROR: "✗", WARNING: "!", INFO: "·"}


def render_report(report: Report) -> str:
    lines = []
    rows = render_fields(report.token, report.now)
    width = max(len(label) for label, _ in rows)
    lines.extend(f"  {label.ljust(width)}  {value}" for label, value in rows)
    lines.append("")
    if not report.findings:
        lines.append("✓ no problems found")
    for item in report.findings:
        lines.append(f"{_MARKS[item.severity]} {item.severity}: {printable(item.message)}")
        if item.fix:
            lines.append(f"    fix: {printable(item.fix)}")
    if report.findings and report.ok:
        lines.append("✓ no errors found")
    return scrub("\n".join(lines), as_printed(secrets_of(report.token)))


def render_comparison(comparison: Comparison) -> str:
    lines = []
    if not comparison.diffs:
        lines.append(
            "  no field differs" + (" (parameter order differs; AWS ignores order)" if comparison.order_differs else "")
        )
    else:
        width = max(len(printable(d.name)) for d in comparison.diffs)
        lines.append(f"  {'field'.ljust(width)}  first  |  second")
        for diff in comparison.diffs:
            mark = "*" if diff.signed else " "
            left, right = printable(diff.left or "(none)"), printable(diff.right or "(none)")
            lines.append(f"{mark} {printable(diff.name).ljust(width)}  {left}  |  {right}")
        if comparison.order_differs:
            lines.append("  (parameter order differs too; AWS ignores order)")
        lines.append("  * = signed: a difference here changes the signature")
    lines.append("")
    lines.append(printable(comparison.explanation))
    return scrub("\n".join(lines), as_printed(secrets_of(comparison.left, comparison.right)))


def render_verification(verification: Verification) -> str:
    return scrub(_render_verification(verification), as_printed(verification.secrets))


def _render_verification(verification: Verification) -> str:
    mark = "✓" if verification.ok else "✗"
    lines = [f"{mark} verify: {printable(verification.message)}"]
    if verification.fix:
        lines.append(f"    fix: {printable(verification.fix)}")
    if verification.ok or verification.expected_canonical_request is None:
        return "\n".join(lines)
    creq_line, sts_line = verification.first_difference()
    lines.extend(
        _side_by_side(
            "canonical request",
            verification.expected_canonical_request,
            verification.their_canonical_request,
            creq_line,
        )
    )
    lines.extend(
        _side_by_side(
            "string to sign", verification.expected_string_to_sign, verification.their_string_to_sign, sts_line
        )
    )
    return "\n".join(lines)


def _side_by_side(title: str, expected: str | None, theirs: str | None, marked: int | None) -> list[str]:
    out = ["", f"--- {title}: what AWS computes from this token"]
    out.extend(_numbered(redact(expected) or "", marked))
    if theirs is not None:
        out.append(f"--- {title}: what your signer signed")
        out.extend(_numbered(redact(theirs) or "", marked))
        if marked is not None:
            out.append(f"    first difference: line {marked + 1} (marked >>)")
    return out


def _numbered(text: str, marked: int | None) -> list[str]:
    return [
        f"{'>>' if index == marked else '  '} {index + 1:2d} | {printable(line)}"
        for index, line in enumerate(text.split("\n"))
    ]


__all__ = [
    "CHECKS",
    "HYPOTHESES",
    "RULES",
    "Comparison",
    "Finding",
    "Report",
    "Verification",
    "compare_tokens",
    "first_differing_line",
    "inspect_token",
    "redact",
    "render_comparison",
    "render_report",
    "render_verification",
    "verify_token",
]
