"""Test tools shared by several test packages.

* ``emulators`` — the session's shared ``emulate mcp`` instances and their reset (the ``emulator`` fixture in
  tests/conftest.py is built on it);
* ``ports`` — a loopback port that refuses connections (also the ``closed_port`` fixture);
* ``tls`` — certificates (a throwaway CA and what it signs, or a self-signed one) and a TLS front on loopback;
* ``waiting`` — wait for a condition with a deadline instead of sleeping;
* ``hostile``, ``rawhttp``, ``connect_proxy`` — hostile servers, raw-socket clients, an HTTP CONNECT proxy.
"""
