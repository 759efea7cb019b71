// Issue 14's codec proof, through the real pages: a Chromium customer whose offer lists every
// codec the browser has, with H.264 (then VP9) first, as a phone with an H.264 hardware encoder
// offers. The server's answer must follow that order: the phone sends H.264 (VP9), the console is
// offered exactly that one video codec (plus its RTX) and decodes it, and the session, recorded
// by force, becomes an MP4 whose video ffprobe reads as h264 (vp9) with frames in it.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { acquire, call, consoleLogin, createPinSession, customerJoins, forceRecording, instrument, mediaStats, pickUp, release, requireChromium, STEP, technicianWithAudio, until } from "./harness.mjs";

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
/** @type {Awaited<ReturnType<typeof technicianWithAudio>>} */
let tech;
/** @type {import("playwright-core").BrowserContext} */
let consoleContext;
/** @type {import("playwright-core").Page} */
let consolePage;
const folder = mkdtempSync(join(tmpdir(), "lens-codecs-"));

before(async () => {
  if (!have) return;
  ({ server, chromium } = await acquire());
  tech = await technicianWithAudio(server.url, "codec@example.com");
  await forceRecording(server.url, tech, folder);
  consoleContext = await chromium.browser.newContext({ viewport: { width: 1280, height: 800 } });
  await instrument(consoleContext);
  consolePage = await consoleLogin(consoleContext, server.url, tech);
});

after(async () => {
  rmSync(folder, { recursive: true, force: true });
  if (have) {
    await consoleContext?.close();
    await release();
  }
});

/**
 * The video codecs (rtpmap names, in order) of the console's last remote description.
 * @param {import("playwright-core").Page} page
 */
