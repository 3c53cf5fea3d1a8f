"""The raw ceiling: how fast one plain aiokafka process moves a run's records, with no logic.

    python -m loadtest.ceiling '<CeilingSpec as JSON>'

It consumes the run's input topics from the beginning (a consumer group of its own, the same
fetch settings as sandan's engine), and for every ``per_ticket`` records consumed produces one
record of ``value_bytes`` bytes (about a decision's size) to ``{prefix}ceiling``, on the
partition it consumed from, batched (``create_batch``/``send_batch``), committing the group's
offsets after each batch, until it has consumed ``records`` records or ``limit`` seconds passed.
No transactions, no decoding, no state: what one Python process on this broker can move at
best. The time runs from the first record fetched to the last output acknowledged. It prints a
:class:`CeilingResult` as JSON on its last line.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections import deque
from typing import Any

import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

__all__ = ("CeilingResult", "CeilingSpec", "main", "measure")

_INPUTS = ("order", "payment", "logistics")


class CeilingSpec(msgspec.Struct, frozen=True, kw_only=True):
    """Where the run's records are and how much to move."""

    brokers: str
    prefix: str
    partitions: int
    records: int
    per_ticket: float = 3.0
    value_bytes: int = 1000
    limit: float = 120.0


class CeilingResult(msgspec.Struct, kw_only=True):
    """What the ceiling process moved, and how fast."""

    records_in: int
    records_out: int
    seconds: float
    records_per_s: float
    tickets_per_min: float
    complete: bool  # all ``records`` consumed within the limit


async def _create_topic(spec: CeilingSpec, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=spec.brokers, request_timeout_ms=30_000)
    await admin.start()
    try:
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics([NewTopic(topic, spec.partitions, 1)])
    finally:
        await admin.close()


async def measure(spec: CeilingSpec) -> CeilingResult:
    """Consume and re-produce as described above."""
    out_topic = f"{spec.prefix}ceiling"
    await _create_topic(spec, out_topic)
    consumer = AIOKafkaConsumer(
        *(f"{spec.prefix}{kind}" for kind in _INPUTS),
        bootstrap_servers=spec.brokers,
        group_id=f"{spec.prefix}ceiling",
        isolation_level="read_committed",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
        fetch_max_wait_ms=100,
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=spec.brokers, linger_ms=0, max_batch_size=1024 * 1024
    )
    value = b'{"pad":"' + b"x" * max(0, spec.value_bytes - 10) + b'"}'
    inflight: deque[asyncio.Future[Any]] = deque()
    records_in = records_out = 0
    started: float | None = None
    await producer.start()
    await consumer.start()
    try:
        deadline = time.monotonic() + spec.limit
        while records_in < spec.records and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=100, max_records=20_000)
            if not batch:
                continue
            started = started or time.monotonic()
            for tp, records in batch.items():
                records_in += len(records)
                owed = int(records_in / spec.per_ticket) - records_out
                if owed <= 0:
                    continue
                out = producer.create_batch()
                for i in range(owed):
                    key = records[-1 - i % len(records)].key
                    if out.append(key=key, value=value, timestamp=None) is None:
                        inflight.append(
                            await producer.send_batch(out, out_topic, partition=tp.partition)
                        )
                        out = producer.create_batch()
                        out.append(key=key, value=value, timestamp=None)
                inflight.append(await producer.send_batch(out, out_topic, partition=tp.partition))
                records_out += owed
            offsets = {tp: records[-1].offset + 1 for tp, records in batch.items() if records}
            await consumer.commit(offsets)
            while inflight and inflight[0].done():
                await inflight.popleft()
        while inflight:
            await inflight.popleft()
    finally:
        await consumer.stop()
        await producer.stop()
    seconds = time.monotonic() - started if started is not None else 0.0
    rate = records_in / seconds if seconds > 0 else 0.0
    return CeilingResult(
        records_in=records_in,
        records_out=records_out,
        seconds=round(seconds, 3),
        records_per_s=round(rate, 1),
        tickets_per_min=round(records_out / seconds * 60, 1) if seconds > 0 else 0.0,
        complete=records_in >= spec.records,
    )


def main(argv: list[str] | None = None) -> int:
    """Measure on the spec given as JSON; print the result as JSON."""
    args = sys.argv[1:] if argv is None else argv
    spec = msgspec.json.decode(args[0], type=CeilingSpec)
    result = asyncio.run(measure(spec))
    print(msgspec.json.encode(result).decode(), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
