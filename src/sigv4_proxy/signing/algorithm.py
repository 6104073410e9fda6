"""The signing algorithm as a strategy: everything that differs between SigV4 and SigV4a, in one place.

Modelled on aws-c-auth's signing config (`AWS_SIGNING_ALGORITHM_V4` / `_V4_ASYMMETRIC`) and the Go proxy's
`Signer` interface: the canonical request is the same for both; they differ in the algorithm's name, the shape
of the credential scope (SigV4a has no region in it and names its regions in `X-Amz-Region-Set` instead), how a
string to sign is signed (HMAC-SHA256 with a per-day key; ECDSA P-256 with one key per access key) and so how a
signature is verified. Callers ask the two instances, :data:`V4` and :data:`V4A`, instead of comparing names.

Sans-IO and cheap to import: `cryptography` is imported by `v4a` only when a SigV4a key is first needed.
"""

from __future__ import annotations

import hmac
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from sigv4_proxy.errors import SigningError
from sigv4_proxy.signing import model, v4, v4a

if TYPE_CHECKING:  # pragma: no cover
    from sigv4_proxy.signing.model import Credentials

SigVersion = Literal["v4", "v4a"]
# A credential scope as a request claims it: (access key id, date, region or None for SigV4a, service).
CredentialFields = tuple[str, str, str | None, str]

_TERMINATOR = "aws4_request"


class Algorithm(ABC):
    """One signing algorithm. Two instances exist, :data:`V4` and :data:`V4A`; compare them with `is`."""

    name: str  # the `AWS4-...` value of the Authorization header and of X-Amz-Algorithm
    version: SigVersion  # what --sig-version and `sign(algorithm=...)` call it
    label: str  # what people call it: SigV4, SigV4a
    uses_region_set: bool  # regions travel in X-Amz-Region-Set rather than in the credential scope
    credential_shape: str  # the credential's elements, as AWS's error message spells them

    @property
    def credential_elements(self) -> int:
        return self.credential_shape.count("/") + 1

    def __repr__(self) -> str:
        return f"<Algorithm {self.version} {self.name}>"

    # --- scope --------------------------------------------------------------------------------------------

    @abstractmethod
    def scope_regions(self, regions: Sequence[str]) -> tuple[str | None, str | None]:
        """(the region of the credential scope, the X-Amz-Region-Set value) for the regions to sign for."""

    @abstractmethod
    def credential_scope(self, date: str, region: str | None, service: str) -> str:
        """`date/[region/]service/aws4_request`; `region` is the one :meth:`scope_regions` returned."""

    @abstractmethod
    def credential_fields(self, elements: Sequence[str]) -> CredentialFields | None:
        """A received credential split at `/` -> its fields; None when it has the wrong number of elements
        (the terminator is the caller's to check)."""

    @abstractmethod
    def covers(self, claimed: str | list[str] | None, region: str) -> bool:
        """Whether a request's claimed region (SigV4: the scope's region; SigV4a: the region set) covers `region`."""

    # --- signature ----------------------------------------------------------------------------------------

    def string_to_sign(self, amz_date: str, credential_scope: str, canonical_request: str) -> str:
        return v4.string_to_sign(self.name, amz_date, credential_scope, canonical_request)

    @abstractmethod
    def sign(self, credentials: Credentials, amz_date: str, region: str | None, service: str, text: str) -> str:
        """The signature of a string to sign (hex)."""

    @abstractmethod
    def verify(
        self, credentials: Credentials, amz_date: str, region: str | None, service: str, text: str, signature: str
    ) -> bool:
        """Whether `signature` (as received) signs `text` with these credentials."""


