"""Verify a token against credentials: recompute its signature with the core's verifier and, when it does not
match, try the known signer mistakes (:data:`HYPOTHESES`) to find the one that reproduces it."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, TypedDict

from sigv4_proxy.inspection.checks import SIGNATURE_SHAPE
from sigv4_proxy.inspection.redaction import scrub_document, secrets_of
from sigv4_proxy.redact import mask_access_key
from sigv4_proxy.signing.algorithm import V4, algorithm_named
from sigv4_proxy.signing.model import EMPTY_SHA256, UNSIGNED_PAYLOAD, Credentials
from sigv4_proxy.signing.verify import Reason
from sigv4_proxy.tokens import DSQL_SERVICE, FORM_AUTHORIZATION, RDS_SERVICE, ParsedToken, host_info

# verify()'s reason codes, and inspect's own: the signature matches only without the session token; the token
# names another access key than the credentials given (`inspect --verify`).
VerificationReason = Reason | Literal["session_token_unsigned", "credentials"]


@dataclass(frozen=True)
class Hypothesis:
    """A known signer mistake, as a change to the inputs of the canonical request / signing key."""

    code: str
    explanation: str
    fix: str
    applies: Callable[[ParsedToken], bool]
    change: Callable[[_Inputs, ParsedToken], _Inputs | None]


@dataclass(frozen=True)
class _Inputs:
    """Everything the signature covers, as separate parts that the hypotheses vary."""

    method: str
    uri: str
    query: str  # the canonical query string
    host: str
    signed_headers: str
    payload_hash: str
    key_region: str
    key_service: str
    extra_headers: tuple[tuple[str, str], ...] = ()

    def canonical_request(self) -> str:
        from sigv4_proxy.signing import canonical

        headers = [("host", self.host), *self.extra_headers]
        block, _ = canonical.canonical_headers(headers, self.signed_headers.split(";"))
        return canonical.canonical_request(
            self.method, self.uri, self.query, block, self.signed_headers, self.payload_hash
        )


def _canonical_query(pairs: Iterable[tuple[str, str]]) -> str:
    from sigv4_proxy.signing import canonical

    return canonical.canonical_query(pairs)


def _signed_pairs(t: ParsedToken, *, without: str | None = None) -> list[tuple[str, str]]:
    return [(p.name, p.value) for p in t.params if p.name not in ("X-Amz-Signature", without)]


def _raw_query(t: ParsedToken, *, sort: bool) -> str:
    pairs = [(p.raw_name, p.raw_value) for p in t.params if p.name != "X-Amz-Signature"]
    return "&".join(f"{k}={v}" for k, v in (sorted(pairs) if sort else pairs))


def _decoded_query(t: ParsedToken) -> str:
    return "&".join(f"{k}={v}" for k, v in sorted(_signed_pairs(t)))


def _other_service(t: ParsedToken) -> str | None:
    return {DSQL_SERVICE: RDS_SERVICE, RDS_SERVICE: DSQL_SERVICE}.get(t.scope_service or "")


HYPOTHESES: tuple[Hypothesis, ...] = (
    Hypothesis(
        "signed_host_with_port",
        "the signer signed the host with the port ('{variant_host}') — the RDS habit, and what a Java-style "
        "signer does; Aurora DSQL signs the bare host",
        "sign the host without the port: sigv4-proxy dsql-token --hostname {hostname}",
        lambda t: t.port is None and bool(t.hostname),
        lambda i, t: replace(i, host=f"{t.hostname}:5432"),
    ),
    Hypothesis(
        "signed_host_with_443",
        "the signer signed the host with ':443' ('{variant_host}'); HTTP clients omit default ports",
        "sign the Host header exactly as sent: without ':443'",
        lambda t: t.port is None and bool(t.hostname),
        lambda i, t: replace(i, host=f"{t.hostname}:443"),
    ),
    Hypothesis(
        "signed_host_without_port",
        "the signer signed the host without the port ('{variant_host}') but the token carries ':{port}'",
        "sign exactly the host:port the token carries (RDS) — or drop the port from both (DSQL)",
        lambda t: t.port is not None,
        lambda i, t: replace(i, host=t.hostname),
    ),
    Hypothesis(
        "signed_host_case",
        "the signer signed the host in a different letter case ('{variant_host}')",
        "lower-case the host both when signing and in the token",
        lambda t: t.host != t.host.lower(),
        lambda i, t: replace(i, host=t.host.lower()),
    ),
    Hypothesis(
        "session_token_unsigned",
        "the signer added X-Amz-Security-Token after signing (it is not in its canonical query)",
        "add the session token to the query before computing the signature: it is a signed parameter",
        lambda t: t.has_session_token,
        lambda i, t: replace(i, query=_canonical_query(_signed_pairs(t, without="X-Amz-Security-Token"))),
    ),
    Hypothesis(
        "query_unsorted",
        "the signer signed the query parameters in the order they appear instead of sorted",
        "sort the canonical query by encoded name, then value",
        lambda t: _raw_query(t, sort=False) != _raw_query(t, sort=True),
        lambda i, t: replace(i, query=_raw_query(t, sort=False)),
    ),
    Hypothesis(
        "query_not_encoded",
        "the signer signed the query values without percent-encoding them (a raw '/' in X-Amz-Credential)",
        "percent-encode names and values in the canonical query: X-Amz-Credential=AKID%2F20240101%2F...",
        lambda t: True,
        lambda i, t: replace(i, query=_decoded_query(t)),
    ),
    Hypothesis(
        "query_encoded_differently",
        "the signer signed the query exactly as written in the token, whose encoding is not canonical",
        "percent-encode every name and value per RFC 3986 (upper-case hex, %20 for space, %2F for /) before signing",
        lambda t: True,
        lambda i, t: replace(i, query=_raw_query(t, sort=True)),
    ),
    Hypothesis(
        "unsigned_payload",
        "the signer used UNSIGNED-PAYLOAD as the payload hash (the S3 convention)",
        "use the SHA-256 of the empty body (e3b0c442...) as the payload hash",
        lambda t: True,
        lambda i, t: replace(i, payload_hash=UNSIGNED_PAYLOAD) if i.payload_hash != UNSIGNED_PAYLOAD else None,
    ),
    Hypothesis(
        "empty_payload_hash",
        "the signer used the SHA-256 of the empty body as the payload hash, where UNSIGNED-PAYLOAD is expected",
        "use UNSIGNED-PAYLOAD for presigned S3 URLs",
        lambda t: True,
        lambda i, t: replace(i, payload_hash=EMPTY_SHA256) if i.payload_hash != EMPTY_SHA256 else None,
    ),
    Hypothesis(
        "empty_path",
        "the signer used an empty canonical URI; it must be '/'",
        "use '/' as the canonical URI of the root path",
        lambda t: True,
        lambda i, t: replace(i, uri="") if i.uri == "/" else None,
    ),
    Hypothesis(
        "method_post",
        "the signer signed method POST; the token is checked as a GET",
        "presign tokens with method GET",
        lambda t: True,
        lambda i, t: replace(i, method="POST") if i.method != "POST" else None,
    ),
    Hypothesis(
        "key_for_other_service",
        "the signer derived its signing key for service '{other_service}' while the scope says '{service}'",
        "derive the key and write the scope with the same service ('{service}')",
        lambda t: _other_service(t) is not None,
        lambda i, t: replace(i, key_service=_other_service(t) or i.key_service),
    ),
    Hypothesis(
        "key_for_host_region",
        "the signer derived its signing key for region '{host_region}' while the scope says '{region}'",
        "derive the key and write the scope with the same region",
        lambda t: bool(t.hostname) and host_info(t.hostname).region not in (None, t.scope_region),
        lambda i, t: replace(i, key_region=host_info(t.hostname).region or i.key_region),
    ),
)


@dataclass(frozen=True)
class Verification:
    ok: bool
    message: str
    reason: VerificationReason
    expected_canonical_request: str | None = None
    expected_string_to_sign: str | None = None
    their_canonical_request: str | None = None
    their_string_to_sign: str | None = None
    hypothesis: str | None = None
    fix: str | None = None
    secrets: frozenset[str] = field(default=frozenset(), repr=False, compare=False)  # scrubbed from output

    def first_difference(self) -> tuple[int | None, int | None]:
        """(line index in the canonical requests, line index in the strings to sign) of the first difference."""
        return (
            first_differing_line(self.expected_canonical_request, self.their_canonical_request),
            first_differing_line(self.expected_string_to_sign, self.their_string_to_sign),
        )

    def to_dict(self) -> dict[str, Any]:
        creq_line, sts_line = self.first_difference()
        document = {
            "ok": self.ok,
            "reason": self.reason,
            "message": self.message,
            "hypothesis": self.hypothesis,
            "fix": self.fix,
            "expected_canonical_request": self.expected_canonical_request,
            "expected_string_to_sign": self.expected_string_to_sign,
            "their_canonical_request": self.their_canonical_request,
            "their_string_to_sign": self.their_string_to_sign,
            "first_differing_line": {"canonical_request": creq_line, "string_to_sign": sts_line},
        }
        return scrub_document(document, self.secrets)


def first_differing_line(a: str | None, b: str | None) -> int | None:
    """Index of the first line that differs between two texts (None when equal or one is missing)."""
    if a is None or b is None or a == b:
        return None
    left, right = a.split("\n"), b.split("\n")
    for index, (x, y) in enumerate(zip(left, right, strict=False)):
        if x != y:
            return index
    return min(len(left), len(right))


class _Expected(TypedDict):
    """What AWS computes from the token: every verdict of :func:`_verify_token` shows it."""

    expected_canonical_request: str | None
    expected_string_to_sign: str | None


def verify_token(
    token: ParsedToken,
    credentials: Credentials,
    *,
    their_canonical_request: str | None = None,
    method: str = "GET",
    headers: Sequence[tuple[str, str]] = (),
    body: bytes = b"",
) -> Verification:
    """Recompute the signature of `token` with `credentials` (a :class:`~sigv4_proxy.Credentials` whose access
    key is the token's); see :func:`_verify_token`. The result knows the token's secrets, to keep them out of
    everything it prints."""
    result = _verify_token(
        token, credentials, their_canonical_request=their_canonical_request, method=method, headers=headers, body=body
    )
    secrets = secrets_of(token) | {credentials.secret_access_key}
    if credentials.session_token:
        secrets.add(credentials.session_token)
    return replace(result, secrets=frozenset(s for s in secrets if len(s) >= 8))


def _verify_token(
    token: ParsedToken,
    credentials: Credentials,
    *,
    their_canonical_request: str | None,
    method: str,
    headers: Sequence[tuple[str, str]],
    body: bytes,
) -> Verification:
    """Recompute the signature of `token` with `credentials` (a :class:`~sigv4_proxy.Credentials` whose access
    key is the token's). Time is not judged here (the checks do that): the token is verified as of its own
    X-Amz-Date. On a mismatch, try :data:`HYPOTHESES`; `their_canonical_request` (from the signer's debug
    output) is compared line by line instead when given."""
    from sigv4_proxy.signing.verify import verify

    signed_at = token.signed_at
    if signed_at is None:
        return Verification(False, "cannot verify: X-Amz-Date is missing or malformed", "malformed")
    if algorithm_named(token.algorithm) is V4 and not SIGNATURE_SHAPE.match((token.signature or "").lower()):
        return Verification(False, "cannot verify: the signature is not 64 hexadecimal characters", "malformed")
    # The token is compared with the caller's session token only when the caller has one.
    if credentials.session_token and not (credentials.session_token + (token.session_token or "")).isascii():
        return Verification(
            False,
            "cannot verify: the session token has non-ASCII characters (a copy or encoding "
            "mistake: real session tokens are base64)",
            "token",
        )
    # Without a session token of their own, the credentials are checked only for the signature (the token's
    # session token is signed as part of the query either way).
    creds = Credentials(credentials.access_key_id, credentials.secret_access_key, credentials.session_token)
    target = (token.path or "/") + (f"?{token.query}" if token.query else "")
    request_headers = list(headers) or [("host", token.host)]
    if token.form == FORM_AUTHORIZATION and not any(k.lower() == "authorization" for k, _ in request_headers):
        header = re.sub(r"(?i)^authorization\s*:\s*", "", token.text)
        request_headers.append(("authorization", header))
    result = verify(
        method,
        target,
        request_headers,
        body,
        credentials_for=lambda key: creds if key == creds.access_key_id else None,
        now=signed_at,
    )
    base: _Expected = {
        "expected_canonical_request": result.expected_canonical_request,
        "expected_string_to_sign": result.expected_string_to_sign,
    }
    if (
        result.ok
        and token.has_session_token
        and "X-Amz-Security-Token=" not in (result.expected_canonical_request or "X-Amz-Security-Token=")
    ):
        return _token_signed_after(token, result.expected_canonical_request or "", result.expected_string_to_sign)
    if result.ok:
        return Verification(
            True,
            "the signature matches: the token was signed with this secret key over exactly what it says",
            "ok",
            **base,
        )
    if result.reason != "signature":
        return Verification(False, _first_line(result.message), result.reason, **base)
    if their_canonical_request is not None:
        theirs = their_canonical_request.replace("\r\n", "\n").rstrip("\n")
        from sigv4_proxy.signing import v4

        their_sts = v4.string_to_sign(
            token.algorithm or V4.name,
            token.amz_date or "",
            f"{token.scope_date}/{token.scope_region}/{token.scope_service}/aws4_request",
            theirs,
        )
        return Verification(
            False,
            "the signature does not match; your signer's canonical request differs from "
            "the one AWS computes (first difference marked)",
            "signature",
            their_canonical_request=theirs,
            their_string_to_sign=their_sts,
            **base,
        )
    found = _search_hypotheses(token, creds, method, headers, result.expected_canonical_request or "")
    if found is not None:
        hypothesis, creq, sts, params = found
        return Verification(
            False,
            "the signature does not match: " + hypothesis.explanation.format(**params),
            "signature",
            their_canonical_request=creq,
            their_string_to_sign=sts,
            hypothesis=hypothesis.code,
            fix=hypothesis.fix.format(**params),
            **base,
        )
    return Verification(
        False,
        f"the signature does not match, and no known signer mistake reproduces it: most likely the token was "
        f"signed with a different secret key than the one for {mask_access_key(creds.access_key_id)}. Compare the "
        f"expected canonical request below with your signer's (--canonical-request FILE marks the first "
        f"difference).",
        "signature",
        **base,
    )


def _token_signed_after(token: ParsedToken, theirs: str, their_sts: str | None) -> Verification:
    """The signature holds only without the session token: it was added to the URL after signing. Some
    services accept that (IoT); IAM database tokens and most presigned URLs must sign it."""
    from sigv4_proxy.signing import v4

    hypothesis = next(h for h in HYPOTHESES if h.code == "session_token_unsigned")
    lines = theirs.split("\n")
    lines[2] = _canonical_query(_signed_pairs(token))
    expected = "\n".join(lines)
    scope = f"{token.scope_date}/{token.scope_region}/{token.scope_service}/aws4_request"
    expected_sts = v4.string_to_sign(token.algorithm or V4.name, token.amz_date or "", scope, expected)
    severity_note = "" if token.is_db_token else " (a few services, such as IoT, accept that; most reject it)"
    return Verification(
        ok=not token.is_db_token,
        message="the signature matches only without the session token: " + hypothesis.explanation + severity_note,
        reason="session_token_unsigned",
        expected_canonical_request=expected,
        expected_string_to_sign=expected_sts,
        their_canonical_request=theirs,
        their_string_to_sign=their_sts,
        hypothesis=hypothesis.code,
        fix=hypothesis.fix,
    )


def _first_line(message: str) -> str:
    return message.split("\n", 1)[0]


def _search_hypotheses(
    token: ParsedToken, creds: Credentials, method: str, headers: Sequence[tuple[str, str]], expected: str
) -> tuple[Hypothesis, str, str, dict[str, Any]] | None:
    if algorithm_named(token.algorithm) is not V4 or token.form == FORM_AUTHORIZATION or expected.count("\n") < 5:
        return None  # v4a signatures are randomised and header requests need the full request: nothing to vary
    from sigv4_proxy.signing import v4

    lines = expected.split("\n")
    signed_headers, payload_hash = lines[-2], lines[-1]
    base = _Inputs(
        method=lines[0],
        uri=lines[1],
        query=lines[2],
        host=next((v for k, v in headers if k.lower() == "host"), token.host),
        signed_headers=signed_headers,
        payload_hash=payload_hash,
        key_region=token.scope_region or "",
        key_service=token.scope_service or "",
    )
    scope = f"{token.scope_date}/{token.scope_region}/{token.scope_service}/aws4_request"
    for hypothesis in HYPOTHESES:
        if not hypothesis.applies(token):
            continue
        variant = hypothesis.change(base, token)
        if variant is None or variant == base:
            continue
        creq = variant.canonical_request()
        sts = V4.string_to_sign(token.amz_date or "", scope, creq)
        signature = v4.signature(
            v4.derive_signing_key(
                creds.secret_access_key, token.scope_date or "", variant.key_region, variant.key_service
            ),
            sts,
        )
        if signature == (token.signature or "").lower():
            params = {
                "variant_host": variant.host,
                "hostname": token.hostname.lower(),
                "port": token.port,
                "service": token.scope_service,
                "other_service": _other_service(token),
                "region": token.scope_region,
                "host_region": host_info(token.hostname).region if token.hostname else None,
            }
            return hypothesis, creq, sts, params
    return None
