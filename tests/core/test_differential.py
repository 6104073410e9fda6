"""Differential property tests: our `sign()` / `presign()` against botocore's pure-Python SigV4 signers.

botocore is the oracle: for random methods, URLs (unicode, dot segments, double slashes, reserved characters,
percent-escapes), queries (repeated names, empty values, unicode, reserved characters), headers (case, inner
whitespace runs, leading/trailing blanks, repeats), bodies, clocks and credentials (with and without a
session token), our canonical request, string to sign and signature must equal botocore's byte for byte.
The mirror properties feed requests signed by botocore (SigV4, header and presigned) and by awscrt (SigV4a,
header and presigned; botocore has no pure-Python SigV4a) into our `verify()`, which must accept them.

How the two are fed the *same* request (botocore's quirks are matched in the inputs, never papered over):

* Clock: botocore's signers read `botocore.auth.get_current_datetime()` (naive UTC); it is patched to the
  example's instant, and ours gets the same instant as an aware datetime (in a random UTC offset).
* Query: botocore's `canonical_query_string` re-encodes only `request.params` (with `quote(safe='-_.~')`);
  a query inside `request.url` it takes verbatim. So botocore gets the decoded pairs as `params`, and ours
  gets a URL whose query encodes the same pairs in one of several equivalent ways a client may send them.
* Headers: botocore signs every header except `SIGNED_HEADERS_BLACKLIST` and replaces `Date`,
  `X-Amz-Date`, `Authorization`, `X-Amz-Security-Token` and `X-Amz-Content-SHA256` itself, so random header
  names avoid those; ours signs every header it is given, so both sign the same set.
* Paths: `SigV4Auth` removes dot segments and empty segments, then encodes the wire path once more (AWS's
  double encoding); `S3SigV4Auth` signs the wire path verbatim. See `_path_text` for the one place where
  botocore departs from RFC 3986 and how the strategy steps around it.

`BOTO_DISABLE_CRT=true` is set before botocore is imported; the signer classes are also instantiated
directly, so the pure-Python implementation is what runs even when awscrt is installed.
"""

from __future__ import annotations

import os

os.environ.setdefault("BOTO_DISABLE_CRT", "true")

import hashlib
import io
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from unittest import mock
from urllib.parse import parse_qsl, quote, unquote_to_bytes, urlsplit

import botocore.auth
import botocore.credentials
from botocore.awsrequest import AWSRequest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sigv4_proxy import Credentials, presign, sign, verify

