"""What every part of the ledger shares: a repository bound either to the engine (each call
is its own transaction, as short as the statement) or to one transaction a caller opened
with :meth:`scheduler.ledger.Ledger.transaction` (several calls, committed together)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine

__all__ = ["Bound"]


class Bound:
    """A repository of one kind of record, over an engine or over an open transaction."""

    __slots__ = ("_bind",)

    def __init__(self, bind: Engine | Connection) -> None:
        self._bind = bind

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        """A transaction that writes: the caller's, or one of its own, committed on exit."""
        if isinstance(self._bind, Connection):
            yield self._bind
        else:
            with self._bind.begin() as connection:
                yield connection

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        """A connection to read with: the caller's transaction, or one of its own."""
        if isinstance(self._bind, Connection):
            yield self._bind
        else:
            with self._bind.connect() as connection:
                yield connection

    @property
    def _dialect(self) -> str:
        return self._bind.dialect.name
