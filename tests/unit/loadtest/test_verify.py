"""verify(): silent when the outputs are exactly the truth, and names every kind of difference."""

from __future__ import annotations

import copy
import random
from collections import Counter
from typing import Any

import pytest

from loadtest.generator import generate
from loadtest.truth import FaultMix, Plan
from loadtest.verify import perfect_outputs, verify

Outputs = tuple[list[dict[str, Any]], list[dict[str, Any]]]


@pytest.fixture(scope="module")
def plan() -> Plan:
    return generate(21, 400, rate=100, window=20.0, faults=FaultMix.even())


@pytest.fixture
def outputs(plan: Plan) -> Outputs:
    return copy.deepcopy(perfect_outputs(plan))


def find(decisions: list[dict[str, Any]], **match: Any) -> dict[str, Any]:
    return next(d for d in decisions if all(d.get(k) == v for k, v in match.items()))


def reason(code: str) -> dict[str, Any]:
    return {"code": code, "detail": "", "fields": {}}


def test_the_truth_itself_has_no_mismatch(plan: Plan, outputs: Outputs) -> None:
    decisions, rejections = outputs
    random.Random(1).shuffle(decisions)  # output order does not matter
    report = verify(plan, decisions, rejections)
    assert report.ok, report.mismatches
    assert report.tickets_expected == report.tickets_decided == plan.tickets
    assert report.decisions_seen == report.decisions_expected == len(decisions)
    assert report.released + report.diverted == len(decisions)
    assert report.rejections_seen == report.rejections_expected == len(plan.rejections)
    assert set(report.rejected_by_code) == {
        "SCHEMA", "STALE", "DUPLICATE", "UNKNOWN_DOCUMENT", "TICKET_RELEASED", "DRAFT",
    }  # fmt: skip
    assert report.diverted_by_code["MISSING_DOCUMENTS"] > 0
    assert report.diverted_by_code["AMBIGUOUS_WAYBILL"] > 0


def test_repeated_reason_codes_count_once(plan: Plan, outputs: Outputs) -> None:
    decisions, rejections = outputs
    divert = find(decisions, decision="DIVERT")
    divert["reasons"] = divert["reasons"] * 2  # e.g. one reason per wrong line
    assert verify(plan, decisions, rejections).ok


def test_a_missing_decision(plan: Plan, outputs: Outputs) -> None:
    decisions, rejections = outputs
    gone = decisions.pop(0)
    report = verify(plan, decisions, rejections)
    assert report.mismatches == [
        line for line in report.mismatches if f"{gone['ticketId']} [" in line
    ]
    assert any("missing decision" in line for line in report.mismatches)
    if gone["revision"] == 1 and len(plan.decisions[gone["ticketId"]]) > 1:
        assert any("revisions seen" in line for line in report.mismatches)


def test_an_extra_decision_for_an_unplanned_ticket(plan: Plan, outputs: Outputs) -> None:
    decisions, rejections = outputs
    decisions.append({"ticketId": "X:1", "decision": "DIVERT", "revision": 1, "missing": []})
    report = verify(plan, decisions, rejections)
    assert report.mismatches == ["X:1 [not planned] rev 1: extra decision DIVERT"]
    assert report.tickets_decided == plan.tickets + 1


def test_a_wrong_decision(plan: Plan, outputs: Outputs) -> None:
    decisions, rejections = outputs
    release = find(decisions, decision="RELEASE", fullTax=False)
    release |= {"decision": "DIVERT", "reasons": [{"code": "AMOUNT_MISMATCH"}]}
    [line] = verify(plan, decisions, rejections).mismatches
    assert line.endswith("expected RELEASE, got DIVERT AMOUNT_MISMATCH")


def test_wrong_codes_missing_and_full_tax(plan: Plan, outputs: Outputs) -> None:
    decisions, rejections = outputs
    ambiguous = find(decisions, reasons=[reason("AMBIGUOUS_WAYBILL")])
    ambiguous["reasons"][0]["code"] = "MISSING_DOCUMENTS"
    missing = find(decisions, reasons=[reason("MISSING_DOCUMENTS")])
    missing["missing"] = ["order", "payment", "logistics"]
    full_tax = find(decisions, fullTax=True)
    full_tax["fullTax"] = False
    lines = verify(plan, decisions, rejections).mismatches
    assert len(lines) == 3
    wrong_code = "expected DIVERT AMBIGUOUS_WAYBILL missing logistics, got DIVERT MISSING_DOC"
    assert any(wrong_code in x for x in lines)
    assert any("got DIVERT MISSING_DOCUMENTS missing logistics+order+payment" in x for x in lines)
    assert any(x.endswith("expected RELEASE fullTax, got RELEASE") for x in lines)


def test_released_twice_and_decided_twice(plan: Plan, outputs: Outputs) -> None:
    decisions, rejections = outputs
    once = [d for d in decisions if len(plan.decisions[d["ticketId"]]) == 1]
    release = find(once, decision="RELEASE", fullTax=False)
    decisions.append(dict(release, revision=2))  # released again
    decisions.append(dict(release))  # the same decision twice (a replay)
    lines = verify(plan, decisions, rejections).mismatches
    assert any(x.endswith("rev 2: extra decision RELEASE") for x in lines)
    assert any(x.endswith("rev 1: decided 2 times") for x in lines)
    assert any(x.endswith("released 3 times") for x in lines)