# --------------------------------------------------------------------------------------------- settings
# CI runs every property at least 2,000 times, the same examples on every run (derandomize, no database).
# SIGV4_DIFFERENTIAL_EXAMPLES raises it for a local soak run.
settings.register_profile(
    "sigv4-differential",
    max_examples=max(2000, int(os.environ.get("SIGV4_DIFFERENTIAL_EXAMPLES", "2000"))),
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
DIFFERENTIAL = settings.get_profile("sigv4-differential")

# ----------------------------------------------------------------------------------------- strategies
UNRESERVED = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~"
SUB_DELIMS = "!$&'()*+,;="
TCHAR = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

# Unicode text without surrogates (not encodable as UTF-8) and without C0/C1 controls (not sendable in a URL;
# urlsplit even strips tab and newlines from URLs).
unicode_text_chars = st.characters(blacklist_categories=("Cs", "Cc"))


def percent_escape() -> st.SearchStrategy[str]:
    """A `%XX` escape of any byte, hex digits in either case (clients differ)."""
    return st.tuples(st.integers(0, 255), st.booleans()).map(lambda t: f"%{t[0]:02X}" if t[1] else f"%{t[0]:02x}")


# One piece of a path segment as it appears on the wire: unreserved, reserved characters that are legal
# raw in a path, a space (as in the AWS suite's get-space), a percent-escape, or raw unicode.
_path_piece = st.one_of(
    st.sampled_from(list(UNRESERVED)),
    st.sampled_from(list(SUB_DELIMS + ":@")),
    st.just(" "),
    percent_escape(),
    unicode_text_chars.filter(lambda c: c not in "/?#%"),
)


def _segments(pieces: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(["", ".", "..", "...", ".a", "a.", "%2E", "%2e%2E"]),
        st.lists(pieces, min_size=1, max_size=8).map("".join),
    )


@st.composite
def _path_text(draw: st.DrawFn, pieces: st.SearchStrategy[str] = _path_piece) -> str:
    """A wire path: `/` + segments, with dot segments, empty segments (`//`) and escapes anywhere.

    A path ending in a dot segment (`/a/b/..`) normalises to `/a` in ours, botocore and awscrt alike (AWS's
    signers, not RFC 3986's `/a/`), so such paths are drawn too.
    """
    segments = draw(st.lists(_segments(pieces), min_size=0, max_size=7))
    trailing_slash = draw(st.booleans())
    path = "/" + "/".join(segments)
    return path + "/" if trailing_slash and segments else path


_query_text = st.text(unicode_text_chars, max_size=12)
# Allowing empty names too: `=v` is a legal (if odd) pair; both sides must keep it.
_query_pairs = st.lists(st.tuples(_query_text, _query_text), max_size=8)

# Left raw by some clients in a query component (RFC 3986 query chars other than the pair separators).
# `+` is never left raw: botocore's presigner reads a raw `+` as a space (parse_qs) while awscrt and ours
# read it as a literal plus, so a raw `+` has no single meaning to compare against.
_RAW_OK_IN_QUERY = frozenset(UNRESERVED + "!$'()*,;:@/?")


@st.composite
def _encoded_component(draw: st.DrawFn, text: str) -> str:
    """Encode `text` the way *some* client could: per character either canonical (`%XX` upper-case, as
    botocore does), with lower-case hex, or raw where RFC 3986 allows it. All decode to `text`."""
    out = []
    for char in text:
        style = draw(st.sampled_from(["canonical", "lower", "raw"]))
        raw_ok = char in _RAW_OK_IN_QUERY or (ord(char) > 127 and style == "raw")
        if style == "raw" and raw_ok:
            out.append(char)
        elif style == "lower" and char not in UNRESERVED:
            out.append("".join(f"%{b:02x}" for b in char.encode("utf-8")))
        else:
            out.append(quote(char, safe="-_.~"))
    return "".join(out)


@st.composite
def _query_string(draw: st.DrawFn, pairs: list[tuple[str, str]]) -> str:
    parts = []
    for name, value in pairs:
        encoded_name = draw(_encoded_component(name))
        # `name` alone (no `=`) means an empty value, as in the suite's get-vanilla-empty-query-key.
        if value == "" and name != "" and draw(st.booleans()):
            parts.append(encoded_name)
        else:
            parts.append(f"{encoded_name}={draw(_encoded_component(value))}")
    return "&".join(parts)


# Header names botocore treats specially (replaces, skips or reads) - kept out of the random names.
_SPECIAL_HEADERS = frozenset(
    {
        *botocore.auth.SIGNED_HEADERS_BLACKLIST,
        "authorization",
        "date",
        "host",
        "x-amz-date",
        "x-amz-security-token",
        "x-amz-content-sha256",
        "x-amz-region-set",
        "content-md5",  # S3SigV4Auth's payload-signing switch
    }
)
_header_name = st.one_of(
    st.sampled_from(["X-Foo", "x-foo", "X-FOO", "Content-Type", "x-amz-meta-a", "My-Header1", "Accept"]),
    st.text(st.sampled_from(list(TCHAR)), min_size=1, max_size=12),
).filter(lambda n: n.lower() not in _SPECIAL_HEADERS)
# Printable ASCII and runs of SP/HT only. botocore folds *any* str.split() whitespace (NBSP, NEL, U+2028, U+3000,
# U+001C-U+001F, ...) while AWS's C signer (awscrt) and ours fold ASCII whitespace only, so those characters have
# no single right answer here; test_header_whitespace.py checks them against awscrt.
_header_value_char = st.one_of(
    st.characters(min_codepoint=0x21, max_codepoint=0x7E), st.sampled_from([" ", "  ", "\t", " \t "])
)
_header_value = st.lists(_header_value_char, max_size=16).map("".join)
# Repeated names (same case or not) must join their values with commas in the order given.
_headers = st.lists(st.tuples(_header_name, _header_value), max_size=6)

# Mixed-case hosts too: ours, like botocore and httpx, lower-cases the Host it derives from the URL.
_hosts = st.sampled_from(
    [
        "Example.AmazonAWS.com",
        "example.amazonaws.com",
        "abc123.execute-api.us-west-2.amazonaws.com",
        "bedrock-agentcore.us-east-1.amazonaws.com",
        "localhost",
        "127.0.0.1",
        "[::1]",
    ]
)
_ports = st.sampled_from([None, 80, 443, 8080, 65535])
_schemes = st.sampled_from(["https", "http"])
_methods = st.one_of(
    st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]),
    st.sampled_from(["get", "Post", "PROPFIND"]),  # both sides upper-case the method
)
_body = st.one_of(st.just(b""), st.binary(max_size=300))
_regions = st.one_of(
    st.sampled_from(["us-east-1", "eu-west-1", "ap-southeast-2", "us-gov-west-1", "cn-north-1"]),
    st.from_regex(r"[a-z]{2}-[a-z]{3,9}-[1-9]", fullmatch=True),
)
_S3_SERVICES = frozenset({"s3", "s3-object-lambda", "s3-outposts", "s3express"})
_services = st.one_of(
    st.sampled_from(["execute-api", "lambda", "bedrock-agentcore", "dsql", "rds-db", "sts", "iam"]),
    st.from_regex(r"[a-z][a-z0-9-]{0,15}", fullmatch=True),
).filter(lambda s: s not in _S3_SERVICES)
_access_keys = st.from_regex(r"(AKIA|ASIA)[A-Z0-9]{16}", fullmatch=True)
_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_secrets = st.text(st.sampled_from(list(_B64)), min_size=40, max_size=40)
_tokens = st.one_of(st.none(), st.text(st.sampled_from(list(_B64 + "=")), min_size=1, max_size=300))
_instants = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31, 23, 59, 59), timezones=st.just(timezone.utc)
)
_offsets = st.integers(-14 * 60, 14 * 60).map(lambda minutes: timezone(timedelta(minutes=minutes)))


