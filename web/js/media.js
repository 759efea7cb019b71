// WebRTC pieces shared by the customer page and the console (signaling/PROTOCOL.md §5).

/**
 * A peer connection as the server wants it: one bundle, RTCP multiplexed, with the STUN/TURN
 * servers (`ice_servers`) and `ice_transport_policy` ("relay": TURN only) the server handed out.
 * @param {RTCIceServer[]} iceServers
 * @param {string} [iceTransportPolicy] "all" (absent) or "relay"
 */
export function peerConnection(iceServers, iceTransportPolicy) {
  /** @type {RTCIceTransportPolicy} */
  const policy = iceTransportPolicy === "relay" ? "relay" : "all";
  return new RTCPeerConnection({ iceServers, iceTransportPolicy: policy, bundlePolicy: "max-bundle", rtcpMuxPolicy: "require" });
}

/**
 * Trickles local candidates through `send` once `ready` resolves (candidates may be sent only after
 * the offer or answer); `null` marks the end.
 * @param {RTCPeerConnection} pc
 * @param {Promise<unknown>} ready
 * @param {(c: {candidate: string | null, sdp_mid?: string, sdp_mline_index?: number}) => void} send
 */
export function trickle(pc, ready, send) {
  pc.addEventListener("icecandidate", (e) => {
    const c = e.candidate;
    const frame =
      c && c.candidate
        ? {
            candidate: c.candidate,
            ...(c.sdpMid != null ? { sdp_mid: c.sdpMid } : {}),
            ...(c.sdpMLineIndex != null ? { sdp_mline_index: c.sdpMLineIndex } : {}),
          }
        : { candidate: null };
    ready.then(() => send(frame)).catch(() => {});
  });
}

/**
 * Adds a remote candidate frame from the server.
 * @param {RTCPeerConnection} pc
 * @param {import("./socket.js").Frame} frame `candidate` (string or null), `sdp_mid?`, `sdp_mline_index?`
 */
export async function addCandidate(pc, frame) {
  if (frame.candidate === null || frame.candidate === undefined) {
    await pc.addIceCandidate(null).catch(() => {});
    return;
  }
  await pc
    .addIceCandidate({
      candidate: frame.candidate,
      sdpMid: frame.sdp_mid ?? null,
      sdpMLineIndex: frame.sdp_mline_index ?? null,
    })
    .catch(() => {});
}

/**
 * Whether the peer connection is gone for good (a new one must be negotiated).
 * @param {RTCPeerConnection | null} pc
 */
export function isDead(pc) {
  return !pc || pc.connectionState === "failed" || pc.connectionState === "closed";
}

/** Playout delay (ms) the console holds video with while its packets are being lost. */
export const LOSS_HOLD_MS = 200;
/** The hold moves by at most this much a second: a larger step pauses the picture visibly. */
const HOLD_STEP_MS = 50;

/**
 * Holds the received video up to `LOSS_HOLD_MS` longer while packets are being lost, and returns
 * to the browser's own (lowest) delay after 10 s without loss. Under loss a frame waits for
 * retransmissions on two legs (phone → server, server → console); the browser's jitter buffer
 * does not budget for that and shows a freeze each time a repair takes more than ~150 ms.
 * Video latency grows (and the phone's voice with it, as the browser keeps them in sync) only
 * while the network is lossy. Stops when the peer connection closes.
 * @param {RTCPeerConnection} pc
 */
export function holdUnderLoss(pc) {
  /** @type {{lost: number, nacks: number, received: number} | null} */
  let last = null;
  let clean = 0;
  let hold = 0;
  const timer = setInterval(async () => {
    if (pc.connectionState === "closed") return clearInterval(timer);
    const receiver = pc.getReceivers().find((r) => r.track.kind === "video");
    if (!receiver) return;
    /** @type {{lost: number, nacks: number, received: number} | null} */
    let now = null;
    for (const s of (await receiver.getStats().catch(() => new Map())).values()) {
      if (s.type === "inbound-rtp") now = { lost: s.packetsLost ?? 0, nacks: s.nackCount ?? 0, received: s.packetsReceived ?? 0 };
    }
    if (!now) return;
    const prev = last;
    last = now;
    if (!prev || now.received <= prev.received) return;
    // Holes the console asked to be resent (loss on the phone's leg shows only as NACKs: the
    // server forwards the repaired packets as originals) or never got, ≥ 1 % of a second's packets.
    const holes = now.lost - prev.lost + now.nacks - prev.nacks;
    const lossy = holes * 100 >= now.received - prev.received;
    clean = lossy ? 0 : clean + 1;
    const wanted = lossy ? LOSS_HOLD_MS : clean >= 10 ? 0 : hold;
    const next = wanted > hold ? Math.min(wanted, hold + HOLD_STEP_MS) : Math.max(wanted, hold - HOLD_STEP_MS);
    if (next === hold) return;
    hold = next;
    const r = /** @type {any} */ (receiver);
    if ("jitterBufferTarget" in r) r.jitterBufferTarget = hold || null;
    else if ("playoutDelayHint" in r) r.playoutDelayHint = hold ? hold / 1000 : null;
  }, 1000);
}
