"""OpenAI Chat Completions <-> Bedrock Converse: pure mapping functions for AWS Bedrock.

Everything here works on plain dicts and raises `InvalidRequest` for what cannot be asked of
Converse faithfully; `addon.providers.bedrock` wires it to the translator interface.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from addon import openai_format as oa
from addon.errors import InvalidRequest

PROVIDER_TYPE = "bedrock"

CHAT_PARAMS = frozenset(
    {
        "model", "messages", "temperature", "top_p", "max_tokens", "max_completion_tokens", "stop", "n",
        "tools", "tool_choice", "parallel_tool_calls", "response_format", "stream", "stream_options", "user",
    }
)
"""What Converse can honour; `user` becomes request metadata, which tags the customer's invocation logs."""

JSON_TOOL_NAME = "json_response"
"""The synthetic tool that carries the answer in JSON mode (`response_format`)."""

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}

MALFORMED_STOP_REASONS = {
    "malformed_model_output": "the model produced output Bedrock could not parse",
    "malformed_tool_use": "the model produced an invalid tool call",
}
"""Stop reasons with no OpenAI equivalent: the answer is unusable, so the app gets an error."""

_IMAGE_DATA_URL = re.compile(r"^data:image/(png|jpeg|jpg|gif|webp);base64,(.*)$", re.DOTALL)


@dataclass(frozen=True)
class ConverseRequest:
    """A translated chat request and what the response side needs to know about it."""

    body: dict[str, Any]
    stream: bool
    include_usage: bool
    json_mode: bool


def converse_request(body: Mapping[str, Any], *, drop_unsupported: bool) -> ConverseRequest:
    params = dict(body)
    if params.get("parallel_tool_calls") is False and drop_unsupported:
        del params["parallel_tool_calls"]
    params = oa.checked_params(params, CHAT_PARAMS, PROVIDER_TYPE, drop_unsupported=drop_unsupported)
    if params.get("parallel_tool_calls") is False:
        raise InvalidRequest(
            "'parallel_tool_calls: false' cannot be enforced on AWS Bedrock (Converse has no such switch). "
            "Remove it, or set 'drop_unsupported_params: true' in the rules file.",
            param="parallel_tool_calls",
        )
    oa.require_single_choice(params)
    messages = oa.require_messages(params)

    system, turns = map_messages(messages)
    result: dict[str, Any] = {"messages": turns}
    if system:
        result["system"] = system
    if inference := inference_config(params):
        result["inferenceConfig"] = inference
    if metadata := request_metadata(params.get("user"), drop_unsupported=drop_unsupported):
        result["requestMetadata"] = metadata

    json_mode = False
    tools = tool_specs(params.get("tools"))
    choice = params.get("tool_choice")
    response_format = json_response_tool(params.get("response_format"))
    if response_format is not None:
        if tools:
            raise InvalidRequest(
                "'response_format' together with 'tools' cannot be translated for AWS Bedrock: JSON mode is "
                "implemented by forcing a tool call, which would stop the model from calling your tools.",
                param="response_format",
            )
        if any(spec["toolSpec"]["name"] == JSON_TOOL_NAME for spec in history_tool_specs(turns)):
            raise InvalidRequest(
                f"The tool name '{JSON_TOOL_NAME}' is reserved for JSON mode on AWS Bedrock.", param="messages"
            )
        json_mode = True
        tools = [response_format]
        choice = {"type": "function", "function": {"name": JSON_TOOL_NAME}}
    if config := tool_config(tools, choice, turns):
        result["toolConfig"] = config

    stream = bool(params.get("stream"))
    options = params.get("stream_options") or {}
    include_usage = stream and isinstance(options, dict) and bool(options.get("include_usage"))
    return ConverseRequest(result, stream, include_usage, json_mode)


METADATA_VALUE = re.compile(r"[a-zA-Z0-9\s:_@$#=/+,\-.]{0,256}")


def request_metadata(user: Any, *, drop_unsupported: bool) -> dict[str, str] | None:
    """OpenAI's `user` as Converse request metadata, which tags the customer's invocation logs."""
    if user is None:
        return None
    if isinstance(user, str) and METADATA_VALUE.fullmatch(user):
        return {"user": user}
    if drop_unsupported:
        return None
    raise InvalidRequest(
        "'user' is sent to AWS Bedrock as request metadata, which allows at most 256 letters, digits, "
        "spaces and the characters :_@$#=/+,-. Send such an id, or drop it with "
        "'drop_unsupported_params: true'.",
        param="user",
    )


