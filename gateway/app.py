"""The gateway's routes and handlers (aiohttp.web).

    POST /v1/orders | /v1/payments | /v1/waybills   JSON: one document or an array of 1..100
    POST /v1/messages                               one CEB311/411/511 XML message
    GET  /v1/receipts?cursor=&wait=&limit=          the caller's receipts, long-poll
    POST /v1/tickets/{ticketId}/review              a reviewer's action, answered with its result
    GET  /healthz   GET /openapi.json   GET /metrics

A POST goes: key (401) -> Content-Type (415) -> size (413) -> parse and validate every
document (400) -> may the key declare for every sender (403: the declarer role and the codes)
-> produce and wait for every ack (503, else 202). A review goes the same way (403: the
reviewer role), then waits for its result (200, 404 or 409 with the result, 202 pending).
Handlers stay thin: the decisions are in :mod:`gateway.requests`, :mod:`gateway.cursor` and
:mod:`gateway.reviews`, the Kafka side in :mod:`gateway.produce`, :mod:`gateway.receipts` and
:mod:`gateway.reviews`. Nothing here logs a key, a body or a document's fields.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Literal

import msgspec
from aiohttp import web

from gateway.cursor import decode_cursor, encode_cursor
from gateway.errors import (
    BadRequestError,
    GatewayError,
    MethodNotAllowedError,
    NotFoundError,
    PayloadTooLargeError,
    UnauthorizedError,
    UnsupportedMediaTypeError,
)
from gateway.keys import KeyStore, Principal
from gateway.metrics import CONTENT_TYPE, UNMATCHED, Metrics
from gateway.models import (
    Accepted,
    AcceptedBody,
    ErrorBody,
    Health,
    ReceiptEntry,
    ReceiptsPage,
    ReviewPending,
    encode,
)
from gateway.openapi import openapi_document
from gateway.produce import OutRecord, Producer
from gateway.receipts import ReceiptReader
from gateway.requests import (
    authorize,
    message_doc_type,
    message_root,
    require_role,
    split_json,
    validate_json,
    validate_nodes,
)
from gateway.reviews import ReviewResults, review_of, review_status
from schemas import ceb_xml
from schemas.codec import encode_json
from schemas.documents import DOC_TYPES, DocType
from schemas.errors import SchemaError
from streams.settings import Settings
from streams.topics import Topics

__all__ = ("DOCUMENT_ROUTES", "ROUTES", "create_app")

log = logging.getLogger(__name__)

DOCUMENT_ROUTES: dict[str, DocType] = {
    "/v1/orders": "order",
    "/v1/payments": "payment",
    "/v1/waybills": "logistics",
}
MESSAGES_ROUTE = "/v1/messages"
RECEIPTS_ROUTE = "/v1/receipts"
REVIEW_ROUTE = "/v1/tickets/{ticketId}/review"
_REVIEW_PATH = re.compile(r"/v1/tickets/[^/]+/review")  # the route's paths (path_safe: %2F kept)
ROUTES: dict[str, str] = {
    **dict.fromkeys(DOCUMENT_ROUTES, "POST"),
    MESSAGES_ROUTE: "POST",
    RECEIPTS_ROUTE: "GET",
    REVIEW_ROUTE: "POST",
    "/healthz": "GET",
    "/openapi.json": "GET",
    "/metrics": "GET",
}
JSON_TYPES = frozenset({"application/json"})
XML_TYPES = frozenset({"application/xml", "text/xml"})
MAX_WAIT = 30.0
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
JSON_HEADER = ("content-type", b"application/json")
XML_HEADER = ("content-type", b"application/xml")

SETTINGS: web.AppKey[Settings] = web.AppKey("settings", Settings)
KEYS: web.AppKey[KeyStore] = web.AppKey("keys", KeyStore)
PRODUCER: web.AppKey[Producer] = web.AppKey("producer", Producer)
RECEIPTS: web.AppKey[ReceiptReader] = web.AppKey("receipts", ReceiptReader)
REVIEWS: web.AppKey[ReviewResults] = web.AppKey("reviews", ReviewResults)
METRICS: web.AppKey[Metrics] = web.AppKey("metrics", Metrics)
INPUT_TOPICS: web.AppKey[dict[DocType, str]] = web.AppKey("input_topics", dict)

_RAW_JSON = msgspec.json.Decoder(msgspec.Raw)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(
    body: msgspec.Struct, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=encode(body), status=status, content_type="application/json", headers=headers
    )


def _error_response(error: GatewayError) -> web.Response:
    return _json(error.response_body(), error.status, error.response_headers())


def _from_http_exception(exc: web.HTTPException) -> web.Response:
    """aiohttp's own 404/405/413 (and others) as our JSON error bodies."""
    if isinstance(exc, web.HTTPNotFound):
        return _error_response(NotFoundError("no such route; see /openapi.json"))
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = sorted(exc.allowed_methods)
        detail = f"{exc.method} is not allowed here; allowed: {', '.join(allowed)}"
        return _error_response(MethodNotAllowedError(detail, allowed))
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return _error_response(PayloadTooLargeError(exc.text or "the body is too large"))
    return _json(ErrorBody(exc.reason.lower(), exc.text or exc.reason), exc.status)


