"""Azure OpenAI translator: stream endings, Azure's own stream chunks, filtered answers and error bodies
(the rest is covered end to end in tests/test_chat_fidelity.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from addon import secrets
from addon.errors import InvalidRequest
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


# --- shapes recorded from real Azure traffic (our own fixtures, written after public recordings) ------

FIXTURES = Path(__file__).parent / "fixtures" / "azure"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def run(t: AzureTranslator, data: bytes, cuts: list[int]) -> list[Any]:
    out, last = b"", 0
    for cut in [*cuts, len(data)]:
        out += t.stream_chunk(data[last:cut])
        last = cut
    out += t.stream_end()
    return [e if e == "[DONE]" else json.loads(e) for e in events(out)]


@pytest.mark.parametrize("cuts", [[], [1, 2, 300, 301], list(range(1, 3000, 11))])
def test_stream_drops_the_prompt_filter_chunk_and_keeps_the_rest_verbatim(cuts: list[int]) -> None:
    t = translator()
    out = run(t, fixture("stream_text.sse"), cuts)
    upstream = [json.loads(e) for e in events(fixture("stream_text.sse"))[1:-1]]
    assert out == [*upstream, "[DONE]"]  # obfuscation, content_filter_results, null content: untouched
    assert [c["choices"][0]["delta"] for c in out[:-2]] == [
        {"content": "", "refusal": None, "role": "assistant"}, {"content": "Bonjour"}, {"content": None},
        {"content": " !"}, {}]
    assert out[-3]["choices"][0]["finish_reason"] == "stop"
    assert out[-2]["choices"] == [] and out[-2]["usage"]["total_tokens"] == 18
    assert t.usage == out[-2]["usage"]


def test_async_filter_annotations_are_dropped_and_the_verdict_is_a_proper_chunk() -> None:
    t = translator()
    out = run(t, fixture("stream_async_filter_blocked.sse"), [500])  # CRLF framing
    assert out[-1] == "[DONE]"
    chunks = out[:-1]
    assert [c["choices"][0]["delta"] for c in chunks] == [{"role": "assistant"}, {"content": "Yesterday, all"}, {}]
    verdict = chunks[-1]
    assert verdict["choices"][0]["finish_reason"] == "content_filter"
    assert verdict["choices"][0]["content_filter_results"] == {
        "protected_material_text": {"detected": True, "filtered": True}}
    assert {(c["id"], c["object"], c["created"], c["model"]) for c in chunks} == {
        ("chatcmpl-BYOKfixture0000000000000001", "chat.completion.chunk", 1767225600, "gpt-35-turbo")}


def test_annotation_before_any_model_chunk_gets_an_identity_of_its_own() -> None:
    t = translator()
    verdict = {"id": "", "object": "", "created": 0, "model": "", "usage": None,
               "choices": [{"index": 0, "finish_reason": "content_filter", "content_filter_results": {}}]}
    out = run(t, sse(verdict) + b"data: [DONE]\n\n", [])
    chunk = out[0]
    assert chunk["id"].startswith("chatcmpl-") and chunk["created"] > 0 and chunk["model"] == "gpt-4o"
    assert chunk["object"] == "chat.completion.chunk"
    assert chunk["choices"] == [{"index": 0, "finish_reason": "content_filter", "content_filter_results": {},
                                 "delta": {}}]


def test_tool_call_deltas_pass_unchanged() -> None:
    t = translator()
    out = run(t, fixture("stream_tool_calls.sse"), [77, 78])
    assert out == [*[json.loads(e) for e in events(fixture("stream_tool_calls.sse"))[1:-1]], "[DONE]"]
    calls = [d for c in out[:-1] for d in c["choices"][0]["delta"].get("tool_calls") or []]
    assert [(c["index"], c.get("id"), c["function"].get("name"), c["function"]["arguments"]) for c in calls] == [
        (0, "call_Rb7mN2qXc4VtY8sJk1LwP0aZ", "get_weather", ""), (0, None, None, '{"ci'),
        (0, None, None, 'ty":"Lyon"}'), (1, "call_H3kP9sLq2WzX7cVb5NmA1dTe", "get_time", ""), (1, None, None, "{}")]
    assert out[-2]["choices"][0] == {"content_filter_results": {}, "delta": {}, "finish_reason": "tool_calls",
                                     "index": 0, "logprobs": None}


def test_filtered_completion_with_null_content_passes_unchanged() -> None:
    t = translator()
    response = t.response(200, {}, fixture("chat_content_filter_null_content.json"))
    assert response.status == 200
    assert response.body == json.loads(fixture("chat_content_filter_null_content.json"))
    assert response.body["choices"][0]["message"]["content"] is None
    assert t.usage == response.body["usage"]


def test_filtered_completion_without_message_gets_an_empty_one() -> None:
    response = translator().response(200, {}, fixture("chat_content_filter_no_message.json"))
    choice = response.body["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": None}
    assert choice["finish_reason"] == "content_filter"
    assert choice["content_filter_results"]["protected_material_code"]["filtered"] is True


@pytest.mark.parametrize("name", ["error_content_filter_innererror.json", "error_content_filter_inner_error.json"])
def test_prompt_filter_error_names_the_categories_in_either_spelling(name: str) -> None:
    response = translator().response(400, {}, fixture(name))
    assert response.status == 400
    assert response.body == {"error": {
        "message": "The response was filtered due to the prompt triggering Azure OpenAI's content management "
                   "policy. Please modify your prompt and retry. (filtered: jailbreak, violence)",
        "type": "invalid_request_error", "param": "prompt", "code": "content_filter"}}


def test_error_with_null_code() -> None:
    response = translator().response(400, {}, fixture("error_code_null.json"))
    message = json.loads(fixture("error_code_null.json"))["error"]["message"]
    assert response.body == {"error": {"message": message, "type": "invalid_request_error", "param": None,
                                       "code": None}}


def test_rate_limit_keeps_retry_headers() -> None:
    headers = {"retry-after": "7", "retry-after-ms": "6521", "x-ms-region": "Sweden Central"}
    response = translator().response(429, headers, fixture("error_rate_limit.json"))
    assert response.status == 429
    assert response.headers == {"retry-after": "7", "retry-after-ms": "6521"}
    assert response.body["error"]["type"] == "rate_limit_error" and response.body["error"]["code"] == "429"
    assert response.body["error"]["message"].startswith("Requests to the ChatCompletions_Create Operation")


def test_api_management_rate_limit_body() -> None:
    response = translator().response(429, {"retry-after": "7"}, fixture("error_apim_rate_limit.json"))
    assert response.headers == {"retry-after": "7"}
    assert response.body == {"error": {"message": "Rate limit is exceeded. Try again in 7 seconds.",
                                       "type": "rate_limit_error", "param": None, "code": None}}


def test_stream_options_without_usage_is_no_request_at_all_on_2024_10_21():
    config = AzureOpenAIConfig(type="azure_openai", endpoint="https://contoso.openai.azure.com",
                               api_key=secrets.Secret("${K}", "fake-key"))
    translator = AzureTranslator(config, "gpt-4o", "chat")
    body = {"messages": [{"role": "user", "content": "hi"}], "stream": True,
            "stream_options": {"include_usage": False}}
    assert "stream_options" not in json.loads(translator.request(body).body)
    with pytest.raises(InvalidRequest):
        translator.request({**body, "stream_options": {"include_usage": True}})
