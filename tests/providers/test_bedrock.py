"""AWS Bedrock provider: request/response translation, error mapping, SigV4 and ConverseStream."""

from __future__ import annotations

import asyncio
import base64
import datetime
import hashlib
import hmac
import json
import struct
import threading
import zlib
from pathlib import Path
from typing import Any

import botocore.auth
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials

from addon.emulators.fakes import (
    AWS_ACCESS_KEY_ID,
    AWS_SECRET_ACCESS_KEY,
    AWS_SESSION_TOKEN,
    AWS_TEMP_ACCESS_KEY_ID,
    AWS_TEMP_SECRET_ACCESS_KEY,
)
from addon.errors import ByokError, InvalidRequest
from addon.providers import bedrock_embeddings as emb
from addon.providers.base import UpstreamRequest
from addon.providers.bedrock import (
    BedrockConfig,
    BedrockConnection,
    BedrockTranslator,
    normalized_endpoint,
    sign,
)

FIXTURES = Path(__file__).parent / "fixtures" / "bedrock"
CLAUDE = "anthropic.claude-3-haiku-20240307-v1:0"
PROFILE = "us.anthropic.claude-3-5-sonnet-20241022-v2:0"
BASE = "https://bedrock-runtime.us-east-1.amazonaws.com"
PNG_B64 = base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def config(**kwargs: Any) -> BedrockConfig:
    return BedrockConfig.model_validate({"type": "bedrock", "region": "us-east-1", **kwargs})


def translator(model: str = CLAUDE, operation: str = "chat", *, drop: bool = False, **cfg: Any) -> BedrockTranslator:
    return BedrockTranslator(config(**cfg), model, operation, drop_unsupported_params=drop)  # type: ignore[arg-type]


def chat_body(**kwargs: Any) -> dict:
    return {"model": "platform-alias", "messages": [{"role": "user", "content": "hi"}], **kwargs}


def translate(body: dict, **kwargs: Any) -> dict:
    return json.loads(translator(**kwargs).request(body).body)


@pytest.fixture(autouse=True)
def isolated_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_DEFAULT_PROFILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                 "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")


FIXED_NOW = datetime.datetime(2026, 12, 4, 19, 29, 44)


@pytest.fixture
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: FIXED_NOW)


# --- config -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("region", ["us-east-1", "eu-central-2", "us-gov-west-1", "ap-southeast-3", "cn-north-1"])
def test_region_accepted(region: str) -> None:
    assert config(region=region).region == region


@pytest.mark.parametrize("region", ["US-EAST-1", "us-east", "useast1", "https://us-east-1", "us_east_1", ""])
def test_region_rejected_says_what_a_region_looks_like(region: str) -> None:
    with pytest.raises(ValueError, match="a region looks like us-east-1"):
        config(region=region)


def test_default_and_custom_endpoints() -> None:
    assert config().base_url == BASE
    assert config(region="cn-north-1").base_url == "https://bedrock-runtime.cn-north-1.amazonaws.com.cn"
    assert config(endpoint="HTTPS://VPCE.Example.com:443/").base_url == "https://vpce.example.com"
    assert config(endpoint="http://127.0.0.1:80").base_url == "http://127.0.0.1"
    assert config(endpoint="http://127.0.0.1:4566/bedrock/").base_url == "http://127.0.0.1:4566/bedrock"
    assert normalized_endpoint("https://h:8443") == "https://h:8443"
    with pytest.raises(ValueError, match="http"):
        config(endpoint="ftp://example.com")


