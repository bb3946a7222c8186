"""An append-only HAR file that is a complete, loadable HAR document after every append.

Layout: a fixed head line, one compact JSON entry per line separated by ",\n", and a fixed tail. An
append overwrites the tail with the next entry and a new tail, so it costs the same however long
the file is. A torn final write (crash mid-append) is repaired when the file is opened again.
Readers stream the entries line by line; a HAR file from elsewhere is loaded whole instead.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

logger = logging.getLogger(__name__)

TAIL = b"\n]}}\n"
HEAD_PREFIX = b'{"log":{"version":"1.2","creator":'
HEAD_SUFFIX = b',"pages":[],"entries":[\n'


class HarFormatError(ValueError):
    """A file that is not a loadable HAR document."""


def head(creator_version: str) -> bytes:
    creator = json.dumps({"name": "byok-proxy", "version": creator_version})
    return HEAD_PREFIX + creator.encode() + HEAD_SUFFIX


def is_own_head(line: bytes) -> bool:
    return line.startswith(HEAD_PREFIX) and line.endswith(HEAD_SUFFIX)


def iter_entry_lines(data: bytes) -> Iterator[bytes]:
    """The entry lines of a file's bytes, whole ones only, in order."""
    lines = data.split(b"\n")
    for line in lines[1:]:
        line = line.rstrip(b",")
        if not line.startswith(b"{"):
            continue
        yield line


def iter_entries(path: Path) -> Iterator[dict[str, Any]]:
    """Every entry of a HAR file, in order, in bounded memory for files this module wrote.
    Raises HarFormatError for what is not a complete HAR document."""
    with open(path, "rb") as f:
        first = f.readline()
        if not is_own_head(first):
            yield from _load_whole(path)
            return
        ended = False
        for number, raw in enumerate(f, start=2):
            line = raw.rstrip(b"\n")
            if line == b"]}}" and not ended:
                ended = True
                continue
            if ended or not line:
                if line:
                    raise HarFormatError(f"{path}: line {number}: data after the end of the HAR document")
                continue
            try:
                entry = json.loads(line.removesuffix(b","))
            except ValueError as e:
                raise HarFormatError(f"{path}: line {number}: not a JSON entry ({e})") from None
            if not isinstance(entry, dict):
                raise HarFormatError(f"{path}: line {number}: an entry must be a JSON object")
            yield entry
        if not ended:
            raise HarFormatError(f"{path}: the HAR document is not closed (torn write; restart the proxy to repair)")


def _load_whole(path: Path) -> Iterator[dict[str, Any]]:
    try:
        with open(path, "rb") as f:
            har = json.load(f)
    except ValueError as e:
        raise HarFormatError(f"{path}: not a JSON document ({e})") from None
    entries = har.get("log", {}).get("entries") if isinstance(har, dict) else None
    if not isinstance(entries, list):
        raise HarFormatError(f"{path}: no log.entries list; not a HAR file")
    yield from entries


def serialize(entry: dict[str, Any]) -> bytes:
    """One entry as a single line (JSON escapes every newline inside strings)."""
    return json.dumps(entry, separators=(",", ":"), ensure_ascii=False).encode()


def _last_line(f: IO[bytes], end: int) -> bytes:
    """The line ending at `end` (exclusive), read backwards in chunks: cheap on any file size."""
    chunk = 1 << 16
    pos = end
    buf = b""
    while pos > 0:
        start = max(0, pos - chunk)
        f.seek(start)
        buf = f.read(pos - start) + buf
        pos = start
        if (cut := buf.rfind(b"\n")) >= 0:
            return buf[cut + 1 :]
    return buf


class HarAppender:
    """Appends entries to a HAR file; not thread-safe (one writer thread owns it)."""

    def __init__(self, path: Path, creator_version: str) -> None:
        self.path = path
        self._head = head(creator_version)
        self.entries = 0
        self.last_entry: dict[str, Any] | None = None
        """The file's last entry, so a log can continue what it holds (its hash chain)."""
        self.first_entry: dict[str, Any] | None = None
        self._file = self._open()

    @property
    def size(self) -> int:
        return self._file.tell() + len(TAIL)

    def _open(self) -> IO[bytes]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists() or self.path.stat().st_size == 0:
            self.path.write_bytes(self._head + TAIL)
        elif not self._read_state():
            self._repair()
        f = open(self.path, "r+b")
        f.seek(0, os.SEEK_END)
        f.seek(f.tell() - len(TAIL))
        return f

    def _read_state(self) -> bool:
        """Reads the first and last entries without loading the file; False when it needs a repair."""
        with open(self.path, "rb") as f:
            first = f.readline()
            if not is_own_head(first):
                return False
            end = f.seek(0, os.SEEK_END)
            f.seek(end - len(TAIL))
            if f.read() != TAIL:
                return False
            if end - len(TAIL) == len(first):  # no entries yet
                return True
            last = _last_line(f, end - len(TAIL))
            try:
                self.last_entry = json.loads(last)
            except ValueError:
                return False
            f.seek(0)
            f.readline()
            self.first_entry = json.loads(f.readline().rstrip(b"\n").removesuffix(b","))
        # Counting lines streams the file once at start; appends need only "is it empty".
        with open(self.path, "rb") as f:
            self.entries = sum(1 for _ in f) - 2
        return True

    def _repair(self) -> None:
        """Keeps every whole entry of a torn file, streaming it into a fresh file."""
        tmp = self.path.with_suffix(self.path.suffix + ".repair")
        kept = 0
        with open(self.path, "rb") as src, open(tmp, "wb") as dst:
            dst.write(self._head)
            src.readline()
            for raw in src:
                line = raw.rstrip(b"\n").removesuffix(b",")
                if not line.startswith(b"{"):
                    continue
                try:
                    entry = json.loads(line)
                except ValueError:
                    break
                dst.write((b",\n" if kept else b"") + line)
                if kept == 0:
                    self.first_entry = entry
                self.last_entry = entry
                kept += 1
            dst.write(TAIL)
        self.entries = kept
        logger.warning(f"audit file {self.path} ended in a torn write; repaired it keeping {kept} complete entries")
        os.replace(tmp, self.path)

    def append(self, entry: dict[str, Any]) -> None:
        self.append_line(serialize(entry))

    def append_line(self, line: bytes) -> None:
        """Appends one entry already serialized by `serialize`."""
        # One write call: a kill leaves either the old document or the new one, never a mix.
        self._file.write((b",\n" if self.entries else b"") + line + TAIL)
        self._file.flush()
        self._file.seek(-len(TAIL), os.SEEK_CUR)
        self.entries += 1

    def close(self) -> None:
        self._file.close()
