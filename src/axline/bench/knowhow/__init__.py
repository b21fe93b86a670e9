"""`axline bench knowhow`: finding cases again (across Korean and English, from the signal pattern), masking, operating advice.

(a) **Bilingual development set** (``bench/data/knowhow_dev.jsonl``): 60 cases of plant troubles, half
Korean and half English; 20 of them are near neighbours (the same symptom with a different cause,
in groups of two or three). Each case has two queries written in other words: one in its own
language, one in the other. Each query has exactly one relevant case, its own. The queries were
written with the cases, before any ranking was run. Ranking is always over all 60 cases. The cases
are split by number: the queries of odd-numbered cases (d01, d03, ...) are the *tuning* split, on
which the fusion weights and the confidence map are chosen; the queries of even-numbered cases are
the *test* split, which only scores. Design choices made after the set was written (the
concept-extended embedding, the tuning objective) were judged on the tuning split alone.

(b) **Virtual factory recurrence**: the simulated line runs offline with every fault kind injected
three times (same asset and signal each time). The first alarm of the first occurrence of each kind
is recorded as a case (its symptom snapshot from the window of readings before the alarm) and
approved; the dev set's 60 cases (without snapshots) and every false alarm seen before the last
first occurrence (recorded as nuisance cases) are in the base too. For each later occurrence, its
first alarm asks for suggestions from the signal pattern and asset alone (no text); recall@3 is the
share whose own kind's case is among the top 3.

(c) **Masking of names on MaintNorm** (``../shared/datasets/MaintNorm``, combined split): a token is
sensitive when the corpus marks it ``<sensitive>`` (personnel, contractors, proprietary names). Two
maskers are scored on the test split, each through the product's ``mask_text`` (a token counts as
masked when a masked span covers it): (i) the generic masker axline ships, which holds no words of any
data set (common US census first names from the ``names`` package; an initial, i.e. a single letter
before a first name or before a capitalised word outside a general vocabulary read from installed
packages; and a word outside that vocabulary after a cue such as ``by``;
its options are fixed in the product, compared with a few others on train + val only);
(ii) the masker adapted to the plant's own labelled text, here MaintNorm's training and validation
splits, learnt at run time into a temporary case store by the product's ``axline knowhow
learn-masker`` path: its options are chosen by 5-fold cross-validation over train + val (pooled
counts: highest recall at precision >= 0.9, then F1, then fewer options on), then it learns its
vocabulary, sensitive words and context words from all of train + val. Nothing learnt is written into
the package. The test split only scores.

(d) **Speed**: 10,000 cases (made by recombining the dev set's symptom, cause and action sentences
across cases and assets), import time, and the latency of the 120 dev queries against them (p50,
p95), one query at a time, on this machine; memory of the sentence model (resident set before and
after loading it).

(e) **Operating know-how**: the virtual line runs a simulated day per seed while the demand (the
press takt) follows a two-shift day in blocks of 30-90 minutes. A scripted expert looks at the
furnace every 8-20 minutes (its means over the last 10 minutes) and moves the temperature setpoint
(gas) with the parts rate and the flue O2 setpoint (air) with the gas flow; a trainee makes an
occasional move that is not learnt from. Every write goes through the audit trail (hash-chained
file, on the simulated clock) and every reading into an embedded historian. The advisor learns from
the expert's audited moves in the first two thirds of the day (signals, model: a vote of neighbours
or a ridge line, neighbours and dead band chosen by leave-one-out on those episodes only); for each later expert episode it is asked for advice
from the state before the move; the score is the share of the expert's moves whose direction the
advice matches ("hold" counts as a miss).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

from axline.bench.common import bench_header, peak_rss_mb, publish
from axline.bench.knowhow.dev import RETRIEVERS as RETRIEVERS
from axline.bench.knowhow.dev import load_dev as load_dev
from axline.bench.knowhow.dev import run_dev as run_dev
from axline.bench.knowhow.masking import run_masking as run_masking
from axline.bench.knowhow.operating import run_operating as run_operating
from axline.bench.knowhow.page import render as render
from axline.bench.knowhow.recurrence import run_recurrence as run_recurrence
from axline.bench.knowhow.speed import run_speed as run_speed


# -- CLI -------------------------------------------------------------------------------------------------
def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the options of ``axline bench knowhow`` to ``p``."""
    p.add_argument("--json", default="benchmarks/knowhow.json", help="write the results here")
    p.add_argument("--table", default="benchmarks/knowhow.md", help="Markdown page (default benchmarks/knowhow.md)")
    p.add_argument("--maintnorm", default="../shared/datasets/MaintNorm", help="MaintNorm folder")
    p.add_argument("--seeds", default="1,2", help="virtual factory seeds (default 1,2)")
    p.add_argument("--repeats", type=int, default=3, help="occurrences of each fault kind per seed (default 3)")
    p.add_argument("--speed-cases", type=int, default=10_000, help="cases for the latency test (default 10000)")
    p.add_argument("--operating-seeds", default="1,2", help="simulated days of the scripted expert (default 1,2)")
    p.add_argument("--operating-hours", type=float, default=24.0, help="hours per simulated day (default 24)")
    p.add_argument("--only", default="dev,vfactory,mask,speed,operating", help="parts to run (default all)")


def run(args) -> int:
    """``axline bench knowhow``: run the selected parts and write the JSON and Markdown pages."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    parts = {p.strip() for p in args.only.split(",")}
    t0 = time.perf_counter()
    out: dict[str, Any] = bench_header("knowhow")
    if "dev" in parts:
        out["dev"] = run_dev(["bigram", "morph"])
    if "vfactory" in parts:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
        out["vfactory"] = run_recurrence(seeds, args.repeats, 2.0, 300.0)
    if "mask" in parts:
        out["masking"] = run_masking(Path(args.maintnorm))
    if "speed" in parts:
        out["speed"] = run_speed(args.speed_cases)
    if "operating" in parts:
        out["operating"] = run_operating([int(x) for x in args.operating_seeds.split(",") if x.strip()],
                                         args.operating_hours)
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    out["peak_rss_mb"] = round(peak_rss_mb(), 1)
    out["protocol"] = __doc__.split("\n\n", 1)[1].strip()
    print(publish(out, args.json, args.table, render))
    return 0
