#!/usr/bin/env node
// External WebRTC test peer built on node-datachannel (libdatachannel).
//
// It is not ours: it stands for "some other WebRTC implementation" in the
// interop tests of netplay. It speaks the signaling line protocol of
// `netplay rtc-echo` (docs/PROTOCOL.md): one JSON object per line, its own
// lines on stdout, the other side's on stdin, logs on stderr.
// `tests/interop/rtc_py_peer.py` (aiortc) has the same contract; see its
// docstring for the options. The command line, the line handling and the
// test plan of `drive` are in rtc_plan.js, shared with rtc_browser_peer.js.
//
//   node rtc_peer.js echo (--offer | --answer) [ICE OPTIONS]
//   node rtc_peer.js drive (--offer | --answer) [ICE OPTIONS] [--channel SPEC]...
//                    [--messages N] [--big-size BYTES] [--chunk-size BYTES]
//                    [--big-channel LABEL] [--timeout SECONDS] [--no-empty]
//
//   ICE OPTIONS: [--ice-server URL]... [--username U --credential C]
//                [--relay-only] [--host-ip ADDR] [--connect-timeout SECONDS]
//
// libdatachannel is told to bind to --host-ip (default 127.0.0.1), which also
// makes it gather host candidates on that address only; no UDP mux, no ICE-TCP.
// libdatachannel trickles: candidates follow the description as lines, then
// the end-of-candidates line once gathering is complete.
'use strict';

const ndc = require('node-datachannel');
const {
  setLogName, log, ProtocolError, Failure, usage, parseArgs, parseIceUrl, send, Signaling,
  parseCandidate, checkChannelList, isOrdered, msgOf, Driven, drivePlan,
} = require('./rtc_plan');

setLogName('rtc_peer.js');
const IMPL = `node-datachannel ${readVersion()} (libdatachannel ${ndc.getLibraryVersion ? ndc.getLibraryVersion() : '?'})`;

function readVersion() {
  try {
    const path = require('path');
    const dir = path.dirname(require.resolve('node-datachannel'));
    for (let d = dir; d !== path.dirname(d); d = path.dirname(d)) {
      const f = path.join(d, 'package.json');
      try {
        const p = JSON.parse(require('fs').readFileSync(f, 'utf8'));
        if (p.name === 'node-datachannel') return p.version;
      } catch (_) {
        // keep looking upwards
      }
    }
  } catch (_) {
    // unknown
  }
  return '?';
}

// stun:host[:port], turn:host[:port][?transport=udp|tcp], turns:host[:port]
function iceServer(url, a) {
  const u = parseIceUrl(url);
  if (!u) usage(`bad --ice-server ${JSON.stringify(url)}`);
  const server = { hostname: u.hostname, port: u.port };
  if (u.scheme.startsWith('turn')) {
    server.relayType = u.scheme === 'turns' ? 'TurnTls' : u.transport === 'tcp' ? 'TurnTcp' : 'TurnUdp';
    if (a.username !== null) {
      server.username = a.username;
      server.password = a.credential;
    }
  }
  return server;
}

function makePc(a, name) {
  return new ndc.PeerConnection(name, {
    iceServers: a.iceServer.map((u) => iceServer(u, a)),
    bindAddress: a.hostIp,
    enableIceUdpMux: false,
    enableIceTcp: false,
    iceTransportPolicy: a.relayOnly ? 'relay' : 'all',
    disableAutoNegotiation: true,
  });
}

// ----------------------------------------------------------------- signaling

