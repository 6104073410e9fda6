"""The relay of one authenticated session: client <-> backend PostgreSQL (running as the mapped role).

With `--rules off` every byte is relayed untouched. With `--rules dsql`, frames are scanned (never re-encoded
unless a rule must act):

* client -> backend: a simple Query, a Parse and a Bind are checked against DSQL's rules
  (:mod:`sigv4_proxy.emulate.dsql.rules`). A statement DSQL refuses is replaced by a *poison*: a statement
  that fails in the backend's own parser with a unique marker. The backend thereby stays the single authority on
  transaction state (an error inside BEGIN aborts the transaction, later statements get 25P02, COMMIT rolls
  back), and the relay only swaps the poison's syntax error for DSQL's SQLSTATE and message. Statements DSQL
  rewrites (AWS IAM GRANT, CREATE INDEX ASYNC, …) are sent rewritten.
* backend -> client: ErrorResponses are rewritten where DSQL differs (the poison's text; serialization
  failures and deadlocks become DSQL's OC000; the CONTEXT of errors raised in the emulator's own functions is
  dropped); CommandComplete and ReadyForQuery feed the transaction rules and the catalog-change tracking (OC001
  for the other sessions).
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sigv4_proxy.pg import protocol as pgp

if TYPE_CHECKING:  # pragma: no cover
    from sigv4_proxy.emulate.dsql.rules import Analysis, Refused, Rule, RulesConfig
    from sigv4_proxy.pg.connection import Connection

# DSQL closes a connection whose protocol message is over 10 MiB, without an ErrorResponse (reference §1).
MAX_CLIENT_MESSAGE = 10 * 1024 * 1024
MAX_PREPARED = 10_000  # statements remembered per session for the checks at Bind (oldest forgotten first)
POISON_PREFIX = "sigv4_emulator_refusal_"
_POISON_ERROR = 'syntax error at or near "' + POISON_PREFIX
_OWN_CONTEXT = "sigv4_emulator."
_CONFLICT_STATES = frozenset({"40001", "40P01"})  # serialization failure, deadlock: both are OCC losers in DSQL

_QUERY, _PARSE, _BIND, _CLOSE = ord("Q"), ord("P"), ord("B"), ord("C")
_ERROR, _COMPLETE, _READY = ord("E"), ord("C"), ord("Z")
_TERMINATE = b"X\x00\x00\x00\x04"
_poison_numbers = itertools.count(1)


@dataclass(frozen=True)
class RuleSet:
    """What the relay needs of the rules module, bound once per emulator."""

    config: RulesConfig
    table: Mapping[str, Rule]
    analyze: Callable[[str], Analysis]


class Relay:
    """Moves bytes between an authenticated client and its backend session; see the module docstring."""

    def __init__(
        self,
        client: Connection,
        backend: Connection,
        *,
        rules: RuleSet | None,
        on_catalog_change: Callable[[Relay], None],
        on_close: Callable[[Relay], None],
    ) -> None:
        self.client, self.backend = client, backend
        self.rules = rules
        self._on_catalog_change = on_catalog_change
        self._on_close = on_close
        self._client_buffer = bytearray()
        self._backend_buffer = bytearray()
        self._poisons: dict[str, Refused] = {}
        self._prepared: OrderedDict[str, Analysis] = OrderedDict()
        self.pending_oc001 = False
        self.closed = False
        self.client_terminated = False  # the client said goodbye (Terminate) rather than vanishing
        self.key_pid = -1  # the BackendKeyData pid the client was given (cancel routing)
        self.transaction_state = "I"
        if rules is not None:
            from sigv4_proxy.emulate.dsql.rules import TransactionRules

            self._transaction = TransactionRules(rules.table)

    def start(self) -> None:
        self.client.peer, self.backend.peer = self.backend, self.client
        if self.rules is None:
            self.client.attach(self._pass_to_backend, self.close)
            self.backend.attach(self._pass_to_client, self.close)
        else:
            self.client.attach(self._from_client, self.close)
            self.backend.attach(self._from_backend, self.close)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.client.close()
        self.backend.close()
        self._on_close(self)

    # -- rules off: bytes as they come ------------------------------------------------------------------------

    def _pass_to_backend(self, data: bytes) -> None:
        self.client_terminated = data.endswith(_TERMINATE)
        self.backend.write(data)

    def _pass_to_client(self, data: bytes) -> None:
        self.client.write(data)

    # -- rules on: client -> backend ----------------------------------------------------------------------------

    def _from_client(self, data: bytes) -> None:
        self.client_terminated = data.endswith(_TERMINATE)
        buffer = self._client_buffer
        buffer += data
        try:
            out = self._scan(buffer, MAX_CLIENT_MESSAGE, self._client_frame)
        except pgp.ProtocolViolation:
            self.close()  # as DSQL: an oversized or malformed message ends the connection, no ErrorResponse
            return
        if out:
            self.backend.write(out)

    def _client_frame(self, kind: int, payload: memoryview) -> bytes | None:
        if kind == _QUERY:
            return self._on_query(pgp.decode_query(payload))
        if kind == _PARSE:
            name, sql, oids = pgp.decode_parse(payload)
            return self._on_parse(name, sql, oids)
        if kind == _BIND:
            _portal, statement = pgp.decode_bind_names(payload)
            return self._on_bind(statement)
        if kind == _CLOSE:
            what, name = pgp.decode_close(payload)
            if what == "S":
                self._prepared.pop(name, None)
        return None

    def _on_query(self, sql: str) -> bytes | None:
        assert self.rules is not None
        analysis = self.rules.analyze(sql)
        refused = self._refusal(analysis)
        if refused is not None:
            return pgp.query(self._poison(refused))
        if analysis.rewritten is not None:
            return pgp.query(analysis.rewritten)
        return None

    def _on_parse(self, name: str, sql: str, oids: tuple[int, ...]) -> bytes | None:
        assert self.rules is not None
        analysis = self.rules.analyze(sql)
        self._remember(name, analysis)
        refused = self._oc001() or analysis.refused
        if refused is not None:
            return pgp.parse(name, self._poison(refused), ())
        if analysis.rewritten is not None:
            return pgp.parse(name, analysis.rewritten, oids)
        return None

    def _on_bind(self, statement: str) -> bytes | None:
        analysis = self._prepared.get(statement)
        refused = self._oc001()
        if refused is None and analysis is not None:
            refused = self._transaction.check(analysis)
        if refused is None:
            return None
        # The poison fails in the backend's parser before the Bind; the backend then skips to Sync.
        name = self._poison(refused)
        return pgp.parse(name, name, ())

    def _refusal(self, analysis: Analysis) -> Refused | None:
        return self._oc001() or self._transaction.check(analysis)

    def _oc001(self) -> Refused | None:
        if not self.pending_oc001 or self.transaction_state == "E":
            return None
        assert self.rules is not None
        from sigv4_proxy.emulate.dsql.rules import Refused

        self.pending_oc001 = False
        return Refused(self.rules.table["oc001"], {})

    def _remember(self, name: str, analysis: Analysis) -> None:
        self._prepared[name] = analysis
        self._prepared.move_to_end(name)
        if len(self._prepared) > MAX_PREPARED:
            self._prepared.popitem(last=False)

    def _poison(self, refused: Refused) -> str:
        marker = f"{POISON_PREFIX}{next(_poison_numbers)}"
        self._poisons[marker] = refused
        return marker

    # -- rules on: backend -> client ------------------------------------------------------------------------------

    def _from_backend(self, data: bytes) -> None:
        buffer = self._backend_buffer
        buffer += data
        try:
            out = self._scan(buffer, pgp.DEFAULT_MAX_MESSAGE, self._backend_frame)
        except pgp.ProtocolViolation:
            self.close()
            return
        if out:
            self.client.write(out)

    def _backend_frame(self, kind: int, payload: memoryview) -> bytes | None:
        if kind == _ERROR:
            self._transaction.observe_error()
            return self._rewrite_error(pgp.decode_fields(payload))
        if kind == _COMPLETE:
            statement = self._transaction.observe_complete(pgp.decode_command_complete(payload))
            if statement is not None and statement.tag is not None:
                return pgp.command_complete(statement.tag)  # DSQL's tag, not the rewrite's (CREATE INDEX ASYNC)
        elif kind == _READY:
            self._on_ready(pgp.decode_ready_for_query(payload))
        return None

    def _on_ready(self, status: str) -> None:
        self.transaction_state = status
        self._transaction.observe_ready(status)
        if status == "I":
            self._poisons.clear()
            if self._transaction.committed_catalog_change:
                self._on_catalog_change(self)

    def _rewrite_error(self, fields: list[tuple[str, str]]) -> bytes | None:
        values = dict(fields)
        message = values.get("M", "")
        if message.startswith(_POISON_ERROR):
            marker = message[len('syntax error at or near "') : -1]
            refused = self._poisons.pop(marker, None)
            if refused is not None:
                return pgp.error_response(
                    pgp.error_fields("ERROR", refused.sqlstate, refused.message, detail=refused.detail)
                )
        if values.get("C") in _CONFLICT_STATES:
            assert self.rules is not None
            rule = self.rules.table["oc000"]
            return pgp.error_response(pgp.error_fields("ERROR", rule.sqlstate, rule.message))
        if _OWN_CONTEXT in values.get("W", ""):
            return pgp.error_response([(code, text) for code, text in fields if code != "W"])
        return None

    # -- framing --------------------------------------------------------------------------------------------------

    def _scan(self, buffer: bytearray, max_size: int, on_frame: Callable[[int, memoryview], bytes | None]) -> bytes:
        """Complete frames leave the buffer; the bytes to forward come back, untouched except where `on_frame`
        returned a replacement (a Bind refusal returns the poison, and the Bind follows it)."""
        pieces: list[bytes] = []
        copied = end = 0
        view = memoryview(buffer)
        try:
            for frame in pgp.iter_frames(view, 0, max_size):
                end = frame.end
                replacement = on_frame(frame.type, view[frame.start + 5 : frame.end])
                if replacement is None:
                    continue
                pieces.append(bytes(view[copied : frame.start]))
                pieces.append(replacement)
                # A refused Bind keeps its own bytes after the poison; everything else is replaced.
                copied = frame.start if frame.type == _BIND else frame.end
            if end:
                pieces.append(bytes(view[copied:end]))
        finally:
            view.release()
        if end:
            del buffer[:end]
        return b"".join(pieces)
