"""Packed digests: found only where a digest starts."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from streams.digests import DIGEST_BYTES, digest, holds


def test_a_digest_is_found_where_it_was_packed_and_nowhere_else() -> None:
    packed = b"".join(digest(f"guid-{n}") for n in range(100))
    assert all(holds(packed, digest(f"guid-{n}")) for n in range(100))
    assert not holds(packed, digest("guid-100"))
    assert not holds(b"", digest("guid-0"))
    assert len(digest("x")) == DIGEST_BYTES


def test_bytes_straddling_two_digests_are_not_one() -> None:
    first, second = bytes(range(8)), bytes(range(8, 16))
    straddling = first[4:] + second[:4]
    assert not holds(first + second, straddling)
    assert holds(first + second + straddling, straddling)  # packed whole: found
    # a misaligned occurrence before the aligned one is skipped, not taken as the answer
    assert holds(b"\x00" * 4 + straddling + b"\x00" * 4 + straddling, straddling)


@given(st.lists(st.binary(min_size=8, max_size=8), max_size=30), st.binary(min_size=8, max_size=8))
def test_holds_is_membership_of_the_aligned_slices(entries: list[bytes], wanted: bytes) -> None:
    packed = b"".join(entries)
    assert holds(packed, wanted) == (wanted in entries)
