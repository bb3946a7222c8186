"""byok-proxy end to end: a real mitmdump, the official openai SDK, strict provider emulators, and a
trap on the platform address that must never see a connection (asserted by the `proxy` fixture)."""

from __future__ import annotations

import base64
import json
import shutil
import struct
import subprocess

import openai
import pytest
from mitmproxy import io

from addon.emulators import fakes
from addon.harness import MITMDUMP, PLATFORM_KEY, REPO

CHAT_ALIASES = {
    # alias: (emulator, model as the provider sees it in the URL or body)
    "gpt_large": ("azure", "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"),
    "gpt_small": ("azure", "/openai/v1/chat/completions"),
    "claude_large": ("bedrock", "/model/us.anthropic.claude-3-5-sonnet-20241022-v2%3A0/converse"),
    "gemini_large": ("gemini", "/v1beta/models/gemini-2.5-pro:generateContent"),
    "gemini_vertex": (
        "vertex",
        "/v1/projects/acme-ai/locations/us-central1/publishers/google/models/gemini-2.5-flash:generateContent",
    ),
}
EMBEDDING_ALIASES = {
    "embed_default": ("azure", 3072),
    "embed_cohere": ("bedrock", 1024),
    "embed_gemini": ("gemini", 3072),
    "embed_vertex": ("vertex", 768),
}
SECRETS = (fakes.AZURE_API_KEY, fakes.GEMINI_API_KEY, fakes.AWS_SECRET_ACCESS_KEY, PLATFORM_KEY)


def last_request(emulators, provider: str) -> dict:
    recorded = emulators.recorded(provider)
    assert recorded, f"the {provider} emulator received nothing"
    return recorded[-1]


@pytest.mark.parametrize("alias", CHAT_ALIASES)
def test_chat_is_served_by_the_customer_account(proxy, emulators, alias):
    emulator, path = CHAT_ALIASES[alias]
    client = proxy.openai()
    completion = client.chat.completions.create(
        model=alias,
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "first answer"},
            {"role": "user", "content": f"hello {alias}"},
        ],
        temperature=0.2, top_p=0.9, max_tokens=64, stop=["END"],
    )
    assert completion.choices[0].message.content == f"Echo: hello {alias}"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.prompt_tokens > 0 and completion.usage.completion_tokens > 0
    assert completion.usage.total_tokens >= completion.usage.prompt_tokens + completion.usage.completion_tokens

    sent = last_request(emulators, emulator)
    assert sent["path"] == path
    headers = sent["headers"]
    assert PLATFORM_KEY not in json.dumps(headers), "the app's platform credential leaked to the provider"
    if emulator == "azure":
        assert headers["api-key"] == fakes.AZURE_API_KEY
    elif emulator == "bedrock":
        assert headers["authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={fakes.AWS_ACCESS_KEY_ID}/")
        assert sent["body"]["inferenceConfig"] == {
            "maxTokens": 64, "temperature": 0.2, "topP": 0.9, "stopSequences": ["END"]
        }
        assert sent["body"]["system"] == [{"text": "You are terse."}]
    elif emulator == "gemini":
        assert headers["x-goog-api-key"] == fakes.GEMINI_API_KEY
        assert sent["body"]["systemInstruction"]["parts"] == [{"text": "You are terse."}]
        assert [c["role"] for c in sent["body"]["contents"]] == ["user", "model", "user"]
    else:
        assert headers["authorization"].startswith("Bearer ")


@pytest.mark.parametrize("alias", EMBEDDING_ALIASES)
@pytest.mark.parametrize("inputs", [["one text"], ["first text", "second text", "third text"]])
def test_embeddings_single_and_batch(proxy, emulators, alias, inputs):
    emulator, dims = EMBEDDING_ALIASES[alias]
    client = proxy.openai()
    result = client.embeddings.create(model=alias, input=inputs if len(inputs) > 1 else inputs[0])
    assert [d.index for d in result.data] == list(range(len(inputs)))
    assert all(len(d.embedding) == dims for d in result.data)
    assert result.data[0].embedding != result.data[-1].embedding or len(inputs) == 1
    assert emulators.recorded(emulator), f"nothing reached the {emulator} emulator"


def test_embeddings_base64_encoding_matches_floats(proxy):
    client = proxy.openai()
    floats = client.embeddings.create(model="embed_default", input="same text", encoding_format="float")
    b64 = client.embeddings.create(model="embed_default", input="same text", encoding_format="base64")
    raw = base64.b64decode(b64.data[0].embedding)
    decoded = struct.unpack(f"<{len(raw) // 4}f", raw)
    assert decoded == pytest.approx(floats.data[0].embedding, rel=1e-6)


def test_titan_embeds_single_text(proxy, emulators):
    result = proxy.openai().embeddings.create(model="embed_titan", input="one text")
    assert len(result.data[0].embedding) == 1024
    assert result.usage.prompt_tokens > 0
    assert last_request(emulators, "bedrock")["path"] == "/model/amazon.titan-embed-text-v2%3A0/invoke"


