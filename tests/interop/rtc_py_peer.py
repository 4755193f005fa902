#!/usr/bin/env python3
"""External WebRTC test peer built on aiortc (Python, asyncio).

It is not ours: it stands for "some other WebRTC implementation" in the
interop tests of netplay. It speaks the signaling line protocol of
`netplay rtc-echo` (docs/PROTOCOL.md): one JSON object per line, its own
lines on stdout, the other side's on stdin, logs on stderr.
`tests/interop/node/rtc_peer.js` (libdatachannel) has the same contract.

    rtc_py_peer.py echo (--offer | --answer) [ICE OPTIONS]
        Behaves like `netplay rtc-echo`: echoes every message back on the
        channel it came from, text as text and binary as binary. Runs until a
        `bye` line, EOF on stdin, SIGTERM or SIGINT (exit 0); exit 1 when the
        connection fails or is not up within --connect-timeout; exit 2 on a
        usage error or an invalid input line.

    rtc_py_peer.py drive (--offer | --answer) [ICE OPTIONS] [--channel SPEC]...
                         [--messages N] [--big-size BYTES] [--chunk-size BYTES]
                         [--big-channel LABEL] [--timeout SECONDS]
                         [--no-empty] [--lossy]
        The test side: writes a `channels` line first, sets up the channels,
        runs the test plan on all of them at once, then writes `bye` and one
        `result` line, and exits 0 only if every check passed.

ICE OPTIONS: [--ice-server URL]... [--username U --credential C] [--relay-only]
             [--host-ip ADDR] [--connect-timeout SECONDS]

Host candidates are gathered on --host-ip only (default 127.0.0.1). aioice
enumerates every interface and skips 127.0.0.1 and has no option to choose
addresses, so this peer replaces `aioice.ice.get_host_addresses`, the one
function its gatherer asks, before any connection exists. There is no default
STUN server (aiortc would otherwise add a public one).

Channel SPEC: LABEL[:OPT[,OPT]...] with OPT one of `unordered`, `rexmit=N`
(maxRetransmits), `lifetime=MS` (maxPacketLifeTime), `id=N` (negotiated with
stream id N), `protocol=P`. Without --channel, the default set of
docs/PROTOCOL.md is used.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import os
import random
import signal
import sys
import threading
import time

import aioice
import aioice.ice
import aiortc
from aiortc import (
    RTCConfiguration,
    RTCIceCandidate,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)

try:  # absent from old versions
    from aiortc import RTCIceTransportPolicy
except ImportError:  # pragma: no cover
    RTCIceTransportPolicy = None

IMPL = f"aiortc {aiortc.__version__}"
QUIET = 2.0  # seconds without an echo that end a partially reliable sequence
# --lossy: a single message on a partially reliable channel is sent up to
# LOSSY_TRIES times, each send waiting LOSSY_WAIT seconds for its echo (a lost
# message is retransmitted after about a second, within a 3 s lifetime).
LOSSY_TRIES = 4
LOSSY_WAIT = 4.0
UTF8_TEXT = "héllo wörld · ✓ · Ελληνικά · 日本語 · 😀🎮 · 𝄞 · end"
DEFAULT_CHANNELS = [
    "reliable",
    "unordered:unordered,protocol=chat",
    "rexmit0:unordered,rexmit=0",
    "lifetime:unordered,lifetime=3000",
    "negotiated:id=100",
    "negotiated-unordered:unordered,id=101",
]


T0 = time.monotonic()


def log(msg: str) -> None:
    print(f"rtc_py_peer +{(time.monotonic() - T0) * 1000:.0f}ms: {msg}", file=sys.stderr, flush=True)


class ProtocolError(Exception):
    """An invalid line on stdin: exit code 2."""


class Failure(Exception):
    """The connection failed or timed out: exit code 1."""


# ------------------------------------------------------------------ options


def parse_channel_spec(spec: str) -> dict:
    label, _, opts = spec.partition(":")
    if not label:
        raise ValueError(f"channel spec {spec!r}: empty label")
    ch: dict = {"label": label}
    for opt in filter(None, opts.split(",")):
        key, eq, value = opt.partition("=")
        if key == "unordered" and not eq:
            ch["ordered"] = False
        elif key == "rexmit" and value.isdigit():
            ch["maxRetransmits"] = int(value)
        elif key == "lifetime" and value.isdigit():
            ch["maxPacketLifeTime"] = int(value)
        elif key == "id" and value.isdigit():
            ch["negotiated"] = True
            ch["id"] = int(value)
        elif key == "protocol" and eq:
            ch["protocol"] = value
        else:
            raise ValueError(f"channel spec {spec!r}: bad option {opt!r}")
    if "maxRetransmits" in ch and "maxPacketLifeTime" in ch:
        raise ValueError(f"channel spec {spec!r}: rexmit and lifetime exclude each other")
    return ch


def check_channel_list(channels) -> list[dict]:
    """Validates the `channels` array of a `channels` line."""
    if not isinstance(channels, list) or not channels:
        raise ProtocolError("`channels` must be a non-empty array")
    labels = set()
    for ch in channels:
        if not isinstance(ch, dict) or not isinstance(ch.get("label"), str):
            raise ProtocolError(f"channel without a string label: {ch!r}")
        if ch["label"] in labels:
            raise ProtocolError(f"duplicate channel label {ch['label']!r}")
        labels.add(ch["label"])
        for key in ("maxRetransmits", "maxPacketLifeTime"):
            if key in ch and ch[key] is not None and not (
                isinstance(ch[key], int) and 0 <= ch[key] <= 65535
            ):
                raise ProtocolError(f"channel {ch['label']!r}: bad {key}")
        if ch.get("maxRetransmits") is not None and ch.get("maxPacketLifeTime") is not None:
            raise ProtocolError(f"channel {ch['label']!r}: maxRetransmits and maxPacketLifeTime")
        if ch.get("negotiated"):
            if not (isinstance(ch.get("id"), int) and 0 <= ch["id"] <= 1023):
                raise ProtocolError(f"negotiated channel {ch['label']!r} needs an id 0..1023")
    return channels


def is_reliable(ch: dict) -> bool:
    return ch.get("maxRetransmits") is None and ch.get("maxPacketLifeTime") is None


def add_ice_options(p: argparse.ArgumentParser) -> None:
    role = p.add_mutually_exclusive_group(required=True)
    role.add_argument("--offer", action="store_true", help="write the offer")
    role.add_argument("--answer", action="store_true", help="answer the remote offer")
    p.add_argument("--ice-server", action="append", default=[], metavar="URL")
    p.add_argument("--username")
    p.add_argument("--credential")
    p.add_argument("--relay-only", action="store_true")
    p.add_argument("--host-ip", default="127.0.0.1", metavar="ADDR")
    p.add_argument("--connect-timeout", type=float, default=30.0, metavar="SECONDS")
    p.add_argument("--debug", action="store_true", help="aiortc's debug log on stderr")


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="rtc_py_peer.py", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="mode", required=True)
    add_ice_options(sub.add_parser("echo", help="echo every message back"))
    d = sub.add_parser("drive", help="run the test plan")
    add_ice_options(d)
    d.add_argument("--channel", action="append", default=[], metavar="SPEC")
    d.add_argument("--messages", type=int, default=100, metavar="N")
    d.add_argument("--big-size", type=int, default=1 << 20, metavar="BYTES")
    d.add_argument("--chunk-size", type=int, default=16384, metavar="BYTES")
    d.add_argument("--big-channel", metavar="LABEL")
    d.add_argument("--timeout", type=float, default=20.0, metavar="SECONDS")
    d.add_argument("--no-empty", action="store_true",
                   help="leave out the empty_text and empty_binary checks (for a peer that "
                        "cannot send empty messages)")
    d.add_argument("--lossy", action="store_true",
                   help="the path loses datagrams: on partially reliable channels a single "
                        "message is sent again when its echo does not come")
    args = ap.parse_args(argv)
    if (args.username is None) != (args.credential is None):
        ap.error("--username and --credential go together")
    if args.mode == "drive":
        try:
            args.channels = check_channel_list(
                [parse_channel_spec(s) for s in (args.channel or DEFAULT_CHANNELS)]
            )
        except (ValueError, ProtocolError) as e:
            ap.error(str(e))
        if args.big_size > 0:
            if args.big_channel is None:
                reliable = [c for c in args.channels if is_reliable(c) and c.get("ordered", True)]
                if not reliable:
                    ap.error("--big-size needs an ordered reliable channel")
                args.big_channel = reliable[0]["label"]
            big = [c for c in args.channels if c["label"] == args.big_channel]
            if not big or not is_reliable(big[0]) or not big[0].get("ordered", True):
                ap.error(f"--big-channel {args.big_channel!r} is not an ordered reliable channel")
            if args.chunk_size <= 0:
                ap.error("--chunk-size must be positive")
    return args


# ------------------------------------------------------------ loopback only


def restrict_host_candidates(host_ip: str) -> None:
    """Makes aioice gather host candidates on `host_ip` only."""

    def host_addresses(use_ipv4: bool = True, use_ipv6: bool = True) -> list[str]:
        v6 = ":" in host_ip
        return [host_ip] if (use_ipv6 if v6 else use_ipv4) else []

    aioice.ice.get_host_addresses = host_addresses


def make_pc(args) -> RTCPeerConnection:
    servers = [
        RTCIceServer(urls=url, username=args.username, credential=args.credential)
        if url.startswith("turn")
        else RTCIceServer(urls=url)
        for url in args.ice_server
    ]
    config = RTCConfiguration(iceServers=servers)  # [] means none, None a public STUN
    if args.relay_only:
        config.iceTransportPolicy = RTCIceTransportPolicy.RELAY
    return RTCPeerConnection(configuration=config)


# ---------------------------------------------------------------- signaling


class Signaling:
    """JSON lines: ours to stdout, theirs from stdin (read by a thread, so
    that any kind of stdin works)."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue = asyncio.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for line in sys.stdin:
                self.loop.call_soon_threadsafe(self.queue.put_nowait, line)
        except (OSError, ValueError):
            pass
        self.loop.call_soon_threadsafe(self.queue.put_nowait, None)

    @staticmethod
    def send(obj: dict) -> None:
        sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
        sys.stdout.flush()

    async def recv(self) -> dict | None:
        """The next line as an object; None on EOF."""
        while True:
            line = await self.queue.get()
            if line is None:
                self.queue.put_nowait(None)  # EOF stays EOF
                return None
            line = line.strip()
            if not line:
                continue
            try:
                msg = json.loads(line)
            except ValueError as e:
                raise ProtocolError(f"not JSON: {line[:80]!r} ({e})") from None
            if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
                raise ProtocolError(f"not an object with a string `type`: {line[:80]!r}")
            return msg


