"""The sustained load test: open-loop load, a verifier pass, a report with the raw ceiling.

    python -m loadtest.run --rate 5100 --duration 600 [--workers 2] [--brokers 127.0.0.1:9092]
        [--seed N] [--mix default|even|clean] [--out reports/] [--short]

It plans the whole load and its ground truth first (on every core, before anything is measured),
creates sandan's topics under a fresh prefix, starts ``--workers`` sandan workers (each with its
own data directory and web port; default one per core) and waits until they own every
partition; then the driver (loadtest.openloop, its own process) sends ``--rate`` tickets/s (0:
as fast as it can) for ``--duration`` seconds while loadtest.monitor samples CPU, memory and lag
every second. It waits
for the drain: the input lag at 0, then the window and a margin for the last timeouts, then the
outputs still for 3 s. It stops the workers, reads release, divert, rejected and alert, measures
the raw ceiling (loadtest.ceiling) on the same records, checks every ticket and every alert
against the ground truth and writes ``<out>/<UTC time>/`` report.md, report.json and plots
(loadtest.report). The workers' alert windows are ``truth.ALERT_WINDOW`` (30 days), so the
whole run is one window and the expected alerts follow from the plan (loadtest.alerts).
``--short``: 60 s at 100 tickets/s with every fault kind equally likely (FaultMix.even), for CI.

Every wait is bounded, and the run stops itself. Exit status: 0 if every ticket was decided and
every alert raised as the ground truth says, 1 if not, 2 if the run could not be carried out.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from loadtest.ceiling import CeilingResult, CeilingSpec
from loadtest.driver import alert_env
from loadtest.monitor import Monitor, broker_pid
from loadtest.openloop import AS_FAST_AS_POSSIBLE, MIXES, DriverSummary, LoadSpec, plan_all
from loadtest.processes import RunError, Worker, stop, tail, wait_ready
from loadtest.report import RunInfo, Transactions, write_report
from loadtest.results import AlertFiles, ShardFiles, read_outputs, verify_shards
from loadtest.truth import ALERT_WINDOW
from streams.settings import Settings
from streams.topics import Topics, create_topics

__all__ = ("delete_topics", "main")

SETTLE = 3.0
SHORT = {"rate": 100.0, "duration": 60.0, "mix": "even"}
LONG = {"rate": 5100.0, "duration": 600.0, "mix": "default"}
TICKETS_PER_SHARD = 250_000


async def _output_ends(consumer: AIOKafkaConsumer, partitions: list[TopicPartition]) -> int:
    ends = await asyncio.wait_for(consumer.end_offsets(partitions), 10)
    return int(sum(ends.values()))


def _holding(workers: list[Worker]) -> bool:
    """Whether a worker holds documents or ledger requests (or does not answer: busy)."""
    for worker in workers:
        order = (worker.status() or {}).get("order")
        if order is None or order.get("held") or order.get("requests_held"):
            return True
    return False


async def _wait_drain(
    brokers: str,
    topics: Topics,
    monitor: Monitor,
    workers: list[Worker],
    *,
    after: float,
    window: float,
    limit: float,
) -> tuple[float, list[str]]:
    """Wait until the input lag is 0 and the workers hold nothing (documents waiting for their
    turn, ledger requests: see /status), then the window + a margin (the last timeouts), then
    the outputs still for 3 s with nothing held; at most ``limit`` seconds. Return the wall
    time and notes."""
    notes: list[str] = []
    deadline = time.monotonic() + limit
    consumer = AIOKafkaConsumer(bootstrap_servers=brokers)
    await consumer.start()
    try:
        count = len(monitor.partitions) // len(topics.inputs)
        partitions = [TopicPartition(t, p) for t in topics.outputs for p in range(count)]
        caught_up: float | None = None
        last, still_since = -1, time.monotonic()
        while time.monotonic() < deadline:
            for worker in workers:
                worker.check()
            now = time.time()
            holding = await asyncio.to_thread(_holding, workers)
            if caught_up is None and monitor.last_lag == 0 and not holding:
                caught_up = now
            ends = await _output_ends(consumer, partitions)
            if ends != last:
                last, still_since = ends, time.monotonic()
            quiet = time.monotonic() - still_since
            timeouts_due = caught_up is not None and now >= max(caught_up, after) + window + 5
            if timeouts_due and quiet >= 3.0 and not holding:  # noqa: PLR2004
                return now, notes
            await asyncio.sleep(1.0)
    finally:
        await consumer.stop()
    notes.append(f"the drain did not finish within {limit:.0f}s (input lag {monitor.last_lag})")
    return time.time(), notes


async def _transactions(workers: list[Worker]) -> dict[str, tuple[float, float, float]]:
    """Each worker's committed transactions and their total seconds, and when read."""
    read = {}
    for worker in workers:
        counted = await asyncio.to_thread(worker.transactions)
        if counted is not None:
            read[worker.name] = (*counted, time.monotonic())
    return read


