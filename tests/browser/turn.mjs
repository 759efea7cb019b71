// Issue 14 item 2: TURN for clients. Debian's coturn runs on 127.0.0.1 with `use-auth-secret`
// (the secret lens holds as media.turn_secret); lens hands out `ice_servers` with credentials it
// mints and `ice_transport_policy: "relay"`. A Chromium customer and console then stream video
// and two-way audio through coturn only (their selected candidates are relay candidates), once
// with TURN over UDP and once over TCP. Then raw TURN Allocate requests show that coturn accepts
// lens's credential and refuses an expired one and forged ones.
//
// TURN over TLS (`turns:`): coturn also listens for TLS with a self-signed certificate made by
// this test (openssl). A Chromium without a flag refuses it (no relay candidate, ICE error 701):
// the certificate is checked. The browser for the `turns:` session trusts exactly that key
// (`--ignore-certificate-errors-spki-list`, its SPKI hash), and UDP to lens's media port is
// dropped (iptables, root) except from coturn's relay ports: the media can only go phone →
// TLS → coturn → lens.
//
// `allow-loopback-peers` is for this test only: in production coturn must not relay to loopback
// or private addresses (README, "TURN").

import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { createHash, createHmac, randomBytes } from "node:crypto";
import { createSocket } from "node:dgram";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import {
  consoleLogin,
  createPinSession,
  customerJoins,
  freePort,
  instrument,
  IPTABLES,
  launch,
  mediaStats,
  pickUp,
  requireChromium,
  requireIptables,
  startServer,
  STEP,
  technicianWithAudio,
  until,
} from "./harness.mjs";

const TURNSERVER = process.env.LENS_TEST_TURNSERVER ?? "/usr/bin/turnserver";
const REALM = "lens.test";
const SECRET = `turn-${randomBytes(12).toString("hex")}`;

/** Skips (locally) or fails (CI=true) when coturn is missing. */
function requireTurnserver() {
  if (existsSync(TURNSERVER)) return true;
  if (process.env.CI === "true") throw new Error(`${TURNSERVER} not found but CI=true: run ./scripts/test (APT_PACKAGES has coturn)`);
  return false;
}

const OPENSSL = ["/usr/bin/openssl", "/bin/openssl"].find((p) => existsSync(p));

/** Skips (locally) or fails (CI=true) when openssl (coturn's test certificate) is missing. */
function requireOpenssl() {
  if (OPENSSL) return true;
  if (process.env.CI === "true") throw new Error("openssl not found but CI=true: run ./scripts/test (APT_PACKAGES has openssl)");
  return false;
}

const have = requireChromium() && requireTurnserver() && requireOpenssl();

/** @type {{port: number, tlsPort: number, spki: string, relayPorts: string, stop: () => Promise<void>, log: () => string}} */
let turn;
/** @type {import("./harness.mjs").Browser} */
let chromium;

/**
 * A self-signed certificate for 127.0.0.1 in `dir` (cert.pem, key.pem), and the base64 SHA-256
 * of its public key (what `--ignore-certificate-errors-spki-list` takes).
 * @param {string} dir
 */
function makeCertificate(dir) {
  const ssl = (/** @type {string[]} */ args, /** @type {Buffer | undefined} */ input = undefined) => execFileSync(/** @type {string} */ (OPENSSL), args, { input, stdio: ["pipe", "pipe", "pipe"] });
  ssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem")]);
  const publicKey = ssl(["x509", "-in", join(dir, "cert.pem"), "-pubkey", "-noout"]);
  const der = ssl(["pkey", "-pubin", "-outform", "der"], publicKey);
  return createHash("sha256").update(der).digest("base64");
}

/**
 * coturn in the foreground on 127.0.0.1: a free port for UDP and TCP, another for TLS (a
 * certificate made here), relays on 127.0.0.1.
 */
