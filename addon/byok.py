"""mitmproxy entry point: `mitmdump -s addon/byok.py --set byok_rules=rules/example.yaml`."""

import sys
from pathlib import Path

# Loaded as a script, this file's folder is on sys.path but the repository root may not be.
_root = str(Path(__file__).resolve().parent.parent)
if _root not in sys.path:
    sys.path.insert(0, _root)

from addon.audit.log import AuditLog  # noqa: E402
from addon.contentview import EventStreamViewer  # noqa: E402
from addon.router import ByokRouter  # noqa: E402

addons = [ByokRouter(), AuditLog(), EventStreamViewer()]
