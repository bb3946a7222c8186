"""Azure OpenAI data-plane emulator: deployment-form and v1 chat completions and embeddings."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

from . import content as c
from . import fakes
from .server import Chunk, Emulator, Request, Response, StreamResponse, json_response

GA_VERSIONS = ("2022-12-01", "2023-05-15", "2024-02-01", "2024-06-01", "2024-10-21")
PREVIEW_RE = re.compile(r"^(\d{4}-\d{2}-\d{2})-preview$")
KNOWN_PREVIEWS_FROM = "2023-03-15"
STREAM_OPTIONS_FROM_PREVIEW = "2024-09-01"
V1_VERSIONS = (None, "v1", "preview")
REGION = "East US"
FINGERPRINT = "fp_ee1d74bde0"

DEPLOYMENTS: dict[str, dict[str, Any]] = {
    "gpt-4o": {"model": "gpt-4o-2024-08-06", "kind": "chat"},
    "gpt-4o-mini": {"model": "gpt-4o-mini-2024-07-18", "kind": "chat"},
    "text-embedding-3-large": {"model": "text-embedding-3-large", "kind": "embeddings", "dims": 3072},
    "text-embedding-3-small": {"model": "text-embedding-3-small", "kind": "embeddings", "dims": 1536},
}

CHAT_PARAMS = {
    "model", "messages", "temperature", "top_p", "n", "stream", "stream_options", "stop", "max_tokens",
    "max_completion_tokens", "presence_penalty", "frequency_penalty", "logit_bias", "user", "logprobs",
    "top_logprobs", "response_format", "seed", "tools", "tool_choice", "parallel_tool_calls", "functions",
    "function_call", "data_sources", "reasoning_effort", "store", "metadata", "modalities", "audio",
    "prediction", "user_security_context", "verbosity", "prompt_cache_key", "safety_identifier",
}
EMBED_PARAMS = {"model", "input", "encoding_format", "dimensions", "user", "input_type"}
ROLES = ["system", "assistant", "user", "function", "tool", "developer"]
PART_TYPES = {"text", "image_url", "input_audio", "refusal", "file"}

MSG_401 = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key "
    "for an active subscription and use a correct regional API endpoint for your resource."
)
MSG_401_MISSING = (
    "Access denied due to missing subscription key. Make sure to include subscription key when making "
    "requests to an API."
)
MSG_DEPLOYMENT_NOT_FOUND = (
    "The API deployment for this resource does not exist. If you created the deployment within the last "
    "5 minutes, please wait a moment and try again."
)
MSG_PROMPT_FILTERED = (
    "The response was filtered due to the prompt triggering Azure OpenAI's content management policy. "
    "Please modify your prompt and retry. To learn more about our content filtering policies please read "
    "our documentation: https://go.microsoft.com/fwlink/?linkid=2198766"
)

SAFE = {"filtered": False, "severity": "safe"}


class InvalidRequest(Exception):
    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message, self.param, self.code = message, param, code


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return json_response(status, {"error": {"code": code, "message": message}}, headers)


def _not_found() -> Response:
    return _error(404, "404", "Resource not found")


def _invalid(e: InvalidRequest) -> Response:
    body = {"error": {"message": e.message, "type": "invalid_request_error", "param": e.param, "code": e.code}}
    return json_response(400, body)


def prompt_filter_results(filtered: bool = False) -> list[dict[str, Any]]:
    cfr: dict[str, Any] = {
        "hate": dict(SAFE),
        "jailbreak": {"filtered": False, "detected": False},
        "self_harm": dict(SAFE),
        "sexual": dict(SAFE),
        "violence": {"filtered": True, "severity": "high"} if filtered else dict(SAFE),
    }
    return [{"prompt_index": 0, "content_filter_results": cfr}]


def choice_filter_results(filtered: bool = False) -> dict[str, Any]:
    return {
        "hate": dict(SAFE),
        "protected_material_code": {"filtered": False, "detected": False},
        "protected_material_text": {"filtered": False, "detected": False},
        "self_harm": dict(SAFE),
        "sexual": dict(SAFE),
        "violence": {"filtered": True, "severity": "high"} if filtered else dict(SAFE),
    }


def _version_key(v: str | None) -> tuple[str, bool]:
    if v is None or v in ("v1", "preview"):
        return ("9999-99-99", True)
    m = PREVIEW_RE.match(v)
    return (m.group(1), True) if m else (v, False)


def version_supported(v: str | None, v1: bool) -> bool:
    if v1:
        return v in V1_VERSIONS
    if v in GA_VERSIONS:
        return True
    m = PREVIEW_RE.match(v or "")
    return bool(m) and KNOWN_PREVIEWS_FROM <= m.group(1) <= "2025-04-01"


class AzureEmulator(Emulator):
    name = "azure"

    def handle(self, req: Request) -> Response | StreamResponse:
        m = re.fullmatch(r"/openai/deployments/([^/]+)/(chat/completions|embeddings)", req.path)
        v1 = re.fullmatch(r"/openai/v1/(chat/completions|embeddings)", req.path)
        if req.method != "POST" or not (m or v1):
            return _not_found()
        api_version = req.q("api-version")
        if m and not version_supported(api_version, v1=False):
            return _not_found()
        if v1 and not version_supported(api_version, v1=True):
            return _error(400, "BadRequest", "API version not supported")
        denied = self._check_auth(req, v1=bool(v1))
        if denied:
            return denied
        try:
            body = req.json()
        except ValueError:
            return _invalid(InvalidRequest(
                "We could not parse the JSON body of your request. (HINT: This likely means you aren't using "
                "your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was "
                "not valid JSON. If you have trouble figuring out how to fix this, please contact us "
                "through our help center at help.openai.com.)"
            ))
        if not isinstance(body, dict):
            return _invalid(InvalidRequest(f"{json.dumps(body)} is not of type 'object'"))
        if m:
            deployment, op = m.group(1), m.group(2)
        else:
            op = v1.group(1)  # type: ignore[union-attr]
            deployment = body.get("model")
            if not isinstance(deployment, str) or not deployment:
                return _invalid(InvalidRequest("you must provide a model parameter"))
        dep = DEPLOYMENTS.get(deployment)
        if dep is None:
            return _error(404, "DeploymentNotFound", MSG_DEPLOYMENT_NOT_FOUND)
        wanted = "chat" if op == "chat/completions" else "embeddings"
        if dep["kind"] != wanted:
            opname = "chatCompletion" if wanted == "chat" else "embeddings"
            return _error(400, "OperationNotSupported", (
                f"The {opname} operation does not work with the specified model, {dep['model']}. Please "
                "choose different model and try again. You can learn more about which models can be used "
                "with each operation here: https://go.microsoft.com/fwlink/?linkid=2197993."
            ))
        if m and wanted == "chat" and api_version == "2022-12-01":
            return _not_found()  # that version predates chat completions
        headers = self._headers(deployment)
        try:
            if wanted == "chat":
                return self._chat(body, dep, api_version, bool(v1), headers)
            return self._embeddings(body, dep, headers)
        except InvalidRequest as e:
            return _invalid(e)

    def _check_auth(self, req: Request, v1: bool) -> Response | None:
        key = req.headers.get("api-key")
        auth = req.headers.get("authorization", "")
        if key is None and auth.lower().startswith("bearer "):
            if not v1:
                return _error(401, "InvalidAuthenticationToken", "The access token is invalid.")
            key = auth[7:].strip()
        if key is None:
            return _error(401, "401", MSG_401_MISSING)
        if key != fakes.AZURE_API_KEY:
            return _error(401, "401", MSG_401)
        return None

    @staticmethod
    def _headers(deployment: str) -> dict[str, str]:
        rid = str(uuid.uuid4())
        return {
            "apim-request-id": rid,
            "x-request-id": rid,
            "x-ms-region": REGION,
            "x-ms-deployment-name": deployment,
            "x-ms-rai-invoked": "true",
            "x-ratelimit-limit-requests": "1000",
            "x-ratelimit-remaining-requests": "999",
            "x-ratelimit-limit-tokens": "150000",
            "x-ratelimit-remaining-tokens": "149000",
            "azureml-model-session": "d001-20250101000000",
        }

    # ---- chat -------------------------------------------------------------------------------------------

    def _validate_chat(self, body: dict[str, Any], api_version: str | None, v1: bool) -> None:
        for k in body:
            if k not in CHAT_PARAMS:
                raise InvalidRequest(f"Unrecognized request argument supplied: {k}")
        ver, _ = _version_key(api_version)
        gated = {
            "stream_options": v1 or (api_version not in GA_VERSIONS and ver >= STREAM_OPTIONS_FROM_PREVIEW),
            "max_completion_tokens": v1 or api_version == "2024-10-21" or (
                api_version not in GA_VERSIONS and ver >= STREAM_OPTIONS_FROM_PREVIEW
            ),
            "tools": v1 or ver >= "2023-12-01",
            "tool_choice": v1 or ver >= "2023-12-01",
        }
        for k, ok in gated.items():
            if k in body and not ok:
                raise InvalidRequest(f"Unrecognized request argument supplied: {k}")
        msgs = body.get("messages")
        if msgs is None:
            raise InvalidRequest("'messages' is a required property", "messages")
        if not isinstance(msgs, list):
            raise InvalidRequest(f"{json.dumps(msgs)} is not of type 'array' - 'messages'", "messages")
        if not msgs:
            raise InvalidRequest("[] is too short - 'messages'", "messages")
        pending: set[str] = set()
        pending_at = -1
        for i, msg in enumerate(msgs):
            if not isinstance(msg, dict):
                raise InvalidRequest(f"{json.dumps(msg)} is not of type 'object' - 'messages.{i}'")
            role = msg.get("role")
            if role not in ROLES:
                raise InvalidRequest(f"{json.dumps(role)} is not one of {ROLES} - 'messages.{i}.role'")
            if pending and role != "tool":
                raise InvalidRequest(
                    "An assistant message with 'tool_calls' must be followed by tool messages responding to "
                    "each 'tool_call_id'. The following tool_call_ids did not have response messages: "
                    + ", ".join(sorted(pending)),
                    f"messages.[{pending_at}].role",
                )
            content = msg.get("content")
            self._validate_content(content, role, i, has_tool_calls=bool(msg.get("tool_calls")))
            if role == "tool":
                tcid = msg.get("tool_call_id")
                if not isinstance(tcid, str):
                    raise InvalidRequest(
                        "Missing parameter 'tool_call_id': messages with role 'tool' must have a "
                        "'tool_call_id'.", f"messages.[{i}].tool_call_id", "missing_required_parameter")
                if tcid not in pending:
                    raise InvalidRequest(
                        "Invalid parameter: messages with role 'tool' must be a response to a preceeding "
                        "message with 'tool_calls'.", f"messages.[{i}].role")
                pending.discard(tcid)
            if role == "assistant" and msg.get("tool_calls") is not None:
                pending = self._validate_tool_calls(msg["tool_calls"], i)
                pending_at = i
        if pending:
            raise InvalidRequest(
                "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
                "'tool_call_id'. The following tool_call_ids did not have response messages: "
                + ", ".join(sorted(pending)), f"messages.[{pending_at}].role")
        tools = body.get("tools")
        if tools is not None:
            if not isinstance(tools, list) or not tools:
                raise InvalidRequest("[] is too short - 'tools'" if tools == [] else "Invalid 'tools'", "tools")
            for j, t in enumerate(tools):
                fn = t.get("function") if isinstance(t, dict) else None
                if not isinstance(t, dict) or t.get("type") != "function" or not isinstance(fn, dict):
                    raise InvalidRequest(f"Invalid value for 'tools[{j}]'.", f"tools[{j}]")
                if not isinstance(fn.get("name"), str) or not re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", fn["name"]):
                    raise InvalidRequest(f"Invalid 'tools[{j}].function.name': string does not match pattern. "
                                         "Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'.",
                                         f"tools[{j}].function.name", "invalid_value")
                if "parameters" in fn and not isinstance(fn["parameters"], dict):
                    raise InvalidRequest(f"Invalid type for 'tools[{j}].function.parameters': expected an "
                                         "object.", f"tools[{j}].function.parameters", "invalid_type")
        if "tool_choice" in body and not tools:
            raise InvalidRequest("'tool_choice' is only allowed when 'tools' are specified.", "tool_choice")
        if "parallel_tool_calls" in body and not tools:
            raise InvalidRequest("'parallel_tool_calls' is only allowed when 'tools' are specified.",
                                 "parallel_tool_calls")
        if "stream_options" in body and not body.get("stream"):
            raise InvalidRequest("The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                                 "stream_options")
        for k in ("max_tokens", "max_completion_tokens", "n", "seed"):
            if k in body and body[k] is not None and (not isinstance(body[k], int) or isinstance(body[k], bool)):
                raise InvalidRequest(f"{json.dumps(body[k])} is not of type 'integer' - '{k}'", k)
        if "max_tokens" in body and "max_completion_tokens" in body:
            raise InvalidRequest("max_tokens and max_completion_tokens cannot both be set", "max_tokens")
        for k in ("temperature", "top_p", "presence_penalty", "frequency_penalty"):
            v = body.get(k)
            if v is not None and (not isinstance(v, int | float) or isinstance(v, bool)):
                raise InvalidRequest(f"{json.dumps(v)} is not of type 'number' - '{k}'", k)
        if body.get("temperature") is not None and not 0 <= body["temperature"] <= 2:
            raise InvalidRequest(f"{body['temperature']} is greater than the maximum of 2 - 'temperature'")
        rf = body.get("response_format")
        if rf is not None:
            if not isinstance(rf, dict) or rf.get("type") not in ("text", "json_object", "json_schema"):
                raise InvalidRequest("Invalid value for 'response_format'.", "response_format")
            if rf["type"] == "json_object" and "json" not in json.dumps(msgs).lower():
                raise InvalidRequest("'messages' must contain the word 'json' in some form, to use "
                                     "'response_format' of type 'json_object'.", "messages")
            if rf["type"] == "json_schema" and not isinstance(rf.get("json_schema"), dict):
                raise InvalidRequest("Missing required parameter: 'response_format.json_schema'.",
                                     "response_format.json_schema", "missing_required_parameter")

    @staticmethod
    def _validate_content(content: Any, role: str, i: int, has_tool_calls: bool) -> None:
        if content is None:
            if role == "assistant" and has_tool_calls:
                return
            if role in ("assistant", "function"):
                return
            raise InvalidRequest(f"None is not of type 'string' - 'messages.{i}.content'", f"messages.[{i}].content")
        if isinstance(content, str):
            return
        if not isinstance(content, list):
            raise InvalidRequest(f"{json.dumps(content)} is not valid under any of the given schemas - "
                                 f"'messages.{i}.content'")
        for j, part in enumerate(content):
            ptype = part.get("type") if isinstance(part, dict) else None
            if ptype not in PART_TYPES:
                raise InvalidRequest(f"Invalid value: '{ptype}'. Supported values are: 'text', 'image_url', "
                                     "'input_audio', 'refusal', and 'file'.", f"messages[{i}].content[{j}].type",
                                     "invalid_value")
            if role != "user" and ptype not in ("text", "refusal"):
                raise InvalidRequest(f"Invalid 'messages[{i}]'. Image URLs are only allowed for messages "
                                     "with role 'user', but this message with role "
                                     f"'{role}' contains an image URL.", f"messages[{i}]", "invalid_value")
            if ptype == "text" and not isinstance(part.get("text"), str):
                raise InvalidRequest(f"Missing required parameter: 'messages[{i}].content[{j}].text'.",
                                     f"messages[{i}].content[{j}].text", "missing_required_parameter")
            if ptype == "image_url" and not isinstance((part.get("image_url") or {}).get("url"), str):
                raise InvalidRequest(f"Missing required parameter: 'messages[{i}].content[{j}].image_url.url'.",
                                     f"messages[{i}].content[{j}].image_url.url", "missing_required_parameter")

    @staticmethod
    def _validate_tool_calls(calls: Any, i: int) -> set[str]:
        if not isinstance(calls, list) or not calls:
            raise InvalidRequest(f"[] is too short - 'messages.{i}.tool_calls'", f"messages.[{i}].tool_calls")
        ids: set[str] = set()
        for j, tc in enumerate(calls):
            fn = tc.get("function") if isinstance(tc, dict) else None
            if not isinstance(tc, dict) or not isinstance(tc.get("id"), str) or not isinstance(fn, dict):
                raise InvalidRequest(f"Missing required parameter: 'messages[{i}].tool_calls[{j}].id'.",
                                     f"messages.[{i}].tool_calls.[{j}].id", "missing_required_parameter")
            if tc.get("type") != "function":
                raise InvalidRequest(f"Missing required parameter: 'messages[{i}].tool_calls[{j}].type'.",
                                     f"messages.[{i}].tool_calls.[{j}].type", "missing_required_parameter")
            if not isinstance(fn.get("name"), str):
                raise InvalidRequest(f"Missing required parameter: 'messages[{i}].tool_calls[{j}].function.name'.",
                                     f"messages.[{i}].tool_calls.[{j}].function.name", "missing_required_parameter")
            if not isinstance(fn.get("arguments"), str):
                got = "an object" if isinstance(fn.get("arguments"), dict) else "a non-string"
                raise InvalidRequest(f"Invalid type for 'messages[{i}].tool_calls[{j}].function.arguments': "
                                     f"expected a string, but got {got} instead.",
                                     f"messages.[{i}].tool_calls.[{j}].function.arguments", "invalid_type")
            ids.add(tc["id"])
        return ids

    @staticmethod
    def _turn(body: dict[str, Any]) -> c.Turn:
        def text_of(content: Any) -> str:
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
            return ""

        msgs = body["messages"]
        texts = [text_of(m.get("content")) for m in msgs]
        for m in msgs:
            for tc in m.get("tool_calls") or []:
                texts.append(tc["function"]["arguments"])
        user_texts = [text_of(m.get("content")) for m in msgs if m["role"] == "user"]
        last = msgs[-1]
        tool_results = None
        if last["role"] == "tool":
            trailing: list[str] = []
            for m in reversed(msgs):
                if m["role"] != "tool":
                    break
                trailing.insert(0, c.result_text(_maybe_json(text_of(m.get("content")))))
            tool_results = trailing
        tools = body.get("tools") or []
        choice = body.get("tool_choice")
        names = [t["function"]["name"] for t in tools]
        if choice == "none":
            names = []
        elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
            names = [choice["function"].get("name")] + [n for n in names if n != choice["function"].get("name")]
        limit = body.get("max_completion_tokens", body.get("max_tokens"))
        rf = body.get("response_format") or {}
        return c.Turn(
            prompt_texts=texts,
            final_user_text=text_of(last.get("content")) if last["role"] == "user" else None,
            last_user_text=user_texts[-1] if user_texts else "",
            tool_results=tool_results,
            tool_names=names,
            max_tokens=limit,
            json_mode=rf.get("type") in ("json_object", "json_schema"),
            forced_tool=choice == "required" or isinstance(choice, dict),
        )

    def _chat(
        self, body: dict[str, Any], dep: dict[str, Any], api_version: str | None, v1: bool, headers: dict[str, str]
    ) -> Response | StreamResponse:
        self._validate_chat(body, api_version, v1)
        plan = c.plan_reply(self._turn(body))
        if plan.kind == "error":
            return self._scripted_error(plan.error_status or 500, api_version, headers)
        if plan.kind == "prompt_blocked":
            return self._prompt_blocked(headers)
        model = dep["model"]
        cid = "chatcmpl-" + c.rand_id(29)
        created = int(time.time())
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            hdrs = {**headers, "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"}
            return StreamResponse(200, hdrs, self._stream(plan, model, cid, created, include_usage))
        n = body.get("n") or 1
        choices = [self._choice(plan, i) for i in range(n)]
        completion = plan.completion_tokens * n
        resp = {
            "choices": choices,
            "created": created,
            "id": cid,
            "model": model,
            "object": "chat.completion",
            "prompt_filter_results": prompt_filter_results(),
            "system_fingerprint": FINGERPRINT,
            "usage": _usage(plan.prompt_tokens, completion),
        }
        return json_response(200, resp, headers)

    @staticmethod
    def _choice(plan: c.Plan, index: int) -> dict[str, Any]:
        message: dict[str, Any] = {"annotations": [], "content": plan.text, "refusal": None, "role": "assistant"}
        finish = {"text": "stop", "max_tokens": "length", "content_filter": "content_filter",
                  "tool_calls": "tool_calls"}[plan.kind]
        if plan.kind == "tool_calls":
            message["content"] = None
            message["tool_calls"] = [
                {"function": {"arguments": json.dumps(args), "name": name}, "id": "call_" + c.rand_id(24),
                 "type": "function"}
                for name, args in plan.tool_calls
            ]
        if plan.kind == "content_filter":
            message["content"] = None
        return {
            "content_filter_results": choice_filter_results(plan.kind == "content_filter"),
            "finish_reason": finish,
            "index": index,
            "logprobs": None,
            "message": message,
        }

    def _stream(
        self, plan: c.Plan, model: str, cid: str, created: int, include_usage: bool
    ) -> Iterator[Chunk]:
        def chunk(choices: list[dict[str, Any]], **extra: Any) -> Chunk:
            obj: dict[str, Any] = {"choices": choices, "created": created, "id": cid, "model": model,
                                   "object": "chat.completion.chunk", "system_fingerprint": FINGERPRINT}
            if include_usage:
                obj["usage"] = None
            obj.update(extra)
            return Chunk(b"data: " + json.dumps(obj).encode() + b"\n\n", delay=plan.delay)

        def delta_choice(delta: dict[str, Any], finish: str | None = None, cfr: Any = None) -> dict[str, Any]:
            return {"content_filter_results": cfr if cfr is not None else {}, "delta": delta,
                    "finish_reason": finish, "index": 0, "logprobs": None}

        # Azure's first chunk: empty choices, blank identity fields, only the prompt filter results.
        first = {"choices": [], "created": 0, "id": "", "model": "", "object": "",
                 "prompt_filter_results": prompt_filter_results()}
        yield Chunk(b"data: " + json.dumps(first).encode() + b"\n\n")
        yield chunk([delta_choice({"content": "", "refusal": None, "role": "assistant"})])
        out_filter = {k: v for k, v in choice_filter_results().items() if not k.startswith("protected")}
        sent = 0
        if plan.kind == "tool_calls":
            for idx, (name, args) in enumerate(plan.tool_calls):
                yield chunk([delta_choice({"tool_calls": [{"function": {"arguments": "", "name": name},
                                                           "id": "call_" + c.rand_id(24), "index": idx,
                                                           "type": "function"}]})])
                for frag in c.json_fragments(args):
                    yield chunk([delta_choice({"tool_calls": [{"function": {"arguments": frag}, "index": idx}]})])
        elif plan.kind != "content_filter":
            for piece in c.pieces(plan.text):
                if plan.stream_exception == "cut" and sent == 2:
                    return
                if plan.stream_exception and sent == 2:
                    err = {"error": {"code": "500", "message": "The server had an error while processing your "
                                     "request. Sorry about that!"}}
                    yield Chunk(b"data: " + json.dumps(err).encode() + b"\n\n")
                    return
                yield chunk([delta_choice({"content": piece}, cfr=out_filter)],
                            obfuscation=c.rand_id(len(piece) % 7 + 2))
                sent += 1
        finish = {"text": "stop", "max_tokens": "length", "content_filter": "content_filter",
                  "tool_calls": "tool_calls"}[plan.kind]
        cfr = choice_filter_results(True) if plan.kind == "content_filter" else {}
        yield chunk([delta_choice({}, finish, cfr)])
        if include_usage:
            yield chunk([], usage=_usage(plan.prompt_tokens, plan.completion_tokens))
        yield Chunk(b"data: [DONE]\n\n")

    @staticmethod
    def _prompt_blocked(headers: dict[str, str]) -> Response:
        cfr = prompt_filter_results(filtered=True)[0]["content_filter_results"]
        body = {"error": {"message": MSG_PROMPT_FILTERED, "type": None, "param": "prompt", "code": "content_filter",
                          "status": 400, "innererror": {"code": "ResponsibleAIPolicyViolation",
                                                        "content_filter_result": cfr}}}
        return json_response(400, body, headers)

    @staticmethod
    def _scripted_error(status: int, api_version: str | None, headers: dict[str, str]) -> Response:
        if status == 429:
            msg = (f"Requests to the ChatCompletions_Create Operation under Azure OpenAI API version "
                   f"{api_version or 'v1'} have exceeded token rate limit of your current OpenAI S0 pricing "
                   "tier. Please retry after 3 seconds. Please go here: https://aka.ms/oai/quotaincrease if you "
                   "would like to further increase the default rate limit.")
            return _error(429, "429", msg, {**headers, "retry-after": "3", "retry-after-ms": "3000",
                                           "x-ratelimit-remaining-requests": "0",
                                           "x-ratelimit-remaining-tokens": "0"})
        if status == 400:
            return _invalid(InvalidRequest("Invalid request (scripted by EMULATE:error=400).", None,
                                           "invalid_request"))
        if status == 401:
            return _error(401, "401", MSG_401)
        if status == 403:
            return _error(403, "403", "Public access is disabled. Please configure private endpoint.", headers)
        if status == 404:
            return _error(404, "DeploymentNotFound", MSG_DEPLOYMENT_NOT_FOUND, headers)
        if status == 503:
            return _error(503, "ServiceUnavailable", "The service is temporarily unable to process your "
                          "request. Please try again later.", headers)
        return json_response(500, {"error": {"message": "The server had an error while processing your "
                                             "request. Sorry about that!", "type": "server_error", "param": None,
                                             "code": None}}, headers)

    # ---- embeddings -------------------------------------------------------------------------------------

    def _embeddings(self, body: dict[str, Any], dep: dict[str, Any], headers: dict[str, str]) -> Response:
        for k in body:
            if k not in EMBED_PARAMS:
                raise InvalidRequest(f"Unrecognized request argument supplied: {k}")
        if "input" not in body:
            raise InvalidRequest("'input' is a required property", "input")
        raw = body["input"]
        inputs: list[str]
        if isinstance(raw, str):
            inputs = [raw]
        elif isinstance(raw, list) and raw and all(isinstance(x, str) for x in raw):
            inputs = raw
        elif isinstance(raw, list) and raw and all(isinstance(x, int) for x in raw):
            inputs = [json.dumps(raw)]
        elif isinstance(raw, list) and raw and all(isinstance(x, list) and x for x in raw):
            inputs = [json.dumps(x) for x in raw]
        else:
            raise InvalidRequest("'$.input' is invalid. Please check the API reference: "
                                 "https://platform.openai.com/docs/api-reference.", "input")
        if len(inputs) > 2048:
            raise InvalidRequest("Too many inputs. The max number of inputs is 2048.", "input")
        if any(s == "" for s in inputs):
            raise InvalidRequest("'$.input' is invalid. Please check the API reference: "
                                 "https://platform.openai.com/docs/api-reference.", "input")
        fmt = body.get("encoding_format", "float")
        if fmt not in ("float", "base64"):
            raise InvalidRequest(f"{json.dumps(fmt)} is not one of ['float', 'base64'] - 'encoding_format'",
                                 "encoding_format")
        dims = dep["dims"]
        if body.get("dimensions") is not None:
            d = body["dimensions"]
            if not isinstance(d, int) or isinstance(d, bool) or not 1 <= d <= dims:
                raise InvalidRequest(f"Invalid value for 'dimensions' = {d}. Must be between 1 and {dims}.",
                                     "dimensions", "invalid_value")
            dims = d
        data = []
        for i, text in enumerate(inputs):
            vec = c.embedding(text, dims)
            data.append({"object": "embedding", "index": i,
                         "embedding": c.embedding_b64(vec) if fmt == "base64" else vec})
        tokens = c.count_tokens(inputs)
        resp = {"object": "list", "data": data, "model": dep["model"],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
        return json_response(200, resp, headers)


def _maybe_json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _usage(prompt: int, completion: int) -> dict[str, Any]:
    return {
        "completion_tokens": completion,
        "completion_tokens_details": {"accepted_prediction_tokens": 0, "audio_tokens": 0, "reasoning_tokens": 0,
                                      "rejected_prediction_tokens": 0},
        "prompt_tokens": prompt,
        "prompt_tokens_details": {"audio_tokens": 0, "cached_tokens": 0},
        "total_tokens": prompt + completion,
    }
