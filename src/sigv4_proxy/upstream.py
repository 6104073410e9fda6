"""Signed upstream calls: what every door that signs (the MCP stdio proxy, the HTTP listener, ``request``,
``doctor``) shares, in one place.

- :func:`credential_provider`: the process's one credential source (environment keys read directly, else
  botocore's chain), wrapped by :class:`SecretRegisteringProvider` so every secret handed out is redacted from
  the logs;
- :func:`signer`: the ``SigV4Auth`` for a :class:`SigningTarget`; :func:`build_client`: the pooled, signing
  ``httpx.AsyncClient`` of the long-running doors;
- :func:`signing_context`: how requests are signed, for the diagnosis of a failure
  (:class:`sigv4_proxy.diagnose.SigningContext`); :class:`Destination` describes a one-off request's target
  the way a :class:`~sigv4_proxy.config.ProxyConfig` describes the proxy's;
- :func:`recover`: what happens before the one re-signed retry the retry policy allows after a 403
  (:data:`sigv4_proxy.retry.REFRESH_CREDENTIALS`, :data:`sigv4_proxy.retry.CORRECT_CLOCK`).

The re-signed retry is not done inside ``SigV4Auth``'s auth flow (``response = yield request``, as httpx's
``DigestAuth`` retries): the decision needs the diagnosis of the answer's body, the retry budget shared with
every other retry of the request, the replay-safety of the request and the caller's log lines, which live in
the callers' retry loops; the flow would also have to buffer the response to read its error.

Moved here: ``SecretRegisteringProvider``, ``credential_provider`` and ``build_client`` from ``mcp/runner.py``
(the HTTP listener imported them from there); the four ``SigningContext`` builds of ``mcp/runner.py``,
``http_listener.py``, ``cli/request.py`` and ``doctor.py``; the recoveries of ``Bridge.recover_signing`` and
``HttpListener._recover``, which now call :func:`recover`.

On the proxy's start-up path: the standard library and :mod:`sigv4_proxy.logs` only at module level; httpx, the
signer, botocore and the diagnosis are imported when first used.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from sigv4_proxy.logs import register_credentials

if TYPE_CHECKING:
    import logging
    from collections.abc import Mapping
    from datetime import datetime

    import httpx

    from sigv4_proxy.auth import SigV4Auth
    from sigv4_proxy.clock import SkewedClock
    from sigv4_proxy.config import ProxyConfig
    from sigv4_proxy.credentials import CredentialSource
    from sigv4_proxy.diagnose import SigningContext
    from sigv4_proxy.retry import Action
    from sigv4_proxy.signing.model import Credentials

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "MAX_CONNECTIONS",
    "Destination",
    "SecretRegisteringProvider",
    "SigningTarget",
    "build_client",
    "credential_provider",
    "recover",
    "signer",
    "signing_context",
]

DEFAULT_CONNECT_TIMEOUT = 30.0
MAX_CONNECTIONS = 512


class SecretRegisteringProvider:
    """Wraps the shared credential provider so every secret it hands out is redacted from the logs."""

    def __init__(self, provider: CredentialSource) -> None:
        self.provider = provider

    @property
    def method(self) -> str | None:
        return self.provider.method

    @property
    def profile(self) -> str | None:
        return self.provider.profile

    def get(self, now: datetime | None = None) -> Credentials:
        credentials = self.provider.get(now)
        register_credentials(credentials)
        return credentials

    def cached(self, now: datetime | None = None) -> Credentials | None:
        credentials = self.provider.cached(now)
        if credentials is not None:
            register_credentials(credentials)
        return credentials

    def force_refresh(self) -> Credentials:
        credentials = self.provider.force_refresh()
        register_credentials(credentials)
        return credentials


def credential_provider(config: ProxyConfig, environ: Mapping[str, str]) -> CredentialSource:
    """The process's one credential provider.

    Keys in the environment (and no ``--profile`` flag) are what botocore's chain would pick first; they
    are read directly, which saves importing botocore (~150 ms of every start-up). Everything else goes
    through botocore's chain. A profile that came from ``AWS_PROFILE`` is left to botocore to read, so the
    precedence is the AWS CLI's: environment keys over ``AWS_PROFILE``, ``--profile`` over both.
    """
    from sigv4_proxy.credentials import CredentialProvider, StaticCredentialProvider
    from sigv4_proxy.signing.model import Credentials

    profile_flag = config.profile if config.sources.get("profile") == "--profile" else None
    access_key = environ.get("AWS_ACCESS_KEY_ID", "").strip()
    secret_key = environ.get("AWS_SECRET_ACCESS_KEY", "").strip()
    if profile_flag is None and access_key and secret_key and not environ.get("AWS_CREDENTIAL_EXPIRATION"):
        token = (environ.get("AWS_SESSION_TOKEN") or environ.get("AWS_SECURITY_TOKEN") or "").strip() or None
        return StaticCredentialProvider(Credentials(access_key, secret_key, token), method="env")
    if profile_flag is None and not access_key and config.profile:
        # No keys in the environment for botocore to prefer: naming AWS_PROFILE's profile selects exactly what
        # botocore would, and lets the provider's messages name it (`aws sso login --profile P`).
        profile_flag = config.profile
    return CredentialProvider(profile=profile_flag)


def build_client(
    config: ProxyConfig, provider: CredentialSource, *, clock: SkewedClock | None = None
) -> httpx.AsyncClient:
    """The shared, pooled, signing httpx client (the stdio proxy's and the HTTP listener's)."""
    import httpx

    try:  # httpcore imports sniffio inside a function on every request: record its absence once
        import sniffio  # noqa: F401
    except ImportError:  # each failing attempt would search sys.path again (~0.1 ms, ~10 per request)
        sys.modules.setdefault("sniffio", None)  # type: ignore[arg-type]

    from sigv4_proxy import __version__

    auth = signer(config, provider, clock=clock)
    connect = min(config.timeout, DEFAULT_CONNECT_TIMEOUT) if config.timeout else DEFAULT_CONNECT_TIMEOUT
    return httpx.AsyncClient(
        auth=auth,
        timeout=httpx.Timeout(connect=connect, read=config.timeout, write=config.timeout, pool=None),
        limits=httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=64, keepalive_expiry=30),
        follow_redirects=False,
        headers={"User-Agent": f"sigv4-proxy/{__version__}"},
    )


class SigningTarget(Protocol):
    """Where requests go and how they are signed: a :class:`~sigv4_proxy.config.ProxyConfig`, or a
    :class:`Destination` for a one-off request."""

    @property
    def target_url(self) -> str: ...

    @property
    def signing_region(self) -> str | list[str]: ...

    @property
    def service(self) -> str: ...

    @property
    def sig_version(self) -> str: ...

    @property
    def profile(self) -> str | None: ...

    @property
    def transport(self) -> str: ...


@dataclass(frozen=True)
class Destination:
    """A one-off request's :class:`SigningTarget` (``request``, doctor's STS call)."""

    target_url: str
    signing_region: str | list[str]
    service: str
    sig_version: str = "v4"
    profile: str | None = None
    transport: str = "auto"


def signer(
    target: SigningTarget,
    provider: CredentialSource,
    *,
    clock: SkewedClock | None = None,
    unsigned_payload: bool = False,
) -> SigV4Auth:
    """The ``httpx.Auth`` that signs requests to `target` with `provider`'s credentials (`clock`: the signing
    time, corrected after a clock-skew answer)."""
    from sigv4_proxy.auth import SigV4Auth

    return SigV4Auth(
        provider,
        target.signing_region,
        target.service,
        algorithm=target.sig_version,
        clock=clock,
        unsigned_payload=unsigned_payload,
    )


def signing_context(
    target: SigningTarget,
    provider: CredentialSource | None = None,
    *,
    credentials: Credentials | None = None,
    request_url: str | None = None,
) -> SigningContext:
    """How requests to `target` are signed, for the diagnosis of a failed one.

    The key's masked id and whether a session token goes with it come from `credentials`, else from what
    `provider` holds without I/O (none when it holds nothing fresh, or without a provider). `request_url` is
    where the failed request went when that is not the target URL. The transport is known only when
    ``--transport`` names it; with ``auto`` the diagnosis goes by the URL.
    """
    from sigv4_proxy.diagnose import SigningContext

    if credentials is None and provider is not None:
        try:
            credentials = provider.cached()
        except Exception:  # a refresh that fails now is diagnosed by the request that needs it
            credentials = None
    return SigningContext(
        url=target.target_url,
        region=target.signing_region,
        service=target.service,
        algorithm=target.sig_version,
        access_key=credentials.masked_access_key if credentials is not None else None,
        has_session_token=bool(credentials.session_token) if credentials is not None else None,
        credential_method=provider.method if provider is not None else None,
        profile=target.profile,
        request_url=request_url,
        transport=None if target.transport == "auto" else target.transport,
    )


async def recover(
    action: Action,
    provider: CredentialSource | None,
    clock: SkewedClock | None,
    *,
    log: logging.Logger,
    date: str | None = None,
    received: datetime | None = None,
    aws_message: str | None = None,
) -> Exception | None:
    """Before the one re-signed retry after a 403: refresh the credentials (``refresh_credentials``: the server
    said the token expired) or adopt the server's clock (``correct_clock``: `date` is the answer's ``Date``
    header, `received` when it arrived, `aws_message` the server's words, which may carry its time). The clock
    is shared by every request the client signs, so one correction serves them all.

    Returns the exception when the refresh failed (an SSO session that ended: the message names the login
    command; the next request tries again, so the door keeps working after the login), else None: retry. The
    other actions need nothing before their retry.
    """
    from sigv4_proxy import retry

    if action == retry.REFRESH_CREDENTIALS:
        if provider is None:  # fixed credentials handed to the door: nothing can bring others
            from sigv4_proxy.errors import CredentialsError

            return CredentialsError("there is no credential provider to refresh the credentials from")
        try:
            refreshed = await asyncio.to_thread(provider.force_refresh)  # SSO/STS I/O: off the event loop
        except Exception as exc:
            return exc
        log.info("credentials refreshed after the server said the token expired (now %s)", refreshed.masked_access_key)
    elif action == retry.CORRECT_CLOCK and clock is not None:
        if clock.correct(date, received, aws_message=aws_message) is None:
            log.warning("clock skew reported, but the response tells no server time: retrying unchanged")
        else:
            log.warning("clock skew: %s", clock.describe())
    return None
