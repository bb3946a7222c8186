"""The small interface every provider implements.

A provider module contributes three things, registered in `addon.providers.PROVIDERS`:

- a `ProviderConfig` subclass: the provider's keys in the rules file, validated by pydantic;
- a `Connection`: one per configured provider, long-lived, owning the customer's credentials;
- a `Translator`: one per request, translating the OpenAI request out and the provider's answer back
  (whole or chunk by chunk), holding that one exchange's state.

Requests are translated first and authorized last, so a signature always covers the exact bytes
that leave. Translation is pure: it never mutates the app's body, so a retry or a fallback can run
it again on the same input.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, PlainValidator, ValidationInfo

from addon import secrets
from addon.errors import ByokError

Operation = Literal["chat", "embeddings"]


def _validate_secret(value: Any, info: ValidationInfo) -> secrets.Secret:
    if isinstance(value, secrets.Secret):
        return value
    if not isinstance(value, str) or not value:
        raise ValueError("must be a secret reference such as ${MY_API_KEY} or a path to a file holding it")
    if not secrets.is_reference(value):
        raise ValueError(
            "looks like a literal secret; never write a key into the rules file. "
            "Reference it instead: ${ENV_VAR_NAME} (and export the variable) or a path to a file holding it"
        )
    base_dir = (info.context or {}).get("base_dir", Path.cwd())
    return secrets.resolve(value, base_dir)


def http_url(value: str | None) -> str | None:
    """Validates an `endpoint` setting: an http(s) URL, kept without its trailing slash."""
    if value is None:
        return None
    if urlsplit(value).scheme not in ("http", "https") or not urlsplit(value).hostname:
        raise ValueError("must be an http(s) URL such as https://<resource>.<provider domain>")
    return value.rstrip("/")


SecretRef = Annotated[secrets.Secret, PlainValidator(_validate_secret)]
"""A rules-file field holding a secret reference, resolved at load time."""


class ProviderConfig(BaseModel):
    """Keys every provider takes. Subclasses add their own and pin `type` to a Literal."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str
    endpoint: str | None = None
    """Base URL overriding the provider's public one: private/VPC endpoints, local emulators."""
    enabled: bool = True
    """False turns BYOK off for this provider only: its aliases pass through to the platform."""


@dataclass(frozen=True)
class UpstreamRequest:
    """The request that leaves for the customer's account."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes

    def with_headers(self, extra: Mapping[str, str]) -> UpstreamRequest:
        return UpstreamRequest(self.method, self.url, {**self.headers, **extra}, self.body)


@dataclass
class ClientResponse:
    """What goes back to the app: an OpenAI-shaped JSON body."""

    status: int
    body: dict
    headers: dict[str, str] = field(default_factory=dict)

    def encode(self) -> bytes:
        return json.dumps(self.body, separators=(",", ":")).encode()


class Translator(ABC):
    """Translates one exchange between the OpenAI API and one provider's API."""

    provider_type: ClassVar[str]
    request_id_headers: ClassVar[tuple[str, ...]] = ()
    """Response headers naming the provider's request id: proof of which account served it."""

    def __init__(
        self,
        config: ProviderConfig,
        model: str,
        operation: Operation,
        *,
        drop_unsupported_params: bool = False,
    ) -> None:
        self.config = config
        self.model = model
        self.operation = operation
        self.drop_unsupported_params = drop_unsupported_params
        self.usage: dict | None = None
        """OpenAI-shaped usage of the exchange, once known (for the audit log)."""
        self.response_id: str | None = None
        """The provider's id for the answer when it comes in the body rather than a header (Gemini)."""

    @abstractmethod
    def request(self, body: Mapping[str, Any]) -> UpstreamRequest:
        """The provider request for an OpenAI request body, without credentials.
        Raises `ByokError` (usually `InvalidRequest`) for what cannot be translated faithfully."""

    def requests(self, body: Mapping[str, Any]) -> list[UpstreamRequest]:
        """The provider requests for one app request: one, except where the provider takes a single
        input per call (Titan embeddings), in which case each answer goes through `response` and the
        router merges them."""
        return [self.request(body)]

    @abstractmethod
    def response(self, status: int, headers: Mapping[str, str], body: bytes) -> ClientResponse:
        """The OpenAI response for a complete provider response, success or error."""

    def stream_chunk(self, data: bytes) -> bytes:
        """OpenAI SSE bytes for a piece of a streamed provider response (any split)."""
        raise ByokError(400, f"Streaming is not supported for provider type '{self.provider_type}' yet.")

    def stream_end(self) -> bytes:
        """The final OpenAI SSE bytes (last chunks, `data: [DONE]`) once the provider stream ended."""
        return b""


class Connection(ABC):
    """One configured provider: the customer's account, its credentials and where it lives."""

    type: ClassVar[str]
    config_model: ClassVar[type[ProviderConfig]]
    translator_class: ClassVar[type[Translator]]

    def __init__(self, name: str, config: ProviderConfig) -> None:
        self.name = name
        self.config = config

    def translator(self, model: str, operation: Operation, *, drop_unsupported_params: bool) -> Translator:
        return self.translator_class(
            self.config, model, operation, drop_unsupported_params=drop_unsupported_params
        )

    def credential_problem(self) -> str | None:
        """Why this connection cannot authorize requests right now, or None."""
        return None

    @abstractmethod
    async def authorize(self, request: UpstreamRequest) -> UpstreamRequest:
        """Adds the customer's credentials; the last step before the request leaves.
        Must not block the event loop (token refreshes run in a thread)."""

    @abstractmethod
    def identity(self) -> dict[str, str]:
        """Which customer account serves requests: for the audit log and mitmweb.
        Holds a credential fingerprint, never a credential."""

    def describe(self) -> str:
        """A short label such as `contoso, eastus` for mitmweb comments."""
        return ", ".join(v for k, v in self.identity().items() if k not in ("credential", "type", "endpoint") and v)
