"""AMOUNT_MISMATCH and ORDER_ARITHMETIC: examples, then properties over N19,5 amounts."""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal, localcontext
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from matchers.amounts import EXACT, amount_text, check_amount_paid, check_order_arithmetic
from schemas.documents import Order, Payment
from tests import factories

MAX = Decimal("99999999999999.99999")  # N19,5: 14 integer and 5 fraction digits
STEP = Decimal("0.01")


def _keys(order: Order, payment: Payment) -> set[tuple[str, str]]:
    reasons = check_amount_paid(order, payment) + check_order_arithmetic(order)
    return {(reason.code, field) for reason in reasons for field in reason.fields}


def _line(gnum: int, price: str, qty: str, total: str) -> dict[str, Any]:
    base = factories.order_dict()["orderList"][0]
    return {**base, "gnum": gnum, "price": price, "qty": qty, "totalPrice": total}


# Examples


def test_clean_ticket_has_no_amount_reasons() -> None:
    assert check_amount_paid(factories.order(), factories.payment()) == []
    assert check_order_arithmetic(factories.order()) == []


def test_equal_amounts_with_different_scales_match() -> None:
    assert check_amount_paid(factories.order(), factories.payment(amountPaid="497.5")) == []
    assert check_amount_paid(factories.order(), factories.payment(amountPaid=497.5)) == []


def test_amount_mismatch_by_one_fen() -> None:
    [reason] = check_amount_paid(factories.order(), factories.payment(amountPaid="497.49"))
    assert reason.code == "AMOUNT_MISMATCH"
    assert reason.fields == {"acturalPaid": ["497.50", "497.49"]}


def test_actural_paid_not_the_sum_of_its_parts() -> None:
    [reason] = check_order_arithmetic(factories.order(acturalPaid="497.49"))
    assert reason.code == "ORDER_ARITHMETIC"
    assert reason.fields == {"acturalPaid": ["497.49", "497.50"]}


def test_discount_and_tax_enter_the_sum() -> None:
    order = factories.order(discount="20", taxTotal="44.24", acturalPaid="521.74")
    assert check_order_arithmetic(order) == []


def test_line_total_not_price_times_qty_also_breaks_goods_value() -> None:
    lines = [_line(1, "199.00", "2", "398.01"), _line(2, "89.50", "1", "89.50")]
    reasons = check_order_arithmetic(factories.order(orderList=lines))
    assert [r.fields for r in reasons] == [
        {"orderList[0].totalPrice": ["398.01", "398.00"]},
        {"goodsValue": ["487.50", "487.51"]},
    ]
    assert {r.code for r in reasons} == {"ORDER_ARITHMETIC"}


def test_goods_value_not_the_sum_of_the_lines() -> None:
    [reason] = check_order_arithmetic(factories.order(goodsValue="487.51", acturalPaid="497.51"))
    assert reason.fields == {"goodsValue": ["487.51", "487.50"]}


def test_every_broken_equation_is_reported() -> None:
    lines = [_line(1, "1", "2", "3"), _line(2, "5", "1", "4")]
    order = factories.order(orderList=lines, goodsValue="1", acturalPaid="2")
    reasons = check_order_arithmetic(order)
    assert [next(iter(r.fields)) for r in reasons] == [
        "acturalPaid",
        "orderList[0].totalPrice",
        "orderList[1].totalPrice",
        "goodsValue",
    ]


def test_gift_line_with_zero_price() -> None:
    lines = [_line(1, "487.50", "1", "487.50"), _line(2, "0", "3", "0.00")]
    assert check_order_arithmetic(factories.order(orderList=lines)) == []


def test_largest_amounts_compute_exactly() -> None:
    line = _line(1, "99999999999999.99999", "1", "99999999999999.99999")
    order = factories.order(
        orderList=[line], goodsValue=str(MAX), freight="0", acturalPaid=str(MAX)
    )
    assert check_order_arithmetic(order) == []
    # 38 significant digits: the default context (28 digits) would round this product.
    units = 9_999_999_999_999_999_999
    assert EXACT.multiply(MAX, MAX) == Decimal(f"{units * units}E-10")  # exact: no context
    assert EXACT.multiply(MAX, MAX) != MAX * MAX


