"""Builders of valid input documents for tests, starting from docs/examples' clean ticket.

``order_dict()`` / ``payment_dict()`` / ``logistics_dict()`` return the JSON objects with any
field replaced by keyword; ``as_bytes`` encodes one as a record value; ``order()`` etc. decode
to the msgspec documents.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from schemas.codec import decode_document
from schemas.documents import Logistics, Order, Payment

__all__ = (
    "DROP",
    "as_bytes",
    "logistics",
    "logistics_dict",
    "order",
    "order_dict",
    "payment",
    "payment_dict",
)

_DATA = Path(__file__).parent / "data"
_EXAMPLES = {
    name: json.loads((_DATA / f"{name}.json").read_text())
    for name in ("order", "payment", "logistics")
}


def _build(name: str, overrides: dict[str, Any]) -> dict[str, Any]:
    document: dict[str, Any] = copy.deepcopy(_EXAMPLES[name])
    for field, value in overrides.items():
        if value is _DROP:
            document.pop(field, None)
        else:
            document[field] = value
    return document


_DROP = object()
DROP = _DROP  # pass as a value to remove a field


def order_dict(**overrides: Any) -> dict[str, Any]:
    return _build("order", overrides)


def payment_dict(**overrides: Any) -> dict[str, Any]:
    return _build("payment", overrides)


def logistics_dict(**overrides: Any) -> dict[str, Any]:
    return _build("logistics", overrides)


def as_bytes(document: dict[str, Any]) -> bytes:
    return json.dumps(document, ensure_ascii=False).encode()


def order(**overrides: Any) -> Order:
    decoded = decode_document("order", as_bytes(order_dict(**overrides)))
    assert isinstance(decoded, Order)
    return decoded


def payment(**overrides: Any) -> Payment:
    decoded = decode_document("payment", as_bytes(payment_dict(**overrides)))
    assert isinstance(decoded, Payment)
    return decoded


def logistics(**overrides: Any) -> Logistics:
    decoded = decode_document("logistics", as_bytes(logistics_dict(**overrides)))
    assert isinstance(decoded, Logistics)
    return decoded