def parse_candidate(msg: dict) -> RTCIceCandidate | None:
    """A `candidate` line as an RTCIceCandidate; None for end-of-candidates."""
    text = msg.get("candidate")
    mid, index = msg.get("mid"), msg.get("index")
    if not isinstance(text, str):
        raise ProtocolError("candidate line without a string `candidate`")
    if mid is not None and not isinstance(mid, str):
        raise ProtocolError("`mid` must be a string")
    if index is not None and not (isinstance(index, int) and index >= 0):
        raise ProtocolError("`index` must be a non-negative integer")
    text = text.strip()
    if text.startswith("a="):
        text = text[2:]
    if not text:
        return None
    if text.startswith("candidate:"):
        text = text[len("candidate:") :]
    try:
        c = aioice.Candidate.from_sdp(text)
    except (ValueError, IndexError) as e:
        raise ProtocolError(f"bad candidate {text!r}: {e}") from None
    return RTCIceCandidate(
        component=c.component,
        foundation=c.foundation,
        ip=c.host,
        port=c.port,
        priority=c.priority,
        protocol=c.transport,
        type=c.type,
        relatedAddress=c.related_address,
        relatedPort=c.related_port,
        tcpType=c.tcptype,
        sdpMid=mid,
        sdpMLineIndex=0 if mid is None and index is None else index,
    )


