"""docs/contract.md end to end on the real broker, one or more tests per behaviour.

Every divert reason; every rejection reachable after intake (DRAFT, DUPLICATE, UNKNOWN_DOCUMENT,
TICKET_RELEASED, STALE); exact redelivery; revisions after a change or a delete; the annual
limit across tickets on different partitions; producers' keys and partitions ignored; the window
closing with no traffic and across a worker restart. Each test asserts the exact output records
(decision fields, reasons, ``missing``, document guids; rejection code, key, source and raw
bytes) for its own orderNos, so the tests share one deployment where they do not restart workers.

Where a test asserts that something is *not* emitted, it first sends a barrier: a draft (always
rejected ``DRAFT``, stateless) on the same topic and partition right after the records under
test. Once the draft's rejection is visible, the records before it have been processed.
"""

from __future__ import annotations

import base64
import json
import random
import re
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, TypedDict

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from matchers import RULES_VERSION
from matchers.identity import resident_id_check_char
from schemas.keys import murmur2_partition
from tests.factories import logistics_dict, order_dict, payment_dict
from tests.integration.conftest import PARTITIONS, Deployment
from tests.integration.kafka import run

WINDOW = 5.0  # SANDAN_WINDOW of the shared deployment, seconds
EBP = "3301980ABC"
OTHER_EBP = "3301980DEF"
OUTPUT_KINDS = ("release", "divert", "rejected")
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
BUSINESS_KEYS = (
    "guid",
    "orderNo",
    "ebpCode",
    "payCode",
    "payTransactionId",
    "logisticsCode",
    "logisticsNo",
)
DECISION_FIELDS = {
    "ticketId",
    "decision",
    "revision",
    "decidedAt",
    "orderNo",
    "ebpCode",
    "ebcCode",
    "payCode",
    "payTransactionId",
    "logisticsCode",
    "logisticsNo",
    "buyerIdNumber",
    "buyerName",
    "acturalPaid",
    "dutiableValue",
    "fullTax",
    "documents",
    "firstSeenAt",
    "completedAt",
    "decidedBy",
}

Doc = dict[str, Any]


class TicketDocs(TypedDict):
    """One ticket's three documents; ``**docs`` gives check_decision its document arguments."""

    order: Doc
    payment: Doc
    logistics: Doc


class Overrides(TypedDict, total=False):
    """Field overrides per document, ``**overrides`` for ticket_docs."""

    order: Doc
    payment: Doc
    logistics: Doc


# (code, fields) pairs of a divert, in order; fields None: not compared
Reasons = Sequence[tuple[str, dict[str, list[str | None]] | None]]


# -- documents --------------------------------------------------------------------------------


def new_guid() -> str:
    return str(uuid.uuid4()).upper()  # 36 characters


def new_order_no(tag: str) -> str:
    return f"CT{tag}{uuid.uuid4().hex[:12].upper()}"


def new_buyer_id() -> str:
    """A valid 18-character resident ID, different per call (a buyer of its own)."""
    first17 = f"440305{random.randint(1950, 1999)}{random.randint(1, 12):02d}"
    first17 += f"{random.randint(1, 28):02d}{random.randint(0, 999):03d}"
    return first17 + resident_id_check_char(first17)


def ticket_docs(
    order_no: str,
    *,
    ebp: str = EBP,
    order: Doc | None = None,
    payment: Doc | None = None,
    logistics: Doc | None = None,
) -> TicketDocs:
    """One ticket's three documents with fresh guids and a buyer of its own (clean unless
    overridden)."""
    buyer = new_buyer_id()
    return {
        "order": order_dict(
            **{"orderNo": order_no, "ebpCode": ebp, "buyerIdNumber": buyer, **(order or {})},
            guid=new_guid(),
        ),
        "payment": payment_dict(
            **{"orderNo": order_no, "ebpCode": ebp, "payerIdNumber": buyer, **(payment or {})},
            guid=new_guid(),
        ),
        "logistics": logistics_dict(**{"orderNo": order_no, **(logistics or {})}, guid=new_guid()),
    }


def version(doc: Doc, app_type: str, app_time: str, **changes: Any) -> Doc:
    """Another version of ``doc``: a new guid, the given appType and appTime."""
    return {**doc, "guid": new_guid(), "appType": app_type, "appTime": app_time, **changes}


def draft(kind: str, order_no: str) -> Doc:
    factory = {"order": order_dict, "payment": payment_dict, "logistics": logistics_dict}[kind]
    return factory(orderNo=order_no, guid=new_guid(), appStatus="1")


def single_item(value: str, buyer: str) -> Overrides:
    """Overrides for a clean order of one line with qty 1 worth ``value`` (freight 10.00)."""
    line = {**order_dict()["orderList"][0], "qty": "1", "price": value, "totalPrice": value}
    paid = str(Decimal(value) + Decimal("10.00"))
    return {
        "order": {
            "orderList": [line],
            "goodsValue": value,
            "freight": "10.00",
            "discount": "0.00",
            "taxTotal": "0.00",
            "acturalPaid": paid,
            "buyerIdNumber": buyer,
        },
        "payment": {"amountPaid": paid, "payerIdNumber": buyer},
    }


