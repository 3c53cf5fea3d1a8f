"""The OpenAPI 3.1 document of the gateway (``GET /openapi.json``), built once at start.

Schemas come from the types themselves: the documents' (``Order``, ``Payment``,
``Logistics``), the response bodies' (:mod:`gateway.models`) and the review's and its result's
(:mod:`schemas.reviews`) through ``msgspec.json.schema_components``; amounts (N19,5) are
described by a schema hook. A review's request body is the record's schema less the fields the
gateway fills in.
"""

from __future__ import annotations

from typing import Any

import msgspec

from gateway.models import (
    AcceptedBody,
    ErrorBody,
    ForbiddenBody,
    Health,
    InvalidDocumentsBody,
    ReceiptsPage,
    ReviewPending,
    UnavailableBody,
)
from gateway.reviews import REVIEW_BODY_FIELDS
from schemas.documents import Logistics, Order, Payment
from schemas.fields import AMOUNT_TEXT, Amount
from schemas.reviews import Review, ReviewResult

__all__ = ("openapi_document",)

REF = "#/components/schemas/{name}"
_BODIES = (
    Order,
    Payment,
    Logistics,
    AcceptedBody,
    ErrorBody,
    InvalidDocumentsBody,
    ForbiddenBody,
    UnavailableBody,
    ReceiptsPage,
    Health,
    Review,
    ReviewResult,
    ReviewPending,
)


def _schema_hook(type_: type) -> dict[str, Any]:
    if type_ is Amount:
        return {
            "description": "decimal amount, at most 14 integer and 5 fraction digits (N19,5)",
            "anyOf": [
                {"type": "string", "pattern": f"^{AMOUNT_TEXT.pattern}$"},
                {"type": "number", "minimum": 0},
            ],
        }
    msg = f"no JSON schema for {type_!r}"
    raise NotImplementedError(msg)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(name=name)}


def _content(name: str, media: str = "application/json") -> dict[str, Any]:
    return {media: {"schema": _ref(name)}}


def _error(description: str, name: str = "ErrorBody") -> dict[str, Any]:
    return {"description": description, "content": _content(name)}


_AUTH_ERRORS = {
    "401": _error("missing or unknown key (`WWW-Authenticate: Bearer`)"),
}
_POST_ERRORS = {
    "400": {
        "description": "not JSON/XML, an empty or too long array, a message rejected whole "
        "(ErrorBody), or invalid documents, every one listed (InvalidDocumentsBody)",
        "content": {
            "application/json": {
                "schema": {"anyOf": [_ref("InvalidDocumentsBody"), _ref("ErrorBody")]}
            }
        },
    },
    **_AUTH_ERRORS,
    "403": {
        "description": "documents of senders the key may not declare for (ForbiddenBody), or "
        "a key without the declarer role (ErrorBody)",
        "content": {
            "application/json": {"schema": {"anyOf": [_ref("ForbiddenBody"), _ref("ErrorBody")]}}
        },
    },
    "405": _error("method not allowed"),
    "413": _error("body over SANDAN_MAX_MESSAGE_BYTES"),
    "415": _error("wrong Content-Type"),
    "503": {
        "description": "broker unreachable, no ack in time, or too much in flight: nothing "
        "is promised, a retry of the same documents is safe",
        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
        "content": _content("UnavailableBody"),
    },
}
_ACCEPTED = {
    "202": {
        "description": "every record acknowledged by the broker (acks=all)",
        "content": _content("AcceptedBody"),
    }
}


def _documents_operation(name: str, what: str) -> dict[str, Any]:
    return {
        "summary": f"Declare {what}: one JSON document or an array of 1 to 100",
        "security": [{"bearer": []}],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "anyOf": [
                            _ref(name),
                            {"type": "array", "items": _ref(name), "minItems": 1, "maxItems": 100},
                        ]
                    }
                }
            },
        },
        "responses": {**_ACCEPTED, **_POST_ERRORS},
    }


def _review_body(record: dict[str, Any]) -> dict[str, Any]:
    """The request body of a review: the record's schema less ``ticketId`` (the path's) and
    ``reviewer`` (the key's name); ``reviewId`` optional."""
    return {
        "title": "ReviewBody",
        "description": "A reviewer's action on the revision of the ticket they looked at. "
        "Without reviewId the gateway makes a uuid4; with one, a repeat is refused "
        "DUPLICATE_REVIEW. No other field (the reviewer is the key's name).",
        "type": "object",
        "properties": {
            name: schema
            for name, schema in record["properties"].items()
            if name in REVIEW_BODY_FIELDS
        },
        "required": [
            name for name in record["required"] if name in REVIEW_BODY_FIELDS and name != "reviewId"
        ],
        "additionalProperties": False,
    }


def _result(description: str) -> dict[str, Any]:
    return {"description": description, "content": _content("ReviewResult")}


