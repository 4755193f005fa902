#!/usr/bin/env node
// External WebRTC test peer whose stack is a browser's: RTCPeerConnection in
// headless Chromium, driven with playwright-core.
//
// It is not ours: it stands for "a browser" in the interop tests of netplay.
// It speaks the signaling line protocol of `netplay rtc-echo`
// (docs/PROTOCOL.md) and has the command line and behaviour of rtc_peer.js:
//
//   node rtc_browser_peer.js echo (--offer | --answer) [ICE OPTIONS]
//   node rtc_browser_peer.js drive (--offer | --answer) [ICE OPTIONS] [--channel SPEC]...
//                    [--messages N] [--big-size BYTES] [--chunk-size BYTES]
//                    [--big-channel LABEL] [--timeout SECONDS] [--no-empty] [--lossy]
//
//   ICE OPTIONS: [--ice-server URL]... [--username U --credential C]
//                [--relay-only] [--host-ip ADDR] [--connect-timeout SECONDS]
//
// Chromium is /usr/bin/chromium unless the environment variable
// NETPLAY_CHROMIUM names another executable; playwright-core never downloads
// one here. It runs headless with a fresh temporary profile that is removed
// at the end.
//
// Chromium gathers no loopback candidates and cannot be told which address
// to gather on, so this peer runs inside a network namespace (see
// tests/interop/netns.sh) whose only other address is 10.77.0.1. --host-ip
// (default 10.77.0.1 here) is a filter: only candidates on that address
// (and relayed ones) are written; the others are dropped with a note on
// stderr. Host candidates are raw addresses, not mDNS names (Chromium runs
// with WebRtcHideLocalIpsWithMdns disabled).
//
// The page is about:blank. The peer connection, its channels and (in `echo`)
// the echo itself live in the page; the signaling lines and (in `drive`) the
// test plan of rtc_plan.js live in Node. Messages cross between the two as
// base64 (binary) or strings (text), in batches, in order.
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const {
  setLogName, log, Failure, usage, parseArgs, parseIceUrl, send, sdpMid, channelInits,
  SignalingSession, echoUntilBye, isOrdered, msgOf, Driven, drivePlan, withTimeout,
} = require('./rtc_plan');

setLogName('rtc_browser_peer.js');

const CHROMIUM = process.env.NETPLAY_CHROMIUM || '/usr/bin/chromium';
const DEFAULT_HOST_IP = '10.77.0.1';
const CHROMIUM_ARGS = require('./chromium_flags');
const LAUNCH_TIMEOUT_MS = 30000;
const CLOSE_TIMEOUT_MS = 5000;

function packageVersion(name) {
  try {
    return JSON.parse(fs.readFileSync(path.join(path.dirname(require.resolve(`${name}/package.json`)), 'package.json'), 'utf8')).version;
  } catch (_) {
    return '?';
  }
}

// ------------------------------------------------------------------ the page

