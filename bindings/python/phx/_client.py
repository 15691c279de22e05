"""PhoenixSocket and PhoenixChannel over libphx's C ABI.

Delivery: each socket turns on libphx's owned event queue (``phx_socket_events_enable``) and
registers its file descriptor (``phx_socket_event_fd``) with the running asyncio loop
(``loop.add_reader``). When it becomes readable the loop drains the queue with
``phx_socket_next_events`` (up to ``_TAKE`` events per call) on its own thread, copies every
event into Python objects and frees each batch at once (``phx_events_free``). Joins, pushes and leaves use the ``*_tagged`` operations, whose outcomes arrive in the
same queue as ``PHX_EVENT_REPLY`` events carrying the tag. No callback is ever registered with
the library, so no Python code runs on libphx's threads and the GIL is never taken from one.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import math
import weakref
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any, Callable, Union

from ._lib import ffi, lib
from ._provider import ConnectProvider, _Provider
from ._stream import Broadcast, Subscription
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

__all__ = ["PhoenixChannel", "PhoenixSocket"]

_log = logging.getLogger("phx")

# Event kinds (phx_event_kind_t) and payload kinds (phx_payload_kind_t).
_EV_REPLY, _EV_MESSAGE, _EV_SOCKET_STATE, _EV_CHANNEL_STATE, _EV_REJOIN, _EV_OVERFLOW = range(1, 7)
_EV_PRESENCE_JOIN, _EV_PRESENCE_LEAVE, _EV_PRESENCE_SYNC, _EV_REJOINED, _EV_PROBE = range(7, 12)
_PAYLOAD_BINARY = 1

_SOCKET_STATES = (
    PhoenixSocketState.disconnected,
    PhoenixSocketState.connecting,
    PhoenixSocketState.connected,
    PhoenixSocketState.reconnecting,
)
_CHANNEL_STATES = (
    PhoenixChannelState.closed,
    PhoenixChannelState.joining,
    PhoenixChannelState.joined,
    PhoenixChannelState.leaving,
    PhoenixChannelState.errored,
)

#: How many events one wake-up of the loop handles before yielding to other tasks.
_PUMP_BATCH = 512

#: How many events one ``phx_socket_next_events`` call takes.
_TAKE = 64

#: A JSON-serialisable value (usually a dict) or bytes for a binary push.
PushPayload = Union[Mapping[str, Any], bytes, bytearray, memoryview, Any]

def _text(ptr: Any, length: int) -> str | None:
    """A string handed out by libphx, read by pointer and length (never relying on a NUL)."""
    if ptr == ffi.NULL:
        return None
    data: bytes = ffi.unpack(ptr, length)
    return data.decode("utf-8")


def _field_text(ev: Any, name: str) -> str | None:
    return _text(getattr(ev, name), getattr(ev, name + "_len"))


def _payload(kind: int, ptr: Any, length: int) -> Payload:
    data = ffi.unpack(ffi.cast("char *", ptr), length) if length else b""
    if kind == _PAYLOAD_BINARY:
        return data
    return json.loads(data) if data else None


def _encode(value: str, what: str) -> bytes:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    if "\0" in value:
        raise ValueError(f"{what} must not contain NUL characters")
    return value.encode("utf-8")


def _json(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def _millis(seconds: float | None, what: str) -> int:
    """Seconds as libphx's milliseconds; ``None`` is 0, the socket's default."""
    if seconds is None:
        return 0
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0:
        raise ValueError(f"{what} must be a positive number of seconds, not {seconds!r}")
    if math.isinf(seconds):
        return 2**64 - 1
    return max(1, math.ceil(seconds * 1000))


def _check(status: int, what: str) -> None:
    """Raises for a status returned synchronously by a setup call."""
    if status == Status.OK:
        return
    text = ffi.string(lib.phx_status_str(status)).decode()
    if status == Status.INVALID_ARGUMENT:
        raise ValueError(f"{what}: {text}")
    if status in (Status.STATE, Status.CLOSED):
        raise StateError(f"{what}: {text}")
    raise RuntimeError(f"{what}: {text} ({status})")


def _reason(ptr: Any) -> DisconnectReason | None:
    if ptr == ffi.NULL or ptr.kind == ReasonKind.NONE:
        return None
    text = ffi.unpack(ptr.text, ptr.text_len).decode("utf-8", "replace")
    retry_after = ptr.retry_after_ms / 1000 if ptr.retry_after_ms else None
    return DisconnectReason(ReasonKind(ptr.kind), int(ptr.code), text, retry_after)


class _Pending:
    """An operation started with a ``*_tagged`` call, waiting for its reply event."""

    __slots__ = ("future", "op", "channel")

    def __init__(self, future: PhoenixFuture[Any], op: str, channel: PhoenixChannel):
        self.future = future
        self.op = op
        self.channel = channel


def _outcome_error(op: str, status: int, reply_status: str | None, response: Payload | None) -> BaseException:
    """The exception of a completed join or push that did not succeed."""
    if status == Status.REPLY:
        return PhoenixException(reply_status or "error", response, Status.REPLY)
    if status == Status.TIMEOUT:
        return TimeoutError(f"{op} timed out")
    if status == Status.DISCONNECTED:
        return PhoenixException("Socket disconnected", None, Status.DISCONNECTED)
    if status == Status.CHANNEL_ERRORED:
        return PhoenixException("Channel errored", None, Status.CHANNEL_ERRORED)
    if status == Status.CLOSED:
        return PhoenixException("Channel closed", None, Status.CLOSED)
    if status == Status.LEFT_BEFORE_JOIN:
        return PhoenixException("Channel left before join completed", None, Status.LEFT_BEFORE_JOIN)
    text = ffi.string(lib.phx_status_str(status)).decode()
    return PhoenixException(text, None, Status(status) if status in Status._value2member_map_ else Status.INTERNAL)


class _Native:
    """The C handles of a socket, released once (by ``close()`` or the finalizer)."""

    def __init__(self, handle: Any, fd: int, provider: _Provider | None = None):
        self.handle: Any = handle
        self.fd = fd
        self._loop: asyncio.AbstractEventLoop | None = None
        # Lives as long as the C socket, which may call its C callback until freed.
        self.provider = provider
        self.events = ffi.new("phx_event_t *[]", _TAKE)
        self.taken = ffi.new("size_t *")

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        return self._loop

    @loop.setter
    def loop(self, loop: asyncio.AbstractEventLoop | None) -> None:
        self._loop = loop
        if self.provider is not None:
            self.provider.loop = loop

    def release(self) -> None:
        handle, self.handle = self.handle, None
        if handle is None:
            return
        loop, self.loop = self.loop, None
        if loop is not None and not loop.is_closed():
            try:
                loop.remove_reader(self.fd)
            except Exception:  # pragma: no cover - a loop torn down under us
                pass
        lib.phx_socket_free(handle)


def _pump_ref(ref: weakref.ReferenceType[PhoenixSocket]) -> None:
    # The loop holds the socket only weakly, so a forgotten socket can still be collected.
    sock = ref()
    if sock is not None:
        sock._pump()


class PhoenixSocket:
    """A Phoenix Channels V2 socket (one WebSocket, many channels).

    Create it anywhere, then use it from one asyncio event loop (the first one that runs any of
    its coroutines or operations)::

        socket = PhoenixSocket("ws://localhost:4000/socket/websocket", params={"token": "t"})
        await socket.connect()
        channel = socket.channel("room:lobby")
        await channel.join()
        ...
        await socket.disconnect()
        socket.close()          # or: async with PhoenixSocket(...) as socket:

    ``vsn=2.0.0`` is always appended to the URL and ``params`` are added alongside. Lost
    connections are re-established after 1, 2, 4, 8, 16, then every 30 s until ``disconnect()``;
    a heartbeat every 30 s detects a silent server. Durations are in seconds; ``timeout`` is the
    default join and push timeout, ``leave_timeout`` how long a leave waits for the server,
    ``reconnect_delays`` and ``rejoin_delays`` the schedules (the last value repeats),
    ``ca_pem`` extra trusted root certificates (PEM) for ``wss://``, ``event_capacity`` the
    size of libphx's event queue (messages beyond it, unread by the loop, are dropped and
    counted in ``dropped_events``; replies are never dropped).

    The socket owns its C handle: ``close()`` (or leaving ``async with``) frees it, failing
    whatever is still pending with ``PhoenixException("Socket closed")``; a finalizer frees it
    if the object is garbage collected first.
    """

    def __init__(
        self,
        url: str,
        params: Mapping[str, str | int | float | bool] | None = None,
        *,
        heartbeat_interval: float = 30.0,
        timeout: float = 10.0,
        leave_timeout: float = 5.0,
        connect_timeout: float = 10.0,
        reconnect_delays: Iterable[float] = (1, 2, 4, 8, 16, 30),
        rejoin_delays: Iterable[float] = (1, 2, 5, 10),
        ca_pem: str | None = None,
        event_capacity: int = 65536,
        auth_token: str | None = None,
        headers: Mapping[str, str] | None = None,
        max_refusals: int = 0,
        connect_provider: ConnectProvider | None = None,
        provider_timeout: float = 10.0,
    ) -> None:
        if not isinstance(event_capacity, int) or event_capacity <= 0:
            raise ValueError("event_capacity must be a positive int")
        self._url = url
        self._connect_timeout = connect_timeout
        opts = lib.phx_options_new()
        if opts == ffi.NULL:
            raise MemoryError("phx_options_new failed")
        try:
            if params:
                _check(lib.phx_options_set_params_json(opts, _json(dict(params))), "params")
            _check(lib.phx_options_set_heartbeat_ms(opts, _millis(heartbeat_interval, "heartbeat_interval")), "heartbeat_interval")
            _check(lib.phx_options_set_timeout_ms(opts, _millis(timeout, "timeout")), "timeout")
            _check(lib.phx_options_set_leave_timeout_ms(opts, _millis(leave_timeout, "leave_timeout")), "leave_timeout")
            _check(lib.phx_options_set_connect_timeout_ms(opts, _millis(connect_timeout, "connect_timeout")), "connect_timeout")
            for setter, delays, what in (
                (lib.phx_options_set_reconnect_schedule_ms, reconnect_delays, "reconnect_delays"),
                (lib.phx_options_set_rejoin_schedule_ms, rejoin_delays, "rejoin_delays"),
            ):
                ms = [_millis(d, what) for d in delays]
                if not ms:
                    raise ValueError(f"{what} must not be empty")
                _check(setter(opts, ffi.new("uint64_t[]", ms), len(ms)), what)
            if ca_pem is not None:
                _check(lib.phx_options_set_ca_pem(opts, _encode(ca_pem, "ca_pem")), "ca_pem")
            if auth_token is not None:
                _check(lib.phx_options_set_auth_token(opts, _encode(auth_token, "auth_token")), "auth_token")
            for name, value in (headers or {}).items():
                _check(
                    lib.phx_options_add_header(opts, _encode(name, "header name"), _encode(value, "header value")),
                    f"header {name!r}",
                )
            if isinstance(max_refusals, bool) or not isinstance(max_refusals, int) or not 0 <= max_refusals < 2**32:
                raise ValueError("max_refusals must be an int from 0 (never stop) to 2**32-1")
            _check(lib.phx_options_set_max_refusals(opts, max_refusals), "max_refusals")
            provider = None
            if connect_provider is not None:
                if not callable(connect_provider):
                    raise TypeError("connect_provider must be callable")
                provider = _Provider(connect_provider)
                timeout_ms = _millis(provider_timeout, "provider_timeout")
                _check(
                    lib.phx_options_set_connect_provider(opts, provider.c_callback, ffi.NULL, ffi.NULL, timeout_ms),
                    "connect_provider",
                )
            out = ffi.new("phx_socket_t **")
            _check(lib.phx_socket_new(_encode(url, "url"), opts, out), f"invalid socket URL {url!r}")
        finally:
            lib.phx_options_free(opts)
        handle = out[0]
        fd = ffi.new("int *")
        status = lib.phx_socket_events_enable(handle, event_capacity, ffi.NULL, ffi.NULL, ffi.NULL)
        if status == Status.OK:
            status = lib.phx_socket_event_fd(handle, fd)
        if status != Status.OK:
            lib.phx_socket_free(handle)
            _check(status, "enabling the event queue")
        self._native = _Native(handle, fd[0], provider)
        self._finalizer = weakref.finalize(self, _Native.release, self._native)
        self._tags = itertools.count(1)
        self._pending: dict[int, _Pending] = {}
        # Live channel objects by channel instance id (see channel()).
        self._channels: dict[int, PhoenixChannel] = {}
        self._states: Broadcast[PhoenixSocketState] = Broadcast()
        self._connect_waiters: list[asyncio.Future[None]] = []
        self._dropped = 0
        self._probes: dict[int, asyncio.Future[float]] = {}

    # ---- public API --------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The URL the socket was created with (without ``vsn`` and params)."""
        return self._url

    @property
    def state(self) -> PhoenixSocketState:
        """The current connection state."""
        handle = self._native.handle
        if handle is None:
            return PhoenixSocketState.disconnected
        out = ffi.new("uint32_t *")
        _check(lib.phx_socket_state(handle, out), "phx_socket_state")
        return _SOCKET_STATES[out[0]]

    @property
    def states(self) -> Subscription[PhoenixSocketState]:
        """A new subscription to every state change from now on (an async iterator; several
        may be open at once, each sees every change). It ends when the socket is closed."""
        return self._states.subscribe()

    @property
    def last_reason(self) -> DisconnectReason | None:
        """Why the last connection ended or the last attempt failed (``None`` if none has)."""
        handle = self._native.handle
        if handle is None:
            return None
        out = ffi.new("phx_reason_t *")
        _check(lib.phx_socket_last_reason(handle, out), "phx_socket_last_reason")
        return _reason(out)

    @property
    def dropped_events(self) -> int:
        """Messages and state events lost because the event queue was full (normally 0)."""
        return self._dropped

    @property
    def closed(self) -> bool:
        """True once ``close()`` freed the socket."""
        return self._native.handle is None

    async def connect(self, timeout: float | None = None) -> None:
        """Opens the WebSocket and returns once it is connected. Idempotent: safe to call when
        already connected or connecting.

        Raises ``TimeoutError`` if no connection opened within ``timeout`` seconds (default:
        the socket's ``connect_timeout``); the socket keeps trying on its reconnect schedule.
        Raises ``PhoenixException("Socket disconnected")`` if ``disconnect()`` is called
        meanwhile.
        """
        handle = self._require_open("connect()")
        loop = self._bind_loop()
        _check(lib.phx_socket_connect(handle), "phx_socket_connect")
        if self.state is PhoenixSocketState.connected:
            return
        waiter: asyncio.Future[None] = loop.create_future()
        self._connect_waiters.append(waiter)
        wait = self._connect_timeout if timeout is None else timeout
        try:
            await asyncio.wait_for(asyncio.shield(waiter), wait)
        except asyncio.TimeoutError:
            raise TimeoutError(f"not connected within {wait} s (the socket keeps trying)") from None
        finally:
            if waiter in self._connect_waiters:
                self._connect_waiters.remove(waiter)
            if not waiter.done():
                waiter.cancel()

    async def disconnect(self) -> None:
        """Closes the WebSocket (code 1000) and stops reconnecting. Every channel becomes
        ``closed``; every pending and buffered join or push fails with
        ``PhoenixException("Channel closed")`` before this returns. ``connect()`` may be called
        again later (with fresh channels from ``channel(topic)``)."""
        handle = self._native.handle
        if handle is None:
            return
        self._bind_loop()
        pending = [p.future for p in self._pending.values()]
        _check(lib.phx_socket_disconnect(handle), "phx_socket_disconnect")
        self._resolve_connect_waiters(PhoenixException("Socket disconnected", None, Status.DISCONNECTED))
        self._pump(limit=None)
        if pending:
            # Every pending and buffered operation completes at once; wait for their events.
            await asyncio.wait(pending, timeout=10)
        # Let the tasks woken by the completions run before returning.
        await asyncio.sleep(0)

    def channel(self, topic: str) -> PhoenixChannel:
        """Returns the channel for ``topic``: the same object on repeated calls while that
        channel is not closed after a join or leave, a fresh one after that (so a refused or
        left channel can be joined again through a new instance)."""
        handle = self._require_open("channel()")
        out = ffi.new("phx_channel_t **")
        _check(lib.phx_socket_channel(handle, _encode(topic, "topic"), out), "phx_socket_channel")
        chandle = out[0]
        cid = _channel_id(chandle)
        existing = self._channels.get(cid)
        if existing is not None and existing._handle is not None:
            lib.phx_channel_free(chandle)  # we already hold a reference to this instance
            return existing
        channel = PhoenixChannel(self, chandle, topic, cid)
        self._channels[cid] = channel
        return channel

    def close(self) -> None:
        """Frees the socket: closes its connection, fails every pending operation with
        ``PhoenixException("Socket closed")``, ends every ``states`` and ``messages``
        subscription and releases every channel object. Idempotent."""
        if self._native.handle is None:
            return
        if self._native.loop is not None and not self._native.loop.is_closed():
            self._pump(limit=None)
        self._finalizer()  # _Native.release: removes the reader, then phx_socket_free
        pending, self._pending = self._pending, {}
        for p in pending.values():
            if not p.future.done():
                p.future.set_exception(PhoenixException("Socket closed", None, Status.CLOSED))
        for waiter in self._connect_waiters:
            if not waiter.done():
                waiter.set_exception(PhoenixException("Socket closed", None, Status.CLOSED))
        self._connect_waiters.clear()
        probes, self._probes = self._probes, {}
        for probe in probes.values():
            if not probe.done():
                probe.set_exception(PhoenixException("Socket closed", None, Status.CLOSED))
        channels, self._channels = self._channels, {}
        for channel in channels.values():
            channel._release()
        self._states.end()

    async def __aenter__(self) -> PhoenixSocket:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else self.state.value
        return f"<PhoenixSocket {self._url!r} {state}>"

    # ---- internals ---------------------------------------------------------------------------

    def _require_open(self, what: str) -> Any:
        handle = self._native.handle
        if handle is None:
            raise StateError(f"{what} on a closed PhoenixSocket")
        return handle

    def _bind_loop(self) -> asyncio.AbstractEventLoop:
        """The running loop, registering the event descriptor with it on first use."""
        loop = asyncio.get_running_loop()
        native = self._native
        if native.loop is loop or native.handle is None:
            return loop
        if native.loop is not None and not native.loop.is_closed():
            raise RuntimeError("this PhoenixSocket is used from another event loop")
        native.loop = loop
        loop.add_reader(native.fd, _pump_ref, weakref.ref(self))
        self._pump()  # whatever was queued before
        return loop

    def _start(self, channel: PhoenixChannel, op: str, call: Callable[[int], int]) -> PhoenixFuture[Any]:
        """Starts a tagged operation; its outcome completes the returned future."""
        loop = self._bind_loop()
        future: PhoenixFuture[Any] = PhoenixFuture(loop=loop)
        tag = next(self._tags)
        self._pending[tag] = _Pending(future, op, channel)
        state_before = channel.state
        status = call(tag)
        if status != Status.OK:
            del self._pending[tag]
            if status == Status.INVALID_ARGUMENT:
                raise ValueError(f"{op}: {ffi.string(lib.phx_status_str(status)).decode()}")
            future.set_exception(channel._sync_error(op, status, state_before))
        return future

    def _pump(self, limit: int | None = _PUMP_BATCH) -> None:
        """Takes queued events (at most ``limit``), a batch per call, and dispatches them."""
        native = self._native
        events, taken = native.events, native.taken
        count = 0
        while native.handle is not None and (limit is None or count < limit):
            want = _TAKE if limit is None else min(_TAKE, limit - count)
            status = lib.phx_socket_next_events(native.handle, events, want, 0, taken)
            if status != Status.OK:
                break
            n = int(taken[0])
            try:
                for i in range(n):
                    try:
                        self._dispatch(events[i])
                    except Exception:  # a bug here must not stop delivery of later events
                        _log.exception("phx: failed to dispatch an event")
            finally:
                lib.phx_events_free(events, n)
            count += n

    def _channel_of(self, ev: Any) -> PhoenixChannel | None:
        """The live channel object of an event's channel instance (by id, never by topic: an
        old instance of a topic may still be leaving while a new one joins)."""
        return self._channels.get(int(ev.channel_id))

    def stats(self) -> dict[str, Any]:
        """The socket's statistics (``phx_socket_stats``): ``rtt_last`` and ``rtt_smoothed``
        (seconds, ``None`` before the first heartbeat answer), ``connects``, ``reconnects``,
        ``disconnects`` (counts by ``ReasonKind`` name), ``frames_in``, ``bytes_in``,
        ``frames_out``, ``bytes_out``, ``pushes_in_flight``, ``pushes_buffered``,
        ``events_queued``."""
        handle = self._require_open("stats")
        st = ffi.new("phx_socket_stats_t *")
        st.size = ffi.sizeof("phx_socket_stats_t")
        _check(lib.phx_socket_stats(handle, st), "phx_socket_stats")

        def rtt(us: int) -> float | None:
            return us / 1e6 if us else None

        return {
            "rtt_last": rtt(int(st.rtt_last_us)),
            "rtt_smoothed": rtt(int(st.rtt_smoothed_us)),
            "connects": st.connects,
            "reconnects": st.reconnects,
            "disconnects": {k.name.lower(): int(st.disconnects[int(k)]) for k in ReasonKind if int(k) > 0},
            "frames_in": st.frames_in,
            "bytes_in": st.bytes_in,
            "frames_out": st.frames_out,
            "bytes_out": st.bytes_out,
            "pushes_in_flight": st.pushes_in_flight,
            "pushes_buffered": st.pushes_buffered,
            "events_queued": st.events_queued,
        }

    def probe(self) -> asyncio.Future[float]:
        """Sends a heartbeat at once; the future resolves with its round trip in seconds, or
        fails with ``PhoenixException`` (not connected, dropped) or ``TimeoutError`` (no answer
        within the heartbeat timeout; the connection is then closed and reconnects)."""
        handle = self._require_open("probe")
        loop = self._bind_loop()
        tag = next(self._tags)
        future: asyncio.Future[float] = loop.create_future()
        _check(lib.phx_socket_probe_tagged(handle, tag), "phx_socket_probe_tagged")
        self._probes[tag] = future
        return future

    def _dispatch(self, ev: Any) -> None:
        kind = ev.kind
        if kind == _EV_REPLY:
            pending = self._pending.pop(int(ev.tag), None)
            if pending is None:
                return
            has_reply = ev.reply_status != ffi.NULL
            response = _payload(ev.payload_kind, ev.payload, ev.payload_len) if has_reply else None
            pending.channel._complete(pending, int(ev.status), _field_text(ev, "reply_status"), response)
        elif kind == _EV_MESSAGE:
            channel = self._channel_of(ev)
            if channel is not None:
                topic = _field_text(ev, "topic")
                channel._messages.publish(
                    PhoenixMessage(
                        _field_text(ev, "join_ref"),
                        _field_text(ev, "ref"),
                        topic or "",
                        _field_text(ev, "event") or "",
                        _payload(ev.payload_kind, ev.payload, ev.payload_len),
                    )
                )
        elif kind == _EV_SOCKET_STATE:
            state = _SOCKET_STATES[ev.state]
            self._states.publish(state)
            if state is PhoenixSocketState.connected:
                self._resolve_connect_waiters(None)
        elif kind == _EV_CHANNEL_STATE:
            channel = self._channel_of(ev)
            if channel is not None:
                channel._on_state(_CHANNEL_STATES[ev.state])
        elif kind == _EV_REJOIN:
            channel = self._channel_of(ev)
            if channel is not None:
                has_reply = ev.reply_status != ffi.NULL
                response = _payload(ev.payload_kind, ev.payload, ev.payload_len) if has_reply else None
                channel._rejoins.publish((Status(ev.status), response))
        elif kind in (_EV_PRESENCE_JOIN, _EV_PRESENCE_LEAVE, _EV_PRESENCE_SYNC):
            channel = self._channel_of(ev)
            if channel is not None:
                if kind == _EV_PRESENCE_SYNC:
                    channel._presence_events.publish(("sync", None, None, None))
                else:
                    current = _payload(ev.payload_kind, ev.payload, ev.payload_len) if ev.payload != ffi.NULL else None
                    metas = json.loads(_field_text(ev, "metas") or "[]")
                    what = "join" if kind == _EV_PRESENCE_JOIN else "leave"
                    channel._presence_events.publish((what, _field_text(ev, "key"), current, metas))
        elif kind == _EV_REJOINED:
            channel = self._channel_of(ev)
            if channel is not None:
                response = _payload(ev.payload_kind, ev.payload, ev.payload_len)
                channel._rejoined.publish((response, bool(ev.missed)))
        elif kind == _EV_PROBE:
            future = self._probes.pop(int(ev.tag), None)
            if future is not None and not future.done():
                status = int(ev.status)
                if status == Status.OK:
                    future.set_result(int(ev.rtt_us) / 1e6)
                elif status == Status.TIMEOUT:
                    future.set_exception(TimeoutError("probe: no heartbeat reply"))
                else:
                    text = ffi.string(lib.phx_status_str(status)).decode()
                    future.set_exception(PhoenixException(f"probe: {text}", None, Status(status)))
        elif kind == _EV_OVERFLOW:
            self._dropped += int(ev.dropped)
            _log.warning("phx: %d events dropped (the event queue was full)", int(ev.dropped))
            # A dropped "connected" event must not leave connect() waiting.
            if self.state is PhoenixSocketState.connected:
                self._resolve_connect_waiters(None)

    def _resolve_connect_waiters(self, error: BaseException | None) -> None:
        waiters, self._connect_waiters = self._connect_waiters, []
        for waiter in waiters:
            if waiter.done():
                continue
            if error is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(error)

    def _forget(self, channel: PhoenixChannel) -> None:
        if self._channels.get(channel._id) is channel:
            del self._channels[channel._id]


