from __future__ import annotations

import datetime as dt
import json
from typing import Any
from unittest import mock
from urllib.parse import quote

import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.eventstream import EventStreamBuffer

from addon.emulators import fakes
from addon.emulators.runner import Emulators

SONNET = "us.anthropic.claude-3-5-sonnet-20241022-v2:0"
LONG = Credentials(fakes.AWS_ACCESS_KEY_ID, fakes.AWS_SECRET_ACCESS_KEY)
TEMP = Credentials(fakes.AWS_TEMP_ACCESS_KEY_ID, fakes.AWS_TEMP_SECRET_ACCESS_KEY, fakes.AWS_SESSION_TOKEN)


def signed(emus: Emulators, model: str, op: str, body: Any, *, creds: Credentials = LONG,
           region: str = fakes.AWS_REGION, service: str = "bedrock", safe: str = "",
           when: dt.datetime | None = None) -> tuple[str, dict[str, str], bytes]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    url = f"{emus.bedrock}/model/{quote(model, safe=safe)}/{op}"
    req = AWSRequest(method="POST", url=url, data=data, headers={"Content-Type": "application/json"})
    if when is None:
        SigV4Auth(creds, service, region).add_auth(req)
    else:
        with mock.patch("botocore.auth.get_current_datetime", return_value=when):
            SigV4Auth(creds, service, region).add_auth(req)
    return url, dict(req.headers.items()), data


def send(client: httpx.Client, url: str, headers: dict[str, str], data: bytes) -> httpx.Response:
    return client.post(url, headers=headers, content=data)


