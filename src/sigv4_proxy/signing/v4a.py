"""SigV4a (AWS4-ECDSA-P256-SHA256): the key derivation from an AWS secret to a P-256 key, and ECDSA.

`cryptography` is imported lazily: only v4a users pay for it.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import TYPE_CHECKING

from sigv4_proxy.signing.keycache import KeyCache, fingerprint
from sigv4_proxy.signing.model import V4A

if TYPE_CHECKING:  # pragma: no cover
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey, EllipticCurvePublicKey

# Order of the P-256 group (FIPS 186-4, D.1.2.3).
P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551

# One derived key per access key id (SigV4a keys have no scope), checked against the secret's fingerprint: the
# cache never holds a secret, and a rotated secret replaces the key derived from the old one.
_key_cache: KeyCache[EllipticCurvePrivateKey] = KeyCache(max_entries=64)
_NO_SCOPE: tuple[str, ...] = ()


def derive_private_scalar(access_key_id: str, secret_access_key: str) -> int:
    """NIST SP 800-108 counter-mode KDF (HMAC-SHA256) as AWS specifies it for SigV4a.

    The candidate must be at most n-2 so that d = candidate + 1 lies in [1, n-1]; otherwise the counter byte
    in the context is incremented and the derivation repeated.
    """
    input_key = ("AWS4A" + secret_access_key).encode("utf-8")
    label = V4A.encode("ascii")
    for counter in range(1, 255):
        context = access_key_id.encode("utf-8") + bytes([counter])
        fixed_input = (1).to_bytes(4, "big") + label + b"\x00" + context + (256).to_bytes(4, "big")
        candidate = int.from_bytes(hmac.new(input_key, fixed_input, hashlib.sha256).digest(), "big")
        if candidate <= P256_N - 2:
            return candidate + 1
    raise ValueError("SigV4a key derivation did not converge")  # probability ~2^-8000; here for totality


def private_key(access_key_id: str, secret_access_key: str) -> EllipticCurvePrivateKey:
    """The derived key, cached per access key (deriving and building the key costs far more than signing; the
    fingerprint checked on each call costs well under 1% of an ECDSA signature)."""
    secret_fingerprint = fingerprint(secret_access_key)
    key = _key_cache.get(access_key_id, secret_fingerprint, _NO_SCOPE)
    if key is not None:
        return key
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.derive_private_key(derive_private_scalar(access_key_id, secret_access_key), ec.SECP256R1())
    _key_cache.put(access_key_id, secret_fingerprint, _NO_SCOPE, key)
    return key


def public_key_xy(access_key_id: str, secret_access_key: str) -> tuple[str, str]:
    """The derived public key as hex X and Y (the test suite's `public-key.json` form)."""
    numbers = private_key(access_key_id, secret_access_key).public_key().public_numbers()
    return f"{numbers.x:064x}", f"{numbers.y:064x}"


def sign_string(access_key_id: str, secret_access_key: str, text: str) -> str:
    """ECDSA-P256-SHA256 over the string to sign; DER signature as hex (randomised, so never compare bytes)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    key = private_key(access_key_id, secret_access_key)
    return key.sign(text.encode("utf-8"), ec.ECDSA(hashes.SHA256())).hex()


def verify_signature(public_key: EllipticCurvePublicKey, text: str, signature_hex: str) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        public_key.verify(bytes.fromhex(signature_hex), text.encode("utf-8"), ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        return False
    return True


def public_key_from_xy(x_hex: str, y_hex: str) -> EllipticCurvePublicKey:
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.EllipticCurvePublicNumbers(int(x_hex, 16), int(y_hex, 16), ec.SECP256R1()).public_key()
