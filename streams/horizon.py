"""How far the other workers have processed their input partitions: the time up to which a
worker may apply documents and close windows without missing a document that hops to it.

A document consumed by worker A whose ticket lives on worker B's partition reaches B through the
repartition topic only once A processed it, which may be long after it arrived if A lags. B
must then not close that ticket's window, nor apply a later document of the ticket first. Input
topics are ``LogAppendTime``: on each input partition ``p`` the arrival times grow with the
offsets, so every document that arrived by ``W`` on ``p`` sits before the first record that
arrived after ``W``. A's transactions commit its offsets on ``p`` together with the hops of the
records before them, so once A's committed offset on ``p`` passed that record, every hop from
``p`` that arrived by ``W`` is on the repartition topic, and B has it once it has read the
repartition partitions it owns up to their end as of after that check.

:meth:`Horizon.measure` finds, for the input partitions other workers own, the latest such time:
per partition, the arrival time of its first unprocessed record (read from the broker) minus
1 ms, or the time of the check where nothing is left unprocessed; and the repartition
partitions' ends the worker must read past before it may use it. No protocol between workers:
the committed offsets and the logs are the truth.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any, NamedTuple

from confluent_kafka import Consumer, KafkaException
from confluent_kafka import TopicPartition as KafkaPartition

from streams.records import TopicPartition

__all__ = ("Horizon", "Measurement")

READ_TIMEOUT = 2.0  # seconds for one measurement's broker calls


class Measurement(NamedTuple):
    """Every document on the measured partitions that arrived by ``until_ms`` has been
    processed; usable once the repartition partitions were read up to ``ends``."""

    until_ms: int
    ends: dict[TopicPartition, int]


class Horizon:
    """Reads the group's committed offsets and the first unprocessed records (its own clients:
    no group membership, read_committed)."""

    def __init__(self, config: dict[str, Any], group_id: str) -> None:
        common = {
            **config,
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "enable.partition.eof": False,
        }
        self._offsets = Consumer({**common, "group.id": group_id})  # never subscribes
        self._reader = Consumer({**common, "group.id": f"{group_id}-horizon"})

    def measure(
        self, foreign: Iterable[TopicPartition], repartition: Iterable[TopicPartition]
    ) -> Measurement | None:
        """The measurement, or None when the broker did not answer in time."""
        checked_ms = int(time.time() * 1000)
        wanted = [KafkaPartition(tp.topic, tp.partition) for tp in foreign]
        try:
            committed = self._offsets.committed(wanted, timeout=READ_TIMEOUT)
            behind: list[KafkaPartition] = []
            for tp in committed:
                low, high = self._offsets.get_watermark_offsets(tp, timeout=READ_TIMEOUT)
                position = tp.offset if tp.offset >= 0 else low
                if position < high:
                    behind.append(KafkaPartition(tp.topic, tp.partition, position))
            until = min([checked_ms - 1, *self._first_arrivals(behind)])
            ends = {}
            for q in repartition:
                _, high = self._offsets.get_watermark_offsets(
                    KafkaPartition(q.topic, q.partition), timeout=READ_TIMEOUT
                )
                ends[q] = high
        except KafkaException:  # no measurement this time; the next one comes soon
            return None
        return Measurement(until, ends)

    def _first_arrivals(self, behind: list[KafkaPartition]) -> list[int]:
        """The arrival time - 1 of the record at each partition's offset; a partition whose
        record cannot be read now holds the horizon where it was (0)."""
        if not behind:
            return []
        self._reader.assign(behind)
        firsts: dict[tuple[str, int], int] = {}
        deadline = time.monotonic() + READ_TIMEOUT
        while len(firsts) < len(behind) and time.monotonic() < deadline:
            for message in self._reader.consume(len(behind), 0.1):
                if message.error() is None:
                    where = (message.topic(), message.partition())
                    firsts.setdefault(where, message.timestamp()[1] - 1)  # type: ignore[arg-type]
        self._reader.unassign()
        return [firsts.get((tp.topic, tp.partition), 0) for tp in behind]

    def close(self) -> None:
        self._offsets.close()
        self._reader.close()
