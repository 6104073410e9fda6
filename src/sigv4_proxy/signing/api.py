"""`sign()` and `presign()`: SigV4 / SigV4a for the Authorization header and for presigned URLs.

Both go through one plan (as aws-sdk-go-v2's v4 `Build()` serves SignHTTP and PresignHTTP): a :class:`_Plan` is
everything about a request that does not change from one signing to the next - the headers to send with Host
inserted once, the signed header list, the canonical request and (presigning) the URL - as templates whose
named slots (X-Amz-Date and the other added headers; the credential, date, token and signature parameters) are
filled per signing. Plans are cached by request shape, so a request repeated with a new date costs a hash, a
template fill and one HMAC. What differs between SigV4 and SigV4a is the :mod:`~sigv4_proxy.signing.algorithm`
strategy's business.

The only impure thing here is the default for `now` (the current time) when the caller passes none; the
core below never reads the clock or the environment.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from threading import Lock
from urllib.parse import urlsplit

from sigv4_proxy.errors import SigningError
from sigv4_proxy.signing import canonical
from sigv4_proxy.signing.algorithm import Algorithm, algorithm_for, algorithm_named
from sigv4_proxy.signing.amzdate import AUTH_QUERY_PARAMS, format_amz_date
from sigv4_proxy.signing.model import (
    UNSIGNED_PAYLOAD,
    Credentials,
    PresignedURL,
    SignedRequest,
    check_expires_in,
)

Region = str | Sequence[str]


# Headers that signing sets itself: a caller's copy is replaced, never signed twice.
_AUTH_HEADERS = frozenset({"authorization", "x-amz-date", "x-amz-security-token", "x-amz-region-set"})
_NOTHING: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Scope:
    """One signing's algorithm, date and credential scope."""

    algorithm: Algorithm
    amz_date: str
    credential_scope: str
    region: str | None  # the credential scope's region (SigV4)
    region_set: str | None  # the X-Amz-Region-Set value (SigV4a)
    service: str


def make_scope(algorithm: str, region: Region, service: str, now: datetime | None) -> Scope:
    amz_date = format_amz_date(now if now is not None else datetime.now(timezone.utc))
    regions = (region,) if isinstance(region, str) else tuple(region)
    return _scope(algorithm, amz_date, regions, service)


@lru_cache(maxsize=512)
def _scope(algorithm: str, amz_date: str, regions: tuple[str, ...], service: str) -> Scope:
    chosen = algorithm_named(algorithm) or algorithm_for(algorithm)  # `v4`/`v4a` or the `AWS4-...` name
    if not regions or not all(regions) or not service:
        raise SigningError("a region and a service name are required to sign")
    scope_region, region_set = chosen.scope_regions(regions)
    credential_scope = chosen.credential_scope(amz_date[:8], scope_region, service)
    return Scope(chosen, amz_date, credential_scope, scope_region, region_set, service)


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


# --- the plan ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Slot:
    """A value filled per signing, named in a template."""

    name: str


@dataclass(frozen=True, slots=True)
class _Template:
    """Text with named slots: pieces[0], the value of slots[0], pieces[1], ..., the value of slots[-1], pieces[-1]."""

    pieces: tuple[str, ...]
    slots: tuple[str, ...]

    def fill(self, values: Mapping[str, str]) -> str:
        pieces = self.pieces
        out = [pieces[0]]
        for name, piece in zip(self.slots, pieces[1:], strict=True):
            out += (values[name], piece)
        return "".join(out)


def _template(segments: Iterable[str | _Slot]) -> _Template:
    pieces, slots = [""], []
    for segment in segments:
        if isinstance(segment, _Slot):
            slots.append(segment.name)
            pieces.append("")
        else:
            pieces[-1] += segment
    return _Template(tuple(pieces), tuple(slots))


@dataclass(frozen=True, slots=True)
class _Plan:
    """Everything about a request that does not change from one signing to the next."""

    method: str
    headers: tuple[tuple[str, str], ...]  # the caller's headers to send, Host first when it came from the URL
    signed_headers: str
    canonical_request: _Template  # up to the payload hash, which is appended per signing
    url: _Template | None  # presigning: the URL to send, with its auth parameters


