"""The record envelope (schemas.codec): what is not a JSON object in UTF-8 of bounded size,
the key fields a rejection can still read, and the JSON encoding of the output records."""

from __future__ import annotations

import base64
import json
import re
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.codec import (
    BUSINESS_KEY_FIELDS,
    DEFAULT_MAX_DOCUMENT_BYTES,
    MAX_JSON_DEPTH,
    decode_document,
    encode_json,
    readable_fields,
)
from schemas.documents import DOC_TYPES, DocType, Logistics, Order, Payment
from schemas.errors import InputError, SandanError, SchemaError
from schemas.fields import Amount, dec_hook, enc_hook
from schemas.outputs import DecidedBy, Decision, DocumentGuids, Reason, Rejection, Source
from tests.factories import as_bytes, logistics_dict, order_dict, payment_dict

EXAMPLES: dict[DocType, bytes] = {
    "order": as_bytes(order_dict()),
    "payment": as_bytes(payment_dict()),
    "logistics": as_bytes(logistics_dict()),
}
NOT_UTF8 = "not a JSON document in UTF-8"


def reject(doc_type: DocType, raw: bytes | None, **kwargs: Any) -> str:
    with pytest.raises(SchemaError) as info:
        decode_document(doc_type, raw, **kwargs)
    assert info.value.code == "SCHEMA"
    assert str(info.value) == info.value.detail
    return info.value.detail


# --- decode_document: the envelope --------------------------------------------------------


def test_schema_error_is_an_input_error():
    error = SchemaError("detail")
    assert isinstance(error, InputError)
    assert isinstance(error, SandanError)
    assert (error.code, error.detail) == ("SCHEMA", "detail")


@pytest.mark.parametrize(
    ("doc_type", "struct"), [("order", Order), ("payment", Payment), ("logistics", Logistics)]
)
def test_each_topic_decodes_to_its_document(doc_type, struct):
    assert type(decode_document(doc_type, EXAMPLES[doc_type])) is struct


def test_a_document_on_the_wrong_topic_is_rejected():
    assert reject("order", EXAMPLES["payment"]) == "Object missing required field `orderType`"
    assert reject("payment", EXAMPLES["logistics"]) == "Object missing required field `payCode`"
    assert reject("logistics", EXAMPLES["order"]) == (
        "Object missing required field `logisticsCode`"
    )


@pytest.mark.parametrize("doc_type", DOC_TYPES)
@pytest.mark.parametrize("raw", [b"", None])
def test_empty_message_rejected(doc_type, raw):
    assert reject(doc_type, raw) == "empty message: expected one JSON object - at `$`"


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b"not json", "JSON is malformed: invalid character (byte 4)"),
        (b"<Order/>", "JSON is malformed: invalid character (byte 0)"),
        (b"{", "Input data was truncated"),
        (b"{'guid': 'x'}", "JSON is malformed: object keys must be strings (byte 1)"),
        (b'{"extra": 1,}', "JSON is malformed: trailing comma in object (byte 12)"),
        (b'{"extra": [1 2]}', "JSON is malformed: expected ',' or ']' (byte 13)"),
        (b'{"extra": 01}', "JSON is malformed: invalid number (byte 11)"),
        (b'{"extra": NaN}', "JSON is malformed: invalid character (byte 10)"),
        (b" ", "Input data was truncated"),
    ],
)
@pytest.mark.parametrize("doc_type", DOC_TYPES)
def test_not_json_rejected(doc_type, raw, problem):
    assert reject(doc_type, raw) == f"{NOT_UTF8}: {problem} - at `$`"


@pytest.mark.parametrize("doc_type", DOC_TYPES)
def test_truncated_document_rejected(doc_type):
    assert (
        reject(doc_type, EXAMPLES[doc_type][:-1])
        == f"{NOT_UTF8}: Input data was truncated - at `$`"
    )


@pytest.mark.parametrize("doc_type", DOC_TYPES)
def test_trailing_data_rejected(doc_type):
    detail = reject(doc_type, EXAMPLES[doc_type] + b"\n{}")
    assert re.fullmatch(
        rf"{NOT_UTF8}: JSON is malformed: trailing characters \(byte \d+\) - at `\$`", detail
    )


