"""The log filter (streams.logmask): personal data, payload bytes and the SASL password never
reach a handler's output, whatever form they come in; the rest of a line is kept."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import orjson
import pytest

from loadtest.generator import generate
from loadtest.ids import full_width
from loadtest.truth import FaultMix
from schemas.ceb_xml import encode_message
from schemas.codec import decode_document
from schemas.documents import DOCUMENT_TYPES, PERSONAL_FIELDS
from schemas.errors import SchemaError
from streams.logmask import MASK, PersonalDataFilter, install, mask
from streams.settings import Settings
from tests.factories import order as make_order

NAME, ID, PHONE = "欧阳娜娜", "11010519491231002X", "13812345678"


def test_the_personal_fields_are_fields_of_the_documents() -> None:
    fields = {name for kind in DOCUMENT_TYPES.values() for name in kind.__struct_fields__}
    assert set(PERSONAL_FIELDS) <= fields
    for name in ("buyerName", "buyerIdNumber", "payerName", "payerIdNumber", "consignee"):
        assert name in PERSONAL_FIELDS
    for name in ("consigneeAddress", "consigneeTelephone", "buyerTelephone", "telephone"):
        assert name in PERSONAL_FIELDS


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (  # JSON
            f'{{"orderNo":"SO-1","buyerName":"{NAME}","buyerIdNumber":"{ID}","goodsValue":"10"}}',
            '{"orderNo":"SO-1","buyerName":"***","buyerIdNumber":"***","goodsValue":"10"}',
        ),
        (  # JSON with spaces, a number and null
            f'{{"consigneeTelephone": {PHONE}, "telephone": null, "payerName" : "{NAME}"}}',
            '{"consigneeTelephone": ***, "telephone": ***, "payerName" : "***"}',
        ),
        (  # JSON inside a JSON string
            f'"{{\\"consignee\\":\\"{NAME}\\",\\"orderNo\\":\\"SO-2\\"}}"',
            '"{\\"consignee\\":\\"***\\",\\"orderNo\\":\\"SO-2\\"}"',
        ),
        (  # a struct's repr
            f"Order(guid='G-1', buyerName='{NAME}', consigneeAddress='北京市 东城区', note=None)",
            "Order(guid='G-1', buyerName='***', consigneeAddress='***', note=None)",
        ),
        (  # a dict's repr
            f"{{'payerIdNumber': '{ID}', 'amountPaid': '88.00'}}",
            "{'payerIdNumber': '***', 'amountPaid': '88.00'}",
        ),
        (  # CEB XML, prefixed or not
            f"<ceb:buyerName>{NAME}</ceb:buyerName><consignee>张 三</consignee><ceb:orderNo>"
            "SO-3</ceb:orderNo>",
            "<ceb:buyerName>***</ceb:buyerName><consignee>***</consignee><ceb:orderNo>"
            "SO-3</ceb:orderNo>",
        ),
        (  # a divert reason's fields
            '"fields":{"consignee":["王伟","王 伟"],"consigneeTelephone":["1","2"]},"code":"X"',
            '"fields":{"consignee":[***],"consigneeTelephone":[***]},"code":"X"',
        ),
        (  # name=value
            f"buyerName={NAME} orderNo=SO-4",
            "buyerName=*** orderNo=SO-4",
        ),
        (  # bytes: a record batch, whatever is in it
            'Request 7: ProduceRequest(records=b\'\\x00\\x01{"a":"\\xe6\\xac\\xa7"}\', acks=-1)',
            "Request 7: ProduceRequest(records=b'<masked>', acks=-1)",
        ),
        ('key=b"it\'s"', "key=b'<masked>'"),
        # anywhere: IDs (18 characters, lower-case x, 15 digits), mobiles, landlines
        (f"buyer {ID} and 11010519491231002x, old 110105491231002.", "buyer *** and ***, old ***."),
        (f"call {PHONE}, +86 {PHONE} or +86-{PHONE}", "call ***, *** or ***"),
        (
            f"full-width {full_width(PHONE)}, {full_width('+86 010-12345678')}",
            f"full-width ***, {full_width('+86')} ***",
        ),
        (f"{full_width(ID[:17])}\uff38 {full_width('(010)12345678')}", "*** ***"),
        ("office 010-12345678, (0755)1234567 or (021) 87654321", "office ***, *** or ***"),
    ],
)
def test_mask(text: str, expected: str) -> None:
    assert mask(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "partition 3 offset 1234567 at 1734567890123 (2025-12-15T08:30:00.123Z)",
        "ticket 3301964J31:20251215123456789 released, revision 2",
        "guid 1F0C9D2E-3A4B-4C5D-8E6F-7A8B9C0D1E2F from 4403169D3W",
        "batch of 5000 records in 12.5 ms; lag 40960; pid 12345; port 65535",
        "connected to 127.0.0.1:9092 over SASL_SSL",
    ],
)
def test_what_is_not_personal_is_kept(text: str) -> None:
    assert mask(text) == text


def test_secrets_are_masked_first() -> None:
    assert mask("token \x00sandan\x00pa55w0rd", ["pa55w0rd"]) == "token \x00sandan\x00***"
    assert mask("nothing to hide", ["", "x" * 3]) == "nothing to hide"


# --- the filter on a handler -------------------------------------------------------------


@pytest.fixture
def logged() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger with one handler writing to a buffer, through the filter."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.addFilter(PersonalDataFilter(["pa55w0rd"]))
    logger = logging.getLogger(f"test.logmask.{id(out)}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    yield logger, out
    logger.removeHandler(handler)


def test_the_message_is_formatted_then_masked(logged: tuple[logging.Logger, io.StringIO]) -> None:
    logger, out = logged
    value = json.dumps({"buyerName": NAME, "orderNo": "SO-9"}, ensure_ascii=False).encode()
    logger.debug("sending %r to %s", value, "cbec.order")
    logger.info("buyer %(id)s called from %(phone)s", {"id": ID, "phone": PHONE})
    logger.warning("auth %s", b"\x00sandan\x00pa55w0rd")
    logger.error("password %s in text", "pa55w0rd")
    assert out.getvalue().splitlines() == [
        "DEBUG sending b'<masked>' to cbec.order",
        "INFO buyer *** called from ***",
        "WARNING auth b'<masked>'",
        "ERROR password *** in text",
    ]


def test_a_document_logged_as_a_struct_is_masked(
    logged: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, out = logged
    order = make_order(orderNo="SO-LOG-1")
    logger.info("stored %s", order)
    text = out.getvalue()
    assert "orderNo='SO-LOG-1'" in text
    for value in (order.buyerName, order.buyerIdNumber, order.consignee, order.consigneeAddress):
        assert value not in text
    assert order.consigneeTelephone not in text and order.buyerTelephone not in text


def test_exceptions_and_stacks_are_masked(logged: tuple[logging.Logger, io.StringIO]) -> None:
    logger, out = logged
    try:
        raise ValueError(f"buyer {ID} of {PHONE} is not allowed")
    except ValueError:
        logger.exception("rejected")
    logger.info("here", stack_info=True)
    text = out.getvalue()
    assert "ValueError: buyer *** of *** is not allowed" in text
    assert "Traceback (most recent call last)" in text
    assert "Stack (most recent call last)" in text
    assert ID not in text and PHONE not in text


def test_a_bad_format_still_shows_masked(logged: tuple[logging.Logger, io.StringIO]) -> None:
    logger, out = logged
    logger.info("one %s two %s", ID)  # noqa: PLE1206 - the bad format is the point
    assert out.getvalue() == f"INFO one %s two %s ('{MASK}',)\n"


def test_the_extra_data_mode_prints_is_masked() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", (), None)
    record.__dict__["data"] = {"phone": PHONE, "n": 3}  # what mode's formatters print
    assert PersonalDataFilter().filter(record)
    shown = {k: repr(v) for k, v in record.__dict__["data"].items()}
    assert shown == {"phone": "'***'", "n": "3"}


def test_install_adds_one_filter_to_each_root_handler() -> None:
    root = logging.getLogger()
    handlers = [logging.StreamHandler(io.StringIO()), logging.StreamHandler(io.StringIO())]
    for handler in handlers:
        root.addHandler(handler)
    try:
        settings = Settings.from_env(
            {
                "SANDAN_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                "SANDAN_KAFKA_SASL_MECHANISM": "PLAIN",
                "SANDAN_KAFKA_SASL_USERNAME": "sandan",
                "SANDAN_KAFKA_SASL_PASSWORD": "pa55w0rd",
            }
        )
        installed = install(settings)
        install(settings)  # again: nothing more
        assert installed.secrets == ("pa55w0rd",)
        for handler in handlers:
            assert [f for f in handler.filters if isinstance(f, PersonalDataFilter)] == [installed]
    finally:
        for handler in handlers:
            root.removeHandler(handler)


# --- every personal value of a generated load, in every form a log could hold it --------


def personal_values(document: dict[str, object]) -> set[str]:
    return {
        value
        for name in PERSONAL_FIELDS
        if isinstance(value := document.get(name), str) and len(value.strip()) >= 2
    }


def forms(value: str) -> set[str]:
    """How a log line may hold ``value``: as it is, JSON-escaped, as bytes' repr."""
    return {value, json.dumps(value)[1:-1], repr(value.encode())[2:-1]}


def test_no_personal_value_of_a_generated_load_survives() -> None:
    plan = generate(21, 200, rate=50, window=8, settle=2, faults=FaultMix.even(0.5))
    checked = 0
    for record in plan.records:
        try:
            raw = orjson.loads(record.value)
        except orjson.JSONDecodeError:
            continue  # planned garbage
        if not isinstance(raw, dict):
            continue
        values = personal_values(raw)
        texts = [
            repr(record.value),
            record.value.decode(),
            json.dumps(record.value.decode()),
            repr(raw),
            f"value={raw!s}",
        ]
        try:
            document = decode_document(record.doc_type, record.value)
        except SchemaError:
            pass
        else:
            texts.append(repr(document))
            texts.append(encode_message(record.doc_type, [document], cop_code="C1").decode())
        for text in texts:
            masked = mask(text)
            leaked = [v for value in values for v in forms(value) if v in masked]
            assert not leaked, (leaked, masked)
        checked += len(values)
    assert checked > 1000
