import textwrap
from pathlib import Path

import pytest

from addon.rules import RulesError, load_rules, parse_rules

REPO = Path(__file__).resolve().parent.parent

BASE = """
platform: {hosts: [api.openai.com]}
providers:
  azure: {type: azure_openai, endpoint: "https://contoso.openai.azure.com", api_key: "${AZURE_OPENAI_API_KEY}"}
models:
  gpt_large: {provider: azure, model: gpt-4o}
"""


def parse(text: str, tmp_path: Path):
    return parse_rules(tmp_path / "rules.yaml", textwrap.dedent(text))


def error_of(text: str, tmp_path: Path) -> RulesError:
    with pytest.raises(RulesError) as info:
        parse(text, tmp_path)
    return info.value


def test_example_rules_file_loads(monkeypatch):
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "fake-key-value-0001")
    rules = load_rules(REPO / "rules" / "example.yaml")
    assert rules.byok
    assert set(rules.connections) == {"azure", "bedrock", "gemini", "vertex"}
    assert rules.file.models["claude_large"].model == "us.anthropic.claude-3-5-sonnet-20241022-v2:0"
    assert "production incidents" in rules.skill_prompts["summarize_incident"]
    assert rules.is_platform("api.openai.com", 443)
    assert not rules.is_platform("contoso.openai.azure.com", 443)


def test_secret_reference_resolves_and_never_shows(monkeypatch, tmp_path):
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "fake-key-value-0001")
    rules = parse(BASE, tmp_path)
    secret = rules.connections["azure"].config.api_key
    assert secret.value == "fake-key-value-0001"
    assert "fake-key-value-0001" not in repr(rules.connections["azure"].config)
    assert secret.fingerprint().startswith("sha256:")


def test_secret_from_file(tmp_path):
    (tmp_path / "azure.key").write_text("fake-file-key-0001\n")
    rules = parse(BASE.replace("${AZURE_OPENAI_API_KEY}", "./azure.key"), tmp_path)
    assert rules.connections["azure"].config.api_key.value == "fake-file-key-0001"


def test_missing_env_secret_is_a_credential_problem_not_a_crash(monkeypatch, tmp_path):
    monkeypatch.delenv("AZURE_OPENAI_API_KEY", raising=False)
    rules = parse(BASE, tmp_path)
    assert "AZURE_OPENAI_API_KEY is not set" in rules.connections["azure"].credential_problem()


def test_literal_secret_is_refused_with_how_to_reference(tmp_path):
    error = error_of(BASE.replace("${AZURE_OPENAI_API_KEY}", "abc123literal"), tmp_path)
    assert error.key == "providers.azure.api_key"
    assert "${ENV_VAR_NAME}" in str(error)
    assert "abc123literal" not in str(error)


@pytest.mark.parametrize(
    ("change", "key", "fragment"),
    [
        (("type: azure_openai", "type: azure_ai"), "providers.azure.type", "unknown provider type 'azure_ai'"),
        (("provider: azure,", "provider: azur,"), "models.gpt_large.provider", "provider 'azur' is not defined"),
        (("endpoint: \"https://contoso.openai.azure.com\"", "endpoint: contoso"), "providers.azure.endpoint",
         "http(s) URL"),
        (("type: azure_openai,", "type: azure_openai, colour: blue,"), "providers.azure.colour", "unknown key"),
        (("hosts: [api.openai.com]", "hosts: []"), "platform.hosts", "at least 1"),
    ],
)
def test_invalid_rules_name_file_key_and_fix(tmp_path, change, key, fragment):
    error = error_of(BASE.replace(*change), tmp_path)
    assert error.key == key
    assert fragment in str(error)
    assert "rules.yaml" in str(error)


def test_yaml_syntax_error_names_the_line(tmp_path):
    error = error_of("platform: {hosts: [a\nmodels: x: y", tmp_path)
    assert "YAML syntax error at line" in str(error)


def test_skill_must_name_a_defined_alias(tmp_path):
    error = error_of(BASE + "skills:\n  s1: {model: nope}\n", tmp_path)
    assert error.key == "skills.s1.model"


def test_skill_prompt_file_must_exist(tmp_path):
    error = error_of(BASE + "skills:\n  s1: {system_prompt: missing.txt}\n", tmp_path)
    assert error.key == "skills.s1.system_prompt"
    assert "missing.txt" in str(error)


def test_platform_host_with_port(monkeypatch, tmp_path):
    monkeypatch.setenv("PLATFORM", "127.0.0.1:8443")
    rules = parse(BASE.replace("api.openai.com", '"${PLATFORM}"'), tmp_path)
    assert rules.is_platform("127.0.0.1", 8443)
    assert not rules.is_platform("127.0.0.1", 9443)


def test_platform_host_matches_its_fully_qualified_form(tmp_path):
    # `api.openai.com.` resolves to the platform too; it used to pass through untouched.
    rules = parse(BASE, tmp_path)
    assert rules.is_platform("api.openai.com.", 443)
    assert rules.is_platform("API.OpenAI.com.", 8443)
    with_port = parse(BASE.replace("api.openai.com", '"api.openai.com.:8443"'), tmp_path)
    assert with_port.file.platform.hosts == ["api.openai.com:8443"]
    assert with_port.is_platform("api.openai.com.", 8443)
    assert not with_port.is_platform("api.openai.com", 443)


def test_vertex_key_path_is_relative_to_the_rules_file(tmp_path):
    text = BASE.replace("models:\n", "  vertex: {type: vertex, project: p, credentials_file: keys/sa.json}\nmodels:\n")
    rules = parse(text, tmp_path)
    assert rules.connections["vertex"].config.credentials_file == str(tmp_path / "keys" / "sa.json")
    assert "keys/sa.json" in rules.connections["vertex"].credential_problem()
