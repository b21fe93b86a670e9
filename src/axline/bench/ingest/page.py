"""The Markdown page of `axline bench ingest`, rendered from its JSON."""

from __future__ import annotations

from typing import Any

from axline.bench.common import (
    markdown_table,
    page,
)

PARTS = ("embedded", "postgres", "mqtt", "opcua")
GOALS = {
    "embedded_points_per_s": 2_000_000,
    "postgres_vs_copy": 0.8,
    "mqtt_msgs_per_s": 20_000,
}


METHOD = """\
- Embedded: {points:,} readings in batches of {batch:,} over {tags:,} tags (every tag at 1 ms steps),
  `EmbeddedHistorian(fsync="interval")`, time of all appends plus the final `flush()` (fsync).
{pg_method}- MQTT: {mqtt_publishers} publisher process(es) offer {mqtt_messages:,} JSON messages
  (`{{"ts": ns, "value": v}}`, QoS 0, topic = tag path, {mqtt_tags:,} topics) paced at
  {mqtt_rate:,.0f} msgs/s to the broker at {mqtt_host}:{mqtt_port}; axline's `MqttConnector`
  (connect/mqtt.py: paho network thread, JSON payload mapping per tag, batches handed to the asyncio
  loop every 50 ms) subscribes with QoS 0 and its sink appends each batch to the embedded historian.
  msgs/s = readings stored / (last append - first publish). A QoS 0 subscriber that falls behind
  loses messages at the broker, so the delivered fraction is part of the result.
- OPC UA: an asyncua server in its own process, N Double variables all written once a second with a
  source timestamp; the axline `OpcUaConnector` (publishing interval 200 ms) subscribed to all N in
  this process. After the subscription is set up and its start-up backlog has drained, a window of
  {opcua_seconds:.0f} s: every value whose source timestamp lies in the window counts (it may arrive
  up to 5 s after the window). Lag = arrival in the sink - source timestamp (so it includes the time
  the server takes to write all N values). Delivered fraction = values received / (N x server cycles
  seen in the window). Client CPU = CPU seconds of the client process / window seconds.
- Peak RSS: `ru_maxrss` of the child process that ran the part.
"""


# how the PostgreSQL part was measured, by the storage layout of the backend that ran (a page
# describes its own run: a result from before the array layout keeps its description)
PG_METHOD = {
    "blocks": """\
- PostgreSQL: {pg_points:,} readings per round, same batch shape, {rounds} interleaved round(s), best
  round of each kind. *backend*: `PostgresHistorian.append` (tag mapping, partition check, one binary
  COPY straight into the day partition of the `blocks` table, one row per tag and batch holding
  the readings as ts / value / quality arrays, btree index on (tag_id, tmax); row counts, `latest`
  upsert, commit). *raw COPY*: the same readings one row each (tag_id int4, ts int8, value float8,
  quality int2) as a NumPy-built binary COPY payload, one `COPY ... FROM STDIN (FORMAT BINARY)` +
  commit per batch, into a plain table without index. `postgres_vs_copy` is backend / raw COPY.
""",
    "rows": """\
- PostgreSQL: {pg_points:,} readings per round, same batch shape, {rounds} interleaved round(s), best
  round of each kind. *backend*: `PostgresHistorian.append` (tag mapping, partition check, one binary
  COPY straight into the day partition, row counts, `latest` upsert, commit). *raw COPY*: the same
  rows as a NumPy-built binary COPY payload, one `COPY ... FROM STDIN (FORMAT BINARY)` + commit per
  batch, into (a) a plain table without index and (b) a table shaped like the backend's (partitioned
  by day, btree index on (tag_id, ts)). `postgres_vs_copy` is backend / (a); (b) isolates what the
  backend adds on top of PostgreSQL's own work.
""",
}


# -- report -------------------------------------------------------------------------------------
def _fmt(v: Any, digits: int = 0) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "–"
    return f"{v:,.{digits}f}"


