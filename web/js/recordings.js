// The admin center's Recordings tab: GET /api/v1/recordings by technician group and technician
// (or one session, from the Session report's row) with size, duration, codecs, upload state and
// the location; Play asks POST /api/v1/recordings/{id}/link for a short-lived signed URL and
// gives it to the <video> element (no bearer header needed, Range requests work).

import { api } from "./api.js";
import { byId, el } from "./dom.js";
import { t } from "./i18n.js";

/**
 * @typedef {{kind: string, id?: number | null, name: string, children: Node[]}} Node
 * @typedef {{token: () => string, roots: () => Node[]}} Env
 */

/** @type {Env} */
let env;
/** A session chosen from the Session report (cleared by the form). */
let session = /** @type {number | null} */ (null);

/** @param {string} id */
const select = (id) => byId(id, HTMLSelectElement);

/** @param {Env} e */
export function setupRecordings(e) {
  env = e;
  byId("recordings-form", HTMLFormElement).addEventListener("submit", (ev) => {
    ev.preventDefault();
    session = null;
    show();
  });
  select("recordings-group").addEventListener("change", drawTechnicians);
}

/** Refreshes the group and technician choices from the tree (called when the tab opens). */
export function drawRecordingFilters() {
  const groups = [el("option", { value: "" }, [t("recordings.all")])];
  /** @param {Node} n */
  const walk = (n) => {
    if (n.kind === "technician_group") groups.push(el("option", { value: String(n.id) }, [n.name]));
    for (const c of n.children) walk(c);
  };
  for (const r of env.roots()) walk(r);
  const g = select("recordings-group");
  const chosen = g.value;
  g.replaceChildren(...groups);
  g.value = [...g.options].some((o) => o.value === chosen) ? chosen : "";
  drawTechnicians();
}

function drawTechnicians() {
  const group = select("recordings-group").value;
  const technicians = [el("option", { value: "" }, [t("recordings.all")])];
  /** @param {Node} n @param {boolean} inside */
  const walk = (n, inside) => {
    const here = inside || (n.kind === "technician_group" && (!group || String(n.id) === group));
    if (n.kind === "technician" && here) technicians.push(el("option", { value: String(n.id) }, [n.name]));
    for (const c of n.children) walk(c, here);
  };
  for (const r of env.roots()) walk(r, false);
  select("recordings-technician").replaceChildren(...technicians);
}

/**
 * Opens the tab on one session's recordings (the Session report's row).
 * @param {number} id
 */
export function showSession(id) {
  session = id;
  return show();
}

/** @param {number} bytes */
function size(bytes) {
  if (bytes >= 1024 * 1024) return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
  return `${Math.round(bytes / 1024)} kB`;
}

/** @param {number} ms */
function duration(ms) {
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

async function show() {
  const error = byId("recordings-error");
  error.textContent = "";
  const q = new URLSearchParams();
  if (session !== null) {
    q.set("session_id", String(session));
  } else {
    const group = select("recordings-group").value;
    const technician = select("recordings-technician").value;
    if (group) q.set("group_id", group);
    if (technician) q.set("technician_id", technician);
  }
  byId("recordings-filter").textContent = session !== null ? t("recordings.ofSession", { id: session }) : "";
  try {
    const list = await api("GET", `/recordings?${q}`, env.token());
    const head = ["recordings.session", "recordings.technician", "recordings.started", "recordings.size", "recordings.duration", "recordings.codecs", "recordings.status", "recordings.location", ""].map((k) =>
      el("th", { scope: "col" }, [k ? t(k) : ""]),
    );
    const rows = list.map((/** @type {any} */ item) => {
      const r = item.recording;
      const play = el("button", { type: "button", "data-recording": String(r.id) }, [t("recordings.play")]);
      play.addEventListener("click", () => playRecording(r.id));
      return el("tr", {}, [
        el("td", {}, [String(r.session_id)]),
        el("td", {}, [item.technician_name ?? ""]),
        el("td", {}, [new Date(r.started_at).toLocaleString()]),
        el("td", {}, [size(r.size_bytes)]),
        el("td", {}, [duration(r.duration_ms)]),
        el("td", {}, [r.codecs.join(", ")]),
        el("td", {}, [r.status]),
        el("td", {}, [`${r.location} · ${r.file_name}`]),
        el("td", {}, [play]),
      ]);
    });
    const table = el("table", { class: "report-table", id: "recordings-table" }, [el("thead", {}, [el("tr", {}, head)]), el("tbody", {}, rows)]);
    byId("recordings-result").replaceChildren(
      rows.length ? el("div", { class: "table-scroll", tabindex: "0", role: "region", "aria-label": t("recordings.tab") }, [table]) : el("p", { class: "muted" }, [t("recordings.empty")]),
    );
  } catch (e) {
    error.textContent = e instanceof Error ? e.message : String(e);
  }
}

/** @param {number} id */
async function playRecording(id) {
  const error = byId("recordings-error");
  error.textContent = "";
  try {
    const link = await api("POST", `/recordings/${id}/link`, env.token());
    const video = byId("recordings-player", HTMLVideoElement);
    video.hidden = false;
    video.dataset.recording = String(id);
    video.src = link.path;
    await video.play().catch(() => {});
  } catch (e) {
    error.textContent = e instanceof Error ? e.message : String(e);
  }
}
