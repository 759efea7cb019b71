// Issue 15 through the real pages: three `lens serve` nodes (the debug binary) on one PostgreSQL
// (a fresh database on the server scripts/test starts: LENS_TEST_POSTGRES_URL). The customer page
// comes from node A, the technician's console from node B, and the session's room is on node C:
// A and B each hold one pending session first, so that least-loaded placement sends the console's
// new session to C. Each page reaches its node through a small load balancer of this file (the
// first node of its preference whose /healthz says 200, as HAProxy's health check would), so that
// a page whose node goes away reconnects to another one as it would in production.
//
// One session: video decoded by the console and audio both ways, hold and resume, chat both ways,
// mutes, a transfer to a technician whose console is on node A; then C is killed with SIGKILL
// (media must flow again within 15 s, no click on either page); then the node that holds the room
// is drained with SIGTERM (media flows again through the remaining node, which exits); the
// technician ends. The session's events and its Session report row are checked at the end.
// DEBUG_PAGES=1 prints the phone's frames and console, and the nodes' logs at the end.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { connect, createServer } from "node:net";
import { after, before, test } from "node:test";
import {
  ADMIN_EMAIL,
  ADMIN_PASSWORD,
  NEW_PASSWORD,
  STEP,
  call,
  consoleLogin,
  createPinSession,
  customerJoins,
  instrument,
  launch,
  mediaStats,
  pickUp,
  requireChromium,
  startServer,
  technicianWithAudio,
  until,
} from "./harness.mjs";

/** The bar: media flows again this soon after the room's node is killed. */
const FAILOVER_BAR_MS = 15_000;

/** Skips (locally) or fails (CI=true) without the PostgreSQL scripts/test starts. */
function requirePostgres() {
  if (process.env.LENS_TEST_POSTGRES_URL) return true;
  if (process.env.CI === "true") throw new Error("LENS_TEST_POSTGRES_URL is not set but CI=true: run ./scripts/test");
  return false;
}

const have = requireChromium() && requirePostgres();

/** psql: Debian's wrapper on PATH, or the newest server version's own. */
function psql() {
  const versions = existsSync("/usr/lib/postgresql") ? readdirSync("/usr/lib/postgresql").sort((a, b) => Number(b) - Number(a)) : [];
  for (const v of versions) {
    const p = `/usr/lib/postgresql/${v}/bin/psql`;
    if (existsSync(p)) return p;
  }
  return "psql";
}

/** A fresh database on the test server; its URL. */
function freshDatabase() {
  const base = new URL(/** @type {string} */ (process.env.LENS_TEST_POSTGRES_URL));
  const name = `lens_browser_${process.pid}_${Date.now().toString(36)}`;
  execFileSync(psql(), ["-X", "-q", "-v", "ON_ERROR_STOP=1", base.toString(), "-c", `CREATE DATABASE ${name}`], { stdio: "pipe" });
  base.pathname = `/${name}`;
  return base.toString();
}

/**
 * A TCP load balancer on 127.0.0.1: each new connection goes to the first node of `nodes` whose
 * /healthz answered 200 at the last check (every 300 ms); connections already made stay where
 * they are until that node closes them.
 * @param {{url: string}[]} nodes in order of preference
 */
async function balancer(nodes) {
  /** @type {Set<import("node:net").Socket>} */
  const open = new Set();
  /** @type {boolean[]} */
  let healthy = nodes.map(() => false);
  let stopped = false;
  const check = async () => {
    healthy = await Promise.all(
      nodes.map((n) =>
        fetch(`${n.url}/healthz`, { signal: AbortSignal.timeout(1000) })
          .then((r) => r.status === 200)
          .catch(() => false),
      ),
    );
  };
  await check();
  const timer = setInterval(() => check().catch(() => {}), 300);
  const server = createServer((client) => {
    const i = healthy.indexOf(true);
    if (stopped || i < 0) {
      client.destroy();
      return;
    }
    const target = new URL(nodes[i].url);
    const upstream = connect(Number(target.port), target.hostname);
    for (const s of [client, upstream]) {
      open.add(s);
      s.on("close", () => open.delete(s));
      s.on("error", () => {});
    }
    client.pipe(upstream);
    upstream.pipe(client);
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", () => r(undefined)));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    close: async () => {
      stopped = true;
      clearInterval(timer);
      for (const s of open) s.destroy();
      await new Promise((r) => server.close(() => r(undefined)));
    },
  };
}

