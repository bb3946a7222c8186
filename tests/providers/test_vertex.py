"""Vertex AI provider: URLs, embeddings via :predict, and service-account token handling.

The OAuth token endpoint is a local stdlib server that verifies each JWT assertion against the public
half of a key generated here (into tmp_path, never committed) and counts the grants it issues.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from addon.errors import ByokError
from addon.providers.base import UpstreamRequest
from addon.providers.vertex import VertexConfig, VertexConnection, VertexTranslator

FIXTURES = Path(__file__).parent / "fixtures" / "gemini"
CLIENT_EMAIL = "byok-proxy@acme-ai.iam.gserviceaccount.com"
PROJECT = "acme-ai"
SCOPE = "https://www.googleapis.com/auth/cloud-platform"


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenServer:
    """A tiny OAuth 2.0 token endpoint speaking Google's jwt-bearer grant."""

    def __init__(self, public_key) -> None:
        self.public_key = public_key
        self.grants = 0
        self.attempts = 0
        self.expires_in = 3600
        self.delay = 0.0
        self.fail_with: tuple[int, dict] | None = None
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                form = parse_qs(self.rfile.read(length).decode())
                status, body = server.grant(self.path, self.headers.get("content-type", ""), form)
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/token"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def grant(self, path: str, content_type: str, form: dict) -> tuple[int, dict]:
        with self.lock:
            self.attempts += 1
        time.sleep(self.delay)
        if self.fail_with:
            return self.fail_with
        assert path == "/token"
        assert content_type == "application/x-www-form-urlencoded"
        assert form["grant_type"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
        header_b64, claims_b64, signature_b64 = form["assertion"][0].split(".")
        header = json.loads(b64url_decode(header_b64))
        claims = json.loads(b64url_decode(claims_b64))
        try:
            self.public_key.verify(b64url_decode(signature_b64), f"{header_b64}.{claims_b64}".encode(),
                                   padding.PKCS1v15(), hashes.SHA256())
        except Exception:
            return 400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
        if (header.get("alg"), header.get("kid")) != ("RS256", "test-key-1"):
            return 400, {"error": "invalid_grant", "error_description": f"bad header {header}"}
        if (claims.get("iss"), claims.get("scope"), claims.get("aud")) != (
                CLIENT_EMAIL, SCOPE, "https://oauth2.googleapis.com/token"):
            return 400, {"error": "invalid_grant", "error_description": f"bad claims {claims}"}
        with self.lock:
            self.grants += 1
            n = self.grants
        return 200, {"access_token": f"ya29.test-token-{n}", "expires_in": self.expires_in, "token_type": "Bearer"}

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture(scope="module")
def private_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def token_server(private_key):
    server = TokenServer(private_key.public_key())
    yield server
    server.stop()


@pytest.fixture
def key_file(tmp_path, private_key, token_server) -> Path:
    pem = private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
    path = tmp_path / "sa.json"
    path.write_text(json.dumps({
        "type": "service_account", "project_id": PROJECT, "private_key_id": "test-key-1", "private_key": pem,
        "client_email": CLIENT_EMAIL, "client_id": "1234567890", "token_uri": token_server.url,
    }))
    return path


def vertex_config(**overrides) -> VertexConfig:
    return VertexConfig.model_validate({"type": "vertex", "project": PROJECT, **overrides})


def connection(path: Path | str | None) -> VertexConnection:
    return VertexConnection("acme-vertex", vertex_config(credentials_file=str(path) if path else None))


REQUEST = UpstreamRequest("POST", "https://us-central1-aiplatform.googleapis.com/v1/x", {"content-type": "a"}, b"{}")


# --- URLs and embeddings ---------------------------------------------------------------------------


@pytest.mark.parametrize("overrides,url", [
    ({}, "https://us-central1-aiplatform.googleapis.com/v1/projects/acme-ai/locations/us-central1"),
    ({"location": "global"}, "https://aiplatform.googleapis.com/v1/projects/acme-ai/locations/global"),
    ({"location": "europe-west4", "api_version": "v1beta1"},
     "https://europe-west4-aiplatform.googleapis.com/v1beta1/projects/acme-ai/locations/europe-west4"),
    ({"endpoint": "http://127.0.0.1:8089/"}, "http://127.0.0.1:8089/v1/projects/acme-ai/locations/us-central1"),
])
def test_chat_urls(overrides, url):
    t = VertexTranslator(vertex_config(**overrides), "gemini-2.5-flash", "chat", drop_unsupported_params=False)
    request = t.request({"messages": [{"role": "user", "content": "Hi"}]})
    assert request.url == url + "/publishers/google/models/gemini-2.5-flash:generateContent"
    assert json.loads(request.body) == {"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]}
    stream = t.request({"messages": [{"role": "user", "content": "Hi"}], "stream": True})
    assert stream.url == url + "/publishers/google/models/gemini-2.5-flash:streamGenerateContent?alt=sse"


def test_chat_response_and_error_use_vertex_label():
    t = VertexTranslator(vertex_config(), "gemini-2.5-flash", "chat", drop_unsupported_params=False)
    t.request({"messages": [{"role": "user", "content": "Hi"}]})
    ok = t.response(200, {}, (FIXTURES / "generate_text.json").read_bytes())
    assert ok.body["choices"][0]["finish_reason"] == "stop" and ok.body["usage"]["total_tokens"] == 39
    denied = {"error": {"code": 403, "status": "PERMISSION_DENIED",
                        "message": "Permission 'aiplatform.endpoints.predict' denied on resource."}}
    response = t.response(403, {}, json.dumps(denied).encode())
    assert response.status == 403 and response.body["error"]["code"] == "PERMISSION_DENIED"
    assert response.body["error"]["message"].startswith(
        "The customer's Vertex AI credential was rejected by Vertex AI (403): Permission")


def test_embeddings_predict():
    t = VertexTranslator(vertex_config(), "text-embedding-005", "embeddings", drop_unsupported_params=False)
    request = t.request({"input": ["first text", "second"], "dimensions": 3})
    assert request.url == ("https://us-central1-aiplatform.googleapis.com/v1/projects/acme-ai/locations/"
                           "us-central1/publishers/google/models/text-embedding-005:predict")
    assert json.loads(request.body) == {"instances": [{"content": "first text"}, {"content": "second"}],
                                        "parameters": {"outputDimensionality": 3}}
    response = t.response(200, {}, (FIXTURES / "vertex_predict.json").read_bytes())
    assert response.body == {
        "object": "list", "model": "text-embedding-005",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.5, -0.25, 0.125]},
                 {"object": "embedding", "index": 1, "embedding": [1.0, 0.0, -1.0]}],
        "usage": {"prompt_tokens": 10, "total_tokens": 10},
    }
    assert t.usage == {"prompt_tokens": 10, "total_tokens": 10}
    single = t.request({"input": "one"})
    assert json.loads(single.body) == {"instances": [{"content": "one"}]}


