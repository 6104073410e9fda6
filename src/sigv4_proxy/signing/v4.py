"""SigV4 (AWS4-HMAC-SHA256): signing keys, string to sign, signature. Pure functions plus a bounded key cache."""

from __future__ import annotations

import hashlib
import hmac
from threading import Lock
from typing import Any

from sigv4_proxy.signing.model import V4

_KEY_CACHE_SIZE = 256
_key_cache: dict[tuple[str, str, str, str], tuple[bytes, Any]] = {}
_key_cache_lock = Lock()


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()


def derive_signing_key(secret_access_key: str, date: str, region: str, service: str) -> bytes:
    k_date = _hmac(("AWS4" + secret_access_key).encode("utf-8"), date)
    k_region = _hmac(k_date, region)
    k_service = _hmac(k_region, service)
    return _hmac(k_service, "aws4_request")


def signing_key(secret_access_key: str, date: str, region: str, service: str) -> bytes:
    """The derived key for one day, region and service; cached because it is valid all day (four HMACs saved)."""
    return _signer(secret_access_key, date, region, service)[0]


def _signer(secret_access_key: str, date: str, region: str, service: str) -> tuple[bytes, Any]:
    """(signing key, an HMAC-SHA256 keyed with it). Copying a keyed HMAC is about half the cost of keying a new
    one, and signing is on the proxy's hot path. Reads take no lock (a dict lookup is atomic); the cache is
    bounded by evicting the oldest entry."""
    cache_key = (secret_access_key, date, region, service)
    entry = _key_cache.get(cache_key)
    if entry is not None:
        return entry
    key = derive_signing_key(secret_access_key, date, region, service)
    entry = (key, hmac.new(key, digestmod=hashlib.sha256))
    with _key_cache_lock:
        _key_cache[cache_key] = entry
        while len(_key_cache) > _KEY_CACHE_SIZE:
            del _key_cache[next(iter(_key_cache))]
    return entry


def credential_scope(date: str, region: str, service: str) -> str:
    return f"{date}/{region}/{service}/aws4_request"


def string_to_sign(algorithm: str, amz_date: str, scope: str, canonical_request: str) -> str:
    digest = hashlib.sha256(canonical_request.encode("utf-8")).hexdigest()
    return f"{algorithm}\n{amz_date}\n{scope}\n{digest}"


def signature(key: bytes, string_to_sign_text: str) -> str:
    return hmac.digest(key, string_to_sign_text.encode("utf-8"), "sha256").hex()


def sign_string(secret_access_key: str, amz_date: str, region: str, service: str, text: str) -> str:
    mac = _signer(secret_access_key, amz_date[:8], region, service)[1].copy()
    mac.update(text.encode("utf-8"))
    return mac.hexdigest()


__all__ = ["V4", "credential_scope", "derive_signing_key", "sign_string", "signature", "signing_key", "string_to_sign"]
