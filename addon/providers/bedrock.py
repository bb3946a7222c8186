"""AWS Bedrock Runtime: the customer's own AWS account, authorized by SigV4.

Chat goes to Converse / ConverseStream (one API for every Bedrock chat model); embeddings go to
InvokeModel with the model's native body (Titan, Cohere v3). Credentials come from the standard AWS
chain (env, profile, SSO, instance/container role) or explicit keys in the rules file, and every
request is signed last, over the exact URL, headers and body bytes that leave.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import quote, urlsplit, urlunsplit

import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, ReadOnlyCredentials, RefreshableCredentials
from pydantic import field_validator, model_validator

from addon import openai_format as oa
from addon.errors import ByokError, InvalidRequest
from addon.providers import bedrock_converse as conv
from addon.providers import bedrock_embeddings as emb
from addon.providers.base import (
    ClientResponse,
    Connection,
    Operation,
    ProviderConfig,
    SecretRef,
    Translator,
    UpstreamRequest,
)
from addon.providers.bedrock_stream import ConverseStreamState

PROVIDER_NAME = "AWS Bedrock"
SIGNING_NAME = "bedrock"
_REGION = re.compile(r"^[a-z]{2,4}(-[a-z]+){1,3}-\d{1,2}$")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_SIGV4_HEADERS = frozenset({"authorization", "x-amz-date", "x-amz-security-token"})
# What botocore sends: Converse(Stream) has no Accept in its API; InvokeModel declares one.
CONVERSE_HEADERS = {"content-type": "application/json"}
INVOKE_HEADERS = {"content-type": "application/json", "accept": "application/json"}

ERROR_STATUS = {
    "ModelErrorException": 502,
}
"""Bedrock statuses an OpenAI client would misread; the rest (400/403/404/408/429/5xx) are kept.
A 424 ModelError means the model failed behind Bedrock: to the app that is a bad gateway."""


def default_endpoint(region: str) -> str:
    domain = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"https://bedrock-runtime.{region}.{domain}"


def normalized_endpoint(value: str) -> str:
    """The endpoint as both the signature and the proxy's Host header will see it: lowercase host,
    no default port, no trailing slash (SigV4 collapses `//`, the wire would not)."""
    parts = urlsplit(value)
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError("must be an http(s) URL such as https://bedrock-runtime.us-east-1.amazonaws.com")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError("must be a plain base URL without query, fragment or user info")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    if parts.port is not None and parts.port != _DEFAULT_PORTS[parts.scheme]:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))


class BedrockConfig(ProviderConfig):
    type: Literal["bedrock"]
    region: str
    """The AWS region that serves requests and scopes the signature, e.g. us-east-1."""
    profile: str | None = None
    """A profile in ~/.aws/config; without it (and without keys) the default AWS chain is used."""
    access_key_id: SecretRef | None = None
    secret_access_key: SecretRef | None = None
    session_token: SecretRef | None = None

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        if not _REGION.match(value):
            raise ValueError(
                f"'{value}' is not an AWS region name; a region looks like us-east-1, eu-central-2 or us-gov-west-1"
            )
        return value

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        return None if value is None else normalized_endpoint(value)

    @model_validator(mode="after")
    def _keys(self) -> BedrockConfig:
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError("set both access_key_id and secret_access_key, or neither (to use the AWS chain)")
        if self.session_token is not None and self.access_key_id is None:
            raise ValueError("session_token needs access_key_id and secret_access_key")
        if self.profile is not None and self.access_key_id is not None:
            raise ValueError("set either profile or explicit keys (access_key_id/secret_access_key), not both")
        return self

    @property
    def base_url(self) -> str:
        return self.endpoint or default_endpoint(self.region)


def model_path(model_id: str) -> str:
    """`/model/{id}` with the id as one path segment: `:` and `/` of profile ids and ARNs escaped,
    exactly as botocore sends it (SigV4 then encodes the path once more)."""
    if model_id in ("", ".", ".."):
        raise InvalidRequest(f"'{model_id}' is not a Bedrock model id.", param="model")
    return "/model/" + quote(model_id, safe="")


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header value from any mapping, matched case-insensitively."""
    if name in headers:
        return headers[name]
    lowered = name.lower()
    return next((v for k, v in headers.items() if k.lower() == lowered), None)


def error_response(status: int, headers: Mapping[str, str], raw: bytes) -> ClientResponse:
    try:
        payload = json.loads(raw) if raw else {}
    except ValueError:
        payload = {}
    payload = payload if isinstance(payload, dict) else {}
    code = (header(headers, "x-amzn-ErrorType") or "").split(":")[0] or None
    if code is None:
        # AWS's protocol-level errors (a path no operation serves) come in a coral envelope:
        # {"Output":{"__type":"com.amazon.coral.service#UnknownOperationException"},"Version":"1.0"}
        envelope = payload.get("Output") if isinstance(payload.get("Output"), dict) else {}
        body_code = payload.get("__type") or payload.get("code") or envelope.get("__type")
        code = str(body_code).rsplit("#", 1)[-1] if body_code else None
    message = payload.get("message") or payload.get("Message")
    if not message:
        message = raw.decode(errors="replace")[:500] or "empty response"
    status = ERROR_STATUS.get(code or "", status)
    body = oa.provider_error(status, PROVIDER_NAME, str(message), code)
    passed = {"retry-after": value} if (value := header(headers, "retry-after")) else {}
    return ClientResponse(status, body, passed)


