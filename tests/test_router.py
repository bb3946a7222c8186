"""Pure parts of the router; the end-to-end behaviour is in tests/test_end_to_end.py."""

from addon.router import apply_skill, operation_for


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
