"""Caches of keys derived from AWS secrets, found by access key id and scope, never by the secret itself.

A cache keyed by the raw secret keeps every secret it has seen alive (and visible in a heap dump) until evicted,
long after the credentials rotated. Here an entry is found by (access key id, *scope) and carries a fingerprint
of the secret it was derived from: a lookup with another secret's fingerprint is a miss, and storing a key for a
new secret first drops every entry of that access key id, so nothing derived from the old secret stays.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from threading import Lock
from typing import Generic, TypeVar

V = TypeVar("V")

# Keyed per process: a fingerprint seen outside this process (a heap dump, a log) cannot be used to test a
# guessed secret. Random bytes are not the clock or the environment: the core stays deterministic in its output.
_FINGERPRINT_KEY = os.urandom(32)
_FINGERPRINT = hashlib.blake2s(key=_FINGERPRINT_KEY, person=b"sigv4key")


def fingerprint(secret_access_key: str) -> bytes:
    """A keyed BLAKE2s digest of the secret: tells secrets apart without keeping one. Copying the keyed state
    is cheaper than keying a new hash (this runs once per Credentials object on the signing path)."""
    digest = _FINGERPRINT.copy()
    digest.update(secret_access_key.encode("utf-8", "surrogatepass"))
    return digest.digest()


# (access key id, *scope) -> (fingerprint of the secret, value)
Entry = tuple[bytes, V]


class KeyCache(Generic[V]):
    """Bounded (the oldest entry goes first). Reads take no lock (a dict lookup is atomic); writes take one.

    `find((access_key_id, *scope))` is the hot path: the dict's own `get`, so a hit costs no Python call. The
    caller must compare the entry's fingerprint with the secret's (`get` does): the dict is keyed without it.
    """

    def __init__(self, *, max_entries: int) -> None:
        self._max_entries = max_entries
        self._entries: dict[tuple[str, ...], Entry[V]] = {}
        self._fingerprints: dict[str, bytes] = {}  # access key id -> the secret its entries were derived from
        self._lock = Lock()
        self.find: Callable[[tuple[str, ...]], Entry[V] | None] = self._entries.get

    def get(self, access_key_id: str, secret_fingerprint: bytes, scope: tuple[str, ...]) -> V | None:
        """The value stored for this key id and scope, if it was derived from the secret with this fingerprint.

        `==`, not compare_digest: both fingerprints are of secrets the process holds (the caller's credentials,
        the server's own lookup), so the comparison's timing tells a client nothing it could use."""
        entry = self._entries.get((access_key_id, *scope))
        return entry[1] if entry is not None and entry[0] == secret_fingerprint else None

    def put(self, access_key_id: str, secret_fingerprint: bytes, scope: tuple[str, ...], value: V) -> None:
        with self._lock:
            if self._fingerprints.get(access_key_id) != secret_fingerprint:
                self._forget(access_key_id)  # a rotation (or a key id not seen for a while): start clean
                self._fingerprints[access_key_id] = secret_fingerprint
            # A name, not `entries[(id, *scope)]`: the AST cannot tell that from `entries[id, *scope]` (3.11+
            # syntax), so mypy rejects it for Python 3.10.
            key = (access_key_id, *scope)
            self._entries[key] = (secret_fingerprint, value)
            while len(self._entries) > self._max_entries:
                del self._entries[next(iter(self._entries))]
            while len(self._fingerprints) > self._max_entries:
                # A key id forgotten here only costs its entries a re-derivation at its next put.
                del self._fingerprints[next(iter(self._fingerprints))]

    def _forget(self, access_key_id: str) -> None:
        """Drop every entry of this access key id: O(entries), paid once per rotation or new key id."""
        for key in [key for key in self._entries if key[0] == access_key_id]:
            del self._entries[key]
        self._fingerprints.pop(access_key_id, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._fingerprints.clear()

    def entries(self) -> list[tuple[str, bytes, tuple[str, ...], V]]:
        """(access key id, secret fingerprint, scope, value) for every entry: for tests and diagnostics."""
        with self._lock:
            return [(key[0], fp, key[1:], value) for key, (fp, value) in self._entries.items()]