def test_keys_both_or_neither(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEY_ID", AWS_ACCESS_KEY_ID)
    with pytest.raises(ValueError, match="both access_key_id and secret_access_key"):
        config(access_key_id="${KEY_ID}")
    with pytest.raises(ValueError, match="session_token needs"):
        config(session_token="${KEY_ID}")
    with pytest.raises(ValueError, match="either profile or explicit keys"):
        config(profile="prod", access_key_id="${KEY_ID}", secret_access_key="${KEY_ID}")
    with pytest.raises(ValueError, match="literal secret"):
        config(access_key_id=AWS_ACCESS_KEY_ID, secret_access_key="${KEY_ID}")


# --- connection and SigV4 ---------------------------------------------------------------------------


def test_no_credentials_is_a_clear_problem() -> None:
    conn = BedrockConnection("bedrock", config())
    assert conn.credential_problem() == (
        "no AWS credentials found for provider 'bedrock' (default AWS credential chain): set "
        "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or an instance role"
    )
    assert conn.identity()["credential"] == "unresolved"


def test_missing_profile_is_a_clear_problem() -> None:
    problem = BedrockConnection("acme", config(profile="nope")).credential_problem()
    assert problem is not None
    assert problem.startswith("AWS credentials for provider 'acme' could not be loaded:")
    assert "nope" in problem


def test_unset_explicit_key_is_a_clear_problem() -> None:
    conn = BedrockConnection("acme", config(access_key_id="${UNSET_KEY_ID}", secret_access_key="${UNSET_SECRET}"))
    assert conn.credential_problem() == (
        "AWS credentials for provider 'acme': environment variable UNSET_KEY_ID is not set; export it and restart"
    )


def test_identity_from_env_chain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", AWS_ACCESS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET_ACCESS_KEY)
    conn = BedrockConnection("bedrock", config(region="eu-central-1"))
    assert conn.credential_problem() is None
    assert conn.identity() == {
        "type": "bedrock",
        "region": "eu-central-1",
        "endpoint": "https://bedrock-runtime.eu-central-1.amazonaws.com",
        "credential": AWS_ACCESS_KEY_ID,
    }
    assert AWS_SECRET_ACCESS_KEY not in repr(conn.identity())
    assert conn.describe() == "eu-central-1"


def _independent_signature(
    request: UpstreamRequest, secret: str, region: str, signed: list[str], canonical_uri: str
) -> str:
    """SigV4 written out from the AWS spec, without botocore."""
    amz_date = request.headers["X-Amz-Date"]
    lower = {k.lower(): v for k, v in request.headers.items()}
    lower["host"] = "bedrock-runtime.us-east-1.amazonaws.com"
    canonical_headers = "".join(f"{name}:{lower[name].strip()}\n" for name in signed)
    canonical = "\n".join([
        "POST", canonical_uri, "", canonical_headers, ";".join(signed), hashlib.sha256(request.body).hexdigest(),
    ])
    scope = f"{amz_date[:8]}/{region}/bedrock/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = f"AWS4{secret}".encode()
    for part in (amz_date[:8], region, "bedrock", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def _botocore_signature(request: UpstreamRequest, access: str, secret: str, token: str | None) -> tuple[str, str]:
    """botocore's canonical request and signature over the headers actually sent (minus Authorization)."""
    headers = {k: v for k, v in request.headers.items() if k != "Authorization"}
    aws = AWSRequest(method=request.method, url=request.url, data=request.body, headers=headers)
    aws.context["timestamp"] = request.headers["X-Amz-Date"]
    auth = SigV4Auth(ReadOnlyCredentials(access, secret, token, None), "bedrock", "us-east-1")
    canonical = auth.canonical_request(aws)
    return canonical, auth.signature(auth.string_to_sign(aws, canonical), aws)


def test_sigv4_long_term_keys(monkeypatch: pytest.MonkeyPatch, fixed_clock: None) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", AWS_ACCESS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET_ACCESS_KEY)
    conn = BedrockConnection("bedrock", config())
    unsigned = translator(PROFILE).request(chat_body())
    assert unsigned.url == f"{BASE}/model/us.anthropic.claude-3-5-sonnet-20241022-v2%3A0/converse"
    signed = asyncio.run(conn.authorize(unsigned))

    assert signed.url == unsigned.url and signed.body == unsigned.body
    assert set(signed.headers) == {"content-type", "Authorization", "X-Amz-Date"}
    assert "host" not in {k.lower() for k in signed.headers}
    assert signed.headers["X-Amz-Date"] == "20261204T192944Z"
    names = ["content-type", "host", "x-amz-date"]
    expected = _independent_signature(
        signed, AWS_SECRET_ACCESS_KEY, "us-east-1", names,
        "/model/us.anthropic.claude-3-5-sonnet-20241022-v2%253A0/converse",
    )
    assert signed.headers["Authorization"] == (
        f"AWS4-HMAC-SHA256 Credential={AWS_ACCESS_KEY_ID}/20261204/us-east-1/bedrock/aws4_request, "
        f"SignedHeaders=content-type;host;x-amz-date, Signature={expected}"
    )
    canonical, signature = _botocore_signature(signed, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, None)
    assert "/model/us.anthropic.claude-3-5-sonnet-20241022-v2%253A0/converse\n" in canonical
    assert signature == expected


def test_sigv4_session_token_is_signed(monkeypatch: pytest.MonkeyPatch, fixed_clock: None) -> None:
    monkeypatch.setenv("TEMP_ID", AWS_TEMP_ACCESS_KEY_ID)
    monkeypatch.setenv("TEMP_SECRET", AWS_TEMP_SECRET_ACCESS_KEY)
    monkeypatch.setenv("TEMP_TOKEN", AWS_SESSION_TOKEN)
    conn = BedrockConnection("bedrock", config(
        access_key_id="${TEMP_ID}", secret_access_key="${TEMP_SECRET}", session_token="${TEMP_TOKEN}",
    ))
    assert conn.identity()["credential"] == AWS_TEMP_ACCESS_KEY_ID
    arn = "arn:aws:bedrock:us-east-1:000000000000:inference-profile/us.cohere.embed-english-v3"
    unsigned = translator(arn, "embeddings").request({"input": "x"})
    assert unsigned.url == (
        f"{BASE}/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A000000000000%3Ainference-profile%2F"
        "us.cohere.embed-english-v3/invoke"
    )
    signed = asyncio.run(conn.authorize(unsigned))
    assert signed.headers["X-Amz-Security-Token"] == AWS_SESSION_TOKEN
    assert "SignedHeaders=accept;content-type;host;x-amz-date;x-amz-security-token," in signed.headers["Authorization"]
    expected = _independent_signature(
        signed, AWS_TEMP_SECRET_ACCESS_KEY, "us-east-1",
        ["accept", "content-type", "host", "x-amz-date", "x-amz-security-token"],
        "/model/arn%253Aaws%253Abedrock%253Aus-east-1%253A000000000000%253Ainference-profile%252F"
        "us.cohere.embed-english-v3/invoke",
    )
    assert signed.headers["Authorization"].endswith(f"Signature={expected}")
    _, signature = _botocore_signature(signed, AWS_TEMP_ACCESS_KEY_ID, AWS_TEMP_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN)
    assert signature == expected
    for secret in (AWS_TEMP_SECRET_ACCESS_KEY,):
        assert secret not in repr(signed.headers) and secret not in repr(conn.identity())


def test_resigning_replaces_previous_signature(fixed_clock: None) -> None:
    creds = ReadOnlyCredentials(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, None, None)
    request = translator().request(chat_body())
    stale = request.with_headers({"authorization": "old", "x-amz-security-token": "stale-token"})
    assert sign(stale, creds, "us-east-1") == sign(request, creds, "us-east-1")


@pytest.mark.parametrize(("endpoint", "host"), [
    ("https://bedrock-runtime.us-east-1.amazonaws.com:443", "bedrock-runtime.us-east-1.amazonaws.com"),
    ("http://127.0.0.1:8080", "127.0.0.1:8080"),
])
def test_signed_host_matches_url_authority(endpoint: str, host: str, fixed_clock: None) -> None:
    creds = ReadOnlyCredentials(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, None, None)
    request = translator(endpoint=endpoint).request(chat_body())
    assert request.url.split("/")[2] == host
    signed = sign(request, creds, "us-east-1")
    canonical, _ = _botocore_signature(signed, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, None)
    assert f"\nhost:{host}\n" in canonical


def test_refreshable_credentials_refresh_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    from botocore.credentials import RefreshableCredentials

    threads: list[bool] = []
    expired = {"access_key": "ASIAEXPIREDKEY", "secret_key": "expired", "token": "expired",
               "expiry_time": "2000-01-01T00:00:00Z"}

    def refresh() -> dict:
        threads.append(threading.current_thread() is threading.main_thread())
        return {"access_key": AWS_TEMP_ACCESS_KEY_ID, "secret_key": AWS_TEMP_SECRET_ACCESS_KEY,
                "token": AWS_SESSION_TOKEN, "expiry_time": "2999-01-01T00:00:00Z"}

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", AWS_ACCESS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET_ACCESS_KEY)
    conn = BedrockConnection("bedrock", config())
    conn._credentials = RefreshableCredentials.create_from_metadata(expired, refresh, "test")
    signed = asyncio.run(conn.authorize(translator().request(chat_body())))
    assert threads == [False]
    assert signed.headers["X-Amz-Security-Token"] == AWS_SESSION_TOKEN
    assert conn.identity()["credential"] == AWS_TEMP_ACCESS_KEY_ID
    signed = asyncio.run(conn.authorize(translator().request(chat_body())))
    assert threads == [False]  # fresh credentials are not refreshed again


def test_failed_refresh_is_a_503(monkeypatch: pytest.MonkeyPatch) -> None:
    from botocore.credentials import RefreshableCredentials

    def refresh() -> dict:
        raise RuntimeError("sso token expired")

    conn = BedrockConnection("acme", config(access_key_id="${X}", secret_access_key="${X}"))
    conn._credentials = RefreshableCredentials.create_from_metadata(
        {"access_key": "a", "secret_key": "s", "token": "t", "expiry_time": "2000-01-01T00:00:00Z"}, refresh, "test")
    with pytest.raises(ByokError) as info:
        asyncio.run(conn.authorize(translator().request(chat_body())))
    assert info.value.status == 503
    assert info.value.message == (
        "The AWS credentials of provider 'acme' could not be refreshed (RuntimeError: sso token expired)"
    )


# --- chat request -----------------------------------------------------------------------------------


def test_request_system_merge_params_and_url() -> None:
    request = translator(PROFILE).request({
        "model": "platform-alias",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
            {"role": "user", "content": "Capital of France?"},
            {"role": "user", "content": [{"type": "text", "text": "And Germany?"}]},
            {"role": "assistant", "content": "Paris."},
            {"role": "assistant", "content": [{"type": "text", "text": " Berlin."}]},
            {"role": "user", "content": "Thanks", "name": "ada"},
        ],
        "temperature": 0.2, "top_p": 0.9, "max_completion_tokens": 256, "stop": "END", "n": 1, "user": "u-1",
    })
    assert request.method == "POST"
    assert request.url == f"{BASE}/model/us.anthropic.claude-3-5-sonnet-20241022-v2%3A0/converse"
    assert request.headers == {"content-type": "application/json"}
    assert json.loads(request.body) == {
        "messages": [
            {"role": "user", "content": [{"text": "Capital of France?"}, {"text": "And Germany?"}]},
            {"role": "assistant", "content": [{"text": "Paris."}, {"text": " Berlin."}]},
            {"role": "user", "content": [{"text": "Thanks"}]},
        ],
        "system": [{"text": "Be brief."}, {"text": "Answer in French."}],
        "inferenceConfig": {"maxTokens": 256, "temperature": 0.2, "topP": 0.9, "stopSequences": ["END"]},
        "requestMetadata": {"user": "u-1"},
    }


def test_request_does_not_mutate_body() -> None:
    body = chat_body(tools=[{"type": "function", "function": {"name": "f"}}], stop=["a", "b"], max_tokens=5)
    snapshot = json.dumps(body, sort_keys=True)
    t = translator()
    first = t.request(body)
    assert t.request(body) == first
    assert json.dumps(body, sort_keys=True) == snapshot


def test_max_tokens_and_stop_list() -> None:
    assert translate(chat_body(max_tokens=10, stop=["x", "y"]))["inferenceConfig"] == {
        "maxTokens": 10, "stopSequences": ["x", "y"],
    }


def test_leading_assistant_is_a_clear_400() -> None:
    with pytest.raises(InvalidRequest, match="must start with a user message"):
        translate({"messages": [{"role": "system", "content": "s"}, {"role": "assistant", "content": "hi"}]})


@pytest.mark.parametrize(("param", "value"), [
    ("seed", 1), ("presence_penalty", 0.5), ("frequency_penalty", 0.5), ("logprobs", True),
    ("logit_bias", {"1": 2}), ("top_logprobs", 2), ("reasoning_effort", "low"),
])
def test_unsupported_params_are_named(param: str, value: Any) -> None:
    with pytest.raises(InvalidRequest) as info:
        translate(chat_body(**{param: value}))
    assert info.value.param == param
    assert f"Parameter '{param}' is not supported by provider type 'bedrock'" in info.value.message
    assert "messages" in translate(chat_body(**{param: value}), drop=True)


def test_harmless_params_dropped_and_unknown_rejected() -> None:
    assert translate(chat_body(logprobs=False, store=True)) == {
        "messages": [{"role": "user", "content": [{"text": "hi"}]}],
    }
    with pytest.raises(InvalidRequest, match="Unrecognized request argument supplied: bogus"):
        translate(chat_body(bogus=1), drop=True)


def test_n_must_be_one_and_parallel_tool_calls_false() -> None:
    with pytest.raises(InvalidRequest, match="n=1"):
        translate(chat_body(n=2))
    with pytest.raises(InvalidRequest, match="parallel_tool_calls: false"):
        translate(chat_body(parallel_tool_calls=False))
    assert "toolConfig" not in translate(chat_body(parallel_tool_calls=False), drop=True)


WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}}
WEATHER_SPEC = {"toolSpec": {
    "name": "get_weather", "description": "Weather for a city",
    "inputSchema": {"json": WEATHER_TOOL["function"]["parameters"]},
}}


