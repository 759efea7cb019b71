// The customer page: enter the PIN (or open the link /s/<token>), share the camera (rear camera
// preferred) and, when the session has audio, the microphone; talk and chat with the technician.
// Protocol: signaling/PROTOCOL.md §3 and §5.

import { api } from "./api.js";
import { byId, el, showOnly, clock } from "./dom.js";
import { fillLanguageSelect, pickLanguage, setLanguage, t } from "./i18n.js";
import { addCandidate, isDead, peerConnection, trickle } from "./media.js";
import { ProtocolError, Socket } from "./socket.js";
import { surveyForm } from "./survey.js";
import { Overlay, captureStill } from "./annotate.js";

const entry = byId("entry");
const call = byId("call");
const ended = byId("ended");
const pinForm = byId("pin-form", HTMLFormElement);
const pinInput = byId("pin", HTMLInputElement);
const entryError = byId("entry-error");
const selfView = byId("self-view", HTMLVideoElement);
const statusLine = byId("status");
const liveBadge = byId("live");
const muteButton = byId("mute", HTMLButtonElement);
const pauseButton = byId("pause", HTMLButtonElement);
const switchButton = byId("switch", HTMLButtonElement);
const endButton = byId("end", HTMLButtonElement);
const chatLog = byId("chat-log");
const chatForm = byId("chat-form", HTMLFormElement);
const chatText = byId("chat-text", HTMLInputElement);
const remoteAudio = byId("remote-audio", HTMLAudioElement);
const languageSelect = byId("language", HTMLSelectElement);
const stillView = byId("still", HTMLCanvasElement);
const frozenNote = byId("frozen-note");
const drawingNote = byId("drawing-note");
const linkList = byId("link-list");
// The technician's strokes over the camera view (PROTOCOL.md §7.5).
const drawing = new Overlay(byId("annotations", HTMLCanvasElement), selfView);

/** Everything this page knows about its session. */
const state = {
  /** @type {Socket | null} */
  socket: null,
  resumeToken: "",
  audio: false,
  /** @type {RTCIceServer[]} */
  iceServers: [],
  /** @type {string | undefined} `ice_transport_policy` of the join/resume reply */
  iceTransportPolicy: undefined,
  status: "",
  technician: "",
  /** @type {MediaStream | null} */
  camera: null,
  /** @type {RTCPeerConnection | null} */
  pc: null,
  /** @type {RTCRtpSender | null} */
  videoSender: null,
  /** Restarts ICE on `pc` (set with it): an offer that also finds out whether the room moved. */
  restartIce: () => {},
  micMuted: false,
  videoPaused: false,
  /** What the server says flows. */
  mute: { customer_audio: true, customer_video: true, technician_audio: true },
  over: false,
  /** `reoffer` frames received: a new owner of the session that found this page by itself. */
  reoffers: 0,
  /** The status line shown while nothing more specific applies. */
  statusKey: "customer.status.connecting",
  /** @type {Record<string, string | number>} */
  statusVars: {},
};

/** The link's token when the page was opened as /s/<token>. */
function linkToken() {
  const m = location.pathname.match(/^\/s\/([^/]+)$/);
  return m ? decodeURIComponent(m[1]) : null;
}

function device() {
  const ua = navigator.userAgent;
  const platform = /Android [\d.]+/.exec(ua)?.[0] ?? (/iPhone|iPad/.test(ua) ? "iOS" : navigator.platform);
  const browser = /(Edg|OPR|Chrome|CriOS|Firefox|FxiOS|Version)\/[\d.]+/.exec(ua)?.[0] ?? "browser";
  return {
    platform: platform.slice(0, 64),
    browser: (browser.startsWith("Version") ? "Safari/" + browser.split("/")[1] : browser).slice(0, 64),
    locale: navigator.language.slice(0, 64),
    app: "Lens web",
  };
}

/**
 * @param {string} key
 * @param {Record<string, string | number>} [vars]
 */
function setStatus(key, vars = {}) {
  state.statusKey = key;
  state.statusVars = vars;
  renderStatus();
}

function renderStatus() {
  let text = t(state.statusKey, state.statusVars);
  if (state.status === "Active" && state.mute.customer_audio === false && state.audio && !state.micMuted) {
    text += " · " + t("customer.status.technicianMutedYou");
  }
  statusLine.textContent = text;
  liveBadge.hidden = state.status !== "Active";
}