# --- auth ------------------------------------------------------------------------------------------


def test_concurrent_authorize_share_one_grant_without_blocking_the_loop(token_server, key_file):
    token_server.delay = 0.3
    conn = connection(key_file)
    assert conn.credential_problem() is None

    async def scenario():
        ticks = 0
        stop = asyncio.Event()

        async def ticker():
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await asyncio.sleep(0.01)

        tick_task = asyncio.create_task(ticker())
        results = await asyncio.gather(*(conn.authorize(REQUEST) for _ in range(20)))
        stop.set()
        await tick_task
        again = await conn.authorize(REQUEST)
        return results, again, ticks

    results, again, ticks = asyncio.run(scenario())
    assert token_server.grants == 1 and token_server.attempts == 1
    assert {r.headers["authorization"] for r in results} == {"Bearer ya29.test-token-1"}
    assert results[0].headers["content-type"] == "a" and results[0].body == b"{}"
    assert again.headers["authorization"] == "Bearer ya29.test-token-1"
    assert ticks >= 10  # the event loop kept running while the token was fetched


def test_short_lived_token_is_refreshed(token_server, key_file):
    token_server.expires_in = 60  # inside google-auth's 3m45s refresh margin: stale at once
    conn = connection(key_file)

    async def scenario():
        first = await conn.authorize(REQUEST)
        second = await asyncio.gather(*(conn.authorize(REQUEST) for _ in range(5)))
        return first, second

    first, second = asyncio.run(scenario())
    assert first.headers["authorization"] == "Bearer ya29.test-token-1"
    assert {r.headers["authorization"] for r in second} == {"Bearer ya29.test-token-2"}
    assert token_server.grants == 2
    token_server.expires_in = 3600
    third = asyncio.run(conn.authorize(REQUEST))
    assert third.headers["authorization"] == "Bearer ya29.test-token-3"
    asyncio.run(conn.authorize(REQUEST))
    assert token_server.grants == 3


