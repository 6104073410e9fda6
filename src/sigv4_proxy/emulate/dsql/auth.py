"""Who may log in to the DSQL emulator, and how DSQL says no: sans-IO login verification.

The session layer feeds this module what it has read (the TLS server name, the startup user and options, the
password) together with ``now`` and its lookups (identities, ``--deny``, role facts), and gets back either the
signed host / identity or a :class:`Refusal` shaped as DSQL shapes it: severity ``FATAL``, SQLSTATE ``08006``,
message ``unable to accept connection, access denied`` and the cause in HINT (the reference,
``dsql-behaviour.md`` §2). DETAIL carries our own diagnosis (the canonical request the emulator expected, the
``inspect`` findings such as a ``host:5432`` token) so that a psql user sees the fix.

Every text lives in :data:`TEXTS`, each with its source: a reference key for DSQL's (or AWS's) own words, or
``ours`` where DSQL's text is not recorded. Docs and tests quote the table. No refusal text, reason or exception
message carries a secret key, session token, signature or token: access keys are masked, and every refusal is
scrubbed of the request's secrets before it leaves (:func:`_scrub`).

Checks, in order: token size (before any parsing), the core's :func:`~sigv4_proxy.signing.verify.verify` (shape,
``X-Amz-Expires`` up to a week, known key, scope date, ``X-Amz-Date`` ±5 min and expiry, session token, region,
service, signed ``host``, signature against the TLS server name's host), a session token on a long-term key, the
token's age (a week at most), ``Action`` against the user (``admin`` ↔ ``DbConnectAdmin``), ``--deny``; then
:func:`check_role` (role exists, mapped from the principal, has LOGIN).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import cached_property
from types import MappingProxyType
from typing import Final, Literal
from urllib.parse import quote, unquote

from sigv4_proxy.redact import MASK, mask_access_key, redact
from sigv4_proxy.signing.amzdate import MAX_SKEW, format_amz_date, parse_amz_date
from sigv4_proxy.signing.model import MAX_PRESIGN_EXPIRES, Credentials
from sigv4_proxy.signing.verify import SIGNATURE_MISMATCH, VerifyResult, verify
from sigv4_proxy.terminal import printable

__all__ = [
    "ACCESS_DENIED_SQLSTATE",
    "ADMIN_ROLE",
    "MAX_TOKEN_BYTES",
    "TEXTS",
    "ClusterAddress",
    "Identity",
    "Refusal",
    "RoleInfo",
    "Text",
    "TokenVerdict",
    "check_role",
    "check_token",
    "generate_identity",
    "mapping_arn_for",
    "parse_identity",
    "principal_matches",
    "resolve_sni",
]

MAX_TOKEN_BYTES: Final = 65_536
ADMIN_ROLE: Final = "admin"
ACTION_CONNECT: Final = "DbConnect"
ACTION_CONNECT_ADMIN: Final = "DbConnectAdmin"
SERVICE: Final = "dsql"
# pgx shows 08006 in two independent reports; 28000 appears only in an earlier note (reference §2).
ACCESS_DENIED_SQLSTATE: Final = "08006"
FATAL: Final = "FATAL"
# The oldest token accepted, whatever its X-Amz-Expires (docs: "token older than 1 week").
MAX_TOKEN_AGE: Final = timedelta(seconds=MAX_PRESIGN_EXPIRES)
# DETAIL can hold a long canonical request; past this it is cut (a token is at most MAX_TOKEN_BYTES anyway).
MAX_DETAIL_CHARS: Final = 16_384
# Values echoed from the client (user, SNI, action, region) are clipped to this many characters.
ECHO_LIMIT: Final = 100
# Secrets shorter than this are not scrubbed by value (a one-letter "token" would erase every such letter).
MIN_SCRUBBED_SECRET: Final = 8

OURS: Final = "ours (DSQL's text not recorded)"


# --------------------------------------------------------------------------------------------- the texts


@dataclass(frozen=True)
class Text:
    """One text of a refusal: a ``str.format`` template and where it comes from (reference keys of
    ``dsql-behaviour.md``, or :data:`OURS`)."""

    template: str
    source: str

    def format(self, **values: str) -> str:
        return self.template.format(**values)


TEXTS: Final[Mapping[str, Text]] = MappingProxyType(
    {
        # -- messages (the M field)
        "access_denied": Text("unable to accept connection, access denied", "[TS] [U-PGX]"),
        "no_sni": Text("unable to accept connection, sni was not received", "[TS] [U-SNI]"),
        # -- hints: DSQL's (or AWS's generic SigV4/STS) words
        "signature_expired": Text(
            "Signature expired: {amz_date} is now earlier than {earliest} ({now} - {lifetime})",
            "[SKILL] (prefix reproduced; the rest in the generic SigV4 form)",
        ),
        "not_yet_current": Text(
            "Signature not yet current: {amz_date} is still later than {latest} ({now} + {skew})",
            "generic SigV4 wording (reference dsql-tokens.md §3)",
        ),
        "wrong_action": Text("Wrong user to action mapping. user: {user}, action: {action}", "[TS]"),
        "not_authorized": Text(
            "User: {arn} is not authorized to perform: dsql:{action} on resource: {resource} because no "
            "identity-based policy allows the dsql:{action} action",
            "[U-NAUTH] (unverified)",
        ),
        "invalid_token": Text("The security token included in the request is invalid.", "[U-SID] (unverified)"),
        "iam_auth_failed": Text(
            'IAM authentication failed for user "{user}"',
            "[TS] (token older than a week, or an expired assumed-role session)",
        ),
        "role_missing": Text("Role {role} does not exist", "[TS]"),
        # -- hints: ours, where DSQL's text is not recorded
        "signature_mismatch": Text(SIGNATURE_MISMATCH, OURS + "; AWS's generic SigV4 wording"),
        "wrong_region": Text(
            "Credential should be scoped to a valid region, not '{region}'.", OURS + "; AWS's generic SigV4 wording"
        ),
        "wrong_service": Text(
            "Credential should be scoped to correct service: 'dsql'.", OURS + "; AWS's generic SigV4 wording"
        ),
        "malformed": Text("{message}", OURS + "; the core verifier's (AWS's generic SigV4) wording"),
        "not_a_token": Text(
            "the password is not an Aurora DSQL authentication token "
            "(expected <host>/?Action=DbConnect&X-Amz-Algorithm=...&X-Amz-Signature=...)",
            OURS,
        ),
        "token_too_long": Text(
            f"the password is longer than {MAX_TOKEN_BYTES} bytes; an authentication token is a few hundred", OURS
        ),
        "bad_action": Text("Action '{action}' is not DbConnect or DbConnectAdmin", OURS),
        "role_not_mapped": Text("IAM principal {arn} is not mapped to role {role}", OURS),
        "role_no_login": Text(
            "role {role} must have the LOGIN attribute",
            OURS + "; DSQL's AWS IAM GRANT error [TS], reused at connect",
        ),
        "other_cluster": Text("this endpoint serves cluster {cluster_id} in {region} ({host}), not {named}", OURS),
        "vpce_without_cluster_id": Text(
            "a connection through a VPC endpoint must name its cluster: options=-c amzn-cluster-id=<cluster-id>",
            OURS,
        ),
        # -- details: always ours (our diagnosis)
        "detail_signature": Text(
            "The canonical request the emulator expected (compare it with your signer's):\n{creq}\n\n"
            "The string to sign:\n{sts}",
            OURS,
        ),
        "detail_unknown_key": Text("access key {key} is not one of this emulator's identities (--identity)", OURS),
        "detail_session_missing": Text(
            "access key {key} is temporary: sign with its session token (X-Amz-Security-Token goes inside the "
            "signed query)",
            OURS,
        ),
        "detail_session_mismatch": Text(
            "the token's X-Amz-Security-Token is not the session token of access key {key}", OURS
        ),
        "detail_session_unexpected": Text(
            "access key {key} is a long-term key (no session token), yet the token carries X-Amz-Security-Token",
            OURS,
        ),
        "detail_session_expired": Text(
            "The security token included in the request is expired: the session credentials of {key} expired at "
            "{expires_at}; get new ones",
            OURS,
        ),
        "detail_too_old": Text(
            "the token was signed at {amz_date}, more than a week ({max} seconds) ago; generate a fresh one", OURS
        ),
        "detail_expires_too_long": Text("X-Amz-Expires {expires} is over the maximum of {max} seconds (a week)", OURS),
        "detail_region": Text("cluster {cluster_id} is in {region}: sign with region {region}", OURS),
        "detail_host": Text(
            "the token names host '{named}', but this connection is for '{host}' (the TLS server name) and the "
            "signature is checked against '{host}': sign the token for '{host}' "
            "(sigv4-proxy dsql-token --hostname {host})",
            OURS,
        ),
        "detail_denied": Text(
            "principal {arn} is in the emulator's --deny list (an IAM policy without dsql:{action})", OURS
        ),
        "detail_role_missing": Text(
            "as admin: CREATE ROLE {role} WITH LOGIN; AWS IAM GRANT {role} TO '{mapping}'", OURS
        ),
        "detail_role_not_mapped": Text(
            "as admin: AWS IAM GRANT {role} TO '{mapping}' (map the IAM role ARN, not the assumed-role session ARN)",
            OURS,
        ),
        "detail_role_no_login": Text("as admin: ALTER ROLE {role} WITH LOGIN", OURS),
        "detail_no_sni": Text(
            "the TLS handshake named no server: connect with the cluster host name ({host}), e.g. host={host} "
            "hostaddr=127.0.0.1 (psql 14 or newer sends it)",
            OURS,
        ),
        "detail_other_cluster": Text(
            "connect with host={host} (hostaddr=<address> to reach this emulator) and sign the token for it", OURS
        ),
    }
)


def _text(name: str, /, **values: str) -> str:
    return TEXTS[name].format(**values)


def _echo(value: str, limit: int = ECHO_LIMIT) -> str:
    """A client-supplied value fit to quote: control characters escaped, clipped."""
    shown = printable(value)
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


# ---------------------------------------------------------------------------------------------- refusal


@dataclass(frozen=True)
class Refusal:
    """A login refused as DSQL refuses it. `reason` is the short text for our log line (no secrets)."""

    sqlstate: str
    message: str
    hint: str | None = None
    detail: str | None = None
    reason: str = ""
    severity: str = FATAL

    def fields(self) -> list[tuple[str, str]]:
        """The ErrorResponse fields (S, V, C, M, D, H)."""
        from sigv4_proxy.pg.protocol import error_fields

        return error_fields(self.severity, self.sqlstate, self.message, detail=self.detail, hint=self.hint)


def _access_denied(hint: str | None, detail_lines: list[str], reason: str, secrets: Collection[str] = ()) -> Refusal:
    detail = "\n".join(line for line in detail_lines if line) or None
    if detail is not None and len(detail) > MAX_DETAIL_CHARS:
        detail = detail[: MAX_DETAIL_CHARS - 1] + "…"
    return Refusal(
        ACCESS_DENIED_SQLSTATE,
        _text("access_denied"),
        hint=_scrub(hint, secrets),
        detail=_scrub(detail, secrets),
        reason=reason,
    )


def _scrub(text: str | None, secrets: Collection[str]) -> str | None:
    """`text` with every secret of this request replaced by ``****`` (the raw and the query-encoded form), after
    the shape-based :func:`~sigv4_proxy.redact.redact` (session tokens, signatures, access keys)."""
    if text is None:
        return None
    scrubbed = redact(text)
    for secret in secrets:
        if len(secret) < MIN_SCRUBBED_SECRET:
            continue
        # surrogatepass: a lone surrogate (never sent by a client, but possible in text) must not raise here.
        for form in {secret, quote(secret, safe="-_.~", errors="surrogatepass")}:
            scrubbed = scrubbed.replace(form, MASK)
    return scrubbed


# --------------------------------------------------------------------------------------------- identity

_ACCESS_KEY = re.compile(r"[A-Za-z0-9]{1,128}")
_SECRET = re.compile(r"[\x21-\x7e]+")  # printable ASCII, no space (a colon cannot reach here: it splits)
_ACCOUNT = re.compile(r"[0-9]{12}")
_NAME = r"[\w+=,.@-]{1,128}"
_PATH = rf"(?:{_NAME}/)*"
_IAM_RESOURCE = re.compile(rf"(?:role|user)/{_PATH}{_NAME}")
_STS_RESOURCE = re.compile(rf"assumed-role/{_NAME}/{_NAME}")
_PARTITION = re.compile(r"aws(?:-[a-z]+)*")
IDENTITY_SHAPE: Final = "AKID:SECRET:PRINCIPAL_ARN[:SESSION_TOKEN[:EXPIRES]]"
ARN_SHAPE: Final = (
    "arn:aws:iam::123456789012:role/NAME, arn:aws:iam::123456789012:user/NAME or "
    "arn:aws:sts::123456789012:assumed-role/ROLE/SESSION"
)


@dataclass(frozen=True)
class Identity:
    """An IAM principal the emulator knows: its access key, secret, ARN and (temporary credentials) session token
    and expiry. `generated`: made up at start (the banner prints it in full). `repr` shows no secret."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    principal_arn: str
    session_token: str | None = field(default=None, repr=False)
    expires_at: datetime | None = None
    generated: bool = False

    def masked(self) -> str:
        """``AKIA****MPLE (arn:aws:iam::123456789012:role/app)``: fit for a log line or a banner."""
        return f"{mask_access_key(self.access_key_id)} ({self.principal_arn})"

    def spec(self) -> str:
        """The ``--identity`` form of this identity, secrets included (for a generated identity's banner)."""
        parts = [self.access_key_id, self.secret_access_key, self.principal_arn]
        if self.session_token is not None:
            parts.append(self.session_token)
            if self.expires_at is not None:
                parts.append(format_amz_date(self.expires_at))
        return ":".join(parts)

    @cached_property
    def credentials(self) -> Credentials:
        """The core's credentials, built once (their signing-key fingerprint is cached on the object)."""
        return Credentials(self.access_key_id, self.secret_access_key, self.session_token, self.expires_at)

    @property
    def account(self) -> str:
        fields = self.principal_arn.split(":")
        return fields[4] if len(fields) > 4 else ""

    @property
    def partition(self) -> str:
        fields = self.principal_arn.split(":")
        return fields[1] if len(fields) > 1 else "aws"


