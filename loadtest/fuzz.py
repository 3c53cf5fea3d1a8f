"""The decoders' fuzzer: hostile inputs through the worker's intake path, counted per kind.

    python -m loadtest.fuzz --inputs 1000000 --seed 1 --report reports/fuzz-decoders.md
    python -m loadtest.fuzz --seed 1 --index 4711      # one input again, with its traceback

Input ``i`` of a run is :func:`loadtest.hostile.hostile` drawn from ``random.Random(seed *
2**32 + i)``, so any input can be made again from the seed and its index. Each goes through
:func:`check`, what the worker does with a consumed record up to its outputs: the decoders
(``schemas.codec.decode_document``, ``schemas.ceb_xml.decode_message``: a document or
SchemaError), ``streams.intake.read``, and for every rejection its ``cbec.rejected`` JSON and
its receipt. The property: every input ends as documents or rejections ``SCHEMA`` (``DRAFT``
where the mutation left a valid draft); a record rejected whole carries its original bytes;
a document taken from an XML node decodes again from the JSON it goes on as. Any other
exception, or a broken property, is a finding: printed, its input saved, and the run fails.

Bounded: a watchdog (faulthandler) ends the process with every thread's traceback if one input
runs for ``--hang`` seconds, an input slower than ``--slow`` seconds is a finding, and
``--time-limit`` stops the run early (then it fails: fewer inputs than asked).
"""

from __future__ import annotations

import argparse
import base64
import faulthandler
import platform
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from random import Random
from typing import NamedTuple, TypeVar

import msgspec
from lxml import etree

from loadtest.hostile import KIND_NAMES, Hostile, Seeds, hostile, make_seeds
from loadtest.hostile.base import MAX_DOCUMENT_BYTES, MAX_MESSAGE_BYTES
from schemas.ceb_xml import decode_message, encode_message, is_xml
from schemas.codec import decode_document, encode_json, readable_fields
from schemas.documents import DOCUMENT_TYPES, DocType
from schemas.errors import SchemaError
from schemas.keys import ticket_id
from schemas.outputs import Source
from schemas.receipts import encode_receipt, returned, stored
from streams.intake import Incoming, Refused, read

__all__ = (
    "OUTCOMES",
    "ContractError",
    "Finding",
    "Garbage",
    "Result",
    "check",
    "garbage",
    "main",
    "make",
    "run",
)

OUTCOMES = ("rejected", "nodes rejected", "accepted")
_SOURCE = Source(topic="cbec.fuzz", partition=0, offset=0, timestamp=1_795_490_400_000)
_NOW_MS = 1_795_490_400_000
_COP_CODE = "3301980FZZ"
# A value with more brackets than this is decoded again from deeper in the stack, where a
# worker's or the gateway's callers leave msgspec less of Python's recursion limit.
_NESTED = 64
_DEEP_STACK = 500
T = TypeVar("T")
MAX_SAVED = 100  # inputs of findings written to the findings folder, at most
_RECEIPT_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


class ContractError(Exception):
    """An input the intake path answered in a way the contract does not allow."""


def make(seed: int, index: int, seeds: Seeds) -> Hostile:
    """Input ``index`` of the run with ``seed``."""
    return hostile(Random(seed * 2**32 + index), seeds)


class Garbage(NamedTuple):
    """A hostile input the intake path rejects whole, and the guid its rejection names."""

    made: Hostile
    guid: str | None  # where the bytes let intake read one (a JSON record's), else None


def garbage(seed: int, count: int, *, max_size: int, huge: int = 0) -> list[Garbage]:
    """The first ``count`` inputs of the run with ``seed`` that the worker rejects ``SCHEMA``
    whole (the record itself, with its bytes): ``huge`` of them over the message limit, the
    others at most ``max_size`` bytes. For live tests and measurements, where each must have
    one known outcome."""
    seeds = make_seeds(seed)
    small: list[Garbage] = []
    large: list[Garbage] = []
    index = 0
    while len(small) < count - huge or len(large) < huge:
        made = make(seed, index, seeds)
        index += 1
        size = len(made.value)
        wanted = large if size > MAX_MESSAGE_BYTES else small if size <= max_size else None
        if wanted is None or len(wanted) == (huge if wanted is large else count - huge):
            continue
        record = Incoming(made.doc_type, None, made.value, _SOURCE)
        items = read(record, MAX_DOCUMENT_BYTES, MAX_MESSAGE_BYTES)
        if len(items) == 1 and isinstance(refused := items[0], Refused):
            rejection = refused.rejection
            if rejection.code == "SCHEMA" and rejection.node is None:
                wanted.append(Garbage(made, rejection.guid))
    return small + large


