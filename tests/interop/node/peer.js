#!/usr/bin/env node
// External WebSocket test peer built on the Node `ws` package.
//
// It is not ours: it stands for "some other WebSocket implementation" in the
// interop tests of netplay. `tests/interop/py_peer.py` (Python websockets) has
// the same command-line contract; see its docstring for the details.
//
//   node peer.js server --port P [--protocol NAME]... [--tls-cert F --tls-key F]
//                       [--max-size N] [--no-deflate]
//     Echo server on 127.0.0.1, prints `READY <port>` once listening. The text
//     `close:<code>:<reason>` makes it close with that code and reason. Selects
//     the first client-offered protocol it supports (none without --protocol).
//     Exits on SIGTERM/SIGINT, or on stdin EOF when stdin is a pipe or socket.
//
//   node peer.js client --url URL [--protocol NAME]... [--ca F] [--max-size N]
//                       [--no-deflate] [--suite] [--expect-protocol NAME|-]
//                       [--send-big N [--big-fragments K]]
//                       [--request-close CODE:REASON] [--expect-close-code C]
//                       [--timeout SECONDS]
//     Prints `ok <name>` / `FAIL <name>: <why>` per check, exits 0 only if all
//     passed. Every wait is bounded by --timeout (default 20 s).
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const https = require('https');
const { WebSocket, WebSocketServer } = require('ws');

const DEFAULT_MAX_SIZE = 64 * 1024 * 1024;
const BIG_SUITE_SIZE = 16 * 1024 * 1024;
const UTF8_TEXT = 'héllo wörld · ✓ · Ελληνικά · 日本語 · 😀🎮 · 𝄞 · end';

function out(line) {
  process.stdout.write(line + '\n');
}

