// The built-in surveys through the pages: after a session the customer answers the Customer Survey
// on the phone and the technician the Technician Survey in the console, with the keyboard where it
// matters; both then appear in the reports. An administrator then pulls that session's group's
// Session report in the admin center's Reports tab and downloads it as TSV. Last, single sign-on
// lands logged in on the console.

import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { readFile } from "node:fs/promises";
import {
  ADMIN_EMAIL,
  ADMIN_PASSWORD,
  acquire,
  call,
  consoleLogin,
  createPinSession,
  customerJoins,
  instrument,
  pickUp,
  release,
  requireChromium,
  screenshotDir,
  STEP,
  technicianWithAudio,
} from "./harness.mjs";

const have = requireChromium();
/** @type {import("./harness.mjs").Server} */
let server;
/** @type {import("./harness.mjs").Browser} */
let chromium;
/** @type {Awaited<ReturnType<typeof technicianWithAudio>>} */
let tech;

/**
 * Saves `page` at 360 and 1280 px wide as <name>-<width>.png.
 * @param {import("playwright-core").Page} page
 * @param {string} name
 */
async function shoot(page, name) {
  const before = page.viewportSize();
  for (const [width, height] of [
    [360, 740],
    [1280, 800],
  ]) {
    await page.setViewportSize({ width, height });
    await page.screenshot({ path: join(screenshotDir(), `${name}-${width}.png`), fullPage: true });
  }
  if (before) await page.setViewportSize(before);
}

before(async () => {
  if (!have) return;
  ({ server, chromium } = await acquire());
  tech = await technicianWithAudio(server.url, "val@example.com");
  const settings = await call(server.url, "GET", `/technician-groups/${tech.group}/settings`, tech.admin);
  settings.customer_survey = {
    mode: "built_in",
    url: null,
    add_session_details: false,
    questions: [
      { text: "How was it?", kind: "drop_down", answers: ["Good", "Bad"], mandatory: true, enabled: true },
      { text: "Comments", kind: "open", answers: [], mandatory: false, enabled: true },
    ],
  };
  settings.technician_survey = {
    mode: "built_in",
    url: null,
    add_session_details: false,
    questions: [{ text: "What was done?", kind: "open", answers: [], mandatory: true, enabled: true }],
  };
  await call(server.url, "PUT", `/technician-groups/${tech.group}/settings`, tech.admin, settings);
});

after(async () => {
  if (have) await release();
});

test("the built-in surveys are answered in the pages and reported", { skip: !have }, async () => {
  const desk = await chromium.browser.newContext({ viewport: { width: 1280, height: 800 } });
  await instrument(desk);
  const consolePage = await consoleLogin(desk, server.url, tech);
  const pin = await createPinSession(consolePage, "Sue Park");
  const mobile = await chromium.browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  await instrument(mobile);
  const phone = await customerJoins(mobile, server.url, pin);
  await pickUp(consolePage, "Sue Park");
  await phone.getByText("Connected to Val").waitFor({ timeout: STEP });
  await phone.getByRole("button", { name: "End", exact: true }).click();

  // The customer: the mandatory drop-down, a comment, sent with Enter from the keyboard.
  await phone.getByRole("heading", { name: "Customer survey" }).waitFor({ timeout: STEP });
  await phone.getByLabel("How was it? (required)").selectOption("Good");
  await phone.getByLabel("Comments").fill("Quick and friendly");
  await shoot(phone, "customer-survey");
  await phone.getByRole("button", { name: "Send answers" }).focus();
  await phone.keyboard.press("Enter");
  await phone.getByText("Thank you: your answers were saved.").waitFor({ timeout: STEP });

  // The technician: sending without the mandatory answer is stopped by the form.
  await consolePage.getByRole("heading", { name: "Technician survey" }).waitFor({ timeout: STEP });
  const what = consolePage.getByLabel("What was done? (required)");
  await consolePage.getByRole("button", { name: "Send answers" }).click();
  assert.equal(await what.evaluate((e) => /** @type {HTMLTextAreaElement} */ (e).validity.valueMissing), true);
  await what.fill("Replaced the cable");
  await shoot(consolePage, "console-survey");
  await consolePage.getByRole("button", { name: "Send answers" }).click();
  await consolePage.getByText("Thank you: your answers were saved.").waitFor({ timeout: STEP });

  const admin = tech.admin;
  const customer = await call(server.url, "GET", "/reports/customer-survey?list=all&range=today", admin);
  const cRow = customer.rows.find((/** @type {any[]} */ r) => r.includes("Sue Park"));
  assert.ok(cRow, JSON.stringify(customer));
  assert.equal(cRow[customer.columns.indexOf("How was it?")], "Good");
  assert.equal(cRow[customer.columns.indexOf("Comments")], "Quick and friendly");
  const technician = await call(server.url, "GET", "/reports/technician-survey?list=all&range=today", admin);
  const tRow = technician.rows.find((/** @type {any[]} */ r) => r.includes("Replaced the cable"));
  assert.ok(tRow, JSON.stringify(technician));
  await mobile.close();
  await desk.close();
});

