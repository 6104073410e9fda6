"""Read and write HTTP/1.1 requests as text (the AWS signing test suite's `request.txt` format).

Used by `sigv4-proxy sign --raw-request` and by the tests. Header values keep their original text after the
colon (continuation lines included, joined with a line break) so a request can be written back byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sigv4_proxy.errors import SigningError


@dataclass
class RawRequest:
    method: str
    target: str  # path and query as on the request line
    version: str = "HTTP/1.1"
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value.strip()
        return None

    def url(self, scheme: str = "https") -> str:
        host = self.header("host")
        if not host:
            raise SigningError("the raw request has no Host header, so its URL is unknown")
        return f"{scheme}://{host}{self.target}"

    def render(self, target: str | None = None, extra_headers: list[tuple[str, str]] | None = None) -> bytes:
        lines = [f"{self.method} {target if target is not None else self.target} {self.version}"]
        lines += [f"{name}:{value}" for name, value in [*self.headers, *(extra_headers or [])]]
        return ("\n".join(lines) + "\n\n").encode("utf-8") + self.body


def parse_raw_request(data: bytes | str) -> RawRequest:
    """Parse `METHOD TARGET VERSION`, `Name:value` lines (indented lines continue the previous value), a blank
    line and the body. The target may contain spaces (the suite has `GET /example space/ HTTP/1.1`)."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    raw = raw.replace(b"\r\n", b"\n")
    head, sep, body = raw.partition(b"\n\n")
    lines = head.decode("utf-8").split("\n")
    request_line = lines[0]
    method, _, rest = request_line.partition(" ")
    target, _, version = rest.rpartition(" ")
    if not method or not target or not version.startswith("HTTP/"):
        raise SigningError(f"not an HTTP request line: {request_line!r} (expected 'METHOD /path HTTP/1.1')")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and headers:
            name, value = headers[-1]
            headers[-1] = (name, f"{value}\n{line}")
            continue
        if not line:
            continue
        name, colon, value = line.partition(":")
        if not colon or not name.strip():
            raise SigningError(f"not an HTTP header line: {line!r} (expected 'Name: value')")
        headers.append((name, value))
    return RawRequest(method, target, version, headers, body if sep else b"")
