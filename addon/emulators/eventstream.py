"""Encoder for AWS binary event-stream frames (application/vnd.amazon.eventstream)."""

from __future__ import annotations

import json
import struct
import zlib
from typing import Any

from .content import padding

_STRING = 7
_BYTES = 6
_TRUE = 0
_FALSE = 1
_INT32 = 4


def _crc(data: bytes) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


def encode_headers(headers: dict[str, str | bytes | bool | int]) -> bytes:
    out = bytearray()
    for name, value in headers.items():
        raw_name = name.encode("utf-8")
        out += struct.pack(">B", len(raw_name)) + raw_name
        if isinstance(value, bool):
            out += struct.pack(">B", _TRUE if value else _FALSE)
        elif isinstance(value, int):
            out += struct.pack(">Bi", _INT32, value)
        elif isinstance(value, bytes):
            out += struct.pack(">BH", _BYTES, len(value)) + value
        else:
            raw = value.encode("utf-8")
            out += struct.pack(">BH", _STRING, len(raw)) + raw
    return bytes(out)


def encode_message(headers: dict[str, str | bytes | bool | int], payload: bytes) -> bytes:
    """prelude (total len, headers len, prelude CRC) + headers + payload + message CRC."""
    hdrs = encode_headers(headers)
    total = 12 + len(hdrs) + len(payload) + 4
    prelude = struct.pack(">II", total, len(hdrs))
    head = prelude + struct.pack(">I", _crc(prelude)) + hdrs + payload
    return head + struct.pack(">I", _crc(head))


def event(event_type: str, payload: dict[str, Any], pad: bool = True) -> bytes:
    body = dict(payload)
    if pad:
        body["p"] = padding()
    return encode_message(
        {":event-type": event_type, ":content-type": "application/json", ":message-type": "event"},
        json.dumps(body, separators=(",", ":")).encode(),
    )


def exception(exception_type: str, payload: dict[str, Any]) -> bytes:
    return encode_message(
        {":exception-type": exception_type, ":content-type": "application/json", ":message-type": "exception"},
        json.dumps(payload, separators=(",", ":")).encode(),
    )
