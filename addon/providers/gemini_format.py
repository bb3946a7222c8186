"""OpenAI Chat Completions <-> Gemini `generateContent`: the translation Google AI Studio and Vertex AI share.

The module-level functions are pure (request body in, Gemini body out; Gemini response in, OpenAI body
out) and never mutate their input. `GenerateContentTranslator` puts them behind the `Translator`
interface; `gemini.py` and `vertex.py` only add URLs, embeddings and credentials.

Choices worth knowing:

- Tool and response schemas go out as `parameters` / `responseSchema` (Gemini's OpenAPI-3 subset,
  accepted by every AI Studio and Vertex version) after `gemini_schema()` rewrites the JSON Schema:
  local `$ref`s are inlined, `type: [X, "null"]` becomes `nullable`, `const` becomes a one-value
  `enum`, and keys the subset does not know (`additionalProperties`, `$schema`, `strict`, ...) are
  dropped. Dropping them only loosens validation; a recursive `$ref` cannot be inlined and is a 400.
- Gemini function calls usually come without ids. The proxy gives each one `call_<24 hex>`, derived
  from the response id, the call's ordinal and its name, so the same response always gets the same
  ids. Ids are never sent back to Gemini (it matches results by name and order): a later request
  maps each `tool` message to its function name through the assistant `tool_calls` with that id.
- Gemini 3's `thoughtSignature` on a function call is handed to the app as
  `tool_calls[].extra_content.google.thought_signature` (what Google's own OpenAI-compatible endpoint
  does) and echoed back on the `functionCall` part when the app returns it.
- Finish reasons that mean the model failed to produce a usable answer (`MALFORMED_FUNCTION_CALL`,
  `UNEXPECTED_TOOL_CALL`, `TOO_MANY_TOOL_CALLS`, `MALFORMED_RESPONSE`) become a 502 error rather than
  an empty `stop`, so the app sees the failure and can retry; `MISSING_THOUGHT_SIGNATURE` is a 400
  (the app dropped `extra_content`). `LANGUAGE`, `OTHER`, `NO_IMAGE`, unspecified or unknown reasons
  map to `stop` with whatever content arrived.
- Only candidate 0 is read (the proxy never asks for more). Thought parts are left out; parts a chat message
  cannot hold (`inlineData`, `executableCode`, `codeExecutionResult`, part types added later) are ignored.
  A candidate may come with `content: {}`, without `parts`, or without content at all.
- Streams are parsed with `oa.SseParser` (Gemini frames events with CRLF and sends no `[DONE]`). Usage is
  cumulative, so the latest `usageMetadata` that counts tokens wins, even one arriving after the finish
  reason; a functionCall streamed piecewise (`partialArgs`, which the proxy never requests) is a 502.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
import uuid
from collections.abc import Mapping
from typing import Any, ClassVar

from addon import openai_format as oa
from addon.errors import ByokError, InvalidRequest, UnsupportedParameter
from addon.providers.base import ClientResponse, Translator, UpstreamRequest

SUPPORTED_CHAT_PARAMS = frozenset(
    {
        "model", "messages", "temperature", "top_p", "max_tokens", "max_completion_tokens", "stop", "n",
        "seed", "presence_penalty", "frequency_penalty", "response_format", "tools", "tool_choice",
        "parallel_tool_calls", "stream", "stream_options",
    }
)
"""Chat parameters with a Gemini equivalent. `parallel_tool_calls: true` is Gemini's behaviour already,
`false` cannot be honoured. `user` has an equivalent on Vertex AI only (request labels)."""

CONTENT_FILTER_REASONS = frozenset(
    {
        "SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION", "IMAGE_OTHER", "MODEL_ARMOR", "JAILBREAK",
    }
)
FAILED_OUTPUT_REASONS = frozenset(
    {"MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL", "TOO_MANY_TOOL_CALLS", "MALFORMED_RESPONSE"}
)
MISSING_SIGNATURE = "MISSING_THOUGHT_SIGNATURE"

# Keys of Gemini's OpenAPI Schema subset whose values are plain data (not sub-schemas).
_SCHEMA_DATA_KEYS = frozenset(
    {
        "type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems",
        "required", "minProperties", "maxProperties", "minLength", "maxLength", "pattern", "example",
        "default", "minimum", "maximum", "propertyOrdering",
    }
)
_DATA_URL = re.compile(r"^data:([\w.+-]+/[\w.+-]+)(?:;[^,;]*)*;base64,(.*)$", re.DOTALL)
_AUDIO_MIME = {"wav": "audio/wav", "mp3": "audio/mpeg"}


# ---------------------------------------------------------------------------------------------------
# Request


def chat_request(
    body: Mapping[str, Any], provider_type: str, *, drop_unsupported: bool,
    supported: frozenset[str] = SUPPORTED_CHAT_PARAMS,
) -> dict[str, Any]:
    """The `generateContent` body for an OpenAI Chat Completions request body (parameters beyond
    `SUPPORTED_CHAT_PARAMS` that a variant allows are left to the variant to map)."""
    params = oa.checked_params(body, supported, provider_type, drop_unsupported=drop_unsupported)
    oa.require_single_choice(params)
    if params.get("parallel_tool_calls") is False and not drop_unsupported:
        raise UnsupportedParameter(
            "parallel_tool_calls", provider_type, hint=" (Gemini cannot be told to call at most one function)"
        )
    messages = oa.require_messages(params)
    system_parts, contents = _contents(messages)
    if not contents:
        raise InvalidRequest("At least one user message is needed; Gemini cannot answer a system prompt alone.",
                             param="messages")
    result: dict[str, Any] = {"contents": contents}
    if system_parts:
        result["systemInstruction"] = {"parts": system_parts}
    if "tools" in params:
        result["tools"] = _tools(params["tools"])
    if "tool_choice" in params:
        result["toolConfig"] = {"functionCallingConfig": _tool_choice(params["tool_choice"])}
    config = _generation_config(params)
    if config:
        result["generationConfig"] = config
    return result


def _generation_config(params: Mapping[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for openai_name, gemini_name in (
        ("temperature", "temperature"), ("top_p", "topP"), ("seed", "seed"),
        ("presence_penalty", "presencePenalty"), ("frequency_penalty", "frequencyPenalty"),
    ):
        if openai_name in params:
            value = params[openai_name]
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidRequest(f"'{openai_name}' must be a number.", param=openai_name)
            config[gemini_name] = value
    if (max_tokens := oa.max_output_tokens(params)) is not None:
        config["maxOutputTokens"] = max_tokens
    if (stop := oa.stop_sequences(params)) is not None:
        config["stopSequences"] = stop
    if "response_format" in params:
        config.update(_response_format(params["response_format"]))
    return config


def _response_format(value: Any) -> dict[str, Any]:
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == "text":
        return {}
    if kind == "json_object":
        return {"responseMimeType": "application/json"}
    if kind == "json_schema":
        spec = value.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
            raise InvalidRequest("'response_format.json_schema.schema' must be a JSON Schema object.",
                                 param="response_format")
        return {"responseMimeType": "application/json",
                "responseSchema": gemini_schema(spec["schema"], "response_format.json_schema.schema")}
    raise InvalidRequest("'response_format.type' must be 'text', 'json_object' or 'json_schema'.",
                         param="response_format")


def _tools(tools: Any) -> list[dict]:
    if not isinstance(tools, list):
        raise InvalidRequest("'tools' must be an array.", param="tools")
    declarations = []
    for i, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(function, dict):
            raise InvalidRequest(
                f"tools[{i}]: only tools of type 'function' can be translated to Gemini.", param=f"tools[{i}]"
            )
        name = function.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidRequest(f"tools[{i}].function.name is required.", param=f"tools[{i}].function.name")
        declaration: dict[str, Any] = {"name": name}
        if function.get("description"):
            declaration["description"] = function["description"]
        parameters = function.get("parameters")
        if parameters is not None:
            if not isinstance(parameters, dict):
                raise InvalidRequest(f"tools[{i}].function.parameters must be a JSON Schema object.",
                                     param=f"tools[{i}].function.parameters")
            schema = gemini_schema(parameters, f"tools[{i}].function.parameters")
            # Gemini rejects an OBJECT schema without properties; a no-argument function has none.
            if schema and not (schema.get("type") == "object" and not schema.get("properties")):
                declaration["parameters"] = schema
        declarations.append(declaration)
    return [{"functionDeclarations": declarations}] if declarations else []


def _tool_choice(choice: Any) -> dict[str, Any]:
    modes = {"auto": "AUTO", "required": "ANY", "none": "NONE"}
    if isinstance(choice, str) and choice in modes:
        return {"mode": modes[choice]}
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        if isinstance(name, str) and name:
            return {"mode": "ANY", "allowedFunctionNames": [name]}
    raise InvalidRequest(
        "'tool_choice' must be 'auto', 'required', 'none' or {'type': 'function', 'function': {'name': ...}} "
        "for Gemini.", param="tool_choice",
    )


def gemini_schema(schema: Mapping[str, Any], param: str) -> dict[str, Any]:
    """A JSON Schema rewritten into Gemini's OpenAPI Schema subset (see the module notes)."""
    definitions = {**schema.get("definitions", {}), **schema.get("$defs", {})}
    return _schema(schema, definitions, param, ())