def _identity_error(problem: str) -> ValueError:
    # Never echoes the spec: a field in the wrong place could be the secret.
    return ValueError(f"invalid identity: {problem}; expected {IDENTITY_SHAPE}")


def _check_arn(arn_fields: list[str]) -> str:
    arn = ":".join(arn_fields)
    prefix, partition, service, region, account, resource = arn_fields
    shown = f"'{_echo(arn)}'" if prefix == "arn" else "(not an ARN)"
    problem = None
    if prefix != "arn" or not _PARTITION.fullmatch(partition):
        problem = "the principal ARN must start with arn:aws:"
    elif region:
        problem = "an IAM principal ARN has no region"
    elif not _ACCOUNT.fullmatch(account):
        problem = "the account in the principal ARN must be 12 digits"
    elif not (
        (service == "iam" and _IAM_RESOURCE.fullmatch(resource))
        or (service == "sts" and _STS_RESOURCE.fullmatch(resource))
    ):
        problem = f"the principal ARN must look like {ARN_SHAPE}"
    if problem is not None:
        raise _identity_error(f"principal ARN {shown}: {problem}")
    return arn


def parse_identity(spec: str) -> Identity:
    """``AKID:SECRET:PRINCIPAL_ARN[:SESSION_TOKEN[:EXPIRES]]``: the ARN is six colon-separated fields, the session
    token has no colon, EXPIRES is ``yyyymmddTHHMMSSZ`` (UTC). ValueError (never quoting a secret) otherwise."""
    parts = spec.strip().split(":")
    if not 8 <= len(parts) <= 10:
        raise _identity_error(f"{len(parts)} colon-separated fields (the ARN alone has six)")
    key, secret, arn_fields, extra = parts[0], parts[1], parts[2:8], parts[8:]
    if not _ACCESS_KEY.fullmatch(key):
        raise _identity_error("the access key id (first field) must be 1 to 128 letters and digits")
    if not _SECRET.fullmatch(secret):
        raise _identity_error("the secret access key (second field) must be printable characters, no spaces")
    arn = _check_arn(arn_fields)
    token = extra[0] if extra else None
    if token is not None and not _SECRET.fullmatch(token):
        raise _identity_error("the session token (after the ARN) must be printable characters, no spaces")
    expires_at = None
    if len(extra) == 2:
        expires_at = parse_amz_date(extra[1])
        if expires_at is None:
            raise _identity_error(f"EXPIRES '{_echo(extra[1], 20)}' is not yyyymmddTHHMMSSZ (UTC)")
    return Identity(key, secret, arn, token, expires_at)


