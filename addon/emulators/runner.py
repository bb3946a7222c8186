"""Start all four emulators in-process (daemon threads, ephemeral ports on 127.0.0.1)."""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import fakes
from .azure import AzureEmulator
from .bedrock import BedrockEmulator
from .gemini import GeminiEmulator, VertexEmulator
from .oauth import TokenIssuer
from .server import EmulatorServer

PROVIDERS = ("azure", "bedrock", "gemini", "vertex")


@dataclass
class Emulators:
    azure: str
    bedrock: str
    gemini: str
    vertex: str
    service_account_file: str
    # Empty when attached to another process's emulators; then the control endpoints are used.
    _servers: dict[str, EmulatorServer] = field(default_factory=dict, repr=False, compare=False)

    def _url(self, provider: str) -> str:
        if provider not in PROVIDERS:
            raise ValueError(f"unknown provider {provider!r}; expected one of {PROVIDERS}")
        return str(getattr(self, provider))

    def _control(self, provider: str, name: str, method: str = "GET") -> Any:
        req = urllib.request.Request(f"{self._url(provider)}/_emulator/{name}", method=method)
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def recorded(self, provider: str) -> list[dict[str, Any]]:
        self._url(provider)
        if self._servers:
            return self._servers[provider].recorded()
        return list(self._control(provider, "requests"))

    def token_requests(self) -> int:
        if self._servers:
            return int(self._servers["vertex"].emulator.stats()["token_requests"])
        return int(self._control("vertex", "stats")["token_requests"])

    def reset(self) -> None:
        for p in PROVIDERS:
            if self._servers:
                self._servers[p].reset()
            else:
                self._control(p, "reset", "POST")

    def stop(self) -> None:
        for server in self._servers.values():
            server.stop()
        self._servers.clear()

    def as_json(self) -> dict[str, str]:
        return {p: self._url(p) for p in PROVIDERS} | {"service_account_file": self.service_account_file}


def start_emulators(state_dir: Path, *, token_ttl: int = 3600, region: str = fakes.AWS_REGION) -> Emulators:
    issuer = TokenIssuer(token_ttl)
    servers = {
        "azure": EmulatorServer(AzureEmulator()),
        "bedrock": EmulatorServer(BedrockEmulator(region)),
        "gemini": EmulatorServer(GeminiEmulator()),
        "vertex": EmulatorServer(VertexEmulator(issuer)),
    }
    sa_file = issuer.write_service_account(Path(state_dir), servers["vertex"].url + "/token")
    for s in servers.values():
        s.start()
    return Emulators(
        azure=servers["azure"].url,
        bedrock=servers["bedrock"].url,
        gemini=servers["gemini"].url,
        vertex=servers["vertex"].url,
        service_account_file=str(sa_file),
        _servers=servers,
    )


def attach(state_file: Path) -> Emulators:
    """Emulators started by `python -m addon.emulators` in another process, read from its emulators.json."""
    info = json.loads(Path(state_file).read_text())
    return Emulators(**{k: info[k] for k in (*PROVIDERS, "service_account_file")})