class Session {
  constructor(a, onChannels) {
    this.a = a;
    this.offerer = a.offer;
    this.pc = makePc(a, a.mode);
    this.remoteSet = false;
    this.pending = [];
    this.onChannels = onChannels;
    this.channelsSeen = false;
    this.started = Date.now();
    this.connectMs = null;
    this.localMid = '0';
    this.localSent = false;
    this.gathered = false;
    this.ended = false;
    let byeResolve;
    this.byePromise = new Promise((r) => { byeResolve = r; });
    this.bye = (why) => {
      if (!this.ended) log(why);
      this.ended = true;
      byeResolve();
    };
    let connResolve;
    let connReject;
    this.connected = new Promise((res, rej) => { connResolve = res; connReject = rej; });
    this.connected.catch(() => {});

    this.pc.onStateChange((state) => {
      log(`connection state ${state}`);
      if (state === 'connected' && this.connectMs === null) {
        this.connectMs = Date.now() - this.started;
        connResolve();
      } else if (state === 'failed') {
        connReject(new Failure('connection failed'));
      }
    });
    this.pc.onLocalDescription((sdp, type) => {
      const mid = /^a=mid:(.*)$/m.exec(sdp);
      if (mid) this.localMid = mid[1].trim();
      send({ type: type.toLowerCase(), sdp });
      this.localSent = true;
      this.maybeEnd();
    });
    // An offerer holds its candidates back until it has applied the answer:
    // libdatachannel fails the DTLS handshake when the answerer's first
    // flight comes before the answer (no fingerprint to check it against,
    // "DTLS alert: unknown CA"), and without our candidates the answerer
    // cannot reach us before that.
    this.held = this.offerer ? [] : null;
    this.pc.onLocalCandidate((candidate, mid) => {
      let c = candidate.trim();
      if (c.startsWith('a=')) c = c.slice(2);
      const line = { type: 'candidate', mid, index: 0, candidate: c };
      if (this.held) this.held.push(line);
      else send(line);
    });
    this.pc.onGatheringStateChange((state) => {
      if (state === 'complete') {
        this.gathered = true;
        this.maybeEnd();
      }
    });
    this.sig = new Signaling((m) => this.handle(m), () => this.bye('stdin EOF'));
  }

  maybeEnd() {
    if (this.localSent && this.gathered && !this.held && !this.endSent) {
      this.endSent = true;
      send({ type: 'candidate', mid: this.localMid, index: 0, candidate: '' });
    }
  }

  offer() {
    this.pc.setLocalDescription('offer');
  }

