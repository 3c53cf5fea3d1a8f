"""Reading receipt records (``cbec.receipt``) in tests, whichever format they are in."""

from __future__ import annotations

from typing import Any

import msgspec

from schemas.receipts import decode_receipt

__all__ = ("receipt",)

FORMATS = {b"application/json": "json", b"application/xml": "xml"}


def receipt(record: Any) -> dict[str, Any]:
    """A receipt record as one dict: its fields as the JSON object has them (``format`` says
    which format it came in, ``key`` the record key)."""
    kind = FORMATS[dict(record.headers)["content-type"]]
    key = record.key.decode() if record.key is not None else None
    fields = msgspec.to_builtins(decode_receipt(record.value, xml=kind == "xml"))
    return {"format": kind, "key": key, **fields}
