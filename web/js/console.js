// The technician console: log in (with the forced or expired password change), see the session
// queue, create sessions, pick up, watch the customer's camera, talk, chat, take notes, hold,
// transfer and end. Protocol: signaling/PROTOCOL.md §4 and §5.

import { api } from "./api.js";
import { byId, clock, duration, el, showOnly } from "./dom.js";
import { fillLanguageSelect, pickLanguage, setLanguage, t } from "./i18n.js";
import { loginPanels, resumeOrLogin, setupLogin } from "./login.js";
import { addCandidate, holdUnderLoss, peerConnection, trickle } from "./media.js";
import { ProtocolError, Socket } from "./socket.js";
import { surveyForm } from "./survey.js";
import { consoleTools } from "./tools.js";

/**
 * @typedef {{id: number, status: string, method: string, name: string, custom_fields: string[],
 *   tracking_id: string, technician_id?: number, group_id: number, created_at: string,
 *   status_since: string, waiting_seconds?: number, alarm_color?: string,
 *   device?: Record<string, string>, customer_ip?: string, pin?: string, link?: string,
 *   audio: boolean, transfer_comment?: string}} SessionView
 * @typedef {{customer_audio: boolean, customer_video: boolean, technician_audio: boolean}} MuteState
 * @typedef {{view: SessionView, receivedAt: number, chat: {from: string, name: string, text: string, at: string}[],
 *   notes: string[], mute: MuteState, selfMuted: boolean, customerMuted: boolean,
 *   pc: RTCPeerConnection | null, stream: MediaStream | null, mic: MediaStream | null,
 *   ended?: {status: string, survey?: {url?: string, questions?: import("./survey.js").Question[]}},
 *   survey?: HTMLElement, tools?: import("./tools.js").ToolState}} Entry
 */

const panels = [...loginPanels(), byId("workspace")];
const languageSelect = byId("language", HTMLSelectElement);
const presence = byId("presence", HTMLSelectElement);
const list = byId("session-list");
const video = byId("remote-video", HTMLVideoElement);
const audio = byId("remote-audio", HTMLAudioElement);
const stage = byId("stage");

const LIVE = ["Pending", "Connecting", "Waiting", "Active", "On Hold", "Transferring", "Reconnecting"];

const state = {
  token: "",
  /** @type {{id: number, name: string, nickname: string, group_id: number, status: string} | null} */
  me: null,
  /** @type {Socket | null} */
  socket: null,
  /** @type {Map<number, Entry>} */
  sessions: new Map(),
  /** @type {number | null} */
  selected: null,
  loggedOut: false,
  /** @type {RTCIceServer[]} STUN/TURN from `hello`, renewed by every `offer` (§5) */
  iceServers: [],
  /** @type {string | undefined} */
  iceTransportPolicy: undefined,
};

// Annotation, freeze-frame and links on the selected session's picture (js/tools.js).
const tools = consoleTools({
  video,
  request: (frame) =>
    state.selected === null || !state.socket
      ? Promise.reject(new Error("no session"))
      : state.socket.request({ ...frame, session_id: state.selected }),
  current: () => (state.selected === null ? undefined : state.sessions.get(state.selected)),
});

// ------------------------------------------------------------------ login --

setupLogin(panels, (role) => role === "technician", "login.notTechnician", async (session) => {
  state.token = session.token;
  sessionStorage.setItem("lens.console.token", session.token);
  await openConsole();
});

byId("logout").addEventListener("click", async () => {
  state.loggedOut = true;
  state.socket?.close();
  for (const entry of state.sessions.values()) closeMedia(entry);
  await api("POST", "/auth/logout", state.token).catch(() => {});
  sessionStorage.removeItem("lens.console.token");
  location.reload();
});

// ---------------------------------------------------------------- console --

async function openConsole() {
  const socket = new Socket("/ws/console", onEvent, () => onSocketClosed(socket));
  state.socket = socket;
  const ok = await socket.request({ type: "hello", v: 1, token: state.token });
  state.me = ok.technician;
  state.iceServers = ok.ice_servers ?? [];
  state.iceTransportPolicy = ok.ice_transport_policy;
  const remembered = localStorage.getItem(`lens.language.user.${ok.technician.id}`);
  if (remembered) {
    await setLanguage(remembered);
    languageSelect.value = remembered;
  }
  byId("who").textContent = ok.technician.nickname || ok.technician.name;
  presence.value = ok.technician.status;
  byId("account").hidden = false;
  for (const view of ok.sessions) upsert(view);
  showOnly(panels, byId("workspace"));
  render();
}

