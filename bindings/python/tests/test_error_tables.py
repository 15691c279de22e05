"""Every row of the seed's "Exception types" table, and the rows the client contract adds
(channel errored, closed with work pending, invalid arguments)."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest

from conftest import Server, wait_state
from phx import PhoenixChannelState, PhoenixException, PhoenixSocket, StateError, Status


# Row 1: PhoenixException | server replied status != "ok" to a join or push | server's response body


async def test_row_server_refused_join(make_socket: Any) -> None:
    socket = make_socket()
    await socket.connect()
    with pytest.raises(PhoenixException) as info:
        await socket.channel("room:private").join()
    assert info.value.message == "error"
    assert info.value.response == {"reason": "unauthorized"}
    assert info.value.code is Status.REPLY


async def test_row_server_rejected_push(make_socket: Any) -> None:
    socket = make_socket()
    await socket.connect()
    channel = socket.channel("room:lobby")
    await channel.join()
    with pytest.raises(PhoenixException) as info:
        await channel.push("fail", {"x": 1})
    assert (info.value.message, info.value.response) == ("error", {"reason": "nope"})
    assert channel.state is PhoenixChannelState.joined  # a rejected push changes nothing else


# Row 2: PhoenixException | socket dropped while a push was in flight | null


async def test_row_socket_dropped_with_a_push_in_flight(make_socket: Any, server: Server) -> None:
    socket = make_socket()
    await socket.connect()
    channel = socket.channel("room:lobby")
    await channel.join()
    push = channel.push("noreply", {})
    await server.wait_for_frame("noreply")
    await server.control("drop")
    with pytest.raises(PhoenixException) as info:
        await push
    assert info.value.message == "Socket disconnected"  # recognisable, as in sendWithRetry
    assert info.value.response is None
    assert info.value.code is Status.DISCONNECTED


# Row 3: PhoenixException | leave() called while join was still pending | null


async def test_row_leave_while_join_pending(make_socket: Any) -> None:
    socket = make_socket(leave_timeout=0.5)
    await socket.connect()
    channel = socket.channel("room:slow")
    join = channel.join()
    leave = channel.leave()
    with pytest.raises(PhoenixException) as info:
        await join
    assert info.value.message == "Channel left before join completed"
    assert info.value.response is None
    assert info.value.code is Status.LEFT_BEFORE_JOIN
    assert await leave is None  # best-effort, whatever the slow server does


# Rows 4 and 5: TimeoutException | no join reply / no push reply within 10 s (the defaults)


async def test_rows_join_and_push_time_out_after_the_default_10_s(server: Server) -> None:
    async with PhoenixSocket(server.url) as socket:  # default timeouts
        await socket.connect()
        joined = socket.channel("room:lobby")
        await joined.join()
        await server.control("silence?on=1")  # from now on nothing is answered
        loop = asyncio.get_running_loop()
        start = loop.time()
        join = socket.channel("room:other").join()
        push = joined.push("echo", {})
        results = await asyncio.gather(join, push, return_exceptions=True)
        elapsed = loop.time() - start
        assert all(isinstance(r, TimeoutError) for r in results), results
        assert 9.9 <= elapsed < 12.0
        assert socket.channel("room:other").state is PhoenixChannelState.errored


async def test_rows_timeouts_are_configurable(make_socket: Any, server: Server) -> None:
    socket = make_socket(timeout=0.3)
    await socket.connect()
    channel = socket.channel("room:lobby")
    await channel.join()
    with pytest.raises(TimeoutError):
        await channel.push("noreply", {})  # the socket's default
    with pytest.raises(TimeoutError):
        await channel.push("noreply", {}, timeout=0.1)  # per operation
    await server.control("silence?on=1")
    with pytest.raises(TimeoutError):
        await socket.channel("room:silent").join(timeout=0.2)


# Row 6: StateError | join() called twice on the same instance


async def test_row_join_twice(make_socket: Any) -> None:
    socket = make_socket()
    await socket.connect()
    channel = socket.channel("room:lobby")
    first = channel.join()
    second = channel.join()  # even while the first is pending
    with pytest.raises(StateError):
        await second
    await first
    with pytest.raises(StateError) as info:
        await channel.join()
    assert "join() called twice" in info.value.message


# Row 7: StateError | push() called before join()


async def test_row_push_before_join(make_socket: Any, server: Server) -> None:
    socket = make_socket()
    await socket.connect()
    channel = socket.channel("room:lobby")
    push = channel.push("echo", {})
    assert push.done()  # immediately
    with pytest.raises(StateError) as info:
        await push
    assert info.value.message == "push() called before join()"
    with pytest.raises(StateError):
        await channel.push("echo", b"binary too")
    assert await server.frames("echo") == []  # nothing was sent


# Row 8: StateError | push() on a closed or leaving channel


async def test_row_push_on_a_leaving_channel(make_socket: Any, server: Server) -> None:
    socket = make_socket()
    await socket.connect()
    channel = socket.channel("room:lobby")
    await channel.join()
    await server.control("delay?ms=500")  # the leave reply is late: the channel stays leaving
    leave = channel.leave()
    assert channel.state is PhoenixChannelState.leaving
    push = channel.push("echo", {})
    assert push.done()
    with pytest.raises(StateError, match="leaving"):
        await push
    await leave


async def test_row_push_on_a_closed_channel(make_socket: Any) -> None:
    socket = make_socket()
    await socket.connect()
    left = socket.channel("room:a")
    await left.join()
    await left.leave()
    refused = socket.channel("room:private")
    with pytest.raises(PhoenixException):
        await refused.join()
    disconnected = socket.channel("room:b")
    await disconnected.join()
    await socket.disconnect()
    for channel in (left, refused, disconnected):
        assert channel.state is PhoenixChannelState.closed
        with pytest.raises(StateError, match="closed"):
            await channel.push("echo", {})


# Contract rows beyond the seed's table


async def test_channel_crashed_with_a_push_in_flight(make_socket: Any, server: Server) -> None:
    socket = make_socket()
    await socket.connect()
    channel = socket.channel("room:crashy")
    states = channel.states
    await channel.join()
    in_flight = channel.push("noreply", {})
    crash = channel.push("crash", {})  # no reply; the server sends phx_error
    for push in (in_flight, crash):
        with pytest.raises(PhoenixException) as info:
            await push
        assert info.value.message == "Channel errored" and info.value.code is Status.CHANNEL_ERRORED
    await wait_state(states, PhoenixChannelState.joined)  # rejoined automatically


async def test_server_phx_close_with_a_push_in_flight(make_socket: Any) -> None:
    socket = make_socket()
    await socket.connect()
    channel = socket.channel("room:stopper")
    await channel.join()
    in_flight = channel.push("noreply", {})
    stop = channel.push("stop", {})  # no reply; the server sends phx_close
    for push in (in_flight, stop):
        with pytest.raises(PhoenixException) as info:
            await push
        assert info.value.message == "Channel closed" and info.value.code is Status.CLOSED
    assert channel.state is PhoenixChannelState.closed


async def test_disconnect_with_work_pending_fails_it_at_once(make_socket: Any) -> None:
    socket = make_socket()
    await socket.connect()
    joined = socket.channel("room:lobby")
    await joined.join()
    in_flight = joined.push("noreply", {})
    joining = socket.channel("room:slow")
    join = joining.join()
    buffered = joining.push("echo", {})
    loop = asyncio.get_running_loop()
    start = loop.time()
    await socket.disconnect()
    for fut in (in_flight, join, buffered):
        assert fut.done()  # before disconnect() returned, not after a timeout
        with pytest.raises(PhoenixException) as info:
            await fut
        assert info.value.message == "Channel closed"
    assert loop.time() - start < 1.0


async def test_invalid_arguments_raise_at_the_call(make_socket: Any) -> None:
    with pytest.raises(ValueError):
        PhoenixSocket("http://example.com/socket")  # not ws:// or wss://
    with pytest.raises(ValueError):
        PhoenixSocket("ws://127.0.0.1:1/socket/websocket", params={"nested": {"a": 1}})  # type: ignore[dict-item]
    with pytest.raises(ValueError):
        PhoenixSocket("ws://127.0.0.1:1/socket/websocket", timeout=0)
    socket = make_socket()
    await socket.connect()
    channel = socket.channel("room:lobby")
    await channel.join()
    with pytest.raises(TypeError):
        channel.push("echo", {"not json": object()})
    with pytest.raises(ValueError):
        channel.push("echo", {"x": math.nan})
    with pytest.raises(ValueError):
        channel.push("bad\0event", {})
    with pytest.raises(ValueError):
        channel.push("e" * 300, b"binary event names are limited to 255 bytes")
    assert await channel.push("echo", {"still": "fine"}) == {"still": "fine"}
