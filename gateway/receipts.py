"""Reading a caller's receipts from the receipt topic: a pool of consumers and a long-poll.

A page is read by a consumer borrowed from a small pool (``group_id=None``,
``read_committed``): it is assigned the caller's partitions, seeks to the cursor's offsets
(or the earliest retained), reads up to the last stable offset found at the start, keeps the
records keyed by the caller's codes and goes back to the pool. No consumer is started per
request, and no consumer group is involved. The first and last offsets come from one shared
consumer that never fetches: the broker answers a connection's requests in order, so asking
on a fetching consumer's connection would wait behind its fetch.

A long-poll (``wait`` > 0) that found nothing does not hold a consumer while it waits: one
watcher per gateway (a :class:`~gateway.tail.Tail`) tails the whole receipt topic from its end
and wakes the waiters whose codes a new record is keyed by; the waiter then reads again from
its cursor. A waiter registers before its first read, so a receipt committed between the read
and the wait still wakes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Collection
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from gateway.cursor import Seen, select_page, start_offset
from gateway.errors import UnavailableError
from gateway.tail import Tail, new_consumer
from schemas.keys import murmur2_partition
from streams.kafka_security import aiokafka_security
from streams.settings import Settings
from streams.topics import Topics

__all__ = ("ReceiptReader",)

log = logging.getLogger(__name__)

POOL_SIZE = 8
POOL_WAIT = 10.0
SCAN_BUDGET = 5.0  # longest a page spends reading (other firms' records), then it returns
FETCH_RECORDS = 1000
RETRY_AFTER = 2
XML_START = b"<"


def _content_type(headers: Collection[tuple[str, bytes]], value: bytes) -> str:
    for name, header in headers:
        if name.lower() == "content-type":
            text = header.decode(errors="replace").split(";")[0].strip().lower()
            if text in ("application/json", "application/xml"):
                return text
    return "application/xml" if value.lstrip()[:1] == XML_START else "application/json"


class _Waiter:
    __slots__ = ("codes", "event")

    def __init__(self, codes: frozenset[bytes]) -> None:
        self.codes = codes
        self.event = asyncio.Event()


class ReceiptReader:
    """Pages of a caller's receipts, from a pool of consumers; long-polls woken by a watcher."""

    def __init__(
        self,
        settings: Settings,
        partition_count: Callable[[str], Awaitable[int]],
        *,
        broker_up: Callable[[], bool] = lambda: True,
        pool_size: int = POOL_SIZE,
        factory: Callable[..., Any] = AIOKafkaConsumer,
    ) -> None:
        self._settings = settings
        self.topic = Topics(settings).receipt
        self._partition_count = partition_count
        self._broker_up = broker_up
        self._factory = factory
        self._security = aiokafka_security(settings)  # one TLS context for the whole pool
        self._pool_size = pool_size
        self._idle: asyncio.Queue[Any] = asyncio.Queue()
        self._created = 0
        self._all: list[Any] = []
        self._offsets: Any = None
        self._offsets_lock = asyncio.Lock()
        self._waiters: dict[bytes, set[_Waiter]] = {}
        self._watcher = Tail(
            self.topic,
            lambda: self._new_consumer(fetch_max_wait_ms=500),
            partition_count,
            broker_up,
            self._wake,
            "long-polls",
        )
        self._closing = False

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._watcher.start()

    def wake_all(self) -> None:
        """End every long-poll now (shutdown): they answer what they have."""
        self._closing = True
        for waiters in self._waiters.values():
            for waiter in waiters:
                waiter.event.set()

    async def close(self) -> None:
        self.wake_all()
        await self._watcher.close()
        for consumer in [*self._all, self._offsets]:
            if consumer is not None:
                with contextlib.suppress(KafkaError, OSError):
                    await consumer.stop()
        self._all.clear()
        self._offsets = None

    def _new_consumer(self, fetch_max_wait_ms: int = 10) -> Any:
        return new_consumer(
            self._settings,
            "sandan-gateway-receipts",
            self._factory,
            self._security,
            # A page stops once it reached the end; a short fetch wait keeps the fetch the
            # consumer leaves in flight from delaying its next page.
            fetch_max_wait_ms=fetch_max_wait_ms,
            max_partition_fetch_bytes=max(self._settings.max_message_bytes, 1024 * 1024) * 2,
        )

    # -- reading ---------------------------------------------------------------------------

    async def read(
        self, codes: Collection[str], cursor: dict[int, int], limit: int, wait: float
    ) -> tuple[list[Seen], dict[int, int]]:
        """The caller's next receipts after ``cursor`` (at most ``limit``) and the next cursor;
        when there are none, wait up to ``wait`` seconds for one."""
        try:
            async with asyncio.timeout(5.0):
                count = await self._partition_count(self.topic)
        except (KafkaError, TimeoutError) as exc:
            msg = f"the receipt topic is not available ({type(exc).__name__})"
            raise UnavailableError(msg, RETRY_AFTER) from None
        keys = frozenset(code.encode() for code in codes)
        partitions = sorted({murmur2_partition(key, count) for key in keys})
        deadline = time.monotonic() + wait
        waiter = _Waiter(keys)
        for key in keys:
            self._waiters.setdefault(key, set()).add(waiter)
        try:
            while True:
                waiter.event.clear()  # anything committed after this wakes us
                page, positions, caught_up = await self._read_page(partitions, keys, cursor, limit)
                cursor = {**cursor, **positions}
                remaining = deadline - time.monotonic()
                if page or remaining <= 0 or self._closing:
                    return page, cursor
                if not caught_up:  # the scan budget ran out among other firms' records
                    continue
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(remaining):
                        await waiter.event.wait()
        finally:
            for key in keys:
                self._waiters[key].discard(waiter)
                if not self._waiters[key]:
                    del self._waiters[key]

    async def _offsets_consumer(self) -> Any:
        async with self._offsets_lock:
            if self._offsets is None:
                self._offsets = await self._started(self._new_consumer())
            return self._offsets

    @staticmethod
    async def _started(consumer: Any) -> Any:
        try:
            await consumer.start()
        except (KafkaError, OSError) as exc:
            with contextlib.suppress(KafkaError, OSError):
                await consumer.stop()
            msg = f"cannot reach the broker ({type(exc).__name__})"
            raise UnavailableError(msg, RETRY_AFTER) from None
        return consumer

    async def _borrow(self) -> Any:
        if self._idle.empty() and self._created < self._pool_size:
            self._created += 1
            try:
                consumer = await self._started(self._new_consumer())
            except UnavailableError:
                self._created -= 1
                raise
            self._all.append(consumer)
            return consumer
        try:
            async with asyncio.timeout(POOL_WAIT):
                return await self._idle.get()
        except TimeoutError:
            msg = "every receipt reader is busy"
            raise UnavailableError(msg, RETRY_AFTER) from None

    async def _read_page(
        self, partitions: list[int], keys: frozenset[bytes], cursor: dict[int, int], limit: int
    ) -> tuple[list[Seen], dict[int, int], bool]:
        """A page, the next offsets, and whether the read reached the end."""
        tps = [TopicPartition(self.topic, partition) for partition in partitions]
        try:
            offsets = await self._offsets_consumer()
            begin = await offsets.beginning_offsets(tps)
            end = await offsets.end_offsets(tps)  # the last stable offsets (read_committed)
        except KafkaError as exc:
            msg = f"cannot read the receipt topic ({type(exc).__name__})"
            raise UnavailableError(msg, RETRY_AFTER) from None
        positions: dict[int, int] = {}
        todo: dict[TopicPartition, int] = {}
        for tp in tps:
            start = start_offset(cursor.get(tp.partition), begin[tp], end[tp])
            positions[tp.partition] = start
            if start < end[tp]:
                todo[tp] = start
        if not todo:  # nothing new: no consumer needed
            return [], positions, True
        consumer = await self._borrow()
        try:
            found, caught_up = await self._scan(consumer, todo, end, keys, limit, positions)
        except KafkaError as exc:
            msg = f"cannot read the receipt topic ({type(exc).__name__})"
            raise UnavailableError(msg, RETRY_AFTER) from None
        finally:
            consumer.assign([])
            self._idle.put_nowait(consumer)
        page, next_offsets = select_page(found, positions, limit)
        return page, next_offsets, caught_up

    async def _scan(
        self,
        consumer: Any,
        todo: dict[TopicPartition, int],
        end: dict[TopicPartition, int],
        keys: frozenset[bytes],
        limit: int,
        positions: dict[int, int],
    ) -> tuple[dict[int, list[Seen]], bool]:
        """Read each partition of ``todo`` from its start offset up to ``end``, keeping the
        records keyed by ``keys``; ``positions`` is updated to where each read got. True when
        every partition was read to its end."""
        consumer.assign(list(todo))
        for tp, start in todo.items():
            consumer.seek(tp, start)
        found: dict[int, list[Seen]] = {tp.partition: [] for tp in todo}
        active = list(todo)
        matched = 0
        budget_end = time.monotonic() + SCAN_BUDGET
        while active and matched < limit and time.monotonic() < budget_end:
            batch = await consumer.getmany(*active, timeout_ms=200, max_records=FETCH_RECORDS)
            for tp, records in batch.items():
                mine = found[tp.partition]
                for record in records:
                    if record.key in keys and record.value is not None:
                        content_type = _content_type(record.headers, record.value)
                        seen = Seen(
                            tp.partition,
                            record.offset,
                            record.timestamp,
                            content_type,
                            record.value,
                        )
                        mine.append(seen)
                        matched += 1
            for tp in list(active):
                positions[tp.partition] = await consumer.position(tp)
                if positions[tp.partition] >= end[tp]:
                    active.remove(tp)
        return found, not active

    # -- the watcher ----------------------------------------------------------------------

    def _wake(self, record: Any) -> None:
        """The watcher's callback: wake the waiters of a new record's key."""
        for waiter in self._waiters.get(record.key, ()):
            waiter.event.set()
