"""The messages the engine and the stages pass each other, in one module that the engine, the
store, the pipeline and the stages import (and nothing of theirs):

- :class:`Record` (consumed), :class:`Routed` (a document held for its turn) and
  :class:`Output` (to produce): plain tuples, whichever Kafka client fetched them. The engine
  converts each fetched message once; the arrival buffer and the pipeline read these fields
  and nothing else, so they are tested without a broker or a client library.
- :class:`LedgerRequest` and :class:`Outcome`: what the ticket stage and the buyer ledger send
  each other through the internal topics (msgpack);
- :class:`Sighting`: a decided ticket as the alert stage sees it (streams/alerts.py), sent to
  the partition of each of its keys (:class:`KeyedSighting`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, NamedTuple

import msgspec

from schemas.outputs import Decision
from schemas.receipts import Addressee

__all__ = (
    "KeyedSighting",
    "LedgerRequest",
    "Outcome",
    "Output",
    "Record",
    "Routed",
    "Sighting",
    "TopicPartition",
    "consumed",
)


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


class Output(NamedTuple):
    """One record to produce; ``partition`` None: where Kafka's default partitioner puts it
    (murmur2 of the key; round robin without a key)."""

    topic: str
    key: bytes | None
    value: bytes | None
    partition: int | None = None
    headers: list[tuple[str, bytes]] | None = None
    timestamp: int | None = None  # None: the producer's clock


class LedgerRequest(msgspec.Struct, array_like=True, gc=False):
    """A clean ticket on its way to the buyer ledger (keyed by buyerIdNumber)."""

    ticket_partition: int
    buyer: str
    year: int
    decision: Decision
    addressees: list[Addressee] = msgspec.field(default_factory=list)
    # When the ticket completed, in arrival time (ms): the ledger decides in this order, across
    # workers (streams/engine.py). 0: unknown (a request of an earlier version).
    at: int = 0


class Outcome(msgspec.Struct, array_like=True, gc=False):
    """The ledger's answer for one ticket revision (back to the ticket's partition)."""

    order_no: str
    ebp_code: str
    revision: int
    released: bool


class Sighting(msgspec.Struct, array_like=True, gc=False):
    """A ticket revision the rules decided (diverted, or sent to the buyer ledger, which
    releases or diverts it), with its order's values the alert patterns read (personal data:
    internal topics only)."""

    ticket: str  # ticketId
    at: int  # the ticket's time: its first document's arrival (ms), as firstSeenAt
    buyer: str  # buyerIdNumber
    consignee: str
    address: str  # consigneeAddress
    telephone: str  # consigneeTelephone
    dutiable: Decimal  # the ticket's dutiable value


class KeyedSighting(msgspec.Struct, array_like=True, gc=False):
    """A sighting on its way to one of its alert keys (``kind``: the field the key is of,
    schemas.alerts.KeyKind); the record's key is the alert key (streams/alerts.py)."""

    kind: str
    sighting: Sighting


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
