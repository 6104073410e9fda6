"""Tokens for the DSQL helpers: one shared refreshing credential provider per profile for the process, a fresh
token for every physical connection, and the diagnosis of a token the server refused.

Signing and the diagnosis are `sigv4-proxy pg`'s (:class:`sigv4_proxy.pgproxy.tokens.TokenMinter`,
:func:`sigv4_proxy.pgproxy.tokens.diagnose`): one way to make a DSQL token and to explain its refusal.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sigv4_proxy.clock import utc_now
from sigv4_proxy.dsql._params import ConnectSpec, Environment, HelperOptions, resolve
from sigv4_proxy.pgproxy.tokens import TokenMinter, diagnose

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Mapping

    from sigv4_proxy.credentials import CredentialProvider, CredentialSource

# The attribute a refused login's exception carries: the diagnosis lines (never the token).
DIAGNOSIS_ATTRIBUTE = "sigv4_proxy_diagnosis"
_CLOCK_WORDS = ("signature expired", "not yet current")
_REFUSAL_WORDS = ("access denied", "authentication")
# asyncpg's refused logins: connection failure (DSQL's, per some clients), invalid authorization, bad password.
REFUSED_LOGIN_SQLSTATES = frozenset({"08006", "28000", "28P01"})

_shared_providers: dict[str | None, CredentialProvider] = {}
_shared_lock = threading.Lock()


def shared_provider(profile: str | None) -> CredentialProvider:
    """The process's one refreshing provider for ``profile`` (None: the default chain), made on first use."""
    from sigv4_proxy.credentials import CredentialProvider

    with _shared_lock:
        provider = _shared_providers.get(profile)
        if provider is None:
            provider = _shared_providers[profile] = CredentialProvider(profile)
        return provider


def environment() -> Environment:
    """This process's environment variables, its profile regions and the system CA bundle."""
    return Environment(variables=dict(os.environ), profile_region=_profile_region, system_ca_file=_system_ca_file)


def _profile_region(profile: str | None) -> str | None:
    try:
        import botocore.session

        region = botocore.session.Session(profile=profile).get_config_variable("region")
    except Exception:  # a missing profile: the credentials lookup reports it with its fix
        return None
    return region if isinstance(region, str) and region else None


def _system_ca_file() -> str | None:
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile):
        if candidate and os.path.isfile(candidate):
            return candidate
    return None


class ConnectionTokens:
    """What one helper call connects with: the resolved parameters and a minter; :meth:`mint` signs a new token
    (each physical connection gets its own)."""

    def __init__(self, spec: ConnectSpec, credentials: CredentialSource | None) -> None:
        self.spec = spec
        source = credentials if credentials is not None else shared_provider(spec.profile)
        self.minter = TokenMinter(source, expires_in=spec.expires_in)

    @classmethod
    def resolve(
        cls,
        hostname: str | None,
        options: HelperOptions,
        params: Mapping[str, Any],
        *,
        credentials: CredentialSource | None,
        driver: str,
        load_credentials: bool = True,
    ) -> ConnectionTokens:
        """Resolve the parameters (:class:`sigv4_proxy.errors.ConfigError` on a problem); for IAM authentication,
        and unless told not to (asyncio callers load them off the loop), load the credentials now: a
        :class:`sigv4_proxy.errors.CredentialsError` comes before any dial."""
        from sigv4_proxy import __version__

        spec = resolve(hostname, options, params, environment(), application_name=f"sigv4-proxy/{__version__} {driver}")
        tokens = cls(spec, credentials)
        if load_credentials and spec.target is not None:
            tokens.minter.credentials()
        return tokens

    def mint(self) -> str | None:
        """A new token (may refresh the credentials: blocking I/O); None when IAM authentication is off."""
        if self.spec.target is None:
            return None
        return self.minter.mint(self.spec.target, self.spec.user, self.minter.credentials())

    async def mint_async(self) -> str | None:
        """:meth:`mint` without blocking the event loop: a refresh runs in a thread."""
        if self.spec.target is None:
            return None
        credentials = self.minter.credentials_now()
        if credentials is None:
            credentials = await asyncio.to_thread(self.minter.credentials)
        return self.minter.mint(self.spec.target, self.spec.user, credentials)


def split_helper_keywords(kwargs: dict[str, Any]) -> tuple[HelperOptions, CredentialSource | None]:
    """Take the helpers' own keywords out of ``kwargs`` (what a pool hands a connection class); the rest are the
    driver's."""
    credentials = kwargs.pop("credentials", None)
    dbname, database = kwargs.pop("dbname", None), kwargs.pop("database", None)
    options = HelperOptions(
        user=kwargs.pop("user", None),
        dbname=dbname or database,
        region=kwargs.pop("region", None),
        profile=kwargs.pop("profile", None),
        expires_in=kwargs.pop("expires_in", None),
        cluster_id=kwargs.pop("cluster_id", None),
        iam_auth=bool(kwargs.pop("iam_auth", True)),
    )
    return options, credentials


def helper_keywords(options: HelperOptions, credentials: CredentialSource | None) -> dict[str, Any]:
    """The inverse of :func:`split_helper_keywords`: keywords for a connection class (None values left out)."""
    values: dict[str, Any] = {
        "user": options.user,
        "dbname": options.dbname,
        "region": options.region,
        "profile": options.profile,
        "expires_in": options.expires_in,
        "cluster_id": options.cluster_id,
        "credentials": credentials,
    }
    keywords = {key: value for key, value in values.items() if value is not None}
    if not options.iam_auth:
        keywords["iam_auth"] = False
    return keywords


# ------------------------------------------------------------------------------------------- diagnosis


def is_refused_login(exc: BaseException) -> bool:
    """A server's refusal of the login (not a network failure): libpq drops the SQLSTATE of failed logins, so
    psycopg's is read from the text; asyncpg's from its SQLSTATE."""
    sqlstate = getattr(exc, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate in REFUSED_LOGIN_SQLSTATES:
        return True
    text = str(exc).lower()
    return any(word in text for word in _REFUSAL_WORDS)


def attach_diagnosis(exc: BaseException, token: str, user: str, *, now: Callable[[], Any] = utc_now) -> None:
    """Attach to ``exc`` what the inspect checks say about the token sent (as :data:`DIAGNOSIS_ATTRIBUTE` and, on
    Python >= 3.11, as a note). The token itself never goes into the exception."""
    server_text = f"{exc} {_hint(exc)}".lower()
    lines = tuple(
        diagnose(token, user=user, now=now(), clock_suspect=any(word in server_text for word in _CLOCK_WORDS))
    )
    setattr(exc, DIAGNOSIS_ATTRIBUTE, lines)
    if hasattr(exc, "add_note"):
        exc.add_note("diagnosis of the token sent (sigv4-proxy):\n" + "\n".join(f"  - {line}" for line in lines))


def _hint(exc: BaseException) -> str:
    hint = getattr(exc, "hint", None)  # asyncpg
    diag = getattr(exc, "diag", None)  # psycopg
    if not isinstance(hint, str) and diag is not None:
        hint = getattr(diag, "message_hint", None)
    return hint if isinstance(hint, str) else ""


def diagnosis_of(exc: BaseException) -> tuple[str, ...]:
    """The diagnosis a helper attached to a refused login's exception (also through SQLAlchemy's wrapper and
    explicit causes); ``()`` when there is none."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        lines = getattr(current, DIAGNOSIS_ATTRIBUTE, None)
        if isinstance(lines, tuple):
            return lines
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else current.__cause__
    return ()
