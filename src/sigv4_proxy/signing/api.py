"""`sign()` and `presign()`: SigV4 / SigV4a for the Authorization header and for presigned URLs.

The only impure thing here is the default for `now` (the current time) when the caller passes none; the
core below never reads the clock or the environment.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from threading import Lock
from urllib.parse import urlsplit

from sigv4_proxy.errors import SigningError
from sigv4_proxy.signing import canonical, v4, v4a
from sigv4_proxy.signing.model import (
    ALGORITHMS,
    MAX_PRESIGN_EXPIRES,
    UNSIGNED_PAYLOAD,
    V4,
    V4A,
    Credentials,
    PresignedURL,
    SignedRequest,
)

Region = str | Sequence[str]


# Headers that signing sets itself: a caller's copy is replaced, never signed twice.
_AUTH_HEADERS = frozenset({"authorization", "x-amz-date", "x-amz-security-token", "x-amz-region-set"})
# Query parameters that presigning sets itself.
_AUTH_PARAMS = frozenset(
    {
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-SignedHeaders",
        "X-Amz-Expires",
        "X-Amz-Security-Token",
        "X-Amz-Region-Set",
        "X-Amz-Signature",
    }
)


@dataclass(frozen=True, slots=True)
class Scope:
    """Everything that depends on the algorithm: its name, the credential scope and how to sign."""

    algorithm: str
    amz_date: str
    credential_scope: str
    region_set: str | None  # v4a only: the X-Amz-Region-Set value
    region: str | None  # v4 only
    service: str

    def sign(self, credentials: Credentials, string_to_sign: str) -> str:
        if self.algorithm == V4A:
            return v4a.sign_string(credentials.access_key_id, credentials.secret_access_key, string_to_sign)
        assert self.region is not None
        return v4.sign_with(credentials, self.amz_date, self.region, self.service, string_to_sign)

    def string_to_sign(self, canonical_request: str) -> str:
        return v4.string_to_sign(self.algorithm, self.amz_date, self.credential_scope, canonical_request)


def algorithm_name(algorithm: str) -> str:
    """`v4` / `v4a` (or the full algorithm names) -> the `AWS4-...` algorithm identifier."""
    if algorithm in ALGORITHMS:
        return ALGORITHMS[algorithm]
    if algorithm in (V4, V4A):
        return algorithm
    raise SigningError(f"signature version must be 'v4' or 'v4a', got: {algorithm}")


def format_amz_date(now: datetime) -> str:
    """`20150830T123600Z`. Naive datetimes are taken as UTC."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    return _amz_date_at(int(now.timestamp()))


@lru_cache(maxsize=8)
def _amz_date_at(epoch_seconds: int) -> str:
    # Formatting costs more than hashing a small request; requests signed in the same second share it.
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(epoch_seconds))


def make_scope(algorithm: str, region: Region, service: str, now: datetime | None) -> Scope:
    amz_date = format_amz_date(now if now is not None else datetime.now(timezone.utc))
    regions = (region,) if isinstance(region, str) else tuple(region)
    return _scope(algorithm, amz_date, regions, service)


@lru_cache(maxsize=512)
def _scope(algorithm: str, amz_date: str, regions: tuple[str, ...], service: str) -> Scope:
    name = algorithm_name(algorithm)
    if not regions or not all(regions) or not service:
        raise SigningError("a region and a service name are required to sign")
    if name == V4A:
        region_set = ",".join(regions)
        return Scope(name, amz_date, v4a.credential_scope(amz_date[:8], service), region_set, None, service)
    if len(regions) != 1:
        raise SigningError("SigV4 signs for exactly one region; use --sig-version v4a for a region set")
    scope = v4.credential_scope(amz_date[:8], regions[0], service)
    return Scope(name, amz_date, scope, None, regions[0], service)


def _body_bytes(body: bytes | str | None) -> bytes:
    if body is None:
        return b""
    return body.encode("utf-8") if isinstance(body, str) else bytes(body)


def _payload_hash(body: bytes, payload_hash: str | None, unsigned_payload: bool) -> str:
    if payload_hash is not None:
        return payload_hash
    if unsigned_payload:
        return UNSIGNED_PAYLOAD
    return canonical.payload_sha256(body)


@lru_cache(maxsize=1024)
def _uri(path: str, service: str, normalize_path: bool | None, double_encode: bool | None) -> str:
    single = canonical.uses_single_encoding(service)
    normalize = (not single) if normalize_path is None else normalize_path
    double = (not single) if double_encode is None else double_encode
    return canonical.canonical_uri(path, normalize=normalize, double_encode=double)


