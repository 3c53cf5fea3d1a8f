"""Scale out: a second worker joins, partitions move, state follows through the changelogs.

Tickets started on the first worker are completed, or time out, on whichever worker owns their
partition after the rebalance: every ticket still gets exactly its one decision.
"""

from __future__ import annotations

import json
import time
from typing import Any

from schemas.keys import murmur2_partition
from tests.factories import as_bytes, logistics_dict, order_dict, payment_dict
from tests.integration.conftest import PARTITIONS
from tests.integration.kafka import Timeout, consume, produce, run

WINDOW_S = 15
STARTED = 24  # tickets with order and payment on the first worker
COMPLETED_LATER = 8  # of those, completed by a waybill after the second worker joined
CLEAN = 12  # complete tickets decided by the first worker alone


def _docs(order_no: str) -> dict[str, bytes]:
    guid = f"{order_no:X>36}"[-36:]
    return {
        "order": as_bytes(order_dict(orderNo=order_no, guid="O" + guid[1:])),
        "payment": as_bytes(payment_dict(orderNo=order_no, guid="P" + guid[1:])),
        "logistics": as_bytes(logistics_dict(orderNo=order_no, guid="L" + guid[1:])),
    }


def _decisions(d: Any, count: int) -> list[dict[str, Any]]:
    records = run(consume(d.brokers, [d.topic("release"), d.topic("divert")], count=count, idle=2))
    return [json.loads(r.value) for r in records]


def test_tickets_follow_their_partitions_to_a_new_worker(deploy: Any) -> None:
    d = deploy(SANDAN_WINDOW=f"{WINDOW_S}s")
    first = d.worker("w1")
    first.wait_ready()
    started = [f"SCALE{n:04d}" for n in range(STARTED)]
    clean = [f"CLEAN{n:04d}" for n in range(CLEAN)]
    assert len({murmur2_partition(o.encode(), PARTITIONS) for o in started}) == PARTITIONS
    records = [
        (d.topic(kind), o.encode(), _docs(o)[kind])
        for o in started
        for kind in ("order", "payment")
    ]
    records += [(d.topic(kind), o.encode(), v) for o in clean for kind, v in _docs(o).items()]
    run(produce(d.brokers, records))
    assert len(_decisions(d, CLEAN)) == CLEAN  # the first worker has processed everything
    t_started = time.monotonic()

    second = d.worker("w2")
    second.wait_ready()
    timeout = Timeout(60, "the partitions to be shared by the two workers")
    while timeout:
        mine, theirs = first.status(), second.status()
        if mine and theirs and mine["partitions"] and theirs["partitions"]:
            assert set(mine["partitions"]) | set(theirs["partitions"]) == set(range(PARTITIONS))
            break
        time.sleep(0.5)
    assert time.monotonic() - t_started < WINDOW_S, "too slow to test before the windows close"

    completed = started[:COMPLETED_LATER]
    run(
        produce(
            d.brokers,
            [(d.topic("logistics"), o.encode(), _docs(o)["logistics"]) for o in completed],
        )
    )

    expected = CLEAN + STARTED
    decisions = _decisions(d, expected)
    deadline = Timeout(WINDOW_S + 60, "the windows to close on the new owners")
    while len(decisions) < expected and deadline:
        decisions = _decisions(d, expected)
    assert first.alive() and second.alive(), second.log_tail()
    by_ticket: dict[str, list[dict[str, Any]]] = {}
    for decision in decisions:
        by_ticket.setdefault(decision["orderNo"], []).append(decision)
    assert sorted(by_ticket) == sorted(clean + started)
    for order_no, ticket_decisions in by_ticket.items():
        assert len(ticket_decisions) == 1, ticket_decisions
        decision = ticket_decisions[0]
        assert decision["revision"] == 1
        if order_no in clean or order_no in completed:
            assert decision["decision"] == "RELEASE", decision
        else:
            assert decision["decision"] == "DIVERT"
            assert decision["missing"] == ["logistics"]
            assert [r["code"] for r in decision["reasons"]] == ["MISSING_DOCUMENTS"]