def check(doc_type: DocType, value: bytes) -> str:
    """Put one record value through the intake path; returns its outcome (one of OUTCOMES).

    Raises ContractError when the answer breaks the contract; any other exception is the code's.
    """
    xml = is_xml(value)
    try:  # the decoder read() does not call for this value must answer too
        if xml:
            decode_document(doc_type, value, MAX_DOCUMENT_BYTES)
        else:
            decode_message(doc_type, value, MAX_MESSAGE_BYTES)
    except SchemaError as exc:
        _expect_detail(exc.detail)
    if value.count(b"[") + value.count(b"{") > _NESTED:
        shallow = _json_outcome(doc_type, value)
        if _deeper(_DEEP_STACK, lambda: _json_outcome(doc_type, value)) != shallow:
            raise ContractError("the JSON decoding depends on the caller's stack depth")
    items = read(Incoming(doc_type, b"key", value, _SOURCE), MAX_DOCUMENT_BYTES, MAX_MESSAGE_BYTES)
    if not items:
        raise ContractError("no document and no rejection")
    whole_schema, schema_nodes = False, 0
    for item in items:
        if isinstance(item, Refused):
            whole = _check_refused(item, value)
            if item.rejection.code == "SCHEMA":
                whole_schema |= whole
                schema_nodes += not whole
            continue
        incoming, document = item
        if type(document) is not DOCUMENT_TYPES[doc_type]:
            raise ContractError(f"a {type(document).__name__} on the {doc_type} topic")
        if incoming.origin is not None:  # from an XML node: goes on as its JSON
            again = decode_document(doc_type, incoming.value, MAX_DOCUMENT_BYTES)
            if again != document:
                raise ContractError("a node's document differs once decoded from its JSON")
        try:  # its fields may go out in either format (a ticket's id in an XML receipt)
            encode_message(doc_type, [document], cop_code=_COP_CODE)
            ticket = ticket_id(getattr(document, "ebpCode", None), document.orderNo)
            for cop_code in (None, _COP_CODE):  # its receipt as JSON and as XML
                addressed = stored(document, ticket=ticket, cop_code=cop_code, node=1, now_ms=0)
                encode_receipt(addressed)
        except ValueError as exc:
            raise ContractError(f"a document XML cannot carry was accepted: {exc}") from None
    if whole_schema and len(items) != 1:
        raise ContractError("a record rejected whole and something else too")
    if whole_schema:
        return "rejected"
    return "nodes rejected" if schema_nodes else "accepted"


def _json_outcome(doc_type: DocType, value: bytes) -> tuple[object, dict[str, str]]:
    try:
        decoded: object = decode_document(doc_type, value, MAX_DOCUMENT_BYTES)
    except SchemaError as exc:
        decoded = exc.detail
    return decoded, readable_fields(value)


def _deeper(frames: int, call: Callable[[], T]) -> T:
    """``call()`` from ``frames`` more frames down the stack."""
    return call() if frames <= 0 else _deeper(frames - 1, call)


def _expect_detail(detail: object) -> None:
    if not isinstance(detail, str) or not detail:
        raise ContractError(f"SchemaError without a detail: {detail!r}")


def _check_refused(item: Refused, value: bytes) -> bool:
    """Check one rejection and its outputs; returns whether it rejects the record whole."""
    rejection = item.rejection
    if rejection.code not in ("SCHEMA", "DRAFT"):
        raise ContractError(f"rejected {rejection.code}")
    _expect_detail(rejection.detail)
    whole = rejection.node is None
    if whole and rejection.raw != value:
        raise ContractError("a record rejected whole without its original bytes")
    if not whole and (not rejection.raw or rejection.messageGuid is None):
        raise ContractError("a node rejected without its bytes or its message's guid")
    encoded = msgspec.json.decode(encode_json(rejection))
    if base64.b64decode(encoded["raw"]) != rejection.raw:
        raise ContractError("the rejection record does not carry the bytes back")
    addressed = returned(
        rejection, cop_code=item.cop_code, xml=item.xml, ticket=None, now_ms=_NOW_MS
    )
    _, receipt, _ = encode_receipt(addressed)
    if item.xml:
        etree.fromstring(receipt, _RECEIPT_PARSER)  # well-formed, or XMLSyntaxError: a finding
    else:
        msgspec.json.decode(receipt)
    return whole


