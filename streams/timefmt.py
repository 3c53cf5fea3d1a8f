"""Timestamps as the contract writes them."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache

__all__ = ("iso_ms",)


@lru_cache(maxsize=1024)  # a batch decides many tickets at the same millisecond
def iso_ms(epoch_ms: int) -> str:
    """ISO-8601 UTC with milliseconds, e.g. ``2026-11-24T03:15:00.123Z``."""
    moment = datetime.fromtimestamp(epoch_ms / 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"