def _review_operation() -> dict[str, Any]:
    return {
        "summary": "Act on a diverted ticket as a reviewer (the key needs the reviewer role; "
        "the reviewer is the key's name): the review goes to cbec.review, and the answer is "
        "its result from cbec.review-result",
        "security": [{"bearer": []}],
        "parameters": [
            {
                "name": "ticketId",
                "in": "path",
                "required": True,
                "schema": {"type": "string"},
                "description": "{ebpCode}:{orderNo} (percent-encoded as a path segment)",
            }
        ],
        "requestBody": {"required": True, "content": _content("ReviewBody")},
        "responses": {
            "200": _result("APPLIED: the decision it made is decision, decisionRevision"),
            "202": {
                "description": "no result within SANDAN_GATEWAY_REVIEW_WAIT: the review is "
                "on cbec.review and will be applied; its result will be on cbec.review-result",
                "content": _content("ReviewPending"),
            },
            "400": _error(
                "not JSON, an invalid ticket id, or an invalid review (the detail names the field)"
            ),
            **_AUTH_ERRORS,
            "403": _error("the key does not have the reviewer role; nothing was produced"),
            "404": {
                "description": "REFUSED UNKNOWN_TICKET (ReviewResult); or no such route "
                "(ErrorBody)",
                "content": {
                    "application/json": {
                        "schema": {"anyOf": [_ref("ReviewResult"), _ref("ErrorBody")]}
                    }
                },
            },
            "405": _error("method not allowed"),
            "409": _result("REFUSED with any other code: the code and detail say why"),
            "413": _error("body over SANDAN_MAX_MESSAGE_BYTES"),
            "415": _error("wrong Content-Type"),
            "503": {
                "description": "broker unreachable, no ack in time, too much in flight, or "
                "the review results cannot be read: nothing is promised, sending the same "
                "review again with the same reviewId is safe",
                "headers": {"Retry-After": {"schema": {"type": "integer"}}},
                "content": _content("UnavailableBody"),
            },
        },
    }


def openapi_document() -> bytes:
    """The OpenAPI document, as JSON bytes."""
    _, components = msgspec.json.schema_components(
        _BODIES, schema_hook=_schema_hook, ref_template=REF
    )
    components["ReviewBody"] = _review_body(components.pop("Review"))
    xml_body = {"type": "string", "description": "one CEB311, CEB411 or CEB511 message"}
    paths: dict[str, Any] = {
        "/v1/orders": {"post": _documents_operation("Order", "orders (CEB311)")},
        "/v1/payments": {"post": _documents_operation("Payment", "payment slips (CEB411)")},
        "/v1/waybills": {"post": _documents_operation("Logistics", "waybills (CEB511)")},
        "/v1/messages": {
            "post": {
                "summary": "Declare one CEB XML message (its root picks the topic); "
                "one record for the message, one accepted entry per node",
                "security": [{"bearer": []}],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/xml": {"schema": xml_body},
                        "text/xml": {"schema": xml_body},
                    },
                },
                "responses": {**_ACCEPTED, **_POST_ERRORS},
            }
        },
        "/v1/receipts": {
            "get": {
                "summary": "The caller's receipts, in order, from a cursor; long-polls up to "
                "`wait` seconds when there is nothing new",
                "security": [{"bearer": []}],
                "parameters": [
                    {
                        "name": "cursor",
                        "in": "query",
                        "schema": {"type": "string"},
                        "description": "from the previous page; none: the earliest receipt",
                    },
                    {
                        "name": "wait",
                        "in": "query",
                        "schema": {"type": "number", "minimum": 0, "maximum": 30, "default": 0},
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": 1000,
                            "default": 100,
                        },
                    },
                ],
                "responses": {
                    "200": {
                        "description": "a page of receipts",
                        "content": _content("ReceiptsPage"),
                    },
                    "400": _error("malformed cursor or query parameter"),
                    **_AUTH_ERRORS,
                    "403": _error("the key does not have the declarer role"),
                    "405": _error("method not allowed"),
                    "503": _error("the receipt topic cannot be read now", "UnavailableBody"),
                },
            }
        },
        "/v1/tickets/{ticketId}/review": {"post": _review_operation()},
        "/healthz": {
            "get": {
                "summary": "Whether the producer reaches the broker",
                "responses": {
                    "200": {"description": "connected", "content": _content("Health")},
                    "503": {"description": "unreachable", "content": _content("Health")},
                },
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "responses": {
                    "200": {"description": "OpenAPI 3.1", "content": {"application/json": {}}}
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "responses": {
                    "200": {
                        "description": "Prometheus text format",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
    }
    document = {
        "openapi": "3.1.0",
        "info": {
            "title": "sandan gateway",
            "version": "1",
            "description": "HTTP gateway to sandan's input topics for firms without a Kafka "
            "client. Every error body is {error, detail}; any path no route matches is 404 "
            "(ErrorBody).",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
    return msgspec.json.encode(document)