async function startTurn() {
  const dir = mkdtempSync(join(tmpdir(), "lens-turn-"));
  const spki = makeCertificate(dir);
  const port = await freePort();
  const tlsPort = await freePort();
  // Relay ports: a random block of 200 well away from the ephemeral range's start.
  const min = 30000 + Math.floor(Math.random() * 150) * 200;
  const conf = [
    "listening-ip=127.0.0.1",
    `listening-port=${port}`,
    "relay-ip=127.0.0.1",
    `min-port=${min}`,
    `max-port=${min + 199}`,
    "use-auth-secret",
    `static-auth-secret=${SECRET}`,
    `realm=${REALM}`,
    "fingerprint",
    `tls-listening-port=${tlsPort}`,
    `cert=${join(dir, "cert.pem")}`,
    `pkey=${join(dir, "key.pem")}`,
    "no-tlsv1",
    "no-tlsv1_1",
    "no-dtls",
    "no-cli",
    "no-multicast-peers",
    // Test only: the peers (lens, the browsers) are on loopback.
    "allow-loopback-peers",
    `pidfile=${join(dir, "turnserver.pid")}`,
    `userdb=${join(dir, "turndb")}`,
    "log-file=stdout",
    "simple-log",
  ].join("\n");
  writeFileSync(join(dir, "turnserver.conf"), `${conf}\n`);
  let output = "";
  const child = spawn(TURNSERVER, ["-c", join(dir, "turnserver.conf")], { stdio: ["ignore", "pipe", "pipe"] });
  child.stdout.on("data", (d) => (output += d));
  child.stderr.on("data", (d) => (output += d));
  const exited = new Promise((r) => child.once("exit", r));
  const deadline = Date.now() + 15_000;
  const listens = (/** @type {number} */ p) =>
    new Promise((r) => {
      const s = connect(p, "127.0.0.1", () => {
        s.destroy();
        r(true);
      });
      s.once("error", () => r(false));
    });
  for (;;) {
    if (child.exitCode !== null) throw new Error(`turnserver exited (${child.exitCode}):\n${output}`);
    if ((await listens(port)) && (await listens(tlsPort))) break;
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`turnserver did not listen on ${port} and ${tlsPort}:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    port,
    tlsPort,
    spki,
    relayPorts: `${min}:${min + 199}`,
    log: () => output,
    stop: async () => {
      child.kill("SIGTERM");
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5_000))]);
      if (child.exitCode === null) child.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

before(async () => {
  if (!have) return;
  turn = await startTurn();
  chromium = await launch();
});

after(async () => {
  if (!have) return;
  await chromium?.close();
  await turn?.stop();
});

/**
 * The selected candidate pair of the page's last peer connection: local candidate type and, for
 * a relay candidate, the protocol to the TURN server.
 * @param {import("playwright-core").Page} page
 */
async function selectedPair(page) {
  return page.evaluate(async () => {
    const pcs = /** @type {RTCPeerConnection[]} */ (/** @type {any} */ (window).__lensPcs ?? []);
    const pc = pcs[pcs.length - 1];
    if (!pc) return null;
    const report = await pc.getStats();
    /** @type {any} */
    let pair = null;
    report.forEach((s) => {
      if (s.type === "transport" && s.selectedCandidatePairId) pair = report.get(s.selectedCandidatePairId);
    });
    if (!pair) return null;
    const local = report.get(pair.localCandidateId);
    const remote = report.get(pair.remoteCandidateId);
    return {
      local: local?.candidateType,
      relayProtocol: local?.relayProtocol,
      remote: `${remote?.address}:${remote?.port}`,
    };
  });
}

/**
 * The RTCConfiguration the page's last peer connection was made with.
 * @param {import("playwright-core").Page} page
 * @returns {Promise<RTCConfiguration>}
 */
async function pcConfig(page) {
  return page.evaluate(() => {
    const all = /** @type {any} */ (window).__lensPcConfigs ?? [];
    return all[all.length - 1];
  });
}

/**
 * The lens-side URL of coturn for `transport`: TURN over UDP or TCP, or `turns:` (TLS over TCP).
 * @param {"udp" | "tcp" | "tls"} transport
 */
function turnUrl(transport) {
  return transport === "tls" ? `turns:127.0.0.1:${turn.tlsPort}?transport=tcp` : `turn:127.0.0.1:${turn.port}?transport=${transport}`;
}

/** @param {string[]} args */
function iptables(...args) {
  execFileSync(/** @type {string} */ (IPTABLES), ["-w", ...args], { stdio: "pipe" });
}

/**
 * A whole session through coturn with `transport` ("udp", "tcp" or "tls"), its pages in
 * `browser`; returns the customer's TURN server as lens configured it. With `blockUdp`, UDP to
 * lens's media port is dropped unless it comes from coturn's relay ports.
 * @param {"udp" | "tcp" | "tls"} transport
 * @param {import("./harness.mjs").Browser} browser
 * @param {{blockUdp?: boolean}} [options]
 */
async function sessionThroughTurn(transport, browser = chromium, options = {}) {
  const mediaPort = await freePort();
  const server = await startServer({
    config: [
      "[media]",
      'ice_transport_policy = "relay"',
      "",
      "[[media.ice_servers]]",
      `urls = ["${turnUrl(transport)}"]`,
      'auth = "secret"',
      "",
    ].join("\n"),
    env: { LENS_MEDIA_TURN_SECRET: SECRET, LENS_MEDIA_UDP_PORT: String(mediaPort) },
  });
  // Port-specific, removed in `finally`.
  const rule = ["INPUT", "-p", "udp", "--dport", String(mediaPort), "!", "--sport", turn.relayPorts, "-j", "DROP"];
  let blocked = false;
  try {
    if (options.blockUdp) {
      iptables("-I", ...rule);
      blocked = true;
    }
    const tech = await technicianWithAudio(server.url, `turn-${transport}@example.com`);
    const consoleContext = await browser.browser.newContext({ viewport: { width: 1280, height: 800 } });
    await instrument(consoleContext);
    const consolePage = await consoleLogin(consoleContext, server.url, tech);
    const name = `Customer via TURN ${transport}`;
    const pin = await createPinSession(consolePage, name);
    const phoneContext = await browser.browser.newContext({ viewport: { width: 390, height: 844 } });
    await instrument(phoneContext);
    const phone = await customerJoins(phoneContext, server.url, pin);
    const pickedUp = Date.now();
    await pickUp(consolePage, name);

    const phoneUp = await until("customer media connected", () => mediaStats(phone), (s) => s?.state === "connected");
    const phoneMs = Date.now() - pickedUp;
    void phoneUp;
    await until("console media connected", () => mediaStats(consolePage), (s) => s?.state === "connected");
    const consoleMs = Date.now() - pickedUp;

    // Both pages were configured by lens: relay only, its TURN URL, credentials it minted.
    for (const [page, who] of [
      [phone, /^\d+:s\d+$/],
      [consolePage, /^\d+:u\d+$/],
    ]) {
      const config = await pcConfig(/** @type {import("playwright-core").Page} */ (page));
      assert.equal(config.iceTransportPolicy, "relay", JSON.stringify(config));
      const servers = config.iceServers ?? [];
      assert.equal(servers.length, 1, JSON.stringify(config));
      const server0 = /** @type {RTCIceServer & {username: string, credential: string}} */ (servers[0]);
      assert.deepEqual(server0.urls, [turnUrl(transport)]);
      assert.match(server0.username, /** @type {RegExp} */ (who));
      const expiry = Number(server0.username.split(":")[0]);
      const now = Date.now() / 1000;
      assert.ok(expiry > now + 3500 && expiry < now + 3700, `expiry ${expiry} is not now + 1 h`);
      const expected = createHmac("sha1", SECRET).update(server0.username).digest("base64");
      assert.equal(server0.credential, expected, "the credential is not base64(HMAC-SHA1(secret, username))");
    }

    // The media goes through coturn: both selected pairs use a relay candidate over `transport`.
    for (const [page, who] of [
      [phone, "customer"],
      [consolePage, "console"],
    ]) {
      const pair = await until(`${who}'s selected pair`, () => selectedPair(/** @type {any} */ (page)), (p) => p !== null);
      assert.equal(pair?.local, "relay", `${who}: ${JSON.stringify(pair)}`);
      assert.equal(pair?.relayProtocol, transport, `${who}: ${JSON.stringify(pair)}`);
    }

    const tech2 = await until(
      "50 decoded frames at the technician",
      () => mediaStats(consolePage),
      (s) => (s?.["inbound-rtp-video"]?.framesDecoded ?? 0) >= 50,
    );
    const video = tech2?.["inbound-rtp-video"];
    assert.ok(video.frameWidth > 0 && video.frameHeight > 0, JSON.stringify(video));
    const audio = await until(
      "audio packets both ways",
      async () => [await mediaStats(consolePage), await mediaStats(phone)],
      ([c, p]) => (c?.["inbound-rtp-audio"]?.packets ?? 0) >= 50 && (p?.["inbound-rtp-audio"]?.packets ?? 0) >= 50,
    );
    const framesMs = Date.now() - pickedUp;
    console.log(
      `TURN ${transport}: customer connected ${phoneMs} ms after pickup, console ${consoleMs} ms, ` +
        `50 frames decoded (${video.frameWidth}x${video.frameHeight}) by ${framesMs} ms; audio packets at the technician ` +
        `${audio[0]["inbound-rtp-audio"].packets}, at the customer ${audio[1]["inbound-rtp-audio"].packets}`,
    );
    const phoneIce = await pcConfig(phone);
    await consolePage.getByRole("button", { name: "End", exact: true }).click();
    await phone.getByText("The technician ended the session").waitFor({ timeout: STEP });
    await phoneContext.close();
    await consoleContext.close();
    // The shared secret is in no log line of lens.
    assert.ok(!server.log().includes(SECRET), "the TURN secret is in lens's log");
    return /** @type {RTCIceServer & {username: string, credential: string}} */ ((phoneIce.iceServers ?? [])[0]);
  } catch (e) {
    const err = /** @type {Error} */ (e);
    err.message += `\n--- coturn log (tail) ---\n${turn.log().slice(-3000)}\n--- lens log (tail) ---\n${server.log().slice(-2000)}`;
    throw err;
  } finally {
    if (blocked) iptables("-D", ...rule);
    await server.stop();
  }
}

