"""`sigv4-proxy pg`: any PostgreSQL client reaches Aurora DSQL or RDS with IAM authentication, no token code.

The public names load lazily (the CLI builds its parser without importing the door)::

    from sigv4_proxy.pgproxy import PgProxyConfig, Target, start_pg_proxy

    with start_pg_proxy(PgProxyConfig(targets=(Target("abc.dsql.us-east-1.on.aws"),), listen_port=0)) as proxy:
        print(proxy.dsn())
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "PgProxyConfig": "sigv4_proxy.pgproxy.config",
    "Target": "sigv4_proxy.pgproxy.config",
    "PgProxy": "sigv4_proxy.pgproxy.runner",
    "PgProxyStartError": "sigv4_proxy.pgproxy.runner",
    "start_pg_proxy": "sigv4_proxy.pgproxy.runner",
    "serve_forever": "sigv4_proxy.pgproxy.runner",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sigv4_proxy.pgproxy' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
