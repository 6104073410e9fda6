"""Turn any upstream failure into one message: what the server said, and what to do about it.

This is the single place where a failed signed request becomes words for the user. Every door (the MCP
bridge, the HTTP listener, ``request``, ``doctor``) calls one of two functions:

    diagnose_response(status, headers, body, context=ctx)  # the server answered 4xx/5xx
    diagnose_exception(exc, context=ctx)                   # no usable answer: DNS, TCP, TLS, timeout, reset

and shows ``Diagnosis.message()``: ``HTTP 403 InvalidSignatureException: <AWS's message>. Diagnosis: <cause
and fix>``. The knowledge lives in :data:`RULES`, an ordered table (first match wins), so a new AWS error
shape is one row plus one test row.

Pure: standard library only, no I/O, cheap to import (the proxy's start-up path imports it). Nothing a
server echoes back (session tokens, signatures, bearer tokens, access key ids) survives into a message.
"""

from __future__ import annotations

import errno
import html
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

Headers = Mapping[str, str] | Iterable[tuple[str, str]]


class _LazyPattern:
    """A regular expression compiled on first use: the proxy imports this module at start-up, and compiling
    the whole knowledge table would cost milliseconds before any failure happened."""

    __slots__ = ("_compiled", "flags", "pattern")

    def __init__(self, pattern: str, flags: int = 0) -> None:
        self.pattern, self.flags = pattern, flags
        self._compiled: re.Pattern[str] | None = None

    @property
    def compiled(self) -> re.Pattern[str]:
        if self._compiled is None:
            self._compiled = re.compile(self.pattern, self.flags)
        return self._compiled

    def search(self, text: str) -> re.Match[str] | None:
        return self.compiled.search(text)

    def sub(self, replacement: str | Callable[[re.Match[str]], str], text: str) -> str:
        return self.compiled.sub(replacement, text)

    def findall(self, text: str) -> list[Any]:
        return self.compiled.findall(text)


def _lazy_re(pattern: str, flags: int = 0) -> _LazyPattern:
    return _LazyPattern(pattern, flags)


# ---------------------------------------------------------------------------------------------------------
# Kinds: stable machine-readable names. The retry policy (sigv4_proxy.retry) and the bridge key on these.
# ---------------------------------------------------------------------------------------------------------
# Answers from the server
SIGNATURE_MISMATCH = "signature_mismatch"
WRONG_SERVICE = "wrong_service"
WRONG_REGION = "wrong_region"
CLOCK_SKEW = "clock_skew"
EXPIRED_TOKEN = "expired_token"
INVALID_TOKEN = "invalid_token"
MISSING_SESSION_TOKEN = "missing_session_token"
UNEXPECTED_SESSION_TOKEN = "unexpected_session_token"
UNKNOWN_ACCESS_KEY = "unknown_access_key"
ACCESS_DENIED = "access_denied"
FORBIDDEN = "forbidden"
MISSING_AUTH = "missing_auth"
INCOMPLETE_SIGNATURE = "incomplete_signature"
UNSUPPORTED_ALGORITHM = "unsupported_algorithm"
UNAUTHORIZED = "unauthorized"
NOT_FOUND = "not_found"
METHOD_NOT_ALLOWED = "method_not_allowed"
PAYLOAD_TOO_LARGE = "payload_too_large"
BAD_REQUEST = "bad_request"
COLD_START = "cold_start"
THROTTLED = "throttled"
UNAVAILABLE = "unavailable"
GATEWAY_TIMEOUT = "gateway_timeout"
SERVER_ERROR = "server_error"
CLIENT_ERROR = "client_error"
UNEXPECTED_RESPONSE = "unexpected_response"
# No usable answer
DNS = "dns"
DNS_TEMPORARY = "dns_temporary"
CONNECTION_REFUSED = "connection_refused"
NETWORK_UNREACHABLE = "network_unreachable"
TLS_CERTIFICATE = "tls_certificate"
TLS = "tls"
CONNECT_TIMEOUT = "connect_timeout"
POOL_TIMEOUT = "pool_timeout"
WRITE_FAILED = "write_failed"
READ_TIMEOUT = "read_timeout"
TIMEOUT = "timeout"
CONNECTION_RESET = "connection_reset"
CONNECTION_CLOSED = "connection_closed"
CREDENTIALS = "credentials"
NETWORK_ERROR = "network_error"
PROXY_REFUSED = "proxy_refused"

# What a caller can do about a kind besides backing off: the bridge refreshes credentials once, or corrects
# its clock once, then re-signs and retries.
RECOVERY_REFRESH_CREDENTIALS = "refresh_credentials"
RECOVERY_CORRECT_CLOCK = "correct_clock"
_RECOVERY = {EXPIRED_TOKEN: RECOVERY_REFRESH_CREDENTIALS, CLOCK_SKEW: RECOVERY_CORRECT_CLOCK}

# Only this much of an error body is read for diagnosis; error bodies are small, HTML pages are not.
MAX_DIAGNOSED_BODY = 64 * 1024
_MAX_MESSAGE_CHARS = 600
# The hints of transient failures say what a retrying caller did; Diagnosis.with_attempts makes it exact.
_RETRY_CLAIM = _lazy_re(r"retried with (a longer )?backoff")


@dataclass(frozen=True)
class SigningContext:
    """How the failed request was signed, for comparing against what the server and the host imply.

    `access_key` is the masked key (``AKIA****MPLE``); its prefix tells long-term (AKIA) from temporary (ASIA)
    keys. `credential_method` is botocore's source name (env, sso, assume-role, shared-credentials-file, ...).
    `profile` names the profile for fixes like ``aws sso login --profile P``.

    `url` is the target URL (``--target-url``). `request_url` is the URL the failed request actually went to when
    that is another one (the HTTP listener forwards other paths of the origin; the legacy transport posts to
    the URL its event stream named); None means `url`. `transport` is ``"sse"`` when the request went over the
    legacy HTTP+SSE transport, ``"streamable-http"`` for Streamable HTTP, None when the caller does not know.
    """

    url: str
    region: str | list[str]
    service: str
    algorithm: str = "v4"
    access_key: str | None = None
    has_session_token: bool | None = None
    credential_method: str | None = None
    profile: str | None = None
    request_url: str | None = None
    transport: str | None = None

    @property
    def requested_path(self) -> str:
        """The path the failed request went to."""
        return urlsplit(self.request_url or self.url).path or "/"

    @property
    def host(self) -> str:
        return (urlsplit(self.url).hostname or "").lower()

    @property
    def host_port(self) -> str:
        parts = urlsplit(self.url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        host = parts.hostname or "?"
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True)
class Diagnosis:
    """One failure, understood.

    `status`/`error_type`/`aws_message` are what the server said (message: first paragraph, one line,
    redacted); `details` holds the rest (for a signature mismatch: the canonical request and string to sign
    the server expected). `cause` describes a failure with no HTTP answer (``connection to h:443 refused``).
    `hint` is our diagnosis: the cause and the fix. `retryable` means the same request may succeed later
    unchanged (whether it is *safe* to resend is the retry policy's call).
    """

    status: int | None
    error_type: str | None
    aws_message: str | None
    hint: str | None
    kind: str
    retryable: bool
    details: str | None = None
    cause: str | None = None

    @property
    def recovery(self) -> str | None:
        """``refresh_credentials`` or ``correct_clock`` when one re-signed retry after that may succeed."""
        return _RECOVERY.get(self.kind)

    def with_attempts(self, attempts: int) -> Diagnosis:
        """This diagnosis with its "retried with backoff" claim made true for a caller that tried `attempts`
        times: "tried 3 times with backoff", or "not retried". Unchanged (the same object) when the hint makes
        no such claim."""
        match = _RETRY_CLAIM.search(self.hint) if self.hint else None
        if match is None or self.hint is None:
            return self
        said = "not retried" if attempts <= 1 else f"tried {attempts} times with {match.group(1) or ''}backoff"
        return replace(self, hint=self.hint[: match.start()] + said + self.hint[match.end() :])

    def final_message(self, attempts: int = 1, reason: str = "") -> str:
        """The one line a caller that gave up shows: :meth:`message` made true for `attempts` attempts, plus
        the retry policy's last word (`reason`, e.g. "the server asked to retry after 5 min") unless the
        message already says it."""
        adjusted = self.with_attempts(attempts)
        message = adjusted.message()
        if reason.startswith("gave up after"):
            if attempts == 1:
                reason = "--retries is 0"
            elif adjusted is not self:
                reason = ""  # the hint now says how often it was tried
        if reason and "not resent" in reason and "not resent" in message:
            reason = ""
        return f"{message} ({reason})" if reason else message

    def message(self) -> str:
        """One line: HTTP status, AWS error type, AWS message, then our diagnosis with the fix."""
        if self.status is not None:
            head = f"HTTP {self.status}"
            if self.error_type:
                head += f" {self.error_type}"
            if self.aws_message:
                head += f": {_clip(self.aws_message)}"
        else:
            head = self.cause or "request failed"
        if not self.hint:
            return head
        return f"{_end_sentence(head)} Diagnosis: {self.hint}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (the HTTP listener's error body, ``--json`` outputs)."""
        return {
            "message": self.message(),
            "status": self.status,
            "error_type": self.error_type,
            "aws_message": self.aws_message,
            "diagnosis": self.hint,
            "kind": self.kind,
            "retryable": self.retryable,
            "details": self.details,
            "cause": self.cause,
        }


