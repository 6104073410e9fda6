"""Aurora DSQL's SQL rules: one table of refusals, a statement classifier and the transaction rules. Sans-IO.

Every refusal text the emulator sends comes from `RULES` (also the ones the backend raises through its triggers and
IAM procedures). The texts and SQLSTATEs are DSQL's own, from ``dsql-behaviour.md``; a rule whose `source` starts
with ``ours`` is one where DSQL's text (or its SQLSTATE) was not recorded and we chose a clear one.

Statements are classified with PostgreSQL's own parser (pglast wraps libpg_query), on its JSON parse tree: one C call
plus `json.loads`, about ten microseconds for a pgbench statement, and `analyze` is cached on the SQL text. The two
DSQL-only statements (``AWS IAM GRANT/REVOKE`` and ``CREATE INDEX ASYNC``) are recognised from pglast's scanner
tokens, never with regular expressions, and rewritten into calls the backend understands.

The emulator's own machinery is out of a client's reach: names in its schema ``sigv4_emulator`` (its functions write
``sys.jobs`` and the role mappings), a search_path through it, its ``sigv4_emulator.`` settings and the triggers that
enforce the row/size/age caps are refused wherever they appear, SQL function bodies included. The rewrites call that
schema, but they are made after the checks and never analyzed again.
"""

from __future__ import annotations

import functools
import json
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from decimal import ROUND_HALF_UP, Decimal
from types import MappingProxyType
from typing import Any, Literal

from pglast import parser as pg_parser

from sigv4_proxy.pg.protocol import split_options

Kind = Literal["ddl", "dml", "read", "begin", "commit", "rollback", "set", "other"]
Node = dict[str, Any]


# --------------------------------------------------------------------------------------------------------------------
# The table


@dataclass(frozen=True)
class Rule:
    """One DSQL refusal. `message` and `detail` are `str.format` templates (`{name}`, `{type}`, `{limit}`…)."""

    key: str
    sqlstate: str
    message: str
    detail: str | None
    source: str
    summary: str


def _rule(key: str, sqlstate: str, message: str, source: str, summary: str, detail: str | None = None) -> Rule:
    return Rule(key=key, sqlstate=sqlstate, message=message, detail=detail, source=source, summary=summary)


