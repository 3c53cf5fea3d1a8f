"""What the workers tell each other through ``{prefix}sandan-repartition`` and
``{prefix}sandan-ledger``: hops, ledger requests and marks.

A **hop** is a document whose producer key led to a partition other than its ticket's: the
worker that consumed it produces it to its ticket's partition, with where and when it arrived
in the headers (``doc``, ``topic``, ``origin``, the producer's ``key``, and for a node of an XML
message ``cop``, ``message``, ``node``) and that arrival time as its timestamp.

A **ledger request** (streams/tickets.py) carries, as its timestamp, the arrival time of the
document that completed its ticket, and the ticket's partition in the header ``ticket``.

A **mark** (header ``mark``) is how far a worker is, for the partitions it names: on the
repartition topic, how far it has routed its input partitions (every document of ``origins``
that arrived by ``until`` was applied there or hopped); on the ledger topic, how far it has
applied documents on its ticket partitions (every request they will make for tickets completed
by ``until`` was sent). Either way what it sent to that partition comes before the mark. Each
worker writes its routing marks into every repartition partition it does not own and its
applying marks into every ledger partition, in the transactions of what they cover; the
owner applies a document, or decides a request, only once every worker's marks passed its time
(streams/engine.py). A routing mark depends only on its writer's fetching and an applying mark
only on routing marks, so no two workers ever wait on each other in a circle.
"""

from __future__ import annotations

import struct

import msgspec

from schemas.documents import DocType
from schemas.outputs import Source
from streams.intake import Incoming, Origin
from streams.records import Record, TopicPartition

__all__ = (
    "MARK",
    "Mark",
    "hop_headers",
    "hop_origin",
    "read_hop",
    "read_mark",
    "request_headers",
    "request_source",
)

MARK = "mark"
_ORIGIN = struct.Struct(">iqq")  # partition, offset, timestamp of the original record
_TICKET = "ticket"
TICKETS = "tickets"  # the "topic" of an applying mark's origins: ticket partitions


class Mark(msgspec.Struct, array_like=True, frozen=True):
    """Everything ``origins`` (input topic and partition, or TICKETS and ticket partition) will
    send this partition for a time up to ``until`` (ms) is on it before this mark."""

    until: int
    origins: list[tuple[str, int]]


_encode_mark = msgspec.msgpack.Encoder().encode
_decode_mark = msgspec.msgpack.Decoder(Mark).decode


def mark_value(until: int, origins: list[tuple[str, int]]) -> bytes:
    return _encode_mark(Mark(until, origins))


def read_mark(record: Record) -> Mark | None:
    """The mark this record is, or None (a hop)."""
    for name, _ in record.headers:
        if name == MARK:
            return _decode_mark(record.value or b"")
    return None


def hop_headers(incoming: Incoming) -> list[tuple[str, bytes]]:
    source, origin = incoming.source, incoming.origin
    headers = [
        ("doc", incoming.doc_type.encode()),
        ("topic", source.topic.encode()),
        ("origin", _ORIGIN.pack(source.partition, source.offset, source.timestamp)),
    ]
    if incoming.key is not None:
        headers.append(("key", incoming.key))
    if origin is not None:
        headers += [
            ("cop", origin.cop_code.encode()),
            ("message", origin.message_guid.encode()),
            ("node", str(origin.node).encode()),
        ]
    return headers


def hop_origin(record: Record) -> TopicPartition:
    """The input partition a hop arrived on."""
    headers = dict(record.headers)
    partition, _, _ = _ORIGIN.unpack(headers["origin"])
    return TopicPartition(headers["topic"].decode(), partition)


def read_hop(record: Record, doc_type_of: dict[str, DocType]) -> Incoming:
    """The document a hop carries, as it arrived."""
    headers = dict(record.headers)
    partition, offset, timestamp = _ORIGIN.unpack(headers["origin"])
    topic = headers["topic"].decode()
    origin = None
    if "cop" in headers:
        origin = Origin(headers["cop"].decode(), headers["message"].decode(), int(headers["node"]))
    source = Source(topic, partition, offset, timestamp)
    return Incoming(doc_type_of[topic], headers.get("key"), record.value, source, origin)


def request_headers(ticket_partition: int) -> list[tuple[str, bytes]]:
    return [(_TICKET, str(ticket_partition).encode())]


def request_source(record: Record) -> int:
    """The ticket partition a ledger request comes from."""
    for name, value in record.headers:
        if name == _TICKET:
            return int(value)
    return -1  # a request written before requests carried it: a queue of its own
