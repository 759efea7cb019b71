// Test harness for the browser tests: the real `lens` binary on 127.0.0.1 with a fresh data
// directory, the HTTP API for set-up, and Debian's Chromium driven by playwright-core (never a
// downloaded browser). With CI=true a missing tool is a failure, never a skip.

import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, mkdirSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
export const REPO = resolve(here, "../..");
export const CHROMIUM = process.env.LENS_TEST_CHROMIUM ?? "/usr/bin/chromium";
export const ADMIN_EMAIL = "admin@example.com";
export const ADMIN_PASSWORD = "Admin-Pass-2026!";
/** Screenshots for people to look at; not committed (.gitignore). */
export const SCREENSHOTS = join(here, "screenshots");

/** The lens binary the cargo tests built (scripts/test builds it before this step). */
export function lensBinary() {
  if (process.env.LENS_BIN) return process.env.LENS_BIN;
  const target = process.env.CARGO_TARGET_DIR ?? join(REPO, "target");
  return join(target, "debug", "lens");
}

export async function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.once("error", fail);
    s.listen(0, "127.0.0.1", () => {
      const address = s.address();
      const port = typeof address === "object" && address ? address.port : 0;
      s.close(() => ok(port));
    });
  });
}

/** @typedef {Awaited<ReturnType<typeof startServer>>} Server */
/** @typedef {Awaited<ReturnType<typeof launch>>} Browser */

/**
 * Starts `lens serve` on a free port; resolves once /healthz answers 200.
 * @param {{config?: string, env?: Record<string, string>}} [options] `config`: the text of a
 *   configuration file (TOML) to start with; `env`: more variables, over the defaults (e.g. a fixed
 *   LENS_MEDIA_UDP_PORT for a test that impairs the media port)
 * @returns {Promise<{url: string, stop: () => Promise<void>, log: () => string,
 *   child: import("node:child_process").ChildProcess, exited: Promise<unknown>}>}
 */
