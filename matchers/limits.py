"""Value limits: ``SINGLE_LIMIT_EXCEEDED`` per ticket, ``ANNUAL_LIMIT_EXCEEDED`` per buyer.

The dutiable value of a ticket is ``goodsValue + order freight + waybill insuredFee`` (an absent
``insuredFee`` counts as 0); ``taxTotal`` and ``discount`` are not part of it.

Single limit: dutiable value <= ``single_limit``. Exception: an order of exactly one line with
``qty`` = 1 (a single item) is allowed up to ``annual_limit`` and then released with
``fullTax: true``; a single item above ``annual_limit`` exceeds the single limit.

Annual limit: what the ledger has released for the buyer in the calendar year, plus this ticket,
must stay <= ``annual_limit``. The ledger stage calls :func:`check_annual_limit`.
"""

from __future__ import annotations

from decimal import Decimal

from matchers.amounts import EXACT, amount_text
from schemas.documents import Logistics, Order
from schemas.outputs import Reason

__all__ = (
    "ANNUAL_LIMIT",
    "SINGLE_LIMIT",
    "check_annual_limit",
    "check_single_limit",
    "dutiable_value",
    "is_full_tax",
    "is_single_item",
)

# The law's limits in CNY (the defaults of SANDAN_SINGLE_LIMIT and SANDAN_ANNUAL_LIMIT).
SINGLE_LIMIT = Decimal(5000)
ANNUAL_LIMIT = Decimal(26000)

_add = EXACT.add


def dutiable_value(order: Order, logistics: Logistics) -> Decimal:
    """goodsValue + order freight + waybill insuredFee (None counts as 0)."""
    value = _add(order.goodsValue, order.freight)
    insured = logistics.insuredFee
    return value if insured is None else _add(value, insured)


def is_single_item(order: Order) -> bool:
    """True for an order of exactly one line with qty 1."""
    lines = order.orderList
    return len(lines) == 1 and lines[0].qty == 1


def is_full_tax(
    order: Order, dutiable: Decimal, single_limit: Decimal, annual_limit: Decimal
) -> bool:
    """True for the single-item exception: above ``single_limit``, at most ``annual_limit``."""
    return single_limit < dutiable <= annual_limit and is_single_item(order)


def check_single_limit(
    order: Order, dutiable: Decimal, single_limit: Decimal, annual_limit: Decimal
) -> list[Reason]:
    """``SINGLE_LIMIT_EXCEEDED`` unless ``dutiable`` is within the single limit or the
    single-item exception; fields ``{"dutiableValue": [dutiable value, limit applied]}``."""
    if dutiable <= single_limit:
        return []
    if is_single_item(order):
        if dutiable <= annual_limit:
            return []
        limit, kind = annual_limit, "the annual limit allowed for a single item"
    else:
        limit, kind = single_limit, "the single-transaction limit"
    value, limit_text = amount_text(dutiable), amount_text(limit)
    return [
        Reason(
            "SINGLE_LIMIT_EXCEEDED",
            f"dutiable value {value} exceeds {kind} {limit_text}",
            {"dutiableValue": [value, limit_text]},
        )
    ]


def check_annual_limit(
    released_this_year: Decimal, dutiable: Decimal, annual_limit: Decimal
) -> list[Reason]:
    """``ANNUAL_LIMIT_EXCEEDED`` unless released_this_year + dutiable <= annual_limit;
    fields ``{"dutiableValue": [this ticket, released so far this year]}``."""
    if _add(released_this_year, dutiable) <= annual_limit:
        return []
    value, released = amount_text(dutiable), amount_text(released_this_year)
    return [
        Reason(
            "ANNUAL_LIMIT_EXCEEDED",
            f"dutiable value {value} plus {released} released this year exceeds the annual"
            f" limit {amount_text(annual_limit)}",
            {"dutiableValue": [value, released]},
        )
    ]
