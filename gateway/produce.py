"""The gateway's Kafka producer: acks=all, idempotent, and a 503 instead of a promise it
cannot keep.

:class:`Producer` keeps one ``AIOKafkaProducer`` (``enable_idempotence=True``, ``acks="all"``)
alive from a supervisor task: it starts it (the broker may be down at start: it retries every
second, and meanwhile every POST gets a 503), probes the broker about once a second for
``/healthz``, and replaces the producer when a record failed (an idempotent producer whose
batch was refused has lost its sequence; a new producer id starts clean).

What aiokafka does that shapes this (aiokafka 0.14, ``producer/sender.py``): an idempotent
producer never expires a batch, it retries until the broker takes it, reconnecting by itself
when the broker comes back (its producer id and sequences stay valid across a broker restart);
``send()`` waits for metadata and for room in the partition's batch; there is no buffer-full
error. So :meth:`Producer.send` bounds the whole request by ``SANDAN_GATEWAY_ACK_TIMEOUT`` (a
``send()`` cancelled before it returned did not enqueue its record) and keeps its own bound of
records and bytes in flight; records of a request answered 503 may still land later (a retry
is safe: sandan drops a guid it has seen).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, NamedTuple

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    KafkaError,
    KafkaTimeoutError,
    UnknownTopicOrPartitionError,
)

from gateway.errors import UnavailableError
from schemas.keys import murmur2_partition
from streams.kafka_security import aiokafka_security
from streams.settings import Settings
from streams.topics import Topics

__all__ = ("Acked", "OutRecord", "Producer")

log = logging.getLogger(__name__)

MAX_IN_FLIGHT_RECORDS = 50_000
MAX_IN_FLIGHT_BYTES = 64 * 1024 * 1024
PROBE_INTERVAL = 1.0
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
RETRY_AFTER_UNREACHABLE = 5
RETRY_AFTER_BUSY = 1


class OutRecord(NamedTuple):
    """One record to produce."""

    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


class Acked(NamedTuple):
    """Where the broker put a record."""

    topic: str
    partition: int
    offset: int


class Producer:
    """An idempotent producer that answers 503 rather than wait or promise."""

    def __init__(
        self,
        settings: Settings,
        *,
        max_records: int = MAX_IN_FLIGHT_RECORDS,
        max_bytes: int = MAX_IN_FLIGHT_BYTES,
        factory: Callable[..., Any] = AIOKafkaProducer,
    ) -> None:
        self._settings = settings
        self._topics = Topics(settings)
        self._factory = factory
        self.max_records = max_records
        self.max_bytes = max_bytes
        self.in_flight_records = 0
        self.in_flight_bytes = 0
        self._producer: Any = None
        self._broken = False
        self.connected = False
        self.reason = "not connected yet"
        self._supervisor: asyncio.Task[None] | None = None
        self._queue: list[tuple[OutRecord, asyncio.Future[Acked]]] = []
        self._flushing = False
        self._flushes: set[asyncio.Future[None]] = set()
        self._partition_counts: dict[str, int] = {}
        self._pending: dict[tuple[str, int], list[tuple[OutRecord, asyncio.Future[Acked]]]] = {}
        self._draining: dict[tuple[str, int], Any] = {}  # partition -> the producer draining it

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the supervisor (returns at once; the broker may be down)."""
        self._supervisor = asyncio.create_task(self._supervise(), name="producer-supervisor")

    async def close(self) -> None:
        """Stop the supervisor, wait (bounded) for the records in flight, stop the producer."""
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        if self._producer is not None:
            await self._stop(self._producer)
            self._producer = None
        self.connected = False
        self.reason = "stopped"

    async def _supervise(self) -> None:
        while True:
            if self._producer is None or self._broken:
                await self._replace()
            else:
                await self._probe()
            await asyncio.sleep(PROBE_INTERVAL)

    async def _replace(self) -> None:
        old, self._producer = self._producer, None
        self.connected = False
        if old is not None:
            log.warning("replacing the producer after a failed record")
            await self._stop(old)
        self._broken = False
        producer = self._new_producer()
        try:
            async with asyncio.timeout(START_TIMEOUT):
                await producer.start()
        except (KafkaError, OSError, TimeoutError) as exc:
            self.reason = f"cannot connect to the broker: {_describe(exc)}"
            log.warning("producer not started: %s", self.reason)
            await self._stop(producer)
            return
        self._producer = producer
        for topic in self._topics.inputs:  # metadata now, not on the first POST
            try:
                async with asyncio.timeout(START_TIMEOUT):
                    await producer.partitions_for(topic)
            except (KafkaError, TimeoutError) as exc:
                log.warning("no metadata for %s yet: %s", topic, _describe(exc))
        self.connected, self.reason = True, ""
        log.info("producer connected to %s", self._settings.brokers)

    def _new_producer(self) -> Any:
        return self._factory(
            bootstrap_servers=self._settings.brokers,
            client_id="sandan-gateway",
            enable_idempotence=True,
            acks="all",
            linger_ms=2,
            max_batch_size=512 * 1024,
            max_request_size=max(self._settings.max_message_bytes + 64 * 1024, 1024 * 1024),
            request_timeout_ms=30_000,
            retry_backoff_ms=200,
            **aiokafka_security(self._settings),
        )

    async def _probe(self) -> None:
        try:
            async with asyncio.timeout(2 * PROBE_INTERVAL):
                await self._producer.client.fetch_all_metadata()
        except (KafkaError, OSError, TimeoutError) as exc:
            if self.connected:
                log.warning("lost the broker: %s", _describe(exc))
            self.connected, self.reason = False, f"broker unreachable: {_describe(exc)}"
            return
        if not self.connected:
            log.info("broker reachable again")
        self.connected, self.reason = True, ""

    async def _stop(self, producer: Any) -> None:
        """Flush (bounded, and only while the broker answers), then stop.

        What is still pending then belongs to requests already answered 503, and an idempotent
        producer retries it forever: ``stop()`` waits for its accumulator or for its sender
        task, whichever ends first. So the sender is stopped first (aiokafka has no public call
        for that; ``stop()`` itself does the same next) and the pending records are dropped
        with the producer.
        """
        if self.connected:
            with contextlib.suppress(KafkaError, TimeoutError):
                async with asyncio.timeout(STOP_TIMEOUT):
                    await producer.flush()
        sender = getattr(producer, "_sender", None)
        if sender is not None:
            try:
                async with asyncio.timeout(STOP_TIMEOUT):
                    await sender.close()
            except (KafkaError, OSError, TimeoutError) as exc:  # a sender that had died
                log.warning("producer sender: %s", _describe(exc))
        try:
            async with asyncio.timeout(STOP_TIMEOUT):
                await producer.stop()
        except (KafkaError, OSError, TimeoutError) as exc:
            log.warning("producer did not stop cleanly: %s", _describe(exc))

    async def partition_count(self, topic: str) -> int:
        """The number of partitions of ``topic``, from the producer's metadata."""
        producer = self._producer
        if producer is None:
            raise UnavailableError(
                f"the broker is unreachable ({self.reason})", RETRY_AFTER_UNREACHABLE
            )
        return len(await producer.partitions_for(topic))

    # -- sending ---------------------------------------------------------------------------

    async def send(self, records: Sequence[OutRecord]) -> list[Acked]:
        """Produce every record and wait for every ack, within the ack timeout; or raise
        UnavailableError (503) with nothing promised."""
        producer = self._producer
        if producer is None or self._broken:
            raise UnavailableError(
                f"the broker is unreachable ({self.reason})", RETRY_AFTER_UNREACHABLE
            )
        size = sum(len(record.value) + len(record.key) for record in records)
        if (
            self.in_flight_records + len(records) > self.max_records
            or self.in_flight_bytes + size > self.max_bytes
        ):
            msg = (
                f"too many records in flight to the broker ({self.in_flight_records} records, "
                f"{self.in_flight_bytes} bytes)"
            )
            raise UnavailableError(msg, RETRY_AFTER_BUSY)
        timeout = self._settings.gateway_ack_timeout
        loop = asyncio.get_running_loop()
        waiters: list[asyncio.Future[Acked]] = []
        for record in records:
            waiter: asyncio.Future[Acked] = loop.create_future()
            waiter.add_done_callback(self._release_one(record))
            waiters.append(waiter)
        self.in_flight_records += len(records)
        self.in_flight_bytes += size
        self._queue.extend(zip(records, waiters, strict=True))
        if not self._flushing:
            self._flushing = True
            loop.call_soon(self._start_flush, producer)
        _, pending = await asyncio.wait(waiters, timeout=timeout)
        if pending:
            msg = f"the broker did not acknowledge every record within {timeout:g} s"
            raise UnavailableError(msg, RETRY_AFTER_UNREACHABLE)
        for waiter in waiters:
            failure = waiter.exception()
            if failure is not None:
                # Waiting for room or metadata is "not now"; any other failure cost the
                # idempotent producer its sequence: a new producer id starts clean.
                if not isinstance(failure, KafkaTimeoutError | UnknownTopicOrPartitionError):
                    self._broken = True
                raise UnavailableError(
                    f"the broker refused the records: {_describe(failure)}",
                    RETRY_AFTER_UNREACHABLE,
                )
        return [waiter.result() for waiter in waiters]

    # -- one batch per partition in flight; what arrives meanwhile makes the next one ----------

    def _start_flush(self, producer: Any) -> None:
        """After the requests ready in this turn of the loop have queued their records."""
        queued, self._queue = self._queue, []
        self._flushing = False
        self._spawn(self._flush(producer, queued))

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def _flush(self, producer: Any, queued: list[tuple[OutRecord, Any]]) -> None:
        """Put each queued record on its partition's pending list and start that partition's
        drain unless it runs on this producer already."""
        try:
            for record, waiter in queued:
                count = self._partition_counts.get(record.topic)
                if count is None:
                    count = len(await producer.partitions_for(record.topic))
                    self._partition_counts[record.topic] = count
                where = (record.topic, murmur2_partition(record.key, count))
                self._pending.setdefault(where, []).append((record, waiter))
                if self._draining.get(where) is not producer:
                    self._draining[where] = producer
                    self._spawn(self._drain(producer, where))
        except KafkaError as exc:  # no metadata: the requests waiting on it answer 503
            _fail(queued, exc)

    async def _drain(self, producer: Any, where: tuple[str, int]) -> None:
        """Send a partition's pending records as record batches, then wait for their acks
        before the next batches: the records that arrive meanwhile go out together.

        aiokafka's per-record ``send()`` took about a third of the gateway's CPU at one
        document a request, so records go out as batches (``send_batch``). An idempotent
        aiokafka producer has one batch per partition in flight and queues one more; a batch
        made per turn of the loop queued behind it and, at one document a request, the queue
        (and the request latency) grew without bound. Waiting here for the acks lets the
        batch grow with the load instead, as Kafka's own accumulator does.
        """
        topic, partition = where
        items: list[tuple[OutRecord, Any]] = []
        try:
            while self._producer is producer and (items := self._pending.pop(where, [])):
                deliveries = []
                start = 0
                while start < len(items):
                    batch, taken = producer.create_batch(), 0
                    for record, _ in items[start:]:
                        appended = batch.append(
                            key=record.key,
                            value=record.value,
                            timestamp=None,
                            headers=record.headers,
                        )
                        if appended is None:
                            break
                        taken += 1
                    if taken == 0:
                        msg = "a record larger than a batch"
                        raise KafkaError(msg)
                    delivery = await producer.send_batch(batch, topic, partition=partition)
                    delivery.add_done_callback(_settle(items[start : start + taken]))
                    deliveries.append(delivery)
                    start += taken
                # Bounded: the requests answer 503 after the ack timeout anyway, and an
                # unanswered batch must not hold this partition's later records forever.
                await asyncio.wait(deliveries, timeout=self._settings.gateway_ack_timeout)
        except KafkaError as exc:  # the requests waiting on it answer 503 (see send)
            _fail(items, exc)
        finally:
            if self._draining.get(where) is producer:
                del self._draining[where]
                if self._producer is not producer:  # replaced: its records answer 503
                    _fail(self._pending.pop(where, []), KafkaError("the producer was replaced"))
                elif self._pending.get(where):
                    self._draining[where] = producer
                    self._spawn(self._drain(producer, where))

    def _release_one(self, record: OutRecord) -> Callable[[asyncio.Future[Any]], None]:
        size = len(record.value) + len(record.key)

        def release(future: asyncio.Future[Any]) -> None:
            self.in_flight_records -= 1
            self.in_flight_bytes -= size
            if not future.cancelled():
                future.exception()  # retrieved: no "never retrieved" warning

        return release


def _settle(items: list[tuple[OutRecord, Any]]) -> Callable[[asyncio.Future[Any]], None]:
    """When a batch is acked (or failed): each record's offset, base + its index."""

    def settle(future: asyncio.Future[Any]) -> None:
        failure = None if future.cancelled() else future.exception()
        if future.cancelled() or failure is not None:
            for _, waiter in items:
                if not waiter.done():
                    waiter.set_exception(failure or KafkaError("the batch was cancelled"))
            return
        metadata = future.result()
        for index, (_, waiter) in enumerate(items):
            if not waiter.done():
                waiter.set_result(
                    Acked(metadata.topic, metadata.partition, metadata.offset + index)
                )

    return settle


def _fail(items: list[tuple[OutRecord, Any]], exc: BaseException) -> None:
    for _, waiter in items:
        if not waiter.done():
            waiter.set_exception(exc)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
