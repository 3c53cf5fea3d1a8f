"""The receipts cursor and page selection (gateway.cursor)."""

from __future__ import annotations

import base64
import re

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.cursor import (
    MAX_CURSOR_LENGTH,
    Seen,
    decode_cursor,
    encode_cursor,
    select_page,
    start_offset,
)
from gateway.errors import BadRequestError


@given(st.dictionaries(st.integers(0, 1023), st.integers(0, 2**63 - 1), max_size=64))
def test_round_trip(offsets: dict[int, int]) -> None:
    text = encode_cursor(offsets)
    assert re.fullmatch(r"r1\.[A-Za-z0-9_-]*", text)  # URL-safe, no padding
    assert decode_cursor(text) == offsets


def test_the_layout_is_versioned_msgpack_pairs():
    text = encode_cursor({3: 17, 1: 5})
    version, payload = text.split(".")
    assert version == "r1"
    raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    assert msgspec.msgpack.decode(raw) == [[1, 5], [3, 17]]


def _b64(value: object) -> str:
    return base64.urlsafe_b64encode(msgspec.msgpack.encode(value)).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "text",
    [
        "",
        "r1",
        "r2." + _b64([[0, 1]]),
        "v1." + _b64([[0, 1]]),
        "r1.***",
        "r1.a",  # not base64 of anything
        "r1." + _b64({"0": 1}),
        "r1." + _b64([[0, -1]]),
        "r1." + _b64([[-1, 0]]),
        "r1." + _b64([[0, 1, 2]]),
        "r1." + _b64([[0, "1"]]),
        "r1." + _b64([[0, 1], [0, 2]]),  # a partition twice
        "r1." + _b64([[p, 0] for p in range(1025)]),
        "r1." + "A" * MAX_CURSOR_LENGTH,
    ],
)
def test_malformed_cursors_are_400(text: str) -> None:
    with pytest.raises(BadRequestError) as info:
        decode_cursor(text)
    assert info.value.status == 400
    assert info.value.error == "malformed cursor"
    assert info.value.detail.startswith("malformed cursor: ")


def seen(partition: int, offset: int, timestamp: int) -> Seen:
    return Seen(partition, offset, timestamp, "application/json", b"{}")


def test_a_page_interleaves_partitions_by_time_and_keeps_each_partitions_order():
    found = {
        0: [seen(0, 3, 100), seen(0, 9, 50), seen(0, 12, 300)],  # times out of order in p0
        2: [seen(2, 4, 75), seen(2, 5, 200)],
    }
    page, next_offsets = select_page(found, {0: 20, 2: 8}, limit=10)
    assert [(s.partition, s.offset) for s in page] == [(2, 4), (0, 3), (0, 9), (2, 5), (0, 12)]
    assert next_offsets == {0: 20, 2: 8}  # everything read was returned: past the rest


def test_a_full_page_resumes_at_the_first_receipt_left_out():
    found = {0: [seen(0, 3, 1), seen(0, 9, 4)], 2: [seen(2, 4, 2), seen(2, 5, 3)]}
    page, next_offsets = select_page(found, {0: 20, 2: 8}, limit=2)
    assert [(s.partition, s.offset) for s in page] == [(0, 3), (2, 4)]
    assert next_offsets == {0: 9, 2: 5}
    page, next_offsets = select_page(found, {0: 20, 2: 8}, limit=3)
    assert next_offsets == {0: 9, 2: 8}


def test_nothing_found_moves_past_what_was_read():
    assert select_page({0: [], 1: []}, {0: 40, 1: 7}, limit=5) == ([], {0: 40, 1: 7})


def test_where_a_partition_is_read_from() -> None:
    assert start_offset(None, 5, 40) == 5  # no cursor: the earliest retained
    assert start_offset(12, 5, 40) == 12
    assert start_offset(40, 5, 40) == 40  # caught up
    assert start_offset(3, 5, 40) == 5  # retention deleted what the cursor pointed at
    assert start_offset(41, 0, 40) == 0  # past the end: the topic was recreated
