"""Disk trouble on the real thing: a worker's data dir on a small tmpfs of its own, filled
(ENOSPC) or made read-only (EROFS) while tickets flow. The worker stops at its next write, in
one line, with exit code 74 and without committing the batch it could not store; started
again while the disk is still bad it stops at once, the same way; started once the disk is
mended, it gives every ticket exactly its one decision and every document exactly its
receipts, as if nothing had happened.

Mounting needs root (or CAP_SYS_ADMIN): where it is impossible these tests fail, saying so;
they never skip.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import os
import re
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from streams.app import EXIT_DATA_DIR
from streams.store import MIN_FREE_BYTES, DataDirError, Store
from tests.integration.kafka import Timeout, Worker, consume, produce, run
from tests.integration.test_exactly_once import _check_receipts, _workload

DISK_MIB = 2 * MIN_FREE_BYTES // (1024 * 1024)  # room to start, with a margin
BEFORE = 1200  # records produced (and their tickets partly decided) before the trouble
STEP = 300
STOPPING = (
    "stopping with exit code 74: start the worker again once the data dir can be written, "
    "it restores its state from the changelogs"
)


def _mount(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["mount", *args], capture_output=True, text=True, check=False)


@contextlib.contextmanager
def small_disk(path: Path, mib: int) -> Iterator[Path]:
    """A tmpfs of ``mib`` MiB mounted on ``path`` (made if need be); unmounted at the end,
    with whatever was mounted over it."""
    path.mkdir(parents=True, exist_ok=True)
    done = _mount("-t", "tmpfs", "-o", f"size={mib}m", "tmpfs", str(path))
    if done.returncode != 0:
        pytest.fail(
            f"cannot mount a {mib} MiB tmpfs on {path} for a data dir "
            f"({done.stderr.strip() or f'mount exited with {done.returncode}'}): this test "
            "needs root (or CAP_SYS_ADMIN) and never skips",
            pytrace=False,
        )
    try:
        yield path
    finally:
        for _ in range(5):
            if not os.path.ismount(path):
                break
            if subprocess.run(["umount", str(path)], check=False).returncode != 0:
                subprocess.run(["umount", "-l", str(path)], check=False)
        assert not os.path.ismount(path), f"{path} is still mounted"


def fill(disk: Path) -> Path:
    """Write a file until the disk has no byte left."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 20, 4096, 1):
            block = b"\xff" * size
            while True:
                try:
                    os.write(fd, block)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)
    assert os.statvfs(disk).f_bavail == 0
    return filler


def make_read_only(disk: Path) -> None:
    """A read-only bind mount over the disk: every new access through the path is read-only
    (a plain ``remount,ro`` is refused while RocksDB holds files open for writing)."""
    done = _mount("--bind", "-o", "ro", str(disk), str(disk))
    assert done.returncode == 0, done.stderr
    assert os.statvfs(disk).f_flag & os.ST_RDONLY


def make_writable(disk: Path) -> None:
    subprocess.run(["umount", str(disk)], check=True)  # the read-only bind mount only
    assert os.path.ismount(disk)
    assert not os.statvfs(disk).f_flag & os.ST_RDONLY


def make_bad(trouble: str, disk: Path) -> Callable[[], None]:
    """Fill the disk or make it read-only; return what mends it."""
    if trouble == "full":
        return fill(disk).unlink
    make_read_only(disk)
    return functools.partial(make_writable, disk)


def _exit_code(worker: Worker, seconds: float) -> int:
    assert worker.process is not None
    try:
        return worker.process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        raise AssertionError(
            f"the worker did not stop within {seconds} s:\n{worker.log_tail()}"
        ) from None


def _decided(worker: Worker) -> int:
    status = worker.status() or {}
    counts = status.get("counts", {})
    return int(counts.get("release", 0)) + int(counts.get("divert", 0))


WHY = {
    "full": "No space left on device (ENOSPC: 0 MiB free, less than the 32 MiB a flush of the "
    "local state needs)",
    "read-only": "Read-only file system (EROFS: the file system is mounted read-only)",
}