def generate_identity(
    *,
    account: str = "123456789012",
    role: str = "dsql-emulator",
    session: bool = False,
    expires_at: datetime | None = None,
) -> Identity:
    """Random credentials for the IAM role `role`: an ``AKIA`` key whose principal is the role ARN, or (session)
    an ``ASIA`` key with a session token whose principal is an assumed-role session of it (and `expires_at`)."""
    from sigv4_proxy.emulate.credentials import generate_credentials

    if not _ACCOUNT.fullmatch(account):
        raise ValueError(f"account must be 12 digits, got {_echo(account)!r}")
    if not re.fullmatch(_NAME, role):
        raise ValueError(f"role must be an IAM role name, got {_echo(role)!r}")
    if expires_at is not None and not session:
        raise ValueError("expires_at needs session=True: only session credentials expire")
    credentials = generate_credentials(session_token=session, expiry=expires_at)
    arn = (
        f"arn:aws:sts::{account}:assumed-role/{role}/sigv4-proxy-emulator"
        if session
        else f"arn:aws:iam::{account}:role/{role}"
    )
    return Identity(
        credentials.access_key_id,
        credentials.secret_access_key,
        arn,
        credentials.session_token,
        expires_at,
        generated=True,
    )


# ---------------------------------------------------------------------------------------- principals