def test_a_revision_gap(plan: Plan, outputs: Outputs) -> None:
    decisions, rejections = outputs
    second = find(decisions, revision=2)
    second["revision"] = 3
    lines = verify(plan, decisions, rejections).mismatches
    assert any("rev 2: missing decision" in x for x in lines)
    assert any("rev 3: extra decision" in x for x in lines)
    assert any("revisions seen [1, 3], not 1..3" in x for x in lines)


def test_rejections_compare_as_a_multiset(plan: Plan, outputs: Outputs) -> None:
    decisions, rejections = outputs
    stale = next(r for r in rejections if r["code"] == "STALE")
    rejections.remove(stale)
    rejections.append(dict(stale, code="DUPLICATE"))
    schema = next(r for r in rejections if r["code"] == "SCHEMA")
    rejections.append(dict(schema))
    report = verify(plan, decisions, rejections)
    guid = stale["guid"]
    assert sorted(report.mismatches) == sorted(
        [
            f"rejection STALE {stale['docType']} guid {guid}: expected 1, seen 0",
            f"rejection DUPLICATE {stale['docType']} guid {guid}: expected 0, seen 1",
            f"rejection SCHEMA {schema['docType']} guid {schema['guid']}: "
            f"expected {report_count(plan, schema)}, seen {report_count(plan, schema) + 1}",
        ]
    )


def report_count(plan: Plan, rejection: dict[str, Any]) -> int:
    key = (rejection["code"], rejection["docType"], rejection["guid"])
    return sum((r.code, r.doc_type, r.guid) == key for r in plan.rejections)


def test_malformed_decisions_are_reported(plan: Plan, outputs: Outputs) -> None:
    decisions, rejections = outputs
    decisions.append({"ticketId": None, "decision": "MAYBE"})
    lines = verify(plan, decisions, rejections).mismatches
    assert len(lines) == 1
    assert lines[0].startswith("malformed decision")


def test_counts(plan: Plan, outputs: Outputs) -> None:
    decisions, rejections = outputs
    report = verify(plan, decisions[:10], rejections[:3])
    assert not report.ok
    assert report.decisions_seen == 10
    assert report.released == sum(d["decision"] == "RELEASE" for d in decisions[:10])
    assert report.rejections_seen == 3
    assert sum(report.rejected_by_code.values()) == 3


def test_a_moved_ticket_is_checked_for_exactly_once_only(plan: Plan, outputs: Outputs) -> None:
    decisions, rejections = outputs
    late = next(t for t, kind in plan.kinds.items() if kind == "late_document")
    stale = next(r for r in rejections if r["code"] == "STALE")
    stale_ticket = next(
        p.ticket_id for p in plan.records if stale["guid"].encode() in p.value and p.ticket_id
    )
    mine = [d for d in decisions if d["ticketId"] == late]
    assert [d["revision"] for d in mine] == [1, 2]
    # Its document arrived within the window after all: one release instead of divert+release.
    decisions.remove(mine[1])
    mine[0].update(decision="RELEASE", reasons=[], missing=[])
    rejections.remove(stale)  # and a stale change arrived before the ticket completed
    moved = frozenset({late, stale_ticket})
    report = verify(plan, decisions, rejections, moved)
    assert report.ok, report.mismatches
    assert report.tickets_moved == 2
    assert not verify(plan, decisions, rejections).ok

    # What holds whatever the timing still holds for them.
    decisions.append(dict(mine[0]))
    rejections += [dict(stale), dict(stale)]
    lines = verify(plan, decisions, rejections, moved).mismatches
    assert f"rejection STALE {stale['docType']} guid {stale['guid']}: seen 2" in lines
    assert f"{late} [late_document, moved] rev 1: decided 2 times" in lines
    assert f"{late} [late_document, moved]: released 2 times" in lines
    gone = [d for d in decisions if d["ticketId"] != late]
    assert (
        f"{late} [late_document, moved]: never decided"
        in verify(plan, gone, rejections, moved).mismatches
    )


def test_a_moved_tickets_rejection_planned_twice_may_be_seen_twice(
    plan: Plan, outputs: Outputs
) -> None:
    """A redelivered draft is rejected each time: on a moved ticket, twice is right (the chaos
    run flagged it as a duplicate), three times is not."""
    decisions, rejections = outputs
    planned = Counter((r.code, r.doc_type, r.guid) for r in plan.rejections)
    code, doc_type, guid = next(k for k, n in planned.items() if k[0] == "DRAFT" and n == 2)
    assert guid is not None
    (ticket,) = {p.ticket_id for p in plan.records if guid.encode() in p.value}
    assert ticket is not None
    moved = frozenset({ticket})
    assert verify(plan, decisions, rejections, moved).ok
    draft = next(r for r in rejections if r["guid"] == guid)
    lines = verify(plan, decisions, [*rejections, dict(draft)], moved).mismatches
    assert lines == [f"rejection {code} {doc_type} guid {guid}: seen 3"]
