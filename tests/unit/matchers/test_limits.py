"""SINGLE_LIMIT_EXCEEDED (with the single-item exception) and ANNUAL_LIMIT_EXCEEDED."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from matchers import Evaluation, Limits, evaluate
from matchers.limits import check_annual_limit, dutiable_value, is_single_item
from tests import factories


def _ticket(value: str, qtys: tuple[str, ...], limits: Limits | None = None) -> Evaluation:
    """Evaluate a consistent ticket of dutiable ``value``: its first line carries the value."""
    base = factories.order_dict()["orderList"][0]
    lines: list[dict[str, Any]] = [
        {**base, "gnum": gnum, "qty": qty, "price": "0", "totalPrice": "0"}
        for gnum, qty in enumerate(qtys, start=1)
    ]
    lines[0].update(price=str(Decimal(value) / Decimal(qtys[0])), totalPrice=value)
    order = factories.order(orderList=lines, goodsValue=value, freight="0", acturalPaid=value)
    return evaluate(
        order,
        factories.payment(amountPaid=value),
        factories.logistics(insuredFee="0"),
        limits or Limits(),
    )


def _codes(evaluation: Evaluation) -> list[str]:
    return [reason.code for reason in evaluation.reasons]


def test_dutiable_value_of_the_clean_ticket() -> None:
    assert dutiable_value(factories.order(), factories.logistics()) == Decimal("497.50")


def test_dutiable_value_counts_insured_fee_and_not_tax_or_discount() -> None:
    order = factories.order(taxTotal="50", discount="20", acturalPaid="527.50")
    assert dutiable_value(order, factories.logistics(insuredFee="3.5")) == Decimal("501.00")
    assert dutiable_value(order, factories.logistics(insuredFee=factories.DROP)) == Decimal(
        "497.50"
    )


def test_single_item_means_one_line_of_qty_one() -> None:
    line = {**factories.order_dict()["orderList"][1], "gnum": 1}  # qty 1, 89.50
    assert is_single_item(
        factories.order(orderList=[line], goodsValue="89.50", acturalPaid="99.50")
    )
    assert not is_single_item(factories.order())
    assert is_single_item(
        factories.order(orderList=[{**line, "qty": "1.00000"}], goodsValue="89.50")
    )


@pytest.mark.parametrize(
    ("value", "qtys", "codes", "full_tax"),
    [
        ("5000", ("1", "1"), [], False),  # exactly the single limit, two lines
        ("5000.01", ("1", "1"), ["SINGLE_LIMIT_EXCEEDED"], False),
        ("5000.01", ("2",), ["SINGLE_LIMIT_EXCEEDED"], False),  # one line, but qty 2
        ("5000", ("1",), [], False),  # a single item at the limit pays the usual tax
        ("5000.01", ("1",), [], True),  # the single-item exception
        ("26000", ("1",), [], True),  # exactly the annual limit
        ("26000.01", ("1",), ["SINGLE_LIMIT_EXCEEDED"], False),
    ],
)
def test_single_limit_boundaries(
    value: str, qtys: tuple[str, ...], codes: list[str], full_tax: bool
) -> None:
    evaluation = _ticket(value, qtys)
    assert _codes(evaluation) == codes
    assert evaluation.full_tax is full_tax
    assert evaluation.dutiable_value == Decimal(value)


def test_single_limit_reason_names_the_limit_applied() -> None:
    [multi] = _ticket("5000.01", ("1", "1")).reasons
    assert multi.fields == {"dutiableValue": ["5000.01", "5000"]}
    [single] = _ticket("26000.01", ("1",)).reasons
    assert single.fields == {"dutiableValue": ["26000.01", "26000"]}


def test_limits_are_settings() -> None:
    limits = Limits(single_limit=Decimal(2000), annual_limit=Decimal(20000))
    assert _codes(_ticket("2000.01", ("1", "1"), limits)) == ["SINGLE_LIMIT_EXCEEDED"]
    assert _ticket("20000", ("1",), limits).full_tax
    assert _codes(_ticket("20000.01", ("1",), limits)) == ["SINGLE_LIMIT_EXCEEDED"]


def test_annual_limit_at_and_above() -> None:
    limit = Decimal(26000)
    assert check_annual_limit(Decimal("25502.50"), Decimal("497.50"), limit) == []
    assert check_annual_limit(Decimal(0), Decimal(26000), limit) == []
    [reason] = check_annual_limit(Decimal("25502.51"), Decimal("497.50"), limit)
    assert reason.code == "ANNUAL_LIMIT_EXCEEDED"
    assert reason.fields == {"dutiableValue": ["497.50", "25502.51"]}
