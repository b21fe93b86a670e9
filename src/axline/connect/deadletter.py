"""Dead letters: messages a connector could not turn into readings, kept with the reason.

A malformed payload is never dropped silently and never crashes a connector: the parser returns a
``DeadLetter`` (reason, topic, raw payload, receive time) and the connector hands it to a
``DeadLetterStore``. The store keeps the most recent letters in memory and, when given a folder,
appends them as JSON lines (payload base64) to rotating files whose total size is bounded, so a
flood of bad messages cannot fill the disk.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_FILE_PREFIX = "deadletter-"
_FILE_SUFFIX = ".jsonl"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One message that did not become readings, and why."""

    reason: str
    topic: str
    payload: bytes
    ts: int  # receive time, ns since epoch UTC
    source: str = ""  # connector name, filled in by the connector

    def to_json(self, max_payload_bytes: int = 4096) -> dict[str, Any]:
        """The letter as JSON, its payload cut to ``max_payload_bytes`` (text, or hex when binary)."""
        raw = self.payload[:max_payload_bytes]
        return {
            "ts": self.ts,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(self.ts // 1_000_000_000)) + "Z",
            "source": self.source,
            "topic": self.topic,
            "reason": self.reason,
            "payload_b64": base64.b64encode(raw).decode("ascii"),
            "payload_size": len(self.payload),
            "truncated": len(raw) < len(self.payload),
        }


class DeadLetterStore:
    """Bounded store of dead letters: recent ones in memory, all of them on disk when ``folder`` is set.

    ``max_bytes`` bounds the files on disk (oldest files are deleted first); ``max_payload_bytes``
    bounds how much of each raw payload is kept; ``keep_recent`` bounds the in-memory list.
    Safe to call from several threads (paho's network thread and the asyncio loop).
    """

    def __init__(self, folder: str | os.PathLike | None = None, *, max_bytes: int = 10 * 2**20,
                 max_payload_bytes: int = 4096, keep_recent: int = 200, files: int = 4) -> None:
        if max_bytes < 4096:
            raise ValueError(f"max_bytes must be >= 4096, got {max_bytes}")
        if not 0 <= max_payload_bytes <= max_bytes // 4:
            raise ValueError(f"max_payload_bytes must be in 0..{max_bytes // 4} (a quarter of max_bytes), "
                             f"got {max_payload_bytes}")
        if keep_recent < 0:
            raise ValueError(f"keep_recent must be >= 0, got {keep_recent}")
        if files < 2:
            raise ValueError(f"files must be >= 2, got {files}")
        self.folder = Path(folder) if folder is not None else None
        self.max_bytes = max_bytes
        self.max_payload_bytes = max_payload_bytes
        self._file_limit = max_bytes // files
        self._recent: deque[dict[str, Any]] = deque(maxlen=keep_recent)
        self._lock = threading.Lock()
        self.count = 0
        self.reasons: Counter[str] = Counter()
        self._fh = None
        self._fsize = 0
        self._seq = 0
        if self.folder is not None:
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise ValueError(f"dead-letter folder {str(self.folder)!r} cannot be created ({e}); "
                                 f"choose a writable folder") from None
            existing = self._files()
            self._seq = int(existing[-1].name[len(_FILE_PREFIX):-len(_FILE_SUFFIX)]) if existing else 0

    # -- writing --------------------------------------------------------------------------------
    def add(self, letter: DeadLetter, source: str = "") -> None:
        """Keep one refused message."""
        self.add_many((letter,), source)

    def add_many(self, letters: Iterable[DeadLetter], source: str = "") -> None:
        """Keep ``letters``; ``source`` (a connector name) fills in letters that name none."""
        rows = [lt.to_json(self.max_payload_bytes) for lt in letters]
        if not rows:
            return
        if source:
            for r in rows:
                r["source"] = r["source"] or source
        with self._lock:
            self.count += len(rows)
            for r in rows:
                self.reasons[_reason_kind(r["reason"])] += 1
                self._recent.append(r)
            if self.folder is not None:
                self._write(rows)

    def _write(self, rows: list[dict[str, Any]]) -> None:
        data = "".join(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n" for r in rows).encode()
        if self._fh is None or self._fsize + len(data) > self._file_limit and self._fsize > 0:
            self._rotate()
        self._fh.write(data)
        self._fh.flush()
        self._fsize += len(data)

    def _rotate(self) -> None:
        if self._fh is not None:
            self._fh.close()
        self._seq += 1
        path = self.folder / f"{_FILE_PREFIX}{self._seq:06d}{_FILE_SUFFIX}"
        self._fh = open(path, "ab")  # kept open between writes; closed in close()
        self._fsize = path.stat().st_size
        files = self._files()
        total = sum(f.stat().st_size for f in files)
        while len(files) > 1 and total > self.max_bytes - self._file_limit:
            total -= files[0].stat().st_size
            files[0].unlink()
            files.pop(0)

    def _files(self) -> list[Path]:
        return sorted(self.folder.glob(f"{_FILE_PREFIX}*{_FILE_SUFFIX}")) if self.folder else []

    # -- reading --------------------------------------------------------------------------------
    def recent(self, n: int = 50) -> list[dict[str, Any]]:
        """The ``n`` most recent letters, newest last (as JSON-ready dicts)."""
        with self._lock:
            items = list(self._recent)
        return items[-n:] if n > 0 else []

    def read_all(self) -> list[dict[str, Any]]:
        """Every letter still on disk, oldest first (empty without a folder)."""
        out = []
        with self._lock:
            for f in self._files():
                for line in f.read_text(encoding="utf-8").splitlines():
                    if line:
                        out.append(json.loads(line))
        return out

    def disk_bytes(self) -> int:
        """Bytes the dead-letter files take on disk."""
        return sum(f.stat().st_size for f in self._files())

    def close(self) -> None:
        """Close the current dead-letter file."""
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None


def _reason_kind(reason: str) -> str:
    """The reason without its details, for counting (text up to the first ':')."""
    return reason.split(":", 1)[0][:80]


def payload_of(row: dict[str, Any]) -> bytes:
    """The (possibly truncated) raw payload of a stored letter."""
    return base64.b64decode(row["payload_b64"])