@pytest.mark.parametrize("doc_type", DOC_TYPES)
def test_trailing_whitespace_accepted(doc_type):
    assert decode_document(doc_type, EXAMPLES[doc_type] + b" \n") == decode_document(
        doc_type, EXAMPLES[doc_type]
    )


@pytest.mark.parametrize(
    ("raw", "got"),
    [
        (b"[]", "array"),
        (b"[{}]", "array"),
        (b'"{\\"guid\\": \\"x\\"}"', "str"),  # a JSON document inside a JSON string
        (b"12", "int"),
        (b"1.5", "float"),
        (b"true", "bool"),
        (b"null", "null"),
    ],
)
@pytest.mark.parametrize("doc_type", DOC_TYPES)
def test_json_other_than_an_object_rejected(doc_type, raw, got):
    assert reject(doc_type, raw) == f"Expected `object`, got `{got}`"


@pytest.mark.parametrize("doc_type", DOC_TYPES)
def test_array_of_documents_rejected(doc_type):
    raw = b"[" + EXAMPLES[doc_type] + b"]"
    assert reject(doc_type, raw) == "Expected `object`, got `array`"


@pytest.mark.parametrize("doc_type", DOC_TYPES)
def test_empty_object_rejected(doc_type):
    assert reject(doc_type, b"{}") == "Object missing required field `guid`"


# UTF-8


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b"\xff\xfe", "invalid start byte (byte 0)"),
        (b"\xfe\xff\x00{", "invalid start byte (byte 0)"),
        (b'\xff\xfe{\x00"\x00', "invalid start byte (byte 0)"),  # UTF-16 LE with a BOM
        (b'{"guid": "\xc3"}', "invalid continuation byte (byte 10)"),
        (b'{"guid": "\xe5\xbc', "unexpected end of data (byte 10)"),
    ],
)
@pytest.mark.parametrize("doc_type", DOC_TYPES)
def test_not_utf8_rejected(doc_type, raw, problem):
    assert reject(doc_type, raw) == f"{NOT_UTF8}: {problem} - at `$`"


def test_utf16_document_rejected():
    raw = EXAMPLES["order"].decode().encode("utf-16")
    assert reject("order", raw) == f"{NOT_UTF8}: invalid start byte (byte 0) - at `$`"


BAD_UTF8 = [
    pytest.param(b"\xff", "invalid start byte", id="ff"),
    pytest.param(b"\xfe\xff", "invalid start byte", id="fe-ff"),
    pytest.param(b"\xc0\xaf", "invalid start byte", id="overlong"),
    pytest.param(b"\xe5\xbc", "invalid continuation byte", id="truncated-sequence"),
    pytest.param(b"\xed\xa0\x80", "invalid continuation byte", id="encoded-surrogate"),
    pytest.param(b"\xf4\x90\x80\x80", "invalid continuation byte", id="above-u10ffff"),
    pytest.param(b"\x80", "invalid start byte", id="lone-continuation"),
]


def with_bytes_after(raw: bytes, marker: bytes, inserted: bytes) -> tuple[bytes, int]:
    """``raw`` with ``inserted`` put right after ``marker``; also the offset of the insertion."""
    at = raw.index(marker) + len(marker)
    return raw[:at] + inserted + raw[at:], at


@pytest.mark.parametrize(("bad", "problem"), BAD_UTF8)
def test_invalid_utf8_in_a_field_value_rejected(bad, problem):
    raw, at = with_bytes_after(EXAMPLES["order"], b'"orderNo": "SO', bad)
    assert reject("order", raw) == f"{NOT_UTF8}: {problem} (byte {at}) - at `$`"


@pytest.mark.parametrize(("bad", "problem"), BAD_UTF8)
def test_invalid_utf8_in_an_order_line_rejected(bad, problem):
    raw, at = with_bytes_after(EXAMPLES["order"], b'"itemName": "', bad)
    assert reject("order", raw) == f"{NOT_UTF8}: {problem} (byte {at}) - at `$`"


@pytest.mark.parametrize(("bad", "problem"), BAD_UTF8)
@pytest.mark.parametrize("doc_type", DOC_TYPES)
def test_invalid_utf8_in_an_ignored_field_rejected(doc_type, bad, problem):
    # the record as a whole must be UTF-8, even where sandan would not read it
    raw, at = with_bytes_after(EXAMPLES[doc_type], b"{", b'"extra": "' + bad + b'", ')
    assert reject(doc_type, raw) == f"{NOT_UTF8}: {problem} (byte {at + 10}) - at `$`"


