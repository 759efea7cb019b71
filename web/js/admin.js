// The admin center: the organization tree (search, expand/collapse, create, move, enable/disable,
// delete) with the configuration form of the selected item, a technician group's Settings tab
// (audio, screen recording, connection methods, time-outs, custom fields, surveys; saved to the
// group, its subgroups or all groups) and Global Settings (password policy, IP restrictions, custom
// field names). Everything goes through the HTTP API (DESIGN.md §4b).

import { api, ApiError } from "./api.js";
import { byId, el, showOnly } from "./dom.js";
import { drawForm, readForm } from "./forms.js";
import { fillLanguageSelect, pickLanguage, setLanguage, t } from "./i18n.js";
import { loginPanels, resumeOrLogin, setupLogin } from "./login.js";
import { drawRecordingFilters, setupRecordings, showSession } from "./recordings.js";
import { drawUnits, setupReports } from "./reports.js";

/**
 * @typedef {{kind: string, id?: number | null, name: string, email?: string, enabled: boolean,
 *   children: OrgNode[]}} OrgNode
 * @typedef {import("./forms.js").Section} Section
 */

const panels = [...loginPanels(), byId("workspace")];
const languageSelect = byId("language", HTMLSelectElement);
const itemForm = byId("item-form", HTMLFormElement);
const settingsForm = byId("settings-form", HTMLFormElement);

/** The API collection of each kind of tree item. */
const RESOURCE = /** @type {Record<string, string>} */ ({
  master_administrator: "master-administrators",
  administrator: "administrators",
  administrator_group: "administrator-groups",
  technician_group: "technician-groups",
  technician: "technicians",
});

const state = {
  token: "",
  /** @type {{id: number, role: string, name: string, email: string} | null} */
  me: null,
  /** @type {OrgNode[]} */
  roots: [],
  /** The selected item: kind + id (roots: kind "root" + its name). */
  /** @type {{kind: string, id: number | null, root?: string} | null} */
  selected: null,
  /** Collapsed items, by `kind:id`. */
  collapsed: new Set(),
};

/** @param {OrgNode} n */
const key = (n) => `${n.kind}:${n.id ?? n.name}`;

/** @param {unknown} e */
function message(e) {
  return e instanceof Error ? e.message : String(e);
}

/** @param {string} text */
function saved(text) {
  const p = byId("item-saved");
  p.textContent = text;
  setTimeout(() => {
    if (p.textContent === text) p.textContent = "";
  }, 4000);
}

// ------------------------------------------------------------------ login --

setupLogin(panels, (role) => role !== "technician", "login.notAdministrator", async (session) => {
  state.token = session.token;
  state.me = session.user;
  sessionStorage.setItem("lens.admin.token", session.token);
  await openAdmin();
});

byId("logout").addEventListener("click", async () => {
  await api("POST", "/auth/logout", state.token).catch(() => {});
  sessionStorage.removeItem("lens.admin.token");
  location.reload();
});

async function openAdmin() {
  if (!state.me) state.me = await api("GET", "/auth/me", state.token);
  const me = /** @type {{id: number, role: string, name: string}} */ (state.me);
  const remembered = localStorage.getItem(`lens.language.user.${me.id}`);
  if (remembered) {
    await setLanguage(remembered);
    languageSelect.value = remembered;
  }
  byId("who").textContent = me.name;
  byId("account").hidden = false;
  byId("tab-global").hidden = me.role !== "master_administrator";
  showOnly(panels, byId("workspace"));
  setupReports({
    token: () => state.token,
    roots: () => state.roots,
    master: () => me.role === "master_administrator",
    recordings: async (/** @type {number} */ id) => {
      await showTab("recordings");
      await showSession(id);
    },
  });
  setupRecordings({ token: () => state.token, roots: () => state.roots });
  await loadTree();
}

// ------------------------------------------------------------------- tabs --

