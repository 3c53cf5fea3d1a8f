"""Arrival order: documents are applied in the order they arrived, whichever topic, partition or
worker they came through.

A ticket's outcome can depend on the order of its documents (a change after a release, a
document after its window closed), and its documents come through several partitions: the three
input topics, and the repartition topic for those whose producer key led elsewhere, from other
workers that may lag. So the documents bound for this worker's tickets wait here, one queue per
source (an input partition, or an origin partition's hops within a repartition partition, each
in its own order), and are released merged by arrival time up to the time every source is known
to have delivered to (the engine's watermark): the ``max.task.idle.ms`` idea of Kafka Streams,
across workers as Flink's watermarks do it.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Hashable, Iterator, Sequence
from operator import itemgetter
from typing import Generic, Protocol, TypeVar

__all__ = ("ArrivalBuffer", "Timed")


class Timed(Protocol):
    @property
    def timestamp(self) -> int: ...


K = TypeVar("K", bound=Hashable)
T = TypeVar("T", bound=Timed)

_first = itemgetter(0)


class ArrivalBuffer(Generic[K, T]):
    """Items held in queues, released merged by timestamp up to a watermark; each queue keeps
    its own order."""

    def __init__(self) -> None:
        self._queues: dict[K, list[T]] = {}
        self._held = 0

    def __len__(self) -> int:
        return self._held

    def add(self, key: K, items: Sequence[T]) -> None:
        queue = self._queues.get(key)
        if queue is None:
            self._queues[key] = list(items)
        else:
            queue.extend(items)
        self._held += len(items)

    def release(self, until_ms: int | None, limit: int | None = None) -> list[T]:
        """The items that arrived by ``until_ms`` (every one if None), in timestamp order, at
        most ``limit`` of them (the earliest). A queue stops at its first item after
        ``until_ms``, so its order is kept; what the limit holds back comes first next time."""
        prefixes: dict[K, list[T]] = {}
        for key, queue in self._queues.items():
            if not queue:
                continue
            count = len(queue) if until_ms is None else _count_until(queue, until_ms)
            if count:
                prefixes[key] = queue[:count]
        if not prefixes:
            return []
        if len(prefixes) == 1:
            key, merged = next(iter(prefixes.items()))
            if limit is not None:
                merged = merged[:limit]
            taken = {key: len(merged)}
        else:
            keys = list(prefixes)
            tagged = (
                [(item.timestamp, index, item) for item in prefix]
                for index, prefix in enumerate(prefixes.values())
            )
            entries = list(heapq.merge(*tagged, key=_first))
            if limit is not None:
                entries = entries[:limit]
            taken = dict.fromkeys(keys, 0)
            for _, index, _ in entries:
                taken[keys[index]] += 1
            merged = [item for _, _, item in entries]
        for key, count in taken.items():
            if count:
                del self._queues[key][:count]
                self._held -= count
        return merged

    def earliest(self, until_ms: int | None) -> int | None:
        """The timestamp of the earliest item still held that arrived by ``until_ms`` (any, if
        None): what a limited release left for the next."""
        heads = [
            queue[0].timestamp
            for queue in self._queues.values()
            if queue and (until_ms is None or queue[0].timestamp <= until_ms)
        ]
        return min(heads) if heads else None

    def buffered(self, key: K) -> int:
        queue = self._queues.get(key)
        return len(queue) if queue else 0

    def heads(self) -> Iterator[tuple[K, T]]:
        """The first item still held of each queue that holds any."""
        for key, queue in self._queues.items():
            if queue:
                yield key, queue[0]

    def drop(self, dropped: Callable[[K], bool]) -> None:
        """Forget the queues whose key is ``dropped`` (their sources are no longer owned)."""
        for key in [key for key in self._queues if dropped(key)]:
            self._held -= len(self._queues.pop(key))


def _count_until(queue: list[T], until_ms: int) -> int:
    for index, item in enumerate(queue):
        if item.timestamp > until_ms:
            return index
    return len(queue)