# ---------------------------------------------------------------------------------------------------------
# Redaction: servers echo Authorization headers, canonical requests and signatures back in error bodies.
# ---------------------------------------------------------------------------------------------------------
_REDACTIONS: list[tuple[re.Pattern[str], str]] = [
    # x-amz-security-token:VALUE (canonical request line), X-Amz-Security-Token=VALUE (query), header dumps
    (_lazy_re(r"(x-amz-security-token\s*[:=]\s*)[^\s&'\"<,;]+", re.I), r"\1****"),
    # Signature=hex, X-Amz-Signature=hex, "signature": "hex"
    (_lazy_re(r"((?:\b|-)signature\"?\s*[:=]\s*\"?)[0-9a-f]{16,}", re.I), r"\1****"),
    (_lazy_re(r"(<(SignatureProvided|Signature|X-Amz-Security-Token|SecurityToken)>)[^<]*", re.I), r"\1****"),
    (_lazy_re(r"(\bBearer\s+)[A-Za-z0-9._~+/=-]{8,}", re.I), r"\1****"),
]
_ACCESS_KEY = _lazy_re(r"\b((?:AKIA|ASIA|AROA|AIDA|AGPA|ANPA|ANVA|AIPA|APKA|ABIA|ACCA)[A-Z0-9]{12,})\b")


def _mask(key: str) -> str:
    return "****" if len(key) <= 8 else f"{key[:4]}****{key[-4:]}"


def redact(text: str) -> str:
    """Remove session tokens, signatures, bearer tokens and full access key ids from server-echoed text."""
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return _ACCESS_KEY.sub(lambda m: _mask(m.group(1)), text)


# ---------------------------------------------------------------------------------------------------------
# Parsing every AWS error shape
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AwsError:
    """What an error response says, whatever its shape. `fields` holds extra XML elements (Region,
    ServerTime, RequestTime, CanonicalRequest, StringToSign, ...)."""

    error_type: str | None
    message: str | None
    details: str | None = None
    fields: Mapping[str, str] = field(default_factory=dict)


def header_value(headers: Headers, name: str) -> str | None:
    """Case-insensitive lookup in a mapping or a list of pairs (first occurrence)."""
    lowered = name.lower()
    items = headers.items() if isinstance(headers, Mapping) else headers
    for key, value in items:
        if key.lower() == lowered:
            return value
    return None


def normalize_error_type(raw: str | None) -> str | None:
    """``com.amazon.coral.service#UnrecognizedClientException:http://internal...`` -> the bare type."""
    if not raw:
        return None
    value = raw.strip()
    # x-amzn-ErrorType carries a ":http://..." suffix; awsJson's __type a "namespace#" prefix.
    value = value.split(":", 1)[0]
    value = value.rsplit("#", 1)[-1]
    return value.strip() or None


def parse_aws_error(headers: Headers, body: bytes) -> AwsError:
    """Read the error type and message from ``x-amzn-ErrorType``, a JSON, XML or plain-text body."""
    header_type = normalize_error_type(header_value(headers, "x-amzn-ErrorType"))
    text = body[:MAX_DIAGNOSED_BODY].decode("utf-8", "replace").strip()
    parsed = _parse_json(text) or _parse_xml(text) or _parse_text(text, header_value(headers, "content-type"))
    error_type = header_type or parsed.error_type
    message, details = _split_message(parsed.message)
    details = "\n\n".join(part for part in (details, parsed.details) if part) or None
    return AwsError(
        error_type=error_type,
        message=redact(message) if message else None,
        details=redact(details) if details else None,
        fields={key: redact(value) for key, value in parsed.fields.items()},
    )


def _parse_json(text: str) -> AwsError | None:
    if not text.startswith("{"):
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    error = data.get("Error") if isinstance(data.get("Error"), dict) else None
    if error is None and isinstance(data.get("error"), dict):
        error = data["error"]  # JSON-RPC error object, or {"error": {"code", "message"}}
    source = error if error is not None else data
    message = _first_str(source, "message", "Message", "errorMessage", "error_description")
    if message is None and isinstance(data.get("error"), str):
        message = data["error"]
    error_type = _first_str(data, "__type", "code", "Code", "errorType") or _first_str(
        source, "Code", "code", "__type", "type"
    )
    if message is None and error_type is None:
        return None
    return AwsError(error_type=normalize_error_type(error_type), message=message)


def _first_str(data: Mapping[str, Any], *keys: str) -> str | None:
    for key in keys:
        value = data.get(key)
        if isinstance(value, str) and value.strip():
            return value
    return None


_XML_ELEMENT = _lazy_re(r"<([A-Za-z][\w.-]*)(?:\s[^>]*)?>([^<]*)</\1>", re.S)
_XML_DETAIL_FIELDS = {"CanonicalRequest": "canonical request", "StringToSign": "string to sign"}


def _parse_xml(text: str) -> AwsError | None:
    if not text.startswith("<") or "<html" in text[:200].lower() or "<!doctype html" in text[:200].lower():
        return None
    fields: dict[str, str] = {}
    for name, value in _XML_ELEMENT.findall(text):
        fields.setdefault(name, html.unescape(value).strip())
    if "Code" not in fields and "Message" not in fields:
        return None
    error_type = fields.pop("Code", None)
    message = fields.pop("Message", None)
    details = "\n\n".join(
        f"The {label} the server expected:\n{fields[name]}"
        for name, label in _XML_DETAIL_FIELDS.items()
        if fields.get(name)
    )
    return AwsError(error_type=error_type, message=message, details=details or None, fields=fields)


_TAG = _lazy_re(r"<[^>]+>")
_TITLE = _lazy_re(r"<title[^>]*>(.*?)</title>", re.I | re.S)


def _parse_text(text: str, content_type: str | None) -> AwsError:
    if not text:
        return AwsError(error_type=None, message=None)
    if "html" in (content_type or "").lower() or text[:200].lower().lstrip().startswith(("<!doctype", "<html")):
        title = _TITLE.search(text)
        text = html.unescape(title.group(1) if title else _TAG.sub(" ", text))
    return AwsError(error_type=None, message=" ".join(text.split()) if "\n\n" not in text else text)


def _split_message(message: str | None) -> tuple[str | None, str | None]:
    """First paragraph as one line; the rest (API Gateway's expected canonical request) as details."""
    if not message:
        return None, None
    head, _, rest = message.strip().partition("\n\n")
    return " ".join(head.split()), rest.strip() or None