def test_titan_batch_fans_out_one_signed_call_per_input(proxy, emulators):
    emulators.reset()
    texts = ["alpha text", "beta text here", "gamma"]
    client = proxy.openai()
    batch = client.embeddings.create(model="embed_titan", input=texts)
    singles = [client.embeddings.create(model="embed_titan", input=t).data[0].embedding for t in texts]
    assert [d.embedding for d in batch.data] == singles
    assert [d.index for d in batch.data] == [0, 1, 2]
    calls = [r for r in emulators.recorded("bedrock") if r["path"].endswith("/invoke")]
    assert sorted(c["body"]["inputText"] for c in calls[:3]) == sorted(texts)
    assert batch.usage.prompt_tokens == sum(len(t.split()) for t in texts)


def test_unknown_alias_fails_closed(proxy, emulators):
    emulators.reset()
    with pytest.raises(openai.NotFoundError) as info:
        proxy.openai().chat.completions.create(model="mystery_model", messages=[{"role": "user", "content": "x"}])
    assert info.value.code == "model_not_found"
    assert "not mapped to a customer account" in info.value.message
    assert all(not emulators.recorded(p) for p in ("azure", "bedrock", "gemini", "vertex"))


def test_invalid_json_gets_openai_error(proxy):
    with proxy.http_client() as http:
        response = http.post(
            f"{proxy.platform_base}/chat/completions", content=b"{not json",
            headers={"authorization": f"Bearer {PLATFORM_KEY}", "content-type": "application/json"},
        )
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]["message"]


def test_other_platform_endpoints_are_not_forwarded(proxy):
    with proxy.http_client() as http:
        response = http.post(f"{proxy.platform_base}/files", json={})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unsupported_endpoint"


def test_model_list_shows_aliases(proxy):
    models = {m.id for m in proxy.openai().models.list()}
    assert {"gpt_large", "claude_large", "gemini_large", "embed_default"} <= models


def test_unsupported_parameter_is_a_clear_400(proxy, emulators):
    emulators.reset()
    with pytest.raises(openai.BadRequestError) as info:
        proxy.openai().chat.completions.create(
            model="claude_large", messages=[{"role": "user", "content": "x"}], logit_bias={"50256": -100}
        )
    assert info.value.param == "logit_bias"
    assert not emulators.recorded("bedrock")


def test_skill_override_routes_and_rewrites(proxy, emulators):
    client = proxy.openai()
    completion = client.chat.completions.create(
        model="gpt_large",
        messages=[{"role": "system", "content": "app system prompt"}, {"role": "user", "content": "db is down"}],
        temperature=0.9,
        extra_headers={"x-byok-skill": "summarize_incident"},
    )
    assert completion.choices[0].message.content == "Echo: db is down"
    sent = last_request(emulators, "bedrock")
    assert sent["path"].startswith("/model/us.anthropic.claude-3-5-sonnet")
    assert "production incidents" in sent["body"]["system"][0]["text"]
    assert sent["body"]["inferenceConfig"]["temperature"] == 0.1
    assert sent["body"]["inferenceConfig"]["maxTokens"] == 800


def test_vertex_token_is_minted_once_and_reused(proxy, emulators):
    client = proxy.openai()
    client.chat.completions.create(model="gemini_vertex", messages=[{"role": "user", "content": "warm up"}])
    before = emulators.token_requests()
    for i in range(5):
        client.chat.completions.create(model="gemini_vertex", messages=[{"role": "user", "content": f"q{i}"}])
    assert emulators.token_requests() == before


def test_audit_file_records_customer_egress_and_loads_in_mitmproxy(proxy):
    for alias in ("claude_large", "gemini_large", "gemini_vertex", "gpt_large"):
        proxy.openai().chat.completions.create(model=alias, messages=[{"role": "user", "content": "audit me"}])
    with pytest.raises(openai.NotFoundError):
        proxy.openai().chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    text = proxy.audit.read_text()
    for secret in SECRETS:
        assert secret not in text
    har = json.loads(text)
    entries = har["log"]["entries"]
    served = [e for e in entries if e["_byok"]["decision"] == "byok" and e["_byok"]["alias"] == "gpt_large"]
    assert served, "no audit entry for the served request"
    entry = served[-1]
    assert entry["request"]["url"].startswith(proxy_emulator_prefix(entry))
    assert entry["_byok"]["platform_url"].endswith("/v1/chat/completions")
    assert entry["_byok"]["provider"] == "azure" and entry["_byok"]["model"] == "gpt-4o"
    assert entry["_byok"]["account"]["credential"].startswith("sha256:")
    assert entry["_byok"]["provider_request_id"]
    by_alias = {e["_byok"]["alias"]: e for e in entries if e["_byok"]["decision"] == "byok"}
    for alias in ("claude_large", "gemini_large", "gemini_vertex"):
        assert by_alias[alias]["_byok"]["provider_request_id"], alias
    assert entry["response"]["status"] == 200
    headers = {h["name"].lower(): h["value"] for h in entry["request"]["headers"]}
    assert headers["api-key"] == "[REDACTED]"
    blocked = [e for e in entries if e["_byok"]["decision"].startswith("blocked")]
    assert blocked and blocked[-1]["response"]["status"] == 404

    loaded = subprocess.run(
        [str(MITMDUMP), "-n", "-r", str(proxy.audit), "--set", f"confdir={proxy.confdir}"],
        capture_output=True, text=True, timeout=60,
    )
    assert loaded.returncode == 0, loaded.stderr + loaded.stdout
    assert "POST" in loaded.stdout


