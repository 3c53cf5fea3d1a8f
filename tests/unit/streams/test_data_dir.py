"""A data dir that cannot take the local state (streams.store.DataDirError): which errors
are the disk's, where the store raises them, and that the worker stops on them at once rather
than set a record aside or start a new engine. The real disk (a full and a read-only tmpfs) is
tests/integration/test_disk.py.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streams import store as store_module
from streams.app import EXIT_DATA_DIR, EngineService, data_dir_stop
from streams.records import Record
from streams.settings import Settings
from streams.store import DataDirError, Store, as_data_dir_error, data_dir_errno
from tests.factories import as_bytes, order_dict
from tests.unit.streams.harness import T0, PipelineHarness

ENOSPC_ROCKSDB = (
    "IO error: No space left on device: While appending to file: /d/state/tickets/000008.sst: "
    "No space left on device"
)
EIO_ROCKSDB = "IO error: While pread offset 0 len 4096: /d/000009.sst: Input/output error"
MIB = 1024 * 1024


# --- which errors are the disk's ----------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (Exception(ENOSPC_ROCKSDB), errno.ENOSPC),
        (Exception("No space left on device (os error 28)"), errno.ENOSPC),
        (Exception("Read-only file system (os error 30)"), errno.EROFS),
        (Exception("IO error: While open a file for appending: /d/LOG: Permission denied"), 13),
        (Exception("Permission denied (os error 13)"), errno.EACCES),
        (Exception("IO error: While appending to file: /d/x.sst: Disk quota exceeded"), 122),
        (Exception(EIO_ROCKSDB), errno.EIO),
        (OSError(errno.ENOSPC, "No space left on device"), errno.ENOSPC),
        (PermissionError(errno.EACCES, "Permission denied"), errno.EACCES),
        (OSError(errno.EROFS, "Read-only file system"), errno.EROFS),
        # not the disk's
        (Exception("Corruption: block checksum mismatch"), None),
        (Exception("IO error: While open a file for random read: /d/x: Too many open files"), None),
        (Exception("Too many open files (os error 24)"), None),
        (FileNotFoundError(errno.ENOENT, "No such file or directory"), None),
        (OSError("no errno"), None),
        (RuntimeError("something else"), None),
    ],
)
def test_data_dir_errno(error: BaseException, code: int | None) -> None:
    assert data_dir_errno(error) == code


def test_a_data_dir_error_says_what_failed() -> None:
    error = DataDirError(errno.ENOSPC, Path("/d/state/tickets"), "0 MiB free")
    assert isinstance(error, OSError)
    assert (error.errno, error.strerror, error.filename) == (
        errno.ENOSPC,
        "No space left on device",
        "/d/state/tickets",
    )
    assert error.name == "ENOSPC"
    assert str(error) == "/d/state/tickets: No space left on device (ENOSPC: 0 MiB free)"


def test_as_data_dir_error() -> None:
    error = DataDirError(errno.EROFS, Path("/d"), "read-only")
    assert as_data_dir_error(error, Path("/elsewhere")) is error
    converted = as_data_dir_error(Exception(ENOSPC_ROCKSDB), Path("/d"))
    assert converted is not None
    assert (converted.errno, converted.filename, converted.detail) == (
        errno.ENOSPC,
        "/d",
        ENOSPC_ROCKSDB,
    )
    assert as_data_dir_error(Exception("Corruption: bad block"), Path("/d")) is None


def test_the_stop_line_names_the_data_dir_the_error_and_the_exit_code(tmp_path: Path) -> None:
    settings = Settings.from_env({"SANDAN_DATA_DIR": str(tmp_path / "data")})
    error = DataDirError(errno.EACCES, tmp_path / "data" / "state" / "ledger", "LOG: denied")
    assert data_dir_stop(settings, error) == (
        f"data dir {tmp_path / 'data'}: Permission denied (EACCES: LOG: denied); stopping with "
        "exit code 74: start the worker again once the data dir can be written, it restores "
        "its state from the changelogs"
    )


# --- where the store raises them ----------------------------------------------------------


def _statvfs(*, free: int, read_only: bool = False) -> os.statvfs_result:
    flag = os.ST_RDONLY if read_only else 0
    frsize = 4096
    blocks = free // frsize
    return os.statvfs_result((4096, frsize, 1 << 20, blocks, blocks, 1000, 1000, 1000, flag, 255))


class Disk:
    """What ``os.statvfs`` says of the disk, and how often it was asked."""

    def __init__(self) -> None:
        self.result = _statvfs(free=1 << 30)
        self.calls = 0

    def statvfs(self, path: Any) -> os.statvfs_result:
        self.calls += 1
        return self.result


@pytest.fixture
def disk(monkeypatch: pytest.MonkeyPatch) -> Disk:
    fake = Disk()
    monkeypatch.setattr(os, "statvfs", fake.statvfs)
    return fake


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "tickets"


@pytest.fixture
def store(path: Path, disk: Disk) -> Iterator[Store]:
    opened = Store(path, "changelog")
    yield opened
    opened.close()


def test_a_full_disk_is_refused_at_open(path: Path, disk: Disk) -> None:
    disk.result = _statvfs(free=store_module.MIN_FREE_BYTES - 1)
    with pytest.raises(DataDirError) as raised:
        Store(path, "changelog")
    assert raised.value.errno == errno.ENOSPC
    assert raised.value.filename == str(path)
    assert (
        raised.value.detail == "31 MiB free, less than the 32 MiB a flush of the local state needs"
    )


def test_a_read_only_disk_is_refused_at_open(path: Path, disk: Disk) -> None:
    disk.result = _statvfs(free=1 << 30, read_only=True)
    with pytest.raises(DataDirError) as raised:
        Store(path, "changelog")
    assert (raised.value.errno, raised.value.detail) == (
        errno.EROFS,
        "the file system is mounted read-only",
    )


def test_room_is_checked_once_per_transaction_before_its_first_write(
    store: Store, disk: Disk
) -> None:
    disk.calls = 0
    store.put(0, b"a", b"1")
    store.put(0, b"b", b"1")
    assert disk.calls == 1
    store.commit({0: 4})
    disk.result = _statvfs(free=store_module.MIN_FREE_BYTES - MIB)
    with pytest.raises(DataDirError, match="31 MiB free"):
        store.put(0, b"a", b"2")
    assert disk.calls == 2
    assert store.get(0, b"a") == b"1"  # nothing staged
    store.rollback()  # as the engine does when the step fails
    disk.result = _statvfs(free=store_module.MIN_FREE_BYTES)
    store.put(0, b"a", b"2")
    store.commit({0: 5})
    assert (store.get(0, b"a"), store.checkpoint(0)) == (b"2", 6)


class _Db:
    """The store's Rdict with some of its methods replaced."""

    def __init__(self, db: Any, replaced: dict[str, Any]) -> None:
        self._db, self._replaced = db, replaced

    def __getattr__(self, name: str) -> Any:
        return self._replaced.get(name) or getattr(self._db, name)