# Sources are the keys of dsql-behaviour.md ("DRM-txn" = the golden record of probes against a real cluster, "TS" =
# AWS's troubleshooting page, …). "ours" marks a text (or SQLSTATE) DSQL's answer for which was not recorded.
# fmt: off
_TABLE: tuple[Rule, ...] = (
    # §4.1 transaction rules
    _rule("multiple_ddl", "0A000", "multiple ddl statements not supported in a transaction",
          "DRM-txn", "A second DDL statement in one transaction (a multi-statement query is one transaction)."),
    _rule("ddl_dml", "0A000", "ddl and dml are not supported in the same transaction",
          "DRM-txn", "DML after DDL, or DDL after DML, in one transaction."),
    _rule("row_limit", "54000", "transaction row limit exceeded",
          "DRM-txn",
          "More than 3,000 rows modified in one transaction; fails the statement that crosses the cap (backend)."),
    _rule("size_limit", "54000", "transaction size limit {limit}mb exceeded",
          "SKILL",
          "More than 10 MiB written in one transaction; fails at COMMIT (backend). {limit} and {size} in MiB.",
          detail="Current transaction size {size}mb > {limit}mb"),
    _rule("age_limit", "54000", "transaction age limit of {limit}s exceeded",
          "SKILL",
          "A transaction older than 300 s; fails at COMMIT (backend). {limit} and {age} in seconds.",
          detail="Current transaction age {age}s exceeds {limit}s"),
    # §4.3 optimistic concurrency (the era switch swaps these two texts, see ERA_2025)
    _rule("oc000", "40001", "change conflicts with another transaction (OC000)",
          "TS, DRM-occc", "A write conflict decided at COMMIT (the later committer loses)."),
    _rule("oc001", "40001", "schema has been updated by another transaction (OC001)",
          "TS, DRM-occc", "The next statement after another session committed a catalog change (DDL, GRANT, REVOKE)."),
    # §4.2 isolation and §4.6 session parameters
    _rule("isolation_level", "0A000", "Unsupported isolation level: {level}",
          "DRM-iso", "BEGIN/START TRANSACTION/SET TRANSACTION with SERIALIZABLE, READ COMMITTED or READ UNCOMMITTED."),
    _rule("set_parameter", "0A000", "setting configuration parameter \"{name}\" not supported",
          "DRM-iso, MINI",
          "SET, SET LOCAL, set_config() or a startup parameter for a parameter DSQL refuses (FATAL at startup)."),
    _rule("reserved_prefix", "42602", "invalid configuration parameter name \"{name}\"",
          "MINI",
          "A parameter under the reserved \"dsql.\" prefix (ours: the same for \"sigv4_emulator.\", the emulator's "
          "own).",
          detail="\"{prefix}\" is a reserved prefix."),
    _rule("emulator_schema", "3F000", "schema \"{schema}\" does not exist",
          "ours",
          "A name in the emulator's own schema sigv4_emulator (sigv4_emulator.record_job(…), CALL "
          "sigv4_emulator.iam_grant(…), also in an SQL function's body) or a search_path naming it: DSQL has no such "
          "schema (PostgreSQL's text for a missing one; ours)."),
    _rule("transaction_statement", "0A000", "unsupported transaction statement: {statement}",
          "DRM-txn", "SAVEPOINT, RELEASE, ROLLBACK TO (ours: also PREPARE TRANSACTION, COMMIT/ROLLBACK PREPARED)."),
    # §4.4 refused statements and features
    _rule("truncate", "0A000", "unsupported statement: Truncate",
          "DRM-uns", "TRUNCATE."),
    _rule("create_extension", "0A000", "unsupported statement: CreateExtension",
          "DRM-uns", "CREATE EXTENSION."),
    _rule("create_trigger", "0A000", "CREATE TRIGGER not supported",
          "DRM-uns", "CREATE TRIGGER."),
    _rule("trigger_statement", "0A000", "{statement} not supported",
          "ours",
          "DROP TRIGGER, ALTER TRIGGER (RENAME, DEPENDS ON EXTENSION): DSQL has no triggers (ours, after CREATE "
          "TRIGGER's text; the emulator's row/size/age caps are triggers)."),
    _rule("alter_table_trigger", "0A000", "unsupported ALTER TABLE {form} statement",
          "ours",
          "ALTER TABLE … ENABLE/DISABLE [ALWAYS|REPLICA] TRIGGER [name|ALL|USER]: DSQL has no triggers (ours, in "
          "DSQL's ALTER TABLE pattern; the emulator's row/size/age caps are triggers)."),
    _rule("create_database", "0A000", "unsupported statement: Createdb",
          "DRM-uns", "CREATE DATABASE."),
    _rule("temp_table", "0A000", "TEMPORARY or TEMP table not supported for CREATE TABLE",
          "DRM-uns", "CREATE TEMP/TEMPORARY TABLE."),
    _rule("unlogged_table", "0A000", "UNLOGGED table not supported for CREATE TABLE",
          "DRM-uns", "CREATE UNLOGGED TABLE."),
    _rule("create_table_as", "0A000", "unsupported statement: CreateTableAs",
          "DRM-uns", "CREATE TABLE … AS, SELECT … INTO, CREATE MATERIALIZED VIEW."),
    _rule("create_type", "0A000", "CREATE TYPE not supported",
          "DRM-uns", "CREATE TYPE … AS ENUM (ours: also shell and base types)."),
    _rule("composite_type", "0A000", "unsupported statement: CompositeType",
          "DRM-uns", "CREATE TYPE … AS (…)."),
    _rule("create_range", "0A000", "unsupported statement: CreateRange",
          "DRM-uns", "CREATE TYPE … AS RANGE."),
    _rule("function_language", "0A000", "CREATE FUNCTION with language {language} not supported",
          "DRM-uns", "CREATE FUNCTION in any language but sql (recorded for plpgsql)."),
    _rule("create_procedure", "0A000", "PROCEDURE is not supported",
          "SKILL", "CREATE PROCEDURE."),
    _rule("do_block", "0A000", "unsupported statement: Do",
          "ours", "DO blocks (anonymous plpgsql); DSQL's text not recorded."),
    _rule("create_tablespace", "0A000", "unsupported statement: CreateTableSpace",
          "DRM-uns", "CREATE TABLESPACE."),
    _rule("create_foreign_table", "0A000", "unsupported statement: CreateForeignTable",
          "DRM-uns", "CREATE FOREIGN TABLE."),
    _rule("vacuum", "0A000", "unsupported VACUUM statement",
          "DRM-uns", "VACUUM (ANALYZE is accepted)."),
    _rule("listen", "0A000", "unsupported statement: Listen",
          "DRM-uns", "LISTEN."),
    _rule("notify", "0A000", "unsupported statement: Notify",
          "DRM-uns", "NOTIFY."),
    _rule("unlisten", "0A000", "unsupported statement: Unlisten",
          "DRM-uns", "UNLISTEN."),
    _rule("alter_system", "0A000", "unsupported statement: AlterSystem",
          "DRM-uns", "ALTER SYSTEM."),
    _rule("serial_type", "42704", "type \"{type}\" does not exist",
          "DRM-uns", "A serial, bigserial or smallserial column."),
    _rule("sequence_cache", "0A000",
          "CREATE SEQUENCE is not supported without an explicit cache size. "
          "please define CACHE greater than or equal to 65536 or equal to 1",
          "DRM-sup", "CREATE SEQUENCE without CACHE or with CACHE 2–65535."),
    _rule("identity_cache", "0A000",
          "identity column is not supported without an explicit cache size. "
          "please define CACHE greater than or equal to 65536 or equal to 1",
          "DRM-sup", "An identity column without CACHE or with CACHE 2–65535."),
    _rule("identity_type", "0A000", "datatype {type} not supported, identity column type must be bigint",
          "DRM-sup", "An identity column of type integer or smallint."),
    _rule("unsupported_type", "0A000", "datatype {type} not supported",
          "DRM-rules, SKILL", "An array or money column."),
    _rule("collation", "0A000", "collation \"{collation}\" not supported, only \"C\" is supported",
          "ours",
          "A column COLLATE other than C/POSIX/default (DSQL has the C collation only; its text not recorded)."),
    _rule("partitioned_table", "0A000", "partitioned tables not supported",
          "ours", "CREATE TABLE … PARTITION BY / PARTITION OF (unsupported per the docs; text not recorded)."),
    _rule("inherits", "0A000", "table inheritance not supported",
          "ours", "CREATE TABLE … INHERITS (unsupported per the docs; text not recorded)."),
    _rule("exclusion_constraint", "0A000", "exclusion constraints not supported",
          "ours", "EXCLUDE constraints (unsupported per the docs; text not recorded)."),
    _rule("foreign_key", "0A000", "FOREIGN KEY constraint not supported",
          "U-FK", "Any foreign key, only with foreign_keys=refuse (older clusters); enforced by default."),
    _rule("too_many_columns", "54011", "tables can have at most {limit} columns",
          "Q, SKILL", "CREATE TABLE with more than 255 columns."),
    _rule("statistics_target", "22023", "statistics target {target} exceeds maximum allowed value of {limit}",
          "Q, SKILL", "ALTER TABLE … SET STATISTICS above 100."),
    _rule("alter_add_column_constraint", "0A000", "ALTER TABLE ADD COLUMN with constraint not supported",
          "DRM-bl", "ALTER TABLE ADD COLUMN with DEFAULT, NOT NULL, CHECK, UNIQUE, PRIMARY KEY, REFERENCES, identity."),
    _rule("alter_column_type", "0A000", "unsupported ALTER TABLE ALTER COLUMN ... SET DATA TYPE statement",
          "SKILL, DRM-rules", "ALTER TABLE ALTER COLUMN … TYPE."),
    _rule("alter_add_constraint", "0A000", "unsupported ALTER TABLE ADD CONSTRAINT statement",
          "SKILL, DRM-rules", "ALTER TABLE ADD PRIMARY KEY/UNIQUE, or CHECK/FOREIGN KEY without NOT VALID."),
    _rule("validate_constraint", "0A000", "unsupported ALTER TABLE VALIDATE CONSTRAINT statement",
          "SKILL, DRM-rules", "ALTER TABLE VALIDATE CONSTRAINT (DSQL validates with ALTER TABLE ASYNC)."),
    _rule("locking_clause", "0A000", "locking clauses other than FOR UPDATE/FOR KEY SHARE are not supported",
          "DRM-occ", "SELECT … FOR SHARE / FOR NO KEY UPDATE."),
    # §4.5 indexes
    _rule("index_keys", "54011", "more than {limit} column keys in an index are not supported",
          "Q, SKILL", "An index with more than 8 key columns (checked before the other index rules)."),
    _rule("index_concurrently", "0A000", "CONCURRENTLY not supported for CREATE INDEX",
          "DRM-idx, SKILL", "CREATE INDEX [ASYNC] CONCURRENTLY."),
    _rule("index_sort_order", "0A000", "specifying sort order not supported for index keys",
          "DRM-idx, SKILL", "ASC/DESC (ours: also NULLS FIRST/LAST) on an index key."),
    _rule("index_opclass", "0A000", "opclass not supported for index keys",
          "DRM-idx, SKILL", "An operator class on an index key."),
    _rule("index_async_syntax", "42601", "{message}",
          "DRM-idx",
          "CREATE INDEX ASYNC that PostgreSQL cannot parse, e.g. a schema-qualified name: syntax error at or "
          "near \".\"."),
    _rule("create_index_sync", "0A000", "unsupported mode. please use CREATE INDEX ASYNC.",
          "DRM-idx, MINI",
          "Plain CREATE INDEX (ASYNC is rewritten to sigv4_emulator.create_index_async and returns a job_id)."),
    # §3 IAM role mappings (raised by the backend's procedures; SQLSTATEs are undocumented: ours)
    _rule("iam_not_admin", "42501", "permission denied to grant IAM trust with role {role}",
          "TS (SQLSTATE ours)", "AWS IAM GRANT/REVOKE by a session that is not admin."),
    _rule("iam_role_missing", "42704", "Role {role} does not exist",
          "TS (SQLSTATE ours)", "AWS IAM GRANT/REVOKE naming a role that does not exist."),
    _rule("iam_role_no_login", "55000", "role {role} must have the LOGIN attribute",
          "TS (SQLSTATE ours)", "AWS IAM GRANT to a role without LOGIN."),
    _rule("iam_arn_invalid", "22023", "IAM role must look like an IAM ARN",
          "TS (SQLSTATE ours)", "AWS IAM GRANT/REVOKE with a string that is not an IAM role or user ARN."),
    _rule("iam_duplicate", "42710", "IAM role {arn} is already mapped to role {role}",
          "ours", "AWS IAM GRANT of a mapping that exists (DSQL errors; its text was not recorded)."),
    _rule("iam_mapping_missing", "42704", "IAM role {arn} does not exist",
          "TS (SQLSTATE ours)",
          "AWS IAM REVOKE of a mapping that does not exist (which input DSQL answers this way is ours)."),
    _rule("iam_role_unsupported", "0A000", "Role {role} not supported",
          "TS (trigger ours)", "AWS IAM GRANT of a PostgreSQL reserved role (pg_*)."),
    _rule("iam_trust_refused", "0A000", "Cannot establish trust with role {role}",
          "TS (trigger ours)",
          "AWS IAM GRANT of admin (admin is reached with DbConnectAdmin, never through a mapping)."),
    _rule("drop_mapped_role", "2BP01", "role {role} cannot be dropped because some objects depend on it",
          "TS, PR1287", "DROP ROLE of a role that still has an IAM mapping (rewritten to sigv4_emulator.drop_role)."),
)
# fmt: on

RULES: Mapping[str, Rule] = MappingProxyType({rule.key: rule for rule in _TABLE})

# Message eras (§4.3): pass one to `with_messages` (or `RulesConfig.overrides`) to answer as an older cluster did.
ERA_2025: Mapping[str, str] = MappingProxyType(
    {
        "oc000": "change conflicts with another transaction, please retry: (OC000)",
        "oc001": "schema has been updated by another transaction, please retry: (OC001)",
    }
)
ERA_PREVIEW: Mapping[str, str] = MappingProxyType(
    {"oc000": "mutation conflicts with another transaction, retry as needed"}
)


def with_messages(overrides: Mapping[str, str], rules: Mapping[str, Rule] = RULES) -> Mapping[str, Rule]:
    """The table with some messages swapped (an era switch); an unknown key is a ValueError."""
    unknown = sorted(set(overrides) - set(rules))
    if unknown:
        raise ValueError(f"no DSQL rule named {', '.join(unknown)}")
    return MappingProxyType(
        {key: replace(rule, message=overrides.get(key, rule.message)) for key, rule in rules.items()}
    )


