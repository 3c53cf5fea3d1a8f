"""The batched, transactional loop that drives the stages (all of sandan's Kafka I/O but the
changelog restore).

One iteration: poll a batch of records from every assigned partition, let the pipeline turn the
documents that arrived by the watermark (in arrival order, streams/arrivals.py), the internal
records and any due timers into output records, then produce the outputs and commit the
consumed offsets in **one Kafka transaction**. Only after the commit does the pipeline make its
state changes durable in the local store, so the local store never holds anything the changelog
does not (the Kafka Streams EOS model: the changelog is the truth, RocksDB a cache of it).

The clients are confluent-kafka's (librdkafka), for one property aiokafka lacks: a zombie is
fenced (KIP-447). Every transaction commits offsets with the consumer's group metadata, so a
worker that stalled past its session timeout while its partitions moved on cannot commit
anything: the group coordinator refuses its offsets (stale generation), the transaction aborts
and the worker exits for a restart. A new owner first reads the committed offsets, which a
read_committed consumer asks for as *stable* (the broker answers once no transaction of the
previous owner is pending on them), and only then restores the partitions' state, so it never
starts from a changelog a late commit would still change. Why this and not aiokafka:
docs/fencing.md.

Rebalance callbacks run inside ``consume()``, between two steps, on the consumer's own thread;
they hand the restore to the event loop and wait for it.

The consumer's client id advertises the worker's web server, ``sandan-worker {url}``
(``SANDAN_ADVERTISED_URL``): the group's description (``describe_consumer_groups``) lists every
worker with its URL and partitions. With metrics on (streams/metrics.py) the engine counts each
step's transaction and records, and measures the input partitions' lag at most once a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import time
from collections.abc import Callable, Coroutine, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple, Protocol

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
)
from confluent_kafka import TopicPartition as KafkaPartition

from schemas.keys import murmur2_partition
from streams.arrivals import ArrivalBuffer
from streams.hops import MARK, TICKETS, hop_origin, mark_value, read_mark, request_source
from streams.kafka_security import librdkafka_security
from streams.metrics import StepMetrics, worker_client_id
from streams.records import Output, Record, Routed, TopicPartition, consumed
from streams.settings import Settings
from streams.topics import MAX_MESSAGE_BYTES, Topics

__all__ = ("Engine", "Pipeline")

log = logging.getLogger(__name__)

MAX_RECORDS_PER_BATCH = 20_000  # fetched per poll
# Applied per step (one transaction) at most: a long step delays the timers and the commit
# of everything behind it. A worker draining a backlog spends up to ~120 us a record: 20,000
# take 2-3 s.
MAX_RECORDS_PER_STEP = 20_000
POLL_TIMEOUT = 0.1  # seconds
# The broker answers a fetch once this much is there or FETCH_MAX_WAIT_MS passed: under load a
# batch (and its transaction) holds about this much, not just what came since the last one;
# a light load waits at most the time, once per hop (a ticket's ledger round trip is 3 hops).
FETCH_MIN_BYTES = 512 * 1024
FETCH_MAX_WAIT_MS = 50
FETCH_MAX_BYTES = 64 * 1024 * 1024
# Documents held for their turn (streams/arrivals.py) before the input partitions ahead of
# the watermark pause; they resume at half.
MAX_HELD = 100_000
# A caught-up partition has been fetched up to the clock less this: a record appended just now
# reaches the consumer within a fetch's wait and a round trip.
CAUGHT_UP_MARGIN_MS = 2 * FETCH_MAX_WAIT_MS
# The process stood still (wall time less CPU time from one poll's end to the next's, which
# holds a poll's wait and a transaction's) this long, in seconds: what it saw caught up is
# checked with the brokers.
STOOD_STILL = 1.0
# How often a worker tells the others how far it has routed (streams/hops.py) when it has
# nothing else to write; a step that writes anyway tells them every time. Each such mark is a
# transaction of its own, on every partition marked: two idle workers marking every 50 ms
# cost the broker half a core. So after IDLE_AFTER_MS without a step that wrote, a worker
# marks every IDLE_MARK_EVERY_MS: a document that then arrives waits for the others' next mark
# at most that long, once; the first step that writes brings the 50 ms back.
MARK_EVERY_MS = 50
IDLE_AFTER_MS = 1_000
IDLE_MARK_EVERY_MS = 250
TRANSACTION_TIMEOUT_MS = 30_000
# A new owner waits for the previous owner's pending transaction (at most its timeout) before
# it reads the committed offsets; the client calls below are bounded by the same margin.
CLIENT_TIMEOUT = 2 * TRANSACTION_TIMEOUT_MS / 1000
START_RETRY = 5.0  # seconds between attempts while the brokers cannot be reached at start
LAG_EVERY = 1.0  # seconds between two measures of the input partitions' lag (with metrics)


class Pipeline(Protocol):
    """What the engine drives: pure batch processing plus the state lifecycle."""

    def route(
        self, records: Sequence[Record], now_ms: int, replay_below: dict[TopicPartition, int]
    ) -> list[Routed]:
        """Read consumed input records: their rejections and the documents for other workers'
        partitions become outputs of this step; return the documents for partitions owned
        here. Below ``replay_below`` a partition's records were routed before: their
        rejections are not repeated."""

    def process(
        self, records: Sequence[Record | Routed], now_ms: int, arrived_ms: int
    ) -> list[Output]:
        """Turn a batch (maybe empty: routed documents, hops and internal records, in the order
        to apply them) and the timers due by ``arrived_ms`` (every document that arrived before
        it has been consumed) into outputs (routing's first), decided at ``now_ms``, keeping
        the state changes pending."""

    def commit(self, offsets: dict[tuple[str, int], int], committed_ms: int | None = None) -> None:
        """The transaction holding the pending changes committed (``offsets``: the last offset
        it wrote per topic and partition; ``committed_ms``: when, default now): make the
        changes durable locally."""

    def rollback(self) -> None:
        """The transaction aborted: forget the pending changes."""

    async def assign(self, partitions: set[int]) -> None:
        """Partitions (numbers, the same on every topic) now owned: restore their state."""

    async def revoke(self, partitions: set[int]) -> None:
        """Partitions no longer owned: release their state."""


class Engine:
    """Consumer, transactional producer and the loop between them."""

    def __init__(
        self, settings: Settings, pipeline: Pipeline, metrics: StepMetrics | None = None
    ) -> None:
        """``metrics``: the worker's, updated once per step (None: no metrics)."""
        self.settings = settings
        self.topics = Topics(settings)
        self.pipeline = pipeline
        self.metrics = metrics
        self._lag_at = 0.0  # when the lag was last measured (monotonic)
        self.group_id = settings.topic("sandan")
        self.transactional_id = f"{settings.topic_prefix}sandan-{settings.worker_id}"
        self.batches = 0
        self.records = 0
        self.assignment: set[int] = set()
        self._partition_counts: dict[str, int] = {}
        self._input_topics = frozenset(self.topics.inputs)
        self._last_arrival: dict[TopicPartition, int] = {}  # per input partition
        self._fetched: set[TopicPartition] = set()  # fetched at least once since assigned
        self._caught_up: set[TopicPartition] = set()  # the last fetch reached the stable end
        # The next offset to consume and the metadata committed with it, per partition.
        self._committed: dict[TopicPartition, tuple[int, str]] = {}
        self._next: dict[TopicPartition, int] = {}  # input, repartition: the next to fetch
        self._replay_below: dict[TopicPartition, int] = {}  # input: routed before, to there
        # Documents held for their turn: routed here (by input partition) and hops (by
        # repartition partition and origin), see streams/arrivals.py.
        self._arrivals: ArrivalBuffer[TopicPartition | _Queue, Routed | Record] = ArrivalBuffer()
        # Ledger requests held for their turn, by ledger partition and ticket partition.
        self._requests: ArrivalBuffer[_Queue, Record] = ArrivalBuffer()
        # The marks read, per repartition and ledger partition: origin -> until (hops.py).
        self._marks: dict[TopicPartition, dict[tuple[str, int], int]] = {}
        self._remote_origins: list[tuple[str, int]] = []  # input partitions of other workers
        self._routing_marker, self._applying_marker = _Marker(), _Marker()
        self._mark_clock = _MarkClock()
        self.routed_until = 0  # as of the last step: see _arrived_until
        self.watermark = 0  # as of the last step: see _ordered_until
        self._paused: set[TopicPartition] = set()
        self._clock: tuple[float, float] | None = None  # wall and CPU time after the last poll
        self._round_robin = 0
        self._held = False
        self._stopping = False
        self._done = asyncio.Event()
        # Every consumer call runs on this one thread, rebalance callbacks included.
        self._consumer_thread = ThreadPoolExecutor(1, thread_name_prefix="sandan-consumer")
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, waiting for the brokers as long as it takes (saying so every few seconds):
        a deployment must not depend on starting the brokers first."""
        self._loop = asyncio.get_running_loop()
        settings = self.settings
        common = {
            **librdkafka_security(settings),
            "bootstrap.servers": settings.brokers,
            "error_cb": _log_client_error,
            "logger": _CLIENT_LOG,
        }
        self.producer = Producer(
            {
                **common,
                "client.id": f"sandan-{settings.worker_id}",
                "transactional.id": self.transactional_id,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                "batch.size": 1024 * 1024,
                "message.max.bytes": 2 * MAX_MESSAGE_BYTES,
                "transaction.timeout.ms": TRANSACTION_TIMEOUT_MS,
                "queue.buffering.max.messages": 1_000_000,
                "queue.buffering.max.kbytes": 1024 * 1024,
            }
        )
        # The transactional producer starts first: initialising its id aborts whatever a
        # crashed predecessor with the same id left open, before any state is restored.
        while True:
            try:
                await asyncio.to_thread(self.producer.init_transactions, START_RETRY)
                break
            except KafkaException as exc:
                error = exc.args[0]
                if error.fatal() or not (error.retriable() or _is_timeout(error)):
                    raise
                log.warning(
                    "waiting for the brokers at %s (transactional id %s): %s",
                    settings.brokers,
                    self.transactional_id,
                    error.str(),
                )
        await self._wait_for_topics()
        self.consumer = Consumer(
            {
                **common,
                # The group's description shows each member's client id: the dashboard finds
                # every worker's web server there.
                "client.id": worker_client_id(settings.advertised_url),
                "group.id": self.group_id,
                # Static membership: a worker restarted with the same id takes its partitions
                # back at once, without waiting for its dead predecessor's session to time out.
                "group.instance.id": f"sandan-{settings.worker_id}",
                "isolation.level": "read_committed",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
                "partition.assignment.strategy": "range",
                "enable.partition.eof": True,  # tells when a partition is caught up
                "max.partition.fetch.bytes": MAX_MESSAGE_BYTES,
                "fetch.max.bytes": FETCH_MAX_BYTES,
                "receive.message.max.bytes": FETCH_MAX_BYTES + 1024 * 1024,
                "fetch.wait.max.ms": FETCH_MAX_WAIT_MS,
                "fetch.min.bytes": FETCH_MIN_BYTES,
                "session.timeout.ms": 10_000,
                "heartbeat.interval.ms": 1_000,
                "max.poll.interval.ms": 300_000,
                # Topics created after the worker started are found within seconds.
                "topic.metadata.refresh.interval.ms": 10_000,
            }
        )
        self.consumer.subscribe(
            list(self.topics.consumed),
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_revoke,
        )

    async def _wait_for_topics(self) -> None:
        """Subscribe only to topics that exist, saying what is missing meanwhile."""
        while True:
            metadata = await asyncio.to_thread(self.producer.list_topics, None, START_RETRY)
            missing = [
                topic
                for topic in self.topics.consumed
                if topic not in metadata.topics or metadata.topics[topic].error is not None
            ]
            if not missing:
                return
            log.warning(
                "waiting for the topics %s (create them with `sandan topics`)", ", ".join(missing)
            )
            await asyncio.sleep(START_RETRY)

    async def stop(self) -> None:
        """Stop after the step in flight; close the consumer (a static member's session ends
        by its timeout, so a restart with the same id takes its partitions back)."""
        self._stopping = True
        if self._loop is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._done.wait(), CLIENT_TIMEOUT)
        consumer = getattr(self, "consumer", None)
        if consumer is not None:
            await asyncio.get_running_loop().run_in_executor(self._consumer_thread, consumer.close)
        self._consumer_thread.shutdown(wait=False)

    async def run(self) -> None:
        """Process batches until stopped; an infrastructure error ends the run (and the worker)."""
        loop = asyncio.get_running_loop()
        try:
            while not self._stopping:
                timeout = 0 if self._held else POLL_TIMEOUT
                batch = await loop.run_in_executor(self._consumer_thread, self._poll, timeout)
                await self._step(batch)
        finally:
            self._done.set()

    # -- the consumer's thread ---------------------------------------------------------------

    def _poll(self, timeout: float) -> dict[TopicPartition, list[Record]]:
        """Fetch up to a batch; note which partitions reached their stable end."""
        batch: dict[TopicPartition, list[Record]] = {}
        caught_up, fetched = self._caught_up, self._fetched
        for message in self.consumer.consume(MAX_RECORDS_PER_BATCH, timeout):
            error = message.error()
            tp = TopicPartition(message.topic(), message.partition())  # type: ignore[arg-type]
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    caught_up.add(tp)
                    fetched.add(tp)
                    continue
                if error.fatal():
                    raise KafkaException(error)
                log.warning("fetching %s[%d]: %s", tp.topic, tp.partition, error.str())
                continue
            caught_up.discard(tp)
            fetched.add(tp)
            part = batch.get(tp)
            if part is None:
                part = batch[tp] = []
            part.append(consumed(message))
        self._check_caught_up(batch)
        if self.metrics is not None and time.monotonic() - self._lag_at >= LAG_EVERY:
            self._measure_lag(self.metrics)
        return batch

    def _measure_lag(self, metrics: StepMetrics) -> None:
        """Each assigned input partition's high watermark (as the client last fetched it: no
        request to the brokers) less the consumer's position; a partition never fetched from
        since assigned counts from its committed offset, or is caught up at its end of
        partition event, else it is left out until it is known."""
        self._lag_at = time.monotonic()
        consumer, lag = self.consumer, {}
        inputs = [tp for tp in consumer.assignment() if tp.topic in self._input_topics]
        for position in consumer.position(inputs) if inputs else ():
            tp = TopicPartition(position.topic, position.partition)
            high = consumer.get_watermark_offsets(position, cached=True)
            if high is None or high[1] < 0:
                continue
            at: int | None = position.offset
            if at is None or at < 0:
                committed = self._committed.get(tp)
                at = committed[0] if committed else (high[1] if tp in self._caught_up else None)
            if at is not None:
                lag[tp.topic, tp.partition] = max(high[1] - at, 0)
        metrics.set_lag(lag)

    def _check_caught_up(self, batch: dict[TopicPartition, list[Record]]) -> None:
        """After the process stood still (SIGSTOP, a starved machine), the input partitions it
        saw caught up may have records since, which the client's own fetching (it stood still
        too) has not seen yet: they count as caught up again only from a fresh end-of-partition
        event, which fetching them again from where they are (a seek) brings."""
        clock, self._clock = self._clock, (time.monotonic(), time.process_time())
        if clock is None:
            return
        stood_still = (self._clock[0] - clock[0]) - (self._clock[1] - clock[1])
        stale = [tp for tp in self._caught_up if tp.topic in self._input_topics]
        if stood_still < STOOD_STILL or not stale:
            return
        for tp in stale:
            self._caught_up.discard(tp)
            part = batch.get(tp)
            offset = part[-1].offset + 1 if part else self._next.get(tp)
            if offset is None:
                offset = self._committed.get(tp, (OFFSET_BEGINNING, ""))[0]
            try:
                self.consumer.seek(KafkaPartition(tp.topic, tp.partition, offset))
            except KafkaException as exc:  # not fetching yet: its first event comes anyway
                log.warning("fetching %s[%d] again: %s", tp.topic, tp.partition, exc)
        log.info("stood still for %.1f s: fetching %d partitions again", stood_still, len(stale))

    def _on_assign(self, consumer: Consumer, partitions: list[KafkaPartition]) -> None:
        if not partitions:
            return
        # Stable offsets first (the previous owner's transaction resolved), then the state.
        for tp in consumer.committed(partitions, timeout=CLIENT_TIMEOUT):
            if tp.error is not None:
                raise KafkaException(tp.error)
            if tp.offset >= 0:
                where = TopicPartition(tp.topic, tp.partition)
                metadata = tp.metadata or ""
                self._committed[where] = (tp.offset, metadata)
                if metadata.isdigit() and int(metadata) > tp.offset:
                    self._replay_below[where] = int(metadata)
        numbers = {tp.partition for tp in partitions}
        started = time.monotonic()
        self._in_loop(self.pipeline.assign(numbers))
        self.assignment |= numbers
        self._remote_origins = self._others_inputs()
        self._routing_marker.reset()
        self._applying_marker.reset()
        log.info(
            "assigned partitions %s (restored in %.1f s)",
            sorted(numbers),
            time.monotonic() - started,
        )

    def _on_revoke(self, consumer: Consumer, partitions: list[KafkaPartition]) -> None:
        revoked = [TopicPartition(tp.topic, tp.partition) for tp in partitions]
        self.forget(revoked)
        if self.metrics is not None:
            gone = {(tp.topic, tp.partition) for tp in revoked}
            lag = self.metrics.lag.values
            self.metrics.set_lag({tp: n for tp, n in lag.items() if tp not in gone})
        numbers = {tp.partition for tp in partitions}
        self.assignment -= numbers
        self._remote_origins = self._others_inputs()
        self._routing_marker.reset()
        self._applying_marker.reset()
        self._in_loop(self.pipeline.revoke(numbers))
        log.info("revoked partitions %s", sorted(numbers))

    def _in_loop(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run ``coroutine`` on the event loop (idle while ``consume()`` runs) and wait."""
        loop = self._loop
        if loop is None:
            msg = "the engine was not started"
            raise RuntimeError(msg)
        asyncio.run_coroutine_threadsafe(coroutine, loop).result()

    # -- one step ------------------------------------------------------------------------------

    async def _step(self, batch: dict[TopicPartition, list[Record]]) -> None:
        """Route the input records fetched, then apply what may be applied by now: the
        internal records fetched, and the documents held (routed here and hops) that arrived
        by the watermark, in arrival order (streams/arrivals.py); then the timers due by it."""
        now_ms = int(time.time() * 1000)
        records: list[Record | Routed] = []
        offsets: dict[TopicPartition, tuple[int, str]] = {}
        inputs: list[Record] = []
        for tp, part in batch.items():
            if tp.topic in self._input_topics:
                inputs += part
                self._last_arrival[tp] = part[-1].timestamp
                self._next[tp] = part[-1].offset + 1
            elif tp.topic == self.topics.repartition:
                self._hold(self._arrivals, tp, part, hop_origin)
                self._next[tp] = part[-1].offset + 1
            elif tp.topic == self.topics.ledger:
                self._hold(self._requests, tp, part, request_source)
                self._next[tp] = part[-1].offset + 1
            else:
                records += part
                offsets[tp] = (part[-1].offset + 1, "")
        if inputs:
            self._hold_routed(self.pipeline.route(inputs, now_ms, self._replay_below))
        routed_until = self._arrived_until(now_ms)
        until = self._ordered_until(routed_until)
        self.routed_until, self.watermark = routed_until, until
        # Applied: at most MAX_RECORDS_PER_STEP (routing adds up to a poll's records), the
        # ledger's requests first (deciding them ends what held documents started); the timers
        # then run only up to what was released.
        room = max(MAX_RECORDS_PER_STEP - len(records), 0)
        decide_until = self._decide_until()
        records += self._requests.release(decide_until, room)
        records += self._arrivals.release(until, max(MAX_RECORDS_PER_STEP - len(records), 0))
        held = self._arrivals.earliest(until)
        if held is not None:
            until = min(until, held - 1)
        self._held = held is not None or self._requests.earliest(decide_until) is not None
        offsets.update(self._held_positions())
        self._pause_overfull(routed_until)
        try:
            outputs = self.pipeline.process(records, now_ms, until)
            outputs += self._step_marks(routed_until, until, now_ms, busy=bool(outputs))
            written = {}
            if outputs or records:  # (what was only routed and held commits with its turn)
                written = await self._produce_transaction(outputs, offsets)
        except BaseException:
            self.pipeline.rollback()
            raise
        self._committed.update(offsets)
        self.pipeline.commit(written, int(time.time() * 1000))
        if records:
            self.batches += 1
            self.records += len(records)
            if self.metrics is not None:
                self.metrics.applied(len(records))

    def _hold_routed(self, routed: list[Routed]) -> None:
        """Hold the documents routed here, by the input partition they came from."""
        arrivals = self._arrivals
        part: list[Routed] = []
        where: TopicPartition | None = None
        for item in routed:
            record = item.record
            tp = TopicPartition(record.topic, record.partition)
            if tp != where:
                if part and where is not None:
                    arrivals.add(where, part)
                part, where = [], tp
            part.append(item)
        if part and where is not None:
            arrivals.add(where, part)
        for tp, below in list(self._replay_below.items()):
            if self._next.get(tp, 0) >= below:
                del self._replay_below[tp]

    def _hold(
        self,
        buffer: ArrivalBuffer[Any, Any],
        tp: TopicPartition,
        part: list[Record],
        source: Callable[[Record], object],
    ) -> None:
        """Hold the records fetched from a repartition or ledger partition, by their source (a
        hop's input partition, a request's ticket partition); note the marks among them."""
        marks = self._marks.setdefault(tp, {})
        for record in part:
            mark = read_mark(record)
            if mark is None:
                buffer.add(_Queue(tp, source(record)), (record,))
                continue
            for origin in mark.origins:
                if marks.get(origin, -1) < mark.until:
                    marks[origin] = mark.until

    def _held_positions(self) -> dict[TopicPartition, tuple[int, str]]:
        """Where the input and repartition partitions resume: at their first record still
        held (so nothing held is lost in a crash), else after the last one fetched. An input
        partition's metadata says how far it was routed (``replay_below`` on restart)."""
        first: dict[TopicPartition, int] = {}
        for key, item in (*self._arrivals.heads(), *self._requests.heads()):
            if isinstance(key, _Queue):
                tp = key.tp
                offset = item.offset  # type: ignore[union-attr]  # a hop or request: a Record
            else:
                tp, offset = key, item.record.offset  # type: ignore[union-attr]
            if offset < first.get(tp, offset + 1):
                first[tp] = offset
        positions: dict[TopicPartition, tuple[int, str]] = {}
        for tp, fetched in self._next.items():
            resume = first.get(tp, fetched)
            routed = max(fetched, self._replay_below.get(tp, 0))
            metadata = str(routed) if tp.topic in self._input_topics and routed > resume else ""
            positions[tp] = (resume, metadata)
        return positions

    def _pause_overfull(self, routed_until: int) -> None:
        """With too much held, stop fetching the input partitions ahead of how far this worker
        has routed; fetch again each one that this has reached (so the partition it waits for
        is always fetched, and this worker's marks move on), and every one once half of what
        was held was applied. The repartition partitions, which bring hops and marks, are never
        paused."""
        last = self._last_arrival
        if len(self._arrivals) > MAX_HELD:
            ahead = [
                tp
                for tp in last
                if tp not in self._paused and tp not in self._caught_up and last[tp] > routed_until
            ]
            if ahead:
                self.consumer.pause([KafkaPartition(tp.topic, tp.partition) for tp in ahead])
                self._paused.update(ahead)
        if len(self._arrivals) <= MAX_HELD // 2:
            reached = list(self._paused)
        else:
            reached = [tp for tp in self._paused if last.get(tp, 0) <= routed_until]
        if reached:
            self.consumer.resume([KafkaPartition(tp.topic, tp.partition) for tp in reached])
            self._paused.difference_update(reached)

    def forget(self, revoked: Iterable[TopicPartition]) -> None:
        """Partitions revoked: drop what was fetched from them and not applied."""
        revoked = set(revoked)
        self._arrivals.drop(lambda key: (key.tp if isinstance(key, _Queue) else key) in revoked)
        self._requests.drop(lambda key: key.tp in revoked)
        for tp in revoked:
            self._marks.pop(tp, None)
            self._last_arrival.pop(tp, None)
            self._paused.discard(tp)
            self._fetched.discard(tp)
            self._caught_up.discard(tp)
            self._committed.pop(tp, None)
            self._next.pop(tp, None)
            self._replay_below.pop(tp, None)

    # -- the transaction ---------------------------------------------------------------------

    async def _produce_transaction(
        self, outputs: list[Output], offsets: dict[TopicPartition, tuple[int, str]]
    ) -> dict[tuple[str, int], int]:
        """Produce ``outputs`` and commit the consumed ``offsets`` in one transaction; return
        the last offset written per topic and partition.

        The transaction carries the offsets of every assigned partition, not only of those
        consumed from: a step that only fired timers is fenced like any other."""
        producer = self.producer
        written: dict[tuple[str, int], int] = {}
        began = time.monotonic()
        producer.begin_transaction()
        try:
            await self._produce(outputs, written)
            positions = [
                KafkaPartition(tp.topic, tp.partition, offset, metadata=metadata)
                for tp, (offset, metadata) in {**self._committed, **offsets}.items()
            ]
            await asyncio.to_thread(self._commit, positions)
        except BaseException as exc:
            if _is_fenced(exc):
                log.error(
                    "fenced: this worker lost its partitions while it was stalled (%s); its "
                    "transaction is aborted and none of its records will become visible",
                    exc,
                )
            else:
                log.exception("transaction failed; aborting it")
            with contextlib.suppress(Exception):
                await asyncio.shield(asyncio.to_thread(producer.abort_transaction, CLIENT_TIMEOUT))
            if self.metrics is not None:
                self.metrics.transaction(None)
            raise
        if self.metrics is not None:
            self.metrics.transaction(time.monotonic() - began)
        return written

    def _commit(self, positions: list[KafkaPartition]) -> None:
        producer = self.producer
        if producer.flush(CLIENT_TIMEOUT):  # serves the delivery reports too
            msg = "the broker did not acknowledge the transaction's records in time"
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT, msg))
        _TRANSACTIONS["committing"] += 1
        if _TRANSACTIONS["committing"] == self.settings.fault_stop_before_offsets:
            # A test's stalled worker: its records are written, its offsets not yet sent.
            log.warning("SANDAN_FAULT_STOP_BEFORE_OFFSETS: stopping myself mid-transaction")
            os.kill(os.getpid(), signal.SIGSTOP)
        if positions:
            producer.send_offsets_to_transaction(
                positions, self.consumer.consumer_group_metadata(), CLIENT_TIMEOUT
            )
        producer.commit_transaction(CLIENT_TIMEOUT)

    async def _produce(self, outputs: list[Output], written: dict[tuple[str, int], int]) -> None:
        """Produce every output to its partition; the last record of each partition reports
        its offset into ``written``."""
        placed: list[int] = []
        last: dict[tuple[str, int], int] = {}
        for index, output in enumerate(outputs):
            partition = output.partition
            if partition is None:
                topic = output.topic
                count = self._partition_counts.get(topic) or await self._partition_count(topic)
                if output.key is None:
                    self._round_robin += 1
                    partition = self._round_robin % count
                else:
                    partition = murmur2_partition(output.key, count)
            placed.append(partition)
            last[(output.topic, partition)] = index
        reports = set(last.values())
        produce = self.producer.produce

        def delivered(error: KafkaError | None, message: Message) -> None:
            if error is None:
                where = (message.topic(), message.partition())
                written[where] = message.offset()  # type: ignore[index,assignment]

        for index, (topic, key, value, _, headers, stamp) in enumerate(outputs):
            kwargs: dict[str, Any] = {"partition": placed[index]}
            if headers:
                kwargs["headers"] = headers
            if stamp is not None:
                kwargs["timestamp"] = stamp
            if index in reports:
                kwargs["on_delivery"] = delivered
            while True:
                try:
                    produce(topic, value, key, **kwargs)
                    break
                except BufferError:  # the client's queue is full: let it send
                    await asyncio.to_thread(self.producer.poll, 0.05)

    async def _partition_count(self, topic: str) -> int:
        metadata = await asyncio.to_thread(self.producer.list_topics, topic, CLIENT_TIMEOUT)
        count = len(metadata.topics[topic].partitions)
        if not count:
            msg = f"topic {topic} has no partitions (does it exist? see `sandan topics`)"
            raise KafkaException(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART, msg))
        self._partition_counts[topic] = count
        return count

    # -- the watermark -------------------------------------------------------------------------

    def _arrived_until(self, now_ms: int) -> int:
        """How far this worker has routed: the time up to which every document that arrived
        on its input partitions has been fetched (where a partition is caught up, the clock
        less CAUGHT_UP_MARGIN_MS, what a record just appended may take to be fetched; else the
        timestamp of the last record fetched from it, so a worker that lags closes no window
        early; 0 until every partition was fetched once)."""
        until = now_ms - CAUGHT_UP_MARGIN_MS
        for kafka_tp in self.consumer.assignment():
            tp = TopicPartition(kafka_tp.topic, kafka_tp.partition)
            if tp.topic not in self._input_topics:
                continue
            if tp not in self._fetched:
                return 0
            if tp not in self._caught_up:
                until = min(until, self._last_arrival.get(tp, 0))
        return until

    def _ordered_until(self, routed_until: int) -> int:
        """The watermark: up to when every document bound for this worker's partitions was
        routed, here (``routed_until``) and by the other workers (their marks on each of this
        worker's repartition partitions; 0 while one is missing)."""
        return self._lowest_mark(self.topics.repartition, self._remote_origins, routed_until)

    def _decide_until(self) -> int | None:
        """Up to when the ledger may decide (requests by their completion time): every worker
        has applied its documents up to then (their marks on each of this worker's ledger
        partitions, this worker's own among them). None: this worker is alone, its requests do
        not come through the topic, what does is decided at once."""
        if not self._remote_origins:
            return None
        tickets = [(TICKETS, p) for p in range(self.settings.partitions)]
        return self._lowest_mark(self.topics.ledger, tickets, 2**63 - 1)

    def _lowest_mark(self, topic: str, origins: list[tuple[str, int]], until: int) -> int:
        if not origins:
            return until
        for partition in self.assignment:
            marks = self._marks.get(TopicPartition(topic, partition))
            if marks is None:
                return 0
            for origin in origins:
                mark = marks.get(origin)
                if mark is None:
                    return 0
                until = min(until, mark)
        return until

    def order_status(self) -> dict[str, Any]:
        """How far routing, applying and deciding are, what is held, and what the watermark
        waits for (the origin with the lowest mark, or none yet), for the status page."""
        lowest: tuple[int, str] | None = None
        for partition in sorted(self.assignment):
            marks = self._marks.get(TopicPartition(self.topics.repartition, partition), {})
            for topic, origin in self._remote_origins:
                mark = marks.get((topic, origin), 0)
                if lowest is None or mark < lowest[0]:
                    lowest = (mark, f"{topic}[{origin}] on repartition[{partition}]")
        return {
            "routed_until": self.routed_until,
            "watermark": self.watermark,
            "decided_until": self._decide_until(),
            "held": len(self._arrivals),
            "requests_held": len(self._requests),
            "paused": len(self._paused),
            "waiting_for": None if lowest is None else {"mark": lowest[0], "of": lowest[1]},
        }

    def _step_marks(
        self, routed_until: int, applied_until: int, now_ms: int, busy: bool
    ) -> list[Output]:
        """The marks of a step (``busy``: it writes anyway), when the marks' clock says so:
        each kind whose time moved on."""
        if not self._mark_clock.due(now_ms, busy):
            return []
        return self._routing_marks(routed_until) + self._applying_marks(applied_until)

    def _routing_marks(self, routed_until: int) -> list[Output]:
        """This worker's routing marks, for every repartition partition it does not own: how
        far it has routed its input partitions (streams/hops.py), if that moved on."""
        owned = sorted(self.assignment)
        others = [p for p in range(self.settings.partitions) if p not in self.assignment]
        if not owned or not others or not self._routing_marker.moved(routed_until):
            return []
        origins = [(topic, p) for topic in self.topics.inputs for p in owned]
        return _marks(self.topics.repartition, others, routed_until, origins)

    def _applying_marks(self, applied_until: int) -> list[Output]:
        """This worker's applying marks, for every ledger partition (its own too: its requests
        go through the topic when it is not alone): how far it has applied documents, if that
        moved on."""
        owned = sorted(self.assignment)
        if not owned or not self._remote_origins or not self._applying_marker.moved(applied_until):
            return []
        origins = [(TICKETS, p) for p in owned]
        everyone = list(range(self.settings.partitions))
        return _marks(self.topics.ledger, everyone, applied_until, origins)

    def _others_inputs(self) -> list[tuple[str, int]]:
        """The input partitions other workers own (all of them but this worker's)."""
        return [
            (topic, p)
            for topic in self.topics.inputs
            for p in range(self.settings.partitions)
            if p not in self.assignment
        ]


