"""Application load for ops/bench/lockwait: point reads by primary key at a fixed rate.

Open loop: read i is scheduled at start + i / rate whatever happened to the reads before it, and
its latency runs from that scheduled time to its answer, so time spent waiting for a free
connection (all of them stuck behind a lock) counts, and a stall cannot hide the reads it
delays. Runs until SIGTERM or SIGINT (or --max-seconds), then waits up to --drain-seconds for
the reads in flight and prints one JSON object on stdout: count, errors, p50/p99/max in ms, and
the worst reads with the second (from the start) they were scheduled at.

    .build-bench/venv/bin/python ops/bench/lockwait_app.py --dsn URL --ready-file F
"""

import argparse
import asyncio
import json
import random
import signal
import sys
import time

import asyncpg


def percentile(sorted_values, fraction):
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--rate", type=float, default=100.0, help="reads per second")
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--max-id", type=int, default=100000)
    parser.add_argument("--table", default="media")
    parser.add_argument("--ready-file", help="touched once every connection is open")
    parser.add_argument("--max-seconds", type=float, default=120.0, help="stop by then regardless")
    parser.add_argument("--drain-seconds", type=float, default=20.0)
    args = parser.parse_args()

    pool = await asyncpg.create_pool(
        args.dsn,
        min_size=args.connections,
        max_size=args.connections,
        # Plain statements, no client-side statement cache: every read is planned by the server
        # and so takes the table's ACCESS SHARE lock, as an ORM's read would.
        statement_cache_size=0,
        server_settings={"application_name": "lockwait_app"},
    )
    query = f"SELECT id FROM {args.table} WHERE id = $1"
    # Warm every connection once.
    async with asyncio.TaskGroup() as group:
        for _ in range(args.connections):
            group.create_task(pool.fetchval("SELECT 1"))

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    latencies = []  # (scheduled second, latency ms)
    errors = []
    in_flight = set()

    async def read(scheduled, key):
        try:
            await pool.fetchval(query, key)
            latencies.append((scheduled - start, (time.monotonic() - scheduled) * 1000.0))
        except Exception as error:  # counted, never fatal
            errors.append(f"{type(error).__name__}: {error}")

    if args.ready_file:
        open(args.ready_file, "w").close()
    start = time.monotonic()
    interval = 1.0 / args.rate
    i = 0
    rng = random.Random(1)
    while not stop.is_set():
        scheduled = start + i * interval
        if scheduled - start > args.max_seconds:
            break
        delay = scheduled - time.monotonic()
        if delay > 0:
            try:
                await asyncio.wait_for(stop.wait(), timeout=delay)
                break
            except TimeoutError:
                pass
        task = asyncio.create_task(read(scheduled, rng.randint(1, args.max_id)))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
        i += 1
    scheduled_count = i
    if in_flight:
        await asyncio.wait(list(in_flight), timeout=args.drain_seconds)
    unfinished = sum(1 for task in in_flight if not task.done())
    await pool.expire_connections()
    try:
        await asyncio.wait_for(pool.close(), timeout=5)
    except TimeoutError:
        pool.terminate()

    values = sorted(ms for _, ms in latencies)
    worst = sorted(latencies, key=lambda pair: pair[1], reverse=True)[:5]
    print(json.dumps({
        "scheduled": scheduled_count,
        "count": len(values),
        "errors": len(errors) + unfinished,
        "first_errors": errors[:3],
        "duration_s": round(time.monotonic() - start, 2),
        "p50_ms": round(percentile(values, 0.50), 2) if values else None,
        "p99_ms": round(percentile(values, 0.99), 2) if values else None,
        "max_ms": round(values[-1], 2) if values else None,
        "worst": [{"at_s": round(at, 2), "ms": round(ms, 1)} for at, ms in worst],
    }))


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(130)