@dataclass(frozen=True)
class Refused:
    """A rule that applies, with the values for its template. `index`: the statement it refuses, when known."""

    rule: Rule
    values: Mapping[str, str] = field(default_factory=dict)
    index: int | None = None

    @property
    def sqlstate(self) -> str:
        return self.rule.sqlstate

    @property
    def message(self) -> str:
        return self.rule.message.format(**self.values)

    @property
    def detail(self) -> str | None:
        return None if self.rule.detail is None else self.rule.detail.format(**self.values)

    def __hash__(self) -> int:  # values is a dict: hash what identifies the refusal
        return hash((self.rule, tuple(sorted(self.values.items())), self.index))


# --------------------------------------------------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True)
class Limits:
    rows: int = 3000
    bytes: int = 10 * 1024 * 1024
    age_seconds: int = 300

    @property
    def size_mb(self) -> str:
        """The size cap as DSQL writes it ("10"): MiB, without decimals when whole; a smaller test cap as the backend
        writes it (at most three decimals, rounded half up: 64 KiB is "0.063")."""
        mib = (Decimal(self.bytes) / (1024 * 1024)).quantize(Decimal("0.001"), rounding=ROUND_HALF_UP)
        return format(mib.normalize(), "f")


@dataclass(frozen=True)
class RulesConfig:
    foreign_keys: Literal["enforce", "refuse"] = "enforce"
    limits: Limits = Limits()
    server_version: str = "16.15"
    server_version_num: str = "160015"
    overrides: tuple[tuple[str, str], ...] = ()  # message swaps (key, text), e.g. tuple(ERA_2025.items())

    @property
    def rules(self) -> Mapping[str, Rule]:
        return _rules_for(self.overrides)


@functools.lru_cache(maxsize=16)
def _rules_for(overrides: tuple[tuple[str, str], ...]) -> Mapping[str, Rule]:
    return with_messages(dict(overrides)) if overrides else RULES


def row_limit_refusal(limits: Limits, rules: Mapping[str, Rule] = RULES) -> Refused:
    return Refused(rules["row_limit"], {"limit": str(limits.rows)})


def size_limit_refusal(limits: Limits, size_mb: str, rules: Mapping[str, Rule] = RULES) -> Refused:
    return Refused(rules["size_limit"], {"limit": limits.size_mb, "size": size_mb})


def age_limit_refusal(limits: Limits, age_seconds: str, rules: Mapping[str, Rule] = RULES) -> Refused:
    return Refused(rules["age_limit"], {"limit": str(limits.age_seconds), "age": age_seconds})


# --------------------------------------------------------------------------------------------------------------------
# Analysis results


@dataclass(frozen=True)
class Statement:
    """One statement. `rewritten`: what the backend runs instead; `tag`: the CommandComplete tag DSQL answers with
    when the rewrite's own tag differs (``SELECT 1`` of a rewrite → ``CREATE INDEX``)."""

    text: str
    kind: Kind
    catalog_change: bool
    rewritten: str | None = None
    tag: str | None = None


@dataclass(frozen=True)
class Analysis:
    statements: tuple[Statement, ...]
    refused: Refused | None
    rewritten: str | None  # the whole SQL to send instead of the client's, when a statement is rewritten


# --------------------------------------------------------------------------------------------------------------------
# Session parameters (§4.6)

# Refused in SET / SET LOCAL / set_config / the startup packet. The transaction_* three are ours: DSQL refuses SET
# TRANSACTION, the statement that writes them.
REFUSED_PARAMETERS = frozenset(
    {
        "client_min_messages",
        "statement_timeout",
        "default_transaction_isolation",
        "lc_numeric",
        "default_transaction_read_only",
        "work_mem",
        "default_statistics_target",
        "transaction_isolation",
        "transaction_read_only",
        "transaction_deferrable",
    }
)
EMULATOR_SCHEMA = "sigv4_emulator"  # the emulator's own functions and procedures (backend.py); DSQL has no such schema
RESERVED_PREFIXES = ("dsql", EMULATOR_SCHEMA)
# Parameters whose value is a list of schemas: one naming the emulator's schema would reach its functions unqualified.
_SCHEMA_LIST_PARAMETERS = frozenset({"search_path"})
REAL_DSQL_PARAMETERS = frozenset({"dsql.enable_batched_nestloop"})  # a real DSQL boolean: passes to the backend
_UNSUPPORTED_LEVELS = frozenset({"serializable", "read committed", "read uncommitted"})
# Startup keys that are not GUCs (PostgreSQL's own list) or that we handle ourselves.
_STARTUP_NON_GUC = frozenset({"user", "database", "options", "replication"})
CLUSTER_ID_OPTION = "amzn_cluster_id"


def _parameter_refusal(
    name: str,
    rules: Mapping[str, Rule],
    *,
    resetting: bool = False,
    schemas: Iterable[str] = (),
    refused_names: bool = True,
) -> Refused | None:
    """The refusal for setting `name` (already lower-cased) to a value naming `schemas` (for a schema-list parameter);
    RESET and SET … TO DEFAULT only hit reserved names. `refused_names` False checks only what protects the emulator
    (reserved prefixes, its schema in a search_path): for SET clauses of functions, roles and databases."""
    prefix, dot, _ = name.partition(".")
    if dot and prefix in RESERVED_PREFIXES and name not in REAL_DSQL_PARAMETERS:
        return Refused(rules["reserved_prefix"], {"name": name, "prefix": prefix})
    if name in _SCHEMA_LIST_PARAMETERS and EMULATOR_SCHEMA in schemas:
        return Refused(rules["emulator_schema"], {"schema": EMULATOR_SCHEMA})
    if refused_names and not resetting and name in REFUSED_PARAMETERS:
        return Refused(rules["set_parameter"], {"name": name})
    return None


def identifier_list(text: str) -> list[str]:
    """A list-valued setting as PostgreSQL's SplitIdentifierString reads it (search_path from set_config or the
    startup packet): comma-separated, a "quoted" name kept as written (``""`` is a quote), others lower-cased."""
    names: list[str] = []
    i, length = 0, len(text)
    while i < length:
        while i < length and text[i].isspace():
            i += 1
        name: list[str] = []
        if i < length and text[i] == '"':
            i += 1
            while i < length:
                if text[i] == '"':
                    if i + 1 < length and text[i + 1] == '"':
                        name.append('"')
                        i += 2
                        continue
                    i += 1
                    break
                name.append(text[i])
                i += 1
            names.append("".join(name))
        else:
            while i < length and text[i] != ",":
                name.append(text[i])
                i += 1
            names.append(_downcase_identifier("".join(name).strip()))
        while i < length and text[i] != ",":
            i += 1
        i += 1  # past the comma
    return names


def _option_settings(words: list[str]) -> Iterator[tuple[int, int, str, str]]:
    """(first word, word count, normalised name, value) for each ``-c name=value``, ``-cname=value``,
    ``--name=value``; the name as PostgreSQL's ParseLongOption reads it (dashes are underscores)."""
    i = 0
    while i < len(words):
        word, width = words[i], 1
        setting: str | None = None
        if word == "-c" and i + 1 < len(words):
            setting, width = words[i + 1], 2
        elif word.startswith("--") or (word.startswith("-c") and len(word) > 2):
            setting = word[2:]
        if setting is not None:
            name, _, value = setting.partition("=")
            yield i, width, name.replace("-", "_").lower(), value
        i += width


def options_cluster_id(params: Mapping[str, str]) -> str | None:
    """The cluster id a VPC-endpoint client names with ``options=-c amzn-cluster-id=<id>``."""
    found = None
    for _, _, name, value in _option_settings(split_options(params.get("options", ""))):
        if name == CLUSTER_ID_OPTION:
            found = value
    return found


def startup_refusal(params: Mapping[str, str], rules: Mapping[str, Rule] = RULES) -> Refused | None:
    """The refusal (sent as FATAL) for a refused parameter in the startup packet or its ``options``."""
    settings = [(key.lower(), value) for key, value in params.items() if key not in _STARTUP_NON_GUC]
    options = _option_settings(split_options(params.get("options", "")))
    settings += [(name, value) for _, _, name, value in options if name != CLUSTER_ID_OPTION]
    for name, value in settings:
        refusal = _parameter_refusal(name, rules, schemas=identifier_list(value))
        if refusal is not None:
            return refusal
    return None


# --------------------------------------------------------------------------------------------------------------------
# SQL text helpers


def sql_literal(text: str) -> str:
    """A string literal that means `text` whatever standard_conforming_strings says."""
    if "\x00" in text:
        raise ValueError("a NUL character cannot be sent in an SQL string")
    quoted = text.replace("'", "''")
    if "\\" in text:  # E'' reads backslashes the same way under either standard_conforming_strings setting
        return "E'" + quoted.replace("\\", "\\\\") + "'"
    return "'" + quoted + "'"


