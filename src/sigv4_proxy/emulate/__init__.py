"""Local IAM-verifying endpoints: `emulate mcp` and `emulate dsql` (and the library behind them) for tests,
benchmarks, `demo`, `doctor`, and users testing their own signers and applications.

    from sigv4_proxy.emulate import start_mcp, Match

    with start_mcp() as emulator:                 # loopback, free port, random credentials
        print(emulator.url, emulator.region, emulator.service, emulator.credentials)
        emulator.throttle_next(retry_after=1)     # fault injection, see McpEmulator
        ...
        for record in emulator.requests:          # method, path, masked scope, verdict (never signatures)
            print(record.line())

    with start_dsql() as dsql:                    # a local Aurora DSQL over an embedded PostgreSQL
        psycopg.connect(**dsql.libpq_params("admin"))

Names are imported lazily: `generate_credentials` does not load uvicorn or the `mcp` SDK.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sigv4_proxy._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "start_mcp": "sigv4_proxy.emulate.server",
    "McpEmulator": "sigv4_proxy.emulate.server",
    "EmulatorConfig": "sigv4_proxy.emulate.server",
    "serve_forever": "sigv4_proxy.emulate.server",
    "build_app": "sigv4_proxy.emulate.server",
    "generate_credentials": "sigv4_proxy.emulate.credentials",
    "CredentialMint": "sigv4_proxy.emulate.mint",
    "AcceptedCredentials": "sigv4_proxy.emulate.credentials",
    "Match": "sigv4_proxy.emulate.faults",
    "Respond": "sigv4_proxy.emulate.faults",
    "Drop": "sigv4_proxy.emulate.faults",
    "Delay": "sigv4_proxy.emulate.faults",
    "FaultPlan": "sigv4_proxy.emulate.faults",
    "RequestRecord": "sigv4_proxy.emulate.log",
    "ExecutionCounter": "sigv4_proxy.emulate.state",
    "EXPIRED_TOKEN_MESSAGE": "sigv4_proxy.emulate.front",
    "start_dsql": "sigv4_proxy.emulate.dsql.server",
    "DsqlEmulator": "sigv4_proxy.emulate.dsql.server",
    "DsqlEmulatorConfig": "sigv4_proxy.emulate.dsql.server",
}

# Derived, so the two cannot disagree; tests/core/test_exports.py checks the TYPE_CHECKING imports too.
__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # pragma: no cover
    # `X as X`: the explicit re-export form type checkers and linters read as public.
    from sigv4_proxy.emulate.credentials import AcceptedCredentials as AcceptedCredentials
    from sigv4_proxy.emulate.credentials import generate_credentials as generate_credentials
    from sigv4_proxy.emulate.dsql.server import DsqlEmulator as DsqlEmulator
    from sigv4_proxy.emulate.dsql.server import DsqlEmulatorConfig as DsqlEmulatorConfig
    from sigv4_proxy.emulate.dsql.server import start_dsql as start_dsql
    from sigv4_proxy.emulate.faults import Delay as Delay
    from sigv4_proxy.emulate.faults import Drop as Drop
    from sigv4_proxy.emulate.faults import FaultPlan as FaultPlan
    from sigv4_proxy.emulate.faults import Match as Match
    from sigv4_proxy.emulate.faults import Respond as Respond
    from sigv4_proxy.emulate.front import EXPIRED_TOKEN_MESSAGE as EXPIRED_TOKEN_MESSAGE
    from sigv4_proxy.emulate.log import RequestRecord as RequestRecord
    from sigv4_proxy.emulate.mint import CredentialMint as CredentialMint
    from sigv4_proxy.emulate.server import EmulatorConfig as EmulatorConfig
    from sigv4_proxy.emulate.server import McpEmulator as McpEmulator
    from sigv4_proxy.emulate.server import build_app as build_app
    from sigv4_proxy.emulate.server import serve_forever as serve_forever
    from sigv4_proxy.emulate.server import start_mcp as start_mcp
    from sigv4_proxy.emulate.state import ExecutionCounter as ExecutionCounter


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
