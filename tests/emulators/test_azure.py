from __future__ import annotations

import base64
import json
import struct

import httpx
import openai
import pytest

from addon.emulators import fakes
from addon.emulators.runner import Emulators

KEY = {"api-key": fakes.AZURE_API_KEY}


def chat_url(emus: Emulators, deployment: str = "gpt-4o", version: str | None = "2024-10-21") -> str:
    q = f"?api-version={version}" if version else ""
    return f"{emus.azure}/openai/deployments/{deployment}/chat/completions{q}"


def hello(text: str = "hello there", **extra: object) -> dict[str, object]:
    return {"messages": [{"role": "user", "content": text}], **extra}


def test_chat_shape_and_headers(emus: Emulators, client: httpx.Client) -> None:
    r = client.post(chat_url(emus), headers=KEY, json=hello())
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "chat.completion"
    assert body["model"] == "gpt-4o-2024-08-06"
    assert body["id"].startswith("chatcmpl-") and body["system_fingerprint"]
    choice = body["choices"][0]
    assert choice["message"] == {"annotations": [], "content": "Echo: hello there", "refusal": None,
                                 "role": "assistant"}
    assert choice["finish_reason"] == "stop"
    assert choice["content_filter_results"]["protected_material_code"] == {"filtered": False, "detected": False}
    assert body["prompt_filter_results"][0]["content_filter_results"]["jailbreak"]["detected"] is False
    assert body["usage"]["prompt_tokens"] == 2 and body["usage"]["completion_tokens"] == 3
    assert body["usage"]["total_tokens"] == 5
    assert body["usage"]["completion_tokens_details"]["reasoning_tokens"] == 0
    for h in ("apim-request-id", "x-request-id", "x-ratelimit-remaining-requests", "x-ratelimit-remaining-tokens"):
        assert r.headers[h]
    assert r.headers["x-ms-region"] == "East US"
    assert r.headers["x-ms-deployment-name"] == "gpt-4o"
    assert r.headers["content-type"] == "application/json"


@pytest.mark.parametrize("headers", [{}, {"api-key": "wrong"}, {"authorization": f"Bearer {fakes.AZURE_API_KEY}"}])
def test_deployment_form_rejects_bad_auth(emus: Emulators, client: httpx.Client, headers: dict[str, str]) -> None:
    r = client.post(chat_url(emus), headers=headers, json=hello())
    assert r.status_code == 401
    if headers.get("api-key") == "wrong":
        assert r.json() == {"error": {"code": "401", "message": (
            "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key "
            "for an active subscription and use a correct regional API endpoint for your resource.")}}


@pytest.mark.parametrize("version", [None, "2099-01-01", "2024-10-22"])
def test_bad_api_version_is_resource_not_found(emus: Emulators, client: httpx.Client, version: str | None) -> None:
    r = client.post(chat_url(emus, version=version), headers=KEY, json=hello())
    assert r.status_code == 404
    assert r.json() == {"error": {"code": "404", "message": "Resource not found"}}


def test_unknown_deployment_and_wrong_operation(emus: Emulators, client: httpx.Client) -> None:
    r = client.post(chat_url(emus, "gpt-5"), headers=KEY, json=hello())
    assert r.status_code == 404 and r.json()["error"]["code"] == "DeploymentNotFound"
    r = client.post(chat_url(emus, "text-embedding-3-large"), headers=KEY, json=hello())
    assert r.status_code == 400 and r.json()["error"]["code"] == "OperationNotSupported"


def test_v1_with_openai_sdk(emus: Emulators) -> None:
    sdk = openai.OpenAI(base_url=f"{emus.azure}/openai/v1/", api_key=fakes.AZURE_API_KEY)
    out = sdk.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi v1"}])
    assert out.choices[0].message.content == "Echo: hi v1"
    assert out.model == "gpt-4o-mini-2024-07-18"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{emus.azure}/openai/v1/", api_key="nope").chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "x"}])


def test_azure_sdk_deployment_form(emus: Emulators) -> None:
    sdk = openai.AzureOpenAI(azure_endpoint=emus.azure, api_key=fakes.AZURE_API_KEY, api_version="2024-10-21")
    out = sdk.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "from sdk"}])
    assert out.choices[0].message.content == "Echo: from sdk"