def _downcase_identifier(text: str) -> str:
    """PostgreSQL's downcase_identifier for an unquoted name: ASCII letters only."""
    return "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in text)


def _identifier(token_text: str) -> str:
    if token_text.startswith('"'):
        return token_text[1:-1].replace('""', '"')
    return _downcase_identifier(token_text)


_COMMENT_TOKENS = frozenset({"SQL_COMMENT", "C_COMMENT"})
_NAME_TOKEN_KINDS = frozenset({"NO_KEYWORD", "UNRESERVED_KEYWORD", "COL_NAME_KEYWORD", "TYPE_FUNC_NAME_KEYWORD"})


def _tokens(text: str) -> list[Any]:
    return [token for token in pg_parser.scan(text) if token.name not in _COMMENT_TOKENS]


def _token_text(text: str, token: Any) -> str:
    return text[token.start : token.end + 1]


def _string_constant(literal: str) -> str | None:
    """The value of one string-literal token ('…', E'…', $$…$$), read by PostgreSQL's parser."""
    try:
        tree = json.loads(pg_parser.parse_sql_json("SELECT " + literal))
        return str(
            tree["stmts"][0]["stmt"]["SelectStmt"]["targetList"][0]["ResTarget"]["val"]["A_Const"]["sval"]["sval"]
        )
    except (pg_parser.ParseError, KeyError, IndexError, TypeError):
        return None


# --------------------------------------------------------------------------------------------------------------------
# Per-statement analysis


@dataclass(frozen=True)
class _Outcome:
    kind: Kind
    refused: Refused | None = None
    rewritten: str | None = None
    tag: str | None = None


class _Context:
    """What the handlers need: the config's table and what the batch's JSON may contain (cheap pre-filters)."""

    def __init__(self, config: RulesConfig, tree_json: str) -> None:
        self.config = config
        self.rules = config.rules
        self.may_lock = '"LockingClause"' in tree_json
        self.may_set_config = "set_config" in tree_json
        self.may_name_emulator = _EMULATOR_NAME_MARKER in tree_json
        self.may_set_nested = '"VariableSetStmt"' in tree_json or '"setstmt"' in tree_json

    def refuse(self, key: str, kind: Kind = "ddl", **values: str) -> _Outcome:
        return _Outcome(kind, Refused(self.rules[key], values))


Handler = Callable[[Node, str, _Context], _Outcome]


def _find(obj: Any, key: str) -> Iterator[Node]:
    """Every node of type `key` anywhere below `obj` (JSON parse tree)."""
    if isinstance(obj, dict):
        for name, value in obj.items():
            if name == key and isinstance(value, dict):
                yield value
            if isinstance(value, (dict, list)):
                yield from _find(value, key)
    elif isinstance(obj, list):
        for item in obj:
            yield from _find(item, key)


def _names(items: list[Node] | None) -> list[str]:
    return [item["String"]["sval"] for item in items or () if "String" in item]


def _string_const(node: Node | None) -> str | None:
    """The text of a string constant (possibly cast: 'x'::text)."""
    while node is not None and "TypeCast" in node:
        node = node["TypeCast"].get("arg")
    if node is not None and "A_Const" in node:
        sval = node["A_Const"].get("sval")
        if isinstance(sval, dict):
            return str(sval.get("sval", ""))
    return None


def _int_value(node: Node | None) -> int | None:
    if node is None:
        return None
    if "Integer" in node:
        return int(node["Integer"].get("ival", 0))
    if "Float" in node:  # numbers beyond 32 bits
        try:
            return int(float(node["Float"]["fval"]))
        except (KeyError, ValueError):
            return None
    return None


def _locking_refusal(node: Node, ctx: _Context) -> Refused | None:
    for clause in _find(node, "LockingClause"):
        if clause.get("strength") not in ("LCS_FORUPDATE", "LCS_FORKEYSHARE"):
            return Refused(ctx.rules["locking_clause"])
    return None


def _set_config_refusal(node: Node, ctx: _Context) -> Refused | None:
    for call in _find(node, "FuncCall"):
        name = _names(call.get("funcname"))
        if name[-1:] != ["set_config"] or (len(name) == 2 and name[0] != "pg_catalog"):
            continue
        args = [*(call.get("args") or ()), None, None]
        # A parameter name that is not a constant ($1, an expression) cannot be judged here: it passes.
        parameter = _string_const(args[0])
        if parameter is not None:
            value = _string_const(args[1])
            schemas = identifier_list(value) if value is not None else ()
            refusal = _parameter_refusal(parameter.lower(), ctx.rules, schemas=schemas)
            if refusal is not None:
                return refusal
    return None


# Keys whose value is a qualified name of a routine or a type (FuncCall and CallStmt, ObjectWithArgs, TypeName — the
# last also carries the function of CREATE OPERATOR/AGGREGATE). ColumnRef's `fields` is not one: `x.y` there is a
# table alias, which may be called anything.
_QUALIFIED_NAME_KEYS = frozenset({"funcname", "objname", "names"})
_EMULATOR_NAME_MARKER = f'"{EMULATOR_SCHEMA}"'  # the schema as a JSON string value: a cheap pre-filter


def _names_emulator_schema(obj: Any) -> bool:
    """Whether a qualified name anywhere below `obj` has the emulator's schema as its schema part."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key in _QUALIFIED_NAME_KEYS and isinstance(value, list) and _names(value[-2:-1]) == [EMULATOR_SCHEMA]:
                return True
            if isinstance(value, (dict, list)) and _names_emulator_schema(value):
                return True
    elif isinstance(obj, list):
        return any(_names_emulator_schema(item) for item in obj)
    return False


def _emulator_name_refusal(node: Node, ctx: _Context) -> Refused | None:
    """The emulator's functions are the backend's own (record_job writes sys.jobs as its owner; iam_grant skips the
    checks AWS IAM GRANT gets here): a client names them only through the rewrites, which are made after analysis."""
    if _names_emulator_schema(node):
        return Refused(ctx.rules["emulator_schema"], {"schema": EMULATOR_SCHEMA})
    return None


def _set_statement_refusal(node: Node, ctx: _Context, *, refused_names: bool = True) -> Refused | None:
    """The refusal for one SET / RESET (a statement, or a SET clause of a function, role or database)."""
    resetting = node.get("kind") in ("VAR_RESET", "VAR_SET_DEFAULT")
    # SET search_path = a, "B": each constant is one schema name, as written (the parser already lower-cased a bare one)
    schemas = [value for value in map(_string_const, node.get("args") or ()) if value is not None]
    name = str(node.get("name", "")).lower()
    return _parameter_refusal(name, ctx.rules, resetting=resetting, schemas=schemas, refused_names=refused_names)


def _nested_set_refusal(node: Node, ctx: _Context) -> Refused | None:
    """SET clauses inside another statement (CREATE/ALTER FUNCTION … SET, ALTER ROLE/DATABASE … SET): what protects
    the emulator (reserved prefixes, its schema in a search_path); whether DSQL refuses the other names there is not
    recorded."""
    nested = [*_find(node, "VariableSetStmt"), *_find(node, "setstmt")]
    for setting in nested:
        refusal = _set_statement_refusal(setting, ctx, refused_names=False)
        if refusal is not None:
            return refusal
    return None


# Checks that apply anywhere inside a statement: (the _Context pre-filter that must hold, the check).
_DEEP_CHECKS: tuple[tuple[str, Callable[[Node, _Context], Refused | None]], ...] = (
    ("may_lock", _locking_refusal),
    ("may_set_config", _set_config_refusal),
    ("may_name_emulator", _emulator_name_refusal),
    ("may_set_nested", _nested_set_refusal),
)


def _deep_checks(node: Node, ctx: _Context) -> Refused | None:
    """Rules that apply anywhere inside a statement (locking clauses, set_config() calls, the emulator's schema, SET
    clauses), each run only when the batch's JSON may hold what it looks for."""
    for flag, check in _DEEP_CHECKS:
        if getattr(ctx, flag):
            refusal = check(node, ctx)
            if refusal is not None:
                return refusal
    return None


