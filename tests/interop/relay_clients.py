#!/usr/bin/env python3
"""Two Godot-style WebSocketMultiplayerPeer clients on the Python `websockets` package, for the
interop test of `netplay relay`. They are not ours: they speak the bytes a Godot 4 client
sends and expects (websocket_multiplayer_peer.cpp: the 4-byte little-endian id message;
scene_multiplayer.cpp: SYS ADD_PEER/DEL_PEER/RELAY, RAW packets).

    relay_clients.py URL

Connects client A, then client B, to URL (a session of the relay) and checks, printing one line
per check (`ok NAME` or `FAIL NAME: why`): each first receives its id (4 bytes, >= 2); B hears
of A and A of B (ADD_PEER); a RAW packet that A relays to B arrives re-wrapped with A's id; a
broadcast from B reaches A; B leaves and A hears DEL_PEER. Exits 0 only if every check passed.
"""

import asyncio
import struct
import sys

import websockets

SYS, RAW = 7, 3
ADD_PEER, DEL_PEER, RELAY = 1, 2, 3
TIMEOUT = 10


def sys_packet(sub, peer, inner=b""):
    return bytes([SYS, sub]) + struct.pack("<i", peer) + inner


async def recv(ws):
    return await asyncio.wait_for(ws.recv(), TIMEOUT)


async def main(url):
    failures = 0

    def check(name, ok, why=""):
        nonlocal failures
        if ok:
            print(f"ok {name}", flush=True)
        else:
            failures += 1
            print(f"FAIL {name}: {why}", flush=True)

    async with websockets.connect(url, max_size=1 << 20) as a:
        first = await recv(a)
        check("id message is 4 bytes", isinstance(first, bytes) and len(first) == 4, repr(first))
        id_a = struct.unpack("<i", first)[0]
        check("id is at least 2", id_a >= 2, str(id_a))
        async with websockets.connect(url, max_size=1 << 20) as b:
            id_b = struct.unpack("<i", await recv(b))[0]
            got = await recv(b)
            check("newcomer hears of the others", got == sys_packet(ADD_PEER, id_a), got.hex())
            got = await recv(a)
            check("others hear of the newcomer", got == sys_packet(ADD_PEER, id_b), got.hex())
            await a.send(sys_packet(RELAY, id_b, bytes([RAW]) + "héllo".encode()))
            got = await recv(b)
            want = sys_packet(RELAY, id_a, bytes([RAW]) + "héllo".encode())
            check("relayed with the sender's id", got == want, got.hex())
            await b.send(sys_packet(RELAY, 0, bytes([RAW]) + b"to all"))
            got = await recv(a)
            want = sys_packet(RELAY, id_b, bytes([RAW]) + b"to all")
            check("broadcast reaches the others", got == want, got.hex())
        got = await recv(a)
        check("a leave is announced", got == sys_packet(DEL_PEER, id_b), got.hex())
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: relay_clients.py URL", file=sys.stderr)
        sys.exit(2)
    sys.exit(asyncio.run(main(sys.argv[1])))
