"""evaluate(): every rule family on a complete ticket; and the package stays pure."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import get_args

import msgspec
import pytest

from matchers import Evaluation, Limits, evaluate
from schemas.codec import encode_json
from schemas.outputs import DivertCode
from tests import factories

ROOT = Path(__file__).resolve().parents[3]
MODULES = ["matchers", *(f"matchers.{name}" for name in ("amounts", "parties", "consignee"))]
MODULES += ["matchers.identity", "matchers.limits"]


def test_clean_ticket_is_released_without_reasons() -> None:
    evaluation = evaluate(factories.order(), factories.payment(), factories.logistics(), Limits())
    assert evaluation == Evaluation(reasons=[], dutiable_value=Decimal("497.50"), full_tax=False)
    assert str(evaluation.dutiable_value) == "497.50"


def test_every_reason_in_the_contract_order() -> None:
    line = {**factories.order_dict()["orderList"][0], "qty": "2", "price": "3000"}
    order = factories.order(
        orderList=[{**line, "totalPrice": "6000"}],
        goodsValue="6000",
        acturalPaid="6010.01",  # goods + freight is 6010
        buyerIdNumber="440305198012262284",  # wrong check character
    )
    payment = factories.payment(amountPaid="6010", payCode="OTHER")
    logistics = factories.logistics(consigneeTelephone="13000000000")
    evaluation = evaluate(order, payment, logistics, Limits())
    codes = [reason.code for reason in evaluation.reasons]
    assert codes == list(get_args(DivertCode))[:7]
    assert evaluation.dutiable_value == Decimal("6010.00")
    assert not evaluation.full_tax


def test_reasons_encode_as_the_contract_says() -> None:
    order = factories.order(buyerIdNumber="440305198012262284")
    payment = factories.payment(payerIdNumber="440305198012262284")
    evaluation = evaluate(order, payment, factories.logistics(), Limits())
    assert json.loads(encode_json(evaluation.reasons)) == [
        {
            "code": "INVALID_BUYER_ID",
            "detail": "buyerIdNumber is not a valid resident ID: "
            "the check character is wrong (ISO 7064 MOD 11-2)",
            "fields": {"buyerIdNumber": ["440305198012262284", None]},
        }
    ]


def test_limits_and_evaluation_are_frozen() -> None:
    assert Limits() == Limits(single_limit=Decimal(5000), annual_limit=Decimal(26000))
    with pytest.raises(AttributeError):
        Limits().single_limit = Decimal(1)  # type: ignore[misc]
    assert isinstance(Limits(), msgspec.Struct)


@pytest.mark.parametrize("name", MODULES)
def test_module_exports_exist(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__all__
    for export in module.__all__:
        assert hasattr(module, export), export
    assert module.__doc__


def test_matchers_and_schemas_import_no_stream_machinery() -> None:
    code = (
        "import sys, matchers, schemas, schemas.codec, matchers.limits;"
        "print(sorted({'faust', 'aiokafka', 'rocksdict', 'streams'} & sys.modules.keys()))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
