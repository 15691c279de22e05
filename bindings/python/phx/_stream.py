"""Broadcast subscriptions: every subscriber gets every item published after it subscribed."""

from __future__ import annotations

import asyncio
import collections
import weakref
from types import TracebackType
from typing import Generic, TypeVar

__all__ = ["Broadcast", "Subscription"]

_T = TypeVar("_T")


class Subscription(Generic[_T]):
    """One subscriber's view of a broadcast: an async iterator over every item published from
    the moment it was created (items wait here until read; nothing is dropped).

    Iteration ends when the source ends (the channel closed for good, the socket object was
    closed) or when the subscription is closed with ``close()`` / ``async with`` /
    ``aclose()``. An abandoned subscription is unsubscribed when it is garbage collected.
    """

    def __init__(self, source: Broadcast[_T]):
        self._items: collections.deque[_T] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self._ended = source.ended
        self._source: Broadcast[_T] | None = source
        if not self._ended:
            source._subscribers.add(self)

    def __aiter__(self) -> Subscription[_T]:
        return self

    async def __anext__(self) -> _T:
        while not self._items:
            if self._ended:
                raise StopAsyncIteration
            loop = asyncio.get_running_loop()
            self._waiter = loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.popleft()

    def pending(self) -> int:
        """How many items are waiting to be read."""
        return len(self._items)

    def close(self) -> None:
        """Unsubscribes: iteration ends once the items already received are read."""
        if self._source is not None:
            self._source._subscribers.discard(self)
            self._source = None
        self._end()

    async def aclose(self) -> None:
        """``close()``, for ``contextlib.aclosing`` and async generator conventions."""
        self.close()

    async def __aenter__(self) -> Subscription[_T]:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ---- called by the source -------------------------------------------------------------

    def _put(self, item: _T) -> None:
        self._items.append(item)
        self._wake()

    def _end(self) -> None:
        self._ended = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class Broadcast(Generic[_T]):
    """The publishing side: subscribers are held weakly, so abandoned ones go away."""

    def __init__(self) -> None:
        self._subscribers: weakref.WeakSet[Subscription[_T]] = weakref.WeakSet()
        self.ended = False

    def subscribe(self) -> Subscription[_T]:
        return Subscription(self)

    def publish(self, item: _T) -> None:
        for sub in list(self._subscribers):
            sub._put(item)

    def end(self) -> None:
        self.ended = True
        for sub in list(self._subscribers):
            sub._end()
        self._subscribers.clear()
