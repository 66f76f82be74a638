"""An iterator that starts fetching its first item at once, in a thread, so a data pipeline's start-up (Ray Data's
planning, the split coordinator, the first blocks decoded) runs while the Trainer sets up instead of after it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Generic, TypeVar

T = TypeVar("T")
_END = object()


class EarlyStart(Generic[T]):
    """`iter(items)` whose first `next` was begun when this was made; the rest are fetched on demand, in the
    caller's thread. An error raised while fetching the first item is raised by the first `next`."""

    def __init__(self, items: Iterator[T]):
        self._items = items
        self._first: object = _END
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = threading.Thread(target=self._fetch, name="first-batch",
                                                                 daemon=True)
        self._thread.start()

    def _fetch(self) -> None:
        try:
            self._first = next(self._items, _END)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer's thread
            self._error = exc

    def __iter__(self) -> EarlyStart[T]:
        return self

    def __next__(self) -> T:
        if self._thread is None:
            return next(self._items)
        self._thread.join()
        self._thread = None
        if self._error is not None:
            raise self._error
        first, self._first = self._first, _END
        if first is _END:
            raise StopIteration
        return first  # type: ignore[return-value]
