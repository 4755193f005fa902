#!/usr/bin/env python3
"""External WebSocket test peer built on the Python `websockets` package (asyncio).

It is not ours: it stands for "some other WebSocket implementation" in the
interop tests of netplay. `tests/interop/node/peer.js` (Node `ws`) has the
same command-line contract, so a test can swap one for the other.

    py_peer.py server --port P [--protocol NAME]... [--tls-cert F --tls-key F]
                      [--max-size N] [--no-deflate]
        An echo server on 127.0.0.1 (text echoed as text, binary as binary).
        Port 0 picks a free port. Prints `READY <port>` on stdout once
        listening. The text message `close:<code>:<reason>` makes it close the
        connection with that code and reason instead of echoing. It selects
        the first protocol offered by the client that it supports (none when
        it has no --protocol). Exits on SIGTERM/SIGINT, or on EOF of stdin when
        stdin is a pipe or a socket.

    py_peer.py client --url URL [--protocol NAME]... [--ca F] [--max-size N]
                      [--no-deflate] [--suite] [--expect-protocol NAME]
                      [--send-big N [--big-fragments K]]
                      [--request-close CODE:REASON] [--expect-close-code C]
                      [--timeout SECONDS]
        Connects to an echo server and prints one line per check, `ok <name>`
        or `FAIL <name>: <why>`; exits 0 only if every check passed.
        --suite         text (multi-byte UTF-8), binary (all 256 byte values),
                        fragmented text (split inside code points), fragmented
                        binary, a 16 MiB binary message (SHA-256 compared),
                        100 small messages in order.
        --expect-protocol NAME   the negotiated sub-protocol must be NAME
                        (`-` means: no sub-protocol).
        --send-big N    send one N-byte binary message (in K fragments). With
                        --expect-close-code C the server must close the
                        connection with code C; without it the message must
                        come back intact.
        --request-close CODE:REASON  send the text `close:CODE:REASON` (only
                        our peers' servers understand it) and expect the
                        server to close with CODE (or --expect-close-code).
        --expect-close-code C alone: wait for the server to close with C.
        Unless the server closed the connection, the client finally closes
        with code 4001 reason "bye" and checks that the server's close frame
        echoes code 4001.

Every wait is bounded by --timeout (default 20 s); a timeout is a FAIL.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import random
import signal
import ssl
import stat
import sys

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

DEFAULT_MAX_SIZE = 64 * 1024 * 1024
BIG_SUITE_SIZE = 16 * 1024 * 1024
UTF8_TEXT = "héllo wörld · ✓ · Ελληνικά · 日本語 · 😀🎮 · 𝄞 · end"


def out(line: str) -> None:
    print(line, flush=True)


# --------------------------------------------------------------------- server


def select_first_offered(supported: list[str]):
    def select(_connection, offered):
        for proto in offered:
            if proto in supported:
                return proto
        return None

    return select


async def echo_handler(ws) -> None:
    try:
        async for message in ws:
            if isinstance(message, str) and message.startswith("close:"):
                _, code, reason = message.split(":", 2)
                await ws.close(int(code), reason)
                return
            await ws.send(message)
    except ConnectionClosed:
        pass


def stdin_is_watchable() -> bool:
    try:
        mode = os.fstat(sys.stdin.fileno()).st_mode
    except (OSError, ValueError, AttributeError):
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


class _EofProtocol(asyncio.Protocol):
    def __init__(self, stop: asyncio.Future):
        self.stop = stop

    def eof_received(self):
        if not self.stop.done():
            self.stop.set_result("stdin EOF")

    def connection_lost(self, exc):
        if not self.stop.done():
            self.stop.set_result("stdin closed")


async def run_server(args) -> int:
    loop = asyncio.get_running_loop()
    stop: asyncio.Future = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(
            sig, lambda s=sig: stop.done() or stop.set_result(f"signal {s}")
        )
    if stdin_is_watchable():
        await loop.connect_read_pipe(lambda: _EofProtocol(stop), sys.stdin)

    ssl_ctx = None
    if args.tls_cert or args.tls_key:
        if not (args.tls_cert and args.tls_key):
            out("FAIL server: --tls-cert and --tls-key go together")
            return 2
        ssl_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ssl_ctx.load_cert_chain(args.tls_cert, args.tls_key)

    async with serve(
        echo_handler,
        "127.0.0.1",
        args.port,
        ssl=ssl_ctx,
        subprotocols=args.protocol or None,
        select_subprotocol=select_first_offered(args.protocol),
        max_size=args.max_size,
        compression=None if args.no_deflate else "deflate",
        ping_interval=None,
    ) as server:
        port = server.sockets[0].getsockname()[1]
        out(f"READY {port}")
        why = await stop
        print(f"py_peer server: stopping ({why})", file=sys.stderr, flush=True)
    return 0


# --------------------------------------------------------------------- client


class Suite:
    def __init__(self, timeout: float):
        self.timeout = timeout
        self.failures = 0
        self.checks = 0

    def ok(self, name: str) -> None:
        self.checks += 1
        out(f"ok {name}")

    def fail(self, name: str, why: str) -> None:
        self.checks += 1
        self.failures += 1
        out(f"FAIL {name}: {why}")

    async def wait(self, awaitable):
        return await asyncio.wait_for(awaitable, self.timeout)


def describe(value) -> str:
    if isinstance(value, str):
        return f"text({len(value.encode())} bytes) {value[:40]!r}"
    if isinstance(value, (bytes, bytearray)):
        return f"binary({len(value)} bytes) {bytes(value[:16]).hex()}..."
    return repr(value)


def close_rcvd(ws):
    """The close frame received from the peer, or None."""
    return ws.protocol.close_rcvd


def describe_close(ws) -> str:
    rcvd = close_rcvd(ws)
    sent = ws.protocol.close_sent
    r = f"code {rcvd.code} reason {rcvd.reason!r}" if rcvd else "no close frame"
    s = f"code {sent.code}" if sent else "none"
    return f"received {r}; sent {s}"


def chunks(data: bytes, sizes: list[int]) -> list[bytes]:
    parts, pos, i = [], 0, 0
    while pos < len(data):
        n = sizes[i % len(sizes)]
        parts.append(data[pos : pos + n])
        pos += n
        i += 1
    return parts


async def echo_check(s: Suite, ws, name: str, send, expected) -> None:
    """Send `send` (a message or a list of fragments), expect `expected` back."""
    try:
        await s.wait(ws.send(send, text=isinstance(expected, str)))
        got = await s.wait(ws.recv())
    except asyncio.TimeoutError:
        s.fail(name, f"timed out after {s.timeout}s")
        return
    except ConnectionClosed:
        s.fail(name, f"connection closed: {describe_close(ws)}")
        return
    if type(got) is not type(expected):
        s.fail(name, f"type differs: sent {describe(expected)}, got {describe(got)}")
    elif got != expected:
        s.fail(name, f"content differs: sent {describe(expected)}, got {describe(got)}")
    else:
        s.ok(name)


async def run_suite(s: Suite, ws) -> None:
    await echo_check(s, ws, "text_round_trip", UTF8_TEXT, UTF8_TEXT)
    await echo_check(s, ws, "empty_text_round_trip", "", "")

    all_bytes = bytes(range(256))
    await echo_check(s, ws, "binary_round_trip", all_bytes, all_bytes)

    # Text fragments split every 5 bytes: boundaries fall inside code points.
    encoded = (UTF8_TEXT * 3).encode()
    await echo_check(
        s, ws, "fragmented_text", chunks(encoded, [5]), encoded.decode()
    )

    frag_bin = all_bytes * 8
    await echo_check(
        s,
        ws,
        "fragmented_binary",
        chunks(frag_bin, [1, 0, 300, 7, 1000]),
        frag_bin,
    )

    # 16 MiB, incompressible but deterministic.
    big = random.Random(6455).randbytes(BIG_SUITE_SIZE)
    want = hashlib.sha256(big).hexdigest()
    name = "big_16mib_binary"
    try:
        await s.wait(ws.send(big))
        got = await s.wait(ws.recv())
        if not isinstance(got, bytes):
            s.fail(name, f"expected binary, got {describe(got)}")
        elif len(got) != len(big):
            s.fail(name, f"length {len(got)} != {len(big)}")
        elif hashlib.sha256(got).hexdigest() != want:
            s.fail(name, "sha256 differs")
        else:
            s.ok(name)
    except asyncio.TimeoutError:
        s.fail(name, f"timed out after {s.timeout}s")
    except ConnectionClosed:
        s.fail(name, f"connection closed: {describe_close(ws)}")

    name = "hundred_messages_in_order"
    sent = [f"msg-{i}" if i % 2 == 0 else f"bin-{i}".encode() for i in range(100)]
    try:
        for m in sent:
            await s.wait(ws.send(m))
        got = [await s.wait(ws.recv()) for _ in sent]
        bad = [(i, a, b) for i, (a, b) in enumerate(zip(sent, got)) if a != b or type(a) is not type(b)]
        if bad:
            i, a, b = bad[0]
            s.fail(name, f"message {i}: sent {describe(a)}, got {describe(b)}")
        else:
            s.ok(name)
    except asyncio.TimeoutError:
        s.fail(name, f"timed out after {s.timeout}s")
    except ConnectionClosed:
        s.fail(name, f"connection closed: {describe_close(ws)}")


async def expect_server_close(s: Suite, ws, name: str, code: int, sender=None) -> None:
    """Wait until the server closes the connection and check its close code."""

    async def drain():
        while True:
            await ws.recv()

    send_task = asyncio.ensure_future(sender) if sender is not None else None
    try:
        await s.wait(drain())
    except ConnectionClosed:
        pass
    except asyncio.TimeoutError:
        s.fail(name, f"server did not close within {s.timeout}s")
        return
    finally:
        if send_task is not None:
            if not send_task.done():
                send_task.cancel()
            try:
                await send_task
            except BaseException:  # the server may close while we are sending
                pass
    try:
        await s.wait(ws.wait_closed())
    except asyncio.TimeoutError:
        pass
    rcvd = close_rcvd(ws)
    if rcvd is None:
        s.fail(name, f"no close frame from the server ({describe_close(ws)})")
    elif rcvd.code != code:
        s.fail(name, f"expected close code {code}, {describe_close(ws)}")
    else:
        s.ok(name)


async def run_client(args) -> int:
    s = Suite(args.timeout)
    ssl_ctx = None
    if args.url.startswith("wss://"):
        ssl_ctx = ssl.create_default_context(cafile=args.ca)
    try:
        ws = await s.wait(
            connect(
                args.url,
                ssl=ssl_ctx,
                subprotocols=args.protocol or None,
                max_size=args.max_size,
                compression=None if args.no_deflate else "deflate",
                ping_interval=None,
                close_timeout=args.timeout,
                open_timeout=args.timeout,
            )
        )
    except Exception as e:  # noqa: BLE001 - any failure to connect is a FAIL
        s.fail("connect", f"{type(e).__name__}: {e}")
        return 1
    s.ok("connect")

    server_closed = False
    try:
        if args.expect_protocol is not None:
            want = None if args.expect_protocol == "-" else args.expect_protocol
            if ws.subprotocol == want:
                s.ok(f"protocol_{args.expect_protocol}")
            else:
                s.fail(
                    f"protocol_{args.expect_protocol}",
                    f"selected sub-protocol is {ws.subprotocol!r}, expected {want!r}",
                )

        if args.suite:
            await run_suite(s, ws)

        if args.send_big is not None:
            data = random.Random(1009).randbytes(args.send_big)
            message = (
                chunks(data, [max(1, -(-len(data) // args.big_fragments))])
                if args.big_fragments > 1
                else data
            )
            if args.expect_close_code is not None:
                server_closed = True
                await expect_server_close(
                    s,
                    ws,
                    f"big_{args.send_big}_closed_{args.expect_close_code}",
                    args.expect_close_code,
                    sender=ws.send(message),
                )
            else:
                await echo_check(s, ws, f"big_{args.send_big}_echoed", message, data)

        if not server_closed and args.request_close is not None:
            code = int(args.request_close.split(":", 1)[0])
            want = args.expect_close_code if args.expect_close_code is not None else code
            server_closed = True
            await expect_server_close(
                s,
                ws,
                f"server_close_{want}",
                want,
                sender=ws.send(f"close:{args.request_close}"),
            )

        if not server_closed and args.expect_close_code is not None:
            server_closed = True
            await expect_server_close(
                s, ws, f"server_close_{args.expect_close_code}", args.expect_close_code
            )

        if not server_closed:
            name = "close_4001"
            try:
                await s.wait(ws.close(4001, "bye"))
                await s.wait(ws.wait_closed())
            except asyncio.TimeoutError:
                s.fail(name, f"close handshake timed out after {s.timeout}s")
            else:
                rcvd = close_rcvd(ws)
                if rcvd is None:
                    s.fail(name, f"no close frame from the server ({describe_close(ws)})")
                elif rcvd.code != 4001:
                    s.fail(name, f"server's close code is not 4001: {describe_close(ws)}")
                else:
                    s.ok(name)
    except Exception as e:  # noqa: BLE001 - a crash of the client is a FAIL
        s.fail("client", f"unexpected {type(e).__name__}: {e}")
    finally:
        try:
            await asyncio.wait_for(ws.close(), 2)
        except BaseException:  # noqa: BLE001 - best-effort cleanup
            pass

    print(
        f"py_peer client: {s.checks - s.failures} passed, {s.failures} failed",
        file=sys.stderr,
        flush=True,
    )
    return 0 if s.failures == 0 and s.checks > 0 else 1


# ----------------------------------------------------------------------- main


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="mode", required=True)

    sp = sub.add_parser("server")
    sp.add_argument("--port", type=int, default=0)
    sp.add_argument("--protocol", action="append", default=[])
    sp.add_argument("--tls-cert")
    sp.add_argument("--tls-key")
    sp.add_argument("--max-size", type=int, default=DEFAULT_MAX_SIZE)
    sp.add_argument("--no-deflate", action="store_true")

    cp = sub.add_parser("client")
    cp.add_argument("--url", required=True)
    cp.add_argument("--protocol", action="append", default=[])
    cp.add_argument("--ca")
    cp.add_argument("--max-size", type=int, default=DEFAULT_MAX_SIZE)
    cp.add_argument("--no-deflate", action="store_true")
    cp.add_argument("--suite", action="store_true")
    cp.add_argument("--expect-protocol")
    cp.add_argument("--expect-close-code", type=int)
    cp.add_argument("--send-big", type=int, metavar="N")
    cp.add_argument("--big-fragments", type=int, default=1, metavar="K")
    cp.add_argument("--request-close", metavar="CODE:REASON")
    cp.add_argument("--timeout", type=float, default=20.0)

    args = p.parse_args()
    if args.mode == "server":
        return asyncio.run(run_server(args))
    return asyncio.run(run_client(args))


if __name__ == "__main__":
    sys.exit(main())