class Session:
    """One peer connection and its side of the signaling."""

    def __init__(self, args, sig: Signaling, on_channels=None) -> None:
        self.args = args
        self.sig = sig
        self.pc = make_pc(args)
        self.offerer = bool(args.offer)
        self.remote_set = False
        self.pending: list = []  # remote candidates before the remote description
        self.bye = asyncio.Event()
        self.connected = asyncio.Event()
        self.failed = asyncio.Event()
        self.on_channels = on_channels
        self.channels_seen = False
        self.started = time.monotonic()
        self.connect_ms: float | None = None

        @self.pc.on("connectionstatechange")
        def _state() -> None:
            state = self.pc.connectionState
            log(f"connection state {state}")
            if state == "connected" and not self.connected.is_set():
                self.connect_ms = (time.monotonic() - self.started) * 1000
                self.connected.set()
            elif state == "failed":
                self.failed.set()

    async def send_description(self, desc) -> None:
        await self.pc.setLocalDescription(desc)
        local = self.pc.localDescription
        self.sig.send({"type": local.type, "sdp": local.sdp})
        # aiortc gathers before it returns the description, whose SDP carries
        # all our candidates: nothing to trickle, only the end marker.
        mid, index = self._mid_index()
        self.sig.send({"type": "candidate", "mid": mid, "index": index, "candidate": ""})

    def _mid_index(self) -> tuple[str, int]:
        desc = self.pc.localDescription
        for line in desc.sdp.splitlines():
            if line.startswith("a=mid:"):
                return line[len("a=mid:") :].strip(), 0
        return "0", 0

    async def offer(self) -> None:
        await self.send_description(await self.pc.createOffer())

    async def handle(self, msg: dict) -> None:
        kind = msg["type"]
        if kind == "channels":
            if self.channels_seen:
                raise ProtocolError("a second `channels` line")
            self.channels_seen = True
            channels = check_channel_list(msg.get("channels"))
            if self.on_channels:
                await self.on_channels(channels)
        elif kind in ("offer", "answer"):
            want = "answer" if self.offerer else "offer"
            if kind != want or self.remote_set:
                raise ProtocolError(f"unexpected `{kind}` line")
            if not isinstance(msg.get("sdp"), str):
                raise ProtocolError(f"`{kind}` line without a string `sdp`")
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=msg["sdp"], type=kind))
            self.remote_set = True
            for c in self.pending:
                await self.pc.addIceCandidate(c)
            self.pending.clear()
            if kind == "offer":
                await self.send_description(await self.pc.createAnswer())
        elif kind == "candidate":
            c = parse_candidate(msg)
            if not self.remote_set:
                self.pending.append(c)
            else:
                await self.pc.addIceCandidate(c)
        elif kind == "bye":
            log("bye received")
            self.bye.set()
        else:
            log(f"ignoring a line of unknown type {kind!r}")

    async def pump(self) -> None:
        """Handles stdin lines until bye or EOF."""
        while not self.bye.is_set():
            msg = await self.sig.recv()
            if msg is None:
                log("stdin EOF")
                self.bye.set()
                return
            await self.handle(msg)

    async def wait_connected(self, what: str) -> None:
        timeout = self.args.connect_timeout - (time.monotonic() - self.started)
        done, _ = await asyncio.wait(
            [
                asyncio.ensure_future(self.connected.wait()),
                asyncio.ensure_future(self.failed.wait()),
                asyncio.ensure_future(self.bye.wait()),
            ],
            timeout=max(0.0, timeout),
            return_when=asyncio.FIRST_COMPLETED,
        )
        for t in done:
            t.result()
        if self.failed.is_set():
            raise Failure(f"connection failed ({what})")
        if not self.connected.is_set():
            if self.bye.is_set():
                raise Failure(f"ended before the connection was up ({what})")
            raise Failure(f"not connected within {self.args.connect_timeout}s ({what})")