// Runs in the page (serialized with toString): defines window.np, the peer
// connection and its channels. Events go to Node through window.npEvent
// (exposed by Node), batched and in order.
function pageSide() {
  const toB64 = (u8) => {
    if (u8.toBase64) return u8.toBase64();
    let s = '';
    for (let i = 0; i < u8.length; i += 0x8000) s += String.fromCharCode.apply(null, u8.subarray(i, i + 0x8000));
    return btoa(s);
  };
  const fromB64 = (b64) => {
    if (Uint8Array.fromBase64) return Uint8Array.fromBase64(b64);
    const s = atob(b64);
    const u8 = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) u8[i] = s.charCodeAt(i);
    return u8;
  };

  let queue = [];
  const emit = (ev) => {
    if (queue.length === 0) {
      setTimeout(() => {
        const batch = queue;
        queue = [];
        window.npEvent(batch);
      }, 0);
    }
    queue.push(ev);
  };

  const np = { pc: null, channels: [], stats: [], echo: false, closed: false };
  window.np = np;

  const paramsOf = (dc) => ({
    label: dc.label,
    protocol: dc.protocol,
    ordered: dc.ordered,
    maxRetransmits: dc.maxRetransmits,
    maxPacketLifeTime: dc.maxPacketLifeTime,
    negotiated: dc.negotiated,
    id: dc.id,
  });

  const register = (dc, incoming) => {
    const h = np.channels.length;
    np.channels.push(dc);
    const stat = { label: dc.label, received: 0, echoed: 0, errors: 0 };
    np.stats.push(stat);
    dc.binaryType = 'arraybuffer';
    if (incoming) emit({ t: 'dc', h, label: dc.label, id: dc.id });
    let open = false;
    const opened = () => {
      if (open) return;
      open = true;
      emit({ t: 'open', h, params: paramsOf(dc) });
    };
    dc.onopen = opened;
    dc.onclose = () => emit({ t: 'close', h, label: dc.label });
    dc.onerror = (e) => emit({ t: 'log', msg: `channel ${JSON.stringify(dc.label)} error: ${e.error ? e.error.message : e}` });
    dc.onmessage = (e) => {
      const text = typeof e.data === 'string';
      stat.received++;
      if (np.echo) {
        if (dc.readyState !== 'open') return;
        try {
          dc.send(e.data);
          stat.echoed++;
        } catch (err) {
          stat.errors++;
          emit({ t: 'log', msg: `echo on ${JSON.stringify(dc.label)}: ${err.message}` });
        }
        return;
      }
      emit({ t: 'msg', h, text, data: text ? e.data : toB64(new Uint8Array(e.data)) });
    };
    if (dc.readyState === 'open') opened();
    return h;
  };

  np.init = (config, echo) => {
    np.echo = echo;
    const pc = new RTCPeerConnection(config);
    np.pc = pc;
    pc.onicecandidate = (e) => {
      if (e.candidate && e.candidate.candidate) {
        emit({ t: 'cand', candidate: e.candidate.candidate, mid: e.candidate.sdpMid, index: e.candidate.sdpMLineIndex });
      } else if (!e.candidate) {
        emit({ t: 'cand-end' });
      }
    };
    pc.onconnectionstatechange = () => emit({ t: 'state', state: pc.connectionState });
    pc.oniceconnectionstatechange = () => emit({ t: 'log', msg: `ice connection state ${pc.iceConnectionState}` });
    pc.ondatachannel = (e) => register(e.channel, true);
  };

  // Creates the channels of [[label, RTCDataChannelInit]]; returns
  // [label, handle] pairs.
  np.createChannels = (inits) => inits.map(([label, init]) => [label, register(np.pc.createDataChannel(label, init), false)]);

  np.offer = async () => {
    await np.pc.setLocalDescription(await np.pc.createOffer());
    return { type: np.pc.localDescription.type, sdp: np.pc.localDescription.sdp };
  };

  // Applies the remote description; returns the answer to an offer.
  np.setRemote = async (type, sdp) => {
    await np.pc.setRemoteDescription({ type, sdp });
    if (type !== 'offer') return null;
    await np.pc.setLocalDescription(await np.pc.createAnswer());
    return { type: np.pc.localDescription.type, sdp: np.pc.localDescription.sdp };
  };

  np.addCandidate = async (candidate, mid, index) => {
    const init = { candidate };
    if (mid != null) init.sdpMid = mid;
    else init.sdpMLineIndex = index != null ? index : 0;
    try {
      await np.pc.addIceCandidate(init);
      return null;
    } catch (err) {
      return `${err.name}: ${err.message}`;
    }
  };

  // [[handle, text, data]]: data a string for text, base64 for binary.
  // Returns the errors, if any.
  np.send = (batch) => {
    const errors = [];
    for (const [h, text, data] of batch) {
      const dc = np.channels[h];
      try {
        if (text) dc.send(data);
        else dc.send(fromB64(data));
      } catch (err) {
        errors.push(`send on ${JSON.stringify(dc.label)}: ${err.name}: ${err.message}`);
      }
    }
    return errors;
  };

  np.maxMessageSize = () => (np.pc.sctp ? np.pc.sctp.maxMessageSize : null);

  np.close = () => {
    if (np.closed) return null;
    np.closed = true;
    for (const dc of np.channels) {
      try {
        dc.close();
      } catch (_) {
        // closing anyway
      }
    }
    if (np.pc) np.pc.close();
    return np.stats;
  };

}

// ------------------------------------------------------------------- browser

