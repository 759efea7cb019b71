// Small DOM helpers shared by the three pages.

/**
 * The element with this id; throws when the page lacks it (a programming error, not user input).
 * @template {HTMLElement} T
 * @param {string} id
 * @param {{new(): T}} [type] the expected element class, for the type checker
 * @returns {T}
 */
export function byId(id, type) {
  const el = document.getElementById(id);
  if (!el) throw new Error(`no element #${id}`);
  if (type && !(el instanceof type)) throw new Error(`#${id} is not a ${type.name}`);
  return /** @type {T} */ (el);
}

/**
 * Creates an element with attributes and children (strings become text nodes: never HTML).
 * @param {string} tag
 * @param {Record<string, string | boolean | undefined>} [attrs]
 * @param {(Node | string | null | undefined)[]} [children]
 * @returns {HTMLElement}
 */
export function el(tag, attrs = {}, children = []) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    node.append(typeof c === "string" ? document.createTextNode(c) : c);
  }
  return node;
}

/**
 * Shows exactly one of several panels (the others get `hidden`).
 * @param {HTMLElement[]} panels
 * @param {HTMLElement} visible
 */
export function showOnly(panels, visible) {
  for (const p of panels) p.hidden = p !== visible;
}

/**
 * Seconds as m:ss or h:mm:ss.
 * @param {number} seconds
 */
export function duration(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

/**
 * A time of day in the user's locale.
 * @param {string} iso RFC 3339
 */
export function clock(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? "" : d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}
