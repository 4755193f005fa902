#!/usr/bin/env node
// WebRTC data channel benchmark for node-datachannel (libdatachannel): the same two
// measurements as `rtc-bench` (bench/src/bin/rtc-bench.rs), with the same output line.
//
//   node bench.js [--size BYTES] [--seconds T] [--warmup T] [--open-runs N]
//                 [--cpus A,B | --no-pin] [--one-process]
//
// Layout: two peer connections in two processes. This process starts them (`taskset -c A` for
// the offering peer, which creates the channel and sends; `taskset -c B` for the answering
// peer, which receives), relays their signaling lines and prints the result. libdatachannel
// runs its own threads (a worker pool and a poll thread) beside Node's JavaScript thread, so
// one process per peer is what gives each peer exactly one CPU, as the Rust benchmark gives
// each peer one pinned thread. --one-process puts both peers in this process instead,
// unpinned.
//
// Both peers bind 127.0.0.1 only (bindAddress: host candidates on that address), no ICE
// servers, no ICE-TCP, no UDP mux. The channel is reliable, ordered and announced in band.
//
// 1. Offer-to-open, --open-runs times with fresh connections (after one uncounted run): from
//    just before the offer is created until both sides have seen the channel open (the offerer's onOpen, the
//    answerer's onDataChannel). Times come from the monotonic clock, which both processes
//    share.
// 2. Throughput: the sender writes --size-byte messages while bufferedAmount stays under 1 MiB
//    (the send budget netplay has by default), then waits for onBufferedAmountLow (threshold
//    512 KiB). The receiver counts messages; after --warmup seconds it measures for --seconds.
//
// Prints: RTC impl=node-datachannel size=... open_runs=N open_p50_ms=... open_p90_ms=...
//         mb_per_sec=... msgs_per_sec=... send_cpu=... recv_cpu=...
'use strict';

const { spawn } = require('child_process');
const readline = require('readline');

const HIGH_WATER = 1 << 20;
const LOW_WATER = 512 * 1024;
const SETUP_LIMIT_MS = 10000;

function now() {
  return process.hrtime.bigint();
}

function log(m) {
  process.stderr.write(`bench.js: ${m}\n`);
}

function parseArgs(argv) {
  const a = {
    size: 1024, seconds: 5, warmup: 1, openRuns: 10, cpus: [0, 1], oneProcess: false, child: null,
  };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const v = () => {
      if (i + 1 >= argv.length) throw new Error(`${k} needs a value`);
      return argv[++i];
    };
    switch (k) {
      case '--size': a.size = Number(v()); break;
      case '--seconds': a.seconds = Number(v()); break;
      case '--warmup': a.warmup = Number(v()); break;
      case '--open-runs': a.openRuns = Number(v()); break;
      case '--cpus': a.cpus = v().split(',').map(Number); break;
      case '--no-pin': a.cpus = null; break;
      case '--one-process': a.oneProcess = true; break;
      case '--child': a.child = v(); break;
      default: throw new Error(`unknown option ${k}`);
    }
  }
  if (!(a.size >= 1 && a.size <= 65536)) throw new Error('--size must be 1..65536');
  if (!(a.seconds > 0 && a.seconds <= 120) || !(a.warmup >= 0 && a.warmup <= 30)) {
    throw new Error('--seconds must be in (0, 120], --warmup in [0, 30]');
  }
  return a;
}

// ---------------------------------------------------------------------------------- a peer

