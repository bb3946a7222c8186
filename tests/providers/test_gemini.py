"""Google AI Studio provider and the shared generateContent translation (`gemini_format`).

Fixtures under fixtures/gemini/ follow the shapes in Google's public API reference
(generateContent, streamGenerateContent?alt=sse, embedContent, batchEmbedContents, google.rpc errors).
"""

from __future__ import annotations

import asyncio
import base64
import json
import struct
from pathlib import Path

import pytest

from addon import secrets
from addon.errors import InvalidRequest, UnsupportedParameter
from addon.providers import gemini_format as gf
from addon.providers.base import UpstreamRequest
from addon.providers.gemini import GeminiConfig, GeminiConnection, GeminiTranslator

FIXTURES = Path(__file__).parent / "fixtures" / "gemini"
KEY = "fake-gemini-api-key-for-tests-0001"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def config(**overrides) -> GeminiConfig:
    return GeminiConfig(type="gemini", api_key=secrets.Secret("${GEMINI_API_KEY}", KEY), **overrides)


def translator(operation="chat", model="gemini-2.5-flash", drop=False, **overrides) -> GeminiTranslator:
    return GeminiTranslator(config(**overrides), model, operation, drop_unsupported_params=drop)


def translate(body: dict, **kwargs) -> dict:
    return gf.chat_request(body, "gemini", drop_unsupported=kwargs.get("drop", False))


def user(text: str) -> dict:
    return {"role": "user", "content": text}


# --- request translation ---------------------------------------------------------------------------


def test_request_url_headers_and_body():
    t = translator()
    body = {"model": "platform-alias", "messages": [user("Hi")], "temperature": 0.5}
    request = t.request(body)
    assert request.method == "POST"
    assert request.url == (
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
    )
    assert request.headers == {"content-type": "application/json", "accept": "application/json"}
    assert json.loads(request.body) == {
        "contents": [{"role": "user", "parts": [{"text": "Hi"}]}], "generationConfig": {"temperature": 0.5}
    }
    assert "key" not in request.url
    assert body == {"model": "platform-alias", "messages": [user("Hi")], "temperature": 0.5}  # not mutated


def test_request_stream_url_and_custom_endpoint():
    t = translator(endpoint="http://127.0.0.1:9999/", api_version="v1")
    request = t.request({"messages": [user("Hi")], "stream": True})
    assert request.url == "http://127.0.0.1:9999/v1/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    assert request.headers["accept"] == "text/event-stream"


def test_system_and_developer_go_to_system_instruction_and_turns_merge():
    body = {
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
            user("One"),
            {"role": "user", "content": [{"type": "text", "text": "Two"}]},
            {"role": "assistant", "content": "Un, deux."},
            {"role": "assistant", "content": "Trois."},
            user("Four?"),
        ]
    }
    assert translate(body) == {
        "systemInstruction": {"parts": [{"text": "You are terse."}, {"text": "Answer in French."}]},
        "contents": [
            {"role": "user", "parts": [{"text": "One"}, {"text": "Two"}]},
            {"role": "model", "parts": [{"text": "Un, deux."}, {"text": "Trois."}]},
            {"role": "user", "parts": [{"text": "Four?"}]},
        ],
    }


def test_generation_config_params():
    body = {
        "messages": [user("Hi")], "temperature": 0.2, "top_p": 0.9, "max_completion_tokens": 512,
        "stop": "END", "seed": 7, "presence_penalty": 0.5, "frequency_penalty": -0.5, "n": 1,
    }
    assert translate(body)["generationConfig"] == {
        "temperature": 0.2, "topP": 0.9, "maxOutputTokens": 512, "stopSequences": ["END"], "seed": 7,
        "presencePenalty": 0.5, "frequencyPenalty": -0.5,
    }
    assert translate({"messages": [user("x")], "max_tokens": 9, "stop": ["a", "b"]})["generationConfig"] == {
        "maxOutputTokens": 9, "stopSequences": ["a", "b"],
    }


@pytest.mark.parametrize("param,value", [("logit_bias", {"50256": -100}), ("logprobs", True),
                                         ("reasoning_effort", "low"), ("parallel_tool_calls", False)])