# ---------------------------------------------------------------------------------------------------------
# What the host implies (service, region), via the endpoint inference table when it is available.
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class HostFacts:
    service: str | None
    region: str | None
    description: str | None  # "an API Gateway endpoint", "a Lambda function URL", ...


_DESCRIPTIONS = {
    "execute-api": "an API Gateway endpoint",
    "lambda": "a Lambda function URL",
    "bedrock-agentcore": "a Bedrock AgentCore endpoint",
    "dsql": "an Aurora DSQL endpoint",
}


def host_facts(url: str) -> HostFacts:
    """The service and region the URL's host implies (nothing for custom domains and loopback)."""
    from sigv4_proxy import endpoints  # stdlib-only inference table (never raises)

    service, region = endpoints.infer(url)
    description = _DESCRIPTIONS.get(service or "", f"a '{service}' endpoint" if service else None)
    return HostFacts(service, region, description)


# ---------------------------------------------------------------------------------------------------------
# The knowledge table
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Facts:
    """Everything a hint may use."""

    status: int
    error: AwsError
    context: SigningContext
    match: re.Match[str] | None
    headers: Headers
    canonical_request: str | None

    @property
    def text(self) -> str:
        return self.error.message or ""

    @property
    def host(self) -> HostFacts:
        return host_facts(self.context.url)


HintFn = Callable[[Facts], str]


@dataclass(frozen=True)
class Rule:
    """One row of knowledge. Matches when every given criterion holds (at least one must be given):
    the AWS error type is one of `types`, the AWS message matches `pattern`, the status is in `statuses`."""

    kind: str
    hint: str | HintFn
    retryable: bool = False
    types: frozenset[str] = frozenset()
    pattern: _LazyPattern | None = None
    statuses: frozenset[int] = frozenset()

    def matches(self, status: int, error: AwsError) -> re.Match[str] | bool | None:
        if self.types and (error.error_type or "") not in self.types:
            return False
        if self.statuses and status not in self.statuses:
            return False
        if self.pattern is not None:
            return self.pattern.search(error.message or "") or False
        return True


def _flag_region(ctx: SigningContext) -> str:
    return ctx.region if isinstance(ctx.region, str) else ",".join(ctx.region)


def _single_region(ctx: SigningContext) -> str | None:
    if ctx.algorithm == "v4a":
        return None
    return ctx.region if isinstance(ctx.region, str) else None


def _scope_mismatches(facts: Facts) -> list[str]:
    """Configured service/region against what the host implies."""
    ctx, host = facts.context, facts.host
    fixes = []
    if host.service and host.service != ctx.service:
        fixes.append(
            f"signed for service '{ctx.service}' but {ctx.host} is {host.description}: "
            f"use --service-name {host.service}"
        )
    region = _single_region(ctx)
    if host.region and region and host.region != region:
        fixes.append(f"signed for region '{region}' but {ctx.host} is in {host.region}: use --region {host.region}")
    return fixes


def _first_difference(ours: str, theirs: str) -> str | None:
    ours_lines, their_lines = ours.split("\n"), theirs.split("\n")
    for number, (mine, server) in enumerate(zip(ours_lines, their_lines, strict=False), start=1):
        if mine != server:
            return f"line {number}: we signed {redact(mine)!r}, the server expected {redact(server)!r}"
    if len(ours_lines) != len(their_lines):
        return f"we signed {len(ours_lines)} lines, the server expected {len(their_lines)}"
    return None


_EXPECTED_CANONICAL = _lazy_re(r"The Canonical String for this request should have been\s*'(.*?)'\s*(?:\n\n|$)", re.S)


def _signature_hint(facts: Facts) -> str:
    fixes = _scope_mismatches(facts)
    if fixes:
        return "; ".join(fixes)
    ctx = facts.context
    expected = _EXPECTED_CANONICAL.search(facts.error.details or "")
    if facts.canonical_request and expected:
        difference = _first_difference(facts.canonical_request, expected.group(1))
        if difference:
            return (
                f"the request the server received differs from the one we signed ({difference}): something "
                "between us and the server (a proxy, load balancer or custom domain mapping) rewrote it; "
                "point --target-url at the endpoint itself"
            )
    key = f" {ctx.access_key}" if ctx.access_key else ""
    credentials = (
        f"the secret key does not belong to access key{key} (check AWS_SECRET_ACCESS_KEY or the profile's "
        "credentials; `aws sts get-caller-identity` tests them), or something between us and the server changed "
        "the request (path, host or headers)"
    )
    if facts.host.service is None:
        lead = (
            f"host {ctx.host} does not tell its service and region: check that '{ctx.service}' and "
            f"'{_flag_region(ctx)}' are the endpoint's; otherwise "
        )
    else:
        lead = f"service '{ctx.service}' and region '{_flag_region(ctx)}' fit the host, so "
    parts = [lead + credentials]
    if ctx.algorithm == "v4a":
        parts.append("if the endpoint does not support SigV4a, use --sig-version v4")
    return "; ".join(parts)


def _skew_hint(facts: Facts) -> str:
    from sigv4_proxy import clock  # same package, stdlib only

    offset = clock.offset_from_skew_error(facts.text, facts.error.fields)
    if offset is None:
        date = header_value(facts.headers, "date")
        lead = "this machine's clock and the server's differ by more than 5 minutes"
        if date:
            lead += f" (server time: {date})"
    else:
        lead = f"this machine's clock is {clock.describe_offset(offset)} the server's"
    return (
        f"{lead}: signatures are valid for 5 minutes around the server's time. Sync the clock "
        "(Linux: `sudo chronyc makestep` or `sudo timedatectl set-ntp true`; macOS: `sudo sntp -sS time.apple.com`)"
    )


def _expired_token_hint(facts: Facts) -> str:
    ctx = facts.context
    method = ctx.credential_method or ""
    profile = f" --profile {ctx.profile}" if ctx.profile else ""
    if method == "sso" or method.startswith("sso"):
        return (
            f"the AWS SSO session has ended: run `aws sso login{profile}`; the proxy keeps running and uses the "
            "new credentials on the next request"
        )
    if method == "env":
        return (
            "the temporary credentials in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN have expired "
            "and environment credentials cannot refresh: export fresh ones and restart, or use a profile that "
            "refreshes itself (SSO, role_arn + source_profile, credential_process)"
        )
    if method in {"shared-credentials-file", "config-file"}:
        return (
            f"the temporary credentials stored in the{profile or ' default'} profile have expired: write fresh "
            "ones, or configure a profile that refreshes itself (sso_session, role_arn + source_profile, "
            "credential_process)"
        )
    if method.startswith("assume-role"):
        return (
            "the assumed-role credentials expired and could not be renewed: the source credentials of the role"
            f" profile{profile} have probably expired too (`aws sts get-caller-identity{profile}` shows it)"
        )
    if method == "custom-process":
        return (
            "credential_process returned credentials that have expired: check that the command prints a "
            "fresh Expiration"
        )
    if method in {"iam-role", "container-role"}:
        return (
            "instance/container role credentials refresh automatically; they are still expired after a refresh:"
            " check the metadata / container credentials endpoint and the local clock"
        )
    return (
        "the temporary credentials (session token) have expired: renew them (SSO: `aws sso login"
        f"{profile}`; assumed role: assume it again; environment: export fresh AWS_* variables)"
    )


def _token_hint(facts: Facts) -> str:
    ctx = facts.context
    key = ctx.access_key or ""
    if key.startswith("ASIA") and ctx.has_session_token is False:
        return (
            f"access key {key} is a temporary key (ASIA…) but no session token was sent: set AWS_SESSION_TOKEN "
            "(or aws_session_token in the profile) together with the key"
        )
    if key.startswith("AKIA") and ctx.has_session_token:
        return (
            f"access key {key} is a long-term key (AKIA…) but a session token was sent with it: unset "
            "AWS_SESSION_TOKEN (or aws_session_token in the profile); it belongs to other credentials"
        )
    shown = f" {key}" if key else ""
    causes = ["the key was deleted or deactivated"]
    if ctx.has_session_token:  # the session token is a suspect only when one was sent
        causes.append("the key and token come from different credentials")
    causes.append("the key belongs to another partition (China, GovCloud)")
    region = _single_region(ctx)
    if region:
        causes.append(f"region {region} is not enabled for the account")
    with_token = " with its session token" if ctx.has_session_token else ""
    return (
        f"AWS does not recognise access key{shown}{with_token}: {', '.join(causes[:-1])}, or {causes[-1]}; "
        "check with `aws sts get-caller-identity`"
    )


