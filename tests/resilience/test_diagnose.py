"""The diagnosis table: every AWS error shape and every failure kind -> the exact message users see."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import get_args

import pytest

from sigv4_proxy import diagnose as d
from sigv4_proxy import retry
from sigv4_proxy.diagnose import Diagnosis, SigningContext, diagnose_response, kinds, parse_aws_error
from sigv4_proxy.redact import redact

APIGW = SigningContext(
    url="https://abc123.execute-api.us-east-1.amazonaws.com/prod/mcp",
    region="us-east-1",
    service="execute-api",
    access_key="AKIA****MPLE",
    has_session_token=False,
    credential_method="env",
)
LOCAL = SigningContext(url="http://127.0.0.1:8080/mcp", region="us-east-1", service="execute-api")
MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check your AWS Secret "
    "Access Key and signing method. Consult the service documentation for details."
)


def apigw(error_type: str | None, message: str, status: int = 403) -> tuple[int, list[tuple[str, str]], bytes]:
    """API Gateway's shape (also what `emulate mcp` sends): x-amzn-ErrorType + JSON {"message"}."""
    headers = [("Content-Type", "application/json")]
    if error_type:
        headers.append(("x-amzn-ErrorType", f"{error_type}:http://internal.amazon.com/coral/com.amazon.coral.service/"))
    return status, headers, json.dumps({"message": message}).encode()


@dataclass
class Case:
    id: str
    response: tuple[int, list[tuple[str, str]], bytes]
    kind: str
    hint: str
    context: SigningContext = APIGW
    error_type: str | None = None
    aws_message: str | None = None
    retryable: bool = False
    extra: dict[str, object] = field(default_factory=dict)


