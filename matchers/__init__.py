"""The customs rules as pure functions over the documents: no I/O, no clock, no logging.

One module per rule family, each function returning every :class:`~schemas.outputs.Reason` it
finds (an empty list when the rule holds):

- :mod:`matchers.amounts`: ``AMOUNT_MISMATCH``, ``ORDER_ARITHMETIC``
- :mod:`matchers.parties`: ``PAYER_MISMATCH``, ``PAYMENT_REFERENCE_MISMATCH``
- :mod:`matchers.consignee`: ``CONSIGNEE_MISMATCH``
- :mod:`matchers.identity`: ``INVALID_BUYER_ID``
- :mod:`matchers.limits`: ``SINGLE_LIMIT_EXCEEDED``; ``ANNUAL_LIMIT_EXCEEDED`` for the ledger

:func:`evaluate` runs the per-ticket rules on a complete ticket, in the order of the contract's
table, and concatenates their reasons. The annual limit needs the buyer's ledger and is left to
the stage that keeps it (:func:`matchers.limits.check_annual_limit`).
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

from matchers.amounts import check_amount_paid, check_order_arithmetic
from matchers.consignee import check_consignee
from matchers.identity import check_buyer_id
from matchers.limits import (
    ANNUAL_LIMIT,
    SINGLE_LIMIT,
    check_single_limit,
    dutiable_value,
    is_full_tax,
)
from matchers.parties import check_payer, check_payment_reference
from schemas.documents import Logistics, Order, Payment
from schemas.outputs import Reason

__all__ = ("RULES_VERSION", "Evaluation", "Limits", "evaluate")

# The rule set's version, in every decision record (``decidedBy.rulesVersion``): raised
# whenever a change to a rule can change a decision for some input (a rule added, removed or
# made stricter or looser, its order of reasons), never for a change that cannot.
RULES_VERSION = "1"


class Limits(msgspec.Struct, frozen=True, kw_only=True):
    """The value limits in CNY (settings ``SANDAN_SINGLE_LIMIT``, ``SANDAN_ANNUAL_LIMIT``)."""

    single_limit: Decimal = SINGLE_LIMIT
    annual_limit: Decimal = ANNUAL_LIMIT


class Evaluation(msgspec.Struct, frozen=True):
    """The outcome of the per-ticket rules: every reason found (none means the ticket may go on
    to the ledger), the ticket's dutiable value, and whether it is released with full tax."""

    reasons: list[Reason]
    dutiable_value: Decimal
    full_tax: bool


def evaluate(order: Order, payment: Payment, logistics: Logistics, limits: Limits) -> Evaluation:
    """Run every per-ticket rule on a complete ticket, in the contract's order."""
    # Plain calls rather than a loop over a tuple of rules: the signatures differ, and this is
    # the hot path (one call per complete ticket).
    reasons = check_amount_paid(order, payment)
    reasons += check_order_arithmetic(order)
    reasons += check_payer(order, payment)
    reasons += check_payment_reference(order, payment)
    reasons += check_consignee(order, logistics)
    reasons += check_buyer_id(order)
    dutiable = dutiable_value(order, logistics)
    single, annual = limits.single_limit, limits.annual_limit
    reasons += check_single_limit(order, dutiable, single, annual)
    return Evaluation(reasons, dutiable, is_full_tax(order, dutiable, single, annual))
