"""Chat Completions fidelity for every provider, end to end: the official openai SDK talks to a real mitmdump
(forward and reverse mode) that serves each platform alias through a strict local provider emulator.

Every outcome is asserted exactly: content, finish_reason, tool-call names and arguments, the SDK exception
class, status, error code and param, and the headers an app's retry logic reads.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import openai
import pytest

ALIASES = {
    # alias: the emulator serving it
    "gpt_large": "azure",  # Azure, dated api-version 2024-10-21
    "gpt_small": "azure",  # Azure, v1 API
    "claude_large": "bedrock",
    "gemini_large": "gemini",
    "gemini_vertex": "vertex",
}
ONE_PER_PROVIDER = ("gpt_small", "claude_large", "gemini_large", "gemini_vertex")
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
# A 1x1 transparent PNG.
PNG = base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)).decode()


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def collect(stream) -> dict[str, Any]:
    """What an app rebuilds from a streamed answer, plus the raw chunks."""
    chunks = list(stream)
    content: list[str] = []
    calls: dict[int, dict[str, str]] = {}
    finish = None
    for chunk in chunks:
        for choice in chunk.choices:
            delta = choice.delta
            if delta.content:
                content.append(delta.content)
            for call in delta.tool_calls or []:
                slot = calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
                slot["id"] += call.id or ""
                slot["name"] += (call.function.name or "") if call.function else ""
                slot["arguments"] += (call.function.arguments or "") if call.function else ""
            if choice.finish_reason:
                assert finish is None, "a second finish_reason arrived"
                finish = choice.finish_reason
    return {"chunks": chunks, "content": "".join(content), "tool_calls": [calls[i] for i in sorted(calls)],
            "finish_reason": finish}


def last_body(emulators, alias: str) -> dict:
    recorded = emulators.recorded(ALIASES[alias])
    assert recorded, f"the {ALIASES[alias]} emulator received nothing"
    return recorded[-1]["body"]


def nothing_sent(emulators) -> bool:
    return all(not emulators.recorded(p) for p in ("azure", "bedrock", "gemini", "vertex"))


# --- streamed text and usage --------------------------------------------------------------------------


@pytest.mark.parametrize("alias", ALIASES)
def test_streamed_text(proxy, alias):
    stream = proxy.openai().chat.completions.create(model=alias, messages=user("stream me please"), stream=True)
    answer = collect(stream)
    assert answer["content"] == "Echo: stream me please"
    assert answer["finish_reason"] == "stop"
    chunks = answer["chunks"]
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices and chunks[0].choices[0].delta.role == "assistant"
    assert len({c.id for c in chunks}) == 1, "every chunk of one answer carries the same id"
    assert all(c.choices for c in chunks), "no usage chunk was asked for"
    assert all(c.usage is None for c in chunks)


@pytest.mark.parametrize("alias", ONE_PER_PROVIDER)
def test_stream_include_usage_ends_with_a_usage_chunk(proxy, alias):
    stream = proxy.openai().chat.completions.create(
        model=alias, messages=user("count my tokens"), stream=True, stream_options={"include_usage": True}
    )
    answer = collect(stream)
    assert answer["content"] == "Echo: count my tokens"
    assert answer["finish_reason"] == "stop"
    *body, last = answer["chunks"]
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.prompt_tokens > 0 and last.usage.completion_tokens > 0
    assert last.usage.total_tokens >= last.usage.prompt_tokens + last.usage.completion_tokens
    assert all(c.choices and c.usage is None for c in body)


def test_stream_options_on_azure_2024_10_21_is_a_clear_400(proxy, emulators):
    emulators.reset()
    with pytest.raises(openai.BadRequestError) as info:
        proxy.openai().chat.completions.create(
            model="gpt_large", messages=user("x"), stream=True, stream_options={"include_usage": True}
        )
    assert info.value.param == "stream_options"
    assert "2024-10-21" in info.value.message
    assert nothing_sent(emulators)


def test_bedrock_event_stream_frames_split_across_reads(proxy):
    stream = proxy.openai().chat.completions.create(
        model="claude_large", messages=user("EMULATE:split_frames halves please"), stream=True,
        stream_options={"include_usage": True},
    )
    answer = collect(stream)
    assert answer["content"] == "Echo: EMULATE:split_frames halves please"
    assert answer["finish_reason"] == "stop"
    assert answer["chunks"][-1].usage is not None


@pytest.mark.parametrize("alias", ONE_PER_PROVIDER)
def test_stream_reaches_the_app_while_the_provider_is_still_sending(proxy, alias):
    # Each emulator delays its stream events by 0.3 s; Gemini packs three words per event.
    words = "one two three four five" if ALIASES[alias] in ("gemini", "vertex") else "go"
    started = time.monotonic()
    stream = proxy.openai().chat.completions.create(
        model=alias, messages=user(f"EMULATE:slow_stream {words}"), stream=True
    )
    arrivals: list[float] = []
    content = []
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.monotonic() - started)
            content.append(chunk.choices[0].delta.content)
    assert "".join(content) == f"Echo: EMULATE:slow_stream {words}"
    assert len(arrivals) >= 3
    assert arrivals[-1] - arrivals[0] >= 0.5, f"content arrived in one burst: {arrivals}"
    assert arrivals[0] < 1.0, f"the first content chunk was held back: {arrivals}"


# --- tool calls ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("alias", ALIASES)
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("directive,cities", [("tool_call", ["Paris"]), ("parallel_tool_calls", ["Paris", "Tokyo"])],
                         ids=["single", "parallel"])
def test_tool_calls(proxy, alias, stream, directive, cities):
    response = proxy.openai().chat.completions.create(
        model=alias, messages=user(f"EMULATE:{directive} weather please"), tools=[WEATHER_TOOL], stream=stream
    )
    if stream:
        answer = collect(response)
        calls = [(c["id"], c["name"], c["arguments"]) for c in answer["tool_calls"]]
        finish = answer["finish_reason"]
    else:
        choice = response.choices[0]
        calls = [(c.id, c.function.name, c.function.arguments) for c in choice.message.tool_calls or []]
        assert all(c.type == "function" for c in choice.message.tool_calls)
        finish = choice.finish_reason
    assert finish == "tool_calls"
    assert [name for _, name, _ in calls] == ["get_weather"] * len(cities)
    assert [json.loads(arguments) for _, _, arguments in calls] == [{"city": city} for city in cities]
    ids = [call_id for call_id, _, _ in calls]
    assert all(ids) and len(set(ids)) == len(ids), f"tool-call ids must be present and distinct: {ids}"


TIME_TOOL = {"type": "function", "function": {"name": "get_time", "description": "The time in a city.",
                                               "parameters": WEATHER_TOOL["function"]["parameters"]}}


@pytest.mark.parametrize("alias", ALIASES)
def test_named_tool_choice_calls_that_tool(proxy, alias):
    completion = proxy.openai().chat.completions.create(
        model=alias, messages=user("EMULATE:tool_call weather please"), tools=[TIME_TOOL, WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert [(c.function.name, json.loads(c.function.arguments)) for c in choice.message.tool_calls] == [
        ("get_weather", {"city": "Paris"})
    ]


@pytest.mark.parametrize("alias", ALIASES)
def test_tool_choice_none_answers_in_text(proxy, alias):
    completion = proxy.openai().chat.completions.create(
        model=alias, messages=user("EMULATE:tool_call weather please"), tools=[WEATHER_TOOL], tool_choice="none",
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "stop"
    assert not choice.message.tool_calls
    assert choice.message.content == "Echo: EMULATE:tool_call weather please"


@pytest.mark.parametrize("alias", ALIASES)
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_tool_round_trip(proxy, emulators, alias, stream):
    client = proxy.openai()
    messages: list[Any] = [
        {"role": "system", "content": "You answer weather questions."},
        {"role": "user", "content": "EMULATE:parallel_tool_calls weather in Paris and Tokyo?"},
    ]
    first = client.chat.completions.create(model=alias, messages=messages, tools=[WEATHER_TOOL], stream=stream)
    if stream:
        answer = collect(first)
        assert answer["finish_reason"] == "tool_calls"
        calls = answer["tool_calls"]
        messages.append({
            "role": "assistant", "content": answer["content"] or None,
            "tool_calls": [{"id": c["id"], "type": "function",
                            "function": {"name": c["name"], "arguments": c["arguments"]}} for c in calls],
        })
    else:
        assert first.choices[0].finish_reason == "tool_calls"
        message = first.choices[0].message
        messages.append(message)  # what apps do: the SDK's own message object goes back as is
        calls = [{"id": c.id, "arguments": c.function.arguments} for c in message.tool_calls]
    for call in calls:
        city = json.loads(call["arguments"])["city"]
        messages.append({"role": "tool", "tool_call_id": call["id"], "content": f"sunny in {city}"})

    final = client.chat.completions.create(model=alias, messages=messages, tools=[WEATHER_TOOL])
    assert final.choices[0].finish_reason == "stop"
    assert final.choices[0].message.content == "Echo: tool result: sunny in Paris | sunny in Tokyo"
    assert not final.choices[0].message.tool_calls


# --- images -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("alias", ALIASES)
def test_image_data_url_reaches_the_provider(proxy, emulators, alias):
    completion = proxy.openai().chat.completions.create(model=alias, messages=[{"role": "user", "content": [
        {"type": "text", "text": "what is in this picture"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
    ]}])
    assert completion.choices[0].message.content == "Echo: what is in this picture"
    sent = last_body(emulators, alias)
    emulator = ALIASES[alias]
    if emulator == "azure":
        assert sent["messages"][0]["content"][1]["image_url"]["url"] == f"data:image/png;base64,{PNG}"
    elif emulator == "bedrock":
        assert sent["messages"][0]["content"][1] == {"image": {"format": "png", "source": {"bytes": PNG}}}
    else:
        assert sent["contents"][0]["parts"][1] == {"inlineData": {"mimeType": "image/png", "data": PNG}}


@pytest.mark.parametrize("alias", ALIASES)
def test_image_http_url_goes_to_azure_only(proxy, emulators, alias):
    emulators.reset()
    url = "https://example.com/cat.png"
    messages = [{"role": "user", "content": [
        {"type": "text", "text": "what is this"}, {"type": "image_url", "image_url": {"url": url}},
    ]}]
    if ALIASES[alias] == "azure":
        completion = proxy.openai().chat.completions.create(model=alias, messages=messages)
        assert completion.choices[0].message.content == "Echo: what is this"
        assert last_body(emulators, alias)["messages"][0]["content"][1]["image_url"]["url"] == url
        return
    with pytest.raises(openai.BadRequestError) as info:
        proxy.openai().chat.completions.create(model=alias, messages=messages)
    assert info.value.param == "messages[0].content[1]"
    assert "data:" in info.value.message and "URL" in info.value.message
    assert nothing_sent(emulators)


# --- JSON mode ----------------------------------------------------------------------------------------

ANSWER_SCHEMA = {
    "type": "json_schema",
    "json_schema": {
        "name": "answer",
        "strict": True,
        "schema": {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"],
                   "additionalProperties": False},
    },
}


@pytest.mark.parametrize("alias", ALIASES)
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("response_format", [{"type": "json_object"}, ANSWER_SCHEMA],
                         ids=["json_object", "json_schema"])
def test_json_mode_answers_parse_as_json(proxy, alias, stream, response_format):
    response = proxy.openai().chat.completions.create(
        model=alias, messages=user("reply in json please"), response_format=response_format, stream=stream
    )
    if stream:
        answer = collect(response)
        content, finish, calls = answer["content"], answer["finish_reason"], answer["tool_calls"]
    else:
        choice = response.choices[0]
        content, finish, calls = choice.message.content, choice.finish_reason, choice.message.tool_calls
    assert finish == "stop"
    assert not calls
    assert json.loads(content) == {"answer": "Echo: reply in json please"}


# --- finish reasons -----------------------------------------------------------------------------------

FILTERED_CONTENT = {"azure": None, "bedrock": "Sorry, the model cannot answer this question.", "gemini": "",
                    "vertex": ""}


@pytest.mark.parametrize("alias", ALIASES)
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("case", ["stop", "length", "content_filter"])
def test_finish_reasons(proxy, alias, stream, case):
    prompt, extra = {
        "stop": ("plain question here", {}),
        "length": ("a long question with many words", {"max_tokens": 3}),
        "content_filter": ("EMULATE:content_filter something", {}),
    }[case]
    response = proxy.openai().chat.completions.create(model=alias, messages=user(prompt), stream=stream, **extra)
    if stream:
        answer = collect(response)
        content, finish = answer["content"], answer["finish_reason"]
    else:
        content, finish = response.choices[0].message.content, response.choices[0].finish_reason
    assert finish == case
    expected = {
        "stop": "Echo: plain question here",
        "length": "Echo: a long",
        "content_filter": FILTERED_CONTENT[ALIASES[alias]],
    }[case]
    if stream and expected is None:
        expected = ""
    assert content == expected


@pytest.mark.parametrize("alias", ["gpt_large", "gpt_small"])
def test_azure_prompt_block_is_openai_content_filter_error(proxy, alias):
    with pytest.raises(openai.BadRequestError) as info:
        proxy.openai().chat.completions.create(model=alias, messages=user("EMULATE:prompt_blocked bad words"))
    assert info.value.code == "content_filter"
    assert info.value.param == "prompt"
    assert "content management policy" in info.value.message


@pytest.mark.parametrize("alias", ["gemini_large", "gemini_vertex"])
def test_gemini_prompt_block_is_content_filter_finish(proxy, alias):
    completion = proxy.openai().chat.completions.create(model=alias, messages=user("EMULATE:prompt_blocked bad"))
    assert completion.choices[0].finish_reason == "content_filter"
    assert completion.choices[0].message.content == ""


# --- provider errors ----------------------------------------------------------------------------------

EXCEPTIONS = {
    400: openai.BadRequestError,
    401: openai.AuthenticationError,
    403: openai.PermissionDeniedError,
    404: openai.NotFoundError,
    429: openai.RateLimitError,
    500: openai.InternalServerError,
    503: openai.InternalServerError,
}
ERROR_CODES = {
    # emulator: {scripted status: the provider's error code as the app sees it}
    "azure": {400: "invalid_request", 401: "401", 403: "403", 404: "DeploymentNotFound", 429: "429", 500: None,
              503: "ServiceUnavailable"},
    "bedrock": {400: "ValidationException", 401: "UnrecognizedClientException", 403: "AccessDeniedException",
                404: "ResourceNotFoundException", 429: "ThrottlingException", 500: "InternalServerException",
                503: "ServiceUnavailableException"},
    "gemini": {400: "INVALID_ARGUMENT", 401: "API_KEY_INVALID", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
               429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"},
    "vertex": {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
               429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"},
}
RETRY_AFTER = {"azure": {"retry-after": "3", "retry-after-ms": "3000"}, "bedrock": {},
               "gemini": {"retry-after": "3"}, "vertex": {"retry-after": "3"}}


@pytest.mark.parametrize("alias", ALIASES)
@pytest.mark.parametrize("status", EXCEPTIONS)
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_provider_errors_keep_status_and_openai_shape(proxy, alias, status, stream):
    emulator = ALIASES[alias]
    # Bedrock never answers 401: a credential it does not know is a 403 UnrecognizedClientException.
    expected_status = 403 if (emulator, status) == ("bedrock", 401) else status
    with pytest.raises(openai.APIStatusError) as info:
        proxy.openai().chat.completions.create(model=alias, messages=user(f"EMULATE:error={status}"), stream=stream)
    error = info.value
    assert type(error) is EXCEPTIONS[expected_status]
    assert error.status_code == expected_status
    assert error.code == ERROR_CODES[emulator][status]
    assert isinstance(error.body, dict) and error.message and error.body["type"]
    assert set(error.body) == {"message", "type", "param", "code"}
    if expected_status in (401, 403):
        assert "credential was rejected" in error.message
    if status == 429:
        headers = error.response.headers
        assert {k: headers.get(k) for k in RETRY_AFTER[emulator]} == RETRY_AFTER[emulator]
        assert error.body["type"] == "rate_limit_error"


# --- in-stream failures -------------------------------------------------------------------------------


@pytest.mark.parametrize("alias,directive,code", [
    ("gpt_large", "stream_exception", "500"),
    ("gpt_small", "stream_exception", "500"),
    ("claude_large", "stream_exception", "modelStreamErrorException"),
    ("claude_large", "stream_exception=throttling", "throttlingException"),
    ("gemini_large", "stream_exception", "INTERNAL"),
    ("gemini_vertex", "stream_exception", "INTERNAL"),
    # The provider's body just ends mid-answer: the app must see an error, not a short answer.
    ("gpt_large", "stream_exception=cut", "stream_truncated"),
    ("claude_large", "stream_exception=cut", "stream_truncated"),
    ("gemini_large", "stream_exception=cut", "stream_truncated"),
    ("gemini_vertex", "stream_exception=cut", "stream_truncated"),
])
def test_in_stream_exception_raises_in_the_sdk(proxy, alias, directive, code):
    stream = proxy.openai().chat.completions.create(
        model=alias, messages=user(f"EMULATE:{directive} a b c d e f g h i j"), stream=True
    )
    received: list[str] = []
    with pytest.raises(openai.APIError) as info:
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                received.append(chunk.choices[0].delta.content)
            assert not (chunk.choices and chunk.choices[0].finish_reason), "a failed stream must not finish"
    assert info.value.code == code
    text = "".join(received)
    assert text and f"Echo: EMULATE:{directive} a b c d e f g h i j".startswith(text)
    assert text != f"Echo: EMULATE:{directive} a b c d e f g h i j"


# --- sampling parameters ------------------------------------------------------------------------------

PARAMS = {"seed": 42, "presence_penalty": 0.5, "frequency_penalty": 0.25, "logprobs": True}
PASSED = {
    # emulator: {parameter: where the provider request carries it}, or None for a clear 400
    "azure": {"seed": ("seed",), "presence_penalty": ("presence_penalty",),
              "frequency_penalty": ("frequency_penalty",), "logprobs": ("logprobs",)},
    "bedrock": {},
    "gemini": {"seed": ("generationConfig", "seed"), "presence_penalty": ("generationConfig", "presencePenalty"),
               "frequency_penalty": ("generationConfig", "frequencyPenalty")},
}
PASSED["vertex"] = PASSED["gemini"]


@pytest.mark.parametrize("alias", ALIASES)
@pytest.mark.parametrize("param", PARAMS)
def test_sampling_params_pass_or_fail_clearly(proxy, emulators, alias, param):
    emulators.reset()
    emulator = ALIASES[alias]
    call = {"model": alias, "messages": user("sample me"), param: PARAMS[param]}
    where = PASSED[emulator].get(param)
    if where is None:
        with pytest.raises(openai.BadRequestError) as info:
            proxy.openai().chat.completions.create(**call)
        assert info.value.param == param
        assert f"'{param}'" in info.value.message
        assert nothing_sent(emulators)
        return
    completion = proxy.openai().chat.completions.create(**call)
    assert completion.choices[0].message.content == "Echo: sample me"
    value: Any = last_body(emulators, alias)
    for key in where:
        value = value[key]
    assert value == PARAMS[param]
