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
