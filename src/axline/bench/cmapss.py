"""C-MAPSS FD001 remaining useful life: ``axline bench cmapss --data ../shared/datasets/CMAPSS --json out.json``.

Usual protocol: train on train_FD001 (run-to-failure), predict the RUL at the last cycle of each
test_FD001 unit, compare with RUL_FD001; RMSE and the asymmetric PHM08 score
(sum of exp(-d/13) - 1 for early and exp(d/10) - 1 for late predictions, d = predicted - true).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from axline.bench.common import (
    command_line,
    machine_info,
    markdown_table,
    peak_rss_mb,
    require_dir,
    utc_now,
    write_json,
    write_markdown,
)
from axline.monitor.rul import CNNRUL, GBRUL, select_informative

PUBLISHED = [
    ("Deep LSTM (Zheng et al. 2017)", 16.14, 338.0),
    ("DCNN (Li et al. 2018)", 12.61, 273.7),
    ("best figure named in the issue", 10.97, None),
]


def phm08_score(pred: np.ndarray, true: np.ndarray) -> float:
    """The PHM08 challenge score: late predictions cost more than early ones (lower is better)."""
    d = np.asarray(pred, dtype=np.float64) - np.asarray(true, dtype=np.float64)
    return float(np.sum(np.where(d < 0, np.exp(-d / 13.0) - 1.0, np.exp(d / 10.0) - 1.0)))


def rmse(pred: np.ndarray, true: np.ndarray) -> float:
    """Root mean squared error."""
    d = np.asarray(pred, dtype=np.float64) - np.asarray(true, dtype=np.float64)
    return float(np.sqrt(np.mean(d**2)))


def load_fd(data: Path, fd: str = "FD001") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """train, test (26 columns: unit, cycle, 3 settings, 21 sensors) and the true test RUL."""
    root = data / "CMAPSSData" if (data / "CMAPSSData").is_dir() else data
    paths = [root / f"train_{fd}.txt", root / f"test_{fd}.txt", root / f"RUL_{fd}.txt"]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise SystemExit(f"error: C-MAPSS file(s) not found: {missing}; pass --data pointing at the CMAPSS folder")
    train, test, rul = (np.loadtxt(p, ndmin=2) for p in paths)
    return train, test, rul[:, 0]


#: features of the first version (one 30-cycle window, cap 125), kept in the grid as a reference
FIRST_VERSION: dict[str, Any] = {"cap": 125.0, "alphas": [0.1, 0.3], "means": [30], "slopes": [30]}

#: candidates compared by ``--select`` (cross-validation on training units only); the others are
#: ``GBRUL`` defaults. The defaults of ``GBRUL`` are the winner of this comparison.
GRID: list[dict[str, Any]] = [
    FIRST_VERSION,
    {"cap": 125.0, "slopes": [10, 20, 30, 60]},
    {"cap": 125.0},
    {"cap": 130.0},
    {"cap": 135.0},
    {"cap": 130.0, "min_samples_leaf": 200},
]


def truncate_units(data: np.ndarray, rng: np.random.Generator, min_len: int = 31,
                   max_rul: int = 150) -> tuple[np.ndarray, np.ndarray]:
    """Cut each run-to-failure unit like the test set (at least ``min_len`` cycles kept, true RUL
    uniform in [0, ``max_rul``], as in RUL_FD001 whose largest value is 145); rows and true RUL."""
    keep, truth = [], []
    for u in np.unique(data[:, 0]):
        rows = np.flatnonzero(data[:, 0] == u)
        n = rows.size
        cut = n - int(rng.integers(0, max(1, min(max_rul, n - min_len) + 1)))
        keep.append(rows[:cut])
        truth.append(n - cut)
    return data[np.concatenate(keep)], np.array(truth, dtype=np.float64)


def cut_copies(data: np.ndarray, rng: np.random.Generator, copies: int) -> tuple[np.ndarray, np.ndarray]:
    """``copies`` independent random cuts (``truncate_units``) of every unit, each copy renumbered as a unit."""
    rows, truths = [], []
    step = int(data[:, 0].max()) + 1
    for c in range(copies):
        kept, truth = truncate_units(data, rng)
        kept = kept.copy()
        kept[:, 0] += c * step
        rows.append(kept)
        truths.append(truth)
    return np.vstack(rows), np.concatenate(truths)


def select_on_train(train: np.ndarray, sensors: np.ndarray, folds: int = 5, copies: int = 5,
                    seed: int = 0) -> list[dict[str, Any]]:
    """Grouped k-fold over training units; each validation unit cut at ``copies`` random cycles: RMSE per
    candidate of ``GRID``. The test set is not used."""
    units = np.unique(train[:, 0])
    perm = np.random.default_rng(seed).permutation(units)
    out = []
    for cand in GRID:
        t0 = time.perf_counter()
        preds, truths = [], []
        for k in range(folds):
            val = perm[k::folds]
            tr = train[~np.isin(train[:, 0], val)]
            va, truth = cut_copies(train[np.isin(train[:, 0], val)], np.random.default_rng(seed + 100 + k), copies)
            m = GBRUL(**cand).fit(tr[:, sensors], tr[:, 0], tr[:, 1])
            preds.append(m.predict_last(va[:, sensors], va[:, 0], va[:, 1]))
            truths.append(truth)
        p, t = np.concatenate(preds), np.concatenate(truths)
        out.append({"params": cand, "cv_rmse": round(rmse(p, t), 3),
                    "cv_score_per_100": round(phm08_score(p, t) * 100 / len(p), 1)})
        print(f"  CV {json_params(cand) or 'defaults'}: RMSE {out[-1]['cv_rmse']:.2f} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
    return out


def run(args: argparse.Namespace) -> int:
    """Train, evaluate, write JSON and the Markdown table."""
    t_start = time.perf_counter()
    data = require_dir(args.data, "C-MAPSS")
    train, test, true_rul = load_fd(data)
    sensors = 5 + select_informative(train[:, 5:])
    selection: list[dict[str, Any]] = []
    params: dict[str, Any] = {} if args.cap is None else {"cap": args.cap}
    if args.select and args.model == "gbm":
        selection = select_on_train(train, sensors)
        params = min(selection, key=lambda r: r["cv_rmse"])["params"]
    t0 = time.perf_counter()
    if args.model == "cnn":
        cnn = CNNRUL(window=args.window, cap=125.0 if args.cap is None else args.cap, epochs=args.epochs,
                     ensemble=args.ensemble, seed=args.seed, threads=args.threads).fit(train[:, sensors], train[:, 0])
        train_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        pred = cnn.predict_last(test[:, sensors], test[:, 0])
        model_desc = {"kind": "1-D CNN ensemble (torch training, NumPy inference)", **cnn.params}
    else:
        gbm = GBRUL(**{"seed": args.seed, **params}).fit(train[:, sensors], train[:, 0], train[:, 1])
        train_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        pred = gbm.predict_last(test[:, sensors], test[:, 0], test[:, 1])
        model_desc = {"kind": "gradient-boosted trees on multi-window features (NumPy inference)", **gbm.params}
    predict_s = time.perf_counter() - t0
    res_rmse, res_score = rmse(pred, true_rul), phm08_score(pred, true_rul)
    result: dict[str, Any] = {
        "benchmark": "cmapss",
        "date": utc_now(),
        "command": command_line(),
        "machine": machine_info(),
        "subset": "FD001",
        "rmse": round(res_rmse, 3),
        "score": round(res_score, 1),
        "train_s": round(train_s, 1),
        "predict_s": round(predict_s, 3),
        "test_units": int(true_rul.shape[0]),
        "sensors_used": [f"s{j - 4}" for j in sensors],
        "model": model_desc,
        "selection_cv_on_train": selection,
        "predictions": [round(float(p), 2) for p in pred],
        "published": [{"name": n, "rmse": r, "score": s} for n, r, s in PUBLISHED],
    }
    result["wall_s"] = time.perf_counter() - t_start
    result["peak_rss_mb"] = peak_rss_mb()
    print(f"FD001 RMSE {res_rmse:.2f}  PHM08 score {res_score:.1f}  train {train_s:.1f}s")
    write_json(args.json, result)
    rows = [[f"**axline {args.model}**", f"{res_rmse:.2f}", f"{res_score:.1f}", f"{train_s:.1f}"]]
    rows += [[f"published {n}", f"{r:.2f}", None if s is None else f"{s:.1f}", None] for n, r, s in PUBLISHED]
    table = markdown_table(["model", "RMSE", "PHM08 score", "train s (CPU)"], rows)
    sel = ""
    if selection:
        sel = ("\n\nCross-validation on training units only (5 folds by unit; each validation unit cut at 5 random\n"
               "cycles like the test set, true RUL uniform in 0..150; the PHM08 score is per 100 cuts; parameters\n"
               "not named are the `GBRUL` defaults):\n\n" + markdown_table(
                   ["candidate", "CV RMSE", "CV PHM08 / 100"],
                   [[json_params(r["params"]) or "defaults", r["cv_rmse"], r["cv_score_per_100"]]
                    for r in selection]))
    cap = model_desc["cap"]
    chosen = ("the winner of the table below" if selection else
              "the `GBRUL` defaults, the winner of `--select` (run it to see the table)")
    notes = f"""- Protocol: train on train_FD001 (100 run-to-failure units); predict at the last cycle of each of
  the {result['test_units']} test_FD001 units; truth from RUL_FD001. Lower is better for both metrics.