// One side of one run. `out(msg)` sends a message to the coordinator.
class Peer {
  constructor(ndc, role, run, throughput, a, out) {
    this.ndc = ndc;
    this.role = role;
    this.run = run;
    this.throughput = throughput;
    this.a = a;
    this.out = out;
    this.offerer = role === 'offer';
    this.dc = null;
    this.remoteSet = false;
    this.pending = [];
    this.held = this.offerer ? [] : null;
    this.stopped = false;
    this.pc = new ndc.PeerConnection(`${role}${run}`, {
      iceServers: [],
      bindAddress: '127.0.0.1',
      enableIceUdpMux: false,
      enableIceTcp: false,
      disableAutoNegotiation: true,
    });
    this.pc.onLocalDescription((sdp, type) => {
      this.out({ type: 'sig', run, msg: { type: type.toLowerCase(), sdp } });
    });
    // As in tests/interop/node/rtc_peer.js: an offerer holds its candidates back until it has
    // applied the answer, or libdatachannel may see the answerer's DTLS flight before it has
    // the fingerprint to check it against.
    this.pc.onLocalCandidate((candidate, mid) => {
      const line = { type: 'sig', run, msg: { type: 'candidate', candidate, mid } };
      if (this.held) this.held.push(line);
      else this.out(line);
    });
    this.pc.onStateChange((state) => {
      if (state === 'failed') this.out({ type: 'failed', run, why: 'connection failed' });
    });
    if (this.offerer) {
      this.dc = this.pc.createDataChannel('bench');
      this.dc.onOpen(() => this.opened());
    } else {
      this.pc.onDataChannel((dc) => {
        this.dc = dc;
        this.opened();
      });
    }
  }

  start() {
    if (!this.offerer) return;
    this.out({ type: 'offer_at', run: this.run, t: String(now()) });
    this.pc.setLocalDescription('offer');
  }

  opened() {
    this.out({ type: 'open', run: this.run, role: this.role, t: String(now()) });
    if (this.throughput && !this.offerer) this.receive();
  }

  signal(msg) {
    switch (msg.type) {
      case 'offer':
      case 'answer':
        this.pc.setRemoteDescription(msg.sdp, msg.type);
        this.remoteSet = true;
        for (const c of this.pending) this.pc.addRemoteCandidate(c.candidate, c.mid);
        this.pending = [];
        if (msg.type === 'offer') this.pc.setLocalDescription('answer');
        if (this.held) {
          const held = this.held;
          this.held = null;
          for (const line of held) this.out(line);
        }
        break;
      case 'candidate':
        if (this.remoteSet) this.pc.addRemoteCandidate(msg.candidate, msg.mid);
        else this.pending.push(msg);
        break;
      default:
        break;
    }
  }

  // Sender: fill up to the high-water mark, then wait for onBufferedAmountLow.
  send() {
    const payload = Buffer.alloc(this.a.size, 0x5a);
    const dc = this.dc;
    dc.setBufferedAmountLowThreshold(LOW_WATER);
    const fill = () => {
      if (this.stopped || !dc.isOpen()) return;
      while (dc.bufferedAmount() + payload.length <= HIGH_WATER) {
        dc.sendMessageBinary(payload);
      }
    };
    dc.onBufferedAmountLow(fill);
    fill();
  }

  markCpu() {
    this.cpuMark = { cpu: process.cpuUsage(), t: now() };
  }

  cpuSince() {
    if (!this.cpuMark) return 0;
    const c = process.cpuUsage(this.cpuMark.cpu);
    const secs = Number(now() - this.cpuMark.t) / 1e9;
    return (c.user + c.system) / 1e6 / secs;
  }

  // Receiver: count, open the window after the warm-up, close it after --seconds.
  receive() {
    const warmup = BigInt(Math.round(this.a.warmup * 1e9));
    const length = BigInt(Math.round(this.a.seconds * 1e9));
    const opened = now();
    let bytes = 0;
    let msgs = 0;
    let start = null;
    const tick = () => {
      if (this.stopped) return;
      const t = now();
      if (start === null) {
        if (t - opened >= warmup) {
          start = { t, bytes, msgs };
          this.markCpu();
          this.out({ type: 'window_start', run: this.run });
        }
      } else if (t - start.t >= length) {
        this.stopped = true;
        const seconds = Number(t - start.t) / 1e9;
        this.out({
          type: 'window', run: this.run, seconds, bytes: bytes - start.bytes, msgs: msgs - start.msgs,
          recv_cpu: this.cpuSince(),
        });
      }
    };
    this.dc.onMessage((m) => {
      bytes += m.length !== undefined ? m.length : m.byteLength;
      msgs += 1;
      tick();
    });
    // The window also ends if messages stop coming.
    this.timer = setInterval(tick, 50);
  }

  close() {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    try {
      if (this.dc) this.dc.close();
      this.pc.close();
    } catch (e) {
      log(`close: ${e.message}`);
    }
  }
}

// ---------------------------------------------------------------------------- child process

