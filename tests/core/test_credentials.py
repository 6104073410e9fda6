"""CredentialProvider over botocore's real chain: environment, profiles, credential_process refresh, SSO."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from sigv4_proxy.credentials import CredentialProvider, StaticCredentialProvider
from sigv4_proxy.errors import CredentialsError
from sigv4_proxy.signing.model import Credentials

FIX = "(ensure AWS credentials are configured via environment variables, ~/.aws/credentials, or IAM role)"


def write_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    config = tmp_path / "config"
    config.write_text(text)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))


def credential_process(tmp_path: Path, lifetime: timedelta) -> str:
    """A credential_process script that counts its runs and hands out credentials valid for `lifetime`."""
    script = tmp_path / "creds.py"
    script.write_text(
        "import json, pathlib, datetime\n"
        f"counter = pathlib.Path({str(tmp_path / 'runs')!r})\n"
        "n = int(counter.read_text()) + 1 if counter.exists() else 1\n"
        "counter.write_text(str(n))\n"
        f"exp = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds={lifetime.total_seconds()})\n"
        "print(json.dumps({'Version': 1, 'AccessKeyId': f'ASIAPROCESS{n:09d}', 'SecretAccessKey': f'secret-{n}',"
        " 'SessionToken': f'token-{n}', 'Expiration': exp.strftime('%Y-%m-%dT%H:%M:%SZ')}))\n"
    )
    return f"{sys.executable} {script}"


def runs(tmp_path: Path) -> int:
    return int((tmp_path / "runs").read_text())


def test_environment_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    provider = CredentialProvider()
    creds = provider.get()
    assert creds == Credentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    assert provider.method == "env"
    assert provider.describe() == "access key AKIA****MPLE, from env"
    assert "wJalr" not in repr(creds) and "AKIAIOSFODNN7EXAMPLE" not in repr(creds)


def test_mask_access_key_is_the_redaction_modules() -> None:
    """The public `sigv4_proxy.mask_access_key` is sigv4_proxy.redact's (one masking rule for everything)."""
    import sigv4_proxy
    from sigv4_proxy import redact

    assert sigv4_proxy.mask_access_key is redact.mask_access_key
    assert sigv4_proxy.mask_access_key("AKIAIOSFODNN7EXAMPLE") == "AKIA****MPLE"
    assert sigv4_proxy.mask_access_key("short") == "****"


