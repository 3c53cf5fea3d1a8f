"""The three input documents, with the fields and spellings of the CEB standard (202205).

``Order`` is CEB311 OrderHead with its ``orderList`` lines, ``Payment`` CEB411 PaymentHead,
``Logistics`` CEB511 LogisticsHead; each carries the message header fields ``guid``,
``appType``, ``appTime`` and ``appStatus``. Unknown fields are ignored. Checks that span fields
(a real ``appTime``, consecutive ``gnum``) run in ``__post_init__`` and name their field. The
structs hold no reference cycles, so the garbage collector does not track them (``gc=False``):
a worker keeps many of them in its caches.
"""

from __future__ import annotations

from typing import ClassVar, Literal, get_args

import msgspec

from schemas.fields import (
    C3,
    C18,
    C30,
    C36,
    C50,
    C60,
    C100,
    C200,
    C250,
    C510,
    Amount,
    AppStatus,
    AppType,
    Currency,
    IdType,
    LineNumber,
    OptC6,
    OptC18,
    OptC30,
    OptC37,
    OptC50,
    OptC60,
    OptC100,
    OptC200,
    OptC1000,
    Timestamp,
    is_real_timestamp,
)

__all__ = (
    "DOCUMENT_TYPES",
    "DOC_TYPES",
    "PERSONAL_FIELDS",
    "DocType",
    "Document",
    "Logistics",
    "Order",
    "OrderLine",
    "Payment",
)

DocType = Literal["order", "payment", "logistics"]
DOC_TYPES: tuple[DocType, ...] = get_args(DocType)  # the kinds, in this order everywhere


def _check_timestamp(field: str, text: str) -> None:
    if not is_real_timestamp(text):
        msg = f"`{field}` {text!r} is not a real time (YYYYMMDDhhmmss) - at `$.{field}`"
        raise ValueError(msg)


class _Header(msgspec.Struct, kw_only=True, gc=False):
    guid: C36
    appType: AppType  # noqa: N815 - the standard's spelling
    appTime: Timestamp  # noqa: N815
    appStatus: AppStatus  # noqa: N815

    def __post_init__(self) -> None:
        _check_timestamp("appTime", self.appTime)


class OrderLine(msgspec.Struct, kw_only=True, gc=False):
    """One goods line of an order (OrderList)."""

    gnum: LineNumber
    itemNo: OptC30 | None = None  # noqa: N815
    itemName: C250  # noqa: N815
    gmodel: C510
    itemDescribe: OptC1000 | None = None  # noqa: N815
    barCode: OptC50 | None = None  # noqa: N815
    unit: C3
    qty: Amount
    price: Amount
    totalPrice: Amount  # noqa: N815
    currency: Currency
    country: C3
    note: OptC1000 | None = None


class Order(_Header, kw_only=True):
    """The electronic order (CEB311), sent by the e-commerce platform."""

    doc_type: ClassVar[DocType] = "order"

    orderType: Literal["I"]  # noqa: N815
    orderNo: C60  # noqa: N815
    ebpCode: C18  # noqa: N815
    ebpName: C100  # noqa: N815
    ebcCode: C18  # noqa: N815
    ebcName: C100  # noqa: N815
    goodsValue: Amount  # noqa: N815
    freight: Amount
    discount: Amount
    taxTotal: Amount  # noqa: N815
    acturalPaid: Amount  # noqa: N815 - sic, the standard's spelling
    currency: Currency
    buyerRegNo: C60  # noqa: N815
    buyerName: C60  # noqa: N815
    buyerTelephone: C30  # noqa: N815
    buyerIdType: IdType  # noqa: N815
    buyerIdNumber: C60  # noqa: N815
    payCode: OptC18 | None = None  # noqa: N815
    payName: OptC100 | None = None  # noqa: N815
    payTransactionId: OptC60 | None = None  # noqa: N815
    batchNumbers: OptC100 | None = None  # noqa: N815
    consignee: C100
    consigneeTelephone: C50  # noqa: N815
    consigneeAddress: C200  # noqa: N815
    consigneeDistrict: OptC6 | None = None  # noqa: N815
    note: OptC1000 | None = None
    orderList: list[OrderLine]  # noqa: N815

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 1 <= len(self.orderList) <= 99:  # noqa: PLR2004 - the standard's bounds
            msg = f"expected 1 to 99 goods lines, got {len(self.orderList)} - at `$.orderList`"
            raise ValueError(msg)
        for index, line in enumerate(self.orderList):
            if line.gnum != index + 1:
                msg = (
                    f"expected line numbers consecutive from 1, got {line.gnum} "
                    f"- at `$.orderList[{index}].gnum`"
                )
                raise ValueError(msg)


class Payment(_Header, kw_only=True):
    """The payment slip (CEB411), sent by the payment firm."""

    doc_type: ClassVar[DocType] = "payment"

    payCode: C18  # noqa: N815
    payName: C100  # noqa: N815
    payTransactionId: C60  # noqa: N815
    orderNo: C60  # noqa: N815
    ebpCode: C18  # noqa: N815
    ebpName: C100  # noqa: N815
    payerIdType: IdType  # noqa: N815
    payerIdNumber: C60  # noqa: N815
    payerName: C60  # noqa: N815
    telephone: OptC60 | None = None
    amountPaid: Amount  # noqa: N815
    currency: Currency
    payTime: Timestamp  # noqa: N815
    note: OptC1000 | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_timestamp("payTime", self.payTime)


class Logistics(_Header, kw_only=True):
    """The waybill (CEB511), sent by the logistics firm. ``ebpCode`` is sandan's optional extra."""

    doc_type: ClassVar[DocType] = "logistics"

    logisticsCode: C18  # noqa: N815
    logisticsName: C100  # noqa: N815
    logisticsNo: C60  # noqa: N815
    billNo: OptC37 | None = None  # noqa: N815
    orderNo: C60  # noqa: N815
    ebpCode: OptC18 | None = None  # noqa: N815
    freight: Amount | None = None
    insuredFee: Amount | None = None  # noqa: N815
    currency: Currency
    weight: Amount
    packNo: Literal[1]  # noqa: N815
    goodsInfo: OptC200 | None = None  # noqa: N815
    consignee: C100
    consigneeAddress: C200  # noqa: N815
    consigneeTelephone: C50  # noqa: N815
    note: OptC1000 | None = None


Document = Order | Payment | Logistics

DOCUMENT_TYPES: dict[DocType, type[Document]] = {
    "order": Order,
    "payment": Payment,
    "logistics": Logistics,
}

# The fields that hold a person's data (of the buyer, the payer, the consignee): never logged.
PERSONAL_FIELDS: tuple[str, ...] = (
    "buyerRegNo",
    "buyerName",
    "buyerTelephone",
    "buyerIdNumber",
    "consignee",
    "consigneeTelephone",
    "consigneeAddress",
    "payerIdNumber",
    "payerName",
    "telephone",
)
