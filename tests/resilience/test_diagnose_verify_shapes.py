"""Real rejections, end to end without sockets: sign() a request wrongly, let the core's verify() reject it the
way `emulate mcp` does (`VerifyResult.to_response()`, API Gateway's shape), and diagnose that response."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

import pytest

from sigv4_proxy import diagnose as d
from sigv4_proxy.clock import SkewedClock
from sigv4_proxy.diagnose import SigningContext, diagnose_response
from sigv4_proxy.redact import mask_access_key
from sigv4_proxy.signing.api import sign
from sigv4_proxy.signing.model import Credentials
from sigv4_proxy.signing.verify import verify

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)
KEY = Credentials("AKIDEXAMPLEKEY000001", "secret/EXAMPLE/key")
TEMP = Credentials("ASIAEXAMPLEKEY000002", "temp/secret", session_token="IQoJb3JpZ2luX2VjSECRETTOKEN")
URL = "https://abc123.execute-api.us-east-1.amazonaws.com/prod/mcp"
BODY = b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}'


@dataclass
class Scenario:
    id: str
    kind: str
    hint: str
    sign_with: Credentials = KEY
    signed_region: str | list[str] = "us-east-1"
    signed_service: str = "execute-api"
    algorithm: str = "v4"
    signed_at: datetime = NOW
    url: str = URL
    server_knows: list[Credentials] = field(default_factory=lambda: [KEY])
    server_region: str | None = "us-east-1"
    server_service: str | None = "execute-api"
    drop_headers: tuple[str, ...] = ()
    strip_token: bool = False


SCENARIOS = [
    Scenario(
        "wrong-secret",
        d.SIGNATURE_MISMATCH,
        "service 'execute-api' and region 'us-east-1' fit the host, so the secret key does not belong to access "
        "key AKID****0001 (check AWS_SECRET_ACCESS_KEY or the profile's credentials; `aws sts "
        "get-caller-identity` tests them), or something between us and the server changed the request (path, "
        "host or headers)",
        sign_with=Credentials(KEY.access_key_id, "not-the-secret"),
    ),
    Scenario(
        "wrong-service",
        d.WRONG_SERVICE,
        "signed for service 'lambda' but the server expects 'execute-api': use --service-name execute-api",
        signed_service="lambda",
    ),
    Scenario(
        "wrong-region",
        d.WRONG_REGION,
        "signed for region 'us-east-1' but the endpoint is in us-west-2: use --region us-west-2",
        url="https://abc123.execute-api.us-west-2.amazonaws.com/prod/mcp",
        server_region="us-west-2",
    ),
    Scenario(
        "v4a-region-set-excludes-endpoint",
        d.WRONG_REGION,
        "signed for region set 'eu-*' but the endpoint is in us-east-1: use --region-set us-east-1 (or a set that "
        "includes it)",
        algorithm="v4a",
        signed_region=["eu-*"],
    ),
    Scenario(
        "clock-10-min-behind",
        d.CLOCK_SKEW,
        "this machine's clock is 10 min behind the server's: signatures are valid for 5 minutes around the "
        "server's time. Sync the clock (Linux: `sudo chronyc makestep` or `sudo timedatectl set-ntp true`; "
        "macOS: `sudo sntp -sS time.apple.com`)",
        signed_at=NOW - timedelta(minutes=10),
    ),
    Scenario(
        "clock-7-min-ahead",
        d.CLOCK_SKEW,
        "this machine's clock is 7 min 30 s ahead of the server's: signatures are valid for 5 minutes around the "
        "server's time. Sync the clock (Linux: `sudo chronyc makestep` or `sudo timedatectl set-ntp true`; "
        "macOS: `sudo sntp -sS time.apple.com`)",
        signed_at=NOW + timedelta(minutes=7, seconds=30),
    ),
    Scenario(
        "unknown-key",
        d.INVALID_TOKEN,
        "AWS does not recognise access key AKID****0001: the key was deleted or deactivated, the key belongs to "
        "another partition (China, GovCloud), or region us-east-1 is not enabled for the account; check with `aws "
        "sts get-caller-identity`",
        server_knows=[],
    ),
    Scenario(
        "temporary-key-without-session-token",
        d.MISSING_SESSION_TOKEN,
        "access key ASIA****0002 is a temporary key (ASIA…) but no session token was sent: set AWS_SESSION_TOKEN "
        "(or aws_session_token in the profile) together with the key",
        sign_with=Credentials(TEMP.access_key_id, TEMP.secret_access_key),
        server_knows=[TEMP],
    ),
    Scenario(
        "expired-token",
        d.EXPIRED_TOKEN,
        "the temporary credentials in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN have expired "
        "and environment credentials cannot refresh: export fresh ones and restart, or use a profile that "
        "refreshes itself (SSO, role_arn + source_profile, credential_process)",
        sign_with=TEMP,
        server_knows=[
            Credentials(
                TEMP.access_key_id, TEMP.secret_access_key, TEMP.session_token, expiry=NOW - timedelta(seconds=1)
            )
        ],
    ),
    Scenario(
        "unsigned",
        d.MISSING_AUTH,
        "API Gateway answers this both for unsigned requests and for a path or method the API does not define: "
        "check the target URL's path (stage name included, e.g. /prod/mcp) and the method",
        drop_headers=("authorization",),
    ),
    Scenario(
        "date-header-stripped",
        d.INCOMPLETE_SIGNATURE,
        "the server received an incomplete or malformed signature: something between us and the server altered "
        "the Authorization or X-Amz-* headers",
        drop_headers=("x-amz-date",),
    ),
]


def _rejection(scenario: Scenario) -> tuple[int, list[tuple[str, str]], bytes]:
    signed = sign(
        "POST",
        scenario.url,
        [("Content-Type", "application/json")],
        BODY,
        credentials=scenario.sign_with,
        region=scenario.signed_region,
        service=scenario.signed_service,
        algorithm=scenario.algorithm,
        now=scenario.signed_at,
    )
    headers = [(k, v) for k, v in signed.headers if k.lower() not in scenario.drop_headers]
    known = {c.access_key_id: c for c in scenario.server_knows}
    result = verify(
        "POST",
        urlsplit(scenario.url).path,
        headers,
        BODY,
        credentials_for=known.get,
        now=NOW,
        region=scenario.server_region,
        service=scenario.server_service,
    )
    assert not result.ok
    return result.to_response()


def _context(scenario: Scenario) -> SigningContext:
    return SigningContext(
        url=scenario.url,
        region=scenario.signed_region,
        service=scenario.signed_service,
        algorithm=scenario.algorithm,
        access_key=mask_access_key(scenario.sign_with.access_key_id),
        has_session_token=scenario.sign_with.session_token is not None,
        credential_method="env",
    )


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.id for s in SCENARIOS])
def test_emulator_shaped_rejection_is_diagnosed(scenario: Scenario) -> None:
    status, headers, body = _rejection(scenario)
    diagnosis = diagnose_response(status, headers, body, context=_context(scenario))
    assert (diagnosis.kind, diagnosis.hint) == (scenario.kind, scenario.hint)
    assert diagnosis.status == 403
    assert diagnosis.message().startswith(f"HTTP 403 {diagnosis.error_type}: ")
    assert "IQoJb3JpZ2luX2VjSECRETTOKEN" not in repr(diagnosis)


def test_signature_mismatch_details_carry_the_servers_canonical_request_without_the_token() -> None:
    scenario = Scenario(
        "x",
        d.SIGNATURE_MISMATCH,
        "",
        sign_with=Credentials(TEMP.access_key_id, "wrong", TEMP.session_token),
        server_knows=[TEMP],
    )
    diagnosis = diagnose_response(*_rejection(scenario), context=_context(scenario))
    assert diagnosis.kind == d.SIGNATURE_MISMATCH
    assert diagnosis.details is not None
    assert "/prod/mcp" in diagnosis.details
    assert "x-amz-security-token:****" in diagnosis.details
    assert TEMP.session_token not in diagnosis.details  # type: ignore[operator]


@pytest.mark.parametrize("minutes", [-10, 10, 42])
def test_skew_message_from_verify_corrects_the_clock(minutes: int) -> None:
    """A proxy whose clock is off signs at local time; the corrected clock then signs at the server's."""
    local_now = NOW + timedelta(minutes=minutes)
    clock = SkewedClock(now=lambda: local_now)
    scenario = Scenario("skew", d.CLOCK_SKEW, "", signed_at=clock())
    diagnosis = diagnose_response(*_rejection(scenario), context=_context(scenario))
    assert diagnosis.recovery == "correct_clock"
    assert clock.correct(None, aws_message=diagnosis.aws_message) == pytest.approx(-minutes * 60)
    assert clock() == NOW
