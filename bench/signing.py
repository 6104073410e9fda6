#!/usr/bin/env python3
"""Signing benchmark: sigv4-proxy beside botocore, awscrt and the hashlib floor, in one run.

    python3 dev.py bench bench/signing.py        # or: .venv/bin/python bench/signing.py [--quick] [--strict]

Measures µs per operation (best of N timeit repeats, so a busy machine's noise is filtered) for:

* SigV4 header signing of a 1 KiB POST (warm signing-key cache): ours `sign()`, botocore
  `SigV4Auth.add_auth`, awscrt `aws_sign_request`, and the floor every SigV4 signer pays - SHA-256 of the
  body, SHA-256 of a ~300-byte canonical request and one HMAC-SHA256 (the four key-derivation HMACs are
  cached by a good signer, so they are not in the floor).
* SigV4a header signing of the same request: ours (derived P-256 key cached) vs awscrt SigV4a, beside the
  floor of SHA-256 body + SHA-256 canonical request + one ECDSA P-256 signature.
* Presigning a GET URL (900 s): ours `presign()`, botocore `SigV4QueryAuth.add_auth`, awscrt query signing,
  and the floor (SHA-256 canonical request + one HMAC).

Then prints each ratio against this signer's targets (TARGETS below, also in bench/README.md): SigV4 at least
10x faster than botocore and 2x faster than awscrt and within 2x of the hashlib floor; SigV4a at least 2x faster
than awscrt. `--strict` exits 1 when a target is missed.
"""

from __future__ import annotations

import os

os.environ.setdefault("BOTO_DISABLE_CRT", "true")  # botocore's own pure-Python signer, not its CRT bridge

import argparse
import hashlib
import hmac
import io
import platform
import sys
import timeit
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version

from sigv4_proxy import Credentials, presign, sign

URL = "https://abc123.execute-api.us-east-1.amazonaws.com/prod/mcp?session=3f6c2a&stream=1"
HOST = "abc123.execute-api.us-east-1.amazonaws.com"
BODY = (b'{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"search","arguments":{"q":"' + b"x" * 1024)[
    :1024
]
HEADERS = [
    ("Host", HOST),
    ("Content-Type", "application/json"),
    ("Accept", "application/json, text/event-stream"),
    ("Mcp-Session-Id", "6b1c0f5e-8d4e-4a55-9a0d-3f8f5c1e2d7a"),
    ("Content-Length", str(len(BODY))),
]
ACCESS_KEY, SECRET_KEY = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
CREDENTIALS = Credentials(ACCESS_KEY, SECRET_KEY)
REGION, SERVICE = "us-east-1", "execute-api"
NOW = datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone.utc)


# ------------------------------------------------------------------------------------------- measuring
@dataclass(frozen=True)
class Measurement:
    name: str
    seconds: float | None  # per operation; None: peer not installed

    @property
    def micros(self) -> float | None:
        return None if self.seconds is None else self.seconds * 1e6


def measure(fn: Callable[[], object], *, repeat: int, budget: float) -> float:
    """Best per-call time over `repeat` runs of a loop sized to take about `budget` seconds."""
    timer = timeit.Timer(fn)
    number, elapsed = timer.autorange()
    number = max(1, int(number * budget / max(elapsed, 1e-9)))
    return min(timer.repeat(repeat=repeat, number=number)) / number


# ---------------------------------------------------------------------------------------- contenders
def ours_v4() -> Callable[[], object]:
    return lambda: sign("POST", URL, HEADERS, BODY, credentials=CREDENTIALS, region=REGION, service=SERVICE, now=NOW)


def ours_v4a() -> Callable[[], object]:
    def run() -> object:
        return sign(
            "POST",
            URL,
            HEADERS,
            BODY,
            credentials=CREDENTIALS,
            region=[REGION],
            service=SERVICE,
            algorithm="v4a",
            now=NOW,
        )

    return run


def ours_presign() -> Callable[[], object]:
    return lambda: presign("GET", URL, credentials=CREDENTIALS, region=REGION, service=SERVICE, now=NOW)


def botocore_v4() -> Callable[[], object]:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials as BotoCredentials

    auth = SigV4Auth(BotoCredentials(ACCESS_KEY, SECRET_KEY), SERVICE, REGION)
    # One request re-signed in a loop: add_auth drops the previous Authorization/X-Amz-Date first. Building
    # the AWSRequest is left out, which flatters botocore slightly.
    request = AWSRequest(method="POST", url=URL, data=BODY)
    for name, value in HEADERS:
        request.headers[name] = value
    return lambda: auth.add_auth(request)


