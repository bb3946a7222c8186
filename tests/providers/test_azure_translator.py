"""Azure OpenAI translator: stream endings (the rest is covered end to end in tests/test_chat_fidelity.py)."""

from __future__ import annotations

import json

from addon import secrets
from addon.providers.azure import AzureOpenAIConfig, AzureTranslator

KEY = "fake-azure-openai-key-for-tests-0001"
CHUNK = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
         "choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}]}


def translator(api_version: str = "v1") -> AzureTranslator:
    config = AzureOpenAIConfig(type="azure_openai", endpoint="https://contoso.openai.azure.com",
                               api_version=api_version, api_key=secrets.Secret("${AZURE_OPENAI_API_KEY}", KEY))
    return AzureTranslator(config, "gpt-4o", "chat")


def events(data: bytes) -> list[str]:
    return [line[6:] for line in data.decode().split("\n") if line.startswith("data: ")]


def sse(obj: object) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def test_complete_stream_ends_without_extra_events():
    t = translator()
    out = t.stream_chunk(sse(CHUNK) + b"data: [DONE]\n\n")
    assert events(out) == [json.dumps(CHUNK), "[DONE]"]
    assert t.stream_end() == b""


def test_stream_cut_before_done_ends_with_an_error_event():
    t = translator()
    out = t.stream_chunk(sse(CHUNK))
    assert len(events(out)) == 1
    ending = events(t.stream_end())
    assert len(ending) == 1
    assert json.loads(ending[0])["error"]["code"] == "stream_truncated"


def test_stream_error_event_is_passed_on_once():
    t = translator()
    error = {"error": {"code": "500", "message": "The server had an error while processing your request."}}
    out = t.stream_chunk(sse(CHUNK) + sse(error))
    assert [json.loads(e) for e in events(out)] == [CHUNK, error]
    assert t.stream_end() == b""


def test_event_split_across_reads_and_unterminated_last_event():
    t = translator()
    raw = sse(CHUNK) + b"data: [DONE]"
    out = t.stream_chunk(raw[:17]) + t.stream_chunk(raw[17:])
    out += t.stream_end()
    assert events(out) == [json.dumps(CHUNK), "[DONE]"]