- Target: piecewise-linear RUL capped at {cap:.0f} cycles. Inputs: the {len(sensors)} sensors with at
  least 3 distinct values in training ({', '.join(result['sensors_used'])}), standardised with training
  mean/std, and the cycle count. No operating-condition normalisation (FD001 has one condition).
- Features per sensor, computed from each unit's history up to each cycle only: EWMA levels, means
  over the last few windows, least-squares slopes over short to long windows. Every training cycle
  is thus one training sample of a unit cut at that cycle, which is how the test units are cut
  (the truncation augmentation is built in).
- Model: {model_desc['kind']}; parameters {json_params({k: v for k, v in model_desc.items() if k != 'kind'})}.
- How parameters were chosen:
  {chosen}. Candidates are compared by grouped cross-validation on the
  training units only; the test set was evaluated once for the final candidate. During development
  the same kind of CV (other random cuts) also rejected cap 120, 7-leaf trees and a
  "level minus the unit's first 10 cycles" feature. CV differences under about 0.3 RMSE (cap 130
  vs 135, 100 vs 200 samples per leaf) are within the noise of the random cuts. The first version
  (one 30-cycle window, cap 125; test RMSE 12.84) had had feature variants tried while looking at
  the test RMSE; this version's features and cap were chosen on the CV figures alone.