// ---------------------------------------------------------------- TURN on the wire (RFC 5766) --

const MAGIC = 0x2112a442;

/**
 * @param {number} type
 * @param {Buffer} txid
 * @param {[number, Buffer][]} attrs
 * @param {Buffer | null} key MESSAGE-INTEGRITY key, or none
 */
function stunMessage(type, txid, attrs, key) {
  const body = Buffer.concat(
    attrs.map(([t, v]) => {
      const head = Buffer.alloc(4);
      head.writeUInt16BE(t, 0);
      head.writeUInt16BE(v.length, 2);
      return Buffer.concat([head, v, Buffer.alloc((4 - (v.length % 4)) % 4)]);
    }),
  );
  const header = Buffer.alloc(20);
  header.writeUInt16BE(type, 0);
  header.writeUInt16BE(body.length + (key ? 24 : 0), 2);
  header.writeUInt32BE(MAGIC, 4);
  txid.copy(header, 8);
  const message = Buffer.concat([header, body]);
  if (!key) return message;
  const mi = Buffer.alloc(4);
  mi.writeUInt16BE(0x0008, 0);
  mi.writeUInt16BE(20, 2);
  return Buffer.concat([message, mi, createHmac("sha1", key).update(message).digest()]);
}

/** @param {Buffer} msg */
function parseStun(msg) {
  const type = msg.readUInt16BE(0);
  /** @type {Map<number, Buffer>} */
  const attrs = new Map();
  for (let at = 20; at + 4 <= msg.length; ) {
    const t = msg.readUInt16BE(at);
    const len = msg.readUInt16BE(at + 2);
    attrs.set(t, msg.subarray(at + 4, at + 4 + len));
    at += 4 + len + ((4 - (len % 4)) % 4);
  }
  const err = attrs.get(0x0009);
  return { type, attrs, error: err ? err[2] * 100 + err[3] : null };
}

