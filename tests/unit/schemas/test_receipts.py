"""Receipts (schemas/receipts.py) on every path of the ticket stage and the ledger.

Every document applied gets ``120``, every rejection ``100`` with its code, every decision a
``399`` to the sender of each document it decided on; an exact redelivery gets nothing. A
document that came as a node of an XML message gets its receipts as XML, keyed by the
message's ``copCode``. The pipeline is driven by tests/unit/streams/test_tickets.py's Driver,
which decodes the receipts it produces on ``cbec.receipt`` (the sender from the record's key,
XML or JSON from its content-type) and checks that each encodes to the record's bytes again.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from lxml import etree

from schemas.ceb_xml import CEB_NAMESPACE
from schemas.outputs import Decision, Rejection, Source
from schemas.receipts import (
    RECEIPT_NAMESPACE,
    Addressed,
    Addressee,
    Receipt,
    concluded,
    decode_receipt,
    encode_receipt,
    return_time,
    returned,
)
from streams.intake import Origin
from tests.factories import as_bytes, order_dict
from tests.unit.streams.test_tickets import (
    BUILDERS,
    EBP,
    G_LOGISTICS,
    G_ORDER,
    G_PAYMENT,
    ORDER_NO,
    OTHER_EBP,
    T0,
    TICKET,
    WINDOW,
    Driver,
    _buyer_ticket,
    guid,
)

PAY_CODE = "4403169D3W"
LOGISTICS_CODE = "31222699S7"
LOGISTICS_NO = "LND69C6ADD64A44B6E"
PAY_TX = "PAY9FDCC88713814260AE65"
COP = "3301980AGT"
CEB = f"{{{CEB_NAMESPACE}}}"
OWN = f"{{{RECEIPT_NAMESPACE}}}"


def summary(receipts: list[Addressed]) -> list[tuple[Any, ...]]:
    """(sender, xml, docType, guid, status, code or decision) per receipt, in order."""
    return [
        (
            r.sender,
            r.xml,
            r.receipt.docType,
            r.receipt.guid,
            r.receipt.returnStatus,
            r.receipt.code or r.receipt.decision,
        )
        for r in receipts
    ]


def stored_rows() -> list[tuple[Any, ...]]:
    return [
        (EBP, False, "order", G_ORDER, "120", None),
        (PAY_CODE, False, "payment", G_PAYMENT, "120", None),
        (LOGISTICS_CODE, False, "logistics", G_LOGISTICS, "120", None),
    ]


def concluded_rows(decision: str) -> list[tuple[Any, ...]]:
    return [
        (EBP, False, "order", G_ORDER, "399", decision),
        (PAY_CODE, False, "payment", G_PAYMENT, "399", decision),
        (LOGISTICS_CODE, False, "logistics", G_LOGISTICS, "399", decision),
    ]


# -- the clean ticket ---------------------------------------------------------------------------


def test_return_time_is_china_time_with_milliseconds() -> None:
    assert return_time(T0) == "20261124112000000"  # 03:20:00.000Z is 11:20 in China
    assert return_time(T0 + 1234) == "20261124112001234"
    assert len(return_time(0)) == 17


def test_a_released_ticket_answers_each_sender_twice() -> None:
    driver = Driver()
    driver.clean()
    assert summary(driver.receipts) == stored_rows() + concluded_rows("RELEASE")
    order_stored, payment_stored, waybill_stored = (r.receipt for r in driver.receipts[:3])
    assert order_stored == Receipt(
        docType="order",
        guid=G_ORDER,
        ebpCode=EBP,
        ebcCode="3301960XYZ",
        orderNo=ORDER_NO,
        returnStatus="120",
        returnTime=return_time(T0),
        returnInfo=f"新增申报成功[{G_ORDER}]",
        ticketId=TICKET,
    )
    assert (payment_stored.payCode, payment_stored.payTransactionId) == (PAY_CODE, PAY_TX)
    assert (waybill_stored.logisticsCode, waybill_stored.logisticsNo) == (
        LOGISTICS_CODE,
        LOGISTICS_NO,
    )
    assert payment_stored.ebpCode is None and waybill_stored.orderNo is None  # their own keys
    for r in driver.receipts[3:]:
        assert r.receipt.ticketId == TICKET
        assert r.receipt.revision == 1
        assert r.receipt.reasons is None
        assert r.receipt.returnTime == return_time(T0 + 2000)
        assert r.receipt.returnInfo == f"审结 RELEASE: ticket {TICKET} revision 1"


def test_a_change_and_a_delete_are_stored_with_their_own_words() -> None:
    driver = Driver()
    driver.order(T0)
    driver.order(T0 + 1, appType="2", appTime="20261124112010", guid=guid(1))
    driver.order(T0 + 2, appType="3", appTime="20261124112020", guid=guid(2))
    assert [r.receipt.returnInfo for r in driver.receipts] == [
        f"新增申报成功[{G_ORDER}]",
        f"变更申报成功[{guid(1)}]",
        f"删除申报成功[{guid(2)}]",
    ]


def test_an_exact_redelivery_gets_no_second_receipt() -> None:
    driver = Driver()
    driver.order(T0)
    driver.order(T0 + 5)
    driver.payment(T0 + 6)
    driver.payment(T0 + 7)
    assert summary(driver.receipts) == stored_rows()[:2]


# -- rejections -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("steps", "code"),
    [
        ([("order", {}), ("order", {"guid": "X" * 36})], "DUPLICATE"),
        ([("order", {"appType": "2", "guid": "X" * 36})], "UNKNOWN_DOCUMENT"),
        (
            [
                ("order", {}),
                ("order", {"appType": "2", "guid": "X" * 36, "appTime": "20200101000000"}),
            ],
            "STALE",
        ),
    ],
)
def test_each_rejection_of_the_stage_is_returned_with_its_code(
    steps: list[tuple[str, dict[str, Any]]], code: str
) -> None:
    driver = Driver()
    for n, (kind, overrides) in enumerate(steps):
        driver.send(kind, BUILDERS[kind](**overrides), T0 + n)
    last = driver.receipts[-1]
    assert (last.sender, last.xml, last.receipt.returnStatus, last.receipt.code) == (
        EBP,
        False,
        "100",
        code,
    )
    (rejection,) = driver.rejections()
    assert last.receipt.returnInfo == f"{code}: {rejection.detail}"
    assert (last.receipt.guid, last.receipt.ticketId) == ("X" * 36, TICKET)


def test_a_change_after_release_is_returned_ticket_released() -> None:
    driver = Driver()
    driver.clean()
    driver.payment(T0 + 5000, appType="2", appTime="20261124112100", guid=guid(9))
    last = driver.receipts[-1]
    assert (last.sender, last.receipt.returnStatus, last.receipt.code) == (
        PAY_CODE,
        "100",
        "TICKET_RELEASED",
    )
    assert (last.receipt.payCode, last.receipt.payTransactionId) == (PAY_CODE, PAY_TX)


def test_return_info_is_cut_at_the_standards_limit() -> None:
    rejection = Rejection(
        code="SCHEMA",
        detail="x" * 2000,
        docType="payment",
        payCode=PAY_CODE,
        source=Source("cbec.payment", 0, 1, T0),
        raw=b"{}",
    )
    receipt = returned(rejection, cop_code=None, xml=False, ticket=None, now_ms=T0).receipt
    assert len(receipt.returnInfo) == 1000 and receipt.returnInfo.endswith("…")


# -- decisions --------------------------------------------------------------------------------


def test_a_divert_by_the_rules_names_its_reason_codes() -> None:
    driver = Driver()
    driver.order(T0)
    driver.payment(T0 + 1, amountPaid="497.49")
    driver.logistics(T0 + 2, consignee="李四")
    assert summary(driver.receipts[3:]) == concluded_rows("DIVERT")
    for r in driver.receipts[3:]:
        assert r.receipt.reasons == ["AMOUNT_MISMATCH", "CONSIGNEE_MISMATCH"]
        assert r.receipt.returnInfo == (
            f"审结 DIVERT: ticket {TICKET} revision 1: AMOUNT_MISMATCH, CONSIGNEE_MISMATCH"
        )


def test_missing_documents_answers_only_the_documents_present() -> None:
    driver = Driver()
    driver.order(T0)
    driver.tick(T0 + WINDOW)
    assert summary(driver.receipts) == [
        (EBP, False, "order", G_ORDER, "120", None),
        (EBP, False, "order", G_ORDER, "399", "DIVERT"),
    ]
    assert driver.receipts[-1].receipt.reasons == ["MISSING_DOCUMENTS"]


def test_an_ambiguous_waybill_answers_each_platforms_order() -> None:
    driver = Driver()
    driver.order(T0)
    driver.order(T0 + 1, ebpCode=OTHER_EBP, guid=guid(1))
    driver.logistics(T0 + 2)
    assert summary(driver.receipts[2:]) == [
        (EBP, False, "order", G_ORDER, "399", "DIVERT"),
        (OTHER_EBP, False, "order", guid(1), "399", "DIVERT"),
        (LOGISTICS_CODE, False, "logistics", G_LOGISTICS, "120", None),
    ]
    assert driver.receipts[3].receipt.ticketId == f"{OTHER_EBP}:{ORDER_NO}"
    assert driver.receipts[4].receipt.ticketId == f":{ORDER_NO}"


def test_the_annual_limit_is_concluded_by_the_ledger() -> None:
    driver = Driver()
    _buyer_ticket(driver, 1, "19990.00")  # 20000.00 released
    over = _buyer_ticket(driver, 2, "7990.00")  # 28000.00 in all
    assert isinstance(over, Decision) and over.decision == "DIVERT"
    last = driver.receipts[-3:]
    assert [(r.receipt.guid, r.receipt.decision, r.receipt.reasons) for r in last] == [
        (guid(20), "DIVERT", ["ANNUAL_LIMIT_EXCEEDED"]),
        (guid(21), "DIVERT", ["ANNUAL_LIMIT_EXCEEDED"]),
        (guid(22), "DIVERT", ["ANNUAL_LIMIT_EXCEEDED"]),
    ]
    assert [r.sender for r in last] == [EBP, PAY_CODE, LOGISTICS_CODE]


# -- XML documents ------------------------------------------------------------------------------


def test_a_document_from_an_xml_message_is_answered_in_xml_to_the_messages_sender() -> None:
    driver = Driver()
    origin = Origin(COP, "M" * 36, 2)
    driver.send("order", order_dict(), T0, origin=origin)
    driver.payment(T0 + 1)
    driver.logistics(T0 + 2)
    assert summary(driver.receipts) == [
        (COP, True, "order", G_ORDER, "120", None),
        (PAY_CODE, False, "payment", G_PAYMENT, "120", None),
        (LOGISTICS_CODE, False, "logistics", G_LOGISTICS, "120", None),
        (COP, True, "order", G_ORDER, "399", "RELEASE"),
        (PAY_CODE, False, "payment", G_PAYMENT, "399", "RELEASE"),
        (LOGISTICS_CODE, False, "logistics", G_LOGISTICS, "399", "RELEASE"),
    ]
    assert driver.receipts[0].receipt.node == 2
    ticket = driver.ticket()
    assert ticket is not None and ticket.order is not None and ticket.order.cop_code == COP


def test_a_rejected_xml_document_carries_its_node_and_its_json_form() -> None:
    driver = Driver()
    driver.order(T0)
    origin = Origin(COP, "M" * 36, 7)
    order = order_dict(guid="Y" * 36)
    driver.send("order", order, T0 + 1, origin=origin)
    (rejection,) = driver.rejections()
    assert (rejection.code, rejection.node, rejection.messageGuid, rejection.raw) == (
        "DUPLICATE",
        7,
        "M" * 36,
        as_bytes(order),  # its JSON form: the message stays on its topic at ``source``
    )
    last = driver.receipts[-1]
    assert (last.sender, last.xml, last.receipt.code, last.receipt.node) == (
        COP,
        True,
        "DUPLICATE",
        7,
    )


# -- the records ---------------------------------------------------------------------------------


def _decision() -> Decision:
    driver = Driver()
    driver.order(T0)
    driver.payment(T0 + 1, amountPaid="1.00")
    driver.logistics(T0 + 2)
    (decision,) = driver.decisions()
    return decision


def test_a_json_receipt_record() -> None:
    (order_receipt, *_) = concluded(_decision(), [Addressee("order", G_ORDER)], T0)
    key, value, headers = encode_receipt(order_receipt)
    assert key == EBP.encode()
    assert headers == [("content-type", b"application/json")]
    assert json.loads(value) == {
        "docType": "order",
        "guid": G_ORDER,
        "ebpCode": EBP,
        "ebcCode": "3301960XYZ",
        "orderNo": ORDER_NO,
        "returnStatus": "399",
        "returnTime": "20261124112000000",
        "returnInfo": f"审结 DIVERT: ticket {TICKET} revision 1: AMOUNT_MISMATCH",
        "ticketId": TICKET,
        "decision": "DIVERT",
        "revision": 1,
        "reasons": ["AMOUNT_MISMATCH"],
    }


def test_an_xml_receipt_record_is_a_one_node_ceb_message() -> None:
    (payment_receipt,) = concluded(_decision(), [Addressee("payment", G_PAYMENT, COP)], T0)
    key, value, headers = encode_receipt(payment_receipt)
    assert key == COP.encode()
    assert headers == [("content-type", b"application/xml")]
    assert value.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
    root = etree.fromstring(value)
    assert root.tag == f"{CEB}CEB412Message"
    assert root.get("version") == "1.0"
    assert len(root.get("guid")) == 36 and root.get("guid") == root.get("guid").upper()
    (node,) = root
    assert node.tag == f"{CEB}PaymentReturn"
    assert [(child.tag, child.text) for child in node] == [
        (f"{CEB}guid", G_PAYMENT),
        (f"{CEB}payCode", PAY_CODE),
        (f"{CEB}payTransactionId", PAY_TX),
        (f"{CEB}returnStatus", "399"),
        (f"{CEB}returnTime", "20261124112000000"),
        (f"{CEB}returnInfo", f"审结 DIVERT: ticket {TICKET} revision 1: AMOUNT_MISMATCH"),
        (f"{OWN}ticketId", TICKET),
        (f"{OWN}decision", "DIVERT"),
        (f"{OWN}revision", "1"),
        (f"{OWN}reason", "AMOUNT_MISMATCH"),
    ]
    again = encode_receipt(payment_receipt)[1]
    assert again == value  # the same receipt is the same message (its guid from its content)


@pytest.mark.parametrize("origin", [None, Origin(COP, "M" * 36, 3)], ids=["json", "xml"])
def test_a_receipt_record_decodes_to_the_receipt_it_was_made_from(origin: Origin | None) -> None:
    driver = Driver()
    for doc_type in ("order", "payment", "logistics"):
        driver.send(doc_type, BUILDERS[doc_type](), T0, origin=origin)
    driver.send("order", order_dict(guid="Y" * 36), T0 + 1, origin=origin)  # DUPLICATE
    statuses = [addressed.receipt.returnStatus for addressed in driver.receipts]
    assert sorted(set(statuses)) == ["100", "120", "399"]
    for addressed in driver.receipts:
        _, value, headers = encode_receipt(addressed)
        xml = headers == [("content-type", b"application/xml")]
        assert xml == (origin is not None)
        assert decode_receipt(value, xml=xml) == addressed.receipt


def test_a_value_that_is_no_receipt_is_refused() -> None:
    with pytest.raises(msgspec.ValidationError):
        decode_receipt(b'{"docType": "order"}', xml=False)
    with pytest.raises(etree.XMLSyntaxError):
        decode_receipt(b"<CEB312Message", xml=True)