test("the Reports tab shows a group's Session report and downloads it", { skip: !have }, async () => {
  const context = await chromium.browser.newContext({ viewport: { width: 1280, height: 800 }, acceptDownloads: true });
  const page = await context.newPage();
  await page.goto(`${server.url}/admin`);
  const login = page.locator("#login");
  await login.getByLabel("Email").fill(ADMIN_EMAIL);
  await login.getByLabel("Password").fill(ADMIN_PASSWORD);
  await login.getByRole("button", { name: "Log in" }).click();
  await page.getByRole("button", { name: "Reports" }).click();
  const view = page.locator("#reports-view");
  await view.getByLabel("Report area").selectOption("session");
  await view.getByLabel("Report type").selectOption("all");
  await view.getByLabel("Organizational unit").selectOption(`technician_group:${tech.group}`);
  await view.getByLabel("Date range").selectOption("today");
  await view.getByLabel("Time zone").selectOption("UTC");
  await view.getByRole("button", { name: "Get report" }).click();
  const table = view.locator("#report-table");
  await table.getByRole("cell", { name: "Sue Park" }).waitFor({ timeout: STEP });
  assert.ok((await table.locator("th").allInnerTexts()).includes("Session ID"));
  // Explicit dates reach the same row; a summary has no pager.
  const today = new Date().toISOString().slice(0, 10);
  await view.getByLabel("Date range").selectOption("custom");
  await view.getByLabel("Start date").fill(today);
  await view.getByLabel("End date").fill(today);
  await view.getByRole("button", { name: "Get report" }).click();
  await table.getByRole("cell", { name: "Sue Park" }).waitFor({ timeout: STEP });
  await shoot(page, "admin-reports");
  const [download] = await Promise.all([page.waitForEvent("download"), view.getByRole("button", { name: "Download TSV" }).click()]);
  assert.match(download.suggestedFilename(), /^session-.*\.tsv$/);
  const tsv = await readFile(/** @type {string} */ (await download.path()), "utf8");
  assert.match(tsv.split("\n")[0], /Session ID/);
  assert.match(tsv, /Sue Park/);
  await view.getByLabel("Report type").selectOption("summary");
  await view.getByRole("button", { name: "Get report" }).click();
  const caption = view.locator("caption", { hasText: "Summary" });
  await caption.waitFor({ timeout: STEP });
  // The list type is named once, by the server's title.
  assert.equal((await caption.innerText()).split("Summary").length - 1, 1);
  assert.equal(await view.locator("#report-pager").isHidden(), true);
  await context.close();
});

test("single sign-on lands on the console logged in, with the token gone from the address", { skip: !have }, async () => {
  const sso = await technicianWithAudio(server.url, "sso@example.com");
  // The administrator-set password still owes its forced change: an SSO login is not held to it.
  const first = await call(server.url, "POST", "/auth/login", null, { email: sso.email, password: sso.password });
  assert.equal(first.must_change_password, true);
  await call(server.url, "PATCH", `/technicians/${sso.technician}`, sso.admin, { sso_id: "sso-user-1" });
  const global = await call(server.url, "GET", "/global-settings", sso.admin);
  await call(server.url, "PUT", "/global-settings", sso.admin, {
    password_policy: global.password_policy,
    ip_restrictions: global.ip_restrictions,
    custom_field_names: global.custom_field_names,
    do_not_store_customer_ip: global.do_not_store_customer_ip,
    single_sign_on: { allowed_login_method: "standard_or_sso", master_sso_password: "Sso-Secret-77" },
  });
  const company = global.api.company_id;
  const answer = await (
    await fetch(`${server.url}/SSO/GetLoginTicket.aspx?ssoid=sso-user-1&Password=Sso-Secret-77&CompanyID=${company}`)
  ).text();
  assert.match(answer, /^OK: /);
  // The answer names the configured public URL; the test server listens where server.url says.
  const ticket = new URL(answer.slice(4));
  const context = await chromium.browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  await page.goto(`${server.url}${ticket.pathname}${ticket.search}`);
  await page.getByRole("button", { name: "New session" }).waitFor({ timeout: STEP });
  assert.equal(new URL(page.url()).pathname, "/console");
  assert.equal(new URL(page.url()).hash, "", "the token leaves the address bar");
  await context.close();
});
