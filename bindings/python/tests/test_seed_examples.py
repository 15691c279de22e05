"""Every code example of the seed README (dart_phoenix_socket), translated to Python, run against
phx-testserver. Each test names the seed section it reproduces."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from typing import Any

import pytest

from conftest import Server, next_item, until, wait_state
from phx import (
    PhoenixChannel,
    PhoenixChannelState,
    PhoenixException,
    PhoenixMessage,
    PhoenixSocket,
    PhoenixSocketState,
    ReasonKind,
    StateError,
)


# ---- Quick start --------------------------------------------------------------------------------


async def test_quick_start(server: Server) -> None:
    printed: list[str] = []

    async def listen(messages: Any) -> None:
        async for msg in messages:
            printed.append(f"{msg.event}: {msg.payload}")

    socket = PhoenixSocket(server.url, params={"token": "my-user-token"})
    await socket.connect()
    channel = socket.channel("room:lobby")
    await channel.join()
    listener = asyncio.create_task(listen(channel.messages))  # channel.messages.listen(...)
    await channel.push("new_msg", {"body": "hello"})
    await channel.leave()
    await socket.disconnect()

    await asyncio.wait_for(listener, 10)  # the subscription ends once the channel closed
    assert printed == ["new_msg: {'body': 'hello'}"]
    assert socket.state is PhoenixSocketState.disconnected
    assert channel.state is PhoenixChannelState.closed
    stats = await server.stats()
    assert stats["joins"] == {"room:lobby": 1} and stats["leaves"] == {"room:lobby": 1}
    socket.close()


async def test_quick_start_token_param_is_sent(server: Server) -> None:
    """``params`` reach the server: the test app refuses ``token=bad`` with HTTP 403."""
    async with PhoenixSocket(server.url, params={"token": "bad"}, connect_timeout=0.5) as socket:
        with pytest.raises(TimeoutError):
            await socket.connect(timeout=0.5)
        reason = socket.last_reason
        assert reason is not None and reason.kind is ReasonKind.HTTP_STATUS and reason.code == 403


# ---- Listening to connection state ------------------------------------------------------------------


async def test_listening_to_connection_state(server: Server) -> None:
    printed: asyncio.Queue[str] = asyncio.Queue()

    async with PhoenixSocket(server.url, reconnect_delays=[0.05]) as socket:

        async def listen() -> None:
            async for state in socket.states:  # socket.states.listen((state) { switch ... })
                match state:
                    case PhoenixSocketState.connected:
                        printed.put_nowait("connected")
                    case PhoenixSocketState.reconnecting:
                        printed.put_nowait("reconnecting…")
                    case PhoenixSocketState.disconnected:
                        printed.put_nowait("disconnected")
                    case _:
                        pass

        listener = asyncio.create_task(listen())
        await asyncio.sleep(0)  # let the listener subscribe
        await socket.connect()
        assert await asyncio.wait_for(printed.get(), 10) == "connected"
        await server.control("drop")
        assert await asyncio.wait_for(printed.get(), 10) == "reconnecting…"
        assert await asyncio.wait_for(printed.get(), 10) == "connected"
        await socket.disconnect()
        assert await asyncio.wait_for(printed.get(), 10) == "disconnected"
    await asyncio.wait_for(listener, 10)  # closing the socket ends the stream


# ---- Handling errors from join / push -------------------------------------------------------------------


async def seed_join_and_push(channel: PhoenixChannel, out: list[str]) -> None:
    """The seed's two try/catch blocks, verbatim in structure."""
    try:
        await channel.join()
    except PhoenixException as e:  # server replied with status != "ok"
        out.append(f"join refused: {e.message}, response: {e.response}")
    except TimeoutError:
        out.append("join timed out")
    try:
        reply = await channel.push("new_msg", {"body": "hi"})
        out.append(f"server replied: {reply}")
    except PhoenixException as e:
        out.append(f"push error: {e.message}")
    except TimeoutError:
        out.append("push timed out")
    except StateError as e:  # join() was never called, or channel is closed / disconnected
        out.append(f"bad state: {e}")


async def test_handling_errors_join_ok_push_ok(make_socket: Any) -> None:
    socket = make_socket()
    await socket.connect()
    out: list[str] = []
    await seed_join_and_push(socket.channel("room:lobby"), out)
    assert out == ["server replied: {}"]


