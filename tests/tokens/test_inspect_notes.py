"""`inspect` never cuts its own notes (issue 9 item 8): only values echoed from a token are clipped."""

from __future__ import annotations

import json

import pytest

from sigv4_proxy import dsql_token
from sigv4_proxy.cli import main
from sigv4_proxy.inspection import finding
from sigv4_proxy.inspection.rules import _clip
from tests.tokens.corpus import HOST, LONG, SECRET, TEMP
from tests.tokens.helpers import NOW

AT = ["--now", "2024-05-01T12:01:00Z"]
DBCONNECT_NOTE = (
    "DbConnect logs in as a custom database role, not as 'admin' (admin needs DbConnectAdmin); pass --user to check"
)


@pytest.fixture(autouse=True)
def env_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", LONG.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)


def test_the_note_is_whole_in_text_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", dsql_token(HOST, credentials=TEMP, now=NOW), *AT]) == 0
    assert f"· info: {DBCONNECT_NOTE}\n" in capsys.readouterr().out


def test_the_note_is_whole_in_json_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", dsql_token(HOST, credentials=TEMP, now=NOW), "--json", *AT]) == 0
    findings = json.loads(capsys.readouterr().out)["token"]["findings"]
    assert findings == [{"code": "action_note", "severity": "info", "message": DBCONNECT_NOTE, "fix": None}]


def test_values_echoed_from_a_token_are_still_clipped() -> None:
    mangled = "x" * 300
    rendered = finding("rds_user_mismatch", db_user=mangled, user="app")
    assert _clip(mangled) in rendered.message and mangled not in rendered.message
