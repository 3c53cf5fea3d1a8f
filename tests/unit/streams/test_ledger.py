"""The buyer ledger (streams.ledger.decide): the annual limit per buyer and calendar year.

Requests are made by the ticket stage itself (a TicketBook on the example documents), so they
are exactly what the ledger receives; they and the ledger go through msgpack as the engine ships
and stores them.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import msgspec
import pytest

from matchers import Limits
from schemas.codec import encode_json
from schemas.documents import DocType, Document
from schemas.fields import enc_hook
from schemas.outputs import Source
from schemas.receipts import Addressed
from streams.intake import Incoming, validate
from streams.ledger import BuyerLedger, decide
from streams.records import LedgerRequest, Outcome
from streams.tickets import Group, Rules, TicketBook
from streams.timefmt import iso_ms
from tests.factories import as_bytes, logistics_dict, order_dict, payment_dict

RULES = Rules(
    window_ms=10_000,
    retention_ms=100_000,
    released_horizon_ms=1_000_000,
    limits=Limits(),
    max_document_bytes=262144,
)
ANNUAL = Limits().annual_limit
T0 = 1_795_490_400_000
BUYER = "440305198012262283"

_ENCODER = msgspec.msgpack.Encoder(enc_hook=enc_hook)
_REQUEST = msgspec.msgpack.Decoder(LedgerRequest)
_LEDGER = msgspec.msgpack.Decoder(BuyerLedger)
_OUTCOME = msgspec.msgpack.Decoder(Outcome)


def request(
    n: int, value: str, app_time: str = "20261124111500", ebp: str = "3301980ABC"
) -> LedgerRequest:
    """The ledger request of a clean one-item ticket of dutiable ``value`` (freight 0)."""
    order_no = f"SO2026112400{n:04d}"
    line = {**order_dict()["orderList"][0], "qty": "1", "price": value, "totalPrice": value}
    documents: dict[str, dict[str, Any]] = {
        "order": order_dict(
            orderNo=order_no,
            ebpCode=ebp,
            guid=f"00000000-0000-4000-8000-{3 * n:012d}",
            appTime=app_time,
            orderList=[line],
            goodsValue=value,
            freight="0",
            acturalPaid=value,
        ),
        "payment": payment_dict(
            orderNo=order_no,
            ebpCode=ebp,
            guid=f"00000000-0000-4000-8000-{3 * n + 1:012d}",
            amountPaid=value,
        ),
        "logistics": logistics_dict(
            orderNo=order_no, guid=f"00000000-0000-4000-8000-{3 * n + 2:012d}"
        ),
    }
    group = Group(order_no)
    book = TicketBook(RULES, 3, _nothing_stored)  # it decides on the documents it wrote
    for offset, (kind, document) in enumerate(documents.items()):
        incoming = Incoming(kind, None, as_bytes(document), Source(kind, 0, offset, T0))  # type: ignore[arg-type]
        doc = validate(incoming, RULES.max_document_bytes)
        book.on_document(group, incoming, doc, T0)  # type: ignore[arg-type]
    (emitted,) = [item for item in book.emitted if not isinstance(item, Addressed)]
    assert isinstance(emitted, LedgerRequest)
    return _REQUEST.decode(_ENCODER.encode(emitted))


def _nothing_stored(kind: DocType, guid: str) -> Document:
    raise AssertionError(kind, guid)


def run(ledger: BuyerLedger, req: LedgerRequest, now_ms: int = T0 + 1000) -> tuple[Any, Outcome]:
    """decide(), with the ledger and the outcome through msgpack; the decision as JSON."""
    decided = decide(ledger, req, ANNUAL, now_ms)
    assert decided is not None
    decision, outcome = decided
    assert _LEDGER.decode(_ENCODER.encode(ledger)) == ledger
    return json.loads(encode_json(decision)), _OUTCOME.decode(_ENCODER.encode(outcome))


def test_a_release_adds_the_dutiable_value_and_answers_the_ticket() -> None:
    ledger = BuyerLedger()
    req = request(1, "497.50")
    assert (req.ticket_partition, req.buyer, req.year) == (3, BUYER, 2026)
    decision, outcome = run(ledger, req, T0 + 1234)
    assert decision["decision"] == "RELEASE"
    assert decision["decidedAt"] == iso_ms(T0 + 1234) == "2026-11-24T03:20:01.234Z"
    assert "reasons" not in decision and "missing" not in decision
    assert (decision["revision"], decision["dutiableValue"]) == (1, "497.50")
    assert outcome == Outcome("SO20261124000001", "3301980ABC", 1, released=True)
    assert ledger.totals == {2026: Decimal("497.50")}
    assert str(_LEDGER.decode(_ENCODER.encode(ledger)).totals[2026]) == "497.50"


def test_deciding_leaves_the_request_as_it_was() -> None:
    """A stage never changes a message it was given: the request is the same after."""
    ledger = BuyerLedger({2026: Decimal("25600")})
    for req in (request(1, "497.50"), request(2, "300.00")):
        before = _ENCODER.encode(req)
        decided = decide(ledger, req, ANNUAL, T0 + 1000)
        assert decided is not None
        assert _ENCODER.encode(req) == before
        assert decided[0] is not req.decision


def test_the_limit_itself_is_allowed_and_a_cent_more_is_not() -> None:
    ledger = BuyerLedger()
    assert run(ledger, request(1, "20000.00"))[0]["fullTax"] is True
    decision, _ = run(ledger, request(2, "6000.00"))  # 26000.00: exactly the limit
    assert decision["decision"] == "RELEASE"
    decision, outcome = run(ledger, request(3, "0.01"))
    assert decision["decision"] == "DIVERT"
    assert decision["missing"] == []
    assert decision["reasons"] == [
        {
            "code": "ANNUAL_LIMIT_EXCEEDED",
            "detail": "dutiable value 0.01 plus 26000.00 released this year exceeds the annual"
            " limit 26000",
            "fields": {"dutiableValue": ["0.01", "26000.00"]},
        }
    ]
    assert outcome == Outcome("SO20261124000003", "3301980ABC", 1, released=False)
    assert ledger.totals == {2026: Decimal("26000.00")}  # a divert adds nothing


def test_a_divert_keeps_the_ticket_fields_and_full_tax() -> None:
    ledger = BuyerLedger(totals={2026: Decimal("20000")})
    decision, _ = run(ledger, request(1, "6000.01"))
    assert decision["decision"] == "DIVERT"
    assert (decision["dutiableValue"], decision["fullTax"]) == ("6000.01", True)
    assert decision["ticketId"] == "3301980ABC:SO20261124000001"
    assert [reason["code"] for reason in decision["reasons"]] == ["ANNUAL_LIMIT_EXCEEDED"]


def test_each_calendar_year_of_the_order_has_its_own_total() -> None:
    ledger = BuyerLedger()
    assert run(ledger, request(1, "25000", "20261231235959"))[0]["decision"] == "RELEASE"
    # 00:30 on 1 January China time is still 31 December in UTC: the order's year counts
    late = request(2, "25000", "20270101003000")
    assert late.year == 2027
    assert run(ledger, late)[0]["decision"] == "RELEASE"
    assert run(ledger, request(3, "1001", "20271231000000"))[0]["decision"] == "DIVERT"
    assert ledger.totals == {2026: Decimal("25000"), 2027: Decimal("25000")}


@pytest.mark.parametrize(
    ("first", "second", "released"),
    [("20000", "10000", ["RELEASE", "DIVERT"]), ("10000", "20000", ["RELEASE", "DIVERT"])],
)
def test_tickets_of_a_buyer_are_decided_in_the_order_they_arrive(
    first: str, second: str, released: list[str]
) -> None:
    ledger = BuyerLedger()
    decisions = [run(ledger, request(n, value))[0] for n, value in ((1, first), (2, second))]
    assert [d["decision"] for d in decisions] == released
    assert ledger.totals == {2026: Decimal(first)}


def test_another_limit_applies_as_given() -> None:
    ledger = BuyerLedger()
    decided = decide(ledger, request(1, "497.50"), Decimal("497.49"), T0)
    assert decided is not None
    decision, outcome = decided
    assert decision.decision == "DIVERT" and not outcome.released
    assert ledger.totals == {}


def test_decimal_totals_stay_exact() -> None:
    ledger = BuyerLedger()
    for n in range(1, 11):
        run(ledger, request(n, "0.10"))
    assert ledger.totals == {2026: Decimal("1.00")}
    assert str(ledger.totals[2026]) == "1.00"


def test_a_request_consumed_again_is_decided_once() -> None:
    ledger = BuyerLedger()
    first = request(1, "400.00")
    run(ledger, first)
    total = dict(ledger.totals)
    assert decide(ledger, _REQUEST.decode(_ENCODER.encode(first)), ANNUAL, T0 + 2000) is None
    assert ledger.totals == total  # not added twice
    second = request(2, "100.00")
    assert run(ledger, second)[0]["decision"] == "RELEASE"
    assert decide(ledger, second, ANNUAL, T0 + 3000) is None


def test_the_decided_digests_keep_this_year_and_the_last() -> None:
    ledger = BuyerLedger()
    old = request(1, "10.00")
    ledger.decided = {2023: b"x" * 8, 2025: b"y" * 8}
    run(ledger, old)
    assert sorted(ledger.decided) == [2025, 2026]
    assert len(ledger.decided[2026]) == 8


def test_a_request_carries_when_its_ticket_completed() -> None:
    assert request(1, "10.00").at == T0  # its last document's arrival
