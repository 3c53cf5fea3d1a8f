"""The OpenAPI 3.1 document of the gateway (``GET /openapi.json``), built once at start.

Schemas come from the types themselves: the documents' (``Order``, ``Payment``,
``Logistics``) and the response bodies' (:mod:`gateway.models`) through
``msgspec.json.schema_components``; amounts (N19,5) are described by a schema hook.
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
    UnavailableBody,
)
from schemas.documents import Logistics, Order, Payment
from schemas.fields import AMOUNT_TEXT, Amount

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
    "403": _error("documents of senders the key may not declare for", "ForbiddenBody"),
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


def openapi_document() -> bytes:
    """The OpenAPI document, as JSON bytes."""
    _, components = msgspec.json.schema_components(
        _BODIES, schema_hook=_schema_hook, ref_template=REF
    )
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
                    "405": _error("method not allowed"),
                    "503": _error("the receipt topic cannot be read now", "UnavailableBody"),
                },
            }
        },
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
