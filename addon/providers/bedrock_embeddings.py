"""OpenAI Embeddings <-> Bedrock InvokeModel bodies of the Titan and Cohere v3 embedding models."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from addon import openai_format as oa
from addon.errors import InvalidRequest

Family = Literal["titan-v1", "titan-v2", "cohere-v3"]

SUPPORTED_FAMILIES = (
    "Amazon Titan Text Embeddings (amazon.titan-embed-text-v1, amazon.titan-embed-text-v2:0) and "
    "Cohere Embed v3 (cohere.embed-english-v3, cohere.embed-multilingual-v3)"
)
TITAN_V2_DIMENSIONS = (256, 512, 1024)
COHERE_MAX_TEXTS = 96

_FAMILIES: tuple[tuple[re.Pattern[str], Family], ...] = (
    (re.compile(r"^amazon\.titan-embed-text-v2(:|$)"), "titan-v2"),
    (re.compile(r"^amazon\.titan-embed-text-v1(:|$)"), "titan-v1"),
    (re.compile(r"^cohere\.embed-(english|multilingual)-v3(:|$)"), "cohere-v3"),
)
_PROFILE_PREFIX = re.compile(r"^(us|eu|apac|us-gov|jp|au|ca|global)\.")


def embedding_family(model_id: str) -> Family:
    """The model family behind a base id, a cross-region profile id, or a foundation-model ARN."""
    base = _PROFILE_PREFIX.sub("", model_id.rsplit("/", 1)[-1])
    for pattern, family in _FAMILIES:
        if pattern.match(base):
            return family
    raise InvalidRequest(
        f"The Bedrock model '{model_id}' is not an embedding model byok-proxy can translate to. "
        f"Supported: {SUPPORTED_FAMILIES}. (Application inference profile ARNs hide the model; "
        "use the model id or a cross-region profile id.)",
        param="model",
    )


def supported_params(family: Family) -> frozenset[str]:
    params = {"model", "input", "encoding_format", "user"}
    if family == "titan-v2":
        params.add("dimensions")
    return frozenset(params)


def titan_body(text: str, family: Family, dimensions: int | None) -> dict[str, Any]:
    """One Titan InvokeModel body: Titan embeds exactly one text per call."""
    body: dict[str, Any] = {"inputText": text}
    if family == "titan-v2":
        if dimensions is not None:
            body["dimensions"] = dimensions
        body["normalize"] = True
    return body


def embedding_body(params: Mapping[str, Any], family: Family) -> dict[str, Any]:
    texts = oa.embedding_inputs(params)
    if family == "cohere-v3":
        if len(texts) > COHERE_MAX_TEXTS:
            raise InvalidRequest(
                f"Cohere Embed v3 on AWS Bedrock takes at most {COHERE_MAX_TEXTS} inputs per request; "
                f"this one has {len(texts)}. Split it into smaller batches.",
                param="input",
            )
        return {"texts": texts, "input_type": "search_document", "truncate": "NONE"}
    if len(texts) != 1:
        raise InvalidRequest(
            f"Amazon Titan embedding models on AWS Bedrock embed one input per request; this one has "
            f"{len(texts)}. Send one input per request, or use a Cohere Embed v3 model for batches.",
            param="input",
        )
    dimensions = params.get("dimensions")
    if dimensions is not None and dimensions not in TITAN_V2_DIMENSIONS:
        raise InvalidRequest(
            f"'dimensions' must be one of {', '.join(map(str, TITAN_V2_DIMENSIONS))} for Titan Text "
            "Embeddings v2.",
            param="dimensions",
        )
    return titan_body(texts[0], family, dimensions)


def embedding_vectors(payload: Mapping[str, Any], family: Family) -> list[list[float]] | None:
    """The vectors in an InvokeModel embedding response, or None if it has none."""
    if family == "cohere-v3":
        embeddings = payload.get("embeddings")
        if isinstance(embeddings, dict):  # response_type "embeddings_by_type"
            embeddings = embeddings.get("float")
        if isinstance(embeddings, list) and all(isinstance(v, list) for v in embeddings):
            return embeddings
        return None
    vector = payload.get("embedding")
    return [vector] if isinstance(vector, list) else None
