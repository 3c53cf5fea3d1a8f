"""Compare what sandan answered with a plan's ground truth: pure, no I/O.

:func:`verify` takes the decoded JSON objects read from ``cbec.release`` + ``cbec.divert``
(decisions) and from ``cbec.rejected`` (rejections), with the contract's field names, and returns
a :class:`Report`: counts, and one line per mismatch. Decisions are matched per (ticket,
revision): decision, the distinct reason codes, ``missing``, and ``fullTax`` on a release.
Rejections are compared as a multiset of (code, docType, guid).

Alerts (``cbec.alert``), when the caller read them, are checked against the plan's expected
alerts (loadtest.alerts, the oracle) by :func:`verify_alerts`, with each ticket's time (the
decisions' ``firstSeenAt``): see there.

A run that delays records (a broker restarted under the load) may move a ticket's documents
across its window's edge, so that the plan's truth no longer holds for it: the caller names such
tickets ``moved`` (measured from the records' append times). Their decisions and the rejections
of their documents are not compared, only checked for what holds whatever the timing: each
ticket decided, no revision decided twice, released at most once, revisions numbered 1..n, no
rejection twice.
"""

from __future__ import annotations

import contextlib
import itertools
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec
import orjson

from loadtest.alerts import crosses, distinct_count
from loadtest.truth import (
    ALERT_WINDOW,
    AlertTicket,
    ExpectedAlert,
    ExpectedDecision,
    Plan,
    pattern_key,
)
from matchers.limits import SINGLE_LIMIT
from schemas.alerts import ALERT_PATTERNS
from streams.timefmt import iso_ms

