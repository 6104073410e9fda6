"""Text output of ``inspect``: the token's fields, a report's findings, a comparison, a verification with the
canonical requests side by side. Everything printed goes through :func:`~sigv4_proxy.inspection.redaction.scrub`
and :func:`~sigv4_proxy.terminal.printable` (a hostile token must not drive the terminal or fake a line)."""

from __future__ import annotations

from datetime import datetime

from sigv4_proxy.clock import format_duration
from sigv4_proxy.inspection.checks import KIND_LABELS, Report, format_moment
from sigv4_proxy.inspection.compare import Comparison
from sigv4_proxy.inspection.redaction import as_printed, redact, scrub, secrets_of
from sigv4_proxy.inspection.rules import ERROR, INFO, WARNING
from sigv4_proxy.inspection.verify import Verification
from sigv4_proxy.redact import mask_signature
from sigv4_proxy.terminal import printable
from sigv4_proxy.tokens import FORM_AUTHORIZATION, ParsedToken


def render_fields(token: ParsedToken, now: datetime) -> list[tuple[str, str]]:
    """(label, value) lines describing the token, safe to print: the values come from the token, so their
    control characters are escaped (a hostile token must not drive the terminal or fake a line)."""
    rows: list[tuple[str, str]] = []
    add = rows.append
    label = KIND_LABELS[token.kind]
    if token.form == FORM_AUTHORIZATION:
        label = "Authorization header"
    add(("type", f"{label} ({token.form})"))
    if token.scheme:
        add(("scheme", token.scheme))
    if token.host:
        add(("host", token.host + (f"  (port {token.port})" if token.port is not None else "")))
    if token.path and token.path != "/":
        add(("path", token.path))
    if token.action is not None:
        add(("action", token.action))
    if token.db_user is not None:
        add(("db user", token.db_user))
    if token.algorithm:
        add(("algorithm", token.algorithm))
    if token.access_key_id:
        key_type = token.display_fields()["key_type"]
        add(("access key", f"{token.masked_access_key}  ({key_type})"))
    signed_at = token.signed_at
    if signed_at:
        offset = (now - signed_at).total_seconds()
        when = f"{format_duration(offset)} ago" if offset >= 0 else f"in {format_duration(offset)} (future!)"
        add(("signed at", f"{format_moment(signed_at)}  ({token.amz_date}, {when})"))
    elif token.amz_date:
        add(("signed at", f"{token.amz_date} (unreadable)"))
    if token.expires is not None:
        expires_at = token.expires_at
        if expires_at is None:
            add(("expires", f"{token.expires} (not a number of seconds)"))
        else:
            left = (expires_at - now).total_seconds()
            state = f"{format_duration(left)} left" if left > 0 else f"EXPIRED {format_duration(left)} ago"
            add(("expires", f"{format_moment(expires_at)}  ({token.expires_in} s; {state})"))
    if token.credential:
        scope = " / ".join(
            str(p)
            for p in (token.scope_date, token.scope_region, token.scope_service, token.scope_terminator)
            if p is not None
        )
        add(("scope", scope))
    if token.signed_headers is not None:
        add(("signed headers", ";".join(token.signed_headers)))
    if token.form != FORM_AUTHORIZATION or token.header_names:
        add(("session token", f"present ({len(token.session_token)} chars)" if token.session_token else "absent"))
    if token.signature is not None:
        add(("signature", mask_signature(token.signature) or ""))
    return [(label, printable(value)) for label, value in rows]


_MARKS = {ERROR: "✗", WARNING: "!", INFO: "·"}


def render_report(report: Report) -> str:
    lines: list[str] = []
    rows = render_fields(report.token, report.now)
    width = max(len(label) for label, _ in rows)
    lines.extend(f"  {label.ljust(width)}  {value}" for label, value in rows)
    lines.append("")
    if not report.findings:
        lines.append("✓ no problems found")
    for item in report.findings:
        lines.append(f"{_MARKS[item.severity]} {item.severity}: {printable(item.message)}")
        if item.fix:
            lines.append(f"    fix: {printable(item.fix)}")
    if report.findings and report.ok:
        lines.append("✓ no errors found")
    return scrub("\n".join(lines), as_printed(secrets_of(report.token)))


def render_comparison(comparison: Comparison) -> str:
    lines: list[str] = []
    if not comparison.diffs:
        lines.append(
            "  no field differs" + (" (parameter order differs; AWS ignores order)" if comparison.order_differs else "")
        )
    else:
        width = max(len(printable(d.name)) for d in comparison.diffs)
        lines.append(f"  {'field'.ljust(width)}  first  |  second")
        for diff in comparison.diffs:
            mark = "*" if diff.signed else " "
            left, right = printable(diff.left or "(none)"), printable(diff.right or "(none)")
            lines.append(f"{mark} {printable(diff.name).ljust(width)}  {left}  |  {right}")
        if comparison.order_differs:
            lines.append("  (parameter order differs too; AWS ignores order)")
        lines.append("  * = signed: a difference here changes the signature")
    lines.append("")
    lines.append(printable(comparison.explanation))
    return scrub("\n".join(lines), as_printed(secrets_of(comparison.left, comparison.right)))


def render_verification(verification: Verification) -> str:
    return scrub(_render_verification(verification), as_printed(verification.secrets))


def _render_verification(verification: Verification) -> str:
    mark = "✓" if verification.ok else "✗"
    lines = [f"{mark} verify: {printable(verification.message)}"]
    if verification.fix:
        lines.append(f"    fix: {printable(verification.fix)}")
    if verification.ok or verification.expected_canonical_request is None:
        return "\n".join(lines)
    creq_line, sts_line = verification.first_difference()
    lines.extend(
        _side_by_side(
            "canonical request",
            verification.expected_canonical_request,
            verification.their_canonical_request,
            creq_line,
        )
    )
    lines.extend(
        _side_by_side(
            "string to sign", verification.expected_string_to_sign, verification.their_string_to_sign, sts_line
        )
    )
    return "\n".join(lines)


def _side_by_side(title: str, expected: str | None, theirs: str | None, marked: int | None) -> list[str]:
    out = ["", f"--- {title}: what AWS computes from this token"]
    out.extend(_numbered(redact(expected) or "", marked))
    if theirs is not None:
        out.append(f"--- {title}: what your signer signed")
        out.extend(_numbered(redact(theirs) or "", marked))
        if marked is not None:
            out.append(f"    first difference: line {marked + 1} (marked >>)")
    return out


def _numbered(text: str, marked: int | None) -> list[str]:
    return [
        f"{'>>' if index == marked else '  '} {index + 1:2d} | {printable(line)}"
        for index, line in enumerate(text.split("\n"))
    ]
