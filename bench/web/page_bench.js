#!/usr/bin/env node
// The browser benchmark's driver (run by bench/web.sh): headless Chromium with
// playwright-core, pages served by a small static server on 127.0.0.1, WebRTC over loopback
// (--allow-loopback-in-peer-connection).
//
//   node page_bench.js --web DIR [--runs N] [--total-mib N] [--pings N] [--native CMD]...
//
// DIR holds netplay_web_test.js and its .wasm (scripts/build-web.sh builds them); the page and
// the plain-JavaScript peer are beside this file.
//
// Page to page: two tabs, each with one peer, netplay's (BenchPeer, wasm) or plain
// JavaScript's (PlainPeer); signaling lines relayed by this driver. Per run and peer kind: a
// bulk transfer of --total-mib MiB in 1 KiB and in 16 KiB messages (timed in the sending page
// from the first send to the receiver's acknowledgement), and --pings round trips of 32 bytes.
//
// Page to native (each --native 'NAME=COMMAND', an echo peer speaking docs/PROTOCOL.md's
// lines, answering): one tab offers to the process; the bulk transfer is timed until all of
// it came back, so its MB/s count each byte once, one way.
//
// Prints one line per measurement: WEB kind=page|native impl=... peer=... size=... mbps=...
// or WEB kind=page impl=... ping_p50_us=... ping_p99_us=... ping_mean_us=...
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const http = require('http');
const { spawn } = require('child_process');
const readline = require('readline');

const NODE_MODULES = path.join(__dirname, '..', 'rtc', 'node_modules');
const { chromium } = require(path.join(NODE_MODULES, 'playwright-core'));
const FLAGS = require(path.join(__dirname, '..', '..', 'tests', 'interop', 'node', 'chromium_flags.js'));

const log = (line) => process.stderr.write(`page_bench: ${line}\n`);

function parseArgs(argv) {
  const a = { web: null, runs: 3, totalMib: 32, pings: 1000, native: [] };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const v = () => {
      if (i + 1 >= argv.length) throw new Error(`${k} needs a value`);
      return argv[++i];
    };
    switch (k) {
      case '--web': a.web = v(); break;
      case '--runs': a.runs = Number(v()); break;
      case '--total-mib': a.totalMib = Number(v()); break;
      case '--pings': a.pings = Number(v()); break;
      case '--native': {
        const spec = v();
        const at = spec.indexOf('=');
        a.native.push({ name: spec.slice(0, at), command: spec.slice(at + 1) });
        break;
      }
      default: throw new Error(`unknown option ${k}`);
    }
  }
  if (!a.web) throw new Error('--web DIR is needed');
  return a;
}

const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm' };

function serve(dirs) {
  const server = http.createServer((req, res) => {
    const name = path.basename(new URL(req.url, 'http://x').pathname);
    for (const dir of dirs) {
      const file = path.join(dir, name);
      if (name && fs.existsSync(file)) {
        res.writeHead(200, { 'content-type': TYPES[path.extname(name)] || 'application/octet-stream' });
        res.end(fs.readFileSync(file));
        return;
      }
    }
    res.writeHead(name === 'favicon.ico' ? 204 : 404);
    res.end();
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

// Lines from one source, awaited by prefix.
class Lines {
  constructor(name) {
    this.name = name;
    this.queue = [];
    this.waiters = [];
    this.onSignal = null;
  }

  push(line) {
    if (line.startsWith('signal ') && this.onSignal) {
      this.onSignal(line.slice('signal '.length));
      return;
    }
    if (line.startsWith('error')) log(`${this.name}: ${line}`);
    const i = this.waiters.findIndex((w) => line.startsWith(w.prefix));
    if (i >= 0) {
      const [w] = this.waiters.splice(i, 1);
      clearTimeout(w.timer);
      w.resolve(line);
    } else {
      this.queue.push(line);
    }
  }

  next(prefix, seconds = 60) {
    const i = this.queue.findIndex((l) => l.startsWith(prefix));
    if (i >= 0) return Promise.resolve(this.queue.splice(i, 1)[0]);
    return new Promise((resolve, reject) => {
      const w = { prefix, resolve };
      w.timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new Error(`${this.name}: no '${prefix}' within ${seconds} s`));
      }, seconds * 1000);
      this.waiters.push(w);
    });
  }
}

