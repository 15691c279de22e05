"""The connect provider: fresh params and auth token before every connection attempt.

libphx asks for them on one of its threads through a C callback; the callback only hands the
request to the socket's event loop (``call_soon_threadsafe``), where the user's provider runs,
synchronous or ``async``, and its answer goes back with ``phx_provide_complete``. This is the one
callback the binding registers with C, and no user code runs on libphx's threads.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Union

from ._lib import ffi, lib

__all__ = ["ConnectCredentials", "ConnectProvider"]


@dataclass(frozen=True)
class ConnectCredentials:
    """What one connection attempt sends: the connect params (query string) and the auth token
    (``Sec-WebSocket-Protocol``, as Phoenix 1.8 reads it). They replace the socket's ``params``
    and ``auth_token`` for that attempt."""

    params: Mapping[str, Union[str, int, float, bool]] = field(default_factory=dict)
    auth_token: Union[str, None] = None

    def __repr__(self) -> str:  # never show the secrets
        return f"ConnectCredentials(params=<{len(self.params)} redacted>, auth_token=<redacted>)"


#: A provider: called on the socket's event loop before every connection attempt.
ConnectProvider = Callable[[], Union[ConnectCredentials, Awaitable[ConnectCredentials]]]


def _fail(request: Any, reason: str) -> None:
    lib.phx_provide_fail(request, reason.encode())


class _Provider:
    """Owns the C callback (kept alive as long as the C socket) and answers its requests."""

    def __init__(self, fn: ConnectProvider) -> None:
        self.fn = fn
        self.loop: asyncio.AbstractEventLoop | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.c_callback = ffi.callback("void(void *, phx_provide_t *)", self._on_request)

    def _on_request(self, _user_data: Any, request: Any) -> None:
        # On a libphx thread: hand the request to the loop, nothing else.
        loop = self.loop
        if loop is None or loop.is_closed():
            _fail(request, "no event loop")
            return
        try:
            loop.call_soon_threadsafe(self._start, request)
        except RuntimeError:
            _fail(request, "event loop closed")

    def _start(self, request: Any) -> None:
        task = asyncio.ensure_future(self._answer(request))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _answer(self, request: Any) -> None:
        try:
            result = self.fn()
            if inspect.isawaitable(result):
                result = await result
            if not isinstance(result, ConnectCredentials):
                raise TypeError("the connect provider must return ConnectCredentials")
            params = (
                json.dumps(dict(result.params), separators=(",", ":")).encode()
                if result.params
                else ffi.NULL
            )
            token = ffi.NULL if result.auth_token is None else result.auth_token.encode()
        except BaseException as exc:
            # Only the type: the message could quote a secret, and libphx logs the reason.
            _fail(request, f"the connect provider raised {type(exc).__name__}")
            if not isinstance(exc, Exception):
                raise
            return
        if lib.phx_provide_complete(request, params, token) != 0:
            _fail(request, "the connect provider returned invalid params or token")
