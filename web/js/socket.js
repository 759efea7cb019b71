// The WebSocket protocol of signaling/PROTOCOL.md: one JSON object per text frame; requests carry
// an `id` and get exactly one `ok`/`error`/`pong`; everything else is an event.

/**
 * @typedef {{type: string, [field: string]: any}} Frame
 */

/** A refused request: the protocol's `error` frame. */
export class ProtocolError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   * @param {number} [retryAfter]
   */
  constructor(code, message, retryAfter) {
    super(message);
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

/** How often an idle browser says `ping` (the server drops a socket silent for 60 s). */
const PING_MS = 20_000;

export class Socket {
  /**
   * @param {string} path `/ws/customer` or `/ws/console`
   * @param {(frame: Frame) => void} onEvent every frame that is not a reply
   * @param {(code: number) => void} onClose the socket closed (close code)
   */
  constructor(path, onEvent, onClose) {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    this.ws = new WebSocket(`${scheme}//${location.host}${path}`);
    this.onEvent = onEvent;
    this.nextId = 1;
    /** @type {Map<string, {resolve: (f: Frame) => void, reject: (e: Error) => void}>} */
    this.pending = new Map();
    this.opened = new Promise((resolve, reject) => {
      this.ws.addEventListener("open", () => resolve(undefined), { once: true });
      this.ws.addEventListener("error", () => reject(new Error("cannot connect")), { once: true });
    });
    this.ws.addEventListener("message", (e) => this.receive(e.data));
    this.ws.addEventListener("close", (e) => {
      clearInterval(this.pinger);
      for (const p of this.pending.values()) p.reject(new ProtocolError("closed", "connection closed"));
      this.pending.clear();
      onClose(e.code);
    });
    this.pinger = setInterval(() => {
      if (this.ws.readyState === WebSocket.OPEN) this.request({ type: "ping" }).catch(() => {});
    }, PING_MS);
  }

  /** @param {unknown} data */
  receive(data) {
    if (typeof data !== "string") return;
    /** @type {Frame} */
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return;
    }
    const waiting = typeof frame.id === "string" ? this.pending.get(frame.id) : undefined;
    if (waiting && (frame.type === "ok" || frame.type === "error" || frame.type === "pong")) {
      this.pending.delete(frame.id);
      if (frame.type === "error") {
        waiting.reject(new ProtocolError(frame.code, frame.message, frame.retry_after));
      } else {
        waiting.resolve(frame);
      }
      return;
    }
    this.onEvent(frame);
  }

  /**
   * Sends a request and resolves with its `ok` (rejects with a ProtocolError).
   * @param {Frame} frame
   * @returns {Promise<Frame>}
   */
  async request(frame) {
    await this.opened;
    const id = `r${this.nextId++}`;
    const reply = new Promise((resolve, reject) => this.pending.set(id, { resolve, reject }));
    this.ws.send(JSON.stringify({ ...frame, id }));
    return /** @type {Promise<Frame>} */ (reply);
  }

  /**
   * Sends a frame that gets no reply (`candidate`, `answer`).
   * @param {Frame} frame
   */
  send(frame) {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(frame));
  }

  close() {
    clearInterval(this.pinger);
    this.ws.close(1000);
  }
}