@pytest.mark.parametrize("trouble", sorted(WHY))
def test_a_worker_stops_on_its_bad_data_dir_and_loses_and_repeats_nothing(
    deploy: Any, trouble: str
) -> None:
    started = time.monotonic()
    d = deploy(SANDAN_WINDOW="1h")
    records, expected, _ = _workload()
    disk_path = d.tmp / "data-w"  # the deployment's data dir of worker "w"
    log_path = d.tmp / "w.log"
    with small_disk(disk_path, DISK_MIB) as disk:
        try:
            worker = d.worker("w")
            worker.wait_ready(90)

            def send(part: list[tuple[str, bytes, bytes]]) -> None:
                for i in range(0, len(part), STEP):
                    chunk = part[i : i + STEP]
                    run(produce(d.brokers, [(d.topic(k), key, v) for k, key, v in chunk]))
                    time.sleep(0.2)

            send(records[:BEFORE])
            timeout = Timeout(60, "the worker to decide tickets before the disk trouble")
            while timeout and _decided(worker) < 100:
                assert worker.alive(), worker.log_tail()
                time.sleep(0.2)
            before_trouble = log_path.stat().st_size

            mend = make_bad(trouble, disk)
            # Tickets go on flowing: the worker stops at its first batch that writes state.
            send(records[BEFORE:])
            assert _exit_code(worker, 60) == EXIT_DATA_DIR
            log = log_path.read_bytes()[before_trouble:].decode(errors="replace")
            # (it may look while the disk fills: any room short of a flush stops it)
            why = re.escape(WHY[trouble]).replace(r"\ 0\ MiB", r"\ \d+\ MiB")
            line = re.escape(f"[CRITICAL] data dir {disk}: ") + why + re.escape(f"; {STOPPING}")
            alarms = [x for x in log.splitlines() if "[CRITICAL]" in x or "[ERROR]" in x]
            assert len(alarms) == 1, log
            assert re.search(f"{line}$", alarms[0].rstrip()), alarms[0]
            assert "Traceback" not in log, log
            assert "the engine failed" not in log, log

            # Started again on the bad disk: it stops at once, in the same words.
            before_start = log_path.stat().st_size
            again = d.worker("w")
            assert _exit_code(again, 60) == EXIT_DATA_DIR
            log = log_path.read_bytes()[before_start:].decode(errors="replace")
            assert log.splitlines() == [f"sandan: data dir {disk}: {WHY[trouble]}; {STOPPING}"]

            mend()
            worker = d.worker("w")
            status = worker.wait_ready(90)
            # What the worker had only in its write buffer comes back from the changelogs.
            assert status["counts"]["restored"] > 0
            _check_exactly_once(d, worker, expected)
        finally:
            d.stop()
    assert time.monotonic() - started < 180


def _check_exactly_once(d: Any, worker: Worker, expected: dict[str, str]) -> None:
    """Every ticket exactly its one decision (revision 1), every document exactly its
    receipts, nothing rejected."""
    timeout = Timeout(90, "every ticket to be decided")
    topics = [d.topic("release"), d.topic("divert")]
    while timeout:
        outputs = run(consume(d.brokers, topics, count=len(expected), idle=2))
        if len(outputs) >= len(expected):
            break
        assert worker.alive(), worker.log_tail()
    outputs = run(consume(d.brokers, topics, idle=3))
    decisions = [json.loads(r.value) for r in outputs]
    seen = Counter((v["ticketId"], v["revision"]) for v in decisions)
    assert not {key: n for key, n in seen.items() if n > 1}, "decisions repeated"
    assert {v["ticketId"]: v["decision"] for v in decisions} == expected
    assert {v["revision"] for v in decisions} == {1}
    assert run(consume(d.brokers, [d.topic("rejected")], idle=2)) == []
    _check_receipts(d, outputs)


# -- the store itself: a write that fails after the transaction committed ---------------------


def test_a_write_that_fails_after_the_commit_keeps_the_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RocksDB's own error (a flush onto a full disk), not the store's check: the failed
    batch is applied not at all, its checkpoint does not move, so a restore replays it from
    the changelog; closing loses nothing either."""
    monkeypatch.setattr("streams.store.MIN_FREE_BYTES", 0)  # let the writes reach RocksDB
    with small_disk(tmp_path / "disk", 8) as disk:
        store = Store(disk / "state", "changelog")
        store.put(0, b"a", b"1")
        store.commit({0: 10})
        store._db.flush()  # on disk: a=1, checkpoint 11
        filler = fill(disk)
        store.put(0, b"a", b"2")
        store.put(0, b"b", b"2")
        store.commit({0: 12})  # in the write buffer only: no disk I/O yet
        with pytest.raises(Exception, match="No space left on device"):
            store._db.flush()
        store.put(0, b"c", b"3")
        with pytest.raises(DataDirError) as failed:
            store.commit({0: 13})
        assert failed.value.errno == errno.ENOSPC
        assert "No space left on device" in failed.value.detail
        assert store.get(0, b"c") is None  # the failed batch's staged writes are gone
        store.close()  # its flush fails too: a warning, not an error
        filler.unlink()
        reopened = Store(disk / "state", "changelog")
        try:
            assert reopened.checkpoint(0) == 11
            assert (reopened.get(0, b"a"), reopened.get(0, b"b"), reopened.get(0, b"c")) == (
                b"1",
                None,
                None,
            )
        finally:
            reopened.close()
