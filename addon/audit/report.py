"""`byok audit report`: what an auditor asks of the audit log, computed in one streaming pass.

Memory is bounded by the number of distinct accounts, aliases and minutes, never by the number of
entries: latencies go into a fixed log-scale histogram, leaks and pass-throughs keep a few examples.
"""

from __future__ import annotations

import html
import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from addon.audit.har_file import iter_entries

EXAMPLES = 20
_KINDS = ("byok", "passthrough", "blocked", "local")
_RATIO = 1.05  # histogram bucket ratio: percentiles within 2.5 %


class Histogram:
    """Log-scale latency histogram (ms): constant memory, percentiles within half a bucket."""

    def __init__(self) -> None:
        self.buckets: Counter[int] = Counter()
        self.count = 0

    def add(self, value: float) -> None:
        self.buckets[int(math.log(max(value, 0.01) / 0.01, _RATIO))] += 1
        self.count += 1

    def percentile(self, p: float) -> float | None:
        if not self.count:
            return None
        rank = max(1, math.ceil(self.count * p / 100))
        seen = 0
        for bucket in sorted(self.buckets):
            seen += self.buckets[bucket]
            if seen >= rank:
                return round(0.01 * _RATIO ** (bucket + 0.5), 1)
        return None


@dataclass
class Group:
    requests: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    latency: Histogram = field(default_factory=Histogram)

    def add(self, byok: dict[str, Any], entry: dict[str, Any]) -> None:
        self.requests += 1
        status = byok.get("client_status") or entry.get("response", {}).get("status") or 0
        if byok.get("error") or status >= 400:
            self.errors += 1
        usage = byok.get("usage") or {}
        self.prompt_tokens += usage.get("prompt_tokens") or 0
        self.completion_tokens += usage.get("completion_tokens") or 0
        if cost := byok.get("cost"):
            self.cost[cost["currency"]] += cost["amount"]
        if (ms := (byok.get("timings") or {}).get("client_ms")) is not None:
            self.latency.add(ms)

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests, "errors": self.errors,
            "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
            "cost": {c: round(a, 6) for c, a in self.cost.items()},
            "latency_ms": {"p50": self.latency.percentile(50), "p95": self.latency.percentile(95)},
        }


def _host(url: str) -> tuple[str, int | None]:
    parts = urlsplit(url)
    try:
        port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
    except ValueError:
        port = None
    return (parts.hostname or "").lower(), port


def _netloc(url: str) -> str:
    return urlsplit(url).netloc.lower()


def _matches(host: str, port: int | None, hosts: set[str]) -> bool:
    return host in hosts or f"{host}:{port}" in hosts


def category(decision: str) -> str:
    if decision == "byok":
        return "byok"
    if decision.startswith("byok:"):
        return "local"  # answered by the proxy itself (the model list)
    return decision.split(":", 1)[0].strip() if ":" in decision else decision


