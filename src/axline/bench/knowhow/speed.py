"""Search speed and memory as the case base grows."""

from __future__ import annotations

import os
import random
import tempfile
import time
from typing import Any

from axline.bench.knowhow.dev import _queries, _rss_mb, load_dev


# -- (d) speed ------------------------------------------------------------------------------------------
def run_speed(n_cases: int, seed: int = 7) -> dict[str, Any]:
    """Search latency over ``n_cases`` generated cases."""
    from axline.knowhow.base import KnowHow

    dev = load_dev()
    rng = random.Random(seed)
    rows = []
    for i in range(n_cases):
        a, b, c = rng.choice(dev), rng.choice(dev), rng.choice(dev)
        rows.append({"id": f"s{i:05d}", "title": a["title"], "symptom": a["symptom"], "cause": b["cause"],
                     "action": c["action"], "asset": f"line{rng.randint(1, 9)}/{a['asset']}",
                     "language": a["language"], "author": f"tech{rng.randint(1, 40)}"})
    queries = _queries(dev)
    from axline.knowhow.embed import Embedder

    Embedder._get()
    with tempfile.TemporaryDirectory() as tmp:
        kh = KnowHow(os.path.join(tmp, "speed"))
        rss0 = _rss_mb()
        t0 = time.perf_counter()
        kh.import_rows(rows, "bench")
        import_s = time.perf_counter() - t0
        index_mb = _rss_mb() - rss0
        t0 = time.perf_counter()
        kh.close()
        kh = KnowHow(os.path.join(tmp, "speed"))
        reopen_s = time.perf_counter() - t0
        lat = []
        for q in queries * 2:
            t0 = time.perf_counter()
            kh.index.search(q["text"], top=5)
            lat.append((time.perf_counter() - t0) * 1000)
        lat = lat[len(queries):]  # the first pass warms caches
        rss = _rss_mb()
        kh.close()
    lat.sort()
    return {"cases": n_cases, "import_s": round(import_s, 1), "import_cases_per_s": round(n_cases / import_s, 1),
            "reopen_s": round(reopen_s, 2), "queries": len(lat),
            "p50_ms": round(lat[len(lat) // 2], 2), "p95_ms": round(lat[int(len(lat) * 0.95) - 1], 2),
            "max_ms": round(lat[-1], 2), "rss_mb_process": round(rss, 1), "index_import_rss_growth_mb": round(index_mb, 1)}
