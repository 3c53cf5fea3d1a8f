"""The load-test generator: reproducible, realistic, and its ground truth right.

The truth is checked against an independent reading of the contract's rules (``rule_codes``),
applied to the documents the plan actually sends.
"""

from __future__ import annotations

import random
import re
from collections import Counter, defaultdict
from datetime import date
from decimal import Decimal

import msgspec
import pytest

from loadtest import ids
from loadtest.generator import generate
from loadtest.truth import DEFAULT_MIX, FaultMix, Plan, PlannedRecord
from schemas.codec import decode_document, readable_fields
from schemas.documents import Document, Logistics, Order, Payment
from schemas.errors import SchemaError

WINDOW = 20.0
SETTLE = 3.0
EVEN = FaultMix.even()
RULE_KINDS = {
    "amount_mismatch": "AMOUNT_MISMATCH",
    "order_arithmetic": "ORDER_ARITHMETIC",
    "line_total": "ORDER_ARITHMETIC",
    "payer_mismatch": "PAYER_MISMATCH",
    "payment_reference": "PAYMENT_REFERENCE_MISMATCH",
    "consignee_mismatch": "CONSIGNEE_MISMATCH",
    "invalid_buyer_id": "INVALID_BUYER_ID",
    "single_limit": "SINGLE_LIMIT_EXCEEDED",
}


@pytest.fixture(scope="module")
def plan() -> Plan:
    return generate(7, 2500, rate=50, window=WINDOW, settle=SETTLE, faults=EVEN)


def decoded(plan: Plan) -> list[tuple[PlannedRecord, Document | None]]:
    out: list[tuple[PlannedRecord, Document | None]] = []
    for record in plan.records:
        try:
            out.append((record, decode_document(record.doc_type, record.value)))
        except SchemaError:
            out.append((record, None))
    return out


def rule_codes(order: Order, payment: Payment, waybill: Logistics) -> set[str]:
    """The contract's rules, read independently of sandan's matchers (no annual ledger)."""
    codes = set()
    if order.acturalPaid != payment.amountPaid:
        codes.add("AMOUNT_MISMATCH")
    lines = order.orderList
    if (
        order.acturalPaid != order.goodsValue + order.freight + order.taxTotal - order.discount
        or any(line.totalPrice != line.price * line.qty for line in lines)
        or sum(line.totalPrice for line in lines) != order.goodsValue
    ):
        codes.add("ORDER_ARITHMETIC")
    if (order.buyerName, order.buyerIdNumber) != (payment.payerName, payment.payerIdNumber):
        codes.add("PAYER_MISMATCH")
    if (order.payCode is not None and order.payCode != payment.payCode) or (
        order.payTransactionId is not None and order.payTransactionId != payment.payTransactionId
    ):
        codes.add("PAYMENT_REFERENCE_MISMATCH")
    fields = ("consignee", "consigneeTelephone", "consigneeAddress")
    if any(getattr(order, f) != getattr(waybill, f) for f in fields):
        codes.add("CONSIGNEE_MISMATCH")
    if not ids.is_valid_resident_id(order.buyerIdNumber):
        codes.add("INVALID_BUYER_ID")
    one_item = len(lines) == 1 and lines[0].qty == 1
    value = dutiable(order, waybill)
    if value > 5000 and not (one_item and value <= 26000):
        codes.add("SINGLE_LIMIT_EXCEEDED")
    return codes


def dutiable(order: Order, waybill: Logistics) -> Decimal:
    return order.goodsValue + order.freight + (waybill.insuredFee or 0)


def versions(plan: Plan) -> dict[str, list[Document]]:
    """Each decided ticket's declared document versions (appStatus 2), in sending order."""
    out: dict[str, list[Document]] = defaultdict(list)
    for record, doc in decoded(plan):
        if record.ticket_id is not None and doc is not None and doc.appStatus == "2":
            out[record.ticket_id].append(doc)
    return out


def first_and_last(docs: list[Document]) -> tuple[dict[str, Document], dict[str, Document]]:
    first: dict[str, Document] = {}
    last: dict[str, Document] = {}
    for doc in docs:
        if doc.appType == "1":
            first.setdefault(doc.doc_type, doc)
        if doc.appType != "3":
            last[doc.doc_type] = doc
    return first, last


