import subprocess
import sys

from addon.harness import REPO


def test_demo_serves_every_alias_through_the_customer_accounts(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "addon.demo", "--workdir", str(tmp_path / "demo")],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for alias in ("gpt_large", "claude_large", "gemini_large", "gemini_vertex"):
        assert f"'Echo: Hello from the demo app to {alias}'" in out
    assert "2 embeddings x 1024 dims" in out
    assert "requests that reached the platform host api.openai.com: 0" in out
    assert "hash chain intact" in out
