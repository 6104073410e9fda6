"""The one home of SigV4's date format (`X-Amz-Date`, `20150830T123600Z`), AWS's clock-skew window and the
query parameters a presigned URL carries its signature in.

Stdlib only and cheap to import: the proxy's start-up path, the CLI, `inspect`, `doctor` and `tokens` use it.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta, timezone
from functools import lru_cache

AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"  # for strftime/strptime; format_amz_date/parse_amz_date are exact everywhere

# AWS rejects a request dated further than this from its own clock (a presigned URL: only ahead of it).
MAX_SKEW = timedelta(minutes=5)

# The query parameters every presigned URL carries, in the order presign() writes them (inspect names a missing
# one in this order).
REQUIRED_AUTH_QUERY_PARAMS = (
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
)
# All the query parameters presigning sets and a presigned URL's signature lives in: presign() drops a caller's
# copies before adding its own, inspect tells them from the caller's own parameters.
AUTH_QUERY_PARAMS: frozenset[str] = frozenset((*REQUIRED_AUTH_QUERY_PARAMS, "X-Amz-Security-Token", "X-Amz-Region-Set"))

# ASCII digits only (`\d` would take any Unicode digit), the whole value (`$` would allow a trailing newline).
_AMZ_DATE = re.compile(r"[0-9]{8}T[0-9]{6}Z").fullmatch
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_SECOND = timedelta(seconds=1)


def format_amz_date(moment: float | datetime) -> str:
    """An epoch time in seconds or a datetime (naive: UTC) -> `20150830T123600Z`, truncated to the second."""
    if isinstance(moment, datetime):
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        # Exact, unlike timestamp(): a float cannot hold 23:59:59.999999 of a far year and rounds up a second.
        return _format_epoch_second((moment - _EPOCH) // _SECOND)
    return _format_epoch_second(math.floor(moment))


@lru_cache(maxsize=8)
def _format_epoch_second(epoch_seconds: int) -> str:
    # Cached: formatting costs more than hashing a small request, and requests signed in the same second share
    # it. Not strftime (%Y is not zero-padded below year 1000 on every platform) nor gmtime (some platforms
    # refuse times before 1970): datetime arithmetic is exact for every year from 1 to 9999.
    t = _EPOCH + timedelta(seconds=epoch_seconds)
    return f"{t.year:04d}{t.month:02d}{t.day:02d}T{t.hour:02d}{t.minute:02d}{t.second:02d}Z"


def parse_amz_date(text: str) -> datetime | None:
    """`yyyyMMddTHHmmssZ` -> an aware UTC datetime; None when it is not one, including dates of the right shape
    that no calendar has (month 13, hour 99, year 0000), which datetime() refuses with ValueError."""
    if not _AMZ_DATE(text):
        return None
    try:
        return datetime(
            int(text[0:4]),
            int(text[4:6]),
            int(text[6:8]),
            int(text[9:11]),
            int(text[11:13]),
            int(text[13:15]),
            tzinfo=timezone.utc,
        )
    except ValueError:
        return None


__all__ = ["AMZ_DATE_FORMAT", "AUTH_QUERY_PARAMS", "MAX_SKEW", "format_amz_date", "parse_amz_date"]