/** @param {"org" | "global" | "reports" | "recordings"} which */
async function showTab(which) {
  byId("tab-org").setAttribute("aria-pressed", String(which === "org"));
  byId("tab-global").setAttribute("aria-pressed", String(which === "global"));
  byId("tab-reports").setAttribute("aria-pressed", String(which === "reports"));
  byId("tab-recordings").setAttribute("aria-pressed", String(which === "recordings"));
  byId("org-view").hidden = which !== "org";
  byId("global-view").hidden = which !== "global";
  byId("reports-view").hidden = which !== "reports";
  byId("recordings-view").hidden = which !== "recordings";
  if (which === "global") await drawGlobal();
  if (which === "reports") drawUnits();
  if (which === "recordings") drawRecordingFilters();
}
byId("tab-org").addEventListener("click", () => showTab("org"));
byId("tab-global").addEventListener("click", () => showTab("global"));
byId("tab-reports").addEventListener("click", () => showTab("reports"));
byId("tab-recordings").addEventListener("click", () => showTab("recordings"));

// ------------------------------------------------------------------- tree --

async function loadTree() {
  const q = byId("tree-search", HTMLInputElement).value.trim();
  const tree = await api("GET", `/org${q ? `?q=${encodeURIComponent(q)}` : ""}`, state.token);
  state.roots = tree.roots;
  drawTree();
  // The Reports tab may have opened before the tree arrived; a filtered tree is not the unit list.
  if (!q) drawUnits();
}

let searchTimer = 0;
byId("tree-search").addEventListener("input", () => {
  clearTimeout(searchTimer);
  searchTimer = window.setTimeout(() => loadTree().catch(() => {}), 250);
});

/** @param {string} kind */
function kindLabel(kind) {
  return t(`admin.kind.${kind}`);
}

function drawTree() {
  /** @param {OrgNode} n @returns {HTMLElement} */
  const item = (n) => {
    const open = !state.collapsed.has(key(n));
    const selected =
      state.selected !== null &&
      state.selected.kind === n.kind &&
      (n.kind === "root" ? state.selected.root === n.name : state.selected.id === n.id);
    const toggle = n.children.length
      ? el("button", { type: "button", class: "tree-toggle", "aria-label": t(open ? "admin.collapse" : "admin.expand"), "aria-expanded": String(open) }, [open ? "▾" : "▸"])
      : el("span", { class: "tree-spacer" }, []);
    toggle.addEventListener("click", () => {
      if (open) state.collapsed.add(key(n));
      else state.collapsed.delete(key(n));
      drawTree();
    });
    const label = n.kind === "root" ? t(`admin.root.${n.name}`) : n.name;
    const select = el(
      "button",
      { type: "button", class: `tree-label kind-${n.kind}${n.enabled ? "" : " disabled"}${selected ? " selected" : ""}`, "aria-current": selected ? "true" : undefined },
      [label, n.enabled ? null : el("span", { class: "muted small" }, [` (${t("admin.disabled")})`])],
    );
    select.addEventListener("click", () => {
      state.selected = n.kind === "root" ? { kind: "root", id: null, root: n.name } : { kind: n.kind, id: n.id ?? null };
      drawTree();
      showItem().catch((e) => (byId("item-error").textContent = message(e)));
    });
    return el("li", { role: "treeitem", "aria-expanded": n.children.length ? String(open) : undefined }, [
      el("div", { class: "tree-row" }, [toggle, select]),
      n.children.length && open ? el("ul", { role: "group" }, n.children.map(item)) : null,
    ]);
  };
  byId("tree").replaceChildren(...state.roots.map(item));
}

/**
 * Every group of a kind in the tree, with its depth (for move targets).
 * @param {string} kind
 * @returns {{id: number, name: string, depth: number}[]}
 */
function groupsOf(kind) {
  /** @type {{id: number, name: string, depth: number}[]} */
  const out = [];
  /** @param {OrgNode} n @param {number} depth */
  const walk = (n, depth) => {
    if (n.kind === kind && typeof n.id === "number") out.push({ id: n.id, name: n.name, depth });
    for (const c of n.children) walk(c, n.kind === kind ? depth + 1 : depth);
  };
  for (const r of state.roots) walk(r, 0);
  return out;
}

/**
 * Options of a group select: groups of `kind`, indented by depth; "top level" first when allowed.
 * @param {string} kind
 * @param {boolean} topLevel
 * @param {number | null} [exclude]
 * @returns {[string, string][]}
 */
