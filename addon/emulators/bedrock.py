"""AWS Bedrock Runtime emulator: Converse, ConverseStream and InvokeModel (Titan v2 / Cohere v3 embeddings,
Anthropic Messages), all behind strict SigV4 verification."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

from . import content as c
from . import eventstream as es
from . import sigv4
from .server import Chunk, Emulator, Request, Response, StreamResponse, json_response

CHAT_MODELS = {
    "anthropic.claude-3-5-sonnet-20241022-v2:0",
    "us.anthropic.claude-3-5-sonnet-20241022-v2:0",
    "anthropic.claude-3-haiku-20240307-v1:0",
    "us.anthropic.claude-3-haiku-20240307-v1:0",
}
EMBED_MODELS = {"amazon.titan-embed-text-v2:0", "cohere.embed-english-v3", "cohere.embed-multilingual-v3"}
CONVERSE_KEYS = {
    "messages", "system", "inferenceConfig", "toolConfig", "guardrailConfig", "additionalModelRequestFields",
    "promptVariables", "additionalModelResponseFieldPaths", "requestMetadata", "performanceConfig",
}
BLOCK_KEYS = {
    "text", "image", "document", "video", "audio", "toolUse", "toolResult", "guardContent", "cachePoint",
    "reasoningContent", "citationsContent",
}
INFERENCE_KEYS = {"maxTokens": int, "temperature": float, "topP": float, "stopSequences": list}
GUARDRAIL_TEXT = "Sorry, the model cannot answer this question."
MSG_TOOLCONFIG = "The toolConfig field must be defined when using toolUse and toolResult content blocks."
MSG_BAD_MODEL = "The provided model identifier is invalid."
CORAL = ":http://internal.amazon.com/coral/com.amazon.coral.service/"

ERRORS: dict[int, tuple[str, str]] = {
    400: ("ValidationException", "Scripted validation failure (EMULATE:error=400)."),
    403: ("AccessDeniedException", "You don't have access to the model with the specified model ID."),
    404: ("ResourceNotFoundException", "Model not found (EMULATE:error=404)."),
    429: ("ThrottlingException", "Too many requests, please wait before trying again."),
    500: ("InternalServerException", "The system encountered an unexpected error during processing. Try your "
                                     "request again."),
    503: ("ServiceUnavailableException", "Bedrock is unable to process your request."),
}


class Invalid(Exception):
    def __init__(self, message: str, code: str = "ValidationException", status: int = 400) -> None:
        super().__init__(message)
        self.message, self.code, self.status = message, code, status


def error(status: int, code: str, message: str, request_id: str | None = None) -> Response:
    return json_response(status, {"message": message}, {
        "x-amzn-ErrorType": code + CORAL,
        "x-amzn-RequestId": request_id or str(uuid.uuid4()),
    })


METADATA_STRING = re.compile(r"[a-zA-Z0-9\s:_@$#=/+,\-.]{0,256}")


def validate_request_metadata(metadata: Any) -> None:
    """Converse `requestMetadata`: 1 to 16 string pairs, keys 1-256 and values 0-256 characters of a
    restricted set (botocore's service model)."""
    ok = isinstance(metadata, dict) and 1 <= len(metadata) <= 16 and all(
        isinstance(k, str) and isinstance(v, str) and k and METADATA_STRING.fullmatch(k)
        and METADATA_STRING.fullmatch(v) for k, v in metadata.items()
    )
    if not ok:
        raise Invalid("1 validation error detected: Value at 'requestMetadata' failed to satisfy constraint: "
                      "Map keys and values must satisfy regular expression pattern: [a-zA-Z0-9\\s:_@$#=/+,-.]{0,256}")


def planned_error(status: int | None, rid: str) -> Response:
    """A scripted error (`EMULATE:error=N`) in Bedrock's own form."""
    status = status or 500
    if status == 401:  # Bedrock has no 401: an unknown credential is a 403
        return error(403, "UnrecognizedClientException", sigv4.MSG_BAD_TOKEN, rid)
    code, msg = ERRORS[status]
    return error(status, code, msg, rid)


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _text_of_blocks(blocks: list[dict[str, Any]]) -> str:
    return " ".join(b["text"] for b in blocks if isinstance(b.get("text"), str))


def _tool_result_text(tr: dict[str, Any]) -> str:
    parts = []
    for item in tr.get("content") or []:
        if "text" in item:
            parts.append(c.result_text(item["text"]))
        elif "json" in item:
            parts.append(c.result_text(item["json"]))
    return " ".join(parts)


class BedrockEmulator(Emulator):
    name = "bedrock"

    def __init__(self, region: str) -> None:
        self.region = region

    def handle(self, req: Request) -> Response | StreamResponse:
        rid = str(uuid.uuid4())
        m = re.fullmatch(r"/model/([^/]+)/(converse|converse-stream|invoke|invoke-with-response-stream)", req.path)
        if req.method != "POST" or not m:
            return error(404, "UnknownOperationException", "Unknown operation", rid)
        try:
            sigv4.verify(req, self.region)
        except sigv4.AuthFailure as e:
            return error(e.status, e.code, e.message, rid)
        model = self._model_id(unquote(m.group(1)))
        op = m.group(2)
        started = time.monotonic()
        try:
            if model is None:
                raise Invalid(MSG_BAD_MODEL)
            try:
                body = json.loads(req.body.decode("utf-8")) if req.body else None
            except ValueError:
                raise Invalid("Malformed input request, please reformat your input and try again.") from None
            if not isinstance(body, dict):
                raise Invalid("Malformed input request, please reformat your input and try again.")
            if op in ("converse", "converse-stream"):
                if model not in CHAT_MODELS:
                    raise Invalid("This action doesn't support the model that you provided. Try again with a "
                                  "supported text or chat model.")
                return self._converse(body, op == "converse-stream", rid, started)
            if op == "invoke-with-response-stream":
                raise Invalid("The model is unsupported for streaming.")
            if model in CHAT_MODELS:
                return self._invoke_anthropic(body, model, rid, started)
            if model.startswith("amazon.titan"):
                return self._invoke_titan(body, rid, started)
            return self._invoke_cohere(body, rid, started)
        except Invalid as e:
            return error(e.status, e.code, e.message, rid)

    @staticmethod
    def _model_id(raw: str) -> str | None:
        if raw.startswith("arn:"):
            m = re.fullmatch(r"arn:aws:bedrock:[a-z0-9-]+:(\d*):(foundation-model|inference-profile)/(.+)", raw)
            raw = m.group(3) if m else ""
        return raw if raw in CHAT_MODELS or raw in EMBED_MODELS else None

    # ---- Converse ---------------------------------------------------------------------------------------

    def _validate(self, body: dict[str, Any]) -> None:
        for k in body:
            if k not in CONVERSE_KEYS:
                raise Invalid(f"Malformed input request: extraneous key [{k}] is not permitted, please reformat "
                              "your input and try again.")
        if "requestMetadata" in body:
            validate_request_metadata(body["requestMetadata"])
        msgs = body.get("messages")
        if not isinstance(msgs, list) or not msgs:
            raise Invalid("A conversation must start with a user message. Try again with a conversation that "
                          "starts with a user message.")
        uses_tools = False
        prev_role = None
        prev_tool_ids: set[str] = set()
        for i, msg in enumerate(msgs):
            if not isinstance(msg, dict) or set(msg) - {"role", "content"}:
                raise Invalid(f"Malformed input request: messages.{i}: extraneous key is not permitted.")
            role = msg.get("role")
            if role not in ("user", "assistant"):
                raise Invalid(f"1 validation error detected: Value '{role}' at 'messages.{i + 1}.member.role' "
                              "failed to satisfy constraint: Member must satisfy enum value set: [user, assistant]")
            if i == 0 and role != "user":
                raise Invalid("A conversation must start with a user message. Try again with a conversation "
                              "that starts with a user message.")
            if role == prev_role:
                raise Invalid("A conversation must alternate between user and assistant roles. Make sure the "
                              "conversation alternates between user and assistant roles and try again.")
            blocks = msg.get("content")
            if not isinstance(blocks, list) or not blocks:
                raise Invalid(f"The content field in the Message object at messages.{i} is empty. Add a "
                              "ContentBlock object to the content field and try again.")
            tool_ids: set[str] = set()
            result_ids: set[str] = set()
            for j, b in enumerate(blocks):
                self._validate_block(b, i, j, role)
                if "toolUse" in b:
                    uses_tools = True
                    tool_ids.add(b["toolUse"]["toolUseId"])
                if "toolResult" in b:
                    uses_tools = True
                    result_ids.add(b["toolResult"]["toolUseId"])
            if result_ids - prev_tool_ids:
                raise Invalid(f"messages.{i}.content: toolResult blocks reference toolUseId(s) "
                              f"{sorted(result_ids - prev_tool_ids)} not present in the previous assistant turn.")
            if prev_tool_ids and prev_tool_ids - result_ids:
                raise Invalid(f"Expected toolResult blocks at messages.{i}.content for the following Ids: "
                              + ", ".join(sorted(prev_tool_ids - result_ids)))
            prev_tool_ids = tool_ids
            prev_role = role
        system = body.get("system")
        if system is not None:
            if not isinstance(system, list):
                raise Invalid("Malformed input request: #/system: expected type: JSONArray, please reformat your "
                              "input and try again.")
            for k, s in enumerate(system):
                if not isinstance(s, dict) or len(s) != 1 or next(iter(s)) not in ("text", "guardContent",
                                                                                     "cachePoint"):
                    raise Invalid(f"Malformed input request: system.{k}: invalid SystemContentBlock.")
                if "text" in s and (not isinstance(s["text"], str) or not s["text"].strip()):
                    raise Invalid(f"The text field in the SystemContentBlock object at system.{k} is blank. Add "
                                  "text to the text field, and try again.")
        ic = body.get("inferenceConfig")
        if ic is not None:
            if not isinstance(ic, dict):
                raise Invalid("Malformed input request: #/inferenceConfig: expected type: JSONObject.")
            for k, v in ic.items():
                if k not in INFERENCE_KEYS:
                    raise Invalid(f"Malformed input request: extraneous key [{k}] is not permitted, please "
                                  "reformat your input and try again.")
                ok = {
                    "maxTokens": isinstance(v, int) and not isinstance(v, bool) and v >= 1,
                    "temperature": _is_num(v) and 0 <= v <= 1,
                    "topP": _is_num(v) and 0 <= v <= 1,
                    "stopSequences": isinstance(v, list) and len(v) <= 4
                    and all(isinstance(s, str) and s for s in v),
                }[k]
                if not ok:
                    raise Invalid(f"1 validation error detected: Value '{v}' at 'inferenceConfig.{k}' failed to "
                                  "satisfy constraint: Member must be valid.")
        tc = body.get("toolConfig")
        if tc is not None:
            self._validate_tool_config(tc)
        elif uses_tools:
            raise Invalid(MSG_TOOLCONFIG)
        amrf = body.get("additionalModelRequestFields")
        if amrf is not None and not isinstance(amrf, dict):
            raise Invalid("Malformed input request: #/additionalModelRequestFields: expected type: JSONObject.")

    @staticmethod
    def _validate_block(b: Any, i: int, j: int, role: str) -> None:
        where = f"messages.{i}.content.{j}"
        if not isinstance(b, dict) or len(b) != 1 or next(iter(b)) not in BLOCK_KEYS:
            raise Invalid(f"Malformed input request: {where}: a ContentBlock must have exactly one of "
                          f"{sorted(BLOCK_KEYS)}, please reformat your input and try again.")
        kind, v = next(iter(b.items()))
        if kind == "text" and (not isinstance(v, str) or not v.strip()):
            raise Invalid(f"The text field in the ContentBlock object at {where} is blank. Add text to the text "
                          "field, and try again.")
        if kind == "image":
            if not isinstance(v, dict) or v.get("format") not in ("png", "jpeg", "gif", "webp") \
                    or not isinstance(v.get("source"), dict) or not v["source"]:
                raise Invalid(f"Malformed input request: {where}.image: format must be one of png, jpeg, gif, "
                              "webp and source must be set.")
        if kind == "toolUse":
            ok = isinstance(v, dict) and isinstance(v.get("toolUseId"), str) and isinstance(v.get("name"), str) \
                and isinstance(v.get("input"), dict) and not set(v) - {"toolUseId", "name", "input"}
            if not ok:
                raise Invalid(f"Malformed input request: {where}.toolUse: toolUseId, name and an object input "
                              "are required.")
            if role != "assistant":
                raise Invalid(f"{where}: toolUse blocks are only allowed in assistant messages.")
        if kind == "toolResult":
            ok = isinstance(v, dict) and isinstance(v.get("toolUseId"), str) and isinstance(v.get("content"), list)
            if ok:
                for item in v["content"]:
                    if not isinstance(item, dict) or len(item) != 1 or next(iter(item)) not in (
                            "text", "json", "image", "document", "video"):
                        ok = False
                    elif "json" in item and not isinstance(item["json"], dict | list):
                        ok = False
                if v.get("status", "success") not in ("success", "error") or set(v) - {
                        "toolUseId", "content", "status"}:
                    ok = False
            if not ok:
                raise Invalid(f"Malformed input request: {where}.toolResult: toolUseId and a content list of "
                              "{text}|{json}|{image}|{document} blocks are required.")
            if role != "user":
                raise Invalid(f"{where}: toolResult blocks are only allowed in user messages.")

    @staticmethod
    def _validate_tool_config(tc: Any) -> None:
        if not isinstance(tc, dict) or set(tc) - {"tools", "toolChoice"}:
            raise Invalid("Malformed input request: #/toolConfig: only tools and toolChoice are permitted.")
        tools = tc.get("tools")
        if not isinstance(tools, list) or not tools:
            raise Invalid("1 validation error detected: Value '[]' at 'toolConfig.tools' failed to satisfy "
                          "constraint: Member must have length greater than or equal to 1")
        for k, t in enumerate(tools):
            spec = t.get("toolSpec") if isinstance(t, dict) else None
            if isinstance(t, dict) and set(t) == {"cachePoint"}:
                continue
            if not isinstance(spec, dict) or set(t) != {"toolSpec"}:
                raise Invalid(f"Malformed input request: toolConfig.tools.{k}: a Tool must be a toolSpec.")
            name = spec.get("name")
            if not isinstance(name, str) or not re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", name):
                raise Invalid(f"1 validation error detected: Value '{name}' at 'toolConfig.tools.{k + 1}.member."
                              "toolSpec.name' failed to satisfy constraint: Member must satisfy regular "
                              "expression pattern: [a-zA-Z0-9_-]+")
            schema = spec.get("inputSchema")
            if not isinstance(schema, dict) or set(schema) != {"json"} or not isinstance(schema["json"], dict):
                raise Invalid(f"Malformed input request: toolConfig.tools.{k}.toolSpec.inputSchema must be "
                              "{\"json\": {...}}.")
            extra = sorted(set(spec) - {"name", "description", "inputSchema"})
            if extra:
                raise Invalid(f"Malformed input request: extraneous key [{extra[0]}] is not permitted, please "
                              "reformat your input and try again.")
        choice = tc.get("toolChoice")
        if choice is not None:
            ok = isinstance(choice, dict) and len(choice) == 1 and (
                choice.get("auto") == {} or choice.get("any") == {}
                or (isinstance(choice.get("tool"), dict) and isinstance(choice["tool"].get("name"), str)))
            if not ok:
                raise Invalid("Malformed input request: #/toolConfig/toolChoice: expected exactly one of "
                              "{auto:{}}, {any:{}}, {tool:{name}}.")

    @staticmethod
    def _turn(body: dict[str, Any]) -> c.Turn:
        msgs = body["messages"]
        texts = [s.get("text", "") for s in body.get("system") or []]
        for m in msgs:
            for b in m["content"]:
                if "text" in b:
                    texts.append(b["text"])
                elif "toolUse" in b:
                    texts.append(json.dumps(b["toolUse"]["input"]))
                elif "toolResult" in b:
                    texts.append(_tool_result_text(b["toolResult"]))
        last = msgs[-1]
        results = [b["toolResult"] for b in last["content"] if "toolResult" in b] if last["role"] == "user" else []
        user_texts = [_text_of_blocks(m["content"]) for m in msgs if m["role"] == "user"]
        user_texts = [t for t in user_texts if t]
        tools = [t["toolSpec"]["name"] for t in (body.get("toolConfig") or {}).get("tools", []) if "toolSpec" in t]
        choice = (body.get("toolConfig") or {}).get("toolChoice") or {}
        if "tool" in choice:
            tools = [choice["tool"]["name"]] + [n for n in tools if n != choice["tool"]["name"]]
        return c.Turn(
            prompt_texts=texts,
            final_user_text=_text_of_blocks(last["content"]) if last["role"] == "user" and not results else None,
            last_user_text=user_texts[-1] if user_texts else "",
            tool_results=[_tool_result_text(r) for r in results] if results else None,
            tool_names=tools,
            max_tokens=(body.get("inferenceConfig") or {}).get("maxTokens"),
            forced_tool="any" in choice or "tool" in choice,
        )

    def _converse(self, body: dict[str, Any], stream: bool, rid: str, started: float) -> Response | StreamResponse:
        self._validate(body)
        plan = c.plan_reply(self._turn(body))
        if plan.kind == "error":
            return planned_error(plan.error_status, rid)
        stop, blocks = self._outcome(plan, body)
        usage = {"inputTokens": plan.prompt_tokens, "outputTokens": plan.completion_tokens,
                 "totalTokens": plan.prompt_tokens + plan.completion_tokens,
                 "cacheReadInputTokens": 0, "cacheWriteInputTokens": 0}
        if stream:
            headers = {"content-type": "application/vnd.amazon.eventstream", "x-amzn-RequestId": rid}
            return StreamResponse(200, headers, self._stream(plan, stop, blocks, usage, started))
        latency = max(1, int((time.monotonic() - started) * 1000))
        resp = {"metrics": {"latencyMs": latency},
                "output": {"message": {"content": blocks, "role": "assistant"}},
                "stopReason": stop, "usage": usage}
        return json_response(200, resp, {"x-amzn-RequestId": rid})

    @staticmethod
    def _outcome(plan: c.Plan, body: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
        if plan.kind == "tool_calls":
            # A forced tool choice prefills the turn, so Claude writes no text before the call.
            blocks: list[dict[str, Any]] = [] if plan.forced_tool else [
                {"text": f"I'll call {plan.tool_calls[0][0]} for that."}]
            blocks += [{"toolUse": {"toolUseId": "tooluse_" + c.rand_id(22), "name": n, "input": a}}
                       for n, a in plan.tool_calls]
            return "tool_use", blocks
        if plan.kind in ("content_filter", "prompt_blocked"):
            stop = "guardrail_intervened" if "guardrailConfig" in body or plan.kind == "prompt_blocked" \
                else "content_filtered"
            return stop, [{"text": GUARDRAIL_TEXT}]
        return ("max_tokens" if plan.kind == "max_tokens" else "end_turn"), [{"text": plan.text}]

    def _stream(self, plan: c.Plan, stop: str, blocks: list[dict[str, Any]], usage: dict[str, Any],
                started: float) -> Iterator[Chunk]:
        def frame(data: bytes) -> Chunk:
            return Chunk(data, delay=plan.delay, split=plan.split_frames)

        yield frame(es.event("messageStart", {"role": "assistant"}))
        sent = 0
        for idx, block in enumerate(blocks):
            if "toolUse" in block:
                tu = block["toolUse"]
                start = {"toolUse": {"toolUseId": tu["toolUseId"], "name": tu["name"]}}
                yield frame(es.event("contentBlockStart", {"contentBlockIndex": idx, "start": start}))
                for frag in c.json_fragments(tu["input"]):
                    yield frame(es.event("contentBlockDelta", {"contentBlockIndex": idx,
                                                               "delta": {"toolUse": {"input": frag}}}))
            else:
                for piece in c.pieces(block["text"]):
                    if plan.stream_exception == "cut" and sent == 2:
                        return
                    if plan.stream_exception and sent == 2:
                        if plan.stream_exception == "throttling":
                            yield frame(es.exception("throttlingException", {
                                "message": "Too many tokens, please wait before trying again."}))
                        else:
                            yield frame(es.exception("modelStreamErrorException", {
                                "message": "Model stream error (EMULATE:stream_exception).",
                                "originalStatusCode": 500, "originalMessage": "Internal server error"}))
                        return
                    yield frame(es.event("contentBlockDelta", {"contentBlockIndex": idx, "delta": {"text": piece}}))
                    sent += 1
            yield frame(es.event("contentBlockStop", {"contentBlockIndex": idx}))
        yield frame(es.event("messageStop", {"stopReason": stop}))
        latency = max(1, int((time.monotonic() - started) * 1000))
        yield frame(es.event("metadata", {"metrics": {"latencyMs": latency}, "usage": usage}))

    # ---- InvokeModel ------------------------------------------------------------------------------------

    @staticmethod
    def _invoke_headers(rid: str, started: float, input_tokens: int, output_tokens: int | None = None
                        ) -> dict[str, str]:
        h = {"x-amzn-RequestId": rid,
             "X-Amzn-Bedrock-Invocation-Latency": str(max(1, int((time.monotonic() - started) * 1000))),
             "X-Amzn-Bedrock-Input-Token-Count": str(input_tokens)}
        if output_tokens is not None:
            h["X-Amzn-Bedrock-Output-Token-Count"] = str(output_tokens)
        return h

    def _invoke_titan(self, body: dict[str, Any], rid: str, started: float) -> Response:
        allowed = {"inputText", "dimensions", "normalize", "embeddingTypes"}
        for k in body:
            if k not in allowed:
                raise Invalid(f"Malformed input request: extraneous key [{k}] is not permitted, please reformat "
                              "your input and try again.")
        text = body.get("inputText")
        if not isinstance(text, str):
            raise Invalid("Malformed input request: #: required key [inputText] not found, please reformat your "
                          "input and try again.")
        if not text:
            raise Invalid("Malformed input request: #/inputText: expected minLength: 1, actual: 0, please "
                          "reformat your input and try again.")
        dims = body.get("dimensions", 1024)
        if dims not in (256, 512, 1024) or isinstance(dims, bool):
            raise Invalid(f"Malformed input request: #/dimensions: {dims} is not a valid enum value, please "
                          "reformat your input and try again.")
        types = body.get("embeddingTypes", ["float"])
        if not isinstance(types, list) or not types or any(t not in ("float", "binary") for t in types):
            raise Invalid("Malformed input request: #/embeddingTypes: expected values float or binary, please "
                          "reformat your input and try again.")
        vec = c.embedding(text, dims, normalize=body.get("normalize", True) is not False)
        by_type: dict[str, Any] = {}
        if "float" in types:
            by_type["float"] = vec
        if "binary" in types:
            by_type["binary"] = [1 if v > 0 else 0 for v in vec]
        tokens = c.count_tokens(text)
        resp = {"embedding": vec, "embeddingsByType": by_type, "inputTextTokenCount": tokens}
        return json_response(200, resp, self._invoke_headers(rid, started, tokens))

    def _invoke_cohere(self, body: dict[str, Any], rid: str, started: float) -> Response:
        allowed = {"texts", "input_type", "truncate", "embedding_types", "images"}
        for k in body:
            if k not in allowed:
                raise Invalid(f"Malformed input request: extraneous key [{k}] is not permitted, please reformat "
                              "your input and try again.")
        texts = body.get("texts")
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            raise Invalid("Malformed input request: #: required key [texts] not found, please reformat your "
                          "input and try again.")
        if len(texts) > 96:
            raise Invalid(f"Malformed input request: #/texts: expected maximum item count: 96, found: {len(texts)}, "
                          "please reformat your input and try again.")
        if body.get("input_type") not in ("search_document", "search_query", "classification", "clustering"):
            raise Invalid("Malformed input request: #: required key [input_type] not found, please reformat your "
                          "input and try again." if "input_type" not in body else
                          f"Malformed input request: #/input_type: {body['input_type']} is not a valid enum value, "
                          "please reformat your input and try again.")
        if body.get("truncate", "NONE") not in ("NONE", "START", "END"):
            raise Invalid(f"Malformed input request: #/truncate: {body['truncate']} is not a valid enum value, "
                          "please reformat your input and try again.")
        vecs = [c.embedding(t, 1024) for t in texts]
        types = body.get("embedding_types")
        resp: dict[str, Any] = {"id": str(uuid.uuid4()), "texts": texts}
        if types is None:
            resp.update(embeddings=vecs, response_type="embeddings_floats")
        else:
            valid = ("float", "int8", "uint8", "binary", "ubinary")
            if not isinstance(types, list) or not types or any(t not in valid for t in types):
                raise Invalid("Malformed input request: #/embedding_types: invalid value, please reformat your "
                              "input and try again.")
            by_type: dict[str, Any] = {}
            for t in types:
                if t == "float":
                    by_type[t] = vecs
                elif t in ("int8", "uint8"):
                    off = 0 if t == "int8" else 128
                    by_type[t] = [[max(-128, min(127, round(v * 127 * 30))) + off for v in vec] for vec in vecs]
                else:
                    off = 128 if t == "binary" else 0
                    by_type[t] = [[sum(1 << (7 - b) for b in range(8) if vec[i + b] > 0) - off
                                   for i in range(0, len(vec), 8)] for vec in vecs]
            resp.update(embeddings=by_type, response_type="embeddings_by_type")
        return json_response(200, resp, self._invoke_headers(rid, started, c.count_tokens(texts)))

    def _invoke_anthropic(self, body: dict[str, Any], model: str, rid: str, started: float) -> Response:
        allowed = {"anthropic_version", "max_tokens", "system", "messages", "temperature", "top_p", "top_k",
                   "stop_sequences", "tools", "tool_choice", "anthropic_beta", "metadata", "thinking"}
        for k in body:
            if k not in allowed:
                raise Invalid(f"Malformed input request: extraneous key [{k}] is not permitted, please reformat "
                              "your input and try again.")
        for k in ("anthropic_version", "max_tokens", "messages"):
            if k not in body:
                raise Invalid(f"Malformed input request: #: required key [{k}] not found, please reformat your "
                              "input and try again.")
        msgs = body["messages"]
        if not isinstance(msgs, list) or not msgs or not all(
                isinstance(m, dict) and m.get("role") in ("user", "assistant") for m in msgs):
            raise Invalid("messages: roles must be user or assistant")

        def text(cnt: Any) -> str:
            if isinstance(cnt, str):
                return cnt
            return " ".join(b.get("text", "") for b in cnt or [] if isinstance(b, dict) and b.get("type") == "text")

        last = msgs[-1]
        results = [b for b in last.get("content") or [] if isinstance(b, dict) and b.get("type") == "tool_result"] \
            if isinstance(last.get("content"), list) else []
        user_texts = [text(m.get("content")) for m in msgs if m["role"] == "user" and text(m.get("content"))]
        tools = [t.get("name") for t in body.get("tools") or [] if isinstance(t, dict)]
        if (body.get("tool_choice") or {}).get("type") == "none":
            tools = []
        system = body.get("system")
        turn = c.Turn(
            prompt_texts=[text(m.get("content")) for m in msgs] + ([text(system)] if system else []),
            final_user_text=text(last.get("content")) if last["role"] == "user" and not results else None,
            last_user_text=user_texts[-1] if user_texts else "",
            tool_results=[c.result_text(text(r.get("content")) if isinstance(r.get("content"), list)
                                        else r.get("content")) for r in results] or None,
            tool_names=tools,
            max_tokens=body.get("max_tokens"),
        )
        plan = c.plan_reply(turn)
        if plan.kind == "error":
            return planned_error(plan.error_status, rid)
        content: list[dict[str, Any]]
        if plan.kind == "tool_calls":
            content = [{"type": "tool_use", "id": "toolu_bdrk_" + c.rand_id(24), "name": n, "input": a}
                       for n, a in plan.tool_calls]
            stop = "tool_use"
        elif plan.kind in ("content_filter", "prompt_blocked"):
            content, stop = [], "refusal"
        else:
            content = [{"type": "text", "text": plan.text}]
            stop = "max_tokens" if plan.kind == "max_tokens" else "end_turn"
        resp = {"id": "msg_bdrk_" + c.rand_id(24), "type": "message", "role": "assistant",
                "model": re.sub(r"^(?:[a-z]+\.)?anthropic\.|-v\d+:\d+$", "", model),
                "content": content, "stop_reason": stop, "stop_sequence": None,
                "usage": {"input_tokens": plan.prompt_tokens, "output_tokens": plan.completion_tokens,
                          "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}
        return json_response(200, resp, self._invoke_headers(rid, started, plan.prompt_tokens,
                                                              plan.completion_tokens))