class Browser {
  async launch(debug) {
    let chromium;
    try {
      ({ chromium } = require('playwright-core'));
    } catch (e) {
      throw new Failure(`playwright-core is not installed (${e.message}); run scripts/setup-interop.sh`);
    }
    if (!fs.existsSync(CHROMIUM)) throw new Failure(`no Chromium at ${CHROMIUM} (set NETPLAY_CHROMIUM)`);
    this.profile = fs.mkdtempSync(path.join(os.tmpdir(), 'netplay-chromium-'));
    const t0 = Date.now();
    this.context = await chromium.launchPersistentContext(this.profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      timeout: LAUNCH_TIMEOUT_MS,
      handleSIGINT: false,
      handleSIGTERM: false,
      handleSIGHUP: false,
    });
    this.version = this.context.browser() ? this.context.browser().version() : null;
    this.page = this.context.pages()[0] || (await this.context.newPage());
    this.page.on('console', (m) => log(`[page ${m.type()}] ${m.text()}`));
    this.page.on('pageerror', (e) => log(`[page error] ${e.message}`));
    this.page.on('crash', () => log('[page crashed]'));
    if (debug) log(`Chromium launched in ${Date.now() - t0} ms, profile ${this.profile}, args ${CHROMIUM_ARGS.join(' ')}`);
    return this.page;
  }

  // Closes the browser (bounded in time) and removes the profile.
  async close() {
    if (this.context) {
      const ctx = this.context;
      this.context = null;
      try {
        await withTimeout(ctx.close(), CLOSE_TIMEOUT_MS);
      } catch (e) {
        log(`closing Chromium: ${e.message}`);
      }
    }
    if (this.profile) {
      try {
        fs.rmSync(this.profile, { recursive: true, force: true });
      } catch (e) {
        log(`removing the profile: ${e.message}`);
      }
      this.profile = null;
    }
  }
}

// The address and type of a candidate string; null address if unparsable.
function candidateInfo(c) {
  const parts = c.trim().replace(/^a=/, '').split(/\s+/);
  const typ = parts.indexOf('typ');
  return { address: parts.length >= 8 ? parts[4] : null, type: typ >= 0 ? parts[typ + 1] : null };
}

// ----------------------------------------------------------------- signaling

class Session extends SignalingSession {
  // onChannels(channels): a `channels` line came (echo); onEvent(ev): page
  // channel events (open, msg, dc, close).
  constructor(a, browser, { onChannels, onEvent }) {
    super(a, onChannels, a.started);
    this.browser = browser;
    this.page = browser.page;
    this.onEvent = onEvent;
    this.held = []; // candidates that came before our description was written
    this.evalChain = Promise.resolve();
  }

  async start() {
    const a = this.a;
    await this.page.exposeFunction('npEvent', (batch) => {
      for (const ev of batch) this.event(ev);
    });
    await this.page.evaluate(`(${pageSide.toString()})()`);
    const iceServers = a.iceServer.map((url) => {
      if (!parseIceUrl(url)) usage(`bad --ice-server ${JSON.stringify(url)}`);
      const s = { urls: url };
      if (url.startsWith('turn') && a.username !== null) {
        s.username = a.username;
        s.credential = a.credential;
      }
      return s;
    });
    await this.page.evaluate(([config, echo]) => window.np.init(config, echo), [
      { iceServers, iceTransportPolicy: a.relayOnly ? 'relay' : 'all', bundlePolicy: 'max-bundle' },
      a.mode === 'echo',
    ]);
    this.startSignaling();
  }

  // Creates the channels of `channels` this side creates (see channelInits);
  // returns [label, handle] pairs.
  createChannels(channels) {
    const inits = channelInits(channels, this.offerer).map(([ch, init]) => [ch.label, init]);
    return this.call((list) => window.np.createChannels(list), inits);
  }

  // page.evaluate, in order with every other call.
  call(fn, arg) {
    const p = this.evalChain.then(() => this.page.evaluate(fn, arg));
    this.evalChain = p.catch(() => {});
    return p;
  }

  event(ev) {
    switch (ev.t) {
      case 'cand': {
        const { address, type } = candidateInfo(ev.candidate);
        if (type !== 'relay' && address !== this.a.hostIp) {
          log(`not writing a candidate outside --host-ip ${this.a.hostIp}: ${ev.candidate}`);
          return;
        }
        const line = { type: 'candidate', mid: ev.mid != null ? ev.mid : this.localMid, index: ev.index != null ? ev.index : 0, candidate: ev.candidate };
        if (this.localSent) send(line);
        else this.held.push(line);
        return;
      }
      case 'cand-end':
        this.gathered = true;
        this.maybeEnd();
        return;
      case 'state':
        this.connectionState(ev.state);
        return;
      case 'log':
        log(ev.msg);
        return;
      default:
        this.onEvent(ev);
    }
  }