def _schema(node: Any, definitions: Mapping[str, Any], param: str, seen: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(node, Mapping):
        raise InvalidRequest(f"{param}: every schema must be a JSON object.", param=param)
    if "$ref" in node:
        ref = node["$ref"]
        name = ref.rsplit("/", 1)[-1] if isinstance(ref, str) else None
        if not isinstance(ref, str) or not ref.startswith(("#/$defs/", "#/definitions/")) or name not in definitions:
            raise InvalidRequest(f"{param}: $ref '{ref}' cannot be resolved; only local #/$defs refs work.",
                                 param=param)
        if name in seen:
            raise InvalidRequest(f"{param}: recursive $ref '{ref}' cannot be expressed in Gemini's schema.",
                                 param=param)
        merged = {**definitions[name], **{k: v for k, v in node.items() if k != "$ref"}}
        return _schema(merged, definitions, param, (*seen, name))
    result: dict[str, Any] = {}
    for key, value in node.items():
        if key in _SCHEMA_DATA_KEYS:
            result[key] = value
        elif key == "const":
            result["enum"] = [value]
        elif key == "properties" and isinstance(value, Mapping):
            result[key] = {k: _schema(v, definitions, param, seen) for k, v in value.items()}
        elif key == "items" and isinstance(value, Mapping):
            result[key] = _schema(value, definitions, param, seen)
        elif key in ("anyOf", "oneOf") and isinstance(value, list):
            options = [_schema(v, definitions, param, seen) for v in value]
            non_null = [o for o in options if o.get("type") != "null"]
            if len(non_null) < len(options):
                result["nullable"] = True
            if len(non_null) == 1:
                result.update(non_null[0])
            else:
                result["anyOf"] = non_null
    kind = result.get("type")
    if isinstance(kind, list):
        types = [t for t in kind if t != "null"]
        if len(types) != 1:
            raise InvalidRequest(f"{param}: a schema with several types {kind} has no Gemini equivalent.",
                                 param=param)
        result["type"] = types[0]
        if len(types) < len(kind):
            result["nullable"] = True
    return result


def _contents(messages: list[dict]) -> tuple[list[dict], list[dict]]:
    """(systemInstruction parts, contents) for the OpenAI messages; consecutive same-role turns merged."""
    system_parts: list[dict] = []
    contents: list[dict] = []
    calls: dict[str, tuple[str, int]] = {}  # tool_call id -> (function name, position in its message)

    def add(role: str, parts: list[dict]) -> None:
        if not parts:
            return
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": list(parts)})

    pending_results: list[tuple[int, dict]] = []

    def flush_results() -> None:
        # Gemini matches function responses to calls by order: keep the calls' order.
        add("user", [part for _, part in sorted(pending_results, key=lambda item: item[0])])
        pending_results.clear()

    for i, message in enumerate(messages):
        role = message["role"]
        param = f"messages[{i}]"
        if role != "tool":
            flush_results()
        if role in ("system", "developer"):
            text = oa.text_content(message.get("content"), f"{param}.content")
            if text:
                system_parts.append({"text": text})
        elif role == "user":
            add("user", _user_parts(message.get("content"), f"{param}.content"))
        elif role == "assistant":
            add("model", _assistant_parts(message, param, calls))
        elif role == "tool":
            pending_results.append(_function_response(message, param, calls))
        else:
            raise InvalidRequest(f"{param}.role '{role}' is not supported; use 'tool' messages for tool results.",
                                 param=f"{param}.role")
    flush_results()
    return system_parts, contents


def _user_parts(content: Any, param: str) -> list[dict]:
    if isinstance(content, str):
        return [{"text": content}]
    if not isinstance(content, list):
        raise InvalidRequest(f"{param} must be a string or an array of content parts.", param=param)
    parts = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        where = f"{param}[{j}]"
        if kind == "text":
            parts.append({"text": str(part.get("text", ""))})
        elif kind == "image_url":
            url = (part.get("image_url") or {}).get("url")
            parts.append(_inline_data(url, where))
        elif kind == "input_audio":
            audio = part.get("input_audio") or {}
            mime = _AUDIO_MIME.get(audio.get("format"))
            if mime is None or not isinstance(audio.get("data"), str):
                raise InvalidRequest(f"{where}: input_audio needs base64 'data' and a 'format' of wav or mp3.",
                                     param=where)
            parts.append({"inlineData": {"mimeType": mime, "data": audio["data"]}})
        elif kind == "file" and isinstance((part.get("file") or {}).get("file_data"), str):
            parts.append(_inline_data(part["file"]["file_data"], where))
        else:
            raise InvalidRequest(f"Content part type '{kind}' at {where} cannot be translated to Gemini.",
                                 param=where)
    return parts


def _inline_data(url: Any, param: str) -> dict:
    if isinstance(url, str) and url.startswith(("http://", "https://")):
        raise InvalidRequest(
            f"{param}: image URLs cannot be sent to Gemini through byok-proxy (the proxy never fetches URLs). "
            "Send the image inline as a data: URL (data:image/png;base64,...).", param=param,
        )
    match = _DATA_URL.match(url) if isinstance(url, str) else None
    if not match:
        raise InvalidRequest(f"{param}: expected a base64 data: URL such as data:image/png;base64,....", param=param)
    return {"inlineData": {"mimeType": match.group(1), "data": match.group(2)}}


def _assistant_parts(message: Mapping[str, Any], param: str, calls: dict[str, tuple[str, int]]) -> list[dict]:
    if message.get("function_call") is not None:
        raise InvalidRequest(f"{param}.function_call (the deprecated functions API) is not supported; "
                             "use tool_calls.", param=f"{param}.function_call")
    parts: list[dict] = []
    content = message.get("content")
    if isinstance(content, list):
        # Assistant content may hold refusal parts next to text parts; keep the text.
        content = [p for p in content if not (isinstance(p, dict) and p.get("type") == "refusal")]
    text = oa.text_content(content, f"{param}.content")
    if text:
        parts.append({"text": text})
    tool_calls = message.get("tool_calls") or []
    if not isinstance(tool_calls, list):
        raise InvalidRequest(f"{param}.tool_calls must be an array.", param=f"{param}.tool_calls")
    for k, call in enumerate(tool_calls):
        where = f"{param}.tool_calls[{k}]"
        function = call.get("function") if isinstance(call, dict) else None
        name = function.get("name") if isinstance(function, dict) else None
        if not isinstance(name, str) or not name:
            raise InvalidRequest(f"{where}.function.name is required.", param=where)
        arguments = function.get("arguments") or "{}"
        try:
            args = json.loads(arguments) if isinstance(arguments, str) else arguments
        except ValueError:
            raise InvalidRequest(f"{where}.function.arguments is not valid JSON.", param=where) from None
        if not isinstance(args, dict):
            raise InvalidRequest(f"{where}.function.arguments must be a JSON object.", param=where)
        part: dict[str, Any] = {"functionCall": {"name": name, "args": args}}
        signature = ((call.get("extra_content") or {}).get("google") or {}).get("thought_signature")
        if isinstance(signature, str) and signature:
            part["thoughtSignature"] = signature
        parts.append(part)
        if isinstance(call.get("id"), str):
            calls[call["id"]] = (name, k)
    return parts


def _function_response(message: Mapping[str, Any], param: str, calls: dict[str, tuple[str, int]]) -> tuple[int, dict]:
    call_id = message.get("tool_call_id")
    if call_id in calls:
        name, position = calls[call_id]
    elif isinstance(message.get("name"), str) and message["name"]:
        name, position = message["name"], len(calls)
    else:
        raise InvalidRequest(
            f"{param}.tool_call_id '{call_id}' does not match any earlier assistant tool_calls id; Gemini needs "
            "the function name for each tool result.", param=f"{param}.tool_call_id",
        )
    text = oa.text_content(message.get("content"), f"{param}.content")
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    response = value if isinstance(value, dict) else {"content": text}
    return position, {"functionResponse": {"name": name, "response": response}}


# ---------------------------------------------------------------------------------------------------
# Response


def finish_reason(gemini_reason: str | None, has_calls: bool) -> str:
    """The OpenAI finish_reason for a Gemini one (the caller handles the failure reasons first)."""
    if gemini_reason == "MAX_TOKENS":
        return "length"
    if gemini_reason in CONTENT_FILTER_REASONS:
        return "content_filter"
    return "tool_calls" if has_calls else "stop"


def finish_error(gemini_reason: str | None, finish_message: str | None, provider: str) -> ByokError | None:
    """The error a failure finish reason becomes, or None when the reason maps to a finish_reason."""
    detail = f": {finish_message}" if finish_message else ""
    if gemini_reason in FAILED_OUTPUT_REASONS:
        return ByokError(502, f"{provider} stopped with finishReason {gemini_reason}{detail}. Retrying may help.",
                         type="api_error", code=gemini_reason.lower())
    if gemini_reason == MISSING_SIGNATURE:
        return ByokError(
            400, f"{provider} stopped with finishReason {gemini_reason}{detail}. Send the assistant tool_calls back "
            "with their extra_content.google.thought_signature unchanged.", code=gemini_reason.lower(),
        )
    return None


_TOKEN_COUNTS = ("promptTokenCount", "candidatesTokenCount", "totalTokenCount", "thoughtsTokenCount",
                 "cachedContentTokenCount", "toolUsePromptTokenCount")


def _count(metadata: Mapping[str, Any], key: str) -> int:
    """A token count; Gemini omits zero counts (`candidatesTokenCount` of a blocked or empty answer)."""
    value = metadata.get(key)
    if isinstance(value, str) and value.isdigit():  # proto3 JSON may write 64-bit integers as strings
        return int(value)
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def usage_from(metadata: Any) -> dict | None:
    if not isinstance(metadata, Mapping):
        return None
    prompt = _count(metadata, "promptTokenCount") + _count(metadata, "toolUsePromptTokenCount")
    thoughts = _count(metadata, "thoughtsTokenCount")
    completion = _count(metadata, "candidatesTokenCount") + thoughts
    details: dict[str, Any] = {}
    if cached := _count(metadata, "cachedContentTokenCount"):
        details["prompt_tokens_details"] = {"cached_tokens": cached}
    if thoughts:
        details["completion_tokens_details"] = {"reasoning_tokens": thoughts}
    total = _count(metadata, "totalTokenCount") if "totalTokenCount" in metadata else None
    return oa.usage(prompt, completion, total, **details)


def tool_call_id(response_id: str, ordinal: int, name: str) -> str:
    """A stable OpenAI tool-call id for a Gemini function call that came without one."""
    return "call_" + hashlib.sha256(f"{response_id}\x00{ordinal}\x00{name}".encode()).hexdigest()[:24]


def tool_call(part: Mapping[str, Any], response_id: str, ordinal: int) -> dict:
    call = part["functionCall"]
    name = str(call.get("name", ""))
    given_id = call.get("id")
    result: dict[str, Any] = {
        "id": given_id if isinstance(given_id, str) and given_id else tool_call_id(response_id, ordinal, name),
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(call.get("args") or {}, separators=(",", ":"))},
    }
    if part.get("thoughtSignature"):
        result["extra_content"] = {"google": {"thought_signature": part["thoughtSignature"]}}
    return result


