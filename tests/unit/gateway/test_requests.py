"""The gateway's pure request handling (gateway.requests): splitting a JSON body, every 400
shape, the 403 decisions, and the XML message root."""

from __future__ import annotations

import json

import msgspec
import pytest

from gateway.errors import BadRequestError, ForbiddenError, InvalidDocumentsError
from gateway.models import ForbiddenBody, ForbiddenDocument, InvalidDocument, InvalidDocumentsBody
from gateway.requests import (
    MAX_DOCUMENTS,
    authorize,
    forbidden_fields,
    invalid_document,
    message_doc_type,
    message_root,
    split_json,
    validate_json,
    validate_nodes,
)
from schemas.ceb_xml import MESSAGE_ROOTS, decode_message, encode_message
from schemas.codec import decode_document
from schemas.errors import SchemaError
from tests.factories import as_bytes, logistics, order, order_dict, payment

ORDER = as_bytes(order_dict())


def schema_detail(raw: bytes) -> str:
    """The detail a SCHEMA rejection of this order record carries."""
    with pytest.raises(SchemaError) as info:
        decode_document("order", raw)
    return info.value.detail


# -- splitting --------------------------------------------------------------------------------


def test_one_document_is_one_part_with_its_bytes():
    assert split_json(ORDER) == [ORDER]
    assert split_json(b"\n  " + ORDER + b"\r\n") == [ORDER]  # surrounding whitespace is not part


def test_an_array_is_split_into_the_elements_original_bytes():
    first = b'{ "b" : 1,\n  "a": [1, 2] }'
    second = ORDER
    body = b"[\n " + first + b" ,\t" + second + b"\n]"
    assert split_json(body) == [first, second]


def test_an_array_of_100_is_accepted_and_101_is_not():
    assert len(split_json(b"[" + b",".join([b"{}"] * MAX_DOCUMENTS) + b"]")) == 100
    with pytest.raises(BadRequestError) as info:
        split_json(b"[" + b",".join([b"{}"] * (MAX_DOCUMENTS + 1)) + b"]")
    assert info.value.detail == "the array holds 101 documents: expected 1 to 100"
    assert info.value.status == 400


@pytest.mark.parametrize(
    ("body", "error", "detail"),
    [
        (b"[]", "bad request", "the array is empty: expected 1 to 100 documents"),
        (b" \n", "bad request", "the body is empty: expected a JSON document or an array of them"),
        (b'{"a": ', "not JSON", "the body is not JSON: Input data was truncated"),
        (b"[{}, {]", "not JSON", "the body is not JSON: JSON is malformed: "),
        (b"{} {}", "not JSON", "the body is not JSON: JSON is malformed: trailing characters"),
        (b"<xml/>", "not JSON", "the body is not JSON: JSON is malformed: invalid character"),
        (b"[" * 10_000, "not JSON", "the body is not JSON"),
    ],
)
def test_bodies_refused_whole(body: bytes, error: str, detail: str) -> None:
    with pytest.raises(BadRequestError) as info:
        split_json(body)
    assert info.value.error == error
    assert info.value.detail.startswith(detail)
    assert not isinstance(info.value, InvalidDocumentsError)


# -- validation ------------------------------------------------------------------------------


def test_valid_documents_keep_position_bytes_and_value():
    parts = split_json(b"[" + ORDER + b"," + as_bytes(order_dict(orderNo="SO2")) + b"]")
    valid = validate_json("order", parts, 256 * 1024)
    assert [item.position for item in valid] == [0, 1]
    assert [item.raw for item in valid] == parts
    assert [item.document.orderNo for item in valid] == ["SO20261124000001", "SO2"]


