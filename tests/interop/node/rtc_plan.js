// What the Node WebRTC test peers have in common, whatever their stack:
// the command line, the signaling lines of docs/PROTOCOL.md on stdin/stdout,
// and the test plan of `drive` with its checks and its `result` line.
//
// Used by rtc_peer.js (libdatachannel) and rtc_browser_peer.js (Chromium).
// A peer supplies its stack: it creates channels, and hands each driven
// channel a transport ({ send(msg), params() }) and feeds it what arrives
// (Driven.deliver) and when it opens (Driven.markOpen).
'use strict';

const crypto = require('crypto');
const readline = require('readline');

const QUIET_MS = 2000; // without an echo: the end of a partially reliable sequence
const PROBES = 3; // single messages sent after a partially reliable burst that was lost whole
// --lossy: a single message on a partially reliable channel is sent up to
// LOSSY_TRIES times, each send waiting LOSSY_WAIT_MS for its echo (a lost
// message is retransmitted after about a second, within a 3 s lifetime).
const LOSSY_TRIES = 4;
const LOSSY_WAIT_MS = 4000;
const UTF8_TEXT = 'héllo wörld · ✓ · Ελληνικά · 日本語 · 😀🎮 · 𝄞 · end';
const DEFAULT_CHANNELS = [
  'reliable',
  'unordered:unordered,protocol=chat',
  'rexmit0:unordered,rexmit=0',
  'lifetime:unordered,lifetime=3000',
  'negotiated:id=100',
  'negotiated-unordered:unordered,id=101',
];

// ----------------------------------------------------------------------- log

let logName = 'rtc peer';
const T0 = Date.now();

function setLogName(name) {
  logName = name;
}

function log(msg) {
  process.stderr.write(`${logName} +${Date.now() - T0}ms: ${msg}\n`);
}

class ProtocolError extends Error {}
class Failure extends Error {}

function usage(msg) {
  process.stderr.write(`${logName}: ${msg}\n`);
  process.exit(2);
}

// ------------------------------------------------------------------- options

function parseChannelSpec(spec) {
  const colon = spec.indexOf(':');
  const label = colon < 0 ? spec : spec.slice(0, colon);
  const opts = colon < 0 ? '' : spec.slice(colon + 1);
  if (!label) throw new Error(`channel spec ${JSON.stringify(spec)}: empty label`);
  const ch = { label };
  for (const opt of opts.split(',').filter(Boolean)) {
    const eq = opt.indexOf('=');
    const key = eq < 0 ? opt : opt.slice(0, eq);
    const value = eq < 0 ? null : opt.slice(eq + 1);
    const num = value !== null && /^\d+$/.test(value) ? Number(value) : null;
    if (key === 'unordered' && value === null) ch.ordered = false;
    else if (key === 'rexmit' && num !== null) ch.maxRetransmits = num;
    else if (key === 'lifetime' && num !== null) ch.maxPacketLifeTime = num;
    else if (key === 'id' && num !== null) {
      ch.negotiated = true;
      ch.id = num;
    } else if (key === 'protocol' && value !== null) ch.protocol = value;
    else throw new Error(`channel spec ${JSON.stringify(spec)}: bad option ${JSON.stringify(opt)}`);
  }
  if ('maxRetransmits' in ch && 'maxPacketLifeTime' in ch) {
    throw new Error(`channel spec ${JSON.stringify(spec)}: rexmit and lifetime exclude each other`);
  }
  return ch;
}

function isUint(v, max) {
  return Number.isInteger(v) && v >= 0 && v <= max;
}

