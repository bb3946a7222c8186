"""The `byok` command: `byok audit verify FILE...` and `byok audit report FILE...`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from addon.audit.chain import resolve_key
from addon.audit.har_file import HarFormatError
from addon.audit.report import Report, to_json
from addon.audit.verify import format_result, verify


def _key(ref: str | None) -> bytes | None:
    try:
        return resolve_key(ref)
    except ValueError as e:
        raise SystemExit(f"byok audit: --key: {e} (quote '${{BYOK_AUDIT_KEY}}' in single quotes)") from None


def cmd_verify(args: argparse.Namespace) -> int:
    result = verify([Path(f) for f in args.files], _key(args.key))
    print(format_result(result, args.key is not None))
    return 0 if result.ok else 1


def cmd_report(args: argparse.Namespace) -> int:
    hosts: list[str] = []
    prices = {}
    if args.rules:
        from addon.rules import RulesError, load_rules

        try:
            rules = load_rules(args.rules)
        except RulesError as e:
            print(f"byok audit report: {e}", file=sys.stderr)
            return 2
        hosts = rules.file.platform.hosts
        prices = dict(rules.file.prices)
    report = Report(hosts, prices)
    try:
        for path in args.files:
            report.add_file(Path(path))
    except (HarFormatError, OSError) as e:
        print(f"byok audit report: {e}", file=sys.stderr)
        return 2
    if args.html:
        Path(args.html).write_text(report.html())
    print(to_json(report) if args.json else report.text())
    if args.html and not args.json:
        print(f"HTML report: {args.html}")
    return 1 if report.leaked else 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="byok", description="byok-proxy tools")
    commands = root.add_subparsers(dest="command", required=True)
    audit = commands.add_parser("audit", help="check and summarize byok-proxy audit files")
    actions = audit.add_subparsers(dest="action", required=True)

    v = actions.add_parser(
        "verify", help="check the hash chain (and HMAC), the HAR structure and that no credential is present",
        description="Exits 1 naming the first broken entry. Rotated files may be given in any order.",
    )
    v.add_argument("files", nargs="+", metavar="FILE")
    v.add_argument("--key", metavar="REF",
                   help="the byok_audit_key reference ('${ENV_VAR}' or a key file) to check every entry's HMAC")
    v.set_defaults(run=cmd_verify)

    r = actions.add_parser(
        "report", help="what left through which customer account, what was blocked or passed through, leaks",
        description="Exits 1 if any request reached a non-customer host while BYOK was on.",
    )
    r.add_argument("files", nargs="+", metavar="FILE")
    r.add_argument("--rules", metavar="RULES", help="the rules file: its platform hosts and price table")
    r.add_argument("--html", metavar="OUT", help="also write a self-contained HTML page")
    r.add_argument("--json", action="store_true", help="print JSON instead of tables")
    r.set_defaults(run=cmd_report)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