@pytest.mark.parametrize("doc_type", DOC_TYPES)
def test_invalid_utf8_in_an_ignored_key_rejected(doc_type):
    raw, at = with_bytes_after(EXAMPLES[doc_type], b"{", b'"ext\xffra": 1, ')
    assert reject(doc_type, raw) == f"{NOT_UTF8}: invalid start byte (byte {at + 4}) - at `$`"


@pytest.mark.parametrize("escape", [b"\\ud800", b"\\udfff", b"\\ud800x"])
def test_escaped_lone_surrogate_rejected(escape):
    raw, _ = with_bytes_after(EXAMPLES["order"], b'"orderNo": "SO', escape)
    detail = reject("order", raw)
    assert detail.startswith(f"{NOT_UTF8}: JSON is malformed: ")
    assert detail.endswith(" - at `$`")


def test_escaped_surrogate_pair_accepted():
    raw, _ = with_bytes_after(EXAMPLES["order"], b'"buyerName": "', b"\\ud83d\\ude00")
    order = decode_document("order", raw)
    assert isinstance(order, Order)
    assert order.buyerName == "\U0001f600王芳张"


def test_multibyte_utf8_accepted():
    order = decode_document("order", EXAMPLES["order"])
    assert isinstance(order, Order)
    assert order.consignee == "王芳张"
    assert order.orderList[0].itemName == "奶粉"


# size


def padded(doc_type: DocType, size: int) -> bytes:
    """The example document grown to exactly ``size`` bytes by an ignored field."""
    raw = EXAMPLES[doc_type]
    head = b'{"padding": "'
    tail = b'", ' + raw[1:]
    return head + b"x" * (size - len(head) - len(tail)) + tail


def test_default_limit_is_256_kib():
    assert DEFAULT_MAX_DOCUMENT_BYTES == 256 * 1024


@pytest.mark.parametrize("doc_type", DOC_TYPES)
def test_message_at_the_limit_accepted(doc_type):
    raw = padded(doc_type, DEFAULT_MAX_DOCUMENT_BYTES)
    assert len(raw) == 262144
    assert decode_document(doc_type, raw) == decode_document(doc_type, EXAMPLES[doc_type])


@pytest.mark.parametrize("doc_type", DOC_TYPES)
def test_message_above_the_limit_rejected(doc_type):
    raw = padded(doc_type, DEFAULT_MAX_DOCUMENT_BYTES + 1)
    assert reject(doc_type, raw) == (
        "message of 262145 bytes exceeds the limit of 262144 bytes - at `$`"
    )


def test_limit_is_checked_before_parsing():
    raw = b"\xff" * 1000  # neither JSON nor UTF-8: the size is reported
    assert reject("order", raw, max_bytes=999) == (
        "message of 1000 bytes exceeds the limit of 999 bytes - at `$`"
    )


def test_limit_is_a_parameter():
    raw = EXAMPLES["payment"]
    assert isinstance(decode_document("payment", raw, max_bytes=len(raw)), Payment)
    assert reject("payment", raw, max_bytes=len(raw) - 1) == (
        f"message of {len(raw)} bytes exceeds the limit of {len(raw) - 1} bytes - at `$`"
    )


def test_limit_counts_bytes_not_characters():
    raw = padded("order", 1200).replace(b"x" * 300, "张".encode() * 100)
    assert len(raw) == 1200
    assert isinstance(decode_document("order", raw, max_bytes=1200), Order)
    assert reject("order", raw, max_bytes=1199) == (
        "message of 1200 bytes exceeds the limit of 1199 bytes - at `$`"
    )


TOO_DEEP = "not a JSON document: nested deeper than 128 levels - at `$`"


@pytest.mark.parametrize("doc_type", DOC_TYPES)
@pytest.mark.parametrize(("opening", "closing"), [(b"[", b"]"), (b'{"a":', b"}")])
def test_deeply_nested_ignored_field_rejected(doc_type, opening, closing):
    depth = 20_000
    nested = opening * depth + b"1" + closing * depth
    raw = b'{"extra": ' + nested + b", " + EXAMPLES[doc_type][1:]
    assert len(raw) < DEFAULT_MAX_DOCUMENT_BYTES
    assert reject(doc_type, raw) == TOO_DEEP


