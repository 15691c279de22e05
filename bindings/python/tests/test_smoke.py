import asyncio
import phx
from conftest import next_item

async def test_quick(make_socket, server):
    socket = make_socket()
    await socket.connect()
    assert socket.state is phx.PhoenixSocketState.connected
    channel = socket.channel("room:lobby")
    assert socket.channel("room:lobby") is channel
    msgs = channel.messages
    r = await channel.join()
    assert r == {"joined": "room:lobby"}
    assert await channel.push("new_msg", {"body": "hello"}) == {}
    m = await next_item(msgs)
    assert m.event == "new_msg" and m.payload == {"body": "hello"}
    await channel.leave()
    assert channel.state is phx.PhoenixChannelState.closed
    await socket.disconnect()
    assert socket.state is phx.PhoenixSocketState.disconnected
