"""The audit trail: hash chain, tamper detection, export, capacity warning, and `axline audit`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from axline.app.audit import AuditLog, syslog_line

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _log(tmp_path, n: int = 5) -> AuditLog:
    log = AuditLog(tmp_path / "audit" / "audit.jsonl")
    for i in range(n):
        log.record("kim", "tag.write", f"line1/press/setpoint{i}", role="engineer", old=i, new=i + 1,
                   source="10.0.0.7")
    return log


def test_chain_verifies_and_entries_are_complete(tmp_path):
    log = _log(tmp_path)
    res = log.verify()
    assert res.ok and res.entries == 5, res.problems
    e = log.tail(1)[0]
    assert e["seq"] == 5 and e["ts"].endswith("Z") and len(e["hash"]) == 64
    assert {k: e[k] for k in ("who", "role", "action", "target", "old", "new", "result", "from")} == {
        "who": "kim", "role": "engineer", "action": "tag.write", "target": "line1/press/setpoint4", "old": 4,
        "new": 5, "result": "ok", "from": "10.0.0.7"}
    assert log.tail(10)[-1]["prev"] == "0" * 64


def test_an_edited_entry_is_found(tmp_path):
    log = _log(tmp_path)
    lines = log.path.read_text().splitlines()
    lines[2] = lines[2].replace('"who":"kim"', '"who":"lee"')
    log.path.write_text("\n".join(lines) + "\n")
    res = log.verify()
    assert not res.ok and any("line 3" in p and "edited" in p for p in res.problems)


def test_a_removed_entry_is_found(tmp_path):
    log = _log(tmp_path)
    lines = log.path.read_text().splitlines()
    del lines[1]
    log.path.write_text("\n".join(lines) + "\n")
    res = log.verify()
    assert not res.ok and any("missing" in p for p in res.problems)


def test_a_cut_tail_is_found(tmp_path):
    log = _log(tmp_path)
    lines = log.path.read_text().splitlines()
    log.path.write_text("\n".join(lines[:-1]) + "\n")
    res = log.verify()
    assert not res.ok and any("head" in p for p in res.problems)


def test_appends_continue_the_chain_across_writers(tmp_path):
    a = _log(tmp_path, 2)
    b = AuditLog(a.path)
    b.record("cli:root", "user.add", "kim", new="operator")
    a.record("kim", "login", "kim", result="ok")
    assert a.verify().ok and a.verify().entries == 4


def test_export_jsonl_and_syslog(tmp_path):
    import io

    log = _log(tmp_path, 2)
    log.record("lee", "login", "lee", result="bad", source="10.0.0.9")
    buf = io.StringIO()
    assert log.export(buf, "jsonl") == 3
    rows = [json.loads(x) for x in buf.getvalue().splitlines()]
    assert [r["seq"] for r in rows] == [1, 2, 3]
    line = syslog_line(rows[2], "plant-pc")
    # RFC 5424: <PRI>1 TIMESTAMP HOST APP PROCID MSGID [SD] MSG; authpriv.warning for a failure
    assert line.startswith(f"<84>1 {rows[2]['ts']} plant-pc axline - audit [axline@32473 seq=\"3\" who=\"lee\"")


def test_capacity_warning_before_the_store_fills(tmp_path):
    warnings: list[str] = []
    log = AuditLog(tmp_path / "a.jsonl", max_bytes=4000, warn_fraction=0.5, on_warning=warnings.append)
    while log.size() < 1500:
        log.record("kim", "tag.write", "x", new=1)
    assert warnings == [] and log.status()["state"] == "ok"
    while log.size() < 2100:
        log.record("kim", "tag.write", "x", new=1)
    assert len(warnings) == 1 and "audit trail uses" in warnings[0]
    assert log.status()["state"] == "warning"
    while log.size() < 4100:
        log.record("kim", "tag.write", "x", new=1)
    assert len(warnings) == 1 and log.status()["state"] == "full"  # never dropped, and says so
    assert log.verify().ok


def test_a_failing_audit_store_is_reported(tmp_path):
    import pytest

    from axline.app.audit import AuditError

    log = AuditLog(tmp_path / "a" / "audit.jsonl")
    log.record("kim", "login", "kim")
    os.chmod(log.path, 0o400)
    try:
        if os.access(log.path, os.W_OK):  # root ignores permissions: break the file another way
            os.chmod(log.path, 0o600)
            log.path.write_text(log.path.read_text() + "{broken\n")
        with pytest.raises(AuditError, match="cannot be written"):
            log.record("kim", "tag.write", "x")
        assert log.status()["state"] == "failing" and log.failures == 1
    finally:
        os.chmod(log.path, 0o600)


def _axline(*args: str, cwd: Path, env: dict | None = None):
    """`axline ...` as a separate process, as an operator types it."""
    e = {k: v for k, v in os.environ.items() if k != "AXLINE_PASSWORD"}
    e.update({"PYTHONPATH": SRC, **(env or {})})
    return subprocess.run([sys.executable, "-m", "axline.cli", *args], cwd=cwd, env=e, capture_output=True,
                          text=True, timeout=120)


def _cli(capsys, monkeypatch, *args: str, password: str | None = None) -> tuple[int, str, str]:
    """`axline ...` in this process (quicker); the password only ever through the environment."""
    from axline.cli import main

    if password is None:
        monkeypatch.delenv("AXLINE_PASSWORD", raising=False)
    else:
        monkeypatch.setenv("AXLINE_PASSWORD", password)
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_users_and_audit_verify(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "plant.yaml").write_text("# only the folder matters here\n")
    code, _, err = _cli(capsys, monkeypatch, "users", "-c", "plant.yaml", "add", "kim", "--role", "engineer",
                        password="quiet-lathe-harbour-42")
    assert code == 0, err
    # no password anywhere: no prompt without a terminal, a clear error instead
    code, _, err = _cli(capsys, monkeypatch, "users", "-c", "plant.yaml", "add", "lee", "--role", "viewer")
    assert code == 2 and "AXLINE_PASSWORD" in err
    code, _, err = _cli(capsys, monkeypatch, "users", "-c", "plant.yaml", "add", "lee", "--role", "viewer",
                        password="password1")
    assert code == 2 and "common passwords" in err
    code, out, _ = _cli(capsys, monkeypatch, "users", "-c", "plant.yaml", "role", "kim", "viewer")
    assert code == 0 and "engineer -> viewer" in out
    code, out, _ = _cli(capsys, monkeypatch, "users", "-c", "plant.yaml", "list")
    assert "kim" in out and "viewer" in out
    code, out, err = _cli(capsys, monkeypatch, "security-report", "-c", "plant.yaml", "--host", "0.0.0.0")
    rep = json.loads(out)
    assert rep["would_start"] is False and "plain HTTP" in rep["refusal"]
    assert rep["password_policy"]["hash"] == "argon2id" and rep["lockout"]["max_failures"] == 5
    # as a separate process: verify passes, then fails once one line is edited
    r = _axline("audit", "-c", "plant.yaml", "verify", cwd=tmp_path)
    assert r.returncode == 0 and "3 entries" in r.stdout, r.stdout + r.stderr
    audit = tmp_path / "data" / "audit" / "audit.jsonl"
    rows = audit.read_text().splitlines()
    rows[0] = rows[0].replace('"new":"engineer"', '"new":"admin"')
    audit.write_text("\n".join(rows) + "\n")
    r = _axline("audit", "-c", "plant.yaml", "verify", cwd=tmp_path)
    assert r.returncode == 1 and "BROKEN" in r.stderr and "edited" in r.stderr
    code, out, _ = _cli(capsys, monkeypatch, "security-report", "-c", "plant.yaml", "--json")
    rep = json.loads(out)
    assert rep["audit"]["chain_ok"] is False and rep["accounts"]["people"] == 1 and rep["http_basic"] is False


def test_cli_token_refusals_are_audited_like_user_refusals(tmp_path, capsys, monkeypatch):
    from axline.app.cli_security import audit_log

    monkeypatch.chdir(tmp_path)
    (tmp_path / "plant.yaml").write_text("# only the folder matters here\n")
    code, _, err = _cli(capsys, monkeypatch, "tokens", "-c", "plant.yaml", "revoke", "no-such-token")
    assert code == 2 and err.startswith("axline: ")
    code, _, err = _cli(capsys, monkeypatch, "users", "-c", "plant.yaml", "remove", "nobody")
    assert code == 2 and err.startswith("axline: ")
    rows = [(e["action"], e["target"], e["result"].split(":")[0]) for e in audit_log(tmp_path).tail(10)]
    assert sorted(rows) == [("token.revoke", "no-such-token", "refused"), ("user.remove", "nobody", "refused")]


def test_tail_reads_backwards_across_blocks(tmp_path):
    log = _log(tmp_path, 30)
    forward = list(log.iter_entries())
    for block in (7, 100, 1000, 65536):
        assert list(log._iter_newest_first(block=block)) == forward[::-1]
    assert [e["seq"] for e in log.tail(3)] == [30, 29, 28]
    assert [e["seq"] for e in log.tail(2, before=10)] == [9, 8]
    assert log.tail(5, who="nobody") == []


async def test_a_failing_trail_stops_writes_and_is_raised_as_a_system_event(tmp_path):
    import asyncio

    import pytest

    from axline.app.audit import AuditError
    from axline.demo import demo_plant
    from axline.service import Service

    plant = demo_plant(tmp_path, "opc.tcp://127.0.0.1:9/nothing-listens-here")
    svc = Service(plant, port=0)
    await svc.start(web=False)
    setpoint = "changwon/plant1/line1/furnace/furnace1/temp_setpoint"
    try:
        await svc.audit("kim", "login", "kim")
        trail = svc.security.audit.path
        with trail.open("a") as f:
            f.write("{broken\n")  # the trail can no longer be continued
        with pytest.raises(AuditError):
            await svc.write_tag(setpoint, 800, "kim", source="10.0.0.7")
        with pytest.raises(AuditError, match="refused"):  # nothing reaches the machine any more
            await svc.write_tag(setpoint, 810, "kim", source="10.0.0.7")
        assert svc.health_json()["audit"]["state"] == "failing"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            events = svc.historian.events(kinds=["system"], limit=50)
            if any(e.code == "audit.failing" for e in events):
                break
            await asyncio.sleep(0.02)
        assert [e.severity for e in events if e.code == "audit.failing"] == ["alarm"]
    finally:
        await svc.stop()


async def test_the_attempt_is_in_the_trail_before_the_value_reaches_the_machine(tmp_path):
    import pytest

    from axline.app.audit import AuditError
    from axline.demo import demo_plant
    from axline.service import Service

    plant = demo_plant(tmp_path, "opc.tcp://127.0.0.1:9/nothing-listens-here")
    svc = Service(plant, port=0)
    await svc.start(web=False)
    setpoint = "changwon/plant1/line1/furnace/furnace1/temp_setpoint"
    conn = svc.connectors[plant.tag(setpoint).source.connector]
    seen: list[list[str]] = []

    async def write(tag, value):  # what the trail held when the value went out
        seen.append([e["result"] for e in svc.security.audit.tail(5, action="tag.write")])

    conn.write = write
    try:
        await svc.write_tag(setpoint, 800, "kim", source="10.0.0.7")
        assert seen == [["attempt"]]
        assert [e["result"] for e in svc.security.audit.tail(5, action="tag.write")] == ["ok", "attempt"]
        with svc.security.audit.path.open("a") as f:
            f.write("{broken\n")  # the first failure: found by the attempt, not after the write
        with pytest.raises(AuditError, match="nothing was written"):
            await svc.write_tag(setpoint, 810, "kim", source="10.0.0.7")
        assert len(seen) == 1  # the machine never saw 810
    finally:
        await svc.stop()
