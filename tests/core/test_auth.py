"""SigV4Auth on real httpx clients, checked by the core's verify() on the receiving side (a verifier, not a
mock that accepts anything): sync and async, bodies, queries, v4 and v4a, an injected clock."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import httpx
import pytest

from sigv4_proxy import Credentials, SigV4Auth, verify
from sigv4_proxy.credentials import StaticCredentialProvider

CREDS = Credentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "token/with+chars=")


def verifying_transport(region: str = "us-east-1", service: str = "execute-api", now=None) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        result = verify(
            request.method,
            request.url.raw_path.decode("ascii"),
            list(request.headers.multi_items()),
            request.content,
            credentials_for=lambda key: CREDS if key == CREDS.access_key_id else None,
            now=now or datetime.now(timezone.utc),
            region=region,
            service=service,
        )
        status, headers, body = result.to_response() if not result.ok else (200, [], b"ok")
        return httpx.Response(status, headers=headers, content=body)

    return httpx.MockTransport(handler)


URLS = [
    "https://abc123.execute-api.us-east-1.amazonaws.com/prod/mcp",
    "https://abc123.execute-api.us-east-1.amazonaws.com/prod/a%20b/ሴ?x=1&y=a b&y=%2F&empty=&plus=1+2",
    "http://127.0.0.1:8080/mcp/",
]


@pytest.mark.parametrize("url", URLS)
@pytest.mark.parametrize("algorithm", ["v4", "v4a"])
def test_sync_client_requests_verify(url: str, algorithm: str) -> None:
    auth = SigV4Auth(CREDS, "us-east-1", "execute-api", algorithm=algorithm)
    with httpx.Client(transport=verifying_transport(), auth=auth) as client:
        response = client.post(
            url,
            content=b'{"jsonrpc":"2.0","id":1,"method":"ping"}',
            headers={"Content-Type": "application/json", "Mcp-Session-Id": "abc"},
        )
    assert response.status_code == 200, response.text
    signed = set(response.request.extensions["sigv4"].signed_headers.split(";"))
    assert {"accept", "content-type", "host", "mcp-session-id", "x-amz-date", "x-amz-security-token"} <= signed
    assert not signed & {"user-agent", "accept-encoding", "connection", "content-length"}


@pytest.mark.parametrize("algorithm", ["v4", "v4a"])
async def test_async_client_requests_verify(algorithm: str) -> None:
    auth = SigV4Auth(StaticCredentialProvider(CREDS), "us-east-1", "execute-api", algorithm=algorithm)
    async with httpx.AsyncClient(transport=verifying_transport(), auth=auth) as client:
        response = await client.get(URLS[1])
    assert response.status_code == 200, response.text


def test_wrong_service_is_rejected_with_the_aws_message() -> None:
    auth = SigV4Auth(CREDS, "us-east-1", "lambda")
    with httpx.Client(transport=verifying_transport(), auth=auth) as client:
        response = client.get(URLS[0])
    assert response.status_code == 403
    assert response.headers["x-amzn-ErrorType"] == "InvalidSignatureException"
    assert response.json() == {"message": "Credential should be scoped to correct service: 'execute-api'. "}


def test_injected_clock_is_used_for_signing() -> None:
    server_now = datetime(2030, 1, 1, 12, 0, tzinfo=timezone.utc)
    skewed = SigV4Auth(CREDS, "us-east-1", "execute-api", clock=lambda: server_now + timedelta(seconds=30))
    with httpx.Client(transport=verifying_transport(now=server_now), auth=skewed) as client:
        assert client.get(URLS[0]).status_code == 200
    unskewed = SigV4Auth(CREDS, "us-east-1", "execute-api")
    with httpx.Client(transport=verifying_transport(now=server_now), auth=unskewed) as client:
        response = client.get(URLS[0])
    assert response.status_code == 403
    assert response.json()["message"].startswith("Signature expired: ")