def _channel_id(handle: Any) -> int:
    return int(lib.phx_channel_id(handle))


def _free_channel(holder: list[Any]) -> None:
    handle = holder[0]
    holder[0] = None
    if handle is not None:
        lib.phx_channel_free(handle)


class PhoenixChannel:
    """A channel of a ``PhoenixSocket``; obtain it with ``socket.channel(topic)``, never
    construct it directly.

    ``join()``, ``push()`` and ``leave()`` start their operation at once and return a
    ``PhoenixFuture`` (an ``asyncio.Future``): ``await`` it for the outcome, or call
    ``.ignore()`` on it for fire-and-forget. Pushes made while the channel is ``joining`` or
    ``errored`` are buffered and sent once the (re)join succeeds. Each instance can be joined
    once; after it is closed, ``socket.channel(topic)`` gives a fresh instance.

    Outcomes: the server's response payload (a ``dict``, or ``bytes`` for a binary reply);
    ``PhoenixException`` when the server replied with another status than ``"ok"`` (with its
    response) or the operation ended without a reply (``"Socket disconnected"``, ``"Channel
    left before join completed"``, ...); ``TimeoutError`` after the timeout (10 s by default);
    ``StateError`` for ``join()`` twice, ``push()`` before ``join()`` or on a closed or leaving
    channel.
    """

    def __init__(self, socket: PhoenixSocket, handle: Any, topic: str, channel_id: int) -> None:
        self._socket = socket
        self._topic = topic
        self._id = channel_id
        self._holder: list[Any] = [handle]
        self._finalizer = weakref.finalize(self, _free_channel, self._holder)
        self._join_called = False
        self._messages: Broadcast[PhoenixMessage] = Broadcast()
        self._state_events: Broadcast[PhoenixChannelState] = Broadcast()
        self._rejoins: Broadcast[tuple[Status, Payload | None]] = Broadcast()
        self._presence_events: Broadcast[tuple[str, str | None, Any, Any]] = Broadcast()
        self._rejoined: Broadcast[tuple[Payload, bool]] = Broadcast()
        self._activated = False

    @property
    def _handle(self) -> Any:
        return self._holder[0]

    @property
    def topic(self) -> str:
        """The channel's topic."""
        return self._topic

    @property
    def socket(self) -> PhoenixSocket:
        """The socket this channel belongs to."""
        return self._socket

    @property
    def state(self) -> PhoenixChannelState:
        """The current state (``closed`` also once the channel object or its socket is closed)."""
        handle = self._handle
        if handle is None:
            return PhoenixChannelState.closed
        out = ffi.new("uint32_t *")
        _check(lib.phx_channel_state(handle, out), "phx_channel_state")
        return _CHANNEL_STATES[out[0]]

    @property
    def messages(self) -> Subscription[PhoenixMessage]:
        """A new subscription to the channel's application messages from now on (an async
        iterator; several may be open at once, each sees every message). Subscribe before
        ``join()`` to miss nothing. It ends after the channel closes for good."""
        return self._messages.subscribe()

    @property
    def states(self) -> Subscription[PhoenixChannelState]:
        """A new subscription to the channel's state changes from now on; it ends after the
        channel's final ``closed``."""
        return self._state_events.subscribe()

    @property
    def rejoins(self) -> Subscription[tuple[Status, Payload | None]]:
        """A new subscription to the results of automatic rejoins: ``(status, response)``."""
        return self._rejoins.subscribe()

    @property
    def presence(self) -> dict[str, list[Any]]:
        """The channel's presence list now: ``{key: [meta, ...]}`` in the order keys joined
        (folded from ``presence_state``/``presence_diff`` as phoenix.js's ``Presence``)."""
        handle = self._handle
        if handle is None:
            return {}
        snap = ffi.new("phx_presence_t **")
        _check(lib.phx_channel_presence(handle, snap), "phx_channel_presence")
        try:
            text, length = ffi.new("uint8_t **"), ffi.new("size_t *")
            _check(lib.phx_presence_json(snap[0], text, length), "phx_presence_json")
            raw: dict[str, Any] = json.loads(ffi.unpack(ffi.cast("char *", text[0]), length[0]))
        finally:
            lib.phx_presence_free(snap[0])
        return {key: list(value.get("metas", [])) for key, value in raw.items()}

    @property
    def presence_changes(self) -> Subscription[tuple[str, str | None, Any, Any]]:
        """A new subscription to presence changes: ``("join", key, current, joined_metas)``,
        ``("leave", key, current, left_metas)`` (``current``: the key's metas before a join,
        ``None`` when it was absent, or after a leave) and ``("sync", None, None, None)`` after
        each ``presence_state``/``presence_diff``, as phoenix.js's onJoin/onLeave/onSync."""
        return self._presence_events.subscribe()

    @property
    def rejoined(self) -> Subscription[tuple[Payload, bool]]:
        """A new subscription to successful automatic rejoins: ``(response, missed)``; ``missed``
        is true when the channel had been joined before, so messages may have been missed."""
        return self._rejoined.subscribe()

    def join(self, payload: Mapping[str, Any] | None = None, *, timeout: float | None = None) -> PhoenixFuture[Payload]:
        """Sends ``phx_join`` with ``payload`` (default ``{}``); the future resolves with the
        server's response. ``PhoenixException`` carries a refusal's response; on
        ``TimeoutError`` the channel is ``errored`` and is rejoined automatically. A second
        call on the same instance fails with ``StateError``."""
        body = None if payload is None else _json(payload)
        timeout_ms = _millis(timeout, "timeout")
        handle = self._handle
        if handle is None:
            return self._failed(StateError("join() on a closed PhoenixChannel"))
        self._join_called = True
        self._activated = True
        c_body = ffi.NULL if body is None else body
        return self._socket._start(self, "join", lambda tag: lib.phx_channel_join_tagged(handle, c_body, timeout_ms, tag))

    def push(self, event: str, payload: PushPayload = None, *, timeout: float | None = None) -> PhoenixFuture[Payload]:
        """Sends ``event`` with ``payload`` (a JSON-serialisable value, usually a dict, default
        ``{}``; ``bytes`` send a binary frame); the future resolves with the server's reply
        payload. Sent at once when joined, buffered while joining or errored."""
        ev = _encode(event, "event")
        timeout_ms = _millis(timeout, "timeout")
        handle = self._handle
        if handle is None:
            return self._failed(StateError("push() on a closed PhoenixChannel"))
        if isinstance(payload, (bytes, bytearray, memoryview)):
            data = bytes(payload)
            return self._socket._start(
                self, "push", lambda tag: lib.phx_channel_push_binary_tagged(handle, ev, data, len(data), timeout_ms, tag)
            )
        body = _json({} if payload is None else payload)
        return self._socket._start(self, "push", lambda tag: lib.phx_channel_push_tagged(handle, ev, body, timeout_ms, tag))

    def leave(self, *, timeout: float | None = None) -> PhoenixFuture[None]:
        """Sends ``phx_leave`` and resolves once the server replied or ``timeout`` (default
        5 s) passed: best-effort, it never fails because of the server. The channel is
        ``closed`` either way; a pending join fails with ``PhoenixException("Channel left
        before join completed")`` and buffered pushes fail too."""
        timeout_ms = _millis(timeout, "timeout")
        handle = self._handle
        if handle is None:
            return self._failed(StateError("leave() on a closed PhoenixChannel"))
        return self._socket._start(self, "leave", lambda tag: lib.phx_channel_leave_tagged(handle, timeout_ms, tag))

    def close(self) -> None:
        """Releases this object's reference to the C channel without leaving it; the object is
        unusable afterwards (``socket.channel(topic)`` gives a new one). Idempotent."""
        if self._handle is None:
            return
        self._socket._forget(self)
        self._release()

    async def __aenter__(self) -> PhoenixChannel:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Leaves the channel if it is joined, joining or errored, then releases it."""
        if self._handle is not None and self.state not in (PhoenixChannelState.closed, PhoenixChannelState.leaving):
            await self.leave()
        self.close()

    def __repr__(self) -> str:
        return f"<PhoenixChannel {self._topic!r} {self.state.value}>"

    # ---- internals ---------------------------------------------------------------------------

    def _failed(self, exc: BaseException) -> PhoenixFuture[Any]:
        future: PhoenixFuture[Any] = PhoenixFuture(loop=self._socket._bind_loop())
        future.set_exception(exc)
        return future

    def _release(self) -> None:
        self._finalizer()
        self._messages.end()
        self._state_events.end()
        self._rejoins.end()
        self._presence_events.end()
        self._rejoined.end()

    def _sync_error(self, op: str, status: int, state: PhoenixChannelState) -> BaseException:
        """The exception for an operation the library refused when it was called (``state``:
        the channel's state just before the call)."""
        if status == Status.STATE:
            if op == "join":
                return StateError("join() called twice on the same instance: get a new one from socket.channel(topic)")
            if op == "push" and not self._join_called:
                return StateError("push() called before join()")
            if op == "push":
                return StateError(f"push() on a {state.value} channel")
            return StateError(f"{op}() on a {state.value} channel")
        if status == Status.CLOSED:
            return StateError(f"{op}() after the socket was closed")
        return _outcome_error(op, status, None, None)

    def _complete(self, pending: _Pending, status: int, reply_status: str | None, response: Payload | None) -> None:
        future = pending.future
        if future.done():  # cancelled by the caller: the outcome is dropped
            return
        if pending.op == "leave":
            future.set_result(None)  # best-effort: the channel is closed whatever the outcome
        elif status == Status.OK:
            future.set_result({} if response is None else response)
        else:
            future.set_exception(_outcome_error(pending.op, status, reply_status, response))

    def _on_state(self, state: PhoenixChannelState) -> None:
        if state is not PhoenixChannelState.closed:
            self._activated = True
        self._state_events.publish(state)
        if state is PhoenixChannelState.closed and self._activated:
            # This instance is finished: the next channel(topic) returns a fresh one.
            self._socket._forget(self)
            self._messages.end()
            self._state_events.end()
            self._rejoins.end()
            self._presence_events.end()
            self._rejoined.end()
