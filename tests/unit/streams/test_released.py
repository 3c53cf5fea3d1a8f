"""A released ticket is released once, for longer than it lives (streams.tickets.Released).

After its release, and after its own state is forgotten at retention, until the released
horizon: a document resent for it (a new guid) is rejected ``DUPLICATE`` (appType 1) or
``TICKET_RELEASED`` (2, 3), with a receipt ``100``, and makes no ticket, timer or decision; an
exact redelivery does nothing. Driven by tests/unit/streams/test_tickets.py's Driver (SandanPipeline
on temporary stores; window 10 s, retention 100 s, released horizon 1,000 s), then by a
PipelineHarness of its own: across a restart, and from the changelog alone.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from schemas.documents import DOC_TYPES
from schemas.outputs import Rejection, Source
from streams.tickets import Group, Released, document_key, next_due
from tests.factories import as_bytes, logistics_dict, payment_dict
from tests.unit.streams.harness import PipelineHarness, on, receipts
from tests.unit.streams.test_tickets import (
    BUILDERS,
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
    TOPICS,
    WINDOW,
    Driver,
    codes,
    expected,
    guid,
    only_rejection,
    wire,
)

HORIZON = RULES.released_horizon_ms
LOGISTICS_CODE = "31222699S7"
LOGISTICS_NO = "LND69C6ADD64A44B6E"
SENDERS = {"order": EBP, "payment": "4403169D3W", "logistics": LOGISTICS_CODE}
BUSINESS_KEYS = (
    "orderNo",
    "ebpCode",
    "payCode",
    "payTransactionId",
    "logisticsCode",
    "logisticsNo",
)
# when the resend arrives: the released ticket still held, or forgotten at retention
PHASES = {"held": T0 + 3000, "forgotten": T0 + RETENTION + 1000}


def duplicate_detail(kind: str) -> str:
    if kind == "logistics":  # it names no platform: it is the ticket's by its waybill number
        return (
            f"ticket {TICKET} was released with waybill {LOGISTICS_CODE} {LOGISTICS_NO}: "
            "a new one (appType 1) is a duplicate"
        )
    return f"ticket {TICKET} was released with its {kind}: a new one (appType 1) is a duplicate"


RELEASED_DETAIL = f"ticket {TICKET} is released; only customs' cancel or return apply"


def released_driver() -> Driver:
    """The example ticket released at T0 + 2 s (first document at T0)."""
    driver = Driver()
    assert codes(driver.clean()) == ["RELEASE"]
    return driver


def digests(*guids: str) -> bytes:
    """The remembered guids: 8-byte BLAKE2b digests, one after the other."""
    return b"".join(hashlib.blake2b(g.encode(), digest_size=8).digest() for g in guids)


def check_returned(
    driver: Driver,
    outputs: list[Any],
    *,
    code: str,
    detail: str,
    kind: str,
    doc: dict[str, Any],
    at: int,
) -> None:
    """``outputs`` is exactly the rejection of the record just sent, with its receipt."""
    rejection = only_rejection(outputs)
    assert rejection == Rejection(
        code=code,  # type: ignore[arg-type]
        detail=detail,
        docType=kind,  # type: ignore[arg-type]
        guid=doc["guid"],
        source=Source(TOPICS[kind], 0, driver.offset, at),
        raw=as_bytes(doc),
        **{k: doc[k] for k in BUSINESS_KEYS if doc.get(k)},
    )
    assert outputs[0].key == ORDER_NO.encode()
    last = driver.receipts[-1]
    assert (last.sender, last.xml) == (SENDERS[kind], False)
    assert (last.receipt.returnStatus, last.receipt.code, last.receipt.ticketId) == (
        "100",
        code,
        TICKET,
    )
    assert (last.receipt.guid, last.receipt.returnInfo) == (doc["guid"], f"{code}: {detail}")


# the example ticket, released: what is kept of it until the horizon
REMEMBERED = Released(
    EBP, LOGISTICS_CODE, LOGISTICS_NO, T0 + HORIZON, digests(G_ORDER, G_PAYMENT, G_LOGISTICS)
)


# -- the compact form ------------------------------------------------------------------------


def test_a_released_ticket_is_remembered_past_its_retention_in_compact_form() -> None:
    driver = released_driver()
    group = driver.group()
    assert group is not None and group.released == [REMEMBERED]
    assert group.tickets.keys() == {EBP}
    assert next_due(group) == T0 + RETENTION  # the ticket's retention first
    assert driver.tick(T0 + RETENTION) == []
    group = driver.group()
    assert group == Group(ORDER_NO, {}, [REMEMBERED])
    assert next_due(group) == T0 + HORIZON  # one timer: the horizon
    assert len(driver.groups[ORDER_NO]) == 98  # 2,501 bytes while the ticket was held


def test_a_group_stored_before_released_tickets_were_remembered_still_decodes() -> None:
    old = msgspec.msgpack.encode([ORDER_NO, {}])  # Group as it was: order_no, tickets
    assert msgspec.msgpack.decode(old, type=Group) == Group(ORDER_NO)


# -- resends with a new guid -----------------------------------------------------------------


@pytest.mark.parametrize("phase", PHASES)
@pytest.mark.parametrize("kind", DOC_TYPES)
def test_a_resent_document_is_rejected_duplicate_and_changes_nothing(kind: str, phase: str) -> None:
    """A waybill resent as customs' standard has it (no ebpCode) included: today's platform
    tickets and the waybill-only ticket ``:{orderNo}`` alike are never made by it."""
    driver = released_driver()
    if phase == "forgotten":
        driver.tick(T0 + RETENTION)
    at = PHASES[phase]
    before = driver.group()
    assert before is not None
    resend = BUILDERS[kind](guid=guid(1))  # appType 1, the same content, a new guid
    outputs = driver.send(kind, resend, at)
    detail = duplicate_detail(kind)
    check_returned(driver, outputs, code="DUPLICATE", detail=detail, kind=kind, doc=resend, at=at)
    after = driver.group()
    assert after is not None
    assert after.tickets.keys() == before.tickets.keys()  # no ticket, not even ":{orderNo}"
    assert next_due(after) == next_due(before)  # no timer
    assert after.released[0].guids == digests(G_ORDER, G_PAYMENT, G_LOGISTICS, guid(1))
    # rejected once: its redelivery does nothing; no window closes on it
    assert driver.send(kind, resend, at + 1) == []
    assert driver.tick(at + WINDOW) == []
    assert codes(driver.out) == ["RELEASE", "DUPLICATE"]


@pytest.mark.parametrize("phase", PHASES)
@pytest.mark.parametrize("kind", DOC_TYPES)
def test_a_resend_with_other_content_is_rejected_all_the_same(kind: str, phase: str) -> None:
    driver = released_driver()
    at = PHASES[phase]
    changed = {"order": {"buyerName": "李四"}, "payment": {"amountPaid": "1"}}
    resend = BUILDERS[kind](guid=guid(1), appTime="20261125000000", **changed.get(kind, {}))
    if kind == "logistics":
        resend["consigneeAddress"] = "浙江省杭州市西湖区文三路2号"
    rejection = only_rejection(driver.send(kind, resend, at))
    assert (rejection.code, rejection.detail) == ("DUPLICATE", duplicate_detail(kind))


@pytest.mark.parametrize("phase", PHASES)
def test_a_resent_waybill_naming_the_platform_is_rejected_whatever_its_number(phase: str) -> None:
    driver = released_driver()
    at = PHASES[phase]
    resend = logistics_dict(guid=guid(1), ebpCode=EBP, logisticsNo="LN20261124OTHER")
    outputs = driver.send("logistics", resend, at)
    detail = (
        f"ticket {TICKET} was released with its logistics: a new one (appType 1) is a duplicate"
    )
    check_returned(
        driver, outputs, code="DUPLICATE", detail=detail, kind="logistics", doc=resend, at=at
    )


@pytest.mark.parametrize("phase", PHASES)
def test_another_waybill_naming_no_platform_is_not_the_released_tickets(phase: str) -> None:
    """Another logisticsNo without ebpCode may be another platform's: placed as before."""
    driver = released_driver()
    at = PHASES[phase]
    assert driver.logistics(at, guid=guid(1), logisticsNo="LN20261124OTHER") == []
    group = driver.group()
    assert group is not None and "" in group.tickets
    decision = driver.tick(at + WINDOW)
    assert [(d.ticketId, d.missing) for d in decision] == [  # type: ignore[union-attr]
        (f":{ORDER_NO}", ["order", "payment"])
    ]