def raising(error: Exception) -> Any:
    def call(*args: Any, **kwargs: Any) -> Any:
        raise error

    return call


@pytest.fixture
def failing(store: Store) -> Iterator[Any]:
    """``failing(write=raising(error), ...)``: the store's database with those methods;
    ``failing()``: the real one again."""
    real = store._db

    def make(**replaced: Any) -> None:
        store._db = _Db(real, replaced)  # type: ignore[assignment]

    yield make
    store._db = real


def test_a_write_that_fails_moves_no_checkpoint_and_drops_the_batch(
    store: Store, failing: Any
) -> None:
    store.put(0, b"a", b"1")
    store.commit({0: 10})
    failing(write=raising(Exception(ENOSPC_ROCKSDB)))
    store.put(0, b"a", b"2")
    store.put(0, b"b", b"2")
    with pytest.raises(DataDirError) as raised:
        store.commit({0: 12})
    assert (raised.value.errno, raised.value.detail) == (errno.ENOSPC, ENOSPC_ROCKSDB)
    assert isinstance(raised.value.__cause__, Exception)
    failing()
    # The batch was written not at all: a restore replays it from offset 11.
    assert (store.checkpoint(0), store.get(0, b"a"), store.get(0, b"b")) == (11, b"1", None)


def test_a_read_that_fails_on_the_disk_is_a_data_dir_error(store: Store, failing: Any) -> None:
    failing(get=raising(Exception(EIO_ROCKSDB)))
    with pytest.raises(DataDirError) as raised:
        store.get(0, b"a")
    assert raised.value.errno == errno.EIO
    with pytest.raises(DataDirError):
        store.checkpoint(0)