/**
 * One TURN Allocate over UDP from a fresh socket (a fresh 5-tuple), answering the 401 challenge
 * with `username`/`credential` when given. Returns "allocated" or the final error code.
 * @param {string | null} username
 * @param {string} [credential]
 */
async function allocate(username, credential) {
  const socket = createSocket("udp4");
  /** @type {Buffer[]} */
  const inbox = [];
  /** @type {(() => void) | null} */
  let wake = null;
  socket.on("message", (m) => {
    inbox.push(m);
    wake?.();
  });
  await new Promise((r) => socket.bind(0, "127.0.0.1", () => r(undefined)));
  /** @param {Buffer} m */
  const exchange = async (m) => {
    socket.send(m, turn.port, "127.0.0.1");
    const deadline = Date.now() + 5_000;
    while (inbox.length === 0) {
      if (Date.now() > deadline) throw new Error("no answer from coturn");
      await new Promise((r) => {
        wake = () => r(undefined);
        setTimeout(r, 200);
      });
    }
    return parseStun(/** @type {Buffer} */ (inbox.shift()));
  };
  const udp = Buffer.from([17, 0, 0, 0]);
  try {
    const first = await exchange(stunMessage(0x0003, randomBytes(12), [[0x0019, udp]], null));
    assert.equal(first.error, 401, "an Allocate without credentials is challenged");
    if (username === null) return 401;
    const realm = first.attrs.get(0x0014) ?? Buffer.from(REALM);
    const nonce = /** @type {Buffer} */ (first.attrs.get(0x0015));
    const key = createHash("md5").update(`${username}:${realm.toString()}:${credential}`).digest();
    const second = await exchange(
      stunMessage(
        0x0003,
        randomBytes(12),
        [
          [0x0019, udp],
          [0x0006, Buffer.from(username)],
          [0x0014, realm],
          [0x0015, nonce],
        ],
        key,
      ),
    );
    if (second.type === 0x0103) {
      // Release the allocation (Refresh, LIFETIME 0).
      socket.send(
        stunMessage(
          0x0004,
          randomBytes(12),
          [
            [0x000d, Buffer.alloc(4)],
            [0x0006, Buffer.from(username)],
            [0x0014, realm],
            [0x0015, nonce],
          ],
          key,
        ),
        turn.port,
        "127.0.0.1",
      );
      return "allocated";
    }
    return second.error;
  } finally {
    await new Promise((r) => setTimeout(r, 50));
    socket.close();
  }
}

