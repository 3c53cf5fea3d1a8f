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

**Windows slide on the tickets' times.** A window is any span of at most its length (both
ends in). A pattern alerts on the earliest window that crosses its threshold; the alert then
mutes its pattern on that key for one window length after its evidence ends, and the next alert
takes only tickets after that: at most one alert per pattern and key per window length, never
one per ticket, and no two alerts share evidence.

**State stays bounded.** For the distinct counts a key keeps, per distinct value (a buyer key:
the consignee's name and address; else the buyer ID), only the first and the last ticket with
it (:class:`Seen`): a hot key with few values stays small, and a key with many crosses its
threshold and is muted, dropping what the mute covers. Counting the first and last ticket of
each value is exact when a key's tickets come in time order; a ticket decided out of order
sees each other value's first and last ticket, so an alert may come from a later ticket instead
(never from a window that does not cross). The split orders keep each order within the limit
(:class:`SmallOrder`), dropped once muted or out of the window. A ticket is decided at the latest
when its ``SANDAN_WINDOW`` closes, so its sighting may come that late: what a pattern keeps is
dropped on the key's timer its window plus ``SANDAN_WINDOW`` after its time, and a sighting
older than that is too late for the pattern. ``MAX_VALUES`` and ``MAX_ORDERS`` cap a key (the
latest kept). The same sighting again (a replay) changes nothing.
"""

from __future__ import annotations

import bisect
import hashlib
from collections import Counter, defaultdict
from decimal import Decimal
from functools import lru_cache
from typing import NamedTuple

import msgspec

from schemas.alerts import Alert, AlertPattern, KeyKind, normalised, normalised_telephone
from streams.digests import digest
from streams.lookup import mask_field
from streams.records import Sighting
from streams.timefmt import iso_ms

__all__ = (
    "MAX_ORDERS",
    "MAX_VALUES",
    "AlertRules",
    "AlertStep",
    "KeyState",
    "Seen",
    "SmallOrder",
    "alert_keys",
    "apply_expiry",
    "apply_sighting",
    "next_expiry",
)

MAX_VALUES = 64  # distinct values one key keeps (thresholds are far below)
MAX_ORDERS = 256  # orders within the limit one buyer keeps for SPLIT_ORDERS
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
        return _by_pattern(self)[pattern][0]

    def threshold(self, pattern: AlertPattern) -> int:
        """More than this many distinct values (SPLIT_ORDERS: orders) alert."""
        return _by_pattern(self)[pattern][1]

    def keep_ms(self, pattern: AlertPattern) -> int:
        """How long past a ticket's time ``pattern`` keeps it (and a mute past its end)."""
        return _by_pattern(self)[pattern][2]


@lru_cache(maxsize=8)
def _by_pattern(rules: AlertRules) -> dict[str, tuple[int, int, int]]:
    """Per pattern: its window, its threshold and how long it keeps a ticket (ms)."""
    late = rules.lateness_ms
    return {
        "ID_MANY_CONSIGNEES": (
            rules.consignees_window_ms,
            rules.consignees,
            rules.consignees_window_ms + late,
        ),
        "ADDRESS_MANY_IDS": (rules.buyers_window_ms, rules.buyers, rules.buyers_window_ms + late),
        "SPLIT_ORDERS": (rules.split_window_ms, 1, rules.split_window_ms + late),
    }


class Seen(msgspec.Struct, array_like=True, gc=False):
    """One distinct value on a key (a buyer key: ``a`` the consignee's name, ``b`` the
    address; else ``a`` the buyer ID), and the first and last ticket with it."""

    a: bytes
    b: bytes
    first_at: int
    first: str
    last_at: int
    last: str


class SmallOrder(msgspec.Struct, array_like=True, gc=False):
    """One of a buyer's orders within the single limit (``a``, ``b``: its consignee)."""

    at: int
    ticket: str
    a: bytes
    b: bytes
    value: Decimal


class KeyState(msgspec.Struct, array_like=True, gc=False):
    """One alert key: its kind, the key as alerts show it (masked), its distinct values, its
    orders within the limit (a buyer key) by time, and per pattern until when its last alert
    mutes it (its evidence's end plus its window)."""

    kind: str
    key: str
    seen: list[Seen] = msgspec.field(default_factory=list)
    orders: list[SmallOrder] = msgspec.field(default_factory=list)
    alerted: dict[str, int] = msgspec.field(default_factory=dict)
    due: int | None = None  # its timer as written (next_expiry then), to move it

    def empty(self) -> bool:
        return not self.seen and not self.orders and not self.alerted


class AlertStep(NamedTuple):
    """What applying a sighting or a timer to a key gives: its state (None: nothing to keep),
    the alerts raised, and whether the state changed (so whether it is written)."""

    state: KeyState | None
    alerts: list[Alert]
    changed: bool


class _Point(NamedTuple):
    """A ticket with a value, as the distinct counts sweep them."""

    at: int
    ticket: str
    a: bytes
    b: bytes


# A decided ticket's values are normalised for its keys and again for the buyer key's counts;
# a returning buyer's, every time: remembered, by the text as written.
_normalised = lru_cache(maxsize=8192)(normalised)


@lru_cache(maxsize=8192)
def _value(text: str) -> bytes:
    """The digest a key counts a value by."""
    return digest(normalised(text))


def _key(kind: KeyKind, value: str) -> bytes:
    return _TAGS[kind] + hashlib.blake2b(value.encode(), digest_size=_KEY_DIGEST_BYTES).digest()


def alert_keys(sighting: Sighting) -> list[tuple[KeyKind, bytes]]:
    """The keys a sighting counts on (a value that normalises to nothing has none)."""
    keys: list[tuple[KeyKind, bytes]] = []
    for kind, value in (
        ("buyerIdNumber", _normalised(sighting.buyer)),
        ("consigneeAddress", _normalised(sighting.address)),
        ("consigneeTelephone", normalised_telephone(sighting.telephone)),
    ):
        if value:
            keys.append((kind, _key(kind, value)))  # type: ignore[arg-type]  # the KeyKinds
    return keys


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
    pattern ignores a sighting it would already have dropped by then); alerts are raised at
    ``now_ms``."""
    fresh = state is None
    if state is None:
        state = KeyState(kind, _shown(kind, sighting))
    at, ticket = sighting.at, sighting.ticket
    alerts: list[Alert] = []
    changed = False
    if kind == "buyerIdNumber":
        name, address = _value(sighting.consignee), _value(sighting.address)
        distinct: AlertPattern = "ID_MANY_CONSIGNEES"
        if _counts(rules, state, "SPLIT_ORDERS", at, until_ms) and sighting.dutiable <= (
            rules.single_limit
        ):
            order = SmallOrder(at, ticket, name, address, sighting.dutiable)
            if _add_order(state.orders, order):
                changed = True
                alerts += _alerts(rules, state, key, "SPLIT_ORDERS", now_ms)
    else:
        name, address, distinct = _value(sighting.buyer), b"", "ADDRESS_MANY_IDS"
    if _counts(rules, state, distinct, at, until_ms) and _see(
        state.seen, name, address, at, ticket
    ):
        changed = True
        alerts += _alerts(rules, state, key, distinct, now_ms)
    if not changed:
        return AlertStep(None if fresh else state, [], changed=False)
    return AlertStep(state, alerts, changed=True)


def _counts(rules: AlertRules, state: KeyState, pattern: AlertPattern, at: int, until: int) -> bool:
    """Whether a ticket of time ``at`` counts for ``pattern``: not muted, not too late."""
    return at > state.alerted.get(pattern, -1) and at + rules.keep_ms(pattern) > until


def _see(seen: list[Seen], a: bytes, b: bytes, at: int, ticket: str) -> bool:
    """Note a ticket with the value (a, b); whether anything changed."""
    for value in seen:
        if value.a == a and value.b == b:
            if (at, ticket) < (value.first_at, value.first):
                value.first_at, value.first = at, ticket
                return True
            if (at, ticket) > (value.last_at, value.last):
                value.last_at, value.last = at, ticket
                return True
            return False
    seen.append(Seen(a, b, at, ticket, at, ticket))
    if len(seen) > MAX_VALUES:
        seen.remove(min(seen, key=lambda value: (value.last_at, value.last)))
    return True


def _add_order(orders: list[SmallOrder], order: SmallOrder) -> bool:
    """Add an order (a new revision of one held replaces it); whether anything changed."""
    for index, held in enumerate(orders):
        if held.ticket == order.ticket:
            if held == order:
                return False
            del orders[index]
            break
    bisect.insort(orders, order, key=lambda o: (o.at, o.ticket))
    if len(orders) > MAX_ORDERS:
        del orders[0]  # the oldest
    return True


def _alerts(
    rules: AlertRules, state: KeyState, key: bytes, pattern: AlertPattern, now_ms: int
) -> list[Alert]:
    """Raise ``pattern``'s alerts on the key, each muting it and dropping what it mutes."""
    alerts = []
    while (found := _crossing(rules, state, pattern)) is not None:
        evidence, count, total = found
        mute = evidence[-1][0] + rules.window_ms(pattern)
        state.alerted[pattern] = mute
        _drop(state, pattern, mute)
        alerts.append(_alert(rules, state, key, pattern, evidence, count, total, now_ms))
    return alerts