@dataclass(frozen=True)
class _Principal:
    partition: str
    account: str
    kind: str  # "role", "user", "assumed-role"
    name: str  # the role's or user's name (no path); for assumed-role, the role's
    path_and_name: str  # what follows "<kind>/"


def _principal(arn: str) -> _Principal | None:
    fields = arn.split(":")
    if len(fields) != 6 or fields[0] != "arn":
        return None
    kind, _, rest = fields[5].partition("/")
    if not rest:
        return None
    name = rest.split("/")[0] if kind == "assumed-role" else rest.rsplit("/", 1)[-1]
    return _Principal(fields[1], fields[4], kind, name, rest)


def principal_matches(mapping_arn: str, principal_arn: str) -> bool:
    """Whether a role mapping's ARN covers the principal that signed: the same ARN; an ``iam…role/[path/]R``
    mapping covers ``sts…assumed-role/R/<session>`` (an assumed-role ARN drops the role's path) and
    ``iam…role/R`` with any path (role names are unique in an account whatever their path)."""
    if mapping_arn == principal_arn:
        return True
    mapping, principal = _principal(mapping_arn), _principal(principal_arn)
    if mapping is None or principal is None or mapping.kind != "role":
        return False
    return (
        principal.kind in ("role", "assumed-role")
        and mapping.partition == principal.partition
        and mapping.account == principal.account
        and mapping.name == principal.name
    )


