"""Consignee rule between order and waybill: ``CONSIGNEE_MISMATCH``.

The order's ``consignee``, ``consigneeTelephone`` and ``consigneeAddress`` must equal the
waybill's exactly, as customs compares them: a trailing space or a full-width digit is a
mismatch. One reason lists exactly the differing fields, ``{field: [order value, waybill
value]}``; its ``detail`` names the fields only (the values are personal data and details may be
logged).
"""

from __future__ import annotations

from schemas.documents import Logistics, Order
from schemas.outputs import Reason

__all__ = ("CONSIGNEE_FIELDS", "check_consignee")

CONSIGNEE_FIELDS = ("consignee", "consigneeTelephone", "consigneeAddress")


def check_consignee(order: Order, logistics: Logistics) -> list[Reason]:
    """``CONSIGNEE_MISMATCH`` unless the three consignee fields equal the waybill's."""
    name_ok = order.consignee == logistics.consignee
    phone_ok = order.consigneeTelephone == logistics.consigneeTelephone
    address_ok = order.consigneeAddress == logistics.consigneeAddress
    if name_ok and phone_ok and address_ok:
        return []
    fields: dict[str, list[str | None]] = {}
    if not name_ok:
        fields["consignee"] = [order.consignee, logistics.consignee]
    if not phone_ok:
        fields["consigneeTelephone"] = [order.consigneeTelephone, logistics.consigneeTelephone]
    if not address_ok:
        fields["consigneeAddress"] = [order.consigneeAddress, logistics.consigneeAddress]
    detail = "waybill differs from the order in " + ", ".join(fields)
    return [Reason("CONSIGNEE_MISMATCH", detail, fields)]