def test_unsupported_params_are_named_or_dropped(param, value):
    body = {"messages": [user("Hi")], param: value}
    with pytest.raises(UnsupportedParameter) as e:
        translate(body)
    assert e.value.status == 400 and e.value.param == param
    assert f"Parameter '{param}' is not supported by provider type 'gemini'" in e.value.message
    assert translate(body, drop=True) == {"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]}


def test_n_other_than_one_and_unknown_params_are_rejected():
    with pytest.raises(InvalidRequest, match="Only n=1"):
        translate({"messages": [user("Hi")], "n": 2})
    with pytest.raises(InvalidRequest, match="Unrecognized request argument supplied: foo"):
        translate({"messages": [user("Hi")], "foo": 1}, drop=True)
    with pytest.raises(InvalidRequest, match="At least one user message"):
        translate({"messages": [{"role": "system", "content": "x"}]})


def test_images_data_url_inline_and_http_rejected():
    png = base64.b64encode(b"\x89PNG fake").decode()
    body = {"messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}", "detail": "high"}},
        {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "mp3"}},
    ]}]}
    assert translate(body)["contents"] == [{"role": "user", "parts": [
        {"text": "What is this?"},
        {"inlineData": {"mimeType": "image/png", "data": png}},
        {"inlineData": {"mimeType": "audio/mpeg", "data": "AAAA"}},
    ]}]
    body = {"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]}
    with pytest.raises(InvalidRequest) as e:
        translate(body)
    assert e.value.param == "messages[0].content[0]"
    assert "never fetches URLs" in e.value.message


def test_json_mode_and_json_schema():
    body = {"messages": [user("x")], "response_format": {"type": "json_object"}}
    assert translate(body)["generationConfig"] == {"responseMimeType": "application/json"}
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {
            "name": {"type": "string", "description": "Full name"},
            "age": {"type": ["integer", "null"]},
            "kind": {"const": "person"},
            "address": {"$ref": "#/$defs/Address"},
            "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
        },
        "required": ["name"],
        "additionalProperties": False,
        "$defs": {"Address": {"type": "object", "properties": {"city": {"type": "string"}},
                              "additionalProperties": False}},
    }
    body = {"messages": [user("x")],
            "response_format": {"type": "json_schema", "json_schema": {"name": "p", "strict": True, "schema": schema}}}
    assert translate(body)["generationConfig"] == {
        "responseMimeType": "application/json",
        "responseSchema": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "description": "Full name"},
                "age": {"type": "integer", "nullable": True},
                "kind": {"enum": ["person"]},
                "address": {"type": "object", "properties": {"city": {"type": "string"}}},
                "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
            },
            "required": ["name"],
        },
    }
    recursive = {"type": "object", "properties": {"child": {"$ref": "#/$defs/Node"}},
                 "$defs": {"Node": {"type": "object", "properties": {"child": {"$ref": "#/$defs/Node"}}}}}
    with pytest.raises(InvalidRequest, match="recursive"):
        gf.gemini_schema(recursive, "p")


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather",
        "strict": True,
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"anyOf": [{"type": "string"}, {"type": "null"}]}},
            "required": ["city", "unit"],
            "additionalProperties": False,
        },
    },
}
NOARG_TOOL = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}


@pytest.mark.parametrize("choice,expected", [
    ("auto", {"mode": "AUTO"}),
    ("required", {"mode": "ANY"}),
    ("none", {"mode": "NONE"}),
    ({"type": "function", "function": {"name": "get_weather"}},
     {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}),
])
def test_tools_and_tool_choice(choice, expected):
    result = translate({"messages": [user("x")], "tools": [WEATHER_TOOL, NOARG_TOOL], "tool_choice": choice,
                        "parallel_tool_calls": True})
    assert result["tools"] == [{"functionDeclarations": [
        {"name": "get_weather", "description": "Current weather", "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "nullable": True}},
            "required": ["city", "unit"]}},
        {"name": "get_time"},
    ]}]
    assert result["toolConfig"] == {"functionCallingConfig": expected}


