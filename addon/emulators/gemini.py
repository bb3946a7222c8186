"""Google Gemini emulators: AI Studio (generativelanguage, API key) and Vertex AI (OAuth bearer token)."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from typing import Any

from . import content as c
from . import fakes
from .oauth import TokenIssuer
from .server import Chunk, Emulator, Request, Response, StreamResponse, json_response

CHAT_MODELS = {"gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.0-flash"}
EMBED_DIMS = {"gemini-embedding-001": 3072, "text-embedding-004": 768, "text-embedding-005": 768}
THINKING_MODELS = {"gemini-2.5-pro", "gemini-2.5-flash"}
TASK_TYPES = {
    "TASK_TYPE_UNSPECIFIED", "RETRIEVAL_QUERY", "RETRIEVAL_DOCUMENT", "SEMANTIC_SIMILARITY", "CLASSIFICATION",
    "CLUSTERING", "QUESTION_ANSWERING", "FACT_VERIFICATION", "CODE_RETRIEVAL_QUERY",
}
SCHEMA_TYPES = {"TYPE_UNSPECIFIED", "STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT", "NULL"}
DATA_FIELDS = ("text", "inlineData", "fileData", "functionCall", "functionResponse", "executableCode",
               "codeExecutionResult")
JSON_CT = "application/json; charset=UTF-8"

MSG_KEY_INVALID = "API key not valid. Please pass a valid API key."
MSG_UNREGISTERED = (
    "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or "
    "other form of API consumer identity to call this API."
)
MSG_BAD_CREDENTIALS = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other "
    "valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project."
)
MSG_MISSING_CREDENTIALS = (
    "Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or "
    "other valid authentication credential. See "
    "https://developers.google.com/identity/sign-in/web/devconsole-project."
)

# --- request schema (proto JSON: lowerCamel names; snake_case accepted as aliases) ------------------------
S, N, INT, B, ANY, STRUCT = "string", "number", "int", "bool", "any", "struct"
SCHEMAS: dict[str, dict[str, Any]] = {
    "GenerateContentRequest": {
        "model": S, "contents": ["Content"], "systemInstruction": "Content", "generationConfig": "GenerationConfig",
        "tools": ["Tool"], "toolConfig": "ToolConfig", "safetySettings": ["SafetySetting"], "cachedContent": S,
        "labels": STRUCT,
    },
    "Content": {"role": S, "parts": ["Part"]},
    "Part": {
        "text": S, "inlineData": "Blob", "fileData": "FileData", "functionCall": "FunctionCall",
        "functionResponse": "FunctionResponse", "executableCode": STRUCT, "codeExecutionResult": STRUCT,
        "thought": B, "thoughtSignature": S, "videoMetadata": STRUCT, "partMetadata": STRUCT, "mediaResolution": ANY,
    },
    "Blob": {"mimeType": S, "data": S, "displayName": S},
    "FileData": {"mimeType": S, "fileUri": S, "displayName": S},
    "FunctionCall": {"id": S, "name": S, "args": STRUCT},
    "FunctionResponse": {"id": S, "name": S, "response": STRUCT, "willContinue": B, "scheduling": S, "parts": [ANY]},
    "GenerationConfig": {
        "temperature": N, "topP": N, "topK": N, "candidateCount": INT, "maxOutputTokens": INT, "stopSequences": [S],
        "presencePenalty": N, "frequencyPenalty": N, "responseMimeType": S, "responseSchema": "Schema",
        "responseJsonSchema": ANY, "seed": INT, "responseLogprobs": B, "logprobs": INT,
        "thinkingConfig": "ThinkingConfig",
        "responseModalities": [S], "speechConfig": STRUCT, "mediaResolution": S, "enableEnhancedCivicAnswers": B,
        "routingConfig": STRUCT, "audioTimestamp": B, "imageConfig": STRUCT,
    },
    "ThinkingConfig": {"thinkingBudget": INT, "includeThoughts": B, "thinkingLevel": S},
    "Tool": {
        "functionDeclarations": ["FunctionDeclaration"], "googleSearch": STRUCT, "googleSearchRetrieval": STRUCT,
        "codeExecution": STRUCT, "urlContext": STRUCT, "retrieval": STRUCT, "enterpriseWebSearch": STRUCT,
        "googleMaps": STRUCT, "computerUse": STRUCT, "fileSearch": STRUCT,
    },
    "FunctionDeclaration": {
        "name": S, "description": S, "parameters": "Schema", "parametersJsonSchema": ANY, "response": "Schema",
        "responseJsonSchema": ANY, "behavior": S,
    },
    # The OpenAPI-subset Schema: JSON-Schema-only keys such as additionalProperties or $schema are rejected.
    "Schema": {
        "type": S, "format": S, "title": S, "description": S, "nullable": B, "enum": [S], "maxItems": INT,
        "minItems": INT, "properties": {"map": "Schema"}, "required": [S], "minProperties": INT, "maxProperties": INT,
        "minLength": INT, "maxLength": INT, "pattern": S, "example": ANY, "anyOf": ["Schema"], "propertyOrdering": [S],
        "default": ANY, "items": "Schema", "minimum": N, "maximum": N,
    },
    "ToolConfig": {"functionCallingConfig": "FunctionCallingConfig", "retrievalConfig": STRUCT},
    "FunctionCallingConfig": {"mode": S, "allowedFunctionNames": [S]},
    "SafetySetting": {"category": S, "threshold": S, "method": S},
    "EmbedContentRequest": {"model": S, "content": "Content", "taskType": S, "title": S, "outputDimensionality": INT},
    "BatchEmbedContentsRequest": {"requests": ["EmbedContentRequest"]},
}
TYPE_NAMES = {S: "TYPE_STRING", N: "TYPE_FLOAT", INT: "TYPE_INT32", B: "TYPE_BOOL"}


class GoogleError(Exception):
    def __init__(self, code: int, status: str, message: str, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.code, self.status, self.message, self.details = code, status, message, details


def google_error(code: int, status: str, message: str, details: list[dict[str, Any]] | None = None) -> Response:
    err: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        err["details"] = details
    return json_response(code, {"error": err}, {"content-type": JSON_CT})


def _bad_payload(message: str) -> GoogleError:
    return GoogleError(400, "INVALID_ARGUMENT", message, [
        {"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": [{"description": message}]}])


def _invalid(message: str) -> GoogleError:
    return GoogleError(400, "INVALID_ARGUMENT", message)


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def _canonical(obj: Any, kind: Any, path: str, pkg: str) -> Any:
    """Check `obj` against the proto-JSON schema `kind`; return it with lowerCamel keys."""
    at = f" at '{path}'" if path else ""
    if isinstance(kind, list):
        if not isinstance(obj, list):
            obj = [obj]  # proto JSON accepts a single value for a repeated field
        return [_canonical(v, kind[0], f"{path}[{i}]", pkg) for i, v in enumerate(obj)]
    if isinstance(kind, dict):
        if not isinstance(obj, dict):
            raise _bad_payload(f"Invalid JSON payload received. Expected an object{at}.")
        return {k: _canonical(v, kind["map"], f"{path}[{k!r}]".replace("'", '"'), pkg) for k, v in obj.items()}
    if kind == ANY:
        return obj
    if kind == STRUCT:
        if not isinstance(obj, dict):
            raise _bad_payload(f"Invalid value{at} (type.googleapis.com/google.protobuf.Struct), {json.dumps(obj)}")
        return obj
    if kind in TYPE_NAMES:
        ok = {
            S: isinstance(obj, str),
            N: isinstance(obj, int | float) and not isinstance(obj, bool),
            INT: (isinstance(obj, int) and not isinstance(obj, bool))
            or (isinstance(obj, str) and obj.lstrip("-").isdigit()),
            B: isinstance(obj, bool),
        }[kind]
        if not ok:
            raise _bad_payload(f"Invalid value{at} ({TYPE_NAMES[kind]}), {json.dumps(obj)}")
        return int(obj) if kind == INT else obj
    fields = SCHEMAS[kind]
    if not isinstance(obj, dict):
        raise _bad_payload(f"Invalid value{at} (type.googleapis.com/{pkg}.{kind}), {json.dumps(obj)}")
    out: dict[str, Any] = {}
    for key, value in obj.items():
        name = key if key in fields else _camel(key)
        if name not in fields:
            raise _bad_payload(f'Invalid JSON payload received. Unknown name "{key}"{at}: Cannot find field.')
        if name in out:
            raise _bad_payload(f"Invalid JSON payload received. Duplicate field \"{key}\"{at}.")
        if value is None:
            continue
        sub = f"{path}.{_snake(name)}" if path else _snake(name)
        out[name] = _canonical(value, fields[name], sub, pkg)
    if kind == "Schema" and "type" in out and out["type"].upper() not in SCHEMA_TYPES:
        raise _bad_payload(f"Invalid value{' at ' + repr(path + '.type') if path else ''} "
                           f"(type.googleapis.com/{pkg}.Type), \"{out['type']}\"")
    return out


LABEL = re.compile(r"[\w-]{0,63}")


def validate_labels(labels: Any) -> None:
    """Vertex request labels: keys start with a letter; keys and values at most 63 lowercase letters,
    digits, underscores or dashes."""
    if not isinstance(labels, dict) or len(labels) > 64:
        raise _invalid("* GenerateContentRequest.labels: at most 64 labels are allowed.\n")
    for key, value in labels.items():
        if not (isinstance(value, str) and key[:1].isalpha() and all(
            LABEL.fullmatch(v) and v == v.lower() for v in (key, value)
        )):
            raise _invalid(f"* GenerateContentRequest.labels: label '{key}' is invalid: keys and values can "
                           "only contain lowercase letters, numeric characters, underscores and dashes, "
                           "at most 63 characters, and keys must start with a letter.\n")


def validate_generate(body: Any, model: str, pkg: str) -> dict[str, Any]:
    req = _canonical(body, "GenerateContentRequest", "", pkg)
    contents = req.get("contents") or []
    if not contents:
        raise _invalid("* GenerateContentRequest.contents: contents is not specified\n")
    prev_role: str | None = None
    prev_calls = 0
    for i, content in enumerate(contents):
        role = content.get("role", "")
        if role not in ("user", "model", ""):
            raise _invalid("Please use a valid role: user, model.")
        parts = content.get("parts") or []
        if not parts:
            raise _invalid(f"* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty.\n")
        calls = responses = 0
        for j, part in enumerate(parts):
            present = [f for f in DATA_FIELDS if f in part]
            if not present:
                raise _invalid(f"* GenerateContentRequest.contents[{i}].parts[{j}].data: required oneof field "
                               "'data' must have one initialized field\n")
            if len(present) > 1:
                raise _bad_payload(f"Invalid JSON payload received. Oneof field 'data' is already set. Cannot set "
                                   f"'{present[1]}'")
            if "functionCall" in part:
                calls += 1
                if not part["functionCall"].get("name"):
                    raise _invalid(f"* GenerateContentRequest.contents[{i}].parts[{j}].function_call.name: Name "
                                   "cannot be empty.\n")
            if "functionResponse" in part:
                responses += 1
                if not part["functionResponse"].get("name"):
                    raise _invalid(f"* GenerateContentRequest.contents[{i}].parts[{j}].function_response.name: "
                                   "Name cannot be empty.\n")
            if "inlineData" in part and not (part["inlineData"].get("mimeType") and part["inlineData"].get("data")):
                raise _invalid(f"* GenerateContentRequest.contents[{i}].parts[{j}].inline_data.mime_type: "
                               "mime_type and data must be set.\n")
        if calls and role != "model":
            raise _invalid("Please ensure that function call turns come from the model role.")
        if calls and (i == 0 or prev_role == "model"):
            raise _invalid("Please ensure that function call turn comes immediately after a user turn or after a "
                           "function response turn.")
        if responses:
            if not prev_calls:
                raise _invalid("Please ensure that function response turn comes immediately after a function call "
                               "turn.")
            if responses != prev_calls:
                raise _invalid("Please ensure that the number of function response parts is equal to the number "
                               "of function call parts of the function call turn.")
        prev_role, prev_calls = role, calls
    si = req.get("systemInstruction")
    if si is not None and not si.get("parts"):
        raise _invalid("* GenerateContentRequest.system_instruction.parts: contents.parts must not be empty.\n")
    names: list[str] = []
    for t, tool in enumerate(req.get("tools") or []):
        for d, decl in enumerate(tool.get("functionDeclarations") or []):
            name = decl.get("name", "")
            if not name:
                raise _invalid(f"* GenerateContentRequest.tools[{t}].function_declarations[{d}].name: Name cannot "
                               "be empty.\n")
            if not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_.:-]{0,127}", name):
                raise _invalid(f"* GenerateContentRequest.tools[{t}].function_declarations[{d}].name: Invalid "
                               "function name. Must start with a letter or an underscore. Must be alphameric "
                               "(a-z, A-Z, 0-9), underscores (_), dots (.), colons (:), or dashes (-), with a "
                               "maximum length of 128.\n")
            if "parameters" in decl and "parametersJsonSchema" in decl:
                raise _invalid(f"* GenerateContentRequest.tools[{t}].function_declarations[{d}]: parameters and "
                               "parameters_json_schema cannot both be set.\n")
            names.append(name)
    fcc = (req.get("toolConfig") or {}).get("functionCallingConfig") or {}
    mode = fcc.get("mode", "AUTO")
    if mode not in ("MODE_UNSPECIFIED", "AUTO", "ANY", "NONE", "VALIDATED"):
        raise _bad_payload(f"Invalid value at 'tool_config.function_calling_config.mode' "
                           f"(type.googleapis.com/{pkg}.FunctionCallingConfig.Mode), \"{mode}\"")
    allowed = fcc.get("allowedFunctionNames")
    if allowed:
        if mode not in ("ANY", "VALIDATED"):
            raise _invalid("* GenerateContentRequest.tool_config.function_calling_config.allowed_function_names: "
                           "allowed_function_names is only allowed when mode is ANY.\n")
        for n in allowed:
            if n not in names:
                raise _invalid("* GenerateContentRequest.tool_config.function_calling_config.allowed_function_names"
                               f": function name '{n}' is not declared in tools.\n")
    gc = req.get("generationConfig") or {}
    budget = (gc.get("thinkingConfig") or {}).get("thinkingBudget")
    if budget == 0 and model == "gemini-2.5-pro":
        raise _invalid("Budget 0 is invalid. This model only works in thinking mode.")
    if "thinkingConfig" in gc and model not in THINKING_MODELS and budget:
        raise _invalid("Thinking is not supported for this model.")
    if ("responseSchema" in gc or "responseJsonSchema" in gc) and gc.get("responseMimeType") not in (
            "application/json", "text/x.enum"):
        raise _invalid("* GenerateContentRequest.generation_config.response_mime_type: response_mime_type must be "
                       "set to 'application/json' or 'text/x.enum' when response_schema is set.\n")
    if gc.get("candidateCount", 1) < 1 or gc.get("candidateCount", 1) > 8:
        raise _invalid("* GenerateContentRequest.generation_config.candidate_count: must be between 1 and 8.\n")
    return req


def _turn(req: dict[str, Any]) -> c.Turn:
    contents = req["contents"]
    texts = [p.get("text", "") for p in (req.get("systemInstruction") or {}).get("parts", [])]
    user_texts: list[str] = []
    for content in contents:
        for p in content["parts"]:
            if "text" in p:
                texts.append(p["text"])
            elif "functionCall" in p:
                texts.append(json.dumps(p["functionCall"].get("args", {})))
            elif "functionResponse" in p:
                texts.append(json.dumps(p["functionResponse"].get("response", {})))
        if content.get("role", "user") != "model":
            joined = " ".join(p["text"] for p in content["parts"] if "text" in p)
            if joined:
                user_texts.append(joined)
    last = contents[-1]
    responses = [p["functionResponse"] for p in last["parts"] if "functionResponse" in p]
    final_text = " ".join(p["text"] for p in last["parts"] if "text" in p)
    fcc = (req.get("toolConfig") or {}).get("functionCallingConfig") or {}
    names = [d["name"] for t in req.get("tools") or [] for d in t.get("functionDeclarations") or []]
    if fcc.get("mode") == "NONE":
        names = []
    elif fcc.get("allowedFunctionNames"):
        names = list(fcc["allowedFunctionNames"])
    gc = req.get("generationConfig") or {}
    return c.Turn(
        prompt_texts=texts,
        final_user_text=final_text if last.get("role", "user") != "model" and not responses else None,
        last_user_text=user_texts[-1] if user_texts else "",
        tool_results=[c.result_text(r.get("response", {})) for r in responses] if responses else None,
        tool_names=names,
        max_tokens=gc.get("maxOutputTokens"),
        json_mode=gc.get("responseMimeType") == "application/json",
        forced_tool=fcc.get("mode") == "ANY",
    )


SAFETY_BLOCKED = [
    {"category": "HARM_CATEGORY_HATE_SPEECH", "probability": "NEGLIGIBLE"},
    {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True},
    {"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"},
    {"category": "HARM_CATEGORY_SEXUALLY_EXPLICIT", "probability": "NEGLIGIBLE"},
]


def key_invalid() -> Response:
    """AI Studio's answer to an API key it does not accept: a 400, not a 401."""
    return google_error(400, "INVALID_ARGUMENT", MSG_KEY_INVALID, [
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
         "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}},
        {"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US", "message": MSG_KEY_INVALID}])