export async function startServer(options = {}) {
  const bin = lensBinary();
  if (!existsSync(bin)) throw new Error(`lens binary not found at ${bin}: build it first (cargo build)`);
  const dir = mkdtempSync(join(tmpdir(), "lens-browser-"));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  let output = "";
  const args = ["serve"];
  if (options.config !== undefined) {
    writeFileSync(join(dir, "lens.toml"), options.config);
    args.push("--config", join(dir, "lens.toml"));
  }
  const child = spawn(bin, args, {
    env: {
      ...process.env,
      LENS_LISTEN: `127.0.0.1:${port}`,
      LENS_DATA_DIR: join(dir, "data"),
      LENS_MEDIA_UDP_PORT: "0",
      LENS_MEDIA_PUBLIC_IP: "127.0.0.1",
      LENS_BOOTSTRAP_EMAIL: ADMIN_EMAIL,
      LENS_BOOTSTRAP_PASSWORD: ADMIN_PASSWORD,
      RUST_LOG: process.env.RUST_LOG ?? "warn",
      // Last, so that a test can override the defaults above (e.g. a fixed media port).
      ...options.env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout.on("data", (d) => (output += d));
  child.stderr.on("data", (d) => (output += d));
  const exited = new Promise((r) => child.once("exit", r));
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`lens serve exited (${child.exitCode}):\n${output}`);
    try {
      const r = await fetch(`${url}/healthz`);
      if (r.status === 200) break;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`lens serve did not answer /healthz:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    url,
    log: () => output,
    // For the tests that kill or drain a node themselves (cluster.test.mjs).
    child,
    exited,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
      if (child.exitCode === null) child.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Calls the API; throws on a status other than `expect`.
 * @param {string} base
 * @param {string} method
 * @param {string} path
 * @param {string | null} token
 * @param {unknown} [body]
 * @param {number} [expect]
 */
export async function call(base, method, path, token, body, expect) {
  /** @type {Record<string, string>} */
  const headers = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const r = await fetch(`${base}/api/v1${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  const json = text ? JSON.parse(text) : null;
  const ok = expect === undefined ? r.ok : r.status === expect;
  if (!ok) throw new Error(`${method} ${path}: HTTP ${r.status} ${text}`);
  return json;
}

/**
 * A technician group with audio on and a technician in it, set up by the master administrator
 * through the API; its nickname is the email's local part, capitalised. The technician must change
 * the password at the first login (the default policy).
 * @param {string} base
 * @param {string} email
 */
export async function technicianWithAudio(base, email) {
  const admin = (await call(base, "POST", "/auth/login", null, { email: ADMIN_EMAIL, password: ADMIN_PASSWORD })).token;
  const group = await call(base, "POST", "/technician-groups", admin, { name: `Field ${email}` }, 201);
  const settings = await call(base, "GET", `/technician-groups/${group.id}/settings`, admin);
  settings.audio.enabled = true;
  await call(base, "PUT", `/technician-groups/${group.id}/settings`, admin, settings);
  const password = "Sample1%x";
  const local = email.split("@")[0];
  const nickname = local.charAt(0).toUpperCase() + local.slice(1);
  const tech = await call(base, "POST", "/technicians", admin, { name: `${nickname} Tester`, nickname, email, password, group_id: group.id }, 201);
  return { admin, group: group.id, technician: tech.id, email, password };
}

/**
 * Makes recording forced for the technician's group, into `folder` (uploaded at once).
 * @param {string} base
 * @param {{admin: string, group: number}} tech
 * @param {string} folder
 */
export async function forceRecording(base, tech, folder) {
  const settingsPath = `/technician-groups/${tech.group}/settings`;
  const settings = await call(base, "GET", settingsPath, tech.admin);
  settings.screen_recording = { forced: true, location: folder, deferred_upload: false };
  await call(base, "PUT", settingsPath, tech.admin, settings);
}

/** Skips (locally) or fails (CI=true) when Chromium is missing. */
/** Where Debian puts iptables (the ICE-TCP and loss tests drop media-port traffic with it). */
export const IPTABLES = ["/usr/sbin/iptables", "/sbin/iptables"].find((p) => existsSync(p));

/** Skips (locally) or fails (CI=true) without iptables and root. */
export function requireIptables() {
  const root = process.getuid?.() === 0;
  if (IPTABLES && root) return true;
  if (process.env.CI === "true") throw new Error(`iptables ${IPTABLES ? "needs root" : "not found"} but CI=true: run ./scripts/test as root`);
  return false;
}

/** Debian's `janus` (the comparison target of quality.mjs and cpu.mjs). */
export function requireJanus() {
  if (existsSync("/usr/bin/janus")) return true;
  if (process.env.CI === "true") throw new Error("/usr/bin/janus not found but CI=true: run ./scripts/test");
  return false;
}

export function requireChromium() {
  if (existsSync(CHROMIUM)) return true;
  if (process.env.CI === "true") throw new Error(`${CHROMIUM} not found but CI=true: run ./scripts/test`);
  return false;
}

/**
 * Headless Chromium with fake camera and microphone, as FIELD-NOTES.md says works here.
 * @param {string[]} [extra] more flags (e.g. --use-file-for-fake-video-capture=FILE.y4m)
 */
export async function launch(extra = []) {
  // playwright gives every launch a fresh profile of its own (it refuses --user-data-dir here).
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--use-fake-ui-for-media-stream",
      "--use-fake-device-for-media-stream",
      "--allow-loopback-in-peer-connection",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--disable-quic",
      "--no-first-run",
      "--autoplay-policy=no-user-gesture-required",
      ...extra,
    ],
  });
  return {
    browser,
    close: () => browser.close(),
  };
}

/**
 * Keeps every RTCPeerConnection a page makes in `window.__lensPcs` (and its configuration in
 * `window.__lensPcConfigs`), so a test can read getStats and what the page was configured with.
 * With `videoCodec` ("video/VP8", "video/H264") the page's offers carry only that video codec
 * (setCodecPreferences, packetization-mode 1 for H.264); with `first` they carry every codec the
 * browser has, that one's entries first (as a phone whose hardware encoder is H.264 offers).
 * @param {import("playwright-core").BrowserContext} context
 * @param {string} [videoCodec]
 * @param {{first?: boolean}} [options]
 */
export async function instrument(context, videoCodec, options) {
  await context.addInitScript(({ codec, first }) => {
    const w = /** @type {any} */ (window);
    w.__lensPcs = [];
    w.__lensPcConfigs = [];
    const Original = window.RTCPeerConnection;
    class Recorded extends Original {
      /** @param {RTCConfiguration} [config] */
      constructor(config) {
        super(config);
        w.__lensPcs.push(this);
        w.__lensPcConfigs.push(JSON.parse(JSON.stringify(config ?? {})));
      }
      /** @param {RTCOfferOptions} [options] */
      createOffer(options) {
        if (codec) {
          const all = RTCRtpReceiver.getCapabilities("video")?.codecs ?? [];
          let wanted = all.filter((c) => c.mimeType === codec);
          if (first) {
            wanted = [...wanted, ...all.filter((c) => c.mimeType !== codec)];
          } else if (codec === "video/H264") {
            const pm1 = wanted.filter((c) => /packetization-mode=1/.test(c.sdpFmtpLine ?? ""));
            const baseline = pm1.filter((c) => /profile-level-id=42e01f/.test(c.sdpFmtpLine ?? ""));
            wanted = baseline.length ? baseline : pm1;
          }
          for (const tx of this.getTransceivers()) {
            if (tx.sender.track?.kind === "video") tx.setCodecPreferences(wanted);
          }
        }
        return super.createOffer(options);
      }
    }
    window.RTCPeerConnection = Recorded;
  }, { codec: videoCodec ?? "", first: options?.first ?? false });
}

/**
 * The WebRTC statistics the test looks at, from the page's last peer connection.
 * @param {import("playwright-core").Page} page
 */
export async function mediaStats(page) {
  return page.evaluate(async () => {
    const pcs = /** @type {RTCPeerConnection[]} */ (/** @type {any} */ (window).__lensPcs ?? []);
    const pc = pcs[pcs.length - 1];
    if (!pc) return null;
    const report = await pc.getStats();
    /** @type {Record<string, any>} */
    const out = { state: pc.connectionState };
    report.forEach((s) => {
      if (s.type === "inbound-rtp" || s.type === "outbound-rtp") {
        const key = `${s.type}-${s.kind}`;
        const codec = s.codecId ? report.get(s.codecId) : undefined;
        out[key] = {
          packets: s.type === "inbound-rtp" ? s.packetsReceived : s.packetsSent,
          framesDecoded: s.framesDecoded,
          framesEncoded: s.framesEncoded,
          frameWidth: s.frameWidth,
          frameHeight: s.frameHeight,
          codec: codec?.mimeType,
          fmtp: codec?.sdpFmtpLine,
        };
      }
    });
    return out;
  });
}

export function screenshotDir() {
  mkdirSync(SCREENSHOTS, { recursive: true });
  return SCREENSHOTS;
}

/** The password a technician chooses at the first login (the console asks for it). */
export const NEW_PASSWORD = "Analytic-Engine1";
/** How long to wait for a page to reach a state (ICE, DTLS, first frames): generous. */
export const STEP = 20_000;

/**
 * Opens /console in `context` and logs in through the page, choosing a new password when the
 * console asks for one (an administrator set the first one).
 * @param {import("playwright-core").BrowserContext} context
 * @param {string} base
 * @param {{email: string, password: string}} tech
 */
export async function consoleLogin(context, base, tech) {
  const page = await context.newPage();
  page.on("dialog", (d) => d.accept());
  await page.goto(`${base}/console`);
  const login = page.locator("#login");
  await login.getByLabel("Email").fill(tech.email);
  await login.getByLabel("Password").fill(tech.password);
  await login.getByRole("button", { name: "Log in" }).click();
  await page.getByLabel("New password", { exact: true }).fill(NEW_PASSWORD);
  await page.getByLabel("Repeat the new password").fill(NEW_PASSWORD);
  await page.getByRole("button", { name: "Change password" }).click();
  await page.getByRole("button", { name: "New session" }).waitFor({ timeout: STEP });
  return page;
}

/**
 * Creates a PIN session in the console's dialog; returns the PIN.
 * @param {import("playwright-core").Page} page
 * @param {string} name
 */
export async function createPinSession(page, name) {
  await page.getByRole("button", { name: "New session" }).click();
  const dialog = page.getByRole("dialog", { name: "New session" });
  await dialog.getByLabel("Name", { exact: true }).fill(name);
  await dialog.getByRole("button", { name: "Create" }).click();
  const code = dialog.locator(".pin-code");
  await code.waitFor({ state: "visible", timeout: STEP });
  const pin = (await code.getAttribute("data-pin")) ?? "";
  await dialog.getByRole("button", { name: "Close" }).click();
  return pin;
}

/**
 * A customer page in `context` that enters `pin` and waits for a technician.
 * @param {import("playwright-core").BrowserContext} context
 * @param {string} base
 * @param {string} pin
 */
export async function customerJoins(context, base, pin) {
  const phone = await context.newPage();
  phone.on("dialog", (d) => d.accept());
  await phone.goto(`${base}/`);
  await phone.getByLabel("PIN code").fill(pin);
  await phone.getByRole("button", { name: "Start" }).click();
  await phone
    .getByText("Waiting for a technician")
    .waitFor({ timeout: STEP })
    .catch(async (e) => {
      throw new Error(`${e.message}\nthe page says: ${await phone.locator("main").innerText()}`);
    });
  return phone;
}

/**
 * The console picks up the session named `name` once it waits.
 * @param {import("playwright-core").Page} page
 * @param {string} name
 */
export async function pickUp(page, name) {
  const item = page.locator(".session-item", { hasText: name });
  await item.locator(".pill.status-waiting").waitFor({ timeout: STEP });
  await item.click();
  await page.getByRole("button", { name: "Pick up" }).click();
}

/**
 * Polls `read` until `done` says yes; fails with the last value after `ms`.
 * @template T
 * @param {string} what
 * @param {() => Promise<T>} read
 * @param {(value: T) => boolean} done
 * @param {number} [ms]
 * @returns {Promise<T>}
 */
export async function until(what, read, done, ms = STEP) {
  const deadline = Date.now() + ms;
  for (;;) {
    const last = await read();
    if (done(last)) return last;
    if (Date.now() > deadline) assert.fail(`${what}: not reached within ${ms} ms; last: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** @type {Promise<{server: Awaited<ReturnType<typeof startServer>>, chromium: Awaited<ReturnType<typeof launch>>}> | null} */
let sharedParts = null;
let sharedUsers = 0;

/**
 * One server and one Chromium for every test file of this process (starting them is the slow
 * part); stopped when the last file that acquired them releases them.
 */
export function acquire() {
  sharedUsers += 1;
  sharedParts ??= (async () => ({ server: await startServer(), chromium: await launch() }))();
  return sharedParts;
}

export async function release() {
  sharedUsers -= 1;
  if (sharedUsers > 0 || !sharedParts) return;
  const { server, chromium } = await sharedParts;
  sharedParts = null;
  await chromium.close();
  await server.stop();
}

/**
 * Runs `main` when the module at `moduleUrl` is the script node was started with (not when a
 * test imports it), and exits with its outcome.
 * @param {string} moduleUrl the caller's import.meta.url
 * @param {() => Promise<void>} main
 */
export function runIfScript(moduleUrl, main) {
  if (!process.argv[1] || moduleUrl !== pathToFileURL(process.argv[1]).href) return;
  main().then(
    () => process.exit(0),
    (e) => {
      console.error(e);
      process.exit(1);
    },
  );
}
