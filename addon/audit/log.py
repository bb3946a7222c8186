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

from addon.audit import chain, redact
from addon.audit.writer import AuditWriter, parse_rotation
from addon.errors import ByokError
from addon.exchange import Exchange
from addon.rules import Price, Rules

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


def _pairs(headers: http.Headers) -> list[dict[str, str]]:
    return [{"name": k, "value": v} for k, v in headers.items(multi=True)]


def _iso(timestamp: float | None) -> str | None:
    return datetime.fromtimestamp(timestamp, UTC).isoformat() if timestamp else None


def _ms(start: float | None, end: float | None) -> float | None:
    return round((end - start) * 1000, 1) if start and end and end >= start else None


def timings(exchange: Exchange) -> dict[str, Any]:
    """Both legs: the app's (request received to answer finished) and the provider's (sent to answered)."""
    flow = exchange.flow
    upstream = exchange.upstream_response or (flow.response if exchange.upstream_sent else None)
    client_start = flow.request.timestamp_start or exchange.started
    upstream_first = upstream.timestamp_start if upstream is not None else None
    upstream_end = (upstream.timestamp_end if upstream is not None else None) or (
        exchange.finished if exchange.upstream_sent else None
    )
    return {
        "received": _iso(client_start),
        "sent_upstream": _iso(exchange.upstream_sent),
        "upstream_first_byte": _iso(upstream_first),
        "finished": _iso(exchange.finished),
        "client_ms": _ms(client_start, exchange.finished),
        "upstream_ms": _ms(exchange.upstream_sent, upstream_end),
        "upstream_ttfb_ms": _ms(exchange.upstream_sent, upstream_first),
    }


def cost(usage: dict[str, Any] | None, price: Price | None) -> dict[str, Any] | None:
    if not usage or price is None:
        return None
    prompt = usage.get("prompt_tokens") or 0
    completion = usage.get("completion_tokens") or 0
    amount = (prompt * price.input_per_mtok + completion * price.output_per_mtok) / 1_000_000
    return {"amount": round(amount, 8), "currency": price.currency}


def upstream_connection(flow: http.HTTPFlow) -> dict[str, Any]:
    """Where this flow's server connection actually went: the ground truth for "never reached"."""
    server = flow.server_conn
    address = server.peername or server.address
    return {
        "address": f"{address[0]}:{address[1]}" if address else None,
        "sni": server.sni,
        "connected": server.timestamp_tcp_setup is not None,
    }


def build_entry(
    exchange: Exchange, bodies: str, prices: dict[str, Price] | None = None, byok_on: bool | None = None
) -> dict[str, Any]:
    """The HAR entry for an exchange: the request that actually left and the response it got."""
    flow = exchange.flow.copy()
    if exchange.upstream_response is not None:
        flow.response = exchange.upstream_response
    entry = SaveHar().flow_entry(flow, set())
    # The app's own credentials (platform key, cookies) never show in a BYOK entry's request, but the
    # app may echo them in a body.
    secrets = redact.collect_secrets(entry) | redact.collect_secrets(
        {"request": {"url": exchange.platform_url, "headers": _pairs(exchange.platform_request.headers)},
         "response": {}}
    ) | exchange.sent_credentials
    redact.redact_entry(entry)
    if post := entry["request"].get("postData"):
        _withhold(post, post.get("text"), bodies)
        post["params"] = []
    _withhold(entry["response"]["content"], entry["response"]["content"].get("text"), bodies)

    summary = exchange.summary()
    summary["platform_url"] = redact.redact_url(exchange.platform_url)
    summary["byok_on"] = byok_on
    response = exchange.upstream_response or exchange.flow.response
    if exchange.translator is not None:
        summary["usage"] = exchange.translator.usage
        if response is not None:
            for name in exchange.translator.request_id_headers:
                if value := response.headers.get(name):
                    summary["provider_request_id"] = value
                    break
        if "provider_request_id" not in summary and exchange.translator.response_id:
            summary["provider_request_id"] = exchange.translator.response_id  # Gemini: the body's responseId
    if exchange.flow.response is not None:
        summary["client_status"] = exchange.flow.response.status_code
    if exchange.flow.error is not None:
        summary["error"] = exchange.flow.error.msg
    summary["streamed"] = exchange.streaming
    if exchange.stream is not None:
        answer = exchange.stream.answer()
        summary["usage"] = summary.get("usage") or answer["usage"]
        summary["stream"] = _stream_summary(answer, bodies)
    summary["cost"] = cost(summary.get("usage"), (prices or {}).get(exchange.alias or ""))
    summary["timings"] = timings(exchange)
    summary["upstream"] = upstream_connection(exchange.flow)
    if exchange.connection is not None and exchange.upstream_sent is not None:
        # One attempt today; retries and fallbacks (roadmap) append theirs.
        attempt: dict[str, Any] = {"provider": exchange.connection.name, "status": None}
        if exchange.upstream_response is not None or (exchange.streaming and exchange.flow.response is not None):
            attempt["status"] = (exchange.upstream_response or exchange.flow.response).status_code
        if exchange.flow.error is not None:
            attempt["error"] = exchange.flow.error.msg
        summary["path"] = [attempt]
    else:
        summary["path"] = []
    entry["_byok"] = summary
    if exchange.decision.startswith("blocked"):
        entry["comment"] = "blocked by byok-proxy: never sent to the platform"
    # Belt and braces: a credential echoed anywhere (an error message, a body) is scrubbed too.
    return redact.scrub_value(entry, secrets)


