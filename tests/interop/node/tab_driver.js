// What the page drivers (demo_page.js, wasm_page.js) share: headless Chromium with a fresh
// profile (removed at the end), and a line protocol on stdin/stdout: commands `VERB K REST`
// run one at a time in order, `ready` once the browser is up, `error VERB K: WHY` when a
// command fails, exit 0 when stdin ends or on `quit`.
//
// NETPLAY_CHROMIUM_MDNS=1 leaves Chromium's default on: host candidates as mDNS `.local`
// names instead of addresses.
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const readline = require('readline');

const CHROMIUM = process.env.NETPLAY_CHROMIUM || '/usr/bin/chromium';
const MDNS_OFF = '--disable-features=WebRtcHideLocalIpsWithMdns';
const CHROMIUM_ARGS = require('./chromium_flags').filter(
  (flag) => process.env.NETPLAY_CHROMIUM_MDNS !== '1' || flag !== MDNS_OFF,
);

const out = (line) => process.stdout.write(line + '\n');

// The value after `name` on the command line.
function arg(name) {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : undefined;
}

// Launches Chromium, then runs `commands(context, finish)` (an object of async handlers
// `(k, rest)`) on the lines of stdin. `label` names the temporary profile.
async function runDriver(label, makeCommands) {
  const { chromium } = require('playwright-core');
  if (!fs.existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM} (set NETPLAY_CHROMIUM)`);
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), `netplay-${label}-`));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    timeout: 30000,
  });
  let done = false;
  const state = { done: () => done };
  const finish = async (code) => {
    if (done) return;
    done = true;
    try {
      await Promise.race([context.close(), new Promise((r) => setTimeout(r, 5000))]);
    } finally {
      fs.rmSync(profile, { recursive: true, force: true });
      process.exit(code);
    }
  };
  const commands = makeCommands(context, state);
  commands.quit = async () => finish(0);
  let queue = Promise.resolve();
  readline.createInterface({ input: process.stdin }).on('line', (line) => {
    const [verb, k, ...words] = line.trim().split(' ');
    if (!verb) return;
    queue = queue.then(async () => {
      const command = commands[verb];
      if (!command) throw new Error(`unknown command ${verb}`);
      await command(k, words.join(' '));
    }).catch((e) => out(`error ${verb} ${k}: ${e.message}`));
  }).on('close', () => { queue.then(() => finish(0)); });
  process.on('SIGTERM', () => finish(1));
  out('ready');
}

module.exports = { arg, out, runDriver };
