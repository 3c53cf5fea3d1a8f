"""What the hostile-input builders share: the valid inputs they start from and their helpers."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

from loadtest.generator import generate
from loadtest.ids import chance
from loadtest.truth import FaultMix
from schemas.ceb_xml import encode_message
from schemas.codec import DEFAULT_MAX_DOCUMENT_BYTES, decode_document
from schemas.documents import DOC_TYPES, DocType, Document

__all__ = (
    "MARK",
    "MAX_DOCUMENT_BYTES",
    "MAX_MESSAGE_BYTES",
    "Builder",
    "Format",
    "Mutation",
    "Seeds",
    "dump",
    "field",
    "make_seeds",
    "with_token",
)

Format = Literal["json", "xml"]
MAX_DOCUMENT_BYTES = DEFAULT_MAX_DOCUMENT_BYTES
MAX_MESSAGE_BYTES = 4 * 1024 * 1024  # streams.settings' default
MARK = "hostile3f9c"  # a placeholder value, replaced by raw bytes after encoding
_QUOTED_MARK = f'"{MARK}"'.encode()
COP_CODE = "3301980FZZ"


class Seeds(NamedTuple):
    """Valid inputs per document type: JSON objects, their records, CEB XML messages."""

    docs: dict[DocType, list[dict[str, Any]]]
    json: dict[DocType, list[bytes]]
    xml: dict[DocType, list[bytes]]


class Mutation(NamedTuple):
    """What a builder gets: the draws, the valid inputs, the topic's document type, the format
    (for the builders that break JSON and XML alike)."""

    rng: random.Random
    seeds: Seeds
    doc_type: DocType
    fmt: Format

    def doc(self, doc_type: DocType | None = None) -> dict[str, Any]:
        """A fresh copy of a valid JSON object of the topic's type (or ``doc_type``'s)."""
        chosen = self.rng.choice(self.seeds.docs[doc_type or self.doc_type])
        copied: dict[str, Any] = json.loads(json.dumps(chosen))
        return copied

    def valid(self, fmt: Format | None = None, doc_type: DocType | None = None) -> bytes:
        """A valid record value of the topic's type (or ``doc_type``'s), in the mutation's
        format (or ``fmt``)."""
        kind = doc_type or self.doc_type
        seeds = self.seeds.json if (fmt or self.fmt) == "json" else self.seeds.xml
        return self.rng.choice(seeds[kind])

    def chance(self, probability: float) -> bool:
        """True with the given probability."""
        return chance(self.rng, probability)

    def size(self, low: float, high: float) -> int:
        """A size between 10^low and 10^high, log-uniform: mostly small, some huge."""
        return int(10 ** self.rng.uniform(low, high))


Builder = Callable[[Mutation], bytes]


def make_seeds(seed: int = 1, tickets: int = 24) -> Seeds:
    """Valid inputs from ``tickets`` clean tickets of the load-test generator."""
    plan = generate(seed, tickets, window=3600.0, faults=FaultMix())
    rng = random.Random(seed)
    docs: dict[DocType, list[dict[str, Any]]] = {kind: [] for kind in DOC_TYPES}
    records: dict[DocType, list[bytes]] = {kind: [] for kind in DOC_TYPES}
    decoded: dict[DocType, list[Document]] = {kind: [] for kind in DOC_TYPES}
    for record in plan.records:
        docs[record.doc_type].append(json.loads(record.value))
        records[record.doc_type].append(record.value)
        decoded[record.doc_type].append(decode_document(record.doc_type, record.value))
    xml: dict[DocType, list[bytes]] = {kind: [] for kind in DOC_TYPES}
    for kind in DOC_TYPES:
        for _ in range(tickets):
            documents = rng.sample(decoded[kind], rng.choice((1, 1, 1, 2, 3, 5)))
            prefixed, declaration = chance(rng, 0.7), chance(rng, 0.7)
            message = encode_message(
                kind, documents, cop_code=COP_CODE, prefixed=prefixed, declaration=declaration
            )
            xml[kind].append(message)
    return Seeds(docs, records, xml)


def dump(rng: random.Random, value: object) -> bytes:
    """JSON text as producers write it (ASCII-escaped or not, compact or not); NaN and lone
    surrogates pass through as Python writes them (``NaN``, CESU-8 bytes)."""
    separators = rng.choice(((",", ":"), (", ", ": ")))
    text = json.dumps(value, ensure_ascii=chance(rng, 0.3), allow_nan=True, separators=separators)
    return text.encode("utf-8", "surrogatepass")


def field(rng: random.Random, doc: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """A field of the document or of one of its lines: (its object, its name)."""
    lines = [line for line in doc.get("orderList") or () if isinstance(line, dict) and line]
    container = rng.choice(lines) if lines and chance(rng, 0.4) else doc
    return container, rng.choice(sorted(container))


def with_token(m: Mutation, token: bytes, doc: dict[str, Any] | None = None) -> bytes:
    """A JSON document with the raw ``token`` as one field's value (any bytes, not checked)."""
    doc = m.doc() if doc is None else doc
    container, key = field(m.rng, doc)
    container[key] = MARK
    return dump(m.rng, doc).replace(_QUOTED_MARK, token, 1)
