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
    "bench_header",
    "command_line",
    "load_average",
    "page",
    "publish",
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
    """The command that started this process, shell-quoted, as ``axline bench NAME ...``."""
    argv = list(sys.argv)
    if argv and argv[0].endswith(".py") and "bench" in Path(argv[0]).parts:
        argv = ["axline", "bench", Path(argv[0]).with_suffix("").name, *argv[1:]]
    elif argv and (Path(argv[0]).name in ("axline", "cli.py", "__main__.py")):
        argv = ["axline", *argv[1:]]
    return " ".join(shlex.quote(a) for a in argv)


def load_average() -> list[float]:
    """The machine's 1-, 5- and 15-minute load averages (empty where the OS has none)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (OSError, AttributeError):
        return []


def bench_header(name: str) -> dict[str, Any]:
    """The first keys of every benchmark's JSON: name, date, command, machine, load at the start."""
    return {"benchmark": name, "date": utc_now(), "command": command_line(), "machine": machine_info(),
            "load_avg_start": load_average()}


def publish(result: dict[str, Any], json_path: str | Path | None, md_path: str | Path | None,
            render: Any) -> str:
    """Finish a run: record the load at the end, write the JSON, then the page rendered *from that
    JSON* (so the page can always be regenerated from it, and a test checks that it is). Returns
    the page."""
    result.setdefault("load_avg_end", load_average())
    text = json.dumps(result, indent=2, default=_jsonable) + "\n"
    md = render(json.loads(text))
    for path, body in ((json_path, text), (md_path, md)):
        if path is None:
            continue
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(body, encoding="utf-8")
    return md


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

    if isinstance(o, np.bool_):
        return bool(o)
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


def _loads(v: Any) -> str:
    return " / ".join(f"{x:.2f}" for x in v) if v else "unknown"


def page(title: str, sections: Sequence[tuple[str, str]], result: dict[str, Any]) -> str:
    """A benchmark page from its JSON: title, date, machine, command, wall time, the machine's load
    average (1 / 5 / 15 min) at the start and end of the run, then (heading, body) sections."""
    m = result.get("machine", {})
    head = [
        f"# {title}",
        "",
        f"- Date (UTC): {result.get('date')}",
        f"- Machine: {m.get('cpu')}, {m.get('cores')} cores, {m.get('memory_gib')} GiB, {m.get('os')}, "
        f"Python {m.get('python')}",
        f"- Command: `{result.get('command')}`",
        f"- Wall time: {result.get('wall_s', float('nan')):.1f} s; peak RSS {result.get('peak_rss_mb', 0):.0f} MiB",
        f"- Load average (1 / 5 / 15 min) at the start: {_loads(result.get('load_avg_start'))}; "
        f"at the end: {_loads(result.get('load_avg_end'))}",
        "",
    ]
    body = []
    for heading, text in sections:
        body += [f"## {heading}", "", text.rstrip(), ""]
    return "\n".join(head + body)


def write_markdown(
    path: str | Path | None,
    title: str,
    sections: Sequence[tuple[str, str]],
    result: dict[str, Any],
) -> None:
    """Write a page made by ``page`` (for callers that have no JSON to render from)."""
    if path is None:
        return
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(page(title, sections, result), encoding="utf-8")