# Types (§4.4). DSQL's documented column types, which we rely on passing through: boolean, smallint, integer,
# bigint, real, double precision, numeric/decimal, char/varchar/text, bytea, date, time, timetz, timestamp,
# timestamptz, interval, uuid, json, jsonb, inet, cidr, macaddr. Only what the reference names is refused here:
# arrays and money (`datatype <type> not supported`) and the serial family (`type "serial" does not exist`).
_TYPE_DISPLAY = {
    "int2": "smallint",
    "int4": "integer",
    "int8": "bigint",
    "float4": "real",
    "float8": "double precision",
    "bool": "boolean",
    "varchar": "character varying",
    "bpchar": "character",
    "timestamp": "timestamp without time zone",
    "timestamptz": "timestamp with time zone",
    "time": "time without time zone",
    "timetz": "time with time zone",
    "varbit": "bit varying",
}
_SERIAL_TYPES = frozenset({"serial", "bigserial", "smallserial", "serial2", "serial4", "serial8"})
_SMALL_INTEGER_TYPES = frozenset({"int2", "int4", "smallint", "integer", "int"})
_REFUSED_SCALAR_TYPES = frozenset({"money"})
_ACCEPTED_COLLATIONS = frozenset({"c", "posix", "default"})
MAX_COLUMNS = 255
MAX_INDEX_KEYS = 8
MAX_STATISTICS_TARGET = 100


def _type_display(type_name: Node) -> str:
    base, plain = _base_type(type_name)
    shown = _TYPE_DISPLAY.get(base, base) if plain else base
    return shown + ("[]" if type_name.get("arrayBounds") else "")


def _base_type(type_name: Node) -> tuple[str, bool]:
    """(type name, whether PostgreSQL resolves it specially: unqualified or pg_catalog-qualified)."""
    names = _names(type_name.get("names"))
    plain = len(names) == 1 or (len(names) == 2 and names[0] == "pg_catalog")
    return (names[-1] if names else ""), plain


def _constraints(column: Node) -> list[Node]:
    return [item["Constraint"] for item in column.get("constraints") or () if "Constraint" in item]


def _cache_ok(options: list[Node] | None) -> bool:
    for item in options or ():
        option = item.get("DefElem", {})
        if option.get("defname") == "cache":
            cache = _int_value(option.get("arg"))
            return cache is not None and (cache == 1 or cache >= 65536)
    return False


def _column_type_refusal(column: Node, ctx: _Context) -> Refused | None:
    type_name = column.get("typeName")
    if not type_name:
        return None
    base, plain = _base_type(type_name)
    if plain and base in _SERIAL_TYPES and not type_name.get("arrayBounds"):
        return Refused(ctx.rules["serial_type"], {"type": base})
    if type_name.get("arrayBounds") or (plain and base in _REFUSED_SCALAR_TYPES):
        return Refused(ctx.rules["unsupported_type"], {"type": _type_display(type_name)})
    for constraint in _constraints(column):
        if constraint.get("contype") == "CONSTR_IDENTITY":
            if plain and base in _SMALL_INTEGER_TYPES:
                return Refused(ctx.rules["identity_type"], {"type": _type_display(type_name)})
            if not _cache_ok(constraint.get("options")):
                return Refused(ctx.rules["identity_cache"])
    collate = column.get("collClause")
    if collate:
        collation = (_names(collate.get("collname")) or [""])[-1]
        if collation.lower() not in _ACCEPTED_COLLATIONS:
            return Refused(ctx.rules["collation"], {"collation": collation})
    return None


def _table_constraint_refusal(constraint: Node, ctx: _Context) -> Refused | None:
    contype = constraint.get("contype")
    if contype == "CONSTR_FOREIGN" and ctx.config.foreign_keys == "refuse":
        return Refused(ctx.rules["foreign_key"])
    if contype == "CONSTR_EXCLUSION":
        return Refused(ctx.rules["exclusion_constraint"])
    return None


def _create_table(node: Node, text: str, ctx: _Context) -> _Outcome:
    persistence = node.get("relation", {}).get("relpersistence")
    if persistence == "t":
        return ctx.refuse("temp_table")
    if persistence == "u":
        return ctx.refuse("unlogged_table")
    if node.get("partspec") or node.get("partbound"):
        return ctx.refuse("partitioned_table")
    if node.get("inhRelations"):
        return ctx.refuse("inherits")
    elements = node.get("tableElts") or []
    columns = [item["ColumnDef"] for item in elements if "ColumnDef" in item]
    if len(columns) > MAX_COLUMNS:
        return ctx.refuse("too_many_columns", limit=str(MAX_COLUMNS))
    for item in elements:
        if "ColumnDef" in item:
            refusal = _column_type_refusal(item["ColumnDef"], ctx)
            for constraint in _constraints(item["ColumnDef"]):
                refusal = refusal or _table_constraint_refusal(constraint, ctx)
        elif "Constraint" in item:
            refusal = _table_constraint_refusal(item["Constraint"], ctx)
        else:
            refusal = None
        if refusal is not None:
            return _Outcome("ddl", refusal)
    return _Outcome("ddl")


# ALTER TABLE subcommands on triggers (DSQL has none; the emulator's row/size/age caps are triggers, which these
# would switch off): subtype -> the form the refusal names.
_ALTER_TABLE_TRIGGER_FORMS: Mapping[str, str] = MappingProxyType(
    {
        "AT_EnableTrig": "ENABLE TRIGGER",
        "AT_EnableAlwaysTrig": "ENABLE ALWAYS TRIGGER",
        "AT_EnableReplicaTrig": "ENABLE REPLICA TRIGGER",
        "AT_EnableTrigAll": "ENABLE TRIGGER ALL",
        "AT_EnableTrigUser": "ENABLE TRIGGER USER",
        "AT_DisableTrig": "DISABLE TRIGGER",
        "AT_DisableTrigAll": "DISABLE TRIGGER ALL",
        "AT_DisableTrigUser": "DISABLE TRIGGER USER",
    }
)


def _alter_command_refusal(command: Node, ctx: _Context) -> Refused | None:
    subtype = command.get("subtype")
    definition = command.get("def") or {}
    trigger_form = _ALTER_TABLE_TRIGGER_FORMS.get(str(subtype))
    if trigger_form is not None:
        return Refused(ctx.rules["alter_table_trigger"], {"form": trigger_form})
    if subtype == "AT_AddColumn" and "ColumnDef" in definition:
        column = definition["ColumnDef"]
        refusal = _column_type_refusal(column, ctx)
        if refusal is not None and refusal.rule.key not in ("identity_cache", "identity_type"):
            return refusal
        constraints = [c for c in _constraints(column) if c.get("contype") != "CONSTR_NULL"]
        if ctx.config.foreign_keys == "refuse" and any(c.get("contype") == "CONSTR_FOREIGN" for c in constraints):
            return Refused(ctx.rules["foreign_key"])
        if constraints:
            return Refused(ctx.rules["alter_add_column_constraint"])
        return refusal
    if subtype == "AT_AlterColumnType":
        return Refused(ctx.rules["alter_column_type"])
    if subtype == "AT_AddConstraint" and "Constraint" in definition:
        constraint = definition["Constraint"]
        contype = constraint.get("contype")
        refusal = _table_constraint_refusal(constraint, ctx)
        if refusal is not None:
            return refusal
        not_valid = bool(constraint.get("skip_validation"))
        if contype in ("CONSTR_PRIMARY", "CONSTR_UNIQUE") or (
            contype in ("CONSTR_CHECK", "CONSTR_FOREIGN") and not not_valid
        ):
            return Refused(ctx.rules["alter_add_constraint"])
        return None
    if subtype == "AT_ValidateConstraint":
        return Refused(ctx.rules["validate_constraint"])
    if subtype == "AT_AddIdentity" and "Constraint" in definition:
        if not _cache_ok(definition["Constraint"].get("options")):
            return Refused(ctx.rules["identity_cache"])
        return None
    if subtype == "AT_SetStatistics":
        target = _int_value(definition)
        if target is not None and target > MAX_STATISTICS_TARGET:
            return Refused(ctx.rules["statistics_target"], {"target": str(target), "limit": str(MAX_STATISTICS_TARGET)})
    return None


def _alter_table(node: Node, text: str, ctx: _Context) -> _Outcome:
    for item in node.get("cmds") or ():
        refusal = _alter_command_refusal(item.get("AlterTableCmd", {}), ctx)
        if refusal is not None:
            return _Outcome("ddl", refusal)
    return _Outcome("ddl")


def _index_refusal(node: Node, ctx: _Context) -> Refused | None:
    params = [item.get("IndexElem", {}) for item in node.get("indexParams") or ()]
    if len(params) > MAX_INDEX_KEYS:
        return Refused(ctx.rules["index_keys"], {"limit": str(MAX_INDEX_KEYS)})
    if node.get("concurrent"):
        return Refused(ctx.rules["index_concurrently"])
    for elem in params:
        if (
            elem.get("ordering", "SORTBY_DEFAULT") != "SORTBY_DEFAULT"
            or elem.get("nulls_ordering", "SORTBY_NULLS_DEFAULT") != "SORTBY_NULLS_DEFAULT"
        ):
            return Refused(ctx.rules["index_sort_order"])
    if any(elem.get("opclass") for elem in params):
        return Refused(ctx.rules["index_opclass"])
    return None