@pytest.mark.parametrize("doc_type", DOC_TYPES)
def test_moderately_nested_ignored_field_accepted(doc_type):
    raw = b'{"extra": ' + b"[" * 100 + b"]" * 100 + b", " + EXAMPLES[doc_type][1:]
    assert decode_document(doc_type, raw) == decode_document(doc_type, EXAMPLES[doc_type])


def nested_in_extra(levels: int, opening: bytes = b"[", closing: bytes = b"]") -> bytes:
    """The example order with an ignored field making ``levels`` levels in all."""
    inner = levels - 1  # the document's object is the first level
    return b'{"extra": ' + opening * inner + closing * inner + b", " + EXAMPLES["order"][1:]


def at_stack_depth(frames: int, call: Any) -> Any:
    return call() if frames == 0 else at_stack_depth(frames - 1, call)


def test_max_json_depth_is_128():
    assert MAX_JSON_DEPTH == 128
    assert isinstance(decode_document("order", nested_in_extra(128)), Order)
    assert reject("order", nested_in_extra(129)) == TOO_DEEP
    assert reject("order", nested_in_extra(129, b'{"a":', b"}")) == TOO_DEEP


def test_brackets_in_strings_do_not_count():
    raw = b'{"extra": "' + b"[{" * 500 + b'\\"[", ' + EXAMPLES["order"][1:]
    assert isinstance(decode_document("order", raw), Order)


# Found by the fuzzer (loadtest/fuzz.py): msgspec recurses per level within Python's recursion
# limit less the caller's stack, so a record nested some 900 levels deep decoded in a test (or
# had its guid read) and was "nested too deeply" in the worker, deeper in the stack.
@pytest.mark.parametrize("levels", [100, 128, 129, 900, 990])
@pytest.mark.parametrize("frames", [300, 600])  # a worker's stack holds far fewer
def test_the_outcome_does_not_depend_on_the_callers_stack(levels, frames):
    raw = EXAMPLES["order"].replace(
        b'"acturalPaid": "497.50"', b'"acturalPaid": ' + b"[" * levels + b"]" * levels
    )
    extra = nested_in_extra(levels)

    def outcome(value: bytes) -> tuple[object, dict[str, str]]:
        try:
            decoded: object = decode_document("order", value)
        except SchemaError as exc:
            decoded = exc.detail
        return decoded, readable_fields(value)

    for value in (raw, extra):
        assert at_stack_depth(frames, lambda v=value: outcome(v)) == outcome(value)
    assert ("guid" in outcome(raw)[1]) == (levels < MAX_JSON_DEPTH)  # a level for the object


# Found by the fuzzer (loadtest/fuzz.py): a JSON document with a character XML cannot carry was
# accepted, and its fields reach XML (the ticket id in the receipt of a waybill sent as XML),
# where lxml raised ValueError inside the worker's batch.
NOT_XML_TEXT = [
    pytest.param(b"\\u0001", "U+0001", id="escaped-soh"),
    pytest.param(b"\\u0000", "U+0000", id="escaped-nul"),
    pytest.param(b"\\u001F", "U+001F", id="escaped-unit-separator"),
    pytest.param(b"\\u000b", "U+000B", id="escaped-vertical-tab"),
    pytest.param(b"\\b", "U+0008", id="backspace"),
    pytest.param(b"\\f", "U+000C", id="form-feed"),
    pytest.param(b"\\uFFFE", "U+FFFE", id="escaped-fffe"),
    pytest.param(b"\\uffff", "U+FFFF", id="escaped-ffff"),
    pytest.param("\ufffe".encode(), "U+FFFE", id="raw-fffe"),
    pytest.param("\uffff".encode(), "U+FFFF", id="raw-ffff"),
]
NOT_XML_DETAIL = "expected only characters XML allows (a CEB message could not carry it), got"


@pytest.mark.parametrize(("text", "code_point"), NOT_XML_TEXT)
def test_a_character_xml_cannot_carry_rejected(text, code_point):
    raw, _ = with_bytes_after(EXAMPLES["order"], b'"ebpCode": "', text)
    assert reject("order", raw) == f"{NOT_XML_DETAIL} {code_point} - at `$.ebpCode`"


