"""What goes through ``{prefix}sandan-repartition``: hops and marks.

A **hop** is a document whose producer key led to a partition other than its ticket's: the
worker that consumed it produces it to its ticket's partition, with where and when it arrived
in the headers (``doc``, ``topic``, ``origin``, the producer's ``key``, and for a node of an XML
message ``cop``, ``message``, ``node``) and that arrival time as its timestamp.

A **mark** (header ``mark``) is how far a worker has routed its input partitions: every document
of ``origins`` that arrived by ``until`` has been applied there or hopped, and its hops into this
partition come before the mark. Each worker writes one into every repartition partition it does
not own, in the same transactions as its hops; the owner applies a document only once every
other worker's marks passed its arrival time (streams/engine.py), so a hop from a lagging worker
keeps its place in the order of arrival.
"""

from __future__ import annotations

import struct

import msgspec

from schemas.documents import DocType
from schemas.outputs import Source
from streams.intake import Incoming, Origin
from streams.records import Record, TopicPartition

__all__ = ("MARK", "Mark", "hop_headers", "hop_origin", "read_hop", "read_mark")

MARK = "mark"
_ORIGIN = struct.Struct(">iqq")  # partition, offset, timestamp of the original record


class Mark(msgspec.Struct, array_like=True, frozen=True):
    """Every document of ``origins`` (input topic, partition) that arrived by ``until`` (ms) was
    routed, and those bound for this partition are on it before this mark."""

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
