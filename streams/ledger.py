"""The buyer ledger stage (pure): each buyer's released dutiable value per calendar year.

Clean tickets arrive keyed by ``buyerIdNumber`` as :class:`~streams.records.LedgerRequest`; the
ledger releases the ticket if the buyer's total for the order's year stays within the annual
limit (and adds it), else diverts it ``ANNUAL_LIMIT_EXCEEDED``. Either way an
:class:`~streams.records.Outcome` goes back to the ticket's partition. A request already decided
(consumed again after a restart: the engine resumes a ledger partition at its first request still
held, and may have decided later ones) is decided once: the ledger remembers digests of the
ticket revisions it decided, per year, for this year and the last.

A release a reviewer asked for (docs/contract.md, "Reviews") comes the same way, and its review
gets its result here (:func:`review_result`): the annual limit is the law, no review overrides it.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

from matchers.limits import check_annual_limit
from schemas.outputs import Decision
from schemas.reviews import ReviewResult
from streams.digests import digest, holds
from streams.records import LedgerRequest, Outcome
from streams.timefmt import iso_ms

__all__ = ("BuyerLedger", "decide", "review_result")


class BuyerLedger(msgspec.Struct, array_like=True, gc=False):
    """Released dutiable value by calendar year, and the ticket revisions decided (digests)."""

    totals: dict[int, Decimal] = msgspec.field(default_factory=dict)
    decided: dict[int, bytes] = msgspec.field(default_factory=dict)


def _digest(request: LedgerRequest) -> bytes:
    return digest(f"{request.decision.ticketId}/{request.decision.revision}")


def decide(
    ledger: BuyerLedger, request: LedgerRequest, annual_limit: Decimal, now_ms: int
) -> tuple[Decision, Outcome] | None:
    """Release or divert one clean ticket, updating ``ledger`` in place (the total when
    released; the request is left as it is); None if this ticket revision was decided before."""
    revision, decided = _digest(request), ledger.decided.get(request.year, b"")
    if holds(decided, revision):
        return None
    ledger.decided[request.year] = decided + revision
    for year in [y for y in ledger.decided if y < request.year - 1]:
        del ledger.decided[year]
    asked = request.decision
    dutiable = asked.dutiableValue or Decimal(0)
    released = ledger.totals.get(request.year, Decimal(0))
    reasons = check_annual_limit(released, dutiable, annual_limit)
    if reasons:
        decision = msgspec.structs.replace(
            asked, decision="DIVERT", decidedAt=iso_ms(now_ms), reasons=reasons, missing=[]
        )
    else:
        decision = msgspec.structs.replace(asked, decision="RELEASE", decidedAt=iso_ms(now_ms))
        ledger.totals[request.year] = released + dutiable
    outcome = Outcome(decision.orderNo, decision.ebpCode or "", decision.revision, not reasons)
    return decision, outcome


def review_result(decision: Decision) -> ReviewResult | None:
    """The result of the review whose release the ledger just decided (None: no review asked
    for it): applied, or refused ``ANNUAL_LIMIT_EXCEEDED`` with the ledger's reason."""
    if decision.reviewAction != "RELEASE" or decision.reviewId is msgspec.UNSET:
        return None
    released = decision.decision == "RELEASE"
    reasons = decision.reasons or []
    return ReviewResult(
        reviewId=decision.reviewId,
        ticketId=decision.ticketId,
        revision=decision.revision - 1,
        action="RELEASE",
        reviewer=decision.reviewedBy or None,
        result="APPLIED" if released else "REFUSED",
        code=None if released else "ANNUAL_LIMIT_EXCEEDED",
        detail="released" if released else "; ".join(reason.detail for reason in reasons),
        decision=decision.decision,
        decisionRevision=decision.revision,
        at=decision.decidedAt,
    )
