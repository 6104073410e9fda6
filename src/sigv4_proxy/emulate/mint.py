"""Short-lived credentials that a test's credential source and an emulator agree on without talking.

A :class:`CredentialMint` derives everything from a shared master secret: the access key id carries the
expiry time, the secret key and session token are HMACs of the key id. So a ``credential_process`` (a
separate process, started by botocore inside the proxy) can mint fresh credentials every few seconds, and the
emulator, given ``mint.resolve`` as its credentials resolver, accepts each of them until it expires and then
answers ``ExpiredTokenException`` — the "SSO credentials expire during a working day" case, compressed::

    mint = CredentialMint("test-master-secret", lifetime_seconds=5)
    emulator = start_mcp(credentials_resolver=mint.resolve)
    # ~/.aws/config:  credential_process = python -m sigv4_proxy.emulate.mint test-master-secret 5

Test material only: anyone with the master secret can mint credentials the emulator accepts.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import secrets
import sys
from collections.abc import Sequence
from datetime import datetime, timezone

from sigv4_proxy.signing.model import Credentials

_PREFIX = "ASIA"
_EXPIRY_BYTES = 5  # seconds since the epoch, 40 bits: good until the year 36812
_RANDOM_BYTES = 5


class CredentialMint:
    """Mints and recognises temporary credentials derived from ``master_secret``."""

    def __init__(self, master_secret: str, lifetime_seconds: float = 900.0) -> None:
        if lifetime_seconds <= 0:
            raise ValueError("lifetime_seconds must be positive")
        self._master = master_secret.encode()
        self.lifetime_seconds = lifetime_seconds

    def _derive(self, purpose: str, access_key_id: str, length: int) -> str:
        digest = hmac.new(self._master, f"{purpose}:{access_key_id}".encode(), hashlib.sha256).digest()
        return base64.b64encode(digest * 4).decode()[:length]

    def mint(self, now: datetime | None = None) -> Credentials:
        """Fresh credentials expiring ``lifetime_seconds`` from ``now`` (whole seconds, rounded up)."""
        moment = now or datetime.now(timezone.utc)
        expires = int(moment.timestamp() + self.lifetime_seconds + 0.999)
        raw = expires.to_bytes(_EXPIRY_BYTES, "big") + secrets.token_bytes(_RANDOM_BYTES)
        access_key_id = _PREFIX + base64.b32encode(raw).decode()  # 10 bytes -> 16 characters, no padding
        return self.resolve(access_key_id) or _unreachable()

    def resolve(self, access_key_id: str) -> Credentials | None:
        """The credentials for a key this mint issued (expired ones included: the emulator says "expired"),
        None for any other key."""
        if not access_key_id.startswith(_PREFIX) or len(access_key_id) != len(_PREFIX) + 16:
            return None
        try:
            raw = base64.b32decode(access_key_id[len(_PREFIX) :])
        except ValueError:
            return None
        expiry = datetime.fromtimestamp(int.from_bytes(raw[:_EXPIRY_BYTES], "big"), timezone.utc)
        secret = self._derive("secret", access_key_id, 40)
        token = "IQoJb3JpZ2luX2VjE" + self._derive("token", access_key_id, 120)
        return Credentials(access_key_id, secret, token, expiry)

    def credential_process_output(self, now: datetime | None = None) -> str:
        """What a ``credential_process`` prints: the AWS CLI's JSON shape, version 1."""
        creds = self.mint(now)
        assert creds.expiry is not None
        return json.dumps(
            {
                "Version": 1,
                "AccessKeyId": creds.access_key_id,
                "SecretAccessKey": creds.secret_access_key,
                "SessionToken": creds.session_token,
                "Expiration": creds.expiry.strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        )


def _unreachable() -> Credentials:
    raise AssertionError("a freshly minted key must resolve")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m sigv4_proxy.emulate.mint MASTER [LIFETIME]``: print credentials for credential_process."""
    parser = argparse.ArgumentParser(
        prog="python -m sigv4_proxy.emulate.mint",
        description="Print short-lived test credentials (credential_process JSON) that an emulator started "
        "with CredentialMint(MASTER).resolve accepts until they expire.",
    )
    parser.add_argument("master_secret", help="the secret shared with the emulator's CredentialMint")
    parser.add_argument("lifetime", nargs="?", type=float, default=900.0, help="seconds until expiry (900)")
    args = parser.parse_args(argv)
    print(CredentialMint(args.master_secret, args.lifetime).credential_process_output())
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
