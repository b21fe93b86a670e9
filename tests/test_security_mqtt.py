"""Edge -> central over MQTT with TLS, per-edge credentials and the shipped topic ACL
(deploy/mosquitto), against a real Mosquitto that this test starts on a private port."""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest

from _wait import wait_until
from axline.app.tls import make_server_cert
from axline.batch import Batch
from axline.edge import UnsPublisher, broker_credentials
from conftest import free_port

DEPLOY = Path(__file__).resolve().parents[1] / "deploy" / "mosquitto"
PASSWORDS = {"central": "central-reads-all-9", "edge-line1": "line-one-edge-pc-4", "edge-line2": "line-two-edge-pc-5"}
LINE1 = "changwon/plant1/line1/press/press1/oil_temp"
LINE2 = "changwon/plant1/line2/press/press1/oil_temp"


@pytest.fixture
def broker(tmp_path):
    exe = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
    pw_tool = shutil.which("mosquitto_passwd")
    if exe is None or pw_tool is None:
        if os.environ.get("CI") == "true":
            pytest.fail("mosquitto is not installed: scripts/ensure-services.sh installs it")
        pytest.skip("mosquitto is not installed")
    tls = tmp_path / "tls"
    make_server_cert(tls, ["localhost"], ["127.0.0.1"])
    passwd = tmp_path / "axline.passwd"
    passwd.write_text("".join(f"{u}:{p}\n" for u, p in PASSWORDS.items()))
    subprocess.run([pw_tool, "-U", str(passwd)], check=True, capture_output=True, timeout=30)  # hash in place
    assert "line-one" not in passwd.read_text()
    port = free_port()
    conf = (DEPLOY / "axline.conf").read_text()
    conf = (conf.replace("/etc/mosquitto/axline.passwd", str(passwd))
            .replace("/etc/mosquitto/axline.acl", str(DEPLOY / "axline.acl"))
            .replace("/etc/mosquitto/tls", str(tls))
            .replace("listener 8883", f"listener {port} 127.0.0.1"))
    # run as whoever runs the test (started as root, Mosquitto would switch to a user who cannot read tmp)
    conf += f"\npersistence false\nlog_dest stderr\nuser {getpass.getuser()}\n"
    (tmp_path / "mosquitto.conf").write_text(conf)
    log = (tmp_path / "mosquitto.log").open("wb")
    proc = subprocess.Popen([exe, "-c", str(tmp_path / "mosquitto.conf")], stdout=log, stderr=subprocess.STDOUT)

    def listening() -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    try:
        wait_until(lambda: listening() or proc.poll() is not None, 120, "mosquitto to listen")
        assert proc.poll() is None, (tmp_path / "mosquitto.log").read_text()
        yield port, tls / "ca.pem"
    finally:
        proc.terminate()
        proc.wait(60)
        log.close()


def _client(name: str, password: str, port: int, ca: Path, tls: bool = True):
    import paho.mqtt.client as mqtt

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-{name}-{time.monotonic_ns()}")
    c.username_pw_set(name, password)
    if tls:
        c.tls_set(ca_certs=str(ca), cert_reqs=ssl.CERT_REQUIRED)
    result: dict = {}
    done = threading.Event()

    def on_connect(client, userdata, flags, rc, props):
        result["rc"] = rc
        done.set()

    c.on_connect = on_connect
    return c, result, done


