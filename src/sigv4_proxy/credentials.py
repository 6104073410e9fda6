"""Credentials from botocore's chain: one session per process, refreshable credentials reused.

botocore is imported only when credentials are first needed. SSO, assume-role, `credential_process`, IMDS and
container credentials are botocore's `RefreshableCredentials`: we keep the one object botocore returns and ask it
for a frozen copy before each request, so it refreshes ahead of expiry without building a new session; the
:class:`Credentials` built from that copy is reused for as long as botocore hands out the same keys (the signer's
derived-key cache is keyed by it).

:class:`CredentialSource` is what every consumer (``SigV4Auth``, :mod:`sigv4_proxy.upstream`, the bridge, the
HTTP listener, ``doctor``) may rely on: :class:`CredentialProvider`, :class:`StaticCredentialProvider` and
:class:`sigv4_proxy.upstream.SecretRegisteringProvider` are the implementations.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

from sigv4_proxy.errors import CredentialsError
from sigv4_proxy.signing.model import Credentials

REFRESH_MARGIN = timedelta(minutes=5)
STILL_USABLE = timedelta(minutes=1)
_log = logging.getLogger("sigv4_proxy.credentials")
LOAD_FIX = "ensure AWS credentials are configured via environment variables, ~/.aws/credentials, or IAM role"


class CredentialSource(Protocol):
    """A process's credential provider, as every signed request uses it."""

    @property
    def method(self) -> str | None:
        """Where the credentials come from: botocore's names (env, sso, assume-role, ...), or ``static``."""
        ...

    @property
    def profile(self) -> str | None:
        """The profile named for fixes like ``aws sso login --profile P`` (None: the default chain)."""
        ...

    def get(self, now: datetime | None = None) -> Credentials:
        """Current credentials; may do I/O (SSO, STS, IMDS) to refresh them. Raises :class:`CredentialsError`."""
        ...

    def cached(self, now: datetime | None = None) -> Credentials | None:
        """Credentials without any I/O when in hand and not about to expire; else None."""
        ...

    def force_refresh(self) -> Credentials:
        """Refresh now (the server said the token expired). Raises :class:`CredentialsError`."""
        ...


def load_error(cause: str) -> CredentialsError:
    """The published start-up message: `failed to load AWS credentials: <cause> (<fix>)`."""
    return CredentialsError(f"failed to load AWS credentials: {cause} ({LOAD_FIX})")


def explain_botocore_error(exc: BaseException, profile: str | None) -> str:
    """A botocore credential failure -> the cause in words, with the command that fixes it where we know it."""
    name = type(exc).__name__
    text = str(exc)
    profile_arg = f" --profile {profile}" if profile else ""
    if name in {"UnauthorizedSSOTokenError", "SSOTokenLoadError", "TokenRetrievalError"} or "SSO" in text:
        return f"the AWS SSO session has expired or is not logged in: run `aws sso login{profile_arg}` ({text})"
    if name == "ProfileNotFound":
        return f"{text}; list profiles with `aws configure list-profiles` and pass one with --profile"
    if name == "NoCredentialsError":
        return "no credentials found in the environment, the shared files, SSO, or an IAM role"
    if name == "PartialCredentialsError":
        return f"{text}; both an access key id and a secret access key are needed"
    if "expired" in text.lower():
        return f"{text}; refresh them (for SSO: `aws sso login{profile_arg}`)"
    return f"{name}: {text}"


