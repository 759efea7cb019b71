// Issues 6 and 17's browser proof: a session of a group with forced screen recording, the phone
// being Chromium's fake camera through the real pages, whose picture changes from 320×180 to
// 640×360 mid-way, becomes a file ffprobe decodes to the end at both sizes; the administrator
// follows the Session report's row to the admin center's Recordings view and plays it there
// through a signed link (POST /api/v1/recordings/{id}/link): Range requests, video/mp4, played to
// the end through the size change.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { acquire, ADMIN_EMAIL, ADMIN_PASSWORD, call, consoleLogin, createPinSession, customerJoins, forceRecording, instrument, mediaStats, pickUp, release, requireChromium, STEP, technicianWithAudio, until } from "./harness.mjs";

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

test("a forced recording whose picture changes size plays to the end from the admin center's Recordings view", { skip: !have }, async () => {
  const tech = await technicianWithAudio(server.url, "rec@example.com");
  await forceRecording(server.url, tech, folder);

  const consoleContext = await chromium.browser.newContext({ viewport: { width: 1280, height: 800 } });
  await instrument(consoleContext);
  const consolePage = await consoleLogin(consoleContext, server.url, tech);
  const pin = await createPinSession(consolePage, "Recorded customer");
  const phoneContext = await chromium.browser.newContext({ viewport: { width: 390, height: 844 } });
  await instrument(phoneContext, "video/VP8");
  const phone = await customerJoins(phoneContext, server.url, pin);
  await pickUp(consolePage, "Recorded customer");
  await phone.getByText("Connected to Rec").waitFor({ timeout: STEP });
  // The phone's picture changes size mid-way (as a turned phone without the orientation extension,
  // or a camera switch, does): its 1280×720 camera sent at a quarter (320×180), then at half
  // (640×360), each from a keyframe.
  const scale = (/** @type {number} */ by) =>
    phone.evaluate(async (by) => {
      const pc = /** @type {any} */ (window).__lensPcs.at(-1);
      const sender = pc.getSenders().find((/** @type {RTCRtpSender} */ s) => s.track?.kind === "video");
      const p = sender.getParameters();
      p.encodings[0].scaleResolutionDownBy = by;
      // Not the encoder's own adaptation: only the change the test makes.
      p.degradationPreference = "maintain-resolution";
      await sender.setParameters(p);
    }, by);
  await scale(4);
  await until(
    "320×180 at the technician",
    () => mediaStats(consolePage),
    (s) => s?.["inbound-rtp-video"]?.frameWidth === 320,
  );
  const small = (await mediaStats(consolePage))?.["inbound-rtp-video"]?.framesDecoded ?? 0;
  await until(
    "60 more frames at 320×180",
    () => mediaStats(consolePage),
    (s) => (s?.["inbound-rtp-video"]?.framesDecoded ?? 0) >= small + 60,
  );
  await scale(2);
  await until(
    "640×360 at the technician",
    () => mediaStats(consolePage),
    (s) => s?.["inbound-rtp-video"]?.frameWidth === 640,
  );
  const large = (await mediaStats(consolePage))?.["inbound-rtp-video"]?.framesDecoded ?? 0;
  await until(
    "60 more frames at 640×360",
    () => mediaStats(consolePage),
    (s) => (s?.["inbound-rtp-video"]?.framesDecoded ?? 0) >= large + 60,
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
  const file = join(folder, rec.file_name);
  const probe = JSON.parse(execFileSync("ffprobe", ["-v", "error", "-select_streams", "v:0", "-show_entries", "stream=codec_name:frame=width,height", "-of", "json", file]).toString());
  assert.equal(probe.streams[0].codec_name, "vp8");
  const sizes = probe.frames.map((/** @type {{width: number, height: number}} */ f) => `${f.width}x${f.height}`);
  assert.ok(sizes.includes("320x180") && sizes.includes("640x360"), `decoded sizes: ${[...new Set(sizes)]}`);
  assert.equal(sizes.at(-1), "640x360", "ffprobe decodes to the end at the new size");
  // Facts the Recordings view shows.
  assert.ok(rec.duration_ms > 3000 && rec.size_bytes > 0, JSON.stringify(rec));
  assert.deepEqual(rec.codecs, ["vp8", "opus"]);

  // The administrator opens the Session report, follows the row to the Recordings view and plays
  // the recording through its signed link (no bearer header: the link is the permission).
  const context = await chromium.browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  /** @type {{url: string, range: string | undefined, status: number, type: string | undefined}[]} */
  const fetched = [];
  page.on("response", (r) => {
    if (r.url().includes(`/recordings/${rec.id}/play?`)) {
      fetched.push({ url: r.url(), range: r.request().headers().range, status: r.status(), type: r.headers()["content-type"] });
    }
  });
  await page.goto(`${server.url}/admin`);
  const login = page.locator("#login");
  await login.getByLabel("Email").fill(ADMIN_EMAIL);
  await login.getByLabel("Password").fill(ADMIN_PASSWORD);
  await login.getByRole("button", { name: "Log in" }).click();
  await page.locator("#tab-reports").click();
  await page.locator("#report-area").selectOption("session");
  await page.locator("#report-range").selectOption("today");
  await page.locator("#report-get").click();
  await page.locator(`#report-table button[data-session="${rec.session_id}"]`).click();
  await page.locator("#recordings-view").waitFor({ state: "visible", timeout: STEP });
  const row = page.locator("#recordings-table tbody tr", { hasText: "vp8, opus" }).first();
  await row.waitFor({ timeout: STEP });
  await row.getByRole("button", { name: "Play" }).click();
  const played = await page.evaluate(async () => {
    const video = /** @type {HTMLVideoElement} */ (document.getElementById("recordings-player"));
    const deadline = Date.now() + 30_000;
    while (!(video.readyState >= 1) && Date.now() < deadline) {
      if (video.error) throw new Error(`video error ${video.error.code}: ${video.error.message}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const seen = new Set([`${video.videoWidth}x${video.videoHeight}`]);
    video.addEventListener("resize", () => seen.add(`${video.videoWidth}x${video.videoHeight}`));
    video.muted = true;
    video.playbackRate = 2;
    await video.play();
    while (!video.ended && !video.error && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    return { src: video.currentSrc, ended: video.ended, error: video.error?.message ?? null, duration: video.duration, currentTime: video.currentTime, sizes: [...seen] };
  });
  await context.close();

  assert.ok(played.src.includes(`/api/v1/recordings/${rec.id}/play?expires=`), JSON.stringify(played));
  assert.ok(played.ended && played.error === null, `did not play to the end: ${JSON.stringify(played)}`);
  assert.ok(played.sizes.includes("320x180") && played.sizes.includes("640x360"), `Chromium did not play through the size change: ${JSON.stringify(played)}`);
  assert.ok(fetched.length > 0 && fetched.every((f) => f.type === "video/mp4"), JSON.stringify(fetched));
  assert.ok(
    fetched.some((f) => f.range !== undefined && f.status === 206),
    `the <video> element made no range request: ${JSON.stringify(fetched)}`,
  );
  console.log(`recording ${rec.id}: ${played.duration.toFixed(1)} s, sizes ${played.sizes.join(" → ")}; requests ${JSON.stringify(fetched.map((f) => [f.range, f.status]))}`);
});
