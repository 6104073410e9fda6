"""Plain data passed into and out of the signing core."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property

V4 = "AWS4-HMAC-SHA256"
V4A = "AWS4-ECDSA-P256-SHA256"
ALGORITHMS = {"v4": V4, "v4a": V4A}

EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
MAX_PRESIGN_EXPIRES = 604800


def mask_key(access_key_id: str) -> str:
    """`AKIAIOSFODNN7EXAMPLE` -> `AKIA****MPLE`: enough to tell keys apart, never enough to use one."""
    if len(access_key_id) <= 8:
        return "****"
    return f"{access_key_id[:4]}****{access_key_id[-4:]}"


@dataclass(frozen=True)
class Credentials:
    """AWS credentials. `repr` never shows the secret or the token."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)
    expiry: datetime | None = None

    @property
    def masked_access_key(self) -> str:
        return mask_key(self.access_key_id)

    @cached_property
    def secret_fingerprint(self) -> bytes:
        """What the signing-key caches check a cached key against (they never keep the secret itself). Computed
        once per object: signing the same credentials again pays a dictionary lookup, not a hash."""
        from sigv4_proxy.signing.keycache import fingerprint

        return fingerprint(self.secret_access_key)

    @cached_property
    def encoded_session_token(self) -> str:
        """The session token percent-encoded for a query string (presigning). Kept here, with the token it
        encodes, rather than in a process-wide cache that would outlive the credentials."""
        from sigv4_proxy.signing.canonical import encode_text

        return encode_text(self.session_token or "")

    def __getstate__(self) -> dict[str, object]:
        # The fingerprint is keyed per process: a copy in another process computes its own.
        return {name: value for name, value in self.__dict__.items() if name != "secret_fingerprint"}

    def __repr__(self) -> str:
        token = ", session_token=****" if self.session_token else ""
        return f"Credentials(access_key_id={self.masked_access_key!r}{token}, expiry={self.expiry!r})"


@dataclass(slots=True)
class SignedRequest:
    """The result of :func:`sigv4_proxy.sign`.

    `headers` is the complete header list to send: the caller's headers in their order, then the ones
    signing added (`X-Amz-Security-Token`, `X-Amz-Date`, `X-Amz-Region-Set`, `x-amz-content-sha256`,
    `Authorization`). `added_headers` holds only the added ones.
    """

    method: str
    url: str
    headers: list[tuple[str, str]]
    added_headers: dict[str, str]
    body: bytes
    canonical_request: str
    string_to_sign: str
    signature: str
    authorization: str
    algorithm: str
    credential_scope: str
    signed_headers: str
    amz_date: str


@dataclass(slots=True)
class PresignedURL:
    """The result of :func:`sigv4_proxy.presign`: `url` carries the signature in its query string."""

    method: str
    url: str
    headers: list[tuple[str, str]]
    canonical_request: str
    string_to_sign: str
    signature: str
    algorithm: str
    credential_scope: str
    signed_headers: str
    amz_date: str
    expires_in: int
