"""No process-wide cache keeps a secret or a session token, and a rotated secret leaves nothing behind.

The signing-key caches are found by access key id and scope and checked against a keyed fingerprint of the
secret; a new secret for the same access key id replaces every key derived from the old one. Session tokens are
passed through per call (or kept on the Credentials object that holds them anyway), never cached by value.

The checks look at what the caches really hold: everything reachable from the signing modules' caches (their
dicts, KeyCache slots and the `functools.lru_cache` tables, found through the garbage collector), and the
objects that refer to the secret string itself.
"""

from __future__ import annotations

import base64
import gc
import os
import pickle
import types
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

import pytest

from sigv4_proxy import Credentials, presign, sign, verify
from sigv4_proxy.signing import v4, v4a

NOW = datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone.utc)
URL = "https://abc123.execute-api.us-east-1.amazonaws.com/prod/mcp?x=1"
REGION = "us-east-1"
SIGNING_MODULES = (
    "sigv4_proxy.signing.algorithm",
    "sigv4_proxy.signing.amzdate",
    "sigv4_proxy.signing.api",
    "sigv4_proxy.signing.canonical",
    "sigv4_proxy.signing.v4",
    "sigv4_proxy.signing.v4a",
    "sigv4_proxy.signing.verify",
    "sigv4_proxy.signing.keycache",
    "sigv4_proxy.signing.model",
    "sigv4_proxy.tokens",
)


def fresh_secret() -> str:
    """A secret (or token) no other test has used: base64 with `+`, `/` and `=`, built at run time so the only
    references to it are the ones the code under test makes."""
    return base64.b64encode(os.urandom(30) + b"\xfb\xff").decode()


def fresh_key_id() -> str:
    return "AKIA" + base64.b32encode(os.urandom(10)).decode()


# ------------------------------------------------------------------------------------ what caches hold
_NOT_FOLLOWED = (types.ModuleType, type, types.FunctionType, types.BuiltinFunctionType, types.CodeType)


def _module_caches() -> list[object]:
    """Every module-level container and lru_cache of the signing modules."""
    import importlib

    roots: list[object] = []
    for name in SIGNING_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError:  # a layout without that module: nothing of it to hold anything
            continue
        for value in vars(module).values():
            if hasattr(value, "cache_info") or isinstance(value, (dict, list, set)):
                roots.append(value)
            elif type(value).__module__.startswith("sigv4_proxy.signing") and not isinstance(value, _NOT_FOLLOWED):
                roots.append(value)  # e.g. a KeyCache
    return roots


def _reachable(roots: Iterable[object]) -> Iterator[object]:
    """Everything the garbage collector sees from `roots` (an lru_cache's table included), not through
    modules, classes or functions."""
    seen: set[int] = set()
    stack = list(roots)
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        yield obj
        if not isinstance(obj, (str, bytes, *_NOT_FOLLOWED)):
            stack.extend(gc.get_referents(obj))


def cached_texts_and_bytes() -> tuple[list[str], list[bytes], list[object]]:
    texts, blobs, others = [], [], []
    for obj in _reachable(_module_caches()):
        if isinstance(obj, str):
            texts.append(obj)
        elif isinstance(obj, (bytes, bytearray)):
            blobs.append(bytes(obj))
        else:
            others.append(obj)
    return texts, blobs, others


def assert_not_cached(*needles: str) -> None:
    texts, blobs, _ = cached_texts_and_bytes()
    for needle in needles:
        assert not [t for t in texts if needle in t], "a cache holds a secret or a token"
        assert not [b for b in blobs if needle.encode() in b], "a cache holds a secret or a token"


def assert_only_credentials_refer_to(secret: str, *holders: Credentials) -> None:
    """The secret string is referred to by the Credentials objects that carry it, and by nothing else (no
    cache key tuple, no dict keyed by it)."""
    gc.collect()
    allowed = {id(vars(holder)) for holder in holders}
    for referrer in gc.get_referrers(secret):
        if isinstance(referrer, types.FrameType) or id(referrer) in allowed:
            continue
        raise AssertionError(f"the secret is held by a {type(referrer).__name__}")


