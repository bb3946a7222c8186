from __future__ import annotations

import json

import pytest
from botocore.eventstream import ChecksumMismatch, EventStreamBuffer

from addon.emulators import eventstream as es


def test_frames_decode_with_botocore() -> None:
    raw = es.event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "hé"}}) + es.exception(
        "throttlingException", {"message": "slow down"})
    buf = EventStreamBuffer()
    # feed byte by byte: botocore must reassemble frames split anywhere
    for i in range(len(raw)):
        buf.add_data(raw[i : i + 1])
    msgs = list(buf)
    assert len(msgs) == 2
    first, second = msgs
    assert first.headers == {":event-type": "contentBlockDelta", ":content-type": "application/json",
                             ":message-type": "event"}
    payload = json.loads(first.payload)
    assert payload["delta"] == {"text": "hé"} and payload["p"]
    assert second.headers[":message-type"] == "exception"
    assert second.to_response_dict()["status_code"] == 400


def test_crc_is_checked() -> None:
    raw = bytearray(es.event("messageStart", {"role": "assistant"}))
    raw[-6] ^= 0xFF  # corrupt the payload
    buf = EventStreamBuffer()
    buf.add_data(bytes(raw))
    with pytest.raises(ChecksumMismatch):
        list(buf)


def test_other_header_types() -> None:
    raw = es.encode_message({"b": True, "i": 7, "x": b"\x00\x01", "s": "v"}, b"{}")
    msg = next(iter(_buf(raw)))
    assert msg.headers == {"b": True, "i": 7, "x": b"\x00\x01", "s": "v"}


def _buf(raw: bytes) -> EventStreamBuffer:
    buf = EventStreamBuffer()
    buf.add_data(raw)
    return buf
