"""Pattern alerts on the real broker, two workers (so a ticket's alert keys are often on the
other worker's partitions, reached through the alerts topic): each pattern alerts exactly once
with its evidence, and the near misses (names alike once normalised, orders adding up to the
limit exactly) raise nothing."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from schemas.alerts import KeyKind
from streams.alerts import alert_keys
from streams.records import Sighting
from tests.integration.conftest import Deployment
from tests.integration.kafka import consume, run
from tests.integration.test_contract import (
    EBP,
    Rec,
    decisions_of,
    new_buyer_id,
    new_order_no,
    outputs,
    send,
    single_item,
    ticket_docs,
)

_serial = iter(range(10**6))


def _ticket(buyer: str, consignee: str, address: str, phone: str, value: str | None = None) -> Any:
    """A clean ticket of ``buyer`` shipped to ``consignee`` at ``address``, ``phone``; worth
    ``value`` (one item, freight 10.00) if given."""
    overrides = single_item(value, buyer) if value else {"order": {"buyerIdNumber": buyer}}
    ship = {"consignee": consignee, "consigneeAddress": address, "consigneeTelephone": phone}
    order_no = new_order_no("AL")
    docs = ticket_docs(
        order_no,
        order={**overrides["order"], **ship},
        payment={"payerIdNumber": buyer, **overrides.get("payment", {})},
        logistics=ship,
    )
    return order_no, docs


def _own_place() -> tuple[str, str]:
    """An address and a telephone no other ticket of this test has."""
    n = next(_serial)
    return f"浙江省杭州市西湖区文三路{100 + n}号{n}室", f"139{n:08d}"


def _digest(kind: KeyKind, **values: str) -> str:
    fields = {"buyer": "", "consignee": "", "address": "", "telephone": "", **values}
    sighting = Sighting("", 0, dutiable=Decimal(0), **fields)
    return dict(alert_keys(sighting))[kind][1:].hex()


def test_each_pattern_alerts_once_with_its_evidence(deploy: Callable[..., Deployment]) -> None:
    d = deploy()
    workers = [d.worker("a"), d.worker("b")]
    for worker in workers:
        worker.wait_ready()
    tickets: dict[str, list[str]] = {}  # what each expected alert's evidence is

    def plant(name: str, *made: tuple[str, Any]) -> None:
        tickets[name] = [f"{EBP}:{order_no}" for order_no, _ in made]
        planted.extend(made)

    planted: list[tuple[str, Any]] = []
    # One ID, four consignees at four addresses (and a fifth ticket to the first again).
    id_buyer = new_buyer_id()
    places = [_own_place() for _ in range(4)]
    names = ("甲一", "乙二", "丙三", "丁四")
    plant(
        "ID_MANY_CONSIGNEES",
        *(_ticket(id_buyer, n, *p) for n, p in zip(names, places, strict=True)),
    )
    planted.append(_ticket(id_buyer, "甲一", *places[0]))
    # One ID, one consignee and address spelt four ways (spaces, full width): no alert.
    alike_buyer = new_buyer_id()
    address, phone = _own_place()
    wide = address.translate(
        str.maketrans("0123456789", "\uff10\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18\uff19")
    )
    for name, spelt in (
        ("王 五", address),
        ("王五", wide),
        ("王\u3000五", f" {address} "),
        (" 王五", wide),
    ):
        planted.append(_ticket(alike_buyer, name, spelt, phone))
    # One address, six buyers; one telephone (written three ways), six buyers.
    drop_address = "广东省深圳市南山区科技园南区8栋"
    address_buyers = [
        _ticket(new_buyer_id(), "收件人", drop_address, _own_place()[1]) for _ in range(6)
    ]
    plant("consigneeAddress", *address_buyers)
    phones = ["13700001111", "+86 137 0000 1111", "137-0000-1111"]
    phone_buyers = [
        _ticket(new_buyer_id(), "收件人", _own_place()[0], phones[n % 3]) for n in range(6)
    ]
    plant("consigneeTelephone", *phone_buyers)
    # One buyer, two orders to one consignee within the hour: 2,510 + 2,510 > 5,000.
    split_buyer = new_buyer_id()
    home = _own_place()
    plant("SPLIT_ORDERS", *(_ticket(split_buyer, "赵六", *home, "2500.00") for _ in range(2)))
    # Two orders adding up to the limit exactly (2,490 + 2,510): no alert.
    exact_buyer = new_buyer_id()
    there = _own_place()
    planted.extend(_ticket(exact_buyer, "钱七", *there, v) for v in ("2480.00", "2500.00"))

    send(
        d,
        *(
            Rec(kind, docs[kind])
            for _, docs in planted
            for kind in ("order", "payment", "logistics")
        ),
    )
    decided = decisions_of(outputs(d, {order_no for order_no, _ in planted}, len(planted)))
    assert sorted(o.value["decision"] for o in decided) == ["RELEASE"] * len(planted)

    found = [json.loads(r.value) for r in run(consume(d.brokers, [d.topic("alert")], idle=3))]
    by_kind = {(a["pattern"], a["keyKind"]): a for a in found}
    assert len(found) == len(by_kind) == 4, found
    expected_keys = {
        ("ID_MANY_CONSIGNEES", "buyerIdNumber"): _digest("buyerIdNumber", buyer=id_buyer),
        ("ADDRESS_MANY_IDS", "consigneeAddress"): _digest("consigneeAddress", address=drop_address),
        ("ADDRESS_MANY_IDS", "consigneeTelephone"): _digest(
            "consigneeTelephone", telephone=phones[0]
        ),
        ("SPLIT_ORDERS", "buyerIdNumber"): _digest("buyerIdNumber", buyer=split_buyer),
    }
    assert {k: a["keyDigest"] for k, a in by_kind.items()} == expected_keys
    evidence = {
        ("ID_MANY_CONSIGNEES", "buyerIdNumber"): tickets["ID_MANY_CONSIGNEES"],
        ("ADDRESS_MANY_IDS", "consigneeAddress"): tickets["consigneeAddress"],
        ("ADDRESS_MANY_IDS", "consigneeTelephone"): tickets["consigneeTelephone"],
        ("SPLIT_ORDERS", "buyerIdNumber"): tickets["SPLIT_ORDERS"],
    }
    for key, wanted in evidence.items():
        alert = by_kind[key]
        assert sorted(alert["tickets"]) == sorted(wanted), (key, alert)
        assert alert["count"] == (2 if key[0] == "SPLIT_ORDERS" else len(wanted))
        assert alert["alertId"].startswith(f"{key[0]}:{alert['keyDigest']}:")
    split = by_kind["SPLIT_ORDERS", "buyerIdNumber"]
    assert (split["total"], split["limit"], split["threshold"]) == ("5020.00", "5000", 1)
    id_alert = by_kind["ID_MANY_CONSIGNEES", "buyerIdNumber"]
    assert id_alert["key"] == "*" * 14 + id_buyer[-4:]
    assert (id_alert["threshold"], id_alert["windowSeconds"]) == (3, 604800.0)
    assert by_kind["ADDRESS_MANY_IDS", "consigneeAddress"]["key"] == "广东省***"
