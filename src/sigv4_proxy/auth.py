"""`SigV4Auth`: an `httpx.Auth` that signs every request with SigV4 or SigV4a.

    import httpx
    from sigv4_proxy import SigV4Auth, CredentialProvider

    auth = SigV4Auth(CredentialProvider(), "us-east-1", "execute-api")
    httpx.post("https://abc123.execute-api.us-east-1.amazonaws.com/mcp", json={...}, auth=auth)

One generator (:meth:`SigV4Auth._flow`) serves sync and async clients, as httpx's own ``Auth`` does; the async
flow reads a streaming body first (the signature covers its SHA-256) and looks credentials up without blocking
the event loop. The signed request (canonical request, string to sign) is left in
`request.extensions["sigv4"]` for debugging tools; it holds no secret beyond what is already in the headers.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Collection, Generator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

import httpx

from sigv4_proxy.credentials import StaticCredentialProvider
from sigv4_proxy.signing.api import sign
from sigv4_proxy.signing.model import Credentials, SignedRequest

if TYPE_CHECKING:
    from sigv4_proxy.credentials import CredentialSource

# Not signed: hop-by-hop headers that intermediaries rewrite, plus the ones botocore leaves out.
DEFAULT_UNSIGNED_HEADERS = frozenset(
    {
        "authorization",
        "user-agent",
        "expect",
        "x-amzn-trace-id",
        "connection",
        "keep-alive",
        "proxy-authorization",
        "proxy-authenticate",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "accept-encoding",
        "content-length",
    }
)


class SigV4Auth(httpx.Auth):
    requires_request_body = True

    def __init__(
        self,
        credentials: Credentials | CredentialSource,
        region: str | Sequence[str],
        service: str,
        *,
        algorithm: str = "v4",
        clock: Callable[[], datetime] | None = None,
        unsigned_payload: bool = False,
        unsigned_headers: Collection[str] = DEFAULT_UNSIGNED_HEADERS,
    ) -> None:
        """`credentials` is a :class:`Credentials` or a provider (``.get()``, e.g. :class:`CredentialProvider`).
        `clock` returns the signing time (clock-skew correction plugs in here); default: the system clock."""
        self.provider: CredentialSource = (
            StaticCredentialProvider(credentials) if isinstance(credentials, Credentials) else credentials
        )
        self.region = region
        self.service = service
        self.algorithm = algorithm
        self.clock = clock
        self.unsigned_payload = unsigned_payload
        self.unsigned_headers = frozenset(h.lower() for h in unsigned_headers)

    def sign_request(self, request: httpx.Request, credentials: Credentials) -> SignedRequest:
        url = request.url
        target = url.raw_path.decode("ascii")
        headers = [(k, v) for k, v in request.headers.multi_items() if k.lower() not in self.unsigned_headers]
        signed = sign(
            request.method,
            f"{url.scheme}://{url.netloc.decode('ascii')}{target}",
            headers,
            request.content,
            credentials=credentials,
            region=self.region,
            service=self.service,
            algorithm=self.algorithm,
            now=self.clock() if self.clock else None,
            unsigned_payload=self.unsigned_payload,
        )
        for name, value in signed.added_headers.items():
            request.headers[name] = value
        request.extensions = {**request.extensions, "sigv4": signed}
        return signed

    def _flow(self, request: httpx.Request, credentials: Credentials) -> Generator[httpx.Request, httpx.Response, None]:
        """The one flow both clients run: sign, send."""
        self.sign_request(request, credentials)
        yield request

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        # httpx's sync_auth_flow reads the body first (requires_request_body), then runs this.
        return self._flow(request, self.provider.get())

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """httpx's default with the credentials looked up off the event loop when they need a refresh."""
        await request.aread()  # a streaming body (an async generator): the signature covers its hash
        credentials = self.provider.cached()
        if credentials is None:  # a refresh may do network I/O (SSO, STS, IMDS): keep it off the event loop
            import anyio.to_thread

            credentials = await anyio.to_thread.run_sync(self.provider.get)
        flow = self._flow(request, credentials)
        request = next(flow)
        while True:
            response = yield request
            try:
                request = flow.send(response)
            except StopIteration:
                return
