"""Rotation by size and by time; each file a complete HAR, one chain across files. Audit options."""

from __future__ import annotations

import json

import pytest
from mitmproxy import exceptions
from mitmproxy.test import taddons

from addon.audit.har_file import iter_entries
from addon.audit.log import AuditLog
from addon.audit.verify import verify
from addon.audit.writer import AuditWriter, Rotation, parse_rotation
from addon.cli import main
from tests.audit.helpers import served


def test_parse_rotation():
    assert parse_rotation("100MB,1d") == Rotation(100 << 20, 86400.0)
    assert parse_rotation("30m") == Rotation(None, 1800.0)
    assert parse_rotation("") == Rotation()
    for bad in ("100", "1w", "0MB", "big"):
        with pytest.raises(ValueError):
            parse_rotation(bad)


def test_rotates_by_size_and_the_chain_spans_files(tmp_path, capsys):
    path = tmp_path / "audit.har"
    writer = AuditWriter(path, "test", rotation=Rotation(max_bytes=4000))
    for i in range(30):
        writer.write(served(ms=i + 1), now=1_800_000_000 + i)
    writer.close()
    files = sorted(tmp_path.glob("audit*.har"))
    assert len(files) > 3
    seqs = []
    for file in files:
        har = json.loads(file.read_text())  # every file, rotated or live, is a complete HAR
        assert har["log"]["entries"]
        seqs += [e["_byok"]["chain"]["seq"] for e in har["log"]["entries"]]
        assert file == path or file.stat().st_size < 4000 + 2000
    assert sorted(seqs) == list(range(30))
    assert main(["audit", "verify", *reversed([str(f) for f in files])]) == 0  # any order
    assert f"{len(files)} file(s), 30 entries" in capsys.readouterr().out
    # Dropping a middle file is a broken chain.
    assert main(["audit", "verify", str(files[0]), *[str(f) for f in files[2:]]]) == 1
    assert "entries were deleted" in capsys.readouterr().out


def test_rotates_by_age_and_continues_after_restart(tmp_path):
    path = tmp_path / "audit.har"
    writer = AuditWriter(path, "test", rotation=Rotation(max_seconds=3600))
    writer.write(served(started="2027-01-15T08:00:00+00:00"), now=1_800_000_000)
    writer.write(served(), now=1_800_000_000 + 10)
    writer.close()
    # A restart an hour later: the file's age counts from its first entry, not from the restart.
    writer = AuditWriter(path, "test", rotation=Rotation(max_seconds=3600))
    writer.write(served(), now=1_800_000_000 + 3600)
    writer.close()
    rotated = [f for f in tmp_path.glob("audit.*.har") if f != path]
    assert len(rotated) == 1 and rotated[0].name == "audit.20270115T090000Z.har"  # named by rotation time
    assert [e["_byok"]["chain"]["seq"] for e in iter_entries(rotated[0])] == [0, 1]
    assert [e["_byok"]["chain"]["seq"] for e in iter_entries(path)] == [2]
    assert verify([path, rotated[0]]).ok


def test_audit_options_are_validated(tmp_path, monkeypatch):
    audit = AuditLog()
    with taddons.context(audit) as tctx:
        with pytest.raises(exceptions.OptionsError, match="neither a size"):
            tctx.configure(audit, byok_audit_rotate="weekly")
        with pytest.raises(exceptions.OptionsError, match="never the key itself"):
            tctx.configure(audit, byok_audit_key="my-literal-key")
        with pytest.raises(exceptions.OptionsError, match="BYOK_TEST_AUDIT_KEY is not set"):
            tctx.configure(audit, byok_audit_key="${BYOK_TEST_AUDIT_KEY}")
        monkeypatch.setenv("BYOK_TEST_AUDIT_KEY", "k" * 32)
        tctx.configure(audit, byok_audit_key="${BYOK_TEST_AUDIT_KEY}", byok_audit=str(tmp_path / "a.har"),
                       byok_audit_rotate="1MB")
        assert audit.writer is not None and audit.writer.key == b"k" * 32
        assert audit.writer.rotation == Rotation(1 << 20, None)
