// The pages' side of a room that moves to another node (issue 15, PROTOCOL.md `reoffer`), on the
// shared single server: the customer page gets a `reoffer` frame mid-session (slipped into its
// socket by the test, as a node would send it after a drain or a takeover) and must offer again
// from a new peer connection, keeping its socket and camera; the console gets a fresh `offer` for a
// session whose peer connection it already has (after its socket dropped: the server offers anew
// after `hello`) and must replace the old connection. Neither page may keep a second live peer
// connection or add a video element. cluster.test.mjs does the same across real nodes.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { acquire, consoleLogin, createPinSession, customerJoins, instrument, mediaStats, pickUp, release, requireChromium, STEP, technicianWithAudio, until } from "./harness.mjs";

const have = requireChromium();
/** @type {import("./harness.mjs").Server} */
let server;
/** @type {import("./harness.mjs").Browser} */
let chromium;

before(async () => {
  if (!have) return;
  ({ server, chromium } = await acquire());
});

after(async () => {
  if (have) await release();
});

/**
 * The page's peer connections: how many it made, how many are not closed, its video elements, and
 * what its last one receives and sends.
 * @param {import("playwright-core").Page} page
 */
async function pcs(page) {
  const counts = await page.evaluate(() => {
    const all = /** @type {RTCPeerConnection[]} */ (/** @type {any} */ (window).__lensPcs);
    return { made: all.length, open: all.filter((pc) => pc.connectionState !== "closed").length, videos: document.querySelectorAll("video").length };
  });
  const s = await mediaStats(page);
  return {
    ...counts,
    state: s?.state,
    framesIn: s?.["inbound-rtp-video"]?.framesDecoded ?? 0,
    videoOut: s?.["outbound-rtp-video"]?.packets ?? 0,
    audioIn: s?.["inbound-rtp-audio"]?.packets ?? 0,
  };
}

test("reoffer: the phone offers from a new peer connection, the console's fresh offer replaces its own", { skip: !have }, async () => {
  const tech = await technicianWithAudio(server.url, "rhea@example.com");
  const desk = await chromium.browser.newContext({ viewport: { width: 1280, height: 800 } });
  await instrument(desk);
  /** @type {import("playwright-core").WebSocketRoute | null} */
  let consoleSocket = null;
  await desk.routeWebSocket(/\/ws\/console$/, (ws) => {
    consoleSocket = ws;
    ws.connectToServer();
  });
  const consolePage = await consoleLogin(desk, server.url, tech);
  const pin = await createPinSession(consolePage, "Rita Reoffer");
  const mobile = await chromium.browser.newContext({ viewport: { width: 390, height: 844 } });
  await instrument(mobile);
  /** @type {import("playwright-core").WebSocketRoute | null} */
  let phoneSocket = null;
  let phoneSockets = 0;
  await mobile.routeWebSocket(/\/ws\/customer$/, (ws) => {
    phoneSocket = ws;
    phoneSockets += 1;
    ws.connectToServer();
  });
  const phone = await customerJoins(mobile, server.url, pin);
  await pickUp(consolePage, "Rita Reoffer");
  await phone.getByText("Connected to Rhea").waitFor({ timeout: STEP });
  await until("video at the console", () => pcs(consolePage), (s) => s.framesIn >= 30);
  const phoneBefore = await pcs(phone);
  assert.equal(phoneBefore.open, 1);

  // The room moved (as a node says after a drain): the phone closes its peer connection and offers
  // from a new one on the same socket; the console's video goes on.
  /** @type {import("playwright-core").WebSocketRoute} */ (/** @type {unknown} */ (phoneSocket)).send(JSON.stringify({ type: "reoffer", reason: "node_moved" }));
  const phoneAfter = await until(
    "the phone's new peer connection sends video and gets audio",
    () => pcs(phone),
    (s) => s.made === phoneBefore.made + 1 && s.state === "connected" && s.videoOut > 50 && s.audioIn > 20,
  );
  assert.equal(phoneAfter.open, 1, "the old peer connection is closed");
  assert.equal(phoneAfter.videos, phoneBefore.videos, "no second video element on the phone");
  assert.equal(phoneSockets, 1, "the phone kept its socket");
  // The server offers the console a connection for the phone's new one (or keeps the old one).
  const seen = await pcs(consolePage);
  await until("the console decodes the new connection's video", () => pcs(consolePage), (s) => s.made > seen.made || s.framesIn >= seen.framesIn + 30);
  await until("the console decodes video", () => pcs(consolePage), (s) => s.state === "connected" && s.framesIn >= 30);
  await phone.getByText("Connected to Rhea").waitFor({ timeout: STEP });

  // The console's socket drops; after `hello` the server offers the session's media anew, and the
  // console answers from a new peer connection that replaces the old one.
  const deskBefore = await pcs(consolePage);
  assert.equal(deskBefore.open, 1);
  // (Closing the page's side closes the server's too.)
  await /** @type {import("playwright-core").WebSocketRoute} */ (/** @type {unknown} */ (consoleSocket)).close({ code: 1012, reason: "test" });
  const deskAfter = await until(
    "the console's new peer connection decodes video",
    () => pcs(consolePage),
    (s) => s.made > deskBefore.made && s.state === "connected" && s.framesIn >= 20 && s.audioIn >= 20,
  );
  assert.equal(deskAfter.open, 1, "the console's old peer connection is closed");
  assert.equal(deskAfter.videos, deskBefore.videos, "no second video element in the console");

  await consolePage.getByRole("button", { name: "End", exact: true }).click();
  await phone
    .getByText("The technician ended the session")
    .waitFor({ timeout: STEP })
    .catch(async (e) => {
      throw new Error(`${e.message}\nthe phone says: ${await phone.locator("main").innerText()}\nthe console says: ${await consolePage.locator("#session").innerText()}`);
    });
  await mobile.close();
  await desk.close();
});
