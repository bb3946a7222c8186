"""`byok audit report` on a known traffic mix, including a leak that must be flagged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from addon.audit.report import Histogram, Report
from addon.audit.writer import AuditWriter
from addon.cli import main
from tests.audit.helpers import AZURE, PLATFORM, blocked, passthrough, served

BEDROCK = "https://bedrock-runtime.us-east-1.amazonaws.com"
RULES = f"""
platform: {{hosts: [{PLATFORM}]}}
providers:
  azure: {{type: azure_openai, endpoint: {AZURE}, api_key: "${{NO_SUCH_AZURE_KEY}}"}}
models:
  gpt_large: {{provider: azure, model: gpt-4o}}
prices:
  gpt_large: {{input_per_mtok: 2.5, output_per_mtok: 10}}
"""


def mix(leak: bool) -> list[dict]:
    entries = [served(ms=100 + i, tokens=(1000, 100), started=f"2026-12-04T10:{i % 3:02d}:00+00:00") for i in range(20)]
    entries += [served("claude_large", "bedrock", BEDROCK, ms=300, tokens=(50, 50), skill="summarize",
                       cost=0.001, status=200 if i else 429) for i in range(10)]
    entries += [blocked() for _ in range(4)] + [blocked("bad param", alias="gpt_large")]
    entries += [passthrough() for _ in range(2)] + [passthrough("byok disabled", byok_on=False)]
    if leak:
        # Decided "byok", but the request went to the platform host.
        entries.append(served(url=f"https://{PLATFORM}/v1/chat/completions"))
        # Blocked, yet a connection was opened.
        entries.append(blocked(connected=True))
    return entries


def write(path: Path, entries: list[dict]) -> Path:
    writer = AuditWriter(path, "test")
    for entry in entries:
        writer.write(entry)
    writer.close()
    return path


def test_report_numbers_on_a_known_mix(tmp_path, capsys):
    path = write(tmp_path / "audit.har", mix(leak=False))
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    assert main(["audit", "report", str(path), "--rules", str(rules), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["requests"] == 38
    assert data["decisions"] == {"byok": 30, "passthrough": 3, "blocked": 5, "local": 0}
    assert data["passthrough"]["while_byok_on"] == 2
    assert data["leaks"]["count"] == 0
    accounts = {a["provider"]: a for a in data["accounts"]}
    assert accounts["azure"]["requests"] == 20 and accounts["azure"]["endpoint_host"] == "contoso.openai.azure.com"
    assert accounts["azure"]["credential"] == "sha256:0123456789abcdef"
    assert accounts["bedrock"]["requests"] == 10
    gpt = data["by_alias"]["gpt_large"]
    assert (gpt["requests"], gpt["errors"]) == (21, 1)  # 20 served + 1 blocked for a bad parameter
    assert (gpt["prompt_tokens"], gpt["completion_tokens"]) == (20_000, 2_000)
    assert gpt["cost"] == {"USD": pytest.approx(20 * (1000 * 2.5 + 100 * 10) / 1e6)}  # priced from --rules
    assert gpt["latency_ms"]["p50"] == pytest.approx(109, rel=0.03)
    assert gpt["latency_ms"]["p95"] == pytest.approx(118, rel=0.03)
    claude = data["by_alias"]["claude_large"]
    assert (claude["requests"], claude["errors"], claude["cost"]) == (10, 1, {"USD": pytest.approx(0.01)})
    assert data["by_skill"]["summarize"]["requests"] == 10
    assert data["blocked_reasons"] == {"unknown alias": 4, "bad param": 1}


def test_report_flags_a_leak_and_exits_non_zero(tmp_path, capsys):
    path = write(tmp_path / "audit.har", mix(leak=True))
    html = tmp_path / "report.html"
    assert main(["audit", "report", str(path), "--html", str(html)]) == 1
    out = capsys.readouterr().out
    assert "FAIL: 2 request(s) reached a non-customer host while BYOK was on" in out
    assert "served as BYOK but the request went to a platform host" in out
    assert "blocked request opened a connection to api.openai.com:443" in out
    assert "Egress by customer account" in out and "contoso.openai.azure.com" in out
    page = html.read_text()
    assert page.startswith("<!doctype html>") and "<svg" in page and "LEAKS" in page
    assert "http://" not in page.replace('http://www.w3.org', "") and "<script" not in page  # self-contained


def test_report_table_is_readable(tmp_path, capsys):
    path = write(tmp_path / "audit.har", mix(leak=False))
    assert main(["audit", "report", str(path)]) == 0
    out = capsys.readouterr().out
    assert "AI requests intercepted                    38" in out
    assert "OK: every one of 30 BYOK request(s) left through a customer account" in out


def test_report_reads_rotated_files_and_foreign_har(tmp_path):
    first = write(tmp_path / "a.har", mix(leak=False)[:10])
    foreign = tmp_path / "b.har"
    foreign.write_text(json.dumps({"log": {"version": "1.2", "entries": mix(leak=False)[10:]}}, indent=1))
    report = Report()
    report.add_file(first)
    report.add_file(foreign)
    assert report.total == 38


def test_histogram_percentiles_are_close():
    h = Histogram()
    for ms in range(1, 1001):
        h.add(ms)
    assert h.percentile(50) == pytest.approx(500, rel=0.03)
    assert h.percentile(95) == pytest.approx(950, rel=0.03)
