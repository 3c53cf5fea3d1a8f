"""Review actions over HTTP (``POST /v1/tickets/{ticketId}/review``): the review a request
makes, and the wait for its result.

The record is the body's ``revision``, ``action``, ``note`` and ``reviewId`` (a fresh uuid4
when the body has none), the path's ticket id and, as ``reviewer``, the name of the caller's
key. It is validated by the workers' own decoder (:func:`schemas.reviews.decode_review`), so a
review the gateway produces is one the workers read. Any other body field is refused,
``reviewer`` and ``ticketId`` included.

:class:`ReviewResults` waits without a consumer per request: one :class:`~gateway.tail.Tail`
per gateway reads ``cbec.review-result`` from its end, and each result resolves the requests
waiting on its (reviewId, ticketId). A request registers before it produces, so its result
cannot pass unseen, and is answered with the first result of its review id and ticket that
comes after it registered: a request repeating a review id that is still being applied gets
that review's result; one repeating a review already answered gets ``DUPLICATE_REVIEW``.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from aiokafka import AIOKafkaConsumer

from gateway.errors import BadRequestError, UnavailableError
from gateway.tail import Tail, new_consumer
from schemas.errors import SchemaError
from schemas.keys import split_ticket_id
from schemas.reviews import Review, ReviewResult, decode_review
from streams.settings import Settings
from streams.topics import Topics

__all__ = ("REVIEW_BODY_FIELDS", "ReviewResults", "review_of", "review_status")

log = logging.getLogger(__name__)

REVIEW_BODY_FIELDS = ("revision", "action", "note", "reviewId")
RETRY_AFTER = 2
RETRY_SAFE = (
    "sending the same review again with the same reviewId is safe: a ticket applies a "
    "review id once"
)

_BODY = msgspec.json.Decoder(dict[str, msgspec.Raw])
_RESULT = msgspec.json.Decoder(ReviewResult)
_ENCODER = msgspec.json.Encoder()


def _new_id() -> str:
    return str(uuid.uuid4())


def review_of(
    ticket_id: str,
    body: bytes,
    reviewer: str,
    max_bytes: int,
    new_id: Callable[[], str] = _new_id,
) -> Review:
    """The review a request makes; BadRequestError (400) saying what is wrong with the ticket
    id or the body (the detail of a field is the workers' ``INVALID_REVIEW`` detail)."""
    try:
        split_ticket_id(ticket_id)
    except ValueError as exc:
        raise BadRequestError(str(exc), "invalid ticket id") from None
    try:
        fields = _BODY.decode(body)
    except msgspec.ValidationError as exc:
        raise BadRequestError(f"the body is not a review: {exc}", "invalid review") from None
    except msgspec.DecodeError as exc:
        raise BadRequestError(f"the body is not JSON: {exc}", "not JSON") from None
    except RecursionError:
        raise BadRequestError("the body is not JSON: nested too deeply", "not JSON") from None
    for name in fields:
        if name not in REVIEW_BODY_FIELDS:
            msg = (
                f"unknown field `{name}`: a review holds revision, action, note and optionally "
                "reviewId (the ticket is the path's, the reviewer the key's name)"
            )
            raise BadRequestError(msg, "invalid review")
    record = {"reviewId": new_id(), **fields, "ticketId": ticket_id, "reviewer": reviewer}
    try:
        return decode_review(_ENCODER.encode(record), max_bytes)
    except SchemaError as exc:
        raise BadRequestError(exc.detail, "invalid review") from None


def review_status(result: ReviewResult) -> int:
    """200 applied, 404 refused for want of the ticket, 409 refused otherwise."""
    if result.result == "APPLIED":
        return 200
    return 404 if result.code == "UNKNOWN_TICKET" else 409


class ReviewResults:
    """The results of the reviews this gateway produces, read by one tail."""

    def __init__(
        self,
        settings: Settings,
        partition_count: Callable[[str], Awaitable[int]],
        *,
        broker_up: Callable[[], bool] = lambda: True,
        factory: Callable[..., Any] = AIOKafkaConsumer,
    ) -> None:
        topics = Topics(settings)
        self.review_topic = topics.review
        self.topic = topics.review_result
        self._waiters: dict[tuple[str, str], set[asyncio.Future[ReviewResult | None]]] = {}
        self.tail = Tail(
            self.topic,
            lambda: new_consumer(
                settings, "sandan-gateway-reviews", factory, fetch_max_wait_ms=500
            ),
            partition_count,
            broker_up,
            self.on_record,
            "review results",
        )

    def start(self) -> None:
        self.tail.start()

    async def close(self) -> None:
        self.wake_all()
        await self.tail.close()

    def wake_all(self) -> None:
        """Answer every waiting request now, as pending (shutdown)."""
        for waiters in self._waiters.values():
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    @property
    def waiting(self) -> int:
        """The requests waiting for a result."""
        return sum(len(waiters) for waiters in self._waiters.values())

    async def submit(
        self,
        review: Review,
        produce: Callable[[], Awaitable[object]],
        wait: float,
        ready_within: float,
    ) -> ReviewResult | None:
        """Produce the review (``produce``) and return its result, or None when none came
        within ``wait`` seconds (the review is on the topic: it will be applied).

        UnavailableError (503, nothing produced) when the results cannot be read (the tail
        found no end within ``ready_within`` seconds), or from ``produce``."""
        if not await self.tail.wait_ready(ready_within):
            msg = f"the review results cannot be read now ({self.topic})"
            raise UnavailableError(msg, RETRY_AFTER, RETRY_SAFE)
        key = (review.reviewId, review.ticketId)
        waiter: asyncio.Future[ReviewResult | None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(key, set()).add(waiter)  # before the produce
        try:
            try:
                await produce()
            except UnavailableError as exc:
                raise UnavailableError(exc.reason, exc.retry_after, RETRY_SAFE) from None
            try:
                async with asyncio.timeout(wait):
                    return await waiter
            except TimeoutError:
                return None
        finally:
            waiters = self._waiters.get(key)
            if waiters is not None:
                waiters.discard(waiter)
                if not waiters:
                    del self._waiters[key]

    def on_record(self, record: Any) -> None:
        """The tail's callback: a result resolves the requests waiting on its review."""
        if not self._waiters or record.value is None:
            return
        try:
            result = _RESULT.decode(record.value)
        except msgspec.DecodeError:
            log.warning(
                "skipped a record that is no review result (%s[%s] offset %s)",
                self.topic,
                record.partition,
                record.offset,
            )
            return
        if result.reviewId is None or result.ticketId is None:
            return
        for waiter in self._waiters.pop((result.reviewId, result.ticketId), ()):
            if not waiter.done():
                waiter.set_result(result)
