"""Presence lists and changes, rejoin awareness, statistics and probes over the event queue."""

from __future__ import annotations

import asyncio
from typing import Any

from conftest import Server, next_item


async def _until(sub: Any, kind: str) -> Any:
    while True:
        item = await next_item(sub)
        if item[0] == kind:
            return item


async def test_presence_follows_the_transcript_steps(make_socket: Any, server: Server) -> None:
    alice = make_socket(params={"token": "alice"})
    await alice.connect()
    a = alice.channel("presence:room1")
    changes = a.presence_changes
    await a.join()
    # (a) alice's own join, then a sync.
    what, key, current, metas = await _until(changes, "join")
    assert (what, key, current) == ("join", "alice", None)
    assert [m["device"] for m in metas] == ["default"]
    await _until(changes, "sync")
    assert list(a.presence) == ["alice"]

    # (b) bob joins with device laptop.
    bob = make_socket(params={"token": "bob"})
    await bob.connect()
    b = bob.channel("presence:room1")
    await b.join({"device": "laptop"})
    _, key, current, metas = await _until(changes, "join")
    assert (key, current, [m["device"] for m in metas]) == ("bob", None, ["laptop"])
    await _until(changes, "sync")
    assert {k: [m["device"] for m in v] for k, v in a.presence.items()} == {
        "alice": ["default"],
        "bob": ["laptop"],
    }

    # (d) bob updates: the new meta joins, the old one leaves.
    await b.push("update", {"device": "desktop"})
    _, key, current, metas = await _until(changes, "join")
    assert [m["device"] for m in current] == ["laptop"]
    assert [m["device"] for m in metas] == ["desktop"]
    _, key, current, metas = await _until(changes, "leave")
    assert [m["device"] for m in metas] == ["laptop"]
    assert [m["device"] for m in current] == ["desktop"]


async def test_a_rejoin_reports_its_response_and_missed_messages(make_socket: Any, server: Server) -> None:
    socket = make_socket()
    await socket.connect()
    channel = socket.channel("room:lobby")
    rejoined = channel.rejoined
    await channel.join()
    await server.control("drop")
    response, missed = await next_item(rejoined)
    assert response == {"joined": "room:lobby"}
    assert missed is True


async def test_statistics_and_probe(make_socket: Any, server: Server) -> None:
    socket = make_socket()
    await socket.connect()
    stats = socket.stats()
    assert (stats["connects"], stats["reconnects"], stats["rtt_last"]) == (1, 0, None)
    channel = socket.channel("room:lobby")
    await channel.join()
    rtt = await socket.probe()
    assert 0 < rtt < 5
    stats = socket.stats()
    assert stats["rtt_last"] == rtt
    assert stats["frames_out"] == 2 and stats["frames_in"] == 2  # join, heartbeat and replies
    await server.control("drop")
    for _ in range(500):  # reconnects within 50 ms (FAST schedule)
        if socket.stats()["reconnects"] == 1:
            break
        await asyncio.sleep(0.02)
    assert socket.stats()["disconnects"]["io"] == 1
