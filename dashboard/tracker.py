"""Each worker's counters from scrape to scrape, as Prometheus' ``increase()`` reads them.

Counters are every sample named ``*_total``, ``*_bucket``, ``*_count`` or ``*_sum``; a worker
is known by its URL:

- a worker seen for the first time has gained nothing yet (as ``increase()`` over its first
  sample); what it had counted goes into the totals: its counts since it started;
- afterwards each series gained ``current - previous``; a series that appears gained its whole
  value (prometheus_client shows a labelled series only once it is first counted);
- a worker whose counters went backwards, or whose ``process_start_time_seconds`` changed, has
  restarted: every series gained its whole current value. This is Prometheus' reset rule
  applied to the whole worker at once, so that a series which grew past its old value since
  the restart is not missed.

``reduce_gains`` then keeps what the page windows, summed over workers and the labels it does
not show: ``("decision", "release")``, ``("reason", "AMOUNT_MISMATCH")``, ``("le", "0.25")``,
``("alert", "SPLIT_ORDERS")``... A worker without one of them (an older worker) gains none of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from dashboard.promtext import Labels, Samples, label, total
from dashboard.series import increase

__all__ = ("LATENCY_BUCKETS", "Gain", "SeriesKey", "Step", "Tracker", "reduce_gains")

SeriesKey = tuple[str, Labels]
Gain = tuple[str, str]  # what, and the value of the label kept ("" for none)

LATENCY_BUCKETS = "sandan_decision_latency_seconds_bucket"
_COUNTER_SUFFIXES = ("_total", "_bucket", "_count", "_sum")
_START_TIME = "process_start_time_seconds"
# The windowed counters: sample name -> (what, the label kept; "" keeps none).
_WINDOWED = {
    "sandan_documents_total": ("documents", ""),
    "sandan_decisions_total": ("decision", "decision"),
    "sandan_divert_reasons_total": ("reason", "code"),
    "sandan_rejections_total": ("rejection", "code"),
    "sandan_receipts_total": ("receipt", "status"),
    "sandan_alerts_total": ("alert", "pattern"),
    LATENCY_BUCKETS: ("le", "le"),
}


@dataclass(frozen=True, slots=True)
class Step:
    """What one worker's counters gained since its previous scrape (none on its first)."""

    gained: dict[SeriesKey, float]
    seconds: float  # since its previous scrape; 0 on its first
    restarted: bool = False


@dataclass(slots=True)
class _Seen:
    at: float
    values: dict[SeriesKey, float]
    started: float | None


class Tracker:
    """Every worker's counters from scrape to scrape, and their totals across restarts."""

    def __init__(self) -> None:
        self._seen: dict[str, _Seen] = {}
        self.totals: dict[SeriesKey, float] = {}

    def observe(self, worker: str, at: float, samples: Samples) -> Step:
        """Fold one scrape of ``worker`` at time ``at``; what it gained since the last one."""
        values = {
            (name, labels): value
            for name, series in samples.items()
            if name.endswith(_COUNTER_SUFFIXES)
            for labels, value in series.items()
        }
        started = total(samples, _START_TIME)
        seen = self._seen.get(worker)
        self._seen[worker] = _Seen(at, values, started)
        if seen is None:
            self._add(values)
            return Step({}, 0.0)
        restarted = (
            started is not None and seen.started is not None and started != seen.started
        ) or any(value < seen.values.get(key, 0.0) for key, value in values.items())
        # After a restart every series counts from zero; else each from its last value (a
        # series that appears, from zero).
        gains = (
            (key, value if restarted else increase(seen.values.get(key, 0.0), value))
            for key, value in values.items()
        )
        gained = {key: gain for key, gain in gains if gain}
        self._add(gained)
        return Step(gained, max(at - seen.at, 0.0), restarted)

    def forget(self, before: float) -> None:
        """Drop the workers not scraped since ``before`` (their totals stay)."""
        for worker in [w for w, seen in self._seen.items() if seen.at < before]:
            del self._seen[worker]

    def _add(self, gains: Mapping[SeriesKey, float]) -> None:
        for key, value in gains.items():
            self.totals[key] = self.totals.get(key, 0.0) + value


def reduce_gains(gains: Mapping[SeriesKey, float]) -> dict[Gain, float]:
    """The windowed counters of ``gains`` that gained, summed over workers and the labels not
    kept (decision kinds in lower case)."""
    reduced: dict[Gain, float] = {}
    for (name, labels), value in gains.items():
        kind = _WINDOWED.get(name)
        if kind is None or not value:
            continue
        what, label_name = kind
        key = label(labels, label_name) if label_name else ""
        gain = (what, key.lower() if what == "decision" else key)
        reduced[gain] = reduced.get(gain, 0.0) + value
    return reduced
