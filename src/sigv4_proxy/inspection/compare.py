"""Compare two tokens field by field (parameter order ignored) and name the difference that explains why their
signatures differ: :func:`compare_tokens`."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sigv4_proxy.inspection.redaction import is_sensitive, scrub_document, secrets_of
from sigv4_proxy.redact import mask_signature
from sigv4_proxy.signing.amzdate import AUTH_QUERY_PARAMS
from sigv4_proxy.tokens import ParsedToken, QueryParam


@dataclass(frozen=True)
class FieldDiff:
    name: str
    left: str | None
    right: str | None
    signed: bool  # part of what the signature covers

    def to_dict(self) -> dict[str, Any]:
        return {"field": self.name, "left": self.left, "right": self.right, "signed": self.signed}


@dataclass(frozen=True)
class Comparison:
    left: ParsedToken
    right: ParsedToken
    diffs: tuple[FieldDiff, ...]
    same_signature: bool
    explanation: str
    order_differs: bool = False

    def to_dict(self) -> dict[str, Any]:
        document = {
            "same_signature": self.same_signature,
            "differences": [d.to_dict() for d in self.diffs],
            "parameter_order_differs": self.order_differs,
            "explanation": self.explanation,
        }
        return scrub_document(document, secrets_of(self.left, self.right))


def _token_digest(value: str | None) -> str | None:
    """Compare session tokens without showing them: length and a short hash."""
    if value is None:
        return None
    return f"present ({len(value)} chars, sha256 {hashlib.sha256(value.encode()).hexdigest()[:8]})"


# (field name, how to read it, is it signed?, why it changes the signature) in the order differences explain
# a mismatch: the first signed difference found is the explanation.
_COMPARED: tuple[tuple[str, Callable[[ParsedToken], str | None], bool, str], ...] = (
    (
        "access key",
        lambda t: t.masked_access_key,
        True,
        "different credentials: signatures from different keys never match",
    ),
    (
        "X-Amz-Date",
        lambda t: t.amz_date,
        True,
        "the tokens were signed at different times, so their signatures differ anyway; regenerate both with the "
        "same --timestamp to compare signers",
    ),
    ("scheme", lambda t: t.scheme, False, ""),
    (
        "host",
        lambda t: t.host or None,
        True,
        "the signed host differs: the host (with any port) is part of the canonical request",
    ),
    ("path", lambda t: t.path or None, True, "the path is part of the canonical request"),
    ("scope region", lambda t: t.scope_region, True, "the scope region goes into the string to sign and the key"),
    ("scope service", lambda t: t.scope_service, True, "the scope service goes into the string to sign and the key"),
    ("scope date", lambda t: t.scope_date, True, "the scope date goes into the string to sign and the key"),
    ("algorithm", lambda t: t.algorithm, True, "a different algorithm signs differently"),
    ("Action", lambda t: t.action, True, "Action is a signed query parameter"),
    ("DBUser", lambda t: t.db_user, True, "DBUser is a signed query parameter"),
    ("X-Amz-Expires", lambda t: t.expires, True, "X-Amz-Expires is a signed query parameter"),
    (
        "X-Amz-Security-Token",
        lambda t: _token_digest(t.session_token),
        True,
        "the session token is a signed query parameter (present in one token only, or a different token)",
    ),
    (
        "X-Amz-SignedHeaders",
        lambda t: ";".join(t.signed_headers) if t.signed_headers is not None else None,
        True,
        "the list of signed headers is part of the canonical request",
    ),
    ("scope terminator", lambda t: t.scope_terminator, True, "the terminator is part of the credential scope"),
    ("signature", lambda t: mask_signature(t.signature), False, ""),
)
# A token's own parameters, compared field by field above; any other is listed as an extra. (A token is SigV4:
# it has no X-Amz-Region-Set, so one would be an extra worth showing.)
_KNOWN_PARAMS = (AUTH_QUERY_PARAMS - {"X-Amz-Region-Set"}) | {"Action", "DBUser"}


def compare_tokens(left: ParsedToken, right: ParsedToken) -> Comparison:
    """Field-by-field differences (parameter order ignored) and the difference that explains the signatures."""
    diffs = [
        FieldDiff(name, read(left), read(right), signed)
        for name, read, signed, _ in _COMPARED
        if read(left) != read(right)
    ]
    diffs.extend(_other_param_diffs(left, right))
    diffs.extend(_encoding_diffs(left, right))
    same_signature = left.signature is not None and left.signature == right.signature
    order_differs = [p.name for p in left.params] != [p.name for p in right.params]
    return Comparison(left, right, tuple(diffs), same_signature, _explain(diffs, same_signature), order_differs)


def _other_param_diffs(left: ParsedToken, right: ParsedToken) -> Iterator[FieldDiff]:
    def extra(t: ParsedToken) -> dict[str, str]:
        return {p.name: p.value for p in t.params if p.name not in _KNOWN_PARAMS}

    a, b = extra(left), extra(right)
    for name in sorted(set(a) | set(b)):
        if a.get(name) != b.get(name):
            shown = _token_digest if is_sensitive(name) else (lambda value: value)
            yield FieldDiff(f"parameter {name}", shown(a.get(name)), shown(b.get(name)), True)


def _encoding_diffs(left: ParsedToken, right: ParsedToken) -> Iterator[FieldDiff]:
    """Same decoded value, different encoding: harmless to AWS (it re-encodes), fatal to a signer that signed
    the raw text."""
    raw_b = {p.name: p.raw_value for p in right.params}
    for param in left.params:
        other = raw_b.get(param.name)
        if other is not None and other != param.raw_value and QueryParam("", other).value == param.value:
            secret = is_sensitive(param.name)
            shown_left = "(encoded one way)" if secret else param.raw_value
            shown_right = "(encoded another way)" if secret else other
            yield FieldDiff(f"encoding of {param.name}", shown_left, shown_right, False)


def _explain(diffs: Sequence[FieldDiff], same_signature: bool) -> str:
    if same_signature:
        return "The signatures are identical: both tokens were signed over the same input with the same key."
    reasons = {name: reason for name, _, _, reason in _COMPARED}
    for diff in diffs:
        if diff.signed:
            reason = reasons.get(diff.name, f"{diff.name} is a signed query parameter")
            return f"The signatures differ because of {diff.name} ({diff.left} vs {diff.right}): {reason}."
    if any(d.name.startswith("encoding of") for d in diffs):
        return (
            "The signed values are equal but encoded differently; AWS decodes and re-encodes them the canonical "
            "way, so the signer that signed its own (non-canonical) encoding produced the wrong signature."
        )
    return (
        "Every signed field is equal, yet the signatures differ: the secret keys differ, or one signer builds "
        "the canonical request differently (host with port, query order or encoding, payload hash). Run "
        "--verify on each token to see which one is right and what the other signed."
    )