async def test_handling_errors_join_refused_push_bad_state(make_socket: Any) -> None:
    socket = make_socket()
    await socket.connect()
    out: list[str] = []
    await seed_join_and_push(socket.channel("room:private"), out)
    assert out[0] == "join refused: error, response: {'reason': 'unauthorized'}"
    assert out[1].startswith("bad state: push() on a closed channel")


async def test_handling_errors_join_and_push_time_out(make_socket: Any, server: Server) -> None:
    socket = make_socket(timeout=0.5)
    await socket.connect()
    await server.control("silence?on=1")  # the server reads everything and answers nothing
    out: list[str] = []
    await seed_join_and_push(socket.channel("room:lobby"), out)
    # The push was buffered behind the join and timed out with it.
    assert out == ["join timed out", "push timed out"]


async def test_handling_errors_push_rejected(make_socket: Any) -> None:
    socket = make_socket()
    await socket.connect()
    channel = socket.channel("room:lobby")
    await channel.join()
    try:
        await channel.push("fail", {"body": "hi"})
        raise AssertionError("the push should have been rejected")
    except PhoenixException as e:
        assert e.message == "error" and e.response == {"reason": "nope"}


# ---- Receiving server broadcasts ---------------------------------------------------------------------


async def test_receiving_server_broadcasts_multiple_listeners(make_socket: Any) -> None:
    sender, receiver = make_socket(), make_socket()
    await sender.connect()
    await receiver.connect()
    channel = receiver.channel("room:news")
    first, second = channel.messages, channel.messages  # a broadcast stream: several listeners
    await channel.join()
    other = sender.channel("room:news")
    await other.join()
    await other.push("new_msg", {"body": "from another socket"})
    await channel.push("push_me", {"x": 1})
    await channel.push("flood", {"n": 3})
    await channel.push("stop_reply", {})  # replies, then phx_close: control frames never show up

    expected = [
        ("room:news", "new_msg", {"body": "from another socket"}),
        ("room:news", "pushed", {"x": 1}),
        ("room:news", "flood_msg", {"i": 1}),
        ("room:news", "flood_msg", {"i": 2}),
        ("room:news", "flood_msg", {"i": 3}),
    ]
    for sub in (first, second):
        got = [(m.topic, m.event, m.payload) async for m in sub]  # ends once the channel closed
        assert got == expected
        assert all(not m[1].startswith("phx_") for m in got)


async def test_phoenix_message_fields(make_socket: Any) -> None:
    sender, receiver = make_socket(), make_socket()
    await sender.connect()
    await receiver.connect()
    channel = receiver.channel("room:fields")
    messages = channel.messages
    await channel.join()
    await channel.push("push_me", {"k": "v"})  # a server push on this channel
    other = sender.channel("room:fields")
    await other.join()
    await other.push("new_msg", {"body": "b"})  # a broadcast

    pushed: PhoenixMessage = await next_item(messages)
    assert (pushed.topic, pushed.event, pushed.payload) == ("room:fields", "pushed", {"k": "v"})
    assert isinstance(pushed.join_ref, str) and pushed.ref is None  # no reply expected
    broadcast: PhoenixMessage = await next_item(messages)
    assert broadcast.event == "new_msg" and broadcast.payload == {"body": "b"}
    assert broadcast.join_ref is None and broadcast.ref is None  # null for server broadcasts
    assert PhoenixMessage(None, None, "t", "e", {}) == PhoenixMessage(None, None, "t", "e", {})


async def test_phoenix_exception_fields(make_socket: Any) -> None:
    socket = make_socket()
    await socket.connect()
    with pytest.raises(PhoenixException) as info:
        await socket.channel("room:private").join()
    assert info.value.message == "error"
    assert info.value.response == {"reason": "unauthorized"}
    assert PhoenixException("Socket disconnected").response is None


# ---- join() ------------------------------------------------------------------------------------------------


async def seed_join(channel: PhoenixChannel, token: str, out: list[str]) -> None:
    try:
        response = await channel.join({"token": token})
        out.append(f"joined: {response}")
    except PhoenixException as e:  # server refused
        out.append(f"join refused: {e.message}")
        out.append(f"server said: {e.response}")
    except TimeoutError:  # channel state is now errored; auto-rejoin after reconnect
        out.append("join timed out")
    except StateError as e:  # join() called twice
        out.append(str(e))


