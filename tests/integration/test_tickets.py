"""The ticket engine end to end on the real broker: decisions as the contract says."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from tests.factories import as_bytes, logistics_dict, order_dict, payment_dict
from tests.integration.kafka import consume, produce, run

TICKET = "3301980ABC:SO20261124000001"


def docs(**changes: dict[str, Any]) -> dict[str, bytes]:
    return {
        "order": as_bytes(order_dict(**changes.get("order", {}))),
        "payment": as_bytes(payment_dict(**changes.get("payment", {}))),
        "logistics": as_bytes(logistics_dict(**changes.get("logistics", {}))),
    }


def decisions(d: Any, count: int, **kw: Any) -> list[dict[str, Any]]:
    records = run(consume(d.brokers, [d.topic("release"), d.topic("divert")], count=count, **kw))
    return sorted(
        (json.loads(r.value) for r in records), key=lambda v: (v["ticketId"], v["revision"])
    )


@pytest.fixture(scope="module")
def shared(request: Any, brokers: str, tmp_path_factory: Any) -> Any:
    from tests.integration.conftest import Deployment

    d = Deployment(brokers, tmp_path_factory.mktemp("tickets"), SANDAN_WINDOW="4s")
    d.worker().wait_ready()
    yield d
    d.stop()


@pytest.mark.parametrize("arrival", list(itertools.permutations(["order", "payment", "logistics"])))
def test_a_clean_ticket_in_any_arrival_order_is_released_once(
    shared: Any, arrival: tuple[str, ...]
) -> None:
    order_no = "SO-" + "-".join(kind[0] for kind in arrival)
    values = docs(
        order={"orderNo": order_no, "guid": f"{order_no:>36}".replace(" ", "O")},
        payment={"orderNo": order_no, "guid": f"{order_no:>36}".replace(" ", "P")},
        logistics={"orderNo": order_no, "guid": f"{order_no:>36}".replace(" ", "L")},
    )
    run(
        produce(
            shared.brokers,
            [(shared.topic(kind), order_no.encode(), values[kind]) for kind in arrival],
        )
    )
    records = run(
        consume(shared.brokers, [shared.topic("release"), shared.topic("divert")], idle=2)
    )
    mine = [json.loads(r.value) for r in records if json.loads(r.value)["orderNo"] == order_no]
    assert len(mine) == 1, mine
    decision = mine[0]
    assert decision["decision"] == "RELEASE"
    assert decision["ticketId"] == f"3301980ABC:{order_no}"
    assert decision["revision"] == 1
    assert decision["dutiableValue"] == "497.50"
    assert decision["fullTax"] is False
    assert "reasons" not in decision and "missing" not in decision
    assert decision["documents"]["order"].endswith(order_no)
