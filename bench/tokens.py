#!/usr/bin/env python3
"""IAM database token benchmark: sigv4-proxy's `dsql_token` beside boto3's, in one run.

    python3 dev.py bench bench/tokens.py        # or: .venv/bin/python bench/tokens.py [--quick] [--strict]

Measures µs per Aurora DSQL token (best of N timeit repeats, so a busy machine's noise is filtered):

* ours: `sigv4_proxy.dsql_token(host, credentials=...)`, reading the clock as real callers do;
* boto3: `client.generate_db_connect_auth_token(host, region)` on one reused client — with botocore's
  pure-Python signer (a plain `pip install boto3`) and, when awscrt is installed, with its CRT signer
  (`boto3[crt]`);
* the floor every token pays: SHA-256 of the ~330-byte canonical request and one HMAC-SHA256 (the signing
  key cached, as both signers do).

Each contender runs with long-term credentials and with a realistic ~800-character session token (which
must be percent-encoded twice: into the canonical query and into the token). Ours must be ≥ 10× faster
than boto3; `--strict` exits 1 when it is not.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import platform
import sys
import timeit
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from unittest import mock

from sigv4_proxy import Credentials, dsql_token

HOST = "abc123def456ghi789jkl.dsql.us-east-1.on.aws"
REGION = "us-east-1"
ACCESS_KEY, SECRET_KEY = "ASIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
# The shape of a real STS session token: base64 with '/', '+' and '=' that must be escaped.
SESSION_TOKEN = ("IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQD6+example/" * 13)[:800] + "=="
TARGET = 10.0


@dataclass(frozen=True)
class Row:
    name: str
    credentials: str
    seconds: float | None  # per token; None: not installed

    @property
    def micros(self) -> float | None:
        return None if self.seconds is None else self.seconds * 1e6


def measure(fn: Callable[[], object], *, repeat: int, budget: float) -> float:
    """Best per-call time over `repeat` runs of a loop sized to take about `budget` seconds."""
    timer = timeit.Timer(fn)
    number, elapsed = timer.autorange()
    number = max(1, int(number * budget / max(elapsed, 1e-9)))
    return min(timer.repeat(repeat=repeat, number=number)) / number


def credentials_for(with_token: bool) -> Credentials:
    return Credentials(ACCESS_KEY, SECRET_KEY, SESSION_TOKEN if with_token else None)


# ---------------------------------------------------------------------------------------- contenders
def ours(creds: Credentials) -> Callable[[], object]:
    return lambda: dsql_token(HOST, credentials=creds)


def boto3_client(creds: Credentials) -> object:
    import boto3

    return boto3.client(
        "dsql",
        region_name=REGION,
        aws_access_key_id=creds.access_key_id,
        aws_secret_access_key=creds.secret_access_key,
        aws_session_token=creds.session_token,
    )


def python_signer() -> AbstractContextManager[object]:
    """botocore's pure-Python SigV4 query signer, whatever HAS_CRT decided at import time."""
    import botocore.auth

    return mock.patch.dict(
        botocore.auth.AUTH_TYPE_MAPS, {"v4": botocore.auth.SigV4Auth, "v4-query": botocore.auth.SigV4QueryAuth}
    )


def crt_signer() -> AbstractContextManager[object] | None:
    """botocore's CRT query signer when awscrt is installed, else None."""
    try:
        from botocore.crt.auth import CRT_AUTH_TYPE_MAPS
    except ImportError:
        return None
    import botocore.auth

    return mock.patch.dict(botocore.auth.AUTH_TYPE_MAPS, CRT_AUTH_TYPE_MAPS)


def boto3_token(creds: Credentials) -> Callable[[], object]:
    client = boto3_client(creds)
    return lambda: client.generate_db_connect_auth_token(HOST, REGION)  # type: ignore[attr-defined]


