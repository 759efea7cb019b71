// Issue 5's main flows through the real pages: a wrong PIN, then a whole session — chat both
// ways, mute and unmute on both sides, hold and resume, a transfer to a colleague, the customer
// ends, the surveys (the self-hosted kind) are offered. Screenshots of each page at phone and desktop sizes go to
// tests/browser/screenshots/ (not committed) for people to look at.

import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, test } from "node:test";
import {
  call,
  consoleLogin,
  createPinSession,
  customerJoins,
  instrument,
  mediaStats,
  pickUp,
  requireChromium,
  screenshotDir,
  acquire,
  release,
  STEP,
  technicianWithAudio,
  until,
} from "./harness.mjs";

const have = requireChromium();
/** @type {import("./harness.mjs").Server} */
let server;
/** @type {import("./harness.mjs").Browser} */
let chromium;
/** @type {Awaited<ReturnType<typeof technicianWithAudio>>} */
let tech;

/** The sizes of the screenshots: phones and desktops. */
const SIZES = [
  [360, 740],
  [390, 844],
  [1280, 800],
  [1440, 900],
];

/**
 * Saves `page` at every size as <name>-<width>.png, then restores its size.
 * @param {import("playwright-core").Page} page
 * @param {string} name
 */
async function shoot(page, name) {
  const before = page.viewportSize();
  for (const [width, height] of SIZES) {
    await page.setViewportSize({ width, height });
    await page.screenshot({ path: join(screenshotDir(), `${name}-${width}.png`) });
  }
  if (before) await page.setViewportSize(before);
}

before(async () => {
  if (!have) return;
  ({ server, chromium } = await acquire());
  tech = await technicianWithAudio(server.url, "sam@example.com");
  // Self-hosted surveys on both sides, with session details for the customer's.
  const settings = await call(server.url, "GET", `/technician-groups/${tech.group}/settings`, tech.admin);
  settings.customer_survey = { ...settings.customer_survey, mode: "self_hosted", url: "https://survey.example.com/lens", add_session_details: true };
  settings.technician_survey = { ...settings.technician_survey, mode: "self_hosted", url: "https://survey.example.com/tech" };
  // A waiting session turns red in the queue after a second.
  settings.timeouts.alarms = [{ kind: "waiting", after_seconds: 1, color: "#d32f2f" }];
  await call(server.url, "PUT", `/technician-groups/${tech.group}/settings`, tech.admin, settings);
});

after(async () => {
  if (have) await release();
});

test("a wrong PIN is refused with a clear message", { skip: !have }, async () => {
  const context = await chromium.browser.newContext({ viewport: { width: 390, height: 844 } });
  const page = await context.newPage();
  await page.goto(`${server.url}/`);
  await shoot(page, "customer-entry");
  await page.getByLabel("PIN code").fill("12345");
  await page.getByRole("button", { name: "Start" }).click();
  await page.getByText("The PIN code has 6 digits.").waitFor();
  await page.getByLabel("PIN code").fill("000 000");
  await page.getByRole("button", { name: "Start" }).click();
  await page.getByText("This code is unknown or has already been used").waitFor({ timeout: STEP });
  // The page is usable with the keyboard alone: the PIN field has the focus, Enter submits.
  await page.getByLabel("PIN code").fill("111111");
  await page.getByLabel("PIN code").press("Enter");
  await page.getByText("This code is unknown or has already been used").waitFor({ timeout: STEP });
  await context.close();
});

