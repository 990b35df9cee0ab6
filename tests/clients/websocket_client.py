#!/usr/bin/python3
"""WebSocket scenarios against a running plugd, with Debian's python3-websockets (10.4,
asyncio API) as the real client. Usage: websocket_client.py SCENARIO PORT [ARGS...]

Each scenario prints what it saw to stderr and exits 0 when every check held, 1 with the
first failed check otherwise. Every wait is bounded (asyncio.wait_for)."""
import asyncio
import sys

import websockets

TIMEOUT = 10


def fail(message):
    print("FAILED: " + message, file=sys.stderr, flush=True)
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)


def url(port, path):
    return "ws://127.0.0.1:%d%s" % (port, path)


async def recv(ws):
    return await asyncio.wait_for(ws.recv(), TIMEOUT)


async def echo(port):
    async with websockets.connect(url(port, "/room/echo"), max_size=None) as ws:
        await ws.send("hello")
        check(await recv(ws) == "hello", "text echoed")
        await ws.send(b"\x00\x01\xfe\xff")
        check(await recv(ws) == b"\x00\x01\xfe\xff", "binary echoed as binary")
        await ws.send(["frag", "mented ", "message \u00e9"])  # three frames, one message
        check(await recv(ws) == "fragmented message \u00e9", "fragments joined")
        big = "x" * 60000
        await ws.send(big)
        check(await recv(ws) == big, "a 60000-byte message echoed whole")
        pong = await ws.ping(b"are you there")
        await asyncio.wait_for(pong, TIMEOUT)  # the core answered the ping
        await ws.close(1000, "bye")
        check(ws.close_code == 1000, "the server echoed the close: %s" % ws.close_code)
    print("echo ok", file=sys.stderr)


async def too_big(port, limit):
    async with websockets.connect(url(port, "/room/echo"), max_size=None) as ws:
        await ws.send("y" * (int(limit) + 1))
        try:
            await recv(ws)
            fail("a message over max_message_bytes was echoed")
        except websockets.ConnectionClosed as closed:
            check(closed.rcvd is not None and closed.rcvd.code == 1009,
                  "closed with 1009, got %s" % closed.rcvd)
    print("too_big ok", file=sys.stderr)


async def server_close(port, code):
    async with websockets.connect(url(port, "/room/close-" + code)) as ws:
        try:
            await recv(ws)
            fail("a message before the close")
        except websockets.ConnectionClosed as closed:
            check(closed.rcvd is not None and closed.rcvd.code == int(code),
                  "closed by the server with %s, got %s" % (code, closed.rcvd))
            check(closed.rcvd.reason == "asked to", "the reason: %r" % closed.rcvd.reason)
    print("server_close ok", file=sys.stderr)


async def rooms(port, clients, room_count):
    """`clients` clients spread over `room_count` rooms; each sends one message; each must
    receive exactly the messages of the others in its room."""
    clients, room_count = int(clients), int(room_count)
    sockets = []
    for i in range(clients):
        room = "r%d" % (i % room_count)
        sockets.append((room, i, await websockets.connect(url(port, "/room/" + room))))
    # A message each to its room, once every client is subscribed (a message published to
    # a room reaches those subscribed when it is published): "ready" round-trips first.
    await asyncio.gather(*[asyncio.wait_for(await ws.ping(), TIMEOUT) for _, _, ws in sockets])
    for room, i, ws in sockets:
        await ws.send("%s from %d" % (room, i))
    failures = []
    for room, i, ws in sockets:
        expected = {"v1:%s from %d" % (room, j) for r, j, _ in sockets if r == room and j != i}
        got = set()
        while len(got) < len(expected):
            got.add(await recv(ws))
        if got != expected:
            failures.append("client %d in %s got %s" % (i, room, sorted(got - expected)))
    # Nothing more may come (nothing crosses rooms, nothing twice): every client listens
    # for 200 ms more, all at once.
    async def extra(room, i, ws):
        try:
            return "client %d in %s got an extra %r" % (i, room, await asyncio.wait_for(ws.recv(), 0.2))
        except asyncio.TimeoutError:
            return None
    failures += [f for f in await asyncio.gather(*[extra(*c) for c in sockets]) if f]
    for _, _, ws in sockets:
        await ws.close()
    check(not failures, "; ".join(failures[:5]))
    print("rooms ok: %d clients in %d rooms" % (clients, room_count), file=sys.stderr)


async def refused(port, path, token):
    try:
        async with websockets.connect(url(port, path)):
            fail("an upgrade without a token was accepted")
    except websockets.InvalidStatusCode as e:
        check(e.status_code == 401, "refused with 401, got %d" % e.status_code)
    headers = {"Authorization": "Bearer " + token}
    async with websockets.connect(url(port, path), extra_headers=headers) as ws:
        await ws.send("with a token")
        check(await recv(ws) == "with a token", "the session behind the filter echoes")
    print("refused ok", file=sys.stderr)


async def kept_alive(port, quiet_ms):
    """A client that only answers pings stays open past the idle timeout."""
    async with websockets.connect(url(port, "/room/echo"), ping_interval=None) as ws:
        await asyncio.sleep(int(quiet_ms) / 1000)  # the scenario under test: silence
        await ws.send("still here")
        check(await recv(ws) == "still here", "the session outlived its idle timeout")
    print("kept_alive ok", file=sys.stderr)


async def joined(ws):
    """Says "joined" once the session has subscribed: its pong comes from next(), which the
    plugin calls after subscribing (the 101 alone comes before)."""
    await asyncio.wait_for(await ws.ping(), TIMEOUT)
    print("joined", file=sys.stderr, flush=True)


async def lobby(port):
    """Joins /room/lobby, waits for a line client's message, answers it."""
    async with websockets.connect(url(port, "/room/lobby")) as ws:
        await joined(ws)
        got = await recv(ws)
        check(got == "v1:from a line client", "a line client reached the lobby: %r" % got)
        await ws.send("from a websocket client")
        await ws.close()
    print("lobby ok", file=sys.stderr)


async def session_until_going_away(port, room):
    """A session that chats until the server closes it: prints every message, sends one
    after each, and finally the close code (the reload test reads them)."""
    async with websockets.connect(url(port, "/room/" + room)) as ws:
        await joined(ws)
        try:
            while True:
                message = await asyncio.wait_for(ws.recv(), 60)
                print("got " + message, file=sys.stderr, flush=True)
                if message.endswith("ping"):
                    await ws.send("pong")
        except websockets.ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd else 1006
            print("closed %d" % code, file=sys.stderr, flush=True)


SCENARIOS = {
    "echo": echo,
    "too_big": too_big,
    "server_close": server_close,
    "rooms": rooms,
    "refused": refused,
    "kept_alive": kept_alive,
    "lobby": lobby,
    "session_until_going_away": session_until_going_away,
}

if __name__ == "__main__":
    scenario, port, *args = sys.argv[1:]
    asyncio.run(asyncio.wait_for(SCENARIOS[scenario](int(port), *args), 60))