def _crossing(
    rules: AlertRules, state: KeyState, pattern: AlertPattern
) -> tuple[list[tuple[int, str]], int, Decimal | None] | None:
    """The earliest window (by its end) where ``pattern`` crosses its threshold: (its tickets'
    times and ids, the count, the total), or None."""
    window_ms = rules.window_ms(pattern)
    if pattern == "SPLIT_ORDERS":
        if sum(order.value for order in state.orders) <= rules.single_limit:
            return None  # not even all of them together
        return _split(state.orders, window_ms, rules.single_limit)
    if len(state.seen) <= rules.threshold(pattern):
        return None  # not even all of them together
    points = sorted(
        {_Point(v.first_at, v.first, v.a, v.b) for v in state.seen}
        | {_Point(v.last_at, v.last, v.a, v.b) for v in state.seen}
    )
    both = pattern == "ID_MANY_CONSIGNEES"
    return _many(points, window_ms, rules.threshold(pattern), both=both)


def _many(
    points: list[_Point], window_ms: int, threshold: int, *, both: bool
) -> tuple[list[tuple[int, str]], int, None] | None:
    """The first window of points with more than ``threshold`` distinct ``a`` (or, ``both``,
    distinct ``b``)."""
    seen_a: Counter[bytes] = Counter()
    seen_b: Counter[bytes] = Counter()
    start = 0
    for end, point in enumerate(points):
        seen_a[point.a] += 1
        if both:
            seen_b[point.b] += 1
        while point.at - points[start].at > window_ms:
            gone = points[start]
            _forget(seen_a, gone.a)
            if both:
                _forget(seen_b, gone.b)
            start += 1
        count = max(len(seen_a), len(seen_b))
        if count > threshold:
            return [(p.at, p.ticket) for p in points[start : end + 1]], count, None
    return None


