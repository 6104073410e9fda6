"""DSQL's rules table, the statement classifier and the transaction rules (sans-IO, no backend)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from sigv4_proxy.emulate.dsql.rules import (
    _ALTER_TABLE_TRIGGER_FORMS,
    _TRIGGER_STATEMENTS,
    EMULATOR_SCHEMA,
    ERA_2025,
    ERA_PREVIEW,
    RULES,
    Analysis,
    Limits,
    Refused,
    RulesConfig,
    TransactionRules,
    age_limit_refusal,
    analyze,
    analyze_uncached,
    identifier_list,
    options_cluster_id,
    row_limit_refusal,
    rules_markdown,
    size_limit_refusal,
    split_options,
    sql_literal,
    startup_refusal,
    with_messages,
)

REFUSE_FK = RulesConfig(foreign_keys="refuse")
CACHE_TAIL = "please define CACHE greater than or equal to 65536 or equal to 1"

# key -> (refused SQL, exact SQLSTATE, exact message, exact DETAIL, an allowed neighbour, config). The end-to-end
# tests (test_rules_e2e.py) run these through the emulator, where the allowed forms really succeed: they name the
# objects its fixture creates (table t (id, a, b, c0…c8, CONSTRAINT c), table p (id), role reader), and may create
# anything else.
STATEMENT_CASES: dict[str, tuple[str, str, str, str | None, str, RulesConfig]] = {
    "isolation_level": (
        "BEGIN ISOLATION LEVEL SERIALIZABLE",
        "0A000",
        "Unsupported isolation level: SERIALIZABLE",
        None,
        "BEGIN ISOLATION LEVEL REPEATABLE READ",
        RulesConfig(),
    ),
    "set_parameter": (
        "SET client_min_messages = warning",
        "0A000",
        'setting configuration parameter "client_min_messages" not supported',
        None,
        "SET search_path = public",
        RulesConfig(),
    ),
    "reserved_prefix": (
        "SET dsql.x = 1",
        "42602",
        'invalid configuration parameter name "dsql.x"',
        '"dsql" is a reserved prefix.',
        "SET dsql.enable_batched_nestloop = on",
        RulesConfig(),
    ),
    "emulator_schema": (
        "SELECT sigv4_emulator.record_job('forged', 'completed', NULL, NULL, now())",
        "3F000",
        'schema "sigv4_emulator" does not exist',
        None,
        "SELECT sys.wait_for_job('aaaaaaaaaaaaaaaaaaaaaaaaaa')",
        RulesConfig(),
    ),
    "transaction_statement": (
        "SAVEPOINT a",
        "0A000",
        "unsupported transaction statement: SAVEPOINT",
        None,
        "COMMIT",
        RulesConfig(),
    ),
    "truncate": ("TRUNCATE t", "0A000", "unsupported statement: Truncate", None, "DELETE FROM t", RulesConfig()),
    "create_extension": (
        "CREATE EXTENSION pgcrypto",
        "0A000",
        "unsupported statement: CreateExtension",
        None,
        "SELECT gen_random_uuid()",
        RulesConfig(),
    ),
    "create_trigger": (
        "CREATE TRIGGER tr AFTER INSERT ON t FOR EACH ROW EXECUTE FUNCTION f()",
        "0A000",
        "CREATE TRIGGER not supported",
        None,
        "CREATE VIEW v AS SELECT 1",
        RulesConfig(),
    ),
    "trigger_statement": (
        "DROP TRIGGER sigv4_emulator_row_cap ON t",
        "0A000",
        "DROP TRIGGER not supported",
        None,
        "DROP TABLE t",
        RulesConfig(),
    ),
    "alter_table_trigger": (
        "ALTER TABLE t DISABLE TRIGGER ALL",
        "0A000",
        "unsupported ALTER TABLE DISABLE TRIGGER ALL statement",
        None,
        "ALTER TABLE t OWNER TO admin",
        RulesConfig(),
    ),
    "create_database": (
        "CREATE DATABASE d",
        "0A000",
        "unsupported statement: Createdb",
        None,
        "CREATE SCHEMA s",
        RulesConfig(),
    ),
    "temp_table": (
        "CREATE TEMP TABLE t (a int)",
        "0A000",
        "TEMPORARY or TEMP table not supported for CREATE TABLE",
        None,
        "CREATE TABLE t (a int)",
        RulesConfig(),
    ),
    "unlogged_table": (
        "CREATE UNLOGGED TABLE t (a int)",
        "0A000",
        "UNLOGGED table not supported for CREATE TABLE",
        None,
        "CREATE TABLE t (a int PRIMARY KEY, b text UNIQUE, CHECK (a > 0))",
        RulesConfig(),
    ),
    "create_table_as": (
        "CREATE TABLE t AS SELECT 1 AS a",
        "0A000",
        "unsupported statement: CreateTableAs",
        None,
        "INSERT INTO t SELECT 1",
        RulesConfig(),
    ),
    "create_type": (
        "CREATE TYPE e AS ENUM ('a', 'b')",
        "0A000",
        "CREATE TYPE not supported",
        None,
        "CREATE DOMAIN d AS text",
        RulesConfig(),
    ),
    "composite_type": (
        "CREATE TYPE c AS (a int, b text)",
        "0A000",
        "unsupported statement: CompositeType",
        None,
        "CREATE DOMAIN d AS int CHECK (VALUE > 0)",
        RulesConfig(),
    ),
    "create_range": (
        "CREATE TYPE r AS RANGE (subtype = int4)",
        "0A000",
        "unsupported statement: CreateRange",
        None,
        "SELECT int4range(1, 2)",
        RulesConfig(),
    ),
    "function_language": (
        "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END $$",
        "0A000",
        "CREATE FUNCTION with language plpgsql not supported",
        None,
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$",
        RulesConfig(),
    ),
    "create_procedure": (
        "CREATE PROCEDURE p() LANGUAGE sql AS $$ SELECT 1 $$",
        "0A000",
        "PROCEDURE is not supported",
        None,
        "CREATE FUNCTION p() RETURNS int RETURN 1",
        RulesConfig(),
    ),
    "do_block": ("DO $$ BEGIN END $$", "0A000", "unsupported statement: Do", None, "SELECT 1", RulesConfig()),
    "create_tablespace": (
        "CREATE TABLESPACE ts LOCATION '/tmp'",
        "0A000",
        "unsupported statement: CreateTableSpace",
        None,
        "CREATE SCHEMA ts",
        RulesConfig(),
    ),
    "create_foreign_table": (
        "CREATE FOREIGN TABLE f (a int) SERVER s",
        "0A000",
        "unsupported statement: CreateForeignTable",
        None,
        "CREATE TABLE f (a int)",
        RulesConfig(),
    ),
    "vacuum": ("VACUUM t", "0A000", "unsupported VACUUM statement", None, "ANALYZE t", RulesConfig()),
    "listen": ("LISTEN ch", "0A000", "unsupported statement: Listen", None, "SELECT 1", RulesConfig()),
    "notify": ("NOTIFY ch", "0A000", "unsupported statement: Notify", None, "SELECT 1", RulesConfig()),
    "unlisten": ("UNLISTEN *", "0A000", "unsupported statement: Unlisten", None, "SELECT 1", RulesConfig()),
    "alter_system": (
        "ALTER SYSTEM SET work_mem = '1MB'",
        "0A000",
        "unsupported statement: AlterSystem",
        None,
        "SET enable_hashjoin = off",
        RulesConfig(),
    ),
    "serial_type": (
        "CREATE TABLE t (id serial PRIMARY KEY)",
        "42704",
        'type "serial" does not exist',
        None,
        "CREATE TABLE t (id uuid PRIMARY KEY DEFAULT gen_random_uuid())",
        RulesConfig(),
    ),
    "sequence_cache": (
        "CREATE SEQUENCE s",
        "0A000",
        f"CREATE SEQUENCE is not supported without an explicit cache size. {CACHE_TAIL}",
        None,
        "CREATE SEQUENCE s CACHE 65536",
        RulesConfig(),
    ),
    "identity_cache": (
        "CREATE TABLE t (id bigint GENERATED ALWAYS AS IDENTITY)",
        "0A000",
        f"identity column is not supported without an explicit cache size. {CACHE_TAIL}",
        None,
        "CREATE TABLE t (id bigint GENERATED ALWAYS AS IDENTITY (CACHE 1))",
        RulesConfig(),
    ),
    "identity_type": (
        "CREATE TABLE t (id int GENERATED ALWAYS AS IDENTITY (CACHE 65536))",
        "0A000",
        "datatype integer not supported, identity column type must be bigint",
        None,
        "CREATE TABLE t (id bigint GENERATED BY DEFAULT AS IDENTITY (CACHE 70000))",
        RulesConfig(),
    ),
    "unsupported_type": (
        "CREATE TABLE t (a integer[])",
        "0A000",
        "datatype integer[] not supported",
        None,
        "CREATE TABLE t (a integer, b jsonb, c numeric(10, 2), d timestamptz)",
        RulesConfig(),
    ),
    "collation": (
        'CREATE TABLE t (a text COLLATE "en_US")',
        "0A000",
        'collation "en_US" not supported, only "C" is supported',
        None,
        'CREATE TABLE t (a text COLLATE "C")',
        RulesConfig(),
    ),
    "partitioned_table": (
        "CREATE TABLE t (a int) PARTITION BY RANGE (a)",
        "0A000",
        "partitioned tables not supported",
        None,
        "CREATE TABLE t (a int)",
        RulesConfig(),
    ),
    "inherits": (
        "CREATE TABLE c () INHERITS (p)",
        "0A000",
        "table inheritance not supported",
        None,
        "CREATE TABLE c (LIKE p)",
        RulesConfig(),
    ),
    "exclusion_constraint": (
        "CREATE TABLE t (a int, EXCLUDE USING btree (a WITH =))",
        "0A000",
        "exclusion constraints not supported",
        None,
        "CREATE TABLE t (a int UNIQUE)",
        RulesConfig(),
    ),
    "foreign_key": (
        "CREATE TABLE c (id uuid PRIMARY KEY, p uuid REFERENCES p (id))",
        "0A000",
        "FOREIGN KEY constraint not supported",
        None,
        "CREATE TABLE c (id uuid PRIMARY KEY, p uuid)",
        REFUSE_FK,
    ),
    "too_many_columns": (
        "CREATE TABLE t (" + ", ".join(f"c{i} int" for i in range(256)) + ")",
        "54011",
        "tables can have at most 255 columns",
        None,
        "CREATE TABLE t (" + ", ".join(f"c{i} int" for i in range(255)) + ")",
        RulesConfig(),
    ),
    "statistics_target": (
        "ALTER TABLE t ALTER COLUMN a SET STATISTICS 500",
        "22023",
        "statistics target 500 exceeds maximum allowed value of 100",
        None,
        "ALTER TABLE t ALTER COLUMN a SET STATISTICS 100",
        RulesConfig(),
    ),
    "alter_add_column_constraint": (
        "ALTER TABLE t ADD COLUMN n int DEFAULT 1",
        "0A000",
        "ALTER TABLE ADD COLUMN with constraint not supported",
        None,
        "ALTER TABLE t ADD COLUMN n int",
        RulesConfig(),
    ),
    "alter_column_type": (
        "ALTER TABLE t ALTER COLUMN a TYPE bigint",
        "0A000",
        "unsupported ALTER TABLE ALTER COLUMN ... SET DATA TYPE statement",
        None,
        "ALTER TABLE t RENAME COLUMN a TO a2",
        RulesConfig(),
    ),
    "alter_add_constraint": (
        "ALTER TABLE t ADD CONSTRAINT c2 CHECK (a > 0)",
        "0A000",
        "unsupported ALTER TABLE ADD CONSTRAINT statement",
        None,
        "ALTER TABLE t ADD CONSTRAINT c2 CHECK (a > 0) NOT VALID",
        RulesConfig(),
    ),
    "validate_constraint": (
        "ALTER TABLE t VALIDATE CONSTRAINT c",
        "0A000",
        "unsupported ALTER TABLE VALIDATE CONSTRAINT statement",
        None,
        "ALTER TABLE t DROP CONSTRAINT c",
        RulesConfig(),
    ),
    "locking_clause": (
        "SELECT * FROM t WHERE id IN (SELECT id FROM u FOR SHARE)",
        "0A000",
        "locking clauses other than FOR UPDATE/FOR KEY SHARE are not supported",
        None,
        "SELECT * FROM t FOR UPDATE",
        RulesConfig(),
    ),
    "index_keys": (
        "CREATE INDEX ASYNC i ON t (" + ", ".join(f"c{i}" for i in range(9)) + ")",
        "54011",
        "more than 8 column keys in an index are not supported",
        None,
        "CREATE INDEX ASYNC i ON t (" + ", ".join(f"c{i}" for i in range(8)) + ")",
        RulesConfig(),
    ),
    "index_concurrently": (
        "CREATE INDEX ASYNC CONCURRENTLY i ON t (a)",
        "0A000",
        "CONCURRENTLY not supported for CREATE INDEX",
        None,
        "CREATE INDEX ASYNC i ON t (a)",
        RulesConfig(),
    ),
    "index_sort_order": (
        "CREATE INDEX ASYNC i ON t (a DESC)",
        "0A000",
        "specifying sort order not supported for index keys",
        None,
        "CREATE INDEX ASYNC i ON t (a) INCLUDE (b)",
        RulesConfig(),
    ),
    "index_opclass": (
        "CREATE INDEX ASYNC i ON t (a text_pattern_ops)",
        "0A000",
        "opclass not supported for index keys",
        None,
        "CREATE UNIQUE INDEX ASYNC i ON t (lower(b)) NULLS NOT DISTINCT",
        RulesConfig(),
    ),
    "index_async_syntax": (
        "CREATE INDEX ASYNC s.i ON t (a)",
        "42601",
        'syntax error at or near "."',
        None,
        "CREATE INDEX ASYNC ON t (a) WHERE a > 0",
        RulesConfig(),
    ),
    "create_index_sync": (
        "CREATE INDEX i ON t (a)",
        "0A000",
        "unsupported mode. please use CREATE INDEX ASYNC.",
        None,
        "CREATE INDEX ASYNC IF NOT EXISTS i ON t (a)",
        RulesConfig(),
    ),
    "iam_role_unsupported": (
        "AWS IAM GRANT pg_read_all_data TO 'arn:aws:iam::123456789012:role/r'",
        "0A000",
        "Role pg_read_all_data not supported",
        None,
        "AWS IAM GRANT reader TO 'arn:aws:iam::123456789012:role/r'",
        RulesConfig(),
    ),
    "iam_trust_refused": (
        "AWS IAM GRANT admin TO 'arn:aws:iam::123456789012:role/r'",
        "0A000",
        "Cannot establish trust with role admin",
        None,
        "AWS IAM GRANT reader TO 'arn:aws:iam::123456789012:role/admin'",
        RulesConfig(),
    ),
}

# Rules the transaction rules raise: key -> the batches (one list per query) whose last one is refused.
TRANSACTION_CASES: dict[str, list[str]] = {
    "multiple_ddl": ["CREATE TABLE a (x int); CREATE TABLE b (x int)"],
    "ddl_dml": ["BEGIN", "CREATE TABLE a (x int)", "INSERT INTO a VALUES (1)"],
}

# Rules raised by the backend (triggers, IAM procedures) or by the session (OCC): the exact rendered texts.
RENDERED_CASES: dict[str, tuple[dict[str, str], str, str | None]] = {
    "row_limit": ({}, "transaction row limit exceeded", None),
    "size_limit": (
        {"limit": "10", "size": "12"},
        "transaction size limit 10mb exceeded",
        "Current transaction size 12mb > 10mb",
    ),
    "age_limit": (
        {"limit": "300", "age": "310"},
        "transaction age limit of 300s exceeded",
        "Current transaction age 310s exceeds 300s",
    ),
    "oc000": ({}, "change conflicts with another transaction (OC000)", None),
    "oc001": ({}, "schema has been updated by another transaction (OC001)", None),
    "iam_not_admin": ({"role": "r"}, "permission denied to grant IAM trust with role r", None),
    "iam_role_missing": ({"role": "r"}, "Role r does not exist", None),
    "iam_role_no_login": ({"role": "r"}, "role r must have the LOGIN attribute", None),
    "iam_arn_invalid": ({}, "IAM role must look like an IAM ARN", None),
    "iam_duplicate": ({"role": "r", "arn": "arn:a"}, "IAM role arn:a is already mapped to role r", None),
    "iam_mapping_missing": ({"role": "r", "arn": "arn:a"}, "IAM role arn:a does not exist", None),
    "drop_mapped_role": ({"role": "r"}, "role r cannot be dropped because some objects depend on it", None),
}


def test_every_rule_has_exactly_one_case() -> None:
    groups = [set(STATEMENT_CASES), set(TRANSACTION_CASES), set(RENDERED_CASES)]
    assert set().union(*groups) == set(RULES)
    assert sum(len(group) for group in groups) == len(RULES)


@pytest.mark.parametrize("key", sorted(STATEMENT_CASES))
def test_statement_rule_refuses_and_allows(key: str) -> None:
    refused_sql, sqlstate, message, detail, allowed_sql, config = STATEMENT_CASES[key]
    analysis = analyze(refused_sql, config)
    assert analysis.refused is not None, refused_sql
    assert analysis.refused.rule.key == key
    assert (analysis.refused.sqlstate, analysis.refused.message, analysis.refused.detail) == (sqlstate, message, detail)
    assert analysis.refused.index == 0
    assert analyze(allowed_sql, config).refused is None, allowed_sql


@pytest.mark.parametrize("key", sorted(TRANSACTION_CASES))
def test_transaction_rule_refuses(key: str) -> None:
    session = TransactionRules()
    *before, last = TRANSACTION_CASES[key]
    for query in before:
        assert session.check(analyze(query)) is None
        session.observe_complete("X")
        session.observe_ready("T")
    refusal = session.check(analyze(last))
    assert refusal is not None and refusal.rule.key == key
    assert (refusal.sqlstate, refusal.message) == ("0A000", RULES[key].message)


@pytest.mark.parametrize("key", sorted(RENDERED_CASES))
def test_rendered_rule_text(key: str) -> None:
    values, message, detail = RENDERED_CASES[key]
    refused = Refused(RULES[key], values)
    assert (refused.message, refused.detail) == (message, detail)


def test_limit_refusals_from_the_defaults_give_dsql_texts() -> None:
    limits = Limits()
    assert row_limit_refusal(limits).message == "transaction row limit exceeded"
    size = size_limit_refusal(limits, "11")
    assert (size.sqlstate, size.message, size.detail) == (
        "54000",
        "transaction size limit 10mb exceeded",
        "Current transaction size 11mb > 10mb",
    )
    age = age_limit_refusal(limits, "301")
    assert (age.message, age.detail) == (
        "transaction age limit of 300s exceeded",
        "Current transaction age 301s exceeds 300s",
    )
    assert Limits(bytes=512 * 1024).size_mb == "0.5"
    assert Limits(bytes=65536).size_mb == "0.063"  # as the backend's trigger writes it
    assert Limits(bytes=20 * 1024 * 1024).size_mb == "20"


def test_with_messages_swaps_the_era() -> None:
    older = with_messages(ERA_2025)
    assert older["oc000"].message == "change conflicts with another transaction, please retry: (OC000)"
    assert older["oc001"].message == "schema has been updated by another transaction, please retry: (OC001)"
    assert older["oc000"].sqlstate == "40001" and older["multiple_ddl"] == RULES["multiple_ddl"]
    assert with_messages(ERA_PREVIEW)["oc000"].message == "mutation conflicts with another transaction, retry as needed"
    with pytest.raises(ValueError, match="no DSQL rule named nope"):
        with_messages({"nope": "x"})
    config = RulesConfig(overrides=(("truncate", "nope: {x}"),))
    assert config.rules["truncate"].message == "nope: {x}"


# -- isolation and parameters ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", "Unsupported isolation level: SERIALIZABLE"),
        ("START TRANSACTION ISOLATION LEVEL READ COMMITTED", "Unsupported isolation level: READ COMMITTED"),
        ("begin isolation level read uncommitted", "Unsupported isolation level: READ UNCOMMITTED"),
        (
            "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ",
            'setting configuration parameter "TRANSACTION" not supported',
        ),
        ("SET TRANSACTION READ ONLY", 'setting configuration parameter "TRANSACTION" not supported'),
        (
            "SET default_transaction_isolation = 'serializable'",
            'setting configuration parameter "default_transaction_isolation" not supported',
        ),
        ("SET LOCAL statement_timeout = 5", 'setting configuration parameter "statement_timeout" not supported'),
        ("SET Work_Mem TO '4MB'", 'setting configuration parameter "work_mem" not supported'),
        ("SET lc_numeric = 'C'", 'setting configuration parameter "lc_numeric" not supported'),
        (
            "SET default_statistics_target = 50",
            'setting configuration parameter "default_statistics_target" not supported',
        ),
        (
            "SET default_transaction_read_only = on",
            'setting configuration parameter "default_transaction_read_only" not supported',
        ),
        ("RESET dsql.anything", 'invalid configuration parameter name "dsql.anything"'),
        ("SET sigv4_emulator.rules = 'off'", 'invalid configuration parameter name "sigv4_emulator.rules"'),
        ("SET sigv4_emulator.rules TO DEFAULT", 'invalid configuration parameter name "sigv4_emulator.rules"'),
    ],
)
def test_parameter_refusals(sql: str, message: str) -> None:
    refused = analyze(sql).refused
    assert refused is not None and refused.message == message


@pytest.mark.parametrize(
    "sql",
    [
        "BEGIN",
        "BEGIN READ ONLY",
        "START TRANSACTION READ WRITE",
        "SET search_path TO app, public",
        "SET enable_hashjoin = off",
        "SET work_mem TO DEFAULT",
        "RESET statement_timeout",
        "RESET ALL",
        "SET TIME ZONE 'UTC'",
        "SHOW transaction_isolation",
        "SELECT current_setting('work_mem')",
        "SELECT set_config('search_path', 'app', false)",
        "SELECT set_config($1, $2, false)",
    ],
)
def test_parameter_forms_allowed(sql: str) -> None:
    assert analyze(sql).refused is None


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        (
            "SELECT set_config('statement_timeout', '1s', false)",
            'setting configuration parameter "statement_timeout" not supported',
        ),
        (
            "SELECT 1 WHERE pg_catalog.set_config('Work_Mem'::text, '1MB', true) IS NOT NULL",
            'setting configuration parameter "work_mem" not supported',
        ),
        (
            "SELECT * FROM (SELECT set_config('sigv4_emulator.rules', 'off', false)) s",
            'invalid configuration parameter name "sigv4_emulator.rules"',
        ),
        ("INSERT INTO t SELECT set_config('dsql.x', '1', true)", 'invalid configuration parameter name "dsql.x"'),
    ],
)
def test_set_config_anywhere(sql: str, message: str) -> None:
    refused = analyze(sql).refused
    assert refused is not None and refused.message == message


def test_startup_refusals() -> None:
    assert startup_refusal({"user": "admin", "database": "postgres", "application_name": "psql"}) is None
    lc = startup_refusal({"user": "admin", "lc_numeric": "C"})
    assert lc is not None and lc.message == 'setting configuration parameter "lc_numeric" not supported'
    assert startup_refusal({"user": "admin", "options": "-c amzn-cluster-id=abc -c search_path=x"}) is None
    for options in ("-c client_min_messages=warning", "-cclient-min-messages=warning", "--client_min_messages=warning"):
        refused = startup_refusal({"user": "admin", "options": options})
        assert refused is not None, options
        assert refused.message == 'setting configuration parameter "client_min_messages" not supported'
    prefix = startup_refusal({"user": "admin", "options": "-c sigv4_emulator.rules=off"})
    assert prefix is not None and (prefix.sqlstate, prefix.detail) == (
        "42602",
        '"sigv4_emulator" is a reserved prefix.',
    )


def test_startup_search_path_naming_the_emulator_schema_is_refused() -> None:
    for params in (
        {"user": "admin", "search_path": 'public, "sigv4_emulator"'},
        {"user": "admin", "options": "-c search_path=SIGV4_EMULATOR"},
        {"user": "admin", "options": r"-c search_path=public,\ sigv4_emulator"},
    ):
        refused = startup_refusal(params)
        assert refused is not None, params
        assert (refused.sqlstate, refused.message) == ("3F000", 'schema "sigv4_emulator" does not exist')
    assert startup_refusal({"user": "admin", "options": "-c search_path=app,public"}) is None
    assert startup_refusal({"user": "admin", "search_path": '"Sigv4_Emulator"'}) is None  # another (missing) schema


def test_identifier_list_reads_like_postgresql() -> None:
    assert identifier_list(' a , "B""c" ,D,"x,y"') == ["a", 'B"c', "d", "x,y"]
    assert identifier_list("") == [] and identifier_list('"$user", public') == ["$user", "public"]


def test_options_helpers() -> None:
    assert split_options(r"-c a=b\ c  -c d=\\e") == ["-c", "a=b c", "-c", "d=\\e"]
    params = {"options": r"-c amzn-cluster-id=abc123 -c application_name=my\ app --amzn_cluster_id=zzz"}
    assert options_cluster_id(params) == "zzz"
    assert options_cluster_id({"options": "-camzn-cluster-id=q1"}) == "q1"
    assert options_cluster_id({}) is None


# -- the emulator's own machinery: a client can neither call it nor switch it off ---------------------------------

EMULATOR_SCHEMA_REFUSED = [
    "SELECT sigv4_emulator.record_job('j', 'completed', NULL, NULL, now())",
    "CALL sigv4_emulator.iam_grant('admin', 'arn:aws:iam::123456789012:role/r')",
    "CALL SIGV4_EMULATOR.drop_role('r')",
    'SELECT * FROM "sigv4_emulator".new_job_id()',
    "SELECT postgres.sigv4_emulator.new_job_id()",
    "INSERT INTO t VALUES (sigv4_emulator.new_job_id())",
    "WITH j AS (SELECT sigv4_emulator.new_job_id()) SELECT * FROM j",
    "EXPLAIN ANALYZE SELECT sigv4_emulator.new_job_id()",
    "PREPARE p AS SELECT sigv4_emulator.new_job_id()",
    "CREATE VIEW v AS SELECT sigv4_emulator.new_job_id()",
    "CREATE TABLE t (id text DEFAULT sigv4_emulator.new_job_id())",
    "CREATE OPERATOR ### (RIGHTARG = text, FUNCTION = sigv4_emulator.create_index_async)",
    "CREATE AGGREGATE a(text) (SFUNC = sigv4_emulator.f, STYPE = text)",
    "CREATE CAST (text AS int) WITH FUNCTION sigv4_emulator.f(text)",
    "GRANT EXECUTE ON FUNCTION sigv4_emulator.record_job TO PUBLIC",
    "CREATE INDEX ASYNC i ON t (sigv4_emulator.f(a))",
    "AWS IAM GRANT app TO 'arn:aws:iam::1:role/a'; SELECT sigv4_emulator.new_job_id()",
    # SQL function bodies run later, out of the relay's sight: checked when the function is created
    "CREATE FUNCTION f() RETURNS text LANGUAGE sql AS $$ SELECT Sigv4_Emulator.new_job_id() $$",
    "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT sigv4_emulator.g(); END",
    # a search_path through the schema would reach its functions unqualified
    'SET search_path = "$user", sigv4_emulator',
    "SET LOCAL search_path TO SIGV4_EMULATOR",
    "SELECT set_config('search_path', 'public, \"sigv4_emulator\"', false)",
    "SELECT pg_catalog.set_config('search_path', 'Sigv4_Emulator', true)",
    "CREATE FUNCTION f() RETURNS void LANGUAGE sql SET search_path = sigv4_emulator AS $$ SELECT 1 $$",
    "ALTER FUNCTION f() SET search_path = sigv4_emulator",
    "ALTER ROLE admin SET search_path = public, sigv4_emulator",
    "ALTER DATABASE postgres SET search_path = sigv4_emulator",
]


@pytest.mark.parametrize("sql", EMULATOR_SCHEMA_REFUSED)
def test_the_emulator_schema_cannot_be_named(sql: str) -> None:
    refused = analyze(sql).refused
    assert refused is not None and refused.rule.key == "emulator_schema", sql
    assert (refused.sqlstate, refused.message) == ("3F000", f'schema "{EMULATOR_SCHEMA}" does not exist')
    assert analyze_uncached(sql).refused == refused


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT sigv4_emulator.col FROM t AS sigv4_emulator",  # a table alias may be called anything
        "SELECT 'sigv4_emulator.record_job(1)'",
        "SELECT 'sigv4_emulator.record_job'::regproc",
        "SET search_path = 'sigv4_emulator, public'",  # one schema, named "sigv4_emulator, public"
        "SELECT set_config('search_path', '\"Sigv4_Emulator\"', false)",
        "SELECT sys.wait_for_job('aaaaaaaaaaaaaaaaaaaaaaaaaa')",
        "CREATE FUNCTION f() RETURNS text LANGUAGE sql AS $$ SELECT 'sigv4_emulator.x()' $$",
        "CREATE FUNCTION f() RETURNS void LANGUAGE sql SET work_mem = '1MB' AS $$ SELECT 1 $$",
    ],
)
def test_names_that_only_look_like_the_emulator_schema_pass(sql: str) -> None:
    assert analyze(sql).refused is None, sql


def test_rewrites_are_made_after_the_checks() -> None:
    """The emulator's rewrites call its own schema: analyze() never sees them (the relay sends them unchecked), while
    the same text typed by a client is refused."""
    for sql in (
        "AWS IAM GRANT app TO 'arn:aws:iam::123456789012:role/app'",
        "AWS IAM REVOKE app FROM 'arn:aws:iam::123456789012:role/app'",
        "CREATE INDEX ASYNC i ON t (a)",
        "DROP ROLE app",
    ):
        analysis = analyze(sql)
        assert analysis.refused is None and analysis.rewritten is not None, sql
        typed = analyze(analysis.rewritten).refused
        assert typed is not None and typed.rule.key == "emulator_schema", analysis.rewritten


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SET sigv4_emulator.rules = off", 'invalid configuration parameter name "sigv4_emulator.rules"'),
        (
            "CREATE FUNCTION f() RETURNS void LANGUAGE sql SET sigv4_emulator.rules = off AS $$ SELECT 1 $$",
            'invalid configuration parameter name "sigv4_emulator.rules"',
        ),
        (
            "ALTER FUNCTION f() SET sigv4_emulator.rules TO off",
            'invalid configuration parameter name "sigv4_emulator.rules"',
        ),
        (
            "ALTER ROLE admin IN DATABASE postgres SET sigv4_emulator.row_limit = 1000000",
            'invalid configuration parameter name "sigv4_emulator.row_limit"',
        ),
        ("ALTER DATABASE postgres RESET dsql.x", 'invalid configuration parameter name "dsql.x"'),
        (
            "CREATE FUNCTION f() RETURNS void LANGUAGE sql AS 'SET sigv4_emulator.rules = off'",
            'invalid configuration parameter name "sigv4_emulator.rules"',
        ),
        (
            "CREATE FUNCTION f() RETURNS void LANGUAGE sql AS $$ ALTER TABLE t DISABLE TRIGGER ALL $$",
            "unsupported ALTER TABLE DISABLE TRIGGER ALL statement",
        ),
        (
            "CREATE FUNCTION f() RETURNS void LANGUAGE sql AS $$ SELECT 1; DROP TRIGGER sigv4_emulator_row_cap ON t $$",
            "DROP TRIGGER not supported",
        ),
        ("CREATE FUNCTION f() RETURNS void LANGUAGE sql AS $$ TRUNCATE t $$", "unsupported statement: Truncate"),
    ],
)
def test_the_checks_cannot_be_switched_off_from_sql(sql: str, message: str) -> None:
    refused = analyze(sql).refused
    assert refused is not None and refused.message == message, sql
    assert refused.index == 0


def test_function_bodies_that_do_not_parse_are_left_to_postgresql() -> None:
    assert analyze("CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELEC 1 $$").refused is None
    assert analyze("CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$").refused is None


# One example per row of the trigger tables: every row is tested, and nothing else is in them.
ALTER_TABLE_TRIGGER_EXAMPLES = {
    "AT_EnableTrig": ("ALTER TABLE t ENABLE TRIGGER x", "ENABLE TRIGGER"),
    "AT_EnableAlwaysTrig": ("ALTER TABLE t ENABLE ALWAYS TRIGGER x", "ENABLE ALWAYS TRIGGER"),
    "AT_EnableReplicaTrig": ("ALTER TABLE t ENABLE REPLICA TRIGGER sigv4_emulator_row_cap", "ENABLE REPLICA TRIGGER"),
    "AT_EnableTrigAll": ("ALTER TABLE t ENABLE TRIGGER ALL", "ENABLE TRIGGER ALL"),
    "AT_EnableTrigUser": ("ALTER TABLE IF EXISTS t ENABLE TRIGGER USER", "ENABLE TRIGGER USER"),
    "AT_DisableTrig": ("ALTER TABLE s.t ADD COLUMN n int, DISABLE TRIGGER sigv4_emulator_row_cap", "DISABLE TRIGGER"),
    "AT_DisableTrigAll": ("ALTER TABLE ONLY t DISABLE TRIGGER ALL", "DISABLE TRIGGER ALL"),
    "AT_DisableTrigUser": ("ALTER FOREIGN TABLE t DISABLE TRIGGER USER", "DISABLE TRIGGER USER"),
}
TRIGGER_STATEMENT_EXAMPLES = {
    "DropStmt": ("DROP TRIGGER IF EXISTS sigv4_emulator_commit_cap ON t CASCADE", "DROP TRIGGER"),
    "RenameStmt": ("ALTER TRIGGER sigv4_emulator_row_cap ON t RENAME TO x", "ALTER TRIGGER"),
    "AlterObjectDependsStmt": ("ALTER TRIGGER sigv4_emulator_row_cap ON t DEPENDS ON EXTENSION e", "ALTER TRIGGER"),
}


def test_every_trigger_table_row_has_an_example() -> None:
    assert set(ALTER_TABLE_TRIGGER_EXAMPLES) == set(_ALTER_TABLE_TRIGGER_FORMS)
    assert set(TRIGGER_STATEMENT_EXAMPLES) == set(_TRIGGER_STATEMENTS)


@pytest.mark.parametrize("subtype", sorted(ALTER_TABLE_TRIGGER_EXAMPLES))
def test_alter_table_trigger_forms_are_refused(subtype: str) -> None:
    sql, form = ALTER_TABLE_TRIGGER_EXAMPLES[subtype]
    refused = analyze(sql).refused
    assert refused is not None and refused.rule.key == "alter_table_trigger", sql
    assert (refused.sqlstate, refused.message) == ("0A000", f"unsupported ALTER TABLE {form} statement")
    assert _ALTER_TABLE_TRIGGER_FORMS[subtype] == form


@pytest.mark.parametrize("node_type", sorted(TRIGGER_STATEMENT_EXAMPLES))
def test_trigger_statements_are_refused(node_type: str) -> None:
    sql, statement = TRIGGER_STATEMENT_EXAMPLES[node_type]
    refused = analyze(sql).refused
    assert refused is not None and refused.rule.key == "trigger_statement", sql
    assert (refused.sqlstate, refused.message) == ("0A000", f"{statement} not supported")


@pytest.mark.parametrize(
    "sql",
    [
        "DROP TABLE t",
        "DROP POLICY p ON t",
        "DROP RULE r ON t",
        "ALTER TABLE t RENAME TO u",
        "ALTER TABLE t RENAME CONSTRAINT c TO d",
        "ALTER INDEX i DEPENDS ON EXTENSION e",
        "ALTER TABLE t ENABLE ROW LEVEL SECURITY",
        "ALTER TABLE t DISABLE RULE r",
        "COMMENT ON TRIGGER x ON t IS 'y'",
    ],
)
def test_other_objects_of_the_same_statements_pass(sql: str) -> None:
    assert analyze(sql).refused is None, sql


# -- DSQL-only statements and rewrites ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "rewritten"),
    [
        (
            "AWS IAM GRANT app TO 'arn:aws:iam::123456789012:role/app'",
            "CALL sigv4_emulator.iam_grant('app', 'arn:aws:iam::123456789012:role/app')",
        ),
        (
            """aws iam grant "My ""Role" to 'arn:aws:iam::123456789012:user/o''brien'""",
            "CALL sigv4_emulator.iam_grant('My \"Role', 'arn:aws:iam::123456789012:user/o''brien')",
        ),
        (
            "AWS IAM REVOKE App FROM E'arn:aws:iam::123456789012:role/a\\\\b' /* done */",
            "CALL sigv4_emulator.iam_revoke('app', E'arn:aws:iam::123456789012:role/a\\\\b')",
        ),
        (
            "CREATE UNIQUE INDEX ASYNC IF NOT EXISTS i ON t (a) INCLUDE (b) WHERE a > 'x'",
            "SELECT sigv4_emulator.create_index_async('CREATE UNIQUE INDEX IF NOT EXISTS i ON t (a) INCLUDE (b) "
            "WHERE a > ''x''') AS job_id",
        ),
        ("create index async on t (a)", "SELECT sigv4_emulator.create_index_async('create index on t (a)') AS job_id"),
        ("SHOW server_version", "SELECT '16.15' AS server_version"),
        ("show SERVER_VERSION_NUM", "SELECT '160015' AS server_version_num"),
        ("DROP ROLE app", "CALL sigv4_emulator.drop_role('app')"),
        ('DROP USER IF EXISTS a, "B"', "CALL sigv4_emulator.drop_role('a', true, 'B')"),
    ],
)
def test_rewrites_exact(sql: str, rewritten: str) -> None:
    analysis = analyze(sql)
    assert analysis.refused is None
    assert analysis.rewritten == rewritten
    assert analysis.statements[0].rewritten == rewritten


def test_rewrite_tags_and_kinds() -> None:
    index = analyze("CREATE INDEX ASYNC i ON t (a)").statements[0]
    assert (index.kind, index.catalog_change, index.tag) == ("ddl", True, "CREATE INDEX")
    show = analyze("SHOW server_version").statements[0]
    assert (show.kind, show.catalog_change, show.tag) == ("other", False, "SHOW")
    grant = analyze("AWS IAM GRANT app TO 'arn:aws:iam::1:role/a'").statements[0]
    assert (grant.kind, grant.catalog_change) == ("ddl", True)
    assert (
        analyze("SHOW server_version", RulesConfig(server_version="16.9")).rewritten
        == "SELECT '16.9' AS server_version"
    )


def test_rewrite_inside_a_batch_keeps_the_other_statements() -> None:
    analysis = analyze("BEGIN; CREATE INDEX ASYNC i ON t (a); COMMIT")
    assert [s.kind for s in analysis.statements] == ["begin", "ddl", "commit"]
    assert analysis.rewritten == (
        "BEGIN; SELECT sigv4_emulator.create_index_async('CREATE INDEX i ON t (a)') AS job_id; COMMIT"
    )


def test_unrecognised_dsql_forms_and_syntax_errors_are_left_to_the_backend() -> None:
    for sql in (
        "AWS IAM GRANT app 'arn'",
        "AWS IAM GRANT app TO 'arn' extra",
        "SELEC 1",
        "CREATE TABLE (",
        "select 'abc",
    ):
        analysis = analyze(sql)
        assert analysis.refused is None and analysis.rewritten is None, sql
    # a batch with a syntax error anywhere fails as a whole in the backend: no rule applies
    assert analyze("TRUNCATE t; SELEC 1").refused is None
    assert analyze("CREATE INDEX ASYNC i ON t (a); SELEC 1").refused is None
    both = analyze("AWS IAM GRANT a TO 'arn:x'; TRUNCATE t; foo")
    assert [s.text for s in both.statements] == ["AWS IAM GRANT a TO 'arn:x'", "TRUNCATE t", "foo"]
    assert both.refused is None and both.rewritten == "CALL sigv4_emulator.iam_grant('a', 'arn:x'); TRUNCATE t; foo"
    mixed = analyze("/* c */ AWS IAM REVOKE a FROM 'arn:x' ; -- x\n TRUNCATE t;; -- end")
    assert mixed.refused is not None and (mixed.refused.rule.key, mixed.refused.index) == ("truncate", 1)


def test_sql_literal() -> None:
    assert sql_literal("it's") == "'it''s'"
    assert sql_literal("a\\b'") == "E'a\\\\b'''"
    with pytest.raises(ValueError, match="NUL"):
        sql_literal("a\x00b")


# -- classification and splitting ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "kinds"),
    [
        ("SELECT 1", ["read"]),
        ("SELECT * FROM t FOR UPDATE", ["read"]),
        ("INSERT INTO t VALUES (1); UPDATE t SET a = 2; DELETE FROM t", ["dml", "dml", "dml"]),
        ("MERGE INTO t USING u ON t.a = u.a WHEN MATCHED THEN DELETE", ["dml"]),
        ("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", ["dml"]),
        ("COPY t FROM STDIN", ["dml"]),
        ("COPY t TO STDOUT", ["read"]),
        (
            "BEGIN; COMMIT; START TRANSACTION; END; ROLLBACK; ABORT",
            ["begin", "commit", "begin", "commit", "rollback", "rollback"],
        ),
        ("SET search_path = x; RESET ALL; SHOW search_path", ["set", "set", "other"]),
        ("CREATE TABLE t (a int); ALTER TABLE t ADD COLUMN b int; DROP TABLE t", ["ddl", "ddl", "ddl"]),
        ("COMMENT ON TABLE t IS 'x'; GRANT SELECT ON t TO r; REVOKE SELECT ON t FROM r", ["ddl", "ddl", "ddl"]),
        ("CREATE ROLE r WITH LOGIN; ALTER ROLE r WITH LOGIN", ["ddl", "ddl"]),
        ("EXPLAIN DELETE FROM t; EXPLAIN (ANALYZE) DELETE FROM t", ["read", "dml"]),
        ("PREPARE p AS INSERT INTO t VALUES ($1); EXECUTE p(1); DEALLOCATE p", ["other", "other", "other"]),
        ("ANALYZE t", ["other"]),
    ],
)
def test_classification(sql: str, kinds: list[str]) -> None:
    analysis = analyze(sql)
    assert analysis.refused is None
    assert [s.kind for s in analysis.statements] == kinds
    assert [s.catalog_change for s in analysis.statements] == [k == "ddl" for k in kinds]


def test_prepare_body_is_analyzed() -> None:
    refused = analyze("PREPARE p AS SELECT * FROM t FOR SHARE").refused
    assert refused is not None and refused.rule.key == "locking_clause"
    refused = analyze("SELECT 1 INTO t2").refused
    assert refused is not None and refused.rule.key == "create_table_as"


def test_statements_split_like_postgresql() -> None:
    sql = "SELECT ';' AS a; SELECT $x$;$x$ -- ; not here\n; /* ; */ SELECT 'é;' ; SELECT E'\\';'"
    texts = [s.text for s in analyze(sql).statements]
    assert texts == ["SELECT ';' AS a", "SELECT $x$;$x$ -- ; not here", "SELECT 'é;'", "SELECT E'\\';'"]
    assert analyze("").statements == () and analyze("-- nothing").statements == ()


def test_refusal_points_at_its_statement() -> None:
    refused = analyze("SELECT 1; SELECT 2; TRUNCATE t; TRUNCATE u").refused
    assert refused is not None and refused.index == 2


def test_fast_path_equals_the_full_analysis() -> None:
    for sql in (
        "UPDATE pgbench_accounts SET abalance = abalance + -4321 WHERE aid = 54321;",
        "SELECT abalance FROM pgbench_accounts WHERE aid = 7;",
        "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (1, 1, 7, 5, CURRENT_TIMESTAMP);",
        "  /* é */ DELETE FROM t WHERE a = 'x' ; -- tail",
        "SELECT 1",
    ):
        assert analyze(sql) == analyze_uncached(sql), sql


def test_analyze_is_cached() -> None:
    config = RulesConfig()
    assert analyze("SELECT 42", config) is analyze("SELECT 42", config)


# -- transaction rules --------------------------------------------------------------------------------------------


def run(session: TransactionRules, sql: str, tags: list[str], status: str, *, error: bool = False) -> None:
    """Feed what the backend answers to an admitted query: its tags, maybe an error, then ReadyForQuery."""
    assert session.check(analyze(sql)) is None, sql
    for tag in tags:
        session.observe_complete(tag)
    if error:
        session.observe_error()
    session.observe_ready(status)


def refusal_key(session: TransactionRules, sql: str) -> str | None:
    refused = session.check(analyze(sql))
    return None if refused is None else refused.rule.key


def test_ddl_ddl_in_one_query_and_across_an_explicit_transaction() -> None:
    session = TransactionRules()
    assert refusal_key(session, "CREATE TABLE a (x int); CREATE TABLE b (x int)") == "multiple_ddl"
    session.observe_error()
    session.observe_ready("I")
    run(session, "BEGIN", ["BEGIN"], "T")
    run(session, "CREATE TABLE a (x int)", ["CREATE TABLE"], "T")
    assert refusal_key(session, "AWS IAM GRANT app TO 'arn:aws:iam::1:role/a'") == "multiple_ddl"


def test_ddl_then_dml_across_queries_and_dml_then_ddl() -> None:
    session = TransactionRules()
    run(session, "BEGIN", ["BEGIN"], "T")
    run(session, "CREATE TABLE a (x int)", ["CREATE TABLE"], "T")
    assert refusal_key(session, "SELECT 1") is None  # reads are fine
    assert refusal_key(session, "INSERT INTO a VALUES (1)") == "ddl_dml"
    other = TransactionRules()
    assert refusal_key(other, "UPDATE t SET a = 1; CREATE INDEX ASYNC i ON t (a)") == "ddl_dml"


def test_autocommit_statements_are_separate_transactions() -> None:
    session = TransactionRules()
    run(session, "CREATE TABLE a (x int)", ["CREATE TABLE"], "I")
    run(session, "CREATE TABLE b (x int)", ["CREATE TABLE"], "I")
    run(session, "INSERT INTO a VALUES (1)", ["INSERT 0 1"], "I")
    # COMMIT inside a batch ends the transaction: the next DDL starts a new one
    run(
        session,
        "BEGIN; CREATE TABLE c (x int); COMMIT; CREATE TABLE d (x int)",
        ["BEGIN", "CREATE TABLE", "COMMIT", "CREATE TABLE"],
        "I",
    )


def test_extended_protocol_pipeline_is_one_implicit_transaction_until_sync() -> None:
    session = TransactionRules()
    assert session.check(analyze("CREATE TABLE a (x int)")) is None
    assert refusal_key(session, "CREATE TABLE b (x int)") == "multiple_ddl"


def test_after_an_error_nothing_is_refused_until_the_transaction_ends() -> None:
    session = TransactionRules()
    run(session, "BEGIN", ["BEGIN"], "T")
    run(session, "CREATE TABLE a (x int)", ["CREATE TABLE"], "T")
    run(session, "SELECT 1/0", [], "E", error=True)
    assert refusal_key(session, "INSERT INTO a VALUES (1)") is None  # the backend answers 25P02 itself
    assert refusal_key(session, "TRUNCATE a") is None
    run(session, "COMMIT", ["ROLLBACK"], "I")
    assert session.committed_catalog_change is False
    # ROLLBACK in the same batch as new statements: they are checked again
    run(session, "BEGIN", ["BEGIN"], "T")
    run(session, "CREATE TABLE a (x int)", ["CREATE TABLE"], "T")
    run(session, "SELECT 1/0", [], "E", error=True)
    assert refusal_key(session, "ROLLBACK; CREATE TABLE a (x int); CREATE TABLE b (x int)") == "multiple_ddl"
    assert refusal_key(session, "ROLLBACK; TRUNCATE a") == "truncate"


def test_committed_catalog_change() -> None:
    session = TransactionRules()
    run(session, "CREATE TABLE a (x int)", ["CREATE TABLE"], "I")
    assert session.committed_catalog_change is True
    assert session.committed_catalog_change is False  # read once
    run(session, "SELECT 1", ["SELECT 1"], "I")
    assert session.committed_catalog_change is False
    # explicit transaction: COMMIT publishes, ROLLBACK does not
    run(session, "BEGIN", ["BEGIN"], "T")
    run(session, "AWS IAM GRANT app TO 'arn:aws:iam::1:role/a'", ["CALL"], "T")
    run(session, "ROLLBACK", ["ROLLBACK"], "I")
    assert session.committed_catalog_change is False
    run(session, "BEGIN", ["BEGIN"], "T")
    run(session, "DROP TABLE a", ["DROP TABLE"], "T")
    run(session, "COMMIT", ["COMMIT"], "I")
    assert session.committed_catalog_change is True
    # an implicit transaction that failed after its DDL completed is rolled back
    run(session, "CREATE TABLE b (x int); SELECT 1/0", ["CREATE TABLE"], "I", error=True)
    assert session.committed_catalog_change is False
    # a DDL that failed itself never completed
    run(session, "CREATE TABLE b (x int)", [], "I", error=True)
    assert session.committed_catalog_change is False
    # a refused statement is not admitted and changes nothing
    assert refusal_key(session, "CREATE TABLE c (x int); CREATE TABLE d (x int)") == "multiple_ddl"
    session.observe_error()
    session.observe_ready("I")
    assert session.committed_catalog_change is False


def test_check_returns_the_first_refusal_in_statement_order() -> None:
    session = TransactionRules()
    refused = session.check(analyze("CREATE TABLE a (x int); CREATE TABLE b (x int); TRUNCATE a"))
    assert refused is not None and (refused.rule.key, refused.index) == ("multiple_ddl", 1)
    refused = session.check(analyze("TRUNCATE a; CREATE TABLE a (x int); CREATE TABLE b (x int)"))
    assert refused is not None and (refused.rule.key, refused.index) == ("truncate", 0)


def test_transaction_rules_use_the_given_table() -> None:
    swapped = with_messages({"multiple_ddl": "one ddl only"})
    refused = TransactionRules(swapped).check(analyze("CREATE TABLE a (x int); DROP TABLE a"))
    assert refused is not None and refused.message == "one ddl only"


# -- docs ---------------------------------------------------------------------------------------------------------


def test_docs_carry_the_rules_table() -> None:
    """docs/dsql.md lists exactly the table in the code."""
    docs = Path(__file__).resolve().parents[2] / "docs" / "dsql.md"
    assert rules_markdown() in docs.read_text(encoding="utf-8")


def test_analysis_is_immutable_data() -> None:
    analysis = analyze("TRUNCATE t")
    assert isinstance(analysis, Analysis)
    with pytest.raises(dataclasses.FrozenInstanceError):
        analysis.rewritten = "x"  # type: ignore[misc]
