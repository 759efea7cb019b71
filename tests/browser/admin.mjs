// The admin center through the real page: the master administrator logs in, creates a technician
// group, switches its audio off and a custom field on in the Settings tab, creates a technician in
// it, moves nothing by accident, and renames a custom field in Global Settings. Each change is
// read back through the API. Screenshots go to tests/browser/screenshots/.

import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { ADMIN_EMAIL, ADMIN_PASSWORD, call, requireChromium, screenshotDir, acquire, release, STEP } from "./harness.mjs";

const have = requireChromium();
/** @type {import("./harness.mjs").Server} */
let server;
/** @type {import("./harness.mjs").Browser} */
let chromium;

before(async () => {
  if (!have) return;
  ({ server, chromium } = await acquire());
});

after(async () => {
  if (have) await release();
});

/**
 * @param {import("playwright-core").Page} page
 * @param {string} name
 */
async function shoot(page, name) {
  for (const [width, height] of [[360, 740], [390, 844], [1280, 800], [1440, 900]]) {
    await page.setViewportSize({ width, height });
    await page.screenshot({ path: join(screenshotDir(), `${name}-${width}.png`), fullPage: width < 500 });
  }
  await page.setViewportSize({ width: 1280, height: 800 });
}

test("an administrator creates a group, changes its settings, adds a technician and renames a field", { skip: !have }, async () => {
  const context = await chromium.browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  page.on("dialog", (d) => d.accept());
  await page.goto(`${server.url}/admin`);
  await shoot(page, "admin-login");
  const login = page.locator("#login");
  await login.getByLabel("Email").fill(ADMIN_EMAIL);
  await login.getByLabel("Password").fill(ADMIN_PASSWORD);
  await login.getByRole("button", { name: "Log in" }).click();

  // A technician group at the top level.
  const tree = page.locator("#tree");
  await tree.getByRole("button", { name: "Technicians", exact: true }).click();
  await page.getByRole("button", { name: "New technician group" }).click();
  const form = page.locator("#item-form");
  await form.getByLabel("Name").fill("Field Support");
  await form.getByLabel("Description").fill("Phones in the field");
  await form.getByRole("button", { name: "Create" }).click();
  await tree.getByRole("button", { name: "Field Support" }).waitFor({ timeout: STEP });
  await page.getByText("Created.").waitFor();

  // Its Settings tab: audio off, custom field 1 mandatory, code validity 30 minutes.
  await page.getByRole("button", { name: "Settings", exact: true }).click();
  const settings = page.locator("#settings-form");
  await settings.getByLabel("Enable VoIP audio in sessions").uncheck();
  await settings.getByLabel("Custom field 1 enabled").check();
  await settings.getByLabel("Mandatory").first().check();
  await settings.getByLabel("Private code validity (minutes)").fill("30");
  await shoot(page, "admin-settings");
  await settings.getByRole("button", { name: "Save changes", exact: true }).click();
  await page.getByText("Saved.").waitFor({ timeout: STEP });

  const admin = (await call(server.url, "POST", "/auth/login", null, { email: ADMIN_EMAIL, password: ADMIN_PASSWORD })).token;
  const org = await call(server.url, "GET", "/org", admin);
  const group = org.roots[2].children.find((/** @type {any} */ g) => g.name === "Field Support");
  assert.ok(group, JSON.stringify(org));
  const stored = await call(server.url, "GET", `/technician-groups/${group.id}/settings`, admin);
  assert.equal(stored.audio.enabled, false);
  assert.equal(stored.custom_fields[0].enabled, true);
  assert.equal(stored.custom_fields[0].mandatory, true);
  assert.equal(stored.timeouts.private_code_validity_minutes, 30);

  // A technician in the group.
  await page.getByRole("button", { name: "Configuration" }).click();
  await page.getByRole("button", { name: "New technician", exact: true }).click();
  await form.getByLabel("Name", { exact: true }).fill("Grace Hopper");
  await form.getByLabel("Nickname (shown to customers)").fill("Grace");
  await form.getByLabel("Email").fill("grace@example.com");
  await form.getByLabel("Password").fill("Sample1%x");
  await form.getByRole("button", { name: "Create" }).click();
  await tree.getByRole("button", { name: "Grace Hopper" }).waitFor({ timeout: STEP });
  const techs = await call(server.url, "GET", "/technicians", admin);
  const grace = (Array.isArray(techs) ? techs : techs.items ?? techs.technicians ?? []).find((/** @type {any} */ u) => u.email === "grace@example.com");
  assert.equal(grace?.group_id, group.id, JSON.stringify(techs));
  assert.equal(grace?.nickname, "Grace");

  // Disable her from her form.
  await form.getByLabel("Enabled").uncheck();
  await form.getByRole("button", { name: "Save changes" }).click();
  await page.getByText("Saved.").waitFor({ timeout: STEP });
  const disabled = await call(server.url, "GET", `/technicians/${grace.id}`, admin);
  assert.equal(disabled.enabled, false);
  await shoot(page, "admin-org");

  // Global Settings: a custom field's name.
  await page.getByRole("button", { name: "Global Settings" }).click();
  const global = page.locator("#global-form");
  await global.getByLabel("Custom field 1").fill("Order number");
  await shoot(page, "admin-global");
  await global.getByRole("button", { name: "Save changes" }).click();
  await page.locator("#global-saved").getByText("Saved.").waitFor({ timeout: STEP });
  const names = (await call(server.url, "GET", "/global-settings", admin)).custom_field_names;
  assert.equal(names.custom_fields[0], "Order number");
  await context.close();
});
