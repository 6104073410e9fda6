"""Load the AWS SigV4/SigV4a signing test suite (tests/vectors, copied from aws-c-auth): one folder per case."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sigv4_proxy.signing.model import Credentials
from sigv4_proxy.signing.rawrequest import RawRequest, parse_raw_request

SUITE = Path(__file__).resolve().parent / "vectors"


@dataclass
class Case:
    algorithm: str  # "v4" or "v4a"
    name: str
    folder: Path
    context: dict

    @property
    def id(self) -> str:
        return f"{self.algorithm}/{self.name}"

    def file(self, name: str) -> str:
        return (self.folder / name).read_text(encoding="utf-8")

    def file_bytes(self, name: str) -> bytes:
        return (self.folder / name).read_bytes()

    def has(self, name: str) -> bool:
        return (self.folder / name).exists()

    @property
    def request(self) -> RawRequest:
        return parse_raw_request(self.file_bytes("request.txt"))

    @property
    def credentials(self) -> Credentials:
        c = self.context["credentials"]
        return Credentials(c["access_key_id"], c["secret_access_key"], c.get("token"))

    @property
    def now(self) -> datetime:
        return datetime.fromisoformat(self.context["timestamp"].replace("Z", "+00:00"))

    @property
    def public_key(self) -> tuple[str, str]:
        data = json.loads(self.file("public-key.json"))
        return data["X"], data["Y"]


def load_cases(algorithm: str) -> list[Case]:
    folder = SUITE / algorithm
    cases = [
        Case(algorithm, d.name, d, json.loads((d / "context.json").read_text()))
        for d in sorted(folder.iterdir())
        if d.is_dir()
    ]
    assert cases, f"no test cases found under {folder}"
    return cases


V4_CASES = load_cases("v4")
V4A_CASES = load_cases("v4a")
ALL_CASES = V4_CASES + V4A_CASES
