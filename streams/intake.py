"""The validate-and-key stage: one consumed record becomes a document or a rejection (pure).

It reads no clock and does no I/O: the engine hands it the record's coordinates.
"""

from __future__ import annotations

from typing import NamedTuple

from schemas.codec import decode_document_cached, readable_fields
from schemas.documents import DocType, Document
from schemas.errors import SchemaError
from schemas.outputs import Rejection, RejectionCode, Source

__all__ = ("Incoming", "reject", "validate")


class Incoming(NamedTuple):
    """A consumed record, as the stages see it."""

    doc_type: DocType
    key: bytes | None
    value: bytes | None
    source: Source


def validate(record: Incoming, max_bytes: int) -> Document | Rejection:
    """Decode the record's value, or say why it is rejected (code ``SCHEMA`` or ``DRAFT``)."""
    try:
        document = decode_document_cached(record.doc_type, record.value, max_bytes)
    except SchemaError as exc:
        return Rejection(
            code="SCHEMA",
            detail=exc.detail,
            docType=record.doc_type,
            source=record.source,
            raw=record.value or b"",
            **readable_fields(record.value),
        )
    if document.appStatus == "1":
        return reject(
            record, document, "DRAFT", "appStatus 1 (draft) is not declared - at `$.appStatus`"
        )
    return document


def reject(record: Incoming, document: Document, code: RejectionCode, detail: str) -> Rejection:
    """A rejection of a decoded document, repeating its business key fields."""
    return Rejection(
        code=code,
        detail=detail,
        docType=record.doc_type,
        guid=document.guid,
        orderNo=document.orderNo,
        ebpCode=getattr(document, "ebpCode", None),
        payCode=getattr(document, "payCode", None),
        payTransactionId=getattr(document, "payTransactionId", None),
        logisticsCode=getattr(document, "logisticsCode", None),
        logisticsNo=getattr(document, "logisticsNo", None),
        source=record.source,
        raw=record.value or b"",
    )
