"""The pipeline (streams.pipeline.SandanPipeline) on a store in a temporary directory, fed
consumer records as the engine feeds them: XML messages decide exactly as the same documents
sent as JSON, and intake's rejections come with their receipts.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loadtest.generator import generate
from loadtest.truth import FaultMix
from schemas.ceb_xml import encode_message
from schemas.codec import decode_document
from schemas.errors import SchemaError
from streams.records import Output
from tests.factories import as_bytes, order_dict, payment_dict
from tests.unit.streams.harness import T0, PipelineHarness, on, receipts

COP = "3301980AGT"


# -- intake's rejections and their receipts ------------------------------------------------------


def test_a_json_schema_rejection_is_returned_to_the_code_it_names(harness: PipelineHarness) -> None:
    bad = payment_dict(amountPaid="1e3")
    out = harness.feed("payment", as_bytes(bad), T0)
    (rejected,) = on(out, "rejected")
    assert json.loads(rejected.value or b"")["code"] == "SCHEMA"
    (r,) = receipts(out)
    assert (r["format"], r["key"], r["returnStatus"], r["code"], r["guid"]) == (
        "json",
        bad["payCode"],
        "100",
        "SCHEMA",
        bad["guid"],
    )
    assert r["returnInfo"].startswith("SCHEMA: ") and "`$.amountPaid`" in r["returnInfo"]


def test_an_xml_message_with_a_bad_node_and_a_draft(harness: PipelineHarness) -> None:
    good = order_dict(orderNo="SOX1", guid="A" * 36)
    draft = order_dict(orderNo="SOX2", guid="B" * 36, appStatus="1")
    documents = [decode_document("order", as_bytes(x)) for x in (good, draft)]
    message = encode_message("order", documents, cop_code=COP, guid="M" * 36)
    # the third node: an over-long orderNo, spliced in as the encoder would not write it
    bad = encode_message("order", [documents[0]], cop_code=COP).split(b"<ceb:Order>")[1]
    bad = bad.split(b"</ceb:Order>")[0].replace(b">SOX1<", b">" + b"9" * 61 + b"<")
    message = message.replace(
        b"<ceb:BaseTransfer>", b"<ceb:Order>" + bad + b"</ceb:Order><ceb:BaseTransfer>"
    )
    out = harness.feed("order", message, T0)
    rejected = [json.loads(o.value or b"") for o in on(out, "rejected")]
    assert [(r["code"], r.get("node"), r.get("messageGuid")) for r in rejected] == [
        ("DRAFT", 2, "M" * 36),
        ("SCHEMA", 3, "M" * 36),
    ]
    assert rejected[1]["detail"] == "node 3: Expected `str` of length <= 60 - at `$.orderNo`"
    got = [
        (r["format"], r["key"], r["returnStatus"], r.get("code"), r.get("node"))
        for r in receipts(out)
    ]
    assert sorted(got, key=str) == sorted(
        [
            ("xml", COP, "120", None, 1),
            ("xml", COP, "100", "DRAFT", 2),
            ("xml", COP, "100", "SCHEMA", 3),
        ],
        key=str,
    )


def test_a_message_rejected_whole_is_returned_to_the_copcode_its_bytes_name(
    harness: PipelineHarness,
) -> None:
    message = encode_message(
        "payment", [decode_document("payment", as_bytes(payment_dict()))], cop_code=COP
    )
    out = harness.feed("order", message, T0)  # a CEB411Message on the order topic
    (rejected,) = [json.loads(o.value or b"") for o in on(out, "rejected")]
    assert rejected["code"] == "SCHEMA" and "CEB411Message" in rejected["detail"]
    (r,) = receipts(out)
    assert (r["format"], r["key"], r["returnStatus"], r["code"]) == ("xml", COP, "100", "SCHEMA")


# -- XML decides as JSON ------------------------------------------------------------------------


def _as_xml(value: bytes, kind: str) -> bytes | None:
    try:
        document = decode_document(kind, value)  # type: ignore[arg-type]
    except SchemaError:
        return None  # an undecodable record stays as it is
    return encode_message(kind, [document], cop_code=COP)  # type: ignore[arg-type]


def _decisions_and_rejections(data_dir: Path, records: Sequence[tuple[str, bytes, int]]) -> Any:
    h = PipelineHarness(data_dir)
    try:
        out: list[Output] = []
        for topic, value, at in records:
            out += h.feed(topic, value, at)
        out += h.step([], records[-1][2] + 200_000)  # every window closed
    finally:
        h.close()
    decisions = [json.loads(o.value or b"") for o in (*on(out, "release"), *on(out, "divert"))]
    rejections = [json.loads(o.value or b"") for o in on(out, "rejected")]
    return decisions, sorted((r["code"], r.get("guid") or "") for r in rejections)


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 2**32 - 1), share=st.floats(0.2, 1.0))
def test_xml_messages_decide_as_json(tmp_path: Path, seed: int, share: float) -> None:
    plan = generate(seed, 40, rate=20, window=10, max_delay=1, settle=2, faults=FaultMix.even(0.6))
    as_json = [(r.doc_type, r.value, T0 + int(r.at * 1000)) for r in plan.records]
    as_xml = []
    for n, (kind, value, at) in enumerate(as_json):
        converted = _as_xml(value, kind) if (n * 7919 % 100) / 100 < share else None
        as_xml.append((kind, converted or value, at))
    json_run = _decisions_and_rejections(tmp_path / f"json-{seed}", as_json)
    xml_run = _decisions_and_rejections(tmp_path / f"xml-{seed}", as_xml)
    assert xml_run == json_run
    assert json_run[0]  # decisions were made
