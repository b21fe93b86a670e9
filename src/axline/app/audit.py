"""The audit trail: append-only, hash-chained JSON lines, in UTC.

Each entry records who (user name and role), what (an action such as ``tag.write``), the target,
the old and new values, the result and from where (address), plus ``seq`` (1, 2, 3, ...),
``prev`` (the hash of the entry before) and ``hash`` (SHA-256 over the entry's canonical JSON
without ``hash``). A ``.head`` file beside the log holds the last ``seq`` and ``hash``. ``verify``
recomputes the chain: an edited entry breaks its hash, a removed entry breaks ``seq`` and ``prev``,
a cut-off tail no longer matches the head.

The web server and the ``axline`` commands append to the same file; an exclusive ``flock`` keeps
the chain whole. Appending is blocking file I/O (with fsync): code on the event loop calls
:meth:`AuditLog.arecord` (or :func:`audit` with a request), which runs it in a worker thread.

Capacity: the log has a size budget (``max_bytes``); past ``warn_fraction`` of it, ``status()``
says so and ``on_warning`` is called once, so that the service raises a system event. Entries are
never dropped: past the budget the log keeps growing and says it is over.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from aiohttp import web

from axline import i18n
from axline.app.roles import User

log = logging.getLogger(__name__)

GENESIS = "0" * 64
DEFAULT_MAX_BYTES = 1 << 30
MAX_FIELD = 2000  # characters kept of any one field
AUDIT_KEY: web.AppKey[Any] = web.AppKey("audit", object)


def _canonical(entry: dict) -> bytes:
    return json.dumps(entry, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")


def entry_hash(entry: dict) -> str:
    """The SHA-256 of an audit entry without its own ``hash`` field."""
    return hashlib.sha256(_canonical({k: v for k, v in entry.items() if k != "hash"})).hexdigest()


def _clip(v: Any) -> Any:
    if v is None or isinstance(v, bool | int):
        return v
    if isinstance(v, float):
        return v if v == v and abs(v) != float("inf") else str(v)
    if isinstance(v, str):
        return v[:MAX_FIELD]
    try:
        text = json.dumps(v, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = str(v)
    return v if len(text) <= MAX_FIELD else text[:MAX_FIELD]


def _parse(line: bytes) -> dict | None:
    if not line.strip():
        return None
    try:
        e = json.loads(line)
    except ValueError:
        return None
    return e if isinstance(e, dict) else None


def utc_now() -> str:
    """Now as an ISO 8601 UTC timestamp with microseconds."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class VerifyResult:
    """The result of checking the audit trail: ``ok``, how many entries and what is wrong."""
    ok: bool
    entries: int
    problems: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        """The result as JSON (at most 100 problems)."""
        return {"ok": self.ok, "entries": self.entries, "problems": self.problems[:100]}


class AuditError(RuntimeError):
    """The audit trail cannot be written; actions that must be audited are refused."""