function groupOptions(kind, topLevel, exclude = null) {
  /** @type {[string, string][]} */
  const options = topLevel ? [["", "admin.topLevel"]] : [];
  for (const g of groupsOf(kind)) {
    if (g.id !== exclude) options.push([String(g.id), `${"\u00a0\u00a0".repeat(g.depth)}${g.name}`]);
  }
  return options;
}

// ------------------------------------------------------------------- item --

/** The configuration form of each kind. */
function configSections(/** @type {string} */ kind, /** @type {boolean} */ creating, /** @type {number | null} */ id) {
  if (kind === "technician_group" || kind === "administrator_group") {
    return [
      {
        fields: /** @type {import("./forms.js").Field[]} */ ([
          { path: "name", label: "admin.field.name", type: "text", required: true },
          { path: "description", label: "admin.field.description", type: "textarea" },
          { path: "parent_id", label: "admin.field.parent", type: "select", options: groupOptions(kind, true, id) },
          { path: "enabled", label: "admin.field.enabled", type: "checkbox" },
        ]),
      },
    ];
  }
  /** @type {import("./forms.js").Field[]} */
  const fields = [
    { path: "name", label: "admin.field.name", type: "text", required: true },
    { path: "email", label: "admin.field.email", type: "email", required: true },
    { path: "password", label: creating ? "admin.field.password" : "admin.field.newPassword", type: "password", required: creating, hint: creating ? undefined : "admin.field.passwordHint" },
    { path: "description", label: "admin.field.description", type: "textarea" },
    { path: "enabled", label: "admin.field.enabled", type: "checkbox" },
  ];
  if (kind === "technician") {
    fields.splice(1, 0, { path: "nickname", label: "admin.field.nickname", type: "text" });
    fields.push({ path: "group_id", label: "admin.field.technicianGroup", type: "select", options: groupOptions("technician_group", false) });
  }
  if (kind === "administrator") {
    fields.push({ path: "group_id", label: "admin.field.administratorGroup", type: "select", options: groupOptions("administrator_group", true) });
  }
  return [{ fields }];
}

/**
 * A form value for the API: select values become ids or null.
 * @param {any} doc
 */
function apiBody(doc) {
  const body = { ...doc };
  for (const k of ["parent_id", "group_id"]) {
    if (k in body) body[k] = body[k] === "" || body[k] === null ? null : Number(body[k]);
  }
  if (body.password === "") delete body.password;
  return body;
}

/**
 * @param {string} label catalog key
 * @param {() => void | Promise<void>} action
 * @param {string} [cls]
 */
function button(label, action, cls) {
  const b = el("button", { type: "button", class: cls }, [t(label)]);
  b.addEventListener("click", async () => {
    byId("item-error").textContent = "";
    try {
      await action();
    } catch (e) {
      byId("item-error").textContent = message(e);
    }
  });
  return b;
}

function itemTabs(/** @type {boolean} */ visible) {
  byId("item-tabs").hidden = !visible;
  byId("item-tab-config").setAttribute("aria-pressed", "true");
  byId("item-tab-settings").setAttribute("aria-pressed", "false");
  itemForm.hidden = false;
  settingsForm.hidden = true;
}

