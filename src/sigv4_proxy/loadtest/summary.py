"""The table printed at the end of a load test (plain text, no colour): what ran, the rows expected, committed and
counted back, throughput, latency per operation, errors by SQLSTATE, OCC retries, refused logins with the
diagnosis of their token, and a last line PASSED or FAILED with the reasons."""

from __future__ import annotations

from sigv4_proxy.loadtest.results import OP_CONNECT, OP_TRANSACTION, LoadtestResult, OperationLatency

_INDENT = "  "
_LABEL_WIDTH = 12
_EXAMPLE_LIMIT = 160  # characters of an error's example message in the table


def render_summary(result: LoadtestResult) -> str:
    lines = [f"DSQL load test: {result.scenario} scenario against {result.target}", ""]
    lines += _overview(result)
    lines += ["", *_latency_table(result)]
    lines += ["", *_errors(result)]
    lines += ["", *_auth_failures(result)]
    lines += ["", _verdict(result)]
    return "\n".join(lines)


def _row(label: str, text: str) -> str:
    return f"{_INDENT}{label:<{_LABEL_WIDTH}}{text}"


def plural(count: int, word: str) -> str:
    """``1 row``, ``2 rows``: the summary's and the engine's problems' counts."""
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _overview(result: LoadtestResult) -> list[str]:
    iterations = f"{result.iterations} iterations" if result.iterations is not None else "until the duration"
    shape = f"{plural(result.users, 'user')} × {iterations} × {plural(result.rows_per_transaction, 'row')}"
    rows = [
        _row("shape", shape + " per transaction"),
        _row("table", f"{result.table} (run {result.run_id})"),
    ]
    if result.workers:
        rows.append(_row("workers", str(result.workers)))
    rows.append(_row("rows", _rows_text(result)))
    rows.append(
        _row(
            "throughput",
            f"{result.rows_per_s:.1f} rows/s, {result.transactions_per_s:.1f} transactions/s over "
            f"{seconds_text(result.duration_s)} ({plural(result.transactions, 'transaction')}, "
            f"{result.transactions_failed} failed)",
        )
    )
    rows.append(_row("OCC", f"{plural(result.occ_retries, 'conflict')} retried, {result.occ_gave_up} gave up"))
    return rows


def _rows_text(result: LoadtestResult) -> str:
    expected = "—" if result.rows_expected is None else str(result.rows_expected)
    counted = "— (not counted)" if result.rows_counted is None else str(result.rows_counted)
    text = f"expected {expected}, committed {result.rows_committed}, counted in the database {counted}"
    if result.rows_counted is None:
        return text
    references = [result.rows_committed] + ([result.rows_expected] if result.rows_expected is not None else [])
    return text + (" (match)" if all(value == result.rows_counted for value in references) else " (MISMATCH)")


def _latency_table(result: LoadtestResult) -> list[str]:
    header = f"{_INDENT}{'latency (ms)':<14}{'count':>8}{'failed':>8}{'p50':>9}{'p95':>9}{'p99':>9}{'max':>9}"
    lines = [header]
    for name in (OP_CONNECT, OP_TRANSACTION):
        operation = result.operation(name)
        lines.append(_latency_row(name, operation))
    return lines


def _latency_row(name: str, operation: OperationLatency | None) -> str:
    if operation is None or operation.count == 0:
        return f"{_INDENT}{name:<14}{0:>8}{0:>8}{'—':>9}{'—':>9}{'—':>9}{'—':>9}"
    values = (operation.p50_ms, operation.p95_ms, operation.p99_ms, operation.max_ms)
    numbers = "".join(f"{_milliseconds(value):>9}" for value in values)
    return f"{_INDENT}{name:<14}{operation.count:>8}{operation.failures:>8}{numbers}"


def _milliseconds(value: float) -> str:
    """Locust keeps latencies under 100 ms as whole milliseconds: no decimals unless there are some."""
    return f"{value:.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"


def seconds_text(value: float) -> str:
    """A run's duration: two decimals under 10 s (a short run takes 0.05 s), one above (the report says it too)."""
    return f"{value:.1f} s" if value >= 10 else f"{value:.2f} s"


def _errors(result: LoadtestResult) -> list[str]:
    if not result.errors:
        return [f"{_INDENT}errors by SQLSTATE: none"]
    lines = [f"{_INDENT}errors by SQLSTATE:"]
    for error in sorted(result.errors, key=lambda item: (-item.count, item.sqlstate)):
        example = _clip(error.example.splitlines()[0] if error.example else "")  # the whole one: the reports
        lines.append(f"{_INDENT * 2}{error.sqlstate}  {error.operation:<12}{error.count:>6} × {example}")
    return lines


def _auth_failures(result: LoadtestResult) -> list[str]:
    if not result.auth_failures:
        return [f"{_INDENT}refused logins: none"]
    lines = [f"{_INDENT}refused logins:"]
    for failure in result.auth_failures:
        message_lines = failure.message.splitlines() or [""]
        lines.append(f"{_INDENT * 2}{failure.count} × {failure.sqlstate} {message_lines[0]}")
        lines += [f"{_INDENT * 4}{line}" for line in message_lines[1:]]
        if failure.diagnosis:
            lines.append(f"{_INDENT * 3}diagnosis of the token sent:")
            lines += [f"{_INDENT * 4}{line}" for line in failure.diagnosis]
    return lines


def _verdict(result: LoadtestResult) -> str:
    return "PASSED" if result.ok else "FAILED: " + "; ".join(result.problems)


def _clip(text: str, limit: int = _EXAMPLE_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