/** @param {string} status the session status from the server */
function onStatus(status) {
  state.status = status;
  queueMicrotask(renderTools);
  switch (status) {
    case "Connecting":
      setStatus("customer.status.connecting");
      break;
    case "Waiting":
      setStatus("customer.status.waiting");
      break;
    case "Active":
      setStatus(state.technician ? "customer.status.connectedTo" : "customer.status.connected", {
        name: state.technician,
      });
      if (isDead(state.pc)) startMedia().catch((e) => failMedia(e));
      break;
    case "On Hold":
      setStatus("customer.status.onHold");
      break;
    case "Transferring":
      setStatus("customer.status.transferring");
      // The next technician starts clean (the server says so too).
      drawing.clear();
      setFrozen(false);
      break;
    case "Reconnecting":
      setStatus("customer.status.technicianReconnecting");
      break;
    default:
      break;
  }
}

/** Shows or hides the drawing and the still: hidden while the session is on hold. */
function renderTools() {
  const held = state.status !== "Active";
  drawing.canvas.hidden = held;
  const frozen = stillView.dataset.frozen === "true";
  stillView.hidden = !frozen || held;
  frozenNote.hidden = !frozen || held;
  stillView.style.left = `${selfView.offsetLeft}px`;
  stillView.style.top = `${selfView.offsetTop}px`;
  stillView.style.width = `${selfView.clientWidth}px`;
  stillView.style.height = `${selfView.clientHeight}px`;
  drawing.frame = frozen ? { w: stillView.width, h: stillView.height } : { w: 0, h: 0 };
  drawing.render();
}

/**
 * The technician froze the picture (the frame this page shows now becomes a still; the camera
 * keeps sending) or went back to live video.
 * @param {boolean} frozen
 */
function setFrozen(frozen) {
  stillView.dataset.frozen = String(frozen && captureStill(selfView, stillView));
  renderTools();
}

/**
 * A link from the technician: a card with its host that opens only when tapped.
 * @param {string} url
 * @param {string} host
 */