async def test_join_ok_then_second_join_is_a_state_error(make_socket: Any) -> None:
    socket = make_socket()
    await socket.connect()
    channel = socket.channel("room:lobby")
    out: list[str] = []
    await seed_join(channel, "t", out)
    await seed_join(channel, "t", out)
    assert out[0] == "joined: {'joined': 'room:lobby'}"
    assert out[1].startswith("join() called twice")


async def test_join_refused_carries_the_server_body(make_socket: Any) -> None:
    socket = make_socket()
    await socket.connect()
    out: list[str] = []
    await seed_join(socket.channel("room:private"), "t", out)
    assert out == ["join refused: error", "server said: {'reason': 'unauthorized'}"]


async def test_join_timeout_leaves_errored_and_rejoins_after_reconnect(make_socket: Any, server: Server) -> None:
    socket = make_socket(timeout=0.5)
    await socket.connect()
    channel = socket.channel("room:lobby")
    states = channel.states
    await server.control("silence?on=1")
    out: list[str] = []
    await seed_join(channel, "t", out)
    assert out == ["join timed out"]
    assert channel.state is PhoenixChannelState.errored
    await server.control("silence?on=0")
    await server.control("drop")  # the socket reconnects and rejoins the errored channel
    await wait_state(states, PhoenixChannelState.joined)
    assert channel.state is PhoenixChannelState.joined


# ---- push() ------------------------------------------------------------------------------------------------


async def seed_push(channel: PhoenixChannel, event: str, out: list[str], timeout: float | None = None) -> None:
    try:
        reply = await channel.push(event, {"body": "hello"}, timeout=timeout)
        out.append(f"server ack: {reply}")
    except PhoenixException as e:  # server replied with an error status
        out.append(f"push rejected: {e.message}")
        out.append(f"server said: {e.response}")
    except TimeoutError:  # no reply within the timeout; the push ref is cleaned up
        out.append("push timed out")
    except StateError as e:  # before join(), on a closed channel, on a leaving channel
        out.append(f"state: {e}")


async def test_push_ack_rejection_and_timeout(make_socket: Any, server: Server) -> None:
    socket = make_socket()
    await socket.connect()
    channel = socket.channel("room:lobby")
    out: list[str] = []
    await seed_push(channel, "echo", out)  # before join()
    await channel.join()
    await seed_push(channel, "echo", out)
    await seed_push(channel, "fail", out)
    await seed_push(channel, "noreply", out, timeout=0.3)
    assert out == [
        "state: push() called before join()",
        "server ack: {'body': 'hello'}",
        "push rejected: error",
        "server said: {'reason': 'nope'}",
        "push timed out",
    ]


async def test_push_timeout_leaves_no_stale_callback(make_socket: Any, server: Server) -> None:
    socket = make_socket()
    await socket.connect()
    channel = socket.channel("room:lobby")
    await channel.join()
    await server.control("delay?ms=600")
    with pytest.raises(TimeoutError):
        await channel.push("echo", {"n": 1}, timeout=0.2)
    # The late reply to the timed-out push arrives first and is dropped: this push gets its own.
    assert await channel.push("echo", {"n": 2}) == {"n": 2}


async def test_push_on_closed_and_leaving_channels(make_socket: Any, server: Server) -> None:
    socket = make_socket()
    await socket.connect()
    channel = socket.channel("room:lobby")
    await channel.join()
    await server.control("delay?ms=500")  # the leave reply is late: the channel stays leaving
    out: list[str] = []
    leaving = channel.leave()
    await seed_push(channel, "echo", out)
    await leaving
    await seed_push(channel, "echo", out)
    assert out == ["state: push() on a leaving channel", "state: push() on a closed channel"]


# ---- Socket disconnected, fire-and-forget, sendWithRetry ------------------------------------------------


async def send_with_retry(channel: PhoenixChannel, event: str, payload: dict[str, Any], attempts: list[str]) -> None:
    """The seed's sendWithRetry (attempts records what happened, for the test)."""
    while True:
        try:
            await channel.push(event, payload)
            attempts.append("ok")
            return
        except PhoenixException as e:
            if e.message == "Socket disconnected":
                attempts.append(e.message)
                # Wait a moment for the channel to rejoin, then retry.
                await asyncio.sleep(1)
                continue
            raise  # server error: don't retry
        except TimeoutError:
            raise  # let the caller decide


