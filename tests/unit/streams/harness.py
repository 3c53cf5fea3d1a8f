"""The pipeline (streams.pipeline.SandanPipeline) on a store in a temporary directory, fed
consumer records as the engine feeds them, one committed step at a time: what the pipeline's
unit tests drive; and :class:`Workers`, pipelines on disjoint partitions exchanging their
internal records (hops, ledger requests, outcomes) as the workers of one group do, without a
broker: what tests/unit/streams/test_tickets.py's Driver drives."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from schemas.keys import murmur2_partition
from streams.metrics import StepMetrics
from streams.pipeline import SandanPipeline
from streams.records import Output, Record
from streams.settings import Settings
from tests.integration.receipts import receipt

__all__ = (
    "PARTITIONS",
    "POOL",
    "T0",
    "HarnessPool",
    "PipelineHarness",
    "Workers",
    "on",
    "receipts",
)

T0 = 1_795_490_400_000  # 2026-11-24T03:20:00.000Z, a whole minute
PARTITIONS = 4
_END_OF_TIME = 2**62  # ms: every timer is due by then
_ALL = 2**31  # timers a scan may return


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

    def wipe(self) -> None:
        """Forget everything: every value of every partition deleted, in one committed write
        of each store, and found gone, with every timer entry (a scan for the timers due by
        the end of time returns them all, and the commit deletes what it returned); the
        decoded groups and documents the pipeline keeps forgotten with them (a rollback drops
        its caches); the counts and the offsets started again."""
        pipeline = self.pipeline
        pipeline.rollback()
        partitions = range(self.settings.partitions)
        for store in (pipeline.tickets, pipeline.ledger, pipeline.alerts):
            for partition in partitions:
                for _ in store.due(partition, _END_OF_TIME, _ALL):
                    pass  # each timer entry returned is deleted on commit
                for key, _ in list(store.items(partition)):
                    store.put(partition, key, None)
            store.commit({})
            left = [p for p in partitions if next(store.items(p), None) is not None]
            assert not left, f"{store.path}: values left in partitions {left}"
        pipeline.rollback()
        pipeline.counts.clear()
        self.offset = 0

    def close(self) -> None:
        self.pipeline.close()


class HarnessPool:
    """Pipelines kept open between the tests that drive :class:`Workers`: each opens three
    RocksDB stores (~50 ms each on a disk, with fsync), which hundreds of examples a test would
    pay again and again. Given back, a pipeline is wiped (:meth:`PipelineHarness.wipe`: every
    value and timer deleted through the stores' own writes, found gone, the decoded caches
    forgotten) before another takes it; all are closed, and their directory removed, at exit."""

    def __init__(self) -> None:
        self._dir: Path | None = None
        self._idle: dict[tuple[tuple[str, str], ...], list[PipelineHarness]] = {}
        self._open: list[PipelineHarness] = []

    def take(self, owned: set[int], env: Mapping[str, str]) -> PipelineHarness:
        """A pipeline with ``env``, empty, owning ``owned``."""
        idle = self._idle.setdefault(tuple(sorted(env.items())), [])
        if idle:
            harness = idle.pop()
        else:
            if self._dir is None:
                self._dir = Path(tempfile.mkdtemp(prefix="sandan-workers-"))
            data_dir = self._dir / f"w{len(self._open)}"
            harness = PipelineHarness(data_dir, env=env)
            self._open.append(harness)
        harness.pipeline.partitions = set(owned)
        return harness

    def give_back(self, harness: PipelineHarness, env: Mapping[str, str]) -> None:
        if harness not in self._open:
            return  # closed already (at exit)
        harness.wipe()
        self._idle.setdefault(tuple(sorted(env.items())), []).append(harness)

    def close(self) -> None:
        for harness in self._open:
            harness.close()
        self._open.clear()
        self._idle.clear()
        if self._dir is not None:
            shutil.rmtree(self._dir)
            self._dir = None


POOL = HarnessPool()
atexit.register(POOL.close)


class Workers:
    """Pipelines on disjoint partitions (``owned``, one set each, together every partition),
    each on a directory of its own, as the workers of one group: a record is consumed by the
    owner of its partition, one committed step each, and whatever a step produces on an
    internal topic (a hop, a ledger request, an outcome, a sighting) is consumed by the owner
    of its partition in a step of its own at the same time, first in first out, until none is
    left. With ``hold_ledger`` the ledger requests wait in :attr:`held` until :meth:`settle`.

    Every method returns all that the steps produced, in order (the internal records and the
    changelog records included). The pipelines come from :data:`POOL`: :meth:`close` gives
    them back, wiped."""

    def __init__(
        self,
        owned: Sequence[set[int]],
        env: Mapping[str, str] | None = None,
        *,
        hold_ledger: bool = False,
    ) -> None:
        self.env = {**(env or {})}
        self.workers = [POOL.take(partitions, self.env) for partitions in owned]
        self.settings = self.workers[0].settings
        every = list(range(self.settings.partitions))
        assert sorted(p for o in owned for p in o) == every, owned  # each owned once
        self.topics = self.workers[0].pipeline.topics
        self.hold_ledger = hold_ledger
        self.held: list[Output] = []  # ledger requests, until settle
        self._offsets: dict[tuple[str, int], int] = {}

    def owner(self, partition: int) -> PipelineHarness:
        (worker,) = (w for w in self.workers if partition in w.pipeline.partitions)
        return worker

    def owner_of(self, key: str) -> tuple[PipelineHarness, int]:
        """The worker owning the partition of ``key`` (an orderNo or a buyerIdNumber)."""
        partition = murmur2_partition(key.encode(), self.settings.partitions)
        return self.owner(partition), partition

    def consume(self, record: Record, now_ms: int) -> list[Output]:
        """``record``, consumed by the owner of its partition at ``now_ms``, and what follows."""
        return self._run([record], now_ms)

    def tick(self, now_ms: int) -> list[Output]:
        """A step of each worker without records at ``now_ms`` (its timers due), and what
        follows."""
        out: list[Output] = []
        for worker in self.workers:
            out += self._run([], now_ms, worker)
        return out

    def settle(self, now_ms: int) -> list[Output]:
        """The held ledger requests, one at a time in order, each consumed by its buyer's
        worker at ``now_ms`` with what follows (the requests that makes are held and settled
        in turn)."""
        out: list[Output] = []
        while self.held:
            out += self._run([self._record(self.held.pop(0), now_ms)], now_ms)
        return out

    def _run(
        self, records: list[Record], now_ms: int, worker: PipelineHarness | None = None
    ) -> list[Output]:
        queue: deque[tuple[PipelineHarness, list[Record]]] = deque()
        queue.append((worker or self.owner(records[0].partition), records))
        out: list[Output] = []
        while queue:
            worker, records = queue.popleft()
            produced = worker.step(records, now_ms)
            out += produced
            for output in produced:
                if output.topic not in self.topics.internal:
                    continue
                if output.topic == self.topics.ledger and self.hold_ledger:
                    self.held.append(output)
                    continue
                record = self._record(output, now_ms)
                queue.append((self.owner(record.partition), [record]))
        return out

    def _record(self, output: Output, now_ms: int) -> Record:
        """An internal record as its partition's owner consumes it."""
        assert output.partition is not None, output
        at = (output.topic, output.partition)
        offset = self._offsets[at] = self._offsets.get(at, -1) + 1
        timestamp = now_ms if output.timestamp is None else output.timestamp
        headers = tuple(output.headers or ())
        return Record(*at, offset, timestamp, output.key, output.value, headers)

    def close(self) -> None:
        for worker in self.workers:
            POOL.give_back(worker, self.env)
        self.workers = []


def on(outputs: Iterable[Output], topic: str) -> list[Output]:
    """The outputs on ``cbec.{topic}``."""
    return [o for o in outputs if o.topic == f"cbec.{topic}"]


class _Record:  # what tests.integration.receipts.receipt reads
    def __init__(self, output: Output) -> None:
        self.key, self.value, self.headers = output.key, output.value, output.headers or []


def receipts(outputs: Iterable[Output]) -> list[dict[str, Any]]:
    """The receipts among ``outputs``, decoded (JSON or XML) with their key and format."""
    return [receipt(_Record(o)) for o in on(outputs, "receipt")]