def _async_token(tokens: list[Any], text: str) -> Any | None:
    """The ASYNC token of ``CREATE [UNIQUE] INDEX ASYNC …`` (unquoted, any case), or None."""
    names = [token.name for token in tokens[:4]]
    position = 3 if names[:3] == ["CREATE", "UNIQUE", "INDEX"] else 2 if names[:2] == ["CREATE", "INDEX"] else None
    if position is None or len(tokens) <= position:
        return None
    token = tokens[position]
    if token.name == "IDENT" and _token_text(text, token).upper() == "ASYNC":
        return token
    return None


def _create_index_async(text: str, token: Any, ctx: _Context) -> _Outcome:
    """CREATE INDEX ASYNC: the index rules on the statement without ASYNC, rewritten to the backend's job runner."""
    rest = text[token.end + 1 :].lstrip()
    plain = text[: token.start] + rest
    try:
        tree_json = pg_parser.parse_sql_json(plain)
    except pg_parser.ParseError as error:  # e.g. a schema-qualified name: PostgreSQL's own syntax error, as DSQL
        return _Outcome("ddl", Refused(ctx.rules["index_async_syntax"], {"message": str(error.args[0])}))
    statements = json.loads(tree_json)["stmts"]
    if len(statements) != 1 or "IndexStmt" not in statements[0]["stmt"]:
        return _Outcome("other")  # not an index after all: the backend answers
    index = statements[0]["stmt"]["IndexStmt"]
    refusal = _index_refusal(index, ctx) or _deep_checks(index, _Context(ctx.config, tree_json))
    if refusal is not None:
        return _Outcome("ddl", refusal)
    rewritten = f"SELECT sigv4_emulator.create_index_async({sql_literal(plain.strip())}) AS job_id"
    return _Outcome("ddl", rewritten=rewritten, tag="CREATE INDEX")


def _create_index(node: Node, text: str, ctx: _Context) -> _Outcome:
    # ``CREATE INDEX async ON t (a)`` parses in PostgreSQL (an index named async): DSQL reads the unnamed ASYNC form.
    token = _async_token(_tokens(text), text)
    if token is not None:
        return _create_index_async(text, token, ctx)
    return _Outcome("ddl", _index_refusal(node, ctx) or Refused(ctx.rules["create_index_sync"]))


def _aws_iam(tokens: list[Any], text: str, ctx: _Context) -> _Outcome | None:
    """``AWS IAM GRANT <role> TO '<arn>'`` / ``AWS IAM REVOKE <role> FROM '<arn>'``, or None when it is not one."""
    if len(tokens) != 6:
        return None
    words = [_token_text(text, token).upper() for token in tokens[:3]]
    if words[0] != "AWS" or words[1] != "IAM" or tokens[0].name != "IDENT" or tokens[1].name != "IDENT":
        return None
    action = {"GRANT": ("TO", "iam_grant"), "REVOKE": ("FROM", "iam_revoke")}.get(tokens[2].name)
    role_token, joiner, arn_token = tokens[3:]
    if action is None or joiner.name != action[0] or arn_token.name != "SCONST":
        return None
    if role_token.kind not in _NAME_TOKEN_KINDS:
        return None
    role = _identifier(_token_text(text, role_token))
    arn = _string_constant(_token_text(text, arn_token))
    if arn is None or "\x00" in role:
        return None
    if tokens[2].name == "GRANT":
        if role == "admin":
            return _Outcome("ddl", Refused(ctx.rules["iam_trust_refused"], {"role": role}))
        if role.startswith("pg_"):
            return _Outcome("ddl", Refused(ctx.rules["iam_role_unsupported"], {"role": role}))
    return _Outcome("ddl", rewritten=f"CALL sigv4_emulator.{action[1]}({sql_literal(role)}, {sql_literal(arn)})")


def _dsql_only(text: str, ctx: _Context) -> _Outcome | None:
    """The DSQL-only statements PostgreSQL's grammar does not have, recognised from scanner tokens."""
    try:
        tokens = _tokens(text)
    except pg_parser.ParseError:
        return None
    if len(tokens) > 2 and tokens[0].name == "IDENT":
        return _aws_iam(tokens, text, ctx)
    token = _async_token(tokens, text)
    return None if token is None else _create_index_async(text, token, ctx)


def _transaction(node: Node, text: str, ctx: _Context) -> _Outcome:
    kind = node.get("kind")
    if kind in ("TRANS_STMT_BEGIN", "TRANS_STMT_START"):
        refusal = _isolation_refusal(node.get("options"), ctx)
        return _Outcome("begin", refusal)
    if kind == "TRANS_STMT_COMMIT":
        return _Outcome("commit")
    if kind == "TRANS_STMT_ROLLBACK":
        return _Outcome("rollback")
    statement = _REFUSED_TRANSACTION_STATEMENTS.get(str(kind))
    if statement is None:
        return _Outcome("other")
    return ctx.refuse("transaction_statement", "other", statement=statement)


_REFUSED_TRANSACTION_STATEMENTS = {
    "TRANS_STMT_SAVEPOINT": "SAVEPOINT",
    "TRANS_STMT_RELEASE": "RELEASE",
    "TRANS_STMT_ROLLBACK_TO": "ROLLBACK TO",
    "TRANS_STMT_PREPARE": "PREPARE TRANSACTION",
    "TRANS_STMT_COMMIT_PREPARED": "COMMIT PREPARED",
    "TRANS_STMT_ROLLBACK_PREPARED": "ROLLBACK PREPARED",
}


def _isolation_refusal(options: list[Node] | None, ctx: _Context) -> Refused | None:
    for item in options or ():
        option = item.get("DefElem", {})
        if option.get("defname") == "transaction_isolation":
            level = _string_const(option.get("arg")) or ""
            if level in _UNSUPPORTED_LEVELS:
                return Refused(ctx.rules["isolation_level"], {"level": level.upper()})
    return None


def _set(node: Node, text: str, ctx: _Context) -> _Outcome:
    kind = node.get("kind")
    name = str(node.get("name", ""))
    if kind == "VAR_SET_MULTI":  # SET TRANSACTION …, SET SESSION CHARACTERISTICS AS TRANSACTION … (the latter: ours)
        refusal = _isolation_refusal(node.get("args"), ctx)
        shown = "TRANSACTION" if name.startswith("TRANSACTION") else name
        return _Outcome("set", refusal or Refused(ctx.rules["set_parameter"], {"name": shown}))
    if kind == "VAR_RESET_ALL":
        return _Outcome("set")
    return _Outcome("set", _set_statement_refusal(node, ctx))


def _show(node: Node, text: str, ctx: _Context) -> _Outcome:
    name = node.get("name")
    value = {"server_version": ctx.config.server_version, "server_version_num": ctx.config.server_version_num}.get(
        str(name)
    )
    if value is None:
        return _Outcome("other")
    return _Outcome("other", rewritten=f"SELECT {sql_literal(value)} AS {name}", tag="SHOW")


def _drop_role(node: Node, text: str, ctx: _Context) -> _Outcome:
    """Every DROP ROLE goes through the backend's procedure, which refuses a role that still has a mapping."""
    roles = [item.get("RoleSpec", {}) for item in node.get("roles") or ()]
    if not roles or any(role.get("roletype") != "ROLESPEC_CSTRING" for role in roles):
        return _Outcome("ddl")  # CURRENT_USER and friends: PostgreSQL refuses them itself
    names = [sql_literal(str(role.get("rolename", ""))) for role in roles]
    if len(names) == 1 and not node.get("missing_ok"):
        return _Outcome("ddl", rewritten=f"CALL sigv4_emulator.drop_role({names[0]})")
    missing_ok = "true" if node.get("missing_ok") else "false"
    return _Outcome("ddl", rewritten=f"CALL sigv4_emulator.drop_role({', '.join([names[0], missing_ok, *names[1:]])})")


def _select(node: Node, text: str, ctx: _Context) -> _Outcome:
    if node.get("intoClause"):  # SELECT … INTO t creates a table
        return ctx.refuse("create_table_as")
    for cte in (node.get("withClause") or {}).get("ctes") or ():
        query = cte.get("CommonTableExpr", {}).get("ctequery", {})
        if any(kind in query for kind in _DML_NODES):
            return _Outcome("dml")
    return _Outcome("read")


