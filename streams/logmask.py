"""Personal data never reaches a log: a filter on every handler that masks it.

sandan's own code logs coordinates, not payloads; the libraries under it do not promise as much
(aiokafka logs every request and response at DEBUG, record batches included, and a SASL PLAIN
token holds the password). So every record, whatever logged it and at whatever level, has its
message formatted and masked before any handler writes it; its exception text and stack too:

- bytes literals (``b'...'``: record batches, raw values, SASL tokens) become ``b'<masked>'``;
- the value after a personal field name (``schemas.documents.PERSONAL_FIELDS``) in JSON,
  escaped JSON, Python reprs, ``name=value`` and XML elements becomes ``***``;
- then anywhere: resident ID numbers (18 characters, or the old 15 digits), mainland mobile
  numbers (``1[3-9]`` and 9 digits, maybe ``+86``) and landlines written with an area code
  (``010-12345678``, ``(0755)1234567``), digits full-width or not;
- and the secrets given (the SASL password).

``install(settings)`` adds the filter to the root logger's handlers: every entry point calls it
once its logging is set up (``sandan worker``, ``sandan gateway``, the other commands).
"""

from __future__ import annotations

import logging
import re
import traceback
from collections.abc import Iterable
from typing import Any

from schemas.documents import PERSONAL_FIELDS
from streams.settings import Settings

__all__ = ("MASK", "PersonalDataFilter", "install", "mask")

MASK = "***"

_BYTES = re.compile(r"""(?<![\w\\])b(?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")""", re.DOTALL)
_NAMES = "|".join(sorted(PERSONAL_FIELDS, key=len, reverse=True))
_FIELD = re.compile(
    rf"""
    (?P<head>\b(?:{_NAMES})\b
        \\?["']?\s*[:=]\s*)                     # "name": / name= / 'name': / \\"name\\":
    (?P<value>
        \\"(?:[^\\]|\\(?!"))*\\"                # an escaped JSON string: \\"...\\"
      | "(?:[^"\\]|\\.)*"                       # a JSON or Python string
      | '(?:[^'\\]|\\.)*'                       # a Python string
      | \[[^\]]*\]                              # a list of values
      | [^\s,;)}}\]<'"]+                        # a bare value
    )?""",
    re.VERBOSE,
)
_ELEMENT = re.compile(rf"(<(?:[\w.-]+:)?(?:{_NAMES})>)[^<]+")
# \d is any decimal digit, full-width ones too (a classic data-entry fault); so are the
# others here: \uff0b +, \uff0d -, \uff08 (, \uff09 ), \uff10... 0..., \uff38 X, \uff58 x.
_ID = re.compile(r"(?<![0-9A-Za-z])(?:\d{17}[\dXx\uff38\uff58]|\d{15})(?![0-9A-Za-z])")
_MOBILE = re.compile(
    r"(?<!\d)(?:[+\uff0b]?[8\uff18][6\uff16][-\uff0d ]?)?[1\uff11][3-9\uff13-\uff19]\d{9}(?!\d)"
)
_LANDLINE = re.compile(
    r"(?<!\d)(?:[(\uff08][0\uff10]\d{2,3}[)\uff09]\s?|[0\uff10]\d{2,3}[-\uff0d])\d{7,8}(?!\d)"
)
_QUOTES = ('\\"', '"', "'")


def _masked_field(match: re.Match[str]) -> str:
    value = match.group("value")
    if not value:
        return match.group(0)
    for quote in _QUOTES:
        if value.startswith(quote):
            return f"{match.group('head')}{quote}{MASK}{quote}"
    if value.startswith("["):
        return f"{match.group('head')}[{MASK}]"
    return f"{match.group('head')}{MASK}"


def mask(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` without personal data, payload bytes or ``secrets``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    text = _BYTES.sub("b'<masked>'", text)
    text = _FIELD.sub(_masked_field, text)
    text = _ELEMENT.sub(rf"\1{MASK}", text)
    text = _ID.sub(MASK, text)
    text = _MOBILE.sub(MASK, text)
    return _LANDLINE.sub(MASK, text)


class _Shown(str):
    """A masked text that reprs as itself (for formatters that repr extra data)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return str(self)


class PersonalDataFilter(logging.Filter):
    """Masks each record's message (formatted with its args), exception and stack text, and
    the ``data`` extra mode/faust formatters print; lets every record through."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = tuple(secret for secret in secrets if secret)

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_sandan_masked", False):  # another handler's filter did it
            return True
        try:
            message = record.getMessage()
        except (TypeError, ValueError, KeyError):  # a bad format: show its parts, masked
            message = f"{record.msg!s} {record.args!r}"
        record.msg, record.args = mask(message, self.secrets), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        if record.exc_text:
            # The text stands in for the exception: no formatter renders it again unmasked.
            record.exc_text, record.exc_info = mask(record.exc_text, self.secrets), None
        if record.stack_info:
            record.stack_info = mask(record.stack_info, self.secrets)
        data: Any = record.__dict__.get("data")
        if isinstance(data, dict):
            record.data = {k: _Shown(mask(repr(v), self.secrets)) for k, v in data.items()}
        record._sandan_masked = True
        return True


def install(
    settings: Settings | None = None, logger: logging.Logger | None = None
) -> PersonalDataFilter:
    """Add the filter (masking the settings' SASL password too) to every handler of ``logger``
    (default: the root logger) that has none yet; return it."""
    password = settings.kafka_sasl_password if settings is not None else None
    log_filter = PersonalDataFilter([password.reveal()] if password is not None else [])
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, PersonalDataFilter) for f in handler.filters):
            handler.addFilter(log_filter)
    return log_filter
