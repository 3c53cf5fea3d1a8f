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
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    KafkaError,
    KafkaTimeoutError,
    UnknownTopicOrPartitionError,
)

from gateway.errors import UnavailableError
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
        deadline = time.monotonic() + timeout
        futures: list[asyncio.Future[Any]] = []
        self.in_flight_records += len(records)
        self.in_flight_bytes += size
        try:
            async with asyncio.timeout(timeout):
                for record in records:
                    future = await producer.send(
                        record.topic, record.value, key=record.key, headers=record.headers
                    )
                    future.add_done_callback(self._release_one(record))
                    futures.append(future)
        except TimeoutError:
            self._release_unsent(records[len(futures) :])
            msg = f"the broker did not take the records within {timeout:g} s"
            raise UnavailableError(msg, RETRY_AFTER_UNREACHABLE) from None
        except KafkaError as exc:
            self._release_unsent(records[len(futures) :])
            # Waiting for room or for metadata is "not now"; anything else is the producer's
            # fatal error (every later send() raises it): make a new one.
            self._broken = not isinstance(exc, KafkaTimeoutError | UnknownTopicOrPartitionError)
            msg = f"the broker refused the records: {_describe(exc)}"
            raise UnavailableError(msg, RETRY_AFTER_UNREACHABLE) from None
        except BaseException:
            self._release_unsent(records[len(futures) :])
            raise
        _, pending = await asyncio.wait(futures, timeout=max(0.0, deadline - time.monotonic()))
        if pending:
            msg = f"the broker did not acknowledge every record within {timeout:g} s"
            raise UnavailableError(msg, RETRY_AFTER_UNREACHABLE)
        acked: list[Acked] = []
        for future in futures:
            failure = future.exception()
            if failure is not None:
                self._broken = True  # the idempotent sequence is lost: a new producer id
                msg = f"the broker refused a record: {_describe(failure)}"
                raise UnavailableError(msg, RETRY_AFTER_UNREACHABLE)
            metadata = future.result()
            acked.append(Acked(metadata.topic, metadata.partition, metadata.offset))
        return acked

    def _release_one(self, record: OutRecord) -> Callable[[asyncio.Future[Any]], None]:
        size = len(record.value) + len(record.key)

        def release(future: asyncio.Future[Any]) -> None:
            self.in_flight_records -= 1
            self.in_flight_bytes -= size
            if not future.cancelled():
                future.exception()  # retrieved: no "never retrieved" warning

        return release

    def _release_unsent(self, records: Sequence[OutRecord]) -> None:
        self.in_flight_records -= len(records)
        self.in_flight_bytes -= sum(len(record.value) + len(record.key) for record in records)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
