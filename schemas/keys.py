"""Ticket identity and the partition that owns it (pure).

A ticket is ``{ebpCode}:{orderNo}``; its partition is chosen from ``orderNo`` alone (the
waybill has no ``ebpCode``) with Kafka's default partitioner (murmur2 of the UTF-8 key), so a
record a producer keyed by ``orderNo`` is already on its ticket's partition.
"""

from __future__ import annotations

from functools import lru_cache

__all__ = ("MAX_EBP_CODE", "MAX_ORDER_NO", "murmur2_partition", "split_ticket_id", "ticket_id")

MAX_EBP_CODE = 18  # the standard's lengths (schemas/documents.py)
MAX_ORDER_NO = 60


def ticket_id(ebp_code: str | None, order_no: str) -> str:
    """The contract's ticket id; a waybill-only ticket has an empty platform code."""
    return f"{ebp_code or ''}:{order_no}"


def split_ticket_id(text: str) -> tuple[str, str]:
    """(platform code, order number) of ``{ebpCode}:{orderNo}`` (``:{orderNo}`` for a
    waybill-only ticket); raise ValueError saying what a ticket id is."""
    ebp, sep, order_no = text.partition(":")
    if not sep or not order_no:
        msg = f"not a ticket id: {text!r} (expected {{ebpCode}}:{{orderNo}})"
        raise ValueError(msg)
    if len(ebp) > MAX_EBP_CODE or len(order_no) > MAX_ORDER_NO:
        msg = (
            f"not a ticket id: {text!r} (ebpCode is at most {MAX_EBP_CODE} characters, "
            f"orderNo at most {MAX_ORDER_NO})"
        )
        raise ValueError(msg)
    return ebp, order_no


@lru_cache(maxsize=1 << 16)
def murmur2_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for ``key`` (Java client murmur2)."""
    length = len(key)
    m = 0x5BD1E995
    h = (0x9747B28C ^ length) & 0xFFFFFFFF
    for i in range(0, length - length % 4, 4):
        k = int.from_bytes(key[i : i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> 24
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    tail = length % 4
    if tail:
        rest = key[length - tail :]
        if tail >= 3:  # noqa: PLR2004
            h ^= rest[2] << 16
        if tail >= 2:  # noqa: PLR2004
            h ^= rest[1] << 8
        h ^= rest[0]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return (h & 0x7FFFFFFF) % partitions
