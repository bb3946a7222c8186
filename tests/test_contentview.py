"""The AWS event-stream content view."""

from __future__ import annotations

import base64

import pytest
from mitmproxy import contentviews
from mitmproxy.contentviews import Metadata
from mitmproxy.test import taddons, tflow

from addon.contentview import CONTENT_TYPE, EventStreamViewer, decode_events, eventstream_view
from addon.emulators import eventstream


def stream() -> bytes:
    return (
        eventstream.event("messageStart", {"role": "assistant"}, pad=False)
        + eventstream.event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hello"}}, pad=False)
        + eventstream.event("chunk", {"bytes": base64.b64encode(b'{"type":"message_stop"}').decode()}, pad=False)
        + eventstream.exception("throttlingException", {"message": "slow down"})
    )


def test_decodes_frames_into_json_events():
    events = decode_events(stream())
    assert [e["headers"].get(":event-type") or e["headers"][":exception-type"] for e in events] == [
        "messageStart", "contentBlockDelta", "chunk", "throttlingException"
    ]
    assert events[1]["payload"] == {"contentBlockIndex": 0, "delta": {"text": "Hello"}}
    assert events[2]["payload"] == {"bytes": {"type": "message_stop"}}


def test_prettify_and_priority():
    meta = Metadata(content_type=CONTENT_TYPE)
    text = eventstream_view.prettify(stream(), meta)
    assert "# event: contentBlockDelta" in text and '"text": "Hello"' in text
    assert "# exception: throttlingException" in text
    assert eventstream_view.render_priority(stream(), meta) > 1
    assert eventstream_view.render_priority(b"{}", Metadata(content_type="application/json")) < 0


def test_corrupt_frame_is_an_error():
    data = bytearray(stream())
    data[20] ^= 0xFF
    with pytest.raises(ValueError, match="not a valid AWS event stream"):
        decode_events(bytes(data))


def test_registered_and_chosen_for_bedrock_streams():
    with taddons.context(EventStreamViewer()):
        flow = tflow.tflow(resp=True)
        flow.response.headers["content-type"] = CONTENT_TYPE
        flow.response.content = stream()
        result = contentviews.prettify_message(flow.response, flow)
    assert result.view_name == "AWS EventStream"
    assert result.text.startswith("# event: messageStart\n{\n  \"role\": \"assistant\"")