# Presigning's part of a plan key: (algorithm name, region set, expires in, has a token, token signed).
_Presigning = tuple[str, str | None, int, bool, bool]
# (method, url, header items, service, normalize_path, double_encode, header slots, unsigned header names,
#  presigning or None): a plain tuple, built on every signing (a NamedTuple costs a Python-level __new__).
_PlanKey = tuple[
    str,
    str,
    tuple[tuple[str, str], ...],
    str,
    bool | None,
    bool | None,
    tuple[str, ...],
    frozenset[str],
    _Presigning | None,
]
_PLAN_CACHE_SIZE = 512
_plans: dict[_PlanKey, _Plan] = {}
_plans_lock = Lock()
_DATE_ONLY = ("X-Amz-Date",)  # header signing's usual slots: X-Amz-Date, ours and already canonical
# Presigning's slots
_CREDENTIAL, _DATE, _TOKEN, _SIGNATURE = "credential", "date", "token", "signature"
_TOKEN_PARAM = "X-Amz-Security-Token"


def _plan(key: _PlanKey) -> _Plan:
    """A cache miss (callers look `_plans` up themselves: a function call costs more than the lookup). Headers
    that header signing replaces (a previous signature, date or session token, as a re-sent request carries them)
    are dropped before a key is stored: they do not change the plan, and a session token must never be kept as a
    key of a process-wide cache."""
    items, header_slots, presigning = key[2], key[6], key[8]
    replaced = _NOTHING if presigning is not None else _AUTH_HEADERS | {name.lower() for name in header_slots}
    kept = tuple(item for item in items if str(item[0]).lower() not in replaced)
    if len(kept) != len(items):
        kept_key: _PlanKey = (key[0], key[1], kept, *key[3:])
        return _plans.get(kept_key) or _plan(kept_key)
    plan = _build_plan(*key)
    with _plans_lock:
        _plans[key] = plan
        while len(_plans) > _PLAN_CACHE_SIZE:
            del _plans[next(iter(_plans))]
    return plan


def _build_plan(
    method: str,
    url: str,
    items: tuple[tuple[str, str], ...],
    service: str,
    normalize_path: bool | None,
    double_encode: bool | None,
    header_slots: tuple[str, ...],
    unsigned: frozenset[str],
    presigning: _Presigning | None,
) -> _Plan:
    """Requests to one endpoint repeat their method, URL and headers; only X-Amz-Date and friends change per
    signing, so canonicalising, merging, folding and sorting is done once per request shape."""
    scheme, netloc, path, query = _split_url(url)
    headers = _with_host([(str(name), str(value)) for name, value in items], scheme, netloc)
    signed = {name.lower() for name, _ in headers} - unsigned
    values: dict[str, str | _Slot] = {**canonical.canonical_header_values(headers, signed)}
    values.update({name.lower(): _Slot(name) for name in header_slots if name.lower() not in unsigned})
    names = sorted(values)
    signed_headers = ";".join(names)
    method = method.upper()
    url_template = None
    if presigning is None:
        query_pairs = _encoded_pairs(query)
    else:
        kept_query = "&".join(p for p in query.split("&") if p and p.partition("=")[0] not in AUTH_QUERY_PARAMS)
        params = _presign_params(presigning, signed_headers)
        sign_token = presigning[4]
        query_pairs = [*_encoded_pairs(kept_query), *(p for p in params if sign_token or p[0] != _TOKEN_PARAM)]
        url_template = _presigned_url(url, kept_query, params)
    creq = _template(
        [
            f"{method}\n{_uri(path, service, normalize_path, double_encode)}\n",
            *_joined(_query_segments(query_pairs), "&"),
            "\n",
            *(part for name in names for part in (name, ":", values[name], "\n")),
            f"\n{signed_headers}\n",
        ]
    )
    return _Plan(method, tuple(headers), signed_headers, creq, url_template)


def _with_host(headers: list[tuple[str, str]], scheme: str, netloc: str) -> list[tuple[str, str]]:
    if any(name.lower() == "host" for name, _ in headers):
        return headers
    return [("Host", canonical.host_header(scheme, netloc)), *headers]


def _encoded_pairs(query: str) -> list[tuple[str, str | _Slot]]:
    encode = canonical.encode_text
    return [(encode(name), encode(value)) for name, value in canonical.parse_query(query)]


def _query_segments(pairs: list[tuple[str, str | _Slot]]) -> list[list[str | _Slot]]:
    """`name=value` for each encoded pair, sorted by name then value (slot names are unique auth parameters, so
    a slot's value is never what decides its place)."""
    ordered = sorted(pairs, key=lambda pair: (pair[0], pair[1] if isinstance(pair[1], str) else ""))
    return [[name, "=", value] for name, value in ordered]


def _joined(groups: list[list[str | _Slot]], separator: str) -> list[str | _Slot]:
    joined: list[str | _Slot] = []
    for index, group in enumerate(groups):
        joined += [separator, *group] if index else group
    return joined