def dutiable(order: Doc, logistics: Doc | None) -> str:
    value = Decimal(order["goodsValue"]) + Decimal(order["freight"])
    if logistics is not None and logistics.get("insuredFee") is not None:
        value += Decimal(logistics["insuredFee"])
    return str(value)


# -- producing and consuming ----------------------------------------------------------------

_BY_ORDER_NO: Any = object()


@dataclass(frozen=True)
class Rec:
    """One record to send: key defaults to the orderNo, partition to the partitioner's."""

    kind: str
    doc: Doc
    key: bytes | None = _BY_ORDER_NO
    partition: int | None = None


@dataclass(frozen=True)
class Sent:
    kind: str
    doc: Doc
    key: bytes | None
    value: bytes
    topic: str
    partition: int
    offset: int
    timestamp: int


@dataclass(frozen=True)
class Out:
    kind: str  # release, divert or rejected
    key: bytes | None
    value: dict[str, Any]
    seen: float = field(compare=False)  # time.monotonic() when read


async def _produce(
    brokers: str, items: list[tuple[str, bytes | None, bytes, int | None]]
) -> list[Any]:
    producer = AIOKafkaProducer(bootstrap_servers=brokers, linger_ms=0, acks="all")
    await producer.start()
    try:
        metadata = []
        for topic, key, value, partition in items:
            future = await producer.send(
                topic, value, key=key, partition=partition, timestamp_ms=int(time.time() * 1000)
            )
            metadata.append(await future)
        return metadata
    finally:
        await producer.stop()


def send(d: Deployment, *records: Rec) -> list[Sent]:
    """Produce in order, each acknowledged before the next; return where each landed."""
    items = []
    for rec in records:
        key = rec.doc["orderNo"].encode() if rec.key is _BY_ORDER_NO else rec.key
        items.append(
            (
                d.topic(rec.kind),
                key,
                json.dumps(rec.doc, ensure_ascii=False).encode(),
                rec.partition,
            )
        )
    metadata = run(_produce(d.brokers, items))
    return [
        Sent(rec.kind, rec.doc, key, value, topic, md.partition, md.offset, md.timestamp)
        for rec, (topic, key, value, _), md in zip(records, items, metadata, strict=True)
    ]


async def _collect(
    brokers: str,
    topics: dict[str, str],
    match: Callable[[Out], bool],
    count: int,
    *,
    settle: float,
    limit: float,
) -> list[Out]:
    """Read committed records of ``topics`` from the start; keep those ``match`` accepts. Stop
    once ``count`` are kept, everything up to the end offsets seen at the start has been read,
    and nothing new was kept for ``settle`` seconds; or after ``limit`` seconds."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=brokers,
        isolation_level="read_committed",
        enable_auto_commit=False,
        group_id=None,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for topic in topics for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        start = time.monotonic()
        deadline = start + limit
        last = start
        found: list[Out] = []
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=100)
            for tp, records in batch.items():
                for record in records:
                    out = Out(
                        topics[tp.topic], record.key, json.loads(record.value), time.monotonic()
                    )
                    if match(out):
                        found.append(out)
                        last = out.seen
            if len(found) >= count and time.monotonic() - last >= settle:
                positions = [await consumer.position(tp) for tp in tps]
                if all(pos >= ends[tp] for pos, tp in zip(positions, tps, strict=True)):
                    break
        return found
    finally:
        await consumer.stop()


def outputs(
    d: Deployment, order_nos: set[str], count: int, *, settle: float = 1.0, limit: float = 20.0
) -> list[Out]:
    """The output records (release, divert, rejected) naming one of ``order_nos``: at least
    ``count`` of them unless ``limit`` runs out, plus any that came within ``settle`` after."""
    topics = {d.topic(kind): kind for kind in OUTPUT_KINDS}
    found: list[Out] = run(
        _collect(
            d.brokers,
            topics,
            lambda o: o.value.get("orderNo") in order_nos,
            count,
            settle=settle,
            limit=limit,
        )
    )
    return found


def decisions_of(outs: list[Out]) -> list[Out]:
    return sorted(
        (o for o in outs if o.kind != "rejected"),
        key=lambda o: (o.value["ticketId"], o.value["revision"]),
    )


def rejections_of(outs: list[Out], sent: list[Sent] | None = None) -> dict[str, Out]:
    """Rejections by guid (one each), leaving out those of the ``sent`` barrier drafts after
    checking them."""
    by_guid: dict[str, Out] = {}
    for out in outs:
        if out.kind == "rejected":
            guid = out.value["guid"]
            assert guid not in by_guid, f"two rejections of {guid}: {out.value}"
            by_guid[guid] = out
    for barrier in sent or []:
        check_rejection(by_guid.pop(barrier.doc["guid"]), barrier, "DRAFT")
    return by_guid


def barrier(d: Deployment, order_no: str, *kinds: str) -> list[Sent]:
    """A draft on each kind's topic, on the partition of the records keyed by orderNo."""
    return send(d, *(Rec(kind, draft(kind, order_no)) for kind in kinds))