# ------------------------------------------------------------------------------------------ the scenarios
def _sign_every_way(credentials: Credentials, *, services: Iterable[str] = ("execute-api",)) -> None:
    for service in services:
        for algorithm in ("v4", "v4a"):
            region: Any = REGION if algorithm == "v4" else [REGION, "us-west-2"]
            common = {"credentials": credentials, "region": region, "service": service, "algorithm": algorithm}
            signed = sign("POST", URL, [("Content-Type", "application/json")], b"{}", now=NOW, **common)
            presigned = presign("GET", URL, now=NOW, **common)
            lookup = {credentials.access_key_id: credentials}.get
            target = signed.url.split(".com", 1)[1]
            assert verify("POST", target, signed.headers, b"{}", credentials_for=lookup, now=NOW).ok
            target = presigned.url.split(".com", 1)[1]
            assert verify("GET", target, presigned.headers, b"", credentials_for=lookup, now=NOW).ok


def test_no_cache_holds_the_secret_or_the_session_token() -> None:
    credentials = Credentials(fresh_key_id(), fresh_secret(), fresh_secret())
    _sign_every_way(credentials)
    assert credentials.session_token is not None
    encoded_token = quote(credentials.session_token, safe="-_.~")
    assert_not_cached(credentials.secret_access_key, credentials.session_token, encoded_token)
    assert_only_credentials_refer_to(credentials.secret_access_key, credentials)
    assert_only_credentials_refer_to(credentials.session_token, credentials)


def test_a_re_signed_request_does_not_put_its_old_token_in_a_cache() -> None:
    """A retried request still carries the headers of its last signing (token, date, signature). Signing
    replaces them, and they never become part of a cache key."""
    old_token, credentials = fresh_secret(), Credentials(fresh_key_id(), fresh_secret(), fresh_secret())
    carried = [
        ("Content-Type", "application/json"),
        ("X-Amz-Security-Token", old_token),
        ("X-Amz-Date", "20240506T070000Z"),
        ("Authorization", f"AWS4-HMAC-SHA256 Credential=x, SignedHeaders=host, Signature={old_token}"),
    ]
    again = sign("POST", URL, carried, b"{}", credentials=credentials, region=REGION, service="lambda", now=NOW)
    fresh = sign(
        "POST",
        URL,
        [("Content-Type", "application/json")],
        b"{}",
        credentials=credentials,
        region=REGION,
        service="lambda",
        now=NOW,
    )
    assert (again.canonical_request, again.signature, again.headers) == (
        fresh.canonical_request,
        fresh.signature,
        fresh.headers,
    )
    assert_not_cached(old_token, credentials.session_token or "")


def test_a_rotated_secret_leaves_no_key_derived_from_the_old_one() -> None:
    key_id, old, new = fresh_key_id(), fresh_secret(), fresh_secret()
    services = ("execute-api", "lambda", "bedrock-agentcore")
    _sign_every_way(Credentials(key_id, old), services=services)
    _sign_every_way(Credentials(key_id, new), services=services[:1])  # the new secret, for one scope only

    _, blobs, others = cached_texts_and_bytes()
    derived_from_old = {v4.derive_signing_key(old, NOW.strftime("%Y%m%d"), REGION, s) for s in services}
    assert not derived_from_old & set(blobs), "a SigV4 key derived from the rotated-out secret is still cached"
    old_scalar = v4a.derive_private_scalar(key_id, old)
    v4a_keys = [o for o in others if hasattr(o, "private_numbers")]
    assert v4a_keys, "the SigV4a key cache was not reached"
    assert all(k.private_numbers().private_value != old_scalar for k in v4a_keys)
    assert_not_cached(old, new)


def test_the_same_key_id_with_another_secret_never_reuses_a_key() -> None:
    """Alternating secrets for one access key id (a rotation racing in-flight requests): every signature is the
    one the secret in hand gives, never one from the other secret's cached key."""
    key_id, first, second = fresh_key_id(), fresh_secret(), fresh_secret()
    for secret in (first, second, first, second, first):
        signed = sign("GET", URL, credentials=Credentials(key_id, secret), region=REGION, service="sts", now=NOW)
        expected = v4.signature(v4.derive_signing_key(secret, "20240506", REGION, "sts"), signed.string_to_sign)
        assert signed.signature == expected