/**
 * A dropped console socket: say `hello` again (§4.2); the server offers media anew.
 * @param {Socket} socket
 */
async function onSocketClosed(socket) {
  if (socket !== state.socket || state.loggedOut) return;
  byId("video-note").textContent = t("console.reconnecting");
  for (let attempt = 0; !state.loggedOut; attempt++) {
    await new Promise((r) => setTimeout(r, Math.min(1000 * 2 ** attempt, 5000)));
    try {
      await openConsole();
      byId("video-note").textContent = "";
      return;
    } catch (e) {
      if (e instanceof ProtocolError && e.code === "invalid_token") {
        sessionStorage.removeItem("lens.console.token");
        location.reload();
        return;
      }
    }
  }
}

/** @param {SessionView} view */
function upsert(view) {
  const entry = state.sessions.get(view.id);
  if (entry) {
    entry.view = view;
    entry.receivedAt = Date.now();
  } else {
    state.sessions.set(view.id, {
      view,
      receivedAt: Date.now(),
      chat: [],
      notes: [],
      mute: { customer_audio: view.audio, customer_video: true, technician_audio: view.audio },
      selfMuted: false,
      customerMuted: false,
      pc: null,
      stream: null,
      mic: null,
    });
  }
}

/** @param {import("./socket.js").Frame} f */
function onEvent(f) {
  const entry = typeof f.session_id === "number" ? state.sessions.get(f.session_id) : undefined;
  switch (f.type) {
    case "session":
      upsert(f.session);
      break;
    case "session_removed":
      if (entry && !entry.ended) {
        closeMedia(entry);
        state.sessions.delete(f.session_id);
        if (state.selected === f.session_id) state.selected = null;
      }
      break;
    case "offer":
      // A fresh offer for a session that already has a peer connection (the room moved to another
      // node, a transfer, a console reconnect) is answered from a new one that replaces it.
      // Each offer brings fresh TURN credentials (those of `hello` may have expired by now).
      if (f.ice_servers) state.iceServers = f.ice_servers;
      if (f.ice_servers) state.iceTransportPolicy = f.ice_transport_policy;
      if (entry) answer(entry, f.sdp).catch((e) => console.error("answer", e));
      break;
    case "candidate":
      if (entry?.pc) addCandidate(entry.pc, f);
      break;
    case "mute_state":
      if (entry) {
        entry.mute = { customer_audio: f.customer_audio, customer_video: f.customer_video, technician_audio: f.technician_audio };
      }
      break;
    case "chat":
      entry?.chat.push({ from: f.from, name: f.name, text: f.text, at: f.at });
      break;
    case "ended":
      if (entry) {
        entry.ended = { status: f.status, survey: f.survey };
        entry.view.status = f.status;
        closeMedia(entry);
      }
      break;
    default:
      return; // Later servers may add events: ignored.
  }
  render();
}

/**
 * The server's offer for a session (after pickup, transfer or a console reconnect): receive the
 * video, and talk when the session has audio.
 * @param {Entry} entry
 * @param {string} sdp
 */
async function answer(entry, sdp) {
  const id = entry.view.id;
  const socket = state.socket;
  if (!socket) return;
  entry.pc?.close();
  const pc = peerConnection(state.iceServers, state.iceTransportPolicy);
  entry.pc = pc;
  entry.stream = new MediaStream();
  pc.addEventListener("track", (e) => {
    entry.stream?.addTrack(e.track);
    render();
  });
  pc.addEventListener("connectionstatechange", () => render());
  holdUnderLoss(pc);
  /** @type {(v: unknown) => void} */
  let answered = () => {};
  trickle(pc, new Promise((r) => (answered = r)), (c) => socket.send({ type: "candidate", session_id: id, ...c }));
  await pc.setRemoteDescription({ type: "offer", sdp });
  // A newer offer for this session (its room moved to another node meanwhile) replaced this peer
  // connection while we awaited: that one answers, this one stays closed.
  if (entry.pc !== pc) return;
  const audioTx = pc.getTransceivers().find((tx) => tx.receiver.track.kind === "audio");
  if (audioTx) {
    if (!entry.mic) {
      entry.mic = await navigator.mediaDevices
        .getUserMedia({ audio: { echoCancellation: true, noiseSuppression: true } })
        .catch(() => null);
    }
    const track = entry.mic?.getAudioTracks()[0];
    if (track) {
      track.enabled = !entry.selfMuted;
      await audioTx.sender.replaceTrack(track);
      audioTx.direction = "sendrecv";
    } else {
      audioTx.direction = "recvonly";
    }
  }
  const local = await pc.createAnswer();
  await pc.setLocalDescription(local);
  if (entry.pc !== pc) return;
  socket.send({ type: "answer", session_id: id, sdp: pc.localDescription?.sdp ?? local.sdp });
  answered(undefined);
  render();
}