def withhold_unaudited(flow: http.HTTPFlow) -> None:
    """An answer that could not be logged does not reach the app: the log must hold whatever did.
    (A streamed answer has already been sent; its failure is only logged.)"""
    if flow.response is not None and not flow.response.stream:
        flow.response = ByokError(
            503, "byok-proxy could not write this exchange to the audit log, so the answer is withheld. "
            "Check the audit file's disk and permissions.", type="api_error", code="byok_audit_unavailable",
        ).to_response()


class AuditLog:
    def __init__(self) -> None:
        self.writer: AuditWriter | None = None
        self.executor: concurrent.futures.ThreadPoolExecutor | None = None
        self.pending: dict[str, asyncio.Future] = {}
        self.key: bytes | None = None

    def load(self, loader) -> None:
        loader.add_option(
            "byok_audit", str | None, None,
            "Path of the byok-proxy audit file (HAR 1.2). Every intercepted platform request is appended.",
        )
        loader.add_option(
            "byok_audit_bodies", str, "hashed",
            "How request and response bodies are kept in the audit file: full, hashed (SHA-256 and length), none.",
        )
        loader.add_option(
            "byok_audit_key", str | None, None,
            "Secret reference (${ENV_VAR} or a path to a file) of the key that HMAC-signs every audit entry, "
            "so that `byok audit verify --key` detects a forged chain. Never a literal key.",
        )
        loader.add_option(
            "byok_audit_rotate", str | None, None,
            "Rotate the audit file by size and/or age, e.g. 100MB, 1d or 100MB,1d. Each rotated file is a "
            "complete HAR; the hash chain continues across files.",
        )

    def configure(self, updated: set[str]) -> None:
        if "byok_audit_bodies" in updated and ctx.options.byok_audit_bodies not in BODY_MODES:
            raise exceptions.OptionsError(
                f"byok_audit_bodies must be one of {', '.join(BODY_MODES)}, not {ctx.options.byok_audit_bodies!r}"
            )
        if "byok_audit_rotate" in updated:
            try:
                rotation = parse_rotation(ctx.options.byok_audit_rotate)
            except ValueError as e:
                raise exceptions.OptionsError(f"byok_audit_rotate: {e}") from None
            if self.writer is not None:
                self.writer.rotation = rotation
        if "byok_audit_key" in updated:
            try:
                self.key = chain.resolve_key(ctx.options.byok_audit_key)
            except ValueError as e:
                raise exceptions.OptionsError(f"byok_audit_key: {e}") from None
            if self.writer is not None:
                self.writer.key = self.key
        if "byok_audit" in updated:
            self._close()
            if ctx.options.byok_audit:
                path = Path(ctx.options.byok_audit)
                try:
                    self.writer = AuditWriter(path, VERSION, self.key, parse_rotation(ctx.options.byok_audit_rotate))
                except OSError as e:
                    raise exceptions.OptionsError(f"cannot open audit file {path}: {e.strerror}") from None
                # One writer thread keeps appends (and the hash chain) ordered and the event loop free of disk I/O.
                self.executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="byok-audit")
                signed = "HMAC-signed" if self.key else "hash-chained, unsigned"
                logger.info(f"byok-proxy audit log: {path.resolve()} ({signed})")

    def _rules(self) -> Rules | None:
        router = ctx.master.addons.get("byokrouter")
        return getattr(router, "rules", None)

    def _secrets(self, rules: Rules | None) -> list[str]:
        values = [self.key.decode(errors="replace")] if self.key else []
        if rules is None:
            return values
        for connection in rules.connections.values():
            for name, value in connection.config.__dict__.items():
                # A key id names the account (auditors match it in CloudTrail); it is not a secret.
                if not name.endswith("key_id") and (secret_value := getattr(value, "value", None)):
                    values.append(secret_value)
        return values

    def byok_exchange(self, exchange: Exchange) -> None:
        if self.writer is None or self.executor is None:
            return
        try:
            self._submit(exchange)
        except Exception:
            logger.exception("byok-proxy could not build an audit entry; the answer is withheld")
            withhold_unaudited(exchange.flow)

    def _submit(self, exchange: Exchange) -> None:
        rules = self._rules()
        prices = rules.file.prices if rules is not None else None
        entry = build_entry(
            exchange, ctx.options.byok_audit_bodies, prices, rules.byok if rules is not None else None
        )
        secrets = self._secrets(rules)
        writer = self.writer

        def write() -> None:
            writer.write(redact.scrub_value(entry, secrets))

        future = asyncio.wrap_future(self.executor.submit(write))
        self.pending[exchange.flow.id] = future

    async def response(self, flow: http.HTTPFlow) -> None:
        # Hold the response until its entry is on disk, so whatever reached the app is in the log.
        if future := self.pending.pop(flow.id, None):
            try:
                await future
            except Exception:
                logger.exception("byok-proxy could not write an audit entry; the answer is withheld")
                withhold_unaudited(flow)

    async def error(self, flow: http.HTTPFlow) -> None:
        await self.response(flow)

    def _close(self) -> None:
        if self.executor is not None:
            self.executor.shutdown(wait=True)
            self.executor = None
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def done(self) -> None:
        self._close()
