"""Discovery over MQTT: subscribe for a while and describe every topic (rate, gaps, payload kind),
its numeric fields and the Sparkplug B metrics announced in births."""

from __future__ import annotations

import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from axline.connect.broker import new_client
from axline.discover.payload import classify_payload
from axline.discover.signal import Signal

SPARKPLUG_PREFIX = "spBv1.0/"


@dataclass
class _TopicSeen:
    """What arrived on one topic."""

    count: int = 0
    retained: int = 0
    bytes: int = 0
    times: list[float] = field(default_factory=list)
    kinds: Counter = field(default_factory=Counter)
    fields: dict[str, list] = field(default_factory=dict)  # selector -> [name, times, last value, bool]
    ts_selector: str | None = None
    skipped: int = 0
    problems: Counter = field(default_factory=Counter)


class MqttListener:
    """Collects what arrives on a broker: per topic counts, times, payload kinds and fields.

    ``record`` is called from paho's network thread; everything is kept under a lock.
    """

    def __init__(self, max_topics: int = 5000) -> None:
        self.max_topics = max_topics
        self.topics: dict[str, _TopicSeen] = {}
        self.dropped_topics = 0
        self.metrics: dict[tuple[str, str, str | None, str], dict] = {}  # Sparkplug B metrics seen in births
        self._aliases: dict[tuple[str, str], dict[int, tuple[str | None, str]]] = {}
        self._lock = threading.Lock()
        self.t0 = time.monotonic()

    def record(self, topic: str, payload: bytes, retained: bool, now: float | None = None) -> None:
        """Count a message on ``topic`` (size, retained, gaps) and read its signals; topics are bounded."""
        t = (time.monotonic() if now is None else now) - self.t0
        with self._lock:
            seen = self.topics.get(topic)
            if seen is None:
                if len(self.topics) >= self.max_topics:
                    self.dropped_topics += 1
                    return
                seen = self.topics[topic] = _TopicSeen()
            seen.count += 1
            seen.bytes += len(payload)
            if retained:
                seen.retained += 1
            else:
                seen.times.append(t)
            if topic.startswith(SPARKPLUG_PREFIX):
                self._sparkplug(topic, payload, retained, t, seen)
                return
            info = classify_payload(topic, payload)
            seen.kinds[info.kind] += 1
            seen.skipped = max(seen.skipped, info.skipped)
            if info.ts_selector:
                seen.ts_selector = info.ts_selector
            for sel, name, value in info.fields:
                f = seen.fields.setdefault(sel, [name, [], None, isinstance(value, bool)])
                if not retained:
                    f[1].append(t)
                f[2] = value

    def _sparkplug(self, topic: str, payload: bytes, retained: bool, t: float, seen: _TopicSeen) -> None:
        from axline.connect import sparkplug_pb as pb
        from axline.connect.sparkplug import parse_topic

        parsed = parse_topic(topic)
        if parsed is None:
            seen.kinds[
                "sparkplug B state"
                if topic.startswith(SPARKPLUG_PREFIX + "STATE/")
                else "sparkplug B (other)"
            ] += 1
            return
        mtype, group, edge, device = parsed
        seen.kinds[f"sparkplug B {mtype}"] += 1
        if mtype in ("NCMD", "DCMD", "NDEATH", "DDEATH"):
            return
        try:
            msg = pb.decode_payload(payload)
        except ValueError as e:
            seen.problems[f"undecodable: {e}"] += 1
            return
        aliases = self._aliases.setdefault((group, edge), {})
        for m in msg.metrics:
            if mtype.endswith("BIRTH"):
                if not m.name:
                    continue
                if m.alias is not None:
                    aliases[m.alias] = (device, m.name)
                if m.name == "bdSeq" or m.name.startswith(
                    ("Node Control/", "Device Control/", "Properties/")
                ):
                    continue
                key = (group, edge, device, m.name)
                entry = self.metrics.setdefault(key, {"datatype": m.datatype, "times": [], "value": None})
                entry["datatype"] = m.datatype
                entry["value"] = m.value
                continue
            name = m.name
            dev = device
            if name is None and m.alias is not None and m.alias in aliases:
                dev, name = aliases[m.alias]
            entry = self.metrics.get((group, edge, dev, name)) if name else None
            if entry is None:
                seen.problems["metric without a birth seen (wait for a rebirth or listen longer)"] += 1
                continue
            if not retained:
                entry["times"].append(t)
            entry["value"] = m.value

    def results(
        self, window: float, host: str, port: int, username: str | None = None, tls: bool = False
    ) -> tuple[list[Signal], dict]:
        """Signals per numeric field or metric and the per-topic rows of the inventory."""
        from axline.connect.json_mapping import parse_address
        from axline.connect.sparkplug import parse_topic
        from axline.connect.sparkplug_pb import BOOLEAN, DATATYPE_NAMES, NUMERIC_TYPES

        signals: list[Signal] = []
        rows = []
        with self._lock:
            for topic in sorted(self.topics):
                seen = self.topics[topic]
                sp = parse_topic(topic) if topic.startswith(SPARKPLUG_PREFIX) else None
                if sp is not None:
                    machine = f"{sp[1]}/{sp[2]}" + (f"/{sp[3]}" if sp[3] else "")
                else:
                    machine = topic.rsplit("/", 1)[0] if "/" in topic.strip("/") else "root"
                kind = " / ".join(k for k, _ in seen.kinds.most_common()) or "-"
                problems = [f"{p} x{n}" for p, n in seen.problems.items()]
                if seen.skipped:
                    problems.append(
                        f"{seen.skipped} numeric field(s) with keys the address grammar cannot name"
                    )
                n_signals = 0
                for sel, (name, times, value, is_bool) in seen.fields.items():
                    address = topic if sel == "$" else f"{topic}#{sel}"
                    if seen.ts_selector:
                        address += f";ts={seen.ts_selector}"
                    try:
                        parse_address(address)
                    except ValueError as e:
                        problems.append(f"cannot address {sel}: {e}")
                        continue
                    n_signals += 1
                    signals.append(
                        Signal(
                            machine=machine,
                            name=name,
                            address=address,
                            dtype="bool" if is_bool else "number",
                            value=value,
                            times=list(times),
                            kind="bool" if is_bool else "",
                            note=f"topic {topic}" + ("" if sel == "$" else f", field {sel}"),
                            period_s=_typical_period(times),
                            connector="broker1",
                        )
                    )
                live = len(seen.times)
                rows.append(
                    {
                        "machine": machine,
                        "topic": topic,
                        "kind": kind,
                        "messages": seen.count,
                        "retained": seen.retained,
                        "per_s": round(live / window, 2) if window else None,
                        "max_gap_s": round(_max_gap(seen.times, window), 2) if window else None,
                        "avg_bytes": round(seen.bytes / seen.count) if seen.count else 0,
                        "signals": n_signals,
                        "problems": "; ".join(problems),
                    }
                )
            for (group, edge, device, name), entry in sorted(self.metrics.items(), key=lambda kv: str(kv[0])):
                dt = entry["datatype"]
                numeric = dt in NUMERIC_TYPES
                where = f"{group}/{edge}" + (f"/{device}" if device else "")
                signals.append(
                    Signal(
                        machine=where,
                        name=name,
                        address=f"{where}:{name}",
                        dtype=DATATYPE_NAMES.get(dt, str(dt)),
                        value=entry["value"],
                        times=list(entry["times"]),
                        kind="bool" if dt == BOOLEAN else "",
                        note="Sparkplug B metric"
                        + ("" if numeric else "; not a number: axline stores numbers only"),
                        period_s=_typical_period(entry["times"]),
                        connector="sparkplug1",
                        commented=not numeric,
                    )
                )
        options: dict = {"host": host, "port": port}
        if username:
            options["username"] = username
        if tls:
            options["tls"] = True
        connectors = []
        if any(s.connector == "broker1" for s in signals):
            connectors.append({"name": "broker1", "type": "mqtt", **options})
        if any(s.connector == "sparkplug1" for s in signals):
            connectors.append({"name": "sparkplug1", "type": "sparkplug", **options})
        info = {
            "protocol": "mqtt",
            "endpoint": f"mqtt://{host}:{port}",
            "listened_s": round(window, 2),
            "topics": rows,
            "dropped_topics": self.dropped_topics,
            "connectors": connectors,
            "needs_password": bool(username),
        }
        return signals, info