__all__ = (
    "AlertCheck",
    "Report",
    "parse_iso_ms",
    "perfect_alerts",
    "perfect_outputs",
    "ticket_times",
    "verify",
    "verify_alerts",
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
# perfect_outputs' clock: a plan's time 0 (2026-11-24 00:00 UTC, in ms)
_ORIGIN_MS = 1_795_478_400_000


class Report(msgspec.Struct, kw_only=True):
    """The outcome of a run compared with its plan; ``ok`` when nothing differs."""

    tickets_expected: int
    tickets_decided: int
    decisions_expected: int
    decisions_seen: int
    released: int
    diverted: int
    diverted_by_code: dict[str, int]
    rejections_expected: int
    rejections_seen: int
    rejected_by_code: dict[str, int]
    mismatches: list[str]
    tickets_moved: int = 0
    alerts_checked: bool = False  # whether the run read cbec.alert and checked it
    alert_keys_expected: int = 0  # keys the plan must alert on (each at least once)
    alerts_seen: int = 0
    alert_mismatches: int = 0  # of ``mismatches``
    # per pattern: keys_expected, keys_alerted, alerts, planted_keys, unexpected
    alerts_by_pattern: dict[str, dict[str, int]] = {}

    @property
    def ok(self) -> bool:
        """True when every decision, rejection and alert is as planned."""
        return not self.mismatches


class AlertCheck(msgspec.Struct, kw_only=True):
    """What :func:`verify_alerts` found (see :class:`Report`'s alert fields)."""

    keys_expected: int
    alerts_seen: int
    by_pattern: dict[str, dict[str, int]]
    mismatches: list[str]


def parse_iso_ms(text: object) -> int | None:
    """Milliseconds since the epoch of an ISO-8601 time with a zone; None if it is not one."""
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return (moment - _EPOCH) // _MS


def _codes(decision: Mapping[str, Any]) -> tuple[str, ...]:
    reasons = decision.get("reasons") or []
    return tuple(sorted({str(r.get("code")) for r in reasons if isinstance(r, Mapping)}))


def _missing(decision: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(sorted(str(kind) for kind in decision.get("missing") or []))


def _show(decision: str, codes: tuple[str, ...], missing: tuple[str, ...], full_tax: bool) -> str:
    text = decision
    if codes:
        text += f" {'+'.join(codes)}"
    if missing:
        text += f" missing {'+'.join(missing)}"
    return text + (" fullTax" if full_tax else "")


def _compare(label: str, expected: ExpectedDecision, seen: Mapping[str, Any]) -> str | None:
    """A mismatch line, or None when ``seen`` is the expected decision."""
    release = expected.decision == "RELEASE"  # fullTax is not part of a diversion's truth
    got = _seen(seen, full_tax=release and bool(seen.get("fullTax")))
    want = (expected.decision, expected.codes, expected.missing, expected.full_tax and release)
    if got == want:
        return None
    return f"{label}: expected {_show(*want)}, got {_show(*got)}"


def _seen(
    decision: Mapping[str, Any], *, full_tax: bool = False
) -> tuple[str, tuple[str, ...], tuple[str, ...], bool]:
    return str(decision.get("decision")), _codes(decision), _missing(decision), full_tax


def verify(
    plan: Plan,
    decisions: Iterable[Mapping[str, Any]],
    rejections: Iterable[Mapping[str, Any]],
    moved: frozenset[str] = frozenset(),
    alerts: Iterable[Mapping[str, Any]] | None = None,
    alert_window: float | None = None,
) -> Report:
    """Check every decision and rejection seen against the plan (those of ``moved`` tickets
    only for exactly once, see above); and, given the ``alerts`` read, every alert
    (:func:`verify_alerts`; ``alert_window``: the windows the run set, in seconds)."""
    mismatches: list[str] = []
    seen: dict[str, dict[int, list[Mapping[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    kinds: Counter[str] = Counter()
    diverted_by_code: Counter[str] = Counter()
    times: dict[str, int] = {}
    for decision in decisions:
        ticket, revision = decision.get("ticketId"), decision.get("revision")
        kind = decision.get("decision")
        if (
            not isinstance(ticket, str)
            or not isinstance(revision, int)
            or kind
            not in (
                "RELEASE",
                "DIVERT",
            )
        ):
            mismatches.append(f"malformed decision: {dict(decision)!r:.300}")
            continue
        seen[ticket][revision].append(decision)
        first = parse_iso_ms(decision.get("firstSeenAt"))
        if first is not None:
            times[ticket] = min(first, times.get(ticket, first))
        kinds[kind] += 1
        if kind == "DIVERT":
            diverted_by_code.update(_codes(decision))
    for ticket in sorted(plan.decisions.keys() | seen.keys()):
        if ticket in moved and ticket in plan.decisions:
            mismatches.extend(_check_moved_ticket(plan, ticket, seen.get(ticket, {})))
        else:
            mismatches.extend(_check_ticket(plan, ticket, seen.get(ticket, {})))
    moved_guids = _guids_of(plan, moved)
    expected = Counter((r.code, r.doc_type, r.guid) for r in plan.rejections)
    got: Counter[tuple[Any, Any, Any]] = Counter(
        (r.get("code"), r.get("docType"), r.get("guid")) for r in rejections
    )
    for key in sorted(expected.keys() | got.keys(), key=repr):
        if key[2] in moved_guids:  # exactly once only: no more than the plan sends it
            if got[key] > max(expected[key], 1):
                code, doc_type, guid = key
                mismatches.append(f"rejection {code} {doc_type} guid {guid}: seen {got[key]}")
            continue
        if expected[key] != got[key]:
            code, doc_type, guid = key
            mismatches.append(
                f"rejection {code} {doc_type} guid {guid}: expected {expected[key]}, "
                f"seen {got[key]}"
            )
    rejected_by_code: Counter[str] = Counter()
    for (code, _, _), count in got.items():
        rejected_by_code[str(code)] += count
    check = None
    if alerts is not None:
        check = verify_alerts(plan.alerts, alerts, times, kinds=plan.kinds, window=alert_window)
        mismatches.extend(check.mismatches)
    return Report(
        tickets_expected=len(plan.decisions),
        tickets_decided=len(seen),
        decisions_expected=sum(len(revisions) for revisions in plan.decisions.values()),
        decisions_seen=kinds.total(),
        released=kinds["RELEASE"],
        diverted=kinds["DIVERT"],
        diverted_by_code=dict(sorted(diverted_by_code.items())),
        rejections_expected=len(plan.rejections),
        rejections_seen=got.total(),
        rejected_by_code=dict(sorted(rejected_by_code.items())),
        mismatches=mismatches,
        tickets_moved=len(moved & plan.decisions.keys()),
        alerts_checked=check is not None,
        alert_keys_expected=check.keys_expected if check else 0,
        alerts_seen=check.alerts_seen if check else 0,
        alert_mismatches=len(check.mismatches) if check else 0,
        alerts_by_pattern=check.by_pattern if check else {},
    )


def _guids_of(plan: Plan, tickets: frozenset[str]) -> frozenset[str]:
    """The guids of the documents planned for ``tickets``."""
    if not tickets:
        return frozenset()
    guids = set()
    for record in plan.records:
        if record.ticket_id in tickets:
            with contextlib.suppress(orjson.JSONDecodeError, AttributeError):
                guid = orjson.loads(record.value).get("guid")
                if isinstance(guid, str):
                    guids.add(guid)
    return frozenset(guids)


def _check_moved_ticket(
    plan: Plan, ticket: str, seen: Mapping[int, list[Mapping[str, Any]]]
) -> list[str]:
    """A moved ticket's mismatches: only what holds whatever the timing."""
    label = f"{ticket} [{plan.kinds.get(ticket, 'not planned')}, moved]"
    if not seen:
        return [f"{label}: never decided"]
    out = [f"{label} rev {rev}: decided {len(ds)} times" for rev, ds in seen.items() if len(ds) > 1]
    releases = sum(d.get("decision") == "RELEASE" for ds in seen.values() for d in ds)
    if releases > 1:
        out.append(f"{label}: released {releases} times")
    revisions = sorted(seen)
    if revisions != list(range(1, revisions[-1] + 1)):
        out.append(f"{label}: revisions seen {revisions}, not 1..{revisions[-1]}")
    return out


def _check_ticket(
    plan: Plan, ticket: str, seen: Mapping[int, list[Mapping[str, Any]]]
) -> list[str]:
    """The mismatches of one ticket: per revision, then releases and revision numbering."""
    out: list[str] = []
    label = f"{ticket} [{plan.kinds.get(ticket, 'not planned')}]"
    expected = {e.revision: e for e in plan.decisions.get(ticket, [])}
    for revision in sorted(expected.keys() | seen.keys()):
        want, got = expected.get(revision), seen.get(revision, [])
        where = f"{label} rev {revision}"
        if want is None:
            out.extend(f"{where}: extra decision {_show(*_seen(d))}" for d in got)
        elif not got:
            out.append(f"{where}: missing decision, expected {_show(*_expected(want))}")
        else:
            if len(got) > 1:
                out.append(f"{where}: decided {len(got)} times")
            out.extend(line for d in got if (line := _compare(where, want, d)) is not None)
    releases = sum(d.get("decision") == "RELEASE" for ds in seen.values() for d in ds)
    if releases > 1:
        out.append(f"{label}: released {releases} times")
    revisions = sorted(seen)
    if revisions and revisions != list(range(1, revisions[-1] + 1)):
        out.append(f"{label}: revisions seen {revisions}, not 1..{revisions[-1]}")
    return out


def _expected(e: ExpectedDecision) -> tuple[str, tuple[str, ...], tuple[str, ...], bool]:
    return e.decision, e.codes, e.missing, e.full_tax


def ticket_times(plan: Plan, origin_ms: int = _ORIGIN_MS) -> dict[str, int]:
    """Each decided ticket's time as a perfect run would see it: its first record's send time
    (ms, the plan's time 0 at ``origin_ms``)."""
    times: dict[str, int] = {}
    for record in plan.records:
        ticket = record.ticket_id
        if ticket is not None and ticket not in times and ticket in plan.decisions:
            times[ticket] = origin_ms + round(record.at * 1000)
    return times


def perfect_outputs(
    plan: Plan, times: Mapping[str, int] | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The decisions and rejections a perfect engine would emit for ``plan``, reduced to the
    fields :func:`verify` reads (for tests and dry runs of a report); each ticket's
    ``firstSeenAt`` from ``times`` (by default :func:`ticket_times`)."""
    times = ticket_times(plan) if times is None else times
    decisions: list[dict[str, Any]] = []
    for revisions in plan.decisions.values():
        for e in revisions:
            record: dict[str, Any] = {"ticketId": e.ticket_id, "decision": e.decision}
            record |= {"revision": e.revision, "fullTax": e.full_tax}
            if e.ticket_id in times:
                record["firstSeenAt"] = iso_ms(times[e.ticket_id])
            if e.decision == "DIVERT":
                record["reasons"] = [{"code": c, "detail": "", "fields": {}} for c in e.codes]
                record["missing"] = list(e.missing)
            decisions.append(record)
    rejections = [{"code": r.code, "docType": r.doc_type, "guid": r.guid} for r in plan.rejections]
    return decisions, rejections


def perfect_alerts(
    expected: Mapping[str, ExpectedAlert],
    times: Mapping[str, int],
    *,
    limit: Decimal = SINGLE_LIMIT,
    window: float = ALERT_WINDOW,
) -> list[dict[str, Any]]:
    """The alerts a perfect engine would raise with ``expected`` keys' tickets arriving in time
    order (``times``: each ticket's, ms; windows of ``window`` seconds, longer than the run), as
    JSON objects: on each key, the first tickets (by time, then id) that cross; the alert mutes
    the key for a window after them (for tests and dry runs of a report)."""
    out: list[dict[str, Any]] = []
    for e in expected.values():
        tickets = sorted(
            (t for t in e.tickets if t.ticket in times), key=lambda t: (times[t.ticket], t.ticket)
        )
        fresh: list[AlertTicket] = []
        after = -1
        for ticket in tickets:
            if times[ticket.ticket] <= after:
                continue  # muted by the last alert
            fresh.append(ticket)
            evidence = fresh
            if e.pattern == "SPLIT_ORDERS":
                evidence = [t for t in fresh if (t.a, t.b) == (ticket.a, ticket.b)]
            if not crosses(e.pattern, evidence, e.threshold, limit):
                continue
            split = e.pattern == "SPLIT_ORDERS"
            first, end = times[evidence[0].ticket], times[ticket.ticket]
            after = end + round(window * 1000)
            total = sum((t.values[-1] for t in evidence if split), Decimal(0))
            out.append(
                {
                    "alertId": f"{e.pattern}:{e.key_digest}:{first}",
                    "pattern": e.pattern,
                    "keyKind": e.key_kind,
                    "key": "***",
                    "keyDigest": e.key_digest,
                    "windowSeconds": window,
                    "windowStart": iso_ms(first),
                    "windowEnd": iso_ms(end),
                    "threshold": e.threshold,
                    "count": distinct_count(e.pattern, evidence),
                    "limit": str(limit) if split else None,
                    "total": str(total) if split else None,
                    "tickets": [t.ticket for t in evidence],
                    "raisedAt": iso_ms(end),
                }
            )
            fresh = []
    return out


_ALERT_FIELDS: dict[str, type | tuple[type, ...]] = {
    "alertId": str,
    "pattern": str,
    "keyKind": str,
    "keyDigest": str,
    "windowSeconds": (int, float),
    "windowStart": str,
    "windowEnd": str,
    "threshold": int,
    "count": int,
    "tickets": list,
}


def _malformed(alert: Mapping[str, Any]) -> str | None:
    """What makes an alert unreadable, or None."""
    for name, kind in _ALERT_FIELDS.items():
        if not isinstance(alert.get(name), kind):
            return f"{name} missing or not {kind}"
    if alert["pattern"] not in ALERT_PATTERNS:
        return f"unknown pattern {alert['pattern']!r}"
    if not alert["tickets"] or not all(isinstance(t, str) for t in alert["tickets"]):
        return "tickets empty or not ticket ids"
    return None


def _amount(value: object) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def verify_alerts(
    expected: Mapping[str, ExpectedAlert],
    alerts: Iterable[Mapping[str, Any]],
    times: Mapping[str, int],
    *,
    kinds: Mapping[str, str] | None = None,
    limit: Decimal = SINGLE_LIMIT,
    window: float | None = None,
) -> AlertCheck:
    """Check the alerts read against the expected ones; ``times``: each ticket's time (ms, its
    decisions' firstSeenAt), as far as known; ``kinds``: the tickets' slot kinds, to name them.

    Every alert must be on an expected key, once (by alertId), with evidence that is of that key
    and crosses it exactly at its last ticket (without it, it would not), its count (and total)
    those of its tickets, its window their times, and not within the window an earlier alert on
    the key mutes (its evidence's end plus its windowSeconds). Every expected key must be
    alerted on, and its tickets after its last alert's mute must not cross again (the engine
    would have alerted once more): none missed, none spurious, whatever order the tickets
    arrived in. With windows longer than the run, that is exactly one alert per expected key.
    """
    mismatches: list[str] = []
    figures: dict[str, Counter[str]] = {p: Counter() for p in ALERT_PATTERNS}
    found: defaultdict[str, list[Mapping[str, Any]]] = defaultdict(list)
    ids: Counter[str] = Counter()
    total = 0
    for alert in alerts:
        total += 1
        problem = _malformed(alert)
        if problem is not None:
            mismatches.append(f"malformed alert ({problem}): {dict(alert)!r:.300}")
            continue
        ids[alert["alertId"]] += 1
        if ids[alert["alertId"]] == 1:
            figures[alert["pattern"]]["alerts"] += 1
            found[pattern_key(alert["pattern"], alert["keyKind"], alert["keyDigest"])].append(alert)
    mismatches.extend(f"alert {i}: raised {n} times" for i, n in sorted(ids.items()) if n > 1)
    for e in expected.values():
        figures[e.pattern]["keys_expected"] += 1
        figures[e.pattern]["planted_keys"] += e.planted
    for key in sorted(expected.keys() | found.keys()):
        want = expected.get(key)
        if want is None:
            for alert in found[key]:
                figures[alert["pattern"]]["unexpected"] += 1
                named = [f"{t} [{(kinds or {}).get(t, '?')}]" for t in alert["tickets"][:6]]
                mismatches.append(
                    f"unexpected alert {alert['alertId']} ({alert['keyKind']}, count "
                    f"{alert['count']}): tickets {', '.join(named)}"
                )
            continue
        if found.get(key):
            figures[want.pattern]["keys_alerted"] += 1
        mismatches.extend(_check_key(want, found.get(key, []), times, limit, window))
    names = ("keys_expected", "keys_alerted", "alerts", "planted_keys", "unexpected")
    by_pattern: dict[str, dict[str, int]] = {
        p: {n: figures[p][n] for n in names} for p in ALERT_PATTERNS
    }
    return AlertCheck(
        keys_expected=len(expected),
        alerts_seen=total,
        by_pattern=by_pattern,
        mismatches=mismatches,
    )


def _check_key(
    e: ExpectedAlert,
    found: Sequence[Mapping[str, Any]],
    times: Mapping[str, int],
    limit: Decimal,
    window: float | None,
) -> list[str]:
    """The mismatches of one expected key and the alerts found on it: each alert's own, then
    that none is raised within the window an earlier one mutes, and that the tickets after the
    last one's mute do not cross again."""
    label = f"{e.pattern} {e.key_kind} {e.key_digest[:12]}{' [planted]' if e.planted else ''}"
    tickets = {t.ticket: t for t in e.tickets}
    if not found:
        return [f"{label}: no alert, expected one ({len(e.tickets)} tickets cross)"]
    out: list[str] = []
    used: set[str] = set()
    spans: list[tuple[int, int, int, str]] = []  # end, start, mute, alertId
    for alert in found:
        where = f"{label} alert {alert['alertId']}"
        out.extend(_check_alert(where, e, alert, tickets, times, limit, window))
        again = used.intersection(alert["tickets"])
        if again:
            out.append(f"{where}: tickets in another alert too: {sorted(again)[:5]}")
        used.update(alert["tickets"])
        start, end = parse_iso_ms(alert["windowStart"]), parse_iso_ms(alert["windowEnd"])
        if start is None or end is None:
            out.append(f"{where}: window {alert['windowStart']}..{alert['windowEnd']} unreadable")
        else:
            spans.append((end, start, end + round(alert["windowSeconds"] * 1000), alert["alertId"]))
    if len(spans) < len(found):
        return out
    spans.sort()
    for (_, _, mute, before), (_, start, _, alert_id) in itertools.pairwise(spans):
        if start <= mute:
            out.append(f"{label}: alert {alert_id} within the window alert {before} mutes")
    mute = spans[-1][2]
    later = [t for t in e.tickets if t.ticket in times and times[t.ticket] > mute]
    if crosses(e.pattern, later, e.threshold, limit):
        out.append(
            f"{label}: {len(later)} tickets after the last alert's mute cross again: "
            f"an alert is missing ({len(found)} seen)"
        )
    return out


def _check_alert(
    where: str,
    e: ExpectedAlert,
    alert: Mapping[str, Any],
    tickets: Mapping[str, AlertTicket],
    times: Mapping[str, int],
    limit: Decimal,
    window: float | None,
) -> list[str]:
    """The mismatches of one alert on an expected key."""
    named: list[str] = alert["tickets"]
    foreign = [t for t in named if t not in tickets]
    if foreign:
        return [f"{where}: tickets not of this key: {foreign[:5]}"]
    out: list[str] = []
    if len(set(named)) != len(named):
        out.append(f"{where}: a ticket twice in its evidence")
    if alert["threshold"] != e.threshold:
        out.append(f"{where}: threshold {alert['threshold']}, expected {e.threshold}")
    if window is not None and alert["windowSeconds"] != window:
        out.append(f"{where}: windowSeconds {alert['windowSeconds']}, expected {window:g}")
    evidence = [tickets[t] for t in named]
    count = distinct_count(e.pattern, evidence)
    if alert["count"] != count:
        out.append(f"{where}: count {alert['count']}, its tickets count {count}")
    split = e.pattern == "SPLIT_ORDERS"
    total, cap = _amount(alert.get("total")), _amount(alert.get("limit"))
    if split:
        out.extend(_check_split(where, evidence, total, cap, limit))
    else:
        if total is not None or cap is not None:
            out.append(f"{where}: limit {cap} and total {total}, expected none")
        if count <= e.threshold:
            out.append(f"{where}: count {count} does not cross {e.threshold}")
        elif crosses(e.pattern, evidence[:-1], e.threshold):
            out.append(f"{where}: not the first crossing (it crosses without its last ticket)")
    at = [times.get(t) for t in named]
    if all(a is not None for a in at):
        known = [a for a in at if a is not None]
        if sorted(zip(known, named, strict=True)) != list(zip(known, named, strict=True)):
            out.append(f"{where}: tickets not in time order")
        first, last = min(known), max(known)
        window_of = (parse_iso_ms(alert["windowStart"]), parse_iso_ms(alert["windowEnd"]))
        if window_of != (first, last):
            out.append(
                f"{where}: window {alert['windowStart']}..{alert['windowEnd']}, its tickets' "
                f"times {iso_ms(first)}..{iso_ms(last)}"
            )
        if alert["alertId"] != f"{e.pattern}:{e.key_digest}:{first}":
            out.append(f"{where}: alertId, expected {e.pattern}:{e.key_digest}:{first}")
    return out


def _check_split(
    where: str,
    evidence: Sequence[AlertTicket],
    total: Decimal | None,
    cap: Decimal | None,
    limit: Decimal,
) -> list[str]:
    """A SPLIT_ORDERS alert's own mismatches: one consignee, the limit, the total."""
    out: list[str] = []
    if len({(t.a, t.b) for t in evidence}) > 1:
        out.append(f"{where}: orders to more than one consignee")
    if cap != limit:
        out.append(f"{where}: limit {cap}, expected {limit}")
    low = sum((min(t.values) for t in evidence), Decimal(0))
    high = sum((max(t.values) for t in evidence), Decimal(0))
    if total is None or not low <= total <= high:
        added = f"{low}" if low == high else f"{low} to {high}"
        out.append(f"{where}: total {total}, its orders add up to {added}")
    elif len(evidence) < 2 or total <= limit:  # noqa: PLR2004 - more than one order
        out.append(f"{where}: {len(evidence)} orders of {total} do not cross {limit}")
    elif crosses("SPLIT_ORDERS", evidence[:-1], 1, limit, value=_min_value):
        out.append(f"{where}: not the first crossing (it crosses without its last order)")
    return out


def _min_value(ticket: AlertTicket) -> Decimal:
    """The least dutiable value a ticket's sightings carried."""
    return min(ticket.values)