def _token_kind(facts: Facts, default: str) -> str:
    """A rejected key/token is most often a session token missing from, or added to, the key."""
    key = facts.context.access_key or ""
    if key.startswith("ASIA") and facts.context.has_session_token is False:
        return MISSING_SESSION_TOKEN
    if key.startswith("AKIA") and facts.context.has_session_token:
        return UNEXPECTED_SESSION_TOKEN
    return default


_INVOKE_ACTIONS = {
    "execute-api": "execute-api:Invoke",
    "lambda": "lambda:InvokeFunctionUrl",
    "bedrock-agentcore": "bedrock-agentcore:InvokeAgentRuntime",
}
_NOT_AUTHORIZED = _lazy_re(
    r"(?:User|Principal):?\s*(?P<principal>\S+?)\s+is not authorized to perform:?\s*(?P<action>[\w*-]+:[\w*-]+)"
    r"(?:\s+on resource:?\s*(?P<resource>\S+?))?(?=[\s.,;]|$)"
    r"(?P<rest>.*)",
    re.I | re.S,
)
_EXPLICIT_DENY = _lazy_re(r"explicit deny in (?:an? )?([\w -]+?policy)", re.I)
_NO_POLICY = _lazy_re(r"because no ([\w -]+?policy) allows", re.I)


def _access_denied_hint(facts: Facts) -> str:
    match = _NOT_AUTHORIZED.search(facts.text)
    ctx = facts.context
    if match is None:
        action = _INVOKE_ACTIONS.get(ctx.service)
        needed = f" needs {action} on this resource" if action else " lacks permission for this request"
        hint = f"the caller{needed}: add it to the IAM policy of the role/user behind the credentials"
        if ctx.service == "lambda":
            hint += " and check that the function URL's auth type is AWS_IAM and its resource policy allows you"
        return hint + " (`aws sts get-caller-identity` shows who the caller is)"
    principal, action, resource = match.group("principal"), match.group("action"), match.group("resource")
    on = f" on {resource}" if resource else ""
    if principal.lower() == "anonymous":
        return (
            f"the request arrived unsigned (principal 'anonymous'): a proxy or redirect in between dropped the "
            f"Authorization header, or the target URL is not the signed endpoint; {action}{on} must be "
            "requested with a signature"
        )
    resource, masked_note = _unmask_account(resource, principal) if resource else (resource, "")
    on = f" on {resource}" if resource else ""
    deny = _EXPLICIT_DENY.search(match.group("rest") or "")
    if deny:
        return (
            f"an explicit Deny in {_with_article(deny.group(1))} blocks {action}{on} for {principal}: an Allow "
            f"elsewhere cannot override it; remove or narrow that Deny{masked_note}"
        )
    missing = _NO_POLICY.search(match.group("rest") or "")
    where = _with_article(missing.group(1)) if missing else "the IAM policy (and the resource policy, if any)"
    return f"missing IAM permission: allow {action}{on} for {principal} in {where}{masked_note}"


# API Gateway masks the account id in the resource ARN of its deny message (``arn:aws:execute-api:us-east-1:
# ********9012:abc123/prod/POST/mcp``): such an ARN cannot be pasted into a policy. Account ids are not secrets.
_MASKED_ACCOUNT = _lazy_re(r"^(arn:[\w-]+:[\w-]+:[\w-]*:)\*+([0-9]{0,11}):")
_ARN_ACCOUNT = _lazy_re(r"^arn:[\w-]+:[\w-]+:[\w-]*:([0-9]{12}):")


def _unmask_account(resource: str, principal: str) -> tuple[str, str]:
    """The resource ARN with the server-masked account id restored from the principal's ARN when the digits
    the server left visible match it (the API is in the caller's account); otherwise the ARN unchanged and a
    note saying what to put in place of the mask."""
    masked = _MASKED_ACCOUNT.search(resource)
    if masked is None:
        return resource, ""
    visible = masked.group(2)
    own = _ARN_ACCOUNT.search(principal)
    if own is not None and visible and own.group(1).endswith(visible):
        return masked.group(1) + own.group(1) + resource[masked.end() - 1 :], ""
    mask = resource[len(masked.group(1)) : masked.end() - 1]
    which = f", the one ending in {visible}," if visible else ""
    return resource, (
        f" (the server masks the account id in the resource ARN: write the id of the account that owns the "
        f"resource{which} in place of {mask})"
    )


def _with_article(noun: str) -> str:
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


def _wrong_service_hint(facts: Facts) -> str:
    expected = facts.match.group(1) if facts.match else None
    expected = expected or facts.host.service
    if not expected:
        return f"the server does not accept service '{facts.context.service}': set --service-name to its service"
    signed = facts.context.service
    return f"signed for service '{signed}' but the server expects '{expected}': use --service-name {expected}"


# Where a server names the region it wants: S3 "the region 'us-east-1' is wrong; expecting 'eu-central-1'",
# S3-compatible servers "Credential should be scoped to correct region: 'eu-central-1'".
_REGION_IN_MESSAGE = _lazy_re(r"expecting '([a-z0-9-]+)'|scoped to (?:the )?correct region:? '?([a-z0-9-]+)", re.I)


def _expected_region(facts: Facts) -> str | None:
    """The region the server wants: from its message, S3's <Region> element, or the endpoint's host name."""
    found = _REGION_IN_MESSAGE.search(facts.text)
    if found:
        return found.group(1) or found.group(2)
    return facts.error.fields.get("Region") or facts.host.region


def _wrong_region_hint(facts: Facts) -> str:
    ctx = facts.context
    signed = _flag_region(ctx)
    expected = _expected_region(facts)
    if expected == signed:
        expected = None  # suggesting the region that was just refused helps nobody
    if ctx.algorithm == "v4a":
        if expected:
            return (
                f"signed for region set '{signed}' but the endpoint is in {expected}: use --region-set {expected} "
                "(or a set that includes it)"
            )
        return (
            f"the endpoint's region is not in region set '{signed}': use --region-set with the endpoint's "
            "region, or --region-set '*' for any region"
        )
    if expected:
        return f"signed for region '{signed}' but the endpoint is in {expected}: use --region {expected}"
    # No region to suggest: a placeholder, never the region that was just refused.
    return (
        f"the endpoint is not in region '{signed}': use --region REGION with the endpoint's region (AWS host "
        "names carry it, e.g. abc123.execute-api.REGION.amazonaws.com; for a custom domain, the region of the "
        "API behind it)"
    )


def _missing_auth_hint(facts: Facts) -> str:
    service = facts.context.service
    if service == "execute-api" or facts.host.service == "execute-api":
        return (
            "API Gateway answers this both for unsigned requests and for a path or method the API does not "
            "define: check the target URL's path (stage name included, e.g. /prod/mcp) and the method"
        )
    return (
        "the server saw no signature: a proxy or redirect in between dropped the Authorization header, or the "
        "path/method does not exist on this endpoint; check the target URL"
    )


def _incomplete_hint(facts: Facts) -> str:
    if "key=value pair" in facts.text or "equal-sign" in facts.text:
        return (
            "the server received an Authorization header that is not a SigV4 signature (e.g. a bearer token): "
            "remove the client's own Authorization header so that the signature can take its place"
        )
    if re.search(r"ISO.?8601", facts.text):
        return (
            "the X-Amz-Date header was altered or malformed on the way: something between us and the server rewrote it"
        )
    return (
        "the server received an incomplete or malformed signature: something between us and the server "
        "altered the Authorization or X-Amz-* headers"
    )