def _marks(
    topic: str, partitions: list[int], until: int, origins: list[tuple[str, int]]
) -> list[Output]:
    value = mark_value(until, origins)
    return [Output(topic, None, value, p, [(MARK, b"")]) for p in partitions]


class _Marker:
    """How far a worker's marks of one kind told the others."""

    def __init__(self) -> None:
        self.until = 0

    def moved(self, until: int) -> bool:
        """Whether ``until`` is news (then it is the new mark)."""
        if until <= self.until:
            return False
        self.until = until
        return True

    def reset(self) -> None:
        """The partitions moved: their new owners hear from this worker at once."""
        self.until = 0


class _MarkClock:
    """When a step writes its marks: every step that writes anyway, else every MARK_EVERY_MS,
    or IDLE_MARK_EVERY_MS once no step has written for IDLE_AFTER_MS. Both kinds of marks go
    together, in one transaction."""

    def __init__(self) -> None:
        self.at = 0  # the last step that marked
        self.busy_at = 0  # the last step that wrote anyway

    def due(self, now_ms: int, busy: bool) -> bool:
        if busy:
            self.at = self.busy_at = now_ms
            return True
        idle = now_ms - self.busy_at >= IDLE_AFTER_MS
        if now_ms - self.at < (IDLE_MARK_EVERY_MS if idle else MARK_EVERY_MS):
            return False
        self.at = now_ms
        return True


