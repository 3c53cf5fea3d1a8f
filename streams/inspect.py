"""``sandan inspect``'s text: a worker's lookup answers (streams/lookup.py) as lines for a
person. Pure; the answers arrive already masked."""

from __future__ import annotations

import textwrap
from typing import Any

import msgspec

from streams.lookup import QuotaAnswer, TicketAnswer

__all__ = ("render_error", "render_quota", "render_ticket")

_decode_ticket = msgspec.json.Decoder(TicketAnswer).decode
_decode_quota = msgspec.json.Decoder(QuotaAnswer).decode
_decode_error = msgspec.json.Decoder(dict[str, Any]).decode
_WIDTH = 100


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return f"{len(value)} lines"
    return str(value)


def render_ticket(body: bytes) -> str:
    """A ticket's answer as lines for a person; raise ``msgspec.DecodeError`` if it is not one."""
    answer = _decode_ticket(body)
    head = f"ticket {answer.ticketId}: {answer.status}"
    if answer.revision is not None:
        head += f", revision {answer.revision}"
    lines = [head + f" (partition {answer.partition}, answered by {answer.servedBy})"]
    if answer.firstSeenAt is not None:
        window = f"closes {answer.windowClosesAt}" if answer.windowClosesAt else "closed"
        lines.append(
            f"  first seen {answer.firstSeenAt}, completed {answer.completedAt or '-'}, "
            f"window {window}, expires {answer.expiresAt}"
        )
    if answer.remembered is not None:
        kept = answer.remembered
        lines.append(
            f"  remembered as released until {kept.until} (waybill {kept.logisticsCode} "
            f"{kept.logisticsNo}, {kept.guidsSeen} guids)"
        )
    if answer.missing:
        lines.append(f"  missing: {', '.join(answer.missing)}")
    lines.append("documents:")
    for kind, versions in answer.documents.items():
        if not versions:
            lines.append(f"  {kind:<9}  none")
        for v in versions:
            sender = f"xml {v.copCode}" if v.format == "xml" else "json"
            lines.append(
                f"  {kind:<9}  {v.guid}  appType {v.appType}  appTime {v.appTime}  "
                f"appStatus {v.appStatus}  {sender}  {v.state}"
            )
            fields = " ".join(f"{name}={_shown(value)}" for name, value in v.fields.items())
            lines += textwrap.wrap(
                fields, _WIDTH, initial_indent=" " * 13, subsequent_indent=" " * 13
            )
    lines.append("decisions:" if answer.decisions else "decisions: none")
    for d in answer.decisions:
        reasons = f"  {', '.join(d.reasons)}" if d.reasons else ""
        lines.append(f"  revision {d.revision}  {d.decision:<7}  {d.decidedAt}{reasons}")
    if answer.reviews:
        lines.append("reviews:")
    for r in answer.reviews:
        outcome = f"REFUSED {r.code}" if r.code else r.result
        lines.append(
            f"  revision {r.revision}  {r.action:<18}  {r.at}  {outcome}  "
            f"by {r.reviewer}  ({r.reviewId})"
        )
    return "\n".join(lines)


def render_quota(body: bytes) -> str:
    """A quota answer as lines for a person; raise ``msgspec.DecodeError`` if it is not one."""
    q = _decode_quota(body)
    count = "not counted by the ledger" if q.releasedTickets is None else str(q.releasedTickets)
    return (
        f"buyer {q.buyer} in {q.year}: released {q.released} CNY, remaining {q.remaining} CNY "
        f"of the annual limit {q.annualLimit} CNY\n"
        f"  released tickets: {count} (partition {q.partition}, answered by {q.servedBy})"
    )


def render_error(worker: str, status: int, body: bytes) -> str:
    """One line for an answer that is not 200."""
    try:
        error = _decode_error(body)
    except msgspec.DecodeError:
        error = {}
    if isinstance(error.get("error"), str) and isinstance(error.get("detail"), str):
        return f"the worker at {worker} answered {status} {error['error']}: {error['detail']}"
    return f"the worker at {worker} answered {status} without a lookup answer"
