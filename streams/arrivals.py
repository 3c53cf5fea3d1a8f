"""Arrival order: consumed documents are applied in the order they arrived, whichever topic lags.

A ticket's outcome can depend on the order of its documents across the three input topics (a
change after a release, a document after its window closed). The consumer fetches each
partition at its own pace, so the buffer holds what was fetched and releases it merged by record
timestamp, up to the time every partition has been fetched to (the engine's watermark): the
``max.task.idle.ms`` idea of Kafka Streams. Each partition's records keep their offset order.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from operator import attrgetter
from typing import TypeAlias

from aiokafka import ConsumerRecord, TopicPartition

__all__ = ("ArrivalBuffer",)

_timestamp = attrgetter("timestamp")

Record: TypeAlias = "ConsumerRecord[bytes, bytes]"


class ArrivalBuffer:
    """Fetched records per partition, released in timestamp order up to a watermark."""

    def __init__(self) -> None:
        self._queues: dict[TopicPartition, list[Record]] = {}

    def add(self, tp: TopicPartition, records: Sequence[Record]) -> None:
        queue = self._queues.get(tp)
        if queue is None:
            self._queues[tp] = list(records)
        else:
            queue.extend(records)

    def release(self, until_ms: int | None) -> tuple[list[Record], dict[TopicPartition, int]]:
        """The records that arrived by ``until_ms`` (every one if None), in timestamp order,
        and the next offset to commit per partition released from. A partition stops at its
        first record after ``until_ms``, so its order is kept."""
        prefixes: list[list[Record]] = []
        offsets: dict[TopicPartition, int] = {}
        for tp, queue in self._queues.items():
            if not queue:
                continue
            count = len(queue) if until_ms is None else _count_until(queue, until_ms)
            if count == 0:
                continue
            prefixes.append(queue[:count])
            offsets[tp] = queue[count - 1].offset + 1
            del queue[:count]
        if len(prefixes) == 1:
            return prefixes[0], offsets
        return list(heapq.merge(*prefixes, key=_timestamp)), offsets

    def buffered(self, tp: TopicPartition) -> int:
        queue = self._queues.get(tp)
        return len(queue) if queue else 0

    def drop(self, partitions: Iterable[TopicPartition]) -> None:
        """Forget partitions no longer owned (their records are fetched again by the owner)."""
        for tp in partitions:
            self._queues.pop(tp, None)


def _count_until(queue: list[Record], until_ms: int) -> int:
    for index, record in enumerate(queue):
        if record.timestamp > until_ms:
            return index
    return len(queue)
