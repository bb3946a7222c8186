"""`build_entry` on synthetic flows: what the router hands the audit log."""

from __future__ import annotations

import asyncio
import json

from mitmproxy import http
from mitmproxy.test import tflow

from addon.audit.log import build_entry
from addon.exchange import Exchange
from addon.router import hide_credentials

BEARER = "ya29.fake-vertex-access-token-000000001"


def test_a_credential_echoed_by_the_provider_is_scrubbed_after_the_request_was_redacted():
    flow = tflow.tflow(resp=True)
    exchange = Exchange(flow, "byok", "https://api.openai.com/v1/chat/completions", flow.request.copy())
    flow.request.headers["authorization"] = f"Bearer {BEARER}"
    exchange.sent_credentials = {BEARER}  # what the router records when it authorizes the request
    hide_credentials(flow.request)  # done at responseheaders, before the audit entry is built
    flow.response = http.Response.make(401, json.dumps({"error": f"token {BEARER} expired"}))
    text = json.dumps(build_entry(exchange, "full"))
    assert BEARER not in text
    assert "[REDACTED]" in text


def test_header_secrets_finds_every_credential_a_connection_adds():
    from addon.audit.redact import header_secrets

    found = header_secrets([
        ("Authorization", "AWS4-HMAC-SHA256 Credential=AKIAFAKE/20260101/us-east-1/bedrock/aws4_request, "
                          "SignedHeaders=host;x-amz-date, Signature=" + "ab" * 32),
        ("X-Amz-Security-Token", "fake-session-token-000000001"),
        ("api-key", "fake-azure-key-000000001"),
        ("content-type", "application/json"),
    ])
    assert found == {"ab" * 32, "fake-session-token-000000001", "fake-azure-key-000000001"}


def test_an_answer_that_cannot_be_audited_is_withheld(tmp_path, monkeypatch):
    from mitmproxy.test import taddons

    from addon.audit.log import AuditLog

    def disk_full(entry):
        raise OSError(28, "No space left on device")

    async def scenario() -> http.HTTPFlow:
        audit = AuditLog()
        with taddons.context(audit) as tctx:
            tctx.configure(audit, byok_audit=str(tmp_path / "audit.har"))
            monkeypatch.setattr(audit.writer, "write", disk_full)
            flow = tflow.tflow(resp=True)
            exchange = Exchange(flow, "byok", "https://api.openai.com/v1/chat/completions", flow.request.copy())
            audit.byok_exchange(exchange)
            await audit.response(flow)
            return flow

    flow = asyncio.run(scenario())
    assert flow.response.status_code == 503
    assert json.loads(flow.response.content)["error"]["code"] == "byok_audit_unavailable"