MAX_FAN_OUT = 2048  # OpenAI's own limit on inputs per embeddings request


class BedrockTranslator(Translator):
    provider_type = "bedrock"
    request_id_headers = ("x-amzn-requestid",)
    config: BedrockConfig

    def __init__(self, config: BedrockConfig, model: str, operation: Operation, *,
                 drop_unsupported_params: bool = False) -> None:
        super().__init__(config, model, operation, drop_unsupported_params=drop_unsupported_params)
        self._json_mode = False
        self._input_count = 0
        self._encoding_format = "float"
        self._stream: ConverseStreamState | None = None

    def request(self, body: Mapping[str, Any]) -> UpstreamRequest:
        if self.operation == "embeddings":
            return self._embeddings_request(body)
        translated = conv.converse_request(body, drop_unsupported=self.drop_unsupported_params)
        self._json_mode = translated.json_mode
        self._stream = None
        if translated.stream:
            self._stream = ConverseStreamState(
                self.model, include_usage=translated.include_usage, json_mode=translated.json_mode
            )
        operation = "converse-stream" if translated.stream else "converse"
        return self._upstream(operation, CONVERSE_HEADERS, translated.body)

    def requests(self, body: Mapping[str, Any]) -> list[UpstreamRequest]:
        if self.operation == "embeddings" and emb.embedding_family(self.model) != "cohere-v3":
            texts = oa.embedding_inputs(body)
            if len(texts) > MAX_FAN_OUT:
                raise InvalidRequest(
                    f"At most {MAX_FAN_OUT} inputs per request for Titan embeddings; this one has {len(texts)}.",
                    param="input",
                )
            # Titan embeds one text per call: one InvokeModel per input, merged by the router.
            return [self._embeddings_request({**body, "input": text}) for text in texts]
        return [self.request(body)]

    def _embeddings_request(self, body: Mapping[str, Any]) -> UpstreamRequest:
        family = emb.embedding_family(self.model)
        params = oa.checked_params(
            body, emb.supported_params(family), self.provider_type,
            drop_unsupported=self.drop_unsupported_params, known=oa.EMBEDDING_PARAMS,
        )
        self._encoding_format = oa.encoding_format(params)
        native = emb.embedding_body(params, family)
        self._input_count = len(native.get("texts", [None]))
        return self._upstream("invoke", INVOKE_HEADERS, native)

    def _upstream(self, operation: str, headers: Mapping[str, str], body: dict) -> UpstreamRequest:
        url = f"{self.config.base_url}{model_path(self.model)}/{operation}"
        return UpstreamRequest("POST", url, dict(headers), json.dumps(body, separators=(",", ":")).encode())

    def response(self, status: int, headers: Mapping[str, str], body: bytes) -> ClientResponse:
        if status >= 400:
            return error_response(status, headers, body)
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            return self._bad_gateway("AWS Bedrock returned a response that is not a JSON object.")
        if isinstance(payload.get("Output"), dict) and "__type" in payload["Output"]:
            return error_response(502, headers, body)  # an AWS error envelope despite the 2xx
        if self.operation == "embeddings":
            return self._embeddings_response(status, headers, payload)
        return self._chat_response(status, headers, payload)

    def _chat_response(self, status: int, headers: Mapping[str, str], payload: dict) -> ClientResponse:
        stop_reason = payload.get("stopReason")
        if stop_reason in conv.MALFORMED_STOP_REASONS:
            return self._bad_gateway(
                f"AWS Bedrock stopped with '{stop_reason}': {conv.MALFORMED_STOP_REASONS[stop_reason]}.",
                code=stop_reason,
            )
        output = payload.get("output")
        message = output.get("message") if isinstance(output, dict) else None
        blocks = message.get("content") if isinstance(message, dict) else None
        if not isinstance(blocks, list):
            return self._bad_gateway("AWS Bedrock returned a Converse response without an output message.")
        content, tool_calls = conv.completion_message(blocks, json_mode=self._json_mode)
        self.usage = conv.converse_usage(payload.get("usage"))
        request_id = header(headers, "x-amzn-RequestId")
        completion = oa.chat_completion(
            self.model,
            content,
            conv.finish_reason(stop_reason, tool_calls=bool(tool_calls)),
            self.usage,
            completion_id=f"chatcmpl-{request_id}" if request_id else None,
            tool_calls=tool_calls,
        )
        return ClientResponse(status, completion)

    def _embeddings_response(self, status: int, headers: Mapping[str, str], payload: dict) -> ClientResponse:
        family = emb.embedding_family(self.model)
        vectors = emb.embedding_vectors(payload, family)
        if vectors is None or len(vectors) != self._input_count:
            return self._bad_gateway("AWS Bedrock returned an embedding response without the expected vectors.")
        tokens = payload.get("inputTextTokenCount")
        if tokens is None:
            tokens = header(headers, "X-Amzn-Bedrock-Input-Token-Count")
        prompt_tokens = int(tokens) if str(tokens or "").isdigit() else 0
        result = oa.embedding_list(vectors, self.model, prompt_tokens, self._encoding_format)
        self.usage = result["usage"]
        return ClientResponse(status, result)

    def _bad_gateway(self, message: str, code: str | None = None) -> ClientResponse:
        return ClientResponse(502, oa.provider_error(502, PROVIDER_NAME, message, code))

    def stream_chunk(self, data: bytes) -> bytes:
        if self._stream is None:
            raise InvalidRequest("stream_chunk() called for a request that was not translated as a stream.")
        out = self._stream.feed(data)
        self.usage = self._stream.usage
        return out

    def stream_end(self) -> bytes:
        if self._stream is None:
            return b""
        out = self._stream.end()
        self.usage = self._stream.usage
        return out


