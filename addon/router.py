"""The heart of byok-proxy: intercept platform AI requests and serve them through the customer's
own provider accounts, failing closed whenever that is not possible.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import httpx
from mitmproxy import command, ctx, exceptions, http
from mitmproxy.connection import Client
from mitmproxy.proxy import server_hooks

from addon import openai_format as oa
from addon.audit import redact
from addon.errors import ByokError, InvalidRequest
from addon.exchange import ByokExchangeHook, Exchange
from addon.providers.base import ClientResponse, Translator, UpstreamRequest
from addon.rules import Rules, RulesError, load_rules

logger = logging.getLogger(__name__)

FAN_OUT_CONCURRENCY = 8
OPERATIONS = {"/chat/completions": "chat", "/embeddings": "embeddings"}
# Request headers worth keeping on the request to the customer's provider; everything else the app
# sent (its platform credential, cookies, tracing, SDK telemetry) stays behind.
FORWARDED_HEADERS = ("user-agent", "accept-language")
BLOCKED_MARKER = ":no_entry:"
SERVED_REGION_HEADER = "x-ms-region"  # Azure names the region that served the request


def operation_for(path: str) -> str | None:
    path = path.split("?", 1)[0].rstrip("/")
    for suffix, operation in OPERATIONS.items():
        if path.endswith(suffix):
            return operation
    return None


def apply_skill(body: dict[str, Any], system_prompt: str | None, params: dict[str, Any]) -> dict[str, Any]:
    """The app's request with a skill's overrides applied; never mutates the app's body."""
    result = copy.deepcopy(body)
    if system_prompt is not None and isinstance(result.get("messages"), list):
        kept = [m for m in result["messages"] if not (isinstance(m, dict) and m.get("role") in ("system", "developer"))]
        result["messages"] = [{"role": "system", "content": system_prompt}, *kept]
    result.update(copy.deepcopy(params))
    return result


def parse_json_body(request: http.Request) -> dict[str, Any]:
    try:
        body = json.loads(request.get_content(strict=False) or b"")
    except ValueError:
        raise InvalidRequest(
            "The request body is not valid JSON. Send a JSON object as the OpenAI API expects."
        ) from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return body


def _first_header(headers: Any, translator: Translator) -> str | None:
    return next((v for name in translator.request_id_headers if (v := headers.get(name))), None)


def flow_comment(exchange: Exchange, served_region: str | None = None) -> str:
    """What mitmweb shows at a glance, e.g. `gpt_large → azure/gpt-4o (contoso, East US)`."""
    assert exchange.connection is not None
    where = ", ".join(filter(None, (exchange.connection.describe(), served_region)))
    return f"{exchange.alias} → {exchange.connection.name}/{exchange.model}" + (f" ({where})" if where else "")


def hide_credentials(request: http.Request) -> None:
    """Redacts credentials on a request the proxy is done sending, so mitmweb, flow files and
    exports never show them (SigV4 keeps its key id and scope)."""
    for name in list(request.headers):
        value = request.headers[name]
        if (redacted := redact.redact_header(name, value)) != value:
            request.headers[name] = redacted
    request.url = redact.redact_url(request.url)


def supports_streaming(translator: Translator) -> bool:
    return type(translator).stream_chunk is not Translator.stream_chunk