@pytest.mark.parametrize(
    ("doc_type", "marker", "path"),
    [
        ("order", b'"itemName": "', "$.orderList[0].itemName"),
        ("payment", b'"payerName": "', "$.payerName"),
        ("logistics", b'"logisticsNo": "', "$.logisticsNo"),
    ],
)
def test_a_character_xml_cannot_carry_rejected_in_every_kind_and_line(doc_type, marker, path):
    raw, _ = with_bytes_after(EXAMPLES[doc_type], marker, b"\\u0002")
    assert reject(doc_type, raw) == f"{NOT_XML_DETAIL} U+0002 - at `{path}`"


def test_the_first_field_in_order_is_named():
    raw, _ = with_bytes_after(EXAMPLES["order"], b'"itemName": "', b"\\u0003")
    raw, _ = with_bytes_after(raw, b'"orderNo": "', b"\\u0004")
    assert reject("order", raw) == f"{NOT_XML_DETAIL} U+0004 - at `$.orderNo`"


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(b"\\t\\n\\r", id="tab-lf-cr"),
        pytest.param(b"\\u0009\\u000a\\u000D", id="escaped-tab-lf-cr"),
        pytest.param(b"\\u007f\\u0085", id="del-and-c1"),
        pytest.param(b"\\ufffd\\uFFFD", id="replacement-character"),
        pytest.param(b"\\\\u0001\\\\b", id="escaped-backslashes"),
    ],
)
def test_characters_xml_allows_accepted(text):
    raw, _ = with_bytes_after(EXAMPLES["order"], b'"ebpName": "', text)
    assert isinstance(decode_document("order", raw), Order)


@pytest.mark.parametrize("doc_type", DOC_TYPES)
def test_a_character_xml_cannot_carry_in_an_ignored_field_or_key_accepted(doc_type):
    raw = b'{"extra\\u0001": "\\u0000\\ufffe\xef\xbf\xbf", ' + EXAMPLES[doc_type][1:]
    assert decode_document(doc_type, raw) == decode_document(doc_type, EXAMPLES[doc_type])


# --- readable_fields ------------------------------------------------------------------------


def test_business_key_fields():
    assert BUSINESS_KEY_FIELDS == (
        "guid",
        "orderNo",
        "ebpCode",
        "payCode",
        "payTransactionId",
        "logisticsCode",
        "logisticsNo",
    )


def test_readable_fields_of_an_invalid_order():
    raw = as_bytes(order_dict(currency="840", acturalPaid="-1", orderList=[]))
    assert readable_fields(raw) == {
        "guid": "6F1E7C7A-8B1D-4E7E-9B4A-0C2D7E1F3A01",
        "orderNo": "SO20261124000001",
        "ebpCode": "3301980ABC",
        "payCode": "4403169D3W",
        "payTransactionId": "PAY9FDCC88713814260AE65",
    }


def test_readable_fields_of_an_invalid_payment():
    raw = as_bytes(payment_dict(payTime="yesterday"))
    assert readable_fields(raw) == {
        "guid": "6F1E7C7A-8B1D-4E7E-9B4A-0C2D7E1F3A02",
        "orderNo": "SO20261124000001",
        "ebpCode": "3301980ABC",
        "payCode": "4403169D3W",
        "payTransactionId": "PAY9FDCC88713814260AE65",
    }


def test_readable_fields_of_an_invalid_waybill():
    raw = as_bytes(logistics_dict(packNo=2))
    assert readable_fields(raw) == {
        "guid": "6F1E7C7A-8B1D-4E7E-9B4A-0C2D7E1F3A03",
        "orderNo": "SO20261124000001",
        "logisticsCode": "31222699S7",
        "logisticsNo": "LND69C6ADD64A44B6E",
    }


def test_readable_fields_takes_only_strings_of_at_most_100_characters():
    raw = json.dumps(
        {
            "guid": 12,
            "orderNo": "x" * 100,
            "ebpCode": "x" * 101,
            "payCode": None,
            "payTransactionId": ["P1"],
            "logisticsCode": {"code": "L"},
            "logisticsNo": "",
            "buyerName": "not a key field",
        }
    ).encode()
    assert readable_fields(raw) == {"orderNo": "x" * 100, "logisticsNo": ""}


