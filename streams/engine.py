"""The batched, transactional loop that drives the stages (all of sandan's Kafka I/O).

One iteration: poll a batch of records from every assigned partition, let the pipeline turn the
documents that arrived by the watermark (in arrival order, streams/arrivals.py), the internal
records and any due timers into output records, then produce the outputs and commit the
consumed offsets in **one Kafka transaction**. Only after the commit does the pipeline make its
state changes durable in the local store, so the local store never holds anything the changelog
does not (the Kafka Streams EOS model: the changelog is the truth, RocksDB a cache of it).

A rebalance waits for the batch in flight to commit (``lock``) before partitions move. Outputs
are produced as one record batch per partition: aiokafka's per-record ``send`` took an eighth
of the worker's time in the profile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.coordinator.assignors.range import RangePartitionAssignor

from schemas.keys import murmur2_partition
from streams.arrivals import ArrivalBuffer
from streams.settings import Settings
from streams.topics import MAX_MESSAGE_BYTES, Topics

__all__ = ("Engine", "Output", "Pipeline")

log = logging.getLogger(__name__)

MAX_RECORDS_PER_BATCH = 20_000  # fetched per poll
# Processed per step (one transaction) at most: a step holds the event loop, so the group's
# heartbeats wait for it. A worker draining a backlog spends up to ~120 us a record: 20,000
# take 2-3 s against the 10 s session timeout (60,000 overran it once in a measured run).
MAX_RECORDS_PER_STEP = 20_000
POLL_TIMEOUT_MS = 100
# The broker answers a fetch once this much is there or FETCH_MAX_WAIT_MS passed: under load a
# batch (and its transaction) holds about this much, not just what came since the last one;
# a light load waits at most the time, once per hop (a ticket's ledger round trip is 3 hops).
FETCH_MIN_BYTES = 512 * 1024
FETCH_MAX_WAIT_MS = 50
MAX_BUFFERED = 10_000  # records held back per partition before its fetching pauses


class Output(NamedTuple):
    """One record to produce; ``partition`` None lets the producer's partitioner choose."""

    topic: str
    key: bytes | None
    value: bytes | None
    partition: int | None = None
    headers: list[tuple[str, bytes]] | None = None
    timestamp: int | None = None  # None: the producer's clock


class Pipeline(Protocol):
    """What the engine drives: pure batch processing plus the state lifecycle."""

    def process(
        self, records: Sequence[ConsumerRecord[bytes, bytes]], now_ms: int, arrived_ms: int
    ) -> list[Output]:
        """Turn a batch of records (maybe none) and the timers due by ``arrived_ms`` (every
        document that arrived before it has been consumed) into outputs, decided at
        ``now_ms``, keeping the state changes pending."""

    def commit(self, offsets: dict[tuple[str, int], int]) -> None:
        """The transaction holding the pending changes committed (``offsets``: the last offset
        it wrote per topic and partition): make the changes durable locally."""

    def rollback(self) -> None:
        """The transaction aborted: forget the pending changes."""

    async def assign(self, partitions: set[int]) -> None:
        """Partitions (numbers, the same on every topic) now owned: restore their state."""

    async def revoke(self, partitions: set[int]) -> None:
        """Partitions no longer owned: release their state."""


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]  # untyped base class
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        async with self._engine.lock:  # the batch in flight commits first
            self._engine.forget(revoked)
            partitions = {tp.partition for tp in revoked}
            self._engine.assignment -= partitions
            await self._engine.pipeline.revoke(partitions)

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        async with self._engine.lock:
            partitions = {tp.partition for tp in assigned}
            await self._engine.pipeline.assign(partitions)
            self._engine.assignment |= partitions


