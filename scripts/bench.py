"""Benchmarks byok-proxy against the local emulators: added latency, CPU per request and memory of the
mitmdump process. Prints a table. Usage: scripts/bench [--requests N]."""

from __future__ import annotations

import argparse
import os
import ssl
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from addon.emulators import fakes
from addon.emulators.runner import start_emulators
from addon.harness import MITMDUMP, PLATFORM_KEY, REPO, PlatformTrap, free_port, provider_env, start_proxy

CHAT = {"messages": [{"role": "user", "content": "benchmark me please"}], "max_tokens": 50}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def timed(send, n: int) -> list[float]:
    send()  # warm up connections and caches
    times = []
    for _ in range(n):
        start = time.perf_counter()
        send()
        times.append((time.perf_counter() - start) * 1000)
    return times


def first_chunk_ms(client: httpx.Client, url: str, body: dict, headers: dict) -> float:
    start = time.perf_counter()
    with client.stream("POST", url, json=body, headers=headers) as response:
        for _ in response.iter_bytes():
            return (time.perf_counter() - start) * 1000
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=200)
    n = parser.parse_args().requests
    tmp = Path(tempfile.mkdtemp(prefix="byok-bench-"))
    emulators = start_emulators(tmp / "emulators")
    trap = PlatformTrap(free_port()).start()
    proxy = start_proxy(tmp / "proxy", REPO / "rules" / "demo.yaml",
                        provider_env(emulators, f"127.0.0.1:{trap.port}"), trap.port)
    pid = proxy.process.pid
    bare_port = free_port()
    bare = subprocess.Popen(
        [str(MITMDUMP), "--listen-host", "127.0.0.1", "--listen-port", str(bare_port), "-q",
         "--set", f"confdir={tmp / 'bare'}"],
    )
    time.sleep(2)  # bare mitmdump prints nothing with -q; give it time to bind
    rows = []
    try:
        direct = httpx.Client()
        via = httpx.Client(proxy=f"http://127.0.0.1:{proxy.port}",
                           verify=ssl.create_default_context(cafile=str(proxy.ca)))
        platform = {"authorization": f"Bearer {PLATFORM_KEY}"}
        azure_url = f"{emulators.azure}/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
        bare_client = httpx.Client(proxy=f"http://127.0.0.1:{bare_port}")
        cases = [
            ("azure chat, direct to emulator", lambda: direct.post(
                azure_url, json=CHAT, headers={"api-key": fakes.AZURE_API_KEY}).raise_for_status(), None),
            ("azure chat via bare mitmdump (no addon)", lambda: bare_client.post(
                azure_url, json=CHAT, headers={"api-key": fakes.AZURE_API_KEY}).raise_for_status(), bare.pid),
        ]
        for alias in ("gpt_large", "claude_large", "gemini_large", "gemini_vertex"):
            cases.append((f"{alias} via byok-proxy", lambda a=alias: via.post(
                f"{proxy.platform_base}/chat/completions", json={**CHAT, "model": a}, headers=platform,
            ).raise_for_status(), pid))
        cases.append(("embed_titan x4 (fan-out) via byok-proxy", lambda: via.post(
            f"{proxy.platform_base}/embeddings", json={"model": "embed_titan", "input": ["a b", "c", "d e", "f"]},
            headers=platform).raise_for_status(), pid))
        for name, send, proxy_pid in cases:
            cpu_before = cpu_seconds(proxy_pid) if proxy_pid else 0.0
            times = timed(send, n)
            cpu = (cpu_seconds(proxy_pid) - cpu_before) / (n + 1) * 1000 if proxy_pid else float("nan")
            rows.append((name, statistics.median(times), statistics.quantiles(times, n=20)[18],
                         1000 / statistics.mean(times), cpu))
        ttfb = [first_chunk_ms(via, f"{proxy.platform_base}/chat/completions",
                               {**CHAT, "model": "claude_large", "stream": True}, platform) for _ in range(20)]
        rss = rss_mib(pid)
    finally:
        proxy.stop()
        bare.terminate()
        bare.wait(10)
        emulators.stop()
        trap.stop()
    print(f"byok-proxy benchmark: {n} sequential requests per row, one client, local emulators\n")
    print(f"{'case':<42} {'p50 ms':>8} {'p95 ms':>8} {'req/s':>8} {'proxy CPU ms/req':>17}")
    for name, p50, p95, rate, cpu in rows:
        print(f"{name:<42} {p50:>8.2f} {p95:>8.2f} {rate:>8.1f} {cpu:>17.2f}")
    print(f"\nclaude_large streamed, time to first chunk via proxy: p50 {statistics.median(ttfb):.2f} ms")
    print(f"mitmdump RSS after the run: {rss:.0f} MiB")
    print(f"platform connections: {len(trap.connections)}")
    print("(bare mitmdump proxies plain HTTP to the emulator; byok-proxy rows add TLS to the app and translation)")


if __name__ == "__main__":
    main()
