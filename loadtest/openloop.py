"""The open-loop load driver of a sustained run, in its own process: ``python -m loadtest.openloop
SPEC`` (a :class:`LoadSpec` as JSON); ``loadtest.run`` plans the run (:func:`plan_all`), then
starts it.

The whole run is planned before its clock starts, so planning takes no CPU from sandan during
the run: in chunks of consecutive ticket slots (``generate(..., chunk=k)`` with a seed of its
own), on every core, each chunk's records written to ``plan-<k>.msgpack`` and its ground truth
appended to the truth shard files, its expected alerts to the alert truth files
(loadtest.results). A chunk's records join the send queue by time, read back from its file,
which is then deleted.
Every tick (20 ms) the records due are appended to one batch per partition (``create_batch`` /
``send_batch``; the partition is the one Kafka's default partitioner picks for the key, a random
one without a key), all stamped with the tick's time. The load does not wait for sandan: a slow
sandan shows as lag and latency, not as a slower load. With ``rate`` 0 the driver sends
20,000 tickets per second of ``duration`` as fast as it can, planning only the faults whose
outcome does not depend on timing.

Kept after a record is sent: its guid's 64-bit key and its send time (``sent-keys.bin`` uint64,
``sent-ms.bin`` float64), for the latency. ``driver.json`` (a :class:`DriverSummary`) sums the
run up.
"""

from __future__ import annotations

import asyncio
import bisect
import heapq
import os
import random
import sys
import time
from array import array
from collections import defaultdict, deque
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from multiprocessing import get_context
from operator import itemgetter
from pathlib import Path
from typing import Any, NamedTuple

import msgspec
from aiokafka import AIOKafkaProducer

from loadtest.generator import generate
from loadtest.results import AlertFiles, ShardFiles, alert_truth_frames, guid_key, truth_frames
from loadtest.truth import DEFAULT_MIX, FaultMix
from schemas.keys import murmur2_partition

__all__ = ("MIXES", "DriverSummary", "LoadSpec", "chunk_slots", "main", "mix_for", "plan_all")

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
AS_FAST_AS_POSSIBLE = 20_000  # tickets planned per second of ``duration`` with rate 0
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
    alerts: int = 0  # the alerts expected (each once)


class Chunk(NamedTuple):
    """A planned chunk; its records are in its file."""

    number: int
    slots: int
    tickets: int
    decisions: int
    rejections: int
    alerts: int = 0


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


def chunk_path(spec: LoadSpec, index: int) -> Path:
    return Path(spec.out) / f"plan-{index:05d}.msgpack"


def plan_chunk(
    spec: LoadSpec, mix: FaultMix, size: int, total: int, index: int
) -> tuple[Chunk, list[tuple[int, bytes]], list[tuple[int, bytes]]]:
    """Plan chunk ``index`` (slots ``index * size`` on, at most ``total`` in all), times from the
    run's start; write its records to its file, return it, its truth frames and its alert truth
    frames."""
    first = index * size
    count = min(size, total - first)
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
    chunk_path(spec, index).write_bytes(msgspec.msgpack.encode(records))
    decisions = sum(len(revisions) for revisions in plan.decisions.values())
    chunk = Chunk(index, count, plan.tickets, decisions, len(plan.rejections), len(plan.alerts))
    return chunk, truth_frames(plan, spec.shards), alert_truth_frames(plan, spec.shards)


