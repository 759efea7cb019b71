// The admin center's Reports tab: the guide's report areas over GET /api/v1/reports/{area}
// (docs/reports.md) — List All (paged) or Summary, the organizational unit from the tree, a date
// range (preset or explicit), UTC or the browser's time zone, a daily time range; the result shown
// in the page and downloadable as Excel XML, TSV or XLSX; a master administrator's chatlog
// deletion queue and revoke.

import { api } from "./api.js";
import { byId, el } from "./dom.js";
import { t } from "./i18n.js";

/** The areas, in the guide's order, and whether each has a Summary. */
const AREAS = /** @type {[string, boolean][]} */ ([
  ["session", true],
  ["performance", true],
  ["login", true],
  ["missed-sessions", true],
  ["failed-sessions", true],
  ["failed-sessions-extended", false],
  ["transferred-sessions", false],
  ["transferred-sessions-extended", false],
  ["chatlog", false],
  ["custom-fields", false],
  ["customer-survey", true],
  ["customer-survey-issuance", true],
  ["technician-survey", false],
  ["audit", false],
]);

const RANGES = ["today", "yesterday", "last_7_days", "this_month", "last_month", "custom"];
const PER_PAGE = 50;
/** The unit of each tree root. */
const ROOT_UNITS = /** @type {Record<string, string>} */ ({
  "Master Administrators": "master_administrators",
  Administrators: "administrators",
  Technicians: "technicians",
});

/**
 * @typedef {{kind: string, id?: number | null, name: string, children: Node[]}} Node
 * @typedef {{token: () => string, roots: () => Node[], master: () => boolean, recordings: (id: number) => Promise<void>}} Env
 */

/** @type {Env} */
let env;
let page = 1;

/** @param {string} id */
const input = (id) => byId(id, HTMLInputElement);
/** @param {string} id */
const select = (id) => byId(id, HTMLSelectElement);

/**
 * Wires the tab's form once.
 * @param {Env} e
 */
export function setupReports(e) {
  env = e;
  const area = select("report-area");
  area.replaceChildren(...AREAS.map(([a]) => el("option", { value: a }, [t(`reports.area.${a}`)])));
  select("report-range").replaceChildren(...RANGES.map((r) => el("option", { value: r }, [t(`reports.range.${r}`)])));
  select("report-range").value = "this_month";
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  const zones = [el("option", { value: "UTC" }, ["UTC"])];
  if (zone !== "UTC") zones.push(el("option", { value: zone }, [t("reports.tzLocal", { zone })]));
  select("report-tz").replaceChildren(...zones);
  const sync = () => {
    const summary = AREAS.find(([a]) => a === area.value)?.[1] ?? false;
    const list = select("report-list");
    list.querySelector('option[value="summary"]')?.toggleAttribute("disabled", !summary);
    if (!summary) list.value = "all";
    const custom = select("report-range").value === "custom";
    byId("report-dates").hidden = !custom;
    input("report-from").required = custom;
    input("report-to").required = custom;
    byId("chatlog-deletion").hidden = !(env.master() && area.value === "chatlog");
  };
  area.addEventListener("change", sync);
  select("report-range").addEventListener("change", sync);
  sync();
  byId("report-form", HTMLFormElement).addEventListener("submit", (ev) => {
    ev.preventDefault();
    page = 1;
    show();
  });
  byId("report-prev").addEventListener("click", () => {
    page = Math.max(1, page - 1);
    show();
  });
  byId("report-next").addEventListener("click", () => {
    page += 1;
    show();
  });
  for (const [id, format] of [
    ["report-xml", "xml"],
    ["report-tsv", "tsv"],
    ["report-xlsx", "xlsx"],
  ]) {
    byId(id).addEventListener("click", () => download(format));
  }
  byId("chatlog-queue").addEventListener("click", () => chatlog("POST"));
  byId("chatlog-revoke").addEventListener("click", () => chatlog("DELETE"));
}

/** Refreshes the unit choices from the tree (called when the tab opens). */
export function drawUnits() {
  const unit = select("report-unit");
  const chosen = unit.value;
  /** @type {HTMLElement[]} */
  const options = [el("option", { value: "" }, [t("reports.unitAll")])];
  /** @param {Node} n @param {number} depth */
  const walk = (n, depth) => {
    const value = n.kind === "root" ? ROOT_UNITS[n.name] : `${n.kind}:${n.id}`;
    const label = n.kind === "root" ? t(`admin.root.${n.name}`) : n.name;
    if (value) options.push(el("option", { value }, [`${"\u00a0\u00a0".repeat(depth)}${label}`]));
    for (const c of n.children) walk(c, depth + 1);
  };
  for (const r of env.roots()) walk(r, 0);
  unit.replaceChildren(...options);
  unit.value = [...unit.options].some((o) => o.value === chosen) ? chosen : "";
}

