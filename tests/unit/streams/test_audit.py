"""streams.audit's pure part: which bytes find a ticket's records, and the history they make."""

from __future__ import annotations

import json

import pytest

from schemas.codec import encode_json
from schemas.receipts import encode_receipt
from streams.audit import Event, _utc, history, needles, render_text
from streams.records import Record
from streams.settings import Settings
from streams.topics import Topics
from tests.unit.streams.test_tickets import EBP, ORDER_NO, T0, TICKET, Driver

TOPICS = Topics(Settings.from_env({}))


def test_needles_are_the_ticket_and_order_number_as_json_and_xml_write_them() -> None:
    assert needles('E1:A&B"C') == tuple(
        sorted([b'E1:A&B\\"C', b'A&B\\"C', b'E1:A&amp;B"C', b'A&amp;B"C'])
    )
    with pytest.raises(ValueError, match="not a ticket id: 'no-colon'"):
        needles("no-colon")


def test_return_time_in_china_time_becomes_utc() -> None:
    assert _utc("20261124112000123") == "2026-11-24T03:20:00.123Z"


def _records(driver: Driver) -> list[Record]:
    """The driver's decisions and receipts as the output topics would hold them."""
    records = []
    for offset, decision in enumerate(driver.decisions()):
        topic = TOPICS.release if decision.decision == "RELEASE" else TOPICS.divert
        value = encode_json(decision)
        records.append(Record(topic, 0, offset, T0, decision.ticketId.encode(), value))
    for offset, addressed in enumerate(driver.receipts):
        key, value, headers = encode_receipt(addressed)
        records.append(Record(TOPICS.receipt, 1, offset, T0, key, value, tuple(headers)))
    return records


def test_a_released_ticket_has_its_documents_then_its_decision_then_its_notices() -> None:
    driver = Driver()
    driver.clean()
    other = Driver()
    other.clean(orderNo="SO-OTHER")  # another ticket on the same topics: left out
    events = history(TICKET, TOPICS, _records(driver) + _records(other))
    assert [(e.kind, e.fields.get("docType")) for e in events] == [
        ("stored", "order"),
        ("stored", "payment"),
        ("stored", "logistics"),
        ("decided", None),
        ("concluded", "order"),
        ("concluded", "payment"),
        ("concluded", "logistics"),
    ]
    decided = events[3].fields
    assert (decided["decision"], decided["revision"], decided["reasons"]) == ("RELEASE", 1, [])
    assert all(isinstance(e, Event) and e.at.endswith("Z") for e in events)
    assert render_text(TICKET, events).splitlines()[0] == f"ticket {TICKET}: 7 events"


def test_a_rejection_is_kept_when_it_names_the_order_and_no_other_platform() -> None:
    def rejected(offset: int, **fields: object) -> Record:
        value: dict[str, object] = {"code": "DUPLICATE", "detail": "d", "docType": "logistics"}
        value["guid"] = "G"
        value |= {"source": {"topic": "t", "partition": 0, "offset": 0, "timestamp": T0}}
        value |= fields
        return Record(TOPICS.rejected, 0, offset, T0, None, json.dumps(value).encode())

    records = [
        rejected(0, orderNo=ORDER_NO),  # a waybill names no platform: kept
        rejected(1, orderNo=ORDER_NO, ebpCode=EBP),
        rejected(2, orderNo=ORDER_NO, ebpCode="OTHER"),
        rejected(3, orderNo="SO-OTHER"),
    ]
    events = history(TICKET, TOPICS, records)
    assert [e.source for e in events] == [f"{TOPICS.rejected}/0/0", f"{TOPICS.rejected}/0/1"]


def test_an_alert_the_ticket_is_evidence_of_comes_after_its_decision() -> None:
    def alert(offset: int, tickets: list[str]) -> Record:
        value = {
            "alertId": f"SPLIT_ORDERS:abc:{T0}",
            "pattern": "SPLIT_ORDERS",
            "keyKind": "buyerIdNumber",
            "key": "**************1234",
            "keyDigest": "abc",
            "windowSeconds": 3600.0,
            "windowStart": "2026-11-24T03:20:00.000Z",
            "windowEnd": "2026-11-24T03:25:00.000Z",
            "threshold": 1,
            "count": len(tickets),
            "limit": "5000",
            "total": "5020.00",
            "tickets": tickets,
            "raisedAt": "2026-11-24T03:25:00.010Z",
        }
        return Record(TOPICS.alert, 2, offset, T0, b"abc", json.dumps(value).encode())

    driver = Driver()
    driver.clean()
    records = [alert(0, [f"{EBP}:SO-OTHER", TICKET]), alert(1, [f"{EBP}:SO-OTHER"])]
    events = history(TICKET, TOPICS, _records(driver) + records)
    (alerted,) = [e for e in events if e.kind == "alerted"]
    assert alerted.source == f"{TOPICS.alert}/2/0"
    assert (alerted.fields["pattern"], alerted.fields["tickets"]) == ("SPLIT_ORDERS", 2)
    line = render_text(TICKET, events).splitlines()[-1]
    assert (
        "alerted    SPLIT_ORDERS on buyerIdNumber **************1234: 2 totalling 5020.00" in line
    )
