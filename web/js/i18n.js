// Translations: one JSON catalog per language in /assets/i18n/, English as the fallback for any
// missing key. Elements carry a data-i18n attribute (the key of their text) and data-i18n-attr
// (pairs `attr:key` separated by `;`, for placeholder, aria-label, title...).

/** The guide's twelve web languages, with their own names. */
export const LANGUAGES = /** @type {const} */ ([
  ["de", "Deutsch"],
  ["en", "English"],
  ["es", "Español"],
  ["fr", "Français"],
  ["it", "Italiano"],
  ["ja", "日本語"],
  ["ko", "한국어"],
  ["nl", "Nederlands"],
  ["pt-br", "Português (Brasil)"],
  ["th", "ไทย"],
  ["zh", "简体中文"],
  ["zh-TW", "繁體中文"],
]);

/** @type {Record<string, string>} */
let english = {};
/** @type {Record<string, string>} */
let current = {};
let currentCode = "en";

/**
 * The catalog code for a browser language tag (`de-CH` → `de`, `pt-BR` → `pt-br`,
 * `zh-Hant-TW` / `zh-HK` → `zh-TW`, `zh-CN` → `zh`), or null when none fits.
 * @param {string} tag
 * @returns {string | null}
 */
export function catalogFor(tag) {
  const t = tag.toLowerCase();
  if (t.startsWith("zh")) {
    return /-(tw|hk|mo)\b|hant/.test(t) ? "zh-TW" : "zh";
  }
  if (t.startsWith("pt")) return "pt-br";
  const base = t.split("-")[0];
  return LANGUAGES.some(([code]) => code === base) ? base : null;
}

/**
 * The first of the browser's preferred languages that has a catalog; English otherwise.
 * @param {readonly string[]} preferred
 */
export function pickLanguage(preferred) {
  for (const tag of preferred) {
    const code = catalogFor(tag);
    if (code) return code;
  }
  return "en";
}

/** @param {string} code */
async function fetchCatalog(code) {
  const r = await fetch(`/assets/i18n/${code}.json`);
  if (!r.ok) throw new Error(`catalog ${code}: HTTP ${r.status}`);
  return /** @type {Record<string, string>} */ (await r.json());
}

/**
 * Loads a language (and English, once) and translates the page.
 * @param {string} code
 */
export async function setLanguage(code) {
  if (Object.keys(english).length === 0) english = await fetchCatalog("en");
  current = code === "en" ? english : await fetchCatalog(code).catch(() => english);
  currentCode = current === english ? "en" : code;
  document.documentElement.lang = currentCode;
  translate(document.body);
}

export function language() {
  return currentCode;
}

/**
 * The text of a key, with `{name}` placeholders filled in.
 * @param {string} key
 * @param {Record<string, string | number>} [vars]
 */
export function t(key, vars = {}) {
  const text = current[key] ?? english[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (m, name) => (name in vars ? String(vars[name]) : m));
}

/**
 * Translates the marked elements under `root`.
 * @param {ParentNode} root
 */
export function translate(root) {
  for (const node of root.querySelectorAll("[data-i18n]")) {
    const key = node.getAttribute("data-i18n");
    if (key) node.textContent = t(key);
  }
  for (const node of root.querySelectorAll("[data-i18n-attr]")) {
    for (const pair of (node.getAttribute("data-i18n-attr") ?? "").split(";")) {
      const [attr, key] = pair.split(":").map((s) => s.trim());
      if (attr && key) node.setAttribute(attr, t(key));
    }
  }
}

/**
 * Fills a `<select>` with the twelve languages.
 * @param {HTMLSelectElement} select
 */
export function fillLanguageSelect(select) {
  select.replaceChildren(
    ...LANGUAGES.map(([code, name]) => {
      const o = document.createElement("option");
      o.value = code;
      o.textContent = name;
      o.lang = code;
      return o;
    }),
  );
  select.value = currentCode;
}
