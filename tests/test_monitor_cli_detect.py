"""``axline detect`` on a small CSV: JSON lines, alarms where the fault is, clear errors."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from axline.monitor.cli_detect import add_arguments, run
from axline.monitor.detectors import Detector


def _args(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_arguments(p)
    return p.parse_args(list(argv))


@pytest.fixture()
def csv_file(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    n = 400
    load = np.sin(np.arange(n) / 20.0)
    temp = 50 + 4 * load + 0.3 * rng.standard_normal(n)
    vib = 1 + 0.05 * rng.standard_normal(n)
    vib[300:340] += 1.0  # bearing fault: vibration up
    lines = ["time;temp;vib;note"]
    for i in range(n):
        lines.append(f"2026-01-01T00:{i // 60:02d}:{i % 60:02d}Z;{temp[i]:.4f};{vib[i]:.4f};ok")
    path = tmp_path / "line1.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_detect_writes_one_json_line_per_row(csv_file: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out.jsonl"
    model = tmp_path / "model.npz"
    rc = run(_args(str(csv_file), "--fit-rows", "200", "--columns", "temp", "vib", "--time-column", "time",
                   "--detector", "mset", "--json", str(out), "--save-model", str(model)))
    assert rc == 0
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(recs) == 400
    assert recs[0]["timestamp"] == "2026-01-01T00:00:00Z"
    assert set(recs[0]["contributions"]) == {"temp", "vib"}
    alarm = np.array([r["alarm"] for r in recs])
    assert alarm[305:335].all()
    assert alarm[:300].mean() < 0.05
    assert recs[320]["contributions"]["vib"] > 0.8
    # the saved model reproduces the scores
    det = Detector.load(model)
    assert det.columns == ["temp", "vib"]
    assert "alarm" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--columns", "temp", "pressure"], "column(s) ['pressure'] not found"),
        (["--columns", "temp", "note"], "column 'note' is not a number"),
        (["--fit-rows", "3"], "--fit-rows must be at least"),
        (["--fit-rows", "12"], "leaves too few rows"),
        (["--fit-rows", "9999"], "exceeds the 400 data rows"),
        (["--time-column", "ts"], "time column 'ts' not found"),
    ],
)
def test_detect_clear_errors(csv_file: Path, tmp_path: Path, capsys, argv: list[str], message: str) -> None:
    base = {"--fit-rows": "200", "--columns": None, "--time-column": "time"}
    args = [str(csv_file), "--json", str(tmp_path / "o.jsonl")]
    keys = {argv[0]}
    for k, v in base.items():
        if k not in keys and v is not None:
            args += [k, v]
    if "--columns" not in keys:
        args += ["--columns", "temp", "vib"]
    rc = run(_args(*args, *argv))
    assert rc == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1  # one clear line, no traceback
