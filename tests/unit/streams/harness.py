"""The pipeline (streams.pipeline.SandanPipeline) on a store in a temporary directory, fed
consumer records as the engine feeds them, one committed step at a time: what the pipeline's
unit tests drive."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from streams.metrics import StepMetrics
from streams.pipeline import SandanPipeline
from streams.records import Output, Record
from streams.settings import Settings
from tests.integration.receipts import receipt

__all__ = ("PARTITIONS", "T0", "PipelineHarness", "on", "receipts")

T0 = 1_795_490_400_000  # 2026-11-24T03:20:00.000Z, a whole minute
PARTITIONS = 4


class PipelineHarness:
    """One pipeline owning ``owned`` partitions (default all), a 10 s window, a 100 s
    retention; ``env``: more settings (or other values of these)."""

    def __init__(
        self,
        data_dir: Path,
        *,
        owned: set[int] | None = None,
        metrics: StepMetrics | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = Settings.from_env(
            {
                "SANDAN_DATA_DIR": str(data_dir),
                "SANDAN_PARTITIONS": str(PARTITIONS),
                "SANDAN_WINDOW": "10s",
                "SANDAN_RETENTION": "100s",
                "SANDAN_WORKER_ID": "w-test",
                **(env or {}),
            }
        )
        self.pipeline = SandanPipeline(self.settings, metrics)
        self.pipeline.partitions = set(range(PARTITIONS)) if owned is None else owned
        self.offset = 0

    def feed(
        self,
        topic: str,
        value: bytes | None,
        at_ms: int,
        key: bytes | None = None,
        partition: int = 0,
        *,
        commit: bool = True,
    ) -> list[Output]:
        """One record on ``cbec.{topic}`` appended at ``at_ms``, as one step at that time."""
        self.offset += 1
        record = Record(self.settings.topic(topic), partition, self.offset, at_ms, key, value)
        return self.step([record], at_ms, commit=commit)

    def step(self, records: list[Any], now_ms: int, *, commit: bool = True) -> list[Output]:
        """One step (the timers due by ``now_ms`` included), committed or rolled back."""
        outputs = self.pipeline.process(records, now_ms, now_ms)
        if commit:
            self.pipeline.commit({}, now_ms + 50)
        else:
            self.pipeline.rollback()
        return outputs

    def close(self) -> None:
        self.pipeline.close()


def on(outputs: Iterable[Output], topic: str) -> list[Output]:
    """The outputs on ``cbec.{topic}``."""
    return [o for o in outputs if o.topic == f"cbec.{topic}"]


class _Record:  # what tests.integration.receipts.receipt reads
    def __init__(self, output: Output) -> None:
        self.key, self.value, self.headers = output.key, output.value, output.headers or []


def receipts(outputs: Iterable[Output]) -> list[dict[str, Any]]:
    """The receipts among ``outputs``, decoded (JSON or XML) with their key and format."""
    return [receipt(_Record(o)) for o in on(outputs, "receipt")]
