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
from urllib.parse import urlsplit

import openai
import yaml

from addon import cli
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
        results = {alias: _call(client, alias) for alias in [*models, "unknown_alias"]}
    finally:
        proxy.stop()
        emulators.stop()
    entries = json.loads(proxy.audit.read_text())["log"]["entries"]
    sent_to = {e["_byok"]["alias"]: e for e in entries}
    width = max(len(a) for a in results)
    print(f"{'alias':<{width}}  {'left through (customer account, from the audit log)':<70}  result")
    for alias, result in results.items():
        entry = sent_to.get(alias)
        if entry is None:
            where = "-"
        elif entry["_byok"]["decision"] == "byok":
            url = urlsplit(entry["request"]["url"])
            where = f"{entry['_byok']['provider']}: {entry['request']['method']} {url.netloc}{url.path}"
        else:
            where = entry["_byok"]["decision"][:70]
        print(f"{alias:<{width}}  {where[:70]:<70}  {result}")
    platform_hits = [e for e in entries if urlsplit(e["request"]["url"]).hostname == PLATFORM_HOST
                     and not e["_byok"]["decision"].startswith("blocked")]
    print(f"\nrequests that reached the platform host {PLATFORM_HOST}: {len(platform_hits)}")
    print(f"audit file: {proxy.audit.resolve()} ({len(entries)} entries; `mitmweb -r` or any HAR viewer opens it)")
    print(f"\n$ byok audit verify {proxy.audit}")
    verified = cli.main(["audit", "verify", str(proxy.audit)])
    print(f"(full report: byok audit report {proxy.audit})")
    return 1 if platform_hits or verified else 0


def _call(client: openai.OpenAI, alias: str) -> str:
    try:
        if alias.startswith("embed"):
            result = client.embeddings.create(model=alias, input=["bring your own key", "audit everything"])
            return f"{len(result.data)} embeddings x {len(result.data[0].embedding)} dims"
        completion = client.chat.completions.create(
            model=alias, messages=[{"role": "user", "content": f"Hello from the demo app to {alias}"}], max_tokens=100,
        )
        return f"{completion.choices[0].message.content!r} ({completion.usage.total_tokens} tokens)"
    except openai.APIStatusError as e:
        return f"HTTP {e.status_code}: {e.message}"


if __name__ == "__main__":
    raise SystemExit(main())
