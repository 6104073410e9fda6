"""One home for masking secrets: what every log line, error message, diagnosis and printed request goes through.

Shape-based: :func:`redact` masks every value that *looks* like a secret in free text, whoever wrote it (an
upstream error body echoing our Authorization header, a canonical request, an STS/IMDS/SSO credentials
document, a presigned URL, a DSQL/RDS auth token). The exact secrets known at run time (the credentials in
use) are masked on top of this by :class:`sigv4_proxy.logs.SecretRegistry`, which calls :func:`redact`.

What is masked (``****`` replaces the value; the table in ``tests/core/test_redact.py`` is the reference and
docs/security.md lists it):

* SigV4/SigV4a signatures: ``Signature=<hex>``, ``X-Amz-Signature=<hex>``, ``"signature": "<hex>"``;
* session tokens: ``X-Amz-Security-Token`` (header, query, canonical-request line, however spelled:
  ``SecurityToken``, ``security-token``), ``token=`` / ``session_token =`` settings with a long value;
* secret access keys spelled out as settings (``aws_secret_access_key = ...``, ``SECRET_ACCESS_KEY=...``);
* JSON/dict fields of credentials documents (STS, IMDS, ECS container credentials, SSO):
  ``"SessionToken"``, ``"sessionToken"``, ``"Token"``, ``"SecretAccessKey"``, ``"secretAccessKey"``, ... are
  masked; ``"AccessKeyId"`` / ``"accessKeyId"`` values are shown as :func:`mask_access_key` does;
* XML elements ``<Signature>``, ``<SignatureProvided>``, ``<SecurityToken>``, ``<X-Amz-Security-Token>``,
  ``<SessionToken>``, ``<SecretAccessKey>``, ``<Token>``;
* ``Bearer <token>``;
* IAM access key ids and unique ids of every documented prefix (:data:`ACCESS_KEY_PREFIXES`), and the key in
  ``Credential=<key>/...``: ``AKIAIOSFODNN7EXAMPLE`` -> ``AKIA****MPLE``;
* the credentials in a URL's userinfo: ``http://user:pass@host`` -> ``http://user:****@host``,
  ``http://token@host`` -> ``http://****@host`` (a user name alone is often a token).

Every function is idempotent (masking masked text changes nothing) and pure. Stdlib only, no I/O; the regexes
are compiled on first use, so importing this module (on the proxy's start-up path) costs nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache

__all__ = [
    "ACCESS_KEY_PREFIXES",
    "MASK",
    "display_url",
    "mask_access_key",
    "mask_signature",
    "mask_url_credentials",
    "redact",
    "redact_header",
]

MASK = "****"

# The documented IAM unique-id prefixes (IAM User Guide, "Understanding unique ID prefixes"): access keys
# (AKIA long-term, ASIA temporary) and the ids of users, roles, groups, policies, ... that error messages quote.
ACCESS_KEY_PREFIXES = (
    "ABIA",  # AWS STS service bearer token
    "ACCA",  # context-specific credential
    "AGPA",  # user group
    "AIDA",  # IAM user
    "AIPA",  # EC2 instance profile
    "AKIA",  # access key
    "ANPA",  # managed policy
    "ANVA",  # version in a managed policy
    "APKA",  # public key
    "AROA",  # role
    "ASCA",  # certificate
    "ASIA",  # temporary (AWS STS) access key
)

# Values that end a secret in free text: whitespace, quotes, separators of query strings, headers and lists.
_VALUE = r"[^\s\"'&,;<)}\]]+"


def mask_access_key(key: str) -> str:
    """``AKIAIOSFODNN7EXAMPLE`` -> ``AKIA****MPLE``: enough to tell keys apart, never enough to use one.

    Keys of 8 characters or fewer (test keys, not AWS ones) show nothing: their first and last four would be
    the whole key. Idempotent: a masked key is returned as it is.
    """
    if len(key) <= 8:
        return MASK
    return f"{key[:4]}{MASK}{key[-4:]}"


def mask_signature(signature: str | None) -> str | None:
    """Enough of a signature to tell two apart at a glance (``1a2b3c4d…(64 chars)``), never the whole value."""
    if signature is None:
        return None
    if len(signature) <= 12:
        return MASK
    return f"{signature[:8]}…({len(signature)} chars)"


def mask_url_credentials(url: str) -> str:
    """``http://user:pass@proxy:3128`` -> ``http://user:****@proxy:3128``; ``http://token@host`` -> ``http://****@host``."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    userinfo, at, host = parts.netloc.rpartition("@")
    if not at:
        return url
    return parts._replace(netloc=f"{_masked_userinfo(userinfo)}@{host}").geturl()


