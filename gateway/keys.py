"""API keys: the keys file, its reload, and who a presented key is.

The file (``SANDAN_GATEWAY_KEYS``) holds only SHA-256 digests of the keys::

    {"keys": [{"name": "tenpay", "sha256": "<64 hex digits>", "codes": ["4403169D3W"]},
              {"name": "officer-7", "sha256": "<64 hex digits>", "roles": ["reviewer"]}]}

A key's ``roles`` say what it may do: ``declarer`` (the default when an entry has no
``roles``) declares documents for its ``codes`` (enterprise codes, at least one) and reads
their receipts; ``reviewer`` acts on tickets, as its ``name`` (a reviewer-only key needs no
codes). A name may have several keys (rotation).
:func:`authenticate` hashes the presented key and compares the digest with every entry's
using ``hmac.compare_digest``, without stopping at a match, so the time taken does not depend
on which entry (if any) matches. :class:`KeyStore` re-reads the file when its stat changes
(polled about once a second); a file that does not parse keeps the previous keys and is
logged by its path, never with a key. ``sandan key`` (:func:`add_key`) makes a key. Nothing
here imports aiohttp or aiokafka.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import re
import secrets
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal, NamedTuple, get_args

import msgspec

from schemas.errors import SandanError

__all__ = (
    "DEFAULT_ROLES",
    "ROLES",
    "KeyEntry",
    "KeyStore",
    "Keyring",
    "KeysFileError",
    "Principal",
    "Role",
    "add_key",
    "authenticate",
    "digest",
    "parse_keys",
)

log = logging.getLogger(__name__)

RELOAD_INTERVAL = 1.0

Code = Annotated[str, msgspec.Meta(min_length=1, max_length=18, pattern=r"^[0-9A-Za-z]+$")]
Role = Literal["declarer", "reviewer"]
ROLES: tuple[Role, ...] = get_args(Role)
DEFAULT_ROLES: tuple[Role, ...] = ("declarer",)


def _default_roles() -> list[Role]:
    return list(DEFAULT_ROLES)


class KeyEntry(msgspec.Struct, forbid_unknown_fields=True):
    """One key of the file: who it is, the digest of the key, the codes it declares for and
    what it may do."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    sha256: Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$")]
    codes: list[Code] = msgspec.field(default_factory=list)  # a declarer needs at least one
    roles: Annotated[list[Role], msgspec.Meta(min_length=1)] = msgspec.field(
        default_factory=_default_roles
    )


class KeysFile(msgspec.Struct, forbid_unknown_fields=True):
    keys: list[KeyEntry]


_DECODER = msgspec.json.Decoder(KeysFile)
_LOOSE = msgspec.json.Decoder()
_ENCODER = msgspec.json.Encoder()
_ENTRY_PATH = re.compile(r"\$\.keys\[(\d+)\]")


class KeysFileError(SandanError):
    """The keys file does not parse; the message names the file and the entry."""


class Principal(NamedTuple):
    """Who presented a key: its name, the codes it may declare for and its roles."""

    name: str
    codes: frozenset[str]
    roles: frozenset[Role] = frozenset(DEFAULT_ROLES)

    def has(self, role: Role) -> bool:
        return role in self.roles


@dataclass(frozen=True)
class Keyring:
    """The parsed keys: (digest, principal) pairs, compared all every time."""

    entries: tuple[tuple[bytes, Principal], ...] = ()


def digest(key: str) -> str:
    """The hex SHA-256 digest the keys file stores for ``key``."""
    return hashlib.sha256(key.encode()).hexdigest()


def parse_keys(data: bytes, source: str) -> Keyring:
    """Parse a keys file's bytes; KeysFileError names ``source`` and the bad entry."""
    try:
        parsed = _DECODER.decode(data)
    except msgspec.ValidationError as exc:
        raise KeysFileError(f"{source}: {_entry_name(data, str(exc))}{exc}") from None
    except msgspec.DecodeError as exc:
        raise KeysFileError(f"{source}: not JSON: {exc}") from None
    entries: list[tuple[bytes, Principal]] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(parsed.keys):
        if entry.sha256 in seen:
            msg = (
                f"{source}: entry {index} ({entry.name!r}) repeats the digest of entry "
                f"{seen[entry.sha256]}"
            )
            raise KeysFileError(msg)
        seen[entry.sha256] = index
        if "declarer" in entry.roles and not entry.codes:
            msg = (
                f"{source}: entry {index} ({entry.name!r}): the role declarer needs at least "
                f"one code (a reviewer-only key needs none) - at `$.keys[{index}].codes`"
            )
            raise KeysFileError(msg)
        principal = Principal(entry.name, frozenset(entry.codes), frozenset(entry.roles))
        entries.append((bytes.fromhex(entry.sha256), principal))
    return Keyring(tuple(entries))


