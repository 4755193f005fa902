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
//                    [--big-channel LABEL] [--timeout SECONDS] [--no-empty] [--lossy]
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
  setLogName, log, usage, parseArgs, parseIceUrl, send, sdpMid, channelInits, SignalingSession,
  echoUntilBye, msgOf, Driven, drivePlan,
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

class Session extends SignalingSession {
  constructor(a, onChannels) {
    super(a, onChannels);
    this.pc = makePc(a, a.mode);
    this.pc.onStateChange((state) => this.connectionState(state));
    this.pc.onLocalDescription((sdp, type) => {
      const mid = sdpMid(sdp);
      if (mid !== null) this.localMid = mid;
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
    this.startSignaling();
  }

  offer() {
    this.pc.setLocalDescription('offer');
  }

  setRemote(type, sdp) {
    this.pc.setRemoteDescription(sdp, type);
  }

  afterRemote(type) {
    if (type === 'offer') this.pc.setLocalDescription('answer');
    if (this.held) {
      for (const line of this.held) send(line);
      this.held = null;
      this.maybeEnd();
    }
  }

  addCandidate(c) {
    if (!c.candidate) {
      log('end of remote candidates');
      return; // libdatachannel needs no end marker
    }
    this.pc.addRemoteCandidate(c.candidate, c.mid != null ? c.mid : this.remoteMid);
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
  return channelInits(channels, inBand).map(([ch, { ordered, ...init }]) => [
    ch,
    pc.createDataChannel(ch.label, { unordered: !ordered, ...init }),
  ]);
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

  const code = await echoUntilBye(session);
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