@dataclass
class KindTally:
    """What one kind's inputs came to."""

    inputs: int = 0
    formats: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    slowest_s: float = 0.0
    checking_s: float = 0.0
    bytes: int = 0


class Finding(msgspec.Struct):
    """An input that broke the property: how to make it again, and what happened."""

    index: int
    kind: str
    fmt: str
    doc_type: str
    size: int
    error: str
    saved: str | None = None


@dataclass
class Result:
    """A run's counts, times and findings."""

    seed: int
    asked: int
    inputs: int = 0
    kinds: dict[str, KindTally] = field(
        default_factory=lambda: {k: KindTally() for k in KIND_NAMES}
    )
    findings: list[Finding] = field(default_factory=list)
    elapsed_s: float = 0.0
    checking_s: float = 0.0
    slowest: tuple[float, int, str] = (0.0, -1, "")

    @property
    def ok(self) -> bool:
        """Every input asked for was checked and none broke the property."""
        return not self.findings and self.inputs == self.asked


def run(
    seed: int,
    inputs: int,
    *,
    seeds: Seeds | None = None,
    slow_s: float = 5.0,
    hang_s: float = 120.0,
    time_limit_s: float | None = None,
    findings_dir: Path | None = None,
    progress_s: float | None = None,
) -> Result:
    """Make and check ``inputs`` hostile inputs; see the module's docstring."""
    seeds = seeds or make_seeds(seed)
    result = Result(seed, inputs)
    started = last = time.perf_counter()
    try:
        for index in range(inputs):
            if index % 100 == 0:
                faulthandler.dump_traceback_later(hang_s, exit=True)
                now = time.perf_counter()
                if time_limit_s is not None and now - started > time_limit_s:
                    break
                if progress_s is not None and now - last >= progress_s:
                    last = now
                    print(f"  {index:,} inputs, {now - started:.0f}s", file=sys.stderr, flush=True)
            _one(result, make(seed, index, seeds), index, slow_s, findings_dir)
            result.inputs += 1
    finally:
        faulthandler.cancel_dump_traceback_later()
    result.elapsed_s = time.perf_counter() - started
    return result


def _one(result: Result, made: Hostile, index: int, slow_s: float, save: Path | None) -> None:
    tally = result.kinds[made.kind]
    tally.inputs += 1
    tally.formats[made.fmt] += 1
    tally.bytes += len(made.value)
    started = time.perf_counter()
    error = None
    try:
        tally.outcomes[check(made.doc_type, made.value)] += 1
    except Exception as exc:  # noqa: BLE001 - a fuzzer records whatever the code raises
        error = "".join(traceback.format_exception_only(exc)).strip()
    took = time.perf_counter() - started
    result.checking_s += took
    tally.checking_s += took
    tally.slowest_s = max(tally.slowest_s, took)
    if took > result.slowest[0]:
        result.slowest = (took, index, made.kind)
    if error is None and took > slow_s:
        error = f"slow: {took:.2f}s for one input"
    if error is not None:
        finding = Finding(index, made.kind, made.fmt, made.doc_type, len(made.value), error[:2000])
        if save is not None and len(result.findings) < MAX_SAVED:
            save.mkdir(parents=True, exist_ok=True)
            path = save / f"{result.seed}-{index}-{made.kind}-{made.doc_type}.bin"
            path.write_bytes(made.value)
            finding.saved = str(path)
        result.findings.append(finding)
        print(f"FINDING {msgspec.json.encode(finding).decode()}", file=sys.stderr, flush=True)


