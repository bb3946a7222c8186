"""Vertex AI: Gemini in the customer's own Google Cloud project, authorized by a service account.

Chat goes through the publisher model's `generateContent` (see `gemini_format`); embeddings through
`:predict` (`{"instances": [{"content": ...}]}`). The connection loads the service-account key file
(or Application Default Credentials when no file is configured) once, and keeps one OAuth access token
that is refreshed in a worker thread, once, when google-auth says it is about to expire (3 min 45 s
early); concurrent requests wait for that one refresh instead of each fetching a token.

Vertex returns no request-id header worth logging; the proof of which project served a chat request
is the body's `responseId` (kept as `translator.response_id`), next to `modelVersion`/`createTime`.
Note that `gemini-embedding-001` takes a single text per `:predict` request on Vertex; send one input
per embeddings request for that model (Vertex's own 400 says so otherwise).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import google.auth
import google.auth.exceptions
import google.auth.transport.requests
from google.oauth2 import service_account
from pydantic import ValidationInfo, field_validator

from addon import openai_format as oa
from addon.errors import ByokError, InvalidRequest
from addon.providers.base import Connection, ProviderConfig, UpstreamRequest, http_url
from addon.providers.gemini import model_path
from addon.providers.gemini_format import GenerateContentTranslator, dimensions, json_request

SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
DEFAULT_TOKEN_URI = "https://oauth2.googleapis.com/token"


class VertexConfig(ProviderConfig):
    type: Literal["vertex"]
    project: str
    location: str = "us-central1"
    """A region such as `europe-west4`, or `global` (host aiplatform.googleapis.com)."""
    credentials_file: str | None = None
    """Path to a service-account JSON key; None uses Application Default Credentials."""
    api_version: str = "v1"

    @field_validator("endpoint")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return http_url(value)

    @field_validator("credentials_file")
    @classmethod
    def _relative_to_rules_file(cls, value: str | None, info: ValidationInfo) -> str | None:
        """A relative key path is relative to the rules file, like every other path in it."""
        if not value:
            return None
        path = Path(value).expanduser()
        base_dir = (info.context or {}).get("base_dir")
        return str(path if path.is_absolute() or base_dir is None else Path(base_dir) / path)

    @field_validator("project", "location")
    @classmethod
    def _path_segment(cls, value: str) -> str:
        if not value or "/" in value or value.strip() != value:
            raise ValueError("must be a non-empty name without '/' or spaces")
        return value

    @property
    def base_url(self) -> str:
        if self.endpoint:
            return self.endpoint
        if self.location == "global":
            return "https://aiplatform.googleapis.com"
        return f"https://{self.location}-aiplatform.googleapis.com"


class VertexTranslator(GenerateContentTranslator):
    provider_type = "vertex"
    provider_label = "Vertex AI"
    variant_params = frozenset({"user"})
    config: VertexConfig

    def _variant_fields(self, body: Mapping[str, Any]) -> dict[str, Any]:
        user = body.get("user")
        if user is None:
            return {}
        if _is_label_value(user):
            # Labels tag the customer's billing and usage reports with the app's end user.
            return {"labels": {"user": user}}
        if not self.drop_unsupported_params:
            raise InvalidRequest(
                "'user' is sent to Vertex AI as a request label, which allows at most 63 lowercase letters, "
                "digits, underscores and dashes. Send such an id, or drop it with 'drop_unsupported_params: true'.",
                param="user",
            )
        return {}

    def _model_url(self, method: str) -> str:
        c = self.config
        return (
            f"{c.base_url}/{c.api_version}/projects/{quote(c.project, safe='')}/locations/"
            f"{quote(c.location, safe='')}/publishers/google/models/{model_path(self.model)}:{method}"
        )

    def _embeddings_request(self, body: Mapping[str, Any]) -> UpstreamRequest:
        params = oa.checked_params(
            body, oa.EMBEDDING_PARAMS, self.provider_type,
            drop_unsupported=self.drop_unsupported_params, known=oa.EMBEDDING_PARAMS,
        )
        texts = oa.embedding_inputs(params)
        self._inputs = len(texts)
        self._format = oa.encoding_format(params)
        request: dict[str, Any] = {"instances": [{"content": text} for text in texts]}
        if "dimensions" in params:
            request["parameters"] = {"outputDimensionality": dimensions(params["dimensions"])}
        return json_request(self._model_url("predict"), request)

    def _embeddings_response(self, payload: Mapping[str, Any]) -> dict:
        predictions = payload.get("predictions") or []
        embeddings = [p.get("embeddings") or {} for p in predictions if isinstance(p, Mapping)]
        vectors = [e.get("values") for e in embeddings]
        if len(vectors) != self._inputs or not all(isinstance(v, list) for v in vectors):
            raise ByokError(502, f"{self.provider_label} returned {len(vectors)} embeddings for "
                                 f"{self._inputs} inputs.", type="api_error")
        tokens = sum(int((e.get("statistics") or {}).get("token_count", 0)) for e in embeddings)
        return oa.embedding_list(vectors, self.model, tokens, self._format)


class VertexConnection(Connection):
    type = "vertex"
    config_model = VertexConfig
    translator_class = VertexTranslator
    config: VertexConfig

    def __init__(self, name: str, config: ProviderConfig) -> None:
        super().__init__(name, config)
        self._credentials: Any = None
        self._problem: str | None = None
        self._lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None
        self._refreshes = 0  # completed refresh attempts, successful or not
        self._last_failure: ByokError | None = None
        self._load_credentials()

    def _load_credentials(self) -> None:
        path = self.config.credentials_file
        if path:
            try:
                self._credentials = service_account.Credentials.from_service_account_file(path, scopes=SCOPES)
            except OSError as e:
                self._problem = f"the service-account key file {path} cannot be read ({e.strerror or e})"
            except Exception as e:  # a malformed key: never echo the file's contents
                self._problem = (
                    f"the service-account key file {path} is not a usable service-account JSON key "
                    f"(it needs type, client_email, token_uri and private_key; {type(e).__name__})"
                )
            return
        try:
            self._credentials, _ = google.auth.default(scopes=SCOPES)
        except google.auth.exceptions.DefaultCredentialsError as e:
            self._problem = (
                f"no credentials_file is configured and Application Default Credentials are unavailable ({e})"
            )

    @property
    def token_uri(self) -> str:
        return getattr(self._credentials, "_token_uri", None) or DEFAULT_TOKEN_URI

    @property
    def client_email(self) -> str | None:
        return getattr(self._credentials, "service_account_email", None)

    def credential_problem(self) -> str | None:
        return self._problem

    async def authorize(self, request: UpstreamRequest) -> UpstreamRequest:
        return request.with_headers({"authorization": f"Bearer {await self.access_token()}"})

    async def access_token(self) -> str:
        """A valid access token: the cached one, or one refresh shared by every request waiting for it."""
        creds = self._credentials
        if creds is None:
            raise ByokError(503, f"Vertex AI provider '{self.name}' has no usable credentials: {self._problem}",
                            type="api_error")
        if creds.valid:
            return creds.token
        refreshes_seen = self._refreshes
        async with self._refresh_lock():
            if self._refreshes != refreshes_seen:
                # A refresh finished while this request waited: share its outcome rather than fetch again,
                # even when google-auth already calls that token stale (a lifetime under its 3m45s margin).
                if self._last_failure is not None:
                    raise self._last_failure
                if creds.token and not _hard_expired(creds):
                    return creds.token
            if creds.valid:
                return creds.token
            try:
                await asyncio.to_thread(creds.refresh, google.auth.transport.requests.Request())
            except Exception as e:
                self._last_failure = ByokError(
                    502,
                    f"could not obtain a Vertex AI access token for provider '{self.name}' from "
                    f"{self.token_uri}: {_reason(e)}",
                    type="api_error",
                )
                raise self._last_failure from None
            else:
                self._last_failure = None
                return creds.token
            finally:
                self._refreshes += 1

    def _refresh_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock_loop is not loop:
            self._lock, self._lock_loop = asyncio.Lock(), loop
        return self._lock

    def identity(self) -> dict[str, str]:
        return {
            "type": self.type,
            "project": self.config.project,
            "location": self.config.location,
            "endpoint": self.config.base_url,
            "credential": self.client_email or ("unresolved" if self._credentials is None else "adc"),
        }


def _hard_expired(creds: Any) -> bool:
    expiry = getattr(creds, "expiry", None)
    return expiry is not None and expiry <= datetime.now(UTC).replace(tzinfo=None) + timedelta(seconds=10)


def _is_label_value(value: Any) -> bool:
    return isinstance(value, str) and re.fullmatch(r"[a-z0-9_-]{0,63}", value) is not None


def _reason(error: Exception) -> str:
    """A short reason for a failed refresh: the token endpoint's answer or the transport error."""
    first = error.args[0] if error.args else error
    text = str(first) if isinstance(first, str) else str(error)
    return (text or type(error).__name__)[:300]