def test_short_lived_credentials_refresh_without_a_new_session(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    process = credential_process(tmp_path, timedelta(minutes=2))  # inside the 5-minute margin: always refresh
    write_config(tmp_path, monkeypatch, f"[profile short]\ncredential_process = {process}\n")
    provider = CredentialProvider("short")
    first = provider.get()
    session = provider._session
    second = provider.get()
    assert provider._session is session, "one botocore session per process"
    assert provider.method == "custom-process"
    assert first.session_token and second.session_token
    assert first.access_key_id != second.access_key_id
    assert second.expiry is not None and second.expiry > datetime.now(timezone.utc)


def test_long_lived_credentials_are_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    process = credential_process(tmp_path, timedelta(hours=1))
    write_config(tmp_path, monkeypatch, f"[profile long]\ncredential_process = {process}\n")
    provider = CredentialProvider("long")
    assert provider.get() == provider.get() == provider.cached()
    assert runs(tmp_path) == 1
    refreshed = provider.force_refresh()
    assert runs(tmp_path) == 2
    assert refreshed.access_key_id == "ASIAPROCESS000000002"


def test_one_credentials_object_per_set_of_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Unchanged botocore credentials give the same Credentials object (the signer's key cache is keyed by it);
    a refresh gives a new one."""
    process = credential_process(tmp_path, timedelta(hours=1))
    write_config(tmp_path, monkeypatch, f"[profile long]\ncredential_process = {process}\n")
    provider = CredentialProvider("long")
    first = provider.get()
    assert provider.get() is first and provider.cached() is first
    refreshed = provider.force_refresh()
    assert refreshed is not first and refreshed.access_key_id == "ASIAPROCESS000000002"
    assert provider.get() is refreshed


def test_environment_credentials_are_one_object(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    provider = CredentialProvider()
    assert provider.get() is provider.get() is provider.cached()


def test_missing_profile_names_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(tmp_path, monkeypatch, "[default]\nregion = us-east-1\n")
    with pytest.raises(CredentialsError) as info:
        CredentialProvider("nope").get()
    assert str(info.value) == (
        "failed to load AWS credentials: The config profile (nope) could not be found; list profiles with "
        f"`aws configure list-profiles` and pass one with --profile {FIX}"
    )


def test_no_credentials_at_all() -> None:
    with pytest.raises(CredentialsError) as info:
        CredentialProvider().get()
    assert str(info.value) == (
        "failed to load AWS credentials: no credentials found in the environment, the shared files, SSO, "
        f"or an IAM role {FIX}"
    )


def test_sso_not_logged_in_names_the_login_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # an empty SSO token cache
    write_config(
        tmp_path,
        monkeypatch,
        "[profile dev]\nsso_session = corp\nsso_account_id = 123456789012\nsso_role_name = Dev\n"
        "region = us-east-1\n[sso-session corp]\nsso_start_url = https://corp.awsapps.com/start\n"
        "sso_region = us-east-1\n",
    )
    provider = CredentialProvider("dev")
    with pytest.raises(CredentialsError) as info:
        provider.get()
    message = str(info.value)
    assert "run `aws sso login --profile dev`" in message
    assert message.startswith(("failed to load AWS credentials: ", "failed to refresh AWS credentials: "))


def test_static_provider_accepts_a_function_for_rotation() -> None:
    keys = iter(["AKIAFIRST0000000", "AKIASECOND000000"])
    provider = StaticCredentialProvider(lambda: Credentials(next(keys), "s"))
    assert provider.get().access_key_id == "AKIAFIRST0000000"
    assert provider.force_refresh().access_key_id == "AKIASECOND000000"


def test_credentials_json_is_never_in_repr() -> None:
    creds = Credentials("ASIAIOSFODNN7EXAMPLE", "topsecret", "sessiontoken")
    text = repr(creds) + str(creds) + json.dumps({"c": repr(creds)})
    assert "topsecret" not in text and "sessiontoken" not in text


def test_short_lived_credentials_run_the_process_once_per_request(tmp_path: Path, monkeypatch) -> None:
    process = credential_process(tmp_path, timedelta(minutes=2))
    write_config(tmp_path, monkeypatch, f"[profile short]\ncredential_process = {process}\n")
    provider = CredentialProvider("short")
    provider.get()
    before = runs(tmp_path)
    provider.get()
    assert runs(tmp_path) == before + 1  # botocore's own refresh; never a second one of ours on top


def test_failed_renewal_keeps_using_credentials_that_are_still_valid(tmp_path: Path, monkeypatch, caplog) -> None:
    script = tmp_path / "once.py"
    script.write_text(
        "import json, pathlib, datetime, sys\n"
        f"marker = pathlib.Path({str(tmp_path / 'ran')!r})\n"
        "if marker.exists():\n"
        "    sys.exit('Error when retrieving token from sso: Token has expired and refresh failed')\n"
        "marker.write_text('1')\n"
        "exp = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=30)\n"
        "print(json.dumps({'Version': 1, 'AccessKeyId': 'ASIAONCE00000001', 'SecretAccessKey': 's',"
        " 'SessionToken': 't', 'Expiration': exp.strftime('%Y-%m-%dT%H:%M:%SZ')}))\n"
    )
    write_config(tmp_path, monkeypatch, f"[profile once]\ncredential_process = {sys.executable} {script}\n")
    provider = CredentialProvider("once")
    first = provider.get()
    # 25 minutes later by botocore's clock: inside its mandatory refresh window, and the renewal fails
    later = datetime.now(timezone.utc) + timedelta(minutes=25)
    provider._botocore_credentials._time_fetcher = lambda: later
    with caplog.at_level("WARNING", logger="sigv4_proxy.credentials"):
        assert provider.get() == first
    assert "using the current credentials until they expire at" in caplog.text
    # once they really are about to expire, the failure is reported with its fix
    with pytest.raises(CredentialsError) as info:
        provider.get(now=datetime.now(timezone.utc) + timedelta(minutes=29, seconds=30))
    assert str(info.value).startswith("failed to refresh AWS credentials: ")
