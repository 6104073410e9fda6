"""A local STS endpoint for the doctor tests: GetCallerIdentity, verified with the core's verify().

Not a mock that accepts anything: every request's SigV4 signature is checked the way AWS checks it, and
failures answer in STS's XML error shape (SignatureDoesNotMatch, InvalidClientTokenId, ExpiredToken).
"""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from sigv4_proxy import verify
from sigv4_proxy.signing.model import Credentials

ARN = "arn:aws:iam::123456789012:user/doctor-test"
_STS_CODES = {
    "InvalidSignatureException": "SignatureDoesNotMatch",
    "UnrecognizedClientException": "InvalidClientTokenId",
    "ExpiredTokenException": "ExpiredToken",
    "IncompleteSignatureException": "IncompleteSignature",
    "MissingAuthenticationTokenException": "MissingAuthenticationToken",
}


class LocalSts:
    def __init__(self, credentials: Credentials, region: str | None = None) -> None:
        """`region`: the region this endpoint is in (None: any, like a test stand-in for every regional STS)."""
        self.credentials, self.region = credentials, region
        self.calls = 0
        sts = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                sts.calls += 1
                result = verify(
                    "POST",
                    self.path,
                    list(self.headers.items()),
                    body,
                    credentials_for=lambda key: sts.credentials if key == sts.credentials.access_key_id else None,
                    now=datetime.now(timezone.utc),
                    region=sts.region,
                    service="sts",
                )
                if result.ok and b"Action=GetCallerIdentity" in body:
                    self._send(
                        200,
                        f"<GetCallerIdentityResponse><GetCallerIdentityResult><Arn>{ARN}</Arn>"
                        "<UserId>AIDAEXAMPLE</UserId><Account>123456789012</Account>"
                        "</GetCallerIdentityResult></GetCallerIdentityResponse>",
                    )
                    return
                code = _STS_CODES.get(result.error_type or "", result.error_type or "InvalidAction")
                message = result.message.split("\n")[0] if not result.ok else "Could not find operation"
                self._send(
                    result.status if not result.ok else 400,
                    f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}"
                    "</Message></Error></ErrorResponse>",
                )

            def _send(self, status: int, text: str) -> None:
                data = text.encode()
                self.send_response(status)
                self.send_header("content-type", "text/xml")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> LocalSts:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
