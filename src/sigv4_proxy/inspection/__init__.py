"""Explain a token, presigned URL or Authorization header: every field, every mistake and its fix.

Sans-IO: the parsed token, ``now`` and (for verification) credentials are passed in.

* :func:`inspect_token` runs the checks. Each check is a small predicate; what it reports (severity, text,
  fix) lives in the :data:`RULES` table, so the messages are reviewed in one place and tested by code.
* :func:`compare_tokens` diffs two tokens field by field (parameter order ignored) and names the difference
  that explains why their signatures differ.
* :func:`verify_token` recomputes the signature with the core's :func:`~sigv4_proxy.verify` and, when it does
  not match, tries the known signer mistakes (:data:`HYPOTHESES`) to find the one that reproduces it.

One module per concern; import from the package (these modules are its private parts): :mod:`.rules` (the rule
table, :data:`Severity`, :func:`finding`), :mod:`.checks` (the checks, :func:`inspect_token`, :class:`Report`),
:mod:`.compare`, :mod:`.verify` (hypotheses, :class:`Verification`), :mod:`.redaction` (what is never printed)
and :mod:`.render` (text output).
"""

from __future__ import annotations

from sigv4_proxy.inspection.checks import CHECKS, Report, inspect_token
from sigv4_proxy.inspection.compare import Comparison, FieldDiff, compare_tokens
from sigv4_proxy.inspection.redaction import redact
from sigv4_proxy.inspection.render import render_comparison, render_fields, render_report, render_verification
from sigv4_proxy.inspection.rules import ERROR, INFO, RULES, WARNING, Finding, Rule, Severity, finding
from sigv4_proxy.inspection.verify import HYPOTHESES, Hypothesis, Verification, first_differing_line, verify_token

__all__ = [
    "CHECKS",
    "ERROR",
    "HYPOTHESES",
    "INFO",
    "RULES",
    "WARNING",
    "Comparison",
    "FieldDiff",
    "Finding",
    "Hypothesis",
    "Report",
    "Rule",
    "Severity",
    "Verification",
    "compare_tokens",
    "finding",
    "first_differing_line",
    "inspect_token",
    "redact",
    "render_comparison",
    "render_fields",
    "render_report",
    "render_verification",
    "verify_token",
]
