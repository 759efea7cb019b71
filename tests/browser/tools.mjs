// Issue 20's browser proof, through the real pages: the technician draws an arrow over the
// console's video and the customer's page shows it at the same normalised place over its own
// camera view (checked on the screenshot's pixels); hold hides it; clear removes it; a
// keyboard-drawn arrow; freeze shows a still on both sides while the phone keeps sending frames,
// unfreeze returns to live video; a link arrives as a card that opens only on tap and is in the
// Chatlog report; the session counts every use.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { call, consoleLogin, createPinSession, customerJoins, instrument, mediaStats, pickUp, requireChromium, acquire, release, STEP, technicianWithAudio, until } from "./harness.mjs";
import { decodePng } from "./png.mjs";

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

/** The console's default colour, #ff3b30. */
const RED = [255, 59, 48];

/**
 * Where the picture of a <video> (object-fit: contain) is on the page, in CSS pixels.
 * @param {import("playwright-core").Page} page
 * @param {string} selector
 */
function pictureBox(page, selector) {
  return page.locator(selector).evaluate((e) => {
    const v = /** @type {HTMLVideoElement} */ (e);
    const b = v.getBoundingClientRect();
    const s = Math.min(b.width / v.videoWidth, b.height / v.videoHeight);
    const [w, h] = [v.videoWidth * s, v.videoHeight * s];
    return { x: b.left + (b.width - w) / 2, y: b.top + (b.height - h) / 2, w, h };
  });
}

/**
 * Pixels of colour `rgb` (±35 per channel) within `radius` CSS pixels of the normalised point
 * `at` of the picture `box`, on a screenshot of `page`.
 * @param {import("playwright-core").Page} page
 * @param {{x: number, y: number, w: number, h: number}} box
 * @param {[number, number]} at
 * @param {number[]} rgb
 */
async function colourNear(page, box, at, rgb, radius = 6) {
  const png = decodePng(await page.screenshot());
  const scale = png.width / (page.viewportSize()?.width ?? png.width);
  const [cx, cy] = [(box.x + at[0] * box.w) * scale, (box.y + at[1] * box.h) * scale];
  const r = radius * scale;
  let n = 0;
  for (let y = Math.max(0, cy - r); y <= Math.min(png.height - 1, cy + r); y++) {
    for (let x = Math.max(0, cx - r); x <= Math.min(png.width - 1, cx + r); x++) {
      const p = png.pixel(x, y);
      if (p.every((v, i) => Math.abs(v - rgb[i]) <= 35)) n++;
    }
  }
  return n;
}

/**
 * How many pixels differ between two screenshots of the same element.
 * @param {Buffer} a
 * @param {Buffer} b
 */
function pixelsChanged(a, b) {
  const [pa, pb] = [decodePng(a), decodePng(b)];
  if (pa.width !== pb.width || pa.height !== pb.height) return Infinity;
  let n = 0;
  for (let y = 0; y < pa.height; y++) {
    for (let x = 0; x < pa.width; x++) {
      const [p, q] = [pa.pixel(x, y), pb.pixel(x, y)];
      if (p.some((v, i) => Math.abs(v - q[i]) > 8)) n++;
    }
  }
  return n;
}

/**
 * A 32×24 grey-level signature of a canvas, to compare two stills.
 * @param {import("playwright-core").Page} page
 * @param {string} selector
 */
function signature(page, selector) {
  return page.locator(selector).evaluate((c) => {
    const small = document.createElement("canvas");
    small.width = 32;
    small.height = 24;
    const ctx = /** @type {CanvasRenderingContext2D} */ (small.getContext("2d"));
    ctx.drawImage(/** @type {HTMLCanvasElement} */ (c), 0, 0, 32, 24);
    const d = ctx.getImageData(0, 0, 32, 24).data;
    const out = [];
    for (let i = 0; i < d.length; i += 4) out.push((d[i] + d[i + 1] + d[i + 2]) / 3);
    return out;
  });
}