// Validates the `channels` array of a `channels` line.
function checkChannelList(channels) {
  if (!Array.isArray(channels) || channels.length === 0) throw new ProtocolError('`channels` must be a non-empty array');
  const labels = new Set();
  for (const ch of channels) {
    if (!ch || typeof ch !== 'object' || typeof ch.label !== 'string') {
      throw new ProtocolError(`channel without a string label: ${JSON.stringify(ch)}`);
    }
    if (labels.has(ch.label)) throw new ProtocolError(`duplicate channel label ${JSON.stringify(ch.label)}`);
    labels.add(ch.label);
    for (const k of ['maxRetransmits', 'maxPacketLifeTime']) {
      if (ch[k] !== undefined && ch[k] !== null && !isUint(ch[k], 65535)) {
        throw new ProtocolError(`channel ${JSON.stringify(ch.label)}: bad ${k}`);
      }
    }
    if (ch.maxRetransmits != null && ch.maxPacketLifeTime != null) {
      throw new ProtocolError(`channel ${JSON.stringify(ch.label)}: maxRetransmits and maxPacketLifeTime`);
    }
    if (ch.negotiated && !isUint(ch.id, 1023)) {
      throw new ProtocolError(`negotiated channel ${JSON.stringify(ch.label)} needs an id 0..1023`);
    }
  }
  return channels;
}

const isReliable = (ch) => ch.maxRetransmits == null && ch.maxPacketLifeTime == null;
const isOrdered = (ch) => ch.ordered !== false;

function parseArgs(argv) {
  const mode = argv[0];
  if (mode !== 'echo' && mode !== 'drive') usage('first argument must be `echo` or `drive`');
  const a = {
    mode,
    offer: false,
    answer: false,
    iceServer: [],
    username: null,
    credential: null,
    relayOnly: false,
    hostIp: '127.0.0.1',
    connectTimeout: 30,
    channel: [],
    messages: 100,
    bigSize: 1 << 20,
    chunkSize: 16384,
    bigChannel: null,
    timeout: 20,
    noEmpty: false,
    lossy: false,
    debug: false,
  };
  const num = (k, v) => {
    if (v === undefined || !/^\d+(\.\d+)?$/.test(v)) usage(`${k} needs a non-negative number`);
    return Number(v);
  };
  const driveOnly = new Set(['--channel', '--messages', '--big-size', '--chunk-size', '--big-channel', '--timeout', '--no-empty', '--lossy']);
  for (let i = 1; i < argv.length; i++) {
    const k = argv[i];
    const v = () => {
      if (i + 1 >= argv.length) usage(`${k} needs a value`);
      return argv[++i];
    };
    if (mode === 'echo' && driveOnly.has(k)) usage(`${k} is an option of drive`);
    switch (k) {
      case '--offer': a.offer = true; break;
      case '--answer': a.answer = true; break;
      case '--ice-server': a.iceServer.push(v()); break;
      case '--username': a.username = v(); break;
      case '--credential': a.credential = v(); break;
      case '--relay-only': a.relayOnly = true; break;
      case '--host-ip': a.hostIp = v(); break;
      case '--connect-timeout': a.connectTimeout = num(k, v()); break;
      case '--channel': a.channel.push(v()); break;
      case '--messages': a.messages = num(k, v()); break;
      case '--big-size': a.bigSize = num(k, v()); break;
      case '--chunk-size': a.chunkSize = num(k, v()); break;
      case '--big-channel': a.bigChannel = v(); break;
      case '--timeout': a.timeout = num(k, v()); break;
      case '--no-empty': a.noEmpty = true; break;
      case '--lossy': a.lossy = true; break;
      case '--debug': a.debug = true; break;
      default: usage(`unknown argument ${k}`);
    }
  }
  if (a.offer === a.answer) usage('exactly one of --offer and --answer');
  if ((a.username === null) !== (a.credential === null)) usage('--username and --credential go together');
  if (mode === 'drive') {
    try {
      a.channels = checkChannelList((a.channel.length ? a.channel : DEFAULT_CHANNELS).map(parseChannelSpec));
    } catch (e) {
      usage(e.message);
    }
    if (a.bigSize > 0) {
      if (a.bigChannel === null) {
        const r = a.channels.find((c) => isReliable(c) && isOrdered(c));
        if (!r) usage('--big-size needs an ordered reliable channel');
        a.bigChannel = r.label;
      }
      const big = a.channels.find((c) => c.label === a.bigChannel);
      if (!big || !isReliable(big) || !isOrdered(big)) {
        usage(`--big-channel ${JSON.stringify(a.bigChannel)} is not an ordered reliable channel`);
      }
      if (!(a.chunkSize > 0)) usage('--chunk-size must be positive');
    }
  }
  return a;
}

