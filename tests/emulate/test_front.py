"""The verifying front: correctly signed requests pass (core signer and botocore), every AWS error shape comes
back exactly as API Gateway shapes it, the log never carries a secret."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime

import httpx
import pytest

from sigv4_proxy import Credentials, presign, sign
from sigv4_proxy.emulate import McpEmulator, generate_credentials, start_mcp
from sigv4_proxy.signing.verify import SIGNATURE_MISMATCH
from tests.support.emulators import EmulatorVariant

from .helpers import initialize_body, post_signed, signed_headers_botocore, signed_headers_core


def assert_aws_error(response: httpx.Response, error_type: str, message: str | None = None) -> str:
    assert response.status_code == 403, response.text
    assert response.headers["x-amzn-ErrorType"] == error_type
    assert response.headers["content-type"] == "application/json"
    text = response.json()["message"]
    if message is not None:
        assert text == message
    return text


def test_core_signed_initialize_reaches_the_mcp_server(emulator: McpEmulator) -> None:
    response = post_signed(emulator, initialize_body())
    assert response.status_code == 200, response.text
    assert "mcp-session-id" in response.headers
    assert '"serverInfo"' in response.text
    [record] = emulator.requests
    assert (record.method, record.path, record.status, record.verdict, record.rpc) == (
        "POST",
        "/mcp",
        200,
        "ok",
        "initialize",
    )


def test_botocore_signed_request_is_accepted(emulator: McpEmulator) -> None:
    body = initialize_body()
    headers = signed_headers_botocore("POST", emulator.url, body, emulator.credentials, "us-east-1", "execute-api")
    response = httpx.post(emulator.url, content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert emulator.requests[0].ok


def test_session_credentials_are_accepted_and_their_token_is_checked(emulator: McpEmulator) -> None:
    creds = generate_credentials(session_token=True)
    assert creds.access_key_id.startswith("ASIA") and creds.session_token
    emulator.accept_only(creds)
    body = initialize_body()
    headers = signed_headers_botocore("POST", emulator.url, body, creds, "us-east-1", "execute-api")
    assert httpx.post(emulator.url, content=body, headers=headers).status_code == 200
    wrong_token = Credentials(creds.access_key_id, creds.secret_access_key, "not-the-token")
    response = post_signed(emulator, body, credentials=wrong_token)
    assert_aws_error(response, "UnrecognizedClientException", "The security token included in the request is invalid.")


@pytest.mark.parametrize("algorithm", ["v4", "v4a"])
def test_sigv4a_and_v4_signatures_verify(emulator: McpEmulator, algorithm: str) -> None:
    body = initialize_body()
    headers = signed_headers_core(
        "POST", emulator.url, body, emulator.credentials, "us-east-1", "execute-api", algorithm=algorithm
    )
    assert httpx.post(emulator.url, content=body, headers=headers).status_code == 200


def test_presigned_url_is_verified(emulator: McpEmulator) -> None:
    url = presign("GET", emulator.url, credentials=emulator.credentials, region="us-east-1", service="execute-api").url
    response = httpx.get(url, headers={"accept": "text/event-stream"})
    # verified and forwarded: the MCP server itself refuses a GET without a session
    assert response.status_code == 400, response.text
    assert emulator.requests[0].ok
    tampered = url.replace("X-Amz-Expires=900", "X-Amz-Expires=901")
    assert_aws_error(httpx.get(tampered), "InvalidSignatureException")


def test_no_authentication(emulator: McpEmulator) -> None:
    response = httpx.post(emulator.url, content=initialize_body())
    assert_aws_error(response, "MissingAuthenticationTokenException", "Missing Authentication Token")
    [record] = emulator.requests
    assert (record.status, record.verdict, record.reason, record.scope) == (
        403,
        "MissingAuthenticationTokenException",
        "missing",
        "-",
    )


def test_incomplete_authorization_header(emulator: McpEmulator) -> None:
    headers = {"Authorization": "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20250101/us-east-1/x/aws4_request"}
    response = httpx.post(emulator.url, content=b"{}", headers=headers)
    assert_aws_error(
        response,
        "IncompleteSignatureException",
        "Authorization header requires 'Signature' parameter. Authorization header requires 'SignedHeaders' "
        "parameter. Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
    )


def test_wrong_signature_shows_the_expected_canonical_request(emulator: McpEmulator) -> None:
    wrong = Credentials(emulator.credentials.access_key_id, "not-the-secret")
    response = post_signed(emulator, initialize_body(), credentials=wrong)
    message = assert_aws_error(response, "InvalidSignatureException")
    assert message.startswith(SIGNATURE_MISMATCH)
    assert "\n\nThe Canonical String for this request should have been\n'POST\n/mcp\n" in message
    assert "The String-to-Sign should have been\n'AWS4-HMAC-SHA256\n" in message
    assert emulator.requests[0].reason == "signature"


def test_expired_date(emulator: McpEmulator) -> None:
    signed_at = datetime.now(timezone.utc) - timedelta(minutes=10)
    response = post_signed(emulator, initialize_body(), now=signed_at)
    message = assert_aws_error(response, "InvalidSignatureException")
    assert message.startswith(f"Signature expired: {signed_at.strftime('%Y%m%dT%H%M%SZ')} is now earlier than ")
    assert message.endswith(" - 5 min.)")


def test_wrong_region(emulator: McpEmulator) -> None:
    response = post_signed(emulator, initialize_body(), region="eu-west-1")
    assert_aws_error(
        response, "InvalidSignatureException", "Credential should be scoped to a valid region, not 'eu-west-1'. "
    )


def test_wrong_service(emulator: McpEmulator) -> None:
    response = post_signed(emulator, initialize_body(), service="lambda")
    assert_aws_error(
        response, "InvalidSignatureException", "Credential should be scoped to correct service: 'execute-api'. "
    )
    assert emulator.requests[0].scope.endswith("/us-east-1/lambda/aws4_request")


def test_unknown_access_key(emulator: McpEmulator) -> None:
    response = post_signed(emulator, initialize_body(), credentials=generate_credentials())
    assert_aws_error(response, "UnrecognizedClientException", "The security token included in the request is invalid.")


def test_expired_credentials_get_expired_token(emulator: McpEmulator) -> None:
    assert post_signed(emulator, initialize_body()).status_code == 200
    emulator.expire_credentials()
    response = post_signed(emulator, initialize_body())
    assert_aws_error(response, "ExpiredTokenException", "The security token included in the request is expired")
    assert emulator.requests[-1].reason == "expired_token"


def test_expiring_session_credentials(emulator: McpEmulator) -> None:
    creds = emulator.rotate_credentials(session_token=True, expires_in=3600)
    assert post_signed(emulator, initialize_body(), credentials=creds).status_code == 200
    emulator.expire_credentials(creds.access_key_id)
    response = post_signed(emulator, initialize_body(), credentials=creds)
    assert_aws_error(response, "ExpiredTokenException", "The security token included in the request is expired")


def test_every_response_has_date_from_the_emulator_clock_and_a_request_id(emulator: McpEmulator) -> None:
    emulator.clock_offset = 3600
    response = httpx.post(emulator.url, content=b"{}")
    server_date = parsedate_to_datetime(response.headers["date"])
    skew = server_date - datetime.now(timezone.utc)
    assert timedelta(minutes=59) < skew < timedelta(minutes=61)
    assert len(response.headers["x-amzn-RequestId"]) == 36
    assert response.headers.get_list("date") == [response.headers["date"]]


def test_clock_offset_is_used_for_verification(emulator: McpEmulator) -> None:
    emulator.clock_offset = -600  # the emulator is 10 minutes behind: our requests look from the future
    response = post_signed(emulator, initialize_body())
    message = assert_aws_error(response, "InvalidSignatureException")
    assert message.startswith("Signature not yet current: ")
    assert post_signed(emulator, initialize_body(), now=emulator.now()).status_code == 200


def test_unsigned_headers_can_change_but_signed_ones_cannot(emulator: McpEmulator) -> None:
    body = initialize_body()
    headers = signed_headers_core("POST", emulator.url, body, emulator.credentials, "us-east-1", "execute-api")
    assert httpx.post(emulator.url, content=body, headers={**headers, "user-agent": "changed"}).status_code == 200
    response = httpx.post(emulator.url, content=body, headers={**headers, "content-type": "text/plain"})
    assert_aws_error(response, "InvalidSignatureException")


def test_tampered_body_fails(emulator: McpEmulator) -> None:
    body = initialize_body()
    headers = signed_headers_core("POST", emulator.url, body, emulator.credentials, "us-east-1", "execute-api")
    response = httpx.post(emulator.url, content=body.replace(b'"id":1', b'"id":2'), headers=headers)
    assert_aws_error(response, "InvalidSignatureException")


def test_body_over_the_limit_is_refused_before_verification(emulator_variant: EmulatorVariant) -> None:
    emulator = emulator_variant(max_body_bytes=1000)
    response = post_signed(emulator, b"x" * 1001)
    assert response.status_code == 413
    assert response.json() == {"message": "Request body is larger than 1000 bytes"}


def test_log_lines_never_carry_secrets() -> None:
    creds = generate_credentials(session_token=True)
    lines: list[str] = []
    # an emulator of its own: the log lines are taken from start-up on (``on_record``), which no shared one offers
    with start_mcp(credentials=creds, on_record=lambda record: lines.append(record.line())) as emulator:
        post_signed(emulator, initialize_body(), credentials=creds)
        post_signed(emulator, initialize_body(), credentials=Credentials(creds.access_key_id, "bad", "bad-token"))
        url = presign("GET", emulator.url, credentials=creds, region="us-east-1", service="execute-api").url
        httpx.get(url)
        emulator.wait_for_requests(3)
    text = "\n".join(lines)
    signature = sign(
        "POST", emulator.url, {}, b"", credentials=creds, region="us-east-1", service="execute-api"
    ).signature
    assert creds.secret_access_key not in text
    assert creds.session_token is not None and creds.session_token not in text
    assert creds.access_key_id not in text
    assert "X-Amz-Signature" not in text and signature not in text
    assert text.count(f"{creds.masked_access_key}/") == 3


def test_error_body_is_valid_json_with_only_a_message(emulator: McpEmulator) -> None:
    response = post_signed(emulator, initialize_body(), service="lambda")
    assert set(json.loads(response.content)) == {"message"}
