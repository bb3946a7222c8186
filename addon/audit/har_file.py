"""An append-only HAR file that is a complete, loadable HAR document after every append.

Layout: a fixed head, one compact JSON entry per line separated by ",\n", and a fixed tail. An
append overwrites the tail with the next entry and a new tail, so it costs the same however long
the file is. A torn final write (crash mid-append) is repaired when the file is opened again.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

TAIL = b"\n]}}\n"


def head(creator_version: str) -> bytes:
    creator = json.dumps({"name": "byok-proxy", "version": creator_version})
    return ('{"log":{"version":"1.2","creator":' + creator + ',"pages":[],"entries":[\n').encode()


def iter_entry_lines(data: bytes) -> Iterator[bytes]:
    """The entry lines of a file's bytes, whole ones only, in order."""
    lines = data.split(b"\n")
    for line in lines[1:]:
        line = line.rstrip(b",")
        if not line.startswith(b"{"):
            continue
        yield line


def serialize(entry: dict[str, Any]) -> bytes:
    """One entry as a single line (JSON escapes every newline inside strings)."""
    return json.dumps(entry, separators=(",", ":"), ensure_ascii=False).encode()


class HarAppender:
    """Appends entries to a HAR file; not thread-safe (one writer thread owns it)."""

    def __init__(self, path: Path, creator_version: str) -> None:
        self.path = path
        self._head = head(creator_version)
        self.entries = 0
        self._file = self._open()

    def _open(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists() or self.path.stat().st_size == 0:
            self.path.write_bytes(self._head + TAIL)
        else:
            self._repair_if_torn()
        f = open(self.path, "r+b")
        f.seek(0, os.SEEK_END)
        f.seek(f.tell() - len(TAIL))
        return f

    def _repair_if_torn(self) -> None:
        data = self.path.read_bytes()
        whole = []
        for line in iter_entry_lines(data):
            try:
                json.loads(line)
            except ValueError:
                break
            whole.append(line)
        self.entries = len(whole)
        if data.startswith(b'{"log"') and data.endswith(TAIL) and self._is_valid(data):
            return
        repaired = self._head + b",\n".join(whole) + TAIL
        logger.warning(
            f"audit file {self.path} ended in a torn write; repaired it keeping {len(whole)} complete entries"
        )
        tmp = self.path.with_suffix(self.path.suffix + ".repair")
        tmp.write_bytes(repaired)
        os.replace(tmp, self.path)

    @staticmethod
    def _is_valid(data: bytes) -> bool:
        try:
            json.loads(data)
        except ValueError:
            return False
        return True

    def append(self, entry: dict[str, Any]) -> None:
        self.append_line(serialize(entry))

    def append_line(self, line: bytes) -> None:
        """Appends one entry already serialized by `serialize`."""
        self._file.write((b",\n" if self.entries else b"") + line + TAIL)
        self._file.flush()
        self._file.seek(-len(TAIL), os.SEEK_CUR)
        self.entries += 1

    def close(self) -> None:
        self._file.close()