def _create_function(node: Node, text: str, ctx: _Context) -> _Outcome:
    if node.get("is_procedure"):
        return ctx.refuse("create_procedure")
    options = {
        item["DefElem"].get("defname"): item["DefElem"] for item in node.get("options") or () if "DefElem" in item
    }
    language = str(options.get("language", {}).get("arg", {}).get("String", {}).get("sval", ""))
    if language and language.lower() != "sql":
        return ctx.refuse("function_language", language=language)
    body = _names((options.get("as") or {}).get("arg", {}).get("List", {}).get("items"))
    if len(body) == 1:
        return _Outcome("ddl", _function_body_refusal(body[0], ctx))
    return _Outcome("ddl")


def _function_body_refusal(body: str, ctx: _Context) -> Refused | None:
    """An SQL function's body runs later, where the relay cannot see it: its statements are checked now, like a
    query's (the emulator's schema, trigger statements, refused parameters… a SQL-standard body is in the tree and
    checked with it). A body PostgreSQL cannot parse is left to it: CREATE FUNCTION fails, or the call does."""
    try:
        tree_json = pg_parser.parse_sql_json(body)
    except pg_parser.ParseError:
        return None
    refused = _analyze_tree(body, tree_json, ctx.config).refused
    return None if refused is None else replace(refused, index=None)


def _create_sequence(node: Node, text: str, ctx: _Context) -> _Outcome:
    return _Outcome("ddl") if _cache_ok(node.get("options")) else ctx.refuse("sequence_cache")


def _define(node: Node, text: str, ctx: _Context) -> _Outcome:
    return ctx.refuse("create_type") if node.get("kind") == "OBJECT_TYPE" else _Outcome("ddl")


def _vacuum(node: Node, text: str, ctx: _Context) -> _Outcome:
    return ctx.refuse("vacuum", "other") if node.get("is_vacuumcmd") else _Outcome("other")  # ANALYZE is accepted


def _copy(node: Node, text: str, ctx: _Context) -> _Outcome:
    return _Outcome("dml" if node.get("is_from") else "read")


def _inner(node: Node | None, ctx: _Context) -> _Outcome:
    """The analysis of a statement nested in PREPARE, EXPLAIN or DECLARE CURSOR."""
    if not node:
        return _Outcome("other")
    node_type, body = next(iter(node.items()))
    return _statement_outcome(node_type, body, "", ctx)


def _prepare(node: Node, text: str, ctx: _Context) -> _Outcome:
    return _Outcome("other", _inner(node.get("query"), ctx).refused)


def _explain(node: Node, text: str, ctx: _Context) -> _Outcome:
    inner = _inner(node.get("query"), ctx)
    analyzing = any(item.get("DefElem", {}).get("defname") == "analyze" for item in node.get("options") or ())
    return _Outcome(inner.kind if analyzing else "read", inner.refused)


def _declare(node: Node, text: str, ctx: _Context) -> _Outcome:
    return _Outcome("read", _inner(node.get("query"), ctx).refused)


def _create_schema(node: Node, text: str, ctx: _Context) -> _Outcome:
    for element in node.get("schemaElts") or ():
        refusal = _inner(element, ctx).refused
        if refusal is not None:
            return _Outcome("ddl", refusal)
    return _Outcome("ddl")


# Statements on a trigger (DSQL has none; the emulator's row/size/age caps are triggers): node type -> (the field that
# names the object type, the statement as the refusal names it). The other objects of these statements pass.
_TRIGGER_STATEMENTS: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        "DropStmt": ("removeType", "DROP TRIGGER"),
        "RenameStmt": ("renameType", "ALTER TRIGGER"),
        "AlterObjectDependsStmt": ("objectType", "ALTER TRIGGER"),
    }
)


def _trigger_guard(field: str, statement: str) -> Handler:
    def handler(node: Node, text: str, ctx: _Context) -> _Outcome:
        if node.get(field) == "OBJECT_TRIGGER":
            return ctx.refuse("trigger_statement", statement=statement)
        return _Outcome("ddl")

    return handler


def _refuse_with(key: str, kind: Kind = "ddl") -> Handler:
    def handler(node: Node, text: str, ctx: _Context) -> _Outcome:
        return ctx.refuse(key, kind)

    return handler


def _of_kind(kind: Kind) -> Handler:
    def handler(node: Node, text: str, ctx: _Context) -> _Outcome:
        return _Outcome(kind)

    return handler


_DML_NODES = ("InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt")

# Node type → handler. A node type not listed here is DDL (a utility statement that changes the catalog).
_HANDLERS: Mapping[str, Handler] = MappingProxyType(
    {
        "SelectStmt": _select,
        "InsertStmt": _of_kind("dml"),
        "UpdateStmt": _of_kind("dml"),
        "DeleteStmt": _of_kind("dml"),
        "MergeStmt": _of_kind("dml"),
        "CopyStmt": _copy,
        "TransactionStmt": _transaction,
        "VariableSetStmt": _set,
        "ConstraintsSetStmt": _of_kind("set"),
        "VariableShowStmt": _show,
        "DiscardStmt": _of_kind("set"),
        "PrepareStmt": _prepare,
        "ExecuteStmt": _of_kind("other"),
        "DeallocateStmt": _of_kind("other"),
        "ExplainStmt": _explain,
        "DeclareCursorStmt": _declare,
        "FetchStmt": _of_kind("read"),
        "ClosePortalStmt": _of_kind("other"),
        "CallStmt": _of_kind("other"),
        "LockStmt": _of_kind("other"),
        "CheckPointStmt": _of_kind("other"),
        "LoadStmt": _of_kind("other"),
        "ReturnStmt": _of_kind("other"),
        "PLAssignStmt": _of_kind("other"),
        "CreateStmt": _create_table,
        "AlterTableStmt": _alter_table,
        "IndexStmt": _create_index,
        "DropRoleStmt": _drop_role,
        "CreateFunctionStmt": _create_function,
        "DefineStmt": _define,
        "CreateSeqStmt": _create_sequence,
        "VacuumStmt": _vacuum,
        "CreateSchemaStmt": _create_schema,
        "TruncateStmt": _refuse_with("truncate", "dml"),
        "CreateExtensionStmt": _refuse_with("create_extension"),
        "CreateTrigStmt": _refuse_with("create_trigger"),
        "CreatedbStmt": _refuse_with("create_database"),
        "CreateTableAsStmt": _refuse_with("create_table_as"),
        "CreateEnumStmt": _refuse_with("create_type"),
        "CompositeTypeStmt": _refuse_with("composite_type"),
        "CreateRangeStmt": _refuse_with("create_range"),
        "CreateTableSpaceStmt": _refuse_with("create_tablespace"),
        "CreateForeignTableStmt": _refuse_with("create_foreign_table"),
        "ListenStmt": _refuse_with("listen", "other"),
        "NotifyStmt": _refuse_with("notify", "other"),
        "UnlistenStmt": _refuse_with("unlisten", "other"),
        "AlterSystemStmt": _refuse_with("alter_system"),
        "DoStmt": _refuse_with("do_block"),
        **{node_type: _trigger_guard(*guard) for node_type, guard in _TRIGGER_STATEMENTS.items()},
    }
)
_DDL = _of_kind("ddl")


def _statement_outcome(node_type: str, node: Node, text: str, ctx: _Context) -> _Outcome:
    outcome: _Outcome = _HANDLERS.get(node_type, _DDL)(node, text, ctx)
    if outcome.refused is None:
        refusal = _deep_checks(node, ctx)
        if refusal is not None:
            return replace(outcome, refused=refusal)
    return outcome


# --------------------------------------------------------------------------------------------------------------------
# analyze()


def _statement_texts(sql: str, statements: list[Node]) -> list[str]:
    """Each statement's text; libpg_query's offsets count UTF-8 bytes."""
    data: str | bytes = sql if sql.isascii() else sql.encode()
    texts = []
    for statement in statements:
        start = statement.get("stmt_location", 0)
        length = statement.get("stmt_len", 0)
        piece = data[start : start + length] if length else data[start:]
        texts.append(piece if isinstance(piece, str) else piece.decode())
    return texts


def _build(pieces: list[tuple[str, _Outcome]], *, parsed: bool) -> Analysis:
    statements = []
    refused: Refused | None = None
    for index, (text, outcome) in enumerate(pieces):
        kind = outcome.kind
        statements.append(Statement(text.strip(), kind, kind == "ddl", outcome.rewritten, outcome.tag))
        if refused is None and outcome.refused is not None and parsed:
            refused = replace(outcome.refused, index=index)
    rewritten = None
    if any(outcome.rewritten for _, outcome in pieces):
        rewritten = "; ".join(outcome.rewritten or text.strip() for text, outcome in pieces)
    return Analysis(tuple(statements), refused, rewritten)


