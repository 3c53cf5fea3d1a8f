"""The records the engine hands to the stages: plain tuples, whichever Kafka client fetched them.

The engine converts each fetched message once; the arrival buffer and the pipeline read these
fields and nothing else, so they are tested without a broker or a client library.
"""

from __future__ import annotations

from typing import Any, NamedTuple

__all__ = ("Record", "Routed", "TopicPartition", "consumed")


class TopicPartition(NamedTuple):
    """One partition of one topic."""

    topic: str
    partition: int


class Record(NamedTuple):
    """One consumed record."""

    topic: str
    partition: int
    offset: int
    timestamp: int  # ms since the epoch: the broker's append time or the producer's
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()


class Routed(NamedTuple):
    """A document of a consumed input record whose ticket is on a partition this worker owns:
    held in arrival order (streams/arrivals.py) until it may be applied."""

    record: Record
    ticket_partition: int
    document: Any  # the pipeline's decoded form; the engine holds it as it is

    @property
    def timestamp(self) -> int:
        return self.record.timestamp


def consumed(message: Any) -> Record:
    """A message confluent-kafka's consumer returned (without an error) as a Record."""
    return Record(
        message.topic(),
        message.partition(),
        message.offset(),
        message.timestamp()[1],
        message.key(),
        message.value(),
        tuple(message.headers() or ()),
    )