def _route_label(request: web.Request) -> str:
    resource = request.match_info.route.resource
    if resource is not None:
        return resource.canonical
    if request.path in ROUTES:  # the method is not allowed on a plain route
        return request.path
    # ... or on the review route: its template, never the ticket id.
    return REVIEW_ROUTE if _REVIEW_PATH.fullmatch(request.rel_url.path_safe) else UNMATCHED


@web.middleware
async def _errors_and_metrics(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    try:
        response = await handler(request)
    except GatewayError as exc:
        response = _error_response(exc)
    except web.HTTPException as exc:
        response = _from_http_exception(exc)
    except Exception:
        log.exception("unexpected error on %s %s", request.method, _route_label(request))
        response = _json(ErrorBody("internal error", "the gateway failed; see its log"), 500)
    metrics = request.app[METRICS]
    metrics.observe(
        _route_label(request), request.method, response.status, time.perf_counter() - started
    )
    return response


# -- requests --------------------------------------------------------------------------------


def _principal(request: web.Request) -> Principal:
    header = request.headers.get("Authorization")
    if not header:
        raise UnauthorizedError("no key: send the header Authorization: Bearer <key>")
    scheme, _, key = header.strip().partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise UnauthorizedError("expected the header Authorization: Bearer <key>")
    principal = request.app[KEYS].authenticate(key)
    if principal is None:
        raise UnauthorizedError("unknown key")
    return principal


def _require_content_type(request: web.Request, allowed: frozenset[str], hint: str) -> None:
    if request.content_type not in allowed:
        sent = request.headers.get("Content-Type", "none")
        expected = " or ".join(sorted(allowed))
        msg = f"Content-Type {sent} is not accepted here: expected {expected}{hint}"
        raise UnsupportedMediaTypeError(msg)


async def _read_body(request: web.Request) -> bytes:
    limit = request.app[SETTINGS].max_message_bytes
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLargeError(_too_large(request.content_length, limit))
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLargeError(_too_large(None, limit)) from None


def _too_large(size: int | None, limit: int) -> str:
    what = f"the body of {size} bytes" if size is not None else "the body"
    return f"{what} exceeds the limit of {limit} bytes (SANDAN_MAX_MESSAGE_BYTES)"


def _documents_handler(doc_type: DocType) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        principal = _principal(request)
        _require_content_type(request, JSON_TYPES, "; CEB XML messages go to POST /v1/messages")
        body = await _read_body(request)
        settings = request.app[SETTINGS]
        documents = validate_json(doc_type, split_json(body), settings.max_document_bytes)
        require_role(principal, "declarer", "declare documents")
        authorize(
            principal.name,
            principal.codes,
            [(item.position, item.document) for item in documents],
        )
        topic = request.app[INPUT_TOPICS][doc_type]
        records = [
            OutRecord(topic, item.document.orderNo.encode(), item.raw, [JSON_HEADER])
            for item in documents
        ]
        acked = await request.app[PRODUCER].send(records)
        request.app[METRICS].documents.labels(topic, "json").inc(len(records))
        accepted = [
            Accepted(item.document.guid, ack.topic, ack.partition, ack.offset)
            for item, ack in zip(documents, acked, strict=True)
        ]
        return _json(AcceptedBody(accepted), 202)

    return handle


async def _messages(request: web.Request) -> web.StreamResponse:
    principal = _principal(request)
    _require_content_type(request, XML_TYPES, "; JSON documents go to /v1/orders etc.")
    body = await _read_body(request)
    settings = request.app[SETTINGS]
    if not ceb_xml.is_xml(body):
        raise BadRequestError("the body is not XML: expected one CEB message", "not XML")
    root = message_root(body)
    # Without a plain prolog, decode as an order message: its error says what is wrong.
    doc_type = "order" if root is None else message_doc_type(root, ceb_xml.MESSAGE_ROOTS)
    try:
        message = ceb_xml.decode_message(doc_type, body, settings.max_message_bytes)
    except SchemaError as exc:
        raise BadRequestError(exc.detail, "invalid message") from None
    nodes = validate_nodes(message.nodes)
    require_role(principal, "declarer", "declare documents")
    authorize(principal.name, principal.codes, nodes, cop_code=message.cop_code)
    topic = request.app[INPUT_TOPICS][doc_type]
    first = nodes[0][1]
    record = OutRecord(topic, first.orderNo.encode(), body, [XML_HEADER])
    (ack,) = await request.app[PRODUCER].send([record])
    request.app[METRICS].documents.labels(topic, "xml").inc(len(nodes))
    accepted = [
        Accepted(document.guid, ack.topic, ack.partition, ack.offset, message.guid)
        for _, document in nodes
    ]
    return _json(AcceptedBody(accepted), 202)


def _number(request: web.Request, name: str, default: float, low: float, high: float) -> float:
    text = request.query.get(name)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not low <= value <= high:  # NaN fails too
        msg = f"query parameter {name}={text!r}: expected a number from {low:g} to {high:g}"
        raise BadRequestError(msg)
    return value


async def _receipts(request: web.Request) -> web.StreamResponse:
    principal = _principal(request)
    cursor_text = request.query.get("cursor")
    cursor = decode_cursor(cursor_text) if cursor_text else {}
    wait = _number(request, "wait", 0.0, 0.0, MAX_WAIT)
    limit = _number(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    if limit != int(limit):
        raise BadRequestError(f"query parameter limit={limit:g}: expected a whole number")
    require_role(principal, "declarer", "read receipts")
    page, next_offsets = await request.app[RECEIPTS].read(
        sorted(principal.codes), cursor, int(limit), wait
    )
    entries = [_receipt_entry(seen.content_type, seen.value) for seen in page]
    return _json(ReceiptsPage(entries, encode_cursor(next_offsets)))


def _receipt_entry(content_type: str, value: bytes) -> ReceiptEntry:
    kind: Literal["application/json", "application/xml"] = (
        "application/json" if content_type == "application/json" else "application/xml"
    )
    if kind == "application/json":
        try:
            return ReceiptEntry(kind, _RAW_JSON.decode(value))  # embedded as is, not re-encoded
        except msgspec.DecodeError:
            log.warning("a receipt that is not JSON is passed on as text")
    return ReceiptEntry(kind, value.decode(errors="replace"))


async def _review(request: web.Request) -> web.StreamResponse:
    principal = _principal(request)
    _require_content_type(request, JSON_TYPES, "")
    body = await _read_body(request)
    settings = request.app[SETTINGS]
    ticket_id = request.match_info["ticketId"]
    review = review_of(ticket_id, body, principal.name, settings.max_document_bytes)
    require_role(principal, "reviewer", "act on tickets")
    results, producer = request.app[REVIEWS], request.app[PRODUCER]
    record = OutRecord(
        results.review_topic, review.order_no.encode(), encode_json(review), [JSON_HEADER]
    )
    wait = settings.gateway_review_wait
    result = await results.submit(
        review, lambda: producer.send([record]), wait, settings.gateway_ack_timeout
    )
    if result is None:
        detail = (
            f"no result within {wait:g} s (SANDAN_GATEWAY_REVIEW_WAIT): the review is on "
            f"{results.review_topic} and will be applied; its result will be on {results.topic}"
        )
        return _json(ReviewPending(review.reviewId, "PENDING", detail), 202)
    return _json(result, review_status(result))


async def _healthz(request: web.Request) -> web.StreamResponse:
    producer = request.app[PRODUCER]
    if producer.connected:
        return _json(Health("ok", "connected"))
    return _json(Health("unavailable", "unreachable", producer.reason), 503)


async def _metrics(request: web.Request) -> web.StreamResponse:
    body = request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


def _openapi(document: bytes) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        return web.Response(body=document, content_type="application/json")

    return handle


# -- the application -----------------------------------------------------------------------


def create_app(
    settings: Settings,
    keys: KeyStore,
    *,
    producer: Producer | None = None,
    receipts: ReceiptReader | None = None,
    reviews: ReviewResults | None = None,
) -> web.Application:
    """The gateway application; its background tasks start and stop with it."""
    app = web.Application(
        client_max_size=settings.max_message_bytes, middlewares=[_errors_and_metrics]
    )
    app[SETTINGS] = settings
    app[KEYS] = keys
    topics = Topics(settings)
    app[INPUT_TOPICS] = dict(zip(DOC_TYPES, topics.inputs, strict=True))
    app[METRICS] = metrics = Metrics()
    app[PRODUCER] = producer = producer or Producer(settings)

    async def partition_count(topic: str) -> int:
        return await producer.partition_count(topic)

    app[RECEIPTS] = receipts or ReceiptReader(
        settings, partition_count, broker_up=lambda: producer.connected
    )
    app[REVIEWS] = reviews or ReviewResults(
        settings, partition_count, broker_up=lambda: producer.connected
    )
    metrics.bind(lambda: float(producer.in_flight_records), lambda: float(producer.connected))
    for path, doc_type in DOCUMENT_ROUTES.items():
        app.router.add_post(path, _documents_handler(doc_type))
    app.router.add_post(MESSAGES_ROUTE, _messages)
    app.router.add_get(RECEIPTS_ROUTE, _receipts, allow_head=False)
    app.router.add_post(REVIEW_ROUTE, _review)
    app.router.add_get("/healthz", _healthz, allow_head=False)
    app.router.add_get("/openapi.json", _openapi(openapi_document()), allow_head=False)
    app.router.add_get("/metrics", _metrics, allow_head=False)
    app.cleanup_ctx.append(_background)
    app.on_shutdown.append(_wake_long_polls)
    return app


async def _background(app: web.Application) -> AsyncIterator[None]:
    """Start the producer, the keys watcher and the receipt and review result watchers; stop
    them at cleanup (after the in-flight requests finished): the producer flushes what it
    holds."""
    producer, receipts, reviews, keys = app[PRODUCER], app[RECEIPTS], app[REVIEWS], app[KEYS]
    producer.start()
    receipts.start()
    reviews.start()
    watcher = asyncio.create_task(keys.watch(), name="keys-watcher")
    yield
    watcher.cancel()
    await reviews.close()
    await receipts.close()
    await producer.close()


async def _wake_long_polls(app: web.Application) -> None:
    """At shutdown: the long-polls answer what they have, the reviews' waits answer pending."""
    app[RECEIPTS].wake_all()
    app[REVIEWS].wake_all()