def test_a_resent_waybill_is_not_taken_by_another_platforms_open_ticket() -> None:
    """Its number makes it the released ticket's, though a single open ticket of another
    platform would take a waybill naming no platform."""
    driver = released_driver()
    assert driver.order(T0 + 3000, ebpCode=OTHER_EBP, guid=guid(10)) == []
    rejection = only_rejection(driver.logistics(T0 + 4000, guid=guid(1)))
    assert (rejection.code, rejection.detail) == ("DUPLICATE", duplicate_detail("logistics"))
    assert driver.ticket(OTHER_EBP).logistics is None  # type: ignore[union-attr]
    # its own waybill (another number) joins it
    assert driver.logistics(T0 + 5000, guid=guid(2), logisticsNo="LN2") == []
    assert driver.ticket(OTHER_EBP).logistics.guid == guid(2)  # type: ignore[union-attr]


def test_a_resent_waybill_parked_while_the_ledger_decides_is_rejected_after_release() -> None:
    driver = Driver(auto_ledger=False)
    driver.clean()
    resend = logistics_dict(guid=guid(1))
    assert driver.send("logistics", resend, T0 + 3000) == []  # parked on the pending ticket
    outputs = driver.settle(T0 + 4000)
    assert codes(outputs) == ["RELEASE", "DUPLICATE"]
    assert outputs[1].rejection.detail == duplicate_detail("logistics")  # type: ignore[union-attr]
    assert driver.tick(T0 + 3000 + WINDOW) == []