test("a whole session: chat, mutes, hold and resume, transfer, the customer ends, surveys", { skip: !have }, async () => {
  const desk = await chromium.browser.newContext({ viewport: { width: 1280, height: 800 } });
  await instrument(desk);
  const consolePage = await consoleLogin(desk, server.url, tech);
  const pin = await createPinSession(consolePage, "Ann Lee");
  const mobile = await chromium.browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  await instrument(mobile);
  const phone = await customerJoins(mobile, server.url, pin);
  await shoot(phone, "customer-waiting");
  // The queue shows the waiting time, and the group's alarm colour once it has passed.
  const queued = consolePage.locator(".session-item.alarm", { hasText: "Ann Lee" });
  await queued.waitFor({ timeout: STEP });
  await until("the alarm colour", () => queued.evaluate((e) => getComputedStyle(e).borderInlineStartColor), (c) => c === "rgb(211, 47, 47)");
  await consolePage.locator(".session-item", { hasText: "Ann Lee" }).getByText(/Waiting \d+:\d\d/).waitFor();
  await shoot(consolePage, "console-waiting");
  await pickUp(consolePage, "Ann Lee");
  await phone.getByText("Connected to Sam").waitFor({ timeout: STEP });
  await until("video at the console", () => mediaStats(consolePage), (s) => (s?.["inbound-rtp-video"]?.framesDecoded ?? 0) > 20);

  // Chat both ways.
  const chat = consolePage.locator(".chat");
  await chat.getByLabel("Message").fill("Hi Ann, please point the camera at the router.");
  await chat.getByRole("button", { name: "Send" }).click();
  await phone.getByText("Hi Ann, please point the camera at the router.").waitFor({ timeout: STEP });
  await phone.getByLabel("Message").fill("Like this? The red one blinks.");
  await phone.getByLabel("Message").press("Enter");
  await consolePage.getByText("Like this? The red one blinks.").waitFor({ timeout: STEP });

  // A private note stays in the console.
  await consolePage.getByLabel("Note", { exact: true }).fill("LOS light red: fibre fault.");
  await consolePage.getByRole("button", { name: "Add" }).click();
  await consolePage.locator(".notes-log").getByText("LOS light red: fibre fault.").waitFor();
  assert.equal(await phone.getByText("LOS light red").count(), 0);

  // The customer mutes and unmutes; the console is told.
  await phone.getByRole("button", { name: "Mute" }).click();
  await consolePage.getByText("The customer's microphone is off").waitFor({ timeout: STEP });
  await phone.getByRole("button", { name: "Unmute" }).click();
  await consolePage.getByText("The customer's microphone is off").waitFor({ state: "hidden", timeout: STEP });
  // The technician mutes the customer; the phone says so; and unmutes.
  await consolePage.getByRole("button", { name: "Mute customer" }).click();
  await phone.getByText("the technician muted your microphone").waitFor({ timeout: STEP });
  await consolePage.getByRole("button", { name: "Unmute customer" }).click();
  await phone.getByText("the technician muted your microphone").waitFor({ state: "hidden", timeout: STEP });
  // The technician mutes its own microphone, and unmutes it.
  await consolePage.getByRole("button", { name: "Mute my microphone" }).click();
  await consolePage.getByText("Your microphone is off").waitFor({ timeout: STEP });
  await consolePage.getByRole("button", { name: "Unmute my microphone" }).click();
  await consolePage.getByText("Your microphone is off").waitFor({ state: "hidden", timeout: STEP });
  // The customer pauses the video, and resumes it.
  await phone.getByRole("button", { name: "Pause video" }).click();
  await consolePage.getByText("The customer paused the video").first().waitFor({ timeout: STEP });
  await phone.getByRole("button", { name: "Resume video" }).click();
  await consolePage.getByText("The customer paused the video").first().waitFor({ state: "hidden", timeout: STEP });

  await shoot(phone, "customer-call");
  await shoot(consolePage, "console-call");

  // Hold and resume.
  await consolePage.getByRole("button", { name: "Hold" }).click();
  await phone.getByText("On hold").waitFor({ timeout: STEP });
  await consolePage.getByRole("button", { name: "Resume" }).click();
  await phone.getByText("Connected to Sam").waitFor({ timeout: STEP });

  // The snapshot is a PNG download.
  const [download] = await Promise.all([consolePage.waitForEvent("download"), consolePage.getByRole("button", { name: "Snapshot" }).click()]);
  assert.match(download.suggestedFilename(), /^lens-session-\d+-.*\.png$/);

  // Sam transfers the session to Tom, a colleague in the same group, with a comment; Tom picks it
  // up and gets the phone's video; Sam's console lets it go.
  await call(server.url, "POST", "/technicians", tech.admin, { name: "Tom Tester", nickname: "Tom", email: "tom@example.com", password: tech.password, group_id: tech.group }, 201);
  const desk2 = await chromium.browser.newContext({ viewport: { width: 1280, height: 800 } });
  await instrument(desk2);
  const tomPage = await consoleLogin(desk2, server.url, { email: "tom@example.com", password: tech.password });
  await consolePage.getByRole("button", { name: "Transfer" }).click();
  const transfer = consolePage.getByRole("dialog", { name: "Transfer the session" });
  await transfer.getByLabel("Transfer to").selectOption({ label: "Tom Tester (Tom)" });
  await transfer.getByLabel("Comment").fill("Needs a fibre specialist");
  await transfer.getByRole("button", { name: "Transfer" }).click();
  await consolePage.locator(".session-item", { hasText: "Ann Lee" }).waitFor({ state: "detached", timeout: STEP });
  await pickUp(tomPage, "Ann Lee");
  await tomPage.getByText("“Needs a fibre specialist”").waitFor({ timeout: STEP });
  await phone.getByText("Connected to Tom").waitFor({ timeout: STEP });
  await until("video at Tom's console", () => mediaStats(tomPage), (s) => (s?.["inbound-rtp-video"]?.framesDecoded ?? 0) > 20);

  // The customer ends; both sides see it, with their surveys.
  await phone.getByRole("button", { name: "End", exact: true }).click();
  await phone.getByText("You ended the session").waitFor({ timeout: STEP });
  const survey = await phone.getByRole("link", { name: "Tell us how we did" }).getAttribute("href");
  assert.match(survey ?? "", /^https:\/\/survey\.example\.com\/lens\?.*RescueSessionID=\d+/);
  await tomPage.getByText("Session ended: Closed by customer").waitFor({ timeout: STEP });
  const techSurvey = await tomPage.getByRole("link", { name: "Technician survey" }).getAttribute("href");
  assert.match(techSurvey ?? "", /^https:\/\/survey\.example\.com\/tech/);
  await shoot(phone, "customer-ended");
  await shoot(tomPage, "console-ended");
  await tomPage.getByRole("button", { name: "Remove from the list" }).click();
  await tomPage.locator(".session-item", { hasText: "Ann Lee" }).waitFor({ state: "detached" });
  await mobile.close();
  await desk.close();
  await desk2.close();
});