async def test_send_with_retry_across_a_server_restart(make_socket: Any, server: Server) -> None:
    socket = make_socket()
    await socket.connect()
    channel = socket.channel("room:retry")
    await channel.join()
    await server.control("delay?ms=3000")  # the reply will not come before the restart
    attempts: list[str] = []
    task = asyncio.create_task(send_with_retry(channel, "echo", {"body": "important"}, attempts))
    await server.wait_for_frame("echo")  # the push is in flight
    await server.control("delay?ms=0")
    await server.control("restart?down_ms=300")  # drops the connection; server state is lost
    await asyncio.wait_for(task, 15)
    assert attempts == ["Socket disconnected", "ok"]
    assert channel.state is PhoenixChannelState.joined  # rejoined on the restarted server
    await server.wait_reachable()
    assert [f[4] for f in await server.frames("echo")] == [{"body": "important"}]  # the retry


async def test_send_with_retry_does_not_retry_server_errors(make_socket: Any) -> None:
    socket = make_socket()
    await socket.connect()
    channel = socket.channel("room:retry")
    await channel.join()
    with pytest.raises(PhoenixException) as info:
        await send_with_retry(channel, "fail", {}, [])
    assert info.value.response == {"reason": "nope"}


def collect_loop_errors(loop: asyncio.AbstractEventLoop) -> list[dict[str, Any]]:
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    return errors


async def test_fire_and_forget_pushes(make_socket: Any, server: Server) -> None:
    socket = make_socket()
    await socket.connect()
    errors = collect_loop_errors(asyncio.get_running_loop())
    echo = socket.channel("echo:typing")
    await echo.join()
    echo.push("typing", {}).ignore()  # channel.push('typing', {}).ignore();
    await server.wait_for_frame("typing")

    async def catch_error(fut: Any) -> None:  # .catchError((_) {})
        with contextlib.suppress(Exception):
            await fut

    room = socket.channel("room:typing")
    await room.join()
    # In flight before the crash it causes (the test app crashes on unknown events), the
    # "noreply" push fails with the channel; pushed after "typing", it could race the server's
    # phx_error, be buffered for the rejoin and time out instead.
    failed = room.push("noreply", {})
    room.push("typing", {}).ignore()  # fails too, nobody looks
    await catch_error(failed)
    assert isinstance(failed.exception(), PhoenixException)
    lost = room.push("again", {})  # a state or channel error nobody looks at ...
    await asyncio.wait([lost])
    del lost, failed
    gc.collect()
    await asyncio.sleep(0)
    # ... is reported by asyncio; the ignored ones never are.
    assert len([e for e in errors if "exception was never retrieved" in e["message"]]) == 1


# ---- leave() before join completes ------------------------------------------------------------------------


async def test_leave_before_join_completes(make_socket: Any) -> None:
    socket = make_socket(leave_timeout=0.5)
    await socket.connect()
    channel = socket.channel("room:slow")  # the test app answers this join after 3 s
    join_future = channel.join()
    await channel.leave()  # ... later, user navigates away
    try:
        await join_future
        raise AssertionError("the join should have been cancelled")
    except PhoenixException as e:  # expected: leave() cancelled the join
        assert e.message == "Channel left before join completed" and e.response is None
    assert channel.state is PhoenixChannelState.closed


# ---- Behaviour guide --------------------------------------------------------------------------------------


async def test_behaviour_push_buffering_during_join(make_socket: Any, server: Server) -> None:
    socket = make_socket()
    await socket.connect()
    await server.control("delay?ms=200")  # the join reply comes late: the push is made while joining
    channel = socket.channel("echo:lobby")  # echo:* answers every event (room:* crashes on "event")
    channel.join()  # fire-and-forget: don't await
    reply = channel.push("event", {"data": 1})  # buffered, sent after join ok
    assert channel.state is PhoenixChannelState.joining
    assert await reply == {"data": 1}
    events = [f[3] for f in await server.frames()]
    assert events.index("phx_join") < events.index("event")


async def test_behaviour_buffered_pushes_fail_when_the_join_fails(make_socket: Any, server: Server) -> None:
    socket = make_socket()
    await socket.connect()
    await server.control("delay?ms=300")  # the refusal comes late: the pushes are made while joining
    channel = socket.channel("room:private")
    join = channel.join()
    pushes = [channel.push("echo", {"i": i}) for i in range(3)]
    with pytest.raises(PhoenixException):
        await join
    for push in pushes:
        with pytest.raises(PhoenixException) as info:
            await push
        # The attempt's refusal, or "Channel closed" when libphx's actor handled the refusal
        # before the push command reached it (see the report on the C ABI).
        assert (info.value.message, info.value.response) in (("error", {"reason": "unauthorized"}), ("Channel closed", None))