@dataclass(frozen=True)
class Request:
    method: str
    scheme: str
    host: str
    port: int | None
    path: str
    pairs: list[tuple[str, str]]
    query: str  # the same pairs, encoded as this example's client sends them
    headers: list[tuple[str, str]]
    body: bytes

    @property
    def base_url(self) -> str:
        netloc = self.host if self.port is None else f"{self.host}:{self.port}"
        return f"{self.scheme}://{netloc}{self.path}"

    @property
    def url(self) -> str:
        return f"{self.base_url}?{self.query}" if self.query else self.base_url


@st.composite
def requests(draw: st.DrawFn, *, paths: st.SearchStrategy[str], unique_names: bool = False) -> Request:
    pairs = draw(_query_pairs)
    if unique_names:
        # botocore's presigner collapses repeated names (parse_qs -> dict): unique names keep it exact.
        pairs = list(dict(pairs).items())
        pairs = [(n, v) for n, v in pairs if n not in _PRESIGN_PARAMS]
    headers = draw(_headers)
    host, port, scheme = draw(_hosts), draw(_ports), draw(_schemes)
    if draw(st.booleans()):
        # An explicit Host header (any name case) is signed as given by both.
        default = {"https": 443, "http": 80}[scheme]
        value = host if port in (None, default) else f"{host}:{port}"
        headers.insert(draw(st.integers(0, len(headers))), (draw(st.sampled_from(["Host", "host", "HOST"])), value))
    return Request(
        method=draw(_methods),
        scheme=scheme,
        host=host,
        port=port,
        path=draw(paths),
        pairs=pairs,
        query=draw(_query_string(pairs)),
        headers=headers,
        body=draw(_body),
    )


@dataclass(frozen=True)
class Signer:
    credentials: Credentials
    region: str
    service: str
    now: datetime  # aware, UTC

    @property
    def botocore_credentials(self) -> botocore.credentials.Credentials:
        c = self.credentials
        return botocore.credentials.Credentials(c.access_key_id, c.secret_access_key, c.session_token)

    def frozen_clock(self) -> Any:
        naive = self.now.astimezone(timezone.utc).replace(tzinfo=None)
        return mock.patch.object(botocore.auth, "get_current_datetime", lambda *args, **kwargs: naive)


@st.composite
def signers(draw: st.DrawFn, services: st.SearchStrategy[str] = _services) -> Signer:
    credentials = Credentials(draw(_access_keys), draw(_secrets), draw(_tokens))
    return Signer(credentials, draw(_regions), draw(services), draw(_instants))


_PRESIGN_PARAMS = frozenset(
    {
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-Expires",
        "X-Amz-SignedHeaders",
        "X-Amz-Security-Token",
        "X-Amz-Signature",
    }
)