def display_url(url: str) -> str:
    """``scheme://host[:port]/path`` of ``url``: no userinfo, no query (it may be presigned), no fragment."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


# Headers whose whole value is a secret (the SigV4 Authorization header keeps its non-secret parts).
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"})


def redact_header(name: str, value: str) -> str:
    """A header value safe to print.

    A SigV4/SigV4a ``Authorization`` keeps its algorithm, scope and signed headers (the access key masked,
    the signature replaced); any other credential header shows ``****``; a session token shows its length
    (``**** (1024 chars)``: enough to spot a truncated one); other headers go through :func:`redact`.
    """
    lowered = name.lower()
    if lowered == "x-amz-security-token":
        return f"{MASK} ({len(value)} chars)"
    if lowered in _SECRET_HEADERS:
        return redact(value) if "Signature=" in value else MASK
    return redact(value)


def redact(text: str) -> str:
    """``text`` with every secret-shaped value masked (the list is in the module docstring)."""
    lowered = text.lower()
    for triggers, pattern, replacement in _rules():
        # A rule runs only when its keyword is in the text: most log lines carry none, and a substring test
        # costs a fraction of a regex scan. Masking never adds a keyword, so testing the input is enough.
        if not triggers or any(trigger in lowered for trigger in triggers):
            text = pattern.sub(replacement, text)
    return text


def _masked_userinfo(userinfo: str) -> str:
    user, colon, _ = userinfo.partition(":")
    return f"{user}:{MASK}" if colon else MASK


_Replacement = str | Callable[[re.Match[str]], str]
_Rule = tuple[tuple[str, ...], re.Pattern[str], _Replacement]  # (lower-case keywords, one needed; pattern; by)


@cache
def _rules() -> tuple[_Rule, ...]:
    """The patterns, compiled once on first use. Each keeps group 1 (the name) and masks what follows.

    Order matters only for readability of the output: the field-shaped rules run before the bare access-key
    rule, so ``"AccessKeyId": "AKIA..."`` is masked once, the same way.
    """
    prefixes = "|".join(ACCESS_KEY_PREFIXES)
    masked = r"\1" + MASK
    return (
        # JSON / Python-dict fields of credentials documents, any value length: "SessionToken": "...".
        (
            ("token", "secret"),
            re.compile(
                r"(?i)([\"'](?:aws_?)?(?:session_?token|token|secret_?access_?key|secret_?key)[\"']\s*:\s*[\"'])"
                r"(?:[^\"'\\]|\\.)+"
            ),
            masked,
        ),
        (
            ("key",),
            re.compile(r"(?i)([\"'](?:aws_?)?access_?key_?id[\"']\s*:\s*[\"'])([^\"'\\]+)"),
            lambda m: m.group(1) + mask_access_key(m.group(2)),
        ),
        # XML elements of error bodies and STS responses.
        (
            ("<",),
            re.compile(
                r"(?i)(<(?:SignatureProvided|Signature|X-Amz-Security-Token|SecurityToken|SessionToken"
                r"|SecretAccessKey|Token)>)[^<]*"
            ),
            masked,
        ),
        # Signature=<hex> (Authorization header), X-Amz-Signature=<hex> (query), "signature": "<hex>".
        (("signature",), re.compile(r"(?i)((?:x-amz-)?signature[\"']?\s*[=:]\s*[\"']?)[0-9a-f]{16,}"), masked),
        # Session tokens: header, query parameter, canonical-request line, however spelled.
        (("token",), re.compile(r"(?i)((?:x-amz-)?security-?token[\"']?\s*[=:]\s*[\"']?)" + _VALUE), masked),
        # Secret keys spelled out as settings: aws_secret_access_key = ..., SECRET_ACCESS_KEY=...
        (("secret",), re.compile(r"(?i)(secret[_-]?(?:access[_-]?)?key[\"']?\s*[=:]\s*[\"']?)" + _VALUE), masked),
        # token= / session_token = with a token-length value (short values are ordinary words).
        (
            ("token",),
            re.compile(r"(?i)((?:session[_-]?)?token[\"']?\s*[=:]\s*[\"']?)(?=[A-Za-z0-9/+=%]{40,})" + _VALUE),
            masked,
        ),
        (("bearer",), re.compile(r"(?i)(\bBearer\s+)[A-Za-z0-9._~+/=-]{8,}"), masked),
        # The access key of a Credential= element, whatever its prefix (test keys, emulators).
        (
            ("credential=",),
            re.compile(r"(?i)(credential=)([A-Z0-9]{12,})(?=%2F|/|&|,|\s|$)"),
            lambda m: m.group(1) + mask_access_key(m.group(2)),
        ),
        (
            (),  # upper case, no keyword: always scanned (one literal-prefixed pattern, fast)
            re.compile(rf"\b((?:{prefixes})[A-Z0-9]{{12,}})\b"),
            lambda m: mask_access_key(m.group(1)),
        ),
        # URL userinfo: scheme://user:pass@host, scheme://token@host.
        (
            ("@",),
            re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://)([^/\s?#\"'<>@]*(?:@[^/\s?#\"'<>@]*)*)@"),
            lambda m: f"{m.group(1)}{_masked_userinfo(m.group(2))}@",
        ),
    )
