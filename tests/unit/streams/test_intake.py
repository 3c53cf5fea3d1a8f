"""The validate-and-key stage (streams.intake): a consumed record becomes its decoded document,
a SCHEMA rejection (bad record) or a DRAFT rejection (``appStatus`` 1); ``reject`` repeats the
business key fields of a decoded document."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from schemas.codec import encode_json
from schemas.documents import DOC_TYPES, DocType, Document, Logistics, Order, Payment
from schemas.outputs import Rejection, Source
from streams.intake import Incoming, reject, validate
from tests.factories import DROP, as_bytes, logistics_dict, order_dict, payment_dict

MAX_BYTES = 262144
BUILDERS: dict[DocType, Callable[..., dict[str, Any]]] = {
    "order": order_dict,
    "payment": payment_dict,
    "logistics": logistics_dict,
}
TYPES: dict[DocType, type[Document]] = {"order": Order, "payment": Payment, "logistics": Logistics}
ORDER_NO = "SO20261124000001"
GUIDS: dict[DocType, str] = {
    "order": "6F1E7C7A-8B1D-4E7E-9B4A-0C2D7E1F3A01",
    "payment": "6F1E7C7A-8B1D-4E7E-9B4A-0C2D7E1F3A02",
    "logistics": "6F1E7C7A-8B1D-4E7E-9B4A-0C2D7E1F3A03",
}


def source(doc_type: DocType) -> Source:
    return Source(topic=f"cbec.{doc_type}", partition=3, offset=1234, timestamp=1_795_490_400_000)


def incoming(doc_type: DocType, value: bytes | None, key: bytes | None = None) -> Incoming:
    return Incoming(doc_type, key, value, source(doc_type))


def rejection(doc_type: DocType, value: bytes | None, max_bytes: int = MAX_BYTES) -> Rejection:
    result = validate(incoming(doc_type, value), max_bytes)
    assert isinstance(result, Rejection)
    return result


# --- valid records -------------------------------------------------------------------------


@pytest.mark.parametrize("doc_type", DOC_TYPES)
def test_valid_record_is_its_document(doc_type: DocType) -> None:
    result = validate(
        incoming(doc_type, as_bytes(BUILDERS[doc_type]()), ORDER_NO.encode()), MAX_BYTES
    )
    assert type(result) is TYPES[doc_type]
    assert isinstance(result, TYPES[doc_type])
    assert result.guid == GUIDS[doc_type]
    assert result.orderNo == ORDER_NO
    assert result.appStatus == "2"


def test_record_key_does_not_matter() -> None:
    value = as_bytes(order_dict())
    with_key = validate(incoming("order", value, b"something else"), MAX_BYTES)
    without_key = validate(incoming("order", value, None), MAX_BYTES)
    assert isinstance(with_key, Order)
    assert with_key == without_key


def test_valid_order_fields_are_decoded() -> None:
    result = validate(incoming("order", as_bytes(order_dict(orderNo="SO-X"))), MAX_BYTES)
    assert isinstance(result, Order)
    assert result.orderNo == "SO-X"
    assert result.ebpCode == "3301980ABC"
    assert len(result.orderList) == 2


# --- SCHEMA ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        b"",
        None,
        b"not json",
        b"[1, 2]",
        b'"a string"',
        b"\xff\xfe{}",
        b"{}",
    ],
)
@pytest.mark.parametrize("doc_type", DOC_TYPES)
def test_bad_record_is_a_schema_rejection(doc_type: DocType, value: bytes | None) -> None:
    result = rejection(doc_type, value)
    assert result.code == "SCHEMA"
    assert result.docType == doc_type
    assert result.source == source(doc_type)
    assert result.raw == (value or b"")
    assert result.detail
    assert (result.guid, result.orderNo, result.ebpCode) == (None, None, None)


def test_schema_rejection_keeps_the_original_bytes_and_readable_keys() -> None:
    value = as_bytes(order_dict(goodsValue="lots"))
    result = rejection("order", value)
    assert result.code == "SCHEMA"
    assert result.raw == value  # byte for byte, not re-encoded
    assert "goodsValue" in result.detail
    assert result.guid == GUIDS["order"]
    assert result.orderNo == ORDER_NO
    assert result.ebpCode == "3301980ABC"
    assert result.payCode == "4403169D3W"
    assert result.payTransactionId == "PAY9FDCC88713814260AE65"
    assert result.logisticsCode is None
    assert result.logisticsNo is None


def test_schema_rejection_of_a_waybill_reads_its_keys() -> None:
    value = as_bytes(logistics_dict(weight=DROP))
    result = rejection("logistics", value)
    assert result.code == "SCHEMA"
    assert "weight" in result.detail
    assert result.logisticsCode == "31222699S7"
    assert result.logisticsNo == "LND69C6ADD64A44B6E"
    assert result.orderNo == ORDER_NO
    assert result.ebpCode is None


def test_schema_rejection_skips_keys_that_are_not_strings() -> None:
    value = as_bytes(payment_dict(orderNo=12345, amountPaid="x"))
    result = rejection("payment", value)
    assert result.code == "SCHEMA"
    assert result.orderNo is None
    assert result.guid == GUIDS["payment"]


def test_record_of_the_wrong_type_is_a_schema_rejection() -> None:
    # a payment on the order topic: decoded as an order, it lacks the order's fields
    value = as_bytes(payment_dict())
    result = rejection("order", value)
    assert result.code == "SCHEMA"
    assert result.docType == "order"
    assert result.raw == value


def test_oversized_record_is_a_schema_rejection() -> None:
    value = as_bytes(order_dict())
    assert isinstance(validate(incoming("order", value), len(value)), Order)
    result = rejection("order", value, max_bytes=len(value) - 1)
    assert result.code == "SCHEMA"
    assert "exceeds" in result.detail
    assert result.raw == value


def test_bad_app_status_is_schema_not_draft() -> None:
    result = rejection("order", as_bytes(order_dict(appStatus="3")))
    assert result.code == "SCHEMA"
    assert "appStatus" in result.detail


def test_a_character_xml_cannot_carry_is_a_schema_rejection_with_its_bytes() -> None:
    # Found by the fuzzer: such an ebpCode reached the XML receipt of a waybill sent as XML
    # (its ticket id) and lxml raised inside the worker's batch. Now it stops at intake.
    value = as_bytes(order_dict(ebpCode="3301980\x01BC"))
    assert b"\\u0001" in value
    result = rejection("order", value)
    assert result.code == "SCHEMA"
    assert result.detail == (
        "expected only characters XML allows (a CEB message could not carry it), got U+0001 "
        "- at `$.ebpCode`"
    )
    assert result.raw == value
    assert result.ebpCode == "3301980\x01BC"  # read as it is: the rejection goes out as JSON
    assert result.guid == GUIDS["order"]


def test_schema_rejection_encodes_as_json() -> None:
    result = rejection("order", b"\x00\x01")
    encoded = encode_json(result)
    assert b'"code":"SCHEMA"' in encoded
    assert b'"raw":"AAE="' in encoded  # base64 of the original bytes


# --- DRAFT -----------------------------------------------------------------------------------


@pytest.mark.parametrize("doc_type", DOC_TYPES)
def test_draft_is_a_draft_rejection_with_its_keys(doc_type: DocType) -> None:
    value = as_bytes(BUILDERS[doc_type](appStatus="1"))
    result = rejection(doc_type, value)
    assert result.code == "DRAFT"
    assert result.detail == "appStatus 1 (draft) is not declared - at `$.appStatus`"
    assert result.docType == doc_type
    assert result.guid == GUIDS[doc_type]
    assert result.orderNo == ORDER_NO
    assert result.source == source(doc_type)
    assert result.raw == value


def test_draft_that_is_also_malformed_is_schema() -> None:
    result = rejection("order", as_bytes(order_dict(appStatus="1", guid=DROP)))
    assert result.code == "SCHEMA"


# --- reject: the business keys of each document type -----------------------------------------


def test_reject_an_order() -> None:
    value = as_bytes(order_dict())
    record = incoming("order", value)
    document = validate(record, MAX_BYTES)
    assert isinstance(document, Order)
    result = reject(record, document, "DUPLICATE", "seen before")
    assert result == Rejection(
        code="DUPLICATE",
        detail="seen before",
        docType="order",
        guid=GUIDS["order"],
        orderNo=ORDER_NO,
        ebpCode="3301980ABC",
        payCode="4403169D3W",
        payTransactionId="PAY9FDCC88713814260AE65",
        logisticsCode=None,
        logisticsNo=None,
        source=source("order"),
        raw=value,
    )


def test_reject_an_order_without_payment_reference() -> None:
    value = as_bytes(order_dict(payCode=DROP, payTransactionId=DROP))
    record = incoming("order", value)
    document = validate(record, MAX_BYTES)
    assert isinstance(document, Order)
    result = reject(record, document, "STALE", "older")
    assert (result.payCode, result.payTransactionId) == (None, None)
    assert result.ebpCode == "3301980ABC"


def test_reject_a_payment() -> None:
    value = as_bytes(payment_dict())
    record = incoming("payment", value)
    document = validate(record, MAX_BYTES)
    assert isinstance(document, Payment)
    result = reject(record, document, "STALE", "older")
    assert result == Rejection(
        code="STALE",
        detail="older",
        docType="payment",
        guid=GUIDS["payment"],
        orderNo=ORDER_NO,
        ebpCode="3301980ABC",
        payCode="4403169D3W",
        payTransactionId="PAY9FDCC88713814260AE65",
        source=source("payment"),
        raw=value,
    )


def test_reject_a_waybill() -> None:
    value = as_bytes(logistics_dict())
    record = incoming("logistics", value)
    document = validate(record, MAX_BYTES)
    assert isinstance(document, Logistics)
    result = reject(record, document, "TICKET_RELEASED", "already released")
    assert result == Rejection(
        code="TICKET_RELEASED",
        detail="already released",
        docType="logistics",
        guid=GUIDS["logistics"],
        orderNo=ORDER_NO,
        logisticsCode="31222699S7",
        logisticsNo="LND69C6ADD64A44B6E",
        source=source("logistics"),
        raw=value,
    )
    assert result.ebpCode is None
    assert result.payCode is None


def test_reject_a_waybill_with_a_platform_code() -> None:
    value = as_bytes(logistics_dict(ebpCode="3301980ABC"))
    record = incoming("logistics", value)
    document = validate(record, MAX_BYTES)
    assert isinstance(document, Logistics)
    result = reject(record, document, "UNKNOWN_DOCUMENT", "no such ticket")
    assert result.ebpCode == "3301980ABC"
    assert result.logisticsNo == "LND69C6ADD64A44B6E"


def test_rejection_omits_absent_keys_in_json() -> None:
    value = as_bytes(logistics_dict())
    record = incoming("logistics", value)
    document = validate(record, MAX_BYTES)
    assert isinstance(document, Logistics)
    encoded = encode_json(reject(record, document, "DUPLICATE", "again"))
    assert b"payCode" not in encoded
    assert b"ebpCode" not in encoded
    assert b'"logisticsNo":"LND69C6ADD64A44B6E"' in encoded