def _during(
    before: dict[str, tuple[float, float, float]], after: dict[str, tuple[float, float, float]]
) -> dict[str, Transactions]:
    """The transactions each worker committed between two readings."""
    return {
        name: Transactions(
            count=int(after[name][0] - counted),
            seconds=round(after[name][1] - seconds, 3),
            span_s=round(after[name][2] - at, 1),
        )
        for name, (counted, seconds, at) in before.items()
        if name in after
    }


async def delete_topics(brokers: str, names: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=brokers, request_timeout_ms=30_000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        doomed = [name for name in names if name in existing]
        if doomed:
            await admin.delete_topics(doomed)
    finally:
        await admin.close()


def _worker_env(spec: LoadSpec) -> dict[str, str]:
    """The workers' SANDAN_* settings for a run: the alerts' thresholds the plan expects, and
    their windows longer than the run (loadtest.driver.alert_env)."""
    return {
        "SANDAN_BROKERS": spec.brokers,
        "SANDAN_TOPIC_PREFIX": spec.prefix,
        "SANDAN_PARTITIONS": str(spec.partitions),
        "SANDAN_WINDOW": f"{spec.window:g}",
        **alert_env(),
    }


def _start_driver(spec: LoadSpec, out: Path) -> subprocess.Popen[bytes]:
    with (out / "driver.log").open("wb") as log:
        return subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "loadtest.openloop", msgspec.json.encode(spec).decode()],
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def _ceiling(spec: CeilingSpec, out: Path) -> CeilingResult:
    log = out / "ceiling.log"
    with log.open("wb") as errors:
        done = subprocess.run(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "loadtest.ceiling", msgspec.json.encode(spec).decode()],
            stdout=subprocess.PIPE,
            stderr=errors,
            timeout=spec.limit + 90,
            check=False,
        )
    lines = done.stdout.decode().strip().splitlines()
    if done.returncode != 0 or not lines:
        msg = f"the ceiling process failed ({done.returncode}):\n{tail(log)}"
        raise RunError(msg)
    return msgspec.json.decode(lines[-1], type=CeilingResult)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line, defaults resolved (``--short`` changes rate, duration and mix)."""
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.run", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--rate", type=float, help="tickets/s; 0: as fast as possible [5100]")
    parser.add_argument("--duration", type=float, help="seconds of load [600]")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="[one per core]")
    parser.add_argument("--brokers", default="127.0.0.1:9092")
    parser.add_argument("--seed", type=int, help="[random]")
    parser.add_argument("--mix", choices=sorted(MIXES), help="fault mix [default]")
    parser.add_argument("--out", default="reports", help="reports directory [reports]")
    parser.add_argument("--short", action="store_true", help="CI: 60 s, 100 tickets/s, even mix")
    parser.add_argument("--window", type=float, help="SANDAN_WINDOW s [10 short, 20-60, 3600]")
    parser.add_argument("--partitions", type=int, default=12)
    parser.add_argument("--ceiling-limit", type=float, help="seconds for the ceiling [120]")
    parser.add_argument("--keep-topics", action="store_true", help="do not delete the topics")
    args = parser.parse_args(argv)
    for name, value in (SHORT if args.short else LONG).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.window is None:  # without a rate no timed faults are planned: no window needed
        long = 3600.0 if not args.rate else min(60.0, max(20.0, args.duration / 10))
        args.window = 10.0 if args.short else long
    if args.ceiling_limit is None:
        args.ceiling_limit = 30.0 if args.short else 120.0
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1, 10**6)
    if args.rate < 0 or args.duration <= 0 or args.workers < 1 or args.window < 1 + 3 * SETTLE:
        parser.error(f"need rate >= 0, duration > 0, workers >= 1, window >= {1 + 3 * SETTLE:g}")
    return args


async def _run(args: argparse.Namespace, out: Path, started: datetime) -> int:
    prefix = f"lt-{uuid.uuid4().hex[:8]}."
    planned = (args.rate or AS_FAST_AS_POSSIBLE) * args.duration
    spec = LoadSpec(
        brokers=args.brokers,
        prefix=prefix,
        partitions=args.partitions,
        rate=args.rate,
        duration=args.duration,
        seed=args.seed,
        mix=args.mix,
        window=args.window,
        settle=SETTLE,
        out=str(out),
        shards=max(1, math.ceil(planned / TICKETS_PER_SHARD)),
    )
    settings = Settings.from_env(_worker_env(spec))
    config = msgspec.to_builtins(spec) | {
        "workers": args.workers,
        "short": args.short,
        "started_utc": f"{started:%Y-%m-%d %H:%M:%S} UTC",
        "host": f"{platform.node()}, {os.cpu_count()} CPUs",
    }
    (out / "config.json").write_text(json.dumps(config, indent=1))
    print(f"run: {out}, topics {prefix}*, seed {args.seed}; planning", flush=True)
    plan_all(spec)
    await asyncio.wait_for(create_topics(settings), 60)
    try:
        return await _load_and_report(args, out, spec, config, settings)
    finally:
        if not args.keep_topics:
            with contextlib.suppress(KafkaError, TimeoutError, OSError):
                doomed = [*Topics(settings).all(), f"{prefix}ceiling"]
                await asyncio.wait_for(delete_topics(args.brokers, doomed), 60)


async def _load_and_report(
    args: argparse.Namespace,
    out: Path,
    spec: LoadSpec,
    config: dict[str, Any],
    settings: Settings,
) -> int:
    """Workers, load, drain, outputs, ceiling, verification, report: the exit status."""
    topics, env = Topics(settings), _worker_env(spec)
    monitor = Monitor(args.brokers, settings.topic("sandan"), topics.inputs, args.partitions)
    monitor.watch("broker", broker_pid(args.brokers))
    workers: list[Worker] = []
    driver: subprocess.Popen[bytes] | None = None
    watching: asyncio.Task[None] | None = None
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="sandan-loadtest-") as data:
        try:
            for i in range(1, args.workers + 1):
                workers.append(Worker(f"worker-{i}", env, Path(data) / f"worker-{i}", out))
                monitor.watch(f"worker-{i}", workers[-1].process.pid)
            await wait_ready(workers, args.partitions, 120)
            watching = asyncio.create_task(monitor.run())
            print(f"run: {args.workers} worker(s) ready; load starts", flush=True)
            driver = _start_driver(spec, out)
            monitor.watch("driver", driver.pid)
            before = await _transactions(workers)
            limit = time.monotonic() + args.duration * 2 + args.window + 180
            while driver.poll() is None and time.monotonic() < limit:
                for worker in workers:
                    worker.check()
                await asyncio.sleep(0.5)
            if driver.poll() != 0:
                msg = f"the driver failed or overran:\n{tail(out / 'driver.log')}"
                raise RunError(msg)
            transactions = _during(before, await _transactions(workers))
            summary = msgspec.json.decode((out / "driver.json").read_bytes(), type=DriverSummary)
            print(f"run: load sent ({summary.tickets} tickets); draining", flush=True)
            drained_at, notes = await _wait_drain(
                args.brokers,
                topics,
                monitor,
                workers,
                after=summary.ended,
                window=args.window if args.rate else 0.0,  # no rate: no timeouts planned
                limit=max(120.0, args.duration) + (args.window if args.rate else 0.0),
            )
        finally:
            monitor.stop()
            if watching is not None:
                await asyncio.wait_for(watching, 30)
            stop(driver)
            for worker in workers:
                stop(worker.process)
    print("run: reading the outputs", flush=True)
    seen = ShardFiles(out, "seen", spec.shards)
    alerts = AlertFiles(out, spec.shards)
    expected = summary.decisions + summary.rejections + summary.alerts
    stats = await read_outputs(
        args.brokers,
        (topics.release, topics.divert, topics.rejected),
        args.partitions,
        seen,
        expected=expected,
        deadline=time.monotonic() + 120 + expected / 10_000,
        alert=topics.alert,
        alerts=alerts.seen,
    )
    ceiling = None
    if args.ceiling_limit > 0:
        print("run: measuring the raw ceiling", flush=True)
        size = stats.decision_bytes // max(len(stats.decision_ts), 1)
        ceiling = _ceiling(
            CeilingSpec(
                brokers=args.brokers,
                prefix=spec.prefix,
                partitions=args.partitions,
                records=summary.records,
                per_ticket=summary.records / max(summary.tickets, 1),
                value_bytes=int(size) or 1000,
                limit=args.ceiling_limit,
            ),
            out,
        )
    print("run: verifying", flush=True)
    truth = ShardFiles(out, "truth", spec.shards)
    verification = verify_shards(truth, seen, alerts, alert_window=ALERT_WINDOW)
    info = RunInfo(
        config=config,
        driver=summary,
        samples=monitor.samples,
        verification=verification,
        ceiling=ceiling,
        drained_at=drained_at,
        notes=notes,
        transactions=transactions,
    )
    report = write_report(info, stats, out)
    return 0 if report["verification"]["ok"] else 1


def main(argv: list[str] | None = None) -> int:
    """Run the load test; 0 if verified, 1 if not, 2 if the run failed."""
    args = parse_args(argv)
    started = datetime.now(UTC)
    out = Path(args.out) / f"{started:%Y%m%d-%H%M%S}"
    while out.exists():
        out = out.with_name(out.name + "-1")
    out.mkdir(parents=True)
    try:
        status = asyncio.run(_run(args, out, started))
    except (RunError, TimeoutError, OSError, subprocess.SubprocessError, KafkaError) as exc:
        print(f"run: failed: {exc}", file=sys.stderr, flush=True)
        (out / "error.txt").write_text(f"{exc}\n")
        status = 2
    for path in out.glob("*.bin"):  # the truth, the outputs and the send times: large
        path.unlink()
    if status != 2:  # noqa: PLR2004
        print((out / "report.md").read_text(), flush=True)
    print(f"run: report in {out}", flush=True)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