def _split_with_scanner(sql: str) -> list[str]:
    """The statements of a text PostgreSQL's grammar refused, cut at the scanner's semicolon tokens (so never inside
    strings, dollar quotes or comments); pieces holding only comments are dropped."""
    texts: list[str] = []
    start, has_token = 0, False
    for token in pg_parser.scan(sql):
        if token.name == "ASCII_59":
            if has_token:
                texts.append(sql[start : token.start])
            start, has_token = token.end + 1, False
        elif token.name not in _COMMENT_TOKENS:
            has_token = True
    if has_token:
        texts.append(sql[start:])
    return texts


def _analyze_unparsed(sql: str, ctx: _Context) -> Analysis:
    """PostgreSQL's grammar refused the text: split it with the scanner and look for DSQL-only statements."""
    try:
        texts = _split_with_scanner(sql)
    except pg_parser.ParseError:  # an unterminated string or comment: the backend says so
        return Analysis((), None, None)
    pieces: list[tuple[str, _Outcome]] = []
    parsed = True
    for text in texts:
        outcome = _dsql_only(text, ctx)
        if outcome is None:
            try:
                tree = json.loads(pg_parser.parse_sql_json(text))
                (statement,) = tree["stmts"]
                node_type, node = next(iter(statement["stmt"].items()))
                outcome = _statement_outcome(node_type, node, text, _Context(ctx.config, json.dumps(node)))
            except (pg_parser.ParseError, ValueError):
                # A syntax error: the backend answers it (DSQL parses the whole query first, so no rule applies).
                outcome, parsed = _Outcome("other"), False
        pieces.append((text, outcome))
    return _build(pieces, parsed=parsed)


# The hot path: one plain SELECT/INSERT/UPDATE/DELETE (every pgbench statement). Nothing in it can be refused unless
# the tree holds one of the blockers, so the node type is read off the parser's JSON without decoding it (json.loads
# is half the cost). JSON escapes every quote inside a string value, so these markers only match real keys.
_FAST_KINDS: Mapping[str, Kind] = MappingProxyType(
    {"SelectStmt": "read", "InsertStmt": "dml", "UpdateStmt": "dml", "DeleteStmt": "dml"}
)
_FAST_BLOCKERS = ('"LockingClause"', "set_config", '"intoClause"', '"withClause"', _EMULATOR_NAME_MARKER)
_FIRST_NODE = '"stmts":[{"stmt":{"'


def _fast_path(sql: str, tree_json: str) -> Analysis | None:
    at = tree_json.find(_FIRST_NODE)
    if at < 0 or tree_json.count('{"stmt":{') != 1:
        return None
    start = at + len(_FIRST_NODE)
    kind = _FAST_KINDS.get(tree_json[start : tree_json.find('"', start)])
    if kind is None or any(blocker in tree_json for blocker in _FAST_BLOCKERS):
        return None
    raw: Node = {}
    for key in ("stmt_location", "stmt_len"):  # RawStmt's own fields, only once in a one-statement tree
        found = tree_json.rfind(f'"{key}":')
        if found >= 0:
            digits = tree_json[found + len(key) + 3 :].split(",", 1)[0].split("}", 1)[0]
            raw[key] = int(digits)
    (text,) = _statement_texts(sql, [raw])
    return Analysis((Statement(text.strip(), kind, False),), None, None)


@functools.lru_cache(maxsize=4096)
def _analyze_cached(sql: str, config: RulesConfig) -> Analysis:
    try:
        tree_json = pg_parser.parse_sql_json(sql)
    except pg_parser.ParseError:
        return _analyze_unparsed(sql, _Context(config, ""))
    return _fast_path(sql, tree_json) or _analyze_tree(sql, tree_json, config)


def _analyze_tree(sql: str, tree_json: str, config: RulesConfig) -> Analysis:
    ctx = _Context(config, tree_json)
    statements = json.loads(tree_json)["stmts"]
    pieces = []
    for text, statement in zip(_statement_texts(sql, statements), statements, strict=True):
        node_type, node = next(iter(statement["stmt"].items()))
        pieces.append((text, _statement_outcome(node_type, node, text, ctx)))
    return _build(pieces, parsed=True)


def analyze_uncached(sql: str, config: RulesConfig = RulesConfig()) -> Analysis:
    """`analyze` without the cache and without the fast path (tests compare the two)."""
    try:
        tree_json = pg_parser.parse_sql_json(sql)
    except pg_parser.ParseError:
        return _analyze_unparsed(sql, _Context(config, ""))
    return _analyze_tree(sql, tree_json, config)


def analyze(sql: str, config: RulesConfig = RulesConfig()) -> Analysis:
    """Classify `sql` (one Query or Parse text) and find the first per-statement refusal. Cached on (sql, config).

    Unparseable SQL gets no refusal: the backend answers its own syntax error."""
    return _analyze_cached(sql, config)


# --------------------------------------------------------------------------------------------------------------------
# Transaction rules


class TransactionRules:
    """One per session. Counts DDL and DML per transaction and says when a committed transaction changed the catalog.

    The relay calls `check` before sending statements (a simple Query's batch, or each Bind), `observe_complete` for
    every CommandComplete, `observe_error` for every ErrorResponse and `observe_ready` for every ReadyForQuery. The
    backend stays authoritative for the transaction state: after an error (status ``E``) nothing is refused, the
    backend answers 25P02 itself."""

    def __init__(self, rules: Mapping[str, Rule] = RULES) -> None:
        self._rules = rules
        self._ddl = 0  # DDL statements admitted in the open transaction
        self._dml = False
        self._failed = False
        self._pending: deque[Statement] = deque()  # admitted statements awaiting their CommandComplete
        self._txn_catalog = False  # a DDL of the open transaction completed
        self._committed = False

    def check(self, analysis: Analysis) -> Refused | None:
        """The first refusal of the batch in statement order, the analysis' own included; None admits it all."""
        ddl, dml, failed = self._ddl, self._dml, self._failed
        admitted: list[Statement] = []
        for index, statement in enumerate(analysis.statements):
            kind = statement.kind
            if failed:  # skipped by the backend (25P02) until the transaction ends
                if kind in ("commit", "rollback"):
                    failed, ddl, dml = False, 0, False
                    admitted.append(statement)
                continue
            if analysis.refused is not None and analysis.refused.index == index:
                return analysis.refused
            refusal = None
            if kind == "ddl":
                refusal = "multiple_ddl" if ddl else "ddl_dml" if dml else None
                ddl += 1
            elif kind == "dml":
                refusal = "ddl_dml" if ddl else None
                dml = True
            elif kind in ("commit", "rollback"):
                ddl, dml = 0, False
            if refusal is not None:
                return Refused(self._rules[refusal], {}, index)
            admitted.append(statement)
        self._ddl, self._dml, self._failed = ddl, dml, failed
        self._pending.extend(admitted)
        return None

    def observe_complete(self, tag: str) -> Statement | None:
        """Account for one CommandComplete; returns the statement it completes (the relay swaps in its `tag`)."""
        statement = self._pending.popleft() if self._pending else None
        if statement is not None and statement.catalog_change:
            self._txn_catalog = True
        if tag == "COMMIT":
            self._committed = self._committed or self._txn_catalog
            self._txn_catalog = False
        elif tag == "ROLLBACK":
            self._txn_catalog = False
        return statement

    def observe_error(self) -> None:
        self._failed = True
        self._pending.clear()

    def observe_ready(self, status: str) -> None:
        self._pending.clear()
        if status == "I":
            if self._txn_catalog and not self._failed:  # an implicit transaction committed
                self._committed = True
            self._ddl, self._dml, self._failed, self._txn_catalog = 0, False, False, False
        elif status == "E":
            self._failed = True

    @property
    def committed_catalog_change(self) -> bool:
        """True once after a transaction with a catalog change committed; reading it clears it."""
        committed, self._committed = self._committed, False
        return committed


# --------------------------------------------------------------------------------------------------------------------
# Documentation


def rules_markdown(rules: Mapping[str, Rule] = RULES) -> str:
    """The rules table for docs/dsql.md (a test keeps the docs equal to it)."""
    lines = ["| key | SQLSTATE | message (DETAIL) | when | source |", "|---|---|---|---|---|"]
    for rule in rules.values():
        text = f"`{rule.message}`" + (f" (DETAIL `{rule.detail}`)" if rule.detail else "")
        cells = (f"`{rule.key}`", rule.sqlstate, text, rule.summary, rule.source)
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines) + "\n"
