// The plain-JavaScript side of the browser benchmark: the peer of
// crates/netplay-web-test/src/bench.rs (BenchPeer) written against the browser's
// RTCPeerConnection, with the same calls, the same channel (negotiated, id 0, reliable,
// ordered), the same buffer levels and the same measurements. Its handlers do the work at
// once (as JavaScript code would); poll() only hands out the lines they queued.

const HIGH = 768 << 10;
const LOW = 256 << 10;

export class PlainPeer {
  constructor(offer) {
    this.out = [];
    this.toSend = 0;
    this.waitingLow = false;
    this.started = null;
    this.expected = 0;
    this.echoing = false;
    this.pingsLeft = 0;
    this.pingSent = null;
    this.rtts = [];
    this.pc = new RTCPeerConnection({ iceServers: [] });
    this.dc = this.pc.createDataChannel('bench', { negotiated: true, id: 0 });
    this.dc.binaryType = 'arraybuffer';
    this.dc.bufferedAmountLowThreshold = LOW;
    this.pc.onicecandidate = (e) => this.signalOut(e.candidate
      ? { type: 'candidate', mid: e.candidate.sdpMid, candidate: e.candidate.candidate }
      : { type: 'candidate', mid: '0', candidate: '' });
    this.dc.onopen = () => this.out.push('open');
    this.dc.onbufferedamountlow = () => {
      this.waitingLow = false;
      this.fill();
    };
    this.dc.onmessage = (e) => this.read(e.data);
    if (offer) {
      this.pc.setLocalDescription()
        .then(() => this.signalOut({ type: 'offer', sdp: this.pc.localDescription.sdp }))
        .catch((e) => this.out.push(`error ${e}`));
    }
  }

  signalOut(v) {
    this.out.push(`signal ${JSON.stringify(v)}`);
  }

  async signal(line) {
    const v = JSON.parse(line);
    if (v.type === 'offer' || v.type === 'answer') {
      await this.pc.setRemoteDescription({ type: v.type, sdp: v.sdp });
      if (v.type === 'offer') {
        await this.pc.setLocalDescription();
        this.signalOut({ type: 'answer', sdp: this.pc.localDescription.sdp });
      }
    } else if (v.type === 'candidate') {
      await this.pc.addIceCandidate({ candidate: v.candidate, sdpMid: v.mid || '0' });
    }
  }

  send(size, total) {
    this.message = new Uint8Array(size).fill(0x5a);
    this.toSend = total;
    this.waitingLow = false;
    this.started = performance.now();
    this.fill();
  }

  expect(total) {
    this.expected = total;
  }

  pingpong(count, size) {
    this.ping = new Uint8Array(size).fill(0x70);
    this.pingsLeft = count;
    this.rtts = [];
    this.sendPing();
  }

  echo(on) {
    this.echoing = on;
  }

  poll() {
    const lines = this.out.join('\n');
    this.out = [];
    return lines;
  }

  free() {
    this.dc.close();
    this.pc.close();
  }

  sendPing() {
    if (this.pingsLeft === 0) {
      this.out.push(`pings ${this.rtts.join(',')}`);
      return;
    }
    this.pingsLeft -= 1;
    this.pingSent = performance.now();
    this.dc.send(this.ping);
  }

  fill() {
    if (this.waitingLow) return;
    while (this.toSend > 0) {
      if (this.dc.bufferedAmount > HIGH) {
        this.waitingLow = true;
        return;
      }
      const n = Math.min(this.message.length, this.toSend);
      this.dc.send(n === this.message.length ? this.message : this.message.subarray(0, n));
      this.toSend -= n;
    }
  }

  read(data) {
    if (this.echoing) {
      this.dc.send(data);
    } else if (this.expected > 0) {
      this.expected = Math.max(0, this.expected - data.byteLength);
      // Sent to an echo peer, all of it came back; else acknowledge the whole.
      if (this.expected === 0 && !this.reportSent()) {
        this.dc.send(new Uint8Array([1]));
        this.out.push('received');
      }
    } else if (this.pingSent !== null) {
      this.rtts.push(Math.round((performance.now() - this.pingSent) * 1000));
      this.pingSent = null;
      this.sendPing();
    } else {
      this.reportSent();
    }
  }

  // Reports the running bulk transfer's time as `sent MS`; false if none runs.
  reportSent() {
    if (this.started === null) return false;
    this.out.push(`sent ${(performance.now() - this.started).toFixed(3)}`);
    this.started = null;
    return true;
  }
}