def test_every_invalid_document_is_listed_with_the_schema_detail():
    too_long = as_bytes(order_dict(orderNo="X" * 61))
    missing = as_bytes(order_dict(ebpCode=None) | {"ebpCode": None})
    no_field = json.dumps({k: v for k, v in order_dict().items() if k != "guid"}).encode()
    parts = [ORDER, too_long, b"5", no_field, missing]
    with pytest.raises(InvalidDocumentsError) as info:
        validate_json("order", parts, 256 * 1024)
    body = info.value.response_body()
    assert isinstance(body, InvalidDocumentsBody)
    assert body.error == "invalid documents"
    assert body.detail == "4 of 5 documents do not validate; nothing was accepted"
    assert body.documents == [
        InvalidDocument(1, "orderNo", "Expected `str` of length <= 60", schema_detail(too_long)),
        InvalidDocument(2, None, "Expected `object`, got `int`", schema_detail(b"5")),
        InvalidDocument(3, "guid", "Object missing required field `guid`", schema_detail(no_field)),
        InvalidDocument(4, "ebpCode", "Expected `str`, got `null`", schema_detail(missing)),
    ]


def test_a_document_over_the_size_limit_is_invalid():
    with pytest.raises(InvalidDocumentsError) as info:
        validate_json("order", [ORDER], 100)
    (entry,) = info.value.documents
    assert entry.field is None
    assert entry.detail == f"message of {len(ORDER)} bytes exceeds the limit of 100 bytes - at `$`"
    assert entry.expected == f"message of {len(ORDER)} bytes exceeds the limit of 100 bytes"


@pytest.mark.parametrize(
    ("detail", "field", "expected"),
    [
        ("Expected `str` of length <= 60 - at `$.orderNo`", "orderNo", None),
        ("Expected `int` - at `$.orderList[1].gnum`", "orderList[1].gnum", None),
        (
            "Object missing required field `qty` - at `$.orderList[0]`",
            "orderList[0].qty",
            "Object missing required field `qty`",
        ),
        ("Object missing required field `guid`", "guid", None),
        ("not a JSON document in UTF-8: x - at `$`", None, "not a JSON document in UTF-8: x"),
        ("no path here", None, None),
        ("node 3: Expected `str` of length <= 60 - at `$.orderNo`", "orderNo", None),
    ],
)
def test_the_field_is_read_from_the_detail_path(
    detail: str, field: str | None, expected: str | None
) -> None:
    entry = invalid_document(7, detail)
    assert entry.index == 7
    assert entry.field == field
    assert entry.detail == detail  # always the SchemaError detail, untouched
    if expected is not None:
        assert entry.expected == expected
    assert " - at `" not in entry.expected
    assert not entry.expected.startswith("node ")


# -- authorization ---------------------------------------------------------------------------


def test_an_order_is_allowed_by_its_platform_or_its_shop():
    document = order(ebpCode="PLATFORM", ebcCode="SHOP")
    assert forbidden_fields(document, {"PLATFORM"}) is None
    assert forbidden_fields(document, {"SHOP"}) is None
    assert forbidden_fields(document, {"OTHER"}) == {"ebpCode": "PLATFORM", "ebcCode": "SHOP"}


def test_a_payment_needs_its_pay_code_and_a_waybill_its_logistics_code():
    assert forbidden_fields(payment(payCode="PAY"), {"PAY"}) is None
    # The payment names the platform too, but the platform does not send payments.
    assert forbidden_fields(payment(payCode="PAY", ebpCode="P"), {"P"}) == {"payCode": "PAY"}
    assert forbidden_fields(logistics(logisticsCode="L"), {"L"}) is None
    assert forbidden_fields(logistics(logisticsCode="L"), {"PAY"}) == {"logisticsCode": "L"}


def test_forbidden_lists_the_offending_indexes_only():
    documents = [
        (0, payment(payCode="MINE")),
        (1, payment(payCode="THEIRS")),
        (2, payment(payCode="MINE")),
        (3, payment(payCode="OTHER")),
    ]
    with pytest.raises(ForbiddenError) as info:
        authorize("tenpay", {"MINE"}, documents)
    assert info.value.status == 403
    assert info.value.response_body() == ForbiddenBody(
        "forbidden",
        "the key 'tenpay' may not declare for the senders of document(s) 1, 3; "
        "nothing was accepted",
        [ForbiddenDocument(1, {"payCode": "THEIRS"}), ForbiddenDocument(3, {"payCode": "OTHER"})],
    )
    authorize("tenpay", {"MINE", "THEIRS", "OTHER"}, documents)  # no raise


