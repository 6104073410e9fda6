"""Every broken token of the corpus gets its specific diagnosis — and nothing else; good tokens get none."""

from __future__ import annotations

from datetime import timedelta

import pytest

from sigv4_proxy import dsql_token, rds_token
from sigv4_proxy.inspection import ERROR, INFO, RULES, WARNING, inspect_token, verify_token
from sigv4_proxy.signing.model import Credentials
from sigv4_proxy.tokens import parse_token
from tests.tokens.corpus import CORPUS, HOST, LONG, RDS_HOST, SECRET, TEMP, Case
from tests.tokens.helpers import NOW, TEMPORARY, botocore_client, frozen_botocore


def problems(token: str, case: Case) -> set[str]:
    report = inspect_token(parse_token(token), now=case.now, user=case.user)
    return {f.code for f in report.findings if f.severity in (ERROR, WARNING)}


@pytest.mark.parametrize("case", CORPUS, ids=[c.name for c in CORPUS])
def test_each_mistake_gets_its_diagnosis(case: Case) -> None:
    assert problems(case.make(), case) == case.expected


@pytest.mark.parametrize("case", [c for c in CORPUS if c.hypothesis], ids=lambda c: c.name)
def test_verify_names_the_signer_mistake(case: Case) -> None:
    token = parse_token(case.make())
    credentials = Credentials(token.access_key_id or "", SECRET, token.session_token)
    result = verify_token(token, credentials)
    assert not result.ok
    assert result.hypothesis == case.hypothesis
    assert result.their_canonical_request is not None and result.fix
    creq_line, sts_line = result.first_difference()
    if case.hypothesis.startswith("key_for_"):  # same canonical request, key derived for another scope
        assert (creq_line, sts_line) == (None, None)
    else:  # the canonical requests differ, hence the hash line (4th) of the strings to sign
        assert creq_line is not None and sts_line == 3


def test_every_rule_is_reachable_from_a_check() -> None:
    """The rule table and the checks stay in step: each code is used by some check's source."""
    import inspect as pyinspect

    from sigv4_proxy.inspection import checks

    source = "".join(pyinspect.getsource(check) for check in checks.CHECKS)
    source += pyinspect.getsource(checks._encoding_findings)
    assert sorted(code for code in RULES if f'"{code}"' not in source) == []


def test_every_corpus_code_is_a_rule() -> None:
    used = set().union(*(case.expected for case in CORPUS))
    assert used <= set(RULES)


@pytest.mark.parametrize(
    "token",
    [
        dsql_token(HOST, credentials=LONG, now=NOW),
        dsql_token(HOST, admin=True, credentials=TEMP, now=NOW, expires_in=604800),
        rds_token(RDS_HOST, 5432, "iam user", credentials=TEMPORARY, now=NOW),
    ],
    ids=["dsql", "dsql-admin-temporary", "rds"],
)
def test_good_tokens_have_no_problem(token: str) -> None:
    report = inspect_token(parse_token(token), now=NOW + timedelta(minutes=1))
    assert [f for f in report.findings if f.severity != INFO] == []
    assert report.ok
    credentials = Credentials(parse_token(token).access_key_id or "", SECRET)
    assert verify_token(parse_token(token), credentials).ok


@pytest.mark.parametrize("admin", [False, True])
def test_botocore_tokens_have_no_problem(admin: bool) -> None:
    client = botocore_client("dsql", TEMP)
    with frozen_botocore(NOW):
        token = (client.generate_db_connect_admin_auth_token if admin else client.generate_db_connect_auth_token)(
            HOST, "us-east-1"
        )
    parsed = parse_token(token)
    report = inspect_token(parsed, now=NOW, user="admin" if admin else "app")
    assert [f.code for f in report.findings] == []
    assert verify_token(parsed, TEMP).ok  # the caller's own session token is compared too


def test_verify_with_the_wrong_secret_says_so() -> None:
    token = parse_token(dsql_token(HOST, credentials=LONG, now=NOW))
    result = verify_token(token, Credentials(LONG.access_key_id, "not-the-secret"))
    assert (result.ok, result.hypothesis) == (False, None)
    assert result.message.startswith(
        "the signature does not match, and no known signer mistake reproduces it: most likely the token was "
        "signed with a different secret key than the one for AKIA****MPLE."
    )


def test_verify_compares_the_signers_own_canonical_request() -> None:
    token = parse_token(dsql_token(HOST, credentials=LONG, now=NOW).replace("X-Amz-Expires=900", "X-Amz-Expires=901"))
    result = verify_token(token, LONG, their_canonical_request="GET\n/\nAction=DbConnect&X-Amz-Expires=900\nhost:x\n")
    assert result.first_difference()[0] == 2
    assert result.their_string_to_sign is not None


def test_verify_never_shows_the_session_token() -> None:
    from sigv4_proxy.inspection import render_verification

    token = parse_token(dsql_token(HOST, credentials=TEMP, now=NOW))
    result = verify_token(token, Credentials(TEMP.access_key_id, "wrong", TEMP.session_token))
    text = render_verification(result) + str(result.to_dict())
    assert TEMP.session_token not in text
    assert "FwoGZXIvYXdzEBYaDH" not in text and "<session token: " in text
