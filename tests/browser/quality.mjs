// Quality under loss (issue 14, item 5): how the technician's picture holds up when the media
// path drops packets, is capped in bandwidth or delayed. A headless Chromium customer (fake
// camera playing a 640×480 or 1280×720 30 fps y4m file made with ffmpeg) streams through the
// server to a headless Chromium console (--video fake: Chromium's own pattern); the same impaired path runs through lens and through
// Janus' VideoRoom (Debian's janus), so the two can be compared.
//
// Impairments (this kernel has no netem, see /work/shared/FIELD-NOTES.md):
// - random loss in both directions of the server's media port(s): iptables' statistic match,
//   port-specific rules removed in a `finally`;
// - a bandwidth cap and/or delay on the phone's path: a user-space UDP relay in this process (the
//   phone's page is told the relay's address instead of the server's), so nothing else on the
//   machine is slowed (a `tc` qdisc on lo would shape every engineer's traffic).
//
// Measured over the window (default 30 s), as deltas of getStats on both pages: the console's
// freezeCount / totalFreezesDuration and framesDecoded, the phone's framesSent, NACKs and PLIs
// each way, the phone's retransmissions, the console's lost packets and the video bitrate.
//
//   node tests/browser/quality.mjs --target lens,janus --loss 0,0.03,0.10
//       [--video 480p|720p|fake] [--cap-kbps 1500] [--delay-ms 50] [--relay-loss 0.1]
//       [--seconds 30] [--together] [--json FILE]
//
// --relay-loss drops at random in the relay only (the phone's leg, both directions), to tell the
// phone's uplink from the console's downlink; --loss drops on the server's port (both legs).
//
// Needs root (iptables) when --loss > 0, /usr/bin/chromium, ffmpeg for 720p, janus for Janus.

import { spawn, execFileSync } from "node:child_process";
import { createSocket } from "node:dgram";
import { existsSync, mkdtempSync, rmSync, mkdirSync, writeFileSync, readFileSync } from "node:fs";
import { createServer } from "node:http";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { consoleLogin, createPinSession, customerJoins, instrument, launch, pickUp, runIfScript, startServer, STEP, technicianWithAudio, until } from "./harness.mjs";

/** @typedef {{rateKbps?: number, delayMs?: number, loss?: number}} Shaping */
/** @typedef {{target: "lens" | "janus", video: "480p" | "720p" | "fake", loss: number, capKbps: number, delayMs: number}} Condition */

const sleep = (/** @type {number} */ ms) => new Promise((r) => setTimeout(r, ms));

/** A UDP port nobody listens on right now (bind to 0, read it, close). */
async function freeUdpPort() {
  const s = createSocket("udp4");
  await new Promise((ok) => s.bind(0, "127.0.0.1", () => ok(undefined)));
  const port = s.address().port;
  await new Promise((ok) => s.close(() => ok(undefined)));
  return port;
}

/** This machine's own non-loopback address (a UDP connect sends nothing; it asks the routes). */
async function ownAddress() {
  const s = createSocket("udp4");
  await new Promise((ok, fail) => s.connect(9, "192.0.2.1", (/** @type {any} */ e) => (e ? fail(e) : ok(undefined))));
  const ip = s.address().address;
  s.close();
  if (ip.startsWith("127.") || ip === "0.0.0.0") throw new Error("no non-loopback IPv4 address for Janus");
  return ip;
}

// ------------------------------------------------------------------ loss --

/**
 * Drops each UDP datagram to and from `ports` ("P" or "LO:HI") with probability `p`, in both
 * directions (on loopback every datagram passes INPUT once: to the server by --dport, from it
 * by --sport). Returns the function that removes the rules.
 * @param {string} ports
 * @param {number} p
 */
export function randomLoss(ports, p) {
  if (p <= 0) return () => {};
  const rules = ["--dport", "--sport"].map((dir) => ["INPUT", "-p", "udp", dir, ports, "-m", "statistic", "--mode", "random", "--probability", String(p), "-j", "DROP"]);
  /** @type {string[][]} */
  const added = [];
  const remove = () => {
    for (const r of added.splice(0)) {
      try {
        execFileSync("iptables", ["-w", "-D", ...r], { stdio: "pipe" });
      } catch (e) {
        console.error(`iptables -D ${r.join(" ")}: ${e}`);
      }
    }
  };
  try {
    for (const r of rules) {
      execFileSync("iptables", ["-w", "-I", ...r], { stdio: "pipe" });
      added.push(r);
    }
  } catch (e) {
    remove();
    throw new Error(`iptables (root needed for loss): ${e}`);
  }
  return remove;
}

// ----------------------------------------------------------------- relay --

