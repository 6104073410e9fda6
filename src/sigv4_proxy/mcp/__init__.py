"""The MCP stdio proxy: a transparent, signed bridge between stdio and MCP Streamable HTTP.

Modules (each importable on its own; none imports the ``mcp`` SDK):

* :mod:`~sigv4_proxy.mcp.jsonrpc` — classify messages from their raw bytes (sans-IO);
* :mod:`~sigv4_proxy.mcp.sse` — incremental event-stream parser (sans-IO);
* :mod:`~sigv4_proxy.mcp.routing` — MCP routing headers derived from a message (sans-IO);
* :mod:`~sigv4_proxy.mcp.session` — session state and the ledger of requests owed an answer;
* :mod:`~sigv4_proxy.mcp.stdio` — stdin line reader and the single stdout writer;
* :mod:`~sigv4_proxy.mcp.transport` — Streamable HTTP client side (POST, standalone GET, DELETE);
* :mod:`~sigv4_proxy.mcp.bridge` — dispatch, exactly-one-answer bookkeeping, shutdown;
* :mod:`~sigv4_proxy.mcp.runner` — start-up: logging, credentials, signed client, signals.
"""
