"""Hash chain, HMAC, restart, torn-write repair and `byok audit verify`."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from addon.audit.chain import GENESIS, ChainState, ChainVerifier, entry_hash
from addon.audit.har_file import TAIL, HarAppender, iter_entries
from addon.audit.verify import verify
from addon.audit.writer import AuditWriter
from addon.cli import main
from tests.audit.helpers import blocked, served

KEY = b"audit-hmac-key-for-tests-0001"


def write_log(path: Path, count: int = 6, key: bytes | None = None) -> Path:
    writer = AuditWriter(path, "test", key)
    for i in range(count):
        writer.write(served(ms=100 + i) if i % 3 else blocked())
    writer.close()
    return path


def rewrite(path: Path, edit) -> None:
    """Applies `edit` to the list of entry lines and writes the file back in the same layout."""
    head, *rest = path.read_bytes().split(b"\n")
    lines = [line.removesuffix(b",") for line in rest if line.startswith(b"{")]
    lines = edit(lines)
    path.write_bytes(head + b"\n" + b",\n".join(lines) + TAIL)


def test_chain_links_every_entry_and_verifies(tmp_path):
    path = write_log(tmp_path / "audit.har", key=KEY)
    entries = list(iter_entries(path))
    assert [e["_byok"]["chain"]["seq"] for e in entries] == list(range(6))
    assert entries[0]["_byok"]["chain"]["prev"] == GENESIS
    for before, after in itertools.pairwise(entries):
        assert after["_byok"]["chain"]["prev"] == before["_byok"]["chain"]["hash"]
    assert all(len(e["_byok"]["chain"]["hmac"]) == 64 for e in entries)
    assert json.loads(path.read_text())["log"]["version"] == "1.2"
    result = verify([path], KEY)
    assert result.ok, result.problems
    assert (result.entries, result.signed) == (6, 6)


def test_restart_continues_the_chain(tmp_path):
    path = write_log(tmp_path / "audit.har", 3)
    write_log(path, 2)
    assert [e["_byok"]["chain"]["seq"] for e in iter_entries(path)] == [0, 1, 2, 3, 4]
    assert verify([path]).ok


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda ls: [*ls[:2], ls[2].replace(b'"status":200', b'"status":201', 1), *ls[3:]],
         "entry 2 (seq 2): hash"),
        (lambda ls: [*ls[:3], *ls[4:]], "entry 3 (seq 4): expected seq 3: entries were deleted"),
        (lambda ls: [ls[0], ls[2], ls[1], *ls[3:]], "entry 1 (seq 2): expected seq 1"),
    ],
    ids=["edited", "deleted", "reordered"],
)
def test_verify_names_the_first_broken_entry(tmp_path, capsys, edit, expected):
    path = write_log(tmp_path / "audit.har")
    rewrite(path, edit)
    assert main(["audit", "verify", str(path)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("FAILED: ") and expected in out.splitlines()[0], out


def test_recomputed_chain_is_caught_by_the_hmac(tmp_path, capsys):
    path = write_log(tmp_path / "audit.har", key=KEY)
    entries = list(iter_entries(path))
    entries[2]["_byok"]["alias"] = "something_else"
    state = ChainState()
    forged = []
    for entry in entries:
        mac = entry["_byok"]["chain"].get("hmac")
        state.link(entry)  # a forger without the key recomputes hashes, keeps the old HMACs
        entry["_byok"]["chain"]["hmac"] = mac
        forged.append(json.dumps(entry, separators=(",", ":")).encode())
    rewrite(path, lambda _: forged)
    assert verify([path]).ok  # the chain alone is consistent again...
    key_file = tmp_path / "audit.key"
    key_file.write_bytes(KEY)
    assert main(["audit", "verify", str(path), "--key", str(key_file)]) == 1  # ...the HMAC is not
    assert "entry 2 (seq 2): HMAC mismatch" in capsys.readouterr().out


def test_verify_key_must_be_a_reference(tmp_path):
    path = write_log(tmp_path / "audit.har", key=KEY)
    with pytest.raises(SystemExit, match="never the key itself"):
        main(["audit", "verify", str(path), "--key", KEY.decode()])


def test_verify_ok_output(tmp_path, capsys, monkeypatch):
    path = write_log(tmp_path / "audit.har", key=KEY)
    monkeypatch.setenv("BYOK_AUDIT_KEY", KEY.decode())
    assert main(["audit", "verify", str(path), "--key", "${BYOK_AUDIT_KEY}"]) == 0
    out = capsys.readouterr().out
    assert "OK: 1 file(s), 6 entries, hash chain intact (seq 0..5)" in out
    assert "OK: all 6 entries carry a valid HMAC" in out


def test_verify_catches_an_unredacted_credential(tmp_path, capsys):
    path = tmp_path / "audit.har"
    writer = AuditWriter(path, "test")
    entry = served()
    entry["request"]["headers"] = [{"name": "api-key", "value": "0123456789abcdef0123"}]
    writer.write(served())
    writer.write(entry)
    writer.close()
    assert main(["audit", "verify", str(path)]) == 1
    assert "entry 1 (seq 1): credential: request header 'api-key' is not redacted" in capsys.readouterr().out


def test_verify_catches_a_broken_har_structure(tmp_path, capsys):
    path = tmp_path / "audit.har"
    writer = AuditWriter(path, "test")
    entry = served()
    del entry["response"]["status"]
    writer.write(entry)
    writer.close()
    assert main(["audit", "verify", str(path)]) == 1
    assert "HAR: 'response.status'" in capsys.readouterr().out


@pytest.mark.parametrize("cut", [6, 40, 200])
def test_torn_final_write_is_repaired_on_open(tmp_path, cut):
    path = write_log(tmp_path / "audit.har", 4)
    whole = path.read_bytes()
    writer = AuditWriter(path, "test")
    writer.write(served())
    writer.close()
    path.write_bytes(path.read_bytes()[: -cut])  # a crash part way through the fifth append
    with pytest.raises(ValueError):
        json.loads(path.read_bytes())
    appender = HarAppender(path, "test")
    appender.close()
    assert path.read_bytes() == whole
    assert verify([path]).ok
    writer = AuditWriter(path, "test")  # and the chain continues after the repair
    writer.write(served())
    writer.close()
    assert [e["_byok"]["chain"]["seq"] for e in iter_entries(path)] == [0, 1, 2, 3, 4]
    assert verify([path]).ok


def test_genesis_must_start_a_chain(tmp_path):
    verifier = ChainVerifier()
    entry = served()
    entry["_byok"]["chain"] = {"seq": 0, "prev": "f" * 64, "hash": entry_hash("f" * 64, entry)}
    assert [p.message for p in verifier.check("x", 0, entry)] == [
        "the first entry of the chain does not start from the genesis hash"
    ]