# The signing algorithms, by --sig-version.
_ALGORITHMS = {"v4": "AWS4-HMAC-SHA256", "v4a": "AWS4-ECDSA-P256-SHA256"}
_SIG_NAMES = {"v4": "SigV4", "v4a": "SigV4a"}
# How AWS services refuse a signature algorithm. Coral services (API Gateway, Lambda, STS, ...):
# IncompleteSignatureException "Unsupported AWS 'algorithm': 'AWS4-ECDSA-P256-SHA256' (only AWS4-HMAC-SHA256 for
# now). ". S3: InvalidRequest "The authorization mechanism you have provided is not supported. Please use
# AWS4-HMAC-SHA256.", InvalidArgument "Unsupported Authorization Type", presigned URLs "X-Amz-Algorithm only
# supports "AWS4-HMAC-SHA256"".
_UNSUPPORTED_ALGORITHM = (
    r"Unsupported AWS 'algorithm'|authorization mechanism you have provided is not supported|"
    r"Unsupported Authorization Type|X-Amz-Algorithm only supports|"
    r"Unsupported (?:authorization|signing|signature) algorithm"
)
_REFUSED_ALGORITHM = _lazy_re(r"'algorithm'\W+'([^']*)'", re.I)
_ACCEPTED_ALGORITHM = _lazy_re(r"(?:\buse|\bonly|\bsupports)\W+(AWS4-[A-Z0-9-]+)", re.I)


def _unsupported_algorithm_hint(facts: Facts) -> str:
    ours = facts.context.algorithm if facts.context.algorithm in _ALGORITHMS else "v4"
    other = "v4a" if ours == "v4" else "v4"
    signed_with = f"{_SIG_NAMES[ours]} ({_ALGORITHMS[ours]})"
    refused = _REFUSED_ALGORITHM.search(facts.text)
    if refused and refused.group(1) != _ALGORITHMS[ours]:
        return (
            f"the server saw the signature algorithm '{refused.group(1)}' but we signed with {signed_with}: "
            "something between us and the server altered the Authorization header"
        )
    accepted = _ACCEPTED_ALGORITHM.search(facts.text)
    wanted = accepted.group(1).upper() if accepted else None
    if wanted == _ALGORITHMS[ours]:
        return (
            f"the server asks for {wanted}, the algorithm we signed with: something between us and the server "
            "replaced the Authorization header (or the request carried another signature, e.g. in its query string)"
        )
    if wanted == _ALGORITHMS[other]:
        return (
            f"the server does not accept {signed_with} signatures, it wants {_SIG_NAMES[other]}: use "
            f"--sig-version {other}"
        )
    if ours == "v4a":
        return f"the server does not accept {signed_with} signatures: use --sig-version v4"
    return (
        f"the server does not accept the signature algorithm we used, {signed_with}: if it wants SigV4a, use "
        "--sig-version v4a; otherwise something between us and the server replaced the Authorization header"
    )


def _forbidden_hint(facts: Facts) -> str:
    return (
        "API Gateway answered 'Forbidden' without naming a permission: the stage may require an API key (send it"
        " with --headers x-api-key=KEY), a private API was called outside its VPC endpoint, a WAF rule blocked "
        "the request, or the path does not exist on a custom domain mapping"
    )


def _not_found_hint(facts: Facts) -> str:
    ctx = facts.context
    path = ctx.requested_path  # what was requested: the HTTP listener forwards other paths than the target's
    if _is_legacy_sse(ctx):
        return (
            f"nothing at {path} on {ctx.host}: check the target URL's path (legacy HTTP+SSE servers usually serve "
            "their event stream at GET /sse, after the stage or prefix if any, and take messages at POST "
            "/messages/; Streamable HTTP servers serve /mcp). For a message sent in a session, the server has "
            "forgotten the session (it restarted, or its event stream ended)"
        )
    return (
        f"nothing at {path} on {ctx.host}: check the target URL's path (MCP servers usually serve /mcp, legacy "
        "HTTP+SSE ones GET /sse and POST /messages/; API Gateway needs the stage, e.g. /prod/mcp; AgentCore "
        "/runtimes/<url-encoded ARN>/invocations). For an MCP request with a session id, the server has "
        "forgotten the session"
    )


def _is_legacy_sse(ctx: SigningContext) -> bool:
    """The request went over the legacy HTTP+SSE transport, or to one of its usual paths."""
    if ctx.transport is not None:
        return ctx.transport == "sse"
    target = (urlsplit(ctx.url).path or "/").rstrip("/")
    return target.endswith("/sse") or "/messages" in ctx.requested_path


def _cold_start_hint(facts: Facts) -> str:
    return (
        "the backend is not ready (Bedrock AgentCore answers 424 while a runtime cold-starts or when its container"
        " fails): retried with a longer backoff; if it persists, check the runtime's CloudWatch logs"
    )


def _text_hint(text: str) -> HintFn:
    return lambda _facts: text


def _rule(
    kind: str,
    hint: str | HintFn,
    *,
    retryable: bool = False,
    types: Iterable[str] = (),
    pattern: str | None = None,
    statuses: Iterable[int] = (),
) -> Rule:
    return Rule(
        kind=kind,
        hint=hint,
        retryable=retryable,
        types=frozenset(types),
        pattern=_lazy_re(pattern, re.I) if pattern else None,
        statuses=frozenset(statuses),
    )


