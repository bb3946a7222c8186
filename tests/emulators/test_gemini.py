from __future__ import annotations

import json
import time
from typing import Any

import google.auth.transport.requests
import httpx
import pytest
from google.oauth2 import service_account

from addon.emulators import fakes
from addon.emulators.runner import Emulators

KEY = {"x-goog-api-key": fakes.GEMINI_API_KEY}
SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]


def gen(text: str = "hello gemini", **extra: Any) -> dict[str, Any]:
    return {"contents": [{"role": "user", "parts": [{"text": text}]}], **extra}


def url(emus: Emulators, model: str = "gemini-2.5-flash", method: str = "generateContent") -> str:
    return f"{emus.gemini}/v1beta/models/{model}:{method}"


def test_generate_shape(emus: Emulators, client: httpx.Client) -> None:
    r = client.post(url(emus), headers=KEY, json=gen())
    assert r.status_code == 200, r.text
    body = r.json()
    cand = body["candidates"][0]
    assert cand["content"] == {"parts": [{"text": "Echo: hello gemini"}], "role": "model"}
    assert cand["finishReason"] == "STOP" and cand["index"] == 0
    u = body["usageMetadata"]
    assert u["promptTokenCount"] == 2 and u["candidatesTokenCount"] == 3 and u["thoughtsTokenCount"] > 0
    assert u["totalTokenCount"] == 2 + 3 + u["thoughtsTokenCount"]
    assert body["modelVersion"] == "gemini-2.5-flash" and body["responseId"]
    r = client.post(url(emus, "gemini-2.0-flash") + f"?key={fakes.GEMINI_API_KEY}", json=gen())
    assert r.status_code == 200 and "thoughtsTokenCount" not in r.json()["usageMetadata"]


def test_auth(emus: Emulators, client: httpx.Client) -> None:
    r = client.post(url(emus), headers={"x-goog-api-key": "wrong"}, json=gen())
    err = r.json()["error"]
    assert r.status_code == 400 and err["status"] == "INVALID_ARGUMENT"
    assert err["message"] == "API key not valid. Please pass a valid API key."
    assert err["details"][0]["reason"] == "API_KEY_INVALID"
    r = client.post(url(emus), json=gen())
    assert r.status_code == 403 and r.json()["error"]["status"] == "PERMISSION_DENIED"


def test_strict_request(emus: Emulators, client: httpx.Client) -> None:
    r = client.post(url(emus), headers=KEY, json=gen(foo=1))
    assert r.status_code == 400
    assert r.json()["error"]["message"] == 'Invalid JSON payload received. Unknown name "foo": Cannot find field.'
    params = {"type": "object", "additionalProperties": False}
    tools = [{"functionDeclarations": [{"name": "f", "parameters": params}]}]
    r = client.post(url(emus), headers=KEY, json=gen(tools=tools))
    assert r.status_code == 400 and "at 'tools[0].function_declarations[0].parameters'" in r.json()["error"]["message"]
    r = client.post(url(emus), headers=KEY, json={"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]})
    assert r.status_code == 400 and r.json()["error"]["message"] == "Please use a valid role: user, model."
    r = client.post(url(emus), headers=KEY, json=gen(generation_config={"max_output_tokens": 2}))
    assert r.status_code == 200 and r.json()["candidates"][0]["finishReason"] == "MAX_TOKENS"
    r = client.post(url(emus, "gemini-9"), headers=KEY, json=gen())
    assert r.status_code == 404 and r.json()["error"]["message"].startswith(
        "models/gemini-9 is not found for API version v1beta, or is not supported for generateContent.")
    contents = [{"role": "user", "parts": [{"text": "x"}]},
                {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {"r": 1}}}]}]
    r = client.post(url(emus), headers=KEY, json={"contents": contents})
    assert r.status_code == 400 and "function response turn" in r.json()["error"]["message"]


def test_function_calls(emus: Emulators, client: httpx.Client) -> None:
    tools = [{"functionDeclarations": [{"name": "get_weather", "parameters": {"type": "OBJECT"}}]}]
    r = client.post(url(emus), headers=KEY, json=gen("EMULATE:parallel_tool_calls", tools=tools))
    cand = r.json()["candidates"][0]
    calls = [p["functionCall"] for p in cand["content"]["parts"]]
    assert calls == [{"name": "get_weather", "args": {"city": "Paris"}},
                     {"name": "get_weather", "args": {"city": "Tokyo"}}]
    assert cand["finishReason"] == "STOP"
    answer = {"functionResponse": {"name": "get_weather", "response": {"t": "21C"}}}
    contents = [gen("EMULATE:tool_call")["contents"][0], cand["content"], {"role": "user", "parts": [answer] * 2}]
    r = client.post(url(emus), headers=KEY, json={"contents": contents, "tools": tools})
    assert r.json()["candidates"][0]["content"]["parts"][0]["text"] == "Echo: tool result: 21C | 21C"