def create_channels(pc: RTCPeerConnection, channels: list[dict], in_band: bool):
    """Creates the negotiated channels and, with in_band, the others too."""
    made = []
    for ch in channels:
        if not ch.get("negotiated") and not in_band:
            continue
        made.append(
            (
                ch,
                pc.createDataChannel(
                    ch["label"],
                    ordered=ch.get("ordered", True),
                    maxRetransmits=ch.get("maxRetransmits"),
                    maxPacketLifeTime=ch.get("maxPacketLifeTime"),
                    protocol=ch.get("protocol", ""),
                    negotiated=bool(ch.get("negotiated")),
                    id=ch.get("id") if ch.get("negotiated") else None,
                ),
            )
        )
    return made


async def run_until(session: Session, main) -> None:
    """Runs `main` with the stdin pump beside it; a pump error wins."""
    pump = asyncio.ensure_future(session.pump())
    work = asyncio.ensure_future(main)
    try:
        done, _ = await asyncio.wait([pump, work], return_when=asyncio.FIRST_COMPLETED)
        if pump in done and pump.exception() is not None:
            raise pump.exception()
        await work
    finally:
        for t in (pump, work):
            if not t.done():
                t.cancel()


# --------------------------------------------------------------------- echo


async def run_echo(args) -> int:
    sig = Signaling()
    keep = []  # every channel, so none is lost

    def echo_on(channel) -> None:
        keep.append(channel)

        @channel.on("message")
        def _message(message) -> None:
            if channel.readyState == "open":
                channel.send(message)

        @channel.on("open")
        def _open() -> None:
            log(f"channel {channel.label!r} (id {channel.id}) open")

        if channel.readyState == "open":
            log(f"channel {channel.label!r} (id {channel.id}) open")

    async def on_channels(channels: list[dict]) -> None:
        for _, dc in create_channels(session.pc, channels, in_band=session.offerer):
            echo_on(dc)
        if session.offerer:
            await session.offer()

    session = Session(args, sig, on_channels)
    session.pc.on("datachannel", echo_on)

    async def main() -> None:
        await session.wait_connected("echo")
        log(f"connected in {session.connect_ms:.0f} ms")
        await session.bye.wait()

    loop = asyncio.get_running_loop()
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, session.bye.set)
    try:
        await run_until(session, main())
        return 0
    except ProtocolError as e:
        log(f"protocol error: {e}")
        return 2
    except Failure as e:
        log(f"failure: {e}")
        return 1
    except Exception as e:  # noqa: BLE001 - e.g. a description aiortc rejects
        log(f"failure: {type(e).__name__}: {e}")
        return 1
    finally:
        await close_pc(session.pc)


