"""The Prometheus text a worker serves, as plain values.

``parse(text)`` keeps every sample by its full name (``sandan_decisions_total``,
``sandan_decision_latency_seconds_bucket``...) and its labels, sorted into a tuple so that a
series is a hashable key::

    {"sandan_decisions_total": {(("decision", "release"),): 12.0, ...}, ...}

prometheus_client's ``*_created`` samples (when each series began) are dropped: the dashboard
detects restarts from the values themselves.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client.parser import text_string_to_metric_families

__all__ = ("Labels", "Samples", "label", "parse", "total")

Labels = tuple[tuple[str, str], ...]
Samples = dict[str, dict[Labels, float]]


def parse(text: str) -> Samples:
    """Every sample of ``text``; ValueError if it is not Prometheus text."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            series = samples.setdefault(sample.name, {})
            series[tuple(sorted(sample.labels.items()))] = float(sample.value)
    return samples


def label(labels: Labels, name: str) -> str:
    """The value of label ``name`` ('' when absent)."""
    for key, value in labels:
        if key == name:
            return value
    return ""


def total(samples: Mapping[str, Mapping[Labels, float]], name: str) -> float | None:
    """The sum of every series of ``name``; None when the worker has none."""
    series = samples.get(name)
    return None if series is None else sum(series.values())