/**
 * One gauge of a node's /metrics: the sum over its labels, or the one series `name{labels}`;
 * null when the node does not answer.
 * @param {{url: string}} node
 * @param {string} name
 */
async function gauge(node, name) {
  try {
    const text = await (await fetch(`${node.url}/metrics`, { signal: AbortSignal.timeout(2000) })).text();
    let sum = 0;
    for (const line of text.split("\n")) {
      const m = line.match(/^(\w+)(\{[^}]*\})? (\S+)$/);
      if (m && (m[1] === name || `${m[1]}${m[2] ?? ""}` === name)) sum += Number(m[3]);
    }
    return sum;
  } catch {
    return null;
  }
}

/**
 * Frames decoded by the page's last peer connection, and which one it is (the n-th made).
 * @param {import("playwright-core").Page} page
 */
async function decoded(page) {
  const stats = await mediaStats(page);
  const pcs = await page.evaluate(() => /** @type {any} */ (window).__lensPcs.length);
  return { pc: pcs, frames: stats?.["inbound-rtp-video"]?.framesDecoded ?? 0, audio: stats?.["inbound-rtp-audio"]?.packets ?? 0 };
}

/**
 * The peer connections of a page that are not closed, and its video elements.
 * @param {import("playwright-core").Page} page
 */
async function leftovers(page) {
  return page.evaluate(() => ({
    open: /** @type {RTCPeerConnection[]} */ (/** @type {any} */ (window).__lensPcs).filter((pc) => pc.connectionState !== "closed").length,
    videos: document.querySelectorAll("video").length,
  }));
}

/**
 * Waits until the console decodes video from a peer connection made after the cut (the room's new
 * node offers it anew), and audio flows both ways, the phone's on a new peer connection too;
 * the milliseconds from `since` to the console's first decoded frame.
 * @param {string} what
 * @param {import("playwright-core").Page} desk
 * @param {import("playwright-core").Page} phone
 * @param {number} since Date.now() of the cut
 * @param {{pc: number}} deskCut the console's decoded() at the cut
 * @param {{pc: number}} phoneCut the phone's decoded() at the cut
 * @param {number} ms
 */
