"""SigV4 (AWS4-HMAC-SHA256): signing keys, string to sign, signature. Pure functions plus a bounded key cache."""

from __future__ import annotations

import hashlib
import hmac

from sigv4_proxy.signing.keycache import KeyCache
from sigv4_proxy.signing.model import Credentials

# A derived key is valid for one day, region and service. Keyed by access key id and that scope, checked
# against the secret's fingerprint: the cache never holds a secret, and a rotated secret replaces every key
# derived from the old one.
_key_cache: KeyCache[tuple[bytes, hmac.HMAC]] = KeyCache(max_entries=256)
_find = _key_cache.find


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()


def derive_signing_key(secret_access_key: str, date: str, region: str, service: str) -> bytes:
    k_date = _hmac(("AWS4" + secret_access_key).encode("utf-8"), date)
    k_region = _hmac(k_date, region)
    k_service = _hmac(k_region, service)
    return _hmac(k_service, "aws4_request")


def signing_key(credentials: Credentials, date: str, region: str, service: str) -> bytes:
    """The derived key for one day, region and service; cached because it is valid all day (four HMACs saved)."""
    return _signer(credentials, date, region, service)[0]


def _signer(credentials: Credentials, date: str, region: str, service: str) -> tuple[bytes, hmac.HMAC]:
    """(signing key, an HMAC-SHA256 keyed with it). Copying a keyed HMAC is about half the cost of keying a new
    one, and signing is on the proxy's hot path: a hit is one dict lookup and one fingerprint comparison."""
    fingerprint = credentials.secret_fingerprint
    entry = _find((credentials.access_key_id, date, region, service))
    if entry is not None and entry[0] == fingerprint:
        return entry[1]
    key = derive_signing_key(credentials.secret_access_key, date, region, service)
    signer = (key, hmac.new(key, digestmod=hashlib.sha256))
    _key_cache.put(credentials.access_key_id, fingerprint, (date, region, service), signer)
    return signer


def string_to_sign(algorithm: str, amz_date: str, scope: str, canonical_request: str) -> str:
    digest = hashlib.sha256(canonical_request.encode("utf-8")).hexdigest()
    return f"{algorithm}\n{amz_date}\n{scope}\n{digest}"


def signature(key: bytes, string_to_sign_text: str) -> str:
    return hmac.digest(key, string_to_sign_text.encode("utf-8"), "sha256").hex()


def sign_with(credentials: Credentials, amz_date: str, region: str, service: str, text: str) -> str:
    """The signature of a string to sign, with the day's signing key from the cache."""
    mac = _signer(credentials, amz_date[:8], region, service)[1].copy()
    mac.update(text.encode("utf-8"))
    return mac.hexdigest()


def sign_string(secret_access_key: str, amz_date: str, region: str, service: str, text: str) -> str:
    """The signature of a string to sign, deriving the key (uncached: for one-off signing from a bare secret)."""
    return signature(derive_signing_key(secret_access_key, amz_date[:8], region, service), text)


__all__ = [
    "derive_signing_key",
    "sign_string",
    "sign_with",
    "signature",
    "signing_key",
    "string_to_sign",
]
