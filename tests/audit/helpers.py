"""Synthetic audit entries for unit tests: the shape `build_entry` writes, without a proxy."""

from __future__ import annotations

from typing import Any

PLATFORM = "api.openai.com"
AZURE = "https://contoso.openai.azure.com"


def har_entry(url: str, status: int = 200, started: str = "2026-12-04T10:00:00+00:00", **byok: Any) -> dict[str, Any]:
    return {
        "startedDateTime": started,
        "time": 12.5,
        "request": {"method": "POST", "url": url, "httpVersion": "HTTP/1.1", "cookies": [], "headers": [],
                    "queryString": [], "headersSize": 10, "bodySize": 20},
        "response": {"status": status, "statusText": "", "httpVersion": "HTTP/1.1", "cookies": [], "headers": [],
                     "content": {"size": 0, "mimeType": "application/json", "text": ""}, "redirectURL": "",
                     "headersSize": 10, "bodySize": 20},
        "cache": {},
        "timings": {"send": 0, "wait": 10, "receive": 2},
        "_byok": byok,
    }


def served(alias: str = "gpt_large", provider: str = "azure", endpoint: str = AZURE, *, ms: float = 100.0,
           tokens: tuple[int, int] = (10, 5), status: int = 200, started: str = "2026-12-04T10:00:00+00:00",
           url: str | None = None, skill: str | None = None, cost: float | None = None) -> dict[str, Any]:
    host = endpoint.split("//", 1)[1]
    return har_entry(
        url or f"https://{host}/openai/deployments/x/chat/completions", status, started,
        decision="byok", platform_url=f"https://{PLATFORM}/v1/chat/completions", alias=alias, skill=skill,
        operation="chat", provider=provider, provider_type="azure_openai", model="gpt-4o",
        account={"type": "azure_openai", "resource": host.split(".")[0], "endpoint": endpoint,
                 "credential": "sha256:0123456789abcdef"},
        byok_on=True, client_status=status,
        usage={"prompt_tokens": tokens[0], "completion_tokens": tokens[1], "total_tokens": sum(tokens)},
        cost={"amount": cost, "currency": "USD"} if cost is not None else None,
        timings={"client_ms": ms, "upstream_ms": ms - 1},
        upstream={"address": f"{host}:443", "sni": host, "connected": True},
        path=[{"provider": provider, "status": status}],
    )


def blocked(reason: str = "unknown alias", alias: str | None = "nope", connected: bool = False) -> dict[str, Any]:
    return har_entry(
        f"https://{PLATFORM}/v1/chat/completions", 404, decision=f"blocked: {reason}",
        platform_url=f"https://{PLATFORM}/v1/chat/completions", alias=alias, byok_on=True, client_status=404,
        upstream={"address": f"{PLATFORM}:443" if connected else None, "sni": None, "connected": connected},
        path=[],
    )


def passthrough(why: str = "provider 'azure' disabled", byok_on: bool = True) -> dict[str, Any]:
    return har_entry(
        f"https://{PLATFORM}/v1/chat/completions", 200, decision=f"passthrough: {why}",
        platform_url=f"https://{PLATFORM}/v1/chat/completions", alias="gpt_large", byok_on=byok_on,
        client_status=200, upstream={"address": f"{PLATFORM}:443", "sni": PLATFORM, "connected": True}, path=[],
    )