@pytest.mark.parametrize("algorithm", ["v4", "v4a"])
def test_verify_after_rotation_refuses_the_old_secret(algorithm: str) -> None:
    key_id, old, new = fresh_key_id(), fresh_secret(), fresh_secret()
    region: Any = REGION if algorithm == "v4" else [REGION]
    signed = sign(
        "GET", URL, credentials=Credentials(key_id, old), region=region, service="sts", now=NOW, algorithm=algorithm
    )
    target = signed.url.split(".com", 1)[1]

    def check(secret: str) -> Any:
        lookup = {key_id: Credentials(key_id, secret)}.get
        return verify("GET", target, signed.headers, b"", credentials_for=lookup, now=NOW)

    assert check(old).ok  # caches the old secret's key
    assert check(new).reason == "signature"  # the server now knows only the new secret
    assert check(old).ok  # and back: each secret gets its own key


# ---------------------------------------------------------------------------------------- the machinery
def test_fingerprint_is_keyed_fixed_size_and_tells_secrets_apart() -> None:
    import hashlib

    from sigv4_proxy.signing.keycache import fingerprint

    secret = fresh_secret()
    assert fingerprint(secret) == fingerprint(secret)
    assert fingerprint(secret) != fingerprint(fresh_secret())
    assert len(fingerprint(secret)) == 32
    assert secret.encode() not in fingerprint(secret)
    unkeyed = {hashlib.sha256(secret.encode()).digest(), hashlib.blake2s(secret.encode()).digest()}
    assert fingerprint(secret) not in unkeyed
    assert fingerprint("\ud800") != fingerprint("\udcff")  # any str, even a lone surrogate


def test_key_cache_rotation_drops_every_scope_of_the_old_secret() -> None:
    from sigv4_proxy.signing.keycache import KeyCache, fingerprint

    cache: KeyCache[str] = KeyCache(max_entries=8)
    old, new = fingerprint("old"), fingerprint("new")
    for scope in ("a", "b", "c"):
        cache.put("AKID", old, (scope,), f"old-{scope}")
    cache.put("OTHER", old, ("a",), "other-a")
    assert cache.get("AKID", old, ("b",)) == "old-b"
    assert cache.get("AKID", new, ("b",)) is None  # another secret: a miss, never the old key
    assert cache.find(("AKID", "b")) == (old, "old-b")  # the raw lookup hands the fingerprint to compare
    cache.put("AKID", new, ("a",), "new-a")
    assert cache.entries() == [("OTHER", old, ("a",), "other-a"), ("AKID", new, ("a",), "new-a")]
    assert cache.get("AKID", old, ("b",)) is None


def test_key_cache_is_bounded() -> None:
    from sigv4_proxy.signing.keycache import KeyCache, fingerprint

    cache: KeyCache[int] = KeyCache(max_entries=6)
    for n in range(10):
        for scope in range(4):
            cache.put(f"KEY{n}", fingerprint(str(n)), (str(scope),), scope)
    entries = cache.entries()
    assert [(key_id, scope) for key_id, _, scope, _ in entries] == [  # the oldest entries went first
        ("KEY8", ("2",)),
        ("KEY8", ("3",)),
        ("KEY9", ("0",)),
        ("KEY9", ("1",)),
        ("KEY9", ("2",)),
        ("KEY9", ("3",)),
    ]
    assert len(cache._fingerprints) <= 6
    cache.clear()
    assert cache.entries() == []


def test_credentials_compute_their_fingerprint_once_and_never_pickle_it() -> None:
    credentials = Credentials(fresh_key_id(), fresh_secret(), fresh_secret(), NOW + timedelta(hours=1))
    first = credentials.secret_fingerprint
    assert credentials.secret_fingerprint is first  # cached on the object
    state = credentials.__getstate__()
    assert "secret_fingerprint" not in state  # keyed per process: another process computes its own
    copy = pickle.loads(pickle.dumps(credentials))
    assert copy == credentials
    assert "secret_fingerprint" not in vars(copy)
    assert copy.secret_fingerprint == first  # same process, same key
    assert "****" in repr(credentials) and credentials.secret_access_key not in repr(credentials)
