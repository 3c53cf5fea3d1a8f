"""Review actions (docs/contract.md, "Reviews") through the pipeline (streams.pipeline) on a
store in a temporary directory, fed consumer records as the engine feeds them: each action,
each refusal, the buyer ledger's word on a release, forwarding to the ticket's partition, and
the review records' own validation (schemas.reviews).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from schemas.errors import SchemaError
from schemas.keys import murmur2_partition
from schemas.reviews import decode_review
from streams.audit import history, render_text
from streams.inspect import render_ticket
from streams.lookup import ticket_answer
from streams.records import Output, Record
from streams.timefmt import iso_ms
from tests.factories import as_bytes, logistics_dict, order_dict, payment_dict
from tests.unit.streams.harness import PARTITIONS, T0, PipelineHarness, on

ORDER_NO = "SO20261124000001"
EBP = "3301980ABC"
TICKET = f"{EBP}:{ORDER_NO}"
HOME = murmur2_partition(ORDER_NO.encode(), PARTITIONS)  # the ticket's partition


class Harness(PipelineHarness):
    """The pipeline, fed tickets and reviews."""

    def ticket(self, at_ms: int, order_no: str = ORDER_NO, **payment: Any) -> list[Output]:
        """The three documents of one ticket (the payment with ``payment``'s fields)."""
        key = order_no.encode()
        out = self.feed(
            "order", as_bytes(order_dict(orderNo=order_no, guid=guid(order_no, 1))), at_ms, key
        )
        out += self.feed(
            "payment",
            as_bytes(payment_dict(orderNo=order_no, guid=guid(order_no, 2), **payment)),
            at_ms + 1,
            key,
        )
        out += self.feed(
            "logistics",
            as_bytes(logistics_dict(orderNo=order_no, guid=guid(order_no, 3))),
            at_ms + 2,
            key,
        )
        return out

    def review(self, at_ms: int, partition: int = HOME, **fields: Any) -> list[Output]:
        return self.feed("review", review_bytes(**fields), at_ms, ORDER_NO.encode(), partition)


def guid(order_no: str, n: int) -> str:
    return f"00000000-0000-4000-8000-{zlib.crc32(order_no.encode()):010d}{n:02d}"


def review_bytes(**fields: Any) -> bytes:
    review = {
        "reviewId": "R-1",
        "ticketId": TICKET,
        "revision": 1,
        "action": "RELEASE",
        "reviewer": "officer-7",
        "note": "the payment firm confirmed the amount by phone",
    } | fields
    return json.dumps(review, ensure_ascii=False).encode()


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    h = Harness(tmp_path)
    yield h
    h.close()


def records(outputs: list[Output], topic: str) -> list[dict[str, Any]]:
    return [json.loads(o.value or b"") for o in on(outputs, topic)]


def result(outputs: list[Output]) -> dict[str, Any]:
    """The one review result among ``outputs`` (on the ticket's partition, keyed by it)."""
    (only,) = on(outputs, "review-result")
    body: dict[str, Any] = json.loads(only.value or b"")
    if body["ticketId"] is not None:
        assert only.key == body["ticketId"].encode()
        assert only.partition == HOME
    return body


def diverted(h: Harness, at_ms: int = T0) -> dict[str, Any]:
    """A ticket diverted AMOUNT_MISMATCH at revision 1."""
    (divert,) = records(h.ticket(at_ms, amountPaid="400.00"), "divert")
    assert divert["revision"] == 1
    assert [r["code"] for r in divert["reasons"]] == ["AMOUNT_MISMATCH"]
    return divert


REVIEW_FIELDS = ("reviewId", "reviewAction", "reviewedBy", "reviewNote")


# -- the actions ----------------------------------------------------------------------------


def test_release_overrides_the_divert_through_the_buyer_ledger(harness: Harness) -> None:
    diverted(harness)
    out = harness.review(T0 + 100, note="理由: amount confirmed")
    (release,) = records(out, "release")
    assert release["revision"] == 2
    assert release["decision"] == "RELEASE"
    assert "reasons" not in release
    assert {f: release[f] for f in REVIEW_FIELDS} == {
        "reviewId": "R-1",
        "reviewAction": "RELEASE",
        "reviewedBy": "officer-7",
        "reviewNote": "理由: amount confirmed",
    }
    assert release["dutiableValue"] == "497.50"
    assert result(out) == {
        "reviewId": "R-1",
        "ticketId": TICKET,
        "revision": 1,
        "action": "RELEASE",
        "reviewer": "officer-7",
        "result": "APPLIED",
        "code": None,
        "detail": "released",
        "decision": "RELEASE",
        "decisionRevision": 2,
        "at": iso_ms(T0 + 100),
    }
    receipts = [json.loads(o.value or b"") for o in on(out, "receipt")]
    assert len(receipts) == 3  # the 399 to each sender
    assert {r["returnStatus"] for r in receipts} == {"399"}
    assert all("review RELEASE: 理由: amount confirmed" in r["returnInfo"] for r in receipts)
    # Released once: a second release of the same revision is refused.
    again = harness.review(T0 + 200, reviewId="R-2", revision=2)
    assert result(again)["code"] == "TICKET_RELEASED"
    assert not on(again, "release") and not on(again, "divert")


def test_release_by_review_still_passes_the_annual_limit(tmp_path: Path) -> None:
    h = Harness(tmp_path, env={"SANDAN_ANNUAL_LIMIT": "600"})
    try:
        (first,) = records(h.ticket(T0, order_no="SO20261124000099"), "release")  # 497.50
        assert first["buyerIdNumber"] == "440305198012262283"
        diverted(h, T0 + 10)
        out = h.review(T0 + 100)
        assert not on(out, "release")
        (divert,) = records(out, "divert")
        assert divert["revision"] == 2
        assert [r["code"] for r in divert["reasons"]] == ["ANNUAL_LIMIT_EXCEEDED"]
        assert divert["reviewAction"] == "RELEASE" and divert["reviewedBy"] == "officer-7"
        body = result(out)
        assert body["result"] == "REFUSED"
        assert body["code"] == "ANNUAL_LIMIT_EXCEEDED"
        assert body["decision"] == "DIVERT" and body["decisionRevision"] == 2
        assert body["detail"] == divert["reasons"][0]["detail"]
        assert "600" in body["detail"]
        # The ticket is diverted at revision 2: a reviewer can confirm that.
        confirmed = h.review(T0 + 200, reviewId="R-2", revision=2, action="CONFIRM")
        assert result(confirmed)["result"] == "APPLIED"
        (closing,) = records(confirmed, "divert")
        assert [r["code"] for r in closing["reasons"]] == ["ANNUAL_LIMIT_EXCEEDED"]
    finally:
        h.close()


def test_confirm_closes_the_ticket(harness: Harness) -> None:
    diverted(harness)
    out = harness.review(T0 + 100, action="CONFIRM", note="under-declared")
    (divert,) = records(out, "divert")
    assert divert["revision"] == 2
    assert divert["reasons"] == [
        {
            "code": "AMOUNT_MISMATCH",
            "detail": "AMOUNT_MISMATCH on revision 1: the divert stands",
            "fields": {},
        }
    ]
    assert divert["reviewAction"] == "CONFIRM" and divert["reviewNote"] == "under-declared"
    assert result(out) | {"at": None} == {
        "reviewId": "R-1",
        "ticketId": TICKET,
        "revision": 1,
        "action": "CONFIRM",
        "reviewer": "officer-7",
        "result": "APPLIED",
        "code": None,
        "detail": "the divert stands",
        "decision": "DIVERT",
        "decisionRevision": 2,
        "at": None,
    }
    # Closed: a corrected payment is rejected TICKET_CLOSED, with its receipt.
    key = ORDER_NO.encode()
    corrected = payment_dict(guid=guid(ORDER_NO, 4), appType="2", appTime="20261124111600")
    later = harness.feed("payment", as_bytes(corrected), T0 + 200, key)
    (rejected,) = records(later, "rejected")
    assert rejected["code"] == "TICKET_CLOSED"
    assert not on(later, "release") and not on(later, "divert")
    (receipt,) = records(later, "receipt")
    assert receipt["returnStatus"] == "100"
    # ... and so is any further review, and the window closing decides nothing.
    refused = harness.review(T0 + 300, reviewId="R-2", revision=2, action="RELEASE")
    body = result(refused)
    assert body["code"] == "TICKET_CLOSED"
    assert (
        body["detail"] == f"ticket {TICKET} was closed by officer-7 (review R-1): its divert stands"
    )
    timers = harness.feed("order", None, T0 + 20_000, b"x", partition=0)  # (a SCHEMA rejection)
    assert not on(timers, "divert")


def test_request_correction_keeps_the_ticket_open_for_corrected_documents(
    harness: Harness,
) -> None:
    diverted(harness)
    out = harness.review(T0 + 100, action="REQUEST_CORRECTION", note="请更正支付金额")
    (divert,) = records(out, "divert")
    assert divert["revision"] == 2
    assert divert["reasons"][0]["detail"] == (
        "AMOUNT_MISMATCH on revision 1: corrected documents are requested"
    )
    body = result(out)
    assert (body["result"], body["decision"], body["decisionRevision"]) == ("APPLIED", "DIVERT", 2)
    receipts = records(out, "receipt")
    assert len(receipts) == 3
    assert all("review REQUEST_CORRECTION: 请更正支付金额" in r["returnInfo"] for r in receipts)
    key = ORDER_NO.encode()
    corrected = payment_dict(guid=guid(ORDER_NO, 4), appType="2", appTime="20261124111600")
    later = harness.feed("payment", as_bytes(corrected), T0 + 200, key)
    (release,) = records(later, "release")
    assert release["revision"] == 3
    assert "reviewAction" not in release  # the rules released it, not a reviewer


# -- the refusals ---------------------------------------------------------------------------


def test_a_stale_revision_is_refused_with_where_the_ticket_is(harness: Harness) -> None:
    diverted(harness)
    harness.review(T0 + 100, action="REQUEST_CORRECTION")
    out = harness.review(T0 + 200, reviewId="R-2", revision=1, action="RELEASE")
    body = result(out)
    assert body["code"] == "STALE_REVISION"
    assert body["detail"] == (
        f"the review names revision 1, but ticket {TICKET} is at revision 2 "
        "(DIVERT AMOUNT_MISMATCH): look at it again"
    )
    assert (body["decision"], body["decisionRevision"]) == (None, None)
    assert not on(out, "release") and not on(out, "divert") and not on(out, "receipt")


def test_a_released_ticket_refuses_every_action(harness: Harness) -> None:
    assert len(records(harness.ticket(T0), "release")) == 1
    for n, action in enumerate(("RELEASE", "CONFIRM", "REQUEST_CORRECTION")):
        out = harness.review(T0 + 100 + n, reviewId=f"R-{n}", action=action)
        body = result(out)
        assert body["code"] == "TICKET_RELEASED", action
        assert body["detail"] == (
            f"ticket {TICKET} is released (revision 1); only customs' cancel or return apply"
        )
        assert len(out) == 1  # a released ticket's state does not change, not even its log


def test_a_review_of_an_undecided_or_pending_ticket_is_refused(tmp_path: Path) -> None:
    h = Harness(tmp_path, owned={HOME})  # the ledger's partition is another worker's
    try:
        key = ORDER_NO.encode()
        h.feed("order", as_bytes(order_dict(guid=guid(ORDER_NO, 1))), T0, key)
        body = result(h.review(T0 + 1))
        assert body["code"] == "NOT_DIVERTED"
        assert body["detail"] == (
            f"revision 0 of ticket {TICKET} is not a divert (open, not decided yet)"
        )
        h.feed("payment", as_bytes(payment_dict(guid=guid(ORDER_NO, 2))), T0 + 2, key)
        out = h.feed("logistics", as_bytes(logistics_dict(guid=guid(ORDER_NO, 3))), T0 + 3, key)
        assert len(on(out, "sandan-ledger")) == 1  # pending at the ledger (not owned here)
        body = result(h.review(T0 + 4, reviewId="R-2"))
        assert body["code"] == "NOT_DIVERTED"
        assert body["detail"] == (
            f"revision 1 of ticket {TICKET} is not a divert (at the buyer ledger)"
        )
    finally:
        h.close()


def test_an_unknown_ticket_is_refused_and_nothing_is_stored(harness: Harness) -> None:
    out = harness.review(T0, ticketId=f"{EBP}:{ORDER_NO}")
    body = result(out)
    assert body["code"] == "UNKNOWN_TICKET"
    assert body["detail"] == f"no ticket {TICKET}: never seen, or forgotten after its retention"
    assert not on(out, "sandan-tickets-changelog")


def test_a_repeated_review_id_is_refused_and_changes_nothing(harness: Harness) -> None:
    diverted(harness)
    first = harness.review(T0 + 100, action="REQUEST_CORRECTION")
    assert result(first)["result"] == "APPLIED"
    again = harness.review(T0 + 200, revision=2, action="RELEASE")  # the same reviewId
    body = result(again)
    assert body["code"] == "DUPLICATE_REVIEW"
    assert body["detail"] == (
        f"review R-1 (REQUEST_CORRECTION of revision 1 by officer-7) was handled at "
        f"{iso_ms(T0 + 100)}; that result stands"
    )
    assert len(again) == 1  # no decision, no state written


def test_release_needs_all_three_documents(harness: Harness) -> None:
    key = ORDER_NO.encode()
    harness.feed("order", as_bytes(order_dict(guid=guid(ORDER_NO, 1))), T0, key)
    harness.feed("payment", as_bytes(payment_dict(guid=guid(ORDER_NO, 2))), T0 + 1, key)
    (divert,) = records(harness.feed("order", None, T0 + 10_001, b"x", partition=0), "divert")
    assert divert["reasons"][0]["code"] == "MISSING_DOCUMENTS"
    body = result(harness.review(T0 + 20_000))
    assert body["code"] == "INCOMPLETE_TICKET"
    assert body["detail"] == (
        f"ticket {TICKET} has no logistics: a release needs all three documents "
        "(request a correction instead)"
    )
    out = harness.review(T0 + 20_001, reviewId="R-2", action="REQUEST_CORRECTION")
    assert result(out)["result"] == "APPLIED"
    (again,) = records(out, "divert")
    assert again["missing"] == ["logistics"]


@pytest.mark.parametrize(
    ("value", "detail"),
    [
        (None, "a review record needs a value (a JSON object)"),
        (b"{", "not JSON: Input data was truncated"),
        (review_bytes(action="APPROVE"), "Invalid enum value 'APPROVE' - at `$.action`"),
        (review_bytes(revision=0), "Expected `int` >= 1 - at `$.revision`"),
        (review_bytes(note=""), "Expected `str` of length >= 1 - at `$.note`"),
        (
            review_bytes(ticketId="SO1"),
            "not a ticket id: 'SO1' (expected {ebpCode}:{orderNo}) - at `$.ticketId`",
        ),
        (review_bytes(extra=1), "Object contains unknown field `extra`"),
    ],
)
def test_a_record_that_is_no_review_is_refused_on_its_own_partition(
    harness: Harness, value: bytes | None, detail: str
) -> None:
    out = harness.feed("review", value, T0, b"k", partition=3)
    (only,) = out
    assert (only.topic, only.key, only.partition) == ("cbec.review-result", b"k", 3)
    body = json.loads(only.value or b"")
    assert body["code"] == "INVALID_REVIEW"
    assert body["detail"] == detail
    assert body["reviewId"] is None and body["result"] == "REFUSED"


def test_a_review_on_another_partition_is_forwarded_to_its_ticket(tmp_path: Path) -> None:
    other = (HOME + 1) % PARTITIONS
    h = Harness(tmp_path, owned={other})
    try:
        value = review_bytes()
        out = h.feed("review", value, T0, b"any key", partition=other)
        (forwarded,) = out
        assert forwarded.topic == "cbec.review"
        assert (forwarded.key, forwarded.value, forwarded.partition) == (
            ORDER_NO.encode(),
            value,
            HOME,
        )
        assert forwarded.headers == [("forwarded-from", str(other).encode())]
    finally:
        h.close()


def test_a_release_by_review_on_a_pipeline_without_the_ledger_goes_to_it(
    tmp_path: Path,
) -> None:
    h = Harness(tmp_path, owned={HOME})
    try:
        out = h.ticket(T0, amountPaid="400.00")
        assert len(on(out, "divert")) == 1
        out = h.review(T0 + 100)
        assert len(on(out, "sandan-ledger")) == 1
        assert not on(out, "review-result")  # the ledger gives it
        assert not on(out, "release")
    finally:
        h.close()


def test_decode_review_accepts_a_review() -> None:
    review = decode_review(review_bytes(), 4096)
    assert (review.ebp_code, review.order_no, review.action) == (EBP, ORDER_NO, "RELEASE")
    with pytest.raises(SchemaError, match="at most 10 are accepted"):
        decode_review(review_bytes(), 10)


# -- what a lookup shows ------------------------------------------------------------------------


def lookup(h: Harness) -> dict[str, Any]:
    """``GET /v1/tickets/{id}`` of the ticket, from the committed state."""
    group, read = h.pipeline.committed_group(HOME, ORDER_NO)
    found = ticket_answer(group, read, EBP, ORDER_NO, HOME, "http://127.0.0.1:8080")
    assert found is not None
    answer: dict[str, Any] = json.loads(msgspec.json.encode(found))
    return answer


def test_a_reviewed_ticket_shows_its_reviews_and_a_confirmed_one_is_closed(
    harness: Harness,
) -> None:
    diverted(harness)
    harness.review(T0 + 100, action="REQUEST_CORRECTION")
    found = lookup(harness)
    assert (found["status"], found["revision"]) == ("diverted", 2)
    harness.review(T0 + 200, reviewId="R-2", revision=1, action="CONFIRM")  # stale
    harness.review(T0 + 300, reviewId="R-3", revision=2, action="CONFIRM")
    found = lookup(harness)
    assert (found["status"], found["revision"], found["windowClosesAt"]) == ("closed", 3, None)
    assert found["reviews"] == [
        {
            "reviewId": "R-1",
            "action": "REQUEST_CORRECTION",
            "reviewer": "officer-7",
            "revision": 1,
            "result": "APPLIED",
            "code": None,
            "at": iso_ms(T0 + 100),
        },
        {
            "reviewId": "R-2",
            "action": "CONFIRM",
            "reviewer": "officer-7",
            "revision": 1,
            "result": "REFUSED",
            "code": "STALE_REVISION",
            "at": iso_ms(T0 + 200),
        },
        {
            "reviewId": "R-3",
            "action": "CONFIRM",
            "reviewer": "officer-7",
            "revision": 2,
            "result": "APPLIED",
            "code": None,
            "at": iso_ms(T0 + 300),
        },
    ]
    assert [(d["revision"], d["decision"], d["reasons"]) for d in found["decisions"]] == [
        (1, "DIVERT", ["AMOUNT_MISMATCH"]),
        (2, "DIVERT", ["AMOUNT_MISMATCH"]),
        (3, "DIVERT", ["AMOUNT_MISMATCH"]),
    ]


def test_a_release_the_ledger_refused_is_logged_refused(tmp_path: Path) -> None:
    h = Harness(tmp_path, env={"SANDAN_ANNUAL_LIMIT": "600"})
    try:
        h.ticket(T0, order_no="SO20261124000099")
        diverted(h, T0 + 10)
        h.review(T0 + 100)
        found = lookup(h)
        assert found["status"] == "diverted"
        assert [(r["result"], r["code"]) for r in found["reviews"]] == [
            ("REFUSED", "ANNUAL_LIMIT_EXCEEDED")
        ]
    finally:
        h.close()


def test_the_audit_tells_the_reviews_from_the_output_topics(harness: Harness) -> None:
    outputs = harness.ticket(T0, amountPaid="400.00")
    outputs += harness.review(T0 + 100, action="REQUEST_CORRECTION", note="请更正")
    outputs += harness.review(T0 + 200, reviewId="R-2", revision=1)  # stale
    topics = harness.pipeline.topics
    records = [
        Record(o.topic, o.partition or 0, n, T0, o.key, o.value, tuple(o.headers or ()))
        for n, o in enumerate(outputs)
        if o.topic in topics.outputs
    ]
    events = history(TICKET, topics, records)
    decided = [e.fields for e in events if e.kind == "decided"]
    assert [(d["revision"], d.get("reviewAction")) for d in decided] == [
        (1, None),
        (2, "REQUEST_CORRECTION"),
    ]
    assert decided[1]["reviewedBy"] == "officer-7" and decided[1]["reviewNote"] == "请更正"
    reviewed = [e for e in events if e.kind == "reviewed"]
    assert [(e.at, e.fields["result"], e.fields["code"]) for e in reviewed] == [
        (iso_ms(T0 + 100), "APPLIED", None),
        (iso_ms(T0 + 200), "REFUSED", "STALE_REVISION"),
    ]
    text = render_text(TICKET, events)
    assert "REQUEST_CORRECTION of revision 1 by officer-7 (R-1): APPLIED: DIVERT revision 2" in text
    assert "RELEASE of revision 1 by officer-7 (R-2): REFUSED STALE_REVISION: " in text
    assert "by review R-1: REQUEST_CORRECTION by officer-7: 请更正" in text


def test_sandan_inspect_lists_the_reviews(harness: Harness) -> None:
    diverted(harness)
    harness.review(T0 + 100, action="CONFIRM")
    harness.review(T0 + 200, reviewId="R-2", revision=2, action="RELEASE")
    answer = lookup(harness)
    lines = render_ticket(json.dumps(answer).encode()).splitlines()
    assert lines[0].startswith(f"ticket {TICKET}: closed, revision 2")
    assert lines[-3:] == [
        "reviews:",
        f"  revision 1  CONFIRM             {iso_ms(T0 + 100)}  APPLIED  by officer-7  (R-1)",
        f"  revision 2  RELEASE             {iso_ms(T0 + 200)}  REFUSED TICKET_CLOSED  "
        "by officer-7  (R-2)",
    ]
