"""The checks of ``inspect``: each a small predicate over a parsed token that yields findings of :data:`RULES`
(:mod:`sigv4_proxy.inspection.rules`), run in the order of :data:`CHECKS` by :func:`inspect_token`."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sigv4_proxy.clock import format_duration
from sigv4_proxy.inspection.redaction import scrub_document, secrets_of
from sigv4_proxy.inspection.rules import ERROR, WARNING, Finding, OwnText, Severity, finding
from sigv4_proxy.redact import mask_access_key
from sigv4_proxy.signing.algorithm import V4, V4A, Algorithm, algorithm_named
from sigv4_proxy.signing.amzdate import AUTH_QUERY_PARAMS, MAX_SKEW, REQUIRED_AUTH_QUERY_PARAMS
from sigv4_proxy.signing.model import MAX_PRESIGN_EXPIRES
from sigv4_proxy.tokens import (
    DSQL_ACTIONS,
    DSQL_SERVICE,
    FORM_AUTHORIZATION,
    RDS_ACTION,
    RDS_SERVICE,
    HostInfo,
    ParsedToken,
    QueryParam,
    TokenKind,
    host_info,
)

REQUIRED_PARAMS = REQUIRED_AUTH_QUERY_PARAMS
_UNRESERVED = re.compile(r"[A-Za-z0-9\-_.~%]")
SIGNATURE_SHAPE = re.compile(r"^[0-9a-f]{64}$")
_AMZ_DATE = re.compile(r"^\d{8}T\d{6}Z$")

KIND_LABELS: dict[TokenKind, str] = {"dsql": "Aurora DSQL", "rds": "RDS IAM", "presigned": "presigned URL"}
EXPECTED_SERVICE: dict[TokenKind, str] = {"dsql": DSQL_SERVICE, "rds": RDS_SERVICE}
TOKEN_COMMAND: dict[TokenKind, str] = {
    "dsql": "sigv4-proxy dsql-token --hostname {host}",
    "rds": "sigv4-proxy rds-token --hostname {host} --port PORT --username USER",
}


@dataclass(frozen=True)
class Context:
    now: datetime
    user: str | None
    host: HostInfo


Check = Callable[[ParsedToken, Context], Iterable[Finding]]


def _algorithm(t: ParsedToken) -> Algorithm:
    """The token's signing algorithm; an unknown or missing one is judged as SigV4's (the `algorithm` check
    reports it)."""
    return algorithm_named(t.algorithm) or V4


def _scope_read_right(t: ParsedToken) -> bool:
    """Whether the scope fields of the token are its algorithm's: they are read in SigV4's shape
    (key/date/region/service/terminator), which a SigV4a scope (no region: the regions travel in
    X-Amz-Region-Set) does not have."""
    return not _algorithm(t).uses_region_set


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
    if t.algorithm is not None and algorithm_named(t.algorithm) is None:
        v4a = "" if t.is_db_token else f" or {V4A.name} ({V4A.label})"
        yield finding("algorithm", algorithm=t.algorithm, v4a=v4a)
    if t.credential is not None:
        parts = t.credential.split("/")
        expected_parts = _algorithm(t).credential_elements
        if len(parts) != expected_parts:
            shown = "/".join([mask_access_key(parts[0]), *parts[1:]])
            yield finding("credential_shape", credential=shown)
        elif t.scope_terminator != "aws4_request" and _scope_read_right(t):
            yield finding("terminator", terminator=t.scope_terminator)
    if t.amz_date is not None and not _AMZ_DATE.match(t.amz_date):
        yield finding("amz_date_format", amz_date=t.amz_date)
    elif t.amz_date and t.scope_date and t.scope_date != t.amz_date[:8]:
        yield finding("scope_date", scope_date=t.scope_date, amz_date=t.amz_date)


def check_service(t: ParsedToken, ctx: Context) -> Iterator[Finding]:
    service = t.scope_service
    if service is None or not _scope_read_right(t):
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
    if t.scope_region is None or not _scope_read_right(t) or not t.hostname:
        return
    if ctx.host.region is None:
        if t.is_db_token:
            yield finding("region_unknown", hostname=t.hostname.lower(), scope_region=t.scope_region)
    elif ctx.host.region != t.scope_region:
        yield finding("region_mismatch", scope_region=t.scope_region, host_region=ctx.host.region)


def check_session_token(t: ParsedToken, ctx: Context) -> Iterator[Finding]:
    key = t.access_key_id or ""
    if key.startswith("ASIA") and not t.has_session_token:
        yield finding("temporary_key_without_token", key=mask_access_key(key))
    elif key.startswith("AKIA") and t.has_session_token:
        yield finding("token_with_long_term_key", key=mask_access_key(key))


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
        yield finding("not_yet_valid", ahead=format_duration(signed_at - ctx.now), amz_date=t.amz_date)
        return
    if t.form == FORM_AUTHORIZATION:
        if signed_at < ctx.now - MAX_SKEW:
            yield finding("header_date_expired", ago=format_duration(ctx.now - signed_at), amz_date=t.amz_date)
        return
    expires_at = t.expires_at
    if expires_at is None:
        return
    if expires_at < ctx.now:
        ago = format_duration(ctx.now - expires_at)
        yield finding("expired", ago=ago, expires_at=format_moment(expires_at))
    elif expires_at - ctx.now < timedelta(minutes=2):
        yield finding("expires_soon", left=format_duration(expires_at - ctx.now))


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
    own = [(p.raw_name, p.raw_value) for p in params if p.name not in AUTH_QUERY_PARAMS]
    if own != sorted(own):
        return True
    seen_auth = False
    for p in params:
        if p.name in AUTH_QUERY_PARAMS:
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
            severity: Severity = ERROR if ("+" in bad or " " in bad or "&" in bad) else WARNING
            shown = " ".join(repr(ch) for ch in bad)
            yield finding("query_unencoded", severity=severity, name=label, chars=shown, plus=plus)
        escapes = sorted(set(re.findall(r"%[0-9A-Fa-f]{2}", raw)) - set(re.findall(r"%[0-9A-F]{2}", raw)))
        if escapes:
            yield finding("query_lowercase_escapes", name=label, escapes=" ".join(escapes))


def _looks_form(raw: str) -> bool:
    """`+` between words (DBUser=iam+user) is form encoding; `+` inside base64 (tokens, keys) is not."""
    return bool(re.search(r"[A-Za-z]\+[A-Za-z]", raw)) and "%" not in raw and len(raw) < 64


def check_signature(t: ParsedToken, ctx: Context) -> Iterator[Finding]:
    # An HMAC-SHA256 signature has one shape; an ECDSA one (SigV4a) varies in length.
    if t.signature is not None and _algorithm(t) is V4 and not SIGNATURE_SHAPE.match(t.signature):
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


def format_moment(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


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
        return scrub_document(document, secrets_of(self.token))


def inspect_token(token: ParsedToken, *, now: datetime, user: str | None = None) -> Report:
    """Run every check of :data:`CHECKS` on `token`; `user` is the database user you log in as, if known."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    ctx = Context(now=now, user=user, host=host_info(token.hostname) if token.hostname else HostInfo("unknown"))
    findings = [item for check in CHECKS for item in check(token, ctx)]
    return Report(token, now, tuple(findings))
