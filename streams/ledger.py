"""The buyer ledger stage (pure): each buyer's released dutiable value per calendar year.

Clean tickets arrive keyed by ``buyerIdNumber`` as :class:`~streams.tickets.LedgerRequest`; the
ledger releases the ticket if the buyer's total for the order's year stays within the annual
limit (and adds it), else diverts it ``ANNUAL_LIMIT_EXCEEDED``. Either way an
:class:`~streams.tickets.Outcome` goes back to the ticket's partition.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

from matchers.limits import check_annual_limit
from schemas.outputs import Decision
from streams.tickets import LedgerRequest, Outcome
from streams.timefmt import iso_ms

__all__ = ("BuyerLedger", "decide")


class BuyerLedger(msgspec.Struct, array_like=True, gc=False):
    """Released dutiable value by calendar year."""

    totals: dict[int, Decimal] = msgspec.field(default_factory=dict)


def decide(
    ledger: BuyerLedger, request: LedgerRequest, annual_limit: Decimal, now_ms: int
) -> tuple[Decision, Outcome]:
    """Release or divert one clean ticket, updating ``ledger`` in place when released."""
    decision = request.decision
    dutiable = decision.dutiableValue or Decimal(0)
    released = ledger.totals.get(request.year, Decimal(0))
    reasons = check_annual_limit(released, dutiable, annual_limit)
    decision.decidedAt = iso_ms(now_ms)
    if reasons:
        decision.decision = "DIVERT"
        decision.reasons = reasons
        decision.missing = []
    else:
        decision.decision = "RELEASE"
        ledger.totals[request.year] = released + dutiable
    outcome = Outcome(decision.orderNo, decision.ebpCode or "", decision.revision, not reasons)
    return decision, outcome