# Order matters: specific message patterns first (API Gateway reports an expired signature as
# InvalidSignatureException), then error types, then bare statuses.
RULES: tuple[Rule, ...] = (
    _rule(
        CLOCK_SKEW,
        _skew_hint,
        pattern=r"Signature expired|Signature not yet current|not yet valid|"
        r"request time and the current time is too large|Request has expired",
    ),
    _rule(CLOCK_SKEW, _skew_hint, types={"RequestTimeTooSkewed", "RequestExpired", "RequestInTheFuture"}),
    _rule(EXPIRED_TOKEN, _expired_token_hint, types={"ExpiredToken", "ExpiredTokenException", "TokenExpired"}),
    _rule(
        EXPIRED_TOKEN,
        _expired_token_hint,
        pattern=r"security token included in the request is expired|"
        r"(provided|security) token has expired|token (is|has) expired",
    ),
    # Before the IncompleteSignatureException/InvalidRequest types: a refused algorithm is not a rewritten header.
    _rule(UNSUPPORTED_ALGORITHM, _unsupported_algorithm_hint, pattern=_UNSUPPORTED_ALGORITHM),
    _rule(WRONG_SERVICE, _wrong_service_hint, pattern=r"Credential should be scoped to correct service: '([^']+)'"),
    _rule(
        WRONG_REGION,
        _wrong_region_hint,
        pattern=r"Credential should be scoped to a valid region|"
        r"the region '[^']+' is wrong|Credential should be scoped to (?:the )?correct region",
    ),
    _rule(INCOMPLETE_SIGNATURE, _incomplete_hint, pattern=r"Credential should be scoped with a valid terminator"),
    _rule(
        INCOMPLETE_SIGNATURE,
        _text_hint(
            "the date in the credential scope differs from X-Amz-Date: something "
            "between us and the server rewrote the date headers"
        ),
        pattern=r"Date in Credential scope does not match",
    ),
    _rule(UNKNOWN_ACCESS_KEY, _token_hint, types={"InvalidAccessKeyId"}),
    _rule(UNKNOWN_ACCESS_KEY, _token_hint, pattern=r"Access Key Id you provided does not exist"),
    _rule(INVALID_TOKEN, _token_hint, types={"UnrecognizedClientException", "InvalidClientTokenId", "InvalidToken"}),
    _rule(INVALID_TOKEN, _token_hint, pattern=r"security token included in the request is invalid"),
    _rule(SIGNATURE_MISMATCH, _signature_hint, types={"SignatureDoesNotMatch", "InvalidSignatureException"}),
    _rule(SIGNATURE_MISMATCH, _signature_hint, pattern=r"request signature we calculated does not match"),
    _rule(
        INCOMPLETE_SIGNATURE,
        _incomplete_hint,
        types={
            "IncompleteSignature",
            "IncompleteSignatureException",
            "AuthorizationHeaderMalformed",
            "InvalidSignature",
        },
    ),
    _rule(ACCESS_DENIED, _access_denied_hint, pattern=r"is not authorized to perform"),
    _rule(
        MISSING_AUTH, _missing_auth_hint, types={"MissingAuthenticationToken", "MissingAuthenticationTokenException"}
    ),
    _rule(MISSING_AUTH, _missing_auth_hint, pattern=r"Missing Authentication Token"),
    _rule(FORBIDDEN, _forbidden_hint, types={"ForbiddenException"}),
    _rule(
        ACCESS_DENIED,
        _access_denied_hint,
        types={
            "AccessDenied",
            "AccessDeniedException",
            "UnauthorizedOperation",
            "AuthorizationError",
            "UnauthorizedException",
        },
    ),
    _rule(
        THROTTLED,
        _text_hint(
            "the server is throttling requests: retried with backoff; if it persists, "
            "lower the request rate or ask for a higher quota"
        ),
        retryable=True,
        types={
            "ThrottlingException",
            "Throttling",
            "TooManyRequestsException",
            "SlowDown",
            "RequestLimitExceeded",
            "ThrottledException",
            "ProvisionedThroughputExceededException",
        },
    ),
    _rule(
        THROTTLED,
        _text_hint(
            "the server is throttling requests (429): retried with backoff; if it "
            "persists, lower the request rate or ask for a higher quota"
        ),
        retryable=True,
        statuses={429},
    ),
    _rule(COLD_START, _cold_start_hint, retryable=True, statuses={424}),
    _rule(
        UNAVAILABLE,
        _text_hint("the service is temporarily unavailable: retried with backoff"),
        retryable=True,
        types={"ServiceUnavailable", "ServiceUnavailableException", "InternalFailure"},
        statuses={500, 502, 503},
    ),
    _rule(
        PAYLOAD_TOO_LARGE,
        _text_hint(
            "the request body is over the endpoint's limit (API Gateway: 10 MB, "
            "Lambda function URLs: 6 MB): send less per request"
        ),
        statuses={413},
    ),
    _rule(NOT_FOUND, _not_found_hint, statuses={404}),
    _rule(
        METHOD_NOT_ALLOWED,
        _text_hint(
            "the endpoint does not accept this HTTP method on this path: check the "
            "target URL (an MCP endpoint takes POST, and GET only for its "
            "event stream)"
        ),
        statuses={405},
    ),
    _rule(
        UNAUTHORIZED,
        _text_hint(
            "the server asks for a different kind of authentication (401; e.g. an OAuth"
            " bearer token or a Cognito authorizer), not IAM: check that the endpoint "
            "uses AWS_IAM authorization"
        ),
        statuses={401},
    ),
    _rule(ACCESS_DENIED, _access_denied_hint, statuses={403}),
    _rule(
        UNAVAILABLE,
        _text_hint(
            "the gateway could not get a valid answer from the backend (502/503; "
            "restarting, overloaded, or a malformed backend response): retried with "
            "backoff; if it persists, check the backend's logs"
        ),
        retryable=True,
        statuses={502, 503},
    ),
    _rule(
        GATEWAY_TIMEOUT,
        _text_hint(
            "the gateway gave up waiting for the backend (504; API Gateway's limit is "
            "29 s by default); the backend may still have run the request, so it is "
            "only resent when that is safe; check the backend's duration and logs"
        ),
        retryable=True,
        statuses={504},
    ),
    _rule(
        SERVER_ERROR,
        _text_hint(
            "the server failed while handling the request: it may have been executed, "
            "so it was not resent; check the server's logs"
        ),
        statuses=range(500, 600),
    ),
    _rule(BAD_REQUEST, _text_hint("the server rejected the request as invalid: see its message"), statuses={400}),
    _rule(CLIENT_ERROR, _text_hint("the server rejected the request: see its message"), statuses=range(400, 500)),
)


def diagnose_response(
    status: int,
    headers: Headers,
    body: bytes,
    *,
    context: SigningContext,
    canonical_request: str | None = None,
) -> Diagnosis:
    """Diagnose an HTTP answer (4xx/5xx) to a signed request.

    `body` may be the first :data:`MAX_DIAGNOSED_BODY` bytes of the error body. `canonical_request`, when the
    caller has it, lets a signature mismatch name the first line the server saw differently.
    """
    headers = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
    error = parse_aws_error(headers, body)
    for rule in RULES:
        matched = rule.matches(status, error)
        if matched is False:
            continue
        facts = Facts(
            status, error, context, matched if isinstance(matched, re.Match) else None, headers, canonical_request
        )
        kind = _token_kind(facts, rule.kind) if rule.kind in (INVALID_TOKEN, UNKNOWN_ACCESS_KEY) else rule.kind
        hint = rule.hint if isinstance(rule.hint, str) else rule.hint(facts)
        return Diagnosis(status, error.error_type, error.message, hint, kind, rule.retryable, error.details)
    hint = None if status < 400 else "the server rejected the request: see its message"
    kind = UNEXPECTED_RESPONSE if status < 400 else CLIENT_ERROR
    return Diagnosis(status, error.error_type, error.message, hint, kind, False, error.details)


# ---------------------------------------------------------------------------------------------------------
# The proxy a request went through: HTTPS_PROXY / HTTP_PROXY / ALL_PROXY and NO_PROXY from the environment, read
# the way httpx reads them with trust_env (its default, which every door uses): urllib's
# getproxies_environment(), then httpx's proxy mounts (most specific pattern first).
# ---------------------------------------------------------------------------------------------------------
_PROXY_LABELS = {"https": "the HTTPS proxy", "http": "the HTTP proxy", "all": "the proxy"}


@dataclass(frozen=True)
class ProxyInUse:
    """A proxy from the environment. `url` may carry credentials: show :attr:`display`."""

    url: str
    variable: str  # the environment variable it came from, as spelled: HTTPS_PROXY, https_proxy, ALL_PROXY, ...

    @property
    def display(self) -> str:
        """The URL with its credentials masked: ``http://user:****@proxy.corp:3128``."""
        parts = urlsplit(self.url)
        userinfo, at, host = parts.netloc.rpartition("@")
        if not at:
            return self.url
        user, colon, _ = userinfo.partition(":")
        shown = f"{user}:****" if colon else "****"  # a user name alone is often a token
        return parts._replace(netloc=f"{shown}@{host}").geturl()

    @property
    def label(self) -> str:
        """``the HTTPS proxy`` (from HTTPS_PROXY), ``the HTTP proxy``, ``the proxy`` (ALL_PROXY)."""
        return _PROXY_LABELS.get(self.variable.lower().removesuffix("_proxy"), "the proxy")

    def describe(self) -> str:
        return f"{self.label} {self.display} (from {self.variable})"


