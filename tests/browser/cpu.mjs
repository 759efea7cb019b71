// Server CPU per forwarded packet with real browsers (issue 16: "≥ 3× Janus' forwarded packets per
// server CPU-second ... at 3 Chromium sessions"). N sessions of headless Chromium pages (phone:
// fake camera and microphone; console: the technician's page) on one lens server, then the same N
// through one Janus (a VideoRoom each, as quality.mjs sets them up), one target after the other
// so that neither server competes with the other for the two cores.
//
// Measured over the window (default 30 s, after every console decodes and 5 s more): the server
// process' CPU (utime + stime of all its threads, /proc/PID/stat) and the RTP packets the pages
// received (inbound-rtp packetsReceived of every stream on every page: the console's video and
// audio, and for lens the phone's return audio; Janus' VideoRoom has no way back). Packets per
// server CPU-second = received packets ÷ server CPU seconds; µs per packet its inverse.
//
//   node tests/browser/cpu.mjs [--sessions 3] [--seconds 30] [--video 480p|720p|fake]
//       [--target lens,janus] [--json FILE]
//
// lens: the binary of $LENS_BIN, else $CARGO_TARGET_DIR/debug/lens (build with --release and set
// LENS_BIN for figures worth comparing). Needs /usr/bin/chromium, ffmpeg (480p/720p clips) and,
// for Janus, Debian's janus.

import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import { launch, runIfScript, until, STEP } from "./harness.mjs";
import { janusSessions, lensSessions, videoFile } from "./quality.mjs";

const CLOCK_TICKS = Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim()) || 100;

/**
 * CPU seconds the process has used (user + system, every thread).
 * @param {number} pid
 */
export function cpuSeconds(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

/**
 * RTP packets the page's latest peer connection received, every stream, and its decoded frames.
 * @param {import("playwright-core").Page} page
 */
async function received(page) {
  return page.evaluate(async () => {
    const pcs = /** @type {RTCPeerConnection[]} */ (/** @type {any} */ (window).__lensPcs ?? []);
    const pc = pcs[pcs.length - 1];
    let packets = 0;
    let frames = 0;
    if (!pc) return { packets, frames };
    (await pc.getStats()).forEach((s) => {
      if (s.type !== "inbound-rtp") return;
      packets += s.packetsReceived ?? 0;
      if (s.kind === "video") frames += s.framesDecoded ?? 0;
    });
    return { packets, frames };
  });
}

/**
 * Packets received by every page of `sessions`.
 * @param {import("./quality.mjs").Sessions} all
 */
async function totalReceived(all) {
  const pages = all.sessions.flatMap((s) => [s.phone, s.console]);
  const counts = await Promise.all(pages.map(received));
  return counts.reduce((sum, c) => sum + c.packets, 0);
}

/**
 * One target: N sessions set up, every console decoding, the window measured, everything closed.
 * @param {"lens" | "janus"} target
 * @param {number} count
 * @param {"480p" | "720p" | "fake"} video
 * @param {number} seconds
 */
export async function measureCpu(target, count, video, seconds) {
  const size = video === "720p" ? "1280x720" : video === "480p" ? "640x480" : null;
  const chromium = await launch(size ? [`--use-file-for-fake-video-capture=${videoFile(size)}`] : []);
  try {
    const all = target === "lens" ? await lensSessions(chromium.browser, null, count) : await janusSessions(chromium.browser, null, count);
    try {
      for (const s of all.sessions) {
        await until("the console decodes video", async () => (await received(s.console)).frames, (n) => Number(n) >= 20, STEP * 2);
      }
      await sleep(5000);
      const [packets0, cpu0, t0] = [await totalReceived(all), cpuSeconds(all.pid), Date.now()];
      await sleep(seconds * 1000);
      const [packets1, cpu1, t1] = [await totalReceived(all), cpuSeconds(all.pid), Date.now()];
      const packets = packets1 - packets0;
      const cpu = cpu1 - cpu0;
      const wall = (t1 - t0) / 1000;
      if (packets <= 0) throw new Error(`${target}: no packet received in the window`);
      return {
        target,
        sessions: count,
        video,
        seconds: wall,
        packetsPerSecond: packets / wall,
        serverCpuPercent: (100 * cpu) / wall,
        // The clock ticks at CLOCK_TICKS Hz: a window with less CPU than one tick has no figure.
        packetsPerCpuSecond: cpu > 0 ? packets / cpu : null,
        cpuMicrosPerPacket: (cpu * 1e6) / packets,
        load: loadavg()[0],
      };
    } finally {
      await all.close();
    }
  } finally {
    await chromium.close();
  }
}

/** @param {Awaited<ReturnType<typeof measureCpu>>[]} rows */
function table(rows) {
  const lines = [
    "| target | sessions | video | packets received/s | server CPU (% of one core) | packets per server CPU-second | server CPU per packet (µs) | load (1 min) |",
    "|---|---|---|---|---|---|---|---|",
  ];
  for (const r of rows) {
    const perCpu = r.packetsPerCpuSecond === null ? "-" : Math.round(r.packetsPerCpuSecond).toLocaleString("en");
    lines.push(`| ${r.target} | ${r.sessions} | ${r.video} | ${Math.round(r.packetsPerSecond)} | ${r.serverCpuPercent.toFixed(1)} | ${perCpu} | ${r.cpuMicrosPerPacket.toFixed(1)} | ${r.load.toFixed(2)} |`);
  }
  const lens = rows.find((r) => r.target === "lens");
  const janus = rows.find((r) => r.target === "janus");
  if (lens?.packetsPerCpuSecond && janus?.packetsPerCpuSecond) {
    lines.push("", `lens ÷ Janus, packets per server CPU-second: ${(lens.packetsPerCpuSecond / janus.packetsPerCpuSecond).toFixed(2)}`);
  }
  return lines.join("\n");
}

async function main() {
  /** @type {Record<string, string>} */
  const args = {};
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "-h" || a === "--help") {
      console.log("node tests/browser/cpu.mjs [--sessions 3] [--seconds 30] [--video 480p|720p|fake] [--target lens,janus] [--json FILE]");
      return;
    } else if (a.startsWith("--") && i + 1 < argv.length) args[a.slice(2)] = argv[++i];
    else throw new Error(`unknown argument ${a} (see --help)`);
  }
  const count = Number(args.sessions ?? 3);
  const seconds = Number(args.seconds ?? 30);
  const video = /** @type {"480p" | "720p" | "fake"} */ (args.video ?? "480p");
  const targets = (args.target ?? "lens,janus").split(",");
  if (!Number.isInteger(count) || count < 1) throw new Error("--sessions: a whole number ≥ 1");
  if (!(seconds > 0)) throw new Error("--seconds: a positive number");
  if (!["480p", "720p", "fake"].includes(video)) throw new Error("--video: 480p, 720p or fake");
  for (const t of targets) if (t !== "lens" && t !== "janus") throw new Error(`--target: lens or janus, not ${t}`);
  const rows = [];
  for (const t of /** @type {("lens" | "janus")[]} */ (targets)) {
    const r = await measureCpu(t, count, video, seconds);
    console.error(JSON.stringify(r));
    rows.push(r);
  }
  console.log(table(rows));
  if (args.json) writeFileSync(args.json, JSON.stringify(rows, null, 2));
}

runIfScript(import.meta.url, main);
