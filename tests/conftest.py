"""Shared fixtures: the provider emulators, a platform trap, and a real mitmdump running byok-proxy."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from addon.emulators.runner import Emulators, start_emulators

from addon.harness import MITMDUMP, PLATFORM_KEY, REPO, Proxy, free_port, provider_env, start_proxy

__all__ = ["MITMDUMP", "PLATFORM_KEY", "REPO", "PlatformTrap", "free_port", "provider_env", "start_proxy"]


@dataclass
class PlatformTrap:
    """Stands on the platform's address and records every connection: with BYOK on there must be none."""

    port: int
    connections: list[float] = field(default_factory=list)
    _server: socket.socket | None = None

    def start(self) -> PlatformTrap:
        self._server = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def _accept(self) -> None:
        assert self._server is not None
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            self.connections.append(time.time())
            conn.close()

    def stop(self) -> None:
        if self._server is not None:
            self._server.close()


@pytest.fixture(scope="session")
def emulators(tmp_path_factory) -> Iterator[Emulators]:
    emus = start_emulators(tmp_path_factory.mktemp("emulators"))
    yield emus
    emus.stop()


@pytest.fixture(scope="session")
def trap() -> Iterator[PlatformTrap]:
    trap = PlatformTrap(free_port()).start()
    yield trap
    trap.stop()


@pytest.fixture(scope="module", params=["forward", "reverse"])
def proxy(request, tmp_path_factory, emulators, trap) -> Iterator[Proxy]:
    """mitmdump on the demo rules, in forward-proxy and in reverse mode."""
    workdir = tmp_path_factory.mktemp(f"proxy-{request.param}")
    env = provider_env(emulators, f"127.0.0.1:{trap.port}")
    proxy = start_proxy(workdir, REPO / "rules" / "demo.yaml", env, trap.port, mode=request.param)
    yield proxy
    proxy.stop()
    assert trap.connections == [], "a connection reached the platform address while BYOK was on"