/**
 * One direction of a capped, delayed link: a token bucket of `rateKbps` whose queue holds at
 * most 300 ms (as `tc tbf latency 300ms`; later packets are dropped), then `delayMs` more.
 */
class Link {
  /** @param {Shaping} shaping */
  constructor(shaping) {
    this.rate = (shaping.rateKbps ?? 0) * 1000; // bit/s; 0 = no cap
    this.delay = shaping.delayMs ?? 0;
    this.loss = shaping.loss ?? 0;
    this.free = 0; // when the bucket is free again (ms since epoch, fractional)
    this.dropped = 0;
    this.lost = 0;
    this.passed = 0;
  }

  /** @param {Buffer} msg @param {(m: Buffer) => void} send */
  push(msg, send) {
    if (this.loss > 0 && Math.random() < this.loss) {
      this.lost += 1;
      return;
    }
    const now = performance.now();
    let leave = now;
    if (this.rate > 0) {
      const start = Math.max(now, this.free);
      if (start - now > 300) {
        this.dropped += 1;
        return;
      }
      leave = start + ((msg.length + 28) * 8 * 1000) / this.rate;
      this.free = leave;
    }
    this.passed += 1;
    const wait = leave + this.delay - now;
    // A datagram still queued when the relay closes is simply lost.
    const go = () => {
      try {
        send(msg);
      } catch {
        // socket closed
      }
    };
    if (wait < 1) go();
    else setTimeout(go, wait);
  }
}

/**
 * A user-space UDP relay: for every server address the phone is told about, a listening socket;
 * datagrams from the phone go out of one socket per phone address to the server, and back.
 * The server sees the relay's address as the phone's (a peer-reflexive candidate).
 */
export class Relay {
  /** @param {Shaping} shaping */
  constructor(shaping) {
    this.shaping = shaping;
    /** @type {Map<string, Promise<number>>} */
    this.listeners = new Map();
    /** @type {import("node:dgram").Socket[]} */
    this.sockets = [];
    this.up = new Link(shaping);
    this.down = new Link(shaping);
  }

  /**
   * The relay port (on the same address) for the server's `ip`:`port`.
   * @param {string} ip @param {number} port
   */
  portFor(ip, port) {
    const key = `${ip}:${port}`;
    let p = this.listeners.get(key);
    if (!p) {
      p = this.#listen(ip, port);
      this.listeners.set(key, p);
    }
    return p;
  }

  /** @param {string} ip @param {number} port */
  async #listen(ip, port) {
    const listener = createSocket("udp4");
    this.sockets.push(listener);
    /** @type {Map<string, import("node:dgram").Socket>} */
    const upstream = new Map();
    listener.on("message", (msg, from) => {
      const key = `${from.address}:${from.port}`;
      let sock = upstream.get(key);
      if (!sock) {
        const s = createSocket("udp4");
        sock = s;
        this.sockets.push(s);
        upstream.set(key, s);
        s.bind(0, ip);
        s.on("message", (back) => this.down.push(back, (m) => listener.send(m, from.port, from.address)));
        s.on("error", () => {});
      }
      const out = sock;
      this.up.push(msg, (m) => out.send(m, port, ip));
    });
    listener.on("error", () => {});
    await new Promise((ok) => listener.bind(0, ip, () => ok(undefined)));
    return listener.address().port;
  }

  close() {
    for (const s of this.sockets.splice(0)) {
      try {
        s.close();
      } catch {
        // already closed
      }
    }
  }
}

/**
 * Makes the pages of `context` reach the server through `relay`: every remote candidate (in a
 * remote description or trickled) is rewritten to the relay's port for it, and the page's own
 * candidates are kept from the server (trickled ones dropped, none in the local description), so
 * that a full-ICE server (str0m, Janus) cannot find the direct path with its own checks: it only
 * learns the relay's address, as a peer-reflexive candidate.
 * @param {import("playwright-core").BrowserContext} context
 * @param {Relay} relay
 */
