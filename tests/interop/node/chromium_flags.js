// Command-line flags for headless Debian Chromium in the WebRTC tests and benchmarks: no
// sandbox (tests run as root), no GPU, no background traffic to the outside (the machines
// have no network beyond loopback), and raw IP host candidates instead of mDNS names.
'use strict';

module.exports = Object.freeze([
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
  '--disable-features=WebRtcHideLocalIpsWithMdns',
]);