# ---------------------------------------------------------------------------------------- oracle glue
class Recording:
    """Mixin that keeps the canonical request and string to sign botocore computed while signing."""

    canonical: str
    string: str

    def canonical_request(self, request: AWSRequest) -> str:
        self.canonical = super().canonical_request(request)  # type: ignore[misc]
        return self.canonical

    def string_to_sign(self, request: AWSRequest, canonical_request: str) -> str:
        self.string = super().string_to_sign(request, canonical_request)  # type: ignore[misc]
        return self.string


class RecordingSigV4Auth(Recording, botocore.auth.SigV4Auth):
    pass


class RecordingS3SigV4Auth(Recording, botocore.auth.S3SigV4Auth):
    pass


class RecordingSigV4QueryAuth(Recording, botocore.auth.SigV4QueryAuth):
    pass


class BodyRequest(AWSRequest):
    """An AWSRequest whose body is given directly.

    `SigV4QueryAuth` moves a non-empty `request.data` into the query string (it expects form or JSON
    parameters), but it hashes `request.body` for the payload. Keeping `data` empty and serving the body
    here lets botocore presign a request with a body the way `presign(..., body=...)` does.
    """

    def __init__(self, *args: Any, raw_body: bytes = b"", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._raw_body = raw_body

    @property
    def body(self) -> bytes:  # type: ignore[override]
        return self._raw_body


def botocore_request(request: Request, *, url: str, params: Any, cls: type[AWSRequest] = AWSRequest) -> AWSRequest:
    kwargs: dict[str, Any] = {"raw_body": request.body} if cls is BodyRequest else {"data": request.body}
    aws_request = cls(method=request.method, url=url, params=params, **kwargs)
    for name, value in request.headers:  # HTTPHeaders: assignment appends, so repeats are kept
        aws_request.headers[name] = value
    return aws_request


def header_value(headers: list[tuple[str, str]], name: str) -> str | None:
    values = [v for k, v in headers if k.lower() == name.lower()]
    assert len(values) <= 1, f"{name} appears {len(values)} times"
    return values[0] if values else None


# ---------------------------------------------------------------------------------------------- tests
@DIFFERENTIAL
@given(
    request=requests(paths=_path_text()),
    signer=signers(),
    offset=_offsets,
    unsigned_payload=st.booleans(),
)
def test_header_signature_equals_botocore_sigv4auth(
    request: Request, signer: Signer, offset: timezone, unsigned_payload: bool
) -> None:
    # botocore signs UNSIGNED-PAYLOAD only over https (always hashes the body over plain http).
    unsigned_payload = unsigned_payload and request.scheme == "https"
    oracle = RecordingSigV4Auth(signer.botocore_credentials, signer.service, signer.region)
    aws_request = botocore_request(request, url=request.base_url, params=request.pairs)
    if unsigned_payload:
        aws_request.context["payload_signing_enabled"] = False
    with signer.frozen_clock():
        oracle.add_auth(aws_request)

    ours = sign(
        request.method,
        request.url,
        request.headers,
        request.body,
        credentials=signer.credentials,
        region=signer.region,
        service=signer.service,
        now=signer.now.astimezone(offset),
        unsigned_payload=unsigned_payload,
        content_sha256_header=unsigned_payload,
    )

    assert ours.canonical_request == oracle.canonical
    assert ours.string_to_sign == oracle.string
    assert ours.authorization == aws_request.headers["Authorization"]
    assert ours.signature == aws_request.headers["Authorization"].rsplit("Signature=", 1)[1]
    for name in ("X-Amz-Date", "X-Amz-Security-Token", "X-Amz-Content-SHA256"):
        assert header_value(ours.headers, name) == aws_request.headers.get(name), name


@DIFFERENTIAL
@given(request=requests(paths=_path_text(), unique_names=True), signer=signers(), expires=st.integers(1, 604800))
def test_presigned_url_equals_botocore_sigv4queryauth(request: Request, signer: Signer, expires: int) -> None:
    # The exact form-encoding Content-Type botocore drops from presigned requests (it sets it itself).
    request = _without_header(request, "content-type", "application/x-www-form-urlencoded; charset=utf-8")
    oracle = RecordingSigV4QueryAuth(signer.botocore_credentials, signer.service, signer.region, expires=expires)
    aws_request = botocore_request(request, url=request.base_url, params=dict(request.pairs), cls=BodyRequest)
    with signer.frozen_clock():
        oracle.add_auth(aws_request)

    ours = presign(
        request.method,
        request.url,
        credentials=signer.credentials,
        region=signer.region,
        service=signer.service,
        expires_in=expires,
        now=signer.now,
        headers=request.headers,
        body=request.body,
    )

    assert ours.canonical_request == oracle.canonical
    assert ours.string_to_sign == oracle.string
    theirs_url, ours_url = urlsplit(aws_request.url), urlsplit(ours.url)
    assert ours.signature == dict(parse_qsl(theirs_url.query))["X-Amz-Signature"]
    assert (ours_url.scheme, ours_url.netloc, ours_url.path) == (theirs_url.scheme, theirs_url.netloc, theirs_url.path)
    # Same parameters (ours keeps the caller's query as sent; botocore re-encodes it): compare decoded.
    assert _decoded_pairs(ours_url.query) == _decoded_pairs(theirs_url.query)


# S3 signs the wire path verbatim (no normalisation, no second encoding). botocore's S3SigV4Auth takes
# it byte for byte while ours decodes and re-encodes it once; they meet on paths a client encodes
# canonically (`quote(key, safe='/~')`, what botocore's S3 serializer sends). A non-canonical S3 wire path
# (`/a%2fb`, `/a:b`) is signed differently by the two - reported to the lead, not asserted here.
_s3_key = st.text(unicode_text_chars, max_size=30)


@DIFFERENTIAL
@given(
    request=requests(paths=_s3_key.map(lambda key: "/" + quote(key, safe="/~"))),
    signer=signers(services=st.just("s3")),
    offset=_offsets,
)
def test_s3_header_signature_equals_botocore_s3sigv4auth(request: Request, signer: Signer, offset: timezone) -> None:
    oracle = RecordingS3SigV4Auth(signer.botocore_credentials, "s3", signer.region)
    aws_request = botocore_request(request, url=request.base_url, params=request.pairs)
    with signer.frozen_clock():
        oracle.add_auth(aws_request)

    ours = sign(
        request.method,
        request.url,
        request.headers,
        request.body,
        credentials=signer.credentials,
        region=signer.region,
        service="s3",
        now=signer.now.astimezone(offset),
        content_sha256_header=True,
    )

    assert ours.canonical_request == oracle.canonical
    assert ours.authorization == aws_request.headers["Authorization"]
    assert header_value(ours.headers, "x-amz-content-sha256") == hashlib.sha256(request.body).hexdigest()


def _without_header(request: Request, name: str, value: str) -> Request:
    headers = [(k, v) for k, v in request.headers if not (k.lower() == name and v == value)]
    return Request(**{**request.__dict__, "headers": headers})


def _decoded_pairs(query: str) -> list[tuple[str, str]]:
    # `+` is never raw in these URLs (see _RAW_OK_IN_QUERY), so unquote-style decoding is exact.
    pairs = []
    for part in query.split("&"):
        name, _, value = part.partition("=")
        pairs.append((_unquote(name), _unquote(value)))
    return sorted(pairs)


def _unquote(text: str) -> str:
    return unquote_to_bytes(text).decode("utf-8", errors="surrogateescape")


# ------------------------------------------------------------------- verify() accepts what real signers send
# The mirror image of the properties above: a request signed by a peer, as it arrives on the wire, passes
# our verify(). botocore's query parameters go on the wire inside `request.url`, canonically encoded (as its
# serializers send them), since `request.params` would be sent form-encoded (`+` for space).
def _received_headers(request: Request, aws_request: AWSRequest) -> list[tuple[str, str]]:
    headers = list(aws_request.headers.items())
    if not any(name.lower() == "host" for name, _ in headers):
        headers.insert(0, ("Host", botocore.auth._host_from_url(aws_request.url)))
    return headers


def _canonical_query(pairs: list[tuple[str, str]]) -> str:
    return "&".join(f"{quote(n, safe='-_.~')}={quote(v, safe='-_.~')}" for n, v in pairs)


def _verify(signer: Signer, method: str, url: str, headers: list[tuple[str, str]], body: bytes, region: Any) -> Any:
    parts = urlsplit(url)
    target = f"{parts.path}?{parts.query}" if parts.query else parts.path
    return verify(
        method,
        target,
        headers,
        body,
        credentials_for={signer.credentials.access_key_id: signer.credentials}.get,
        now=signer.now,
        region=region,
        service=signer.service,
    )


@DIFFERENTIAL
@given(request=requests(paths=_path_text()), signer=signers(), presigned=st.booleans(), expires=st.integers(1, 604800))
def test_botocore_signed_request_passes_verify(request: Request, signer: Signer, presigned: bool, expires: int) -> None:
    if presigned:
        request = _without_header(request, "content-type", "application/x-www-form-urlencoded; charset=utf-8")
        oracle: botocore.auth.SigV4Auth = botocore.auth.SigV4QueryAuth(
            signer.botocore_credentials, signer.service, signer.region, expires=expires
        )
        pairs = list(dict(request.pairs).items())  # the presigner keeps one value per name
        pairs = [(n, v) for n, v in pairs if n not in _PRESIGN_PARAMS]
        aws_request = botocore_request(request, url=request.base_url, params=dict(pairs), cls=BodyRequest)
    else:
        oracle = botocore.auth.SigV4Auth(signer.botocore_credentials, signer.service, signer.region)
        query = _canonical_query(request.pairs)
        url = f"{request.base_url}?{query}" if query else request.base_url
        aws_request = botocore_request(request, url=url, params=None)
    with signer.frozen_clock():
        oracle.add_auth(aws_request)

    result = _verify(
        signer, request.method, aws_request.url, _received_headers(request, aws_request), request.body, signer.region
    )
    assert result.ok, result.message
    assert (result.access_key_id, result.presigned) == (signer.credentials.access_key_id, presigned)


# SigV4a has no pure-Python signer in botocore (it delegates to awscrt), so awscrt itself is the peer: its
# ECDSA signatures are randomised, so the check is that ours *verifies* them - which needs our key derivation,
# canonical request and string to sign to equal awscrt's.
# awscrt's URI parser misreads a path segment that begins with `:` (`/:/x` fails to sign with
# AWS_ERROR_MALFORMED_INPUT_STRING, `/:///` is signed as `/`): a bug of the peer, so its paths have no `:`.
_crt_paths = _path_text(pieces=_path_piece.filter(lambda piece: piece != ":"))


@DIFFERENTIAL
@given(request=requests(paths=_crt_paths), signer=signers(), presigned=st.booleans(), expires=st.integers(1, 604800))
def test_awscrt_sigv4a_signed_request_passes_verify(
    request: Request, signer: Signer, presigned: bool, expires: int
) -> None:
    import awscrt.auth
    import awscrt.http

    c = signer.credentials
    # awscrt refuses to sign a request that already has a parameter it may add (any case of X-Amz-*).
    query = _canonical_query([(n, v) for n, v in request.pairs if not n.lower().startswith("x-amz-")])
    headers = list(request.headers)
    if not any(name.lower() == "host" for name, _ in headers):
        headers.insert(0, ("Host", botocore.auth._host_from_url(request.base_url)))
    crt_request = awscrt.http.HttpRequest(
        request.method.upper(),
        urlsplit(request.base_url).path + (f"?{query}" if query else ""),
        awscrt.http.HttpHeaders(headers),
        io.BytesIO(request.body),
    )
    signature_type = awscrt.auth.AwsSignatureType
    config = awscrt.auth.AwsSigningConfig(
        algorithm=awscrt.auth.AwsSigningAlgorithm.V4_ASYMMETRIC,
        signature_type=signature_type.HTTP_REQUEST_QUERY_PARAMS if presigned else signature_type.HTTP_REQUEST_HEADERS,
        credentials_provider=awscrt.auth.AwsCredentialsProvider.new_static(
            c.access_key_id, c.secret_access_key, c.session_token
        ),
        region=signer.region,
        service=signer.service,
        date=signer.now,
        expiration_in_seconds=expires if presigned else None,
    )
    awscrt.auth.aws_sign_request(crt_request, config).result()

    scheme_host = request.base_url[: len(request.base_url) - len(urlsplit(request.base_url).path)]
    result = _verify(
        signer, request.method, scheme_host + crt_request.path, list(crt_request.headers), request.body, signer.region
    )
    assert result.ok, result.message
    assert (result.algorithm, result.region, result.presigned) == ("AWS4-ECDSA-P256-SHA256", [signer.region], presigned)
