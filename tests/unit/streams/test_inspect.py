"""``sandan inspect``'s text (streams/inspect.py): lookup answers as lines for a person."""

from __future__ import annotations

from decimal import Decimal

import msgspec

from streams.inspect import render_error, render_quota, render_ticket
from streams.ledger import BuyerLedger
from streams.lookup import quota_answer, ticket_answer
from tests.unit.streams.test_lookup import LIMIT, PARTITION, PERSONAL_VALUES, URL
from tests.unit.streams.test_tickets import BUYER, EBP, G_ORDER, ORDER_NO, T0, TICKET, Driver


def test_a_ticket_rendered_for_people() -> None:
    driver = Driver()
    driver.order(T0)
    driver.payment(T0 + 1000, amountPaid="497.51")
    driver.logistics(T0 + 2000)
    found = ticket_answer(driver.group(), driver.raw(), EBP, ORDER_NO, PARTITION, URL)
    lines = render_ticket(msgspec.json.encode(found)).splitlines()
    assert lines[:3] == [
        f"ticket {TICKET}: diverted, revision 1 (partition 3, answered by {URL})",
        "  first seen 2026-11-24T03:20:00.000Z, completed 2026-11-24T03:20:02.000Z, window "
        "closes 2026-11-24T03:20:10.000Z, expires 2026-11-24T03:21:40.000Z",
        "documents:",
    ]
    assert lines[3] == (
        f"  order      {G_ORDER}  appType 1  appTime 20261124111500  appStatus 2  json  stored"
    )
    assert "buyerIdNumber=**************2283" in "\n".join(lines)
    assert "orderList=2 lines" in "\n".join(lines)
    assert lines[-2:] == [
        "decisions:",
        "  revision 1  DIVERT   2026-11-24T03:20:02.000Z  AMOUNT_MISMATCH",
    ]
    assert not [value for value in PERSONAL_VALUES if value in "\n".join(lines)]


def test_a_quota_and_an_error_rendered_for_people() -> None:
    found = quota_answer(BuyerLedger({2026: Decimal("995.00")}), BUYER, 2026, LIMIT, 1, URL)
    assert render_quota(msgspec.json.encode(found)).splitlines() == [
        "buyer **************2283 in 2026: released 995.00 CNY, remaining 25005.00 CNY of the "
        "annual limit 26000 CNY",
        f"  released tickets: not counted by the ledger (partition 1, answered by {URL})",
    ]
    body = b'{"error": "unknown", "detail": "ticket A:B is unknown"}'
    assert render_error(URL, 404, body) == (
        f"the worker at {URL} answered 404 unknown: ticket A:B is unknown"
    )
    assert render_error(URL, 404, b"404: Not Found") == (
        f"the worker at {URL} answered 404 without a lookup answer"
    )
