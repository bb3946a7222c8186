"""Azure OpenAI: the customer's own deployments, authorized by the resource's `api-key`.

Azure speaks the OpenAI format already, so translation is about the URL (deployment path plus
`api-version`, or the `/openai/v1` form), the credential, and Azure's own error and stream quirks.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import quote, urlsplit

from pydantic import field_validator

from addon import openai_format as oa
from addon.errors import InvalidRequest
from addon.providers.base import (
    ClientResponse,
    Connection,
    ProviderConfig,
    SecretRef,
    Translator,
    UpstreamRequest,
    http_url,
)

# Dated API versions that know `stream_options` (added in 2024-09-01-preview; not in GA 2024-10-21).
_STREAM_OPTIONS_SINCE = "2024-09-01-preview"


class AzureOpenAIConfig(ProviderConfig):
    type: Literal["azure_openai"]
    endpoint: str
    """https://<resource>.openai.azure.com"""
    api_version: str = "2024-10-21"
    """A dated data-plane version, or "v1" for the /openai/v1 API."""
    api_key: SecretRef

    @field_validator("endpoint")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return http_url(value) or value


def supports_stream_options(api_version: str) -> bool:
    if api_version in ("v1", "preview", "latest"):
        return True
    if api_version.endswith("-preview"):
        return api_version >= _STREAM_OPTIONS_SINCE
    return api_version > "2024-10-21"


class AzureTranslator(Translator):
    provider_type = "azure_openai"
    request_id_headers = ("apim-request-id", "x-request-id")
    config: AzureOpenAIConfig

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sse = oa.SseParser()
        self._stream_closed = False
        """`[DONE]` or an error event went to the app: the stream ended in a way the app can see."""
        self._chunk_identity: dict[str, Any] = {}
        """`id`, `created` and `model` of the stream's real chunks, for Azure's anonymous ones."""

    def _url(self, operation_path: str) -> str:
        endpoint = self.config.endpoint
        if self.config.api_version == "v1":
            return f"{endpoint}/openai/v1/{operation_path}"
        deployment = quote(self.model, safe="")
        return f"{endpoint}/openai/deployments/{deployment}/{operation_path}?api-version={self.config.api_version}"

    def request(self, body: Mapping[str, Any]) -> UpstreamRequest:
        if self.operation == "embeddings":
            params = oa.checked_params(
                body, oa.EMBEDDING_PARAMS, self.provider_type,
                drop_unsupported=self.drop_unsupported_params, known=oa.EMBEDDING_PARAMS,
            )
            oa.embedding_inputs(params)
            path = "embeddings"
        else:
            supported = set(oa.CHAT_PARAMS)
            options = body.get("stream_options")
            if not (options is None or oa.is_no_op("stream_options", options)) and not supports_stream_options(
                self.config.api_version
            ):
                if not self.drop_unsupported_params:
                    raise InvalidRequest(
                        f"'stream_options' needs an Azure api-version that supports it; "
                        f"'{self.config.api_version}' does not. Set api_version to 'v1' or "
                        f"'{_STREAM_OPTIONS_SINCE}' (or later) for this provider in the rules file.",
                        param="stream_options",
                    )
                supported.discard("stream_options")
            params = oa.checked_params(
                body, supported, self.provider_type, drop_unsupported=True
            )
            oa.require_messages(params)
            path = "chat/completions"
        # The v1 API selects the deployment by `model`; the dated API ignores it, so it never carries
        # the platform alias either way.
        params["model"] = self.model
        return UpstreamRequest(
            "POST",
            self._url(path),
            {"content-type": "application/json", "accept": "application/json"},
            json.dumps(params, separators=(",", ":")).encode(),
        )

    def response(self, status: int, headers: Mapping[str, str], body: bytes) -> ClientResponse:
        payload = oa.json_body(body)
        if status >= 400 or not isinstance(payload, dict) or "error" in payload:
            return self._error(status if status >= 400 else 502, headers, payload, body)
        self.usage = payload.get("usage")
        return ClientResponse(status, completion_with_messages(payload))

    def stream_chunk(self, data: bytes) -> bytes:
        out = []
        for payload in self._sse.feed(data):
            if payload == "[DONE]":
                self._stream_closed = True
                out.append(oa.SSE_DONE)
                continue
            try:
                event = json.loads(payload)
            except ValueError:
                continue
            if not isinstance(event, dict):
                continue
            if "error" in event:
                self._stream_closed = True
                out.append(b"data: " + payload.encode() + b"\n\n")
                continue
            chunk = self._app_chunk(event)
            if chunk is None:
                continue
            if chunk.get("usage"):
                self.usage = chunk["usage"]
            out.append(b"data: " + payload.encode() + b"\n\n" if chunk is event else oa.sse_event(chunk))
        return b"".join(out)

    def _app_chunk(self, event: dict[str, Any]) -> dict[str, Any] | None:
        """The chunk as an OpenAI app can read it, or None when it holds nothing for the app.

        Azure sends chunks of its own besides the model's: the opening `prompt_filter_results`
        chunk (empty choices, no usage) and, with the asynchronous content filter, annotation
        chunks whose choices have no `delta`, with `id: ""`, `object: ""`, `created: 0`. OpenAI apps
        read `choices[0].delta` on every chunk but the usage one, so annotation-only choices stay
        behind; a filter verdict (`finish_reason: content_filter`) goes on, with an empty delta
        and the stream's own id. Anything else passes unchanged, Azure's extra fields included.
        """
        choices = event.get("choices")
        choices = choices if isinstance(choices, list) else []
        kept = [c for c in choices if isinstance(c, dict) and (c.get("delta") is not None or c.get("finish_reason"))]
        if not kept and not event.get("usage"):
            return None
        if event.get("id") and event.get("object") == "chat.completion.chunk":
            self._chunk_identity = {k: event[k] for k in ("id", "created", "model") if event.get(k)}
            if len(kept) == len(choices) and all(c.get("delta") is not None for c in kept):
                return event
        identity = self._chunk_identity
        identity.setdefault("id", oa.new_id())
        identity.setdefault("created", int(time.time()))
        identity.setdefault("model", self.model)
        return {
            **event,
            **{k: event.get(k) or identity[k] for k in ("id", "created", "model")},
            "object": "chat.completion.chunk",
            "choices": [c if c.get("delta") is not None else {**c, "delta": {}} for c in kept],
        }

    def stream_end(self) -> bytes:
        out = self.stream_chunk(b"\n\n") if self._sse.rest().strip() else b""
        if self._stream_closed:
            return out
        # A stream cut off before `[DONE]` must not look like a complete answer to the app.
        self._stream_closed = True
        return out + oa.sse_event(oa.error_body(
            "The Azure OpenAI stream ended before it was complete (no [DONE]); the answer is truncated.",
            "api_error", "stream_truncated",
        ))

    def _error(self, status: int, headers: Mapping[str, str], payload: Any, raw: bytes) -> ClientResponse:
        passed = {k: headers[k] for k in ("retry-after", "retry-after-ms") if k in headers}
        error = payload.get("error") if isinstance(payload, dict) else None
        if not isinstance(error, dict):
            # API Management's own rejections (rate limits, keys) read {"statusCode": 429, "message": "…"}.
            own = payload.get("message") if isinstance(payload, dict) else None
            message = own if isinstance(own, str) and own else raw.decode(errors="replace")[:500] or "empty response"
            return ClientResponse(status, oa.provider_error(status, "Azure OpenAI", message), passed)
        code = error.get("code")
        message = str(error.get("message") or "")
        if code == "content_filter" and (categories := filtered_categories(error)):
            message = f"{message} (filtered: {', '.join(categories)})".lstrip()
        body = oa.provider_error(status, "Azure OpenAI", message, str(code) if code is not None else None)
        if code == "content_filter":
            body["error"]["param"] = error.get("param") or "prompt"
        return ClientResponse(status, body, passed)