/** The query of the form's choices. */
function query() {
  const q = new URLSearchParams();
  q.set("list", select("report-list").value);
  const unit = select("report-unit").value;
  if (unit) q.set("unit", unit);
  const range = select("report-range").value;
  if (range === "custom") {
    q.set("from", input("report-from").value);
    q.set("to", input("report-to").value);
  } else {
    q.set("range", range);
  }
  q.set("tz", select("report-tz").value);
  const from = input("report-daily-from").value;
  const to = input("report-daily-to").value;
  if (from || to) {
    q.set("daily_from", from);
    q.set("daily_to", to);
  }
  return q;
}

async function show() {
  const error = byId("report-error");
  error.textContent = "";
  const q = query();
  q.set("page", String(page));
  q.set("per_page", String(PER_PAGE));
  try {
    const r = await api("GET", `/reports/${select("report-area").value}?${q}`, env.token());
    // The Session report's rows lead to the session's recordings.
    const idColumn = select("report-area").value === "session" && r.list !== "summary" ? r.columns.indexOf("Session ID") : -1;
    const columns = idColumn >= 0 ? [...r.columns, t("recordings.tab")] : r.columns;
    const head = el("tr", {}, columns.map((/** @type {string} */ c) => el("th", { scope: "col" }, [c])));
    const rows = r.rows.map((/** @type {unknown[]} */ row) => {
      const cells = row.map((c) => el("td", {}, [c === null ? "" : String(c)]));
      const id = idColumn >= 0 ? Number(row[idColumn]) : NaN;
      if (Number.isInteger(id) && id > 0) {
        const open = el("button", { type: "button", class: "link-button", "data-session": String(id) }, [t("recordings.open")]);
        open.addEventListener("click", () => env.recordings(id));
        cells.push(el("td", {}, [open]));
      } else if (idColumn >= 0) {
        cells.push(el("td", {}, []));
      }
      return el("tr", {}, cells);
    });
    const table = el("table", { class: "report-table", id: "report-table" }, [
      // The server's title already names the list type ("… Report (Summary)").
      el("caption", {}, [`${r.title} · ${r.from} – ${r.to} · ${r.time_zone}`]),
      el("thead", {}, [head]),
      el("tbody", {}, rows),
    ]);
    byId("report-result").replaceChildren(
      r.rows.length ? el("div", { class: "table-scroll", tabindex: "0", role: "region", "aria-label": r.title }, [table]) : el("p", { class: "muted" }, [t("reports.empty")]),
    );
    const pages = Math.max(1, Math.ceil(r.total_rows / r.per_page));
    byId("report-pager").hidden = r.list === "summary" || pages <= 1;
    byId("report-page").textContent = t("reports.page", { page: r.page, pages, rows: r.total_rows });
    byId("report-prev").toggleAttribute("disabled", r.page <= 1);
    byId("report-next").toggleAttribute("disabled", r.page >= pages);
    byId("report-downloads").hidden = false;
  } catch (e) {
    error.textContent = e instanceof Error ? e.message : String(e);
  }
}

/**
 * Fetches the report in `format` with the login token and saves it as a file.
 * @param {string} format
 */
async function download(format) {
  const error = byId("report-error");
  error.textContent = "";
  const q = query();
  q.set("format", format);
  const r = await fetch(`/api/v1/reports/${select("report-area").value}?${q}`, { headers: { authorization: `Bearer ${env.token()}` } });
  if (!r.ok) {
    const body = await r.json().catch(() => null);
    error.textContent = body?.error?.message ?? `HTTP ${r.status}`;
    return;
  }
  const name = /filename="?([^";]+)"?/.exec(r.headers.get("content-disposition") ?? "")?.[1] ?? `report.${format}`;
  const url = URL.createObjectURL(await r.blob());
  const a = el("a", { href: url, download: name, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/**
 * Queues (POST) or revokes (DELETE) the deletion of a session's chat log.
 * @param {"POST" | "DELETE"} method
 */
async function chatlog(method) {
  const status = byId("chatlog-status");
  status.textContent = "";
  const id = Number(input("chatlog-session").value);
  if (!Number.isInteger(id) || id <= 0) {
    status.textContent = t("reports.chatlogNeedsId");
    return;
  }
  try {
    await api(method, `/chatlog-deletions/${id}`, env.token());
    status.textContent = t(method === "POST" ? "reports.chatlogQueued" : "reports.chatlogRevoked", { id });
  } catch (e) {
    status.textContent = e instanceof Error ? e.message : String(e);
  }
}