def floor(creds: Credentials) -> Callable[[], object]:
    """SHA-256 of a canonical request of a token's size + one HMAC with a cached key."""
    token = dsql_token(HOST, credentials=creds)
    canonical_request = ("GET\n/\n" + token.split("?", 1)[1] + f"\nhost:{HOST}\n\nhost\n" + "e3b0" * 16).encode()
    key = hashlib.sha256(b"cached signing key").digest()
    prefix = b"AWS4-HMAC-SHA256\n20240501T120000Z\n20240501/us-east-1/dsql/aws4_request\n"

    def run() -> object:
        digest = hashlib.sha256(canonical_request).hexdigest().encode()
        return hmac.new(key, prefix + digest, hashlib.sha256).hexdigest()

    return run


# ------------------------------------------------------------------------------------------- running
def run_all(repeat: int, budget: float) -> list[Row]:
    rows: list[Row] = []
    for with_token in (False, True):
        creds = credentials_for(with_token)
        label = "session token" if with_token else "long-term key"
        rows.append(Row("sigv4-proxy dsql_token", label, measure(ours(creds), repeat=repeat, budget=budget)))
        try:
            version("boto3")
        except PackageNotFoundError:
            rows.append(Row("boto3 generate_db_connect_auth_token", label, None))
        else:
            with python_signer():
                rows.append(
                    Row(
                        "boto3 generate_db_connect_auth_token",
                        label,
                        measure(boto3_token(creds), repeat=repeat, budget=budget),
                    )
                )
            crt = crt_signer()
            with crt if crt is not None else nullcontext():
                seconds = measure(boto3_token(creds), repeat=repeat, budget=budget) if crt is not None else None
            rows.append(Row("boto3[crt] generate_db_connect_auth_token", label, seconds))
        rows.append(Row("floor (SHA-256 + 1 HMAC)", label, measure(floor(creds), repeat=repeat, budget=budget)))
    return rows


def fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def print_table(rows: list[Row]) -> list[float]:
    """Print the table; return ours-vs-boto3 speed-ups (one per credentials kind)."""
    print(
        f"Aurora DSQL tokens - Python {platform.python_version()} on {platform.machine()}, "
        f"boto3 {_version('boto3')}, botocore {_version('botocore')}, awscrt {_version('awscrt')}"
    )
    print()
    header = f"{'contender':<44} {'credentials':<14} {'µs/token':>9} {'tokens/s':>10} {'vs boto3':>9}"
    print(header)
    print("-" * len(header))
    speedups = []
    for kind in ("long-term key", "session token"):
        group = [r for r in rows if r.credentials == kind]
        boto = next((r for r in group if r.name.startswith("boto3 ")), None)
        for row in group:
            ratio = None
            if boto is not None and boto.seconds and row.seconds:
                ratio = boto.seconds / row.seconds
                if row.name.startswith("sigv4-proxy"):
                    speedups.append(ratio)
            rate = None if row.seconds is None else 1 / row.seconds
            print(
                f"{row.name:<44} {row.credentials:<14} {fmt(row.micros, '9.2f')} {fmt(rate, '10,.0f')} "
                f"{fmt(ratio, '8.1f') + ('×' if ratio else ''):>9}"
            )
    print()
    return speedups


def _version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="shorter runs (noisier)")
    parser.add_argument("--strict", action="store_true", help=f"exit 1 when ours is < {TARGET:.0f}× boto3")
    args = parser.parse_args()
    rows = run_all(repeat=3 if args.quick else 7, budget=0.05 if args.quick else 0.2)
    speedups = print_table(rows)
    if not speedups:
        print("target: boto3 not installed, no comparison")
        return 0
    worst = min(speedups)
    verdict = "met" if worst >= TARGET else "MISSED"
    print(f"target: ours >= {TARGET:.0f}× boto3 (pure Python): worst case {worst:.1f}× -> {verdict}")
    return 1 if args.strict and worst < TARGET else 0


if __name__ == "__main__":
    sys.exit(main())
