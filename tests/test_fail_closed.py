"""Fail-closed and pass-through behaviour, each on its own mitmdump with its own rules or credentials."""

from __future__ import annotations

import json

import openai
import pytest

from addon.harness import REPO, free_port, provider_env, start_proxy

MESSAGES = [{"role": "user", "content": "hello"}]


def run_proxy(tmp_path, emulators, trap, env_changes=None, rules_text=None, mode="forward"):
    env = provider_env(emulators, f"127.0.0.1:{trap.port}")
    env.update(env_changes or {})
    rules = REPO / "rules" / "demo.yaml"
    if rules_text is not None:
        rules = tmp_path / "rules.yaml"
        rules.write_text(rules_text)
        (tmp_path / "prompts").mkdir(exist_ok=True)
        (tmp_path / "prompts" / "summarize_incident.txt").write_text("summarize")
    return start_proxy(tmp_path, rules, env, trap.port, mode=mode)


def test_rejected_customer_credentials_are_reported_per_provider(tmp_path, emulators, own_trap):
    proxy = run_proxy(tmp_path, emulators, own_trap, {
        "AZURE_OPENAI_API_KEY": "fake-wrong-azure-key",
        "GEMINI_API_KEY": "fake-wrong-gemini-key",
        "AWS_SECRET_ACCESS_KEY": "fake/wrong/secret/key/0000000000000000000",
    })
    try:
        client = proxy.openai()
        for alias, provider in (("gpt_large", "Azure OpenAI"), ("gemini_large", "Google Gemini"),
                                ("claude_large", "AWS Bedrock")):
            with pytest.raises(openai.APIStatusError) as info:
                client.chat.completions.create(model=alias, messages=MESSAGES)
            assert info.value.status_code in (401, 403), alias
            assert f"customer's {provider} credential was rejected" in info.value.message
            assert "fake-wrong" not in info.value.message
    finally:
        proxy.stop()
    assert own_trap.connections == []


def test_missing_credential_fails_closed_and_sends_nothing(tmp_path, emulators, own_trap):
    proxy = run_proxy(tmp_path, emulators, own_trap, {"GEMINI_API_KEY": ""})
    emulators.reset()
    try:
        with pytest.raises(openai.InternalServerError) as info:
            proxy.openai().chat.completions.create(model="gemini_large", messages=MESSAGES)
        assert info.value.status_code == 503
        assert "GEMINI_API_KEY is not set" in info.value.message
        assert "GEMINI_API_KEY" in proxy.log()  # warned at start too
    finally:
        proxy.stop()
    assert emulators.recorded("gemini") == []
    assert own_trap.connections == []




def azure_only_rules(platform: str, endpoint: str, *, top: str = "", provider: str = "") -> str:
    """A rules file with one Azure provider serving `gpt_large`."""
    return (
        f'platform: {{hosts: ["{platform}"]}}\n{top}\n'
        f'providers:\n  azure: {{type: azure_openai, endpoint: "{endpoint}", '
        f'api_key: "${{AZURE_OPENAI_API_KEY}}"{provider}}}\n'
        "models:\n  gpt_large: {provider: azure, model: gpt-4o}\n"
    )


def disabled_azure_rules(platform_port: int, *, allow: str) -> str:
    return azure_only_rules(
        f"127.0.0.1:{platform_port}", "http://127.0.0.1:1", top=f"allow_passthrough: {allow}",
        provider=", enabled: false",
    )


def test_disabled_provider_passes_through_to_the_platform(tmp_path, emulators, own_trap):
    proxy = run_proxy(tmp_path, emulators, own_trap, rules_text=disabled_azure_rules(own_trap.port, allow="true"))
    try:
        with pytest.raises(openai.InternalServerError) as info:
            # The trap accepts and hangs up, so mitmproxy answers 502: the request went to the platform.
            proxy.openai().chat.completions.create(model="gpt_large", messages=MESSAGES)
        assert info.value.status_code == 502
    finally:
        proxy.stop()
    assert own_trap.connections, "pass-through should have reached the platform"


def test_disabled_provider_without_passthrough_fails_closed(tmp_path, emulators, own_trap):
    proxy = run_proxy(tmp_path, emulators, own_trap, rules_text=disabled_azure_rules(own_trap.port, allow="false"))
    try:
        with pytest.raises(openai.PermissionDeniedError) as info:
            proxy.openai().chat.completions.create(model="gpt_large", messages=MESSAGES)
        assert info.value.code == "byok_provider_disabled"
    finally:
        proxy.stop()
    assert own_trap.connections == []




def test_fully_qualified_platform_host_is_intercepted(tmp_path, emulators, own_trap):
    # `localhost.` (trailing dot) names the same host as `localhost`; it used to pass through to the platform.
    proxy = run_proxy(tmp_path, emulators, own_trap, rules_text=azure_only_rules(
        f"localhost:{own_trap.port}", "${BYOK_EMULATOR_AZURE}"))
    try:
        client = proxy.openai(base_url=f"http://localhost.:{own_trap.port}/v1")
        answer = client.chat.completions.create(model="gpt_large", messages=MESSAGES)
        assert answer.choices[0].message.content == "Echo: hello"
    finally:
        proxy.stop()
    assert own_trap.connections == []




def test_unreachable_provider_fails_without_falling_back_to_the_platform(tmp_path, emulators, own_trap):
    dead = free_port()  # nothing listens there
    proxy = run_proxy(tmp_path, emulators, own_trap,
                      rules_text=azure_only_rules(f"127.0.0.1:{own_trap.port}", f"http://127.0.0.1:{dead}"))
    try:
        with pytest.raises(openai.InternalServerError) as info:
            proxy.openai().chat.completions.create(model="gpt_large", messages=MESSAGES)
        assert info.value.status_code == 502
    finally:
        proxy.stop()
    assert own_trap.connections == []
    entries = json.loads(proxy.audit.read_text())["log"]["entries"]
    assert entries[-1]["_byok"]["decision"] == "byok"
    assert entries[-1]["request"]["url"].startswith(f"http://127.0.0.1:{dead}/")
    assert entries[-1]["_byok"]["error"]
