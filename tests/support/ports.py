"""A loopback port that refuses connections, for "connection refused" tests.

Binding a port and closing it again ("free port") leaves a window in which another process may take it, so the
test would reach a real server. :func:`closed_port` keeps the socket bound, without listening, for as long as
the test needs the port: the kernel answers every connection attempt with a reset (ECONNREFUSED), and nothing
else can bind it. The ``closed_port`` fixture in tests/conftest.py wraps it for one test.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator


@contextlib.contextmanager
def closed_port(host: str = "127.0.0.1") -> Iterator[int]:
    """A port on ``host`` that is bound (so nobody else gets it) but not listening (so connections are refused)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        yield int(sock.getsockname()[1])
