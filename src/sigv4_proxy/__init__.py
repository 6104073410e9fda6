"""sigv4-proxy: AWS SigV4/SigV4a signing that just works, and says exactly why a signature fails.

The public API is small and stable: the names in ``__all__``. The other modules are internal: importable
(the CLI and the tests use them), but free to change between releases. Names are imported lazily
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
    "mask_access_key": "sigv4_proxy.redact",
    "SigV4Auth": "sigv4_proxy.auth",
    "dsql_token": "sigv4_proxy.tokens",
    "rds_token": "sigv4_proxy.tokens",
}

# Derived, so the two cannot disagree; tests/core/test_exports.py checks the TYPE_CHECKING imports too.
__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # pragma: no cover
    # `X as X`: the explicit re-export form type checkers and linters read as public.
    from sigv4_proxy.auth import SigV4Auth as SigV4Auth
    from sigv4_proxy.credentials import CredentialProvider as CredentialProvider
    from sigv4_proxy.credentials import StaticCredentialProvider as StaticCredentialProvider
    from sigv4_proxy.errors import ConfigError as ConfigError
    from sigv4_proxy.errors import CredentialsError as CredentialsError
    from sigv4_proxy.errors import SigningError as SigningError
    from sigv4_proxy.redact import mask_access_key as mask_access_key
    from sigv4_proxy.signing.api import presign as presign
    from sigv4_proxy.signing.api import sign as sign
    from sigv4_proxy.signing.model import Credentials as Credentials
    from sigv4_proxy.signing.model import PresignedURL as PresignedURL
    from sigv4_proxy.signing.model import SignedRequest as SignedRequest
    from sigv4_proxy.signing.verify import VerifyResult as VerifyResult
    from sigv4_proxy.signing.verify import verify as verify
    from sigv4_proxy.tokens import dsql_token as dsql_token
    from sigv4_proxy.tokens import rds_token as rds_token


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
