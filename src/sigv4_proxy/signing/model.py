"""Plain data passed into and out of the signing core."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property

from sigv4_proxy.errors import SigningError
from sigv4_proxy.redact import mask_access_key

# The algorithms' names (Authorization header, X-Amz-Algorithm); what else differs between them lives in
# `signing.algorithm` (the `Algorithm` strategy objects `V4` and `V4A`, which carry these names).
V4 = "AWS4-HMAC-SHA256"
V4A = "AWS4-ECDSA-P256-SHA256"

EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
MAX_PRESIGN_EXPIRES = 604800


def check_expires_in(expires_in: object) -> int:
    """`expires_in` if it is a whole number of seconds AWS accepts for a presigned request (1 s to 7 days), else
    SigningError: the one check behind `presign()` and the DSQL/RDS token functions."""
    if isinstance(expires_in, bool) or not isinstance(expires_in, int):
        raise SigningError(f"expires_in must be a whole number of seconds, got: {expires_in!r}")
    if not 1 <= expires_in <= MAX_PRESIGN_EXPIRES:
        raise SigningError(
            f"expires_in must be between 1 and {MAX_PRESIGN_EXPIRES} seconds (7 days), got: {expires_in}"
        )
    return expires_in


@dataclass(frozen=True)
class Credentials:
    """AWS credentials. `repr` never shows the secret or the token."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)
    expiry: datetime | None = None

    @property
    def masked_access_key(self) -> str:
        return mask_access_key(self.access_key_id)

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

    @cached_property
    def canonical_session_token(self) -> str:
        """The session token as a canonical request's header line has it (header signing)."""
        from sigv4_proxy.signing.canonical import canonical_header_value

        return canonical_header_value(self.session_token or "")

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
