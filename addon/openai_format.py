"""The OpenAI Chat Completions and Embeddings wire format: the shape apps speak to the platform.

Pure helpers shared by every translator: reading the parts of a request that all providers need,
and building OpenAI-shaped responses, chunks and usage.
"""

from __future__ import annotations

import base64
import json
import struct
import time
import uuid
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from addon.errors import InvalidRequest, UnsupportedParameter

CHAT_PARAMS = frozenset(
    {
        "model", "messages", "temperature", "top_p", "max_tokens", "max_completion_tokens", "stop", "n",
        "seed", "presence_penalty", "frequency_penalty", "logit_bias", "logprobs", "top_logprobs",
        "response_format", "tools", "tool_choice", "parallel_tool_calls", "functions", "function_call",
        "stream", "stream_options", "user", "reasoning_effort", "service_tier", "store", "metadata",
        "modalities", "audio", "prediction", "web_search_options", "verbosity", "prompt_cache_key",
        "safety_identifier",
    }
)
"""Every Chat Completions request parameter; anything else is rejected as unknown."""

EMBEDDING_PARAMS = frozenset({"model", "input", "encoding_format", "dimensions", "user"})

HARMLESS_TO_DROP = frozenset({"store", "metadata", "prompt_cache_key", "safety_identifier", "service_tier"})
"""Platform-side bookkeeping parameters no provider needs to honour for the answer to be faithful."""


NO_OP_VALUES: dict[str, Any] = {
    "logprobs": False, "n": 1, "presence_penalty": 0, "frequency_penalty": 0, "logit_bias": {}, "stream": False,
    "stream_options": {"include_usage": False},
}
"""OpenAI's defaults that many clients send explicitly: asking for nothing is never an unsupported request."""


def is_no_op(name: str, value: Any) -> bool:
    default = NO_OP_VALUES.get(name, ...)
    return default is not ... and isinstance(value, bool) == isinstance(default, bool) and value == default


def checked_params(
    body: Mapping[str, Any],
    supported: Collection[str],
    provider_type: str,
    *,
    drop_unsupported: bool,
    known: Collection[str] = CHAT_PARAMS,
) -> dict[str, Any]:
    """A copy of `body` holding only parameters the provider supports.

    An unknown parameter is always a 400; a known one the provider cannot honour is a 400 naming it,
    unless the rules file allows dropping it. A parameter set to null counts as absent.
    """
    result: dict[str, Any] = {}
    for name, value in body.items():
        if value is None or is_no_op(name, value):
            continue
        if name not in known:
            raise InvalidRequest(f"Unrecognized request argument supplied: {name}", param=name)
        if name in supported:
            result[name] = value
        elif not (drop_unsupported or name in HARMLESS_TO_DROP):
            raise UnsupportedParameter(name, provider_type)
    return result