def _forget(counter: Counter[bytes], value: bytes) -> None:
    counter[value] -= 1
    if not counter[value]:
        del counter[value]


def _split(
    orders: list[SmallOrder], window_ms: int, limit: Decimal
) -> tuple[list[tuple[int, str]], int, Decimal] | None:
    """The first window (by its end) of two or more orders within the limit to one consignee
    (name and address) adding up to more than the limit."""
    by_consignee: defaultdict[tuple[bytes, bytes], list[SmallOrder]] = defaultdict(list)
    for order in orders:
        by_consignee[order.a, order.b].append(order)
    best: tuple[list[tuple[int, str]], int, Decimal] | None = None
    for group in by_consignee.values():
        start, total = 0, Decimal(0)
        for end, order in enumerate(group):
            total += order.value
            while order.at - group[start].at > window_ms:
                total -= group[start].value
                start += 1
            if end > start and total > limit:
                if best is None or (order.at, order.ticket) < best[0][-1]:
                    best = (
                        [(o.at, o.ticket) for o in group[start : end + 1]],
                        end + 1 - start,
                        total,
                    )
                break
    return best


def _drop(state: KeyState, pattern: AlertPattern, until: int) -> bool:
    """Forget what ``pattern`` holds of tickets up to ``until`` (muted, or expired); whether
    anything was."""
    if pattern == "SPLIT_ORDERS":
        kept_orders = [order for order in state.orders if order.at > until]
        dropped = len(kept_orders) != len(state.orders)
        state.orders = kept_orders
        return dropped
    kept, dropped = [], False
    for value in state.seen:
        if value.first_at <= until:
            dropped = True
            if value.last_at <= until:
                continue
            value.first_at, value.first = value.last_at, value.last
        kept.append(value)
    state.seen = kept
    return dropped


