"""Document-level state, through the pipeline on a temporary store: each document version is
written once under its own key (``orderNo`` 0xFF ``guid``), its group holds a reference; a
change writes the new version and deletes the old; retention deletes the ticket's documents
with it; a restore from the changelog alone decides as the original; groups written with the
documents inline (``SANDAN_DOCUMENT_STATE=inline``, as earlier versions did) are read and
finished by a worker that stores them separately, and the reverse."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from schemas.documents import DOC_TYPES
from schemas.keys import murmur2_partition
from streams.records import Output
from streams.tickets import Group, document_key, is_document_key
from tests.factories import as_bytes, logistics_dict, order_dict, payment_dict
from tests.unit.streams.harness import PARTITIONS, T0, PipelineHarness, on

ORDER_NO = "SO20261124000001"
HOME = murmur2_partition(ORDER_NO.encode(), PARTITIONS)
KEY = ORDER_NO.encode()
CHANGELOG = "sandan-tickets-changelog"
RETENTION_MS = 100_000  # the harness's
DOCS = {"order": order_dict(), "payment": payment_dict(), "logistics": logistics_dict()}
RAW = {kind: as_bytes(doc) for kind, doc in DOCS.items()}
GUID = {kind: doc["guid"] for kind, doc in DOCS.items()}
INLINE = {"SANDAN_DOCUMENT_STATE": "inline"}


def writes(outputs: list[Output]) -> list[tuple[bytes, bytes | None]]:
    """The tickets changelog's records among ``outputs``: (key, value)."""
    return [(o.key or b"", o.value) for o in on(outputs, CHANGELOG)]


def doc_key(kind: str) -> bytes:
    return document_key(ORDER_NO, GUID[kind])


def group_of(value: bytes | None) -> Group:
    return msgspec.msgpack.decode(value or b"", type=Group)


def decisions(outputs: list[Output]) -> list[dict[str, Any]]:
    found = on(outputs, "release") + on(outputs, "divert")
    return [json.loads(o.value or b"") for o in found]


def without_times(decision: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in decision.items() if k not in {"decidedAt"}}


def test_each_document_is_written_once_beside_a_small_group(harness: PipelineHarness) -> None:
    out = []
    for n, kind in enumerate(DOC_TYPES):
        step = harness.feed(kind, RAW[kind], T0 + n * 1000, KEY)
        written = writes(step)
        # the document itself, byte for byte, then the group; no other document again
        assert [key for key, _ in written] == [doc_key(kind), KEY], kind
        assert written[0][1] == RAW[kind]
        group = group_of(written[1][1])
        held = getattr(group.tickets["3301980ABC"], kind)
        assert (held.guid, held.raw) == (GUID[kind], b"")
        assert not any(RAW[other] in (written[1][1] or b"") for other in DOC_TYPES)
        out += step
    assert [d["decision"] for d in decisions(out)] == ["RELEASE"]
    # the released ticket's group record: a fraction of its documents' bytes
    group_bytes = len(writes(out)[-1][1] or b"")
    assert group_bytes * 3 < sum(len(raw) for raw in RAW.values())
    assert harness.feed("payment", RAW["payment"], T0 + 5000, KEY) == []  # a redelivery: nothing


def test_a_change_writes_the_new_version_and_deletes_the_old(harness: PipelineHarness) -> None:
    harness.feed("order", RAW["order"], T0, KEY)
    new_guid = "00000000-0000-4000-8000-000000000077"
    change = as_bytes(order_dict(appType="2", appTime="20261124111600", guid=new_guid))
    written = writes(harness.feed("order", change, T0 + 1000, KEY))
    assert written[:2] == [(doc_key("order"), None), (document_key(ORDER_NO, new_guid), change)]
    assert [key for key, _ in written[2:]] == [KEY]
    delete = as_bytes(
        order_dict(appType="3", appTime="20261124111700", guid=GUID["payment"][:-1] + "9")
    )
    written = writes(harness.feed("order", delete, T0 + 2000, KEY))
    assert written[0] == (document_key(ORDER_NO, new_guid), None)  # the held version goes
    assert [key for key, _ in written[1:]] == [KEY]