/** @param {Entry} entry */
function closeMedia(entry) {
  entry.pc?.close();
  entry.pc = null;
  entry.stream = null;
  for (const track of entry.mic?.getTracks() ?? []) track.stop();
  entry.mic = null;
}

/**
 * A request about the selected session; errors are shown next to the session.
 * @param {import("./socket.js").Frame} frame
 */
async function act(frame) {
  if (state.selected === null || !state.socket) return;
  try {
    return await state.socket.request({ ...frame, session_id: state.selected });
  } catch (e) {
    byId("video-note").textContent = e instanceof Error ? e.message : String(e);
    return undefined;
  }
}

// ----------------------------------------------------------------- render --

/** @param {Entry} entry */
function waitingSeconds(entry) {
  const base = entry.view.waiting_seconds;
  return base === undefined ? undefined : base + (Date.now() - entry.receivedAt) / 1000;
}

/** @param {string} status */
function statusText(status) {
  return t(`status.${status}`);
}

function render() {
  renderList();
  renderDetail();
}

/**
 * The session list, refreshed every second while a session waits (waiting time, alarm colour).
 * Rows are updated in place, never rebuilt: a row replaced between a press and its release would
 * swallow the technician's click, and would drop the keyboard focus.
 */
function renderList() {
  const entries = [...state.sessions.values()].sort((a, b) => a.view.created_at.localeCompare(b.view.created_at));
  byId("no-sessions").hidden = entries.length > 0;
  const wanted = new Set(entries.map((e) => String(e.view.id)));
  for (const row of [...list.children]) {
    const id = row.firstElementChild?.getAttribute("data-session");
    if (!id || !wanted.has(id)) row.remove();
  }
  /** @type {Map<string, HTMLElement>} */
  const rows = new Map();
  for (const row of list.children) {
    const id = row.firstElementChild?.getAttribute("data-session");
    if (id && row instanceof HTMLElement) rows.set(id, row);
  }
  entries.forEach((entry, index) => {
    const v = entry.view;
    const id = String(v.id);
    let row = rows.get(id);
    if (!row) {
      const button = el("button", { type: "button", "data-session": id });
      button.addEventListener("click", () => {
        state.selected = v.id;
        render();
      });
      row = el("li", {}, [button]);
    }
    // Only a row out of place is moved: moving a node takes the focus off it.
    if (list.children[index] !== row) list.insertBefore(row, list.children[index] ?? null);
    const button = /** @type {HTMLElement} */ (row.firstElementChild);
    const selected = state.selected === v.id;
    button.className = `session-item${selected ? " selected" : ""}${v.alarm_color ? " alarm" : ""}`;
    if (selected) button.setAttribute("aria-current", "true");
    else button.removeAttribute("aria-current");
    button.style.borderInlineStartColor = v.alarm_color ?? "";
    const waiting = waitingSeconds(entry);
    const parts = [
      el("span", { class: "session-name" }, [v.name || t("console.sessionNumber", { id: v.id })]),
      el("span", { class: `pill status-${slug(v.status)}` }, [statusText(v.status)]),
      waiting === undefined ? null : el("span", { class: "waiting" }, [t("console.waitingFor", { time: duration(waiting) })]),
    ];
    // The button itself stays; only its text changes, and only when it differs.
    const text = parts.map((p) => p?.textContent ?? "").join("\u0000");
    if (button.dataset.text !== text) {
      button.dataset.text = text;
      button.replaceChildren(...parts.filter((p) => p !== null));
    }
  });
}

/** @param {string} s */
function slug(s) {
  return s.toLowerCase().replace(/[^a-z]+/g, "-");
}

