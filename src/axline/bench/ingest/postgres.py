"""The PostgreSQL historian's write rate against a plain COPY into the same table."""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import numpy as np

from axline.batch import Batch
from axline.bench.ingest.embedded import make_batches


def _raw_copy(conn: Any, table: str, batches: list[Batch], ids: np.ndarray) -> float:
    """Seconds for a raw binary COPY (+ commit) per batch of the same rows into ``table``."""
    from axline.historian.postgres import copy_payload

    t = time.perf_counter()
    with conn.cursor() as cur:
        for b in batches:
            payload = copy_payload(ids[b.idx], b.ts, b.value, b.quality)
            with cur.copy(f"COPY {table} (tag_id, ts, value, quality) FROM STDIN (FORMAT BINARY)") as cp:
                cp.write(payload)
            conn.commit()
    return time.perf_counter() - t


def part_postgres(args: argparse.Namespace) -> dict[str, Any]:
    """Ingest rate and query times of the PostgreSQL historian."""
    import psycopg

    from axline.historian.postgres import PostgresHistorian

    batches = make_batches(args.pg_points, args.batch, args.tags, seed=1)
    n = sum(len(b) for b in batches)
    schema = f"axline_bench_{os.getpid()}"
    cols = "(tag_id int NOT NULL, ts bigint NOT NULL, value float8 NOT NULL, quality smallint NOT NULL)"
    with psycopg.connect(args.dsn) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"CREATE TABLE {schema}.plain {cols}")
        conn.commit()
        try:
            out: dict[str, Any] = {"points": n, "layout": "blocks"}
            h = PostgresHistorian(args.dsn, schema=schema)
            h.append(batches[0])  # registers the tags and makes the partition (not timed)
            warm = len(batches[0])
            ids = np.array([h._tag_ids[p] for p in batches[0].paths], np.int32)
            rounds: dict[str, list[float]] = {"backend": [], "copy_plain": []}
            for r in range(args.rounds):  # interleaved, so that a noisy neighbour hits all alike
                t = time.perf_counter()
                for k, b in enumerate(batches):
                    shift = (r + 1) * len(batches) + k  # fresh timestamps each round, same day
                    h.append(Batch(b.paths, b.idx, b.ts + shift * 100 * 1_000_000, b.value, b.quality))
                rounds["backend"].append(time.perf_counter() - t)
                rounds["copy_plain"].append(_raw_copy(conn, f"{schema}.plain", batches, ids))
            assert h.count() == warm + args.rounds * n
            h.close()
            best = {k: min(v) for k, v in rounds.items()}
            out["postgres_points_per_s"] = n / best["backend"]
            out["copy_plain_points_per_s"] = n / best["copy_plain"]
            out["postgres_vs_copy"] = best["copy_plain"] / best["backend"]
            out["rounds_s"] = rounds
        finally:
            conn.rollback()
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
            conn.commit()
    return out
