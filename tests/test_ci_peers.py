"""Under CI=true a test whose peer (Chromium, PostgreSQL) is missing fails instead of skipping."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _pytest_under_ci(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    full = {**os.environ, "CI": "true", "PYTHONPATH": str(ROOT / "src"), **env}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", "-rs", *args],
                          cwd=ROOT, env=full, capture_output=True, text=True, timeout=300)


def test_dashboard_browser_fails_without_chromium_under_ci(tmp_path):
    p = _pytest_under_ci(tmp_path, "tests/test_dashboard_browser.py", AXLINE_CHROMIUM=str(tmp_path / "none"))
    assert p.returncode != 0 and "no Chromium installed" in p.stdout and "skipped" not in p.stdout, p.stdout[-2000:]


@pytest.mark.slow
def test_edge_central_fails_without_postgresql_under_ci(tmp_path):
    p = _pytest_under_ci(tmp_path, "tests/test_edge_central.py", "-k", "postgresql",
                         AXLINE_TEST_PG_DSN="postgresql://postgres@127.0.0.1:1/none")
    assert p.returncode != 0 and "no PostgreSQL at" in p.stdout and "skipped" not in p.stdout, p.stdout[-2000:]