// The parts of an --ice-server URL: stun:host[:port],
// turn:host[:port][?transport=udp|tcp], turns:host[:port]; null if invalid.
function parseIceUrl(url) {
  const m = /^(stun|stuns|turn|turns):(\[[^\]]+\]|[^:?]+)(?::(\d+))?(?:\?transport=(udp|tcp))?$/.exec(url);
  if (!m) return null;
  const [, scheme, host, port, transport] = m;
  return {
    scheme,
    hostname: host.replace(/^\[|\]$/g, ''),
    port: port ? Number(port) : scheme.endsWith('s') ? 5349 : 3478,
    transport: transport || null,
  };
}

// ----------------------------------------------------------------- signaling

function send(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

// Reads stdin lines; calls onMessage(obj) per line (awaited, in order) and
// onEnd() at EOF. A bad line rejects `failed` with a ProtocolError.
class Signaling {
  constructor(onMessage, onEnd) {
    this.chain = Promise.resolve();
    let failed;
    this.failed = new Promise((_, reject) => { failed = reject; });
    this.failed.catch(() => {});
    const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
    const run = (fn) => {
      this.chain = this.chain.then(fn).catch((e) => failed(e));
    };
    rl.on('line', (line) => run(async () => {
      const text = line.trim();
      if (!text) return;
      let msg;
      try {
        msg = JSON.parse(text);
      } catch (e) {
        throw new ProtocolError(`not JSON: ${JSON.stringify(text.slice(0, 80))} (${e.message})`);
      }
      if (!msg || typeof msg !== 'object' || Array.isArray(msg) || typeof msg.type !== 'string') {
        throw new ProtocolError(`not an object with a string \`type\`: ${JSON.stringify(text.slice(0, 80))}`);
      }
      await onMessage(msg);
    }));
    rl.on('close', () => run(async () => onEnd()));
  }
}

// The candidate of a `candidate` line ("" for end-of-candidates), its mid
// and index.
function parseCandidate(msg) {
  if (typeof msg.candidate !== 'string') throw new ProtocolError('candidate line without a string `candidate`');
  if (msg.mid != null && typeof msg.mid !== 'string') throw new ProtocolError('`mid` must be a string');
  if (msg.index != null && !isUint(msg.index, 65535)) throw new ProtocolError('`index` must be a non-negative integer');
  let c = msg.candidate.trim();
  if (c.startsWith('a=')) c = c.slice(2);
  if (c && !c.startsWith('candidate:')) c = `candidate:${c}`;
  return { candidate: c, mid: msg.mid, index: msg.index };
}

// The first a=mid of an SDP, or null.
function sdpMid(sdp) {
  const m = /^a=mid:(.*)$/m.exec(sdp);
  return m ? m[1].trim() : null;
}

// The channels of `channels` this side creates: the negotiated ones, and the
// in-band ones too if `inBand` (the offerer opens those). Each with its
// RTCDataChannelInit: [[spec, init]].
function channelInits(channels, inBand) {
  return channels.filter((ch) => ch.negotiated || inBand).map((ch) => {
    const init = { ordered: isOrdered(ch) };
    if (ch.protocol) init.protocol = ch.protocol;
    if (ch.maxRetransmits != null) init.maxRetransmits = ch.maxRetransmits;
    if (ch.maxPacketLifeTime != null) init.maxPacketLifeTime = ch.maxPacketLifeTime;
    if (ch.negotiated) {
      init.negotiated = true;
      init.id = ch.id;
    }
    return [ch, init];
  });
}

// One side of the signaling, whatever the stack: the lines it reads, the
// candidates it holds back, its end-of-candidates, the end of the session
// (`bye`) and the wait for the connection. A peer's subclass supplies
// setRemote(type, sdp) (applies the remote description), afterRemote(type)
// (once the candidates that came before it are added too: answers an offer)
// and addCandidate(c), reports connectionState(state), sets `localSent`,
// `gathered` and `localMid`, and calls startSignaling() when ready for lines.
// While `held` is an array, the local candidates wait in it.
class SignalingSession {
  constructor(a, onChannels, started = Date.now()) {
    this.a = a;
    this.offerer = a.offer;
    this.onChannels = onChannels;
    this.channelsSeen = false;
    this.remoteSet = false;
    this.pending = [];
    this.started = started;
    this.connectMs = null;
    this.localMid = '0';
    this.localSent = false;
    this.gathered = false;
    this.endSent = false;
    this.held = null;
    this.ended = false;
    let byeResolve;
    this.byePromise = new Promise((r) => { byeResolve = r; });
    this.bye = (why) => {
      if (!this.ended) log(why);
      this.ended = true;
      byeResolve();
    };
    this.connected = new Promise((res, rej) => { this.connResolve = res; this.connReject = rej; });
    this.connected.catch(() => {});
  }

  startSignaling() {
    this.sig = new Signaling((m) => this.handle(m), () => this.bye('stdin EOF'));
  }

  connectionState(state) {
    log(`connection state ${state}`);
    if (state === 'connected' && this.connectMs === null) {
      this.connectMs = Date.now() - this.started;
      this.connResolve();
    } else if (state === 'failed') {
      this.connReject(new Failure('connection failed'));
    }
  }

  // Writes the end-of-candidates line once the description and every
  // candidate are out.
  maybeEnd() {
    if (this.localSent && this.gathered && !this.held && !this.endSent) {
      this.endSent = true;
      send({ type: 'candidate', mid: this.localMid, index: 0, candidate: '' });
    }
  }

  async handle(msg) {
    switch (msg.type) {
      case 'channels': {
        if (this.channelsSeen) throw new ProtocolError('a second `channels` line');
        this.channelsSeen = true;
        const channels = checkChannelList(msg.channels);
        if (this.onChannels) await this.onChannels(channels);
        break;
      }
      case 'offer':
      case 'answer': {
        const want = this.offerer ? 'answer' : 'offer';
        if (msg.type !== want || this.remoteSet) throw new ProtocolError(`unexpected \`${msg.type}\` line`);
        if (typeof msg.sdp !== 'string') throw new ProtocolError(`\`${msg.type}\` line without a string \`sdp\``);
        this.remoteMid = sdpMid(msg.sdp) || '0';
        await this.setRemote(msg.type, msg.sdp);
        this.remoteSet = true;
        for (const c of this.pending) await this.addCandidate(c);
        this.pending = [];
        this.afterRemote(msg.type);
        break;
      }
      case 'candidate': {
        const c = parseCandidate(msg);
        if (this.remoteSet) await this.addCandidate(c);
        else this.pending.push(c);
        break;
      }
      case 'bye':
        this.bye('bye received');
        break;
      default:
        log(`ignoring a line of unknown type ${JSON.stringify(msg.type)}`);
    }
  }

  // Resolves when connected; rejects on failure, timeout or an early end.
  async waitConnected(what) {
    const left = this.a.connectTimeout * 1000 - (Date.now() - this.started);
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Failure(`not connected within ${this.a.connectTimeout}s (${what})`)), Math.max(0, left));
    });
    const early = this.byePromise.then(() => { throw new Failure(`ended before the connection was up (${what})`); });
    try {
      await Promise.race([this.connected, timeout, early, this.sig.failed]);
    } finally {
      clearTimeout(timer);
    }
  }
}

