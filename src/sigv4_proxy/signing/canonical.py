"""The SigV4 canonical request: URI, query, headers and payload hash, byte-exact with AWS.

Pure functions over strings and bytes: no clock, no environment, no I/O.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Container, Iterable, Mapping
from functools import lru_cache
from urllib.parse import unquote_to_bytes

from sigv4_proxy.signing.model import EMPTY_SHA256

Headers = Mapping[str, str] | Iterable[tuple[str, str]]

_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")
# Precomputed byte -> text tables keep encoding a tight loop (signing is on the proxy's hot path).
_ENCODE = [chr(b) if b in _UNRESERVED else f"%{b:02X}" for b in range(256)]
_ENCODE_PATH = list(_ENCODE)
_ENCODE_PATH[ord("/")] = "/"
_ALL_UNRESERVED = re.compile(r"[A-Za-z0-9\-_.~]*").fullmatch
# Base64 text (session tokens, signatures in some forms): three characters to escape, replaced in C rather than
# encoded byte by byte - a 1,000-character token is ~15x faster this way.
_BASE64_TEXT = re.compile(r"[A-Za-z0-9\-_.~+/=]*").fullmatch

# Services whose canonical URI is the path as sent, encoded once and never normalised (S3's rule).
_SINGLE_ENCODE_SERVICES = frozenset({"s3", "s3-object-lambda", "s3-outposts", "s3express"})


def uri_encode(data: str | bytes, *, keep_slash: bool = False) -> str:
    """Percent-encode every byte except the unreserved set (RFC 3986), upper-case hex, `%20` never `+`."""
    if isinstance(data, str):
        if _ALL_UNRESERVED(data):  # fast path: most names and values need no escaping
            return data
        if _BASE64_TEXT(data):
            encoded = data.replace("+", "%2B").replace("=", "%3D")
            return encoded if keep_slash else encoded.replace("/", "%2F")
        raw = data.encode("utf-8")
    else:
        raw = data
    table = _ENCODE_PATH if keep_slash else _ENCODE
    return "".join([table[b] for b in raw])


def normalize_path(path: str) -> str:
    """Remove `.` and `..` segments and empty segments (`//`); keep a trailing slash the path ends with.

    A path ending in a dot segment loses it without gaining a slash (`/a/b/..` -> `/a`), as AWS's own
    signers (aws-c-auth, botocore) and hence its servers compute it, although RFC 3986 would keep `/a/`.
    """
    segments: list[str] = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if segments:
                segments.pop()
            continue
        segments.append(segment)
    normalized = "/" + "/".join(segments)
    if path.endswith("/") and normalized != "/":
        normalized += "/"
    return normalized


def uses_single_encoding(service: str) -> bool:
    return service in _SINGLE_ENCODE_SERVICES


def canonical_uri(path: str, *, normalize: bool = True, double_encode: bool = True) -> str:
    """The path as sent on the wire -> canonical URI.

    By default (every service but S3) the wire path, already percent-encoded, is encoded once more: that is
    AWS's "double encoding". With `double_encode=False` (S3) escapes in the wire path are decoded first, so
    the path is encoded exactly once.
    """
    if not path:
        path = "/"
    if normalize:
        path = normalize_path(path)
    if double_encode:
        return uri_encode(path, keep_slash=True)
    return uri_encode(unquote_to_bytes(path), keep_slash=True)


def parse_query(query: str) -> list[tuple[str, str]]:
    """Split a raw query string into decoded (name, value) pairs, keeping order, repeats and empty values.

    `+` is a literal plus here, not a space: SigV4 canonicalises it as `%2B`.
    """
    if not query:
        return []
    pairs = []
    for part in query.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        pairs.append((_decode(name), _decode(value)))
    return pairs


def _decode(text: str) -> str:
    if "%" not in text:
        return text
    return unquote_to_bytes(text).decode("utf-8", errors="surrogateescape")


def encode_text(text: str) -> str:
    """One query name or value, percent-encoded. Invalid UTF-8 escapes (decoded as surrogate escapes by
    `parse_query`) are encoded back to the exact original bytes."""
    try:
        return uri_encode(text)
    except UnicodeEncodeError:
        return uri_encode(text.encode("utf-8", errors="surrogateescape"))


# Cached: presigned URLs repeat their parameter names, credential and region set on every call. Only the
# caller's own URL and names go through it - never a session token, which `encode_text` encodes per call.
encode_component = lru_cache(maxsize=4096)(encode_text)


def canonical_query(pairs: Iterable[tuple[str, str]]) -> str:
    """Encode each name and value, sort by encoded name then encoded value, join with `&`.

    Not cached per pair: a received query (`verify`) carries session tokens and signatures, which must not
    become keys of a process-wide cache. Callers on the signing hot path cache the whole result instead.
    """
    encoded = sorted((encode_text(name), encode_text(value)) for name, value in pairs)
    return "&".join(f"{name}={value}" for name, value in encoded)


def header_items(headers: Headers | None) -> list[tuple[str, str]]:
    if headers is None:
        return []
    if isinstance(headers, Mapping):
        return [(str(k), str(v)) for k, v in headers.items()]
    return [(str(k), str(v)) for k, v in headers]


def canonical_header_value(value: str) -> str:
    """Trim, and fold every inner run of ASCII whitespace (SP, HT, LF, VT, FF, CR: the line breaks of a
    multi-line value too) into one space, as aws-c-auth (awscrt) does with `aws_isspace`.

    Only ASCII whitespace: `str.split()` would also fold NBSP, NEL, U+2028, U+3000, U+001C-U+001F and the
    other Unicode spaces, so a verifier would accept bytes that were never signed (botocore folds them; AWS's
    C signer and hence this one do not). `bytes.split()` splits on exactly the six ASCII whitespace bytes, and
    UTF-8 never puts an ASCII byte inside a multi-byte character, so splitting the encoded value is exact.
    """
    return b" ".join(value.encode("utf-8", "surrogatepass").split()).decode("utf-8", "surrogatepass")


def canonical_header_values(headers: Iterable[tuple[str, str]], signed: Container[str]) -> dict[str, str]:
    """Lower-case name -> canonical value, for the headers whose lower-case names are in `signed`. Repeated
    headers are joined with commas in the order they were given."""
    merged: dict[str, list[str]] = {}
    for name, value in headers:
        key = name.lower()
        if key in signed:
            merged.setdefault(key, []).append(canonical_header_value(value))
    return {name: ",".join(values) for name, values in merged.items()}


def canonical_headers(headers: Iterable[tuple[str, str]], signed: Iterable[str]) -> tuple[str, str]:
    """Return (canonical header block, signed header list) for the headers whose lower-case names are in
    `signed`; a name signed but absent has an empty value."""
    wanted = set(signed)
    values = canonical_header_values(headers, wanted)
    names = sorted(wanted)
    block = "".join(f"{name}:{values.get(name, '')}\n" for name in names)
    return block, ";".join(names)


def payload_sha256(body: bytes | None) -> str:
    if not body:
        return EMPTY_SHA256
    return hashlib.sha256(body).hexdigest()


def canonical_request(
    method: str,
    uri: str,
    query: str,
    header_block: str,
    signed_headers: str,
    payload_hash: str,
) -> str:
    return f"{method}\n{uri}\n{query}\n{header_block}\n{signed_headers}\n{payload_hash}"


@lru_cache(maxsize=256)
def host_header(scheme: str, netloc: str) -> str:
    """The Host header for a URL: userinfo dropped, default ports omitted, lower-cased (as httpx and botocore
    send it; host names are case-insensitive, and the signed value must equal the one sent)."""
    host = netloc.rpartition("@")[2].lower()
    default = {"https": ":443", "http": ":80"}.get(scheme.lower())
    if default and host.endswith(default):
        host = host[: -len(default)]
    return host
