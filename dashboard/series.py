"""The arithmetic of counters and histograms, as Prometheus does it; and the history's ring.

- ``increase(previous, current)``: what a counter gained between two scrapes. A counter only
  goes up; one that went down was restarted from zero (its worker restarted), so it gained
  ``current`` (Prometheus' reset rule; dashboard.tracker applies it to a whole worker).
- ``histogram_quantile(q, buckets)``: the ``q`` quantile of cumulative buckets
  ``[(upper bound, count), ...]`` (the last one ``+Inf``), interpolated linearly inside the
  bucket the rank falls in, exactly as PromQL's ``histogram_quantile``: a rank in the ``+Inf``
  bucket gives the highest finite bound; a first bucket starts at 0.
- ``rate(gained, seconds)``: per second.
- ``Ring``: the last ``capacity`` items, oldest first, each with its time.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from typing import Generic, TypeVar

__all__ = ("Ring", "buckets_of", "histogram_quantile", "increase", "rate")

T = TypeVar("T")


def increase(previous: float, current: float) -> float:
    """What a counter gained from ``previous`` to ``current``, a reset counted from zero."""
    return current - previous if current >= previous else current


def rate(gained: float, seconds: float) -> float:
    """``gained`` per second over ``seconds`` (0 over no time)."""
    return gained / seconds if seconds > 0 else 0.0


def buckets_of(counts: Mapping[str, float]) -> list[tuple[float, float]]:
    """Buckets keyed by their ``le`` label text (``"0.5"``, ``"+Inf"``) as sorted pairs."""
    return sorted((float(le), count) for le, count in counts.items())


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """The ``q`` quantile (0 <= q <= 1) of cumulative ``buckets``; None when it has no
    observations, or no ``+Inf`` bucket, or fewer than two buckets (PromQL's NaN)."""
    if not 0.0 <= q <= 1.0:
        msg = f"a quantile is between 0 and 1, got {q}"
        raise ValueError(msg)
    ordered = sorted(buckets)
    if len(ordered) < 2 or not math.isinf(ordered[-1][0]):  # noqa: PLR2004
        return None
    # Buckets scraped or summed apart may disagree by a little: make them cumulative again.
    bounds = [bound for bound, _ in ordered]
    counts: list[float] = []
    for _, count in ordered:
        counts.append(max(count, counts[-1]) if counts else count)
    observations = counts[-1]
    if observations <= 0:
        return None
    rank = q * observations
    index = next((i for i, count in enumerate(counts[:-1]) if count >= rank), len(counts) - 1)
    if index == len(counts) - 1:
        return bounds[-2]
    if index == 0 and bounds[0] <= 0:
        return bounds[0]
    start, end, count = 0.0, bounds[index], counts[index]
    if index > 0:
        start = bounds[index - 1]
        count -= counts[index - 1]
        rank -= counts[index - 1]
    if count <= 0:  # q = 0 and an empty first bucket (PromQL: NaN)
        return start
    return start + (end - start) * (rank / count)


class Ring(Generic[T]):
    """The last ``capacity`` items appended, oldest first, each with its time (seconds)."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            msg = f"a ring holds at least one item, got capacity {capacity}"
            raise ValueError(msg)
        self._items: deque[tuple[float, T]] = deque(maxlen=capacity)

    @property
    def capacity(self) -> int:
        return self._items.maxlen or 0

    def append(self, at: float, item: T) -> None:
        """Add ``item`` of time ``at``; the oldest goes when the ring is full."""
        self._items.append((at, item))

    def since(self, start: float) -> Iterator[tuple[float, T]]:
        """The items later than ``start``, oldest first (read from the newest back)."""
        recent: list[tuple[float, T]] = []
        for at, item in reversed(self._items):
            if at <= start:
                break
            recent.append((at, item))
        return reversed(recent)

    def latest(self) -> tuple[float, T] | None:
        return self._items[-1] if self._items else None

    def __iter__(self) -> Iterator[tuple[float, T]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)
