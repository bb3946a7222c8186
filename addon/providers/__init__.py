"""The provider registry: adding a provider means adding one module and one line here."""

from __future__ import annotations

from addon.providers.azure import AzureConnection
from addon.providers.base import Connection
from addon.providers.bedrock import BedrockConnection
from addon.providers.gemini import GeminiConnection
from addon.providers.vertex import VertexConnection

PROVIDERS: dict[str, type[Connection]] = {
    connection.type: connection
    for connection in (AzureConnection, BedrockConnection, GeminiConnection, VertexConnection)
}
