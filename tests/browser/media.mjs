// Issue 4's browser proof, through the real pages: the technician logs in to /console (with the
// forced password change), creates a PIN session, a customer enters the PIN on / with Chromium's
// fake camera and microphone, the technician picks up; the console decodes at least 50 frames at
// the resolution the phone sends, and audio packets arrive both ways. Once with VP8, once with
// H.264 (the customer's offer carries only that codec).

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { consoleLogin, createPinSession, customerJoins, instrument, mediaStats, pickUp, requireChromium, acquire, release, STEP, technicianWithAudio, until } from "./harness.mjs";

const have = requireChromium();
/** @type {import("./harness.mjs").Server} */
let server;
/** @type {import("./harness.mjs").Browser} */
let chromium;
/** @type {import("playwright-core").Page} */
let consolePage;

before(async () => {
  if (!have) return;
  ({ server, chromium } = await acquire());
  const tech = await technicianWithAudio(server.url, "ada@example.com");
  const context = await chromium.browser.newContext({ viewport: { width: 1280, height: 800 } });
  await instrument(context);
  consolePage = await consoleLogin(context, server.url, tech);
});

after(async () => {
  if (have) await release();
});

/** @param {string} codec */
async function session(codec) {
  const name = `Customer ${codec}`;
  const pin = await createPinSession(consolePage, name);
  assert.match(pin, /^\d{6}$/);
  // The customer, in another browser context, enters the PIN; the technician picks it up.
  const context = await chromium.browser.newContext({ viewport: { width: 390, height: 844 } });
  await instrument(context, codec);
  const phone = await customerJoins(context, server.url, pin);
  await pickUp(consolePage, name);
  await phone.getByText("Connected to Ada").waitFor({ timeout: STEP });

  // The console's peer connection comes up; from then on the frames must come within 10 s.
  await until("console media connected", () => mediaStats(consolePage), (s) => s?.state === "connected");
  const connected = Date.now();
  const tech = await until(
    "50 decoded frames at the technician",
    () => mediaStats(consolePage),
    (s) => (s?.["inbound-rtp-video"]?.framesDecoded ?? 0) >= 50,
    10_000,
  );
  const decodedIn = Date.now() - connected;
  const sent = (await mediaStats(phone))?.["outbound-rtp-video"];
  const got = tech["inbound-rtp-video"];
  assert.equal(got.codec, codec, `the technician decodes ${got.codec}, not ${codec}`);
  assert.equal(sent.codec, codec, `the phone sends ${sent.codec}, not ${codec}`);
  assert.ok(got.frameWidth > 0 && got.frameHeight > 0, JSON.stringify(got));
  assert.deepEqual([got.frameWidth, got.frameHeight], [sent.frameWidth, sent.frameHeight], "received resolution differs from the sent one");

  // Audio both ways (headless Chromium keeps audioLevel at 0: count packets).
  const audio = await until(
    "audio packets both ways",
    async () => [await mediaStats(consolePage), await mediaStats(phone)],
    ([c, p]) => (c?.["inbound-rtp-audio"]?.packets ?? 0) >= 50 && (p?.["inbound-rtp-audio"]?.packets ?? 0) >= 50,
  );
  console.log(
    `${codec}: ${got.frameWidth}x${got.frameHeight}, 50 frames decoded ${decodedIn} ms after the console connected; ` +
      `audio packets at the technician ${audio[0]["inbound-rtp-audio"].packets}, at the customer ${audio[1]["inbound-rtp-audio"].packets}`,
  );

  // The technician ends it; the customer is told.
  await consolePage.getByRole("button", { name: "End", exact: true }).click();
  await phone.getByText("The technician ended the session").waitFor({ timeout: STEP });
  await context.close();
}

test("VP8: the console decodes the phone's camera and audio flows both ways", { skip: !have }, async () => {
  await session("video/VP8");
});

test("H.264: the console decodes the phone's camera and audio flows both ways", { skip: !have }, async () => {
  await session("video/H264");
});
