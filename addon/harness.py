"""Run byok-proxy under a real mitmdump and talk to it: shared by the demo, the tests and benchmarks."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import openai

from addon.emulators import fakes
from addon.emulators.runner import Emulators

REPO = Path(__file__).resolve().parent.parent
MITMDUMP = Path(sys.executable).parent / "mitmdump"
PLATFORM_KEY = "sk-platform-app-key-fake-0000000000000000"
"""The app's own platform credential in the demo and tests: it must never reach a provider."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


CREDENTIAL_ENV_PREFIXES = ("AWS_", "AZURE_", "GEMINI_", "GOOGLE_", "OPENAI_", "BYOK_")


def inherited_env() -> dict[str, str]:
    """This process's environment without credentials or settings of its own: the proxy under test sees
    exactly the fake ones it is given, whatever the machine running the tests has configured."""
    return {k: v for k, v in os.environ.items() if not k.startswith(CREDENTIAL_ENV_PREFIXES)}


def provider_env(emus: Emulators, platform_host: str) -> dict[str, str]:
    """The environment the demo rules file reads: emulator endpoints and fake credentials."""
    return {
        "BYOK_PLATFORM_HOST": platform_host,
        "BYOK_EMULATOR_AZURE": emus.azure,
        "BYOK_EMULATOR_BEDROCK": emus.bedrock,
        "BYOK_EMULATOR_GEMINI": emus.gemini,
        "BYOK_EMULATOR_VERTEX": emus.vertex,
        "AZURE_OPENAI_API_KEY": fakes.AZURE_API_KEY,
        "GEMINI_API_KEY": fakes.GEMINI_API_KEY,
        "GOOGLE_APPLICATION_CREDENTIALS": emus.service_account_file,
        "AWS_ACCESS_KEY_ID": fakes.AWS_ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": fakes.AWS_SECRET_ACCESS_KEY,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": "/nonexistent/aws-config",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
    }


@dataclass
class Proxy:
    """A real mitmdump process running byok-proxy."""

    process: subprocess.Popen
    port: int
    mode: str
    confdir: Path
    audit: Path
    platform_base: str
    log_path: Path

    @property
    def ca(self) -> Path:
        return self.confdir / "mitmproxy-ca-cert.pem"

    def http_client(self, **kwargs) -> httpx.Client:
        verify = ssl.create_default_context(cafile=str(self.ca))
        if self.mode == "forward":
            return httpx.Client(proxy=f"http://127.0.0.1:{self.port}", verify=verify, **kwargs)
        return httpx.Client(verify=verify, **kwargs)

    def openai(self, base_url: str | None = None, **kwargs) -> openai.OpenAI:
        """The official SDK as an unmodified app would use it, pointed at the platform through the proxy."""
        return openai.OpenAI(
            base_url=base_url or self.platform_base, api_key=PLATFORM_KEY, http_client=self.http_client(),
            max_retries=0, **kwargs,
        )

    def log(self) -> str:
        return self.log_path.read_text()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_proxy(
    workdir: Path, rules: Path, env: dict[str, str], platform_port: int, *, mode: str = "forward",
    extra: tuple[str, ...] = (),
) -> Proxy:
    """Starts mitmdump with byok-proxy; `platform_port` is the platform's port (the reverse-mode target)."""
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    confdir = workdir / "conf"
    audit = workdir / "audit.har"
    log_path = workdir / "mitmdump.log"
    args = [
        str(MITMDUMP), "-s", str(REPO / "addon" / "byok.py"),
        "--listen-host", "127.0.0.1", "--listen-port", str(port),
        "--set", f"confdir={confdir}", "--set", f"byok_rules={rules}", "--set", f"byok_audit={audit}",
        *extra,
    ]
    if mode == "reverse":
        args += ["--mode", f"reverse:https://127.0.0.1:{platform_port}"]
        platform_base = f"https://127.0.0.1:{port}/v1"
    else:
        platform_base = f"https://127.0.0.1:{platform_port}/v1"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, env={**inherited_env(), **env}, cwd=workdir
        )
    proxy = Proxy(process, port, mode, confdir, audit, platform_base, log_path)
    deadline = time.time() + 30
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mitmdump exited with {process.returncode}:\n{proxy.log()}")
        if "listening at" in proxy.log() and proxy.ca.exists():
            return proxy
        time.sleep(0.1)
    proxy.stop()
    raise RuntimeError(f"mitmdump did not start:\n{proxy.log()}")