class _Queue(NamedTuple):
    """Where the records of one source wait within one repartition or ledger partition: the
    hops of one input partition, the requests of one ticket partition."""

    tp: TopicPartition
    source: object


# Transactions this process has come to commit, for SANDAN_FAULT_STOP_BEFORE_OFFSETS: counted
# across the engines it starts, so the one started after the stop does not stop again.
_TRANSACTIONS = {"committing": 0}


_FENCED = frozenset(
    {
        KafkaError.ILLEGAL_GENERATION,
        KafkaError.UNKNOWN_MEMBER_ID,
        KafkaError.FENCED_INSTANCE_ID,
        KafkaError.REBALANCE_IN_PROGRESS,
        KafkaError._FENCED,
        KafkaError.PRODUCER_FENCED,
        KafkaError.INVALID_PRODUCER_EPOCH,
    }
)


def _is_fenced(exc: BaseException) -> bool:
    """A stale group generation or producer epoch: a newer owner took over."""
    return isinstance(exc, KafkaException) and exc.args[0].code() in _FENCED


def _is_timeout(error: KafkaError) -> bool:
    return error.code() in {
        KafkaError._TIMED_OUT,
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
    }


_CLIENT_ERROR_EVERY = 10.0  # seconds: librdkafka reports a down broker many times a second
_client_errors_logged: dict[int, float] = {}


class _Sparse(logging.Filter):
    """Each kind of librdkafka log line (its text without numbers) once per interval."""

    def __init__(self, interval: float) -> None:
        super().__init__()
        self.interval = interval
        self._last: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        kind = re.sub(r"[0-9]+", "#", record.getMessage())[:120]
        last = self._last.get(kind)
        if last is not None and record.created - last < self.interval:
            return False
        self._last[kind] = record.created
        return True


_CLIENT_LOG = logging.getLogger("librdkafka")
_CLIENT_LOG.addFilter(_Sparse(_CLIENT_ERROR_EVERY))


def _log_client_error(error: KafkaError) -> None:
    """librdkafka's global errors (a broker unreachable, say; it retries by itself): each kind
    at most once per ``_CLIENT_ERROR_EVERY``."""
    if error.fatal():
        log.error("Kafka client: %s", error.str())
        return
    now, code = time.monotonic(), error.code()
    if now - _client_errors_logged.get(code, -_CLIENT_ERROR_EVERY) >= _CLIENT_ERROR_EVERY:
        _client_errors_logged[code] = now
        log.warning("Kafka client: %s", error.str())
