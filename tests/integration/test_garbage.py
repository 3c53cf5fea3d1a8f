"""Hostile input at scale through a live worker, on the real broker.

10,000 malformed records from the fuzzer's generator (loadtest/hostile/: JSON and CEB XML,
every kind, up to 300 KB, and a few messages over the 4 MiB limit), each of which the intake
path rejects whole, mixed with 100 clean tickets: each malformed record is rejected ``SCHEMA``
exactly once with its original bytes, every ticket is released once, every input offset is
committed, and the worker is still up. Then the bug the fuzzer found, end to end: JSON
documents holding a character XML cannot carry, whose ticket has a waybill sent as XML.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from loadtest.fuzz import garbage
from loadtest.generator import generate
from loadtest.hostile.base import MAX_MESSAGE_BYTES
from loadtest.truth import FaultMix
from loadtest.verify import verify
from schemas.ceb_xml import encode_message
from schemas.codec import decode_document
from schemas.documents import DOC_TYPES
from tests.factories import as_bytes
from tests.integration.conftest import Deployment
from tests.integration.kafka import committed_offsets, consume, produce, run
from tests.integration.receipts import receipt
from tests.integration.test_contract import new_order_no, ticket_docs

GARBAGE = 10_000
HUGE = 4  # of them over the message limit
MAX_SIZE = 300_000  # bytes, the others
TICKETS = 100
SEED = 20261205

Record = tuple[str, bytes | None, bytes]


async def produce_all(brokers: str, records: list[Record]) -> None:
    """Every record, batched (the helper in tests.integration.kafka waits for each ack)."""
    producer = AIOKafkaProducer(
        bootstrap_servers=brokers,
        max_request_size=8 * 1024 * 1024,
        linger_ms=20,
        max_batch_size=1024 * 1024,
    )
    await producer.start()
    try:
        futures = [await producer.send(topic, value, key=key) for topic, key, value in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


@pytest.mark.timeout(240)
def test_ten_thousand_malformed_records_are_rejected_once_with_their_bytes(deploy: Any) -> None:
    d: Deployment = deploy()
    worker = d.worker()
    bad = [g.made for g in garbage(SEED, GARBAGE, max_size=MAX_SIZE, huge=HUGE)]
    assert len(bad) == GARBAGE and len({h.fmt for h in bad}) == 2
    assert sum(len(h.value) > MAX_MESSAGE_BYTES for h in bad) == HUGE
    plan = generate(SEED, TICKETS, window=3600.0, faults=FaultMix())
    assert plan.tickets == TICKETS and len(plan.rejections) == 0
    valid: list[Record] = [(d.topic(r.doc_type), r.key, r.value) for r in plan.records]
    records: list[Record] = [
        (d.topic(h.doc_type), f"garbage-{i}".encode(), h.value) for i, h in enumerate(bad)
    ]
    rng = random.Random(SEED)
    for record in valid:  # the tickets' records spread among the garbage, in their order
        records.insert(rng.randrange(len(records) + 1), record)
    worker.wait_ready()
    run(produce_all(d.brokers, records))

    rejected = run(consume(d.brokers, [d.topic("rejected")], count=GARBAGE, limit=150))
    decided = run(
        consume(d.brokers, [d.topic("release"), d.topic("divert")], count=TICKETS, limit=60)
    )
    assert worker.alive(), worker.log_tail()
    assert len(rejected) == GARBAGE
    by_key = {record.key: json.loads(record.value) for record in rejected}
    assert len(by_key) == GARBAGE  # each once
    for i, made in enumerate(bad):
        value = by_key[f"garbage-{i}".encode()]
        assert value["code"] == "SCHEMA", (i, made.kind)
        assert base64.b64decode(value["raw"]) == made.value, (i, made.kind)
        assert value["docType"] == made.doc_type, (i, made.kind)
        assert value["source"]["topic"] == d.topic(made.doc_type), (i, made.kind)
        assert value["detail"], (i, made.kind)
        assert "node" not in value, (i, made.kind)

    report = verify(plan, [json.loads(r.value) for r in decided], [])
    assert report.mismatches == []
    assert (report.released, report.diverted, len(decided)) == (TICKETS, 0, TICKETS)

    offsets = run(committed_offsets(d.brokers, d.topic("sandan"), [d.topic(k) for k in DOC_TYPES]))
    per_topic: dict[str, int] = {}
    for tp, offset in offsets.items():
        per_topic[tp.topic] = per_topic.get(tp.topic, 0) + offset
    produced: dict[str, int] = {}
    for topic, _, _ in records:
        produced[topic] = produced.get(topic, 0) + 1
    assert per_topic == produced
    assert worker.alive(), worker.log_tail()
    assert worker.status() is not None


def test_a_json_ebp_code_xml_cannot_carry_is_rejected_and_the_xml_waybill_waits(
    deploy: Any,
) -> None:
    # The fuzzer's finding: the JSON order and payment were accepted with this ebpCode, the XML
    # waybill completed their ticket, and writing the ticket id into the decision's XML receipt
    # to the waybill's sender made lxml raise: the valid waybill was set aside INTERNAL and the
    # ticket went undecided. Now the two documents are rejected SCHEMA and the waybill is stored.
    d: Deployment = deploy()
    worker = d.worker()
    order_no = new_order_no("G")
    docs = ticket_docs(order_no, ebp="3301980\x01BC")
    order, payment = as_bytes(docs["order"]), as_bytes(docs["payment"])
    waybill = {key: value for key, value in docs["logistics"].items() if key != "ebpCode"}
    message = encode_message(
        "logistics", [decode_document("logistics", as_bytes(waybill))], cop_code="31222699S7"
    )
    after = ticket_docs(new_order_no("G"))
    worker.wait_ready()
    run(
        produce(
            d.brokers,
            [
                (d.topic("order"), b"bad-order", order),
                (d.topic("payment"), b"bad-payment", payment),
                (d.topic("logistics"), order_no.encode(), message),
                (d.topic("order"), None, as_bytes(after["order"])),
                (d.topic("payment"), None, as_bytes(after["payment"])),
                (d.topic("logistics"), None, as_bytes(after["logistics"])),
            ],
        )
    )
    (released,) = run(consume(d.brokers, [d.topic("release")], count=1))
    assert json.loads(released.value)["orderNo"] == after["order"]["orderNo"]
    rejected = run(consume(d.brokers, [d.topic("rejected")], count=2))
    by_key = {r.key: json.loads(r.value) for r in rejected}
    assert set(by_key) == {b"bad-order", b"bad-payment"}
    detail = (
        "expected only characters XML allows (a CEB message could not carry it), got U+0001 "
        "- at `$.ebpCode`"
    )
    for key, raw in ((b"bad-order", order), (b"bad-payment", payment)):
        assert by_key[key]["code"] == "SCHEMA"
        assert by_key[key]["detail"] == detail
        assert base64.b64decode(by_key[key]["raw"]) == raw
    receipts = [receipt(r) for r in run(consume(d.brokers, [d.topic("receipt")], count=9))]
    assert len(receipts) == 9  # the valid ticket's 3 + 3, the rejections' 2, the waybill's 1
    waybill_receipts = [r for r in receipts if r["guid"] == waybill["guid"]]
    assert [(r["format"], r["returnStatus"]) for r in waybill_receipts] == [("xml", "120")]
    assert worker.alive(), worker.log_tail()
