"""Hostile-input builders for JSON records, and those that break JSON and XML alike (they read
the mutation's format: ``truncate``, ``bit_flip``, ``byte_edit``, ``splice``, ``bom``,
``wrong_topic``)."""

from __future__ import annotations

import json
import re
from typing import Any

from loadtest.hostile.base import (
    MARK,
    MAX_DOCUMENT_BYTES,
    Mutation,
    dump,
    field,
)
from schemas.documents import DOC_TYPES

__all__ = (
    "AMOUNTS",
    "BOMS",
    "INVALID_UTF8",
    "bit_flip",
    "bom",
    "byte_edit",
    "control_chars",
    "deep_nesting",
    "duplicate_keys",
    "extra_fields",
    "huge_number",
    "huge_string",
    "invalid_utf8",
    "missing_fields",
    "nan_infinity",
    "not_an_object",
    "numbers",
    "oversize",
    "splice",
    "surrogates",
    "truncate",
    "wrong_topic",
    "wrong_type",
)

_QUOTED_MARK = f'"{MARK}"'.encode()
_LEAD = re.compile(rb"[\xc0-\xff]")  # the first byte of a multibyte UTF-8 sequence
# Bytes that mean something to a JSON or XML parser, and some that mean trouble.
_PIECES = (*(bytes([c]) for c in b"{}[]\":,\\<>/&;='!? \n\x00\xff\xc3"), b"\xed\xa0\x80", b"--")
_PIECES += (b"]]>", b"&#", b"\\u", b"<!DOCTYPE", b"1e999", b"null", b"<a>", b"</", b"\xef\xbb\xbf")
AMOUNTS = frozenset(
    {"goodsValue", "freight", "discount", "taxTotal", "acturalPaid", "amountPaid", "insuredFee"}
    | {"weight", "qty", "price", "totalPrice"}
)
_INTEGERS = frozenset(("gnum", "packNo"))
BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff", b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")
# Overlong forms (NUL, "/"), encoded surrogates, above U+10FFFF, a 5-byte form, stray
# continuation bytes, cut sequences, bytes UTF-8 never uses.
INVALID_UTF8: tuple[bytes, ...] = (b"\xc0\x80", b"\xc1\xbf", b"\xe0\x80\xaf", b"\xed\xa0\x80")
INVALID_UTF8 += (
    b"\xed\xbf\xbf",
    b"\xf4\x90\x80\x80",
    b"\xf8\x88\x80\x80\x80",
    b"\x80",
    b"\xbf\xbf",
)
INVALID_UTF8 += (b"\xc3", b"\xe4\xb8", b"\xf0\x9f\x98", b"\xfe", b"\xff")
_WRONG: tuple[Any, ...] = (None, True, False, 0, -1, 1.5, 10**30, "", " ", "x", "0", "1")
_WRONG += ([], {}, [1, "a"], {"a": 1}, [[]], [None])


def truncate(m: Mutation) -> bytes:
    """Cut anywhere, often in the last bytes or inside a UTF-8 sequence."""
    raw = m.valid()
    match m.rng.randrange(6):
        case 0 | 1:
            return raw[: max(0, len(raw) - m.rng.randint(1, 8))]
        case 2 if lead := _LEAD.search(raw, m.rng.randrange(len(raw))):
            return raw[: lead.start() + 1]
        case _:
            return raw[: m.rng.randrange(len(raw))]


def bit_flip(m: Mutation) -> bytes:
    """Flip a few bits."""
    raw = bytearray(m.valid())
    for _ in range(m.rng.choice((1, 1, 1, 2, 3, 4, 8, 16))):
        raw[m.rng.randrange(len(raw))] ^= 1 << m.rng.randrange(8)
    return bytes(raw)


