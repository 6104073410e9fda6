"""The knowledge table: :data:`RULES` maps what a server answered (status, AWS error type, message) to a kind
and a hint naming the cause and the fix. Ordered, first match wins; a new AWS error shape is one row plus one
test row. :func:`diagnose_response` applies it."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from sigv4_proxy.diagnose.kinds import (
    ACCESS_DENIED,
    BAD_REQUEST,
    CLIENT_ERROR,
    CLOCK_SKEW,
    COLD_START,
    EXPIRED_TOKEN,
    FORBIDDEN,
    GATEWAY_TIMEOUT,
    INCOMPLETE_SIGNATURE,
    INVALID_TOKEN,
    METHOD_NOT_ALLOWED,
    MISSING_AUTH,
    MISSING_SESSION_TOKEN,
    NOT_FOUND,
    PAYLOAD_TOO_LARGE,
    SERVER_ERROR,
    SIGNATURE_MISMATCH,
    THROTTLED,
    UNAUTHORIZED,
    UNAVAILABLE,
    UNEXPECTED_RESPONSE,
    UNEXPECTED_SESSION_TOKEN,
    UNKNOWN_ACCESS_KEY,
    UNSUPPORTED_ALGORITHM,
    WRONG_REGION,
    WRONG_SERVICE,
    Kind,
)
from sigv4_proxy.diagnose.model import Diagnosis, Headers, SigningContext, header_value
from sigv4_proxy.diagnose.parse import AwsError, parse_aws_error
from sigv4_proxy.diagnose.patterns import LazyPattern, lazy_re
from sigv4_proxy.redact import redact

if TYPE_CHECKING:
    from sigv4_proxy.signing.algorithm import Algorithm


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

    kind: Kind
    hint: str | HintFn
    retryable: bool = False
    types: frozenset[str] = frozenset()
    pattern: LazyPattern | None = None
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


def _default_algorithm() -> Algorithm:
    """SigV4: what every AWS endpoint accepts, and what to fall back to."""
    from sigv4_proxy.signing.algorithm import V4  # at hint time only: whoever signed has loaded it already

    return V4


def _algorithm(ctx: SigningContext) -> Algorithm:
    """The algorithm the request was signed with (an unknown --sig-version reads as the default)."""
    from sigv4_proxy.errors import SigningError
    from sigv4_proxy.signing.algorithm import algorithm_for

    try:
        return algorithm_for(ctx.algorithm)
    except SigningError:
        return _default_algorithm()


def _single_region(ctx: SigningContext) -> str | None:
    if _algorithm(ctx).uses_region_set:
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


_EXPECTED_CANONICAL = lazy_re(r"The Canonical String for this request should have been\s*'(.*?)'\s*(?:\n\n|$)", re.S)


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
    algorithm, default = _algorithm(ctx), _default_algorithm()
    if algorithm is not default:
        parts.append(f"if the endpoint does not support {algorithm.label}, use --sig-version {default.version}")
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


def _token_kind(facts: Facts, default: Kind) -> Kind:
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
_NOT_AUTHORIZED = lazy_re(
    r"(?:User|Principal):?\s*(?P<principal>\S+?)\s+is not authorized to perform:?\s*(?P<action>[\w*-]+:[\w*-]+)"
    r"(?:\s+on resource:?\s*(?P<resource>\S+?))?(?=[\s.,;]|$)"
    r"(?P<rest>.*)",
    re.I | re.S,
)
_EXPLICIT_DENY = lazy_re(r"explicit deny in (?:an? )?([\w -]+?policy)", re.I)
_NO_POLICY = lazy_re(r"because no ([\w -]+?policy) allows", re.I)


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
_MASKED_ACCOUNT = lazy_re(r"^(arn:[\w-]+:[\w-]+:[\w-]*:)\*+([0-9]{0,11}):")
_ARN_ACCOUNT = lazy_re(r"^arn:[\w-]+:[\w-]+:[\w-]*:([0-9]{12}):")


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
    expected: str | None = facts.match.group(1) if facts.match else None
    expected = expected or facts.host.service
    if not expected:
        return f"the server does not accept service '{facts.context.service}': set --service-name to its service"
    signed = facts.context.service
    return f"signed for service '{signed}' but the server expects '{expected}': use --service-name {expected}"


# Where a server names the region it wants: S3 "the region 'us-east-1' is wrong; expecting 'eu-central-1'",
# S3-compatible servers "Credential should be scoped to correct region: 'eu-central-1'".
_REGION_IN_MESSAGE = lazy_re(r"expecting '([a-z0-9-]+)'|scoped to (?:the )?correct region:? '?([a-z0-9-]+)", re.I)


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
    if _algorithm(ctx).uses_region_set:
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
_REFUSED_ALGORITHM = lazy_re(r"'algorithm'\W+'([^']*)'", re.I)
_ACCEPTED_ALGORITHM = lazy_re(r"(?:\buse|\bonly|\bsupports)\W+(AWS4-[A-Z0-9-]+)", re.I)


def _unsupported_algorithm_hint(facts: Facts) -> str:
    from sigv4_proxy.signing.algorithm import ALGORITHMS

    ours = _algorithm(facts.context)
    other = next(algorithm for algorithm in ALGORITHMS if algorithm is not ours)
    signed_with = f"{ours.label} ({ours.name})"
    refused = _REFUSED_ALGORITHM.search(facts.text)
    if refused and refused.group(1) != ours.name:
        return (
            f"the server saw the signature algorithm '{refused.group(1)}' but we signed with {signed_with}: "
            "something between us and the server altered the Authorization header"
        )
    accepted = _ACCEPTED_ALGORITHM.search(facts.text)
    wanted = accepted.group(1).upper() if accepted else None
    if wanted == ours.name:
        return (
            f"the server asks for {wanted}, the algorithm we signed with: something between us and the server "
            "replaced the Authorization header (or the request carried another signature, e.g. in its query string)"
        )
    if wanted == other.name:
        return (
            f"the server does not accept {signed_with} signatures, it wants {other.label}: use "
            f"--sig-version {other.version}"
        )
    if ours is not _default_algorithm():
        return f"the server does not accept {signed_with} signatures: use --sig-version {other.version}"
    return (
        f"the server does not accept the signature algorithm we used, {signed_with}: if it wants {other.label}, use "
        f"--sig-version {other.version}; otherwise something between us and the server replaced the Authorization "
        "header"
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
    kind: Kind,
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
        pattern=lazy_re(pattern, re.I) if pattern else None,
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
    if status < 400:
        return Diagnosis(status, error.error_type, error.message, None, UNEXPECTED_RESPONSE, False, error.details)
    rejected = "the server rejected the request: see its message"
    return Diagnosis(status, error.error_type, error.message, rejected, CLIENT_ERROR, False, error.details)