// The `echo` mode once its session runs: waits for the connection, then for
// `bye` or the end of stdin. Returns the exit code.
async function echoUntilBye(session) {
  try {
    await session.waitConnected('echo');
    log(`connected in ${session.connectMs} ms`);
    await Promise.race([session.byePromise, session.sig.failed]);
    return 0;
  } catch (e) {
    if (e instanceof ProtocolError) {
      log(`protocol error: ${e.message}`);
      return 2;
    }
    log(`failure: ${e.message}`);
    return 1;
  }
}

// ---------------------------------------------------------------- test plan

function withTimeout(promise, ms) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => { timer = setTimeout(() => reject(new Error('timeout')), ms); }),
  ]).finally(() => clearTimeout(timer));
}

class Checks {
  constructor() {
    this.items = [];
  }

  add(name, ok, ms, detail = '') {
    this.items.push({ name, ok, ms: Math.round(ms * 10) / 10, detail });
    process.stderr.write(`${ok ? 'ok  ' : 'FAIL'} ${name} (${Math.round(ms)} ms)${detail ? ': ' + detail : ''}\n`);
  }
}

// A received or sent message: { text: bool, data: Buffer }.
function msgOf(m) {
  if (typeof m === 'string') return { text: true, data: Buffer.from(m, 'utf8') };
  return { text: false, data: Buffer.isBuffer(m) ? m : Buffer.from(m) };
}

