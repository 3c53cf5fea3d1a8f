"""The alert stage (pure): patterns over decided tickets, each on its own key
(schemas/alerts.py names them; docs/contract.md, "Alerts", is the contract).

The ticket stage sends a :class:`~streams.records.Sighting` for every ticket revision its
rules decide (diverted, or sent to the buyer ledger, which releases or diverts it), if it has
an order. The sighting goes to the partition of each of its keys (:func:`alert_keys`): the
buyer ID, the consignee address and the consignee telephone, each normalised, as a kind tag
and a 16-byte BLAKE2b digest (no personal value in a key). A key's state (:class:`KeyState`)
holds one :class:`Entry` per ticket, by the ticket's time (its first document's arrival), with
digests of the values its patterns count:

- on a buyer key, the consignee's name and address (``ID_MANY_CONSIGNEES``: more than N
  distinct names, or addresses, within its window) and, for a ticket within the single limit,
  its dutiable value (``SPLIT_ORDERS``: two or more orders to one consignee, name and address,
  within T, adding up to more than the limit);
- on an address or telephone key, the buyer ID (``ADDRESS_MANY_IDS``: more than M distinct).

**Windows slide on the tickets' times**, so arrival order does not matter: a window is any span
of at most its length (both ends in), and a late sighting counts where its time puts it. A
pattern alerts on the earliest window that crosses its threshold; the alert then mutes its
pattern on that key for one window length after its evidence ends, and the next alert takes
only tickets after that: at most one alert per pattern and key per window length, never one per
ticket, and no two alerts share evidence.

**State stays bounded.** A ticket is decided at the latest when its window
(``SANDAN_WINDOW``) closes, so its sighting may come that late: an entry is kept for the
pattern's window plus ``SANDAN_WINDOW`` past its time, then dropped on the key's timer; a
sighting older than that is too late and ignored. A key keeps at most ``MAX_ENTRIES`` tickets
(the latest by time): counts are exact up to that and a lower bound above it. A ticket decided
again (a new revision) replaces its entry; the same sighting again (a replay) changes nothing.
"""

from __future__ import annotations

import bisect
import hashlib
from collections import Counter, defaultdict
from decimal import Decimal
from typing import NamedTuple

import msgspec

from schemas.alerts import Alert, AlertPattern, KeyKind, normalised, normalised_telephone
from streams.digests import digest
from streams.lookup import mask_field
from streams.records import Sighting
from streams.timefmt import iso_ms

__all__ = (
    "MAX_ENTRIES",
    "AlertRules",
    "AlertStep",
    "Entry",
    "KeyState",
    "alert_keys",
    "apply_expiry",
    "apply_sighting",
    "next_expiry",
)

MAX_ENTRIES = 256  # tickets one key keeps: counts are exact up to here
_KEY_DIGEST_BYTES = 16
_TAGS: dict[KeyKind, bytes] = {
    "buyerIdNumber": b"i",
    "consigneeAddress": b"a",
    "consigneeTelephone": b"t",
}


class AlertRules(NamedTuple):
    """The patterns' settings (``SANDAN_ALERT_*``), times in ms."""

    consignees: int  # ID_MANY_CONSIGNEES: more than this many
    consignees_window_ms: int
    buyers: int  # ADDRESS_MANY_IDS: more than this many
    buyers_window_ms: int
    split_window_ms: int
    single_limit: Decimal
    lateness_ms: int  # SANDAN_WINDOW: how long after its time a ticket may be decided

    def window_ms(self, pattern: AlertPattern) -> int:
        if pattern == "ID_MANY_CONSIGNEES":
            return self.consignees_window_ms
        return self.buyers_window_ms if pattern == "ADDRESS_MANY_IDS" else self.split_window_ms

    def threshold(self, pattern: AlertPattern) -> int:
        """More than this many distinct values (SPLIT_ORDERS: orders) alert."""
        if pattern == "ID_MANY_CONSIGNEES":
            return self.consignees
        return self.buyers if pattern == "ADDRESS_MANY_IDS" else 1

    def keep_ms(self, kind: str) -> int:
        """How long past its time an entry of a key of ``kind`` is kept."""
        if kind == "buyerIdNumber":
            return max(self.consignees_window_ms, self.split_window_ms) + self.lateness_ms
        return self.buyers_window_ms + self.lateness_ms


