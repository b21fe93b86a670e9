"""``axline detect DATA.csv --fit-rows N [--detector NAME] [--columns ...] [--time-column NAME] --json OUT``.

Fits the product's default detector (``axline.monitor.defaults``; options override it) on the
first 70 % of the first N rows (assumed normal), calibrates its threshold on the other 30 % for the
target false-alarm rate, then scores every row and writes one JSON line per row: ``timestamp``,
``score``, ``alarm`` (latched with the same latch the live service uses) and ``contributions``
(signal -> share of the score).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from axline import i18n
from axline.monitor.defaults import DEFAULT, OnlineMonitor, fit_monitor, with_overrides
from axline.monitor.detectors import DETECTORS

__all__ = ["add_arguments", "read_csv_columns", "run"]


class DetectInputError(ValueError):
    """Bad input for ``axline detect``; the message says what was wrong and what to do."""


def _sniff_delimiter(first_line: str) -> str:
    counts = {d: first_line.count(d) for d in (",", ";", "\t")}
    return max(counts, key=lambda d: counts[d]) if max(counts.values()) > 0 else ","


def read_csv_columns(path: Path, columns: list[str] | None, time_column: str | None) -> tuple[list[str], np.ndarray, list[str]]:
    """Read the numeric columns (all but the time column when ``columns`` is None) and timestamps."""
    if not path.is_file():
        raise DetectInputError(f"{path}: file not found; pass the path of a CSV file with a header row")
    with path.open(newline="", encoding="utf-8-sig") as fh:
        first = fh.readline()
        fh.seek(0)
        rows = list(csv.reader(fh, delimiter=_sniff_delimiter(first)))
    if len(rows) < 2:
        raise DetectInputError(f"{path}: needs a header row and at least one data row")
    head = [h.strip() for h in rows[0]]
    body = [r for r in rows[1:] if any(c.strip() for c in r)]
    if time_column is not None and time_column not in head:
        raise DetectInputError(f"{path}: time column {time_column!r} not found; columns are {head}")
    if columns:
        missing = [c for c in columns if c not in head]
        if missing:
            raise DetectInputError(f"{path}: column(s) {missing} not found; columns are {head}")
        use = list(columns)
    else:
        use = [h for h in head if h != time_column]
    if not use:
        raise DetectInputError(f"{path}: no signal columns to use; name them with --columns")
    idx = [head.index(c) for c in use]
    X = np.empty((len(body), len(use)))
    for i, r in enumerate(body):
        for j, k in enumerate(idx):
            cell = r[k].strip() if k < len(r) else ""
            try:
                X[i, j] = float(cell)
            except ValueError:
                raise DetectInputError(
                    f"{path}: row {i + 2}, column {use[j]!r} is not a number ({cell!r}); "
                    "choose numeric columns with --columns or clean the file"
                ) from None
    if not np.all(np.isfinite(X)):
        raise DetectInputError(f"{path}: NaN or infinite values in the signal columns; fill or drop them first")
    times = [r[head.index(time_column)] for r in body] if time_column else [str(i) for i in range(len(body))]
    return use, X, times


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Command-line options of ``axline detect``."""
    parser.add_argument("data", help="CSV file with a header row (',' ';' or tab separated)")
    parser.add_argument("--fit-rows", type=int, required=True, help="fit on the first N rows (normal operation)")
    parser.add_argument("--detector", default=None, choices=sorted(DETECTORS),
                        help=f"detector kind (default: the product default, {DEFAULT.detector})")
    parser.add_argument("--columns", nargs="+", default=None, help="signal columns (default: all but the time column)")
    parser.add_argument("--time-column", default=None, help="column holding the timestamp (copied to the output)")
    parser.add_argument("--far", type=float, default=None,
                        help=f"target false-alarm rate on the held-out fit rows (default {DEFAULT.far})")
    parser.add_argument("--smooth", type=int, default=None,
                        help=f"moving-average window on the score, samples (default {DEFAULT.params.get('smooth', 1)})")
    parser.add_argument("--json", required=True, help="output file, one JSON object per row ('-' for stdout)")
    parser.add_argument("--save-model", default=None, help="also save the fitted model (.npz) here")


def run(args: argparse.Namespace) -> int:
    """Fit, score, write JSON lines; returns 0, or 2 with one error line on bad input."""
    try:
        cols, X, times = read_csv_columns(Path(args.data), args.columns, args.time_column)
        need = max(10, len(cols) + 2)
        if args.fit_rows < need:
            raise DetectInputError(f"--fit-rows must be at least {need} for {len(cols)} signals, got {args.fit_rows}")
        if args.fit_rows > X.shape[0]:
            raise DetectInputError(f"--fit-rows {args.fit_rows} exceeds the {X.shape[0]} data rows of {args.data}")
        config = with_overrides(DEFAULT, detector=args.detector, far=args.far, smooth=args.smooth)
        # fit on the first 70 % of the fit rows, set the threshold on the other 30 % (held out, so a
        # detector that memorises its training rows is not calibrated on them)
        n_model = max(need, int((1.0 - config.holdout) * args.fit_rows))
        if args.fit_rows - n_model < 5:
            raise DetectInputError(f"--fit-rows {args.fit_rows} leaves too few rows to set the threshold; "
                                   f"use at least {n_model + 5}")
        det = fit_monitor(X[: args.fit_rows], cols, config)
        thr = det.threshold
    except (DetectInputError, ValueError) as exc:
        print(i18n.say("cli.error", error=exc), file=sys.stderr)
        return 2
    # what the live service runs: score, latch (raised after min_on samples above the threshold,
    # cleared after release samples below the release level) and online learning of the levels
    mon = OnlineMonitor(det, config)
    mon.reset()
    scores = np.empty(X.shape[0])
    shares = np.empty(X.shape)
    for i, x in enumerate(X):
        shares[i] = det.contributions(x[None, :])[0]
        scores[i] = mon.step(x)[0]
    latch = mon.latch
    alarms = np.zeros(X.shape[0], dtype=bool)
    for ep in latch.open_and_closed():
        alarms[ep.start : ep.end if ep.end is not None else X.shape[0]] = True
    out = sys.stdout if args.json == "-" else open(args.json, "w", encoding="utf-8")  # noqa: SIM115
    try:
        for t, s, a, c in zip(times, scores, alarms, shares, strict=True):
            rec: dict[str, Any] = {
                "timestamp": t, "score": round(float(s), 6), "alarm": bool(a),
                "contributions": {name: round(float(v), 4) for name, v in zip(cols, c, strict=True)},
            }
            out.write(json.dumps(rec, ensure_ascii=False) + "\n")
    finally:
        if out is not sys.stdout:
            out.close()
    if args.save_model:
        det.save(args.save_model)
    print(i18n.say("cli.detect_scored", rows=X.shape[0], config=config.label(), threshold=f"{thr:.4g}",
                   alarms=len(latch.open_and_closed()), alarm_rows=int(alarms.sum())), file=sys.stderr)
    return 0


if __name__ == "__main__":
    _p = argparse.ArgumentParser(prog="python -m axline.monitor.cli_detect", description=__doc__.splitlines()[0])
    add_arguments(_p)
    raise SystemExit(run(_p.parse_args()))