def test_refresh_failure_is_a_clean_error_and_is_not_repeated_by_waiters(token_server, key_file):
    token_server.fail_with = (400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."})
    token_server.delay = 0.2
    conn = connection(key_file)

    async def scenario():
        return await asyncio.gather(*(conn.authorize(REQUEST) for _ in range(5)), return_exceptions=True)

    errors = asyncio.run(scenario())
    assert token_server.attempts == 1
    assert all(isinstance(e, ByokError) for e in errors)
    error = errors[0]
    assert error.status == 502 and error.type == "api_error"
    assert error.message == (
        f"could not obtain a Vertex AI access token for provider 'acme-vertex' from {token_server.url}: "
        "invalid_grant: Invalid JWT Signature."
    )
    key_text = json.loads(key_file.read_text())["private_key"]
    assert "PRIVATE KEY" not in error.message and key_text[40:80] not in error.message
    assert error.__cause__ is None and error.__suppress_context__
    # The next request tries again, and succeeds once the endpoint does.
    token_server.fail_with = None
    token_server.delay = 0
    ok = asyncio.run(conn.authorize(REQUEST))
    assert ok.headers["authorization"] == "Bearer ya29.test-token-1"
    assert token_server.attempts == 2


def test_missing_and_malformed_key_files(tmp_path):
    missing = connection(tmp_path / "nope.json")
    assert missing.credential_problem() == (
        f"the service-account key file {tmp_path / 'nope.json'} cannot be read (No such file or directory)")
    with pytest.raises(ByokError) as e:
        asyncio.run(missing.authorize(REQUEST))
    assert e.value.status == 503 and "nope.json" in e.value.message

    broken = tmp_path / "broken.json"
    broken.write_text('{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----\\nSECRETBYTES", ')
    problem = connection(broken).credential_problem()
    assert problem is not None and str(broken) in problem and "SECRETBYTES" not in problem
    assert "not a usable service-account JSON key" in problem

    incomplete = tmp_path / "incomplete.json"
    incomplete.write_text(json.dumps({"type": "service_account", "private_key": "SECRETBYTES"}))
    problem = connection(incomplete).credential_problem()
    assert problem is not None and str(incomplete) in problem and "SECRETBYTES" not in problem


def test_identity_names_the_service_account(key_file):
    conn = connection(key_file)
    assert conn.identity() == {
        "type": "vertex", "project": PROJECT, "location": "us-central1",
        "endpoint": "https://us-central1-aiplatform.googleapis.com", "credential": CLIENT_EMAIL,
    }
    assert conn.describe() == "acme-ai, us-central1"


def test_config_validation():
    with pytest.raises(ValueError, match="without '/'"):
        vertex_config(project="a/b")
    with pytest.raises(ValueError):
        VertexConfig.model_validate({"type": "vertex"})


def test_user_becomes_a_request_label_or_a_clear_400():
    def body(user: str) -> dict:
        return {"messages": [{"role": "user", "content": "Hi"}], "user": user}

    strict = VertexTranslator(vertex_config(), "gemini-2.5-flash", "chat", drop_unsupported_params=False)
    assert json.loads(strict.request(body("user-42")).body)["labels"] == {"user": "user-42"}
    with pytest.raises(ByokError) as info:
        strict.request(body("Alice@Example.com"))
    assert info.value.status == 400 and info.value.param == "user"
    lenient = VertexTranslator(vertex_config(), "gemini-2.5-flash", "chat", drop_unsupported_params=True)
    assert "labels" not in json.loads(lenient.request(body("Alice@Example.com")).body)
