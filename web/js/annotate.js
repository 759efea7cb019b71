// Drawing over a video: the strokes of the technician's pen and arrow tools, in coordinates
// normalised to the video frame (0–1, PROTOCOL.md §7.5), drawn on a canvas laid over a <video>
// (or over the still of a frozen frame) wherever object-fit puts the picture. Shared by the
// console, which draws, and the customer page, which shows the same strokes on its camera view.

/**
 * @typedef {{tool: "pen" | "arrow", color: string, points: [number, number][]}} Stroke
 * @typedef {{x: number, y: number, w: number, h: number}} Rect
 */

/** The console's colours (PROTOCOL.md §7.5): name key → `#rrggbb`. */
export const COLOURS = /** @type {const} */ ([
  ["red", "#ff3b30"],
  ["yellow", "#ffcc00"],
  ["green", "#34c759"],
  ["blue", "#0a84ff"],
]);

/**
 * Where the picture is inside an element of `box` CSS pixels showing a `vw`×`vh` frame with
 * `object-fit: contain` (letter- or pillar-boxed, centred).
 * @param {number} boxW
 * @param {number} boxH
 * @param {number} vw
 * @param {number} vh
 * @returns {Rect}
 */
export function containRect(boxW, boxH, vw, vh) {
  if (!vw || !vh || !boxW || !boxH) return { x: 0, y: 0, w: boxW, h: boxH };
  const scale = Math.min(boxW / vw, boxH / vh);
  const w = vw * scale;
  const h = vh * scale;
  return { x: (boxW - w) / 2, y: (boxH - h) / 2, w, h };
}

/**
 * Draws one stroke into `ctx` over the picture at `r` (canvas pixels). Widths follow §7.5: 0.6 %
 * of the picture's diagonal, arrow heads a tenth of the arrow (at least 3 % of the diagonal).
 * @param {CanvasRenderingContext2D} ctx
 * @param {Stroke} s
 * @param {Rect} r
 */
export function drawStroke(ctx, s, r) {
  const diagonal = Math.hypot(r.w, r.h);
  const px = (/** @type {[number, number]} */ p) => [r.x + p[0] * r.w, r.y + p[1] * r.h];
  ctx.save();
  ctx.strokeStyle = s.color;
  ctx.fillStyle = s.color;
  ctx.lineWidth = Math.max(2, diagonal * 0.006);
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  const pts = s.points.map(px);
  if (s.tool === "arrow" && pts.length === 2) {
    const [[x0, y0], [x1, y1]] = pts;
    const length = Math.hypot(x1 - x0, y1 - y0);
    const head = Math.max(diagonal * 0.03, length / 10);
    const angle = Math.atan2(y1 - y0, x1 - x0);
    // The shaft stops where the head begins, so the tip stays sharp.
    const bx = x1 - Math.cos(angle) * head * 0.8;
    const by = y1 - Math.sin(angle) * head * 0.8;
    ctx.beginPath();
    ctx.moveTo(x0, y0);
    ctx.lineTo(bx, by);
    ctx.stroke();
    ctx.beginPath();
    ctx.moveTo(x1, y1);
    ctx.lineTo(x1 - Math.cos(angle - Math.PI / 7) * head, y1 - Math.sin(angle - Math.PI / 7) * head);
    ctx.lineTo(x1 - Math.cos(angle + Math.PI / 7) * head, y1 - Math.sin(angle + Math.PI / 7) * head);
    ctx.closePath();
    ctx.fill();
  } else if (pts.length === 1) {
    ctx.beginPath();
    ctx.arc(pts[0][0], pts[0][1], ctx.lineWidth / 2, 0, Math.PI * 2);
    ctx.fill();
  } else if (pts.length > 1) {
    ctx.beginPath();
    ctx.moveTo(pts[0][0], pts[0][1]);
    for (const [x, y] of pts.slice(1)) ctx.lineTo(x, y);
    ctx.stroke();
  }
  ctx.restore();
}

/**
 * A canvas over a video element: it follows the element's box and redraws its strokes (and a
 * marker for keyboard drawing) whenever the box or the frame size changes.
 */
