"""Store-and-forward: in order, nothing lost, nothing duplicated, bounded with a clear error."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from axline.batch import Batch
from axline.spool import (
    DiskSpool,
    SpoolFullError,
    StoreAndForward,
    StoreRefusedError,
    decode_batch,
    encode_batch,
)


def _batch(k: int, n: int = 50) -> Batch:
    return Batch([f"s/a/l/c/x/t{k % 3}", "s/a/l/c/x/u"], np.arange(n) % 2, k * 1000 + np.arange(n),
                 np.full(n, float(k)), np.zeros(n))


def test_encode_decode_round_trip_and_damage_is_detected():
    b = _batch(7)
    back = decode_batch(encode_batch(b))
    assert back.paths == b.paths
    for col in ("idx", "ts", "value", "quality"):
        np.testing.assert_array_equal(getattr(back, col), getattr(b, col))
    data = bytearray(encode_batch(b))
    data[-3] ^= 0xFF
    with pytest.raises(ValueError, match="CRC"):
        decode_batch(bytes(data))


class FlakyStore:
    """A destination that is down while ``up`` is False (like a restarted PostgreSQL)."""

    def __init__(self) -> None:
        self.up = True
        self.got: list[float] = []
        self.refused = 0

    def deliver(self, batch: Batch) -> None:
        if not self.up:
            self.refused += 1
            raise ConnectionError("server closed the connection")
        self.got.append(batch.value[0])


def test_outage_buffers_on_disk_and_delivers_in_order(tmp_path):
    store = FlakyStore()
    fwd = StoreAndForward(store.deliver, DiskSpool(tmp_path / "spool"))
    for k in range(5):
        fwd.put(_batch(k))
    store.up = False
    for k in range(5, 15):
        fwd.put(_batch(k))
    assert not fwd.online and len(fwd.spool) == 10
    assert fwd.drain_once() == 0  # still down
    store.up = True
    fwd.put(_batch(15))  # must queue behind the spool, not jump ahead of it
    assert store.got == [float(k) for k in range(16)]
    assert fwd.online and len(fwd.spool) == 0


def test_spool_survives_a_restart(tmp_path):
    store = FlakyStore()
    store.up = False
    fwd = StoreAndForward(store.deliver, DiskSpool(tmp_path / "spool"))
    for k in range(4):
        fwd.put(_batch(k))
    (tmp_path / "spool" / ".000000000099.batch.tmp").write_bytes(b"half")  # a crash mid-write
    # the process dies here; a new one finds the spool
    store.up = True
    fwd2 = StoreAndForward(store.deliver, DiskSpool(tmp_path / "spool"))
    assert len(fwd2.spool) == 4
    fwd2.drain_once()
    assert store.got == [0.0, 1.0, 2.0, 3.0]
    assert not list((tmp_path / "spool").glob(".*.tmp"))


def test_bound_is_enforced_with_a_clear_error_and_warning(tmp_path, caplog):
    store = FlakyStore()
    store.up = False
    size = len(encode_batch(_batch(0, n=1000)))
    fwd = StoreAndForward(store.deliver, DiskSpool(tmp_path / "spool", max_bytes=max(65536, size * 10)),
                          memory_readings=2500)
    n_fit = fwd.spool.max_bytes // size
    with caplog.at_level("WARNING"):
        for k in range(n_fit + 2):  # the spool holds n_fit, the memory queue two more
            fwd.put(_batch(k, n=1000))
        with pytest.raises(StoreRefusedError, match="full"):
            fwd.put(_batch(99, n=1000))
    assert any("% full" in r.message for r in caplog.records)
    assert any(isinstance(r.msg, str) and "cannot buffer on disk" in r.getMessage() for r in caplog.records)
    st = fwd.status()
    assert st["refused_readings"] == 1000 and sum(st["refused_by_tag"].values()) == 1000
    with pytest.raises(SpoolFullError):
        fwd.spool.put(_batch(100, n=1000))
    assert not list((tmp_path / "spool").glob(".*.tmp"))  # a refused write leaves no temp file
    store.up = True
    fwd.drain_once()
    assert store.got == [float(k) for k in range(n_fit + 2)]  # everything accepted was kept


def test_damaged_spool_file_is_moved_aside_not_fatal(tmp_path):
    store = FlakyStore()
    store.up = False
    fwd = StoreAndForward(store.deliver, DiskSpool(tmp_path / "spool"))
    for k in range(3):
        fwd.put(_batch(k))
    first = sorted((tmp_path / "spool").glob("*.batch"))[1]
    first.write_bytes(first.read_bytes()[:-5] + b"XXXXX")
    store.up = True
    fwd.drain_once()
    assert store.got == [0.0, 2.0]
    assert len(list((tmp_path / "spool").glob("*.damaged"))) == 1


async def test_background_task_retries_until_back(tmp_path):
    store = FlakyStore()
    store.up = False
    fwd = StoreAndForward(store.deliver, DiskSpool(tmp_path / "spool"), retry_s=0.05)
    task = asyncio.create_task(fwd.run())
    for k in range(3):
        fwd.put(_batch(k))
    deadline = time.monotonic() + 120  # generous: fails only if the worker never retries
    while store.refused < 3:  # the worker tried, and retried, while the destination was down
        assert time.monotonic() < deadline, "the worker did not retry"
        await asyncio.sleep(0.02)
    assert store.got == []
    store.up = True
    while len(store.got) < 3:
        assert time.monotonic() < deadline + 120, "nothing delivered after the destination came back"
        await asyncio.sleep(0.02)
    task.cancel()
    assert store.got == [0.0, 1.0, 2.0]
