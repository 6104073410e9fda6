"""What is masked, in one table: every secret shape this project can print, and what must stay readable.

`sigv4_proxy.redact.redact` is the one implementation (logs, diagnoses, inspect output, printed requests); the
logger (`sigv4_proxy.logs`) masks what it masks, in text and JSON lines. docs/security.md ("What is masked")
lists the same shapes. Each masked output is checked to be a fixed point: masking masked text changes nothing.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest

from sigv4_proxy.logs import JsonFormatter, TextFormatter

KEY = "AKIAIOSFODNN7EXAMPLE"
TEMP = "ASIAQNZGKIQY56JQ7WML"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
TOKEN = "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQDv8K1m+ZqT3bA6J0sYfz9Y="
QUERY_TOKEN = "IQoJb3JpZ2luX2VjEJr%2F%2F%2F%2F%2F%2F%2F%2F%2F%2FwEaCXVzLWVhc3QtMSJHMEUCIQD"
SIG = "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
SCOPE = "%2F20250101%2Fus-east-1"
PRESIGNED = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential="
SIGNED = "X-Amz-Date=20250101T000000Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host"

# (shape, input, shown): the shape names the row in docs/security.md's table.
MASKED: list[tuple[str, str, str]] = [
    (
        "Authorization header",
        f"Authorization: AWS4-HMAC-SHA256 Credential={KEY}/20150830/us-east-1/iam/aws4_request, "
        f"SignedHeaders=content-type;host;x-amz-date, Signature={SIG}",
        "Authorization: AWS4-HMAC-SHA256 Credential=AKIA****MPLE/20150830/us-east-1/iam/aws4_request, "
        "SignedHeaders=content-type;host;x-amz-date, Signature=****",
    ),
    (
        "Authorization header",
        f"{{'Authorization': 'AWS4-ECDSA-P256-SHA256 Credential={TEMP}/20150830/execute-api/aws4_request, "
        f"SignedHeaders=host;x-amz-date;x-amz-region-set, Signature=3045022100{SIG[:40]}'}}",
        "{'Authorization': 'AWS4-ECDSA-P256-SHA256 Credential=ASIA****7WML/20150830/execute-api/aws4_request, "
        "SignedHeaders=host;x-amz-date;x-amz-region-set, Signature=****'}",
    ),
    (
        "presigned URL",
        f"GET https://bucket.s3.amazonaws.com/k?{PRESIGNED}{TEMP}{SCOPE}%2Fs3%2Faws4_request&{SIGNED}"
        f"&X-Amz-Security-Token={QUERY_TOKEN}&X-Amz-Signature={SIG}",
        f"GET https://bucket.s3.amazonaws.com/k?{PRESIGNED}ASIA****7WML{SCOPE}%2Fs3%2Faws4_request&{SIGNED}"
        "&X-Amz-Security-Token=****&X-Amz-Signature=****",
    ),
    (
        "DSQL / RDS token",
        f"password=abc.dsql.us-east-1.on.aws/?Action=DbConnectAdmin&{PRESIGNED}AKIDEXAMPLE1234{SCOPE}%2Fdsql"
        f"%2Faws4_request&{SIGNED}&X-Amz-Signature={SIG}",
        f"password=abc.dsql.us-east-1.on.aws/?Action=DbConnectAdmin&{PRESIGNED}AKID****1234{SCOPE}%2Fdsql"
        f"%2Faws4_request&{SIGNED}&X-Amz-Signature=****",
    ),
    (
        "DSQL / RDS token",
        f"db.abc.us-east-1.rds.amazonaws.com:5432/?Action=connect&DBUser=app&{PRESIGNED}{TEMP}{SCOPE}%2Frds-db"
        f"%2Faws4_request&{SIGNED}&X-Amz-Security-Token={QUERY_TOKEN}&X-Amz-Signature={SIG}",
        f"db.abc.us-east-1.rds.amazonaws.com:5432/?Action=connect&DBUser=app&{PRESIGNED}ASIA****7WML{SCOPE}%2Frds-db"
        f"%2Faws4_request&{SIGNED}&X-Amz-Security-Token=****&X-Amz-Signature=****",
    ),
    ("session token", f"X-Amz-Security-Token: {TOKEN}", "X-Amz-Security-Token: ****"),
    ("session token", f"x-amz-security-token:{TOKEN}", "x-amz-security-token:****"),
    (
        "session token",
        f'{{"x-amz-security-token": "{TOKEN}", "x-amz-date": "20250101T000000Z"}}',
        '{"x-amz-security-token": "****", "x-amz-date": "20250101T000000Z"}',
    ),
    (
        "Bearer token",
        "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
        "Authorization: Bearer ****",
    ),
    (  # STS (JSON protocol, the AWS CLI's output)
        "credentials JSON",
        f'{{"Credentials": {{"AccessKeyId": "{TEMP}", "SecretAccessKey": "{SECRET}", "SessionToken": "{TOKEN}", '
        '"Expiration": "2025-01-01T01:00:00Z"}}',
        '{"Credentials": {"AccessKeyId": "ASIA****7WML", "SecretAccessKey": "****", "SessionToken": "****", '
        '"Expiration": "2025-01-01T01:00:00Z"}}',
    ),
    (  # IMDS and ECS container credentials: "Token", however short
        "credentials JSON",
        f'{{"Code": "Success", "AccessKeyId": "{TEMP}", "SecretAccessKey": "{SECRET}", "Token": "short-test-token", '
        '"Expiration": "2025-01-01T01:00:00Z"}',
        '{"Code": "Success", "AccessKeyId": "ASIA****7WML", "SecretAccessKey": "****", "Token": "****", '
        '"Expiration": "2025-01-01T01:00:00Z"}',
    ),
    (  # SSO GetRoleCredentials
        "credentials JSON",
        f'{{"roleCredentials": {{"accessKeyId": "{TEMP}", "secretAccessKey": "{SECRET}", "sessionToken": "{TOKEN}", '
        '"expiration": 1735693200000}}',
        '{"roleCredentials": {"accessKeyId": "ASIA****7WML", "secretAccessKey": "****", "sessionToken": "****", '
        '"expiration": 1735693200000}}',
    ),
    (  # test credentials (an emulator's): masked by field name, whatever their shape
        "credentials JSON",
        '{"AccessKeyId": "emulator-key-1", "SecretAccessKey": "s3cr3t", "Token": "t0k3n"}',
        '{"AccessKeyId": "emul****ey-1", "SecretAccessKey": "****", "Token": "****"}',
    ),
    (  # STS (query protocol)
        "credentials XML",
        f"<Credentials><AccessKeyId>{TEMP}</AccessKeyId><SecretAccessKey>{SECRET}</SecretAccessKey>"
        f"<SessionToken>{TOKEN}</SessionToken></Credentials>",
        "<Credentials><AccessKeyId>ASIA****7WML</AccessKeyId><SecretAccessKey>****</SecretAccessKey>"
        "<SessionToken>****</SessionToken></Credentials>",
    ),
    (
        "error XML",
        f"<Error><Code>SignatureDoesNotMatch</Code><SignatureProvided>{SIG}</SignatureProvided>"
        f"<AWSAccessKeyId>{KEY}</AWSAccessKeyId></Error>",
        "<Error><Code>SignatureDoesNotMatch</Code><SignatureProvided>****</SignatureProvided>"
        "<AWSAccessKeyId>AKIA****MPLE</AWSAccessKeyId></Error>",
    ),
    ("secret settings", f"aws_secret_access_key = {SECRET}", "aws_secret_access_key = ****"),
    ("secret settings", f"AWS_SESSION_TOKEN={TOKEN}", "AWS_SESSION_TOKEN=****"),
    (
        "URL userinfo",
        "via http://alice:s3cret@proxy.corp:3128 and https://ghp_tok3n@git.example/x",
        "via http://alice:****@proxy.corp:3128 and https://****@git.example/x",
    ),
    (
        "URL userinfo",
        "postgresql://admin:abc.dsql.us-east-1.on.aws%2F%3FAction%3DDbConnectAdmin%26X-Amz-Signature%3Dab12"
        "@abc.dsql.us-east-1.on.aws:5432/postgres",
        "postgresql://admin:****@abc.dsql.us-east-1.on.aws:5432/postgres",
    ),
    *[
        ("access key id", f"principal {ident} denied", f"principal {ident[:4]}****{ident[-4:]} denied")
        for ident in (  # one of each documented IAM unique-id prefix
            "ABIAQNZGKIQY56JQ7WML",
            "ACCAQNZGKIQY56JQ7WML",
            "AGPAJQABLZS4A3QDU576Q",
            "AIDAJQABLZS4A3QDU576Q",
            "AIPAJQABLZS4A3QDU576Q",
            KEY,
            "ANPAJ2UCCR6DPCEXAMPLE",
            "ANVAJ2UCCR6DPCEXAMPLE",
            "APKAQNZGKIQY56JQ7WML",
            "AROAJQABLZS4A3QDU576Q",
            "ASCAQNZGKIQY56JQ7WML",
            TEMP,
        )
    ],
]

# Shown as they are: ids, names and words that look a little like secrets.
KEPT = [
    "x-amzn-RequestId: 8f2c1a77-1b2c-4d5e-9f00-123456789abc",
    "region us-east-1, service execute-api, account 123456789012",
    "The request signature we calculated does not match the signature you provided; the secret key is wrong",
    "Bearer token expired",
    "x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    '{"progressToken": "abc123", "NextToken": "page-2"}',
    SIGNED,
    "akiaiosfodnn7example AKIA1234",
    "https://api.example.com:8443/prod/mcp",
]

ROWS = [*MASKED, *(("kept", text, text) for text in KEPT)]
IDS = [f"{shape}-{index}" for index, (shape, _, _) in enumerate(ROWS)]


@pytest.mark.parametrize(("shape", "text", "shown"), ROWS, ids=IDS)
def test_redact_masks_every_secret_shape_and_nothing_else(shape: str, text: str, shown: str) -> None:
    from sigv4_proxy.redact import redact

    assert redact(text) == shown
    assert redact(shown) == shown  # idempotent: the masked form is left alone


@pytest.mark.parametrize("formatter", [TextFormatter(), JsonFormatter()], ids=["text", "json"])
@pytest.mark.parametrize(("shape", "text", "shown"), ROWS, ids=IDS)
def test_the_logger_masks_what_redact_masks(formatter: logging.Formatter, shape: str, text: str, shown: str) -> None:
    record = logging.LogRecord("sigv4_proxy.test", logging.INFO, __file__, 1, "%s", (text,), None)
    line = formatter.format(record)
    if isinstance(formatter, JsonFormatter):
        assert json.loads(line)["message"] == shown
    else:
        assert line.endswith(f" INFO  {shown}")


def test_the_security_guide_lists_every_masked_shape() -> None:
    guide = (Path(__file__).parents[2] / "docs" / "security.md").read_text(encoding="utf-8")
    section = guide.split("### What is masked", 1)[1].split("\n#", 1)[0]
    listed = {match.group(1) for match in re.finditer(r"^\| (?!shape |---)([^|]+?) +\|", section, re.M)}
    assert listed == {shape for shape, _, _ in MASKED}


@pytest.mark.parametrize(
    ("key", "shown"),
    [
        (KEY, "AKIA****MPLE"),
        ("AKIA****MPLE", "AKIA****MPLE"),  # idempotent
        ("AKIDEXAMPLE", "AKID****MPLE"),
        ("test-key", "****"),  # 8 characters or fewer: the first and last four would be all of it
        ("", "****"),
    ],
)
def test_mask_access_key(key: str, shown: str) -> None:
    from sigv4_proxy.redact import mask_access_key

    assert mask_access_key(key) == shown


@pytest.mark.parametrize(
    ("name", "value", "shown"),
    [
        (
            "Authorization",
            f"AWS4-HMAC-SHA256 Credential={KEY}/20150830/us-east-1/iam/aws4_request, SignedHeaders=host, "
            f"Signature={SIG}",
            "AWS4-HMAC-SHA256 Credential=AKIA****MPLE/20150830/us-east-1/iam/aws4_request, SignedHeaders=host, "
            "Signature=****",
        ),
        ("authorization", "Basic YWxpY2U6czNjcmV0", "****"),
        ("Proxy-Authorization", "Bearer abc", "****"),
        ("Cookie", "session=abc", "****"),
        ("X-Amz-Security-Token", TOKEN, f"**** ({len(TOKEN)} chars)"),
        ("X-Amz-Date", "20250101T000000Z", "20250101T000000Z"),
        ("X-Debug", f"key {KEY}", "key AKIA****MPLE"),
    ],
)
def test_redact_header(name: str, value: str, shown: str) -> None:
    from sigv4_proxy.redact import redact_header

    assert redact_header(name, value) == shown


@pytest.mark.parametrize(
    ("url", "shown", "masked"),
    [
        ("https://api.example.com/prod/mcp", "https://api.example.com/prod/mcp", "https://api.example.com/prod/mcp"),
        (
            "https://alice:s3cret@[::1]:8443/mcp?X-Amz-Signature=ab#frag",
            "https://[::1]:8443/mcp",
            "https://alice:****@[::1]:8443/mcp?X-Amz-Signature=ab#frag",
        ),
        ("http://tok3n@proxy.corp:3128", "http://proxy.corp:3128", "http://****@proxy.corp:3128"),
        ("http://u:p%40ss@host", "http://host", "http://u:****@host"),
    ],
)
def test_display_url_and_mask_url_credentials(url: str, shown: str, masked: str) -> None:
    from sigv4_proxy.redact import display_url, mask_url_credentials

    assert display_url(url) == shown
    assert mask_url_credentials(url) == masked
