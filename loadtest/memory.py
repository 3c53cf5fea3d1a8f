"""Worker memory while it holds many incomplete tickets.

    python -m loadtest.memory --brokers 127.0.0.1:9092 --incomplete 1000000

It produces one order (and nothing else) for each of ``--incomplete`` tickets under a fresh
topic prefix, with a window long enough that none closes, starts one worker, waits until the
worker has committed every input offset, and prints the worker's RSS (peak and settled) as
JSON. The state lives in RocksDB: the figure shows what the worker's caches and RocksDB's
memtables and block cache add on top of the interpreter.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import orjson
import psutil  # type: ignore[import-untyped]  # no stubs installed
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from loadtest.ids import check_char
from loadtest.processes import Worker, fresh_deployment, stop
from streams.settings import Settings

__all__ = ("main",)

MAX_DRAIN_S = 1800
_EXAMPLE = Path(__file__).resolve().parents[1] / "tests" / "data" / "order.json"


def _orders(count: int, prefix: str) -> list[tuple[bytes, bytes]]:
    template = orjson.loads(_EXAMPLE.read_bytes())
    out = []
    for n in range(count):
        first17 = f"44030519801226{n % 1000:03d}"
        order = template | {
            "orderNo": f"{prefix}{n:09d}",
            "guid": f"M{prefix}{n:09d}".ljust(36, "0")[:36],
            "buyerIdNumber": first17 + check_char(first17),
        }
        out.append((order["orderNo"].encode(), orjson.dumps(order)))
    return out


async def _produce(settings: Settings, records: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.brokers, linger_ms=20, max_batch_size=1024 * 1024
    )
    await producer.start()
    try:
        topic = settings.topic("order")
        for start in range(0, len(records), 50_000):
            chunk = records[start : start + 50_000]
            await asyncio.gather(*[await producer.send(topic, v, key=k) for k, v in chunk])
    finally:
        await producer.stop()


async def _lag(settings: Settings) -> int:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.brokers,
        group_id=settings.topic("sandan"),
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        tps = [TopicPartition(settings.topic("order"), p) for p in range(settings.partitions)]
        ends = await consumer.end_offsets(tps)
        committed = [await consumer.committed(tp) or 0 for tp in tps]
        return sum(ends[tp] - c for tp, c in zip(tps, committed, strict=True))
    finally:
        await consumer.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.memory")
    parser.add_argument("--brokers", default="127.0.0.1:9092")
    parser.add_argument("--incomplete", type=int, default=1_000_000)
    parser.add_argument("--partitions", type=int, default=12)
    args = parser.parse_args(argv)

    env = fresh_deployment("mem", args.brokers, args.partitions, "24h")
    settings = Settings.from_env(env)
    asyncio.run(
        _produce(
            settings, _orders(args.incomplete, settings.topic_prefix.upper().replace("-", "")[:6])
        )
    )
    print(f"produced {args.incomplete} orders; starting the worker", flush=True)
    peak = 0
    with tempfile.TemporaryDirectory() as data:
        worker = Worker("worker", env, Path(data) / "state", Path(data))
        process = psutil.Process(worker.process.pid)
        started = time.monotonic()
        try:
            while time.monotonic() - started < MAX_DRAIN_S:
                time.sleep(2)
                peak = max(peak, process.memory_info().rss)
                if asyncio.run(_lag(settings)) == 0:
                    break
            drained_s = time.monotonic() - started
            time.sleep(10)
            settled = process.memory_info().rss
            disk = sum(f.stat().st_size for f in Path(data).rglob("*") if f.is_file())
        finally:
            stop(worker.process)
    mib = 1024 * 1024
    print(
        orjson.dumps(
            {
                "incomplete_tickets": args.incomplete,
                "drained_s": round(drained_s, 1),
                "rss_peak_mib": round(peak / mib),
                "rss_settled_mib": round(settled / mib),
                "state_on_disk_mib": round(disk / mib),
            }
        ).decode()
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
