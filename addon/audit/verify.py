"""`byok audit verify`: the hash chain and HMAC, the HAR 1.2 shape, and no credential in any entry."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from addon.audit import redact
from addon.audit.chain import ChainVerifier, Problem
from addon.audit.har_file import HarFormatError, iter_entries

# Credential shapes that must never appear in an audit entry, redacted or not.
CREDENTIAL_PATTERNS = {
    "bearer token": re.compile(r"Bearer\s+(?!\[REDACTED\])[A-Za-z0-9._~+/=-]{16,}"),
    "SigV4 signature": re.compile(r"Signature=[0-9a-fA-F]{64}"),
    "OpenAI-style API key": re.compile(r"\bsk-[A-Za-z0-9_-]{20,}"),
    "Google API key": re.compile(r"\bAIza[0-9A-Za-z_-]{35}"),
    "Google OAuth token": re.compile(r"\bya29\.[0-9A-Za-z_-]{20,}"),
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
}
_REDACTED_AUTH = re.compile(
    r"^(\S+ )?\[REDACTED\]$|^AWS4-HMAC-SHA256 Credential=[^,\s]+, SignedHeaders=[^,\s]+, Signature=\[REDACTED\]$"
)
_REQUEST_KEYS = {"method": str, "url": str, "httpVersion": str, "cookies": list, "headers": list,
                 "queryString": list, "headersSize": int, "bodySize": int}
_RESPONSE_KEYS = {"status": int, "statusText": str, "httpVersion": str, "cookies": list, "headers": list,
                  "content": dict, "redirectURL": str, "headersSize": int, "bodySize": int}


def har_problems(entry: dict[str, Any]) -> list[str]:
    """What makes an entry not a HAR 1.2 entry (the required fields and their types)."""
    problems = []
    for key, kind in (("startedDateTime", str), ("time", (int, float)), ("request", dict), ("response", dict),
                      ("cache", dict), ("timings", dict)):
        if not isinstance(entry.get(key), kind):
            problems.append(f"HAR: '{key}' is missing or has the wrong type")
    for part, keys in (("request", _REQUEST_KEYS), ("response", _RESPONSE_KEYS)):
        message = entry.get(part)
        if not isinstance(message, dict):
            continue
        for key, kind in keys.items():
            if not isinstance(message.get(key), kind):
                problems.append(f"HAR: '{part}.{key}' is missing or has the wrong type")
    timings = entry.get("timings")
    if isinstance(timings, dict):
        for key in ("send", "wait", "receive"):
            if not isinstance(timings.get(key), int | float):
                problems.append(f"HAR: 'timings.{key}' is missing or not a number")
    return problems


def credential_problems(entry: dict[str, Any]) -> list[str]:
    """Credentials left in an entry: unredacted secret headers, query keys, cookies, or known token shapes."""
    problems = []
    for part in ("request", "response"):
        message = entry.get(part) if isinstance(entry.get(part), dict) else {}
        for pair in message.get("headers", []):
            name, value = str(pair.get("name", "")).lower(), str(pair.get("value", ""))
            if name in ("authorization", "proxy-authorization"):
                if not _REDACTED_AUTH.match(value):
                    problems.append(f"credential: {part} header '{pair.get('name')}' is not redacted")
            elif name in redact.SECRET_HEADERS and value != redact.REDACTED:
                problems.append(f"credential: {part} header '{pair.get('name')}' is not redacted")
        for cookie in message.get("cookies", []):
            if cookie.get("value") != redact.REDACTED:
                problems.append(f"credential: {part} cookie '{cookie.get('name')}' is not redacted")
    request = entry.get("request") if isinstance(entry.get("request"), dict) else {}
    urls = [request.get("url", ""), entry.get("_byok", {}).get("platform_url") or ""]
    for url in urls:
        for name, value in parse_qsl(urlsplit(str(url)).query, True):
            if name.lower() in redact.SECRET_QUERY_PARAMS and value != redact.REDACTED:
                problems.append(f"credential: query parameter '{name}' is not redacted")
    for pair in request.get("queryString", []):
        if str(pair.get("name", "")).lower() in redact.SECRET_QUERY_PARAMS and pair.get("value") != redact.REDACTED:
            problems.append(f"credential: query parameter '{pair.get('name')}' is not redacted")
    text = json.dumps(entry, ensure_ascii=False)
    for what, pattern in CREDENTIAL_PATTERNS.items():
        if pattern.search(text):
            problems.append(f"credential: a {what} appears in the entry")
    return problems


@dataclass
class VerifyResult:
    files: list[str] = field(default_factory=list)
    entries: int = 0
    signed: int = 0
    hmac_present: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _first_seq(path: Path) -> int:
    try:
        for entry in iter_entries(path):
            return int(entry.get("_byok", {}).get("chain", {}).get("seq", 0))
    except (HarFormatError, TypeError, ValueError, AttributeError):
        pass
    return 0


def verify(paths: list[Path], key: bytes | None = None, max_problems: int = 20) -> VerifyResult:
    """Verifies files as one chain, ordered by their first sequence number (rotated files in any order)."""
    result = VerifyResult()
    chain = ChainVerifier(key)
    for path in sorted(paths, key=_first_seq):
        result.files.append(str(path))
        for problem in _verify_file(path, chain, result):
            result.problems.append(problem)
            if len(result.problems) >= max_problems:
                return result
    result.entries = chain.entries
    result.signed = chain.signed
    result.first_seq = chain.started_at
    result.last_seq = chain.state.seq - 1 if chain.state else None
    return result


def _verify_file(path: Path, chain: ChainVerifier, result: VerifyResult) -> Iterator[Problem]:
    index = 0
    try:
        for index, entry in enumerate(iter_entries(path)):
            yield from chain.check(str(path), index, entry)
            seq = entry.get("_byok", {}).get("chain", {}).get("seq") if isinstance(entry.get("_byok"), dict) else None
            if isinstance(entry.get("_byok", {}).get("chain", {}).get("hmac"), str):
                result.hmac_present += 1
            for message in har_problems(entry) + credential_problems(entry):
                yield Problem(str(path), index, seq, message)
    except HarFormatError as e:
        yield Problem(str(path), index, None, str(e))
    except OSError as e:
        yield Problem(str(path), 0, None, f"cannot read: {e.strerror}")


def format_result(result: VerifyResult, key_given: bool) -> str:
    if not result.ok:
        lines = [f"FAILED: {result.problems[0]}"]
        lines += [f"  also: {p}" for p in result.problems[1:]]
        return "\n".join(lines)
    span = f"seq {result.first_seq}..{result.last_seq}" if result.entries else "no entries"
    lines = [f"OK: {len(result.files)} file(s), {result.entries} entries, hash chain intact ({span})"]
    if key_given:
        lines.append(f"OK: all {result.signed} entries carry a valid HMAC")
    elif result.hmac_present:
        lines.append(f"note: {result.hmac_present} entries carry an HMAC that was not checked (pass --key)")
    else:
        lines.append("note: entries are not HMAC-signed; the chain proves order and integrity, not authorship")
    if result.first_seq:
        lines.append(f"note: the chain starts at seq {result.first_seq}; earlier entries are in an older file")
    lines.append("OK: HAR 1.2 structure valid; no credential found")
    return "\n".join(lines)
