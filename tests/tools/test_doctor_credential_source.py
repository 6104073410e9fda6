"""doctor checks the credentials the proxy itself would sign with, not another source.

With keys in the environment and ``AWS_PROFILE`` set, the proxy signs with the environment keys (the AWS CLI's
precedence, :func:`sigv4_proxy.upstream.credential_provider`); doctor used to check the profile instead.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from sigv4_proxy.doctor import FAIL, PASS, run_doctor
from sigv4_proxy.emulate import McpEmulator


def _args(emulator: McpEmulator, *extra: str) -> argparse.Namespace:
    from sigv4_proxy.cli import doctor

    parser = argparse.ArgumentParser()
    doctor.configure(parser)
    argv = ["--target-url", emulator.url, "--region", emulator.region, "--service-name", emulator.service]
    return parser.parse_args([*argv, *extra])


@pytest.fixture
def no_aws_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore reads the process environment: point it at empty files so no real ~/.aws is read."""
    for name in ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        empty = tmp_path / name.lower()
        empty.write_text("")
        monkeypatch.setenv(name, str(empty))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)


def _credentials_check(emulator: McpEmulator, environ: dict[str, str], *extra: str) -> tuple[str, str]:
    report = run_doctor(_args(emulator, *extra), environ, timeout=3)
    check = next(check for check in report.checks if check.name == "credentials")
    return check.status, check.summary


@pytest.mark.usefixtures("no_aws_files")
def test_environment_keys_win_over_aws_profile_as_in_the_proxy(emulator: McpEmulator) -> None:
    environ = {**emulator.env(), "AWS_PROFILE": "a-profile-nobody-has"}
    status, summary = _credentials_check(emulator, environ)
    assert status == PASS, summary
    assert summary.startswith(f"{emulator.credentials.masked_access_key}: ")
    assert "environment" in summary


@pytest.mark.usefixtures("no_aws_files")
def test_the_profile_flag_wins_over_environment_keys_as_in_the_proxy(emulator: McpEmulator) -> None:
    status, summary = _credentials_check(emulator, emulator.env(), "--profile", "a-profile-nobody-has")
    assert status == FAIL
    assert "a-profile-nobody-has" in summary
