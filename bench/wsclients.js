// Websocket clients of the events benchmark in Node (`python -m bench events --client node`): the same
// checks as wsclients.py, at a fraction of its CPU, so 20 clients on two shared cores measure the
// portal's delivery rather than the clients' parsing.
//
// Node 20 has no WebSocket class, so this speaks RFC 6455 over `net` itself: the upgrade request,
// unmasked server frames (text, continuation, ping, close), masked client frames. Nothing else.
//
// Usage: node wsclients.js FIRST COUNT WS_URL TOKEN ORIGIN JOB TIMEOUT_S DELAYS_FILE [SAMPLE]
// SAMPLE (default 1): every event's seq is checked (order, gaps, repeats) and every output line
// counted, but only the lines whose seq is a multiple of SAMPLE are read for their delays and line
// numbers (a line number must then follow from the previous sampled one and the events between).
// The full read of an event costs ~340 ns, the seq scan ~70: at a million events a second the
// difference is a good part of a core on a two-core machine.
// Prints "ready N" when client N is subscribed, then one JSON line {"summaries": [...]} at the end;
// the delays (read→client, print→client, float64 pairs per line) go to DELAYS_FILE.
"use strict";
const net = require("net");
const crypto = require("crypto");
const fs = require("fs");

const [first, count, wsUrl, token, origin, jobId, timeoutS, delaysFile, sampleArg] = process.argv.slice(2);
const SAMPLE = Math.max(1, Number(sampleArg || 1));
const url = new URL(wsUrl);
const FINISHED = new Set(["succeeded", "failed", "canceled", "timed_out", "lost", "rejected", "expired"]);
// Every event starts with seq, kind, time and text, in that order (ops_portal/jobs/models.py, wire):
// one pass of one expression reads the four.
const EVENT = /"seq":\s*(\d+),\s*"kind":\s*"(\w+)",\s*"time":\s*([0-9.eE+-]+),\s*"text":\s*"((?:[^"\\]|\\.)*)"/g;
const SEQ_COUNT = /"seq":/g;
// Sampled mode: seq and kind of every event; time and text read at the match only when sampled.
const HEAD = /"seq":\s*(\d+),\s*"kind":\s*"(\w+)"/g;
const TAIL = /,\s*"time":\s*([0-9.eE+-]+),\s*"text":\s*"((?:[^"\\]|\\.)*)"/y;

function frame(text) {
  const payload = Buffer.from(text, "utf8");
  const mask = crypto.randomBytes(4);
  const len = payload.length;
  const head = len < 126 ? Buffer.from([0x81, 0x80 | len])
    : len < 65536 ? Buffer.from([0x81, 0x80 | 126, len >> 8, len & 255])
      : (() => { const b = Buffer.alloc(10); b[0] = 0x81; b[1] = 0x80 | 127; b.writeBigUInt64BE(BigInt(len), 2); return b; })();
  for (let i = 0; i < len; i++) payload[i] ^= mask[i & 3];
  return Buffer.concat([head, mask, payload]);
}

function control(opcode, body) {
  const mask = crypto.randomBytes(4);
  const payload = Buffer.from(body);
  for (let i = 0; i < payload.length; i++) payload[i] ^= mask[i & 3];
  return Buffer.concat([Buffer.from([0x80 | opcode, 0x80 | payload.length]), mask, payload]);
}

