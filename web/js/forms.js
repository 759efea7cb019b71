// Forms drawn from a description: each field edits one value of a JSON document, addressed by a
// dotted path (`timeouts.waiting_minutes`, `custom_fields.2.kind`). Used by the admin center.

import { el } from "./dom.js";
import { t } from "./i18n.js";

/**
 * @typedef {{path: string, label: string, type: "text" | "email" | "password" | "number" | "checkbox" |
 *   "select" | "textarea" | "lines", options?: [string, string][], required?: boolean, min?: number,
 *   max?: number, hint?: string}} Field
 * `label`, `hint` and option labels are catalog keys. `lines`: a list of strings, one per line.
 * @typedef {{legend?: string, fields: Field[]}} Section
 */

/**
 * @param {any} doc
 * @param {string} path
 */
export function getPath(doc, path) {
  return path.split(".").reduce((v, k) => (v == null ? undefined : v[k]), doc);
}

/**
 * @param {any} doc
 * @param {string} path
 * @param {unknown} value
 */
export function setPath(doc, path, value) {
  const keys = path.split(".");
  const last = keys.pop() ?? "";
  let node = doc;
  for (const k of keys) {
    if (node[k] == null) node[k] = {};
    node = node[k];
  }
  node[last] = value;
}

/** @param {string} path */
function fieldId(path) {
  return `f-${path.replace(/[^a-zA-Z0-9]+/g, "-")}`;
}

/**
 * Draws `sections` into `form` with the values of `doc`.
 * @param {HTMLFormElement} form
 * @param {Section[]} sections
 * @param {any} doc
 * @param {Node[]} [buttons] appended at the end
 */
export function drawForm(form, sections, doc, buttons = []) {
  form.replaceChildren(
    ...sections.map((section) => {
      const rows = section.fields.map((f) => fieldRow(f, getPath(doc, f.path)));
      return section.legend ? el("fieldset", {}, [el("legend", {}, [t(section.legend)]), ...rows]) : el("div", {}, rows);
    }),
    el("div", { class: "form-buttons" }, buttons),
  );
}

/**
 * @param {Field} f
 * @param {unknown} value
 */
function fieldRow(f, value) {
  const id = fieldId(f.path);
  const hint = f.hint ? el("p", { class: "muted small", id: `${id}-hint` }, [t(f.hint)]) : null;
  const described = hint ? `${id}-hint` : undefined;
  if (f.type === "checkbox") {
    return el("div", { class: "check-row" }, [
      el("label", { class: "inline", for: id }, [
        el("input", { id, type: "checkbox", checked: value === true, "aria-describedby": described }),
        " ",
        t(f.label),
      ]),
      hint,
    ]);
  }
  /** @type {HTMLElement} */
  let input;
  if (f.type === "select") {
    input = el(
      "select",
      { id, "aria-describedby": described },
      (f.options ?? []).map(([v, label]) => el("option", { value: v, selected: String(value ?? "") === v }, [t(label)])),
    );
  } else if (f.type === "textarea" || f.type === "lines") {
    input = el("textarea", { id, rows: "3", "aria-describedby": described }, [
      f.type === "lines" && Array.isArray(value) ? value.join("\n") : String(value ?? ""),
    ]);
  } else {
    input = el("input", {
      id,
      type: f.type,
      value: value == null ? "" : String(value),
      required: f.required,
      min: f.min === undefined ? undefined : String(f.min),
      max: f.max === undefined ? undefined : String(f.max),
      autocomplete: f.type === "password" ? "new-password" : "off",
      "aria-describedby": described,
    });
  }
  return el("div", { class: "field-row" }, [el("label", { for: id }, [t(f.label)]), input, hint]);
}

/**
 * Writes the form's values into `doc` (numbers as numbers, empty optional text as null when the
 * document had null there).
 * @param {HTMLFormElement} form
 * @param {Section[]} sections
 * @param {any} doc
 */
export function readForm(form, sections, doc) {
  for (const f of sections.flatMap((s) => s.fields)) {
    const input = form.querySelector(`#${fieldId(f.path)}`);
    if (input instanceof HTMLInputElement && f.type === "checkbox") {
      setPath(doc, f.path, input.checked);
    } else if (input instanceof HTMLInputElement || input instanceof HTMLSelectElement || input instanceof HTMLTextAreaElement) {
      const raw = input.value;
      if (f.type === "number") setPath(doc, f.path, raw === "" ? 0 : Number(raw));
      else if (f.type === "lines") setPath(doc, f.path, raw.split("\n").map((l) => l.trim()).filter(Boolean));
      else if (raw === "" && getPath(doc, f.path) === null) setPath(doc, f.path, null);
      else setPath(doc, f.path, raw);
    }
  }
  return doc;
}
