"""Lookups: the ticket stage's decision log (streams.tickets), the answers built from a stored
group or buyer ledger with personal data masked (streams.lookup), the committed-only read
(streams.store.Store.committed), and answering on any worker: locally, forwarded to the owner
once, or 503 (streams.owners), over real sockets with the group's description faked.

The tickets are driven by tests/unit/streams/test_tickets.py's Driver (SandanPipeline on temporary
stores, the groups read as they were committed; window 10 s, retention 100 s, released horizon
1,000 s); T0 is 2026-11-24T03:20:00.000Z.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import msgspec
import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer

from schemas.documents import PERSONAL_FIELDS
from schemas.fields import enc_hook
from schemas.keys import murmur2_partition
from streams import lookup
from streams.intake import Origin
from streams.ledger import BuyerLedger
from streams.lookup import (
    BadLookupError,
    china_year,
    mask_buyer,
    mask_field,
    parse_buyer,
    parse_ticket_id,
    parse_year,
    quota_answer,
    ticket_answer,
)
from streams.metrics import worker_url
from streams.owners import (
    FORWARDED,
    Lookups,
    Owners,
    OwnersUnavailableError,
    lookup_path,
    owners_of,
)
from streams.records import Record
from streams.settings import Settings
from streams.store import Store
from streams.tickets import (
    MAX_LOGGED_DECISIONS,
    OPEN,
    Decided,
    Group,
    Parked,
    Released,
    StoredDoc,
    Ticket,
)
from streams.timefmt import iso_ms
from tests.factories import as_bytes, logistics_dict, order_dict, payment_dict
from tests.unit.streams.harness import PipelineHarness
from tests.unit.streams.test_tickets import (
    BUYER,
    EBP,
    G_LOGISTICS,
    G_ORDER,
    G_PAYMENT,
    ORDER_NO,
    OTHER_EBP,
    RETENTION,
    RULES,
    T0,
    TICKET,
    WINDOW,
    Driver,
    codes,
    guid,
    single_item,
)

URL = "http://w1:6066"
PARTITION = 3
HORIZON = RULES.released_horizon_ms
LIMIT = Decimal(26000)
_ENCODE = msgspec.msgpack.Encoder(enc_hook=enc_hook).encode


def answer(driver: Driver, ebp: str = EBP, order_no: str = ORDER_NO) -> dict[str, Any] | None:
    """The lookup's JSON answer for the driver's group, as a client reads it."""
    found = ticket_answer(
        driver.group(order_no), driver.raw(order_no), ebp, order_no, PARTITION, URL
    )
    return None if found is None else json.loads(msgspec.json.encode(found))


def log(driver: Driver, ebp: str = EBP) -> list[Decided]:
    ticket = driver.ticket(ebp)
    assert ticket is not None
    return ticket.decisions


def decisions(found: dict[str, Any] | None) -> list[tuple[int, str, list[str], str]]:
    assert found is not None
    return [
        (d["revision"], d["decision"], d["reasons"], d["decidedAt"]) for d in found["decisions"]
    ]


def at(ms: int) -> str:
    return iso_ms(ms)


# The example documents' fields as a lookup shows them (header fields apart, nulls left out).
ORDER_FIELDS = {
    "orderType": "I",
    "orderNo": ORDER_NO,
    "ebpCode": EBP,
    "ebpName": "Platform 3301980ABC",
    "ebcCode": "3301960XYZ",
    "ebcName": "Shop Co.",
    "goodsValue": "487.50",
    "freight": "10.00",
    "discount": "0.00",
    "taxTotal": "0.00",
    "acturalPaid": "497.50",
    "currency": "142",
    "buyerRegNo": "*******",
    "buyerName": "王*",
    "buyerTelephone": "*******7706",
    "buyerIdType": "1",
    "buyerIdNumber": "**************2283",
    "payCode": "4403169D3W",
    "payName": "Pay Co.",
    "payTransactionId": "PAY9FDCC88713814260AE65",
    "consignee": "王*",
    "consigneeTelephone": "*******7706",
    "consigneeAddress": "浙江省***",
    "orderList": [
        {
            "gnum": 1,
            "itemNo": "SKU0",
            "itemName": "奶粉",
            "gmodel": "1 unit",
            "unit": "011",
            "qty": "2",
            "price": "199.00",
            "totalPrice": "398.00",
            "currency": "142",
            "country": "116",
        },
        {
            "gnum": 2,
            "itemNo": "SKU1",
            "itemName": "面膜",
            "gmodel": "1 unit",
            "unit": "011",
            "qty": "1",
            "price": "89.50",
            "totalPrice": "89.50",
            "currency": "142",
            "country": "116",
        },
    ],
}
PAYMENT_FIELDS = {
    "payCode": "4403169D3W",
    "payName": "Pay Co.",
    "payTransactionId": "PAY9FDCC88713814260AE65",
    "orderNo": ORDER_NO,
    "ebpCode": EBP,
    "ebpName": "Platform 3301980ABC",
    "payerIdType": "1",
    "payerIdNumber": "**************2283",
    "payerName": "王*",
    "telephone": "*******7706",
    "amountPaid": "497.50",
    "currency": "142",
    "payTime": "20261124111458",
}
LOGISTICS_FIELDS = {
    "logisticsCode": "31222699S7",
    "logisticsName": "Express Co.",
    "logisticsNo": "LND69C6ADD64A44B6E",
    "orderNo": ORDER_NO,
    "freight": "10.00",
    "insuredFee": "0.00",
    "currency": "142",
    "weight": "1.2",
    "packNo": 1,
    "consignee": "王*",
    "consigneeAddress": "浙江省***",
    "consigneeTelephone": "*******7706",
}
PERSONAL_VALUES = (  # the examples' personal data: never in an answer
    "440305198012262283",
    "王芳张",
    "13149827706",
    "浙江省杭州市西湖区文三路1号",
    "u262283",
)


def version(
    guid_: str, app_time: str, fields: dict[str, Any], state: str = "stored", app_type: str = "1"
) -> dict[str, Any]:
    return {
        "guid": guid_,
        "appType": app_type,
        "appTime": app_time,
        "appStatus": "2",
        "format": "json",
        "copCode": None,
        "state": state,
        "fields": fields,
    }


ORDER_V1 = version(G_ORDER, "20261124111500", ORDER_FIELDS)
PAYMENT_V1 = version(G_PAYMENT, "20261124111502", PAYMENT_FIELDS)
LOGISTICS_V1 = version(G_LOGISTICS, "20261124112130", LOGISTICS_FIELDS)


# -- every status ------------------------------------------------------------------------------


def test_a_released_ticket_shows_everything_masked_and_its_ledger_decision() -> None:
    driver = Driver(auto_ledger=False)
    driver.clean()
    assert answer(driver)["status"] == "pending"  # type: ignore[index]
    driver.settle(T0 + 4000)  # the outcome comes back 2 s after completion
    found = answer(driver)
    assert found == {
        "ticketId": TICKET,
        "status": "released",
        "revision": 1,
        "firstSeenAt": "2026-11-24T03:20:00.000Z",
        "completedAt": "2026-11-24T03:20:02.000Z",
        "windowClosesAt": None,  # a released ticket's window is gone
        "expiresAt": "2026-11-24T03:21:40.000Z",
        "missing": [],
        "documents": {"order": [ORDER_V1], "payment": [PAYMENT_V1], "logistics": [LOGISTICS_V1]},
        "decisions": [
            {"revision": 1, "decision": "RELEASE", "reasons": [], "decidedAt": at(T0 + 4000)}
        ],
        "reviews": [],
        "remembered": {
            "logisticsCode": "31222699S7",
            "logisticsNo": "LND69C6ADD64A44B6E",
            "until": "2026-11-24T03:36:40.000Z",
            "guidsSeen": 3,
        },
        "partition": PARTITION,
        "servedBy": URL,
    }
    text = json.dumps(found, ensure_ascii=False)
    assert not [value for value in PERSONAL_VALUES if value in text]


def test_an_incomplete_ticket_is_open_with_its_window() -> None:
    driver = Driver()
    driver.order(T0)
    found = answer(driver)
    assert found is not None
    assert (found["status"], found["revision"], found["missing"]) == (
        "open",
        0,
        ["payment", "logistics"],
    )
    assert (found["windowClosesAt"], found["completedAt"]) == ("2026-11-24T03:20:10.000Z", None)
    assert found["documents"] == {"order": [ORDER_V1], "payment": [], "logistics": []}
    assert (found["decisions"], found["remembered"]) == ([], None)


def test_a_pending_ticket_shows_what_is_parked_until_the_outcome() -> None:
    driver = Driver(auto_ledger=False)
    driver.clean()
    change = payment_dict(guid=guid(1), appType="2", appTime="20261124120000")
    driver.send("payment", change, T0 + 3000)
    found = answer(driver)
    assert found is not None
    assert (found["status"], found["revision"], found["decisions"]) == ("pending", 1, [])
    assert found["documents"]["payment"] == [
        PAYMENT_V1,
        version(guid(1), "20261124120000", PAYMENT_FIELDS, state="parked", app_type="2"),
    ]
    assert found["windowClosesAt"] == "2026-11-24T03:20:10.000Z"


def test_a_diverted_ticket_has_its_reasons_and_is_released_at_revision_two() -> None:
    driver = Driver()
    driver.order(T0)
    driver.payment(T0 + 1000, amountPaid="497.51")
    driver.logistics(T0 + 2000)
    found = answer(driver)
    assert found is not None and (found["status"], found["revision"]) == ("diverted", 1)
    assert decisions(found) == [(1, "DIVERT", ["AMOUNT_MISMATCH"], at(T0 + 2000))]
    assert found["documents"]["payment"][0]["fields"]["amountPaid"] == "497.51"
    change = payment_dict(guid=guid(1), appType="2", appTime="20261124120000")
    assert codes(driver.send("payment", change, T0 + 5000)) == ["RELEASE"]
    found = answer(driver)
    assert found is not None and (found["status"], found["revision"]) == ("released", 2)
    assert decisions(found) == [
        (1, "DIVERT", ["AMOUNT_MISMATCH"], at(T0 + 2000)),
        (2, "RELEASE", [], at(T0 + 5000)),
    ]
    assert found["documents"]["payment"] == [
        version(guid(1), "20261124120000", PAYMENT_FIELDS, app_type="2")
    ]


def test_every_reason_is_logged_as_a_code() -> None:
    driver = Driver()
    driver.order(T0)
    driver.payment(T0 + 1000, amountPaid="1.00", payerName="李四")
    driver.logistics(T0 + 2000)
    assert [(d.revision, d.decision, d.reasons) for d in log(driver)] == [
        (1, "DIVERT", ["AMOUNT_MISMATCH", "PAYER_MISMATCH"])
    ]
    (decision,) = driver.decisions()
    assert [reason.code for reason in decision.reasons] == log(driver)[0].reasons  # type: ignore[union-attr]


def test_the_ledgers_divert_is_logged_when_its_outcome_comes_back() -> None:
    driver = Driver(auto_ledger=False)
    order_no = "SO20261124000999"  # another ticket of the buyer uses 25,600 of the 26,000
    big = single_item("25600.00", "0")
    driver.order(T0 - 5000, orderNo=order_no, guid=guid(900), **big)
    driver.payment(T0 - 5000, orderNo=order_no, guid=guid(901), amountPaid="25600.00")
    driver.logistics(T0 - 5000, orderNo=order_no, guid=guid(902))
    driver.settle(T0 - 5000)
    driver.clean()
    assert log(driver) == []  # pending: nothing decided yet
    driver.settle(T0 + 4000)
    assert log(driver) == [Decided(1, "DIVERT", ["ANNUAL_LIMIT_EXCEEDED"], T0 + 4000)]
    found = answer(driver)
    assert found is not None and (found["status"], found["revision"]) == ("diverted", 1)
    assert decisions(answer(driver, order_no=order_no)) == [(1, "RELEASE", [], at(T0 - 5000))]


def test_the_window_diverts_and_logs_missing_documents() -> None:
    driver = Driver()
    driver.order(T0)
    driver.tick(T0 + WINDOW)
    found = answer(driver)
    assert found is not None
    assert (found["status"], found["revision"], found["windowClosesAt"]) == ("diverted", 1, None)
    assert decisions(found) == [(1, "DIVERT", ["MISSING_DOCUMENTS"], at(T0 + WINDOW))]
    assert found["missing"] == ["payment", "logistics"]


def test_a_waybill_only_ticket_is_looked_up_with_an_empty_platform_code() -> None:
    driver = Driver()
    driver.logistics(T0)
    found = answer(driver, ebp="")
    assert found is not None
    assert (found["ticketId"], found["status"], found["missing"]) == (
        f":{ORDER_NO}",
        "open",
        ["order", "payment"],
    )
    assert found["documents"] == {"order": [], "payment": [], "logistics": [LOGISTICS_V1]}
    driver.tick(T0 + WINDOW)
    assert decisions(answer(driver, ebp="")) == [
        (1, "DIVERT", ["MISSING_DOCUMENTS"], at(T0 + WINDOW))
    ]
    assert answer(driver) is None  # no platform ticket yet


def test_ambiguous_waybill_diverts_are_logged_on_both_tickets() -> None:
    driver = Driver()
    driver.order(T0)
    driver.order(T0 + 1, ebpCode=OTHER_EBP, guid=guid(1))
    driver.logistics(T0 + 2)
    for ebp in (EBP, OTHER_EBP):
        found = answer(driver, ebp=ebp)
        assert found is not None and found["status"] == "diverted"
        assert decisions(found) == [(1, "DIVERT", ["AMBIGUOUS_WAYBILL"], at(T0 + 2))]


def test_a_released_ticket_past_its_retention_is_forgotten_but_remembered() -> None:
    driver = Driver()
    driver.clean()
    driver.tick(T0 + RETENTION)
    group = driver.group()
    assert group is not None and group.tickets == {} and len(group.released) == 1
    assert answer(driver) == {
        "ticketId": TICKET,
        "status": "forgotten",
        "revision": None,
        "firstSeenAt": None,
        "completedAt": None,
        "windowClosesAt": None,
        "expiresAt": None,
        "missing": [],
        "documents": {"order": [], "payment": [], "logistics": []},
        "decisions": [],
        "reviews": [],
        "remembered": {
            "logisticsCode": "31222699S7",
            "logisticsNo": "LND69C6ADD64A44B6E",
            "until": "2026-11-24T03:36:40.000Z",
            "guidsSeen": 3,
        },
        "partition": PARTITION,
        "servedBy": URL,
    }
    assert answer(driver, ebp=OTHER_EBP) is None
    assert answer(driver, ebp="") is None  # a waybill-only id is never a released ticket
    driver.tick(T0 + HORIZON)
    assert driver.group() is None
    assert ticket_answer(None, driver.raw(), EBP, ORDER_NO, PARTITION, URL) is None


def test_an_unknown_ticket_has_no_answer() -> None:
    driver = Driver()
    driver.order(T0)
    assert answer(driver, ebp=OTHER_EBP) is None
    assert answer(driver, order_no="SO-NEVER") is None


# -- the decision log in the state ---------------------------------------------------------------


class _OldTicket(msgspec.Struct, array_like=True, gc=False):
    """streams.tickets.Ticket as the previous version wrote it (no decision log)."""

    first_seen_ms: int
    deadline_ms: int
    expires_ms: int
    order: StoredDoc | None = None
    payment: StoredDoc | None = None
    logistics: StoredDoc | None = None
    guids: list[str] = msgspec.field(default_factory=list)
    revision: int = 0
    status: int = OPEN
    completed_ms: int | None = None
    parked: list[Parked] = msgspec.field(default_factory=list)


class _OldGroup(msgspec.Struct, array_like=True, gc=False):
    order_no: str
    tickets: dict[str, _OldTicket] = msgspec.field(default_factory=dict)
    released: list[Released] = msgspec.field(default_factory=list)


def test_a_group_the_previous_version_wrote_decodes_with_an_empty_log() -> None:
    stored = StoredDoc(G_ORDER, "20261124111500", as_bytes(order_dict()))
    old = _OldGroup(
        ORDER_NO,
        {EBP: _OldTicket(T0, 0, T0 + RETENTION, order=stored, guids=[G_ORDER], revision=1)},
        [Released(OTHER_EBP, "31222699S7", "LND1", T0 + HORIZON, b"12345678")],
    )
    raw = _ENCODE(old)
    assert len(msgspec.msgpack.decode(raw)[1][EBP]) == 11  # the old array: 11 fields
    group = msgspec.msgpack.decode(raw, type=Group)
    ticket = group.tickets[EBP]
    assert ticket.decisions == []
    assert (ticket.order, ticket.revision, ticket.guids) == (stored, 1, [G_ORDER])
    assert group.released == old.released
    nothing: dict[str, bytes] = {}  # the documents are held inline
    found = ticket_answer(group, nothing.__getitem__, EBP, ORDER_NO, PARTITION, URL)
    assert found is not None and (found.status, found.revision, found.decisions) == (
        "diverted",
        1,
        [],
    )
    # and the previous version reads what this one writes (a rolling upgrade, a rollback)
    ticket.log_decision("DIVERT", ["MISSING_DOCUMENTS"], T0 + WINDOW)
    back = msgspec.msgpack.decode(_ENCODE(group), type=_OldGroup)
    assert back == old


def test_the_log_keeps_the_latest_decisions() -> None:
    ticket = Ticket(T0, T0 + WINDOW, T0 + RETENTION)
    for revision in range(1, MAX_LOGGED_DECISIONS + 6):
        ticket.revision = revision
        ticket.log_decision("DIVERT", ["AMOUNT_MISMATCH"], T0 + revision)
    assert len(ticket.decisions) == MAX_LOGGED_DECISIONS
    assert (ticket.decisions[0].revision, ticket.decisions[-1].revision) == (
        6,
        MAX_LOGGED_DECISIONS + 5,
    )


# -- masking ----------------------------------------------------------------------------------

MASKED_EXAMPLES = {  # every personal field: the example's value as a lookup shows it
    "buyerRegNo": ("u262283", "*******"),
    "buyerName": ("王芳张", "王*"),
    "buyerTelephone": ("13149827706", "*******7706"),
    "buyerIdNumber": ("440305198012262283", "**************2283"),
    "consignee": ("王芳张", "王*"),
    "consigneeTelephone": ("13149827706", "*******7706"),
    "consigneeAddress": ("浙江省杭州市西湖区文三路1号", "浙江省***"),
    "payerIdNumber": ("440305198012262283", "**************2283"),
    "payerName": ("王芳张", "王*"),
    "telephone": ("13149827706", "*******7706"),
}


def test_every_personal_field_has_its_mask() -> None:
    assert set(MASKED_EXAMPLES) == set(PERSONAL_FIELDS)


@pytest.mark.parametrize("field", PERSONAL_FIELDS)
def test_each_personal_field_is_masked(field: str) -> None:
    value, shown = MASKED_EXAMPLES[field]
    assert mask_field(field, value) == shown


@pytest.mark.parametrize(
    ("field", "value", "shown"),
    [
        ("buyerIdNumber", "1234567", "*******"),  # too short to keep a tail
        ("buyerIdNumber", "12345678", "****5678"),
        ("buyerIdNumber", "", ""),
        ("buyerName", "王", "*"),
        ("buyerName", "Wang Fang", "W*"),
        ("consigneeAddress", "北京市朝阳", "***"),  # too short to keep a head
        ("consigneeAddress", "北京市朝阳区1", "北京市***"),
        ("note", "call 13149827706 or 440305198012262283", "call *** or ***"),
        ("itemDescribe", "奶粉 900g", "奶粉 900g"),
        ("orderNo", "440305198012262283", "440305198012262283"),  # not personal, not masked
        ("gnum", 1, 1),
    ],
)
def test_mask_edges(field: str, value: Any, shown: Any) -> None:
    assert mask_field(field, value) == shown


def test_a_personal_field_without_a_rule_is_masked_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lookup, "_PERSONAL", frozenset({*PERSONAL_FIELDS, "buyerEmail"}))
    assert mask_field("buyerEmail", "wang@example.com") == "***"


def test_remarks_in_goods_lines_are_masked_too() -> None:
    driver = Driver()
    line = {**order_dict()["orderList"][0], "note": "tel 13149827706"}
    driver.order(T0, orderList=[line], goodsValue="398.00", acturalPaid="408.00")
    found = answer(driver)
    assert found is not None
    assert found["documents"]["order"][0]["fields"]["orderList"][0]["note"] == "tel ***"


def test_a_document_from_an_xml_message_names_its_sender() -> None:
    driver = Driver()
    driver.send("order", order_dict(), T0, origin=Origin("3301980AGT", "M" * 36, 1))
    found = answer(driver)
    assert found is not None
    (order,) = found["documents"]["order"]
    assert (order["format"], order["copCode"]) == ("xml", "3301980AGT")


# -- parsing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        (TICKET, (EBP, ORDER_NO)),
        (f":{ORDER_NO}", ("", ORDER_NO)),
        ("A:B:C", ("A", "B:C")),
        ("E" * 18 + ":" + "O" * 60, ("E" * 18, "O" * 60)),
    ],
)
def test_ticket_ids(text: str, parsed: tuple[str, str]) -> None:
    assert parse_ticket_id(text) == parsed


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ("no-colon", "not a ticket id: 'no-colon' (expected {ebpCode}:{orderNo})"),
        ("ABC:", "not a ticket id: 'ABC:' (expected {ebpCode}:{orderNo})"),
        ("", "not a ticket id: '' (expected {ebpCode}:{orderNo})"),
        (
            "E" * 19 + ":X",
            f"not a ticket id: '{'E' * 19}:X' (ebpCode is at most 18 characters, orderNo at "
            "most 60)",
        ),
        ("E:" + "O" * 61, None),
    ],
)
def test_malformed_ticket_ids(text: str, detail: str | None) -> None:
    with pytest.raises(BadLookupError) as raised:
        parse_ticket_id(text)
    if detail is not None:
        assert str(raised.value) == detail


def test_buyer_ids() -> None:
    assert parse_buyer(BUYER) == BUYER
    for bad in ("", "X" * 61, f" {BUYER}"):
        with pytest.raises(BadLookupError) as raised:
            parse_buyer(bad)
        assert str(raised.value) == ("not a buyer id: expected 1 to 60 characters (buyerIdNumber)")


def test_the_default_year_is_the_current_one_in_china_time() -> None:
    new_year_in_china = 1_798_732_800_000  # 2026-12-31T16:00:00.000Z = 2027-01-01 00:00 +08
    assert china_year(new_year_in_china - 1) == 2026
    assert china_year(new_year_in_china) == 2027
    assert parse_year(None, new_year_in_china) == 2027
    assert parse_year("2025", new_year_in_china) == 2025


@pytest.mark.parametrize("text", ["25", "20255", "abcd", "0999", "", "\uff12\uff10\uff12\uff16"])
def test_malformed_years(text: str) -> None:
    with pytest.raises(BadLookupError):
        parse_year(text, T0)


# -- quota --------------------------------------------------------------------------------------


def quota(ledger: BuyerLedger | None, year: int = 2026) -> dict[str, Any] | None:
    found = quota_answer(ledger, BUYER, year, LIMIT, PARTITION, URL)
    return None if found is None else json.loads(msgspec.json.encode(found))


def test_the_quota_of_a_year_is_the_limit_less_what_was_released() -> None:
    ledger = BuyerLedger({2026: Decimal("995.00"), 2025: Decimal("26000.00")})
    assert quota(ledger) == {
        "buyer": "**************2283",
        "year": 2026,
        "annualLimit": "26000",
        "released": "995.00",
        "remaining": "25005.00",
        "releasedTickets": None,
        "partition": PARTITION,
        "servedBy": URL,
    }
    assert quota(ledger, 2025)["remaining"] == "0.00"  # type: ignore[index]
    nothing = quota(ledger, 2024)
    assert nothing is not None and (nothing["released"], nothing["remaining"]) == ("0", "26000")


def test_the_remaining_quota_is_never_below_zero() -> None:
    over = quota(BuyerLedger({2026: Decimal("26500.00")}))  # the limit was lowered since
    assert over is not None and (over["released"], over["remaining"]) == ("26500.00", "0")


def test_a_buyer_the_ledger_does_not_know_has_no_quota() -> None:
    assert quota(None) is None
    known = quota(BuyerLedger())  # known (a divert only): nothing released
    assert known is not None and known["remaining"] == "26000"


def test_the_quota_follows_the_ledger_through_the_driver() -> None:
    driver = Driver()
    driver.clean()
    assert quota(driver.ledger())["released"] == "497.50"  # type: ignore[index]
    assert mask_buyer(BUYER) == "**************2283"


def test_lookup_paths_are_url_encoded() -> None:
    assert lookup_path("3301980ABC:SO 1/2", None, None) == "/v1/tickets/3301980ABC%3ASO%201%2F2"
    assert lookup_path(None, BUYER, None) == f"/v1/buyers/{BUYER}/quota"
    assert lookup_path(None, BUYER, "2026") == f"/v1/buyers/{BUYER}/quota?year=2026"


# -- the committed read -------------------------------------------------------------------------


def test_the_committed_read_never_sees_a_staged_write(tmp_path: Path) -> None:
    store = Store(tmp_path / "s", "cl")
    try:
        store.put(1, b"k", b"v1")
        assert (store.get(1, b"k"), store.committed(1, b"k")) == (b"v1", None)
        store.commit({1: 0})
        store.put(1, b"k", b"v2")
        assert (store.get(1, b"k"), store.committed(1, b"k")) == (b"v2", b"v1")
        store.rollback()
        assert store.committed(1, b"k") == b"v1"
    finally:
        store.close()


# -- answering on a worker ---------------------------------------------------------------------


def _no_session() -> ClientSession:
    raise AssertionError("nothing is forwarded")


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(test())


def reply_json(reply: Any) -> Any:
    return json.loads(reply.body)


def test_the_owner_answers_from_its_committed_state(tmp_path: Path) -> None:
    harness = PipelineHarness(tmp_path)
    lookups = Lookups(harness.settings, harness.pipeline, _no_session, clock=lambda: T0 / 1000)
    path = f"/v1/tickets/{TICKET}"

    async def test() -> None:
        harness.feed("order", as_bytes(order_dict()), T0)
        harness.feed("payment", as_bytes(payment_dict()), T0 + 1000)
        reply = await lookups.ticket(TICKET, path, forwarded=False)
        assert reply.status == 200
        found = reply_json(reply)
        partition = murmur2_partition(ORDER_NO.encode(), 4)
        assert (found["status"], found["partition"], found["servedBy"]) == (
            "open",
            partition,
            "http://127.0.0.1:6066",
        )
        # a step in flight (processed, its transaction not yet committed) is not seen
        topic = harness.settings.topic("logistics")
        record = Record(topic, 0, 99, T0 + 2000, None, as_bytes(logistics_dict()))
        harness.pipeline.process([record], T0 + 2000, T0 + 2000)
        staged = reply_json(await lookups.ticket(TICKET, path, forwarded=True))
        assert (staged["status"], staged["documents"]["logistics"]) == ("open", [])
        harness.pipeline.commit({})
        committed = reply_json(await lookups.ticket(TICKET, path, forwarded=True))
        assert (committed["status"], committed["revision"]) == ("released", 1)
        assert [d["decision"] for d in committed["decisions"]] == ["RELEASE"]
        # the buyer's quota, from the same worker's ledger
        quota_reply = await lookups.quota(BUYER, None, "/", forwarded=False)
        assert (quota_reply.status, reply_json(quota_reply)["released"]) == (200, "497.50")
        assert reply_json(quota_reply)["remaining"] == "25502.50"
        assert reply_json(quota_reply)["year"] == 2026

    try:
        run(test)
    finally:
        harness.close()


def test_bad_and_unknown_lookups(tmp_path: Path) -> None:
    harness = PipelineHarness(tmp_path)
    lookups = Lookups(harness.settings, harness.pipeline, _no_session, clock=lambda: T0 / 1000)

    async def test() -> None:
        bad = await lookups.ticket("no-colon", "/", forwarded=False)
        assert (bad.status, reply_json(bad)) == (
            400,
            {
                "error": "bad request",
                "detail": "not a ticket id: 'no-colon' (expected {ebpCode}:{orderNo})",
            },
        )
        unknown = await lookups.ticket(f"{EBP}:SO-NEVER", "/", forwarded=False)
        partition = murmur2_partition(b"SO-NEVER", 4)
        assert (unknown.status, reply_json(unknown)) == (
            404,
            {
                "error": "unknown",
                "detail": f"ticket {EBP}:SO-NEVER is unknown: its partition ({partition}) "
                "neither holds it nor remembers it as released",
            },
        )
        buyer = await lookups.quota(BUYER, None, "/", forwarded=False)
        assert (buyer.status, reply_json(buyer)) == (
            404,
            {
                "error": "unknown",
                "detail": "buyer **************2283 is unknown to the buyer ledger: no ticket "
                "of theirs has reached it",
            },
        )
        year = await lookups.quota(BUYER, "26", "/", forwarded=False)
        assert (year.status, reply_json(year)["detail"]) == (
            400,
            "not a year: '26' (expected YYYY)",
        )

    try:
        run(test)
    finally:
        harness.close()


class FakeDescribe:
    """The group's description: partition -> URL, counted; or an error."""

    def __init__(self, owners: dict[int, str] | None = None) -> None:
        self.owners = owners or {}
        self.calls = 0
        self.error: str | None = None

    async def __call__(self) -> dict[int, str]:
        self.calls += 1
        if self.error is not None:
            raise OwnersUnavailableError(self.error)
        return dict(self.owners)