// Why an echo is not the message sent ('' when it is): its kind or its content.
function echoMismatch(sent, got) {
  if (got.text !== sent.text) return `kind differs: sent ${describe(sent)}, got ${describe(got)}`;
  if (!got.data.equals(sent.data)) return `content differs: sent ${describe(sent)}, got ${describe(got)}`;
  return '';
}

function describe(m) {
  return m.text
    ? `text(${m.data.length} bytes) ${JSON.stringify(m.data.toString('utf8').slice(0, 24))}`
    : `binary(${m.data.length} bytes) ${m.data.subarray(0, 12).toString('hex')}`;
}

// One channel of the test plan, with a queue of what comes back. `dc` is
// the peer's transport for it: { send(msg), params() -> { ok, detail } }.
class Driven {
  constructor(spec) {
    this.spec = spec;
    this.label = spec.label;
    this.dc = null;
    this.inbox = [];
    this.waiters = [];
    // Echoes still owed for messages sent more than once (--lossy): they may
    // come late, and are dropped when they do.
    this.late = [];
    this.opened = new Promise((r) => { this.openResolve = r; });
  }

  attach(transport) {
    this.dc = transport;
  }

  deliver(msg) {
    const i = this.late.findIndex((l) => l.text === msg.text && l.data.equals(msg.data));
    if (i >= 0) {
      this.late.splice(i, 1);
      return;
    }
    const w = this.waiters.shift();
    if (w) w(msg);
    else this.inbox.push(msg);
  }

  markOpen() {
    this.openResolve();
  }

  recv(ms) {
    if (this.inbox.length) return Promise.resolve(this.inbox.shift());
    let w;
    const p = new Promise((r) => { w = r; this.waiters.push(r); });
    return withTimeout(p, ms).catch((e) => {
      const i = this.waiters.indexOf(w);
      if (i >= 0) this.waiters.splice(i, 1);
      throw e;
    });
  }

  send(m) {
    this.dc.send(m);
  }
}

function seededBytes(n, seed) {
  // Deterministic, incompressible enough: SHA-256 in counter mode.
  const out = Buffer.alloc(n);
  let pos = 0;
  for (let i = 0; pos < n; i++) {
    const block = crypto.createHash('sha256').update(`${seed}:${i}`).digest();
    pos += block.copy(out, pos);
  }
  return out;
}

