"""Released once, for longer than a ticket lives, on the real broker (docs/contract.md, "Released
tickets"): with a window of 2 s and a retention of 5 s, the standard's waybill (no ebpCode)
resent with a new guid after the release, and again after the ticket's retention, is rejected
``DUPLICATE`` once each (a redelivery does nothing), with its ``100`` receipt; no waybill-only
ticket is made, so no second decision comes a window later."""

from __future__ import annotations

import time
from collections.abc import Callable

from tests.integration.conftest import Deployment
from tests.integration.kafka import consume, run
from tests.integration.receipts import receipt
from tests.integration.test_contract import (
    EBP,
    Rec,
    barrier,
    check_decision,
    check_rejection,
    decisions_of,
    new_order_no,
    outputs,
    rejections_of,
    send,
    ticket_docs,
    version,
)

WINDOW, RETENTION = 2.0, 5.0  # seconds


def test_a_resent_waybill_after_release_and_after_retention_is_rejected_once(
    deploy: Callable[..., Deployment],
) -> None:
    d = deploy(
        SANDAN_WINDOW=f"{int(WINDOW)}s",
        SANDAN_RETENTION=f"{int(RETENTION)}s",
        SANDAN_RELEASED_HORIZON="600s",  # well past the test: the memory outlives the ticket
    )
    d.worker().wait_ready()
    order_no = new_order_no("RH")
    docs = ticket_docs(order_no)
    waybill = docs["logistics"]
    first, *_ = send(d, *(Rec(kind, docs[kind]) for kind in ("order", "payment", "logistics")))
    assert len(decisions_of(outputs(d, {order_no}, 1, settle=0))) == 1

    # resent while the released ticket is held: a new guid, appType 1, the same content
    resent = version(waybill, "1", waybill["appTime"])
    held = send(d, Rec("logistics", resent), Rec("logistics", resent))  # and redelivered

    # after the ticket's retention (its first document's arrival + 5 s): its documents are gone
    time.sleep(max(0.0, first.timestamp / 1000 + RETENTION + 1 - time.time()))
    again = version(waybill, "1", waybill["appTime"])
    forgotten = send(
        d,
        Rec("logistics", again),
        Rec("logistics", again),  # redelivered
        Rec("logistics", resent),  # the first resend redelivered: remembered too
        Rec("logistics", waybill),  # the released waybill itself redelivered
    )
    drafts = barrier(d, order_no, "logistics")
    assert forgotten[0].timestamp > first.timestamp + RETENTION * 1000

    # a waybill-only ticket would be diverted MISSING_DOCUMENTS a window after its waybill
    outs = outputs(d, {order_no}, 4, settle=WINDOW + 2)

    rejected = rejections_of(outs, drafts)
    assert set(rejected) == {resent["guid"], again["guid"]}, rejected
    detail = (
        f"ticket {EBP}:{order_no} was released with waybill {waybill['logisticsCode']} "
        f"{waybill['logisticsNo']}: a new one (appType 1) is a duplicate"
    )
    for sent in (held[0], forgotten[0]):
        out = rejected[sent.doc["guid"]]
        check_rejection(out, sent, "DUPLICATE")
        assert out.value["detail"] == detail, out.value
    decided = decisions_of(outs)
    assert len(decided) == 1, [o.value for o in decided]
    check_decision(decided[0], "RELEASE", 1, **docs)

    records = run(consume(d.brokers, [d.topic("receipt")], idle=1.0, limit=30))
    mine = [receipt(r) for r in records]
    resends = [r for r in mine if r["guid"] in (resent["guid"], again["guid"])]
    assert sorted(
        (r["guid"], r["key"], r["returnStatus"], r["code"], r["ticketId"], r["returnInfo"])
        for r in resends
    ) == sorted(
        (
            g,
            waybill["logisticsCode"],
            "100",
            "DUPLICATE",
            f"{EBP}:{order_no}",
            f"DUPLICATE: {detail}",
        )
        for g in (resent["guid"], again["guid"])
    )
    # the released waybill: stored, then concluded, once each
    assert sorted(r["returnStatus"] for r in mine if r["guid"] == waybill["guid"]) == ["120", "399"]