def test_same_seed_gives_identical_bytes() -> None:
    one = generate(3, 400, rate=100, window=WINDOW, faults=EVEN)
    two = generate(3, 400, rate=100, window=WINDOW, faults=EVEN)
    assert msgspec.json.encode(one) == msgspec.json.encode(two)


def test_another_seed_gives_another_plan() -> None:
    one = generate(3, 50, window=WINDOW)
    two = generate(4, 50, window=WINDOW)
    assert [r.value for r in one.records] != [r.value for r in two.records]


def test_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="window"):
        generate(1, 10, window=9.0, max_delay=1.0, settle=3.0)
    with pytest.raises(ValueError, match="rate"):
        generate(1, 10, rate=0, window=WINDOW)
    with pytest.raises(ValueError, match="sum"):
        FaultMix(**dict.fromkeys(FaultMix.kinds(), 0.1))


def test_records_are_sorted_and_unique_where_they_should_be(plan: Plan) -> None:
    times = [r.at for r in plan.records]
    assert times == sorted(times)
    assert plan.tickets == len(plan.decisions)
    for ticket, revisions in plan.decisions.items():
        assert [d.revision for d in revisions] == list(range(1, len(revisions) + 1))
        assert all(d.ticket_id == ticket for d in revisions)
    orders = [d for _, d in decoded(plan) if isinstance(d, Order) and d.appStatus == "2"]
    platforms = defaultdict(set)
    for order in orders:
        platforms[order.orderNo].add(order.ebpCode)
    shared = [number for number, codes in platforms.items() if len(codes) > 1]
    assert len(shared) == plan.faults["ambiguous_waybill"]  # orderNo is unique but for them
    values = {r.value for r in plan.records}  # distinct but for redeliveries
    guids = [guid for v in values if (guid := readable_fields(v).get("guid")) is not None]
    assert len(set(guids)) == len(guids) > 0.99 * len(values)


def test_rate_spaces_the_slots() -> None:
    clean = generate(5, 60, rate=10.0, window=WINDOW, max_delay=0.5, faults=FaultMix())
    starts: dict[str, float] = {}
    for record in clean.records:
        assert record.ticket_id is not None
        starts.setdefault(record.ticket_id, record.at)
    for i, at in enumerate(starts.values()):
        assert i / 10.0 <= at <= i / 10.0 + 0.5
    assert all(r.at <= 0.5 for r in generate(5, 60, window=WINDOW, max_delay=0.5).records[:50])


def test_default_mix_is_mostly_clean() -> None:
    assert 0.96 < 1 - DEFAULT_MIX.total < 0.98
    mix = generate(11, 3000, window=86400.0).faults
    assert 0.95 < mix["clean"] / 3000 < 0.99


def test_every_kind_is_planned_under_the_even_mix(plan: Plan) -> None:
    assert set(plan.faults) == {"clean", *FaultMix.kinds()}
    assert min(plan.faults.values()) >= 40


def test_valid_records_decode_and_garbage_does_not(plan: Plan) -> None:
    failing = [r for r, doc in decoded(plan) if doc is None]
    schema = [r for r in plan.rejections if r.code == "SCHEMA"]
    assert len(failing) == len(schema) == plan.faults["schema"]
    guids = Counter(readable_fields(r.value).get("guid") for r in failing)
    assert guids == Counter(r.guid for r in schema)
    assert guids[None] > 0
    assert sum(guids.values()) > guids[None]
    assert all(r.ticket_id is None for r in failing)


def test_the_truth_agrees_with_the_rules(plan: Plan) -> None:
    docs = versions(plan)
    checked = 0
    for ticket, revisions in plan.decisions.items():
        first, last = first_and_last(docs[ticket])
        for decision in revisions:
            if decision.missing or "ANNUAL_LIMIT_EXCEEDED" in decision.codes:
                continue
            fixed = decision.revision > 1 and plan.kinds[ticket] == "change_after_divert"
            use = last if fixed else first
            order, payment, waybill = use["order"], use["payment"], use["logistics"]
            assert isinstance(order, Order)
            assert isinstance(payment, Payment)
            assert isinstance(waybill, Logistics)
            assert rule_codes(order, payment, waybill) == set(decision.codes), ticket
            if decision.decision == "RELEASE":
                assert decision.full_tax == (dutiable(order, waybill) > 5000), ticket
            checked += 1
    assert checked > 2000


