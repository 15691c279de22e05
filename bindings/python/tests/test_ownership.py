"""Ownership and delivery: handles freed deterministically (close, async with) or by the finalizer,
what a closed object does, delivery through the event queue on the loop's thread, binary payloads,
overflow, the installed package."""

from __future__ import annotations

import asyncio
import gc
import os
import pydoc
import subprocess
import sys
import threading
import weakref
from pathlib import Path
from typing import Any

import pytest

import phx
from conftest import ROOT, Server, next_item, until
from phx import PhoenixChannelState, PhoenixException, PhoenixSocket, PhoenixSocketState, StateError


async def connections(server: Server) -> int:
    return int((await server.stats())["connections"])


async def test_close_frees_fails_pending_and_ends_streams(make_socket: Any, server: Server) -> None:
    socket = make_socket()
    await socket.connect()
    channel = socket.channel("room:lobby")
    await channel.join()
    messages, states, channel_states = channel.messages, socket.states, channel.states
    pending = channel.push("noreply", {})
    socket.close()
    assert socket.closed and socket.state is PhoenixSocketState.disconnected
    with pytest.raises(PhoenixException) as info:
        await pending
    assert info.value.message == "Socket closed"
    for sub in (messages, states, channel_states):
        assert [item async for item in sub] == []  # ended
    assert channel.state is PhoenixChannelState.closed
    with pytest.raises(StateError):
        await channel.push("echo", {})
    with pytest.raises(StateError):
        socket.channel("room:lobby")
    with pytest.raises(StateError):
        await socket.connect()
    socket.close()  # idempotent
    await socket.disconnect()  # nothing to do
    await until(lambda: True)
    while await connections(server):  # the server sees the connection go
        await asyncio.sleep(0.02)


async def test_async_with_closes_the_socket_and_leaves_the_channel(server: Server) -> None:
    async with PhoenixSocket(server.url) as socket:
        await socket.connect()
        async with socket.channel("room:scoped") as channel:
            await channel.join()
            assert channel.state is PhoenixChannelState.joined
        assert channel.state is PhoenixChannelState.closed  # left, and released
        assert (await server.stats())["leaves"] == {"room:scoped": 1}
        assert socket.channel("room:scoped") is not channel
    assert socket.closed


async def test_finalizer_frees_a_forgotten_socket(server: Server) -> None:
    socket = PhoenixSocket(server.url)
    await socket.connect()
    channel = socket.channel("room:gc")
    await channel.join()
    ref = weakref.ref(socket)
    del socket, channel
    gc.collect()
    assert ref() is None  # the loop's reader held it only weakly
    while await connections(server):  # phx_socket_free closed the connection
        await asyncio.sleep(0.02)


async def test_channel_close_releases_only_the_object(make_socket: Any, server: Server) -> None:
    socket = make_socket()
    await socket.connect()
    channel = socket.channel("room:kept")
    await channel.join()
    channel.close()  # releases the reference; the C channel stays joined
    assert channel.state is PhoenixChannelState.closed
    again = socket.channel("room:kept")
    assert again is not channel and again.state is PhoenixChannelState.joined
    assert await again.push("echo", {"same": "channel"}) == {"same": "channel"}
    assert (await server.stats())["joins"] == {"room:kept": 1}


async def test_cancelled_awaits_leave_delivery_intact(make_socket: Any) -> None:
    socket = make_socket()
    await socket.connect()
    channel = socket.channel("room:cancel")
    await channel.join()
    waiter = asyncio.ensure_future(channel.push("noreply", {}))
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(channel.push("noreply", {}), 0.1)  # cancels the future
    assert await channel.push("echo", {"after": "cancel"}) == {"after": "cancel"}


async def test_delivery_runs_on_the_loop_thread(make_socket: Any) -> None:
    socket = make_socket()
    await socket.connect()
    channel = socket.channel("room:thread")
    messages = channel.messages
    await channel.join()
    loop_thread = threading.get_ident()
    seen: list[int] = []
    fut = channel.push("push_me", {"t": 1})
    fut.add_done_callback(lambda _f: seen.append(threading.get_ident()))
    await fut
    await next_item(messages)
    assert seen == [loop_thread]
    assert threading.active_count() == 1  # no Python thread was ever started for delivery


