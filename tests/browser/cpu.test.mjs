// cpu.mjs in CI (issue 16): the measurement runs end to end — two Chromium sessions on one lens
// server, one through Janus' VideoRoom — and yields its figures. No bar on them: performance is
// measured by the tool, never asserted in a test (README "Performance" has the figures).

import assert from "node:assert/strict";
import { test } from "node:test";
import { requireChromium, requireJanus } from "./harness.mjs";
import { measureCpu } from "./cpu.mjs";

const have = requireChromium();

test("server CPU per received packet is measured for two lens sessions and one Janus session", { skip: !have, timeout: 240_000 }, async () => {
  const lens = await measureCpu("lens", 2, "fake", 5);
  console.log(JSON.stringify(lens));
  // Two consoles' video and audio plus two phones' return audio: well over 100 packets a second.
  assert.ok(lens.packetsPerSecond > 100, `lens: the pages received ${lens.packetsPerSecond.toFixed(0)} packets/s`);
  assert.ok(lens.cpuMicrosPerPacket >= 0 && Number.isFinite(lens.cpuMicrosPerPacket));
  if (!requireJanus()) return;
  const janus = await measureCpu("janus", 1, "fake", 5);
  console.log(JSON.stringify(janus));
  assert.ok(janus.packetsPerSecond > 50, `janus: the pages received ${janus.packetsPerSecond.toFixed(0)} packets/s`);
});