CASES = [
    Case(
        "signature-wrong-service",
        apigw(
            "InvalidSignatureException", MISMATCH + "\n\nThe Canonical String for this request should have been\n'x'\n"
        ),
        d.SIGNATURE_MISMATCH,
        "signed for service 'lambda' but abc123.execute-api.us-east-1.amazonaws.com is an API Gateway endpoint: "
        "use --service-name execute-api",
        context=replace(APIGW, service="lambda"),
        error_type="InvalidSignatureException",
        aws_message=MISMATCH,
    ),
    Case(
        "signature-wrong-region-and-service",
        apigw("InvalidSignatureException", MISMATCH),
        d.SIGNATURE_MISMATCH,
        "signed for service 'lambda' but abc123.execute-api.us-east-1.amazonaws.com is an API Gateway endpoint: "
        "use --service-name execute-api; signed for region 'eu-west-1' but "
        "abc123.execute-api.us-east-1.amazonaws.com is in us-east-1: use --region us-east-1",
        context=replace(APIGW, service="lambda", region="eu-west-1"),
        error_type="InvalidSignatureException",
        aws_message=MISMATCH,
    ),
    Case(
        "signature-scope-fits-host",
        apigw("InvalidSignatureException", MISMATCH),
        d.SIGNATURE_MISMATCH,
        "service 'execute-api' and region 'us-east-1' fit the host, so the secret key does not belong to access "
        "key AKIA****MPLE (check AWS_SECRET_ACCESS_KEY or the profile's credentials; `aws sts "
        "get-caller-identity` tests them), or something between us and the server changed the request (path, "
        "host or headers)",
        error_type="InvalidSignatureException",
        aws_message=MISMATCH,
    ),
    Case(
        "signature-v4a-suggests-v4",
        apigw("InvalidSignatureException", MISMATCH),
        d.SIGNATURE_MISMATCH,
        "service 'execute-api' and region '*' fit the host, so the secret key does not belong to access key "
        "(check AWS_SECRET_ACCESS_KEY or the profile's credentials; `aws sts get-caller-identity` tests them), "
        "or something between us and the server changed the request (path, host or headers); if the endpoint "
        "does not support SigV4a, use --sig-version v4",
        context=replace(APIGW, region=["*"], algorithm="v4a", access_key=None),
        error_type="InvalidSignatureException",
        aws_message=MISMATCH,
    ),
    Case(
        "s3-xml-signature-does-not-match",
        (
            403,
            [("Content-Type", "application/xml")],
            b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SignatureDoesNotMatch</Code><Message>The '
            b"request signature we calculated does not match the signature you provided. Check your key and signing "
            b"method.</Message><AWSAccessKeyId>AKIAIOSFODNN7EXAMPLE</AWSAccessKeyId><StringToSign>AWS4-HMAC-SHA256"
            b"</StringToSign><SignatureProvided>0123456789abcdef0123</SignatureProvided><CanonicalRequest>GET\n/"
            b"</CanonicalRequest><RequestId>R1</RequestId></Error>",
        ),
        d.SIGNATURE_MISMATCH,
        "signed for service 's3' but abc123.execute-api.us-east-1.amazonaws.com is an API Gateway endpoint: "
        "use --service-name execute-api",
        context=replace(APIGW, service="s3"),
        error_type="SignatureDoesNotMatch",
        aws_message="The request signature we calculated does not match the signature you provided. Check your "
        "key and signing method.",
    ),
    Case(
        "wrong-service-message",
        apigw("InvalidSignatureException", "Credential should be scoped to correct service: 'lambda'. "),
        d.WRONG_SERVICE,
        "signed for service 'execute-api' but the server expects 'lambda': use --service-name lambda",
        context=replace(APIGW, url="http://127.0.0.1:9000/mcp"),
        error_type="InvalidSignatureException",
        aws_message="Credential should be scoped to correct service: 'lambda'.",
    ),
    Case(
        "wrong-region-message-apigw",
        apigw("InvalidSignatureException", "Credential should be scoped to a valid region, not 'eu-west-1'. "),
        d.WRONG_REGION,
        "signed for region 'eu-west-1' but the endpoint is in us-east-1: use --region us-east-1",
        context=replace(APIGW, region="eu-west-1"),
        error_type="InvalidSignatureException",
        aws_message="Credential should be scoped to a valid region, not 'eu-west-1'.",
    ),
    Case(
        "wrong-region-custom-domain",
        apigw("InvalidSignatureException", "Credential should be scoped to a valid region. "),
        d.WRONG_REGION,
        "the endpoint is not in region 'eu-west-1': use --region REGION with the endpoint's region (AWS host names "
        "carry it, e.g. abc123.execute-api.REGION.amazonaws.com; for a custom domain, the region of the API behind "
        "it)",
        context=replace(APIGW, url="https://mcp.example.com/", region="eu-west-1"),
        error_type="InvalidSignatureException",
        aws_message="Credential should be scoped to a valid region.",
    ),
    Case(
        "s3-authorization-header-malformed-region",
        (
            400,
            [],
            b"<Error><Code>AuthorizationHeaderMalformed</Code><Message>The authorization header is "
            b"malformed; the region 'us-east-1' is wrong; expecting 'eu-central-1'</Message>"
            b"<Region>eu-central-1</Region></Error>",
        ),
        d.WRONG_REGION,
        "signed for region 'us-east-1' but the endpoint is in eu-central-1: use --region eu-central-1",
        context=replace(APIGW, url="https://bucket.s3.amazonaws.com/", service="s3"),
        error_type="AuthorizationHeaderMalformed",
        aws_message="The authorization header is malformed; the region 'us-east-1' is wrong; expecting 'eu-central-1'",
    ),
    Case(
        "clock-behind",
        apigw(
            "InvalidSignatureException",
            "Signature expired: 20240101T000000Z is now earlier than 20240101T000503Z (20240101T001003Z - 5 min.)",
        ),
        d.CLOCK_SKEW,
        "this machine's clock is 10 min 3 s behind the server's: signatures are valid for 5 minutes around the "
        "server's time. Sync the clock (Linux: `sudo chronyc makestep` or `sudo timedatectl set-ntp true`; "
        "macOS: `sudo sntp -sS time.apple.com`)",
        error_type="InvalidSignatureException",
        aws_message="Signature expired: 20240101T000000Z is now earlier than 20240101T000503Z (20240101T001003Z "
        "- 5 min.)",
    ),
    Case(
        "clock-ahead",
        apigw(
            "InvalidSignatureException",
            "Signature not yet current: 20240101T002000Z is still later than "
            "20240101T001500Z (20240101T001000Z + 5 min.)",
        ),
        d.CLOCK_SKEW,
        "this machine's clock is 10 min ahead of the server's: signatures are valid for 5 minutes around the "
        "server's time. Sync the clock (Linux: `sudo chronyc makestep` or `sudo timedatectl set-ntp true`; "
        "macOS: `sudo sntp -sS time.apple.com`)",
        error_type="InvalidSignatureException",
        aws_message="Signature not yet current: 20240101T002000Z is still later than 20240101T001500Z "
        "(20240101T001000Z + 5 min.)",
    ),
    Case(
        "s3-request-time-too-skewed",
        (
            403,
            [("Date", "Mon, 01 Jan 2024 00:20:00 GMT")],
            b"<Error><Code>RequestTimeTooSkewed</Code><Message>The difference between the request time and the "
            b"current time is too large.</Message><RequestTime>20240101T000000Z</RequestTime>"
            b"<ServerTime>2024-01-01T00:20:00Z</ServerTime></Error>",
        ),
        d.CLOCK_SKEW,
        "this machine's clock is 20 min behind the server's: signatures are valid for 5 minutes around the "
        "server's time. Sync the clock (Linux: `sudo chronyc makestep` or `sudo timedatectl set-ntp true`; "
        "macOS: `sudo sntp -sS time.apple.com`)",
        error_type="RequestTimeTooSkewed",
        aws_message="The difference between the request time and the current time is too large.",
    ),
    Case(
        "expired-token-sso",
        apigw("ExpiredTokenException", "The security token included in the request is expired"),
        d.EXPIRED_TOKEN,
        "the AWS SSO session has ended: run `aws sso login --profile dev`; the proxy keeps running and uses the "
        "new credentials on the next request",
        context=replace(APIGW, credential_method="sso", profile="dev", access_key="ASIA****MPLE"),
        error_type="ExpiredTokenException",
        aws_message="The security token included in the request is expired",
    ),
    Case(
        "expired-token-env",
        (
            400,
            [("Content-Type", "application/x-amz-json-1.1")],
            b'{"__type":"com.amazon.coral.service#ExpiredTokenException","message":"The security token included in '
            b'the request is expired"}',
        ),
        d.EXPIRED_TOKEN,
        "the temporary credentials in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN have expired "
        "and environment credentials cannot refresh: export fresh ones and restart, or use a profile that "
        "refreshes itself (SSO, role_arn + source_profile, credential_process)",
        error_type="ExpiredTokenException",
        aws_message="The security token included in the request is expired",
    ),
    Case(
        "expired-token-sts-xml-default-profile",
        (
            403,
            [],
            b'<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
            b"<Code>ExpiredToken</Code><Message>The security token included in the request is expired"
            b"</Message></Error><RequestId>1</RequestId></ErrorResponse>",
        ),
        d.EXPIRED_TOKEN,
        "the AWS SSO session has ended: run `aws sso login`; the proxy keeps running and uses the new "
        "credentials on the next request",
        context=replace(APIGW, credential_method="sso"),
        error_type="ExpiredToken",
        aws_message="The security token included in the request is expired",
    ),
    Case(
        "missing-session-token",
        apigw("UnrecognizedClientException", "The security token included in the request is invalid."),
        d.MISSING_SESSION_TOKEN,
        "access key ASIA****MPLE is a temporary key (ASIA…) but no session token was sent: set AWS_SESSION_TOKEN "
        "(or aws_session_token in the profile) together with the key",
        context=replace(APIGW, access_key="ASIA****MPLE", has_session_token=False),
        error_type="UnrecognizedClientException",
        aws_message="The security token included in the request is invalid.",
    ),
    Case(
        "unexpected-session-token",
        (
            403,
            [],
            b"<ErrorResponse><Error><Code>InvalidClientTokenId</Code><Message>The security token included "
            b"in the request is invalid</Message></Error></ErrorResponse>",
        ),
        d.UNEXPECTED_SESSION_TOKEN,
        "access key AKIA****MPLE is a long-term key (AKIA…) but a session token was sent with it: unset "
        "AWS_SESSION_TOKEN (or aws_session_token in the profile); it belongs to other credentials",
        context=replace(APIGW, has_session_token=True),
        error_type="InvalidClientTokenId",
        aws_message="The security token included in the request is invalid",
    ),
    Case(
        "unrecognized-client",
        apigw("UnrecognizedClientException", "The security token included in the request is invalid."),
        d.INVALID_TOKEN,
        "AWS does not recognise access key AKIA****MPLE: the key was deleted or deactivated, the key belongs to "
        "another partition (China, GovCloud), or region us-east-1 is not enabled for the account; check with `aws "
        "sts get-caller-identity`",
        error_type="UnrecognizedClientException",
        aws_message="The security token included in the request is invalid.",
    ),
    Case(
        "s3-invalid-access-key-id",
        (
            403,
            [],
            b"<Error><Code>InvalidAccessKeyId</Code><Message>The AWS Access Key Id you provided does not "
            b"exist in our records.</Message><AWSAccessKeyId>AKIAIOSFODNN7EXAMPLE</AWSAccessKeyId></Error>",
        ),
        d.UNKNOWN_ACCESS_KEY,
        "AWS does not recognise access key AKIA****MPLE: the key was deleted or deactivated, the key belongs to "
        "another partition (China, GovCloud), or region us-east-1 is not enabled for the account; check with `aws "
        "sts get-caller-identity`",
        error_type="InvalidAccessKeyId",
        aws_message="The AWS Access Key Id you provided does not exist in our records.",
    ),
    Case(
        "not-authorized-action",
        apigw(
            "AccessDeniedException",
            "User: arn:aws:sts::123456789012:assumed-role/Dev/me is not authorized to "
            "perform: execute-api:Invoke on resource: arn:aws:execute-api:us-east-1:123456789012:abc123/prod/"
            "POST/mcp",
        ),
        d.ACCESS_DENIED,
        "missing IAM permission: allow execute-api:Invoke on arn:aws:execute-api:us-east-1:123456789012:abc123/"
        "prod/POST/mcp for arn:aws:sts::123456789012:assumed-role/Dev/me in the IAM policy (and the resource "
        "policy, if any)",
        error_type="AccessDeniedException",
        aws_message="User: arn:aws:sts::123456789012:assumed-role/Dev/me is not authorized to perform: "
        "execute-api:Invoke on resource: arn:aws:execute-api:us-east-1:123456789012:abc123/prod/POST/mcp",
    ),
    Case(
        "not-authorized-no-identity-policy-401",
        (
            401,
            [("x-amzn-ErrorType", "AccessDeniedException")],
            b'{"Message":"User: arn:aws:iam::123456789012:user/bob is not authorized to perform: '
            b"bedrock-agentcore:InvokeAgentRuntime on resource: arn:aws:bedrock-agentcore:us-west-2:123456789012:"
            b'runtime/r-1 because no identity-based policy allows the bedrock-agentcore:InvokeAgentRuntime action"}',
        ),
        d.ACCESS_DENIED,
        "missing IAM permission: allow bedrock-agentcore:InvokeAgentRuntime on arn:aws:bedrock-agentcore:"
        "us-west-2:123456789012:runtime/r-1 for arn:aws:iam::123456789012:user/bob in an identity-based policy",
        error_type="AccessDeniedException",
        aws_message="User: arn:aws:iam::123456789012:user/bob is not authorized to perform: "
        "bedrock-agentcore:InvokeAgentRuntime on resource: arn:aws:bedrock-agentcore:us-west-2:123456789012:"
        "runtime/r-1 because no identity-based policy allows the bedrock-agentcore:InvokeAgentRuntime action",
    ),
    Case(
        "explicit-deny",
        apigw(
            "AccessDeniedException",
            "User: arn:aws:iam::123456789012:user/bob is not authorized to perform: "
            "execute-api:Invoke on resource: arn:aws:execute-api:us-east-1:123456789012:abc123/* with an "
            "explicit deny in a resource-based policy",
        ),
        d.ACCESS_DENIED,
        "an explicit Deny in a resource-based policy blocks execute-api:Invoke on arn:aws:execute-api:us-east-1:"
        "123456789012:abc123/* for arn:aws:iam::123456789012:user/bob: an Allow elsewhere cannot override it; "
        "remove or narrow that Deny",
        error_type="AccessDeniedException",
        aws_message="User: arn:aws:iam::123456789012:user/bob is not authorized to perform: execute-api:Invoke "
        "on resource: arn:aws:execute-api:us-east-1:123456789012:abc123/* with an explicit deny in a "
        "resource-based policy",
    ),
    Case(
        "anonymous",
        apigw(
            "AccessDeniedException",
            "User: anonymous is not authorized to perform: execute-api:Invoke on "
            "resource: arn:aws:execute-api:us-east-1:123456789012:abc123/prod/POST/mcp",
        ),
        d.ACCESS_DENIED,
        "the request arrived unsigned (principal 'anonymous'): a proxy or redirect in between dropped the "
        "Authorization header, or the target URL is not the signed endpoint; execute-api:Invoke on "
        "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/POST/mcp must be requested with a signature",
        error_type="AccessDeniedException",
        aws_message="User: anonymous is not authorized to perform: execute-api:Invoke on resource: "
        "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/POST/mcp",
    ),
    Case(
        "lambda-url-forbidden",
        (
            403,
            [("x-amzn-ErrorType", "AccessDeniedException"), ("Content-Type", "application/json")],
            b'{"Message":"Forbidden. For troubleshooting Function URL authorization issues, see: '
            b'https://docs.aws.amazon.com/lambda/latest/dg/urls-auth.html"}',
        ),
        d.ACCESS_DENIED,
        "the caller needs lambda:InvokeFunctionUrl on this resource: add it to the IAM policy of the role/user "
        "behind the credentials and check that the function URL's auth type is AWS_IAM and its resource policy "
        "allows you (`aws sts get-caller-identity` shows who the caller is)",
        context=replace(APIGW, url="https://abcdefg.lambda-url.us-east-1.on.aws/mcp", service="lambda"),
        error_type="AccessDeniedException",
        aws_message="Forbidden. For troubleshooting Function URL authorization issues, see: "
        "https://docs.aws.amazon.com/lambda/latest/dg/urls-auth.html",
    ),
    Case(
        "apigw-forbidden",
        apigw("ForbiddenException", "Forbidden"),
        d.FORBIDDEN,
        "API Gateway answered 'Forbidden' without naming a permission: the stage may require an API key (send it "
        "with --headers x-api-key=KEY), a private API was called outside its VPC endpoint, a WAF rule blocked "
        "the request, or the path does not exist on a custom domain mapping",
        error_type="ForbiddenException",
        aws_message="Forbidden",
    ),
    Case(
        "missing-authentication-token",
        apigw("MissingAuthenticationTokenException", "Missing Authentication Token"),
        d.MISSING_AUTH,
        "API Gateway answers this both for unsigned requests and for a path or method the API does not define: "
        "check the target URL's path (stage name included, e.g. /prod/mcp) and the method",
        error_type="MissingAuthenticationTokenException",
        aws_message="Missing Authentication Token",
    ),
    Case(
        "incomplete-signature-bearer",
        apigw(
            "IncompleteSignatureException",
            "Invalid key=value pair (missing equal-sign) in Authorization header "
            "(hashed with SHA-256 and encoded with Base64): 'abc='.",
        ),
        d.INCOMPLETE_SIGNATURE,
        "the server received an Authorization header that is not a SigV4 signature (e.g. a bearer token): "
        "remove the client's own Authorization header so that the signature can take its place",
        error_type="IncompleteSignatureException",
        aws_message="Invalid key=value pair (missing equal-sign) in Authorization header (hashed with SHA-256 "
        "and encoded with Base64): 'abc='.",
    ),
    Case(
        "incomplete-signature-echo-redacted",
        apigw(
            "IncompleteSignatureException",
            "Authorization header requires 'SignedHeaders' parameter. "
            "Authorization=AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20240101/us-east-1/execute-api/"
            "aws4_request, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7",
        ),
        d.INCOMPLETE_SIGNATURE,
        "the server received an incomplete or malformed signature: something between us and the server altered "
        "the Authorization or X-Amz-* headers",
        error_type="IncompleteSignatureException",
        aws_message="Authorization header requires 'SignedHeaders' parameter. Authorization=AWS4-HMAC-SHA256 "
        "Credential=AKIA****MPLE/20240101/us-east-1/execute-api/aws4_request, Signature=****",
    ),
    Case(
        "throttled-429-apigw",
        apigw("TooManyRequestsException", "Too Many Requests", status=429),
        d.THROTTLED,
        "the server is throttling requests: retried with backoff; if it persists, lower the request rate or ask "
        "for a higher quota",
        error_type="TooManyRequestsException",
        aws_message="Too Many Requests",
        retryable=True,
    ),
    Case(
        "throttled-400-awsjson",
        (400, [], b'{"__type":"com.amazon.coral.availability#ThrottlingException","message":"Rate exceeded"}'),
        d.THROTTLED,
        "the server is throttling requests: retried with backoff; if it persists, lower the request rate or ask "
        "for a higher quota",
        error_type="ThrottlingException",
        aws_message="Rate exceeded",
        retryable=True,
    ),
    Case(
        "throttled-bare-429",
        (429, [("Retry-After", "1")], b""),
        d.THROTTLED,
        "the server is throttling requests (429): retried with backoff; if it persists, lower the request rate "
        "or ask for a higher quota",
        retryable=True,
    ),
    Case(
        "agentcore-424",
        (424, [("x-amzn-ErrorType", "RuntimeClientError")], b'{"message":"Failed dependency"}'),
        d.COLD_START,
        "the backend is not ready (Bedrock AgentCore answers 424 while a runtime cold-starts or when its "
        "container fails): retried with a longer backoff; if it persists, check the runtime's CloudWatch logs",
        error_type="RuntimeClientError",
        aws_message="Failed dependency",
        retryable=True,
    ),
    Case(
        "service-unavailable-503",
        (
            503,
            [("Content-Type", "text/html")],
            b"<html><head><title>503 Service Temporarily Unavailable</title></head><body><h1>503</h1></body></html>",
        ),
        d.UNAVAILABLE,
        "the gateway could not get a valid answer from the backend (502/503; restarting, overloaded, or a "
        "malformed backend response): retried with backoff; if it persists, check the backend's logs",
        aws_message="503 Service Temporarily Unavailable",
        retryable=True,
    ),
    Case(
        "bad-gateway-502-apigw",
        apigw(None, "Internal server error", status=502),
        d.UNAVAILABLE,
        "the gateway could not get a valid answer from the backend (502/503; restarting, overloaded, or a "
        "malformed backend response): retried with backoff; if it persists, check the backend's logs",
        aws_message="Internal server error",
        retryable=True,
    ),
    Case(
        "gateway-timeout-504",
        apigw(None, "Endpoint request timed out", status=504),
        d.GATEWAY_TIMEOUT,
        "the gateway gave up waiting for the backend (504; API Gateway's limit is 29 s by default); the backend "
        "may still have run the request, so it is only resent when that is safe; check the backend's duration "
        "and logs",
        aws_message="Endpoint request timed out",
        retryable=True,
    ),
    Case(
        "internal-failure-500-awsjson",
        (500, [], b'{"__type":"InternalFailure","message":"We encountered an internal error."}'),
        d.UNAVAILABLE,
        "the service is temporarily unavailable: retried with backoff",
        error_type="InternalFailure",
        aws_message="We encountered an internal error.",
        retryable=True,
    ),
    Case(
        "server-error-500-plain",
        (500, [("Content-Type", "text/plain")], b"Traceback (most recent call last):\n  boom\n"),
        d.SERVER_ERROR,
        "the server failed while handling the request: it may have been executed, so it was not resent; check "
        "the server's logs",
        aws_message="Traceback (most recent call last): boom",
    ),
    Case(
        "not-found",
        (404, [("Content-Type", "text/plain")], b"Not Found"),
        d.NOT_FOUND,
        "nothing at /prod/mcp on abc123.execute-api.us-east-1.amazonaws.com: check the target URL's path (MCP "
        "servers usually serve /mcp, legacy HTTP+SSE ones GET /sse and POST /messages/; API Gateway needs the "
        "stage, e.g. /prod/mcp; AgentCore /runtimes/<url-encoded ARN>/invocations). For an MCP request with a "
        "session id, the server has forgotten the session",
        aws_message="Not Found",
    ),
    Case(
        "payload-too-large",
        apigw(None, "Request Too Long", status=413),
        d.PAYLOAD_TOO_LARGE,
        "the request body is over the endpoint's limit (API Gateway: 10 MB, Lambda function URLs: 6 MB): send "
        "less per request",
        aws_message="Request Too Long",
    ),
    Case(
        "method-not-allowed",
        (405, [], b""),
        d.METHOD_NOT_ALLOWED,
        "the endpoint does not accept this HTTP method on this path: check the target URL (an MCP endpoint "
        "takes POST, and GET only for its event stream)",
    ),
    Case(
        "unauthorized-401-oauth",
        (401, [("WWW-Authenticate", "Bearer")], b'{"error":"invalid_token","error_description":"no token"}'),
        d.UNAUTHORIZED,
        "the server asks for a different kind of authentication (401; e.g. an OAuth bearer token or a Cognito "
        "authorizer), not IAM: check that the endpoint uses AWS_IAM authorization",
        aws_message="no token",
    ),
    Case(
        "jsonrpc-error-400",
        (
            400,
            [("Content-Type", "application/json")],
            b'{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Bad Request: Missing session ID"}}',
        ),
        d.BAD_REQUEST,
        "the server rejected the request as invalid: see its message",
        aws_message="Bad Request: Missing session ID",
    ),
    Case(
        "teapot",
        (418, [], b"short and stout"),
        d.CLIENT_ERROR,
        "the server rejected the request: see its message",
        aws_message="short and stout",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_diagnosis_table(case: Case) -> None:
    status, headers, body = case.response
    diagnosis = diagnose_response(status, headers, body, context=case.context)
    assert diagnosis.kind == case.kind
    assert diagnosis.hint == case.hint
    assert diagnosis.error_type == case.error_type
    assert diagnosis.aws_message == case.aws_message
    assert diagnosis.retryable is case.retryable
    assert diagnosis.status == status


def test_message_is_one_line_with_status_type_message_and_diagnosis() -> None:
    status, headers, body = apigw(
        "InvalidSignatureException",
        "Credential should be scoped to correct service: 'lambda'. ",
    )
    message = diagnose_response(status, headers, body, context=APIGW).message()
    assert message == (
        "HTTP 403 InvalidSignatureException: Credential should be scoped to correct service: 'lambda'. "
        "Diagnosis: signed for service 'execute-api' but the server expects 'lambda': use --service-name lambda"
    )


def test_message_keeps_canonical_request_in_details_not_in_the_line() -> None:
    canonical = "POST\n/prod/mcp\n\nhost:abc123.execute-api.us-east-1.amazonaws.com\nx-amz-security-token:IQoJb3Jp\n"
    text = f"{MISMATCH}\n\nThe Canonical String for this request should have been\n'{canonical}'\n\nThe String-to-Sign"
    status, headers, body = apigw("InvalidSignatureException", text)
    diagnosis = diagnose_response(status, headers, body, context=APIGW)
    assert "\n" not in diagnosis.message()
    assert "Canonical" not in diagnosis.message()
    assert diagnosis.details is not None
    assert diagnosis.details.startswith("The Canonical String for this request should have been\n'POST\n/prod/mcp\n")
    assert "x-amz-security-token:****" in diagnosis.details
    assert "IQoJb3Jp" not in diagnosis.details


def test_signature_mismatch_names_first_differing_line_when_our_canonical_request_is_known() -> None:
    theirs = "POST\n/mcp\n\nhost:internal-alb.local\n\nhost\nabc"
    ours = "POST\n/mcp\n\nhost:abc123.execute-api.us-east-1.amazonaws.com\n\nhost\nabc"
    text = f"{MISMATCH}\n\nThe Canonical String for this request should have been\n'{theirs}'\n\nThe String-to-Sign"
    status, headers, body = apigw("InvalidSignatureException", text)
    diagnosis = diagnose_response(status, headers, body, context=APIGW, canonical_request=ours)
    assert diagnosis.hint == (
        "the request the server received differs from the one we signed (line 4: we signed "
        "'host:abc123.execute-api.us-east-1.amazonaws.com', the server expected 'host:internal-alb.local'): "
        "something between us and the server (a proxy, load balancer or custom domain mapping) rewrote it; "
        "point --target-url at the endpoint itself"
    )


def test_message_clips_huge_bodies_and_reads_only_the_first_64k() -> None:
    body = b"x" * (1024 * 1024)
    diagnosis = diagnose_response(500, [], body, context=APIGW)
    assert diagnosis.aws_message is not None
    assert len(diagnosis.aws_message) == d.MAX_DIAGNOSED_BODY
    assert len(diagnosis.message()) < 1000


def test_recovery_names_what_the_bridge_does_before_one_retry() -> None:
    expired = diagnose_response(
        *apigw("ExpiredTokenException", "The security token included in the request is expired"), context=APIGW
    )
    skewed = diagnose_response(
        *apigw(
            "InvalidSignatureException",
            "Signature expired: 20240101T000000Z is now earlier than 20240101T000503Z (20240101T001003Z - 5 min.)",
        ),
        context=APIGW,
    )
    denied = diagnose_response(*apigw("AccessDeniedException", "Forbidden"), context=APIGW)
    assert (expired.recovery, skewed.recovery, denied.recovery) == ("refresh_credentials", "correct_clock", None)
    # One vocabulary: the retry policy's action names, which its decisions use for the same failures.
    assert (expired.recovery, skewed.recovery) == (retry.REFRESH_CREDENTIALS, retry.CORRECT_CLOCK)
    for diagnosis in (expired, skewed):
        decision = retry.RetryPolicy().decide(
            retry.RetryState(), retry.Outcome.from_diagnosis(diagnosis), random=lambda: 0
        )
        assert decision.action == diagnosis.recovery


def test_the_closed_sets_name_every_value_once() -> None:
    """Kind lists exactly the kind constants; the recovery actions are retry actions (JSON keeps the strings)."""
    constants = {value for name, value in vars(kinds).items() if name.isupper() and isinstance(value, str)}
    assert sorted(get_args(kinds.Kind)) == sorted(constants)
    assert len(get_args(kinds.Kind)) == len(constants)
    assert set(get_args(retry.RecoveryAction)) == set(retry.RECOVERIES.values())
    assert set(get_args(retry.RecoveryAction)) < set(get_args(retry.Action))
    assert {retry.RETRY, retry.REFRESH_CREDENTIALS, retry.CORRECT_CLOCK, retry.GIVE_UP} == set(get_args(retry.Action))


def test_to_dict_is_json_ready() -> None:
    diagnosis = diagnose_response(*apigw("ForbiddenException", "Forbidden"), context=APIGW)
    data = json.loads(json.dumps(diagnosis.to_dict()))
    assert data["status"] == 403
    assert data["kind"] == "forbidden"
    assert data["message"] == diagnosis.message()


# --- parsing every shape -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "body", "expected_type", "expected_message"),
    [
        (
            [("X-Amzn-ErrorType", "UnrecognizedClientException:http://internal.amazon.com/coral/")],
            b'{"message":"m"}',
            "UnrecognizedClientException",
            "m",
        ),
        (
            [],
            b'{"__type":"com.amazonaws.dynamodb.v20120810#ResourceNotFoundException","Message":"m2"}',
            "ResourceNotFoundException",
            "m2",
        ),
        ([], b'{"Error":{"Code":"Throttling","Message":"Rate exceeded"}}', "Throttling", "Rate exceeded"),
        ([], b'{"errorType":"Runtime.ExitError","errorMessage":"exited"}', "Runtime.ExitError", "exited"),
        (
            [],
            b"<Error><Code>AccessDenied</Code><Message>Access &amp; Denied</Message></Error>",
            "AccessDenied",
            "Access & Denied",
        ),
        (
            [],
            b"<ErrorResponse xmlns='x'><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate</Message>"
            b"</Error></ErrorResponse>",
            "Throttling",
            "Rate",
        ),
        (
            [("content-type", "text/plain")],
            b"  upstream connect error\n or disconnect  ",
            None,
            "upstream connect error or disconnect",
        ),
        ([], b"", None, None),
        ([], b"[1, 2]", None, "[1, 2]"),
        ([], b"\xff\xfe garbage", None, "\ufffd\ufffd garbage"),
    ],
)
def test_parse_aws_error_shapes(
    headers: list[tuple[str, str]], body: bytes, expected_type: str | None, expected_message: str | None
) -> None:
    error = parse_aws_error(headers, body)
    assert (error.error_type, error.message) == (expected_type, expected_message)


def test_header_lookup_accepts_mapping_and_pairs() -> None:
    assert d.header_value({"Retry-After": "3"}, "retry-after") == "3"
    assert d.header_value([("retry-after", "4"), ("Retry-After", "5")], "RETRY-AFTER") == "4"
    assert d.header_value([], "x") is None


# --- redaction ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("x-amz-security-token:IQoJb3JpZ2luX2VjEJr//////////wEaCXVz+abc=", "x-amz-security-token:****"),
        (
            "a?X-Amz-Security-Token=IQoJb3Jp%2Fabc&X-Amz-Signature=0123456789abcdef0123",
            "a?X-Amz-Security-Token=****&X-Amz-Signature=****",
        ),
        ("Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7", "Signature=****"),
        ("<SignatureProvided>abc</SignatureProvided>", "<SignatureProvided>****</SignatureProvided>"),
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.abc", "Authorization: Bearer ****"),
        ("key AKIAIOSFODNN7EXAMPLE and ASIAQWERTYUIOPASDFGH", "key AKIA****MPLE and ASIA****DFGH"),
        (
            "Credential=AKIAIOSFODNN7EXAMPLE/20240101/us-east-1/s3/aws4_request",
            "Credential=AKIA****MPLE/20240101/us-east-1/s3/aws4_request",
        ),
        ("nothing secret here", "nothing secret here"),
    ],
)
def test_redact(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_no_secret_survives_into_the_message_or_details() -> None:
    token = "IQoJb3JpZ2luX2VjEJrSECRETTOKENVALUE"
    signature = "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
    body = json.dumps(
        {
            "message": f"Authorization header requires 'SignedHeaders' parameter. Authorization=AWS4-HMAC-SHA256 "
            f"Credential=AKIAIOSFODNN7EXAMPLE/20240101/us-east-1/execute-api/aws4_request, Signature={signature}"
            f"\n\nx-amz-security-token:{token}\nX-Amz-Security-Token={token}"
        }
    ).encode()
    diagnosis = diagnose_response(403, [("x-amzn-ErrorType", "IncompleteSignatureException")], body, context=APIGW)
    everything = json.dumps(diagnosis.to_dict())
    for secret in (token, signature, "AKIAIOSFODNN7EXAMPLE"):
        assert secret not in everything


def test_diagnosis_is_a_frozen_value() -> None:
    diagnosis = Diagnosis(403, None, None, None, d.CLIENT_ERROR, False)
    with pytest.raises(AttributeError):
        diagnosis.kind = "x"  # type: ignore[misc]
    assert diagnosis.message() == "HTTP 403"


def test_loopback_target_has_no_host_inference() -> None:
    diagnosis = diagnose_response(*apigw("InvalidSignatureException", MISMATCH), context=LOCAL)
    assert diagnosis.hint is not None
    assert diagnosis.hint == (
        "host 127.0.0.1 does not tell its service and region: check that 'execute-api' and 'us-east-1' are the "
        "endpoint's; otherwise the secret key does not belong to access key (check AWS_SECRET_ACCESS_KEY or the "
        "profile's credentials; `aws sts get-caller-identity` tests them), or something between us and the "
        "server changed the request (path, host or headers)"
    )
