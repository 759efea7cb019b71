// Issue 17's "both voices": a Chromium phone (the fake device's tone) and a console in a second
// Chromium whose microphone plays a 1000 Hz sine from a WAV (--use-file-for-fake-audio-capture)
// talk for 15 s, the technician muting the microphone for 4 s in the middle. The recording must
// hold video and exactly one Opus track, and ffmpeg's decoding of it must contain both voices,
// with the technician's frequency silent during the muted stretch.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { acquire, call, consoleLogin, createPinSession, customerJoins, forceRecording, instrument, launch, mediaStats, pickUp, release, requireChromium, STEP, technicianWithAudio, until } from "./harness.mjs";

/** ffmpeg and ffprobe (scripts/test installs them); missing: skip, or fail under CI. */
function requireFfmpeg() {
  try {
    execFileSync("ffmpeg", ["-version"], { stdio: "ignore" });
    execFileSync("ffprobe", ["-version"], { stdio: "ignore" });
    return true;
  } catch {
    if (process.env.CI === "true") throw new Error("ffmpeg/ffprobe not found but CI=true: run ./scripts/test");
    return false;
  }
}

const have = requireChromium() && requireFfmpeg();
const TECH_HZ = 1000;
const RATE = 48_000;
/** @type {import("./harness.mjs").Server} */
let server;
/** @type {import("./harness.mjs").Browser} */
let chromium;
/** @type {import("./harness.mjs").Browser | undefined} */
let consoleChromium;
const folder = mkdtempSync(join(tmpdir(), "lens-voices-"));

before(async () => {
  if (!have) return;
  ({ server, chromium } = await acquire());
});

after(async () => {
  await consoleChromium?.close();
  rmSync(folder, { recursive: true, force: true });
  if (have) await release();
});

/**
 * Amplitude of the `hz` component of `pcm` (Goertzel): about A for a sine of amplitude A.
 * @param {Float32Array} pcm
 * @param {number} hz
 */
function level(pcm, hz) {
  const c = 2 * Math.cos((2 * Math.PI * hz) / RATE);
  let s1 = 0;
  let s2 = 0;
  for (const x of pcm) {
    const s0 = x + c * s1 - s2;
    s2 = s1;
    s1 = s0;
  }
  return (2 * Math.sqrt(Math.max(0, s1 * s1 + s2 * s2 - c * s1 * s2))) / Math.max(1, pcm.length);
}

/**
 * The strongest frequency between `lo` and `hi` Hz (10 Hz steps) in `pcm`.
 * @param {Float32Array} pcm
 * @param {number} lo
 * @param {number} hi
 */
function peak(pcm, lo, hi) {
  let best = lo;
  for (let hz = lo; hz <= hi; hz += 10) if (level(pcm, hz) > level(pcm, best)) best = hz;
  return best;
}

