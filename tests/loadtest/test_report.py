"""The load test's report file: the JSON round trip, the HTML page's content, escaping and self-containment, and
the issue's check that the page opens in headless Chromium (Debian's package) with its plots drawn.

Results are built directly (no load test runs here): 5 users x 2 iterations, a 10-second timeline, histograms,
one error and one refused login with its diagnosis.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from sigv4_proxy.loadtest.report import read_json_report, render_html, render_json, result_from_json, write_report
from sigv4_proxy.loadtest.results import (
    OP_CONNECT,
    OP_TRANSACTION,
    AuthFailure,
    ErrorCount,
    LoadtestResult,
    OperationLatency,
    TimePoint,
)

HOSTILE = '<script>alert("owned")</script>'
DIAGNOSIS = (
    "error: the token expired at 2025-06-01T12:00:15Z, 3 s before the server read it (fix: mint a new token "
    "per connection)",
)
AUTH_MESSAGE = "unable to accept connection, access denied"
OCC_MESSAGE = "change conflicts with another transaction, please retry: (OC000)"
FIGURE_IDS = ("latency-histogram", "throughput", "latency-over-time")
PLOTLY_BUNDLE_BANNER = "* plotly.js v"
CHROMIUM = "chromium"
CHROMIUM_TIMEOUT_S = 60


def timeline() -> tuple[TimePoint, ...]:
    """Ten one-second samples; second 4 has no transaction ending (a gap in the latency lines)."""
    return tuple(
        TimePoint(
            elapsed_s=float(second),
            rows_per_s=float(second % 3),
            transactions_per_s=float(second % 3),
            p50_ms=None if second == 4 else 11.0 + second,
            p99_ms=None if second == 4 else 30.0 + 2 * second,
            users=5,
            errors=1 if second >= 6 else 0,
            occ_retries=min(second, 3),
        )
        for second in range(1, 11)
    )


def a_result(**changes: Any) -> LoadtestResult:
    values: dict[str, Any] = {
        "scenario": "single",
        "users": 5,
        "iterations": 2,
        "rows_per_transaction": 1,
        "target": "emulate dsql (xyzabc1234567890abcdefghij.dsql.us-east-1.on.aws)",
        "table": "event_headers",
        "run_id": "run-7f3a",
        "started_at": "2025-06-01T12:00:00Z",
        "duration_s": 10.25,
        "workers": 0,
        "rows_expected": 10,
        "rows_committed": 9,
        "rows_counted": 9,
        "transactions": 10,
        "transactions_failed": 1,
        "rows_per_s": 0.878,
        "transactions_per_s": 0.976,
        "operations": (
            OperationLatency(OP_CONNECT, 6, 1, 41.0, 63.0, 71.0, 72.5, 47.25, ((38, 2), (41, 1), (50, 1), (63, 2))),
            OperationLatency(OP_TRANSACTION, 10, 1, 12.0, 19.0, 26.0, 26.4, 14.75, ((9, 2), (10, 3), (12, 4), (26, 1))),
        ),
        "errors": (ErrorCount("40001", 1, OP_TRANSACTION, f"{OCC_MESSAGE} {HOSTILE}"),),
        "occ_retries": 3,
        "occ_gave_up": 1,
        "auth_failures": (AuthFailure("08006", AUTH_MESSAGE, 1, DIAGNOSIS),),
        "timeline": timeline(),
        "problems": ("1 row missing: expected 10, counted 9", "1 transaction failed (40001)"),
    }
    values.update(changes)
    return LoadtestResult(**values)


def an_empty_result() -> LoadtestResult:
    """A run that measured nothing (every connection refused before a single sample)."""
    return a_result(operations=(), errors=(), auth_failures=(), timeline=(), rows_committed=0, rows_counted=0)


class Resources(HTMLParser):
    """The page's tags and their resource attributes; script and style bodies are text, not tags (plotly.js
    holds URLs in strings that it never loads here)."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.references: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.references += [value for name, value in attrs if name in ("src", "href", "data") and value]


def resources_of(page: str) -> Resources:
    parser = Resources()
    parser.feed(page)
    parser.close()
    return parser


# -- JSON ------------------------------------------------------------------------------------------------------