def environment_proxies(environ: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """``{"https": (value, variable name), "no": ...}`` exactly as urllib.request.getproxies_environment() reads
    the environment (a lowercase variable wins; an empty lowercase one unsets; HTTP_PROXY is ignored in CGI)."""
    found: dict[str, tuple[str, str]] = {}
    for name, value in environ.items():
        if value and name.lower().endswith("_proxy"):
            found[name.lower()[:-6]] = (value, name)
    if "REQUEST_METHOD" in environ:
        found.pop("http", None)
    for name, value in environ.items():
        if name.endswith("_proxy"):
            if value:
                found[name.lower()[:-6]] = (value, name)
            else:
                found.pop(name.lower()[:-6], None)
    return found


@dataclass(frozen=True)
class _ProxyPattern:
    """httpx's URLPattern: ``all://``, ``https://``, ``all://*example.com``, ``all://10.0.0.1``, ``http://h:8080``."""

    scheme: str
    host: str
    port: int | None

    @classmethod
    def parse(cls, pattern: str) -> _ProxyPattern:
        parts = urlsplit(pattern)
        netloc = parts.netloc.rpartition("@")[2]
        if netloc.startswith("["):  # [::1]:8080
            host, _, rest = netloc[1:].partition("]")
            port = rest.removeprefix(":")
        else:
            host, _, port = netloc.partition(":")
        return cls(
            "" if parts.scheme == "all" else parts.scheme,
            "" if host == "*" else host.lower(),
            int(port) if port.isdigit() else None,
        )

    @property
    def priority(self) -> tuple[int, int, int]:
        return (0 if self.port is not None else 1, -len(self.host), -len(self.scheme))

    def matches(self, scheme: str, host: str, port: int | None) -> bool:
        if self.scheme and self.scheme != scheme:
            return False
        if self.host:
            if self.host.startswith("*."):
                if not (host.endswith(self.host[1:]) and len(host) > len(self.host) - 1):
                    return False
            elif self.host.startswith("*"):
                domain = self.host[1:]
                if not (host == domain or host.endswith("." + domain)):
                    return False
            elif host != self.host:
                return False
        return self.port is None or self.port == port


def _no_proxy_pattern(entry: str) -> str:
    """A NO_PROXY entry as httpx mounts it (curl's rules: ``.example.com`` subdomains only, ``example.com``
    the domain and its subdomains, IP addresses and ``localhost`` exactly)."""
    import ipaddress

    if "://" in entry:
        return entry
    address = entry.split("/")[0]
    for kind, shape in ((ipaddress.IPv4Address, "all://{}"), (ipaddress.IPv6Address, "all://[{}]")):
        try:
            kind(address)
        except ValueError:
            continue
        return shape.format(entry)
    return f"all://{entry}" if entry.lower() == "localhost" else f"all://*{entry}"


def proxy_for(url: str, environ: Mapping[str, str] | None = None, *, honour_no_proxy: bool = True) -> ProxyInUse | None:
    """The proxy httpx (trust_env) sends a request for `url` through, per `environ` (default: os.environ,
    read now); None for a direct connection. Pure apart from that default. System proxy settings (macOS,
    Windows registry), which urllib adds when the environment has none, are not looked at."""
    if environ is None:
        import os

        environ = os.environ
    found = environment_proxies(environ)
    mounts: list[tuple[_ProxyPattern, ProxyInUse | None]] = []
    for scheme in ("http", "https", "all"):
        if scheme in found:
            value, variable = found[scheme]
            proxy = ProxyInUse(value if "://" in value else f"http://{value}", variable)
            mounts.append((_ProxyPattern.parse(f"{scheme}://"), proxy))
    if honour_no_proxy and "no" in found:
        for entry in (part.strip() for part in found["no"][0].split(",")):
            if entry == "*":
                return None
            if entry:
                mounts.append((_ProxyPattern.parse(_no_proxy_pattern(entry)), None))
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    if port == {"http": 80, "https": 443}.get(scheme):
        port = None  # httpx drops a URL's default port before matching
    host = (parts.hostname or "").lower()
    for pattern, proxy in sorted(mounts, key=lambda mount: mount[0].priority):
        if pattern.matches(scheme, host, port):
            return proxy
    return None


# ---------------------------------------------------------------------------------------------------------
# Failures without an HTTP answer
# ---------------------------------------------------------------------------------------------------------
def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not known for known in seen) and len(seen) < 16:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _class_names(exc: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__}


_DNS_TEXT = _lazy_re(
    r"Name or service not known|nodename nor servname|No address associated|getaddrinfo failed|"
    r"no such host|Name does not resolve|Temporary failure in name resolution",
    re.I,
)
_REFUSED_TEXT = _lazy_re(r"Connection refused|actively refused|ECONNREFUSED", re.I)
_RESET_TEXT = _lazy_re(r"Connection reset|ECONNRESET|Broken pipe|connection aborted", re.I)
_CLOSED_TEXT = _lazy_re(
    r"Server disconnected|peer closed connection|incomplete chunked read|"
    r"without sending a (?:complete )?(?:response|message)",
    re.I,
)
_CERT_TEXT = _lazy_re(
    r"CERTIFICATE_VERIFY_FAILED|certificate verify failed|hostname mismatch|"
    r"self[- ]signed certificate|unable to get local issuer",
    re.I,
)


@dataclass(frozen=True)
class _Classified:
    kind: str
    retryable: bool
    cause: str
    hint: str


def _classify(
    exc: BaseException, chain: list[BaseException], ctx: SigningContext, environ: Mapping[str, str] | None
) -> _Classified:
    import socket
    import ssl

    names = set().union(*(_class_names(e) for e in chain))
    text = " | ".join(dict.fromkeys(redact(str(e)) for e in chain if str(e)))  # each distinct text once
    where = ctx.host_port
    host = ctx.host or where

    if "CredentialsError" in names:
        credentials_error = next(e for e in chain if "CredentialsError" in _class_names(e))
        return _Classified(
            CREDENTIALS,
            False,
            redact(str(credentials_error)),
            "fix the credential source named above; the request was not sent",
        )

    proxy = proxy_for(ctx.request_url or ctx.url, environ)
    if "ProxyError" in names:
        return _proxy_refusal(next(e for e in chain if "ProxyError" in _class_names(e)), proxy, ctx)
    if proxy is not None:  # every connection goes to the proxy: a failure to connect is the proxy's
        failed = _proxy_connect_failure(chain, names, text, proxy, ctx)
        if failed is not None:
            return failed

    if any(isinstance(e, ssl.SSLCertVerificationError) for e in chain) or _CERT_TEXT.search(text):
        reason = _ssl_reason(chain, text)
        return _Classified(
            TLS_CERTIFICATE,
            False,
            f"TLS certificate of {where} not accepted ({reason})",
            f"check that the target URL's host is the certificate's name; behind a TLS-inspecting corporate proxy "
            f"point SSL_CERT_FILE at its CA bundle; inspect with `openssl s_client -connect {where} "
            f"-servername {host}`",
        )
    if "WRONG_VERSION_NUMBER" in text or "wrong version number" in text.lower():
        return _Classified(
            TLS,
            False,
            f"TLS handshake with {where} failed (the server does not speak TLS)",
            "the server answers plain HTTP on that port: use an http:// target URL (non-loopback hosts also need "
            "--allow-http), or the right HTTPS port",
        )
    if any(isinstance(e, ssl.SSLError) for e in chain):
        return _Classified(
            TLS,
            False,
            f"TLS handshake with {where} failed ({_ssl_reason(chain, text)})",
            f"is the target really HTTPS on that port? A firewall or TLS-inspecting proxy may interfere; inspect "
            f"with `openssl s_client -connect {where} -servername {host}`",
        )

    dns = next((e for e in chain if isinstance(e, socket.gaierror)), None)
    if dns is not None or _DNS_TEXT.search(text):
        temporary = (dns is not None and dns.errno == socket.EAI_AGAIN) or "Temporary failure" in text
        return _Classified(
            DNS_TEMPORARY if temporary else DNS,
            temporary,
            f"DNS lookup of {host} failed ({_short(text)})",
            f"check the host name in the target URL (typo, wrong region or API id?); `nslookup {host}` tests it; "
            "a private API Gateway or VPC endpoint resolves only inside its VPC/VPN; "
            + _corporate_proxy_advice(ctx, environ, "behind a corporate proxy set HTTPS_PROXY"),
        )

    if any(isinstance(e, ConnectionRefusedError) for e in chain) or _REFUSED_TEXT.search(text):
        return _Classified(
            CONNECTION_REFUSED,
            True,
            f"connection to {where} refused",
            f"nothing is listening at {where}: check that the server is running and the target URL's port; on "
            "AWS check security groups and network ACLs",
        )

    if _has_errno(chain, errno.ENETUNREACH, errno.EHOSTUNREACH):
        return _Classified(
            NETWORK_UNREACHABLE,
            True,
            f"no route to {where}",
            "the network cannot reach the host: check VPN, network connection and routes",
        )

    if "ConnectTimeout" in names:
        return _Classified(
            CONNECT_TIMEOUT,
            True,
            f"connecting to {where} timed out",
            "no answer to the connection attempt: a firewall drops the packets, the host/port is wrong, or "
            + _corporate_proxy_advice(ctx, environ, "a corporate proxy is required (HTTPS_PROXY)"),
        )
    if "PoolTimeout" in names:
        return _Classified(
            POOL_TIMEOUT,
            True,
            f"no free connection to {where} in time",
            "every pooled connection is busy with a long request: the request was not sent; retry, or raise the "
            "time limit",
        )
    if "WriteTimeout" in names or "WriteError" in names:
        return _Classified(
            WRITE_FAILED,
            True,
            f"sending the request to {where} failed ({_short(text)})",
            "the connection broke before the whole request was sent, so the server cannot have executed it",
        )
    if "ReadTimeout" in names:
        return _Classified(
            READ_TIMEOUT,
            False,
            f"no response from {where} within the time limit",
            "the server accepted the request but did not answer in time; it may still be executing it, so it "
            "was not resent; raise --timeout for slow operations",
        )
    if "RemoteProtocolError" in names or _CLOSED_TEXT.search(text):
        return _Classified(
            CONNECTION_CLOSED,
            False,
            f"{where} closed the connection before the response was complete",
            "the server or a load balancer dropped the connection (crash, restart, idle or duration limit); the "
            "request may have been executed, so it was not resent",
        )
    if any(isinstance(e, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)) for e in chain) or (
        "ReadError" in names or _RESET_TEXT.search(text)
    ):
        return _Classified(
            CONNECTION_RESET,
            False,
            f"connection to {where} reset",
            "the connection was reset after the request was sent (server crash or restart, a load balancer or "
            "firewall dropping it); the request may have been executed, so it was not resent",
        )
    if any(isinstance(e, TimeoutError) for e in chain) or "Timeout" in " ".join(names):
        return _Classified(
            TIMEOUT,
            False,
            f"request to {where} timed out",
            "no complete answer within the time limit; the request may have been executed, so it was not "
            "resent; raise --timeout for slow operations",
        )
    description = f"{type(exc).__name__}: {_short(text)}" if text else type(exc).__name__
    return _Classified(
        NETWORK_ERROR,
        False,
        f"request to {where} failed ({description})",
        f"check connectivity to {where} (`curl -v {ctx.url}`)",
    )


