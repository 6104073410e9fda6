"""Test isolation shared by every test: no real AWS configuration, credentials or metadata service.

Tests that need credentials set them explicitly (environment variables or files under tmp_path), so a
developer's own ~/.aws never changes a result, and nothing ever reaches for IMDS or the internet.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def isolated_aws_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    empty = tmp_path_factory.getbasetemp() / "no-aws-config"
    for name in list(os.environ):
        if name.startswith("AWS_") or name.startswith("MCP_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("BOTO_DISABLE_CRT", "true")
    yield
