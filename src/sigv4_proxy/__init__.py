"""sigv4-proxy: AWS SigV4/SigV4a signing that just works, and says exactly why a signature fails.

The public API is small and stable; everything else lives in private modules. Names are imported lazily
so that ``import sigv4_proxy`` stays cheap (an MCP client starts us on every session).

    from sigv4_proxy import Credentials, sign, presign, verify
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sigv4_proxy._lazy import lazy_exports

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "Credentials": "sigv4_proxy.signing.model",
    "SignedRequest": "sigv4_proxy.signing.model",
    "PresignedURL": "sigv4_proxy.signing.model",
    "sign": "sigv4_proxy.signing.api",
    "presign": "sigv4_proxy.signing.api",
    "verify": "sigv4_proxy.signing.verify",
    "VerifyResult": "sigv4_proxy.signing.verify",
    "SigningError": "sigv4_proxy.errors",
    "CredentialsError": "sigv4_proxy.errors",
    "ConfigError": "sigv4_proxy.errors",
    "CredentialProvider": "sigv4_proxy.credentials",
    "StaticCredentialProvider": "sigv4_proxy.credentials",
    "mask_access_key": "sigv4_proxy.credentials",
    "SigV4Auth": "sigv4_proxy.auth",
    "dsql_token": "sigv4_proxy.tokens",
    "rds_token": "sigv4_proxy.tokens",
}

__all__ = [
    "ConfigError",
    "CredentialProvider",
    "Credentials",
    "CredentialsError",
    "PresignedURL",
    "SigV4Auth",
    "SignedRequest",
    "SigningError",
    "StaticCredentialProvider",
    "VerifyResult",
    "dsql_token",
    "mask_access_key",
    "presign",
    "rds_token",
    "sign",
    "verify",
]

if TYPE_CHECKING:  # pragma: no cover
    from sigv4_proxy.auth import SigV4Auth
    from sigv4_proxy.credentials import CredentialProvider, StaticCredentialProvider, mask_access_key
    from sigv4_proxy.errors import ConfigError, CredentialsError, SigningError
    from sigv4_proxy.signing.api import presign, sign
    from sigv4_proxy.signing.model import Credentials, PresignedURL, SignedRequest
    from sigv4_proxy.signing.verify import VerifyResult, verify
    from sigv4_proxy.tokens import dsql_token, rds_token


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