  sendLocal(desc) {
    const mid = sdpMid(desc.sdp);
    if (mid !== null) this.localMid = mid;
    send({ type: desc.type, sdp: desc.sdp });
    this.localSent = true;
    for (const line of this.held) send(line);
    this.held = null;
    this.maybeEnd();
  }

  async offer() {
    this.sendLocal(await this.call(() => window.np.offer()));
  }

  async addCandidate(c) {
    if (!c.candidate) {
      log('end of remote candidates');
      // An end-of-candidates with an empty candidate string.
      const err = await this.call(([mid, index]) => window.np.addCandidate('', mid, index), [c.mid != null ? c.mid : this.remoteMid, c.index]);
      if (err) log(`end-of-candidates: ${err}`);
      return;
    }
    const err = await this.call(([cand, mid, index]) => window.np.addCandidate(cand, mid, index), [c.candidate, c.mid != null ? c.mid : this.remoteMid, c.index]);
    if (err) log(`candidate ${c.candidate}: ${err}`);
  }

  async setRemote(type, sdp) {
    // Chromium wants CRLF; the protocol also allows bare LF.
    const crlf = sdp.replace(/\r?\n/g, '\r\n');
    try {
      this.localAnswer = await this.call(([t, s]) => window.np.setRemote(t, s), [type, crlf]);
    } catch (e) {
      throw new Failure(`setting the remote ${type}: ${e.message.split('\n')[0]}`);
    }
  }

  afterRemote() {
    if (this.localAnswer) this.sendLocal(this.localAnswer);
  }

  async close() {
    try {
      const stats = await withTimeout(this.page.evaluate(() => window.np && window.np.close()), CLOSE_TIMEOUT_MS);
      for (const st of stats || []) {
        log(`channel ${JSON.stringify(st.label)}: ${st.received} received${this.a.mode === 'echo' ? `, ${st.echoed} echoed` : ''}${st.errors ? `, ${st.errors} send errors` : ''}`);
      }
    } catch (e) {
      log(`close: ${e.message.split('\n')[0]}`);
    }
  }
}

// ------------------------------------------------------------------- runners

let browser = null;
let exiting = false;
// What SIGTERM and SIGINT do: end the echo session once it runs, else exit
// (closing the browser on the way).
let onSignal = (name) => {
  log(`signal ${name}`);
  exit(1);
};

async function exit(code) {
  if (exiting) return;
  exiting = true;
  if (browser) await browser.close();
  process.exit(code);
}

// A failure of the setup (browser launch, page): the exit code of the mode.
function setupFailed(e) {
  log(`setup failed: ${e && e.stack ? e.stack : e}`);
  return exit(1);
}

async function runEcho(a) {
  const names = new Map();
  let session;
  const onEvent = (ev) => {
    if (ev.t === 'dc') names.set(ev.h, ev.label);
    else if (ev.t === 'open') {
      const p = ev.params;
      names.set(ev.h, p.label);
      log(`channel ${JSON.stringify(p.label)} (id ${p.id}) open`);
    } else if (ev.t === 'close') log(`channel ${JSON.stringify(ev.label)} closed`);
  };
  try {
    session = new Session(a, browser, {
      onEvent,
      onChannels: async (channels) => {
        await session.createChannels(channels);
        if (session.offerer) await session.offer();
      },
    });
    await session.start();
  } catch (e) {
    return setupFailed(e);
  }
  onSignal = (name) => session.bye(`signal ${name}`);

  const code = await echoUntilBye(session);
  await session.close();
  return exit(code);
}

// Sends of the test plan, batched per turn of the event loop, in order.
class Sender {
  constructor(session) {
    this.session = session;
    this.batch = [];
  }

  push(h, m) {
    if (this.batch.length === 0) setImmediate(() => this.flush());
    this.batch.push([h, m.text, m.text ? m.data.toString('utf8') : m.data.toString('base64')]);
  }