def test_the_annual_ledger_agrees(plan: Plan) -> None:
    """Released tickets per buyer and year stay within 26000; each ANNUAL divert would pass it."""
    docs = versions(plan)
    done = [(r.at, r.ticket_id) for r in plan.records if r.ticket_id in plan.decisions]
    completed = {ticket: at for at, ticket in sorted(done) if ticket}  # the last record's time
    ledger: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    annual = 0
    for ticket in sorted(completed, key=completed.__getitem__):
        final = plan.decisions[ticket][-1]
        _, last = first_and_last(docs[ticket])
        order, waybill = last.get("order"), last.get("logistics")
        if not isinstance(order, Order) or not isinstance(waybill, Logistics):
            continue
        key = (order.buyerIdNumber, order.appTime[:4])
        value = dutiable(order, waybill)
        if final.decision == "RELEASE":
            ledger[key] += value
            assert ledger[key] <= 26000, ticket
        if "ANNUAL_LIMIT_EXCEEDED" in final.codes:
            annual += 1
            assert ledger[key] + value > 26000, ticket
    assert annual > 0
    pool = [total for (buyer, _), total in ledger.items() if total <= 15000]
    assert len(pool) > len(ledger) * 0.8


def test_clean_tickets_are_realistic(plan: Plan) -> None:
    docs = versions(plan)
    clean = [t for t, kind in plan.kinds.items() if kind == "clean"]
    buyers: Counter[str] = Counter()
    for ticket in clean:
        first, _ = first_and_last(docs[ticket])
        order, payment, waybill = first["order"], first["payment"], first["logistics"]
        assert isinstance(order, Order)
        assert isinstance(payment, Payment)
        assert isinstance(waybill, Logistics)
        assert ids.is_valid_resident_id(order.buyerIdNumber)
        assert dutiable(order, waybill) <= 5000
        assert 1 <= len(order.orderList) <= 5
        assert payment.payTime <= payment.appTime
        assert all(a.as_tuple().exponent == -2 for a in (order.goodsValue, order.acturalPaid))
        assert ticket == f"{order.ebpCode}:{order.orderNo}"
        buyers[order.buyerIdNumber] += 1
    assert max(buyers.values()) >= 3  # people buy again
    numbers = [r.value for r in plan.records if b'"amountPaid":"' not in r.value]
    assert any(b'"amountPaid":' in v for v in numbers)  # amounts sometimes as JSON numbers
    keys = Counter(type(r.key) for r in plan.records)
    assert keys[type(None)] > 0
    assert keys[bytes] > 0


def outcomes(plan: Plan, kind: str) -> Counter[tuple[tuple[str, tuple[str, ...]], ...]]:
    return Counter(
        tuple((d.decision, d.codes) for d in revisions)
        for ticket, revisions in plan.decisions.items()
        if plan.kinds[ticket] == kind
    )