async def close_pc(pc: RTCPeerConnection) -> None:
    try:
        await asyncio.wait_for(pc.close(), 5)
    except BaseException as e:  # noqa: BLE001 - best-effort cleanup
        log(f"close: {type(e).__name__}: {e}")


# -------------------------------------------------------------------- drive


class Checks:
    def __init__(self) -> None:
        self.items: list[dict] = []

    def add(self, name: str, ok: bool, ms: float, detail: str = "") -> None:
        self.items.append({"name": name, "ok": ok, "ms": round(ms, 1), "detail": detail})
        print(f"{'ok  ' if ok else 'FAIL'} {name} ({ms:.0f} ms){': ' + detail if detail else ''}",
              file=sys.stderr, flush=True)


def echo_mismatch(sent, got) -> str:
    """Why an echo is not the message sent ("" when it is): its kind or its content."""
    if type(got) is not type(sent):
        return f"kind differs: sent {describe(sent)}, got {describe(got)}"
    if got != sent:
        return f"content differs: sent {describe(sent)}, got {describe(got)}"
    return ""


def describe(m) -> str:
    if isinstance(m, str):
        return f"text({len(m.encode())} bytes) {m[:24]!r}"
    return f"binary({len(m)} bytes) {bytes(m[:12]).hex()}"


class Driven:
    """One channel of the test plan, with a queue of what comes back."""

    def __init__(self, spec: dict) -> None:
        self.spec = spec
        self.label = spec["label"]
        self.dc = None
        self.opened = asyncio.Event()
        self.inbox: asyncio.Queue = asyncio.Queue()
        # Echoes still owed for messages sent more than once (--lossy): they
        # may come late, and are dropped when they do.
        self.late: list = []

    def attach(self, dc) -> None:
        self.dc = dc

        @dc.on("message")
        def _message(m) -> None:
            for i, owed in enumerate(self.late):
                if type(owed) is type(m) and owed == m:
                    del self.late[i]
                    return
            self.inbox.put_nowait(m)

        @dc.on("open")
        def _open() -> None:
            self.opened.set()

        if dc.readyState == "open":
            self.opened.set()


