"""What a part of the fleet store mixed into ``SqlStore`` may call: its lock, statements and
transactions (``SqlStore`` and its dialects supply them). A leaf module, so that the parts in
``auth/``, ``exports/`` and ``rollouts/`` need not import the store package (which imports them).
"""

from __future__ import annotations

import threading
from contextlib import AbstractContextManager
from typing import Any

__all__ = ["StoreHooks"]


class StoreHooks:
    _lock: threading.Lock

    def _run(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        """One statement (``?`` placeholders, made the dialect's)."""
        raise NotImplementedError

    def _transaction(self) -> AbstractContextManager[None]:
        raise NotImplementedError

    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        """The rows of a query as dicts, under the store's lock in a transaction."""
        raise NotImplementedError