# -- changes and deletes ---------------------------------------------------------------------


@pytest.mark.parametrize("phase", PHASES)
@pytest.mark.parametrize("app_type", ["2", "3"])
@pytest.mark.parametrize("kind", DOC_TYPES)
def test_a_change_or_delete_is_ticket_released_for_the_horizon(
    kind: str, app_type: str, phase: str
) -> None:
    """Forgotten at retention, it was UNKNOWN_DOCUMENT before released tickets were kept."""
    driver = released_driver()
    if phase == "forgotten":
        driver.tick(T0 + RETENTION)
    at = PHASES[phase]
    change = BUILDERS[kind](guid=guid(1), appType=app_type, appTime="20261125000000")
    outputs = driver.send(kind, change, at)
    check_returned(
        driver,
        outputs,
        code="TICKET_RELEASED",
        detail=RELEASED_DETAIL,
        kind=kind,
        doc=change,
        at=at,
    )
    assert driver.send(kind, change, at + 1) == []
    stale = BUILDERS[kind](guid=guid(2), appType=app_type, appTime="20200101000000")
    assert codes(driver.send(kind, stale, at + 2)) == ["TICKET_RELEASED"]  # before STALE
    assert len(driver.decisions()) == 1


# -- exact redeliveries ----------------------------------------------------------------------


@pytest.mark.parametrize("phase", PHASES)
def test_the_released_documents_redelivered_do_nothing(phase: str) -> None:
    driver = released_driver()
    if phase == "forgotten":
        driver.tick(T0 + RETENTION)
    for kind in DOC_TYPES:
        assert driver.send(kind, BUILDERS[kind](), PHASES[phase]) == []
    assert codes(driver.out) == ["RELEASE"]
    assert driver.receipts[-1].receipt.returnStatus == "399"  # nothing since the release