def _corporate_proxy_advice(ctx: SigningContext, environ: Mapping[str, str] | None, default: str) -> str:
    """`default` (set HTTPS_PROXY) unless a proxy is configured and NO_PROXY makes this host bypass it."""
    bypassed = proxy_for(ctx.request_url or ctx.url, environ, honour_no_proxy=False)
    if bypassed is None:
        return default
    return (
        f"the host may have to be reached through {bypassed.describe()}, which NO_PROXY makes it bypass: "
        f"remove {ctx.host} from NO_PROXY if so"
    )


def _proxy_connect_failure(
    chain: list[BaseException], names: set[str], text: str, proxy: ProxyInUse, ctx: SigningContext
) -> _Classified | None:
    """A failure to connect, when the connection was to `proxy`: name the proxy, never the target."""
    import socket

    undo = f"unset {proxy.variable} / add {ctx.host} to NO_PROXY if the host is reachable directly"
    dns = next((e for e in chain if isinstance(e, socket.gaierror)), None)
    if dns is not None or _DNS_TEXT.search(text):
        temporary = (dns is not None and dns.errno == socket.EAI_AGAIN) or "Temporary failure" in text
        proxy_host = urlsplit(proxy.url).hostname or "?"
        return _Classified(
            DNS_TEMPORARY if temporary else DNS,
            temporary,
            f"could not connect to {proxy.describe()}: DNS lookup of {proxy_host} failed ({_short(text)})",
            f"check the proxy's host name in {proxy.variable}, or {undo}",
        )
    if any(isinstance(e, ConnectionRefusedError) for e in chain) or _REFUSED_TEXT.search(text):
        return _Classified(
            CONNECTION_REFUSED,
            True,
            f"could not connect to {proxy.describe()}: connection refused",
            f"nothing is listening at the proxy's address: check that the proxy is running and the port in "
            f"{proxy.variable}, or {undo}",
        )
    if _has_errno(chain, errno.ENETUNREACH, errno.EHOSTUNREACH):
        return _Classified(
            NETWORK_UNREACHABLE,
            True,
            f"could not connect to {proxy.describe()}: no route to it",
            f"the network cannot reach the proxy: check VPN and network connection, or {undo}",
        )
    if "ConnectTimeout" in names:
        return _Classified(
            CONNECT_TIMEOUT,
            True,
            f"connecting through {proxy.describe()} to {ctx.host_port} timed out",
            f"no answer in time from the proxy, or through it from the server: check the proxy's address in "
            f"{proxy.variable} and the network, or {undo}",
        )
    return None


_PROXY_STATUS = _lazy_re(r"^\s*(\d{3})\b")


def _proxy_refusal(error: BaseException, proxy: ProxyInUse | None, ctx: SigningContext) -> _Classified:
    """The proxy answered the CONNECT for the target with an error status (httpx.ProxyError "407 ...")."""
    said = _short(redact(str(error)))
    who = proxy.describe() if proxy is not None else "the proxy in use"
    undo = f"add {ctx.host} to NO_PROXY"
    if proxy is not None:
        undo = f"unset {proxy.variable} / {undo}"
    status = _PROXY_STATUS.search(said)
    code = int(status.group(1)) if status else None
    if code == 407:
        setting = f"{proxy.variable}=" if proxy is not None else ""
        hint = (
            f"the proxy wants credentials: put them in the proxy URL ({setting}http://USER:PASSWORD@HOST:PORT), "
            f"or {undo} if the host is reachable directly"
        )
    elif code == 403:
        hint = (
            f"the proxy's rules forbid connections to {ctx.host_port}: ask for it to be allowed, or {undo} if the "
            "host is reachable directly"
        )
    elif code in (502, 503, 504):
        hint = (
            f"the proxy could not reach {ctx.host_port} itself (name resolution, firewall, or the server is down): "
            f"check the target URL; for a host inside your network, {undo}"
        )
    else:
        hint = f"check the proxy's logs, or {undo} if the host is reachable directly"
    reason = f": {said}" if said else ""
    return _Classified(PROXY_REFUSED, False, f"{who} refused the connection to {ctx.host_port}{reason}", hint)


def _has_errno(chain: list[BaseException], *numbers: int) -> bool:
    return any(isinstance(e, OSError) and e.errno in numbers for e in chain)


def _ssl_reason(chain: list[BaseException], text: str) -> str:
    import ssl

    for e in chain:
        if isinstance(e, ssl.SSLCertVerificationError) and e.verify_message:
            return str(e.verify_message)
        if isinstance(e, ssl.SSLError) and e.reason:
            return str(e.reason)
    return _short(text)


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def diagnose_exception(
    exc: BaseException, *, context: SigningContext, environ: Mapping[str, str] | None = None
) -> Diagnosis:
    """Diagnose a failure with no HTTP answer (httpx, socket, ssl and asyncio exceptions, CredentialsError).

    `environ` is where the request's client took its proxy settings from (HTTPS_PROXY, NO_PROXY, ...): None
    means os.environ, as httpx with trust_env (every door's client); pass ``{}`` for a client without
    environment proxies. A failure to connect through a proxy names the proxy, not the target."""
    classified = _classify(exc, _chain(exc), context, environ)
    return Diagnosis(
        status=None,
        error_type=None,
        aws_message=None,
        hint=classified.hint,
        kind=classified.kind,
        retryable=classified.retryable,
        cause=classified.cause,
    )


def _clip(text: str, limit: int = _MAX_MESSAGE_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _end_sentence(text: str) -> str:
    return text if text.endswith((".", "!", "?", "…")) else text + "."
