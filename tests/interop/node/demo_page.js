#!/usr/bin/env node
// Drives the demo page of `netplay serve` in headless Chromium (playwright-core), as a user
// with several tabs would, for the tests of the page.
//
//   node demo_page.js --base http://127.0.0.1:PORT
//
// Commands, one per line on stdin:
//   open K PATH     open tab K at BASE + PATH (e.g. `/` or `/?lobby=NAME`)
//   say K TEXT      type TEXT into tab K's #chat-input and press Enter
//   move K X Y      move the mouse to (X, Y) of tab K's canvas #field
//   close K         close tab K
//   quit            close the browser and exit 0
// Reports, one per line on stdout:
//   ready                       the browser is up
//   tab K lobby NAME id ID      tab K's #status names its lobby and id
//   tab K address URL           tab K's address, once its lobby is known
//   tab K peers ID,ID,...       tab K's #peers list changed (empty after "peers ")
//   tab K log LINE              a new line in tab K's #chat-log
//   tab K dot ID X Y            tab K shows peer ID's dot at (X, Y) (its #peers item's data-x/y)
//   tab K closed                tab K was closed
//   error TEXT                  a command failed (the driver goes on)
// Page errors and console messages go to stderr. Chromium is /usr/bin/chromium unless
// NETPLAY_CHROMIUM names another executable. The tabs are watched every 50 ms.
'use strict';

const { arg, out, runDriver } = require('./tab_driver');

const WATCH_MS = 50;

const err = (line) => process.stderr.write(`demo_page.js: ${line}\n`);

// What the driver has seen of one tab, so that only changes are reported.
class Tab {
  constructor(k, page) {
    this.k = k;
    this.page = page;
    this.status = null;
    this.peers = null;
    this.lines = 0;
    this.dots = new Map();
  }

  async watch() {
    const seen = await this.page.evaluate(() => {
      const status = document.getElementById('status');
      return {
        lobby: status && status.dataset.lobby,
        id: status && status.dataset.id,
        address: location.href,
        peers: [...document.querySelectorAll('#peers li')].map((li) => li.textContent),
        lines: [...document.querySelectorAll('#chat-log > div')].map((d) => d.textContent),
        dots: [...document.querySelectorAll('#peers li[data-x]')].map(
          (li) => [li.dataset.id, `${li.dataset.x} ${li.dataset.y}`]),
      };
    });
    if (seen.lobby && seen.id && this.status === null) {
      this.status = seen;
      out(`tab ${this.k} lobby ${seen.lobby} id ${seen.id}`);
      out(`tab ${this.k} address ${seen.address}`);
    }
    const peers = seen.peers.join(',');
    if (peers !== this.peers) {
      this.peers = peers;
      out(`tab ${this.k} peers ${peers}`);
    }
    for (; this.lines < seen.lines.length; this.lines++) out(`tab ${this.k} log ${seen.lines[this.lines]}`);
    for (const [id, at] of seen.dots) {
      if (this.dots.get(id) !== at) {
        this.dots.set(id, at);
        out(`tab ${this.k} dot ${id} ${at}`);
      }
    }
  }
}

async function main() {
  const base = arg('--base');
  if (!base) {
    err('usage: node demo_page.js --base http://127.0.0.1:PORT');
    process.exit(2);
  }
  const tabs = new Map();
  await runDriver('demo', (context, state) => {
    // One watcher, so that no change is reported twice.
    (async () => {
      while (!state.done()) {
        for (const tab of [...tabs.values()]) {
          try {
            await tab.watch();
          } catch (e) {
            if (tabs.has(tab.k)) err(`watching tab ${tab.k}: ${e.message}`);
          }
        }
        await new Promise((r) => setTimeout(r, WATCH_MS));
      }
    })();
    return {
      async open(k, rest) {
        const page = await context.newPage();
        page.on('console', (m) => err(`[tab ${k} ${m.type()}] ${m.text()}`));
        page.on('pageerror', (e) => err(`[tab ${k} error] ${e.message}`));
        await page.goto(base + rest);
        tabs.set(k, new Tab(k, page));
      },
      async say(k, rest) {
        const tab = tabs.get(k);
        if (!tab) throw new Error(`no tab ${k}`);
        await tab.page.fill('#chat-input', rest);
        await tab.page.press('#chat-input', 'Enter');
      },
      async move(k, rest) {
        const tab = tabs.get(k);
        if (!tab) throw new Error(`no tab ${k}`);
        const [x, y] = rest.split(' ').map(Number);
        const box = await tab.page.locator('#field').boundingBox();
        await tab.page.mouse.move(box.x + x, box.y + y);
      },
      async close(k) {
        const tab = tabs.get(k);
        if (!tab) throw new Error(`no tab ${k}`);
        tabs.delete(k);
        await tab.page.close();
        out(`tab ${k} closed`);
      },
    };
  });
}

main().catch((e) => {
  err(e.stack || String(e));
  process.exit(1);
});