def test_an_xml_message_needs_its_cop_code_too():
    documents = [(1, order(ebpCode="P")), (2, order(ebpCode="X", ebcCode="Y"))]
    with pytest.raises(ForbiddenError) as info:
        authorize("shop", {"P", "X"}, documents, cop_code="AGENT")
    assert info.value.documents == [
        ForbiddenDocument(1, {"copCode": "AGENT", "ebpCode": "P", "ebcCode": "3301960XYZ"}),
        ForbiddenDocument(2, {"copCode": "AGENT", "ebpCode": "X", "ebcCode": "Y"}),
    ]
    with pytest.raises(ForbiddenError) as info:
        authorize("shop", {"P", "AGENT"}, documents, cop_code="AGENT")
    assert info.value.documents == [ForbiddenDocument(2, {"ebpCode": "X", "ebcCode": "Y"})]
    authorize("shop", {"P", "X", "AGENT"}, documents, cop_code="AGENT")


# -- XML -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "root"),
    [
        (b"<ceb:CEB311Message xmlns:ceb='x'/>", "CEB311Message"),
        (
            b'\xef\xbb\xbf<?xml version="1.0"?>\n<!-- <CEB411Message> -->\n<CEB511Message/>',
            "CEB511Message",
        ),
        (b"<?pi a?><CEB411Message>", "CEB411Message"),
        (b"<!DOCTYPE x><CEB311Message/>", None),  # left to the hardened decoder
        (b"<?xml " + b" " * 70_000 + b"?><CEB311Message/>", None),
        (b"<?a?>" * 13_000 + b"<!x", None),  # no catastrophic backtracking
    ],
)
def test_the_message_root_is_sniffed_without_parsing(body: bytes, root: str | None) -> None:
    assert message_root(body) == root


def test_the_root_picks_the_document_type():
    assert message_doc_type("CEB411Message", MESSAGE_ROOTS) == "payment"
    with pytest.raises(BadRequestError) as info:
        message_doc_type("CEB621Message", MESSAGE_ROOTS)
    assert info.value.error == "unknown message"
    assert info.value.detail == (
        "unknown message root <CEB621Message>: expected one of CEB311Message, CEB411Message, "
        "CEB511Message"
    )


def test_invalid_nodes_are_listed_by_their_1_based_index():
    good = order(orderNo="A1")
    xml = encode_message("order", [good, good, good], cop_code="P")
    xml = xml.replace(
        b"<ceb:orderNo>A1</ceb:orderNo>", b"<ceb:orderNo>" + b"Z" * 61 + b"</ceb:orderNo>", 1
    )
    message = decode_message("order", xml, 4 * 1024 * 1024)
    with pytest.raises(InvalidDocumentsError) as info:
        validate_nodes(message.nodes)
    (entry,) = info.value.documents
    assert entry.index == 1
    assert entry.field == "orderNo"
    assert entry.detail == message.nodes[0].error
    assert entry.detail.startswith("node 1: ")
    assert info.value.detail == "1 of 3 documents does not validate; nothing was accepted"
    valid = encode_message("order", [good, order(orderNo="A2")], cop_code="P")
    nodes = validate_nodes(decode_message("order", valid, 4 * 1024 * 1024).nodes)
    assert [(index, document.orderNo) for index, document in nodes] == [(1, "A1"), (2, "A2")]


def test_error_bodies_encode_as_the_contract_says():
    error = InvalidDocumentsError([InvalidDocument(0, None, "e", "e - at `$`")], 1)
    assert msgspec.json.decode(msgspec.json.encode(error.response_body())) == {
        "error": "invalid documents",
        "detail": "1 of 1 document does not validate; nothing was accepted",
        "documents": [{"index": 0, "field": None, "expected": "e", "detail": "e - at `$`"}],
    }