async def test_binary_payloads(make_socket: Any) -> None:
    socket = make_socket()
    await socket.connect()
    echo = socket.channel("echo:bin")
    await echo.join()
    data = bytes(range(256)) * 40
    assert await echo.push("echo", data) == data
    assert await echo.push("echo", b"") == b""
    room = socket.channel("room:bin")
    messages = room.messages
    await room.join()
    await room.push("push_me", bytearray(b"\x00\x01\xff"))
    message = await next_item(messages)
    assert (message.event, message.payload) == ("pushed", b"\x00\x01\xff")


async def test_overflow_is_counted_and_replies_are_never_dropped(make_socket: Any) -> None:
    socket = make_socket(event_capacity=4)
    await socket.connect()
    channel = socket.channel("room:flood")
    messages = channel.messages
    await channel.join()
    # Flood while the loop is not draining: everything beyond 4 queued events is dropped.
    flood = channel.push("flood", {"n": 200})
    while not flood.done():
        await asyncio.sleep(0.05)
    assert await flood == {"sent": 200}
    got = messages.pending()
    assert got < 200 and socket.dropped_events > 0
    assert got + socket.dropped_events >= 200


async def test_several_sockets_and_unicode(make_socket: Any) -> None:
    sockets = [make_socket() for _ in range(3)]
    await asyncio.gather(*(s.connect() for s in sockets))
    channels = [s.channel("room:ünïcødé ✓") for s in sockets]
    await asyncio.gather(*(c.join() for c in channels))
    replies = await asyncio.gather(*(c.push("echo", {"text": f"café {i} ✓"}) for i, c in enumerate(channels)))
    assert replies == [{"text": f"café {i} ✓"} for i in range(3)]


def test_help_reads_well() -> None:
    text = pydoc.render_doc(phx.PhoenixSocket, renderer=pydoc.plaintext)
    for needle in ("Phoenix Channels V2 socket", "connect(self", "channel(self, topic", "states", "close(self)"):
        assert needle in text
    channel_doc = pydoc.render_doc(phx.PhoenixChannel, renderer=pydoc.plaintext)
    for needle in ("join(self", "push(self, event", "leave(self", "messages", "StateError"):
        assert needle in channel_doc
    assert phx.PhoenixException.__doc__ and phx.StateError.__doc__ and phx.PhoenixMessage.__doc__


def test_the_installed_package_carries_libphx() -> None:
    if os.environ.get("PHX_LIBRARY"):
        pytest.skip("PHX_LIBRARY overrides the bundled library")
    package = Path(phx.__file__).parent
    assert "site-packages" in package.parts, package  # the wheel, not the source tree
    assert Path(phx.library_path) == package / "_native" / "lib_native.so"
    assert Path(phx.library_path).is_file()
    assert (package / "py.typed").is_file()
    assert phx.libphx_version() == phx.__version__


def test_phx_library_selects_another_libphx() -> None:
    lib = ROOT / "target" / "debug" / "libphx.so"
    if not lib.is_file():
        pytest.skip(f"no {lib}")
    out = subprocess.run(
        [sys.executable, "-c", "import phx; print(phx.library_path); print(phx.libphx_version())"],
        env={**os.environ, "PHX_LIBRARY": str(lib)},
        capture_output=True,
        text=True,
        check=True,
        cwd="/",
    ).stdout.split()
    assert out == [str(lib), phx.libphx_version()]


async def test_connect_is_idempotent_and_fails_on_disconnect(make_socket: Any, server: Server) -> None:
    socket = make_socket()
    await asyncio.gather(socket.connect(), socket.connect())
    await socket.connect()  # already connected
    assert (await server.stats())["accepted"] == 1
    await socket.disconnect()
    await server.control("refuse?status=503")
    connecting = asyncio.ensure_future(socket.connect())
    await asyncio.sleep(0)  # connect() is now waiting for a connection that cannot open
    await socket.disconnect()
    with pytest.raises(PhoenixException, match="Socket disconnected"):
        await connecting
    await server.control("reset")
    await socket.connect()
    assert socket.state is PhoenixSocketState.connected
