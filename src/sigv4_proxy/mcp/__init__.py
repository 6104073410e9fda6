"""The MCP stdio proxy: a transparent, signed bridge between stdio and MCP Streamable HTTP.

Modules (each importable on its own; none imports the ``mcp`` SDK):

* :mod:`~sigv4_proxy.mcp.jsonrpc` — classify messages from their raw bytes (sans-IO);
* :mod:`~sigv4_proxy.mcp.sse` — incremental event-stream parser (sans-IO);
* :mod:`~sigv4_proxy.mcp.routing` — MCP routing headers derived from a message (sans-IO);
* :mod:`~sigv4_proxy.mcp.session` — the session's state machine (named transitions, the initialize gate) and
  the ledger of requests owed an answer (plain data);
* :mod:`~sigv4_proxy.mcp.stdio` — stdin line reader and the single stdout writer;
* :mod:`~sigv4_proxy.mcp.transport` — the ``Transport`` protocol, Streamable HTTP client side (POST, standalone
  GET, DELETE) and the ``auto`` choice;
* :mod:`~sigv4_proxy.mcp.legacy` — the 2024-11-05 HTTP+SSE transport (imported only for legacy servers);
* :mod:`~sigv4_proxy.mcp.standalone` — ``--sse``: keeps the standalone GET stream open (given its collaborators,
  it does not depend on the bridge);
* :mod:`~sigv4_proxy.mcp.warm` — ``--warm``: the cached ``initialize`` answers;
* :mod:`~sigv4_proxy.mcp.bridge` — dispatch, exactly-one-answer bookkeeping, recovery, shutdown;
* :mod:`~sigv4_proxy.mcp.runner` — start-up: logging, credentials, signed client, signals;
* :mod:`~sigv4_proxy.mcp.startup_failure` — answer the client's first request when start-up failed.
"""