// A child holds one peer per run and follows the coordinator's lines on stdin.
function childMain(a) {
  const ndc = require('node-datachannel');
  ndc.initLogger('Error', (level, message) => log(`[${level}] ${message}`));
  const out = (m) => process.stdout.write(`${JSON.stringify(m)}\n`);
  let peer = null;
  const rl = readline.createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    const m = JSON.parse(line);
    switch (m.type) {
      case 'new':
        peer = new Peer(ndc, a.child, m.run, m.throughput, a, out);
        out({ type: 'ready', run: m.run });
        break;
      case 'start': peer.start(); break;
      case 'sig': if (peer && peer.run === m.run) peer.signal(m.msg); break;
      case 'send': peer.send(); break;
      case 'window_start': peer.markCpu(); break;
      case 'stop':
        out({ type: 'send_cpu', run: peer.run, cpu: peer.cpuSince() });
        peer.close();
        break;
      case 'close':
        peer.close();
        peer = null;
        out({ type: 'closed', run: m.run });
        break;
      case 'exit':
        try { ndc.cleanup(); } catch (_) { /* exiting anyway */ }
        process.exit(0);
        break;
      default:
        break;
    }
  });
  rl.on('close', () => process.exit(0));
}

// ------------------------------------------------------------------------------ coordinator

// A side the coordinator talks to: a child process, or a peer in this process.
class ProcSide {
  constructor(role, a, onMsg) {
    const args = [__filename, '--child', role, '--size', String(a.size), '--seconds', String(a.seconds),
      '--warmup', String(a.warmup)];
    const cmd = a.cpus ? ['taskset', '-c', String(a.cpus[role === 'offer' ? 0 : 1]), process.execPath, ...args]
      : [process.execPath, ...args];
    this.proc = spawn(cmd[0], cmd.slice(1), { stdio: ['pipe', 'pipe', 'inherit'] });
    this.proc.on('exit', (code) => { if (code) onMsg({ type: 'failed', why: `${role} exited with ${code}` }); });
    readline.createInterface({ input: this.proc.stdout }).on('line', (l) => onMsg(JSON.parse(l)));
  }

  send(m) {
    this.proc.stdin.write(`${JSON.stringify(m)}\n`);
  }
}

class LocalSide {
  constructor(role, a, onMsg) {
    this.role = role;
    this.a = a;
    this.onMsg = onMsg;
    this.ndc = require('node-datachannel');
    this.peer = null;
  }

  send(m) {
    // Deliver on a later turn, as a line from a pipe would be.
    setImmediate(() => {
      const out = (x) => setImmediate(() => this.onMsg(x));
      switch (m.type) {
        case 'new':
          this.peer = new Peer(this.ndc, this.role, m.run, m.throughput, this.a, out);
          out({ type: 'ready', run: m.run });
          break;
        case 'start': this.peer.start(); break;
        case 'sig': if (this.peer && this.peer.run === m.run) this.peer.signal(m.msg); break;
        case 'send': this.peer.send(); break;
        case 'window_start': this.peer.markCpu(); break;
        case 'stop':
          out({ type: 'send_cpu', run: this.peer.run, cpu: this.peer.cpuSince() });
          this.peer.close();
          break;
        case 'close':
          this.peer.close();
          this.peer = null;
          out({ type: 'closed', run: m.run });
          break;
        default: break;
      }
    });
  }
}

function percentile(sorted, p) {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.round(p * (sorted.length - 1)))];
}

