"""The forwarder never dies: poison batches are quarantined, a hung destination never blocks the
caller, a retryable outage backs off and delivers everything in order, exactly once."""

from __future__ import annotations

import json
import threading
import time

import numpy as np

from _wait import wait_until
from axline.batch import Batch
from axline.spool import DiskSpool, StoreAndForward, decode_batch


def _batch(k: int, n: int = 20, path: str = "s/a/l/c/x/t") -> Batch:
    return Batch([path], np.zeros(n), k * 1000 + np.arange(n), np.full(n, float(k)), np.zeros(n))


class PoisonStore:
    """Rejects any batch holding the value 13 with a non-retryable error, like a constraint violation."""

    def __init__(self) -> None:
        self.got: list[float] = []
        self.down = False

    def deliver(self, batch: Batch) -> None:
        if self.down:
            raise ConnectionError("server went away")
        if 13.0 in batch.value:
            raise ValueError("value 13 violates a constraint")
        self.got.append(float(batch.value[0]))


def test_poison_batch_is_quarantined_with_its_reason_and_the_queue_moves_on(tmp_path):
    store = PoisonStore()
    events = []
    fwd = StoreAndForward(store.deliver, DiskSpool(tmp_path / "spool"), poison_after=3,
                          on_event=lambda *a: events.append(a))
    store.down = True
    for k in (11, 12, 13, 14):  # the poison waits in the spool behind an outage
        fwd.put(_batch(k))
    assert len(fwd.spool) == 4
    store.down = False
    for _ in range(5):  # drain_once used to raise ValueError here, for ever
        fwd.drain_once()
    fwd.put(_batch(15))
    assert store.got == [11.0, 12.0, 14.0, 15.0]
    assert fwd.quarantined == 1 and fwd.quarantined_readings == 20
    files = sorted((tmp_path / "spool" / "quarantine").glob("*.batch"))
    assert len(files) == 1
    assert decode_batch(files[0].read_bytes()).value[0] == 13.0  # kept as it was, not rewritten
    reason = json.loads(next((tmp_path / "spool" / "quarantine").glob("*.reason.json")).read_text())
    assert "ValueError" in reason["reason"] and reason["attempts"] == 3
    codes = [e[0] for e in events]
    assert "store.quarantined" in codes and "store.offline" in codes and "store.recovered" in codes
    assert fwd.status()["quarantined_batches"] == 1


def test_background_worker_survives_poison_and_delivers_good_input(tmp_path):
    store = PoisonStore()
    fwd = StoreAndForward(store.deliver, DiskSpool(tmp_path / "spool"), poison_after=2, retry_s=0.01)
    fwd.start()
    try:
        for k in range(10, 20):
            fwd.put(_batch(k))
        wait_until(lambda: len(store.got) == 9 and fwd.quarantined == 1)
        for k in range(20, 25):
            fwd.put(_batch(k))
        wait_until(lambda: len(store.got) == 14)
    finally:
        fwd.close()
    assert store.got == [float(k) for k in range(10, 25) if k != 13]


class HangingStore:
    """A destination that stops answering (a broker that stops acknowledging, a database that hangs)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.release.set()
        self.got: list[float] = []
        self.calls = 0

    def deliver(self, batch: Batch) -> None:
        self.calls += 1
        if not self.release.wait(60):
            raise TimeoutError("no acknowledgement")
        self.got.append(float(batch.value[0]))


def test_hung_destination_never_blocks_put_and_spills_to_disk(tmp_path):
    store = HangingStore()
    fwd = StoreAndForward(store.deliver, DiskSpool(tmp_path / "spool"), spill_after_s=0.05)
    fwd.start()
    try:
        fwd.put(_batch(0))
        wait_until(lambda: store.got == [0.0])
        store.release.clear()
        t0 = time.monotonic()
        for k in range(1, 50):
            fwd.put(_batch(k))  # must return at once although delivery hangs
        put_s = time.monotonic() - t0
        assert put_s < 30.0  # not the 60 s the destination hangs (put never waits for it)
        wait_until(lambda: len(fwd.spool) == 49)  # spilled to disk while the destination hangs: durable
        store.release.set()
        wait_until(lambda: fwd.pending == 0)
    finally:
        fwd.close()
    assert store.got == [float(k) for k in range(50)]  # in order, each exactly once


def test_retryable_outage_backs_off_and_recovers(tmp_path):
    store = PoisonStore()
    store.down = True
    fwd = StoreAndForward(store.deliver, DiskSpool(tmp_path / "spool"), retry_s=0.01, max_retry_s=0.08)
    calls = []
    orig = store.deliver

    def counting(b):
        calls.append(time.monotonic())
        return orig(b)

    fwd.deliver = counting
    fwd.start()
    try:
        for k in range(5):
            fwd.put(_batch(k))
        wait_until(lambda: len(calls) >= 6)
        assert fwd._backoff > fwd.retry_s  # backing off, not hammering
        assert not fwd.online and fwd.quarantined == 0  # a retryable error never quarantines
        store.down = False
        wait_until(lambda: len(store.got) == 5)
    finally:
        fwd.close()
    assert store.got == [0.0, 1.0, 2.0, 3.0, 4.0] and fwd.online
