from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from addon.emulators import fakes
from addon.emulators.runner import attach


def test_cli_serves_and_stops(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "addon.emulators", "--state-dir", str(tmp_path)],
                            stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[2])
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("emulators ready ")
        info = json.loads((tmp_path / "emulators.json").read_text())
        assert info["pid"] == proc.pid and Path(info["service_account_file"]).exists()
        emus = attach(tmp_path / "emulators.json")
        url = f"{emus.azure}/openai/v1/chat/completions"
        r = httpx.post(url, headers={"api-key": fakes.AZURE_API_KEY},
                       json={"model": "gpt-4o", "messages": [{"role": "user", "content": "cli"}]})
        assert r.json()["choices"][0]["message"]["content"] == "Echo: cli"
        assert len(emus.recorded("azure")) == 1
        assert emus.token_requests() == 0
        emus.reset()
        assert emus.recorded("azure") == []
    finally:
        proc.send_signal(signal.SIGTERM)
        deadline = time.time() + 10
        while proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
