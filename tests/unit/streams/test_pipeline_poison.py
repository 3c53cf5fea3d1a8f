"""A poison record does not stop the stream: a record whose handling raises goes to
``cbec.rejected`` as ``INTERNAL`` with the error class and its original bytes, and the batch's
other records come out exactly as if it had not been there (faults injected into intake)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streams import pipeline as pipeline_module
from streams.intake import read
from streams.records import Output, Record
from tests.factories import as_bytes, logistics_dict, order_dict, payment_dict
from tests.unit.streams.harness import T0, PipelineHarness, on, receipts

POISON = b'"poison-marker"'


class InjectedError(Exception):
    pass


@pytest.fixture
def poisoned_intake(monkeypatch: pytest.MonkeyPatch) -> None:
    """Intake fails on any record whose bytes hold the marker."""

    def failing_read(incoming: Any, *args: Any, **kwargs: Any) -> Any:
        if POISON in (incoming.value or b""):
            raise InjectedError("injected")
        return read(incoming, *args, **kwargs)

    monkeypatch.setattr(pipeline_module, "read", failing_read)


def _ticket(order_no: str) -> list[tuple[str, bytes]]:
    guid = f"{order_no:X>35}"[-35:]
    return [
        ("order", as_bytes(order_dict(orderNo=order_no, guid="O" + guid))),
        ("payment", as_bytes(payment_dict(orderNo=order_no, guid="P" + guid))),
        ("logistics", as_bytes(logistics_dict(orderNo=order_no, guid="L" + guid))),
    ]


def _batch(h: PipelineHarness, items: list[tuple[str, bytes]]) -> list[Record]:
    return [
        Record(h.settings.topic(topic), 0, offset, T0, None, value)
        for offset, (topic, value) in enumerate(items)
    ]


def _poison() -> bytes:
    return as_bytes(payment_dict(orderNo="POISON1", guid="Q" * 36, payerName="poison-marker"))


def _comparable(outputs: list[Output]) -> list[tuple[str, Any]]:
    """Outputs without the clock-dependent receipt times."""
    values = []
    for output in outputs:
        value: Any = output.value
        if output.topic.endswith(".receipt"):
            value = {k: v for k, v in json.loads(value).items() if k != "returnTime"}
        values.append((output.topic, value))
    return values


@pytest.fixture
def two(tmp_path: Path) -> Iterator[tuple[PipelineHarness, PipelineHarness]]:
    clean, poisoned = PipelineHarness(tmp_path / "clean"), PipelineHarness(tmp_path / "poisoned")
    yield clean, poisoned
    clean.close()
    poisoned.close()


@pytest.mark.usefixtures("poisoned_intake")
def test_a_poison_record_is_set_aside_and_the_batch_goes_on(
    two: tuple[PipelineHarness, PipelineHarness],
) -> None:
    clean, poisoned = two
    items = _ticket("POISONA") + _ticket("POISONB")
    expected = clean.step(_batch(clean, items), T0)
    with_poison = [*items[:4], ("payment", _poison()), *items[4:]]
    batch = _batch(poisoned, with_poison)
    out = poisoned.step(batch, T0)

    internal = on(out, "rejected")
    assert len(internal) == 1
    rejection = json.loads(internal[0].value or b"")
    assert rejection["code"] == "INTERNAL"
    assert "InjectedError" in rejection["detail"]
    assert rejection["docType"] == "payment"
    assert rejection["guid"] == "Q" * 36
    assert rejection["source"]["offset"] == 4
    assert base64.b64decode(rejection["raw"]) == _poison()
    (returned,) = [r for r in receipts(out) if r["returnStatus"] == "100"]
    assert (returned["guid"], returned["code"]) == ("Q" * 36, "INTERNAL")
    # Everything else exactly as without the poison record.
    rest = [o for o in out if o not in internal and not _is_receipt_for(o, "Q" * 36)]
    assert _comparable(rest) == _comparable(expected)
    assert poisoned.pipeline.counts["rejected.INTERNAL"] == 1


def _is_receipt_for(output: Output, guid: str) -> bool:
    return output.topic.endswith(".receipt") and json.loads(output.value or b"")["guid"] == guid


@pytest.mark.usefixtures("poisoned_intake")
def test_too_many_poison_records_in_one_batch_stop_the_worker(tmp_path: Path) -> None:
    h = PipelineHarness(tmp_path)
    try:
        items = [("payment", _poison())] * (pipeline_module.MAX_POISONED_PER_BATCH + 1)
        with pytest.raises(RuntimeError, match="records of one batch failed"):
            h.step(_batch(h, items), T0)
    finally:
        h.close()


def test_an_internal_record_that_fails_is_set_aside_without_a_sender(tmp_path: Path) -> None:
    h = PipelineHarness(tmp_path)
    try:
        garbage = Record(h.settings.topic("sandan-ledger"), 2, 7, T0, b"buyer", b"\xc1garbage")
        out = h.step([garbage, *_batch(h, _ticket("POISONC"))], T0)
        (rejected,) = on(out, "rejected")
        value = json.loads(rejected.value or b"")
        assert (value["code"], value["docType"], value["source"]["topic"]) == (
            "INTERNAL",
            None,
            h.settings.topic("sandan-ledger"),
        )
        assert all(r["guid"] != "" for r in receipts(out))
        assert [r["returnStatus"] for r in receipts(out)].count("100") == 0
        assert len(on(out, "release")) == 1
    finally:
        h.close()
