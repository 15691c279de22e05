"""phx: an asyncio client for Phoenix Channels V2, over libphx's C ABI.

The API is that of the Dart ``dart_phoenix_socket`` client, in asyncio form::

    import asyncio
    from phx import PhoenixSocket

    async def main() -> None:
        async with PhoenixSocket("ws://localhost:4000/socket/websocket",
                                 params={"token": "my-user-token"}) as socket:
            await socket.connect()
            channel = socket.channel("room:lobby")
            messages = channel.messages          # subscribe before join: nothing is missed
            await channel.join()
            await channel.push("new_msg", {"body": "hello"})
            async for msg in messages:
                print(f"{msg.event}: {msg.payload}")
                break
            await channel.leave()
            await socket.disconnect()

    asyncio.run(main())

``join()``, ``push()`` and ``leave()`` start at once and return a ``PhoenixFuture`` (an
``asyncio.Future`` with ``ignore()`` for fire-and-forget). Failures: ``PhoenixException``
(server refused, ``"Socket disconnected"``, ``"Channel left before join completed"``, ...),
``TimeoutError`` (no reply within 10 s), ``StateError`` (join twice, push before join or on a
closed or leaving channel).
"""

from ._client import PhoenixChannel, PhoenixSocket
from ._lib import library_path
from ._provider import ConnectCredentials, ConnectProvider
from ._stream import Subscription
from ._types import (
    DisconnectReason,
    Payload,
    PhoenixChannelState,
    PhoenixException,
    PhoenixFuture,
    PhoenixMessage,
    PhoenixSocketState,
    ReasonKind,
    StateError,
    Status,
)

__all__ = [
    "ConnectCredentials",
    "ConnectProvider",
    "DisconnectReason",
    "Payload",
    "PhoenixChannel",
    "PhoenixChannelState",
    "PhoenixException",
    "PhoenixFuture",
    "PhoenixMessage",
    "PhoenixSocket",
    "PhoenixSocketState",
    "ReasonKind",
    "StateError",
    "Status",
    "Subscription",
    "__version__",
    "library_path",
    "libphx_version",
]


def libphx_version() -> str:
    """The version of the loaded libphx (``"MAJOR.MINOR.PATCH"``)."""
    from ._lib import ffi, lib

    return str(ffi.string(lib.phx_version()).decode())


try:
    from importlib.metadata import version as _dist_version

    __version__: str = _dist_version("phx")
except Exception:  # running from a source tree
    __version__ = "0.0.0"
