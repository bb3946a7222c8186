"""A mitmproxy content view that decodes AWS event streams (Bedrock's streamed answers) into JSON events."""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

from botocore.eventstream import EventStreamBuffer
from mitmproxy import contentviews
from mitmproxy.contentviews import Contentview, Metadata

logger = logging.getLogger(__name__)

CONTENT_TYPE = "application/vnd.amazon.eventstream"


def _payload(data: bytes) -> Any:
    try:
        value = json.loads(data)
    except ValueError:
        return data.decode("utf-8", errors="replace")
    # InvokeModelWithResponseStream wraps each model chunk as {"bytes": base64(JSON)}.
    if isinstance(value, dict) and isinstance(value.get("bytes"), str):
        try:
            value = {**value, "bytes": json.loads(base64.b64decode(value["bytes"]))}
        except ValueError:
            pass
    return value


def decode_events(data: bytes) -> list[dict[str, Any]]:
    """Every whole frame as {headers, payload}; raises ValueError on a corrupt frame (bad CRC, length)."""
    buffer = EventStreamBuffer()
    buffer.add_data(data)
    events = []
    try:
        for message in buffer:
            headers = {k: v.decode("utf-8", "replace") if isinstance(v, bytes) else v
                       for k, v in message.headers.items()}
            events.append({"headers": headers, "payload": _payload(message.payload)})
    except Exception as e:  # botocore raises its own parser errors
        raise ValueError(f"not a valid AWS event stream after {len(events)} frames: {e}") from None
    return events


class EventStreamContentview(Contentview):
    @property
    def name(self) -> str:
        return "AWS EventStream"

    @property
    def syntax_highlight(self):
        return "yaml"

    def prettify(self, data: bytes, metadata: Metadata) -> str:
        events = decode_events(data)
        lines = []
        for event in events:
            kind = event["headers"].get(":event-type") or event["headers"].get(":exception-type") or "?"
            lines.append(f"# {event['headers'].get(':message-type', 'event')}: {kind}")
            lines.append(json.dumps(event["payload"], indent=2, ensure_ascii=False))
        return "\n".join(lines) if lines else "(no complete event-stream frame)"

    def render_priority(self, data: bytes, metadata: Metadata) -> float:
        return 2 if metadata.content_type == CONTENT_TYPE and data else -1


eventstream_view = EventStreamContentview()


class EventStreamViewer:
    """Registers the view with mitmproxy (mitmweb and mitmproxy's console show it for Bedrock streams)."""

    def load(self, loader) -> None:
        contentviews.add(eventstream_view)