async def test_automatic_reconnection_with_the_default_schedule(server: Server) -> None:
    async with PhoenixSocket(server.url) as socket:  # default schedule: 1, 2, 4, 8, 16, 30 s
        await socket.connect()
        channel = socket.channel("room:auto")
        await channel.join()
        states = socket.states
        loop = asyncio.get_running_loop()
        await server.control("drop")
        dropped_at = loop.time()
        await wait_state(states, PhoenixSocketState.reconnecting)
        await wait_state(states, PhoenixSocketState.connected)
        assert 0.9 <= loop.time() - dropped_at < 3.0  # the first delay is 1 s
        channel_states = channel.states
        if channel.state is not PhoenixChannelState.joined:
            await wait_state(channel_states, PhoenixChannelState.joined)  # rejoined automatically
        assert (await server.stats())["joins"] == {"room:auto": 2}  # the join and one rejoin


async def test_disconnect_prevents_reconnection_and_connect_reconnects(make_socket: Any, server: Server) -> None:
    socket = make_socket()
    await socket.connect()
    await socket.disconnect()
    accepted = (await server.stats())["accepted"]
    await asyncio.sleep(0.5)  # far beyond the 50 ms reconnect delay: nothing may happen
    assert socket.state is PhoenixSocketState.disconnected
    assert (await server.stats())["accepted"] == accepted
    await socket.connect()
    assert socket.state is PhoenixSocketState.connected


async def test_channel_lifecycle_unintentional_drop(make_socket: Any, server: Server) -> None:
    socket = make_socket()
    await socket.connect()
    channel = socket.channel("room:life")
    await channel.join()
    states = channel.states
    await server.control("drop")
    seen = await wait_state(states, PhoenixChannelState.joined)
    assert seen[0] is PhoenixChannelState.errored  # errored, then rejoined automatically


async def test_channel_lifecycle_intentional_disconnect(make_socket: Any, server: Server) -> None:
    socket = make_socket()
    await socket.connect()
    channel = socket.channel("room:life")
    await channel.join()
    await socket.disconnect()
    assert channel.state is PhoenixChannelState.closed
    with pytest.raises(StateError):  # push() throws StateError immediately
        await channel.push("echo", {})
    await socket.connect()
    fresh = socket.channel("room:life")  # a fresh instance, then connect() and join() again
    assert fresh is not channel
    await fresh.join()
    assert channel.state is PhoenixChannelState.closed  # the old instance was not rejoined
    assert (await server.stats())["joins"] == {"room:life": 2}


async def test_channel_lifecycle_server_phx_close(make_socket: Any, server: Server) -> None:
    socket = make_socket()
    await socket.connect()
    channel = socket.channel("room:life")
    states = channel.states
    await channel.join()
    assert await channel.push("stop_reply", {}) == {"bye": True}  # then the server sends phx_close
    await wait_state(states, PhoenixChannelState.closed)
    await server.control("drop")
    states = socket.states
    await wait_state(states, PhoenixSocketState.connected)
    barrier = socket.channel("room:barrier")
    await barrier.join()
    assert channel.state is PhoenixChannelState.closed  # no rejoin
    assert (await server.stats())["joins"] == {"room:life": 1, "room:barrier": 1}


async def test_one_join_per_instance(make_socket: Any) -> None:
    socket = make_socket()
    await socket.connect()
    channel = socket.channel("room:lobby")
    await channel.join()
    with pytest.raises(StateError):
        await channel.join()
    await channel.leave()  # channel is now closed and cannot be reused
    channel2 = socket.channel("room:lobby")  # new instance
    assert channel2 is not channel
    await channel2.join()
    assert channel2.state is PhoenixChannelState.joined


async def test_heartbeat_detects_a_silent_server(make_socket: Any, server: Server) -> None:
    socket = make_socket(heartbeat_interval=0.2)
    await socket.connect()
    states = socket.states
    await server.control("blackhole?on=1")  # heartbeats go unanswered, TCP stays open
    await wait_state(states, PhoenixSocketState.reconnecting)
    reason = socket.last_reason
    assert reason is not None and reason.kind is ReasonKind.HEARTBEAT_TIMEOUT
    await server.control("blackhole?on=0")
    await wait_state(states, PhoenixSocketState.connected)


