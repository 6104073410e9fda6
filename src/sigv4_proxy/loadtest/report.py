"""The load test's report file (``--report FILE.html|FILE.json``).

HTML: one self-contained page, viewable with no network: the verdict and its problems, the summary (the same
facts as the text summary) and three plotly figures (latency histogram per operation, throughput over time,
transaction p50/p99 over time). plotly.js is embedded once, with the first figure; nothing is fetched from a
CDN, and no font or stylesheet is external. Every value taken from the result is HTML-escaped (error messages
come from servers) and passed through :func:`sigv4_proxy.redact.redact` on top of the result's own promise of
holding no secret.

JSON: :meth:`LoadtestResult.to_json`, pretty-printed with sorted keys; :func:`result_from_json` reads it back.

plotly is imported inside the functions that draw: a run without ``--report`` never pays for it.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sigv4_proxy.extras import require
from sigv4_proxy.loadtest.results import (
    OP_CONNECT,
    OP_TRANSACTION,
    AuthFailure,
    ErrorCount,
    LoadtestResult,
    OperationLatency,
    TimePoint,
)
from sigv4_proxy.loadtest.summary import seconds_text
from sigv4_proxy.redact import redact

# A plotly.graph_objects.Figure: plotly ships no type information, and is imported only when a report is drawn.
Figure = Any

REPORT_SUFFIXES = (".html", ".json")
FIGURE_HEIGHT = "380px"
# plotly's modebar without its logo: the logo is a link to plotly.com, the only network reference it would add.
PLOTLY_CONFIG: dict[str, Any] = {"displaylogo": False, "responsive": True}
NOT_MEASURED = "—"
LATENCY_COLUMNS = ("operation", "count", "failures", "p50", "p95", "p99", "max", "mean")
# The histogram's traces in the order an iteration meets them.
_OPERATION_ORDER = {OP_CONNECT: 0, OP_TRANSACTION: 1}

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto; max-width: 1200px;
       padding: 0 24px 48px; color: #1f2328; background: #ffffff; }
header { color: #ffffff; padding: 16px 24px; margin: 0 -24px 16px; }
header.passed { background: #1a7f37; }
header.failed { background: #cf222e; }
header h1 { margin: 0; font-size: 1.6em; }
header ul { margin: 8px 0 0; }
h2 { font-size: 1.2em; margin: 24px 0 8px; border-bottom: 1px solid #d0d7de; padding-bottom: 4px; }
table { border-collapse: collapse; margin: 4px 0 8px; }
th, td { border: 1px solid #d0d7de; padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
td.mismatch { color: #cf222e; font-weight: bold; }
ul.diagnosis { margin: 0; padding-left: 18px; }
p.note { color: #57606a; font-style: italic; }
.figure { margin-bottom: 12px; }
div.cards { display: flex; flex-wrap: wrap; gap: 0 32px; }
"""


# -- writing -----------------------------------------------------------------------------------------------------


def write_report(result: LoadtestResult, path: Path) -> None:
    """Write the report in the format the file's suffix names (.html or .json); any other suffix: ValueError
    (before anything is written)."""
    suffix = path.suffix.lower()
    if suffix not in REPORT_SUFFIXES:
        raise ValueError(f"report file {str(path)!r} must end in .html or .json")
    text = render_html(result) if suffix == ".html" else render_json(result)
    path.write_text(text, encoding="utf-8")


