"""Diagnosis wordings that tell the user what to type (issue 9, item 8), as data: each row is a server answer or
a failure and the exact message the user reads.

- a wrong region: the region the server names, else a placeholder (never the region that was just refused);
  SigV4a: ``--region-set``;
- an unknown access key: its session token only when one was sent;
- an IAM deny: the resource ARN's account (masked by API Gateway) restored, so the fix pastes into a policy;
- a 404: the path that was requested, and ``/sse`` for legacy HTTP+SSE servers;
- a refused signature algorithm: ``--sig-version`` with the other version;
- a proxy from HTTPS_PROXY / HTTP_PROXY / ALL_PROXY: named (credentials masked) when it cannot be reached or
  refuses the tunnel, chosen with httpx's own rules (NO_PROXY included).

Contexts are given as keyword arguments and built inside the tests, so rows using fields a previous version did
not have fail one by one.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from sigv4_proxy import diagnose as d
from sigv4_proxy.diagnose import SigningContext, diagnose_exception, diagnose_response
from tests.mcp_proxy.harness import initialize_message, raw_proxy
from tests.support import ports
from tests.support.connect_proxy import ConnectProxy

APIGW_URL = "https://abc123.execute-api.us-east-1.amazonaws.com/prod/mcp"
LOCAL_URL = "http://127.0.0.1:8080/mcp"
BASE_CONTEXT: dict[str, Any] = {
    "url": LOCAL_URL,
    "region": "us-east-1",
    "service": "execute-api",
    "access_key": "AKIA****MPLE",
    "has_session_token": False,
    "credential_method": "env",
}


def context(**overrides: Any) -> SigningContext:
    return SigningContext(**{**BASE_CONTEXT, **overrides})


def apigw(error_type: str | None, message: str, status: int = 403, key: str = "message") -> dict[str, Any]:
    """API Gateway's shape (also emulate mcp's): x-amzn-ErrorType + a JSON body."""
    headers = [("Content-Type", "application/json")]
    if error_type:
        headers.append(("x-amzn-ErrorType", f"{error_type}:http://internal.amazon.com/coral/com.amazon.coral.service/"))
    return {"status": status, "headers": headers, "body": json.dumps({key: message}).encode()}


def s3(code: str, message: str, status: int = 400, extra: str = "") -> dict[str, Any]:
    body = f"<Error><Code>{code}</Code><Message>{message}</Message>{extra}<RequestId>R1</RequestId></Error>"
    return {"status": status, "headers": [("Content-Type", "application/xml")], "body": body.encode()}


def plain(status: int, text: str) -> dict[str, Any]:
    return {"status": status, "headers": [("Content-Type", "text/plain")], "body": text.encode()}


@dataclass
class Row:
    id: str
    response: dict[str, Any]
    kind: str
    message: str
    context: dict[str, Any] = field(default_factory=dict)


NOT_IN_REGION = "Credential should be scoped to a valid region, not 'eu-west-1'. "
DENIED = "User: {principal} is not authorized to perform: execute-api:Invoke on resource: {resource}"
EMULATOR_USER = "arn:aws:iam::123456789012:user/sigv4-proxy-emulator"
REGION_PLACEHOLDER = (
    "use --region REGION with the endpoint's region (AWS host names carry it, e.g. "
    "abc123.execute-api.REGION.amazonaws.com; for a custom domain, the region of the API behind it)"
)
NOT_FOUND_GENERIC = (
    "check the target URL's path (MCP servers usually serve /mcp, legacy HTTP+SSE ones GET /sse and POST "
    "/messages/; API Gateway needs the stage, e.g. /prod/mcp; AgentCore /runtimes/<url-encoded ARN>/invocations). "
    "For an MCP request with a session id, the server has forgotten the session"
)
NOT_FOUND_LEGACY = (
    "check the target URL's path (legacy HTTP+SSE servers usually serve their event stream at GET /sse, after "
    "the stage or prefix if any, and take messages at POST /messages/; Streamable HTTP servers serve /mcp). For a "
    "message sent in a session, the server has forgotten the session (it restarted, or its event stream ended)"
)
CORAL_REFUSES_V4A = "Unsupported AWS 'algorithm': 'AWS4-ECDSA-P256-SHA256' (only AWS4-HMAC-SHA256 for now)."
CORAL_REFUSES_V4 = "Unsupported AWS 'algorithm': 'AWS4-HMAC-SHA256' (only AWS4-ECDSA-P256-SHA256 for now)."
S3_MECHANISM = "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256."

ROWS = [
    # --- wrong region: what the server names, else a placeholder; v4a -> --region-set ----------------------------
    Row(
        "region-loopback-v4-placeholder-not-the-wrong-region",
        apigw("InvalidSignatureException", NOT_IN_REGION),
        d.WRONG_REGION,
        f"HTTP 403 InvalidSignatureException: {NOT_IN_REGION.strip()} Diagnosis: the endpoint is not in region "
        f"'eu-west-1': {REGION_PLACEHOLDER}",
        {"region": "eu-west-1"},
    ),
    Row(
        "region-loopback-v4a-region-set-placeholder",
        apigw("InvalidSignatureException", NOT_IN_REGION),
        d.WRONG_REGION,
        f"HTTP 403 InvalidSignatureException: {NOT_IN_REGION.strip()} Diagnosis: the endpoint's region is not in "
        "region set 'eu-west-1': use --region-set with the endpoint's region, or --region-set '*' for any region",
        {"region": ["eu-west-1"], "algorithm": "v4a"},
    ),
    Row(
        "region-host-named-v4a-region-set",
        apigw("InvalidSignatureException", "Credential should be scoped to a valid region, not 'eu-*'. "),
        d.WRONG_REGION,
        "HTTP 403 InvalidSignatureException: Credential should be scoped to a valid region, not 'eu-*'. Diagnosis: "
        "signed for region set 'eu-*' but the endpoint is in us-east-1: use --region-set us-east-1 (or a set that "
        "includes it)",
        {"url": APIGW_URL, "region": ["eu-*"], "algorithm": "v4a"},
    ),
    Row(
        "region-server-says-correct-region",
        s3("AuthorizationHeaderMalformed", "Credential should be scoped to correct region: 'us-east-2'."),
        d.WRONG_REGION,
        "HTTP 400 AuthorizationHeaderMalformed: Credential should be scoped to correct region: 'us-east-2'. "
        "Diagnosis: signed for region 'eu-west-1' but the endpoint is in us-east-2: use --region us-east-2",
        {"region": "eu-west-1"},
    ),
    Row(
        "region-s3-expecting-v4a",
        s3(
            "AuthorizationHeaderMalformed",
            "The authorization header is malformed; the region 'us-east-1' is wrong; expecting 'eu-central-1'",
            extra="<Region>eu-central-1</Region>",
        ),
        d.WRONG_REGION,
        "HTTP 400 AuthorizationHeaderMalformed: The authorization header is malformed; the region 'us-east-1' is "
        "wrong; expecting 'eu-central-1'. Diagnosis: signed for region set 'us-east-1' but the endpoint is in "
        "eu-central-1: use --region-set eu-central-1 (or a set that includes it)",
        {"region": ["us-east-1"], "algorithm": "v4a"},
    ),
    Row(
        "region-never-suggests-the-refused-region",
        apigw("SignatureDoesNotMatch", "Credential should be scoped to a valid region. ", status=403),
        d.WRONG_REGION,
        "HTTP 403 SignatureDoesNotMatch: Credential should be scoped to a valid region. Diagnosis: the endpoint is "
        f"not in region 'us-east-1': {REGION_PLACEHOLDER}",
        {"url": "https://abc123.execute-api.us-east-1.amazonaws.com/prod/mcp"},
    ),
    # --- an unknown key: the session token only when one was sent -------------------------------------------------
    Row(
        "unknown-key-no-token-sent",
        apigw("UnrecognizedClientException", "The security token included in the request is invalid."),
        d.INVALID_TOKEN,
        "HTTP 403 UnrecognizedClientException: The security token included in the request is invalid. Diagnosis: "
        "AWS does not recognise access key AKIA****MPLE: the key was deleted or deactivated, the key belongs to "
        "another partition (China, GovCloud), or region us-east-1 is not enabled for the account; check with `aws "
        "sts get-caller-identity`",
    ),
    Row(
        "unknown-key-token-unknown",
        s3("InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.", status=403),
        d.UNKNOWN_ACCESS_KEY,
        "HTTP 403 InvalidAccessKeyId: The AWS Access Key Id you provided does not exist in our records. Diagnosis: "
        "AWS does not recognise access key AKIA****MPLE: the key was deleted or deactivated, or the key belongs "
        "to another partition (China, GovCloud); check with `aws sts get-caller-identity`",
        {"has_session_token": None, "algorithm": "v4a", "region": ["*"]},
    ),
    Row(
        "unknown-key-with-token-sent",
        apigw("UnrecognizedClientException", "The security token included in the request is invalid."),
        d.INVALID_TOKEN,
        "HTTP 403 UnrecognizedClientException: The security token included in the request is invalid. Diagnosis: "
        "AWS does not recognise access key ASIA****MPLE with its session token: the key was deleted or "
        "deactivated, the key and token come from different credentials, the key belongs to another partition "
        "(China, GovCloud), or region us-east-1 is not enabled for the account; check with `aws sts "
        "get-caller-identity`",
        {"access_key": "ASIA****MPLE", "has_session_token": True},
    ),
    # --- IAM deny: account ids in ARNs in full ------------------------------------------------------------------
    Row(
        "deny-masked-account-restored-from-the-principal",
        apigw(
            "AccessDeniedException",
            DENIED.format(principal=EMULATOR_USER, resource="arn:aws:execute-api:us-east-1:********9012:abc/prod/*"),
            key="Message",
        ),
        d.ACCESS_DENIED,
        "HTTP 403 AccessDeniedException: User: arn:aws:iam::123456789012:user/sigv4-proxy-emulator is not "
        "authorized to perform: execute-api:Invoke on resource: arn:aws:execute-api:us-east-1:********9012:abc/"
        "prod/*. Diagnosis: missing IAM permission: allow execute-api:Invoke on arn:aws:execute-api:us-east-1:"
        "123456789012:abc/prod/* for arn:aws:iam::123456789012:user/sigv4-proxy-emulator in the IAM policy (and "
        "the resource policy, if any)",
    ),
    Row(
        "deny-explicit-masked-account-restored",
        apigw(
            "AccessDeniedException",
            DENIED.format(
                principal="arn:aws:sts::123456789012:assumed-role/Dev/me",
                resource="arn:aws:execute-api:us-east-1:********9012:abc/prod/POST/mcp",
            )
            + " with an explicit deny in a service control policy",
            key="Message",
        ),
        d.ACCESS_DENIED,
        "HTTP 403 AccessDeniedException: User: arn:aws:sts::123456789012:assumed-role/Dev/me is not authorized to "
        "perform: execute-api:Invoke on resource: arn:aws:execute-api:us-east-1:********9012:abc/prod/POST/mcp "
        "with an explicit deny in a service control policy. Diagnosis: an explicit Deny in a service control "
        "policy blocks execute-api:Invoke on arn:aws:execute-api:us-east-1:123456789012:abc/prod/POST/mcp for "
        "arn:aws:sts::123456789012:assumed-role/Dev/me: an Allow elsewhere cannot override it; remove or narrow "
        "that Deny",
    ),
    Row(
        "deny-cross-account-says-what-to-write",
        apigw(
            "AccessDeniedException",
            DENIED.format(
                principal="arn:aws:iam::111122223333:user/bob",
                resource="arn:aws:execute-api:eu-west-1:********2543:vd2gh6uqw3/api/GET/",
            ),
            key="Message",
        ),
        d.ACCESS_DENIED,
        "HTTP 403 AccessDeniedException: User: arn:aws:iam::111122223333:user/bob is not authorized to perform: "
        "execute-api:Invoke on resource: arn:aws:execute-api:eu-west-1:********2543:vd2gh6uqw3/api/GET/. "
        "Diagnosis: missing IAM permission: allow execute-api:Invoke on arn:aws:execute-api:eu-west-1:********2543:"
        "vd2gh6uqw3/api/GET/ for arn:aws:iam::111122223333:user/bob in the IAM policy (and the resource policy, if "
        "any) (the server masks the account id in the resource ARN: write the id of the account that owns the "
        "resource, the one ending in 2543, in place of ********2543)",
    ),
    Row(
        "deny-account-fully-masked",
        apigw(
            "AccessDeniedException",
            DENIED.format(
                principal="arn:aws:iam::111122223333:user/bob", resource="arn:aws:execute-api:eu-west-1:******:a/b/*"
            ),
            key="Message",
        ),
        d.ACCESS_DENIED,
        "HTTP 403 AccessDeniedException: User: arn:aws:iam::111122223333:user/bob is not authorized to perform: "
        "execute-api:Invoke on resource: arn:aws:execute-api:eu-west-1:******:a/b/*. Diagnosis: missing IAM "
        "permission: allow execute-api:Invoke on arn:aws:execute-api:eu-west-1:******:a/b/* for "
        "arn:aws:iam::111122223333:user/bob in the IAM policy (and the resource policy, if any) (the server masks "
        "the account id in the resource ARN: write the id of the account that owns the resource in place of "
        "******)",
    ),
    Row(
        "deny-account-ids-stay-access-keys-do-not",
        apigw(
            "AccessDeniedException",
            DENIED.format(principal=EMULATOR_USER, resource="arn:aws:execute-api:us-east-1:123456789012:abc/*")
            + " (key AKIAIOSFODNN7EXAMPLE)",
            key="Message",
        ),
        d.ACCESS_DENIED,
        "HTTP 403 AccessDeniedException: User: arn:aws:iam::123456789012:user/sigv4-proxy-emulator is not "
        "authorized to perform: execute-api:Invoke on resource: arn:aws:execute-api:us-east-1:123456789012:abc/* "
        "(key AKIA****MPLE). Diagnosis: missing IAM permission: allow execute-api:Invoke on arn:aws:execute-api:"
        "us-east-1:123456789012:abc/* for arn:aws:iam::123456789012:user/sigv4-proxy-emulator in the IAM policy "
        "(and the resource policy, if any)",
    ),
    # --- 404: the requested path; /sse for legacy servers -----------------------------------------------------------
    Row(
        "not-found-names-the-requested-path",
        plain(404, "Not Found"),
        d.NOT_FOUND,
        f"HTTP 404: Not Found. Diagnosis: nothing at /mcp/nope on 127.0.0.1: {NOT_FOUND_GENERIC}",
        {"request_url": "http://127.0.0.1:8080/mcp/nope"},
    ),
    Row(
        "not-found-target-path-mentions-sse",
        plain(404, "Not Found"),
        d.NOT_FOUND,
        f"HTTP 404: Not Found. Diagnosis: nothing at /mcp on 127.0.0.1: {NOT_FOUND_GENERIC}",
    ),
    Row(
        "not-found-legacy-transport",
        plain(404, "Not Found"),
        d.NOT_FOUND,
        f"HTTP 404: Not Found. Diagnosis: nothing at /mcp on 127.0.0.1: {NOT_FOUND_LEGACY}",
        {"transport": "sse"},
    ),
    Row(
        "not-found-legacy-target",
        plain(404, "Not Found"),
        d.NOT_FOUND,
        f"HTTP 404: Not Found. Diagnosis: nothing at /prod/sse on 127.0.0.1: {NOT_FOUND_LEGACY}",
        {"url": "http://127.0.0.1:8080/prod/sse"},
    ),
    Row(
        "not-found-legacy-messages-endpoint",
        plain(404, "Could not find session"),
        d.NOT_FOUND,
        f"HTTP 404: Could not find session. Diagnosis: nothing at /messages/ on 127.0.0.1: {NOT_FOUND_LEGACY}",
        {"url": "http://127.0.0.1:8080/sse", "request_url": "http://127.0.0.1:8080/messages/?session_id=abc"},
    ),
    Row(
        "not-found-streamable-transport-known",
        plain(404, "Not Found"),
        d.NOT_FOUND,
        f"HTTP 404: Not Found. Diagnosis: nothing at /sse on 127.0.0.1: {NOT_FOUND_GENERIC}",
        {"url": "http://127.0.0.1:8080/sse", "transport": "streamable-http"},
    ),
    # --- a refused signature algorithm: the other --sig-version ---------------------------------------------------
    Row(
        "algorithm-coral-refuses-v4a",
        apigw("IncompleteSignatureException", CORAL_REFUSES_V4A + " "),
        "unsupported_algorithm",
        f"HTTP 403 IncompleteSignatureException: {CORAL_REFUSES_V4A} Diagnosis: the server does not accept SigV4a "
        "(AWS4-ECDSA-P256-SHA256) signatures, it wants SigV4: use --sig-version v4",
        {"algorithm": "v4a", "region": ["*"]},
    ),
    Row(
        "algorithm-coral-refuses-v4",
        apigw("IncompleteSignatureException", CORAL_REFUSES_V4 + " "),
        "unsupported_algorithm",
        f"HTTP 403 IncompleteSignatureException: {CORAL_REFUSES_V4} Diagnosis: the server does not accept SigV4 "
        "(AWS4-HMAC-SHA256) signatures, it wants SigV4a: use --sig-version v4a",
    ),
    Row(
        "algorithm-s3-mechanism-refuses-v4a",
        s3("InvalidRequest", S3_MECHANISM),
        "unsupported_algorithm",
        f"HTTP 400 InvalidRequest: {S3_MECHANISM} Diagnosis: the server does not accept SigV4a "
        "(AWS4-ECDSA-P256-SHA256) signatures, it wants SigV4: use --sig-version v4",
        {"algorithm": "v4a", "region": ["*"]},
    ),
    Row(
        "algorithm-s3-mechanism-to-v4-means-a-replaced-header",
        s3("InvalidRequest", S3_MECHANISM),
        "unsupported_algorithm",
        f"HTTP 400 InvalidRequest: {S3_MECHANISM} Diagnosis: the server asks for AWS4-HMAC-SHA256, the algorithm "
        "we signed with: something between us and the server replaced the Authorization header (or the request "
        "carried another signature, e.g. in its query string)",
    ),
    Row(
        "algorithm-s3-unsupported-type-v4a",
        s3("InvalidArgument", "Unsupported Authorization Type"),
        "unsupported_algorithm",
        "HTTP 400 InvalidArgument: Unsupported Authorization Type. Diagnosis: the server does not accept SigV4a "
        "(AWS4-ECDSA-P256-SHA256) signatures: use --sig-version v4",
        {"algorithm": "v4a", "region": ["*"]},
    ),
    Row(
        "algorithm-s3-unsupported-type-v4",
        s3("InvalidArgument", "Unsupported Authorization Type"),
        "unsupported_algorithm",
        "HTTP 400 InvalidArgument: Unsupported Authorization Type. Diagnosis: the server does not accept the "
        "signature algorithm we used, SigV4 (AWS4-HMAC-SHA256): if it wants SigV4a, use --sig-version v4a; "
        "otherwise something between us and the server replaced the Authorization header",
    ),
    Row(
        "algorithm-s3-presigned-only-supports",
        s3("AuthorizationQueryParametersError", 'X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"'),
        "unsupported_algorithm",
        'HTTP 400 AuthorizationQueryParametersError: X-Amz-Algorithm only supports "AWS4-HMAC-SHA256". Diagnosis: '
        "the server does not accept SigV4a (AWS4-ECDSA-P256-SHA256) signatures, it wants SigV4: use "
        "--sig-version v4",
        {"algorithm": "v4a", "region": ["*"]},
    ),
    Row(
        "algorithm-another-one-arrived",
        apigw(
            "IncompleteSignatureException",
            "Unsupported AWS 'algorithm': 'AWS4-HMAC-SHA1'. Use 'AWS4-HMAC-SHA256' (SigV4) or "
            "'AWS4-ECDSA-P256-SHA256' (SigV4a).",
        ),
        "unsupported_algorithm",
        "HTTP 403 IncompleteSignatureException: Unsupported AWS 'algorithm': 'AWS4-HMAC-SHA1'. Use "
        "'AWS4-HMAC-SHA256' (SigV4) or 'AWS4-ECDSA-P256-SHA256' (SigV4a). Diagnosis: the server saw the signature "
        "algorithm 'AWS4-HMAC-SHA1' but we signed with SigV4 (AWS4-HMAC-SHA256): something between us and the "
        "server altered the Authorization header",
    ),
]


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_response_wording(row: Row) -> None:
    response = row.response
    diagnosis = diagnose_response(
        response["status"], response["headers"], response["body"], context=context(**row.context)
    )
    assert (diagnosis.kind, diagnosis.message()) == (row.kind, row.message)


def test_wrong_region_hint_never_repeats_the_refused_region() -> None:
    for region in ("eu-west-1", "ap-south-2", "us-east-1"):
        body = apigw("InvalidSignatureException", f"Credential should be scoped to a valid region, not '{region}'. ")
        hint = diagnose_response(**body, context=context(region=region)).hint or ""
        assert f"--region {region}" not in hint and region not in hint.partition(":")[2]


# --- proxies: which one httpx uses (a pure function), and failures through it -----------------------------------

HTTPS_URL = "https://api.example.com/mcp"
HTTP_URL = "http://api.example.com/mcp"

# environment, url, expected (variable, url) or None
PROXY_SELECTION: list[tuple[str, dict[str, str], str, tuple[str, str] | None]] = [
    ("none", {}, HTTPS_URL, None),
    ("https-proxy", {"HTTPS_PROXY": "http://p:3128"}, HTTPS_URL, ("HTTPS_PROXY", "http://p:3128")),
    ("https-proxy-not-for-http", {"HTTPS_PROXY": "http://p:3128"}, HTTP_URL, None),
    ("http-proxy", {"HTTP_PROXY": "http://p:8080"}, HTTP_URL, ("HTTP_PROXY", "http://p:8080")),
    ("all-proxy", {"ALL_PROXY": "http://p:1080"}, HTTPS_URL, ("ALL_PROXY", "http://p:1080")),
    (
        "scheme-beats-all",
        {"ALL_PROXY": "http://a:1", "HTTPS_PROXY": "http://s:2"},
        HTTPS_URL,
        ("HTTPS_PROXY", "http://s:2"),
    ),
    ("no-scheme-means-http", {"https_proxy": "p:3128"}, HTTPS_URL, ("https_proxy", "http://p:3128")),
    (
        "lowercase-wins",
        {"HTTPS_PROXY": "http://upper:1", "https_proxy": "http://lower:2"},
        HTTPS_URL,
        ("https_proxy", "http://lower:2"),
    ),
    ("empty-lowercase-unsets", {"HTTPS_PROXY": "http://upper:1", "https_proxy": ""}, HTTPS_URL, None),
    ("no-proxy-domain", {"HTTPS_PROXY": "http://p:1", "NO_PROXY": "example.com"}, HTTPS_URL, None),
    ("no-proxy-domain-itself", {"HTTPS_PROXY": "http://p:1", "NO_PROXY": "example.com"}, "https://example.com/", None),
    (
        "no-proxy-dot-subdomains-only",
        {"HTTPS_PROXY": "http://p:1", "no_proxy": ".example.com"},
        "https://example.com/",
        ("HTTPS_PROXY", "http://p:1"),
    ),
    ("no-proxy-dot-subdomain", {"HTTPS_PROXY": "http://p:1", "no_proxy": ".example.com"}, HTTPS_URL, None),
    (
        "no-proxy-other-domain",
        {"HTTPS_PROXY": "http://p:1", "NO_PROXY": "other.com, localhost"},
        HTTPS_URL,
        ("HTTPS_PROXY", "http://p:1"),
    ),
    (
        "no-proxy-not-a-suffix",
        {"HTTPS_PROXY": "http://p:1", "NO_PROXY": "ample.com"},
        HTTPS_URL,
        ("HTTPS_PROXY", "http://p:1"),
    ),
    ("no-proxy-star", {"HTTPS_PROXY": "http://p:1", "NO_PROXY": "*"}, HTTPS_URL, None),
    ("no-proxy-ipv4", {"HTTPS_PROXY": "http://p:1", "NO_PROXY": "127.0.0.1"}, "https://127.0.0.1:8443/mcp", None),
    ("no-proxy-ipv6", {"HTTPS_PROXY": "http://p:1", "NO_PROXY": "::1"}, "https://[::1]:8443/mcp", None),
    ("no-proxy-localhost", {"HTTPS_PROXY": "http://p:1", "NO_PROXY": "localhost"}, "https://localhost/mcp", None),
    (
        "no-proxy-with-scheme-and-port",
        {"HTTPS_PROXY": "http://p:1", "NO_PROXY": "https://api.example.com:8443"},
        "https://api.example.com:8443/mcp",
        None,
    ),
    (
        "no-proxy-port-differs",
        {"HTTPS_PROXY": "http://p:1", "NO_PROXY": "https://api.example.com:8443"},
        HTTPS_URL,
        ("HTTPS_PROXY", "http://p:1"),
    ),
    ("cgi-ignores-uppercase-http-proxy", {"HTTP_PROXY": "http://p:1", "REQUEST_METHOD": "GET"}, HTTP_URL, None),
    (
        "cgi-keeps-lowercase-http-proxy",
        {"http_proxy": "http://p:1", "REQUEST_METHOD": "GET"},
        HTTP_URL,
        ("http_proxy", "http://p:1"),
    ),
]


@pytest.mark.parametrize(
    ("environ", "url", "expected"), [row[1:] for row in PROXY_SELECTION], ids=[row[0] for row in PROXY_SELECTION]
)
def test_proxy_for_reads_the_environment_as_httpx_does(
    environ: dict[str, str], url: str, expected: tuple[str, str] | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = d.proxy_for(url, environ)
    assert (None if proxy is None else (proxy.variable, proxy.url)) == expected
    # The same environment, read by httpx itself: the same decision (direct, or the same proxy).
    for name in list(os.environ):
        if name.lower().endswith("_proxy") or name == "REQUEST_METHOD":
            monkeypatch.delenv(name)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    with httpx.Client() as client:
        transport = client._transport_for_url(httpx.URL(url))
        chosen = getattr(getattr(transport, "_pool", None), "_proxy_url", None)
    if expected is None:
        assert transport is client._transport
    else:
        target = httpx.URL(expected[1])
        assert chosen is not None
        assert (chosen.host, chosen.port) == (target.host.encode(), target.port)


def test_proxy_for_defaults_to_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.lower().endswith("_proxy"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HTTPS_PROXY", "http://corp:3128")
    proxy = d.proxy_for(HTTPS_URL)
    assert proxy is not None and (proxy.variable, proxy.url) == ("HTTPS_PROXY", "http://corp:3128")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://alice:s3cret@proxy.corp:3128", "http://alice:****@proxy.corp:3128"),
        ("http://tok3n@proxy.corp:3128", "http://****@proxy.corp:3128"),
        ("http://proxy.corp:3128", "http://proxy.corp:3128"),
        ("http://u:p%40ss@[::1]:3128", "http://u:****@[::1]:3128"),
    ],
)
def test_proxy_credentials_are_masked(url: str, shown: str) -> None:
    assert d.ProxyInUse(url, "HTTPS_PROXY").display == shown


@pytest.fixture
def proxy_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No proxy settings of the machine running the tests; each test sets its own."""
    for name in list(os.environ):
        if name.lower().endswith("_proxy"):
            monkeypatch.delenv(name)
    return monkeypatch