  flush() {
    const batch = this.batch;
    this.batch = [];
    this.session.call((b) => window.np.send(b), batch).then(
      (errors) => errors.forEach((e) => log(e)),
      (e) => log(`send: ${e.message.split('\n')[0]}`),
    );
  }
}

function paramsCheck(spec, p) {
  const want = {
    ordered: isOrdered(spec),
    maxRetransmits: spec.maxRetransmits != null ? spec.maxRetransmits : null,
    maxPacketLifeTime: spec.maxPacketLifeTime != null ? spec.maxPacketLifeTime : null,
    protocol: spec.protocol || '',
  };
  const have = {
    ordered: p.ordered,
    maxRetransmits: p.maxRetransmits,
    maxPacketLifeTime: p.maxPacketLifeTime,
    protocol: p.protocol,
  };
  if (spec.negotiated) {
    want.negotiated = true;
    want.id = spec.id;
    have.negotiated = p.negotiated;
    have.id = p.id;
  }
  const ok = JSON.stringify(want) === JSON.stringify(have);
  return { ok, detail: ok ? `id ${p.id}` : `want ${JSON.stringify(want)}, have ${JSON.stringify(have)}` };
}

async function runDrive(a) {
  const driven = new Map(a.channels.map((ch) => [ch.label, new Driven(ch)]));
  const byHandle = new Map();
  let session;
  let sender;
  const attach = (d, h) => {
    byHandle.set(h, d);
    let params = null;
    d.attach({
      send: (m) => sender.push(h, m),
      params: () => (params ? paramsCheck(d.spec, params) : { ok: false, detail: 'not open' }),
    });
    d.setParams = (p) => { params = p; };
  };
  const onEvent = (ev) => {
    if (ev.t === 'dc') {
      const d = driven.get(ev.label);
      if (!d || d.dc || d.spec.negotiated) {
        log(`unexpected channel ${JSON.stringify(ev.label)} (id ${ev.id}) from the remote`);
        return;
      }
      attach(d, ev.h);
    } else if (ev.t === 'open') {
      const d = byHandle.get(ev.h);
      if (!d) return;
      d.setParams(ev.params);
      d.markOpen();
    } else if (ev.t === 'msg') {
      const d = byHandle.get(ev.h);
      if (d) d.deliver(ev.text ? msgOf(ev.data) : { text: false, data: Buffer.from(ev.data, 'base64') });
    } else if (ev.t === 'close') log(`channel ${JSON.stringify(ev.label)} closed`);
  };
  try {
    session = new Session(a, browser, { onEvent, onChannels: null });
    session.channelsSeen = true;
    sender = new Sender(session);
    await session.start();
    // Negotiated channels on both sides; in-band ones are opened by the offerer.
    const made = await session.createChannels(a.channels);
    for (const [label, h] of made) attach(driven.get(label), h);
  } catch (e) {
    return setupFailed(e);
  }
  send({ type: 'channels', channels: a.channels });
  if (session.offerer) {
    session.offer().catch((e) => session.connReject(new Failure(`offer: ${e.message.split('\n')[0]}`)));
  }

  const code = await drivePlan({ a, session, driven, impl: implName(), started: a.started });
  await session.close();
  return exit(code);
}

function implName() {
  return `Chromium ${browser && browser.version ? browser.version : '?'} (playwright-core ${packageVersion('playwright-core')})`;
}

async function main() {
  const argv = process.argv.slice(2);
  const a = parseArgs(argv);
  a.started = Date.now();
  for (const s of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.on(s, () => onSignal(s));
  // Whatever goes wrong, the browser is closed and the profile removed.
  process.stdout.on('error', (e) => {
    log(`stdout: ${e.message}`);
    exit(1);
  });
  process.on('uncaughtException', (e) => {
    log(`uncaught: ${e && e.stack ? e.stack : e}`);
    exit(1);
  });
  if (!argv.includes('--host-ip')) a.hostIp = DEFAULT_HOST_IP;
  browser = new Browser();
  try {
    await browser.launch(a.debug);
    log(`Chromium ${browser.version || '?'} up in ${Date.now() - a.started} ms`);
  } catch (e) {
    return setupFailed(e);
  }
  return a.mode === 'echo' ? runEcho(a) : runDrive(a);
}

main().catch((e) => {
  log(`crashed: ${e && e.stack ? e.stack : e}`);
  exit(1);
});
