#!/usr/bin/env python3
"""Self-test of the external WebRTC test peers: rtc_py_peer.py (aiortc) and
node/rtc_peer.js (libdatachannel) against each other, through the line
protocol of `netplay rtc-echo` (docs/PROTOCOL.md).

For every pairing of a driving peer with an echoing peer, and for both offer
directions (the driver offers, or the echo peer offers), it starts the two
processes and relays the JSON lines between their stdout and stdin, the way a
netplay interop test will. The driver's default channel set covers in-band
and negotiated channels, ordered and unordered, partially reliable ones
(maxRetransmits 0, maxPacketLifeTime), text, binary and empty messages, 100
messages in sequence and 1 MiB in 16 KiB chunks (SHA-256 compared).

Run with the test venv's python:

    $NETPLAY_VENV/bin/python tests/interop/rtc_selftest.py [--only PAIR]...

PAIR is DRIVER-ECHO-ROLE, e.g. py-node-offer (the aiortc driver offers to
the libdatachannel echo peer). Traffic stays on 127.0.0.1: both peers gather
host candidates on 127.0.0.1 only, and the relay also drops (and counts as a
failure) any candidate of another address, in candidate lines and in SDP.
Every process is bounded in time and killed on exit.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
NODE_DIR = Path(os.environ.get("NETPLAY_NODE_DIR", HERE / "node"))
PY = sys.executable
RUN_TIMEOUT = 120  # seconds for one pairing, start to both exits
LOOPBACK = "127.0.0.1"

IMPLS = {"py": "aiortc", "node": "libdatachannel"}


def peer_cmd(impl: str, *args: str) -> list[str]:
    if impl == "py":
        return [PY, str(HERE / "rtc_py_peer.py"), *args]
    return ["node", str(NODE_DIR / "rtc_peer.js"), *args]


def candidate_address(candidate: str) -> str | None:
    """The connection address of an ICE candidate line (with or without
    `a=` / `candidate:`), None if it has none."""
    parts = candidate.strip().split()
    return parts[4] if len(parts) >= 8 else None


class Relay:
    """Carries the lines of one process's stdout to the other's stdin."""

    def __init__(self, name: str, src: subprocess.Popen, dst: subprocess.Popen, record: dict):
        self.name = name
        self.src, self.dst = src, dst
        self.record = record
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def note(self, key: str, value=1) -> None:
        if isinstance(value, int):
            self.record[key] = self.record.get(key, 0) + value
        else:
            self.record.setdefault(key, []).append(value)

    def filter(self, msg: dict) -> dict | None:
        kind = msg.get("type")
        if kind == "candidate" and isinstance(msg.get("candidate"), str):
            if not msg["candidate"].strip():
                self.note(f"{self.name} end-of-candidates")
                return msg
            addr = candidate_address(msg["candidate"])
            if addr != LOOPBACK:
                self.note("foreign candidates", f"{self.name}: {msg['candidate']}")
                return None
            self.note(f"{self.name} loopback candidates")
        elif kind in ("offer", "answer") and isinstance(msg.get("sdp"), str):
            lines = []
            for line in msg["sdp"].split("\r\n"):
                if line.startswith("a=candidate:"):
                    if candidate_address(line) != LOOPBACK:
                        self.note("foreign candidates", f"{self.name} sdp: {line}")
                        continue
                    self.note(f"{self.name} loopback candidates")
                lines.append(line)
            msg = dict(msg, sdp="\r\n".join(lines))
        return msg

    def run(self) -> None:
        assert self.src.stdout is not None and self.dst.stdin is not None
        for raw in self.src.stdout:
            line = raw.strip()
            if not line:
                continue
            try:
                msg = json.loads(line)
            except ValueError:
                self.note("bad lines", f"{self.name}: {line[:120]}")
                continue
            if not isinstance(msg, dict):
                self.note("bad lines", f"{self.name}: {line[:120]}")
                continue
            self.note(f"{self.name} {msg.get('type')}")
            if msg.get("type") == "result":
                self.record["result"] = msg
                continue  # for the test, not for the other peer
            out = self.filter(msg)
            if out is None:
                continue
            try:
                self.dst.stdin.write(json.dumps(out, separators=(",", ":")) + "\n")
                self.dst.stdin.flush()
            except (BrokenPipeError, ValueError, OSError):
                pass
        try:
            self.dst.stdin.close()  # the source ended: EOF for the other side
        except (BrokenPipeError, OSError):
            pass


def collect(stream, sink: list) -> threading.Thread:
    def run():
        for line in stream:
            sink.append(line.rstrip("\n"))

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def stop(p: subprocess.Popen) -> int | None:
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        return None
    return p.returncode


def run_pair(driver: str, echo: str, role: str, extra: list[str], debug: bool) -> tuple[bool, str]:
    other = "--answer" if role == "offer" else "--offer"
    popen = dict(stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                 text=True, bufsize=1)
    t0 = time.monotonic()
    dbg = ["--debug"] if debug else []
    d = subprocess.Popen(peer_cmd(driver, "drive", f"--{role}", *dbg, *extra), **popen)
    e = subprocess.Popen(peer_cmd(echo, "echo", other, *dbg), **popen)
    record: dict = {}
    d_err: list[str] = []
    e_err: list[str] = []
    threads = [collect(d.stderr, d_err), collect(e.stderr, e_err)]
    relays = [Relay("driver", d, e, record), Relay("echo", e, d, record)]
    problems = []
    try:
        try:
            d_rc = d.wait(max(1.0, RUN_TIMEOUT - (time.monotonic() - t0)))
        except subprocess.TimeoutExpired:
            d_rc = None
            problems.append(f"driver still running after {RUN_TIMEOUT}s")
        # The driver wrote `bye` (and its stdout closed, so the echo peer's
        # stdin closes too): the echo peer ends by itself.
        try:
            e_rc = e.wait(10)
        except subprocess.TimeoutExpired:
            e_rc = None
            problems.append("echo peer did not exit within 10s after the driver")
    finally:
        stop(d)
        stop(e)
        for t in threads + [r.thread for r in relays]:
            t.join(5)
    elapsed = time.monotonic() - t0

    result = record.get("result")
    if d_rc not in (0, None):
        problems.append(f"driver exit code {d_rc}")
    if e_rc not in (0, None):
        problems.append(f"echo peer exit code {e_rc}")
    if result is None:
        problems.append("no result line from the driver")
    elif not result.get("ok"):
        bad = [c for c in result.get("checks", []) if not c.get("ok")]
        problems.append("failed checks: " + "; ".join(f"{c['name']}: {c.get('detail')}" for c in bad))
    if record.get("foreign candidates"):
        problems.append(f"non-loopback candidates (dropped): {record['foreign candidates']}")
    for side in ("driver", "echo"):
        if not record.get(f"{side} loopback candidates"):
            problems.append(f"no 127.0.0.1 candidate from the {side}")
        if record.get(f"{side} end-of-candidates", 0) != 1:
            problems.append(f"the {side} sent {record.get(f'{side} end-of-candidates', 0)} "
                            "end-of-candidates lines, not 1")
    if record.get("bad lines"):
        problems.append(f"lines that are not JSON objects: {record['bad lines']}")

    if result is not None:
        names = {c["name"] for c in result.get("checks", [])}
        want = ["connect"]
        for label in ("reliable", "unordered", "rexmit0", "lifetime", "negotiated",
                      "negotiated-unordered"):
            want += [f"{label}/{n}" for n in ("open", "params", "text", "binary",
                                              "empty_text", "empty_binary", "sequence_100")]
        want += ["reliable/binary_65536", "reliable/big_1048576"]
        missing = [n for n in want if n not in names]
        if missing and not extra:
            problems.append(f"missing checks: {missing}")

    ok = not problems
    summary = ""
    if result is not None:
        checks = result.get("checks", [])
        connect = next((c for c in checks if c["name"] == "connect"), {})
        parts = [f"{result.get('passed')} checks passed", f"connect {connect.get('ms', '?')} ms"]
        parts += [f"{c['name']} {c['ms']} ms ({c.get('detail', '')})"
                  for c in checks if "/big_" in c["name"] and c.get("ok")]
        parts += [f"{c['name']}: {c['detail']}" for c in checks
                  if "/sequence_" in c["name"] and "lost" in c.get("detail", "")]
        summary = "; ".join(parts)
    detail = f"{elapsed:.1f}s; {summary}"
    if not ok:
        detail += "\n" + "\n".join(problems)
    if not ok or debug:
        detail += "\n--- driver stderr\n" + "\n".join((d_err if debug else d_err[-40:]))
        detail += "\n--- echo stderr\n" + "\n".join((e_err if debug else e_err[-40:]))
    return ok, detail


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", action="append", default=[], metavar="PAIR",
                    help="DRIVER-ECHO-ROLE, e.g. node-py-answer (repeatable)")
    ap.add_argument("--cross-only", action="store_true",
                    help="only aiortc <-> libdatachannel, not each stack with itself")
    ap.add_argument("--debug", action="store_true",
                    help="the peers' library debug logs, shown for every pairing")
    args = ap.parse_args()
    pairs = [
        (drv, ech, role)
        for drv, ech in (("py", "node"), ("node", "py"), ("py", "py"), ("node", "node"))
        for role in ("offer", "answer")
        if not (args.cross_only and drv == ech)
    ]
    if args.only:
        pairs = [p for p in pairs if "-".join(p) in args.only]
        if not pairs:
            ap.error("no pairing matches --only")

    passed = failed = 0
    for drv, ech, role in pairs:
        label = (f"{IMPLS[drv]} drive ({role}s) <-> {IMPLS[ech]} echo"
                 f" ({'answers' if role == 'offer' else 'offers'})")
        ok, detail = run_pair(drv, ech, role, [], args.debug)
        print(f"{'ok  ' if ok else 'FAIL'} {label}: {detail}", flush=True)
        if ok:
            passed += 1
        else:
            failed += 1
    print(f"rtc self-test: {passed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
