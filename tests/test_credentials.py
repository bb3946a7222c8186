"""Customer credentials end to end: AWS session credentials, Vertex token refresh before expiry."""

from __future__ import annotations

import time

import openai
import pytest

from addon.emulators import fakes
from addon.emulators.runner import start_emulators
from addon.harness import REPO, provider_env, start_proxy

MESSAGES = [{"role": "user", "content": "hello"}]


def test_aws_session_credentials_are_signed_with_their_token(tmp_path, emulators, own_trap):
    env = provider_env(emulators, f"127.0.0.1:{own_trap.port}")
    env.update(AWS_ACCESS_KEY_ID=fakes.AWS_TEMP_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY=fakes.AWS_TEMP_SECRET_ACCESS_KEY,
               AWS_SESSION_TOKEN=fakes.AWS_SESSION_TOKEN)
    proxy = start_proxy(tmp_path, REPO / "rules" / "demo.yaml", env, own_trap.port)
    try:
        completion = proxy.openai().chat.completions.create(model="claude_large", messages=MESSAGES)
        assert completion.choices[0].message.content == "Echo: hello"
        sent = emulators.recorded("bedrock")[-1]["headers"]
        assert sent["x-amz-security-token"] == fakes.AWS_SESSION_TOKEN
        assert "x-amz-security-token" in sent["authorization"].split("SignedHeaders=")[1].split(",")[0]
    finally:
        proxy.stop()
    assert own_trap.connections == []


def test_temporary_key_without_its_session_token_is_rejected(tmp_path, emulators, own_trap):
    env = provider_env(emulators, f"127.0.0.1:{own_trap.port}")
    env.update(AWS_ACCESS_KEY_ID=fakes.AWS_TEMP_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY=fakes.AWS_TEMP_SECRET_ACCESS_KEY)
    proxy = start_proxy(tmp_path, REPO / "rules" / "demo.yaml", env, own_trap.port)
    try:
        with pytest.raises(openai.PermissionDeniedError) as info:
            proxy.openai().chat.completions.create(model="claude_large", messages=MESSAGES)
        assert "customer's AWS Bedrock credential was rejected" in info.value.message
    finally:
        proxy.stop()
    assert own_trap.connections == []


def test_vertex_token_is_refreshed_before_it_expires(tmp_path, own_trap):
    # google-auth refreshes 3 min 45 s before expiry: a 227 s token counts as fresh for about 2 s.
    emulators = start_emulators(tmp_path / "emulators", token_ttl=227)
    proxy = start_proxy(tmp_path / "proxy", REPO / "rules" / "demo.yaml",
                        provider_env(emulators, f"127.0.0.1:{own_trap.port}"), own_trap.port)
    try:
        client = proxy.openai()
        client.chat.completions.create(model="gemini_vertex", messages=MESSAGES)
        client.chat.completions.create(model="gemini_vertex", messages=MESSAGES)
        assert emulators.token_requests() == 1
        time.sleep(2.5)
        completion = client.chat.completions.create(model="gemini_vertex", messages=MESSAGES)
        assert completion.choices[0].message.content == "Echo: hello"
        assert emulators.token_requests() == 2
        recorded = emulators.recorded("vertex")
        tokens = {r["headers"]["authorization"] for r in recorded if "authorization" in r["headers"]}
        assert len(tokens) == 2
    finally:
        proxy.stop()
        emulators.stop()
    assert own_trap.connections == []