def attempt(url: str) -> BaseException:
    """A real request with httpx (trust_env, as every door's client); returns what it raised."""
    with pytest.raises(httpx.HTTPError) as info, httpx.Client(timeout=5) as client:
        client.post(url, content=b"{}")
    return info.value


def test_unreachable_https_proxy_is_named_with_its_variable(
    proxy_environment: pytest.MonkeyPatch, closed_port: int
) -> None:
    proxy_environment.setenv("HTTPS_PROXY", f"http://alice:s3cret@127.0.0.1:{closed_port}")
    with ports.closed_port() as target_port:
        target = f"https://localhost:{target_port}/mcp"
        diagnosis = diagnose_exception(attempt(target), context=context(url=target))
    assert (diagnosis.kind, diagnosis.retryable) == (d.CONNECTION_REFUSED, True)
    assert diagnosis.message() == (
        f"could not connect to the HTTPS proxy http://alice:****@127.0.0.1:{closed_port} (from HTTPS_PROXY): "
        "connection refused. Diagnosis: nothing is listening at the proxy's address: check that the proxy is running "
        "and the port in HTTPS_PROXY, or unset HTTPS_PROXY / add localhost to NO_PROXY if the host is reachable "
        "directly"
    )
    assert "s3cret" not in repr(diagnosis)


