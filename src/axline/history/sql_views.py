"""Read-only SQL views on the PostgreSQL historian, for Grafana, Power BI, Excel (ODBC) and SQL users.

``axline views --dsn postgresql://... [--schema axline] [--grant grafana]`` creates them (idempotent,
``CREATE OR REPLACE VIEW``) in the historian's schema and, with ``--grant``, lets an existing
role read the views and nothing else that matters (no write, no access to the raw tables).

============== ==========================================================================
view           columns
============== ==========================================================================
v_tags         tag_id, path, site, area, line, cell, asset, signal
v_readings     time (timestamptz), path, value, quality, good (quality = 0), ts_ns
v_latest       path, time, value, quality
v_events       id, time, end_time, kind, source, code, severity, message, ack, data (jsonb)
v_alarms       id, time, end_time, source, code, priority, state (active, acknowledged,
               returned, shelved, cleared), ack_user, ack_time, ack_note, shelved_until,
               shelve_reason, duration_s
v_alarm_hourly hour, line, alarms (per hour and line, for the ISA-18.2 rate)
v_shift_kpi    report_id, line, shift, shift_start, shift_end, oee, availability,
               performance, quality, parts_total, parts_good, parts_rejected, alarms, open_items
============== ==========================================================================

``state`` here is worked out from the stored event at query time; suppression by design needs
the asset's state history and is only in axline's own API.
"""

from __future__ import annotations

import re
from typing import Any

from axline import i18n

VIEW_NAMES = ("v_tags", "v_readings", "v_latest", "v_events", "v_alarms", "v_alarm_hourly", "v_shift_kpi")
_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,47}$")

_VIEWS = {
    "v_tags": """
SELECT t.id AS tag_id, t.path,
       split_part(t.path, '/', 1) AS site, split_part(t.path, '/', 2) AS area,
       split_part(t.path, '/', 3) AS line, split_part(t.path, '/', 4) AS cell,
       split_part(t.path, '/', 5) AS asset,
       regexp_replace(t.path, '^.*/', '') AS signal
FROM {s}.tags t""",
    "v_readings": """
SELECT to_timestamp(r.ts / 1e9) AS time, t.path, r.value, r.quality, (r.quality = 0) AS good, r.ts AS ts_ns
FROM {s}.readings r JOIN {s}.tags t ON t.id = r.tag_id""",
    "v_latest": """
SELECT t.path, to_timestamp(l.ts / 1e9) AS time, l.value, l.quality
FROM {s}.latest l JOIN {s}.tags t ON t.id = l.tag_id""",
    "v_events": """
SELECT e.id, to_timestamp(e.ts / 1e9) AS time, to_timestamp(e.end_ts / 1e9) AS end_time, e.kind, e.source,
       e.code, e.severity, e.message, e.ack, e.data
FROM {s}.events e""",
    "v_alarms": """
SELECT e.id, to_timestamp(e.ts / 1e9) AS time, to_timestamp(e.end_ts / 1e9) AS end_time, e.source, e.code,
       COALESCE(NULLIF(e.data->>'priority', ''),
                CASE WHEN e.code LIKE 'spc.%' THEN 'low' WHEN e.severity = 'alarm' THEN 'high'
                     WHEN e.severity = 'warning' THEN 'medium' ELSE 'low' END) AS priority,
       CASE WHEN (e.data->'shelve'->>'until') IS NOT NULL AND (e.data->'shelve'->>'cleared_ts') IS NULL
                 AND (e.data->'shelve'->>'until')::numeric > extract(epoch FROM now()) * 1e9 THEN 'shelved'
            WHEN e.end_ts IS NULL AND e.ack = 'acknowledged' THEN 'acknowledged'
            WHEN e.end_ts IS NULL THEN 'active'
            WHEN e.ack = 'acknowledged' THEN 'cleared'
            ELSE 'returned' END AS state,
       e.data->'ack'->>'user' AS ack_user,
       to_timestamp(((e.data->'ack'->>'ts')::numeric) / 1e9) AS ack_time,
       e.data->'ack'->>'note' AS ack_note,
       to_timestamp(((e.data->'shelve'->>'until')::numeric) / 1e9) AS shelved_until,
       e.data->'shelve'->>'reason' AS shelve_reason,
       (COALESCE(e.end_ts, (extract(epoch FROM now()) * 1e9)::bigint) - e.ts) / 1e9 AS duration_s
FROM {s}.events e WHERE e.kind = 'alarm'""",
    "v_alarm_hourly": """
SELECT date_trunc('hour', to_timestamp(e.ts / 1e9)) AS hour, split_part(e.source, '/', 3) AS line,
       count(*) AS alarms
FROM {s}.events e WHERE e.kind = 'alarm'
GROUP BY 1, 2""",
    "v_shift_kpi": """
SELECT e.id AS report_id, e.data->>'line' AS line, e.data->>'shift' AS shift,
       to_timestamp(((e.data->>'from')::numeric) / 1e9) AS shift_start,
       to_timestamp(((e.data->>'to')::numeric) / 1e9) AS shift_end,
       (e.data->'report'->'kpi'->>'oee')::float8 AS oee,
       (e.data->'report'->'kpi'->>'availability')::float8 AS availability,
       (e.data->'report'->'kpi'->>'performance')::float8 AS performance,
       (e.data->'report'->'kpi'->>'quality')::float8 AS quality,
       (e.data->'report'->'kpi'->>'parts_total')::bigint AS parts_total,
       (e.data->'report'->'kpi'->>'parts_good')::bigint AS parts_good,
       (e.data->'report'->'kpi'->>'parts_rejected')::bigint AS parts_rejected,
       (e.data->'report'->'alarms'->>'total')::int AS alarms,
       (e.data->'report'->>'open_total')::int AS open_items
FROM {s}.events e WHERE e.kind = 'report' AND e.code = 'report.shift'""",
}


