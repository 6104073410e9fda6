#!/usr/bin/env python3
"""Start-up benchmark: how long until sigv4-proxy is ready, beside the bare interpreter as the floor.

    python3 dev.py bench bench/startup.py        # or: .venv/bin/python bench/startup.py [--runs N] [--strict]

An MCP client starts `sigv4-proxy` for every session, so start-up is user-visible. Prints, each the best and
the median of N fresh interpreters:

* `python -X importtime` cumulative import time of `sigv4_proxy` and of `sigv4_proxy.cli` (target: the
  package under 40 ms), with the slowest modules they pull in;
* wall-clock time of `python -c pass` (the floor), `python -c "import sigv4_proxy"`, `import
  sigv4_proxy.cli`, and `sigv4-proxy --help` (the console script: argument parsing and every subcommand's
  parser, i.e. everything the proxy does before its first byte of work).

`--strict` exits 1 when the 40 ms import target is missed.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

IMPORT_TARGET_MS = 40.0
PYTHON = sys.executable
CONSOLE_SCRIPT = Path(PYTHON).with_name("sigv4-proxy.exe" if os.name == "nt" else "sigv4-proxy")


@dataclass(frozen=True)
class ImportLine:
    self_us: int
    cumulative_us: int
    depth: int
    name: str


def parse_importtime(stderr: str) -> list[ImportLine]:
    """Lines of `-X importtime`: `import time: self [us] | cumulative | imported package` (indent = depth)."""
    lines = []
    for raw in stderr.splitlines():
        if not raw.startswith("import time:") or "self [us]" in raw:
            continue
        self_us, cumulative_us, name = raw[len("import time:") :].split("|", 2)
        depth = (len(name) - len(name.lstrip(" ")) - 1) // 2
        lines.append(ImportLine(int(self_us), int(cumulative_us), depth, name.strip()))
    return lines


def importtime(statement: str, baseline: set[str]) -> tuple[float, list[ImportLine]]:
    """Cumulative ms of the top-level imports `statement` adds over a bare interpreter, and those lines."""
    completed = subprocess.run(
        [PYTHON, "-X", "importtime", "-c", statement], capture_output=True, text=True, check=True
    )
    lines = [line for line in parse_importtime(completed.stderr) if line.name not in baseline]
    total_us = sum(line.cumulative_us for line in lines if line.depth == 0)
    return total_us / 1000, lines


def baseline_modules() -> set[str]:
    completed = subprocess.run([PYTHON, "-X", "importtime", "-c", "pass"], capture_output=True, text=True, check=True)
    return {line.name for line in parse_importtime(completed.stderr)}


def wall_ms(argv: Sequence[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return (time.perf_counter() - start) * 1000


def best_and_median(samples: list[float]) -> str:
    return f"{min(samples):8.1f} {statistics.median(samples):8.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="sigv4-proxy start-up benchmark")
    parser.add_argument("--runs", type=int, default=15, help="fresh interpreters per measurement (default 15)")
    parser.add_argument("--strict", action="store_true", help=f"exit 1 if `import sigv4_proxy` > {IMPORT_TARGET_MS} ms")
    args = parser.parse_args(argv)

    print(
        f"sigv4-proxy start-up benchmark - Python {platform.python_version()} on {platform.machine()}, "
        f"{os.cpu_count()} CPUs; best and median of {args.runs} fresh interpreters\n"
    )
    baseline = baseline_modules()

    print(f"{'python -X importtime (cumulative, ms)':44} {'best':>8} {'median':>8}")
    slowest: dict[str, list[ImportLine]] = {}
    package_best = float("inf")
    for statement in ("import sigv4_proxy", "import sigv4_proxy.cli"):
        samples = []
        for _ in range(args.runs):
            total, lines = importtime(statement, baseline)
            samples.append(total)
            slowest[statement] = lines
        if statement == "import sigv4_proxy":
            package_best = min(samples)
        print(f"  {statement:42} {best_and_median(samples)}")

    print(f"\n{'wall clock (ms)':44} {'best':>8} {'median':>8}")
    commands = [
        ("python -c pass (floor)", [PYTHON, "-c", "pass"]),
        ("python -c 'import sigv4_proxy'", [PYTHON, "-c", "import sigv4_proxy"]),
        ("python -c 'import sigv4_proxy.cli'", [PYTHON, "-c", "import sigv4_proxy.cli"]),
    ]
    if CONSOLE_SCRIPT.exists():
        commands.append(("sigv4-proxy --help (console script)", [str(CONSOLE_SCRIPT), "--help"]))
    commands.append(("python -m sigv4_proxy --help", [PYTHON, "-m", "sigv4_proxy", "--help"]))
    floor = None
    for label, command in commands:
        samples = [wall_ms(command) for _ in range(args.runs)]
        floor = floor if floor is not None else min(samples)
        print(f"  {label:42} {best_and_median(samples)}   +{min(samples) - floor:6.1f} over the floor")

    print("\nslowest modules under `import sigv4_proxy.cli` (self time, last run):")
    for line in sorted(slowest["import sigv4_proxy.cli"], key=lambda line: -line.self_us)[:8]:
        print(f"  {line.self_us / 1000:6.2f} ms  {line.name}")

    met = package_best < IMPORT_TARGET_MS
    print(
        f"\ntarget: `import sigv4_proxy` < {IMPORT_TARGET_MS:.0f} ms (importtime, best): "
        f"{package_best:.1f} ms  {'met' if met else 'MISSED'}"
    )
    return 1 if (args.strict and not met) else 0


if __name__ == "__main__":
    sys.exit(main())