def botocore_v4_fresh() -> Callable[[], object]:
    """What one SDK-style call costs: build the AWSRequest, then sign it."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials as BotoCredentials

    auth = SigV4Auth(BotoCredentials(ACCESS_KEY, SECRET_KEY), SERVICE, REGION)

    def run() -> object:
        request = AWSRequest(method="POST", url=URL, data=BODY)
        for name, value in HEADERS:
            request.headers[name] = value
        auth.add_auth(request)
        return request

    return run


def botocore_presign() -> Callable[[], object]:
    from botocore.auth import SigV4QueryAuth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials as BotoCredentials

    auth = SigV4QueryAuth(BotoCredentials(ACCESS_KEY, SECRET_KEY), SERVICE, REGION, expires=900)

    def run() -> object:
        # add_auth rewrites request.url, so each presign needs a fresh request (as generate_presigned_url does).
        request = AWSRequest(method="GET", url=URL)
        request.headers["Host"] = HOST
        auth.add_auth(request)
        return request.url

    return run


def _crt() -> tuple[object, object, object] | None:
    try:
        import awscrt.auth
        import awscrt.http
        import awscrt.io
    except ImportError:
        return None
    return awscrt.auth, awscrt.http, awscrt.io


def crt_signer(algorithm: str, signature_type: str, method: str, body: bytes) -> Callable[[], object] | None:
    crt = _crt()
    if crt is None:
        return None
    auth, http, _ = crt
    config = auth.AwsSigningConfig(  # type: ignore[attr-defined]
        algorithm=getattr(auth.AwsSigningAlgorithm, algorithm),  # type: ignore[attr-defined]
        signature_type=getattr(auth.AwsSignatureType, signature_type),  # type: ignore[attr-defined]
        credentials_provider=auth.AwsCredentialsProvider.new_static(ACCESS_KEY, SECRET_KEY),  # type: ignore[attr-defined]
        region=REGION,
        service=SERVICE,
        date=NOW,
        expiration_in_seconds=900 if signature_type == "HTTP_REQUEST_QUERY_PARAMS" else None,
    )
    path = URL.split(HOST, 1)[1]
    headers = HEADERS if method == "POST" else HEADERS[:1]

    def run() -> object:
        # A fresh request each time: signing adds headers or query parameters to it. CRT hashes the body
        # stream itself, as it does for an SDK request.
        request = http.HttpRequest(method, path, http.HttpHeaders(headers), io.BytesIO(body) if body else None)  # type: ignore[attr-defined]
        return auth.aws_sign_request(request, config).result()  # type: ignore[attr-defined]

    return run


def floor_v4() -> Callable[[], object]:
    canonical_request = _representative_canonical_request()
    key = hashlib.sha256(b"a cached 32-byte signing key").digest()
    prefix = "AWS4-HMAC-SHA256\n20240506T070809Z\n20240506/us-east-1/execute-api/aws4_request\n"

    def run() -> object:
        hashlib.sha256(BODY).hexdigest()
        digest = hashlib.sha256(canonical_request).hexdigest()
        return hmac.new(key, (prefix + digest).encode(), hashlib.sha256).hexdigest()

    return run


def floor_presign() -> Callable[[], object]:
    canonical_request = _representative_canonical_request()
    key = hashlib.sha256(b"a cached 32-byte signing key").digest()
    prefix = "AWS4-HMAC-SHA256\n20240506T070809Z\n20240506/us-east-1/execute-api/aws4_request\n"

    def run() -> object:
        digest = hashlib.sha256(canonical_request).hexdigest()
        return hmac.new(key, (prefix + digest).encode(), hashlib.sha256).hexdigest()

    return run


def floor_v4a() -> Callable[[], object]:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    private_key = ec.derive_private_key(0x1234567890ABCDEF, ec.SECP256R1())
    canonical_request = _representative_canonical_request()
    prefix = "AWS4-ECDSA-P256-SHA256\n20240506T070809Z\n20240506/execute-api/aws4_request\n"
    algorithm = ec.ECDSA(hashes.SHA256())

    def run() -> object:
        hashlib.sha256(BODY).hexdigest()
        digest = hashlib.sha256(canonical_request).hexdigest()
        return private_key.sign((prefix + digest).encode(), algorithm).hex()

    return run


def _representative_canonical_request() -> bytes:
    """Our canonical request for the benchmark request (~300 bytes), so the floor hashes the same size."""
    return sign(
        "POST", URL, HEADERS, BODY, credentials=CREDENTIALS, region=REGION, service=SERVICE, now=NOW
    ).canonical_request.encode()


# ------------------------------------------------------------------------------------------- reporting
@dataclass(frozen=True)
class Target:
    label: str
    ours: str
    other: str
    factor: float  # ours must be `factor` times faster than `other` (a floor: ours within 1/factor of it)


TARGETS = [
    Target("v4 header: >= 10x faster than botocore", "v4 ours", "v4 botocore", 10),
    Target("v4 header: >= 2x faster than awscrt", "v4 ours", "v4 awscrt", 2),
    Target("v4 header: within 2x of the hashlib floor", "v4 ours", "v4 floor", 0.5),
    Target("v4a header: >= 2x faster than awscrt SigV4a", "v4a ours", "v4a awscrt", 2),
]


def _package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer, shorter repeats (a smoke run)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    repeat, budget = (3, 0.05) if args.quick else (7, 0.2)

    groups: list[tuple[str, list[tuple[str, str, Callable[[], object] | None]]]] = [
        (
            f"SigV4 header signing, {len(BODY)}-byte POST, warm key cache",
            [
                ("v4 ours", "sigv4-proxy sign()", ours_v4()),
                ("v4 botocore", "botocore SigV4Auth.add_auth", botocore_v4()),
                ("v4 botocore fresh", "botocore AWSRequest() + add_auth", botocore_v4_fresh()),
                ("v4 awscrt", "awscrt aws_sign_request", crt_signer("V4", "HTTP_REQUEST_HEADERS", "POST", BODY)),
                ("v4 floor", "floor: 2x SHA-256 + 1 HMAC", floor_v4()),
            ],
        ),
        (
            "SigV4a header signing, same request, derived key cached",
            [
                ("v4a ours", "sigv4-proxy sign(algorithm='v4a')", ours_v4a()),
                (
                    "v4a awscrt",
                    "awscrt aws_sign_request (V4_ASYMMETRIC)",
                    crt_signer("V4_ASYMMETRIC", "HTTP_REQUEST_HEADERS", "POST", BODY),
                ),
                ("v4a floor", "floor: 2x SHA-256 + 1 ECDSA P-256", floor_v4a()),
            ],
        ),
        (
            "SigV4 presigned GET URL, 900 s",
            [
                ("presign ours", "sigv4-proxy presign()", ours_presign()),
                ("presign botocore", "botocore SigV4QueryAuth.add_auth", botocore_presign()),
                (
                    "presign awscrt",
                    "awscrt aws_sign_request (query)",
                    crt_signer("V4", "HTTP_REQUEST_QUERY_PARAMS", "GET", b""),
                ),
                ("presign floor", "floor: 1x SHA-256 + 1 HMAC", floor_presign()),
            ],
        ),
    ]

    print(
        f"sigv4-proxy signing benchmark - Python {platform.python_version()} on {platform.machine()}, "
        f"{os.cpu_count()} CPUs; botocore {_package_version('botocore')}, awscrt {_package_version('awscrt')}, "
        f"cryptography {_package_version('cryptography')}"
    )
    print(f"best of {repeat} repeats, ~{budget:.2f} s each\n")
    results: dict[str, float | None] = {}
    for title, contenders in groups:
        print(title)
        print(f"  {'':44} {'µs/op':>9} {'ops/s':>11} {'vs ours':>8}")
        ours_seconds = None
        for key, label, fn in contenders:
            seconds = None if fn is None else measure(fn, repeat=repeat, budget=budget)
            results[key] = seconds
            if ours_seconds is None:
                ours_seconds = seconds
            if seconds is None:
                print(f"  {label:44} {'-':>9} {'-':>11}   (not installed: pip install awscrt)")
                continue
            ratio = f"{seconds / ours_seconds:7.2f}x" if ours_seconds else ""
            print(f"  {label:44} {seconds * 1e6:9.2f} {1 / seconds:11,.0f} {ratio:>8}")
        print()

    missed = 0
    print("targets (goals for a quiet machine; --strict exits 1 when one is missed)")
    for target in TARGETS:
        ours, other = results.get(target.ours), results.get(target.other)
        if ours is None or other is None:
            print(f"  {target.label:48} skipped (peer not installed)")
            continue
        speedup = other / ours
        ok = speedup >= target.factor
        missed += not ok
        shown = f"{speedup:.2f}x faster" if target.factor >= 1 else f"{ours / other:.2f}x the floor"
        print(f"  {target.label:48} {shown:>18}  {'met' if ok else 'MISSED'}")
    return 1 if (missed and args.strict) else 0


if __name__ == "__main__":
    sys.exit(main())
