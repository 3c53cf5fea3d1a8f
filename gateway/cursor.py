"""The receipts cursor and the choice of a page of receipts (pure: no I/O, no clock).

A cursor is self-contained, so it survives gateway restarts and works on any gateway: the next
offset to read in each receipt-topic partition it covers. Layout::

    "r1." + base64url(msgpack([[partition, next_offset], ...]))     (no padding; sorted)

``r1`` is the version tag. A caller's receipts are on the partitions of its codes
(``murmur2(code) % partitions``); a partition the cursor does not name is read from its
earliest retained record. The offsets are only positions: a cursor names no firm, and a
request reads only the caller's own partitions and keeps only the records keyed by its codes.

:func:`select_page` picks the next ``limit`` receipts out of what was read and computes the
next cursor: per partition, the offset of the first receipt left out, or, when none was left
out, the position the read reached (past other firms' records and transaction markers).
"""

from __future__ import annotations

import base64
import binascii
import heapq
from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, NamedTuple

import msgspec

from gateway.errors import BadRequestError

__all__ = (
    "CURSOR_VERSION",
    "MAX_CURSOR_LENGTH",
    "Seen",
    "decode_cursor",
    "encode_cursor",
    "select_page",
    "start_offset",
)

CURSOR_VERSION = "r1"
MAX_CURSOR_LENGTH = 4096
MAX_PARTITIONS = 1024

_NonNegative = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
_PAIRS = msgspec.msgpack.Decoder(
    Annotated[list[tuple[_NonNegative, _NonNegative]], msgspec.Meta(max_length=MAX_PARTITIONS)]
)
_ENCODER = msgspec.msgpack.Encoder()


class Seen(NamedTuple):
    """A receipt record of the caller's, as read."""

    partition: int
    offset: int
    timestamp: int
    content_type: str
    value: bytes


def encode_cursor(offsets: Mapping[int, int]) -> str:
    """The cursor for these next offsets (partition -> offset)."""
    pairs = sorted(offsets.items())
    payload = base64.urlsafe_b64encode(_ENCODER.encode(pairs)).rstrip(b"=").decode()
    return f"{CURSOR_VERSION}.{payload}"


def decode_cursor(text: str) -> dict[int, int]:
    """The next offsets a cursor holds; BadRequestError if it is not one of ours."""
    if len(text) > MAX_CURSOR_LENGTH:
        raise _malformed(f"longer than {MAX_CURSOR_LENGTH} characters")
    version, dot, payload = text.partition(".")
    if not dot or version != CURSOR_VERSION:
        raise _malformed(f"expected a cursor of version {CURSOR_VERSION} from this API")
    try:
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        pairs = _PAIRS.decode(raw)
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise _malformed("it does not decode") from None
    offsets = dict(pairs)
    if len(offsets) != len(pairs):
        raise _malformed("a partition appears twice")
    return offsets


def _malformed(why: str) -> BadRequestError:
    return BadRequestError(
        f"malformed cursor: {why}; use the cursor of the previous page, or none to start from "
        "the earliest receipt",
        "malformed cursor",
    )


def start_offset(next_offset: int | None, earliest: int, last_stable: int) -> int:
    """Where to read a partition from: the cursor's next offset, or the earliest retained
    record when the cursor names none, points before it (retention deleted it) or points past
    the last stable offset (a cursor's offset never passes it: the topic was recreated)."""
    if next_offset is None or next_offset > last_stable:
        return earliest
    return max(next_offset, earliest)


def select_page(
    found: Mapping[int, Sequence[Seen]], positions: Mapping[int, int], limit: int
) -> tuple[list[Seen], dict[int, int]]:
    """The first ``limit`` of the caller's receipts read, and the next offset per partition.

    ``found`` holds each partition's receipts of the caller in offset order; ``positions`` the
    offset each partition was read up to (exclusive). Receipts of different partitions are
    interleaved by timestamp; each partition's stay in offset order.
    """
    streams: Iterable[Seen] = heapq.merge(
        *found.values(), key=lambda seen: (seen.timestamp, seen.partition)
    )
    page: list[Seen] = []
    for seen in streams:
        if len(page) >= limit:
            break
        page.append(seen)
    taken: dict[int, int] = {}
    for seen in page:
        taken[seen.partition] = taken.get(seen.partition, 0) + 1
    next_offsets = dict(positions)
    for partition, receipts in found.items():
        count = taken.get(partition, 0)
        if count < len(receipts):
            next_offsets[partition] = receipts[count].offset
    return page, next_offsets
