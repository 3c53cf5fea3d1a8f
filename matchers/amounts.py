"""Amount rules: ``AMOUNT_MISMATCH`` (order against payment) and ``ORDER_ARITHMETIC`` (the order's
own sums).

Amounts are :class:`~decimal.Decimal` (N19,5) and are compared exactly, so ``497.5`` equals
``497.50``. Sums and products run in :data:`EXACT`, a context with 60 significant digits: a
product of two N19,5 amounts has at most 38 digits and a sum of 99 lines at most 21, so nothing
ever rounds. ``Inexact`` is trapped, so a rounding would raise instead of passing unnoticed.

``ORDER_ARITHMETIC`` yields one reason per broken equation, in this order:

1. ``acturalPaid = goodsValue + freight + taxTotal - discount``
   fields ``{"acturalPaid": [stated, computed]}``
2. for each line *i*: ``totalPrice = price x qty``
   fields ``{"orderList[i].totalPrice": [stated, computed]}`` (*i* counts from 0)
3. ``goodsValue = sum of the lines' stated totalPrice``
   fields ``{"goodsValue": [stated, computed]}``
"""

from __future__ import annotations

from decimal import Context, Decimal, DivisionByZero, Inexact, InvalidOperation, Overflow

from schemas.documents import Order, Payment
from schemas.outputs import Reason

__all__ = ("EXACT", "amount_text", "check_amount_paid", "check_order_arithmetic")

EXACT = Context(prec=60, traps=[InvalidOperation, DivisionByZero, Overflow, Inexact])

_ZERO = Decimal(0)
# Bound once: the hot path calls them per ticket and per line.
_add = EXACT.add
_subtract = EXACT.subtract
_multiply = EXACT.multiply


def amount_text(value: Decimal) -> str:
    """Plain decimal text, never in exponent notation (``0E-10`` -> ``0.0000000000``)."""
    return f"{value:f}"


def check_amount_paid(order: Order, payment: Payment) -> list[Reason]:
    """``AMOUNT_MISMATCH`` unless order ``acturalPaid`` equals payment ``amountPaid``."""
    if order.acturalPaid == payment.amountPaid:
        return []
    stated, paid = amount_text(order.acturalPaid), amount_text(payment.amountPaid)
    return [
        Reason(
            "AMOUNT_MISMATCH",
            f"order acturalPaid {stated} differs from payment amountPaid {paid}",
            {"acturalPaid": [stated, paid]},
        )
    ]


def check_order_arithmetic(order: Order) -> list[Reason]:
    """``ORDER_ARITHMETIC``: one reason per broken equation of the order (see the module doc)."""
    reasons: list[Reason] = []
    total = _subtract(_add(_add(order.goodsValue, order.freight), order.taxTotal), order.discount)
    if total != order.acturalPaid:
        stated, computed = amount_text(order.acturalPaid), amount_text(total)
        reasons.append(
            Reason(
                "ORDER_ARITHMETIC",
                f"acturalPaid {stated} is not goodsValue + freight + taxTotal - discount"
                f" = {computed}",
                {"acturalPaid": [stated, computed]},
            )
        )
    lines_total = _ZERO
    for index, line in enumerate(order.orderList):
        line_total = line.totalPrice
        product = _multiply(line.price, line.qty)
        if product != line_total:
            stated, computed = amount_text(line_total), amount_text(product)
            reasons.append(
                Reason(
                    "ORDER_ARITHMETIC",
                    f"line {line.gnum} totalPrice {stated} is not price x qty = {computed}",
                    {f"orderList[{index}].totalPrice": [stated, computed]},
                )
            )
        lines_total = _add(lines_total, line_total)
    if lines_total != order.goodsValue:
        stated, computed = amount_text(order.goodsValue), amount_text(lines_total)
        reasons.append(
            Reason(
                "ORDER_ARITHMETIC",
                f"goodsValue {stated} is not the sum of the lines' totalPrice = {computed}",
                {"goodsValue": [stated, computed]},
            )
        )
    return reasons