SETTINGS = Settings(partitions=4, advertised_url=URL)
TICKET_PARTITION = murmur2_partition(ORDER_NO.encode(), 4)


def not_owning(describe: FakeDescribe, session: Callable[[], ClientSession]) -> Lookups:
    pipeline: Any = SimpleNamespace(partitions=set(), tickets=None, ledger=None)
    owners = Owners(SETTINGS, describe=describe)
    return Lookups(SETTINGS, pipeline, session, owners=owners)


def test_a_lookup_for_another_workers_partition_is_forwarded_once() -> None:
    seen: list[tuple[str, str | None]] = []

    async def owner(request: web.Request) -> web.Response:
        seen.append((request.raw_path, request.headers.get(FORWARDED)))
        body = {"ticketId": TICKET, "status": "released", "servedBy": "the owner"}
        return web.json_response(body, headers={"X-Other": "dropped"})

    async def test() -> None:
        app = web.Application()
        app.router.add_get("/v1/tickets/{id}", owner)
        server = TestServer(app)
        await server.start_server()
        try:
            async with ClientSession() as session:
                base = str(server.make_url("")).rstrip("/")
                describe = FakeDescribe({TICKET_PARTITION: base})
                lookups = not_owning(describe, lambda: session)
                path = "/v1/tickets/3301980ABC%3ASO20261124000001"
                reply = await lookups.ticket(TICKET, path, forwarded=False)
                assert (reply.status, reply_json(reply), reply.headers) == (
                    200,
                    {"ticketId": TICKET, "status": "released", "servedBy": "the owner"},
                    {},
                )
                assert seen == [(path, "1")]
                await lookups.ticket(TICKET, path, forwarded=False)
                assert describe.calls == 1  # the membership is cached
        finally:
            await server.close()

    run(test)