async function openTab(context, base, name) {
  const page = await context.newPage();
  const lines = new Lines(name);
  page.on('console', (m) => log(`[${name} ${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => log(`[${name} pageerror] ${e.message}`));
  await page.exposeFunction('benchOut', (line) => lines.push(line));
  await page.goto(`${base}/bench.html`);
  await page.waitForFunction(() => window.benchReady === true, null, { timeout: 30000 });
  const call = (method, ...args) => page.evaluate(([m, a]) => window.benchCall(m, a), [method, args]);
  return { page, lines, call, name };
}

const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];

async function pageToPage(context, base, impl, a) {
  const [x, y] = [await openTab(context, base, `${impl}-A`), await openTab(context, base, `${impl}-B`)];
  // Relayed in order, one at a time.
  const relay = (to) => {
    let chain = Promise.resolve();
    return (line) => {
      chain = chain.then(() => to.call('signal', line)).catch((e) => log(`${to.name} signal: ${e.message}`));
    };
  };
  x.lines.onSignal = relay(y);
  y.lines.onSignal = relay(x);
  await x.page.evaluate(([i]) => window.benchStart(i, true), [impl]);
  await y.page.evaluate(([i]) => window.benchStart(i, false), [impl]);
  await Promise.all([x.lines.next('open'), y.lines.next('open')]);
  const results = [];
  const total = a.totalMib << 20;
  for (const size of [1024, 16384]) {
    await y.call('expect', total);
    await x.call('send', size, total);
    const sent = await x.lines.next('sent ');
    await y.lines.next('received');
    const ms = Number(sent.split(' ')[1]);
    results.push(`WEB kind=page impl=${impl} size=${size} mib=${a.totalMib} ms=${ms.toFixed(1)} mbps=${(total / ms / 1000).toFixed(1)}`);
  }
  await y.call('echo', true);
  await x.call('pingpong', a.pings, 32);
  const pings = (await x.lines.next('pings ', 120)).slice('pings '.length).split(',').map(Number);
  pings.sort((p, q) => p - q);
  const mean = pings.reduce((s, v) => s + v, 0) / pings.length;
  results.push(`WEB kind=page impl=${impl} pings=${pings.length} ping_p50_us=${percentile(pings, 0.5)} ping_p99_us=${percentile(pings, 0.99)} ping_mean_us=${mean.toFixed(0)}`);
  for (const t of [x, y]) {
    await t.page.evaluate(() => window.benchStop());
    await t.page.close();
  }
  return results;
}

async function pageToNative(context, base, impl, native, a) {
  const x = await openTab(context, base, `${impl}-to-${native.name}`);
  const child = spawn('sh', ['-c', native.command], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr = (stderr + d).slice(-4000); });
  const write = (line) => child.stdin.write(`${line}\n`);
  write(JSON.stringify({ type: 'channels', channels: [{ label: 'bench', negotiated: true, id: 0 }] }));
  let chain = Promise.resolve();
  readline.createInterface({ input: child.stdout }).on('line', (line) => {
    if (!line.startsWith('{')) return;
    chain = chain.then(() => x.call('signal', line)).catch((e) => log(`${x.name} signal: ${e.message}`));
  });
  x.lines.onSignal = (line) => write(line);
  const results = [];
  try {
    await x.page.evaluate(([i]) => window.benchStart(i, true), [impl]);
    await x.lines.next('open');
    const total = a.totalMib << 20;
    for (const size of [1024, 16384]) {
      await x.call('expect', total);
      await x.call('send', size, total);
      const ms = Number((await x.lines.next('sent ')).split(' ')[1]);
      results.push(`WEB kind=native impl=${impl} peer=${native.name} size=${size} mib=${a.totalMib} ms=${ms.toFixed(1)} mbps=${(total / ms / 1000).toFixed(1)}`);
    }
  } catch (e) {
    log(`${native.name} stderr:\n${stderr}`);
    throw e;
  } finally {
    write(JSON.stringify({ type: 'bye' }));
    child.stdin.end();
    await x.page.evaluate(() => window.benchStop());
    await x.page.close();
    await new Promise((resolve) => {
      const t = setTimeout(() => { child.kill('SIGKILL'); resolve(); }, 5000);
      child.on('exit', () => { clearTimeout(t); resolve(); });
    });
  }
  return results;
}

async function main() {
  const a = parseArgs(process.argv.slice(2));
  const server = await serve([path.resolve(a.web), __dirname]);
  const base = `http://127.0.0.1:${server.address().port}`;
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'netplay-bench-web-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.NETPLAY_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [...FLAGS, '--allow-loopback-in-peer-connection'],
  });
  try {
    for (let run = 0; run < a.runs; run++) {
      // The order of the two rotates between runs.
      const impls = run % 2 === 0 ? ['netplay', 'js'] : ['js', 'netplay'];
      for (const impl of [...impls, 'js-events']) {
        for (const line of await pageToPage(context, base, impl, a)) console.log(line);
      }
      for (const native of a.native) {
        for (const impl of impls) {
          try {
            for (const line of await pageToNative(context, base, impl, native, a)) console.log(line);
          } catch (e) {
            log(`${impl} to ${native.name}: ${e.message}`);
            console.log(`WEB kind=native impl=${impl} peer=${native.name} failed`);
          }
        }
      }
    }
  } finally {
    await context.close();
    server.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

main().catch((e) => {
  log(e.stack || String(e));
  process.exit(1);
});
