#!/usr/bin/env python3
"""Self-test of the external test peers: py_peer.py and node/peer.js against
each other (and themselves), over ws:// and wss://.

It proves the peers implement their contract (echo, fragments, 16 MiB,
ordering, sub-protocol selection, close codes, max size -> 1009, TLS) with two
independent WebSocket implementations, before the netplay interop tests rely
on them. Run with the test venv's python (scripts/test.sh does):

    $NETPLAY_VENV/bin/python tests/interop/peer_selftest.py

Every process is bounded in time and killed on exit. Traffic: 127.0.0.1 only.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
NODE_DIR = Path(os.environ.get("NETPLAY_NODE_DIR", HERE / "node"))
PY = sys.executable
CLIENT_TIMEOUT = 120  # seconds for one client run (each of its waits: 20 s)


def peer_cmd(impl: str, *args: str) -> list[str]:
    if impl == "py":
        return [PY, str(HERE / "py_peer.py"), *args]
    return ["node", str(NODE_DIR / "peer.js"), *args]


class Server:
    def __init__(self, impl: str, *args: str):
        self.impl = impl
        self.args = args
        self.proc = subprocess.Popen(
            peer_cmd(impl, "server", "--port", "0", *args),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        lines: queue.Queue[str | None] = queue.Queue()

        def pump():
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + 30
        self.port = None
        seen = []
        while self.port is None:
            left = deadline - time.monotonic()
            try:
                line = lines.get(timeout=max(0.1, left))
            except queue.Empty:
                line = None
            if line is None or left <= 0:
                self.stop()
                raise RuntimeError(f"{impl} server {args} did not print READY: {seen}")
            seen.append(line)
            if line.startswith("READY "):
                self.port = int(line.split()[1])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


results: list[tuple[str, bool]] = []


def client(
    name: str, impl: str, url: str, *args: str, expect: list[str], must_fail: bool = False
) -> None:
    """Run a client; it must exit 0 and print `ok <check>` for each of `expect`
    (with must_fail: it must exit non-zero, printing a FAIL line)."""
    label = f"{name}: {impl} client" + (" must fail" if must_fail else "")
    try:
        p = subprocess.run(
            peer_cmd(impl, "client", "--url", url, *args),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=CLIENT_TIMEOUT,
        )
        oks = {l[3:].strip() for l in p.stdout.splitlines() if l.startswith("ok ")}
        missing = [e for e in expect if e not in oks]
        good = p.returncode == 0 and not missing and "FAIL" not in p.stdout
        if must_fail:
            good = p.returncode != 0 and "FAIL " in p.stdout
        detail = p.stdout + p.stderr
        if missing:
            detail += f"\n(missing checks: {missing})"
    except subprocess.TimeoutExpired as e:
        good, detail = False, f"timed out after {CLIENT_TIMEOUT}s: {e.stdout!r}"
    results.append((label, good))
    print(f"{'ok  ' if good else 'FAIL'} {label}", flush=True)
    if not good:
        print("    " + detail.strip().replace("\n", "\n    "), flush=True)


SUITE = [
    "connect",
    "text_round_trip",
    "empty_text_round_trip",
    "binary_round_trip",
    "fragmented_text",
    "fragmented_binary",
    "big_16mib_binary",
    "hundred_messages_in_order",
    "close_4001",
]


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="netplay-peer-selftest-") as tmp:
        subprocess.run(
            [PY, str(HERE / "gen_certs.py"), tmp], check=True, stdout=subprocess.DEVNULL
        )
        ca, cert, key = (os.path.join(tmp, f) for f in ("ca.pem", "cert.pem", "key.pem"))
        for server_impl in ("py", "node"):
            with Server(server_impl, "--protocol", "chat") as s:
                url = f"ws://127.0.0.1:{s.port}"
                for c in ("py", "node"):
                    n = f"{server_impl} server ws + protocol"
                    client(n, c, url, "--suite", "--protocol", "x", "--protocol", "chat",
                           "--expect-protocol", "chat", expect=SUITE + ["protocol_chat"])
                    client(f"{server_impl} server ws, no deflate", c, url, "--suite",
                           "--no-deflate", "--protocol", "chat", expect=SUITE)
                    client(f"{server_impl} server closes 4002", c, url, "--protocol", "chat",
                           "--request-close", "4002:going away now",
                           expect=["connect", "server_close_4002"])
            with Server(server_impl, "--max-size", "100000") as s:
                url = f"ws://127.0.0.1:{s.port}"
                for c in ("py", "node"):
                    n = f"{server_impl} server max-size 100000"
                    # A server without protocols selects none. (A ws client fails
                    # the connection when it offered some and got none.)
                    offer = ["--protocol", "x", "--protocol", "chat"] if c == "py" else []
                    # Exactly max-size is accepted. Without deflate: both peers also
                    # limit the compressed frame, which random data makes larger.
                    client(n + ", exactly", c, url, *offer, "--expect-protocol", "-",
                           "--send-big", "100000",
                           "--no-deflate",
                           expect=["connect", "protocol_-", "big_100000_echoed", "close_4001"])
                    client(n + ", +1 byte", c, url, "--send-big", "100001", "--expect-close-code", "1009",
                           expect=["connect", "big_100001_closed_1009"])
                    client(n + ", fragmented", c, url, "--send-big", "200000",
                           "--big-fragments", "4", "--expect-close-code", "1009",
                           expect=["connect", "big_200000_closed_1009"])
            with Server(server_impl, "--tls-cert", cert, "--tls-key", key) as s:
                url = f"wss://127.0.0.1:{s.port}"
                for c in ("py", "node"):
                    client(f"{server_impl} server wss", c, url, "--ca", ca, "--suite",
                           expect=SUITE)
                    # Without --ca the self-signed chain must be rejected.
                    client(f"{server_impl} server wss, untrusted", c, url, "--timeout", "5",
                           expect=[], must_fail=True)

    failed = [label for label, good in results if not good]
    print(f"peer self-test: {len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