async function showItem() {
  const sel = state.selected;
  byId("item-empty").hidden = !!sel;
  byId("item-body").hidden = !sel;
  byId("item-error").textContent = "";
  byId("item-saved").textContent = "";
  if (!sel) return;
  const actions = byId("item-actions");
  actions.replaceChildren();
  if (sel.kind === "root") {
    itemTabs(false);
    itemForm.replaceChildren();
    byId("item-title").textContent = t(`admin.root.${sel.root}`);
    byId("item-kind").textContent = "";
    if (sel.root === "Technicians") actions.append(button("admin.newTechnicianGroup", () => newItem("technician_group", null)));
    if (sel.root === "Administrators") {
      actions.append(button("admin.newAdministratorGroup", () => newItem("administrator_group", null)));
      actions.append(button("admin.newAdministrator", () => newItem("administrator", null)));
    }
    if (sel.root === "Master Administrators") actions.append(button("admin.newMasterAdministrator", () => newItem("master_administrator", null)));
    return;
  }
  const resource = RESOURCE[sel.kind];
  const doc = await api("GET", `/${resource}/${sel.id}`, state.token);
  byId("item-title").textContent = doc.name;
  byId("item-kind").textContent = kindLabel(sel.kind);
  itemTabs(sel.kind === "technician_group");
  if (sel.kind === "technician_group") {
    actions.append(button("admin.newSubgroup", () => newItem("technician_group", sel.id)));
    actions.append(button("admin.newTechnician", () => newItem("technician", sel.id)));
  }
  if (sel.kind === "administrator_group") {
    actions.append(button("admin.newSubgroup", () => newItem("administrator_group", sel.id)));
    actions.append(button("admin.newAdministrator", () => newItem("administrator", sel.id)));
  }
  const form = { ...doc, password: "" };
  if ("parent_id" in form) form.parent_id = form.parent_id == null ? "" : String(form.parent_id);
  if ("group_id" in form) form.group_id = form.group_id == null ? "" : String(form.group_id);
  const sections = configSections(sel.kind, false, sel.id);
  drawForm(itemForm, sections, form, [
    button("admin.save", async () => {
      const changed = apiBody(readForm(itemForm, sections, { ...form }));
      /** @type {Record<string, unknown>} */
      const body = {};
      for (const [k, v] of Object.entries(changed)) {
        if (k in doc || k === "password") body[k] = v;
      }
      for (const k of ["id", "kind", "role", "created_at", "technician_group_ids", "must_change_password", "password_changed_at", "password_expires_at", "sso_id"]) delete body[k];
      await api("PATCH", `/${resource}/${sel.id}`, state.token, body);
      await loadTree();
      await showItem();
      saved(t("admin.saved"));
    }, "primary"),
    button("admin.delete", async () => {
      if (!confirm(t("admin.deleteConfirm", { name: doc.name }))) return;
      await api("DELETE", `/${resource}/${sel.id}`, state.token);
      state.selected = null;
      await loadTree();
      await showItem();
    }, "danger"),
  ]);
}

/**
 * The form of a new item of `kind` under group `parent`.
 * @param {string} kind
 * @param {number | null} parent
 */
function newItem(kind, parent) {
  itemTabs(false);
  byId("item-actions").replaceChildren();
  byId("item-title").textContent = t(`admin.new.${kind}`);
  byId("item-kind").textContent = "";
  const isGroup = kind.endsWith("_group");
  const doc = isGroup
    ? { name: "", description: "", parent_id: parent === null ? "" : String(parent), enabled: true }
    : { name: "", nickname: "", email: "", password: "", description: "", enabled: true, group_id: parent === null ? "" : String(parent) };
  const sections = configSections(kind, true, null);
  drawForm(itemForm, sections, doc, [
    button("admin.create", async () => {
      const body = apiBody(readForm(itemForm, sections, { ...doc }));
      if (kind !== "technician") delete body.nickname;
      if (kind === "master_administrator") delete body.group_id;
      const created = await api("POST", `/${RESOURCE[kind]}`, state.token, body);
      state.selected = { kind, id: created.id };
      await loadTree();
      await showItem();
      saved(t("admin.created"));
    }, "primary"),
  ]);
  const first = itemForm.querySelector("input");
  if (first) first.focus();
}

// --------------------------------------------------------- group settings --

byId("item-tab-config").addEventListener("click", () => {
  byId("item-tab-config").setAttribute("aria-pressed", "true");
  byId("item-tab-settings").setAttribute("aria-pressed", "false");
  itemForm.hidden = false;
  settingsForm.hidden = true;
  byId("item-actions").hidden = false;
});

byId("item-tab-settings").addEventListener("click", async () => {
  byId("item-tab-config").setAttribute("aria-pressed", "false");
  byId("item-tab-settings").setAttribute("aria-pressed", "true");
  itemForm.hidden = true;
  settingsForm.hidden = false;
  byId("item-actions").hidden = true;
  byId("item-error").textContent = "";
  try {
    await drawSettings();
  } catch (e) {
    byId("item-error").textContent = message(e);
  }
});

/** @type {[string, string][]} */
const SURVEY_MODES = [
  ["none", "admin.survey.none"],
  ["built_in", "admin.survey.builtIn"],
  ["self_hosted", "admin.survey.selfHosted"],
];