export class Overlay {
  /**
   * @param {HTMLCanvasElement} canvas positioned over `video` (same offset parent)
   * @param {HTMLVideoElement} video
   */
  constructor(canvas, video) {
    this.canvas = canvas;
    this.video = video;
    /** @type {Stroke[]} */
    this.strokes = [];
    /** @type {Stroke | null} the stroke being drawn */
    this.pending = null;
    /** @type {[number, number] | null} the keyboard marker */
    this.marker = null;
    /** The frame size the strokes are normalised to (the still's, while frozen). */
    this.frame = { w: 0, h: 0 };
    const redraw = () => this.render();
    new ResizeObserver(redraw).observe(video);
    video.addEventListener("resize", redraw);
    video.addEventListener("loadedmetadata", redraw);
  }

  /** The picture inside the video element, in CSS pixels relative to the element. */
  picture() {
    const w = this.frame.w || this.video.videoWidth;
    const h = this.frame.h || this.video.videoHeight;
    return containRect(this.video.clientWidth, this.video.clientHeight, w, h);
  }

  /**
   * A pointer position → normalised frame coordinates (clamped into the picture).
   * @param {number} clientX
   * @param {number} clientY
   * @returns {[number, number]}
   */
  toFrame(clientX, clientY) {
    const box = this.video.getBoundingClientRect();
    const r = this.picture();
    const clamp = (/** @type {number} */ v) => Math.min(1, Math.max(0, v));
    const x = clamp((clientX - box.left - r.x) / (r.w || 1));
    const y = clamp((clientY - box.top - r.y) / (r.h || 1));
    // Three decimals: a thousandth of the frame is finer than any pointer.
    return [Math.round(x * 1000) / 1000, Math.round(y * 1000) / 1000];
  }

  /** @param {Stroke} s */
  add(s) {
    this.strokes.push(s);
    this.render();
  }

  clear() {
    this.strokes = [];
    this.pending = null;
    this.render();
  }

  render() {
    const v = this.video;
    const c = this.canvas;
    c.style.left = `${v.offsetLeft}px`;
    c.style.top = `${v.offsetTop}px`;
    c.style.width = `${v.clientWidth}px`;
    c.style.height = `${v.clientHeight}px`;
    const ratio = window.devicePixelRatio || 1;
    const w = Math.round(v.clientWidth * ratio);
    const h = Math.round(v.clientHeight * ratio);
    if (c.width !== w || c.height !== h) {
      c.width = w;
      c.height = h;
    }
    const ctx = c.getContext("2d");
    if (!ctx) return;
    ctx.clearRect(0, 0, c.width, c.height);
    const p = this.picture();
    const r = { x: p.x * ratio, y: p.y * ratio, w: p.w * ratio, h: p.h * ratio };
    for (const s of this.strokes) drawStroke(ctx, s, r);
    if (this.pending) drawStroke(ctx, this.pending, r);
    if (this.marker) {
      const [mx, my] = [r.x + this.marker[0] * r.w, r.y + this.marker[1] * r.h];
      ctx.save();
      ctx.strokeStyle = "#ffffff";
      ctx.lineWidth = 2 * ratio;
      ctx.shadowColor = "#000000";
      ctx.shadowBlur = 3 * ratio;
      ctx.beginPath();
      ctx.arc(mx, my, 9 * ratio, 0, Math.PI * 2);
      ctx.moveTo(mx - 14 * ratio, my);
      ctx.lineTo(mx + 14 * ratio, my);
      ctx.moveTo(mx, my - 14 * ratio);
      ctx.lineTo(mx, my + 14 * ratio);
      ctx.stroke();
      ctx.restore();
    }
  }
}

/**
 * Copies the frame a video shows now into `canvas` (at the frame's own size), for a still.
 * @param {HTMLVideoElement} video
 * @param {HTMLCanvasElement} canvas
 * @returns {boolean} whether there was a frame
 */
export function captureStill(video, canvas) {
  if (!video.videoWidth || !video.videoHeight) return false;
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  canvas.getContext("2d")?.drawImage(video, 0, 0);
  return true;
}