def converse(text: str = "hello bedrock", **extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": [{"text": text}]}], **extra}


def error_type(r: httpx.Response) -> str:
    return r.headers["x-amzn-ErrorType"].split(":")[0]


def test_signed_converse_accepted(emus: Emulators, client: httpx.Client) -> None:
    url, headers, data = signed(emus, SONNET, "converse", converse())
    assert "%3A0" in url
    r = send(client, url, headers, data)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["output"]["message"] == {"content": [{"text": "Echo: hello bedrock"}], "role": "assistant"}
    assert body["stopReason"] == "end_turn"
    assert body["usage"]["inputTokens"] == 2 and body["usage"]["outputTokens"] == 3
    assert body["usage"]["totalTokens"] == 5
    assert body["metrics"]["latencyMs"] >= 1
    assert r.headers["x-amzn-RequestId"] and r.headers["content-type"] == "application/json"


def test_raw_colon_and_temp_credentials_accepted(emus: Emulators, client: httpx.Client) -> None:
    url, headers, data = signed(emus, SONNET, "converse", converse(), safe=":", creds=TEMP)
    assert ":0/converse" in url and "x-amz-security-token" in {k.lower() for k in headers}
    assert send(client, url, headers, data).status_code == 200


def test_rejections(emus: Emulators, client: httpx.Client) -> None:
    url, headers, data = signed(emus, SONNET, "converse", converse())
    r = send(client, url, headers, data.replace(b"hello", b"HELLO"))
    assert r.status_code == 403 and error_type(r) == "InvalidSignatureException"
    assert r.json()["message"].startswith("The request signature we calculated does not match")

    bad_secret = Credentials(fakes.AWS_ACCESS_KEY_ID, "not-the-secret")
    r = send(client, *signed(emus, SONNET, "converse", converse(), creds=bad_secret))
    assert r.status_code == 403 and error_type(r) == "InvalidSignatureException"

    r = send(client, *signed(emus, SONNET, "converse", converse(), region="eu-west-1"))
    assert r.status_code == 403 and r.json()["message"].startswith("Credential should be scoped to a valid region")

    r = send(client, *signed(emus, SONNET, "converse", converse(), service="bedrock-runtime"))
    assert r.status_code == 403 and "correct service: 'bedrock'" in r.json()["message"]

    stale = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(minutes=10)
    r = send(client, *signed(emus, SONNET, "converse", converse(), when=stale))
    assert r.status_code == 403 and r.json()["message"].startswith("Signature expired:")

    unknown = Credentials("AKIAUNKNOWNKEY000000", fakes.AWS_SECRET_ACCESS_KEY)
    r = send(client, *signed(emus, SONNET, "converse", converse(), creds=unknown))
    assert r.status_code == 403 and error_type(r) == "UnrecognizedClientException"
    assert r.json() == {"message": "The security token included in the request is invalid."}

    no_token = Credentials(fakes.AWS_TEMP_ACCESS_KEY_ID, fakes.AWS_TEMP_SECRET_ACCESS_KEY)
    r = send(client, *signed(emus, SONNET, "converse", converse(), creds=no_token))
    assert r.status_code == 403 and error_type(r) == "UnrecognizedClientException"

    url, headers, data = signed(emus, SONNET, "converse", converse(), creds=TEMP)
    headers["X-Amz-Security-Token"] = "wrong"
    assert error_type(send(client, url, headers, data)) == "UnrecognizedClientException"

    r = client.post(url, content=data, headers={"content-type": "application/json"})
    assert r.status_code == 403 and error_type(r) == "MissingAuthenticationTokenException"

    # %3A signed as if it were a raw ':' (the classic single-encoding bug) must fail
    url, headers, data = signed(emus, SONNET, "converse", converse(), safe=":")
    r = send(client, url.replace(":0/", "%3A0/"), headers, data)
    assert r.status_code == 403 and error_type(r) == "InvalidSignatureException"


def test_validation(emus: Emulators, client: httpx.Client) -> None:
    r = send(client, *signed(emus, "anthropic.claude-9", "converse", converse()))
    assert r.status_code == 400 and error_type(r) == "ValidationException"
    assert r.json()["message"] == "The provided model identifier is invalid."
    r = send(client, *signed(emus, SONNET, "converse", converse(foo=1)))
    assert r.status_code == 400 and "extraneous key [foo]" in r.json()["message"]
    history = {"messages": [
        {"role": "user", "content": [{"text": "x"}]},
        {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": "f", "input": {}}}]},
        {"role": "user", "content": [{"toolResult": {"toolUseId": "t1", "content": [{"text": "ok"}]}}]}]}
    r = send(client, *signed(emus, SONNET, "converse", history))
    assert r.json()["message"] == ("The toolConfig field must be defined when using toolUse and toolResult "
                                   "content blocks.")
    tool_config = {"tools": [{"toolSpec": {"name": "f", "inputSchema": {"json": {"type": "object"}}}}]}
    r = send(client, *signed(emus, SONNET, "converse", {**history, "toolConfig": tool_config}))
    assert r.status_code == 200 and r.json()["output"]["message"]["content"][0]["text"] == "Echo: tool result: ok"
    bad = {"messages": [{"role": "assistant", "content": [{"text": "x"}]}]}
    assert "start with a user message" in send(client, *signed(emus, SONNET, "converse", bad)).json()["message"]
    r = send(client, *signed(emus, SONNET, "converse", converse(inferenceConfig={"maxTokens": "5"})))
    assert r.status_code == 400


def test_tool_use_and_errors(emus: Emulators, client: httpx.Client) -> None:
    tool_config = {"tools": [{"toolSpec": {"name": "get_weather", "inputSchema": {"json": {"type": "object"}}}}]}
    r = send(client, *signed(emus, SONNET, "converse", converse("EMULATE:tool_call", toolConfig=tool_config)))
    body = r.json()
    assert body["stopReason"] == "tool_use"
    tu = body["output"]["message"]["content"][1]["toolUse"]
    assert tu["name"] == "get_weather" and tu["input"] == {"city": "Paris"}
    r = send(client, *signed(emus, SONNET, "converse", converse("EMULATE:error=429")))
    assert r.status_code == 429 and error_type(r) == "ThrottlingException"
    r = send(client, *signed(emus, SONNET, "converse", converse("EMULATE:content_filter")))
    assert r.json()["stopReason"] == "content_filtered"


def decode(raw: bytes) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    buf = EventStreamBuffer()
    buf.add_data(raw)
    return [(m.headers, json.loads(m.payload)) for m in buf]


def test_converse_stream_frames(emus: Emulators, client: httpx.Client) -> None:
    tool_config = {"tools": [{"toolSpec": {"name": "get_weather", "inputSchema": {"json": {"type": "object"}}}}]}
    r = send(client, *signed(emus, SONNET, "converse-stream",
                             converse("EMULATE:tool_call now", toolConfig=tool_config)))
    assert r.status_code == 200 and r.headers["content-type"] == "application/vnd.amazon.eventstream"
    frames = decode(r.content)
    types = [h[":event-type"] for h, _ in frames]
    assert types[0] == "messageStart" and types[-2:] == ["messageStop", "metadata"]
    assert all(h[":message-type"] == "event" and h[":content-type"] == "application/json" for h, _ in frames)
    assert all("p" in p for _, p in frames)
    start = next(p for h, p in frames if h[":event-type"] == "contentBlockStart")
    assert start["start"]["toolUse"]["name"] == "get_weather"
    args = "".join(p["delta"]["toolUse"]["input"] for h, p in frames
                   if h[":event-type"] == "contentBlockDelta" and "toolUse" in p["delta"])
    assert json.loads(args) == {"city": "Paris"}
    assert frames[-2][1]["stopReason"] == "tool_use" and frames[-1][1]["usage"]["totalTokens"] > 0


def test_stream_text_split_frames_and_exception(emus: Emulators, client: httpx.Client) -> None:
    r = send(client, *signed(emus, SONNET, "converse-stream", converse("EMULATE:split_frames a b c")))
    frames = decode(r.content)
    text = "".join(p["delta"]["text"] for h, p in frames if h[":event-type"] == "contentBlockDelta")
    assert text == "Echo: EMULATE:split_frames a b c"
    r = send(client, *signed(emus, SONNET, "converse-stream", converse("EMULATE:stream_exception=throttling a b")))
    frames = decode(r.content)
    assert r.status_code == 200 and frames[-1][0][":message-type"] == "exception"
    assert frames[-1][0][":exception-type"] == "throttlingException"


def test_invoke_embeddings(emus: Emulators, client: httpx.Client) -> None:
    r = send(client, *signed(emus, "amazon.titan-embed-text-v2:0", "invoke", {"inputText": "hi there",
                                                                                "dimensions": 256}))
    body = r.json()
    assert len(body["embedding"]) == 256 and body["embeddingsByType"]["float"] == body["embedding"]
    assert body["inputTextTokenCount"] == 2 and r.headers["X-Amzn-Bedrock-Input-Token-Count"] == "2"
    assert r.headers["X-Amzn-Bedrock-Invocation-Latency"]
    r = send(client, *signed(emus, "amazon.titan-embed-text-v2:0", "invoke", {"inputText": "x", "dimensions": 300}))
    assert r.status_code == 400
    r = send(client, *signed(emus, "cohere.embed-english-v3", "invoke",
                             {"texts": ["a", "b"], "input_type": "search_document"}))
    body = r.json()
    assert body["response_type"] == "embeddings_floats" and len(body["embeddings"]) == 2
    assert body["texts"] == ["a", "b"] and len(body["embeddings"][0]) == 1024
    r = send(client, *signed(emus, "cohere.embed-english-v3", "invoke", {"texts": ["a"]}))
    assert r.status_code == 400 and "input_type" in r.json()["message"]


@pytest.mark.parametrize("model", ["anthropic.claude-3-haiku-20240307-v1:0", SONNET])
def test_boto3_client_end_to_end(emus: Emulators, model: str) -> None:
    import boto3

    brt = boto3.client("bedrock-runtime", region_name=fakes.AWS_REGION, endpoint_url=emus.bedrock,
                       aws_access_key_id=fakes.AWS_TEMP_ACCESS_KEY_ID,
                       aws_secret_access_key=fakes.AWS_TEMP_SECRET_ACCESS_KEY,
                       aws_session_token=fakes.AWS_SESSION_TOKEN)
    out = brt.converse(modelId=model, messages=[{"role": "user", "content": [{"text": "boto"}]}])
    assert out["output"]["message"]["content"][0]["text"] == "Echo: boto"
    stream = brt.converse_stream(modelId=model, messages=[{"role": "user", "content": [{"text": "boto s"}]}])
    events = list(stream["stream"])
    text = "".join(e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e)
    assert text == "Echo: boto s" and "metadata" in events[-1]


def test_forced_tool_choice_always_calls_without_preamble(emus: Emulators, client: httpx.Client) -> None:
    spec = {"toolSpec": {"name": "json_response", "inputSchema": {"json": {"type": "object"}}}}
    for choice in ({"tool": {"name": "json_response"}}, {"any": {}}):
        tool_config = {"tools": [spec], "toolChoice": choice}
        r = send(client, *signed(emus, SONNET, "converse", converse("answer me", toolConfig=tool_config)))
        body = r.json()
        assert body["stopReason"] == "tool_use"
        assert [list(b) for b in body["output"]["message"]["content"]] == [["toolUse"]]
        assert body["output"]["message"]["content"][0]["toolUse"]["input"] == {"answer": "Echo: answer me"}


def test_scripted_401_is_bedrocks_unknown_credential_403(emus: Emulators, client: httpx.Client) -> None:
    r = send(client, *signed(emus, SONNET, "converse", converse("EMULATE:error=401")))
    assert r.status_code == 403 and error_type(r) == "UnrecognizedClientException"


def test_stream_cut_ends_without_finish(emus: Emulators, client: httpx.Client) -> None:
    r = send(client, *signed(emus, SONNET, "converse-stream", converse("EMULATE:stream_exception=cut a b c d")))
    kinds = [h[":event-type"] for h, _ in decode(r.content)]
    assert kinds == ["messageStart", "contentBlockDelta", "contentBlockDelta"]


def test_request_metadata_validated_like_converse(emus: Emulators, client: httpx.Client) -> None:
    ok = send(client, *signed(emus, SONNET, "converse", converse(requestMetadata={"user": "alice@example.com"})))
    assert ok.status_code == 200, ok.text
    for bad in ({}, {"user": "emoji 🙂"}, {f"k{i}": "v" for i in range(17)}, {"user": 1}):
        r = send(client, *signed(emus, SONNET, "converse", converse(requestMetadata=bad)))
        assert r.status_code == 400 and error_type(r) == "ValidationException", bad
