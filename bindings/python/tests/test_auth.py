"""Authentication: the auth token (Phoenix 1.8 subprotocols), upgrade headers, the connect
provider (sync and async, asked before every attempt), refused upgrades (status, Retry-After,
giving up)."""

from __future__ import annotations

import asyncio
from typing import Any

from conftest import FAST, Server, wait_state
from phx import ConnectCredentials, PhoenixSocket, PhoenixSocketState, ReasonKind


async def connect_info(socket: PhoenixSocket) -> dict[str, Any]:
    """What the server's connect/3 was given (the test app's ``connect_info`` topic)."""
    channel = socket.channel("connect_info")
    info: dict[str, Any] = await channel.join()
    await channel.leave()
    return info


async def test_auth_token_and_headers_reach_connect(auth_server: Server) -> None:
    socket = PhoenixSocket(
        auth_server.url,
        params={"token": "p"},
        auth_token="s3cr+t/?",
        headers={"X-Api-Key": "k-1"},
        **FAST,
    )
    try:
        await socket.connect()
        info = await connect_info(socket)
        assert info["auth_token"] == "s3cr+t/?"
        assert info["x_headers"] == {"x-api-key": "k-1"}
        assert info["params"] == {"token": "p", "vsn": "2.0.0"}
    finally:
        socket.close()


async def test_bad_headers_are_refused_at_creation(server: Server) -> None:
    for headers in ({"Sec-WebSocket-Protocol": "x"}, {"bad name": "v"}, {"X-A": "a\nb"}):
        try:
            PhoenixSocket(server.url, headers=headers)
        except ValueError:
            continue
        raise AssertionError(f"{headers} accepted")


async def test_async_provider_is_asked_before_every_attempt(auth_server: Server) -> None:
    asked = 0

    async def provider() -> ConnectCredentials:
        nonlocal asked
        asked += 1
        await asyncio.sleep(0.01)  # a token refresh takes time
        return ConnectCredentials(params={"token": f"fresh-{asked}"}, auth_token=f"tok-{asked}")

    socket = PhoenixSocket(auth_server.url, connect_provider=provider, **FAST)
    try:
        states = socket.states
        await socket.connect()
        info = await connect_info(socket)
        assert (info["params"]["token"], info["auth_token"]) == ("fresh-1", "tok-1")
        await auth_server.control("drop")
        await wait_state(states, PhoenixSocketState.reconnecting)
        await wait_state(states, PhoenixSocketState.connected)
        info = await connect_info(socket)
        assert (info["params"]["token"], info["auth_token"]) == ("fresh-2", "tok-2")
        assert asked == 2
    finally:
        socket.close()


async def test_a_failing_provider_is_a_reason(server: Server) -> None:
    def provider() -> ConnectCredentials:
        raise RuntimeError("secret-in-message")

    socket = PhoenixSocket(server.url, connect_provider=provider, **FAST)
    try:
        states = socket.states
        asyncio.ensure_future(socket.connect(timeout=5)).add_done_callback(lambda f: f.exception())
        await wait_state(states, PhoenixSocketState.reconnecting)
        reason = socket.last_reason
        assert reason is not None and reason.kind is ReasonKind.PROVIDER
        assert "RuntimeError" in reason.text and "secret-in-message" not in reason.text
    finally:
        socket.close()


async def test_refusals_report_retry_after_and_give_up(server: Server) -> None:
    await server.control("refuse?status=429&retry_after=1")
    socket = PhoenixSocket(server.url, max_refusals=2, **FAST)
    try:
        states = socket.states
        asyncio.ensure_future(socket.connect(timeout=10)).add_done_callback(lambda f: f.exception())
        await wait_state(states, PhoenixSocketState.reconnecting)
        first = socket.last_reason
        assert first is not None and (first.kind, first.code, first.retry_after) == (
            ReasonKind.HTTP_STATUS,
            429,
            1.0,
        )
        await wait_state(states, PhoenixSocketState.disconnected)
        last = socket.last_reason
        assert last is not None and (last.kind, last.code) == (ReasonKind.GAVE_UP, 429)
        assert socket.state is PhoenixSocketState.disconnected
    finally:
        socket.close()