def test_all_proxy_for_plain_http_targets(proxy_environment: pytest.MonkeyPatch, closed_port: int) -> None:
    proxy_environment.setenv("all_proxy", f"http://127.0.0.1:{closed_port}")
    with ports.closed_port() as target_port:
        target = f"http://127.0.0.1:{target_port}/mcp"
        diagnosis = diagnose_exception(attempt(target), context=context(url=target))
    assert (
        diagnosis.cause
        == f"could not connect to the proxy http://127.0.0.1:{closed_port} (from all_proxy): connection refused"
    )


def test_no_proxy_keeps_the_target_named(proxy_environment: pytest.MonkeyPatch, closed_port: int) -> None:
    target = f"http://127.0.0.1:{closed_port}/mcp"
    proxy_environment.setenv("NO_PROXY", "127.0.0.1")
    with ports.closed_port() as proxy_port:
        proxy_environment.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy_port}")
        diagnosis = diagnose_exception(attempt(target), context=context(url=target))
    assert diagnosis.cause == f"connection to 127.0.0.1:{closed_port} refused"


def test_environ_argument_overrides_the_process_environment(
    proxy_environment: pytest.MonkeyPatch, closed_port: int
) -> None:
    """A caller whose client does not use environment proxies passes {}: the target is named."""
    target = f"https://localhost:{closed_port}/mcp"
    with ports.closed_port() as proxy_port:
        proxy_environment.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy_port}")
        diagnosis = diagnose_exception(attempt(target), context=context(url=target), environ={})
    assert diagnosis.cause == f"connection to {target.split('//')[1].split('/')[0]} refused"