@lru_cache(maxsize=1024)
def _split_url(url: str) -> tuple[str, str, str, str]:
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        raise SigningError(f"cannot sign {url!r}: expected an absolute URL such as https://host/path")
    return parts.scheme, parts.netloc, parts.path or "/", parts.query


_NOTHING: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class _SignPlan:
    """The part of a canonical request that depends only on the method, URL and the caller's headers."""

    method: str
    given: list[tuple[str, str]]  # headers to send, Host first when it was derived from the URL
    signed_headers: str
    canonical_request_parts: tuple[str, ...]  # up to the payload hash, split where added headers' values go
    signed_added: tuple[str, ...]  # which added headers' values go between those parts, in order


# (method, url, header items, added header names, unsigned names, service, normalize_path, double_encode)
_PlanKey = tuple[str, str, tuple[tuple[str, str], ...], tuple[str, ...], frozenset[str], str, bool | None, bool | None]
_PLAN_CACHE_SIZE = 512
_plans: dict[_PlanKey, _SignPlan] = {}
_plans_lock = Lock()


def _new_sign_plan(key: _PlanKey) -> _SignPlan:
    """A cache miss (sign() looks `_plans` up itself: a function call costs more than the lookup). Headers that
    signing replaces (a previous signature, date or session token, as a re-sent request carries them) are dropped
    before a key is stored: they do not change the plan, and a session token must never be kept as a key of a
    process-wide cache."""
    method, url, items, added_names, skip, service, normalize_path, double_encode = key
    kept = _without_replaced(items, added_names)
    if len(kept) != len(items):
        kept_key = (method, url, kept, added_names, skip, service, normalize_path, double_encode)
        return _plans.get(kept_key) or _new_sign_plan(kept_key)
    plan = _sign_plan(method, url, items, added_names, skip, service, normalize_path, double_encode)
    with _plans_lock:
        _plans[key] = plan
        while len(_plans) > _PLAN_CACHE_SIZE:
            del _plans[next(iter(_plans))]
    return plan


def _replaced_names(added_names: tuple[str, ...]) -> frozenset[str]:
    return _AUTH_HEADERS | {name.lower() for name in added_names}


