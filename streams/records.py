"""The records the engine hands to the stages: plain tuples, whichever Kafka client fetched them.

The engine converts each fetched message once; the arrival buffer and the pipeline read these
fields and nothing else, so they are tested without a broker or a client library.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ("Record", "TopicPartition")


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