def inference_config(params: Mapping[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    if (max_tokens := oa.max_output_tokens(params)) is not None:
        config["maxTokens"] = max_tokens
    for name, key in (("temperature", "temperature"), ("top_p", "topP")):
        value = params.get(name)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidRequest(f"'{name}' must be a number.", param=name)
            config[key] = value
    if stop := oa.stop_sequences(params):
        config["stopSequences"] = stop
    return config


# --- messages -------------------------------------------------------------------------------------


def map_messages(messages: list[dict]) -> tuple[list[dict], list[dict]]:
    """Converse `system` blocks and alternating `messages` for OpenAI messages.

    System and developer messages all go to `system` (Converse has one system prompt); consecutive
    turns of the same role are merged, since Converse requires strict user/assistant alternation.
    """
    system: list[dict] = []
    turns: list[dict] = []
    for i, message in enumerate(messages):
        role = message["role"]
        param = f"messages[{i}]"
        if role in ("system", "developer"):
            text = oa.text_content(message.get("content"), f"{param}.content")
            if text.strip():
                system.append({"text": text})
            continue
        if role == "user":
            bedrock_role, blocks = "user", user_blocks(message.get("content"), f"{param}.content")
        elif role == "assistant":
            bedrock_role, blocks = "assistant", assistant_blocks(message, param)
        elif role == "tool":
            bedrock_role, blocks = "user", [tool_result_block(message, param)]
        else:
            raise InvalidRequest(
                f"Message role '{role}' at {param} is not supported for AWS Bedrock "
                "(use system, developer, user, assistant or tool).",
                param=f"{param}.role",
            )
        if not blocks:
            continue
        if turns and turns[-1]["role"] == bedrock_role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": bedrock_role, "content": blocks})
    if not turns:
        raise InvalidRequest("AWS Bedrock needs at least one non-empty user message.", param="messages")
    if turns[0]["role"] != "user":
        raise InvalidRequest(
            "AWS Bedrock conversations must start with a user message (after any system messages); "
            "this one starts with an assistant message.",
            param="messages",
        )
    return system, turns


def user_blocks(content: Any, param: str) -> list[dict]:
    if content is None or isinstance(content, str):
        return text_blocks(content or "")
    if not isinstance(content, list):
        raise InvalidRequest(f"{param} must be a string or an array of content parts.", param=param)
    blocks: list[dict] = []
    for i, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            blocks.extend(text_blocks(str(part.get("text", ""))))
        elif kind == "image_url":
            blocks.append(image_block(part.get("image_url"), f"{param}[{i}]"))
        else:
            raise InvalidRequest(
                f"Content part type '{kind}' at {param}[{i}] is not supported for AWS Bedrock through "
                "byok-proxy (text and base64 data-URL images are).",
                param=f"{param}[{i}]",
            )
    return blocks


def text_blocks(text: str) -> list[dict]:
    # Converse rejects blank text blocks ("The text field in the ContentBlock object ... is blank").
    return [{"text": text}] if text.strip() else []


def image_block(image_url: Any, param: str) -> dict:
    url = image_url.get("url") if isinstance(image_url, dict) else image_url
    if not isinstance(url, str):
        raise InvalidRequest(f"{param}.image_url.url must be a string.", param=param)
    if url.startswith(("http://", "https://")):
        raise InvalidRequest(
            f"Image URLs at {param} cannot be sent to AWS Bedrock: byok-proxy never fetches URLs on the "
            "app's behalf. Send the image inline as a data URL (data:image/png;base64,...).",
            param=param,
        )
    match = _IMAGE_DATA_URL.match(url)
    if not match:
        raise InvalidRequest(
            f"The image at {param} must be a base64 data URL of a png, jpeg, gif or webp image "
            "(data:image/png;base64,...), the formats AWS Bedrock accepts.",
            param=param,
        )
    data = match.group(2)
    try:
        base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest(f"The image data URL at {param} is not valid base64.", param=param) from None
    image_format = "jpeg" if match.group(1) == "jpg" else match.group(1)
    return {"image": {"format": image_format, "source": {"bytes": data}}}


def assistant_blocks(message: Mapping[str, Any], param: str) -> list[dict]:
    content = message.get("content")
    if isinstance(content, list):
        content = "".join(assistant_part_text(part, f"{param}.content[{i}]") for i, part in enumerate(content))
    blocks = text_blocks(oa.text_content(content, f"{param}.content"))
    tool_calls = message.get("tool_calls") or []
    if not isinstance(tool_calls, list):
        raise InvalidRequest(f"{param}.tool_calls must be an array.", param=f"{param}.tool_calls")
    blocks.extend(tool_use_block(call, f"{param}.tool_calls[{j}]") for j, call in enumerate(tool_calls))
    return blocks


def assistant_part_text(part: Any, param: str) -> str:
    # Assistant parts may be refusals as well as text; both are what the model said.
    kind = part.get("type") if isinstance(part, dict) else None
    if kind == "text":
        return str(part.get("text") or "")
    if kind == "refusal":
        return str(part.get("refusal") or "")
    raise InvalidRequest(f"Assistant content part type '{kind}' at {param} is not supported.", param=param)


def tool_use_block(call: Any, param: str) -> dict:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not call.get("id") or not function.get("name"):
        raise InvalidRequest(f"{param} must have an 'id' and a 'function' with a 'name'.", param=param)
    arguments = function.get("arguments") or "{}"
    try:
        parsed = json.loads(arguments) if isinstance(arguments, str) else None
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise InvalidRequest(
            f"{param}.function.arguments must be a JSON object encoded as a string; AWS Bedrock stores tool "
            "inputs as objects.",
            param=f"{param}.function.arguments",
        )
    return {"toolUse": {"toolUseId": call["id"], "name": function["name"], "input": parsed}}


def tool_result_block(message: Mapping[str, Any], param: str) -> dict:
    tool_call_id = message.get("tool_call_id")
    if not tool_call_id:
        raise InvalidRequest(f"{param} (role 'tool') needs a 'tool_call_id'.", param=f"{param}.tool_call_id")
    text = oa.text_content(message.get("content"), f"{param}.content")
    return {"toolResult": {"toolUseId": tool_call_id, "content": [{"text": text}], "status": "success"}}


# --- tools ----------------------------------------------------------------------------------------


def tool_specs(tools: Any) -> list[dict]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise InvalidRequest("'tools' must be an array.", param="tools")
    specs = []
    for i, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type", "function") != "function" or not isinstance(function, dict):
            raise InvalidRequest(
                f"tools[{i}] must be a function tool; AWS Bedrock Converse supports only function tools.",
                param=f"tools[{i}]",
            )
        name = function.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidRequest(f"tools[{i}].function.name is required.", param=f"tools[{i}].function.name")
        spec: dict[str, Any] = {"name": name}
        if function.get("description"):
            spec["description"] = function["description"]
        spec["inputSchema"] = {"json": function.get("parameters") or {"type": "object", "properties": {}}}
        specs.append({"toolSpec": spec})
    return specs


def json_response_tool(response_format: Any) -> dict | None:
    """The synthetic tool for JSON mode, or None when the app wants plain text."""
    if response_format is None:
        return None
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        schema: dict[str, Any] = {"type": "object"}
        description = "Respond with a JSON object."
    elif kind == "json_schema":
        json_schema = response_format.get("json_schema")
        if not isinstance(json_schema, dict) or not isinstance(json_schema.get("schema", {}), dict):
            raise InvalidRequest(
                "'response_format.json_schema' must be an object with a 'schema'.", param="response_format"
            )
        schema = json_schema.get("schema") or {"type": "object"}
        description = json_schema.get("description") or "Respond with a JSON object matching this schema."
    else:
        raise InvalidRequest(
            "'response_format.type' must be 'text', 'json_object' or 'json_schema'.", param="response_format"
        )
    return {"toolSpec": {"name": JSON_TOOL_NAME, "description": description, "inputSchema": {"json": schema}}}


def tool_config(tools: list[dict], choice: Any, turns: list[dict]) -> dict | None:
    """Converse `toolConfig`, which must be present whenever the history holds tool blocks.

    Converse has no `none` tool choice. With `tool_choice: "none"` and no tool history, tools are
    simply not sent. With tool history, Converse insists on a toolConfig, so the tools stay declared
    with the default (auto) choice: the model may still call one, and the app then gets that call.
    History that uses tools the request no longer declares gets input-less stand-ins for them.
    """
    history_specs = history_tool_specs(turns)
    if choice == "none" and not history_specs:
        return None
    declared = {spec["toolSpec"]["name"] for spec in tools}
    specs = tools + [spec for spec in history_specs if spec["toolSpec"]["name"] not in declared]
    if not specs:
        if choice in (None, "auto", "none"):
            return None
        raise InvalidRequest("'tool_choice' needs 'tools' to choose from.", param="tool_choice")
    config: dict[str, Any] = {"tools": specs}
    if choice == "auto":
        config["toolChoice"] = {"auto": {}}
    elif choice == "required":
        config["toolChoice"] = {"any": {}}
    elif isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name") if choice.get("type") == "function" else None
        if name not in declared:
            raise InvalidRequest(
                "'tool_choice' must name a function declared in 'tools'.", param="tool_choice"
            )
        config["toolChoice"] = {"tool": {"name": name}}
    elif choice not in (None, "none"):
        raise InvalidRequest(
            "'tool_choice' must be 'none', 'auto', 'required' or {\"type\": \"function\", ...}.",
            param="tool_choice",
        )
    return config


def history_tool_specs(turns: list[dict]) -> list[dict]:
    """Stand-in specs for the tools named in the history, in order of first use."""
    names: dict[str, None] = {}
    has_tool_blocks = False
    for turn in turns:
        for block in turn["content"]:
            if "toolUse" in block:
                names[block["toolUse"]["name"]] = None
            has_tool_blocks = has_tool_blocks or "toolUse" in block or "toolResult" in block
    if has_tool_blocks and not names:
        raise InvalidRequest(
            "A 'tool' message needs the assistant message with the matching 'tool_calls' before it.",
            param="messages",
        )
    return [
        {"toolSpec": {
            "name": name,
            "description": "A tool used earlier in this conversation.",
            "inputSchema": {"json": {"type": "object"}},
        }}
        for name in names
    ]


# --- response -------------------------------------------------------------------------------------


def finish_reason(stop_reason: Any, *, tool_calls: bool) -> str:
    """The OpenAI finish reason; a stop reason Bedrock adds later reads as `stop`.

    `tool_use` without a tool call for the app (JSON mode's synthetic tool, a tool Bedrock ran
    itself) is `stop`: apps read `tool_calls` as "run the calls in this message".
    """
    reason = FINISH_REASONS.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"
    if reason == "tool_calls" and not tool_calls:
        return "stop"
    return reason


def converse_usage(usage: Any) -> dict | None:
    if not isinstance(usage, dict):
        return None
    cache_read = int(usage.get("cacheReadInputTokens") or 0)
    cache_write = int(usage.get("cacheWriteInputTokens") or 0)
    prompt = int(usage.get("inputTokens") or 0) + cache_read + cache_write
    details = {"prompt_tokens_details": {"cached_tokens": cache_read}} if cache_read else {}
    return oa.usage(prompt, int(usage.get("outputTokens") or 0), **details)


def compact_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def completion_message(content_blocks: list[Any], *, json_mode: bool) -> tuple[str | None, list[dict]]:
    """The OpenAI message content and tool calls for Converse output content blocks.

    Blocks with no Chat Completions field (`reasoningContent`, server-side `toolResult`,
    `guardContent`, and block types Bedrock adds later) are left out rather than refused.
    """
    texts: list[str] = []
    tool_calls: list[dict] = []
    for block in content_blocks:
        if not isinstance(block, dict):
            continue
        if isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif isinstance(block.get("citationsContent"), dict):
            texts.extend(citation_texts(block["citationsContent"]))
        elif isinstance(block.get("toolUse"), dict):
            use = block["toolUse"]
            if is_server_tool(use):
                continue  # Bedrock ran it itself; the answer text already uses its result
            if json_mode and use.get("name") == JSON_TOOL_NAME:
                return compact_json(use.get("input", {})), []
            tool_calls.append({
                "id": use.get("toolUseId"),
                "type": "function",
                "function": {"name": use.get("name"), "arguments": compact_json(use.get("input", {}))},
            })
    text = "".join(texts)
    if tool_calls and not text:
        return None, tool_calls
    return text, tool_calls


def citation_texts(citations_content: Mapping[str, Any]) -> list[str]:
    """The answer text inside a `citationsContent` block (the citations themselves have no
    Chat Completions field)."""
    parts = citations_content.get("content")
    if not isinstance(parts, list):
        return []
    return [part["text"] for part in parts if isinstance(part, dict) and isinstance(part.get("text"), str)]


def is_server_tool(tool_use: Mapping[str, Any]) -> bool:
    """A tool Bedrock runs itself (`type: server_tool_use`), not one the app must run."""
    return tool_use.get("type") == "server_tool_use"