class Report:
    def __init__(self, platform_hosts: Iterable[str] = (), prices: dict[str, Any] | None = None) -> None:
        self.platform_hosts = {h.lower() for h in platform_hosts}
        self.prices = prices or {}
        self.files: list[str] = []
        self.total = 0
        self.decisions: Counter[str] = Counter()
        self.accounts: dict[tuple[str, ...], int] = Counter()
        self.by_alias: dict[str, Group] = defaultdict(Group)
        self.by_skill: dict[str, Group] = defaultdict(Group)
        self.by_provider: dict[str, Group] = defaultdict(Group)
        self.per_minute: dict[str, Counter[int]] = defaultdict(Counter)
        self.blocked_reasons: Counter[str] = Counter()
        self.passthroughs: list[dict[str, Any]] = []
        self.passthrough_while_on = 0
        self.leaks: list[dict[str, Any]] = []
        self.leak_count = 0
        self.first: str | None = None
        self.last: str | None = None

    def add_file(self, path: Path) -> None:
        self.files.append(str(path))
        for entry in iter_entries(path):
            self.add(entry)

    def add(self, entry: dict[str, Any]) -> None:
        byok = entry.get("_byok")
        if not isinstance(byok, dict):
            return  # not an intercepted exchange (a foreign HAR's other traffic)
        self.total += 1
        decision = str(byok.get("decision", ""))
        kind = category(decision)
        self.decisions[kind] += 1
        started = entry.get("startedDateTime")
        if started:
            self.first = min(self.first or started, started)
            self.last = max(self.last or started, started)
        url = entry.get("request", {}).get("url", "")
        if byok.get("platform_url"):
            # host:port, so that a customer endpoint on the same host but another port is no platform host.
            self.platform_hosts.add("{}:{}".format(*_host(byok["platform_url"])))
        leaked = self._check_leak(entry, byok, decision, kind, url)
        if kind == "blocked":
            self.blocked_reasons[decision.removeprefix("blocked: ")[:100]] += 1
        elif kind == "passthrough":
            if byok.get("byok_on"):
                self.passthrough_while_on += 1
            if len(self.passthroughs) < EXAMPLES:
                self.passthroughs.append(self._example(entry, byok, decision))
        if decision == "byok" and byok.get("provider") and not leaked:
            account = byok.get("account") or {}
            identity = ", ".join(f"{k}={v}" for k, v in account.items() if k not in ("type", "credential", "endpoint"))
            self.accounts[(byok["provider"], str(account.get("type", byok.get("provider_type", ""))), identity,
                           _netloc(account.get("endpoint") or ""), str(account.get("credential", "")))] += 1
            self.by_provider[byok["provider"]].add(byok, entry)
            if started:
                try:
                    minute = int(datetime.fromisoformat(started).timestamp() // 60)
                except ValueError:
                    minute = None
                if minute is not None:
                    self.per_minute[byok["provider"]][minute] += 1
        if byok.get("alias") and kind in ("byok", "blocked"):
            self._fill_cost(byok)
            self.by_alias[byok["alias"]].add(byok, entry)
        if byok.get("skill") and kind in ("byok", "blocked"):
            self.by_skill[byok["skill"]].add(byok, entry)

    def _fill_cost(self, byok: dict[str, Any]) -> None:
        """An entry written without a price table gets one from --rules."""
        price = self.prices.get(byok["alias"])
        if byok.get("cost") or price is None or not byok.get("usage"):
            return
        usage = byok["usage"]
        amount = ((usage.get("prompt_tokens") or 0) * price.input_per_mtok
                  + (usage.get("completion_tokens") or 0) * price.output_per_mtok) / 1_000_000
        byok["cost"] = {"amount": amount, "currency": price.currency}

    def _check_leak(self, entry: dict[str, Any], byok: dict[str, Any], decision: str, kind: str, url: str) -> bool:
        host, port = _host(url)
        upstream = byok.get("upstream") or {}
        reason = None
        if decision == "byok":
            endpoint = (byok.get("account") or {}).get("endpoint")
            if _matches(host, port, self.platform_hosts):
                reason = "served as BYOK but the request went to a platform host"
            elif not endpoint:
                reason = "served as BYOK but no customer endpoint is recorded"
            elif _host(endpoint) != (host, port):
                reason = f"served as BYOK but sent to {host}:{port}, not the customer endpoint {_netloc(endpoint)}"
        elif kind != "passthrough" and upstream.get("connected"):
            reason = f"{kind} request opened a connection to {upstream.get('address') or host}"
        if reason is None:
            return False
        self.leak_count += 1
        if len(self.leaks) < EXAMPLES:
            self.leaks.append({**self._example(entry, byok, decision), "reason": reason})
        return True

    @staticmethod
    def _example(entry: dict[str, Any], byok: dict[str, Any], decision: str) -> dict[str, Any]:
        return {
            "time": entry.get("startedDateTime"), "url": entry.get("request", {}).get("url"),
            "alias": byok.get("alias"), "decision": decision, "seq": (byok.get("chain") or {}).get("seq"),
        }

    @property
    def leaked(self) -> bool:
        return self.leak_count > 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "period": {"first": self.first, "last": self.last},
            "requests": self.total,
            "decisions": {k: self.decisions.get(k, 0) for k in _KINDS}
            | {k: v for k, v in self.decisions.items() if k not in _KINDS},
            "accounts": [
                {"provider": p, "type": t, "account": a, "endpoint_host": e, "credential": c, "requests": n}
                for (p, t, a, e, c), n in sorted(self.accounts.items())
            ],
            "blocked_reasons": dict(self.blocked_reasons.most_common()),
            "passthrough": {"count": self.decisions.get("passthrough", 0),
                            "while_byok_on": self.passthrough_while_on, "examples": self.passthroughs},
            "platform_hosts": sorted(self.platform_hosts),
            "leaks": {"count": self.leak_count, "examples": self.leaks},
            "by_alias": {k: g.to_dict() for k, g in sorted(self.by_alias.items())},
            "by_skill": {k: g.to_dict() for k, g in sorted(self.by_skill.items())},
            "by_provider": {k: g.to_dict() for k, g in sorted(self.by_provider.items())},
        }

    # -- rendering --

    def tables(self) -> list[tuple[str, list[str], list[list[str]]]]:
        """(title, header, rows) shared by the terminal and HTML renderings."""
        data = self.to_dict()
        d = data["decisions"]
        summary = [
            ["AI requests intercepted", str(self.total)],
            ["served through customer accounts", str(d["byok"])],
            ["passed through to the platform", f"{d['passthrough']} ({self.passthrough_while_on} while BYOK on)"],
            ["blocked (never sent)", str(d["blocked"])],
            ["answered by the proxy itself (model list)", str(d["local"])],
            ["reached a non-customer host while BYOK on", str(self.leak_count)],
            ["period", f"{self.first or '-'} .. {self.last or '-'}"],
        ]
        accounts = [[a["provider"], a["type"], a["account"], a["endpoint_host"], a["credential"], str(a["requests"])]
                    for a in data["accounts"]]
        tables = [
            ("Summary", ["", ""], summary),
            ("Egress by customer account", ["provider", "type", "account", "endpoint", "key", "requests"], accounts),
        ]
        for title, groups in (("By alias", data["by_alias"]), ("By skill", data["by_skill"])):
            rows = [[name, str(g["requests"]), str(g["prompt_tokens"]), str(g["completion_tokens"]),
                     _money(g["cost"]), _num(g["latency_ms"]["p50"]), _num(g["latency_ms"]["p95"]), str(g["errors"])]
                    for name, g in groups.items()]
            if rows or title == "By alias":
                tables.append((title, [title.split()[-1], "requests", "tokens in", "tokens out", "cost",
                                       "p50 ms", "p95 ms", "errors"], rows))
        if self.blocked_reasons:
            tables.append(("Blocked", ["reason", "count"],
                           [[r, str(n)] for r, n in self.blocked_reasons.most_common(EXAMPLES)]))
        if self.passthroughs:
            tables.append(("Passed through (allowed by the rules)", ["time", "alias", "decision", "url"],
                           [[p["time"] or "", p["alias"] or "", p["decision"], p["url"] or ""]
                            for p in self.passthroughs]))
        if self.leaks:
            tables.append(("LEAKS: requests that reached a non-customer host", ["seq", "time", "url", "reason"],
                           [[str(x["seq"]), x["time"] or "", x["url"] or "", x["reason"]] for x in self.leaks]))
        return tables

    def text(self) -> str:
        out = []
        for title, header, rows in self.tables():
            out.append(title)
            out.append(_text_table(header, rows) if rows else "  (none)")
            out.append("")
        out.append(self.verdict())
        return "\n".join(out)

    def verdict(self) -> str:
        if self.leaked:
            return (f"FAIL: {self.leak_count} request(s) reached a non-customer host while BYOK was on "
                    "(see LEAKS above)")
        return (f"OK: every one of {self.decisions.get('byok', 0)} BYOK request(s) left through a customer account; "
                "no request reached the platform except configured pass-through")

    def html(self) -> str:
        sections = []
        for title, header, rows in self.tables():
            head = "".join(f"<th>{html.escape(h)}</th>" for h in header) if any(header) else ""
            body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
            cls = ' class="leak"' if title.startswith("LEAKS") else ""
            sections.append(f"<h2{cls}>{html.escape(title)}</h2><table><tr>{head}</tr>{body or _NONE}</table>")
        verdict_class = "leak" if self.leaked else "ok"
        return _PAGE.format(
            verdict=f'<p class="{verdict_class}">{html.escape(self.verdict())}</p>',
            tables="\n".join(sections),
            timeline=self._timeline_svg(),
            latency=self._latency_svg(),
        )

    def _timeline_svg(self) -> str:
        """Requests over time per provider: at most 60 bars, stacked by provider."""
        minutes = sorted({m for counts in self.per_minute.values() for m in counts})
        if not minutes:
            return "<p>(no BYOK requests)</p>"
        start, end = minutes[0], minutes[-1]
        width = max(1, math.ceil((end - start + 1) / 60))
        bins: dict[str, Counter[int]] = {p: Counter() for p in self.per_minute}
        for provider, counts in self.per_minute.items():
            for minute, n in counts.items():
                bins[provider][(minute - start) // width] += n
        nbins = (end - start) // width + 1
        peak = max(sum(b[i] for b in bins.values()) for i in range(nbins)) or 1
        bar_w, height = 600 / nbins, 160
        parts, legend = [], []
        for color_index, provider in enumerate(sorted(bins)):
            legend.append(f'<tspan fill="{_COLORS[color_index % len(_COLORS)]}">■ {html.escape(provider)}</tspan> ')
        base = [0.0] * nbins
        for color_index, provider in enumerate(sorted(bins)):
            color = _COLORS[color_index % len(_COLORS)]
            for i in range(nbins):
                if n := bins[provider][i]:
                    h = n / peak * height
                    base[i] += h
                    parts.append(f'<rect x="{i * bar_w:.1f}" y="{height - base[i]:.1f}" width="{max(bar_w - 1, 1):.1f}"'
                                 f' height="{h:.1f}" fill="{color}"><title>{html.escape(provider)}: {n}</title></rect>')
        first = datetime.fromtimestamp(start * 60, UTC).strftime("%Y-%m-%d %H:%M")
        last = datetime.fromtimestamp(end * 60, UTC).strftime("%Y-%m-%d %H:%M")
        return (f'<svg width="620" height="210" role="img"><g transform="translate(10,10)">{"".join(parts)}'
                f'<text x="0" y="180" font-size="11">{first} UTC</text>'
                f'<text x="600" y="180" font-size="11" text-anchor="end">'
                f"{last} UTC ({width} min/bar, peak {peak})</text>"
                f'<text x="0" y="198" font-size="12">{"".join(legend)}</text></g></svg>')

    def _latency_svg(self) -> str:
        """Client latency distribution of BYOK requests, all providers, log-scale buckets."""
        total = Histogram()
        for group in self.by_provider.values():
            total.buckets.update(group.latency.buckets)
            total.count += group.latency.count
        if not total.count:
            return "<p>(no latencies recorded)</p>"
        low, high = min(total.buckets), max(total.buckets)
        # Merge into at most 40 bars.
        step = max(1, math.ceil((high - low + 1) / 40))
        bars: Counter[int] = Counter()
        for bucket, n in total.buckets.items():
            bars[(bucket - low) // step] += n
        nbars = (high - low) // step + 1
        peak = max(bars.values())
        bar_w = 600 / nbars
        parts = []
        for i in range(nbars):
            n = bars[i]
            lo = 0.01 * _RATIO ** (low + i * step)
            hi = 0.01 * _RATIO ** (low + (i + 1) * step)
            h = n / peak * 160
            parts.append(f'<rect x="{i * bar_w:.1f}" y="{160 - h:.1f}" width="{max(bar_w - 1, 1):.1f}" height="{h:.1f}"'
                         f' fill="#4a7bd0"><title>{lo:.0f} to {hi:.0f} ms: {n}</title></rect>')
        lo_ms = 0.01 * _RATIO**low
        hi_ms = 0.01 * _RATIO ** (high + 1)
        return (f'<svg width="620" height="200" role="img"><g transform="translate(10,10)">{"".join(parts)}'
                f'<text x="0" y="180" font-size="11">{lo_ms:.0f} ms</text>'
                f'<text x="600" y="180" font-size="11" text-anchor="end">{hi_ms:.0f} ms (log scale)</text></g></svg>')


def _money(cost: dict[str, float]) -> str:
    return ", ".join(f"{amount:.4f} {currency}" for currency, amount in sorted(cost.items())) or "-"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def _text_table(header: list[str], rows: list[list[str]]) -> str:
    show_header = any(header)
    widths = [max(len(c) for c in col) for col in zip(*([header] if show_header else []), *rows, strict=False)]
    lines = []
    if show_header:
        lines.append("  " + "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip())
        lines.append("  " + "  ".join("-" * w for w in widths))
    for row in rows:
        lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


_COLORS = ["#4a7bd0", "#e0883a", "#3aa35b", "#c44e52", "#8172b2", "#937860"]
_NONE = '<tr><td colspan="8">(none)</td></tr>'
_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>byok-proxy audit report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin-bottom: 1em; }}
th, td {{ border: 1px solid #ccc; padding: 3px 8px; text-align: left; font-size: 13px; }}
th {{ background: #f2f2f2; }}
.ok {{ color: #1a7f37; font-weight: bold; }}
.leak {{ color: #c00; font-weight: bold; }}
</style></head><body>
<h1>byok-proxy audit report</h1>
{verdict}
{tables}
<h2>Requests over time per provider</h2>
{timeline}
<h2>Latency distribution (client leg)</h2>
{latency}
</body></html>
"""


def to_json(report: Report) -> str:
    return json.dumps(report.to_dict(), indent=2)