def test_the_json_report_is_the_result_pretty_printed_and_reads_back_equal(tmp_path: Path) -> None:
    result = a_result()
    path = tmp_path / "run.json"
    write_report(result, path)
    text = path.read_text(encoding="utf-8")
    data = json.loads(text)
    assert text == json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    assert text == render_json(result)
    assert data["ok"] is False
    assert (data["rows_expected"], data["rows_counted"], data["occ_retries"]) == (10, 9, 3)
    assert data["operations"][0]["histogram"] == [[38, 2], [41, 1], [50, 1], [63, 2]]
    assert data["auth_failures"][0]["diagnosis"] == list(DIAGNOSIS)
    assert read_json_report(path) == result
    assert result_from_json(result.to_json()) == result


def test_a_passed_run_reads_back_as_passed(tmp_path: Path) -> None:
    result = a_result(problems=(), errors=(), auth_failures=(), rows_committed=10, rows_counted=10)
    path = tmp_path / "passed.JSON"  # the suffix in any case
    write_report(result, path)
    assert json.loads(path.read_text(encoding="utf-8"))["ok"] is True
    assert read_json_report(path) == result


@pytest.mark.parametrize("name", ["run.txt", "run", "run.html.gz", "run.htm"])
def test_another_suffix_is_refused_and_nothing_is_written(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    with pytest.raises(ValueError) as raised:
        write_report(a_result(), path)
    assert str(raised.value) == f"report file {str(path)!r} must end in .html or .json"
    assert not path.exists()


# -- HTML: content -----------------------------------------------------------------------------------------------


def test_the_page_says_failed_with_each_problem() -> None:
    page = render_html(a_result())
    assert "<title>DSQL load test FAILED: single, 5 users</title>" in page
    assert '<header class="failed"><h1>DSQL load test: FAILED</h1>' in page
    assert "<li>1 row missing: expected 10, counted 9</li><li>1 transaction failed (40001)</li>" in page


def test_a_passed_run_says_passed_without_a_problem_list() -> None:
    page = render_html(a_result(problems=()))
    assert '<header class="passed"><h1>DSQL load test: PASSED</h1>' in page
    assert "</div></header>" in page  # the target line ends the header: no problem list


def test_the_summary_holds_the_numbers() -> None:
    page = render_html(a_result())
    for fact in [
        '<tr><th>users</th><td class="number">5</td></tr>',
        '<tr><th>iterations per user</th><td class="number">2</td></tr>',
        '<tr><th>duration</th><td class="number">10.2 s</td></tr>',
        '<tr><th>expected</th><td class="number">10</td></tr>',
        '<tr><th>committed (by the users&#x27; count)</th><td class="number mismatch">9</td></tr>',
        '<tr><th>counted in the database</th><td class="number mismatch">9</td></tr>',
        '<tr><th>rows/s</th><td class="number">0.9</td></tr>',
        '<tr><th>transactions/s</th><td class="number">1.0</td></tr>',
        '<tr><th>transactions failed</th><td class="number">1</td></tr>',
        '<tr><th>conflicts retried</th><td class="number">3</td></tr>',
        '<tr><th>gave up</th><td class="number">1</td></tr>',
        '<tr><td>connect</td><td class="number">6</td><td class="number">1</td><td class="number">41.0</td>'
        '<td class="number">63.0</td><td class="number">71.0</td><td class="number">72.5</td>'
        '<td class="number">47.2</td></tr>',
        '<tr><td>transaction</td><td class="number">10</td><td class="number">1</td><td class="number">12.0</td>'
        '<td class="number">19.0</td><td class="number">26.0</td><td class="number">26.4</td>'
        '<td class="number">14.8</td></tr>',
        "emulate dsql (xyzabc1234567890abcdefghij.dsql.us-east-1.on.aws) · table event_headers · run run-7f3a",
        f'<tr><td>08006</td><td class="number">1</td><td>{AUTH_MESSAGE}</td><td><ul class="diagnosis"><li>'
        f"{DIAGNOSIS[0]}</li></ul></td></tr>",
    ]:
        assert fact in page


def test_a_server_message_is_escaped() -> None:
    page = render_html(a_result(problems=(f"the server said {HOSTILE}",)))
    escaped = "&lt;script&gt;alert(&quot;owned&quot;)&lt;/script&gt;"
    assert HOSTILE not in page
    assert f'<td class="number">1</td><td>{OCC_MESSAGE} {escaped}</td></tr>' in page
    assert f"<li>the server said {escaped}</li>" in page


def test_a_secret_in_a_message_is_masked() -> None:
    # A server (or a driver) that echoes what it was sent: the report must not carry it on.
    signature = "X-Amz-Signature=" + "ab12" * 16
    echoed = ErrorCount("08006", 1, OP_CONNECT, f"refused token ...&{signature}&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE")
    page = render_html(a_result(errors=(echoed,)))
    assert "ab12ab12" not in page
    assert "AKIAIOSFODNN7EXAMPLE" not in page
    assert "X-Amz-Signature=****" in page


def test_each_plot_is_a_plotly_figure_with_the_results_data() -> None:
    page = render_html(a_result())
    for figure_id in FIGURE_IDS:
        assert page.count(f'id="{figure_id}" class="plotly-graph-div"') == 1
    assert '"name":"connect","opacity":0.75,"x":[38.0,41.0,50.0,63.0],"y":[2,1,1,2],"type":"bar"' in page
    assert '"name":"p50","x":[1.0,2.0,3.0,4.0,5.0' in page
    assert '"y":[12.0,13.0,14.0,null,16.0,17.0,18.0,19.0,20.0,21.0]' in page  # second 4: a gap, not a zero


# -- HTML: self-contained ----------------------------------------------------------------------------------------


def test_the_page_needs_no_network() -> None:
    page = render_html(a_result())
    resources = resources_of(page)
    assert [ref for ref in resources.references if "//" in ref or ref.startswith(("http:", "https:"))] == []
    assert "link" not in resources.tags  # no stylesheet, font or icon to fetch
    assert "@import" not in page and "url(" not in page.split("<script", 1)[0]
    assert page.count(PLOTLY_BUNDLE_BANNER) == 1  # plotly.js inlined, once for the three figures
    assert resources.tags.count("script") == 1 + len(FIGURE_IDS) + 1  # bundle, one per figure, plotly's config


def test_an_empty_result_still_renders_with_notes_instead_of_plots() -> None:
    page = render_html(an_empty_result())
    assert '<p class="note">No latency was recorded.</p>' in page
    assert '<p class="note">No timeline was recorded.</p>' in page
    assert '<p class="note">No transaction ended while the timeline was sampled.</p>' in page
    assert '<p class="note">No operation was measured.</p>' in page
    assert '<p class="note">No errors.</p>' in page
    assert '<p class="note">No login was refused.</p>' in page
    assert PLOTLY_BUNDLE_BANNER not in page and "<script" not in page


def test_plotly_js_comes_with_the_first_figure_that_has_data() -> None:
    # No histogram: the throughput figure is the first one drawn, and carries plotly.js.
    page = render_html(a_result(operations=()))
    assert page.count(PLOTLY_BUNDLE_BANNER) == 1
    assert page.index(PLOTLY_BUNDLE_BANNER) < page.index('id="throughput"') < page.index('id="latency-over-time"')


def test_importing_the_report_module_does_not_import_plotly() -> None:
    probe = "import sys, sigv4_proxy.loadtest.report; print(sorted(m for m in sys.modules if m.startswith('plotly')))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout == "[]\n"


# -- in a browser: headless Chromium -------------------------------------------------------------------------------


def chromium_or_skip() -> str:
    """Debian's chromium. `python3 dev.py test` installs it when it runs as root with apt-get (as CI does): there
    a missing chromium is a failure; elsewhere the test skips, saying what to install."""
    found = shutil.which(CHROMIUM)
    if found is not None:
        return found
    may_install = os.name == "posix" and os.geteuid() == 0 and shutil.which("apt-get") is not None
    message = "needs Debian's chromium (apt-get install chromium; python3 dev.py test installs it as root)"
    if may_install:
        pytest.fail(f"{message}: it is missing although this root shell has apt-get")
    pytest.skip(message)


def run_chromium(chromium: str, page: Path, profile: Path, *action: str) -> subprocess.CompletedProcess[str]:
    # The host resolver answers nothing: a page that needed the network would draw no plot.
    argv = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=10000",
        "--window-size=1280,2400",
        *action,
        page.as_uri(),
    ]
    done = subprocess.run(
        argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=CHROMIUM_TIMEOUT_S, cwd=page.parent
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def figures_in(dom: str) -> dict[str, str]:
    """Each figure's part of the rendered DOM: from its div's id to the next figure's (the last: to the end)."""
    starts = [dom.index(f'id="{figure_id}"') for figure_id in FIGURE_IDS] + [len(dom)]
    return {
        figure_id: dom[start:end] for figure_id, start, end in zip(FIGURE_IDS, starts[:-1], starts[1:], strict=True)
    }


def png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and RGB(A) rows of an 8-bit, non-interlaced truecolour PNG (what Chromium writes),
    decoded with the standard library: zlib, then the five scanline filters undone."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, compressed, header = 8, bytearray(), None
    while position < len(data):
        length, kind = struct.unpack(">I4s", data[position : position + 8])
        body = data[position + 8 : position + 8 + length]
        position += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            compressed += body
    assert header is not None
    width, height, depth, colour_type, _, _, interlace = header
    assert (depth, colour_type in (2, 6), interlace) == (8, True, 0)
    channels = 3 if colour_type == 2 else 4
    raw = zlib.decompress(bytes(compressed))
    stride = width * channels
    previous = bytearray(stride)
    rows = []
    for y in range(height):
        start = y * (stride + 1)
        line = bytearray(raw[start + 1 : start + 1 + stride])
        unfilter(raw[start], line, previous, channels)
        rows.append(bytes(line))
        previous = line
    return width, height, rows


def unfilter(kind: int, line: bytearray, previous: bytearray, channels: int) -> None:
    for i in range(len(line)):
        left = line[i - channels] if i >= channels else 0
        up = previous[i]
        if kind == 1:
            line[i] = (line[i] + left) & 0xFF
        elif kind == 2:
            line[i] = (line[i] + up) & 0xFF
        elif kind == 3:
            line[i] = (line[i] + (left + up) // 2) & 0xFF
        elif kind == 4:
            up_left = previous[i - channels] if i >= channels else 0
            estimate = left + up - up_left
            distances = (abs(estimate - left), abs(estimate - up), abs(estimate - up_left))
            nearest = left if distances[0] <= min(distances[1:]) else up if distances[1] <= distances[2] else up_left
            line[i] = (line[i] + nearest) & 0xFF


@pytest.mark.slow
def test_the_page_opens_in_headless_chromium_with_its_plots_drawn(tmp_path: Path) -> None:
    chromium = chromium_or_skip()
    page = tmp_path / "report.html"
    write_report(a_result(), page)

    dom = run_chromium(chromium, page, tmp_path / "profile-dom", "--dump-dom").stdout
    # plotly draws each figure as SVG inside its div: a figure that did not render has no "main-svg" and no trace.
    drawn = figures_in(dom)
    assert [drawn[figure_id].count('class="main-svg"') >= 1 for figure_id in FIGURE_IDS] == [True, True, True]
    histogram, throughput, latency = (drawn[figure_id] for figure_id in FIGURE_IDS)
    assert (histogram.count('class="trace bars"'), histogram.count('class="point"')) == (2, 8)  # 2 operations x 4
    # Lines: one per trace, plus one sample per trace in the legend.
    assert (throughput.count('class="trace scatter'), throughput.count('class="js-line"')) == (2, 2 + 2)
    # p50 and p99 each in two segments (second 4, without a transaction, is a gap), plus their legend samples.
    assert (latency.count('class="trace scatter'), latency.count('class="js-line"')) == (2, 4 + 2)

    shot = tmp_path / "shot.png"
    run_chromium(chromium, page, tmp_path / "profile-shot", f"--screenshot={shot}")
    width, height, rows = png_pixels(shot.read_bytes())
    assert (width, height) == (1280, 2400)
    channels = len(rows[0]) // width
    pixels = [row[x : x + 3] for row in rows for x in range(0, len(row), channels)]
    not_white = sum(1 for pixel in pixels if pixel != b"\xff\xff\xff")
    # The red header and three plot areas (plotly's blue-grey background, coloured traces) cover a good part of
    # the page; an empty or unstyled page is almost all white with a handful of colours (text antialiasing).
    assert not_white / len(pixels) > 0.25
    assert len(set(pixels)) > 1500  # antialiased traces and text; a page without its plots has a few hundred