async def sequence(d: Driven, args, checks: Checks, n: int) -> None:
    """N messages at once, alternately text and binary. Reliable channels
    must return all; partially reliable ones may lose some (PR-SCTP gives up
    on them), so there the check waits until none came for QUIET seconds and
    only asks that what came back was sent, once, with its kind (and in order
    on an ordered channel)."""
    spec, dc = d.spec, d.dc
    name = f"{d.label}/sequence_{n}"
    reliable, ordered = is_reliable(spec), spec.get("ordered", True)
    sent = [f"seq-{i}" if i % 2 == 0 else f"seq-{i}".encode() for i in range(n)]
    index = {(type(m), m): i for i, m in enumerate(sent)}
    t0 = time.monotonic()
    got = []
    try:
        for m in sent:
            dc.send(m)
        while len(got) < n:
            wait = args.timeout if reliable or not got else min(args.timeout, QUIET)
            got.append(await asyncio.wait_for(d.inbox.get(), wait))
    except asyncio.TimeoutError:
        pass
    ms = (time.monotonic() - t0) * 1000
    positions = [index.get((type(m), m)) for m in got]
    lost = n - len(got)
    if None in positions:
        m = got[positions.index(None)]
        checks.add(name, False, ms, f"an echo that was not sent: {describe(m)}")
    elif len(set(positions)) != len(positions):
        checks.add(name, False, ms, "a message came back twice")
    elif reliable and lost:
        checks.add(name, False, ms, f"{len(got)} of {n} came back within {args.timeout}s")
    elif not got:
        checks.add(name, False, ms, f"none of {n} came back within {args.timeout}s")
    elif ordered and positions != sorted(positions):
        i = next(i for i in range(1, len(positions)) if positions[i] < positions[i - 1])
        checks.add(name, False, ms, f"out of order on an ordered channel: message {positions[i]}"
                   f" after {positions[i - 1]}")
    else:
        order = "in order" if positions == sorted(positions) else "reordered"
        checks.add(name, True, ms, f"{order}, lost {lost}" if not reliable
                   else ("" if ordered else order))


async def lossy_roundtrip(d: Driven, args, checks: Checks, name: str, message) -> None:
    """A single message on a partially reliable channel with --lossy: the
    message or its echo may be lost, so it is sent again (up to LOSSY_TRIES
    times) until one echo comes back. An echo with another kind or other
    bytes fails at once; the echoes still owed for the earlier sends are
    dropped when they come late."""
    t0 = time.monotonic()
    wait = min(args.timeout, LOSSY_WAIT)
    sends = 0
    while True:
        d.dc.send(message)
        sends += 1
        try:
            got = await asyncio.wait_for(d.inbox.get(), wait)
        except asyncio.TimeoutError:
            if sends < LOSSY_TRIES:
                continue
            checks.add(f"{d.label}/{name}", False, (time.monotonic() - t0) * 1000,
                       f"no echo for any of {sends} sends, {wait}s each (--lossy)")
            return
        ms = (time.monotonic() - t0) * 1000
        wrong = echo_mismatch(message, got)
        if wrong:
            checks.add(f"{d.label}/{name}", False, ms, wrong)
        else:
            d.late.extend([message] * (sends - 1))
            checks.add(f"{d.label}/{name}", True, ms,
                       f"echoed after {sends} sends (--lossy)" if sends > 1 else "")
        return


async def channel_plan(d: Driven, args, checks: Checks) -> None:
    label, dc, timeout = d.label, d.dc, args.timeout
    spec = d.spec

    async def roundtrip(name: str, message) -> None:
        if args.lossy and not is_reliable(spec):
            await lossy_roundtrip(d, args, checks, name, message)
            return
        t0 = time.monotonic()
        try:
            dc.send(message)
            got = await asyncio.wait_for(d.inbox.get(), timeout)
        except asyncio.TimeoutError:
            checks.add(f"{label}/{name}", False, (time.monotonic() - t0) * 1000,
                       f"no echo within {timeout}s")
            return
        ms = (time.monotonic() - t0) * 1000
        wrong = echo_mismatch(message, got)
        checks.add(f"{label}/{name}", not wrong, ms, wrong)

    # What the channel looks like on this side (for in-band channels we
    # accepted, this is what the remote's DCEP OPEN said).
    t0 = time.monotonic()
    want = (
        spec.get("ordered", True),
        spec.get("maxRetransmits"),
        spec.get("maxPacketLifeTime"),
        spec.get("protocol", ""),
    )
    have = (dc.ordered, dc.maxRetransmits, dc.maxPacketLifeTime, dc.protocol)
    bad = want != have or (spec.get("negotiated") and dc.id != spec["id"])
    checks.add(f"{label}/params", not bad, (time.monotonic() - t0) * 1000,
               f"want ordered/maxRetransmits/maxPacketLifeTime/protocol {want}, have {have}"
               f" (id {dc.id})" if bad else f"id {dc.id}")

    await roundtrip("text", UTF8_TEXT)
    await roundtrip("binary", bytes(range(256)))
    if not args.no_empty:
        await roundtrip("empty_text", "")
        await roundtrip("empty_binary", b"")

    n = args.messages
    if n > 0:
        await sequence(d, args, checks, n)

    if args.big_size > 0 and label == args.big_channel:
        await roundtrip("binary_65536", random.Random(65536).randbytes(65536))
        name = f"{label}/big_{args.big_size}"
        big = random.Random(1 << 20).randbytes(args.big_size)
        parts = [big[i : i + args.chunk_size] for i in range(0, len(big), args.chunk_size)]
        t0 = time.monotonic()
        got = []
        try:
            for p in parts:
                dc.send(p)
            while len(got) < len(parts):
                got.append(await asyncio.wait_for(d.inbox.get(), timeout))
        except asyncio.TimeoutError:
            pass
        ms = (time.monotonic() - t0) * 1000
        if len(got) < len(parts):
            checks.add(name, False, ms, f"{len(got)} of {len(parts)} chunks came back within {timeout}s")
        elif not all(isinstance(g, bytes) for g in got):
            checks.add(name, False, ms, "a chunk came back as text")
        else:
            joined = b"".join(got)
            ok = hashlib.sha256(joined).digest() == hashlib.sha256(big).digest()
            checks.add(name, ok, ms, f"{len(parts)} chunks of {args.chunk_size}, "
                       f"{len(big) / max(ms, 1) / 1000:.1f} MB/s" if ok
                       else f"{len(joined)} bytes came back, SHA-256 differs")


