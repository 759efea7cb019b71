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