def test_tool_history_round_trip_with_synthetic_ids():
    # A function-call response from Gemini, translated to OpenAI ...
    payload = json.loads(fixture("generate_function_calls.json"))
    completion = gf.chat_response(payload, "gemini-2.5-pro", "Google Gemini")
    calls = completion["choices"][0]["message"]["tool_calls"]
    # ... then sent back by the app with results in reverse order.
    body = {"messages": [
        user("Weather and time in Paris?"),
        completion["choices"][0]["message"],
        {"role": "tool", "tool_call_id": calls[1]["id"], "content": "14:05"},
        {"role": "tool", "tool_call_id": calls[0]["id"], "content": '{"temp": 21, "sky": "clear"}'},
        user("Thanks"),
    ], "tools": [WEATHER_TOOL, NOARG_TOOL]}
    assert translate(body)["contents"] == [
        {"role": "user", "parts": [{"text": "Weather and time in Paris?"}]},
        {"role": "model", "parts": [
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris", "unit": "celsius"}},
             "thoughtSignature": "CiQBVKhc7vB0c2lnbmF0dXJlLWJ5dGVzLWZvci10ZXN0cw=="},
            {"functionCall": {"name": "get_time", "args": {"tz": "Europe/Paris"}}},
        ]},
        {"role": "user", "parts": [
            {"functionResponse": {"name": "get_weather", "response": {"temp": 21, "sky": "clear"}}},
            {"functionResponse": {"name": "get_time", "response": {"content": "14:05"}}},
            {"text": "Thanks"},
        ]},
    ]


def test_tool_result_without_matching_call_is_rejected():
    body = {"messages": [user("x"), {"role": "tool", "tool_call_id": "call_unknown", "content": "1"}]}
    with pytest.raises(InvalidRequest, match="call_unknown") as e:
        translate(body)
    assert e.value.param == "messages[1].tool_call_id"


def test_legacy_function_call_history_is_rejected():
    body = {"messages": [user("x"), {"role": "assistant", "content": None,
                                     "function_call": {"name": "f", "arguments": "{}"}}]}
    with pytest.raises(InvalidRequest, match="deprecated functions API"):
        translate(body)
    with pytest.raises(InvalidRequest, match="role 'function' is not supported"):
        translate({"messages": [user("x"), {"role": "function", "name": "f", "content": "1"}]})


