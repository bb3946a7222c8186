"""What the router knows about one intercepted platform request, handed to the audit log."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from mitmproxy import hooks, http

from addon.openai_format import StreamAccumulator
from addon.providers.base import Connection, Translator


@dataclass
class Exchange:
    """One intercepted platform request and what became of it."""

    flow: http.HTTPFlow
    decision: str
    """"byok", "passthrough: <why>" or "blocked: <why>"."""
    platform_url: str
    platform_request: http.Request
    """The request as the app sent it (before translation)."""
    alias: str | None = None
    skill: str | None = None
    operation: str | None = None
    connection: Connection | None = None
    model: str | None = None
    translator: Translator | None = None
    streaming: bool = False
    answered_by_proxy: bool = False
    """The app's answer was assembled by the proxy from its own provider calls (fan-out)."""
    upstream_response: http.Response | None = None
    """The provider's response as received (before translation back), when not streamed."""
    fan_out: list[dict[str, Any]] = field(default_factory=list)
    """The provider calls the proxy made itself when one app request needed several (Titan batches)."""
    stream: StreamAccumulator | None = None
    """What the app received of a streamed answer, rebuilt for the audit log."""
    sent_credentials: set[str] = field(default_factory=set, repr=False)
    """The credential values that went to the provider (API key, bearer token, SigV4 signature and
    session token): scrubbed from the audit entry wherever the provider echoes them."""
    started: float = field(default_factory=time.time)
    upstream_sent: float | None = None
    finished: float | None = None

    def summary(self) -> dict[str, Any]:
        """The `_byok` facts for the audit log and mitmweb: plain JSON, no secrets."""
        result: dict[str, Any] = {
            "decision": self.decision,
            "platform_url": self.platform_url,
            "alias": self.alias,
            "skill": self.skill,
            "operation": self.operation,
        }
        if self.connection is not None:
            result["provider"] = self.connection.name
            result["provider_type"] = self.connection.type
            result["model"] = self.model
            result["account"] = self.connection.identity()
        if self.fan_out:
            result["fan_out"] = self.fan_out
        return result


@dataclass
class ByokExchangeHook(hooks.Hook):
    """An intercepted platform exchange has ended (answered, blocked, passed through or failed)."""

    name = "byok_exchange"
    exchange: Exchange
