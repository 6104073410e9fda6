"""The load test's table and rows: the DDL (one statement in a transaction of its own, as DSQL requires), the
multi-row INSERT, the rows themselves, and the count that checks what a run left in the database.

A row is a realistic event header: a UUID key, an event name and type, its source, created/updated timestamps,
a JSON payload of :data:`PAYLOAD_BYTES` bytes stored as ``text`` (DSQL has no json or jsonb column type) and the
run's id, so the count at the end counts this run's rows only.

psycopg is imported inside the functions: a process that runs Locust users must import locust (gevent's patch)
before psycopg, and importing this module must not decide that order.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from psycopg import sql

PAYLOAD_BYTES = 384  # every payload is exactly this long (deterministic sizes: rows/s compares across runs)
COLUMNS: tuple[str, ...] = (
    "id",
    "event_name",
    "event_type",
    "source",
    "created_at",
    "updated_at",
    "payload",
    "run_id",
)
# What the generated events look like: (event type, event names of that type).
EVENT_KINDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("order", ("order.created", "order.paid", "order.shipped", "order.cancelled")),
    ("customer", ("customer.registered", "customer.updated", "customer.verified")),
    ("inventory", ("inventory.reserved", "inventory.released", "inventory.restocked")),
    ("payment", ("payment.authorized", "payment.captured", "payment.refunded")),
)
SOURCES: tuple[str, ...] = ("checkout-service", "crm-sync", "warehouse-api", "billing-worker")
CURRENCIES: tuple[str, ...] = ("EUR", "USD", "GBP", "JPY")


def table_identifier(table: str) -> sql.Identifier:
    """``table`` (checked by settings_problems: ``name`` or ``schema.name``) quoted as an SQL identifier."""
    from psycopg import sql

    return sql.Identifier(*table.split("."))


def create_table_statement(table: str) -> sql.Composed:
    """CREATE TABLE IF NOT EXISTS: DSQL's types only (uuid, text, timestamptz), no defaults a second DDL needs."""
    from psycopg import sql

    return sql.SQL(
        "CREATE TABLE IF NOT EXISTS {table} ("
        "id uuid PRIMARY KEY, "
        "event_name text NOT NULL, "
        "event_type text NOT NULL, "
        "source text NOT NULL, "
        "created_at timestamptz NOT NULL, "
        "updated_at timestamptz NOT NULL, "
        "payload text NOT NULL, "
        "run_id text NOT NULL)"
    ).format(table=table_identifier(table))


def insert_statement(table: str, rows: int) -> sql.Composed:
    """One INSERT of ``rows`` rows (one transaction of the batch scenario is one statement)."""
    from psycopg import sql

    placeholders = sql.SQL("(") + sql.SQL(", ").join([sql.Placeholder()] * len(COLUMNS)) + sql.SQL(")")
    return sql.SQL("INSERT INTO {table} ({columns}) VALUES {values}").format(
        table=table_identifier(table),
        columns=sql.SQL(", ").join(sql.Identifier(column) for column in COLUMNS),
        values=sql.SQL(", ").join([placeholders] * rows),
    )


def count_statement(table: str) -> sql.Composed:
    from psycopg import sql

    return sql.SQL("SELECT count(*) FROM {table} WHERE run_id = %s").format(table=table_identifier(table))


def new_run_id() -> str:
    """``lt-<utc time>-<8 hex>``: sortable, and unique enough that two runs never count each other's rows."""
    return f"lt-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def event_row(run_id: str, chooser: random.Random) -> tuple[Any, ...]:
    """One row's values in :data:`COLUMNS` order."""
    event_type, names = chooser.choice(EVENT_KINDS)
    now = datetime.now(timezone.utc)
    return (
        uuid.uuid4(),
        chooser.choice(names),
        event_type,
        chooser.choice(SOURCES),
        now,
        now,
        event_payload(chooser),
        run_id,
    )


def event_payload(chooser: random.Random) -> str:
    """A JSON object of exactly :data:`PAYLOAD_BYTES` bytes (ASCII): an order-like body, padded by a note."""
    body: dict[str, Any] = {
        "order_id": str(uuid.uuid4()),
        "customer_id": f"cust-{chooser.randrange(10**8):08d}",
        "amount": round(chooser.uniform(1, 5000), 2),
        "currency": chooser.choice(CURRENCIES),
        "items": [{"sku": f"SKU-{chooser.randrange(10**6):06d}", "qty": chooser.randint(1, 9)} for _ in range(2)],
        "note": "",
    }
    text = json.dumps(body, separators=(",", ":"))
    # The fields above never reach PAYLOAD_BYTES (about 230 bytes), so the note fills the rest exactly.
    body["note"] = "x" * (PAYLOAD_BYTES - len(text))
    return json.dumps(body, separators=(",", ":"))


def batch_parameters(rows: Sequence[tuple[Any, ...]]) -> list[Any]:
    """The rows' values, flattened in the placeholders' order of :func:`insert_statement`."""
    return [value for row in rows for value in row]