function renderDetail() {
  const entry = state.selected === null ? undefined : state.sessions.get(state.selected);
  byId("nothing-selected").hidden = !!entry;
  byId("session").hidden = !entry;
  if (!entry) {
    video.srcObject = null;
    tools.render("");
    return;
  }
  const v = entry.view;
  const live = LIVE.includes(v.status) && !entry.ended;
  byId("session-title").textContent = v.name || t("console.sessionNumber", { id: v.id });
  const pill = byId("session-status");
  pill.textContent = statusText(v.status);
  pill.className = `pill status-${slug(v.status)}`;
  const info = [t(`create.${v.method}`), `#${v.id}`];
  if (v.device?.platform) info.push(v.device.platform);
  if (v.device?.browser) info.push(v.device.browser);
  if (v.customer_ip) info.push(v.customer_ip);
  for (const f of v.custom_fields) if (f) info.push(f);
  if (v.tracking_id) info.push(v.tracking_id);
  if (v.transfer_comment) info.push(`“${v.transfer_comment}”`);
  byId("session-info").textContent = info.join(" · ");

  const code = byId("session-code");
  code.hidden = !(v.status === "Pending" && (v.pin || v.link));
  code.textContent = v.pin ? t("console.pinIs", { pin: v.pin }) : v.link ? t("console.linkIs", { link: v.link }) : "";

  const endedBox = byId("session-ended");
  endedBox.hidden = !entry.ended;
  if (entry.ended) {
    const text = byId("session-ended-text");
    text.replaceChildren(t("console.endedAs", { status: statusText(entry.ended.status) }));
    const url = entry.ended.survey?.url;
    if (url && /^https?:\/\//.test(url)) {
      text.append(" ", el("a", { href: url, target: "_blank", rel: "noopener" }, [t("console.survey")]));
    }
  }
  // The built-in technician survey: one form per ended session, kept across redraws.
  const questions = entry.ended?.survey?.questions;
  if (questions?.length && !entry.survey) {
    const id = v.id;
    entry.survey = surveyForm(`tech-survey-${id}`, questions, async (answers) => {
      await api("POST", `/sessions/${id}/technician-survey`, state.token, { answers });
    });
  }
  const surveyBox = byId("session-survey");
  byId("session-survey-box").hidden = !entry.survey;
  if (entry.survey && surveyBox.firstElementChild !== entry.survey) surveyBox.replaceChildren(entry.survey);
  else if (!entry.survey) surveyBox.replaceChildren();

  const on = (/** @type {string} */ id, /** @type {boolean} */ visible) => {
    byId(id).hidden = !visible;
  };
  on("pickup", live && v.status === "Waiting");
  on("hold", live && v.status === "Active");
  on("resume", live && v.status === "On Hold");
  on("transfer", live && ["Waiting", "Active", "On Hold"].includes(v.status));
  on("end", live);
  const media = live && (v.status === "Active" || v.status === "On Hold");
  on("viewer", live && ["Active", "On Hold", "Reconnecting", "Transferring"].includes(v.status));
  for (const id of ["zoom", "fullscreen", "snapshot"]) on(id, media);
  on("mute-self", media && v.audio);
  on("mute-customer", media && v.audio);
  byId("mute-self").setAttribute("aria-pressed", String(entry.selfMuted));
  byId("mute-self").textContent = t(entry.selfMuted ? "console.unmuteSelf" : "console.muteSelf");
  byId("mute-customer").setAttribute("aria-pressed", String(entry.customerMuted));
  byId("mute-customer").textContent = t(entry.customerMuted ? "console.unmuteCustomer" : "console.muteCustomer");
  const muteInfo = [];
  if (v.audio && !entry.mute.customer_audio) muteInfo.push(t("console.customerAudioOff"));
  if (!entry.mute.customer_video) muteInfo.push(t("console.customerVideoOff"));
  if (v.audio && !entry.mute.technician_audio) muteInfo.push(t("console.yourAudioOff"));
  byId("mute-info").textContent = muteInfo.join(" · ");

  if (video.srcObject !== entry.stream) {
    video.srcObject = entry.stream;
    const audioTracks = entry.stream?.getAudioTracks() ?? [];
    audio.srcObject = audioTracks.length ? new MediaStream(audioTracks) : null;
  }
  if (entry.stream && audio.srcObject === null && entry.stream.getAudioTracks().length) {
    audio.srcObject = new MediaStream(entry.stream.getAudioTracks());
  }
  video.play().catch(() => {});
  audio.play().catch(() => {});
  const note = byId("video-note");
  if (v.status === "On Hold") note.textContent = t("console.onHold");
  else if (v.status === "Reconnecting") note.textContent = t("console.customerReconnecting");
  else if (media && !entry.mute.customer_video) note.textContent = t("console.customerVideoOff");
  else if (media && entry.pc?.connectionState !== "connected") note.textContent = t("console.connectingVideo");
  else note.textContent = "";

  const chat = byId("chat-log");
  chat.replaceChildren(
    ...entry.chat.map((c) =>
      el("li", { class: `chat-line from-${c.from}` }, [
        el("span", { class: "chat-meta" }, [`${c.from === "technician" ? t("chat.you") : c.name} · ${clock(c.at)}`]),
        el("span", { class: "chat-text" }, [c.text]),
      ]),
    ),
  );
  chat.scrollTop = chat.scrollHeight;
  byId("notes-log").replaceChildren(...entry.notes.map((n) => el("li", {}, [n])));
  byId("chat-form").hidden = !media;
  byId("note-form").hidden = !live;
  tools.render(live ? v.status : "");
}