def _check_ident(name: str, what: str) -> str:
    if not isinstance(name, str) or not _IDENT.match(name):
        raise ValueError(f"{what} {name!r} is not valid: use 1-48 lowercase letters, digits or '_'")
    return name


def view_statements(schema: str = "axline") -> list[str]:
    """The ``CREATE OR REPLACE VIEW`` statements for ``schema``."""
    s = '"' + _check_ident(schema, "schema") + '"'
    return [f'CREATE OR REPLACE VIEW {s}."{name}" AS {_VIEWS[name].strip().format(s=s)}' for name in VIEW_NAMES]


def grant_statements(schema: str, role: str) -> list[str]:
    """Statements that let ``role`` read the views (and only the views) of ``schema``."""
    s = '"' + _check_ident(schema, "schema") + '"'
    r = '"' + _check_ident(role, "role") + '"'
    out = [f"GRANT USAGE ON SCHEMA {s} TO {r}"]
    out += [f'GRANT SELECT ON {s}."{v}" TO {r}' for v in VIEW_NAMES]
    return out


def install(conn: Any, schema: str = "axline", grant: str | None = None) -> list[str]:
    """Create the views (and grants) on an open psycopg connection; returns the statements run."""
    stmts = view_statements(schema) + (grant_statements(schema, grant) if grant else [])
    with conn.transaction():
        for st in stmts:
            conn.execute(st)
    return stmts


def grafana_dashboard(schema: str = "axline") -> dict[str, Any]:
    """The provisioned Grafana dashboard (``axline/data/grafana_dashboard.json``) for ``schema``."""
    import json
    from importlib.resources import files

    text = files("axline.data").joinpath("grafana_dashboard.json").read_text(encoding="utf-8")
    if schema != "axline":
        text = text.replace("axline.v_", f"{_check_ident(schema, 'schema')}.v_")
    return json.loads(text)


def add_arguments(parser: Any) -> None:
    """Add the options of ``axline history sql-views`` to ``parser``."""
    parser.add_argument("--dsn", help="the PostgreSQL historian, e.g. postgresql://axline@central/axline "
                                      "(the password from PGPASSWORD or ~/.pgpass, never on the command line)")
    parser.add_argument("--schema", default="axline", help="the historian's schema (default axline)")
    parser.add_argument("--grant", default=None, help="an existing role that may read the views (e.g. grafana)")
    parser.add_argument("--print", action="store_true", help="print the SQL instead of running it")
    parser.add_argument("--grafana", default=None, metavar="FILE",
                        help="also write the Grafana dashboard for this schema to FILE (JSON)")


_URL_PASSWORD = re.compile(r"^[a-z][a-z0-9+.-]*://[^/?#@]*:[^/?#@]*@", re.I)  # user:password@ (even empty)
_QUERY_PASSWORD = re.compile(r"[?&]password=", re.I)  # postgresql://host/db?password=...
_KEYWORD_PASSWORD = re.compile(r"(?:^|\s)password\s*=", re.I)  # host=... password=...


def dsn_has_password(dsn: str) -> bool:
    """Whether a PostgreSQL connection string carries a password, in any of its forms: in the URL's
    user part, as a ``password`` query parameter, or as a ``password=`` keyword."""
    if "://" in dsn and (_URL_PASSWORD.search(dsn) or _QUERY_PASSWORD.search(dsn)):
        return True
    if "://" not in dsn and _KEYWORD_PASSWORD.search(dsn):
        return True
    try:  # what libpq itself makes of it, where psycopg is installed
        from psycopg.conninfo import conninfo_to_dict
    except ImportError:
        return False
    try:
        return "password" in conninfo_to_dict(dsn)
    except Exception:  # noqa: BLE001 - a DSN libpq cannot parse fails later with libpq's own message
        return False


def run(args: Any) -> int:
    """``axline history sql-views``: create the reporting views (or print their SQL, or a Grafana dashboard)."""
    if args.grafana:
        import json
        from pathlib import Path

        Path(args.grafana).write_text(json.dumps(grafana_dashboard(args.schema), indent=2, ensure_ascii=False) + "\n",
                                      encoding="utf-8")
        print(i18n.say("cli.grafana_written", file=args.grafana))
        if not args.dsn and not args.print:
            return 0
    if args.print:
        stmts = view_statements(args.schema) + (grant_statements(args.schema, args.grant) if args.grant else [])
        print(";\n\n".join(stmts) + ";")
        return 0
    if not args.dsn:
        raise SystemExit(i18n.pair("sqlviews.no_dsn"))
    if dsn_has_password(args.dsn):
        raise SystemExit(i18n.pair("sqlviews.dsn_password"))
    import psycopg

    with psycopg.connect(args.dsn) as conn:
        install(conn, args.schema, args.grant)
    print(i18n.say("cli.views_created_grant", n=len(VIEW_NAMES), schema=args.schema, role=args.grant) if args.grant
          else i18n.say("cli.views_created", n=len(VIEW_NAMES), schema=args.schema))
    return 0