- Not tried for lack of time: an ensemble with a neural network (MLP/CNN) and an asymmetric loss
  to lower the PHM08 score further.
- Training time: one fit on all training units, on 2 CPU cores that were shared with other
  engineers' jobs (so pessimistic). `--select` adds the CV (5 folds x {len(GRID)} candidates).
- A 1-D CNN (`--model cnn`, PyTorch training, NumPy inference) is also available; one network of
  30 epochs reached RMSE 19.6 in 218 s on this shared CPU, so gradient boosting is the default.
- Published figures are quoted, not re-run.{sel}
"""
    summary = (f"- Goal RMSE <= 12 with CPU training under 5 minutes: "
               f"{'met' if res_rmse <= 12 and train_s < 300 else 'NOT met'} "
               f"(RMSE {res_rmse:.2f}, training {train_s:.1f} s).")
    write_markdown(args.table, "C-MAPSS FD001 remaining useful life",
                   [("Summary", summary), ("Results", table), ("Notes", notes)], result)
    return 0


def json_params(p: dict[str, Any]) -> str:
    """Compact ``k=v`` rendering of parameters."""
    return ", ".join(f"{k}={v}" for k, v in p.items())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Command-line options of ``axline bench cmapss``."""
    parser.add_argument("--data", default="../shared/datasets/CMAPSS", help="C-MAPSS folder")
    parser.add_argument("--json", default=None, help="write the results as JSON here")
    parser.add_argument("--table", default="benchmarks/cmapss.md", help="write the Markdown table here")
    parser.add_argument("--model", choices=["gbm", "cnn"], default="gbm", help="RUL model")
    parser.add_argument("--select", action="store_true",
                        help="gbm: compare the GRID candidates by cross-validation on training units first "
                             "(several minutes) and train the winner; default: GBRUL defaults")
    parser.add_argument("--window", type=int, default=30, help="cnn: cycles per input window")
    parser.add_argument("--cap", type=float, default=None,
                        help="RUL cap of the piecewise-linear target (default: the model's, gbm 130, cnn 125)")
    parser.add_argument("--epochs", type=int, default=40, help="cnn: training epochs per network")
    parser.add_argument("--ensemble", type=int, default=3, help="cnn: networks averaged")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--threads", type=int, default=2, help="cnn: CPU threads for training")


if __name__ == "__main__":
    _p = argparse.ArgumentParser(prog="python -m axline.bench.cmapss", description=__doc__.splitlines()[0])
    add_arguments(_p)
    raise SystemExit(run(_p.parse_args()))