// ---------------------------------------------------------------- actions --

byId("pickup").addEventListener("click", () => act({ type: "pickup" }));
// A closed session stays on screen (chat, notes, survey) until the technician removes it.
byId("dismiss").addEventListener("click", () => {
  if (state.selected === null) return;
  state.sessions.delete(state.selected);
  state.selected = null;
  render();
});
byId("hold").addEventListener("click", () => act({ type: "hold" }));
byId("resume").addEventListener("click", () => act({ type: "resume" }));
byId("end").addEventListener("click", () => {
  if (confirm(t("console.endConfirm"))) act({ type: "end" });
});

byId("mute-self").addEventListener("click", async () => {
  const entry = state.selected === null ? undefined : state.sessions.get(state.selected);
  if (!entry) return;
  const muted = !entry.selfMuted;
  if (await act({ type: "mute", target: "self", kind: "audio", muted })) {
    entry.selfMuted = muted;
    for (const track of entry.mic?.getAudioTracks() ?? []) track.enabled = !muted;
    render();
  }
});

byId("mute-customer").addEventListener("click", async () => {
  const entry = state.selected === null ? undefined : state.sessions.get(state.selected);
  if (!entry) return;
  const muted = !entry.customerMuted;
  if (await act({ type: "mute", target: "customer", kind: "audio", muted })) {
    entry.customerMuted = muted;
    render();
  }
});

byId("zoom").addEventListener("click", () => {
  const zoomed = stage.classList.toggle("actual");
  stage.classList.toggle("fit", !zoomed);
  byId("zoom").setAttribute("aria-pressed", String(zoomed));
  byId("zoom").textContent = t(zoomed ? "console.fit" : "console.zoom");
});

byId("fullscreen").addEventListener("click", () => {
  if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
  else stage.requestFullscreen().catch(() => {});
});

byId("snapshot").addEventListener("click", () => {
  if (!video.videoWidth) return;
  const canvas = document.createElement("canvas");
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  canvas.getContext("2d")?.drawImage(video, 0, 0);
  canvas.toBlob((blob) => {
    if (!blob) return;
    const a = el("a", {
      href: URL.createObjectURL(blob),
      download: `lens-session-${state.selected}-${new Date().toISOString().replace(/[:.]/g, "-")}.png`,
    });
    document.body.append(a);
    a.click();
    setTimeout(() => {
      URL.revokeObjectURL(a.getAttribute("href") ?? "");
      a.remove();
    }, 1000);
  }, "image/png");
});

byId("chat-form", HTMLFormElement).addEventListener("submit", async (e) => {
  e.preventDefault();
  const input = byId("chat-text", HTMLInputElement);
  const text = input.value.trim();
  if (text && (await act({ type: "chat", text }))) input.value = "";
});

byId("note-form", HTMLFormElement).addEventListener("submit", async (e) => {
  e.preventDefault();
  const input = byId("note-text", HTMLInputElement);
  const text = input.value.trim();
  const entry = state.selected === null ? undefined : state.sessions.get(state.selected);
  if (text && entry && (await act({ type: "note", text }))) {
    entry.notes.push(text);
    input.value = "";
    render();
  }
});