async def run_drive(args) -> int:
    sig = Signaling()
    started = time.monotonic()
    checks = Checks()
    driven = {ch["label"]: Driven(ch) for ch in args.channels}
    session = Session(args, sig)
    keep = []

    @session.pc.on("datachannel")
    def _incoming(dc) -> None:
        keep.append(dc)
        d = driven.get(dc.label)
        if d is None or d.dc is not None or d.spec.get("negotiated"):
            log(f"unexpected channel {dc.label!r} (id {dc.id}) from the remote")
            return
        d.attach(dc)

    # Negotiated channels on both sides; in-band ones are opened by the offerer.
    for ch, dc in create_channels(session.pc, args.channels, in_band=session.offerer):
        driven[ch["label"]].attach(dc)
    sig.send({"type": "channels", "channels": args.channels})
    session.channels_seen = True

    async def main() -> None:
        if session.offerer:
            await session.offer()
        await session.wait_connected("drive")
        checks.add("connect", True, session.connect_ms or 0.0)
        t0 = time.monotonic()
        waits = [asyncio.wait_for(d.opened.wait(), args.timeout) for d in driven.values()]
        outcome = await asyncio.gather(*waits, return_exceptions=True)
        ms = (time.monotonic() - t0) * 1000
        for d, r in zip(driven.values(), outcome):
            checks.add(f"{d.label}/open", r is True, ms,
                       "" if r is True else f"not open within {args.timeout}s")
        ready = [d for d, r in zip(driven.values(), outcome) if r is True]
        await asyncio.gather(*(channel_plan(d, args, checks) for d in ready))

    code = 0
    try:
        await run_until(session, main())
    except ProtocolError as e:
        log(f"protocol error: {e}")
        checks.add("signaling", False, 0.0, f"protocol error: {e}")
        code = 2
    except Failure as e:
        checks.add("connect", False, (time.monotonic() - started) * 1000, str(e))
    except Exception as e:  # noqa: BLE001 - e.g. a description aiortc rejects
        checks.add("drive", False, (time.monotonic() - started) * 1000, f"{type(e).__name__}: {e}")
    finally:
        sig.send({"type": "bye"})
        failed = sum(not c["ok"] for c in checks.items)
        passed = len(checks.items) - failed
        ok = failed == 0 and passed > 0
        sig.send({
            "type": "result",
            "ok": ok,
            "impl": IMPL,
            "role": "offer" if session.offerer else "answer",
            "passed": passed,
            "failed": failed,
            "elapsed_ms": round((time.monotonic() - started) * 1000, 1),
            "checks": checks.items,
        })
        log(f"drive: {passed} passed, {failed} failed")
        await close_pc(session.pc)
    if code:
        return code
    return 0 if ok else 1


def main() -> int:
    args = parse_args(sys.argv[1:])
    restrict_host_candidates(args.host_ip)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING, stream=sys.stderr)
    run = run_echo if args.mode == "echo" else run_drive
    try:
        code = asyncio.run(run(args))
    except KeyboardInterrupt:
        code = 0
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # the stdin thread may still block in a read


if __name__ == "__main__":
    main()
