// Issue 4's browser proof, through the real pages: the technician logs in to /console (with the
// forced password change), creates a PIN session, a customer enters the PIN on / with Chromium's
// fake camera and microphone, the technician picks up; the console decodes at least 50 frames at
// the resolution the phone sends, and audio packets arrive both ways. Once with VP8, once with
// H.264 (the customer's offer carries only that codec).

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { instrument, launch, mediaStats, requireChromium, startServer, technicianWithAudio } from "./harness.mjs";

const have = requireChromium();
/** @type {Awaited<ReturnType<typeof startServer>>} */
let server;
/** @type {Awaited<ReturnType<typeof launch>>} */
let chromium;
/** @type {import("playwright-core").Page} */
let consolePage;

/** How long to wait for a page to reach a state (ICE, DTLS, first frames): generous. */
const STEP = 20_000;
const NEW_PASSWORD = "Analytic-Engine1";

before(async () => {
  if (!have) return;
  server = await startServer();
  chromium = await launch();
  const tech = await technicianWithAudio(server.url, "ada@example.com");
  const context = await chromium.browser.newContext({ viewport: { width: 1280, height: 800 } });
  await instrument(context);
  consolePage = await context.newPage();
  consolePage.on("dialog", (d) => d.accept());
  await consolePage.goto(`${server.url}/console`);
  const login = consolePage.locator("#login");
  await login.getByLabel("Email").fill(tech.email);
  await login.getByLabel("Password").fill(tech.password);
  await login.getByRole("button", { name: "Log in" }).click();
  // The administrator set the password: the console asks for a new one first.
  await consolePage.getByLabel("New password", { exact: true }).fill(NEW_PASSWORD);
  await consolePage.getByLabel("Repeat the new password").fill(NEW_PASSWORD);
  await consolePage.getByRole("button", { name: "Change password" }).click();
  await consolePage.getByRole("button", { name: "New session" }).waitFor({ timeout: STEP });
});

after(async () => {
  await chromium?.close();
  await server?.stop();
});

/** Polls `read` until `done` says yes; fails with the last value after `ms`. */
async function until(what, read, done, ms = STEP) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    last = await read();
    if (done(last)) return last;
    if (Date.now() > deadline) assert.fail(`${what}: not reached within ${ms} ms; last: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** @param {string} codec */
async function session(codec) {
  // The technician creates a PIN session in the console's dialog.
  await consolePage.getByRole("button", { name: "New session" }).click();
  const dialog = consolePage.getByRole("dialog", { name: "New session" });
  await dialog.getByLabel("Customer name").fill(`Customer ${codec}`);
  await dialog.getByRole("button", { name: "Create" }).click();
  const pin = await dialog.locator(".pin-code").getAttribute("data-pin", { timeout: STEP });
  assert.match(pin ?? "", /^\d{6}$/);
  await dialog.getByRole("button", { name: "Close" }).click();

  // The customer, in another browser context, enters the PIN.
  const context = await chromium.browser.newContext({ viewport: { width: 390, height: 844 } });
  await instrument(context, codec);
  const phone = await context.newPage();
  phone.on("dialog", (d) => d.accept());
  await phone.goto(`${server.url}/`);
  await phone.getByLabel("PIN code").fill(pin ?? "");
  await phone.getByRole("button", { name: "Start" }).click();
  await phone
    .getByText("Waiting for a technician")
    .waitFor({ timeout: STEP })
    .catch(async (e) => {
      throw new Error(`${e.message}\nthe page says: ${await phone.locator("main").innerText()}`);
    });

  // The technician picks it up.
  const item = consolePage.locator(".session-item", { hasText: `Customer ${codec}` });
  await item.locator(".pill.status-waiting").waitFor({ timeout: STEP });
  await item.click();
  await consolePage.getByRole("button", { name: "Pick up" }).click();
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