async function offeredVideoCodecs(page) {
  const sdp = await page.evaluate(() => {
    const pcs = /** @type {RTCPeerConnection[]} */ (/** @type {any} */ (window).__lensPcs ?? []);
    return pcs[pcs.length - 1]?.remoteDescription?.sdp ?? "";
  });
  const video = sdp.split(/\r\n(?=m=)/).find((m) => m.startsWith("m=video")) ?? "";
  return [...video.matchAll(/^a=rtpmap:\d+ ([^/]+)\//gm)].map((m) => m[1]);
}

/**
 * What the grammar test (sfu/tests/it/sdp.rs) checks, on an SDP the server really wrote to Chromium:
 * no direction at session level, and every fmtp parameter `key=value` with a value (a positive
 * maxplaybackrate among them).
 * @param {string} what
 * @param {string} sdp
 */
function checkServerSdp(what, sdp) {
  const [session, ...media] = sdp.split(/\r\n(?=m=)/);
  assert.ok(media.length > 0, `${what}: no media`);
  assert.doesNotMatch(session, /^a=(sendrecv|sendonly|recvonly|inactive)\r?$/m, `${what}: a direction at session level`);
  for (const m of media) {
    assert.equal((m.match(/^a=(sendrecv|sendonly|recvonly|inactive)\r?$/gm) ?? []).length, 1, `${what}: one direction per section`);
  }
  for (const [, params] of sdp.matchAll(/^a=fmtp:\d+ (.*?)\r?$/gm)) {
    if (/^\d+(\/\d+)*$/.test(params) || /^\d+-\d+$/.test(params)) continue; // red, telephone-event
    for (const kv of params.split(";")) {
      const [key, value] = kv.split("=");
      assert.match(value ?? "", /^[0-9a-fA-F]+$/, `${what}: fmtp ${kv}`);
      if (key === "maxplaybackrate") assert.ok(Number(value) >= 8000, `${what}: fmtp ${kv}`);
    }
  }
}

/** @param {string} mime "video/H264" or "video/VP9" */
async function session(mime) {
  const expected = mime.slice("video/".length).toLowerCase();
  const name = `Customer ${expected} first`;
  const pin = await createPinSession(consolePage, name);
  const context = await chromium.browser.newContext({ viewport: { width: 390, height: 844 } });
  await instrument(context, mime, { first: true });
  const phone = await customerJoins(context, server.url, pin);
  await pickUp(consolePage, name);
  await phone.getByText("Connected to Codec").waitFor({ timeout: STEP });
  // The phone offered everything it has, this codec first. "Connected" can show before the phone's
  // offer is set (createOffer is async): wait for it rather than read it once.
  const offered = await until(
    "the phone's offer",
    () =>
      phone.evaluate(() => {
        const pcs = /** @type {RTCPeerConnection[]} */ (/** @type {any} */ (window).__lensPcs ?? []);
        return pcs[pcs.length - 1]?.localDescription?.sdp ?? "";
      }),
    (sdp) => sdp.includes("m=video"),
  );
  const offeredVideo = [...(offered.split(/\r\n(?=m=)/).find((m) => m.startsWith("m=video")) ?? "").matchAll(/^a=rtpmap:\d+ ([^/]+)\//gm)].map((m) => m[1]);
  assert.equal(offeredVideo[0]?.toLowerCase(), expected, `the phone's offer starts with ${offeredVideo[0]}`);
  assert.ok(new Set(offeredVideo.map((c) => c.toLowerCase())).size >= 3, `the phone offers several codecs: ${offeredVideo}`);

  const stats = await until(
    `100 ${expected} frames decoded at the technician`,
    () => mediaStats(consolePage),
    (s) => (s?.["inbound-rtp-video"]?.framesDecoded ?? 0) >= 100,
  );
  const got = stats["inbound-rtp-video"];
  const sent = (await mediaStats(phone))?.["outbound-rtp-video"];
  assert.equal(sent?.codec, mime, `the phone sends ${sent?.codec}, not ${mime}`);
  assert.equal(got.codec, mime, `the console decodes ${got.codec}, not ${mime}`);
  const consoleOffer = await offeredVideoCodecs(consolePage);
  const answers = await Promise.all(
    [phone, consolePage].map((p) =>
      p.evaluate(() => {
        const pcs = /** @type {RTCPeerConnection[]} */ (/** @type {any} */ (window).__lensPcs ?? []);
        return pcs[pcs.length - 1]?.remoteDescription?.sdp ?? "";
      }),
    ),
  );
  checkServerSdp(`the server's answer to the ${expected}-first phone`, answers[0]);
  checkServerSdp(`the server's offer to the console (${expected})`, answers[1]);
  assert.deepEqual(
    consoleOffer.map((c) => c.toLowerCase()).sort(),
    [expected, "rtx"].sort(),
    `the console is offered exactly the phone's codec and its RTX: ${consoleOffer}`,
  );

  await consolePage.getByRole("button", { name: "End", exact: true }).click();
  await phone.getByText("The technician ended the session").waitFor({ timeout: STEP });
  await context.close();

  const sessions = await call(server.url, "GET", "/sessions?limit=1", tech.admin);
  const recordings = await until(
    `the ${expected} recording finished`,
    () => call(server.url, "GET", `/sessions/${sessions[0].id}/recordings`, tech.admin),
    (r) => r[0]?.status === "uploaded",
  );
  const file = join(folder, recordings[0].file_name);
  const probe = JSON.parse(
    execFileSync("ffprobe", ["-v", "error", "-count_frames", "-show_entries", "stream=codec_type,codec_name,width,height,nb_read_frames:format=duration", "-of", "json", file]).toString(),
  );
  const video = probe.streams.find((/** @type {any} */ s) => s.codec_type === "video");
  const audio = probe.streams.find((/** @type {any} */ s) => s.codec_type === "audio");
  assert.equal(video?.codec_name, expected, JSON.stringify(probe));
  assert.ok(Number(video.nb_read_frames) >= 50, `recorded ${expected} frames: ${video.nb_read_frames}`);
  assert.deepEqual([video.width, video.height], [sent.frameWidth, sent.frameHeight], "recorded size");
  assert.equal(audio?.codec_name, "opus");
  console.log(
    `${mime} first: phone sends ${sent.codec} ${sent.frameWidth}x${sent.frameHeight}, console decoded ${got.framesDecoded} ${got.codec} frames; ` +
      `console offered [${consoleOffer}]; recording ${statSync(file).size} bytes, ${video.codec_name} ${video.nb_read_frames} frames, ` +
      `${audio.codec_name} ${audio.nb_read_frames} frames, ${Number(probe.format.duration).toFixed(1)} s`,
  );
}

test("H.264 first in the phone's offer: the phone sends H.264, the console decodes it, the recording is H.264", { skip: !have }, async () => {
  await session("video/H264");
});

test("VP9 first in the phone's offer: the phone sends VP9, the console decodes it, the recording is VP9", { skip: !have }, async () => {
  await session("video/VP9");
});