presence.addEventListener("change", () => {
  state.socket?.request({ type: "status", value: presence.value }).catch(() => {});
});

languageSelect.addEventListener("change", async () => {
  await setLanguage(languageSelect.value);
  if (state.me) localStorage.setItem(`lens.language.user.${state.me.id}`, languageSelect.value);
  else localStorage.setItem("lens.language", languageSelect.value);
  render();
});

// ---------------------------------------------------------- create dialog --

const createDialog = byId("create-dialog", HTMLDialogElement);
const createForm = byId("create-form", HTMLFormElement);

function createMethod() {
  const checked = createForm.querySelector('input[name="method"]:checked');
  return checked instanceof HTMLInputElement ? checked.value : "pin";
}

function renderCreateMethod() {
  const method = createMethod();
  byId("create-phone-row").hidden = method !== "sms";
  byId("create-email-row").hidden = method !== "email";
}

/**
 * The create-session form of the technician's group: allowed methods, the name field's label and
 * the enabled custom fields (open text or drop-down, mandatory or not).
 * @param {{methods: string[], email_via: string[], name_label: string,
 *   custom_fields: {index: number, label: string, mandatory: boolean, kind: string, choices: string[]}[]}} form
 */
function drawCreateForm(form) {
  for (const label of createForm.querySelectorAll("[data-method]")) {
    const allowed = form.methods.includes(label.getAttribute("data-method") ?? "");
    /** @type {HTMLElement} */ (label).hidden = !allowed;
  }
  const first = createForm.querySelector(`input[name="method"][value="${form.methods[0] ?? "pin"}"]`);
  if (first instanceof HTMLInputElement) first.checked = true;
  for (const label of createForm.querySelectorAll("[data-via]")) {
    /** @type {HTMLElement} */ (label).hidden = !form.email_via.includes(label.getAttribute("data-via") ?? "");
  }
  const via = createForm.querySelector(`input[name="email-via"][value="${form.email_via[0] ?? "servers"}"]`);
  if (via instanceof HTMLInputElement) via.checked = true;
  byId("create-name-label").textContent = form.name_label;
  byId("create-custom").replaceChildren(
    ...form.custom_fields.flatMap((f) => {
      const id = `create-custom-${f.index}`;
      const label = el("label", { for: id }, [f.mandatory ? `${f.label} *` : f.label]);
      const input =
        f.kind === "drop_down"
          ? el("select", { id, required: f.mandatory }, [
              el("option", { value: "" }, [f.mandatory ? t("create.choose") : ""]),
              ...f.choices.map((c) => el("option", { value: c }, [c])),
            ])
          : el("input", { id, maxlength: "64", autocomplete: "off", required: f.mandatory });
      return [label, input];
    }),
  );
  byId("create-submit").hidden = form.methods.length === 0;
  byId("create-error").textContent = form.methods.length === 0 ? t("create.noMethods") : "";
}

byId("new-session").addEventListener("click", async () => {
  createForm.reset();
  byId("create-error").textContent = "";
  // The previous session's code must not linger in the dialog.
  byId("create-result").replaceChildren();
  byId("create-result").hidden = true;
  byId("create-submit").hidden = false;
  try {
    drawCreateForm(await api("GET", "/console/session-form", state.token));
  } catch (e) {
    byId("create-error").textContent = e instanceof Error ? e.message : String(e);
  }
  renderCreateMethod();
  createDialog.showModal();
  byId("create-name").focus();
});

for (const radio of createForm.querySelectorAll('input[name="method"]')) {
  radio.addEventListener("change", renderCreateMethod);
}

byId("create-cancel").addEventListener("click", () => createDialog.close());

