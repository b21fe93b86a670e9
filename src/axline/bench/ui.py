"""UI benchmark: how fast the history explorer draws a 30-day, 10-tag view from the embedded store
holding a year of data, and how fast a shift handover report is made.

- A temporary embedded historian is filled with ``--days`` days (default 365) of ``--tags`` analog
  tags (default 10) at one reading every ``--period-s`` seconds, plus, for the last shift, a
  line's state and part counters every second, a gauged bore per part and alarm events.
- ``explorer_30d_10tags_s``: the app serves it; headless Chromium opens ``/history`` on the last
  30 days of all tags; the page's own timer runs from the start of its requests to the end of
  drawing every chart (the figure is the median of ``--repeats`` fresh views, each on a period
  shifted by a few minutes so no cache helps). ``series_api_30d_10tags_s`` is the same request
  to ``/api/history/series`` alone, timed by the client.
- ``explorer_30d_10tags_dense_s``: the same view on a second, denser store (31 days at one reading
  per ``--dense-period-s``, default 1 s): the explorer reads raw readings, so this shows how the
  time grows with the readings in the window.
- ``shift_report_s``: building the report of the last 8-hour shift from the historian and
  rendering it to HTML and to PDF (median of ``--repeats``).

``axline bench ui --json benchmarks/ui.json --table benchmarks/ui.md`` (``make bench``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import tempfile
import threading
import time
import urllib.request
from typing import Any

import numpy as np

from axline.batch import Batch
from axline.bench.common import bench_header, markdown_table, page, peak_rss_mb, publish

NS = 1_000_000_000
DAY = 86_400 * NS
SITE = "bench/plant"
LINE = f"{SITE}/line1"
CNC = f"{LINE}/cnc/cnc1"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def _plant(n_tags: int) -> dict[str, Any]:
    tags = [{"path": f"{CNC}/signal{i:02d}", "signal": f"signal{i:02d}", "unit": "degC", "range": [0, 200],
             "period_s": 10.0, "writable": False, "kind": "analog", "trend": True,
             "name": {"en": f"Signal {i}", "ko": f"신호 {i}"}} for i in range(n_tags)]
    extra = [{"path": f"{CNC}/{s}", "signal": s, "unit": u, "range": [0, 1e12], "period_s": 1.0, "writable": False,
              "kind": k, "trend": False, "name": {"en": s, "ko": s}}
             for s, u, k in (("state", "", "state"), ("parts_total", "count", "counter"),
                             ("parts_good", "count", "counter"), ("parts_rejected", "count", "counter"))]
    extra.append({"path": f"{CNC}/bore", "signal": "bore", "unit": "mm", "range": [24.8, 25.2], "period_s": 1.0,
                  "writable": False, "kind": "analog", "trend": False, "name": {"en": "Bore", "ko": "보어"},
                  "spec": {"lsl": 24.98, "usl": 25.02, "target": 25.0}})
    return {"site": "bench", "area": "plant", "name": {"en": "Bench plant", "ko": "벤치 공장"}, "timezone": "Asia/Seoul",
            "language": "ko",
            "lines": [{"id": "line1", "path": LINE, "name": {"en": "Line 1", "ko": "1라인"}, "takt_s": 12.0,
                       "ideal_cycle_s": 10.0,
                       "shifts": [{"name": "A", "start": "06:00", "hours": 8}, {"name": "B", "start": "14:00", "hours": 8},
                                  {"name": "C", "start": "22:00", "hours": 8}],
                       "kpi": {"state": f"{CNC}/state", "parts_total": f"{CNC}/parts_total",
                               "parts_good": f"{CNC}/parts_good", "parts_rejected": f"{CNC}/parts_rejected"},
                       "assets": [{"path": CNC, "id": "cnc1", "cell": "cnc", "kind": "cnc",
                                   "name": {"en": "CNC", "ko": "CNC"}, "tags": tags + extra}]}],
            "cameras": []}


class BenchService:
    """The least a ServiceView needs: a historian, a plant and a clock."""

    def __init__(self, historian: Any, plant: dict[str, Any], now_ns: int) -> None:
        self.historian = historian
        self.plant = plant
        self._now = now_ns

    def plant_json(self) -> dict:
        """The benchmark's plant."""
        return self.plant

    def status_json(self) -> dict:
        """No station states (the benchmark only reads history)."""
        return {"lines": {}}

    def kpi_json(self) -> dict:
        """No KPIs (the benchmark only reads history)."""
        return {"lines": {}}

    def now_ns(self) -> int:
        """The end of the generated history."""
        return self._now

    def health_json(self) -> dict:
        """Always healthy."""
        return {"ok": True}

    def subscribe(self) -> asyncio.Queue:
        """A queue that never gets live updates."""
        return asyncio.Queue(maxsize=1)

    def unsubscribe(self, q: asyncio.Queue) -> None:
        """Nothing to stop."""
        pass

    async def feedback(self, event_id: int, verdict: str, user: str) -> dict:
        """No events to review: always ``KeyError``."""
        raise KeyError(event_id)