# ---- Flutter example: the same patterns with asyncio ---------------------------------------------------


class ChangeNotifier:
    def __init__(self) -> None:
        self.notifications = 0

    def notify_listeners(self) -> None:
        self.notifications += 1


class PhoenixSocketManager(ChangeNotifier):
    """1. One socket for the whole app."""

    def __init__(self) -> None:
        super().__init__()
        self._socket: PhoenixSocket | None = None
        self._state_sub: asyncio.Task[None] | None = None
        self.socket_state = PhoenixSocketState.disconnected
        self.seen: list[PhoenixSocketState] = []

    @property
    def is_connected(self) -> bool:
        return self.socket_state is PhoenixSocketState.connected

    async def connect(self, url: str, token: str | None = None) -> None:
        if self._socket is not None:
            return
        self._socket = PhoenixSocket(url, params={"token": token} if token is not None else {})
        states = self._socket.states

        async def listen() -> None:
            async for s in states:
                self.socket_state = s
                self.seen.append(s)
                self.notify_listeners()

        self._state_sub = asyncio.create_task(listen())
        await self._socket.connect()

    async def disconnect(self) -> None:
        if self._state_sub is not None:
            self._state_sub.cancel()
            self._state_sub = None
        if self._socket is not None:
            await self._socket.disconnect()
            self._socket.close()
        self._socket = None
        self.socket_state = PhoenixSocketState.disconnected
        self.notify_listeners()

    def channel(self, topic: str) -> PhoenixChannel:
        assert self._socket is not None
        return self._socket.channel(topic)


class ChatRoomNotifier(ChangeNotifier):
    """2. Per-screen notifier: joins on construction, leaves on dispose()."""

    def __init__(self, manager: PhoenixSocketManager, topic: str) -> None:
        super().__init__()
        self.manager = manager
        self.topic = topic
        self.messages: list[str] = []
        self.error: str | None = None
        self.joined = False
        self._msg_sub: asyncio.Task[None] | None = None
        self.ready = asyncio.ensure_future(self._join())

    async def _join(self) -> None:
        self._channel = self.manager.channel(self.topic)
        subscription = self._channel.messages  # subscribe BEFORE join so no messages are missed

        async def listen() -> None:
            async for msg in subscription:
                if msg.event == "new_msg":
                    self.messages.append(msg.payload["body"])
                    self.notify_listeners()

        self._msg_sub = asyncio.create_task(listen())
        try:
            await self._channel.join()
            self.joined = True
        except PhoenixException as e:
            self.error = f"Join refused: {e.message}"
        except TimeoutError:
            self.error = "Join timed out — will retry on reconnect"
        self.notify_listeners()

    async def send(self, body: str) -> bool:
        try:
            await self._channel.push("new_msg", {"body": body})
            return True
        except PhoenixException as e:
            self.error = f"Rejected: {e.message}"
            self.notify_listeners()
            return False
        except TimeoutError:
            self.error = "Timed out"
            self.notify_listeners()
            return False
        except StateError as e:
            self.error = e.message
            self.notify_listeners()
            return False

    def send_typing(self) -> None:  # fire-and-forget: typing indicator, read receipts, ...
        self._channel.push("typing", {}).ignore()

    def dispose(self) -> None:
        if self._msg_sub is not None:
            self._msg_sub.cancel()
        self._channel.leave().ignore()  # best-effort; never await in dispose


def badge(state: PhoenixSocketState) -> str:
    """3. Connection state in the UI."""
    match state:
        case PhoenixSocketState.connected:
            return "wifi (green)"
        case PhoenixSocketState.reconnecting:
            return "wifi_off (orange)"
        case PhoenixSocketState.connecting:
            return "progress indicator"
        case PhoenixSocketState.disconnected:
            return "signal_wifi_bad (red)"


async def test_flutter_socket_manager_and_badge(server: Server) -> None:
    manager = PhoenixSocketManager()
    await manager.connect(url=server.url, token="access-token")  # login
    await manager.connect(url=server.url, token="access-token")  # a second call does nothing
    # connect() returned: the socket is connected; the manager's listener task may not have run
    # yet, so its copy of the state is read only once it has caught up.
    assert manager._socket is not None and manager._socket.state is PhoenixSocketState.connected
    await until(lambda: manager.is_connected)
    assert badge(manager.socket_state) == "wifi (green)"
    assert manager.seen == [PhoenixSocketState.connecting, PhoenixSocketState.connected]
    assert (await server.stats())["accepted"] == 1
    await manager.disconnect()  # logout
    assert manager.socket_state is PhoenixSocketState.disconnected
    assert badge(manager.socket_state) == "signal_wifi_bad (red)"
    assert badge(PhoenixSocketState.reconnecting) == "wifi_off (orange)"
    assert badge(PhoenixSocketState.connecting) == "progress indicator"
    assert manager.notifications >= 3