class Entry(msgspec.Struct, array_like=True, gc=False):
    """One ticket on one key: its time, id and the digests its patterns count (a buyer key:
    ``a`` the consignee's name, ``b`` the address, ``value`` the dutiable value if within the
    single limit; an address or telephone key: ``a`` the buyer ID)."""

    at: int
    ticket: str
    a: bytes
    b: bytes = b""
    value: Decimal | None = None


class KeyState(msgspec.Struct, array_like=True, gc=False):
    """One alert key: its kind, the key as alerts show it (masked), its entries by time, and
    per pattern until when its last alert mutes it (its evidence's end plus its window)."""

    kind: str
    key: str
    entries: list[Entry] = msgspec.field(default_factory=list)
    alerted: dict[str, int] = msgspec.field(default_factory=dict)

    def empty(self) -> bool:
        return not self.entries and not self.alerted


class AlertStep(NamedTuple):
    """What applying a sighting or a timer to a key gives: its state (None: nothing to keep),
    the alerts raised, and whether the state changed (so whether it is written)."""

    state: KeyState | None
    alerts: list[Alert]
    changed: bool


def _key(kind: KeyKind, value: str) -> bytes:
    return _TAGS[kind] + hashlib.blake2b(value.encode(), digest_size=_KEY_DIGEST_BYTES).digest()


def alert_keys(sighting: Sighting) -> list[tuple[KeyKind, bytes]]:
    """The keys a sighting counts on (a value that normalises to nothing has none)."""
    keys: list[tuple[KeyKind, bytes]] = []
    for kind, value in (
        ("buyerIdNumber", normalised(sighting.buyer)),
        ("consigneeAddress", normalised(sighting.address)),
        ("consigneeTelephone", normalised_telephone(sighting.telephone)),
    ):
        if value:
            keys.append((kind, _key(kind, value)))  # type: ignore[arg-type]  # the KeyKinds
    return keys


def _entry(kind: str, sighting: Sighting, single_limit: Decimal) -> Entry:
    if kind != "buyerIdNumber":
        return Entry(sighting.at, sighting.ticket, digest(normalised(sighting.buyer)))
    within = sighting.dutiable if sighting.dutiable <= single_limit else None
    name, address = digest(normalised(sighting.consignee)), digest(normalised(sighting.address))
    return Entry(sighting.at, sighting.ticket, name, address, within)


def _shown(kind: str, sighting: Sighting) -> str:
    value = {"buyerIdNumber": sighting.buyer, "consigneeAddress": sighting.address}.get(
        kind, sighting.telephone
    )
    return str(mask_field(kind, value))


def apply_sighting(
    rules: AlertRules,
    state: KeyState | None,
    kind: str,
    key: bytes,
    sighting: Sighting,
    until_ms: int,
    now_ms: int,
) -> AlertStep:
    """A decided ticket for the key ``key`` of ``kind``; ``until_ms``: the watermark (a
    sighting whose entry would already have expired by it is ignored); alerts are raised at
    ``now_ms``."""
    if sighting.at + rules.keep_ms(kind) <= until_ms:
        return AlertStep(state, [], changed=False)  # too late: its windows are gone
    entry = _entry(kind, sighting, rules.single_limit)
    if state is None:
        state = KeyState(kind, _shown(kind, sighting))
    entries = state.entries
    for index, held in enumerate(entries):
        if held.ticket == entry.ticket:
            if held == entry:
                return AlertStep(state, [], changed=False)  # seen as it is
            del entries[index]
            break
    bisect.insort(entries, entry, key=lambda e: (e.at, e.ticket))
    if len(entries) > MAX_ENTRIES:
        del entries[0]  # the oldest
    alerts: list[Alert] = []
    patterns: tuple[AlertPattern, ...] = (
        ("ID_MANY_CONSIGNEES", "SPLIT_ORDERS") if kind == "buyerIdNumber" else ("ADDRESS_MANY_IDS",)
    )
    for pattern in patterns:
        while (found := _crossing(rules, state, pattern)) is not None:
            evidence, count, total = found
            state.alerted[pattern] = evidence[-1].at + rules.window_ms(pattern)
            alerts.append(_alert(rules, state, key, pattern, evidence, count, total, now_ms))
    return AlertStep(state, alerts, changed=True)


