"""Receipts: what sandan answers the sender of every document (pure: no I/O, no clock).

After the standard's receipt messages (CEB312 ``OrderReturn``, CEB412 ``PaymentReturn``, CEB512
``LogisticsReturn``, domain.md §1.4), every document, a JSON record or one node of an XML
message, gets on ``cbec.receipt``:

- one receipt when it is taken in: ``returnStatus`` ``120`` (stored, 海关入库) when it is
  applied to its ticket, or ``100`` (returned, 海关退单) when it is rejected, with the rejection
  ``code`` and detail in ``returnInfo``;
- one more each time a decision is made on a ticket that holds it: ``399`` (concluded,
  海关审结) with the ``decision``, the ticket's ``revision`` and the divert ``reasons``.

A receipt is keyed by its sender's enterprise code (the XML message's ``BaseTransfer/copCode``;
for JSON the order's ``ebpCode``, the payment's ``payCode``, the waybill's ``logisticsCode``)
and answers in the format the document came in: a one-node CEB312/412/512 XML message for an
XML node, one JSON object for a JSON document.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Literal, NamedTuple

import msgspec
from lxml import etree

from schemas.ceb_xml import CEB_NAMESPACE, PARSER
from schemas.codec import encode_json
from schemas.documents import DocType, Document, Order, Payment
from schemas.outputs import Decision, DecisionKind, Rejection

__all__ = (
    "CONCLUDED",
    "RECEIPT_NAMESPACE",
    "RETURNED",
    "STORED",
    "Addressed",
    "Addressee",
    "Receipt",
    "ReturnStatus",
    "concluded",
    "decode_receipt",
    "encode_receipt",
    "json_sender",
    "return_time",
    "returned",
    "stored",
)

ReturnStatus = Literal["100", "120", "399"]
RETURNED: ReturnStatus = "100"
STORED: ReturnStatus = "120"
CONCLUDED: ReturnStatus = "399"

# sandan's fields in an XML receipt (ticketId, code, decision, revision, reason) come after the
# standard's, in a namespace of their own: strip it to validate against the standard's XSD.
RECEIPT_NAMESPACE = "urn:sandan:receipt:1"
RETURN_INFO_LIMIT = 1000
_XML_NAMES: dict[DocType, tuple[str, str]] = {
    "order": ("CEB312Message", "OrderReturn"),
    "payment": ("CEB412Message", "PaymentReturn"),
    "logistics": ("CEB512Message", "LogisticsReturn"),
}
_STANDARD_FIELDS: dict[DocType, tuple[str, ...]] = {
    "order": ("guid", "ebpCode", "ebcCode", "orderNo"),
    "payment": ("guid", "payCode", "payTransactionId"),
    "logistics": ("guid", "logisticsCode", "logisticsNo"),
}
_XML_KINDS: dict[str, DocType] = {node: kind for kind, (_, node) in _XML_NAMES.items()}
_RETURN_FIELDS = ("returnStatus", "returnTime", "returnInfo")
_SANDAN_FIELDS = ("ticketId", "code", "decision", "revision")
_APPLIED = {"1": "新增申报成功", "2": "变更申报成功", "3": "删除申报成功"}
_CHINA = timedelta(hours=8)
_GUIDS = uuid.UUID("9b7d3c1e-5f0a-4c2b-8e6d-2a4f1c3b5d7e")  # namespace of receipt message guids
CONTENT_TYPE_JSON = ("content-type", b"application/json")
CONTENT_TYPE_XML = ("content-type", b"application/xml")


class Receipt(msgspec.Struct, kw_only=True, omit_defaults=True, gc=False):
    """One receipt: the standard's return fields for its document kind, plus sandan's."""

    docType: DocType  # noqa: N815
    guid: str | None = None
    ebpCode: str | None = None  # noqa: N815 - order receipts
    ebcCode: str | None = None  # noqa: N815
    orderNo: str | None = None  # noqa: N815
    payCode: str | None = None  # noqa: N815 - payment receipts
    payTransactionId: str | None = None  # noqa: N815
    logisticsCode: str | None = None  # noqa: N815 - waybill receipts
    logisticsNo: str | None = None  # noqa: N815
    returnStatus: ReturnStatus  # noqa: N815
    returnTime: str  # noqa: N815 - YYYYMMDDhhmmssSSS, China time
    returnInfo: str  # noqa: N815 - at most 1000 characters
    ticketId: str | None = None  # noqa: N815
    code: str | None = None  # the rejection code (returned)
    decision: DecisionKind | None = None  # concluded
    revision: int | None = None  # concluded
    reasons: list[str] | None = None  # concluded with DIVERT: the reason codes
    node: int | None = None  # the document's node in its XML message (1-based)


_RECEIPT_JSON = msgspec.json.Decoder(Receipt)


class Addressee(msgspec.Struct, array_like=True, gc=False):
    """A document a decision concerns: its kind, guid, and the ``copCode`` of the XML message
    it came in (None: it came as JSON, and its receipts go to the code it names)."""

    doc_type: DocType
    guid: str
    cop_code: str | None = None


class Addressed(NamedTuple):
    """A receipt and where it goes: the sender's code (the record key) and the format."""

    sender: str | None
    xml: bool
    receipt: Receipt


