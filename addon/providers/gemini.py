"""Google AI Studio (the Gemini Developer API): the customer's own API key.

Chat goes through `generateContent` (see `gemini_format`); embeddings through `embedContent` for one
input and `batchEmbedContents` for several. The key travels in the `x-goog-api-key` header, never as
`?key=` in the URL, because URLs end up in logs.

AI Studio returns no request-id header; the proof of which account served a chat request is the
body's `responseId` (kept as `translator.response_id`). Embedding responses carry token counts only for
newer models (`usageMetadata.promptTokenCount`); otherwise usage is reported as 0 (unknown) rather than guessed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import quote

from pydantic import field_validator

from addon import openai_format as oa
from addon.errors import ByokError
from addon.providers.base import Connection, ProviderConfig, SecretRef, UpstreamRequest, http_url
from addon.providers.gemini_format import GenerateContentTranslator, dimensions, json_request, usage_from

DEFAULT_ENDPOINT = "https://generativelanguage.googleapis.com"


def model_path(model: str) -> str:
    """`gemini-2.5-flash` (a `models/` prefix is tolerated) as one URL path segment."""
    return quote(model.removeprefix("models/"), safe="")


class GeminiConfig(ProviderConfig):
    type: Literal["gemini"]
    api_key: SecretRef
    api_version: str = "v1beta"
    """`v1beta` (the default: everything, including tools and JSON schemas) or `v1`."""

    @field_validator("endpoint")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return http_url(value)

    @property
    def base_url(self) -> str:
        return self.endpoint or DEFAULT_ENDPOINT


class GeminiTranslator(GenerateContentTranslator):
    provider_type = "gemini"
    provider_label = "Google Gemini"
    config: GeminiConfig

    def _model_url(self, method: str) -> str:
        return f"{self.config.base_url}/{self.config.api_version}/models/{model_path(self.model)}:{method}"

    def _embeddings_request(self, body: Mapping[str, Any]) -> UpstreamRequest:
        params = oa.checked_params(
            body, oa.EMBEDDING_PARAMS, self.provider_type,
            drop_unsupported=self.drop_unsupported_params, known=oa.EMBEDDING_PARAMS,
        )
        texts = oa.embedding_inputs(params)
        extra: dict[str, Any] = {}
        if "dimensions" in params:
            extra["outputDimensionality"] = dimensions(params["dimensions"])
        self._inputs = len(texts)
        self._format = oa.encoding_format(params)
        model = f"models/{self.model.removeprefix('models/')}"

        def one(text: str) -> dict[str, Any]:
            return {"model": model, "content": {"parts": [{"text": text}]}, **extra}

        if len(texts) == 1:
            return json_request(self._model_url("embedContent"), one(texts[0]))
        return json_request(self._model_url("batchEmbedContents"), {"requests": [one(t) for t in texts]})

    def _embeddings_response(self, payload: Mapping[str, Any]) -> dict:
        if "embedding" in payload:
            items = [payload["embedding"]]
        else:
            items = payload.get("embeddings") or []
        vectors = [item.get("values") for item in items if isinstance(item, Mapping)]
        if len(vectors) != self._inputs or not all(isinstance(v, list) for v in vectors):
            raise ByokError(502, f"{self.provider_label} returned {len(vectors)} embeddings for "
                                 f"{self._inputs} inputs.", type="api_error")
        # Newer embedding models report `usageMetadata.promptTokenCount`; older ones report nothing (0).
        usage = payload.get("usageMetadata")
        tokens = usage_from(usage)["prompt_tokens"] if isinstance(usage, Mapping) else 0
        return oa.embedding_list(vectors, self.model, tokens, self._format)


class GeminiConnection(Connection):
    type = "gemini"
    config_model = GeminiConfig
    translator_class = GeminiTranslator
    config: GeminiConfig

    def credential_problem(self) -> str | None:
        return self.config.api_key.problem

    async def authorize(self, request: UpstreamRequest) -> UpstreamRequest:
        key = self.config.api_key.value
        assert key is not None, "authorize() called despite a credential problem"
        return request.with_headers({"x-goog-api-key": key})

    def identity(self) -> dict[str, str]:
        return {
            "type": self.type,
            "endpoint": self.config.base_url,
            "credential": self.config.api_key.fingerprint() or "unresolved",
        }
