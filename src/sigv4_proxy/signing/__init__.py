"""The sans-IO signing core: canonical requests, SigV4, SigV4a, presigning and verification.

Nothing in this package reads the clock, the environment or a socket: time, credentials and bytes are
passed in. The public entry points are re-exported from :mod:`sigv4_proxy`.

* :mod:`.api` - `sign()` and `presign()`, both built through one cached plan (headers, canonical request and
  presigned URL as templates with named slots filled per signing).
* :mod:`.verify` - `verify()`: AWS's checks in AWS's order, with typed reason codes and error types.
* :mod:`.algorithm` - the `Algorithm` strategy (`V4`, `V4A`): what differs between SigV4 and SigV4a (name,
  credential scope shape, region set, sign, verify). Ask it instead of comparing algorithm names.
* :mod:`.amzdate` - the one home of the `X-Amz-Date` format (`format_amz_date`, `parse_amz_date`), AWS's
  clock-skew window (`MAX_SKEW`) and the presigned-URL auth parameters (`AUTH_QUERY_PARAMS`).
* :mod:`.canonical` - canonical URI, query, headers and payload hash.
* :mod:`.v4`, :mod:`.v4a`, :mod:`.keycache` - HMAC key derivation and the SigV4a KDF/ECDSA, with caches that
  never hold a secret.
* :mod:`.model` - the data in and out (`Credentials`, `SignedRequest`, `PresignedURL`); :mod:`.rawrequest` -
  HTTP/1.1 request text.
"""
