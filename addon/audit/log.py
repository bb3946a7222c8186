"""The audit log addon: one HAR entry per intercepted platform exchange, written off the event loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mitmproxy import ctx, exceptions, http
from mitmproxy.addons.savehar import SaveHar

from addon.audit import redact
from addon.audit.har_file import HarAppender, serialize
from addon.exchange import Exchange

logger = logging.getLogger(__name__)

VERSION = "0.1.0"
BODY_MODES = ("full", "hashed", "none")


def _withhold(content: dict[str, Any], text: str | None, mode: str) -> None:
    """Replaces a HAR body by its hash and length (`hashed`) or by nothing (`none`)."""
    if mode == "full" or not text:
        return
    content["text"] = ""
    content["_bodyWithheld"] = mode
    if mode == "hashed":
        data = text.encode()
        content["_sha256"] = hashlib.sha256(data).hexdigest()
        content["_length"] = len(data)


def _stream_summary(answer: dict[str, Any], bodies: str) -> dict[str, Any]:
    """A streamed answer for the log, under the same body policy as whole bodies."""
    if bodies == "full":
        return answer
    text = answer.pop("content")
    calls = answer.pop("tool_calls")
    if bodies == "hashed":
        answer["content_sha256"] = hashlib.sha256(text.encode()).hexdigest()
        answer["content_length"] = len(text.encode())
        answer["tool_calls"] = [c["name"] for c in calls]
    return answer


def _iso(timestamp: float | None) -> str | None:
    return datetime.fromtimestamp(timestamp, UTC).isoformat() if timestamp else None


def build_entry(exchange: Exchange, bodies: str) -> dict[str, Any]:
    """The HAR entry for an exchange: the request that actually left and the response it got."""
    flow = exchange.flow.copy()
    if exchange.upstream_response is not None:
        flow.response = exchange.upstream_response
    entry = SaveHar().flow_entry(flow, set())
    redact.redact_entry(entry)
    if post := entry["request"].get("postData"):
        _withhold(post, post.get("text"), bodies)
        post["params"] = []
    _withhold(entry["response"]["content"], entry["response"]["content"].get("text"), bodies)

    summary = exchange.summary()
    summary["platform_url"] = redact.redact_url(exchange.platform_url)
    if exchange.translator is not None:
        summary["usage"] = exchange.translator.usage
        response = exchange.upstream_response or exchange.flow.response
        if response is not None:
            for name in exchange.translator.request_id_headers:
                if value := response.headers.get(name):
                    summary["provider_request_id"] = value
                    break
    if exchange.flow.response is not None:
        summary["client_status"] = exchange.flow.response.status_code
    if exchange.flow.error is not None:
        summary["error"] = exchange.flow.error.msg
    summary["streamed"] = exchange.streaming
    if exchange.stream is not None:
        answer = exchange.stream.answer()
        summary["usage"] = summary.get("usage") or answer["usage"]
        summary["stream"] = _stream_summary(answer, bodies)
    summary["timings"] = {
        "received": _iso(exchange.started),
        "sent_upstream": _iso(exchange.upstream_sent),
        "finished": _iso(exchange.finished),
    }
    entry["_byok"] = summary
    if exchange.decision.startswith("blocked"):
        entry["comment"] = "blocked by byok-proxy: never sent to the platform"
    return entry


class AuditLog:
    def __init__(self) -> None:
        self.appender: HarAppender | None = None
        self.executor: concurrent.futures.ThreadPoolExecutor | None = None
        self.pending: dict[str, asyncio.Future] = {}

    def load(self, loader) -> None:
        loader.add_option(
            "byok_audit", str | None, None,
            "Path of the byok-proxy audit file (HAR 1.2). Every intercepted platform request is appended.",
        )
        loader.add_option(
            "byok_audit_bodies", str, "hashed",
            "How request and response bodies are kept in the audit file: full, hashed (SHA-256 and length), none.",
        )

    def configure(self, updated: set[str]) -> None:
        if "byok_audit_bodies" in updated and ctx.options.byok_audit_bodies not in BODY_MODES:
            raise exceptions.OptionsError(
                f"byok_audit_bodies must be one of {', '.join(BODY_MODES)}, not {ctx.options.byok_audit_bodies!r}"
            )
        if "byok_audit" in updated:
            self._close()
            if ctx.options.byok_audit:
                path = Path(ctx.options.byok_audit)
                try:
                    self.appender = HarAppender(path, VERSION)
                except OSError as e:
                    raise exceptions.OptionsError(f"cannot open audit file {path}: {e.strerror}") from None
                # One writer thread keeps appends ordered and the event loop free of disk I/O.
                self.executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="byok-audit")
                logger.info(f"byok-proxy audit log: {path.resolve()}")

    def _secrets(self) -> list[str]:
        router = ctx.master.addons.get("byokrouter")
        rules = getattr(router, "rules", None)
        if rules is None:
            return []
        values = []
        for connection in rules.connections.values():
            for value in connection.config.__dict__.values():
                if secret_value := getattr(value, "value", None):
                    values.append(secret_value)
        return values

    def byok_exchange(self, exchange: Exchange) -> None:
        if self.appender is None or self.executor is None:
            return
        entry = build_entry(exchange, ctx.options.byok_audit_bodies)
        secrets = self._secrets()
        appender = self.appender

        def write() -> None:
            line = serialize(entry).decode()
            appender.append_line(redact.scrub(line, secrets).encode())

        future = asyncio.wrap_future(self.executor.submit(write))
        self.pending[exchange.flow.id] = future

    async def response(self, flow: http.HTTPFlow) -> None:
        # Hold the response until its entry is on disk, so whatever reached the app is in the log.
        if future := self.pending.pop(flow.id, None):
            try:
                await future
            except Exception:
                logger.exception("byok-proxy could not write an audit entry")

    async def error(self, flow: http.HTTPFlow) -> None:
        await self.response(flow)

    def _close(self) -> None:
        if self.executor is not None:
            self.executor.shutdown(wait=True)
            self.executor = None
        if self.appender is not None:
            self.appender.close()
            self.appender = None

    def done(self) -> None:
        self._close()