def test_amount_text_never_uses_exponents() -> None:
    assert amount_text(EXACT.multiply(Decimal("0.00000"), Decimal("0.00000"))) == "0.0000000000"
    assert amount_text(Decimal("497.50")) == "497.50"


# Properties


def _amount(draw: st.DrawFn, places: int, upper: Decimal) -> Decimal:
    top = int((upper.scaleb(places)).to_integral_value(ROUND_FLOOR))
    return Decimal(draw(st.integers(0, max(top, 0)))).scaleb(-places)


@st.composite
def consistent_amounts(draw: st.DrawFn) -> dict[str, Any]:
    """Amounts of an order whose equations hold, each with room for one more 0.01."""
    with localcontext(prec=60):
        budget = MAX - STEP
        lines = []
        for _ in range(draw(st.integers(1, 4))):
            qty_places = draw(st.integers(0, 5))
            price_places = draw(st.integers(0, 5 - qty_places))  # so the product fits N19,5
            qty = _amount(draw, qty_places, budget)
            price_cap = min(budget / qty, MAX - STEP) if qty else MAX - STEP
            price = _amount(draw, price_places, price_cap)
            lines.append([price, qty, price * qty])
            budget -= price * qty
        goods = sum((total for _, _, total in lines), Decimal(0))
        freight = _amount(draw, draw(st.integers(0, 5)), budget)
        tax = _amount(draw, draw(st.integers(0, 5)), budget - freight)
        discount = _amount(draw, draw(st.integers(0, 5)), goods + freight + tax)
        paid = goods + freight + tax - discount
    return {
        "goodsValue": goods,
        "freight": freight,
        "taxTotal": tax,
        "discount": discount,
        "acturalPaid": paid,
        "amountPaid": paid,
        "lines": lines,
    }


def _documents(amounts: dict[str, Any]) -> tuple[Order, Payment]:
    lines = [
        _line(gnum, amount_text(p), amount_text(q), amount_text(t))
        for gnum, (p, q, t) in enumerate(amounts["lines"], start=1)
    ]
    heads = ("goodsValue", "freight", "taxTotal", "discount", "acturalPaid")
    order = factories.order(orderList=lines, **{k: amount_text(amounts[k]) for k in heads})
    return order, factories.payment(amountPaid=amount_text(amounts["amountPaid"]))


@settings(database=None)
@given(consistent_amounts())
def test_consistent_amounts_give_no_reasons(amounts: dict[str, Any]) -> None:
    assert _keys(*_documents(amounts)) == set()


HEAD_EFFECTS = {
    "acturalPaid": {("AMOUNT_MISMATCH", "acturalPaid"), ("ORDER_ARITHMETIC", "acturalPaid")},
    "amountPaid": {("AMOUNT_MISMATCH", "acturalPaid")},
    "goodsValue": {("ORDER_ARITHMETIC", "acturalPaid"), ("ORDER_ARITHMETIC", "goodsValue")},
    "freight": {("ORDER_ARITHMETIC", "acturalPaid")},
    "taxTotal": {("ORDER_ARITHMETIC", "acturalPaid")},
    "discount": {("ORDER_ARITHMETIC", "acturalPaid")},
}


@settings(database=None)
@given(consistent_amounts(), st.data())
def test_one_fen_off_breaks_the_right_rule(amounts: dict[str, Any], data: st.DataObject) -> None:
    lines = range(len(amounts["lines"]))
    targets: list[str | tuple[int, int]] = [
        *HEAD_EFFECTS,
        *((i, j) for i in lines for j in range(3)),
    ]
    target = data.draw(st.sampled_from(targets))
    down = data.draw(st.booleans())

    def nudge(value: Decimal) -> Decimal:
        return value - STEP if down and value >= STEP else value + STEP

    if isinstance(target, str):
        amounts[target] = nudge(amounts[target])
        expected = HEAD_EFFECTS[target]
    else:
        index, column = target
        line = amounts["lines"][index]
        line[column] = nudge(line[column])
        line_key = ("ORDER_ARITHMETIC", f"orderList[{index}].totalPrice")
        if column == 2:  # totalPrice: its line and the sum of the lines
            expected = {line_key, ("ORDER_ARITHMETIC", "goodsValue")}
        else:  # price or qty: the line, unless the other factor is zero
            expected = {line_key} if line[1 - column] != 0 else set()
    assert _keys(*_documents(amounts)) == expected
