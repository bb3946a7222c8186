"""Response shapes seen in public recordings of real Gemini API / Vertex AI traffic, through our translator.

Every fixture under fixtures/gemini/recorded_* is our own, written to reproduce a shape observed in public
recordings (vercel/ai `packages/google/src/__fixtures__`, pydantic-ai `tests/models/cassettes/test_google`):
Gemini 3 function calls with `id` and `thoughtSignature` (only on the first of parallel calls), no-argument
calls, code-execution / inlineData parts, content without `parts` or `content: {}`, candidates without
content (MODEL_ARMOR), `promptFeedback` with a usage holding only `trafficType`, grounding and citation
metadata, a final chunk holding only an empty text part with a signature, the finish reason in a chunk of
its own, usage-only chunks, streamed errors, and embeddings reporting `usageMetadata`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from addon import secrets
from addon.providers import gemini_format as gf
from addon.providers.gemini import GeminiConfig, GeminiTranslator
from addon.providers.vertex import VertexConfig, VertexTranslator

FIXTURES = Path(__file__).parent / "fixtures" / "gemini"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def gemini(operation: str = "chat", model: str = "gemini-2.5-flash") -> GeminiTranslator:
    config = GeminiConfig(type="gemini", api_key=secrets.Secret("${GEMINI_API_KEY}", "fake-key"))
    return GeminiTranslator(config, model, operation, drop_unsupported_params=False)


def vertex(model: str = "gemini-2.5-flash") -> VertexTranslator:
    config = VertexConfig.model_validate({"type": "vertex", "project": "acme-ai"})
    return VertexTranslator(config, model, "chat", drop_unsupported_params=False)


def answer(translator, name: str, status: int = 200):
    translator.request({"messages": [{"role": "user", "content": "x"}]})
    return translator.response(status, {"content-type": "application/json; charset=UTF-8"}, fixture(name))


def message(content, finish: str) -> list:
    return [{"index": 0, "message": {"role": "assistant", "content": content, "refusal": None},
             "finish_reason": finish, "logprobs": None}]


# --- whole responses -------------------------------------------------------------------------------


def test_gemini3_parallel_calls_keep_provider_ids_and_the_one_signature():
    response = answer(gemini(), "recorded_gemini3_parallel_calls_with_ids.json")
    assert response.status == 200
    body = response.body
    assert body["id"] == "chatcmpl-Zq1TbWx0ZXN0LWlkcy0wMDE" and body["model"] == "gemini-3.1-pro-preview"
    assert body["choices"][0]["finish_reason"] == "tool_calls"
    assert body["choices"][0]["message"]["content"] == "Checking both cities."
    assert body["choices"][0]["message"]["tool_calls"] == [
        {"id": "k3v9q2xa", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
         "extra_content": {"google": {"thought_signature": "EtQBCtEBAXRlc3Qtc2lnbmF0dXJlLW9uZS1ub3QtcmVhbA=="}}},
        {"id": "p8d1m4zc", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Lima"}'}},
        {"id": gf.tool_call_id("Zq1TbWx0ZXN0LWlkcy0wMDE", 2, "get_time"), "type": "function",
         "function": {"name": "get_time", "arguments": "{}"}},
    ]
    assert body["usage"] == {"prompt_tokens": 91, "completion_tokens": 219, "total_tokens": 310,
                             "completion_tokens_details": {"reasoning_tokens": 175}}


def test_gemini3_calls_with_ids_round_trip_by_id():
    completion = answer(gemini(), "recorded_gemini3_parallel_calls_with_ids.json").body
    calls = completion["choices"][0]["message"]["tool_calls"]
    body = {"messages": [
        {"role": "user", "content": "Weather in Oslo and Lima, and the time?"},
        completion["choices"][0]["message"],
        {"role": "tool", "tool_call_id": "p8d1m4zc", "content": '{"temp": 19}'},
        {"role": "tool", "tool_call_id": calls[2]["id"], "content": "09:00"},
        {"role": "tool", "tool_call_id": "k3v9q2xa", "content": '{"temp": 4}'},
    ]}
    contents = gf.chat_request(body, "gemini", drop_unsupported=False)["contents"]
    assert contents[1] == {"role": "model", "parts": [
        {"text": "Checking both cities."},
        {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}},
         "thoughtSignature": "EtQBCtEBAXRlc3Qtc2lnbmF0dXJlLW9uZS1ub3QtcmVhbA=="},
        {"functionCall": {"name": "get_weather", "args": {"city": "Lima"}}},
        {"functionCall": {"name": "get_time", "args": {}}},
    ]}
    assert contents[2] == {"role": "user", "parts": [
        {"functionResponse": {"name": "get_weather", "response": {"temp": 4}}},
        {"functionResponse": {"name": "get_weather", "response": {"temp": 19}}},
        {"functionResponse": {"name": "get_time", "response": {"content": "09:00"}}},
    ]}


def test_code_execution_inline_data_and_unknown_parts_are_left_out():
    response = answer(gemini(), "recorded_code_execution_parts.json")
    assert response.status == 200
    assert response.body["choices"] == message(
        "The sum is 45; the second line fails with a division by zero.", "stop")
    # toolUsePromptTokenCount is part of the prompt: 23 + 289; the total is Gemini's own.
    assert response.body["usage"] == {"prompt_tokens": 312, "completion_tokens": 35, "total_tokens": 347}


def test_max_tokens_spent_thinking_gives_empty_content_and_length():
    translator = gemini(model="gemini-2.5-pro")
    response = answer(translator, "recorded_max_tokens_thinking_only.json")
    assert response.status == 200
    assert response.body["choices"] == message("", "length")
    # No candidatesTokenCount (Gemini omits zeros): completion is the thinking alone.
    assert response.body["usage"] == {"prompt_tokens": 15, "completion_tokens": 2, "total_tokens": 17,
                                      "completion_tokens_details": {"reasoning_tokens": 2}}
    assert translator.response_id == "fT9maxTokensThinking01"


def test_empty_content_object_is_an_empty_answer():
    response = answer(gemini(model="gemini-3.1-flash-image-preview"), "recorded_empty_content_object.json")
    assert response.status == 200
    assert response.body["choices"] == message("", "stop")
    assert response.body["usage"] == {"prompt_tokens": 9, "completion_tokens": 0, "total_tokens": 9}


def test_vertex_model_armor_finish_without_content_is_content_filter():
    response = answer(vertex(), "recorded_vertex_model_armor_finish.json")
    assert response.status == 200
    assert response.body["id"] == "chatcmpl-vtxArmorFinish0001"
    assert response.body["choices"] == message("", "content_filter")
    assert response.body["usage"] == {"prompt_tokens": 19, "completion_tokens": 33, "total_tokens": 52,
                                      "completion_tokens_details": {"reasoning_tokens": 27}}


def test_vertex_blocked_prompt_with_traffic_type_only_usage():
    response = answer(vertex(), "recorded_vertex_prompt_blocked_traffic_only.json")
    assert response.status == 200
    assert response.body["choices"] == message("", "content_filter")
    assert response.body["usage"] == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}


def test_grounded_answer_takes_candidate_zero_and_ignores_metadata():
    translator = vertex()
    response = answer(translator, "recorded_grounded_vertex.json")
    assert response.status == 200
    assert response.body["choices"] == message("Spain won Euro 2024.", "stop")
    assert response.body["usage"] == {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19}
    assert translator.response_id == "vtxGrounded000001"


@pytest.mark.parametrize("metadata,expected", [
    ({"promptTokenCount": "12", "totalTokenCount": "12"}, {"prompt_tokens": 12, "completion_tokens": 0,
                                                           "total_tokens": 12}),
    ({"trafficType": "ON_DEMAND"}, {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}),
    ({"promptTokenCount": 5, "candidatesTokenCount": None}, {"prompt_tokens": 5, "completion_tokens": 0,
                                                              "total_tokens": 5}),
])
def test_usage_tolerates_missing_and_string_counts(metadata, expected):
    assert gf.usage_from(metadata) == expected


def test_service_disabled_error_is_a_permission_error():
    response = answer(gemini(), "recorded_error_service_disabled.json", status=403)
    assert response.status == 403
    assert response.body == {"error": {
        "message": "The customer's Google Gemini credential was rejected by Google Gemini (403): Generative "
                   "Language API has not been used in project 123456789 before or it is disabled. Check the "
                   "credential configured for this provider in the rules file.",
        "type": "permission_error", "param": None, "code": "PERMISSION_DENIED"}}
    assert response.headers == {}


def test_invalid_argument_error_passes_through_as_a_400():
    body = {"error": {"code": 400, "message": "Penalty is not enabled for models/gemini-2.5-flash",
                      "status": "INVALID_ARGUMENT"}}
    response = gemini().response(400, {}, json.dumps(body).encode())
    assert (response.status, response.body) == (400, {"error": {
        "message": "Penalty is not enabled for models/gemini-2.5-flash", "type": "invalid_request_error",
        "param": None, "code": "INVALID_ARGUMENT"}})


def test_batch_embeddings_report_usage_metadata_tokens():
    translator = gemini("embeddings", model="gemini-embedding-2")
    translator.request({"input": ["a", "b"]})
    response = translator.response(200, {}, fixture("recorded_embed_batch_with_usage.json"))
    assert response.body == {
        "object": "list", "model": "gemini-embedding-2",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.25, 0.75]},
                 {"object": "embedding", "index": 1, "embedding": [-0.5, -0.125]}],
        "usage": {"prompt_tokens": 12, "total_tokens": 12},
    }
    assert translator.usage == {"prompt_tokens": 12, "total_tokens": 12}


# --- streams ---------------------------------------------------------------------------------------


def run_stream(translator, data: bytes, step: int) -> list:
    translator.request({"messages": [{"role": "user", "content": "x"}], "stream": True,
                        "stream_options": {"include_usage": True}})
    out = b"".join(translator.stream_chunk(data[i:i + step]) for i in range(0, len(data), step))
    out += translator.stream_end()
    events = out.split(b"\n\n")
    assert events[-1] == b""
    return [e.decode() if e == b"data: [DONE]" else json.loads(e.removeprefix(b"data: ")) for e in events[:-1]]


def deltas(events: list) -> list:
    return [(e["choices"][0]["delta"], e["choices"][0]["finish_reason"]) for e in events
            if isinstance(e, dict) and e.get("choices")]


ROLE = ({"role": "assistant", "content": ""}, None)


@pytest.mark.parametrize("step", [1, 3, 64, 100_000])
def test_stream_gemini3_final_chunk_with_only_a_signed_empty_text(step):
    translator = gemini()
    events = run_stream(translator, fixture("recorded_stream_gemini3_text.sse"), step)
    assert deltas(events) == [ROLE, ({"content": "2 + 2"}, None), ({"content": " = 4"}, None), ({}, "stop")]
    assert all(e["id"] == "chatcmpl-g3TextSignature0001" for e in events[:-1])
    assert all(e["model"] == "gemini-3-flash-preview" for e in events[:-1])
    assert events[-2]["choices"] == [] and events[-2]["usage"] == {
        "prompt_tokens": 15, "completion_tokens": 57, "total_tokens": 72,
        "completion_tokens_details": {"reasoning_tokens": 52}}
    assert events[-1] == "data: [DONE]"
    assert translator.response_id == "g3TextSignature0001"


@pytest.mark.parametrize("step", [1, 50, 100_000])
def test_stream_vertex_thoughts_no_arg_call_call_with_id_and_separate_finish(step):
    translator = vertex(model="gemini-3-flash-preview")
    events = run_stream(translator, fixture("recorded_stream_vertex_tool_calls.sse"), step)
    assert deltas(events) == [
        ROLE,
        ({"tool_calls": [{"index": 0, "id": gf.tool_call_id("vtxStreamTools0001", 0, "read_theme"),
                          "type": "function", "function": {"name": "read_theme", "arguments": "{}"},
                          "extra_content": {"google": {"thought_signature": "AY89a18fakeSignatureForTests=="}}}]},
         None),
        ({"tool_calls": [{"index": 1, "id": "rs-a-01", "type": "function",
                          "function": {"name": "read_screen", "arguments": '{"id":"A"}'}}]}, None),
        ({}, "tool_calls"),
    ]
    # A late chunk holding only trafficType does not wipe the counted usage.
    assert events[-2]["usage"] == {"prompt_tokens": 249, "completion_tokens": 241, "total_tokens": 490,
                                   "completion_tokens_details": {"reasoning_tokens": 183}}
    assert translator.usage == events[-2]["usage"]
    assert events[-1] == "data: [DONE]"


@pytest.mark.parametrize("step", [1, 7, 100_000])
def test_stream_finish_alone_then_usage_only_chunk_without_final_blank_line(step):
    translator = gemini()
    events = run_stream(translator, fixture("recorded_stream_finish_alone.sse"), step)
    assert deltas(events) == [ROLE, ({"content": "Short answer."}, None), ({}, "stop")]
    assert events[-2]["usage"] == {"prompt_tokens": 77, "completion_tokens": 7, "total_tokens": 84,
                                   "prompt_tokens_details": {"cached_tokens": 4},
                                   "completion_tokens_details": {"reasoning_tokens": 4}}
    assert events[-1] == "data: [DONE]"


def test_stream_duplicate_finish_and_late_content_are_not_repeated():
    first = {"candidates": [{"content": {"parts": [{"text": "A"}]}, "finishReason": "STOP", "index": 0}],
             "responseId": "dup"}
    late = {"candidates": [{"content": {"parts": [{"text": "B"}]}, "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 2, "candidatesTokenCount": 2, "totalTokenCount": 4}}
    data = b"".join(b"data: " + json.dumps(e).encode() + b"\r\n\r\n" for e in (first, late))
    events = run_stream(gemini(), data, 100_000)
    assert deltas(events) == [ROLE, ({"content": "A"}, None), ({}, "stop")]
    assert events[-2]["usage"] == {"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4}


def test_stream_mid_stream_429_event_is_a_rate_limit_error():
    events = run_stream(gemini(), fixture("recorded_stream_error_429.sse"), 5)
    assert deltas(events) == [ROLE, ({"content": "Begin"}, None)]
    assert events[-1] == {"error": {"message": "Resource has been exhausted (e.g. check quota).",
                                    "type": "rate_limit_error", "param": None, "code": "RESOURCE_EXHAUSTED"}}


def test_stream_piecewise_function_arguments_fail_clearly():
    events = run_stream(vertex(), fixture("recorded_stream_partial_args.sse"), 11)
    assert deltas(events) == [ROLE]
    assert events[-1] == {"error": {
        "message": "Vertex AI streamed function-call arguments in pieces, which byok-proxy does not request "
                   "and cannot translate.", "type": "api_error", "param": None, "code": None}}


def test_stream_model_armor_finish_without_content():
    payload = json.loads(fixture("recorded_vertex_model_armor_finish.json"))
    events = run_stream(vertex(), b"data: " + json.dumps(payload).encode() + b"\r\n\r\n", 13)
    assert deltas(events) == [ROLE, ({}, "content_filter")]
    assert events[-2]["usage"]["total_tokens"] == 52
