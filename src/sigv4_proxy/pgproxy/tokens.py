"""Tokens for the `pg` proxy: one per upstream connection, from the process's one credential provider, and the
diagnosis of a token the upstream refused (the `inspect` checks; never the token itself)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sigv4_proxy.clock import utc_now
from sigv4_proxy.credentials import CredentialSource
from sigv4_proxy.logs import register_credentials
from sigv4_proxy.pgproxy.config import Target
from sigv4_proxy.redact import mask_access_key
from sigv4_proxy.signing.model import Credentials

DSQL_ADMIN_USER = "admin"


class TokenMinter:
    """Signs a token for (target, user) with the current credentials. ``credentials_now`` never does I/O;
    :meth:`credentials` may (SSO, STS, IMDS refresh): the door calls it off the event loop when needed."""

    def __init__(self, source: CredentialSource, *, expires_in: int, now: Callable[[], datetime] = utc_now) -> None:
        self.source = source
        self.expires_in = expires_in
        self.now = now

    def credentials_now(self) -> Credentials | None:
        """The credentials in hand when still valid for a while (no I/O), else None."""
        return self.source.cached(self.now())

    def credentials(self) -> Credentials:
        """Current credentials (may refresh; raises CredentialsError)."""
        credentials = self.source.get(self.now())
        register_credentials(credentials)  # any accidental echo in a log line is masked
        return credentials

    def mint(self, target: Target, user: str, credentials: Credentials) -> str:
        """DSQL: ``DbConnectAdmin`` iff the user is ``admin``, else ``DbConnect``; RDS: ``rds-db`` for
        ``hostname:port`` and the user."""
        from sigv4_proxy.tokens import dsql_token, rds_token

        if target.kind == "rds":
            return rds_token(
                target.hostname,
                target.port,
                user,
                target.signing_region,
                expires_in=min(self.expires_in, 900),
                credentials=credentials,
                now=self.now(),
            )
        return dsql_token(
            target.token_host,
            target.signing_region,
            admin=user == DSQL_ADMIN_USER,
            expires_in=self.expires_in,
            credentials=credentials,
            now=self.now(),
        )


def diagnose(token: str, *, user: str, now: datetime, clock_suspect: bool = False) -> list[str]:
    """What the `inspect` checks say about a token the upstream refused, one line each (no secret: the findings
    quote fields, never the signature or session token). When every check passes, the cause is elsewhere: this
    machine's clock when the upstream called the time wrong (``clock_suspect``), else IAM or the database."""
    from sigv4_proxy.inspection import ERROR, WARNING, inspect_token
    from sigv4_proxy.tokens import parse_token

    parsed = parse_token(token)
    report = inspect_token(parsed, now=now, user=user)
    lines = [
        f"{finding.severity}: {finding.message}" + (f" (fix: {finding.fix})" if finding.fix else "")
        for finding in report.findings
        if finding.severity in (ERROR, WARNING)
    ]
    if lines:
        return lines
    if clock_suspect:
        # Signed a moment ago, by this machine's clock: a server that finds it expired or not yet valid disagrees
        # with that clock.
        return [
            "the upstream says the token's time is wrong although it was signed just now: this machine's clock is "
            "off (compare `date -u` with a time server; enable NTP, e.g. `timedatectl set-ntp true`)"
        ]
    key = mask_access_key(parsed.access_key_id or "")
    action = parsed.action or "?"
    return [
        f"the token passed every inspect check (host {parsed.hostname}, action {action}, region "
        f"{parsed.scope_region}, key {key}): the refusal comes from IAM or the database — check that the identity's "
        f"policy allows {_permission(parsed.scope_service, action)} on this cluster"
        + (
            f", and that role {user!r} exists with LOGIN and is mapped to the identity (AWS IAM GRANT)"
            if action == "DbConnect"
            else ""
        )
    ]


def _permission(service: str | None, action: str) -> str:
    if service == "rds-db":
        return "rds-db:connect for this database user"
    return f"dsql:{action}"
