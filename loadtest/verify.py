"""Compare what sandan answered with a plan's ground truth: pure, no I/O.

:func:`verify` takes the decoded JSON objects read from ``cbec.release`` + ``cbec.divert``
(decisions) and from ``cbec.rejected`` (rejections), with the contract's field names, and returns
a :class:`Report`: counts, and one line per mismatch. Decisions are matched per (ticket,
revision): decision, the distinct reason codes, ``missing``, and ``fullTax`` on a release.
Rejections are compared as a multiset of (code, docType, guid).

A run that delays records (a broker restarted under the load) may move a ticket's documents
across its window's edge, so that the plan's truth no longer holds for it: the caller names such
tickets ``moved`` (measured from the records' append times). Their decisions and the rejections
of their documents are not compared, only checked for what holds whatever the timing: each
ticket decided, no revision decided twice, released at most once, revisions numbered 1..n, no
rejection twice.
"""

from __future__ import annotations

import contextlib
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec
import orjson

from loadtest.truth import ExpectedDecision, Plan

__all__ = ("Report", "perfect_outputs", "verify")


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

    @property
    def ok(self) -> bool:
        """True when every decision and rejection is as planned."""
        return not self.mismatches


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
) -> Report:
    """Check every decision and rejection seen against the plan (those of ``moved`` tickets
    only for exactly once, see above)."""
    mismatches: list[str] = []
    seen: dict[str, dict[int, list[Mapping[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    kinds: Counter[str] = Counter()
    diverted_by_code: Counter[str] = Counter()
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
        if key[2] in moved_guids:
            if got[key] > 1:
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


def perfect_outputs(plan: Plan) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The decisions and rejections a perfect engine would emit for ``plan``, reduced to the
    fields :func:`verify` reads (for tests and dry runs of a report)."""
    decisions: list[dict[str, Any]] = []
    for revisions in plan.decisions.values():
        for e in revisions:
            record: dict[str, Any] = {"ticketId": e.ticket_id, "decision": e.decision}
            record |= {"revision": e.revision, "fullTax": e.full_tax}
            if e.decision == "DIVERT":
                record["reasons"] = [{"code": c, "detail": "", "fields": {}} for c in e.codes]
                record["missing"] = list(e.missing)
            decisions.append(record)
    rejections = [{"code": r.code, "docType": r.doc_type, "guid": r.guid} for r in plan.rejections]
    return decisions, rejections