def test_edges_publish_only_their_own_line_over_tls(broker, tmp_path):
    port, ca = broker
    received: list[str] = []
    central, result, done = _client("central", PASSWORDS["central"], port, ca)
    subscribed = threading.Event()
    central.on_subscribe = lambda *a: subscribed.set()
    central.on_message = lambda c, u, msg: received.append(msg.topic)
    central.connect("127.0.0.1", port)
    central.loop_start()
    try:
        wait_until(done.is_set, 120, "the central client to connect")
        assert not result["rc"].is_failure, result
        central.subscribe("changwon/plant1/#", qos=1)
        wait_until(subscribed.is_set, 120, "the subscription")
        # the edge of line 1, with its credentials from a file (never the command line)
        cred = tmp_path / "broker.cred"
        cred.write_text(f"edge-line1\n{PASSWORDS['edge-line1']}\n")
        edge = UnsPublisher(f"mqtts://localhost:{port}", credentials=broker_credentials(str(cred)), ca_file=str(ca))
        edge.start()
        try:
            wait_until(edge.connected.is_set, 120, "the edge to connect over TLS")
            t = time.time_ns()
            # line 2's topic first: the broker takes it (QoS 1 is acknowledged) but delivers nothing
            edge.publish_batch(Batch.from_readings([(LINE2, t, 1.0)]))
            edge.publish_batch(Batch.from_readings([(LINE1, t, 2.0)]))
            wait_until(lambda: LINE1 in received, 120, "line 1's reading at the central")
            assert LINE2 not in received  # same publisher, same subscriber: delivery keeps the order
        finally:
            edge.stop()
    finally:
        central.loop_stop()
        central.disconnect()


def test_wrong_password_and_plain_tcp_are_refused(broker):
    port, ca = broker
    c, result, done = _client("edge-line1", "not-the-password", port, ca)
    c.connect("127.0.0.1", port)
    c.loop_start()
    try:
        wait_until(done.is_set, 120, "the broker's answer")
        assert result["rc"].is_failure and "authori" in str(result["rc"]).lower()
    finally:
        c.loop_stop()
        c.disconnect()
    # no TLS: the listener speaks only TLS, the connection never comes up
    plain, result, done = _client("edge-line1", PASSWORDS["edge-line1"], port, ca, tls=False)
    plain.connect_timeout = 2.0
    try:
        plain.connect("127.0.0.1", port)
        for _ in range(40):
            plain.loop(0.05)
    except (OSError, ConnectionError):
        pass
    assert not (done.is_set() and not result["rc"].is_failure)
    plain.disconnect()


def test_a_password_in_the_broker_url_is_refused(monkeypatch):
    with pytest.raises(ValueError, match="ps shows it"):
        UnsPublisher("mqtts://edge-line1:secret@central:8883")
    monkeypatch.setenv("AXLINE_BROKER_USERNAME", "edge-line1")
    monkeypatch.delenv("AXLINE_BROKER_PASSWORD", raising=False)
    with pytest.raises(ValueError, match="AXLINE_BROKER_PASSWORD"):
        broker_credentials(None)
    monkeypatch.setenv("AXLINE_BROKER_PASSWORD", "x" * 12)
    assert broker_credentials(None) == ("edge-line1", "x" * 12)


def test_credentials_need_tls_unless_the_broker_is_local_or_forced():
    creds = ("edge-line1", "x" * 12)
    with pytest.raises(ValueError, match="clear text"):
        UnsPublisher("mqtt://central.example:1883", credentials=creds)
    UnsPublisher("mqtt://127.0.0.1:1883", credentials=creds)  # this machine: nothing crosses the network
    UnsPublisher("mqtt://localhost:1883", credentials=creds)
    UnsPublisher("mqtt://central.example:1883", credentials=creds, allow_plain_credentials=True)
    UnsPublisher("mqtts://central.example:8883", credentials=creds)


def test_a_refused_connection_is_counted_raised_and_shown(broker):
    port, ca = broker
    events: list[tuple] = []
    edge = UnsPublisher(f"mqtts://localhost:{port}", credentials=("edge-line1", "not-the-password"), ca_file=str(ca),
                        on_event=lambda *a: events.append(a))
    edge.start()
    try:
        wait_until(lambda: edge.connect_failures >= 1, 120, "the broker's refusal")
        st = edge.status()
        assert not st["connected"] and st["connect_failures"] >= 1 and "authori" in st["last_connect_error"].lower()
        assert events and events[0][0] == "uplink.broker_refused" and events[0][1] == "error"
    finally:
        edge.stop()
    assert len(events) == 1  # one event per new reason, not one per retry
