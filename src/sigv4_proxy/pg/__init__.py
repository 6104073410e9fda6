"""The PostgreSQL frontend/backend wire protocol (version 3.0), sans-IO.

Two modules, pure functions and state machines over bytes (no sockets, no clock, no environment), in the style of
h11 and of the signing core:

* :mod:`sigv4_proxy.pg.protocol` — message framing (untyped startup packets, typed frames), the encoders of the
  backend and frontend messages the emulator and its tests need, and strict decoders (UTF-8, exact lengths);
* :mod:`sigv4_proxy.pg.handshake` — the start of a connection up to authentication: :class:`ServerHandshake`
  (what a server sees: SSLRequest / direct TLS, GSSENCRequest, CancelRequest, StartupMessage, the cleartext
  password) and :class:`ClientHandshake` (a client logging in to a real PostgreSQL).

Used by ``sigv4-proxy emulate dsql`` (a local Aurora DSQL in front of a real PostgreSQL) and by the coming ``pg``
proxy. After authentication the bytes are relayed untouched; :func:`~sigv4_proxy.pg.protocol.iter_frames` only
finds message boundaries where a rule has to look at a query.

Nothing here is imported by ``sigv4_proxy`` itself at start-up; both modules are stdlib only.
"""
