#!/usr/bin/env python3
"""Enqueue-to-start latency of Godwit's queue, for ops/bench/queue.

A `godwit worker` must already be running against --dsn, idle and waiting (woken by
LISTEN/NOTIFY). This enqueues no-op jobs one at a time, --interval-ms apart, each by a
plain INSERT (as an application would), waits until all have run, and reports the
percentiles of the time from just before the client sends the INSERT (its wall clock, in the
payload) to the start of the claim that picked the job up (the server's now(), the same
machine's clock).

Prints one line of JSON: {"latency_p50_ms": ..., "latency_p99_ms": ..., "samples": N}.
"""

import argparse
import asyncio
import json
import sys
import time

import asyncpg


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--interval-ms", type=float, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()

    conn = await asyncpg.connect(args.dsn)
    await conn.execute("DELETE FROM godwit.jobs")
    total = args.warmup + args.samples
    next_at = time.monotonic()
    for n in range(total):
        await conn.execute(
            "INSERT INTO godwit.jobs (kind, name, payload) VALUES ('noop', $1, jsonb_build_object('t', $2::float8))",
            f"latency {n}", time.time())
        next_at += args.interval_ms / 1000
        await asyncio.sleep(max(0, next_at - time.monotonic()))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        done = await conn.fetchval("SELECT count(*) FROM godwit.jobs WHERE state = 'succeeded'")
        if done == total:
            break
        await asyncio.sleep(0.05)
    else:
        print(f"FAILED: only {done} of {total} latency jobs ran within 30 s", file=sys.stderr)
        return 1
    row = await conn.fetchrow(
        """
        SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS p50,
               percentile_cont(0.99) WITHIN GROUP (ORDER BY ms) AS p99, count(*) AS n
        FROM (SELECT (extract(epoch FROM started_at) - (payload->>'t')::float8) * 1000 AS ms
              FROM godwit.jobs ORDER BY id OFFSET $1) s
        """,
        args.warmup,
    )
    await conn.close()
    print(json.dumps({"latency_p50_ms": round(row["p50"], 3), "latency_p99_ms": round(row["p99"], 3), "samples": row["n"]}))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
