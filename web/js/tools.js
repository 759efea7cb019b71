// The console's tools on the live picture (PROTOCOL.md §7.5): pen and arrow in four colours,
// clear, freeze-frame, and sending a link. Drawn with the pointer, or with the keyboard on the
// focused picture (arrow keys move a marker, Enter starts and finishes, Escape cancels; P, A, C
// and F pick the pen, the arrow, clear and freeze).

import { byId } from "./dom.js";
import { t } from "./i18n.js";
import { Overlay, captureStill } from "./annotate.js";
import { ProtocolError } from "./socket.js";

/**
 * @typedef {import("./annotate.js").Stroke} Stroke
 * @typedef {{strokes: Stroke[], frozen: boolean, still: HTMLCanvasElement | null}} ToolState
 */

/** Points a pen stroke may carry (PROTOCOL.md §7.5). */
const MAX_POINTS = 1000;

/**
 * Thins a pen stroke to at most MAX_POINTS points, keeping its ends.
 * @param {[number, number][]} points
 */
function thin(points) {
  if (points.length <= MAX_POINTS) return points;
  const step = (points.length - 1) / (MAX_POINTS - 1);
  return Array.from({ length: MAX_POINTS }, (_, i) => points[Math.round(i * step)]);
}

/**
 * @param {{video: HTMLVideoElement,
 *   request: (frame: import("./socket.js").Frame) => Promise<import("./socket.js").Frame>,
 *   current: () => ({tools?: ToolState} | undefined)}} opts
 */