class _SigV4(Algorithm):
    name = model.V4
    version: SigVersion = "v4"
    label = "SigV4"
    uses_region_set = False
    credential_shape = "keyid/date/region/service/term"

    def scope_regions(self, regions: Sequence[str]) -> tuple[str | None, str | None]:
        if len(regions) != 1:
            raise SigningError("SigV4 signs for exactly one region; use --sig-version v4a for a region set")
        return regions[0], None

    def credential_scope(self, date: str, region: str | None, service: str) -> str:
        return f"{date}/{region}/{service}/{_TERMINATOR}"

    def credential_fields(self, elements: Sequence[str]) -> CredentialFields | None:
        if len(elements) != self.credential_elements:
            return None
        key, date, region, service, _ = elements
        return key, date, region, service

    def covers(self, claimed: str | list[str] | None, region: str) -> bool:
        return claimed == region

    def sign(self, credentials: Credentials, amz_date: str, region: str | None, service: str, text: str) -> str:
        return v4.sign_with(credentials, amz_date, region or "", service, text)

    def verify(
        self, credentials: Credentials, amz_date: str, region: str | None, service: str, text: str, signature: str
    ) -> bool:
        expected = self.sign(credentials, amz_date, region, service, text)
        return same_text(expected, signature.lower())


class _SigV4a(Algorithm):
    name = model.V4A
    version: SigVersion = "v4a"
    label = "SigV4a"
    uses_region_set = True
    credential_shape = "keyid/date/service/term"

    def scope_regions(self, regions: Sequence[str]) -> tuple[str | None, str | None]:
        return None, ",".join(regions)

    def credential_scope(self, date: str, region: str | None, service: str) -> str:
        return f"{date}/{service}/{_TERMINATOR}"

    def credential_fields(self, elements: Sequence[str]) -> CredentialFields | None:
        if len(elements) != self.credential_elements:
            return None
        key, date, service, _ = elements
        return key, date, None, service

    def covers(self, claimed: str | list[str] | None, region: str) -> bool:
        return isinstance(claimed, list) and region_matches(claimed, region)

    def sign(self, credentials: Credentials, amz_date: str, region: str | None, service: str, text: str) -> str:
        return v4a.sign_string(credentials.access_key_id, credentials.secret_access_key, text)

    def verify(
        self, credentials: Credentials, amz_date: str, region: str | None, service: str, text: str, signature: str
    ) -> bool:
        key = v4a.private_key(credentials.access_key_id, credentials.secret_access_key).public_key()
        return v4a.verify_signature(key, text, signature)


V4: Algorithm = _SigV4()
V4A: Algorithm = _SigV4a()
ALGORITHMS: tuple[Algorithm, ...] = (V4, V4A)
_BY_VERSION: dict[str, Algorithm] = {algorithm.version: algorithm for algorithm in ALGORITHMS}
_BY_NAME: dict[str, Algorithm] = {algorithm.name: algorithm for algorithm in ALGORITHMS}


def algorithm_for(version: str) -> Algorithm:
    """`v4` / `v4a` -> the algorithm; SigningError for anything else."""
    found = _BY_VERSION.get(version)
    if found is None:
        raise SigningError(f"signature version must be 'v4' or 'v4a', got: {version}")
    return found


def algorithm_named(header_value: str | None) -> Algorithm | None:
    """`AWS4-HMAC-SHA256` / `AWS4-ECDSA-P256-SHA256` (an Authorization header's or X-Amz-Algorithm's value) ->
    the algorithm; None when it is neither."""
    return _BY_NAME.get(header_value) if header_value is not None else None


def region_matches(region_set: Sequence[str], region: str) -> bool:
    """SigV4a region sets may hold `*` or prefix wildcards such as `us-*`."""
    for pattern in region_set:
        if pattern == "*" or pattern == region:
            return True
        if pattern.endswith("*") and region.startswith(pattern[:-1]):
            return True
    return False


def same_text(received: str, expected: str) -> bool:
    """Constant-time comparison that also takes any text a client may send (compare_digest on str accepts ASCII
    only and would raise instead of rejecting; surrogatepass encodes even a lone surrogate)."""
    return hmac.compare_digest(received.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass"))


__all__ = [
    "ALGORITHMS",
    "V4",
    "V4A",
    "Algorithm",
    "CredentialFields",
    "SigVersion",
    "algorithm_for",
    "algorithm_named",
    "region_matches",
    "same_text",
]
