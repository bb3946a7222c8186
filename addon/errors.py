"""OpenAI-style errors: what the app sees when the proxy refuses or cannot serve a request."""

from __future__ import annotations

import json

from mitmproxy import http


class ByokError(Exception):
    """A request the proxy answers itself, in OpenAI's error shape, without forwarding it anywhere."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.headers = headers or {}

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def to_response(self) -> http.Response:
        headers = {"content-type": "application/json", **self.headers}
        return http.Response.make(self.status, json.dumps(self.body()).encode(), headers)


class InvalidRequest(ByokError):
    """400: the app sent something the customer's provider cannot be asked faithfully."""

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(400, message, param=param, code=code)


class UnsupportedParameter(InvalidRequest):
    def __init__(self, param: str, provider_type: str, hint: str = "") -> None:
        message = (
            f"Parameter '{param}' is not supported by provider type '{provider_type}' in byok-proxy. "
            f"Remove it from the request{hint}, or set 'drop_unsupported_params: true' in the rules file "
            "to drop it silently."
        )
        super().__init__(message, param=param, code="unsupported_parameter")
