"""Decoding input records into documents, and encoding sandan's output records.

Decoders are built once per document type (msgspec's "reuse decoders"). A record that cannot be
decoded raises :class:`SchemaError`, whose ``detail`` names the field and the expectation, as
msgspec reports it (``Expected `str` of length <= 60 - at `$.orderNo```).

A JSON document holds what a CEB XML message could: text XML 1.0 does not allow (a control
character other than tab, LF and CR, U+FFFE, U+FFFF) in a field is refused, as libxml2 refuses
it in a message. Its fields may end up in XML (a ticket's id in the receipts of a waybill that
came as XML), where lxml cannot write them.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from schemas.documents import DOCUMENT_TYPES, DocType, Document
from schemas.errors import SchemaError
from schemas.fields import dec_hook, enc_hook

__all__ = (
    "BUSINESS_KEY_FIELDS",
    "DEFAULT_MAX_DOCUMENT_BYTES",
    "MAX_JSON_DEPTH",
    "decode_document",
    "encode_json",
    "readable_fields",
)

DEFAULT_MAX_DOCUMENT_BYTES = 256 * 1024
# Arrays and objects nested deeper than this are refused before decoding. msgspec recurses per
# level, within Python's recursion limit less the caller's stack: without a limit of its own,
# whether a deep record decodes would depend on who calls (a test, the gateway, the worker).
MAX_JSON_DEPTH = 128

# The identifying fields a rejection repeats, where the record lets us read them.
BUSINESS_KEY_FIELDS = (
    "guid",
    "orderNo",
    "ebpCode",
    "payCode",
    "payTransactionId",
    "logisticsCode",
    "logisticsNo",
)

# float_hook=str hands the literal text of every JSON number to dec_hook (see schemas.fields).
_DECODERS = {
    doc_type: msgspec.json.Decoder(type_, dec_hook=dec_hook, float_hook=str)
    for doc_type, type_ in DOCUMENT_TYPES.items()
}
_LOOSE = msgspec.json.Decoder(float_hook=str)
_JSON_ENCODER = msgspec.json.Encoder(enc_hook=enc_hook)
# Characters XML 1.0 does not allow (lone surrogates msgspec refuses already). JSON strings get
# the control characters only from escapes (raw ones are not JSON): the cheap test on the bytes.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_NOT_XML_ESCAPE = re.compile(rb"\\(?:u(?:00[01]|[fF]{3}[eEfF])|[bf])")
# a whole string (its escapes too), or a bracket
_JSON_TOKENS = re.compile(rb'"(?:[^"\\]++|\\.)*+"|[\[\]{}]', re.DOTALL)
_TOO_DEEP = f"not a JSON document: nested deeper than {MAX_JSON_DEPTH} levels - at `$`"


def decode_document(
    doc_type: DocType, raw: bytes | None, max_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES
) -> Document:
    """Decode one input record's value; raise SchemaError saying what is wrong."""
    if not raw:
        raise SchemaError("empty message: expected one JSON object - at `$`")
    if len(raw) > max_bytes:
        msg = f"message of {len(raw)} bytes exceeds the limit of {max_bytes} bytes - at `$`"
        raise SchemaError(msg)
    try:
        # msgspec raises UnicodeDecodeError on bad UTF-8 in a known field, and skips unknown
        # fields without checking theirs: validate the whole message first.
        text = raw.decode()
    except UnicodeDecodeError as exc:
        msg = f"not a JSON document in UTF-8: {exc.reason} (byte {exc.start}) - at `$`"
        raise SchemaError(msg) from None
    if _deeper_than(raw, MAX_JSON_DEPTH):
        raise SchemaError(_TOO_DEEP)
    try:
        document: Document = _DECODERS[doc_type].decode(raw)
    except msgspec.ValidationError as exc:
        raise SchemaError(str(exc)) from None
    except msgspec.DecodeError as exc:
        raise SchemaError(f"not a JSON document in UTF-8: {exc} - at `$`") from None
    except RecursionError:  # only for a caller already near the recursion limit
        raise SchemaError(_TOO_DEEP) from None
    if (b"\\" in raw and _NOT_XML_ESCAPE.search(raw)) or "\ufffe" in text or "\uffff" in text:
        _check_xml_text(document)  # (the test on the bytes also hits ignored fields and keys)
    return document


def _deeper_than(raw: bytes, limit: int) -> bool:
    """Whether arrays and objects nest deeper than ``limit`` (brackets in strings do not
    count). Two counts settle it for nearly every record; the scan runs past ``limit``
    brackets."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    depth = 0
    for token in _JSON_TOKENS.finditer(raw):
        bracket = token[0]
        if bracket in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return True
        elif bracket in (b"]", b"}"):
            depth -= 1
    return False


def _check_xml_text(document: Document) -> None:
    """Refuse a field holding a character XML 1.0 does not allow."""
    fields = [("$", document)]
    fields += [
        (f"$.orderList[{i}]", line) for i, line in enumerate(getattr(document, "orderList", ()))
    ]
    for path, struct in fields:
        for name in struct.__struct_fields__:
            value = getattr(struct, name)
            if isinstance(value, str) and (found := _NOT_XML.search(value)):
                msg = (
                    f"expected only characters XML allows (a CEB message could not carry it), "
                    f"got U+{ord(found[0]):04X} - at `{path}.{name}`"
                )
                raise SchemaError(msg)


def readable_fields(raw: bytes | None) -> dict[str, str]:
    """The business key fields of a record that failed to decode, where they are strings
    (none from a record nested deeper than MAX_JSON_DEPTH)."""
    if raw and _deeper_than(raw, MAX_JSON_DEPTH):
        return {}
    try:
        loose: Any = _LOOSE.decode(raw or b"")
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
        return {}
    if not isinstance(loose, dict):
        return {}
    return {
        name: value
        for name in BUSINESS_KEY_FIELDS
        if isinstance(value := loose.get(name), str) and len(value) <= 100  # noqa: PLR2004
    }


def encode_json(value: object) -> bytes:
    """Encode an output record as JSON (amounts as decimal strings, bytes as base64)."""
    return _JSON_ENCODER.encode(value)
