"""The audit file writer: chains, rotates and appends entries. Runs on one writer thread only."""

from __future__ import annotations

import logging
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from addon.audit.chain import ChainState
from addon.audit.har_file import HarAppender, serialize

logger = logging.getLogger(__name__)

_SIZE_UNITS = {"b": 1, "kb": 1 << 10, "mb": 1 << 20, "gb": 1 << 30}
_TIME_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_PART = re.compile(r"^(\d+)\s*([a-z]+)$")


class Rotation(NamedTuple):
    max_bytes: int | None = None
    max_seconds: float | None = None

    @property
    def enabled(self) -> bool:
        return self.max_bytes is not None or self.max_seconds is not None


NO_ROTATION = Rotation()


def parse_rotation(spec: str | None) -> Rotation:
    """`100MB`, `1d`, `100MB,1d` (whichever comes first); empty: never rotate."""
    max_bytes = max_seconds = None
    for part in (spec or "").lower().replace(" ", "").split(","):
        if not part:
            continue
        match = _PART.match(part)
        if match is None or match.group(2) not in {**_SIZE_UNITS, **_TIME_UNITS}:
            raise ValueError(f"{part!r} is neither a size (10MB, 1GB) nor a time (30m, 1h, 1d)")
        number, unit = int(match.group(1)), match.group(2)
        if number <= 0:
            raise ValueError(f"{part!r} must be greater than zero")
        if unit in _SIZE_UNITS:
            max_bytes = number * _SIZE_UNITS[unit]
        else:
            max_seconds = float(number * _TIME_UNITS[unit])
    return Rotation(max_bytes, max_seconds)


def rotated_name(path: Path, when: float) -> Path:
    """`audit.har` -> `audit.20261204T213000Z.har`: sorts by time, before the live file."""
    stamp = datetime.fromtimestamp(when, UTC).strftime("%Y%m%dT%H%M%SZ")
    candidate = path.with_name(f"{path.stem}.{stamp}{path.suffix}")
    n = 1
    while candidate.exists():
        candidate = path.with_name(f"{path.stem}.{stamp}-{n}{path.suffix}")
        n += 1
    return candidate


def _started(entry: dict[str, Any] | None) -> float | None:
    try:
        return datetime.fromisoformat(entry["startedDateTime"]).timestamp() if entry else None
    except (KeyError, TypeError, ValueError):
        return None


class AuditWriter:
    """Owns the live audit file: continues its hash chain on restart and rotates it by size or age."""

    def __init__(self, path: Path, version: str, key: bytes | None = None, rotation: Rotation = NO_ROTATION) -> None:
        self.path = path
        self.version = version
        self.key = key
        self.rotation = rotation
        self.appender = HarAppender(path, version)
        self.chain = ChainState.after(self.appender.last_entry)
        self.opened = _started(self.appender.first_entry)

    def _due(self, now: float) -> bool:
        if not self.rotation.enabled or self.appender.entries == 0:
            return False
        if self.rotation.max_bytes is not None and self.appender.size >= self.rotation.max_bytes:
            return True
        opened = self.opened if self.opened is not None else now
        return self.rotation.max_seconds is not None and now - opened >= self.rotation.max_seconds

    def rotate(self, now: float | None = None) -> Path:
        """Closes the live file under a timestamped name and starts a new one; the chain carries over."""
        now = time.time() if now is None else now
        self.appender.close()
        target = rotated_name(self.path, now)
        self.path.rename(target)
        self.appender = HarAppender(self.path, self.version)
        self.opened = None
        logger.info(f"audit file rotated: {target.name} is complete; continuing in {self.path.name}")
        return target

    def write(self, entry: dict[str, Any], now: float | None = None) -> None:
        now = time.time() if now is None else now
        if self._due(now):
            self.rotate(now)
        before = ChainState(self.chain.seq, self.chain.prev)
        self.chain.link(entry, self.key)
        try:
            self.appender.append_line(serialize(entry))
        except OSError:
            self.chain = before  # the entry is lost, not the chain
            raise
        if self.opened is None:
            self.opened = now

    def close(self) -> None:
        self.appender.close()