# -- assertions -------------------------------------------------------------------------------


def check_decision(
    out: Out,
    decision: str,
    revision: int,
    *,
    order: Doc | None,
    payment: Doc | None,
    logistics: Doc | None,
    ebp: str | None = EBP,
    order_no: str | None = None,
    reasons: Reasons | None = None,
    missing: list[str] | None = None,
    full_tax: bool | None = False,
) -> None:
    """The whole decision record: every field from the documents decided on. ``reasons`` are
    (code, fields) pairs in order (fields None: not compared); ``full_tax`` None: not compared."""
    value = out.value
    some = order or payment or logistics
    assert some is not None
    order_no = order_no or some["orderNo"]
    ticket = f"{ebp or ''}:{order_no}"
    assert out.kind == decision.lower(), value
    assert out.key == ticket.encode(), (out.key, value)
    expected = {
        "ticketId": ticket,
        "decision": decision,
        "revision": revision,
        "orderNo": order_no,
        "ebpCode": ebp,
        "ebcCode": order["ebcCode"] if order else None,
        "payCode": (payment or order or {}).get("payCode"),
        "payTransactionId": (payment or order or {}).get("payTransactionId"),
        "logisticsCode": logistics["logisticsCode"] if logistics else None,
        "logisticsNo": logistics["logisticsNo"] if logistics else None,
        "buyerIdNumber": order["buyerIdNumber"] if order else (payment or {}).get("payerIdNumber"),
        "buyerName": order["buyerName"] if order else (payment or {}).get("payerName"),
        "acturalPaid": order["acturalPaid"] if order else None,
        "dutiableValue": dutiable(order, logistics) if order else None,
        "documents": {
            "order": order["guid"] if order else None,
            "payment": payment["guid"] if payment else None,
            "logistics": logistics["guid"] if logistics else None,
        },
    }
    got = {k: value.get(k) for k in expected}
    assert got == expected, (got, expected)
    if full_tax is not None:
        assert value["fullTax"] is full_tax, value
    assert isinstance(value["fullTax"], bool)
    assert value["decidedBy"]["rulesVersion"] == RULES_VERSION, value
    assert value["decidedBy"]["windowSeconds"] > 0, value
    assert (value["decidedBy"]["singleLimit"], value["decidedBy"]["annualLimit"]) == (
        "5000",
        "26000",
    )
    assert ISO_MS.match(value["decidedAt"]) and ISO_MS.match(value["firstSeenAt"]), value
    complete = order is not None and payment is not None and logistics is not None
    if complete:
        assert ISO_MS.match(value["completedAt"] or ""), value
    else:
        assert value["completedAt"] is None, value
    if decision == "RELEASE":
        assert set(value) == DECISION_FIELDS, value
        return
    assert set(value) == DECISION_FIELDS | {"reasons", "missing"}, value
    assert value["missing"] == (missing or []), value
    assert reasons is not None
    assert [r["code"] for r in value["reasons"]] == [code for code, _ in reasons], value
    for reason, (code, fields) in zip(value["reasons"], reasons, strict=True):
        assert isinstance(reason["detail"], str) and reason["detail"], (code, reason)
        if fields is not None:
            assert reason["fields"] == fields, (code, reason)


def check_rejection(out: Out, sent: Sent, code: str) -> None:
    """The whole rejection record of ``sent``: code, docType, key, business keys, source, raw."""
    value = out.value
    assert out.kind == "rejected", value
    assert value["code"] == code, (code, value)
    assert value["docType"] == sent.kind, value
    assert out.key == sent.key, (out.key, sent.key)
    assert base64.b64decode(value["raw"]) == sent.value
    assert value["source"] == {
        "topic": sent.topic,
        "partition": sent.partition,
        "offset": sent.offset,
        "timestamp": sent.timestamp,
    }, value
    business = {k: value[k] for k in BUSINESS_KEYS if k in value}
    assert business == {k: sent.doc[k] for k in BUSINESS_KEYS if sent.doc.get(k)}, value
    assert isinstance(value["detail"], str) and value["detail"], value
    assert set(value) <= {"code", "detail", "docType", "source", "raw", *BUSINESS_KEYS}, value


