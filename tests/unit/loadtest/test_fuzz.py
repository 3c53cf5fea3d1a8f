"""Hostile input through the worker's intake path (loadtest/fuzz.py, loadtest/hostile/): a fixed
sample of the fuzz run that ``make fuzz`` does at 10^6 inputs, every kind under hypothesis'
control (so a failure shrinks), and any JSON value or XML text in any field.

The property: a record value ends as documents or rejections ``SCHEMA`` (``DRAFT`` for a valid
draft), never another exception; loadtest.fuzz.check states it in full."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from loadtest.fuzz import OUTCOMES, ContractError, check, garbage, make, run
from loadtest.hostile import KIND_NAMES, KINDS, hostile, make_seeds
from loadtest.hostile.base import MAX_MESSAGE_BYTES
from schemas.ceb_xml import is_xml
from schemas.codec import readable_fields
from schemas.documents import DOC_TYPES, DocType

SEEDS = make_seeds(1)
MARK = "hostile3f9c"


def relaxed(examples: int) -> settings:
    """Seeded (the same examples each run), no deadline: some inputs are megabytes."""
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


SAMPLE = 5_000  # of `make fuzz`'s 10^6: every kind and every outcome shows


def test_a_sample_of_the_fuzz_run() -> None:
    result = run(20261205, SAMPLE, seeds=SEEDS, slow_s=10.0, hang_s=50.0)
    assert result.findings == []
    assert result.inputs == result.asked == SAMPLE
    assert result.ok
    assert sum(t.inputs for t in result.kinds.values()) == SAMPLE
    for name, tally in result.kinds.items():
        formats = {f for f in ("json", "xml") if getattr(KINDS[name], f) is not None}
        assert set(tally.formats) == formats, name
        assert sum(tally.outcomes.values()) == tally.inputs, name
        assert set(tally.outcomes) <= set(OUTCOMES), name
    outcomes = {o for tally in result.kinds.values() for o in tally.outcomes}
    assert outcomes == set(OUTCOMES)


def test_an_input_is_made_again_from_its_seed_and_index() -> None:
    first = [make(5, index, SEEDS) for index in range(200)]
    again = [make(5, index, make_seeds(1)) for index in (199, 7, 0)]
    assert again == [first[199], first[7], first[0]]
    assert len({h.value for h in first}) > 190
    assert make(6, 7, SEEDS) != first[7]


def test_the_seeds_are_valid_inputs() -> None:
    for doc_type in DOC_TYPES:
        assert len(SEEDS.json[doc_type]) == len(SEEDS.xml[doc_type]) == 24
        for value in SEEDS.json[doc_type] + SEEDS.xml[doc_type]:
            assert check(doc_type, value) == "accepted"


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_every_kind_breaks_its_inputs(kind: str) -> None:
    rng = random.Random(kind)
    made = [hostile(rng, SEEDS, kind) for _ in range(60)]
    assert {h.kind for h in made} == {kind}
    outcomes = [check(h.doc_type, h.value) for h in made]
    assert outcomes.count("accepted") < len(made)  # most inputs of each kind are broken


def test_check_refuses_a_broken_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    from loadtest import fuzz

    def swallowing(*args: Any) -> list[Any]:
        return []

    monkeypatch.setattr(fuzz, "read", swallowing)
    with pytest.raises(ContractError, match="no document and no rejection"):
        check("order", b"{}")


@relaxed(1200)
@given(kind=st.sampled_from(KIND_NAMES), rng=st.randoms(use_true_random=False))
def test_every_kind_under_hypothesis(kind: str, rng: random.Random) -> None:
    made = hostile(rng, SEEDS, kind)
    assert check(made.doc_type, made.value) in OUTCOMES


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()  # NaN and infinities: written as tokens JSON does not have
    | st.text(st.characters(exclude_categories=()), max_size=20),  # surrogates, controls
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=6,
)


@relaxed(600)
@given(
    doc_type=st.sampled_from(DOC_TYPES),
    data=st.data(),
    value=JSON_VALUES,
    ascii_only=st.booleans(),
)
def test_any_json_value_in_any_field(
    doc_type: DocType, data: st.DataObject, value: object, ascii_only: bool
) -> None:
    doc: dict[str, Any] = json.loads(SEEDS.json[doc_type][0])
    container = doc
    if doc_type == "order" and data.draw(st.booleans()):
        container = doc["orderList"][0]
    key = data.draw(st.sampled_from(sorted(container)))
    container[key] = value
    text = json.dumps(doc, ensure_ascii=ascii_only, allow_nan=True)
    assert check(doc_type, text.encode("utf-8", "surrogatepass")) in OUTCOMES


@relaxed(600)
@given(
    doc_type=st.sampled_from(DOC_TYPES),
    data=st.data(),
    text=st.binary(max_size=40)
    | st.text(st.characters(exclude_categories=())).map(
        lambda t: t.encode("utf-8", "surrogatepass")
    ),
)
def test_any_bytes_as_the_text_of_any_xml_field(
    doc_type: DocType, data: st.DataObject, text: bytes
) -> None:
    root = etree.fromstring(SEEDS.xml[doc_type][0])
    leaves = [e for e in root.iter() if len(e) == 0 and e is not root]
    data.draw(st.sampled_from(leaves)).text = MARK
    value = etree.tostring(root, encoding="UTF-8").replace(MARK.encode(), text)
    assert check(doc_type, value) in OUTCOMES


def test_garbage_is_rejected_whole_and_names_what_intake_reads() -> None:
    items = garbage(3, 60, max_size=20_000, huge=1)
    assert len(items) == 60
    assert sum(len(g.made.value) > MAX_MESSAGE_BYTES for g in items) == 1
    assert all(len(g.made.value) <= 20_000 for g in items[:-1])
    for item in items:
        assert check(item.made.doc_type, item.made.value) == "rejected"
        expected = None if is_xml(item.made.value) else readable_fields(item.made.value).get("guid")
        assert item.guid == expected
    assert garbage(3, 60, max_size=20_000, huge=1) == items


def test_check_refuses_a_decoding_that_depends_on_the_stack(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from schemas import codec

    raw = SEEDS.json["order"][0]
    deep = raw[:1] + b'"x": ' + b"[" * 900 + b"]" * 900 + b", " + raw[1:]
    assert check("order", deep) == "rejected"
    monkeypatch.setattr(codec, "_deeper_than", lambda raw, limit: False)  # no limit of its own
    with pytest.raises(ContractError, match="depends on the caller's stack depth"):
        check("order", deep)
