"""Known fake secrets in every position they can take; none may reach the audit file."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from addon.audit.verify import credential_problems
from addon.cli import main
from addon.emulators import fakes
from addon.harness import PLATFORM_KEY, REPO, PlatformTrap, free_port, provider_env, start_proxy

APP_SECRETS = {
    "api-key": "app-side-api-key-0000000000000001",
    "x-goog-api-key": "app-side-goog-key-000000000000002",
    "x-amz-security-token": "app-side-amz-session-token-00003",
    "x-api-key": "app-side-x-api-key-00000000000004",
}
COOKIE_SECRET = "app-session-cookie-value-0000005"
QUERY_SECRET = "app-query-key-value-000000000006"
AUDIT_KEY = "audit-hmac-key-value-00000000007"


@pytest.fixture
def leaky_proxy(tmp_path, emulators):
    trap = PlatformTrap(free_port()).start()
    env = provider_env(emulators, f"127.0.0.1:{trap.port}")
    # Temporary AWS credentials, so a session token travels too.
    env.update(AWS_ACCESS_KEY_ID=fakes.AWS_TEMP_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY=fakes.AWS_TEMP_SECRET_ACCESS_KEY,
               AWS_SESSION_TOKEN=fakes.AWS_SESSION_TOKEN, BYOK_AUDIT_KEY=AUDIT_KEY)
    proxy = start_proxy(tmp_path, REPO / "rules" / "demo.yaml", env, trap.port,
                        extra=("--set", "byok_audit_bodies=full", "--set", "byok_audit_key=${BYOK_AUDIT_KEY}"))
    yield proxy
    proxy.stop()
    trap.stop()
    assert trap.connections == []


def test_no_secret_reaches_the_audit_file(leaky_proxy, emulators, capsys, monkeypatch):
    proxy = leaky_proxy
    echoed = f"keys: {fakes.AZURE_API_KEY} {fakes.GEMINI_API_KEY} {PLATFORM_KEY} {COOKIE_SECRET} {QUERY_SECRET}"
    headers = {**APP_SECRETS, "cookie": f"session={COOKIE_SECRET}"}
    client = proxy.openai(default_headers=headers, default_query={"key": QUERY_SECRET})
    for alias in ("gpt_large", "claude_large", "gemini_large", "gemini_vertex"):
        client.chat.completions.create(model=alias, messages=[{"role": "user", "content": echoed}])
    stream = client.chat.completions.create(model="gpt_large", stream=True,
                                            messages=[{"role": "user", "content": echoed}])
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    for alias in ("gpt_large", "claude_large", "gemini_large"):  # provider errors quoting the prompt
        with pytest.raises(openai.APIStatusError):
            client.chat.completions.create(
                model=alias, messages=[{"role": "user", "content": f"EMULATE:error=400 {echoed}"}]
            )
    with pytest.raises(openai.NotFoundError):  # blocked: the app's request itself is logged
        client.chat.completions.create(model="mystery", messages=[{"role": "user", "content": echoed}])
    with proxy.http_client() as http:  # a body that is not JSON, echoing secrets
        http.post(f"{proxy.platform_base}/chat/completions?key={QUERY_SECRET}", content=echoed.encode(),
                  headers={**headers, "authorization": f"Bearer {PLATFORM_KEY}"})
    vertex_token = emulators.recorded("vertex")[-1]["headers"]["authorization"].split(" ", 1)[1]
    bedrock_auth = emulators.recorded("bedrock")[-1]["headers"]["authorization"]
    signature = bedrock_auth.rsplit("Signature=", 1)[1]
    proxy.stop()

    text = proxy.audit.read_text()
    secrets = [fakes.AZURE_API_KEY, fakes.GEMINI_API_KEY, fakes.AWS_TEMP_SECRET_ACCESS_KEY, fakes.AWS_SESSION_TOKEN,
               PLATFORM_KEY, COOKIE_SECRET, QUERY_SECRET, AUDIT_KEY, vertex_token, signature, *APP_SECRETS.values()]
    leaked = [s for s in secrets if s in text]
    assert leaked == []
    entries = json.loads(text)["log"]["entries"]
    assert len(entries) == 10
    assert all(credential_problems(e) == [] for e in entries)
    # What identifies the account stays: the SigV4 key id and scope.
    bedrock = next(e for e in entries if e["_byok"].get("provider") == "bedrock")
    auth = next(h["value"] for h in bedrock["request"]["headers"] if h["name"].lower() == "authorization")
    assert auth.startswith(f"AWS4-HMAC-SHA256 Credential={fakes.AWS_TEMP_ACCESS_KEY_ID}/")
    assert auth.endswith("Signature=[REDACTED]")
    monkeypatch.setenv("BYOK_AUDIT_KEY", AUDIT_KEY)
    assert main(["audit", "verify", str(proxy.audit), "--key", "${BYOK_AUDIT_KEY}"]) == 0, capsys.readouterr().out
    assert httpx  # the SDK's transport
