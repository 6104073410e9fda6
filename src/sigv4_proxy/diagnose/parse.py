"""Every AWS error shape read the same way: ``x-amzn-ErrorType``, awsJson/restJson bodies, XML (S3, STS, EC2),
JSON-RPC error objects, plain text and HTML pages -> :class:`AwsError` (type, message, details), redacted."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sigv4_proxy.diagnose.model import MAX_DIAGNOSED_BODY, Headers, header_value
from sigv4_proxy.diagnose.patterns import lazy_re
from sigv4_proxy.redact import redact


@dataclass(frozen=True)
class AwsError:
    """What an error response says, whatever its shape. `fields` holds extra XML elements (Region,
    ServerTime, RequestTime, CanonicalRequest, StringToSign, ...)."""

    error_type: str | None
    message: str | None
    details: str | None = None
    fields: Mapping[str, str] = field(default_factory=dict)


def normalize_error_type(raw: str | None) -> str | None:
    """``com.amazon.coral.service#UnrecognizedClientException:http://internal...`` -> the bare type."""
    if not raw:
        return None
    value = raw.strip()
    # x-amzn-ErrorType carries a ":http://..." suffix; awsJson's __type a "namespace#" prefix.
    value = value.split(":", 1)[0]
    value = value.rsplit("#", 1)[-1]
    return value.strip() or None


def parse_aws_error(headers: Headers, body: bytes) -> AwsError:
    """Read the error type and message from ``x-amzn-ErrorType``, a JSON, XML or plain-text body."""
    header_type = normalize_error_type(header_value(headers, "x-amzn-ErrorType"))
    text = body[:MAX_DIAGNOSED_BODY].decode("utf-8", "replace").strip()
    parsed = _parse_json(text) or _parse_xml(text) or _parse_text(text, header_value(headers, "content-type"))
    error_type = header_type or parsed.error_type
    message, details = _split_message(parsed.message)
    details = "\n\n".join(part for part in (details, parsed.details) if part) or None
    return AwsError(
        error_type=error_type,
        message=redact(message) if message else None,
        details=redact(details) if details else None,
        fields={key: redact(value) for key, value in parsed.fields.items()},
    )


def _parse_json(text: str) -> AwsError | None:
    if not text.startswith("{"):
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    error = data.get("Error") if isinstance(data.get("Error"), dict) else None
    if error is None and isinstance(data.get("error"), dict):
        error = data["error"]  # JSON-RPC error object, or {"error": {"code", "message"}}
    source = error if error is not None else data
    message = _first_str(source, "message", "Message", "errorMessage", "error_description")
    if message is None and isinstance(data.get("error"), str):
        message = data["error"]
    error_type = _first_str(data, "__type", "code", "Code", "errorType") or _first_str(
        source, "Code", "code", "__type", "type"
    )
    if message is None and error_type is None:
        return None
    return AwsError(error_type=normalize_error_type(error_type), message=message)


def _first_str(data: Mapping[str, Any], *keys: str) -> str | None:
    for key in keys:
        value = data.get(key)
        if isinstance(value, str) and value.strip():
            return value
    return None


_XML_ELEMENT = lazy_re(r"<([A-Za-z][\w.-]*)(?:\s[^>]*)?>([^<]*)</\1>", re.S)
_XML_DETAIL_FIELDS = {"CanonicalRequest": "canonical request", "StringToSign": "string to sign"}


def _parse_xml(text: str) -> AwsError | None:
    if not text.startswith("<") or "<html" in text[:200].lower() or "<!doctype html" in text[:200].lower():
        return None
    fields: dict[str, str] = {}
    for name, value in _XML_ELEMENT.findall(text):
        fields.setdefault(name, html.unescape(value).strip())
    if "Code" not in fields and "Message" not in fields:
        return None
    error_type = fields.pop("Code", None)
    message = fields.pop("Message", None)
    details = "\n\n".join(
        f"The {label} the server expected:\n{fields[name]}"
        for name, label in _XML_DETAIL_FIELDS.items()
        if fields.get(name)
    )
    return AwsError(error_type=error_type, message=message, details=details or None, fields=fields)


_TAG = lazy_re(r"<[^>]+>")
_TITLE = lazy_re(r"<title[^>]*>(.*?)</title>", re.I | re.S)


def _parse_text(text: str, content_type: str | None) -> AwsError:
    if not text:
        return AwsError(error_type=None, message=None)
    if "html" in (content_type or "").lower() or text[:200].lower().lstrip().startswith(("<!doctype", "<html")):
        title = _TITLE.search(text)
        text = html.unescape(title.group(1) if title else _TAG.sub(" ", text))
    return AwsError(error_type=None, message=" ".join(text.split()) if "\n\n" not in text else text)


def _split_message(message: str | None) -> tuple[str | None, str | None]:
    """First paragraph as one line; the rest (API Gateway's expected canonical request) as details."""
    if not message:
        return None, None
    head, _, rest = message.strip().partition("\n\n")
    return " ".join(head.split()), rest.strip() or None