def _entry_name(data: bytes, error: str) -> str:
    """``entry 2 ('tenpay'): `` for an error inside an entry, where the name can be read."""
    match = _ENTRY_PATH.search(error)
    if match is None:
        return ""
    index = int(match.group(1))
    try:
        name = _LOOSE.decode(data)["keys"][index]["name"]
    except (msgspec.DecodeError, KeyError, IndexError, TypeError):
        return f"entry {index}: "
    return f"entry {index} ({name!r}): " if isinstance(name, str) else f"entry {index}: "


def authenticate(keyring: Keyring, key: str) -> Principal | None:
    """The principal whose digest matches ``key``'s, comparing with every entry."""
    presented = hashlib.sha256(key.encode()).digest()
    found: Principal | None = None
    for stored, principal in keyring.entries:
        # No early exit: every entry is compared, whichever one matches.
        if hmac.compare_digest(stored, presented):
            found = principal
    return found


class _Stat(NamedTuple):
    inode: int
    size: int
    mtime_ns: int


def _stat(path: Path) -> _Stat | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return _Stat(st.st_ino, st.st_size, st.st_mtime_ns)


class KeyStore:
    """The current keys of one file, reloaded when the file changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stat: _Stat | None = None
        self.keyring = Keyring()

    @classmethod
    def load(cls, path: Path) -> KeyStore:
        """Read the file now; KeysFileError if it is missing or does not parse."""
        store = cls(path)
        stat = _stat(path)
        store.keyring = store._read()
        store._stat = stat
        return store

    def _read(self) -> Keyring:
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            msg = f"{self.path}: cannot read the keys file: {exc.strerror}"
            raise KeysFileError(msg) from None
        return parse_keys(data, str(self.path))

    def authenticate(self, key: str) -> Principal | None:
        return authenticate(self.keyring, key)

    def reload_if_changed(self) -> bool:
        """Re-read the file if its stat changed; True when new keys were loaded.

        A file that cannot be read or parsed keeps the previous keys (logged, by path).
        """
        stat = _stat(self.path)
        if stat == self._stat:
            return False
        self._stat = stat
        try:
            keyring = self._read()
        except KeysFileError as exc:
            log.error("keeping the previous keys: %s", exc)
            return False
        self.keyring = keyring
        log.info("loaded %d keys from %s", len(keyring.entries), self.path)
        return True

    async def watch(self, interval: float = RELOAD_INTERVAL) -> None:
        """Reload on change until cancelled."""
        while True:
            await asyncio.sleep(interval)
            await asyncio.to_thread(self.reload_if_changed)


def add_key(
    path: Path, name: str, codes: Sequence[str], roles: Sequence[str] = DEFAULT_ROLES
) -> str:
    """Make a random key for ``name`` with ``codes`` and ``roles``, add its digest to the keys
    file (created if missing; replaced atomically) and return the key. KeysFileError if the
    file does not parse or the new entry would not (an unknown role, a declarer without
    codes)."""
    key = secrets.token_urlsafe(32)
    entries: list[KeyEntry] = []
    if path.exists():
        data = path.read_bytes()
        parse_keys(data, str(path))  # refuse to rewrite a file that does not parse
        entries = _DECODER.decode(data).keys
    fields = {"name": name, "sha256": digest(key), "codes": list(codes), "roles": list(roles)}
    try:
        entry = msgspec.convert(fields, KeyEntry)
    except msgspec.ValidationError as exc:
        raise KeysFileError(f"the new entry for {name!r}: {exc}") from None
    # Validate the new entry as the gateway will read it.
    new = KeysFile(keys=[*entries, entry])
    data = msgspec.json.format(_ENCODER.encode(new), indent=2) + b"\n"
    parse_keys(data, f"the new entry for {name!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        if path.exists():
            os.chmod(temp, path.stat().st_mode & 0o777)
        Path(temp).replace(path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return key
