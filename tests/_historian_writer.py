"""Writer process for the crash test: appends numbered batches and prints each number once acknowledged.

Usage: python tests/_historian_writer.py DIR FIRST_BATCH [FSYNC] [SEGMENT_BYTES] [COMPACT_MIN_RECORDS]

Batch ``k`` is fully determined by ``k`` (see :func:`make_batch`), so the test can rebuild the exact
readings of every acknowledged batch. Runs until it is killed.
"""

from __future__ import annotations

import sys

import numpy as np

from axline.batch import Batch

NS = 1_000_000_000


def batch_tags(k: int) -> list[str]:
    """Tags of batch k: a fixed set plus one tag that is new every 5th batch (tests tags-before-record)."""
    tags = [f"changwon/plant1/line1/cnc/cnc{j}/spindle_temp" for j in range(5)]
    tags.append(f"changwon/plant1/line1/press/press{k // 5}/force")
    return tags


def make_batch(k: int) -> Batch:
    """Readings of batch k: values encode (k, i) so every reading can be checked exactly."""
    n = 200 + (k * 37) % 300
    tags = batch_tags(k)
    i = np.arange(n)
    idx = ((i * 7 + k) % len(tags)).astype(np.int32)
    ts = (k * NS + i * 1000).astype(np.int64)
    value = k * 1_000_000.0 + i
    quality = (i % 3 == 0).astype(np.uint8) * 2
    return Batch(tags, idx, ts, value, quality)


def main() -> None:
    from axline.historian.embedded import EmbeddedHistorian

    path, first = sys.argv[1], int(sys.argv[2])
    fsync = sys.argv[3] if len(sys.argv) > 3 else "none"
    segment_bytes = int(sys.argv[4]) if len(sys.argv) > 4 else 64 * 1024 * 1024
    h = EmbeddedHistorian(path, fsync=fsync, segment_bytes=segment_bytes)
    if len(sys.argv) > 5:
        h.compact_min_records = int(sys.argv[5])
    print("open", flush=True)
    k = first
    while True:
        h.append(make_batch(k))
        print(k, flush=True)  # the acknowledgement
        k += 1


if __name__ == "__main__":
    main()
