"""The rules file: which platform to intercept, the customer's provider connections, the alias map
and per-skill overrides. Loaded and validated once; every error names the file, the key path and
the fix.
"""

from __future__ import annotations

import logging
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from addon import secrets
from addon.providers import PROVIDERS
from addon.providers.base import Connection, ProviderConfig

logger = logging.getLogger(__name__)


class RulesError(Exception):
    """An invalid rules file: the message names the file, the key path and what to do."""

    def __init__(self, path: Path | str, key: str, problem: str) -> None:
        where = f"{path}: {key}" if key else str(path)
        super().__init__(f"invalid rules file {where}: {problem}")
        self.path = str(path)
        self.key = key
        self.problem = problem


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Platform(_Strict):
    hosts: list[str] = Field(min_length=1)
    """host or host:port of the default platform AI endpoint(s)."""

    @field_validator("hosts")
    @classmethod
    def _lowercase(cls, hosts: list[str]) -> list[str]:
        for host in hosts:
            if not host or "/" in host or " " in host:
                raise ValueError(f"'{host}' is not a host or host:port (write api.openai.com, not a URL)")
        return [_without_trailing_dot(h.lower()) for h in hosts]


def _without_trailing_dot(host: str) -> str:
    """`api.openai.com.:443` -> `api.openai.com:443`, `api.openai.com.` -> `api.openai.com`."""
    name, colon, port = host.rpartition(":") if host.count(":") == 1 else (host, "", "")
    return f"{name.rstrip('.')}{colon}{port}"


class ModelRoute(_Strict):
    provider: str
    model: str = Field(min_length=1)
    """The customer's model: an Azure deployment name, a Bedrock model or inference-profile id, a Gemini model."""


class Skill(_Strict):
    model: str | None = None
    """Another alias this skill uses instead of the one the app sent."""
    system_prompt: str | None = None
    """Path (relative to the rules file) of a text file that replaces the app's system prompt."""
    params: dict[str, Any] = Field(default_factory=dict)
    """Request parameters that override the app's (temperature, max_tokens, ...)."""


class Price(_Strict):
    """What one alias costs the customer, in any currency, per million tokens."""

    input_per_mtok: float = Field(ge=0)
    output_per_mtok: float = Field(ge=0)
    currency: str = "USD"


class RulesFile(_Strict):
    platform: Platform
    byok: bool = True
    skill_header: str = "x-byok-skill"
    allow_passthrough: bool = True
    """Whether aliases of a provider with `enabled: false` may pass through to the platform."""
    drop_unsupported_params: bool = False
    """Drop request parameters a provider has no equivalent for, instead of answering 400."""
    providers: dict[str, dict[str, Any]] = Field(default_factory=dict)
    models: dict[str, ModelRoute] = Field(default_factory=dict)
    skills: dict[str, Skill] = Field(default_factory=dict)
    prices: dict[str, Price] = Field(default_factory=dict)
    """Optional price table by alias, for estimated cost in the audit log and report."""


@dataclass(frozen=True)
class Rules:
    """A validated rules file with its provider connections built."""

    path: Path
    file: RulesFile
    connections: dict[str, Connection]
    skill_prompts: dict[str, str] = field(default_factory=dict)

    @property
    def byok(self) -> bool:
        return self.file.byok

    def is_platform(self, host: str, port: int) -> bool:
        # `api.openai.com.` (the fully qualified form) resolves to the same host: it must match too.
        host = host.lower().rstrip(".")
        return any(h == host or h == f"{host}:{port}" for h in self.file.platform.hosts)


def _is_secret_field(annotation: Any) -> bool:
    if annotation is secrets.Secret:
        return True
    return any(_is_secret_field(arg) for arg in typing.get_args(annotation))


def _expand_settings(config_model: type[ProviderConfig], raw: dict[str, Any]) -> dict[str, Any]:
    """Expands `${VAR}` in plain settings; secret fields keep their reference for the secret loader."""
    expanded = {}
    for key, value in raw.items():
        model_field = config_model.model_fields.get(key)
        is_secret = model_field is not None and _is_secret_field(model_field.annotation)
        expanded[key] = secrets.expand_env(value) if isinstance(value, str) and not is_secret else value
    return expanded


def _first_error(path: Path, prefix: str, error: ValidationError) -> RulesError:
    detail = error.errors()[0]
    key = ".".join(str(part) for part in (prefix, *detail["loc"]) if part != "")
    message = detail["msg"].removeprefix("Value error, ")
    if detail["type"] == "extra_forbidden":
        message = "unknown key; remove it or check its spelling"
    elif detail["type"] == "missing":
        message = "required key is missing"
    return RulesError(path, key, message)


def _build_connection(path: Path, name: str, raw: Any) -> Connection:
    key = f"providers.{name}"
    if not isinstance(raw, dict):
        raise RulesError(path, key, "must be a mapping with at least a 'type' key")
    provider_type = raw.get("type")
    connection_class = PROVIDERS.get(provider_type) if isinstance(provider_type, str) else None
    if connection_class is None:
        raise RulesError(
            path, f"{key}.type",
            f"unknown provider type {provider_type!r}; use one of: {', '.join(sorted(PROVIDERS))}",
        )
    config_model = connection_class.config_model
    try:
        config = config_model.model_validate(
            _expand_settings(config_model, raw), context={"base_dir": path.parent}
        )
    except ValidationError as e:
        raise _first_error(path, key, e) from None
    try:
        return connection_class(name, config)
    except ValueError as e:
        raise RulesError(path, key, str(e)) from None


def parse_rules(path: Path, text: str) -> Rules:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "YAML"
        raise RulesError(path, "", f"YAML syntax error at {where}: {getattr(e, 'problem', e)}") from None
    if not isinstance(data, dict):
        raise RulesError(path, "", "the file must be a YAML mapping with 'platform', 'providers' and 'models'")
    platform = data.get("platform")
    if isinstance(platform, dict) and isinstance(platform.get("hosts"), list):
        platform["hosts"] = [secrets.expand_env(h) if isinstance(h, str) else h for h in platform["hosts"]]
    try:
        rules_file = RulesFile.model_validate(data)
    except ValidationError as e:
        raise _first_error(path, "", e) from None

    connections = {name: _build_connection(path, name, raw) for name, raw in rules_file.providers.items()}
    for alias, route in rules_file.models.items():
        if route.provider not in connections:
            known = ", ".join(sorted(connections)) or "none defined"
            raise RulesError(
                path, f"models.{alias}.provider",
                f"provider '{route.provider}' is not defined under 'providers' (defined: {known})",
            )
    for alias in rules_file.prices:
        if alias not in rules_file.models:
            raise RulesError(path, f"prices.{alias}", f"alias '{alias}' is not defined under 'models'")
    skill_prompts = {}
    for name, skill in rules_file.skills.items():
        if skill.model is not None and skill.model not in rules_file.models:
            raise RulesError(path, f"skills.{name}.model", f"alias '{skill.model}' is not defined under 'models'")
        if skill.system_prompt is not None:
            prompt_path = path.parent / secrets.expand_env(skill.system_prompt)
            try:
                skill_prompts[name] = prompt_path.read_text()
            except OSError as e:
                raise RulesError(
                    path, f"skills.{name}.system_prompt", f"cannot read {prompt_path}: {e.strerror}"
                ) from None
    return Rules(path, rules_file, connections, skill_prompts)


def load_rules(path: str | Path) -> Rules:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise RulesError(path, "", f"cannot read the file: {e.strerror}") from None
    return parse_rules(path, text)