function addLink(url, host) {
  if (!/^https?:\/\//i.test(url)) return;
  linkList.prepend(
    el("li", { class: "link-card" }, [
      el("span", { class: "link-host" }, [host]),
      el("span", { class: "link-url" }, [url]),
      el("a", { class: "button primary", href: url, target: "_blank", rel: "noopener noreferrer" }, [
        t("customer.links.open", { host }),
      ]),
    ]),
  );
  byId("links").hidden = false;
}

/** @param {unknown} e */
function failMedia(e) {
  console.error("media", e);
  setStatus("customer.status.mediaFailed");
}

/** @param {import("./socket.js").Frame} f */
function onEvent(f) {
  switch (f.type) {
    case "status":
      if (f.technician?.nickname) state.technician = f.technician.nickname;
      onStatus(f.status);
      break;
    case "mute_state":
      state.mute = {
        customer_audio: f.customer_audio,
        customer_video: f.customer_video,
        technician_audio: f.technician_audio,
      };
      renderStatus();
      break;
    case "candidate":
      if (state.pc) addCandidate(state.pc, f);
      break;
    case "chat":
      addChat(f.from, f.name, f.text, f.at);
      break;
    case "annotation":
      drawing.add({ tool: f.tool, color: f.color, points: f.points });
      drawingNote.textContent = t("customer.call.drawing");
      break;
    case "annotation_clear":
      drawing.clear();
      drawingNote.textContent = "";
      break;
    case "freeze":
      setFrozen(!!f.frozen);
      break;
    case "url":
      addLink(f.url, f.host);
      break;
    case "ended":
      finish(f.status, f.survey, f.redirect_url);
      break;
    case "reoffer":
      // The session's room now lives on another node (drained or taken over after a failure,
      // §5): a new peer connection, since that node has another DTLS fingerprint. The socket,
      // camera and microphone stay.
      state.reoffers += 1;
      if (mayOffer()) startMedia().catch(failMedia);
      break;
    default:
      break; // Later servers may add events: ignored.
  }
}

/**
 * @param {string} from
 * @param {string} name
 * @param {string} text
 * @param {string} at
 */
function addChat(from, name, text, at) {
  const who = from === "customer" ? t("chat.you") : name;
  chatLog.append(
    el("li", { class: `chat-line from-${from}` }, [
      el("span", { class: "chat-meta" }, [`${who} · ${clock(at)}`]),
      el("span", { class: "chat-text" }, [text]),
    ]),
  );
  chatLog.scrollTop = chatLog.scrollHeight;
}

/** @param {string} status */
function endedTextKey(status) {
  switch (status) {
    case "Closed by customer":
    case "Closed by waiting customer":
    case "Declined by customer":
      return "customer.ended.byYou";
    case "Closed by technician":
    case "Timed out: closed by technician":
      return "customer.ended.byTechnician";
    case "Timed out":
      return "customer.ended.timedOut";
    case "Disconnected":
      return "customer.ended.disconnected";
    case "Expired":
      return "customer.error.codeExpired";
    default:
      return "customer.ended.other";
  }
}

/**
 * The session is over: stop the camera, show why, and the survey when the group has one.
 * @param {string} status
 * @param {{url?: string, questions?: import("./survey.js").Question[]} | undefined} survey
 * @param {string | undefined} redirect
 */
function finish(status, survey, redirect) {
  if (state.over) return;
  state.over = true;
  stopMedia();
  if (redirect && /^https?:\/\//.test(redirect)) {
    location.assign(redirect);
    return;
  }
  byId("ended-text").textContent = t(endedTextKey(status));
  const surveyBox = byId("survey");
  const link = byId("survey-link", HTMLAnchorElement);
  // A self-hosted survey (its URL already carries RescueSessionID and CField0..5 when the group
  // adds session details), or the built-in form, answered with the session's resume token.
  if (survey?.url && /^https?:\/\//.test(survey.url)) {
    link.href = survey.url;
    surveyBox.hidden = false;
  } else if (survey?.questions?.length && state.resumeToken) {
    const resumeToken = state.resumeToken;
    byId("survey-builtin").replaceChildren(
      surveyForm("customer-survey", survey.questions, async (answers) => {
        await api("POST", "/surveys/customer", null, { resume_token: resumeToken, answers });
      }),
    );
    byId("survey-builtin-box").hidden = false;
  }
  showOnly([entry, call, ended], ended);
}

function stopMedia() {
  state.pc?.close();
  state.pc = null;
  for (const track of state.camera?.getTracks() ?? []) track.stop();
  state.camera = null;
  selfView.srcObject = null;
}

/** The camera (rear preferred) and, when the session has audio, the microphone. */
async function openCamera() {
  return navigator.mediaDevices.getUserMedia({
    video: { facingMode: { ideal: "environment" }, width: { ideal: 1280 }, height: { ideal: 720 } },
    audio: state.audio ? { echoCancellation: true, noiseSuppression: true } : false,
  });
}

/** Whether the session is in a status where the phone's media is negotiated. */
function mayOffer() {
  return !state.over && ["Active", "On Hold", "Reconnecting"].includes(state.status ?? "");
}

/** Whether the error says the node that held the session is gone (§9 `node_unavailable`). */
function ownerGone(/** @type {unknown} */ e) {
  return e instanceof ProtocolError && (e.code === "node_unavailable" || e.code === "not_authenticated");
}

/**
 * The `a=fingerprint` line of an SDP: the DTLS certificate of the node that answered.
 * @param {string | undefined} sdp
 */
function fingerprint(sdp) {
  return /^a=fingerprint:(.+)$/m.exec(sdp ?? "")?.[1]?.trim() ?? "";
}

/**
 * Offers the camera (and microphone) to the server from a new peer connection: once the session
 * is Active (§3.2 step 5), after a resume when the old one failed, and on `reoffer`. A newer call
 * supersedes an older one still under way (its errors are then nobody's concern).
 */
async function startMedia() {
  const socket = state.socket;
  const camera = state.camera;
  if (!socket || !camera) return;
  // The old connection is closed only once the new offer is answered (or refused): closed first,
  // the server could see the phone's media lost (Reconnecting) before the new offer arrives, and
  // would then not offer the console a connection for the new one.
  const old = state.pc;
  const pc = peerConnection(state.iceServers, state.iceTransportPolicy);
  state.pc = pc;
  try {
    await negotiateNew(pc, socket, camera);
  } catch (e) {
    if (pc !== state.pc) return;
    if (ownerGone(e) && mayOffer()) {
      resumeHere();
      return;
    }
    throw e;
  } finally {
    old?.close();
  }
}

/**
 * Sets up a new peer connection and makes its first offer.
 * @param {RTCPeerConnection} pc
 * @param {Socket} socket
 * @param {MediaStream} camera
 */
async function negotiateNew(pc, socket, camera) {
  const video = camera.getVideoTracks()[0];
  const videoTx = pc.addTransceiver(video, { direction: "sendonly", streams: [camera] });
  state.videoSender = videoTx.sender;
  // Technicians read details off the picture: keep the resolution, give up frame rate first.
  const params = videoTx.sender.getParameters();
  params.degradationPreference = "maintain-resolution";
  await videoTx.sender.setParameters(params).catch(() => {});
  const mic = camera.getAudioTracks()[0];
  if (state.audio && mic) {
    pc.addTransceiver(mic, { direction: "sendrecv", streams: [camera] });
    pc.addEventListener("track", (e) => {
      if (e.track.kind === "audio") {
        remoteAudio.srcObject = new MediaStream([e.track]);
        remoteAudio.play().catch(() => {});
      }
    });
  }
  pc.addEventListener("connectionstatechange", () => {
    if (pc === state.pc && pc.connectionState === "failed" && mayOffer()) {
      // The server answers an offer from a new peer connection with a fresh media session.
      startMedia().catch(failMedia);
    }
  });
  // Candidates are sent only after the offer they belong to (an ICE restart's too: the server
  // forgets the earlier ones when it applies the restart).
  /** @type {(v: unknown) => void} */
  let offered = () => {};
  /** @type {Promise<unknown>} */
  let sent = Promise.resolve();
  const holdCandidates = () => (sent = new Promise((r) => (offered = r)));
  holdCandidates();
  trickle(pc, Promise.resolve(), (c) => {
    sent.then(() => state.socket?.send({ type: "candidate", ...c }));
  });
  /** One offer/answer round on this peer connection; `iceRestart` after a network change. */
  const negotiate = async (/** @type {boolean} */ iceRestart) => {
    holdCandidates();
    if (iceRestart) {
      // Gather the restart's relay candidates with the latest TURN credentials (those of the last
      // join/resume): the first ones may have expired during a long session.
      try {
        pc.setConfiguration({ ...pc.getConfiguration(), iceServers: state.iceServers });
      } catch (e) {
        console.warn("keeping the first ICE servers", e);
      }
    }
    const offer = await pc.createOffer({ iceRestart });
    await pc.setLocalDescription(offer);
    const request = (state.socket ?? socket).request({
      type: "offer",
      sdp: pc.localDescription?.sdp ?? offer.sdp,
    });
    // A restart follows a lost connection: its node may be the one that is gone.
    const ok = await (iceRestart ? answerSoon(request) : request);
    if (pc !== state.pc) return;
    if (iceRestart && fingerprint(ok.sdp) !== fingerprint(pc.remoteDescription?.sdp)) {
      // Another node answered (the room moved while we were restarting): its DTLS certificate
      // differs, which a running peer connection cannot take. Offer from a new one instead.
      throw new Error("the media node changed");
    }
    await pc.setRemoteDescription({ type: "answer", sdp: ok.sdp });
    offered(undefined);
  };
  // The phone changed network (or lost it for a while): restart ICE on the same connection, so
  // the session goes on (Reconnecting, then Active) without a new media session. If the server
  // cannot take the restart, a new peer connection is made.
  let restarting = false;
  const restart = () => {
    if (pc !== state.pc || restarting || !mayOffer()) return;
    restarting = true;
    negotiate(true)
      .catch((e) => {
        if (pc !== state.pc || !mayOffer()) return undefined;
        // The node that held the room is gone: find its new owner through a resume first.
        return ownerGone(e) ? resumeHere() : startMedia();
      })
      .catch(failMedia)
      .finally(() => (restarting = false));
  };
  state.restartIce = restart;
  pc.addEventListener("iceconnectionstatechange", () => {
    const ice = pc.iceConnectionState;
    if (ice === "disconnected" || ice === "failed") restart();
  });
  await negotiate(false);
}

/**
 * Opens the socket and presents the code (`join`), or a resume token (`resume`).
 * @param {{type: "join", code: string} | {type: "resume", resume_token: string}} first
 */
async function connect(first) {
  const socket = new Socket("/ws/customer", onEvent, (code) => onSocketClosed(socket, code));
  state.socket = socket;
  const frame = first.type === "join" ? { ...first, v: 1, device: device() } : first;
  const ok = await socket.request(frame);
  state.resumeToken = ok.resume_token;
  state.audio = ok.audio;
  state.iceServers = ok.ice_servers ?? [];
  state.iceTransportPolicy = ok.ice_transport_policy;
  return ok;
}

/**
 * The socket closed. Unless the session is over, resume it with back-off (1 s, 2 s, 4 s, then
 * every 5 s) until the server says it ended.
 * @param {Socket} socket
 * @param {number} code
 */
async function onSocketClosed(socket, code) {
  if (socket !== state.socket || state.over || !state.resumeToken || resuming) return;
  if (code === 4000) return; // replaced by a newer socket of ours
  setStatus("customer.status.reconnecting");
  liveBadge.hidden = true;
  for (let attempt = 0; !state.over; attempt++) {
    await new Promise((r) => setTimeout(r, Math.min(1000 * 2 ** attempt, 5000)));
    try {
      const ok = await connect({ type: "resume", resume_token: state.resumeToken });
      onStatus(ok.status);
      // The socket's node may have been drained, and the session's room moved with it (no
      // `reoffer` after a resume): an ICE restart now is answered by the room's node, and one
      // with another DTLS fingerprint makes a new peer connection, seconds before ICE would
      // notice the old node gone. On the same node it is a plain restart.
      if (!isDead(state.pc) && mayOffer()) state.restartIce();
      return;
    } catch (e) {
      if (e instanceof ProtocolError && (e.code === "session_ended" || e.code === "resume_invalid")) {
        finish("Disconnected", undefined, undefined);
        return;
      }
    }
  }
}

/** Set while resumeHere runs: one loop at a time. */
let resuming = false;
/**
 * How long a node may take to answer an ICE restart's offer, or resumeHere's `resume`, before the
 * page takes the session's node for gone and tries a new socket: the server's own limit for a
 * routed request (4 s) would take most of the 15 s that a failover may cost (issue 15), and
 * these answers take a few hundred milliseconds even on a loaded node.
 */
const ANSWER_TIMEOUT_MS = 1500;

/**
 * `promise`, or a `node_unavailable` ProtocolError after ANSWER_TIMEOUT_MS.
 * @template T
 * @param {Promise<T>} promise
 * @returns {Promise<T>}
 */
function answerSoon(promise) {
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let timer;
  const late = new Promise((_, fail) => {
    timer = setTimeout(() => fail(new ProtocolError("node_unavailable", "no answer from the session's node")), ANSWER_TIMEOUT_MS);
  });
  return /** @type {Promise<T>} */ (Promise.race([promise, late]).finally(() => clearTimeout(timer)));
}

/**
 * The node that held the session is gone (an offer got `node_unavailable`, or this socket is no
 * longer carried to it): `resume` on a new socket every second or so until a node holds the
 * session again (§3.3, §9 `node_unavailable`), then offer from a new peer connection. A new
 * socket each time, and no answer awaited longer than ANSWER_TIMEOUT_MS: the node the socket
 * reaches looks the session's owner up afresh, so the first try after another node took the
 * session over succeeds, instead of waiting out a try routed to the dead node just before. A
 * `reoffer` meanwhile (the new owner found us first) ends the loop.
 */
async function resumeHere() {
  if (resuming) return;
  resuming = true;
  const reoffers = state.reoffers;
  let offer = false;
  try {
    for (;;) {
      await new Promise((r) => setTimeout(r, 700));
      if (state.over || state.reoffers !== reoffers) return;
      const old = state.socket;
      state.socket = null; // its close is ours: onSocketClosed leaves it alone
      old?.close();
      try {
        const ok = await answerSoon(connect({ type: "resume", resume_token: state.resumeToken }));
        const pc = state.pc;
        onStatus(ok.status);
        offer = pc === state.pc; // false when onStatus already offered from a new one
        return;
      } catch (e) {
        if (e instanceof ProtocolError && (e.code === "session_ended" || e.code === "resume_invalid")) {
          finish("Disconnected", undefined, undefined);
          return;
        }
      }
    }
  } finally {
    resuming = false;
    if (offer && state.reoffers === reoffers && mayOffer()) startMedia().catch(failMedia);
  }
}

/** @param {unknown} e */
function joinErrorText(e) {
  if (!(e instanceof ProtocolError)) return t("customer.error.network");
  switch (e.code) {
    case "code_invalid":
      return t("customer.error.codeInvalid");
    case "code_expired":
      return t("customer.error.codeExpired");
    case "too_many_attempts":
      return t("customer.error.tooManyAttempts", { seconds: e.retryAfter ?? 60 });
    default:
      return e.message;
  }
}

/** @param {string} code */
async function join(code) {
  entryError.textContent = "";
  try {
    if (state.socket && state.socket.ws.readyState === WebSocket.OPEN) {
      // A wrong code may be retried on the same socket (§3.2 step 2).
      const ok = await state.socket.request({ type: "join", v: 1, code, device: device() });
      state.resumeToken = ok.resume_token;
      state.audio = ok.audio;
      state.iceServers = ok.ice_servers ?? [];
      state.iceTransportPolicy = ok.ice_transport_policy;
    } else {
      await connect({ type: "join", code });
    }
  } catch (e) {
    entryError.textContent = joinErrorText(e);
    showOnly([entry, call, ended], entry);
    return;
  }
  showOnly([entry, call, ended], call);
  setStatus("customer.status.camera");
  muteButton.hidden = !state.audio;
  try {
    state.camera = await openCamera();
  } catch (e) {
    console.error("camera", e);
    await state.socket?.request({ type: "decline" }).catch(() => {});
    finish("Declined by customer", undefined, undefined);
    byId("ended-text").textContent = t("customer.error.camera");
    return;
  }
  selfView.srcObject = state.camera;
  switchButton.hidden = (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.kind === "videoinput").length < 2;
  setStatus("customer.status.connecting");
  await state.socket?.request({ type: "ready" });
}

pinForm.addEventListener("submit", (e) => {
  e.preventDefault();
  const code = pinInput.value.replace(/\D/g, "");
  if (code.length !== 6) {
    entryError.textContent = t("customer.error.pinFormat");
    pinInput.focus();
    return;
  }
  join(code);
});

muteButton.addEventListener("click", async () => {
  const muted = !state.micMuted;
  try {
    await state.socket?.request({ type: "mute", kind: "audio", muted });
  } catch {
    return;
  }
  state.micMuted = muted;
  for (const track of state.camera?.getAudioTracks() ?? []) track.enabled = !muted;
  muteButton.setAttribute("aria-pressed", String(muted));
  muteButton.textContent = t(muted ? "customer.call.unmute" : "customer.call.mute");
  renderStatus();
});

pauseButton.addEventListener("click", async () => {
  const paused = !state.videoPaused;
  try {
    await state.socket?.request({ type: "mute", kind: "video", muted: paused });
  } catch {
    return;
  }
  state.videoPaused = paused;
  for (const track of state.camera?.getVideoTracks() ?? []) track.enabled = !paused;
  pauseButton.setAttribute("aria-pressed", String(paused));
  pauseButton.textContent = t(paused ? "customer.call.resumeVideo" : "customer.call.pauseVideo");
});

switchButton.addEventListener("click", async () => {
  const camera = state.camera;
  if (!camera) return;
  const cameras = (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.kind === "videoinput");
  const now = camera.getVideoTracks()[0]?.getSettings().deviceId;
  const next = cameras[(cameras.findIndex((d) => d.deviceId === now) + 1) % cameras.length];
  if (!next) return;
  const fresh = await navigator.mediaDevices.getUserMedia({
    video: { deviceId: { exact: next.deviceId }, width: { ideal: 1280 }, height: { ideal: 720 } },
  });
  const track = fresh.getVideoTracks()[0];
  const old = camera.getVideoTracks()[0];
  track.enabled = !state.videoPaused;
  await state.videoSender?.replaceTrack(track);
  if (old) {
    camera.removeTrack(old);
    old.stop();
  }
  camera.addTrack(track);
  selfView.srcObject = camera;
});

endButton.addEventListener("click", async () => {
  if (!confirm(t("customer.call.endConfirm"))) return;
  const before = state.status === "Connecting" || state.status === "Waiting";
  await state.socket?.request({ type: before ? "decline" : "end" }).catch(() => {});
});

chatForm.addEventListener("submit", async (e) => {
  e.preventDefault();
  const text = chatText.value.trim();
  if (!text) return;
  try {
    await state.socket?.request({ type: "chat", text });
    chatText.value = "";
  } catch (err) {
    if (err instanceof ProtocolError && err.code === "not_allowed") {
      addChat("system", "Lens", t("chat.notYet"), new Date().toISOString());
    }
  }
});

languageSelect.addEventListener("change", async () => {
  localStorage.setItem("lens.language", languageSelect.value);
  await setLanguage(languageSelect.value);
  renderStatus();
});

async function main() {
  await setLanguage(localStorage.getItem("lens.language") ?? pickLanguage(navigator.languages));
  fillLanguageSelect(languageSelect);
  const token = linkToken();
  if (token) {
    showOnly([entry, call, ended], call);
    await join(token);
  } else {
    showOnly([entry, call, ended], entry);
    pinInput.focus();
  }
}

main();

// The still and the drawing follow the camera view's size (rotation, window changes).
new ResizeObserver(() => renderTools()).observe(selfView);