def _max_gap(times: list[float], window: float) -> float:
    t = np.array([0.0, *sorted(times), window])
    return float(np.diff(t).max())


def _typical_period(times: list[float]) -> float | None:
    if len(times) < 3:
        return None
    p = float(np.median(np.diff(np.sort(times))))
    return min(86400.0, max(0.001, float(f"{p:.3g}"))) if p > 0 else None


def discover_mqtt(
    host: str,
    port: int = 1883,
    topics: list[str] | tuple[str, ...] = ("#",),
    listen_s: float = 10.0,
    username: str | None = None,
    password: str | None = None,
    tls: bool = False,
    timeout_s: float = 5.0,
    max_topics: int = 5000,
    ready: threading.Event | None = None,
    stop: threading.Event | None = None,
) -> tuple[list[Signal], dict]:
    """Subscribe to ``topics`` for ``listen_s`` seconds and describe what arrives.

    ``ready`` (optional) is set once the subscription is in place and the listening window starts;
    ``stop`` (optional) ends the window early (half a second after it is set, for messages in flight).
    Rates are per second of the window actually listened.
    """
    if not 1 <= port <= 65535:
        raise ValueError(f"port must be within 1..65535, got {port}")
    if listen_s <= 0:
        raise ValueError(
            f"--listen must be > 0 s for MQTT (messages only arrive while listening), got {listen_s}"
        )
    if max_topics < 1:
        raise ValueError(f"max_topics must be >= 1, got {max_topics}")
    topics = [t.strip() for t in topics if t.strip()]
    if not topics:
        raise ValueError("--topics names no topic filter; give e.g. 'plant/#' or leave it out for '#'")
    for t in topics:
        levels = t.split("/")
        if any(
            ("#" in lv and (lv != "#" or i != len(levels) - 1)) or ("+" in lv and lv != "+")
            for i, lv in enumerate(levels)
        ):
            raise ValueError(
                f"--topics: {t!r} is not a valid MQTT topic filter; '+' fills one whole level and "
                f"'#' only the last one, e.g. 'plant/+/press/#'"
            )
    listener = MqttListener(max_topics)
    subscribed = threading.Event()
    refused: list[str] = []
    client = new_client(
        f"axline-discover-{secrets.token_hex(4)}", username=username or None, password=password, tls=tls
    )

    def on_connect(c, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            refused.append(str(reason_code))
            subscribed.set()
            return
        c.subscribe([(t, 0) for t in topics])

    def on_subscribe(c, userdata, mid, reason_codes, properties) -> None:
        bad = [str(r) for r in reason_codes if r.is_failure]
        if bad:
            refused.append(f"subscription refused: {', '.join(bad)}")
        listener.t0 = time.monotonic()
        subscribed.set()

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = lambda c, u, msg: listener.record(msg.topic, msg.payload, bool(msg.retain))
    try:
        client.connect(host, port, keepalive=max(5, int(timeout_s * 2)))
    except OSError as e:
        raise ConnectionError(
            f"cannot connect to MQTT broker {host}:{port} ({e}); check the host and port"
        ) from None
    client.loop_start()
    try:
        if not subscribed.wait(timeout_s):
            raise ConnectionError(
                f"MQTT broker {host}:{port} did not accept the connection and subscription "
                f"within {timeout_s:g} s"
            )
        if refused:
            raise ConnectionError(
                f"MQTT broker {host}:{port} refused: {'; '.join(refused)} (check the user name, "
                f"password and the broker's access rules for {', '.join(topics)})"
            )
        if ready is not None:
            ready.set()
        if stop is None:
            time.sleep(listen_s)
        elif stop.wait(listen_s):
            time.sleep(min(0.5, max(0.0, listener.t0 + listen_s - time.monotonic())))
        window = time.monotonic() - listener.t0
    finally:
        client.disconnect()
        client.loop_stop()
    signals, info = listener.results(window, host, port, username, tls)
    info["subscribed"] = topics
    return signals, info
