"""Deterministic "model" behaviour shared by all emulators.

The reply to a conversation is ``Echo: <text of the last user message>``. When the conversation ends with
tool results instead, the reply is ``Echo: tool result: <result text>`` (results joined with `` | ``; a
result that is an object with a single string value contributes that string, other objects their compact
JSON). Token counts are word counts (whitespace-separated), at least 1.

Directives: when the final message is a user text message starting with ``EMULATE:<name>``, the
emulator behaves accordingly (a directive in an earlier turn is ignored, so a tool-call loop ends):

``EMULATE:tool_call``            call the first declared tool with ``{"city": "Paris"}`` (no tools: echo)
``EMULATE:parallel_tool_calls``  call the first declared tool twice: Paris, then Tokyo
``EMULATE:max_tokens``           answer truncated to 3 words, with the provider's length stop reason
``EMULATE:content_filter``       the provider's output-filtered outcome
``EMULATE:prompt_blocked``       the provider's prompt-blocked outcome
``EMULATE:error=<status>``       that HTTP error (400/401/403/404/429/500/503) in the provider's error format;
                                 401 is the provider's own rejected-credential answer (Bedrock: 403
                                 ``UnrecognizedClientException``; AI Studio: 400 ``API_KEY_INVALID``)
``EMULATE:stream_exception``     streams fail after two deltas (Bedrock: ``modelStreamErrorException``
                                 frame; ``EMULATE:stream_exception=throttling`` gives
                                 ``throttlingException``; Azure/Gemini: an SSE error event, then EOF;
                                 ``EMULATE:stream_exception=cut``: the body just ends there, no error, no finish)
``EMULATE:slow_stream``          stream deltas 0.3 s apart
``EMULATE:split_frames``         (Bedrock streams) every event-stream frame is written in two halves
``EMULATE:json``                 the answer is the JSON object text ``{"answer": "<echo>"}``

A forced tool choice (Azure ``required`` or a named function, Bedrock ``any``/``tool``, Gemini ``ANY``) always
yields a call, as the real models do: without a tool directive the first allowed tool is called with
``{"answer": "<the reply text>"}`` (which is also how JSON mode via a forced tool gets its JSON), and no text
comes before it.

A request's own output limit (max_tokens, maxTokens, maxOutputTokens) also truncates the answer to that
many words with the length stop reason.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import secrets
import string
import struct
from dataclasses import dataclass, field
from typing import Any, Literal

DIRECTIVE_PREFIX = "EMULATE:"
TOOL_ARGS: list[dict[str, str]] = [{"city": "Paris"}, {"city": "Tokyo"}]
ERROR_STATUSES = (400, 401, 403, 404, 429, 500, 503)
SLOW_DELAY = 0.3

Kind = Literal["text", "tool_calls", "max_tokens", "content_filter", "prompt_blocked", "error"]


@dataclass
class Turn:
    """The provider-neutral facts an emulator extracts from a request before planning the answer."""

    prompt_texts: list[str]  # every text in the request, for token counting
    final_user_text: str | None  # text of the final message when it is a user text message
    last_user_text: str  # text of the last user message carrying text (may be earlier)
    tool_results: list[str] | None  # set when the final message carries tool results
    tool_names: list[str] = field(default_factory=list)  # declared (and callable) tools, in order
    max_tokens: int | None = None
    json_mode: bool = False
    forced_tool: bool = False  # the request's tool choice obliges the model to call a tool


@dataclass
class Plan:
    kind: Kind
    text: str = ""
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (name, args)
    error_status: int | None = None
    stream_exception: str | None = None  # None, "model", "throttling" or "cut"
    slow: bool = False
    split_frames: bool = False
    forced_tool: bool = False
    prompt_tokens: int = 1
    completion_tokens: int = 1

    @property
    def delay(self) -> float:
        return SLOW_DELAY if self.slow else 0.0


def directive(text: str | None) -> tuple[str, str | None] | None:
    if not text:
        return None
    stripped = text.lstrip()
    if not stripped.startswith(DIRECTIVE_PREFIX):
        return None
    token = stripped[len(DIRECTIVE_PREFIX) :].split(None, 1)[0] if stripped[len(DIRECTIVE_PREFIX) :] else ""
    name, _, arg = token.partition("=")
    return name, (arg or None)


def count_tokens(texts: list[str] | str) -> int:
    if isinstance(texts, str):
        texts = [texts]
    return max(1, sum(len(t.split()) for t in texts))


def truncate_words(text: str, n: int) -> str:
    return " ".join(text.split()[: max(1, n)])


def result_text(value: Any) -> str:
    """Text of one tool result: strings as is, single-string objects unwrapped, else compact JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1 and isinstance(next(iter(value.values())), str):
        return next(iter(value.values()))
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def plan_reply(turn: Turn) -> Plan:
    plan = Plan(kind="text", prompt_tokens=count_tokens(turn.prompt_texts))
    if turn.tool_results is not None:
        plan.text = "Echo: tool result: " + " | ".join(turn.tool_results)
        d = None
    else:
        plan.text = f"Echo: {turn.last_user_text}"
        d = directive(turn.final_user_text)
    name, arg = d if d else ("", None)
    if name == "json" or turn.json_mode:
        plan.text = json.dumps({"answer": plan.text})
    if name in ("tool_call", "parallel_tool_calls") and turn.tool_names:
        args = TOOL_ARGS[:1] if name == "tool_call" else TOOL_ARGS
        plan.kind = "tool_calls"
        plan.tool_calls = [(turn.tool_names[0], dict(a)) for a in args]
    elif name == "max_tokens":
        plan.kind = "max_tokens"
        plan.text = truncate_words(plan.text, 3)
    elif name == "content_filter":
        plan.kind = "content_filter"
    elif name == "prompt_blocked":
        plan.kind = "prompt_blocked"
    elif name == "error":
        plan.kind = "error"
        status = int(arg) if arg and arg.isdigit() else 500
        plan.error_status = status if status in ERROR_STATUSES else 500
    elif name == "stream_exception":
        plan.stream_exception = arg if arg in ("throttling", "cut") else "model"
    elif name == "slow_stream":
        plan.slow = True
    elif name == "split_frames":
        plan.split_frames = True
    if turn.forced_tool and turn.tool_names:
        plan.forced_tool = True
        if plan.kind == "text":
            plan.kind = "tool_calls"
            plan.tool_calls = [(turn.tool_names[0], {"answer": plan.text})]
    if plan.kind == "text" and turn.max_tokens is not None and count_tokens(plan.text) > turn.max_tokens:
        plan.kind = "max_tokens"
        plan.text = truncate_words(plan.text, turn.max_tokens)
    if plan.kind == "tool_calls":
        plan.completion_tokens = sum(10 + count_tokens(json.dumps(a)) for _, a in plan.tool_calls)
    else:
        plan.completion_tokens = count_tokens(plan.text)
    return plan


