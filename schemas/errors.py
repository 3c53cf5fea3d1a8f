"""Input errors. Each carries the contract's rejection ``code`` (see docs/contract.md).

SandanError
 └── InputError (code)
      └── SchemaError          code "SCHEMA": the record does not decode to its document type
"""

from __future__ import annotations

__all__ = ("InputError", "SandanError", "SchemaError")


class SandanError(Exception):
    """Root of sandan's exceptions."""


class InputError(SandanError):
    """A record sandan does not accept; ``code`` is the contract's rejection code."""

    code = "INPUT"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class SchemaError(InputError):
    """The record is not a valid document of its topic's type."""

    code = "SCHEMA"