def completion_with_messages(payload: dict[str, Any]) -> dict[str, Any]:
    """The completion with a `message` on every choice. Azure can leave it out of a choice its
    content filter stopped (`finish_reason: content_filter`); OpenAI apps read it unconditionally."""
    choices = payload.get("choices")
    if not isinstance(choices, list) or all(not isinstance(c, dict) or "message" in c for c in choices):
        return payload
    return {**payload, "choices": [
        c if not isinstance(c, dict) or "message" in c else {**c, "message": {"role": "assistant", "content": None}}
        for c in choices
    ]}


def filtered_categories(error: Mapping[str, Any]) -> list[str]:
    """The content-filter categories that blocked a request, from either spelling Azure uses:
    `innererror.content_filter_result` (observed) or `inner_error.content_filter_results` (the spec)."""
    inner = error.get("innererror") or error.get("inner_error")
    if not isinstance(inner, dict):
        return []
    results = inner.get("content_filter_result") or inner.get("content_filter_results")
    if not isinstance(results, dict):
        return []
    return [name for name, verdict in results.items() if isinstance(verdict, dict) and verdict.get("filtered")]


class AzureConnection(Connection):
    type = "azure_openai"
    config_model = AzureOpenAIConfig
    translator_class = AzureTranslator
    config: AzureOpenAIConfig

    def credential_problem(self) -> str | None:
        return self.config.api_key.problem

    async def authorize(self, request: UpstreamRequest) -> UpstreamRequest:
        key = self.config.api_key.value
        assert key is not None, "authorize() called despite a credential problem"
        return request.with_headers({"api-key": key})

    def identity(self) -> dict[str, str]:
        host = urlsplit(self.config.endpoint).hostname or ""
        return {
            "type": self.type,
            "resource": host.split(".")[0] if host.endswith(".openai.azure.com") else host,
            "endpoint": self.config.endpoint,
            "credential": self.config.api_key.fingerprint() or "unresolved",
        }