async function throughRelay(context, relay) {
  await context.exposeBinding("__qualityRelay", (_source, /** @type {string} */ ip, /** @type {number} */ port) => relay.portFor(ip, port));
  await context.addInitScript(() => {
    const w = /** @type {any} */ (window);
    /** @param {string} line */
    const rewrite = async (line) => {
      const m = /^(a=)?(candidate:\S+ \d+ udp \d+ )(\S+) (\d+)( typ .*)$/i.exec(line);
      if (!m) return line;
      const port = await w.__qualityRelay(m[3], Number(m[4]));
      return `${m[1] ?? ""}${m[2]}${m[3]} ${port}${m[5]}`;
    };
    const proto = RTCPeerConnection.prototype;
    const setRemote = proto.setRemoteDescription;
    /** @param {RTCSessionDescriptionInit} desc */
    proto.setRemoteDescription = async function (desc) {
      if (desc?.sdp) {
        const lines = await Promise.all(desc.sdp.split("\r\n").map(rewrite));
        desc = { type: desc.type, sdp: lines.join("\r\n") };
      }
      return setRemote.call(this, desc);
    };
    // (instrument() may have put a subclass in front: the getter is on the original prototype.)
    let owner = proto;
    while (!Object.getOwnPropertyDescriptor(owner, "localDescription")) owner = Object.getPrototypeOf(owner);
    const local = /** @type {PropertyDescriptor} */ (Object.getOwnPropertyDescriptor(owner, "localDescription"));
    Object.defineProperty(proto, "localDescription", {
      get() {
        const d = local.get?.call(this);
        if (!d) return d;
        const sdp = d.sdp.split("\r\n").filter((/** @type {string} */ l) => !l.startsWith("a=candidate:")).join("\r\n");
        return new RTCSessionDescription({ type: d.type, sdp });
      },
    });
    const listen = proto.addEventListener;
    /** @type {any} */ (proto).addEventListener = function (/** @type {string} */ type, /** @type {any} */ fn, /** @type {any} */ opts) {
      if (type !== "icecandidate") return listen.call(this, type, fn, opts);
      return listen.call(this, type, (/** @type {RTCPeerConnectionIceEvent} */ e) => (e.candidate ? undefined : fn.call(this, e)), opts);
    };
    const addCandidate = proto.addIceCandidate;
    /** @param {RTCIceCandidateInit} c */
    proto.addIceCandidate = async function (c) {
      if (c?.candidate) c = { ...c, candidate: await rewrite(c.candidate) };
      return addCandidate.call(this, c);
    };
  });
}

// ----------------------------------------------------------------- stats --

/**
 * The video statistics of the page's last peer connection (the instrumented `__lensPcs`).
 * @param {import("playwright-core").Page} page
 */
async function videoStats(page) {
  return page.evaluate(async () => {
    const pcs = /** @type {RTCPeerConnection[]} */ (/** @type {any} */ (window).__lensPcs ?? []);
    const pc = pcs[pcs.length - 1];
    /** @type {Record<string, number | string>} */
    const out = {};
    if (!pc) return out;
    const report = await pc.getStats();
    const add = (/** @type {string} */ k, /** @type {unknown} */ v) => {
      if (typeof v === "number") out[k] = (/** @type {number} */ (out[k] ?? 0)) + v;
    };
    report.forEach((s) => {
      if (s.kind !== "video") return;
      if (s.type === "inbound-rtp") {
        for (const k of ["framesDecoded", "framesReceived", "framesDropped", "freezeCount", "totalFreezesDuration", "nackCount", "pliCount", "firCount", "packetsLost", "packetsReceived", "bytesReceived", "retransmittedPacketsReceived", "jitterBufferDelay", "jitterBufferEmittedCount"]) add(`in.${k}`, s[k]);
        out["in.size"] = `${s.frameWidth ?? 0}x${s.frameHeight ?? 0}`;
      } else if (s.type === "outbound-rtp") {
        for (const k of ["framesSent", "framesEncoded", "nackCount", "pliCount", "firCount", "packetsSent", "bytesSent", "retransmittedPacketsSent", "keyFramesEncoded"]) add(`out.${k}`, s[k]);
        out["out.size"] = `${s.frameWidth ?? 0}x${s.frameHeight ?? 0}`;
        out["out.limit"] = s.qualityLimitationReason ?? "";
      }
    });
    return out;
  });
}

/**
 * The figures of one window, from getStats snapshots of the phone and the console taken at its
 * start and end.
 * @param {Record<string, any>} p0 @param {Record<string, any>} c0
 * @param {Record<string, any>} p1 @param {Record<string, any>} c1
 * @param {number} seconds
 */
