"""Review actions on the real broker, two workers sharing the partitions, through ``sandan
review`` as a reviewer runs it: each action and its decision on the output topics, each
refusal and its exit code, the annual limit a release cannot override, a review produced to
the wrong partition forwarded to its ticket's, and what lookups and the audit then show."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from schemas.keys import murmur2_partition
from tests.integration.conftest import PARTITIONS, Deployment
from tests.integration.kafka import Timeout, consume, run, sandan
from tests.integration.test_contract import (
    EBP,
    Rec,
    decisions_of,
    new_buyer_id,
    new_order_no,
    outputs,
    rejections_of,
    send,
    ticket_docs,
    version,
)
from tests.integration.test_lookup import get, ticket_path

ANNUAL_LIMIT = "800"  # two tickets of 497.50 are over it
SHORT = {"amountPaid": "500.00"}  # paid more than acturalPaid: AMOUNT_MISMATCH


@pytest.fixture(scope="module")
def two(brokers: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    d = Deployment(brokers, tmp_path_factory.mktemp("reviews"), SANDAN_ANNUAL_LIMIT=ANNUAL_LIMIT)
    workers = [d.worker("w1"), d.worker("w2")]
    timeout = Timeout(90, "the two workers to share the partitions")
    while timeout:
        statuses = [w.status() for w in workers]
        if all(s and s["partitions"] for s in statuses):
            break
        time.sleep(0.5)
    yield d
    d.stop()


def review(
    d: Deployment, ticket: str, revision: int, action: str, *more: str
) -> subprocess.CompletedProcess[str]:
    return sandan(
        [
            "review",
            ticket,
            "--revision",
            str(revision),
            "--action",
            action,
            "--reviewer",
            "officer-7",
            "--note",
            f"{action} after a call",
            "--wait",
            "60",
            *more,
        ],
        d.env_settings,
    )


def diverted(d: Deployment, tag: str, **order: Any) -> tuple[str, str, dict[str, Any]]:
    """A ticket diverted AMOUNT_MISMATCH at revision 1: (order number, ticket id, documents)."""
    order_no = new_order_no(tag)
    payment = dict(SHORT)
    if "buyerIdNumber" in order:
        payment["payerIdNumber"] = order["buyerIdNumber"]
    docs = ticket_docs(order_no, order=order, payment=payment)
    send(d, *(Rec(kind, docs[kind]) for kind in ("order", "payment", "logistics")))
    (divert,) = decisions_of(outputs(d, {order_no}, 1, settle=0))
    assert (divert.kind, divert.value["revision"]) == ("divert", 1)
    return order_no, f"{EBP}:{order_no}", dict(docs)


def test_release_overrides_a_divert_once(two: Deployment) -> None:
    order_no, ticket, _ = diverted(two, "RR")
    done = review(two, ticket, 1, "release", "--review-id", f"R-{order_no}")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        f"review R-{order_no}: APPLIED: RELEASE revision 2 of {ticket} (released)"
    )
    again = review(two, ticket, 2, "confirm", "--json")
    assert again.returncode == 1
    body = json.loads(again.stdout)
    assert (body["result"], body["code"]) == ("REFUSED", "TICKET_RELEASED")
    outs = decisions_of(outputs(two, {order_no}, 2))
    assert [(o.kind, o.value["revision"]) for o in outs] == [("divert", 1), ("release", 2)]
    release = outs[1].value
    assert {k: release[k] for k in ("reviewId", "reviewAction", "reviewedBy", "reviewNote")} == {
        "reviewId": f"R-{order_no}",
        "reviewAction": "RELEASE",
        "reviewedBy": "officer-7",
        "reviewNote": "release after a call",
    }


def test_confirm_closes_and_request_correction_waits_for_corrected_documents(
    two: Deployment,
) -> None:
    closed_no, closed, closed_docs = diverted(two, "RC")
    open_no, still_open, open_docs = diverted(two, "RQ")
    assert review(two, closed, 1, "confirm").returncode == 0
    asked = review(two, still_open, 1, "request-correction")
    assert asked.returncode == 0, asked.stderr
    assert "APPLIED: DIVERT revision 2" in asked.stdout
    stale = review(two, still_open, 1, "release")
    assert stale.returncode == 1
    assert stale.stdout.strip().endswith(
        f"REFUSED STALE_REVISION: the review names revision 1, but ticket {still_open} is at "
        "revision 2 (DIVERT AMOUNT_MISMATCH): look at it again"
    )
    fixed = {"amountPaid": "497.50"}
    late = version(closed_docs["payment"], "2", "20261124120000", **fixed)
    corrected = version(open_docs["payment"], "2", "20261124120000", **fixed)
    send(two, Rec("payment", late), Rec("payment", corrected))
    outs = outputs(two, {closed_no, open_no}, 6)
    assert [
        (o.value["ticketId"], o.kind, o.value["revision"]) for o in decisions_of(outs)
    ] == sorted(
        [
            (closed, "divert", 1),
            (closed, "divert", 2),
            (still_open, "divert", 1),
            (still_open, "divert", 2),
            (still_open, "release", 3),
        ]
    )
    rejected = rejections_of(outs)
    assert list(rejected) == [late["guid"]]
    assert rejected[late["guid"]].value["code"] == "TICKET_CLOSED"
    # Any worker shows the closed ticket and its review.
    for worker in two.workers:
        status, _, found = get(worker, ticket_path(closed))
        assert status == 200
        assert (found["status"], found["revision"]) == ("closed", 2)
        assert [(r["action"], r["result"]) for r in found["reviews"]] == [("CONFIRM", "APPLIED")]


def test_a_release_cannot_override_the_annual_limit(two: Deployment) -> None:
    buyer = new_buyer_id()
    first_no = new_order_no("RA")
    first = ticket_docs(first_no, order={"buyerIdNumber": buyer}, payment={"payerIdNumber": buyer})
    send(two, *(Rec(kind, first[kind]) for kind in ("order", "payment", "logistics")))
    (released,) = decisions_of(outputs(two, {first_no}, 1, settle=0))
    assert released.kind == "release"
    order_no, ticket, _ = diverted(two, "RB", buyerIdNumber=buyer)
    refused = review(two, ticket, 1, "release", "--json")
    assert refused.returncode == 1
    body = json.loads(refused.stdout)
    assert (body["result"], body["code"], body["decision"], body["decisionRevision"]) == (
        "REFUSED",
        "ANNUAL_LIMIT_EXCEEDED",
        "DIVERT",
        2,
    )
    assert "800" in body["detail"]
    outs = decisions_of(outputs(two, {order_no}, 2))
    assert [(o.kind, o.value["revision"]) for o in outs] == [("divert", 1), ("divert", 2)]
    assert [r["code"] for r in outs[1].value["reasons"]] == ["ANNUAL_LIMIT_EXCEEDED"]
    assert outs[1].value["reviewAction"] == "RELEASE"


def test_refusals_without_a_ticket_or_a_review(two: Deployment) -> None:
    unknown = review(two, f"{EBP}:{new_order_no('RU')}", 1, "confirm")
    assert unknown.returncode == 1
    assert "REFUSED UNKNOWN_TICKET: no ticket" in unknown.stdout
    bad = review(two, "no-colon", 1, "confirm")
    assert bad.returncode == 2
    assert bad.stderr.strip() == (
        "sandan: not a review: not a ticket id: 'no-colon' (expected {ebpCode}:{orderNo}) "
        "- at `$.ticketId`"
    )


def test_a_review_on_another_partition_is_forwarded_to_its_ticket(two: Deployment) -> None:
    order_no, ticket, _ = diverted(two, "RF")
    home = murmur2_partition(order_no.encode(), PARTITIONS)
    elsewhere = (home + 1) % PARTITIONS
    review_id = f"F-{order_no}"
    value = {
        "reviewId": review_id,
        "ticketId": ticket,
        "revision": 1,
        "action": "REQUEST_CORRECTION",
        "reviewer": "officer-9",
        "note": "please correct the payment",
    }
    send(two, Rec("review", value, key=b"not the order number", partition=elsewhere))
    (result,) = results_of(two, review_id)
    assert (result.partition, result.key) == (home, ticket.encode())
    body = json.loads(result.value)
    assert (body["result"], body["decision"], body["decisionRevision"]) == ("APPLIED", "DIVERT", 2)


def results_of(d: Deployment, review_id: str) -> list[Any]:
    """The records of cbec.review-result for the review, once there is one."""
    timeout = Timeout(60, f"the result of review {review_id}")
    while timeout:
        records = run(consume(d.brokers, [d.topic("review-result")], idle=1.0, limit=10))
        found = [r for r in records if json.loads(r.value)["reviewId"] == review_id]
        if found:
            return found
    raise AssertionError("unreachable")


def test_the_audit_tells_a_reviewed_ticket(two: Deployment) -> None:
    _, ticket, _ = diverted(two, "RH")
    assert review(two, ticket, 1, "confirm").returncode == 0
    timeout = Timeout(60, "the audit to show the review")
    while timeout:
        audit = sandan(["audit", "--ticket", ticket, "--json"], two.env_settings)
        assert audit.returncode == 0, audit.stderr
        events = json.loads(audit.stdout)["events"]
        reviewed = [e for e in events if e["kind"] == "reviewed"]
        if reviewed:
            break
        time.sleep(0.5)
    assert [(e["fields"]["action"], e["fields"]["result"]) for e in reviewed] == [
        ("CONFIRM", "APPLIED")
    ]
    decided = [e["fields"] for e in events if e["kind"] == "decided"]
    assert [(d["revision"], d.get("reviewAction")) for d in decided] == [(1, None), (2, "CONFIRM")]
