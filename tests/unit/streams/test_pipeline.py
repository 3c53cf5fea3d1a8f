"""The pipeline writes exactly the changes its steps return: nothing for an exact redelivery,
a change nobody holds or a stale outcome; nothing of a rolled-back step; and a document whose
ticket is another worker's goes there on the repartition topic and is applied there."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec

from schemas.keys import murmur2_partition
from streams.records import Outcome, Output, Record
from tests.factories import as_bytes, logistics_dict, order_dict, payment_dict
from tests.unit.streams.harness import PARTITIONS, T0, PipelineHarness, on

ORDER_NO = "SO20261124000001"
HOME = murmur2_partition(ORDER_NO.encode(), PARTITIONS)
KEY = ORDER_NO.encode()
CHANGELOG = "sandan-tickets-changelog"


def topics(outputs: list[Output]) -> list[str]:
    return sorted(o.topic for o in outputs)


def test_an_exact_redelivery_writes_and_emits_nothing(harness: PipelineHarness) -> None:
    order = as_bytes(order_dict())
    first = harness.feed("order", order, T0, KEY)
    assert topics(first) == ["cbec.receipt", f"cbec.{CHANGELOG}", f"cbec.{CHANGELOG}"]
    assert harness.feed("order", order, T0 + 1, KEY) == []


def test_a_change_nobody_holds_is_rejected_once(harness: PipelineHarness) -> None:
    """Its guid is remembered on its orderNo (a small group): consumed again, after a crash, it
    is an exact redelivery."""
    change = as_bytes(payment_dict(appType="2"))
    out = harness.feed("payment", change, T0, KEY)
    assert topics(out) == ["cbec.receipt", "cbec.rejected", f"cbec.{CHANGELOG}"]
    assert json.loads(on(out, "rejected")[0].value or b"")["code"] == "UNKNOWN_DOCUMENT"
    assert harness.feed("payment", change, T0 + 1, KEY) == []


def test_an_outcome_for_a_revision_no_longer_pending_writes_nothing(
    harness: PipelineHarness,
) -> None:
    harness.feed("order", as_bytes(order_dict()), T0, KEY)
    stale = Outcome(ORDER_NO, "3301980ABC", revision=7, released=True)
    record = Record("cbec.sandan-outcomes", HOME, 0, T0 + 1, KEY, msgspec.msgpack.encode(stale))
    assert harness.step([record], T0 + 1) == []


def test_a_rolled_back_step_leaves_nothing_behind(harness: PipelineHarness) -> None:
    order = as_bytes(order_dict())
    assert on(harness.feed("order", order, T0, KEY, commit=False), CHANGELOG)
    again = harness.feed("order", order, T0 + 1, KEY)  # not a redelivery: the first never was
    assert [json.loads(o.value or b"")["returnStatus"] for o in on(again, "receipt")] == ["120"]
    assert on(again, CHANGELOG)


def test_a_document_for_another_workers_ticket_hops_there_and_is_applied(tmp_path: Path) -> None:
    elsewhere = (HOME + 1) % PARTITIONS
    here = PipelineHarness(tmp_path / "here", owned={elsewhere})
    owner = PipelineHarness(tmp_path / "owner", owned={HOME})
    try:
        docs = {"order": order_dict(), "payment": payment_dict(), "logistics": logistics_dict()}
        hops = []
        for n, (kind, doc) in enumerate(docs.items()):
            out = here.feed(kind, as_bytes(doc), T0 + n, b"another key", elsewhere)
            (hop,) = out  # nothing but the hop: no receipt, no state here
            assert (hop.topic, hop.key, hop.partition, hop.timestamp) == (
                "cbec.sandan-repartition",
                KEY,
                HOME,
                T0 + n,
            )
            hops.append(
                Record(hop.topic, HOME, n, T0 + n, hop.key, hop.value, tuple(hop.headers or ()))
            )
        out = owner.step(hops, T0 + 10)
        statuses = [json.loads(o.value or b"")["returnStatus"] for o in on(out, "receipt")]
        assert statuses == ["120"] * 3  # each stored; the ledger decides (its partition is not
        (request,) = on(out, "sandan-ledger")  # the owner's), so no decision yet
        assert request.key == b"440305198012262283"
    finally:
        here.close()
        owner.close()
