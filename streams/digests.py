"""Short digests of identifiers, packed end to end in one ``bytes`` (a released ticket's guids,
a buyer's decided ticket revisions): compact state that answers "seen before?"."""

from __future__ import annotations

import hashlib

__all__ = ("DIGEST_BYTES", "digest", "holds")

DIGEST_BYTES = 8  # BLAKE2b-64: a false "seen" among a few thousand entries is ~10^-13


def digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode(), digest_size=DIGEST_BYTES).digest()


def holds(packed: bytes, wanted: bytes) -> bool:
    """Whether ``wanted`` is one of the digests packed in ``packed`` (a search in C, matched
    only at a digest's start)."""
    found = packed.find(wanted)
    while found != -1:
        if found % DIGEST_BYTES == 0:
            return True
        found = packed.find(wanted, found + 1)
    return False