def test_a_forwarded_lookup_is_never_forwarded_again() -> None:
    async def test() -> None:
        describe = FakeDescribe({TICKET_PARTITION: "http://w2:6066"})
        lookups = not_owning(describe, _no_session)
        reply = await lookups.ticket(TICKET, "/", forwarded=True)
        assert (reply.status, reply.headers) == (503, {"Retry-After": "2"})
        assert reply_json(reply) == {
            "error": "unavailable",
            "detail": f"partition {TICKET_PARTITION} is not owned by this worker now: the "
            "partitions are moving",
            "retryAfter": 2,
        }
        assert describe.calls == 0

    run(test)


@pytest.mark.parametrize(
    ("owners", "error", "detail"),
    [
        ({}, None, f"no worker owns partition {TICKET_PARTITION} now: the workers are rebalancing"),
        (
            {TICKET_PARTITION: URL},
            None,
            f"partition {TICKET_PARTITION} is being restored on this worker",
        ),
        (
            {},
            "the workers' group g was not described: down",
            "the workers' group g was not described: down",
        ),
    ],
)
def test_no_owner_is_a_503_with_retry_after(
    owners: dict[int, str], error: str | None, detail: str
) -> None:
    async def test() -> None:
        describe = FakeDescribe(owners)
        describe.error = error
        reply = await not_owning(describe, _no_session).ticket(TICKET, "/", forwarded=False)
        assert (reply.status, reply.headers) == (503, {"Retry-After": "2"})
        assert reply_json(reply)["detail"] == detail

    run(test)