def connect_error(cause: BaseException) -> httpx.ConnectError:
    """httpx's exception with its cause, as httpx raises it (``raise ... from``)."""
    try:
        try:
            raise cause
        except BaseException as inner:
            raise httpx.ConnectError(str(inner)) from inner
    except httpx.ConnectError as outer:
        return outer


# failure, environment, target, kind, message
PROXY_FAILURES = [
    (
        "proxy-host-does-not-resolve",
        lambda: connect_error(socket.gaierror(socket.EAI_NONAME, "Name or service not known")),
        {"HTTPS_PROXY": "http://proxy.corp.invalid:3128"},
        APIGW_URL,
        d.DNS,
        "could not connect to the HTTPS proxy http://proxy.corp.invalid:3128 (from HTTPS_PROXY): DNS lookup of "
        "proxy.corp.invalid failed ([Errno -2] Name or service not known). Diagnosis: "
        "check the proxy's host name in HTTPS_PROXY, or unset HTTPS_PROXY / add "
        "abc123.execute-api.us-east-1.amazonaws.com to NO_PROXY if the host is reachable directly",
    ),
    (
        "proxy-connect-timeout",
        lambda: httpx.ConnectTimeout("timed out"),
        {"HTTPS_PROXY": "http://10.0.0.1:3128"},
        APIGW_URL,
        d.CONNECT_TIMEOUT,
        "connecting through the HTTPS proxy http://10.0.0.1:3128 (from HTTPS_PROXY) to "
        "abc123.execute-api.us-east-1.amazonaws.com:443 timed out. Diagnosis: no answer in time from the proxy, or "
        "through it from the server: check the proxy's address in HTTPS_PROXY and the network, or unset "
        "HTTPS_PROXY / add abc123.execute-api.us-east-1.amazonaws.com to NO_PROXY if the host is reachable directly",
    ),
    (
        "target-dns-with-proxy-bypassed-by-no-proxy",
        lambda: connect_error(socket.gaierror(socket.EAI_NONAME, "Name or service not known")),
        {"HTTPS_PROXY": "http://proxy.corp:3128", "NO_PROXY": ".amazonaws.com"},
        APIGW_URL,
        d.DNS,
        "DNS lookup of abc123.execute-api.us-east-1.amazonaws.com failed ([Errno -2] Name or service not known). "
        "Diagnosis: check the host name in the target URL (typo, wrong region or API id?); `nslookup "
        "abc123.execute-api.us-east-1.amazonaws.com` tests it; a private API Gateway or VPC endpoint resolves only "
        "inside its VPC/VPN; the host may have to be reached through the HTTPS proxy "
        "http://proxy.corp:3128 (from HTTPS_PROXY), which NO_PROXY makes it bypass: remove "
        "abc123.execute-api.us-east-1.amazonaws.com from NO_PROXY if so",
    ),
    (
        "target-dns-without-any-proxy",
        lambda: connect_error(socket.gaierror(socket.EAI_NONAME, "Name or service not known")),
        {},
        APIGW_URL,
        d.DNS,
        "DNS lookup of abc123.execute-api.us-east-1.amazonaws.com failed ([Errno -2] Name or service not known). "
        "Diagnosis: check the host name in the target URL (typo, wrong region or API id?); `nslookup "
        "abc123.execute-api.us-east-1.amazonaws.com` tests it; a private API Gateway or VPC endpoint resolves only "
        "inside its VPC/VPN; behind a corporate proxy set HTTPS_PROXY",
    ),
]