def _without_replaced(items: tuple[tuple[str, str], ...], added_names: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    replaced = _replaced_names(added_names)
    return tuple((name, value) for name, value in items if str(name).lower() not in replaced)


def _sign_plan(
    method: str,
    url: str,
    items: tuple[tuple[str, str], ...],
    added_names: tuple[str, ...],
    skip: frozenset[str],
    service: str,
    normalize_path: bool | None,
    double_encode: bool | None,
) -> _SignPlan:
    """Requests to one endpoint repeat their method, URL and headers; only X-Amz-Date and friends change per
    request, so canonicalising, grouping, folding and sorting is done once per request shape."""
    scheme, netloc, path, query = _split_url(url)
    replaced = _replaced_names(added_names)
    given = [(str(name), str(value)) for name, value in items if str(name).lower() not in replaced]
    if not any(name.lower() == "host" for name, _ in given):
        given.insert(0, ("Host", canonical.host_header(scheme, netloc)))
    lines: dict[str, str | None] = {}  # None: an added header, whose value is filled in per request
    for lower, values in _group(given, skip).items():
        lines[lower] = ",".join([canonical.canonical_header_value(v) for v in values])
    slots = [name for name in added_names if name.lower() not in skip]
    slot_of = {name.lower(): name for name in slots}
    for lower in slot_of:
        lines[lower] = None
    names = sorted(lines)
    signed_headers = ";".join(names)
    method = method.upper()
    parts = [f"{method}\n{_uri(path, service, normalize_path, double_encode)}\n{_canonical_query(query)}\n"]
    order = []
    for name in names:
        value = lines[name]
        if value is None:
            parts[-1] += f"{name}:"
            order.append(slot_of[name])
            parts.append("\n")
        else:
            parts[-1] += f"{name}:{value}\n"
    parts[-1] += f"\n{signed_headers}\n"
    return _SignPlan(method, given, signed_headers, tuple(parts), tuple(order))


def _group(headers: list[tuple[str, str]], skip: frozenset[str]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for name, value in headers:
        lower = name.lower()
        if lower not in skip:
            grouped.setdefault(lower, []).append(value)
    return grouped


@lru_cache(maxsize=1024)
def _canonical_query(query: str) -> str:
    return canonical.canonical_query(canonical.parse_query(query))


def _with_host(headers: list[tuple[str, str]], scheme: str, netloc: str) -> list[tuple[str, str]]:
    if any(name.lower() == "host" for name, _ in headers):
        return headers
    return [("Host", canonical.host_header(scheme, netloc)), *headers]


def sign(
    method: str,
    url: str,
    headers: canonical.Headers | None = None,
    body: bytes | str | None = b"",
    *,
    credentials: Credentials,
    region: Region,
    service: str,
    algorithm: str = "v4",
    now: datetime | None = None,
    payload_hash: str | None = None,
    unsigned_payload: bool = False,
    content_sha256_header: bool = False,
    normalize_path: bool | None = None,
    double_encode: bool | None = None,
    omit_session_token: bool = False,
    unsigned_headers: Collection[str] = (),
) -> SignedRequest:
    """Sign a request with the Authorization header (SigV4 or SigV4a).

    `url` is the URL as it will be sent (its path and query exactly as on the wire). Every header given is
    signed except those named in `unsigned_headers`; `Host` is added from the URL when missing.
    `content_sha256_header` adds and signs `x-amz-content-sha256`. `omit_session_token` adds the session
    token after signing (some services want it unsigned). `now` defaults to the current time.
    """
    scope = make_scope(algorithm, region, service, now)
    data = body if type(body) is bytes else _body_bytes(body)
    body_hash = _payload_hash(data, payload_hash, unsigned_payload)
    added: dict[str, str] = {}
    if credentials.session_token:
        added["X-Amz-Security-Token"] = credentials.session_token
    added["X-Amz-Date"] = scope.amz_date
    if scope.region_set is not None:
        added["X-Amz-Region-Set"] = scope.region_set
    if content_sha256_header:
        added["x-amz-content-sha256"] = body_hash
    skip = frozenset({name.lower() for name in unsigned_headers}) if unsigned_headers else _NOTHING
    if omit_session_token:
        skip = skip | {"x-amz-security-token"}
    items = tuple(headers.items()) if isinstance(headers, Mapping) else tuple(headers or ())
    key = (method, url, items, tuple(added), skip, service, normalize_path, double_encode)
    plan = _plans.get(key) or _new_sign_plan(key)  # no lock to read: a dict lookup is atomic
    parts = plan.canonical_request_parts
    if len(parts) == 2 and plan.signed_added[0] == "X-Amz-Date":
        # The usual case: X-Amz-Date, ours and already canonical, is the only value that changes.
        creq = f"{parts[0]}{scope.amz_date}{parts[1]}{body_hash}"
    else:
        pieces = [parts[0]]
        for name, part in zip(plan.signed_added, parts[1:], strict=True):
            value = added[name]
            pieces += [value if name == "X-Amz-Date" else canonical.canonical_header_value(value), part]
        creq = "".join(pieces) + body_hash
    signed_headers = plan.signed_headers
    given = plan.given
    method = plan.method
    sts = scope.string_to_sign(creq)
    signature = scope.sign(credentials, sts)
    authorization = (
        f"{scope.algorithm} Credential={credentials.access_key_id}/{scope.credential_scope}, "
        f"SignedHeaders={signed_headers}, Signature={signature}"
    )
    added["Authorization"] = authorization
    return SignedRequest(  # positional: keyword passing costs measurably on this hot path
        method,
        url,
        [*given, *added.items()],
        added,
        data,
        creq,
        sts,
        signature,
        authorization,
        scope.algorithm,
        scope.credential_scope,
        signed_headers,
        scope.amz_date,
    )


def presign(
    method: str,
    url: str,
    *,
    credentials: Credentials,
    region: Region,
    service: str,
    expires_in: int = 900,
    algorithm: str = "v4",
    now: datetime | None = None,
    headers: canonical.Headers | None = None,
    body: bytes | str | None = b"",
    payload_hash: str | None = None,
    unsigned_payload: bool = False,
    omit_session_token: bool = False,
    normalize_path: bool | None = None,
    double_encode: bool | None = None,
) -> PresignedURL:
    """Presign a URL: the signature and its parameters go into the query string (`X-Amz-Expires` seconds).

    The payload hash defaults to the SHA-256 of `body` (an empty body for most presigned requests).
    Headers given are signed and must be sent with the URL; `Host` is always signed.
    """
    if isinstance(expires_in, bool) or not isinstance(expires_in, int):
        raise SigningError(f"expires_in must be a whole number of seconds, got: {expires_in!r}")
    if not 1 <= expires_in <= MAX_PRESIGN_EXPIRES:
        raise SigningError(
            f"expires_in must be between 1 and {MAX_PRESIGN_EXPIRES} seconds (7 days), got: {expires_in}"
        )
    scope = make_scope(algorithm, region, service, now)
    body_hash = _payload_hash(_body_bytes(body), payload_hash, unsigned_payload)
    items = tuple(headers.items()) if isinstance(headers, Mapping) else tuple(headers or ())
    token = credentials.session_token
    plan = _presign_plan(
        method.upper(),
        url,
        items,
        scope.algorithm,
        scope.region_set,
        service,
        expires_in,
        bool(token),
        omit_session_token,
        normalize_path,
        double_encode,
        body_hash,
    )
    encode = canonical.encode_component
    slots = {
        "cred": encode(f"{credentials.access_key_id}/{scope.credential_scope}"),
        "date": scope.amz_date,
        "token": credentials.encoded_session_token if token else "",
    }
    creq = plan.canonical_request_format.format_map(slots)
    sts = scope.string_to_sign(creq)
    signature = scope.sign(credentials, sts)
    return PresignedURL(  # positional: keyword passing costs measurably on this hot path
        plan.method,
        plan.url_format.format_map({**slots, "signature": signature}),
        list(plan.given),
        creq,
        sts,
        signature,
        scope.algorithm,
        scope.credential_scope,
        plan.signed_headers,
        scope.amz_date,
        expires_in,
    )


@dataclass(frozen=True, slots=True)
class _PresignPlan:
    """Everything in a presigned URL that does not change from one signing to the next (cached): only the
    credential (key and day), the date, the session token and the signature fill slots."""

    method: str
    given: list[tuple[str, str]]
    signed_headers: str
    canonical_request_format: str  # slots {cred} {date} {token}
    url_format: str  # slots {cred} {date} {token} {signature}


def _braces(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


@lru_cache(maxsize=256)
def _presign_plan(
    method: str,
    url: str,
    items: tuple[tuple[str, str], ...],
    algorithm: str,
    region_set: str | None,
    service: str,
    expires_in: int,
    has_token: bool,
    omit_session_token: bool,
    normalize_path: bool | None,
    double_encode: bool | None,
    body_hash: str,
) -> _PresignPlan:
    scheme, netloc, path, query = _split_url(url)
    given = _with_host(canonical.header_items(items), scheme, netloc)
    header_block, signed_headers = canonical.canonical_headers(given, {name.lower() for name, _ in given})
    kept_query = "&".join(p for p in query.split("&") if p and p.partition("=")[0] not in _AUTH_PARAMS)
    encode = canonical.encode_component
    # (name, value) with values already encoded; a slot is a format field filled per signing
    params: list[tuple[str, str]] = [
        ("X-Amz-Algorithm", _braces(algorithm)),
        ("X-Amz-Credential", "{cred}"),
        ("X-Amz-Date", "{date}"),
        ("X-Amz-SignedHeaders", _braces(encode(signed_headers))),
        ("X-Amz-Expires", str(expires_in)),
    ]
    token = [("X-Amz-Security-Token", "{token}")] if has_token else []
    region = [("X-Amz-Region-Set", _braces(encode(region_set)))] if region_set is not None else []
    kept = [(_braces(encode(k)), _braces(encode(v))) for k, v in canonical.parse_query(kept_query)]
    # Slot names are unique and never among the kept parameters, so sorting by name places every slot.
    signed = sorted([*kept, *params, *([] if omit_session_token else token), *region])
    canonical_query = "&".join(f"{k}={v}" for k, v in signed)
    uri = _braces(_uri(path, service, normalize_path, double_encode))
    creq_format = f"{method}\n{uri}\n{canonical_query}\n{_braces(header_block)}\n{_braces(signed_headers)}\n{body_hash}"
    final = "&".join(f"{k}={v}" for k, v in [*params, *token, *region, ("X-Amz-Signature", "{signature}")])
    base = url.split("#", 1)[0].split("?", 1)[0]
    new_query = f"{_braces(kept_query)}&{final}" if kept_query else final
    return _PresignPlan(method, given, signed_headers, creq_format, f"{_braces(base)}?{new_query}")
