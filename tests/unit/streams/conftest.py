"""Fixtures shared by the streams unit tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.streams.harness import PipelineHarness


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[PipelineHarness]:
    """The pipeline on a store in ``tmp_path``, owning every partition (a test module may
    define a ``harness`` of its own)."""
    h = PipelineHarness(tmp_path)
    yield h
    h.close()
