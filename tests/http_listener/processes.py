"""Start `sigv4-proxy http` as a real process and wait for its "Listening on" line (shared by the tests)."""

from __future__ import annotations

import queue
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass


@dataclass
class Spawned:
    process: subprocess.Popen[str]
    url: str
    lines: list[str]  # stderr, line by line, still growing while the process runs
    reader: threading.Thread


def spawn_listener(
    env: Mapping[str, str], *args: str, capture_stdout: bool = True, preexec_fn: Callable[[], None] | None = None
) -> Spawned:
    """`sigv4-proxy http --listen 127.0.0.1:0 ARGS` with `env`; returns once it listens (or fails the test with
    its stderr when it exits first)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "sigv4_proxy", "http", "--listen", "127.0.0.1:0", *args],
        env={**env, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE if capture_stdout else subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=preexec_fn,
    )
    lines: list[str] = []
    ready: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.append(line.rstrip("\n"))
            if "Listening on " in line:
                ready.put(line.split("Listening on ", 1)[1].split("/ ", 1)[0])
        ready.put(None)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    url = ready.get(timeout=30)
    if url is None:
        process.wait(5)
    assert url is not None, "\n".join(lines)
    return Spawned(process, url, lines, reader)
