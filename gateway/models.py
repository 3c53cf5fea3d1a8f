"""The gateway's response bodies, as msgspec Structs (encoded once each; the OpenAPI document
takes their JSON Schema from the same types).

Every error body has ``error`` (a short, stable phrase) and ``detail`` (what exactly is wrong);
some add a list of the documents concerned.
"""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = (
    "Accepted",
    "AcceptedBody",
    "ErrorBody",
    "ForbiddenBody",
    "ForbiddenDocument",
    "Health",
    "InvalidDocument",
    "InvalidDocumentsBody",
    "ReceiptEntry",
    "ReceiptsPage",
    "ReviewPending",
    "UnavailableBody",
    "encode",
)


class ErrorBody(msgspec.Struct):
    """Any error: a short phrase and what exactly is wrong."""

    error: str
    detail: str


class InvalidDocument(msgspec.Struct):
    """One document that does not validate.

    ``index`` is the 0-based array position (JSON) or the node's 1-based index (XML);
    ``detail`` is the SchemaError detail exactly as a ``SCHEMA`` rejection carries it,
    ``field`` the path it names (``null`` when it names none), ``expected`` the detail without
    the path.
    """

    index: int
    field: str | None
    expected: str
    detail: str


class InvalidDocumentsBody(msgspec.Struct):
    """400: the request holds invalid documents; nothing was produced."""

    error: str
    detail: str
    documents: list[InvalidDocument]


class ForbiddenDocument(msgspec.Struct):
    """A document the key may not declare: the sender fields checked and their values."""

    index: int
    codes: dict[str, str]


class ForbiddenBody(msgspec.Struct):
    """403: documents of senders the key may not declare for; nothing was produced."""

    error: str
    detail: str
    documents: list[ForbiddenDocument]


class UnavailableBody(msgspec.Struct):
    """503: nothing is promised; sending the same documents again is safe."""

    error: str
    detail: str
    retryAfter: int  # noqa: N815 - JSON field names are camelCase, as the contract's
    retrySafe: bool  # noqa: N815


class Accepted(msgspec.Struct, omit_defaults=True):
    """Where one accepted document is (for XML, the record of its whole message)."""

    guid: str
    topic: str
    partition: int
    offset: int
    messageGuid: str | None = None  # noqa: N815


class AcceptedBody(msgspec.Struct):
    """202: every record is acknowledged by the broker (acks=all)."""

    accepted: list[Accepted]


class ReceiptEntry(msgspec.Struct):
    """One receipt: a JSON object, or an XML message as a string."""

    contentType: Literal["application/json", "application/xml"]  # noqa: N815
    receipt: msgspec.Raw | str


class ReceiptsPage(msgspec.Struct):
    """The caller's next receipts and the cursor to continue from."""

    receipts: list[ReceiptEntry]
    cursor: str


class ReviewPending(msgspec.Struct):
    """202: the review is on ``cbec.review`` and will be applied; its result did not come
    within ``SANDAN_GATEWAY_REVIEW_WAIT`` (it will be on ``cbec.review-result``)."""

    reviewId: str  # noqa: N815
    status: Literal["PENDING"]
    detail: str


class Health(msgspec.Struct, omit_defaults=True):
    """/healthz: whether the producer reaches the broker."""

    status: Literal["ok", "unavailable"]
    broker: Literal["connected", "unreachable"]
    detail: str | None = None


_ENCODER = msgspec.json.Encoder()


def encode(body: msgspec.Struct) -> bytes:
    """JSON bytes of a response body."""
    return _ENCODER.encode(body)