/** @returns {Section[]} */
function settingsSections() {
  /** @type {import("./forms.js").Field[]} */
  const custom = [];
  for (let i = 0; i < 5; i++) {
    custom.push(
      { path: `custom_fields.${i}.enabled`, label: `admin.custom.enabled${i + 1}`, type: "checkbox" },
      { path: `custom_fields.${i}.mandatory`, label: "admin.custom.mandatory", type: "checkbox" },
      { path: `custom_fields.${i}.kind`, label: "admin.custom.kind", type: "select", options: [["open_text", "admin.custom.openText"], ["drop_down", "admin.custom.dropDown"]] },
      { path: `custom_fields.${i}.choices`, label: "admin.custom.choices", type: "lines" },
    );
  }
  /** @param {string} which */
  const survey = (which) => /** @type {import("./forms.js").Field[]} */ ([
    { path: `${which}.mode`, label: "admin.survey.mode", type: "select", options: SURVEY_MODES },
    { path: `${which}.url`, label: "admin.survey.url", type: "text" },
    { path: `${which}.add_session_details`, label: "admin.survey.addDetails", type: "checkbox" },
  ]);
  return [
    { legend: "admin.s.audio", fields: [{ path: "audio.enabled", label: "admin.s.audioEnabled", type: "checkbox" }] },
    {
      legend: "admin.s.recording",
      fields: [
        { path: "screen_recording.forced", label: "admin.s.recordingForced", type: "checkbox" },
        { path: "screen_recording.location", label: "admin.s.recordingLocation", type: "text", hint: "admin.s.recordingLocationHint" },
        { path: "screen_recording.deferred_upload", label: "admin.s.deferredUpload", type: "checkbox" },
      ],
    },
    {
      legend: "admin.s.methods",
      fields: [
        { path: "connection_methods.pin_code", label: "create.pin", type: "checkbox" },
        { path: "connection_methods.link", label: "create.link", type: "checkbox" },
        { path: "connection_methods.sms", label: "create.sms", type: "checkbox" },
        { path: "connection_methods.email_via_default_client", label: "admin.s.emailClient", type: "checkbox" },
        { path: "connection_methods.email_via_servers", label: "admin.s.emailServers", type: "checkbox" },
        { path: "connection_methods.connection_email_subject", label: "admin.s.emailSubject", type: "text" },
        { path: "connection_methods.connection_email_text", label: "admin.s.emailText", type: "textarea" },
        { path: "auto_start_private_sessions", label: "admin.s.autoStart", type: "checkbox" },
      ],
    },
    {
      legend: "admin.s.timeouts",
      fields: [
        { path: "timeouts.private_code_validity_minutes", label: "admin.s.codeValidity", type: "number", min: 1 },
        { path: "timeouts.connecting_seconds", label: "admin.s.connecting", type: "number", min: 0 },
        { path: "timeouts.waiting_minutes", label: "admin.s.waiting", type: "number", min: 0, hint: "admin.s.zeroNever" },
        { path: "timeouts.active_idle_minutes", label: "admin.s.activeIdle", type: "number", min: 0, hint: "admin.s.zeroNever" },
      ],
    },
    { legend: "admin.s.customFields", fields: custom },
    { legend: "admin.s.customerSurvey", fields: survey("customer_survey") },
    { legend: "admin.s.technicianSurvey", fields: survey("technician_survey") },
  ];
}

async function drawSettings() {
  const sel = state.selected;
  if (!sel || sel.kind !== "technician_group") return;
  const doc = await api("GET", `/technician-groups/${sel.id}/settings`, state.token);
  const sections = settingsSections();
  /** @param {"group" | "subgroups" | "all"} apply */
  const save = async (apply) => {
    const next = readForm(settingsForm, sections, structuredClone(doc));
    await api("PUT", `/technician-groups/${sel.id}/settings?apply=${apply}`, state.token, next);
    await drawSettings();
    saved(t("admin.saved"));
  };
  drawForm(settingsForm, sections, doc, [
    button("admin.saveGroup", () => save("group"), "primary"),
    button("admin.saveSubgroups", () => save("subgroups")),
    button("admin.saveAll", () => {
      if (confirm(t("admin.saveAllConfirm"))) return save("all");
    }),
  ]);
}

