"""The sans-IO signing core: canonical requests, SigV4, SigV4a, presigning and verification.

Nothing in this package reads the clock, the environment or a socket: time, credentials and bytes are
passed in. The public entry points are re-exported from :mod:`sigv4_proxy`.
"""