def report(result: Result, command: str) -> str:
    """The run as markdown: the command, the totals, a row per kind, the findings."""
    total_formats: Counter[str] = Counter()
    total_outcomes: Counter[str] = Counter()
    for tally in result.kinds.values():
        total_formats.update(tally.formats)
        total_outcomes.update(tally.outcomes)
    n = max(result.inputs, 1)
    versions = (
        f"Python {platform.python_version()}, msgspec {msgspec.__version__}, lxml "
        f"{etree.__version__} (libxml2 {'.'.join(map(str, etree.LIBXML_VERSION))})"
    )
    slowest, slow_index, slow_kind = result.slowest
    lines = [
        "# Decoders' fuzz run",
        "",
        f"Command: `{command}` ({versions}).",
        "",
        f"- inputs: **{result.inputs:,}** of {result.asked:,} asked, seed {result.seed}: "
        f"JSON {total_formats['json']:,}, XML {total_formats['xml']:,}",
        f"- findings: **{len(result.findings)}**"
        + (" (every input ended as a document or SCHEMA rejections)" if result.ok else ""),
        f"- outcomes: rejected whole {total_outcomes['rejected']:,}, message with rejected "
        f"nodes {total_outcomes['nodes rejected']:,}, still valid after the mutation "
        f"{total_outcomes['accepted']:,}",
        f"- elapsed: {result.elapsed_s:.0f} s ({result.inputs / max(result.elapsed_s, 1e-9):,.0f}"
        f" inputs/s), of which checking {result.checking_s:.0f} s "
        f"({result.checking_s / n * 1e6:.0f} µs an input) and making the inputs the rest",
        f"- slowest input: {slowest * 1000:.0f} ms (index {slow_index}, {slow_kind})",
        "",
        "| kind | inputs | JSON | XML | rejected whole | nodes rejected | still valid "
        "| mean size (bytes) | mean (µs) | slowest (ms) |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for name, tally in result.kinds.items():
        lines.append(
            f"| {name} | {tally.inputs:,} | {tally.formats['json']:,} | {tally.formats['xml']:,} "
            f"| {tally.outcomes['rejected']:,} | {tally.outcomes['nodes rejected']:,} "
            f"| {tally.outcomes['accepted']:,} | {tally.bytes // max(tally.inputs, 1):,} "
            f"| {tally.checking_s / max(tally.inputs, 1) * 1e6:,.0f} "
            f"| {tally.slowest_s * 1000:.1f} |"
        )
    if result.findings:
        lines += ["", "## Findings", ""]
        lines += [f"- `{msgspec.json.encode(f).decode()}`" for f in result.findings[:MAX_SAVED]]
    return "\n".join(lines) + "\n"


def _again(seed: int, index: int, save: Path | None) -> int:
    made = make(seed, index, make_seeds(seed))
    print(f"input {index}: {made.kind} {made.fmt} on {made.doc_type}, {len(made.value)} bytes")
    if save is not None:
        save.write_bytes(made.value)
    outcome = check(made.doc_type, made.value)  # raises with its traceback
    print(f"outcome: {outcome}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.fuzz", description=__doc__)
    parser.add_argument("--inputs", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--report", type=Path, help="write the markdown report here")
    parser.add_argument("--findings", type=Path, default=Path(".cache/fuzz"))
    parser.add_argument("--slow", type=float, default=5.0, help="seconds: a slower input fails")
    parser.add_argument("--hang", type=float, default=120.0, help="seconds: the watchdog")
    parser.add_argument("--time-limit", type=float, default=7200.0, help="seconds, in all")
    parser.add_argument("--index", type=int, help="make and check only this input, then stop")
    parser.add_argument("--save", type=Path, help="with --index: write the input here")
    args = parser.parse_args(argv)
    if args.index is not None:
        return _again(args.seed, args.index, args.save)
    command = f"python -m loadtest.fuzz --inputs {args.inputs} --seed {args.seed}"
    print(f"{command}: {args.inputs:,} inputs", file=sys.stderr, flush=True)
    result = run(
        args.seed,
        args.inputs,
        slow_s=args.slow,
        hang_s=args.hang,
        time_limit_s=args.time_limit,
        findings_dir=args.findings,
        progress_s=30.0,
    )
    text = report(result, command)
    print(text)
    if args.report is not None:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(text)
    return 0 if result.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