def test_readable_fields_reads_amounts_as_text_without_failing():
    raw = b'{"guid": "G", "acturalPaid": 1e999, "orderNo": "SO1"}'
    assert readable_fields(raw) == {"guid": "G", "orderNo": "SO1"}


@pytest.mark.parametrize(
    "raw",
    [
        None,
        b"",
        b"not json",
        b'{"guid": "G"',
        b'["guid", "G"]',
        b'"guid"',
        b"null",
        b'{"guid": "G", "orderNo": "SO\xff"}',  # not UTF-8
        b"\xff\xfe",
        b'{"guid": "\\ud800"}',
        b'{"guid": "G", "x": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
    ],
    ids=lambda raw: repr(raw)[:40],
)
def test_readable_fields_of_unreadable_records_is_empty(raw):
    assert readable_fields(raw) == {}


# --- encode_json ---------------------------------------------------------------------------

SOURCE = Source(topic="cbec.order", partition=3, offset=42, timestamp=1795000000000)


def rejection(raw: bytes, **fields: Any) -> Rejection:
    return Rejection(
        code="SCHEMA",
        detail="Expected `str` - at `$.orderNo`",
        docType="order",
        source=SOURCE,
        raw=raw,
        **fields,
    )


def test_rejection_encodes_raw_as_base64():
    raw = b"\xff\xfe\x00{not json}\n\x80"
    encoded = json.loads(encode_json(rejection(raw, guid="G", orderNo="SO1")))
    assert encoded == {
        "code": "SCHEMA",
        "detail": "Expected `str` - at `$.orderNo`",
        "docType": "order",
        "guid": "G",
        "orderNo": "SO1",
        "source": {
            "topic": "cbec.order",
            "partition": 3,
            "offset": 42,
            "timestamp": 1795000000000,
        },
        "raw": base64.b64encode(raw).decode(),
    }
    assert base64.b64decode(encoded["raw"], validate=True) == raw


def test_rejection_omits_fields_it_could_not_read():
    encoded = json.loads(encode_json(rejection(b"")))
    assert list(encoded) == ["code", "detail", "docType", "source", "raw"]
    assert encoded["raw"] == ""


def test_rejection_of_an_invalid_document_round_trips():
    raw = as_bytes(order_dict(acturalPaid="1e2"))
    detail = reject("order", raw)
    record = rejection(raw, **readable_fields(raw))
    record.detail = detail
    encoded = json.loads(encode_json(record))
    assert base64.b64decode(encoded["raw"]) == raw
    assert encoded["detail"] == detail
    assert (encoded["guid"], encoded["orderNo"]) == (
        "6F1E7C7A-8B1D-4E7E-9B4A-0C2D7E1F3A01",
        "SO20261124000001",
    )


@settings(max_examples=200, deadline=None)
@given(raw=st.binary(max_size=2048))
def test_any_raw_bytes_come_back_identical(raw):
    encoded = encode_json(rejection(raw))
    assert base64.b64decode(json.loads(encoded)["raw"], validate=True) == raw
    assert msgspec.json.decode(encoded, type=Rejection) == rejection(raw)


def decision(**fields: Any) -> Decision:
    values: dict[str, Any] = {
        "ticketId": "3301980ABC:SO20261124000001",
        "decision": "RELEASE",
        "revision": 1,
        "decidedAt": "2026-11-24T03:21:30.123Z",
        "orderNo": "SO20261124000001",
        "ebpCode": "3301980ABC",
        "ebcCode": "3301960XYZ",
        "payCode": "4403169D3W",
        "payTransactionId": "PAY9FDCC88713814260AE65",
        "logisticsCode": "31222699S7",
        "logisticsNo": "LND69C6ADD64A44B6E",
        "buyerIdNumber": "440305198012262283",
        "buyerName": "王芳张",
        "acturalPaid": Amount("497.50"),
        "dutiableValue": Decimal("497.50"),
        "fullTax": False,
        "documents": DocumentGuids(order="G1", payment="G2", logistics="G3"),
        "firstSeenAt": "2026-11-24T03:15:00.000Z",
        "completedAt": "2026-11-24T03:21:30.000Z",
        "decidedBy": DecidedBy("1", 600.0, Decimal(5000), Decimal(26000)),
    }
    values.update(fields)
    return Decision(**values)