async def test_flutter_chat_room_notifier(server: Server) -> None:
    manager = PhoenixSocketManager()
    await manager.connect(url=server.url)
    chat = ChatRoomNotifier(manager=manager, topic="room:lobby")
    await chat.ready
    assert chat.joined and chat.error is None
    assert await chat.send("hello")
    await until(lambda: chat.messages == ["hello"])  # the broadcast reaches the listener
    states = chat._channel.states
    chat.send_typing()  # the test app crashes the channel on "typing": the failure is ignored ...
    await wait_state(states, PhoenixChannelState.errored)
    await wait_state(states, PhoenixChannelState.joined)  # ... and the channel rejoins by itself
    assert await chat.send("after typing")
    await until(lambda: chat.messages == ["hello", "after typing"])
    refused = ChatRoomNotifier(manager=manager, topic="room:private")
    await refused.ready
    assert refused.error == "Join refused: error" and not refused.joined
    assert not await refused.send("x")
    assert refused.error is not None and "closed channel" in refused.error
    chat.dispose()
    leaves = {}
    while leaves.get("room:lobby") != 1:  # dispose() left without awaiting
        leaves = (await server.stats())["leaves"]
        await asyncio.sleep(0.02)
    await manager.disconnect()


class RoomProvider:
    """4. Providers sharing one socket: each owns one channel; the one that joined leaves."""

    def __init__(self, manager: PhoenixSocketManager, topic: str) -> None:
        self.channel = manager.channel(topic)
        self.subscription = self.channel.messages
        self.owns_channel = False
        self.received: list[PhoenixMessage] = []

    async def start(self) -> None:
        try:
            await self.channel.join()
            self.owns_channel = True
        except StateError:
            pass  # already joined by the provider that got there first: one join on the wire

    async def collect(self, count: int) -> None:
        while len(self.received) < count:
            self.received.append(await next_item(self.subscription))

    async def dispose(self) -> None:
        self.subscription.close()
        if self.owns_channel:
            self.channel.leave().ignore()


async def test_flutter_multiple_providers_share_one_socket(server: Server) -> None:
    manager = PhoenixSocketManager()
    await manager.connect(url=server.url)
    # The seed's notifications:{uid} and feed:{uid}; the test app only serves room:* topics.
    notifications = RoomProvider(manager, "room:notifications-42")
    feed = RoomProvider(manager, "room:feed-42")
    presence = RoomProvider(manager, "room:7")
    chat = RoomProvider(manager, "room:7")
    assert presence.channel is chat.channel  # socket.channel() returns the cached instance
    await asyncio.gather(notifications.start(), feed.start(), presence.start(), chat.start())
    assert [presence.owns_channel, chat.owns_channel].count(True) == 1
    assert (await server.stats())["joins"] == {"room:notifications-42": 1, "room:feed-42": 1, "room:7": 1}

    await chat.channel.push("new_msg", {"body": "hi"})
    await asyncio.gather(presence.collect(1), chat.collect(1))
    assert presence.received[0].payload == chat.received[0].payload == {"body": "hi"}

    await presence.dispose()
    await chat.dispose()  # the room screen pops; the root providers stay
    while (await server.stats())["leaves"].get("room:7") != 1:
        await asyncio.sleep(0.02)
    assert notifications.channel.state is PhoenixChannelState.joined
    assert feed.channel.state is PhoenixChannelState.joined
    assert (await server.stats())["leaves"] == {"room:7": 1}  # only one provider left it
    await manager.disconnect()


async def test_key_rule_subscribe_before_join(make_socket: Any) -> None:
    """The server may push in the same moment as the join reply: presence:* sends presence_state."""
    socket = make_socket(params={"token": "alice"})
    await socket.connect()
    channel = socket.channel("presence:lobby")
    messages = channel.messages
    await channel.join({"device": "laptop"})
    events = set()
    while "presence_state" not in events:
        events.add((await next_item(messages)).event)
    assert events <= {"presence_state", "presence_diff"}