def ms(iso: str) -> int:
    moment = datetime.strptime(iso.replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z")
    return int(moment.timestamp() * 1000)


# -- the shared deployment --------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared(brokers: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    d = Deployment(brokers, tmp_path_factory.mktemp("contract"), SANDAN_WINDOW=f"{int(WINDOW)}s")
    d.worker().wait_ready()
    yield d
    d.stop()


# First in the module: nothing else is sent while it waits.
def test_missing_documents_when_the_window_closes_with_no_other_traffic(shared: Deployment) -> None:
    order_no = new_order_no("MD")
    docs = ticket_docs(order_no)
    sent_at = time.monotonic()
    send(shared, Rec("order", docs["order"]), Rec("payment", docs["payment"]))

    outs = outputs(shared, {order_no}, 1, settle=1.5, limit=WINDOW + 10)

    assert len(outs) == 1, [o.value for o in outs]
    divert = outs[0]
    check_decision(
        divert,
        "DIVERT",
        1,
        order=docs["order"],
        payment=docs["payment"],
        logistics=None,
        reasons=[("MISSING_DOCUMENTS", {})],
        missing=["logistics"],
    )
    assert WINDOW - 0.5 <= divert.seen - sent_at <= WINDOW + 5, divert.seen - sent_at
    waited = ms(divert.value["decidedAt"]) - ms(divert.value["firstSeenAt"])
    assert WINDOW * 1000 <= waited <= (WINDOW + 3) * 1000, waited


# -- the rules --------------------------------------------------------------------------------

_TWO_OF_ONE_ITEM = [
    {**order_dict()["orderList"][0], "qty": "2", "price": "2600.00", "totalPrice": "5200.00"},
]

DIVERT_CASES: dict[str, tuple[Overrides, Reasons]] = {
    "AMOUNT_MISMATCH": (
        {"payment": {"amountPaid": "500.00"}},
        [("AMOUNT_MISMATCH", {"acturalPaid": ["497.50", "500.00"]})],
    ),
    "ORDER_ARITHMETIC total": (
        {"order": {"acturalPaid": "500.00"}, "payment": {"amountPaid": "500.00"}},
        [("ORDER_ARITHMETIC", {"acturalPaid": ["500.00", "497.50"]})],
    ),
    "ORDER_ARITHMETIC line": (
        {
            "order": {
                "orderList": [
                    {**order_dict()["orderList"][0], "totalPrice": "399.00"},
                    order_dict()["orderList"][1],
                ],
                "goodsValue": "488.50",
                "acturalPaid": "498.50",
            },
            "payment": {"amountPaid": "498.50"},
        },
        [("ORDER_ARITHMETIC", {"orderList[0].totalPrice": ["399.00", "398.00"]})],
    ),
    "PAYER_MISMATCH": (
        {"payment": {"payerName": "李四"}},
        [("PAYER_MISMATCH", {"buyerName": ["王芳张", "李四"]})],
    ),
    "PAYMENT_REFERENCE_MISMATCH": (
        {"payment": {"payTransactionId": "PAYOTHER000000000001"}},
        [
            (
                "PAYMENT_REFERENCE_MISMATCH",
                {"payTransactionId": ["PAY9FDCC88713814260AE65", "PAYOTHER000000000001"]},
            )
        ],
    ),
    "CONSIGNEE_MISMATCH": (
        {"logistics": {"consigneeTelephone": "13149827707"}},
        [("CONSIGNEE_MISMATCH", {"consigneeTelephone": ["13149827706", "13149827707"]})],
    ),
    "INVALID_BUYER_ID": (
        {
            "order": {"buyerIdNumber": "440305198012262284"},
            "payment": {"payerIdNumber": "440305198012262284"},
        },
        [("INVALID_BUYER_ID", {"buyerIdNumber": ["440305198012262284", None]})],
    ),
    "SINGLE_LIMIT_EXCEEDED": (
        {
            "order": {
                "orderList": _TWO_OF_ONE_ITEM,
                "goodsValue": "5200.00",
                "acturalPaid": "5210.00",
            },
            "payment": {"amountPaid": "5210.00"},
        },
        [("SINGLE_LIMIT_EXCEEDED", {"dutiableValue": ["5210.00", "5000"]})],
    ),
    "all reasons reported": (
        {
            "payment": {"amountPaid": "500.00"},
            "logistics": {"consignee": "王芳", "consigneeAddress": "浙江省杭州市西湖区文三路2号"},
        },
        [
            ("AMOUNT_MISMATCH", {"acturalPaid": ["497.50", "500.00"]}),
            (
                "CONSIGNEE_MISMATCH",
                {
                    "consignee": ["王芳张", "王芳"],
                    "consigneeAddress": [
                        "浙江省杭州市西湖区文三路1号",
                        "浙江省杭州市西湖区文三路2号",
                    ],
                },
            ),
        ],
    ),
}


@pytest.mark.parametrize("case", list(DIVERT_CASES))
def test_a_complete_ticket_breaking_a_rule_is_diverted_with_every_reason(
    shared: Deployment, case: str
) -> None:
    overrides, reasons = DIVERT_CASES[case]
    order_no = new_order_no("R")
    docs = ticket_docs(order_no, **overrides)
    send(shared, *(Rec(kind, docs[kind]) for kind in ("order", "payment", "logistics")))

    outs = outputs(shared, {order_no}, 1)

    assert len(outs) == 1, [o.value for o in outs]
    check_decision(outs[0], "DIVERT", 1, **docs, reasons=reasons, missing=[])
    if case == "CONSIGNEE_MISMATCH":
        assert "consigneeTelephone" in outs[0].value["reasons"][0]["detail"]


def test_a_waybill_two_platforms_could_take_diverts_both_ambiguous(shared: Deployment) -> None:
    order_no = new_order_no("AW")
    a = ticket_docs(order_no)
    b = ticket_docs(order_no, ebp=OTHER_EBP)
    waybill = a["logistics"]  # names only the orderNo
    assert "ebpCode" not in waybill
    send(
        shared,
        Rec("order", a["order"]),
        Rec("payment", a["payment"]),
        Rec("order", b["order"]),
        Rec("payment", b["payment"]),
    )
    drafts = barrier(shared, order_no, "order", "payment")
    # Once the drafts are rejected, both tickets hold their order and payment.
    assert len(rejections_of(outputs(shared, {order_no}, 2, settle=0))) == 2
    send(shared, Rec("logistics", waybill))

    outs = outputs(shared, {order_no}, 7, settle=1.5, limit=3 * WINDOW + 10)

    assert rejections_of(outs, drafts) == {}
    decided = decisions_of(outs)
    assert [(o.value["ticketId"], o.value["revision"]) for o in decided] == [
        (f"{EBP}:{order_no}", 1),
        (f"{EBP}:{order_no}", 2),
        (f"{OTHER_EBP}:{order_no}", 1),
        (f"{OTHER_EBP}:{order_no}", 2),
        (f":{order_no}", 1),
    ], [o.value for o in decided]
    a1, a2, b1, b2, waybill_only = decided
    for ebp, docs, first, second in ((EBP, a, a1, a2), (OTHER_EBP, b, b1, b2)):
        for out, code in ((first, "AMBIGUOUS_WAYBILL"), (second, "MISSING_DOCUMENTS")):
            check_decision(
                out,
                "DIVERT",
                out.value["revision"],
                order=docs["order"],
                payment=docs["payment"],
                logistics=None,
                ebp=ebp,
                reasons=[(code, None)],
                missing=["logistics"],
            )
    # The waybill stays in the waybill-only ticket, whose own window closes.
    check_decision(
        waybill_only,
        "DIVERT",
        1,
        order=None,
        payment=None,
        logistics=waybill,
        ebp=None,
        reasons=[("MISSING_DOCUMENTS", {})],
        missing=["order", "payment"],
    )


# -- rejections -------------------------------------------------------------------------------


def test_a_draft_is_rejected_every_time_and_leaves_no_trace(shared: Deployment) -> None:
    order_no = new_order_no("DR")
    docs = ticket_docs(order_no)
    # The draft carries the guid of the order declared later: drafts are stateless, so that
    # order is not a redelivery.
    drafted = {**docs["order"], "appStatus": "1"}
    sent = send(
        shared,
        Rec("order", drafted),
        Rec("order", drafted, key=b"another key"),
        Rec("order", drafted, key=None),
    )
    send(shared, *(Rec(kind, docs[kind]) for kind in ("order", "payment", "logistics")))

    outs = outputs(shared, {order_no}, 4)

    rejected = [o for o in outs if o.kind == "rejected"]
    assert len(rejected) == 3, [o.value for o in rejected]
    by_offset = {(o.value["source"]["partition"], o.value["source"]["offset"]): o for o in rejected}
    for s in sent:
        check_rejection(by_offset[(s.partition, s.offset)], s, "DRAFT")
    decided = decisions_of(outs)
    assert len(decided) == 1, [o.value for o in decided]
    check_decision(decided[0], "RELEASE", 1, **docs)


def test_a_second_new_document_is_rejected_duplicate(shared: Deployment) -> None:
    open_no, released_no = new_order_no("DU"), new_order_no("DU")
    first = ticket_docs(open_no)
    second_order = version(first["order"], "1", "20261124111600")
    released = ticket_docs(released_no)
    sent_open = send(
        shared,
        Rec("order", first["order"]),
        Rec("order", second_order),
        Rec("payment", first["payment"]),
        Rec("logistics", first["logistics"]),
        *(Rec(kind, released[kind]) for kind in ("order", "payment", "logistics")),
    )
    assert len(decisions_of(outputs(shared, {released_no}, 1, settle=0))) == 1
    dup_payment = version(released["payment"], "1", "20261124111600")
    sent_released = send(shared, Rec("payment", dup_payment))
    drafts = barrier(shared, released_no, "payment")

    outs = outputs(shared, {open_no, released_no}, 5)

    rejected = rejections_of(outs, drafts)
    assert set(rejected) == {second_order["guid"], dup_payment["guid"]}, rejected
    check_rejection(rejected[second_order["guid"]], sent_open[1], "DUPLICATE")
    check_rejection(rejected[dup_payment["guid"]], sent_released[0], "DUPLICATE")
    decided = {o.value["orderNo"]: o for o in decisions_of(outs)}
    assert len(decided) == 2, [o.value for o in decided.values()]
    check_decision(decided[open_no], "RELEASE", 1, **first)  # the first order is decided on
    check_decision(decided[released_no], "RELEASE", 1, **released)


def test_a_change_or_delete_of_a_document_not_held_is_rejected_unknown(shared: Deployment) -> None:
    no_ticket, order_only, no_waybill = (new_order_no("UK") for _ in range(3))
    a = ticket_docs(no_ticket)
    b = ticket_docs(order_only)
    c = ticket_docs(no_waybill)
    change_a = version(a["order"], "2", "20261124120000")
    delete_b = version(b["payment"], "3", "20261124120000")
    change_c = version(c["logistics"], "2", "20261124120000")
    sent = send(
        shared,
        Rec("order", change_a),
        Rec("order", b["order"]),
        Rec("payment", delete_b),
        Rec("order", c["order"]),
        Rec("payment", c["payment"]),
        Rec("logistics", change_c),
    )

    outs = outputs(shared, {no_ticket, order_only, no_waybill}, 3)

    rejected = rejections_of(outs)
    assert set(rejected) == {change_a["guid"], delete_b["guid"], change_c["guid"]}, rejected
    check_rejection(rejected[change_a["guid"]], sent[0], "UNKNOWN_DOCUMENT")
    check_rejection(rejected[delete_b["guid"]], sent[2], "UNKNOWN_DOCUMENT")
    check_rejection(rejected[change_c["guid"]], sent[5], "UNKNOWN_DOCUMENT")
    assert decisions_of(outs) == []  # the tickets wait for their documents


def test_a_change_after_release_is_rejected_and_nothing_is_released_again(
    shared: Deployment,
) -> None:
    order_no = new_order_no("TR")
    docs = ticket_docs(order_no)
    send(shared, *(Rec(kind, docs[kind]) for kind in ("order", "payment", "logistics")))
    assert len(decisions_of(outputs(shared, {order_no}, 1, settle=0))) == 1
    change = version(docs["payment"], "2", "20261124120000", payerName="李四")
    delete = version(docs["order"], "3", "20261124120000")
    older = version(docs["logistics"], "2", "20261124000000")  # released beats stale
    fixed = version(docs["logistics"], "2", "20261124120000", consigneeTelephone="13900000000")
    sent = send(
        shared,
        Rec("payment", change),
        Rec("order", delete),
        Rec("logistics", older),
        Rec("logistics", fixed),
    )
    drafts = barrier(shared, order_no, "payment", "order", "logistics")

    outs = outputs(shared, {order_no}, 8)

    rejected = rejections_of(outs, drafts)
    assert set(rejected) == {s.doc["guid"] for s in sent}, rejected
    for s in sent:
        check_rejection(rejected[s.doc["guid"]], s, "TICKET_RELEASED")
    decided = decisions_of(outs)
    assert len(decided) == 1, [o.value for o in decided]
    check_decision(decided[0], "RELEASE", 1, **docs)


def test_a_change_not_newer_than_the_stored_version_is_rejected_stale(shared: Deployment) -> None:
    order_no = new_order_no("ST")
    docs = ticket_docs(order_no, payment={"amountPaid": "500.00"})
    send(shared, *(Rec(kind, docs[kind]) for kind in ("order", "payment", "logistics")))
    assert len(decisions_of(outputs(shared, {order_no}, 1, settle=0))) == 1
    same_time = version(docs["payment"], "2", docs["payment"]["appTime"], amountPaid="497.50")
    older = version(docs["payment"], "2", "20261124111501", amountPaid="497.50")
    older_delete = version(docs["order"], "3", "20261124111459")
    sent = send(
        shared, Rec("payment", same_time), Rec("payment", older), Rec("order", older_delete)
    )
    drafts = barrier(shared, order_no, "payment", "order")

    outs = outputs(shared, {order_no}, 6)

    rejected = rejections_of(outs, drafts)
    assert set(rejected) == {s.doc["guid"] for s in sent}, rejected
    for s in sent:
        check_rejection(rejected[s.doc["guid"]], s, "STALE")
    decided = decisions_of(outs)
    assert len(decided) == 1, [o.value for o in decided]
    check_decision(
        decided[0],
        "DIVERT",
        1,
        **docs,
        reasons=[("AMOUNT_MISMATCH", {"acturalPaid": ["497.50", "500.00"]})],
    )


# -- redelivery and revisions -----------------------------------------------------------------


def test_an_exact_redelivery_emits_nothing(shared: Deployment) -> None:
    order_no = new_order_no("RD")
    docs = ticket_docs(order_no)
    order, payment, logistics = (
        Rec(kind, docs[kind]) for kind in ("order", "payment", "logistics")
    )
    send(shared, order, order, payment, logistics, payment)  # redelivered before completion too
    assert len(decisions_of(outputs(shared, {order_no}, 1, settle=0))) == 1
    send(shared, logistics, payment, order)  # ... and after the release
    drafts = barrier(shared, order_no, "logistics", "payment", "order")

    outs = outputs(shared, {order_no}, 4)

    assert rejections_of(outs, drafts) == {}
    decided = decisions_of(outs)
    assert len(decided) == 1, [o.value for o in decided]
    check_decision(decided[0], "RELEASE", 1, **docs)


def test_a_change_after_a_divert_releases_with_revision_2(shared: Deployment) -> None:
    order_no = new_order_no("CD")
    docs = ticket_docs(order_no, payment={"amountPaid": "500.00"})
    send(shared, *(Rec(kind, docs[kind]) for kind in ("order", "payment", "logistics")))
    assert len(decisions_of(outputs(shared, {order_no}, 1, settle=0))) == 1
    fixed = version(docs["payment"], "2", "20261124120000", amountPaid="497.50")
    send(shared, Rec("payment", fixed))
    assert len(decisions_of(outputs(shared, {order_no}, 2, settle=0))) == 2
    send(shared, Rec("payment", docs["payment"]))  # the first version again: seen, so nothing
    drafts = barrier(shared, order_no, "payment")

    outs = outputs(shared, {order_no}, 3)

    assert rejections_of(outs, drafts) == {}
    decided = decisions_of(outs)
    assert len(decided) == 2, [o.value for o in decided]
    check_decision(
        decided[0],
        "DIVERT",
        1,
        **docs,
        reasons=[("AMOUNT_MISMATCH", {"acturalPaid": ["497.50", "500.00"]})],
    )
    check_decision(
        decided[1], "RELEASE", 2, order=docs["order"], payment=fixed, logistics=docs["logistics"]
    )


def test_a_change_to_an_incomplete_ticket_decides_nothing_by_itself(shared: Deployment) -> None:
    order_no = new_order_no("CI")
    docs = ticket_docs(order_no)
    changed = version(docs["order"], "2", "20261124120000", buyerTelephone="13900000000")
    send(
        shared, Rec("order", docs["order"]), Rec("payment", docs["payment"]), Rec("order", changed)
    )
    drafts = barrier(shared, order_no, "order")
    assert len(outputs(shared, {order_no}, 1, settle=0.5)) == 1  # the barrier's rejection only
    send(shared, Rec("logistics", docs["logistics"]))

    outs = outputs(shared, {order_no}, 2)

    assert rejections_of(outs, drafts) == {}
    decided = decisions_of(outs)
    assert len(decided) == 1, [o.value for o in decided]
    check_decision(
        decided[0],
        "RELEASE",
        1,
        order=changed,
        payment=docs["payment"],
        logistics=docs["logistics"],
    )


def test_a_deleted_document_sent_again_re_decides_the_ticket(shared: Deployment) -> None:
    order_no = new_order_no("DL")
    docs = ticket_docs(order_no, payment={"amountPaid": "500.00"})
    send(shared, *(Rec(kind, docs[kind]) for kind in ("order", "payment", "logistics")))
    (divert,) = decisions_of(outputs(shared, {order_no}, 1, settle=0))
    # Past the window (closed while complete: nothing), so the delete cannot race it.
    time.sleep(max(0.0, ms(divert.value["firstSeenAt"]) / 1000 + WINDOW + 0.5 - time.time()))
    delete = version(docs["payment"], "3", "20261124120000")
    send(shared, Rec("payment", delete))
    drafts = barrier(shared, order_no, "payment")
    assert (
        len(decisions_of(outputs(shared, {order_no}, 2, settle=0.5))) == 1
    )  # a delete decides nothing
    again = version(docs["payment"], "1", "20261124120100", amountPaid="497.50")
    send(shared, Rec("payment", again))

    outs = outputs(shared, {order_no}, 3)

    assert rejections_of(outs, drafts) == {}
    decided = decisions_of(outs)
    assert len(decided) == 2, [o.value for o in decided]
    check_decision(
        decided[0],
        "DIVERT",
        1,
        **docs,
        reasons=[("AMOUNT_MISMATCH", {"acturalPaid": ["497.50", "500.00"]})],
    )
    check_decision(
        decided[1], "RELEASE", 2, order=docs["order"], payment=again, logistics=docs["logistics"]
    )


# -- the buyer ledger -------------------------------------------------------------------------


def order_nos_on_distinct_partitions(tag: str, count: int) -> list[str]:
    chosen: dict[int, str] = {}
    while len(chosen) < count:
        order_no = new_order_no(tag)
        chosen.setdefault(murmur2_partition(order_no.encode(), PARTITIONS), order_no)
    return list(chosen.values())


def test_the_annual_limit_counts_released_tickets_across_partitions(shared: Deployment) -> None:
    buyer = new_buyer_id()
    first_no, second_no, third_no = order_nos_on_distinct_partitions("AL", 3)
    first = ticket_docs(first_no, **single_item("15000.00", buyer))
    second = ticket_docs(second_no, **single_item("15000.00", buyer))
    third = ticket_docs(third_no, **single_item("10000.00", buyer))

    send(shared, *(Rec(kind, first[kind]) for kind in ("order", "payment", "logistics")))
    (released,) = outputs(shared, {first_no}, 1, settle=0)
    check_decision(released, "RELEASE", 1, **first, full_tax=True)
    assert released.value["dutiableValue"] == "15010.00"

    send(shared, *(Rec(kind, second[kind]) for kind in ("order", "payment", "logistics")))
    (diverted,) = outputs(shared, {second_no}, 1, settle=0)
    check_decision(
        diverted,
        "DIVERT",
        1,
        **second,
        reasons=[("ANNUAL_LIMIT_EXCEEDED", {"dutiableValue": ["15010.00", "15010.00"]})],
        full_tax=None,
    )

    # Only released tickets count: 15010.00 + 10010.00 is within 26000.
    send(shared, *(Rec(kind, third[kind]) for kind in ("order", "payment", "logistics")))

    outs = outputs(shared, {first_no, second_no, third_no}, 3)

    decided = decisions_of(outs)
    assert len(decided) == 3, [o.value for o in decided]
    (released_third,) = [o for o in decided if o.value["orderNo"] == third_no]
    check_decision(released_third, "RELEASE", 1, **third, full_tax=True)


# -- keys ---------------------------------------------------------------------------------------


def test_producers_keys_and_partitions_are_ignored(shared: Deployment) -> None:
    order_no = new_order_no("KY")
    owner = murmur2_partition(order_no.encode(), PARTITIONS)
    elsewhere = [(owner + i) % PARTITIONS for i in (1, 2, 3)]
    docs = ticket_docs(order_no)
    send(
        shared,
        Rec("order", docs["order"], key=None, partition=elsewhere[0]),
        Rec("payment", docs["payment"], key=b"not the orderNo", partition=elsewhere[1]),
        Rec("logistics", docs["logistics"], key=order_no.encode(), partition=elsewhere[2]),
    )
    assert len(outputs(shared, {order_no}, 1, settle=0)) == 1
    dup_order = version(docs["order"], "1", "20261124120000")
    dup_payment = version(docs["payment"], "1", "20261124120000")
    change = version(docs["logistics"], "2", "20261124120000")
    sent = send(
        shared,
        Rec("order", dup_order, key=None, partition=elsewhere[1]),
        Rec("payment", dup_payment, key=b"wrong key", partition=elsewhere[2]),
        Rec("logistics", change, key=b"", partition=owner),
        Rec("order", docs["order"], key=b"redelivered", partition=elsewhere[2]),
    )

    outs = outputs(shared, {order_no}, 4, settle=1.5)

    rejected = rejections_of(outs)
    assert set(rejected) == {dup_order["guid"], dup_payment["guid"], change["guid"]}, rejected
    check_rejection(rejected[dup_order["guid"]], sent[0], "DUPLICATE")
    check_rejection(rejected[dup_payment["guid"]], sent[1], "DUPLICATE")
    check_rejection(rejected[change["guid"]], sent[2], "TICKET_RELEASED")
    decided = decisions_of(outs)
    assert len(decided) == 1, [o.value for o in decided]
    check_decision(decided[0], "RELEASE", 1, **docs)


# -- restarts -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "down_across_deadline", [False, True], ids=["back before the deadline", "down at the deadline"]
)
def test_the_window_closes_once_across_a_worker_restart(
    deploy: Callable[..., Deployment], down_across_deadline: bool
) -> None:
    window = 8.0
    d = deploy(SANDAN_WINDOW=f"{int(window)}s")
    worker = d.worker("w1")
    worker.wait_ready()
    order_no = new_order_no("RS")
    docs = ticket_docs(order_no)
    sent_at = time.monotonic()
    send(d, Rec("order", docs["order"]), Rec("payment", docs["payment"]))
    drafts = barrier(d, order_no, "order", "payment")
    assert len(outputs(d, {order_no}, 2, settle=0)) == 2  # processed and committed

    worker.kill()
    if down_across_deadline:
        time.sleep(max(0.0, sent_at + window + 1 - time.monotonic()))
    restarted = d.worker("w1")  # same name: same data dir
    restarted.wait_ready(seconds=60)
    ready_after = time.monotonic() - sent_at
    if not down_across_deadline:  # the restarted worker closes the window
        assert ready_after < window, f"restarted worker ready only after {ready_after:.1f} s"

    outs = outputs(d, {order_no}, 3, settle=2.0, limit=window + 20)

    assert rejections_of(outs, drafts) == {}  # each draft rejected exactly once
    decided = decisions_of(outs)
    assert len(decided) == 1, ([o.value for o in decided], restarted.log_tail())
    check_decision(
        decided[0],
        "DIVERT",
        1,
        order=docs["order"],
        payment=docs["payment"],
        logistics=None,
        reasons=[("MISSING_DOCUMENTS", {})],
        missing=["logistics"],
    )
    waited = ms(decided[0].value["decidedAt"]) - ms(decided[0].value["firstSeenAt"])
    assert window * 1000 <= waited <= max(window, ready_after) * 1000 + 5000, (waited, ready_after)
