"""What a POST carries, validated and authorized (pure: no I/O, no clock).

JSON bodies (``/v1/orders``, ``/v1/payments``, ``/v1/waybills``) hold one document or an array
of 1 to 100; the array is split without re-encoding (each element's original bytes are what
gets produced) and every element is decoded with the worker's own decoder, so a document the
gateway accepts is one intake accepts. An XML body (``/v1/messages``) is one CEB message; its
root element picks the topic. A request with any invalid document is refused whole, listing
every invalid one; a request with any document of a sender the key may not declare for is
refused whole, listing those. A key without the role a route needs is refused (403) after
its request validated.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from typing import NamedTuple, Protocol

import msgspec

from gateway.errors import (
    BadRequestError,
    ForbiddenError,
    InvalidDocumentsError,
    MissingRoleError,
)
from gateway.keys import Principal, Role
from gateway.models import ForbiddenDocument, InvalidDocument
from schemas.codec import decode_document
from schemas.documents import DocType, Document
from schemas.errors import SchemaError

__all__ = (
    "MAX_DOCUMENTS",
    "SENDER_FIELDS",
    "JsonDocument",
    "authorize",
    "forbidden_fields",
    "invalid_document",
    "message_doc_type",
    "message_root",
    "require_role",
    "split_json",
    "validate_json",
    "validate_nodes",
)

MAX_DOCUMENTS = 100

# The fields naming a document's sender: a key may declare a document when one of them is
# among its codes (an order is the platform's or the shop's).
SENDER_FIELDS: dict[DocType, tuple[str, ...]] = {
    "order": ("ebpCode", "ebcCode"),
    "payment": ("payCode",),
    "logistics": ("logisticsCode",),
}

_ARRAY = msgspec.json.Decoder(list[msgspec.Raw])
_ANY = msgspec.json.Decoder(msgspec.Raw)
_DETAIL = re.compile(r"(?P<expected>.*) - at `(?P<path>\$[^`]*)`", re.DOTALL)
_NODE_PREFIX = re.compile(r"\Anode \d+: ")  # schemas.ceb_xml's node errors
_MISSING = re.compile(r"Object missing required field `(?P<name>[^`]+)`")
_WHITESPACE = b" \t\r\n"
SNIFF_BYTES = 64 * 1024
# BOM, then whitespace, the XML declaration, comments and processing instructions, then the
# root's start tag. The repetition is possessive (``*+``): it never backtracks, so a crafted
# prolog cannot make the match slow.
_ROOT = re.compile(
    rb"(?:\xef\xbb\xbf)?(?:[ \t\r\n]|<\?.*?\?>|<!--.*?-->)*+<(?:[A-Za-z_][\w.-]*:)?"
    rb"(?P<name>[A-Za-z_][\w.-]*)",
    re.DOTALL,
)


class JsonDocument(NamedTuple):
    """One valid JSON document: its position, original bytes and decoded value."""

    position: int
    raw: bytes
    document: Document


def split_json(body: bytes) -> list[bytes]:
    """The original bytes of each document of a JSON body (one document or an array)."""
    stripped = body.lstrip(_WHITESPACE)
    if not stripped:
        raise BadRequestError("the body is empty: expected a JSON document or an array of them")
    try:
        if stripped[:1] != b"[":
            return [bytes(_ANY.decode(body))]
        parts = _ARRAY.decode(body)
    except msgspec.DecodeError as exc:
        msg = f"the body is not JSON: {exc}"
        raise BadRequestError(msg, "not JSON") from None
    except RecursionError:
        raise BadRequestError("the body is not JSON: nested too deeply", "not JSON") from None
    if not parts:
        raise BadRequestError(f"the array is empty: expected 1 to {MAX_DOCUMENTS} documents")
    if len(parts) > MAX_DOCUMENTS:
        msg = f"the array holds {len(parts)} documents: expected 1 to {MAX_DOCUMENTS}"
        raise BadRequestError(msg)
    return [bytes(part) for part in parts]


def invalid_document(index: int, detail: str) -> InvalidDocument:
    """The 400 entry of one document whose SchemaError says ``detail``."""
    body = _NODE_PREFIX.sub("", detail, count=1)
    match = _DETAIL.fullmatch(body)
    expected, path = (match["expected"], match["path"]) if match else (body, "$")
    field = path[2:] if path.startswith("$.") else None
    missing = _MISSING.fullmatch(expected)
    if missing is not None:
        field = f"{field}.{missing['name']}" if field else missing["name"]
    return InvalidDocument(index, field, expected, detail)


def validate_json(doc_type: DocType, parts: Sequence[bytes], max_bytes: int) -> list[JsonDocument]:
    """Decode every part; raise InvalidDocumentsError listing every one that does not validate."""
    valid: list[JsonDocument] = []
    invalid: list[InvalidDocument] = []
    for index, raw in enumerate(parts):
        try:
            valid.append(JsonDocument(index, raw, decode_document(doc_type, raw, max_bytes)))
        except SchemaError as exc:
            invalid.append(invalid_document(index, exc.detail))
    if invalid:
        raise InvalidDocumentsError(invalid, len(parts))
    return valid


class Node(Protocol):
    """One node of a decoded XML message (``schemas.ceb_xml.Node``)."""

    @property
    def index(self) -> int: ...
    @property
    def document(self) -> Document | None: ...
    @property
    def error(self) -> str | None: ...


def validate_nodes(nodes: Sequence[Node]) -> list[tuple[int, Document]]:
    """The (index, document) of every node; raise InvalidDocumentsError listing every node that
    does not validate (by its 1-based index)."""
    if not nodes:
        raise BadRequestError("the message holds no documents", "invalid message")
    valid: list[tuple[int, Document]] = []
    invalid: list[InvalidDocument] = []
    for node in nodes:
        if node.document is not None and node.error is None:
            valid.append((node.index, node.document))
        else:
            invalid.append(invalid_document(node.index, node.error or "invalid"))
    if invalid:
        raise InvalidDocumentsError(invalid, len(nodes))
    return valid


def forbidden_fields(
    document: Document, codes: Collection[str], cop_code: str | None = None
) -> dict[str, str] | None:
    """The sender fields (and values) that keep a key with ``codes`` from declaring
    ``document``, or None when it may."""
    fields: dict[str, str] = {
        name: getattr(document, name) for name in SENDER_FIELDS[document.doc_type]
    }
    if cop_code is not None and cop_code not in codes:
        return {"copCode": cop_code, **fields}
    return None if any(value in codes for value in fields.values()) else fields


def authorize(
    key_name: str,
    codes: Collection[str],
    documents: Sequence[tuple[int, Document]],
    cop_code: str | None = None,
) -> None:
    """Raise ForbiddenError listing every document whose sender is not among ``codes``.

    ``documents`` are (index, document) pairs; ``cop_code`` is an XML message's
    ``BaseTransfer/copCode``, which must be among the codes too.
    """
    refused = [
        ForbiddenDocument(index, fields)
        for index, document in documents
        if (fields := forbidden_fields(document, codes, cop_code)) is not None
    ]
    if refused:
        raise ForbiddenError(key_name, refused)


def require_role(principal: Principal, role: Role, needed_for: str) -> None:
    """Raise MissingRoleError (403) unless the key has ``role`` (``needed_for``: what the
    route does, for the detail)."""
    if not principal.has(role):
        raise MissingRoleError(principal.name, role, needed_for)


def message_root(body: bytes) -> str | None:
    """The local name of an XML body's root element, read from its first bytes without
    parsing (the hardened parser of ``schemas.ceb_xml`` is the only one that sees the body);
    None when the prolog is not the plain kind (a DOCTYPE, say) or is too long."""
    match = _ROOT.match(body, 0, SNIFF_BYTES)
    return match["name"].decode() if match else None


def message_doc_type(root: str, roots: dict[DocType, str]) -> DocType:
    """The document type an XML message's root element names (``roots``: type -> root)."""
    for doc_type, root_name in roots.items():
        if root == root_name:
            return doc_type
    expected = ", ".join(roots.values())
    msg = f"unknown message root <{root}>: expected one of {expected}"
    raise BadRequestError(msg, "unknown message")