def proxy_emulator_prefix(entry: dict) -> str:
    return "http://127.0.0.1:"


def test_bad_rules_file_stops_the_proxy_with_one_clear_message(tmp_path):
    rules = tmp_path / "bad.yaml"
    rules.write_text((REPO / "rules" / "example.yaml").read_text().replace("type: bedrock", "type: bedrok"))
    result = subprocess.run(
        [str(MITMDUMP), "-s", str(REPO / "addon" / "byok.py"), "--listen-host", "127.0.0.1", "--listen-port", "0",
         "--set", f"confdir={tmp_path}", "--set", f"byok_rules={rules}"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "bad.yaml: providers.bedrock.type: unknown provider type 'bedrok'" in output
    assert "Traceback" not in output


def test_saved_flows_hold_no_credentials(proxy, emulators):
    client = proxy.openai()
    for alias in CHAT_ALIASES:
        client.chat.completions.create(model=alias, messages=[{"role": "user", "content": "save me"}])
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    saved = (proxy.log_path.parent / "flows.mitm").read_bytes()
    assert b"save me" in saved  # the flows are there ...
    vertex_tokens = {r["headers"]["authorization"].split()[1] for r in emulators.recorded("vertex")
                     if r["headers"].get("authorization", "").startswith("Bearer ")}
    assert vertex_tokens
    log = proxy.log()
    assert "save me" in log
    for secret in (*SECRETS, *vertex_tokens):
        assert secret.encode() not in saved  # ... their credentials are not
        assert secret not in log
    assert fakes.AWS_ACCESS_KEY_ID.encode() in saved  # SigV4 keeps the key id: it names the account


def test_flows_carry_a_comment_and_blocked_ones_a_mark(proxy):
    client = proxy.openai()
    client.chat.completions.create(model="gpt_large", messages=[{"role": "user", "content": "comment me"}])
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    with open(proxy.log_path.parent / "flows.mitm", "rb") as f:
        flows = list(io.FlowReader(f).stream())
    comments = [f.comment for f in flows]
    assert "gpt_large → azure/gpt-4o (127.0.0.1, East US)" in comments
    blocked = [f for f in flows if f.comment.startswith("blocked (404)")]
    assert blocked and all(f.marked for f in blocked)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@pytest.mark.parametrize(("flag", "version"), [("--http1.1", "1.1"), ("--http2", "2")])
def test_curl_as_the_app(proxy, flag, version):
    body = json.dumps({"model": "gemini_large", "messages": [{"role": "user", "content": "from curl"}]})
    args = ["curl", "-sS", flag, "--fail-with-body", "--cacert", str(proxy.ca), "-w", "\n%{http_version}",
            "-H", f"Authorization: Bearer {PLATFORM_KEY}", "-H", "Content-Type: application/json", "-d", body,
            f"{proxy.platform_base}/chat/completions"]
    if proxy.mode == "forward":
        args[1:1] = ["--proxy", f"http://127.0.0.1:{proxy.port}"]
    result = subprocess.run(args, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    text, used = result.stdout.rsplit("\n", 1)
    assert used == version
    answer = json.loads(text)
    assert answer["object"] == "chat.completion"
    assert answer["choices"][0]["message"]["content"] == "Echo: from curl"


def test_user_reaches_each_provider_as_its_own_equivalent(proxy, emulators):
    client = proxy.openai()
    ask = {"messages": [{"role": "user", "content": "who am I"}], "user": "user-42"}
    client.chat.completions.create(model="gpt_large", **ask)
    assert last_request(emulators, "azure")["body"]["user"] == "user-42"
    client.chat.completions.create(model="claude_large", **ask)
    assert last_request(emulators, "bedrock")["body"]["requestMetadata"] == {"user": "user-42"}
    client.chat.completions.create(model="gemini_vertex", **ask)
    assert last_request(emulators, "vertex")["body"]["labels"] == {"user": "user-42"}
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="gemini_large", **ask)
    assert info.value.param == "user"
