"""SigV4Auth on real httpx clients, checked by the core's verify() on the receiving side (a verifier, not a
mock that accepts anything): sync and async, bodies, queries, v4 and v4a, an injected clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta, timezone

import h11
import httpx
import pytest

from sigv4_proxy import Credentials, SigV4Auth, verify
from sigv4_proxy.credentials import StaticCredentialProvider

CREDS = Credentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "token/with+chars=")


def verifying_transport(
    region: str = "us-east-1", service: str = "execute-api", now: datetime | None = None
) -> httpx.MockTransport:
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


class VerifyingServer:
    """A loopback HTTP/1.1 server (h11: chunked bodies decoded) that answers each request with verify()'s verdict:
    200 "ok", or AWS's 403. What the client put on the wire is what is checked."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self._server: asyncio.base_events.Server | None = None

    async def __aenter__(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = h11.Connection(h11.SERVER)
        head: h11.Request | None = None
        body = bytearray()
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA:
                connection.receive_data(await reader.read(65536))
            elif isinstance(event, h11.Request):
                head = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
            else:
                writer.close()
                return
        assert head is not None
        self.bodies.append(bytes(body))
        headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in head.headers]
        result = verify(
            head.method.decode(),
            head.target.decode(),
            headers,
            bytes(body),
            credentials_for=lambda key: CREDS if key == CREDS.access_key_id else None,
            now=datetime.now(timezone.utc),
            region="us-east-1",
            service="execute-api",
        )
        status, extra, answer = result.to_response() if not result.ok else (200, [], b"ok")
        response_headers = [*extra, ("content-length", str(len(answer))), ("connection", "close")]
        writer.write(connection.send(h11.Response(status_code=status, headers=response_headers)))
        writer.write(connection.send(h11.Data(data=answer)))
        writer.write(connection.send(h11.EndOfMessage()))
        await writer.drain()
        writer.close()


BODY_PARTS = [b'{"jsonrpc":"2.0","id":1,', b'"method":"tools/list"}']


@pytest.mark.parametrize("algorithm", ["v4", "v4a"])
async def test_async_client_signs_an_async_generator_body(algorithm: str) -> None:
    """A streaming body is read before signing (the signature covers its hash); httpx.RequestNotRead before."""

    async def parts() -> AsyncIterator[bytes]:
        for part in BODY_PARTS:
            yield part

    auth = SigV4Auth(StaticCredentialProvider(CREDS), "us-east-1", "execute-api", algorithm=algorithm)
    server = VerifyingServer()
    async with server as url, httpx.AsyncClient(auth=auth, trust_env=False) as client:
        response = await client.post(f"{url}/mcp", content=parts(), headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    assert server.bodies == [b"".join(BODY_PARTS)]


async def test_sync_client_signs_a_generator_body() -> None:
    """The same flow serves the sync client (httpx reads the body for it)."""

    def parts() -> Iterator[bytes]:
        yield from BODY_PARTS

    auth = SigV4Auth(CREDS, "us-east-1", "execute-api")
    server = VerifyingServer()
    async with server as url:

        def post() -> httpx.Response:
            with httpx.Client(auth=auth, trust_env=False) as client:
                return client.post(f"{url}/mcp", content=parts(), headers={"Content-Type": "application/json"})

        response = await asyncio.to_thread(post)
    assert response.status_code == 200, response.text
    assert server.bodies == [b"".join(BODY_PARTS)]
