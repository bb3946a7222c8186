"""kill -9 under load: the audit file still loads and holds every exchange whose answer reached the app."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time

from addon.audit.har_file import HarAppender, iter_entries
from addon.audit.verify import verify
from addon.harness import MITMDUMP, PLATFORM_KEY, REPO, PlatformTrap, free_port, provider_env, start_proxy


def test_kill_9_under_load_keeps_every_answered_exchange(tmp_path, emulators):
    trap = PlatformTrap(free_port()).start()
    proxy = start_proxy(tmp_path, REPO / "rules" / "demo.yaml", provider_env(emulators, f"127.0.0.1:{trap.port}"),
                        trap.port)
    answered: list[str] = []
    stop = threading.Event()

    def load(n: int) -> None:
        with proxy.http_client(timeout=10) as http:
            i = 0
            while not stop.is_set():
                i += 1
                try:
                    response = http.post(
                        f"{proxy.platform_base}/chat/completions",
                        json={"model": "gpt_large", "messages": [{"role": "user", "content": f"load {n} {i}"}]},
                        headers={"authorization": f"Bearer {PLATFORM_KEY}"},
                    )
                except Exception:
                    return  # the proxy died under us
                if response.status_code == 200:
                    answered.append(response.headers["x-request-id"])

    workers = [threading.Thread(target=load, args=(n,)) for n in range(8)]
    for worker in workers:
        worker.start()
    try:
        deadline = time.time() + 20
        while len(answered) < 150 and time.time() < deadline:
            time.sleep(0.05)
        os.kill(proxy.process.pid, signal.SIGKILL)
        proxy.process.wait(10)
    finally:
        stop.set()
        for worker in workers:
            worker.join(15)
        proxy.stop()
        trap.stop()
    completed = set(answered)
    assert len(completed) >= 50, "the load did not get going"

    # Valid as left by the kill (one write per append), or at worst after the automatic repair.
    try:
        json.loads(proxy.audit.read_bytes())
    except ValueError:
        HarAppender(proxy.audit, "test").close()
    har = json.loads(proxy.audit.read_bytes())
    logged = {e["_byok"].get("provider_request_id") for e in har["log"]["entries"]}
    assert completed <= logged, f"{len(completed - logged)} answered exchanges are missing from the audit file"
    assert verify([proxy.audit]).ok
    assert sum(1 for _ in iter_entries(proxy.audit)) >= len(completed)

    loaded = subprocess.run(
        [str(MITMDUMP), "-n", "-r", str(proxy.audit), "--set", f"confdir={proxy.confdir}"],
        capture_output=True, text=True, timeout=60,
    )
    assert loaded.returncode == 0, loaded.stderr + loaded.stdout
    assert loaded.stdout.count("POST") >= len(completed)