class CredentialProvider:
    """One provider per process, shared by every request. Thread-safe.

    `get()` returns current credentials, refreshing those that expire within five minutes; `force_refresh()`
    refreshes now (after a server said the token expired). Both raise :class:`CredentialsError` with the
    cause and the fix; the provider stays usable, so a later call succeeds once the user has fixed things
    (e.g. after `aws sso login`).
    """

    def __init__(self, profile: str | None = None, *, session: Any = None) -> None:
        self.profile = profile
        self._session = session
        self._botocore_credentials: Any = None
        self._last: Credentials | None = None
        # The last botocore frozen copy (with its expiry) and the Credentials built from it: one object per keys.
        self._built: tuple[tuple[str, str, str | None, datetime | None], Credentials] | None = None
        self._lock = threading.Lock()

    @property
    def method(self) -> str | None:
        """Where botocore found the credentials: env, shared-credentials-file, sso, assume-role, ..."""
        creds = self._botocore_credentials
        return getattr(creds, "method", None) if creds is not None else None

    def _new_session(self) -> Any:
        import botocore.session

        return botocore.session.Session(profile=self.profile)

    def _load(self) -> Any:
        try:
            if self._session is None:
                self._session = self._new_session()
            creds = self._session.get_credentials()
        except Exception as exc:  # botocore raises many types; each becomes one message
            raise load_error(explain_botocore_error(exc, self.profile)) from None
        if creds is None:
            raise load_error("no credentials found in the environment, the shared files, SSO, or an IAM role")
        return creds

    def _frozen(self, creds: Any) -> Credentials:
        try:
            frozen = creds.get_frozen_credentials()
        except Exception as exc:
            raise CredentialsError(
                f"failed to refresh AWS credentials: {explain_botocore_error(exc, self.profile)}"
            ) from None
        if not frozen.access_key or not frozen.secret_key:
            raise load_error("the credentials found are incomplete (an access key id and a secret are both needed)")
        expiry = getattr(creds, "_expiry_time", None)
        if isinstance(expiry, datetime) and expiry.tzinfo is None:
            expiry = expiry.replace(tzinfo=timezone.utc)
        if not isinstance(expiry, datetime):
            expiry = None
        key = (frozen.access_key, frozen.secret_key, frozen.token or None, expiry)
        built = self._built  # one read: cached() runs without the lock, and a tuple is replaced whole
        if built is not None and built[0] == key:
            return built[1]
        credentials = Credentials(*key)
        self._built = (key, credentials)
        return credentials

    def get(self, now: datetime | None = None) -> Credentials:
        """Current credentials. botocore's refreshable credentials renew themselves ahead of expiry (from 15
        minutes before, and mandatorily from 10 minutes before), which covers the 5-minute margin; asking it
        once per request is all it takes. If a renewal fails while the credentials in hand are still good for
        a minute, they are used (with a warning) rather than failing requests that would still succeed."""
        with self._lock:
            if self._botocore_credentials is None:
                self._botocore_credentials = self._load()
            try:
                credentials = self._frozen(self._botocore_credentials)
            except CredentialsError as exc:
                current = datetime.now(timezone.utc) if now is None else now
                last = self._last
                if last is None or last.expiry is None or last.expiry - current < STILL_USABLE:
                    raise
                _log.warning("%s; using the current credentials until they expire at %s", exc, _iso(last.expiry))
                return last
            self._last = credentials
            return credentials

    def cached(self, now: datetime | None = None) -> Credentials | None:
        """Credentials without any I/O when they are loaded and not about to expire; else None."""
        creds = self._botocore_credentials
        if creds is None or getattr(creds, "refresh_needed", lambda: False)():
            return None
        frozen = self._frozen(creds)
        return None if _expires_soon(frozen, now) else frozen

    def force_refresh(self) -> Credentials:
        with self._lock:
            if self._botocore_credentials is not None and hasattr(self._botocore_credentials, "_protected_refresh"):
                self._refresh_locked()
            else:  # static credentials: the user may have replaced them in the files or the environment
                self._session = None
                self._botocore_credentials = self._load()
            return self._frozen(self._botocore_credentials)

    def _refresh_locked(self) -> None:
        try:
            self._botocore_credentials._protected_refresh(is_mandatory=True)
        except Exception as exc:
            raise CredentialsError(
                f"failed to refresh AWS credentials: {explain_botocore_error(exc, self.profile)}"
            ) from None

    def describe(self) -> str:
        """Safe to log: masked key, source, expiry."""
        try:
            creds = self.get()
        except CredentialsError as exc:
            return f"credentials unavailable: {exc}"
        return describe_credentials(creds, self.method)


class StaticCredentialProvider:
    """The provider interface over fixed credentials, or over a function that returns the current ones
    (tests use that to rotate credentials)."""

    def __init__(self, credentials: Credentials | Callable[[], Credentials], method: str = "static") -> None:
        self._source = credentials
        self.method = method
        self.profile: str | None = None

    def get(self, now: datetime | None = None) -> Credentials:
        return self._source() if callable(self._source) else self._source

    def cached(self, now: datetime | None = None) -> Credentials | None:
        return self.get(now)

    def force_refresh(self) -> Credentials:
        return self.get()

    def describe(self) -> str:
        return describe_credentials(self.get(), self.method)


def credentials_refreshable(provider: CredentialSource) -> bool:
    """Whether ``provider.force_refresh()`` can bring other credentials than the ones the server refused.

    Not for keys read from this process's environment (botocore's ``env`` method, or ours): nothing changes
    the environment of a running process, so a "refresh" returns the same keys and a retry fails again.
    """
    return provider.method != "env"


def describe_credentials(credentials: Credentials, method: str | None) -> str:
    parts = [f"access key {credentials.masked_access_key}"]
    if method:
        parts.append(f"from {method}")
    if credentials.session_token:
        parts.append("with session token")
    if credentials.expiry:
        parts.append(f"expires {_iso(credentials.expiry)}")
    return ", ".join(parts)


def _iso(moment: datetime) -> str:
    return f"{moment.astimezone(timezone.utc):%Y-%m-%dT%H:%M:%SZ}"


def _expires_soon(credentials: Credentials, now: datetime | None) -> bool:
    if credentials.expiry is None:
        return False
    current = now or datetime.now(timezone.utc)
    return credentials.expiry - current <= REFRESH_MARGIN