function usage(msg) {
  process.stderr.write(`peer.js: ${msg}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const mode = argv[0];
  if (mode !== 'server' && mode !== 'client') usage('first argument must be `server` or `client`');
  const a = {
    mode,
    port: 0,
    protocol: [],
    tlsCert: null,
    tlsKey: null,
    maxSize: DEFAULT_MAX_SIZE,
    noDeflate: false,
    url: null,
    ca: null,
    suite: false,
    expectProtocol: null,
    expectCloseCode: null,
    sendBig: null,
    bigFragments: 1,
    requestClose: null,
    timeout: 20,
  };
  const intArg = (name, v) => {
    if (v === undefined || !/^\d+$/.test(v)) usage(`${name} needs a non-negative integer`);
    return Number(v);
  };
  for (let i = 1; i < argv.length; i++) {
    const k = argv[i];
    const v = () => {
      if (i + 1 >= argv.length) usage(`${k} needs a value`);
      return argv[++i];
    };
    switch (k) {
      case '--port': a.port = intArg(k, v()); break;
      case '--protocol': a.protocol.push(v()); break;
      case '--tls-cert': a.tlsCert = v(); break;
      case '--tls-key': a.tlsKey = v(); break;
      case '--max-size': a.maxSize = intArg(k, v()); break;
      case '--no-deflate': a.noDeflate = true; break;
      case '--url': a.url = v(); break;
      case '--ca': a.ca = v(); break;
      case '--suite': a.suite = true; break;
      case '--expect-protocol': a.expectProtocol = v(); break;
      case '--expect-close-code': a.expectCloseCode = intArg(k, v()); break;
      case '--send-big': a.sendBig = intArg(k, v()); break;
      case '--big-fragments': a.bigFragments = Math.max(1, intArg(k, v())); break;
      case '--request-close': a.requestClose = v(); break;
      case '--timeout': a.timeout = Number(v()); break;
      default: usage(`unknown argument ${k}`);
    }
  }
  if (mode === 'client' && !a.url) usage('client needs --url');
  if ((a.tlsCert === null) !== (a.tlsKey === null)) usage('--tls-cert and --tls-key go together');
  return a;
}

// ---------------------------------------------------------------------- server

function runServer(a) {
  const server = a.tlsCert
    ? https.createServer({ cert: fs.readFileSync(a.tlsCert), key: fs.readFileSync(a.tlsKey) })
    : http.createServer();
  server.on('request', (req, res) => {
    res.writeHead(426, { 'content-type': 'text/plain' });
    res.end('WebSocket upgrade required\n');
  });
  const wss = new WebSocketServer({
    server,
    maxPayload: a.maxSize,
    perMessageDeflate: !a.noDeflate,
    // Always given: ws' default would pick the client's first offer.
    handleProtocols: (offered) => {
      for (const p of offered) if (a.protocol.includes(p)) return p;
      return false;
    },
  });
  wss.on('connection', (ws) => {
    ws.on('error', () => {});
    ws.on('message', (data, isBinary) => {
      if (!isBinary) {
        const text = data.toString('utf8');
        if (text.startsWith('close:')) {
          const [, code, ...reason] = text.split(':');
          ws.close(Number(code), reason.join(':'));
          return;
        }
      }
      ws.send(data, { binary: isBinary });
    });
  });
  const stop = (why) => {
    process.stderr.write(`peer.js server: stopping (${why})\n`);
    process.exit(0);
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  let watchStdin = false;
  try {
    const st = fs.fstatSync(0);
    watchStdin = st.isFIFO() || st.isSocket();
  } catch (_) {
    watchStdin = false;
  }
  if (watchStdin) {
    process.stdin.on('end', () => stop('stdin EOF'));
    process.stdin.on('close', () => stop('stdin closed'));
    process.stdin.on('error', () => stop('stdin error'));
    process.stdin.resume();
  }
  server.listen(a.port, '127.0.0.1', () => out(`READY ${server.address().port}`));
}

// ---------------------------------------------------------------------- client

class Timeout extends Error {}
class Closed extends Error {
  constructor(info) {
    super(`connection closed (code ${info.code}, reason ${JSON.stringify(info.reason)})`);
    this.info = info;
  }
}

function withTimeout(promise, ms, what) {
  let t;
  const timer = new Promise((_, reject) => {
    t = setTimeout(() => reject(new Timeout(`${what} timed out after ${ms / 1000}s`)), ms);
  });
  return Promise.race([promise, timer]).finally(() => clearTimeout(t));
}

class Conn {
  constructor(ws) {
    this.ws = ws;
    this.messages = [];
    this.waiters = [];
    this.closed = null;
    this.error = null;
    this.closedPromise = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
    ws.on('message', (data, isBinary) => {
      const m = { data: Buffer.isBuffer(data) ? data : Buffer.from(data), isBinary };
      const w = this.waiters.shift();
      if (w) w.resolve(m);
      else this.messages.push(m);
    });
    ws.on('error', (e) => {
      this.error = e;
    });
    ws.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString() };
      for (const w of this.waiters) w.reject(new Closed(this.closed));
      this.waiters = [];
      this.resolveClosed(this.closed);
    });
  }

  recv(ms) {
    return new Promise((resolve, reject) => {
      if (this.messages.length) return resolve(this.messages.shift());
      if (this.closed) return reject(new Closed(this.closed));
      let t = null;
      const w = {
        resolve: (m) => {
          clearTimeout(t);
          resolve(m);
        },
        reject: (e) => {
          clearTimeout(t);
          reject(e);
        },
      };
      t = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w);
        reject(new Timeout(`receive timed out after ${ms / 1000}s`));
      }, ms);
      this.waiters.push(w);
    });
  }

  send(data, opts, ms) {
    if (this.closed) return Promise.reject(new Closed(this.closed));
    return withTimeout(
      new Promise((resolve, reject) => {
        this.ws.send(data, opts, (err) => (err ? reject(err) : resolve()));
      }),
      ms,
      'send',
    );
  }
}

// Deterministic, incompressible bytes (xorshift32).
function pseudoRandomBytes(n, seed) {
  const buf = Buffer.allocUnsafe(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    buf[i] = x & 0xff;
  }
  return buf;
}

function chunks(buf, sizes) {
  const parts = [];
  let pos = 0;
  let i = 0;
  while (pos < buf.length) {
    const n = sizes[i % sizes.length];
    parts.push(buf.subarray(pos, pos + n));
    pos += n;
    i += 1;
  }
  return parts;
}

function describe(m) {
  if (!m) return String(m);
  const kind = m.isBinary ? 'binary' : 'text';
  const head = m.isBinary ? m.data.subarray(0, 16).toString('hex') + '...' : JSON.stringify(m.data.toString('utf8').slice(0, 40));
  return `${kind}(${m.data.length} bytes) ${head}`;
}

class Suite {
  constructor(timeoutS) {
    this.ms = timeoutS * 1000;
    this.failures = 0;
    this.checks = 0;
  }
  ok(name) {
    this.checks += 1;
    out(`ok ${name}`);
  }
  fail(name, why) {
    this.checks += 1;
    this.failures += 1;
    out(`FAIL ${name}: ${why}`);
  }
}

function why(e) {
  return e instanceof Error ? e.message : String(e);
}

// Send `fragments` (a Buffer, or an array of Buffers sent as one fragmented
// message) and expect the same bytes back with the same message type.
async function echoCheck(s, c, name, fragments, isBinary) {
  const parts = Array.isArray(fragments) ? fragments : [fragments];
  const expected = Buffer.concat(parts);
  try {
    for (let i = 0; i < parts.length; i++) {
      await c.send(parts[i], { binary: isBinary, fin: i === parts.length - 1 }, s.ms);
    }
    const got = await c.recv(s.ms);
    const want = { data: expected, isBinary };
    if (got.isBinary !== isBinary) s.fail(name, `type differs: sent ${describe(want)}, got ${describe(got)}`);
    else if (!got.data.equals(expected)) s.fail(name, `content differs: sent ${describe(want)}, got ${describe(got)}`);
    else s.ok(name);
  } catch (e) {
    s.fail(name, why(e));
  }
}

async function runSuite(s, c) {
  await echoCheck(s, c, 'text_round_trip', Buffer.from(UTF8_TEXT, 'utf8'), false);
  await echoCheck(s, c, 'empty_text_round_trip', Buffer.alloc(0), false);

  const allBytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
  await echoCheck(s, c, 'binary_round_trip', allBytes, true);

  // Text fragments split every 5 bytes: boundaries fall inside code points.
  const encoded = Buffer.from(UTF8_TEXT.repeat(3), 'utf8');
  await echoCheck(s, c, 'fragmented_text', chunks(encoded, [5]), false);

  const fragBin = Buffer.concat(Array(8).fill(allBytes));
  await echoCheck(s, c, 'fragmented_binary', chunks(fragBin, [1, 0, 300, 7, 1000]), true);

  {
    const name = 'big_16mib_binary';
    const big = pseudoRandomBytes(BIG_SUITE_SIZE, 6455);
    const want = crypto.createHash('sha256').update(big).digest('hex');
    try {
      await c.send(big, { binary: true }, s.ms);
      const got = await c.recv(s.ms);
      if (!got.isBinary) s.fail(name, `expected binary, got ${describe(got)}`);
      else if (got.data.length !== big.length) s.fail(name, `length ${got.data.length} != ${big.length}`);
      else if (crypto.createHash('sha256').update(got.data).digest('hex') !== want) s.fail(name, 'sha256 differs');
      else s.ok(name);
    } catch (e) {
      s.fail(name, why(e));
    }
  }

  {
    const name = 'hundred_messages_in_order';
    const sent = [];
    for (let i = 0; i < 100; i++) {
      sent.push(i % 2 === 0 ? { data: Buffer.from(`msg-${i}`), isBinary: false } : { data: Buffer.from(`bin-${i}`), isBinary: true });
    }
    try {
      await Promise.all(sent.map((m) => c.send(m.data, { binary: m.isBinary }, s.ms)));
      let bad = null;
      for (let i = 0; i < sent.length; i++) {
        const got = await c.recv(s.ms);
        if (bad === null && (got.isBinary !== sent[i].isBinary || !got.data.equals(sent[i].data))) {
          bad = `message ${i}: sent ${describe(sent[i])}, got ${describe(got)}`;
        }
      }
      if (bad) s.fail(name, bad);
      else s.ok(name);
    } catch (e) {
      s.fail(name, why(e));
    }
  }
}

// Wait for the server to close the connection and check its close code.
// `start` (optional) is called first; it may fail as the server closes.
async function expectServerClose(s, c, name, code, start) {
  if (start) {
    try {
      const p = start();
      if (p && p.catch) p.catch(() => {});
    } catch (_) {
      // the server may close while we are sending
    }
  }
  let info;
  try {
    info = await withTimeout(c.closedPromise, s.ms, 'waiting for the server to close');
  } catch (e) {
    s.fail(name, why(e));
    return;
  }
  if (info.code !== code) {
    const err = c.error ? ` (socket error: ${c.error.message})` : '';
    s.fail(name, `expected close code ${code}, got ${info.code} reason ${JSON.stringify(info.reason)}${err}`);
  } else s.ok(name);
}

async function runClient(a) {
  const s = new Suite(a.timeout);
  const opts = {
    maxPayload: a.maxSize,
    perMessageDeflate: !a.noDeflate,
    handshakeTimeout: s.ms,
  };
  if (a.ca) opts.ca = fs.readFileSync(a.ca);
  let ws;
  try {
    ws = new WebSocket(a.url, a.protocol, opts);
  } catch (e) {
    s.fail('connect', why(e));
    return 1;
  }
  const c = new Conn(ws);
  try {
    await withTimeout(
      new Promise((resolve, reject) => {
        ws.once('open', resolve);
        ws.once('error', reject);
        ws.once('unexpected-response', (_req, res) => reject(new Error(`unexpected HTTP response ${res.statusCode}`)));
      }),
      s.ms,
      'connect',
    );
  } catch (e) {
    s.fail('connect', why(e));
    ws.terminate();
    return 1;
  }
  s.ok('connect');

  let serverClosed = false;
  if (a.expectProtocol !== null) {
    const want = a.expectProtocol === '-' ? '' : a.expectProtocol;
    const name = `protocol_${a.expectProtocol}`;
    if (ws.protocol === want) s.ok(name);
    else s.fail(name, `selected sub-protocol is ${JSON.stringify(ws.protocol)}, expected ${JSON.stringify(want)}`);
  }

  if (a.suite) await runSuite(s, c);

  if (a.sendBig !== null) {
    const data = pseudoRandomBytes(a.sendBig, 1009);
    const parts = a.bigFragments > 1 ? chunks(data, [Math.max(1, Math.ceil(data.length / a.bigFragments))]) : [data];
    if (a.expectCloseCode !== null) {
      serverClosed = true;
      await expectServerClose(s, c, `big_${a.sendBig}_closed_${a.expectCloseCode}`, a.expectCloseCode, () => {
        parts.forEach((p, i) => ws.send(p, { binary: true, fin: i === parts.length - 1 }, () => {}));
      });
    } else {
      await echoCheck(s, c, `big_${a.sendBig}_echoed`, parts.length > 1 ? parts : data, true);
    }
  }

  if (!serverClosed && a.requestClose !== null) {
    const code = Number(a.requestClose.split(':')[0]);
    const want = a.expectCloseCode !== null ? a.expectCloseCode : code;
    serverClosed = true;
    await expectServerClose(s, c, `server_close_${want}`, want, () => ws.send(`close:${a.requestClose}`, () => {}));
  }

  if (!serverClosed && a.expectCloseCode !== null) {
    serverClosed = true;
    await expectServerClose(s, c, `server_close_${a.expectCloseCode}`, a.expectCloseCode, null);
  }

  if (!serverClosed) {
    const name = 'close_4001';
    try {
      if (c.closed) throw new Closed(c.closed);
      ws.close(4001, 'bye');
      const info = await withTimeout(c.closedPromise, s.ms, 'close handshake');
      if (info.code !== 4001) s.fail(name, `server's close code is ${info.code} (reason ${JSON.stringify(info.reason)}), expected 4001`);
      else s.ok(name);
    } catch (e) {
      s.fail(name, why(e));
    }
  }
  if (!c.closed) ws.terminate();

  process.stderr.write(`peer.js client: ${s.checks - s.failures} passed, ${s.failures} failed\n`);
  return s.failures === 0 && s.checks > 0 ? 0 : 1;
}

const args = parseArgs(process.argv.slice(2));
if (args.mode === 'server') {
  runServer(args);
} else {
  runClient(args).then(
    (code) => process.exit(code),
    (e) => {
      out(`FAIL client: ${e && e.stack ? e.stack : e}`);
      process.exit(1);
    },
  );
}