function window_(p0, c0, p1, c1, seconds) {
  const d = (/** @type {Record<string, any>} */ a, /** @type {Record<string, any>} */ b, /** @type {string} */ k) => (b[k] ?? 0) - (a[k] ?? 0);
  const sent = d(p0, p1, "out.framesSent");
  const decoded = d(c0, c1, "in.framesDecoded");
  return {
    sent,
    decoded,
    decodedPct: sent > 0 ? (100 * decoded) / sent : 0,
    freezes: d(c0, c1, "in.freezeCount"),
    freezeSeconds: d(c0, c1, "in.totalFreezesDuration"),
    nacksSent: d(c0, c1, "in.nackCount"),
    nacksToPhone: d(p0, p1, "out.nackCount"),
    plisSent: d(c0, c1, "in.pliCount") + d(c0, c1, "in.firCount"),
    plisToPhone: d(p0, p1, "out.pliCount") + d(p0, p1, "out.firCount"),
    rtxByPhone: d(p0, p1, "out.retransmittedPacketsSent"),
    keyframes: d(p0, p1, "out.keyFramesEncoded"),
    lostAtConsole: d(c0, c1, "in.packetsLost"),
    // What the console's smoothness costs in latency: its mean jitter-buffer delay per frame.
    bufferMs: Math.round((1000 * d(c0, c1, "in.jitterBufferDelay")) / Math.max(1, d(c0, c1, "in.jitterBufferEmittedCount"))),
    kbps: Math.round((8 * d(c0, c1, "in.bytesReceived")) / seconds / 1000),
    phoneKbps: Math.round((8 * d(p0, p1, "out.bytesSent")) / seconds / 1000),
    sentSize: String(p1["out.size"] ?? ""),
    size: String(c1["in.size"] ?? ""),
    limit: String(p1["out.limit"] ?? ""),
  };
}

// ------------------------------------------------------------- 720p file --

/**
 * A 30 fps y4m clip (ffmpeg's moving test pattern, 4 s, looped by Chromium) for the fake camera;
 * made once per size. Chromium's own fake pattern is mostly still and, asked for 1280×720 as
 * customer.js asks, sends 1280×720 at 20 fps: a file fixes the size and the motion.
 * @param {"640x480" | "1280x720"} size
 */
export function videoFile(size) {
  const file = join(tmpdir(), `lens-quality-${size}p30.y4m`);
  if (existsSync(file)) return file;
  const part = `${file}.part`;
  execFileSync("ffmpeg", ["-v", "error", "-y", "-f", "lavfi", "-i", `testsrc2=size=${size}:rate=30`, "-t", "4", "-pix_fmt", "yuv420p", "-f", "yuv4mpegpipe", part]);
  execFileSync("mv", [part, file]);
  return file;
}

// ------------------------------------------------------------ the targets --

/**
 * A session whose media can be impaired: `ports` to drop on, the two pages to read.
 * @typedef {{ports: string, phone: import("playwright-core").Page, console: import("playwright-core").Page, close: () => Promise<void>}} Session
 */

/**
 * Several sessions on one server: `pid` is the server's process (for its CPU), `ports` the media
 * port(s) to impair.
 * @typedef {{ports: string, pid: number, sessions: {phone: import("playwright-core").Page, console: import("playwright-core").Page}[], close: () => Promise<void>}} Sessions
 */

/**
 * One session of `sessions` as a `Session`.
 * @param {Sessions} all
 * @returns {Session}
 */
function single(all) {
  return { ports: all.ports, phone: all.sessions[0].phone, console: all.sessions[0].console, close: all.close };
}

/**
 * A lens server (its own, media on a fixed free port) with a technician; the phone joins by PIN
 * through the real pages, as in media.mjs.
 * @param {import("playwright-core").Browser} browser
 * @param {Relay | null} relay
 * @returns {Promise<Session>}
 */
export async function lensSession(browser, relay) {
  return single(await lensSessions(browser, relay, 1));
}

/**
 * `count` sessions on one lens server (its own, media on a fixed free port), each with its own
 * technician (own group, audio on), console page and phone page; each phone joins by PIN through
 * the real pages and is picked up, as in media.mjs.
 * @param {import("playwright-core").Browser} browser
 * @param {Relay | null} relay
 * @param {number} count
 * @returns {Promise<Sessions>}
 */
export async function lensSessions(browser, relay, count) {
  const port = await freeUdpPort();
  const server = await startServer({ env: { LENS_MEDIA_UDP_PORT: String(port) } });
  /** @type {import("playwright-core").BrowserContext[]} */
  const contexts = [];
  const close = async () => {
    for (const c of contexts) await c.close().catch(() => {});
    await server.stop();
  };
  try {
    const sessions = [];
    for (let i = 0; i < count; i++) {
      // "ada", "ada2", ...: the phone page greets the technician by this nickname.
      const local = i === 0 ? "ada" : `ada${i + 1}`;
      const nickname = local.charAt(0).toUpperCase() + local.slice(1);
      const name = i === 0 ? "Quality" : `Quality ${i + 1}`;
      const tech = await technicianWithAudio(server.url, `${local}@example.com`);
      const techContext = await browser.newContext({ viewport: { width: 1280, height: 800 } });
      contexts.push(techContext);
      await instrument(techContext);
      const consolePage = await consoleLogin(techContext, server.url, tech);
      const pin = await createPinSession(consolePage, name);
      const phoneContext = await browser.newContext({ viewport: { width: 390, height: 844 } });
      contexts.push(phoneContext);
      await instrument(phoneContext);
      if (relay) await throughRelay(phoneContext, relay);
      const phone = await customerJoins(phoneContext, server.url, pin);
      await pickUp(consolePage, name);
      await phone.getByText(`Connected to ${nickname}`).waitFor({ timeout: STEP });
      sessions.push({ phone, console: consolePage });
    }
    return { ports: String(port), pid: server.child.pid ?? 0, sessions, close };
  } catch (e) {
    await close();
    throw e;
  }
}

