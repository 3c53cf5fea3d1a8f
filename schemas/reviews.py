"""Review actions on diverted tickets (``cbec.review``) and their results (``cbec.review-result``),
exactly as docs/contract.md names their fields.

A reviewer names the ticket and the revision they looked at, one of three actions, who they are
and why. Every review gets one result: ``APPLIED`` with the decision it made, or ``REFUSED``
with a code and a detail a reviewer can act on.
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

import msgspec

from schemas.errors import SchemaError
from schemas.keys import split_ticket_id
from schemas.outputs import DecisionKind, ReviewAction

__all__ = (
    "MAX_NOTE",
    "REVIEW_ACTIONS",
    "REVIEW_REFUSALS",
    "Review",
    "ReviewAction",
    "ReviewRefusal",
    "ReviewResult",
    "decode_review",
)

ReviewRefusal = Literal[
    "INVALID_REVIEW",  # the record is not a review (its detail says which field)
    "UNKNOWN_TICKET",  # no such ticket: never seen, or forgotten after its retention
    "DUPLICATE_REVIEW",  # this reviewId was acted on before (the first result stands)
    "STALE_REVISION",  # the ticket moved on from the revision the reviewer looked at
    "NOT_DIVERTED",  # the revision is not a divert: still open, or at the buyer ledger
    "TICKET_RELEASED",  # released tickets are customs' to cancel or return, not a reviewer's
    "TICKET_CLOSED",  # a CONFIRM closed it
    "INCOMPLETE_TICKET",  # RELEASE needs all three documents
    "ANNUAL_LIMIT_EXCEEDED",  # RELEASE refused by the buyer ledger: the law is not overridable
]
REVIEW_ACTIONS: tuple[ReviewAction, ...] = get_args(ReviewAction)
REVIEW_REFUSALS: tuple[ReviewRefusal, ...] = get_args(ReviewRefusal)
MAX_NOTE = 1000  # characters, as a receipt's returnInfo

_Id = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[!-~]+$")]


class Review(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """One reviewer's action on one ticket revision (a ``cbec.review`` record, keyed by the
    ticket's ``orderNo``)."""

    reviewId: _Id  # noqa: N815 - the reviewer's idempotency key: a repeat is refused
    ticketId: Annotated[str, msgspec.Meta(min_length=2, max_length=79)]  # noqa: N815
    revision: Annotated[int, msgspec.Meta(ge=1)]  # the diverted revision reviewed
    action: ReviewAction
    reviewer: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    note: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_NOTE)]

    @property
    def ebp_code(self) -> str:
        return split_ticket_id(self.ticketId)[0]

    @property
    def order_no(self) -> str:
        return split_ticket_id(self.ticketId)[1]


class ReviewResult(msgspec.Struct, kw_only=True, gc=False):
    """What became of one review (``cbec.review-result``, keyed by ``ticketId``, on the
    ticket's partition). The review's fields are null only when the record was no review."""

    reviewId: str | None  # noqa: N815
    ticketId: str | None  # noqa: N815
    revision: int | None  # the revision the review named
    action: ReviewAction | None
    reviewer: str | None
    result: Literal["APPLIED", "REFUSED"]
    code: ReviewRefusal | None  # null when applied
    detail: str
    decision: DecisionKind | None  # the decision the review made (a refused RELEASE: DIVERT)
    decisionRevision: int | None  # noqa: N815 - that decision's revision
    at: str  # ISO-8601 UTC, ms: when the result was decided

    @classmethod
    def of(
        cls,
        review: Review,
        at: str,
        detail: str,
        code: ReviewRefusal | None = None,
        decision: DecisionKind | None = None,
        decision_revision: int | None = None,
    ) -> ReviewResult:
        return cls(
            reviewId=review.reviewId,
            ticketId=review.ticketId,
            revision=review.revision,
            action=review.action,
            reviewer=review.reviewer,
            result="REFUSED" if code is not None else "APPLIED",
            code=code,
            detail=detail,
            decision=decision,
            decisionRevision=decision_revision,
            at=at,
        )


_decode = msgspec.json.Decoder(Review).decode


def decode_review(raw: bytes | None, max_bytes: int) -> Review:
    """The review a record holds; raise :class:`SchemaError` naming the field and what it
    expects (or why the ticket id is not one)."""
    if raw is None:
        msg = "a review record needs a value (a JSON object)"
        raise SchemaError(msg)
    if len(raw) > max_bytes:
        msg = f"the review is {len(raw)} bytes; at most {max_bytes} are accepted"
        raise SchemaError(msg)
    try:  # (a flat struct: msgspec stops at the first nested value, so no depth limit is needed)
        review = _decode(raw)
    except msgspec.ValidationError as exc:
        raise SchemaError(str(exc)) from None
    except msgspec.DecodeError as exc:
        msg = f"not JSON: {exc}"
        raise SchemaError(msg) from None
    try:
        split_ticket_id(review.ticketId)
    except ValueError as exc:
        msg = f"{exc} - at `$.ticketId`"
        raise SchemaError(msg) from None
    return review