@pytest.mark.parametrize(("choice", "expected"), [
    (None, None),
    ("auto", {"auto": {}}),
    ("required", {"any": {}}),
    ({"type": "function", "function": {"name": "get_weather"}}, {"tool": {"name": "get_weather"}}),
])
def test_tools_and_tool_choice(choice: Any, expected: dict | None) -> None:
    body = translate(chat_body(tools=[WEATHER_TOOL], tool_choice=choice))
    assert body["toolConfig"] == {"tools": [WEATHER_SPEC], **({"toolChoice": expected} if expected else {})}


def test_tool_choice_none_without_history_sends_no_tools() -> None:
    assert "toolConfig" not in translate(chat_body(tools=[WEATHER_TOOL], tool_choice="none"))


def test_tool_choice_naming_undeclared_tool() -> None:
    with pytest.raises(InvalidRequest, match="must name a function declared"):
        translate(chat_body(tools=[WEATHER_TOOL], tool_choice={"type": "function", "function": {"name": "x"}}))


TOOL_HISTORY = [
    {"role": "user", "content": "Weather in Paris and Rome?"},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
        {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}},
    ]},
    {"role": "tool", "tool_call_id": "call_1", "content": "21C"},
    {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "25C"}]},
]


def test_tool_history_translation() -> None:
    body = translate({"messages": TOOL_HISTORY, "tools": [WEATHER_TOOL]})
    assert body["messages"] == [
        {"role": "user", "content": [{"text": "Weather in Paris and Rome?"}]},
        {"role": "assistant", "content": [
            {"toolUse": {"toolUseId": "call_1", "name": "get_weather", "input": {"city": "Paris"}}},
            {"toolUse": {"toolUseId": "call_2", "name": "get_weather", "input": {"city": "Rome"}}},
        ]},
        {"role": "user", "content": [
            {"toolResult": {"toolUseId": "call_1", "content": [{"text": "21C"}], "status": "success"}},
            {"toolResult": {"toolUseId": "call_2", "content": [{"text": "25C"}], "status": "success"}},
        ]},
    ]
    assert body["toolConfig"] == {"tools": [WEATHER_SPEC]}