test("the recording holds both voices in one Opus track, the technician's muted stretch silent", { skip: !have }, async () => {
  const wav = join(folder, "technician.wav");
  execFileSync("ffmpeg", ["-v", "error", "-y", "-f", "lavfi", "-i", `sine=frequency=${TECH_HZ}:sample_rate=${RATE}:duration=120`, "-ac", "1", wav]);
  consoleChromium = await launch([`--use-file-for-fake-audio-capture=${wav}`]);

  const tech = await technicianWithAudio(server.url, "voices@example.com");
  await forceRecording(server.url, tech, folder);

  const consoleContext = await consoleChromium.browser.newContext({ viewport: { width: 1280, height: 800 } });
  await instrument(consoleContext);
  const consolePage = await consoleLogin(consoleContext, server.url, tech);
  const pin = await createPinSession(consolePage, "Two voices");
  const phoneContext = await chromium.browser.newContext({ viewport: { width: 390, height: 844 } });
  await instrument(phoneContext, "video/VP8");
  const phone = await customerJoins(phoneContext, server.url, pin);
  await pickUp(consolePage, "Two voices");
  await phone.getByText("Connected to Voices").waitFor({ timeout: STEP });
  // Both voices flow: each side receives the other's audio.
  await until(
    "audio both ways",
    async () => [await mediaStats(consolePage), await mediaStats(phone)],
    ([c, p]) => (c?.["inbound-rtp-audio"]?.packets ?? 0) > 50 && (p?.["inbound-rtp-audio"]?.packets ?? 0) > 50,
  );
  const talk = (/** @type {number} */ ms) => new Promise((r) => setTimeout(r, ms));
  const mute = consolePage.locator("#mute-self");
  await talk(5_500);
  await mute.click();
  await until("muted", () => mute.getAttribute("aria-pressed"), (v) => v === "true");
  await talk(4_000);
  await mute.click();
  await until("unmuted", () => mute.getAttribute("aria-pressed"), (v) => v === "false");
  await talk(5_500);
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
  const file = join(folder, recordings[0].file_name);
  const probe = JSON.parse(execFileSync("ffprobe", ["-v", "error", "-show_entries", "stream=codec_type,codec_name,channels", "-of", "json", file]).toString());
  const kinds = probe.streams.map((/** @type {any} */ s) => `${s.codec_type}:${s.codec_name}`);
  assert.equal(kinds.filter((k) => k.startsWith("video:")).length, 1, JSON.stringify(kinds));
  assert.deepEqual(kinds.filter((k) => k.startsWith("audio:")), ["audio:opus"], "exactly one audio track, Opus");

  const raw = execFileSync("ffmpeg", ["-v", "error", "-i", file, "-map", "0:a:0", "-ac", "1", "-ar", String(RATE), "-f", "f32le", "-"], { maxBuffer: 256 << 20 });
  const pcm = new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
  const seconds = pcm.length / RATE;
  assert.ok(seconds >= 13, `the recording has ${seconds.toFixed(1)} s of audio`);

  // The phone's voice: the fake device's tone, found as the strongest frequency away from ours.
  const customerHz = peak(pcm, 200, 800);
  // Per 250 ms window: the technician's frequency, and the customer's.
  const win = RATE / 4;
  const tech_ = [];
  const cust = [];
  for (let i = 0; i + win <= pcm.length; i += win) {
    const w = pcm.subarray(i, i + win);
    tech_.push(level(w, TECH_HZ));
    cust.push(level(w, customerHz));
  }
  // The console's audio processing (noise suppression) turns a steady tone down after a second
  // or so: the technician's usual level is the median window, not the loudest.
  const usual = [...tech_].sort((x, y) => x - y)[Math.floor(tech_.length / 2)];
  const fmt = (/** @type {number[]} */ a) => a.map((v) => v.toFixed(3)).join(" ");
  const report = `customer ${customerHz} Hz per 250 ms: ${fmt(cust)}\ntechnician ${TECH_HZ} Hz per 250 ms: ${fmt(tech_)}`;
  console.log(report);
  assert.ok(usual > 0.003, `the technician's ${TECH_HZ} Hz is in the recording\n${report}`);
  // The muted stretch: the longest run of windows where the technician's frequency is gone,
  // between the first and the last time the technician is heard (the file may start before the
  // console picked up, and end after it left).
  const heardAt = (/** @type {number} */ v) => v > usual / 2;
  const first = tech_.findIndex(heardAt);
  const last = tech_.findLastIndex(heardAt);
  let run = { from: first, len: 0 };
  for (let i = first; i < last; ) {
    let j = i;
    while (j < last && tech_[j] < usual / 4) j++;
    if (j - i > run.len) run = { from: i, len: j - i };
    i = j + 1;
  }
  const mutedSeconds = run.len / 4;
  assert.ok(mutedSeconds >= 3 && mutedSeconds <= 5, `the muted stretch (${mutedSeconds} s of silence at ${TECH_HZ} Hz) is about 4 s\n${report}`);
  // Silent, not just quieter: an eighth of the usual level in the median window (every window of
  // the run is below a quarter by construction). What is left at the technician's frequency while
  // muted is the customer's tone leaking into the window (about 0.001 beside a usual 0.013, once
  // noise suppression has turned the steady tone down); a tenth on average failed here once (0.0013
  // against 0.0013) from the edge windows (0.003, 0.005: the mute and unmute inside a window).
  const muted = [...tech_.slice(run.from, run.from + run.len)].sort((x, y) => x - y);
  const mutedMedian = muted[Math.floor(muted.length / 2)];
  assert.ok(mutedMedian < usual / 8, `the muted stretch's median window is ${mutedMedian.toFixed(4)} at ${TECH_HZ} Hz\n${report}`);
  // The technician is heard before and after the muted stretch (over 2 s each side).
  const heard = (/** @type {number[]} */ part) => part.filter(heardAt).length / 4;
  assert.ok(heard(tech_.slice(first, run.from)) >= 2, `the technician before muting\n${report}`);
  assert.ok(heard(tech_.slice(run.from + run.len, last + 1)) >= 2, `the technician after unmuting\n${report}`);
  // The customer is heard throughout, the muted stretch included (per second: the fake tone may come in bursts).
  const perSecond = [];
  for (let i = 0; i + 4 <= cust.length; i += 4) perSecond.push(Math.max(...cust.slice(i, i + 4)));
  const custLoud = Math.max(...perSecond);
  assert.ok(custLoud > 0.02, `the customer's ${customerHz} Hz is in the recording\n${report}`);
  const quietSeconds = perSecond.slice(1, -1).filter((v) => v < custLoud / 5).length;
  assert.ok(quietSeconds <= 1, `the customer is heard every second (${quietSeconds} quiet)\n${report}`);
  assert.ok(Math.abs(customerHz - TECH_HZ) > 100);
});
