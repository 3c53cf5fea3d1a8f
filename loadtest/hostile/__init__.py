"""Hostile record values: malformed inputs made from valid ones, for the decoders' fuzzer.

:func:`make_seeds` plans clean tickets with the load-test generator and keeps their
documents as JSON records and as CEB XML messages (1 to 5 nodes, prefixed or not, with or
without the XML declaration). :func:`hostile` takes one of them and breaks it in the way its
``kind`` names, drawing every choice from the ``rng`` it is given: the same ``random.Random``
state gives the same bytes, and a hypothesis-controlled ``Random`` shrinks. The kinds, each
applied to JSON, XML or both (``KINDS``; builders in :mod:`~loadtest.hostile.json_kinds` and
:mod:`~loadtest.hostile.xml_kinds`):

================  =============================================================================
truncate          cut at any byte, often inside the last few bytes or a UTF-8 sequence
bit_flip          1 to 16 bits flipped
byte_edit         byte runs inserted, deleted, replaced or repeated (structural bytes, NUL, 0xFF)
splice            the start of one valid input and the end of another (JSON into XML too)
deep_nesting      arrays/objects or elements 10 to 100,000 deep, closed or not
huge_string       a value, key, text, tag or attribute of 10^3 to 10^6 characters
huge_number       1e999, integers of up to 10^4 digits, -0, 0x10, 1_000... in amounts and integers
nan_infinity      NaN, Infinity, -Infinity (JSON has no such tokens), as text too
duplicate_keys    a key, field element or attribute repeated with another value or type
bom               UTF-8/16/32 byte order marks, the whole text in UTF-16 or UTF-32
invalid_utf8      overlong forms, encoded surrogates, > U+10FFFF, stray or cut sequences
surrogates        lone, reversed and unpaired \\ud800-\\udfff escapes, &#xD800;, CESU-8 bytes
control_chars     NUL and C0/C1 controls raw and escaped, U+FFFE, &#0;, &#x110000;
wrong_type        a field (of the head, a line, orderList itself) of another JSON type or text
missing_fields    required fields, heads or lines dropped; 0, 100 or 1,000 lines
extra_fields      up to 10^4 unknown fields, odd keys (empty, huge, NUL), unknown elements
not_an_object     an array, string, number, null, two documents, trailing bytes, blank
wrong_topic       a valid document or message of another kind
oversize          one byte under and over the document and message limits
xml_entities      DOCTYPEs (billion laughs, XXE, parameter entities), undefined entities, CDATA
xml_namespace     the root or fields in another or no namespace, undeclared prefixes
xml_attributes    huge, many, repeated or malformed attributes; guids of 35 or 37 characters
xml_structure     BaseTransfer gone or twice, 0 or 101 nodes, two heads, two roots, mixed content
xml_declaration   declared encodings (UTF-16, GBK...), version 1.1, misplaced declarations
================  =============================================================================
"""

from __future__ import annotations

import random
from typing import NamedTuple

from loadtest.hostile import json_kinds as j
from loadtest.hostile import xml_kinds as x
from loadtest.hostile.base import Builder, Format, Mutation, Seeds, make_seeds
from schemas.documents import DOC_TYPES, DocType

__all__ = ("KINDS", "KIND_NAMES", "Hostile", "Kind", "Seeds", "hostile", "make_seeds")


FORMATS: tuple[Format, Format] = ("json", "xml")


class Kind(NamedTuple):
    """A way to break an input: its builder per format (None: not for that format)."""

    json: Builder | None
    xml: Builder | None


class Hostile(NamedTuple):
    """One generated input: the kind and format that made it, the topic's type, the value."""

    kind: str
    fmt: Format
    doc_type: DocType
    value: bytes


KINDS: dict[str, Kind] = {
    "truncate": Kind(j.truncate, j.truncate),
    "bit_flip": Kind(j.bit_flip, j.bit_flip),
    "byte_edit": Kind(j.byte_edit, j.byte_edit),
    "splice": Kind(j.splice, j.splice),
    "deep_nesting": Kind(j.deep_nesting, x.deep_nesting),
    "huge_string": Kind(j.huge_string, x.huge_string),
    "huge_number": Kind(j.huge_number, x.huge_number),
    "nan_infinity": Kind(j.nan_infinity, x.nan_infinity),
    "duplicate_keys": Kind(j.duplicate_keys, x.duplicate_keys),
    "bom": Kind(j.bom, j.bom),
    "invalid_utf8": Kind(j.invalid_utf8, x.invalid_utf8),
    "surrogates": Kind(j.surrogates, x.surrogates),
    "control_chars": Kind(j.control_chars, x.control_chars),
    "wrong_type": Kind(j.wrong_type, x.wrong_type),
    "missing_fields": Kind(j.missing_fields, x.missing_fields),
    "extra_fields": Kind(j.extra_fields, x.extra_fields),
    "not_an_object": Kind(j.not_an_object, x.not_a_message),
    "wrong_topic": Kind(j.wrong_topic, j.wrong_topic),
    "oversize": Kind(j.oversize, x.oversize),
    "xml_entities": Kind(None, x.entities),
    "xml_namespace": Kind(None, x.namespace),
    "xml_attributes": Kind(None, x.attributes),
    "xml_structure": Kind(None, x.structure),
    "xml_declaration": Kind(None, x.declaration),
}
KIND_NAMES = tuple(KINDS)


def hostile(rng: random.Random, seeds: Seeds, kind: str | None = None) -> Hostile:
    """One malformed input of ``kind`` (drawn when None), for a topic and a format drawn too."""
    kind = kind or rng.choice(KIND_NAMES)
    builders = KINDS[kind]
    doc_type = rng.choice(DOC_TYPES)
    fmt, build = rng.choice([(f, b) for f, b in zip(FORMATS, builders, strict=True) if b])
    mutation = Mutation(rng, seeds, doc_type, fmt)
    return Hostile(kind, fmt, doc_type, build(mutation))