def test_an_owner_that_does_not_answer_as_one() -> None:
    async def text_404(request: web.Request) -> web.Response:
        return web.Response(status=404, text="404: Not Found")

    async def test() -> None:
        app = web.Application()
        app.router.add_get("/{tail:.*}", text_404)
        server = TestServer(app)
        await server.start_server()
        closed = TestServer(web.Application())
        await closed.start_server()
        gone = str(closed.make_url("")).rstrip("/")
        await closed.close()  # nothing listens there any more
        try:
            async with ClientSession() as session:
                base = str(server.make_url("")).rstrip("/")
                describe = FakeDescribe({TICKET_PARTITION: base})
                lookups = not_owning(describe, lambda: session)
                reply = await lookups.ticket(TICKET, "/v1/tickets/x:y", forwarded=False)
                assert (reply.status, reply_json(reply)) == (
                    502,
                    {
                        "error": "bad gateway",
                        "detail": f"the owner of partition {TICKET_PARTITION} ({base}) "
                        "answered 404 without a lookup answer",
                    },
                )
                describe.owners = {TICKET_PARTITION: gone}
                await lookups.ticket(TICKET, "/", forwarded=False)  # described again
                reply = await lookups.ticket(TICKET, "/", forwarded=False)
                assert (reply.status, reply_json(reply)["detail"]) == (
                    503,
                    f"the owner of partition {TICKET_PARTITION} ({gone}) did not answer",
                )
                assert describe.calls == 3  # each failure forgets the membership
        finally:
            await server.close()

    run(test)


def test_owners_come_from_the_members_client_ids() -> None:
    assert worker_url("sandan-worker http://10.0.0.5:6066/") == "http://10.0.0.5:6066"
    assert worker_url("sandan-worker ftp://x") is None
    assert worker_url("sandan-3301") is None
    members = [
        ("sandan-worker http://w1:6066", [0, 1]),
        ("rdkafka", [2]),  # not a worker: its partitions have no owner here
        ("sandan-worker http://w2:6066", {3}),
    ]
    assert owners_of(members) == {0: "http://w1:6066", 1: "http://w1:6066", 3: "http://w2:6066"}


def test_the_membership_is_cached_for_its_ttl() -> None:
    now = [0.0]
    describe = FakeDescribe({1: "http://w2:6066"})
    owners = Owners(SETTINGS, ttl=3.0, describe=describe, clock=lambda: now[0])

    async def test() -> None:
        assert await owners.owner(1) == "http://w2:6066"
        now[0] = 2.9
        assert await owners.owner(2) is None
        assert describe.calls == 1
        now[0] = 3.0
        await owners.owner(1)
        assert describe.calls == 2
        owners.forget()
        await owners.owner(1)
        assert describe.calls == 3

    run(test)