def mapping_arn_for(principal_arn: str) -> str:
    """The ARN to map with ``AWS IAM GRANT``: an assumed-role session's role (``iam…role/R``), else the ARN."""
    principal = _principal(principal_arn)
    if principal is None or principal.kind != "assumed-role":
        return principal_arn
    return f"arn:{principal.partition}:iam::{principal.account}:role/{principal.name}"


# ------------------------------------------------------------------------------------------------- SNI


@dataclass(frozen=True)
class ClusterAddress:
    """The cluster the emulator serves: its id and region (lower-cased)."""

    cluster_id: str
    region: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "cluster_id", self.cluster_id.lower())
        object.__setattr__(self, "region", self.region.lower())

    @property
    def public_host(self) -> str:
        return f"{self.cluster_id}.dsql.{self.region}.on.aws"

    def resource_arn(self, account: str, partition: str = "aws") -> str:
        return f"arn:{partition}:dsql:{self.region}:{account}:cluster/{self.cluster_id}"

    def accepts_sni(self, sni: str) -> bool:
        """Whether a TLS server name is one of this cluster's: its public host, its PrivateLink private-DNS host
        ``<id>.dsql-<suffix>.<region>.on.aws``, or a DSQL VPC endpoint of its region (whose cluster the startup
        options name: :func:`resolve_sni` checks that)."""
        return self._sni_kind(sni.lower().rstrip(".")) is not None

    def _sni_kind(self, host: str) -> Literal["cluster", "vpce"] | None:
        """What a (lower-case) server name is for this cluster, read with the project's one table of host shapes
        (:func:`sigv4_proxy.tokens.host_info`)."""
        from sigv4_proxy.tokens import host_info

        info = host_info(host)
        if info.service != SERVICE or info.region != self.region:
            return None
        if info.kind == "dsql":
            return "cluster" if info.cluster_id == self.cluster_id else None
        # A DSQL interface endpoint's name (vpce-….dsql-<suffix>.<region>.vpce.amazonaws.com), not the management
        # API's (vpce-….dsql.<region>…): the data plane's service name carries a suffix.
        return "vpce" if info.kind == "vpce" and host.split(".")[1].startswith("dsql-") else None


def resolve_sni(sni: str | None, cluster: ClusterAddress, *, options_cluster_id: str | None) -> str | Refusal:
    """The host the token must be signed for, from the TLS server name: the public host or the PrivateLink
    private-DNS host as named (lower-case, no trailing dot); for a VPC endpoint host with
    ``-c amzn-cluster-id=<id>``, the cluster's public host. A :class:`Refusal` otherwise (no SNI: DSQL's own)."""
    if not sni:
        return Refusal(
            ACCESS_DENIED_SQLSTATE,
            _text("no_sni"),
            detail=_text("detail_no_sni", host=cluster.public_host),
            reason="no TLS server name (SNI)",
        )
    host = sni.lower().rstrip(".")
    kind = cluster._sni_kind(host)
    if kind == "cluster":
        return host
    if kind == "vpce":
        if not options_cluster_id:
            return _access_denied(
                _text("vpce_without_cluster_id"),
                [_text("detail_other_cluster", host=cluster.public_host)],
                "VPC endpoint without amzn-cluster-id",
            )
        if options_cluster_id.lower() == cluster.cluster_id:
            return cluster.public_host
        named = f"amzn-cluster-id '{_echo(options_cluster_id)}'"
    else:
        named = f"the server name '{_echo(host)}'"
    return _access_denied(
        _text(
            "other_cluster", cluster_id=cluster.cluster_id, region=cluster.region, host=cluster.public_host, named=named
        ),
        [_text("detail_other_cluster", host=cluster.public_host)],
        "server name of another cluster",
    )


