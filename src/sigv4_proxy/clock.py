"""Clock-skew correction, sans-IO.

A signature is valid for 5 minutes around the *server's* time. When a laptop's clock drifts, the server says
"Signature expired" (or "not yet current"); from its ``Date`` header (or the timestamps in that message) we
learn the offset, sign with ``local time + offset`` from then on, and retry once:

    clock = SkewedClock()                       # offset 0 until corrected
    auth = SigV4Auth(provider, region, service, clock=clock)
    ...
    if diagnosis.recovery == "correct_clock":
        clock.correct(response.headers.get("date"), received_at, aws_message=diagnosis.aws_message)
        log.warning("clock skew: %s", clock.describe())

Time is always passed in or read through the injected ``now`` callable; nothing here touches the network.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime

from sigv4_proxy.signing.amzdate import parse_amz_date

Now = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def parse_http_date(value: str | None) -> datetime | None:
    """An HTTP ``Date`` (IMF-fixdate, RFC 850 or asctime) as an aware UTC datetime; None when unparseable."""
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if parsed is None:
        return None
    if parsed.tzinfo is None:  # asctime and "-0000" forms carry no zone; HTTP dates are always GMT
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def parse_aws_time(value: str | None) -> datetime | None:
    """A time as AWS's skew errors quote it: an X-Amz-Date (``20240101T000000Z``) or ISO 8601
    (``2024-01-01T00:20:00Z``, S3's ServerTime), as aware UTC; None when it is neither."""
    if not value:
        return None
    value = value.strip()
    amz_date = parse_amz_date(value)
    if amz_date is not None:
        return amz_date
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=timezone.utc) if parsed.tzinfo is None else parsed.astimezone(timezone.utc)


def measure_offset(server_date: str | None, local_time: datetime) -> float | None:
    """Seconds to add to the local clock to get the server's (positive: the local clock is behind)."""
    server = parse_http_date(server_date)
    if server is None:
        return None
    return (server - local_time.astimezone(timezone.utc)).total_seconds()


# API Gateway / awsJson: "Signature expired: <signed> is now earlier than <limit> (<server now> - 5 min.)"
#                        "Signature not yet current: <signed> is still later than <limit> (<server now> + 5 min.)"
_SKEW_MESSAGE = re.compile(
    # Presigned URLs say "(<now> - 900 sec.)": that is the URL's age, not a skew, so only "min." counts.
    r"(?P<signed>\d{8}T\d{6}Z) is (?:now earlier|still later) than \d{8}T\d{6}Z \((?P<server>\d{8}T\d{6}Z) "
    r"[-+] \d+ min\.\)"
)


def offset_from_skew_error(message: str | None, fields: Mapping[str, str] | None = None) -> float | None:
    """The offset (server - signing time) an AWS skew error reveals, or None.

    Understands API Gateway's "Signature expired / not yet current" messages and S3's RequestTimeTooSkewed
    ``RequestTime``/``ServerTime`` elements. The result is relative to the clock the request was *signed*
    with, so it adds to an offset already in use.
    """
    match = _SKEW_MESSAGE.search(message or "")
    if match:
        signed, server = parse_aws_time(match["signed"]), parse_aws_time(match["server"])
    else:
        fields = fields or {}
        signed, server = parse_aws_time(fields.get("RequestTime")), parse_aws_time(fields.get("ServerTime"))
    if signed is None or server is None:
        return None
    return (server - signed).total_seconds()


def format_duration(duration: float | timedelta) -> str:
    """The one way durations are written: seconds or a timedelta, its sign ignored (the caller says "ago" or
    "in"): ``603.4`` -> ``10 min 3 s``; ``7384`` -> ``2 h 3 min 4 s``; ``0.4`` -> ``0 s``; a week -> ``7 d``.
    Zero units are left out; past a day seconds are too (an expiry a week ago needs no seconds)."""
    seconds = duration.total_seconds() if isinstance(duration, timedelta) else duration
    total = round(abs(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    units = [(days, "d"), (hours, "h"), (minutes, "min")] + ([] if days else [(secs, "s")])
    parts = [f"{amount} {unit}" for amount, unit in units if amount]
    return " ".join(parts) or "0 s"


def describe_offset(seconds: float) -> str:
    """Fits "this machine's clock is {…} the server's": ``10 min 3 s behind`` / ``2 min ahead of``."""
    if round(seconds) == 0:
        return "in step with"
    return f"{format_duration(seconds)} {'behind' if seconds > 0 else 'ahead of'}"


class SkewedClock:
    """A clock for ``SigV4Auth(clock=...)``: the local time plus the offset learned from the server.

    Thread-safe; one instance is shared by every request of a process so one correction serves them all.
    """

    def __init__(self, now: Now = utc_now, offset_seconds: float = 0.0) -> None:
        self._now = now
        self._offset = float(offset_seconds)
        self._lock = threading.Lock()

    @property
    def offset(self) -> float:
        """Seconds added to the local clock (positive: the local clock is behind the server's)."""
        return self._offset

    def __call__(self) -> datetime:
        return self._now() + timedelta(seconds=self._offset)

    def set_offset(self, seconds: float) -> None:
        with self._lock:
            self._offset = float(seconds)

    def correct(
        self,
        server_date: str | None,
        local_time: datetime | None = None,
        *,
        aws_message: str | None = None,
        fields: Mapping[str, str] | None = None,
    ) -> float | None:
        """Adopt the server's time; returns the new offset, or None when the response reveals nothing.

        `server_date` is the response's ``Date`` header and `local_time` the *uncorrected* local time at
        which the response arrived (default: the injected ``now``). Without a usable ``Date``, the
        timestamps in the AWS skew message (`aws_message`, S3 `fields`) are used instead.
        """
        received = local_time if local_time is not None else self._now()
        measured = measure_offset(server_date, received)
        with self._lock:
            if measured is not None:
                self._offset = measured
                return self._offset
            relative = offset_from_skew_error(aws_message, fields)
            if relative is None:
                return None
            # The message compares the server's time with our (already corrected) signing time.
            self._offset += relative
            return self._offset

    def describe(self) -> str:
        """For logs: ``local clock is 10 min 3 s behind the server's; signing with the server's time``."""
        offset = self._offset
        if round(offset) == 0:
            return "local clock is in step with the server's"
        sign = "+" if offset > 0 else "-"
        return (
            f"local clock is {describe_offset(offset)} the server's; signing with the server's time "
            f"(offset {sign}{abs(offset):.0f} s)"
        )
