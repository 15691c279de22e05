"""Values of the phx API: states, messages, statuses, exceptions and the operation future."""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, Union

__all__ = [
    "DisconnectReason",
    "Payload",
    "PhoenixChannelState",
    "PhoenixException",
    "PhoenixFuture",
    "PhoenixMessage",
    "PhoenixSocketState",
    "ReasonKind",
    "StateError",
    "Status",
]

#: A payload as the server sent it: decoded JSON (usually a ``dict``) or the bytes of a binary frame.
Payload = Union[Any, bytes]

_T = TypeVar("_T")


class PhoenixSocketState(enum.Enum):
    """A socket's connection state (``PhoenixSocket.state``, items of ``PhoenixSocket.states``)."""

    #: The first connection attempt after ``connect()`` is under way.
    connecting = "connecting"
    #: The WebSocket is open.
    connected = "connected"
    #: Not connected and not trying to be: initially, and after ``disconnect()``.
    disconnected = "disconnected"
    #: A connection the client did not close was lost; attempts follow the reconnect schedule.
    reconnecting = "reconnecting"


class PhoenixChannelState(enum.Enum):
    """A channel's state (``PhoenixChannel.state``, items of ``PhoenixChannel.states``)."""

    closed = "closed"
    joining = "joining"
    joined = "joined"
    leaving = "leaving"
    errored = "errored"


class Status(enum.IntEnum):
    """libphx's status codes (``phx_status_t``), carried by exceptions as ``code``."""

    OK = 0
    REPLY = 1
    TIMEOUT = 2
    DISCONNECTED = 3
    CHANNEL_ERRORED = 4
    CLOSED = 5
    LEFT_BEFORE_JOIN = 6
    STATE = 7
    INVALID_ARGUMENT = 8
    WRONG_THREAD = 9
    AGAIN = 10
    INTERNAL = 11
    QUEUE_FULL = 12
    BUFFER_FULL = 13
    TOO_MANY_CHANNELS = 14


class ReasonKind(enum.IntEnum):
    """Why the last connection ended (``DisconnectReason.kind``)."""

    NONE = 0
    CLOSE_FRAME = 1
    HTTP_STATUS = 2
    HEARTBEAT_TIMEOUT = 3
    IO = 4
    CONNECT_TIMEOUT = 5
    PROTOCOL = 6
    CLIENT_CLOSED = 7
    #: Stopped reconnecting after ``max_refusals`` refused upgrades; ``code`` is the last status.
    GAVE_UP = 8
    #: The connect provider failed or did not answer within ``provider_timeout``.
    PROVIDER = 9
    FRAME_TOO_LARGE = 10


@dataclass(frozen=True)
class DisconnectReason:
    """Why a socket's last connection ended or its last attempt failed."""

    #: What happened.
    kind: ReasonKind
    #: The close code (``CLOSE_FRAME``) or HTTP status (``HTTP_STATUS``); 0 otherwise.
    code: int
    #: A human-readable description, e.g. ``"upgrade refused: HTTP 403"``.
    text: str
    #: For ``HTTP_STATUS``: the response's ``Retry-After`` in seconds (the next attempt waits at
    #: least that long); ``None`` when absent.
    retry_after: float | None = None


@dataclass(frozen=True)
class PhoenixMessage:
    """An application message a channel received (control events are never delivered).

    ``payload`` is the decoded JSON (a ``dict`` for Phoenix payloads) or ``bytes`` for a binary
    frame.
    """

    #: ``None`` for server broadcasts.
    join_ref: str | None
    #: ``None`` for server pushes that expect no reply.
    ref: str | None
    topic: str
    event: str
    payload: Payload


class PhoenixException(Exception):
    """A join or push failed: the server replied with a status other than ``"ok"``, or the
    operation ended without a reply.

    ``message`` is the server's reply status (``"error"``, ``"forbidden"``, ...) when the server
    replied, otherwise one of ``"Socket disconnected"`` (the socket dropped while the push was in
    flight; the server may or may not have received it), ``"Channel left before join completed"``,
    ``"Channel errored"`` (the channel crashed on the server while the push was in flight),
    ``"Channel closed"`` (``disconnect()``, a server ``phx_close``, or a failed join ended the
    operation) and ``"Socket closed"`` (the socket object was closed). ``response`` is the
    server's response body when it replied, else ``None``; ``code`` is libphx's status.
    """

    #: The text of the exception (see the class documentation for the fixed texts).
    message: str
    #: The server's response body, if the server replied.
    response: Payload | None
    #: libphx's status (``Status.REPLY`` when the server replied).
    code: Status

    def __init__(self, message: str, response: Payload | None = None, code: Status = Status.REPLY):
        super().__init__(message, response)
        self.message = message
        self.response = response
        self.code = code

    def __str__(self) -> str:
        return self.message if self.response is None else f"{self.message}: {self.response!r}"

    def __repr__(self) -> str:
        return f"PhoenixException({self.message!r}, {self.response!r})"


class StateError(RuntimeError):
    """The call is not allowed in the object's current state: ``join()`` twice on one instance,
    ``push()`` before ``join()`` or on a closed or leaving channel, or any use of a closed
    socket or channel object."""

    #: What was wrong.
    message: str

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class PhoenixFuture(asyncio.Future, Generic[_T]):  # type: ignore[type-arg]
    """The outcome of a join, push or leave: an ``asyncio.Future`` that is already running when
    it is returned (the operation started when the method was called; awaiting it only waits).

    ``ignore()`` is for fire-and-forget operations: the outcome, success or failure, is
    discarded without "exception was never retrieved" warnings.
    """

    def ignore(self) -> PhoenixFuture[_T]:
        """Discards the outcome, errors included (like Dart's ``Future.ignore()``)."""
        self.add_done_callback(_retrieve)
        return self


def _retrieve(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()
