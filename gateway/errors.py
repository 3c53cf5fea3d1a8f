"""What the gateway answers when it does not answer 2xx: one exception class per HTTP status.

GatewayError                       status, error; ``response_body()`` is the JSON body
 ├── BadRequestError               400  not JSON / not XML, an empty or too long array, an
 │    │                                 unknown message root, a message rejected whole, a
 │    │                                 bad query parameter or cursor
 │    └── InvalidDocumentsError    400  documents that do not validate, every one listed
 ├── UnauthorizedError             401  missing or unknown key (``WWW-Authenticate: Bearer``)
 ├── ForbiddenError                403  documents of senders the key may not declare for
 ├── MissingRoleError              403  the key lacks the role the route needs (declarer,
 │                                      reviewer)
 ├── NotFoundError                 404  no such route
 ├── MethodNotAllowedError         405  the route does not take this method (``Allow``)
 ├── PayloadTooLargeError          413  body over SANDAN_MAX_MESSAGE_BYTES
 ├── UnsupportedMediaTypeError     415  wrong ``Content-Type`` for the route
 └── UnavailableError              503  broker unreachable, no ack in time, too much in
                                        flight (``Retry-After``; a retry is safe)

A request refused with any of them produced nothing (for 503: nothing that is promised; an
earlier attempt's records may still land, and sandan drops a redelivered guid).
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from gateway.models import (
    ErrorBody,
    ForbiddenBody,
    ForbiddenDocument,
    InvalidDocument,
    InvalidDocumentsBody,
    UnavailableBody,
)

__all__ = (
    "BadRequestError",
    "ForbiddenError",
    "GatewayError",
    "InvalidDocumentsError",
    "MethodNotAllowedError",
    "MissingRoleError",
    "NotFoundError",
    "PayloadTooLargeError",
    "UnauthorizedError",
    "UnavailableError",
    "UnsupportedMediaTypeError",
)

RETRY_SAFE = (
    "sending the same documents again is safe: sandan drops a document whose guid it has "
    "already seen"
)


class GatewayError(Exception):
    """Root of the gateway's answers other than 2xx."""

    status = 500
    error = "internal error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def response_body(self) -> msgspec.Struct:
        return ErrorBody(self.error, self.detail)

    def response_headers(self) -> dict[str, str]:
        return {}


class BadRequestError(GatewayError):
    """The request is malformed as a whole."""

    status = 400
    error = "bad request"

    def __init__(self, detail: str, error: str = "bad request") -> None:
        super().__init__(detail)
        self.error = error


class InvalidDocumentsError(BadRequestError):
    """Documents that do not validate; the request is refused whole."""

    def __init__(self, documents: Sequence[InvalidDocument], total: int) -> None:
        count = len(documents)
        detail = (
            f"{count} of {total} document{'s' if total != 1 else ''} "
            f"{'does' if count == 1 else 'do'} not validate; nothing was accepted"
        )
        super().__init__(detail, "invalid documents")
        self.documents = list(documents)

    def response_body(self) -> msgspec.Struct:
        return InvalidDocumentsBody(self.error, self.detail, self.documents)


class UnauthorizedError(GatewayError):
    """No key, or a key the gateway does not know."""

    status = 401
    error = "unauthorized"

    def response_headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer realm="sandan"'}


class ForbiddenError(GatewayError):
    """The key may not declare for the senders of these documents."""

    status = 403
    error = "forbidden"

    def __init__(self, key_name: str, documents: Sequence[ForbiddenDocument]) -> None:
        indexes = ", ".join(str(document.index) for document in documents)
        detail = (
            f"the key {key_name!r} may not declare for the senders of document(s) {indexes}; "
            "nothing was accepted"
        )
        super().__init__(detail)
        self.documents = list(documents)

    def response_body(self) -> msgspec.Struct:
        return ForbiddenBody(self.error, self.detail, self.documents)


class MissingRoleError(GatewayError):
    """The key does not have the role the route needs."""

    status = 403
    error = "forbidden"

    def __init__(self, key_name: str, role: str, needed_for: str) -> None:
        super().__init__(f"the key {key_name!r} does not have the role {role} to {needed_for}")


class NotFoundError(GatewayError):
    status = 404
    error = "not found"


class MethodNotAllowedError(GatewayError):
    status = 405
    error = "method not allowed"

    def __init__(self, detail: str, allowed: Sequence[str]) -> None:
        super().__init__(detail)
        self.allowed = sorted(allowed)

    def response_headers(self) -> dict[str, str]:
        return {"Allow": ", ".join(self.allowed)}


class PayloadTooLargeError(GatewayError):
    status = 413
    error = "payload too large"


class UnsupportedMediaTypeError(GatewayError):
    status = 415
    error = "unsupported media type"


class UnavailableError(GatewayError):
    """The broker cannot take the records now; nothing is promised, a retry is safe."""

    status = 503
    error = "unavailable"

    def __init__(self, reason: str, retry_after: int, retry_safe: str = RETRY_SAFE) -> None:
        super().__init__(f"{reason}; {retry_safe}")
        self.reason = reason
        self.retry_after = retry_after

    def response_body(self) -> msgspec.Struct:
        return UnavailableBody(self.error, self.detail, self.retry_after, True)

    def response_headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}
