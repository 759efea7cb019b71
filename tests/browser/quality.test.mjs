// Issue 14 item 5 in CI: under 3 % and then 10 % random loss in both directions of the media
// port (iptables, root), the console keeps decoding the phone's 640×480 camera: frames decoded
// ≥ 95 % of the frames the phone sent over 30 s, and at 10 % also the freezes add up to ≤ 1 s;
// the same 10 % bar at 1280×720. One session per size, the 640×480 one in two phases (set-up is
// the slow part); each its own lens server with a fixed media port, so the rules hit only this
// test's traffic. The measurement is tests/browser/quality.mjs.

import assert from "node:assert/strict";
import { test } from "node:test";
import { requireChromium, requireIptables } from "./harness.mjs";
import { run, table } from "./quality.mjs";

const have = requireChromium() && requireIptables();

test("under 3 % and 10 % random loss the console keeps decoding", { skip: !have, timeout: 240_000 }, async (t) => {
  const phases = [{ loss: 0.03 }, { loss: 0.1 }];
  const figures = await run("lens", "480p", {}, phases, 30);
  const [at3, at10] = figures.map((f, i) => ({ target: "lens", video: "480p", loss: phases[i].loss, capKbps: 0, delayMs: 0, ...f }));
  console.log(table([at3, at10]));
  for (const r of [at3, at10]) assert.ok(r.sent > 300, `the phone sent only ${r.sent} frames in 30 s at ${r.loss * 100} % loss`);

  await t.test("3 %: ≥ 95 % of the phone's frames decoded", () => {
    assert.ok(at3.decodedPct >= 95, `the console decoded ${at3.decoded} of ${at3.sent} frames (${at3.decodedPct.toFixed(1)} %)`);
  });

  // The console holds its video a little longer while packets are lost (web/js/media.js,
  // holdUnderLoss), so a frame whose packets were resent on both legs is still shown in time.
  await t.test("10 %: ≥ 95 % decoded and ≤ 1 s of freezes per 30 s", () => {
    assert.ok(at10.decodedPct >= 95, `the console decoded ${at10.decoded} of ${at10.sent} frames (${at10.decodedPct.toFixed(1)} %)`);
    assert.ok(at10.freezeSeconds <= 1, `the console froze ${at10.freezes} times, ${at10.freezeSeconds.toFixed(2)} s in 30 s`);
  });
});

// A 720p keyframe is over 100 packets: this holds since str0m's NACK window is set to 1024
// packets and its NACK rounds to 1 s (vendor/str0m/PATCHES.md, sfu/src/lib.rs `rtc_config`).
test("at 1280×720 under 10 % random loss the console keeps decoding, freezes ≤ 1 s", { skip: !have, timeout: 180_000 }, async () => {
  const [f] = await run("lens", "720p", {}, [{ loss: 0.1 }], 30);
  const r = { target: "lens", video: "720p", loss: 0.1, capKbps: 0, delayMs: 0, ...f };
  console.log(table([r]));
  assert.ok(r.sent > 300, `the phone sent only ${r.sent} frames in 30 s`);
  assert.ok(r.decodedPct >= 95, `the console decoded ${r.decoded} of ${r.sent} frames (${r.decodedPct.toFixed(1)} %)`);
  assert.ok(r.freezeSeconds <= 1, `the console froze ${r.freezes} times, ${r.freezeSeconds.toFixed(2)} s in 30 s`);
});
