"""Credential redaction for audit entries. Pure functions over HAR dicts."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

REDACTED = "[REDACTED]"
SECRET_HEADERS = frozenset(
    {"api-key", "x-goog-api-key", "x-amz-security-token", "cookie", "set-cookie", "proxy-authorization",
     "x-api-key", "openai-organization", "openai-project"}
)
SECRET_QUERY_PARAMS = frozenset({"key", "api_key", "api-key", "x-amz-security-token", "x-amz-signature", "token"})
_SIGNATURE = re.compile(r"Signature=([0-9a-fA-F]+)")
_SIGV4 = re.compile(r"^AWS4-HMAC-SHA256\s+Credential=([^,\s]+),\s*SignedHeaders=([^,\s]+)")


def fingerprint(value: str) -> str:
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()[:16]


def redact_authorization(value: str) -> str:
    """Keeps what identifies the account (SigV4 key id and scope), never what proves possession."""
    if match := _SIGV4.match(value):
        return f"AWS4-HMAC-SHA256 Credential={match.group(1)}, SignedHeaders={match.group(2)}, Signature={REDACTED}"
    scheme = value.split(" ", 1)[0] if " " in value else ""
    return f"{scheme} {REDACTED}".strip()


def redact_header(name: str, value: str) -> str:
    lower = name.lower()
    if lower == "authorization":
        return redact_authorization(value)
    if lower in SECRET_HEADERS:
        return REDACTED
    return value


def redact_url(url: str) -> str:
    parts = urlsplit(url)
    if not parts.query:
        return url
    query = [(k, REDACTED if k.lower() in SECRET_QUERY_PARAMS else v) for k, v in parse_qsl(parts.query, True)]
    return urlunsplit(parts._replace(query=urlencode(query, safe="[]")))


def redact_pairs(pairs: list[dict[str, Any]], redact) -> list[dict[str, Any]]:
    return [{**pair, "value": redact(pair["name"], pair["value"])} for pair in pairs]


def redact_entry(entry: dict[str, Any]) -> dict[str, Any]:
    """Redacts credentials wherever HAR keeps them: headers, URL, query string, cookies."""
    request, response = entry["request"], entry["response"]
    request["url"] = redact_url(request["url"])
    request["headers"] = redact_pairs(request.get("headers", []), redact_header)
    request["queryString"] = redact_pairs(
        request.get("queryString", []),
        lambda name, value: REDACTED if name.lower() in SECRET_QUERY_PARAMS else value,
    )
    request["cookies"] = redact_pairs(request.get("cookies", []), lambda _n, _v: REDACTED)
    response["headers"] = redact_pairs(response.get("headers", []), redact_header)
    response["cookies"] = [{**c, "value": REDACTED} for c in response.get("cookies", [])]
    return entry


def collect_secrets(entry: dict[str, Any]) -> set[str]:
    """The credential values an unredacted entry carries, so they can be scrubbed wherever else they
    are echoed (an error message quoting the key, a redirect URL)."""
    found: set[str] = set()
    for message in (entry["request"], entry["response"]):
        found |= header_secrets((pair["name"], pair["value"]) for pair in message.get("headers", []))
        for pair in message.get("cookies", []):
            found.add(pair["value"])
    for name, value in parse_qsl(urlsplit(entry["request"]["url"]).query, True):
        if name.lower() in SECRET_QUERY_PARAMS:
            found.add(value)
    return {s for s in found if len(s) >= 8 and s != REDACTED}


def header_secrets(headers: Iterable[tuple[str, str]]) -> set[str]:
    """The credential values in (name, value) header pairs: what `redact_header` hides, as values to
    scrub wherever else they are echoed."""
    found: set[str] = set()
    for name, value in headers:
        name = name.lower()
        if name in ("authorization", "proxy-authorization"):
            if _SIGV4.match(value):
                found.update(_SIGNATURE.findall(value))
            else:
                found.add(value.split(" ", 1)[-1].strip())
        elif name in SECRET_HEADERS:
            found.add(value)
            if name in ("cookie", "set-cookie"):
                found.update(part.split("=", 1)[-1].strip() for part in value.split(";"))
    return {s for s in found if len(s) >= 8 and s != REDACTED}


def scrub_value(value: Any, secrets: Iterable[str]) -> Any:
    """`scrub` over every string of a JSON value."""
    if isinstance(value, str):
        return scrub(value, secrets)
    if isinstance(value, dict):
        return {k: scrub_value(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub_value(v, secrets) for v in value]
    return value


def scrub(text: str, secrets: Iterable[str]) -> str:
    """Belt and braces: removes any known secret value that slipped into serialized text (an error
    message echoing a key, a body quoting it)."""
    for secret in secrets:
        if secret and len(secret) >= 8:
            text = text.replace(secret, REDACTED)
    return text