def test_a_timer_scan_that_fails_on_the_disk_is_a_data_dir_error(
    store: Store, failing: Any
) -> None:
    class _Iterator:
        def seek(self, key: bytes) -> None:
            pass

        def valid(self) -> bool:
            return False  # as RocksDB's iterator after a read error

        def status(self) -> None:
            raise Exception(EIO_ROCKSDB)

    failing(iter=_Iterator)
    with pytest.raises(DataDirError, match="Input/output error"):
        list(store.due(0, T0, 100))


def test_other_errors_pass_unchanged(store: Store, failing: Any) -> None:
    corrupt = Exception("Corruption: block checksum mismatch")
    failing(get=raising(corrupt), write=raising(corrupt))
    with pytest.raises(Exception, match="Corruption") as raised:
        store.get(0, b"a")
    assert raised.value is corrupt
    store.put(0, b"a", b"1")
    with pytest.raises(Exception, match="Corruption") as raised:
        store.commit({})
    assert raised.value is corrupt


def test_a_close_that_cannot_flush_warns_and_loses_nothing(
    store: Store, failing: Any, caplog: pytest.LogCaptureFixture
) -> None:
    failing(close=raising(Exception(ENOSPC_ROCKSDB)))
    with caplog.at_level(logging.WARNING, logger="streams.store"):
        store.close()
    failing()
    assert [r.getMessage() for r in caplog.records] == [
        f"the local state in {store.path} was not flushed on close ({ENOSPC_ROCKSDB}); the "
        "next start restores it from changelog"
    ]


# --- the pipeline and the worker ----------------------------------------------------------


def test_a_data_dir_error_is_never_a_poison_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = PipelineHarness(tmp_path)
    try:
        error = DataDirError(errno.EIO, tmp_path, EIO_ROCKSDB)

        def get(partition: int, key: bytes) -> bytes | None:
            raise error

        monkeypatch.setattr(h.pipeline.tickets, "get", get)
        order = as_bytes(order_dict(orderNo="DISK1"))
        record = Record(h.settings.topic("order"), 0, 1, T0, None, order)
        with pytest.raises(DataDirError) as raised:
            h.pipeline.process([record], T0, T0)
        assert raised.value is error
        h.pipeline.commit({})  # what the step counted so far: no record set aside
        assert h.pipeline.counts["rejected.INTERNAL"] == 0
    finally:
        h.close()


class _Exited(BaseException):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class _FailingEngine:
    def __init__(self, error: Exception) -> None:
        self.error = error
        self.batches = 0
        self.runs = 0

    async def run(self) -> None:
        self.runs += 1
        raise self.error


def test_a_data_dir_error_stops_the_worker_at_once_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings.from_env({"SANDAN_DATA_DIR": str(tmp_path / "data")})
    service = EngineService(settings, loop=None)
    try:
        error = DataDirError(errno.ENOSPC, tmp_path / "data", "0 MiB free")
        engine = _FailingEngine(error)
        service.engine = engine  # type: ignore[assignment]

        def exit_(code: int) -> None:
            raise _Exited(code)

        monkeypatch.setattr("streams.app.os._exit", exit_)
        with caplog.at_level(logging.INFO), pytest.raises(_Exited) as exited:
            asyncio.run(service._run())
        assert exited.value.code == EXIT_DATA_DIR
        assert engine.runs == 1  # no new engine
        assert [(r.levelno, r.getMessage(), r.exc_info) for r in caplog.records] == [
            (logging.CRITICAL, data_dir_stop(settings, error), None)
        ]
    finally:
        service.pipeline.close()