def render(result: dict[str, Any]) -> str:
    """The Markdown page of an ingest result (from its JSON alone)."""
    parts = result["parts"]
    rows = []
    e = parts.get("embedded", {})
    if "embedded_points_per_s" in e:
        rows.append(
            [
                "embedded historian",
                f"{_fmt(e['embedded_points_per_s'])} points/s",
                "≥ 2,000,000 points/s",
                "yes" if e["embedded_points_per_s"] >= 2e6 else "no",
                _fmt(e["peak_rss_mb"]),
            ]
        )
    pg = parts.get("postgres", {})
    if "postgres_points_per_s" in pg:
        rows.append(
            [
                "PostgreSQL backend",
                f"{_fmt(pg['postgres_points_per_s'])} points/s",
                "",
                "",
                _fmt(pg["peak_rss_mb"]),
            ]
        )
        rows.append(
            [
                "raw binary COPY, plain table (no index)",
                f"{_fmt(pg['copy_plain_points_per_s'])} points/s",
                "",
                "",
                "",
            ]
        )
        if "copy_indexed_points_per_s" in pg:  # measured before the array layout
            rows.append(
                [
                    "raw binary COPY, table like the backend's",
                    f"{_fmt(pg['copy_indexed_points_per_s'])} points/s",
                    "",
                    "",
                    "",
                ]
            )
        rows.append(
            [
                "backend / raw COPY (plain table)",
                _fmt(pg["postgres_vs_copy"], 2),
                "≥ 0.8",
                "yes" if pg["postgres_vs_copy"] >= 0.8 else "no",
                "",
            ]
        )
    m = parts.get("mqtt", {})
    if "mqtt_msgs_per_s" in m:
        rows.append(
            [
                "MQTT (axline MqttConnector) → embedded historian",
                f"{_fmt(m['mqtt_msgs_per_s'])} msgs/s ({m['stored']:,}/{m['messages']:,} arrived)",
                "≥ 20,000 msgs/s",
                "yes" if m["mqtt_msgs_per_s"] >= 2e4 else "no",
                _fmt(m["peak_rss_mb"]),
            ]
        )
    for name in PARTS:
        if "error" in parts.get(name, {}):
            rows.append([name, f"failed: {parts[name]['error']}", "", "", ""])
        elif name not in parts:
            rows.append([name, "not run", "", "", ""])
    sections = [("Ingest", markdown_table(["what", "result", "goal", "met", "peak RSS MiB"], rows))]
    o = parts.get("opcua", {})
    if o and "error" not in o:
        orows = [
            [
                v["tags"],
                _fmt(v["delivered_fraction"], 3),
                f"{v.get('server_cycles_in_window', '–')} / {_fmt(v['window_s'], 0)}",
                _fmt(v.get("server_slowest_cycle_s"), 2),
                _fmt(v["p50_lag_s"], 3),
                _fmt(v["p99_lag_s"], 3),
                f"{_fmt(v['p99_lag_first_half_s'], 3)} → {_fmt(v['p99_lag_second_half_s'], 3)}",
                _fmt(v["cpu_fraction"], 2),
                _fmt(v["setup_s"], 1),
                v.get("reconnects", "–"),
            ]
            for v in o.values()
            if isinstance(v, dict) and "error" not in v
        ]
        orows += [
            [v["tags"], f"failed: {v['error']}"] + [""] * 9
            for v in o.values()
            if isinstance(v, dict) and "error" in v
        ]
        sections.append(
            (
                f"OPC UA subscriptions at 1 Hz ({result['config']['opcua_seconds']} s window)",
                markdown_table(
                    [
                        "tags",
                        "delivered fraction",
                        "server cycles / window s",
                        "server's slowest 1 s cycle, s",
                        "p50 lag s",
                        "p99 lag s",
                        "p99 lag 1st → 2nd half",
                        "client CPU (cores)",
                        "setup s",
                        "reconnects",
                    ],
                    orows,
                )
                + f"\n\nPeak RSS of the client process over all tag counts: {_fmt(o.get('peak_rss_mb'))} MiB.",
            )
        )
    layout = result["parts"].get("postgres", {}).get("layout", "rows")
    pg_method = PG_METHOD[layout].format(**result["config"])
    sections.append(("How it is measured", METHOD.format(pg_method=pg_method, **result["config"])))
    return page("Ingest benchmark", sections, result)