@pytest.mark.parametrize(
    ("failure", "environ", "url", "kind", "message"),
    [row[1:] for row in PROXY_FAILURES],
    ids=[row[0] for row in PROXY_FAILURES],
)
def test_connect_failures_name_the_proxy(
    failure: Any, environ: dict[str, str], url: str, kind: str, message: str
) -> None:
    diagnosis = diagnose_exception(failure(), context=context(url=url), environ=environ)
    assert (diagnosis.kind, diagnosis.message()) == (kind, message)


PROXY_REFUSALS = [
    (
        407,
        "refused the connection to localhost:9443: 407 Proxy Authentication Required. Diagnosis: the proxy wants "
        "credentials: put them in the proxy URL (HTTPS_PROXY=http://USER:PASSWORD@HOST:PORT), or unset "
        "HTTPS_PROXY / add localhost to NO_PROXY if the host is reachable directly",
    ),
    (
        403,
        "refused the connection to localhost:9443: 403 Forbidden. Diagnosis: the proxy's rules forbid connections "
        "to localhost:9443: ask for it to be allowed, or unset HTTPS_PROXY / add localhost to NO_PROXY if the host "
        "is reachable directly",
    ),
    (
        502,
        "refused the connection to localhost:9443: 502 Bad Gateway. Diagnosis: the proxy could not reach "
        "localhost:9443 itself (name resolution, firewall, or the server is down): check the target URL; for a "
        "host inside your network, unset HTTPS_PROXY / add localhost to NO_PROXY",
    ),
    (
        418,
        "refused the connection to localhost:9443: 418 I'm a teapot. Diagnosis: check the proxy's logs, or unset "
        "HTTPS_PROXY / add localhost to NO_PROXY if the host is reachable directly",
    ),
]