async function mediaBack(what, desk, phone, since, deskCut, phoneCut, ms) {
  const deadline = since + ms;
  let back = 0;
  for (;;) {
    const d = await decoded(desk);
    if (d.pc > deskCut.pc && d.frames > 0) {
      back = Date.now() - since;
      break;
    }
    if (Date.now() > deadline) assert.fail(`${what}: no frames decoded by the console within ${ms} ms of the cut; last ${JSON.stringify(d)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  // The rest must follow: frames keep coming, audio both ways on the new connections.
  const d0 = await decoded(desk);
  await until(
    `${what}: video and audio both ways`,
    async () => [await decoded(desk), await decoded(phone)],
    ([d, p]) => d.frames >= d0.frames + 20 && d.audio >= 20 && p.pc > phoneCut.pc && p.audio >= 20,
    STEP,
  );
  return back;
}

/** @type {Awaited<ReturnType<typeof startServer>>[]} */
const nodes = [];
/** @type {Awaited<ReturnType<typeof balancer>>[]} */
const balancers = [];
/** @type {Awaited<ReturnType<typeof launch>> | null} */
let chromium = null;

after(async () => {
  if (process.env.DEBUG_PAGES) {
    for (const n of nodes) console.log(`----- ${n.url}\n${n.log().split("\n").filter((l) => !/DEBUG|TRACE/.test(l)).slice(-60).join("\n")}`);
  }
  await chromium?.close();
  for (const b of balancers) await b.close();
  // A node on PostgreSQL drains on SIGTERM (its pending sessions have nowhere to go now); the
  // second SIGTERM, which stop() sends, makes it exit at once.
  for (const n of nodes) {
    if (n.child.exitCode === null && n.child.signalCode === null) n.child.kill("SIGTERM");
  }
  await new Promise((r) => setTimeout(r, 300));
  for (const n of nodes) await n.stop();
});

before(async () => {
  if (!have) return;
  const database = freshDatabase();
  /** @param {string} id */
  const node = (id) =>
    startServer({
      env: {
        LENS_DATABASE_URL: database,
        LENS_CLUSTER_NODE_ID: id,
        // A drained node waits at most this long for its sessions to move before it exits.
        LENS_CLUSTER_DRAIN_LIMIT_SECONDS: "60",
      },
    });
  // A first: it applies the migrations and creates the first administrator.
  nodes.push(await node("node-a"));
  nodes.push(...(await Promise.all([node("node-b"), node("node-c")])));
  chromium = await launch();
});

test("three nodes: the customer on A, the console on B, the room on C; C killed, then the room's node drained", { skip: !have }, async () => {
  const [a, b, c] = nodes;
  const browser = /** @type {NonNullable<typeof chromium>} */ (chromium).browser;
  const viaA = await balancer([a, b, c]);
  const viaB = await balancer([b, a, c]);
  balancers.push(viaA, viaB);
  const admin = (await call(a.url, "POST", "/auth/login", null, { email: ADMIN_EMAIL, password: ADMIN_PASSWORD })).token;
  /** @returns {Promise<{id: string, state: string, load: number}[]>} */
  const registry = async () => call(a.url, "GET", "/nodes", admin);
  await until("three serving nodes", registry, (ns) => ns.filter((n) => n.state === "serving").length === 3);

  const ada = await technicianWithAudio(a.url, "ada@example.com");
  await call(a.url, "POST", "/technicians", ada.admin, { name: "Tom Tester", nickname: "Tom", email: "tom@example.com", password: ada.password, group_id: ada.group }, 201);

  // Ada's console on B.
  const desk = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  await instrument(desk);
  const adaPage = await consoleLogin(desk, viaB.url, ada);
  // One pending session on A, then one on B (each stays on the node asked: a tie with the
  // least-loaded node goes to it), as soon as the registry shows the previous one.
  const adaToken = (await call(a.url, "POST", "/auth/login", null, { email: ada.email, password: NEW_PASSWORD })).token;
  /** @param {string} id */
  const loadOf = async (id) => (await registry()).find((n) => n.id === id)?.load ?? -1;
  await call(a.url, "POST", "/sessions", adaToken, { method: "pin", name: "Load on A" }, 201);
  await until("node-a holds one session", () => loadOf("node-a"), (l) => l === 1);
  await call(b.url, "POST", "/sessions", adaToken, { method: "pin", name: "Load on B" }, 201);
  await until("node-b holds one session", () => loadOf("node-b"), (l) => l === 1);
  assert.equal(await loadOf("node-c"), 0);

  // Ada creates the session in her console on B; it goes to C, the least loaded.
  const pin = await createPinSession(adaPage, "Cleo Cluster");
  await until("node-c holds the session", () => loadOf("node-c"), (l) => l === 1);
  const phoneContext = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  await instrument(phoneContext);
  if (process.env.DEBUG_PAGES) {
    const t = () => Date.now() % 100000;
    phoneContext.on("page", (p) => {
      p.on("console", (m) => console.log(`[phone ${t()}] ${m.text()}`));
      p.on("websocket", (ws) => {
        ws.on("framesent", (f) => console.log(`[phone ${t()}] > ${String(f.payload).slice(0, 160)}`));
        ws.on("framereceived", (f) => console.log(`[phone ${t()}] < ${String(f.payload).slice(0, 160)}`));
        ws.on("close", () => console.log(`[phone ${t()}] socket closed`));
      });
    });
  }
  const phone = await customerJoins(phoneContext, viaA.url, pin);
  await pickUp(adaPage, "Cleo Cluster");
  await phone.getByText("Connected to Ada").waitFor({ timeout: STEP });
  await until("video at Ada's console", () => mediaStats(adaPage), (s) => (s?.["inbound-rtp-video"]?.framesDecoded ?? 0) >= 50);
  await until(
    "audio both ways",
    async () => [await mediaStats(adaPage), await mediaStats(phone)],
    ([d, p]) => (d?.["inbound-rtp-audio"]?.packets ?? 0) >= 50 && (p?.["inbound-rtp-audio"]?.packets ?? 0) >= 50,
  );
  // Where everything is: the phone's socket on A, Ada's on B, the room (both peers) on C only.
  assert.equal(await gauge(a, 'lens_websockets_open{side="customer"}'), 1);
  assert.deepEqual([await gauge(a, "lens_media_rooms"), await gauge(b, "lens_media_rooms"), await gauge(c, "lens_media_rooms")], [0, 0, 1]);
  assert.equal(await gauge(c, "lens_media_peers_connected"), 2);

  // Hold and resume.
  await adaPage.getByRole("button", { name: "Hold" }).click();
  await phone.getByText("On hold").waitFor({ timeout: STEP });
  await adaPage.getByRole("button", { name: "Resume" }).click();
  await phone.getByText("Connected to Ada").waitFor({ timeout: STEP });
  // Chat both ways.
  await adaPage.locator(".chat").getByLabel("Message").fill("Hello from node B");
  await adaPage.locator(".chat").getByRole("button", { name: "Send" }).click();
  await phone.getByText("Hello from node B").waitFor({ timeout: STEP });
  await phone.getByLabel("Message").fill("Hello from node A");
  await phone.getByLabel("Message").press("Enter");
  await adaPage.getByText("Hello from node A").waitFor({ timeout: STEP });
  // Mutes: the customer's own, and the technician's of the customer.
  await phone.getByRole("button", { name: "Mute" }).click();
  await adaPage.getByText("The customer's microphone is off").waitFor({ timeout: STEP });
  await phone.getByRole("button", { name: "Unmute" }).click();
  await adaPage.getByText("The customer's microphone is off").waitFor({ state: "hidden", timeout: STEP });
  await adaPage.getByRole("button", { name: "Mute customer" }).click();
  await phone.getByText("the technician muted your microphone").waitFor({ timeout: STEP });
  await adaPage.getByRole("button", { name: "Unmute customer" }).click();
  await phone.getByText("the technician muted your microphone").waitFor({ state: "hidden", timeout: STEP });

  // Transfer to Tom, whose console is on A.
  const desk2 = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  await instrument(desk2);
  if (process.env.DEBUG_PAGES) {
    const t = () => Date.now() % 100000;
    desk2.on("page", (p) =>
      p.on("websocket", (ws) => {
        ws.on("framereceived", (f) => !/"(pong|candidate)"/.test(String(f.payload)) && console.log(`[tom ${t()}] < ${String(f.payload).slice(0, 160)}`));
        ws.on("framesent", (f) => !/"(ping|candidate)"/.test(String(f.payload)) && console.log(`[tom ${t()}] > ${String(f.payload).slice(0, 160)}`));
        ws.on("close", () => console.log(`[tom ${t()}] socket closed`));
      }),
    );
  }
  const tomPage = await consoleLogin(desk2, viaA.url, { email: "tom@example.com", password: ada.password });
  await adaPage.getByRole("button", { name: "Transfer" }).click();
  const transfer = adaPage.getByRole("dialog", { name: "Transfer the session" });
  await transfer.getByLabel("Transfer to").selectOption({ label: "Tom Tester (Tom)" });
  await transfer.getByLabel("Comment").fill("Across nodes");
  await transfer.getByRole("button", { name: "Transfer" }).click();
  await adaPage.locator(".session-item", { hasText: "Cleo Cluster" }).waitFor({ state: "detached", timeout: STEP });
  await pickUp(tomPage, "Cleo Cluster");
  await phone.getByText("Connected to Tom").waitFor({ timeout: STEP });
  await until("video at Tom's console", () => mediaStats(tomPage), (s) => (s?.["inbound-rtp-video"]?.framesDecoded ?? 0) >= 20);
  await until(
    "audio both ways with Tom",
    async () => [await mediaStats(tomPage), await mediaStats(phone)],
    ([d, p]) => (d?.["inbound-rtp-audio"]?.packets ?? 0) >= 20 && (p?.["inbound-rtp-audio"]?.packets ?? 0) >= 20,
  );
  assert.equal(await gauge(c, "lens_media_rooms"), 1, "the room stays on C after the transfer");
  const videosBefore = [(await leftovers(phone)).videos, (await leftovers(tomPage)).videos];

  // C dies. Nobody clicks anything.
  const cut = [await decoded(tomPage), await decoded(phone)];
  c.child.kill("SIGKILL");
  const killedAt = Date.now();
  if (process.env.DEBUG_PAGES) console.log(`[test ${killedAt % 100000}] SIGKILL`);
  await c.exited;
  const failover = await mediaBack("after SIGKILL of C", tomPage, phone, killedAt, cut[0], cut[1], FAILOVER_BAR_MS);
  console.log(`SIGKILL of node C: the console decoded video again ${failover} ms after the kill`);
  assert.ok(failover <= FAILOVER_BAR_MS);
  // One live peer connection per page, no second video element.
  for (const [page, videos] of /** @type {const} */ ([[phone, videosBefore[0]], [tomPage, videosBefore[1]]])) {
    assert.deepEqual(await leftovers(page), { open: 1, videos });
  }
  await phone.getByText("Connected to Tom").waitFor({ timeout: STEP });

  // Drain the node that now holds the room: it moves the session to the other node and exits.
  const rooms = [await gauge(a, "lens_media_rooms"), await gauge(b, "lens_media_rooms")];
  assert.equal(rooms.filter((r) => r === 1).length, 1, `one room on A or B after the takeover: ${rooms}`);
  const [holder, other] = rooms[0] === 1 ? [a, b] : [b, a];
  const cut2 = [await decoded(tomPage), await decoded(phone)];
  holder.child.kill("SIGTERM");
  const drainedAt = Date.now();
  const drain = await mediaBack("after SIGTERM of the room's node", tomPage, phone, drainedAt, cut2[0], cut2[1], 60_000);
  console.log(`SIGTERM of ${holder === a ? "node A" : "node B"} (holding the room): video again ${drain} ms later`);
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let limit;
  await Promise.race([
    holder.exited,
    new Promise((_, fail) => (limit = setTimeout(() => fail(new Error("the drained node did not exit within 90 s")), 90_000))),
  ]).finally(() => clearTimeout(limit));
  console.log(`the drained node exited ${Date.now() - drainedAt} ms after SIGTERM`);
  assert.equal(await gauge(other, "lens_media_rooms"), 1);
  for (const [page, videos] of /** @type {const} */ ([[phone, videosBefore[0]], [tomPage, videosBefore[1]]])) {
    assert.deepEqual(await leftovers(page), { open: 1, videos });
  }

  // Tom ends; the customer is told.
  await tomPage.getByRole("button", { name: "End", exact: true }).click();
  await phone.getByText("The technician ended the session").waitFor({ timeout: STEP });
  await tomPage.getByText("Session ended: Closed by technician").waitFor({ timeout: STEP });

  // One session, with its whole story; the Session report has one row for it.
  const sessions = await call(other.url, "GET", "/sessions?limit=1000", admin);
  const mine = sessions.filter((/** @type {any} */ s) => s.name === "Cleo Cluster");
  assert.equal(mine.length, 1, JSON.stringify(mine));
  const detail = await call(other.url, "GET", `/sessions/${mine[0].id}`, admin);
  const story = detail.events.map((/** @type {any} */ e) => `${e.from ?? "-"}>${e.to}`);
  console.log(`session ${mine[0].id}: ${story.join(", ")}`);
  assert.equal(detail.status, "Closed by technician");
  assert.equal(story.filter((/** @type {string} */ s) => s.endsWith(">Closed by technician")).length, 1);
  assert.ok(story.includes("Active>Reconnecting"), "the failover counts as Reconnecting");
  const report = await call(other.url, "GET", "/reports/session?range=today&per_page=1000", admin);
  const idColumn = report.columns.indexOf("Session ID");
  const rows = report.rows.filter((/** @type {any[]} */ r) => String(r[idColumn]) === String(mine[0].id));
  assert.equal(rows.length, 1, `one Session report row: ${JSON.stringify(report.columns)}`);
  // The Reconnecting Time counts from the takeover (the dead node could not write) to the
  // phone's return: under a second here, so it may read 0:00:00.
  const reconnecting = rows[0][report.columns.indexOf("Reconnecting Time")];
  console.log(`Session report: Reconnecting Time ${reconnecting}, Status ${rows[0][report.columns.indexOf("Status")]}`);
  assert.match(String(reconnecting), /^\d+:\d\d:\d\d$/);
  assert.equal(rows[0][report.columns.indexOf("Status")], "Closed by technician");

  await phoneContext.close();
  await desk.close();
  await desk2.close();
});
