"""The open-loop load driver of a sustained run, in its own process: ``python -m loadtest.openloop
SPEC`` (a :class:`LoadSpec` as JSON); ``loadtest.run`` starts it.

The run is planned in chunks of consecutive ticket slots: ``generate(..., chunk=k)`` with a seed
of its own, in a thread, one or two chunks ahead. A chunk's records join the send queue by time.
Every tick (20 ms) the records due are appended to one batch per partition (``create_batch`` /
``send_batch``; the partition is the one Kafka's default partitioner picks for the key, a random
one without a key), all stamped with the tick's time. The load does not wait for sandan: a slow
sandan shows as lag and latency, not as a slower load. With ``rate`` 0 the driver sends as fast
as it can for ``duration`` seconds, planning only the faults whose outcome does not depend on
timing.

Kept after a record is sent: its guid's 64-bit key and its send time (``sent-keys.bin`` uint64,
``sent-ms.bin`` float64), for the latency. A chunk's ground truth is appended to the truth shard
files (loadtest.results) when the chunk joins the queue; its record values are dropped once
sent. ``driver.json`` (a :class:`DriverSummary`) sums the run up.
"""

from __future__ import annotations

import asyncio
import bisect
import heapq
import random
import sys
import time
from array import array
from collections import defaultdict, deque
from concurrent.futures import Future, ThreadPoolExecutor
from operator import itemgetter
from pathlib import Path
from typing import Any, NamedTuple

import msgspec
from aiokafka import AIOKafkaProducer

from loadtest.generator import generate
from loadtest.results import ShardFiles, guid_key, truth_frames
from loadtest.truth import DEFAULT_MIX, FaultMix
from schemas.keys import murmur2_partition

__all__ = ("MIXES", "DriverSummary", "LoadSpec", "chunk_slots", "main", "mix_for")

MIXES = {"default": DEFAULT_MIX, "even": FaultMix.even(), "clean": FaultMix()}
# Faults whose outcome depends on the time between records or on a window closing: not planned
# when sending as fast as possible (the records of a chunk then all go out at once).
TIMED_FAULTS = (
    "missing_document",
    "late_document",
    "duplicate",
    "stale_change",
    "annual_limit",
    "change_after_divert",
    "change_after_release",
    "unknown_document",
    "ambiguous_waybill",
)
TICK = 0.02
LOOKAHEAD = 1.0  # a chunk joins the queue this long before its first slot
SLICE = 5_000  # records per send call when sending as fast as possible
MAX_IN_FLIGHT = 2_000  # batches not yet acknowledged
FLUSH_EVERY = 1_000_000  # send times kept in memory before they go to the files
CHUNK_MAX = 20_000
_GUID = b'"guid":"'

# (send at, topic, partition, key, value, guid key)
Rec = tuple[float, str, int, bytes | None, bytes, int]


class LoadSpec(msgspec.Struct, frozen=True, kw_only=True):
    """What to send: ``rate`` tickets/s (0: as fast as possible) for ``duration`` seconds."""

    brokers: str
    prefix: str
    partitions: int
    rate: float
    duration: float
    seed: int
    mix: str
    window: float
    out: str
    shards: int = 1
    settle: float = 3.0
    max_delay: float = 1.0


class DriverSummary(msgspec.Struct, kw_only=True):
    """The driver's account of the run (times in seconds since the epoch)."""

    started: float  # the first slot
    slots_ended: float  # the last slot started (the planned load ends; tails follow)
    ended: float  # the last record acknowledged
    chunks: int
    slots: int
    tickets: int
    records: int
    decisions: int
    rejections: int
    max_behind: float  # the most the sends ever ran late, seconds
    sent_per_second: list[int]  # records sent in each second from ``started``


class Chunk(NamedTuple):
    """A planned chunk, ready to join the queue."""

    number: int
    records: list[Rec]
    slots: int
    tickets: int
    decisions: int
    rejections: int
    truth: list[tuple[int, bytes]]


