"""The data the benchmarks run on, built from docs/examples' clean ticket (tests.factories).

Everything here is built once, outside the timed functions. :func:`transition` is the ticket
stage's pure work for one ticket when the three documents arrive in three batches.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, NamedTuple

import msgspec

from matchers import Limits
from schemas.codec import decode_document
from schemas.documents import DocType, Document
from schemas.fields import enc_hook
from schemas.outputs import Rejection, Source
from streams.intake import Incoming, validate
from streams.tickets import Emit, Group, Rules, apply_document, is_document_key, next_due
from tests.factories import as_bytes, logistics_dict, order_dict, payment_dict

__all__ = (
    "EBP",
    "ENCODER",
    "GROUP_DECODER",
    "ORDER_NO",
    "PARTITIONS",
    "RULES",
    "T0",
    "TicketRecords",
    "group_due",
    "order_with_lines",
    "renewed",
    "renewed_record",
    "ticket_records",
    "transition",
)

# The worker's defaults (streams.settings): a 24 h window, 7 d retention, a 180 d released
# horizon, 12 partitions.
RULES = Rules(
    window_ms=24 * 3600 * 1000,
    retention_ms=7 * 86400 * 1000,
    released_horizon_ms=180 * 86400 * 1000,
    limits=Limits(),
    max_document_bytes=256 * 1024,
)
PARTITIONS = 12
T0 = 1_795_490_400_000  # 2026-11-24T03:20:00.000Z
ORDER_NO = "SO20261124000001"
EBP = "3301980ABC"
TOPICS: dict[DocType, str] = {
    "order": "cbec.order",
    "payment": "cbec.payment",
    "logistics": "cbec.logistics",
}

# As streams.pipeline stores groups.
ENCODER = msgspec.msgpack.Encoder(enc_hook=enc_hook)
GROUP_DECODER = msgspec.msgpack.Decoder(Group)


def group_due(key: bytes, value: bytes) -> int | None:
    """The tickets store's timer function, as streams.pipeline passes it to Store."""
    return None if is_document_key(key) else next_due(GROUP_DECODER.decode(value))


_ITEMS = (
    "奶粉",
    "面膜",
    "保健品",
    "纸尿裤",
    "洗发水",
    "维生素",
    "口红",
    "面霜",
    "婴儿辅食",
    "牙膏",
)


def order_with_lines(count: int, **overrides: Any) -> dict[str, Any]:
    """The example order with ``count`` goods lines whose sums hold (a clean order)."""
    template = order_dict()["orderList"][0]
    lines = []
    goods = Decimal(0)
    for index in range(count):
        price = Decimal("19.90") + Decimal(index) * Decimal("7.35")
        qty = 1 + index % 3
        total = price * qty
        goods += total
        lines.append(
            {
                **template,
                "gnum": index + 1,
                "itemNo": f"SKU{index:04d}",
                "itemName": _ITEMS[index % len(_ITEMS)],
                "qty": str(qty),
                "price": str(price),
                "totalPrice": str(total),
            }
        )
    freight = Decimal("10.00")
    fields: dict[str, Any] = {
        "orderList": lines,
        "goodsValue": str(goods),
        "freight": str(freight),
        "acturalPaid": str(goods + freight),
    }
    return order_dict(**{**fields, **overrides})


class TicketRecords(NamedTuple):
    """One ticket's three input records and their validated documents, in arrival order."""

    records: tuple[Incoming, Incoming, Incoming]
    documents: tuple[Document, Document, Document]


def _incoming(doc_type: DocType, document: dict[str, Any], offset: int) -> Incoming:
    source = Source(TOPICS[doc_type], 0, offset, T0 + offset)
    return Incoming(doc_type, ORDER_NO.encode(), as_bytes(document), source)


def ticket_records(
    order: dict[str, Any] | None = None,
    payment: dict[str, Any] | None = None,
    logistics: dict[str, Any] | None = None,
) -> TicketRecords:
    """The example ticket's records (any document replaced), validated as intake does."""
    records = (
        _incoming("order", order or order_dict(), 1),
        _incoming("payment", payment or payment_dict(), 2),
        _incoming("logistics", logistics or logistics_dict(), 3),
    )
    documents = []
    for record in records:
        result = validate(record, RULES.max_document_bytes)
        assert not isinstance(result, Rejection), result
        documents.append(result)
    return TicketRecords(records, (documents[0], documents[1], documents[2]))


def renewed_record(record: Incoming, guid: str, serial: int) -> Incoming:
    """The record with its document's ``guid`` replaced by one made from ``serial``: new bytes,
    so no decoding of them can have been remembered."""
    new = f"00000000-0000-4000-8000-{serial:012d}".encode()
    return record._replace(value=(record.value or b"").replace(guid.encode(), new))


def renewed(ticket: TicketRecords, serial: int) -> TicketRecords:
    """The ticket with new guids (see :func:`renewed_record`), its documents decoded with
    :func:`~schemas.codec.decode_document`, which caches nothing."""
    records: list[Incoming] = []
    documents: list[Document] = []
    for index, (record, document) in enumerate(zip(*ticket, strict=True)):
        new = renewed_record(record, document.guid, serial * 3 + index)
        records.append(new)
        documents.append(decode_document(new.doc_type, new.value, len(new.value or b"")))
    return TicketRecords(
        (records[0], records[1], records[2]), (documents[0], documents[1], documents[2])
    )


def transition(ticket: TicketRecords) -> tuple[Group, bytes, list[Emit]]:
    """The ticket stage's pure steps (:func:`~streams.tickets.apply_document`) for one ticket
    whose documents arrive one per batch, 1 s apart: the group stored (msgpack) after each step
    and read back before the next, the documents a step writes kept decoded, as the pipeline's
    cache keeps them. (The pipeline itself, store and all: tests/bench/test_pipeline.py.)

    Returns the final group, its stored bytes and what the last document emitted.
    """
    stored: dict[str, Document] = {}

    def read(kind: DocType, guid: str) -> Document:
        return stored[guid]

    group = Group(ORDER_NO)
    emits: list[Emit] = []
    for n, (record, document) in enumerate(zip(*ticket, strict=True)):
        group = GROUP_DECODER.decode(ENCODER.encode(group)) if n else group
        step = apply_document(RULES, 0, group, read, record, document, T0 + n * 1000)
        stored.update({guid: w.document for guid, w in step.documents.items() if w})
        emits = step.emits
    return group, ENCODER.encode(group), emits