def require_messages(body: Mapping[str, Any]) -> list[dict]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("'messages' must be a non-empty array of message objects.", param="messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or "role" not in message:
            raise InvalidRequest(f"messages[{i}] must be an object with a 'role'.", param=f"messages[{i}]")
    return messages


def require_single_choice(body: Mapping[str, Any]) -> None:
    n = body.get("n")
    if n is not None and n != 1:
        raise InvalidRequest("Only n=1 is supported through byok-proxy; send separate requests.", param="n")


def text_content(content: Any, param: str) -> str:
    """The text of a message's content: a string, or an array of text parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for i, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text":
                texts.append(str(part.get("text", "")))
            else:
                raise InvalidRequest(
                    f"Content part type '{kind}' at {param}[{i}] is not supported by this provider "
                    "through byok-proxy.",
                    param=f"{param}[{i}]",
                )
        return "".join(texts)
    raise InvalidRequest(f"{param} must be a string or an array of content parts.", param=param)


def stop_sequences(body: Mapping[str, Any]) -> list[str] | None:
    stop = body.get("stop")
    if stop is None:
        return None
    if isinstance(stop, str):
        return [stop]
    if isinstance(stop, list) and all(isinstance(s, str) for s in stop) and len(stop) <= 4:
        return list(stop)
    raise InvalidRequest("'stop' must be a string or an array of at most 4 strings.", param="stop")


def max_output_tokens(body: Mapping[str, Any]) -> int | None:
    value = body.get("max_completion_tokens", body.get("max_tokens"))
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InvalidRequest("'max_tokens' must be a positive integer.", param="max_tokens")
    return value


def new_id(prefix: str = "chatcmpl-") -> str:
    return prefix + uuid.uuid4().hex[:24]


def usage(prompt_tokens: int, completion_tokens: int, total_tokens: int | None = None, **details: Any) -> dict:
    result: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": total_tokens if total_tokens is not None else prompt_tokens + completion_tokens,
    }
    result.update({k: v for k, v in details.items() if v})
    return result


def chat_completion(
    model: str,
    content: str | None,
    finish_reason: str,
    usage: dict | None,
    *,
    completion_id: str | None = None,
    tool_calls: list[dict] | None = None,
    created: int | None = None,
) -> dict:
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": completion_id or new_id(),
        "object": "chat.completion",
        "created": created or int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason, "logprobs": None}],
        "usage": usage,
        "system_fingerprint": None,
    }


def chat_chunk(
    completion_id: str, model: str, created: int, delta: dict | None, finish_reason: str | None = None,
    usage: dict | None = None,
) -> dict:
    """One `chat.completion.chunk`; `delta=None` makes the usage-only chunk with empty choices."""
    choices = [] if delta is None else [
        {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
    ]
    return {
        "id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
        "choices": choices, "usage": usage, "system_fingerprint": None,
    }


def sse_event(payload: Mapping[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


SSE_DONE = b"data: [DONE]\n\n"


def embedding_inputs(body: Mapping[str, Any]) -> list[str]:
    """The texts to embed: a string or an array of strings (token arrays cannot be translated)."""
    value = body.get("input")
    if isinstance(value, str):
        values: Sequence[Any] = [value]
    elif isinstance(value, list) and value:
        values = value
    else:
        raise InvalidRequest("'input' must be a string or a non-empty array of strings.", param="input")
    if not all(isinstance(v, str) for v in values):
        raise InvalidRequest(
            "'input' as token arrays cannot be translated to the customer's provider; send text.",
            param="input",
        )
    if any(v == "" for v in values):
        raise InvalidRequest("'input' cannot contain an empty string.", param="input")
    return list(values)


def encoding_format(body: Mapping[str, Any]) -> str:
    fmt = body.get("encoding_format") or "float"
    if fmt not in ("float", "base64"):
        raise InvalidRequest("'encoding_format' must be 'float' or 'base64'.", param="encoding_format")
    return fmt


def embedding_list(vectors: Sequence[Sequence[float]], model: str, prompt_tokens: int, fmt: str) -> dict:
    def encode(vector: Sequence[float]) -> list[float] | str:
        if fmt == "base64":
            return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        return list(vector)

    return {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": encode(v)} for i, v in enumerate(vectors)],
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }


def merge_embedding_lists(lists: Sequence[Mapping[str, Any]]) -> dict:
    """One embeddings answer from the answers to one-input-per-call requests, in input order."""
    data = [{**item, "index": i} for i, item in enumerate(d for result in lists for d in result["data"])]
    tokens = sum(result.get("usage", {}).get("prompt_tokens", 0) for result in lists)
    return {
        "object": "list", "data": data, "model": lists[0]["model"],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def json_body(body: bytes) -> Any:
    """A provider's JSON body, or {} when it is empty or not JSON (callers treat that as an error)."""
    try:
        return json.loads(body) if body else {}
    except ValueError:
        return {}


def error_body(message: str, type: str, code: str | None = None, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


STATUS_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    409: "conflict_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


def error_type_for(status: int) -> str:
    return STATUS_ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")


def provider_error(status: int, provider: str, message: str, code: str | None = None) -> dict:
    """An OpenAI error body for a provider's error, saying plainly which side rejected what."""
    if status in (401, 403):
        message = (
            f"The customer's {provider} credential was rejected by {provider} ({status}): {message} "
            "Check the credential configured for this provider in the rules file."
        )
    return error_body(message, error_type_for(status), code)


class SseParser:
    """Splits a server-sent-events byte stream into `data:` payloads, whatever the network split.
    Accepts LF and CRLF framing (Gemini uses CRLF)."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[str]:
        if self._buffer.endswith(b"\r"):  # a CRLF split across two pieces
            del self._buffer[-1]
            data = b"\r" + data
        # Only the new bytes are searched, so one large event arriving in small pieces stays linear.
        start = max(len(self._buffer) - 1, 0)
        self._buffer += data.replace(b"\r\n", b"\n")
        payloads = []
        while (end := self._buffer.find(b"\n\n", start)) >= 0:
            event = bytes(self._buffer[:end])
            del self._buffer[:end + 2]
            start = 0
            lines = [line[5:].lstrip(b" ") for line in event.split(b"\n") if line.startswith(b"data:")]
            if lines:
                payloads.append(b"\n".join(lines).decode("utf-8", errors="replace"))
        return payloads

    def rest(self) -> bytes:
        return bytes(self._buffer)


class StreamAccumulator:
    """Rebuilds the answer from the OpenAI chunks sent to the app (for the audit log)."""

    def __init__(self) -> None:
        self._parser = SseParser()
        self.content: list[str] = []
        self.tool_calls: dict[int, dict[str, str]] = {}
        self.finish_reason: str | None = None
        self.usage: dict | None = None
        self.error: dict | None = None
        self.chunks = 0

    def feed(self, data: bytes) -> None:
        for payload in self._parser.feed(data):
            if payload == "[DONE]":
                continue
            try:
                event = json.loads(payload)
            except ValueError:
                continue
            self.chunks += 1
            if "error" in event:
                self.error = event["error"]
            if event.get("usage"):
                self.usage = event["usage"]
            for choice in event.get("choices") or []:
                delta = choice.get("delta") or {}
                if delta.get("content"):
                    self.content.append(delta["content"])
                for call in delta.get("tool_calls") or []:
                    slot = self.tool_calls.setdefault(call.get("index", 0), {"name": "", "arguments": ""})
                    function = call.get("function") or {}
                    slot["name"] += function.get("name") or ""
                    slot["arguments"] += function.get("arguments") or ""
                if choice.get("finish_reason"):
                    self.finish_reason = choice["finish_reason"]

    def answer(self) -> dict[str, Any]:
        return {
            "content": "".join(self.content),
            "tool_calls": [self.tool_calls[i] for i in sorted(self.tool_calls)],
            "finish_reason": self.finish_reason,
            "usage": self.usage,
            "error": self.error,
            "chunks": self.chunks,
        }