def test_tool_history_without_tools_keeps_tool_config() -> None:
    for extra in ({}, {"tool_choice": "none"}, {"tools": [WEATHER_TOOL], "tool_choice": "none"}):
        body = translate({"messages": TOOL_HISTORY, **extra})
        names = [spec["toolSpec"]["name"] for spec in body["toolConfig"]["tools"]]
        assert names == ["get_weather"]
        assert "toolChoice" not in body["toolConfig"]
    assert translate({"messages": TOOL_HISTORY})["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"] == {
        "json": {"type": "object"},
    }


def test_invalid_tool_arguments_are_a_400() -> None:
    messages = [dict(m) for m in TOOL_HISTORY[:2]]
    messages[1] = {"role": "assistant", "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "get_weather", "arguments": "{city: Paris"}},
    ]}
    with pytest.raises(InvalidRequest) as info:
        translate({"messages": messages})
    assert info.value.param == "messages[1].tool_calls[0].function.arguments"


def test_images() -> None:
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}", "detail": "high"}},
        {"type": "image_url", "image_url": {"url": f"data:image/jpg;base64,{PNG_B64}"}},
    ]
    assert translate({"messages": [{"role": "user", "content": content}]})["messages"][0]["content"] == [
        {"text": "What is this?"},
        {"image": {"format": "png", "source": {"bytes": PNG_B64}}},
        {"image": {"format": "jpeg", "source": {"bytes": PNG_B64}}},
    ]


@pytest.mark.parametrize(("url", "message"), [
    ("https://example.com/cat.png", "never fetches URLs"),
    ("data:image/bmp;base64,AAAA", "png, jpeg, gif or webp"),
    ("data:image/png;base64,not*base64", "not valid base64"),
])
def test_bad_images(url: str, message: str) -> None:
    body = {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}]}
    with pytest.raises(InvalidRequest, match=message) as info:
        translate(body)
    assert info.value.param == "messages[0].content[0]"


def test_unsupported_content_part() -> None:
    body = {"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]}
    with pytest.raises(InvalidRequest, match="'input_audio'"):
        translate(body)


@pytest.mark.parametrize(("response_format", "schema"), [
    ({"type": "json_object"}, {"type": "object"}),
    ({"type": "json_schema", "json_schema": {"name": "person", "schema": {"type": "object", "properties": {
        "name": {"type": "string"}}}}}, {"type": "object", "properties": {"name": {"type": "string"}}}),
])
def test_json_mode_request(response_format: dict, schema: dict) -> None:
    body = translate(chat_body(response_format=response_format))
    assert body["toolConfig"]["toolChoice"] == {"tool": {"name": "json_response"}}
    assert [spec["toolSpec"]["name"] for spec in body["toolConfig"]["tools"]] == ["json_response"]
    assert body["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"] == {"json": schema}
    assert "toolConfig" not in translate(chat_body(response_format={"type": "text"}))
    with pytest.raises(InvalidRequest, match="together with 'tools'"):
        translate(chat_body(response_format=response_format, tools=[WEATHER_TOOL]))


# --- chat response ----------------------------------------------------------------------------------


def test_text_response() -> None:
    t = translator()
    t.request(chat_body())
    response = t.response(200, {"x-amzn-RequestId": "7f2a9c1e-0000-4000-8000-000000000001"},
                          fixture("converse_text.json"))
    assert response.status == 200
    body = response.body
    assert body["id"] == "chatcmpl-7f2a9c1e-0000-4000-8000-000000000001"
    assert body["object"] == "chat.completion" and body["model"] == CLAUDE
    assert body["choices"] == [{"index": 0, "message": {
        "role": "assistant", "content": "Paris is the capital of France.", "refusal": None,
    }, "finish_reason": "stop", "logprobs": None}]
    assert body["usage"] == {"prompt_tokens": 25, "completion_tokens": 9, "total_tokens": 34}
    assert t.usage == body["usage"]


def test_tool_use_response_and_cache_usage() -> None:
    t = translator()
    t.request(chat_body(tools=[WEATHER_TOOL]))
    body = t.response(200, {}, fixture("converse_tool_use.json")).body
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "Let me look that up."
    assert choice["message"]["tool_calls"] == [
        {"id": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "type": "function",
         "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\",\"unit\":\"celsius\"}"}},
        {"id": "tooluse_Xq2bH1mHT3aY7vW0pPp2aA", "type": "function",
         "function": {"name": "get_time", "arguments": "{}"}},
    ]
    assert body["usage"] == {"prompt_tokens": 1510, "completion_tokens": 88, "total_tokens": 1598,
                             "prompt_tokens_details": {"cached_tokens": 1000}}