  addCandidate(c) {
    if (!c.candidate) {
      log('end of remote candidates');
      return; // libdatachannel needs no end marker
    }
    this.pc.addRemoteCandidate(c.candidate, c.mid != null ? c.mid : this.remoteMid);
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
        const mid = /^a=mid:(.*)$/m.exec(msg.sdp);
        this.remoteMid = mid ? mid[1].trim() : '0';
        this.pc.setRemoteDescription(msg.sdp, msg.type);
        this.remoteSet = true;
        for (const c of this.pending) this.addCandidate(c);
        this.pending = [];
        if (msg.type === 'offer') this.pc.setLocalDescription('answer');
        if (this.held) {
          for (const line of this.held) send(line);
          this.held = null;
          this.maybeEnd();
        }
        break;
      }
      case 'candidate': {
        const c = parseCandidate(msg);
        if (this.remoteSet) this.addCandidate(c);
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

  close() {
    try {
      this.pc.close();
    } catch (e) {
      log(`close: ${e.message}`);
    }
  }
}

function createChannels(pc, channels, inBand) {
  const made = [];
  for (const ch of channels) {
    if (!ch.negotiated && !inBand) continue;
    const init = { unordered: !isOrdered(ch) };
    if (ch.protocol) init.protocol = ch.protocol;
    if (ch.maxRetransmits != null) init.maxRetransmits = ch.maxRetransmits;
    if (ch.maxPacketLifeTime != null) init.maxPacketLifeTime = ch.maxPacketLifeTime;
    if (ch.negotiated) {
      init.negotiated = true;
      init.id = ch.id;
    }
    made.push([ch, pc.createDataChannel(ch.label, init)]);
  }
  return made;
}

function exit(code) {
  try {
    ndc.cleanup();
  } catch (_) {
    // exiting anyway
  }
  process.exit(code);
}

// ---------------------------------------------------------------------- echo

async function runEcho(a) {
  const keep = []; // every channel: an unreferenced one is collected and closes
  const echoOn = (dc) => {
    keep.push(dc);
    const label = dc.getLabel();
    dc.onMessage((m) => {
      if (!dc.isOpen()) return;
      if (typeof m === 'string') dc.sendMessage(m);
      else dc.sendMessageBinary(Buffer.isBuffer(m) ? m : Buffer.from(m));
    });
    let logged = false;
    const opened = () => {
      if (!logged) log(`channel ${JSON.stringify(label)} (id ${dc.getId()}) open`);
      logged = true;
    };
    dc.onOpen(opened);
    if (dc.isOpen()) opened();
  };
  const session = new Session(a, async (channels) => {
    for (const [, dc] of createChannels(session.pc, channels, session.offerer)) echoOn(dc);
    if (session.offerer) session.offer();
  });
  session.pc.onDataChannel(echoOn);
  for (const s of ['SIGTERM', 'SIGINT']) process.on(s, () => session.bye(`signal ${s}`));

  let code = 0;
  try {
    await session.waitConnected('echo');
    log(`connected in ${session.connectMs} ms`);
    await Promise.race([session.byePromise, session.sig.failed]);
  } catch (e) {
    if (e instanceof ProtocolError) {
      log(`protocol error: ${e.message}`);
      code = 2;
    } else {
      log(`failure: ${e.message}`);
      code = 1;
    }
  }
  session.close();
  exit(code);
}

// --------------------------------------------------------------------- drive

// Hands a libdatachannel channel to the test plan.
function attachDc(d, dc) {
  const spec = d.spec;
  d.attach({
    send(m) {
      if (m.text) dc.sendMessage(m.data.toString('utf8'));
      else dc.sendMessageBinary(m.data);
    },
    // libdatachannel shows label, id and protocol of a channel, not its reliability.
    params() {
      const want = spec.protocol || '';
      const have = dc.getProtocol();
      const idOk = !spec.negotiated || dc.getId() === spec.id;
      const ok = want === have && idOk;
      return {
        ok,
        detail: ok ? `id ${dc.getId()}` : `want protocol ${JSON.stringify(want)}${spec.negotiated ? ` id ${spec.id}` : ''}, have ${JSON.stringify(have)} id ${dc.getId()}`,
      };
    },
  });
  dc.onMessage((m) => d.deliver(msgOf(m)));
  dc.onOpen(() => d.markOpen());
  if (dc.isOpen()) d.markOpen();
}

async function runDrive(a) {
  const started = Date.now();
  const driven = new Map(a.channels.map((ch) => [ch.label, new Driven(ch)]));
  const keep = [];
  const session = new Session(a, null);
  session.channelsSeen = true;
  session.pc.onDataChannel((dc) => {
    keep.push(dc);
    const d = driven.get(dc.getLabel());
    if (!d || d.dc || d.spec.negotiated) {
      log(`unexpected channel ${JSON.stringify(dc.getLabel())} (id ${dc.getId()}) from the remote`);
      return;
    }
    attachDc(d, dc);
  });
  // Negotiated channels on both sides; in-band ones are opened by the offerer.
  for (const [ch, dc] of createChannels(session.pc, a.channels, session.offerer)) {
    keep.push(dc);
    attachDc(driven.get(ch.label), dc);
  }
  send({ type: 'channels', channels: a.channels });
  if (session.offerer) session.offer();

  const code = await drivePlan({ a, session, driven, impl: IMPL, started });
  session.close();
  exit(code);
}

const args = parseArgs(process.argv.slice(2));
// libdatachannel's own log, to stderr (its default would be stdout).
ndc.initLogger(args.debug ? 'Debug' : 'Warning', (level, message) => log(`[${level}] ${message}`));
(args.mode === 'echo' ? runEcho : runDrive)(args).catch((e) => {
  log(`crashed: ${e && e.stack ? e.stack : e}`);
  exit(1);
});
