"""python -m addon.emulators --state-dir DIR [--token-ttl N] [--region R]: serve all four until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import json
import os
import signal
import threading
from pathlib import Path

from . import fakes
from .runner import start_emulators


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m addon.emulators", description=__doc__)
    parser.add_argument("--state-dir", required=True, type=Path, help="where emulators.json and the "
                        "generated Vertex service-account key are written")
    parser.add_argument("--token-ttl", type=int, default=3600, help="lifetime of issued Vertex access tokens (s)")
    parser.add_argument("--region", default=fakes.AWS_REGION, help="the AWS region Bedrock signatures must use")
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    emus = start_emulators(args.state_dir, token_ttl=args.token_ttl, region=args.region)
    info = {**emus.as_json(), "pid": os.getpid()}
    target = args.state_dir / "emulators.json"
    tmp = target.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(info, indent=2))
    tmp.replace(target)  # readers never see a half-written file
    print("emulators ready " + " ".join(f"{k}={v}" for k, v in info.items()), flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        emus.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