def byte_edit(m: Mutation) -> bytes:
    """Insert, delete, overwrite or repeat byte runs."""
    raw = bytearray(m.valid())
    for _ in range(m.rng.randint(1, 4)):
        at = m.rng.randrange(len(raw) + 1)
        piece = m.rng.choice(_PIECES) * m.rng.choice((1, 1, 1, 2, 7, 100))
        match m.rng.randrange(4):
            case 0:
                raw[at:at] = piece
            case 1:
                del raw[at : at + m.rng.randint(1, 16)]
            case 2:
                raw[at : at + len(piece)] = piece
            case _:
                end = at + m.rng.randint(1, 32)
                raw[end:end] = raw[at:end] * m.rng.randint(1, 50)
    return bytes(raw)


def splice(m: Mutation) -> bytes:
    """The start of a valid input and the end of another (of any format and type)."""
    first = m.valid()
    second = m.valid(m.rng.choice(("json", "xml")), m.rng.choice(DOC_TYPES))
    return first[: m.rng.randrange(len(first) + 1)] + second[m.rng.randrange(len(second) + 1) :]


def bom(m: Mutation) -> bytes:
    """Byte order marks before or inside a valid input, or the input in UTF-16 or UTF-32."""
    raw = m.valid()
    match m.rng.randrange(4):
        case 0:
            return m.rng.choice(BOMS) + raw
        case 1:
            codec = m.rng.choice(
                ("utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be")
            )
            return raw.decode().encode(codec)
        case 2:
            return m.rng.choice(BOMS) * 2 + m.rng.choice((b"", b" ", b"\n")) + raw
        case _:
            at = m.rng.randrange(len(raw) + 1)
            return raw[:at] + m.rng.choice(BOMS) + raw[at:]


def wrong_topic(m: Mutation) -> bytes:
    """A valid input of another document type; for JSON sometimes both types' fields merged."""
    other = m.rng.choice([kind for kind in DOC_TYPES if kind != m.doc_type])
    if m.fmt == "xml" or m.chance(0.7):
        return m.valid(doc_type=other)
    first, second = m.doc(other), m.doc()
    return dump(m.rng, first | second if m.chance(0.5) else second | first)


# --- JSON only -------------------------------------------------------------------------------


def place(
    m: Mutation, token: bytes, names: frozenset[str] | None = None, *, new: bool = False
) -> bytes:
    """A valid document with the raw ``token`` as one value: of a field named in ``names`` if
    the document has one, of any field, or of a new field (``new``)."""
    doc = m.doc()
    if new:
        container, key = doc, m.rng.choice(("x", "extra", "", "ORDERNO", "guid "))
    else:
        container, key = _pick(m, doc, names)
    container[key] = MARK
    return dump(m.rng, doc).replace(_QUOTED_MARK, token, 1)


def _pick(
    m: Mutation, doc: dict[str, Any], names: frozenset[str] | None
) -> tuple[dict[str, Any], str]:
    if names:
        containers = [doc, *(line for line in doc.get("orderList") or ())]
        found = [(c, k) for c in containers for k in c if k in names]
        if found:
            return m.rng.choice(found)
    return field(m.rng, doc)


def _member(m: Mutation, key: bytes, value: bytes) -> bytes:
    """A valid document with the raw member ``key: value`` first."""
    raw = dump(m.rng, m.doc())
    return raw[:1] + key + b":" + value + b"," + raw[1:]


def deep_nesting(m: Mutation) -> bytes:
    """Arrays or objects 10 to 100,000 deep, closed or not, as the record or one value."""
    depth = m.size(1, 5)
    opening, closing = m.rng.choice(((b"[", b"]"), (b'{"a":', b"}"), (b'[{"a":', b"}]")))
    closed = m.chance(0.8)
    nested = opening * depth + b"1" + (closing * depth if closed else b"")
    match m.rng.randrange(4):
        case 0:
            return nested
        case 1:
            return place(m, nested, new=True)
        case _:
            return place(m, nested, frozenset(("orderList", *AMOUNTS)))


def huge_string(m: Mutation) -> bytes:
    """A value or key of 10^3 to 10^6 characters, plain, multibyte or escaped."""
    unit = m.rng.choice(("x", "中", "😀", "é", " ", "\\u0000", '\\"', "\\\\", "\\ud83d\\ude00"))
    text = b'"' + (unit * m.size(3, 6.2)).encode() + b'"'
    match m.rng.randrange(3):
        case 0:
            return place(m, text)
        case 1:
            return place(m, text, new=True)
        case _:
            return _member(m, text, b"1")


