"""Alerts through the pipeline: decided tickets reach their alert keys here or, on another
worker's partition, through the alerts topic; one alert record per pattern and key; a
rolled-back step leaves no alert state behind; ``SANDAN_ALERTS=off`` sends nothing."""

from __future__ import annotations

import json
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path

import msgspec

from schemas.keys import murmur2_partition
from streams.alerts import alert_keys
from streams.records import KeyedSighting, Output, Record, Sighting
from tests.factories import as_bytes, logistics_dict, order_dict, payment_dict
from tests.unit.streams.harness import PARTITIONS, T0, PipelineHarness, on

NAMES = ["王五", "赵六", "孙七", "周八"]


def ticket(n: int, consignee: str) -> list[tuple[str, bytes, bytes]]:
    """Ticket ``n``'s three documents (kind, key, value), shipped to ``consignee``."""
    order = order_dict(orderNo=order_no(n), guid=f"O{n:035d}", consignee=consignee)
    payment = payment_dict(orderNo=order_no(n), guid=f"P{n:035d}")
    waybill = logistics_dict(
        orderNo=order_no(n), guid=f"L{n:035d}", logisticsNo=f"YT{n:010d}", consignee=consignee
    )
    key = order_no(n).encode()
    return [
        ("order", key, as_bytes(order)),
        ("payment", key, as_bytes(payment)),
        ("logistics", key, as_bytes(waybill)),
    ]


def order_no(n: int) -> str:
    return f"SO2026112400{n:04d}"


def decide(harness: PipelineHarness, tickets: int, start: int = 0) -> list[Output]:
    return decide_these(harness, range(start, start + tickets))


def decide_these(harness: PipelineHarness, numbers: Iterable[int]) -> list[Output]:
    outputs: list[Output] = []
    for n in numbers:
        for i, (kind, key, value) in enumerate(ticket(n, NAMES[n % len(NAMES)])):
            partition = murmur2_partition(key, PARTITIONS)
            outputs += harness.feed(kind, value, T0 + n * 1000 + i, key, partition)
    return outputs


def test_one_buyer_shipping_to_four_consignees_raises_one_alert(harness: PipelineHarness) -> None:
    assert on(decide(harness, 3), "alert") == []
    outputs = decide(harness, 2, start=3)  # a fourth consignee, then the first again
    assert len(on(outputs, "release")) == 2
    (record,) = on(outputs, "alert")
    alert = json.loads(record.value or b"")
    assert alert["pattern"] == "ID_MANY_CONSIGNEES"
    assert alert["keyKind"] == "buyerIdNumber"
    assert alert["count"] == 4
    assert alert["tickets"] == [f"3301980ABC:SO2026112400{n:04d}" for n in range(4)]
    assert alert["windowStart"] == "2026-11-24T03:20:00.000Z"
    assert record.key == alert["keyDigest"].encode()
    assert on(outputs, "sandan-alerts-changelog")
    assert on(outputs, "sandan-alerts") == []  # every partition is here: no hop
    assert harness.pipeline.counts["alert.ID_MANY_CONSIGNEES"] == 1


def test_a_sighting_for_another_workers_key_goes_there_and_alerts_there(tmp_path: Path) -> None:
    order = json.loads(ticket(0, NAMES[0])[0][2])
    sighting = Sighting(
        "any",
        T0,
        order["buyerIdNumber"],
        order["consignee"],
        order["consigneeAddress"],
        order["consigneeTelephone"],
        Decimal(1),
    )
    buyer_key = dict(alert_keys(sighting))["buyerIdNumber"]
    buyer_partition = murmur2_partition(buyer_key, PARTITIONS)
    here = PipelineHarness(tmp_path / "here", owned=set(range(PARTITIONS)) - {buyer_partition})
    there = PipelineHarness(tmp_path / "there", owned={buyer_partition})
    try:
        # Tickets of partitions "here" owns (their buyer key's partition it does not), one per
        # consignee.
        numbers = [
            next(
                n
                for n in range(residue, 400, len(NAMES))
                if murmur2_partition(order_no(n).encode(), PARTITIONS) != buyer_partition
            )
            for residue in range(len(NAMES))
        ]
        hops = on(decide_these(here, numbers), "sandan-alerts")
        to_buyer = [o for o in hops if o.key == buyer_key]
        assert len(to_buyer) == 4
        assert {o.partition for o in to_buyer} == {buyer_partition}
        sent = [msgspec.msgpack.decode(o.value or b"", type=KeyedSighting) for o in to_buyer]
        assert [s.kind for s in sent] == ["buyerIdNumber"] * 4
        assert [s.sighting.ticket for s in sent] == [f"3301980ABC:{order_no(n)}" for n in numbers]
        records = [
            Record("cbec.sandan-alerts", buyer_partition, n, T0 + 10_000, o.key, o.value)
            for n, o in enumerate(to_buyer)
        ]
        outputs = there.step(records, T0 + 10_000)
        (record,) = on(outputs, "alert")
        assert json.loads(record.value or b"")["count"] == 4
    finally:
        here.close()
        there.close()


def test_a_rolled_back_step_leaves_no_alert_state(harness: PipelineHarness) -> None:
    decide(harness, 3)
    n = 3
    docs = ticket(n, NAMES[n])
    for i, (kind, key, value) in enumerate(docs):
        partition = murmur2_partition(key, PARTITIONS)
        last = i == len(docs) - 1
        out = harness.feed(kind, value, T0 + n * 1000 + i, key, partition, commit=not last)
        if last:
            assert len(on(out, "alert")) == 1  # then rolled back
    kind, key, value = docs[-1]
    again = harness.feed(kind, value, T0 + n * 1000 + 5, key, murmur2_partition(key, PARTITIONS))
    assert len(on(again, "alert")) == 1


def test_alerts_off_sends_no_sighting(tmp_path: Path) -> None:
    off = PipelineHarness(tmp_path, env={"SANDAN_ALERTS": "off"})
    try:
        outputs = decide(off, 4)
        assert len(on(outputs, "release")) == 4
        assert on(outputs, "alert") == []
        assert on(outputs, "sandan-alerts-changelog") == []
    finally:
        off.close()
