"""IAM database authentication tokens for Aurora DSQL and RDS: generate and parse them.

A token is a SigV4 presigned ``GET https://<host>/?Action=...`` with the ``https://`` removed. Generation is
sans-IO: the caller passes credentials and (optionally) ``now``; only when ``now`` is None is the clock read.
Both generators are built on :func:`sigv4_proxy.presign` — there is one signer in this project.

    >>> dsql_token("abc.dsql.us-east-1.on.aws", credentials=creds)
    'abc.dsql.us-east-1.on.aws/?Action=DbConnect&X-Amz-Algorithm=AWS4-HMAC-SHA256&...'

Parsing (:func:`parse_token`) turns a token, a presigned URL, a ``postgresql://user:TOKEN@host`` URL or an
``Authorization`` header into a :class:`ParsedToken`; :mod:`sigv4_proxy.inspection` runs the checks on it.
Both parsers build it through one assembler, so host, port, scope and signed headers are derived one way.

The closed sets are typed: :data:`TokenForm` (what was pasted), :data:`TokenKind` (what it is for) and
:data:`HostKind`. Masking (the access key, the signature) is :mod:`sigv4_proxy.redact`'s; the date format is
:mod:`sigv4_proxy.signing.amzdate`'s.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import TYPE_CHECKING, Literal
from urllib.parse import quote, unquote, urlsplit

from sigv4_proxy.errors import SigningError
from sigv4_proxy.redact import mask_access_key, mask_signature
from sigv4_proxy.signing.amzdate import parse_amz_date
from sigv4_proxy.signing.model import check_expires_in

if TYPE_CHECKING:  # pragma: no cover
    from sigv4_proxy.signing.model import Credentials

DSQL_SERVICE = "dsql"
RDS_SERVICE = "rds-db"
DSQL_ACTIONS = ("DbConnect", "DbConnectAdmin")
RDS_ACTION = "connect"
DEFAULT_EXPIRES_IN = 900

HostKind = Literal["dsql", "rds", "vpce", "unknown"]  # what a host name says it is (vpce: an interface endpoint)
TokenKind = Literal["dsql", "rds", "presigned"]  # presigned: a presigned URL for any other service
TokenForm = Literal["db-token", "presigned-url", "authorization-header"]  # what was pasted

_REGION = r"(?P<region>[a-z]{2}(?:-[a-z]+)+-\d+)"
# <name>.<id>.<region>.rds.amazonaws.com[.cn], also proxy-/cluster-/cluster-ro- endpoints
_RDS_HOST = re.compile(rf"^(?P<name>[a-z0-9-]+)\.(?P<id>[a-z0-9-]+)\.{_REGION}\.rds\.amazonaws\.com(?:\.cn)?$")
# Interface VPC endpoint DNS names: vpce-0abc-xyz.dsql.us-east-1.vpce.amazonaws.com and friends
_VPCE_HOST = re.compile(rf"(?:^|\.)vpce-[a-z0-9-]+\..*\.{_REGION}\.vpce\.amazonaws\.com(?:\.cn)?$")
_HOSTNAME = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.?)+$|^\[[0-9A-Fa-f:.]+\]$")


# --------------------------------------------------------------------------------------------- hosts


@dataclass(frozen=True)
class HostInfo:
    """What a host name says about itself."""

    kind: HostKind
    region: str | None = None
    service: str | None = None  # the SigV4 signing name the host implies
    cluster_id: str | None = None


def host_info(hostname: str) -> HostInfo:
    """Classify a host name (no port, any case): DSQL cluster, RDS endpoint, VPC endpoint or other.

    DSQL and generic AWS host shapes come from :func:`sigv4_proxy.endpoints.infer` (one table of host
    shapes for the whole project); RDS and VPC endpoint names are recognised here.
    """
    from sigv4_proxy.endpoints import infer

    host = hostname.lower().rstrip(".")
    match = _VPCE_HOST.search(host)
    if match:
        return HostInfo("vpce", match["region"], infer(host).service)
    match = _RDS_HOST.match(host)
    if match:
        return HostInfo("rds", match["region"], RDS_SERVICE)
    endpoint = infer(host)
    # A cluster endpoint is exactly <cluster-id>.dsql[-<suffix>].<region>.on.aws: the first label is the cluster
    # only in that shape (a.b.dsql.us-east-1.on.aws names no cluster "a").
    if endpoint.service == DSQL_SERVICE and endpoint.region and host.count(".") == 4:
        return HostInfo("dsql", endpoint.region, DSQL_SERVICE, host.split(".", 1)[0])
    return HostInfo("unknown", endpoint.region, endpoint.service)


@dataclass(frozen=True)
class HostPort:
    hostname: str  # lower-case, no port
    port: int | None


def split_host(value: str, *, what: str = "hostname") -> HostPort:
    """Accept `host`, `host:port`, or a URL someone pasted (`https://host:5432/...`); reject anything else."""
    text = value.strip()
    if not text:
        raise SigningError(f"{what} is required (for example abc123.dsql.us-east-1.on.aws)")
    if "://" not in text:
        text = "//" + text
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise SigningError(f"invalid {what} {value.strip()!r}: {exc}") from None
    hostname = (parts.hostname or "").rstrip(".")
    if parts.path not in ("", "/") or parts.query or not hostname or not _HOSTNAME.match(hostname):
        raise SigningError(
            f"invalid {what} {value.strip()!r}: expected a host name such as abc123.dsql.us-east-1.on.aws"
        )
    return HostPort(hostname.lower(), port)


def _resolve_region(hostname: str, region: str | None, *, kind: Literal["dsql", "rds"]) -> str:
    implied = host_info(hostname).region
    if region is None or not region.strip():
        if implied is None:
            example = (
                "<cluster-id>.dsql.<region>.on.aws" if kind == "dsql" else "<name>.<id>.<region>.rds.amazonaws.com"
            )
            raise SigningError(
                f"region is required: it cannot be inferred from host {hostname!r} "
                f"(only {example} names carry it); pass --region (region= in Python)"
            )
        return implied
    region = region.strip()
    if implied is not None and implied != region:
        raise SigningError(
            f"region {region!r} does not match host {hostname!r}, which is in {implied!r}: the token would "
            f"be rejected; use --region {implied} (or omit it)"
        )
    return region


# ---------------------------------------------------------------------------------------- generation


def _presign_token(
    host: str,
    query: str,
    *,
    credentials: Credentials,
    region: str,
    service: str,
    expires_in: int,
    now: datetime | None,
) -> str:
    from sigv4_proxy.signing.api import presign

    if now is None:
        now = datetime.now(timezone.utc)
    url = presign(
        "GET",
        f"https://{host}/?{query}",
        credentials=credentials,
        region=region,
        service=service,
        expires_in=expires_in,
        now=now,
    ).url
    return url[len("https://") :]


@lru_cache(maxsize=256)
def _dsql_target(hostname: str, region: str | None) -> tuple[str, str]:
    """(signed host, region) for a DSQL host as given; cached because a pool asks for the same one all day."""
    host = split_host(hostname).hostname
    return host, _resolve_region(host, region, kind="dsql")


def dsql_token(
    hostname: str,
    region: str | None = None,
    *,
    admin: bool = False,
    expires_in: int = DEFAULT_EXPIRES_IN,
    credentials: Credentials,
    now: datetime | None = None,
) -> str:
    """An Aurora DSQL authentication token (the password for a PostgreSQL connection).

    ``hostname`` is the cluster endpoint; a port or a pasted ``https://`` is dropped, the name is
    lower-cased (DSQL checks the token against the bare cluster host). ``region`` defaults to the one in
    ``<cluster-id>.dsql.<region>.on.aws``. ``admin=True`` signs ``DbConnectAdmin`` (the ``admin`` role);
    custom database roles use ``DbConnect``. Connecting through an interface VPC endpoint? Pass the cluster
    host here, not the endpoint's name.
    """
    host, region = _dsql_target(hostname, region)
    return _presign_token(
        host,
        "Action=" + ("DbConnectAdmin" if admin else "DbConnect"),
        credentials=credentials,
        region=region,
        service=DSQL_SERVICE,
        expires_in=check_expires_in(expires_in),
        now=now,
    )


def rds_token(
    hostname: str,
    port: int,
    username: str,
    region: str | None = None,
    *,
    expires_in: int = DEFAULT_EXPIRES_IN,
    credentials: Credentials,
    now: datetime | None = None,
) -> str:
    """An RDS / Aurora IAM authentication token for ``username`` at ``hostname:port`` (service ``rds-db``).

    RDS, unlike DSQL, signs ``host:port``. ``region`` defaults to the one in the RDS endpoint name.
    """
    parsed = split_host(hostname)
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise SigningError(f"port must be a number between 1 and 65535, got {port!r}")
    if parsed.port is not None and parsed.port != port:
        raise SigningError(f"hostname {hostname.strip()!r} names port {parsed.port} but port is {port}")
    if not username:
        raise SigningError("username is required (the database user that has IAM authentication enabled)")
    return _presign_token(
        f"{parsed.hostname}:{port}",
        f"Action={RDS_ACTION}&DBUser={quote(username, safe='-_.~')}",
        credentials=credentials,
        region=_resolve_region(parsed.hostname, region, kind="rds"),
        service=RDS_SERVICE,
        expires_in=check_expires_in(expires_in),
        now=now,
    )


# ------------------------------------------------------------------------------------------- parsing

FORM_DB_TOKEN: TokenForm = "db-token"
FORM_PRESIGNED_URL: TokenForm = "presigned-url"
FORM_AUTHORIZATION: TokenForm = "authorization-header"


@dataclass(frozen=True)
class QueryParam:
    """One ``name=value`` pair of the query, as written and decoded."""

    raw_name: str
    raw_value: str
    has_equals: bool = True

    @property
    def name(self) -> str:
        return unquote(self.raw_name)

    @property
    def value(self) -> str:
        return unquote(self.raw_value)


@dataclass(frozen=True)
class ParsedToken:
    """Every field of a token / presigned URL / Authorization header, as found (nothing validated here).

    Secrets are never part of `repr`: the session token and signature are kept for verification only.
    """

    text: str = field(repr=False)
    form: TokenForm
    scheme: str | None = None
    host: str = ""  # as written, with the port when there is one
    hostname: str = ""  # without port, as written (case kept: an upper-case host is itself a finding)
    port: int | None = None
    path: str = ""
    query: str = field(default="", repr=False)
    params: tuple[QueryParam, ...] = field(default=(), repr=False)
    algorithm: str | None = None
    credential: str | None = None
    access_key_id: str | None = None
    scope_date: str | None = None
    scope_region: str | None = None
    scope_service: str | None = None
    scope_terminator: str | None = None
    scope_extra: tuple[str, ...] = ()  # credential parts beyond the five expected
    amz_date: str | None = None
    expires: str | None = None  # X-Amz-Expires as written
    signed_headers: tuple[str, ...] | None = None
    signature: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    action: str | None = None
    db_user: str | None = None
    wrapper: Literal["postgresql-url"] | None = None  # set when the token was taken out of a connection URL
    whitespace: bool = False  # the token had spaces / line breaks inside (copied from a wrapped terminal)
    header_names: tuple[str, ...] = ()  # Authorization form: the (lower-case) names of the request's headers

    # -- derived values -------------------------------------------------------------------------
    def param(self, name: str) -> str | None:
        """The decoded value of the first parameter called `name` (case-sensitive, as AWS reads it)."""
        for item in self.params:
            if item.name == name:
                return item.value
        return None

    def param_ci(self, name: str) -> QueryParam | None:
        lowered = name.lower()
        return next((p for p in self.params if p.name.lower() == lowered), None)

    @property
    def signed_at(self) -> datetime | None:
        return parse_amz_date(self.amz_date) if self.amz_date else None

    @property
    def expires_in(self) -> int | None:
        if self.expires is None or not re.fullmatch(r"\d{1,9}", self.expires):
            return None
        return int(self.expires)

    @property
    def expires_at(self) -> datetime | None:
        signed_at, expires_in = self.signed_at, self.expires_in
        if signed_at is None or expires_in is None:
            return None
        return signed_at + timedelta(seconds=expires_in)

    @property
    def masked_access_key(self) -> str | None:
        return mask_access_key(self.access_key_id) if self.access_key_id else None

    @property
    def has_session_token(self) -> bool:
        return self.session_token is not None

    @property
    def kind(self) -> TokenKind:
        """ "dsql", "rds" or "presigned" (any other service), from the host first, then the contents."""
        host_kind = host_info(self.hostname).kind if self.hostname else "unknown"
        if host_kind in ("dsql", "rds"):
            return host_kind
        if self.action in DSQL_ACTIONS or self.scope_service == DSQL_SERVICE:
            return "dsql"
        if self.action == RDS_ACTION or self.db_user is not None or self.scope_service == RDS_SERVICE:
            return "rds"
        if self.action and self.action.lower() in {a.lower() for a in (*DSQL_ACTIONS, RDS_ACTION)}:
            return "rds" if self.action.lower() == RDS_ACTION else "dsql"
        return "presigned"

    @property
    def is_db_token(self) -> bool:
        return self.kind in ("dsql", "rds")

    def display_fields(self, now: datetime | None = None) -> dict[str, object]:
        """The decoded fields, safe to print (access key masked; no token, no full signature)."""
        signed_at, expires_at = self.signed_at, self.expires_at
        fields: dict[str, object] = {
            "form": self.form,
            "kind": self.kind,
            "scheme": self.scheme,
            "host": self.host or None,
            "port": self.port,
            "path": self.path or None,
            "action": self.action,
            "db_user": self.db_user,
            "algorithm": self.algorithm,
            "access_key": self.masked_access_key,
            "key_type": _key_type(self.access_key_id),
            "amz_date": self.amz_date,
            "signed_at": signed_at.isoformat() if signed_at else None,
            "expires_in": self.expires_in if self.expires_in is not None else self.expires,
            "expires_at": expires_at.isoformat() if expires_at else None,
            "seconds_left": int((expires_at - now).total_seconds()) if expires_at and now else None,
            "scope_date": self.scope_date,
            "scope_region": self.scope_region,
            "scope_service": self.scope_service,
            "scope_terminator": self.scope_terminator,
            "signed_headers": list(self.signed_headers) if self.signed_headers is not None else None,
            "session_token": (
                {"present": True, "length": len(self.session_token)}
                if self.session_token is not None
                else {"present": False}
            ),
            "signature": mask_signature(self.signature),
        }
        return fields


def _key_type(access_key_id: str | None) -> str | None:
    if not access_key_id:
        return None
    prefix = access_key_id[:4]
    return {
        "AKIA": "long-term (IAM user)",
        "ASIA": "temporary (STS: role, SSO, session)",
    }.get(prefix, "unknown prefix")


def _split_query(query: str) -> tuple[QueryParam, ...]:
    params = []
    for piece in query.split("&"):
        if not piece:
            continue
        name, equals, value = piece.partition("=")
        params.append(QueryParam(name, value, bool(equals)))
    return tuple(params)


def _assemble(
    text: str,
    form: TokenForm,
    *,
    scheme: str | None,
    host: str,
    path: str,
    query: str,
    params: tuple[QueryParam, ...],
    algorithm: str | None,
    credential: str | None,
    amz_date: str | None,
    signed_headers: str | None,
    signature: str | None,
    session_token: str | None,
    expires: str | None = None,
    action: str | None = None,
    db_user: str | None = None,
    wrapper: Literal["postgresql-url"] | None = None,
    whitespace: bool = False,
    header_names: tuple[str, ...] = (),
) -> ParsedToken:
    """A :class:`ParsedToken` from what both parsers find, deriving the rest the same way for both: host name
    and port from the host, access key and scope from the credential, the list of signed headers."""
    hostname, port = _split_port(host)
    # AKID/20250101/us-east-1/dsql/aws4_request: a short credential leaves the missing parts None.
    parts = credential.split("/") if credential is not None else []
    key, date, region, service, terminator = [*parts, None, None, None, None, None][:5]
    return ParsedToken(
        text=text,
        form=form,
        scheme=scheme,
        host=host,
        hostname=hostname,
        port=port,
        path=path,
        query=query,
        params=params,
        algorithm=algorithm,
        credential=credential,
        access_key_id=key,
        scope_date=date,
        scope_region=region,
        scope_service=service,
        scope_terminator=terminator,
        scope_extra=tuple(parts[5:]),
        amz_date=amz_date,
        signed_headers=tuple(signed_headers.split(";")) if signed_headers is not None else None,
        signature=signature,
        session_token=session_token,
        expires=expires,
        action=action,
        db_user=db_user,
        wrapper=wrapper,
        whitespace=whitespace,
        header_names=header_names,
    )


_POSTGRES_URL = re.compile(r"^postgres(?:ql)?://", re.IGNORECASE)
_AUTH_HEADER = re.compile(r"^(?:authorization\s*:\s*)?(AWS4-[A-Z0-9-]+)\s+(.*)$", re.IGNORECASE | re.DOTALL)


def parse_token(text: str) -> ParsedToken:
    """Parse whatever the user pasted. Never raises for odd input: oddities become inspection findings.

    Raises :class:`SigningError` only when nothing token-like is there at all.
    """
    raw = text.strip()
    if not raw:
        raise SigningError("nothing to inspect: the token is empty")
    whitespace = bool(re.search(r"\s", raw))
    compact = re.sub(r"\s+", "", raw) if not _AUTH_HEADER.match(raw) else raw
    if _AUTH_HEADER.match(compact):
        return parse_authorization(raw)
    wrapper: Literal["postgresql-url"] | None = None
    if _POSTGRES_URL.match(compact):
        password = urlsplit(compact).password
        if not password:
            raise SigningError(
                "the connection URL has no password: put the token in the password part "
                "(postgresql://user:TOKEN@host:5432/postgres) or pass the token itself"
            )
        compact, wrapper = unquote(password), "postgresql-url"
    return _parse_url_form(raw, compact, wrapper=wrapper, whitespace=whitespace)


def _parse_url_form(raw: str, text: str, *, wrapper: Literal["postgresql-url"] | None, whitespace: bool) -> ParsedToken:
    scheme = None
    rest = text
    match = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", text)
    if match:
        scheme, rest = match.group(1), text[match.end() :]
    authority_end = len(rest)
    for separator in "/?#":
        index = rest.find(separator)
        if index != -1:
            authority_end = min(authority_end, index)
    host = rest[:authority_end].rpartition("@")[2]
    remainder = rest[authority_end:].partition("#")[0]
    path, _, query = remainder.partition("?")
    params = _split_query(query)
    by_name: dict[str, str] = {}
    for item in params:
        by_name.setdefault(item.name, item.value)
    if "X-Amz-Signature" not in by_name and "X-Amz-Credential" not in by_name and not host:
        raise SigningError(
            "this does not look like a token or presigned URL: expected <host>/?Action=...&X-Amz-Signature=... "
            "(or a full https:// URL, or an Authorization header with --header)"
        )
    return _assemble(
        raw,
        FORM_DB_TOKEN if scheme is None or wrapper else FORM_PRESIGNED_URL,
        scheme=scheme,
        host=host,
        path=path,
        query=query,
        params=params,
        algorithm=by_name.get("X-Amz-Algorithm"),
        credential=by_name.get("X-Amz-Credential"),
        amz_date=by_name.get("X-Amz-Date"),
        signed_headers=by_name.get("X-Amz-SignedHeaders"),
        signature=by_name.get("X-Amz-Signature"),
        session_token=by_name.get("X-Amz-Security-Token"),
        expires=by_name.get("X-Amz-Expires"),
        action=by_name.get("Action"),
        db_user=by_name.get("DBUser"),
        wrapper=wrapper,
        whitespace=whitespace,
    )


def _split_port(host: str) -> tuple[str, int | None]:
    if host.startswith("["):  # IPv6 literal
        end = host.find("]")
        rest = host[end + 1 :]
        port = rest[1:] if rest.startswith(":") else ""
        return host[: end + 1], int(port) if port.isdigit() else None
    name, colon, port = host.rpartition(":")
    if colon and port.isdigit():
        return name, int(port)
    return host, None


def parse_authorization(header: str, *, url: str | None = None, headers: Sequence[tuple[str, str]] = ()) -> ParsedToken:
    """Parse an ``Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`` header.

    The header alone has no date, host or token: `url` (the request URL) and `headers` (the request's other
    headers: ``X-Amz-Date``, ``Host``, ``X-Amz-Security-Token``) complete the picture when given.
    """
    raw = header.strip()
    match = _AUTH_HEADER.match(raw)
    if match is None:
        raise SigningError(
            "not a SigV4 Authorization header: expected 'AWS4-HMAC-SHA256 Credential=AKID/DATE/REGION/"
            "SERVICE/aws4_request, SignedHeaders=host;x-amz-date, Signature=...'"
        )
    components: dict[str, str] = {}
    for piece in re.split(r"\s*,\s*", match.group(2).strip()):
        name, _, value = piece.strip().partition("=")
        if name:
            components.setdefault(name.strip(), value.strip())
    found = {name.lower(): value.strip() for name, value in reversed(list(headers))}
    host, path, query, scheme = found.get("host", ""), "", "", None
    if url:
        parts = urlsplit(url if "://" in url else "https://" + url)
        scheme, path, query = parts.scheme, parts.path or "/", parts.query
        from sigv4_proxy.signing.canonical import host_header

        host = host or host_header(parts.scheme, parts.netloc)
    return _assemble(
        raw,
        FORM_AUTHORIZATION,
        scheme=scheme,
        host=host,
        path=path,
        query=query,
        params=_split_query(query),
        algorithm=match.group(1),
        credential=components.get("Credential"),
        amz_date=found.get("x-amz-date"),
        signed_headers=components.get("SignedHeaders"),
        signature=components.get("Signature"),
        session_token=found.get("x-amz-security-token"),
        header_names=tuple(found),
    )