def _alert(
    rules: AlertRules,
    state: KeyState,
    key: bytes,
    pattern: AlertPattern,
    evidence: list[tuple[int, str]],
    count: int,
    total: Decimal | None,
    now_ms: int,
) -> Alert:
    key_digest = key[1:].hex()
    split = pattern == "SPLIT_ORDERS"
    return Alert(
        alertId=f"{pattern}:{key_digest}:{evidence[0][0]}",
        pattern=pattern,
        keyKind=state.kind,  # type: ignore[arg-type]  # a KeyKind, stored as its name
        key=state.key,
        keyDigest=key_digest,
        windowSeconds=rules.window_ms(pattern) / 1000,
        windowStart=iso_ms(evidence[0][0]),
        windowEnd=iso_ms(evidence[-1][0]),
        threshold=rules.threshold(pattern),
        count=count,
        limit=rules.single_limit if split else None,
        total=total,
        tickets=list(dict.fromkeys(ticket for _, ticket in evidence)),
        raisedAt=iso_ms(now_ms),
    )


def _patterns(kind: str) -> tuple[AlertPattern, ...]:
    if kind == "buyerIdNumber":
        return ("ID_MANY_CONSIGNEES", "SPLIT_ORDERS")
    return ("ADDRESS_MANY_IDS",)


def next_expiry(rules: AlertRules, state: KeyState) -> int | None:
    """When the next thing the key holds expires (None: nothing held)."""
    due: int | None = None
    for pattern in _patterns(state.kind):
        if pattern == "SPLIT_ORDERS":
            oldest = state.orders[0].at if state.orders else None
        else:
            oldest = min(value.first_at for value in state.seen) if state.seen else None
        muted = state.alerted.get(pattern)
        if muted is not None and (oldest is None or muted < oldest):
            oldest = muted
        if oldest is not None:
            oldest += rules.keep_ms(pattern)
            due = oldest if due is None or oldest < due else due
    return due


def apply_expiry(rules: AlertRules, state: KeyState, until_ms: int) -> AlertStep:
    """The key's timer fired: drop what expired by ``until_ms`` (the watermark)."""
    changed = False
    for pattern in _patterns(state.kind):
        oldest = until_ms - rules.keep_ms(pattern)
        changed |= _drop(state, pattern, oldest)
        if state.alerted.get(pattern, oldest + 1) <= oldest:
            del state.alerted[pattern]
            changed = True
    if not changed:
        return AlertStep(state, [], changed=False)
    return AlertStep(None if state.empty() else state, [], changed=True)