def mix_for(spec: LoadSpec) -> FaultMix:
    """The fault mix named by ``spec.mix``; without timed faults when there is no rate."""
    mix = MIXES[spec.mix]
    if spec.rate > 0:
        return mix
    return msgspec.structs.replace(mix, **dict.fromkeys(TIMED_FAULTS, 0.0))


def chunk_slots(rate: float) -> int:
    """Slots per chunk: about 4 seconds of load, 500 to 20,000."""
    return CHUNK_MAX if rate <= 0 else int(min(CHUNK_MAX, max(500, rate * 4)))


def _guid_key(value: bytes) -> int:
    at = value.find(_GUID)
    return 0 if at < 0 else guid_key(value[at + 8 : at + 44])


def plan_chunk(spec: LoadSpec, mix: FaultMix, index: int, first: int, count: int) -> Chunk:
    """Plan slots ``first`` to ``first + count`` (chunk ``index``), times from the run's start."""
    rate = spec.rate if spec.rate > 0 else None
    plan = generate(
        spec.seed * 1_000_003 + index,
        count,
        rate=rate,
        window=spec.window,
        max_delay=spec.max_delay,
        settle=spec.settle,
        faults=mix,
        chunk=index,
    )
    offset = first / rate if rate else 0.0
    keyless = random.Random(index)
    n = spec.partitions
    records: list[Rec] = [
        (
            offset + r.at,
            spec.prefix + r.doc_type,
            keyless.randrange(n) if r.key is None else murmur2_partition(r.key, n),
            r.key,
            r.value,
            _guid_key(r.value),
        )
        for r in plan.records
    ]
    decisions = sum(len(revisions) for revisions in plan.decisions.values())
    truth = truth_frames(plan, spec.shards)
    return Chunk(index, records, count, plan.tickets, decisions, len(plan.rejections), truth)


class Sender:
    """Batches records per partition, keeps each guid's send time, counts per second."""

    def __init__(self, producer: AIOKafkaProducer, out: Path) -> None:
        self.producer = producer
        self.out = out
        self.inflight: deque[asyncio.Future[Any]] = deque()
        self.keys = array("Q")
        self.times = array("d")
        self.per_second: list[int] = []
        self.records = 0
        self.started = time.time()

    async def send(self, records: list[Rec]) -> None:
        """Send ``records`` now, one batch per partition (more if one fills up)."""
        wall = time.time()
        ms = int(wall * 1000)
        groups: dict[tuple[str, int], list[Rec]] = defaultdict(list)
        for rec in records:
            groups[rec[1], rec[2]].append(rec)
        producer = self.producer
        for (topic, partition), group in groups.items():
            batch = producer.create_batch()
            for rec in group:
                if batch.append(key=rec[3], value=rec[4], timestamp=ms) is None:
                    self.inflight.append(
                        await producer.send_batch(batch, topic, partition=partition)
                    )
                    batch = producer.create_batch()
                    batch.append(key=rec[3], value=rec[4], timestamp=ms)
            self.inflight.append(await producer.send_batch(batch, topic, partition=partition))
        for rec in records:
            if rec[5]:
                self.keys.append(rec[5])
                self.times.append(float(ms))
        second = max(0, int(wall - self.started))
        self.per_second.extend([0] * (second + 1 - len(self.per_second)))
        self.per_second[second] += len(records)
        self.records += len(records)
        while self.inflight and (self.inflight[0].done() or len(self.inflight) > MAX_IN_FLIGHT):
            await self.inflight.popleft()  # raises if the batch was not delivered
        if len(self.keys) >= FLUSH_EVERY:
            self.flush()

    async def finish(self) -> None:
        """Wait for every batch to be acknowledged; write the send times out."""
        while self.inflight:
            await self.inflight.popleft()
        self.flush()

    def flush(self) -> None:
        """Append the send times kept so far to the files and forget them."""
        with (self.out / "sent-keys.bin").open("ab") as keys:
            self.keys.tofile(keys)
        with (self.out / "sent-ms.bin").open("ab") as times:
            self.times.tofile(times)
        self.keys, self.times = array("Q"), array("d")