def render_json(result: LoadtestResult) -> str:
    return json.dumps(result.to_json(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def result_from_json(data: Mapping[str, Any]) -> LoadtestResult:
    """The result a JSON report holds (the inverse of :meth:`LoadtestResult.to_json`; ``ok`` is derived)."""
    values = {key: value for key, value in data.items() if key != "ok"}
    values["operations"] = tuple(
        OperationLatency(**{**op, "histogram": tuple((int(ms), int(n)) for ms, n in op["histogram"])})
        for op in data["operations"]
    )
    values["errors"] = tuple(ErrorCount(**error) for error in data["errors"])
    values["auth_failures"] = tuple(
        AuthFailure(**{**failure, "diagnosis": tuple(failure["diagnosis"])}) for failure in data["auth_failures"]
    )
    values["timeline"] = tuple(TimePoint(**point) for point in data["timeline"])
    values["problems"] = tuple(data["problems"])
    return LoadtestResult(**values)


def read_json_report(path: Path) -> LoadtestResult:
    return result_from_json(json.loads(path.read_text(encoding="utf-8")))


# -- the HTML page -------------------------------------------------------------------------------------------------


def render_html(result: LoadtestResult) -> str:
    """The self-contained HTML report."""
    verdict = "PASSED" if result.ok else "FAILED"
    title = f"DSQL load test {verdict}: {result.scenario}, {result.users} users"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{_text(title)}</title>",
        f"<style>{_STYLE}</style>",
        "</head>",
        "<body>",
        _header(result, verdict),
        _summary(result),
        _plots(result),
        "</body>",
        "</html>",
    ]
    return "\n".join(parts) + "\n"


def _text(value: object) -> str:
    """A value from the result as HTML text: secrets masked, then escaped."""
    return html.escape(redact(str(value)), quote=True)


def _header(result: LoadtestResult, verdict: str) -> str:
    problems = "".join(f"<li>{_text(problem)}</li>" for problem in result.problems)
    problem_list = f"<ul>{problems}</ul>" if problems else ""
    return (
        f'<header class="{verdict.lower()}"><h1>DSQL load test: {verdict}</h1>'
        f"<div>{_text(result.target)} · table {_text(result.table)} · run {_text(result.run_id)} · started "
        f"{_text(result.started_at)}</div>{problem_list}</header>"
    )


def _summary(result: LoadtestResult) -> str:
    # The short tables side by side (the page stays short enough to show the plots on a first screen).
    cards = [
        ("Run", _key_values(_run_rows(result))),
        ("Rows", _rows_table(result)),
        ("Throughput", _key_values(_throughput_rows(result))),
        (
            "Optimistic concurrency (OCC)",
            _key_values([("conflicts retried", str(result.occ_retries)), ("gave up", str(result.occ_gave_up))]),
        ),
    ]
    card_html = "".join(f'<section class="card"><h2>{title}</h2>{table}</section>' for title, table in cards)
    return "\n".join(
        [
            f'<div class="cards">{card_html}</div>',
            "<h2>Latency per operation (ms)</h2>",
            _latency_table(result.operations),
            "<h2>Errors by SQLSTATE</h2>",
            _errors_table(result.errors),
            "<h2>Authentication failures</h2>",
            _auth_table(result.auth_failures),
        ]
    )


def _run_rows(result: LoadtestResult) -> list[tuple[str, str]]:
    iterations = NOT_MEASURED if result.iterations is None else str(result.iterations)
    return [
        ("scenario", result.scenario),
        ("users", str(result.users)),
        ("iterations per user", iterations),
        ("rows per transaction", str(result.rows_per_transaction)),
        ("workers", str(result.workers) if result.workers else "0 (local run)"),
        ("duration", seconds_text(result.duration_s)),
    ]


def _throughput_rows(result: LoadtestResult) -> list[tuple[str, str]]:
    return [
        ("rows/s", f"{result.rows_per_s:.1f}"),
        ("transactions/s", f"{result.transactions_per_s:.1f}"),
        ("transactions", str(result.transactions)),
        ("transactions failed", str(result.transactions_failed)),
    ]


def _key_values(rows: Iterable[tuple[str, str]]) -> str:
    cells = "".join(f'<tr><th>{_text(key)}</th><td class="number">{_text(value)}</td></tr>' for key, value in rows)
    return f"<table>{cells}</table>"


def _rows_table(result: LoadtestResult) -> str:
    """Expected, committed and counted rows; a count that differs from the expectation is marked."""
    expected = result.rows_expected
    cells = []
    for label, value in (
        ("expected", expected),
        ("committed (by the users' count)", result.rows_committed),
        ("counted in the database", result.rows_counted),
    ):
        mismatch = expected is not None and value != expected
        css = "number mismatch" if mismatch else "number"
        shown = NOT_MEASURED if value is None else str(value)
        cells.append(f'<tr><th>{_text(label)}</th><td class="{css}">{_text(shown)}</td></tr>')
    return f"<table>{''.join(cells)}</table>"


def _latency_table(operations: Sequence[OperationLatency]) -> str:
    if not operations:
        return '<p class="note">No operation was measured.</p>'
    head = "".join(f"<th>{name}</th>" for name in LATENCY_COLUMNS)
    rows = []
    for op in operations:
        numbers = [str(op.count), str(op.failures)]
        numbers += [f"{value:.1f}" for value in (op.p50_ms, op.p95_ms, op.p99_ms, op.max_ms, op.mean_ms)]
        cells = "".join(f'<td class="number">{_text(number)}</td>' for number in numbers)
        rows.append(f"<tr><td>{_text(op.name)}</td>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _errors_table(errors: Sequence[ErrorCount]) -> str:
    if not errors:
        return '<p class="note">No errors.</p>'
    head = "<tr><th>SQLSTATE</th><th>operation</th><th>count</th><th>example</th></tr>"
    rows = "".join(
        f"<tr><td>{_text(error.sqlstate)}</td><td>{_text(error.operation)}</td>"
        f'<td class="number">{error.count}</td><td>{_text(error.example)}</td></tr>'
        for error in errors
    )
    return f"<table>{head}{rows}</table>"


def _auth_table(failures: Sequence[AuthFailure]) -> str:
    if not failures:
        return '<p class="note">No login was refused.</p>'
    head = "<tr><th>SQLSTATE</th><th>count</th><th>message</th><th>diagnosis of the token sent</th></tr>"
    rows = []
    for failure in failures:
        lines = "".join(f"<li>{_text(line)}</li>" for line in failure.diagnosis)
        diagnosis = f'<ul class="diagnosis">{lines}</ul>' if lines else NOT_MEASURED
        rows.append(
            f'<tr><td>{_text(failure.sqlstate)}</td><td class="number">{failure.count}</td>'
            f"<td>{_text(failure.message)}</td><td>{diagnosis}</td></tr>"
        )
    return f"<table>{head}{''.join(rows)}</table>"


# -- the plots -----------------------------------------------------------------------------------------------------


def _plots(result: LoadtestResult) -> str:
    """The three figures, each under its heading; a note instead of a figure that has no data. plotly.js goes
    into the page once, with the first figure drawn."""
    sections: list[str] = []
    embedded = False
    for heading, div_id, figure, empty_note in (
        ("Latency histogram", "latency-histogram", _histogram_figure(result.operations), "No latency was recorded."),
        ("Throughput over time", "throughput", _throughput_figure(result.timeline), "No timeline was recorded."),
        (
            "Transaction latency over time (p50, p99)",
            "latency-over-time",
            _latency_figure(result.timeline),
            "No transaction ended while the timeline was sampled.",
        ),
    ):
        sections.append(f"<h2>{heading}</h2>")
        if figure is None:
            sections.append(f'<p class="note">{empty_note}</p>')
            continue
        sections.append(f'<div class="figure">{_figure_html(figure, div_id, include_plotlyjs=not embedded)}</div>')
        embedded = True
    return "\n".join(sections)


def _figure_html(figure: Figure, div_id: str, *, include_plotlyjs: bool) -> str:
    # A fixed div id keeps the page identical for identical results (diffable reports).
    return figure.to_html(
        full_html=False,
        include_plotlyjs=include_plotlyjs,
        include_mathjax=False,
        config=PLOTLY_CONFIG,
        div_id=div_id,
        default_height=FIGURE_HEIGHT,
        default_width="100%",
    )


def _graph_objects() -> Any:
    # By name (require imports by name): plotly has no type information for mypy.
    return require("plotly.graph_objects", "loadtest", "sigv4_proxy.loadtest.report")


def _layout(x_title: str, y_title: str) -> dict[str, Any]:
    return {
        "xaxis": {"title": {"text": x_title}},
        "yaxis": {"title": {"text": y_title}, "rangemode": "tozero"},
        "margin": {"l": 60, "r": 60, "t": 30, "b": 50},
        "legend": {"orientation": "h", "y": 1.1},
    }


def _histogram_figure(operations: Sequence[OperationLatency]) -> Figure | None:
    measured = [op for op in operations if op.histogram]
    if not measured:
        return None
    go = _graph_objects()
    figure = go.Figure()
    for op in sorted(measured, key=lambda item: _OPERATION_ORDER.get(item.name, len(_OPERATION_ORDER))):
        figure.add_trace(
            go.Bar(
                name=op.name,
                x=[float(ms) for ms, _ in op.histogram],
                y=[count for _, count in op.histogram],
                opacity=0.75,
            )
        )
    figure.update_layout(barmode="overlay", **_layout("response time (ms, as Locust buckets it)", "count"))
    return figure


def _throughput_figure(timeline: Sequence[TimePoint]) -> Figure | None:
    if not timeline:
        return None
    go = _graph_objects()
    elapsed = [point.elapsed_s for point in timeline]
    figure = go.Figure()
    figure.add_trace(go.Scatter(name="rows/s", x=elapsed, y=[point.rows_per_s for point in timeline]))
    # Transactions on their own axis: in the batch scenario rows/s is batch-size times larger.
    figure.add_trace(
        go.Scatter(
            name="transactions/s",
            x=elapsed,
            y=[point.transactions_per_s for point in timeline],
            yaxis="y2",
            line={"dash": "dash"},  # one scenario has as many rows as transactions: both lines stay visible
        )
    )
    figure.update_layout(
        yaxis2={"title": {"text": "transactions/s"}, "overlaying": "y", "side": "right", "rangemode": "tozero"},
        **_layout("elapsed (s)", "rows/s"),
    )
    return figure


def _latency_figure(timeline: Sequence[TimePoint]) -> Figure | None:
    if all(point.p50_ms is None and point.p99_ms is None for point in timeline):
        return None
    go = _graph_objects()
    elapsed = [point.elapsed_s for point in timeline]
    figure = go.Figure()
    # None where no transaction ended in that second: a gap in the line, not a fall to zero.
    figure.add_trace(go.Scatter(name="p50", x=elapsed, y=[point.p50_ms for point in timeline], connectgaps=False))
    figure.add_trace(go.Scatter(name="p99", x=elapsed, y=[point.p99_ms for point in timeline], connectgaps=False))
    figure.update_layout(**_layout("elapsed (s)", "transaction latency (ms)"))
    return figure
