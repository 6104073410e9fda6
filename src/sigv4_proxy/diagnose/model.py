"""The diagnosis model: how the failed request was signed (:class:`SigningContext`) and the failure understood
(:class:`Diagnosis`), plus the header lookup every part of the diagnosis shares."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from sigv4_proxy.diagnose.kinds import Kind
from sigv4_proxy.diagnose.patterns import lazy_re
from sigv4_proxy.endpoints import host_port

if TYPE_CHECKING:
    from sigv4_proxy.retry import RecoveryAction

Headers = Mapping[str, str] | Iterable[tuple[str, str]]

# Only this much of an error body is read for diagnosis; error bodies are small, HTML pages are not.
MAX_DIAGNOSED_BODY = 64 * 1024
_MAX_MESSAGE_CHARS = 600
# The hints of transient failures say what a retrying caller did; Diagnosis.with_attempts makes it exact.
_RETRY_CLAIM = lazy_re(r"retried with (a longer )?backoff")


def header_value(headers: Headers, name: str) -> str | None:
    """Case-insensitive lookup in a mapping or a list of pairs (first occurrence)."""
    lowered = name.lower()
    items = headers.items() if isinstance(headers, Mapping) else headers
    for key, value in items:
        if key.lower() == lowered:
            return value
    return None


@dataclass(frozen=True)
class SigningContext:
    """How the failed request was signed, for comparing against what the server and the host imply.

    `access_key` is the masked key (``AKIA****MPLE``); its prefix tells long-term (AKIA) from temporary (ASIA)
    keys. `credential_method` is botocore's source name (env, sso, assume-role, shared-credentials-file, ...).
    `profile` names the profile for fixes like ``aws sso login --profile P``.

    `url` is the target URL (``--target-url``). `request_url` is the URL the failed request actually went to when
    that is another one (the HTTP listener forwards other paths of the origin; the legacy transport posts to
    the URL its event stream named); None means `url`. `transport` is ``"sse"`` when the request went over the
    legacy HTTP+SSE transport, ``"streamable-http"`` for Streamable HTTP, None when the caller does not know.
    """

    url: str
    region: str | list[str]
    service: str
    algorithm: str = "v4"
    access_key: str | None = None
    has_session_token: bool | None = None
    credential_method: str | None = None
    profile: str | None = None
    request_url: str | None = None
    transport: str | None = None

    @property
    def requested_path(self) -> str:
        """The path the failed request went to."""
        return urlsplit(self.request_url or self.url).path or "/"

    @property
    def host(self) -> str:
        return (urlsplit(self.url).hostname or "").lower()

    @property
    def host_port(self) -> str:
        parts = urlsplit(self.url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        host = parts.hostname or "?"
        return host_port(host, port)


@dataclass(frozen=True)
class Diagnosis:
    """One failure, understood.

    `status`/`error_type`/`aws_message` are what the server said (message: first paragraph, one line,
    redacted); `details` holds the rest (for a signature mismatch: the canonical request and string to sign
    the server expected). `cause` describes a failure with no HTTP answer (``connection to h:443 refused``).
    `hint` is our diagnosis: the cause and the fix. `retryable` means the same request may succeed later
    unchanged (whether it is *safe* to resend is the retry policy's call).
    """

    status: int | None
    error_type: str | None
    aws_message: str | None
    hint: str | None
    kind: Kind
    retryable: bool
    details: str | None = None
    cause: str | None = None

    @property
    def recovery(self) -> RecoveryAction | None:
        """:data:`~sigv4_proxy.retry.REFRESH_CREDENTIALS` or :data:`~sigv4_proxy.retry.CORRECT_CLOCK` when one
        re-signed retry after that may succeed (the retry policy's own vocabulary, and its table)."""
        from sigv4_proxy.retry import RECOVERIES  # the policy imports this module: a module-level import would cycle

        return RECOVERIES.get(self.kind)

    def with_attempts(self, attempts: int) -> Diagnosis:
        """This diagnosis with its "retried with backoff" claim made true for a caller that tried `attempts`
        times: "tried 3 times with backoff", or "not retried". Unchanged (the same object) when the hint makes
        no such claim."""
        match = _RETRY_CLAIM.search(self.hint) if self.hint else None
        if match is None or self.hint is None:
            return self
        said = "not retried" if attempts <= 1 else f"tried {attempts} times with {match.group(1) or ''}backoff"
        return replace(self, hint=self.hint[: match.start()] + said + self.hint[match.end() :])

    def final_message(self, attempts: int = 1, reason: str = "") -> str:
        """The one line a caller that gave up shows: :meth:`message` made true for `attempts` attempts, plus
        the retry policy's last word (`reason`, e.g. "the server asked to retry after 5 min") unless the
        message already says it."""
        adjusted = self.with_attempts(attempts)
        message = adjusted.message()
        if reason.startswith("gave up after"):
            if attempts == 1:
                reason = "--retries is 0"
            elif adjusted is not self:
                reason = ""  # the hint now says how often it was tried
        if reason and "not resent" in reason and "not resent" in message:
            reason = ""
        return f"{message} ({reason})" if reason else message

    def message(self) -> str:
        """One line: HTTP status, AWS error type, AWS message, then our diagnosis with the fix."""
        if self.status is not None:
            head = f"HTTP {self.status}"
            if self.error_type:
                head += f" {self.error_type}"
            if self.aws_message:
                head += f": {_clip(self.aws_message)}"
        else:
            head = self.cause or "request failed"
        if not self.hint:
            return head
        return f"{_end_sentence(head)} Diagnosis: {self.hint}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (the HTTP listener's error body, ``--json`` outputs)."""
        return {
            "message": self.message(),
            "status": self.status,
            "error_type": self.error_type,
            "aws_message": self.aws_message,
            "diagnosis": self.hint,
            "kind": self.kind,
            "retryable": self.retryable,
            "details": self.details,
            "cause": self.cause,
        }


def _clip(text: str, limit: int = _MAX_MESSAGE_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _end_sentence(text: str) -> str:
    return text if text.endswith((".", "!", "?", "…")) else text + "."
