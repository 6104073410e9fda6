"""Keep a token's secrets out of everything ``inspect`` prints: pattern redaction of canonical requests
(:func:`redact`), then the token's own secret values wherever they appear (:func:`scrub`)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from typing import Any

from sigv4_proxy.redact import redact as redact_secrets
from sigv4_proxy.terminal import printable
from sigv4_proxy.tokens import ParsedToken

# Any parameter or header that carries a session token or a signature, however (mis)spelled.
_TOKEN_IN_QUERY = re.compile(r"(?i)(security-?token=)([^&\s'\"|]*)")
_TOKEN_HEADER = re.compile(r"(?im)^([^:\n]*security-?token:)(.*)$")


def is_sensitive(name: str) -> bool:
    """Parameter names whose values are never shown: session tokens and signatures, however spelled."""
    lowered = name.lower().replace("_", "-")
    return "security-token" in lowered or "securitytoken" in lowered or "signature" in lowered


def redact(text: str | None) -> str | None:
    """Make a canonical request safe to print: the session token becomes its length and a short hash (two
    encodings of the same token still show as different); then :func:`sigv4_proxy.redact.redact` masks the
    rest (signature-looking values, the access key in X-Amz-Credential shown as AKIA****MPLE, ...)."""
    if text is None:
        return None

    def describe(match: re.Match[str]) -> str:
        value = match.group(2)
        digest = hashlib.sha256(value.encode()).hexdigest()[:8]
        return f"{match.group(1)}<session token: {len(value)} chars, sha256 {digest}>"

    return redact_secrets(_TOKEN_HEADER.sub(describe, _TOKEN_IN_QUERY.sub(describe, text)))


def secrets_of(*tokens: ParsedToken) -> set[str]:
    """The secret values a token carries, raw and decoded: its session token, its signature, and any value of
    a parameter named like one."""
    found: set[str] = set()
    for token in tokens:
        for value in (token.session_token, token.signature):
            if value:
                found.add(value)
        for param in token.params:
            if is_sensitive(param.name):
                found.update({param.raw_value, param.value})
    return {value for value in found if len(value) >= 8}


def as_printed(secrets: Iterable[str]) -> set[str]:
    """The secrets in every form the text renderers can print them: raw, and with control characters
    escaped by :func:`~sigv4_proxy.terminal.printable` (a mangled token can carry them)."""
    return {form for secret in secrets for form in (secret, printable(secret))}


def scrub(text: str, secrets: Iterable[str]) -> str:
    """Everything printed goes through here: pattern redaction, then the known secret values themselves
    (a mangled token can put them anywhere, e.g. inside another parameter's value)."""
    text = redact(text) or ""
    for secret in sorted(secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, "****")
    return text


def scrub_tree(value: Any, secrets: Iterable[str]) -> Any:
    """:func:`scrub` every string of a JSON-ready structure."""
    secrets = list(secrets)
    if isinstance(value, str):
        return scrub(value, secrets)
    if isinstance(value, dict):
        return {key: scrub_tree(item, secrets) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [scrub_tree(item, secrets) for item in value]
    return value


def scrub_document(document: dict[str, Any], secrets: Iterable[str]) -> dict[str, Any]:
    """:func:`scrub_tree` of a JSON object (the ``to_dict()`` of a report, a comparison, a verification)."""
    scrubbed: dict[str, Any] = scrub_tree(document, secrets)
    return scrubbed