function client(index, delays) {
  return new Promise((resolve) => {
    const stats = {
      client: index, messages: 0, items: 0, gaps: 0, duplicates: 0, out_of_order: 0, output_lines: 0,
      line_errors: 0, last_seq: 0, final_state: null, first_recv: null, last_recv: null, error: "",
    };
    const expected = { seq: 1, line: 1 };
    let subscribed = false;
    let upgraded = false;
    let buf = Buffer.alloc(0);
    let parts = [];
    let done = false;
    const sock = net.connect({ host: url.hostname, port: Number(url.port || 80) });
    sock.setNoDelay(true);
    const finish = (error) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (error) stats.error = error;
      sock.destroy();
      resolve(stats);
    };
    const timer = setTimeout(() => finish(`timed out after ${timeoutS}s`), Number(timeoutS) * 1000);
    sock.on("connect", () => {
      const key = crypto.randomBytes(16).toString("base64");
      sock.write(`GET ${url.pathname} HTTP/1.1\r\nHost: ${url.host}\r\nUpgrade: websocket\r\n` +
        `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n` +
        `Origin: ${origin}\r\nAuthorization: Token ${token}\r\n\r\n`);
    });
    sock.on("error", (err) => finish(`${err.code || "error"}: ${err.message}`));
    sock.on("close", () => finish(stats.final_state ? "" : "connection closed"));

    function onText(text, now) {
      if (text.startsWith('{"type":"events"') || text.startsWith('{"type": "events"')) {
        if (!subscribed) return finish("events before the subscription was confirmed");
        if (events(text, now)) finish("");
        return;
      }
      const message = JSON.parse(text);
      if (message.type === "hello") {
        sock.write(frame(JSON.stringify({ action: "subscribe", id: "j", stream: "job", params: { job: Number(jobId) }, since: 0 })));
      } else if (message.type === "subscribed") {
        subscribed = true;
        process.stdout.write(`ready ${index}\n`);
      } else if (message.type === "error") {
        finish(`subscription refused: ${text}`);
      }
    }

    function events(text, now) {
      stats.messages += 1;
      if (stats.first_recv === null) stats.first_recv = now;
      stats.last_recv = now;
      const scanned = SAMPLE > 1 ? scanSampled(text, now) : scanAll(text, now);
      if (scanned === null) return true;
      const [items, state] = scanned;
      if (items !== (text.match(SEQ_COUNT) || []).length) {
        finish("an events frame the bench cannot read (fields missing or in another order)");
        return true;
      }
      stats.items += items;
      stats.last_seq = expected.seq - 1;
      if (state) {
        for (const item of JSON.parse(text).items) {
          if (item.kind === "state" && item.data && FINISHED.has(item.data.state)) {
            stats.final_state = item.data.state;
            return true;
          }
        }
      }
      return false;
    }

    function checkSeq(seq) {
      if (seq === expected.seq) expected.seq += 1;
      else if (seq > expected.seq) { stats.gaps += seq - expected.seq; expected.seq = seq + 1; }
      else stats.duplicates += 1;
    }

    // Every event read whole: [events, whether a state event was among them].
    function scanAll(text, now) {
      let items = 0, state = false, m;
      EVENT.lastIndex = 0;
      while ((m = EVENT.exec(text)) !== null) {
        items += 1;
        checkSeq(Number(m[1]));
        if (m[2] !== "output") { state = state || m[2] === "state"; continue; }
        const line = m[4];
        const space = line.indexOf(" ");
        if (space < 1 || line.charCodeAt(0) < 48 || line.charCodeAt(0) > 57) continue;
        const number = Number(line.slice(0, space));
        stats.output_lines += 1;
        if (number !== expected.line) stats.line_errors += 1;
        expected.line = number + 1;
        delays.push(now - Number(m[3]), now - Number(line.slice(space + 1)));
      }
      return [items, state];
    }

    // Since the last sampled line: its number minus its seq, and the non-output events after it.
    const sampled = { offset: null, others: 0 };

    // Seq and kind of every event, time and text of every SAMPLEth line; null when it cannot be read.
    function scanSampled(text, now) {
      let items = 0, state = false, m;
      HEAD.lastIndex = 0;
      while ((m = HEAD.exec(text)) !== null) {
        items += 1;
        const seq = Number(m[1]);
        checkSeq(seq);
        if (m[2] !== "output") { state = state || m[2] === "state"; sampled.others += 1; continue; }
        stats.output_lines += 1;
        if (seq % SAMPLE !== 0) continue;
        TAIL.lastIndex = HEAD.lastIndex;
        const t = TAIL.exec(text);
        if (t === null) { finish("an output event the bench cannot read (time and text not after kind)"); return null; }
        const line = t[2];
        const space = line.indexOf(" ");
        if (space < 1 || line.charCodeAt(0) < 48 || line.charCodeAt(0) > 57) continue;
        const number = Number(line.slice(0, space));
        // number - seq stays the same between two sampled lines but for the other events between.
        if (sampled.offset !== null && number - seq !== sampled.offset - sampled.others) stats.line_errors += 1;
        sampled.offset = number - seq;
        sampled.others = 0;
        delays.push(now - Number(t[1]), now - Number(line.slice(space + 1)));
      }
      return [items, state];
    }

    sock.on("data", (chunk) => {
      const now = Date.now() / 1000;
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      if (!upgraded) {
        const end = buf.indexOf("\r\n\r\n");
        if (end < 0) return;
        const head = buf.subarray(0, end).toString("latin1");
        if (!/^HTTP\/1\.1 101/.test(head)) return finish(`upgrade refused: ${head.split("\r\n")[0]}`);
        upgraded = true;
        buf = buf.subarray(end + 4);
      }
      while (buf.length >= 2 && !done) {
        const fin = buf[0] & 0x80, opcode = buf[0] & 0x0f;
        let len = buf[1] & 0x7f, offset = 2;
        if (len === 126) { if (buf.length < 4) return; len = buf.readUInt16BE(2); offset = 4; }
        else if (len === 127) { if (buf.length < 10) return; len = Number(buf.readBigUInt64BE(2)); offset = 10; }
        if (buf.length < offset + len) return;
        const payload = buf.subarray(offset, offset + len);
        buf = buf.subarray(offset + len);
        if (opcode === 0x9) { sock.write(control(0xA, payload)); continue; }
        if (opcode === 0x8) return finish(stats.final_state ? "" : `closed by the server (${payload.length ? payload.readUInt16BE(0) : ""})`);
        if (opcode === 0x1 || opcode === 0x0) {
          parts.push(payload);
          if (fin) {
            const text = Buffer.concat(parts).toString("utf8");
            parts = [];
            onText(text, now);
          }
        }
      }
    });
  });
}

(async () => {
  const n = Number(count);
  const delays = [];
  for (let i = 0; i < n; i++) delays.push([]);
  const summaries = await Promise.all(delays.map((d, i) => client(Number(first) + i, d)));
  const cpu = process.cpuUsage();
  const cpuS = (cpu.user + cpu.system) / 1e6;
  const total = delays.reduce((sum, d) => sum + d.length, 0);
  const out = new Float64Array(total);
  let at = 0;
  for (const d of delays) { out.set(d, at); at += d.length; }
  fs.writeFileSync(delaysFile, Buffer.from(out.buffer));
  for (const s of summaries) s.process_cpu_s = cpuS / n;
  process.stdout.write(JSON.stringify({ summaries }) + "\n");
})();
