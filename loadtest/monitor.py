"""Sampling a running load test every second: CPU and memory of its processes, and consumer lag.

:class:`Monitor` keeps one :class:`Sample` a second: per watched process (a sandan worker, the
broker, the load driver; a process's children count with it) its CPU % (of one core; 200 % is
both cores of a two-core machine) and resident memory (as ``machine``: all processes, CPU and
memory in use, i.e. total - available), and the lag of the workers' consumer
group on each input topic: the sum over its partitions of the end offset minus the group's
committed offset (a partition with nothing committed counts from 0).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import msgspec
import psutil  # type: ignore[import-untyped]
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

__all__ = ("Monitor", "ProcessSample", "Sample", "broker_pid")

ROOT = Path(__file__).resolve().parents[1]
_TIMEOUT = 5.0


class ProcessSample(msgspec.Struct, array_like=True):
    """One process (with its children) at one moment."""

    cpu: float  # percent of one core since the previous sample
    rss_mb: float


class Sample(msgspec.Struct):
    """Everything sampled at wall time ``t`` (seconds since the epoch)."""

    t: float
    processes: dict[str, ProcessSample]
    lag: dict[str, int] | None  # per input topic; None when the brokers did not answer


def broker_pid(brokers: str) -> int | None:
    """The pid of the local broker serving the first address of ``brokers``: from
    ``.cache/kafka/run-<port>/broker.pid``, else a ``kafka.Kafka`` process whose command line
    names that run directory (or any, if none does)."""
    port = brokers.split(",", maxsplit=1)[0].rpartition(":")[2]
    pidfile = ROOT / ".cache" / "kafka" / f"run-{port}" / "broker.pid"
    with contextlib.suppress(OSError, ValueError):
        pid = int(pidfile.read_text().strip())
        if psutil.pid_exists(pid):
            return pid
    candidates: list[tuple[bool, int]] = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        line = " ".join(process.info.get("cmdline") or ())
        if "kafka.Kafka" in line:
            candidates.append((f"run-{port}" in line, process.info["pid"]))
    return max(candidates)[1] if candidates else None


class _Watched:
    """A process and its children (unless told not to count them), with the psutil handles
    that carry CPU times over."""

    def __init__(self, pid: int, *, children: bool = True) -> None:
        self.children = children
        self.root = psutil.Process(pid)
        self.handles: dict[int, psutil.Process] = {pid: self.root}
        self.root.cpu_percent(None)

    def sample(self) -> ProcessSample | None:
        try:
            if self.root.status() == psutil.STATUS_ZOMBIE:  # exited, not yet reaped
                return None
            for child in self.root.children(recursive=True) if self.children else ():
                if child.pid not in self.handles:
                    self.handles[child.pid] = child
                    child.cpu_percent(None)
        except psutil.Error:
            return None
        cpu = rss = 0.0
        for pid, handle in list(self.handles.items()):
            try:
                with handle.oneshot():
                    cpu += handle.cpu_percent(None)
                    rss += handle.memory_info().rss
            except psutil.Error:
                del self.handles[pid]
        if self.root.pid not in self.handles:
            return None
        return ProcessSample(round(cpu, 1), round(rss / 2**20, 1))


class Monitor:
    """Samples every ``interval`` seconds from :meth:`run` until :meth:`stop`."""

    def __init__(
        self,
        brokers: str,
        group: str,
        topics: tuple[str, ...],
        partitions: int,
        *,
        interval: float = 1.0,
    ) -> None:
        self.brokers, self.group, self.topics = brokers, group, topics
        self.partitions = [TopicPartition(t, p) for t in topics for p in range(partitions)]
        self.interval = interval
        self.samples: list[Sample] = []
        self._watched: dict[str, _Watched] = {}
        self._stopping = asyncio.Event()
        psutil.cpu_percent(None)  # the machine's CPU is measured from here

    def watch(self, name: str, pid: int | None, *, children: bool = True) -> None:
        """Sample process ``pid`` (and its children, if ``children``) as ``name`` from now on."""
        if pid is not None:
            with contextlib.suppress(psutil.Error):
                self._watched[name] = _Watched(pid, children=children)

    def stop(self) -> None:
        """End :meth:`run` after the sample in progress."""
        self._stopping.set()

    @property
    def last_lag(self) -> int | None:
        """The total input lag of the latest sample that has one."""
        for sample in reversed(self.samples):
            if sample.lag is not None:
                return sum(sample.lag.values())
        return None

    async def run(self) -> None:
        """Sample until stopped (a Kafka error costs one lag sample, never the run)."""
        consumer = AIOKafkaConsumer(bootstrap_servers=self.brokers, request_timeout_ms=10_000)
        admin = AIOKafkaAdminClient(bootstrap_servers=self.brokers, request_timeout_ms=10_000)
        await consumer.start()
        await admin.start()
        try:
            next_at = time.monotonic()
            while not self._stopping.is_set():
                await self._sample(consumer, admin, self.partitions)
                next_at += self.interval
                with contextlib.suppress(TimeoutError):
                    delay = max(0.0, next_at - time.monotonic())
                    await asyncio.wait_for(self._stopping.wait(), delay)
        finally:
            await admin.close()
            await consumer.stop()

    async def _sample(
        self,
        consumer: AIOKafkaConsumer,
        admin: AIOKafkaAdminClient,
        partitions: list[TopicPartition],
    ) -> None:
        t = time.time()
        memory = psutil.virtual_memory()
        processes = {
            "machine": ProcessSample(
                round(psutil.cpu_percent(None) * (psutil.cpu_count() or 1), 1),
                round((memory.total - memory.available) / 2**20, 1),
            )
        }
        for name, watched in self._watched.items():
            sample = watched.sample()
            if sample is not None:
                processes[name] = sample
        lag: dict[str, int] | None = None
        try:
            ends = await asyncio.wait_for(consumer.end_offsets(partitions), _TIMEOUT)
            committed = await asyncio.wait_for(
                admin.list_consumer_group_offsets(self.group, partitions=partitions), _TIMEOUT
            )
            lag = dict.fromkeys(self.topics, 0)
            for tp, end in ends.items():
                done = committed.get(tp)
                offset = done.offset if done is not None and done.offset >= 0 else 0
                lag[tp.topic] += max(0, end - offset)
        except Exception:  # noqa: BLE001 - a missed lag sample is recorded as None
            lag = None
        self.samples.append(Sample(t, processes, lag))