/** @type {(RTCIceServer & {username: string, credential: string}) | undefined} */
let minted;

test("TURN over UDP: customer and console stream video and two-way audio through coturn (relay only)", { skip: !have }, async () => {
  minted = await sessionThroughTurn("udp");
});

test("TURN over TCP: customer and console stream video and two-way audio through coturn (relay only)", { skip: !have }, async () => {
  await sessionThroughTurn("tcp");
});

test("TURN over TLS (turns:): the test certificate is refused by a browser that does not trust it", { skip: !have }, async () => {
  const context = await chromium.browser.newContext();
  try {
    const page = await context.newPage();
    const username = `${Math.floor(Date.now() / 1000) + 3600}:s1`;
    const credential = createHmac("sha1", SECRET).update(username).digest("base64");
    const gathered = await page.evaluate(
      async ({ url, username, credential }) => {
        const pc = new RTCPeerConnection({ iceServers: [{ urls: [url], username, credential }], iceTransportPolicy: "relay" });
        /** @type {string[]} */
        const candidates = [];
        /** @type {number[]} */
        const errors = [];
        pc.onicecandidate = (e) => e.candidate && candidates.push(e.candidate.candidate);
        pc.onicecandidateerror = (e) => errors.push(/** @type {any} */ (e).errorCode);
        pc.createDataChannel("probe");
        await pc.setLocalDescription(await pc.createOffer());
        await new Promise((r) => {
          pc.addEventListener("icegatheringstatechange", () => pc.iceGatheringState === "complete" && r(undefined));
          setTimeout(r, 15_000);
        });
        pc.close();
        return { candidates, errors };
      },
      { url: turnUrl("tls"), username, credential },
    );
    assert.deepEqual(gathered.candidates, [], "no relay candidate through an untrusted certificate");
    assert.deepEqual(gathered.errors, [701], JSON.stringify(gathered));
  } finally {
    await context.close();
  }
});

test("TURN over TLS (turns:): with UDP to lens blocked, customer and console stream video and two-way audio through coturn", { skip: !have || !requireIptables() }, async () => {
  // This browser trusts exactly coturn's test key, nothing else.
  const trusting = await launch([`--ignore-certificate-errors-spki-list=${turn.spki}`]);
  try {
    await sessionThroughTurn("tls", trusting, { blockUdp: true });
  } finally {
    await trusting.close();
  }
});

test("coturn accepts lens's credentials and refuses expired and forged ones", { skip: !have }, async () => {
  assert.ok(minted, "the UDP session test handed out credentials");
  const now = Math.floor(Date.now() / 1000);
  // lens's own credential (minted for the customer of the UDP test): allocated.
  assert.equal(await allocate(minted.username, minted.credential), "allocated");
  // Expired: signed with the right secret, but its time is past.
  const expired = `${now - 60}:s1`;
  const expiredCredential = createHmac("sha1", SECRET).update(expired).digest("base64");
  assert.equal(await allocate(expired, expiredCredential), 401, "an expired credential must be refused");
  // Forged: lens's username with a later expiry, lens's credential kept.
  const [, who] = minted.username.split(":");
  assert.equal(await allocate(`${now + 86_400}:${who}`, minted.credential), 401, "a lengthened username must be refused");
  // Forged: a fresh username signed with another secret.
  const forged = `${now + 3600}:s1`;
  const forgedCredential = createHmac("sha1", `${SECRET}x`).update(forged).digest("base64");
  assert.equal(await allocate(forged, forgedCredential), 401, "a credential made with another secret must be refused");
  // No credentials at all.
  assert.equal(await allocate(null), 401);
});
