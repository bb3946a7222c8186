"""Bedrock ConverseStream (AWS event-stream frames) -> OpenAI `chat.completion.chunk` SSE bytes.

One `ConverseStreamState` per streamed request: it holds the partial frame, the map from Bedrock
content-block indexes to OpenAI tool-call ordinals, and whether the stream has finished.
"""

from __future__ import annotations

import json
import time
from typing import Any

from botocore.eventstream import EventStreamBuffer, EventStreamMessage, ParserError

from addon import openai_format as oa
from addon.providers import bedrock_converse as conv

EXCEPTION_TYPES = {
    "throttlingException": ("rate_limit_error", 429),
    "validationException": ("invalid_request_error", 400),
    "serviceUnavailableException": ("api_error", 503),
    "internalServerException": ("api_error", 500),
    "modelStreamErrorException": ("api_error", 502),
}


class ConverseStreamState:
    def __init__(self, model: str, *, include_usage: bool, json_mode: bool) -> None:
        self.model = model
        self.include_usage = include_usage
        self.json_mode = json_mode
        self.completion_id = oa.new_id()
        self.created = int(time.time())
        self.usage: dict | None = None
        self._buffer = EventStreamBuffer()
        self._started = False
        self._finish_reason: str | None = None
        self._tool_ordinals: dict[int, int] = {}
        self._json_blocks: set[int] = set()
        self._metadata_seen = False
        self._ended = False
        self._pending = 0
        """Bytes fed but not yet part of a complete frame."""

    def feed(self, data: bytes) -> bytes:
        if self._ended:
            return b""
        self._buffer.add_data(data)
        self._pending += len(data)
        out: list[bytes] = []
        try:
            for message in self._buffer:
                self._pending -= message.prelude.total_length
                out.append(self._message(message))
                if self._ended:
                    break
        except (ParserError, ValueError) as e:
            out.append(self._error(f"AWS Bedrock sent a malformed event stream ({type(e).__name__}).",
                                   "api_error", "bad_event_stream"))
        return b"".join(out)

    def end(self) -> bytes:
        if self._ended:
            return b""
        if self._pending:
            return self._error("The AWS Bedrock stream ended in the middle of an event.",
                               "api_error", "stream_truncated")
        if self._finish_reason is not None:
            return self._finish()  # `metadata` never came: the answer is whole, only its usage is missing
        return self._error("The AWS Bedrock stream ended before the model finished its answer.",
                           "api_error", "stream_truncated")

    def _message(self, message: EventStreamMessage) -> bytes:
        headers = message.headers
        kind = headers.get(":message-type")
        if kind == "exception":
            return self._exception(str(headers.get(":exception-type", "exception")), message.payload)
        if kind == "error":
            code = str(headers.get(":error-code", "error"))
            return self._error(f"AWS Bedrock: {headers.get(':error-message', code)}", "api_error", code)
        try:
            payload = json.loads(message.payload) if message.payload else {}
        except ValueError:
            payload = {}
        return self._event(str(headers.get(":event-type", "")), payload if isinstance(payload, dict) else {})

    def _event(self, event: str, payload: dict[str, Any]) -> bytes:
        out = b""
        if not self._started and event in ("messageStart", "contentBlockStart", "contentBlockDelta"):
            self._started = True
            out += self._chunk({"role": "assistant", "content": ""})
        if event == "contentBlockStart":
            out += self._block_start(payload)
        elif event == "contentBlockDelta":
            out += self._block_delta(payload)
        elif event == "messageStop":
            out += self._message_stop(payload.get("stopReason"))
        elif event == "metadata":
            out += self._metadata(payload)
        # Other events (contentBlockStop, event types Bedrock adds later) carry nothing for the app.
        return out

    def _block_start(self, payload: dict[str, Any]) -> bytes:
        start = payload.get("start")
        use = start.get("toolUse") if isinstance(start, dict) else None
        if not isinstance(use, dict) or conv.is_server_tool(use):
            return b""  # a tool Bedrock runs itself, or a block start with no Chat Completions field
        block = payload.get("contentBlockIndex", 0)
        if self.json_mode and use.get("name") == conv.JSON_TOOL_NAME:
            self._json_blocks.add(block)
            return b""
        ordinal = self._tool_ordinals.setdefault(block, len(self._tool_ordinals))
        call = {"index": ordinal, "id": use.get("toolUseId"), "type": "function",
                "function": {"name": use.get("name"), "arguments": ""}}
        return self._chunk({"tool_calls": [call]})

    def _block_delta(self, payload: dict[str, Any]) -> bytes:
        block = payload.get("contentBlockIndex", 0)
        delta = payload.get("delta")
        delta = delta if isinstance(delta, dict) else {}
        text = delta.get("text")
        if isinstance(text, str):
            return self._chunk({"content": text}) if text else b""
        use = delta.get("toolUse")
        fragment = use.get("input") if isinstance(use, dict) else None
        if not isinstance(fragment, str) or not fragment:
            return b""  # reasoningContent, citation, toolResult, image: no Chat Completions field
        if block in self._json_blocks:
            return self._chunk({"content": fragment})
        if block in self._tool_ordinals:
            return self._chunk({"tool_calls": [{"index": self._tool_ordinals[block], "function": {
                "arguments": fragment}}]})
        return b""

    def _message_stop(self, stop_reason: Any) -> bytes:
        if stop_reason in conv.MALFORMED_STOP_REASONS:
            return self._error(f"AWS Bedrock stopped with '{stop_reason}': "
                               f"{conv.MALFORMED_STOP_REASONS[stop_reason]}.", "api_error", stop_reason)
        self._finish_reason = conv.finish_reason(stop_reason, tool_calls=bool(self._tool_ordinals))
        out = self._chunk({}, self._finish_reason)
        return out + self._finish() if self._metadata_seen else out

    def _metadata(self, payload: dict[str, Any]) -> bytes:
        # `metadata` normally follows `messageStop`; should it come first, the usage chunk still
        # goes after the finish chunk, where OpenAI apps look for it.
        self._metadata_seen = True
        if (usage := conv.converse_usage(payload.get("usage"))) is not None:
            self.usage = usage
        return self._finish() if self._finish_reason is not None else b""

    def _finish(self) -> bytes:
        """The usage chunk (when the app asked for it) and `[DONE]`."""
        self._ended = True
        out = b""
        if self.include_usage and self.usage is not None:
            out += oa.sse_event(oa.chat_chunk(self.completion_id, self.model, self.created, None, usage=self.usage))
        return out + oa.SSE_DONE

    def _exception(self, exception_type: str, payload: bytes) -> bytes:
        try:
            body = json.loads(payload) if payload else {}
        except ValueError:
            body = {}
        body = body if isinstance(body, dict) else {}
        message = str(body.get("message") or body.get("Message") or exception_type)
        if body.get("originalMessage"):  # modelStreamErrorException: what the model itself said
            message += f" (the model answered {body.get('originalStatusCode', 'an error')}: {body['originalMessage']})"
        error_type, _ = EXCEPTION_TYPES.get(exception_type, ("api_error", 500))
        return self._error(f"AWS Bedrock: {message}", error_type, exception_type)

    def _error(self, message: str, error_type: str, code: str) -> bytes:
        self._ended = True
        return oa.sse_event({"error": {"message": message, "type": error_type, "code": code}})

    def _chunk(self, delta: dict, finish_reason: str | None = None) -> bytes:
        return oa.sse_event(oa.chat_chunk(self.completion_id, self.model, self.created, delta, finish_reason))