def test_release_encodes_amounts_as_strings_and_omits_unset_reasons():
    encoded = encode_json(decision())
    assert json.loads(encoded) == {
        "ticketId": "3301980ABC:SO20261124000001",
        "decision": "RELEASE",
        "revision": 1,
        "decidedAt": "2026-11-24T03:21:30.123Z",
        "orderNo": "SO20261124000001",
        "ebpCode": "3301980ABC",
        "ebcCode": "3301960XYZ",
        "payCode": "4403169D3W",
        "payTransactionId": "PAY9FDCC88713814260AE65",
        "logisticsCode": "31222699S7",
        "logisticsNo": "LND69C6ADD64A44B6E",
        "buyerIdNumber": "440305198012262283",
        "buyerName": "王芳张",
        "acturalPaid": "497.50",
        "dutiableValue": "497.50",
        "fullTax": False,
        "documents": {"order": "G1", "payment": "G2", "logistics": "G3"},
        "firstSeenAt": "2026-11-24T03:15:00.000Z",
        "completedAt": "2026-11-24T03:21:30.000Z",
        "decidedBy": {
            "rulesVersion": "1",
            "windowSeconds": 600.0,
            "singleLimit": "5000",
            "annualLimit": "26000",
        },
    }
    assert "王芳张".encode() in encoded  # UTF-8, not \u escapes


def test_divert_encodes_reasons_and_missing():
    record = decision(
        decision="DIVERT",
        revision=2,
        acturalPaid=Decimal("99999999999999.99999"),
        dutiableValue=None,
        documents=DocumentGuids(order="G1"),
        completedAt=None,
        reasons=[
            Reason(
                code="AMOUNT_MISMATCH",
                detail="acturalPaid 497.50 != amountPaid 497.00",
                fields={"acturalPaid": ["497.50", "497.00"]},
            ),
            Reason(code="MISSING_DOCUMENTS", detail="window closed", fields={"x": [None, "y"]}),
            Reason(code="INVALID_BUYER_ID", detail="check character"),
        ],
        missing=["payment", "logistics"],
    )
    encoded = json.loads(encode_json(record))
    assert encoded["acturalPaid"] == "99999999999999.99999"
    assert encoded["dutiableValue"] is None
    assert encoded["completedAt"] is None
    assert encoded["documents"] == {"order": "G1", "payment": None, "logistics": None}
    assert encoded["reasons"] == [
        {
            "code": "AMOUNT_MISMATCH",
            "detail": "acturalPaid 497.50 != amountPaid 497.00",
            "fields": {"acturalPaid": ["497.50", "497.00"]},
        },
        {"code": "MISSING_DOCUMENTS", "detail": "window closed", "fields": {"x": [None, "y"]}},
        {"code": "INVALID_BUYER_ID", "detail": "check character", "fields": {}},
    ]
    assert encoded["missing"] == ["payment", "logistics"]
    assert list(encoded)[-2:] == ["reasons", "missing"]


def test_decision_with_only_reasons_omits_missing():
    encoded = json.loads(encode_json(decision(decision="DIVERT", reasons=[])))
    assert encoded["reasons"] == []
    assert "missing" not in encoded


def test_decoded_amounts_encode_as_their_text():
    order = decode_document("order", EXAMPLES["order"])
    assert isinstance(order, Order)
    encoded = json.loads(encode_json(order))
    assert (encoded["goodsValue"], encoded["acturalPaid"]) == ("487.50", "497.50")
    assert encoded["orderList"][1]["price"] == "89.50"
    assert decode_document("order", encode_json(order)) == order


def test_encode_json_refuses_unknown_types():
    with pytest.raises(NotImplementedError, match="cannot encode object"):
        encode_json({"value": object()})


def test_a_decision_of_an_earlier_version_without_decided_by_still_decodes() -> None:
    """Ledger requests and stored tickets carry decisions in msgpack: during a rolling upgrade
    a worker reads those an earlier version wrote, before decisions recorded their rules."""
    encoder = msgspec.msgpack.Encoder(enc_hook=enc_hook)
    earlier = msgspec.msgpack.decode(encoder.encode(decision()))
    del earlier["decidedBy"]
    decoded = msgspec.msgpack.decode(encoder.encode(earlier), type=Decision, dec_hook=dec_hook)
    assert decoded == decision(decidedBy=None)
    assert json.loads(encode_json(decoded))["decidedBy"] is None  # the field is always there