def bad_credentials(method: str) -> Response:
    """Vertex AI's answer to an access token it does not accept."""
    return google_error(401, "UNAUTHENTICATED", MSG_BAD_CREDENTIALS, [{
        "@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "ACCESS_TOKEN_TYPE_UNSUPPORTED",
        "domain": "googleapis.com", "metadata": {"service": "aiplatform.googleapis.com", "method": method}}])


def scripted_error(status: int, vertex: bool) -> Response:
    if status == 401:
        if vertex:
            return bad_credentials("google.cloud.aiplatform.v1.PredictionService.GenerateContent")
        return key_invalid()
    if status == 429:
        msg = ("Resource exhausted. Please try again later. Please refer to "
               "https://cloud.google.com/vertex-ai/generative-ai/docs/error-code-429 for more details." if vertex else
               "You exceeded your current quota, please check your plan and billing details. For more information "
               "on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.")
        details = [
            {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{
                "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"}]},
            {"@type": "type.googleapis.com/google.rpc.Help", "links": [{
                "description": "Learn more about Gemini API quotas",
                "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]},
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "3s"},
        ]
        return google_error(429, "RESOURCE_EXHAUSTED", msg, details)
    table = {
        400: ("INVALID_ARGUMENT", "Request contains an invalid argument."),
        403: ("PERMISSION_DENIED", "The caller does not have permission"),
        404: ("NOT_FOUND", "Requested entity was not found."),
        500: ("INTERNAL", "An internal error has occurred. Please retry or report in "
                          "https://developers.generativeai.google/guide/troubleshooting"),
        503: ("UNAVAILABLE", "The model is overloaded. Please try again later."),
    }
    st, msg = table.get(status, table[500])
    return google_error(status if status in table else 500, st, msg)


class GeminiCore:
    """Generation and embedding behaviour shared by AI Studio and Vertex."""

    vertex = False

    def usage(self, model: str, plan: c.Plan, req: dict[str, Any], candidates: int | None = None) -> dict[str, Any]:
        cand = plan.completion_tokens if candidates is None else candidates
        budget = ((req.get("generationConfig") or {}).get("thinkingConfig") or {}).get("thinkingBudget")
        thoughts = 4 * plan.completion_tokens if model in THINKING_MODELS and budget != 0 else 0
        u: dict[str, Any] = {"promptTokenCount": plan.prompt_tokens, "candidatesTokenCount": cand,
                             "totalTokenCount": plan.prompt_tokens + cand + thoughts,
                             "promptTokensDetails": [{"modality": "TEXT", "tokenCount": plan.prompt_tokens}]}
        if thoughts:
            u["thoughtsTokenCount"] = thoughts
        if self.vertex:
            u["candidatesTokensDetails"] = [{"modality": "TEXT", "tokenCount": cand}]
            u["trafficType"] = "ON_DEMAND"
        return u

    def envelope(self, model: str, rid: str, created: str) -> dict[str, Any]:
        env: dict[str, Any] = {"modelVersion": model}
        if self.vertex:
            env["createTime"] = created
        env["responseId"] = rid
        return env

    def generate(self, body: Any, model: str, stream: bool, sse: bool, pkg: str) -> Response | StreamResponse:
        if isinstance(body, dict) and "labels" in body:
            if not self.vertex:  # request labels exist on Vertex AI only
                raise _bad_payload('Invalid JSON payload received. Unknown name "labels": Cannot find field.')
            validate_labels(body["labels"])
        req = validate_generate(body, model, pkg)
        plan = c.plan_reply(_turn(req))
        if plan.kind == "error":
            return scripted_error(plan.error_status or 500, self.vertex)
        rid = c.rand_id(22, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
        created = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        headers = {"content-type": JSON_CT, "server-timing": "gfet4t7; dur=412", "vary": "Origin, X-Origin, Referer"}
        if not stream:
            return json_response(200, self.full_response(plan, req, model, rid, created), headers)
        events = list(self.stream_events(plan, req, model, rid, created))
        if sse:
            hdrs = {**headers, "content-type": "text/event-stream"}
            return StreamResponse(200, hdrs, self._sse(events, plan))
        return StreamResponse(200, headers, self._json_array(events, plan))

    def _sse(self, events: list[dict[str, Any]], plan: c.Plan) -> Iterator[Chunk]:
        for i, ev in enumerate(events):
            if plan.stream_exception == "cut" and i == 2:
                return
            if plan.stream_exception and i == 2:
                err = {"error": {"code": 500, "status": "INTERNAL", "message": "An internal error has occurred. "
                                 "Please retry or report in https://developers.generativeai.google/guide/troubleshooting"}}
                yield Chunk(b"data: " + json.dumps(err).encode() + b"\r\n\r\n")
                return
            yield Chunk(b"data: " + json.dumps(ev).encode() + b"\r\n\r\n", delay=plan.delay if i else 0.0)

    @staticmethod
    def _json_array(events: list[dict[str, Any]], plan: c.Plan) -> Iterator[Chunk]:
        for i, ev in enumerate(events):
            yield Chunk((b"[" if i == 0 else b",\r\n") + json.dumps(ev, indent=2).encode(),
                        delay=plan.delay if i else 0.0)
        yield Chunk(b"]")

    def _parts(self, plan: c.Plan, model: str) -> list[dict[str, Any]]:
        if plan.kind == "tool_calls":
            parts: list[dict[str, Any]] = [{"functionCall": {"name": n, "args": a}} for n, a in plan.tool_calls]
            if model in THINKING_MODELS:
                parts[0]["thoughtSignature"] = "CiQB" + c.rand_id(40)
            return parts
        return [{"text": plan.text}]

    def _finish(self, plan: c.Plan) -> str:
        return {"max_tokens": "MAX_TOKENS", "content_filter": "SAFETY"}.get(plan.kind, "STOP")

    def full_response(self, plan: c.Plan, req: dict[str, Any], model: str, rid: str, created: str) -> dict[str, Any]:
        if plan.kind == "prompt_blocked":
            usage = self.usage(model, plan, req, 0)
            usage.pop("thoughtsTokenCount", None)
            usage["totalTokenCount"] = plan.prompt_tokens
            usage.pop("candidatesTokenCount", None)
            return {"promptFeedback": {"blockReason": "SAFETY", "safetyRatings": SAFETY_BLOCKED},
                    "usageMetadata": usage, **self.envelope(model, rid, created)}
        cand: dict[str, Any] = {"content": {"parts": self._parts(plan, model), "role": "model"},
                                "finishReason": self._finish(plan), "index": 0}
        if plan.kind == "content_filter":
            cand = {"finishReason": "SAFETY", "index": 0, "safetyRatings": SAFETY_BLOCKED}
        n = (req.get("generationConfig") or {}).get("candidateCount", 1)
        cands = [dict(cand, index=i) for i in range(n)]
        return {"candidates": cands, "usageMetadata": self.usage(model, plan, req, plan.completion_tokens * n),
                **self.envelope(model, rid, created)}

    def stream_events(self, plan: c.Plan, req: dict[str, Any], model: str, rid: str, created: str
                      ) -> Iterator[dict[str, Any]]:
        if plan.kind in ("prompt_blocked", "content_filter", "tool_calls"):
            yield self.full_response(plan, req, model, rid, created)
            return
        chunks = c.pieces(plan.text, 3)
        done = 0
        for i, piece in enumerate(chunks):
            done += c.count_tokens(piece) if piece.strip() else 0
            cand: dict[str, Any] = {"content": {"parts": [{"text": piece}], "role": "model"}, "index": 0}
            if i == len(chunks) - 1:
                cand["finishReason"] = self._finish(plan)
            usage = self.usage(model, plan, req, min(done, plan.completion_tokens))
            yield {"candidates": [cand], "usageMetadata": usage, **self.envelope(model, rid, created)}

    def embed_values(self, model: str, text: str, dims: int | None) -> list[float]:
        full = EMBED_DIMS[model]
        if dims is not None and not 1 <= dims <= full:
            raise _invalid(f"* EmbedContentRequest.output_dimensionality: Output dimensionality must be between 1 "
                           f"and {full}.\n" if not self.vertex else
                           f"Output dimensionality must be between 1 and {full}.")
        return c.embedding(text, dims or full)


def _model_text(content: dict[str, Any], where: str) -> str:
    parts = content.get("parts") or []
    if not parts:
        raise _invalid(f"* {where}.content.parts: contents.parts must not be empty.\n")
    return " ".join(p.get("text", "") for p in parts)


class GeminiEmulator(GeminiCore, Emulator):
    """AI Studio: /v1beta|v1/models/{model}:{method}, key in x-goog-api-key or ?key=."""

    name = "gemini"

    def handle(self, req: Request) -> Response | StreamResponse:
        m = re.fullmatch(r"/(v1|v1beta)/models/([^/:]+):(\w+)", req.path)
        if not m:
            return google_error(404, "NOT_FOUND", f"The requested URL {req.path} was not found on this server.")
        version, model, method = m.groups()
        pkg = f"google.ai.generativelanguage.{version}"
        key = req.headers.get("x-goog-api-key") or req.q("key")
        if not key:
            return google_error(403, "PERMISSION_DENIED", MSG_UNREGISTERED, [{
                "@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "CONSUMER_INVALID",
                "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}}])
        if key != fakes.GEMINI_API_KEY:
            return key_invalid()
        if req.method != "POST":
            return google_error(404, "NOT_FOUND", f"The requested URL {req.path} was not found on this server.")
        supported = {"generateContent", "streamGenerateContent"} if model in CHAT_MODELS else (
            {"embedContent", "batchEmbedContents"} if model in EMBED_DIMS else set())
        if method not in supported:
            return google_error(404, "NOT_FOUND", f"models/{model} is not found for API version {version}, or is not "
                                "supported for {method}. Call ListModels to see the list of available models and "
                                "their supported methods.".format(method=method))
        try:
            try:
                body = req.json()
            except ValueError:
                raise _bad_payload("Invalid JSON payload received. Unexpected token.") from None
            if method == "generateContent":
                return self.generate(body, model, stream=False, sse=False, pkg=pkg)
            if method == "streamGenerateContent":
                return self.generate(body, model, stream=True, sse=req.q("alt") == "sse", pkg=pkg)
            if method == "embedContent":
                r = self._embed_one(_canonical(body, "EmbedContentRequest", "", pkg), model, "EmbedContentRequest", pkg)
                return json_response(200, {"embedding": {"values": r}}, {"content-type": JSON_CT})
            batch = _canonical(body, "BatchEmbedContentsRequest", "", pkg)
            requests = batch.get("requests") or []
            if not requests:
                raise _invalid("* BatchEmbedContentsRequest.requests: requests is not specified\n")
            if len(requests) > 100:
                raise _invalid("* BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch\n")
            out = []
            for i, r in enumerate(requests):
                if r.get("model") != f"models/{model}":
                    raise _invalid(f"* BatchEmbedContentsRequest.requests[{i}].model: Model name mismatch between "
                                   f"batch request and embed request: models/{model} vs {r.get('model') or '<empty>'}"
                                   "\n")
                out.append({"values": self._embed_one(r, model, f"BatchEmbedContentsRequest.requests[{i}]", pkg)})
            return json_response(200, {"embeddings": out}, {"content-type": JSON_CT})
        except GoogleError as e:
            return google_error(e.code, e.status, e.message, e.details)

    def _embed_one(self, r: dict[str, Any], model: str, where: str, pkg: str) -> list[float]:
        if "model" in r and r["model"] != f"models/{model}" and where == "EmbedContentRequest":
            raise _invalid(f"* EmbedContentRequest.model: Model name mismatch: models/{model} vs {r['model']}\n")
        if "content" not in r:
            raise _invalid(f"* {where}.content: content is not specified\n")
        if r.get("taskType", "TASK_TYPE_UNSPECIFIED") not in TASK_TYPES:
            raise _bad_payload(f"Invalid value at 'task_type' (type.googleapis.com/{pkg}.TaskType), "
                               f"\"{r['taskType']}\"")
        return self.embed_values(model, _model_text(r["content"], where), r.get("outputDimensionality"))


class VertexEmulator(GeminiCore, Emulator):
    """Vertex AI publisher models plus the OAuth token endpoint (POST /token)."""

    name = "vertex"
    vertex = True

    def __init__(self, issuer: TokenIssuer) -> None:
        self.issuer = issuer

    def stats(self) -> dict[str, Any]:
        return {"token_requests": self.issuer.grants}

    def reset(self) -> None:
        self.issuer.reset()

    def handle(self, req: Request) -> Response | StreamResponse:
        if req.path == "/token":
            return self.issuer.token_endpoint(req)
        m = re.fullmatch(
            r"/(v1|v1beta1)/projects/([^/]+)/locations/([^/]+)/publishers/google/models/([^/:]+):(\w+)", req.path)
        if not m:
            return google_error(404, "NOT_FOUND", f"The requested URL {req.path} was not found on this server.")
        version, project, location, model, method = m.groups()
        pkg = f"google.cloud.aiplatform.{version}"
        auth = req.headers.get("authorization", "")
        if not auth:
            if req.headers.get("x-goog-api-key") or req.q("key"):
                return google_error(401, "UNAUTHENTICATED", "API keys are not supported by this API. Expected OAuth2 "
                                    "access token or other authentication credentials that assert a principal. See "
                                    "https://cloud.google.com/docs/authentication", [{
                                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                                        "reason": "CREDENTIALS_MISSING", "domain": "googleapis.com",
                                        "metadata": {"service": "aiplatform.googleapis.com"}}])
            return google_error(401, "UNAUTHENTICATED", MSG_MISSING_CREDENTIALS, [{
                "@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "CREDENTIALS_MISSING",
                "domain": "googleapis.com", "metadata": {"service": "aiplatform.googleapis.com"}}])
        if not auth.startswith("Bearer ") or not self.issuer.check(auth[7:].strip()):
            return bad_credentials(f"google.cloud.aiplatform.{version}.PredictionService."
                                   f"{method[:1].upper()}{method[1:]}")
        resource = f"projects/{project}/locations/{location}/publishers/google/models/{model}"
        if project != fakes.VERTEX_PROJECT:
            return google_error(403, "PERMISSION_DENIED", f"Permission 'aiplatform.endpoints.predict' denied on "
                                f"resource '//aiplatform.googleapis.com/{resource}' (or it may not exist).", [{
                                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                                    "reason": "IAM_PERMISSION_DENIED", "domain": "aiplatform.googleapis.com",
                                    "metadata": {"permission": "aiplatform.endpoints.predict",
                                                 "resource": resource}}])
        supported = {"generateContent", "streamGenerateContent"} if model in CHAT_MODELS else (
            {"predict"} if model in EMBED_DIMS else set())
        if location != fakes.VERTEX_LOCATION or method not in supported or req.method != "POST":
            return google_error(404, "NOT_FOUND", f"Publisher Model `{resource}` was not found or your project does "
                                "not have access to it. Please ensure you are using a valid model version. For more "
                                "information, see: https://cloud.google.com/vertex-ai/generative-ai/docs/learn/"
                                "model-versions")
        try:
            try:
                body = req.json()
            except ValueError:
                raise _bad_payload("Invalid JSON payload received. Unexpected token.") from None
            if method == "predict":
                return self._predict(body, model)
            return self.generate(body, model, stream=method == "streamGenerateContent", sse=req.q("alt") == "sse",
                                 pkg=pkg)
        except GoogleError as e:
            return google_error(e.code, e.status, e.message, e.details)

    def _predict(self, body: Any, model: str) -> Response:
        if not isinstance(body, dict) or set(body) - {"instances", "parameters"}:
            extra = sorted(set(body) - {"instances", "parameters"})[0] if isinstance(body, dict) else ""
            raise _bad_payload(f'Invalid JSON payload received. Unknown name "{extra}": Cannot find field.')
        instances = body.get("instances")
        if not isinstance(instances, list) or not instances:
            raise _invalid("Instances must not be empty.")
        if len(instances) > 250:
            raise _invalid(f"The number of instances ({len(instances)}) exceeds the limit of 250.")
        params = body.get("parameters") or {}
        if not isinstance(params, dict) or set(params) - {"autoTruncate", "outputDimensionality"}:
            raise _invalid("Invalid parameters: only autoTruncate and outputDimensionality are supported.")
        dims = params.get("outputDimensionality")
        preds = []
        chars = 0
        for i, inst in enumerate(instances):
            if not isinstance(inst, dict) or not isinstance(inst.get("content"), str) or \
                    set(inst) - {"content", "task_type", "title"}:
                raise _invalid(f"Invalid instance at index {i}: expected {{\"content\": string, \"task_type\"?, "
                               "\"title\"?}.")
            if inst.get("task_type", "RETRIEVAL_QUERY") not in TASK_TYPES:
                raise _invalid(f"Invalid task_type {inst['task_type']!r} at instance {i}.")
            chars += len(inst["content"].replace(" ", ""))
            preds.append({"embeddings": {"statistics": {"token_count": c.count_tokens(inst["content"]),
                                                        "truncated": False},
                                         "values": self.embed_values(model, inst["content"], dims)}})
        return json_response(200, {"predictions": preds, "metadata": {"billableCharacterCount": chars}},
                             {"content-type": JSON_CT})
