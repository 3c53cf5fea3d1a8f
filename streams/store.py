"""Local state in RocksDB (rocksdict), the cache of a compacted changelog topic.

One database per stage and worker; every key starts with its partition::

    b"v" || partition (u16 BE) || key                  -> value bytes
    b"t" || partition (u16 BE) || due_ms (u64 BE) || key -> b""   timer index, oldest first
    b"c" || partition (u16 BE)                          -> next changelog offset (u64 BE)

Writes are staged in memory (``put``) while a transaction is open; each staged write is also a
changelog record for the engine to produce in that transaction. Only after the transaction
commits does ``commit`` write them, with the changelog offsets they reached, in one
WriteBatch; ``rollback`` forgets them. So the database only ever holds committed changelog
state, and ``restore`` resumes from the stored offset. A write that moves a key's timer removes
the old entry when the caller says where it was (``replaces_due_ms``); an entry left stale
(by a restore) is found stale when it fires. A scan for due timers starts where the last
committed one ended (or lower, where a timer was written since), not at the partition's
start: the entries fired before are deleted, and a seek over their tombstones cost ~40 us a
partition a step until compaction dropped them. A scan that reached the first timer not yet due
starts the next one there, and one asked for an earlier time does not seek at all (~8 us a
partition a store a step).

A directory that cannot take the writes (full, read-only, not permitted, failing) raises
:class:`DataDirError`: at open, at a transaction's first write (before the transaction commits:
the file system must be writable with ``MIN_FREE_BYTES`` free, the room a flush of the write
buffer takes) and from any RocksDB call that fails with such an error. The write buffer reaches
the disk only when it is flushed (there is no write-ahead log), so without that first check a
full disk would only show at the next flush, long after it filled.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import struct
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from rocksdict import BlockBasedOptions, DBCompressionType, Options, Rdict, WriteBatch, WriteOptions

from streams.records import Output

__all__ = (
    "DATA_DIR_ERRNOS",
    "MIN_FREE_BYTES",
    "DataDirError",
    "Store",
    "as_data_dir_error",
    "data_dir_errno",
)

log = logging.getLogger(__name__)

_U16 = struct.Struct(">H")
_U64 = struct.Struct(">Q")
_NO_TIMER = 2**64 - 1  # a partition's floor once it holds no timer
RESTORE_POLL_RECORDS = 20_000
_UNSTAGED = object()
WRITE_BUFFER_BYTES = 32 * 1024 * 1024
MIN_FREE_BYTES = WRITE_BUFFER_BYTES  # a flush of a full write buffer must fit
# Errors of the disk under the data dir, not of a record or a broker: no retry in the same
# process mends them.
DATA_DIR_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO}
)
_OS_ERROR = re.compile(r"\(os error (\d+)\)")  # how rocksdict's Rust side names an errno


class DataDirError(OSError):
    """The local state's directory cannot take the store's writes (or reads): ``errno`` says
    why (one of ``DATA_DIR_ERRNOS``), ``filename`` is the store's directory, ``detail`` what
    failed (the free space, or RocksDB's message naming the file)."""

    def __init__(self, code: int, path: Path, detail: str) -> None:
        super().__init__(code, os.strerror(code), str(path))
        self.detail = detail

    @property
    def name(self) -> str:
        """The errno's symbol: ``ENOSPC``."""
        return errno.errorcode.get(self.errno or 0, str(self.errno))

    def __str__(self) -> str:
        return f"{self.filename}: {self.strerror} ({self.name}: {self.detail})"


def data_dir_errno(error: BaseException) -> int | None:
    """The errno of ``error`` when it is one of ``DATA_DIR_ERRNOS``, else None: an OSError's
    own, or the one a rocksdict error names, as RocksDB words it (``IO error: No space left on
    device: While appending to file: ...``) or as Rust does (``... (os error 28)``)."""
    if isinstance(error, OSError):
        code = error.errno
    else:
        text = str(error)
        found = _OS_ERROR.search(text)
        if found:
            code = int(found[1])
        else:
            code = next((c for c in sorted(DATA_DIR_ERRNOS) if os.strerror(c) in text), None)
    return code if code in DATA_DIR_ERRNOS else None


def as_data_dir_error(error: BaseException, path: Path) -> DataDirError | None:
    """``error`` as a :class:`DataDirError` of ``path`` if it is one, else None."""
    if isinstance(error, DataDirError):
        return error
    code = data_dir_errno(error)
    return None if code is None else DataDirError(code, path, str(error))


def _raise_if_data_dir_error(error: BaseException, path: Path) -> None:
    found = as_data_dir_error(error, path)
    if found is error:
        raise found
    if found is not None:
        raise found from error


class Store:
    """A partitioned key-value store staged per transaction, backed by a changelog topic."""

    def __init__(
        self,
        path: Path,
        changelog: str,
        due: Callable[[bytes, bytes], int | None] | None = None,
    ) -> None:
        """``due``: the timer of a key and its value, if it has one."""
        self.path = path
        try:
            path.mkdir(parents=True, exist_ok=True)
            self.check_room()
            self._db = Rdict(str(path), _options())
        except Exception as exc:
            _raise_if_data_dir_error(exc, path)
            raise
        # The changelog is the durable copy: no write-ahead log, a crash loses at most what
        # the changelog still has (and the offset saved beside it says so).
        self._write_options = WriteOptions()
        self._write_options.disable_wal = True  # type: ignore[method-assign,assignment]  # a property; the stub says method
        self.changelog = changelog
        self._due = due
        self._staged: dict[tuple[int, bytes], bytes | None] = {}
        self._timers: list[bytes] = []
        self._removed_timers: list[bytes] = []
        # Per partition, a due time no live timer entry is below: a scan seeks there, past the
        # entries fired (and deleted) before, whose tombstones a seek from the partition's
        # start would step over one by one until a compaction drops them; and a scan for an
        # earlier time has nothing to find.
        self._timer_floor: dict[int, int] = {}
        self._staged_floor: dict[int, int] = {}
        # Changelog records restores applied, per partition, since the store opened: what is
        # derived from a partition's values (streams/metrics.py) is rebuilt when this moves.
        self.restored: Counter[int] = Counter()

    def close(self) -> None:
        """Close, flushing the write buffer; a disk that cannot take it loses nothing (the
        changelog holds it, past the checkpoint on disk): one line says so."""
        try:
            self._db.close()
        except Exception as exc:
            if data_dir_errno(exc) is None:
                raise
            log.warning(
                "the local state in %s was not flushed on close (%s); the next start restores "
                "it from %s",
                self.path,
                exc,
                self.changelog,
            )

    def check_room(self) -> None:
        """Raise :class:`DataDirError` unless the store's file system is writable with
        ``MIN_FREE_BYTES`` free (for an unprivileged writer)."""
        try:
            stat = os.statvfs(self.path)
        except OSError as exc:
            _raise_if_data_dir_error(exc, self.path)
            raise
        if stat.f_flag & os.ST_RDONLY:
            raise DataDirError(errno.EROFS, self.path, "the file system is mounted read-only")
        free = stat.f_bavail * stat.f_frsize
        if free < MIN_FREE_BYTES:
            mib = 1024 * 1024
            detail = (
                f"{free // mib} MiB free, less than the {MIN_FREE_BYTES // mib} MiB "
                "a flush of the local state needs"
            )
            raise DataDirError(errno.ENOSPC, self.path, detail)

    # -- reads and staged writes ----------------------------------------------------------

    def get(self, partition: int, key: bytes) -> bytes | None:
        staged = self._staged.get((partition, key), _UNSTAGED)
        if staged is not _UNSTAGED:
            return staged  # type: ignore[return-value]  # bytes | None once staged
        return self.committed(partition, key)

    def committed(self, partition: int, key: bytes) -> bytes | None:
        """The value as the last committed transaction left it, whatever a step in flight
        has staged: for readers outside the engine (lookups), from any thread (RocksDB's reads
        are thread-safe, and a commit's WriteBatch is seen whole or not at all)."""
        try:
            value: bytes | None = self._db.get(b"v" + _U16.pack(partition) + key)
        except Exception as exc:
            _raise_if_data_dir_error(exc, self.path)
            raise
        return value

    def put(
        self,
        partition: int,
        key: bytes,
        value: bytes | None,
        due_ms: int | None = None,
        replaces_due_ms: int | None = None,
    ) -> Output:
        """Stage a write (None deletes), with a timer at ``due_ms`` if given (else computed
        by the store's ``due`` function, when it has one) in place of the key's timer at
        ``replaces_due_ms``; return its changelog record. The transaction's first write checks
        that the disk can take them (:meth:`check_room`), before the transaction commits."""
        if not self._staged:
            self.check_room()
        self._staged[(partition, key)] = value
        if due_ms is None and value is not None and self._due is not None:
            due_ms = self._due(key, value)
        if replaces_due_ms is not None and replaces_due_ms != due_ms:
            self._removed_timers.append(_timer_key(partition, replaces_due_ms, key))
        if due_ms is not None:
            self._timers.append(_timer_key(partition, due_ms, key))
        return Output(self.changelog, key, value, partition)

    def due(self, partition: int, now_ms: int, limit: int) -> Iterator[bytes]:
        """Keys of ``partition`` with a timer at or before ``now_ms`` (oldest first); each
        timer entry returned is removed on commit."""
        prefix = b"t" + _U16.pack(partition)
        floor = self._timer_floor.get(partition, 0)
        if floor > now_ms:
            return  # no live timer is due yet: nothing to seek
        following = _NO_TIMER  # the first timer after now_ms, once the scan reaches it
        try:
            it = self._db.iter()
            it.seek(prefix + _U64.pack(floor))
            count = 0
            exhausted = True  # every entry due by now_ms is returned
            while it.valid():
                entry: bytes = it.key()
                if not entry.startswith(prefix):
                    break
                due_ms = _U64.unpack_from(entry, 3)[0]
                if due_ms > now_ms:
                    following = due_ms
                    break
                if count == limit:
                    exhausted = False
                    break
                self._removed_timers.append(entry)
                floor = due_ms  # (more may be due at this time, cut off by the limit)
                yield entry[11:]
                count += 1
                it.next()
            it.status()  # an iterator stops at a read error: raise it, not "no more timers"
        except Exception as exc:
            _raise_if_data_dir_error(exc, self.path)
            raise
        self._staged_floor[partition] = following if exhausted else floor

    def items(self, partition: int) -> Iterator[tuple[bytes, bytes]]:
        """The committed keys and values of ``partition``, in key order: a scan, for rebuilding
        what is derived from them."""
        prefix = b"v" + _U16.pack(partition)
        try:
            it = self._db.iter()
            it.seek(prefix)
            while it.valid():
                key: bytes = it.key()
                if not key.startswith(prefix):
                    break
                yield key[3:], it.value()
                it.next()
            it.status()  # an iterator stops at a read error: raise it, not "no more values"
        except Exception as exc:
            _raise_if_data_dir_error(exc, self.path)
            raise

    def commit(self, offsets: dict[int, int]) -> None:
        """The transaction committed; ``offsets`` are the last changelog offsets it wrote.

        One WriteBatch, applied whole or not at all: the checkpoints advance only with the
        writes. When it fails the staged writes are dropped all the same; the checkpoint on
        disk is older than them, so a restore applies them again from the changelog."""
        if not (self._staged or self._removed_timers or self._timers or offsets):
            self._move_floors()  # a step that wrote nothing here: only its scans moved
            self.rollback()
            return
        batch = WriteBatch(raw_mode=True)
        for (partition, key), value in self._staged.items():
            db_key = b"v" + _U16.pack(partition) + key
            if value is None:
                batch.delete(db_key)
            else:
                batch.put(db_key, value)
        for entry in self._removed_timers:
            batch.delete(entry)
        for entry in self._timers:
            batch.put(entry, b"")
        for partition, offset in offsets.items():
            batch.put(b"c" + _U16.pack(partition), _U64.pack(offset + 1))
        try:
            self._db.write(batch, self._write_options)
        except Exception as exc:
            _raise_if_data_dir_error(exc, self.path)
            raise
        else:
            self._move_floors()
        finally:
            self.rollback()

    def _move_floors(self) -> None:
        """After a commit: raised past the timers it fired, lowered to those it wrote."""
        floors = self._timer_floor
        floors.update(self._staged_floor)
        for entry in self._timers:
            partition, due_ms = _U16.unpack_from(entry, 1)[0], _U64.unpack_from(entry, 3)[0]
            if due_ms < floors.get(partition, 0):
                floors[partition] = due_ms

    def rollback(self) -> None:
        self._staged.clear()
        self._timers.clear()
        self._removed_timers.clear()
        self._staged_floor.clear()

    # -- restore --------------------------------------------------------------------------

    def checkpoint(self, partition: int) -> int:
        try:
            stored = self._db.get(b"c" + _U16.pack(partition))
        except Exception as exc:
            _raise_if_data_dir_error(exc, self.path)
            raise
        return _U64.unpack(stored)[0] if stored else 0

    async def restore(
        self, brokers: str, partitions: set[int], *, security: Mapping[str, Any] | None = None
    ) -> int:
        """Apply the committed changelog past each partition's checkpoint; return the count.

        ``security``: the client options of the worker's security settings
        (``streams.kafka_security.aiokafka_security``); none is plaintext.
        """
        if not partitions:
            return 0
        consumer = AIOKafkaConsumer(
            bootstrap_servers=brokers,
            **(security or {}),
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
            max_partition_fetch_bytes=16 * 1024 * 1024,
        )
        await consumer.start()
        applied = 0
        try:
            tps = [TopicPartition(self.changelog, p) for p in partitions]
            consumer.assign(tps)
            ends = await _high_watermarks(brokers, tps, security)
            todo = {}
            for tp in tps:
                start = self.checkpoint(tp.partition)
                if start < ends[tp]:
                    consumer.seek(tp, start)
                    todo[tp] = ends[tp]
            while todo:
                batch = await consumer.getmany(
                    *todo, timeout_ms=500, max_records=RESTORE_POLL_RECORDS
                )
                for tp, records in batch.items():
                    for record in records:
                        self.put(tp.partition, record.key, record.value)
                    if records:
                        self.commit({tp.partition: records[-1].offset})
                        applied += len(records)
                        self.restored[tp.partition] += len(records)
                for tp in list(todo):
                    if await consumer.position(tp) >= todo[tp]:
                        del todo[tp]
        finally:
            await consumer.stop()
        return applied


async def _high_watermarks(
    brokers: str, tps: list[TopicPartition], security: Mapping[str, Any] | None
) -> dict[TopicPartition, int]:
    """Where a restore reads to: each partition's high watermark, not its last stable offset.

    The previous owner's last transaction can be committed, its consumed offsets already
    stable, while its commit marker is still on its way to a changelog partition (the
    transaction coordinator writes the markers of each partition leader separately: on a
    cluster they land at different times). The last stable offset then stops before that
    transaction's changes, and a restore to it would lose them for good. Read with
    read_committed up to the high watermark, the restore waits for the markers and still skips
    what was aborted (a transaction left open waits for its timeout)."""
    consumer = AIOKafkaConsumer(  # read_uncommitted: its end offsets are the high watermarks
        bootstrap_servers=brokers, **(security or {}), group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    try:
        ends: dict[TopicPartition, int] = await consumer.end_offsets(tps)
        return ends
    finally:
        await consumer.stop()


def _options() -> Options:
    """Point lookups, mostly of keys that are not there yet (a ticket's first document): a
    bloom filter answers those without reading the files, which would otherwise slow every
    lookup as level-0 files pile up between compactions."""
    table = BlockBasedOptions()
    table.set_bloom_filter(10, False)
    options = Options(raw_mode=True)
    options.create_if_missing(True)
    options.set_block_based_table_factory(table)
    options.set_compression_type(DBCompressionType.lz4())
    options.set_write_buffer_size(WRITE_BUFFER_BYTES)
    options.set_max_write_buffer_number(2)
    return options


def _timer_key(partition: int, due_ms: int, key: bytes) -> bytes:
    return b"t" + _U16.pack(partition) + _U64.pack(max(due_ms, 0)) + key
