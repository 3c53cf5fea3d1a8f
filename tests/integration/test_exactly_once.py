"""Exactly once under SIGKILL: a worker killed at random moments while documents flow, and
restarted, still gives every ticket exactly the decisions it should, every document exactly
its receipts, exact ledger totals, and exactly the pattern alerts the tickets make. A quarter
of the orders come as CEB XML messages."""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter, defaultdict
from decimal import Decimal
from typing import Any

import msgspec

from matchers.identity import resident_id_check_char
from schemas.ceb_xml import encode_message
from streams.alerts import alert_keys
from streams.ledger import BuyerLedger
from streams.records import Sighting
from tests.factories import as_bytes, logistics_dict, order, order_dict, payment_dict
from tests.integration.kafka import Timeout, consume, produce, run
from tests.integration.receipts import receipt

TICKETS = 1200
BUYERS = 40  # each buys ~30 tickets of 497.50: 14,925 a year, well under the annual limit
KILLS = 4
SEED = 20261124
AGENT = "3301980AGT"  # the copCode of the XML messages
SENDERS = {"order": "3301980ABC", "payment": "4403169D3W", "logistics": "31222699S7"}


def numbered_guid(kind: str, n: int) -> str:
    return f"{kind}{n:035d}"


def _workload() -> tuple[list[tuple[str, bytes, bytes]], dict[str, str], dict[str, str]]:
    """(kind, key, value) records in a shuffled arrival order; the expected decision per ticket;
    the buyer of each ticket. Every fourth ticket's order is a one-node XML message."""
    rng = random.Random(SEED)
    records: list[tuple[str, bytes, bytes]] = []
    expected: dict[str, str] = {}
    buyer_of: dict[str, str] = {}
    for n in range(TICKETS):
        order_no = f"EO{SEED}{n:06d}"
        first17 = f"44030519801226{n % BUYERS:03d}"
        buyer = first17 + resident_id_check_char(first17)
        mismatch = n % 10 == 0  # every tenth ticket is paid 0.01 short: AMOUNT_MISMATCH
        docs = {
            "order": order_dict(orderNo=order_no, guid=numbered_guid("O", n), buyerIdNumber=buyer),
            "payment": payment_dict(
                orderNo=order_no,
                guid=numbered_guid("P", n),
                payerIdNumber=buyer,
                amountPaid="497.49" if mismatch else "497.50",
            ),
            "logistics": logistics_dict(orderNo=order_no, guid=numbered_guid("L", n)),
        }
        ticket = f"3301980ABC:{order_no}"
        expected[ticket] = "DIVERT" if mismatch else "RELEASE"
        buyer_of[ticket] = buyer
        values = {kind: as_bytes(doc) for kind, doc in docs.items()}
        if n % 4 == 0:
            values["order"] = encode_message(
                "order", [order(**docs["order"])], cop_code=AGENT, guid=numbered_guid("M", n)
            )
        kinds = ["order", "payment", "logistics"]
        rng.shuffle(kinds)
        records.extend((kind, order_no.encode(), values[kind]) for kind in kinds)
        if n % 7 == 0:  # an exact redelivery of one of its documents
            kind = rng.choice(kinds)
            records.append((kind, order_no.encode(), values[kind]))
    # Interleave tickets a little, so documents of one ticket are spread over batches.
    window = 30
    for i in range(0, len(records) - window, window // 2):
        chunk = records[i : i + window]
        rng.shuffle(chunk)
        records[i : i + window] = chunk
    return records, expected, buyer_of


def test_sigkill_at_random_moments_loses_and_repeats_nothing(deploy: Any) -> None:
    d = deploy(SANDAN_WINDOW="1h")
    records, expected, buyer_of = _workload()
    worker = d.worker("w")
    worker.wait_ready()

    done = threading.Event()
    kills: list[float] = []

    def killer() -> None:
        rng = random.Random(SEED + 1)
        nonlocal worker
        for _ in range(KILLS):
            if done.wait(rng.uniform(2.0, 5.0)):
                return
            worker.kill()
            kills.append(time.monotonic())
            worker = d.worker("w")
            worker.wait_ready(120)

    thread = threading.Thread(target=killer)
    thread.start()
    try:
        step = 300
        for i in range(0, len(records), step):
            run(
                produce(
                    d.brokers,
                    [(d.topic(kind), key, value) for kind, key, value in records[i : i + step]],
                )
            )
            time.sleep(0.5)
        thread.join(timeout=200)
    finally:
        done.set()
        thread.join(timeout=200)
    assert len(kills) == KILLS

    timeout = Timeout(180, "every ticket to be decided")
    while timeout:
        outputs = run(
            consume(d.brokers, [d.topic("release"), d.topic("divert")], count=len(expected), idle=2)
        )
        if len(outputs) >= len(expected):
            break
        assert worker.alive(), worker.log_tail()
    outputs = run(consume(d.brokers, [d.topic("release"), d.topic("divert")], idle=3))

    seen = Counter(
        (json.loads(r.value)["ticketId"], json.loads(r.value)["revision"]) for r in outputs
    )
    repeated = {key: n for key, n in seen.items() if n > 1}
    assert not repeated, f"decisions repeated: {list(repeated.items())[:5]}"
    got = {json.loads(r.value)["ticketId"]: json.loads(r.value)["decision"] for r in outputs}
    assert got == expected
    for record in outputs:
        value = json.loads(record.value)
        assert value["revision"] == 1
        if value["decision"] == "DIVERT":
            assert [r["code"] for r in value["reasons"]] == ["AMOUNT_MISMATCH"]
    rejected = run(consume(d.brokers, [d.topic("rejected")], idle=2))
    assert rejected == []
    _check_receipts(d, outputs)
    _check_alerts(d, buyer_of)

    # The ledger's totals (its compacted changelog, last value per buyer) are exact.
    released_by_buyer: dict[str, Decimal] = defaultdict(Decimal)
    for record in outputs:
        value = json.loads(record.value)
        if value["decision"] == "RELEASE":
            released_by_buyer[value["buyerIdNumber"]] += Decimal(value["dutiableValue"])
    changelog = run(consume(d.brokers, [d.topic("sandan-ledger-changelog")], idle=2))
    totals = {
        r.key.decode(): msgspec.msgpack.decode(r.value, type=BuyerLedger).totals for r in changelog
    }
    assert {buyer: sum(years.values()) for buyer, years in totals.items()} == dict(
        released_by_buyer
    )
    assert len(buyer_of) == TICKETS


def _check_alerts(d: Any, buyer_of: dict[str, str]) -> None:
    """Every ticket ships to the factories' one consignee, address and telephone: the address
    and the telephone each alert ADDRESS_MANY_IDS once (40 buyers, more than 5), and each buyer
    SPLIT_ORDERS once (its ~30 orders of 497.50 within the hour add up past 5000); each alert
    once, whatever the kills, its evidence its key's own tickets."""
    alerts = [json.loads(r.value) for r in run(consume(d.brokers, [d.topic("alert")], idle=3))]
    seen = Counter((a["pattern"], a["keyKind"], a["keyDigest"]) for a in alerts)
    repeated = {key: n for key, n in seen.items() if n > 1}
    assert not repeated, f"alerts repeated: {list(repeated.items())[:5]}"
    first = order(**order_dict())
    sample = Sighting("", 0, "", "", first.consigneeAddress, first.consigneeTelephone, Decimal(0))
    places = {kind: key[1:].hex() for kind, key in alert_keys(sample)}
    buyer_digest = {
        buyer: dict(alert_keys(msgspec.structs.replace(sample, buyer=buyer)))["buyerIdNumber"][
            1:
        ].hex()
        for buyer in set(buyer_of.values())
    }
    assert set(seen) == {
        ("ADDRESS_MANY_IDS", "consigneeAddress", places["consigneeAddress"]),
        ("ADDRESS_MANY_IDS", "consigneeTelephone", places["consigneeTelephone"]),
    } | {("SPLIT_ORDERS", "buyerIdNumber", digest) for digest in buyer_digest.values()}
    for alert in alerts:
        if alert["pattern"] == "SPLIT_ORDERS":
            buyers = {buyer_of[ticket] for ticket in alert["tickets"]}
            assert [buyer_digest[b] for b in buyers] == [alert["keyDigest"]]
            assert Decimal(alert["total"]) > Decimal(5000)
            assert alert["count"] == len(alert["tickets"])
        else:
            assert alert["count"] == 6
            assert len({buyer_of[ticket] for ticket in alert["tickets"]}) == 6


def _check_receipts(d: Any, decisions: list[Any]) -> None:
    """Each document: one 120 when stored, one 399 for its ticket's one decision, in its own
    format, to its sender; nothing for the redeliveries, nothing twice."""
    receipts = [receipt(r) for r in run(consume(d.brokers, [d.topic("receipt")], idle=3))]
    seen = Counter((r["guid"], r["returnStatus"], r.get("revision")) for r in receipts)
    repeated = {key: n for key, n in seen.items() if n > 1}
    assert not repeated, f"receipts repeated: {list(repeated.items())[:5]}"
    expected: set[tuple[str, str, int | None]] = set()
    for record in decisions:
        decision = json.loads(record.value)
        for guid in decision["documents"].values():
            expected.add((guid, "120", None))
            expected.add((guid, "399", 1))
    assert set(seen) == expected
    for r in receipts:
        xml = r["docType"] == "order" and int(r["guid"][1:]) % 4 == 0
        assert (r["format"], r["key"]) == ("xml", AGENT) if xml else ("json", SENDERS[r["docType"]])
