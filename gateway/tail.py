"""One consumer tailing a whole topic from its end: the watcher behind the receipts' long-polls
(:mod:`gateway.receipts`) and the review results' waiters (:mod:`gateway.reviews`).

A :class:`Tail` assigns itself every partition of its topic (``read_committed``, no consumer
group, nothing committed), starts at the end each partition has when the tail first reaches
the broker, and hands every record after that to its callback. :attr:`Tail.ready` is set once
the end of every partition is known: a record committed after that is handed over.

Its positions outlive its consumer. While the producer finds the broker unreachable the tail
closes its consumer (an aiokafka consumer fetching from a broker that is down retries without
pause: aiokafka issue #496), and when the broker is back a new consumer resumes where the old
one was, so a record committed meanwhile is still handed over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from gateway.errors import GatewayError
from streams.kafka_security import aiokafka_security
from streams.settings import Settings

__all__ = ("Tail", "new_consumer")

log = logging.getLogger(__name__)

PAUSE = 1.0  # seconds between two attempts while the broker is unreachable
SETUP_TIMEOUT = 10.0


def new_consumer(
    settings: Settings,
    client_id: str,
    factory: Callable[..., Any] = AIOKafkaConsumer,
    security: Mapping[str, Any] | None = None,
    **more: Any,
) -> Any:
    """An unstarted consumer of the gateway's: no group, nothing committed, read_committed.

    ``security``: ``aiokafka_security(settings)`` made once for many consumers (one TLS
    context), else made here; ``more`` adds or overrides aiokafka settings."""
    if security is None:
        security = aiokafka_security(settings)
    config: dict[str, Any] = {
        "bootstrap_servers": settings.brokers,
        "client_id": client_id,
        "group_id": None,
        "enable_auto_commit": False,
        "isolation_level": "read_committed",
        "auto_offset_reset": "earliest",
        "request_timeout_ms": 10_000,
        **security,
        **more,
    }
    return factory(**config)


class Tail:
    """Hand every record committed to ``topic`` from now on to ``on_record``."""

    def __init__(
        self,
        topic: str,
        consumer: Callable[[], Any],
        partition_count: Callable[[str], Awaitable[int]],
        broker_up: Callable[[], bool],
        on_record: Callable[[Any], None],
        purpose: str,
    ) -> None:
        self.topic = topic
        self._consumer = consumer  # makes a new, unstarted consumer
        self._partition_count = partition_count
        self._broker_up = broker_up
        self._on_record = on_record  # must not raise
        self._purpose = purpose  # for the log: what the tail is for
        self.ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"tail {self.topic}")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def wait_ready(self, seconds: float) -> bool:
        """Whether the tail knows the end of every partition, waiting up to ``seconds``."""
        if self.ready.is_set():
            return True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.ready.wait()
        return self.ready.is_set()

    async def _run(self) -> None:
        positions: dict[int, int] = {}  # next offset per partition, kept across consumers
        while True:
            if not self._broker_up():
                await asyncio.sleep(PAUSE)
                continue
            consumer = self._consumer()
            try:
                await consumer.start()
                async with asyncio.timeout(SETUP_TIMEOUT):
                    await self._position(consumer, positions)
                self.ready.set()
                while self._broker_up():
                    batch = await consumer.getmany(timeout_ms=1000)
                    for tp, records in batch.items():
                        for record in records:
                            self._on_record(record)
                        positions[tp.partition] = records[-1].offset + 1
                log.info("%s: tail paused: the broker is unreachable", self._purpose)
            except GatewayError as exc:  # no producer metadata yet (broker down at start)
                log.info("%s: tail waiting for the broker: %s", self._purpose, exc.detail)
            except (KafkaError, OSError, TimeoutError) as exc:
                log.warning("%s: tail: %s; retrying", self._purpose, type(exc).__name__)
            finally:
                with contextlib.suppress(KafkaError, OSError):
                    await consumer.stop()
            await asyncio.sleep(PAUSE)

    async def _position(self, consumer: Any, positions: dict[int, int]) -> None:
        """Assign every partition: where the last consumer left it, else at its end now."""
        count = await self._partition_count(self.topic)
        tps = [TopicPartition(self.topic, partition) for partition in range(count)]
        consumer.assign(tps)
        for tp in tps:
            if tp.partition in positions:
                consumer.seek(tp, positions[tp.partition])
        if fresh := [tp for tp in tps if tp.partition not in positions]:
            await consumer.seek_to_end(*fresh)
            # Resolved now, not at the first fetch: a pause before any record came must not
            # move the start past what was committed meanwhile.
            for tp in fresh:
                positions[tp.partition] = await consumer.position(tp)
        log.info("%s: tailing %s (%d partitions)", self._purpose, self.topic, count)