export function consoleTools({ video, request, current }) {
  const layer = byId("draw-layer", HTMLCanvasElement);
  const still = byId("console-still", HTMLCanvasElement);
  const badge = byId("frozen-badge");
  const error = byId("draw-error");
  const penButton = byId("tool-pen", HTMLButtonElement);
  const arrowButton = byId("tool-arrow", HTMLButtonElement);
  const freezeButton = byId("freeze", HTMLButtonElement);
  const overlay = new Overlay(layer, video);
  /** @type {"pen" | "arrow" | null} */
  let tool = null;
  let colour = "#ff3b30";
  let usable = false;
  /** @type {HTMLCanvasElement | null} the still shown now */
  let shown = null;

  /** @returns {ToolState | undefined} */
  const tools = () => {
    const entry = current();
    if (!entry) return undefined;
    entry.tools ??= { strokes: [], frozen: false, still: null };
    return entry.tools;
  };

  /** @param {unknown} e */
  const fail = (e) => {
    if (e instanceof ProtocolError) {
      const key = { rate_limited: "console.draw.tooFast", invalid_url: "console.url.invalid" }[e.code];
      error.textContent = key ? t(key) : e.message;
    } else {
      error.textContent = e instanceof Error ? e.message : String(e);
    }
  };

  /** @param {"pen" | "arrow" | null} next */
  const choose = (next) => {
    tool = next;
    penButton.setAttribute("aria-pressed", String(tool === "pen"));
    arrowButton.setAttribute("aria-pressed", String(tool === "arrow"));
    layer.classList.toggle("drawing", tool !== null && usable);
  };

  /** Sends the pending stroke; it joins the drawing once the server took it. */
  const finish = async () => {
    const s = overlay.pending;
    overlay.pending = null;
    if (!s) return;
    const stroke = { ...s, points: s.tool === "pen" ? thin(s.points) : s.points };
    overlay.render();
    try {
      await request({ type: "annotate", ...stroke });
      error.textContent = "";
      tools()?.strokes.push(stroke);
      overlay.add(stroke);
    } catch (e) {
      fail(e);
    }
  };

  const clear = async () => {
    try {
      await request({ type: "annotation_clear" });
      const state = tools();
      if (state) state.strokes = [];
      overlay.clear();
      error.textContent = "";
    } catch (e) {
      fail(e);
    }
  };

  const toggleFreeze = async () => {
    const state = tools();
    if (!state) return;
    const frozen = !state.frozen;
    // The frame on screen at the moment of the click is the still.
    const canvas = frozen ? document.createElement("canvas") : null;
    if (canvas && !captureStill(video, canvas)) return;
    try {
      await request({ type: "freeze", frozen });
      state.frozen = frozen;
      state.still = canvas;
      error.textContent = "";
    } catch (e) {
      fail(e);
    }
    paint();
  };

  // ------------------------------------------------------------- pointer --
  layer.addEventListener("pointerdown", (e) => {
    if (!tool || !usable || e.button !== 0) return;
    layer.setPointerCapture(e.pointerId);
    const p = overlay.toFrame(e.clientX, e.clientY);
    overlay.pending = { tool, color: colour, points: tool === "arrow" ? [p, p] : [p] };
    overlay.render();
  });
  layer.addEventListener("pointermove", (e) => {
    const s = overlay.pending;
    if (!s || !layer.hasPointerCapture(e.pointerId)) return;
    const p = overlay.toFrame(e.clientX, e.clientY);
    if (s.tool === "arrow") s.points[1] = p;
    else {
      const last = s.points[s.points.length - 1];
      if (Math.hypot(p[0] - last[0], p[1] - last[1]) >= 0.002) s.points.push(p);
    }
    overlay.render();
  });
  layer.addEventListener("pointerup", (e) => {
    if (layer.hasPointerCapture(e.pointerId)) layer.releasePointerCapture(e.pointerId);
    if (overlay.pending) finish();
  });
  layer.addEventListener("pointercancel", () => {
    overlay.pending = null;
    overlay.render();
  });

  // ------------------------------------------------------------ keyboard --
  layer.addEventListener("focus", () => {
    overlay.marker ??= [0.5, 0.5];
    overlay.render();
  });
  layer.addEventListener("blur", () => {
    overlay.marker = null;
    overlay.render();
  });
  layer.addEventListener("keydown", (e) => {
    if (!usable || e.ctrlKey || e.metaKey || e.altKey) return;
    const step = e.shiftKey ? 0.1 : 0.02;
    const moves = /** @type {Record<string, [number, number]>} */ ({
      ArrowLeft: [-step, 0],
      ArrowRight: [step, 0],
      ArrowUp: [0, -step],
      ArrowDown: [0, step],
    });
    const key = e.key.length === 1 ? e.key.toLowerCase() : e.key;
    const m = overlay.marker ?? [0.5, 0.5];
    if (moves[key]) {
      const [dx, dy] = moves[key];
      const clamp = (/** @type {number} */ v) => Math.round(Math.min(1, Math.max(0, v)) * 1000) / 1000;
      const next = /** @type {[number, number]} */ ([clamp(m[0] + dx), clamp(m[1] + dy)]);
      overlay.marker = next;
      const s = overlay.pending;
      if (s?.tool === "arrow") s.points[1] = next;
      else if (s) s.points.push(next);
      overlay.render();
    } else if (key === "Enter" || key === " ") {
      if (overlay.pending) finish();
      else {
        if (!tool) choose("arrow");
        const start = /** @type {[number, number]} */ ([...m]);
        overlay.pending = { tool: tool ?? "arrow", color: colour, points: tool === "pen" ? [start] : [start, start] };
        overlay.render();
      }
    } else if (key === "Escape") {
      overlay.pending = null;
      overlay.render();
    } else if (key === "p") choose(tool === "pen" ? null : "pen");
    else if (key === "a") choose(tool === "arrow" ? null : "arrow");
    else if (key === "c") clear();
    else if (key === "f") toggleFreeze();
    else return;
    e.preventDefault();
  });

  // ------------------------------------------------------------- buttons --
  penButton.addEventListener("click", () => choose(tool === "pen" ? null : "pen"));
  arrowButton.addEventListener("click", () => choose(tool === "arrow" ? null : "arrow"));
  for (const swatch of document.querySelectorAll(".swatch")) {
    swatch.addEventListener("click", () => {
      colour = swatch.getAttribute("data-colour") ?? colour;
      for (const other of document.querySelectorAll(".swatch")) {
        other.setAttribute("aria-pressed", String(other === swatch));
      }
    });
  }
  byId("draw-clear").addEventListener("click", clear);
  freezeButton.addEventListener("click", toggleFreeze);
  byId("url-form", HTMLFormElement).addEventListener("submit", async (e) => {
    e.preventDefault();
    const input = byId("url-text", HTMLInputElement);
    const url = input.value.trim();
    if (!url) return;
    try {
      await request({ type: "send_url", url });
      input.value = "";
      error.textContent = "";
    } catch (err) {
      fail(err);
    }
  });

  /** Shows the selected session's still and drawing. */
  function paint() {
    const state = tools();
    const frozen = !!state?.frozen && !!state.still;
    const onHold = layer.classList.contains("held");
    still.hidden = !frozen || onHold;
    badge.hidden = !frozen || onHold;
    if (frozen && state?.still && shown !== state.still) {
      still.width = state.still.width;
      still.height = state.still.height;
      still.getContext("2d")?.drawImage(state.still, 0, 0);
      shown = state.still;
    }
    if (!frozen) shown = null;
    still.style.left = `${video.offsetLeft}px`;
    still.style.top = `${video.offsetTop}px`;
    still.style.width = `${video.clientWidth}px`;
    still.style.height = `${video.clientHeight}px`;
    overlay.frame = frozen && state?.still ? { w: state.still.width, h: state.still.height } : { w: 0, h: 0 };
    freezeButton.setAttribute("aria-pressed", String(frozen));
    freezeButton.textContent = t(frozen ? "console.unfreeze" : "console.freeze");
    overlay.strokes = onHold ? [] : state?.strokes ?? [];
    overlay.render();
  }

  return {
    /**
     * After every redraw of the session detail.
     * @param {string} status the selected session's status ("" when none)
     */
    render(status) {
      const entry = current();
      // A session that left the technician's hands starts clean next time (transfer, end).
      if (entry?.tools && status !== "Active" && status !== "On Hold") {
        entry.tools = { strokes: [], frozen: false, still: null };
      }
      usable = status === "Active";
      const onHold = status === "On Hold";
      layer.classList.toggle("held", onHold);
      layer.hidden = !usable && !onHold;
      byId("draw-tools").hidden = !usable;
      byId("draw-help").hidden = !usable;
      byId("url-form").hidden = !usable;
      if (!usable) {
        overlay.pending = null;
        error.textContent = "";
      }
      choose(tool);
      paint();
    },
  };
}