def pieces(text: str, words_per_piece: int = 1) -> list[str]:
    """Split text into stream deltas that concatenate back to exactly `text`."""
    tokens = re.findall(r"\S+\s*", text)
    lead = text[: len(text) - len(text.lstrip())]
    if lead and tokens:
        tokens[0] = lead + tokens[0]
    if not tokens:
        return [text] if text else []
    return ["".join(tokens[i : i + words_per_piece]) for i in range(0, len(tokens), words_per_piece)]


def json_fragments(obj: Any) -> list[str]:
    """A tool call's arguments as JSON split into small fragments, the way models stream them."""
    s = json.dumps(obj)
    return [s[i : i + 7] for i in range(0, len(s), 7)]


def embedding(text: str, dims: int, normalize: bool = True) -> list[float]:
    """Deterministic pseudo-embedding seeded from sha256(text)."""
    raw = bytearray()
    counter = 0
    while len(raw) < dims * 4:
        raw += hashlib.sha256(f"{counter}:{text}".encode()).digest()
        counter += 1
    ints = struct.unpack(f"<{dims}I", bytes(raw[: dims * 4]))
    vec = [(i / 0xFFFFFFFF) * 2.0 - 1.0 for i in ints]
    if normalize:
        norm = math.sqrt(sum(v * v for v in vec)) or 1.0
        vec = [v / norm for v in vec]
    # Round-trip through float32 so base64 and float forms agree exactly.
    return list(struct.unpack(f"<{dims}f", struct.pack(f"<{dims}f", *vec)))


def embedding_b64(vec: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode()


def rand_id(n: int = 24, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


def padding() -> str:
    """Bedrock's random-length "p" padding value."""
    return string.ascii_letters[: secrets.randbelow(40) + 1]