_NUMBER_TEXTS = (
    b"1e999 -1e999 1E+2 1e-7 -0 -0.0 0e0 18446744073709551616 -9223372036854775809 "
    b"9223372036854775807 4.9e-324 1.7976931348623157e309 00012 +1 .5 5. 0x10 1_000 12.345678 "
    b"99999999999999.99999 100000000000000"
).split()


def numbers(m: Mutation) -> bytes:
    """A number's text that is huge, tiny, signed, or no JSON number at all."""
    big = m.size(1, 4)
    generated = (
        b"1" + b"0" * big,
        b"-1" + b"0" * big,
        b"0." + b"0" * big + b"1",
        b"1e" + b"9" * big,
    )
    return m.rng.choice((*_NUMBER_TEXTS, *generated))


def huge_number(m: Mutation) -> bytes:
    """A number's text in an amount, an integer (gnum, packNo), or any field."""
    names = AMOUNTS if m.chance(0.6) else _INTEGERS
    token = numbers(m)
    return place(m, b'"' + token + b'"' if m.chance(0.2) else token, names)


def nan_infinity(m: Mutation) -> bytes:
    """NaN and infinities, as tokens (not JSON) or strings, where amounts go."""
    token = m.rng.choice(
        (b"NaN", b"Infinity", b"-Infinity", b"+Infinity", b"nan", b"inf", b"-inf", b"-NaN")
    )
    if m.chance(0.2):
        token = b'"' + token + b'"'
    elif m.chance(0.1):
        token = b"[" + token + b"]"
    return place(m, token, AMOUNTS if m.chance(0.7) else None)


def duplicate_keys(m: Mutation) -> bytes:
    """A member repeated, before or after the original, with another value or type."""
    doc = m.doc()
    container, key = field(m.rng, doc)
    original = container[key]
    other = m.rng.choice((original, "1", "3", m.rng.choice(_WRONG), _other_value(m, key)))
    first, second = (original, other) if m.chance(0.5) else (other, original)
    container[key] = MARK
    pair = json.dumps(first) + ", " + json.dumps(key) + ": " + json.dumps(other)
    if m.chance(0.3):  # three times
        pair += ", " + json.dumps(key) + ": " + json.dumps(second)
    return dump(m.rng, doc).replace(_QUOTED_MARK, pair.encode(), 1)


def _other_value(m: Mutation, key: str) -> Any:
    values = [doc[key] for doc in m.seeds.docs[m.doc_type] if key in doc]
    return m.rng.choice(values) if values else None


def invalid_utf8(m: Mutation) -> bytes:
    """Invalid UTF-8 in a value, a key, or anywhere."""
    seq = m.rng.choice(INVALID_UTF8)
    match m.rng.randrange(4):
        case 0:
            return place(m, b'"ab' + seq + b'cd"')
        case 1:
            return place(m, b'"' + seq + b'"', new=True)
        case 2:
            return _member(m, b'"k' + seq + b'"', b'"v"')
        case _:
            raw = m.valid()
            at = m.rng.randrange(len(raw) + 1)
            return raw[:at] + seq + raw[at:]


_SURROGATES = (
    *rb"\ud800 \udfff \uDC00\uD800 \ud800x \ud800\ud800 \ud800\u0041 \ud83d \ude00 \ud8 \u".split(),
    rb"\ud83d\ude00",  # a valid pair
    b"\xed\xa0\xbd\xed\xb8\x80",  # CESU-8: the pair's surrogates encoded one by one
)


def surrogates(m: Mutation) -> bytes:
    """Lone, reversed and unpaired surrogate escapes; CESU-8 bytes; a valid pair."""
    token = m.rng.choice(_SURROGATES)
    match m.rng.randrange(3):
        case 0:
            return place(m, b'"' + token + b'"')
        case 1:
            return _member(m, b'"' + token + b'"', b"1")
        case _:
            return place(m, b'"' + token + b'"', frozenset(("guid", "orderNo")))


