"""The scripted check against a running ``axline serve`` (separate processes, real OPC UA, real
argon2id parameters): a foreign Host is refused, a write without login is refused, a viewer's write
is refused, an engineer's write reaches the PLC and is audited under that name, the sixth wrong
password is locked out, and ``axline audit verify`` fails once one audit line is edited."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from importlib.resources import files
from pathlib import Path

import aiohttp
import pytest

from conftest import free_port

SRC = str(Path(__file__).resolve().parents[1] / "src")
SETPOINT = "changwon/plant1/line1/furnace/furnace1/temp_setpoint"
PW = {"eng": "furnace-night-shift-7", "view": "read-only-window-3", "kim": "press-line-coffee-9"}


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AXLINE_")}
    env["PYTHONPATH"] = SRC
    env.update(extra)
    return env


def _axline(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "axline.cli", *args], cwd=cwd, env=_env(**env),
                          capture_output=True, text=True, timeout=120)


def _start(args: list[str], cwd: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "axline.cli", *args], cwd=cwd, env=_env(),
                            stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


async def _until(check, timeout: float, what: str, proc: subprocess.Popen, log: Path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{what}: the process ended ({proc.returncode}): {log.read_text()[-3000:]}")
        try:
            got = await check()
            if got:
                return got
        except (aiohttp.ClientError, OSError):
            pass
        await asyncio.sleep(0.2)
    pytest.fail(f"waited {timeout} s for {what}: {log.read_text()[-3000:]}")


@pytest.mark.slow
async def test_scripted_check_against_a_running_server(tmp_path):
    sim_port, web_port = free_port(), free_port()
    endpoint = f"opc.tcp://127.0.0.1:{sim_port}/axline/sim"
    text = files("axline.data").joinpath("demo_plant.yaml").read_text(encoding="utf-8")
    text = text.replace("opc.tcp://127.0.0.1:4840/axline/sim", endpoint)
    (tmp_path / "plant.yaml").write_text(text, encoding="utf-8")
    for name, role in (("eng", "engineer"), ("view", "viewer"), ("kim", "operator")):
        r = _axline("users", "-c", "plant.yaml", "add", name, "--role", role, cwd=tmp_path, AXLINE_PASSWORD=PW[name])
        assert r.returncode == 0, r.stderr
    sim_log, web_log = tmp_path / "sim.log", tmp_path / "serve.log"
    sim = _start(["sim", "--endpoint", endpoint, "--speed", "5", "--faults", "none"], tmp_path, sim_log)
    serve = _start(["serve", "-c", "plant.yaml", "--port", str(web_port)], tmp_path, web_log)
    url = f"http://127.0.0.1:{web_port}"
    audit_file = tmp_path / "data" / "audit" / "audit.jsonl"
    try:
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar, timeout=aiohttp.ClientTimeout(total=60)) as http:
            async def login(name: str, password: str) -> int:
                jar.clear()
                async with http.post(url + "/login", json={"username": name, "password": password},
                                     headers={"Origin": url}) as r:
                    return r.status

            async def write(value: float, **headers: str) -> tuple[int, dict]:
                async with http.post(url + "/api/write", json={"path": SETPOINT, "value": value, "user": "forged"},
                                     headers={"Origin": url, **headers}) as r:
                    return r.status, await r.json()

            assert await _until(lambda: login("eng", PW["eng"]), 90, "the dashboard", serve, web_log) == 200

            async def connected():
                async with http.get(url + "/api/status") as r:
                    return (await r.json())["connectors"]["sim"]["state"] == "connected"

            await _until(connected, 60, "the OPC UA connection", serve, web_log)

            # 1. a foreign Host (DNS rebinding) is refused before anything else
            status, _ = await write(801, Host="attacker.example:8000")
            assert status == 421
            # 2. without a login
            jar.clear()
            status, body = await write(802)
            assert status == 401 and body["error"] == "login required"
            # 3. a viewer
            assert await login("view", PW["view"]) == 200
            status, body = await write(803)
            assert status == 403 and body["error"] == "role engineer required"
            # 4. an engineer: written, and audited under the engineer's name (not the body's "user")
            assert await login("eng", PW["eng"]) == 200
            status, body = await write(840)
            assert status == 200 and body["result"] == "ok", body
            # 5. five wrong passwords, and the sixth is locked out (the right one too, for now)
            statuses = [await login("kim", f"wrong-guess-{i}") for i in range(6)]
            assert statuses == [401] * 5 + [423]
            assert await login("kim", PW["kim"]) == 423
    finally:
        _stop(serve)
        _stop(sim)
    entries = [json.loads(x) for x in audit_file.read_text().splitlines()]
    writes = [(e["who"], e["action"], e["target"], e["new"], e["result"]) for e in entries
              if e["action"] in ("tag.write", "http.denied")]
    assert ("eng", "tag.write", SETPOINT, 840.0, "ok") in writes
    assert ("view", "http.denied", "POST /api/write", None, "refused: role engineer required") in writes
    assert ("anonymous", "http.denied", "POST /api/write", None, "refused: login required") in writes
    assert not any(e["who"] == "forged" for e in entries)
    logins = [e["result"] for e in entries if e["action"] == "login" and e["who"] == "kim"]
    assert logins == ["bad"] * 5 + ["locked", "locked"]
    # 6. audit verify passes, then fails after one line is edited
    r = _axline("audit", "-c", "plant.yaml", "verify", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = audit_file.read_text().splitlines()
    i = next(i for i, e in enumerate(entries) if e["who"] == "eng" and e["action"] == "tag.write")
    lines[i] = lines[i].replace('"new":840.0', '"new":900.0')
    audit_file.write_text("\n".join(lines) + "\n")
    r = _axline("audit", "-c", "plant.yaml", "verify", cwd=tmp_path)
    assert r.returncode == 1 and f"line {i + 1}: hash does not match" in r.stderr, r.stdout + r.stderr
