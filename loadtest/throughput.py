"""A throughput measurement: a backlog of tickets drained by one worker or more.

    python -m loadtest.throughput --brokers 127.0.0.1:9092 --tickets 100000 [--workers 1]

It creates topics under a fresh prefix, produces the whole plan (default fault mix, no
timeouts within the run) before the workers start, starts ``sandan worker`` (``--workers``
of them, sharing the partitions), and reads the
outputs until every expected decision and rejection is there. Throughput is tickets decided
per minute between the first and the last output's timestamp; the outputs are checked against
the ground truth. The sustained, open-loop load test with latency is ``make loadtest``'s job.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import msgspec
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from loadtest.generator import generate
from loadtest.processes import Worker, fresh_deployment, stop
from loadtest.truth import DEFAULT_MIX
from loadtest.verify import verify
from streams.settings import Settings
from streams.topics import Topics

__all__ = ("main",)

# A backlog is produced at once, ignoring the plan's timing: only faults whose outcome does not
# depend on the order or the time of arrival (or on a window closing) are planned.
BACKLOG_MIX = msgspec.structs.replace(
    DEFAULT_MIX,
    missing_document=0.0,
    late_document=0.0,
    duplicate=0.0,
    stale_change=0.0,
    annual_limit=0.0,
    change_after_divert=0.0,
    change_after_release=0.0,
    unknown_document=0.0,
    ambiguous_waybill=0.0,
)


async def _produce_all(settings: Settings, records: list[tuple[str, bytes | None, bytes]]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.brokers, linger_ms=20, max_batch_size=1024 * 1024
    )
    await producer.start()
    try:
        futures = [await producer.send(t, v, key=k) for t, k, v in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def _drain(
    settings: Settings, expected: int, limit_s: float, workers: list[Worker]
) -> list[tuple[str, int, bytes]]:
    topics = Topics(settings)
    consumer = AIOKafkaConsumer(
        topics.release,
        topics.divert,
        topics.rejected,
        bootstrap_servers=settings.brokers,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        group_id=None,
    )
    await consumer.start()
    seen: list[tuple[str, int, bytes]] = []
    end = time.monotonic() + limit_s
    try:
        while len(seen) < expected and time.monotonic() < end:
            for worker in workers:
                worker.check()
            batch = await consumer.getmany(timeout_ms=500, max_records=50_000)
            for tp, records in batch.items():
                seen.extend((tp.topic, r.timestamp, r.value) for r in records)
    finally:
        await consumer.stop()
    return seen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.throughput")
    parser.add_argument("--brokers", default="127.0.0.1:9092")
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--partitions", type=int, default=12)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)

    env = fresh_deployment("tp", args.brokers, args.partitions, "1h")
    settings = Settings.from_env(env)
    started = time.monotonic()
    plan = generate(args.seed, args.tickets, rate=None, window=3600.0, faults=BACKLOG_MIX)
    records = [(settings.topic(r.doc_type), r.key, r.value) for r in plan.records]
    took = time.monotonic() - started
    print(f"planned {plan.tickets} tickets, {len(records)} records in {took:.1f}s", flush=True)
    started = time.monotonic()
    asyncio.run(_produce_all(settings, records))
    print(f"produced them in {time.monotonic() - started:.1f}s; starting the worker", flush=True)

    expected = sum(len(d) for d in plan.decisions.values()) + len(plan.rejections)
    with tempfile.TemporaryDirectory() as data:
        workers = [
            Worker(f"worker-{i}", env, Path(data) / f"worker-{i}", Path(data))
            for i in range(1, args.workers + 1)
        ]
        try:
            seen = asyncio.run(_drain(settings, expected, 1800, workers))
        finally:
            for worker in workers:
                stop(worker.process)
    topics = Topics(settings)
    decisions = [orjson.loads(v) for t, _, v in seen if t in (topics.release, topics.divert)]
    rejections = [orjson.loads(v) for t, _, v in seen if t == topics.rejected]
    report = verify(plan, decisions, rejections)
    stamps = sorted(ts for _, ts, _ in seen)
    span_s = max((stamps[-1] - stamps[0]) / 1000, 1e-3) if stamps else float("nan")
    per_minute = report.tickets_decided / span_s * 60
    print(
        orjson.dumps(
            {
                "tickets": plan.tickets,
                "decided": report.tickets_decided,
                "outputs": len(seen),
                "span_s": round(span_s, 2),
                "tickets_per_minute": round(per_minute),
                "mismatches": len(report.mismatches),
            }
        ).decode()
    )
    for line in report.mismatches[:10]:
        print(f"  - {line}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
