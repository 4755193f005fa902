#!/usr/bin/env node
// Drives pages of netplay's web test harness (crates/netplay-web-test, built by
// scripts/build-web.sh) in headless Chromium with playwright-core, for the tests of netplay's
// web platform.
//
//   node wasm_page.js --base http://127.0.0.1:PORT
//
// Commands, one per line on stdin:
//   open K [PATH]   open tab K at BASE + PATH (default /index.html) and wait for the harness
//   cmd K LINE      give LINE to tab K's harness (window.netplayCommand)
//   heap K          garbage-collect tab K, then report its JS heap and wasm memory
//   close K         close tab K
//   crash K         crash tab K's renderer (CDP Page.crash), as when a tab dies
//   quit            close the browser and exit 0
// Reports, one per line on stdout:
//   ready           the browser is up
//   tab K ready     tab K's harness is loaded
//   tab K LINE      a report of tab K's harness
//   tab K heap JS_BYTES WASM_BYTES   after `heap K`
//   tab K closed    tab K was closed
//   tab K crashed   tab K's renderer is gone
//   tab K pageerror TEXT   an uncaught exception in tab K (a test fails on it)
//   error TEXT      a command failed (the driver goes on)
// Chromium is /usr/bin/chromium unless NETPLAY_CHROMIUM names another executable.
'use strict';

const { arg, out, runDriver } = require('./tab_driver');

const err = (line) => process.stderr.write(`wasm_page.js: ${line}\n`);

async function main() {
  const base = arg('--base');
  if (!base) {
    err('usage: node wasm_page.js --base http://127.0.0.1:PORT');
    process.exit(2);
  }
  const tabs = new Map();
  await runDriver('wasm', (context) => ({
    async open(k, rest) {
      const page = await context.newPage();
      page.on('console', (m) => err(`[tab ${k} ${m.type()}] ${m.text()}`));
      page.on('pageerror', (e) => out(`tab ${k} pageerror ${e.message}`));
      await page.exposeFunction('netplayOut', (line) => out(`tab ${k} ${line}`));
      await page.goto(base + (rest || '/index.html'));
      await page.waitForFunction(() => window.netplayReady === true, null, { timeout: 30000 });
      tabs.set(k, page);
      out(`tab ${k} ready`);
    },
    async cmd(k, rest) {
      const page = tabs.get(k);
      if (!page) throw new Error(`no tab ${k}`);
      await page.evaluate((line) => window.netplayCommand(line), rest);
    },
    async heap(k) {
      const page = tabs.get(k);
      if (!page) throw new Error(`no tab ${k}`);
      const cdp = await context.newCDPSession(page);
      for (let i = 0; i < 3; i++) await cdp.send('HeapProfiler.collectGarbage');
      const { usedSize } = await cdp.send('Runtime.getHeapUsage');
      await cdp.detach();
      const wasm = await page.evaluate(() => window.netplayWasmMemory());
      out(`tab ${k} heap ${usedSize} ${wasm}`);
    },
    async crash(k) {
      const page = tabs.get(k);
      if (!page) throw new Error(`no tab ${k}`);
      tabs.delete(k);
      const crashed = new Promise((resolve) => page.once('crash', resolve));
      const cdp = await context.newCDPSession(page);
      // The renderer dies before it answers: the call's own failure is expected.
      cdp.send('Page.crash').catch(() => {});
      await crashed;
      out(`tab ${k} crashed`);
    },
    async close(k) {
      const page = tabs.get(k);
      if (!page) throw new Error(`no tab ${k}`);
      tabs.delete(k);
      await page.close();
      out(`tab ${k} closed`);
    },
  }));
}

main().catch((e) => {
  err(e.stack || String(e));
  process.exit(1);
});
