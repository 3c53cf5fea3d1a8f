"""Arrival order: consumed documents are applied in the order they arrived, whichever topic lags.

A ticket's outcome can depend on the order of its documents across the three input topics (a
change after a release, a document after its window closed). The consumer fetches each
partition at its own pace, so the buffer holds what was fetched and releases it merged by record
timestamp, up to the time every partition has been fetched to (the engine's watermark): the
``max.task.idle.ms`` idea of Kafka Streams. Each partition's records keep their offset order.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable, Sequence
from operator import attrgetter

from streams.records import Record, TopicPartition

__all__ = ("ArrivalBuffer",)

_timestamp = attrgetter("timestamp")


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

    def release(
        self, until_ms: int | None, limit: int | None = None
    ) -> tuple[list[Record], dict[TopicPartition, int]]:
        """The records that arrived by ``until_ms`` (every one if None), in timestamp order, at
        most ``limit`` of them (the earliest), and the next offset to commit per partition
        released from. A partition stops at its first record after ``until_ms``, so its order
        is kept; what the limit holds back comes first next time."""
        prefixes: dict[TopicPartition, list[Record]] = {}
        for tp, queue in self._queues.items():
            if not queue:
                continue
            count = len(queue) if until_ms is None else _count_until(queue, until_ms)
            if count:
                prefixes[tp] = queue[:count]
        if not prefixes:
            return [], {}
        if len(prefixes) == 1:
            merged = next(iter(prefixes.values()))
        else:
            merged = list(heapq.merge(*prefixes.values(), key=_timestamp))
        if limit is not None and len(merged) > limit:
            merged = merged[:limit]
            taken = Counter((r.topic, r.partition) for r in merged)
        else:
            taken = Counter({(tp.topic, tp.partition): len(p) for tp, p in prefixes.items()})
        offsets: dict[TopicPartition, int] = {}
        for tp in prefixes:
            count = taken[(tp.topic, tp.partition)]
            if count:
                queue = self._queues[tp]
                offsets[tp] = queue[count - 1].offset + 1
                del queue[:count]
        return merged, offsets

    def earliest(self, until_ms: int | None) -> int | None:
        """The timestamp of the earliest record still held that arrived by ``until_ms`` (any,
        if None): what a limited release left for the next."""
        heads = [
            queue[0].timestamp
            for queue in self._queues.values()
            if queue and (until_ms is None or queue[0].timestamp <= until_ms)
        ]
        return min(heads) if heads else None

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
