// Issue 14, item 1: a phone on a network that blocks UDP still connects, over ICE-TCP. The test
// drops every UDP datagram to the media port (`iptables -I INPUT -p udp --dport PORT -j DROP`,
// removed in `finally`; root, as in CI), then runs a whole session through the real pages: the
// console decodes the phone's camera, audio flows both ways, both browsers' selected ICE pairs
// are TCP, and GET /api/v1/sessions/{id} says `tcp` for both sides. With CI=true a missing
// iptables (or not being root) fails the test.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { after, before, test } from "node:test";
import {
  acquire,
  call,
  consoleLogin,
  createPinSession,
  customerJoins,
  freePort,
  instrument,
  IPTABLES,
  mediaStats,
  pickUp,
  release,
  requireChromium,
  requireIptables,
  startServer,
  STEP,
  technicianWithAudio,
  until,
} from "./harness.mjs";

const have = requireChromium() && requireIptables();
/** @type {import("./harness.mjs").Server} */
let server;
/** @type {import("./harness.mjs").Browser} */
let chromium;
let mediaPort = 0;

before(async () => {
  if (!have) return;
  ({ chromium } = await acquire());
  // A server of its own, on a known media port (UDP and TCP share the number).
  mediaPort = await freePort();
  server = await startServer({ env: { LENS_MEDIA_UDP_PORT: String(mediaPort) } });
});

after(async () => {
  if (!have) return;
  await server?.stop();
  await release();
});

/** @param {string[]} args */
function iptables(...args) {
  execFileSync(/** @type {string} */ (IPTABLES), ["-w", ...args], { stdio: "pipe" });
}

/**
 * The protocol of the page's selected ICE pair (its local candidate), and its candidate type.
 * @param {import("playwright-core").Page} page
 */
async function selectedPair(page) {
  return page.evaluate(async () => {
    const pcs = /** @type {RTCPeerConnection[]} */ (/** @type {any} */ (window).__lensPcs ?? []);
    const pc = pcs[pcs.length - 1];
    if (!pc) return null;
    const report = await pc.getStats();
    let pair;
    report.forEach((s) => {
      if (s.type === "transport" && s.selectedCandidatePairId) pair = report.get(s.selectedCandidatePairId);
    });
    if (!pair) return null;
    const local = report.get(pair.localCandidateId);
    const remote = report.get(pair.remoteCandidateId);
    return { protocol: local?.protocol, remote: `${remote?.protocol} ${remote?.port}`, state: pair.state };
  });
}

test("ICE-TCP: with UDP to the media port dropped, the phone's video and two-way audio reach the console over TCP", { skip: !have }, async () => {
  const rule = ["INPUT", "-p", "udp", "--dport", String(mediaPort), "-j", "DROP"];
  iptables("-I", ...rule);
  try {
    const tech = await technicianWithAudio(server.url, "tcp@example.com");
    const consoleContext = await chromium.browser.newContext({ viewport: { width: 1280, height: 800 } });
    await instrument(consoleContext);
    const consolePage = await consoleLogin(consoleContext, server.url, tech);
    const pin = await createPinSession(consolePage, "Customer behind a UDP block");
    const phoneContext = await chromium.browser.newContext({ viewport: { width: 390, height: 844 } });
    await instrument(phoneContext, "video/VP8");
    const phone = await customerJoins(phoneContext, server.url, pin);
    const picked = Date.now();
    await pickUp(consolePage, "Customer behind a UDP block");
    await phone.getByText("Connected to Tcp").waitFor({ timeout: STEP });

    const phoneUp = await until("phone media connected", () => mediaStats(phone), (s) => s?.state === "connected");
    const phoneConnectedIn = Date.now() - picked;
    await until("console media connected", () => mediaStats(consolePage), (s) => s?.state === "connected");
    const consoleConnectedIn = Date.now() - picked;
    const tech50 = await until(
      "50 decoded frames at the technician",
      () => mediaStats(consolePage),
      (s) => (s?.["inbound-rtp-video"]?.framesDecoded ?? 0) >= 50,
    );
    assert.ok(tech50["inbound-rtp-video"].frameWidth > 0, JSON.stringify(tech50));
    const audio = await until(
      "audio packets both ways",
      async () => [await mediaStats(consolePage), await mediaStats(phone)],
      ([c, p]) => (c?.["inbound-rtp-audio"]?.packets ?? 0) >= 50 && (p?.["inbound-rtp-audio"]?.packets ?? 0) >= 50,
    );
    // Both browsers could only use TCP: their selected pairs say so.
    const phonePair = await selectedPair(phone);
    const consolePair = await selectedPair(consolePage);
    assert.equal(phonePair?.protocol, "tcp", JSON.stringify(phonePair));
    assert.equal(consolePair?.protocol, "tcp", JSON.stringify(consolePair));

    // The session API shows each side's transport, live from the SFU.
    const sessions = await call(server.url, "GET", "/sessions?limit=1", tech.admin);
    const detail = await until(
      "transport tcp in the session API",
      () => call(server.url, "GET", `/sessions/${sessions[0].id}`, tech.admin),
      (d) => d.transport?.customer === "tcp" && d.transport?.technician === "tcp",
    );
    assert.equal(detail.status, "Active");
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    assert.match(metrics, /lens_media_peers_by_transport\{transport="tcp"\} 2/);
    console.log(
      `ICE-TCP: phone media connected ${phoneConnectedIn} ms and console ${consoleConnectedIn} ms after pickup ` +
        `(phone state ${phoneUp.state}); ${tech50["inbound-rtp-video"].frameWidth}x${tech50["inbound-rtp-video"].frameHeight}; ` +
        `audio packets at the technician ${audio[0]["inbound-rtp-audio"].packets}, at the customer ${audio[1]["inbound-rtp-audio"].packets}; ` +
        `pairs ${JSON.stringify(phonePair)} ${JSON.stringify(consolePair)}`,
    );

    await consolePage.getByRole("button", { name: "End", exact: true }).click();
    await phone.getByText("The technician ended the session").waitFor({ timeout: STEP });
    await phoneContext.close();
    await consoleContext.close();
  } finally {
    iptables("-D", ...rule);
  }
});