test("the pages follow the browser's language among the twelve, with no raw key on screen", { skip: !have }, async () => {
  /** Browser locale → the catalog the pages must pick. */
  const locales = [
    ["de-DE", "de"], ["en-US", "en"], ["es-ES", "es"], ["fr-FR", "fr"], ["it-IT", "it"], ["ja-JP", "ja"],
    ["ko-KR", "ko"], ["nl-NL", "nl"], ["pt-BR", "pt-br"], ["th-TH", "th"], ["zh-CN", "zh"], ["zh-TW", "zh-TW"],
  ];
  const rawKey = /\b(common|chat|status|customer|login|password|console|create|transfer|admin)\.[A-Za-z]/;
  for (const [locale, code] of locales) {
    const context = await chromium.browser.newContext({ locale, viewport: { width: 360, height: 740 } });
    const page = await context.newPage();
    for (const path of ["/", "/console"]) {
      await page.goto(`${server.url}${path}`);
      await page.waitForFunction((want) => document.documentElement.lang === want, code);
      const text = await page.locator("body").innerText();
      assert.doesNotMatch(text, rawKey, `${locale} ${path}: a raw key is shown`);
      const labels = await page.locator("[aria-label], [placeholder]").evaluateAll((els) =>
        els.map((e) => `${e.getAttribute("aria-label") ?? ""} ${e.getAttribute("placeholder") ?? ""}`).join(" "),
      );
      assert.doesNotMatch(labels, rawKey, `${locale} ${path}: a raw key in a label`);
    }
    if (code === "en") {
      // Every form control of every page has a label (a <label>, or aria-label).
      for (const path of ["/", "/console", "/admin"]) {
        await page.goto(`${server.url}${path}`);
        await page.waitForFunction(() => document.documentElement.lang === "en");
        const unlabelled = await page.locator("input, select, textarea, button").evaluateAll((els) =>
          els
            .filter((e) => {
              const control = /** @type {HTMLInputElement} */ (e);
              const named = (control.labels?.length ?? 0) > 0 || e.getAttribute("aria-label") || (e.tagName === "BUTTON" && e.textContent?.trim());
              return !named;
            })
            .map((e) => e.outerHTML.slice(0, 80)),
        );
        assert.deepEqual(unlabelled, [], `${path}: controls without a label`);
      }
    }
    if (["de", "ja", "th"].includes(code)) {
      await page.goto(`${server.url}/`);
      await page.waitForFunction((want) => document.documentElement.lang === want, code);
      await page.screenshot({ path: join(screenshotDir(), `customer-entry-${code}-360.png`) });
    }
    await context.close();
  }
});
