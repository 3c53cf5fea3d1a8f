"""Field rules of the three input documents (contract "Input records", domain.md section 2).

Every rule is checked by decoding a record that differs from the clean example ticket
(tests/data) in one field, and asserting the exact outcome: the decoded value, or the
``SchemaError.detail`` naming the field's path and the expectation.

The tables below transcribe domain.md section 2; ``test_spec_covers_every_struct_field`` keeps
them and the msgspec Structs in step, so a field added to a Struct without a rule here fails.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any, NamedTuple

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.codec import decode_document
from schemas.documents import (
    DOCUMENT_TYPES,
    DocType,
    Document,
    Logistics,
    Order,
    OrderLine,
    Payment,
)
from schemas.errors import SchemaError
from schemas.fields import Amount
from tests.factories import DROP, as_bytes, logistics_dict, order_dict, payment_dict

BUILDERS: dict[DocType, Callable[..., dict[str, Any]]] = {
    "order": order_dict,
    "payment": payment_dict,
    "logistics": logistics_dict,
}

Path = tuple[str | int, ...]
LINE: Path = ("orderList", 0)


class Rule(NamedTuple):
    """One field of domain.md section 2."""

    kind: str  # "max" (C..n), "exact" (Cn), "amount" (N19,5), "enum", "time", "int", "list"
    required: bool
    size: int = 0  # the n of C..n / Cn
    values: tuple[object, ...] = ()  # enum: the accepted values


def c(n: int, required: bool = True) -> Rule:  # C..n
    return Rule("max", required, n)


def cx(n: int, required: bool = True) -> Rule:  # Cn
    return Rule("exact", required, n)


AMOUNT = Rule("amount", True)
OPT_AMOUNT = Rule("amount", False)
TIME = Rule("time", True)
CURRENCY = Rule("enum", True, values=("142",))
ID_TYPE = Rule("enum", True, values=("1",))

HEADER: dict[str, Rule] = {
    "guid": cx(36),
    "appType": Rule("enum", True, values=("1", "2", "3")),
    "appTime": TIME,
    "appStatus": Rule("enum", True, values=("1", "2")),
}
ORDER: dict[str, Rule] = {
    **HEADER,
    "orderType": Rule("enum", True, values=("I",)),
    "orderNo": c(60),
    "ebpCode": c(18),
    "ebpName": c(100),
    "ebcCode": c(18),
    "ebcName": c(100),
    "goodsValue": AMOUNT,
    "freight": AMOUNT,
    "discount": AMOUNT,
    "taxTotal": AMOUNT,
    "acturalPaid": AMOUNT,
    "currency": CURRENCY,
    "buyerRegNo": c(60),
    "buyerName": c(60),
    "buyerTelephone": c(30),
    "buyerIdType": ID_TYPE,
    "buyerIdNumber": c(60),
    "payCode": c(18, required=False),
    "payName": c(100, required=False),
    "payTransactionId": c(60, required=False),
    "batchNumbers": c(100, required=False),
    "consignee": c(100),
    "consigneeTelephone": c(50),
    "consigneeAddress": c(200),
    "consigneeDistrict": cx(6, required=False),
    "note": c(1000, required=False),
    "orderList": Rule("list", True),
}
ORDER_LINE: dict[str, Rule] = {
    "gnum": Rule("int", True),
    "itemNo": c(30, required=False),
    "itemName": c(250),
    "gmodel": c(510),
    "itemDescribe": c(1000, required=False),
    "barCode": c(50, required=False),
    "unit": cx(3),
    "qty": AMOUNT,
    "price": AMOUNT,
    "totalPrice": AMOUNT,
    "currency": CURRENCY,
    "country": cx(3),
    "note": c(1000, required=False),
}
PAYMENT: dict[str, Rule] = {
    **HEADER,
    "payCode": c(18),
    "payName": c(100),
    "payTransactionId": c(60),
    "orderNo": c(60),
    "ebpCode": c(18),
    "ebpName": c(100),
    "payerIdType": ID_TYPE,
    "payerIdNumber": c(60),
    "payerName": c(60),
    "telephone": c(60, required=False),
    "amountPaid": AMOUNT,
    "currency": CURRENCY,
    "payTime": TIME,
    "note": c(1000, required=False),
}
LOGISTICS: dict[str, Rule] = {
    **HEADER,
    "logisticsCode": c(18),
    "logisticsName": c(100),
    "logisticsNo": c(60),
    "billNo": c(37, required=False),
    "orderNo": c(60),
    "ebpCode": c(18, required=False),  # sandan's optional extra (contract "Tickets")
    "freight": OPT_AMOUNT,  # minOccurs=0 in the XSD
    "insuredFee": OPT_AMOUNT,
    "currency": CURRENCY,
    "weight": AMOUNT,
    "packNo": Rule("enum", True, values=(1,)),
    "goodsInfo": c(200, required=False),
    "consignee": c(100),
    "consigneeAddress": c(200),
    "consigneeTelephone": c(50),
    "note": c(1000, required=False),
}

SPEC: dict[DocType, dict[str, Rule]] = {"order": ORDER, "payment": PAYMENT, "logistics": LOGISTICS}


def all_fields() -> Iterator[tuple[DocType, Path, Rule]]:
    for doc_type, rules in SPEC.items():
        for name, rule in rules.items():
            yield doc_type, (name,), rule
    for name, rule in ORDER_LINE.items():
        yield "order", (*LINE, name), rule


def cases(predicate: Callable[[Rule], bool]) -> list[Any]:
    return [
        pytest.param(doc_type, path, rule, id=f"{doc_type}-{json_path(path)}")
        for doc_type, path, rule in all_fields()
        if predicate(rule)
    ]


def json_path(path: Path) -> str:
    return "$" + "".join(f"[{key}]" if isinstance(key, int) else f".{key}" for key in path)


def build(doc_type: DocType, path: Path, value: object) -> dict[str, Any]:
    """The clean example document with the field at ``path`` set to ``value`` (DROP: removed)."""
    document = BUILDERS[doc_type]()
    parent: Any = document
    for key in path[:-1]:
        parent = parent[key]
    if value is DROP:
        parent.pop(path[-1], None)
    else:
        parent[path[-1]] = value
    return document


def decode(doc_type: DocType, document: dict[str, Any]) -> Document:
    return decode_document(doc_type, as_bytes(document))


def reject(doc_type: DocType, document: dict[str, Any] | bytes) -> str:
    raw = document if isinstance(document, bytes) else as_bytes(document)
    with pytest.raises(SchemaError) as info:
        decode_document(doc_type, raw)
    assert info.value.code == "SCHEMA"
    return info.value.detail


def value_at(decoded: object, path: Path) -> object:
    current: Any = decoded
    for key in path:
        current = current[key] if isinstance(key, int) else getattr(current, key)
    return current


# --- the tables match the Structs ----------------------------------------------------------

STRUCTS: list[tuple[type[msgspec.Struct], dict[str, Rule]]] = [
    (Order, ORDER),
    (OrderLine, ORDER_LINE),
    (Payment, PAYMENT),
    (Logistics, LOGISTICS),
]


@pytest.mark.parametrize(("struct", "rules"), STRUCTS, ids=lambda v: getattr(v, "__name__", ""))
def test_spec_covers_every_struct_field(struct, rules):
    fields = msgspec.structs.fields(struct)
    assert [f.encode_name for f in fields] == [f.name for f in fields]  # the standard's names
    assert {f.name for f in fields} == set(rules)
    assert {f.name for f in fields if f.required} == {n for n, r in rules.items() if r.required}


def test_document_types_map_to_their_structs():
    assert {"order": Order, "payment": Payment, "logistics": Logistics} == DOCUMENT_TYPES
    assert [cls.doc_type for cls in (Order, Payment, Logistics)] == [
        "order",
        "payment",
        "logistics",
    ]


# --- the clean example decodes exactly -----------------------------------------------------


def walk(value: object) -> Iterator[object]:
    yield value
    if isinstance(value, msgspec.Struct):
        for name in value.__struct_fields__:
            yield from walk(getattr(value, name))
    elif isinstance(value, list):
        for item in value:
            yield from walk(item)


@pytest.mark.parametrize("doc_type", list(SPEC))
def test_example_decodes_without_any_float(doc_type):
    decoded = decode(doc_type, BUILDERS[doc_type]())
    assert type(decoded) is DOCUMENT_TYPES[doc_type]
    assert not [v for v in walk(decoded) if isinstance(v, float)]
    for _, path, rule in (f for f in all_fields() if f[0] == doc_type):
        if rule.kind == "amount":
            assert type(value_at(decoded, path)) is Amount


def test_example_order_values():
    order = decode("order", order_dict())
    assert isinstance(order, Order)
    assert (order.guid, order.appType, order.appTime, order.appStatus) == (
        "6F1E7C7A-8B1D-4E7E-9B4A-0C2D7E1F3A01",
        "1",
        "20261124111500",
        "2",
    )
    assert (order.orderType, order.orderNo, order.ebpCode) == (
        "I",
        "SO20261124000001",
        "3301980ABC",
    )
    assert order.goodsValue == Decimal("487.5")
    assert str(order.goodsValue) == "487.50"  # the literal text, no float rounding
    assert (order.freight, order.discount, order.taxTotal) == (Decimal(10), Decimal(0), Decimal(0))
    assert order.acturalPaid == Decimal("497.5")
    assert order.buyerName == "王芳张"
    assert order.consigneeAddress == "浙江省杭州市西湖区文三路1号"
    assert [line.gnum for line in order.orderList] == [1, 2]
    first = order.orderList[0]
    assert (first.qty, first.price, first.totalPrice) == (Decimal(2), Decimal(199), Decimal(398))
    assert (first.unit, first.currency, first.country, first.itemNo) == (
        "011",
        "142",
        "116",
        "SKU0",
    )
    assert (first.itemDescribe, first.barCode, first.note) == (None, None, None)


def test_example_payment_values():
    payment = decode("payment", payment_dict())
    assert isinstance(payment, Payment)
    assert payment.amountPaid == Decimal("497.5")
    assert (payment.payTime, payment.payerIdType, payment.telephone) == (
        "20261124111458",
        "1",
        "13149827706",
    )
    assert payment.note is None


def test_example_logistics_values():
    logistics = decode("logistics", logistics_dict())
    assert isinstance(logistics, Logistics)
    assert (logistics.freight, logistics.insuredFee, logistics.weight) == (
        Decimal(10),
        Decimal(0),
        Decimal("1.2"),
    )
    assert logistics.packNo == 1
    assert (logistics.ebpCode, logistics.billNo, logistics.goodsInfo) == (None, None, None)


# --- required, optional, unknown -----------------------------------------------------------


def required_fields() -> list[Any]:
    """Derived from the Structs themselves, so no required field can be left out."""
    params = []
    for doc_type, struct in DOCUMENT_TYPES.items():
        params += [
            pytest.param(doc_type, (f.name,), id=f"{doc_type}-{f.name}")
            for f in msgspec.structs.fields(struct)
            if f.required
        ]
    params += [
        pytest.param("order", (*LINE, f.name), id=f"order-line-{f.name}")
        for f in msgspec.structs.fields(OrderLine)
        if f.required
    ]
    return params


def optional_fields() -> list[Any]:
    params = []
    for doc_type, struct in DOCUMENT_TYPES.items():
        params += [
            pytest.param(doc_type, (f.name,), id=f"{doc_type}-{f.name}")
            for f in msgspec.structs.fields(struct)
            if not f.required
        ]
    params += [
        pytest.param("order", (*LINE, f.name), id=f"order-line-{f.name}")
        for f in msgspec.structs.fields(OrderLine)
        if not f.required
    ]
    return params


@pytest.mark.parametrize(("doc_type", "path"), required_fields())
def test_required_field_missing(doc_type, path):
    detail = reject(doc_type, build(doc_type, path, DROP))
    where = "" if len(path) == 1 else f" - at `{json_path(path[:-1])}`"
    assert detail == f"Object missing required field `{path[-1]}`{where}"


def test_required_fields_match_the_tables():
    # a guard for the parametrization itself (64 fields: header 3 x 4, order 21, line 9, ...)
    assert len(required_fields()) == sum(rule.required for _, _, rule in all_fields()) == 64


@pytest.mark.parametrize(("doc_type", "path"), optional_fields())
def test_optional_field_absent_is_none(doc_type, path):
    assert value_at(decode(doc_type, build(doc_type, path, DROP)), path) is None


@pytest.mark.parametrize(("doc_type", "path"), optional_fields())
def test_optional_field_null_is_none(doc_type, path):
    assert value_at(decode(doc_type, build(doc_type, path, None)), path) is None


@pytest.mark.parametrize("doc_type", list(SPEC))
def test_unknown_fields_are_ignored(doc_type):
    document = BUILDERS[doc_type](
        isBuyAndPut="1",
        areaId=7,
        assureCode=None,
        extension={"nested": [1, 2.5, {"deep": True}]},
        GUID="not the guid",
    )
    if doc_type == "order":
        document["orderList"][0]["gcode"] = "0402100000"
    assert decode(doc_type, document) == decode(doc_type, BUILDERS[doc_type]())


def test_order_logistics_no_is_not_an_order_field():
    order = decode("order", order_dict(logisticsNo="LN1"))
    assert not hasattr(order, "logisticsNo")


# --- wrong types ---------------------------------------------------------------------------

JSON_TYPE = {"max": "str", "exact": "str", "time": "str", "int": "int", "list": "array"}


def type_error(rule: Rule, got: str) -> str:
    if rule.kind == "amount":
        return f"expected a decimal amount as a string or number, got {got}"
    expected = JSON_TYPE.get(rule.kind) or type(rule.values[0]).__name__
    if not rule.required:
        expected += " | null"
    return f"Expected `{expected}`, got `{got}`"


WRONG = {"str": (12, "int"), "int": ("1", "str"), "array": ({}, "object")}


@pytest.mark.parametrize(("doc_type", "path", "rule"), cases(lambda r: r.kind != "amount"))
def test_wrong_type(doc_type, path, rule):
    expected = JSON_TYPE.get(rule.kind) or type(rule.values[0]).__name__
    value, got = WRONG[expected]
    detail = reject(doc_type, build(doc_type, path, value))
    assert detail == f"{type_error(rule, got)} - at `{json_path(path)}`"


OTHER_WRONG = [(True, "bool"), ([], "array"), (1.5, "float")]


@pytest.mark.parametrize(
    ("doc_type", "path", "rule", "value", "got"),
    [
        pytest.param(*case.values, value, got, id=f"{case.id}-{got}")
        for case in cases(lambda r: r.kind != "amount")
        for value, got in OTHER_WRONG
        if not (case.values[2].kind == "list" and got == "array")  # an array is right there
    ],
)
def test_other_wrong_types(doc_type, path, rule, value, got):
    detail = reject(doc_type, build(doc_type, path, value))
    assert detail == f"{type_error(rule, got)} - at `{json_path(path)}`"


@pytest.mark.parametrize(("doc_type", "path", "rule"), cases(lambda r: r.required))
def test_required_field_null(doc_type, path, rule):
    got = "NoneType" if rule.kind == "amount" else "null"
    detail = reject(doc_type, build(doc_type, path, None))
    assert detail == f"{type_error(rule, got)} - at `{json_path(path)}`"


def test_order_line_not_an_object():
    assert reject("order", order_dict(orderList=["line"])) == (
        "Expected `object`, got `str` - at `$.orderList[0]`"
    )


# --- string lengths ------------------------------------------------------------------------

STRINGS = cases(lambda r: r.kind in {"max", "exact"})


@pytest.mark.parametrize(("doc_type", "path", "rule"), STRINGS)
def test_string_of_max_length_passes(doc_type, path, rule):
    value = "X" * rule.size
    assert value_at(decode(doc_type, build(doc_type, path, value)), path) == value


@pytest.mark.parametrize(("doc_type", "path", "rule"), STRINGS)
def test_string_of_max_length_counts_characters_not_bytes(doc_type, path, rule):
    value = "张" * rule.size  # 3 bytes each in UTF-8
    assert value_at(decode(doc_type, build(doc_type, path, value)), path) == value


@pytest.mark.parametrize(("doc_type", "path", "rule"), STRINGS)
def test_string_over_max_length_fails(doc_type, path, rule):
    detail = reject(doc_type, build(doc_type, path, "X" * (rule.size + 1)))
    assert detail == f"Expected `str` of length <= {rule.size} - at `{json_path(path)}`"


@pytest.mark.parametrize(("doc_type", "path", "rule"), cases(lambda r: r.kind == "max"))
def test_short_string_passes(doc_type, path, rule):
    assert value_at(decode(doc_type, build(doc_type, path, "X")), path) == "X"


@pytest.mark.parametrize(
    ("doc_type", "path", "rule"), cases(lambda r: r.kind == "exact" and r.required)
)
def test_exact_length_string_one_short_fails(doc_type, path, rule):
    detail = reject(doc_type, build(doc_type, path, "X" * (rule.size - 1)))
    assert detail == f"Expected `str` of length >= {rule.size} - at `{json_path(path)}`"


def test_optional_exact_length_one_short_fails():
    detail = reject("order", order_dict(consigneeDistrict="33010"))
    assert detail == "Expected `str` matching regex '^(?:.{6})?$' - at `$.consigneeDistrict`"


def test_optional_exact_length_accepts_six():
    order = decode("order", order_dict(consigneeDistrict="330106"))
    assert isinstance(order, Order)
    assert order.consigneeDistrict == "330106"


@pytest.mark.parametrize(
    ("doc_type", "path", "rule"), cases(lambda r: r.kind in {"max", "exact"} and r.required)
)
def test_empty_required_string_fails(doc_type, path, rule):
    detail = reject(doc_type, build(doc_type, path, ""))
    shortest = rule.size if rule.kind == "exact" else 1
    assert detail == f"Expected `str` of length >= {shortest} - at `{json_path(path)}`"


@pytest.mark.parametrize(
    ("doc_type", "path", "rule"), cases(lambda r: r.kind in {"max", "exact"} and not r.required)
)
def test_empty_optional_string_passes(doc_type, path, rule):
    assert value_at(decode(doc_type, build(doc_type, path, "")), path) == ""


# --- amounts -------------------------------------------------------------------------------

AMOUNTS = cases(lambda r: r.kind == "amount")
PLACEHOLDER = "@@amount@@"

# (JSON literal as written in the record, the exact decimal it stands for)
GOOD_AMOUNTS = [
    ('"497.50"', "497.50"),
    ("497.50", "497.50"),
    ("497.5", "497.5"),
    ('"497.5"', "497.5"),
    ("0", "0"),
    ('"0"', "0"),
    ('"0.00000"', "0.00000"),
    ("0.1", "0.1"),
    ("0.12345", "0.12345"),
    ('"0.12345"', "0.12345"),
    ("12345678901234", "12345678901234"),
    ('"12345678901234"', "12345678901234"),
    ("99999999999999.99999", "99999999999999.99999"),  # not representable as a float
    ('"99999999999999.99999"', "99999999999999.99999"),
    ("1.0", "1.0"),
]

NOT_PLAIN = (
    "expected a non-negative decimal amount in plain notation with at most "
    "14 integer and 5 fraction digits (N19,5), got {!r}"
)
BAD_AMOUNTS = [
    ("0.123456", NOT_PLAIN.format("0.123456")),
    ('"0.123456"', NOT_PLAIN.format("0.123456")),
    ("123456789012345", NOT_PLAIN.format("123456789012345")),
    ('"123456789012345"', NOT_PLAIN.format("123456789012345")),
    ('"123456789012345.5"', NOT_PLAIN.format("123456789012345.5")),
    ("99999999999999999999999999", NOT_PLAIN.format("99999999999999999999999999")),
    ("1e2", NOT_PLAIN.format("1e2")),
    ("4.975E2", NOT_PLAIN.format("4.975E2")),
    ('"1E+2"', NOT_PLAIN.format("1E+2")),
    ('"1e2"', NOT_PLAIN.format("1e2")),
    ("-1", NOT_PLAIN.format("-1")),
    ('"-1"', NOT_PLAIN.format("-1")),
    ("-0.5", NOT_PLAIN.format("-0.5")),
    ('"-497.50"', NOT_PLAIN.format("-497.50")),
    ('""', NOT_PLAIN.format("")),
    ('" 1"', NOT_PLAIN.format(" 1")),
    ('"1 "', NOT_PLAIN.format("1 ")),
    ('"1,000"', NOT_PLAIN.format("1,000")),
    ('"1_000"', NOT_PLAIN.format("1_000")),
    ('"+1"', NOT_PLAIN.format("+1")),
    ('"1."', NOT_PLAIN.format("1.")),
    ('".5"', NOT_PLAIN.format(".5")),
    ('"0x10"', NOT_PLAIN.format("0x10")),
    ('"NaN"', NOT_PLAIN.format("NaN")),
    ('"Infinity"', NOT_PLAIN.format("Infinity")),
    ('"\uff14\uff19\uff17"', NOT_PLAIN.format("\uff14\uff19\uff17")),  # full-width 497
    ('"\u0664\u0669\u0667"', NOT_PLAIN.format("\u0664\u0669\u0667")),  # Arabic-Indic 497
    ("true", "expected a decimal amount as a string or number, got bool"),
    ("false", "expected a decimal amount as a string or number, got bool"),
    ("{}", "expected a decimal amount as a string or number, got dict"),
    ('{"value": "1"}', "expected a decimal amount as a string or number, got dict"),
    ('["1"]', "expected a decimal amount as a string or number, got list"),
]


def with_amount(doc_type: DocType, path: Path, literal: str) -> bytes:
    raw = as_bytes(build(doc_type, path, PLACEHOLDER))
    return raw.replace(json.dumps(PLACEHOLDER).encode(), literal.encode())


@pytest.mark.parametrize(("doc_type", "path", "rule"), AMOUNTS)
@pytest.mark.parametrize(("literal", "text"), GOOD_AMOUNTS)
def test_amount_decodes_exactly(doc_type, path, rule, literal, text):
    amount = value_at(decode_document(doc_type, with_amount(doc_type, path, literal)), path)
    assert type(amount) is Amount
    assert isinstance(amount, Decimal)
    assert amount == Decimal(text)
    assert str(amount) == text


@pytest.mark.parametrize(("doc_type", "path", "rule"), AMOUNTS)
@pytest.mark.parametrize(("literal", "expected"), BAD_AMOUNTS)
def test_amount_rejected(doc_type, path, rule, literal, expected):
    detail = reject(doc_type, with_amount(doc_type, path, literal))
    assert detail == f"{expected} - at `{json_path(path)}`"


def test_amount_string_and_number_forms_are_equal():
    as_string = decode("order", order_dict(acturalPaid="497.50"))
    as_number = decode_document("order", with_amount("order", ("acturalPaid",), "497.5"))
    assert isinstance(as_string, Order)
    assert isinstance(as_number, Order)
    assert as_string.acturalPaid == as_number.acturalPaid == Decimal("497.5")


def integer_parts() -> st.SearchStrategy[str]:
    return st.integers(min_value=0, max_value=10**14 - 1).map(str)


def fraction_parts(min_size: int = 0, max_size: int = 5) -> st.SearchStrategy[str]:
    digits = st.text(alphabet="0123456789", min_size=min_size, max_size=max_size)
    return digits.map(lambda d: f".{d}" if d else "")


@settings(max_examples=300, deadline=None)
@given(integer=integer_parts(), fraction=fraction_parts(), quoted=st.booleans())
def test_any_valid_amount_text_round_trips(integer, fraction, quoted):
    text = integer + fraction
    literal = json.dumps(text) if quoted else text
    order = decode_document("order", with_amount("order", ("acturalPaid",), literal))
    assert isinstance(order, Order)
    assert type(order.acturalPaid) is Amount
    assert order.acturalPaid == Decimal(text)
    assert str(order.acturalPaid) == text


@settings(max_examples=100, deadline=None)
@given(
    integer=st.integers(min_value=10**14, max_value=10**20).map(str),
    fraction=fraction_parts(),
    quoted=st.booleans(),
)
def test_any_amount_of_15_or_more_integer_digits_is_rejected(integer, fraction, quoted):
    text = integer + fraction
    literal = json.dumps(text) if quoted else text
    detail = reject("order", with_amount("order", ("acturalPaid",), literal))
    assert detail == f"{NOT_PLAIN.format(text)} - at `$.acturalPaid`"


@settings(max_examples=100, deadline=None)
@given(integer=integer_parts(), fraction=fraction_parts(6, 12), quoted=st.booleans())
def test_any_amount_of_6_or_more_fraction_digits_is_rejected(integer, fraction, quoted):
    text = integer + fraction
    literal = json.dumps(text) if quoted else text
    detail = reject("order", with_amount("order", ("acturalPaid",), literal))
    assert detail == f"{NOT_PLAIN.format(text)} - at `$.acturalPaid`"


# --- enumerations --------------------------------------------------------------------------


@pytest.mark.parametrize("doc_type", list(SPEC))
@pytest.mark.parametrize("app_type", ["1", "2", "3"])
def test_app_type_accepted(doc_type, app_type):
    assert decode(doc_type, BUILDERS[doc_type](appType=app_type)).appType == app_type


@pytest.mark.parametrize("doc_type", list(SPEC))
@pytest.mark.parametrize("status", ["1", "2"])
def test_app_status_draft_and_declared_accepted(doc_type, status):
    # a draft ("1") is a valid document: the DRAFT rejection is another stage's job
    assert decode(doc_type, BUILDERS[doc_type](appStatus=status)).appStatus == status


ENUM_REJECTS: list[tuple[str, object]] = [
    ("appType", "4"),
    ("appType", "0"),
    ("appType", ""),
    ("appType", "11"),
    ("appStatus", "3"),
    ("appStatus", "0"),
    ("appStatus", ""),
    ("currency", "840"),
    ("currency", "CNY"),
    ("currency", "142 "),
    ("currency", ""),
]


@pytest.mark.parametrize("doc_type", list(SPEC))
@pytest.mark.parametrize(("field", "value"), ENUM_REJECTS)
def test_header_enum_rejected(doc_type, field, value):
    detail = reject(doc_type, BUILDERS[doc_type](**{field: value}))
    assert detail == f"Invalid enum value {value!r} - at `$.{field}`"


@pytest.mark.parametrize("doc_type", list(SPEC))
@pytest.mark.parametrize(("field", "value"), [("appType", 1), ("appStatus", 2), ("currency", 142)])
def test_header_enum_as_number_rejected(doc_type, field, value):
    detail = reject(doc_type, BUILDERS[doc_type](**{field: value}))
    assert detail == f"Expected `str`, got `int` - at `$.{field}`"


@pytest.mark.parametrize("value", ["840", "CNY", ""])
def test_order_line_currency_other_than_142_rejected(value):
    detail = reject("order", build("order", (*LINE, "currency"), value))
    assert detail == f"Invalid enum value {value!r} - at `$.orderList[0].currency`"


def test_order_second_line_currency_rejected():
    detail = reject("order", build("order", ("orderList", 1, "currency"), "840"))
    assert detail == "Invalid enum value '840' - at `$.orderList[1].currency`"


@pytest.mark.parametrize("value", ["E", "i", "", "II"])
def test_order_type_other_than_i_rejected(value):
    assert reject("order", order_dict(orderType=value)) == (
        f"Invalid enum value {value!r} - at `$.orderType`"
    )


@pytest.mark.parametrize(
    ("doc_type", "field"), [("order", "buyerIdType"), ("payment", "payerIdType")]
)
@pytest.mark.parametrize("value", ["2", "0", ""])
def test_id_type_other_than_1_rejected(doc_type, field, value):
    detail = reject(doc_type, BUILDERS[doc_type](**{field: value}))
    assert detail == f"Invalid enum value {value!r} - at `$.{field}`"


@pytest.mark.parametrize(
    ("doc_type", "field"), [("order", "buyerIdType"), ("payment", "payerIdType")]
)
def test_id_type_1_accepted(doc_type, field):
    assert getattr(decode(doc_type, BUILDERS[doc_type](**{field: "1"})), field) == "1"


def test_pack_no_1_accepted():
    logistics = decode("logistics", logistics_dict(packNo=1))
    assert isinstance(logistics, Logistics)
    assert logistics.packNo == 1


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (2, "Invalid enum value 2"),
        (0, "Invalid enum value 0"),
        (-1, "Invalid enum value -1"),
        ("1", "Expected `int`, got `str`"),
        (1.0, "Expected `int`, got `float`"),
        (True, "Expected `int`, got `bool`"),
    ],
)
def test_pack_no_other_than_1_rejected(value, expected):
    assert reject("logistics", logistics_dict(packNo=value)) == f"{expected} - at `$.packNo`"


# --- timestamps ----------------------------------------------------------------------------

TIMESTAMP_FIELDS = [
    ("order", "appTime"),
    ("payment", "appTime"),
    ("logistics", "appTime"),
    ("payment", "payTime"),
]
NOT_TIMESTAMP = "Expected `str` matching regex '^[0-9]{14}$'"
BAD_TIMESTAMPS = [
    ("2026112411213", NOT_TIMESTAMP),  # 13 characters
    ("202611241121300", NOT_TIMESTAMP),  # 15 characters
    ("", NOT_TIMESTAMP),
    ("2026112411213a", NOT_TIMESTAMP),
    ("abcdefghijklmn", NOT_TIMESTAMP),
    ("2026-11-24 11:", NOT_TIMESTAMP),
    (" 0261124112130", NOT_TIMESTAMP),
    ("20261332000000", "not real"),  # month 13
    ("20260001000000", "not real"),  # month 0
    ("20260230120000", "not real"),  # 30 February
    ("20270229120000", "not real"),  # 29 February, not a leap year
    ("20260100120000", "not real"),  # day 0
    ("20261124246000", "not real"),
    ("20261124240000", "not real"),  # hour 24
    ("20261124126000", "not real"),  # minute 60
    ("20261124120060", "not real"),  # second 60
    ("00000101000000", "not real"),  # year 0
    ("20261124112130\n", "not real"),  # passes `$` of the regex, not the time parser
    ("".join(chr(0xFF10 + int(d)) for d in "20261124112130"), NOT_TIMESTAMP),  # full-width
]


@pytest.mark.parametrize(("doc_type", "field"), TIMESTAMP_FIELDS)
@pytest.mark.parametrize(("value", "expected"), BAD_TIMESTAMPS)
def test_timestamp_rejected(doc_type, field, value, expected):
    detail = reject(doc_type, BUILDERS[doc_type](**{field: value}))
    if expected == "not real":
        expected = f"`{field}` {value!r} is not a real time (YYYYMMDDhhmmss)"
    assert detail == f"{expected} - at `$.{field}`"


@pytest.mark.parametrize(("doc_type", "field"), TIMESTAMP_FIELDS)
@pytest.mark.parametrize(
    "value", ["20261124112130", "20280229235959", "20261231235959", "20260101000000"]
)
def test_timestamp_accepted(doc_type, field, value):
    assert getattr(decode(doc_type, BUILDERS[doc_type](**{field: value})), field) == value


@pytest.mark.parametrize(("doc_type", "field"), TIMESTAMP_FIELDS)
def test_timestamp_as_number_rejected(doc_type, field):
    detail = reject(doc_type, BUILDERS[doc_type](**{field: 20261124112130}))
    assert detail == f"Expected `str`, got `int` - at `$.{field}`"


# --- order lines ---------------------------------------------------------------------------


def order_with_lines(gnums: list[int]) -> dict[str, Any]:
    document = order_dict()
    line = document["orderList"][0]
    document["orderList"] = [{**line, "gnum": gnum} for gnum in gnums]
    return document


def test_order_without_lines_rejected():
    assert reject("order", order_dict(orderList=[])) == (
        "expected 1 to 99 goods lines, got 0 - at `$.orderList`"
    )


def test_order_of_one_line_accepted():
    order = decode("order", order_with_lines([1]))
    assert isinstance(order, Order)
    assert len(order.orderList) == 1


def test_order_of_99_lines_accepted():
    order = decode("order", order_with_lines(list(range(1, 100))))
    assert isinstance(order, Order)
    assert [line.gnum for line in order.orderList] == list(range(1, 100))


def test_order_of_100_lines_rejected():
    assert reject("order", order_with_lines(list(range(1, 101)))) == (
        "Expected `int` <= 99 - at `$.orderList[99].gnum`"
    )


def test_order_of_100_lines_with_small_numbers_rejected():
    assert reject("order", order_with_lines([*range(1, 100), 99])) == (
        "expected 1 to 99 goods lines, got 100 - at `$.orderList`"
    )


@pytest.mark.parametrize(
    ("gnums", "got", "index"),
    [([2], 2, 0), ([2, 1], 2, 0), ([1, 3], 3, 1), ([1, 1], 1, 1), ([1, 2, 2], 2, 2)],
)
def test_line_numbers_not_consecutive_from_1_rejected(gnums, got, index):
    assert reject("order", order_with_lines(gnums)) == (
        f"expected line numbers consecutive from 1, got {got} - at `$.orderList[{index}].gnum`"
    )


@pytest.mark.parametrize(
    ("gnum", "expected"), [(0, "Expected `int` >= 1"), (-1, "Expected `int` >= 1")]
)
def test_line_number_out_of_range_rejected(gnum, expected):
    assert reject("order", order_with_lines([gnum])) == f"{expected} - at `$.orderList[0].gnum`"