# -- the horizon -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", DOC_TYPES)
def test_the_horizon_ends_at_the_first_documents_arrival_plus_the_horizon(kind: str) -> None:
    driver = released_driver()
    driver.tick(T0 + RETENTION)
    resend = BUILDERS[kind](guid=guid(1))
    assert codes(driver.send(kind, resend, T0 + HORIZON - 1)) == ["DUPLICATE"]
    assert driver.tick(T0 + HORIZON - 1) == []
    assert driver.group() is not None
    assert driver.tick(T0 + HORIZON) == []
    assert driver.group() is None  # forgotten: no state at all is left
    # at the horizon a document is new again, as after a ticket's retention
    assert driver.send(kind, BUILDERS[kind](guid=guid(2)), T0 + HORIZON) == []
    ebp = "" if kind == "logistics" else EBP
    ticket = driver.ticket(ebp)
    assert ticket is not None and ticket.first_seen_ms == T0 + HORIZON


def test_a_record_at_the_horizon_is_new_even_before_the_timer() -> None:
    driver = released_driver()
    driver.tick(T0 + RETENTION)
    assert driver.order(T0 + HORIZON, guid=guid(1)) == []
    group = driver.group()
    assert group is not None and group.released == [] and group.tickets.keys() == {EBP}


def test_a_ticket_released_after_a_divert_is_remembered_from_its_first_document() -> None:
    driver = Driver()
    driver.order(T0)
    driver.payment(T0 + 1000, amountPaid="497.51")
    assert codes(driver.logistics(T0 + 2000)) == ["DIVERT"]
    fix = payment_dict(guid=guid(1), appType="2", appTime="20261124120000")
    assert codes(driver.send("payment", fix, T0 + 50_000)) == ["RELEASE"]
    group = driver.group()
    assert group is not None
    assert group.released == [
        Released(
            EBP,
            LOGISTICS_CODE,
            LOGISTICS_NO,
            T0 + HORIZON,
            digests(G_ORDER, G_PAYMENT, G_LOGISTICS, guid(1)),
        )
    ]
    driver.tick(T0 + RETENTION)
    rejection = only_rejection(driver.payment(T0 + RETENTION + 1, guid=guid(2)))
    assert (rejection.code, rejection.detail) == ("DUPLICATE", duplicate_detail("payment"))


# -- a ticket not released is not remembered ---------------------------------------------------


@pytest.mark.parametrize("kind", DOC_TYPES)
def test_a_diverted_ticket_resent_is_duplicate_while_held(kind: str) -> None:
    """Not released, so not final: held, it refuses a second document of a kind it holds (a
    waybill naming no platform joins the one open ticket), as before."""
    driver = Driver()
    driver.order(T0)
    driver.payment(T0 + 1000, amountPaid="1")
    assert codes(driver.logistics(T0 + 2000)) == ["DIVERT"]
    assert driver.group().released == []  # type: ignore[union-attr]
    rejection = only_rejection(driver.send(kind, BUILDERS[kind](guid=guid(1)), T0 + 3000))
    assert (rejection.code, rejection.detail) == (
        "DUPLICATE",
        f"the ticket already holds a {kind} (appType 1)",
    )


def test_a_diverted_ticket_forgotten_is_decided_anew_by_resent_documents() -> None:
    driver = Driver()
    driver.order(T0)
    driver.payment(T0 + 1000, amountPaid="1")
    driver.logistics(T0 + 2000)
    assert driver.tick(T0 + RETENTION) == []
    assert driver.group() is None  # nothing remembered of it
    later = T0 + RETENTION + 1000
    assert driver.order(later, guid=guid(1)) == []
    assert driver.payment(later + 1000, guid=guid(2)) == []
    outputs = driver.logistics(later + 2000, guid=guid(3))
    assert [wire(d) for d in outputs] == [  # type: ignore[arg-type]
        expected(
            decided=later + 2000,
            first=later,
            completed=later + 2000,
            documents={"order": guid(1), "payment": guid(2), "logistics": guid(3)},
        )
    ]


# -- through the pipeline: a restart, and the changelog alone -----------------------------------