// N messages at once, alternately text and binary. Reliable channels must
// return all; partially reliable ones may lose some (PR-SCTP gives up on
// them), so there the check waits until none came for QUIET_MS and only asks
// that what came back was sent, once, with its kind (and in order on an
// ordered channel); if none came back, one of PROBES single messages sent
// one at a time after the burst must.
async function sequence(d, a, checks, n) {
  const spec = d.spec;
  const name = `${d.label}/sequence_${n}`;
  const reliable = isReliable(spec);
  const ordered = isOrdered(spec);
  const key = (m) => `${m.text ? 't' : 'b'}:${m.data.toString('hex')}`;
  const sent = [];
  for (let i = 0; i < n; i++) sent.push(msgOf(i % 2 === 0 ? `seq-${i}` : Buffer.from(`seq-${i}`)));
  const index = new Map(sent.map((m, i) => [key(m), i]));
  const got = [];
  const t0 = Date.now();
  try {
    for (const m of sent) d.send(m);
    while (got.length < n) {
      const wait = reliable || got.length === 0 ? a.timeout * 1000 : Math.min(a.timeout * 1000, QUIET_MS);
      got.push(await d.recv(wait));
    }
  } catch (_) {
    // counted below
  }
  // A partially reliable channel may lose a whole burst (a receiver whose
  // UDP buffer overflows under it: Chromium's is small). Then it must still
  // carry single messages sent one at a time afterwards.
  let probed = null;
  if (!reliable && !got.length) {
    for (let i = 0; i < PROBES && probed === null; i++) {
      const probe = msgOf(`probe-${i}`);
      d.send(probe);
      try {
        for (;;) {
          const m = await d.recv(QUIET_MS);
          if (m.text && m.data.equals(probe.data)) {
            probed = i + 1;
            break;
          }
          if (!m.text || !m.data.toString('utf8').startsWith('probe-')) got.push(m); // late echo of the burst
        }
      } catch (_) {
        // lost too: try again
      }
    }
  }
  const dt = Date.now() - t0;
  const positions = got.map((m) => (index.has(key(m)) ? index.get(key(m)) : null));
  const lost = n - got.length;
  const sorted = positions.every((p, i) => i === 0 || p > positions[i - 1]);
  if (positions.includes(null)) checks.add(name, false, dt, `an echo that was not sent: ${describe(got[positions.indexOf(null)])}`);
  else if (new Set(positions).size !== positions.length) checks.add(name, false, dt, 'a message came back twice');
  else if (reliable && lost) checks.add(name, false, dt, `${got.length} of ${n} came back within ${a.timeout}s`);
  else if (!got.length && probed === null) checks.add(name, false, dt, `none of ${n} came back within ${a.timeout}s, nor any of ${PROBES} single messages after them`);
  else if (!got.length) checks.add(name, true, dt, `lost ${n}: the whole burst; single message ${probed} after it came back`);
  else if (ordered && !sorted) {
    const i = positions.findIndex((p, j) => j > 0 && p < positions[j - 1]);
    checks.add(name, false, dt, `out of order on an ordered channel: message ${positions[i]} after ${positions[i - 1]}`);
  } else {
    const order = sorted ? 'in order' : 'reordered';
    checks.add(name, true, dt, !reliable ? `${order}, lost ${lost}` : ordered ? '' : order);
  }
}

// A single message on a partially reliable channel with --lossy: the message
// or its echo may be lost, so it is sent again (up to LOSSY_TRIES times) until
// one echo comes back. An echo with another kind or other bytes fails at once;
// the echoes still owed for the earlier sends are dropped when they come late.
async function lossyRoundtrip(d, a, checks, name, m) {
  const t0 = Date.now();
  const wait = Math.min(a.timeout * 1000, LOSSY_WAIT_MS);
  let sends = 0;
  for (;;) {
    d.send(m);
    sends += 1;
    let got;
    try {
      got = await d.recv(wait);
    } catch (e) {
      if (e.message !== 'timeout') {
        checks.add(`${d.label}/${name}`, false, Date.now() - t0, e.message);
        return;
      }
      if (sends < LOSSY_TRIES) continue;
      checks.add(`${d.label}/${name}`, false, Date.now() - t0, `no echo for any of ${sends} sends, ${wait / 1000}s each (--lossy)`);
      return;
    }
    const dt = Date.now() - t0;
    const wrong = echoMismatch(m, got);
    if (wrong) checks.add(`${d.label}/${name}`, false, dt, wrong);
    else {
      for (let i = 1; i < sends; i++) d.late.push(m);
      checks.add(`${d.label}/${name}`, true, dt, sends > 1 ? `echoed after ${sends} sends (--lossy)` : '');
    }
    return;
  }
}