def fill(historian: Any, plant: dict[str, Any], days: int, period_s: float, end: int, seed: int = 0) -> dict[str, Any]:
    """A year (``days``) of the analog tags, and the last shift's line signals and alarms."""
    from axline.historian.base import Event

    rng = np.random.default_rng(seed)
    tags = [t["path"] for t in plant["lines"][0]["assets"][0]["tags"] if t["path"].split("/")[-1].startswith("signal")]
    step = int(period_s * NS)
    start = end - days * DAY
    n_day = DAY // step
    t0 = time.perf_counter()
    total = 0
    for d in range(days):
        ts = start + d * DAY + np.arange(n_day, dtype=np.int64) * step
        k = len(tags)
        phase = np.arange(k)[:, None]
        base = 100 + 30 * np.sin(2 * np.pi * (ts[None, :] / DAY) + phase) + rng.normal(0, 2, (k, len(ts)))
        spikes = rng.random((k, len(ts))) < 2e-5  # rare short peaks the decimation must keep
        base[spikes] += 60
        idx = np.repeat(np.arange(k, dtype=np.int32), len(ts))
        historian.append(Batch(tags, idx, np.tile(ts, k), base.ravel(), np.zeros(k * len(ts), dtype=np.uint8)))
        total += k * len(ts)
    # the last shift: state and counters every second, a bore per 10 s part, alarms
    s0 = end - 8 * 3600 * NS
    ts = s0 + np.arange(8 * 3600, dtype=np.int64) * NS
    sec = np.arange(len(ts))
    state = np.where((sec % 3600) < 120, 4.0, np.where((sec % 1800) < 30, 5.0, 1.0))
    parts = (sec // 10).astype(float)
    rejected = (sec // 400).astype(float)
    bore = 25.0 + rng.normal(0, 0.004, len(ts) // 10).repeat(10)[: len(ts)] - 0.00001 * sec
    rows_paths = [f"{CNC}/state", f"{CNC}/parts_total", f"{CNC}/parts_good", f"{CNC}/parts_rejected", f"{CNC}/bore"]
    cols = [state, parts, parts - rejected, rejected, bore]
    for p, c in zip(rows_paths, cols, strict=True):
        historian.append(Batch([p], np.zeros(len(ts), dtype=np.int32), ts, c, np.zeros(len(ts), dtype=np.uint8)))
        total += len(ts)
    for i in range(200):
        t = int(s0 + rng.integers(0, 8 * 3600) * NS)
        eid = historian.add_event(Event(ts=t, kind="alarm", source=CNC, code="anomaly.sensor", severity="alarm",
                                        message="bench alarm", data={"top": "signal01", "score": 6.0}))
        if i % 2:
            historian.update_event(eid, end_ts=t + 60 * NS, ack="acknowledged",
                                   data={"ack": {"user": "kim", "ts": t + 30 * NS, "note": "점검 완료"}})
    historian.flush()
    return {"readings": total, "fill_s": time.perf_counter() - t0, "tags": tags}


class _AppThread:
    def __init__(self, service: Any) -> None:
        self.service = service
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.port = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> _AppThread:
        self.thread.start()
        if not self.ready.wait(30) or self.error:
            raise RuntimeError(f"the app did not start: {self.error!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(15)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(15)

    def _run(self) -> None:
        from axline.app.server import create_app, start_site

        asyncio.set_event_loop(self.loop)
        try:
            self.runner, self.port = self.loop.run_until_complete(
                start_site(create_app(self.service), "127.0.0.1", 0))
        except BaseException as e:  # reported to the caller
            self.error = e
            self.ready.set()
            return
        self.ready.set()
        self.loop.run_forever()


def _chromium() -> str:
    exe = os.environ.get("AXLINE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe:
        raise SystemExit("error: the explorer is timed in headless Chromium: apt-get install chromium "
                         "(or set AXLINE_CHROMIUM)")
    return exe


def measure_explorer(url: str, tags: list[str], end: int, repeats: int, width: int) -> dict[str, Any]:
    """Time the history explorer in Chromium: draws, API answers and buckets of ``repeats`` views."""
    from playwright.sync_api import sync_playwright

    draws, apis, buckets = [], [], []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=_chromium(), headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": width, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        for r in range(repeats + 1):
            t1 = end - r * 7 * 60 * NS  # a fresh period each time
            t0 = t1 - 30 * DAY
            page.goto(f"{url}/history?tags={','.join(tags)}&from={t0}&to={t1}")
            page.wait_for_function("() => /^\\d+$/.test(document.body.dataset.drawn || '')", timeout=120_000)
            ms = float(page.evaluate("() => document.body.dataset.drawMs"))
            n = page.evaluate("() => document.querySelectorAll('#h-charts canvas').length")
            if n != len(tags):
                raise RuntimeError(f"the explorer drew {n} charts, expected {len(tags)}")
            if r == 0:
                continue  # the first view also warms the browser and the page scripts
            draws.append(ms / 1000)
            step = max(1, -(-(t1 - t0) // max(200, width - 24 - 74)))
            q = f"{url}/api/history/series?tags={','.join(tags)}&from={t0 - NS}&to={t1 - NS}&step={step}"
            a = time.perf_counter()
            with urllib.request.urlopen(q, timeout=120) as resp:
                import json

                body = json.loads(resp.read())
            apis.append(time.perf_counter() - a)
            buckets.append(sum(len(v["t"]) for v in body["tags"].values()))
        browser.close()
    if errors:
        raise RuntimeError(f"the explorer page failed: {errors[0]}")
    return {"draw_s": draws, "api_s": apis, "buckets": buckets}


def measure_report(historian: Any, plant: dict[str, Any], end: int, repeats: int) -> dict[str, Any]:
    """Time building a shift report and rendering it as HTML and PDF, ``repeats`` times."""
    from axline.report.render import to_html, to_pdf
    from axline.report.shift import build_report, shift_window

    name, s0, s1 = shift_window(plant, "line1", end - NS)
    build, html, pdf, total = [], [], [], []
    rep: dict[str, Any] = {}
    for _ in range(repeats):
        a = time.perf_counter()
        rep = build_report(historian, plant, "line1", s0, s1, end, name, "bench")
        b = time.perf_counter()
        h = to_html(rep, "ko")
        c = time.perf_counter()
        p = to_pdf(rep, "ko")
        d = time.perf_counter()
        build.append(b - a)
        html.append(c - b)
        pdf.append(d - c)
        total.append(d - a)
    return {"total_s": total, "build_s": build, "html_s": html, "pdf_s": pdf, "html_bytes": len(h),
            "pdf_bytes": len(p), "alarms": rep["alarms"]["total"], "oee": rep["kpi"]["oee"]}


def run(args: argparse.Namespace) -> int:
    """``axline bench ui``: generate the history, serve the dashboard and time its pages."""
    from axline.historian.embedded import EmbeddedHistorian

    if not 31 <= args.days <= 3660:
        raise SystemExit(f"error: --days must be between 31 and 3660 (a 30-day view needs them), got {args.days}")
    if not 1 <= args.tags <= 50:
        raise SystemExit(f"error: --tags must be between 1 and 50, got {args.tags}")
    if not 0.1 <= args.period_s <= 3600:
        raise SystemExit(f"error: --period-s must be between 0.1 and 3600, got {args.period_s}")
    if args.dense_period_s and not 0.1 <= args.dense_period_s <= 3600:
        raise SystemExit(f"error: --dense-period-s must be 0 or between 0.1 and 3600, got {args.dense_period_s}")
    if not 1 <= args.dense_repeats <= 50:
        raise SystemExit(f"error: --dense-repeats must be between 1 and 50, got {args.dense_repeats}")
    if not 1 <= args.repeats <= 50:
        raise SystemExit(f"error: --repeats must be between 1 and 50, got {args.repeats}")
    result: dict[str, Any] = bench_header("ui")
    t_start = time.perf_counter()
    # end at a shift boundary (14:00 in Seoul = 05:00 UTC) so the last shift (A) is whole
    end = (time.time_ns() // DAY - 1) * DAY + 5 * 3600 * NS
    plant = _plant(args.tags)
    tmp = tempfile.mkdtemp(prefix="axline-bench-ui-", dir=args.tmp)
    try:
        hist = EmbeddedHistorian(os.path.join(tmp, "historian"), fsync="none")
        filled = fill(hist, plant, args.days, args.period_s, end)
        svc = BenchService(hist, plant, end)
        with _AppThread(svc) as app:
            ex = measure_explorer(f"http://127.0.0.1:{app.port}", filled["tags"], end, args.repeats, args.width)
        rp = measure_report(hist, plant, end, args.repeats)
        size_mb = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(tmp) for f in fs) / 2**20
        hist.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    dense = None
    if args.dense_period_s:
        # the same view on a denser store: 31 days at one reading per --dense-period-s
        tmp = tempfile.mkdtemp(prefix="axline-bench-ui-dense-", dir=args.tmp)
        try:
            hist = EmbeddedHistorian(os.path.join(tmp, "historian"), fsync="none")
            dfill = fill(hist, plant, 31, args.dense_period_s, end)
            with _AppThread(BenchService(hist, plant, end)) as app:
                dex = measure_explorer(f"http://127.0.0.1:{app.port}", dfill["tags"], end, args.dense_repeats,
                                       args.width)
            dsize = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(tmp) for f in fs) / 2**20
            hist.close()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        dense = {"days": 31, "period_s": args.dense_period_s, "readings": dfill["readings"], "fill_s": dfill["fill_s"],
                 "size_mib": dsize, "readings_in_30d_view": int(30 * DAY // int(args.dense_period_s * NS)) * args.tags,
                 "draw_s": dex["draw_s"], "api_s": dex["api_s"], "buckets": dex["buckets"]}
    med = statistics.median
    window_readings = int(30 * DAY // int(args.period_s * NS)) * args.tags
    result.update({
        "config": {"days": args.days, "tags": args.tags, "period_s": args.period_s, "repeats": args.repeats,
                   "dense_repeats": args.dense_repeats, "viewport_width": args.width},
        "store": {"readings": filled["readings"], "fill_s": filled["fill_s"], "size_mib": size_mb,
                  "readings_in_30d_view": window_readings},
        "explorer_30d_10tags_s": med(ex["draw_s"]), "explorer_30d_10tags_max_s": max(ex["draw_s"]),
        "explorer_draws_s": ex["draw_s"],
        "series_api_30d_10tags_s": med(ex["api_s"]), "series_api_s": ex["api_s"], "buckets_drawn": ex["buckets"],
        "shift_report_s": med(rp["total_s"]), "shift_report": {k: (med(v) if isinstance(v, list) else v)
                                                                for k, v in rp.items()},
        "shift_report_runs_s": rp["total_s"],
        "dense": dense,
        "explorer_30d_10tags_dense_s": statistics.median(dense["draw_s"]) if dense else None,
        "wall_s": time.perf_counter() - t_start, "peak_rss_mb": peak_rss_mb(),
    })
    if args.tags != 10:
        result["note"] = f"the view has {args.tags} tags, not 10"
    page_text = publish(result, args.json, args.table, render)
    print(page_text)
    return 0


def render(r: dict[str, Any]) -> str:
    """The page of a run, from its JSON alone."""
    med = statistics.median
    cfg, s, rep, dense = r["config"], r["store"], r["shift_report"], r.get("dense")
    rows = [
        ["history explorer: 30-day view of all tags, drawn in the browser (median)",
         f"{r['explorer_30d_10tags_s']:.3f} s", f"max {r['explorer_30d_10tags_max_s']:.3f} s of {cfg['repeats']}"],
        ["the same view's /api/history/series request alone (median)", f"{r['series_api_30d_10tags_s']:.3f} s",
         f"{r['buckets_drawn'][0]} min/max buckets"],
        ["shift report: build + HTML + PDF (median)", f"{r['shift_report_s']:.3f} s",
         f"build {rep['build_s']:.3f} s, HTML {rep['html_s']:.3f} s, PDF {rep['pdf_s']:.3f} s"],
    ]
    if dense:
        rows.insert(2, [f"the same 30-day view on a store at one reading per {dense['period_s']:g} s (median)",
                        f"{med(dense['draw_s']):.3f} s",
                        f"max {max(dense['draw_s']):.3f} s of {len(dense['draw_s'])}; the API request alone "
                        f"{med(dense['api_s']):.3f} s; {dense['readings_in_30d_view']:,} readings read"])
    body = markdown_table(["what", "time", "detail"], rows)
    store = markdown_table(["days", "tags", "period", "readings stored", "readings in the 30-day view", "store size",
                            "fill time"],
                           [[cfg["days"], cfg["tags"], f"{cfg['period_s']:g} s", s["readings"],
                             s["readings_in_30d_view"], f"{s['size_mib']:.0f} MiB", f"{s['fill_s']:.1f} s"]]
                           + ([[dense["days"], cfg["tags"], f"{dense['period_s']:g} s", dense["readings"],
                                dense["readings_in_30d_view"], f"{dense['size_mib']:.0f} MiB",
                                f"{dense['fill_s']:.1f} s"]] if dense else []))
    how = ("The embedded historian is filled with synthetic readings (a daily cycle, noise and rare spikes) and, "
           "for the last 8-hour shift, a line state, part counters, a gauged bore and 200 alarms. Headless Chromium "
           "opens the history explorer on the last 30 days of every tag; the page times its requests and the "
           "drawing of every chart. The embedded store keeps raw readings only (no precomputed roll-ups), so the "
           "view's time grows with the readings in the window: the denser store shows how. The API time is the "
           "same /api/history/series request made alone. The shift report is "
           "built from the historian and rendered to HTML and PDF (Korean, NanumGothic).")
    sections = [("Results", body), ("Store", store), ("How it is measured", how)]
    if r.get("note"):
        sections.insert(1, ("Note", r["note"]))
    return page("UI benchmark: history explorer and shift report", sections, r)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Command-line options of ``axline bench ui``."""
    parser.add_argument("--json", default=None, help="write the results as JSON here")
    parser.add_argument("--table", default=None, help="write the Markdown table here")
    parser.add_argument("--days", type=int, default=365, help="days of history in the store [31, 3660]")
    parser.add_argument("--tags", type=int, default=10, help="analog tags in the store and the view [1, 50]")
    parser.add_argument("--period-s", type=float, default=10.0, help="seconds between readings of a tag")
    parser.add_argument("--repeats", type=int, default=5, help="timed views and reports (median reported)")
    parser.add_argument("--dense-period-s", type=float, default=1.0,
                        help="also time the view on a 31-day store at this period (0: skip)")
    parser.add_argument("--dense-repeats", type=int, default=3, help="timed views on the dense store")
    parser.add_argument("--width", type=int, default=1366, help="browser viewport width (one bucket per pixel)")
    parser.add_argument("--tmp", default=None, help="folder for the temporary store (default: the system's)")


if __name__ == "__main__":  # pragma: no cover
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(p)
    raise SystemExit(run(p.parse_args()))