PIPELINE_ENV = {"SANDAN_RELEASED_HORIZON": "1000s"}  # window 10 s, retention 100 s (the harness)


def _release(harness: PipelineHarness) -> list[Any]:
    out = []
    for n, kind in enumerate(DOC_TYPES):
        out += harness.feed(kind, as_bytes(BUILDERS[kind]()), T0 + n * 1000, ORDER_NO.encode())
    assert [json.loads(o.value or b"")["decision"] for o in on(out, "release")] == ["RELEASE"]
    return out


def _changelog(outputs: list[Any]) -> list[Any]:
    return [o for o in outputs if o.topic.endswith("sandan-tickets-changelog")]


def _resend_waybill(harness: PipelineHarness, at: int) -> list[Any]:
    resend = logistics_dict(guid=guid(1))
    out = harness.feed("logistics", as_bytes(resend), at, ORDER_NO.encode())
    (rejected,) = on(out, "rejected")
    value = json.loads(rejected.value or b"")
    assert (rejected.key, value["code"], value["detail"], value["guid"]) == (
        ORDER_NO.encode(),
        "DUPLICATE",
        duplicate_detail("logistics"),
        guid(1),
    )
    (receipt,) = receipts(out)
    assert (receipt["key"], receipt["returnStatus"], receipt["code"], receipt["ticketId"]) == (
        LOGISTICS_CODE,
        "100",
        "DUPLICATE",
        TICKET,
    )
    assert on(out, "release") == on(out, "divert") == []
    return out


def test_the_memory_survives_a_restart_and_expires_on_the_timer(tmp_path: Path) -> None:
    harness = PipelineHarness(tmp_path, env=PIPELINE_ENV)
    try:
        _release(harness)
        forgetting = harness.step([], T0 + RETENTION)  # the ticket's retention: the timer
    finally:
        harness.close()
    *documents, record = _changelog(forgetting)  # the ticket's documents go with it
    assert sorted((d.key, d.value) for d in documents) == sorted(
        (document_key(ORDER_NO, g), None) for g in (G_ORDER, G_PAYMENT, G_LOGISTICS)
    )
    assert msgspec.msgpack.decode(record.value, type=Group) == Group(ORDER_NO, {}, [REMEMBERED])

    harness = PipelineHarness(tmp_path, env=PIPELINE_ENV)  # restarted on its own RocksDB
    try:
        out = _resend_waybill(harness, T0 + RETENTION + 1000)
        assert on(harness.step([], T0 + RETENTION + 1000 + WINDOW), "divert") == []
        assert _changelog(harness.step([], T0 + HORIZON - 1)) == []
        (tombstone,) = _changelog(harness.step([], T0 + HORIZON))  # forgotten on its timer
        assert (tombstone.key, tombstone.value) == (ORDER_NO.encode(), None)
        assert len(_changelog(out)) == 1  # the rejection remembered its guid
    finally:
        harness.close()


def test_the_memory_moves_with_the_changelog(tmp_path: Path) -> None:
    """Another worker restores the partition from the changelog records alone (as
    streams.store.Store.restore applies them): the memory and its timer come with them."""
    first = PipelineHarness(tmp_path / "first", env=PIPELINE_ENV)
    try:
        changelog = _changelog(_release(first)) + _changelog(first.step([], T0 + RETENTION))
    finally:
        first.close()
    second = PipelineHarness(tmp_path / "second", env=PIPELINE_ENV)
    try:
        store = second.pipeline.tickets
        for offset, record in enumerate(changelog):
            store.put(record.partition, record.key, record.value)
            store.commit({record.partition: offset})
        _resend_waybill(second, T0 + RETENTION + 2000)
        (tombstone,) = _changelog(second.step([], T0 + HORIZON))
        assert tombstone.value is None
        # then the same waybill is new again: it waits in ":{orderNo}"
        out = second.feed("logistics", as_bytes(logistics_dict(guid=guid(3))), T0 + HORIZON + 1)
        assert on(out, "rejected") == []
    finally:
        second.close()