def _crossing(
    rules: AlertRules, state: KeyState, pattern: AlertPattern
) -> tuple[list[Entry], int, Decimal | None] | None:
    """The earliest window (by its end) where ``pattern`` crosses its threshold, among the
    entries its last alert does not mute: (its entries, the count, the total), or None."""
    muted = state.alerted.get(pattern, -1)
    fresh = [entry for entry in state.entries if entry.at > muted]
    window_ms = rules.window_ms(pattern)
    if pattern == "SPLIT_ORDERS":
        return _split(fresh, window_ms, rules.single_limit)
    both = pattern == "ID_MANY_CONSIGNEES"
    return _many(fresh, window_ms, rules.threshold(pattern), both=both)


def _many(
    entries: list[Entry], window_ms: int, threshold: int, *, both: bool
) -> tuple[list[Entry], int, None] | None:
    """The first window of entries with more than ``threshold`` distinct ``a`` (or, ``both``,
    distinct ``b``)."""
    seen_a: Counter[bytes] = Counter()
    seen_b: Counter[bytes] = Counter()
    start = 0
    for end, entry in enumerate(entries):
        seen_a[entry.a] += 1
        if both:
            seen_b[entry.b] += 1
        while entry.at - entries[start].at > window_ms:
            gone = entries[start]
            _forget(seen_a, gone.a)
            if both:
                _forget(seen_b, gone.b)
            start += 1
        count = max(len(seen_a), len(seen_b))
        if count > threshold:
            return entries[start : end + 1], count, None
    return None


def _forget(counter: Counter[bytes], value: bytes) -> None:
    counter[value] -= 1
    if not counter[value]:
        del counter[value]


def _split(
    entries: list[Entry], window_ms: int, limit: Decimal
) -> tuple[list[Entry], int, Decimal] | None:
    """The first window (by its end) of two or more orders within the limit to one consignee
    (name and address) adding up to more than the limit."""
    by_consignee: defaultdict[tuple[bytes, bytes], list[Entry]] = defaultdict(list)
    for entry in entries:
        if entry.value is not None:
            by_consignee[entry.a, entry.b].append(entry)
    best: tuple[list[Entry], int, Decimal] | None = None
    for orders in by_consignee.values():
        start, total = 0, Decimal(0)
        for end, entry in enumerate(orders):
            total += entry.value or 0
            while entry.at - orders[start].at > window_ms:
                total -= orders[start].value or 0
                start += 1
            if end > start and total > limit:
                if best is None or (entry.at, entry.ticket) < (best[0][-1].at, best[0][-1].ticket):
                    best = (orders[start : end + 1], end + 1 - start, total)
                break
    return best


def _alert(
    rules: AlertRules,
    state: KeyState,
    key: bytes,
    pattern: AlertPattern,
    evidence: list[Entry],
    count: int,
    total: Decimal | None,
    now_ms: int,
) -> Alert:
    key_digest = key[1:].hex()
    split = pattern == "SPLIT_ORDERS"
    return Alert(
        alertId=f"{pattern}:{key_digest}:{evidence[0].at}",
        pattern=pattern,
        keyKind=state.kind,  # type: ignore[arg-type]  # a KeyKind, stored as its name
        key=state.key,
        keyDigest=key_digest,
        windowSeconds=rules.window_ms(pattern) / 1000,
        windowStart=iso_ms(evidence[0].at),
        windowEnd=iso_ms(evidence[-1].at),
        threshold=rules.threshold(pattern),
        count=count,
        limit=rules.single_limit if split else None,
        total=total,
        tickets=[entry.ticket for entry in evidence],
        raisedAt=iso_ms(now_ms),
    )


def next_expiry(rules: AlertRules, state: KeyState) -> int | None:
    """When the key's oldest entry or mute expires (None: nothing held)."""
    times = [entry.at for entry in state.entries[:1]] + list(state.alerted.values())
    return min(times) + rules.keep_ms(state.kind) if times else None


def apply_expiry(rules: AlertRules, state: KeyState, until_ms: int) -> AlertStep:
    """The key's timer fired: drop what expired by ``until_ms`` (the watermark)."""
    oldest = until_ms - rules.keep_ms(state.kind)
    entries = [entry for entry in state.entries if entry.at > oldest]
    alerted = {pattern: at for pattern, at in state.alerted.items() if at > oldest}
    if len(entries) == len(state.entries) and len(alerted) == len(state.alerted):
        return AlertStep(state, [], changed=False)
    state.entries, state.alerted = entries, alerted
    return AlertStep(None if state.empty() else state, [], changed=True)
