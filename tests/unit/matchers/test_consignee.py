"""CONSIGNEE_MISMATCH: the order's consignee fields against the waybill's, exactly."""

from __future__ import annotations

import pytest

from matchers.consignee import CONSIGNEE_FIELDS, check_consignee
from tests import factories


def test_clean_ticket_has_no_consignee_reason() -> None:
    assert check_consignee(factories.order(), factories.logistics()) == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("consignee", "王芳张 "),  # trailing space
        ("consignee", "王芳"),
        ("consigneeTelephone", "1314982770\uff16"),  # full-width digit
        ("consigneeTelephone", "13149827707"),
        ("consigneeAddress", "浙江省杭州市西湖区文三路1号 "),
        ("consigneeAddress", "浙江省杭州市西湖区文三路\uff11号"),
    ],
)
def test_one_differing_field(field: str, value: str) -> None:
    order = factories.order()
    [reason] = check_consignee(order, factories.logistics(**{field: value}))
    assert reason.code == "CONSIGNEE_MISMATCH"
    assert reason.fields == {field: [getattr(order, field), value]}
    assert field in reason.detail
    assert value.strip() not in reason.detail


def test_all_differing_fields_in_one_reason() -> None:
    waybill = factories.logistics(
        consignee="李四", consigneeTelephone="13000000000", consigneeAddress="北京市"
    )
    [reason] = check_consignee(factories.order(), waybill)
    assert tuple(reason.fields) == CONSIGNEE_FIELDS
    assert reason.fields["consigneeAddress"] == ["浙江省杭州市西湖区文三路1号", "北京市"]


def test_consignee_need_not_be_the_buyer() -> None:
    order = factories.order(consignee="李四")
    assert check_consignee(order, factories.logistics(consignee="李四")) == []