// -------------------------------------------------------- global settings --

async function drawGlobal() {
  const form = byId("global-form", HTMLFormElement);
  const doc = await api("GET", "/global-settings", state.token);
  // The answer says whether a master SSO password is set; a write does not carry that flag.
  delete doc.single_sign_on?.master_sso_password_set;
  const exceptions = (doc.ip_restrictions.exceptions ?? []).map(
    (/** @type {{network_id: string, subnet_mask?: string}} */ e) => (e.subnet_mask ? `${e.network_id} ${e.subnet_mask}` : e.network_id),
  );
  const view = { ...doc, exceptions };
  /** @type {Section[]} */
  const sections = [
    {
      legend: "admin.g.passwords",
      fields: [
        { path: "password_policy.minimum_strength", label: "admin.g.strength", type: "select", options: [["good", "admin.g.good"], ["strong", "admin.g.strong"], ["excellent", "admin.g.excellent"]] },
        { path: "password_policy.maximum_age_days", label: "admin.g.maxAge", type: "number", min: 0, hint: "admin.s.zeroNever" },
        { path: "password_policy.notify_days_before_expiry", label: "admin.g.notify", type: "number", min: 0 },
        { path: "password_policy.admin_change_forces_password_change", label: "admin.g.forceChange", type: "checkbox" },
      ],
    },
    {
      legend: "admin.g.ip",
      fields: [
        { path: "ip_restrictions.default_access", label: "admin.g.defaultAccess", type: "select", options: [["granted", "admin.g.granted"], ["denied", "admin.g.denied"]] },
        { path: "exceptions", label: "admin.g.exceptions", type: "lines", hint: "admin.g.exceptionsHint" },
      ],
    },
    {
      legend: "admin.g.names",
      fields: [
        { path: "custom_field_names.name_field", label: "admin.g.nameField", type: "text", required: true },
        ...[0, 1, 2, 3, 4].map((i) => /** @type {import("./forms.js").Field} */ ({ path: `custom_field_names.custom_fields.${i}`, label: `admin.g.customField${i + 1}`, type: "text", required: true })),
      ],
    },
    { fields: [{ path: "do_not_store_customer_ip", label: "admin.g.noCustomerIp", type: "checkbox" }] },
    {
      legend: "admin.g.surveyIssuance",
      fields: [
        { path: "customer_survey_issuance.survey_issued_by", label: "admin.g.surveyIssuedBy", type: "select", options: [["starting_technician", "admin.g.startingTechnician"], ["closing_technician", "admin.g.closingTechnician"]] },
      ],
    },
  ];
  const save = el("button", { type: "submit", class: "primary" }, [t("admin.save")]);
  drawForm(form, sections, view, [save]);
  form.onsubmit = async (e) => {
    e.preventDefault();
    byId("global-error").textContent = "";
    const next = readForm(form, sections, structuredClone(view));
    next.ip_restrictions.exceptions = next.exceptions.map((/** @type {string} */ line) => {
      const [network_id, subnet_mask] = line.split(/\s+/);
      return subnet_mask ? { network_id, subnet_mask } : { network_id };
    });
    delete next.exceptions;
    try {
      await api("PUT", "/global-settings", state.token, next);
      byId("global-saved").textContent = t("admin.saved");
      await drawGlobal();
    } catch (err) {
      byId("global-error").textContent = err instanceof ApiError ? err.message : message(err);
    }
  };
}

// ------------------------------------------------------------------- main --

languageSelect.addEventListener("change", async () => {
  await setLanguage(languageSelect.value);
  localStorage.setItem(state.me ? `lens.language.user.${state.me.id}` : "lens.language", languageSelect.value);
  if (state.roots.length) drawTree();
});

async function main() {
  await setLanguage(localStorage.getItem("lens.language") ?? pickLanguage(navigator.languages));
  fillLanguageSelect(languageSelect);
  await resumeOrLogin(panels, "lens.admin.token", async (token) => {
    state.token = token;
    await openAdmin();
  });
}

main();
