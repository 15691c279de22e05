"""The seed's "Push buffering vs. push failure" table, row by row, and the note below it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from conftest import Server, wait_state
from phx import PhoenixChannelState, PhoenixException, StateError


# joining | Buffered. Sent after join succeeds. Errors if join fails.


async def test_joining_buffered_then_sent_after_the_join(make_socket: Any, server: Server) -> None:
    socket = make_socket()
    await socket.connect()
    channel = socket.channel("room:slow")  # joined after 3 s
    join = channel.join()
    assert channel.state is PhoenixChannelState.joining
    pushes = [channel.push("echo", {"i": i}) for i in range(3)]
    assert not any(p.done() for p in pushes)
    assert await join == {}
    assert [await p for p in pushes] == [{"i": 0}, {"i": 1}, {"i": 2}]  # in order
    frames = [(f[3], f[4]) for f in await server.frames()]
    join_at = frames.index(("phx_join", {}))
    assert frames[join_at + 1 :] == [("echo", {"i": i}) for i in range(3)]  # only after the join


async def test_joining_buffered_pushes_fail_when_the_join_fails(make_socket: Any, server: Server) -> None:
    socket = make_socket()
    await socket.connect()
    await server.control("delay?ms=300")  # the refusal comes late: the pushes are made while joining
    channel = socket.channel("room:private")
    join = channel.join()
    pushes = [channel.push("echo", {"i": i}) for i in range(2)]
    with pytest.raises(PhoenixException):
        await join
    for push in pushes:
        with pytest.raises(PhoenixException):
            await push
    assert await server.frames("echo") == []  # never sent


async def test_joining_buffered_pushes_fail_when_the_join_times_out(make_socket: Any, server: Server) -> None:
    socket = make_socket()
    await socket.connect()
    await server.control("silence?on=1")
    channel = socket.channel("room:lobby")
    join = channel.join(timeout=0.3)
    push = channel.push("echo", {}, timeout=5)
    with pytest.raises(TimeoutError):
        await join
    with pytest.raises(TimeoutError):  # the attempt's outcome, well before the push's own 5 s
        await asyncio.wait_for(push, 2)


# errored | Buffered. Sent after auto-rejoin succeeds. Errors if rejoin fails.


async def make_errored(socket: Any, server: Server, topic: str, refuse_ms: int = 0) -> Any:
    """A joined channel whose connection dropped while reconnecting is refused (for
    ``refuse_ms``, or until ``/control/reset``): errored."""
    await socket.connect()
    channel = socket.channel(topic)
    await channel.join()
    states = channel.states
    await server.control(f"refuse?status=503&ms={refuse_ms}")  # reconnect attempts fail
    await server.control("drop")
    await wait_state(states, PhoenixChannelState.errored)
    return channel, states


async def test_errored_buffered_then_sent_after_the_rejoin(make_socket: Any, server: Server) -> None:
    socket = make_socket()
    channel, states = await make_errored(socket, server, "room:errored")
    push = channel.push("echo", {"after": "rejoin"})
    assert channel.state is PhoenixChannelState.errored and not push.done()
    await server.control("reset")  # reconnects, rejoins, then sends the buffered push
    assert await push == {"after": "rejoin"}
    assert channel.state is PhoenixChannelState.joined


async def test_errored_buffered_push_fails_when_the_rejoin_fails(make_socket: Any, server: Server) -> None:
    socket = make_socket(timeout=0.5)  # rejoins use the socket's default timeout
    channel, states = await make_errored(socket, server, "room:errored", refuse_ms=600)
    push = channel.push("echo", {}, timeout=8)
    await server.control("silence?on=1")  # once the refusal ends: accepted, never answered
    with pytest.raises(TimeoutError):  # the rejoin attempt timed out, and the push with it
        await asyncio.wait_for(push, 5)
    assert await server.frames("echo") == []


# joined | Sent immediately.


async def test_joined_sent_immediately(make_socket: Any, server: Server) -> None:
    socket = make_socket()
    await socket.connect()
    channel = socket.channel("room:lobby")
    await channel.join()
    await server.control("log?clear=1")
    push = channel.push("noreply", {"now": True})  # never answered: it is on the wire anyway
    frames = await server.wait_for_frame("noreply")
    assert frames[0][4] == {"now": True}
    assert not push.done()
    push.ignore()


# closed | Throws StateError immediately.   leaving | Throws StateError immediately.
# Before join() called | Throws StateError immediately.


@pytest.mark.parametrize("row", ["closed", "leaving", "before join"])
async def test_state_error_rows(make_socket: Any, server: Server, row: str) -> None:
    socket = make_socket()
    await socket.connect()
    channel = socket.channel("room:rows")
    if row in ("closed", "leaving"):
        await channel.join()
        await server.control("delay?ms=500")  # the leave reply is late: the channel stays leaving
        leave = channel.leave()
        if row == "closed":
            await leave
    expected = {"closed": PhoenixChannelState.closed, "leaving": PhoenixChannelState.leaving, "before join": PhoenixChannelState.closed}
    assert channel.state is expected[row]
    push = channel.push("echo", {"row": row})
    assert push.done()  # immediately, not after a timeout
    with pytest.raises(StateError):
        await push
    assert await server.frames("echo") == []


# "After an intentional socket.disconnect(), channels move to closed, so all pending and buffered
# pushes fail with PhoenixException right away."


async def test_intentional_disconnect_fails_pending_and_buffered_pushes(make_socket: Any) -> None:
    socket = make_socket()
    await socket.connect()
    channel = socket.channel("room:slow")
    join = channel.join()
    buffered = channel.push("echo", {})
    await socket.disconnect()
    assert channel.state is PhoenixChannelState.closed
    for fut in (join, buffered):
        assert fut.done()
        with pytest.raises(PhoenixException):
            await fut


async def test_errored_channel_closes_on_intentional_disconnect(make_socket: Any, server: Server) -> None:
    socket = make_socket()
    channel, _ = await make_errored(socket, server, "room:errored")
    buffered = channel.push("echo", {})
    await socket.disconnect()
    assert channel.state is PhoenixChannelState.closed
    with pytest.raises(PhoenixException, match="Channel closed"):
        await buffered
