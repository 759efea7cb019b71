// The built-in survey form shown at session end (customer page and console): one labelled control
// per question of the `ended` frame's `survey.questions`, submitted as [{index, answer}].

import { el } from "./dom.js";
import { t } from "./i18n.js";

/**
 * @typedef {{index: number, text: string, kind: "open" | "drop_down", answers: string[], mandatory: boolean}} Question
 * @typedef {{index: number, answer: string}} Answer
 */

/**
 * A form for `questions`; `send` stores the answers (rejects with an Error whose message is shown).
 * After a successful send the form is replaced by a thank-you line (inside the returned element,
 * which stays the same, so a page may keep it across redraws).
 * @param {string} prefix unique id prefix on the page
 * @param {Question[]} questions
 * @param {(answers: Answer[]) => Promise<void>} send
 * @returns {HTMLElement}
 */
export function surveyForm(prefix, questions, send) {
  const status = el("p", { class: "survey-status", role: "status", "aria-live": "polite" });
  /** @type {[Question, HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement][]} */
  const controls = [];
  const rows = questions.map((q) => {
    const id = `${prefix}-q${q.index}`;
    /** @type {HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement} */
    let control;
    if (q.kind === "drop_down") {
      control = /** @type {HTMLSelectElement} */ (
        el("select", { id, required: q.mandatory }, [
          el("option", { value: "" }, [t("survey.choose")]),
          ...q.answers.map((a) => el("option", { value: a }, [a])),
        ])
      );
    } else {
      control = /** @type {HTMLTextAreaElement} */ (el("textarea", { id, rows: "2", maxlength: "1024", required: q.mandatory }));
    }
    controls.push([q, control]);
    const label = el("label", { for: id }, [q.text, q.mandatory ? ` (${t("survey.required")})` : ""]);
    return el("div", { class: "field" }, [label, control]);
  });
  const submit = el("button", { type: "submit", class: "primary", id: `${prefix}-submit` }, [t("survey.submit")]);
  const form = /** @type {HTMLFormElement} */ (el("form", { class: "survey-form", id: `${prefix}-form` }, [...rows, el("div", { class: "form-buttons" }, [submit]), status]));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const answers = controls.map(([q, c]) => ({ index: q.index, answer: c.value.trim() })).filter((a) => a.answer !== "");
    submit.setAttribute("disabled", "");
    status.textContent = "";
    try {
      await send(answers);
      box.replaceChildren(el("p", { class: "survey-done", role: "status", id: `${prefix}-done` }, [t("survey.thanks")]));
    } catch (err) {
      status.textContent = t("survey.failed", { reason: err instanceof Error ? err.message : String(err) });
      submit.removeAttribute("disabled");
    }
  });
  const box = el("div", { class: "survey" }, [form]);
  return box;
}