@pytest.mark.parametrize(("status", "message"), PROXY_REFUSALS, ids=["407", "403", "502", "418"])
def test_a_proxy_refusing_the_tunnel_is_named(status: int, message: str, proxy_environment: pytest.MonkeyPatch) -> None:
    target = "https://localhost:9443/mcp"
    with ConnectProxy(refuse=status) as proxy:
        port = proxy.port
        proxy_environment.setenv("HTTPS_PROXY", proxy.url_with("bob", "pa55"))
        exc = attempt(target)
    assert type(exc) is httpx.ProxyError
    diagnosis = diagnose_exception(exc, context=context(url=target))
    assert (diagnosis.kind, diagnosis.retryable) == ("proxy_refused", False)
    assert diagnosis.message() == f"the HTTPS proxy http://bob:****@127.0.0.1:{port} (from HTTPS_PROXY) {message}"


def test_a_proxy_error_without_a_known_proxy() -> None:
    diagnosis = diagnose_exception(
        httpx.ProxyError("407 Proxy Authentication Required"), context=context(url=APIGW_URL), environ={}
    )
    assert diagnosis.message() == (
        "the proxy in use refused the connection to abc123.execute-api.us-east-1.amazonaws.com:443: 407 Proxy "
        "Authentication Required. Diagnosis: the proxy wants credentials: put them in the proxy URL "
        "(http://USER:PASSWORD@HOST:PORT), or add abc123.execute-api.us-east-1.amazonaws.com to NO_PROXY if the "
        "host is reachable directly"
    )