createForm.addEventListener("submit", async (e) => {
  e.preventDefault();
  const method = createMethod();
  const value = (/** @type {string} */ id) => {
    const input = document.getElementById(id);
    return input instanceof HTMLInputElement || input instanceof HTMLSelectElement ? input.value.trim() : "";
  };
  /** @type {import("./socket.js").Frame} */
  const frame = {
    type: "create_session",
    method,
    name: value("create-name"),
    custom_fields: [1, 2, 3, 4, 5].map((i) => value(`create-custom-${i}`)),
    tracking_id: value("create-tracking"),
  };
  if (method === "sms") frame.phone = value("create-phone");
  if (method === "email") {
    frame.email = value("create-email");
    const via = createForm.querySelector('input[name="email-via"]:checked');
    frame.email_via = via instanceof HTMLInputElement ? via.value : "servers";
  }
  const error = byId("create-error");
  error.textContent = "";
  try {
    const ok = /** @type {any} */ (await state.socket?.request(frame));
    const result = byId("create-result");
    result.replaceChildren();
    if (ok.pin) {
      result.append(el("span", {}, [t("create.givePin")]), el("strong", { class: "pin-code", "data-pin": ok.pin }, [ok.pin]));
    } else if (ok.link) {
      const line = method === "sms" ? t("create.smsSent") : method === "email" ? t("create.emailSent") : t("create.giveLink");
      result.append(el("span", {}, [line]), el("code", { class: "link-code" }, [ok.link]));
      if (ok.mailto) {
        result.append(el("a", { href: ok.mailto, class: "button" }, [t("create.openMail")]));
      }
    }
    result.append(el("span", { class: "muted small" }, [t("create.validUntil", { time: clock(ok.expires_at) })]));
    result.hidden = false;
    byId("create-submit").hidden = true;
    state.selected = ok.session_id;
    render();
  } catch (err) {
    error.textContent = err instanceof ProtocolError && err.code === "method_not_allowed" ? t("create.notAllowed") : err instanceof Error ? err.message : String(err);
  }
});

// -------------------------------------------------------- transfer dialog --

const transferDialog = byId("transfer-dialog", HTMLDialogElement);
const transferForm = byId("transfer-form", HTMLFormElement);

byId("transfer").addEventListener("click", async () => {
  transferForm.reset();
  byId("transfer-error").textContent = "";
  const select = byId("transfer-target", HTMLSelectElement);
  try {
    /** @type {{technicians: {id: number, name: string}[], groups: {id: number, name: string}[]}} */
    const targets = await api("GET", "/console/transfer-targets", state.token);
    const group = (/** @type {string} */ label, /** @type {string} */ kind, /** @type {{id: number, name: string}[]} */ items) =>
      el("optgroup", { label }, items.map((i) => el("option", { value: `${kind}:${i.id}` }, [i.name])));
    select.replaceChildren(
      group(t("transfer.technicians"), "technician", targets.technicians),
      group(t("transfer.groups"), "group", targets.groups),
    );
  } catch (e) {
    byId("transfer-error").textContent = e instanceof Error ? e.message : String(e);
  }
  transferDialog.showModal();
});
byId("transfer-cancel").addEventListener("click", () => transferDialog.close());
transferForm.addEventListener("submit", async (e) => {
  e.preventDefault();
  const [kind, raw] = byId("transfer-target", HTMLSelectElement).value.split(":");
  const to = Number(raw);
  if (!Number.isInteger(to) || state.selected === null || !state.socket) return;
  /** @type {import("./socket.js").Frame} */
  const frame = { type: "transfer", session_id: state.selected };
  frame[kind === "group" ? "to_group_id" : "to_technician_id"] = to;
  const comment = byId("transfer-comment", HTMLInputElement).value.trim();
  if (comment) frame.comment = comment;
  try {
    await state.socket.request(frame);
    transferDialog.close();
  } catch (err) {
    byId("transfer-error").textContent = err instanceof Error ? err.message : String(err);
  }
});

// ------------------------------------------------------------------- main --

async function main() {
  await setLanguage(localStorage.getItem("lens.language") ?? pickLanguage(navigator.languages));
  fillLanguageSelect(languageSelect);
  // Waiting times and alarm colours move on their own.
  setInterval(() => {
    if ([...state.sessions.values()].some((e) => e.view.waiting_seconds !== undefined)) renderList();
  }, 1000);
  // Single sign-on lands on /console#token=<token>: that token becomes this tab's login, and
  // leaves the address bar (and history) at once.
  const landed = new URLSearchParams(location.hash.slice(1)).get("token");
  if (landed) {
    history.replaceState(null, "", location.pathname + location.search);
    sessionStorage.setItem("lens.console.token", landed);
  }
  await resumeOrLogin(panels, "lens.console.token", async (token) => {
    state.token = token;
    await openConsole();
  });
}

main();