def json_sender(
    doc_type: DocType, ebp_code: str | None, pay_code: str | None, logistics_code: str | None
) -> str | None:
    """The enterprise a JSON document's receipts go to."""
    if doc_type == "order":
        return ebp_code
    return pay_code if doc_type == "payment" else logistics_code


def return_time(epoch_ms: int) -> str:
    """``YYYYMMDDhhmmssSSS`` in China time (UTC+8), as the standard's ``returnTime``."""
    return _china_second(epoch_ms // 1000) + f"{epoch_ms % 1000:03d}"


@lru_cache(maxsize=1024)  # many receipts share their second
def _china_second(epoch_s: int) -> str:
    return (datetime.fromtimestamp(epoch_s, UTC) + _CHINA).strftime("%Y%m%d%H%M%S")


class _Keys(NamedTuple):
    """The standard's key fields of a receipt, each kind using its own."""

    ebp_code: str | None = None
    ebc_code: str | None = None
    order_no: str | None = None
    pay_code: str | None = None
    pay_transaction_id: str | None = None
    logistics_code: str | None = None
    logistics_no: str | None = None

    def sender(self, kind: DocType) -> str | None:
        return json_sender(kind, self.ebp_code, self.pay_code, self.logistics_code)


def _receipt(
    kind: DocType,
    guid: str | None,
    keys: _Keys,
    status: ReturnStatus,
    now_ms: int,
    info: str,
    *,
    ticket: str | None,
    code: str | None = None,
    decision: DecisionKind | None = None,
    revision: int | None = None,
    reasons: list[str] | None = None,
    node: int | None = None,
) -> Receipt:
    return Receipt(
        docType=kind,
        guid=guid,
        ebpCode=keys.ebp_code,
        ebcCode=keys.ebc_code,
        orderNo=keys.order_no,
        payCode=keys.pay_code,
        payTransactionId=keys.pay_transaction_id,
        logisticsCode=keys.logistics_code,
        logisticsNo=keys.logistics_no,
        returnStatus=status,
        returnTime=return_time(now_ms),
        returnInfo=_limit(info),
        ticketId=ticket,
        code=code,
        decision=decision,
        revision=revision,
        reasons=reasons,
        node=node,
    )


def _document_keys(document: Document) -> _Keys:
    if isinstance(document, Order):
        return _Keys(document.ebpCode, document.ebcCode, document.orderNo)
    if isinstance(document, Payment):
        return _Keys(pay_code=document.payCode, pay_transaction_id=document.payTransactionId)
    return _Keys(logistics_code=document.logisticsCode, logistics_no=document.logisticsNo)


def stored(
    document: Document, *, ticket: str, cop_code: str | None, node: int | None, now_ms: int
) -> Addressed:
    """The document was applied to its ticket (``120``)."""
    keys = _document_keys(document)
    info = f"{_APPLIED[document.appType]}[{document.guid}]"
    receipt = _receipt(
        document.doc_type, document.guid, keys, STORED, now_ms, info, ticket=ticket, node=node
    )
    return Addressed(cop_code or keys.sender(document.doc_type), cop_code is not None, receipt)


def returned(
    rejection: Rejection, *, cop_code: str | None, xml: bool, ticket: str | None, now_ms: int
) -> Addressed:
    """The document was not accepted (``100``): the rejection's code and detail."""
    kind = rejection.docType
    if kind is None:
        msg = "a rejection of one of sandan's internal records has no sender to answer"
        raise ValueError(msg)
    if kind == "order":
        keys = _Keys(rejection.ebpCode, None, rejection.orderNo)
    elif kind == "payment":
        keys = _Keys(pay_code=rejection.payCode, pay_transaction_id=rejection.payTransactionId)
    else:
        keys = _Keys(logistics_code=rejection.logisticsCode, logistics_no=rejection.logisticsNo)
    info = f"{rejection.code}: {rejection.detail}"
    receipt = _receipt(
        kind,
        rejection.guid,
        keys,
        RETURNED,
        now_ms,
        info,
        ticket=ticket,
        code=rejection.code,
        node=rejection.node,
    )
    return Addressed(cop_code or keys.sender(kind), xml, receipt)


def concluded(decision: Decision, addressees: Iterable[Addressee], now_ms: int) -> list[Addressed]:
    """A decision on a ticket (``399``), to the sender of each document it decided on."""
    codes: list[str] = [reason.code for reason in decision.reasons or ()]
    info = f"审结 {decision.decision}: ticket {decision.ticketId} revision {decision.revision}"
    if codes:
        info += f": {', '.join(codes)}"
    if decision.reviewAction:  # a review's decision: its action and the reviewer's note
        info += f"; review {decision.reviewAction}: {decision.reviewNote}"
    by_kind = {
        "order": _Keys(decision.ebpCode, decision.ebcCode, decision.orderNo),
        "payment": _Keys(pay_code=decision.payCode, pay_transaction_id=decision.payTransactionId),
        "logistics": _Keys(
            logistics_code=decision.logisticsCode, logistics_no=decision.logisticsNo
        ),
    }
    out = []
    for addressee in addressees:
        kind, keys = addressee.doc_type, by_kind[addressee.doc_type]
        receipt = _receipt(
            kind,
            addressee.guid,
            keys,
            CONCLUDED,
            now_ms,
            info,
            ticket=decision.ticketId,
            decision=decision.decision,
            revision=decision.revision,
            reasons=codes if decision.decision == "DIVERT" else None,
        )
        sender = addressee.cop_code or keys.sender(kind)
        out.append(Addressed(sender, addressee.cop_code is not None, receipt))
    return out


def _limit(text: str) -> str:
    return text if len(text) <= RETURN_INFO_LIMIT else text[: RETURN_INFO_LIMIT - 1] + "…"


def encode_receipt(addressed: Addressed) -> tuple[bytes | None, bytes, list[tuple[str, bytes]]]:
    """The receipt record: key (the sender's code), value (JSON or XML) and headers."""
    key = addressed.sender.encode() if addressed.sender else None
    if not addressed.xml:
        return key, encode_json(addressed.receipt), [CONTENT_TYPE_JSON]
    return key, _xml(addressed.receipt), [CONTENT_TYPE_XML]


def decode_receipt(value: bytes, *, xml: bool) -> Receipt:
    """The inverse of :func:`encode_receipt`: a receipt record's value (``xml`` from its
    ``content-type`` header) as the Receipt it was made from. Raises msgspec.ValidationError
    or DecodeError, or lxml's XMLSyntaxError, for a value that is no receipt."""
    if not xml:
        return _RECEIPT_JSON.decode(value)
    root = etree.fromstring(value, PARSER)
    (node,) = root
    fields: dict[str, object] = {"docType": _XML_KINDS[etree.QName(node).localname]}
    reasons = []
    for child in node:
        name = etree.QName(child).localname
        if name == "reason":
            reasons.append(child.text)
        else:
            fields[name] = child.text or ""
    if reasons:
        fields["reasons"] = reasons
    return msgspec.convert(fields, Receipt, strict=False)  # revision, node: text to int


def _xml(receipt: Receipt) -> bytes:
    """A one-node CEB312/412/512 message (``ceb:`` prefix), sandan's fields last."""
    root_name, node_name = _XML_NAMES[receipt.docType]
    ceb, own = f"{{{CEB_NAMESPACE}}}", f"{{{RECEIPT_NAMESPACE}}}"
    root = etree.Element(
        ceb + root_name,
        nsmap={"ceb": CEB_NAMESPACE, "sandan": RECEIPT_NAMESPACE},
        guid=_message_guid(receipt),
        version="1.0",
    )
    node = etree.SubElement(root, ceb + node_name)
    for name in (*_STANDARD_FIELDS[receipt.docType], *_RETURN_FIELDS):
        value = getattr(receipt, name)
        if value is not None:
            etree.SubElement(node, ceb + name).text = str(value)
    for name in _SANDAN_FIELDS:
        value = getattr(receipt, name)
        if value is not None:
            etree.SubElement(node, own + name).text = str(value)
    for code in receipt.reasons or ():
        etree.SubElement(node, own + "reason").text = code
    if receipt.node is not None:
        etree.SubElement(node, own + "node").text = str(receipt.node)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def _message_guid(receipt: Receipt) -> str:
    """Derived from the receipt's content: the same receipt is the same message."""
    return str(uuid.uuid5(_GUIDS, encode_json(receipt).decode())).upper()
