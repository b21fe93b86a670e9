"""Shared helpers of the benchmark harnesses: machine facts, peak memory, JSON and Markdown output."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import resource
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "command_line",
    "machine_info",
    "markdown_table",
    "peak_rss_mb",
    "require_dir",
    "utc_now",
    "write_json",
    "write_markdown",
]


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (``resource.getrusage``)."""
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes
    return kb / 1024.0 if sys.platform != "darwin" else kb / 2**20


def utc_now() -> str:
    """The current UTC time as ISO 8601 (seconds)."""
    return _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat()


def machine_info() -> dict[str, Any]:
    """CPU model, core count, memory, OS and Python of this machine."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = None
    try:
        mem_gib = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": mem_gib,
        "os": platform.platform(),
        "python": platform.python_version(),
    }


def command_line() -> str:
    """The command that started this process, shell-quoted."""
    argv = list(sys.argv)
    if argv and argv[0].endswith(".py") and "bench" in argv[0]:
        mod = Path(argv[0]).with_suffix("").name
        argv = ["python", "-m", f"axline.bench.{mod}", *argv[1:]]
    return " ".join(shlex.quote(a) for a in argv)


def require_dir(path: str | Path, what: str) -> Path:
    """The data folder, or a clear error saying where to get it."""
    p = Path(path)
    if not p.is_dir():
        raise SystemExit(
            f"error: {what} data folder {str(p)!r} not found; pass --data DIR pointing at your copy "
            f"(see ../shared/datasets/README.md)"
        )
    return p


def write_json(path: str | Path | None, obj: dict[str, Any]) -> None:
    """Write ``obj`` as indented JSON (creating the folder); no-op for None."""
    if path is None:
        return
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(obj, indent=2, default=_jsonable) + "\n", encoding="utf-8")


def _jsonable(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _cell(v: Any) -> str:
    if isinstance(v, float):
        if v != v:  # NaN
            return "–"
        return f"{v:.3f}" if abs(v) < 1 else f"{v:,.1f}" if abs(v) < 10_000 else f"{v:,.0f}"
    if v is None:
        return "–"
    if isinstance(v, int) and not isinstance(v, bool) and abs(v) >= 10_000:
        return f"{v:,}"
    return str(v)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub Markdown table."""
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(_cell(v) for v in r) + " |" for r in rows]
    return "\n".join(out)


def write_markdown(
    path: str | Path | None,
    title: str,
    sections: Sequence[tuple[str, str]],
    result: dict[str, Any],
) -> None:
    """Write a benchmark page: title, machine/date/command, then (heading, body) sections."""
    if path is None:
        return
    m = result.get("machine", machine_info())
    head = [
        f"# {title}",
        "",
        f"- Date (UTC): {result.get('date', utc_now())}",
        f"- Machine: {m.get('cpu')}, {m.get('cores')} cores, {m.get('memory_gib')} GiB, {m.get('os')}, "
        f"Python {m.get('python')}",
        f"- Command: `{result.get('command', command_line())}`",
        f"- Wall time: {result.get('wall_s', float('nan')):.1f} s; peak RSS {result.get('peak_rss_mb', 0):.0f} MiB",
        "",
    ]
    body = []
    for heading, text in sections:
        body += [f"## {heading}", "", text.rstrip(), ""]
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("\n".join(head + body), encoding="utf-8")