def test_safety_and_errors(emus: Emulators, client: httpx.Client) -> None:
    r = client.post(url(emus), headers=KEY, json=gen("EMULATE:prompt_blocked"))
    body = r.json()
    assert "candidates" not in body and body["promptFeedback"]["blockReason"] == "SAFETY"
    r = client.post(url(emus), headers=KEY, json=gen("EMULATE:content_filter"))
    assert r.json()["candidates"][0]["finishReason"] == "SAFETY"
    r = client.post(url(emus), headers=KEY, json=gen("EMULATE:error=429"))
    err = r.json()["error"]
    assert r.status_code == 429 and err["status"] == "RESOURCE_EXHAUSTED"
    assert {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "3s"} in err["details"]


def test_sse_stream(emus: Emulators, client: httpx.Client) -> None:
    r = client.post(url(emus, method="streamGenerateContent") + "?alt=sse", headers=KEY,
                    json=gen("one two three four five"))
    assert r.headers["content-type"] == "text/event-stream"
    assert r.text.endswith("\r\n\r\n") and "[DONE]" not in r.text
    events = [json.loads(e[len("data: "):]) for e in r.text.split("\r\n\r\n") if e]
    assert len(events) > 1
    text = "".join(e["candidates"][0]["content"]["parts"][0]["text"] for e in events)
    assert text == "Echo: one two three four five"
    assert events[-1]["candidates"][0]["finishReason"] == "STOP"
    assert events[-1]["usageMetadata"]["candidatesTokenCount"] == 6
    counts = [e["usageMetadata"]["candidatesTokenCount"] for e in events]
    assert counts == sorted(counts)


def test_embeddings(emus: Emulators, client: httpx.Client) -> None:
    r = client.post(url(emus, "gemini-embedding-001", "embedContent"), headers=KEY,
                    json={"content": {"parts": [{"text": "a"}]}, "outputDimensionality": 768})
    assert len(r.json()["embedding"]["values"]) == 768
    batch = {"requests": [{"model": "models/text-embedding-004", "content": {"parts": [{"text": t}]}}
                          for t in ("a", "b")]}
    r = client.post(url(emus, "text-embedding-004", "batchEmbedContents"), headers=KEY, json=batch)
    assert [len(e["values"]) for e in r.json()["embeddings"]] == [768, 768]
    batch["requests"][1]["model"] = "models/gemini-embedding-001"
    r = client.post(url(emus, "text-embedding-004", "batchEmbedContents"), headers=KEY, json=batch)
    assert r.status_code == 400


def vertex_url(emus: Emulators, model: str = "gemini-2.5-flash", method: str = "generateContent",
               project: str = fakes.VERTEX_PROJECT) -> str:
    return (f"{emus.vertex}/v1/projects/{project}/locations/{fakes.VERTEX_LOCATION}/publishers/google/models/"
            f"{model}:{method}")


@pytest.fixture(scope="module")
def token(emus: Emulators) -> str:
    creds = service_account.Credentials.from_service_account_file(emus.service_account_file, scopes=SCOPES)
    creds.refresh(google.auth.transport.requests.Request())
    assert creds.valid
    return str(creds.token)