def control_chars(m: Mutation) -> bytes:
    """Control characters raw (not allowed in JSON strings) or escaped, and noncharacters."""
    char = m.rng.choice((*range(32), 0x7F))
    token = m.rng.choice(
        (
            b'"a' + bytes([char]) + b'b"',
            b'"\\u%04x"' % char,
            b'"\\u0000"',
            b'"x\\u0000"',
            b'"\xc2\x85"',
            b'"\\u2028\\u2029"',
            b'"\\ufffe\\uffff"',
            b'"\xef\xbf\xbe"',
        )
    )
    if m.chance(0.15):  # outside any string
        raw = m.valid()
        return raw.replace(b":", b":" + bytes([char]), 1)
    return place(m, token, frozenset(("guid", "orderNo", "appTime", "ebpCode")))


def wrong_type(m: Mutation) -> bytes:
    """A field, orderList, or one of its lines, of another JSON type."""
    doc = m.doc()
    value = m.rng.choice(_WRONG)
    lines = doc.get("orderList")
    if lines and m.chance(0.2):
        if m.chance(0.5):
            doc["orderList"] = value
        else:
            lines[m.rng.randrange(len(lines))] = value
    else:
        container, key = field(m.rng, doc)
        container[key] = value
    return dump(m.rng, doc)


def missing_fields(m: Mutation) -> bytes:
    """Fields dropped (some or all), orderList empty or with 100 or 1,000 lines."""
    doc = m.doc()
    lines = doc.get("orderList")
    if lines and m.chance(0.25):
        count = m.rng.choice((0, 100, 1000))
        doc["orderList"] = [dict(lines[0], gnum=i + 1) for i in range(count)]
        return dump(m.rng, doc)
    for _ in range(m.rng.choice((1, 1, 2, 5, 50))):
        container, key = field(m.rng, doc)
        del container[key]
        if not doc:
            break
    return dump(m.rng, doc)


def extra_fields(m: Mutation) -> bytes:
    """Unknown fields: up to 10,000 of them, with odd names and values of every type."""
    doc = m.doc()
    container, _ = field(m.rng, doc)
    value = m.rng.choice((*_WRONG, {"deep": {"er": [1, {"x": None}]}}))
    container.update((f"x{i}", value) for i in range(m.size(0, 4)))
    for _ in range(m.rng.randint(0, 3)):
        name = m.rng.choice(("", " ", "GUID", "guid ", "orderNo\x00", "中文", "__proto__", "$ref"))
        container[name if m.chance(0.9) else "k" * m.size(3, 5)] = m.rng.choice(_WRONG)
    return dump(m.rng, doc)


def not_an_object(m: Mutation) -> bytes:
    """Valid JSON that is no object, two documents, trailing bytes, blanks."""
    raw = m.valid()
    return m.rng.choice(
        (
            b"[" + raw + b"]",
            json.dumps(raw.decode()).encode(),
            b"123",
            b"null",
            b"true",
            b"[]",
            b"{}",
            b"",
            b"   ",
            b"\t\r\n ",
            b'"',
            b"{",
            b"-",
            raw + raw,
            raw + b"\n" + raw,
            raw + b"x",
            raw + b"\x00",
            raw + b",",
            raw + b"}",
            b"{" + raw,
        )
    )


def oversize(m: Mutation) -> bytes:
    """A document at the size limit, one byte over it, or far over it."""
    raw = m.valid()
    target = MAX_DOCUMENT_BYTES + m.rng.choice((-1, 0, 0, 1, 1, 1000, 3 * MAX_DOCUMENT_BYTES))
    padding = max(0, target - len(raw))
    if m.chance(0.5):
        return raw + b" " * padding  # trailing blanks are valid JSON
    filler = b'"note2":"' + b"a" * max(0, padding - 11) + b'",'
    return raw[:1] + filler + raw[1:]
