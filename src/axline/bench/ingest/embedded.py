"""The embedded historian's write rate, and the synthetic batches every historian part writes."""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from typing import Any

import numpy as np

from axline.batch import Batch

NS = 1_000_000_000
T0 = 1_763_000_000 * NS


def make_batches(n_points: int, batch: int, tags: int, seed: int = 0) -> list[Batch]:
    """``n_points`` readings in batches of ``batch``: each batch has every tag at successive 1 ms steps."""
    rng = np.random.default_rng(seed)
    paths = [f"bench/plant1/line{j % 4}/cell{j % 10}/asset{j}/signal" for j in range(tags)]
    per_tag = max(1, batch // tags)
    idx = np.tile(np.arange(tags, dtype=np.int32), per_tag)[:batch]
    step = np.repeat(np.arange(per_tag, dtype=np.int64), tags)[:batch]
    out = []
    for k in range(max(1, n_points // batch)):
        ts = T0 + (k * per_tag + step) * 1_000_000
        out.append(Batch(paths, idx, ts, rng.normal(size=batch), np.zeros(batch, np.uint8)))
    return out


# -- parts (each runs in a child process) ---------------------------------------------------------
def part_embedded(args: argparse.Namespace) -> dict[str, Any]:
    """Ingest rate and query times of the embedded historian."""
    from axline.historian.embedded import EmbeddedHistorian

    batches = make_batches(args.points, args.batch, args.tags)
    n = sum(len(b) for b in batches)
    folder = tempfile.mkdtemp(prefix="axline-bench-", dir=args.workdir)
    try:
        h = EmbeddedHistorian(os.path.join(folder, "h"), fsync="interval")
        t = time.perf_counter()
        for b in batches:
            h.append(b)
        h.flush()
        el = time.perf_counter() - t
        assert h.count() == n
        h.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {"points": n, "seconds": el, "embedded_points_per_s": n / el}