def plan_all(spec: LoadSpec) -> list[Chunk]:
    """Plan the whole run on every core: the chunk files, the ground truth appended to the
    truth files and the alert truth files, and ``plan.json`` listing the chunks for the
    driver."""
    size = chunk_slots(spec.rate)
    rate = spec.rate or AS_FAST_AS_POSSIBLE
    total = max(1, round(rate * spec.duration))
    plan = partial(plan_chunk, spec, mix_for(spec), size, total)
    truth = ShardFiles(Path(spec.out), "truth", spec.shards)
    alerts = AlertFiles(Path(spec.out), spec.shards)
    chunks: list[Chunk] = []
    started = time.monotonic()
    try:
        with ProcessPoolExecutor(os.cpu_count(), mp_context=get_context("spawn")) as pool:
            for chunk, frames, alert_frames in pool.map(plan, range(-(-total // size))):
                for shard, frame in frames:
                    truth.write(shard, frame)
                for shard, frame in alert_frames:
                    alerts.truth.write(shard, frame)
                chunks.append(chunk)
    finally:
        truth.close()
        alerts.close()
    (Path(spec.out) / "plan.json").write_bytes(msgspec.json.encode(chunks))
    print(
        f"driver: planned {total} ticket slots in {len(chunks)} chunks in "
        f"{time.monotonic() - started:.0f}s",
        flush=True,
    )
    return chunks


_decode_records = msgspec.msgpack.Decoder(list[tuple[float, str, int, bytes | None, bytes, int]])


def load_chunk(spec: LoadSpec, index: int) -> list[Rec]:
    """A planned chunk's records, its file deleted."""
    path = chunk_path(spec, index)
    records = _decode_records.decode(path.read_bytes())
    path.unlink()
    return records


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


async def drive(spec: LoadSpec, chunks: list[Chunk]) -> DriverSummary:
    """Send the planned ``chunks``; return the summary."""
    timed = spec.rate > 0
    queue = deque(chunks)
    slots_taken = 0

    async def take() -> list[Rec]:
        nonlocal slots_taken
        chunk = queue.popleft()
        slots_taken += chunk.slots
        return await asyncio.to_thread(load_chunk, spec, chunk.number)

    producer = AIOKafkaProducer(
        bootstrap_servers=spec.brokers,
        linger_ms=0,
        max_batch_size=1024 * 1024,
        max_request_size=8 * 1024 * 1024,
    )
    pending = await take()
    await producer.start()
    sender = Sender(producer, Path(spec.out))
    pos, behind, report_at = 0, 0.0, 10.0
    t0 = time.monotonic()
    sender.started = time.time()
    try:
        while True:
            now = time.monotonic() - t0
            if queue and (
                now >= slots_taken / spec.rate - LOOKAHEAD if timed else pos >= len(pending)
            ):
                pending, pos = list(heapq.merge(pending[pos:], await take(), key=itemgetter(0))), 0
                continue
            if pos >= len(pending) and not queue:
                break
            if timed:
                end = bisect.bisect_right(pending, now, lo=pos, key=itemgetter(0))
                end = min(end, pos + 4 * SLICE)
            else:
                end = min(len(pending), pos + SLICE)
            if end > pos:
                behind = max(behind, now - pending[pos][0]) if timed else 0.0
                await sender.send(pending[pos:end])
                pos = end
            if now >= report_at:
                report_at += 10.0
                print(
                    f"driver: {now:.0f}s, {sender.records} records, {behind:.2f}s most behind",
                    flush=True,
                )
            if not timed:
                await asyncio.sleep(0)
                continue
            due = pending[pos][0] if pos < len(pending) else float("inf")
            if queue:
                due = min(due, slots_taken / spec.rate - LOOKAHEAD)
            await asyncio.sleep(min(max(due - (time.monotonic() - t0), TICK), 0.25))
        slots_ended = sender.started + (slots_taken / spec.rate if timed else time.monotonic() - t0)
        await sender.finish()
    finally:
        await producer.stop()
    return DriverSummary(
        started=sender.started,
        slots_ended=slots_ended,
        ended=time.time(),
        max_behind=round(behind, 3),
        records=sender.records,
        sent_per_second=sender.per_second,
        chunks=len(chunks),
        slots=slots_taken,
        tickets=sum(c.tickets for c in chunks),
        decisions=sum(c.decisions for c in chunks),
        rejections=sum(c.rejections for c in chunks),
        alerts=sum(c.alerts for c in chunks),
    )


def main(argv: list[str] | None = None) -> int:
    """Run the driver on the spec given as JSON; write ``driver.json`` into its ``out``."""
    args = sys.argv[1:] if argv is None else argv
    spec = msgspec.json.decode(args[0], type=LoadSpec)
    chunks = msgspec.json.decode((Path(spec.out) / "plan.json").read_bytes(), type=list[Chunk])
    summary = asyncio.run(drive(spec, chunks))
    (Path(spec.out) / "driver.json").write_bytes(msgspec.json.encode(summary))
    print(
        f"driver: done, {summary.records} records of {summary.tickets} tickets in "
        f"{summary.ended - summary.started:.1f}s",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