class ByokRouter:
    def __init__(self) -> None:
        self.rules: Rules | None = None
        self.broken: str | None = None
        """Why the rules file could not be loaded at start; while set, every request fails closed."""
        self.exchanges: dict[str, Exchange] = {}
        # Client connections that legitimately passed a request through to the platform.
        self.passthrough_clients: set[str] = set()
        self.http_client: httpx.AsyncClient | None = None
        """For the provider calls the proxy makes itself (fan-out); everything else goes through mitmproxy."""

    def load(self, loader) -> None:
        loader.add_option(
            "byok_rules", str | None, None,
            "Path of the byok-proxy rules file (YAML): the platform host(s) to intercept, the customer's "
            "provider connections and the model alias map.",
        )

    def configure(self, updated: set[str]) -> None:
        if "byok_rules" in updated:
            if not ctx.options.byok_rules:
                self.rules = None
                logger.warning("byok_rules is not set: byok-proxy intercepts nothing.")
            else:
                try:
                    self.rules = load_rules(ctx.options.byok_rules)
                except RulesError as e:
                    if self.rules is not None or self.broken is not None:
                        # A change at runtime (mitmweb's option editor): refuse it, keep the rules in force.
                        raise exceptions.OptionsError(str(e)) from None
                    # At start: one clean line (mitmdump then exits), and until then nothing is let through.
                    self.broken = str(e)
                    logger.error(self.broken)
                    return
                self._rules_changed()
        self._enforce_byok_options()

    def _rules_changed(self) -> None:
        assert self.rules is not None
        self.broken = None
        # Pass-through was granted under the previous rules; the new ones decide afresh.
        self.passthrough_clients.clear()
        self._log_loaded(self.rules)

    def _enforce_byok_options(self) -> None:
        """mitmproxy options that would let a platform request leave before the router decides."""
        if self.rules is None or not self.rules.byok:
            return
        if ctx.options.connection_strategy != "lazy":
            # mitmproxy's default eager strategy connects to the platform host as soon as the app
            # connects, before any request hook can divert the request.
            logger.info("BYOK is on: setting connection_strategy=lazy so the platform host is never contacted.")
            ctx.options.update(connection_strategy="lazy")
        if ctx.options.stream_large_bodies:
            # A streamed request body is sent upstream before the `request` hook runs (over a reused
            # pass-through connection it reaches the platform), and a streamed provider answer would
            # reach the app untranslated.
            logger.warning("BYOK is on: unsetting stream_large_bodies; byok-proxy needs whole bodies.")
            ctx.options.update(stream_large_bodies=None)

    @command.command("byok.reload")
    def reload(self) -> None:
        """Reloads the rules file, resolving its secret references again; on error the rules in force stay."""
        path = ctx.options.byok_rules
        if not path:
            raise exceptions.CommandError("byok_rules is not set")
        try:
            self.rules = load_rules(path)
        except RulesError as e:
            logger.error(f"{e}; the previous rules stay in force")
            raise exceptions.CommandError(str(e)) from None
        self._rules_changed()
        self._enforce_byok_options()

    @staticmethod
    def _log_loaded(rules: Rules) -> None:
        state = "on" if rules.byok else "off (platform traffic passes through)"
        logger.info(
            f"byok-proxy rules {rules.path}: BYOK {state}; intercepting {', '.join(rules.file.platform.hosts)}; "
            f"{len(rules.file.models)} aliases over {len(rules.connections)} providers."
        )
        for name, connection in rules.connections.items():
            if problem := connection.credential_problem():
                logger.warning(f"provider '{name}' has no usable credential ({problem}); its aliases fail closed.")

    def _is_platform(self, flow: http.HTTPFlow) -> bool:
        assert self.rules is not None
        request = flow.request
        return self.rules.is_platform(request.host, request.port) or self.rules.is_platform(
            request.pretty_host, request.port
        )

    def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        """Last line of defence: with BYOK on, no connection reaches the platform host unless a
        request on that client connection was deliberately passed through."""
        if self.broken is not None:
            data.server.error = "byok-proxy: the rules file is invalid; nothing is forwarded"
            return
        rules = self.rules
        if rules is None or not rules.byok or data.server.address is None:
            return
        host, port = data.server.address[0], data.server.address[1]
        sni = data.server.sni or host
        if (rules.is_platform(host, port) or rules.is_platform(sni, port)) and (
            data.client.id not in self.passthrough_clients
        ):
            data.server.error = "byok-proxy: BYOK is on; connections to the platform host are blocked"
            logger.warning(f"blocked a connection to platform host {host}:{port}")

    def client_disconnected(self, client: Client) -> None:
        self.passthrough_clients.discard(client.id)

    async def request(self, flow: http.HTTPFlow) -> None:
        if self.broken is not None and flow.live and not flow.response:
            flow.response = ByokError(503, self.broken, type="api_error", code="byok_rules_invalid").to_response()
            return
        if self.rules is None or flow.response or flow.error or not flow.live or not self._is_platform(flow):
            return
        exchange = Exchange(flow, "byok", flow.request.pretty_url, flow.request.copy())
        try:
            if not self.rules.byok:
                self._pass_through(exchange, "byok disabled")
                return
            await self._route(flow, exchange)
        except ByokError as e:
            self._block(exchange, e)
        except Exception:
            # Fail closed on our own bugs too; the log line carries no request data.
            logger.exception("byok-proxy failed to route a request; answering 500")
            self._block(exchange, ByokError(
                500, "byok-proxy hit an internal error while routing this request; it was not sent anywhere.",
                type="api_error", code="byok_internal_error",
            ))

    def _pass_through(self, exchange: Exchange, why: str) -> None:
        exchange.decision = f"passthrough: {why}"
        self.passthrough_clients.add(exchange.flow.client_conn.id)
        self.exchanges[exchange.flow.id] = exchange
        exchange.flow.comment = f"{exchange.alias or 'platform'} → platform ({why})"

    def _block(self, exchange: Exchange, error: ByokError) -> None:
        flow = exchange.flow
        exchange.decision = f"blocked: {error.message}"
        hide_credentials(flow.request)
        flow.response = error.to_response()
        flow.marked = BLOCKED_MARKER
        flow.comment = f"blocked ({error.status}): {error.message}"
        self.exchanges[flow.id] = exchange

    async def _route(self, flow: http.HTTPFlow, exchange: Exchange) -> None:
        rules = self.rules
        assert rules is not None
        if (operation := operation_for(flow.request.path)) is None:
            if flow.request.method == "GET" and flow.request.path.split("?")[0].rstrip("/").endswith("/models"):
                hide_credentials(flow.request)
                flow.response = self._model_list()
                exchange.decision = "byok: model list served by the proxy"
                self.exchanges[flow.id] = exchange
                return
            raise ByokError(
                404,
                f"byok-proxy serves only POST /v1/chat/completions and POST /v1/embeddings on the platform host "
                f"while BYOK is on; {flow.request.method} {flow.request.path} was not sent to the platform.",
                code="unsupported_endpoint",
            )
        if flow.request.method != "POST":
            raise ByokError(405, f"Use POST for {flow.request.path}.", code="method_not_allowed")
        exchange.operation = operation
        body = parse_json_body(flow.request)

        skill_name = flow.request.headers.get(rules.file.skill_header)
        skill = rules.file.skills.get(skill_name) if skill_name else None
        exchange.skill = skill_name
        alias = (skill.model if skill and skill.model else None) or body.get("model")
        if not isinstance(alias, str) or not alias:
            raise InvalidRequest("You must provide a model parameter.", param="model")
        exchange.alias = alias
        route = rules.file.models.get(alias)
        if route is None:
            raise ByokError(
                404,
                f"The model '{alias}' is not mapped to a customer account in {rules.path.name}; add it under "
                "'models:'. BYOK is on, so the request was not sent to the platform.",
                code="model_not_found", param="model",
            )
        connection = rules.connections[route.provider]
        if not connection.config.enabled:
            if rules.file.allow_passthrough:
                self._pass_through(exchange, f"provider '{connection.name}' disabled")
                return
            raise ByokError(
                403,
                f"Provider '{connection.name}' for model '{alias}' is disabled and pass-through to the platform "
                "is not allowed (allow_passthrough: false).",
                type="permission_error", code="byok_provider_disabled",
            )
        exchange.connection = connection
        exchange.model = route.model
        if problem := connection.credential_problem():
            raise ByokError(
                503, f"Provider '{connection.name}' has no usable credential: {problem}. "
                "The request was not sent anywhere.",
                type="api_error", code="byok_credential_unavailable",
            )
        if skill is not None:
            body = apply_skill(body, rules.skill_prompts.get(skill_name or ""), skill.params)

        translator = connection.translator(
            route.model, operation, drop_unsupported_params=rules.file.drop_unsupported_params  # type: ignore[arg-type]
        )
        exchange.translator = translator
        exchange.streaming = bool(body.get("stream")) and operation == "chat"
        if exchange.streaming and not supports_streaming(translator):
            raise InvalidRequest(
                f"Streaming is not supported yet for provider type '{connection.type}'; send stream=false.",
                param="stream",
            )
        upstreams = translator.requests(body)
        if len(upstreams) > 1:
            await self._fan_out(flow, exchange, upstreams)
        else:
            upstream = await connection.authorize(upstreams[0])
            exchange.sent_credentials |= redact.header_secrets(upstream.headers.items())
            self._rewrite(flow, upstream.method, upstream.url, upstream.headers, upstream.body)
            exchange.upstream_sent = time.time()
        self.exchanges[flow.id] = exchange
        flow.comment = flow_comment(exchange)
        flow.metadata["byok"] = exchange.summary()

    async def _fan_out(self, flow: http.HTTPFlow, exchange: Exchange, upstreams: list[UpstreamRequest]) -> None:
        """Sends several provider requests for one app request and answers the app with their merge.
        mitmproxy sends one request per flow, so these calls are the proxy's own; the flow is
        rewritten to the first of them so mitmweb and the audit log show where the traffic went."""
        connection, translator = exchange.connection, exchange.translator
        assert connection is not None and translator is not None
        limit = asyncio.Semaphore(FAN_OUT_CONCURRENCY)

        async def send(request: UpstreamRequest) -> tuple[UpstreamRequest, httpx.Response]:
            async with limit:
                # Signed when it leaves, not all up front: a SigV4 signature is only valid for minutes,
                # and up to 2048 signatures at once would hold the event loop.
                authorized = await connection.authorize(request)
                exchange.sent_credentials.update(redact.header_secrets(authorized.headers.items()))
                response = await self._http_client().request(
                    authorized.method, authorized.url, headers=authorized.headers, content=authorized.body
                )
                return authorized, response

        exchange.upstream_sent = time.time()
        try:
            sent = await asyncio.gather(*(send(u) for u in upstreams))
        except httpx.HTTPError as e:
            raise ByokError(
                502, f"Could not reach provider '{connection.name}' ({type(e).__name__}).", type="api_error"
            ) from None
        authorized = [request for request, _ in sent]
        responses = [response for _, response in sent]
        answers = [translator.response(r.status_code, r.headers, r.content) for r in responses]
        failed = next((a for a in answers if a.status >= 400), None)
        result = failed or ClientResponse(200, oa.merge_embedding_lists([a.body for a in answers]))
        translator.usage = None if failed else result.body["usage"]
        exchange.fan_out = [
            {"url": r.url, "status": resp.status_code, "request_id": _first_header(resp.headers, translator)}
            for r, resp in zip(authorized, responses, strict=True)
        ]
        first = authorized[0]
        self._rewrite(flow, first.method, first.url, first.headers, first.body)
        hide_credentials(flow.request)
        exchange.upstream_response = http.Response.make(
            responses[0].status_code, responses[0].content,
            # httpx has already decoded the body
            [(k, v) for k, v in responses[0].headers.raw if k.lower() not in (b"content-encoding", b"content-length")],
        )
        exchange.answered_by_proxy = True
        flow.response = http.Response.make(
            result.status, result.encode(), {"content-type": "application/json", **result.headers}
        )

    def _http_client(self) -> httpx.AsyncClient:
        if self.http_client is None:
            verify: bool | str = ctx.options.ssl_verify_upstream_trusted_ca or True
            if ctx.options.ssl_insecure:
                verify = False
            # trust_env=False: HTTPS_PROXY/NO_PROXY and .netrc of the proxy's own environment must not
            # send the customer's signed requests elsewhere (or back into this proxy).
            self.http_client = httpx.AsyncClient(
                verify=verify, timeout=httpx.Timeout(120, connect=10), trust_env=False
            )
        return self.http_client

    async def done(self) -> None:
        if self.http_client is not None:
            await self.http_client.aclose()

    @staticmethod
    def _rewrite(flow: http.HTTPFlow, method: str, url: str, headers: dict[str, str], body: bytes) -> None:
        kept = {k: v for k in FORWARDED_HEADERS if (v := flow.request.headers.get(k))}
        flow.request.method = method
        flow.request.url = url
        flow.request.headers = http.Headers(**{**kept, **headers})
        # The same authority botocore signs: default ports are left out.
        flow.request.host_header = urlsplit(url).netloc
        flow.request.content = body

    def _model_list(self) -> http.Response:
        assert self.rules is not None
        data = [
            {"id": alias, "object": "model", "created": 0, "owned_by": f"byok:{route.provider}"}
            for alias, route in self.rules.file.models.items()
        ]
        return http.Response.make(
            200, json.dumps({"object": "list", "data": data}).encode(), {"content-type": "application/json"}
        )

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        exchange = self.exchanges.get(flow.id)
        if exchange is not None:
            # The upstream has the whole request by now; from here on nobody needs the credential.
            hide_credentials(flow.request)
        if exchange is None or not exchange.streaming or flow.response is None or exchange.translator is None:
            return
        if flow.response.status_code >= 400 or exchange.decision != "byok":
            return  # an error body is small; translate it whole in `response`
        translator = exchange.translator
        accumulator = exchange.stream = oa.StreamAccumulator()
        flow.response.headers.pop("content-length", None)
        flow.response.headers["content-type"] = "text/event-stream; charset=utf-8"
        flow.response.headers["cache-control"] = "no-cache"

        failed = False

        def translate(data: bytes) -> Iterable[bytes]:
            nonlocal failed
            if failed:
                return []
            try:
                out = translator.stream_chunk(data) if data else translator.stream_end()
            except Exception:
                # The app must see the stream fail, not a silently truncated answer.
                logger.exception("byok-proxy failed to translate a provider stream")
                failed = True
                out = oa.sse_event(ByokError(
                    502, "byok-proxy could not translate the provider's stream.", type="api_error"
                ).body())
            accumulator.feed(out)
            # An empty chunk mid-stream would end a chunked HTTP/1.1 body early: send nothing instead.
            return [out] if out else []

        flow.response.stream = translate

    def response(self, flow: http.HTTPFlow) -> None:
        exchange = self.exchanges.pop(flow.id, None)
        if exchange is None:
            return
        exchange.finished = time.time()
        if exchange.decision == "byok" and exchange.translator is not None and flow.response is not None:
            if not flow.response.stream and not exchange.answered_by_proxy:
                self._translate_response(flow, exchange)
        self._emit(exchange)

    def error(self, flow: http.HTTPFlow) -> None:
        exchange = self.exchanges.pop(flow.id, None)
        if exchange is None:
            return
        hide_credentials(flow.request)
        exchange.finished = time.time()
        self._emit(exchange)

    def _translate_response(self, flow: http.HTTPFlow, exchange: Exchange) -> None:
        assert flow.response is not None and exchange.translator is not None
        upstream = flow.response
        exchange.upstream_response = upstream.copy()
        try:
            translated = exchange.translator.response(
                upstream.status_code, upstream.headers, upstream.get_content(strict=False) or b""
            )
        except ByokError as e:
            translated_status, translated_body, extra = e.status, e.body(), e.headers
        except Exception:
            logger.exception("byok-proxy failed to translate a provider response; answering 502")
            translated_status = 502
            translated_body = ByokError(
                502, "byok-proxy could not translate the provider's response.", type="api_error"
            ).body()
            extra = {}
        else:
            translated_status, translated_body, extra = translated.status, translated.body, translated.headers
        headers = {"content-type": "application/json"}
        for name in exchange.translator.request_id_headers:
            if value := upstream.headers.get(name):
                headers["x-request-id"] = value
                break
        headers.update(extra)
        flow.response = http.Response.make(
            translated_status, json.dumps(translated_body, separators=(",", ":")).encode(), headers
        )
        flow.response.timestamp_start = upstream.timestamp_start
        flow.comment = flow_comment(exchange, upstream.headers.get(SERVED_REGION_HEADER))
        if translated_status >= 400:
            flow.comment = f"{flow.comment} — provider answered {upstream.status_code}"

    @staticmethod
    def _emit(exchange: Exchange) -> None:
        ctx.master.addons.trigger(ByokExchangeHook(exchange))