async function coordinator(a) {
  let waiters = [];
  const inbox = [];
  let failed = null;
  const deliver = (from) => (m) => {
    if (m.type === 'failed') {
      failed = failed || m.why;
    }
    if (m.type === 'sig') {
      // Signaling goes straight across.
      (from === 'offer' ? sides.answer : sides.offer).send(m);
      return;
    }
    inbox.push({ from, ...m });
    waiters = waiters.filter((f) => !f());
  };
  const sides = {};
  const Side = a.oneProcess ? LocalSide : ProcSide;
  sides.offer = new Side('offer', a, deliver('offer'));
  sides.answer = new Side('answer', a, deliver('answer'));

  // Waits for a message matching `pred`, or fails after `ms`.
  const expect = (pred, ms, what) => new Promise((resolve, reject) => {
    let done = false;
    const finish = (f, v) => { done = true; clearTimeout(timer); f(v); return true; };
    const look = () => {
      if (done) return true;
      if (failed) return finish(reject, new Error(failed));
      const i = inbox.findIndex(pred);
      if (i >= 0) return finish(resolve, inbox.splice(i, 1)[0]);
      return false;
    };
    const timer = setTimeout(() => {
      if (!done) finish(reject, new Error(`timed out waiting for ${what}`));
    }, ms);
    if (!look()) waiters.push(look);
  });

  const opens = [];
  let window = null;
  let sendCpu = NaN;
  // Run 0 warms up and is not counted; the last run measures throughput.
  const total = a.openRuns + 2;
  for (let run = 0; run < total; run++) {
    const throughput = run === total - 1;
    for (const s of [sides.offer, sides.answer]) s.send({ type: 'new', run, throughput });
    await expect((m) => m.type === 'ready' && m.run === run && m.from === 'offer', SETUP_LIMIT_MS, 'ready');
    await expect((m) => m.type === 'ready' && m.run === run && m.from === 'answer', SETUP_LIMIT_MS, 'ready');
    sides.offer.send({ type: 'start', run });
    const at = await expect((m) => m.type === 'offer_at' && m.run === run, SETUP_LIMIT_MS, 'offer');
    const o1 = await expect((m) => m.type === 'open' && m.run === run && m.role === 'offer', SETUP_LIMIT_MS, 'open (offerer)');
    const o2 = await expect((m) => m.type === 'open' && m.run === run && m.role === 'answer', SETUP_LIMIT_MS, 'open (answerer)');
    const end = BigInt(o1.t) > BigInt(o2.t) ? BigInt(o1.t) : BigInt(o2.t);
    if (!throughput && run > 0) opens.push(Number(end - BigInt(at.t)) / 1e6);
    if (throughput) {
      sides.offer.send({ type: 'send' });
      await expect((m) => m.type === 'window_start' && m.run === run, (a.warmup + 30) * 1000, 'window start');
      sides.offer.send({ type: 'window_start' });
      window = await expect((m) => m.type === 'window' && m.run === run, (a.seconds + 30) * 1000, 'window');
      sides.offer.send({ type: 'stop' });
      sendCpu = (await expect((m) => m.type === 'send_cpu' && m.run === run, 10000, 'send cpu')).cpu;
    }
    for (const s of [sides.offer, sides.answer]) s.send({ type: 'close', run });
    await expect((m) => m.type === 'closed' && m.run === run && m.from === 'offer', 10000, 'closed');
    await expect((m) => m.type === 'closed' && m.run === run && m.from === 'answer', 10000, 'closed');
  }
  opens.sort((x, y) => x - y);
  const f = (x, d) => (Number.isFinite(x) ? x.toFixed(d) : 'nan');
  console.log([
    'RTC impl=node-datachannel', `size=${a.size}`, `open_runs=${opens.length}`,
    `open_p50_ms=${f(percentile(opens, 0.5), 3)}`, `open_p90_ms=${f(percentile(opens, 0.9), 3)}`,
    `open_min_ms=${f(opens[0], 3)}`, `seconds=${f(window.seconds, 3)}`,
    `mb_per_sec=${f(window.bytes / window.seconds / 1e6, 2)}`, `msgs_per_sec=${f(window.msgs / window.seconds, 0)}`,
    `send_cpu=${f(sendCpu, 2)}`, `recv_cpu=${f(window.recv_cpu, 2)}`, 'failed_runs=0',
  ].join(' '));
  if (!a.oneProcess) {
    for (const s of [sides.offer, sides.answer]) s.send({ type: 'exit' });
  } else {
    try { require('node-datachannel').cleanup(); } catch (_) { /* exiting anyway */ }
  }
  setTimeout(() => process.exit(0), 200);
}

let args;
try {
  args = parseArgs(process.argv.slice(2));
} catch (e) {
  log(e.message);
  log('usage: node bench.js [--size BYTES] [--seconds T] [--warmup T] [--open-runs N] [--cpus A,B | --no-pin] [--one-process]');
  process.exit(2);
}
if (args.child) {
  childMain(args);
} else {
  coordinator(args).catch((e) => {
    log(`failed: ${e.message}`);
    process.exit(1);
  });
}