class AuditLog:
    """The audit trail in ``path`` (a ``.jsonl`` file), or in memory when ``path`` is None (tests)."""

    def __init__(self, path: str | os.PathLike | None, max_bytes: int = DEFAULT_MAX_BYTES,
                 warn_fraction: float = 0.8, on_warning: Callable[[str], None] | None = None,
                 on_failure: Callable[[str], None] | None = None,
                 clock: Callable[[], str] | None = None) -> None:
        if max_bytes <= 0 or not 0 < warn_fraction <= 1:
            raise ValueError("audit: max_bytes must be positive and warn_fraction in (0, 1]")
        self.path = Path(path) if path is not None else None
        self.max_bytes, self.warn_fraction = max_bytes, warn_fraction
        self.on_warning = on_warning
        self.on_failure = on_failure  # called once when appending starts to fail (may run in a worker thread)
        self.clock = clock or utc_now  # the entries' time (a simulated plant passes its own clock)
        self._lock = threading.Lock()
        self._memory: collections.deque[dict] = collections.deque(maxlen=10_000)
        self._mem_head = (0, GENESIS)
        self.failures = 0
        self.last_error: str | None = None
        self.warned = False
        self.appended = 0
        self.sync_s = 1.0  # fsync at most this often (0: after every entry)
        self._last_sync = 0.0
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(OSError):
                os.chmod(self.path.parent, 0o700)

    @property
    def head_path(self) -> Path | None:
        """The file that records the chain's last hash, or ``None`` in memory."""
        return self.path.with_suffix(".head") if self.path is not None else None

    # -- writing -----------------------------------------------------------------------------------
    def record(self, who: str, action: str, target: str = "", *, role: str = "", old: Any = None,
               new: Any = None, result: str = "ok", source: str = "", detail: Any = None) -> dict:
        """Append one entry (blocking; from async code use :meth:`arecord`). Raises AuditError."""
        entry = {"ts": self.clock(), "who": _clip(who), "role": role, "action": action, "target": _clip(target),
                 "old": _clip(old), "new": _clip(new), "result": _clip(result), "from": _clip(source)}
        if detail is not None:
            entry["detail"] = _clip(detail)
        try:
            with self._lock:
                if self.path is None:
                    seq, prev = self._mem_head
                    entry = {"seq": seq + 1, **entry, "prev": prev}
                    entry["hash"] = entry_hash(entry)
                    self._memory.append(entry)
                    self._mem_head = (entry["seq"], entry["hash"])
                else:
                    entry = self._append_file(entry)
        except OSError as e:
            self.failures += 1
            first = self.last_error is None
            self.last_error = f"{type(e).__name__}: {e}"
            log.error("audit: cannot append to %s: %s", self.path, e)
            if first and self.on_failure is not None:
                try:
                    self.on_failure(f"the audit trail cannot be written ({e}); writes to machines are refused "
                                    "until it can")
                except Exception:  # noqa: BLE001 - the hook must not hide the audit failure itself
                    log.exception("audit: the failure hook failed")
            raise i18n.error(AuditError, "audit.cannot_write", error=e) from e
        self.appended += 1
        self.last_error = None
        self._check_capacity()
        return entry

    def _append_file(self, entry: dict) -> dict:
        assert self.path is not None and self.head_path is not None
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            seq, prev = self._read_head_locked(fd)
            entry = {"seq": seq + 1, **entry, "prev": prev}
            entry["hash"] = entry_hash(entry)
            os.write(fd, _canonical(entry) + b"\n")  # in the OS's hands: survives a crash of axline
            now = time.monotonic()
            if now - self._last_sync >= self.sync_s:  # and on disk within sync_s: survives a power cut
                os.fsync(fd)
                self._last_sync = now
            tmp = self.head_path.with_name(self.head_path.name + ".tmp")
            tmp.write_text(json.dumps({"seq": entry["seq"], "hash": entry["hash"]}), encoding="utf-8")
            os.replace(tmp, self.head_path)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        return entry

    def _read_head_locked(self, fd: int) -> tuple[int, str]:
        # the last line of the log itself is the truth; the head file only guards against a cut tail
        size = os.fstat(fd).st_size
        if size == 0:
            return 0, GENESIS
        back = min(size, 16384)
        data = os.pread(fd, back, size - back)
        lines = [ln for ln in data.split(b"\n") if ln.strip()]
        if not lines:
            return 0, GENESIS
        try:
            last = json.loads(lines[-1])
            return int(last["seq"]), str(last["hash"])
        except (ValueError, KeyError, TypeError) as e:
            raise OSError(f"the last audit entry of {self.path} is damaged ({e}); run `axline audit verify`") from e

    async def arecord(self, who: str, action: str, target: str = "", **kw: Any) -> dict:
        """:meth:`record` in a worker thread (the event loop never waits on the disk)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, lambda: self.record(who, action, target, **kw))

    # -- capacity ----------------------------------------------------------------------------------
    def size(self) -> int:
        """The size of the trail in bytes."""
        if self.path is None:
            return sum(len(_canonical(e)) + 1 for e in self._memory)
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def status(self) -> dict:
        """Path, size, limit and state (ok, warning, full, failing) for health."""
        size = self.size()
        frac = size / self.max_bytes
        state = "ok" if frac < self.warn_fraction else ("full" if frac >= 1 else "warning")
        if self.last_error:
            state = "failing"
        return {"path": str(self.path) if self.path else None, "bytes": size, "max_bytes": self.max_bytes,
                "used": round(frac, 4), "state": state, "appended": self.appended, "failures": self.failures,
                "last_error": self.last_error}

    def _check_capacity(self) -> None:
        if self.warned:
            return
        size = self.size()
        if size >= self.warn_fraction * self.max_bytes:
            self.warned = True
            msg = (f"the audit trail uses {size / 2**20:.1f} MiB of its {self.max_bytes / 2**20:.0f} MiB budget: "
                   "export it (axline audit export) and archive it, or raise audit.max_mb")
            log.warning("audit: %s", msg)
            if self.on_warning is not None:
                try:
                    self.on_warning(msg)
                except Exception:  # noqa: BLE001 - a warning hook must not break the audit write
                    log.exception("audit: the capacity warning hook failed")

    # -- reading -----------------------------------------------------------------------------------
    def iter_entries(self) -> Iterator[dict]:
        """Every entry, oldest first."""
        if self.path is None:
            yield from list(self._memory)
            return
        if not self.path.exists():
            return
        with self.path.open("r", encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    yield json.loads(line)

    def tail(self, limit: int = 100, before: int | None = None, action: str | None = None,
             who: str | None = None) -> list[dict]:
        """The newest ``limit`` entries (newest first), optionally before a ``seq`` or of one action/user.
        Reads the file backwards, so the newest entries cost the same however long the trail is."""
        out: list[dict] = []
        for e in self._iter_newest_first():
            if before is not None and e.get("seq", 0) >= before:
                continue
            if action and not str(e.get("action", "")).startswith(action):
                continue
            if who and e.get("who") != who:
                continue
            out.append(e)
            if len(out) >= max(1, limit):
                break
        return out

    def _iter_newest_first(self, block: int = 65536) -> Iterator[dict]:
        if self.path is None:
            yield from reversed(list(self._memory))
            return
        try:
            f = self.path.open("rb")
        except FileNotFoundError:
            return
        with f:
            pos = f.seek(0, os.SEEK_END)
            rest = b""
            while pos > 0:
                step = min(block, pos)
                pos -= step
                f.seek(pos)
                lines = (f.read(step) + rest).split(b"\n")
                rest = lines[0]  # perhaps the end of a line that starts in an earlier block
                for line in reversed(lines[1:]):
                    e = _parse(line)
                    if e is not None:
                        yield e
            e = _parse(rest)
            if e is not None:
                yield e

    def verify(self) -> VerifyResult:
        """Check every entry's hash and the chain between them."""
        problems: list[str] = []
        n = 0
        prev, seq = GENESIS, 0
        f = None
        if self.path is not None and self.path.exists():
            f = self.path.open("r", encoding="utf-8", errors="replace")  # line by line: any size
            source: Iterator[tuple[int, str]] = enumerate((ln.rstrip("\n") for ln in f), 1)
        else:
            source = enumerate((_canonical(e).decode() for e in self._memory), 1)
        for lineno, line in source:
            if not line.strip():
                problems.append(f"line {lineno}: empty line")
                continue
            try:
                e = json.loads(line)
                if not isinstance(e, dict):
                    raise ValueError("not an object")
            except ValueError as ex:
                problems.append(f"line {lineno}: not valid JSON ({ex})")
                continue
            n += 1
            if e.get("seq") != seq + 1:
                problems.append(f"line {lineno}: seq {e.get('seq')} follows {seq}: entries are missing or reordered")
            if e.get("prev") != prev:
                problems.append(f"line {lineno}: prev does not match the hash of the entry before it")
            if e.get("hash") != entry_hash(e):
                problems.append(f"line {lineno}: hash does not match its content: the entry was edited")
            prev = str(e.get("hash"))
            seq = e.get("seq") if isinstance(e.get("seq"), int) else seq + 1
        if f is not None:
            f.close()
        hp = self.head_path
        if hp is not None and hp.exists():
            try:
                head = json.loads(hp.read_text(encoding="utf-8"))
                if head.get("seq") != seq or head.get("hash") != prev:
                    problems.append(f"the log ends at seq {seq} but the head says seq {head.get('seq')}: "
                                    "entries at the end were removed or the head was changed")
            except ValueError:
                problems.append("the head file is not valid JSON")
        elif hp is not None and n:
            problems.append("the head file is missing")
        return VerifyResult(not problems, n, problems)

    # -- export ------------------------------------------------------------------------------------
    def export(self, out: TextIO, fmt: str = "jsonl", hostname: str = "-") -> int:
        """Write every entry to ``out`` as JSON lines or RFC 5424 syslog lines; returns the count."""
        n = 0
        for line in self.export_lines(fmt, hostname):
            out.write(line)
            n += 1
        return n

    def export_lines(self, fmt: str = "jsonl", hostname: str = "-") -> Iterator[str]:
        """Every entry, oldest first, as one JSON or RFC 5424 syslog line each (read as it goes)."""
        if fmt not in ("jsonl", "syslog"):
            raise ValueError("format must be jsonl or syslog")
        for e in self.iter_entries():
            yield (json.dumps(e, ensure_ascii=False, sort_keys=True) if fmt == "jsonl" else syslog_line(e, hostname)) + "\n"


def syslog_line(e: dict, hostname: str = "-") -> str:
    """One entry as an RFC 5424 message (facility authpriv/10, severity notice or warning)."""
    sev = 5 if str(e.get("result", "ok")) == "ok" else 4
    pri = 10 * 8 + sev

    def sd(v: Any) -> str:
        return str(v).replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")

    params = " ".join(f'{k}="{sd(e.get(k, ""))}"' for k in ("seq", "who", "role", "action", "target", "result",
                                                            "from", "hash"))
    msg = json.dumps({k: e.get(k) for k in ("old", "new", "detail") if e.get(k) is not None}, ensure_ascii=False)
    return f"<{pri}>1 {e.get('ts', '-')} {hostname} axline - audit [axline@32473 {params}] {msg}"


async def audit(request: web.Request, user: User | None, action: str, target: str = "", *, old: Any = None,
                new: Any = None, result: str = "ok", detail: Any = None) -> dict:
    """Audit what ``user`` did through ``request`` (the one call route handlers make)."""
    log_: AuditLog = request.app[AUDIT_KEY]
    return await log_.arecord(user.name if user else "anonymous", action, target, role=user.role if user else "",
                              old=old, new=new, result=result, source=request.remote or "", detail=detail)
