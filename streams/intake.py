"""The validate-and-key stage: one consumed record becomes documents or rejections (pure).

A record holds one JSON document, or one CEB XML message of up to 100 documents (its nodes,
schemas/ceb_xml.py). Each valid node goes on as a document of its own, represented by its
canonical JSON (what the ticket stage stores, parks and repartitions, and what a later
rejection of it carries as ``raw``), with its :class:`Origin`, so that its receipts go back as
XML to the message's sender. An invalid node is rejected with the node element as ``raw``.
The stage reads no clock and does no I/O: the engine hands it the record's coordinates.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from schemas.ceb_xml import Message, Node, decode_message, is_xml
from schemas.codec import BUSINESS_KEY_FIELDS, decode_document, encode_json, readable_fields
from schemas.documents import DocType, Document
from schemas.errors import SchemaError
from schemas.outputs import Rejection, RejectionCode, Source

__all__ = ("Accepted", "Incoming", "Origin", "Refused", "read", "reject", "validate")

# A whole message rejected before (or instead of) parsing still has its receipt routed to the
# sender the bytes name, if they name one; this only picks a record key, it trusts nothing.
_COP_CODE = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?copCode>\s*([^<\s]{1,18})\s*</")
_XML_FIELDS = {
    name: re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?" + name.encode() + rb">([^<]{1,100})</")
    for name in BUSINESS_KEY_FIELDS
}


class Origin(NamedTuple):
    """Where a document that came in an XML message came from."""

    cop_code: str  # BaseTransfer/copCode: its receipts go to this code, as XML
    message_guid: str
    node: int  # 1-based position in the message


class Incoming(NamedTuple):
    """A consumed document, as the stages see it: ``value`` is its JSON."""

    doc_type: DocType
    key: bytes | None
    value: bytes | None
    source: Source
    origin: Origin | None = None  # None: a JSON record


Accepted = tuple[Incoming, Document]


class Refused(NamedTuple):
    """A rejection at intake, and where its receipt goes."""

    rejection: Rejection
    cop_code: str | None  # an XML message's sender, where the bytes name one
    xml: bool


def read(record: Incoming, max_bytes: int, max_message_bytes: int) -> list[Accepted | Refused]:
    """The documents of a record (a JSON document or an XML message), each valid one with its
    Incoming, and the rejections (``SCHEMA``, ``DRAFT``) of the others."""
    if not is_xml(record.value):
        result = validate(record, max_bytes)
        if isinstance(result, Rejection):
            return [Refused(result, None, xml=False)]
        return [(record, result)]
    try:
        message = decode_message(record.doc_type, record.value, max_message_bytes)
    except SchemaError as exc:
        match = _COP_CODE.search(record.value or b"")
        rejection = Rejection(
            code="SCHEMA",
            detail=exc.detail,
            docType=record.doc_type,
            source=record.source,
            raw=record.value or b"",
        )
        return [
            Refused(rejection, match.group(1).decode(errors="replace") if match else None, True)
        ]
    return [_node(record, message, node, max_bytes) for node in message.nodes]


def _node(record: Incoming, message: Message, node: Node, max_bytes: int) -> Accepted | Refused:
    index, document, error, xml = node
    value = encode_json(document) if document is not None else xml
    if document is not None and len(value) > max_bytes:
        document = None
        error = (
            f"node {index}: document of {len(value)} bytes exceeds the limit of {max_bytes} "
            "bytes - at `$`"
        )
    if document is None:
        rejection = Rejection(
            code="SCHEMA",
            detail=error or f"node {index}: invalid",
            docType=record.doc_type,
            source=record.source,
            raw=value,
            node=index,
            messageGuid=message.guid,
            **_xml_fields(value),
        )
        return Refused(rejection, message.cop_code, xml=True)
    origin = Origin(message.cop_code, message.guid, index)
    incoming = Incoming(record.doc_type, record.key, value, record.source, origin)
    if document.appStatus == "1":
        return Refused(_draft(incoming, document), message.cop_code, xml=True)
    return incoming, document


def _xml_fields(xml: bytes) -> dict[str, str]:
    found = {}
    for name, pattern in _XML_FIELDS.items():
        match = pattern.search(xml)
        if match:
            found[name] = match.group(1).decode(errors="replace")
    return found


def validate(record: Incoming, max_bytes: int) -> Document | Rejection:
    """Decode a JSON document, or say why it is rejected (code ``SCHEMA`` or ``DRAFT``)."""
    try:
        document = decode_document(record.doc_type, record.value, max_bytes)
    except SchemaError as exc:
        return Rejection(
            code="SCHEMA",
            detail=exc.detail,
            docType=record.doc_type,
            source=record.source,
            raw=record.value or b"",
            **readable_fields(record.value),  # type: ignore[arg-type]  # the str key fields
        )
    if document.appStatus == "1":
        return _draft(record, document)
    return document


def _draft(record: Incoming, document: Document) -> Rejection:
    return reject(
        record, document, "DRAFT", "appStatus 1 (draft) is not declared - at `$.appStatus`"
    )


def reject(record: Incoming, document: Document, code: RejectionCode, detail: str) -> Rejection:
    """A rejection of a decoded document, repeating its business key fields."""
    origin = record.origin
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
        node=origin.node if origin else None,
        messageGuid=origin.message_guid if origin else None,
    )