def test_vertex_with_google_auth(emus: Emulators, client: httpx.Client, token: str) -> None:
    before = emus.token_requests()
    assert before >= 1
    auth = {"authorization": f"Bearer {token}"}
    r = client.post(vertex_url(emus), headers=auth, json=gen("hi vertex"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["candidates"][0]["content"]["parts"][0]["text"] == "Echo: hi vertex"
    assert body["createTime"] and body["usageMetadata"]["trafficType"] == "ON_DEMAND"
    r = client.post(vertex_url(emus, project="other"), headers=auth, json=gen())
    assert r.status_code == 403 and r.json()["error"]["status"] == "PERMISSION_DENIED"
    r = client.post(vertex_url(emus, "text-embedding-004", "predict"), headers=auth,
                    json={"instances": [{"content": "a b", "task_type": "RETRIEVAL_QUERY"}],
                          "parameters": {"outputDimensionality": 64}})
    pred = r.json()["predictions"][0]["embeddings"]
    assert len(pred["values"]) == 64 and pred["statistics"] == {"token_count": 2, "truncated": False}
    for bad in ({"authorization": "Bearer ya29.forged"}, {}, KEY):
        r = client.post(vertex_url(emus), headers=bad, json=gen())
        assert r.status_code == 401 and r.json()["error"]["status"] == "UNAUTHENTICATED"
    r = client.post(vertex_url(emus), headers={"authorization": "Bearer ya29.forged"}, json=gen())
    assert r.json()["error"]["message"].startswith("Request had invalid authentication credentials.")


def test_token_endpoint_rejects_bad_jwt(emus: Emulators, client: httpx.Client, tmp_path: Any) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    info = json.loads(open(emus.service_account_file).read())
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    forged = service_account.Credentials.from_service_account_info({**info, "private_key": other}, scopes=SCOPES)
    before = emus.token_requests()
    with pytest.raises(google.auth.exceptions.RefreshError, match="invalid_grant"):
        forged.refresh(google.auth.transport.requests.Request())
    r = client.post(f"{emus.vertex}/token", data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                                                   "assertion": "not.a.jwt"})
    assert r.status_code == 400
    assert r.json() == {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
    assert emus.token_requests() == before


def test_vertex_token_expires(tmp_path: Any, client: httpx.Client) -> None:
    from addon.emulators.runner import start_emulators

    emus = start_emulators(tmp_path, token_ttl=1)
    try:
        creds = service_account.Credentials.from_service_account_file(emus.service_account_file, scopes=SCOPES)
        creds.refresh(google.auth.transport.requests.Request())
        auth = {"authorization": f"Bearer {creds.token}"}
        assert client.post(vertex_url(emus), headers=auth, json=gen()).status_code == 200
        time.sleep(1.2)
        r = client.post(vertex_url(emus), headers=auth, json=gen())
        assert r.status_code == 401 and r.json()["error"]["status"] == "UNAUTHENTICATED"
        assert emus.token_requests() == 1
    finally:
        emus.stop()


def test_vertex_streams(emus: Emulators, client: httpx.Client, token: str) -> None:
    auth = {"authorization": f"Bearer {token}"}
    r = client.post(vertex_url(emus, method="streamGenerateContent") + "?alt=sse", headers=auth,
                    json=gen("a b c d e"))
    events = [json.loads(e[len("data: "):]) for e in r.text.split("\r\n\r\n") if e]
    assert all(e["createTime"] and e["usageMetadata"]["trafficType"] == "ON_DEMAND" for e in events)
    # without alt=sse the endpoint streams one JSON array
    r = client.post(vertex_url(emus, method="streamGenerateContent"), headers=auth, json=gen("a b c d e"))
    arr = r.json()
    assert "".join(e["candidates"][0]["content"]["parts"][0]["text"] for e in arr) == "Echo: a b c d e"
    r = client.post(url(emus, method="streamGenerateContent") + "?alt=sse", headers=KEY,
                    json=gen("EMULATE:stream_exception a b c d e f g h i"))
    last = json.loads(r.text.split("\r\n\r\n")[-2][len("data: "):])
    assert last["error"]["status"] == "INTERNAL"


def test_scripted_401_is_each_apis_rejected_credential(emus: Emulators, client: httpx.Client, token: str) -> None:
    r = client.post(url(emus), headers=KEY, json=gen("EMULATE:error=401"))
    assert r.status_code == 400
    assert r.json()["error"]["details"][0]["reason"] == "API_KEY_INVALID"
    r = client.post(vertex_url(emus), headers={"authorization": f"Bearer {token}"}, json=gen("EMULATE:error=401"))
    assert r.status_code == 401 and r.json()["error"]["status"] == "UNAUTHENTICATED"


def test_mode_any_always_calls_a_function(emus: Emulators, client: httpx.Client) -> None:
    body = gen("plain", tools=[{"functionDeclarations": [{"name": "get_weather"}]}],
               toolConfig={"functionCallingConfig": {"mode": "ANY"}})
    r = client.post(url(emus), headers=KEY, json=body)
    parts = r.json()["candidates"][0]["content"]["parts"]
    assert parts[0]["functionCall"] == {"name": "get_weather", "args": {"answer": "Echo: plain"}}


def test_labels_exist_on_vertex_only(emus: Emulators, client: httpx.Client, token: str) -> None:
    r = client.post(url(emus), headers=KEY, json=gen(labels={"user": "u1"}))
    assert r.status_code == 400 and 'Unknown name "labels"' in r.json()["error"]["message"]
    auth = {"authorization": f"Bearer {token}"}
    assert client.post(vertex_url(emus), headers=auth, json=gen(labels={"user": "u1"})).status_code == 200
    for bad in ({"user": "Alice"}, {"1user": "u"}, {"user": "a" * 64}):
        r = client.post(vertex_url(emus), headers=auth, json=gen(labels=bad))
        assert r.status_code == 400 and r.json()["error"]["status"] == "INVALID_ARGUMENT", bad