def test_each_kind_has_its_outcome(plan: Plan) -> None:
    for kind, code in RULE_KINDS.items():
        assert set(outcomes(plan, kind)) == {(("DIVERT", (code,)),)}, kind
    assert set(outcomes(plan, "clean")) == {(("RELEASE", ()),)}
    assert set(outcomes(plan, "full_tax")) == {(("RELEASE", ()),)}
    assert all(
        d.full_tax for t, ds in plan.decisions.items() for d in ds if plan.kinds[t] == "full_tax"
    )
    annual = outcomes(plan, "annual_limit")
    assert annual[(("DIVERT", ("ANNUAL_LIMIT_EXCEEDED",)),)] > 0
    assert sum(annual.values()) == 2 * plan.faults["annual_limit"]
    missing = ("DIVERT", ("MISSING_DOCUMENTS",))
    assert set(outcomes(plan, "missing_document")) == {(missing,)}
    assert set(outcomes(plan, "late_document")) == {(missing, ("RELEASE", ()))}
    fixed = outcomes(plan, "change_after_divert")
    assert all(len(o) == 2 and o[0][0] == "DIVERT" for o in fixed)
    assert any(o[1] == ("RELEASE", ()) for o in fixed)
    assert any(o[1][0] == "DIVERT" for o in fixed)
    multiple = outcomes(plan, "multiple")
    assert all(len(o) == 1 and len(o[0][1]) >= 2 for o in multiple)
    ambiguous = outcomes(plan, "ambiguous_waybill")
    assert set(ambiguous) == {
        (("DIVERT", ("AMBIGUOUS_WAYBILL",)), missing),
        (missing,),
    }
    assert ambiguous[(missing,)] == plan.faults["ambiguous_waybill"]
    released = ("duplicate", "redelivery", "stale_change", "change_after_release")
    for kind in (*released, "alert_id_consignees", "alert_address_ids", "alert_split_orders"):
        assert set(outcomes(plan, kind)) == {(("RELEASE", ()),)}, kind
    rejected = Counter(r.code for r in plan.rejections)
    assert rejected["DUPLICATE"] == plan.faults["duplicate"]
    assert rejected["STALE"] == plan.faults["stale_change"]
    assert rejected["TICKET_RELEASED"] == plan.faults["change_after_release"]
    assert rejected["UNKNOWN_DOCUMENT"] == plan.faults["unknown_document"]
    assert rejected["DRAFT"] > plan.faults["draft"]  # some drafts are redelivered
    redelivered = Counter((r.key, r.value) for r in plan.records)
    assert sum(n - 1 for n in redelivered.values()) > plan.faults["redelivery"]


def test_follow_ups_wait_for_what_they_depend_on(plan: Plan) -> None:
    times: dict[str, list[float]] = defaultdict(list)
    for record in plan.records:
        if record.ticket_id is not None:
            times[record.ticket_id].append(record.at)
    for ticket, kind in plan.kinds.items():
        at = sorted(times[ticket])
        if kind == "late_document":
            assert at[-1] - at[0] >= WINDOW + SETTLE - 1e-9
        if kind in ("duplicate", "change_after_release"):
            assert at[-1] - at[-2] >= SETTLE - 1e-9
        if kind == "ambiguous_waybill" and ticket.startswith(":"):
            pair = [t for t in plan.kinds if t.endswith(ticket) and t != ticket]
            assert at[0] - max(max(times[t]) for t in pair) >= SETTLE - 1e-9
    for ticket, kind in plan.kinds.items():
        if kind in ("stale_change", "unknown_document", "change_after_divert", "ambiguous_waybill"):
            at = sorted(times[ticket])
            assert at[-1] - at[0] <= WINDOW - SETTLE, ticket


def test_resident_ids() -> None:
    assert ids.check_char("11010519491231002") == "X"
    assert ids.is_valid_resident_id("11010519491231002X")
    assert ids.is_valid_resident_id("440305198012262283")  # tests/data
    assert not ids.is_valid_resident_id("11010519491231002x")
    assert not ids.is_valid_resident_id("440305198002302281")
    rng = random.Random(1)
    for _ in range(2000):
        valid = ids.resident_id(rng)
        assert ids.is_valid_resident_id(valid)
        born = date(int(valid[6:10]), int(valid[10:12]), int(valid[12:14]))
        assert date(1950, 1, 1) <= born <= date(2005, 12, 31)
        assert not ids.is_valid_resident_id(ids.invalid_resident_id(rng))


def test_guids_and_serials() -> None:
    rng = random.Random(2)
    pattern = re.compile(r"[0-9A-F]{8}-[0-9A-F]{4}-4[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}")
    assert all(pattern.fullmatch(ids.guid(rng)) for _ in range(100))
    assert ids.serial(rng, "HT{d}##@", date(2026, 3, 1))[:10] == "HT20260301"
    assert re.fullmatch(r"E\d{9}CN", ids.serial(rng, "E#########CN", date(2026, 3, 1)))