# --- end to end: the stdio proxy with an unreachable HTTPS_PROXY; the MCP client reads the proxy's name ---------


async def test_stdio_proxy_names_the_unreachable_https_proxy(closed_port: int) -> None:
    with ports.closed_port() as target_port:  # never reached (the proxy's port refuses), and refusing if it were
        target = f"https://localhost:{target_port}/mcp"
        env = {
            "HTTPS_PROXY": f"http://alice:s3cret@127.0.0.1:{closed_port}",
            "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
            "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        }
        if os.environ.get("PYTHONPATH"):
            env["PYTHONPATH"] = os.environ["PYTHONPATH"]  # the child runs the code under test
        args = ("--target-url", target, "--region", "us-east-1", "--service-name", "execute-api", "--retries", "0")
        async with raw_proxy(None, *args, env=env) as proxy:
            response = await proxy.request(initialize_message(1), timeout=30)
            assert await proxy.close() == 0
            stderr = proxy.stderr
    assert response["error"]["message"] == (
        f"could not connect to the HTTPS proxy http://alice:****@127.0.0.1:{closed_port} (from HTTPS_PROXY): "
        "connection refused. Diagnosis: nothing is listening at the proxy's address: check that the proxy is "
        "running and the port in HTTPS_PROXY, or unset HTTPS_PROXY / add localhost to NO_PROXY if the host is "
        "reachable directly (--retries is 0)"
    )
    assert response["error"]["data"]["kind"] == "connection_refused"
    assert "s3cret" not in json.dumps(response) and "s3cret" not in stderr