async function channelPlan(d, a, checks) {
  const label = d.label;
  const ms = a.timeout * 1000;

  const roundtrip = async (name, m) => {
    if (a.lossy && !isReliable(d.spec)) return lossyRoundtrip(d, a, checks, name, m);
    const t0 = Date.now();
    try {
      d.send(m);
      const got = await d.recv(ms);
      const wrong = echoMismatch(m, got);
      checks.add(`${label}/${name}`, !wrong, Date.now() - t0, wrong);
    } catch (e) {
      checks.add(`${label}/${name}`, false, Date.now() - t0, e.message === 'timeout' ? `no echo within ${a.timeout}s` : e.message);
    }
  };

  {
    const { ok, detail } = d.dc.params();
    checks.add(`${label}/params`, ok, 0, detail);
  }

  await roundtrip('text', msgOf(UTF8_TEXT));
  await roundtrip('binary', msgOf(Buffer.from(Array.from({ length: 256 }, (_, i) => i))));
  if (!a.noEmpty) {
    await roundtrip('empty_text', msgOf(''));
    await roundtrip('empty_binary', msgOf(Buffer.alloc(0)));
  }

  if (a.messages > 0) await sequence(d, a, checks, a.messages);

  if (a.bigSize > 0 && label === a.bigChannel) {
    await roundtrip('binary_65536', msgOf(seededBytes(65536, 'max')));
    const name = `${label}/big_${a.bigSize}`;
    const big = seededBytes(a.bigSize, 'big');
    const parts = [];
    for (let i = 0; i < big.length; i += a.chunkSize) parts.push(msgOf(big.subarray(i, i + a.chunkSize)));
    const got = [];
    const t0 = Date.now();
    try {
      for (const p of parts) d.send(p);
      while (got.length < parts.length) got.push(await d.recv(ms));
    } catch (_) {
      // counted below
    }
    const dt = Date.now() - t0;
    if (got.length < parts.length) checks.add(name, false, dt, `${got.length} of ${parts.length} chunks came back within ${a.timeout}s`);
    else if (got.some((g) => g.text)) checks.add(name, false, dt, 'a chunk came back as text');
    else {
      const joined = Buffer.concat(got.map((g) => g.data));
      const h = (b) => crypto.createHash('sha256').update(b).digest('hex');
      const ok = h(joined) === h(big);
      checks.add(name, ok, dt, ok ? `${parts.length} chunks of ${a.chunkSize}, ${(big.length / Math.max(dt, 1) / 1000).toFixed(1)} MB/s` : `${joined.length} bytes came back, SHA-256 differs`);
    }
  }
}

// The `drive` test once the channels exist and the offer (if ours) is on
// its way: waits for the connection, the channels, runs the plan on all of
// them at once, then writes `bye` and the `result` line. Returns the exit
// code. `session` has waitConnected(what), connectMs, offerer and sig.
async function drivePlan({ a, session, driven, impl, started }) {
  const checks = new Checks();
  let code = 0;
  try {
    await session.waitConnected('drive');
    checks.add('connect', true, session.connectMs);
    const t0 = Date.now();
    const ds = [...driven.values()];
    const opened = await Promise.all(ds.map((d) => withTimeout(d.opened, a.timeout * 1000).then(() => true, () => false)));
    ds.forEach((d, i) => checks.add(`${d.label}/open`, opened[i], Date.now() - t0, opened[i] ? '' : `not open within ${a.timeout}s`));
    const plan = Promise.all(ds.filter((_, i) => opened[i]).map((d) => channelPlan(d, a, checks)));
    await Promise.race([plan, session.sig.failed]);
  } catch (e) {
    if (e instanceof ProtocolError) {
      log(`protocol error: ${e.message}`);
      checks.add('signaling', false, 0, `protocol error: ${e.message}`);
      code = 2;
    } else {
      checks.add('connect', false, Date.now() - started, e.message);
    }
  }
  send({ type: 'bye' });
  const failed = checks.items.filter((c) => !c.ok).length;
  const passed = checks.items.length - failed;
  const ok = failed === 0 && passed > 0;
  send({
    type: 'result',
    ok,
    impl,
    role: session.offerer ? 'offer' : 'answer',
    passed,
    failed,
    elapsed_ms: Date.now() - started,
    checks: checks.items,
  });
  log(`drive: ${passed} passed, ${failed} failed`);
  return code || (ok ? 0 : 1);
}

module.exports = {
  QUIET_MS,
  UTF8_TEXT,
  DEFAULT_CHANNELS,
  setLogName,
  log,
  ProtocolError,
  Failure,
  usage,
  parseChannelSpec,
  isUint,
  checkChannelList,
  isReliable,
  isOrdered,
  parseArgs,
  parseIceUrl,
  send,
  Signaling,
  parseCandidate,
  sdpMid,
  channelInits,
  SignalingSession,
  echoUntilBye,
  withTimeout,
  Checks,
  msgOf,
  describe,
  Driven,
  seededBytes,
  sequence,
  channelPlan,
  drivePlan,
};