class Engine:
    """Consumer, transactional producer and the loop between them."""

    def __init__(self, settings: Settings, pipeline: Pipeline) -> None:
        self.settings = settings
        self.topics = Topics(settings)
        self.pipeline = pipeline
        self.lock = asyncio.Lock()
        self.group_id = settings.topic("sandan")
        self.batches = 0
        self.records = 0
        self.assignment: set[int] = set()
        self._partition_counts: dict[str, int] = {}
        self._arrival_topics = {*self.topics.inputs, self.topics.repartition}
        self._last_arrival: dict[TopicPartition, int] = {}
        self._arrivals = ArrivalBuffer()
        self._paused: set[TopicPartition] = set()
        self._round_robin = 0
        self._held = False
        self._stopping = False

    async def start(self) -> None:
        """Connect; the clients are made here, inside the running event loop."""
        settings = self.settings
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.brokers,
            group_id=self.group_id,
            # Static membership: a worker restarted with the same id takes its partitions
            # back at once, without waiting for its dead predecessor's session to time out.
            group_instance_id=f"sandan-{settings.worker_id}",
            client_id=f"sandan-{settings.worker_id}",
            isolation_level="read_committed",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            partition_assignment_strategy=(RangePartitionAssignor,),
            max_partition_fetch_bytes=MAX_MESSAGE_BYTES,
            fetch_max_bytes=64 * 1024 * 1024,
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
            fetch_min_bytes=FETCH_MIN_BYTES,
            session_timeout_ms=10_000,
            heartbeat_interval_ms=1_000,
            rebalance_timeout_ms=60_000,
        )
        self.producer = AIOKafkaProducer(
            bootstrap_servers=settings.brokers,
            client_id=f"sandan-{settings.worker_id}",
            transactional_id=f"{settings.topic_prefix}sandan-{settings.worker_id}",
            enable_idempotence=True,
            acks="all",
            linger_ms=5,
            max_batch_size=1024 * 1024,
            max_request_size=2 * MAX_MESSAGE_BYTES,
            transaction_timeout_ms=30_000,
        )
        # The transactional producer starts first: initialising its id aborts whatever a
        # crashed predecessor with the same id left open, before any state is restored.
        await self.producer.start()
        self.consumer.subscribe(list(self.topics.consumed), listener=_Rebalance(self))
        await self.consumer.start()

    async def stop(self) -> None:
        self._stopping = True
        await self.consumer.stop()
        await self.producer.stop()

    async def run(self) -> None:
        """Process batches until stopped; an infrastructure error ends the run (and the worker)."""
        while not self._stopping:
            batch = await self.consumer.getmany(
                timeout_ms=0 if self._held else POLL_TIMEOUT_MS,
                max_records=MAX_RECORDS_PER_BATCH,
            )
            async with self.lock:
                await self._step(batch)

    async def _step(self, batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]) -> None:
        """Process the internal records fetched and the documents that arrived by the watermark
        (in arrival order, see streams/arrivals.py), then the timers due by it."""
        now_ms = int(time.time() * 1000)
        records: list[ConsumerRecord[bytes, bytes]] = []
        offsets: dict[TopicPartition, int] = {}
        for tp, part in batch.items():
            if not part:
                continue
            if tp.topic in self._arrival_topics:
                self._arrivals.add(tp, part)
                self._last_arrival[tp] = part[-1].timestamp
            else:
                records.extend(part)
                offsets[tp] = part[-1].offset + 1
        watermark, lagging = await self._arrived_until(now_ms)
        until = watermark
        # Bounded (MAX_RECORDS_PER_STEP); the timers then run only up to what was released.
        room = max(MAX_RECORDS_PER_STEP - len(records), 0)
        arrived, arrived_offsets = self._arrivals.release(until if lagging else None, room)
        held = self._arrivals.earliest(until if lagging else None)
        self._held = held is not None  # the next poll does not wait
        if held is not None:
            until = min(until, held - 1)
        records.extend(arrived)
        offsets.update(arrived_offsets)
        self._pause_overfull(batch, watermark)
        try:
            outputs = self.pipeline.process(records, now_ms, until)
            written = {}
            if outputs or records:
                written = await self._produce_transaction(outputs, offsets)
        except BaseException:
            self.pipeline.rollback()
            raise
        self.pipeline.commit(written)
        if records:
            self.batches += 1
            self.records += len(records)

    def _pause_overfull(self, fetched: Iterable[TopicPartition], until: int) -> None:
        """Stop fetching a partition whose records wait behind a lagging one; go on once its
        buffer drained. The partition the watermark waits for is never paused."""
        consumer, buffered = self.consumer, self._arrivals.buffered
        full = [
            tp
            for tp in fetched
            if buffered(tp) > MAX_BUFFERED
            and tp not in self._paused
            and self._last_arrival.get(tp) != until
        ]
        if full:
            consumer.pause(*full)
            self._paused.update(full)
        drained = [tp for tp in self._paused if buffered(tp) <= MAX_BUFFERED // 2]
        if drained:
            consumer.resume(*drained)
            self._paused.difference_update(drained)

    def forget(self, revoked: Iterable[TopicPartition]) -> None:
        """Partitions revoked: drop what was fetched from them and not processed."""
        revoked = list(revoked)
        self._arrivals.drop(revoked)
        for tp in revoked:
            self._last_arrival.pop(tp, None)
            self._paused.discard(tp)

    async def _produce_transaction(
        self, outputs: list[Output], offsets: dict[TopicPartition, int]
    ) -> dict[tuple[str, int], int]:
        """Produce ``outputs`` and commit the consumed ``offsets`` in one transaction; return
        the last offset written per topic and partition."""
        producer = self.producer
        await producer.begin_transaction()
        try:
            sent = [
                (await producer.send_batch(builder, topic, partition=partition), builder)
                for (topic, partition), builder in await self._record_batches(outputs)
            ]
            if offsets:
                await producer.send_offsets_to_transaction(offsets, self.group_id)
            await producer.commit_transaction()
        except BaseException:
            log.exception("transaction failed; aborting it")
            with contextlib.suppress(Exception):
                await asyncio.shield(producer.abort_transaction())
            raise
        written: dict[tuple[str, int], int] = {}
        for future, builder in sent:
            metadata = future.result()
            last = metadata.offset + builder.record_count() - 1
            where = (metadata.topic, metadata.partition)
            written[where] = max(written.get(where, -1), last)
        return written

    async def _record_batches(self, outputs: list[Output]) -> list[tuple[tuple[str, int], Any]]:
        """The outputs as record batches per topic and partition (one producer request each,
        instead of aiokafka's per-record path); keyed records go where Kafka's default
        partitioner would put them."""
        builders: dict[tuple[str, int], Any] = {}
        full: list[tuple[tuple[str, int], Any]] = []
        for topic, key, value, chosen, headers, stamp in outputs:
            partition = chosen
            if partition is None:
                count = self._partition_counts.get(topic) or await self._partition_count(topic)
                if key is None:
                    self._round_robin += 1
                    partition = self._round_robin % count
                else:
                    partition = murmur2_partition(key, count)
            where = (topic, partition)
            builder = builders.get(where)
            if builder is None:
                builder = builders[where] = self.producer.create_batch()
            if builder.append(key=key, value=value, timestamp=stamp, headers=headers or []) is None:
                full.append((where, builder))
                builder = builders[where] = self.producer.create_batch()
                builder.append(key=key, value=value, timestamp=stamp, headers=headers or [])
        return [*full, *builders.items()]

    async def _arrived_until(self, now_ms: int) -> tuple[int, bool]:
        """The watermark: the time up to which every document that arrived has been fetched
        (the clock where a partition is caught up, else the timestamp of the last record
        fetched from it, so a worker that lags closes no window early; 0 until every
        partition was fetched once), and whether some partition lags."""
        until, lagging = now_ms, False
        consumer = self.consumer
        for tp in consumer.assignment():
            if tp.topic not in self._arrival_topics:
                continue
            stable = consumer.last_stable_offset(tp)
            if stable is None:
                return 0, True
            if await consumer.position(tp) < stable:
                lagging = True
                until = min(until, self._last_arrival.get(tp, 0))
        return until, lagging

    async def _partition_count(self, topic: str) -> int:
        count = len(await self.producer.partitions_for(topic))
        self._partition_counts[topic] = count
        return count