def test_bad_tool_call_arguments_are_rejected():
    body = {"messages": [user("x"), {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{not json"}}]}]}
    with pytest.raises(InvalidRequest, match="not valid JSON"):
        translate(body)


# --- response translation --------------------------------------------------------------------------


def test_text_response_skips_thoughts_and_maps_usage():
    t = translator()
    t.request({"messages": [user("Haiku please")]})
    response = t.response(200, {"content-type": "application/json"}, fixture("generate_text.json"))
    assert response.status == 200 and response.headers == {}
    body = response.body
    assert body["id"] == "chatcmpl-mVxUaJ2aAoyWz7IP4d3N8Qg"
    assert body["object"] == "chat.completion" and body["model"] == "gemini-2.5-flash"
    assert body["choices"] == [{"index": 0, "finish_reason": "stop", "logprobs": None, "message": {
        "role": "assistant", "content": "Autumn moonlight—\na worm digs silently\ninto the chestnut.",
        "refusal": None}}]
    assert body["usage"] == {
        "prompt_tokens": 15, "completion_tokens": 24, "total_tokens": 39,
        "prompt_tokens_details": {"cached_tokens": 4}, "completion_tokens_details": {"reasoning_tokens": 16},
    }
    assert t.usage == body["usage"]
    assert t.response_id == "mVxUaJ2aAoyWz7IP4d3N8Qg"


def test_function_call_response_has_stable_synthetic_ids():
    payload = json.loads(fixture("generate_function_calls.json"))
    first = gf.chat_response(payload, "m", "Google Gemini")
    again = gf.chat_response(payload, "m", "Google Gemini")
    message = first["choices"][0]["message"]
    assert first["choices"][0]["finish_reason"] == "tool_calls"
    assert message["content"] is None
    id0 = gf.tool_call_id("resp-fc-0001", 0, "get_weather")
    id1 = gf.tool_call_id("resp-fc-0001", 1, "get_time")
    assert id0.startswith("call_") and len(id0) == 29 and id0 != id1
    assert message["tool_calls"] == [
        {"id": id0, "type": "function",
         "function": {"name": "get_weather", "arguments": '{"city":"Paris","unit":"celsius"}'},
         "extra_content": {"google": {"thought_signature": "CiQBVKhc7vB0c2lnbmF0dXJlLWJ5dGVzLWZvci10ZXN0cw=="}}},
        {"id": id1, "type": "function", "function": {"name": "get_time", "arguments": '{"tz":"Europe/Paris"}'}},
    ]
    assert again["choices"][0]["message"]["tool_calls"] == message["tool_calls"]
    assert first["usage"] == {"prompt_tokens": 72, "completion_tokens": 30, "total_tokens": 102}


def candidate_response(reason: str | None, parts: list | None = None) -> dict:
    candidate: dict = {"index": 0, "content": {"role": "model", "parts": parts or []}}
    if reason:
        candidate["finishReason"] = reason
    return {"candidates": [candidate], "responseId": "r1",
            "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 2, "totalTokenCount": 5}}


@pytest.mark.parametrize("reason,expected", [
    ("STOP", "stop"), ("MAX_TOKENS", "length"), ("SAFETY", "content_filter"), ("RECITATION", "content_filter"),
    ("BLOCKLIST", "content_filter"), ("PROHIBITED_CONTENT", "content_filter"), ("SPII", "content_filter"),
    ("IMAGE_SAFETY", "content_filter"), ("IMAGE_PROHIBITED_CONTENT", "content_filter"),
    ("LANGUAGE", "stop"), ("OTHER", "stop"), ("FINISH_REASON_UNSPECIFIED", "stop"),
])
def test_finish_reasons(reason, expected):
    body = gf.chat_response(candidate_response(reason, [{"text": "ok"}]), "m", "Google Gemini")
    assert body["choices"][0]["finish_reason"] == expected
    assert body["choices"][0]["message"]["content"] == "ok"


def test_max_tokens_with_no_parts_gives_empty_content():
    body = gf.chat_response(candidate_response("SAFETY"), "m", "Google Gemini")
    assert body["choices"][0]["message"]["content"] == ""
    assert body["choices"][0]["finish_reason"] == "content_filter"


@pytest.mark.parametrize("reason,status", [("MALFORMED_FUNCTION_CALL", 502), ("UNEXPECTED_TOOL_CALL", 502),
                                           ("TOO_MANY_TOOL_CALLS", 502), ("MISSING_THOUGHT_SIGNATURE", 400)])
def test_failure_finish_reasons_become_errors(reason, status):
    t = translator()
    payload = candidate_response(reason)
    payload["candidates"][0]["finishMessage"] = "Malformed function call: print(default_api.x("
    response = t.response(200, {}, json.dumps(payload).encode())
    assert response.status == status
    assert response.body["error"]["code"] == reason.lower()
    assert response.body["error"]["message"].startswith(
        f"Google Gemini stopped with finishReason {reason}: Malformed function call")


def test_blocked_prompt_is_content_filter_with_empty_content():
    t = translator()
    response = t.response(200, {}, fixture("prompt_blocked.json"))
    assert response.status == 200
    assert response.body["choices"][0]["message"]["content"] == ""
    assert response.body["choices"][0]["finish_reason"] == "content_filter"
    assert response.body["usage"] == {"prompt_tokens": 9, "completion_tokens": 0, "total_tokens": 9}


# --- errors ----------------------------------------------------------------------------------------


def test_rate_limit_error_carries_retry_after():
    response = translator().response(429, {"content-type": "application/json"}, fixture("error_429_retry.json"))
    assert response.status == 429
    assert response.headers == {"retry-after": "35"}
    assert response.body == {"error": {
        "message": "You exceeded your current quota, please check your plan and billing details.",
        "type": "rate_limit_error", "param": None, "code": "RESOURCE_EXHAUSTED"}}


def test_invalid_api_key_is_a_rejected_credential():
    response = translator().response(400, {}, fixture("error_api_key_invalid.json"))
    assert response.status == 401
    assert response.body["error"]["type"] == "authentication_error"
    assert response.body["error"]["code"] == "API_KEY_INVALID"
    assert response.body["error"]["message"].startswith(
        "The customer's Google Gemini credential was rejected by Google Gemini (401): API key not valid.")


def test_other_errors_and_non_json_bodies():
    body = {"error": {"code": 404, "message": "models/gemini-9 is not found for API version v1beta",
                      "status": "NOT_FOUND"}}
    response = translator().response(404, {}, json.dumps(body).encode())
    assert (response.status, response.body["error"]["code"], response.body["error"]["type"]) == (
        404, "NOT_FOUND", "not_found_error")
    assert response.body["error"]["message"] == "models/gemini-9 is not found for API version v1beta"
    response = translator().response(502, {}, b"<html>Bad Gateway</html>")
    assert response.status == 502 and response.body["error"]["message"] == "<html>Bad Gateway</html>"


# --- streaming -------------------------------------------------------------------------------------


def run_stream(t: GeminiTranslator, data: bytes, splits: list[int]) -> list:
    out = b""
    last = 0
    for cut in [*splits, len(data)]:
        out += t.stream_chunk(data[last:cut])
        last = cut
    out += t.stream_end()
    events = out.split(b"\n\n")
    assert events[-1] == b""
    return [e.removeprefix(b"data: ").decode() if e.endswith(b"[DONE]") else json.loads(e.removeprefix(b"data: "))
            for e in events[:-1]]


def deltas(events: list) -> list:
    return [(e["choices"][0]["delta"], e["choices"][0]["finish_reason"]) for e in events
            if isinstance(e, dict) and e.get("choices")]


TEXT_STREAM_EXPECTED = [
    ({"role": "assistant", "content": ""}, None),
    ({"content": "Rivers run"}, None),
    ({"content": " to the sea — ünïcode."}, None),
    ({}, "stop"),
]


@pytest.mark.parametrize("splits", [[], [1], [5, 6, 7], "every-byte", "crlf-middles"])
def test_stream_text_any_split(splits):
    data = fixture("stream_text.sse")
    if splits == "every-byte":
        splits = list(range(1, len(data)))
    elif splits == "crlf-middles":
        splits = sorted({i + k for i in range(len(data)) if data[i:i + 4] == b"\r\n\r\n" for k in (1, 2, 3)})
    t = translator()
    t.request({"messages": [user("x")], "stream": True, "stream_options": {"include_usage": True}})
    events = run_stream(t, data, splits)
    assert deltas(events) == TEXT_STREAM_EXPECTED
    assert all(e["id"] == "chatcmpl-stream-resp-7" and e["object"] == "chat.completion.chunk" for e in events[:-1])
    assert events[-2]["choices"] == []
    assert events[-2]["usage"] == {"prompt_tokens": 7, "completion_tokens": 13, "total_tokens": 20,
                                   "completion_tokens_details": {"reasoning_tokens": 4}}
    assert all(e["usage"] is None for e in events[:-2])
    assert events[-1] == "[DONE]"
    assert t.usage == events[-2]["usage"]


def test_stream_lf_framing_without_usage_ignores_comments():
    data = b": keep-alive\n\nevent: message\nid: 1\n\n" + fixture("stream_text.sse").replace(b"\r\n", b"\n")
    t = translator()
    t.request({"messages": [user("x")], "stream": True})
    events = run_stream(t, data, [10, 300])
    assert deltas(events) == TEXT_STREAM_EXPECTED
    assert events[-1] == "[DONE]" and len(events) == 5


def test_stream_tool_calls():
    t = translator()
    t.request({"messages": [user("x")], "stream": True})
    events = run_stream(t, fixture("stream_tool_calls.sse"), [50])
    id0 = gf.tool_call_id("stream-resp-tools", 0, "get_weather")
    id1 = gf.tool_call_id("stream-resp-tools", 1, "get_weather")
    assert deltas(events) == [
        ({"role": "assistant", "content": ""}, None),
        ({"content": "Let me check."}, None),
        ({"tool_calls": [
            {"index": 0, "id": id0, "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
            {"index": 1, "id": id1, "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'}},
        ]}, None),
        ({}, "tool_calls"),
    ]
    assert events[-1] == "[DONE]"


def test_stream_error_event_mid_stream():
    t = translator()
    t.request({"messages": [user("x")], "stream": True, "stream_options": {"include_usage": True}})
    events = run_stream(t, fixture("stream_error.sse"), [3])
    assert deltas(events) == [({"role": "assistant", "content": ""}, None), ({"content": "Partial"}, None)]
    assert events[-1] == {"error": {"message": "The model is overloaded. Please try again later.",
                                    "type": "api_error", "param": None, "code": "UNAVAILABLE"}}


def test_stream_http_error_body_and_truncated_stream():
    t = translator()
    t.request({"messages": [user("x")], "stream": True})
    out = t.stream_chunk(fixture("error_429_retry.json")) + t.stream_end()
    assert json.loads(out.removeprefix(b"data: "))["error"]["type"] == "rate_limit_error"
    t = translator()
    t.request({"messages": [user("x")], "stream": True})
    first_event = fixture("stream_text.sse").split(b"\r\n\r\n")[1] + b"\r\n\r\n"
    events = run_stream(t, first_event, [])
    assert events[-1]["error"]["message"] == "The Google Gemini stream ended before a finish reason."
    assert events[-1]["error"]["code"] == "stream_truncated"


def test_stream_blocked_prompt():
    t = translator()
    t.request({"messages": [user("x")], "stream": True})
    events = run_stream(t, b"data: " + fixture("prompt_blocked.json").replace(b"\n", b"") + b"\r\n\r\n", [])
    assert deltas(events) == [({"role": "assistant", "content": ""}, None), ({}, "content_filter")]


# --- embeddings ------------------------------------------------------------------------------------


def test_single_embedding_request_and_response():
    t = translator("embeddings", model="gemini-embedding-001")
    request = t.request({"model": "alias", "input": "hello", "dimensions": 4})
    assert request.url == "https://generativelanguage.googleapis.com/v1beta/models/gemini-embedding-001:embedContent"
    assert json.loads(request.body) == {"model": "models/gemini-embedding-001",
                                        "content": {"parts": [{"text": "hello"}]}, "outputDimensionality": 4}
    response = t.response(200, {}, fixture("embed_single.json"))
    assert response.body == {"object": "list", "model": "gemini-embedding-001",
                             "data": [{"object": "embedding", "index": 0, "embedding": [0.0125, -0.5, 0.25, 1.0]}],
                             "usage": {"prompt_tokens": 0, "total_tokens": 0}}


def test_batch_embeddings_base64():
    t = translator("embeddings", model="gemini-embedding-001")
    request = t.request({"input": ["a", "b"], "encoding_format": "base64", "user": "u"})
    assert request.url.endswith("/models/gemini-embedding-001:batchEmbedContents")
    assert json.loads(request.body) == {"requests": [
        {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "a"}]}},
        {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "b"}]}},
    ]}
    data = t.response(200, {}, fixture("embed_batch.json")).body["data"]
    assert [struct.unpack("<2f", base64.b64decode(d["embedding"])) for d in data] == [(0.5, 0.25), (-1.0, 0.125)]


def test_embedding_count_mismatch_and_bad_params():
    t = translator("embeddings")
    t.request({"input": ["a", "b", "c"]})
    response = t.response(200, {}, fixture("embed_batch.json"))
    assert response.status == 502 and "returned 2 embeddings for 3 inputs" in response.body["error"]["message"]
    with pytest.raises(InvalidRequest, match="token arrays"):
        translator("embeddings").request({"input": [[1, 2, 3]]})
    with pytest.raises(InvalidRequest, match="dimensions"):
        translator("embeddings").request({"input": "a", "dimensions": 0})


# --- connection ------------------------------------------------------------------------------------


def test_connection_authorizes_with_header_and_identity():
    connection = GeminiConnection("acme-gemini", config())
    request = UpstreamRequest("POST", "https://x/v1beta/models/m:generateContent", {"a": "b"}, b"{}")
    authorized = asyncio.run(connection.authorize(request))
    assert authorized.headers == {"a": "b", "x-goog-api-key": KEY}
    assert authorized.url == request.url and KEY not in authorized.url
    assert connection.credential_problem() is None
    identity = connection.identity()
    assert identity == {"type": "gemini", "endpoint": "https://generativelanguage.googleapis.com",
                        "credential": secrets.Secret("x", KEY).fingerprint()}
    assert KEY not in json.dumps(identity)
    assert connection.describe() == ""  # AI Studio has no account name or region to show


def test_config_rejects_literal_key_and_bad_endpoint():
    with pytest.raises(ValueError, match="literal secret"):
        GeminiConfig.model_validate({"type": "gemini", "api_key": "AIzaSyFAKE"})
    with pytest.raises(ValueError, match="http"):
        GeminiConfig.model_validate({"type": "gemini", "api_key": "${K}", "endpoint": "ftp://x"})
    missing = GeminiConnection("g", GeminiConfig.model_validate({"type": "gemini", "api_key": "${BYOK_UNSET_VAR_X}"}))
    assert missing.credential_problem() == "environment variable BYOK_UNSET_VAR_X is not set; export it and restart"


def test_user_has_no_ai_studio_equivalent():
    config = GeminiConfig(type="gemini", api_key=secrets.Secret("${K}", "fake-key"))
    body = {"messages": [user("Hi")], "user": "user-42"}
    with pytest.raises(UnsupportedParameter) as info:
        GeminiTranslator(config, "gemini-2.5-pro", "chat", drop_unsupported_params=False).request(body)
    assert info.value.param == "user"
    dropped = GeminiTranslator(config, "gemini-2.5-pro", "chat", drop_unsupported_params=True).request(body)
    assert "labels" not in json.loads(dropped.body)