# ----------------------------------------------------------------------------------------------- token


@dataclass(frozen=True)
class TokenVerdict:
    """The outcome of :func:`check_token`: the identity and action when `ok`, else the refusal; the masked
    access key (when the token names one) for the log line either way."""

    ok: bool
    identity: Identity | None
    action: str | None
    refusal: Refusal | None
    masked_access_key: str | None


@dataclass(frozen=True)
class _Login:
    """One login attempt: what the checks and the diagnosis read."""

    token: str
    user: str
    token_host: str
    cluster: ClusterAddress
    now: datetime
    params: Mapping[str, list[str]]

    def param(self, name: str) -> str | None:
        values = self.params.get(name)
        return values[0] if values else None

    @cached_property
    def secrets(self) -> tuple[str, ...]:
        """What no refusal may quote: the token itself, its signature and session token."""
        return tuple(s for s in (self.token, self.param("X-Amz-Signature"), self.param("X-Amz-Security-Token")) if s)


def _query_params(query: str) -> dict[str, list[str]]:
    params: dict[str, list[str]] = {}
    for piece in query.split("&"):
        name, _, value = piece.partition("=")
        params.setdefault(unquote(name), []).append(unquote(value))
    return params


def check_token(
    token: str,
    *,
    user: str,
    token_host: str,
    cluster: ClusterAddress,
    identities: Mapping[str, Identity],
    denied: Collection[str],
    now: datetime,
) -> TokenVerdict:
    """Verify the password of a login as DSQL does; `token_host` is what :func:`resolve_sni` returned,
    `identities` are keyed by access key id, `denied` holds principal ARNs (``--deny``). Never raises."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    # Counted before anything looks inside: a UTF-8 character is at least one byte, so only a short-enough
    # text is encoded to count its bytes.
    if len(token) > MAX_TOKEN_BYTES or len(token.encode("utf-8", "replace")) > MAX_TOKEN_BYTES:
        return _verdict(None, None, _access_denied(_text("token_too_long"), [], "token too long", (token,)), None)
    slash = token.find("/")
    target = token[slash:] if slash >= 0 else ""
    login = _Login(token, user, token_host, cluster, now, _query_params(target.partition("?")[2]))
    if "?" not in target:
        return _verdict(None, None, _refuse(login, _text("not_a_token"), [], "not a token"), None)
    result = verify(
        "GET",
        target,
        [("host", token_host)],
        b"",
        credentials_for=lambda key: identities[key].credentials if key in identities else None,
        now=now,
        region=cluster.region,
        service=SERVICE,
    )
    actions = login.params.get("Action", [])
    action = actions[0] if len(actions) == 1 else None
    masked = _echo(mask_access_key(result.access_key_id)) if result.access_key_id else None
    if not result.ok:
        return _verdict(None, action, _verify_refusal(login, result, identities), masked)
    identity = identities[result.access_key_id or ""]
    refusal = (
        _session_refusal(login, identity)
        or _action_refusal(login, actions)
        or _denied_refusal(login, identity, action or "", denied)
    )
    return _verdict(identity if refusal is None else None, action, refusal, masked)


def _verdict(
    identity: Identity | None, action: str | None, refusal: Refusal | None, masked: str | None
) -> TokenVerdict:
    return TokenVerdict(refusal is None, identity, action, refusal, masked)


def _refuse(login: _Login, hint: str, lines: list[str], reason: str, identity: Identity | None = None) -> Refusal:
    """An access-denied refusal whose DETAIL is `lines` followed by the token diagnosis."""
    secrets = login.secrets
    if identity is not None:
        secrets = (*secrets, identity.secret_access_key, *(t for t in (identity.session_token,) if t))
    return _access_denied(hint, [*lines, *_diagnosis(login)], reason, secrets)


def _verify_refusal(login: _Login, result: VerifyResult, identities: Mapping[str, Identity]) -> Refusal:
    identity = identities.get(result.access_key_id or "")
    key = _echo(mask_access_key(result.access_key_id or ""))
    reason = result.reason
    if reason == "missing":
        return _refuse(login, _text("not_a_token"), [], "not a token")
    if reason == "expires":
        return _expires_refusal(login, result)
    if reason == "unknown_key":
        return _refuse(login, _text("invalid_token"), [_text("detail_unknown_key", key=key)], "unknown key")
    if reason == "token":
        detail = "detail_session_mismatch" if login.param("X-Amz-Security-Token") else "detail_session_missing"
        return _refuse(login, _text("invalid_token"), [_text(detail, key=key)], "session token", identity)
    if reason == "expired_token":
        return _session_expired(login, identity, key)
    if reason == "expired":
        return _age_refusal(login) or _expired(login, identity)
    if reason == "not_yet_valid":
        return _not_yet_current(login, identity)
    if reason == "scope_region":
        return _wrong_region(login, result, identity)
    if reason == "scope_service":
        return _refuse(login, _text("wrong_service"), [], "wrong service", identity)
    if reason == "signature":
        return _signature_mismatch(login, result, identity)
    return _refuse(login, _text("malformed", message=_echo(result.message, 300)), [], "malformed token", identity)


def _expires_refusal(login: _Login, result: VerifyResult) -> Refusal:
    expires = login.param("X-Amz-Expires") or ""
    if _over_a_week(expires):
        line = _text("detail_expires_too_long", expires=_echo(expires, 20), max=str(MAX_PRESIGN_EXPIRES))
        return _refuse(login, _text("iam_auth_failed", user=_echo(login.user)), [line], "X-Amz-Expires over a week")
    return _refuse(login, _text("malformed", message=_echo(result.message, 300)), [], "bad X-Amz-Expires")


def _over_a_week(expires: str) -> bool:
    """Whether X-Amz-Expires is a number of seconds over a week (its length first: int() of thousands of digits
    is slow, then refused)."""
    if not (expires.isascii() and expires.isdigit()):
        return False
    significant = expires.lstrip("0")
    return len(significant) > len(str(MAX_PRESIGN_EXPIRES)) or int(significant or "0") > MAX_PRESIGN_EXPIRES


def _signed_at(login: _Login) -> datetime | None:
    return parse_amz_date(login.param("X-Amz-Date") or "")


def _age_refusal(login: _Login) -> Refusal | None:
    """A token signed more than a week ago fails whatever its X-Amz-Expires (docs' "older than 1 week")."""
    signed_at = _signed_at(login)
    if signed_at is None or login.now - signed_at <= MAX_TOKEN_AGE:
        return None
    line = _text("detail_too_old", amz_date=format_amz_date(signed_at), max=str(MAX_PRESIGN_EXPIRES))
    return _refuse(login, _text("iam_auth_failed", user=_echo(login.user)), [line], "token older than a week")


def _minutes_or_seconds(seconds: int) -> str:
    return f"{seconds // 60} min." if seconds % 60 == 0 else f"{seconds} sec."


def _expired(login: _Login, identity: Identity | None) -> Refusal:
    signed_at = _signed_at(login)
    lifetime = int(login.param("X-Amz-Expires") or "0")  # verify() checked it is a number up to a week
    now = format_amz_date(login.now)
    hint = _text(
        "signature_expired",
        amz_date=format_amz_date(signed_at) if signed_at else "",
        earliest=format_amz_date(login.now - timedelta(seconds=lifetime)),
        now=now,
        lifetime=_minutes_or_seconds(lifetime),
    )
    return _refuse(login, hint, [], "expired", identity)


def _not_yet_current(login: _Login, identity: Identity | None) -> Refusal:
    signed_at = _signed_at(login)
    hint = _text(
        "not_yet_current",
        amz_date=format_amz_date(signed_at) if signed_at else "",
        latest=format_amz_date(login.now + MAX_SKEW),
        now=format_amz_date(login.now),
        skew=_minutes_or_seconds(int(MAX_SKEW.total_seconds())),
    )
    return _refuse(login, hint, [], "not yet valid", identity)


def _session_expired(login: _Login, identity: Identity | None, key: str) -> Refusal:
    # The docs give "IAM authentication failed" for an expired assumed-role session; "The security token
    # included in the request is expired" is STS's wording (reference §3), kept in DETAIL.
    expires_at = identity.expires_at if identity is not None else None
    line = _text("detail_session_expired", key=key, expires_at=format_amz_date(expires_at) if expires_at else "?")
    return _refuse(login, _text("iam_auth_failed", user=_echo(login.user)), [line], "session expired", identity)


def _wrong_region(login: _Login, result: VerifyResult, identity: Identity | None) -> Refusal:
    claimed = result.region if isinstance(result.region, str) else ",".join(result.region or [])
    line = _text("detail_region", cluster_id=login.cluster.cluster_id, region=login.cluster.region)
    return _refuse(login, _text("wrong_region", region=_echo(claimed)), [line], "wrong region", identity)


def _signature_mismatch(login: _Login, result: VerifyResult, identity: Identity | None) -> Refusal:
    lines = []
    if result.expected_canonical_request is not None:
        lines.append(
            _text(
                "detail_signature",
                creq=redact(result.expected_canonical_request),
                sts=result.expected_string_to_sign or "",
            )
        )
    return _refuse(login, _text("signature_mismatch"), lines, "signature mismatch", identity)


def _session_refusal(login: _Login, identity: Identity) -> Refusal | None:
    """A session token with a long-term key: verify() accepts it (it is signed), AWS does not."""
    if identity.session_token is None and login.param("X-Amz-Security-Token") is not None:
        line = _text("detail_session_unexpected", key=mask_access_key(identity.access_key_id))
        return _refuse(login, _text("invalid_token"), [line], "unexpected session token", identity)
    return None


def _action_refusal(login: _Login, actions: list[str]) -> Refusal | None:
    if len(actions) != 1 or actions[0] not in (ACTION_CONNECT, ACTION_CONNECT_ADMIN):
        shown = ",".join(actions) if actions else "(missing)"
        return _refuse(login, _text("bad_action", action=_echo(shown)), [], "bad Action")
    action = actions[0]
    if (login.user == ADMIN_ROLE) == (action == ACTION_CONNECT_ADMIN):
        return None
    hint = _text("wrong_action", user=_echo(login.user), action=action)
    return _refuse(login, hint, [], "wrong action for user")


def _denied_refusal(login: _Login, identity: Identity, action: str, denied: Collection[str]) -> Refusal | None:
    arn = identity.principal_arn
    if not any(principal_matches(denied_arn, arn) for denied_arn in denied):
        return None
    resource = login.cluster.resource_arn(identity.account, identity.partition)
    hint = _text("not_authorized", arn=arn, action=action, resource=resource)
    return _refuse(login, hint, [_text("detail_denied", arn=arn, action=action)], "denied principal", identity)


# ------------------------------------------------------------------------------------------- diagnosis


def _diagnosis(login: _Login) -> list[str]:
    """Our reading of the token for DETAIL: the host it names against the connection's, then the errors and
    warnings of ``sigv4-proxy inspect``. Best effort: a token too odd to inspect gets no findings."""
    from sigv4_proxy.errors import SigningError
    from sigv4_proxy.inspection import ERROR, WARNING, inspect_token
    from sigv4_proxy.tokens import parse_token

    try:
        token = parse_token(login.token)
        report = inspect_token(token, now=login.now, user=login.user)
    except (SigningError, ValueError):
        return []
    lines = []
    named = token.hostname.lower().rstrip(".")
    if named and named != login.token_host:
        lines.append(_text("detail_host", named=_echo(named), host=login.token_host))
    for finding in report.findings:
        if finding.severity in (ERROR, WARNING):
            fix = f" Fix: {finding.fix}" if finding.fix else ""
            lines.append(printable(f"- {finding.message}.{fix}"))
    return lines


# ----------------------------------------------------------------------------------------------- roles


@dataclass(frozen=True)
class RoleInfo:
    """What the backend knows of the role a login names (``pg_roles`` and ``sys.iam_pg_role_mappings``)."""

    name: str
    exists: bool
    can_login: bool
    mapped_arns: frozenset[str]


def check_role(user: str, identity: Identity, role: RoleInfo | None, cluster: ClusterAddress) -> Refusal | None:
    """After :func:`check_token`: may `identity` log in as `user`? ``admin`` needs no mapping (its token's
    ``DbConnectAdmin`` was checked); any other role must exist, be mapped from the principal and have LOGIN."""
    if user == ADMIN_ROLE:
        return None
    shown = _echo(user)
    mapping = mapping_arn_for(identity.principal_arn)
    secrets = (identity.secret_access_key, *(t for t in (identity.session_token,) if t))
    if role is None or not role.exists:
        line = _text("detail_role_missing", role=shown, mapping=mapping)
        return _access_denied(_text("role_missing", role=shown), [line], "role does not exist", secrets)
    if not any(principal_matches(arn, identity.principal_arn) for arn in role.mapped_arns):
        hint = _text("role_not_mapped", arn=identity.principal_arn, role=shown)
        line = _text("detail_role_not_mapped", role=shown, mapping=mapping)
        return _access_denied(hint, [line], "principal not mapped to role", secrets)
    if not role.can_login:
        line = _text("detail_role_no_login", role=shown)
        return _access_denied(_text("role_no_login", role=shown), [line], "role without LOGIN", secrets)
    return None
