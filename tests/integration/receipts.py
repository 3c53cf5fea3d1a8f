"""Reading receipt records (``cbec.receipt``) in tests, whichever format they are in."""

from __future__ import annotations

import json
from typing import Any

from lxml import etree

from schemas.ceb_xml import CEB_NAMESPACE
from schemas.receipts import RECEIPT_NAMESPACE

__all__ = ("XML_KINDS", "receipt")

CEB = f"{{{CEB_NAMESPACE}}}"
OWN = f"{{{RECEIPT_NAMESPACE}}}"
XML_KINDS = {"OrderReturn": "order", "PaymentReturn": "payment", "LogisticsReturn": "logistics"}


def receipt(record: Any) -> dict[str, Any]:
    """A receipt record as one dict: the JSON object, or the XML node's fields (``format`` says
    which, ``key`` the record key); XML numbers stay text but ``revision``, ``node`` are ints and
    reason codes are gathered under ``reasons`` as in JSON."""
    headers = dict(record.headers)
    key = record.key.decode() if record.key is not None else None
    if headers.get("content-type") == b"application/json":
        return {"format": "json", "key": key, **json.loads(record.value)}
    assert headers.get("content-type") == b"application/xml", headers
    root = etree.fromstring(record.value)
    assert root.tag.startswith(CEB) and root.get("version") == "1.0"
    (node,) = root
    fields: dict[str, Any] = {"format": "xml", "key": key}
    fields["docType"] = XML_KINDS[node.tag.removeprefix(CEB)]
    reasons = []
    for child in node:
        name = child.tag.removeprefix(CEB).removeprefix(OWN)
        if name == "reason":
            reasons.append(child.text)
        elif name in ("revision", "node"):
            fields[name] = int(child.text)
        else:
            fields[name] = child.text
    if reasons:
        fields["reasons"] = reasons
    return fields
