"""``axline discover URL``: pick the protocol from the URL, discover, write the draft plant file
and the inventory."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from urllib.parse import urlparse

from axline import i18n
from axline.discover.draft import draft_plant
from axline.discover.inventory import inventory_html, inventory_markdown
from axline.discover.modbus import DEFAULT_MODBUS_SCAN, discover_modbus
from axline.discover.mqtt import discover_mqtt
from axline.discover.opcua import discover_opcua


def add_arguments(p) -> None:
    """The options of ``axline discover`` on an argparse parser."""
    p.add_argument(
        "url",
        help="opcua://host:4840[/path] (or opc.tcp://...), modbus://host:502, "
        "mqtt://[user[:password]@]host:1883",
    )
    p.add_argument("--listen", default="10s", help="how long to watch updates, e.g. 30s or 2m (default 10s)")
    p.add_argument("--out", default="discovery", help="folder for draft-plant.yaml and inventory.md/.html")
    p.add_argument(
        "--scan",
        default=None,
        help=f"Modbus: ranges to scan as <table>:<first>-<last>,... with tables hr, ir, co, di "
        f"(default {DEFAULT_MODBUS_SCAN})",
    )
    p.add_argument("--unit-id", type=int, default=1, help="Modbus: unit (slave) id, 0..255 (default 1)")
    p.add_argument(
        "--topics", default=None, help="MQTT: comma-separated topic filters to subscribe to (default '#')"
    )


def parse_duration(text: str) -> float:
    """``"30s"``, ``"2m"``, ``"500ms"`` -> seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h)?\s*", text)
    if not m:
        raise ValueError(i18n.pair("discover.bad_listen", value=repr(text)))
    scale = {"ms": 0.001, "s": 1, None: 1, "m": 60, "min": 60, "h": 3600}[m.group(2)]
    return float(m.group(1)) * scale


def run(args) -> int:
    """Run ``axline discover`` with parsed arguments; 0 when a draft plant file was written."""
    u = urlparse(args.url)
    listen = parse_duration(args.listen)
    scheme = u.scheme.lower()
    try:
        port = u.port
    except ValueError:
        raise ValueError(i18n.pair("discover.bad_port", url=args.url)) from None
    if scheme in ("opcua", "opc.tcp"):
        endpoint = args.url.replace("opcua://", "opc.tcp://", 1)
        signals, info = asyncio.run(discover_opcua(endpoint, listen))
    elif scheme == "modbus":
        if not u.hostname:
            raise ValueError(i18n.pair("discover.modbus_no_host", url=args.url))
        scan = getattr(args, "scan", None) or DEFAULT_MODBUS_SCAN
        signals, info = asyncio.run(
            discover_modbus(u.hostname, port or 502, scan, getattr(args, "unit_id", 1), listen)
        )
    elif scheme in ("mqtt", "mqtts"):
        if not u.hostname:
            raise ValueError(i18n.pair("discover.mqtt_no_host", url=args.url))
        topics = (getattr(args, "topics", None) or "#").split(",")
        signals, info = discover_mqtt(
            u.hostname,
            port or (8883 if scheme == "mqtts" else 1883),
            topics,
            listen,
            username=u.username,
            password=u.password,
            tls=scheme == "mqtts",
        )
    else:
        raise ValueError(i18n.pair("discover.bad_scheme", url=args.url, scheme=repr(u.scheme)))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "inventory.md").write_text(inventory_markdown(signals, info, i18n.terminal_language()), encoding="utf-8")
    (out / "inventory.html").write_text(inventory_html(signals, info), encoding="utf-8")
    if not signals:
        print(i18n.say("discover.nothing", endpoint=info["endpoint"], out=out))
        return 1
    (out / "draft-plant.yaml").write_text(draft_plant(signals, info), encoding="utf-8")
    machines = len({s.machine for s in signals})
    print(i18n.say("discover.done", signals=len(signals), machines=machines, endpoint=info["endpoint"], out=out))
    return 0