def _candidate(payload: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The answer's candidate: the one with index 0 (the proxy never asks for more than one)."""
    candidates = payload.get("candidates")
    for candidate in candidates if isinstance(candidates, list) else []:
        if isinstance(candidate, Mapping) and candidate.get("index", 0) == 0:
            return candidate
    return None


def _parts(candidate: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The answer's parts, thoughts left out. A candidate may carry `content: {}`, content without `parts`
    (MAX_TOKENS spent on thinking) or no content at all (MODEL_ARMOR, SAFETY)."""
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, Mapping) else None
    if not isinstance(parts, list):
        return []
    return [p for p in parts if isinstance(p, Mapping) and not p.get("thought")]


def _function_call(part: Mapping[str, Any], provider: str) -> Mapping[str, Any] | None:
    """The part's function call, or None when the part holds none (text, inlineData, executableCode,
    codeExecutionResult and part types added later carry nothing a Chat Completions message can hold)."""
    call = part.get("functionCall")
    if not isinstance(call, Mapping):
        return None
    if "partialArgs" in call or call.get("willContinue"):
        # Vertex streams arguments piecewise only when asked (streamFunctionCallArguments); the proxy never asks.
        raise ByokError(502, f"{provider} streamed function-call arguments in pieces, which byok-proxy does not "
                             "request and cannot translate.", type="api_error")
    return call if isinstance(call.get("name"), str) and call["name"] else None


def _block_reason(payload: Mapping[str, Any]) -> str | None:
    """Why the prompt was blocked (`promptFeedback.blockReason`): the answer then has no candidates."""
    feedback = payload.get("promptFeedback")
    reason = feedback.get("blockReason") if isinstance(feedback, Mapping) else None
    return str(reason) if reason else None


def chat_response(payload: Mapping[str, Any], model: str, provider: str) -> dict:
    """The OpenAI `chat.completion` for a `generateContent` response. Raises `ByokError` for failure reasons."""
    response_id = str(payload.get("responseId") or uuid.uuid4().hex)
    completion_id = "chatcmpl-" + response_id
    usage = usage_from(payload.get("usageMetadata"))
    model = str(payload.get("modelVersion") or model)
    candidate = _candidate(payload)
    if candidate is None:
        if _block_reason(payload):
            return oa.chat_completion(model, "", "content_filter", usage, completion_id=completion_id)
        raise ByokError(502, f"{provider} returned no candidates.", type="api_error")
    reason = candidate.get("finishReason")
    if error := finish_error(reason, candidate.get("finishMessage"), provider):
        raise error
    texts: list[str] = []
    calls: list[dict] = []
    for part in _parts(candidate):
        if _function_call(part, provider) is not None:
            calls.append(tool_call(part, response_id, len(calls)))
        elif isinstance(part.get("text"), str):
            texts.append(part["text"])
    content = "".join(texts) if texts else (None if calls else "")
    return oa.chat_completion(
        model, content, finish_reason(reason, bool(calls)), usage, completion_id=completion_id, tool_calls=calls
    )


def retry_after(error: Mapping[str, Any]) -> str | None:
    """Seconds (rounded up) from a `google.rpc.RetryInfo` detail such as `{"retryDelay": "34.4s"}`."""
    for detail in error.get("details") or []:
        if isinstance(detail, Mapping) and str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            match = re.fullmatch(r"(\d+(?:\.\d+)?)s", str(detail.get("retryDelay", "")))
            if match:
                return str(math.ceil(float(match.group(1))))
    return None


def _error_reasons(error: Mapping[str, Any]) -> set[str]:
    return {
        str(d.get("reason")) for d in error.get("details") or []
        if isinstance(d, Mapping) and str(d.get("@type", "")).endswith("google.rpc.ErrorInfo")
    }


def error_response(status: int, headers: Mapping[str, str], payload: Any, raw: bytes, provider: str) -> ClientResponse:
    """The OpenAI error for a Google error response `{"error": {"code", "message", "status", "details"}}`."""
    if isinstance(payload, list) and payload:  # a streamed (JSON array) error body
        payload = payload[0]
    error = payload.get("error") if isinstance(payload, Mapping) else None
    if not isinstance(error, Mapping):
        message = raw.decode(errors="replace")[:500] or "empty response"
        return ClientResponse(status, oa.provider_error(status, provider, message))
    message = str(error.get("message", ""))
    code = error.get("status")
    if "API_KEY_INVALID" in _error_reasons(error):
        # Google answers a bad API key with 400 INVALID_ARGUMENT; to the app it is a rejected credential.
        status = 401
        code = "API_KEY_INVALID"
    body = oa.provider_error(status, provider, message, str(code) if code else None)
    passed = {"retry-after": headers["retry-after"]} if "retry-after" in headers else {}
    if status == 429 and (delay := retry_after(error)):
        passed["retry-after"] = delay
    return ClientResponse(status, body, passed)


# ---------------------------------------------------------------------------------------------------
# The shared translator


class GenerateContentTranslator(Translator):
    """Chat through `generateContent` / `streamGenerateContent?alt=sse`; subclasses add URLs and embeddings.

    `response_id` holds Gemini's `responseId` once seen: the proof of which account served the request
    (neither API returns a request-id header worth logging).
    """

    provider_label: ClassVar[str]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stream = False
        self._include_usage = False
        self._sse = oa.SseParser()
        self._started = False
        self._finished = False
        self._failed = False
        self._calls = 0
        self._completion_id = ""
        self._created = 0
        self._model = ""
        self._inputs = 0  # embeddings: how many texts were sent, and the encoding the app asked for
        self._format = "float"

    # Subclasses: URLs and embeddings.
    def _model_url(self, method: str) -> str:
        raise NotImplementedError

    variant_params: ClassVar[frozenset[str]] = frozenset()
    """Chat parameters only this variant can map, in `_variant_fields`."""

    def _variant_fields(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return {}

    def _embeddings_request(self, body: Mapping[str, Any]) -> UpstreamRequest:
        raise NotImplementedError

    def _embeddings_response(self, payload: Mapping[str, Any]) -> dict:
        raise NotImplementedError

    def request(self, body: Mapping[str, Any]) -> UpstreamRequest:
        if self.operation == "embeddings":
            return self._embeddings_request(body)
        gemini = chat_request(
            body, self.provider_type, drop_unsupported=self.drop_unsupported_params,
            supported=SUPPORTED_CHAT_PARAMS | self.variant_params,
        )
        gemini.update(self._variant_fields(body))
        self.stream = bool(body.get("stream"))
        self._include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        if self.stream:
            url = self._model_url("streamGenerateContent") + "?alt=sse"
            accept = "text/event-stream"
        else:
            url, accept = self._model_url("generateContent"), "application/json"
        return json_request(url, gemini, accept)

    def response(self, status: int, headers: Mapping[str, str], body: bytes) -> ClientResponse:
        payload = oa.json_body(body)
        if status >= 400 or not isinstance(payload, dict) or "error" in payload:
            return error_response(status if status >= 400 else 502, headers, payload, body, self.provider_label)
        try:
            if self.operation == "embeddings":
                result = self._embeddings_response(payload)
            else:
                self.response_id = payload.get("responseId")
                result = chat_response(payload, self.model, self.provider_label)
        except ByokError as e:
            return ClientResponse(e.status, e.body(), e.headers)
        self.usage = result.get("usage")
        return ClientResponse(status, result)

    # Streaming ---------------------------------------------------------------------------------------

    def stream_chunk(self, data: bytes) -> bytes:
        return b"".join(self._event(payload) for payload in self._sse.feed(data))

    def stream_end(self) -> bytes:
        rest = self._sse.rest()
        # The last event may lack its blank line; a body without any `data:` line is plain JSON (an error).
        out = [self._event(payload) for payload in self._sse.feed(b"\n\n")]
        text = rest.decode(errors="replace").strip()
        if not out and text.startswith(("{", "[")):
            out.append(self._event(text))
        if self._failed:
            return b"".join(out)
        if not self._finished:
            out.append(self._error_event(ByokError(
                502, f"The {self.provider_label} stream ended before a finish reason.", type="api_error",
                code="stream_truncated")))
            return b"".join(out)
        if self._include_usage:
            out.append(oa.sse_event(oa.chat_chunk(self._completion_id, self._model, self._created, None,
                                                  usage=self.usage)))
        out.append(oa.SSE_DONE)
        return b"".join(out)

    def _event(self, text: str) -> bytes:
        """OpenAI SSE bytes for one Gemini event: a whole `GenerateContentResponse`, or an error."""
        if self._failed:
            return b""
        try:
            payload = json.loads(text)
        except ValueError:
            return self._error_event(ByokError(502, f"{self.provider_label} sent an unreadable stream event.",
                                               type="api_error"))
        if isinstance(payload, list):  # a non-SSE error body, e.g. `[{"error": {...}}]`
            payload = payload[0] if payload and isinstance(payload[0], dict) else {}
        if not isinstance(payload, dict) or "error" in payload:
            status = (payload.get("error") or {}).get("code") if isinstance(payload, dict) else None
            status = status if isinstance(status, int) and status >= 400 else 502
            error = error_response(status, {}, payload, text.encode(), self.provider_label)
            self._failed = True
            return oa.sse_event(error.body)
        return self._response_event(payload)

    def _error_event(self, error: ByokError) -> bytes:
        self._failed = True
        return oa.sse_event(error.body())

    def _response_event(self, payload: Mapping[str, Any]) -> bytes:
        out = []
        if not self._started:
            self._started = True
            self._completion_id = "chatcmpl-" + str(payload.get("responseId") or uuid.uuid4().hex)
            self._created = int(time.time())
            self._model = str(payload.get("modelVersion") or self.model)
            out.append(self._chunk({"role": "assistant", "content": ""}))
        if self.response_id is None and payload.get("responseId"):
            self.response_id = str(payload["responseId"])
        metadata = payload.get("usageMetadata")
        # Usage is cumulative: keep the latest that counts tokens (early chunks may carry only `trafficType`).
        if isinstance(metadata, Mapping) and (self.usage is None or any(k in metadata for k in _TOKEN_COUNTS)):
            self.usage = usage_from(metadata)
        if self._finished:  # nothing may follow the finish chunk; a late chunk only updates usage
            return b"".join(out)
        candidate = _candidate(payload)
        if candidate is None:
            if _block_reason(payload):
                self._finished = True
                out.append(self._chunk({}, "content_filter"))
            return b"".join(out)
        texts, calls = [], []
        for part in _parts(candidate):
            try:
                is_call = _function_call(part, self.provider_label) is not None
            except ByokError as e:
                out.append(self._error_event(e))
                return b"".join(out)
            if is_call:
                call = tool_call(part, self._completion_id.removeprefix("chatcmpl-"), self._calls)
                calls.append({"index": self._calls, **call})
                self._calls += 1
            elif isinstance(part.get("text"), str) and part["text"]:
                texts.append(part["text"])
        if texts:
            out.append(self._chunk({"content": "".join(texts)}))
        if calls:
            out.append(self._chunk({"tool_calls": calls}))
        reason = candidate.get("finishReason")
        if reason:
            if error := finish_error(reason, candidate.get("finishMessage"), self.provider_label):
                out.append(self._error_event(error))
            else:
                self._finished = True
                out.append(self._chunk({}, finish_reason(reason, self._calls > 0)))
        return b"".join(out)

    def _chunk(self, delta: dict, finish: str | None = None) -> bytes:
        return oa.sse_event(oa.chat_chunk(self._completion_id, self._model, self._created, delta, finish))


def dimensions(value: Any) -> int:
    """The embeddings `dimensions` parameter, checked."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidRequest("'dimensions' must be a positive integer.", param="dimensions")
    return value


def json_request(url: str, body: Mapping[str, Any], accept: str = "application/json") -> UpstreamRequest:
    return UpstreamRequest(
        "POST", url, {"content-type": "application/json", "accept": accept},
        json.dumps(body, separators=(",", ":")).encode(),
    )