def test_tool_only_response_has_null_content() -> None:
    payload = {"output": {"message": {"role": "assistant", "content": [
        {"toolUse": {"toolUseId": "t1", "name": "f", "input": {"a": [1, "é"]}}}]}},
        "stopReason": "tool_use", "usage": {"inputTokens": 1, "outputTokens": 2, "totalTokens": 3}}
    message = translator().response(200, {}, json.dumps(payload).encode()).body["choices"][0]["message"]
    assert message["content"] is None
    assert message["tool_calls"][0]["function"]["arguments"] == '{"a":[1,"é"]}'


def test_json_mode_response() -> None:
    t = translator()
    t.request(chat_body(response_format={"type": "json_object"}))
    body = t.response(200, {}, fixture("converse_json_mode.json")).body
    assert body["choices"][0]["message"] == {"role": "assistant", "content": '{"name":"Ada","born":1815}',
                                             "refusal": None}
    assert body["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize(("stop_reason", "finish"), [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"),
    ("model_context_window_exceeded", "length"), ("tool_use", "tool_calls"),
    ("guardrail_intervened", "content_filter"), ("content_filtered", "content_filter"), ("something_new", "stop"),
])
def test_every_stop_reason(stop_reason: str, finish: str) -> None:
    content = [{"text": "x"}, {"toolUse": {"toolUseId": "t1", "name": "f", "input": {}}}]
    payload = {"output": {"message": {"role": "assistant", "content": content}}, "stopReason": stop_reason,
               "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2}}
    body = translator().response(200, {}, json.dumps(payload).encode()).body
    assert body["choices"][0]["finish_reason"] == finish


@pytest.mark.parametrize("stop_reason", ["malformed_model_output", "malformed_tool_use"])
def test_malformed_stop_reasons_are_errors(stop_reason: str) -> None:
    payload = {"output": {"message": {"role": "assistant", "content": []}}, "stopReason": stop_reason}
    response = translator().response(200, {}, json.dumps(payload).encode())
    assert response.status == 502
    assert response.body["error"]["code"] == stop_reason


def test_unparsable_success_is_bad_gateway() -> None:
    response = translator().response(200, {}, b"<html>")
    assert response.status == 502
    assert response.body["error"]["type"] == "api_error"


# --- errors -----------------------------------------------------------------------------------------


def test_validation_error_from_header() -> None:
    headers = {"x-amzn-ErrorType": "ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/",
               "x-amzn-RequestId": "r-1"}
    response = translator().response(400, headers, fixture("error_validation.json"))
    assert response.status == 400
    assert response.body == {"error": {
        "message": json.loads(fixture("error_validation.json"))["message"],
        "type": "invalid_request_error", "param": None, "code": "ValidationException",
    }}


def test_throttling_from_body_keeps_retry_after() -> None:
    response = translator().response(429, {"Retry-After": "3"}, fixture("error_throttling.json"))
    assert response.status == 429
    assert response.headers == {"retry-after": "3"}
    assert response.body["error"] == {"message": "Too many requests, please wait before trying again.",
                                      "type": "rate_limit_error", "param": None, "code": "ThrottlingException"}


def test_access_denied_says_the_customer_credential_was_rejected() -> None:
    response = translator().response(403, {"x-amzn-ErrorType": "AccessDeniedException:http://x/"},
                                     fixture("error_access_denied.json"))
    error = response.body["error"]
    assert response.status == 403
    assert error["type"] == "permission_error" and error["code"] == "AccessDeniedException"
    assert error["message"].startswith("The customer's AWS Bedrock credential was rejected by AWS Bedrock (403): User:")


@pytest.mark.parametrize(("status", "code", "out_status", "out_type"), [
    (404, "ResourceNotFoundException", 404, "not_found_error"),
    (408, "ModelTimeoutException", 408, "timeout_error"),
    (424, "ModelErrorException", 502, "api_error"),
    (500, "InternalServerException", 500, "api_error"),
    (503, "ServiceUnavailableException", 503, "api_error"),
])
def test_error_statuses(status: int, code: str, out_status: int, out_type: str) -> None:
    response = translator().response(status, {"X-Amzn-ErrorType": f"{code}:"}, b'{"message":"boom"}')
    assert (response.status, response.body["error"]["type"], response.body["error"]["code"]) == (
        out_status, out_type, code)
    assert response.body["error"]["message"] == "boom"


def test_non_json_error_body() -> None:
    response = translator().response(502, {}, b"Bad Gateway")
    assert response.body["error"] == {"message": "Bad Gateway", "type": "api_error", "param": None, "code": None}


# --- embeddings -------------------------------------------------------------------------------------


def test_titan_v2_embeddings_base64() -> None:
    t = translator("amazon.titan-embed-text-v2:0", "embeddings")
    request = t.request({"model": "alias", "input": ["hello"], "dimensions": 256, "encoding_format": "base64"})
    assert request.url == f"{BASE}/model/amazon.titan-embed-text-v2%3A0/invoke"
    assert request.headers == {"content-type": "application/json", "accept": "application/json"}
    assert json.loads(request.body) == {"inputText": "hello", "dimensions": 256, "normalize": True}
    body = t.response(200, {}, fixture("titan_v2.json")).body
    assert body == {
        "object": "list",
        "data": [{"object": "embedding", "index": 0,
                  "embedding": base64.b64encode(struct.pack("<4f", 0.125, -0.5, 0.25, 1.0)).decode()}],
        "model": "amazon.titan-embed-text-v2:0",
        "usage": {"prompt_tokens": 7, "total_tokens": 7},
    }
    assert t.usage == {"prompt_tokens": 7, "total_tokens": 7}


def test_titan_rejections() -> None:
    t = translator("amazon.titan-embed-text-v2:0", "embeddings")
    with pytest.raises(InvalidRequest, match=r"one input per request.*Cohere Embed v3"):
        t.request({"input": ["a", "b"]})
    with pytest.raises(InvalidRequest, match="256, 512, 1024"):
        t.request({"input": "a", "dimensions": 300})
    assert emb.titan_body("x", "titan-v2", None) == {"inputText": "x", "normalize": True}
    assert json.loads(translator("amazon.titan-embed-text-v1", "embeddings").request({"input": "a"}).body) == {
        "inputText": "a"}


def test_cohere_v3_embeddings() -> None:
    t = translator("us.cohere.embed-multilingual-v3", "embeddings")
    request = t.request({"input": ["hello", "world"], "user": "u"})
    assert json.loads(request.body) == {"texts": ["hello", "world"], "input_type": "search_document",
                                        "truncate": "NONE"}
    body = t.response(200, {"X-Amzn-Bedrock-Input-Token-Count": "4"}, fixture("cohere_v3.json")).body
    assert [d["embedding"] for d in body["data"]] == [[0.5, -0.25, 0.75], [1.0, 0.0, -1.0]]
    assert [d["index"] for d in body["data"]] == [0, 1]
    assert body["usage"] == {"prompt_tokens": 4, "total_tokens": 4}
    by_type = {"embeddings": {"float": [[1.0], [2.0]]}, "response_type": "embeddings_by_type"}
    assert len(t.response(200, {}, json.dumps(by_type).encode()).body["data"]) == 2
    assert t.response(200, {}, b'{"embeddings":[[1.0]]}').status == 502  # one vector for two inputs


def test_cohere_rejections() -> None:
    t = translator("cohere.embed-english-v3", "embeddings")
    with pytest.raises(InvalidRequest, match="at most 96"):
        t.request({"input": ["x"] * 97})
    with pytest.raises(InvalidRequest, match="'dimensions'"):
        t.request({"input": "x", "dimensions": 256})
    assert "dimensions" not in json.loads(
        translator("cohere.embed-english-v3", "embeddings", drop=True).request({"input": "x", "dimensions": 9}).body)


def test_unknown_embedding_family() -> None:
    with pytest.raises(InvalidRequest, match="Supported: Amazon Titan Text Embeddings") as info:
        translator("meta.llama3-8b-instruct-v1:0", "embeddings").request({"input": "x"})
    assert info.value.param == "model"


def test_embedding_family_from_arn() -> None:
    arn = "arn:aws:bedrock:us-east-1::foundation-model/amazon.titan-embed-text-v2:0"
    assert emb.embedding_family(arn) == "titan-v2"
    assert emb.embedding_family("eu.cohere.embed-english-v3") == "cohere-v3"


# --- streaming --------------------------------------------------------------------------------------


def frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One AWS event-stream message (all headers as strings, type 7)."""
    encoded = b"".join(
        bytes([len(k)]) + k.encode() + b"\x07" + struct.pack(">H", len(v.encode())) + v.encode()
        for k, v in headers.items()
    )
    prelude = struct.pack(">II", 12 + len(encoded) + len(payload) + 4, len(encoded))
    prelude += struct.pack(">I", zlib.crc32(prelude) & 0xFFFFFFFF)
    message = prelude + encoded + payload
    return message + struct.pack(">I", zlib.crc32(message) & 0xFFFFFFFF)


def event(event_type: str, payload: dict) -> bytes:
    return frame({":event-type": event_type, ":content-type": "application/json", ":message-type": "event"},
                 json.dumps({**payload, "p": "abcdefghijklmnopqrstuvwxyzABCDEF"}).encode())


def exception(exception_type: str, message: str) -> bytes:
    return frame({":exception-type": exception_type, ":content-type": "application/json",
                  ":message-type": "exception"}, json.dumps({"message": message}).encode())


USAGE = {"inputTokens": 12, "outputTokens": 6, "totalTokens": 18}
TEXT_STREAM = [
    event("messageStart", {"role": "assistant"}),
    event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hel"}}),
    event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "lo!"}}),
    event("contentBlockStop", {"contentBlockIndex": 0}),
    event("messageStop", {"stopReason": "end_turn"}),
    event("metadata", {"usage": USAGE, "metrics": {"latencyMs": 300}}),
]


def stream_translator(body: dict | None = None) -> BedrockTranslator:
    t = translator(PROFILE)
    request = t.request(body or chat_body(stream=True))
    assert request.url.endswith("/converse-stream")
    assert request.headers == {"content-type": "application/json"}
    assert "stream" not in json.loads(request.body)
    return t


def sse(data: bytes) -> list[Any]:
    """The SSE payloads: parsed JSON, or the literal '[DONE]'."""
    assert data.endswith(b"\n\n") or not data
    events = []
    for block in data.decode().split("\n\n")[:-1]:
        assert block.startswith("data: ")
        text = block[len("data: "):]
        events.append(text if text == "[DONE]" else json.loads(text))
    return events


def run_stream(t: BedrockTranslator, data: bytes, cuts: list[int]) -> bytes:
    out = b""
    last = 0
    for cut in [*cuts, len(data)]:
        out += t.stream_chunk(data[last:cut])
        last = cut
    return out + t.stream_end()


def deltas(events: list[Any]) -> list[tuple[dict, str | None]]:
    return [(e["choices"][0]["delta"], e["choices"][0]["finish_reason"]) for e in events
            if isinstance(e, dict) and e.get("choices")]


@pytest.mark.parametrize("cuts", [[], [1], [5, 13, 40, 41, 200], list(range(1, 2000, 7))])
def test_text_stream_split_anywhere(cuts: list[int]) -> None:
    t = stream_translator(chat_body(stream=True, stream_options={"include_usage": True}))
    events = sse(run_stream(t, b"".join(TEXT_STREAM), cuts))
    assert deltas(events) == [
        ({"role": "assistant", "content": ""}, None),
        ({"content": "Hel"}, None), ({"content": "lo!"}, None),
        ({}, "stop"),
    ]
    usage_chunk = events[-2]
    assert usage_chunk["choices"] == [] and usage_chunk["usage"] == {
        "prompt_tokens": 12, "completion_tokens": 6, "total_tokens": 18}
    assert events[-1] == "[DONE]"
    assert all(e["object"] == "chat.completion.chunk" and e["model"] == PROFILE for e in events[:-1])
    assert len({e["id"] for e in events[:-1]}) == 1
    assert all(e["usage"] is None for e in events[:-2])
    assert t.usage == usage_chunk["usage"]


def test_stream_without_include_usage() -> None:
    t = stream_translator()
    events = sse(run_stream(t, b"".join(TEXT_STREAM), [3]))
    assert events[-1] == "[DONE]" and all(e["choices"] for e in events[:-1])
    assert t.usage == {"prompt_tokens": 12, "completion_tokens": 6, "total_tokens": 18}


def test_tool_use_stream() -> None:
    frames = [
        event("messageStart", {"role": "assistant"}),
        event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Checking."}}),
        event("contentBlockStop", {"contentBlockIndex": 0}),
        event("contentBlockStart", {"contentBlockIndex": 1, "start": {
            "toolUse": {"toolUseId": "tooluse_A", "name": "get_weather"}}}),
        event("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": "{\"city\":"}}}),
        event("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": "\"Paris\"}"}}}),
        event("contentBlockStop", {"contentBlockIndex": 1}),
        event("contentBlockStart", {"contentBlockIndex": 2, "start": {
            "toolUse": {"toolUseId": "tooluse_B", "name": "get_time"}}}),
        event("contentBlockDelta", {"contentBlockIndex": 2, "delta": {"toolUse": {"input": "{}"}}}),
        event("contentBlockStop", {"contentBlockIndex": 2}),
        event("messageStop", {"stopReason": "tool_use"}),
        event("metadata", {"usage": USAGE}),
    ]
    t = stream_translator(chat_body(stream=True, tools=[WEATHER_TOOL]))
    events = sse(run_stream(t, b"".join(frames), [17, 300, 301]))
    assert deltas(events) == [
        ({"role": "assistant", "content": ""}, None),
        ({"content": "Checking."}, None),
        ({"tool_calls": [{"index": 0, "id": "tooluse_A", "type": "function",
                          "function": {"name": "get_weather", "arguments": ""}}]}, None),
        ({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]}, None),
        ({"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}, None),
        ({"tool_calls": [{"index": 1, "id": "tooluse_B", "type": "function",
                          "function": {"name": "get_time", "arguments": ""}}]}, None),
        ({"tool_calls": [{"index": 1, "function": {"arguments": "{}"}}]}, None),
        ({}, "tool_calls"),
    ]
    assert events[-1] == "[DONE]"


def test_json_mode_stream_becomes_content() -> None:
    frames = [
        event("messageStart", {"role": "assistant"}),
        event("contentBlockStart", {"contentBlockIndex": 0, "start": {
            "toolUse": {"toolUseId": "t", "name": "json_response"}}}),
        event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"toolUse": {"input": "{\"a\":"}}}),
        event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"toolUse": {"input": "1}"}}}),
        event("messageStop", {"stopReason": "tool_use"}),
        event("metadata", {"usage": USAGE}),
    ]
    t = stream_translator(chat_body(stream=True, response_format={"type": "json_object"}))
    assert deltas(sse(run_stream(t, b"".join(frames), []))) == [
        ({"role": "assistant", "content": ""}, None),
        ({"content": "{\"a\":"}, None), ({"content": "1}"}, None),
        ({}, "stop"),
    ]


def test_exception_frame_ends_the_stream() -> None:
    frames = [*TEXT_STREAM[:2], exception("throttlingException", "Too many tokens, please wait."), *TEXT_STREAM[2:]]
    t = stream_translator()
    out = run_stream(t, b"".join(frames), [50, 51])
    events = sse(out)
    assert events[-1] == {"error": {"message": "AWS Bedrock: Too many tokens, please wait.",
                                    "type": "rate_limit_error", "code": "throttlingException"}}
    assert deltas(events) == [({"role": "assistant", "content": ""}, None), ({"content": "Hel"}, None)]
    assert b"[DONE]" not in out
    assert t.stream_chunk(b"more") == b"" and t.stream_end() == b""


def test_model_stream_error_exception() -> None:
    t = stream_translator()
    out = t.stream_chunk(exception("modelStreamErrorException", "The model failed."))
    assert sse(out) == [{"error": {"message": "AWS Bedrock: The model failed.", "type": "api_error",
                                   "code": "modelStreamErrorException"}}]


def test_stream_ending_mid_frame_is_an_error() -> None:
    data = b"".join(TEXT_STREAM)
    t = stream_translator()
    out = t.stream_chunk(data[:-10])
    end = t.stream_end()
    assert b"[DONE]" not in out + end
    assert deltas(sse(out))[-1] == ({}, "stop")
    assert sse(end) == [{"error": {
        "message": "The AWS Bedrock stream ended in the middle of an event.",
        "type": "api_error", "code": "stream_truncated"}}]


def test_stream_ending_before_message_stop_is_an_error() -> None:
    t = stream_translator()
    t.stream_chunk(b"".join(TEXT_STREAM[:3]))
    assert sse(t.stream_end()) == [{"error": {
        "message": "The AWS Bedrock stream ended before the model finished its answer.",
        "type": "api_error", "code": "stream_truncated"}}]


def test_corrupted_frame_is_an_error() -> None:
    data = bytearray(TEXT_STREAM[0])
    data[-1] ^= 0xFF
    t = stream_translator()
    assert sse(t.stream_chunk(bytes(data))) == [{"error": {
        "message": "AWS Bedrock sent a malformed event stream (ChecksumMismatch).",
        "type": "api_error", "code": "bad_event_stream"}}]
    assert t.stream_end() == b""


def test_stream_chunk_without_stream_request() -> None:
    t = translator()
    t.request(chat_body())
    with pytest.raises(ByokError):
        t.stream_chunk(b"")


# --- shapes recorded from real Bedrock traffic (our own fixtures, written after public recordings) -----


def recorded_stream(name: str) -> bytes:
    """A fixture of `{"<event type>": payload}` lines, framed as AWS event-stream messages."""
    lines = fixture(name).decode().splitlines()
    return b"".join(event(*next(iter(json.loads(line).items()))) for line in lines if line)


def test_reasoning_blocks_are_left_out_of_the_answer() -> None:
    body = translator().response(200, {}, fixture("converse_reasoning.json")).body
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "7 + 3 = 10, which is even.",
                                             "refusal": None}
    assert body["choices"][0]["finish_reason"] == "stop"
    # Extra usage keys (`cacheReadInputTokenCount`, `serverToolUsage`) are ignored.
    assert body["usage"] == {"prompt_tokens": 40, "completion_tokens": 66, "total_tokens": 106}


def test_citations_content_text_is_part_of_the_answer() -> None:
    body = translator().response(200, {}, fixture("converse_citations.json")).body
    assert body["choices"][0]["message"]["content"] == (
        "According to the handbook, expense reports are due on the fifth working day of each month.")
    assert body["usage"] == {"prompt_tokens": 1804, "completion_tokens": 27, "total_tokens": 1831}


def test_guardrail_intervention_is_a_content_filter_finish() -> None:
    body = translator().response(200, {}, fixture("converse_guardrail.json")).body
    assert body["choices"][0] == {"index": 0, "message": {
        "role": "assistant", "content": "Sorry, I can't help with that topic.", "refusal": None,
    }, "finish_reason": "content_filter", "logprobs": None}


def test_server_tools_and_unknown_blocks_are_not_app_tool_calls() -> None:
    body = translator().response(200, {}, fixture("converse_server_tool.json")).body
    assert body["choices"][0]["message"] == {"role": "assistant", "refusal": None,
                                             "content": "The tallest building in Lyon is the Tour Incity."}
    assert body["choices"][0]["finish_reason"] == "stop"


def test_tool_use_stop_without_app_tool_calls_is_stop() -> None:
    payload = {"output": {"message": {"role": "assistant", "content": [{"text": "Done."}]}}, "stopReason": "tool_use",
               "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2}}
    assert translator().response(200, {}, json.dumps(payload).encode()).body["choices"][0]["finish_reason"] == "stop"


def test_unknown_operation_envelope() -> None:
    response = translator().response(404, {}, fixture("error_unknown_operation.json"))
    assert response.status == 404
    assert response.body["error"]["code"] == "UnknownOperationException"
    assert response.body["error"]["type"] == "not_found_error"
    # The same envelope in a 2xx is still an error, not an empty answer.
    response = translator().response(200, {}, fixture("error_unknown_operation.json"))
    assert (response.status, response.body["error"]["code"]) == (502, "UnknownOperationException")


def test_error_body_without_type_takes_code_from_header() -> None:
    body = b'{"message":"This model doesn\'t support the image field for user messages. Remove image and try again."}'
    response = translator().response(400, {"X-Amzn-ErrorType": "ValidationException:http://internal.amazon.com/"}, body)
    assert response.body["error"] == {
        "message": "This model doesn't support the image field for user messages. Remove image and try again.",
        "type": "invalid_request_error", "param": None, "code": "ValidationException"}


@pytest.mark.parametrize("cuts", [[], [3, 90, 91, 400], list(range(1, 4000, 13))])
def test_reasoning_stream_sends_only_text_and_tool_calls(cuts: list[int]) -> None:
    t = stream_translator(chat_body(stream=True, stream_options={"include_usage": True}, tools=[WEATHER_TOOL]))
    events = sse(run_stream(t, recorded_stream("stream_reasoning.jsonl"), cuts))
    assert deltas(events) == [
        ({"role": "assistant", "content": ""}, None),
        ({"content": "7 + 3 = 10"}, None), ({"content": ", even."}, None),
        ({"tool_calls": [{"index": 0, "id": "tooluse_Lq8", "type": "function",
                          "function": {"name": "record_answer", "arguments": ""}}]}, None),
        ({"tool_calls": [{"index": 0, "function": {"arguments": "{\"sum\":"}}]}, None),
        ({"tool_calls": [{"index": 0, "function": {"arguments": "10}"}}]}, None),
        ({}, "tool_calls"),
    ]
    assert events[-2]["choices"] == [] and events[-2]["usage"] == {
        "prompt_tokens": 1076, "completion_tokens": 91, "total_tokens": 1167,
        "prompt_tokens_details": {"cached_tokens": 1024}}
    assert events[-1] == "[DONE]"


def test_citation_stream_keeps_the_cited_text() -> None:
    t = stream_translator()
    events = sse(run_stream(t, recorded_stream("stream_citations.jsonl"), [200]))
    assert "".join(d.get("content", "") for d, _ in deltas(events)) == "Per the handbook, reports are due on day five."
    assert deltas(events)[-1] == ({}, "stop")
    assert events[-1] == "[DONE]"


def test_unfamiliar_stream_events_are_ignored() -> None:
    """Server-side tools, tool-result and image blocks, event and delta types newer than this code,
    `metadata` before `messageStop` and without `metrics`, and an unknown stop reason."""
    t = stream_translator(chat_body(stream=True, stream_options={"include_usage": True}))
    events = sse(run_stream(t, recorded_stream("stream_unfamiliar.jsonl"), [57]))
    assert deltas(events) == [
        ({"role": "assistant", "content": ""}, None),
        ({"content": "Lyon it is."}, None),
        ({}, "stop"),
    ]
    assert events[-2]["choices"] == [] and events[-2]["usage"] == {
        "prompt_tokens": 30, "completion_tokens": 8, "total_tokens": 38}
    assert events[-1] == "[DONE]"
    assert t.stream_end() == b""


def test_stream_with_message_stop_but_no_metadata_still_completes() -> None:
    t = stream_translator(chat_body(stream=True, stream_options={"include_usage": True}))
    events = sse(run_stream(t, b"".join(TEXT_STREAM[:-1]), []))
    assert deltas(events)[-1] == ({}, "stop")
    assert events[-1] == "[DONE]"
    assert t.usage is None


def test_model_stream_error_carries_the_model_message() -> None:
    payload = {"message": "Model Stream Error", "originalStatusCode": 500,
               "originalMessage": "The model stream failed."}
    data = frame({":message-type": "exception", ":exception-type": "modelStreamErrorException",
                  ":content-type": "application/json"}, json.dumps(payload).encode())
    t = stream_translator()
    assert sse(t.stream_chunk(TEXT_STREAM[0] + data))[-1] == {"error": {
        "message": "AWS Bedrock: Model Stream Error (the model answered 500: The model stream failed.)",
        "type": "api_error", "code": "modelStreamErrorException"}}


def test_user_becomes_request_metadata_or_a_clear_400() -> None:
    assert translate(chat_body(user="alice@example.com"))["requestMetadata"] == {"user": "alice@example.com"}
    with pytest.raises(InvalidRequest, match="request metadata") as info:
        translate(chat_body(user="emoji 🙂"))
    assert info.value.param == "user"
    assert "requestMetadata" not in translate(chat_body(user="emoji 🙂"), drop=True)
