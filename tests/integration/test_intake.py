"""The validate stage on the real broker: bad input is rejected SCHEMA with its original bytes,
exactly once each, and the worker goes on with the valid documents that follow."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tests.factories import DROP, as_bytes, logistics_dict, order_dict, payment_dict
from tests.integration.kafka import committed_offsets, consume, produce, run

ONE_MB = 1024 * 1024

Record = tuple[str, bytes | None, bytes | None]  # (topic, key, value), as produce takes them

# (name, topic kind, raw value, text the detail must contain)
BAD_INPUTS: list[tuple[str, str, bytes, str]] = [
    ("not JSON", "order", b"this is not json", "$"),
    ("not UTF-8", "payment", b'{"guid": "\xff\xfe"}', "UTF-8"),
    ("a JSON array", "logistics", b"[1, 2, 3]", "got `array`"),
    ("missing required field", "order", as_bytes(order_dict(buyerName=DROP)), "`buyerName`"),
    ("wrong type", "order", as_bytes(order_dict(goodsValue=True)), "$.goodsValue"),
    ("over-long string", "order", as_bytes(order_dict(orderNo="S" * 61)), "$.orderNo"),
    (
        "6 fraction digits",
        "payment",
        as_bytes(payment_dict(amountPaid="497.500001")),
        "$.amountPaid",
    ),
    (
        "float-looking exponent",
        "order",
        as_bytes(order_dict()).replace(b'"goodsValue": "487.50"', b'"goodsValue": 4.875e2'),
        "$.goodsValue",
    ),
    ("negative amount", "logistics", as_bytes(logistics_dict(freight="-10.00")), "$.freight"),
    ("currency 840", "payment", as_bytes(payment_dict(currency="840")), "$.currency"),
    ("bad appTime", "order", as_bytes(order_dict(appTime="2026112411150")), "$.appTime"),
    ("unknown appType", "payment", as_bytes(payment_dict(appType="4")), "$.appType"),
    ("packNo 2", "logistics", as_bytes(logistics_dict(packNo=2)), "$.packNo"),
    ("buyerIdType 2", "order", as_bytes(order_dict(buyerIdType="2")), "$.buyerIdType"),
    ("empty message", "order", b"", "$"),
    ("1 MB message", "order", as_bytes(order_dict(note="x" * ONE_MB)), "exceeds"),
    (
        "line currency 840",
        "order",
        as_bytes(order_dict(orderList=[{**order_dict()["orderList"][0], "currency": "840"}])),
        "$.orderList[0].currency",
    ),
]


def test_the_float_exponent_case_really_uses_an_exponent() -> None:
    raw = dict((name, raw) for name, _, raw, _ in BAD_INPUTS)["float-looking exponent"]
    assert b'"goodsValue": 4.875e2' in raw


def test_bad_input_is_rejected_once_with_its_bytes_and_valid_documents_go_on(deploy: Any) -> None:
    d = deploy()
    worker = d.worker()
    worker.wait_ready()
    valid_before: list[Record] = [
        (d.topic("order"), b"SO20261124000001", as_bytes(order_dict())),
        (d.topic("payment"), b"SO20261124000001", as_bytes(payment_dict())),
    ]
    bad: list[Record] = [
        (d.topic(kind), f"bad-{i}".encode(), raw) for i, (_, kind, raw, _) in enumerate(BAD_INPUTS)
    ]
    valid_after: list[Record] = [(d.topic("logistics"), None, as_bytes(logistics_dict()))]
    run(produce(d.brokers, valid_before + bad + valid_after))

    rejected = run(consume(d.brokers, [d.topic("rejected")], count=len(BAD_INPUTS)))
    assert worker.alive(), worker.log_tail()
    by_key = {record.key: record for record in rejected}
    assert len(rejected) == len(BAD_INPUTS) == len(by_key)
    for i, (name, kind, raw, needle) in enumerate(BAD_INPUTS):
        record = by_key[f"bad-{i}".encode()]
        value = json.loads(record.value)
        assert value["code"] == "SCHEMA", name
        assert needle in value["detail"], (name, value["detail"])
        assert value["docType"] == kind, name
        assert base64.b64decode(value["raw"]) == raw, name
        assert value["source"]["topic"] == d.topic(kind), name
        assert value["source"]["offset"] >= 0 and value["source"]["timestamp"] > 0, name

    # Every input record, the valid ones after the bad ones included, was processed and
    # its offset committed.
    offsets = run(
        committed_offsets(
            d.brokers, d.topic("sandan"), [d.topic(k) for k in ("order", "payment", "logistics")]
        )
    )
    per_topic: dict[str, int] = {}
    for tp, offset in offsets.items():
        per_topic[tp.topic] = per_topic.get(tp.topic, 0) + offset
    produced: dict[str, int] = {}
    for topic, _, _ in valid_before + bad + valid_after:
        produced[topic] = produced.get(topic, 0) + 1
    assert per_topic == produced
    assert worker.alive()


@pytest.mark.parametrize(
    "kind,factory",
    [("order", order_dict), ("payment", payment_dict), ("logistics", logistics_dict)],
)
def test_a_valid_document_of_each_kind_is_not_rejected(
    deploy: Any, kind: str, factory: Any
) -> None:
    d = deploy()
    d.worker().wait_ready()
    run(
        produce(
            d.brokers,
            [(d.topic(kind), b"k", as_bytes(factory())), (d.topic(kind), b"marker", b"not json")],
        )
    )
    rejected = run(consume(d.brokers, [d.topic("rejected")], count=1))
    assert [record.key for record in rejected] == [b"marker"]