test("annotation, freeze-frame and a link reach the customer's page", { skip: !have }, async () => {
  const tech = await technicianWithAudio(server.url, "ivy@example.com");
  const desk = await chromium.browser.newContext({ viewport: { width: 1280, height: 800 } });
  await instrument(desk);
  const consolePage = await consoleLogin(desk, server.url, tech);
  const pin = await createPinSession(consolePage, "Ida Pixel");
  const mobile = await chromium.browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  await instrument(mobile);
  const phone = await customerJoins(mobile, server.url, pin);
  await pickUp(consolePage, "Ida Pixel");
  await phone.getByText("Connected to Ivy").waitFor({ timeout: STEP });
  await until("video at the console", () => mediaStats(consolePage), (s) => (s?.["inbound-rtp-video"]?.framesDecoded ?? 0) > 20);

  // The technician draws an arrow with the mouse, from (0.3, 0.7) to (0.7, 0.3) of the picture.
  const desktopBox = await pictureBox(consolePage, "#remote-video");
  const phoneBox = await pictureBox(phone, "#self-view");
  const [tail, head, mid, off] = /** @type {[number, number][]} */ ([[0.3, 0.7], [0.7, 0.3], [0.5, 0.5], [0.3, 0.3]]);
  assert.equal(await colourNear(phone, phoneBox, mid, RED), 0, "red on the customer's picture before any drawing");
  await consolePage.getByRole("button", { name: "Arrow", exact: true }).click();
  const at = (/** @type {[number, number]} */ p) => [desktopBox.x + p[0] * desktopBox.w, desktopBox.y + p[1] * desktopBox.h];
  await consolePage.mouse.move(...at(tail));
  await consolePage.mouse.down();
  await consolePage.mouse.move(...at(head), { steps: 8 });
  await consolePage.mouse.up();

  // On the customer's screenshot: the arrow's red at the shaft's middle and at its head, over
  // the self-view, and not elsewhere.
  const drawn = Date.now();
  await until("the arrow on the customer's picture", () => colourNear(phone, phoneBox, mid, RED), (n) => n >= 4);
  console.log(`arrow on the customer's page ${Date.now() - drawn} ms after the mouse was released`);
  assert.ok((await colourNear(phone, phoneBox, [0.68, 0.32], RED)) >= 4, "the arrow head");
  assert.equal(await colourNear(phone, phoneBox, off, RED), 0, "red where the arrow is not");
  assert.ok((await colourNear(consolePage, desktopBox, mid, RED)) >= 4, "the console shows its own arrow");

  // Hold hides the drawing; resume shows it again.
  await consolePage.getByRole("button", { name: "Hold" }).click();
  await phone.getByText("On hold").waitFor({ timeout: STEP });
  await until("drawing hidden on hold", () => colourNear(phone, phoneBox, mid, RED), (n) => n === 0);
  await consolePage.getByRole("button", { name: "Resume" }).click();
  await phone.getByText("Connected to Ivy").waitFor({ timeout: STEP });
  await until("drawing back after resume", () => colourNear(phone, phoneBox, mid, RED), (n) => n >= 4);

  // With the keyboard: focus the picture, A for the arrow, Enter, move, Enter.
  await consolePage.getByRole("button", { name: "Arrow", exact: true }).click(); // tool off: the keys choose it
  const area = consolePage.getByLabel("The customer's picture: draw here");
  await area.focus();
  await area.press("a");
  await area.press("Enter");
  for (let i = 0; i < 5; i++) await area.press("ArrowDown");
  await area.press("Enter");
  // From the middle 0.1 down: the new arrow's head at (0.5, 0.6).
  await until("the keyboard arrow on the customer's picture", () => colourNear(phone, phoneBox, [0.5, 0.59], RED), (n) => n >= 4);

  // Clear removes both.
  await consolePage.getByRole("button", { name: "Clear drawing" }).click();
  await until("drawing cleared", async () => (await colourNear(phone, phoneBox, mid, RED)) + (await colourNear(phone, phoneBox, [0.5, 0.59], RED)), (n) => n === 0);

  // Freeze: both sides show a still; the phone keeps sending frames under it.
  await consolePage.getByRole("button", { name: "Freeze picture" }).click();
  await phone.getByText("Picture frozen by the technician").waitFor({ timeout: STEP });
  await consolePage.getByRole("button", { name: "Back to live video" }).waitFor();
  const [desk1, phone1] = [await consolePage.locator("#stage").screenshot(), await phone.locator(".stage").screenshot()];
  const sent1 = (await mediaStats(phone))?.["outbound-rtp-video"]?.framesEncoded ?? 0;
  await new Promise((r) => setTimeout(r, 1500));
  const [desk2, phone2] = [await consolePage.locator("#stage").screenshot(), await phone.locator(".stage").screenshot()];
  const sent2 = (await mediaStats(phone))?.["outbound-rtp-video"]?.framesEncoded ?? 0;
  assert.equal(pixelsChanged(desk1, desk2), 0, "the console's still moved");
  assert.equal(pixelsChanged(phone1, phone2), 0, "the customer's still moved");
  assert.ok(sent2 > sent1 + 10, `the phone kept streaming: ${sent1} → ${sent2} frames`);
  // The same still: the two pictures match (each side took the frame it showed when the freeze
  // reached it; the difference is the network's delay between the two).
  const [a, b] = [await signature(consolePage, "#console-still"), await signature(phone, "#still")];
  const difference = a.reduce((sum, v, i) => sum + Math.abs(v - b[i]), 0) / a.length;
  console.log(`freeze: mean grey-level difference between the two stills ${difference.toFixed(1)} / 255; phone sent ${sent2 - sent1} frames in 1.5 s under it`);
  assert.ok(difference < 20, `the stills differ: ${difference}`);
  // Unfreeze: live again at once.
  await consolePage.getByRole("button", { name: "Back to live video" }).click();
  await phone.getByText("Picture frozen by the technician").waitFor({ state: "hidden", timeout: STEP });
  const live1 = await phone.locator(".stage").screenshot();
  await new Promise((r) => setTimeout(r, 500));
  assert.ok(pixelsChanged(live1, await phone.locator(".stage").screenshot()) > 50, "the customer's view is live again");
  const desk3 = await consolePage.locator("#stage").screenshot();
  await new Promise((r) => setTimeout(r, 500));
  assert.ok(pixelsChanged(desk3, await consolePage.locator("#stage").screenshot()) > 50, "the console's view is live again");

  // A link: a card on the customer's page, opened only by a tap.
  const url = `${server.url}/healthz?from=lens`;
  await consolePage.getByLabel("Link for the customer").fill("javascript:alert(1)");
  await consolePage.getByRole("button", { name: "Send link" }).click();
  await consolePage.getByText("Only http and https links").waitFor({ timeout: STEP });
  await consolePage.getByLabel("Link for the customer").fill(url);
  await consolePage.getByRole("button", { name: "Send link" }).click();
  const open = phone.getByRole("link", { name: "Open 127.0.0.1" });
  await open.waitFor({ timeout: STEP });
  await phone.locator(".link-card .link-host", { hasText: "127.0.0.1" }).waitFor();
  await phone.getByText(`Link: ${url}`).waitFor({ timeout: STEP });
  assert.match((await open.getAttribute("rel")) ?? "", /\bnoopener\b/);
  await new Promise((r) => setTimeout(r, 1000));
  assert.equal(mobile.pages().length, 1, "the link opened by itself");
  const [popup] = await Promise.all([mobile.waitForEvent("page"), open.tap()]);
  await popup.waitForLoadState();
  assert.equal(popup.url(), url);
  await popup.close();

  // The record: counts on the session, the link line in the Chatlog report.
  const sessions = await call(server.url, "GET", "/sessions?limit=10", tech.admin);
  const id = sessions.find((/** @type {{name: string}} */ s) => s.name === "Ida Pixel").id;
  const detail = await call(server.url, "GET", `/sessions/${id}`, tech.admin);
  assert.deepEqual(detail.tools, { annotation_strokes: 2, annotation_clears: 1, freezes: 1, urls_sent: 1 });
  await consolePage.getByRole("button", { name: "End", exact: true }).click();
  await phone.getByText("The technician ended the session").waitFor({ timeout: STEP });
  const report = await call(server.url, "GET", `/reports/chatlog?unit=technician:${tech.technician}&range=today`, tech.admin);
  assert.ok(JSON.stringify(report).includes(`Link: ${url}`), `no link line in the Chatlog report: ${JSON.stringify(report).slice(0, 2000)}`);
  await mobile.close();
  await desk.close();
});
