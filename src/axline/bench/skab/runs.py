"""SKAB files: reading, the split, the signals and the published figures of other methods."""

from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FIT_ROWS = 400
SIGNALS = [
    "Accelerometer1RMS",
    "Accelerometer2RMS",
    "Current",
    "Pressure",
    "Temperature",
    "Thermocouple",
    "Voltage",
    "Volume Flow RateRMS",
]

#: published SKAB leaderboard rows (README of waico/SKAB @ b2c0d46): F1, FAR %, MAR %
PUBLISHED_OUTLIER = [
    ("Conv-AE", 0.78, 13.55, 28.02),
    ("MSET", 0.78, 39.73, 14.13),
    ("T-squared+Q (PCA-based)", 0.76, 26.62, 24.92),
    ("LSTM-AE", 0.74, 29.96, 25.92),
    ("T-squared", 0.66, 19.21, 42.6),
    ("LSTM-VAE", 0.56, 9.13, 55.03),
    ("Vanilla LSTM", 0.54, 12.54, 59.53),
    ("MSCRED", 0.36, 49.94, 69.88),
]
#: NAB standard, LowFP, LowFN
PUBLISHED_CP = [
    ("MSCRED", 32.42, 16.53, 40.28),
    ("Isolation forest", 26.16, 19.5, 30.82),
    ("T-squared+Q (PCA-based)", 25.35, 14.51, 31.33),
    ("Conv-AE", 23.61, 21.54, 27.55),
    ("LSTM-AE", 23.51, 20.11, 25.91),
    ("T-squared", 19.54, 10.2, 24.31),
    ("MSET", 13.84, 10.22, 17.37),
    ("Vanilla AE", 11.41, 6.53, 13.91),
    ("Vanilla LSTM", 11.31, -3.8, 17.25),
    ("ArimaFD", -0.09, -0.17, -0.06),
]


@dataclass
class SkabFile:
    """One SKAB run: timestamps (ns UTC), 8 signals, labels."""

    name: str
    group: str
    ts: np.ndarray
    X: np.ndarray
    anomaly: np.ndarray
    changepoint: np.ndarray


def read_skab_csv(path: Path) -> SkabFile:
    """Read one ';'-separated SKAB CSV (labels are zero where the file has none)."""
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh, delimiter=";"))
    head, body = rows[0], [r for r in rows[1:] if r]
    missing = [c for c in ["datetime", *SIGNALS] if c not in head]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}")
    col = {c: i for i, c in enumerate(head)}
    ts = np.array(
        [int(dt.datetime.fromisoformat(r[col["datetime"]]).replace(tzinfo=dt.UTC).timestamp()) for r in body],
        dtype=np.int64,
    ) * 10**9
    X = np.array([[float(r[col[c]]) for c in SIGNALS] for r in body], dtype=np.float64)

    def label(name: str) -> np.ndarray:
        if name not in col:
            return np.zeros(len(body), dtype=np.int8)
        return np.array([int(float(r[col[name]])) for r in body], dtype=np.int8)

    return SkabFile(path.stem if path.parent.name == "" else f"{path.parent.name}/{path.stem}", path.parent.name, ts, X,
                    label("anomaly"), label("changepoint"))


def load_skab(data: Path) -> tuple[list[SkabFile], SkabFile]:
    """The 34 labelled runs (valve1, valve2, other; numeric order) and the anomaly-free run."""
    root = data / "data" if (data / "data").is_dir() else data
    files: list[SkabFile] = []
    for group in ("valve1", "valve2", "other"):
        paths = sorted((root / group).glob("*.csv"), key=lambda p: int(p.stem) if p.stem.isdigit() else 10**9)
        files += [read_skab_csv(p) for p in paths if p.stem.isdigit()]
    free = root / "anomaly-free" / "anomaly-free.csv"
    if not files or not free.is_file():
        raise SystemExit(f"error: {root} does not look like SKAB's data folder (valve1/, valve2/, other/, anomaly-free/)")
    return files, read_skab_csv(free)