/** Where Debian (and a source install) put Janus' plugins and transports. */
const JANUS_LIBS = ["/usr/lib/x86_64-linux-gnu/janus", "/usr/lib/aarch64-linux-gnu/janus", "/usr/lib/janus", "/usr/local/lib/janus"];

/**
 * Janus with only the VideoRoom plugin and the HTTP transport on 127.0.0.1; media on a range of
 * 20 UDP ports (so that loss can be put on exactly those) on this machine's own address (Janus'
 * ICE skips loopback).
 */
async function startJanus() {
  const lib = JANUS_LIBS.find((d) => existsSync(join(d, "plugins/libjanus_videoroom.so")));
  if (!lib) throw new Error("Janus' VideoRoom plugin not found (apt-get install janus)");
  const dir = mkdtempSync(join(tmpdir(), "lens-quality-janus-"));
  for (const sub of ["plugins", "transports", "events", "loggers"]) mkdirSync(join(dir, sub));
  execFileSync("ln", ["-s", join(lib, "plugins/libjanus_videoroom.so"), join(dir, "plugins")]);
  execFileSync("ln", ["-s", join(lib, "transports/libjanus_http.so"), join(dir, "transports")]);
  const ip = await ownAddress();
  const httpPort = await new Promise((ok) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const a = s.address();
      s.close(() => ok(typeof a === "object" && a ? a.port : 0));
    });
  });
  const low = 42000 + Math.floor(Math.random() * 1000) * 20;
  const high = low + 19;
  const d = dir;
  writeFileSync(
    join(dir, "janus.jcfg"),
    `general: {\n configs_folder = "${d}"\n plugins_folder = "${d}/plugins"\n transports_folder = "${d}/transports"\n` +
      ` events_folder = "${d}/events"\n loggers_folder = "${d}/loggers"\n debug_level = 3\n session_timeout = 60\n}\n` +
      `certificates: {\n}\nmedia: {\n rtp_port_range = "${low}-${high}"\n}\n` +
      `nat: {\n nice_debug = false\n ice_enforce_list = "${ip}"\n ignore_mdns = true\n}\n` +
      `plugins: {\n}\ntransports: {\n}\nevents: {\n}\nloggers: {\n}\n`,
  );
  writeFileSync(join(dir, "janus.plugin.videoroom.jcfg"), "general: {\n}\n");
  writeFileSync(
    join(dir, "janus.transport.http.jcfg"),
    `general: {\n json = "compact"\n base_path = "/janus"\n http = true\n port = ${httpPort}\n ip = "127.0.0.1"\n https = false\n}\n` +
      `admin: {\n admin_http = false\n admin_https = false\n}\ncors: {\n}\n`,
  );
  const log = join(dir, "janus.log");
  const child = spawn("janus", [`--configs-folder=${dir}`, `--config=${join(dir, "janus.jcfg")}`, `--log-file=${log}`, `--interface=${ip}`, "--disable-stdout", "--disable-colors"], { stdio: "ignore" });
  const exited = new Promise((r) => child.once("exit", r));
  const url = `http://127.0.0.1:${httpPort}/janus`;
  const tail = () => (existsSync(log) ? readFileSync(log, "utf8").split("\n").slice(-20).join("\n") : "");
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`janus exited at start:\n${tail()}`);
    try {
      const r = await fetch(`${url}/info`);
      if (r.ok) break;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`janus did not answer on ${url}:\n${tail()}`);
    }
    await sleep(200);
  }
  return {
    url,
    ip,
    ports: `${low}:${high}`,
    pid: child.pid ?? 0,
    stop: async () => {
      child.kill("SIGTERM");
      await Promise.race([exited, sleep(5000)]);
      if (child.exitCode === null) child.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A Janus API session over HTTP: requests, and a long-poll loop that collects the events. */
class JanusClient {
  /** @param {string} url */
  constructor(url) {
    this.url = url;
    this.session = 0;
    this.n = 0;
    /** @type {any[]} */
    this.events = [];
    this.polling = false;
  }

  /** @param {string} path @param {Record<string, unknown>} body */
  async post(path, body) {
    const transaction = `t${++this.n}`;
    const r = await fetch(`${this.url}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ ...body, transaction }) });
    const reply = await r.json();
    if (reply.janus === "error") throw new Error(`Janus refused ${body.janus}: ${JSON.stringify(reply.error)}`);
    return { reply, transaction };
  }

  async start() {
    this.session = (await this.post("", { janus: "create" })).reply.data.id;
    this.polling = true;
    (async () => {
      while (this.polling) {
        try {
          const r = await fetch(`${this.url}/${this.session}?maxev=10`);
          const got = await r.json();
          this.events.push(...(Array.isArray(got) ? got : [got]));
        } catch {
          await sleep(200);
        }
      }
    })();
  }

  async attach() {
    return (await this.post(`/${this.session}`, { janus: "attach", plugin: "janus.plugin.videoroom" })).reply.data.id;
  }

  /**
   * A VideoRoom request; for the asynchronous ones ("ack"), waits for the event that answers it.
   * @param {number} handle @param {Record<string, unknown>} body @param {RTCSessionDescriptionInit} [jsep]
   */
  async message(handle, body, jsep) {
    const { reply, transaction } = await this.post(`/${this.session}/${handle}`, { janus: "message", body, ...(jsep ? { jsep } : {}) });
    if (reply.janus !== "ack") return reply;
    const deadline = Date.now() + STEP;
    for (;;) {
      const i = this.events.findIndex((e) => e.transaction === transaction && e.janus === "event");
      if (i >= 0) {
        const [e] = this.events.splice(i, 1);
        if (e.plugindata?.data?.error) throw new Error(`VideoRoom refused ${body.request}: ${e.plugindata.data.error}`);
        return e;
      }
      if (Date.now() > deadline) throw new Error(`no Janus event for ${body.request}`);
      await sleep(50);
    }
  }

  async close() {
    this.polling = false;
    await this.post(`/${this.session}`, { janus: "destroy" }).catch(() => {});
  }
}

/**
 * A blank page on 127.0.0.1 (a secure context: getUserMedia works) in a fresh context.
 * @param {import("playwright-core").Browser} browser
 * @param {string} base
 * @param {Relay | null} relay
 */
async function blankPage(browser, base, relay) {
  const context = await browser.newContext();
  await instrument(context);
  if (relay) await throughRelay(context, relay);
  const page = await context.newPage();
  await page.goto(base);
  return { context, page };
}

/**
 * The same phone → technician path through Janus' VideoRoom: the phone page publishes its camera
 * and microphone as web/js/customer.js does (same constraints, maintain-resolution), the console
 * page subscribes and shows the video in a <video> element.
 * @param {import("playwright-core").Browser} browser
 * @param {Relay | null} relay
 * @returns {Promise<Session>}
 */
export async function janusSession(browser, relay) {
  return single(await janusSessions(browser, relay, 1));
}

/**
 * `count` such sessions on one Janus, one VideoRoom each.
 * @param {import("playwright-core").Browser} browser
 * @param {Relay | null} relay
 * @param {number} count
 * @returns {Promise<Sessions>}
 */
export async function janusSessions(browser, relay, count) {
  const janus = await startJanus();
  const http = createServer((_q, r) => r.end("<!doctype html><title>quality</title><video autoplay muted playsinline></video>"));
  await new Promise((ok) => http.listen(0, "127.0.0.1", () => ok(undefined)));
  const a = http.address();
  const base = `http://127.0.0.1:${typeof a === "object" && a ? a.port : 0}/`;
  const client = new JanusClient(janus.url);
  /** @type {import("playwright-core").BrowserContext[]} */
  const contexts = [];
  const close = async () => {
    await client.close();
    for (const c of contexts) await c.close().catch(() => {});
    http.close();
    await janus.stop();
  };
  try {
    await client.start();
    const sessions = [];
    for (let i = 0; i < count; i++) sessions.push(await janusRoom(browser, client, base, relay, contexts));
    return { ports: janus.ports, pid: janus.pid, sessions, close };
  } catch (e) {
    await close();
    throw e;
  }
}

/**
 * One VideoRoom with the phone publishing and the console subscribed.
 * @param {import("playwright-core").Browser} browser
 * @param {JanusClient} client
 * @param {string} base
 * @param {Relay | null} relay
 * @param {import("playwright-core").BrowserContext[]} contexts where the pages' contexts go
 */
async function janusRoom(browser, client, base, relay, contexts) {
  const pub = await client.attach();
  const room = 1000 + Math.floor(Math.random() * 1e6);
  await client.message(pub, { request: "create", room, publishers: 1, bitrate: 0, fir_freq: 0, audiocodec: "opus", videocodec: "vp8", is_private: true });
  const joined = await client.message(pub, { request: "join", room, ptype: "publisher", display: "phone" });
  const feed = joined.plugindata.data.id;

  const phone = await blankPage(browser, base, relay);
  contexts.push(phone.context);
  const offer = await phone.page.evaluate(async () => {
    const w = /** @type {any} */ (window);
    const camera = await navigator.mediaDevices.getUserMedia({
      video: { facingMode: { ideal: "environment" }, width: { ideal: 1280 }, height: { ideal: 720 } },
      audio: { echoCancellation: true, noiseSuppression: true },
    });
    const pc = new RTCPeerConnection();
    w.pc = pc;
    const tx = pc.addTransceiver(camera.getVideoTracks()[0], { direction: "sendonly", streams: [camera] });
    const params = tx.sender.getParameters();
    params.degradationPreference = "maintain-resolution";
    await tx.sender.setParameters(params).catch(() => {});
    pc.addTransceiver(camera.getAudioTracks()[0], { direction: "sendrecv", streams: [camera] });
    await pc.setLocalDescription(await pc.createOffer());
    // Non-trickle: the offer carries every candidate.
    await new Promise((r) => (pc.iceGatheringState === "complete" ? r(undefined) : pc.addEventListener("icegatheringstatechange", () => pc.iceGatheringState === "complete" && r(undefined))));
    return pc.localDescription?.toJSON();
  });
  const published = await client.message(pub, { request: "publish", audio: true, video: true }, offer);
  await phone.page.evaluate(async (answer) => {
    await /** @type {any} */ (window).pc.setRemoteDescription(answer);
  }, published.jsep);
  await until(
    "the phone's peer connected to Janus",
    () => phone.page.evaluate(() => /** @type {any} */ (window).pc.connectionState),
    (s) => s === "connected",
  );

  const sub = await client.attach();
  const attached = await client.message(sub, { request: "join", room, ptype: "subscriber", streams: [{ feed }] });
  const tech = await blankPage(browser, base, null);
  contexts.push(tech.context);
  const answer = await tech.page.evaluate(async (offer) => {
    const w = /** @type {any} */ (window);
    const pc = new RTCPeerConnection();
    w.pc = pc;
    pc.addEventListener("track", (e) => {
      if (e.track.kind !== "video") return;
      const v = /** @type {HTMLVideoElement} */ (document.querySelector("video"));
      v.srcObject = new MediaStream([e.track]);
      v.play().catch(() => {});
    });
    await pc.setRemoteDescription(offer);
    await pc.setLocalDescription(await pc.createAnswer());
    await new Promise((r) => (pc.iceGatheringState === "complete" ? r(undefined) : pc.addEventListener("icegatheringstatechange", () => pc.iceGatheringState === "complete" && r(undefined))));
    return pc.localDescription?.toJSON();
  }, attached.jsep);
  await client.message(sub, { request: "start", room }, answer);
  return { phone: phone.page, console: tech.page };
}

// ----------------------------------------------------------- measurement --

/**
 * Waits until the console decodes, lets the phone's bandwidth estimate settle for `warmup` ms,
 * then measures `phases` one after the other (each: loss on for `seconds`, getStats on both
 * pages at its start and end). Loss is removed in any case.
 * @param {Session} session
 * @param {{loss: number}[]} phases
 * @param {number} seconds
 * @param {number} [warmup]
 */
export async function measure(session, phases, seconds, warmup = 5000) {
  await until(
    "the console decodes video",
    async () => (await videoStats(session.console))["in.framesDecoded"] ?? 0,
    (n) => Number(n) >= 20,
    STEP * 2,
  );
  await sleep(warmup);
  const results = [];
  for (const phase of phases) {
    const removeLoss = randomLoss(session.ports, phase.loss);
    try {
      const [p0, c0] = await Promise.all([videoStats(session.phone), videoStats(session.console)]);
      const t0 = Date.now();
      await sleep(seconds * 1000);
      const [p1, c1] = await Promise.all([videoStats(session.phone), videoStats(session.console)]);
      results.push({ ...window_(p0, c0, p1, c1, (Date.now() - t0) / 1000), load: loadavg()[0] });
    } finally {
      removeLoss();
    }
  }
  return results;
}

/**
 * One browser (its fake camera: Chromium's pattern or the 720p file), one session of `target`,
 * the phases measured, everything closed.
 * @param {Condition["target"]} target
 * @param {Condition["video"]} video
 * @param {Shaping} shaping
 * @param {{loss: number}[]} phases
 * @param {number} seconds
 */
export async function run(target, video, shaping, phases, seconds) {
  const size = video === "720p" ? "1280x720" : video === "480p" ? "640x480" : null;
  const extra = size ? [`--use-file-for-fake-video-capture=${videoFile(size)}`] : [];
  const chromium = await launch(extra);
  const relay = shaping.rateKbps || shaping.delayMs || shaping.loss ? new Relay(shaping) : null;
  try {
    const session = target === "lens" ? await lensSession(chromium.browser, relay) : await janusSession(chromium.browser, relay);
    try {
      const figures = await measure(session, phases, seconds);
      // A relay nobody used would measure the unshaped path under the shaped label.
      if (relay && relay.up.passed === 0) throw new Error("the phone's media did not go through the relay");
      return figures.map((f) => ({ ...f, relayDropped: relay ? relay.up.dropped + relay.down.dropped : 0 }));
    } finally {
      await session.close();
    }
  } finally {
    relay?.close();
    await chromium.close();
  }
}

// ------------------------------------------------------------------ CLI --

const COLUMNS = [
  ["target", 6],
  ["video", 9],
  ["loss", 5],
  ["cap", 6],
  ["delay", 5],
  ["sent", 5],
  ["decoded", 7],
  ["dec%", 6],
  ["freezes", 7],
  ["frz s", 6],
  ["NACK c→s", 8],
  ["NACK →ph", 8],
  ["PLI c→s", 7],
  ["PLI →ph", 7],
  ["RTX ph", 6],
  ["kf", 4],
  ["lost c", 6],
  ["buf ms", 6],
  ["kbit/s", 6],
  ["relay drop", 10],
  ["load1", 5],
];

/** @param {Record<string, any>} r */
function row(r) {
  const cells = [
    r.target,
    r.size || r.video,
    `${(r.loss * 100).toFixed(0)}%`,
    r.capKbps ? `${r.capKbps}k` : "-",
    r.delayMs ? `${r.delayMs}ms` : "-",
    r.sent,
    r.decoded,
    r.decodedPct.toFixed(1),
    r.freezes,
    r.freezeSeconds.toFixed(2),
    r.nacksSent,
    r.nacksToPhone,
    r.plisSent,
    r.plisToPhone,
    r.rtxByPhone,
    r.keyframes,
    r.lostAtConsole,
    r.bufferMs,
    r.kbps,
    r.relayDropped,
    r.load.toFixed(2),
  ];
  return cells.map((c, i) => String(c).padStart(Number(COLUMNS[i][1]))).join(" ");
}

/** The table of measured rows, as printed by the CLI. @param {Record<string, any>[]} rows */
export function table(rows) {
  const head = COLUMNS.map(([name, w]) => String(name).padStart(Number(w))).join(" ");
  return [head, ...rows.map(row)].join("\n");
}

async function main() {
  /** @type {Record<string, string>} */
  const args = {};
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--together") args.together = "1";
    else if (a === "-h" || a === "--help") {
      console.log(readFileSync(new URL(import.meta.url), "utf8").split("\n").filter((l) => l.startsWith("//")).join("\n"));
      return;
    } else if (a.startsWith("--") && i + 1 < argv.length) args[a.slice(2)] = argv[++i];
    else throw new Error(`unknown argument ${a} (see --help)`);
  }
  const targets = /** @type {Condition["target"][]} */ ((args.target ?? "lens,janus").split(","));
  const video = /** @type {Condition["video"]} */ (args.video ?? "480p");
  const losses = (args.loss ?? "0.03,0.10").split(",").map(Number);
  const capKbps = Number(args["cap-kbps"] ?? 0);
  const delayMs = Number(args["delay-ms"] ?? 0);
  const relayLoss = Number(args["relay-loss"] ?? 0);
  const seconds = Number(args.seconds ?? 30);
  for (const t of targets) if (t !== "lens" && t !== "janus") throw new Error(`--target: lens or janus, not ${t}`);
  if (!["480p", "720p", "fake"].includes(video)) throw new Error("--video: 480p, 720p or fake");
  const phases = losses.map((loss) => ({ loss }));
  const shaping = { rateKbps: capKbps, delayMs, loss: relayLoss };
  console.log(`# ${targets.join(" + ")}${args.together ? " side by side" : ""}, ${video}, loss ${losses.join("/")}, cap ${capKbps || "-"} kbit/s, delay ${delayMs} ms, phone-only loss ${relayLoss}, ${seconds} s per phase`);
  /** @type {Record<string, any>[]} */
  const rows = [];
  const one = async (/** @type {Condition["target"]} */ target) => {
    const figures = await run(target, video, shaping, phases, seconds);
    const out = figures.map((f, i) => ({ target, video, loss: phases[i].loss, capKbps, delayMs, ...f }));
    for (const r of out) console.error(`${row(r)}`);
    return out;
  };
  if (args.together) {
    for (const r of await Promise.all(targets.map(one))) rows.push(...r);
  } else {
    for (const t of targets) rows.push(...(await one(t)));
  }
  console.log(table(rows));
  if (args.json) writeFileSync(args.json, JSON.stringify(rows, null, 2));
}

runIfScript(import.meta.url, main);