async def drive(spec: LoadSpec) -> DriverSummary:
    """Send the planned load; return the summary."""
    out = Path(spec.out)
    mix, size = mix_for(spec), chunk_slots(spec.rate)
    total = round(spec.rate * spec.duration) if spec.rate > 0 else None
    truth = ShardFiles(out, "truth", spec.shards)
    pool = ThreadPoolExecutor(1, thread_name_prefix="plan")
    ahead: deque[Future[Chunk]] = deque()
    submitted = 0
    counts = {"chunks": 0, "slots": 0, "tickets": 0, "decisions": 0, "rejections": 0}

    def plan_more() -> None:
        nonlocal submitted
        first = submitted * size
        if total is None or first < total:
            count = size if total is None else min(size, total - first)
            ahead.append(pool.submit(plan_chunk, spec, mix, submitted, first, count))
            submitted += 1

    async def take() -> list[Rec]:
        chunk = await asyncio.wrap_future(ahead.popleft())
        plan_more()
        for shard, frame in chunk.truth:
            truth.write(shard, frame)
        counts["chunks"] += 1
        counts["slots"] += chunk.slots
        counts["tickets"] += chunk.tickets
        counts["decisions"] += chunk.decisions
        counts["rejections"] += chunk.rejections
        return chunk.records

    producer = AIOKafkaProducer(
        bootstrap_servers=spec.brokers,
        linger_ms=0,
        max_batch_size=1024 * 1024,
        max_request_size=8 * 1024 * 1024,
    )
    plan_more()
    plan_more()
    pending = await take()
    await producer.start()
    sender = Sender(producer, out)
    pos, behind, report_at = 0, 0.0, 10.0
    t0 = time.monotonic()
    sender.started = time.time()
    try:
        while True:
            now = time.monotonic() - t0
            if ahead and (
                pos >= len(pending) and now < spec.duration
                if total is None
                else now >= counts["slots"] / spec.rate - LOOKAHEAD
            ):
                pending, pos = list(heapq.merge(pending[pos:], await take(), key=itemgetter(0))), 0
                continue
            if pos >= len(pending) and (not ahead or total is None):
                break
            if total is None:
                end = min(len(pending), pos + SLICE)
            else:
                end = bisect.bisect_right(pending, now, lo=pos, key=itemgetter(0))
                end = min(end, pos + 4 * SLICE)
            if end > pos:
                behind = max(behind, now - pending[pos][0]) if total else 0.0
                await sender.send(pending[pos:end])
                pos = end
            if now >= report_at:
                report_at += 10.0
                print(
                    f"driver: {now:.0f}s, {sender.records} records, {counts['tickets']} tickets "
                    f"planned, {behind:.2f}s most behind",
                    flush=True,
                )
            if total is None:
                await asyncio.sleep(0)
                continue
            due = pending[pos][0] if pos < len(pending) else float("inf")
            if ahead:
                due = min(due, counts["slots"] / spec.rate - LOOKAHEAD)
            await asyncio.sleep(min(max(due - (time.monotonic() - t0), TICK), 0.25))
        slots_ended = sender.started + (total / spec.rate if total else time.monotonic() - t0)
        await sender.finish()
    finally:
        await producer.stop()
        pool.shutdown(wait=False, cancel_futures=True)
        truth.close()
    return DriverSummary(
        started=sender.started,
        slots_ended=slots_ended,
        ended=time.time(),
        max_behind=round(behind, 3),
        records=sender.records,
        sent_per_second=sender.per_second,
        **counts,
    )


def main(argv: list[str] | None = None) -> int:
    """Run the driver on the spec given as JSON; write ``driver.json`` into its ``out``."""
    args = sys.argv[1:] if argv is None else argv
    spec = msgspec.json.decode(args[0], type=LoadSpec)
    summary = asyncio.run(drive(spec))
    (Path(spec.out) / "driver.json").write_bytes(msgspec.json.encode(summary))
    print(
        f"driver: done, {summary.records} records of {summary.tickets} tickets in "
        f"{summary.ended - summary.started:.1f}s",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
