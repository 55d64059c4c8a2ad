"""Hot-band application for ops/bench/backfill: sessions that hold row locks in one band of keys.

The band is BAND_KEYS consecutive keys of media in key order, starting at --start-fraction of the
table (about 40%, so that a backfill walking the key has warmed up when it reaches the band).
Session i of N owns the band's keys i, i+N, i+2N, ...: the sessions never block one another, so
every wait they see is someone else's (the backfill's). Each session loops

    BEGIN; UPDATE media SET updated_at = now() WHERE id = $1; sleep uniform 50-200 ms; COMMIT

on a random key of its own slice, and measures each UPDATE's latency: its wait for the row lock
plus the update itself. Errors are counted by SQLSTATE, never fatal; a broken session reconnects.

Runs until SIGTERM or SIGINT (or --max-seconds), lets each session finish its transaction (up
to --drain-seconds), and prints one JSON object on stdout: count, errors (by SQLSTATE), p50, p99
and max in ms, how many UPDATEs took over --slow-ms, and the worst few with the second (from the
application's start) they started at. When --window-file exists at the end it holds the method's
start and end (two epoch seconds on one line): the figures then cover only the UPDATEs that
overlap that window, and "method_s" gives it in the same clock as the worst UPDATEs' "at_s".

    .build-bench/venv/bin/python ops/bench/band_app.py --dsn URL --ready-file F --window-file W
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


def error_key(error):
    """The SQLSTATE of a server error, else the exception's type (a broken connection, a timeout)."""
    state = getattr(error, "sqlstate", None)
    return state if state else type(error).__name__


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--band-keys", type=int, default=20000)
    parser.add_argument("--start-fraction", type=float, default=0.4, help="where the band starts, 0..1 of the table")
    parser.add_argument("--hold-min-ms", type=float, default=50.0)
    parser.add_argument("--hold-max-ms", type=float, default=200.0)
    parser.add_argument("--slow-ms", type=float, default=100.0, help="an UPDATE over this is counted as slow")
    parser.add_argument("--ready-file", help="touched once every session is connected")
    parser.add_argument("--window-file", help="the method's start and end, epoch seconds, written by the caller")
    parser.add_argument("--max-seconds", type=float, default=1200.0, help="stop by then regardless")
    parser.add_argument("--drain-seconds", type=float, default=20.0)
    args = parser.parse_args()
    if args.sessions < 1 or args.band_keys < args.sessions or not 0 <= args.start_fraction < 1:
        sys.exit("band_app.py: need --sessions >= 1, --band-keys >= --sessions and 0 <= --start-fraction < 1")

    settings = {"application_name": "bench_band_app", "search_path": "public"}
    first = await asyncpg.connect(args.dsn, server_settings=settings)
    total = await first.fetchval("SELECT count(*) FROM media")
    offset = min(int(total * args.start_fraction), max(0, total - args.band_keys))
    band = [row["id"] for row in await first.fetch(
        "SELECT id FROM media ORDER BY id OFFSET $1 LIMIT $2", offset, args.band_keys)]
    await first.close()
    if len(band) < args.sessions:
        sys.exit(f"band_app.py: media has {total} rows, too few for a band of {args.sessions} sessions")
    slices = [band[i::args.sessions] for i in range(args.sessions)]

    connections = await asyncio.gather(
        *(asyncpg.connect(args.dsn, server_settings=settings) for _ in range(args.sessions)))

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    samples = []  # (epoch start, monotonic start, latency ms)
    errors = {}   # SQLSTATE or exception type -> count
    first_errors = []

    def count_error(error):
        key = error_key(error)
        errors[key] = errors.get(key, 0) + 1
        if len(first_errors) < 3:
            first_errors.append(f"{key}: {error}".replace("\n", " "))

    async def session(i):
        rng = random.Random(i)
        keys = slices[i]
        connection = connections[i]
        while not stop.is_set():
            try:
                if connection.is_closed():
                    connection = await asyncpg.connect(args.dsn, server_settings=settings)
                async with connection.transaction():
                    key = rng.choice(keys)
                    wall, started = time.time(), time.monotonic()
                    await connection.execute("UPDATE media SET updated_at = now() WHERE id = $1", key)
                    samples.append((wall, started, (time.monotonic() - started) * 1000.0))
                    await asyncio.sleep(rng.uniform(args.hold_min_ms, args.hold_max_ms) / 1000.0)
            except Exception as error:  # counted, never fatal
                count_error(error)
                await asyncio.sleep(0.05)
        try:
            await connection.close(timeout=5)
        except Exception:  # a broken session at the end changes no figure
            connection.terminate()

    if args.ready_file:
        open(args.ready_file, "w").close()
    start_wall, start = time.time(), time.monotonic()
    tasks = [asyncio.create_task(session(i)) for i in range(args.sessions)]
    try:
        await asyncio.wait_for(stop.wait(), timeout=args.max_seconds)
    except TimeoutError:
        stop.set()
    _, unfinished = await asyncio.wait(tasks, timeout=args.drain_seconds)
    for task in unfinished:
        task.cancel()
    if unfinished:
        errors["unfinished"] = len(unfinished)

    window = None
    if args.window_file:
        try:
            with open(args.window_file) as f:
                t0, t1 = (float(v) for v in f.read().split()[:2])
            window = (t0, t1)
        except (OSError, ValueError):
            window = None
    chosen = [s for s in samples if window is None or (s[0] <= window[1] and s[0] + s[2] / 1000.0 >= window[0])]
    values = sorted(ms for _, _, ms in chosen)
    worst = sorted(chosen, key=lambda s: s[2], reverse=True)[:5]
    print(json.dumps({
        "count": len(values),
        "count_all": len(samples),
        "errors": dict(sorted(errors.items())),
        "first_errors": first_errors,
        "band": {"offset": offset, "keys": len(band), "first": str(band[0]), "last": str(band[-1])},
        "duration_s": round(time.monotonic() - start, 2),
        "method_s": [round(window[0] - start_wall, 2), round(window[1] - start_wall, 2)] if window else None,
        "p50_ms": round(percentile(values, 0.50), 2) if values else None,
        "p99_ms": round(percentile(values, 0.99), 2) if values else None,
        "max_ms": round(values[-1], 2) if values else None,
        "over_slow": sum(1 for v in values if v > args.slow_ms),
        "slow_ms": args.slow_ms,
        "worst": [{"at_s": round(mono - start, 2), "ms": round(ms, 1)} for _, mono, ms in worst],
    }))


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(130)
