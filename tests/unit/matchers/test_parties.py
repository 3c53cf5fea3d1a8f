"""PAYER_MISMATCH and PAYMENT_REFERENCE_MISMATCH: exact comparisons between order and payment."""

from __future__ import annotations

import pytest

from matchers.parties import check_payer, check_payment_reference
from tests import factories


def test_clean_ticket_has_no_party_reasons() -> None:
    order, payment = factories.order(), factories.payment()
    assert check_payer(order, payment) == []
    assert check_payment_reference(order, payment) == []


@pytest.mark.parametrize(
    ("overrides", "fields"),
    [
        ({"payerName": "王芳"}, {"buyerName": ["王芳张", "王芳"]}),
        ({"payerName": "王芳张 "}, {"buyerName": ["王芳张", "王芳张 "]}),  # trailing space
        (
            {"payerIdNumber": "11010519491231002X"},
            {"buyerIdNumber": ["440305198012262283", "11010519491231002X"]},
        ),
        (
            {"payerName": "李四", "payerIdNumber": "11010519491231002X"},
            {
                "buyerName": ["王芳张", "李四"],
                "buyerIdNumber": ["440305198012262283", "11010519491231002X"],
            },
        ),
    ],
)
def test_payer_mismatch_lists_the_differing_fields(
    overrides: dict[str, str], fields: dict[str, list[str]]
) -> None:
    [reason] = check_payer(factories.order(), factories.payment(**overrides))
    assert reason.code == "PAYER_MISMATCH"
    assert reason.fields == fields
    for value in overrides.values():
        assert value.strip() not in reason.detail


def test_payer_id_compare_is_exact_on_the_check_character() -> None:
    order = factories.order(buyerIdNumber="11010519491231002X")
    payment = factories.payment(payerIdNumber="11010519491231002x")
    [reason] = check_payer(order, payment)
    assert set(reason.fields) == {"buyerIdNumber"}


@pytest.mark.parametrize(
    ("overrides", "fields"),
    [
        ({"payCode": "440316999X"}, {"payCode": ["440316999X", "4403169D3W"]}),
        (
            {"payTransactionId": "PAY-OTHER"},
            {"payTransactionId": ["PAY-OTHER", "PAY9FDCC88713814260AE65"]},
        ),
        (
            {"payCode": "440316999X", "payTransactionId": "PAY-OTHER"},
            {
                "payCode": ["440316999X", "4403169D3W"],
                "payTransactionId": ["PAY-OTHER", "PAY9FDCC88713814260AE65"],
            },
        ),
    ],
)
def test_payment_reference_mismatch(
    overrides: dict[str, str], fields: dict[str, list[str]]
) -> None:
    [reason] = check_payment_reference(factories.order(**overrides), factories.payment())
    assert reason.code == "PAYMENT_REFERENCE_MISMATCH"
    assert reason.fields == fields


@pytest.mark.parametrize("missing", [factories.DROP, ""])
def test_payment_reference_absent_from_the_order_is_not_checked(missing: object) -> None:
    order = factories.order(payCode=missing, payTransactionId=missing)
    payment = factories.payment(payCode="OTHER", payTransactionId="OTHER")
    assert check_payment_reference(order, payment) == []