def test_retention_deletes_the_tickets_documents_with_it(harness: PipelineHarness) -> None:
    harness.feed("order", RAW["order"], T0, KEY)
    harness.feed("payment", RAW["payment"], T0 + 1000, KEY)
    harness.step([], T0 + 10_000)  # the window closes: a divert, the documents stay
    forgotten = writes(harness.step([], T0 + RETENTION_MS))
    assert sorted(forgotten) == sorted(
        [(doc_key("order"), None), (doc_key("payment"), None), (KEY, None)]
    )
    assert list(harness.pipeline.tickets.items(HOME)) == []  # nothing left of the group


def _restored(tmp_path: Path, changelog: list[tuple[bytes, bytes | None]]) -> PipelineHarness:
    """A worker whose state is only the changelog's records (as Store.restore applies them)."""
    h = PipelineHarness(tmp_path)
    for key, value in changelog:
        h.pipeline.tickets.put(HOME, key, value)
        h.pipeline.tickets.commit({HOME: 0})
    return h


def test_a_state_restored_from_the_changelog_alone_decides_as_the_original(
    tmp_path: Path,
) -> None:
    original = PipelineHarness(tmp_path / "original")
    try:
        changelog = writes(original.feed("order", RAW["order"], T0, KEY))
        changelog += writes(original.feed("payment", RAW["payment"], T0 + 1000, KEY))
        expected = decisions(original.feed("logistics", RAW["logistics"], T0 + 2000, KEY))
    finally:
        original.close()
    restored = _restored(tmp_path / "restored", changelog)
    try:
        assert any(is_document_key(key) for key, _ in restored.pipeline.tickets.items(HOME))
        found = decisions(restored.feed("logistics", RAW["logistics"], T0 + 2000, KEY))
        assert found == expected
        assert [d["decision"] for d in found] == ["RELEASE"]
    finally:
        restored.close()


@pytest.mark.parametrize(
    ("first", "then"), [(INLINE, {}), ({}, INLINE)], ids=["inline-then-separate", "the-reverse"]
)
def test_a_worker_finishes_tickets_stored_the_other_way(
    tmp_path: Path, first: dict[str, str], then: dict[str, str]
) -> None:
    """A rolling upgrade's two passes: each form of the state is read by the other, and the
    decision is the one a single worker makes (apart from its time)."""
    single = PipelineHarness(tmp_path / "single")
    try:
        expected = []
        for n, kind in enumerate(DOC_TYPES):
            expected += decisions(single.feed(kind, RAW[kind], T0 + n * 1000, KEY))
    finally:
        single.close()
    h = PipelineHarness(tmp_path / "rolled", env=first)
    try:
        written = writes(h.feed("order", RAW["order"], T0, KEY))
        written += writes(h.feed("payment", RAW["payment"], T0 + 1000, KEY))
    finally:
        h.close()
    inline = first == INLINE
    assert any(is_document_key(key) for key, _ in written) is not inline
    ticket = group_of(written[-1][1]).tickets["3301980ABC"]
    assert ticket.order is not None
    assert ticket.order.raw == (RAW["order"] if inline else b"")
    h = PipelineHarness(tmp_path / "rolled", env=then)  # the same data dir, the other setting
    try:
        found = decisions(h.feed("logistics", RAW["logistics"], T0 + 2000, KEY))
        assert [without_times(d) for d in found] == [without_times(d) for d in expected]
        # its documents go on the timer however they were stored (the release is remembered)
        h.step([], T0 + RETENTION_MS)
        assert [key for key, _ in h.pipeline.tickets.items(HOME)] == [KEY]
    finally:
        h.close()
