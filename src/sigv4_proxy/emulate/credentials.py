"""Which credentials an emulator accepts, and fresh throwaway ones to accept (sans-IO, thread-safe).

The store answers the core's ``credentials_for(access_key_id)`` question for `verify()`, and knows when a
credential has expired on the emulator's clock (``Credentials.expiry``), so that the front can answer the way
AWS does for an expired session token: 403 ``ExpiredTokenException`` "The security token included in the
request is expired".
"""

from __future__ import annotations

import dataclasses
import secrets
import threading
from collections.abc import Callable, Iterable
from datetime import datetime

from sigv4_proxy.signing.model import Credentials

_KEY_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"  # the characters real access key ids use
_SECRET_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

CredentialsResolver = Callable[[str], "Credentials | None"]


def generate_credentials(*, session_token: bool = False, expiry: datetime | None = None) -> Credentials:
    """Random credentials shaped like real ones: ``AKIA`` + 16 characters (``ASIA`` when a session token is
    included, as for temporary credentials), a 40-character secret and, optionally, a session token.

    They unlock nothing but an emulator that was told to accept them.
    """
    prefix = "ASIA" if session_token else "AKIA"
    access_key_id = prefix + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(16))
    secret = "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(40))
    token = "IQoJb3JpZ2luX2VjE" + secrets.token_urlsafe(96) if session_token else None
    return Credentials(access_key_id, secret, token, expiry)


def credentials_environment(credentials: Credentials) -> dict[str, str]:
    """The AWS SDKs' environment variables for `credentials` (``AWS_SESSION_TOKEN`` only when there is one):
    how `sigv4-proxy`, or any client, is given an emulator's credentials."""
    env = {"AWS_ACCESS_KEY_ID": credentials.access_key_id, "AWS_SECRET_ACCESS_KEY": credentials.secret_access_key}
    if credentials.session_token:
        env["AWS_SESSION_TOKEN"] = credentials.session_token
    return env


class AcceptedCredentials:
    """The set of credentials an emulator accepts, keyed by access key id.

    ``lookup`` is what `verify()` calls. An optional ``resolver`` is asked about access key ids the store does
    not hold (for tests whose credential source mints keys the emulator cannot know in advance).
    """

    def __init__(self, credentials: Iterable[Credentials] = (), resolver: CredentialsResolver | None = None):
        self._lock = threading.Lock()
        self._by_key: dict[str, Credentials] = {}
        self._resolver = resolver
        for creds in credentials:
            self.accept(creds)

    def lookup(self, access_key_id: str) -> Credentials | None:
        with self._lock:
            creds = self._by_key.get(access_key_id)
            resolver = self._resolver
        if creds is None and resolver is not None:
            creds = resolver(access_key_id)
        return creds

    def accept(self, credentials: Credentials) -> None:
        """Accept these credentials (replacing any with the same access key id) until ``credentials.expiry``."""
        with self._lock:
            self._by_key[credentials.access_key_id] = credentials

    def accept_only(self, credentials: Iterable[Credentials]) -> None:
        """Accept exactly these credentials; every other access key becomes unknown."""
        new = {creds.access_key_id: creds for creds in credentials}
        with self._lock:
            self._by_key = new

    def revoke(self, access_key_id: str) -> None:
        """Forget one access key: requests signed with it get ``UnrecognizedClientException``."""
        with self._lock:
            self._by_key.pop(access_key_id, None)

    def expire(self, access_key_id: str, at: datetime) -> None:
        """Make a known access key expire at ``at`` (emulator time): after that, ``ExpiredTokenException``."""
        with self._lock:
            creds = self._by_key.get(access_key_id)
            if creds is None:
                raise KeyError(f"unknown access key {access_key_id[:4]}****")
            self._by_key[access_key_id] = dataclasses.replace(creds, expiry=at)

    def set_resolver(self, resolver: CredentialsResolver | None) -> None:
        with self._lock:
            self._resolver = resolver

    def all(self) -> list[Credentials]:
        with self._lock:
            return list(self._by_key.values())

    def is_expired(self, access_key_id: str, now: datetime) -> bool:
        creds = self.lookup(access_key_id)
        return creds is not None and creds.expiry is not None and creds.expiry <= now
