#!/usr/bin/env python3
"""Peer half of the queue benchmark: measure PgQueuer (asyncpg driver) on this machine.

Usage (from the venv that has ops/bench/pgqueuer-requirements.txt installed):

    python pgqueuer_peer.py --dsn postgres://postgres@127.0.0.1:PORT/DBNAME \
        --jobs 20000 --latency-samples 300

What it does, in order:

1. Reinstalls PgQueuer's schema in that database with PgQueuer's own CLI
   (``python -m pgqueuer --pg-dsn DSN uninstall`` then ``... install``; the same
   thing as ``pgq uninstall`` / ``pgq install``).
2. Throughput, once with 1 worker process and once with 4: enqueue --jobs no-op jobs
   in bulk (Queries.enqueue with lists, then ANALYZE), start the worker processes (each a separate OS process, spawned, with its
   own asyncpg connection(s)), wait until every one of them has connected and built
   its PgQueuer, then release them all at once and time until the queue table is
   empty (every job done and acknowledged: PgQueuer deletes a job's row when it logs
   its completion). jobs/s = jobs / elapsed.
3. Enqueue-to-start latency: one idle worker process waiting on LISTEN/NOTIFY
   (PgQueuer's default wake-up); jobs enqueued one at a time every --latency-interval-ms,
   each payload carrying time.monotonic_ns() taken just before the enqueue call
   (CLOCK_MONOTONIC is system-wide on Linux, so it is comparable across processes);
   the job records monotonic_ns() at its first line. Warm-up jobs are dropped.

Consumer settings mirror PgQueuer's own tools/benchmark.py defaults: asyncpg driver
(one connection per PgQueuer instance), uvloop, dequeue batch size 10, unlimited
max_concurrent_tasks, an ``async def`` entrypoint that does nothing. Its benchmark
runs 5 consumers (PgQueuer instances) in one process; here --consumers-per-process
(default 1) says how many each worker process runs: on 2 cores 5 per process was no
faster with 1 process and clearly slower with 4 (20 connections).

Exactly one line of JSON goes to stdout at the end; everything else goes to stderr.
Every wait is bounded; on a timeout or a dead worker it exits non-zero with a message.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import json
import multiprocessing as mp
import os
import queue as queue_mod
import signal
import statistics
import subprocess
import sys
import threading
import time
import traceback

ENTRY_NOOP = "godwit_bench_noop"
ENTRY_LATENCY = "godwit_bench_latency"

T0 = time.monotonic()


def log(msg: str) -> None:
    print(f"[pgqueuer_peer +{time.monotonic() - T0:7.2f}s] {msg}", file=sys.stderr, flush=True)


class BenchError(Exception):
    """A failure with a message meant for the person running the benchmark."""


def run_loop(coro):  # type: ignore[no-untyped-def]
    """Run *coro* on uvloop (as PgQueuer's CLI and benchmark do) when available."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a PgQueuer dependency on Linux
        return asyncio.run(coro)
    return uvloop.run(coro)


# --------------------------------------------------------------------------- worker side


def worker_main(
    dsn: str,
    kind: str,
    consumers: int,
    batch_size: int,
    ready_q: mp.Queue,
    result_q: mp.Queue,
    start_evt: mp.Event,
    stop_evt: mp.Event,
    start_timeout: float,
) -> None:
    """Entry point of one worker OS process (multiprocessing, spawn context)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    try:
        run_loop(_worker(dsn, kind, consumers, batch_size, ready_q, result_q, start_evt, stop_evt, start_timeout))
    except BaseException:
        print(f"[pgqueuer_peer worker {os.getpid()}] failed:\n{traceback.format_exc()}", file=sys.stderr, flush=True)
        sys.exit(1)


async def _worker(
    dsn: str,
    kind: str,
    consumers: int,
    batch_size: int,
    ready_q: mp.Queue,
    result_q: mp.Queue,
    start_evt: mp.Event,
    stop_evt: mp.Event,
    start_timeout: float,
) -> None:
    import asyncpg
    from pgqueuer import PgQueuer
    from pgqueuer.db import AsyncpgDriver
    from pgqueuer.models import Job

    parent = os.getppid()
    executed = 0
    conns = [await asyncio.wait_for(asyncpg.connect(dsn=dsn), 30) for _ in range(consumers)]
    pgqs: list[PgQueuer] = []
    for conn in conns:
        pgq = PgQueuer(AsyncpgDriver(conn))
        if kind == "throughput":

            @pgq.entrypoint(ENTRY_NOOP)
            async def noop(job: Job) -> None:
                nonlocal executed
                executed += 1

        else:

            @pgq.entrypoint(ENTRY_LATENCY)
            async def latency(job: Job) -> None:
                started = time.monotonic_ns()
                seq, enqueued = (job.payload or b"").decode().split(":")
                result_q.put((int(seq), started - int(enqueued)))

        pgqs.append(pgq)

    ready_q.put(os.getpid())
    loop = asyncio.get_running_loop()
    if not await loop.run_in_executor(None, start_evt.wait, start_timeout):
        raise RuntimeError("never told to start")

    async def watch_stop() -> None:
        # Polls: a thread blocked on stop_evt.wait() could not be cancelled at exit.
        while not stop_evt.is_set() and os.getppid() == parent:
            await asyncio.sleep(0.05)
        for p in pgqs:
            p.shutdown.set()

    watcher = asyncio.create_task(watch_stop())
    try:
        await asyncio.gather(*(p.run(batch_size=batch_size) for p in pgqs))
    finally:
        watcher.cancel()
        for conn in conns:
            try:
                await asyncio.wait_for(conn.close(), 5)
            except Exception:
                conn.terminate()
    if kind == "throughput":
        result_q.put(("executed", executed))


# --------------------------------------------------------------------------- parent side


class Workers:
    """A group of spawned worker processes with a shared start/stop signal."""

    def __init__(self, args: argparse.Namespace, kind: str, count: int, consumers: int) -> None:
        ctx = mp.get_context("spawn")
        self.ready_q: mp.Queue = ctx.Queue()
        self.result_q: mp.Queue = ctx.Queue()
        self.start_evt = ctx.Event()
        self.stop_evt = ctx.Event()
        self.procs = [
            ctx.Process(
                target=worker_main,
                name=f"pgqueuer-{kind}-{i}",
                args=(
                    args.dsn,
                    kind,
                    consumers,
                    args.batch_size,
                    self.ready_q,
                    self.result_q,
                    self.start_evt,
                    self.stop_evt,
                    args.startup_timeout + 30,
                ),
                daemon=True,
            )
            for i in range(count)
        ]

    def check_alive(self) -> None:
        for p in self.procs:
            if not p.is_alive():
                raise BenchError(f"worker process {p.name} (pid {p.pid}) exited early with code {p.exitcode}")

    async def start(self, timeout: float) -> None:
        for p in self.procs:
            p.start()
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + timeout
        ready = 0
        while ready < len(self.procs):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BenchError(f"only {ready}/{len(self.procs)} worker processes got ready within {timeout:.0f}s")
            try:
                await loop.run_in_executor(None, self.ready_q.get, True, min(remaining, 0.5))
                ready += 1
            except queue_mod.Empty:
                self.check_alive()
        self.start_evt.set()

    def stop(self, timeout: float = 20.0) -> None:
        self.stop_evt.set()
        deadline = time.monotonic() + timeout
        for p in self.procs:
            p.join(max(0.0, deadline - time.monotonic()))
        for p in self.procs:
            if p.is_alive():
                log(f"worker {p.name} did not stop within {timeout:.0f}s; terminating it")
                p.terminate()
                p.join(5)
                if p.is_alive():
                    p.kill()
                    p.join(5)

    def results(self) -> list[object]:
        out = []
        while True:
            try:
                out.append(self.result_q.get_nowait())
            except queue_mod.Empty:
                return out
            except (EOFError, OSError):
                return out


def pgq_cli(args: argparse.Namespace, *cmd: str) -> subprocess.CompletedProcess[str]:
    """Run PgQueuer's own CLI (same as `pgq ...`) with this interpreter."""
    argv = [sys.executable, "-m", "pgqueuer", "--pg-dsn", args.dsn, *cmd]
    try:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired as e:
        raise BenchError(f"`pgq {' '.join(cmd)}` did not finish within 60s") from e
    # Its errors come as long rich tracebacks: keep the last lines, where the message is.
    lines = [ln for ln in (res.stdout + res.stderr).splitlines() if ln.strip()]
    for line in lines[-1:] if res.returncode == 0 else lines[-4:]:
        log(f"pgq {' '.join(cmd)}: {line}")
    return res


async def connect_queries(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    import asyncpg
    from pgqueuer.db import AsyncpgDriver
    from pgqueuer.queries import Queries

    try:
        conn = await asyncio.wait_for(asyncpg.connect(dsn=args.dsn), 30)
    except Exception as e:
        raise BenchError(f"cannot connect to {args.dsn}: {e}") from e
    return conn, Queries(AsyncpgDriver(conn))


async def reset_queue(conn, queries) -> None:  # type: ignore[no-untyped-def]
    await queries.clear_queue()
    await queries.clear_queue_log()
    await queries.clear_statistics_log()


async def install_schema(args: argparse.Namespace) -> None:
    conn, _ = await connect_queries(args)  # a clear message if the server is unreachable
    await conn.close()
    log("reinstalling PgQueuer schema with its CLI (uninstall, install)")
    pgq_cli(args, "uninstall")  # fails harmlessly when nothing is installed
    res = pgq_cli(args, "install")
    if res.returncode != 0:
        raise BenchError(f"`pgq install` failed with exit code {res.returncode}")
    res = pgq_cli(args, "verify", "--expect", "present")
    if res.returncode != 0:
        raise BenchError(f"`pgq verify` failed with exit code {res.returncode} after install")


async def measure_throughput(args: argparse.Namespace, nproc: int) -> float:
    conn, queries = await connect_queries(args)
    table = queries.qbe.qualified.queue_table
    workers = Workers(args, "throughput", nproc, args.consumers_per_process)
    try:
        await reset_queue(conn, queries)
        t = time.monotonic()
        for lo in range(0, args.jobs, 10_000):
            n = min(10_000, args.jobs - lo)
            try:
                await asyncio.wait_for(queries.enqueue([ENTRY_NOOP] * n, [None] * n, [0] * n), 60)
            except asyncio.TimeoutError as e:
                raise BenchError(f"bulk enqueue of {n} jobs took over 60s") from e
        # Fresh planner statistics before timing (made no measurable difference here; it
        # only keeps a cold, just-truncated table from skewing the first dequeues).
        await conn.execute(f"ANALYZE {table}")
        queued = await conn.fetchval(f"SELECT count(*) FROM {table}")
        if queued != args.jobs:
            raise BenchError(f"expected {args.jobs} queued jobs, found {queued}")
        log(f"[{nproc} proc] enqueued {args.jobs} jobs in {time.monotonic() - t:.2f}s; starting workers")

        await workers.start(args.startup_timeout)
        start = time.perf_counter()
        next_report = start + 2.0
        while True:
            left = await conn.fetchval(f"SELECT count(*) FROM {table}")
            now = time.perf_counter()
            if left == 0:
                elapsed = now - start
                break
            if now - start > args.phase_timeout:
                raise BenchError(
                    f"[{nproc} proc] {left}/{args.jobs} jobs still in the queue after {args.phase_timeout:.0f}s"
                )
            workers.check_alive()
            if now >= next_report:
                log(f"[{nproc} proc] {args.jobs - left}/{args.jobs} done")
                next_report = now + 2.0
            await asyncio.sleep(args.poll_interval_ms / 1000)
    finally:
        workers.stop()
        await conn.close()

    executed = sum(r[1] for r in workers.results() if isinstance(r, tuple) and r[0] == "executed")
    rate = args.jobs / elapsed
    log(f"[{nproc} proc] {args.jobs} jobs in {elapsed:.3f}s = {rate:.0f} jobs/s (handler ran {executed} times)")
    if executed < args.jobs:
        raise BenchError(f"[{nproc} proc] queue emptied but the handler ran only {executed}/{args.jobs} times")
    return rate


async def measure_latency(args: argparse.Namespace) -> tuple[float, float]:
    conn, queries = await connect_queries(args)
    workers = Workers(args, "latency", 1, 1)
    loop = asyncio.get_running_loop()
    interval = args.latency_interval_ms / 1000
    warmup = args.latency_warmup
    got: dict[int, int] = {}

    async def collect(until: float, want: set[int]) -> None:
        while not want.issubset(got):
            remaining = until - time.monotonic()
            if remaining <= 0:
                missing = len(want - got.keys())
                raise BenchError(f"latency: {missing} job(s) never started within the timeout")
            try:
                seq, ns = await loop.run_in_executor(None, workers.result_q.get, True, min(remaining, 0.5))
                got[seq] = ns
            except queue_mod.Empty:
                workers.check_alive()

    try:
        await reset_queue(conn, queries)
        await workers.start(args.startup_timeout)
        # Warm-up, one at a time and each awaited: also proves the worker is up and listening.
        for seq in range(warmup):
            await queries.enqueue(ENTRY_LATENCY, f"{seq}:{time.monotonic_ns()}".encode())
            await collect(time.monotonic() + 30, {seq})
            await asyncio.sleep(interval)
        log(f"latency: worker up, {warmup} warm-up jobs done; sending {args.latency_samples} jobs every {interval * 1000:.0f} ms")
        begin = time.monotonic()
        for i in range(args.latency_samples):
            delay = begin + i * interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            seq = warmup + i
            await queries.enqueue(ENTRY_LATENCY, f"{seq}:{time.monotonic_ns()}".encode())
        await collect(time.monotonic() + 30, set(range(warmup, warmup + args.latency_samples)))
    finally:
        workers.stop()
        await conn.close()

    samples_ms = [got[s] / 1e6 for s in range(warmup, warmup + args.latency_samples)]
    p50 = statistics.median(samples_ms)
    p99 = statistics.quantiles(samples_ms, n=100, method="inclusive")[98] if len(samples_ms) > 1 else samples_ms[0]
    log(
        f"latency: n={len(samples_ms)} p50={p50:.2f} ms p99={p99:.2f} ms "
        f"min={min(samples_ms):.2f} max={max(samples_ms):.2f}"
    )
    return p50, p99


async def run(args: argparse.Namespace) -> dict[str, object]:
    version = importlib.metadata.version("pgqueuer")
    log(
        f"pgqueuer {version}, asyncpg {importlib.metadata.version('asyncpg')}; jobs={args.jobs} "
        f"batch_size={args.batch_size} consumers/process={args.consumers_per_process}"
    )
    await install_schema(args)
    rate1 = await measure_throughput(args, 1)
    rate4 = await measure_throughput(args, 4)
    p50, p99 = await measure_latency(args)
    if not args.keep_schema:
        pgq_cli(args, "uninstall")
    return {
        "peer": "pgqueuer",
        "version": version,
        "jobs": args.jobs,
        "jobs_per_s_1": round(rate1, 1),
        "jobs_per_s_4": round(rate4, 1),
        "latency_p50_ms": round(p50, 3),
        "latency_p99_ms": round(p99, 3),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dsn", required=True, help="postgres://user@host:port/db (PgQueuer's schema is (re)installed there)")
    ap.add_argument("--jobs", type=int, default=20_000, help="jobs per throughput run (default 20000)")
    ap.add_argument("--latency-samples", type=int, default=300, help="measured latency jobs (default 300)")
    ap.add_argument("--latency-warmup", type=int, default=5, help="dropped warm-up latency jobs (default 5)")
    ap.add_argument("--latency-interval-ms", type=float, default=20.0, help="gap between latency jobs (default 20)")
    ap.add_argument("--batch-size", type=int, default=10, help="PgQueuer dequeue batch size (default 10, as its benchmark)")
    ap.add_argument(
        "--consumers-per-process",
        type=int,
        default=1,
        help="PgQueuer instances (each with its own connection) per throughput worker process (default 1)",
    )
    ap.add_argument("--poll-interval-ms", type=float, default=20.0, help="how often to check whether the queue is empty")
    ap.add_argument("--startup-timeout", type=float, default=60.0, help="seconds for workers to connect (default 60)")
    ap.add_argument("--phase-timeout", type=float, default=75.0, help="seconds allowed for one throughput run (default 75)")
    ap.add_argument("--deadline", type=float, default=170.0, help="abort the whole run after this many seconds (default 170)")
    ap.add_argument("--keep-schema", action="store_true", help="leave PgQueuer's schema installed at the end")
    args = ap.parse_args(argv)
    if args.jobs < 1 or args.latency_samples < 1 or args.batch_size < 1 or args.consumers_per_process < 1:
        ap.error("--jobs, --latency-samples, --batch-size and --consumers-per-process must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def hard_stop() -> None:  # last resort if the bounded cleanup itself hangs
        log(f"FAILED: still running {args.deadline + 30:.0f}s after start; exiting hard")
        os._exit(3)

    watchdog = threading.Timer(args.deadline + 30, hard_stop)
    watchdog.daemon = True
    watchdog.start()

    async def bounded() -> dict[str, object]:
        try:
            return await asyncio.wait_for(run(args), args.deadline)
        except asyncio.TimeoutError as e:
            raise BenchError(f"the whole run exceeded --deadline {args.deadline:.0f}s") from e

    try:
        result = run_loop(bounded())
    except BenchError as e:
        log(f"FAILED: {e}")
        return 1
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        watchdog.cancel()
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