def test_strict_validation(emus: Emulators, client: httpx.Client) -> None:
    r = client.post(chat_url(emus), headers=KEY, json=hello(foo=1))
    assert r.status_code == 400
    assert r.json()["error"]["message"] == "Unrecognized request argument supplied: foo"
    # 2024-10-21 predates stream_options
    r = client.post(chat_url(emus), headers=KEY, json=hello(stream=True, stream_options={"include_usage": True}))
    assert r.status_code == 400 and "stream_options" in r.json()["error"]["message"]
    msgs = [{"role": "user", "content": "x"}, {"role": "tool", "tool_call_id": "call_1", "content": "r"}]
    r = client.post(chat_url(emus), headers=KEY, json={"messages": msgs})
    assert r.status_code == 400 and "preceeding message with 'tool_calls'" in r.json()["error"]["message"]
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": {"a": 1}}}
    msgs = [{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_1", "content": "r"}]
    r = client.post(chat_url(emus), headers=KEY, json={"messages": msgs})
    assert r.status_code == 400 and "expected a string" in r.json()["error"]["message"]


def tools() -> list[dict[str, object]]:
    return [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]


def test_tool_call_round_trip(emus: Emulators, client: httpx.Client) -> None:
    r = client.post(chat_url(emus), headers=KEY, json=hello("EMULATE:parallel_tool_calls weather?", tools=tools()))
    choice = r.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    calls = choice["message"]["tool_calls"]
    assert [json.loads(c["function"]["arguments"]) for c in calls] == [{"city": "Paris"}, {"city": "Tokyo"}]
    msgs = [{"role": "user", "content": "EMULATE:tool_call weather?"}, choice["message"]] + [
        {"role": "tool", "tool_call_id": c["id"], "content": "sunny"} for c in calls]
    r = client.post(chat_url(emus), headers=KEY, json={"messages": msgs, "tools": tools()})
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "Echo: tool result: sunny | sunny"


@pytest.mark.parametrize(("directive", "finish"), [("max_tokens", "length"), ("content_filter", "content_filter")])
def test_finish_directives(emus: Emulators, client: httpx.Client, directive: str, finish: str) -> None:
    r = client.post(chat_url(emus), headers=KEY, json=hello(f"EMULATE:{directive} a b c d e f"))
    assert r.json()["choices"][0]["finish_reason"] == finish


def test_scripted_errors(emus: Emulators, client: httpx.Client) -> None:
    r = client.post(chat_url(emus), headers=KEY, json=hello("EMULATE:error=429"))
    assert r.status_code == 429 and r.headers["retry-after"] == "3" and r.headers["retry-after-ms"] == "3000"
    assert r.json()["error"]["code"] == "429"
    r = client.post(chat_url(emus), headers=KEY, json=hello("EMULATE:prompt_blocked"))
    err = r.json()["error"]
    assert r.status_code == 400 and err["code"] == "content_filter"
    assert err["innererror"]["content_filter_result"]["violence"]["filtered"] is True


def test_stream_quirks(emus: Emulators, client: httpx.Client) -> None:
    url = chat_url(emus, version="2025-01-01-preview")
    r = client.post(url, headers=KEY, json=hello("one two three", stream=True, stream_options={"include_usage": True}))
    assert r.headers["content-type"].startswith("text/event-stream")
    events = [e[len("data: "):] for e in r.text.split("\n\n") if e]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[0]["choices"] == [] and chunks[0]["id"] == "" and "prompt_filter_results" in chunks[0]
    assert chunks[1]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(ch["choices"][0]["delta"].get("content") or "" for ch in chunks[1:] if ch["choices"])
    assert text == "Echo: one two three"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 4
    assert all(ch["usage"] is None for ch in chunks[1:-1])
    # with the official SDK too
    sdk = openai.AzureOpenAI(azure_endpoint=emus.azure, api_key=fakes.AZURE_API_KEY,
                             api_version="2025-01-01-preview")
    stream = sdk.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "sdk stream"}],
                                         stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "Echo: sdk stream"


def test_embeddings(emus: Emulators, client: httpx.Client) -> None:
    url = f"{emus.azure}/openai/deployments/text-embedding-3-large/embeddings?api-version=2024-10-21"
    r = client.post(url, headers=KEY, json={"input": ["a", "b"]})
    body = r.json()
    assert body["object"] == "list" and len(body["data"]) == 2 and len(body["data"][0]["embedding"]) == 3072
    assert body["usage"] == {"prompt_tokens": 2, "total_tokens": 2}
    r2 = client.post(url, headers=KEY, json={"input": "a", "dimensions": 256, "encoding_format": "base64"})
    raw = base64.b64decode(r2.json()["data"][0]["embedding"])
    vec = struct.unpack("<256f", raw)
    assert abs(sum(v * v for v in vec) - 1) < 1e-4
    r3 = client.post(url, headers=KEY, json={"input": "a", "dimensions": 5000})
    assert r3.status_code == 400
    sdk = openai.AzureOpenAI(azure_endpoint=emus.azure, api_key=fakes.AZURE_API_KEY, api_version="2024-10-21")
    out = sdk.embeddings.create(model="text-embedding-3-small", input="a")  # SDK defaults to base64
    assert len(out.data[0].embedding) == 1536


def test_recording_before_auth(emus: Emulators, client: httpx.Client) -> None:
    emus.reset()
    client.post(chat_url(emus) + "&x=1", headers={"api-key": "bad"}, json=hello("recorded"))
    rec = emus.recorded("azure")
    assert len(rec) == 1
    assert rec[0]["path"] == "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21&x=1"
    assert rec[0]["headers"]["api-key"] == "bad" and rec[0]["body"]["messages"][0]["content"] == "recorded"
    assert client.get(f"{emus.azure}/_emulator/requests").json() == rec


def test_stream_tool_calls_with_sdk(emus: Emulators) -> None:
    sdk = openai.OpenAI(base_url=f"{emus.azure}/openai/v1/", api_key=fakes.AZURE_API_KEY)
    stream = sdk.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "EMULATE:parallel_tool_calls"}], tools=tools(),
        stream=True, stream_options={"include_usage": True})
    args: dict[int, str] = {}
    finish = None
    usage = None
    for chunk in stream:
        usage = chunk.usage or usage
        for ch in chunk.choices:
            finish = ch.finish_reason or finish
            for tc in (ch.delta.tool_calls if ch.delta else None) or []:
                args[tc.index] = args.get(tc.index, "") + (tc.function.arguments or "")
    assert {i: json.loads(a) for i, a in args.items()} == {0: {"city": "Paris"}, 1: {"city": "Tokyo"}}
    assert finish == "tool_calls" and usage is not None and usage.total_tokens > 0


def test_scripted_401_and_forced_tool_choice(emus: Emulators, client: httpx.Client) -> None:
    r = client.post(chat_url(emus), headers=KEY, json=hello("EMULATE:error=401"))
    assert r.status_code == 401 and r.json()["error"]["code"] == "401"
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
    r = client.post(chat_url(emus), headers=KEY, json=hello("plain", tools=[tool], tool_choice="required"))
    choice = r.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert json.loads(choice["message"]["tool_calls"][0]["function"]["arguments"]) == {"answer": "Echo: plain"}
