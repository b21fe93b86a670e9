"""The `axline` command."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import sys
from pathlib import Path

from axline import i18n
from axline.shutdown import wait_for_stop as _wait_for_signal

# `axline bench NAME` -> module with add_arguments(parser) and run(args)
BENCHES = {
    "skab": ("axline.bench.skab", "equipment anomaly detection on SKAB (outliers and changepoints)"),
    "cmapss": ("axline.bench.cmapss", "remaining useful life on NASA C-MAPSS FD001"),
    "cwru": ("axline.bench.cwru", "bearing fault detection and diagnosis on CWRU"),
    "inspect": ("axline.bench.inspect", "visual inspection on magnetic tile"),
    "vfactory": ("axline.bench.vfactory", "the live monitors on the virtual factory against its ground truth"),
    "ingest": ("axline.bench.ingest", "ingest throughput: embedded and PostgreSQL historians, MQTT, OPC UA"),
    "alarms": ("axline.bench.alarms", "alarm budget of the default detector on drifting streams"),
    "faults": ("axline.bench.faults", "the data path under faults: disk full, poison, hung peers, kill -9, bit rot"),
    "ui": ("axline.bench.ui", "history explorer draw time on a year of data, shift report render time"),
    "knowhow": ("axline.bench.knowhow", "case search in Korean and English, recurrence on the virtual factory, masking"),
    "tep": ("axline.bench.tep", "setpoint optimisation on the Tennessee Eastman process, against Optuna TPE"),
    "tep_frontier": ("axline.bench.tep_frontier", "how low the Tennessee Eastman protocol lets the cost go: a fine scan"),
    "furnace": ("axline.bench.furnace", "the approval loop on the virtual furnace: gas per good part, held-out seeds"),
}


def _optional(module: str):
    try:
        return importlib.import_module(module)
    except ImportError as e:
        if e.name and (e.name == module or module.startswith(e.name + ".")):
            return None  # that part of axline is not in this build
        raise


def _module_command(sub, name: str, help_text: str, module, add: str = "add_arguments",
                    run: str = "run") -> argparse.ArgumentParser:
    """Command ``name`` whose options and action come from ``module`` (its functions ``add`` and ``run``)."""
    s = sub.add_parser(name, help=help_text)
    getattr(module, add)(s)
    s.set_defaults(func_run=getattr(module, run))
    return s


def build_parser() -> argparse.ArgumentParser:
    """The ``axline`` argument parser with every command."""
    from axline import __version__

    p = argparse.ArgumentParser(prog="axline", description="On-premise AI kit for small and midsize factories.")
    p.add_argument("--version", action="version", version=f"axline {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    s = sub.add_parser("init", help="write a commented example plant file")
    s.add_argument("path", nargs="?", default="plant.yaml")
    s.add_argument("--force", action="store_true", help="overwrite an existing file")

    s = sub.add_parser("check", help="validate a plant file and print what it describes")
    s.add_argument("config", help="plant file (YAML)")

    s = sub.add_parser("serve", help="collect, store, analyse and show a plant described by a plant file")
    s.add_argument("--config", "-c", required=True, help="plant file (YAML)")
    _web_args(s)
    from axline.opcua_publish import add_arguments as _publish_args

    _publish_args(s)

    s = sub.add_parser("edge", help="collect one line and forward it to a central MQTT broker (store-and-forward)")
    s.add_argument("--config", "-c", required=True, help="plant file (YAML) of this line")
    s.add_argument("--broker", required=True, help="central broker, mqtts://host:8883 (TLS) or mqtt://host:1883")
    s.add_argument("--broker-ca", default=None, help="CA certificate of the central broker (mqtts)")
    s.add_argument("--broker-credentials", default=None, metavar="FILE",
                   help="this edge's broker user and password (two lines); or env AXLINE_BROKER_USERNAME and "
                        "AXLINE_BROKER_PASSWORD")
    s.add_argument("--broker-plain-credentials", action="store_true",
                   help="send the broker credentials without TLS to a broker on another machine (not recommended)")
    s.add_argument("--spool-mb", type=float, default=1024.0, help="disk kept for readings while the broker is away")
    s.add_argument("--no-web", action="store_true", help="no local dashboard")
    _web_args(s)

    s = sub.add_parser("demo", help="run everything on the built-in virtual factory")
    _web_args(s)
    s.add_argument("--speed", type=float, default=20.0, help="simulated seconds per wall-clock second (default 20)")
    s.add_argument("--seed", type=int, default=1, help="seed of the virtual factory (default 1)")
    s.add_argument("--headless", action="store_true", help="no browser; stop after --duration and write --report")
    s.add_argument("--duration", type=float, default=None, help="wall-clock seconds to run (default: until Ctrl-C)")
    s.add_argument("--report", default=None, help="write a JSON report here when the demo ends")
    s.add_argument("--data-dir", default=None, help="where the demo keeps its data (default: a new temporary folder)")
    s.add_argument("--warmup-s", type=float, default=300.0,
                   help="fault-free simulated seconds before faults are injected (default 300)")
    s.add_argument("--no-inspect", action="store_true", help="run the vision station without the inspector")
    s.add_argument("--part", default="flange", choices=("flange", "shaft"),
                   help="what the camera sees: a flange (default, one 256 x 256 image) or a long shaft "
                        "(1,024 x 256, inspected in five tiles)")
    s.add_argument("--until-simulated-s", type=float, default=None,
                   help="stop once this many simulated seconds were collected (--duration stays the upper bound)")
    s.add_argument("--until-inspected", type=int, default=None,
                   help="and once the vision station judged this many parts (--duration stays the upper bound)")

    s = sub.add_parser("sim", help="serve the virtual factory over OPC UA (a stand-in PLC for tests and demos)")
    s.add_argument("--endpoint", default="opc.tcp://127.0.0.1:4840/axline/sim")
    s.add_argument("--speed", type=float, default=1.0, help="simulated seconds per wall-clock second")
    s.add_argument("--seed", type=int, default=1)
    s.add_argument("--faults", default="auto", choices=("auto", "none"))
    s.add_argument("--warmup-s", type=float, default=600.0, help="fault-free simulated seconds at the start")
    s.add_argument("--start", default=None, help="simulated start time, ISO 8601 (default: now)")
    s.add_argument("--camera-dir", default=None, help="write part images into this folder")
    s.add_argument("--truth", default=None, help="write ground truth (faults, parts) as JSON lines here")
    s.add_argument("--duration", type=float, default=None, help="wall-clock seconds to run (default: until stopped)")
    s.add_argument("--vision-wait-s", type=float, default=0.0,
                   help="hold each part at the diverter until the vision system answers (0: do not wait)")
    s.add_argument("--no-auto-divert", action="store_true", help="no built-in legacy reject check")
    s.add_argument("--part", default="flange", choices=("flange", "shaft"),
                   help="what the camera sees: a flange (square image) or a long shaft (1024 x 256)")

    s = sub.add_parser("certs", help="certificates: OPC UA (DIR ...), or the dashboard's TLS (web DIR --host NAME)")
    s.add_argument("args", nargs=argparse.REMAINDER, help="DIR [--uri URI --name NAME --days N ...] | web DIR ...")
    s.set_defaults(func_run=_certs)

    from axline.app import cli_security

    cli_security.add_parsers(sub)

    from axline import discover
    from axline.history import sql_views

    _module_command(sub, "discover", "list what a machine offers; write a draft plant file and an inventory", discover)
    _module_command(sub, "views", "create read-only SQL views (Grafana, Power BI) on a PostgreSQL historian",
                    sql_views)

    s = sub.add_parser("report", help="reports from the historian and the event log")
    rsub = s.add_subparsers(dest="report_kind", metavar="KIND")
    from axline.report import value as value_report

    _module_command(rsub, "value", "proof of value: PQCD before vs after, money and payback (.html or .pdf)",
                    value_report, run="run_cli")

    s = sub.add_parser("bench", help="run a benchmark and write its table to benchmarks/")
    bsub = s.add_subparsers(dest="bench", metavar="NAME")
    for name, (module, help_text) in BENCHES.items():
        mod = _optional(module)
        if mod is None:
            continue
        b = bsub.add_parser(name, help=help_text)
        mod.add_arguments(b)
        b.set_defaults(bench_run=mod.run)

    s = sub.add_parser("historian", help="historian tools: verify an embedded historian's records")
    hsub = s.add_subparsers(dest="historian_cmd", metavar="CMD")
    from axline.historian import verify as hverify

    _module_command(hsub, "verify", "check every record's CRC; report damage by file and offset", hverify)

    det = _optional("axline.monitor.cli_detect")
    if det is not None:
        _module_command(sub, "detect", "try the anomaly detectors on any CSV export", det)
    kh = _optional("axline.knowhow.cli")
    if kh is not None:
        _module_command(sub, "knowhow", "veterans' know-how: import, search, export or delete cases", kh)

    ins = _optional("axline.inspect.cli")
    train = sub.add_parser("train", help="train a model")
    tsub = train.add_subparsers(dest="what", metavar="WHAT")
    from axline.monitor import live

    _module_command(tsub, "monitor", "learn an asset's normal behaviour from the historian", live,
                    add="add_train_arguments", run="run_train")
    if ins is not None:
        _module_command(tsub, "inspector", "learn visual inspection from images of good parts", ins,
                        add="add_train_arguments", run="run_train")
        _module_command(sub, "inspect", "inspect images with a trained model", ins,
                        add="add_inspect_arguments", run="run_inspect")
    return p


def _web_args(s: argparse.ArgumentParser) -> None:
    from axline.app.cli_security import web_args

    web_args(s)


def _certs(args) -> int:
    if args.args and args.args[0] == "web":
        from axline.app.tls import main as web_certs

        return web_certs(args.args[1:])
    return __import__("axline.connect.certs", fromlist=["main"]).main(args.args)


def main(argv: list[str] | None = None) -> int:
    """Run the ``axline`` command line with ``argv``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.verbose:
        logging.getLogger("asyncua").setLevel(logging.CRITICAL)
    cmd = args.command
    if cmd is None:
        parser.print_help()
        return 2
    try:
        if cmd == "init":
            return _init(args)
        if cmd == "check":
            return _check(args)
        if cmd in ("serve", "edge"):
            return _serve(args)
        if cmd == "demo":
            from axline.demo import run_demo

            return asyncio.run(run_demo(args))
        if cmd == "sim":
            return _sim(args)
        if cmd == "bench":
            if not getattr(args, "bench_run", None):
                parser.parse_args(["bench", "--help"])
            return int(args.bench_run(args) or 0)
        if getattr(args, "func_run", None):
            return int(args.func_run(args) or 0)
        parser.parse_args([cmd, "--help"])
        return 2
    except KeyboardInterrupt:
        return 130
    except (ValueError, FileNotFoundError, PermissionError, ConnectionError) as e:
        own = getattr(e, "key", None)  # an error from the catalog is told in the terminal's language
        told = i18n.say(own, **getattr(e, "params", {})) if isinstance(own, str) and i18n.has(own) else e
        print(i18n.say("cli.failed", error=told), file=sys.stderr)
        return 2