class BedrockConnection(Connection):
    type = "bedrock"
    config_model = BedrockConfig
    translator_class = BedrockTranslator
    config: BedrockConfig

    def __init__(self, name: str, config: BedrockConfig) -> None:
        super().__init__(name, config)
        self._problem: str | None = None
        self._credentials: Credentials | None = None
        self._access_key_id: str | None = None
        self._account: str | None = None
        self._resolve()

    def _resolve(self) -> None:
        config = self.config
        if config.access_key_id is not None and config.secret_access_key is not None:
            secrets = [s for s in (config.access_key_id, config.secret_access_key, config.session_token) if s]
            if problem := next((s.problem for s in secrets if s.value is None), None):
                self._problem = f"AWS credentials for provider '{self.name}': {problem}"
                return
            token = config.session_token.value if config.session_token else None
            self._credentials = Credentials(config.access_key_id.value, config.secret_access_key.value, token)
        else:
            try:
                self._credentials = botocore.session.Session(profile=config.profile).get_credentials()
                frozen = self._credentials.get_frozen_credentials() if self._credentials else None
            except Exception as e:  # any provider in the chain may fail its own way
                self._credentials = None
                self._problem = f"AWS credentials for provider '{self.name}' could not be loaded: {e}"
                return
            if frozen is None or not frozen.access_key or not frozen.secret_key:
                self._credentials = None
                profile = f"profile '{config.profile}'" if config.profile else "default AWS credential chain"
                self._problem = (
                    f"no AWS credentials found for provider '{self.name}' ({profile}): set "
                    "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or an instance role"
                )
                return
        frozen = self._credentials.get_frozen_credentials()
        self._access_key_id = frozen.access_key
        self._account = frozen.account_id

    def credential_problem(self) -> str | None:
        return self._problem

    async def _frozen(self) -> ReadOnlyCredentials:
        credentials = self._credentials
        assert credentials is not None, "authorize() called despite a credential problem"
        if isinstance(credentials, RefreshableCredentials) and credentials.refresh_needed():
            # A refresh is a network call (STS, SSO, instance metadata): keep it off the event loop.
            try:
                return await asyncio.to_thread(credentials.get_frozen_credentials)
            except Exception as e:  # STS/SSO/IMDS failures come as many exception types
                raise ByokError(
                    503,
                    f"The AWS credentials of provider '{self.name}' could not be refreshed "
                    f"({type(e).__name__}: {str(e)[:200]})",
                    type="api_error",
                    code="credential_refresh_failed",
                ) from None
        return credentials.get_frozen_credentials()

    async def authorize(self, request: UpstreamRequest) -> UpstreamRequest:
        frozen = await self._frozen()
        self._access_key_id = frozen.access_key
        self._account = frozen.account_id or self._account
        return sign(request, frozen, self.config.region)

    def identity(self) -> dict[str, str]:
        result = {"type": self.type, "region": self.config.region}
        if self._account:
            result["account"] = self._account
        result["endpoint"] = self.config.base_url
        result["credential"] = self._access_key_id or "unresolved"
        return result


def sign(request: UpstreamRequest, credentials: ReadOnlyCredentials | Credentials, region: str) -> UpstreamRequest:
    """The request with SigV4 headers for exactly its URL, method, headers and body."""
    # A re-signed request (a retry) must not carry, or sign, the previous signature's headers.
    headers = {k: v for k, v in request.headers.items() if k.lower() not in _SIGV4_HEADERS}
    aws_request = AWSRequest(method=request.method, url=request.url, data=request.body, headers=headers)
    SigV4Auth(credentials, SIGNING_NAME, region).add_auth(aws_request)
    added = {
        name: aws_request.headers[name]
        for name in ("Authorization", "X-Amz-Date", "X-Amz-Security-Token")
        if name in aws_request.headers
    }
    return UpstreamRequest(request.method, request.url, {**headers, **added}, request.body)
