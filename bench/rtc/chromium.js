#!/usr/bin/env node
// Chromium's in-page offer-to-open time: two RTCPeerConnections in one page of headless
// Chromium (driven by playwright-core), signaling handed directly from one to the other in
// the page's JavaScript, `iceServers: []`, a reliable ordered channel announced in band.
// Measured with performance.now() from just before createOffer() until both sides have seen
// the channel open (the offerer's `open` event; the answerer's `datachannel` event, or its
// `open` event if the channel was not open yet).
//
//   node chromium.js [--open-runs N] [--chromium PATH]
//
// Chromium gathers no loopback candidates, so this needs a network interface with an address
// other than loopback: run it inside a network namespace with a veth pair (bench/rtc.sh does).
// The connection then runs over that interface's address, inside the machine.
//
// Prints: RTC impl=chromium open_runs=N open_p50_ms=... open_p90_ms=... open_min_ms=...
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');

// The same flags as the browser test peer.
const ARGS = require(path.join(__dirname, '..', '..', 'tests', 'interop', 'node', 'chromium_flags.js'));

function parseArgs(argv) {
  const a = { openRuns: 20, chromium: process.env.CHROMIUM || '/usr/bin/chromium' };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const v = () => {
      if (i + 1 >= argv.length) throw new Error(`${k} needs a value`);
      return argv[++i];
    };
    switch (k) {
      case '--open-runs': a.openRuns = Number(v()); break;
      case '--chromium': a.chromium = v(); break;
      default: throw new Error(`unknown option ${k}`);
    }
  }
  return a;
}

// Runs in the page.
async function measure(runs) {
  const one = () => new Promise((resolve, reject) => {
    const p1 = new RTCPeerConnection({ iceServers: [] });
    const p2 = new RTCPeerConnection({ iceServers: [] });
    const timer = setTimeout(() => reject(new Error('not open within 10 s')), 10000);
    let t0 = 0;
    let open1 = 0;
    let open2 = 0;
    const done = () => {
      if (open1 && open2) {
        clearTimeout(timer);
        const ms = Math.max(open1, open2) - t0;
        p1.close();
        p2.close();
        resolve(ms);
      }
    };
    p1.onicecandidate = (e) => { if (e.candidate) p2.addIceCandidate(e.candidate).catch(reject); };
    p2.onicecandidate = (e) => { if (e.candidate) p1.addIceCandidate(e.candidate).catch(reject); };
    p1.onconnectionstatechange = () => { if (p1.connectionState === 'failed') reject(new Error('failed')); };
    const dc = p1.createDataChannel('bench');
    dc.onopen = () => { open1 = performance.now(); done(); };
    p2.ondatachannel = (e) => {
      const ch = e.channel;
      if (ch.readyState === 'open') {
        open2 = performance.now();
        done();
      } else {
        ch.onopen = () => { open2 = performance.now(); done(); };
      }
    };
    (async () => {
      t0 = performance.now();
      const offer = await p1.createOffer();
      await p1.setLocalDescription(offer);
      await p2.setRemoteDescription(offer);
      const answer = await p2.createAnswer();
      await p2.setLocalDescription(answer);
      await p1.setRemoteDescription(answer);
    })().catch(reject);
  });
  const out = [];
  for (let i = 0; i < runs; i++) {
    out.push(await one());
    await new Promise((r) => setTimeout(r, 20));
  }
  return out;
}

async function main() {
  const a = parseArgs(process.argv.slice(2));
  const { chromium } = require('playwright-core');
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'rtc-bench-chromium-'));
  let context;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: a.chromium, headless: true, args: ARGS, timeout: 30000,
    });
    const page = context.pages()[0] || (await context.newPage());
    const version = context.browser() ? context.browser().version() : '?';
    // One run first, not counted: the page's first connection loads WebRTC's code.
    await page.evaluate(measure, 1);
    const ms = (await page.evaluate(measure, a.openRuns)).sort((x, y) => x - y);
    const pct = (p) => ms[Math.min(ms.length - 1, Math.round(p * (ms.length - 1)))];
    console.log(`RTC impl=chromium version=${version} open_runs=${ms.length} open_p50_ms=${pct(0.5).toFixed(3)} `
      + `open_p90_ms=${pct(0.9).toFixed(3)} open_min_ms=${ms[0].toFixed(3)}`);
  } finally {
    if (context) await context.close().catch(() => {});
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

main().catch((e) => {
  process.stderr.write(`chromium.js: ${e.message}\n`);
  process.exit(1);
});
