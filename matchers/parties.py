"""Party rules between order and payment: ``PAYER_MISMATCH`` and ``PAYMENT_REFERENCE_MISMATCH``.

Both compare strings exactly, as customs does (no trimming, no case folding). Each returns at most
one reason whose ``fields`` list exactly the differing fields, keyed by the order's field name:
``{"buyerIdNumber": [order value, payment value]}``. The ``detail`` names fields, never values:
details may be logged, and these values identify a person.
"""

from __future__ import annotations

from schemas.documents import Order, Payment
from schemas.outputs import Reason

__all__ = ("check_payer", "check_payment_reference")


def check_payer(order: Order, payment: Payment) -> list[Reason]:
    """``PAYER_MISMATCH`` unless buyerName = payerName and buyerIdNumber = payerIdNumber."""
    name_ok = order.buyerName == payment.payerName
    id_ok = order.buyerIdNumber == payment.payerIdNumber
    if name_ok and id_ok:
        return []
    fields: dict[str, list[str | None]] = {}
    differing: list[str] = []
    if not name_ok:
        fields["buyerName"] = [order.buyerName, payment.payerName]
        differing.append("payerName differs from buyerName")
    if not id_ok:
        fields["buyerIdNumber"] = [order.buyerIdNumber, payment.payerIdNumber]
        differing.append("payerIdNumber differs from buyerIdNumber")
    return [Reason("PAYER_MISMATCH", "payment " + "; ".join(differing), fields)]


def check_payment_reference(order: Order, payment: Payment) -> list[Reason]:
    """``PAYMENT_REFERENCE_MISMATCH`` where the order names payCode/payTransactionId and they
    differ from the payment's; an absent or empty reference on the order is not checked."""
    pay_code = order.payCode
    transaction = order.payTransactionId
    code_ok = not pay_code or pay_code == payment.payCode
    transaction_ok = not transaction or transaction == payment.payTransactionId
    if code_ok and transaction_ok:
        return []
    fields: dict[str, list[str | None]] = {}
    if not code_ok:
        fields["payCode"] = [pay_code, payment.payCode]
    if not transaction_ok:
        fields["payTransactionId"] = [transaction, payment.payTransactionId]
    detail = "order names a different payment: " + ", ".join(fields) + " differ"
    return [Reason("PAYMENT_REFERENCE_MISMATCH", detail, fields)]
