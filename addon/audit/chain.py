"""The hash chain that makes the audit log tamper-evident. Pure functions over HAR entry dicts.

Each entry carries `_byok.chain = {seq, prev, hash[, hmac, key]}`:
- `canonical`: the entry without `_byok.chain`, as JSON with sorted keys and compact separators;
- `hash = sha256(prev + canonical)`, `prev` being the previous entry's hash (GENESIS for the first
  entry ever; a rotated file's first entry links to the previous file's last hash);
- `hmac = hmac-sha256(key, hash)` when the log has a key, `key` naming it by fingerprint.
Editing an entry breaks its hash; deleting or reordering breaks the next entry's `prev` and `seq`;
recomputing the chain after an edit needs the key once entries carry an HMAC.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from addon import secrets

GENESIS = "0" * 64


def canonical(entry: dict[str, Any]) -> bytes:
    byok = {k: v for k, v in entry.get("_byok", {}).items() if k != "chain"}
    body = {**entry, "_byok": byok}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def entry_hash(prev: str, entry: dict[str, Any]) -> str:
    return hashlib.sha256(prev.encode() + canonical(entry)).hexdigest()


def key_id(key: bytes) -> str:
    """Names a key without revealing it (a hash of a hash, so it is no HMAC oracle either)."""
    return "sha256:" + hashlib.sha256(hashlib.sha256(key).digest()).hexdigest()[:16]


def sign(key: bytes, digest: str) -> str:
    return hmac.new(key, digest.encode(), hashlib.sha256).hexdigest()


@dataclass
class ChainState:
    """Where the chain stands: the next entry's sequence number and its `prev`."""

    seq: int = 0
    prev: str = GENESIS

    @classmethod
    def after(cls, entry: dict[str, Any] | None) -> ChainState:
        """Continues after an entry already in a file (a restart, or the previous rotated file)."""
        if entry is None:
            return cls()
        link = entry.get("_byok", {}).get("chain")
        if isinstance(link, dict) and isinstance(link.get("hash"), str) and isinstance(link.get("seq"), int):
            return cls(link["seq"] + 1, link["hash"])
        # An entry written before chaining existed: anchor the chain on its content.
        return cls(1, entry_hash(GENESIS, entry))

    def link(self, entry: dict[str, Any], key: bytes | None = None) -> dict[str, Any]:
        """Sets the entry's `_byok.chain` and advances the state."""
        digest = entry_hash(self.prev, entry)
        chain: dict[str, Any] = {"seq": self.seq, "prev": self.prev, "hash": digest}
        if key is not None:
            chain["hmac"] = sign(key, digest)
            chain["key"] = key_id(key)
        entry.setdefault("_byok", {})["chain"] = chain
        self.seq += 1
        self.prev = digest
        return entry


@dataclass
class Problem:
    file: str
    index: int
    """The entry's position in its file, from 0."""
    seq: int | None
    message: str

    def __str__(self) -> str:
        seq = f" (seq {self.seq})" if self.seq is not None else ""
        return f"{self.file}: entry {self.index}{seq}: {self.message}"


@dataclass
class ChainVerifier:
    """Checks entries one at a time, across files given in chain order."""

    key: bytes | None = None
    state: ChainState | None = None
    """None until the first entry: a first file may start mid-chain (its predecessors rotated away)."""
    started_at: int | None = None
    entries: int = 0
    signed: int = 0

    def check(self, file: str, index: int, entry: dict[str, Any]) -> Iterator[Problem]:
        link = entry.get("_byok", {}).get("chain") if isinstance(entry.get("_byok"), dict) else None
        if not isinstance(link, dict):
            yield Problem(file, index, None, "no _byok.chain: the entry was added or rewritten by hand")
            return
        seq, prev, digest = link.get("seq"), link.get("prev"), link.get("hash")
        if not isinstance(seq, int) or not isinstance(prev, str) or not isinstance(digest, str):
            yield Problem(file, index, None, "malformed _byok.chain")
            return
        self.entries += 1
        if self.state is None:
            self.started_at = seq
            if seq == 0 and prev != GENESIS:
                yield Problem(file, index, seq, "the first entry of the chain does not start from the genesis hash")
        else:
            if seq != self.state.seq:
                what = "deleted" if seq > self.state.seq else "reordered or duplicated"
                yield Problem(file, index, seq, f"expected seq {self.state.seq}: entries were {what}")
            elif prev != self.state.prev:
                yield Problem(file, index, seq, "prev does not match the previous entry's hash: the chain is broken")
        if entry_hash(prev, entry) != digest:
            yield Problem(file, index, seq, "hash mismatch: the entry was edited after it was written")
        if self.key is not None:
            mac = link.get("hmac")
            if not isinstance(mac, str):
                yield Problem(file, index, seq, "no HMAC although a key was given: not written by a keyed proxy")
            elif not hmac.compare_digest(mac, sign(self.key, digest)):
                yield Problem(file, index, seq, "HMAC mismatch: the entry was forged or the key is wrong")
            else:
                self.signed += 1
        self.state = ChainState(seq + 1, digest)


def link_all(entries: Iterable[dict[str, Any]], key: bytes | None = None) -> list[dict[str, Any]]:
    """Chains entries from the genesis (tests and tools)."""
    state = ChainState()
    return [state.link(e, key) for e in entries]


def resolve_key(ref: str | None) -> bytes | None:
    """The HMAC key from its secret reference (`${ENV_VAR}` or a key file path); never a literal key.
    Raises ValueError saying what to fix."""
    if not ref:
        return None
    if not secrets.is_reference(ref):
        raise ValueError("the HMAC key must be a secret reference (${ENV_VAR} or a path to a key file), "
                         "never the key itself")
    secret = secrets.resolve(ref, Path.cwd())
    if secret.value is None:
        raise ValueError(secret.problem or "the key cannot be resolved")
    return secret.value.encode()
