"""Pure parts of the router; the end-to-end behaviour is in tests/test_end_to_end.py."""

import pytest
from mitmproxy import exceptions
from mitmproxy.addons import proxyserver
from mitmproxy.test import taddons

from addon.router import ByokRouter, apply_skill, operation_for


def test_operation_for_platform_paths():
    assert operation_for("/v1/chat/completions") == "chat"
    assert operation_for("/openai/v1/chat/completions?x=1") == "chat"
    assert operation_for("/v1/embeddings/") == "embeddings"
    assert operation_for("/v1/responses") is None


def test_apply_skill_replaces_system_prompt_and_overrides_params_without_mutating():
    body = {
        "model": "gpt_large", "temperature": 0.9,
        "messages": [{"role": "system", "content": "app prompt"}, {"role": "developer", "content": "dev"},
                     {"role": "user", "content": "hi"}],
    }
    result = apply_skill(body, "skill prompt", {"temperature": 0.1, "max_tokens": 800})
    assert result["messages"] == [{"role": "system", "content": "skill prompt"}, {"role": "user", "content": "hi"}]
    assert result["temperature"] == 0.1 and result["max_tokens"] == 800
    assert body["messages"][0]["content"] == "app prompt" and body["temperature"] == 0.9


def test_reload_resolves_secrets_again_and_keeps_rules_on_error(tmp_path, monkeypatch):
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        'platform: {hosts: ["api.openai.com"]}\n'
        'providers:\n  azure: {type: azure_openai, endpoint: "https://x.openai.azure.com", api_key: "${KEY}"}\n'
        "models: {gpt_large: {provider: azure, model: gpt-4o}}\n"
    )
    monkeypatch.delenv("KEY", raising=False)
    router = ByokRouter()
    with taddons.context(router, proxyserver.Proxyserver()) as tctx:
        tctx.configure(router, byok_rules=str(rules))
        assert router.rules.connections["azure"].credential_problem()
        assert tctx.options.connection_strategy == "lazy"
        monkeypatch.setenv("KEY", "fake-rotated-key-0001")
        router.reload()
        assert router.rules.connections["azure"].config.api_key.value == "fake-rotated-key-0001"
        rules.write_text("platform: [")
        with pytest.raises(exceptions.CommandError):
            router.reload()
        assert router.rules.connections["azure"].config.api_key.value == "fake-rotated-key-0001"


def test_byok_options_are_enforced_at_start_and_on_reload(tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text('platform: {hosts: ["api.openai.com"]}\nbyok: false\n')
    router = ByokRouter()
    with taddons.context(router, proxyserver.Proxyserver()) as tctx:
        tctx.configure(router, byok_rules=str(rules), stream_large_bodies="1m", connection_strategy="eager")
        # BYOK off: mitmproxy's own settings stay.
        assert tctx.options.connection_strategy == "eager" and tctx.options.stream_large_bodies == "1m"
        router.passthrough_clients.add("client-that-passed-through")
        rules.write_text('platform: {hosts: ["api.openai.com"]}\nbyok: true\n')
        router.reload()
        # A reload that turns BYOK on must close every early path to the platform, like a start does.
        assert tctx.options.connection_strategy == "lazy"
        assert tctx.options.stream_large_bodies is None
        assert router.passthrough_clients == set()
        tctx.configure(router, stream_large_bodies="5m")
        assert tctx.options.stream_large_bodies is None


def test_fan_out_signs_each_request_as_it_leaves():
    import asyncio

    import httpx
    from mitmproxy.test import tflow

    from addon.exchange import Exchange
    from addon.providers.base import ClientResponse, UpstreamRequest
    from addon.router import FAN_OUT_CONCURRENCY

    events: list[str] = []

    class Connection:
        name = "bedrock"

        async def authorize(self, request):
            events.append("sign")
            return request.with_headers({"authorization": "Bearer fake-token-0000000001"})

    class Translator:
        request_id_headers = ()
        usage = None

        def response(self, status, headers, body):
            return ClientResponse(status, {"object": "list", "data": [{"object": "embedding", "embedding": [0.0]}],
                                           "model": "m", "usage": {"prompt_tokens": 1, "total_tokens": 1}})

    def handler(request: httpx.Request) -> httpx.Response:
        events.append("send")
        return httpx.Response(200, json={})

    router = ByokRouter()
    router.http_client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    flow = tflow.tflow()
    exchange = Exchange(flow, "byok", flow.request.pretty_url, flow.request.copy())
    exchange.connection, exchange.translator = Connection(), Translator()
    upstreams = [UpstreamRequest("POST", f"https://bedrock.test/model/m/invoke?{i}", {}, b"{}") for i in range(40)]
    asyncio.run(router._fan_out(flow, exchange, upstreams))
    # Never more signatures waiting than requests allowed in flight (they used to be made all at once).
    assert events.index("send") <= FAN_OUT_CONCURRENCY
    assert events.count("sign") == events.count("send") == 40
    assert exchange.sent_credentials == {"fake-token-0000000001"}
    assert flow.response.status_code == 200 and flow.request.headers["authorization"] == "Bearer [REDACTED]"