def _init(args) -> int:
    from axline.plant import example_plant_text

    path = Path(args.path)
    if path.exists() and not args.force:
        print(i18n.say("cli.file_exists", path=path), file=sys.stderr)
        return 1
    path.write_text(example_plant_text(), encoding="utf-8")
    print(i18n.say("cli.plant_written", path=path))
    return 0


def _check(args) -> int:
    from axline.plant import load_plant

    plant = load_plant(args.config)
    tags = plant.all_tags()
    print(i18n.say("cli.plant_ok", file=args.config, site=plant.site, area=plant.area, lines=len(plant.lines),
                   assets=len(plant.assets()), tags=len(tags), connectors=len(plant.connectors),
                   cameras=len(plant.cameras)))
    for ln in plant.lines:
        print(i18n.say("cli.plant_line", path=ln.path, takt=f"{ln.takt_s:g}"))
        for a in ln.assets:
            print(f"    {a.cell}/{a.id} ({a.kind}): {', '.join(t.signal for t in a.tags)}")
    return 0


def _serve(args) -> int:
    from axline.app import cli_security
    from axline.plant import load_plant
    from axline.service import Service

    plant = load_plant(args.config)
    web = not getattr(args, "no_web", False)
    base = Path(plant.base_dir)
    ssl_context = cli_security.ssl_context_from_args(args, base) if web else None
    if web:
        cli_security.ensure_first_admin(args, base, args.host)

    async def main_async() -> int:
        svc = Service(plant, host=args.host, port=args.port, security=cli_security.settings_from_args(args),
                      ssl_context=ssl_context)
        await svc.start(web=web)
        if getattr(args, "broker", None):
            from axline.edge import attach_uplink, broker_credentials

            attach_uplink(svc, args.broker, args.spool_mb, credentials=broker_credentials(args.broker_credentials),
                          ca_file=args.broker_ca, allow_plain_credentials=args.broker_plain_credentials)
            lang = i18n.terminal_language()
            print(i18n.say("cli.edge_forwarding", plant=plant.name.get(lang) or plant.name["en"], broker=args.broker),
                  flush=True)
        if web:
            lang = i18n.terminal_language()
            print(i18n.say("cli.serving", plant=plant.name.get(lang) or plant.name["en"], url=svc.url), flush=True)
        from axline.opcua_publish import start_from_args

        publisher = await start_from_args(svc, args)
        await _wait_for_signal()
        if publisher is not None:
            await publisher.stop()
        await svc.stop()
        return 0

    return asyncio.run(main_async())


def _sim(args) -> int:
    from axline.sim.line import VirtualLine
    from axline.sim.server import SimServer, faults_from_option, parse_start

    line = VirtualLine(seed=args.seed, start_ns=parse_start(args.start), faults=faults_from_option(args.faults),
                       warmup_s=args.warmup_s, render_images=args.camera_dir is not None,
                       vision_wait_s=args.vision_wait_s, auto_divert=not args.no_auto_divert, part=args.part)
    srv = SimServer(line, endpoint=args.endpoint, speed=args.speed, camera_dir=args.camera_dir,
                    truth_file=args.truth)

    async def main_async() -> int:
        task = asyncio.create_task(srv.run(args.duration))
        await srv.ready.wait()
        print(i18n.say("cli.sim_running", tags=len(line.tags), endpoint=args.endpoint, speed=f"{args.speed:g}"),
              flush=True)
        waiter = asyncio.create_task(_wait_for_signal())
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        srv.stop()
        waiter.cancel()
        await task
        return 0

    return asyncio.run(main_async())


if __name__ == "__main__":
    sys.exit(main())
