// Issue 6's browser proof: a session of a group with forced screen recording, the phone being
// Chromium's fake camera through the real pages, becomes a file that headless Chromium plays in a
// <video> element straight from GET /api/v1/recordings/{id}/file (Range requests, video/mp4):
// videoWidth is the recorded width (ffprobe's) and currentTime advances, also after a seek.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { acquire, call, consoleLogin, createPinSession, customerJoins, instrument, mediaStats, pickUp, release, requireChromium, STEP, technicianWithAudio, until } from "./harness.mjs";

/** ffprobe comes with ffmpeg (scripts/test installs it); missing: skip, or fail under CI. */
function requireFfprobe() {
  try {
    execFileSync("ffprobe", ["-version"], { stdio: "ignore" });
    return true;
  } catch {
    if (process.env.CI === "true") throw new Error("ffprobe not found but CI=true: run ./scripts/test");
    return false;
  }
}

const have = requireChromium() && requireFfprobe();
/** @type {import("./harness.mjs").Server} */
let server;
/** @type {import("./harness.mjs").Browser} */
let chromium;
const folder = mkdtempSync(join(tmpdir(), "lens-recordings-"));

before(async () => {
  if (!have) return;
  ({ server, chromium } = await acquire());
});

after(async () => {
  rmSync(folder, { recursive: true, force: true });
  if (have) await release();
});

test("a forced recording plays in Chromium's <video> from the recording file route", { skip: !have }, async () => {
  const tech = await technicianWithAudio(server.url, "rec@example.com");
  const settingsPath = `/technician-groups/${tech.group}/settings`;
  const settings = await call(server.url, "GET", settingsPath, tech.admin);
  settings.screen_recording = { forced: true, location: folder, deferred_upload: false };
  await call(server.url, "PUT", settingsPath, tech.admin, settings);

  const consoleContext = await chromium.browser.newContext({ viewport: { width: 1280, height: 800 } });
  await instrument(consoleContext);
  const consolePage = await consoleLogin(consoleContext, server.url, tech);
  const pin = await createPinSession(consolePage, "Recorded customer");
  const phoneContext = await chromium.browser.newContext({ viewport: { width: 390, height: 844 } });
  await instrument(phoneContext, "video/VP8");
  const phone = await customerJoins(phoneContext, server.url, pin);
  await pickUp(consolePage, "Recorded customer");
  await phone.getByText("Connected to Rec").waitFor({ timeout: STEP });
  // About four seconds of video reach the technician (and so the recorder).
  await until(
    "100 decoded frames at the technician",
    () => mediaStats(consolePage),
    (s) => (s?.["inbound-rtp-video"]?.framesDecoded ?? 0) >= 100,
  );
  await consolePage.getByRole("button", { name: "End", exact: true }).click();
  await phone.getByText("The technician ended the session").waitFor({ timeout: STEP });
  await phoneContext.close();
  await consoleContext.close();

  const sessions = await call(server.url, "GET", "/sessions?limit=1", tech.admin);
  const recordings = await until(
    "the recording finished",
    () => call(server.url, "GET", `/sessions/${sessions[0].id}/recordings`, tech.admin),
    (r) => r[0]?.status === "uploaded",
  );
  const rec = recordings[0];
  const probe = JSON.parse(
    execFileSync("ffprobe", ["-v", "error", "-select_streams", "v:0", "-show_entries", "stream=width,height,codec_name", "-of", "json", join(folder, rec.file_name)]).toString(),
  );
  const recorded = probe.streams[0];
  assert.equal(recorded.codec_name, "vp8");

  // The page asks for the file itself, as <video> does (Chromium's media loader sends Range);
  // the bearer token rides along as a header set for the whole browser context.
  const context = await chromium.browser.newContext({ extraHTTPHeaders: { authorization: `Bearer ${tech.admin}` } });
  const page = await context.newPage();
  /** @type {{range: string | undefined, status: number, type: string | undefined}[]} */
  const fetched = [];
  page.on("response", (r) => {
    if (r.url().endsWith(`/recordings/${rec.id}/file`)) {
      fetched.push({ range: r.request().headers().range, status: r.status(), type: r.headers()["content-type"] });
    }
  });
  await page.goto(`${server.url}/healthz`);
  const played = await page.evaluate(async (src) => {
    const video = document.createElement("video");
    video.muted = true;
    document.body.append(video);
    /** @param {string} name */
    const once = (name) =>
      new Promise((ok, fail) => {
        video.addEventListener(name, ok, { once: true });
        video.addEventListener("error", () => fail(new Error(`video error ${video.error?.code}: ${video.error?.message}`)), { once: true });
      });
    const loaded = once("loadedmetadata");
    video.src = src;
    await loaded;
    const width = video.videoWidth;
    const height = video.videoHeight;
    const duration = video.duration;
    await video.play();
    const start = video.currentTime;
    const deadline = Date.now() + 10_000;
    while (video.currentTime <= start + 0.5 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const advanced = video.currentTime - start;
    // Seek back to the start and play on.
    const seeked = once("seeked");
    video.currentTime = 0.2;
    await seeked;
    const after = video.currentTime;
    while (video.currentTime <= after + 0.3 && Date.now() < deadline + 10_000) await new Promise((r) => setTimeout(r, 50));
    return { width, height, duration, advanced, afterSeek: video.currentTime - after };
  }, `/api/v1/recordings/${rec.id}/file`);
  await context.close();

  assert.equal(played.width, recorded.width, JSON.stringify({ played, recorded }));
  assert.equal(played.height, recorded.height, JSON.stringify({ played, recorded }));
  assert.ok(played.advanced >= 0.5, `currentTime did not advance: ${JSON.stringify(played)}`);
  assert.ok(played.afterSeek >= 0.3, `currentTime did not advance after a seek: ${JSON.stringify(played)}`);
  assert.ok(fetched.length > 0 && fetched.every((f) => f.type === "video/mp4"), JSON.stringify(fetched));
  assert.ok(
    fetched.some((f) => f.range !== undefined && f.status === 206),
    `the <video> element made no range request: ${JSON.stringify(fetched)}`,
  );
  console.log(`recording ${rec.id}: ${played.width}x${played.height}, ${played.duration.toFixed(1)} s; requests ${JSON.stringify(fetched)}`);
});
