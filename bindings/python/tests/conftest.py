"""Fixtures: a fresh phx-testserver per test, its fault controls, and sockets closed after use.

The server binary is ``$PHX_TESTSERVER_BIN`` (default: ``target/debug/phx-testserver`` of the
repository). It is started with ``--port 0 --exit-on-stdin-eof`` and prints its URL first.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import phx

ROOT = Path(__file__).resolve().parents[3]

#: Short schedules so reconnects and rejoins happen within a test.
FAST = dict(reconnect_delays=(0.05, 0.1, 0.2), rejoin_delays=(0.05, 0.1, 0.2))


class Server:
    """A running phx-testserver and its HTTP fault controls (docs/testserver.md)."""

    def __init__(self, *flags: str) -> None:
        binary = os.environ.get("PHX_TESTSERVER_BIN", str(ROOT / "target" / "debug" / "phx-testserver"))
        stderr = None if os.environ.get("PHX_TEST_SERVER_LOG") else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            [binary, "--port", "0", "--exit-on-stdin-eof", *flags],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode().strip()
        if not line.startswith("ws://"):
            self.stop()
            raise RuntimeError(f"phx-testserver printed {line!r} instead of its URL")
        self.url = line
        self.base = line.replace("ws://", "http://", 1).rsplit("/socket/websocket", 1)[0]

    def control_sync(self, name_and_query: str) -> Any:
        with urllib.request.urlopen(f"{self.base}/control/{name_and_query}", timeout=10) as r:
            body = r.read()
        return json.loads(body) if body else None

    async def control(self, name_and_query: str) -> Any:
        """GET /control/<name_and_query> (off the loop's thread) and returns the JSON body."""
        return await asyncio.to_thread(self.control_sync, name_and_query)

    async def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.control("stats")
        return result

    async def log(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self.control("log")
        return result

    async def frames(self, event: str | None = None) -> list[list[Any]]:
        """The text frames the server received, decoded, optionally only those of ``event``."""
        out = []
        for entry in await self.log():
            if "frame" in entry:
                frame = json.loads(entry["frame"])
                if event is None or frame[3] == event:
                    out.append(frame)
        return out

    async def wait_for_frame(self, event: str, count: int = 1, timeout: float = 10.0) -> list[list[Any]]:
        """Polls the server's log until it received ``count`` frames of ``event`` (the server
        offers no notification, so this bounded poll is the only way to know)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            frames = await self.frames(event)
            if len(frames) >= count:
                return frames
            if loop.time() > deadline:
                raise AssertionError(f"the server received {len(frames)} {event!r} frames, expected {count}")
            await asyncio.sleep(0.02)

    async def wait_reachable(self, timeout: float = 10.0) -> None:
        """Waits until the control endpoint answers again (after a restart)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                await self.control("stats")
                return
            except (urllib.error.URLError, ConnectionError, OSError):
                if loop.time() > deadline:
                    raise
                await asyncio.sleep(0.02)

    def stop(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def auth_server() -> Iterator[Server]:
    """A test server whose socket is mounted with ``auth_token: true`` (Phoenix 1.8)."""
    srv = Server("--auth-token")
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
async def make_socket(server: Server) -> AsyncIterator[Callable[..., phx.PhoenixSocket]]:
    """Creates sockets for the test server (fast reconnect/rejoin by default) and closes them
    after the test."""
    sockets: list[phx.PhoenixSocket] = []

    def make(url: str | None = None, **kwargs: Any) -> phx.PhoenixSocket:
        options = {**FAST, **kwargs}
        sock = phx.PhoenixSocket(url or server.url, **options)
        sockets.append(sock)
        return sock

    yield make
    for sock in sockets:
        sock.close()


async def next_item(sub: phx.Subscription[Any], timeout: float = 10.0) -> Any:
    """The next item of a subscription, failing the test if none comes in time."""
    return await asyncio.wait_for(sub.__anext__(), timeout)


async def wait_state(sub: phx.Subscription[Any], wanted: Any, timeout: float = 10.0) -> list[Any]:
    """Reads a state subscription until ``wanted`` comes; returns everything read."""
    seen = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        state = await next_item(sub, max(0.01, deadline - loop.time()))
        seen.append(state)
        if state == wanted:
            return seen


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Lets other tasks run until ``condition()`` holds (for state kept by another task of the
    test itself, which has no event of its own to await); fails the test after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    spins = 0
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        spins += 1
        await asyncio.sleep(0 if spins < 100 else 0.01)