def _presign_params(presigning: _Presigning, signed_headers: str) -> list[tuple[str, str | _Slot]]:
    """The auth parameters, encoded, in the order they are appended to the URL."""
    algorithm, region_set, expires_in, has_token, _ = presigning
    encode = canonical.encode_text
    params: list[tuple[str, str | _Slot]] = [
        ("X-Amz-Algorithm", algorithm),
        ("X-Amz-Credential", _Slot(_CREDENTIAL)),
        ("X-Amz-Date", _Slot(_DATE)),
        ("X-Amz-SignedHeaders", encode(signed_headers)),
        ("X-Amz-Expires", str(expires_in)),
    ]
    if has_token:
        params.append((_TOKEN_PARAM, _Slot(_TOKEN)))
    if region_set is not None:
        params.append(("X-Amz-Region-Set", encode(region_set)))
    return params


def _presigned_url(url: str, kept_query: str, params: list[tuple[str, str | _Slot]]) -> _Template:
    """The URL as given (its own query parameters as they were, a fragment dropped), then the auth parameters."""
    base = url.split("#", 1)[0].split("?", 1)[0]
    pairs = [[name, "=", value] for name, value in [*params, ("X-Amz-Signature", _Slot(_SIGNATURE))]]
    return _template([base, "?", *([kept_query, "&"] if kept_query else []), *_joined(pairs, "&")])


# --- signing -------------------------------------------------------------------------------------------------


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
    key = (method, url, items, service, normalize_path, double_encode, tuple(added), skip, None)
    plan = _plans.get(key) or _plan(key)  # no lock to read: a dict lookup is atomic
    template = plan.canonical_request
    if template.slots == _DATE_ONLY:
        pieces = template.pieces
        creq = f"{pieces[0]}{scope.amz_date}{pieces[1]}{body_hash}"
    else:
        creq = template.fill(_canonical_values(added, credentials)) + body_hash
    chosen = scope.algorithm
    sts = chosen.string_to_sign(scope.amz_date, scope.credential_scope, creq)
    signature = chosen.sign(credentials, scope.amz_date, scope.region, service, sts)
    signed_headers = plan.signed_headers
    authorization = (
        f"{chosen.name} Credential={credentials.access_key_id}/{scope.credential_scope}, "
        f"SignedHeaders={signed_headers}, Signature={signature}"
    )
    added["Authorization"] = authorization
    return SignedRequest(  # positional: keyword passing costs measurably on this hot path
        plan.method,
        url,
        [*plan.headers, *added.items()],
        added,
        data,
        creq,
        sts,
        signature,
        authorization,
        chosen.name,
        scope.credential_scope,
        signed_headers,
        scope.amz_date,
    )


def _canonical_values(added: dict[str, str], credentials: Credentials) -> dict[str, str]:
    """The added headers' values as the canonical request has them. X-Amz-Date, ours, already is one; the session
    token's is kept with the credentials (folding a 1,000-character token would cost a microsecond a request)."""
    values = {}
    for name, value in added.items():
        if name == "X-Amz-Date":
            values[name] = value
        elif name == "X-Amz-Security-Token":
            values[name] = credentials.canonical_session_token
        else:
            values[name] = canonical.canonical_header_value(value)
    return values


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
    check_expires_in(expires_in)
    scope = make_scope(algorithm, region, service, now)
    body_hash = _payload_hash(_body_bytes(body), payload_hash, unsigned_payload)
    token = credentials.session_token
    chosen = scope.algorithm
    presigning = (chosen.name, scope.region_set, expires_in, bool(token), not omit_session_token)
    items = tuple(headers.items()) if isinstance(headers, Mapping) else tuple(headers or ())
    key = (method, url, items, service, normalize_path, double_encode, (), _NOTHING, presigning)
    plan = _plans.get(key) or _plan(key)
    assert plan.url is not None
    slots = {
        _CREDENTIAL: canonical.encode_component(f"{credentials.access_key_id}/{scope.credential_scope}"),
        _DATE: scope.amz_date,
        _TOKEN: credentials.encoded_session_token if token else "",
    }
    creq = plan.canonical_request.fill(slots) + body_hash
    sts = chosen.string_to_sign(scope.amz_date, scope.credential_scope, creq)
    slots[_SIGNATURE] = signature = chosen.sign(credentials, scope.amz_date, scope.region, service, sts)
    return PresignedURL(  # positional: keyword passing costs measurably on this hot path
        plan.method,
        plan.url.fill(slots),
        list(plan.headers),
        creq,
        sts,
        signature,
        chosen.name,
        scope.credential_scope,
        plan.signed_headers,
        scope.amz_date,
        expires_in,
    )
