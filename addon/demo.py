"""The demo: local provider emulators, byok-proxy in front of them, and the official openai SDK
sending one request per alias to the platform (api.openai.com) through the proxy.

Run it with `scripts/demo`. Nothing leaves the machine: the platform host is never contacted.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import openai
import yaml

from addon.emulators.runner import start_emulators
from addon.harness import REPO, provider_env, start_proxy

PLATFORM_HOST = "api.openai.com"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", default=str(REPO / "rules" / "demo.yaml"), help="rules file (default: %(default)s)")
    parser.add_argument("--workdir", default=str(REPO / ".byok" / "demo"), help="where the audit file goes")
    args = parser.parse_args()

    workdir = Path(args.workdir)
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    emulators = start_emulators(Path(tempfile.mkdtemp(prefix="byok-emulators-")))
    env = provider_env(emulators, PLATFORM_HOST)
    print(f"emulators: azure {emulators.azure}, bedrock {emulators.bedrock}, gemini {emulators.gemini}, "
          f"vertex {emulators.vertex}")
    proxy = start_proxy(workdir, Path(args.rules), env, 443, mode="forward")
    print(f"byok-proxy (mitmdump) listening on 127.0.0.1:{proxy.port}; the app talks to https://{PLATFORM_HOST}/v1\n")
    try:
        client = proxy.openai(f"https://{PLATFORM_HOST}/v1")
        models = yaml.safe_load(Path(args.rules).read_text())["models"]
        rows = []
        for alias, route in models.items():
            rows.append(_call(client, alias, route, emulators))
        rows.append(_call(client, "unknown_alias", {"provider": "-", "model": "-"}, emulators))
        width = max(len(r[0]) for r in rows)
        print(f"{'alias':<{width}}  {'served by':<58}  result")
        for alias, served_by, result in rows:
            print(f"{alias:<{width}}  {served_by:<58}  {result}")
    finally:
        proxy.stop()
        emulators.stop()
    entries = json.loads(proxy.audit.read_text())["log"]["entries"]
    print(f"\nplatform host {PLATFORM_HOST} contacted: never (BYOK on; connections to it are blocked)")
    print(f"audit file: {proxy.audit.resolve()} ({len(entries)} entries; open it with `mitmweb -r` or a HAR viewer)")
    return 0


def _call(client: openai.OpenAI, alias: str, route: dict, emulators) -> tuple[str, str, str]:
    served_by = f"{route['provider']}/{route['model']}"
    try:
        if alias.startswith("embed"):
            result = client.embeddings.create(model=alias, input=["bring your own key", "audit everything"])
            summary = f"{len(result.data)} embeddings x {len(result.data[0].embedding)} dims"
        else:
            completion = client.chat.completions.create(
                model=alias, messages=[{"role": "user", "content": f"Hello from the demo app to {alias}"}],
                max_tokens=100,
            )
            summary = f"{completion.choices[0].message.content!r} ({completion.usage.total_tokens} tokens)"
    except openai.APIStatusError as e:
        summary = f"HTTP {e.status_code}: {e.message}"
    return alias, served_by, summary


if __name__ == "__main__":
    raise SystemExit(main())
